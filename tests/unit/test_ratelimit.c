/* The token-bucket rate limiter, on virtual time. */
#include "cbx/ratelimit.h"
#include "cbx/units.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

static cbx_ratelimit *limiter(double per_second, uint32_t burst, cbx_clock *clk)
{
    cbx_ratelimit *rl = NULL;
    cbx_err e;
    int r = cbx_ratelimit_new(
        &rl, &(cbx_ratelimit_opts){.per_second = per_second, .burst = burst, .clock = clk}, &e);
    cr_assert_eq(r, 0, "cbx_ratelimit_new: %s", e.msg);
    return rl;
}

static uint32_t available(cbx_ratelimit *rl)
{
    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    return st.available;
}

Test(ratelimit, starts_full_and_refills_one_token_per_interval)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_ratelimit *rl = limiter(10.0, 1, clk); /* one token every 100 ms */
    uint64_t wait = 12345;

    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &wait), 0);
    cr_assert_eq(wait, 0);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &wait), CBX_ERATE_LIMITED);
    cr_assert_eq(wait, 100 * CBX_NS_PER_MS);

    cbx_clock_advance(clk, 99);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &wait), CBX_ERATE_LIMITED);
    cr_assert_eq(wait, 1 * CBX_NS_PER_MS);
    cbx_clock_advance_ns(clk, CBX_NS_PER_MS - 1);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &wait), CBX_ERATE_LIMITED);
    cr_assert_eq(wait, 1);
    cbx_clock_advance_ns(clk, 1);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), 0);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), CBX_ERATE_LIMITED);

    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

Test(ratelimit, burst_caps_accumulation)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_ratelimit *rl = limiter(10.0, 5, clk);

    for (int i = 0; i < 5; i++)
        cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), 0, "token %d", i);
    cr_assert_eq(available(rl), 0);

    cbx_clock_advance(clk, 250); /* two and a half tokens */
    cr_assert_eq(available(rl), 2);

    cbx_clock_advance(clk, 60 * 1000); /* a minute idle: far more than the bucket holds */
    cr_assert_eq(available(rl), 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), 0, "token %d", i);
    uint64_t wait = 0;
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &wait), CBX_ERATE_LIMITED);
    cr_assert_eq(wait, 100 * CBX_NS_PER_MS);

    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.admitted, 10);
    cr_assert_eq(st.rejected, 1);
    cr_assert_eq(st.tokens_admitted, 10);
    cr_assert_eq(st.burst, 5);
    cr_assert_eq(st.interval_ns, 100 * CBX_NS_PER_MS);
    cr_assert_float_eq(st.per_second, 10.0, 1e-12);

    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

Test(ratelimit, per_minute_rates)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    double per_second = 0;
    cr_assert_eq(cbx_rate_parse("600/min", &per_second), 0);
    cbx_ratelimit *rl = limiter(per_second, 1, clk);
    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.interval_ns, 100 * CBX_NS_PER_MS);
    cbx_ratelimit_free(rl);

    /* One a minute: exactly 60 s per token, not 60 s plus rounding noise. */
    rl = limiter(CBX_RATE_PER_MINUTE(1), 1, clk);
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.interval_ns, 60 * CBX_NS_PER_S);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), 0);
    uint64_t wait = 0;
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &wait), CBX_ERATE_LIMITED);
    cr_assert_eq(wait, 60 * CBX_NS_PER_S);
    cbx_clock_advance(clk, 59 * 1000);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 1), 1 * CBX_NS_PER_S);
    cbx_clock_advance(clk, 1000);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), 0);
    cbx_ratelimit_free(rl);

    /* 7 per minute with room for 7: the whole minute's worth at once, then one per 60/7 s. */
    rl = limiter(CBX_RATE_PER_MINUTE(7), 7, clk);
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.interval_ns, 8571428572ULL); /* 60e9 / 7 = 8571428571.43, rounded up */
    for (int i = 0; i < 7; i++)
        cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), 0);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 7), 7 * 8571428572ULL);
    cbx_ratelimit_free(rl);

    cr_assert_eq(cbx_rate_parse("3/h", &per_second), 0);
    rl = limiter(per_second, 1, clk);
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.interval_ns, 1200 * CBX_NS_PER_S);
    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

Test(ratelimit, interval_rounds_up_so_the_rate_is_never_exceeded)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_ratelimit *rl = limiter(3.0, 3, clk);
    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.interval_ns, 333333334ULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), 0);
    cbx_clock_advance(clk, 1000); /* 1 s = 2.99999999 intervals: two tokens, not three */
    cr_assert_eq(available(rl), 2);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 3), 2);
    cbx_ratelimit_free(rl);

    /* A whole interval that floating point overshoots (1e9 / (0.009 / 3600) computes as
     * 400000000000000.06) stays whole: rounding noise is not a fraction to round up. */
    rl = limiter(CBX_RATE_PER_HOUR(0.009), 1, clk);
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.interval_ns, 400000ULL * CBX_NS_PER_S);
    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

Test(ratelimit, wait_ns_is_exact_and_takes_nothing)
{
    cbx_clock *clk = cbx_clock_virtual(5000);
    cbx_ratelimit *rl = limiter(2.0, 4, clk); /* 500 ms per token */

    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 4), 0);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 0), 0);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 4, NULL), 0);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 1), 500 * CBX_NS_PER_MS);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 3), 1500 * CBX_NS_PER_MS);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 4), 2000 * CBX_NS_PER_MS);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 5), CBX_RATELIMIT_NEVER);

    cbx_clock_advance(clk, 250);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 1), 250 * CBX_NS_PER_MS);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 1), 250 * CBX_NS_PER_MS); /* asking took nothing */

    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.admitted, 1);
    cr_assert_eq(st.rejected, 0);
    cr_assert_eq(st.tokens_admitted, 4);

    /* After waiting exactly the time it said, the tokens are there. */
    cbx_clock_advance_ns(clk, cbx_ratelimit_wait_ns(rl, 2));
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 2, NULL), 0);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), CBX_ERATE_LIMITED);

    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

Test(ratelimit, rejection_takes_nothing_and_tells_the_wait_for_n)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_ratelimit *rl = limiter(10.0, 4, clk);

    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 3, NULL), 0);
    cr_assert_eq(available(rl), 1);
    uint64_t wait = 0;
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 3, &wait), CBX_ERATE_LIMITED);
    cr_assert_eq(wait, 200 * CBX_NS_PER_MS); /* two more tokens */
    cr_assert_eq(available(rl), 1);          /* the one that was there is still there */
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &wait), 0);
    cr_assert_eq(available(rl), 0);

    /* More than the bucket holds can never succeed. */
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 5, &wait), CBX_EINVAL_CONFIG);
    cr_assert_eq(wait, CBX_RATELIMIT_NEVER);
    /* Nothing asked, nothing refused. */
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 0, &wait), 0);
    cr_assert_eq(wait, 0);

    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.admitted, 2);
    cr_assert_eq(st.rejected, 1);
    cr_assert_eq(st.tokens_admitted, 4);

    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

Test(ratelimit, reserve_takes_future_tokens_within_the_wait_limit)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_ratelimit *rl = limiter(10.0, 1, clk);
    uint64_t delay = 1;

    cr_assert_eq(cbx_ratelimit_reserve(rl, 1, 0, &delay), 0);
    cr_assert_eq(delay, 0);
    cr_assert_eq(cbx_ratelimit_reserve(rl, 1, 100 * CBX_NS_PER_MS, &delay), 0);
    cr_assert_eq(delay, 100 * CBX_NS_PER_MS);
    /* The next one queues behind that reservation. */
    cr_assert_eq(cbx_ratelimit_reserve(rl, 1, 150 * CBX_NS_PER_MS, &delay), CBX_ERATE_LIMITED);
    cr_assert_eq(delay, 200 * CBX_NS_PER_MS);
    cr_assert_eq(cbx_ratelimit_wait_ns(rl, 1), 200 * CBX_NS_PER_MS);
    cr_assert_eq(available(rl), 0);

    cbx_clock_advance(clk, 100); /* the reserved token's time: the next is 100 ms away */
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &delay), CBX_ERATE_LIMITED);
    cr_assert_eq(delay, 100 * CBX_NS_PER_MS);
    cbx_clock_advance(clk, 100);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, NULL), 0);

    cr_assert_eq(cbx_ratelimit_reserve(rl, 2, CBX_RATELIMIT_NEVER, &delay), CBX_EINVAL_CONFIG);
    cr_assert_eq(delay, CBX_RATELIMIT_NEVER);

    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    cr_assert_eq(st.admitted, 3);
    cr_assert_eq(st.rejected, 2);

    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

Test(ratelimit, unlimited_reservations_saturate_instead_of_wrapping)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    /* One token a century: each reservation pushes the arrival time ~3.2e18 ns ahead. */
    cbx_ratelimit *rl = limiter(1.0 / (100.0 * 365 * 24 * 3600), 1, clk);
    int admitted = 0;
    uint64_t delay = 0, last = 0;
    for (int i = 0; i < 10; i++) {
        int r = cbx_ratelimit_reserve(rl, 1, CBX_RATELIMIT_NEVER - 1, &delay);
        if (r == 0) {
            cr_assert_geq(delay, last, "delays must only grow");
            last = delay;
            admitted++;
        } else {
            cr_assert_eq(r, CBX_ERATE_LIMITED);
            cr_assert_eq(delay, CBX_RATELIMIT_NEVER);
        }
    }
    cr_assert_eq(admitted, 5, "admitted %d", admitted); /* delays 0..4 centuries, then past 2^64 */
    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

Test(ratelimit, monotonic_clock_by_default)
{
    cbx_ratelimit *rl = NULL;
    cr_assert_eq(
        cbx_ratelimit_new(&rl, &(cbx_ratelimit_opts){.per_second = 1.0 / 3600, .burst = 1}, NULL),
        0);
    uint64_t wait = 0;
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &wait), 0);
    cr_assert_eq(cbx_ratelimit_try_acquire(rl, 1, &wait), CBX_ERATE_LIMITED);
    cr_assert_gt(wait, 3500 * CBX_NS_PER_S);
    cr_assert_leq(wait, 3600 * CBX_NS_PER_S);
    cbx_ratelimit_free(rl);
}

static void expect_config_error(double per_second, uint32_t burst, const char *field)
{
    cbx_ratelimit *rl = (cbx_ratelimit *)&rl; /* must be reset to NULL */
    cbx_err e;
    cbx_err_clear(&e);
    int r =
        cbx_ratelimit_new(&rl, &(cbx_ratelimit_opts){.per_second = per_second, .burst = burst}, &e);
    cr_assert_eq(r, CBX_EINVAL_CONFIG, "rate %g burst %u gave %d", per_second, burst, r);
    cr_assert_null(rl);
    cr_assert_eq(e.code, CBX_EINVAL_CONFIG);
    cr_assert_str_eq(e.where, field, "rate %g burst %u: where is '%s'", per_second, burst, e.where);
    cr_assert_neq(e.msg[0], '\0');
}

Test(ratelimit, config_errors_name_the_field)
{
    expect_config_error(0.0, 1, "per_second");
    expect_config_error(-5.0, 1, "per_second");
    expect_config_error(NAN, 1, "per_second");
    expect_config_error(INFINITY, 1, "per_second");
    expect_config_error(2e9, 1, "per_second");
    expect_config_error(10.0, 0, "burst");
    expect_config_error(1e-9, 1000, "burst"); /* ~32 years a token, 1000 of them */

    cbx_err e;
    cbx_ratelimit *rl = NULL;
    cr_assert_eq(cbx_ratelimit_new(&rl, NULL, &e), CBX_EINVAL_CONFIG);
    cr_assert_eq(cbx_ratelimit_new(NULL, &(cbx_ratelimit_opts){.per_second = 1, .burst = 1}, &e),
                 -EINVAL);
    /* The extremes that are allowed. */
    cr_assert_eq(cbx_ratelimit_new(&rl, &(cbx_ratelimit_opts){.per_second = 1e9, .burst = 1}, &e),
                 0);
    cbx_ratelimit_free(rl);
    cbx_ratelimit_free(NULL);
}

Test(ratelimit, default_burst_is_one_second_of_tokens)
{
    cr_assert_eq(cbx_ratelimit_default_burst(50.0), 50);
    cr_assert_eq(cbx_ratelimit_default_burst(CBX_RATE_PER_MINUTE(600)), 10);
    cr_assert_eq(cbx_ratelimit_default_burst(2.5), 2);
    cr_assert_eq(cbx_ratelimit_default_burst(CBX_RATE_PER_MINUTE(3)), 1);
    cr_assert_eq(cbx_ratelimit_default_burst(NAN), 1);
    cr_assert_eq(cbx_ratelimit_default_burst(-1.0), 1);
    cr_assert_eq(cbx_ratelimit_default_burst(1e12), UINT32_MAX);
}

/* Two limiters on one shared arrival-time word take from one bucket, each by its own rate. */
Test(ratelimit, limiters_on_a_shared_word_share_one_bucket)
{
    _Alignas(8) uint64_t word = 0;
    cbx_ratelimit *a = NULL, *b = NULL;
    cbx_ratelimit_opts o = {.per_second = 1.0 / 3600, .burst = 3, .shared_tat = &word};
    cr_assert_eq(cbx_ratelimit_new(&a, &o, NULL), 0);
    cr_assert_eq(cbx_ratelimit_new(&b, &o, NULL), 0);
    int ok = 0;
    for (int i = 0; i < 10; i++)
        ok += cbx_ratelimit_try_acquire(i % 2 ? a : b, 1, NULL) == 0;
    cr_assert_eq(ok, 3, "one bucket of 3 between the two");
    cr_assert_neq(word, 0, "the state is in the shared word");
    cbx_ratelimit_free(a);
    cbx_ratelimit_free(b);

    /* a virtual clock means nothing to other processes; a misaligned word cannot be atomic */
    cbx_clock *clk = cbx_clock_virtual(0);
    o.clock = clk;
    cbx_err e;
    cr_assert_eq(cbx_ratelimit_new(&a, &o, &e), CBX_EINVAL_CONFIG);
    cr_assert_str_eq(e.where, "shared_tat");
    o.clock = NULL;
    o.shared_tat = (char *)&word + 4;
    cr_assert_eq(cbx_ratelimit_new(&a, &o, NULL), CBX_EINVAL_CONFIG);
    cbx_clock_free(clk);
}

/* A bucket kept elsewhere: a plain word here, on the virtual clock, driven through
 * cbx_ratelimit_gcra as the cluster store drives its KV value; "down" makes it unreachable. */
typedef struct far_bucket {
    uint64_t tat;
    cbx_clock *clk;
    int down, takes;
} far_bucket;

static int far_take(void *ud, uint64_t interval_ns, uint64_t window_ns, uint32_t n,
                    uint64_t max_wait_ns, uint64_t *delay_ns)
{
    far_bucket *fb = ud;
    fb->takes++;
    if (fb->down)
        return -EAGAIN;
    uint64_t next;
    int r = cbx_ratelimit_gcra(fb->tat, cbx_clock_now_ns(fb->clk), interval_ns, window_ns, n,
                               max_wait_ns, &next, delay_ns);
    fb->tat = next;
    return r;
}

Test(ratelimit, a_remote_bucket_is_shared_and_its_absence_falls_back_to_the_own_word)
{
    cbx_clock *clk = cbx_clock_virtual(1000); /* ms: now = 1 s */
    far_bucket fb = {.clk = clk};
    cbx_ratelimit_remote remote = {.take = far_take, .ud = &fb};
    cbx_ratelimit *a = NULL, *b = NULL;
    cbx_ratelimit_opts o = {.per_second = 10.0, .burst = 2, .clock = clk, .remote = &remote};
    cr_assert_eq(cbx_ratelimit_new(&a, &o, NULL), 0);
    cr_assert_eq(cbx_ratelimit_new(&b, &o, NULL), 0);
    /* two limiters, one bucket of 2 */
    cr_assert_eq(cbx_ratelimit_try_acquire(a, 1, NULL), 0);
    cr_assert_eq(cbx_ratelimit_try_acquire(b, 1, NULL), 0);
    uint64_t wait = 0;
    cr_assert_eq(cbx_ratelimit_try_acquire(a, 1, &wait), CBX_ERATE_LIMITED);
    cr_assert_eq(wait, 100 * CBX_NS_PER_MS);
    cr_assert_eq(cbx_ratelimit_try_acquire(b, 1, NULL), CBX_ERATE_LIMITED);
    /* a reservation in the shared bucket */
    uint64_t delay = 0;
    cr_assert_eq(cbx_ratelimit_reserve(b, 1, CBX_NS_PER_S, &delay), 0);
    cr_assert_eq(delay, 100 * CBX_NS_PER_MS);
    cr_assert_eq(fb.tat, CBX_NS_PER_S + 300 * CBX_NS_PER_MS);
    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(a, &st);
    cr_assert_eq(st.admitted, 1);
    cr_assert_eq(st.rejected, 1);
    /* the bucket unreachable: each limiter decides on its own full word */
    fb.down = 1;
    cr_assert_eq(cbx_ratelimit_try_acquire(a, 1, NULL), 0);
    cr_assert_eq(cbx_ratelimit_try_acquire(a, 1, NULL), 0);
    cr_assert_eq(cbx_ratelimit_try_acquire(a, 1, NULL), CBX_ERATE_LIMITED);
    cr_assert_eq(fb.takes, 8);
    cbx_ratelimit_free(a);
    cbx_ratelimit_free(b);
    cbx_clock_free(clk);
}

Test(ratelimit, gcra_is_the_limiters_arithmetic)
{
    uint64_t next = 0, delay = 0;
    /* full bucket of 3 at 1 per 100: take 3, then the fourth waits 100 */
    cr_assert_eq(cbx_ratelimit_gcra(0, 1000, 100, 300, 3, 0, &next, &delay), 0);
    cr_assert_eq(next, 1300);
    cr_assert_eq(delay, 0);
    cr_assert_eq(cbx_ratelimit_gcra(next, 1000, 100, 300, 1, 0, &next, &delay), CBX_ERATE_LIMITED);
    cr_assert_eq(next, 1300);
    cr_assert_eq(delay, 100);
    cr_assert_eq(cbx_ratelimit_gcra(1300, 1000, 100, 300, 1, 100, &next, &delay), 0);
    cr_assert_eq(next, 1400);
    cr_assert_eq(delay, 100);
    cr_assert_eq(cbx_ratelimit_gcra(0, 1000, 100, 300, 4, 1000000, &next, &delay),
                 CBX_ERATE_LIMITED);
    cr_assert_eq(delay, CBX_RATELIMIT_NEVER);
}
