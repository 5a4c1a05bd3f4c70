/* The chaos executor through the runtime: its rates, delays, hangs and quality, on a real loop
 * with real timers. */
#include "cbx/policy.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <string.h>

#include "executors/builtins.h"
#include "runtime/builtins.h"

static cbx_runtime *rt;

static void setup(void)
{
    /* the registry refers to built-ins weakly; a strong reference links chaos.c in */
    cr_assert_not_null(cbx__chaos_type());
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.max_concurrent = 64}, &err), 0, "%s",
                 err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
}

TestSuite(chaos, .init = setup, .fini = teardown, .timeout = 60);

static cbx_policy *policy(const char *json)
{
    json_error_t je;
    json_t *b = json_loads(json, 0, &je);
    cr_assert_not_null(b, "%s", je.text);
    cbx_policy *p = NULL;
    cbx_err err;
    cr_assert_eq(cbx_policy_new_json(&p, b, NULL, &err), 0, "%s: %s", err.where, err.msg);
    json_decref(b);
    return p;
}

/* Run one chaos request; the caller clears *r. */
static int run(const char *params_json, cbx_policy *pol, uint64_t timeout_ms, cbx_result *r)
{
    json_t *p = json_loads(params_json, 0, NULL);
    cr_assert_not_null(p, "%s", params_json);
    int rc = cbx_runtime_execute(rt,
                                 &(cbx_request){.executor = "chaos",
                                                .params = p,
                                                .policy = pol,
                                                .timeout_ns = timeout_ms * CBX_NS_PER_MS},
                                 r, NULL);
    json_decref(p);
    return rc;
}

static const char *decision(const cbx_result *r)
{
    return json_string_value(json_object_get(r->metadata, "decision"));
}

Test(chaos, fail_rate_one_always_fails)
{
    for (int i = 0; i < 20; i++) {
        cbx_result r;
        int rc = run("{\"fail_rate\": 1}", NULL, 0, &r);
        cr_assert_eq(rc, CBX_EFAILED);
        cr_assert_eq(r.status, CBX_STATUS_FAILED);
        cr_assert_str_eq(r.error, "chaos: injected failure");
        cr_assert_str_eq(decision(&r), "fail");
        cbx_result_clear(&r);
    }
}

Test(chaos, fail_rate_zero_never_fails)
{
    for (int i = 0; i < 20; i++) {
        cbx_result r;
        int rc = run("{\"fail_rate\": 0, \"outputs\": {\"answer\": 42}}", NULL, 0, &r);
        cr_assert_eq(rc, 0, "%s", r.error);
        cr_assert_eq(json_integer_value(json_object_get(r.outputs, "answer")), 42);
        cr_assert_str_eq(decision(&r), "success");
        cbx_result_clear(&r);
    }
}

Test(chaos, a_middle_rate_gives_both_and_a_seed_replays)
{
    int fails = 0;
    for (int i = 0; i < 200; i++) {
        cbx_result r;
        if (run("{\"fail_rate\": 0.5}", NULL, 0, &r) != 0)
            fails++;
        cbx_result_clear(&r);
    }
    /* 200 fair coins: outside 50..150 has probability below 1e-12 */
    cr_assert(fails > 50 && fails < 150, "%d failures out of 200", fails);

    /* with a seed, the first attempt decides alike every time */
    cbx_result r;
    int first = run("{\"fail_rate\": 0.5, \"seed\": 7}", NULL, 0, &r);
    cr_assert_eq(json_integer_value(json_object_get(r.metadata, "seed")), 7);
    cbx_result_clear(&r);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(run("{\"fail_rate\": 0.5, \"seed\": 7}", NULL, 0, &r), first);
        cbx_result_clear(&r);
    }
}

Test(chaos, delays_are_honoured)
{
    cbx_result r;
    int rc = run("{\"delay_ms\": 80}", NULL, 0, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_geq(r.duration_ns, 80 * CBX_NS_PER_MS);
    cr_assert_eq(json_integer_value(json_object_get(r.metadata, "delay_ms")), 80);
    cbx_result_clear(&r);

    rc = run("{\"delay_ms\": 20, \"delay_jitter_ms\": 40, \"seed\": 3}", NULL, 0, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    json_int_t d = json_integer_value(json_object_get(r.metadata, "delay_ms"));
    cr_assert(d >= 20 && d <= 60, "delay %lld", (long long)d);
    cr_assert_geq(r.duration_ns, (uint64_t)d * CBX_NS_PER_MS);
    cbx_result_clear(&r);
}

Test(chaos, a_delay_longer_than_the_timeout_times_out)
{
    cbx_result r;
    run("{\"delay_ms\": 600000}", NULL, 50, &r);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    cr_assert_lt(r.duration_ns, 300000 * CBX_NS_PER_MS, "the delay was waited out");
    cr_assert(json_is_true(json_object_get(r.metadata, "stopped")));
    cbx_result_clear(&r);
}

Test(chaos, hang_with_a_timeout_gives_timeout)
{
    cbx_result r;
    int rc = run("{\"timeout_rate\": 1}", NULL, 60, &r);
    cr_assert_eq(rc, CBX_ETIMEDOUT);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    cr_assert_geq(r.duration_ns, 60 * CBX_NS_PER_MS);
    cr_assert_str_eq(decision(&r), "hang");
    cbx_result_clear(&r);
}

Test(chaos, hangs_are_retried_under_a_policy)
{
    cbx_policy *pol = policy("{\"timeout\": \"30ms\", \"retry\": {\"attempts\": 3, \"initial\": "
                             "\"1ms\", \"on\": [\"timeout\"]}}");
    cbx_result r;
    run("{\"timeout_rate\": 1}", pol, 0, &r);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT, "%s", cbx_status_name(r.status));
    cr_assert_eq(r.attempt_count, 3);
    cbx_result_clear(&r);
    cbx_policy_free(pol);
}

Test(chaos, quality_is_reported)
{
    cbx_result r;
    int rc = run("{\"quality\": 0.75}", NULL, 0, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_float_eq(json_number_value(json_object_get(r.metadata, "quality")), 0.75, 1e-9);
    cbx_result_clear(&r);

    rc = run("{\"poor_quality_rate\": 1, \"poor_quality\": 0.2}", NULL, 0, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(decision(&r), "poor_quality");
    cr_assert_float_eq(json_number_value(json_object_get(r.metadata, "quality")), 0.2, 1e-9);
    cbx_result_clear(&r);

    /* the policy sees it: under the threshold a success is a quality failure */
    cbx_policy *pol = policy("{\"quality\": {\"threshold\": 0.5}}");
    rc = run("{\"poor_quality_rate\": 1, \"poor_quality\": 0.2}", pol, 0, &r);
    cr_assert_neq(rc, 0);
    cr_assert_eq(r.status, CBX_STATUS_FAILED, "%s", cbx_status_name(r.status));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r.attempts, 0), "outcome")),
                     "quality", "the attempt is recorded as the policy judged it");
    cbx_result_clear(&r);
    rc = run("{\"quality\": 0.9}", pol, 0, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cbx_result_clear(&r);
    cbx_policy_free(pol);
}

Test(chaos, bad_rates_are_refused_naming_the_parameter)
{
    cbx_result r;
    cbx_diag d = {0};
    json_t *p = json_loads("{\"fail_rate\": 1.5, \"delay_ms\": -1}", 0, NULL);
    int rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "chaos", .params = p}, &r, &d);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert(strstr(r.error, "fail_rate") || strstr(r.error, "delay_ms"), "%s", r.error);
    cr_assert_eq(d.n, 2);
    cbx_diag_clear(&d);
    cbx_result_clear(&r);
    json_decref(p);
}

Test(chaos, many_at_once_on_one_loop)
{
    enum { N = 200 };
    cbx_request reqs[N];
    cbx_result res[N];
    json_t *p = json_loads("{\"delay_ms\": 50}", 0, NULL);
    for (int i = 0; i < N; i++)
        reqs[i] = (cbx_request){.executor = "chaos", .params = p};
    cbx_runtime_free(rt);
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.max_concurrent = N}, &err), 0);
    size_t ok = cbx_runtime_execute_many(rt, reqs, N, 0, res);
    cr_assert_eq(ok, N);
    for (int i = 0; i < N; i++)
        cbx_result_clear(&res[i]);
    json_decref(p);
}
