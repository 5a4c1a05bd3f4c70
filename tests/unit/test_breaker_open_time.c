/* Circuit breaker open time from a function (Polly v8's BreakDurationGenerator) and from the
 * call's result (a Retry-After), restated against cbx's API. All on virtual time. */
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

static void report(cbx_breaker *b, cbx_outcome kind, uint64_t retry_after_ns)
{
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0, "call refused: %s", cbx_strerror(p.rc));
    cbx_breaker_record_ex(
        b, p,
        &(cbx_breaker_report){.kind = kind, .latency_ns = -1, .retry_after_ns = retry_after_ns});
}

static uint64_t retry_in(cbx_breaker *b)
{
    cbx_breaker_rejection why;
    cbx_permit p = cbx_breaker_acquire_ex(b, &why);
    cr_assert_eq(p.rc, CBX_ECIRCUIT_OPEN, "got %s", cbx_err_name(p.rc));
    return why.retry_in_ns;
}

typedef struct gen_log {
    int n;
    cbx_breaker_open_info seen[8];
} gen_log;

/* Polly v8: BreakDurationGenerator = args => TimeSpan.FromSeconds(2 * (args.HalfOpenAttempts +
 * 1)): the break grows with the half-open attempts the generator is told about. */
static uint64_t by_attempts(const cbx_breaker_open_info *info, void *ud)
{
    gen_log *l = ud;
    cr_assert_lt(l->n, 8);
    l->seen[l->n++] = *info;
    return 2 * S * (info->reopens + 1);
}

Test(open_fn, polly_break_duration_generator_by_half_open_attempts)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    gen_log log = {0};
    cbx_breaker *b = make(
        (cbx_breaker_opts){
            .consecutive_failures = 3, .open_ns = 7 * S, .open_fn = by_attempts, .open_ud = &log},
        clk);
    for (int i = 0; i < 3; i++)
        report(b, CBX_OUTCOME_ERROR, 0);
    cr_assert_eq(retry_in(b), 2 * S);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.seen[0].reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
    cr_assert_eq(log.seen[0].consecutive_failures, 3);
    cr_assert_eq(log.seen[0].reopens, 0);
    cr_assert_eq(log.seen[0].open_ns, 7 * S);
    cr_assert_eq(log.seen[0].retry_after_ns, 0);
    for (uint32_t k = 1; k <= 3; k++) {
        cbx_clock_advance_ns(clk, 2 * S * k);
        report(b, CBX_OUTCOME_TIMEOUT, 0); /* the probe fails */
        cr_assert_eq(retry_in(b), 2 * S * (k + 1), "re-open %u", k);
        cr_assert_eq(log.seen[k].reason, CBX_BREAKER_REASON_PROBE_FAILED);
        cr_assert_eq(log.seen[k].reopens, k);
    }
    /* closing starts the attempts over */
    cbx_clock_advance_ns(clk, 8 * S);
    report(b, CBX_OUTCOME_SUCCESS, 0);
    for (int i = 0; i < 3; i++)
        report(b, CBX_OUTCOME_ERROR, 0);
    cr_assert_eq(retry_in(b), 2 * S);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Polly v8: the generator sees the failure count and rate of the sampling window. */
static uint64_t by_failure_rate(const cbx_breaker_open_info *info, void *ud)
{
    (void)ud;
    return info->window_calls ? 10 * S * info->window_failures / info->window_calls : 0;
}

Test(open_fn, sees_the_tripping_window)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.count_window = {.calls = 5, .failure_rate = 0.6},
                                             .open_fn = by_failure_rate},
                          clk);
    report(b, CBX_OUTCOME_SUCCESS, 0);
    report(b, CBX_OUTCOME_SUCCESS, 0);
    for (int i = 0; i < 3; i++)
        report(b, CBX_OUTCOME_ERROR, 0);
    cr_assert_eq(retry_in(b), 6 * S); /* 3 of 5 */
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* An open time of 0 half-opens at the next use; the shadow trip of metrics_only is timed by
 * the function too. */
static uint64_t zero(const cbx_breaker_open_info *info, void *ud)
{
    (void)info;
    (void)ud;
    return 0;
}

static void keep_event(const cbx_breaker_event *ev, void *ud)
{
    *(cbx_breaker_event *)ud = *ev;
}

Test(open_fn, zero_half_opens_at_once_and_shadows_are_timed_alike)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.consecutive_failures = 1, .open_fn = by_failure_rate}, clk);
    cbx_breaker_free(b);
    b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_fn = zero}, clk);
    report(b, CBX_OUTCOME_ERROR, 0);
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0);
    cr_assert_eq(p.state, CBX_BREAKER_HALF_OPEN);
    cbx_breaker_free(b);

    gen_log log = {0};
    cbx_breaker_event ev = {0};
    b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                .open_fn = by_attempts,
                                .open_ud = &log,
                                .on_event = keep_event,
                                .event_ud = &ev,
                                .initial_mode = CBX_BREAKER_METRICS_ONLY},
             clk);
    report(b, CBX_OUTCOME_ERROR, 0);
    cr_assert_eq(ev.shadow, 1);
    cr_assert_eq(ev.open_for_ns, 2 * S);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- Retry-After ------------------------------------------------------------------------- */

/* The tripping report's Retry-After holds the breaker open at least that long; a shorter one
 * leaves the open time; open_max_ns caps it. */
Test(retry_after, a_tripping_report_opens_for_at_least_its_retry_after)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 2, .open_ns = 1 * S}, clk);
    report(b, CBX_OUTCOME_RATE_LIMITED, 30 * S); /* does not trip: forgotten */
    report(b, CBX_OUTCOME_RATE_LIMITED, 10 * S);
    cr_assert_eq(retry_in(b), 10 * S);
    cbx_clock_advance_ns(clk, 10 * S);
    report(b, CBX_OUTCOME_RATE_LIMITED, 500 * MS); /* the probe fails; shorter than 1 s */
    cr_assert_eq(retry_in(b), 1 * S);
    cbx_breaker_free(b);

    b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                .open_ns = 1 * S,
                                .open_multiplier = 2,
                                .open_max_ns = 5 * S},
             clk);
    report(b, CBX_OUTCOME_RATE_LIMITED, 3600 * S);
    cr_assert_eq(retry_in(b), 5 * S);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* With a generator too: the generator is told the Retry-After, and the rule applies to its
 * answer. */
Test(retry_after, applies_to_the_generators_answer)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    gen_log log = {0};
    cbx_breaker *b =
        make((cbx_breaker_opts){.consecutive_failures = 1, .open_fn = by_attempts, .open_ud = &log},
             clk);
    report(b, CBX_OUTCOME_ERROR, 9 * S);
    cr_assert_eq(log.seen[0].retry_after_ns, 9 * S);
    cr_assert_eq(retry_in(b), 9 * S);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Half-open judged by rate: the report that completes the tally carries the Retry-After. */
Test(retry_after, the_report_that_completes_a_rate_judgement)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1,
                                             .open_ns = 1 * S,
                                             .half_open_probes = 2,
                                             .half_open_judge = CBX_BREAKER_JUDGE_RATE,
                                             .half_open_failure_rate = 0.5},
                          clk);
    report(b, CBX_OUTCOME_ERROR, 0);
    cbx_clock_advance_ns(clk, 1 * S);
    report(b, CBX_OUTCOME_ERROR, 2 * S);
    report(b, CBX_OUTCOME_SUCCESS, 0);
    cr_assert_eq(retry_in(b), 1 * S);
    cbx_clock_advance_ns(clk, 1 * S);
    report(b, CBX_OUTCOME_SUCCESS, 0);
    report(b, CBX_OUTCOME_ERROR, 4 * S);
    cr_assert_eq(retry_in(b), 4 * S);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(record_ex, quality_only_when_given)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.quality_threshold = 0.5}, clk);
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(cbx_breaker_record_ex(b, p, &(cbx_breaker_report){.kind = CBX_OUTCOME_SUCCESS}),
                 CBX_OUTCOME_SUCCESS);
    p = cbx_breaker_acquire(b);
    cr_assert_eq(
        cbx_breaker_record_ex(
            b, p,
            &(cbx_breaker_report){.kind = CBX_OUTCOME_SUCCESS, .has_quality = 1, .quality = 0.4}),
        CBX_OUTCOME_QUALITY);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    cr_assert_eq(m.successes, 1);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_QUALITY], 1);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}
