/* The retry budget: retries limited to a ratio of recent calls plus a per-second reserve,
 * over a sliding window kept as a ring of time slices. */
#include "cbx/retry.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#define SLICES 10

struct cbx_retry_budget {
    pthread_mutex_t mu;
    cbx_clock *clock;
    double ratio;
    double reserve; /* min_per_second * window seconds */
    uint64_t slice_ns;
    /* Slice number (now / slice_ns) of the newest slice; slice s lives in ring[s % SLICES]. */
    uint64_t head;
    uint64_t calls[SLICES];
    uint64_t retries[SLICES];
    uint64_t calls_in_window, retries_in_window;
    uint64_t calls_total, retries_total, refused_total;
};

void cbx_retry_budget_opts_default(cbx_retry_budget_opts *o)
{
    *o = (cbx_retry_budget_opts){
        .ratio = 0.2,
        .min_per_second = 10.0,
        .window_ns = 10 * CBX_NS_PER_S,
        .clock = NULL,
    };
}

static int invalid(cbx_err *err, const char *key, const char *msg)
{
    return cbx_err_set_at(err, CBX_EINVAL_CONFIG, key, 0, 0, "%s", msg);
}

int cbx_retry_budget_opts_validate(const cbx_retry_budget_opts *o, cbx_err *err)
{
    if (!o)
        return invalid(err, "retry.budget", "retry budget options are missing (NULL)");
    if (!isfinite(o->ratio) || o->ratio < 0)
        return invalid(err, "retry.budget.ratio", "ratio must be a finite number >= 0");
    if (!isfinite(o->min_per_second) || o->min_per_second < 0)
        return invalid(err, "retry.budget.min_per_second",
                       "min_per_second must be a finite number >= 0");
    if (o->ratio == 0 && o->min_per_second == 0)
        return invalid(err, "retry.budget",
                       "ratio and min_per_second must not both be 0 (every retry would be "
                       "refused)");
    if (o->window_ns < CBX_NS_PER_MS)
        return invalid(err, "retry.budget.window", "window_ns must be >= 1ms");
    return 0;
}

int cbx_retry_budget_new(cbx_retry_budget **out, const cbx_retry_budget_opts *o, cbx_err *err)
{
    *out = NULL;
    int r = cbx_retry_budget_opts_validate(o, err);
    if (r)
        return r;
    cbx_retry_budget *b = calloc(1, sizeof *b);
    if (!b)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    r = pthread_mutex_init(&b->mu, NULL);
    if (r) {
        free(b);
        return cbx_err_set(err, -r, "pthread_mutex_init failed");
    }
    b->clock = o->clock ? o->clock : cbx_clock_monotonic();
    b->ratio = o->ratio;
    b->slice_ns = o->window_ns / SLICES;
    b->reserve = o->min_per_second * ((double)(b->slice_ns * SLICES) / (double)CBX_NS_PER_S);
    b->head = cbx_clock_now_ns(b->clock) / b->slice_ns;
    *out = b;
    return 0;
}

void cbx_retry_budget_free(cbx_retry_budget *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* Move the window to the present: slices that fell out of it are emptied and subtracted.
 * Called with mu held. A clock that reads earlier than the newest slice (it should not go
 * back, but a caller may swap clocks) leaves the window where it is. */
static void slide(cbx_retry_budget *b)
{
    uint64_t now_slice = cbx_clock_now_ns(b->clock) / b->slice_ns;
    if (now_slice <= b->head)
        return;
    if (now_slice - b->head >= SLICES) {
        for (unsigned i = 0; i < SLICES; i++)
            b->calls[i] = b->retries[i] = 0;
        b->calls_in_window = b->retries_in_window = 0;
    } else {
        for (uint64_t s = b->head + 1; s <= now_slice; s++) {
            unsigned i = (unsigned)(s % SLICES);
            b->calls_in_window -= b->calls[i];
            b->retries_in_window -= b->retries[i];
            b->calls[i] = b->retries[i] = 0;
        }
    }
    b->head = now_slice;
}

/* floor(ratio * calls + reserve). The small tolerance keeps a product such as 0.29 * 100,
 * which is 28.999999999999996 in binary floating point, from losing a retry. */
static uint64_t allowed(const cbx_retry_budget *b)
{
    double a = b->ratio * (double)b->calls_in_window + b->reserve;
    a += a * 1e-12 + 1e-9;
    if (!(a < 1.8e19))
        return UINT64_MAX;
    return (uint64_t)floor(a);
}

void cbx_retry_budget_record_call(cbx_retry_budget *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    slide(b);
    b->calls[b->head % SLICES]++;
    b->calls_in_window++;
    b->calls_total++;
    pthread_mutex_unlock(&b->mu);
}

int cbx_retry_budget_try_withdraw(cbx_retry_budget *b)
{
    if (!b)
        return 0;
    int r = 0;
    pthread_mutex_lock(&b->mu);
    slide(b);
    if (b->retries_in_window < allowed(b)) {
        b->retries[b->head % SLICES]++;
        b->retries_in_window++;
        b->retries_total++;
    } else {
        b->refused_total++;
        r = CBX_EBUDGET_EXHAUSTED;
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

void cbx_retry_budget_get_stats(cbx_retry_budget *b, cbx_retry_budget_stats *out)
{
    pthread_mutex_lock(&b->mu);
    slide(b);
    *out = (cbx_retry_budget_stats){
        .calls_in_window = b->calls_in_window,
        .retries_in_window = b->retries_in_window,
        .allowed_in_window = allowed(b),
        .calls_total = b->calls_total,
        .retries_total = b->retries_total,
        .refused_total = b->refused_total,
    };
    pthread_mutex_unlock(&b->mu);
}
