/* The remote executor: an execution handed to the workers on NATS JetStream (cbx/dist.h) and
 * waited for, so that a flow step or a workflow action runs on the pool like any other executor.
 *
 * One attempt is one job: the step's executor, params and policy travel to a worker, which runs
 * them under that policy (its own retries, timeout, breaker); the attempt waits for the result on
 * a pool thread, no longer than its deadline. Outcomes follow the worker's result: SUCCESS (also
 * when its fallback answered), TIMEOUT for a timed-out execution or no result in time, ERROR for
 * the rest with the worker's error line. Outputs are the worker's outputs; the metadata names the
 * worker and the ids on both sides.
 */
#include <stdlib.h>
#include <string.h>

#include "cbx/dist.h"
#include "cbx/runtime.h"
#include "executors/builtins.h"

static const cbx_param remote_params[] = {
    {.name = "executor",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .has_min = 1,
     .min = 1,
     .description = "the executor type the worker runs"},
    {.name = "params",
     .type = CBX_PARAM_OBJECT,
     .default_json = "{}",
     .description = "its parameters"},
    {.name = "policy",
     .type = CBX_PARAM_OBJECT,
     .description = "the policy block the worker runs it under (docs/policy.md)"},
    {.name = "url",
     .type = CBX_PARAM_STRING,
     .description = "the NATS server(s); default $NATS_URL, else nats://127.0.0.1:4222"},
    {.name = "queue",
     .type = CBX_PARAM_STRING,
     .default_json = "\"default\"",
     .description = "the workers' queue"},
    {.name = "wait_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "how long to wait for the result, ms; 0 = the attempt's deadline, else for "
                    "ever"},
    {0},
};

static int stop_asked(void *ud)
{
    return cbx_task_cancelled(ud);
}

static cbx_outcome remote_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    const json_t *p = cbx_task_params(t);
    cbx_remote_job job = {
        .executor = json_string_value(json_object_get(p, "executor")),
        .params = json_object_get(p, "params"),
        .policy = json_object_get(p, "policy"),
        .stop = stop_asked,
        .stop_ud = t,
    };
    uint64_t wait_ns = (uint64_t)json_integer_value(json_object_get(p, "wait_ms")) * 1000000u;
    uint64_t deadline = cbx_task_deadline_ns(t);
    if (deadline != UINT64_MAX) {
        uint64_t now = cbx_clock_now_ns(cbx_task_clock(t));
        uint64_t left = deadline > now ? deadline - now : 1;
        if (!wait_ns || left < wait_ns)
            wait_ns = left;
    }
    json_t *res = NULL;
    char id[40] = "";
    int rc = cbx_remote_execute(json_string_value(json_object_get(p, "url")),
                                json_string_value(json_object_get(p, "queue")), &job, wait_ns, &res,
                                id, err);
    if (rc == CBX_ETIMEDOUT)
        return CBX_OUTCOME_TIMEOUT;
    if (rc)
        return CBX_OUTCOME_ERROR; /* a cancel is recorded as such by the runtime */
    const char *status = json_string_value(json_object_get(res, "status"));
    int fallback = json_is_true(json_object_get(res, "fallback_used"));
    json_t *out = json_object_get(res, "outputs");
    *outputs = out && !json_is_null(out) ? json_incref(out) : json_object();
    *metadata = json_pack(
        "{s:s, s:O?, s:O?, s:O?, s:O?}", "remote_id", id, "worker", json_object_get(res, "worker"),
        "worker_execution_id", json_object_get(res, "worker_execution_id"), "status",
        json_object_get(res, "status"), "attempts", json_object_get(res, "attempt_count"));
    cbx_outcome k = CBX_OUTCOME_ERROR;
    if ((status && strcmp(status, "success") == 0) || fallback)
        k = CBX_OUTCOME_SUCCESS;
    else if (status && strcmp(status, "timeout") == 0)
        k = CBX_OUTCOME_TIMEOUT;
    if (k != CBX_OUTCOME_SUCCESS) {
        const char *why = json_string_value(json_object_get(res, "error"));
        cbx_err_set(err, k == CBX_OUTCOME_TIMEOUT ? CBX_ETIMEDOUT : CBX_EFAILED, "on worker %s: %s",
                    json_string_value(json_object_get(res, "worker")),
                    why && *why ? why
                    : status    ? status
                                : "no status");
    }
    json_decref(res);
    return k;
}

static const cbx_executor_type remote_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "remote",
    .summary = "run an execution on a cbx worker over NATS JetStream and wait for its result",
    .params = remote_params,
    .run = remote_run,
};

const cbx_executor_type *cbx__remote_type(void)
{
    return &remote_type;
}
