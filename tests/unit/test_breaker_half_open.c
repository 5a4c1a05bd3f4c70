/* Circuit breaker HALF_OPEN options restated from resilience4j's CircuitBreakerStateMachineTest
 * against cbx's API: a time limit on HALF_OPEN (maxWaitDurationInHalfOpenState) and half-open
 * judged by the failure and slow-call rates over the permitted probes
 * (permittedNumberOfCallsInHalfOpenState). All on virtual time. */
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
} evlog;

static void on_event(const cbx_breaker_event *ev, void *ud)
{
    evlog *l = ud;
    cr_assert_lt(l->n, 32);
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

static cbx_permit probe(cbx_breaker *b)
{
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0, "probe refused: %s", cbx_strerror(p.rc));
    cr_assert_eq(p.state, CBX_BREAKER_HALF_OPEN);
    return p;
}

static cbx_breaker_rejection refusal(cbx_breaker *b, int want_rc)
{
    cbx_breaker_rejection why;
    cbx_permit p = cbx_breaker_acquire_ex(b, &why);
    cr_assert_eq(p.rc, want_rc, "acquire: got %s, want %s", cbx_err_name(p.rc),
                 cbx_err_name(want_rc));
    return why;
}

static void expect_event(const evlog *l, int i, cbx_breaker_state from, cbx_breaker_state to,
                         cbx_breaker_reason reason, uint64_t at_ns)
{
    cr_assert_lt(i, l->n, "no event %d", i);
    cr_assert_eq(l->ev[i].from, from, "event %d from", i);
    cr_assert_eq(l->ev[i].to, to, "event %d to", i);
    cr_assert_eq(l->ev[i].reason, reason, "event %d reason %s", i,
                 cbx_breaker_reason_name(l->ev[i].reason));
    cr_assert_eq(l->ev[i].at_ns, at_ns, "event %d at %llu", i, (unsigned long long)l->ev[i].at_ns);
}

/* ---- the time limit on HALF_OPEN ------------------------------------------------------------ */

/* resilience4j: with maxWaitDurationInHalfOpenState set, a HALF_OPEN breaker that received no
 * call at all moves to OPEN when the wait is over. cbx notices it at the next use and dates it
 * at the limit; it is a re-open, so the open time grows. */
Test(half_open_limit, reopens_without_any_probe_dated_at_the_limit)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog log = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.name = "db",
                                             .consecutive_failures = 1,
                                             .open_ns = 1 * S,
                                             .open_multiplier = 2,
                                             .half_open_max_ns = 5 * S,
                                             .on_event = on_event,
                                             .event_ud = &log},
                          clk);
    call(b, CBX_OUTCOME_ERROR);
    cbx_clock_advance_ns(clk, 1 * S);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_clock_advance_ns(clk, 5 * S - 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_clock_advance_ns(clk, 1 + 500 * MS); /* noticed 0.5 s late */
    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_HALF_OPEN_ELAPSED);
    cr_assert_eq(why.reopens, 1);
    cr_assert_eq(why.retry_in_ns, 1500 * MS); /* 2 s from the limit at 6 s */
    char buf[200];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert_str_eq(buf, "breaker 'db' is open: the half-open time limit ran out before it "
                          "closed (re-open 1); next probe in 1.5s");
    cr_assert_eq(log.n, 3);
    expect_event(&log, 1, CBX_BREAKER_OPEN, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_REASON_OPEN_ELAPSED,
                 1 * S);
    expect_event(&log, 2, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_OPEN,
                 CBX_BREAKER_REASON_HALF_OPEN_ELAPSED, 6 * S);
    cr_assert_eq(log.ev[2].open_for_ns, 2 * S);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* A breaker nobody uses catches up on every change time alone decides, each dated when it
 * happened: OPEN 0-1 s, HALF_OPEN 1-3 s, OPEN 3-4 s, HALF_OPEN 4-6 s, ... */
Test(half_open_limit, an_unused_breaker_catches_up_with_dated_changes)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog log = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = 1 * S,
                                             .half_open_max_ns = 2 * S,
                                             .on_event = on_event,
                                             .event_ud = &log},
                          clk);
    call(b, CBX_OUTCOME_ERROR);
    cbx_clock_advance_ns(clk, 3500 * MS);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cr_assert_eq(log.n, 3);
    expect_event(&log, 1, CBX_BREAKER_OPEN, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_REASON_OPEN_ELAPSED,
                 1 * S);
    expect_event(&log, 2, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_OPEN,
                 CBX_BREAKER_REASON_HALF_OPEN_ELAPSED, 3 * S);
    cbx_clock_advance_ns(clk, 500 * MS);
    cr_assert_eq(probe(b).state, CBX_BREAKER_HALF_OPEN);
    expect_event(&log, 3, CBX_BREAKER_OPEN, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_REASON_OPEN_ELAPSED,
                 4 * S);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    cr_assert_eq(m.opens, 2);
    cr_assert_eq(m.reopens, 1);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* A probe still out at the limit is cancelled (its report is an ordinary stale one, not a late
 * one); a probe lease that ran out before the limit came first and gives its own reason. */
Test(half_open_limit, cancels_probes_out_but_a_lease_ending_first_wins)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = 1 * S,
                                             .probe_lease_ns = 30 * S,
                                             .half_open_max_ns = 10 * S},
                          clk);
    call(b, CBX_OUTCOME_ERROR);
    cbx_clock_advance_ns(clk, 1 * S);
    cbx_permit p = probe(b);
    cbx_clock_advance_ns(clk, 10 * S);
    cr_assert_eq(refusal(b, CBX_ECIRCUIT_OPEN).reason, CBX_BREAKER_REASON_HALF_OPEN_ELAPSED);
    cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, 1);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    cr_assert_eq(m.late_results, 0);
    cr_assert_eq(m.expired_probes, 0);
    cr_assert_eq(m.successes, 1);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN);
    cbx_breaker_free(b);

    b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                .open_ns = 1 * S,
                                .probe_lease_ns = 2 * S,
                                .half_open_max_ns = 10 * S},
             clk);
    call(b, CBX_OUTCOME_ERROR);
    cbx_clock_advance_ns(clk, 1 * S);
    probe(b);
    cbx_clock_advance_ns(clk, 20 * S);
    cr_assert_eq(refusal(b, CBX_ECIRCUIT_OPEN).reason, CBX_BREAKER_REASON_PROBE_EXPIRED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Closing within the limit ends it; the next HALF_OPEN period has a limit of its own. */
Test(half_open_limit, counts_from_each_half_open_start)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = 1 * S,
                                             .half_open_probes = 2,
                                             .half_open_max_ns = 3 * S},
                          clk);
    call(b, CBX_OUTCOME_ERROR);
    cbx_clock_advance_ns(clk, 1 * S);
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_SUCCESS, -1);
    cbx_clock_advance_ns(clk, 2 * S);
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cbx_clock_advance_ns(clk, 100 * S);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    call(b, CBX_OUTCOME_ERROR);
    cbx_clock_advance_ns(clk, 1 * S);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_clock_advance_ns(clk, 3 * S - 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_clock_advance_ns(clk, 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- half-open judged by rate ------------------------------------------------------------- */

static cbx_breaker *rate_breaker(cbx_clock *clk, evlog *log)
{
    /* resilience4j's test set-up: failureRateThreshold 50, permittedNumberOfCallsInHalfOpenState
     * 4 */
    return make((cbx_breaker_opts){.name = "api",
                                   .count_window = {.calls = 4, .failure_rate = 0.5},
                                   .open_ns = 1 * S,
                                   .half_open_probes = 4,
                                   .half_open_judge = CBX_BREAKER_JUDGE_RATE,
                                   .on_event = log ? on_event : NULL,
                                   .event_ud = log},
                clk);
}

static void trip_and_wait(cbx_breaker *b, cbx_clock *clk)
{
    for (int i = 0; i < 4; i++)
        call(b, CBX_OUTCOME_ERROR);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_clock_advance_ns(clk, 1 * S);
}

/* resilience4j: in HALF_OPEN the failure rate over the permitted calls is at or above the
 * threshold (2 of 4 = 50 %) -> OPEN; a failing probe alone does not re-open. */
Test(half_open_rate, reopens_when_the_probes_failure_rate_reaches_the_threshold)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog log = {0};
    cbx_breaker *b = rate_breaker(clk, &log);
    trip_and_wait(b, clk);
    cbx_permit p[4];
    for (int i = 0; i < 4; i++)
        p[i] = probe(b);
    /* resilience4j: a fifth call is not permitted while the four are out */
    cr_assert_eq(refusal(b, CBX_EHALF_OPEN_FULL).probes_in_flight, 4);
    cbx_breaker_record(b, p[0], CBX_OUTCOME_ERROR, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    /* the slot freed, but the four permitted calls are already taken */
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_EHALF_OPEN_FULL);
    cbx_breaker_record(b, p[1], CBX_OUTCOME_SUCCESS, -1);
    cbx_breaker_record(b, p[2], CBX_OUTCOME_TIMEOUT, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_breaker_record(b, p[3], CBX_OUTCOME_SUCCESS, -1);
    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_PROBE_FAILURE_RATE);
    cr_assert_eq(why.window_calls, 4);
    cr_assert_eq(why.window_failures, 2);
    cr_assert_eq(why.reopens, 1);
    char buf[200];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert_str_eq(buf, "breaker 'api' is open: 2 of 4 half-open probes failed (re-open 1); next "
                          "probe in 1.0s");
    cr_assert_eq(log.ev[log.n - 1].reason, CBX_BREAKER_REASON_PROBE_FAILURE_RATE);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* resilience4j: below the threshold (1 of 4 = 25 %) -> CLOSED, with empty windows. */
Test(half_open_rate, closes_when_the_probes_failure_rate_stays_under_the_threshold)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog log = {0};
    cbx_breaker *b = rate_breaker(clk, &log);
    trip_and_wait(b, clk);
    cbx_permit p[4];
    for (int i = 0; i < 4; i++)
        p[i] = probe(b);
    cbx_breaker_record(b, p[0], CBX_OUTCOME_ERROR, -1);
    for (int i = 1; i < 4; i++)
        cbx_breaker_record(b, p[i], CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cr_assert_eq(log.ev[log.n - 1].reason, CBX_BREAKER_REASON_PROBES_SUCCEEDED);
    /* the windows start empty: three failures of four calls do not trip yet at call 3 */
    call(b, CBX_OUTCOME_ERROR);
    call(b, CBX_OUTCOME_ERROR);
    call(b, CBX_OUTCOME_SUCCESS);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* resilience4j: slowCallRateThreshold applies in HALF_OPEN too - slow successes re-open. */
Test(half_open_rate, slow_probes_reopen_on_their_own_threshold)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .slow_call_ns = 1 * S,
                                             .open_ns = 1 * S,
                                             .half_open_probes = 2,
                                             .close_after = 4,
                                             .half_open_judge = CBX_BREAKER_JUDGE_RATE,
                                             .half_open_failure_rate = 0.75,
                                             .half_open_slow_rate = 0.5},
                          clk);
    call(b, CBX_OUTCOME_ERROR);
    cbx_clock_advance_ns(clk, 1 * S);
    /* four probes, two at a time: 1 slow success, 1 failure, 1 slow failure, 1 fast success:
     * failures 2/4 < 75 %, slow 2/4 >= 50 % */
    static const struct {
        cbx_outcome k;
        int64_t lat;
    } r[] = {{CBX_OUTCOME_SUCCESS, 1 * S},
             {CBX_OUTCOME_ERROR, 10 * MS},
             {CBX_OUTCOME_ERROR, 2 * S},
             {CBX_OUTCOME_SUCCESS, 10 * MS}};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN, "probe %d", i);
        cbx_breaker_record(b, probe(b), r[i].k, r[i].lat);
    }
    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_PROBE_SLOW_RATE);
    cr_assert_eq(why.window_slow, 2);
    cr_assert_eq(why.window_calls, 4);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Ignored (released) probes free their slot and do not count; a probe whose lease runs out
 * counts as a failed probe in the tally instead of re-opening at once. */
Test(half_open_rate, ignored_probes_do_not_count_and_expired_ones_fail)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = 1 * S,
                                             .half_open_probes = 2,
                                             .probe_lease_ns = 5 * S,
                                             .half_open_judge = CBX_BREAKER_JUDGE_RATE,
                                             .half_open_failure_rate = 0.5},
                          clk);
    call(b, CBX_OUTCOME_ERROR);
    cbx_clock_advance_ns(clk, 1 * S);
    cbx_breaker_release(b, probe(b));
    cbx_permit lost = probe(b);
    cbx_breaker_record(b, probe(b), CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_clock_advance_ns(clk, 5 * S);
    cbx_breaker_rejection why = refusal(b, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_PROBE_FAILURE_RATE);
    cr_assert_eq(why.window_calls, 2);
    cr_assert_eq(why.window_failures, 1);
    cbx_breaker_record(b, lost, CBX_OUTCOME_SUCCESS, -1);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    cr_assert_eq(m.expired_probes, 1);
    cr_assert_eq(m.late_results, 1);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* The default judge is unchanged: the first failing probe re-opens. */
Test(half_open_rate, the_default_judge_reopens_on_the_first_failure)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.count_window = {.calls = 4, .failure_rate = 0.5},
                                             .open_ns = 1 * S,
                                             .half_open_probes = 4},
                          clk);
    trip_and_wait(b, clk);
    cbx_permit p = probe(b);
    probe(b);
    cbx_breaker_record(b, p, CBX_OUTCOME_ERROR, -1);
    cr_assert_eq(refusal(b, CBX_ECIRCUIT_OPEN).reason, CBX_BREAKER_REASON_PROBE_FAILED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(half_open_rate, invalid_options_are_named)
{
    static const struct {
        cbx_breaker_opts o;
        const char *where;
    } bad[] = {
        {{.half_open_judge = CBX_BREAKER_JUDGE_RATE}, "half_open_failure_rate"},
        {{.half_open_judge = (cbx_breaker_judge)2}, "half_open_judge"},
        {{.half_open_failure_rate = 1.5}, "half_open_failure_rate"},
        {{.half_open_slow_rate = -0.1}, "half_open_slow_rate"},
        {{.half_open_slow_rate = 0.5}, "slow_call_ns"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cbx_breaker *b = NULL;
        cbx_err err = {0};
        cr_assert_eq(cbx_breaker_new(&b, &bad[i].o, &err), CBX_EINVAL_CONFIG, "case %zu", i);
        cr_assert_null(b);
        cr_assert_str_eq(err.where, bad[i].where, "case %zu", i);
    }
    /* a time window's rate is enough */
    cbx_breaker *b = NULL;
    cbx_breaker_opts o = {.time_window = {.length_ns = 10 * S, .failure_rate = 0.3},
                          .half_open_judge = CBX_BREAKER_JUDGE_RATE};
    cr_assert_eq(cbx_breaker_new(&b, &o, NULL), 0);
    cbx_breaker_free(b);
}
