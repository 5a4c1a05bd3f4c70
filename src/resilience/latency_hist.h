/* A lock-free log-linear latency histogram: 16 linear sub-buckets per power of two, so a
 * percentile read from it is within 1/16 of the true value. Recording is two relaxed atomic
 * adds; reading walks the buckets. Values are nanoseconds, clamped at 2^40 (about 18 min). */
#ifndef CBX_RESILIENCE_LATENCY_HIST_H
#define CBX_RESILIENCE_LATENCY_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define CBX__HIST_SUB_BITS 4
#define CBX__HIST_SUB      (1u << CBX__HIST_SUB_BITS)
#define CBX__HIST_MAX_BIT  40
#define CBX__HIST_BUCKETS  ((CBX__HIST_MAX_BIT - CBX__HIST_SUB_BITS + 2) * CBX__HIST_SUB)

typedef struct cbx__hist {
    _Atomic uint64_t sum_ns;
    _Atomic uint64_t bucket[CBX__HIST_BUCKETS];
} cbx__hist;

typedef struct cbx__hist_summary {
    uint64_t count;
    double mean_ns;
    uint64_t p50_ns, p95_ns, p99_ns;
} cbx__hist_summary;

static inline unsigned cbx__hist_index(uint64_t v)
{
    if (v >= (1ULL << CBX__HIST_MAX_BIT))
        v = (1ULL << CBX__HIST_MAX_BIT) - 1;
    if (v < CBX__HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - CBX__HIST_SUB_BITS;
    return (msb - CBX__HIST_SUB_BITS + 1) * CBX__HIST_SUB +
           (unsigned)((v >> shift) & (CBX__HIST_SUB - 1));
}

static inline void cbx__hist_add(cbx__hist *h, uint64_t v)
{
    atomic_fetch_add_explicit(&h->bucket[cbx__hist_index(v)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, v, memory_order_relaxed);
}

/* Count, mean and percentiles (each the midpoint of its bucket). */
void cbx__hist_summarize(cbx__hist *h, cbx__hist_summary *out);

/* The smallest value that falls in bucket i, and the bucket's width. */
uint64_t cbx__hist_bucket_low(unsigned i, uint64_t *width);

#endif
