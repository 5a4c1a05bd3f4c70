/* The breaker's half-open and initial-state options as policy keys: read into the options, and
 * mistakes named by their key path. */
#include <criterion/criterion.h>

#include <string.h>

#include "cbx/breaker.h"
#include "cbx/policy.h"

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *b = json_loads(text, 0, &je);
    cr_assert_not_null(b, "bad JSON in the test: %s (line %d)", je.text, je.line);
    return b;
}

static int parse(const char *text, cbx_policy_opts *o, cbx_err *err)
{
    json_t *b = load(text);
    cbx_policy_opts_default(o);
    cbx_err_clear(err);
    int rc = cbx_policy_opts_parse(o, b, err);
    json_decref(b);
    return rc;
}

/* Builds the policy, so the breaker's own checks run too. */
static int build(const char *text, cbx_clock *clk, cbx_policy **out, cbx_err *err)
{
    json_t *b = load(text);
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    o.clock = clk;
    cbx_err_clear(err);
    int rc = cbx_policy_new_json(out, b, &o, err);
    json_decref(b);
    return rc;
}

Test(breaker_policy_keys, every_key_is_read)
{
    cbx_policy_opts o;
    cbx_err err;
    int rc = parse("{\"breaker\": {\"failure_rate\": \"50%\", \"window\": 4, \"slow_call\": \"1s\","
                   " \"half_open_probes\": 4, \"half_open_max\": \"30s\","
                   " \"half_open_judge\": \"rate\", \"half_open_failure_rate\": \"25%\","
                   " \"half_open_slow_rate\": 0.75, \"initial_state\": \"open\"}}",
                   &o, &err);
    cr_assert_eq(rc, 0, "%s: %s", err.where, err.msg);
    cr_assert_eq(o.breaker.half_open_max_ns, 30 * CBX_NS_PER_S);
    cr_assert_eq(o.breaker.half_open_judge, CBX_BREAKER_JUDGE_RATE);
    cr_assert_float_eq(o.breaker.half_open_failure_rate, 0.25, 1e-12);
    cr_assert_float_eq(o.breaker.half_open_slow_rate, 0.75, 1e-12);
    cr_assert_eq(o.breaker.initial_state, CBX_BREAKER_OPEN);

    rc = parse("{\"breaker\": {\"half_open_judge\": \"first_failure\","
               " \"initial_state\": \"half_open\"}}",
               &o, &err);
    cr_assert_eq(rc, 0, "%s: %s", err.where, err.msg);
    cr_assert_eq(o.breaker.half_open_judge, CBX_BREAKER_JUDGE_FIRST_FAILURE);
    cr_assert_eq(o.breaker.initial_state, CBX_BREAKER_HALF_OPEN);
}

Test(breaker_policy_keys, mistakes_are_named)
{
    static const struct {
        const char *text, *where;
        int rc;
    } bad[] = {
        {"{\"breaker\": {\"half_open_judge\": \"majority\"}}", "breaker.half_open_judge",
         CBX_EINVAL_CONFIG},
        {"{\"breaker\": {\"initial_state\": \"ajar\"}}", "breaker.initial_state",
         CBX_EINVAL_CONFIG},
        {"{\"breaker\": {\"half_open_max\": \"0s\"}}", "breaker.half_open_max", CBX_EINVAL_CONFIG},
        {"{\"breaker\": {\"half_open_failure_rate\": \"0%\"}}", "breaker.half_open_failure_rate",
         CBX_EINVAL_CONFIG},
        {"{\"breaker\": {\"half_open_slow_rate\": \"150%\"}}", "breaker.half_open_slow_rate",
         CBX_EINVAL_CONFIG},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cbx_policy_opts o;
        cbx_err err;
        cr_assert_eq(parse(bad[i].text, &o, &err), bad[i].rc, "case %zu: %s", i, err.msg);
        cr_assert_str_eq(err.where, bad[i].where, "case %zu: %s", i, err.msg);
    }
}

/* The keys reach the breaker the policy builds: created open, judged by rate. */
Test(breaker_policy_keys, the_built_breaker_follows_them)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_policy *p = NULL;
    cbx_err err;
    int rc = build("{\"breaker\": {\"consecutive_failures\": 1, \"open_for\": \"1s\","
                   " \"initial_state\": \"open\", \"half_open_max\": \"5s\"}}",
                   clk, &p, &err);
    cr_assert_eq(rc, 0, "%s: %s", err.where, err.msg);
    cbx_breaker *b = cbx_policy_breaker(p);
    cr_assert_not_null(b);
    cr_assert_eq(cbx_breaker_acquire(b).rc, CBX_ECIRCUIT_OPEN);
    cbx_clock_advance(clk, 1000);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_HALF_OPEN);
    cbx_clock_advance(clk, 5000);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN);
    cbx_policy_free(p);

    /* judged by rate without any rate: the breaker's own check, with the key path */
    rc = build("{\"breaker\": {\"half_open_judge\": \"rate\"}}", clk, &p, &err);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert(strstr(err.where, "half_open_failure_rate"), "%s", err.where);
    cbx_clock_free(clk);
}
