/* The http executor type: its schema, start and cancel, and what a finished transfer reports.
 *
 * Outcomes: SUCCESS for a status in success_status (and, in GraphQL mode, a response without
 * errors); RATE_LIMITED for 429; ERROR for any other status and for transport failures (refused,
 * dropped, DNS, TLS); TIMEOUT when curl's own limit (timeout_ms, connect_timeout_ms, the attempt
 * deadline) ran out. A 429 or 503 with Retry-After (seconds or an HTTP date) asks the retry for
 * that delay. Request headers - Authorization above all - never reach the metadata.
 */
#include "executors/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

static const char *const http_methods[] = {"GET",    "POST", "PUT",     "PATCH",
                                           "DELETE", "HEAD", "OPTIONS", NULL};

static const cbx_param http_params[] = {
    {.name = "url",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .has_min = 1,
     .min = 1,
     .description = "the http:// or https:// URL"},
    {.name = "method",
     .type = CBX_PARAM_STRING,
     .enum_values = http_methods,
     .description = "the request method; GET, or POST when body, json or graphql is given"},
    {.name = "query",
     .type = CBX_PARAM_OBJECT,
     .description = "query parameters appended to the URL, URL-encoded; an array repeats the key"},
    {.name = "headers",
     .type = CBX_PARAM_OBJECT,
     .description = "request headers: name to string value"},
    {.name = "body", .type = CBX_PARAM_STRING, .description = "the request body, sent as is"},
    {.name = "json",
     .type = CBX_PARAM_ANY,
     .description = "a JSON value sent as the body, as application/json"},
    {.name = "bearer_token",
     .type = CBX_PARAM_STRING,
     .secret = 1,
     .description = "sent as Authorization: Bearer <token> (to the first host only)"},
    {.name = "basic_user",
     .type = CBX_PARAM_STRING,
     .description = "user name for HTTP basic authentication"},
    {.name = "basic_password",
     .type = CBX_PARAM_STRING,
     .secret = 1,
     .description = "password for HTTP basic authentication"},
    {.name = "verify_tls",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "true",
     .description = "verify the server's certificate and host name"},
    {.name = "ca_file",
     .type = CBX_PARAM_STRING,
     .description = "a PEM file of CA certificates to verify the server with"},
    {.name = "connect_timeout_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "limit on connecting, ms; 0 = none of its own"},
    {.name = "timeout_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "limit on the whole transfer, ms; 0 = the attempt's timeout only"},
    {.name = "follow_redirects",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "true",
     .description = "follow 3xx redirects (http and https only)"},
    {.name = "max_redirects",
     .type = CBX_PARAM_INTEGER,
     .default_json = "5",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 50,
     .description = "redirects followed at most"},
    {.name = "success_status",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_ANY,
     .default_json = "[\"200-299\"]",
     .description = "statuses that succeed: codes (204), classes (\"2xx\"), ranges (\"200-299\")"},
    {.name = "parse_json",
     .type = CBX_PARAM_ANY,
     .default_json = "\"auto\"",
     .description = "parse the body as JSON: \"auto\" (by Content-Type), true or false"},
    {.name = "graphql",
     .type = CBX_PARAM_OBJECT,
     .description = "{query, variables, operation_name}: POSTed as JSON; errors fail"},
    {.name = "max_body_bytes",
     .type = CBX_PARAM_INTEGER,
     .default_json = "10485760",
     .has_min = 1,
     .min = 0,
     .description = "response body kept at most; beyond, the transfer stops and is flagged"},
    {0},
};

/* ---- the response --------------------------------------------------------------------------- */

static json_t *base64(const char *s, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out_len = (n + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

/* Retry-After: delay-seconds or an HTTP date. ms, or -1 when absent or unreadable. */
static long long retry_after_ms(const json_t *headers)
{
    const char *s = json_string_value(json_object_get(headers, "retry-after"));
    if (!s || !*s)
        return -1;
    const char *p = s;
    long long secs = 0;
    while (*p >= '0' && *p <= '9') {
        if (secs < 100000000)
            secs = secs * 10 + (*p - '0');
        p++;
    }
    if (p != s && *p == '\0')
        return secs * 1000;
    time_t when = curl_getdate(s, NULL);
    if (when < 0)
        return -1;
    time_t now = time(NULL);
    return when > now ? (long long)(when - now) * 1000 : 0;
}

static int is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return 1;
    if (n == 9 && strncasecmp(ct, "text/json", 9) == 0)
        return 1;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0 && memchr(ct, '/', n) != NULL;
}

/* The effective URL without user:password@. New reference. */
static json_t *public_url(const char *url)
{
    if (!url)
        return json_null();
    if (!strchr(url, '@'))
        return json_string(url);
    json_t *j = NULL;
    CURLU *u = curl_url();
    char *clean = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &clean, 0) == CURLUE_OK)
        j = json_string(clean);
    curl_free(clean);
    curl_url_cleanup(u);
    return j ? j : json_null();
}

static double us_to_ms(curl_off_t us)
{
    return (double)us / 1000.0;
}

static json_t *make_metadata(cbx__http_xfer *x, long status, long long retry_ms)
{
    CURL *e = x->easy->curl;
    const cbx__http_response *r = &x->easy->resp;
    curl_off_t connect_us = 0, ttfb_us = 0, total_us = 0;
    long redirects = 0, connects = 0;
    char *eff = NULL;
    curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connect_us);
    curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &ttfb_us);
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total_us);
    curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &redirects);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &eff);
    double total_ms = us_to_ms(total_us);
    if (total_us == 0) /* aborted: curl has no total; measure it ourselves */
        total_ms = (double)(uv_hrtime() - x->t0_ns) / 1e6;

    json_t *m = json_object();
    if (!m)
        return NULL;
    json_object_set_new_nocheck(m, "status", json_integer(status));
    json_object_set_new_nocheck(m, "bytes", json_integer((json_int_t)r->received));
    json_object_set_new_nocheck(m, "connect_ms", json_real(us_to_ms(connect_us)));
    json_object_set_new_nocheck(m, "ttfb_ms", json_real(us_to_ms(ttfb_us)));
    json_object_set_new_nocheck(m, "total_ms", json_real(total_ms));
    json_object_set_new_nocheck(m, "redirects", json_integer(redirects));
    /* A transfer that needed no new connection ran on one from the cache. */
    json_object_set_new_nocheck(m, "reused_connection", json_boolean(status > 0 && connects == 0));
    json_object_set_new_nocheck(m, "retry_after_ms",
                                retry_ms >= 0 ? json_integer(retry_ms) : json_null());
    if (r->truncated)
        json_object_set_new_nocheck(m, "truncated", json_true());
    if (redirects > 0) /* where it ended up, when that is not where it began */
        json_object_set_new_nocheck(m, "url", public_url(eff));
    return m;
}

/* The outputs of a response that arrived; sets *k and msg when it is not a success. */
static json_t *make_outputs(cbx__http_xfer *x, long status, cbx_outcome *k, char *msg,
                            size_t msg_len)
{
    cbx__http_response *r = &x->easy->resp;
    json_t *o = json_object();
    if (!o) {
        *k = CBX_OUTCOME_ERROR;
        snprintf(msg, msg_len, "out of memory");
        return NULL;
    }
    json_object_set_new_nocheck(o, "status", json_integer(status));
    json_object_set_new_nocheck(o, "headers", r->headers);
    r->headers = NULL;
    json_t *body = json_stringn(r->body ? r->body : "", r->len);
    if (body) {
        json_object_set_new_nocheck(o, "body", body);
    } else {
        /* Not UTF-8: the bytes, base64-encoded. */
        json_object_set_new_nocheck(o, "body", base64(r->body ? r->body : "", r->len));
        json_object_set_new_nocheck(o, "body_encoding", json_string("base64"));
    }
    if (r->truncated)
        json_object_set_new_nocheck(o, "truncated", json_true());
    char *eff = NULL;
    curl_easy_getinfo(x->easy->curl, CURLINFO_EFFECTIVE_URL, &eff);
    json_object_set_new_nocheck(o, "url", public_url(eff));

    int ok = cbx__http_status_matches(x->success_status, status);
    *k = ok ? CBX_OUTCOME_SUCCESS : status == 429 ? CBX_OUTCOME_RATE_LIMITED : CBX_OUTCOME_ERROR;
    if (!ok)
        snprintf(msg, msg_len, "HTTP %ld%s%s", status, r->reason[0] ? " " : "", r->reason);

    char *ct = NULL;
    curl_easy_getinfo(x->easy->curl, CURLINFO_CONTENT_TYPE, &ct);
    int want = x->graphql || x->parse_json == 1 || (x->parse_json < 0 && is_json_type(ct));
    int must = x->graphql || x->parse_json == 1;
    if (!want)
        return o;
    if (r->truncated) {
        if (must && ok) {
            *k = CBX_OUTCOME_ERROR;
            snprintf(msg, msg_len, "the body was cut at max_body_bytes (%zu): not parsed as JSON",
                     r->max_body);
        }
        return o;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(r->body ? r->body : "", r->len, JSON_DECODE_ANY, &jerr);
    if (!doc) {
        if (must && ok) {
            *k = CBX_OUTCOME_ERROR;
            snprintf(msg, msg_len, "the response is not JSON: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
        }
        return o;
    }
    json_object_set_new_nocheck(o, "json", doc);
    if (x->graphql) {
        json_t *data = json_object_get(doc, "data");
        json_object_set_nocheck(o, "data", data ? data : json_null());
        json_t *errors = json_object_get(doc, "errors");
        if (ok && json_is_array(errors) && json_array_size(errors) > 0) {
            const char *first =
                json_string_value(json_object_get(json_array_get(errors, 0), "message"));
            size_t more = json_array_size(errors) - 1;
            *k = CBX_OUTCOME_ERROR;
            if (more)
                snprintf(msg, msg_len, "graphql: %s (and %zu more)", first ? first : "error", more);
            else
                snprintf(msg, msg_len, "graphql: %s", first ? first : "error");
        }
    }
    return o;
}

/* ---- the report ----------------------------------------------------------------------------- */

void cbx__http_xfer_report(cbx__http_xfer *x)
{
    cbx_task *t = x->task;
    cbx__http_loop *lp = x->lp;
    cbx_outcome k = CBX_OUTCOME_ERROR;
    char msg[512] = "";
    json_t *outputs = NULL, *meta = NULL;
    long status = 0;
    long long retry_ms = -1;

    if (x->start_rc < 0) {
        snprintf(msg, sizeof msg, "%s", x->start_msg ? x->start_msg : cbx_strerror(x->start_rc));
        free(x->start_msg);
        x->start_msg = NULL;
    } else {
        const cbx__http_response *resp = &x->easy->resp;
        int answered = x->result == CURLE_OK || (x->result == CURLE_WRITE_ERROR && resp->truncated);
        if (answered && !x->cancelled)
            curl_easy_getinfo(x->easy->curl, CURLINFO_RESPONSE_CODE, &status);
        if ((status == 429 || status == 503) && resp->headers)
            retry_ms = retry_after_ms(resp->headers);
        meta = make_metadata(x, status, retry_ms);
        if (x->cancelled) {
            /* No message: the runtime says why it stopped the attempt (timeout or cancel). */
        } else if (answered) {
            outputs = make_outputs(x, status, &k, msg, sizeof msg);
            if (retry_ms > 0)
                cbx_task_set_retry_after(t, (uint64_t)retry_ms * 1000000u);
        } else {
            k = x->result == CURLE_OPERATION_TIMEDOUT ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR;
            snprintf(msg, sizeof msg, "%s (curl error %d)",
                     x->easy->errbuf[0] ? x->easy->errbuf : curl_easy_strerror(x->result),
                     (int)x->result);
        }
    }

    cbx__http_request_release(x);
    /* A handle whose transfer did not end well goes back to curl's defaults. */
    cbx__http_easy_give(lp, x->easy, x->start_rc < 0 || x->result != CURLE_OK || x->cancelled);
    x->easy = NULL;
    x->phase = 3;
    cbx__http_loop_end(lp);
    if (msg[0])
        cbx_task_done(t, k, outputs, meta, "%s", msg);
    else
        cbx_task_done(t, k, outputs, meta, NULL);
}

/* ---- ops ------------------------------------------------------------------------------------ */

static int http_start(cbx_task *t)
{
    cbx__http_xfer *x = cbx_task_state(t);
    int lr = cbx__curl_load(NULL); /* a no-op after the first time */
    if (lr < 0)
        return lr;
    cbx__http_loop *lp = cbx_task_loop_state(t); /* made by http_loop_init */
    if (!lp)
        return -ENOMEM;
    if ((lr = cbx__http_loop_ready(lp)) < 0)
        return lr;
    cbx__http_easy *e = cbx__http_easy_take(lp);
    if (!e)
        return -ENOMEM;
    if (cbx__http_loop_begin(lp) < 0) {
        cbx__http_easy_give(lp, e, 0);
        return -ENOMEM;
    }
    x->task = t;
    x->lp = lp;
    x->easy = e;
    x->t0_ns = uv_hrtime();

    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx__http_request_setup(x, cbx_task_params(t), &err);
    if (r == 0 && (r = cbx__http_loop_add(lp, x)) < 0)
        cbx_err_set(&err, r, "cannot start the transfer: %s", cbx_strerror(r));
    if (r < 0) {
        /* Reported on the next turn of the loop, with the reason, as an ERROR. */
        x->start_rc = r;
        x->start_msg = strdup(err.msg[0] ? err.msg : cbx_strerror(r)); /* NULL: the code says */
        x->phase = 2;
        cbx__http_loop_defer(lp, x);
        return 0;
    }
    x->phase = 1;
    return 0;
}

static void http_cancel(cbx_task *t)
{
    cbx__http_xfer *x = cbx_task_state(t);
    x->cancelled = 1;
    if (x->phase != 1)
        return; /* not started, or its report is already on its way */
    cbx__http_loop_remove(x->lp, x);
    x->result = CURLE_ABORTED_BY_CALLBACK;
    x->phase = 2;
    cbx__http_loop_defer(x->lp, x);
}

static int http_validate(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    (void)type;
    int r = cbx__curl_load(err); /* libcurl is loaded on the type's first use */
    return r < 0 ? r : cbx__http_request_validate(params, err);
}

/* One context per runtime; libcurl stays unloaded until a request needs it (http_start). */
static int http_loop_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err)
{
    (void)type;
    cbx__http_loop *lp;
    int r = cbx__http_loop_open(loop, &lp);
    if (r < 0)
        return cbx_err_set(err, r, "http: out of memory");
    *state = lp;
    return 0;
}

static void http_loop_close(const cbx_executor_type *type, void *loop, void *state)
{
    (void)type;
    (void)loop;
    cbx__http_loop_close(state);
}

/* What every response that arrived gives (a failed status too); a transfer that got no response
 * has no outputs. */
static const cbx_output http_outputs[] = {
    {.name = "status", .type = CBX_PARAM_INTEGER, .description = "the HTTP status"},
    {.name = "headers",
     .type = CBX_PARAM_OBJECT,
     .description = "the response headers, names in lower case"},
    {.name = "body",
     .type = CBX_PARAM_STRING,
     .description = "the body as text (base64 when it is not UTF-8: see body_encoding)"},
    {.name = "body_encoding",
     .type = CBX_PARAM_STRING,
     .optional = 1,
     .description = "\"base64\" when the body is not UTF-8 text"},
    {.name = "truncated",
     .type = CBX_PARAM_BOOLEAN,
     .optional = 1,
     .description = "true when the body was cut at max_body_bytes"},
    {.name = "url", .type = CBX_PARAM_STRING, .description = "the URL answered (after redirects)"},
    {.name = "json",
     .type = CBX_PARAM_ANY,
     .optional = 1,
     .description = "the body parsed, when it is JSON (parse_json, a JSON content type, graphql)"},
    {.name = "data",
     .type = CBX_PARAM_ANY,
     .optional = 1,
     .nullable = 1,
     .description = "graphql: the response's data"},
    {.name = NULL},
};

static const cbx_executor_type http_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "http",
    .summary = "an HTTP or GraphQL request (libcurl; connections reused)",
    .params = http_params,
    .task_size = sizeof(cbx__http_xfer),
    .validate = http_validate,
    .start = http_start,
    .cancel = http_cancel,
    .loop_init = http_loop_init,
    .loop_close = http_loop_close,
    .outputs = http_outputs,
};

const cbx_executor_type *cbx__http_type(void)
{
    return &http_type;
}
