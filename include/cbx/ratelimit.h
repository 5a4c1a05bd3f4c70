/* cbx/ratelimit.h - a thread-safe, lock-free token-bucket rate limiter.
 *
 * A bucket holds up to `burst` tokens and refills at `per_second` tokens per second, one
 * token every interval_ns = 1e9 / per_second nanoseconds. A new limiter starts full. A call
 * takes n tokens at once or none: when fewer than n are there it is refused with
 * CBX_ERATE_LIMITED and told how long until n will be.
 *
 * The bucket is kept as the generic cell rate algorithm (GCRA): one 64-bit "theoretical
 * arrival time" (TAT), the time at which the bucket would be full again, updated by
 * compare-and-swap. With T = interval_ns and W = burst * T, at time t:
 *     tokens(t)  = burst - max(0, TAT - t) / T      (clamped to 0..burst)
 *     take n:      TAT' = max(TAT, t) + n * T       (allowed when TAT' - t <= W)
 *     wait for n = max(0, max(TAT, t) + n * T - W - t)
 * This is exactly a token bucket (a token is added every T, capped at burst), with no refill
 * timer and no lock: every call is a few loads and one CAS, and never allocates.
 *
 * interval_ns is an integer number of nanoseconds: 1e9 / per_second, rounded up when it is
 * not whole (3/s gives 333333334 ns), so the limiter never admits faster than the rate.
 * Rates are therefore limited to at most 1e9 per second.
 *
 * Time comes from the cbx_clock in the options, so tests drive it with a virtual clock.
 *
 * Text forms (policy block, see docs/ratelimit-bulkhead.md):
 *     rate_limit: {rate: "50/s", burst: 10}
 * `rate` goes through cbx_rate_parse() (cbx/units.h) into per_second; `burst` is a whole
 * number >= 1, and when it is absent the parser uses cbx_ratelimit_default_burst(per_second).
 */
#ifndef CBX_RATELIMIT_H
#define CBX_RATELIMIT_H

#include <stdint.h>

#include "cbx/clock.h"
#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_ratelimit cbx_ratelimit;

/* Highest accepted cbx_ratelimit_opts.per_second: one token per nanosecond. */
#define CBX_RATELIMIT_MAX_PER_SECOND 1e9

/* Longest a full bucket may take to refill from empty (burst * interval_ns), in ns: 2^62,
 * about 146 years. Beyond it per_second is too small for the burst. */
#define CBX_RATELIMIT_MAX_WINDOW_NS (UINT64_C(1) << 62)

/* A rate of n per minute, as cbx_ratelimit_opts.per_second wants it. */
#define CBX_RATE_PER_MINUTE(n) ((double)(n) / 60.0)

/* A rate of n per hour. */
#define CBX_RATE_PER_HOUR(n) ((double)(n) / 3600.0)

/* What cbx_ratelimit_wait_ns returns for a request that can never succeed (n > burst). */
#define CBX_RATELIMIT_NEVER UINT64_MAX

/* A bucket kept somewhere other processes on other hosts reach too (the cluster store of
 * cbx/dist.h keeps it in NATS JetStream KV): the limiter asks it instead of its own word. take
 * applies cbx_ratelimit_gcra to the bucket's arrival time (wall-clock nanoseconds, which hosts
 * share) and stores the result atomically (compare-and-set, decided again on a conflict):
 * 0 (taken; *delay_ns = how long to wait before going ahead), CBX_ERATE_LIMITED (nothing taken;
 * *delay_ns = the wait that would be needed), or a negative code when the bucket cannot be
 * reached: the limiter then decides on its own word (this process's own view) for that call.
 * take may block (a round trip to a server); it must be thread-safe. */
typedef struct cbx_ratelimit_remote {
    int (*take)(void *ud, uint64_t interval_ns, uint64_t window_ns, uint32_t n,
                uint64_t max_wait_ns, uint64_t *delay_ns);
    void *ud;
} cbx_ratelimit_remote;

/* One GCRA decision, as the limiter makes it, for a bucket kept elsewhere: with arrival time tat
 * at time now (same clock), take n tokens of interval_ns each if that needs no wait beyond
 * max_wait_ns, where window_ns = burst * interval_ns. 0 with *next_tat the new arrival time and
 * *delay_ns the wait; CBX_ERATE_LIMITED with *delay_ns the wait needed (CBX_RATELIMIT_NEVER when
 * it can never be) and *next_tat = tat. Pure: no state, no clock. */
int cbx_ratelimit_gcra(uint64_t tat, uint64_t now, uint64_t interval_ns, uint64_t window_ns,
                       uint32_t n, uint64_t max_wait_ns, uint64_t *next_tat, uint64_t *delay_ns);

typedef struct cbx_ratelimit_opts {
    double per_second; /* refill rate in tokens per second; required: finite, > 0, <= 1e9 */
    uint32_t burst;    /* bucket size in tokens; required: >= 1 (see _default_burst) */
    cbx_clock *clock;  /* borrowed, must outlive the limiter; NULL = monotonic clock */
    /* NULL, or a 64-bit word, 8-byte aligned, that keeps the arrival time instead of the
     * limiter itself: every limiter given the same word (in memory shared between processes,
     * such as cbx_breaker_store_limiter's) takes tokens from one bucket, each with its own
     * per_second and burst. Updated by compare-and-swap only; the clock must not be virtual
     * (CLOCK_MONOTONIC is what all processes share). Borrowed: it must outlive the limiter. */
    void *shared_tat;
    /* NULL, or a bucket kept elsewhere (see cbx_ratelimit_remote), borrowed: it must outlive
     * the limiter. Wins over shared_tat. With one, reserve and try_acquire block while take does
     * and are no longer lock-free; wait_ns and the stats' available describe this process's own
     * word (what it would decide alone). */
    const cbx_ratelimit_remote *remote;
} cbx_ratelimit_opts;

/* A snapshot of a limiter. Counters are cumulative since creation; each is read atomically,
 * but not all together while other threads acquire. */
typedef struct cbx_ratelimit_stats {
    uint64_t admitted;        /* calls that took their tokens (try_acquire and reserve) */
    uint64_t rejected;        /* calls refused with CBX_ERATE_LIMITED */
    uint64_t tokens_admitted; /* tokens taken in total (the sum of n over admitted calls) */
    uint32_t available;       /* whole tokens available now (0..burst) */
    uint32_t burst;           /* as configured */
    double per_second;        /* as configured */
    uint64_t interval_ns;     /* time per token, as used (see the rounding note above) */
} cbx_ratelimit_stats;

/* The burst used when a policy gives a rate but no burst: one second's worth of tokens,
 * floor(per_second), and at least 1 ("50/s" -> 50, "600/min" -> 10, "3/min" -> 1). Capped at
 * UINT32_MAX. Returns 1 for a per_second that is not a finite positive number. */
uint32_t cbx_ratelimit_default_burst(double per_second);

/* Create a limiter with a full bucket. Options are copied (the clock is borrowed).
 * Returns 0 and *out (free with cbx_ratelimit_free), or:
 *   CBX_EINVAL_CONFIG  o is NULL ("where" = ""), per_second not finite, <= 0 or > 1e9
 *                      ("per_second"), burst 0 ("burst"), or burst * interval_ns over
 *                      CBX_RATELIMIT_MAX_WINDOW_NS ("burst"); err->where names the field;
 *   -EINVAL            out is NULL;
 *   -ENOMEM.
 * err may be NULL. */
int cbx_ratelimit_new(cbx_ratelimit **out, const cbx_ratelimit_opts *o, cbx_err *err);

/* Release a limiter. NULL is accepted. No other thread may be using it. */
void cbx_ratelimit_free(cbx_ratelimit *rl);

/* Take n tokens now, or none. Returns:
 *   0                  the tokens are taken; *wait_ns (if not NULL) = 0;
 *   CBX_ERATE_LIMITED  nothing taken; *wait_ns (if not NULL) = nanoseconds until n tokens
 *                      would be available, always >= 1 (if nobody else takes any);
 *   CBX_EINVAL_CONFIG  n > burst: it can never succeed; nothing counted; *wait_ns =
 *                      CBX_RATELIMIT_NEVER.
 * n == 0 succeeds at once, takes and counts nothing. Thread-safe, lock-free, never blocks,
 * never allocates. */
int cbx_ratelimit_try_acquire(cbx_ratelimit *rl, uint32_t n, uint64_t *wait_ns);

/* Take n tokens that may still be in the future: if they will all be available within
 * max_wait_ns, they are taken now (nobody else can have them) and *delay_ns (if not NULL) is
 * how long the caller must wait before going ahead (0 = at once; the caller does the
 * waiting, e.g. with a timer or cbx_clock_sleep_until). A reservation cannot be given back.
 * Returns 0, CBX_ERATE_LIMITED (nothing taken; *delay_ns = the wait that would have been
 * needed, > max_wait_ns) or CBX_EINVAL_CONFIG (n > burst; *delay_ns = CBX_RATELIMIT_NEVER).
 * max_wait_ns == 0 is exactly cbx_ratelimit_try_acquire. While reservations are
 * outstanding, the bucket reads as empty (available 0) and other callers wait behind them.
 * Thread-safe, lock-free, never blocks, never allocates. */
int cbx_ratelimit_reserve(cbx_ratelimit *rl, uint32_t n, uint64_t max_wait_ns, uint64_t *delay_ns);

/* Nanoseconds until n tokens are available (0 = now), without taking any. Another thread
 * may take them first. n > burst gives CBX_RATELIMIT_NEVER; n == 0 gives 0. */
uint64_t cbx_ratelimit_wait_ns(cbx_ratelimit *rl, uint32_t n);

/* Fill *out with a snapshot. Thread-safe. */
void cbx_ratelimit_stats_get(cbx_ratelimit *rl, cbx_ratelimit_stats *out);

#ifdef __cplusplus
}
#endif
#endif
