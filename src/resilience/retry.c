/* The retry policy: backoff, jitter, attempt and time limits, and the blocking loop. */
#include "cbx/retry.h"

#include "resilience/rng.h"

#include <math.h>
#include <string.h>

static const char *const backoff_names[] = {
#define CBX__BACKOFF_STR(name, str) str,
    CBX_BACKOFF_MAP(CBX__BACKOFF_STR)
#undef CBX__BACKOFF_STR
};

static const char *const jitter_names[] = {
#define CBX__JITTER_STR(name, str) str,
    CBX_JITTER_MAP(CBX__JITTER_STR)
#undef CBX__JITTER_STR
};

static int name_index(const char *const *names, unsigned count, const char *name)
{
    for (unsigned i = 0; name && i < count; i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

const char *cbx_backoff_name(cbx_backoff b)
{
    return (unsigned)b < CBX_BACKOFF__COUNT ? backoff_names[b] : "unknown";
}

const char *cbx_jitter_name(cbx_jitter j)
{
    return (unsigned)j < CBX_JITTER__COUNT ? jitter_names[j] : "unknown";
}

int cbx_backoff_parse(const char *name, cbx_backoff *out)
{
    int i = name_index(backoff_names, CBX_BACKOFF__COUNT, name);
    if (i < 0)
        return CBX_EPARSE;
    *out = (cbx_backoff)i;
    return 0;
}

int cbx_jitter_parse(const char *name, cbx_jitter *out)
{
    int i = name_index(jitter_names, CBX_JITTER__COUNT, name);
    if (i < 0)
        return CBX_EPARSE;
    *out = (cbx_jitter)i;
    return 0;
}

void cbx_retry_opts_default(cbx_retry_opts *o)
{
    *o = (cbx_retry_opts){
        .max_attempts = 3,
        .max_elapsed_ns = 0,
        .backoff = CBX_BACKOFF_EXPONENTIAL,
        .jitter = CBX_JITTER_FULL,
        .initial_ns = 100 * CBX_NS_PER_MS,
        .max_delay_ns = 30 * CBX_NS_PER_S,
        .multiplier = 2.0,
        .retry_on = CBX_RETRY_ON_DEFAULT,
        .budget = NULL,
        .seed = 0,
    };
}

#define NEVER_RETRIED (CBX_OUTCOME_BIT(CBX_OUTCOME_SUCCESS) | CBX_OUTCOME_BIT(CBX_OUTCOME_IGNORED))
#define KNOWN_KINDS   ((1u << CBX_OUTCOME__COUNT) - 1u)

static int invalid(cbx_err *err, const char *key, const char *msg)
{
    return cbx_err_set_at(err, CBX_EINVAL_CONFIG, key, 0, 0, "%s", msg);
}

int cbx_retry_opts_validate(const cbx_retry_opts *o, cbx_err *err)
{
    if (!o)
        return invalid(err, "retry", "retry options are missing (NULL)");
    if (o->max_attempts < 1)
        return invalid(err, "retry.attempts", "max_attempts must be >= 1");
    if ((unsigned)o->backoff >= CBX_BACKOFF__COUNT)
        return invalid(err, "retry.backoff",
                       "backoff must be one of fixed, linear, exponential, decorrelated");
    if ((unsigned)o->jitter >= CBX_JITTER__COUNT)
        return invalid(err, "retry.jitter", "jitter must be one of none, full, equal");
    if (o->initial_ns == 0 && o->backoff != CBX_BACKOFF_FIXED)
        return invalid(err, "retry.initial",
                       "initial_ns must be > 0 (only fixed backoff may retry at once)");
    if (o->max_delay_ns == 0)
        return invalid(err, "retry.max", "max_delay_ns must be > 0");
    if (o->max_delay_ns < o->initial_ns)
        return invalid(err, "retry.max", "max_delay_ns must be >= initial_ns");
    if (!isfinite(o->multiplier) || o->multiplier < 1.0)
        return invalid(err, "retry.multiplier", "multiplier must be >= 1");
    if (o->retry_on & ~KNOWN_KINDS)
        return invalid(err, "retry.on", "retry_on has bits that are not outcome kinds");
    if (o->retry_on & NEVER_RETRIED)
        return invalid(err, "retry.on", "retry_on must not include success or ignored");
    if (o->retry_on == 0)
        return invalid(err, "retry.on", "retry_on must name at least one failure kind");
    return 0;
}

void cbx_retry_begin(const cbx_retry_opts *o, cbx_retry_state *st, uint64_t now_ns)
{
    st->attempt = 1;
    st->first_start_ns = now_ns;
    st->prev_delay_ns = 0;
    cbx__rng_seed(&st->rng, o->seed ? o->seed : cbx__rng_entropy(st));
    cbx_retry_budget_record_call(o->budget);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return (b != 0 && a > UINT64_MAX / b) ? UINT64_MAX : a * b;
}

/* initial * multiplier^(n-1), rounded to the nearest ns and capped. */
static uint64_t exponential_ns(const cbx_retry_opts *o, uint32_t n)
{
    double d = (double)o->initial_ns * pow(o->multiplier, (double)(n - 1));
    /* (double)cap may round up to 2^64; d below it converts without overflow. */
    if (!(d < (double)o->max_delay_ns))
        return o->max_delay_ns;
    return min_u64((uint64_t)(d + 0.5), o->max_delay_ns);
}

/* The backoff before retry number n (n >= 1), jitter included, without Retry-After. */
static uint64_t computed_delay_ns(const cbx_retry_opts *o, const cbx_retry_state *st, uint32_t n,
                                  uint64_t *rng)
{
    uint64_t cap = o->max_delay_ns, d;
    switch (o->backoff) {
    case CBX_BACKOFF_DECORRELATED: {
        uint64_t prev = st->prev_delay_ns ? st->prev_delay_ns : o->initial_ns;
        /* After a Retry-After shorter than initial/3, hi < initial and the draw gives
         * initial. */
        uint64_t hi = sat_mul(prev, 3);
        return min_u64(cbx__rng_between(rng, o->initial_ns, hi), cap);
    }
    case CBX_BACKOFF_LINEAR:
        d = min_u64(sat_mul(o->initial_ns, n), cap);
        break;
    case CBX_BACKOFF_EXPONENTIAL:
        d = exponential_ns(o, n);
        break;
    case CBX_BACKOFF_FIXED:
    default:
        d = min_u64(o->initial_ns, cap);
        break;
    }
    switch (o->jitter) {
    case CBX_JITTER_FULL:
        return cbx__rng_between(rng, 0, d);
    case CBX_JITTER_EQUAL:
        return d / 2 + cbx__rng_between(rng, 0, d - d / 2);
    case CBX_JITTER_NONE:
    default:
        return d;
    }
}

int cbx_retry_next(const cbx_retry_opts *o, cbx_retry_state *st, cbx_outcome k,
                   uint64_t retry_after_ns, uint64_t now_ns, uint64_t *delay_ns)
{
    if ((unsigned)k >= CBX_OUTCOME__COUNT || !((o->retry_on & ~NEVER_RETRIED) & CBX_OUTCOME_BIT(k)))
        return CBX_EFAILED;
    if (st->attempt >= o->max_attempts)
        return CBX_ERETRY_EXHAUSTED;

    /* Draw on a copy: a refused retry leaves the state as it was. */
    uint64_t rng = st->rng;
    uint64_t d = retry_after_ns ? min_u64(retry_after_ns, o->max_delay_ns)
                                : computed_delay_ns(o, st, st->attempt, &rng);

    if (o->max_elapsed_ns) {
        uint64_t deadline = sat_add(st->first_start_ns, o->max_elapsed_ns);
        if (sat_add(now_ns, d) > deadline)
            return CBX_ERETRY_EXHAUSTED;
    }
    if (cbx_retry_budget_try_withdraw(o->budget) != 0)
        return CBX_EBUDGET_EXHAUSTED;

    st->attempt++;
    st->prev_delay_ns = d;
    st->rng = rng;
    *delay_ns = d;
    return 0;
}

int cbx_retry_run(const cbx_retry_opts *o, cbx_clock *clk, cbx_retry_fn fn, void *ud,
                  cbx_retry_report *report)
{
    cbx_retry_state st;
    cbx_outcome k;
    uint64_t now = cbx_clock_now_ns(clk);
    int r;

    cbx_retry_begin(o, &st, now);
    for (;;) {
        uint64_t retry_after = 0, delay = 0;
        k = fn(ud, st.attempt, &retry_after);
        now = cbx_clock_now_ns(clk);
        /* An out-of-range kind goes on to cbx_retry_next(), which refuses it. */
        if ((unsigned)k < CBX_OUTCOME__COUNT && !cbx_outcome_is_failure(k)) {
            r = 0;
            break;
        }
        r = cbx_retry_next(o, &st, k, retry_after, now, &delay);
        if (r != 0)
            break;
        cbx_clock_sleep_until(clk, sat_add(now, delay));
    }
    if (report) {
        report->outcome = k;
        report->attempts = st.attempt;
        report->elapsed_ns = now - st.first_start_ns;
    }
    return r;
}
