/* cbx exec --remote URL: the execution queued for the workers on NATS JetStream, its result
 * awaited and printed as a local one's (cbx/dist.h). */
#include "exec_cli.h"

#include "cbx/dist.h"

#include <stdio.h>
#include <string.h>

/* The options that only make sense where the work runs on this host, and why. */
static const char *local_only(const exec_cfg *c)
{
    if (c->each)
        return "--each";
    if (c->repeat > 1)
        return "--repeat";
    if (c->breaker)
        return "--breaker (a host's breaker; put a breaker in the policy instead)";
    if (c->rate_key)
        return "--rate-key";
    if (c->tmpdir)
        return "--tmpdir";
    if (c->journal_required)
        return "--journal-required (the worker journals the execution)";
    return NULL;
}

int exec_remote(exec_cfg *c, json_t *params)
{
    const char *bad = local_only(c);
    if (bad) {
        cli_err("exec: --remote: %s cannot be used with it", bad);
        return CLI_EXIT_USAGE;
    }
    if (c->cmd) {
        if (json_object_get(params, "argv")) {
            cli_err("exec: -p argv: the command after -- is the argv");
            return CLI_EXIT_USAGE;
        }
        json_t *av = json_array();
        for (int i = 0; i < c->ncmd; i++) {
            json_t *arg = json_string(c->cmd[i]);
            if (!arg) {
                cli_err("exec: argument %d of the command is not UTF-8 text", i);
                json_decref(av);
                return CLI_EXIT_USAGE;
            }
            json_array_append_new(av, arg);
        }
        json_object_set_new(params, "argv", av);
    }
    json_t *block = NULL;
    int code = exec_policy_block(c, &block);
    if (code)
        return code;
    cbx_remote_job job = {
        .executor = c->type,
        .params = params,
        .policy = json_object_size(block) ? block : NULL,
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
    cbx_result res;
    if (cbx_result_from_json(res_json, &res, &err) < 0) {
        cli_err("exec: --remote: the worker's answer: %s", err.msg);
        json_decref(res_json);
        return CLI_EXIT_FAILED;
    }
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
        code = exec_finish_one(c, &res);
    }
    cbx_result_clear(&res);
    json_decref(res_json);
    return code;
}
