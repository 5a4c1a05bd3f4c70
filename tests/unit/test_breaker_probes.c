/* Circuit breaker OPEN and HALF_OPEN: refusals and their explanation, half-open probes,
 * re-open growth, probe leases and late reports. All on virtual time. */
#include "cbx/breaker.h"
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/outcome.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define MS CBX_NS_PER_MS
#define S  CBX_NS_PER_S

typedef struct evlog {
    int n;
    cbx_breaker_event ev[32];
    char name[32][32];
} evlog;

static void on_event(const cbx_breaker_event *ev, void *ud)
{
    evlog *l = ud;
    cr_assert_lt(l->n, 32);
    l->ev[l->n] = *ev;
    snprintf(l->name[l->n], sizeof l->name[0], "%s", ev->name);
    l->ev[l->n].name = l->name[l->n];
    l->n++;
}

static cbx_breaker *make(cbx_breaker_opts o, cbx_clock *clk)
{
    cbx_breaker *b = NULL;
    cbx_err err = {0};
    o.clock = clk;
    int r = cbx_breaker_new(&b, &o, &err);
    cr_assert_eq(r, 0, "cbx_breaker_new: %s (%s)", err.msg, err.where);
    return b;
}

static void call(cbx_breaker *b, cbx_outcome kind)
{
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0, "call refused: %s", cbx_strerror(p.rc));
    cbx_breaker_record(b, p, kind, -1);
}

static void fail(cbx_breaker *b)
{
    call(b, CBX_OUTCOME_ERROR);
}

static cbx_breaker_state state(cbx_breaker *b)
{
    return cbx_breaker_state_now(b);
}

static cbx_breaker_metrics metrics(cbx_breaker *b)
{
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    return m;
}

static cbx_breaker_rejection refusal(cbx_breaker *b, int want_rc)
{
    cbx_breaker_rejection why;
    memset(&why, 0xab, sizeof why);
    cbx_permit p = cbx_breaker_acquire_ex(b, &why);
    cr_assert_eq(p.rc, want_rc, "acquire: got %s, want %s", cbx_err_name(p.rc),
                 cbx_err_name(want_rc));
    cr_assert_eq(why.rc, want_rc);
    return why;
}

static cbx_permit probe(cbx_breaker *b)
{
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0, "probe refused: %s", cbx_strerror(p.rc));
    cr_assert_eq(p.state, CBX_BREAKER_HALF_OPEN);
    return p;
}

/* buf is prefix followed by a duration of value unit ("25s" or "25.0s" for 25 s). */
static void expect_line(const char *buf, const char *prefix, double value, const char *unit)
{
    cr_assert_not_null(buf);
    size_t n = strlen(prefix);
    cr_assert(strncmp(buf, prefix, n) == 0, "'%s' does not start with '%s'", buf, prefix);
    double v = -1;
    char u[4] = "";
    cr_assert_eq(sscanf(buf + n, "%lf%3s", &v, u), 2, "no duration at the end of '%s'", buf);
    cr_assert_float_eq(v, value, 1e-9, "'%s': wait %g, want %g", buf, v, value);
    cr_assert_str_eq(u, unit, "'%s'", buf);
}

/* ---- OPEN ------------------------------------------------------------------------------ */

Test(open, refuses_and_explains_with_a_shrinking_wait)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.name = "db", .consecutive_failures = 5, .open_ns = 30 * S}, clk);
    for (int i = 0; i < 5; i++)
        fail(b);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);

    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.state, CBX_BREAKER_OPEN);
    cr_assert_eq(why.mode, CBX_BREAKER_NORMAL);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
    cr_assert_eq(why.consecutive_failures, 5);
    cr_assert_eq(why.reopens, 0);
    cr_assert_eq(why.probes_in_flight, 0);
    cr_assert_eq(why.retry_in_ns, 30 * S);

    cbx_clock_advance(clk, 5000);
    why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.retry_in_ns, 25 * S);
    char buf[256];
    cr_assert_eq(cbx_breaker_explain(b, &why, buf, sizeof buf), buf);
    expect_line(buf, "breaker 'db' is open: 5 consecutive failures; next probe in ", 25.0, "s");

    cbx_clock_advance(clk, 24999);
    why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.retry_in_ns, 1 * MS);
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert(strstr(buf, "next probe in 1ms"), "%s", buf);

    cr_assert_eq(metrics(b).rejections, 4);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(open, explains_a_window_trip)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.name = "api",
                                             .count_window = {.calls = 10, .failure_rate = 0.5},
                                             .open_ns = 2 * S},
                          clk);
    for (int i = 0; i < 5; i++)
        call(b, CBX_OUTCOME_SUCCESS);
    for (int i = 0; i < 5; i++)
        fail(b);
    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    char buf[256];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    expect_line(buf, "breaker 'api' is open: 5 of the last 10 calls (50%) failed; next probe in ",
                2.0, "s");
    /* A short buffer is cut, never overrun. */
    char small[16];
    memset(small, 'x', sizeof small);
    cbx_breaker_explain(b, &why, small, 12);
    cr_assert_str_eq(small, "breaker 'ap");
    cr_assert_eq(small[12], 'x');
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(open, acquire_without_explanation_refuses_too)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = S}, clk);
    fail(b);
    for (int i = 0; i < 10; i++) {
        cbx_permit p = cbx_breaker_acquire(b);
        cr_assert_eq(p.rc, CBX_ECIRCUIT_OPEN);
        cr_assert_eq(p.state, CBX_BREAKER_OPEN);
        cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, -1); /* a refused permit is ignored */
        cbx_clock_advance(clk, 99);
    }
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.rejections, 10);
    cr_assert_eq(m.calls, 1);
    cr_assert_eq(m.successes, 0);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- HALF_OPEN ------------------------------------------------------------------------- */

Test(half_open, starts_when_open_time_is_up)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = S}, clk);
    fail(b);
    cbx_clock_advance(clk, 999);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);
    cbx_clock_advance(clk, 1);
    cr_assert_eq(state(b), CBX_BREAKER_HALF_OPEN);
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(half_open, admits_exactly_the_probes_then_refuses)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.name = "svc",
                                             .consecutive_failures = 1,
                                             .open_ns = S,
                                             .half_open_probes = 2,
                                             .close_after = 2,
                                             .probe_lease_ns = 10 * S},
                          clk);
    fail(b);
    cbx_clock_advance(clk, 1000);
    cbx_permit p1 = probe(b);
    cbx_clock_advance(clk, 1000);
    cbx_permit p2 = probe(b);
    cr_assert_neq(p1.slot, p2.slot);
    cbx_breaker_rejection why = refusal(b, CBX_EHALF_OPEN_FULL);
    cr_assert_eq(why.state, CBX_BREAKER_HALF_OPEN);
    cr_assert_eq(why.probes_in_flight, 2);
    cr_assert_eq(why.retry_in_ns, 9 * S); /* p1's lease ends first */
    char buf[256];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert(strstr(buf, "'svc'") && strstr(buf, "half-open"), "%s", buf);
    expect_line(strstr(buf, "at most "), "at most ", 9.0, "s");
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_EHALF_OPEN_FULL);
    cr_assert_eq(metrics(b).probes_in_flight, 2);

    cbx_breaker_record(b, p1, CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_HALF_OPEN, "closed after 1 of 2 successes");
    cr_assert_eq(metrics(b).probes_in_flight, 1);
    cbx_breaker_record(b, p2, CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.probes_in_flight, 0);
    cr_assert_eq(m.successes, 2);
    cr_assert_eq(m.rejections, 2);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(half_open, close_after_can_exceed_the_probe_slots)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make(
        (cbx_breaker_opts){
            .consecutive_failures = 1, .open_ns = S, .half_open_probes = 1, .close_after = 3},
        clk);
    fail(b);
    cbx_clock_advance(clk, 1000);
    for (int i = 0; i < 2; i++) {
        cbx_permit p = probe(b);
        cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_EHALF_OPEN_FULL);
        cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, -1);
        cr_assert_eq(state(b), CBX_BREAKER_HALF_OPEN, "closed after %d of 3", i + 1);
    }
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(half_open, close_after_defaults_to_the_probe_count)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make(
        (cbx_breaker_opts){.consecutive_failures = 1, .open_ns = S, .half_open_probes = 3}, clk);
    fail(b);
    cbx_clock_advance(clk, 1000);
    cbx_permit p[3] = {probe(b), probe(b), probe(b)};
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_EHALF_OPEN_FULL);
    cbx_breaker_record(b, p[0], CBX_OUTCOME_SUCCESS, -1);
    cbx_breaker_record(b, p[1], CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_HALF_OPEN, "closed after 2 of 3 successes");
    cbx_breaker_record(b, p[2], CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(half_open, a_released_or_ignored_probe_frees_its_slot)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = S,
                                             .failure_kinds = CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR)},
                          clk);
    fail(b);
    cbx_clock_advance(clk, 1000);
    cbx_breaker_release(b, probe(b));
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_RATE_LIMITED, -1); /* not a listed failure */
    cr_assert_eq(state(b), CBX_BREAKER_HALF_OPEN);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.ignored, 2);
    cr_assert_eq(m.probes_in_flight, 0);
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(half_open, a_probe_failure_reopens)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make(
        (cbx_breaker_opts){.consecutive_failures = 1, .open_ns = S, .half_open_probes = 3}, clk);
    fail(b);
    cbx_clock_advance(clk, 1000);
    cbx_permit p = probe(b);
    cbx_breaker_record(b, p, CBX_OUTCOME_TIMEOUT, -1);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_PROBE_FAILED);
    cr_assert_eq(why.reopens, 1);
    cr_assert_eq(why.retry_in_ns, S);
    char buf[256];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert(strstr(buf, "probe failed"), "%s", buf);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.opens, 2);
    cr_assert_eq(m.reopens, 1);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_TIMEOUT], 1);
    cr_assert_eq(m.failures, 2);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- re-open growth -------------------------------------------------------------------- */

/* Reopen from HALF_OPEN after the current open time, checking it on the way. */
static void expect_open_for(cbx_breaker *b, cbx_clock *clk, evlog *l, uint64_t want_ns)
{
    cr_assert_eq(l->ev[l->n - 1].to, CBX_BREAKER_OPEN);
    cr_assert_eq(l->ev[l->n - 1].open_for_ns, want_ns, "event open_for %llu, want %llu",
                 (unsigned long long)l->ev[l->n - 1].open_for_ns, (unsigned long long)want_ns);
    cr_assert_eq(refusal(b, CBX_ECIRCUIT_OPEN).retry_in_ns, want_ns);
    cbx_clock_advance_ns(clk, want_ns - 1);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN, "opened for less than %llu ns",
                 (unsigned long long)want_ns);
    cbx_clock_advance_ns(clk, 1);
}

Test(reopen, grows_by_the_multiplier_up_to_the_cap_and_resets_on_close)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = S,
                                             .open_multiplier = 2,
                                             .open_max_ns = 5 * S,
                                             .on_event = on_event,
                                             .event_ud = &l},
                          clk);
    fail(b);
    expect_open_for(b, clk, &l, 1 * S); /* first open */
    const uint64_t want[] = {2 * S, 4 * S, 5 * S, 5 * S};
    for (int i = 0; i < 4; i++) {
        cbx_breaker_record(b, probe(b), CBX_OUTCOME_ERROR, -1);
        cr_assert_eq(metrics(b).reopens, (uint32_t)i + 1);
        expect_open_for(b, clk, &l, want[i]); /* re-open i + 1 */
    }
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cr_assert_eq(metrics(b).reopens, 0);
    fail(b);
    expect_open_for(b, clk, &l, 1 * S); /* growth forgotten */
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_ERROR, -1);
    expect_open_for(b, clk, &l, 2 * S);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(reopen, fractional_multiplier_without_cap)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = 1000 * MS,
                                             .open_multiplier = 1.5,
                                             .on_event = on_event,
                                             .event_ud = &l},
                          clk);
    fail(b);
    expect_open_for(b, clk, &l, 1000 * MS);
    const uint64_t want[] = {1500 * MS, 2250 * MS, 3375 * MS};
    for (int i = 0; i < 3; i++) {
        cbx_breaker_record(b, probe(b), CBX_OUTCOME_ERROR, -1);
        expect_open_for(b, clk, &l, want[i]);
    }
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(reopen, multiplier_one_keeps_the_open_time)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make(
        (cbx_breaker_opts){
            .consecutive_failures = 1, .open_ns = 3 * S, .on_event = on_event, .event_ud = &l},
        clk);
    fail(b);
    for (int i = 0; i < 4; i++) {
        expect_open_for(b, clk, &l, 3 * S);
        cbx_breaker_record(b, probe(b), CBX_OUTCOME_ERROR, -1);
    }
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- probe leases ---------------------------------------------------------------------- */

Test(lease, an_unreported_probe_fails_as_a_timeout_and_reopens)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = S,
                                             .open_multiplier = 2,
                                             .probe_lease_ns = 10 * S,
                                             .on_event = on_event,
                                             .event_ud = &l},
                          clk);
    fail(b);
    cbx_clock_advance(clk, 1000);
    cbx_permit lost = probe(b);

    cbx_clock_advance(clk, 9999);
    cr_assert_eq(refusal(b, CBX_EHALF_OPEN_FULL).retry_in_ns, 1 * MS);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.expired_probes, 0, "expired before its deadline");
    cr_assert_eq(m.state, CBX_BREAKER_HALF_OPEN);

    cbx_clock_advance(clk, 1);
    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_PROBE_EXPIRED);
    cr_assert_eq(why.reopens, 1);
    cr_assert_eq(why.retry_in_ns, 2 * S, "an expiry is a re-open and grows the open time");
    char buf[256];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert(strstr(buf, "never reported"), "%s", buf);

    m = metrics(b);
    cr_assert_eq(m.expired_probes, 1);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_TIMEOUT], 1);
    cr_assert_eq(m.failures, 2);
    cr_assert_eq(m.calls, 2);
    cr_assert_eq(m.probes_in_flight, 0);
    cr_assert_eq(m.late_results, 0);
    cr_assert_eq(l.ev[l.n - 1].from, CBX_BREAKER_HALF_OPEN);
    cr_assert_eq(l.ev[l.n - 1].to, CBX_BREAKER_OPEN);
    cr_assert_eq(l.ev[l.n - 1].reason, CBX_BREAKER_REASON_PROBE_EXPIRED);
    cr_assert_eq(l.ev[l.n - 1].at_ns, 11 * S);
    int events = l.n;

    /* The lost probe reports at last: counted as late, nothing else moves. */
    cbx_breaker_record(b, lost, CBX_OUTCOME_SUCCESS, -1);
    m = metrics(b);
    cr_assert_eq(m.late_results, 1);
    cr_assert_eq(m.successes, 0);
    cr_assert_eq(m.calls, 2);
    cr_assert_eq(m.failures, 2);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN);
    cr_assert_eq(refusal(b, CBX_ECIRCUIT_OPEN).retry_in_ns, 2 * S);
    cr_assert_eq(l.n, events, "a late report changed the state");

    /* The slot is free for the next half-open period. */
    cbx_clock_advance(clk, 2000);
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(lease, expiry_is_noticed_by_state_and_metrics_too)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make(
        (cbx_breaker_opts){.consecutive_failures = 1, .open_ns = S, .probe_lease_ns = 500 * MS},
        clk);
    fail(b);
    cbx_clock_advance(clk, 1000);
    cbx_permit p = probe(b);
    cbx_clock_advance(clk, 500);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);

    b = make(
        (cbx_breaker_opts){.consecutive_failures = 1, .open_ns = S, .probe_lease_ns = 500 * MS},
        clk);
    fail(b);
    cbx_clock_advance(clk, 1000);
    p = probe(b);
    cbx_clock_advance(clk, 500);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN);
    cr_assert_eq(m.expired_probes, 1);
    /* A report exactly at the deadline was already too late. */
    cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(metrics(b).late_results, 1);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(lease, a_late_failure_after_reclosing_changes_nothing)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = S,
                                             .half_open_probes = 2,
                                             .close_after = 1,
                                             .probe_lease_ns = 5 * S},
                          clk);
    fail(b);
    cbx_clock_advance(clk, 1000);
    cbx_permit lost = probe(b);
    cbx_clock_advance(clk, 5000); /* expires: open again for 1 s */
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_clock_advance(clk, 1000);
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);

    cbx_breaker_record(b, lost, CBX_OUTCOME_ERROR, -1);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_CLOSED, "a late probe failure re-opened a closed breaker");
    cr_assert_eq(m.consecutive_failures, 0);
    cr_assert_eq(m.late_results, 1);
    cr_assert_eq(m.failures, 2); /* the first trip and the expiry */
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* A probe whose lease was cancelled by a transition (not expired) is an ordinary stale report:
 * p2's lease is still running when p1's failure re-opens the breaker; p2's success 1 s later
 * counts in successes and calls, not in late_results, and moves no state. */
Test(lease, a_probe_cancelled_by_a_transition_is_counted_not_late)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = 10 * S,
                                             .half_open_probes = 2,
                                             .probe_lease_ns = 30 * S},
                          clk);
    fail(b);
    cbx_clock_advance(clk, 10000);
    cbx_permit p1 = probe(b);
    cbx_permit p2 = probe(b);
    cbx_breaker_record(b, p1, CBX_OUTCOME_ERROR, -1);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_clock_advance(clk, 1000);
    cbx_breaker_record(b, p2, CBX_OUTCOME_SUCCESS, -1);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN, "the stale probe changed the state");
    cr_assert_eq(m.expired_probes, 0);
    cr_assert_eq(m.late_results, 0, "a lease that never expired was counted as late");
    cr_assert_eq(m.successes, 1, "the stale probe's success was not counted");
    cr_assert_eq(m.calls, 3);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}
