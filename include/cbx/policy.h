/* cbx/policy.h - timeout, retry (+ budget), breaker, rate limit, bulkhead, fallback and
 * quality, composed into one policy and built from one JSON block.
 *
 * A cbx_policy guards a piece of work. Each attempt of a call goes through, in this order:
 *
 *   1. the overall deadline and the cancel flag   (past the deadline: TIMEOUT; cancelled)
 *   2. the rate limiter        one token, never waits      refusal ends the call (REJECTED)
 *   3. the bulkhead            a slot, waiting in its queue refusal or queue timeout ends it
 *   4. the breaker             a permit                     refusal ends it, with the reason
 *   5. the work                measured on the policy's clock
 *   6. the timeout             ran longer than `timeout` (or past `deadline`): TIMEOUT, output
 *                              discarded
 *   7. the quality threshold   a success scored under it becomes a QUALITY failure
 *   8. the breaker record      the outcome, latency and quality; the bulkhead slot is returned
 *   9. the retry policy        retry the outcome? attempts, max_elapsed, deadline, budget;
 *                              a Retry-After from the attempt replaces the backoff (capped)
 * and at the end, the fallback: a success is remembered in its cache (for the caller's key);
 * a failure, timeout or rejection asks it for a substitute answer.
 *
 * Two ways to drive it, one set of rules:
 *   - cbx_policy_call() runs an in-process C function synchronously on the calling thread,
 *     sleeping between attempts with cbx_clock_sleep_until() (instant on a virtual clock);
 *   - cbx_policy_begin / _admit / _attempt_end / _end are the same steps one at a time, for an
 *     event loop that starts the work asynchronously and waits with timers. cbx_policy_call is
 *     built on them. They allocate nothing; the per-call state (cbx_policy_run) is the
 *     caller's.
 *
 * In-process C code cannot be pre-empted: a function that runs past its attempt deadline is
 * judged a TIMEOUT when it returns, and its output is thrown away, but nothing stops it early.
 * Long work should watch cbx_attempt_should_stop(). (The runtime enforces real timeouts on
 * processes and HTTP requests, which can be stopped.)
 *
 * A policy is immutable once made and may be used by any number of threads at once; the
 * components are thread-safe. The JSON block, every key, its default and its units are in
 * docs/policy.md.
 */
#ifndef CBX_POLICY_H
#define CBX_POLICY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/breaker.h"
#include "cbx/bulkhead.h"
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/fallback.h"
#include "cbx/outcome.h"
#include "cbx/ratelimit.h"
#include "cbx/retry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_policy cbx_policy;

/* "No deadline" in cbx_attempt.deadline_ns and cbx_policy_run's deadlines. */
#define CBX_POLICY_NO_DEADLINE UINT64_MAX

/* Most entries in retry.on_status and retry.on_exit_code. */
#define CBX_POLICY_MAX_CODES 32

/* ---- options ------------------------------------------------------------------------------ */

/* Which sections of cbx_policy_opts are in use (cbx_policy_opts.sections). */
enum {
    CBX_POLICY_WITH_RETRY = 1u << 0,        /* opts.retry: retry failed attempts */
    CBX_POLICY_WITH_RETRY_BUDGET = 1u << 1, /* opts.retry_budget: a budget the policy creates */
    CBX_POLICY_WITH_BREAKER = 1u << 2,      /* opts.breaker: a breaker the policy creates */
    CBX_POLICY_WITH_RATE_LIMIT = 1u << 3,   /* opts.rate_limit: a limiter the policy creates */
    CBX_POLICY_WITH_BULKHEAD = 1u << 4,     /* opts.bulkhead: a bulkhead the policy creates */
    CBX_POLICY_WITH_FALLBACK = 1u << 5,     /* opts.fallback: a fallback the policy creates */
};

/* Everything a policy is made of. Fill with cbx_policy_opts_default() (or
 * cbx_policy_opts_parse()), then change what you need. cbx_policy_new() copies what it keeps.
 *
 * Each component is either absent, created by the policy from its options (the section bit is
 * set; the policy owns it and frees it), or shared: a shared_* pointer to an object the caller
 * made, which the policy borrows (it must outlive the policy, and the policy never frees it).
 * Many policies may share one breaker, budget, limiter, bulkhead or fallback - a breaker per
 * host, say. A shared object takes precedence over the section's options, which are then
 * ignored. Components the policy creates read the time from opts.clock, whatever their own
 * clock field says; shared components keep their own clock, which should be the same one. */
typedef struct cbx_policy_opts {
    /* Copied. Names the policy and the breaker it creates (the breaker section's name, if
     * set, wins for the breaker). NULL = "policy". */
    const char *name;
    /* Borrowed, must outlive the policy. NULL = the monotonic clock. */
    cbx_clock *clock;
    /* Which sections below are in use: CBX_POLICY_WITH_* bits. */
    uint32_t sections;

    /* Limit on each attempt, ns; an attempt that takes longer is a TIMEOUT. 0 = none. */
    uint64_t timeout_ns;
    /* Limit on the whole call, ns from cbx_policy_begin: it bounds every attempt and every
     * wait, and no retry starts at or after it. 0 = none. */
    uint64_t deadline_ns;
    /* 0..1: a success whose quality score (cbx_attempt.quality) is under this is a QUALITY
     * failure. 0 = off. */
    double quality_threshold;

    /* CBX_POLICY_WITH_RETRY. Copied. retry.budget, when set, is a shared budget (borrowed). Without
     * this section every call makes exactly one attempt. */
    cbx_retry_opts retry;
    /* CBX_POLICY_WITH_RETRY_BUDGET: a budget made for this policy (ignored when retry.budget is
     * set). Needs CBX_POLICY_WITH_RETRY. */
    cbx_retry_budget_opts retry_budget;
    /* Retry decisions that look at the attempt's result (see cbx_policy_retry_allows), as
     * retry.on_status and retry.on_exit_code in a policy block. A failed attempt whose outputs
     * carry an integer HTTP `status` is retried only when the status is listed here; with no
     * list, every status but 4xx (408 and 429 excepted) is. A failed attempt whose outputs
     * carry an integer `exit_code` is retried only when the code is listed here; with no list,
     * any code is. At most CBX_POLICY_MAX_CODES of each; n_* = 0: no list. */
    int32_t retry_on_status[CBX_POLICY_MAX_CODES];
    uint32_t n_retry_on_status;
    int32_t retry_on_exit_code[CBX_POLICY_MAX_CODES];
    uint32_t n_retry_on_exit_code;
    /* Copied and stored, never evaluated here: Lua expressions over the attempt (retry.when,
     * breaker.count_when, breaker.ignore_when in a policy block; docs/policy.md), which the
     * runtime evaluates in its sandbox after each attempt with a table `attempt` = {number,
     * outcome, error, outputs, metadata, duration_ms}. retry_when: asked after a failed
     * attempt that may otherwise be retried; false ends the call (cbx_policy_run_no_retry_why).
     * breaker_ignore_when true: the breaker ignores the attempt; else breaker_count_when true:
     * it counts as a failure, false: as a success (cbx_policy_run_breaker_verdict).
     * cbx_policy_opts_parse refuses text that does not compile. NULL = none. */
    const char *retry_when;
    const char *breaker_count_when;
    const char *breaker_ignore_when;

    /* CBX_POLICY_WITH_BREAKER. Copied; breaker.name NULL = the policy's name. */
    cbx_breaker_opts breaker;
    cbx_breaker *shared_breaker; /* borrowed; wins over the section */
    /* Copied and stored, never evaluated here: the template ("{{ host(inputs.url) }}") that a
     * flow expands per step to pick a breaker per key (see cbx_request.breaker). NULL = none. */
    const char *breaker_key;

    /* CBX_POLICY_WITH_RATE_LIMIT. Copied. */
    cbx_ratelimit_opts rate_limit;
    cbx_ratelimit *shared_rate_limit; /* borrowed; wins over the section */
    /* rate_limit.wait: with no token, wait for one up to this long (ns) instead of refusing
     * (admit returns -EAGAIN); a token further off than this, or than the deadline, is refused
     * at once. 0 = refuse at once. Applies to the shared limiter too. */
    uint64_t rate_limit_wait_ns;
    /* rate_limit.key: the name (1 to 200 bytes) of a limiter shared with every process that names
     * it, kept in the breaker store of the runtime the policy runs on (the host store's word, or
     * the cluster store's CBX_RATES bucket: cbx_breaker_store_limiter_opts), as --rate-key does.
     * Copied; the runtime binds it when a request using the policy is first submitted
     * (cbx_policy_rate_limit_pending). Ignored when rate_limit.remote or shared_tat is given or
     * shared_rate_limit is. NULL = the limiter is the policy's own. */
    const char *rate_limit_key;

    /* CBX_POLICY_WITH_BULKHEAD. Copied. */
    cbx_bulkhead_opts bulkhead;
    cbx_bulkhead *shared_bulkhead; /* borrowed; wins over the section */

    /* CBX_POLICY_WITH_FALLBACK. Copied as cbx_fallback_new copies it (the static value is
     * deep-copied; fallback.fn and fn_ud are borrowed). A C callback goes in fallback.fn. */
    cbx_fallback_opts fallback;
    cbx_fallback *shared_fallback; /* borrowed; wins over the section */
    /* Copied and stored: the name of a function the runtime resolves into fallback.fn. While
     * fallback.fn is NULL, the function source is left out of the fallback's order (and a
     * fallback section with no other source makes no fallback at all). NULL = none. */
    const char *fallback_function;
    /* Copied and stored, never evaluated here: the template (`fallback.cache.key`, e.g.
     * "{{ inputs.city }}") that a flow or `cbx exec` expands per call into the fallback cache
     * key (cbx_request.fallback_key). NULL = none: the runtime then keys the cache by the
     * executor and its canonical parameters. */
    const char *fallback_key;
    /* Borrowed during cbx_policy_new: an object {key: answer} put in the fallback cache when
     * it is made, never expiring (`fallback.cache.entries`; canned answers). NULL = none. */
    const json_t *fallback_entries;
} cbx_policy_opts;

/* Fill *o with no sections and every section's options at its component's defaults
 * (cbx_retry_opts_default, cbx_retry_budget_opts_default, cbx_breaker_opts_default; the rate
 * limit, bulkhead and fallback options zeroed, as they have required fields). */
void cbx_policy_opts_default(cbx_policy_opts *o);

/* Read a policy block (a JSON object; the keys are in docs/policy.md) into *o.
 *
 * *o must be initialised (cbx_policy_opts_default, or options to build on). The parts a block
 * cannot express are kept: name, clock, the shared_* pointers, retry.budget, fallback.fn and
 * fallback.fn_ud. Everything else is reset to the defaults, then each key present is applied,
 * and sections is set to the sections present.
 *
 * Borrowing: o->breaker_key, o->fallback_function, o->fallback_key, o->fallback.value and the
 * Lua predicates (o->retry_when, o->breaker_count_when, o->breaker_ignore_when) point into block,
 * which must stay alive and unchanged until cbx_policy_new() (which copies them) is done.
 *
 * Returns 0, or, with *err naming the key path in err->where ("retry.backoff",
 * "breaker.failure_rate", "retry.on[1]") and saying what was expected in err->msg:
 *   CBX_EUNKNOWN_KEY   a key this version does not know ("did you mean 'backoff'?");
 *   CBX_EPARSE         text that cannot be read: a duration, ratio or rate string;
 *   CBX_EINVAL_CONFIG  a value of the wrong type, out of range, negative, not one of the
 *                      allowed names, or a combination that cannot work.
 * On error *o is left partly filled; do not use it. Components check more when they are
 * made: cbx_policy_new reports those errors with the same key paths. */
int cbx_policy_opts_parse(cbx_policy_opts *o, const json_t *block, cbx_err *err);

/* ---- the policy --------------------------------------------------------------------------- */

/* Make a policy: create the components of the sections in o->sections (or borrow the shared
 * ones) and copy the rest. Returns 0 and *out (free with cbx_policy_free), or:
 *   CBX_EINVAL_CONFIG  a component refused its options, or a combination is wrong (a budget
 *                      without retry, a quality threshold outside 0..1): err->where is the
 *                      policy-block key path ("breaker.open_max", "rate_limit.rate",
 *                      "retry.budget.ratio"), err->msg the component's own message;
 *   -EINVAL            out or o is NULL;
 *   -ENOMEM            (or another -errno from a component).
 * On failure nothing is left allocated and *out is NULL. */
int cbx_policy_new(cbx_policy **out, const cbx_policy_opts *o, cbx_err *err);

/* Parse block over base (NULL = cbx_policy_opts_default) with cbx_policy_opts_parse, then
 * cbx_policy_new. block is only read during the call. Returns what those return. */
int cbx_policy_new_json(cbx_policy **out, const json_t *block, const cbx_policy_opts *base,
                        cbx_err *err);

/* Release a policy and the components it created; shared ones are left alone. NULL is
 * accepted. No call may be running under it. */
void cbx_policy_free(cbx_policy *p);

/* The parts, for metrics, manual control (cbx_breaker_force_open) and the runtime. Each is the
 * created or the shared object, or NULL when the policy has none; owned by the policy or by
 * whoever shared it - never free them. */
cbx_breaker *cbx_policy_breaker(const cbx_policy *p);
cbx_retry_budget *cbx_policy_retry_budget(const cbx_policy *p);
cbx_ratelimit *cbx_policy_rate_limit(const cbx_policy *p);
cbx_bulkhead *cbx_policy_bulkhead(const cbx_policy *p);
cbx_fallback *cbx_policy_fallback(const cbx_policy *p);
cbx_clock *cbx_policy_clock(const cbx_policy *p);

/* The policy's name, breaker key template and fallback function name, owned by the policy;
 * the last two are NULL when not set. */
const char *cbx_policy_name(const cbx_policy *p);
const char *cbx_policy_breaker_key(const cbx_policy *p);
/* The breaker section the policy made its own breaker from (name NULL, the policy's clock),
 * owned by the policy; NULL when it made none (no section, or a shared breaker). A runtime
 * request names a store breaker per expanded key with these options (cbx_request.breaker_opts). */
const cbx_breaker_opts *cbx_policy_breaker_opts(const cbx_policy *p);
const char *cbx_policy_fallback_function(const cbx_policy *p);
/* The fallback cache key template (fallback.cache.key), owned by the policy; NULL = none. */
const char *cbx_policy_fallback_key(const cbx_policy *p);

/* 1 while the policy names a fallback function (cbx_policy_fallback_function) that has not
 * been resolved into a callback. A runtime resolves it when a request using the policy is
 * submitted (a registered function or a blocking executor type of its registry), or refuses
 * the request when the name is neither: a named function is never silently left out. */
int cbx_policy_fallback_pending(const cbx_policy *p);

/* rate_limit.key as given (NULL = none), and 1 while it is not bound to a shared limiter yet. */
const char *cbx_policy_rate_limit_key(const cbx_policy *p);
int cbx_policy_rate_limit_pending(const cbx_policy *p);
/* Bind rate_limit.key: fill(ud, key, o, err) fills o's shared_tat or remote (a breaker store's
 * cbx_breaker_store_limiter_opts), then the policy's limiter is made again from the section with
 * them. Call it before the policy is used from more than one thread (a runtime does it when it
 * first submits a request using the policy). 0; fill's code (the limiter stays the policy's
 * own and pending); CBX_EINVAL_CONFIG (nothing pending); -ENOMEM. */
int cbx_policy_rate_limit_bind(cbx_policy *p,
                               int (*fill)(void *ud, const char *key, cbx_ratelimit_opts *o,
                                           cbx_err *err),
                               void *ud, cbx_err *err);

/* Put fn (with ud, borrowed unless ud_free is given: then the policy frees ud with it) in the
 * policy's fallback as its function source, where the section's order puts it: the fallback
 * is made again from the section (a cache started before this is dropped). Call it before the
 * policy is used from more than one thread. Returns 0, CBX_EINVAL_CONFIG (nothing pending, or
 * the fallback refused the options: err->where names the key), -EINVAL, -ENOMEM. On failure
 * ud is not taken. */
int cbx_policy_fallback_resolve(cbx_policy *p, cbx_fallback_fn fn, void *ud,
                                void (*ud_free)(void *ud), cbx_err *err);
/* The Lua predicates of the options (retry_when, breaker_count_when, breaker_ignore_when),
 * owned by the policy; NULL when not set. */
const char *cbx_policy_retry_when(const cbx_policy *p);
const char *cbx_policy_breaker_count_when(const cbx_policy *p);
const char *cbx_policy_breaker_ignore_when(const cbx_policy *p);

/* ---- how a call ended --------------------------------------------------------------------- */

/* X(NAME, "name"). */
#define CBX_POLICY_STATUS_MAP(X)                                                                   \
    X(SUCCESS, "success")     /* the last attempt succeeded */                                     \
    X(FAILED, "failed")       /* attempts ran; the last failed (and retrying stopped) */           \
    X(TIMEOUT, "timeout")     /* the last attempt timed out, or the deadline ended the call */     \
    X(REJECTED, "rejected")   /* refused before any attempt ran: rate limit, bulkhead, breaker */  \
    X(CANCELLED, "cancelled") /* cbx_policy_run_cancel() stopped it */

typedef enum cbx_policy_status {
#define CBX__POLICY_STATUS_ENUM(name, str) CBX_POLICY_##name,
    CBX_POLICY_STATUS_MAP(CBX__POLICY_STATUS_ENUM)
#undef CBX__POLICY_STATUS_ENUM
        CBX_POLICY_STATUS__COUNT
} cbx_policy_status;

/* "success", "failed", "timeout", "rejected", "cancelled"; static; "unknown" out of range. */
const char *cbx_policy_status_name(cbx_policy_status s);

/* ---- the synchronous call ----------------------------------------------------------------- */

/* One attempt, as the function sees it. The policy fills the "in" fields and resets the "out"
 * fields before each attempt. */
typedef struct cbx_attempt {
    /* in */
    uint32_t number;      /* 1 for the first attempt */
    uint64_t deadline_ns; /* when this attempt times out, on clock; CBX_POLICY_NO_DEADLINE */
    cbx_clock *clock;     /* the policy's clock (never NULL) */
    const int *cancel;    /* non-zero once the call is cancelled; read it with
                             cbx_attempt_should_stop (it may change from another thread) */
    /* out */
    uint64_t retry_after_ns; /* 0; set it to ask for this delay before the next attempt (an
                                HTTP Retry-After): it replaces the backoff, capped at retry.max */
    double quality;          /* 1; set it to score a success 0..1 (the quality threshold) */
    char error[256];         /* ""; a one-line reason for a failure (cbx_attempt_set_error) */
} cbx_attempt;

/* 1 when the function should give up now: the call was cancelled or the attempt's deadline
 * has passed on its clock. 0 otherwise. */
int cbx_attempt_should_stop(const cbx_attempt *a);

/* Write a printf-style one-line reason into a->error (truncated to fit). */
void cbx_attempt_set_error(cbx_attempt *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The guarded work. input is the caller's (borrowed, read-only, may be NULL). *output is NULL
 * on entry; set it to a new reference (the policy takes it over) - it is kept only when the
 * attempt is judged a success, and released otherwise. Returns how the attempt went:
 * SUCCESS, or a failure kind (ERROR, TIMEOUT, RATE_LIMITED, QUALITY, CUSTOM); IGNORED means
 * "failed, but says nothing about the health of what is called": not counted by the breaker,
 * never retried. Anything out of range counts as ERROR. */
typedef cbx_outcome (*cbx_policy_fn)(const json_t *input, json_t **output, cbx_attempt *a,
                                     void *ud);

/* How many attempts cbx_policy_result records one by one. */
#define CBX_POLICY_MAX_RECORDED 16

/* One attempt that ran. */
typedef struct cbx_policy_attempt_info {
    cbx_outcome outcome; /* as judged: TIMEOUT and QUALITY applied */
    int64_t latency_ns;  /* on the policy's clock */
    double quality;      /* as reported (1 when the function did not say) */
    uint64_t delay_ns;   /* the wait before the next attempt; 0 after the last */
} cbx_policy_attempt_info;

/* The whole story of a cbx_policy_call. Caller-owned; cbx_policy_call clears it first, and
 * cbx_policy_result_clear releases what it holds. */
typedef struct cbx_policy_result {
    cbx_policy_status status;
    /* Why the call ended: 0 on SUCCESS; CBX_EFAILED (the outcome is not retried, or there is
     * no retry section; CBX_ETIMEDOUT instead when that outcome is a timeout),
     * CBX_ERETRY_EXHAUSTED (attempts or retry.max_elapsed used up), CBX_EBUDGET_EXHAUSTED,
     * CBX_ETIMEDOUT (the deadline), CBX_ECANCELLED, or the refusal that stopped it:
     * CBX_ERATE_LIMITED, CBX_EBULKHEAD_FULL, CBX_EQUEUE_TIMEOUT, CBX_ECIRCUIT_OPEN,
     * CBX_EHALF_OPEN_FULL, CBX_EFORCED_OPEN. A refusal after attempts have run leaves the
     * status of the last attempt (FAILED or TIMEOUT) and rc the refusal. */
    int rc;
    /* 1 when output is the fallback's answer; source says which one answered. */
    int fallback_used;
    cbx_fallback_source fallback_source;
    /* When the fallback was asked and did not answer: its code (CBX_ENO_FALLBACK, or the
     * degraded function's code); 0 otherwise. */
    int fallback_rc;
    /* The answer, owned by the result: the successful attempt's output, or the fallback's.
     * NULL when neither (or when the function gave none). */
    json_t *output;
    uint32_t attempts;        /* attempts that ran (refusals are not attempts) */
    cbx_outcome last_outcome; /* of the last attempt that ran; IGNORED when none ran */
    /* Filled when the breaker refused (rc CBX_ECIRCUIT_OPEN, EHALF_OPEN_FULL, EFORCED_OPEN). */
    cbx_breaker_rejection rejection;
    /* One line on how the call ended when it did not succeed ("breaker 'api' is open: 5
     * consecutive failures; next probe in 30s", "3 attempts failed: retries exhausted; last
     * error: connection refused"); "" on success. */
    char reason[384];
    /* The last failed attempt's cbx_attempt.error; "" when none was given. */
    char error[256];
    uint64_t elapsed_ns; /* from the start of the call to the end of the last attempt or
                            refusal, on the policy's clock (the fallback not included) */
    /* The first CBX_POLICY_MAX_RECORDED attempts, in order (min(attempts, MAX) of them). */
    cbx_policy_attempt_info attempt[CBX_POLICY_MAX_RECORDED];
} cbx_policy_result;

/* Run fn(input, &output, &attempt, ud) under p on the calling thread, attempt after attempt,
 * as described at the top of this file. fallback_key (copied when used; NULL = none) is the
 * fallback cache key: a success is remembered under it, and a failure looks it up.
 *
 * Blocks: in the bulkhead queue (cbx_bulkhead_enter, up to bulkhead.queue_timeout and the
 * deadline), in fn, and between attempts (cbx_clock_sleep_until on p's clock: no real waiting
 * on a virtual clock, but a bulkhead wait on a virtual clock needs another thread to advance
 * it).
 *
 * Returns 0 when res->output holds the answer: the call succeeded, or it did not and the
 * fallback answered (res->fallback_used). Otherwise returns res->rc (a negative code, see
 * cbx_policy_result) and, if err is not NULL, sets err to that code and res->reason. Either
 * way *res is filled; release it with cbx_policy_result_clear. -EINVAL when p, fn or res is
 * NULL (then *res is untouched if res is NULL, else cleared). */
int cbx_policy_call(cbx_policy *p, cbx_policy_fn fn, void *ud, const json_t *input,
                    const char *fallback_key, cbx_policy_result *res, cbx_err *err);

/* Release res->output and zero *res. NULL is accepted. */
void cbx_policy_result_clear(cbx_policy_result *res);

/* ---- the asynchronous interface ----------------------------------------------------------- */

/* What to do after an attempt. */
#define CBX_POLICY_DECISION_MAP(X)                                                                 \
    X(RETRY, "retry")               /* wait *delay_ns, then cbx_policy_admit again */              \
    X(DONE_SUCCESS, "done_success") /* the call succeeded: remember the output, end */             \
    X(DONE_FAILED, "done_failed")   /* the call failed and there is no fallback to ask */          \
    X(USE_FALLBACK, "use_fallback") /* the call failed: ask cbx_policy_fallback_get */

typedef enum cbx_policy_decision {
#define CBX__POLICY_DECISION_ENUM(name, str) CBX_POLICY_##name,
    CBX_POLICY_DECISION_MAP(CBX__POLICY_DECISION_ENUM)
#undef CBX__POLICY_DECISION_ENUM
} cbx_policy_decision;

/* "retry", "done_success", "done_failed", "use_fallback"; static; "unknown" out of range. */
const char *cbx_policy_decision_name(cbx_policy_decision d);

typedef struct cbx_policy_run cbx_policy_run;

/* Tells an asynchronous bulkhead waiter how its wait ended: rc 0 = the run holds a slot now;
 * CBX_EQUEUE_TIMEOUT or CBX_ECANCELLED = it does not. Either way, call cbx_policy_admit(run)
 * next (on the run's own thread): it goes on with the breaker, or reports the refusal. */
typedef void (*cbx_policy_slot_fn)(cbx_policy_run *run, int rc, void *ud);

/* The state of one call: caller-owned (embed it in the request), set up by cbx_policy_begin,
 * used by one thread at a time (cbx_policy_run_cancel excepted). The caller reads the public
 * fields; priv is the policy's. */
struct cbx_policy_run {
    uint64_t start_ns;            /* cbx_policy_begin's time on the policy's clock */
    uint64_t deadline_ns;         /* start + opts.deadline_ns; CBX_POLICY_NO_DEADLINE */
    uint32_t attempt;             /* attempts admitted so far: the current one's number */
    uint32_t attempts_run;        /* attempts ended with cbx_policy_attempt_end */
    uint64_t attempt_start_ns;    /* when the current attempt was admitted */
    uint64_t attempt_deadline_ns; /* when it times out: min(start + timeout, deadline) */
    cbx_outcome last_outcome;     /* of the last attempt ended, as judged; IGNORED before */
    /* Set once the call is over (after a DONE or USE_FALLBACK decision, or a refusal): */
    int done;
    cbx_policy_status status;
    int rc;                          /* as cbx_policy_result.rc */
    cbx_policy_decision decision;    /* DONE_SUCCESS, DONE_FAILED or USE_FALLBACK */
    cbx_breaker_rejection rejection; /* when the breaker refused */
    uint64_t refused_wait_ns;        /* rate limit refusal: time until a token */
    uint64_t rate_wait_ns;           /* admit's -EAGAIN: wait this long, then admit again */
    int cancel;                      /* see cbx_policy_run_cancel */
    struct {
        cbx_breaker *breaker;
        cbx_permit permit;
        int permit_held;
        int slot_held;
        int slot_rc;
        int rate_passed;
        int why;
        cbx_retry_state retry;
        cbx_bulkhead_waiter waiter;
        cbx_policy *policy;
        cbx_policy_slot_fn slot_fn;
        void *slot_ud;
        const char *no_retry_what; /* set by cbx_policy_run_no_retry; NULL = retry as usual */
        long long no_retry_code;
        char no_retry_line[192]; /* set by cbx_policy_run_no_retry_why */
        int breaker_verdict;     /* cbx_breaker_verdict for the next record */
    } priv;
};

/* Start a call at the clock's now: fill *run (no initialisation needed; nothing to free but
 * what cbx_policy_end releases) and record the call on the retry budget. */
void cbx_policy_begin(cbx_policy *p, cbx_policy_run *run);

/* Use b (borrowed; must outlive the run) instead of the policy's breaker for this call - the
 * breaker the runtime picked for the expanded key. NULL = no breaker for this call. Call it
 * after cbx_policy_begin and before the first cbx_policy_admit. */
void cbx_policy_run_use_breaker(cbx_policy_run *run, cbx_breaker *b);

/* Ask to start the next attempt (steps 1-4 at the top of the file). Never blocks. Returns:
 *   0             admitted: run->attempt is its number and run->attempt_deadline_ns its
 *                 deadline; the run holds a breaker permit and a bulkhead slot (when the
 *                 policy has them) until cbx_policy_attempt_end. Start the work.
 *   -EINPROGRESS  every bulkhead slot is taken and its queue may take this call: wait for a
 *                 slot (cbx_policy_wait_slot), then call cbx_policy_admit again. The rate
 *                 limit token is already taken and is not asked for twice.
 *   -EAGAIN       (rate_limit.wait) no token now, but one is reserved for this call
 *                 run->rate_wait_ns from now, within the wait cap and the deadline: wait that
 *                 long (on a timer: admit never blocks), then call cbx_policy_admit again,
 *                 which does not ask the limiter twice. A call given up meanwhile (cancelled)
 *                 leaves its token unused.
 *   a refusal     the call is over (run->done): CBX_ETIMEDOUT (deadline passed),
 *                 CBX_ECANCELLED, CBX_ERATE_LIMITED (run->refused_wait_ns says when a token
 *                 comes; with rate_limit.wait, it was further off than the cap or the deadline),
 * CBX_EBULKHEAD_FULL, CBX_EQUEUE_TIMEOUT, or the breaker's CBX_ECIRCUIT_OPEN / CBX_EHALF_OPEN_FULL
 * / CBX_EFORCED_OPEN (run->rejection). run->decision says whether to ask the fallback;
 * cbx_policy_explain says why. A refused attempt is not retried; a breaker refusal ends the call as
 * REJECTED even after earlier attempts. Calling admit on a run that is over returns run->rc. */
int cbx_policy_admit(cbx_policy *p, cbx_policy_run *run);

/* After admit returned -EINPROGRESS: queue for a bulkhead slot without blocking (see
 * cbx_bulkhead_enter_async; the wait is limited by bulkhead.queue_timeout and the deadline).
 * Returns 0 when a slot was free at once (call admit again now; cb is not called),
 * -EINPROGRESS when queued (cb(run, rc, ud) is called once, later, on whichever thread ends
 * the wait - forward it to the run's thread; arm a timer for cbx_bulkhead_expire on
 * cbx_policy_bulkhead(p) at run->priv.waiter.deadline_ns), CBX_EBULKHEAD_FULL when the queue
 * is full (call admit to end the call), or -EINVAL (no bulkhead, or cb NULL). */
int cbx_policy_wait_slot(cbx_policy *p, cbx_policy_run *run, cbx_policy_slot_fn cb, void *ud);

/* Withdraw a queued slot wait (cbx_bulkhead_cancel_wait). Returns 0 (withdrawn; cb will not be
 * called) or -ENOENT (the wait has ended; its callback has run or is about to). */
int cbx_policy_cancel_wait(cbx_policy *p, cbx_policy_run *run);

/* The admitted attempt ended with outcome k after latency_ns (< 0: measured here, from the
 * admission). retry_after_ns (0 = none) and quality (0..1; pass 1 when not scored) as in
 * cbx_attempt. Applies steps 6-9: the timeout, the quality threshold, the breaker record, the
 * bulkhead slot given back, then the retry decision. run->last_outcome is the outcome as
 * judged. Returns:
 *   CBX_POLICY_RETRY         *delay_ns is set: wait that long, then cbx_policy_admit;
 *   CBX_POLICY_DONE_SUCCESS  the output is good (pass it to cbx_policy_remember);
 *   CBX_POLICY_DONE_FAILED   over, no fallback to ask (or the call was cancelled);
 *   CBX_POLICY_USE_FALLBACK  over; ask cbx_policy_fallback_get.
 * After any but RETRY, run->done, run->status and run->rc are set. delay_ns may be NULL when
 * the caller does not retry (then a RETRY decision still tells it another attempt was due). */
cbx_policy_decision cbx_policy_attempt_end(cbx_policy *p, cbx_policy_run *run, cbx_outcome k,
                                           int64_t latency_ns, uint64_t retry_after_ns,
                                           double quality, uint64_t *delay_ns);

/* A breaker the caller holds outside the policy (a named breaker of the host-wide store, a
 * keyed one) refused the next attempt with rc (CBX_ECIRCUIT_OPEN, CBX_EHALF_OPEN_FULL or
 * CBX_EFORCED_OPEN; why may be NULL): end the call exactly as a refusal by the policy's own
 * breaker would - status REJECTED (also after earlier attempts), run->decision USE_FALLBACK
 * when the policy has a fallback. Returns rc (or run->rc when the run was already over). */
int cbx_policy_run_refuse(cbx_policy *p, cbx_policy_run *run, int rc,
                          const cbx_breaker_rejection *why);

/* The outcome as the policy judges it before any breaker counts it: a success scored under
 * the quality threshold is CBX_OUTCOME_QUALITY; anything else is k. p may be NULL (k). For
 * callers that record an attempt (or feed a breaker outside the policy) before
 * cbx_policy_attempt_end, so that every record agrees with the policy's judgement. */
cbx_outcome cbx_policy_judge(const cbx_policy *p, cbx_outcome k, double quality);

/* Whether a failed attempt with these outputs may be retried, by the result filters of the
 * policy's options (retry_on_status, retry_on_exit_code): 1 yes (or the outputs say nothing
 * the filters look at), 0 no. Borrowed outputs; NULL = 1. Pure: reads the options only. */
int cbx_policy_retry_allows(const cbx_policy *p, const json_t *outputs);

/* The attempt about to be ended must not be retried whatever its kind (a result filter said
 * so): the next cbx_policy_attempt_end of a failure ends the call as DONE_FAILED (or
 * USE_FALLBACK), and cbx_policy_explain names the result. code is the status or exit code
 * that decided it, for the explanation (what is "status" or "exit code"). */
void cbx_policy_run_no_retry(cbx_policy_run *run, const char *what, long long code);

/* As cbx_policy_run_no_retry, with the explanation given in full (copied, truncated to fit):
 * "retry.when said no". line NULL or "" = "the result is not retried". */
void cbx_policy_run_no_retry_why(cbx_policy_run *run, const char *line);

/* The attempt about to be ended is judged by a predicate of the caller's (breaker.count_when,
 * breaker.ignore_when): the next cbx_policy_attempt_end records it on the policy's breaker as
 * cbx_policy_breaker_kind(kind, v) says, instead of its kind (the breaker's own classify_fn
 * still sees the result). The retry decision is not affected. Used once, then reset. */
void cbx_policy_run_breaker_verdict(cbx_policy_run *run, cbx_breaker_verdict v);

/* The kind a breaker records for an attempt of kind k with verdict v: IGNORE gives
 * CBX_OUTCOME_IGNORED, SUCCESS CBX_OUTCOME_SUCCESS, FAILURE k when k is a failure (else
 * CBX_OUTCOME_CUSTOM), DEFAULT (or anything else) k. */
cbx_outcome cbx_policy_breaker_kind(cbx_outcome k, cbx_breaker_verdict v);

/* Finish the run: give back a breaker permit still held (as released, not recorded) and a
 * bulkhead slot still held. Call it once per cbx_policy_begin, whatever happened, after any
 * slot wait has ended or been withdrawn. Safe to call on a run that holds nothing. */
void cbx_policy_end(cbx_policy *p, cbx_policy_run *run);

/* Set the run's cancel flag (from any thread): the next admit refuses with CBX_ECANCELLED, the
 * next attempt_end makes no retry, and cbx_attempt_should_stop says 1. */
void cbx_policy_run_cancel(cbx_policy_run *run);

/* One line on why the run ended the way it did (or "" while it succeeded or is not over),
 * into buf; returns buf. */
const char *cbx_policy_explain(const cbx_policy *p, const cbx_policy_run *run, char *buf,
                               size_t len);

/* Ask the fallback for a substitute answer (cbx_fallback_get with key and input). Returns 0
 * with *out (a new reference, the caller's) and *source (if not NULL); CBX_ENO_FALLBACK when
 * the policy has no fallback or nothing answered; or the degraded function's code. */
int cbx_policy_fallback_get(cbx_policy *p, const char *key, const json_t *input, json_t **out,
                            cbx_fallback_source *source, cbx_err *err);

/* Remember a good output for key in the fallback cache (deep-copied). Returns 0 (also when the
 * policy has no fallback cache, or key or output is NULL: nothing to do), or -ENOMEM. */
int cbx_policy_remember(cbx_policy *p, const char *key, const json_t *output);

#ifdef __cplusplus
}
#endif
#endif
