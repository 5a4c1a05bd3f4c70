/* Model-based test of the circuit breaker.
 *
 * A small reference model of the breaker, written here from the contract in cbx/breaker.h
 * and docs/breaker.md with plain arrays and no concurrency, is driven side by side with the
 * library by random events: acquires, outcomes of every kind with random latencies and
 * quality scores, releases, clock advances of every size and manual commands. After every
 * event the library's decision, state, mode, counters, rejection explanation and the events it
 * raised must equal the model's.
 */
#include "cbx/breaker.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_OUT 16  /* outstanding permits */
#define MAX_EVT 256 /* events collected per step */
#define MAX_LOG 4096

/* ---- random numbers ------------------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static uint32_t below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

/* ---- the model ----------------------------------------------------------------------- */

typedef struct {
    uint64_t t; /* when added */
    unsigned fail, slow;
} m_entry;

typedef struct {
    uint32_t lease;
    uint64_t deadline;
} m_slot;

typedef struct {
    cbx_breaker_state from, to;
    cbx_breaker_reason reason;
    uint64_t open_for;
    int shadow;
} m_event;

typedef struct model {
    cbx_breaker_opts o;
    uint32_t mask, max_probes, close_after, cw_min, tw_min, tw_buckets;
    uint64_t open_ns, lease_ns, bucket_ns;
    double mult;

    cbx_breaker_state state;
    cbx_breaker_mode mode;
    uint32_t gen;
    uint32_t consecutive;
    m_entry cw[70000];
    uint32_t cw_n; /* entries, newest last, at most o.count_window.calls */
    m_entry tw[MAX_LOG];
    uint32_t tw_n;
    uint64_t open_until;
    uint32_t reopens, probe_successes, in_flight, serial;
    m_slot slots[CBX_BREAKER_MAX_PROBES];
    uint32_t expired_serial[256]; /* the contract: the last 256 leases are remembered */
    cbx_breaker_reason trip_reason;
    uint32_t trip_consecutive, trip_calls, trip_failures, trip_slow;

    uint64_t by_kind[CBX_OUTCOME__COUNT], failures, ignored, rejections, slow_calls, expired, late,
        opens;

    m_event ev[MAX_EVT];
    int nev;
} model;

static model M;

static void m_event_push(cbx_breaker_state from, cbx_breaker_state to, cbx_breaker_reason r,
                         uint64_t open_for, int shadow)
{
    cr_assert_lt(M.nev, MAX_EVT);
    M.ev[M.nev++] = (m_event){from, to, r, open_for, shadow};
}

static void m_init(const cbx_breaker_opts *o)
{
    memset(&M, 0, sizeof M);
    M.o = *o;
    M.mask = o->failure_kinds ? o->failure_kinds : CBX_OUTCOME_FAILURES;
    M.max_probes = o->half_open_probes ? o->half_open_probes : 1;
    M.close_after = o->close_after ? o->close_after : M.max_probes;
    M.cw_min = o->count_window.min_calls ? o->count_window.min_calls : o->count_window.calls;
    M.tw_min = o->time_window.min_calls ? o->time_window.min_calls : 1;
    M.tw_buckets = o->time_window.buckets ? o->time_window.buckets : 10;
    M.bucket_ns = o->time_window.length_ns / M.tw_buckets;
    M.open_ns = o->open_ns ? o->open_ns : 60 * CBX_NS_PER_S;
    M.lease_ns = o->probe_lease_ns ? o->probe_lease_ns : 30 * CBX_NS_PER_S;
    M.mult = o->open_multiplier ? o->open_multiplier : 1;
    M.state = CBX_BREAKER_CLOSED;
    M.mode = CBX_BREAKER_NORMAL;
    M.gen = 1;
}

static uint64_t m_open_for(void)
{
    double d = (double)M.open_ns * pow(M.mult, M.reopens);
    if (M.o.open_max_ns && d >= (double)M.o.open_max_ns)
        return M.o.open_max_ns;
    return (uint64_t)d;
}

static void m_clear_windows(void)
{
    M.consecutive = 0;
    M.cw_n = 0;
    M.tw_n = 0;
}

static void m_clear_probes(void)
{
    memset(M.slots, 0, sizeof M.slots);
    M.in_flight = 0;
    M.probe_successes = 0;
}

static void m_open(cbx_breaker_reason r, uint64_t now)
{
    cbx_breaker_state from = M.state;
    if (from == CBX_BREAKER_HALF_OPEN)
        M.reopens++;
    uint64_t d = m_open_for();
    m_clear_probes();
    M.open_until = now + d;
    M.opens++;
    M.state = CBX_BREAKER_OPEN;
    M.gen++;
    m_event_push(from, CBX_BREAKER_OPEN, r, d, 0);
}

static void m_advance(uint64_t now)
{
    if (M.mode != CBX_BREAKER_NORMAL)
        return;
    if (M.state == CBX_BREAKER_OPEN && now >= M.open_until) {
        m_clear_probes();
        M.state = CBX_BREAKER_HALF_OPEN;
        M.gen++;
        m_event_push(CBX_BREAKER_OPEN, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_REASON_OPEN_ELAPSED, 0,
                     0);
        return;
    }
    if (M.state != CBX_BREAKER_HALF_OPEN)
        return;
    uint32_t n = 0;
    for (uint32_t i = 0; i < M.max_probes; i++)
        if (M.slots[i].lease && now >= M.slots[i].deadline) {
            M.expired_serial[M.slots[i].lease % 256] = M.slots[i].lease;
            M.slots[i].lease = 0;
            M.in_flight--;
            n++;
        }
    if (n) {
        M.expired += n;
        M.failures += n;
        M.by_kind[CBX_OUTCOME_TIMEOUT] += n;
        M.trip_reason = CBX_BREAKER_REASON_PROBE_EXPIRED;
        M.trip_consecutive = M.trip_calls = M.trip_failures = M.trip_slow = 0;
        m_open(CBX_BREAKER_REASON_PROBE_EXPIRED, now);
    }
}

/* Totals of the windows as they stand. */
static void m_count_totals(uint32_t *calls, uint32_t *fails, uint32_t *slow)
{
    *calls = *fails = *slow = 0;
    for (uint32_t i = 0; i < M.cw_n; i++) {
        (*calls)++;
        *fails += M.cw[i].fail;
        *slow += M.cw[i].slow;
    }
}

static void m_time_totals(uint64_t now, uint32_t *calls, uint32_t *fails, uint32_t *slow)
{
    *calls = *fails = *slow = 0;
    uint64_t e = now / M.bucket_ns;
    for (uint32_t i = 0; i < M.tw_n; i++) {
        uint64_t ei = M.tw[i].t / M.bucket_ns;
        if (e - ei < M.tw_buckets) {
            (*calls)++;
            *fails += M.tw[i].fail;
            *slow += M.tw[i].slow;
        }
    }
}

static int holds(uint32_t part, uint32_t calls, double rate)
{
    if (rate == 0)
        return 0;
    uint64_t ppm = (uint64_t)llround(rate * 1e6);
    return (uint64_t)part * 1000000u >= ppm * calls;
}

typedef struct {
    int rc;
    uint32_t gen, lease, slot;
} m_permit;

static m_permit m_acquire(uint64_t now)
{
    m_advance(now);
    m_permit p = {0, M.gen, 0, 0};
    if (M.mode == CBX_BREAKER_FORCED_OPEN) {
        p.rc = CBX_EFORCED_OPEN;
    } else if (M.mode != CBX_BREAKER_NORMAL || M.state == CBX_BREAKER_CLOSED) {
        p.rc = 0;
    } else if (M.state == CBX_BREAKER_OPEN) {
        p.rc = CBX_ECIRCUIT_OPEN;
    } else if (M.in_flight >= M.max_probes) {
        p.rc = CBX_EHALF_OPEN_FULL;
    } else {
        uint32_t i = 0;
        while (M.slots[i].lease)
            i++;
        M.serial++;
        M.expired_serial[M.serial % 256] = 0;
        M.slots[i] = (m_slot){M.serial, now + M.lease_ns};
        M.in_flight++;
        p.slot = i + 1;
        p.lease = M.serial;
    }
    if (p.rc)
        M.rejections++;
    return p;
}

static void m_record(m_permit p, cbx_outcome k, int64_t lat, uint64_t now)
{
    if (p.rc)
        return;
    int failed = cbx_outcome_is_failure(k) && (M.mask & CBX_OUTCOME_BIT(k));
    int ignored = !failed && k != CBX_OUTCOME_SUCCESS;
    unsigned slow = lat >= 0 && M.o.slow_call_ns && (uint64_t)lat >= M.o.slow_call_ns;
    if (p.slot) {
        m_advance(now);
        m_slot *s = &M.slots[p.slot - 1];
        if (p.gen != M.gen || M.state != CBX_BREAKER_HALF_OPEN || s->lease != p.lease) {
            if (M.expired_serial[p.lease % 256] == p.lease) {
                M.late++;
            } else { /* cancelled by a transition: metrics only */
                M.slow_calls += slow;
                M.by_kind[k]++;
                M.failures += (uint64_t)failed;
                M.ignored += (uint64_t)ignored;
            }
            return;
        }
        s->lease = 0;
        M.in_flight--;
        M.slow_calls += slow;
        M.by_kind[k]++;
        if (failed) {
            M.failures++;
            M.trip_reason = CBX_BREAKER_REASON_PROBE_FAILED;
            M.trip_consecutive = M.trip_calls = M.trip_failures = M.trip_slow = 0;
            m_open(CBX_BREAKER_REASON_PROBE_FAILED, now);
        } else if (k == CBX_OUTCOME_SUCCESS) {
            if (++M.probe_successes >= M.close_after) {
                m_clear_probes();
                m_clear_windows();
                M.reopens = 0;
                M.state = CBX_BREAKER_CLOSED;
                M.gen++;
                m_event_push(CBX_BREAKER_HALF_OPEN, CBX_BREAKER_CLOSED,
                             CBX_BREAKER_REASON_PROBES_SUCCEEDED, 0, 0);
            }
        } else {
            M.ignored++;
        }
        return;
    }
    M.slow_calls += slow;
    M.by_kind[k]++;
    if (failed)
        M.failures++;
    if (ignored) {
        M.ignored++;
        return;
    }
    if (p.gen != M.gen || M.state != CBX_BREAKER_CLOSED || M.mode == CBX_BREAKER_DISABLED ||
        M.mode == CBX_BREAKER_FORCED_OPEN)
        return;
    M.consecutive = failed ? M.consecutive + 1 : 0;
    if (M.o.count_window.calls) {
        if (M.cw_n == M.o.count_window.calls) {
            memmove(M.cw, M.cw + 1, (M.cw_n - 1) * sizeof M.cw[0]);
            M.cw_n--;
        }
        M.cw[M.cw_n++] = (m_entry){now, (unsigned)failed, slow};
    }
    if (M.o.time_window.length_ns) {
        /* drop what can never count again, to keep the log short */
        uint64_t e = now / M.bucket_ns;
        uint32_t j = 0;
        for (uint32_t i = 0; i < M.tw_n; i++)
            if (e - M.tw[i].t / M.bucket_ns < M.tw_buckets)
                M.tw[j++] = M.tw[i];
        M.tw_n = j;
        cr_assert_lt(M.tw_n, MAX_LOG);
        M.tw[M.tw_n++] = (m_entry){now, (unsigned)failed, slow};
    }
    cbx_breaker_reason r = CBX_BREAKER_REASON_NONE;
    uint32_t c = 0, f = 0, s = 0;
    if (M.o.consecutive_failures && M.consecutive >= M.o.consecutive_failures) {
        r = CBX_BREAKER_REASON_CONSECUTIVE_FAILURES;
    }
    if (!r && M.o.count_window.calls) {
        m_count_totals(&c, &f, &s);
        if (c >= M.cw_min && holds(f, c, M.o.count_window.failure_rate))
            r = CBX_BREAKER_REASON_COUNT_FAILURE_RATE;
        else if (c >= M.cw_min && holds(s, c, M.o.count_window.slow_rate))
            r = CBX_BREAKER_REASON_COUNT_SLOW_RATE;
    }
    if (!r && M.o.time_window.length_ns) {
        m_time_totals(now, &c, &f, &s);
        if (c >= M.tw_min && holds(f, c, M.o.time_window.failure_rate))
            r = CBX_BREAKER_REASON_TIME_FAILURE_RATE;
        else if (c >= M.tw_min && holds(s, c, M.o.time_window.slow_rate))
            r = CBX_BREAKER_REASON_TIME_SLOW_RATE;
    }
    if (!r || M.mode == CBX_BREAKER_FORCED_CLOSED)
        return;
    if (M.mode == CBX_BREAKER_METRICS_ONLY) {
        m_clear_windows();
        m_event_push(CBX_BREAKER_CLOSED, CBX_BREAKER_OPEN, r, m_open_for(), 1);
        return;
    }
    M.trip_reason = r;
    M.trip_consecutive = M.consecutive;
    M.trip_calls = c;
    M.trip_failures = f;
    M.trip_slow = s;
    if (r == CBX_BREAKER_REASON_CONSECUTIVE_FAILURES)
        M.trip_calls = M.trip_failures = M.trip_slow = 0;
    m_open(r, now);
}

static void m_set_mode(cbx_breaker_mode mode)
{
    cbx_breaker_state from = M.state;
    cbx_breaker_state to = mode == CBX_BREAKER_FORCED_OPEN ? CBX_BREAKER_OPEN : CBX_BREAKER_CLOSED;
    m_clear_probes();
    m_clear_windows();
    M.reopens = 0;
    if (mode == CBX_BREAKER_FORCED_OPEN) {
        M.trip_reason = CBX_BREAKER_REASON_MANUAL;
        M.trip_consecutive = M.trip_calls = M.trip_failures = M.trip_slow = 0;
    }
    M.mode = mode;
    M.state = to;
    M.gen++;
    m_event_push(from, to, CBX_BREAKER_REASON_MANUAL, 0, 0);
}

/* ---- the library side ---------------------------------------------------------------- */

static m_event got[MAX_EVT];
static int ngot;
/* Transitions seen over a whole run, by target state, and shadow trips: the run must have
 * visited every corner for its verdict to mean anything. */
static uint64_t seen_to[3], seen_shadow, seen_reject[3];

static void on_event(const cbx_breaker_event *ev, void *ud)
{
    (void)ud;
    cr_assert_lt(ngot, MAX_EVT);
    got[ngot++] = (m_event){ev->from, ev->to, ev->reason, ev->open_for_ns, ev->shadow};
}

typedef struct {
    m_permit m;
    cbx_permit p;
} pair;

static void compare_events(uint64_t step, const char *what)
{
    cr_assert_eq(ngot, M.nev, "step %llu (%s): %d events, model %d", (unsigned long long)step, what,
                 ngot, M.nev);
    for (int i = 0; i < ngot; i++) {
        cr_assert_eq(got[i].from, M.ev[i].from, "step %llu (%s) event %d from",
                     (unsigned long long)step, what, i);
        cr_assert_eq(got[i].to, M.ev[i].to, "step %llu event %d to", (unsigned long long)step, i);
        cr_assert_eq(got[i].reason, M.ev[i].reason, "step %llu (%s) event %d reason %s vs %s",
                     (unsigned long long)step, what, i, cbx_breaker_reason_name(got[i].reason),
                     cbx_breaker_reason_name(M.ev[i].reason));
        cr_assert_eq(got[i].open_for, M.ev[i].open_for, "step %llu event %d open_for",
                     (unsigned long long)step, i);
        cr_assert_eq(got[i].shadow, M.ev[i].shadow, "step %llu event %d shadow",
                     (unsigned long long)step, i);
    }
    for (int i = 0; i < ngot; i++) {
        if (got[i].shadow)
            seen_shadow++;
        else
            seen_to[got[i].to]++;
    }
    ngot = 0;
    M.nev = 0;
}

static void compare_metrics(cbx_breaker *b, uint64_t step)
{
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m); /* applies due transitions, as the model's advance does */
    cr_assert_eq(m.state, M.state, "step %llu: state %s, model %s", (unsigned long long)step,
                 cbx_breaker_state_name(m.state), cbx_breaker_state_name(M.state));
    cr_assert_eq(m.mode, M.mode, "step %llu: mode", (unsigned long long)step);
    for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
        cr_assert_eq(m.by_kind[k], M.by_kind[k], "step %llu: by_kind[%s] %llu vs %llu",
                     (unsigned long long)step, cbx_outcome_name((cbx_outcome)k),
                     (unsigned long long)m.by_kind[k], (unsigned long long)M.by_kind[k]);
    cr_assert_eq(m.failures, M.failures, "step %llu: failures", (unsigned long long)step);
    cr_assert_eq(m.ignored, M.ignored, "step %llu: ignored", (unsigned long long)step);
    cr_assert_eq(m.rejections, M.rejections, "step %llu: rejections", (unsigned long long)step);
    cr_assert_eq(m.slow_calls, M.slow_calls, "step %llu: slow", (unsigned long long)step);
    cr_assert_eq(m.expired_probes, M.expired, "step %llu: expired", (unsigned long long)step);
    cr_assert_eq(m.late_results, M.late, "step %llu: late", (unsigned long long)step);
    cr_assert_eq(m.opens, M.opens, "step %llu: opens", (unsigned long long)step);
    cr_assert_eq(m.consecutive_failures, M.consecutive, "step %llu: consecutive %u vs %u",
                 (unsigned long long)step, m.consecutive_failures, M.consecutive);
    cr_assert_eq(m.probes_in_flight, M.in_flight, "step %llu: in flight", (unsigned long long)step);
    cr_assert_eq(m.reopens, M.reopens, "step %llu: reopens", (unsigned long long)step);
    cr_assert_eq(m.calls, M.by_kind[0] + M.failures + M.ignored, "step %llu: calls",
                 (unsigned long long)step);
}

static const cbx_outcome kinds[] = {
    CBX_OUTCOME_SUCCESS, CBX_OUTCOME_SUCCESS, CBX_OUTCOME_SUCCESS,
    CBX_OUTCOME_ERROR,   CBX_OUTCOME_TIMEOUT, CBX_OUTCOME_RATE_LIMITED,
    CBX_OUTCOME_QUALITY, CBX_OUTCOME_CUSTOM,  CBX_OUTCOME_IGNORED};

static void run_model(const cbx_breaker_opts *opts_in, uint64_t seed, uint64_t steps)
{
    rng_state = seed;
    cbx_clock *clk = cbx_clock_virtual(1000);
    cbx_breaker_opts o = *opts_in;
    o.clock = clk;
    o.on_event = on_event;
    cbx_breaker *b = NULL;
    cbx_err err;
    cr_assert_eq(cbx_breaker_new(&b, &o, &err), 0, "%s", err.msg);
    m_init(&o);
    ngot = 0;
    memset(seen_to, 0, sizeof seen_to);
    memset(seen_reject, 0, sizeof seen_reject);
    seen_shadow = 0;

    pair out[MAX_OUT];
    int nout = 0;
    /* How likely a failure is drifts over time so that every state is visited often. */
    uint32_t fail_pct = 30;
    for (uint64_t step = 0; step < steps; step++) {
        if (step % 2000 == 0)
            fail_pct = below(100);
        uint32_t what = below(100);
        uint64_t now = cbx_clock_now_ns(clk);
        const char *label = "";
        if (what < 35 && nout < MAX_OUT) {
            label = "acquire";
            int ex = below(2);
            cbx_breaker_rejection why;
            cbx_permit p = ex ? cbx_breaker_acquire_ex(b, &why) : cbx_breaker_acquire(b);
            m_permit mp = m_acquire(now);
            cr_assert_eq(p.rc, mp.rc, "step %llu: acquire rc %s, model %s",
                         (unsigned long long)step, cbx_err_name(p.rc), cbx_err_name(mp.rc));
            if (p.rc)
                seen_reject[p.rc == CBX_ECIRCUIT_OPEN ? 0 : p.rc == CBX_EHALF_OPEN_FULL ? 1 : 2]++;
            if (p.rc == 0) {
                cr_assert_eq(p.slot, mp.slot, "step %llu: probe slot", (unsigned long long)step);
                out[nout++] = (pair){mp, p};
            } else if (ex) {
                cr_assert_eq(why.rc, mp.rc);
                cr_assert_eq(why.reason, M.trip_reason, "step %llu: why.reason %s vs %s",
                             (unsigned long long)step, cbx_breaker_reason_name(why.reason),
                             cbx_breaker_reason_name(M.trip_reason));
                cr_assert_eq(why.probes_in_flight, M.in_flight);
                cr_assert_eq(why.reopens, M.reopens);
                if (mp.rc == CBX_ECIRCUIT_OPEN) {
                    cr_assert_eq(why.retry_in_ns, M.open_until - now, "step %llu: retry_in",
                                 (unsigned long long)step);
                    cr_assert_eq(why.consecutive_failures, M.trip_consecutive);
                    cr_assert_eq(why.window_calls, M.trip_calls, "step %llu: trip calls",
                                 (unsigned long long)step);
                    cr_assert_eq(why.window_failures, M.trip_failures);
                    cr_assert_eq(why.window_slow, M.trip_slow);
                }
            }
        } else if (what < 75 && nout > 0) {
            label = "record";
            int i = (int)below((uint32_t)nout);
            pair pr = out[i];
            out[i] = out[--nout];
            cbx_outcome k = below(100) < fail_pct ? kinds[3 + below(6)] : CBX_OUTCOME_SUCCESS;
            int64_t lat = below(10) == 0 ? -1 : (int64_t)below(400) * (int64_t)CBX_NS_PER_MS;
            if (below(8) == 0) {
                double q = below(100) / 100.0;
                if (k == CBX_OUTCOME_SUCCESS && o.quality_threshold > 0 && q < o.quality_threshold)
                    k = CBX_OUTCOME_QUALITY; /* the model applies the threshold itself */
                cbx_outcome rec = cbx_breaker_record_quality(b, pr.p, k, lat, q);
                cr_assert_eq(rec, k);
            } else if (below(20) == 0) {
                k = CBX_OUTCOME_IGNORED;
                lat = -1;
                cbx_breaker_release(b, pr.p);
            } else {
                cbx_breaker_record(b, pr.p, k, lat);
            }
            m_record(pr.m, k, lat, now);
        } else if (what < 93) {
            label = "advance";
            uint64_t d;
            switch (below(4)) {
            case 0:
                d = below(1000) * CBX_NS_PER_US;
                break;
            case 1:
                d = below(200) * CBX_NS_PER_MS;
                break;
            case 2:
                d = below(3000) * CBX_NS_PER_MS;
                break;
            default:
                d = below(20) * CBX_NS_PER_S;
                break;
            }
            cbx_clock_advance_ns(clk, d);
        } else if (what < 95) {
            label = "mode";
            cbx_breaker_mode mode =
                below(3) ? CBX_BREAKER_NORMAL : (cbx_breaker_mode)(1 + below(4));
            if (mode == CBX_BREAKER_NORMAL)
                cbx_breaker_reset(b);
            else
                cbx_breaker_set_mode(b, mode);
            m_set_mode(mode);
        } else {
            label = "state";
            cbx_breaker_state s = cbx_breaker_state_now(b);
            m_advance(now);
            cr_assert_eq(s, M.state, "step %llu: state_now", (unsigned long long)step);
        }
        m_advance(cbx_clock_now_ns(clk)); /* compare_metrics applies due transitions */
        compare_metrics(b, step);
        compare_events(step, label);
    }
    cr_assert_gt(seen_to[CBX_BREAKER_OPEN], 100, "opened %llu times",
                 (unsigned long long)seen_to[CBX_BREAKER_OPEN]);
    cr_assert_gt(seen_to[CBX_BREAKER_HALF_OPEN], 100);
    cr_assert_gt(seen_to[CBX_BREAKER_CLOSED], 100);
    cr_assert_gt(seen_shadow, 0, "no shadow trip in metrics-only mode");
    cr_assert_gt(seen_reject[0], 100);
    cr_assert_gt(seen_reject[1], 0, "half-open never full");
    cr_assert_gt(seen_reject[2], 0, "never forced open");
    cr_assert_gt(M.expired, 0, "no probe lease expired");
    cr_assert_gt(M.late, 0, "no late probe result");
    fprintf(stderr,
            "model %s: opens %llu, half-opens %llu, closes %llu, shadow %llu, expired %llu, late "
            "%llu\n",
            o.name, (unsigned long long)seen_to[1], (unsigned long long)seen_to[2],
            (unsigned long long)seen_to[0], (unsigned long long)seen_shadow,
            (unsigned long long)M.expired, (unsigned long long)M.late);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

static cbx_breaker_opts base(void)
{
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.name = "model";
    o.open_ns = 5 * CBX_NS_PER_S;
    o.probe_lease_ns = 2 * CBX_NS_PER_S;
    return o;
}

Test(breaker_model, consecutive_failures_single_probe)
{
    cbx_breaker_opts o = base();
    o.consecutive_failures = 3;
    run_model(&o, 1, 100000);
}

Test(breaker_model, count_window_rates_growing_open_time)
{
    cbx_breaker_opts o = base();
    o.consecutive_failures = 0;
    o.count_window.calls = 20;
    o.count_window.min_calls = 5;
    o.count_window.failure_rate = 0.5;
    o.count_window.slow_rate = 0.3;
    o.slow_call_ns = 250 * CBX_NS_PER_MS;
    o.open_multiplier = 2;
    o.open_max_ns = 40 * CBX_NS_PER_S;
    o.half_open_probes = 3;
    o.close_after = 5;
    run_model(&o, 2, 100000);
}

Test(breaker_model, time_window_with_quality_and_failure_kinds)
{
    cbx_breaker_opts o = base();
    o.consecutive_failures = 7;
    o.time_window.length_ns = 10 * CBX_NS_PER_S;
    o.time_window.buckets = 5;
    o.time_window.min_calls = 4;
    o.time_window.failure_rate = 0.6;
    o.time_window.slow_rate = 0.8;
    o.slow_call_ns = 300 * CBX_NS_PER_MS;
    o.quality_threshold = 0.5;
    o.failure_kinds = CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR) | CBX_OUTCOME_BIT(CBX_OUTCOME_TIMEOUT) |
                      CBX_OUTCOME_BIT(CBX_OUTCOME_QUALITY);
    o.half_open_probes = 2;
    o.close_after = 2;
    o.open_multiplier = 3;
    run_model(&o, 3, 100000);
}

Test(breaker_model, every_rule_at_once)
{
    cbx_breaker_opts o = base();
    o.consecutive_failures = 4;
    o.count_window.calls = 10;
    o.count_window.failure_rate = 0.7;
    o.time_window.length_ns = 3 * CBX_NS_PER_S;
    o.time_window.buckets = 3;
    o.time_window.failure_rate = 0.9;
    o.time_window.min_calls = 10;
    o.time_window.slow_rate = 0.5;
    o.slow_call_ns = 200 * CBX_NS_PER_MS;
    o.half_open_probes = 4;
    o.close_after = 2;
    o.probe_lease_ns = 500 * CBX_NS_PER_MS;
    run_model(&o, 4, 100000);
}
