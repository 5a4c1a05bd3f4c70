/* Events: each one is written to the journal (table cbx_serve_events, ids from SQLite, never
 * reused) and kept in a ring of recent ones; /v1/events streams them as Server-Sent Events. A
 * client that reconnects with Last-Event-ID gets every event after that id: from the ring, or
 * from the journal when the ring no longer holds them. */
#include "server.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING         4096
#define KEEP_EVENTS  100000 /* the journal keeps the newest this many */
#define CHUNK_EVENTS 256

typedef struct ev {
    uint64_t seq;
    char kind[24];
    char *data;
} ev;

typedef struct ring {
    uint64_t first; /* the first id this process appended: older ones are in the journal only */
    ev e[RING];
} ring;

struct srv_sse {
    h2o_generator_t gen;
    h2o_req_t *req;
    srv *s;
    uint64_t cursor; /* the last id sent */
    int busy;        /* a send is in progress: wait for proceed */
    int closing;     /* send what is left, then end the stream */
    int ended;
    char *buf;
    srv_sse *prev, *next;
};

static const char create_sql[] = "CREATE TABLE IF NOT EXISTS cbx_serve_events("
                                 " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                                 " ts_ms INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL)";
static const char insert_sql[] =
    "INSERT INTO cbx_serve_events(seq, ts_ms, kind, data) VALUES(?, ?, ?, ?)";
static const char select_sql[] =
    "SELECT seq, kind, data FROM cbx_serve_events WHERE seq > ? ORDER BY seq LIMIT 256";
static const char prune_sql[] = "DELETE FROM cbx_serve_events WHERE seq <= ?";

/* ---- the journal's table -------------------------------------------------------------------- */

static int db_create(struct sqlite3 *db, void *ud, cbx_err *err)
{
    (void)ud;
    char *msg = NULL;
    if (sqlite3_exec(db, create_sql, NULL, NULL, &msg) != SQLITE_OK) {
        cbx_err_set(err, CBX_EJOURNAL, "cbx_serve_events: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return CBX_EJOURNAL;
    }
    return 0;
}

static int db_max(struct sqlite3 *db, void *ud, cbx_err *err)
{
    (void)err;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(max(seq), 0) FROM cbx_serve_events", -1, &st,
                           NULL) != SQLITE_OK)
        return CBX_EJOURNAL;
    if (sqlite3_step(st) == SQLITE_ROW)
        *(uint64_t *)ud = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* An event on its way to the journal: queued behind the journal's own records, written by its
 * flusher thread (cbx_journal_queue_db), so that the loop does none of SQLite's work for it. The
 * id is this process's (the journal's largest at start, plus one per event): one server per
 * state directory (two sharing a journal would number their events alike). */
typedef struct ins {
    cbx_journal *j;
    uint64_t seq, ts_ms;
    char kind[24];
    char data[];
} ins;

static int db_insert(struct sqlite3 *db, void *ud, cbx_err *err)
{
    ins *a = ud;
    sqlite3_stmt *st = NULL;
    int r = cbx_journal_stmt(a->j, insert_sql, &st, err);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)a->seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)a->ts_ms);
    sqlite3_bind_text(st, 3, a->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->data, -1, SQLITE_STATIC);
    r = sqlite3_step(st) == SQLITE_DONE ? 0 : CBX_EJOURNAL;
    if (r != 0)
        cbx_err_set(err, r, "cbx_serve_events: %s", sqlite3_errmsg(db));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (r == 0 && a->seq % 1000 == 0 && a->seq > KEEP_EVENTS &&
        cbx_journal_stmt(a->j, prune_sql, &st, NULL) == 0) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)(a->seq - KEEP_EVENTS));
        sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    return r;
}

/* Queue event seq for the journal; 0 or a negative code (-ENOMEM: not journaled). */
static int journal_event(srv *s, uint64_t seq, const char *kind, const char *text, size_t len)
{
    ins *a = malloc(sizeof *a + len + 1);
    if (!a)
        return -ENOMEM;
    a->j = s->journal;
    a->seq = seq;
    a->ts_ms = srv_now_ms();
    snprintf(a->kind, sizeof a->kind, "%s", kind);
    memcpy(a->data, text, len + 1);
    return cbx_journal_queue_db(s->journal, db_insert, a, free, NULL);
}

typedef struct sel {
    srv *s;
    uint64_t after;
    char *out; /* SSE text */
    size_t len, cap;
    uint64_t last;
} sel;

static int append(char **p, size_t *len, size_t *cap, uint64_t seq, const char *kind,
                  const char *data)
{
    size_t need = strlen(kind) + strlen(data) + 64;
    if (*len + need + 1 > *cap) {
        size_t c = (*cap + need + 1) * 2;
        char *n = realloc(*p, c);
        if (!n)
            return -ENOMEM;
        *p = n;
        *cap = c;
    }
    *len += (size_t)snprintf(*p + *len, *cap - *len, "id: %llu\nevent: %s\ndata: %s\n\n",
                             (unsigned long long)seq, kind, data);
    return 0;
}

static int db_select(struct sqlite3 *db, void *ud, cbx_err *err)
{
    (void)db;
    sel *q = ud;
    sqlite3_stmt *st = NULL;
    int r = cbx_journal_stmt(q->s->journal, select_sql, &st, err);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)q->after);
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        const char *data = (const char *)sqlite3_column_text(st, 2);
        if (append(&q->out, &q->len, &q->cap, seq, kind ? kind : "", data ? data : "{}") < 0)
            break;
        q->last = seq;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return 0;
}

int srv_events_init(srv *s)
{
    s->ev_ring = calloc(1, sizeof(ring));
    if (!s->ev_ring)
        return -ENOMEM;
    ((ring *)s->ev_ring)->first = 1;
    if (!s->journal)
        return 0;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_journal_write_db(s->journal, db_create, NULL, NULL, &err);
    if (r == 0)
        r = cbx_journal_read_db(s->journal, db_max, &s->ev_seq, &err);
    ((ring *)s->ev_ring)->first = s->ev_seq + 1;
    return r;
}

/* ---- SSE clients ---------------------------------------------------------------------------- */

static void unlink_client(srv *s, srv_sse *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (s->clients == c)
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->n_clients--;
}

/* Send what the client has not seen, if it is not still sending. */
static void pump(srv_sse *c)
{
    if (c->busy || c->ended)
        return;
    srv *s = c->s;
    free(c->buf);
    c->buf = NULL;
    ring *rg = s->ev_ring;
    char *out = NULL;
    size_t len = 0, cap = 0;
    uint64_t oldest = s->ev_seq >= RING ? s->ev_seq - RING + 1 : 1;
    if (oldest < rg->first)
        oldest = rg->first;
    if (c->cursor < s->ev_seq) {
        if (c->cursor + 1 < oldest && !s->journal)
            c->cursor = oldest - 1; /* gone: no journal keeps them */
        if (c->cursor + 1 >= oldest) {
            uint64_t to =
                s->ev_seq < c->cursor + CHUNK_EVENTS ? s->ev_seq : c->cursor + CHUNK_EVENTS;
            for (uint64_t q = c->cursor + 1; q <= to; q++) {
                ev *e = &rg->e[q % RING];
                if (e->seq == q && e->data &&
                    append(&out, &len, &cap, e->seq, e->kind, e->data) < 0)
                    break;
                c->cursor = q;
            }
        } else {
            sel q = {.s = s, .after = c->cursor};
            cbx_journal_read_db(s->journal, db_select, &q, NULL);
            out = q.out;
            len = q.len;
            c->cursor = q.last ? q.last : oldest - 1; /* pruned ones are gone */
        }
    }
    h2o_iovec_t iov;
    if (len) {
        c->buf = out;
        iov = h2o_iovec_init(out, len);
        c->busy = 1;
        h2o_send(c->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
    } else {
        free(out);
        if (c->closing) {
            c->ended = 1;
            c->busy = 1;
            h2o_send(c->req, NULL, 0, H2O_SEND_STATE_FINAL);
        }
    }
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    srv_sse *c = (srv_sse *)g;
    c->busy = 0;
    pump(c);
}

static void on_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    srv_sse *c = (srv_sse *)g;
    c->ended = 1;
}

static void on_dispose(void *p)
{
    srv_sse *c = p;
    if (c->s)
        unlink_client(c->s, c);
    free(c->buf);
    c->buf = NULL;
}

int srv_handle_events(srv *s, h2o_req_t *req)
{
    static const char *const allowed[] = {"last_event_id", NULL};
    if (!srv_query_only(req, allowed))
        return 0;
    if (s->stopping) {
        srv_problem(req, 503, "stopping", NULL, "the server is shutting down");
        return 0;
    }
    char idbuf[32] = "";
    ssize_t h = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    if (h >= 0)
        snprintf(idbuf, sizeof idbuf, "%.*s", (int)req->headers.entries[h].value.len,
                 req->headers.entries[h].value.base);
    else
        srv_query(req, "last_event_id", idbuf, sizeof idbuf);
    uint64_t cursor = s->ev_seq;
    if (idbuf[0]) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(idbuf, &end, 10);
        if (errno || *end || idbuf[0] == '-') {
            srv_problem(req, 400, "wrong-type", "Last-Event-ID",
                        "Last-Event-ID: expected an event id (a non-negative integer), got "
                        "'%.30s'",
                        idbuf);
            return 0;
        }
        cursor = v < s->ev_seq ? v : s->ev_seq;
    }
    srv_sse *c = h2o_mem_alloc_shared(&req->pool, sizeof *c, on_dispose);
    memset(c, 0, sizeof *c);
    c->gen.proceed = on_proceed;
    c->gen.stop = on_stop;
    c->req = req;
    c->s = s;
    c->cursor = cursor;
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    s->n_clients++;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_start_response(req, &c->gen);
    /* the first bytes: a comment and the retry delay, so that the client sees the stream open */
    static const char hello[] = ": cbx events\nretry: 1000\n\n";
    h2o_iovec_t iov = h2o_iovec_init(hello, sizeof hello - 1);
    c->busy = 1;
    h2o_send(req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

/* A comment to every idle client, so that a dead connection is noticed. */
void srv_events_keepalive(srv *s)
{
    static const char ka[] = ": keep-alive\n\n";
    for (srv_sse *c = s->clients; c; c = c->next) {
        if (c->busy || c->ended)
            continue;
        h2o_iovec_t iov = h2o_iovec_init(ka, sizeof ka - 1);
        c->busy = 1;
        h2o_send(c->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
    }
}

void srv_events_close_clients(srv *s)
{
    for (srv_sse *c = s->clients; c; c = c->next) {
        c->closing = 1;
        pump(c);
    }
}

/* ---- appending ------------------------------------------------------------------------------ */

void srv_event(srv *s, const char *kind, json_t *data)
{
    if (!data)
        return;
    char *text = NULL;
    size_t len = 0;
    if (s->journal)
        cbx_journal_encode(s->journal, data, &text, &len, NULL, NULL);
    else
        text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    if (!text) {
        s->m.events_dropped++;
        return;
    }
    uint64_t seq = s->ev_seq + 1;
    if (!len)
        len = strlen(text);
    if (s->journal && journal_event(s, seq, kind, text, len) == -ENOMEM) {
        s->m.events_dropped++;
        free(text);
        return;
    }
    ring *rg = s->ev_ring;
    ev *e = &rg->e[seq % RING];
    free(e->data);
    e->seq = seq;
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    e->data = text;
    s->ev_seq = seq;
    for (srv_sse *c = s->clients; c; c = c->next)
        pump(c);
}

void srv_events_free(srv *s)
{
    ring *rg = s->ev_ring;
    for (size_t i = 0; rg && i < RING; i++)
        free(rg->e[i].data);
    free(rg);
    s->ev_ring = NULL;
    for (srv_sse *c = s->clients; c; c = c->next)
        c->s = NULL;
    s->clients = NULL;
}
