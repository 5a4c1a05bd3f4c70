/* The policy's Lua predicates through the runtime: retry.when deciding on an attempt's error,
 * number and outputs (a real command's exit code and stderr),
 * its runtime errors and runaway loops ending the retries cleanly, and breaker.count_when /
 * breaker.ignore_when deciding what the policy's breaker counts. Real loop, real thread pool. */
#include "cbx/function.h"
#include "cbx/runtime.h"
#include "executors/command.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

static cbx_runtime *rt;
static cbx_registry *reg;
static atomic_int calls;

/* Fails with error "busy <code>" with codes[n] on its nth call (the last code repeats); code
 * 200 succeeds with {"code": 200}. (The function executor keeps no outputs of a failure: the
 * tests of outputs run a command, below.) */
static cbx_outcome coded(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)ud;
    int n = atomic_fetch_add(&calls, 1);
    const json_t *codes = json_object_get(input, "codes");
    size_t len = json_array_size(codes);
    json_int_t code =
        json_integer_value(json_array_get(codes, (size_t)n < len ? (size_t)n : len - 1));
    *output = json_pack("{s:I}", "code", code);
    if (code == 200)
        return CBX_OUTCOME_SUCCESS;
    cbx_function_error(t, "busy %lld", (long long)code);
    return CBX_OUTCOME_ERROR;
}

static void setup(void)
{
    atomic_store(&calls, 0);
    cbx_err err;
    cr_assert_eq(cbx_registry_new(&reg, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_function_register(reg, "coded", &(cbx_function_def){.call = coded}, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(
        cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg, .max_concurrent = 4}, &err), 0,
        "%s", err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    cbx_function_unregister_all(reg);
    cbx_registry_free(reg);
}

TestSuite(policy_predicates, .init = setup, .fini = teardown, .timeout = 60);

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

/* Run coded with the codes under p; fills *r (clear it). */
static int run(cbx_policy *p, const char *codes, cbx_result *r)
{
    char text[256];
    snprintf(text, sizeof text, "{\"name\": \"coded\", \"input\": {\"codes\": %s}}", codes);
    json_t *params = json_loads(text, 0, NULL);
    cr_assert_not_null(params);
    int rc = cbx_runtime_execute(
        rt, &(cbx_request){.executor = "function", .params = params, .policy = p}, r, NULL);
    json_decref(params);
    return rc;
}

#define RETRY(extra) "{\"retry\": {\"attempts\": 5, \"initial\": \"1ms\"" extra "}}"

Test(policy_predicates, retry_when_decides_on_the_error)
{
    cbx_policy *p = policy(RETRY(", \"when\": \"attempt.error == 'busy 503'\""));
    cbx_result r;
    run(p, "[503, 503, 400]", &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_eq(r.attempt_count, 3, "503 twice retried, 400 not: %u", r.attempt_count);
    cr_assert(strstr(r.error, "retry.when said no"), "%s", r.error);
    cr_assert(strstr(r.error, "busy 400"), "the attempt's own error stays: %s", r.error);
    cbx_result_clear(&r);

    atomic_store(&calls, 0);
    cr_assert_eq(run(p, "[503, 503, 200]", &r), 0, "%s", r.error);
    cr_assert_eq(r.status, CBX_STATUS_SUCCESS);
    cr_assert_eq(r.attempt_count, 3);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates, retry_when_sees_number_outcome_error_and_duration)
{
    cbx_policy *p = policy(RETRY(", \"when\": \"attempt.number < 3 and attempt.outcome == "
                                 "'error' and attempt.error:find('busy', 1, true) ~= nil and "
                                 "attempt.duration_ms >= 0 and type(attempt.metadata) == "
                                 "'table'\""));
    cbx_result r;
    run(p, "[500]", &r);
    cr_assert_eq(r.attempt_count, 3, "attempts 1 and 2 retried: %u (%s)", r.attempt_count, r.error);
    cr_assert(strstr(r.error, "retry.when said no"), "%s", r.error);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates, retry_when_still_bounded_by_attempts)
{
    cbx_policy *p =
        policy("{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\", \"when\": \"true\"}}");
    cbx_result r;
    run(p, "[500]", &r);
    cr_assert_eq(r.attempt_count, 3);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates, a_runtime_error_ends_the_retries_with_the_message)
{
    cbx_policy *p = policy(RETRY(", \"when\": \"attempt.outputs.missing.field == 1\""));
    cbx_result r;
    run(p, "[503]", &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_eq(r.attempt_count, 1);
    cr_assert(strstr(r.error, "retry.when failed: line 1: attempt to index a nil value"), "%s",
              r.error);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates, a_runaway_predicate_is_stopped)
{
    cbx_policy *p = policy(RETRY(", \"when\": \"(function() while true do end end)()\""));
    cbx_result r;
    for (int i = 0; i < 2; i++) { /* the state is fine after the first one was stopped */
        atomic_store(&calls, 0);
        run(p, "[503]", &r);
        cr_assert_eq(r.attempt_count, 1);
        cr_assert(strstr(r.error, "instruction limit exceeded"), "%s", r.error);
        cbx_result_clear(&r);
    }
    cbx_policy_free(p);
}

#define BREAKER(extra)                                                                             \
    "{\"retry\": {\"attempts\": 5, \"initial\": \"1ms\"}, \"breaker\": "                           \
    "{\"consecutive_failures\": "                                                                  \
    "2, \"open_for\": \"1m\"" extra "}}"

Test(policy_predicates, without_predicates_the_breaker_opens)
{
    cbx_policy *p = policy(BREAKER(""));
    cbx_result r;
    run(p, "[404]", &r);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert_eq(r.attempt_count, 2);
    cr_assert_eq(cbx_breaker_state_now(cbx_policy_breaker(p)), CBX_BREAKER_OPEN);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates, ignore_when_keeps_the_breaker_closed)
{
    cbx_policy *p = policy(BREAKER(", \"ignore_when\": \"attempt.error == 'busy 404'\""));
    cbx_result r;
    run(p, "[404]", &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED, "%s", r.error);
    cr_assert_eq(r.attempt_count, 5, "every attempt retried, none counted");
    cr_assert_eq(cbx_breaker_state_now(cbx_policy_breaker(p)), CBX_BREAKER_CLOSED);
    cbx_result_clear(&r);
    /* other codes still count */
    atomic_store(&calls, 0);
    run(p, "[500]", &r);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert_eq(r.attempt_count, 2);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates, count_when_false_counts_a_failure_as_a_success)
{
    cbx_policy *p = policy(BREAKER(", \"count_when\": \"attempt.error:find('busy 5') ~= nil\""));
    cbx_result r;
    run(p, "[404]", &r);
    cr_assert_eq(r.attempt_count, 5, "%s", r.error);
    cr_assert_eq(cbx_breaker_state_now(cbx_policy_breaker(p)), CBX_BREAKER_CLOSED);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates, count_when_true_counts_a_success_as_a_failure)
{
    cbx_policy *p = policy(BREAKER(", \"count_when\": \"attempt.outputs.code == 200\""));
    cbx_result r;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(run(p, "[200]", &r), 0, "%s", r.error);
        cr_assert_eq(r.status, CBX_STATUS_SUCCESS, "the call itself still succeeds");
        cbx_result_clear(&r);
    }
    cr_assert_eq(cbx_breaker_state_now(cbx_policy_breaker(p)), CBX_BREAKER_OPEN);
    run(p, "[200]", &r);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates, an_error_in_a_breaker_predicate_leaves_the_fixed_rules)
{
    cbx_policy *p = policy(BREAKER(", \"ignore_when\": \"attempt.outputs.missing.x\""));
    cbx_result r;
    run(p, "[404]", &r);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert_eq(r.attempt_count, 2);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

/* Run coded with the codes under p and the store's breaker name. */
static int run_named(cbx_policy *p, const char *breaker, const char *codes, cbx_result *r)
{
    char text[256];
    snprintf(text, sizeof text, "{\"name\": \"coded\", \"input\": {\"codes\": %s}}", codes);
    json_t *params = json_loads(text, 0, NULL);
    cr_assert_not_null(params);
    int rc = cbx_runtime_execute(rt,
                                 &(cbx_request){.executor = "function",
                                                .params = params,
                                                .policy = p,
                                                .breaker = breaker,
                                                .breaker_opts = cbx_policy_breaker_opts(p)},
                                 r, NULL);
    json_decref(params);
    return rc;
}

Test(policy_predicates, a_keyed_breaker_follows_the_predicates)
{
    cbx_policy *p = policy("{\"retry\": {\"attempts\": 5, \"initial\": \"1ms\"}, \"breaker\": "
                           "{\"consecutive_failures\": 2, \"open_for\": \"1m\", \"key\": \"{{ "
                           "inputs.host }}\", \"ignore_when\": \"attempt.error == 'busy 404'\"}}");
    cbx_result r;
    run_named(p, "policy:a", "[404]", &r);
    cr_assert_eq(r.attempt_count, 5, "the key's breaker ignored them: %u (%s)", r.attempt_count,
                 r.error);
    cbx_result_clear(&r);
    atomic_store(&calls, 0);
    run_named(p, "policy:a", "[500]", &r);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED, "%s", r.error);
    cr_assert_eq(r.attempt_count, 2);
    cr_assert(strstr(r.error, "policy:a"), "the key's breaker opened: %s", r.error);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates, a_named_host_wide_breaker_keeps_its_own_rules)
{
    cbx_policy *p = policy(BREAKER(", \"ignore_when\": \"attempt.error == 'busy 404'\""));
    cbx_result r;
    run_named(p, "shared", "[404]", &r);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED, "%s", r.error);
    cr_assert_eq(r.attempt_count, 2, "the named breaker counted the failures");
    cr_assert(strstr(r.error, "'shared'"), "%s", r.error);
    cr_assert_eq(cbx_breaker_state_now(cbx_policy_breaker(p)), CBX_BREAKER_CLOSED,
                 "the policy's own breaker ignored them");
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

/* ---- a real command: outputs.exit_code and outputs.stderr ---------------------------------- */

static cbx_runtime *crt;
static char counter[64];

static void command_setup(void)
{
    cr_assert_not_null(cbx__command_type()); /* links the built-in type in */
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&crt, &(cbx_runtime_opts){.max_concurrent = 4}, &err), 0, "%s",
                 err.msg);
    snprintf(counter, sizeof counter, "/tmp/cbx_pred_%d", (int)getpid());
    unlink(counter);
}

static void command_teardown(void)
{
    cbx_runtime_free(crt);
    unlink(counter);
}

TestSuite(policy_predicates_command, .init = command_setup, .fini = command_teardown,
          .timeout = 60);

/* Exits 75 with "try later" on stderr on its first two runs, then 3 with "bad input". */
static int run_command(cbx_policy *p, cbx_result *r)
{
    char script[512];
    snprintf(script, sizeof script,
             "n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s; "
             "if [ $n -lt 3 ]; then echo 'try later' >&2; exit 75; fi; echo 'bad input' >&2; "
             "exit 3",
             counter, counter);
    json_t *params = json_pack("{s:[s,s,s]}", "argv", "sh", "-c", script);
    int rc = cbx_runtime_execute(
        crt, &(cbx_request){.executor = "command", .params = params, .policy = p}, r, NULL);
    json_decref(params);
    return rc;
}

Test(policy_predicates_command, retry_when_reads_the_exit_code)
{
    cbx_policy *p = policy(RETRY(", \"when\": \"attempt.outputs.exit_code == 75\""));
    cbx_result r;
    run_command(p, &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_eq(r.attempt_count, 3, "75 twice retried, 3 not: %u (%s)", r.attempt_count, r.error);
    cr_assert(strstr(r.error, "retry.when said no"), "%s", r.error);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates_command, retry_when_reads_stderr)
{
    cbx_policy *p =
        policy(RETRY(", \"when\": \"attempt.outputs.stderr:find('bad input', 1, true) == nil\""));
    cbx_result r;
    run_command(p, &r);
    cr_assert_eq(r.attempt_count, 3, "%u (%s)", r.attempt_count, r.error);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy_predicates_command, ignore_when_reads_the_exit_code)
{
    cbx_policy *p = policy(BREAKER(", \"ignore_when\": \"attempt.outputs.exit_code == 75\""));
    cbx_result r;
    run_command(p, &r);
    /* 75, 75 ignored; 3, 3 counted: the breaker opens after the fourth attempt */
    cr_assert_eq(r.status, CBX_STATUS_REJECTED, "%s", r.error);
    cr_assert_eq(r.attempt_count, 4, "%u (%s)", r.attempt_count, r.error);
    cbx_result_clear(&r);
    cbx_policy_free(p);
}
