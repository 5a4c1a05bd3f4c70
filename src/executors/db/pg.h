/* The postgres executor: SQL through libpq in non-blocking mode on the runtime's libuv loop.
 *
 * A runtime keeps one pg_loop (the type's loop_init state), which keeps a small pool of
 * connections per connection target (conninfo and the separate host/port/dbname/user/password
 * parameters). A task takes an idle connection (one whose socket has turned readable while idle
 * - the server closed it, say at a restart - is dropped instead), or opens one when the pool
 * has room (PQconnectStartParams, PQconnectPoll), or waits in the pool's queue. It sends its
 * statement with PQsendQueryParams (parameters bound as text, never interpolated), waits on the
 * socket with a uv_poll_t and reads with PQconsumeInput/PQgetResult. Nothing blocks the loop
 * except PQcancel, which runs on the thread pool.
 *
 * A statement timeout (or the runtime's cancel) sends a cancel request to the server and waits
 * for the statement's own answer (query_canceled), so that when the attempt reports, the server
 * no longer runs it; a server that does not answer within a grace period gets its connection
 * closed instead. A connection that breaks before the statement was handed to the kernel is
 * dropped and the statement retried once on a fresh one; one that breaks later is reported.
 *
 * Files: postgres.c (the type: schema, validation, start/cancel), pg_pool.c (the per-loop state,
 * pools, connections), pg_query.c (one attempt's statements on a connection), pg_rows.c (results
 * as JSON, error text), pq_lib.c (libpq through dlopen).
 */
#ifndef CBX_EXECUTORS_DB_PG_H
#define CBX_EXECUTORS_DB_PG_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "cbx/executor.h"
#include "executors/db/pq_lib.h"

typedef struct pg_loop pg_loop;
typedef struct pg_pool pg_pool;
typedef struct pg_conn pg_conn;
typedef struct pg_query pg_query;

/* How long the server gets to answer a cancel before its connection is closed, in ms. */
#define CBX__PG_CANCEL_GRACE_MS 5000

/* Statements a connection has seen, for preparing the ones that come back: the first sight
 * goes out as PQsendQueryParams; the second prepares it (PQsendPrepare, one extra round trip
 * for this connection only); later ones send just Bind/Execute (PQsendQueryPrepared). */
#define CBX__PG_STMT_CACHE 32
typedef struct pg_stmt {
    char *sql;     /* malloc'd */
    uint64_t hash; /* of sql */
    int nparams;
    int seen;     /* sent before (unprepared) */
    int prepared; /* the server holds it as cbx_<name> */
    unsigned name;
} pg_stmt;

struct pg_conn {
    PGconn *pg;
    pg_stmt stmts[CBX__PG_STMT_CACHE];
    int nstmts;
    unsigned next_name;
    pg_pool *pool;
    pg_conn *next_idle;
    pg_query *q;            /* the attempt using it; NULL while idle */
    uv_poll_t *poll;        /* malloc'd: libpq may change sockets while connecting */
    int fd;                 /* the socket poll watches; -1 none */
    int events;             /* what poll watches: UV_READABLE, UV_WRITABLE */
    uint64_t idle_since_ns; /* uv_hrtime() when it was last given back */
    int connecting;         /* still in PQconnectPoll */
    int reused;             /* has served an earlier attempt */
};

struct pg_pool {
    pg_loop *lp;
    pg_pool *next;
    char *key;     /* the connection parameters, \x1f-separated (holds the password: memory only) */
    char *label;   /* "host=... port=... dbname=... user=..." without secrets */
    pg_conn *idle; /* most recently used first */
    int open;      /* connections open or opening */
    int max;       /* pool_size of the request that made the pool */
    pg_query *wait_head, *wait_tail;
};

struct pg_loop {
    uv_loop_t *loop;
    pg_pool *pools;
    int conns;   /* pg_conn allocated (their close callbacks pending included) */
    int queries; /* attempts started and not yet reported */
    int closing; /* loop_close was called: free when conns and queries reach 0 */
};

/* The phases of one attempt. */
enum { PGQ_WAITING, PGQ_CONNECTING, PGQ_RUNNING, PGQ_FINISHING };

/* Per-attempt state (cbx_task_state). */
struct pg_query {
    cbx_task *t;
    pg_loop *lp;
    pg_pool *pool;
    pg_conn *conn;
    pg_query *wait_next;
    uv_timer_t timer; /* connect timeout, then statement timeout, then cancel grace */
    uv_work_t cancel_work;
    PGcancel *cancel_obj;
    char cancel_err[256];
    json_t *results;    /* one object per statement of the plan that returned */
    json_t *meta_error; /* sqlstate, position, detail, hint of a failure; NULL */
    char *error;        /* the failure's one line; NULL while none */
    cbx_outcome outcome;
    uint64_t t0_ns;
    size_t step; /* index into the plan: BEGIN?, statements..., COMMIT? */
    size_t nsteps;
    int phase;
    int transaction;  /* statements: BEGIN ... COMMIT around them */
    int rolling_back; /* a statement failed: ROLLBACK is out */
    int sent;         /* the current step has been handed to libpq */
    int timer_closed;
    int cancel_busy;      /* PQcancel runs on the thread pool */
    int cancelling;       /* a cancel was sent (timeout or runtime cancel) */
    int timed_out;        /* statement_timeout_ms passed */
    int stopped;          /* the runtime cancelled the attempt */
    int retried;          /* the statement was retried once on a new connection */
    int finish_wanted;    /* report once the cancel work is back */
    int cancel_failed;    /* PQcancel said no (cancel_err says why) */
    int cancel_confirmed; /* the statement ended with query_canceled */
    int backend_pid;
    int preparing;     /* the current step's PQsendPrepare is out */
    int prepared_send; /* the current step went out as PQsendQueryPrepared */
    int unprepared;    /* the current step must go out as PQsendQueryParams (a retry) */
    int replan;        /* the server refused a cached statement: send the step again */
    int terminated;    /* the server ended the session before the step ran (57P0x) */
    pg_stmt *stmt;
    /* the current step's cache entry; NULL */ /* LISTEN (the listen parameter): LISTEN goes out
                                                * first, the statements (if any) next, then the
                                                * attempt waits for notifications, then UNLISTEN
                                                * * leaves the connection clean */
    int listen_stage;                          /* one of PGL_* */
    char *listen_sql;                          /* LISTEN "channel" (malloc'd) */
    json_t *notes;   /* the notifications received: [{channel, payload, pid}] */
    json_t *notices; /* the server's NOTICE and WARNING messages, one line each; NULL */
};

enum { PGL_NONE, PGL_LISTEN, PGL_STATEMENTS, PGL_WAITING, PGL_UNLISTEN, PGL_CLEAN };

/* ---- pg_pool.c ---- */

/* The type's loop hooks: a small allocation (nothing of libpq); close frees at once when no
 * attempt and connection is left, else when the last has ended. */
int cbx__pg_loop_open(void *uv_loop, pg_loop **out);
void cbx__pg_loop_close(pg_loop *lp);
/* An attempt has reported (frees a closing lp after its last). */
void cbx__pg_loop_query_end(pg_loop *lp);
/* The pool for the task's connection parameters, made on first use. NULL when out of memory. */
pg_pool *cbx__pg_pool_get(pg_loop *lp, const json_t *params);
/* Give q a connection: at once (cbx__pg_query_ready is called before this returns), or once one
 * is opened (cbx__pg_query_ready, or cbx__pg_query_fail when connecting failed), or once
 * another attempt gives one back. */
void cbx__pg_pool_acquire(pg_pool *pool, pg_query *q);
/* Take q out of the pool's queue (a cancel while waiting). */
void cbx__pg_pool_unqueue(pg_pool *pool, pg_query *q);
/* q is done with its connection: back to the pool (or the next waiter) when healthy and idle
 * (no transaction open), else closed. */
void cbx__pg_pool_release(pg_pool *pool, pg_conn *c, int broken);
/* The cache entry for sql on c (made on first sight when there is room; NULL when full), and
 * forgetting one the server no longer has or cannot use. */
pg_stmt *cbx__pg_stmt_find(pg_conn *c, const char *sql, int nparams);
void cbx__pg_stmt_forget(pg_conn *c, pg_stmt *st);
/* Watch c's socket for these UV_READABLE/UV_WRITABLE events (nothing is done when they are
 * already watched). < 0 on failure. */
int cbx__pg_conn_watch(pg_conn *c, int events);

/* ---- pg_query.c ---- */

/* Begin the attempt: 0, or a negative code before anything was started. */
int cbx__pg_query_start(pg_query *q, cbx_task *t, pg_loop *lp);
void cbx__pg_query_cancel(pg_query *q);
/* From the pool: q has the connection q->conn, ready for statements. */
void cbx__pg_query_ready(pg_query *q);
/* From the pool: no connection could be made (the message is libpq's, one line). */
void cbx__pg_query_fail(pg_query *q, const char *why);
/* From the pool: c's socket is ready (events as from uv_poll, or -status on error). */
void cbx__pg_query_io(pg_query *q, int status, int events);

/* ---- pg_rows.c ---- */

/* A PGRES_TUPLES_OK/COMMAND_OK result as {columns, rows, row_count, truncated, command,
 * affected}; rows beyond max_rows are counted, not kept. NULL when out of memory. */
json_t *cbx__pg_result_json(const PGresult *res, json_int_t max_rows);
/* One line about a failed result into buf: "ERROR 42P01: relation "x" does not exist (at
 * character 15)". *meta gets {sqlstate, severity, position, detail, hint} (new; may be NULL). */
void cbx__pg_result_error(const PGresult *res, char *buf, size_t len, json_t **meta);
/* A libpq error message made one line (line breaks and indents to one space), into buf. */
void cbx__pg_one_line(const char *msg, char *buf, size_t len);

#endif
