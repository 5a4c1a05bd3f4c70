/* The retry budget: the allowance formula, exhaustion, the sliding window, validation. */
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/retry.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>

#define MS CBX_NS_PER_MS
#define S  CBX_NS_PER_S

static cbx_retry_budget *make(cbx_clock *clk, double ratio, double min_per_second,
                              uint64_t window_ns)
{
    cbx_retry_budget *b = NULL;
    cbx_err e;
    int r = cbx_retry_budget_new(
        &b,
        &(cbx_retry_budget_opts){
            .ratio = ratio, .min_per_second = min_per_second, .window_ns = window_ns, .clock = clk},
        &e);
    cr_assert_eq(r, 0, "cbx_retry_budget_new: %s", e.msg);
    cr_assert_not_null(b);
    return b;
}

static void record(cbx_retry_budget *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        cbx_retry_budget_record_call(b);
}

/* Withdraw until refused; returns how many were granted (at most limit). */
static unsigned drain(cbx_retry_budget *b, unsigned limit)
{
    unsigned n = 0;
    while (n < limit && cbx_retry_budget_try_withdraw(b) == 0)
        n++;
    return n;
}

static cbx_retry_budget_stats stats_of(cbx_retry_budget *b)
{
    cbx_retry_budget_stats st;
    cbx_retry_budget_get_stats(b, &st);
    return st;
}

Test(retry_budget, defaults)
{
    cbx_retry_budget_opts o;
    cbx_retry_budget_opts_default(&o);
    cr_assert_float_eq(o.ratio, 0.2, 1e-12);
    cr_assert_float_eq(o.min_per_second, 10.0, 1e-12);
    cr_assert_eq(o.window_ns, 10 * S);
    cr_assert_null(o.clock);
    cr_assert_eq(cbx_retry_budget_opts_validate(&o, NULL), 0);
    cbx_retry_budget *b = NULL;
    cr_assert_eq(cbx_retry_budget_new(&b, &o, NULL), 0);
    /* Monotonic clock, no calls yet: the reserve alone, 10/s over 10 s. */
    cr_assert_eq(stats_of(b).allowed_in_window, 100);
    cbx_retry_budget_free(b);
    cbx_retry_budget_free(NULL);
}

Test(retry_budget, ratio_of_calls_then_refused)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_budget *b = make(clk, 0.2, 0, 10 * S);
    record(b, 100);
    cr_assert_eq(drain(b, 1000), 20);
    cr_assert_eq(cbx_retry_budget_try_withdraw(b), CBX_EBUDGET_EXHAUSTED);
    cbx_retry_budget_stats st = stats_of(b);
    cr_assert_eq(st.calls_in_window, 100);
    cr_assert_eq(st.retries_in_window, 20);
    cr_assert_eq(st.allowed_in_window, 20);
    cr_assert_eq(st.calls_total, 100);
    cr_assert_eq(st.retries_total, 20);
    cr_assert_eq(st.refused_total, 2);
    /* Five more calls earn exactly one more retry. */
    record(b, 5);
    cr_assert_eq(drain(b, 1000), 1);
    cbx_retry_budget_free(b);
    cbx_clock_free(clk);
}

Test(retry_budget, ratio_plus_minimum_per_second)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_budget *b = make(clk, 0.2, 1.0, 10 * S);
    record(b, 100);
    cr_assert_eq(stats_of(b).allowed_in_window, 30); /* 0.2 * 100 + 1/s * 10 s */
    cr_assert_eq(drain(b, 1000), 30);
    cr_assert_eq(cbx_retry_budget_try_withdraw(b), CBX_EBUDGET_EXHAUSTED);
    cbx_retry_budget_free(b);
    cbx_clock_free(clk);
}

Test(retry_budget, minimum_alone_serves_a_quiet_client)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_budget *b = make(clk, 0.5, 2.0, 5 * S);
    cr_assert_eq(drain(b, 1000), 10); /* 2/s * 5 s, no calls at all */
    cbx_retry_budget_free(b);
    cbx_clock_free(clk);

    clk = cbx_clock_virtual(0);
    b = make(clk, 0, 0.5, 3 * S); /* 1.5 rounds down to 1 */
    cr_assert_eq(drain(b, 1000), 1);
    cbx_retry_budget_free(b);
    cbx_clock_free(clk);
}

Test(retry_budget, fractions_do_not_lose_a_retry_to_rounding)
{
    const double ratios[] = {0.29, 0.57, 0.7, 0.1, 0.3};
    const unsigned want[] = {29, 57, 70, 10, 30};
    for (unsigned i = 0; i < 5; i++) {
        cbx_clock *clk = cbx_clock_virtual(0);
        cbx_retry_budget *b = make(clk, ratios[i], 0, 10 * S);
        record(b, 100);
        cr_assert_eq(drain(b, 1000), want[i], "ratio %g", ratios[i]);
        cbx_retry_budget_free(b);
        cbx_clock_free(clk);
    }
}

Test(retry_budget, ratio_above_one_allows_several_retries_per_call)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_budget *b = make(clk, 2.5, 0, 10 * S);
    record(b, 4);
    cr_assert_eq(drain(b, 1000), 10);
    cbx_retry_budget_free(b);
    cbx_clock_free(clk);
}

Test(retry_budget, recovers_as_the_window_slides)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_budget *b = make(clk, 0.2, 0, 10 * S); /* slices of 1 s */
    record(b, 100);
    cr_assert_eq(drain(b, 1000), 20);

    cbx_clock_advance(clk, 5000); /* t = 5 s: everything still in the window */
    cr_assert_eq(cbx_retry_budget_try_withdraw(b), CBX_EBUDGET_EXHAUSTED);
    record(b, 50); /* 150 calls: 30 allowed, 20 used */
    cr_assert_eq(drain(b, 1000), 10);

    cbx_clock_advance(clk, 4999); /* t = 9.999 s: the first slice is still counted */
    cr_assert_eq(stats_of(b).calls_in_window, 150);
    cr_assert_eq(cbx_retry_budget_try_withdraw(b), CBX_EBUDGET_EXHAUSTED);

    cbx_clock_advance(clk, 1); /* t = 10 s: the t = 0 slice leaves (50 calls, 10 retries) */
    cbx_retry_budget_stats st = stats_of(b);
    cr_assert_eq(st.calls_in_window, 50);
    cr_assert_eq(st.retries_in_window, 10);
    cr_assert_eq(st.allowed_in_window, 10);
    cr_assert_eq(cbx_retry_budget_try_withdraw(b), CBX_EBUDGET_EXHAUSTED);
    record(b, 5);
    cr_assert_eq(drain(b, 1000), 1);

    cbx_clock_advance(clk, 5000); /* t = 15 s: the t = 5 s slice leaves */
    st = stats_of(b);
    cr_assert_eq(st.calls_in_window, 5);
    cr_assert_eq(st.retries_in_window, 1);
    cr_assert_eq(cbx_retry_budget_try_withdraw(b), CBX_EBUDGET_EXHAUSTED);

    cbx_clock_advance(clk, 60000); /* long idle: the window is empty */
    st = stats_of(b);
    cr_assert_eq(st.calls_in_window, 0);
    cr_assert_eq(st.retries_in_window, 0);
    record(b, 10);
    cr_assert_eq(drain(b, 1000), 2);
    /* Totals survive the window. */
    st = stats_of(b);
    cr_assert_eq(st.calls_total, 165);
    cr_assert_eq(st.retries_total, 33);
    cbx_retry_budget_free(b);
    cbx_clock_free(clk);
}

Test(retry_budget, calls_expire_within_the_last_slice_of_the_window)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_budget *b = make(clk, 1.0, 0, 1 * S); /* slices of 100 ms */
    cbx_clock_advance(clk, 950);                    /* late in the slice [900, 1000) ms */
    record(b, 3);
    cbx_clock_advance(clk, 949); /* t = 1.899 s: 0.949 s after recording, still counted */
    cr_assert_eq(stats_of(b).calls_in_window, 3);
    cbx_clock_advance(clk, 1); /* t = 1.9 s: gone, 0.95 s after (between 0.9 and 1 window) */
    cr_assert_eq(stats_of(b).calls_in_window, 0);
    cbx_retry_budget_free(b);
    cbx_clock_free(clk);
}

Test(retry_budget, null_budget_grants_and_ignores)
{
    cbx_retry_budget_record_call(NULL);
    cr_assert_eq(cbx_retry_budget_try_withdraw(NULL), 0);
}

static void expect_invalid(const cbx_retry_budget_opts *o, const char *where, const char *msg)
{
    cbx_err e;
    cbx_err_clear(&e);
    cbx_retry_budget *b = (cbx_retry_budget *)&e; /* must be reset to NULL */
    cr_assert_eq(cbx_retry_budget_new(&b, o, &e), CBX_EINVAL_CONFIG, "accepted; want %s", msg);
    cr_assert_null(b);
    cr_assert_eq(e.code, CBX_EINVAL_CONFIG);
    cr_assert_str_eq(e.where, where);
    cr_assert_str_eq(e.msg, msg);
    cr_assert_eq(cbx_retry_budget_opts_validate(o, NULL), CBX_EINVAL_CONFIG);
}

Test(retry_budget, every_bad_field_is_named)
{
    cbx_retry_budget_opts o;
    expect_invalid(NULL, "retry.budget", "retry budget options are missing (NULL)");

    const double bad[] = {-0.1, NAN, INFINITY};
    for (unsigned i = 0; i < 3; i++) {
        cbx_retry_budget_opts_default(&o);
        o.ratio = bad[i];
        expect_invalid(&o, "retry.budget.ratio", "ratio must be a finite number >= 0");
        cbx_retry_budget_opts_default(&o);
        o.min_per_second = bad[i];
        expect_invalid(&o, "retry.budget.min_per_second",
                       "min_per_second must be a finite number >= 0");
    }

    cbx_retry_budget_opts_default(&o);
    o.ratio = 0;
    o.min_per_second = 0;
    expect_invalid(&o, "retry.budget",
                   "ratio and min_per_second must not both be 0 (every retry would be refused)");

    cbx_retry_budget_opts_default(&o);
    o.window_ns = 0;
    expect_invalid(&o, "retry.budget.window", "window_ns must be >= 1ms");
    o.window_ns = CBX_NS_PER_MS - 1;
    expect_invalid(&o, "retry.budget.window", "window_ns must be >= 1ms");
    o.window_ns = CBX_NS_PER_MS;
    cr_assert_eq(cbx_retry_budget_opts_validate(&o, NULL), 0);
}

Test(retry_budget, huge_allowance_saturates)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_budget *b = make(clk, 0, 1e300, 10 * S);
    cr_assert_eq(stats_of(b).allowed_in_window, UINT64_MAX);
    cr_assert_eq(drain(b, 1000), 1000);
    cbx_retry_budget_free(b);
    cbx_clock_free(clk);
}
