/* The retry policy: backoff sequences, jitter bounds, limits, outcome mask, Retry-After,
 * validation, and the blocking loop on virtual time. */
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/retry.h"
#include "resilience/rng.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#define MS CBX_NS_PER_MS
#define S  CBX_NS_PER_S

/* Options with no jitter, a fixed seed, and enough attempts to read a long sequence. */
static cbx_retry_opts plain(cbx_backoff b, uint64_t initial_ns, uint64_t cap_ns, double mult)
{
    cbx_retry_opts o;
    cbx_retry_opts_default(&o);
    o.backoff = b;
    o.jitter = CBX_JITTER_NONE;
    o.initial_ns = initial_ns;
    o.max_delay_ns = cap_ns;
    o.multiplier = mult;
    o.max_attempts = 100;
    o.seed = 1;
    return o;
}

/* The delays granted after n consecutive errors at time 0; all must be granted. */
static void delays(const cbx_retry_opts *o, unsigned n, uint64_t *out)
{
    cbx_retry_state st;
    cbx_retry_begin(o, &st, 0);
    for (unsigned i = 0; i < n; i++) {
        int r = cbx_retry_next(o, &st, CBX_OUTCOME_ERROR, 0, 0, &out[i]);
        cr_assert_eq(r, 0, "retry %u refused: %s", i + 1, cbx_strerror(r));
    }
}

static void expect_ms(const cbx_retry_opts *o, const uint64_t *want_ms, unsigned n)
{
    uint64_t got[32];
    cr_assert_leq(n, 32);
    delays(o, n, got);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(got[i], want_ms[i] * MS, "retry %u: got %llu ns, want %llu ms", i + 1,
                     (unsigned long long)got[i], (unsigned long long)want_ms[i]);
}

Test(retry_opts, defaults_are_documented_values_and_valid)
{
    cbx_retry_opts o;
    memset(&o, 0xff, sizeof o);
    cbx_retry_opts_default(&o);
    cr_assert_eq(o.max_attempts, 3);
    cr_assert_eq(o.max_elapsed_ns, 0);
    cr_assert_eq(o.backoff, CBX_BACKOFF_EXPONENTIAL);
    cr_assert_eq(o.jitter, CBX_JITTER_FULL);
    cr_assert_eq(o.initial_ns, 100 * MS);
    cr_assert_eq(o.max_delay_ns, 30 * S);
    cr_assert_float_eq(o.multiplier, 2.0, 1e-12);
    cr_assert_eq(o.retry_on, CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR) |
                                 CBX_OUTCOME_BIT(CBX_OUTCOME_TIMEOUT) |
                                 CBX_OUTCOME_BIT(CBX_OUTCOME_RATE_LIMITED));
    cr_assert_null(o.budget);
    cr_assert_eq(o.seed, 0);
    cr_assert_eq(cbx_retry_opts_validate(&o, NULL), 0);
}

Test(retry_opts, backoff_and_jitter_names_round_trip)
{
    for (int i = 0; i < CBX_BACKOFF__COUNT; i++) {
        cbx_backoff b;
        cr_assert_eq(cbx_backoff_parse(cbx_backoff_name((cbx_backoff)i), &b), 0);
        cr_assert_eq((int)b, i);
    }
    for (int i = 0; i < CBX_JITTER__COUNT; i++) {
        cbx_jitter j;
        cr_assert_eq(cbx_jitter_parse(cbx_jitter_name((cbx_jitter)i), &j), 0);
        cr_assert_eq((int)j, i);
    }
    cbx_backoff b = CBX_BACKOFF_FIXED;
    cbx_jitter j = CBX_JITTER_NONE;
    cr_assert_str_eq(cbx_backoff_name(CBX_BACKOFF_DECORRELATED), "decorrelated");
    cr_assert_str_eq(cbx_jitter_name(CBX_JITTER_EQUAL), "equal");
    cr_assert_str_eq(cbx_backoff_name((cbx_backoff)42), "unknown");
    cr_assert_str_eq(cbx_jitter_name((cbx_jitter)42), "unknown");
    cr_assert_eq(cbx_backoff_parse("Exponential", &b), CBX_EPARSE);
    cr_assert_eq(cbx_backoff_parse(NULL, &b), CBX_EPARSE);
    cr_assert_eq(cbx_jitter_parse("half", &j), CBX_EPARSE);
    cr_assert_eq(b, CBX_BACKOFF_FIXED); /* untouched on failure */
    cr_assert_eq(j, CBX_JITTER_NONE);
}

/* ---- exact sequences without jitter ----------------------------------------------------- */

Test(retry_backoff, fixed_repeats_initial)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 250 * MS, 30 * S, 2.0);
    expect_ms(&o, (const uint64_t[]){250, 250, 250, 250, 250}, 5);
}

Test(retry_backoff, fixed_zero_delay_retries_at_once)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 0, 1 * S, 1.0);
    cr_assert_eq(cbx_retry_opts_validate(&o, NULL), 0);
    expect_ms(&o, (const uint64_t[]){0, 0, 0}, 3);
}

Test(retry_backoff, linear_grows_by_initial_and_stops_at_cap)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_LINEAR, 100 * MS, 350 * MS, 7.0);
    /* The multiplier plays no part in linear backoff. */
    expect_ms(&o, (const uint64_t[]){100, 200, 300, 350, 350}, 5);
}

Test(retry_backoff, exponential_doubles)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_EXPONENTIAL, 100 * MS, 30 * S, 2.0);
    expect_ms(&o, (const uint64_t[]){100, 200, 400, 800, 1600, 3200, 6400}, 7);
}

Test(retry_backoff, exponential_follows_the_multiplier)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_EXPONENTIAL, 100 * MS, 30 * S, 1.5);
    uint64_t got[4];
    delays(&o, 4, got);
    cr_assert_eq(got[0], 100 * MS);
    cr_assert_eq(got[1], 150 * MS);
    cr_assert_eq(got[2], 225 * MS);
    cr_assert_eq(got[3], 337500 * CBX_NS_PER_US);

    o.multiplier = 3.0;
    expect_ms(&o, (const uint64_t[]){100, 300, 900, 2700}, 4);
    o.multiplier = 1.0; /* degenerates to fixed */
    expect_ms(&o, (const uint64_t[]){100, 100, 100}, 3);
}

Test(retry_backoff, exponential_is_capped)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_EXPONENTIAL, 100 * MS, 1 * S, 2.0);
    expect_ms(&o, (const uint64_t[]){100, 200, 400, 800, 1000, 1000, 1000}, 7);
}

Test(retry_backoff, exponential_never_overflows)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_EXPONENTIAL, 1 * S, UINT64_MAX, 10.0);
    o.max_attempts = 200;
    uint64_t got[150];
    delays(&o, 150, got);
    for (unsigned i = 1; i < 150; i++)
        cr_assert_geq(got[i], got[i - 1], "retry %u went down", i + 1);
    cr_assert_eq(got[149], UINT64_MAX);
    /* A cap on the same opts applies as before. */
    o.max_delay_ns = 90 * S;
    delays(&o, 150, got);
    cr_assert_eq(got[1], 10 * S);
    cr_assert_eq(got[2], 90 * S);
    cr_assert_eq(got[149], 90 * S);
}

Test(retry_backoff, cap_holds_even_for_invalid_initial)
{
    /* Validation refuses max < initial; the state machine still caps if used anyway. */
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 5 * S, 2 * S, 1.0);
    cr_assert_eq(cbx_retry_opts_validate(&o, NULL), CBX_EINVAL_CONFIG);
    expect_ms(&o, (const uint64_t[]){2000, 2000}, 2);
}

/* ---- jitter --------------------------------------------------------------------------- */

#define SEEDS 2000

/* Over many seeds, each retry's delay lies in [lo_n, hi_n] and its spread covers the range
 * (minimum in the bottom quarter, maximum in the top quarter, mean near the middle). */
static void check_jitter_bounds(cbx_jitter j, cbx_backoff b)
{
    enum { N = 6 };
    cbx_retry_opts o = plain(b, 100 * MS, 2 * S, 2.0);
    o.jitter = j;
    uint64_t base[N];
    cbx_retry_opts none = o;
    none.jitter = CBX_JITTER_NONE;
    delays(&none, N, base);

    uint64_t lo_seen[N], hi_seen[N];
    double sum[N] = {0};
    for (unsigned i = 0; i < N; i++) {
        lo_seen[i] = UINT64_MAX;
        hi_seen[i] = 0;
    }
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        o.seed = seed;
        uint64_t d[N];
        delays(&o, N, d);
        for (unsigned i = 0; i < N; i++) {
            uint64_t lo = j == CBX_JITTER_FULL ? 0 : base[i] / 2;
            cr_assert(d[i] >= lo && d[i] <= base[i], "seed %llu retry %u: %llu not in [%llu, %llu]",
                      (unsigned long long)seed, i + 1, (unsigned long long)d[i],
                      (unsigned long long)lo, (unsigned long long)base[i]);
            lo_seen[i] = d[i] < lo_seen[i] ? d[i] : lo_seen[i];
            hi_seen[i] = d[i] > hi_seen[i] ? d[i] : hi_seen[i];
            sum[i] += (double)d[i];
        }
    }
    for (unsigned i = 0; i < N; i++) {
        double lo = j == CBX_JITTER_FULL ? 0 : (double)base[i] / 2, hi = (double)base[i];
        double span = hi - lo, mean = sum[i] / SEEDS;
        cr_assert_lt((double)lo_seen[i], lo + span / 4, "retry %u: never near the bottom", i + 1);
        cr_assert_gt((double)hi_seen[i], hi - span / 4, "retry %u: never near the top", i + 1);
        cr_assert(fabs(mean - (lo + hi) / 2) < span * 0.05, "retry %u: mean %.0f far from %.0f",
                  i + 1, mean, (lo + hi) / 2);
    }
}

Test(retry_jitter, full_is_uniform_between_zero_and_the_capped_delay)
{
    check_jitter_bounds(CBX_JITTER_FULL, CBX_BACKOFF_EXPONENTIAL);
    check_jitter_bounds(CBX_JITTER_FULL, CBX_BACKOFF_LINEAR);
    check_jitter_bounds(CBX_JITTER_FULL, CBX_BACKOFF_FIXED);
}

Test(retry_jitter, equal_keeps_half_the_delay)
{
    check_jitter_bounds(CBX_JITTER_EQUAL, CBX_BACKOFF_EXPONENTIAL);
    check_jitter_bounds(CBX_JITTER_EQUAL, CBX_BACKOFF_LINEAR);
    check_jitter_bounds(CBX_JITTER_EQUAL, CBX_BACKOFF_FIXED);
}

Test(retry_jitter, decorrelated_stays_within_initial_and_cap)
{
    enum { N = 12 };
    cbx_retry_opts o = plain(CBX_BACKOFF_DECORRELATED, 100 * MS, 3 * S, 2.0);
    o.jitter = CBX_JITTER_FULL; /* not applied on top of decorrelated */
    unsigned at_cap = 0, below_first_hi = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        o.seed = seed;
        uint64_t d[N];
        delays(&o, N, d);
        /* First draw: uniform[initial, 3 * initial]. */
        cr_assert(d[0] >= 100 * MS && d[0] <= 300 * MS, "seed %llu first %llu",
                  (unsigned long long)seed, (unsigned long long)d[0]);
        below_first_hi += d[0] < 150 * MS;
        for (unsigned i = 1; i < N; i++) {
            uint64_t hi = 3 * d[i - 1] < 3 * S ? 3 * d[i - 1] : 3 * S;
            cr_assert(d[i] >= 100 * MS && d[i] <= hi,
                      "seed %llu retry %u: %llu not in [100ms, %llu]", (unsigned long long)seed,
                      i + 1, (unsigned long long)d[i], (unsigned long long)hi);
        }
        at_cap += d[N - 1] == 3 * S;
    }
    /* Random, not constant: some first draws low, and the cap reached now and then. */
    cr_assert_gt(below_first_hi, SEEDS / 10);
    cr_assert_lt(below_first_hi, SEEDS / 2);
    cr_assert_gt(at_cap, 0);
}

Test(retry_jitter, decorrelated_with_initial_equal_to_cap_is_constant)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_DECORRELATED, 500 * MS, 500 * MS, 2.0);
    expect_ms(&o, (const uint64_t[]){500, 500, 500, 500}, 4);
}

Test(retry_jitter, equal_seeds_give_equal_sequences)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_EXPONENTIAL, 100 * MS, 30 * S, 2.0);
    o.jitter = CBX_JITTER_FULL;
    o.seed = 42;
    uint64_t a[6], b[6], c[6];
    delays(&o, 6, a);
    delays(&o, 6, b);
    o.seed = 43;
    delays(&o, 6, c);
    cr_assert_arr_eq(a, b, sizeof a);
    cr_assert(memcmp(a, c, sizeof a) != 0, "seeds 42 and 43 gave the same delays");
}

Test(retry_jitter, each_retry_draws_afresh)
{
    const cbx_jitter js[] = {CBX_JITTER_FULL, CBX_JITTER_EQUAL};
    for (unsigned j = 0; j < 2; j++) {
        cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 1 * S, 1 * S, 1.0);
        o.jitter = js[j];
        o.seed = 7;
        uint64_t d[8];
        delays(&o, 8, d);
        unsigned distinct = 0;
        for (unsigned i = 1; i < 8; i++)
            distinct += d[i] != d[0];
        cr_assert_geq(distinct, 6, "%s jitter repeats its draws", cbx_jitter_name(js[j]));
    }
}

Test(retry_jitter, seed_zero_differs_per_call)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_EXPONENTIAL, 1 * S, 30 * S, 2.0);
    o.jitter = CBX_JITTER_FULL;
    o.seed = 0;
    uint64_t a[4], b[4];
    delays(&o, 4, a);
    delays(&o, 4, b);
    cr_assert(memcmp(a, b, sizeof a) != 0, "two calls with seed 0 drew the same jitter");
}

/* ---- limits ----------------------------------------------------------------------------- */

Test(retry_limits, max_attempts_counts_the_first)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 10 * MS, 1 * S, 1.0);
    cbx_retry_state st;
    uint64_t d = 777;

    o.max_attempts = 1;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(st.attempt, 1);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(d, 777, "delay written on refusal");

    o.max_attempts = 3;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), 0);
    cr_assert_eq(st.attempt, 2);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_TIMEOUT, 0, 0, &d), 0);
    cr_assert_eq(st.attempt, 3);
    cbx_retry_state before = st;
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(memcmp(&before, &st, sizeof st), 0, "state changed on refusal");
}

Test(retry_limits, max_elapsed_refuses_a_delay_ending_past_the_deadline)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 1 * S, 10 * S, 1.0);
    o.max_elapsed_ns = 2500 * MS;
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 7 * S); /* the clock's origin is arbitrary */
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 7 * S + 200 * MS, &d), 0);
    cr_assert_eq(d, 1 * S); /* ends at +1.2 s */
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 7 * S + 1500 * MS, &d), 0);
    cr_assert_eq(d, 1 * S); /* ends at +2.5 s: exactly the limit is allowed */
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 7 * S + 1501 * MS, &d),
                 CBX_ERETRY_EXHAUSTED); /* would end at +2.501 s */
    cr_assert_eq(st.attempt, 3);
}

Test(retry_limits, max_elapsed_zero_is_unlimited)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 1 * S, 10 * S, 1.0);
    o.max_elapsed_ns = 0;
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 1000000 * S, &d), 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, UINT64_MAX - 1, &d), 0);
}

Test(retry_limits, max_elapsed_applies_to_retry_after)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 10 * MS, 60 * S, 1.0);
    o.max_elapsed_ns = 5 * S;
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_RATE_LIMITED, 6 * S, 0, &d),
                 CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_RATE_LIMITED, 4 * S, 0, &d), 0);
    cr_assert_eq(d, 4 * S);
}

/* ---- which outcomes are retried ---------------------------------------------------------- */

Test(retry_on, default_mask_retries_error_timeout_and_rate_limited_only)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 10 * MS, 1 * S, 1.0);
    cbx_retry_state st;
    uint64_t d;
    const cbx_outcome yes[] = {CBX_OUTCOME_ERROR, CBX_OUTCOME_TIMEOUT, CBX_OUTCOME_RATE_LIMITED};
    const cbx_outcome no[] = {CBX_OUTCOME_SUCCESS, CBX_OUTCOME_QUALITY, CBX_OUTCOME_CUSTOM,
                              CBX_OUTCOME_IGNORED, (cbx_outcome)99};
    for (unsigned i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        cbx_retry_begin(&o, &st, 0);
        cr_assert_eq(cbx_retry_next(&o, &st, yes[i], 0, 0, &d), 0, "%s not retried",
                     cbx_outcome_name(yes[i]));
    }
    for (unsigned i = 0; i < sizeof no / sizeof no[0]; i++) {
        cbx_retry_begin(&o, &st, 0);
        cr_assert_eq(cbx_retry_next(&o, &st, no[i], 0, 0, &d), CBX_EFAILED, "%s retried",
                     cbx_outcome_name(no[i]));
        cr_assert_eq(st.attempt, 1);
    }
}

Test(retry_on, custom_mask_stops_at_once_on_other_kinds)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 10 * MS, 1 * S, 1.0);
    o.retry_on = CBX_OUTCOME_BIT(CBX_OUTCOME_QUALITY);
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_QUALITY, 0, 0, &d), 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), CBX_EFAILED);
    cr_assert_eq(st.attempt, 2);
}

Test(retry_on, success_and_ignored_are_never_retried_even_if_masked)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 10 * MS, 1 * S, 1.0);
    o.retry_on = 0xffffffffu; /* invalid, but must not make success retryable */
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_SUCCESS, 0, 0, &d), CBX_EFAILED);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_IGNORED, 0, 0, &d), CBX_EFAILED);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_CUSTOM, 0, 0, &d), 0);
}

Test(retry_on, non_retryable_wins_over_exhausted)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 10 * MS, 1 * S, 1.0);
    o.max_attempts = 1;
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_QUALITY, 0, 0, &d), CBX_EFAILED);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), CBX_ERETRY_EXHAUSTED);
}

/* ---- Retry-After ------------------------------------------------------------------------ */

Test(retry_after, overrides_the_computed_delay)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_EXPONENTIAL, 100 * MS, 30 * S, 2.0);
    o.jitter = CBX_JITTER_FULL;
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_RATE_LIMITED, 750 * MS, 0, &d), 0);
    cr_assert_eq(d, 750 * MS);
    cr_assert_eq(st.prev_delay_ns, 750 * MS);
    /* Smaller than the computed delay is honoured too. */
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 1 * MS, 0, &d), 0);
    cr_assert_eq(d, 1 * MS);
    /* 0 means none: back to the (jittered) backoff for retry 3, at most 400 ms. */
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), 0);
    cr_assert_leq(d, 400 * MS);
}

Test(retry_after, is_limited_to_the_cap)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 100 * MS, 5 * S, 1.0);
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_RATE_LIMITED, 120 * S, 0, &d), 0);
    cr_assert_eq(d, 5 * S);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_RATE_LIMITED, UINT64_MAX, 0, &d), 0);
    cr_assert_eq(d, 5 * S);
}

Test(retry_after, does_not_make_a_kind_retryable_or_add_attempts)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 100 * MS, 5 * S, 1.0);
    o.max_attempts = 2;
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_QUALITY, 1 * S, 0, &d), CBX_EFAILED);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 1 * S, 0, &d), 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 1 * S, 0, &d), CBX_ERETRY_EXHAUSTED);
}

Test(retry_after, feeds_the_next_decorrelated_draw)
{
    cbx_retry_opts o = plain(CBX_BACKOFF_DECORRELATED, 100 * MS, 30 * S, 2.0);
    for (uint64_t seed = 1; seed <= 200; seed++) {
        o.seed = seed;
        cbx_retry_state st;
        uint64_t d;
        cbx_retry_begin(&o, &st, 0);
        cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_RATE_LIMITED, 10 * S, 0, &d), 0);
        cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), 0);
        cr_assert(d >= 100 * MS && d <= 30 * S);
        /* A tiny Retry-After: the next draw still starts at initial. */
        cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 1, 0, &d), 0);
        cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), 0);
        cr_assert_eq(d, 100 * MS, "seed %llu: %llu", (unsigned long long)seed,
                     (unsigned long long)d);
    }
}

/* ---- validation ------------------------------------------------------------------------- */

static void expect_invalid(const cbx_retry_opts *o, const char *where, const char *msg)
{
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_retry_opts_validate(o, &e), CBX_EINVAL_CONFIG, "accepted; want %s", msg);
    cr_assert_eq(e.code, CBX_EINVAL_CONFIG);
    cr_assert_str_eq(e.where, where);
    cr_assert_str_eq(e.msg, msg);
    cr_assert_eq(cbx_retry_opts_validate(o, NULL), CBX_EINVAL_CONFIG);
}

Test(retry_opts, every_bad_field_is_named)
{
    cbx_retry_opts o;
    expect_invalid(NULL, "retry", "retry options are missing (NULL)");

    cbx_retry_opts_default(&o);
    o.max_attempts = 0;
    expect_invalid(&o, "retry.attempts", "max_attempts must be >= 1");

    cbx_retry_opts_default(&o);
    o.backoff = CBX_BACKOFF__COUNT;
    expect_invalid(&o, "retry.backoff",
                   "backoff must be one of fixed, linear, exponential, decorrelated");

    cbx_retry_opts_default(&o);
    o.jitter = (cbx_jitter)7;
    expect_invalid(&o, "retry.jitter", "jitter must be one of none, full, equal");

    const cbx_backoff growing[] = {CBX_BACKOFF_LINEAR, CBX_BACKOFF_EXPONENTIAL,
                                   CBX_BACKOFF_DECORRELATED};
    for (unsigned i = 0; i < 3; i++) {
        cbx_retry_opts_default(&o);
        o.backoff = growing[i];
        o.initial_ns = 0;
        expect_invalid(&o, "retry.initial",
                       "initial_ns must be > 0 (only fixed backoff may retry at once)");
    }

    cbx_retry_opts_default(&o);
    o.backoff = CBX_BACKOFF_FIXED;
    o.initial_ns = 0;
    o.max_delay_ns = 0;
    expect_invalid(&o, "retry.max", "max_delay_ns must be > 0");

    cbx_retry_opts_default(&o);
    o.initial_ns = 2 * S;
    o.max_delay_ns = 1 * S;
    expect_invalid(&o, "retry.max", "max_delay_ns must be >= initial_ns");

    const double bad_mult[] = {0.5, 0.0, -2.0, NAN, INFINITY};
    for (unsigned i = 0; i < 5; i++) {
        cbx_retry_opts_default(&o);
        o.multiplier = bad_mult[i];
        expect_invalid(&o, "retry.multiplier", "multiplier must be >= 1");
    }

    cbx_retry_opts_default(&o);
    o.retry_on |= CBX_OUTCOME_BIT(CBX_OUTCOME_SUCCESS);
    expect_invalid(&o, "retry.on", "retry_on must not include success or ignored");
    o.retry_on = CBX_OUTCOME_BIT(CBX_OUTCOME_IGNORED) | CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR);
    expect_invalid(&o, "retry.on", "retry_on must not include success or ignored");
    o.retry_on = CBX_OUTCOME_BIT(CBX_OUTCOME__COUNT);
    expect_invalid(&o, "retry.on", "retry_on has bits that are not outcome kinds");
    o.retry_on = 0;
    expect_invalid(&o, "retry.on", "retry_on must name at least one failure kind");
}

Test(retry_opts, edge_values_that_are_valid)
{
    cbx_retry_opts o;
    cbx_retry_opts_default(&o);
    o.max_attempts = 1;
    o.multiplier = 1.0;
    o.initial_ns = o.max_delay_ns = 1;
    o.retry_on = CBX_OUTCOME_FAILURES;
    o.max_elapsed_ns = UINT64_MAX;
    cr_assert_eq(cbx_retry_opts_validate(&o, NULL), 0);
    o.backoff = CBX_BACKOFF_DECORRELATED;
    o.jitter = CBX_JITTER_EQUAL;
    cr_assert_eq(cbx_retry_opts_validate(&o, NULL), 0);
}

/* ---- with a budget ---------------------------------------------------------------------- */

Test(retry_budget_use, begin_deposits_and_next_withdraws)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_budget *b = NULL;
    cr_assert_eq(cbx_retry_budget_new(
                     &b,
                     &(cbx_retry_budget_opts){
                         .ratio = 0.5, .min_per_second = 0, .window_ns = 10 * S, .clock = clk},
                     NULL),
                 0);
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 10 * MS, 1 * S, 1.0);
    o.budget = b;
    cbx_retry_state s1, s2;
    uint64_t d;
    cbx_retry_budget_stats stats;

    cbx_retry_begin(&o, &s1, 0);
    cbx_retry_begin(&o, &s2, 0);
    cbx_retry_budget_get_stats(b, &stats);
    cr_assert_eq(stats.calls_in_window, 2);
    cr_assert_eq(stats.allowed_in_window, 1);

    cr_assert_eq(cbx_retry_next(&o, &s1, CBX_OUTCOME_ERROR, 0, 0, &d), 0);
    cbx_retry_state before = s2;
    cr_assert_eq(cbx_retry_next(&o, &s2, CBX_OUTCOME_ERROR, 0, 0, &d), CBX_EBUDGET_EXHAUSTED);
    cr_assert_eq(memcmp(&before, &s2, sizeof s2), 0);
    cbx_retry_budget_get_stats(b, &stats);
    cr_assert_eq(stats.calls_in_window, 2, "a retry must not deposit");
    cr_assert_eq(stats.retries_in_window, 1);
    cr_assert_eq(stats.refused_total, 1);

    cbx_retry_budget_free(b);
    cbx_clock_free(clk);
}

Test(retry_budget_use, refusals_for_other_reasons_spend_nothing)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_budget *b = NULL;
    cr_assert_eq(cbx_retry_budget_new(
                     &b,
                     &(cbx_retry_budget_opts){
                         .ratio = 1.0, .min_per_second = 0, .window_ns = 10 * S, .clock = clk},
                     NULL),
                 0);
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 1 * S, 1 * S, 1.0);
    o.budget = b;
    o.max_attempts = 2;
    o.max_elapsed_ns = 500 * MS;
    cbx_retry_state st;
    uint64_t d;
    cbx_retry_begin(&o, &st, 0);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_QUALITY, 0, 0, &d), CBX_EFAILED);
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), CBX_ERETRY_EXHAUSTED);
    cbx_retry_budget_stats stats;
    cbx_retry_budget_get_stats(b, &stats);
    cr_assert_eq(stats.retries_total, 0);
    cr_assert_eq(stats.refused_total, 0);
    o.max_elapsed_ns = 0;
    cr_assert_eq(cbx_retry_next(&o, &st, CBX_OUTCOME_ERROR, 0, 0, &d), 0);
    cbx_retry_budget_get_stats(b, &stats);
    cr_assert_eq(stats.retries_total, 1);
    cbx_retry_budget_free(b);
    cbx_clock_free(clk);
}

/* ---- the blocking loop ------------------------------------------------------------------ */

typedef struct script {
    cbx_clock *clk;
    const cbx_outcome *outcomes;
    const uint64_t *retry_after;
    unsigned calls;
    uint64_t started_at[8];
} script;

static cbx_outcome scripted(void *ud, uint32_t attempt, uint64_t *retry_after_ns)
{
    script *s = ud;
    cr_assert_eq(attempt, s->calls + 1);
    cr_assert_eq(*retry_after_ns, 0);
    s->started_at[s->calls] = cbx_clock_now_ns(s->clk);
    cbx_clock_advance(s->clk, 10); /* each attempt takes 10 ms */
    if (s->retry_after)
        *retry_after_ns = s->retry_after[s->calls];
    return s->outcomes[s->calls++];
}

Test(retry_run, retries_until_success_on_virtual_time)
{
    cbx_clock *clk = cbx_clock_virtual(1000);
    cbx_retry_opts o = plain(CBX_BACKOFF_EXPONENTIAL, 100 * MS, 30 * S, 2.0);
    o.max_attempts = 5;
    script s = {.clk = clk,
                .outcomes = (const cbx_outcome[]){CBX_OUTCOME_ERROR, CBX_OUTCOME_TIMEOUT,
                                                  CBX_OUTCOME_SUCCESS}};
    cbx_retry_report rep;
    cr_assert_eq(cbx_retry_run(&o, clk, scripted, &s, &rep), 0);
    cr_assert_eq(s.calls, 3);
    cr_assert_eq(rep.attempts, 3);
    cr_assert_eq(rep.outcome, CBX_OUTCOME_SUCCESS);
    cr_assert_eq(s.started_at[0], 1000 * MS);
    cr_assert_eq(s.started_at[1], 1110 * MS); /* 10 ms attempt + 100 ms */
    cr_assert_eq(s.started_at[2], 1320 * MS); /* + 10 ms + 200 ms */
    cr_assert_eq(rep.elapsed_ns, 330 * MS);
    cbx_clock_free(clk);
}

Test(retry_run, reports_why_it_stopped)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 50 * MS, 1 * S, 1.0);
    o.max_attempts = 3;
    const cbx_outcome all_errors[] = {CBX_OUTCOME_ERROR, CBX_OUTCOME_ERROR, CBX_OUTCOME_ERROR,
                                      CBX_OUTCOME_ERROR};
    script s = {.clk = clk, .outcomes = all_errors};
    cbx_retry_report rep;
    cr_assert_eq(cbx_retry_run(&o, clk, scripted, &s, &rep), CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(s.calls, 3);
    cr_assert_eq(rep.attempts, 3);
    cr_assert_eq(rep.outcome, CBX_OUTCOME_ERROR);
    cr_assert_eq(rep.elapsed_ns, 3 * 10 * MS + 2 * 50 * MS);

    script q = {.clk = clk, .outcomes = (const cbx_outcome[]){CBX_OUTCOME_QUALITY}};
    cr_assert_eq(cbx_retry_run(&o, clk, scripted, &q, NULL), CBX_EFAILED);
    cr_assert_eq(q.calls, 1);

    script bad = {.clk = clk, .outcomes = (const cbx_outcome[]){(cbx_outcome)40}};
    cr_assert_eq(cbx_retry_run(&o, clk, scripted, &bad, NULL), CBX_EFAILED);
    cr_assert_eq(bad.calls, 1);

    script ig = {.clk = clk, .outcomes = (const cbx_outcome[]){CBX_OUTCOME_IGNORED}};
    cr_assert_eq(cbx_retry_run(&o, clk, scripted, &ig, &rep), 0);
    cr_assert_eq(rep.outcome, CBX_OUTCOME_IGNORED);
    cbx_clock_free(clk);
}

Test(retry_run, waits_what_the_result_asks)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_retry_opts o = plain(CBX_BACKOFF_FIXED, 50 * MS, 2 * S, 1.0);
    script s = {.clk = clk,
                .outcomes = (const cbx_outcome[]){CBX_OUTCOME_RATE_LIMITED,
                                                  CBX_OUTCOME_RATE_LIMITED, CBX_OUTCOME_SUCCESS},
                .retry_after = (const uint64_t[]){1 * S, 9 * S, 0}};
    cr_assert_eq(cbx_retry_run(&o, clk, scripted, &s, NULL), 0);
    cr_assert_eq(s.started_at[1], 1010 * MS);
    cr_assert_eq(s.started_at[2], 1010 * MS + 10 * MS + 2 * S); /* 9 s capped to 2 s */
    cbx_clock_free(clk);
}

/* ---- the generator behind the jitter ---------------------------------------------------- */

Test(retry_rng, ranges_are_inclusive_and_respected)
{
    uint64_t st;
    cbx__rng_seed(&st, 99);
    unsigned seen[3] = {0};
    for (unsigned i = 0; i < 3000; i++) {
        uint64_t v = cbx__rng_between(&st, 3, 5);
        cr_assert(v >= 3 && v <= 5, "%llu outside [3, 5]", (unsigned long long)v);
        seen[v - 3]++;
        cr_assert_lt(cbx__rng_below(&st, 7), 7);
        double u = cbx__rng_unit(&st);
        cr_assert(u >= 0.0 && u < 1.0);
    }
    for (unsigned i = 0; i < 3; i++)
        cr_assert(seen[i] > 800 && seen[i] < 1200, "value %u drawn %u times in 3000", i + 3,
                  seen[i]);
    cr_assert_eq(cbx__rng_below(&st, 0), 0);
    cr_assert_eq(cbx__rng_between(&st, 9, 9), 9);
    cr_assert_eq(cbx__rng_between(&st, 9, 2), 9);
    uint64_t a = cbx__rng_between(&st, 0, UINT64_MAX), b = cbx__rng_between(&st, 0, UINT64_MAX);
    cr_assert_neq(a, b);
}

Test(retry_rng, equal_seeds_equal_streams)
{
    uint64_t a, b, c;
    cbx__rng_seed(&a, 0);
    cbx__rng_seed(&b, 0);
    cbx__rng_seed(&c, 1);
    cr_assert_neq(a, 0, "seed 0 must still give a scrambled state");
    for (unsigned i = 0; i < 100; i++) {
        uint64_t x = cbx__rng_next(&a), y = cbx__rng_next(&b), z = cbx__rng_next(&c);
        cr_assert_eq(x, y);
        cr_assert_neq(x, z);
    }
    cr_assert_neq(cbx__rng_entropy(&a), cbx__rng_entropy(&a));
}
