/* Circuit breaker metrics, latency percentiles, events and the synchronous cbx_breaker_call. */
#include "cbx/breaker.h"
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/outcome.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define US CBX_NS_PER_US
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

static void call(cbx_breaker *b, cbx_outcome kind, int64_t latency_ns)
{
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0, "call refused: %s", cbx_strerror(p.rc));
    cbx_breaker_record(b, p, kind, latency_ns);
}

static cbx_breaker_metrics metrics(cbx_breaker *b)
{
    cbx_breaker_metrics m;
    memset(&m, 0xab, sizeof m);
    cbx_breaker_metrics_get(b, &m);
    return m;
}

static uint64_t sum_by_kind(const cbx_breaker_metrics *m)
{
    uint64_t n = 0;
    for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
        n += m->by_kind[k];
    return n;
}

/* |got - want| <= want / 16 */
static void expect_within_16th(uint64_t got, uint64_t want, const char *what)
{
    uint64_t diff = got > want ? got - want : want - got;
    cr_assert_leq(diff * 16, want, "%s: got %llu ns, want %llu ns +- 1/16", what,
                  (unsigned long long)got, (unsigned long long)want);
}

/* ---- counters -------------------------------------------------------------------------- */

Test(metrics, a_fresh_breaker)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 3}, clk);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_CLOSED);
    cr_assert_eq(m.mode, CBX_BREAKER_NORMAL);
    cr_assert_eq(m.calls, 0);
    cr_assert_eq(m.rejections, 0);
    cr_assert_eq(sum_by_kind(&m), 0);
    cr_assert_float_eq(m.success_rate, 1.0, 1e-12);
    cr_assert_eq(m.latency_count, 0);
    cr_assert_float_eq(m.latency_mean_ns, 0.0, 1e-12);
    cr_assert_eq(m.latency_p50_ns, 0);
    cr_assert_eq(m.latency_p99_ns, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(metrics, counts_calls_kinds_and_rates)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 3,
                                             .failure_kinds = CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR) |
                                                              CBX_OUTCOME_BIT(CBX_OUTCOME_TIMEOUT),
                                             .slow_call_ns = 50 * MS},
                          clk);
    for (int i = 0; i < 6; i++)
        call(b, CBX_OUTCOME_SUCCESS, 10 * MS);
    call(b, CBX_OUTCOME_ERROR, 60 * MS);
    call(b, CBX_OUTCOME_ERROR, -1);
    cr_assert_eq(metrics(b).consecutive_failures, 2);
    call(b, CBX_OUTCOME_RATE_LIMITED, 50 * MS); /* unlisted: ignored, but slow */
    call(b, CBX_OUTCOME_IGNORED, -1);
    cbx_breaker_release(b, cbx_breaker_acquire(b));
    call(b, CBX_OUTCOME_TIMEOUT, -1); /* the third in a row: trips */
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);

    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN);
    cr_assert_eq(m.calls, 12);
    cr_assert_eq(m.calls, sum_by_kind(&m));
    cr_assert_eq(m.successes, 6);
    cr_assert_eq(m.failures, 3);
    cr_assert_eq(m.ignored, 3);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_SUCCESS], 6);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_ERROR], 2);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_TIMEOUT], 1);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_RATE_LIMITED], 1);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_IGNORED], 2);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_QUALITY], 0);
    cr_assert_eq(m.rejections, 2);
    cr_assert_eq(m.slow_calls, 2);
    cr_assert_eq(m.opens, 1);
    cr_assert_float_eq(m.success_rate, 6.0 / 9.0, 1e-12);
    cr_assert_eq(m.latency_count, 8);
    cr_assert_eq(m.expired_probes, 0);
    cr_assert_eq(m.late_results, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(metrics, an_out_of_range_kind_is_dropped)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1}, clk);
    call(b, CBX_OUTCOME__COUNT, -1);
    call(b, (cbx_outcome)-1, -1);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.calls, 0);
    cr_assert_eq(m.state, CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(metrics, time_in_state_follows_the_clock)
{
    cbx_clock *clk = cbx_clock_virtual(1000);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = 10 * S}, clk);
    cr_assert_eq(metrics(b).time_in_state_ns, 0);
    cbx_clock_advance(clk, 1500);
    cr_assert_eq(metrics(b).time_in_state_ns, 1500 * MS);
    call(b, CBX_OUTCOME_ERROR, -1);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN);
    cr_assert_eq(m.time_in_state_ns, 0);
    cbx_clock_advance(clk, 250);
    cr_assert_eq(metrics(b).time_in_state_ns, 250 * MS);
    cbx_clock_advance(clk, 9750);
    m = metrics(b); /* the open time is up: half-open from now */
    cr_assert_eq(m.state, CBX_BREAKER_HALF_OPEN);
    cr_assert_eq(m.time_in_state_ns, 0);
    cbx_clock_advance(clk, 1);
    cr_assert_eq(metrics(b).time_in_state_ns, 1 * MS);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* Half-open is noticed at the next use, but dated from when the open time really ended. */
Test(metrics, half_open_is_dated_from_the_end_of_the_open_time)
{
    cbx_clock *clk = cbx_clock_virtual(1000);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = 5 * S}, clk);
    call(b, CBX_OUTCOME_ERROR, -1);
    cbx_clock_advance(clk, 8000); /* nobody looks for 3 s after the open time ends */
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_HALF_OPEN);
    cr_assert_eq(m.time_in_state_ns, 3 * S);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- latency --------------------------------------------------------------------------- */

Test(metrics, latency_mean_and_percentiles_of_1_to_1000_us)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){0}, clk);
    /* 1..1000 us in a scrambled order (7 is coprime with 1000). */
    for (int i = 0; i < 1000; i++)
        call(b, CBX_OUTCOME_SUCCESS, (int64_t)((i * 7 % 1000) + 1) * (int64_t)US);
    call(b, CBX_OUTCOME_SUCCESS, -1); /* unknown latency: not in the statistics */
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.calls, 1001);
    cr_assert_eq(m.latency_count, 1000);
    cr_assert_float_eq(m.latency_mean_ns, 500.5 * US, 1e-6);
    expect_within_16th(m.latency_p50_ns, 500 * US, "p50");
    expect_within_16th(m.latency_p95_ns, 950 * US, "p95");
    expect_within_16th(m.latency_p99_ns, 990 * US, "p99");
    cr_assert_lt(m.latency_p50_ns, m.latency_p95_ns);
    cr_assert_leq(m.latency_p95_ns, m.latency_p99_ns);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(metrics, latency_percentiles_of_a_long_tail)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){0}, clk);
    for (int i = 0; i < 94; i++)
        call(b, CBX_OUTCOME_SUCCESS, 2 * MS);
    for (int i = 0; i < 4; i++)
        call(b, CBX_OUTCOME_SUCCESS, 100 * MS);
    for (int i = 0; i < 2; i++)
        call(b, CBX_OUTCOME_ERROR, 3 * S);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.latency_count, 100);
    cr_assert_float_eq(m.latency_mean_ns, (94.0 * 2e6 + 4.0 * 100e6 + 2.0 * 3e9) / 100.0, 1e-3);
    expect_within_16th(m.latency_p50_ns, 2 * MS, "p50");
    expect_within_16th(m.latency_p95_ns, 100 * MS, "p95"); /* rank 95: the first 100 ms call */
    expect_within_16th(m.latency_p99_ns, 3 * S, "p99");    /* rank 99: a 3 s call */
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(metrics, latency_of_small_and_huge_values)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){0}, clk);
    for (int i = 0; i < 10; i++)
        call(b, CBX_OUTCOME_SUCCESS, 7); /* exact below 16 ns */
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.latency_p50_ns, 7);
    cr_assert_eq(m.latency_p99_ns, 7);
    call(b, CBX_OUTCOME_SUCCESS, 0);
    cr_assert_eq(metrics(b).latency_count, 11);
    cbx_breaker_free(b);

    b = make((cbx_breaker_opts){0}, clk);
    call(b, CBX_OUTCOME_SUCCESS, (int64_t)3600 * (int64_t)S); /* beyond the histogram's top */
    m = metrics(b);
    cr_assert_eq(m.latency_count, 1);
    cr_assert_float_eq(m.latency_mean_ns, 3600.0 * 1e9, 1.0);
    cr_assert_gt(m.latency_p50_ns, 1000 * S, "clamped too low: %llu",
                 (unsigned long long)m.latency_p50_ns);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- events ---------------------------------------------------------------------------- */

typedef struct evlog {
    cbx_breaker *b;
    int n;
    cbx_breaker_event ev[32];
    char name[32][32];
    cbx_breaker_metrics seen[32]; /* metrics read from inside the callback */
} evlog;

static void on_event(const cbx_breaker_event *ev, void *ud)
{
    evlog *l = ud;
    cr_assert_lt(l->n, 32);
    l->ev[l->n] = *ev;
    snprintf(l->name[l->n], sizeof l->name[0], "%s", ev->name);
    l->ev[l->n].name = l->name[l->n];
    cbx_breaker_metrics_get(l->b, &l->seen[l->n]);
    l->n++;
}

typedef struct want_ev {
    cbx_breaker_state from, to;
    cbx_breaker_mode mode;
    cbx_breaker_reason reason;
    uint64_t at_ns, open_for_ns;
} want_ev;

Test(events, every_transition_in_order_with_metrics_inside_the_callback)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.name = "inventory",
                                             .consecutive_failures = 2,
                                             .open_ns = S,
                                             .open_multiplier = 3,
                                             .on_event = on_event,
                                             .event_ud = &l},
                          clk);
    l.b = b;
    call(b, CBX_OUTCOME_ERROR, -1);
    call(b, CBX_OUTCOME_ERROR, -1); /* t=0: trip */
    cbx_clock_advance(clk, 1000);
    cbx_permit p = cbx_breaker_acquire(b); /* t=1: half-open */
    cbx_clock_advance(clk, 100);
    cbx_breaker_record(b, p, CBX_OUTCOME_ERROR, -1); /* t=1.1: re-open for 3 s */
    cbx_clock_advance(clk, 3000);
    p = cbx_breaker_acquire(b);                        /* t=4.1: half-open */
    cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, -1); /* closed */
    cbx_clock_advance(clk, 900);
    cbx_breaker_force_open(b); /* t=5 */
    cbx_breaker_reset(b);

    const want_ev want[] = {
        {CBX_BREAKER_CLOSED, CBX_BREAKER_OPEN, CBX_BREAKER_NORMAL,
         CBX_BREAKER_REASON_CONSECUTIVE_FAILURES, 0, 1 * S},
        {CBX_BREAKER_OPEN, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_NORMAL,
         CBX_BREAKER_REASON_OPEN_ELAPSED, 1 * S, 0},
        {CBX_BREAKER_HALF_OPEN, CBX_BREAKER_OPEN, CBX_BREAKER_NORMAL,
         CBX_BREAKER_REASON_PROBE_FAILED, 1100 * MS, 3 * S},
        {CBX_BREAKER_OPEN, CBX_BREAKER_HALF_OPEN, CBX_BREAKER_NORMAL,
         CBX_BREAKER_REASON_OPEN_ELAPSED, 4100 * MS, 0},
        {CBX_BREAKER_HALF_OPEN, CBX_BREAKER_CLOSED, CBX_BREAKER_NORMAL,
         CBX_BREAKER_REASON_PROBES_SUCCEEDED, 4100 * MS, 0},
        {CBX_BREAKER_CLOSED, CBX_BREAKER_OPEN, CBX_BREAKER_FORCED_OPEN, CBX_BREAKER_REASON_MANUAL,
         5 * S, 0},
        {CBX_BREAKER_OPEN, CBX_BREAKER_CLOSED, CBX_BREAKER_NORMAL, CBX_BREAKER_REASON_MANUAL, 5 * S,
         0},
    };
    const int n = (int)(sizeof want / sizeof want[0]);
    cr_assert_eq(l.n, n, "%d events, want %d", l.n, n);
    for (int i = 0; i < n; i++) {
        const cbx_breaker_event *e = &l.ev[i];
        cr_assert_str_eq(e->name, "inventory");
        cr_assert_eq(e->from, want[i].from, "event %d: from %s", i,
                     cbx_breaker_state_name(e->from));
        cr_assert_eq(e->to, want[i].to, "event %d: to %s", i, cbx_breaker_state_name(e->to));
        cr_assert_eq(e->mode, want[i].mode, "event %d: mode %s", i, cbx_breaker_mode_name(e->mode));
        cr_assert_eq(e->reason, want[i].reason, "event %d: reason %s", i,
                     cbx_breaker_reason_name(e->reason));
        cr_assert_eq(e->at_ns, want[i].at_ns, "event %d: at %llu", i, (unsigned long long)e->at_ns);
        cr_assert_eq(e->open_for_ns, want[i].open_for_ns, "event %d: open_for %llu", i,
                     (unsigned long long)e->open_for_ns);
        cr_assert_eq(e->shadow, 0);
        /* The callback runs after the change is made and without the lock held. */
        cr_assert_eq(l.seen[i].state, want[i].to, "event %d: metrics inside saw %s", i,
                     cbx_breaker_state_name(l.seen[i].state));
        cr_assert_eq(l.seen[i].mode, want[i].mode);
    }
    cr_assert_eq(l.seen[0].opens, 1);
    cr_assert_eq(l.seen[2].opens, 2);
    cr_assert_eq(l.seen[2].reopens, 1);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(events, no_callback_is_fine)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = S}, clk);
    call(b, CBX_OUTCOME_ERROR, -1);
    cbx_clock_advance(clk, 1000);
    call(b, CBX_OUTCOME_SUCCESS, -1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- cbx_breaker_call ------------------------------------------------------------------ */

typedef struct work {
    cbx_clock *clk;
    cbx_outcome outcome;
    double quality; /* < 0: leave *quality alone */
    uint64_t takes_ms;
    int runs;
} work;

static cbx_outcome do_work(void *ud, double *quality)
{
    work *w = ud;
    w->runs++;
    cr_assert_float_eq(*quality, 1.0, 1e-12, "quality must start at 1");
    cbx_clock_advance(w->clk, w->takes_ms);
    if (w->quality >= 0)
        *quality = w->quality;
    return w->outcome;
}

typedef struct fallback {
    int answer; /* what the fallback returns */
    int runs;
    int rc;
} fallback;

static int do_fallback(void *ud, int rc)
{
    fallback *f = ud;
    f->runs++;
    f->rc = rc;
    return f->answer;
}

Test(call, success_runs_fn_and_records_latency)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1}, clk);
    work w = {.clk = clk, .outcome = CBX_OUTCOME_SUCCESS, .quality = -1, .takes_ms = 30};
    fallback f = {0};
    cbx_breaker_call_result res;
    memset(&res, 0xab, sizeof res);
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, do_fallback, &f, &res), 0);
    cr_assert_eq(w.runs, 1);
    cr_assert_eq(f.runs, 0, "fallback ran after a success");
    cr_assert_eq(res.rc, 0);
    cr_assert_eq(res.outcome, CBX_OUTCOME_SUCCESS);
    cr_assert_eq(res.used_fallback, 0);
    cr_assert_eq(res.latency_ns, 30 * (int64_t)MS);
    cr_assert_float_eq(res.quality, 1.0, 1e-12);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.successes, 1);
    cr_assert_eq(m.latency_count, 1);
    expect_within_16th(m.latency_p50_ns, 30 * MS, "p50");
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(call, failure_records_and_calls_the_fallback)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 3}, clk);
    work w = {.clk = clk, .outcome = CBX_OUTCOME_TIMEOUT, .quality = -1, .takes_ms = 5};
    fallback f = {.answer = 0};
    cbx_breaker_call_result res;
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, do_fallback, &f, &res), 0,
                 "the fallback answered, so the call succeeds");
    cr_assert_eq(f.runs, 1);
    cr_assert_eq(f.rc, CBX_EFAILED);
    cr_assert_eq(res.rc, CBX_EFAILED);
    cr_assert_eq(res.outcome, CBX_OUTCOME_TIMEOUT);
    cr_assert_eq(res.used_fallback, 1);
    cr_assert_eq(res.latency_ns, 5 * (int64_t)MS);

    f.answer = -1; /* a fallback that has no answer */
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, do_fallback, &f, &res), CBX_EFAILED);
    cr_assert_eq(f.runs, 2);
    cr_assert_eq(res.used_fallback, 0);
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, NULL, NULL, &res), CBX_EFAILED);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_TIMEOUT], 3);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(call, refusal_skips_fn_and_explains)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = 10 * S}, clk);
    work w = {.clk = clk, .outcome = CBX_OUTCOME_ERROR, .quality = -1, .takes_ms = 1000};
    fallback f = {.answer = 0};
    cbx_breaker_call_result res;
    cbx_breaker_call(b, do_work, &w, NULL, NULL, &res); /* trips at t=1 s */
    cr_assert_eq(w.runs, 1);

    cbx_clock_advance(clk, 4000);
    memset(&res, 0xab, sizeof res);
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, do_fallback, &f, &res), 0);
    cr_assert_eq(w.runs, 1, "fn ran on an open breaker");
    cr_assert_eq(f.runs, 1);
    cr_assert_eq(f.rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(res.rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(res.outcome, CBX_OUTCOME_IGNORED);
    cr_assert_eq(res.used_fallback, 1);
    cr_assert_eq(res.latency_ns, -1);
    cr_assert_eq(res.why.rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(res.why.state, CBX_BREAKER_OPEN);
    cr_assert_eq(res.why.reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
    cr_assert_eq(res.why.retry_in_ns, 6 * S);

    cr_assert_eq(cbx_breaker_call(b, do_work, &w, NULL, NULL, &res), CBX_ECIRCUIT_OPEN);
    cbx_breaker_force_open(b);
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, do_fallback, &f, &res), 0);
    cr_assert_eq(f.rc, CBX_EFORCED_OPEN);
    cr_assert_eq(res.why.rc, CBX_EFORCED_OPEN);
    cr_assert_eq(w.runs, 1);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.rejections, 3);
    cr_assert_eq(m.calls, 1);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(call, quality_is_scored_through_the_pointer)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b =
        make((cbx_breaker_opts){.consecutive_failures = 2, .quality_threshold = 0.7}, clk);
    work w = {.clk = clk, .outcome = CBX_OUTCOME_SUCCESS, .quality = 0.4};
    fallback f = {.answer = -1};
    cbx_breaker_call_result res;
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, do_fallback, &f, &res), CBX_EFAILED);
    cr_assert_eq(res.outcome, CBX_OUTCOME_QUALITY);
    cr_assert_float_eq(res.quality, 0.4, 1e-12);
    cr_assert_eq(f.rc, CBX_EFAILED);

    w.quality = 0.7;
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, do_fallback, &f, &res), 0);
    cr_assert_eq(res.outcome, CBX_OUTCOME_SUCCESS);
    cr_assert_float_eq(res.quality, 0.7, 1e-12);

    w.quality = 0.69;
    cbx_breaker_call(b, do_work, &w, NULL, NULL, &res);
    cbx_breaker_call(b, do_work, &w, NULL, NULL, &res);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_QUALITY], 3);
    cr_assert_eq(m.successes, 1);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(call, latency_on_the_breaker_clock_makes_calls_slow)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make(
        (cbx_breaker_opts){.count_window = {.calls = 2, .slow_rate = 1.0}, .slow_call_ns = 2 * S},
        clk);
    work w = {.clk = clk, .outcome = CBX_OUTCOME_SUCCESS, .quality = -1, .takes_ms = 2000};
    cbx_breaker_call_result res;
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, NULL, NULL, &res), 0);
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, NULL, NULL, &res), 0);
    cr_assert_eq(metrics(b).slow_calls, 2);
    cr_assert_eq(cbx_breaker_call(b, do_work, &w, NULL, NULL, &res), CBX_ECIRCUIT_OPEN);
    cr_assert_eq(res.why.reason, CBX_BREAKER_REASON_COUNT_SLOW_RATE);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}
