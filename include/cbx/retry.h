/* cbx/retry.h - retry policy (attempts, backoff, jitter) and the shared retry budget.
 *
 * Two pieces that work without the runtime:
 *
 *   cbx_retry_opts + cbx_retry_state: a retry policy and the per-call state of one logical
 *   call. The policy is a plain options struct, read-only once set up, shared freely between
 *   threads. The state is caller-owned (usually on the stack), one per logical call, and
 *   allocates nothing. cbx_retry_begin() starts a call; after every failed attempt
 *   cbx_retry_next() says whether to try again and after how long. The caller does the
 *   waiting, so the same state machine drives a blocking loop (cbx_retry_run) or an event
 *   loop's timers.
 *
 *   cbx_retry_budget: a thread-safe object shared by every call of a group (one upstream,
 *   one host, one model). It keeps retries to a fraction of recent traffic so that retries
 *   cannot multiply the load on a service that is already failing:
 *
 *       allowed retries in the window = ratio * calls in the window
 *                                       + min_per_second * window seconds
 *
 *   Who records what: cbx_retry_begin() records one call on opts->budget (first attempts
 *   only; retries never deposit), and cbx_retry_next() withdraws one retry from it as the
 *   last check before granting a retry. A caller that drives the budget by hand uses
 *   cbx_retry_budget_record_call() and cbx_retry_budget_try_withdraw().
 *
 * Times are nanoseconds on the caller's clock (see cbx/clock.h); every duration field has
 * its unit in its name. The formulas, defaults and the policy-block keys are in docs/retry.md.
 *
 * Policy block keys (JSON/YAML), and the field each one sets:
 *
 *   retry:
 *     attempts: 4               max_attempts      integer >= 1
 *     backoff: exponential      backoff           fixed | linear | exponential | decorrelated
 *     initial: 200ms            initial_ns        duration (cbx_duration_parse_ns)
 *     max: 5s                   max_delay_ns      duration
 *     multiplier: 2             multiplier        number >= 1
 *     jitter: full              jitter            none | full | equal
 *     max_elapsed: 30s          max_elapsed_ns    duration; absent or 0 = unlimited
 *     on: [error, timeout]      retry_on          outcome names (cbx_outcome_parse)
 *     seed: 42                  seed              integer, optional, for reproducible runs
 *     budget:                   budget            a cbx_retry_budget made from these:
 *       ratio: 20%                ratio           cbx_ratio_parse, or a number >= 0
 *       min_per_second: 10        min_per_second  number >= 0 (cbx_rate_parse also fits)
 *       window: 10s               window_ns       duration >= 1ms
 *
 * A key that is absent keeps the value from cbx_retry_opts_default() or
 * cbx_retry_budget_opts_default(). cbx_retry_opts_validate() and cbx_retry_budget_new()
 * report a bad value with cbx_err.where set to the key path ("retry.multiplier",
 * "retry.budget.ratio") and a message naming the C field ("multiplier must be >= 1").
 */
#ifndef CBX_RETRY_H
#define CBX_RETRY_H

#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/outcome.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- backoff and jitter ----------------------------------------------------------------- */

/* X(NAME, "name") - the names are the policy-block values. n is the retry number (1 for the
 * delay before the second attempt), cap is max_delay_ns.
 *   FIXED:        initial                                    (multiplier unused)
 *   LINEAR:       min(cap, initial * n)                      (multiplier unused)
 *   EXPONENTIAL:  min(cap, initial * multiplier^(n-1))
 *   DECORRELATED: min(cap, uniform[initial, prev * 3]), prev = the previous delay (initial
 *                 before the first retry); the "decorrelated jitter" of the AWS Architecture
 *                 Blog. It is random by construction, so the jitter option is not applied
 *                 on top of it, and the multiplier is unused. */
#define CBX_BACKOFF_MAP(X)                                                                         \
    X(FIXED, "fixed")                                                                              \
    X(LINEAR, "linear")                                                                            \
    X(EXPONENTIAL, "exponential")                                                                  \
    X(DECORRELATED, "decorrelated")

typedef enum cbx_backoff {
#define CBX__BACKOFF_ENUM(name, str) CBX_BACKOFF_##name,
    CBX_BACKOFF_MAP(CBX__BACKOFF_ENUM)
#undef CBX__BACKOFF_ENUM
        CBX_BACKOFF__COUNT
} cbx_backoff;

/* X(NAME, "name") - applied to the capped backoff value d of FIXED, LINEAR and EXPONENTIAL:
 *   NONE:  d
 *   FULL:  uniform[0, d]
 *   EQUAL: d/2 + uniform[0, d - d/2]      (integer halves, so the result is in [d/2, d]) */
#define CBX_JITTER_MAP(X)                                                                          \
    X(NONE, "none")                                                                                \
    X(FULL, "full")                                                                                \
    X(EQUAL, "equal")

typedef enum cbx_jitter {
#define CBX__JITTER_ENUM(name, str) CBX_JITTER_##name,
    CBX_JITTER_MAP(CBX__JITTER_ENUM)
#undef CBX__JITTER_ENUM
        CBX_JITTER__COUNT
} cbx_jitter;

/* Name of a backoff or jitter ("exponential", "full"), static; "unknown" when out of range. */
const char *cbx_backoff_name(cbx_backoff b);
const char *cbx_jitter_name(cbx_jitter j);

/* The value for a name; returns 0 and sets *out, or CBX_EPARSE when the name is unknown
 * (names are matched exactly, lower case). */
int cbx_backoff_parse(const char *name, cbx_backoff *out);
int cbx_jitter_parse(const char *name, cbx_jitter *out);

/* ---- the retry budget ------------------------------------------------------------------- */

typedef struct cbx_retry_budget cbx_retry_budget;

typedef struct cbx_retry_budget_opts {
    /* Retries allowed per call in the window, as a fraction: 0.2 lets one call in five be
     * retried once. May exceed 1 when calls may retry more than once. Finite, >= 0.
     * Default 0.2. */
    double ratio;
    /* Retries always allowed per second of window, however little traffic there is, so
     * that a quiet client can still retry. Finite, >= 0. Default 10. ratio and
     * min_per_second may not both be 0 (every retry would be refused). */
    double min_per_second;
    /* Length of the sliding window, ns. >= 1 ms. Default 10 s. The window is kept in 10
     * slices, so a call or retry stops counting between 0.9 and 1.0 window after it was
     * recorded. */
    uint64_t window_ns;
    /* Where the budget reads the time. Borrowed; must outlive the budget. NULL = the
     * monotonic clock. Default NULL. */
    cbx_clock *clock;
} cbx_retry_budget_opts;

/* Fill *o with the defaults above. */
void cbx_retry_budget_opts_default(cbx_retry_budget_opts *o);

/* Check *o without creating anything. Returns 0, or CBX_EINVAL_CONFIG with *err (if not NULL)
 * naming the field: where = "retry.budget.<key>", msg = "<field> must be ...". */
int cbx_retry_budget_opts_validate(const cbx_retry_budget_opts *o, cbx_err *err);

/* Create a budget from *o (copied; o->clock is borrowed). On success returns 0 and sets
 * *out, to be released with cbx_retry_budget_free(). On failure *out is NULL and the return
 * is CBX_EINVAL_CONFIG (see cbx_retry_budget_opts_validate) or -ENOMEM. The budget is
 * thread-safe: any number of threads may record and withdraw at once. */
int cbx_retry_budget_new(cbx_retry_budget **out, const cbx_retry_budget_opts *o, cbx_err *err);

/* Release a budget. NULL is accepted. No thread may still be using it, and no
 * cbx_retry_opts that still points at it may be used afterwards. */
void cbx_retry_budget_free(cbx_retry_budget *b);

/* Record one call (a first attempt) at the budget's current time. Retries are not calls:
 * record each logical call once. NULL is accepted and ignored. cbx_retry_begin() calls this
 * for opts->budget. */
void cbx_retry_budget_record_call(cbx_retry_budget *b);

/* Take one retry from the budget: returns 0 and counts the retry in the window when
 *     retries in window + 1 <= floor(ratio * calls in window + min_per_second * window s),
 * otherwise counts a refusal and returns CBX_EBUDGET_EXHAUSTED. A NULL budget always grants
 * (returns 0). cbx_retry_next() calls this for opts->budget. */
int cbx_retry_budget_try_withdraw(cbx_retry_budget *b);

typedef struct cbx_retry_budget_stats {
    uint64_t calls_in_window;   /* calls recorded in the current window */
    uint64_t retries_in_window; /* retries granted in the current window */
    uint64_t allowed_in_window; /* floor(ratio * calls + min_per_second * window s) */
    uint64_t calls_total;       /* every call ever recorded */
    uint64_t retries_total;     /* every retry ever granted */
    uint64_t refused_total;     /* every withdrawal ever refused */
} cbx_retry_budget_stats;

/* A consistent snapshot of the budget's counters at its current time into *out. b and out
 * must not be NULL. */
void cbx_retry_budget_get_stats(cbx_retry_budget *b, cbx_retry_budget_stats *out);

/* ---- the retry policy ------------------------------------------------------------------- */

/* The kinds retried by default: error, timeout, rate_limited. */
#define CBX_RETRY_ON_DEFAULT                                                                       \
    (CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR) | CBX_OUTCOME_BIT(CBX_OUTCOME_TIMEOUT) |                   \
     CBX_OUTCOME_BIT(CBX_OUTCOME_RATE_LIMITED))

/* A retry policy. Fill with cbx_retry_opts_default(), change what you need, check with
 * cbx_retry_opts_validate(). Read-only while calls use it; any number of threads may share
 * one. The functions below read it at every call rather than copy it. */
typedef struct cbx_retry_opts {
    /* Attempts in all, the first one included: 1 = never retry. >= 1. Default 3. */
    uint32_t max_attempts;
    /* Overall time limit, ns from the start of the first attempt: no retry is granted
     * whose delay would end after first start + max_elapsed_ns. 0 = unlimited. Default 0. */
    uint64_t max_elapsed_ns;
    /* Shape of the delays (see CBX_BACKOFF_MAP). Default CBX_BACKOFF_EXPONENTIAL. */
    cbx_backoff backoff;
    /* Randomisation of FIXED/LINEAR/EXPONENTIAL delays (see CBX_JITTER_MAP).
     * Default CBX_JITTER_FULL. */
    cbx_jitter jitter;
    /* First delay, ns. > 0, except that FIXED accepts 0 (retry at once). Default 100 ms. */
    uint64_t initial_ns;
    /* Cap on every delay, ns, Retry-After included. >= initial_ns and > 0. Default 30 s. */
    uint64_t max_delay_ns;
    /* Growth factor of EXPONENTIAL. Finite, >= 1 (checked for every backoff). Default 2. */
    double multiplier;
    /* Outcomes to retry, a mask of CBX_OUTCOME_BIT(k). At least one failure kind; never
     * CBX_OUTCOME_SUCCESS or CBX_OUTCOME_IGNORED. Default CBX_RETRY_ON_DEFAULT. */
    uint32_t retry_on;
    /* Budget shared with other calls, or NULL for none. Borrowed: it must outlive every
     * call that uses these options. Default NULL. */
    cbx_retry_budget *budget;
    /* Jitter seed. Non-zero: every call made with these options draws the same sequence
     * (reproducible tests and replays; in production it makes concurrent calls retry in
     * lockstep). 0 = a fresh seed per call from the time, the state's address and a
     * counter. Default 0. */
    uint64_t seed;
} cbx_retry_opts;

/* Fill *o with the defaults above. */
void cbx_retry_opts_default(cbx_retry_opts *o);

/* Check *o. Returns 0, or CBX_EINVAL_CONFIG for the first bad field, with *err (if not NULL)
 * naming it: where = "retry.<key>" (the policy-block key), msg = "<field> must be ...".
 * The other functions assume valid options: with invalid ones they stay memory-safe but
 * their delays are unspecified. */
int cbx_retry_opts_validate(const cbx_retry_opts *o, cbx_err *err);

/* Per-call state, caller-owned (usually on the stack), one per logical call; not shared
 * between threads. Set by cbx_retry_begin() and cbx_retry_next(); the caller only reads it. */
typedef struct cbx_retry_state {
    uint32_t attempt;        /* attempts started so far: 1 after begin, +1 per granted retry */
    uint64_t first_start_ns; /* now_ns given to cbx_retry_begin() */
    uint64_t prev_delay_ns;  /* the last delay granted, 0 before the first retry */
    uint64_t rng;            /* jitter generator state */
} cbx_retry_state;

/* Start a logical call whose first attempt begins at now_ns (the caller's clock): set *st and
 * record the call on o->budget (if any). Call it once per logical call, before the first
 * attempt. */
void cbx_retry_begin(const cbx_retry_opts *o, cbx_retry_state *st, uint64_t now_ns);

/* The attempt st->attempt ended at now_ns with outcome k. retry_after_ns is a delay the
 * result asked for (an HTTP Retry-After, a rate limiter's wait), 0 = none: it replaces the
 * computed delay, limited to max_delay_ns.
 *
 * Returns 0 with *delay_ns set when another attempt should start delay_ns from now (st is
 * advanced: attempt + 1, prev_delay_ns = *delay_ns). Otherwise returns, checking in this
 * order, and leaves *delay_ns and st unchanged:
 *   CBX_EFAILED            k is not in o->retry_on (SUCCESS and IGNORED never are): the
 *                          outcome is final as it stands;
 *   CBX_ERETRY_EXHAUSTED   st->attempt >= max_attempts, or now_ns + delay would end after
 *                          first_start_ns + max_elapsed_ns;
 *   CBX_EBUDGET_EXHAUSTED  o->budget refused the retry (the budget is consulted last, so a
 *                          retry refused for another reason never spends budget).
 * After a non-zero return the logical call is over. */
int cbx_retry_next(const cbx_retry_opts *o, cbx_retry_state *st, cbx_outcome k,
                   uint64_t retry_after_ns, uint64_t now_ns, uint64_t *delay_ns);

/* ---- a blocking loop around a C function ------------------------------------------------ */

/* One attempt of the guarded work. attempt is 1 for the first. The function reports how
 * the attempt ended and may set *retry_after_ns (it starts at 0 for each attempt). */
typedef cbx_outcome (*cbx_retry_fn)(void *ud, uint32_t attempt, uint64_t *retry_after_ns);

typedef struct cbx_retry_report {
    cbx_outcome outcome; /* how the last attempt ended */
    uint32_t attempts;   /* attempts made */
    uint64_t elapsed_ns; /* from the first start to the end of the last attempt */
} cbx_retry_report;

/* Run fn under policy o on the thread that calls, sleeping between attempts with
 * cbx_clock_sleep_until(clk) (clk NULL = monotonic; a virtual clock is advanced instead of
 * slept on). Returns 0 when the last attempt's outcome is not a failure (SUCCESS or
 * IGNORED), otherwise the code from cbx_retry_next() that ended the call: CBX_EFAILED,
 * CBX_ERETRY_EXHAUSTED or CBX_EBUDGET_EXHAUSTED. *report (if not NULL) is filled either way.
 * For event loops, drive cbx_retry_begin()/cbx_retry_next() with timers instead. */
int cbx_retry_run(const cbx_retry_opts *o, cbx_clock *clk, cbx_retry_fn fn, void *ud,
                  cbx_retry_report *report);

#ifdef __cplusplus
}
#endif
#endif
