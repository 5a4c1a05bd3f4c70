/* The AWS Lambda Runtime API (2018-06-01) served to one runtime process on 127.0.0.1, on the
 * loop: requests parsed by libhttp_parser (http_parser.c), routed to the owner's callbacks
 * (local.h, cbx__rapi_ops).
 *
 *   GET  /2018-06-01/runtime/invocation/next           parked until an event is delivered
 *   POST /2018-06-01/runtime/invocation/ID/response    202, or 400 InvalidRequestID
 *   POST /2018-06-01/runtime/invocation/ID/error       202, or 400 InvalidRequestID
 *   POST /2018-06-01/runtime/init/error                202
 *   anything else                                      404 (405 for a wrong method)
 *
 * One server per runtime process, so a request's port says which runtime made it. Bodies are
 * kept up to 6 MB (Lambda's limit for a synchronous response; 413 beyond). Connections are kept
 * alive when the client asks for it. */
#include <errno.h>
#include <http_parser.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/strbuf.h"
#include "executors/serverless/local.h"

#define BODY_MAX ((size_t)6 << 20)
#define PREFIX   "/2018-06-01/runtime/"

typedef struct conn conn;

struct cbx__rapi {
    uv_tcp_t listener;
    const cbx__rapi_ops *ops;
    void *ud;
    conn *conns;
    conn *parked; /* the /next waiting for an event, or NULL */
    int handles;  /* the listener and each connection, until their close callbacks */
    int closing;
    /* The read buffer, made at the first read: each read is parsed before the loop's next. (A
     * 64 KiB thread-local array instead was zeroed in every thread the process started.) */
    char *rbuf;
};

#define RBUF_BYTES 65536

struct conn {
    uv_tcp_t tcp;
    cbx__rapi *s;
    conn *prev, *next;
    http_parser p;
    char url[512];
    size_t url_len;
    char field[64];
    size_t field_len;
    int in_value;   /* the last header callback was for a value */
    int want_etype; /* the value being read is Lambda-Runtime-Function-Error-Type's */
    char etype[128];
    size_t etype_len;
    cbx__buf body;
    int too_big, closing, keep_alive;
};

typedef struct reply {
    uv_write_t req;
    conn *c;
    int close_after;
    size_t len;
    char data[];
} reply;

static http_parser_settings settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void maybe_free(cbx__rapi *s)
{
    if (s->closing && s->handles == 0) {
        free(s->rbuf);
        free(s);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    cbx__rapi *s = c->s;
    free(c->body.p);
    free(c);
    s->handles--;
    maybe_free(s);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    cbx__rapi *s = c->s;
    if (s->parked == c)
        s->parked = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
    reply *r = (reply *)req;
    if ((status < 0 || r->close_after) && !r->c->closing)
        conn_close(r->c);
    free(r);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    default:
        return "Error";
    }
}

static void send_reply(conn *c, int status, const char *const *headers, const char *body,
                       size_t len)
{
    if (c->closing)
        return;
    size_t hl = 160;
    for (const char *const *h = headers; h && h[0]; h += 2)
        hl += strlen(h[0]) + strlen(h[1]) + 4;
    reply *r = malloc(sizeof *r + hl + len);
    if (!r) {
        conn_close(c);
        return;
    }
    int n = snprintf(r->data, hl,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\n%s",
                     status, reason(status), len, c->keep_alive ? "" : "Connection: close\r\n");
    size_t o = (size_t)n;
    for (const char *const *h = headers; h && h[0]; h += 2)
        o += (size_t)snprintf(r->data + o, hl - o, "%s: %s\r\n", h[0], h[1]);
    o += (size_t)snprintf(r->data + o, hl - o, "\r\n");
    if (len)
        memcpy(r->data + o, body, len);
    r->len = o + len;
    r->c = c;
    r->close_after = !c->keep_alive;
    uv_buf_t b = uv_buf_init(r->data, (unsigned)r->len);
    if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        free(r);
        conn_close(c);
    }
}

static void send_error(conn *c, int status, const char *type, const char *msg)
{
    json_t *j = json_pack("{s:s, s:s}", "errorMessage", msg, "errorType", type);
    char *b = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    send_reply(c, status, NULL, b ? b : "{}", b ? strlen(b) : 2);
    free(b);
}

static void accepted(conn *c)
{
    static const char ok[] = "{\"status\":\"OK\"}";
    send_reply(c, 202, NULL, ok, sizeof ok - 1);
}

int cbx__rapi_deliver(cbx__rapi *s, const char *const *headers, const char *body, size_t len)
{
    conn *c = s->parked;
    if (!c)
        return -EAGAIN;
    s->parked = NULL;
    send_reply(c, 200, headers, body, len);
    return 0;
}

/* ---- routing ------------------------------------------------------------------------------- */

static void dispatch(conn *c)
{
    cbx__rapi *s = c->s;
    c->keep_alive = cbx__hp.should_keep_alive(&c->p);
    c->url[c->url_len] = '\0';
    char *q = strchr(c->url, '?');
    if (q)
        *q = '\0';
    const char *path = c->url;
    int get = c->p.method == HTTP_GET, post = c->p.method == HTTP_POST;
    if (strncmp(path, PREFIX, sizeof PREFIX - 1) != 0) {
        send_error(c, 404, "NotFound", "no such resource in the Lambda Runtime API");
        return;
    }
    path += sizeof PREFIX - 1;
    if (c->too_big) {
        send_error(c, 413, "RequestEntityTooLarge", "the body is over 6 MB");
        return;
    }
    const char *body = c->body.p ? c->body.p : "";
    c->etype[c->etype_len] = '\0';
    if (!strcmp(path, "invocation/next")) {
        if (!get) {
            send_error(c, 405, "MethodNotAllowed", "GET only");
            return;
        }
        if (s->parked && s->parked != c)
            send_error(s->parked, 400, "InvalidRequest", "a newer /next replaced this one");
        s->parked = c;
        s->ops->next(s->ud);
        return;
    }
    if (!strcmp(path, "init/error")) {
        if (!post) {
            send_error(c, 405, "MethodNotAllowed", "POST only");
            return;
        }
        accepted(c);
        s->ops->init_error(s->ud, c->etype, body, c->body.len);
        return;
    }
    if (!strncmp(path, "invocation/", 11)) {
        const char *id = path + 11, *slash = strchr(id, '/');
        if (slash && (!strcmp(slash, "/response") || !strcmp(slash, "/error"))) {
            if (!post) {
                send_error(c, 405, "MethodNotAllowed", "POST only");
                return;
            }
            char rid[64];
            snprintf(rid, sizeof rid, "%.*s", (int)(slash - id), id);
            int error = !strcmp(slash, "/error");
            if (s->ops->result(s->ud, rid, error, c->etype, body, c->body.len))
                accepted(c);
            else
                send_error(c, 400, "InvalidRequestID", "no invocation in progress has this id");
            return;
        }
    }
    send_error(c, 404, "NotFound", "no such resource in the Lambda Runtime API");
}

/* ---- parser callbacks ---------------------------------------------------------------------- */

static int on_begin(http_parser *p)
{
    conn *c = p->data;
    c->url_len = c->field_len = c->etype_len = c->body.len = 0;
    c->body.oom = 0;
    c->in_value = c->want_etype = c->too_big = 0;
    return 0;
}

/* Append at[0..len) to buf (of cap bytes, *used so far), what does not fit left out: the parser
 * hands a URL or a header in pieces. */
static void append_capped(char *buf, size_t cap, size_t *used, const char *at, size_t len)
{
    size_t room = cap - 1 - *used;
    if (len > room)
        len = room;
    memcpy(buf + *used, at, len);
    *used += len;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    append_capped(c->url, sizeof c->url, &c->url_len, at, len);
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->in_value) {
        c->field_len = 0;
        c->in_value = 0;
    }
    append_capped(c->field, sizeof c->field, &c->field_len, at, len);
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (!c->in_value) {
        c->in_value = 1;
        c->field[c->field_len] = '\0';
        c->want_etype = !strcasecmp(c->field, "Lambda-Runtime-Function-Error-Type");
        if (c->want_etype)
            c->etype_len = 0;
    }
    if (c->want_etype)
        append_capped(c->etype, sizeof c->etype, &c->etype_len, at, len);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->too_big || c->body.len + len > BODY_MAX) {
        c->too_big = 1;
        return 0;
    }
    cbx__buf_put(&c->body, at, len);
    if (c->body.oom)
        c->too_big = 1;
    return 0;
}

static int on_complete(http_parser *p)
{
    dispatch(p->data);
    return 0;
}

/* ---- the sockets --------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    cbx__rapi *s = ((conn *)h->data)->s;
    if (!s->rbuf)
        s->rbuf = malloc(RBUF_BYTES);
    /* no buffer: libuv reports UV_ENOBUFS to on_read, which closes the connection */
    *buf = uv_buf_init(s->rbuf, s->rbuf ? RBUF_BYTES : 0);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    conn *c = st->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0)
        return;
    size_t used = cbx__hp.execute(&c->p, &settings, buf->base, (size_t)n);
    if (!c->closing && (c->p.http_errno != HPE_OK || used != (size_t)n)) {
        c->keep_alive = 0;
        send_error(c, 400, "InvalidRequest", cbx__hp.errno_description((int)c->p.http_errno));
    }
}

static void on_connection(uv_stream_t *l, int status)
{
    cbx__rapi *s = l->data;
    if (status < 0 || s->closing)
        return;
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->s = s;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    s->handles++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    cbx__hp.init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    cbx__rapi *s = h->data;
    s->handles--;
    maybe_free(s);
}

static void settings_fill(void)
{
    cbx__hp.settings_init(&settings);
    settings.on_message_begin = on_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_field;
    settings.on_header_value = on_value;
    settings.on_body = on_body;
    settings.on_message_complete = on_complete;
}

int cbx__rapi_open(uv_loop_t *loop, const cbx__rapi_ops *ops, void *ud, cbx__rapi **out, int *port,
                   cbx_err *err)
{
    int r = cbx__hp_load(err);
    if (r < 0)
        return r;
    pthread_once(&settings_once, settings_fill);
    cbx__rapi *s = calloc(1, sizeof *s);
    if (!s)
        return cbx_err_set(err, -ENOMEM, "serverless: out of memory");
    s->ops = ops;
    s->ud = ud;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->handles = 1;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    struct sockaddr_storage got;
    int gl = sizeof got;
    if ((r = uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0)) < 0 ||
        (r = uv_listen((uv_stream_t *)&s->listener, 16, on_connection)) < 0 ||
        (r = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &gl)) < 0) {
        cbx_err_set(err, r, "serverless: cannot listen on 127.0.0.1 for the Runtime API: %s",
                    uv_strerror(r));
        cbx__rapi_close(s);
        return r;
    }
    *port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    *out = s;
    return 0;
}

void cbx__rapi_close(cbx__rapi *s)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
