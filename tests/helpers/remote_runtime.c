/* remote_runtime URL TYPE PARAMS_JSON [POLICY_JSON]: a runtime created with a remote backend
 * (cbx_runtime_opts.remote, on URL's default queue) runs one request for TYPE with PARAMS_JSON
 * (under POLICY_JSON, a policy block, when given) and prints its result as cbx_result_to_json
 * gives it, one line. Exit 0 when it succeeded, 1 when it did not, 2 on bad arguments. */
#include "cbx/policy.h"
#include "cbx/runtime.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *result;

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    (void)ud;
    result = cbx_result_to_json(res);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: remote_runtime URL TYPE PARAMS_JSON [POLICY_JSON]\n");
        return 2;
    }
    json_error_t je;
    json_t *params = json_loads(argv[3], 0, &je);
    json_t *block = argc == 5 ? json_loads(argv[4], 0, &je) : NULL;
    if (!json_is_object(params) || (argc == 5 && !json_is_object(block))) {
        fprintf(stderr, "remote_runtime: not a JSON object: %s\n", je.text);
        return 2;
    }
    cbx_err err;
    cbx_err_clear(&err);
    cbx_policy *policy = NULL;
    if (block && cbx_policy_new_json(&policy, block, NULL, &err) < 0) {
        fprintf(stderr, "remote_runtime: policy: %s\n", err.msg);
        return 2;
    }
    cbx_runtime_opts o = {.remote = 1, .remote_url = argv[1]};
    cbx_runtime *rt = NULL;
    if (cbx_runtime_new(&rt, &o, &err) < 0) {
        fprintf(stderr, "remote_runtime: %s\n", err.msg);
        return 2;
    }
    cbx_request req = {.executor = argv[2], .params = params, .policy = policy, .on_done = on_done};
    cbx_runtime_submit(rt, &req, NULL, NULL); /* a refusal reaches on_done too */
    cbx_runtime_run(rt);
    cbx_runtime_free(rt);
    cbx_policy_free(policy);
    json_decref(params);
    json_decref(block);
    char *text = result ? json_dumps(result, JSON_COMPACT) : NULL;
    printf("%s\n", text ? text : "null");
    const char *status = json_string_value(json_object_get(result, "status"));
    int ok = status && strcmp(status, "success") == 0;
    free(text);
    json_decref(result);
    return ok ? 0 : 1;
}
