/* Circuit breaker trip rules: consecutive failures, the count window, the time window, slow
 * calls, quality scores, and permits from an earlier state generation. All on virtual time. */
#include "cbx/breaker.h"
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/outcome.h"

#include <criterion/criterion.h>
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
    cr_assert_not_null(b);
    return b;
}

/* One admitted call reported as kind with latency_ns (-1 = unknown). */
static void call(cbx_breaker *b, cbx_outcome kind, int64_t latency_ns)
{
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0, "call refused: %s", cbx_strerror(p.rc));
    cbx_breaker_record(b, p, kind, latency_ns);
}

static void fail(cbx_breaker *b)
{
    call(b, CBX_OUTCOME_ERROR, -1);
}

static void ok(cbx_breaker *b)
{
    call(b, CBX_OUTCOME_SUCCESS, -1);
}

static void calls(cbx_breaker *b, cbx_outcome kind, int n)
{
    for (int i = 0; i < n; i++)
        call(b, kind, -1);
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

/* The refusal of the next acquire; the breaker must refuse. */
static cbx_breaker_rejection refusal(cbx_breaker *b)
{
    cbx_breaker_rejection why;
    memset(&why, 0xab, sizeof why);
    cbx_permit p = cbx_breaker_acquire_ex(b, &why);
    cr_assert_neq(p.rc, 0, "expected a refusal");
    cr_assert_eq(why.rc, p.rc);
    return why;
}

/* ---- consecutive failures ------------------------------------------------------------ */

Test(consecutive, trips_at_n_not_before)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 3, .open_ns = S}, clk);

    fail(b);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "tripped at N-1");
    cr_assert_eq(metrics(b).consecutive_failures, 2);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN, "did not trip at N");
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);

    cbx_breaker_rejection why = refusal(b);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
    cr_assert_eq(why.consecutive_failures, 3);
    cr_assert_eq(metrics(b).opens, 1);

    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(consecutive, a_success_resets_the_run)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 3}, clk);

    fail(b);
    fail(b);
    ok(b);
    cr_assert_eq(metrics(b).consecutive_failures, 0);
    fail(b);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "the failures before the success still counted");
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);

    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(consecutive, every_default_failure_kind_counts)
{
    const cbx_outcome kinds[] = {CBX_OUTCOME_ERROR, CBX_OUTCOME_TIMEOUT, CBX_OUTCOME_RATE_LIMITED,
                                 CBX_OUTCOME_QUALITY, CBX_OUTCOME_CUSTOM};
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 5}, clk);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
        call(b, kinds[i], -1);
        cr_assert_eq(metrics(b).by_kind[kinds[i]], 1);
    }
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cr_assert_eq(metrics(b).failures, 5);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(consecutive, ignored_and_unlisted_kinds_neither_count_nor_reset)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 3,
                                             .failure_kinds = CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR) |
                                                              CBX_OUTCOME_BIT(CBX_OUTCOME_TIMEOUT)},
                          clk);

    fail(b);
    call(b, CBX_OUTCOME_TIMEOUT, -1);
    cr_assert_eq(metrics(b).consecutive_failures, 2);

    /* None of these is a success or a listed failure: the run of two stays as it is. */
    for (int round = 0; round < 4; round++) {
        call(b, CBX_OUTCOME_IGNORED, -1);
        call(b, CBX_OUTCOME_RATE_LIMITED, -1);
        call(b, CBX_OUTCOME_QUALITY, -1);
        call(b, CBX_OUTCOME_CUSTOM, -1);
        cbx_breaker_release(b, cbx_breaker_acquire(b));
    }
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "an unlisted kind counted as a failure");
    cr_assert_eq(m.consecutive_failures, 2, "an unlisted kind reset or grew the run");
    cr_assert_eq(m.failures, 2);
    cr_assert_eq(m.ignored, 20);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_RATE_LIMITED], 4);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_IGNORED], 8); /* 4 ignored + 4 releases */
    cr_assert_eq(m.calls, 22);
    cr_assert_eq(m.successes, 0);

    call(b, CBX_OUTCOME_TIMEOUT, -1);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN, "the run of two was lost");

    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(consecutive, zero_turns_the_rule_off)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 0}, clk);
    calls(b, CBX_OUTCOME_ERROR, 1000);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cr_assert_eq(metrics(b).failures, 1000);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(consecutive, checked_before_the_window_rules)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 2,
                                             .count_window = {.calls = 2, .failure_rate = 1.0}},
                          clk);
    fail(b);
    fail(b); /* both rules hold now */
    cr_assert_eq(refusal(b).reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- count window -------------------------------------------------------------------- */

Test(count_window, judges_only_once_min_calls_are_in)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.count_window = {.calls = 10, .min_calls = 4, .failure_rate = 0.5}},
             clk);
    calls(b, CBX_OUTCOME_ERROR, 3); /* 100 % failed, but only 3 calls */
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "judged before min_calls");
    ok(b); /* 3 of 4 */
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_rejection why = refusal(b);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_COUNT_FAILURE_RATE);
    cr_assert_eq(why.window_calls, 4);
    cr_assert_eq(why.window_failures, 3);
    cr_assert_eq(why.window_slow, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(count_window, min_calls_zero_means_the_window_size)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.count_window = {.calls = 5, .failure_rate = 0.2}}, clk);
    calls(b, CBX_OUTCOME_ERROR, 4);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "judged before the window was full");
    ok(b);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cr_assert_eq(refusal(b).window_calls, 5);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(count_window, rate_exactly_at_threshold_trips)
{
    /* 7 of 20 is exactly 35 %. */
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.count_window = {.calls = 20, .failure_rate = 0.35}}, clk);
    calls(b, CBX_OUTCOME_SUCCESS, 13);
    calls(b, CBX_OUTCOME_ERROR, 6);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN, "7/20 == 0.35 must trip");
    cbx_breaker_rejection why = refusal(b);
    cr_assert_eq(why.window_calls, 20);
    cr_assert_eq(why.window_failures, 7);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(count_window, rate_just_under_threshold_does_not_trip)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.count_window = {.calls = 20, .failure_rate = 0.35}}, clk);
    calls(b, CBX_OUTCOME_SUCCESS, 14);
    calls(b, CBX_OUTCOME_ERROR, 6); /* 30 % */
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);

    /* One part per million over 7/20: 7 * 1e6 < 350001 * 20. */
    b = make((cbx_breaker_opts){.count_window = {.calls = 20, .failure_rate = 0.350001}}, clk);
    calls(b, CBX_OUTCOME_SUCCESS, 13);
    calls(b, CBX_OUTCOME_ERROR, 7);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "7/20 is under 0.350001");
    fail(b); /* 8 of 20 (the oldest success slid out) */
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(count_window, slides_old_outcomes_out)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.count_window = {.calls = 4, .failure_rate = 0.5}}, clk);
    fail(b);
    calls(b, CBX_OUTCOME_SUCCESS, 3); /* F S S S: 1/4 */
    ok(b);                            /* S S S S: the failure slid out */
    fail(b);                          /* S S S F: 1/4; with the old failure kept it would be 2/4 */
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "an outcome older than the window still counted");
    fail(b); /* S S F F */
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_rejection why = refusal(b);
    cr_assert_eq(why.window_calls, 4);
    cr_assert_eq(why.window_failures, 2);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(count_window, recent_failures_trip_even_when_most_calls_ever_succeeded)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.count_window = {.calls = 4, .failure_rate = 0.75}}, clk);
    calls(b, CBX_OUTCOME_SUCCESS, 100);
    fail(b);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    fail(b); /* S F F F: 3 of the last 4, 3 of 103 in all */
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(count_window, slow_successes_trip_the_slow_rate)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.count_window = {.calls = 4, .slow_rate = 0.5},
                                             .slow_call_ns = 100 * MS},
                          clk);
    call(b, CBX_OUTCOME_SUCCESS, 99 * MS);  /* fast */
    call(b, CBX_OUTCOME_SUCCESS, 100 * MS); /* slow: at the threshold */
    call(b, CBX_OUTCOME_SUCCESS, -1);       /* unknown latency is never slow */
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cr_assert_eq(metrics(b).slow_calls, 1);
    call(b, CBX_OUTCOME_SUCCESS, 5 * S); /* 2 of 4 slow */
    cr_assert_eq(state(b), CBX_BREAKER_OPEN, "slow successes did not trip the slow rate");

    cbx_breaker_rejection why = refusal(b);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_COUNT_SLOW_RATE);
    cr_assert_eq(why.window_calls, 4);
    cr_assert_eq(why.window_slow, 2);
    cr_assert_eq(why.window_failures, 0);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.slow_calls, 2);
    cr_assert_eq(m.failures, 0);
    cr_assert_eq(m.successes, 4);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(count_window, a_slow_failure_is_both_slow_and_failed)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.count_window = {.calls = 2, .failure_rate = 1.0, .slow_rate = 1.0},
                                .slow_call_ns = 10 * MS},
             clk);
    call(b, CBX_OUTCOME_ERROR, 20 * MS);
    call(b, CBX_OUTCOME_ERROR, 20 * MS);
    cbx_breaker_rejection why = refusal(b);
    /* Both rates hold; the failure rate is checked first. */
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_COUNT_FAILURE_RATE);
    cr_assert_eq(why.window_failures, 2);
    cr_assert_eq(why.window_slow, 2);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- time window --------------------------------------------------------------------- */

Test(time_window, trips_once_min_calls_are_in_the_window)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.time_window = {.length_ns = 10 * S,
                                                             .buckets = 10,
                                                             .min_calls = 4,
                                                             .failure_rate = 0.5}},
                          clk);
    calls(b, CBX_OUTCOME_ERROR, 3);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "judged before min_calls");
    /* 9.999 s later the first bucket is still one of the last ten. */
    cbx_clock_advance(clk, 9999);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_rejection why = refusal(b);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_TIME_FAILURE_RATE);
    cr_assert_eq(why.window_calls, 4);
    cr_assert_eq(why.window_failures, 4);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(time_window, old_buckets_age_out)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.time_window = {.length_ns = 10 * S,
                                                             .buckets = 10,
                                                             .min_calls = 4,
                                                             .failure_rate = 0.5}},
                          clk);
    cbx_clock_advance(clk, 1500);
    calls(b, CBX_OUTCOME_ERROR, 3); /* bucket [1 s, 2 s) */
    cbx_clock_advance(clk, 10500);  /* 12 s: the window is [3 s, 13 s) */
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "an aged-out bucket still counted");
    fail(b);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cr_assert_eq(refusal(b).window_calls, 4);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(time_window, is_the_current_bucket_and_the_ones_before_it)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.time_window = {.length_ns = 10 * S,
                                                             .buckets = 10,
                                                             .min_calls = 4,
                                                             .failure_rate = 0.5}},
                          clk);
    cbx_clock_advance(clk, 500);
    calls(b, CBX_OUTCOME_ERROR, 3); /* bucket [0 s, 1 s) */
    /* At 10 s the window is buckets [1 s, 11 s): the three failures are out, although only
     * 9.5 s have passed since they were recorded. */
    cbx_clock_advance(clk, 9500);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "the bucket [0 s, 1 s) is still in at 10 s");
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(time_window, spans_several_buckets)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make(
        (cbx_breaker_opts){
            .time_window = {.length_ns = 4 * S, .buckets = 4, .min_calls = 8, .failure_rate = 0.5}},
        clk);
    /* Two calls per second for 3 s: S S | S F | F F */
    calls(b, CBX_OUTCOME_SUCCESS, 2);
    cbx_clock_advance(clk, 1000);
    ok(b);
    fail(b);
    cbx_clock_advance(clk, 1000);
    calls(b, CBX_OUTCOME_ERROR, 2);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    /* At 4 s the first bucket leaves: S F | F F | S -> 3 of 5 but under min_calls. */
    cbx_clock_advance(clk, 2000);
    ok(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    calls(b, CBX_OUTCOME_SUCCESS, 2); /* 3 of 7 */
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    fail(b); /* 4 of 8 */
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_rejection why = refusal(b);
    cr_assert_eq(why.window_calls, 8);
    cr_assert_eq(why.window_failures, 4);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(time_window, min_calls_zero_means_one)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.time_window = {.length_ns = S, .failure_rate = 1.0}}, clk);
    ok(b);
    fail(b); /* 1 of 2 */
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cbx_clock_advance(clk, 1000);
    fail(b); /* alone in the window: 1 of 1 */
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(time_window, slow_rate)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make(
        (cbx_breaker_opts){
            .time_window = {.length_ns = S, .buckets = 4, .min_calls = 4, .slow_rate = 0.5},
            .slow_call_ns = 10 * MS},
        clk);
    call(b, CBX_OUTCOME_SUCCESS, 10 * MS);
    call(b, CBX_OUTCOME_SUCCESS, 10 * MS);
    cbx_clock_advance(clk, 1000); /* both slow calls age out */
    call(b, CBX_OUTCOME_SUCCESS, 1 * MS);
    call(b, CBX_OUTCOME_SUCCESS, 1 * MS);
    call(b, CBX_OUTCOME_SUCCESS, 10 * MS);
    call(b, CBX_OUTCOME_SUCCESS, 1 * MS); /* 1 of 4 */
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "aged-out slow calls still counted");
    call(b, CBX_OUTCOME_SUCCESS, 50 * MS);
    call(b, CBX_OUTCOME_SUCCESS, 50 * MS); /* 3 of 6 */
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_rejection why = refusal(b);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_TIME_SLOW_RATE);
    cr_assert_eq(why.window_calls, 6);
    cr_assert_eq(why.window_slow, 3);
    cr_assert_eq(why.window_failures, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- quality ------------------------------------------------------------------------- */

Test(quality, under_threshold_is_a_quality_failure)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.consecutive_failures = 2, .quality_threshold = 0.7}, clk);

    cr_assert_eq(
        cbx_breaker_record_quality(b, cbx_breaker_acquire(b), CBX_OUTCOME_SUCCESS, -1, 0.69),
        CBX_OUTCOME_QUALITY);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_QUALITY], 1);
    cr_assert_eq(m.failures, 1);
    cr_assert_eq(m.successes, 0);
    cr_assert_eq(m.consecutive_failures, 1);

    /* At the threshold: a success, which resets the run. */
    cr_assert_eq(
        cbx_breaker_record_quality(b, cbx_breaker_acquire(b), CBX_OUTCOME_SUCCESS, -1, 0.7),
        CBX_OUTCOME_SUCCESS);
    m = metrics(b);
    cr_assert_eq(m.successes, 1);
    cr_assert_eq(m.consecutive_failures, 0);

    /* The score judges successes only. */
    cr_assert_eq(
        cbx_breaker_record_quality(b, cbx_breaker_acquire(b), CBX_OUTCOME_TIMEOUT, -1, 1.0),
        CBX_OUTCOME_TIMEOUT);
    cr_assert_eq(
        cbx_breaker_record_quality(b, cbx_breaker_acquire(b), CBX_OUTCOME_SUCCESS, -1, 0.0),
        CBX_OUTCOME_QUALITY);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN, "low-quality successes did not trip");
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(quality, zero_threshold_turns_scoring_off)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1}, clk);
    cr_assert_eq(
        cbx_breaker_record_quality(b, cbx_breaker_acquire(b), CBX_OUTCOME_SUCCESS, -1, 0.0),
        CBX_OUTCOME_SUCCESS);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(quality, unlisted_quality_kind_is_ignored)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .quality_threshold = 0.5,
                                             .failure_kinds = CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR)},
                          clk);
    cr_assert_eq(
        cbx_breaker_record_quality(b, cbx_breaker_acquire(b), CBX_OUTCOME_SUCCESS, -1, 0.1),
        CBX_OUTCOME_QUALITY);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_QUALITY], 1);
    cr_assert_eq(m.ignored, 1);
    cr_assert_eq(m.failures, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(quality, counts_in_the_count_window)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.count_window = {.calls = 4, .failure_rate = 0.5},
                                             .quality_threshold = 0.8},
                          clk);
    const double scores[4] = {0.9, 0.79, 1.0, 0.2};
    for (int i = 0; i < 4; i++)
        cbx_breaker_record_quality(b, cbx_breaker_acquire(b), CBX_OUTCOME_SUCCESS, -1, scores[i]);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_rejection why = refusal(b);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_COUNT_FAILURE_RATE);
    cr_assert_eq(why.window_failures, 2);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- permits from an earlier generation ---------------------------------------------- */

Test(generation, closed_permit_reported_after_the_trip_is_counted_but_changes_nothing)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 2,
                                             .open_ns = S,
                                             .count_window = {.calls = 10, .min_calls = 1}},
                          clk);
    cbx_permit early[3];
    for (int i = 0; i < 3; i++)
        early[i] = cbx_breaker_acquire(b);
    fail(b);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    uint64_t retry_before = refusal(b).retry_in_ns;

    cbx_breaker_record(b, early[0], CBX_OUTCOME_ERROR, -1);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.failures, 3, "the late outcome was not counted");
    cr_assert_eq(m.by_kind[CBX_OUTCOME_ERROR], 3);
    cr_assert_eq(m.calls, 3);
    cr_assert_eq(m.opens, 1);
    cr_assert_eq(refusal(b).retry_in_ns, retry_before, "the late outcome moved the open time");

    /* In HALF_OPEN, an old success is not a probe success. */
    cbx_clock_advance(clk, 1000);
    cbx_permit probe = cbx_breaker_acquire(b);
    cr_assert_eq(probe.rc, 0);
    cbx_breaker_record(b, early[1], CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_HALF_OPEN, "an old success closed the breaker");
    cr_assert_eq(metrics(b).probes_in_flight, 1);
    cr_assert_eq(metrics(b).successes, 1);
    cbx_breaker_record(b, probe, CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED);

    /* Closed again (a new generation): an old failure does not start a new run. */
    cbx_breaker_record(b, early[2], CBX_OUTCOME_ERROR, -1);
    cr_assert_eq(metrics(b).consecutive_failures, 0);
    cr_assert_eq(metrics(b).failures, 4);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_CLOSED, "an old failure counted toward the new run");
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* open_ns = UINT64_MAX means "open until closed by hand": no time brings HALF_OPEN. */
Test(breaker_open_time, max_open_time_stays_open)
{
    cbx_clock *clk = cbx_clock_virtual(1000);
    cbx_breaker *b =
        make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = UINT64_MAX}, clk);
    fail(b);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_clock_advance_ns(clk, UINT64_MAX / 2);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* A clock near the top of its range: now + open_ns saturates instead of wrapping to the past. */
Test(breaker_open_time, clock_near_the_top_saturates)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_clock_advance_ns(clk, UINT64_MAX - 10);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = 60 * S}, clk);
    fail(b);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* A growing open time never comes back shorter than the one before (2e18 ns doubled). */
Test(breaker_open_time, growth_saturates_and_never_shrinks)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = 2000000000000000000ull,
                                             .open_multiplier = 2},
                          clk);
    fail(b);
    uint64_t prev = 0;
    for (int i = 0; i < 5; i++) {
        cbx_breaker_rejection why;
        cbx_permit p = cbx_breaker_acquire_ex(b, &why);
        cr_assert_eq(p.rc, CBX_ECIRCUIT_OPEN);
        if (why.retry_in_ns == UINT64_MAX - cbx_clock_now_ns(clk)) {
            prev = UINT64_MAX; /* saturated: open until closed by hand */
            break;
        }
        cr_assert_geq(why.retry_in_ns, prev, "open time %d shrank: %llu < %llu", i,
                      (unsigned long long)why.retry_in_ns, (unsigned long long)prev);
        prev = why.retry_in_ns;
        cbx_clock_advance_ns(clk, prev);
        p = cbx_breaker_acquire(b); /* the probe */
        cr_assert_eq(p.rc, 0);
        cbx_breaker_record(b, p, CBX_OUTCOME_ERROR, -1);
        cr_assert_eq(state(b), CBX_BREAKER_OPEN);
    }
    cr_assert_eq(prev, UINT64_MAX, "the open time never reached the end of the clock");
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}
