/* Circuit breaker predicates of the caller's: which outcomes count (resilience4j
 * recordException / ignoreExceptions, Polly v8 ShouldHandle) and a trip rule beside the fixed
 * ones (gobreaker ReadyToTrip), restated against cbx's API. All on virtual time. */
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
    return b;
}

/* An HTTP-ish result handed to the classifier through cbx_breaker_report.data. */
typedef struct http_result {
    int status;
} http_result;

static cbx_outcome report(cbx_breaker *b, cbx_outcome kind, int status)
{
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0, "call refused: %s", cbx_strerror(p.rc));
    http_result res = {status};
    return cbx_breaker_record_ex(
        b, p, &(cbx_breaker_report){.kind = kind, .latency_ns = -1, .data = &res});
}

static cbx_breaker_metrics metrics(cbx_breaker *b)
{
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    return m;
}

typedef struct asked {
    int n;
} asked;

/* resilience4j: ignoreExceptions(BusinessException) - a 4xx is the caller's fault, not the
 * service's; recordException(predicate) - a 200 whose body says "error" (here: status 299) is a
 * failure. */
static cbx_breaker_verdict http_verdict(const cbx_breaker_report *r, cbx_outcome kind, void *ud)
{
    asked *a = ud;
    if (a)
        a->n++;
    const http_result *res = r->data;
    if (!res)
        return CBX_BREAKER_VERDICT_DEFAULT;
    if (res->status >= 400 && res->status < 500)
        return CBX_BREAKER_VERDICT_IGNORE;
    if (res->status == 299)
        return CBX_BREAKER_VERDICT_FAILURE;
    (void)kind;
    return CBX_BREAKER_VERDICT_DEFAULT;
}

Test(classify, resilience4j_ignored_exceptions_neither_count_nor_trip)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    asked a = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 2,
                                             .count_window = {.calls = 4, .failure_rate = 0.5},
                                             .classify_fn = http_verdict,
                                             .classify_ud = &a},
                          clk);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(report(b, CBX_OUTCOME_ERROR, 404), CBX_OUTCOME_IGNORED);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.ignored, 10);
    cr_assert_eq(m.failures, 0);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_IGNORED], 10);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_ERROR], 0);
    cr_assert_eq(m.calls, 10);
    cr_assert_eq(a.n, 10);
    /* an ignored outcome does not break a run of failures either */
    report(b, CBX_OUTCOME_ERROR, 503);
    report(b, CBX_OUTCOME_ERROR, 404);
    report(b, CBX_OUTCOME_ERROR, 503);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(classify, resilience4j_record_predicate_counts_a_success_as_failure)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.consecutive_failures = 2, .classify_fn = http_verdict}, clk);
    cr_assert_eq(report(b, CBX_OUTCOME_SUCCESS, 299), CBX_OUTCOME_CUSTOM);
    cr_assert_eq(report(b, CBX_OUTCOME_TIMEOUT, 299), CBX_OUTCOME_TIMEOUT);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.successes, 0);
    cr_assert_eq(m.failures, 2);
    cr_assert_eq(m.calls, 2);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Polly v8: ShouldHandle = only timeouts. An outcome not handled counts as a success for the
 * breaker, so it breaks a run of failures. Also overrides failure_kinds. */
static cbx_breaker_verdict only_timeouts(const cbx_breaker_report *r, cbx_outcome kind, void *ud)
{
    (void)r;
    (void)ud;
    if (kind == CBX_OUTCOME_TIMEOUT)
        return CBX_BREAKER_VERDICT_FAILURE;
    return kind == CBX_OUTCOME_IGNORED ? CBX_BREAKER_VERDICT_DEFAULT : CBX_BREAKER_VERDICT_SUCCESS;
}

Test(classify, polly_should_handle_unhandled_outcomes_count_as_successes)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 2,
                                             .failure_kinds = CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR),
                                             .classify_fn = only_timeouts},
                          clk);
    cbx_breaker_record(b, cbx_breaker_acquire(b), CBX_OUTCOME_TIMEOUT, 1);
    cbx_breaker_record(b, cbx_breaker_acquire(b), CBX_OUTCOME_ERROR, 1);
    cbx_breaker_record(b, cbx_breaker_acquire(b), CBX_OUTCOME_TIMEOUT, 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cr_assert_eq(metrics(b).consecutive_failures, 1);
    cbx_breaker_record(b, cbx_breaker_acquire(b), CBX_OUTCOME_TIMEOUT, 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.successes, 1);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_ERROR], 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* The classifier judges probes too: an ignored probe frees its slot; released permits are not
 * judged (the call was never made). */
Test(classify, judges_probes_and_not_releases)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    asked a = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = 1 * S,
                                             .classify_fn = http_verdict,
                                             .classify_ud = &a},
                          clk);
    report(b, CBX_OUTCOME_ERROR, 500);
    cbx_clock_advance_ns(clk, 1 * S);
    report(b, CBX_OUTCOME_ERROR, 429); /* the probe: ignored */
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_breaker_release(b, cbx_breaker_acquire(b));
    cr_assert_eq(a.n, 2);
    report(b, CBX_OUTCOME_SUCCESS, 299); /* the probe: a failure */
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- trip predicate ------------------------------------------------------------------------ */

/* gobreaker's documented ReadyToTrip: counts.Requests >= 3 && failureRatio >= 0.6. */
static int gobreaker_ready_to_trip(const cbx_breaker_counts *c, void *ud)
{
    int *asked_n = ud;
    if (asked_n)
        (*asked_n)++;
    return c->count_calls >= 3 && (uint64_t)c->count_failures * 5 >= (uint64_t)c->count_calls * 3;
}

Test(trip_fn, gobreaker_ready_to_trip_over_the_count_window)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    int n = 0;
    cbx_breaker *b = make((cbx_breaker_opts){.name = "go",
                                             .count_window = {.calls = 10},
                                             .trip_fn = gobreaker_ready_to_trip,
                                             .trip_ud = &n},
                          clk);
    report(b, CBX_OUTCOME_ERROR, 0); /* 1 of 1, but fewer than 3 requests */
    report(b, CBX_OUTCOME_SUCCESS, 0);
    report(b, CBX_OUTCOME_SUCCESS, 0); /* 1 of 3 */
    report(b, CBX_OUTCOME_ERROR, 0);   /* 2 of 4 */
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    report(b, CBX_OUTCOME_ERROR, 0); /* 3 of 5 = 0.6 */
    cr_assert_eq(n, 5);
    cbx_breaker_rejection why;
    cr_assert_eq(cbx_breaker_acquire_ex(b, &why).rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_PREDICATE);
    cr_assert_eq(why.window_calls, 5);
    cr_assert_eq(why.window_failures, 3);
    char buf[200];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert_str_eq(buf, "breaker 'go' is open: the trip predicate held (3 of the last 5 calls "
                          "(60%) failed); next probe in 1m00s");
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* gobreaker's default ReadyToTrip: ConsecutiveFailures > 5, with no window at all; the fixed
 * rules come first, and a predicate never trips a forced-closed breaker. */
static int more_than_five_in_a_row(const cbx_breaker_counts *c, void *ud)
{
    (void)ud;
    return c->consecutive_failures > 5;
}

Test(trip_fn, gobreaker_default_and_the_fixed_rules_first)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make(
        (cbx_breaker_opts){.consecutive_failures = 0, .trip_fn = more_than_five_in_a_row}, clk);
    for (int i = 0; i < 5; i++)
        report(b, CBX_OUTCOME_ERROR, 0);
    report(b, CBX_OUTCOME_SUCCESS, 0);
    for (int i = 0; i < 5; i++)
        report(b, CBX_OUTCOME_ERROR, 0);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    report(b, CBX_OUTCOME_ERROR, 0);
    cbx_breaker_rejection why;
    cbx_breaker_acquire_ex(b, &why);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_PREDICATE);
    cr_assert_eq(why.consecutive_failures, 6);
    cbx_breaker_free(b);

    b = make((cbx_breaker_opts){.consecutive_failures = 6, .trip_fn = more_than_five_in_a_row},
             clk);
    for (int i = 0; i < 6; i++)
        report(b, CBX_OUTCOME_ERROR, 0);
    cbx_breaker_acquire_ex(b, &why);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
    cbx_breaker_free(b);

    b = make((cbx_breaker_opts){.trip_fn = more_than_five_in_a_row,
                                .consecutive_failures = 0,
                                .initial_mode = CBX_BREAKER_FORCED_CLOSED},
             clk);
    for (int i = 0; i < 20; i++)
        report(b, CBX_OUTCOME_ERROR, 0);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

static void keep_event(const cbx_breaker_event *ev, void *ud)
{
    *(cbx_breaker_event *)ud = *ev;
}

/* metrics_only reports the predicate's would-be trip as a shadow event and stays CLOSED. */
Test(trip_fn, metrics_only_shadows_a_predicate_trip)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_event ev = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 0,
                                             .trip_fn = more_than_five_in_a_row,
                                             .on_event = keep_event,
                                             .event_ud = &ev,
                                             .initial_mode = CBX_BREAKER_METRICS_ONLY},
                          clk);
    for (int i = 0; i < 6; i++)
        report(b, CBX_OUTCOME_ERROR, 0);
    cr_assert_eq(ev.shadow, 1);
    cr_assert_eq(ev.reason, CBX_BREAKER_REASON_PREDICATE);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cr_assert_str_eq(cbx_breaker_reason_name(CBX_BREAKER_REASON_PREDICATE), "trip_predicate");
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}
