/* http_server - a real HTTP/1.1 server on loopback for the http executor's tests and benchmark.
 *
 *   http_server [--port N] [--threads N] [--die-with-parent]
 *
 * Binds 127.0.0.1 (port 0 = any), prints the port on stdout when it is ready, and serves until
 * killed (or, with --die-with-parent, until its parent dies). Keep-alive, pipelining and Expect:
 * 100-continue are supported; each thread runs its own epoll loop on the shared listening socket.
 *
 *   /ok                          200 {"ok":true}
 *   /status/N                    status N; 503 and 429 carry Retry-After: 1, or ?retry_after=S,
 *                                or ?retry_after_date=S (an HTTP date S seconds ahead), or
 *                                ?retry_after=none
 *   /slow?ms=N&bytes=B           headers at once, then B bytes (default 1000) in 10 drips over N ms
 *   /delay?ms=N                  the whole response after N ms
 *   /drop                        closes the connection without answering
 *   /echo                        {method, path, query, headers, body, json}
 *   /redirect?to=P&code=C        C (302) to P (/ok); /redirect?count=N chains N redirects to /ok
 *   /flaky?fail=N&key=K          the first N requests for key K get 503, then 200 {"attempt":n}
 *   /graphql                     POST {query, variables, operationName} -> {"data": {...}}; a query
 *                                naming "fail" gets {"errors": [...], "data": null}
 *   /auth                        {"scheme", "fnv1a"} of the Authorization header (never the
 *                                credentials themselves); 401 without one
 *   /login                       200 {"ok":true} with the headers
 *                                Set-Cookie: sid=c00kie-from-server and
 *                                X-Auth-Token: t0ken-from-server
 *   /bytes?n=N                   N bytes of text
 *   /binary                      bytes that are not UTF-8
 *   /notjson                     application/json that does not parse
 *   /stats                       {"connections", "requests", "aborted", "open"}: connections
 *                                accepted, requests answered, connections the client closed
 *                                while a slow or delayed response was pending, connections open
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int listen_fd = -1;
static atomic_ullong stat_connections, stat_requests, stat_aborted;
static atomic_llong stat_open;

/* ---- flaky counters, shared by the threads -------------------------------------------------- */

typedef struct flaky_key {
    char key[64];
    long count;
    struct flaky_key *next;
} flaky_key;
static pthread_mutex_t flaky_lock = PTHREAD_MUTEX_INITIALIZER;
static flaky_key *flaky_keys;

static long flaky_hit(const char *key)
{
    pthread_mutex_lock(&flaky_lock);
    flaky_key *k = flaky_keys;
    while (k && strcmp(k->key, key) != 0)
        k = k->next;
    if (!k && (k = calloc(1, sizeof *k)) != NULL) {
        snprintf(k->key, sizeof k->key, "%s", key);
        k->next = flaky_keys;
        flaky_keys = k;
    }
    long n = k ? ++k->count : 1;
    pthread_mutex_unlock(&flaky_lock);
    return n;
}

/* ---- buffers -------------------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_add(buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void buf_drop(buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    if (b->p)
        b->p[b->len] = '\0';
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- connections ---------------------------------------------------------------------------- */

typedef struct conn {
    int fd;
    buf in, out;
    size_t out_off;
    int close_after;   /* close once out is written */
    int sent_continue; /* 100 Continue sent for the request in progress */
    int want_out;      /* EPOLLOUT armed */
    /* A response still being produced: the rest of a slow body, or a delayed response. */
    int pending;
    uint64_t next_at;
    uint64_t step_ms;
    size_t drip_left, drip_piece;
    buf delayed; /* a whole delayed response, sent at next_at */
    struct conn *prev, *next;
} conn;

typedef struct worker {
    int ep;
    conn *pending; /* connections with a pending response */
} worker;

static void pending_link(worker *w, conn *c)
{
    c->pending = 1;
    c->prev = NULL;
    c->next = w->pending;
    if (w->pending)
        w->pending->prev = c;
    w->pending = c;
}

static void pending_unlink(worker *w, conn *c)
{
    if (!c->pending)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->pending = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->pending = 0;
    c->prev = c->next = NULL;
}

static void conn_close(worker *w, conn *c)
{
    if (c->pending) {
        stat_aborted++;
        pending_unlink(w, c);
    }
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in.p);
    free(c->out.p);
    free(c->delayed.p);
    free(c);
    stat_open--;
}

static void arm(worker *w, conn *c)
{
    int want = c->out.len > c->out_off;
    if (want == c->want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

/* Write what is queued; -1 when the connection is gone (closed here). */
static int flush_out(worker *w, conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_close(w, c);
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
        if (c->close_after && !c->pending) {
            conn_close(w, c);
            return -1;
        }
    }
    arm(w, c);
    return 0;
}

/* ---- requests ------------------------------------------------------------------------------- */

typedef struct request {
    char method[16];
    char path[1024];
    json_t *query;   /* name -> string, or array when repeated */
    json_t *headers; /* lowercase name -> string */
    const char *body;
    size_t body_len;
} request;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void url_decode(const char *s, size_t n, buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
                   hexval((unsigned char)s[i + 2]) >= 0) {
            ch = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            i += 2;
        }
        buf_add(out, &ch, 1);
    }
}

static json_t *parse_query(const char *q)
{
    json_t *o = json_object();
    while (q && *q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        buf k = {0}, v = {0};
        url_decode(q, eq ? (size_t)(eq - q) : n, &k);
        if (eq)
            url_decode(eq + 1, n - (size_t)(eq - q) - 1, &v);
        const char *key = k.p ? k.p : "";
        json_t *val = json_string(v.p ? v.p : "");
        if (!val)
            val = json_string("?");
        json_t *old = json_object_get(o, key);
        if (json_is_array(old)) {
            json_array_append_new(old, val);
        } else if (old) {
            json_t *arr = json_array();
            json_array_append(arr, old);
            json_array_append_new(arr, val);
            json_object_set_new(o, key, arr);
        } else {
            json_object_set_new(o, key, val);
        }
        free(k.p);
        free(v.p);
        q += n;
        if (*q == '&')
            q++;
    }
    return o;
}

static const char *qstr(const request *r, const char *name, const char *dflt)
{
    const char *s = json_string_value(json_object_get(r->query, name));
    return s ? s : dflt;
}

static long qlong(const request *r, const char *name, long dflt)
{
    const char *s = qstr(r, name, NULL);
    return s ? strtol(s, NULL, 10) : dflt;
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 411:
        return "Length Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

/* Append a whole response to b. extra: more header lines, each ending in \r\n (or NULL). */
static void respond_to(buf *b, int status, const char *ctype, const char *extra, const char *body,
                       size_t body_len, int close_after)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                     status, reason(status), ctype, body_len, extra ? extra : "",
                     close_after ? "Connection: close\r\n" : "");
    buf_add(b, head, (size_t)n);
    buf_add(b, body, body_len);
}

static void respond_json(conn *c, int status, json_t *doc, const char *extra)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    respond_to(&c->out, status, "application/json", extra, text ? text : "null",
               text ? strlen(text) : 4, c->close_after);
    free(text);
    json_decref(doc);
}

static void http_date(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Serve one request. Returns 0, or -1 when the connection was dropped on purpose. */
static int serve(worker *w, conn *c, request *r)
{
    stat_requests++;
    const char *p = r->path;
    if (strcmp(p, "/ok") == 0) {
        static const char ok[] = "{\"ok\":true}";
        respond_to(&c->out, 200, "application/json", NULL, ok, sizeof ok - 1, c->close_after);
    } else if (strncmp(p, "/status/", 8) == 0) {
        int status = atoi(p + 8);
        if (status < 100 || status > 999)
            status = 400;
        char extra[128] = "";
        const char *ra = qstr(r, "retry_after", "1");
        const char *rad = qstr(r, "retry_after_date", NULL);
        if (status == 503 || status == 429) {
            if (rad) {
                char date[64];
                http_date(time(NULL) + atol(rad), date, sizeof date);
                snprintf(extra, sizeof extra, "Retry-After: %s\r\n", date);
            } else if (strcmp(ra, "none") != 0) {
                snprintf(extra, sizeof extra, "Retry-After: %s\r\n", ra);
            }
        }
        respond_json(c, status, json_pack("{si}", "status", status), extra);
    } else if (strcmp(p, "/slow") == 0) {
        long ms = qlong(r, "ms", 1000), bytes = qlong(r, "bytes", 1000);
        char head[256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %ld\r\n"
                         "\r\n",
                         bytes);
        buf_add(&c->out, head, (size_t)n);
        c->drip_left = (size_t)bytes;
        c->drip_piece = (size_t)(bytes / 10 > 0 ? bytes / 10 : 1);
        c->step_ms = (uint64_t)(ms / 10);
        c->next_at = now_ms() + c->step_ms;
        pending_link(w, c);
    } else if (strcmp(p, "/delay") == 0) {
        static const char ok[] = "{\"ok\":true,\"delayed\":true}";
        respond_to(&c->delayed, 200, "application/json", NULL, ok, sizeof ok - 1, c->close_after);
        c->next_at = now_ms() + (uint64_t)qlong(r, "ms", 1000);
        pending_link(w, c);
    } else if (strcmp(p, "/drop") == 0) {
        conn_close(w, c);
        return -1;
    } else if (strcmp(p, "/echo") == 0) {
        json_t *doc = json_object();
        json_object_set_new(doc, "method", json_string(r->method));
        json_object_set_new(doc, "path", json_string(r->path));
        json_object_set(doc, "query", r->query);
        json_object_set(doc, "headers", r->headers);
        json_t *body = json_stringn(r->body, r->body_len);
        json_object_set_new(doc, "body", body ? body : json_string("(not utf-8)"));
        json_t *parsed = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
        json_object_set_new(doc, "json", parsed ? parsed : json_null());
        respond_json(c, 200, doc, NULL);
    } else if (strcmp(p, "/redirect") == 0) {
        long count = qlong(r, "count", 0);
        char to[1100], extra[1200];
        if (count > 1)
            snprintf(to, sizeof to, "/redirect?count=%ld", count - 1);
        else
            snprintf(to, sizeof to, "%s", qstr(r, "to", "/ok"));
        snprintf(extra, sizeof extra, "Location: %s\r\n", to);
        int code = (int)qlong(r, "code", 302);
        respond_to(&c->out, code, "text/plain", extra, "", 0, c->close_after);
    } else if (strcmp(p, "/flaky") == 0) {
        long fail = qlong(r, "fail", 1);
        long n = flaky_hit(qstr(r, "key", ""));
        if (n <= fail) {
            char extra[64] = "";
            const char *ra = qstr(r, "retry_after", NULL);
            if (ra)
                snprintf(extra, sizeof extra, "Retry-After: %s\r\n", ra);
            respond_json(c, 503, json_pack("{si}", "attempt", (int)n), extra);
        } else {
            respond_json(c, 200, json_pack("{si}", "attempt", (int)n), NULL);
        }
    } else if (strcmp(p, "/graphql") == 0) {
        json_t *in = json_loadb(r->body, r->body_len, 0, NULL);
        const char *q = json_string_value(json_object_get(in, "query"));
        if (strcmp(r->method, "POST") != 0 || !q) {
            respond_json(c, 400,
                         json_pack("{s[{ss}]}", "errors", "message",
                                   "expected a POST "
                                   "of {query, variables}"),
                         NULL);
        } else if (strstr(q, "fail")) {
            respond_json(c, 200,
                         json_pack("{s[{ss}{ss}]sn}", "errors", "message", "field 'fail' failed",
                                   "message", "and another", "data"),
                         NULL);
        } else {
            json_t *vars = json_object_get(in, "variables");
            json_t *op = json_object_get(in, "operationName");
            respond_json(c, 200,
                         json_pack("{s{sssOsO}}", "data", "query", q, "variables",
                                   vars ? vars : json_null(), "operationName",
                                   op ? op : json_null()),
                         NULL);
        }
        json_decref(in);
    } else if (strcmp(p, "/auth") == 0) {
        const char *a = json_string_value(json_object_get(r->headers, "authorization"));
        if (!a) {
            respond_json(c, 401, json_pack("{ss}", "error", "no authorization"),
                         "WWW-Authenticate: Bearer\r\n");
        } else {
            const char *sp = strchr(a, ' ');
            char scheme[32];
            size_t sl = sp ? (size_t)(sp - a) : strlen(a);
            if (sl >= sizeof scheme)
                sl = sizeof scheme - 1;
            memcpy(scheme, a, sl);
            scheme[sl] = '\0';
            char hash[17];
            snprintf(hash, sizeof hash, "%016llx", (unsigned long long)fnv1a(sp ? sp + 1 : ""));
            respond_json(c, 200, json_pack("{ssss}", "scheme", scheme, "fnv1a", hash), NULL);
        }
    } else if (strcmp(p, "/login") == 0) {
        respond_json(c, 200, json_pack("{sb}", "ok", 1),
                     "Set-Cookie: sid=c00kie-from-server\r\nX-Auth-Token: t0ken-from-server\r\n");
    } else if (strcmp(p, "/bytes") == 0) {
        long n = qlong(r, "n", 100);
        if (n < 0)
            n = 0;
        char *b = malloc((size_t)n + 1);
        if (b)
            memset(b, 'x', (size_t)n);
        respond_to(&c->out, 200, "text/plain", NULL, b ? b : "", b ? (size_t)n : 0, c->close_after);
        free(b);
    } else if (strcmp(p, "/binary") == 0) {
        static const char bin[] = {(char)0xff, (char)0xfe, 0x00, (char)0x80, 'A'};
        respond_to(&c->out, 200, "application/octet-stream", NULL, bin, sizeof bin, c->close_after);
    } else if (strcmp(p, "/notjson") == 0) {
        static const char bad[] = "{\"not\": json";
        respond_to(&c->out, 200, "application/json", NULL, bad, sizeof bad - 1, c->close_after);
    } else if (strcmp(p, "/stats") == 0) {
        respond_json(c, 200,
                     json_pack("{sIsIsIsI}", "connections", (json_int_t)stat_connections,
                               "requests", (json_int_t)stat_requests, "aborted",
                               (json_int_t)stat_aborted, "open", (json_int_t)stat_open),
                     NULL);
    } else {
        respond_json(c, 404, json_pack("{ss}", "error", "no such path"), NULL);
    }
    return 0;
}

/* Parse and serve every complete request in c->in (pipelining), stopping while a response is
 * pending. Returns -1 when the connection is gone. */
static int handle_input(worker *w, conn *c)
{
    while (!c->pending && !c->close_after) {
        if (c->in.len > 0 && !(c->in.p[0] >= 'A' && c->in.p[0] <= 'Z')) {
            /* not HTTP (a TLS ClientHello, say): answer plainly and hang up */
            c->close_after = 1;
            respond_to(&c->out, 400, "text/plain", NULL, "", 0, 1);
            break;
        }
        char *end = strstr(c->in.p ? c->in.p : "", "\r\n\r\n");
        if (!end) {
            if (c->in.len > 65536) {
                c->close_after = 1;
                respond_to(&c->out, 400, "text/plain", NULL, "", 0, 1);
            }
            break;
        }
        size_t head_len = (size_t)(end - c->in.p) + 4;
        request r = {0};
        char version[16] = "";
        char target[1024] = "";
        if (sscanf(c->in.p, "%15s %1023s %15s", r.method, target, version) != 3) {
            c->close_after = 1;
            respond_to(&c->out, 400, "text/plain", NULL, "", 0, 1);
            break;
        }
        r.headers = json_object();
        const char *line = strstr(c->in.p, "\r\n") + 2;
        long content_length = 0;
        int chunked = 0, conn_close_hdr = 0, keep_alive_hdr = 0, expect = 0;
        while (line < end + 2) {
            const char *eol = strstr(line, "\r\n");
            const char *colon = memchr(line, ':', (size_t)(eol - line));
            if (colon) {
                char name[128];
                size_t nl = (size_t)(colon - line) < sizeof name - 1 ? (size_t)(colon - line)
                                                                     : sizeof name - 1;
                for (size_t i = 0; i < nl; i++)
                    name[i] = (char)tolower((unsigned char)line[i]);
                name[nl] = '\0';
                const char *v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t'))
                    v++;
                json_t *val = json_stringn(v, (size_t)(eol - v));
                if (val)
                    json_object_set_new(r.headers, name, val);
                if (strcmp(name, "content-length") == 0)
                    content_length = strtol(v, NULL, 10);
                else if (strcmp(name, "transfer-encoding") == 0)
                    chunked = 1;
                else if (strcmp(name, "connection") == 0) {
                    conn_close_hdr = strncasecmp(v, "close", 5) == 0;
                    keep_alive_hdr = strncasecmp(v, "keep-alive", 10) == 0;
                } else if (strcmp(name, "expect") == 0)
                    expect = strncasecmp(v, "100-continue", 12) == 0;
            }
            line = eol + 2;
        }
        if (chunked) {
            json_decref(r.headers);
            c->close_after = 1;
            respond_to(&c->out, 411, "text/plain", NULL, "", 0, 1);
            break;
        }
        if (c->in.len < head_len + (size_t)content_length) {
            if (expect && !c->sent_continue) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                buf_add(&c->out, cont, sizeof cont - 1);
                c->sent_continue = 1;
            }
            json_decref(r.headers);
            break;
        }
        c->sent_continue = 0;
        char *q = strchr(target, '?');
        if (q)
            *q++ = '\0';
        snprintf(r.path, sizeof r.path, "%s", target);
        r.query = parse_query(q);
        r.body = c->in.p + head_len;
        r.body_len = (size_t)content_length;
        if (conn_close_hdr || (strcmp(version, "HTTP/1.0") == 0 && !keep_alive_hdr))
            c->close_after = 1;
        int rc = serve(w, c, &r);
        json_decref(r.query);
        json_decref(r.headers);
        if (rc < 0)
            return -1;
        buf_drop(&c->in, head_len + (size_t)content_length);
    }
    return flush_out(w, c);
}

/* Advance pending responses whose time has come; returns ms to the next one, or -1. */
static int run_pending(worker *w)
{
    uint64_t now = now_ms();
    int wait = -1;
    conn *c = w->pending;
    while (c) {
        conn *next = c->next;
        if (c->next_at <= now) {
            if (c->delayed.len > 0) {
                buf_add(&c->out, c->delayed.p, c->delayed.len);
                c->delayed.len = 0;
                pending_unlink(w, c);
            } else {
                size_t n = c->drip_left < c->drip_piece ? c->drip_left : c->drip_piece;
                char piece[4096];
                while (n > 0) {
                    size_t k = n < sizeof piece ? n : sizeof piece;
                    memset(piece, 'd', k);
                    buf_add(&c->out, piece, k);
                    n -= k;
                    c->drip_left -= k;
                }
                if (c->drip_left == 0)
                    pending_unlink(w, c);
                else
                    c->next_at = now + c->step_ms;
            }
            int gone = flush_out(w, c) < 0;
            if (!gone && !c->pending)
                gone = handle_input(w, c) < 0;
            if (gone) {
                c = next;
                continue;
            }
        }
        if (c->pending) {
            int ms = c->next_at > now ? (int)(c->next_at - now) : 0;
            if (wait < 0 || ms < wait)
                wait = ms;
        }
        c = next;
    }
    return wait;
}

static void on_readable(worker *w, conn *c)
{
    char tmp[16384];
    for (;;) {
        ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
        if (n > 0) {
            buf_add(&c->in, tmp, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        conn_close(w, c); /* EOF or an error */
        return;
    }
    handle_input(w, c);
}

static void on_accept(worker *w)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
        stat_connections++;
        stat_open++;
    }
}

static void *worker_main(void *arg)
{
    (void)arg;
    worker w = {.ep = epoll_create1(EPOLL_CLOEXEC)};
    static char listen_tag;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &listen_tag};
    epoll_ctl(w.ep, EPOLL_CTL_ADD, listen_fd, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int timeout = run_pending(&w);
        int n = epoll_wait(w.ep, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &listen_tag) {
                on_accept(&w);
                continue;
            }
            conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(&w, c); /* reads to EOF and closes on HUP */
            else if (evs[i].events & EPOLLOUT)
                flush_out(&w, c);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0, threads = 1, die_with_parent = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--die-with-parent") == 0)
            die_with_parent = 1;
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--port N] [--threads N] [--die-with-parent]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1)
        threads = 1;
    if (die_with_parent) {
        /* Never outlive the test or benchmark that started us, even when it is killed. */
        pid_t parent = getppid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listen_fd, 4096) < 0) {
        perror("http_server: bind/listen");
        return 1;
    }
    socklen_t al = sizeof addr;
    getsockname(listen_fd, (struct sockaddr *)&addr, &al);
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    for (int i = 1; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, worker_main, NULL);
        pthread_detach(t);
    }
    worker_main(NULL);
    return 0;
}
