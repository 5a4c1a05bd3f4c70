/* The nats executor type: its schema, checks and run.
 *
 * One attempt is one NATS operation - a core publish, a request/reply, a JetStream publish with
 * its acknowledgement, or a key-value get/put/create/update/delete - run on the thread pool with
 * a connection the runtime's attempts share (nats_pool.c). Outcomes: SUCCESS; TIMEOUT when no
 * reply, acknowledgement or answer came within the wait (timeout_ms, else the attempt's
 * deadline, else 5 s); ERROR for everything else, a lost compare-and-set with metadata.conflict.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executors/nats/nats_internal.h"

#define DEFAULT_URL     "nats://127.0.0.1:4222"
#define DEFAULT_WAIT_MS 5000
#define CONNECT_MS      2000

static const char *const nats_ops[] = {
    "publish",   "request",   "js_publish",     "kv_get",       "kv_put",          "kv_create",
    "kv_update", "kv_delete", "workflow_start", "workflow_get", "workflow_signal", NULL};

static const cbx_param nats_params[] = {
    {.name = "operation",
     .type = CBX_PARAM_STRING,
     .default_json = "\"publish\"",
     .enum_values = nats_ops,
     .description = "what to do: publish, request, js_publish, kv_get, kv_put, kv_create, "
                    "kv_update, kv_delete, workflow_start, workflow_get or workflow_signal"},
    {.name = "url",
     .type = CBX_PARAM_STRING,
     .description = "the server, or a comma-separated list; default $NATS_URL, else "
                    "nats://127.0.0.1:4222"},
    {.name = "token", .type = CBX_PARAM_STRING, .secret = 1, .description = "an auth token"},
    {.name = "user", .type = CBX_PARAM_STRING, .description = "a user name"},
    {.name = "password",
     .type = CBX_PARAM_STRING,
     .secret = 1,
     .description = "the user's password"},
    {.name = "tls",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "false",
     .description = "require TLS (tls:// URLs imply it)"},
    {.name = "ca_file",
     .type = CBX_PARAM_STRING,
     .description = "a PEM file of CA certificates to verify the server with"},
    {.name = "creds_file",
     .type = CBX_PARAM_STRING,
     .description = "a .creds file (the user's JWT and NKey seed); default $NATS_CREDS"},
    {.name = "cert_file",
     .type = CBX_PARAM_STRING,
     .description = "a client certificate (PEM chain) for TLS; default $NATS_CERT"},
    {.name = "key_file",
     .type = CBX_PARAM_STRING,
     .description = "the client certificate's private key (PEM); default $NATS_KEY"},
    {.name = "subject",
     .type = CBX_PARAM_STRING,
     .description = "the subject to publish or send the request to (publish, request, "
                    "js_publish)"},
    {.name = "data",
     .type = CBX_PARAM_ANY,
     .description = "the payload: a string as is, any other JSON value as compact JSON"},
    {.name = "headers",
     .type = CBX_PARAM_OBJECT,
     .description = "message headers: name to string value"},
    {.name = "reply_to",
     .type = CBX_PARAM_STRING,
     .description = "a reply subject sent with the message (publish)"},
    {.name = "flush",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "true",
     .description = "wait until the server has the message (publish)"},
    {.name = "timeout_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "how long to wait for a reply or acknowledgement, ms; 0 = the attempt's "
                    "deadline, else 5000"},
    {.name = "msg_id",
     .type = CBX_PARAM_STRING,
     .description = "a message id the stream de-duplicates on (js_publish)"},
    {.name = "expect_stream",
     .type = CBX_PARAM_STRING,
     .description = "fail unless this stream stores the message (js_publish)"},
    {.name = "expect_last_sequence",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 0,
     .description = "fail unless the stream's last sequence is this (js_publish)"},
    {.name = "bucket", .type = CBX_PARAM_STRING, .description = "the key-value bucket (kv_*)"},
    {.name = "key", .type = CBX_PARAM_STRING, .description = "the key (kv_*)"},
    {.name = "value",
     .type = CBX_PARAM_ANY,
     .description = "the value to store: a string as is, other JSON as compact JSON (kv_put, "
                    "kv_create, kv_update)"},
    {.name = "revision",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 0,
     .description = "the revision the key must be at for kv_update to apply (compare-and-set)"},
    {.name = "petri_net",
     .type = CBX_PARAM_ANY,
     .description = "the workflow (docs/workflows.md): its YAML text, or the same as an object "
                    "(workflow_start)"},
    {.name = "workflow_id",
     .type = CBX_PARAM_STRING,
     .description = "the workflow's key in the bucket CBX_WORKFLOWS: 1 to 39 letters, digits, "
                    "- or _ (workflow_*)"},
    {.name = "tokens",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_OBJECT,
     .description = "the first tokens' data, objects, ids t1, t2, ... (workflow_start)"},
    {.name = "place",
     .type = CBX_PARAM_STRING,
     .description = "where the tokens start; default the first start place (workflow_start)"},
    {.name = "token_id",
     .type = CBX_PARAM_STRING,
     .description = "the token to signal (workflow_signal)"},
    {.name = "signal",
     .type = CBX_PARAM_STRING,
     .description = "the signal's name; data is its data (workflow_signal)"},
    {0},
};

/* Which operations each operation-specific parameter applies to ("" ends a list). */
static const struct {
    const char *param;
    const char *ops; /* space-separated */
} applies[] = {
    {"subject", "publish request js_publish"},
    {"data", "publish request js_publish workflow_signal"},
    {"headers", "publish request js_publish"},
    {"reply_to", "publish"},
    {"msg_id", "js_publish"},
    {"expect_stream", "js_publish"},
    {"expect_last_sequence", "js_publish"},
    {"bucket", "kv_get kv_put kv_create kv_update kv_delete"},
    {"key", "kv_get kv_put kv_create kv_update kv_delete"},
    {"value", "kv_put kv_create kv_update"},
    {"revision", "kv_update"},
    {"petri_net", "workflow_start"},
    {"workflow_id", "workflow_start workflow_get workflow_signal"},
    {"tokens", "workflow_start"},
    {"place", "workflow_start"},
    {"token_id", "workflow_signal"},
    {"signal", "workflow_signal"},
};

static int op_in(const char *op, const char *list)
{
    size_t n = strlen(op);
    for (const char *p = list; (p = strstr(p, op)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

static int needs(const char *op, const char *param)
{
    if (strcmp(param, "subject") == 0)
        return op_in(op, "publish request js_publish");
    if (strcmp(param, "bucket") == 0 || strcmp(param, "key") == 0)
        return strncmp(op, "kv_", 3) == 0;
    if (strcmp(param, "value") == 0)
        return op_in(op, "kv_put kv_create kv_update");
    if (strcmp(param, "revision") == 0)
        return strcmp(op, "kv_update") == 0;
    if (strcmp(param, "petri_net") == 0)
        return strcmp(op, "workflow_start") == 0;
    if (strcmp(param, "workflow_id") == 0)
        return strncmp(op, "workflow_", 9) == 0;
    if (strcmp(param, "token_id") == 0 || strcmp(param, "signal") == 0)
        return strcmp(op, "workflow_signal") == 0;
    return 0;
}

__attribute__((format(printf, 3, 4))) static void add(cbx_err *err, int *bad, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t used = strlen(err->msg);
    snprintf(err->msg + used, sizeof err->msg - used, "%s%s", used ? "; " : "", line);
    *bad = 1;
}

/* A subject to publish to: tokens of printable characters without spaces, separated by single
 * dots; no wildcard tokens. */
static const char *subject_problem(const char *s)
{
    if (!*s)
        return "is empty";
    for (const char *p = s; *p; p++) {
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return "contains white space";
        if (*p == '.' && (p == s || p[1] == '.' || p[1] == '\0'))
            return "has an empty token";
        if ((*p == '*' || *p == '>') && (p == s || p[-1] == '.') && (p[1] == '.' || !p[1]))
            return "has a wildcard (one can only subscribe to those)";
    }
    return NULL;
}

static int key_ok(const char *k)
{
    if (!*k || *k == '.' || k[strlen(k) - 1] == '.')
        return 0;
    for (; *k; k++)
        if (!isalnum((unsigned char)*k) && !strchr("-/_=.", *k))
            return 0;
    return 1;
}

static int bucket_ok(const char *b)
{
    if (!*b)
        return 0;
    for (; *b; b++)
        if (!isalnum((unsigned char)*b) && *b != '-' && *b != '_')
            return 0;
    return 1;
}

static int nats_validate(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    (void)type;
    const char *op = json_string_value(json_object_get(params, "operation"));
    int bad = 0;
    err->msg[0] = '\0';
    for (size_t i = 0; i < sizeof applies / sizeof applies[0]; i++) {
        const json_t *v = json_object_get(params, applies[i].param);
        if (v && !op_in(op, applies[i].ops))
            add(err, &bad, "parameter '%s' does not apply to operation %s", applies[i].param, op);
        else if (!v && needs(op, applies[i].param))
            add(err, &bad, "parameter '%s' is required by operation %s", applies[i].param, op);
    }
    const char *subject = json_string_value(json_object_get(params, "subject"));
    const char *why = subject ? subject_problem(subject) : NULL;
    if (why)
        add(err, &bad, "parameter 'subject': \"%s\" %s", subject, why);
    const char *key = json_string_value(json_object_get(params, "key"));
    if (key && !key_ok(key))
        add(err, &bad,
            "parameter 'key': \"%s\" is not a valid key (letters, digits and -/_=. ; no leading "
            "or trailing dot)",
            key);
    const char *bucket = json_string_value(json_object_get(params, "bucket"));
    if (bucket && !bucket_ok(bucket))
        add(err, &bad,
            "parameter 'bucket': \"%s\" is not a valid bucket name (letters, digits, "
            "- and _)",
            bucket);
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(params, "headers"), name,
                        v) if (!json_is_string(v))
        add(err, &bad, "parameter 'headers': header '%s' must be a string", name);
    if (bad) {
        err->code = CBX_EINVAL_CONFIG;
        return CBX_EINVAL_CONFIG;
    }
    return 0;
}

/* How long to wait: timeout_ms, bounded by what is left of the attempt. */
static int64_t wait_ms(cbx_task *t, const json_t *params)
{
    int64_t want = (int64_t)json_integer_value(json_object_get(params, "timeout_ms"));
    uint64_t deadline = cbx_task_deadline_ns(t);
    if (deadline == UINT64_MAX)
        return want > 0 ? want : DEFAULT_WAIT_MS;
    uint64_t now = cbx_clock_now_ns(cbx_task_clock(t));
    int64_t left = deadline > now ? (int64_t)((deadline - now) / 1000000u) : 0;
    if (left < 1)
        left = 1;
    return want > 0 && want < left ? want : left;
}

static cbx_outcome nats_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    if (cbx__nats_load(err) < 0)
        return CBX_OUTCOME_ERROR;
    const json_t *params = cbx_task_params(t);
    const char *url = json_string_value(json_object_get(params, "url"));
    if (!url || !*url)
        url = getenv("NATS_URL");
    if (!url || !*url)
        url = DEFAULT_URL;
    int64_t wait = wait_ms(t, params);
    natsConnection *nc = NULL;
    if (cbx__nats_pool_get(cbx_task_loop_state(t), url, params,
                           wait < CONNECT_MS ? wait : CONNECT_MS, &nc, err) < 0)
        return CBX_OUTCOME_ERROR;
    cbx__nats_result r = cbx__nats_run_op(t, nc, params, wait, err);
    *outputs = r.outputs;
    *metadata = r.metadata;
    return r.outcome;
}

static int nats_loop_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err)
{
    (void)type;
    (void)loop;
    if (cbx__nats_pool_open((cbx__nats_pool **)state) < 0)
        return cbx_err_set(err, -ENOMEM, "nats: out of memory");
    return 0;
}

static void nats_loop_close(const cbx_executor_type *type, void *loop, void *state)
{
    (void)type;
    (void)loop;
    cbx__nats_pool_close(state);
}

static const cbx_executor_type nats_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "nats",
    .summary = "publish, request/reply, JetStream publish and key-value operations on NATS",
    .params = nats_params,
    .validate = nats_validate,
    .run = nats_run,
    .loop_init = nats_loop_init,
    .loop_close = nats_loop_close,
};

const cbx_executor_type *cbx__nats_type(void)
{
    return &nats_type;
}
