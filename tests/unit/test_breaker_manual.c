/* Circuit breaker opened by hand for a time, and the initial state and mode, restated from the
 * peers' suites (resilience4j CircuitBreakerStateMachineTest, Polly v8 CircuitBreakerManualControl
 * tests) against cbx's API. All on virtual time. */
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
    cbx_breaker_event ev[16];
} evlog;

static void on_event(const cbx_breaker_event *ev, void *ud)
{
    evlog *l = ud;
    cr_assert_lt(l->n, 16);
    l->ev[l->n] = *ev;
    l->ev[l->n].name = NULL;
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

static cbx_breaker_rejection refusal(cbx_breaker *b, int want_rc)
{
    cbx_breaker_rejection why;
    cbx_permit p = cbx_breaker_acquire_ex(b, &why);
    cr_assert_eq(p.rc, want_rc, "acquire: got %s, want %s", cbx_err_name(p.rc),
                 cbx_err_name(want_rc));
    return why;
}

/* ---- opening by hand for a time ---------------------------------------------------------- */

/* resilience4j: transitionToOpenStateFor(waitDuration) opens for that duration, then the
 * breaker half-opens as after a trip (shouldTransitionToOpenStateFor...). */
Test(manual, open_for_a_duration_then_half_opens)
{
    cbx_clock *clk = cbx_clock_virtual(1000);
    evlog log = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.name = "db",
                                             .consecutive_failures = 3,
                                             .open_ns = 60 * S,
                                             .on_event = on_event,
                                             .event_ud = &log},
                          clk);
    call(b, CBX_OUTCOME_ERROR); /* a run of failures that the manual open forgets */
    cbx_breaker_force_open_for(b, 10 * S);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cr_assert_eq(cbx_breaker_mode_now(b), CBX_BREAKER_NORMAL);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.ev[0].to, CBX_BREAKER_OPEN);
    cr_assert_eq(log.ev[0].reason, CBX_BREAKER_REASON_MANUAL);
    cr_assert_eq(log.ev[0].open_for_ns, 10 * S);
    cr_assert_eq(log.ev[0].at_ns, 1 * S);

    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_MANUAL);
    cr_assert_eq(why.retry_in_ns, 10 * S);
    char buf[200];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert_str_eq(buf, "breaker 'db' is open: opened by hand; next probe in 10.0s");

    cbx_clock_advance_ns(clk, 10 * S - 1);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);
    cbx_clock_advance_ns(clk, 1 + 5 * S); /* noticed late, dated at the end of the 10 s */
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0);
    cr_assert_eq(p.state, CBX_BREAKER_HALF_OPEN);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.ev[1].reason, CBX_BREAKER_REASON_OPEN_ELAPSED);
    cr_assert_eq(log.ev[1].at_ns, 11 * S);
    cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    /* the run of failures before the manual open was forgotten */
    call(b, CBX_OUTCOME_ERROR);
    call(b, CBX_OUTCOME_ERROR);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    cr_assert_eq(m.opens, 1);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* resilience4j: transitionToOpenStateUntil(instant). A probe that fails afterwards re-opens for
 * the breaker's own open time: the manual time is not remembered. */
Test(manual, open_until_a_time_then_probe_failure_uses_the_own_open_time)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = 3 * S}, clk);
    cbx_breaker_force_open_until(b, 20 * S);
    cbx_clock_advance_ns(clk, 19 * S);
    cr_assert_eq(refusal(b, CBX_ECIRCUIT_OPEN).retry_in_ns, 1 * S);
    cbx_clock_advance_ns(clk, 1 * S);
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.state, CBX_BREAKER_HALF_OPEN);
    cbx_breaker_record(b, p, CBX_OUTCOME_ERROR, -1);
    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_PROBE_FAILED);
    cr_assert_eq(why.retry_in_ns, 3 * S);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* A time already past: OPEN now, HALF_OPEN at the next use; UINT64_MAX: open until changed.
 * Opening by hand also leaves a forced mode (it is NORMAL). */
Test(manual, past_and_endless_times_and_leaving_a_forced_mode)
{
    cbx_clock *clk = cbx_clock_virtual(5000);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1}, clk);
    cbx_breaker_force_open(b);
    cbx_breaker_force_open_until(b, 1 * S);
    cr_assert_eq(cbx_breaker_mode_now(b), CBX_BREAKER_NORMAL);
    cr_assert_eq(cbx_breaker_acquire(b).state, CBX_BREAKER_HALF_OPEN);

    cbx_breaker_force_open_for(b, UINT64_MAX);
    cbx_clock_advance_ns(clk, 1000000 * S);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);
    cbx_clock_advance_ns(clk, UINT64_MAX - cbx_clock_now_ns(clk));
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);
    cbx_breaker_reset(b);
    cr_assert_eq(cbx_breaker_acquire(b).rc, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- initial state and mode --------------------------------------------------------------- */

/* A breaker created OPEN refuses from the first call for open_ns, then probes. */
Test(initial, open_for_the_open_time_from_creation)
{
    cbx_clock *clk = cbx_clock_virtual(7000);
    evlog log = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.name = "svc",
                                             .consecutive_failures = 2,
                                             .open_ns = 4 * S,
                                             .initial_state = CBX_BREAKER_OPEN,
                                             .on_event = on_event,
                                             .event_ud = &log},
                          clk);
    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_INITIAL);
    cr_assert_eq(why.retry_in_ns, 4 * S);
    char buf[200];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert_str_eq(buf, "breaker 'svc' is open: created open; next probe in 4.0s");
    cbx_clock_advance_ns(clk, 4 * S);
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.state, CBX_BREAKER_HALF_OPEN);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.ev[0].from, CBX_BREAKER_OPEN);
    cr_assert_eq(log.ev[0].at_ns, 11 * S);
    cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(initial, half_open_admits_a_probe_first)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.initial_state = CBX_BREAKER_HALF_OPEN}, clk);
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.state, CBX_BREAKER_HALF_OPEN);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_EHALF_OPEN_FULL);
    cbx_breaker_record(b, p, CBX_OUTCOME_TIMEOUT, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Polly v8: new CircuitBreakerManualControl(isIsolated: true) - the circuit starts isolated and
 * refuses until closed by hand. */
Test(initial, forced_open_mode_until_reset)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.initial_mode = CBX_BREAKER_FORCED_OPEN}, clk);
    cr_assert_eq(cbx_breaker_mode_now(b), CBX_BREAKER_FORCED_OPEN);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_rejection why = refusal(b, CBX_EFORCED_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_MANUAL);
    cbx_clock_advance_ns(clk, 3600 * S);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_EFORCED_OPEN);
    cbx_breaker_reset(b);
    cr_assert_eq(cbx_breaker_acquire(b).rc, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* resilience4j: a breaker in DISABLED state admits everything and never trips. */
Test(initial, disabled_mode_never_trips)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make(
        (cbx_breaker_opts){.consecutive_failures = 1, .initial_mode = CBX_BREAKER_DISABLED}, clk);
    for (int i = 0; i < 5; i++)
        call(b, CBX_OUTCOME_ERROR);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cr_assert_eq(cbx_breaker_mode_now(b), CBX_BREAKER_DISABLED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(initial, invalid_combinations_are_named)
{
    static const struct {
        cbx_breaker_state s;
        cbx_breaker_mode m;
        const char *where;
    } bad[] = {
        {(cbx_breaker_state)3, CBX_BREAKER_NORMAL, "initial_state"},
        {CBX_BREAKER_CLOSED, (cbx_breaker_mode)5, "initial_mode"},
        {CBX_BREAKER_OPEN, CBX_BREAKER_FORCED_CLOSED, "initial_state"},
        {CBX_BREAKER_HALF_OPEN, CBX_BREAKER_FORCED_OPEN, "initial_state"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cbx_breaker *b = (cbx_breaker *)&bad;
        cbx_err err = {0};
        cbx_breaker_opts o = {.initial_state = bad[i].s, .initial_mode = bad[i].m};
        cr_assert_eq(cbx_breaker_new(&b, &o, &err), CBX_EINVAL_CONFIG, "case %zu", i);
        cr_assert_null(b);
        cr_assert_str_eq(err.where, bad[i].where, "case %zu", i);
    }
}
