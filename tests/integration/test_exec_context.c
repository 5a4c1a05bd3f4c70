/* What an executor sees of its execution: run id, step, metadata and a temporary directory of
 * its own (made before the first attempt, shared by the retries, removed at the end or kept on
 * failure); and a policy's fallback.function resolved by the runtime, or the request refused.
 * A real loop and the real thread pool. */
#include "cbx/function.h"
#include "cbx/policy.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Blocking: records what it sees; writes "mark" in its tmpdir; fails while the mark was not
 * there before (so a retry finds the first attempt's file), or always with fail: true. */
static cbx_outcome probe_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    (void)metadata;
    const char *dir = cbx_task_tmpdir(t);
    int seen = 0;
    if (dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/mark", dir);
        seen = access(path, F_OK) == 0;
        FILE *f = fopen(path, "w");
        if (f)
            fclose(f);
    }
    const json_t *meta = cbx_task_metadata(t);
    *outputs = json_pack("{s:s?, s:s?, s:s?, s:O?, s:b, s:i}", "run_id", cbx_task_run_id(t), "step",
                         cbx_task_step(t), "tmpdir", dir, "metadata", (json_t *)meta, "seen_mark",
                         seen, "attempt", (int)cbx_task_attempt(t));
    const json_t *p = cbx_task_params(t);
    if (json_is_true(json_object_get(p, "fail")) ||
        (json_is_true(json_object_get(p, "fail_first")) && !seen)) {
        cbx_err_set(err, CBX_EFAILED, "failed as asked");
        return CBX_OUTCOME_ERROR;
    }
    return CBX_OUTCOME_SUCCESS;
}

static const cbx_param probe_params[] = {
    {.name = "fail", .type = CBX_PARAM_BOOLEAN, .default_json = "false"},
    {.name = "fail_first", .type = CBX_PARAM_BOOLEAN, .default_json = "false"},
    {0},
};

static const cbx_executor_type probe_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "probe",
    .summary = "reports its context",
    .params = probe_params,
    .run = probe_run,
};

static cbx_outcome degrade(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)ud;
    cr_assert_null(t, "a fallback function runs outside any attempt");
    *output = json_pack("{s:s, s:O}", "degraded", "yes", "input", (json_t *)input);
    return CBX_OUTCOME_SUCCESS;
}

static cbx_registry *reg;
static cbx_runtime *rt;

static void setup(void)
{
    cbx_err err;
    cr_assert_eq(cbx_registry_new(&reg, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_registry_register(reg, &probe_type, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_function_register(reg, "degrade", &(cbx_function_def){.call = degrade}, &err),
                 0, "%s", err.msg);
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &err), 0, "%s",
                 err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    cbx_function_unregister_all(reg);
    cbx_registry_free(reg);
}

TestSuite(exec_context, .init = setup, .fini = teardown, .timeout = 120);

static int is_dir(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

Test(exec_context, run_step_metadata_and_tmpdir)
{
    json_t *meta = json_pack("{s:s}", "flow", "demo");
    cbx_result res;
    int rc = cbx_runtime_execute(rt,
                                 &(cbx_request){.executor = "probe",
                                                .run_id = "run-1",
                                                .step = "fetch",
                                                .metadata = meta,
                                                .tmpdir = CBX_TMPDIR_MAKE},
                                 &res, NULL);
    json_decref(meta);
    cr_assert_eq(rc, 0, "%s", res.error);
    cr_assert_str_eq(json_string_value(json_object_get(res.outputs, "run_id")), "run-1");
    cr_assert_str_eq(json_string_value(json_object_get(res.outputs, "step")), "fetch");
    const json_t *m = json_object_get(res.outputs, "metadata");
    cr_assert_str_eq(json_string_value(json_object_get(m, "flow")), "demo");
    const char *dir = json_string_value(json_object_get(res.outputs, "tmpdir"));
    cr_assert_not_null(dir);
    cr_assert(strstr(dir, res.id) != NULL, "the directory is named after the execution: %s", dir);
    cr_assert(!is_dir(dir), "removed after a success: %s", dir);
    cbx_result_clear(&res);
}

Test(exec_context, none_asked_none_seen)
{
    cbx_result res;
    cr_assert_eq(cbx_runtime_execute(rt, &(cbx_request){.executor = "probe"}, &res, NULL), 0);
    cr_assert(json_is_null(json_object_get(res.outputs, "run_id")));
    cr_assert(json_is_null(json_object_get(res.outputs, "step")));
    cr_assert(json_is_null(json_object_get(res.outputs, "tmpdir")));
    cr_assert(json_is_null(json_object_get(res.outputs, "metadata")));
    cbx_result_clear(&res);
}

Test(exec_context, retries_share_the_directory)
{
    cbx_policy *p = NULL;
    json_t *block = json_pack("{s:{s:i, s:s}}", "retry", "attempts", 2, "initial", "1ms");
    cbx_err err;
    cr_assert_eq(cbx_policy_new_json(&p, block, NULL, &err), 0, "%s", err.msg);
    json_decref(block);
    json_t *params = json_pack("{s:b}", "fail_first", 1);
    cbx_result res;
    int rc = cbx_runtime_execute(
        rt,
        &(cbx_request){
            .executor = "probe", .params = params, .policy = p, .tmpdir = CBX_TMPDIR_MAKE},
        &res, NULL);
    cr_assert_eq(rc, 0, "%s", res.error);
    cr_assert_eq(res.attempt_count, 2);
    cr_assert(json_is_true(json_object_get(res.outputs, "seen_mark")),
              "the second attempt found the first one's file");
    cr_assert(!is_dir(json_string_value(json_object_get(res.outputs, "tmpdir"))));
    cbx_result_clear(&res);
    json_decref(params);
    cbx_policy_free(p);
}

Test(exec_context, kept_on_failure_when_asked)
{
    json_t *params = json_pack("{s:b}", "fail", 1);
    cbx_result res;
    cbx_runtime_execute(
        rt,
        &(cbx_request){.executor = "probe", .params = params, .tmpdir = CBX_TMPDIR_KEEP_ON_FAILURE},
        &res, NULL);
    cr_assert_eq(res.status, CBX_STATUS_FAILED);
    const char *kept = json_string_value(json_object_get(res.metadata, "tmpdir"));
    cr_assert_not_null(kept, "the kept directory is in the metadata");
    cr_assert(is_dir(kept));
    char mark[512];
    snprintf(mark, sizeof mark, "%s/mark", kept);
    cr_assert_eq(unlink(mark), 0);
    cr_assert_eq(rmdir(kept), 0);
    cbx_result_clear(&res);

    /* without KEEP a failure removes it too */
    cbx_runtime_execute(
        rt, &(cbx_request){.executor = "probe", .params = params, .tmpdir = CBX_TMPDIR_MAKE}, &res,
        NULL);
    cr_assert_eq(res.status, CBX_STATUS_FAILED);
    cr_assert_null(json_object_get(res.metadata, "tmpdir"));
    cr_assert(!is_dir(json_string_value(json_object_get(res.outputs, "tmpdir"))));
    cbx_result_clear(&res);
    json_decref(params);
}

Test(exec_context, fallback_function_resolved_or_refused)
{
    cbx_err err;
    cbx_policy *p = NULL;
    json_t *block = json_pack("{s:{s:s}}", "fallback", "function", "degrade");
    cr_assert_eq(cbx_policy_new_json(&p, block, NULL, &err), 0, "%s", err.msg);
    json_decref(block);
    json_t *params = json_pack("{s:b}", "fail", 1);
    cbx_result res;
    cr_assert_eq(
        cbx_runtime_execute(rt, &(cbx_request){.executor = "probe", .params = params, .policy = p},
                            &res, NULL),
        0, "%s", res.error);
    cr_assert(res.fallback_used);
    cr_assert_str_eq(json_string_value(json_object_get(res.outputs, "degraded")), "yes");
    cr_assert(json_is_true(json_object_get(json_object_get(res.outputs, "input"), "fail")),
              "the function got the failed call's parameters");
    cbx_result_clear(&res);
    cbx_policy_free(p);

    block = json_pack("{s:{s:s, s:i}}", "fallback", "function", "nothing_here", "value", 1);
    cr_assert_eq(cbx_policy_new_json(&p, block, NULL, &err), 0, "%s", err.msg);
    json_decref(block);
    int rc = cbx_runtime_execute(
        rt, &(cbx_request){.executor = "probe", .params = params, .policy = p}, &res, NULL);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_eq(res.status, CBX_STATUS_REJECTED);
    cr_assert(strstr(res.error, "fallback.function") && strstr(res.error, "nothing_here"), "%s",
              res.error);
    cbx_result_clear(&res);
    cbx_policy_free(p);
    json_decref(params);
}
