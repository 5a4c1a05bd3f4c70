/* Circuit breaker manual modes, reset, configuration validation, defaults and names. */
#include "cbx/breaker.h"
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/outcome.h"

#include <criterion/criterion.h>
#include <math.h>
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
    l->ev[l->n].name = NULL; /* valid only during the callback */
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

static void fails(cbx_breaker *b, int n)
{
    for (int i = 0; i < n; i++)
        call(b, CBX_OUTCOME_ERROR);
}

static cbx_breaker_metrics metrics(cbx_breaker *b)
{
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    return m;
}

static void expect_event(const evlog *l, int i, cbx_breaker_state from, cbx_breaker_state to,
                         cbx_breaker_mode mode, cbx_breaker_reason reason, int shadow)
{
    cr_assert_lt(i, l->n, "event %d missing (%d seen)", i, l->n);
    const cbx_breaker_event *e = &l->ev[i];
    cr_assert_eq(e->from, from, "event %d from %s", i, cbx_breaker_state_name(e->from));
    cr_assert_eq(e->to, to, "event %d to %s", i, cbx_breaker_state_name(e->to));
    cr_assert_eq(e->mode, mode, "event %d mode %s", i, cbx_breaker_mode_name(e->mode));
    cr_assert_eq(e->reason, reason, "event %d reason %s", i, cbx_breaker_reason_name(e->reason));
    cr_assert_eq(e->shadow, shadow, "event %d shadow %d", i, e->shadow);
}

/* ---- forced open ----------------------------------------------------------------------- */

Test(mode, forced_open_refuses_everything_until_changed)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.name = "pay",
                                             .consecutive_failures = 0,
                                             .open_ns = S,
                                             .on_event = on_event,
                                             .event_ud = &l},
                          clk);
    call(b, CBX_OUTCOME_SUCCESS);
    cbx_breaker_force_open(b);
    cr_assert_eq(cbx_breaker_mode_now(b), CBX_BREAKER_FORCED_OPEN);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    expect_event(&l, 0, CBX_BREAKER_CLOSED, CBX_BREAKER_OPEN, CBX_BREAKER_FORCED_OPEN,
                 CBX_BREAKER_REASON_MANUAL, 0);

    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, CBX_EFORCED_OPEN);
    cbx_breaker_rejection why;
    p = cbx_breaker_acquire_ex(b, &why);
    cr_assert_eq(p.rc, CBX_EFORCED_OPEN);
    cr_assert_eq(why.rc, CBX_EFORCED_OPEN);
    cr_assert_eq(why.mode, CBX_BREAKER_FORCED_OPEN);
    cr_assert_eq(why.state, CBX_BREAKER_OPEN);
    cr_assert_eq(why.reason, CBX_BREAKER_REASON_MANUAL);
    cr_assert_eq(why.retry_in_ns, 0);
    char buf[256];
    cbx_breaker_explain(b, &why, buf, sizeof buf);
    cr_assert(strstr(buf, "'pay'") && strstr(buf, "forced open"), "%s", buf);

    /* Open time does not apply: no half-open, ever. */
    cbx_clock_advance(clk, 3600 * 1000);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_EFORCED_OPEN);
    cr_assert_eq(metrics(b).rejections, 3);
    cr_assert_eq(l.n, 1);

    cbx_breaker_set_mode(b, CBX_BREAKER_NORMAL);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cr_assert_eq(cbx_breaker_acquire(b).rc, 0);
    expect_event(&l, 1, CBX_BREAKER_OPEN, CBX_BREAKER_CLOSED, CBX_BREAKER_NORMAL,
                 CBX_BREAKER_REASON_MANUAL, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(mode, forcing_open_cancels_probes)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 1, .open_ns = S}, clk);
    fails(b, 1);
    cbx_clock_advance(clk, 1000);
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.state, CBX_BREAKER_HALF_OPEN);
    cbx_breaker_force_open(b);
    cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, -1);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_OPEN);
    cr_assert_eq(m.mode, CBX_BREAKER_FORCED_OPEN);
    cr_assert_eq(m.probes_in_flight, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- forced closed --------------------------------------------------------------------- */

Test(mode, forced_closed_admits_never_trips_and_still_counts)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 3,
                                             .count_window = {.calls = 4, .failure_rate = 0.5},
                                             .open_ns = S,
                                             .on_event = on_event,
                                             .event_ud = &l},
                          clk);
    fails(b, 3);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_force_closed(b); /* from OPEN: admits at once */
    cr_assert_eq(cbx_breaker_mode_now(b), CBX_BREAKER_FORCED_CLOSED);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    expect_event(&l, 1, CBX_BREAKER_OPEN, CBX_BREAKER_CLOSED, CBX_BREAKER_FORCED_CLOSED,
                 CBX_BREAKER_REASON_MANUAL, 0);

    fails(b, 20);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_CLOSED);
    cr_assert_eq(m.mode, CBX_BREAKER_FORCED_CLOSED);
    cr_assert_eq(m.consecutive_failures, 20, "the run is not counted while forced closed");
    cr_assert_eq(m.failures, 23);
    cr_assert_eq(m.opens, 1);
    cr_assert_eq(m.rejections, 0);
    cr_assert_eq(l.n, 2, "a trip was reported while forced closed");

    cbx_breaker_reset(b);
    cr_assert_eq(metrics(b).consecutive_failures, 0);
    fails(b, 2);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    fails(b, 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- disabled -------------------------------------------------------------------------- */

Test(mode, disabled_admits_and_counts_only_metrics)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 2,
                                             .slow_call_ns = 10 * MS,
                                             .on_event = on_event,
                                             .event_ud = &l},
                          clk);
    cbx_breaker_set_mode(b, CBX_BREAKER_DISABLED);
    cr_assert_eq(cbx_breaker_mode_now(b), CBX_BREAKER_DISABLED);
    call(b, CBX_OUTCOME_SUCCESS);
    for (int i = 0; i < 10; i++) {
        cbx_permit p = cbx_breaker_acquire(b);
        cr_assert_eq(p.rc, 0);
        cr_assert_eq(p.mode, CBX_BREAKER_DISABLED);
        cbx_breaker_record(b, p, CBX_OUTCOME_TIMEOUT, 20 * MS);
    }
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_CLOSED);
    cr_assert_eq(m.failures, 10);
    cr_assert_eq(m.by_kind[CBX_OUTCOME_TIMEOUT], 10);
    cr_assert_eq(m.successes, 1);
    cr_assert_eq(m.slow_calls, 10);
    cr_assert_eq(m.latency_count, 10);
    cr_assert_eq(m.consecutive_failures, 0, "the rules ran while disabled");
    cr_assert_eq(m.opens, 0);
    cr_assert_eq(l.n, 1); /* only the mode change */
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- metrics only ---------------------------------------------------------------------- */

Test(mode, metrics_only_reports_a_shadow_trip_and_stays_closed)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make(
        (cbx_breaker_opts){
            .consecutive_failures = 3, .open_ns = 5 * S, .on_event = on_event, .event_ud = &l},
        clk);
    cbx_breaker_set_mode(b, CBX_BREAKER_METRICS_ONLY);
    expect_event(&l, 0, CBX_BREAKER_CLOSED, CBX_BREAKER_CLOSED, CBX_BREAKER_METRICS_ONLY,
                 CBX_BREAKER_REASON_MANUAL, 0);
    fails(b, 2);
    cr_assert_eq(l.n, 1);
    cbx_clock_advance(clk, 250);
    fails(b, 1);
    cr_assert_eq(l.n, 2, "no shadow event at the would-be trip");
    expect_event(&l, 1, CBX_BREAKER_CLOSED, CBX_BREAKER_OPEN, CBX_BREAKER_METRICS_ONLY,
                 CBX_BREAKER_REASON_CONSECUTIVE_FAILURES, 1);
    cr_assert_eq(l.ev[1].open_for_ns, 5 * S);
    cr_assert_eq(l.ev[1].at_ns, 250 * MS);

    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.rc, 0, "metrics-only refused a call");
    cbx_breaker_record(b, p, CBX_OUTCOME_ERROR, -1);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_CLOSED);
    cr_assert_eq(m.mode, CBX_BREAKER_METRICS_ONLY);
    cr_assert_eq(m.opens, 0);
    cr_assert_eq(m.rejections, 0);
    /* The windows restarted after the shadow trip: one more failure is a run of one. */
    cr_assert_eq(m.consecutive_failures, 1);
    cr_assert_eq(l.n, 2);
    fails(b, 2);
    cr_assert_eq(l.n, 3);
    expect_event(&l, 2, CBX_BREAKER_CLOSED, CBX_BREAKER_OPEN, CBX_BREAKER_METRICS_ONLY,
                 CBX_BREAKER_REASON_CONSECUTIVE_FAILURES, 1);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(mode, metrics_only_shadows_window_rules)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.count_window = {.calls = 4, .slow_rate = 0.5},
                                             .slow_call_ns = S,
                                             .on_event = on_event,
                                             .event_ud = &l},
                          clk);
    cbx_breaker_set_mode(b, CBX_BREAKER_METRICS_ONLY);
    for (int i = 0; i < 4; i++) {
        cbx_permit p = cbx_breaker_acquire(b);
        cr_assert_eq(p.rc, 0);
        cbx_breaker_record(b, p, CBX_OUTCOME_SUCCESS, i % 2 ? 2 * S : 0);
    }
    cr_assert_eq(l.n, 2);
    expect_event(&l, 1, CBX_BREAKER_CLOSED, CBX_BREAKER_OPEN, CBX_BREAKER_METRICS_ONLY,
                 CBX_BREAKER_REASON_COUNT_SLOW_RATE, 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- reset ----------------------------------------------------------------------------- */

Test(mode, reset_closes_and_forgets_growth_but_keeps_counters)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    evlog l = {0};
    cbx_breaker *b = make((cbx_breaker_opts){.consecutive_failures = 2,
                                             .open_ns = S,
                                             .open_multiplier = 4,
                                             .on_event = on_event,
                                             .event_ud = &l},
                          clk);
    fails(b, 2);
    cbx_clock_advance(clk, 1000);
    cbx_permit p = cbx_breaker_acquire(b);
    cr_assert_eq(p.state, CBX_BREAKER_HALF_OPEN);
    cbx_breaker_record(b, p, CBX_OUTCOME_ERROR, -1); /* re-open: 4 s */
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);
    cbx_breaker_metrics before = metrics(b);
    cr_assert_eq(before.reopens, 1);

    cbx_breaker_reset(b);
    cbx_breaker_metrics m = metrics(b);
    cr_assert_eq(m.state, CBX_BREAKER_CLOSED);
    cr_assert_eq(m.mode, CBX_BREAKER_NORMAL);
    cr_assert_eq(m.reopens, 0);
    cr_assert_eq(m.consecutive_failures, 0);
    cr_assert_eq(m.failures, before.failures);
    cr_assert_eq(m.calls, before.calls);
    cr_assert_eq(m.opens, before.opens);
    cr_assert_eq(m.rejections, before.rejections);
    cr_assert_eq(m.time_in_state_ns, 0);
    expect_event(&l, l.n - 1, CBX_BREAKER_OPEN, CBX_BREAKER_CLOSED, CBX_BREAKER_NORMAL,
                 CBX_BREAKER_REASON_MANUAL, 0);

    fails(b, 1);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED, "reset kept the run");
    fails(b, 1);
    cbx_breaker_rejection why;
    cr_assert_eq(cbx_breaker_acquire_ex(b, &why).rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.retry_in_ns, S, "reset kept the re-open growth");
    cr_assert_eq(why.reopens, 0);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(mode, unknown_mode_is_ignored)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){0}, clk);
    cbx_breaker_force_closed(b);
    cbx_breaker_set_mode(b, (cbx_breaker_mode)99);
    cr_assert_eq(cbx_breaker_mode_now(b), CBX_BREAKER_FORCED_CLOSED);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- configuration --------------------------------------------------------------------- */

typedef struct bad_case {
    const char *where;
    cbx_breaker_opts o;
} bad_case;

static const bad_case bad_cases[] = {
    {"count_window.calls", {.count_window = {.calls = 65537}}},
    {"count_window.failure_rate", {.count_window = {.calls = 10, .failure_rate = 1.5}}},
    {"count_window.failure_rate", {.count_window = {.calls = 10, .failure_rate = -0.1}}},
    {"count_window.failure_rate", {.count_window = {.calls = 10, .failure_rate = NAN}}},
    {"count_window.slow_rate",
     {.count_window = {.calls = 10, .slow_rate = 1.01}, .slow_call_ns = S}},
    {"count_window.slow_rate", {.count_window = {.calls = 10, .slow_rate = -1}, .slow_call_ns = S}},
    {"count_window.calls", {.count_window = {.failure_rate = 0.5}}},
    {"count_window.calls", {.count_window = {.slow_rate = 0.5}, .slow_call_ns = S}},
    {"count_window.min_calls", {.count_window = {.calls = 10, .min_calls = 11}}},
    {"count_window.min_calls", {.count_window = {.min_calls = 1}}},
    {"time_window.buckets", {.time_window = {.length_ns = 3600 * S, .buckets = 3601}}},
    {"time_window.failure_rate", {.time_window = {.length_ns = S, .failure_rate = 2}}},
    {"time_window.failure_rate", {.time_window = {.length_ns = S, .failure_rate = NAN}}},
    {"time_window.slow_rate",
     {.time_window = {.length_ns = S, .slow_rate = -0.5}, .slow_call_ns = S}},
    {"time_window.length_ns", {.time_window = {.failure_rate = 0.5}}},
    {"time_window.length_ns", {.time_window = {.slow_rate = 0.5}, .slow_call_ns = S}},
    {"time_window.length_ns", {.time_window = {.length_ns = 9999, .failure_rate = 0.5}}},
    {"time_window.length_ns", {.time_window = {.length_ns = 99999, .buckets = 100}}},
    {"slow_call_ns", {.count_window = {.calls = 10, .slow_rate = 0.5}}},
    {"slow_call_ns", {.time_window = {.length_ns = S, .slow_rate = 0.5}}},
    {"quality_threshold", {.quality_threshold = 1.1}},
    {"quality_threshold", {.quality_threshold = -0.1}},
    {"quality_threshold", {.quality_threshold = NAN}},
    {"failure_kinds", {.failure_kinds = CBX_OUTCOME_BIT(CBX_OUTCOME_SUCCESS)}},
    {"failure_kinds",
     {.failure_kinds = CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR) | CBX_OUTCOME_BIT(CBX_OUTCOME_IGNORED)}},
    {"failure_kinds", {.failure_kinds = 1u << 20}},
    {"open_multiplier", {.open_multiplier = 0.5}},
    {"open_multiplier", {.open_multiplier = -2}},
    {"open_multiplier", {.open_multiplier = INFINITY}},
    {"open_multiplier", {.open_multiplier = NAN}},
    {"open_max_ns", {.open_ns = 10 * S, .open_max_ns = 5 * S}},
    {"open_max_ns", {.open_max_ns = 30 * S}}, /* under the default open time of 60 s */
    {"half_open_probes", {.half_open_probes = CBX_BREAKER_MAX_PROBES + 1}},
};

Test(config, every_invalid_field_is_named)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        cbx_breaker *b = (cbx_breaker *)&b; /* not NULL: new must clear it */
        cbx_err err;
        memset(&err, 0, sizeof err);
        int r = cbx_breaker_new(&b, &bad_cases[i].o, &err);
        cr_assert_eq(r, CBX_EINVAL_CONFIG, "case %zu (%s): rc %d", i, bad_cases[i].where, r);
        cr_assert_null(b, "case %zu: *out not cleared", i);
        cr_assert_eq(err.code, CBX_EINVAL_CONFIG, "case %zu", i);
        cr_assert_str_eq(err.where, bad_cases[i].where, "case %zu: where is '%s'", i, err.where);
        cr_assert(strstr(err.msg, bad_cases[i].where), "case %zu: message '%s'", i, err.msg);
        /* Without a detail struct the code is the same. */
        cr_assert_eq(cbx_breaker_new(&b, &bad_cases[i].o, NULL), CBX_EINVAL_CONFIG, "case %zu", i);
    }
}

Test(config, limits_themselves_are_valid)
{
    const cbx_breaker_opts good[] = {
        {.count_window = {.calls = 65536, .min_calls = 65536, .failure_rate = 1.0}},
        {.count_window = {.calls = 3}}, /* a window without a rate: counts, never trips */
        {.time_window = {.length_ns = 3600 * CBX_NS_PER_US, .buckets = 3600}},
        {.time_window = {.length_ns = 10 * CBX_NS_PER_US, .failure_rate = 1.0}},
        {.count_window = {.calls = 1, .slow_rate = 1.0}, .slow_call_ns = 1},
        {.quality_threshold = 1.0},
        {.failure_kinds = CBX_OUTCOME_FAILURES},
        {.open_multiplier = 1.0, .open_ns = S, .open_max_ns = S},
        {.open_max_ns = 60 * S},
        {.half_open_probes = CBX_BREAKER_MAX_PROBES, .close_after = 1000},
        {.slow_call_ns = S}, /* slow calls counted without a slow rate */
        {0},                 /* no rule at all */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cbx_breaker *b = NULL;
        cbx_err err = {0};
        cr_assert_eq(cbx_breaker_new(&b, &good[i], &err), 0, "case %zu: %s", i, err.msg);
        cr_assert_not_null(b);
        cbx_breaker_free(b);
    }
}

Test(config, a_breaker_without_rules_never_trips_but_can_be_forced_open)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){0}, clk);
    fails(b, 100);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    cbx_breaker_force_open(b);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_EFORCED_OPEN);
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

Test(config, null_options_give_the_defaults)
{
    cbx_breaker_opts o;
    memset(&o, 0xff, sizeof o);
    cbx_breaker_opts_default(&o);
    cr_assert_eq(o.consecutive_failures, 5);
    cr_assert_null(o.name);
    cr_assert_null(o.clock);
    cr_assert_eq(o.count_window.calls, 0);
    cr_assert_eq(o.time_window.length_ns, 0);
    cr_assert_eq(o.open_ns, 0);
    cr_assert_eq(o.failure_kinds, 0);
    cr_assert_null(o.on_event);

    /* NULL options: monotonic clock, 5 failures in a row, 60 s open. Nothing here waits. */
    cbx_breaker *b = NULL;
    cr_assert_eq(cbx_breaker_new(&b, NULL, NULL), 0);
    cr_assert_str_eq(cbx_breaker_name(b), "breaker");
    cr_assert_eq(cbx_breaker_mode_now(b), CBX_BREAKER_NORMAL);
    fails(b, 4);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_CLOSED);
    fails(b, 1);
    cbx_breaker_rejection why;
    cr_assert_eq(cbx_breaker_acquire_ex(b, &why).rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.consecutive_failures, 5);
    cr_assert_leq(why.retry_in_ns, 60 * S);
    cr_assert_gt(why.retry_in_ns, 50 * S);
    cbx_breaker_free(b);
}

Test(config, free_null_is_harmless_and_the_name_is_copied)
{
    cbx_breaker_free(NULL);
    char name[16];
    snprintf(name, sizeof name, "orders");
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker *b = make((cbx_breaker_opts){.name = name}, clk);
    snprintf(name, sizeof name, "changed");
    cr_assert_str_eq(cbx_breaker_name(b), "orders");
    cbx_breaker_free(b);
    cbx_clock_free(clk);
}

/* ---- names ----------------------------------------------------------------------------- */

Test(names, states_modes_and_reasons)
{
    cr_assert_str_eq(cbx_breaker_state_name(CBX_BREAKER_CLOSED), "closed");
    cr_assert_str_eq(cbx_breaker_state_name(CBX_BREAKER_OPEN), "open");
    cr_assert_str_eq(cbx_breaker_state_name(CBX_BREAKER_HALF_OPEN), "half_open");
    cr_assert_str_eq(cbx_breaker_state_name((cbx_breaker_state)7), "unknown");

    cr_assert_str_eq(cbx_breaker_mode_name(CBX_BREAKER_NORMAL), "normal");
    cr_assert_str_eq(cbx_breaker_mode_name(CBX_BREAKER_FORCED_OPEN), "forced_open");
    cr_assert_str_eq(cbx_breaker_mode_name(CBX_BREAKER_FORCED_CLOSED), "forced_closed");
    cr_assert_str_eq(cbx_breaker_mode_name(CBX_BREAKER_DISABLED), "disabled");
    cr_assert_str_eq(cbx_breaker_mode_name(CBX_BREAKER_METRICS_ONLY), "metrics_only");
    cr_assert_str_eq(cbx_breaker_mode_name((cbx_breaker_mode)9), "unknown");

    static const struct {
        cbx_breaker_reason r;
        const char *name;
    } reasons[] = {
        {CBX_BREAKER_REASON_NONE, "none"},
        {CBX_BREAKER_REASON_CONSECUTIVE_FAILURES, "consecutive_failures"},
        {CBX_BREAKER_REASON_COUNT_FAILURE_RATE, "count_window.failure_rate"},
        {CBX_BREAKER_REASON_COUNT_SLOW_RATE, "count_window.slow_rate"},
        {CBX_BREAKER_REASON_TIME_FAILURE_RATE, "time_window.failure_rate"},
        {CBX_BREAKER_REASON_TIME_SLOW_RATE, "time_window.slow_rate"},
        {CBX_BREAKER_REASON_OPEN_ELAPSED, "open_elapsed"},
        {CBX_BREAKER_REASON_PROBE_FAILED, "probe_failed"},
        {CBX_BREAKER_REASON_PROBE_EXPIRED, "probe_lease_expired"},
        {CBX_BREAKER_REASON_PROBES_SUCCEEDED, "probes_succeeded"},
        {CBX_BREAKER_REASON_MANUAL, "manual"},
        {CBX_BREAKER_REASON_INITIAL, "initial_state"},
        {CBX_BREAKER_REASON_HALF_OPEN_ELAPSED, "half_open_elapsed"},
        {CBX_BREAKER_REASON_PROBE_FAILURE_RATE, "half_open.failure_rate"},
        {CBX_BREAKER_REASON_PROBE_SLOW_RATE, "half_open.slow_rate"},
        {CBX_BREAKER_REASON_PREDICATE, "trip_predicate"},
    };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        cr_assert_str_eq(cbx_breaker_reason_name(reasons[i].r), reasons[i].name);
    cr_assert_str_eq(cbx_breaker_reason_name((cbx_breaker_reason)99), "unknown");
}
