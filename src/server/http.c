/* The server's HTTP helpers: responses, RFC 9457 problems, the bearer token, request bodies and
 * query strings. */
#include "server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t srv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *srv_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* The response's status line and headers; the body is the caller's. */
static void start_response(h2o_req_t *req, int status, const char *ctype, size_t len)
{
    req->res.status = status;
    req->res.reason = srv_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                   strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0,
                          NULL, H2O_STRLIT("nosniff"));
}

void srv_send(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    start_response(req, status, ctype, len);
    h2o_send_inline(req, body, len);
}

/* body lives in the request's pool: sent without a copy. */
static void srv_send_pooled(h2o_req_t *req, int status, const char *ctype, char *body, size_t len)
{
    static h2o_generator_t gen = {NULL, NULL};
    start_response(req, status, ctype, len);
    h2o_start_response(req, &gen);
    h2o_iovec_t iov = h2o_iovec_init(body, len);
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL); /* as h2o_send_inline */
    else
        h2o_send(req, &iov, 1, H2O_SEND_STATE_FINAL);
}

void srv_send_json(h2o_req_t *req, int status, json_t *v)
{
    /* most responses fit in a buffer on the stack: written there (json_write.c), copied once into
     * the request's pool and sent from there; the rest through json_dumps */
    char stack[8192];
    size_t n = srv_json_write(v, stack, sizeof stack);
    if (n) {
        json_decref(v);
        h2o_iovec_t body = h2o_strdup(&req->pool, stack, n);
        srv_send_pooled(req, status, "application/json", body.base, n);
        return;
    }
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (!text) {
        static const char oom[] = "{\"type\":\"about:blank\",\"title\":\"Internal Server Error\","
                                  "\"status\":500,\"detail\":\"out of memory\"}";
        srv_send(req, 500, "application/problem+json", oom, sizeof oom - 1);
        return;
    }
    srv_send(req, status, "application/json", text, strlen(text));
    free(text);
}

void srv_problem(h2o_req_t *req, int status, const char *slug, const char *field, const char *fmt,
                 ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    char type[128];
    snprintf(type, sizeof type, "https://cbx.invalid/problems/%s", slug);
    json_t *p = json_pack("{s:s,s:s,s:i,s:s}", "type", type, "title", srv_reason(status), "status",
                          status, "detail", detail);
    if (p && field)
        json_object_set_new(p, "field", json_string(field));
    char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (!text) {
        srv_send(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    if (status == 401)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer realm=\"cbx\""));
    srv_send(req, status, "application/problem+json", text, strlen(text));
    free(text);
}

int srv_authorized(srv *s, h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0) {
        srv_problem(req, 401, "unauthorized", NULL,
                    "%.*s %.*s: this request changes state and needs 'Authorization: Bearer "
                    "TOKEN' (the token is in the state directory's serve.token)",
                    (int)req->method.len, req->method.base, (int)req->path.len, req->path.base);
        return 0;
    }
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t tl = strlen(s->token);
    int ok = v.len == 7 + tl && strncasecmp(v.base, "Bearer ", 7) == 0;
    unsigned char diff = 0; /* compare every byte: the time says nothing about the token */
    for (size_t k = 0; k < tl; k++)
        diff |= (unsigned char)(ok ? v.base[7 + k] : 0) ^ (unsigned char)s->token[k];
    if (!ok || diff) {
        srv_problem(req, 401, "unauthorized", NULL, "the bearer token is wrong");
        return 0;
    }
    return 1;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

json_t *srv_body_object(h2o_req_t *req)
{
    if (!req->entity.base || !req->entity.len) {
        srv_problem(req, 400, "malformed-json", NULL,
                    "request body: expected a JSON object, got "
                    "nothing");
        return NULL;
    }
    json_error_t e;
    json_t *v = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &e);
    if (!v) {
        srv_problem(req, 400, "malformed-json", NULL,
                    "request body: invalid JSON at line %d column %d: %s", e.line, e.column,
                    e.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        srv_problem(req, 400, "malformed-json", NULL,
                    "request body: expected a JSON object, got %s", json_kind(v));
        json_decref(v);
        return NULL;
    }
    return v;
}

int srv_only_fields(h2o_req_t *req, const json_t *o, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        int found = 0;
        for (size_t i = 0; allowed[i] && !found; i++)
            found = strcmp(k, allowed[i]) == 0;
        if (!found) {
            char list[512] = "";
            size_t n = 0;
            for (size_t i = 0; allowed[i] && n < sizeof list; i++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", allowed[i]);
            srv_problem(req, 400, "unknown-field", k,
                        "request body: unknown field '%s' (known: %s)", k, list);
            return 0;
        }
    }
    return 1;
}

int srv_pct_decode(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%') {
            int hi, lo;
            if (sscanf(r + 1, "%1x%1x", (unsigned *)&hi, (unsigned *)&lo) != 2)
                return -1;
            int c = hi * 16 + lo;
            if (!c)
                return -1;
            *w++ = (char)c;
            r += 2;
        } else if (*r == '+') {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}

/* Visit each name=value pair of the query string (copied and decoded into k, v). */
static int query_each(h2o_req_t *req, int (*fn)(const char *k, const char *v, void *ud), void *ud)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    size_t qn = req->path.len - req->query_at - 1;
    while (qn) {
        const char *amp = memchr(q, '&', qn);
        size_t pl = amp ? (size_t)(amp - q) : qn;
        if (pl) {
            char pair[1024];
            if (pl >= sizeof pair)
                pl = sizeof pair - 1;
            memcpy(pair, q, pl);
            pair[pl] = '\0';
            char *eq = strchr(pair, '=');
            char *val = "";
            if (eq) {
                *eq = '\0';
                val = eq + 1;
            }
            if (srv_pct_decode(pair) == 0 && srv_pct_decode(val) == 0) {
                int r = fn(pair, val, ud);
                if (r)
                    return r;
            }
        }
        if (!amp)
            break;
        qn -= pl + 1;
        q = amp + 1;
    }
    return 0;
}

typedef struct qfind {
    const char *name;
    char *buf;
    size_t len;
    int found;
} qfind;

static int qfind_fn(const char *k, const char *v, void *ud)
{
    qfind *f = ud;
    if (strcmp(k, f->name) != 0)
        return 0;
    snprintf(f->buf, f->len, "%s", v);
    f->found = 1;
    return 1;
}

int srv_query(h2o_req_t *req, const char *name, char *buf, size_t len)
{
    qfind f = {name, buf, len, 0};
    query_each(req, qfind_fn, &f);
    return f.found;
}

typedef struct qonly {
    const char *const *allowed;
    char bad[128];
} qonly;

static int qonly_fn(const char *k, const char *v, void *ud)
{
    (void)v;
    qonly *q = ud;
    for (size_t i = 0; q->allowed[i]; i++)
        if (strcmp(k, q->allowed[i]) == 0)
            return 0;
    snprintf(q->bad, sizeof q->bad, "%s", k);
    return 1;
}

int srv_query_only(h2o_req_t *req, const char *const *allowed)
{
    qonly q = {allowed, ""};
    if (!query_each(req, qonly_fn, &q))
        return 1;
    char list[512] = "";
    size_t n = 0;
    for (size_t i = 0; allowed[i] && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", allowed[i]);
    srv_problem(req, 400, "unknown-parameter", q.bad, "unknown query parameter '%s' (known: %s)",
                q.bad, list[0] ? list : "none");
    return 0;
}
