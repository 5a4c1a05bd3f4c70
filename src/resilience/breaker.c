/* The circuit breaker's state machine.
 *
 * The whole state a caller needs for a decision is one atomic word: generation, mode and
 * state. A CLOSED, NORMAL breaker admits with one load and records with relaxed atomic adds.
 * Everything else — transitions, half-open probe leases, explained rejections — happens under
 * `mu`, and every change of the word bumps the generation, so an outcome reported for a
 * permit of an earlier generation can be told apart and kept out of the current windows.
 */
#include "cbx/breaker.h"

#include "resilience/breaker_internal.h"
#include "resilience/breaker_window.h"
#include "resilience/latency_hist.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Events raised under the lock, delivered after it is released. */
typedef struct event_batch {
    int n;
    cbx_breaker_event ev[MAX_EVENTS];
} event_batch;

static void flush_events(cbx_breaker *b, event_batch *eb)
{
    for (int i = 0; i < eb->n; i++)
        b->on_event(&eb->ev[i], b->event_ud);
    eb->n = 0;
}

static void push_event(cbx_breaker *b, event_batch *eb, cbx_breaker_state from,
                       cbx_breaker_state to, cbx_breaker_mode mode, cbx_breaker_reason reason,
                       uint64_t now, uint64_t open_for, int shadow)
{
    if (!b->on_event || eb->n == MAX_EVENTS)
        return;
    eb->ev[eb->n++] = (cbx_breaker_event){.name = b->name,
                                          .from = from,
                                          .to = to,
                                          .mode = mode,
                                          .reason = reason,
                                          .at_ns = now,
                                          .open_for_ns = open_for,
                                          .shadow = shadow};
}

static void unlock_and_flush(cbx_breaker *b, event_batch *eb)
{
    pthread_mutex_unlock(&b->mu);
    flush_events(b, eb);
}

/* ---- configuration ----------------------------------------------------------------- */

void cbx_breaker_opts_default(cbx_breaker_opts *o)
{
    memset(o, 0, sizeof *o);
    o->consecutive_failures = 5;
}

static int bad(cbx_err *err, const char *field, const char *why)
{
    return cbx_err_set_at(err, CBX_EINVAL_CONFIG, field, 0, 0, "breaker: %s %s", field, why);
}

static int rate_ok(double r)
{
    return r == 0 || (r > 0 && r <= 1); /* false for NaN */
}

static uint32_t to_ppm(double r)
{
    return (uint32_t)llround(r * PPM);
}

/* The JUDGE_RATE threshold: its own, else the count window's, else the time window's. */
static double probe_rate(const cbx_breaker_opts *o, int slow)
{
    double own = slow ? o->half_open_slow_rate : o->half_open_failure_rate;
    double cw = slow ? o->count_window.slow_rate : o->count_window.failure_rate;
    double tw = slow ? o->time_window.slow_rate : o->time_window.failure_rate;
    return own ? own : cw ? cw : tw;
}

static int validate(const cbx_breaker_opts *o, cbx_err *err)
{
    if (o->count_window.calls > 65536)
        return bad(err, "count_window.calls", "must be at most 65536");
    if (!rate_ok(o->count_window.failure_rate))
        return bad(err, "count_window.failure_rate", "must be in (0, 1], or 0 for off");
    if (!rate_ok(o->count_window.slow_rate))
        return bad(err, "count_window.slow_rate", "must be in (0, 1], or 0 for off");
    if (o->count_window.calls == 0 && (o->count_window.failure_rate || o->count_window.slow_rate))
        return bad(err, "count_window.calls", "must be set when a count_window rate is");
    if (o->count_window.min_calls > o->count_window.calls)
        return bad(err, "count_window.min_calls", "must not exceed count_window.calls");
    if (o->time_window.buckets > 3600)
        return bad(err, "time_window.buckets", "must be at most 3600");
    if (!rate_ok(o->time_window.failure_rate))
        return bad(err, "time_window.failure_rate", "must be in (0, 1], or 0 for off");
    if (!rate_ok(o->time_window.slow_rate))
        return bad(err, "time_window.slow_rate", "must be in (0, 1], or 0 for off");
    uint32_t buckets = o->time_window.buckets ? o->time_window.buckets : 10;
    if (o->time_window.length_ns == 0 && (o->time_window.failure_rate || o->time_window.slow_rate))
        return bad(err, "time_window.length_ns", "must be set when a time_window rate is");
    if (o->time_window.length_ns && o->time_window.length_ns < buckets * CBX_NS_PER_US)
        return bad(err, "time_window.length_ns", "must give buckets of at least 1us");
    if ((o->count_window.slow_rate || o->time_window.slow_rate) && o->slow_call_ns == 0)
        return bad(err, "slow_call_ns", "must be set when a slow_rate is");
    if (!(o->quality_threshold >= 0 && o->quality_threshold <= 1))
        return bad(err, "quality_threshold", "must be in [0, 1]");
    if (o->failure_kinds & ~(uint32_t)CBX_OUTCOME_FAILURES)
        return bad(err, "failure_kinds", "may hold only failure kinds");
    if (o->open_multiplier != 0 && !(o->open_multiplier >= 1 && isfinite(o->open_multiplier)))
        return bad(err, "open_multiplier", "must be at least 1");
    uint64_t open_ns = o->open_ns ? o->open_ns : 60 * CBX_NS_PER_S;
    if (o->open_max_ns && o->open_max_ns < open_ns)
        return bad(err, "open_max_ns", "must not be less than open_ns");
    if (o->half_open_probes > CBX_BREAKER_MAX_PROBES)
        return bad(err, "half_open_probes", "must be at most 64");
    if ((unsigned)o->half_open_judge > CBX_BREAKER_JUDGE_RATE)
        return bad(err, "half_open_judge", "is not a judge");
    if (!rate_ok(o->half_open_failure_rate))
        return bad(err, "half_open_failure_rate", "must be in (0, 1], or 0 for the window's");
    if (!rate_ok(o->half_open_slow_rate))
        return bad(err, "half_open_slow_rate", "must be in (0, 1], or 0 for the window's");
    if (o->half_open_slow_rate && o->slow_call_ns == 0)
        return bad(err, "slow_call_ns", "must be set when a slow_rate is");
    if (o->half_open_judge == CBX_BREAKER_JUDGE_RATE && !probe_rate(o, 0) && !probe_rate(o, 1))
        return bad(err, "half_open_failure_rate",
                   "must be set (here or in a window) when half_open_judge is rate");
    if ((unsigned)o->initial_mode > CBX_BREAKER_METRICS_ONLY)
        return bad(err, "initial_mode", "is not a mode");
    if ((unsigned)o->initial_state > CBX_BREAKER_HALF_OPEN)
        return bad(err, "initial_state", "is not a state");
    if (o->initial_mode != CBX_BREAKER_NORMAL && o->initial_state != CBX_BREAKER_CLOSED)
        return bad(err, "initial_state", "must be closed unless initial_mode is normal");
    return 0;
}

static uint64_t add_sat(uint64_t now, uint64_t d);

/* The initial word: a mode as set_mode gives it, or NORMAL in the given state. */
static void start_in(cbx_breaker *b, cbx_breaker_mode mode, cbx_breaker_state state)
{
    if (mode == CBX_BREAKER_FORCED_OPEN) {
        state = CBX_BREAKER_OPEN;
        b->trip.reason = CBX_BREAKER_REASON_MANUAL;
    } else if (state == CBX_BREAKER_OPEN) {
        b->trip.reason = CBX_BREAKER_REASON_INITIAL;
        atomic_store(&b->open_until_ns, add_sat(b->state_since_ns, b->open_ns));
    }
    atomic_store(&b->word, W_MAKE(1, mode, state));
}

int cbx_breaker_new(cbx_breaker **out, const cbx_breaker_opts *o, cbx_err *err)
{
    *out = NULL;
    cbx_breaker_opts def;
    if (!o) {
        cbx_breaker_opts_default(&def);
        o = &def;
    }
    int r = validate(o, err);
    if (r)
        return r;
    cbx_breaker *b = aligned_alloc(64, (sizeof *b + 63) & ~(size_t)63);
    if (!b)
        return cbx_err_set(err, -ENOMEM, "breaker: out of memory");
    memset(b, 0, sizeof *b);
    b->name = strdup(o->name ? o->name : "breaker");
    r = pthread_mutex_init(&b->mu, NULL);
    if (r) {
        free(b->name);
        free(b);
        return cbx_err_set(err, -r, "breaker: mutex: %s", strerror(r));
    }
    if (!b->name || cbx__count_window_init(&b->cw, o->count_window.calls) ||
        cbx__time_window_init(&b->tw, o->time_window.length_ns,
                              o->time_window.length_ns
                                  ? (o->time_window.buckets ? o->time_window.buckets : 10)
                                  : 0)) {
        cbx_breaker_free(b);
        return cbx_err_set(err, -ENOMEM, "breaker: out of memory");
    }
    b->clock = o->clock;
    b->consecutive_limit = o->consecutive_failures;
    b->failure_mask = o->failure_kinds ? o->failure_kinds : CBX_OUTCOME_FAILURES;
    b->slow_call_ns = o->slow_call_ns;
    b->quality_threshold = o->quality_threshold;
    b->has_count_window = o->count_window.calls > 0;
    b->cw_min_calls = o->count_window.min_calls ? o->count_window.min_calls : o->count_window.calls;
    b->cw_fail_ppm = to_ppm(o->count_window.failure_rate);
    b->cw_slow_ppm = to_ppm(o->count_window.slow_rate);
    b->has_time_window = o->time_window.length_ns > 0;
    b->tw_min_calls = o->time_window.min_calls ? o->time_window.min_calls : 1;
    b->tw_fail_ppm = to_ppm(o->time_window.failure_rate);
    b->tw_slow_ppm = to_ppm(o->time_window.slow_rate);
    b->open_ns = o->open_ns ? o->open_ns : 60 * CBX_NS_PER_S;
    b->open_multiplier = o->open_multiplier ? o->open_multiplier : 1.0;
    b->open_max_ns = o->open_max_ns;
    b->max_probes = o->half_open_probes ? o->half_open_probes : 1;
    b->close_after = o->close_after ? o->close_after : b->max_probes;
    b->probe_lease_ns = o->probe_lease_ns ? o->probe_lease_ns : 30 * CBX_NS_PER_S;
    b->half_open_max_ns = o->half_open_max_ns;
    b->judge_rate = o->half_open_judge == CBX_BREAKER_JUDGE_RATE;
    b->ho_fail_ppm = to_ppm(probe_rate(o, 0));
    b->ho_slow_ppm = to_ppm(probe_rate(o, 1));
    b->on_event = o->on_event;
    b->event_ud = o->event_ud;
    b->open_fn = o->open_fn;
    b->open_ud = o->open_ud;
    b->classify_fn = o->classify_fn;
    b->classify_ud = o->classify_ud;
    b->trip_fn = o->trip_fn;
    b->trip_ud = o->trip_ud;
    b->state_since_ns = cbx_clock_now_ns(b->clock);
    start_in(b, o->initial_mode, o->initial_state);
    *out = b;
    return 0;
}

void cbx_breaker_free(cbx_breaker *b)
{
    if (!b)
        return;
    cbx__count_window_destroy(&b->cw);
    cbx__time_window_destroy(&b->tw); /* harmless on the zeroed window of a half-built breaker */
    pthread_mutex_destroy(&b->mu);
    free(b->name);
    free(b);
}

const char *cbx_breaker_name(const cbx_breaker *b)
{
    return b->name;
}

cbx_clock *cbx__breaker_clock(const cbx_breaker *b)
{
    return b->clock;
}

/* ---- transitions (all under mu) ---------------------------------------------------- */

static uint64_t now_ns(cbx_breaker *b)
{
    return cbx_clock_now_ns(b->clock);
}

static void publish(cbx_breaker *b, cbx_breaker_mode mode, cbx_breaker_state state, uint64_t now)
{
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    atomic_store_explicit(&b->word, W_MAKE(W_GEN(w) + 1, mode, state), memory_order_release);
    b->state_since_ns = now;
}

static void clear_windows(cbx_breaker *b)
{
    atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
    if (b->has_count_window)
        cbx__count_window_reset(&b->cw);
    if (b->has_time_window)
        cbx__time_window_reset(&b->tw);
}

static void clear_probes(cbx_breaker *b)
{
    memset(b->probes, 0, sizeof b->probes);
    b->probes_in_flight = 0;
    b->probe_successes = 0;
    b->probe_tally = (cbx__win_totals){0, 0, 0};
}

/* The open time after `reopens` re-openings: open_ns grown by open_multiplier each time, capped
 * by open_max_ns, saturating at UINT64_MAX ("open until closed by hand"); never shorter than the
 * time before it. */
static uint64_t open_duration(cbx_breaker *b)
{
    if (b->reopens == 0 || !(b->open_multiplier > 1))
        return b->open_ns;
    uint64_t cap = b->open_max_ns ? b->open_max_ns : UINT64_MAX;
    double d = (double)b->open_ns;
    for (uint32_t i = 0; i < b->reopens; i++) {
        d *= b->open_multiplier;
        if (!(d < (double)cap)) /* (double)UINT64_MAX rounds up to 2^64: no overflow below */
            return cap;
    }
    uint64_t v = (uint64_t)d;
    return v < b->open_ns ? b->open_ns : v;
}

/* now + d, saturating: an open time past the clock's range never ends by itself. */
static uint64_t add_sat(uint64_t now, uint64_t d)
{
    return d > UINT64_MAX - now ? UINT64_MAX : now + d;
}

/* The open time for a trip: open_fn's answer, else the grown open_ns; then at least the
 * report's Retry-After (itself capped by open_max_ns when that is set). */
static uint64_t open_time(cbx_breaker *b, const trip_info *t, uint64_t retry_after)
{
    uint64_t d = open_duration(b);
    if (b->open_fn) {
        cbx_breaker_open_info info = {.reason = t->reason,
                                      .consecutive_failures = t->consecutive,
                                      .window_calls = t->window.calls,
                                      .window_failures = t->window.failures,
                                      .window_slow = t->window.slow,
                                      .reopens = b->reopens,
                                      .open_ns = d,
                                      .retry_after_ns = retry_after};
        d = b->open_fn(&info, b->open_ud);
    }
    if (b->open_max_ns && retry_after > b->open_max_ns)
        retry_after = b->open_max_ns;
    return retry_after > d ? retry_after : d;
}

/* CLOSED or HALF_OPEN -> OPEN, for the trip recorded in b->trip. */
static void to_open(cbx_breaker *b, cbx_breaker_reason reason, uint64_t now, event_batch *eb,
                    uint64_t retry_after)
{
    cbx_breaker_state from = W_STATE(atomic_load_explicit(&b->word, memory_order_relaxed));
    if (from == CBX_BREAKER_HALF_OPEN)
        b->reopens++;
    uint64_t open_for = open_time(b, &b->trip, retry_after);
    clear_probes(b);
    atomic_store_explicit(&b->open_until_ns, add_sat(now, open_for), memory_order_relaxed);
    atomic_fetch_add_explicit(&b->opens, 1, memory_order_relaxed);
    publish(b, CBX_BREAKER_NORMAL, CBX_BREAKER_OPEN, now);
    push_event(b, eb, from, CBX_BREAKER_OPEN, CBX_BREAKER_NORMAL, reason, now, open_for, 0);
}

/* Noticed lazily, but dated when the open time actually ended. */
static void to_half_open(cbx_breaker *b, event_batch *eb)
{
    uint64_t at = atomic_load_explicit(&b->open_until_ns, memory_order_relaxed);
    clear_probes(b);
    publish(b, CBX_BREAKER_NORMAL, CBX_BREAKER_HALF_OPEN, at);
    push_event(b, eb, CBX_BREAKER_OPEN, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_NORMAL,
               CBX_BREAKER_REASON_OPEN_ELAPSED, at, 0, 0);
}

static void to_closed(cbx_breaker *b, uint64_t now, event_batch *eb)
{
    clear_probes(b);
    clear_windows(b);
    b->reopens = 0;
    publish(b, CBX_BREAKER_NORMAL, CBX_BREAKER_CLOSED, now);
    push_event(b, eb, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_CLOSED, CBX_BREAKER_NORMAL,
               CBX_BREAKER_REASON_PROBES_SUCCEEDED, now, 0, 0);
}

/* Probe leases past their deadline count as timeouts. Returns how many expired. */
static uint32_t expire_leases(cbx_breaker *b, uint64_t now)
{
    uint32_t expired = 0;
    for (uint32_t i = 0; i < b->max_probes; i++) {
        probe_slot *s = &b->probes[i];
        if (s->lease && now >= s->deadline_ns) {
            b->expired_leases[s->lease % CBX__EXPIRED_MEMORY] = s->lease;
            s->lease = 0;
            b->probes_in_flight--;
            expired++;
        }
    }
    if (expired) {
        atomic_fetch_add_explicit(&b->expired_probes, expired, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->failures, expired, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->by_kind[CBX_OUTCOME_TIMEOUT], expired, memory_order_relaxed);
    }
    return expired;
}

/* The first probe deadline, UINT64_MAX when none is out. */
static uint64_t first_deadline(const cbx_breaker *b)
{
    uint64_t first = UINT64_MAX;
    for (uint32_t i = 0; i < b->max_probes; i++)
        if (b->probes[i].lease && b->probes[i].deadline_ns < first)
            first = b->probes[i].deadline_ns;
    return first;
}

static void judge_probes(cbx_breaker *b, uint64_t now, event_batch *eb, uint64_t retry_after);

/* One step of what time alone decides; returns 1 when the state changed. */
static int advance_once(cbx_breaker *b, uint64_t now, event_batch *eb)
{
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    if (W_MODE(w) != CBX_BREAKER_NORMAL)
        return 0;
    uint64_t until = atomic_load_explicit(&b->open_until_ns, memory_order_relaxed);
    if (W_STATE(w) == CBX_BREAKER_OPEN && until != UINT64_MAX && now >= until) {
        to_half_open(b, eb);
        return 1;
    }
    if (W_STATE(w) != CBX_BREAKER_HALF_OPEN)
        return 0;
    /* The half-open time limit, unless a lease ran out before it: that came first. */
    uint64_t limit = b->half_open_max_ns ? add_sat(b->state_since_ns, b->half_open_max_ns) : 0;
    if (limit && limit != UINT64_MAX && now >= limit && first_deadline(b) >= limit) {
        b->trip = (trip_info){.reason = CBX_BREAKER_REASON_HALF_OPEN_ELAPSED};
        to_open(b, CBX_BREAKER_REASON_HALF_OPEN_ELAPSED, limit, eb, 0);
        return 1;
    }
    if (b->probes_in_flight == 0)
        return 0;
    uint32_t expired = expire_leases(b, now);
    if (!expired)
        return 0;
    if (b->judge_rate) { /* each expired lease is a failed probe in the tally */
        b->probe_tally.calls += expired;
        b->probe_tally.failures += expired;
        judge_probes(b, now, eb, 0);
    } else {
        b->trip = (trip_info){.reason = CBX_BREAKER_REASON_PROBE_EXPIRED};
        to_open(b, CBX_BREAKER_REASON_PROBE_EXPIRED, now, eb, 0);
    }
    return W_GEN(atomic_load_explicit(&b->word, memory_order_relaxed)) != W_GEN(w);
}

/* Apply what time alone decides: OPEN whose time is up -> HALF_OPEN; HALF_OPEN past its limit
 * -> OPEN; probe leases past their deadline -> failures, which re-open. A breaker left unused
 * catches up on at most 64 such steps per use. */
static void advance_locked(cbx_breaker *b, uint64_t now, event_batch *eb)
{
    for (int i = 0; i < 64 && advance_once(b, now, eb); i++)
        ;
}

/* ---- acquire ------------------------------------------------------------------------ */

static cbx_permit admit(uint64_t w)
{
    return (cbx_permit){.gen = W_GEN(w), .state = W_STATE(w), .mode = W_MODE(w)};
}

static void explain_locked(cbx_breaker *b, uint64_t now, int rc, cbx_breaker_rejection *why)
{
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    *why = (cbx_breaker_rejection){.rc = rc,
                                   .state = W_STATE(w),
                                   .mode = W_MODE(w),
                                   .reason = b->trip.reason,
                                   .consecutive_failures = b->trip.consecutive,
                                   .window_calls = b->trip.window.calls,
                                   .window_failures = b->trip.window.failures,
                                   .window_slow = b->trip.window.slow,
                                   .reopens = b->reopens,
                                   .probes_in_flight = b->probes_in_flight};
    if (W_MODE(w) == CBX_BREAKER_FORCED_OPEN) {
        why->reason = CBX_BREAKER_REASON_MANUAL;
    } else if (W_STATE(w) == CBX_BREAKER_OPEN) {
        uint64_t until = atomic_load_explicit(&b->open_until_ns, memory_order_relaxed);
        why->retry_in_ns = until > now ? until - now : 0;
    } else if (W_STATE(w) == CBX_BREAKER_HALF_OPEN) {
        uint64_t first = first_deadline(b);
        why->retry_in_ns = first != UINT64_MAX && first > now ? first - now : 0;
    }
}

static cbx_permit reject(cbx_breaker *b, int rc, uint64_t w)
{
    atomic_fetch_add_explicit(&b->rejections, 1, memory_order_relaxed);
    cbx_permit p = admit(w);
    p.rc = rc;
    return p;
}

/* OPEN or HALF_OPEN in NORMAL mode: decide under the lock. */
static cbx_permit acquire_slow(cbx_breaker *b, cbx_breaker_rejection *why)
{
    event_batch eb = {0};
    pthread_mutex_lock(&b->mu);
    uint64_t now = now_ns(b);
    advance_locked(b, now, &eb);
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    cbx_permit p;
    int rc = 0;
    if (W_MODE(w) != CBX_BREAKER_NORMAL || W_STATE(w) == CBX_BREAKER_CLOSED) {
        rc = W_MODE(w) == CBX_BREAKER_FORCED_OPEN ? CBX_EFORCED_OPEN : 0;
    } else if (W_STATE(w) == CBX_BREAKER_OPEN) {
        rc = CBX_ECIRCUIT_OPEN;
    } else if (b->probes_in_flight >= b->max_probes ||
               (b->judge_rate && b->probe_tally.calls + b->probes_in_flight >= b->close_after)) {
        rc = CBX_EHALF_OPEN_FULL;
    }
    if (rc) {
        p = reject(b, rc, w);
        if (why)
            explain_locked(b, now, rc, why);
    } else {
        p = admit(w);
        if (W_STATE(w) == CBX_BREAKER_HALF_OPEN && W_MODE(w) == CBX_BREAKER_NORMAL) {
            uint32_t i = 0;
            while (b->probes[i].lease)
                i++;
            if (++b->lease_serial == 0)
                b->lease_serial = 1;
            b->expired_leases[b->lease_serial % CBX__EXPIRED_MEMORY] = 0;
            b->probes[i] =
                (probe_slot){.deadline_ns = now + b->probe_lease_ns, .lease = b->lease_serial};
            b->probes_in_flight++;
            p.slot = (uint16_t)(i + 1);
            p.lease = b->lease_serial;
        }
    }
    unlock_and_flush(b, &eb);
    return p;
}

cbx_permit cbx_breaker_acquire_ex(cbx_breaker *b, cbx_breaker_rejection *why)
{
    uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
    if ((w & W_LOW_BITS) == W_CLOSED_NORMAL)
        return admit(w);
    switch (W_MODE(w)) {
    case CBX_BREAKER_FORCED_CLOSED:
    case CBX_BREAKER_DISABLED:
    case CBX_BREAKER_METRICS_ONLY:
        return admit(w);
    case CBX_BREAKER_FORCED_OPEN:
        if (!why)
            return reject(b, CBX_EFORCED_OPEN, w);
        break;
    case CBX_BREAKER_NORMAL:
        /* Refusing while the open time runs needs no lock unless asked to explain. */
        if (!why && W_STATE(w) == CBX_BREAKER_OPEN &&
            now_ns(b) < atomic_load_explicit(&b->open_until_ns, memory_order_relaxed))
            return reject(b, CBX_ECIRCUIT_OPEN, w);
        break;
    }
    return acquire_slow(b, why);
}

cbx_permit cbx_breaker_acquire(cbx_breaker *b)
{
    return cbx_breaker_acquire_ex(b, NULL);
}

/* ---- record ------------------------------------------------------------------------- */

static int rule_holds(uint32_t part, uint32_t calls, uint32_t ppm)
{
    return ppm && (uint64_t)part * PPM >= (uint64_t)ppm * calls;
}

/* Add the outcome to the windows, then say which rule, if any, now holds (first match in the
 * documented order). *seen gets the totals of the window the tripping rule looked at. */
static cbx_breaker_reason evaluate(cbx_breaker *b, uint32_t consecutive, unsigned bits,
                                   uint64_t now, cbx__win_totals *seen)
{
    cbx__win_totals cw = {0, 0, 0}, tw = {0, 0, 0};
    if (b->has_count_window)
        cw = cbx__count_window_add(&b->cw, bits);
    if (b->has_time_window)
        tw = cbx__time_window_add(&b->tw, now, bits);
    *seen = (cbx__win_totals){0, 0, 0};
    if (b->consecutive_limit && consecutive >= b->consecutive_limit)
        return CBX_BREAKER_REASON_CONSECUTIVE_FAILURES;
    *seen = cw;
    if (b->has_count_window && cw.calls >= b->cw_min_calls) {
        if (rule_holds(cw.failures, cw.calls, b->cw_fail_ppm))
            return CBX_BREAKER_REASON_COUNT_FAILURE_RATE;
        if (rule_holds(cw.slow, cw.calls, b->cw_slow_ppm))
            return CBX_BREAKER_REASON_COUNT_SLOW_RATE;
    }
    *seen = tw;
    if (b->has_time_window && tw.calls >= b->tw_min_calls) {
        if (rule_holds(tw.failures, tw.calls, b->tw_fail_ppm))
            return CBX_BREAKER_REASON_TIME_FAILURE_RATE;
        if (rule_holds(tw.slow, tw.calls, b->tw_slow_ppm))
            return CBX_BREAKER_REASON_TIME_SLOW_RATE;
    }
    if (b->trip_fn) {
        cbx_breaker_counts c = {.failed = (bits & CBX__WIN_FAIL) != 0,
                                .slow = (bits & CBX__WIN_SLOW) != 0,
                                .consecutive_failures = consecutive,
                                .count_calls = cw.calls,
                                .count_failures = cw.failures,
                                .count_slow = cw.slow,
                                .time_calls = tw.calls,
                                .time_failures = tw.failures,
                                .time_slow = tw.slow};
        *seen = b->has_count_window ? cw : tw;
        if (b->trip_fn(&c, b->trip_ud))
            return CBX_BREAKER_REASON_PREDICATE;
    }
    return CBX_BREAKER_REASON_NONE;
}

static void trip(cbx_breaker *b, uint32_t gen, cbx_breaker_reason reason, uint32_t consecutive,
                 cbx__win_totals seen, uint64_t retry_after)
{
    event_batch eb = {0};
    pthread_mutex_lock(&b->mu);
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    if (W_GEN(w) == gen && W_STATE(w) == CBX_BREAKER_CLOSED) {
        uint64_t now = now_ns(b);
        trip_info t = {reason, consecutive, seen};
        if (W_MODE(w) == CBX_BREAKER_METRICS_ONLY) {
            clear_windows(b);
            push_event(b, &eb, CBX_BREAKER_CLOSED, CBX_BREAKER_OPEN, CBX_BREAKER_METRICS_ONLY,
                       reason, now, open_time(b, &t, retry_after), 1);
        } else if (W_MODE(w) == CBX_BREAKER_NORMAL) {
            b->trip = t;
            to_open(b, reason, now, &eb, retry_after);
        }
    }
    unlock_and_flush(b, &eb);
}

/* Count an outcome in the cumulative metrics; returns the window bits (slow) it carries. */
static unsigned count_outcome(cbx_breaker *b, cbx_outcome kind, int failed, int64_t latency_ns)
{
    unsigned bits = 0;
    if (latency_ns >= 0) {
        cbx__hist_add(&b->hist, (uint64_t)latency_ns);
        if (b->slow_call_ns && (uint64_t)latency_ns >= b->slow_call_ns) {
            bits |= CBX__WIN_SLOW;
            atomic_fetch_add_explicit(&b->slow_calls, 1, memory_order_relaxed);
        }
    }
    atomic_fetch_add_explicit(&b->by_kind[kind], 1, memory_order_relaxed);
    if (failed)
        atomic_fetch_add_explicit(&b->failures, 1, memory_order_relaxed);
    else if (kind != CBX_OUTCOME_SUCCESS)
        atomic_fetch_add_explicit(&b->ignored, 1, memory_order_relaxed);
    return bits;
}

/* JUDGE_RATE: once close_after probes have reported, their rates decide. */
static void judge_probes(cbx_breaker *b, uint64_t now, event_batch *eb, uint64_t retry_after)
{
    cbx__win_totals t = b->probe_tally;
    if (t.calls < b->close_after)
        return;
    cbx_breaker_reason why =
        rule_holds(t.failures, t.calls, b->ho_fail_ppm) ? CBX_BREAKER_REASON_PROBE_FAILURE_RATE
        : rule_holds(t.slow, t.calls, b->ho_slow_ppm)   ? CBX_BREAKER_REASON_PROBE_SLOW_RATE
                                                        : CBX_BREAKER_REASON_NONE;
    if (why == CBX_BREAKER_REASON_NONE) {
        to_closed(b, now, eb);
        return;
    }
    b->trip = (trip_info){.reason = why, .window = t};
    to_open(b, why, now, eb, retry_after);
}

/* A probe's report: only the lease it was given counts, and only once. A report for a lease
 * that expired was already counted as a timeout: it counts as late, nothing else. A report for
 * a lease that a transition cancelled counts in the metrics only. */
static void record_probe(cbx_breaker *b, cbx_permit p, cbx_outcome kind, int failed,
                         int64_t latency_ns, uint64_t retry_after)
{
    event_batch eb = {0};
    pthread_mutex_lock(&b->mu);
    uint64_t now = now_ns(b);
    advance_locked(b, now, &eb);
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    probe_slot *s = &b->probes[p.slot - 1];
    if (W_GEN(w) != p.gen || W_STATE(w) != CBX_BREAKER_HALF_OPEN || s->lease != p.lease) {
        if (b->expired_leases[p.lease % CBX__EXPIRED_MEMORY] == p.lease)
            atomic_fetch_add_explicit(&b->late_results, 1, memory_order_relaxed);
        else
            count_outcome(b, kind, failed, latency_ns);
        unlock_and_flush(b, &eb);
        return;
    }
    s->lease = 0;
    b->probes_in_flight--;
    unsigned bits = count_outcome(b, kind, failed, latency_ns);
    if (b->judge_rate) {
        if (failed || kind == CBX_OUTCOME_SUCCESS) {
            b->probe_tally.calls++;
            b->probe_tally.failures += failed;
            b->probe_tally.slow += (bits & CBX__WIN_SLOW) != 0;
            judge_probes(b, now, &eb, retry_after);
        }
    } else if (failed) {
        b->trip = (trip_info){.reason = CBX_BREAKER_REASON_PROBE_FAILED};
        to_open(b, CBX_BREAKER_REASON_PROBE_FAILED, now, &eb, retry_after);
    } else if (kind == CBX_OUTCOME_SUCCESS && ++b->probe_successes >= b->close_after) {
        to_closed(b, now, &eb);
    }
    unlock_and_flush(b, &eb);
}

/* Every report ends here: kind after the quality rule, the rest in *r; ask: whether classify_fn
 * is asked. Returns the kind recorded. */
static cbx_outcome record(cbx_breaker *b, cbx_permit p, cbx_outcome kind,
                          const cbx_breaker_report *r, int ask)
{
    if (p.rc != 0 || (unsigned)kind >= CBX_OUTCOME__COUNT)
        return kind;
    int64_t latency_ns = r->latency_ns;
    uint64_t retry_after = r->retry_after_ns;
    int failed = cbx_outcome_is_failure(kind) && (b->failure_mask & CBX_OUTCOME_BIT(kind));
    if (ask && b->classify_fn) {
        switch (b->classify_fn(r, kind, b->classify_ud)) {
        case CBX_BREAKER_VERDICT_FAILURE:
            kind = cbx_outcome_is_failure(kind) ? kind : CBX_OUTCOME_CUSTOM;
            failed = 1;
            break;
        case CBX_BREAKER_VERDICT_SUCCESS:
            kind = CBX_OUTCOME_SUCCESS;
            failed = 0;
            break;
        case CBX_BREAKER_VERDICT_IGNORE:
            kind = CBX_OUTCOME_IGNORED;
            failed = 0;
            break;
        default:
            break;
        }
    }
    if (p.slot) {
        record_probe(b, p, kind, failed, latency_ns, retry_after);
        return kind;
    }
    unsigned bits = count_outcome(b, kind, failed, latency_ns);
    if (!failed && kind != CBX_OUTCOME_SUCCESS)
        return kind; /* ignored */

    uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
    cbx_breaker_mode mode = W_MODE(w);
    if (W_GEN(w) != p.gen || W_STATE(w) != CBX_BREAKER_CLOSED || mode == CBX_BREAKER_DISABLED ||
        mode == CBX_BREAKER_FORCED_OPEN)
        return kind; /* counted above; the state machine has moved on or is bypassed */

    uint32_t consecutive;
    if (failed) {
        bits |= CBX__WIN_FAIL;
        consecutive = atomic_fetch_add_explicit(&b->consecutive, 1, memory_order_relaxed) + 1;
    } else {
        /* Read before writing: a run of successes leaves the cache line shared. */
        if (atomic_load_explicit(&b->consecutive, memory_order_relaxed))
            atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
        consecutive = 0;
    }
    if (!b->has_count_window && !b->has_time_window && !failed && !b->trip_fn)
        return kind;
    cbx__win_totals seen;
    cbx_breaker_reason why =
        evaluate(b, consecutive, bits, b->has_time_window ? now_ns(b) : 0, &seen);
    if (why != CBX_BREAKER_REASON_NONE && mode != CBX_BREAKER_FORCED_CLOSED)
        trip(b, p.gen, why, consecutive, seen, retry_after);
    return kind;
}

void cbx_breaker_record(cbx_breaker *b, cbx_permit p, cbx_outcome kind, int64_t latency_ns)
{
    record(b, p, kind, &(cbx_breaker_report){.kind = kind, .latency_ns = latency_ns}, 1);
}

cbx_outcome cbx_breaker_record_ex(cbx_breaker *b, cbx_permit p, const cbx_breaker_report *r)
{
    cbx_outcome kind = r->kind;
    if (kind == CBX_OUTCOME_SUCCESS && r->has_quality && b->quality_threshold > 0 &&
        r->quality < b->quality_threshold)
        kind = CBX_OUTCOME_QUALITY;
    return record(b, p, kind, r, 1);
}

cbx_outcome cbx_breaker_record_quality(cbx_breaker *b, cbx_permit p, cbx_outcome kind,
                                       int64_t latency_ns, double quality)
{
    return cbx_breaker_record_ex(
        b, p,
        &(cbx_breaker_report){
            .kind = kind, .latency_ns = latency_ns, .has_quality = 1, .quality = quality});
}

void cbx_breaker_release(cbx_breaker *b, cbx_permit p)
{
    /* the call was never made: nothing for classify_fn to judge */
    record(b, p, CBX_OUTCOME_IGNORED,
           &(cbx_breaker_report){.kind = CBX_OUTCOME_IGNORED, .latency_ns = -1}, 0);
}

/* ---- manual control and inspection -------------------------------------------------- */

cbx_breaker_state cbx_breaker_state_now(cbx_breaker *b)
{
    uint64_t w = atomic_load_explicit(&b->word, memory_order_acquire);
    if ((w & W_LOW_BITS) == W_CLOSED_NORMAL)
        return CBX_BREAKER_CLOSED;
    event_batch eb = {0};
    pthread_mutex_lock(&b->mu);
    advance_locked(b, now_ns(b), &eb);
    w = atomic_load_explicit(&b->word, memory_order_relaxed);
    unlock_and_flush(b, &eb);
    return W_STATE(w);
}

cbx_breaker_mode cbx_breaker_mode_now(cbx_breaker *b)
{
    return W_MODE(atomic_load_explicit(&b->word, memory_order_acquire));
}

void cbx_breaker_set_mode(cbx_breaker *b, cbx_breaker_mode mode)
{
    if ((unsigned)mode > CBX_BREAKER_METRICS_ONLY)
        return;
    event_batch eb = {0};
    pthread_mutex_lock(&b->mu);
    uint64_t now = now_ns(b);
    cbx_breaker_state from = W_STATE(atomic_load_explicit(&b->word, memory_order_relaxed));
    cbx_breaker_state to = mode == CBX_BREAKER_FORCED_OPEN ? CBX_BREAKER_OPEN : CBX_BREAKER_CLOSED;
    clear_probes(b);
    clear_windows(b);
    b->reopens = 0;
    if (mode == CBX_BREAKER_FORCED_OPEN)
        b->trip = (trip_info){.reason = CBX_BREAKER_REASON_MANUAL};
    publish(b, mode, to, now);
    push_event(b, &eb, from, to, mode, CBX_BREAKER_REASON_MANUAL, now, 0, 0);
    unlock_and_flush(b, &eb);
}

void cbx_breaker_force_open(cbx_breaker *b)
{
    cbx_breaker_set_mode(b, CBX_BREAKER_FORCED_OPEN);
}

void cbx_breaker_force_closed(cbx_breaker *b)
{
    cbx_breaker_set_mode(b, CBX_BREAKER_FORCED_CLOSED);
}

/* NORMAL and OPEN until `until` (or for `d` from now when relative), reason manual. */
static void open_by_hand(cbx_breaker *b, uint64_t t, int relative)
{
    event_batch eb = {0};
    pthread_mutex_lock(&b->mu);
    uint64_t now = now_ns(b);
    uint64_t until = relative ? add_sat(now, t) : t;
    cbx_breaker_state from = W_STATE(atomic_load_explicit(&b->word, memory_order_relaxed));
    clear_probes(b);
    clear_windows(b);
    b->reopens = 0;
    b->trip = (trip_info){.reason = CBX_BREAKER_REASON_MANUAL};
    atomic_store_explicit(&b->open_until_ns, until, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->opens, 1, memory_order_relaxed);
    publish(b, CBX_BREAKER_NORMAL, CBX_BREAKER_OPEN, now);
    push_event(b, &eb, from, CBX_BREAKER_OPEN, CBX_BREAKER_NORMAL, CBX_BREAKER_REASON_MANUAL, now,
               until > now ? until - now : 0, 0);
    unlock_and_flush(b, &eb);
}

void cbx_breaker_force_open_for(cbx_breaker *b, uint64_t open_ns)
{
    open_by_hand(b, open_ns, 1);
}

void cbx_breaker_force_open_until(cbx_breaker *b, uint64_t until_ns)
{
    open_by_hand(b, until_ns, 0);
}

void cbx_breaker_reset(cbx_breaker *b)
{
    cbx_breaker_set_mode(b, CBX_BREAKER_NORMAL);
}

void cbx_breaker_metrics_get(cbx_breaker *b, cbx_breaker_metrics *out)
{
    memset(out, 0, sizeof *out);
    event_batch eb = {0};
    pthread_mutex_lock(&b->mu);
    uint64_t now = now_ns(b);
    advance_locked(b, now, &eb);
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    out->state = W_STATE(w);
    out->mode = W_MODE(w);
    out->time_in_state_ns = now - b->state_since_ns;
    out->probes_in_flight = b->probes_in_flight;
    out->reopens = b->reopens;
    unlock_and_flush(b, &eb);

    for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
        out->by_kind[k] = atomic_load_explicit(&b->by_kind[k], memory_order_relaxed);
    out->successes = out->by_kind[CBX_OUTCOME_SUCCESS];
    out->failures = atomic_load_explicit(&b->failures, memory_order_relaxed);
    out->ignored = atomic_load_explicit(&b->ignored, memory_order_relaxed);
    out->expired_probes = atomic_load_explicit(&b->expired_probes, memory_order_relaxed);
    out->calls = out->successes + out->failures + out->ignored;
    out->rejections = atomic_load_explicit(&b->rejections, memory_order_relaxed);
    out->slow_calls = atomic_load_explicit(&b->slow_calls, memory_order_relaxed);
    out->late_results = atomic_load_explicit(&b->late_results, memory_order_relaxed);
    out->opens = atomic_load_explicit(&b->opens, memory_order_relaxed);
    out->consecutive_failures = atomic_load_explicit(&b->consecutive, memory_order_relaxed);
    uint64_t judged = out->successes + out->failures;
    out->success_rate = judged ? (double)out->successes / (double)judged : 1.0;
    cbx__hist_summary h;
    cbx__hist_summarize(&b->hist, &h);
    out->latency_count = h.count;
    out->latency_mean_ns = h.mean_ns;
    out->latency_p50_ns = h.p50_ns;
    out->latency_p95_ns = h.p95_ns;
    out->latency_p99_ns = h.p99_ns;
}
