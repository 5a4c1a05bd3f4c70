/* cbx/breaker.h - a thread-safe circuit breaker.
 *
 * A breaker guards calls to something that can fail. Before a call, take a permit with
 * cbx_breaker_acquire(); after it, report how it went with cbx_breaker_record(). While the
 * breaker is CLOSED every call is admitted and the trip rules watch the outcomes; when a rule
 * trips the breaker goes OPEN and refuses calls for a while; then it goes HALF_OPEN and admits
 * a few probe calls, each a lease with a deadline. Enough probe successes close it; a probe
 * failure (or a probe whose lease runs out without a report) opens it again, optionally for
 * longer each time.
 *
 * Trip rules (each optional, combinable: the first that holds trips the breaker):
 *   - consecutive failures: N failures in a row;
 *   - count window: failure rate, and/or slow-call rate, over the last N calls, once at least
 *     min_calls are in the window;
 *   - time window: failure rate, and/or slow-call rate, over the last length_ns of time (kept
 *     in buckets), once at least min_calls are in the window;
 *   - a predicate of the caller's (trip_fn), asked after the fixed rules.
 * Which outcomes count as failures is failure_kinds' call, or a classifier's (classify_fn).
 * A call is slow when its latency is at or above slow_call_ns, whatever its outcome. A success
 * with a quality score under quality_threshold counts as a QUALITY failure.
 *
 * Cost: on a CLOSED breaker, acquire is one atomic load and record is a handful of relaxed
 * atomic adds (plus the caller's classify_fn / trip_fn when set); neither allocates nor locks.
 * Transitions, half-open probes and rejections that ask for an explanation take an internal
 * mutex.
 *
 * Time comes from the cbx_clock in the options, so tests drive it with a virtual clock.
 * State changes are evaluated when the breaker is used (acquire, record, metrics), not by a
 * timer: an OPEN breaker whose time is up becomes HALF_OPEN at the next acquire.
 */
#ifndef CBX_BREAKER_H
#define CBX_BREAKER_H

#include <stddef.h>
#include <stdint.h>

#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/outcome.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_breaker cbx_breaker;

typedef enum cbx_breaker_state {
    CBX_BREAKER_CLOSED = 0,
    CBX_BREAKER_OPEN = 1,
    CBX_BREAKER_HALF_OPEN = 2,
} cbx_breaker_state;

/* Manual control. NORMAL runs the state machine; the others override it until changed. */
typedef enum cbx_breaker_mode {
    CBX_BREAKER_NORMAL = 0,
    CBX_BREAKER_FORCED_OPEN = 1,   /* refuse every call (CBX_EFORCED_OPEN) */
    CBX_BREAKER_FORCED_CLOSED = 2, /* admit every call; outcomes fill the windows; never trips */
    CBX_BREAKER_DISABLED = 3,      /* admit every call; only the metrics counters count */
    CBX_BREAKER_METRICS_ONLY = 4,  /* admit every call; rules are evaluated and a would-be trip is
                                      reported as a shadow event (then the windows restart), but
                                      the breaker never refuses anything */
} cbx_breaker_mode;

/* Why a transition happened (events) or why the breaker is open (rejections). */
#define CBX_BREAKER_REASON_MAP(X)                                                                  \
    X(NONE, "none")                                                                                \
    X(CONSECUTIVE_FAILURES, "consecutive_failures")                                                \
    X(COUNT_FAILURE_RATE, "count_window.failure_rate")                                             \
    X(COUNT_SLOW_RATE, "count_window.slow_rate")                                                   \
    X(TIME_FAILURE_RATE, "time_window.failure_rate")                                               \
    X(TIME_SLOW_RATE, "time_window.slow_rate")                                                     \
    X(OPEN_ELAPSED, "open_elapsed")                                                                \
    X(PROBE_FAILED, "probe_failed")                                                                \
    X(PROBE_EXPIRED, "probe_lease_expired")                                                        \
    X(PROBES_SUCCEEDED, "probes_succeeded")                                                        \
    X(MANUAL, "manual")                                                                            \
    X(INITIAL, "initial_state")                                                                    \
    X(HALF_OPEN_ELAPSED, "half_open_elapsed")                                                      \
    X(PROBE_FAILURE_RATE, "half_open.failure_rate")                                                \
    X(PROBE_SLOW_RATE, "half_open.slow_rate")                                                      \
    X(PREDICATE, "trip_predicate")

typedef enum cbx_breaker_reason {
#define CBX__BREAKER_REASON_ENUM(name, str) CBX_BREAKER_REASON_##name,
    CBX_BREAKER_REASON_MAP(CBX__BREAKER_REASON_ENUM)
#undef CBX__BREAKER_REASON_ENUM
} cbx_breaker_reason;

/* A state change, passed to cbx_breaker_opts.on_event. Valid only during the callback. */
typedef struct cbx_breaker_event {
    const char *name; /* the breaker's name */
    cbx_breaker_state from, to;
    cbx_breaker_mode mode;     /* the mode after the change */
    cbx_breaker_reason reason; /* the rule or cause */
    uint64_t at_ns;            /* clock time of the change */
    uint64_t open_for_ns;      /* when to is OPEN: how long it stays open */
    int shadow;                /* 1: METRICS_ONLY would have opened; the state did not change */
} cbx_breaker_event;

/* Called after the breaker's lock is released, on the thread whose call caused the change.
 * It may call cbx_breaker_metrics_get but must not free the breaker. */
typedef void (*cbx_breaker_event_fn)(const cbx_breaker_event *ev, void *ud);

/* How HALF_OPEN decides between closing and re-opening (cbx_breaker_opts.half_open_judge). */
typedef enum cbx_breaker_judge {
    /* The first failing probe re-opens; close_after probe successes close. */
    CBX_BREAKER_JUDGE_FIRST_FAILURE = 0,
    /* resilience4j's permittedNumberOfCallsInHalfOpenState: close_after probes (0 =
     * half_open_probes) are admitted and all report; then their failure rate and slow-call
     * rate decide: at or above a threshold re-opens, else the breaker closes. */
    CBX_BREAKER_JUDGE_RATE = 1,
} cbx_breaker_judge;

/* What cbx_breaker_opts.open_fn is told about the trip it times. */
typedef struct cbx_breaker_open_info {
    cbx_breaker_reason reason;     /* why the breaker is opening */
    uint32_t consecutive_failures; /* the run of failures at a consecutive-failures trip */
    uint32_t window_calls;         /* the tripping window's totals (or the probes' for the */
    uint32_t window_failures;      /* half-open rates); 0 for other reasons */
    uint32_t window_slow;
    uint32_t reopens;        /* re-opens since the breaker last closed, this one included (0 for
                                a trip from CLOSED): Polly's half-open attempt count */
    uint64_t open_ns;        /* what open_ns, open_multiplier and open_max_ns give */
    uint64_t retry_after_ns; /* the Retry-After of the report that caused it; 0 = none */
} cbx_breaker_open_info;

/* Polly v8's BreakDurationGenerator: returns how long the breaker stays OPEN for this trip, in
 * ns (0 = half-open at the next use; UINT64_MAX = until changed by hand). Called with the
 * breaker's lock held, on the thread whose report or acquire caused the trip: it must not call
 * into this breaker. The Retry-After rule applies to its answer. */
typedef uint64_t (*cbx_breaker_open_fn)(const cbx_breaker_open_info *info, void *ud);

struct cbx_breaker_report;

/* What cbx_breaker_opts.classify_fn says an outcome is. */
typedef enum cbx_breaker_verdict {
    CBX_BREAKER_VERDICT_DEFAULT = 0, /* as the fixed rules say (failure_kinds) */
    CBX_BREAKER_VERDICT_FAILURE = 1, /* a failure, whatever its kind (a success or an ignored
                                        outcome is recorded as CBX_OUTCOME_CUSTOM) */
    CBX_BREAKER_VERDICT_SUCCESS = 2, /* a success (recorded as CBX_OUTCOME_SUCCESS) */
    CBX_BREAKER_VERDICT_IGNORE = 3,  /* neither (recorded as CBX_OUTCOME_IGNORED): resilience4j's
                                        ignoreExceptions, Polly's ShouldHandle returning false */
} cbx_breaker_verdict;

/* resilience4j's recordException / ignoreExceptions predicates, Polly's ShouldHandle: judges
 * each reported outcome. r is the report (for cbx_breaker_record, one with only kind and
 * latency_ns), kind the outcome after the quality rule. Runs on the recording thread, without
 * the lock on a CLOSED breaker and with it for a probe: it must be quick and must not call
 * into this breaker. Not asked for cbx_breaker_release. */
typedef cbx_breaker_verdict (*cbx_breaker_classify_fn)(const struct cbx_breaker_report *r,
                                                       cbx_outcome kind, void *ud);

/* What cbx_breaker_opts.trip_fn is told: the outcome just counted and the counters after it. */
typedef struct cbx_breaker_counts {
    int failed, slow;                                 /* the outcome just counted */
    uint32_t consecutive_failures;                    /* the run of failures, this one included */
    uint32_t count_calls, count_failures, count_slow; /* the count window (0s when none) */
    uint32_t time_calls, time_failures, time_slow;    /* the time window (0s when none) */
} cbx_breaker_counts;

/* A trip rule of the caller's beside the fixed ones (gobreaker's ReadyToTrip): asked on a
 * CLOSED breaker after each success or failure that the fixed rules did not trip on; nonzero
 * trips it with reason trip_predicate. Runs on the recording thread without the lock (several
 * threads may call it at once) and must not call into this breaker. */
typedef int (*cbx_breaker_trip_fn)(const cbx_breaker_counts *c, void *ud);

/* Upper bound of cbx_breaker_opts.half_open_probes. */
#define CBX_BREAKER_MAX_PROBES 64

typedef struct cbx_breaker_opts {
    const char *name; /* copied; shown in events and explanations; NULL = "breaker" */
    cbx_clock *clock; /* borrowed, must outlive the breaker; NULL = monotonic clock */

    uint32_t consecutive_failures; /* trip after this many failures in a row; 0 = rule off */

    struct {
        uint32_t calls;      /* window size in calls; 0 = rule off; at most 65536 */
        uint32_t min_calls;  /* rates are judged once this many calls are in the window
                                (0 = the window size) */
        double failure_rate; /* trip when failures/calls >= this (0 < r <= 1); 0 = off */
        double slow_rate;    /* trip when slow/calls >= this (0 < r <= 1); 0 = off */
    } count_window;

    struct {
        uint64_t length_ns;  /* window length; 0 = rule off */
        uint32_t buckets;    /* resolution; 0 = 10; at most 3600 */
        uint32_t min_calls;  /* rates are judged once this many calls are in the window (0 = 1) */
        double failure_rate; /* as in count_window */
        double slow_rate;
    } time_window;

    uint64_t slow_call_ns;    /* latency at or above this makes a call slow; 0 = none are */
    double quality_threshold; /* 0..1; a success scored under it is a QUALITY failure; 0 = off */
    uint32_t failure_kinds;   /* CBX_OUTCOME_BIT mask of kinds that count as failures;
                                 0 = CBX_OUTCOME_FAILURES. Other failure kinds count as ignored. */

    uint64_t open_ns;          /* how long OPEN lasts before probing; 0 = 60 s; UINT64_MAX =
                                  until closed by hand (open times saturate, never wrap) */
    double open_multiplier;    /* each re-open from HALF_OPEN multiplies the open time; 0 = 1 */
    uint64_t open_max_ns;      /* cap on the grown open time; 0 = no cap */
    uint32_t half_open_probes; /* probes admitted at once in HALF_OPEN; 0 = 1; at most 64 */
    uint32_t close_after;      /* probe successes needed to close; 0 = half_open_probes */
    uint64_t probe_lease_ns;   /* a probe unreported after this counts as failed; 0 = 30 s */

    cbx_breaker_event_fn on_event; /* may be NULL */
    void *event_ud;

    /* Where a new breaker starts (resilience4j's transitionTo*State at start, Polly's manual
     * control isolating from the first call). initial_mode: NORMAL (default) or any mode, as
     * cbx_breaker_set_mode would give it. initial_state applies to NORMAL only (with another
     * mode leave it CLOSED): CLOSED (default); OPEN = open for open_ns from creation, reason
     * initial_state, then HALF_OPEN as after a trip; HALF_OPEN = probing from the start. */
    cbx_breaker_state initial_state;
    cbx_breaker_mode initial_mode;

    /* The longest HALF_OPEN may last (resilience4j maxWaitDurationInHalfOpenState): a
     * HALF_OPEN breaker that has not closed this long after it half-opened re-opens (reason
     * half_open_elapsed, a re-open like a failed probe), probes or not. Noticed at the next
     * use, dated at the limit. 0 = no limit. */
    uint64_t half_open_max_ns;
    cbx_breaker_judge half_open_judge; /* 0 = CBX_BREAKER_JUDGE_FIRST_FAILURE */
    /* JUDGE_RATE thresholds over the probes, in (0, 1]. 0 = the window's rate (count_window
     * first, else time_window); a slow rate with none anywhere is off. At least one of the two
     * must be set somewhere. */
    double half_open_failure_rate;
    double half_open_slow_rate;

    /* The open time of each trip from a function (see cbx_breaker_open_fn) instead of
     * open_ns / open_multiplier / open_max_ns; NULL = those. open_ud is borrowed. */
    cbx_breaker_open_fn open_fn;
    void *open_ud;

    /* Predicates of the caller's beside the fixed rules (see the types); NULL = none. The user
     * data is borrowed. */
    cbx_breaker_classify_fn classify_fn;
    void *classify_ud;
    cbx_breaker_trip_fn trip_fn;
    void *trip_ud;
} cbx_breaker_opts;

/* What acquire gives back. Pass it unchanged to cbx_breaker_record (or _release).
 * rc is 0 when the call may go ahead, else CBX_ECIRCUIT_OPEN, CBX_EHALF_OPEN_FULL or
 * CBX_EFORCED_OPEN, and the call must not be made (and not recorded). */
typedef struct cbx_permit {
    int rc;
    uint32_t gen;   /* internal: the state generation that admitted the call */
    uint32_t lease; /* internal: probe lease serial, 0 when not a probe */
    uint16_t slot;  /* internal: probe slot + 1, 0 when not a probe */
    uint8_t state;  /* cbx_breaker_state at the decision */
    uint8_t mode;   /* cbx_breaker_mode at the decision */
} cbx_permit;

/* Why an acquire was refused. */
typedef struct cbx_breaker_rejection {
    int rc; /* the permit's rc */
    cbx_breaker_state state;
    cbx_breaker_mode mode;
    cbx_breaker_reason reason;     /* the rule that opened the breaker */
    uint32_t consecutive_failures; /* at the trip */
    uint32_t window_calls;         /* calls in the tripping rule's window at the trip */
    uint32_t window_failures;      /* failures in it */
    uint32_t window_slow;          /* slow calls in it */
    uint32_t reopens;              /* re-opens since the breaker last closed */
    uint32_t probes_in_flight;     /* HALF_OPEN: probe leases outstanding */
    uint64_t retry_in_ns;          /* time until a probe can be admitted; 0 = unknown/forced */
} cbx_breaker_rejection;

/* A snapshot of the breaker. Counters are cumulative since creation (reset keeps them). */
typedef struct cbx_breaker_metrics {
    cbx_breaker_state state;
    cbx_breaker_mode mode;
    uint64_t time_in_state_ns;
    uint64_t calls; /* admitted calls with an outcome: successes + failures + ignored */
    uint64_t successes;
    uint64_t failures; /* all failure kinds, including expired probe leases (as timeouts) */
    uint64_t by_kind[CBX_OUTCOME__COUNT]; /* every recorded outcome by kind */
    uint64_t ignored;
    uint64_t rejections; /* refused acquires */
    uint64_t slow_calls;
    uint64_t expired_probes; /* probe leases that ran out */
    uint64_t late_results;   /* reports for a probe lease that had already expired (and was
                                counted as a timeout then); they count nowhere else. The
                                breaker remembers the last 256 leases; a report for an older
                                expired lease counts as an ordinary stale report. */
    uint64_t opens;          /* transitions into OPEN */
    uint32_t consecutive_failures;
    uint32_t probes_in_flight;
    uint32_t reopens;       /* re-opens since last closed */
    double success_rate;    /* successes / (successes + failures); 1 when there are none */
    uint64_t latency_count; /* calls recorded with a latency */
    double latency_mean_ns;
    uint64_t latency_p50_ns, latency_p95_ns, latency_p99_ns; /* within 1/16 (6.25 %) */
} cbx_breaker_metrics;

/* Defaults: consecutive_failures 5, everything else as documented for 0. */
void cbx_breaker_opts_default(cbx_breaker_opts *o);

/* Create a breaker. Returns 0 and *out (free with cbx_breaker_free), or CBX_EINVAL_CONFIG
 * (err->where names the field, e.g. "count_window.failure_rate") or -ENOMEM. A breaker with no
 * rule at all is valid: it never trips, but still counts and can be forced open. */
int cbx_breaker_new(cbx_breaker **out, const cbx_breaker_opts *o, cbx_err *err);

/* Release a breaker. NULL is accepted. No other thread may be using it. */
void cbx_breaker_free(cbx_breaker *b);

/* Ask to make a call. Never blocks; allocation-free; lock-free when CLOSED. */
cbx_permit cbx_breaker_acquire(cbx_breaker *b);

/* As cbx_breaker_acquire; when refused and why is not NULL, *why explains the refusal. */
cbx_permit cbx_breaker_acquire_ex(cbx_breaker *b, cbx_breaker_rejection *why);

/* Report how an admitted call went. latency_ns < 0 means unknown (not counted in latency
 * statistics, never slow). A permit with rc != 0 is ignored. Each admitted permit must be
 * recorded or released exactly once. */
void cbx_breaker_record(cbx_breaker *b, cbx_permit p, cbx_outcome kind, int64_t latency_ns);

/* As cbx_breaker_record, with a quality score 0..1 for a success (seed 003): under the
 * breaker's quality_threshold the success counts as CBX_OUTCOME_QUALITY. Returns the kind
 * that was recorded. */
cbx_outcome cbx_breaker_record_quality(cbx_breaker *b, cbx_permit p, cbx_outcome kind,
                                       int64_t latency_ns, double quality);

/* A report with everything the breaker can be told about a call (cbx_breaker_record_ex). */
typedef struct cbx_breaker_report {
    cbx_outcome kind;
    int64_t latency_ns; /* < 0 = unknown, as in cbx_breaker_record */
    int has_quality;    /* 1: quality is a score to judge against quality_threshold */
    double quality;     /* 0..1 */
    /* The callee asked not to be called for this long (an HTTP Retry-After, a 429's reset):
     * when this report trips the breaker (or re-opens it from HALF_OPEN), the breaker stays
     * open for max(open time, retry_after_ns), the Retry-After capped by open_max_ns when
     * that is set. Ignored on a report that trips nothing. 0 = none. */
    uint64_t retry_after_ns;
    const void *data; /* anything for classify_fn to look at (a status code, a body); borrowed */
} cbx_breaker_report;

/* As cbx_breaker_record, with the fields of *r (borrowed for the call). Returns the kind that
 * was recorded (after the quality rule and classify_fn). Lock-free and allocation-free on a CLOSED
 * breaker, as cbx_breaker_record. */
cbx_outcome cbx_breaker_record_ex(cbx_breaker *b, cbx_permit p, const cbx_breaker_report *r);

/* Give back a permit without an outcome (the call was never made): counts as ignored. */
void cbx_breaker_release(cbx_breaker *b, cbx_permit p);

/* Current state and mode, after applying any transition that is due (open time elapsed,
 * probe lease expired). */
cbx_breaker_state cbx_breaker_state_now(cbx_breaker *b);
cbx_breaker_mode cbx_breaker_mode_now(cbx_breaker *b);

/* Switch mode. Returning to NORMAL (from any mode) starts CLOSED with empty windows. */
void cbx_breaker_set_mode(cbx_breaker *b, cbx_breaker_mode mode);

/* Convenience: set_mode(FORCED_OPEN) / set_mode(FORCED_CLOSED). */
void cbx_breaker_force_open(cbx_breaker *b);
void cbx_breaker_force_closed(cbx_breaker *b);

/* Open by hand for open_ns nanoseconds from now (_for), or until the clock reads until_ns
 * (_until). Unlike FORCED_OPEN this is an ordinary OPEN in NORMAL mode, with reason manual:
 * calls are refused with CBX_ECIRCUIT_OPEN (explained as "opened by hand") and when the time
 * is up the breaker goes HALF_OPEN as after a trip, dated at that time. From any mode; like a
 * mode change it empties the windows, cancels probes and forgets re-open growth, and emits an
 * event (to OPEN, reason manual, open_for_ns the time left). UINT64_MAX (or a time past the
 * clock's range) = until changed by hand; a time already past half-opens at the next use. */
void cbx_breaker_force_open_for(cbx_breaker *b, uint64_t open_ns);
void cbx_breaker_force_open_until(cbx_breaker *b, uint64_t until_ns);

/* Back to NORMAL and CLOSED with empty windows, no consecutive failures and no re-open
 * growth. Cumulative metrics counters are kept. */
void cbx_breaker_reset(cbx_breaker *b);

/* Fill *out with a snapshot (consistent per counter, not across counters while other
 * threads record). */
void cbx_breaker_metrics_get(cbx_breaker *b, cbx_breaker_metrics *out);

/* The breaker's name (owned by the breaker). */
const char *cbx_breaker_name(const cbx_breaker *b);

/* Names: "closed", "open", "half_open"; "normal", "forced_open", "forced_closed", "disabled",
 * "metrics_only"; and the reason strings of CBX_BREAKER_REASON_MAP. Static strings. */
const char *cbx_breaker_state_name(cbx_breaker_state s);
const char *cbx_breaker_mode_name(cbx_breaker_mode m);
const char *cbx_breaker_reason_name(cbx_breaker_reason r);

/* One readable line for a refusal, e.g.
 * "breaker 'db' is open: 5 consecutive failures; next probe in 2.5s". Returns buf. */
const char *cbx_breaker_explain(const cbx_breaker *b, const cbx_breaker_rejection *why, char *buf,
                                size_t len);

/* --- Synchronous convenience (seed 003 cb.call) ---------------------------------------- */

/* The protected function: does the work, says how it went. It may set *quality (0..1) to
 * have the result judged against quality_threshold; it starts at 1. */
typedef cbx_outcome (*cbx_breaker_fn)(void *ud, double *quality);

/* The fallback: called when the breaker refused (rc is the refusal code) or when the call
 * failed (rc CBX_EFAILED). Returns 0 if it produced an answer. */
typedef int (*cbx_breaker_fallback_fn)(void *ud, int rc);

typedef struct cbx_breaker_call_result {
    int rc;              /* 0: fn succeeded; else the refusal code or CBX_EFAILED */
    cbx_outcome outcome; /* what was recorded (IGNORED when refused) */
    int used_fallback;   /* 1 when the fallback produced the answer */
    int64_t latency_ns;  /* of fn, measured on the breaker's clock; -1 when refused */
    double quality;
    cbx_breaker_rejection why; /* filled when refused */
} cbx_breaker_call_result;

/* Acquire, run fn, record the outcome with its latency and quality, and on refusal or
 * failure run fallback (may be NULL). Returns res->rc when the fallback did not answer, else
 * 0. fn runs on the calling thread; nothing here interrupts it (see cbx_policy for timeouts). */
int cbx_breaker_call(cbx_breaker *b, cbx_breaker_fn fn, void *ud, cbx_breaker_fallback_fn fallback,
                     void *fallback_ud, cbx_breaker_call_result *res);

#ifdef __cplusplus
}
#endif
#endif
