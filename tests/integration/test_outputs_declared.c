/* The built-in types' output declarations (cbx_output) tell the truth: each type is run through
 * the cases that shape its outputs (real processes, a real HTTP server on loopback), and every
 * outputs object is held against the declaration - every key declared, of its type (null only
 * where nullable), every key that is not optional present - and every declared key is seen in
 * some case. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "cbx/executor.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"

#include "http_server_spawn.h"

static cbx_runtime *rt;
static pid_t server_pid = -1;
static char base[64];

static void setup(void)
{
    cbx_err err;
    cbx_runtime_opts o = {.max_concurrent = 4};
    cr_assert_eq(cbx_runtime_new(&rt, &o, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
}

TestSuite(outputs_declared, .init = setup, .fini = teardown, .timeout = 240);

static int is_type(const json_t *v, cbx_param_type t)
{
    switch (t) {
    case CBX_PARAM_STRING:
        return json_is_string(v);
    case CBX_PARAM_INTEGER:
        return json_is_integer(v);
    case CBX_PARAM_NUMBER:
        return json_is_number(v);
    case CBX_PARAM_BOOLEAN:
        return json_is_boolean(v);
    case CBX_PARAM_ARRAY:
        return json_is_array(v);
    case CBX_PARAM_OBJECT:
        return json_is_object(v);
    default:
        return 1;
    }
}

/* Run type with params (JSON text), hold its outputs against the declaration, and mark the keys
 * seen in seen (an object). want_outcome: the last attempt's outcome. */
static void check(const char *type, const char *params, const char *want_outcome, json_t *seen)
{
    const cbx_output *decl =
        cbx_executor_type_outputs(cbx_registry_find(cbx_runtime_registry(rt), type));
    cr_assert_not_null(decl, "%s declares no outputs", type);
    json_error_t je;
    json_t *p = json_loads(params, 0, &je);
    cr_assert_not_null(p, "%s: %s", params, je.text);
    cbx_result r;
    cbx_diag d = {0};
    cbx_runtime_execute(rt, &(cbx_request){.executor = type, .params = p}, &r, &d);
    json_decref(p);
    cbx_diag_clear(&d);
    size_t na = json_array_size(r.attempts);
    const char *oc =
        json_string_value(json_object_get(json_array_get(r.attempts, na ? na - 1 : 0), "outcome"));
    if (want_outcome) /* NULL: any */
        cr_assert_str_eq(oc ? oc : "", want_outcome, "%s %s: %s", type, params, r.error);
    cr_assert(json_is_object(r.outputs), "%s %s: no outputs (%s)", type, params, r.error);
    const char *k;
    json_t *v;
    json_object_foreach(r.outputs, k, v)
    {
        const cbx_output *o = cbx_output_find(decl, k);
        cr_assert_not_null(o, "%s %s: output '%s' is not declared", type, params, k);
        cr_assert(is_type(v, o->type) || (json_is_null(v) && o->nullable),
                  "%s %s: output '%s' is not %s%s", type, params, k, cbx_param_type_name(o->type),
                  o->nullable ? " or null" : "");
        json_object_set_new(seen, k, json_true());
    }
    for (const cbx_output *o = decl; o->name; o++)
        cr_assert(o->optional || json_object_get(r.outputs, o->name),
                  "%s %s: declared output '%s' is missing", type, params, o->name);
    cbx_result_clear(&r);
}

static void all_seen(const char *type, const json_t *seen)
{
    const cbx_output *decl =
        cbx_executor_type_outputs(cbx_registry_find(cbx_runtime_registry(rt), type));
    for (const cbx_output *o = decl; o && o->name; o++)
        cr_assert(json_object_get(seen, o->name), "%s: declared output '%s' never produced", type,
                  o->name);
}

Test(outputs_declared, command)
{
    json_t *seen = json_object();
    check("command", "{\"argv\": [\"echo\", \"hi\"]}", "success", seen);
    check("command", "{\"argv\": [\"sh\", \"-c\", \"echo oops >&2; exit 3\"]}", "error", seen);
    /* a SIGKILL nobody here sent: oom without a memory cgroup to ask, else error */
    check("command", "{\"argv\": [\"sh\", \"-c\", \"kill -9 $$\"]}", NULL, seen);
    check("command", "{\"argv\": [\"sh\", \"-c\", \"kill -TERM $$\"]}", "error", seen);
    check("command", "{\"argv\": [\"echo\", \"{\\\"a\\\": [1]}\"], \"parse_json\": true}",
          "success", seen);
    check("command", "{\"argv\": [\"echo\", \"not json\"], \"parse_json\": true}", "error", seen);
    check("command", "{\"argv\": [\"echo\", \"on a terminal\"], \"pty\": true}", "success", seen);
    check("command", "{\"command\": \"cat\", \"shell\": true, \"stdin\": \"x\"}", "success", seen);
    all_seen("command", seen);
    json_decref(seen);
}

Test(outputs_declared, http)
{
    char why[256];
    int port =
        cbx_test_http_server_spawn(CBX_TEST_BIN_DIR "/http_server", &server_pid, why, sizeof why);
    cr_assert_gt(port, 0, "%s", why);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    json_t *seen = json_object();
    char p[512];
    const struct {
        const char *path, *extra, *outcome;
    } cases[] = {
        {"/ok", "", "success"},
        {"/bytes?n=10", "", "success"},
        {"/binary", "", "success"},
        {"/bytes?n=5000", ", \"max_body_bytes\": 100", "success"},
        {"/notjson", "", "success"},
        {"/status/404", "", "error"},
        {"/status/429?retry_after=none", "", "rate_limited"},
        {"/redirect?count=2", "", "success"},
        {"/graphql", ", \"graphql\": {\"query\": \"{ item(id: 1) { name } }\"}", "success"},
        {"/graphql", ", \"graphql\": {\"query\": \"{ fail }\"}", "error"},
        {"/echo", ", \"method\": \"POST\", \"json\": {\"a\": 1}", "success"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(p, sizeof p, "{\"url\": \"%s%s\"%s}", base, cases[i].path, cases[i].extra);
        check("http", p, cases[i].outcome, seen);
    }
    all_seen("http", seen);
    json_decref(seen);
}

/* What is not known before the run is not declared: a function's outputs are its own, chaos's
 * are its `outputs` parameter. */
Test(outputs_declared, undeclared_types)
{
    const cbx_registry *reg = cbx_runtime_registry(rt);
    const char *const none[] = {"function", "cached_function", "chaos"};
    for (size_t i = 0; i < 3; i++) {
        const cbx_executor_type *t = cbx_registry_find(reg, none[i]);
        cr_assert_not_null(t, "%s", none[i]);
        cr_assert_null(cbx_executor_type_outputs(t), "%s declares outputs", none[i]);
    }
}
