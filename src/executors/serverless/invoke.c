/* The serverless executor: an AWS Lambda function called through the Invoke API
 * (POST /2015-03-31/functions/NAME/invocations), signed with SigV4 by libcurl
 * (CURLOPT_AWS_SIGV4), through the http executor's curl multi glue on the loop.
 *
 * Any Lambda-compatible endpoint works (endpoint_url, AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL);
 * credentials come from the parameters or the usual AWS environment variables.
 *
 * Outcomes: SUCCESS for 200 (RequestResponse) without X-Amz-Function-Error, 202 (Event) and 204
 * (DryRun); ERROR for a function error (the function's error payload in the outputs) and for
 * any other status (ResourceNotFoundException: the function does not exist); RATE_LIMITED for
 * 429 (TooManyRequestsException), with its Retry-After; TIMEOUT when the transfer's own limit
 * ran out.
 *
 * With `function_dir`, the function runs on this machine instead: the local backend (local.h),
 * cbx hosting the Lambda Runtime API for its runtime processes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/base64.h"
#include "executors/aws_request.h"
#include "executors/builtins.h"
#include "executors/http.h"
#include "executors/serverless/local.h"

static const char *const invocation_types[] = {"RequestResponse", "Event", "DryRun", NULL};
static const char *const log_types[] = {"None", "Tail", NULL};

typedef struct lambda_task {
    cbx__http_xfer x; /* first: the transfer's on_end finds the task from it */
    cbx_task *t;
    cbx__http_loop *lp;
    json_t *http; /* the transfer's parameters (borrowed by it) */
    int began;
    cbx__aws_auth auth;
    char url[1024];
    cbx__lambda_inv local; /* with function_dir */
} lambda_task;

/* The loop's state: curl's (for the Invoke API) and the local backend's pool (made on its first
 * invocation). */
typedef struct lambda_loop {
    cbx__http_loop *http;
    cbx__lambda_pool *pool;
} lambda_loop;

static const char *str(const json_t *p, const char *k)
{
    return json_string_value(json_object_get(p, k));
}

/* The payload's bytes: a string must be JSON text already (Lambda takes JSON), any other value is
 * encoded. malloc'd; NULL when a string is not JSON (or out of memory). */
static char *payload_text(const json_t *v)
{
    if (!v)
        return strdup("{}");
    if (json_is_string(v)) {
        json_t *parsed = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
        if (!parsed)
            return NULL;
        json_decref(parsed);
        return strdup(json_string_value(v));
    }
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The text of base64 s (the function's log tail), as a JSON string: whole UTF-8 sequences only
 * (the tail may start or end mid-character). */
static json_t *b64_text(const char *s)
{
    unsigned char *out = NULL;
    size_t o = 0;
    if (cbx__base64_decode(s, &out, &o) < 0)
        return NULL;
    size_t start = 0;
    while (start < o && (out[start] & 0xc0) == 0x80)
        start++;
    json_t *j = json_stringn((const char *)out + start, o - start);
    for (size_t cut = o; !j && cut > start; cut--)
        j = json_stringn((const char *)out + start, cut - start - 1);
    free(out);
    return j ? j : json_string("");
}

static void finish(lambda_task *d, cbx_outcome k, json_t *out, json_t *meta, const char *msg)
{
    json_decref(d->http);
    d->http = NULL;
    d->x.phase = 3;
    if (d->began)
        cbx__http_loop_end(d->lp);
    if (msg && msg[0])
        cbx_task_done(d->t, k, out, meta, "%s", msg);
    else
        cbx_task_done(d->t, k, out, meta, NULL);
}

static long long retry_after_ms(const json_t *headers)
{
    const char *v = json_string_value(json_object_get(headers, "retry-after"));
    if (!v)
        return -1;
    char *end;
    long long s = strtoll(v, &end, 10);
    return end != v && s >= 0 ? s * 1000 : -1;
}

static void lambda_on_end(cbx__http_xfer *x)
{
    lambda_task *d = (lambda_task *)x;
    const json_t *p = cbx_task_params(d->t);
    const char *fn = str(p, "function_name");
    char msg[1400] = "";
    cbx_outcome k = CBX_OUTCOME_ERROR;
    json_t *out = NULL, *meta = NULL;
    long status = 0;
    if (x->start_rc < 0) {
        const char *why = x->start_msg ? x->start_msg : cbx_strerror(x->start_rc);
        snprintf(msg, sizeof msg, "%s%s", strncmp(why, "serverless: ", 12) ? "serverless: " : "",
                 why);
        free(x->start_msg);
        x->start_msg = NULL;
    } else if (x->cancelled) {
        snprintf(msg, sizeof msg, "serverless: %s stopped", fn);
    } else if (x->result != CURLE_OK) {
        k = x->result == CURLE_OPERATION_TIMEDOUT ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR;
        snprintf(msg, sizeof msg, "serverless: %s: %s (curl error %d)", d->url,
                 x->easy && x->easy->errbuf[0] ? x->easy->errbuf : curl_easy_strerror(x->result),
                 (int)x->result);
    } else {
        curl_easy_getinfo(x->easy->curl, CURLINFO_RESPONSE_CODE, &status);
        const cbx__http_response *r = &x->easy->resp;
        const json_t *h = r->headers;
        json_t *body = r->len ? json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL) : NULL;
        if (!body && r->len)
            body = json_stringn(r->body, r->len);
        const char *ferr = json_string_value(json_object_get(h, "x-amz-function-error"));
        const char *ver = json_string_value(json_object_get(h, "x-amz-executed-version"));
        const char *logs = json_string_value(json_object_get(h, "x-amz-log-result"));
        const char *rid = json_string_value(json_object_get(h, "x-amzn-requestid"));
        meta =
            json_pack("{s:s, s:i, s:s?}", "function", fn, "status", (int)status, "request_id", rid);
        if (status >= 200 && status < 300) {
            out = json_pack("{s:i, s:O?, s:s?}", "status_code", (int)status, "payload", body,
                            "executed_version", ver);
            if (logs)
                json_object_set_new(out, "log", b64_text(logs));
            if (ferr) {
                /* the function ran and failed: its error payload is the answer */
                json_object_set_new(out, "function_error", json_string(ferr));
                const char *type = json_string_value(json_object_get(body, "errorType"));
                const char *text = json_string_value(json_object_get(body, "errorMessage"));
                snprintf(msg, sizeof msg, "serverless: function %s failed (%s): %s%s%s", fn, ferr,
                         type ? type : "", type ? ": " : "", text ? text : "(no message)");
            } else {
                k = CBX_OUTCOME_SUCCESS;
            }
        } else {
            const char *type = json_string_value(json_object_get(body, "Type"));
            if (!type)
                type = json_string_value(json_object_get(h, "x-amzn-errortype"));
            const char *text = json_string_value(json_object_get(body, "Message"));
            if (!text)
                text = json_string_value(json_object_get(body, "message"));
            if (status == 429) {
                k = CBX_OUTCOME_RATE_LIMITED;
                long long ms = retry_after_ms(h);
                if (ms >= 0)
                    cbx_task_set_retry_after(d->t, (uint64_t)ms * 1000000u);
            }
            if (status == 404)
                snprintf(msg, sizeof msg, "serverless: function %s does not exist (HTTP 404%s%s)",
                         fn, type ? ", " : "", type ? type : "");
            else
                snprintf(msg, sizeof msg, "serverless: %s: HTTP %ld%s%s%s%s", fn, status,
                         type ? " " : "", type ? type : "", text ? ": " : "", text ? text : "");
            if (type)
                json_object_set_new(meta, "error_type", json_string(type));
        }
        json_decref(body);
    }
    int failed = x->start_rc < 0 || x->result != CURLE_OK || x->cancelled;
    if (x->easy) {
        cbx__http_request_release(x);
        cbx__http_easy_give(d->lp, x->easy, failed);
        x->easy = NULL;
    }
    finish(d, k, out, meta, msg);
}

/* The invocation URL: the endpoint, the function's name (escaped: ARNs have colons), the
 * qualifier. 0, or -ENAMETOOLONG. */
static int invocation_url(lambda_task *d, const json_t *p, const char *endpoint)
{
    char name[512];
    size_t o = 0;
    for (const char *s = str(p, "function_name"); *s && o + 4 < sizeof name; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-_.", c))
            name[o++] = (char)c;
        else
            o += (size_t)snprintf(name + o, sizeof name - o, "%%%02X", c);
    }
    name[o] = '\0';
    size_t el = strlen(endpoint);
    while (el && endpoint[el - 1] == '/')
        el--;
    const char *q = str(p, "qualifier");
    int n = snprintf(d->url, sizeof d->url, "%.*s/2015-03-31/functions/%s/invocations%s%s", (int)el,
                     endpoint, name, q ? "?Qualifier=" : "", q ? q : "");
    return n < 0 || (size_t)n >= sizeof d->url ? -ENAMETOOLONG : 0;
}

static int send_request(lambda_task *d, const json_t *p, cbx_err *err)
{
    char *body = payload_text(json_object_get(p, "payload"));
    if (!body)
        return cbx_err_set(err, -ENOMEM, "serverless: out of memory");
    d->http =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:s, s:b, s:I, s:I, s:b}", "url", d->url, "method",
                  "POST", "headers", "Content-Type", "application/json", "X-Amz-Invocation-Type",
                  str(p, "invocation_type"), "X-Amz-Log-Type", str(p, "log_type"), "body", body,
                  "parse_json", 0, "max_body_bytes", (json_int_t)8 << 20, "timeout_ms",
                  json_integer_value(json_object_get(p, "timeout_ms")), "follow_redirects", 0);
    free(body);
    if (!d->http)
        return cbx_err_set(err, -ENOMEM, "serverless: out of memory");
    json_t *headers = json_object_get(d->http, "headers");
    const json_t *ctx = json_object_get(p, "client_context");
    if (ctx) {
        /* base64 of the JSON, as the API wants it */
        char *c = json_dumps(ctx, JSON_COMPACT);
        char *b = c ? cbx__base64_encode(c, strlen(c)) : NULL;
        if (b)
            json_object_set_new(headers, "X-Amz-Client-Context", json_string(b));
        free(b);
        free(c);
    }
    return cbx__aws_send(&d->x, d->http, p, &d->auth, "serverless", err);
}

static int lambda_start(cbx_task *t)
{
    lambda_task *d = cbx_task_state(t);
    const json_t *p = cbx_task_params(t);
    lambda_loop *ll = cbx_task_loop_state(t);
    if (!ll)
        return -ENOMEM;
    if (json_object_get(p, "function_dir"))
        return cbx__lambda_local_start(t, &ll->pool, &d->local);
    int r = cbx__http_xfer_prepare_on(&d->x, t, ll->http, lambda_on_end);
    if (r < 0)
        return r;
    d->t = t;
    d->lp = d->x.lp;
    cbx__aws_auth_from(p, "lambda", &d->auth);
    if (cbx__http_loop_begin(d->lp) < 0)
        return -ENOMEM;
    d->began = 1;
    cbx_err err;
    cbx_err_clear(&err);
    char endpoint[512];
    cbx__aws_endpoint(p, "AWS_ENDPOINT_URL_LAMBDA", "lambda", d->auth.region, endpoint,
                      sizeof endpoint);
    if (!d->auth.have_keys)
        r = cbx__aws_no_keys_err(&d->auth, &err);
    else if (invocation_url(d, p, endpoint) < 0)
        r = cbx_err_set(&err, -ENAMETOOLONG, "the invocation URL is too long");
    else
        r = send_request(d, p, &err);
    if (r < 0)
        cbx__http_xfer_fail_start(&d->x, r, err.msg);
    return 0;
}

static void lambda_cancel(cbx_task *t)
{
    lambda_task *d = cbx_task_state(t);
    if (json_object_get(cbx_task_params(t), "function_dir"))
        cbx__lambda_cancel(&d->local);
    else
        cbx__http_xfer_cancel(&d->x);
}

static int lambda_loop_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err)
{
    lambda_loop *ll = calloc(1, sizeof *ll);
    if (!ll)
        return cbx_err_set(err, -ENOMEM, "%s: out of memory", type->name);
    void *http = NULL;
    int r = cbx__http_ctx_loop_init(type, loop, &http, err);
    if (r < 0) {
        free(ll);
        return r;
    }
    ll->http = http;
    *state = ll;
    return 0;
}

static void lambda_loop_close(const cbx_executor_type *type, void *loop, void *state)
{
    lambda_loop *ll = state;
    if (!ll)
        return;
    cbx__lambda_pool_free(ll->pool); /* every runtime's tree killed and reaped */
    cbx__http_ctx_loop_close(type, loop, ll->http);
    free(ll);
}

static int lambda_validate(const cbx_executor_type *type, const json_t *p, cbx_err *err)
{
    (void)type;
    const char *fn = str(p, "function_name");
    if (!fn && !json_object_get(p, "function_dir"))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "function_name", 0, 0,
                              "give function_name (a function to invoke) or function_dir (a "
                              "function to run here)");
    size_t n = fn ? strlen(fn) : 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:.$", fn[i]))
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "function_name", 0, 0,
                                  "\"%s\" is not a function name or "
                                  "ARN (letters, digits, - _ : . and $)",
                                  fn);
    const json_t *pl = json_object_get(p, "payload");
    if (json_is_string(pl)) {
        json_error_t je;
        json_t *parsed = json_loads(json_string_value(pl), JSON_DECODE_ANY, &je);
        if (!parsed)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "payload", 0, 0,
                                  "not JSON: %s (at column %d)", je.text, je.column);
        json_decref(parsed);
    }
    if (json_object_get(p, "function_dir"))
        return cbx__lambda_local_validate(p, err);
    return 0;
}

static const cbx_param lambda_params[] = {
    {.name = "function_name",
     .type = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 170,
     .description = "the function's name, or its ARN (required unless function_dir is given; "
                    "with it, the name the function sees, default the directory's)"},
    {.name = "payload",
     .type = CBX_PARAM_ANY,
     .description = "the event: any JSON value, or a string of JSON text; default {}"},
    {.name = "qualifier", .type = CBX_PARAM_STRING, .description = "a version or an alias"},
    {.name = "invocation_type",
     .type = CBX_PARAM_STRING,
     .default_json = "\"RequestResponse\"",
     .enum_values = invocation_types,
     .description = "RequestResponse (wait for the answer), Event (queue it) or DryRun"},
    {.name = "log_type",
     .type = CBX_PARAM_STRING,
     .default_json = "\"None\"",
     .enum_values = log_types,
     .description = "Tail: the last 4 KB of the function's log, decoded, in the outputs"},
    {.name = "client_context",
     .type = CBX_PARAM_OBJECT,
     .description = "passed to the function as its client context"},
    {.name = "region",
     .type = CBX_PARAM_STRING,
     .description = "default $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1"},
    {.name = "endpoint_url",
     .type = CBX_PARAM_STRING,
     .description = "a Lambda-compatible endpoint; default $AWS_ENDPOINT_URL_LAMBDA, "
                    "$AWS_ENDPOINT_URL, else the region's"},
    {.name = "access_key_id",
     .type = CBX_PARAM_STRING,
     .description = "default $AWS_ACCESS_KEY_ID"},
    {.name = "secret_access_key",
     .type = CBX_PARAM_STRING,
     .secret = 1,
     .description = "default $AWS_SECRET_ACCESS_KEY"},
    {.name = "session_token",
     .type = CBX_PARAM_STRING,
     .secret = 1,
     .description = "default $AWS_SESSION_TOKEN"},
    {.name = "timeout_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "limit on the call, ms; 0 = the attempt's timeout only (local backend: "
                    "counted from when a runtime takes the invocation)"},
    {.name = "function_dir",
     .type = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .description = "run the function here (local backend): its directory, with an executable "
                    "bootstrap or the handler's code; cbx hosts the Lambda Runtime API"},
    {.name = "runtime",
     .type = CBX_PARAM_STRING,
     .description = "local backend: provided (DIR/bootstrap; the default when it exists), "
                    "provided.al2, provided.al2023, python3 or python3.N (with handler)"},
    {.name = "handler",
     .type = CBX_PARAM_STRING,
     .description = "local backend: _HANDLER; for python3, module.function (app.handler)"},
    {.name = "environment",
     .type = CBX_PARAM_OBJECT,
     .description = "local backend: the function's environment variables (strings), beside "
                    "the ones Lambda sets"},
    {.name = "memory_size",
     .type = CBX_PARAM_INTEGER,
     .default_json = "128",
     .has_min = 1,
     .min = 128,
     .has_max = 1,
     .max = 10240,
     .description = "local backend: MB, told to the function (AWS_LAMBDA_FUNCTION_MEMORY_SIZE), "
                    "not enforced"},
    {.name = "concurrency",
     .type = CBX_PARAM_INTEGER,
     .default_json = "4",
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 1000,
     .description = "local backend: runtimes of this function at most at once (more "
                    "invocations wait for one)"},
    {0},
};

static const cbx_executor_type lambda_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "serverless",
    .summary = "call an AWS Lambda function (or any Lambda-compatible endpoint), SigV4-signed",
    .params = lambda_params,
    .task_size = sizeof(lambda_task),
    .validate = lambda_validate,
    .start = lambda_start,
    .cancel = lambda_cancel,
    .loop_init = lambda_loop_init,
    .loop_close = lambda_loop_close,
};

const cbx_executor_type *cbx__serverless_type(void)
{
    return &lambda_type;
}
