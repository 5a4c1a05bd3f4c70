/* Percentiles from the log-linear latency histogram. */
#include "resilience/latency_hist.h"

uint64_t cbx__hist_bucket_low(unsigned i, uint64_t *width)
{
    if (i < CBX__HIST_SUB) {
        *width = 1;
        return i;
    }
    unsigned group = i / CBX__HIST_SUB; /* 1 + msb - SUB_BITS */
    unsigned sub = i % CBX__HIST_SUB;
    unsigned shift = group - 1;
    *width = 1ULL << shift;
    return ((uint64_t)(CBX__HIST_SUB + sub)) << shift;
}

static uint64_t midpoint(unsigned i)
{
    uint64_t width;
    uint64_t low = cbx__hist_bucket_low(i, &width);
    return low + width / 2;
}

void cbx__hist_summarize(cbx__hist *h, cbx__hist_summary *out)
{
    uint64_t counts[CBX__HIST_BUCKETS];
    uint64_t total = 0;
    for (unsigned i = 0; i < CBX__HIST_BUCKETS; i++) {
        counts[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        total += counts[i];
    }
    *out = (cbx__hist_summary){.count = total};
    if (total == 0)
        return;
    out->mean_ns = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / (double)total;
    /* rank r (1-based) is the smallest with cumulative count >= ceil(q * total) */
    const double qs[3] = {0.50, 0.95, 0.99};
    uint64_t *dst[3] = {&out->p50_ns, &out->p95_ns, &out->p99_ns};
    unsigned q = 0;
    uint64_t cum = 0;
    for (unsigned i = 0; i < CBX__HIST_BUCKETS && q < 3; i++) {
        cum += counts[i];
        while (q < 3) {
            uint64_t rank = (uint64_t)(qs[q] * (double)total);
            if ((double)rank < qs[q] * (double)total)
                rank++;
            if (rank == 0)
                rank = 1;
            if (cum < rank)
                break;
            *dst[q++] = midpoint(i);
        }
    }
}
