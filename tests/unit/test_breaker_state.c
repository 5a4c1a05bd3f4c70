/* Breaker state save/load: a breaker driven into each state, saved and loaded into a fresh
 * breaker with the same options, then both driven by the same long sequence of calls on one
 * virtual clock must make the same decisions and report the same metrics at every step.
 * Also: records of another shape, damaged and truncated records, and the size bound. */
#include "cbx/breaker.h"
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/outcome.h"

#include "resilience/breaker_internal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MS CBX_NS_PER_MS
#define S  CBX_NS_PER_S

static cbx_breaker *make(cbx_breaker_opts o, cbx_clock *clk)
{
    cbx_breaker *b = NULL;
    cbx_err err = {0};
    o.clock = clk;
    int r = cbx_breaker_new(&b, &o, &err);
    cr_assert_eq(r, 0, "cbx_breaker_new: %s (%s)", err.msg, err.where);
    return b;
}

/* Save a, load into a new breaker made from o; returns it. */
static cbx_breaker *clone(cbx_breaker *a, cbx_breaker_opts o, cbx_clock *clk)
{
    size_t cap = cbx__breaker_state_size(a);
    uint8_t *buf = malloc(cap);
    cr_assert_not_null(buf);
    int n = cbx__breaker_state_save(a, buf, cap);
    cr_assert_gt(n, 0, "save: %d", n);
    cr_assert_leq((size_t)n, cap);
    cbx_breaker *b = make(o, clk);
    int r = cbx__breaker_state_load(b, buf, (size_t)n);
    cr_assert_eq(r, 0, "load: %s", cbx_strerror(r));
    free(buf);
    return b;
}

static void expect_same_metrics(cbx_breaker *a, cbx_breaker *b, int step)
{
    cbx_breaker_metrics x, y;
    cbx_breaker_metrics_get(a, &x);
    cbx_breaker_metrics_get(b, &y);
    cr_assert_eq(x.state, y.state, "step %d: state %d vs %d", step, x.state, y.state);
    cr_assert_eq(x.mode, y.mode, "step %d: mode", step);
    cr_assert_eq(x.time_in_state_ns, y.time_in_state_ns, "step %d: time in state", step);
    cr_assert_eq(x.calls, y.calls, "step %d: calls %lu vs %lu", step, (unsigned long)x.calls,
                 (unsigned long)y.calls);
    cr_assert_eq(x.successes, y.successes, "step %d: successes", step);
    cr_assert_eq(x.failures, y.failures, "step %d: failures", step);
    for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
        cr_assert_eq(x.by_kind[k], y.by_kind[k], "step %d: by_kind[%d]", step, k);
    cr_assert_eq(x.ignored, y.ignored, "step %d: ignored", step);
    cr_assert_eq(x.rejections, y.rejections, "step %d: rejections", step);
    cr_assert_eq(x.slow_calls, y.slow_calls, "step %d: slow calls", step);
    cr_assert_eq(x.expired_probes, y.expired_probes, "step %d: expired probes", step);
    cr_assert_eq(x.late_results, y.late_results, "step %d: late results", step);
    cr_assert_eq(x.opens, y.opens, "step %d: opens", step);
    cr_assert_eq(x.consecutive_failures, y.consecutive_failures, "step %d: consecutive", step);
    cr_assert_eq(x.probes_in_flight, y.probes_in_flight, "step %d: probes in flight", step);
    cr_assert_eq(x.reopens, y.reopens, "step %d: reopens", step);
    cr_assert_eq(x.success_rate, y.success_rate, "step %d: success rate", step);
    cr_assert_eq(x.latency_count, y.latency_count, "step %d: latency count", step);
    cr_assert_eq(x.latency_mean_ns, y.latency_mean_ns, "step %d: latency mean", step);
    cr_assert_eq(x.latency_p50_ns, y.latency_p50_ns, "step %d: p50", step);
    cr_assert_eq(x.latency_p95_ns, y.latency_p95_ns, "step %d: p95", step);
    cr_assert_eq(x.latency_p99_ns, y.latency_p99_ns, "step %d: p99", step);
}

static void expect_same_permit(cbx_permit p, cbx_permit q, int step)
{
    cr_assert_eq(p.rc, q.rc, "step %d: rc %s vs %s", step, cbx_err_name(p.rc), cbx_err_name(q.rc));
    cr_assert_eq(p.gen, q.gen, "step %d: gen", step);
    cr_assert_eq(p.lease, q.lease, "step %d: lease", step);
    cr_assert_eq(p.slot, q.slot, "step %d: slot", step);
    cr_assert_eq(p.state, q.state, "step %d: state", step);
    cr_assert_eq(p.mode, q.mode, "step %d: mode", step);
}

static void expect_same_why(const cbx_breaker_rejection *x, const cbx_breaker_rejection *y,
                            int step)
{
    cr_assert_eq(x->rc, y->rc, "step %d: why.rc", step);
    cr_assert_eq(x->state, y->state, "step %d: why.state", step);
    cr_assert_eq(x->reason, y->reason, "step %d: why.reason", step);
    cr_assert_eq(x->consecutive_failures, y->consecutive_failures, "step %d: why.consec", step);
    cr_assert_eq(x->window_calls, y->window_calls, "step %d: why.window_calls", step);
    cr_assert_eq(x->window_failures, y->window_failures, "step %d: why.window_failures", step);
    cr_assert_eq(x->window_slow, y->window_slow, "step %d: why.window_slow", step);
    cr_assert_eq(x->reopens, y->reopens, "step %d: why.reopens", step);
    cr_assert_eq(x->probes_in_flight, y->probes_in_flight, "step %d: why.probes", step);
    cr_assert_eq(x->retry_in_ns, y->retry_in_ns, "step %d: why.retry_in", step);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#define MAX_HELD 128

/* Permits taken before the clone are held by both (they are equal). */
typedef struct held {
    int n;
    cbx_permit p[MAX_HELD];
} held;

/* Drive a and b with the same random sequence; compare after every step. Returns how many
 * acquires were refused, admitted as probes, and state changes seen, so a caller can check
 * that the run really went through the states it meant to test. */
typedef struct drive_stats {
    int refused, probes, transitions;
} drive_stats;

static drive_stats drive(cbx_breaker *a, cbx_breaker *b, cbx_clock *clk, held *h, uint64_t seed,
                         int steps, double fail_p, uint64_t max_advance_ns)
{
    drive_stats st = {0};
    cbx_breaker_state last = cbx_breaker_state_now(a);
    for (int i = 0; i < steps; i++) {
        uint64_t r = rng_next(&seed);
        unsigned op = (unsigned)(r % 100);
        if (op < 45 && h->n < MAX_HELD) {
            cbx_breaker_rejection wa, wb;
            cbx_permit p = cbx_breaker_acquire_ex(a, &wa);
            cbx_permit q = cbx_breaker_acquire_ex(b, &wb);
            expect_same_permit(p, q, i);
            if (p.rc) {
                expect_same_why(&wa, &wb, i);
                st.refused++;
            } else {
                st.probes += p.slot != 0;
                h->p[h->n++] = p;
            }
        } else if (op < 85 && h->n > 0) {
            int k = (int)((r >> 8) % (uint64_t)h->n);
            cbx_permit p = h->p[k];
            h->p[k] = h->p[--h->n];
            double u = (double)((r >> 20) & 0xffff) / 65536.0;
            cbx_outcome kind = u < fail_p
                                   ? ((r >> 40) & 1 ? CBX_OUTCOME_ERROR : CBX_OUTCOME_TIMEOUT)
                               : u < fail_p + 0.05 ? CBX_OUTCOME_IGNORED
                                                   : CBX_OUTCOME_SUCCESS;
            int64_t lat = (r >> 44) & 1 ? (int64_t)((r >> 45) % (300 * MS)) : -1;
            cbx_breaker_record(a, p, kind, lat);
            cbx_breaker_record(b, p, kind, lat);
        } else if (op < 97) {
            cbx_clock_advance_ns(clk, (r >> 8) % (max_advance_ns + 1));
        } else if (op < 98) {
            cbx_breaker_state x = cbx_breaker_state_now(a), y = cbx_breaker_state_now(b);
            cr_assert_eq(x, y, "step %d: state_now", i);
        } else {
            static const cbx_breaker_mode modes[] = {
                CBX_BREAKER_NORMAL,      CBX_BREAKER_NORMAL,       CBX_BREAKER_NORMAL,
                CBX_BREAKER_FORCED_OPEN, CBX_BREAKER_METRICS_ONLY, CBX_BREAKER_FORCED_CLOSED};
            cbx_breaker_mode m = modes[(r >> 8) % 6];
            if ((r >> 16) % 8 == 0) {
                cbx_breaker_set_mode(a, m);
                cbx_breaker_set_mode(b, m);
            }
        }
        cbx_breaker_state now = cbx_breaker_state_now(a);
        st.transitions += now != last;
        last = now;
        expect_same_metrics(a, b, i);
    }
    return st;
}

static cbx_breaker_opts rich_opts(void)
{
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.name = "db";
    o.consecutive_failures = 6;
    o.count_window.calls = 20;
    o.count_window.min_calls = 8;
    o.count_window.failure_rate = 0.6;
    o.count_window.slow_rate = 0.8;
    o.time_window.length_ns = 10 * S;
    o.time_window.buckets = 10;
    o.time_window.min_calls = 10;
    o.time_window.failure_rate = 0.7;
    o.slow_call_ns = 200 * MS;
    o.open_ns = 2 * S;
    o.open_multiplier = 2;
    o.open_max_ns = 20 * S;
    o.half_open_probes = 3;
    o.close_after = 2;
    o.probe_lease_ns = 1 * S;
    return o;
}

static void call(cbx_breaker *b, cbx_outcome kind, int64_t lat)
{
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0, "refused: %s", cbx_err_name(p.rc));
    cbx_breaker_record(b, p, kind, lat);
}

Test(breaker_state, closed_with_window_contents_round_trips)
{
    cbx_clock *clk = cbx_clock_virtual(1000);
    cbx_breaker_opts o = rich_opts();
    cbx_breaker *a = make(o, clk);
    for (int i = 0; i < 7; i++) {
        call(a,
             i == 5       ? CBX_OUTCOME_IGNORED
             : i % 3 == 0 ? CBX_OUTCOME_ERROR
                          : CBX_OUTCOME_SUCCESS,
             (int64_t)(i * 37 * MS));
        cbx_clock_advance(clk, 700);
    }
    cr_assert_eq(cbx_breaker_state_now(a), CBX_BREAKER_CLOSED);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(a, &m);
    cr_assert_eq(m.calls, 7);
    cr_assert_eq(m.ignored, 1);
    cr_assert_gt(m.latency_count, 0);

    cbx_breaker *b = clone(a, o, clk);
    expect_same_metrics(a, b, -1);
    held h = {0};
    drive_stats st = drive(a, b, clk, &h, 42, 4000, 0.45, 800 * MS);
    cr_assert_gt(st.transitions, 10, "the run never left CLOSED (%d changes)", st.transitions);
    cr_assert_gt(st.refused, 0);
    cr_assert_gt(st.probes, 0);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(breaker_state, open_round_trips_with_its_trip_and_open_time)
{
    cbx_clock *clk = cbx_clock_virtual(5000);
    cbx_breaker_opts o = rich_opts();
    cbx_breaker *a = make(o, clk);
    for (int i = 0; i < 6; i++)
        call(a, CBX_OUTCOME_ERROR, 5 * MS);
    cr_assert_eq(cbx_breaker_state_now(a), CBX_BREAKER_OPEN);
    cbx_clock_advance(clk, 500);
    cr_assert_eq(cbx_breaker_acquire(a).rc, CBX_ECIRCUIT_OPEN);

    cbx_breaker *b = clone(a, o, clk);
    cbx_breaker_rejection wa, wb;
    cbx_permit p = cbx_breaker_acquire_ex(a, &wa), q = cbx_breaker_acquire_ex(b, &wb);
    expect_same_permit(p, q, -1);
    cr_assert_eq(p.rc, CBX_ECIRCUIT_OPEN);
    expect_same_why(&wa, &wb, -1);
    cr_assert_eq(wb.reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
    cr_assert_eq(wb.consecutive_failures, 6);
    cr_assert_eq(wb.retry_in_ns, 1500 * MS);

    held h = {0};
    drive(a, b, clk, &h, 7, 3000, 0.5, 600 * MS);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(breaker_state, half_open_with_leases_round_trips)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o = rich_opts();
    cbx_breaker *a = make(o, clk);
    for (int i = 0; i < 6; i++)
        call(a, CBX_OUTCOME_ERROR, -1);
    cbx_clock_advance(clk, 2000);
    /* one probe lease runs out (remembered as expired), the breaker re-opens, then half-opens
     * again with two leases out */
    cbx_permit lost = cbx_breaker_acquire(a);
    cr_assert_eq(lost.rc, 0);
    cr_assert_neq(lost.slot, 0);
    cbx_clock_advance(clk, 1001);
    cr_assert_eq(cbx_breaker_state_now(a), CBX_BREAKER_OPEN);
    cbx_clock_advance(clk, 4000); /* the open time doubled */
    held h = {0};
    h.p[h.n++] = lost;
    for (int i = 0; i < 3; i++) {
        cbx_permit p = cbx_breaker_acquire(a);
        cr_assert_eq(p.rc, 0);
        cr_assert_neq(p.slot, 0, "not a probe");
        h.p[h.n++] = p;
    }
    /* one probe succeeds: one more success closes it (close_after 2) */
    cbx_breaker_record(a, h.p[--h.n], CBX_OUTCOME_SUCCESS, 3 * MS);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(a, &m);
    cr_assert_eq(m.state, CBX_BREAKER_HALF_OPEN);
    cr_assert_eq(m.probes_in_flight, 2);
    cr_assert_eq(m.expired_probes, 1);
    cr_assert_eq(m.reopens, 1);

    cbx_breaker *b = clone(a, o, clk);
    expect_same_metrics(a, b, -1);
    /* the late report of the expired lease counts as late in both */
    cbx_breaker_record(a, lost, CBX_OUTCOME_SUCCESS, 10 * MS);
    cbx_breaker_record(b, lost, CBX_OUTCOME_SUCCESS, 10 * MS);
    h.p[0] = h.p[--h.n];
    cbx_breaker_metrics_get(b, &m);
    cr_assert_eq(m.late_results, 1);
    expect_same_metrics(a, b, -1);
    /* a third probe fits, a fourth does not */
    cbx_permit p = cbx_breaker_acquire(a), q = cbx_breaker_acquire(b);
    expect_same_permit(p, q, -1);
    cr_assert_eq(p.rc, 0);
    h.p[h.n++] = p;
    cbx_breaker_rejection wa, wb;
    p = cbx_breaker_acquire_ex(a, &wa);
    q = cbx_breaker_acquire_ex(b, &wb);
    expect_same_permit(p, q, -1);
    cr_assert_eq(p.rc, CBX_EHALF_OPEN_FULL);
    expect_same_why(&wa, &wb, -1);
    /* the second success closes both */
    p = h.p[--h.n];
    cbx_breaker_record(a, p, CBX_OUTCOME_SUCCESS, 3 * MS);
    cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, 3 * MS);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    expect_same_metrics(a, b, -1);

    drive(a, b, clk, &h, 99, 3000, 0.35, 400 * MS);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(breaker_state, modes_round_trip)
{
    static const cbx_breaker_mode modes[] = {CBX_BREAKER_FORCED_OPEN, CBX_BREAKER_FORCED_CLOSED,
                                             CBX_BREAKER_DISABLED, CBX_BREAKER_METRICS_ONLY};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        cbx_clock *clk = cbx_clock_virtual(0);
        cbx_breaker_opts o = rich_opts();
        cbx_breaker *a = make(o, clk);
        cbx_breaker_set_mode(a, modes[i]);
        cbx_breaker *b = clone(a, o, clk);
        cr_assert_eq(cbx_breaker_mode_now(b), modes[i]);
        held h = {0};
        drive(a, b, clk, &h, 1000 + i, 500, 0.6, 300 * MS);
        cbx_breaker_free(a);
        cbx_breaker_free(b);
        cbx_clock_free(clk);
    }
}

Test(breaker_state, default_options_round_trip_and_stay_small)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    cbx_breaker *a = make(o, clk);
    for (int i = 0; i < 50; i++)
        call(a, CBX_OUTCOME_SUCCESS, (int64_t)(1000 + i * 10));
    uint8_t buf[16384];
    int n = cbx__breaker_state_save(a, buf, sizeof buf);
    cr_assert_gt(n, 0);
    cr_assert_lt(n, 512, "a default breaker's state took %d bytes", n);
    cbx_breaker *b = clone(a, o, clk);
    held h = {0};
    drive(a, b, clk, &h, 5, 2000, 0.3, 30 * S);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(breaker_state, thresholds_may_differ_but_the_shape_may_not)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o = rich_opts();
    cbx_breaker *a = make(o, clk);
    call(a, CBX_OUTCOME_ERROR, 1);
    call(a, CBX_OUTCOME_ERROR, 1);
    uint8_t buf[32768];
    int n = cbx__breaker_state_save(a, buf, sizeof buf);
    cr_assert_gt(n, 0);

    cbx_breaker_opts t = o;
    t.consecutive_failures = 3;
    t.open_ns = 9 * S;
    cbx_breaker *b = make(t, clk);
    cr_assert_eq(cbx__breaker_state_load(b, buf, (size_t)n), 0);
    call(b, CBX_OUTCOME_ERROR, 1); /* the third in a row under b's own rule */
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);

    cbx_breaker_opts shapes[4] = {o, o, o, o};
    shapes[0].count_window.calls = 21;
    shapes[1].time_window.buckets = 20;
    shapes[2].time_window.length_ns = 20 * S;
    shapes[3].half_open_probes = 4;
    for (int i = 0; i < 4; i++) {
        cbx_breaker *c = make(shapes[i], clk);
        call(c, CBX_OUTCOME_SUCCESS, 1);
        cr_assert_eq(cbx__breaker_state_load(c, buf, (size_t)n), CBX_EPARSE, "shape %d", i);
        cbx_breaker_metrics m;
        cbx_breaker_metrics_get(c, &m);
        cr_assert_eq(m.calls, 1, "shape %d: a refused record changed the breaker", i);
        cr_assert_eq(m.failures, 0);
        cbx_breaker_free(c);
    }
    cbx_breaker_free(a);
    cbx_clock_free(clk);
}

Test(breaker_state, damaged_records_are_refused_and_change_nothing)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o = rich_opts();
    cbx_breaker *a = make(o, clk);
    for (int i = 0; i < 6; i++)
        call(a, i & 1 ? CBX_OUTCOME_ERROR : CBX_OUTCOME_SUCCESS, (int64_t)(i * 50 * MS));
    uint8_t buf[32768], bad[32768];
    int n = cbx__breaker_state_save(a, buf, sizeof buf);
    cr_assert_gt(n, 0);
    cbx_breaker *b = make(o, clk);

    /* every truncation */
    for (int len = 0; len < n; len++)
        cr_assert_eq(cbx__breaker_state_load(b, buf, (size_t)len), CBX_EPARSE, "length %d", len);
    /* trailing bytes */
    memcpy(bad, buf, (size_t)n);
    bad[n] = 0;
    cr_assert_eq(cbx__breaker_state_load(b, bad, (size_t)n + 1), CBX_EPARSE);
    cr_assert_eq(cbx__breaker_state_load(b, NULL, 0), CBX_EPARSE);
    /* every single-bit flip either loads (a plain counter changed) or is refused; never a
     * crash, and a refused one leaves b as it was */
    int refused = 0;
    for (int i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, buf, (size_t)n);
            bad[i] ^= (uint8_t)(1u << bit);
            cbx_breaker *c = make(o, clk);
            int r = cbx__breaker_state_load(c, bad, (size_t)n);
            cr_assert(r == 0 || r == CBX_EPARSE);
            if (r) {
                refused++;
                cbx_breaker_metrics m;
                cbx_breaker_metrics_get(c, &m);
                cr_assert_eq(m.calls, 0);
                cr_assert_eq(m.latency_count, 0);
            } else {
                /* still usable */
                cbx_permit p = cbx_breaker_acquire(c);
                cbx_breaker_record(c, p, CBX_OUTCOME_SUCCESS, 1);
            }
            cbx_breaker_free(c);
        }
    }
    cr_assert_gt(refused, 8 * 20, "only %d flips were refused", refused);
    /* the header: magic, version */
    memcpy(bad, buf, (size_t)n);
    bad[0] ^= 1;
    cr_assert_eq(cbx__breaker_state_load(b, bad, (size_t)n), CBX_EPARSE);
    memcpy(bad, buf, (size_t)n);
    bad[4] = 1; /* version 1 (no half-open probe tally) */
    cr_assert_eq(cbx__breaker_state_load(b, bad, (size_t)n), CBX_EPARSE);
    memcpy(bad, buf, (size_t)n);
    bad[4] = 4; /* a version from the future */
    cr_assert_eq(cbx__breaker_state_load(b, bad, (size_t)n), CBX_EPARSE);
    memcpy(bad, buf, (size_t)n);
    bad[4] = 2; /* version 2 has one outcome kind fewer (no oom): not this record's shape */
    cr_assert_eq(cbx__breaker_state_load(b, bad, (size_t)n), CBX_EPARSE);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* The fullest state a breaker can hold must fit the size it announces. */
Test(breaker_state, the_size_bound_holds_for_the_fullest_state)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = 2;
    o.count_window.calls = 65536;
    o.time_window.length_ns = 3600 * S;
    o.time_window.buckets = 3600;
    o.half_open_probes = 64;
    o.probe_lease_ns = 1 * S;
    o.open_ns = 1 * S;
    cbx_breaker *a = make(o, clk);
    /* every latency bucket, the whole count ring, every time bucket (while CLOSED) */
    for (unsigned i = 0; i < CBX__HIST_BUCKETS; i++) {
        uint64_t width, low = cbx__hist_bucket_low(i, &width);
        call(a, i % 2 ? CBX_OUTCOME_ERROR : CBX_OUTCOME_SUCCESS, (int64_t)low);
    }
    for (int i = 0; i < 65536; i++) {
        call(a, i % 2 ? CBX_OUTCOME_ERROR : CBX_OUTCOME_SUCCESS, 3);
        if (i % 18 == 0)
            cbx_clock_advance(clk, 1000);
    }
    call(a, CBX_OUTCOME_ERROR, 3); /* two in a row: OPEN, windows kept */
    cr_assert_eq(cbx_breaker_state_now(a), CBX_BREAKER_OPEN);
    /* expired leases in every remembered place, then 64 probes out */
    for (int round = 0; round < 5; round++) {
        cbx_clock_advance(clk, 1000);
        for (int i = 0; i < 64; i++)
            cr_assert_eq(cbx_breaker_acquire(a).rc, 0, "round %d probe %d", round, i);
        if (round < 4) {
            cbx_clock_advance(clk, 1000);
            cr_assert_eq(cbx_breaker_state_now(a), CBX_BREAKER_OPEN); /* every lease ran out */
        }
    }
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(a, &m);
    cr_assert_eq(m.probes_in_flight, 64);
    cr_assert_eq(m.latency_count, CBX__HIST_BUCKETS + 65537);

    size_t cap = cbx__breaker_state_size(a);
    uint8_t *buf = malloc(cap);
    int n = cbx__breaker_state_save(a, buf, cap);
    cr_assert_gt(n, 0);
    cr_assert_gt((size_t)n, cap * 9 / 10, "%d of %zu bytes: not the fullest state", n, cap);
    cr_assert_eq(cbx__breaker_state_save(a, buf, cap - 1), -ENOSPC);
    cbx_breaker *b = clone(a, o, clk);
    expect_same_metrics(a, b, -1);
    cbx_breaker_free(b);
    free(buf);
    cbx_breaker_free(a);
    cbx_clock_free(clk);
}

/* Expired-lease memory and 64 probes in flight, saved and loaded. */
Test(breaker_state, many_probes_and_expired_leases_round_trip)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = 1;
    o.half_open_probes = 64;
    o.close_after = 64;
    o.open_ns = 1 * S;
    o.probe_lease_ns = 1 * S;
    cbx_breaker *a = make(o, clk);
    call(a, CBX_OUTCOME_ERROR, -1);
    held h = {0};
    cbx_permit expired = {0};
    /* five rounds of 64 probes that all expire: 320 serials, the memory wraps */
    for (int round = 0; round < 5; round++) {
        cbx_clock_advance(clk, 1000); /* open time over (it does not grow: multiplier 1) */
        for (int i = 0; i < 64; i++) {
            cbx_permit p = cbx_breaker_acquire(a);
            cr_assert_eq(p.rc, 0, "round %d probe %d", round, i);
            if (round == 4)
                h.p[h.n++] = p;
            if (round == 3 && i == 7)
                expired = p;
        }
        if (round < 4) {
            cbx_clock_advance(clk, 1000);
            cr_assert_eq(cbx_breaker_state_now(a), CBX_BREAKER_OPEN); /* every lease ran out */
        }
    }
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(a, &m);
    cr_assert_eq(m.probes_in_flight, 64);
    cr_assert_eq(m.expired_probes, 4 * 64);
    cbx_breaker_record(a, expired, CBX_OUTCOME_SUCCESS, 1);
    cbx_breaker_metrics_get(a, &m);
    cr_assert_eq(m.late_results, 1);
    cbx_breaker *b = clone(a, o, clk);
    expect_same_metrics(a, b, -1);
    drive(a, b, clk, &h, 3, 2000, 0.2, 300 * MS);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Windows that wrap many times before a rule trips: what is in the ring and in each time
 * bucket decides when the trip comes. */
Test(breaker_state, window_contents_decide_the_same_trips)
{
    cbx_clock *clk = cbx_clock_virtual(77);
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = 0;
    o.count_window.calls = 50;
    o.count_window.failure_rate = 0.5;
    o.time_window.length_ns = 5 * S;
    o.time_window.buckets = 10;
    o.time_window.min_calls = 20;
    o.time_window.failure_rate = 0.45;
    o.time_window.slow_rate = 0.5;
    o.slow_call_ns = 200 * MS;
    o.open_ns = 1 * S;
    cbx_breaker *a = make(o, clk);
    uint64_t seed = 11;
    for (int i = 0; i < 45; i++) {
        uint64_t r = rng_next(&seed);
        call(a, r % 100 < 38 ? CBX_OUTCOME_ERROR : CBX_OUTCOME_SUCCESS,
             (int64_t)((r >> 8) % (300 * MS)));
        cbx_clock_advance_ns(clk, (r >> 32) % (200 * MS));
    }
    cr_assert_eq(cbx_breaker_state_now(a), CBX_BREAKER_CLOSED);
    cbx_breaker *b = clone(a, o, clk);
    held h = {0};
    drive_stats st = drive(a, b, clk, &h, 12345, 6000, 0.36, 150 * MS);
    cr_assert_gt(st.transitions, 6, "only %d state changes", st.transitions);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* A deterministic wrap of the count ring: the entries replaced decide the failure count. */
Test(breaker_state, count_ring_entries_are_kept)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = 0;
    o.count_window.calls = 10;
    o.count_window.failure_rate = 0.5;
    cbx_breaker *a = make(o, clk);
    for (int i = 0; i < 10; i++) /* F F F F S S S S S S */
        call(a, i < 4 ? CBX_OUTCOME_ERROR : CBX_OUTCOME_SUCCESS, -1);
    cbx_breaker *b = clone(a, o, clk);
    /* S replaces an F (3 failures left); three Fs replace the other three (still 3); the
     * fifth call's F replaces an S (4); the sixth's another S (5 of 10): trip */
    static const cbx_outcome seq[] = {CBX_OUTCOME_SUCCESS, CBX_OUTCOME_ERROR, CBX_OUTCOME_ERROR,
                                      CBX_OUTCOME_ERROR,   CBX_OUTCOME_ERROR, CBX_OUTCOME_ERROR};
    int tripped_at = -1;
    for (int i = 0; i < 6 && tripped_at < 0; i++) {
        call(a, seq[i], -1);
        call(b, seq[i], -1);
        cbx_breaker_state x = cbx_breaker_state_now(a), y = cbx_breaker_state_now(b);
        cr_assert_eq(x, y, "call %d: %s vs %s", i, cbx_breaker_state_name(x),
                     cbx_breaker_state_name(y));
        if (x == CBX_BREAKER_OPEN)
            tripped_at = i;
    }
    cr_assert_eq(tripped_at, 5, "tripped at %d", tripped_at);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Lease deadlines and the open time survive to the nanosecond. */
Test(breaker_state, deadlines_are_kept_to_the_nanosecond)
{
    cbx_clock *clk = cbx_clock_virtual(3);
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = 1;
    o.open_ns = 2 * S;
    o.probe_lease_ns = 1 * S;
    cbx_breaker *a = make(o, clk);
    call(a, CBX_OUTCOME_ERROR, -1);
    cbx_breaker *b = clone(a, o, clk);
    cbx_clock_advance_ns(clk, 2 * S - 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_clock_advance_ns(clk, 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_breaker_free(b);

    cr_assert_eq(cbx_breaker_acquire(a).rc, 0); /* the probe, lease until now + 1 s */
    b = clone(a, o, clk);
    cbx_clock_advance_ns(clk, 1 * S - 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_clock_advance_ns(clk, 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    cr_assert_eq(m.expired_probes, 1);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* The time window's buckets (their epochs, calls, failures and slow calls) decide a trip
 * right after the load. */
Test(breaker_state, time_buckets_are_kept)
{
    for (int slow = 0; slow < 2; slow++) {
        cbx_clock *clk = cbx_clock_virtual(0);
        cbx_breaker_opts o;
        cbx_breaker_opts_default(&o);
        o.consecutive_failures = 0;
        o.time_window.length_ns = 10 * S;
        o.time_window.buckets = 10;
        o.time_window.min_calls = 10;
        o.time_window.failure_rate = 0.5;
        o.time_window.slow_rate = 0.5;
        o.slow_call_ns = 100 * MS;
        cbx_breaker *a = make(o, clk);
        /* 4 bad calls in one bucket, 5 good ones in the next */
        for (int i = 0; i < 4; i++)
            call(a, slow ? CBX_OUTCOME_SUCCESS : CBX_OUTCOME_ERROR, slow ? 150 * MS : 1);
        cbx_clock_advance(clk, 1000);
        for (int i = 0; i < 5; i++)
            call(a, CBX_OUTCOME_SUCCESS, 1);
        cbx_clock_advance(clk, 1000);
        cbx_breaker *b = clone(a, o, clk);
        /* the tenth call, bad: 5 of 10 */
        call(b, slow ? CBX_OUTCOME_SUCCESS : CBX_OUTCOME_ERROR, slow ? 150 * MS : 1);
        cbx_breaker_rejection why;
        cbx_permit p = cbx_breaker_acquire_ex(b, &why);
        cr_assert_eq(p.rc, CBX_ECIRCUIT_OPEN, "slow=%d: not tripped", slow);
        cr_assert_eq(why.reason, slow ? CBX_BREAKER_REASON_TIME_SLOW_RATE
                                      : CBX_BREAKER_REASON_TIME_FAILURE_RATE);
        cr_assert_eq(why.window_calls, 10);
        cr_assert_eq(slow ? why.window_slow : why.window_failures, 5);
        cbx_breaker_free(a);
        cbx_breaker_free(b);
        cbx_clock_free(clk);
    }
}

/* Whatever an operation changes in the saved state, it changes the stamp too (stores skip
 * the save of an operation that left the stamp alone). */
Test(breaker_state, every_change_moves_the_stamp)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o = rich_opts();
    cbx_breaker *b = make(o, clk);
    size_t cap = cbx__breaker_state_size(b);
    uint8_t *before = malloc(cap), *after = malloc(cap);
    held h = {0};
    uint64_t seed = 2024;
    int changed = 0, same = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t r = rng_next(&seed);
        unsigned op = (unsigned)(r % 100);
        if (op >= 85 && op < 95) {
            cbx_clock_advance_ns(clk, (r >> 8) % (700 * MS));
            continue;
        }
        int n0 = cbx__breaker_state_save(b, before, cap);
        uint64_t s0 = cbx__breaker_state_stamp(b);
        if (op < 40 && h.n < MAX_HELD) {
            cbx_breaker_rejection why;
            cbx_permit p = cbx_breaker_acquire_ex(b, (r >> 8) & 1 ? &why : NULL);
            if (p.rc == 0)
                h.p[h.n++] = p;
        } else if (op < 85 && h.n > 0) {
            int k = (int)((r >> 8) % (uint64_t)h.n);
            cbx_permit p = h.p[k];
            h.p[k] = h.p[--h.n];
            static const cbx_outcome kinds[] = {CBX_OUTCOME_SUCCESS, CBX_OUTCOME_SUCCESS,
                                                CBX_OUTCOME_ERROR, CBX_OUTCOME_IGNORED,
                                                CBX_OUTCOME_TIMEOUT};
            cbx_breaker_record(b, p, kinds[(r >> 16) % 5],
                               (r >> 24) & 1 ? (int64_t)((r >> 25) % (400 * MS)) : -1);
        } else if (op < 97) {
            cbx_breaker_metrics m;
            cbx_breaker_metrics_get(b, &m);
        } else {
            cbx_breaker_set_mode(b, (cbx_breaker_mode)((r >> 8) % 5));
        }
        int n1 = cbx__breaker_state_save(b, after, cap);
        uint64_t s1 = cbx__breaker_state_stamp(b);
        if (n0 != n1 || memcmp(before, after, (size_t)n0) != 0) {
            cr_assert_neq(s0, s1, "step %d (op %u): the state changed, the stamp did not", i, op);
            changed++;
        } else {
            same++;
        }
    }
    cr_assert_gt(changed, 1000);
    cr_assert_gt(same, 100);
    free(before);
    free(after);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Half-open judged by rate: the tally of the probes reported so far is part of the state. A
 * record without it would let the loaded breaker close on the next two successes. */
Test(breaker_state, half_open_probe_tally_round_trips)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o = rich_opts();
    o.half_open_judge = CBX_BREAKER_JUDGE_RATE;
    o.half_open_failure_rate = 0.5;
    o.close_after = 4;
    o.half_open_max_ns = 30 * S;
    cbx_breaker *a = make(o, clk);
    for (int i = 0; i < 6; i++)
        call(a, CBX_OUTCOME_ERROR, -1);
    cbx_clock_advance(clk, 2000);
    call(a, CBX_OUTCOME_ERROR, -1); /* probe 1 of 4 fails */
    call(a, CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(cbx_breaker_state_now(a), CBX_BREAKER_HALF_OPEN);
    cbx_breaker *b = clone(a, o, clk);
    expect_same_metrics(a, b, -1);
    call(a, CBX_OUTCOME_SUCCESS, -1);
    call(b, CBX_OUTCOME_SUCCESS, -1);
    call(a, CBX_OUTCOME_ERROR, -1); /* 2 of 4 failed: re-open */
    call(b, CBX_OUTCOME_ERROR, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_rejection wa, wb;
    cbx_breaker_acquire_ex(a, &wa);
    cbx_breaker_acquire_ex(b, &wb);
    expect_same_why(&wa, &wb, -1);
    cr_assert_eq(wb.reason, CBX_BREAKER_REASON_PROBE_FAILURE_RATE);
    held h = {0};
    drive(a, b, clk, &h, 1234, 3000, 0.4, 900 * MS);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

static int three_in_a_row(const cbx_breaker_counts *c, void *ud)
{
    (void)ud;
    return c->consecutive_failures >= 3;
}

/* Every trip reason loads, the newest included (a breaker opened by its trip predicate), and so
 * do a manual open for a time and the initial OPEN. */
Test(breaker_state, the_newest_trip_reasons_round_trip)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_opts o = rich_opts();
    o.consecutive_failures = 0;
    o.count_window.failure_rate = 0;
    o.time_window.failure_rate = 0;
    o.trip_fn = three_in_a_row;
    cbx_breaker *a = make(o, clk);
    for (int i = 0; i < 3; i++)
        call(a, CBX_OUTCOME_ERROR, -1);
    cbx_breaker *b = clone(a, o, clk);
    cbx_breaker_rejection wa, wb;
    cbx_breaker_acquire_ex(a, &wa);
    cbx_breaker_acquire_ex(b, &wb);
    expect_same_why(&wa, &wb, -1);
    cr_assert_eq(wb.reason, CBX_BREAKER_REASON_PREDICATE);
    cbx_breaker_free(b);

    cbx_breaker_force_open_for(a, 5 * S);
    b = clone(a, o, clk);
    cbx_breaker_acquire_ex(b, &wb);
    cr_assert_eq(wb.reason, CBX_BREAKER_REASON_MANUAL);
    cr_assert_eq(wb.retry_in_ns, 5 * S);
    cbx_breaker_free(a);
    cbx_breaker_free(b);

    o.initial_state = CBX_BREAKER_OPEN;
    a = make(o, clk);
    b = clone(a, o, clk);
    cbx_breaker_acquire_ex(b, &wb);
    cr_assert_eq(wb.reason, CBX_BREAKER_REASON_INITIAL);
    cr_assert_eq(wb.retry_in_ns, 2 * S);
    cbx_breaker_free(a);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}
