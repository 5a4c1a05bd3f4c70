/* cbx exec --remote URL: the execution queued for the workers on NATS JetStream, its result
 * awaited and printed as a local one's (cbx/dist.h). */
#include "exec_cli.h"

#include "cbx/dist.h"
#include "cbx/journal.h"
#include "cbx/registry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The options that only make sense where the work runs on this host, and why. */
static const char *local_only(const exec_cfg *c)
{
    if (c->each)
        return "--each";
    if (c->repeat > 1)
        return "--repeat";
    if (c->rate_key)
        return "--rate-key";
    if (c->tmpdir)
        return "--tmpdir";
    if (c->journal_required)
        return "--journal-required (the worker journals the execution)";
    return NULL;
}

/* The worker's result in this host's journal, as if it had run here: the execution (its
 * parameters with the type's secrets hidden, when this host knows the type), every attempt, and
 * its end, tagged with the worker's name. */
static void journal_remote(const cbx_registry *reg, const json_t *params, const cbx_result *r,
                           const json_t *res_json)
{
    cbx_journal *j = NULL;
    if (cli_journal_open("exec", 0, &j))
        return;
    const cbx_executor_type *type = reg ? cbx_registry_find(reg, r->executor) : NULL;
    json_t *shown = type ? cbx_schema_redact(type->params, params) : json_incref((json_t *)params);
    const char *worker = json_string_value(json_object_get(res_json, "worker"));
    char tag[160];
    snprintf(tag, sizeof tag, "worker %s", worker ? worker : "?");
    cbx_err err;
    cbx_err_clear(&err);
    cbx_journal_execution e = {
        .id = r->id,
        .executor = r->executor,
        .params = shown,
        .tag = tag,
        .submitted_ms = r->submitted_ms,
    };
    int rc = cbx_journal_execution_start(j, &e, &err);
    size_t i;
    json_t *a;
    json_array_foreach(r->attempts, i, a)
    {
        if (rc)
            break;
        cbx_journal_attempt_info ai = {
            .execution_id = r->id,
            .number = (uint32_t)json_integer_value(json_object_get(a, "number")),
            .outcome = json_string_value(json_object_get(a, "outcome")),
            .started_ms = (uint64_t)json_integer_value(json_object_get(a, "started_ms")),
            .duration_ns = (uint64_t)(json_number_value(json_object_get(a, "duration_ms")) * 1e6),
            .error = json_string_value(json_object_get(a, "error")),
            .metadata = json_object_get(a, "metadata"),
        };
        rc = cbx_journal_attempt(j, &ai, &err);
    }
    cbx_journal_end end = {
        .execution_id = r->id,
        .status = cbx_status_name(r->status),
        .rc = r->rc,
        .fallback_used = r->fallback_used,
        .attempts = r->attempt_count,
        .outputs = r->outputs,
        .error = r->error[0] ? r->error : NULL,
        .ended_ms = r->submitted_ms + (r->queued_ns + r->duration_ns) / 1000000u,
        .duration_ns = r->duration_ns,
    };
    if (!rc)
        rc = cbx_journal_execution_end(j, &end, &err);
    if (rc)
        cli_err("exec: --remote: journal: %s", err.msg[0] ? err.msg : cbx_strerror(rc));
    json_decref(shown);
    cli_journal_finish("exec", j);
    cbx_journal_close(j);
}

/* The worker's result as a local one's: journaled here (unless --no-journal), printed, and its
 * exit code. Takes res_json. */
static int show_result(exec_cfg *c, cli_ctx *ctx, const cbx_registry *reg, const json_t *params,
                       json_t *res_json)
{
    int code;
    cbx_err err;
    cbx_err_clear(&err);
    cbx_result res;
    if (cbx_result_from_json(res_json, &res, &err) < 0) {
        cli_err("exec: --remote: the worker's answer: %s", err.msg);
        json_decref(res_json);
        return CLI_EXIT_FAILED;
    }
    if (!ctx->no_journal)
        journal_remote(reg, params, &res, res_json);
    if (c->verbose)
        cli_err("exec: ran on worker %s as %s",
                json_string_value(json_object_get(res_json, "worker")),
                json_string_value(json_object_get(res_json, "worker_execution_id")));
    if (c->json) {
        cli_print_json(stdout, res_json); /* with the worker's id, which a cbx_result lacks */
        code = cli_exec_result_code(&res, c->cmd != NULL);
        if (res.status != CBX_STATUS_SUCCESS && !res.fallback_used && !c->quiet)
            cli_err("exec: %s: %s", res.executor, res.error);
    } else {
        code = exec_finish_one(c, &res, NULL);
    }
    cbx_result_clear(&res);
    json_decref(res_json);
    return code;
}

int exec_remote(exec_cfg *c, cli_ctx *ctx, const cbx_registry *reg, json_t *params)
{
    const char *bad = local_only(c);
    if (bad) {
        cli_err("exec: --remote: %s cannot be used with it", bad);
        return CLI_EXIT_USAGE;
    }
    json_t *block = NULL;
    int code = exec_policy_block(c, &block);
    if (code)
        return code;
    cbx_remote_job job = {
        .executor = c->type,
        .params = params,
        .policy = json_object_size(block) ? block : NULL,
        .breaker = c->breaker, /* the worker's store: the cluster's with CBX_BREAKER_STORE */
    };
    json_t *res_json = NULL;
    char id[40] = "";
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_remote_execute(c->remote, c->remote_queue, &job, c->remote_wait_ns, &res_json, id,
                               &err);
    json_decref(block);
    if (r == CBX_ETIMEDOUT) {
        cli_err("exec: --remote: %s", err.msg);
        return CLI_EXIT_TIMEOUT;
    }
    if (r) {
        cli_err("exec: --remote: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        return r == CBX_EINVAL_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    }
    return show_result(c, ctx, reg, params, res_json);
}

int exec_remote_result(exec_cfg *c, cli_ctx *ctx, const cbx_registry *reg)
{
    json_t *res_json = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_remote_result(c->remote, c->remote_result, c->remote_wait_ns, &res_json, &err);
    if (r == CBX_ETIMEDOUT) {
        cli_err("exec: --remote-result: %s", err.msg);
        return CLI_EXIT_TIMEOUT;
    }
    if (r) {
        cli_err("exec: --remote-result: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        return r == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    }
    /* a command's job prints as `cbx exec -- CMD` would: its output as it was, its exit code */
    static char *queued_cmd[] = {"", NULL};
    if (!c->cmd && json_is_string(json_object_get(res_json, "executor")) &&
        strcmp(json_string_value(json_object_get(res_json, "executor")), "command") == 0) {
        c->cmd = queued_cmd;
        c->ncmd = 1;
    }
    json_t *none = json_object(); /* the parameters went with the job; the result has none */
    int code = show_result(c, ctx, reg, none, res_json);
    json_decref(none);
    return code;
}
