/* The http executor's request: checking the parameters and setting an easy handle up from them,
 * and the callbacks that collect the response. */
#include "executors/http.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "cbx/clock.h"
#include "core/real_text.h"

#define USER_AGENT "cbx/0.1"

/* ---- problems, joined into one cbx_err ------------------------------------------------------ */

static void problem(cbx_err *err, int *count, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(cbx_err *err, int *count, const char *where, const char *fmt, ...)
{
    (*count)++;
    if (!err)
        return;
    if (*count == 1) {
        err->code = CBX_EINVAL_CONFIG;
        snprintf(err->where, sizeof err->where, "%s", where);
        err->msg[0] = '\0';
    }
    size_t used = strlen(err->msg);
    if (used + 3 >= sizeof err->msg)
        return;
    if (used > 0) {
        memcpy(err->msg + used, "; ", 3);
        used += 2;
    }
    char text[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(err->msg + used, sizeof err->msg - used, "%s: %s", where, text);
}

/* ---- small checks --------------------------------------------------------------------------- */

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c))
            return 0;
    }
    return 1;
}

static int is_query_scalar(const json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

/* Three digits at s: their value, or -1. */
static long three_digits(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    return (s[0] - '0') * 100L + (s[1] - '0') * 10L + (s[2] - '0');
}

/* One success_status entry: 204, "204", "2xx", "200-299". 0 and [*lo, *hi], or -1. */
static int status_range(const json_t *v, long *lo, long *hi)
{
    if (json_is_integer(v)) {
        *lo = *hi = (long)json_integer_value(v);
        return *lo >= 100 && *lo <= 999 ? 0 : -1;
    }
    const char *s = json_string_value(v);
    if (!s)
        return -1;
    size_t len = strlen(s);
    if (len == 7 && s[3] == '-') { /* "200-299", the usual form, without strtol */
        long a = three_digits(s), b = three_digits(s + 4);
        if (a >= 100 && b >= a) {
            *lo = a;
            *hi = b;
            return 0;
        }
    }
    if (len == 3 && s[0] >= '1' && s[0] <= '9' && tolower((unsigned char)s[1]) == 'x' &&
        tolower((unsigned char)s[2]) == 'x') {
        *lo = (s[0] - '0') * 100L;
        *hi = *lo + 99;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long a = strtol(s, &end, 10);
    if (end == s || errno)
        return -1;
    long b = a;
    if (*end == '-') {
        const char *p = end + 1;
        b = strtol(p, &end, 10);
        if (end == p || errno)
            return -1;
    }
    if (*end != '\0' || a < 100 || b > 999 || a > b)
        return -1;
    *lo = a;
    *hi = b;
    return 0;
}

int cbx__http_status_matches(const json_t *set, long status)
{
    if (!json_is_array(set) || json_array_size(set) == 0)
        return status >= 200 && status <= 299;
    size_t i;
    const json_t *v;
    json_array_foreach(set, i, v)
    {
        long lo, hi;
        if (status_range(v, &lo, &hi) == 0 && status >= lo && status <= hi)
            return 1;
    }
    return 0;
}

/* The parameters a request reads, found in one pass over the object (a request is set up for
 * every attempt, and one lookup per name would cost more than the pass). NULL: absent or null. */
typedef struct req_params {
    const json_t *url, *method, *query, *headers, *body, *json, *graphql, *bearer_token,
        *basic_user, *basic_password, *verify_tls, *ca_file, *connect_timeout_ms, *timeout_ms,
        *follow_redirects, *max_redirects, *success_status, *parse_json, *max_body_bytes;
} req_params;

/* The names, most used first. */
#define REQ_FIELD(f)                                                                               \
    {                                                                                              \
#f, offsetof(req_params, f)                                                                \
    }
static const struct {
    const char *name;
    size_t off;
} req_fields[] = {
    REQ_FIELD(url),
    REQ_FIELD(method),
    REQ_FIELD(headers),
    REQ_FIELD(query),
    REQ_FIELD(body),
    REQ_FIELD(json),
    REQ_FIELD(timeout_ms),
    REQ_FIELD(graphql),
    REQ_FIELD(bearer_token),
    REQ_FIELD(basic_user),
    REQ_FIELD(basic_password),
    REQ_FIELD(verify_tls),
    REQ_FIELD(ca_file),
    REQ_FIELD(connect_timeout_ms),
    REQ_FIELD(follow_redirects),
    REQ_FIELD(max_redirects),
    REQ_FIELD(success_status),
    REQ_FIELD(parse_json),
    REQ_FIELD(max_body_bytes),
};
#undef REQ_FIELD

static void read_params(const json_t *params, req_params *p)
{
    memset(p, 0, sizeof *p);
    for (void *it = json_object_iter((json_t *)params); it;
         it = json_object_iter_next((json_t *)params, it)) {
        const char *k = json_object_iter_key(it);
        const json_t *v = json_object_iter_value(it);
        if (json_is_null(v))
            continue;
        for (size_t f = 0; f < sizeof req_fields / sizeof req_fields[0]; f++)
            if (strcmp(k, req_fields[f].name) == 0) {
                *(const json_t **)((char *)p + req_fields[f].off) = v;
                break;
            }
    }
}

static int check_url(const char *url, char *why, size_t len)
{
    CURLU *u = curl_url();
    if (!u) {
        snprintf(why, len, "out of memory");
        return -1;
    }
    int r = 0;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        snprintf(why, len, "not a valid URL (%s)", curl_url_strerror(uc));
        r = -1;
    } else {
        char *scheme = NULL;
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
            snprintf(why, len, "the scheme must be http or https, not '%s'", scheme ? scheme : "");
            r = -1;
        }
        curl_free(scheme);
    }
    curl_url_cleanup(u);
    return r;
}

/* The last URL that passed check_url on this thread: the same URL again (the usual case: one
 * endpoint called over and over) is not parsed again. */
static _Thread_local char url_ok[256];

static int check_url_cached(const char *url, char *why, size_t len)
{
    if (url_ok[0] && strcmp(url, url_ok) == 0)
        return 0;
    if (check_url(url, why, len) < 0)
        return -1;
    size_t n = strlen(url);
    if (n < sizeof url_ok)
        memcpy(url_ok, url, n + 1);
    return 0;
}

int cbx__http_request_validate(const json_t *params, cbx_err *err)
{
    int n = 0;
    char why[256];
    req_params p;
    read_params(params, &p);

    const char *url = json_string_value(p.url);
    if (url && check_url_cached(url, why, sizeof why) < 0)
        problem(err, &n, "url", "%s", why);

    const json_t *body = p.body, *js = p.json, *gq = p.graphql;
    if ((body != NULL) + (js != NULL) + (gq != NULL) > 1)
        problem(err, &n, body ? "body" : "json", "give at most one of body, json and graphql");

    const char *method = json_string_value(p.method);
    if (method && strcmp(method, "HEAD") == 0 && (body || js || gq))
        problem(err, &n, "method", "a HEAD request has no body");
    if (gq) {
        if (method && strcmp(method, "POST") != 0)
            problem(err, &n, "method", "graphql requests are POSTs, not %s", method);
        if (!json_is_object(gq)) {
            problem(err, &n, "graphql", "expected an object {query, variables, operation_name}");
        } else {
            const char *k;
            const json_t *v;
            json_object_foreach((json_t *)gq, k, v)
            {
                if (strcmp(k, "query") != 0 && strcmp(k, "variables") != 0 &&
                    strcmp(k, "operation_name") != 0)
                    problem(err, &n, "graphql",
                            "unknown key '%s' (query, variables, "
                            "operation_name)",
                            k);
            }
            if (!json_is_string(json_object_get(gq, "query")))
                problem(err, &n, "graphql.query", "expected a string (required)");
            const json_t *vars = json_object_get(gq, "variables");
            if (vars && !json_is_object(vars) && !json_is_null(vars))
                problem(err, &n, "graphql.variables", "expected an object");
            const json_t *op = json_object_get(gq, "operation_name");
            if (op && !json_is_string(op) && !json_is_null(op))
                problem(err, &n, "graphql.operation_name", "expected a string");
        }
    }

    const json_t *headers = p.headers;
    if (headers) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)headers, k, v)
        {
            char where[160];
            snprintf(where, sizeof where, "headers.%s", k);
            if (!is_token(k))
                problem(err, &n, where, "not a valid header name");
            if (!json_is_string(v))
                problem(err, &n, where, "expected a string");
            else if (has_crlf(json_string_value(v)))
                problem(err, &n, where, "a header value cannot hold CR or LF");
        }
    }

    const json_t *query = p.query;
    if (query) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)query, k, v)
        {
            int ok = is_query_scalar(v) || json_is_null(v);
            if (json_is_array(v)) {
                size_t i;
                const json_t *item;
                ok = 1;
                json_array_foreach(v, i, item) ok = ok && is_query_scalar(item);
            }
            if (!ok) {
                char where[160];
                snprintf(where, sizeof where, "query.%s", k);
                problem(err, &n, where,
                        "expected a string, number, boolean, null or an array of those");
            }
        }
    }

    if (p.bearer_token && p.basic_user)
        problem(err, &n, "bearer_token", "give either bearer_token or basic_user, not both");
    if (p.basic_password && !p.basic_user)
        problem(err, &n, "basic_password", "needs basic_user");

    const json_t *ss = p.success_status;
    if (ss) {
        size_t i;
        const json_t *v;
        json_array_foreach(ss, i, v)
        {
            long lo, hi;
            if (status_range(v, &lo, &hi) < 0) {
                char where[64];
                snprintf(where, sizeof where, "success_status[%zu]", i);
                problem(err, &n, where,
                        "expected a status (200), a class (\"2xx\") or a range (\"200-299\")");
            }
        }
    }

    const json_t *pj = p.parse_json;
    if (pj && !json_is_boolean(pj) &&
        !(json_is_string(pj) && strcmp(json_string_value(pj), "auto") == 0))
        problem(err, &n, "parse_json", "expected \"auto\", true or false");

    return n ? CBX_EINVAL_CONFIG : 0;
}

/* ---- the response --------------------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    cbx__http_response *r = ud;
    size_t n = size * nmemb;
    r->received += n;
    size_t keep = n;
    if (r->len + keep > r->max_body) {
        keep = r->max_body - r->len;
        r->truncated = 1;
    }
    if (keep > 0) {
        size_t need = r->len + keep + 1;
        if (!r->body && need <= sizeof r->inline_body) {
            r->body = r->inline_body;
            r->cap = sizeof r->inline_body;
        } else if (!r->body || need > r->cap) {
            size_t cap = r->cap > 4096 ? r->cap : 4096;
            while (cap < need)
                cap *= 2;
            int inline_now = r->body == r->inline_body;
            char *b = r->body && !inline_now ? realloc(r->body, cap) : malloc(cap);
            if (!b)
                return 0;
            if (inline_now)
                memcpy(b, r->inline_body, r->len);
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, ptr, keep);
        r->len += keep;
        r->body[r->len] = '\0';
    }
    /* Past the limit the transfer stops here: a body without end must not run on. */
    return r->truncated ? 0 : n;
}

/* A header value as a JSON string. Text that is not UTF-8 (obs-text, usually Latin-1) keeps its
 * ASCII bytes and has the others replaced by '?', so that the header is still reported. */
static json_t *header_text(const char *v, size_t n)
{
    json_t *j = json_stringn(v, n);
    if (j)
        return j;
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = (unsigned char)v[i] < 0x80 ? v[i] : '?';
    j = json_stringn(copy, n);
    free(copy);
    return j;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    cbx__http_response *r = ud;
    size_t n = size * nitems;
    size_t len = n;
    while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == '\n'))
        len--;
    if (len == 0)
        return n;
    if (len > 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or a 100 Continue): its headers replace the last. */
        json_object_clear(r->headers);
        size_t i = 5;
        while (i < len && buf[i] != ' ')
            i++; /* the version */
        while (i < len && buf[i] == ' ')
            i++;
        while (i < len && buf[i] != ' ')
            i++; /* the code */
        while (i < len && buf[i] == ' ')
            i++;
        size_t rl = len - i < sizeof r->reason - 1 ? len - i : sizeof r->reason - 1;
        memcpy(r->reason, buf + i, rl);
        r->reason[rl] = '\0';
        return n;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon || colon == buf || colon - buf >= 128)
        return n;
    char name[128];
    size_t nl = (size_t)(colon - buf);
    int ascii = 1;
    for (size_t i = 0; i < nl; i++) {
        unsigned char c = (unsigned char)buf[i];
        ascii &= c < 0x80;
        name[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    name[nl] = '\0';
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    json_t *old = json_object_get(r->headers, name);
    json_t *val;
    if (old) {
        /* Repeated headers join with ", ", as RFC 9110 allows. */
        size_t ol = json_string_length(old), vl = (size_t)(end - v);
        char *joined = malloc(ol + 2 + vl + 1);
        if (!joined)
            return n;
        memcpy(joined, json_string_value(old), ol);
        memcpy(joined + ol, ", ", 2);
        memcpy(joined + ol + 2, v, vl);
        joined[ol + 2 + vl] = '\0';
        val = header_text(joined, ol + 2 + vl);
        free(joined);
    } else {
        val = header_text(v, (size_t)(end - v));
    }
    if (val && ascii) /* ASCII: valid UTF-8, no need for jansson to check it again */
        json_object_set_new_nocheck(r->headers, name, val);
    else if (val)
        json_object_set_new(r->headers, name, val);
    return n;
}

/* ---- the request ---------------------------------------------------------------------------- */

static int append_query(CURLU *u, const char *key, const json_t *v, cbx_err *err)
{
    char text[64];
    const char *s = text;
    if (json_is_string(v))
        s = json_string_value(v);
    else if (json_is_integer(v))
        snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        cbx__real_plain(json_real_value(v), text);
    else if (json_is_boolean(v))
        s = json_is_true(v) ? "true" : "false";
    else if (json_is_null(v))
        s = NULL;
    else
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "query.%s: expected a scalar value", key);
    size_t kl = strlen(key), sl = s ? strlen(s) : 0;
    char *pair = malloc(kl + sl + 2);
    if (!pair)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    memcpy(pair, key, kl);
    if (s) {
        pair[kl] = '=';
        memcpy(pair + kl + 1, s, sl + 1);
    } else {
        pair[kl] = '\0';
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_QUERY, pair, CURLU_APPENDQUERY | CURLU_URLENCODE);
    free(pair);
    if (uc != CURLUE_OK)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "query.%s: %s", key, curl_url_strerror(uc));
    return 0;
}

static int set_url(CURL *e, const char *url, const json_t *query, cbx_err *err)
{
    if (!url)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "url: required");
    if (!query || json_object_size(query) == 0) {
        curl_easy_setopt(e, CURLOPT_URL, url);
        return 0;
    }
    CURLU *u = curl_url();
    if (!u)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    int r = 0;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        r = cbx_err_set(err, CBX_EINVAL_CONFIG, "url: %s", curl_url_strerror(uc));
        goto out;
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)query, k, v)
    {
        if (json_is_array(v)) {
            size_t i;
            const json_t *item;
            json_array_foreach(v, i, item)
            {
                if ((r = append_query(u, k, item, err)) < 0)
                    goto out;
            }
        } else if ((r = append_query(u, k, v, err)) < 0) {
            goto out;
        }
    }
    char *full = NULL;
    uc = curl_url_get(u, CURLUPART_URL, &full, 0);
    if (uc != CURLUE_OK) {
        r = cbx_err_set(err, CBX_EINVAL_CONFIG, "url: %s", curl_url_strerror(uc));
        goto out;
    }
    curl_easy_setopt(e, CURLOPT_URL, full);
    curl_free(full);
out:
    curl_url_cleanup(u);
    return r;
}

static int add_header(cbx__http_xfer *x, const char *line)
{
    struct curl_slist *l = curl_slist_append(x->header_list, line);
    if (!l)
        return -ENOMEM;
    x->header_list = l;
    return 0;
}

static int has_header(const json_t *headers, const char *name)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)headers, k, v)
    {
        if (strcasecmp(k, name) == 0)
            return 1;
    }
    return 0;
}

static int set_headers(cbx__http_xfer *x, const json_t *headers, int json_body, cbx_err *err)
{
    const char *k;
    const json_t *v;
    char line[1024], *big = NULL;
    json_object_foreach((json_t *)headers, k, v)
    {
        const char *s = json_string_value(v);
        if (!s || !is_token(k) || has_crlf(s))
            return cbx_err_set(err, CBX_EINVAL_CONFIG, "headers.%s: not a valid header", k);
        size_t need = strlen(k) + strlen(s) + 3;
        char *buf = line;
        if (need > sizeof line) {
            big = malloc(need);
            if (!big)
                return cbx_err_set(err, -ENOMEM, "out of memory");
            buf = big;
        }
        /* "Name;" sends a header with an empty value ("Name:" would remove it). */
        if (*s)
            snprintf(buf, need, "%s: %s", k, s);
        else
            snprintf(buf, need, "%s;", k);
        int r = add_header(x, buf);
        free(big);
        big = NULL;
        if (r < 0)
            return cbx_err_set(err, r, "out of memory");
    }
    if (json_body && !has_header(headers, "Content-Type") &&
        add_header(x, "Content-Type: application/json") < 0)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    if (x->graphql && !has_header(headers, "Accept") &&
        add_header(x, "Accept: application/json") < 0)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    char tp[56], tp_line[80];
    if (!has_header(headers, "traceparent") && cbx_task_traceparent(x->task, tp)) {
        snprintf(tp_line, sizeof tp_line, "traceparent: %s", tp);
        if (add_header(x, tp_line) < 0)
            return cbx_err_set(err, -ENOMEM, "out of memory");
    }
    if (x->header_list)
        curl_easy_setopt(x->easy->curl, CURLOPT_HTTPHEADER, x->header_list);
    return 0;
}

/* The request body: 0 and x->request_body (NULL = none) with its length in *len. */
static int make_body(cbx__http_xfer *x, const req_params *p, size_t *len, int *json_body,
                     cbx_err *err)
{
    const json_t *gq = p->graphql, *js = p->json, *body = p->body;
    *len = 0;
    *json_body = 0;
    if (gq) {
        json_t *doc = json_object();
        if (!doc)
            return cbx_err_set(err, -ENOMEM, "out of memory");
        json_object_set(doc, "query", json_object_get(gq, "query"));
        const json_t *vars = json_object_get(gq, "variables");
        if (vars && !json_is_null(vars))
            json_object_set(doc, "variables", (json_t *)vars);
        const json_t *op = json_object_get(gq, "operation_name");
        if (op && !json_is_null(op))
            json_object_set(doc, "operationName", (json_t *)op);
        x->request_body = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        x->graphql = 1;
        *json_body = 1;
    } else if (js) {
        x->request_body = json_dumps(js, JSON_COMPACT | JSON_ENCODE_ANY);
        *json_body = 1;
    } else if (body) {
        size_t bl = json_string_length(body);
        x->request_body = malloc(bl + 1);
        if (x->request_body) {
            memcpy(x->request_body, json_string_value(body), bl);
            x->request_body[bl] = '\0';
        }
        *len = bl;
        return x->request_body ? 0 : cbx_err_set(err, -ENOMEM, "out of memory");
    } else {
        return 0;
    }
    if (!x->request_body)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    *len = strlen(x->request_body);
    return 0;
}

static long long int_value(const json_t *v, long long dflt)
{
    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

static int bool_value(const json_t *v, int dflt)
{
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* The options every request sets alike, once per handle. */
static void configure(cbx__http_loop *lp, cbx__http_easy *h)
{
    CURL *e = h->curl;
    cbx__http_loop_configure(lp, e);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &h->resp);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &h->resp);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)h);
    h->configured = 1;
}

int cbx__http_request_setup(cbx__http_xfer *x, const json_t *params, cbx_err *err)
{
    cbx__http_easy *h = x->easy;
    CURL *e = h->curl;
    cbx__http_response *resp = &h->resp;
    int r;
    req_params p;
    read_params(params, &p);

    h->x = x;
    if (!h->configured)
        configure(x->lp, h);
    h->errbuf[0] = '\0';
    resp->body = NULL;
    resp->len = resp->cap = 0;
    resp->received = 0;
    resp->truncated = 0;
    resp->reason[0] = '\0';
    resp->headers = json_object();
    if (!resp->headers)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    long long max_body = int_value(p.max_body_bytes, 10LL << 20);
    resp->max_body = max_body < 0 ? 0 : (size_t)max_body;
    x->parse_json = (int8_t)(json_is_boolean(p.parse_json) ? json_is_true(p.parse_json) : -1);
    x->success_status = p.success_status;

    /* Whatever is set below beyond the URL, the timeouts and the redirects is an extra: the
     * handle is reset when it comes back. Mark it before the first such option. */
    const char *method = json_string_value(p.method);
    if (p.body || p.json || p.graphql || (method && strcmp(method, "GET") != 0) || p.headers ||
        p.bearer_token || p.basic_user || !bool_value(p.verify_tls, 1) || p.ca_file)
        h->extras = 1;

    if ((r = set_url(e, json_string_value(p.url), p.query, err)) < 0)
        return r;

    size_t body_len = 0;
    int json_body = 0;
    if ((r = make_body(x, &p, &body_len, &json_body, err)) < 0)
        return r;
    if (!method)
        method = x->request_body ? "POST" : "GET";
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        /* A plain POST (not a custom method) so that a 301/302/303 turns into a GET, as
         * browsers and RFC 9110 do. */
        curl_easy_setopt(e, CURLOPT_POST, 1L);
    } else if (strcmp(method, "GET") != 0 || x->request_body) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (x->request_body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->request_body);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    }

    if ((r = set_headers(x, p.headers, json_body, err)) < 0)
        return r;

    const char *bearer = json_string_value(p.bearer_token);
    const char *user = json_string_value(p.basic_user);
    if (bearer) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, bearer);
    } else if (user) {
        const char *pass = json_string_value(p.basic_password);
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, pass ? pass : "");
    }

    if (!bool_value(p.verify_tls, 1)) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    const char *ca = json_string_value(p.ca_file);
    if (ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca);

    /* Set on every request, also to the default (0: none of its own), as the handle may carry
     * the last request's values. */
    long long connect_ms = int_value(p.connect_timeout_ms, 0);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms > 0 ? (long)connect_ms : 0L);
    /* curl's own limit: timeout_ms, and no later than the attempt's deadline, so that the
     * transfer ends as a TIMEOUT even where nobody cancels it. */
    long long timeout_ms = int_value(p.timeout_ms, 0);
    uint64_t deadline = cbx_task_deadline_ns(x->task);
    if (deadline != UINT64_MAX) {
        uint64_t now = cbx_clock_now_ns(cbx_task_clock(x->task));
        long long left_ms = deadline > now ? (long long)((deadline - now + 999999) / 1000000) : 1;
        if (timeout_ms <= 0 || left_ms < timeout_ms)
            timeout_ms = left_ms;
    }
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? (long)timeout_ms : 0L);
    int follow = bool_value(p.follow_redirects, 1);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, follow ? (long)int_value(p.max_redirects, 5) : -1L);
    return 0;
}

void cbx__http_request_release(cbx__http_xfer *x)
{
    curl_slist_free_all(x->header_list);
    x->header_list = NULL;
    free(x->request_body);
    x->request_body = NULL;
    cbx__http_easy *h = x->easy;
    if (!h)
        return;
    cbx__http_response *resp = &h->resp;
    if (resp->body != resp->inline_body)
        free(resp->body);
    resp->body = NULL;
    resp->len = resp->cap = 0;
    json_decref(resp->headers);
    resp->headers = NULL;
}
