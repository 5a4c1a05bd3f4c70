/* The postgres executor's per-loop state: pools of connections per connection target, opening
 * connections without blocking, and the sockets' uv_poll handles (see pg.h). */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "executors/db/pg.h"

static void loop_maybe_free(pg_loop *lp)
{
    if (!lp->closing || lp->conns || lp->queries)
        return;
    pg_pool *p = lp->pools;
    while (p) {
        pg_pool *next = p->next;
        free(p->key);
        free(p->label);
        free(p);
        p = next;
    }
    free(lp);
}

void cbx__pg_loop_query_end(pg_loop *lp)
{
    lp->queries--;
    loop_maybe_free(lp);
}

int cbx__pg_loop_open(void *uv_loop, pg_loop **out)
{
    pg_loop *lp = calloc(1, sizeof *lp);
    if (!lp)
        return -ENOMEM;
    lp->loop = uv_loop;
    *out = lp;
    return 0;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void poll_freed(uv_handle_t *h)
{
    free(h);
}

static void stmts_free(pg_conn *c)
{
    for (int i = 0; i < c->nstmts; i++)
        free(c->stmts[i].sql);
    c->nstmts = 0;
}

static void conn_freed(uv_handle_t *h)
{
    pg_conn *c = h->data;
    pg_loop *lp = c->pool->lp;
    free(h);
    stmts_free(c);
    PQfinish(c->pg); /* the socket closes only once libuv has let go of it */
    free(c);
    lp->conns--;
    loop_maybe_free(lp);
}

/* Close c (it is in no list). */
static void conn_close(pg_conn *c)
{
    c->pool->open--;
    if (c->poll) {
        c->poll->data = c;
        uv_close((uv_handle_t *)c->poll, conn_freed);
        c->poll = NULL;
        return;
    }
    pg_loop *lp = c->pool->lp;
    stmts_free(c);
    PQfinish(c->pg);
    free(c);
    lp->conns--;
    loop_maybe_free(lp);
}

static void conn_event(uv_poll_t *h, int status, int events);

int cbx__pg_conn_watch(pg_conn *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -EBADF;
    if (c->poll && fd != c->fd) { /* libpq moved to another socket (another host or address) */
        uv_close((uv_handle_t *)c->poll, poll_freed);
        c->poll = NULL;
    }
    if (!c->poll) {
        c->poll = malloc(sizeof *c->poll);
        if (!c->poll)
            return -ENOMEM;
        int r = uv_poll_init(c->pool->lp->loop, c->poll, fd);
        if (r < 0) {
            free(c->poll);
            c->poll = NULL;
            return r;
        }
        c->poll->data = c;
        c->fd = fd;
        c->events = 0;
    }
    if (events == c->events) /* no epoll_ctl for a watch that is already there */
        return 0;
    int r = uv_poll_start(c->poll, events, conn_event);
    c->events = r < 0 ? 0 : events;
    return r;
}

/* An idle connection keeps its socket watched for reading (so that a server that closes it is
 * noticed at once), without keeping the loop alive; one in use keeps it alive. */
static void conn_idle_watch(pg_conn *c, int idle)
{
    if (cbx__pg_conn_watch(c, UV_READABLE) < 0 || !c->poll)
        return;
    if (idle)
        uv_unref((uv_handle_t *)c->poll);
    else
        uv_ref((uv_handle_t *)c->poll);
}

static void pool_next(pg_pool *p);

static void connect_step(pg_conn *c)
{
    pg_query *q = c->q;
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    int r = 0;
    switch (st) {
    case PGRES_POLLING_READING:
        r = cbx__pg_conn_watch(c, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        r = cbx__pg_conn_watch(c, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        c->connecting = 0;
        if (PQsetnonblocking(c->pg, 1) != 0) {
            r = -EIO;
            break;
        }
        conn_idle_watch(c, q == NULL);
        if (q)
            cbx__pg_query_ready(q);
        else
            cbx__pg_pool_release(c->pool, c, 0);
        return;
    default:
        r = -ECONNREFUSED;
        break;
    }
    if (r == 0)
        return;
    char why[400];
    cbx__pg_one_line(PQerrorMessage(c->pg), why, sizeof why);
    if (!why[0])
        snprintf(why, sizeof why, "%s", uv_strerror(r));
    pg_pool *p = c->pool;
    c->q = NULL;
    conn_close(c);
    if (q) {
        q->conn = NULL;
        cbx__pg_query_fail(q, why);
    }
    pool_next(p);
}

static void conn_event(uv_poll_t *h, int status, int events)
{
    pg_conn *c = h->data;
    if (c->connecting) {
        connect_step(c);
        return;
    }
    if (c->q) {
        cbx__pg_query_io(c->q, status, events);
        return;
    }
    /* an idle connection should hear nothing: the server closed it, or is about to */
    pg_pool *p = c->pool;
    for (pg_conn **pp = &p->idle; *pp; pp = &(*pp)->next_idle)
        if (*pp == c) {
            *pp = c->next_idle;
            conn_close(c);
            return;
        }
}

/* The server's notices (NOTICE, WARNING) go to the attempt's metadata, never to stderr as
 * libpq's default receiver would print them. */
static void on_notice(void *arg, const PGresult *res)
{
    pg_conn *c = arg;
    if (!c->q)
        return;
    char line[400];
    cbx__pg_one_line(PQresultErrorMessage(res), line, sizeof line);
    if (!c->q->notices)
        c->q->notices = json_array();
    if (c->q->notices && json_array_size(c->q->notices) < 100)
        json_array_append_new(c->q->notices, json_string(line));
}

static int conn_open(pg_pool *p, pg_query *q)
{
    /* the key holds conninfo, host, port, dbname, user, password in that order */
    const char *vals[6];
    char *copy = strdup(p->key);
    pg_conn *c = calloc(1, sizeof *c);
    if (!copy || !c) {
        free(copy);
        free(c);
        return -ENOMEM;
    }
    char *s = copy;
    for (int i = 0; i < 6; i++) {
        vals[i] = s;
        char *sep = strchr(s, '\x1f');
        if (sep) {
            *sep = '\0';
            s = sep + 1;
        } else {
            s += strlen(s);
        }
    }
    const char *keys[10], *values[10];
    int n = 0;
    static const char *const names[6] = {"dbname", "host", "port", "dbname", "user", "password"};
    for (int i = 0; i < 6; i++)
        if (vals[i][0] || i == 0) {
            keys[n] = names[i];
            values[n++] = vals[i];
        }
    keys[n] = "client_encoding"; /* rows become JSON strings, which must be UTF-8 */
    values[n++] = "UTF8";
    keys[n] = "fallback_application_name";
    values[n++] = "cbx";
    keys[n] = NULL;
    values[n] = NULL;
    c->pg = PQconnectStartParams(keys, values, 1);
    free(copy);
    if (c->pg)
        PQsetNoticeReceiver(c->pg, on_notice, c);
    c->pool = p;
    c->fd = -1;
    c->connecting = 1;
    c->q = q;
    p->open++;
    p->lp->conns++;
    if (q)
        q->conn = c;
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        char why[400];
        cbx__pg_one_line(c->pg ? PQerrorMessage(c->pg) : "out of memory", why, sizeof why);
        c->q = NULL;
        conn_close(c);
        if (q) {
            q->conn = NULL;
            cbx__pg_query_fail(q, why);
        }
        return 0;
    }
    /* PQconnectStartParams has begun: go on as if it had asked to write */
    int r = cbx__pg_conn_watch(c, UV_WRITABLE);
    if (r < 0) {
        c->q = NULL;
        conn_close(c);
        if (q) {
            q->conn = NULL;
            cbx__pg_query_fail(q, uv_strerror(r));
        }
    }
    return 0;
}

/* 1 when an idle connection is still good: libpq thinks so, and nothing arrived on its socket
 * while idle (a server going down sends a FATAL message and closes; we drop it rather than find
 * out by sending a statement into it). The loop's watch sees that at its next turn; a connection
 * idle for longer than CHECK_IDLE_NS is also asked at once (one poll()), for the turn's gap. */
#define CHECK_IDLE_NS 1000000u
static int conn_healthy(pg_conn *c)
{
    if (PQstatus(c->pg) != CONNECTION_OK)
        return 0;
    if (uv_hrtime() - c->idle_since_ns < CHECK_IDLE_NS)
        return 1;
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
    if (pfd.fd < 0)
        return 0;
    int r = poll(&pfd, 1, 0);
    return r == 0;
}

/* Hand connections and openings to waiters while there is room. */
static void pool_next(pg_pool *p)
{
    while (p->wait_head) {
        pg_query *q = p->wait_head;
        if (!p->idle && p->open >= p->max)
            return;
        p->wait_head = q->wait_next;
        if (!p->wait_head)
            p->wait_tail = NULL;
        q->wait_next = NULL;
        cbx__pg_pool_acquire(p, q);
    }
}

void cbx__pg_pool_acquire(pg_pool *p, pg_query *q)
{
    while (p->idle) {
        pg_conn *c = p->idle;
        p->idle = c->next_idle;
        c->next_idle = NULL;
        if (!conn_healthy(c)) {
            conn_close(c);
            continue;
        }
        conn_idle_watch(c, 0);
        c->q = q;
        c->reused = 1;
        q->conn = c;
        cbx__pg_query_ready(q);
        return;
    }
    if (p->open < p->max) {
        q->phase = PGQ_CONNECTING;
        if (conn_open(p, q) < 0)
            cbx__pg_query_fail(q, "out of memory");
        return;
    }
    q->phase = PGQ_WAITING;
    if (p->wait_tail)
        p->wait_tail->wait_next = q;
    else
        p->wait_head = q;
    p->wait_tail = q;
}

void cbx__pg_pool_unqueue(pg_pool *p, pg_query *q)
{
    pg_query **pp = &p->wait_head, *prev = NULL;
    while (*pp && *pp != q) {
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    if (!*pp)
        return;
    *pp = q->wait_next;
    if (p->wait_tail == q)
        p->wait_tail = prev;
    q->wait_next = NULL;
}

void cbx__pg_pool_release(pg_pool *p, pg_conn *c, int broken)
{
    c->q = NULL;
    if (broken || p->lp->closing || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        conn_close(c);
    } else {
        conn_idle_watch(c, 1);
        c->idle_since_ns = uv_hrtime();
        c->next_idle = p->idle;
        p->idle = c;
    }
    pool_next(p);
}

pg_stmt *cbx__pg_stmt_find(pg_conn *c, const char *sql, int nparams)
{
    uint64_t h = cbx__fnv1a(CBX__FNV_OFFSET, sql, strlen(sql));
    for (int i = 0; i < c->nstmts; i++)
        if (c->stmts[i].hash == h && c->stmts[i].nparams == nparams &&
            strcmp(c->stmts[i].sql, sql) == 0)
            return &c->stmts[i];
    if (c->nstmts == CBX__PG_STMT_CACHE)
        return NULL; /* full: the rest go out unprepared */
    char *copy = strdup(sql);
    if (!copy)
        return NULL;
    pg_stmt *st = &c->stmts[c->nstmts++];
    *st = (pg_stmt){.sql = copy, .hash = h, .nparams = nparams};
    return st;
}

void cbx__pg_stmt_forget(pg_conn *c, pg_stmt *st)
{
    /* the entry stays (a slot is not reused), unprepared; a later sight prepares it afresh
     * under a new name */
    (void)c;
    st->prepared = 0;
    st->seen = 1;
}

/* ---- pools ---------------------------------------------------------------------------------- */

static const char *str(const json_t *params, const char *key)
{
    const char *s = json_string_value(json_object_get(params, key));
    return s ? s : "";
}

/* "host=... port=... dbname=... user=..." from conninfo and the separate parameters, without
 * the password or any other option. */
static char *make_label(const json_t *params)
{
    const char *keys[] = {"host", "port", "dbname", "user"};
    const char *vals[4] = {"", "", "", ""};
    PQconninfoOption *opts = NULL;
    const char *ci = str(params, "conninfo");
    if (ci[0])
        opts = PQconninfoParse(ci, NULL);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        for (int i = 0; i < 4; i++)
            if (o->val && o->val[0] && strcmp(o->keyword, keys[i]) == 0)
                vals[i] = o->val;
    char buf[512];
    size_t n = 0;
    buf[0] = '\0';
    char port[24] = "";
    const json_t *pj = json_object_get(params, "port");
    if (json_is_integer(pj))
        snprintf(port, sizeof port, "%lld", (long long)json_integer_value(pj));
    for (int i = 0; i < 4; i++) {
        const char *v = i == 1 ? port : str(params, keys[i]);
        if (!v[0])
            v = vals[i];
        if (v[0] && n < sizeof buf)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s=%s", n ? " " : "", keys[i], v);
    }
    if (opts)
        PQconninfoFree(opts);
    return strdup(n ? buf : "(libpq defaults)");
}

/* The connection parameters that make a target, in the order of a pool's key. */
static void target_fields(const json_t *params, const char *f[6], char port[24])
{
    const json_t *pj = json_object_get(params, "port");
    port[0] = '\0';
    if (json_is_integer(pj))
        snprintf(port, 24, "%lld", (long long)json_integer_value(pj));
    f[0] = str(params, "conninfo");
    f[1] = str(params, "host");
    f[2] = port;
    f[3] = str(params, "dbname");
    f[4] = str(params, "user");
    f[5] = str(params, "password");
}

/* 1 when key is the six fields joined by \x1f (compared in place: no allocation on the path
 * every statement takes). */
static int key_matches(const char *key, const char *const f[6])
{
    for (int i = 0; i < 6; i++) {
        size_t n = strlen(f[i]);
        if (strncmp(key, f[i], n) != 0)
            return 0;
        key += n;
        if (*key != (i < 5 ? '\x1f' : '\0'))
            return 0;
        key++;
    }
    return 1;
}

pg_pool *cbx__pg_pool_get(pg_loop *lp, const json_t *params)
{
    const char *f[6];
    char port[24];
    target_fields(params, f, port);
    for (pg_pool *p = lp->pools; p; p = p->next)
        if (key_matches(p->key, f))
            return p;
    char *key = NULL;
    if (asprintf(&key, "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s", f[0], f[1], f[2], f[3], f[4], f[5]) < 0)
        return NULL;
    pg_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->label = make_label(params))) {
        free(p);
        free(key);
        return NULL;
    }
    p->lp = lp;
    p->key = key;
    p->max = (int)json_integer_value(json_object_get(params, "pool_size"));
    if (p->max < 1)
        p->max = 1;
    p->next = lp->pools;
    lp->pools = p;
    return p;
}

void cbx__pg_loop_close(pg_loop *lp)
{
    if (!lp)
        return;
    lp->closing = 1;
    for (pg_pool *p = lp->pools; p; p = p->next)
        while (p->idle) {
            pg_conn *c = p->idle;
            p->idle = c->next_idle;
            conn_close(c);
        }
    loop_maybe_free(lp);
}
