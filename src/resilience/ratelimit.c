/* The token-bucket rate limiter, kept as GCRA: one atomic theoretical arrival time, the
 * limiter's own or a word shared with other processes (the host store's limiter records). */
#include "cbx/ratelimit.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

struct cbx_ratelimit {
    /* The time at which the bucket would be full again if nothing more were taken. A value
     * at or before now means a full bucket. Starts at 0: full. */
    _Atomic uint64_t tat_own;
    _Atomic uint64_t *tat;              /* &tat_own, or cbx_ratelimit_opts.shared_tat */
    const cbx_ratelimit_remote *remote; /* NULL, or the bucket kept elsewhere */
    uint64_t interval_ns;               /* time per token */
    uint64_t window_ns;                 /* burst * interval_ns: the time a full bucket covers */
    uint32_t burst;
    double per_second;
    cbx_clock *clock;
    _Atomic uint64_t admitted;
    _Atomic uint64_t rejected;
    _Atomic uint64_t tokens_admitted;
};

uint32_t cbx_ratelimit_default_burst(double per_second)
{
    if (!isfinite(per_second) || per_second < 1.0)
        return 1;
    if (per_second >= (double)UINT32_MAX)
        return UINT32_MAX;
    return (uint32_t)floor(per_second);
}

/* 1e9 / per_second in whole nanoseconds: exact when the quotient is whole up to rounding
 * noise (1/60 per second gives 60 s, not 60 s + 1 ns), otherwise rounded up. */
static uint64_t interval_from_rate(double per_second)
{
    double exact = (double)CBX_NS_PER_S / per_second;
    double nearest = nearbyint(exact);
    if (fabs(exact - nearest) <= nearest * 1e-12)
        return (uint64_t)nearest;
    return (uint64_t)ceil(exact);
}

int cbx_ratelimit_new(cbx_ratelimit **out, const cbx_ratelimit_opts *o, cbx_err *err)
{
    if (!out)
        return cbx_err_set(err, -EINVAL, "cbx_ratelimit_new: out is NULL");
    *out = NULL;
    if (!o)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "rate limiter options are missing");
    if (isnan(o->per_second))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "per_second", 0, 0,
                              "rate must be a number, not NaN");
    if (!isfinite(o->per_second) || o->per_second <= 0.0)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "per_second", 0, 0,
                              "rate must be a finite number above 0, not %g", o->per_second);
    if (o->per_second > CBX_RATELIMIT_MAX_PER_SECOND)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "per_second", 0, 0,
                              "rate %g per second is above the limit of 1e9 per second",
                              o->per_second);
    if (o->shared_tat &&
        ((uintptr_t)o->shared_tat % 8 || (o->clock && cbx_clock_is_virtual(o->clock))))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "shared_tat", 0, 0,
                              "a shared arrival time must be 8-byte aligned and kept on the "
                              "monotonic clock, not a virtual one");
    if (o->burst == 0)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "burst", 0, 0,
                              "burst must be at least 1 token");
    double exact_interval = (double)CBX_NS_PER_S / o->per_second;
    if (exact_interval * (double)o->burst > (double)CBX_RATELIMIT_MAX_WINDOW_NS)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "burst", 0, 0,
                              "burst %u at %g per second takes longer than 2^62 ns to refill",
                              o->burst, o->per_second);

    cbx_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    rl->interval_ns = interval_from_rate(o->per_second);
    rl->window_ns = rl->interval_ns * o->burst;
    rl->burst = o->burst;
    rl->per_second = o->per_second;
    rl->clock = o->clock;
    atomic_init(&rl->tat_own, 0);
    rl->tat = o->shared_tat && !o->remote ? (_Atomic uint64_t *)o->shared_tat : &rl->tat_own;
    rl->remote = o->remote;
    atomic_init(&rl->admitted, 0);
    atomic_init(&rl->rejected, 0);
    atomic_init(&rl->tokens_admitted, 0);
    *out = rl;
    return 0;
}

void cbx_ratelimit_free(cbx_ratelimit *rl)
{
    free(rl);
}

/* Time from now until n tokens are there, given the arrival time tat; CBX_RATELIMIT_NEVER
 * when taking them would carry the arrival time beyond the representable range. */
static uint64_t wait_for(const cbx_ratelimit *rl, uint64_t tat, uint64_t now, uint32_t n)
{
    uint64_t base = tat > now ? tat : now;
    uint64_t cost = (uint64_t)n * rl->interval_ns;
    if (base > UINT64_MAX - cost)
        return CBX_RATELIMIT_NEVER;
    uint64_t need = base + cost - now;
    return need > rl->window_ns ? need - rl->window_ns : 0;
}

int cbx_ratelimit_reserve(cbx_ratelimit *rl, uint32_t n, uint64_t max_wait_ns, uint64_t *delay_ns)
{
    uint64_t delay = 0;
    int rc = 0;
    if (n > rl->burst) {
        delay = CBX_RATELIMIT_NEVER;
        rc = CBX_EINVAL_CONFIG;
        goto out;
    }
    if (n == 0)
        goto out;

    if (rl->remote) {
        int r = rl->remote->take(rl->remote->ud, rl->interval_ns, rl->window_ns, n, max_wait_ns,
                                 &delay);
        if (r == CBX_ERATE_LIMITED) {
            atomic_fetch_add_explicit(&rl->rejected, 1, memory_order_relaxed);
            rc = CBX_ERATE_LIMITED;
            goto out;
        }
        if (r == 0) {
            atomic_fetch_add_explicit(&rl->admitted, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&rl->tokens_admitted, n, memory_order_relaxed);
            goto out;
        }
        delay = 0; /* unreachable: this process's own word decides */
    }
    uint64_t now = cbx_clock_now_ns(rl->clock);
    uint64_t tat = atomic_load_explicit(rl->tat, memory_order_acquire);
    for (;;) {
        delay = wait_for(rl, tat, now, n);
        if (delay > max_wait_ns || delay == CBX_RATELIMIT_NEVER) {
            atomic_fetch_add_explicit(&rl->rejected, 1, memory_order_relaxed);
            rc = CBX_ERATE_LIMITED;
            goto out;
        }
        uint64_t next = (tat > now ? tat : now) + (uint64_t)n * rl->interval_ns;
        if (atomic_compare_exchange_weak_explicit(rl->tat, &tat, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    atomic_fetch_add_explicit(&rl->admitted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rl->tokens_admitted, n, memory_order_relaxed);
out:
    if (delay_ns)
        *delay_ns = delay;
    return rc;
}

int cbx_ratelimit_gcra(uint64_t tat, uint64_t now, uint64_t interval_ns, uint64_t window_ns,
                       uint32_t n, uint64_t max_wait_ns, uint64_t *next_tat, uint64_t *delay_ns)
{
    cbx_ratelimit shape = {.interval_ns = interval_ns, .window_ns = window_ns};
    /* more than the bucket holds can never be taken */
    uint64_t delay = interval_ns && n > window_ns / interval_ns ? CBX_RATELIMIT_NEVER
                                                                : wait_for(&shape, tat, now, n);
    *next_tat = tat;
    *delay_ns = delay;
    if (delay > max_wait_ns || delay == CBX_RATELIMIT_NEVER)
        return CBX_ERATE_LIMITED;
    *next_tat = (tat > now ? tat : now) + (uint64_t)n * interval_ns;
    return 0;
}

int cbx_ratelimit_try_acquire(cbx_ratelimit *rl, uint32_t n, uint64_t *wait_ns)
{
    return cbx_ratelimit_reserve(rl, n, 0, wait_ns);
}

uint64_t cbx_ratelimit_wait_ns(cbx_ratelimit *rl, uint32_t n)
{
    if (n > rl->burst)
        return CBX_RATELIMIT_NEVER;
    if (n == 0)
        return 0;
    uint64_t now = cbx_clock_now_ns(rl->clock);
    return wait_for(rl, atomic_load_explicit(rl->tat, memory_order_acquire), now, n);
}

void cbx_ratelimit_stats_get(cbx_ratelimit *rl, cbx_ratelimit_stats *out)
{
    uint64_t now = cbx_clock_now_ns(rl->clock);
    uint64_t tat = atomic_load_explicit(rl->tat, memory_order_acquire);
    uint64_t backlog = tat > now ? tat - now : 0;
    uint64_t free_ns = backlog < rl->window_ns ? rl->window_ns - backlog : 0;
    out->admitted = atomic_load_explicit(&rl->admitted, memory_order_relaxed);
    out->rejected = atomic_load_explicit(&rl->rejected, memory_order_relaxed);
    out->tokens_admitted = atomic_load_explicit(&rl->tokens_admitted, memory_order_relaxed);
    out->available = (uint32_t)(free_ns / rl->interval_ns);
    out->burst = rl->burst;
    out->per_second = rl->per_second;
    out->interval_ns = rl->interval_ns;
}
