/* One attempt of the postgres executor on a pooled connection: its statements sent one after
 * the other (inside BEGIN/COMMIT for a transaction), results read as the socket turns readable,
 * timeouts that cancel on the server (see pg.h). */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executors/db/pg.h"

#include "core/real_text.h"

/* SQLSTATE of a statement stopped by a cancel request. */
#define SQLSTATE_QUERY_CANCELED "57014"

static void finish(pg_query *q);
static void send_step(pg_query *q);
static void timer_fire_listen(uv_timer_t *h);

static int param_int(pg_query *q, const char *key)
{
    return (int)json_integer_value(json_object_get(cbx_task_params(q->t), key));
}

static void set_error(pg_query *q, cbx_outcome k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(pg_query *q, cbx_outcome k, const char *fmt, ...)
{
    if (q->error)
        return; /* the first failure is the one reported */
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    q->error = strdup(buf);
    q->outcome = k;
}

/* The SQL and parameters of the current step, and its name for errors ("sql", "statements[1]",
 * "" for BEGIN/COMMIT/ROLLBACK). */
static const char *step_sql(pg_query *q, const json_t **params, char *where, size_t wlen)
{
    const json_t *p = cbx_task_params(q->t);
    *params = NULL;
    where[0] = '\0';
    if (q->listen_stage == PGL_LISTEN)
        return q->listen_sql;
    if (q->listen_stage == PGL_UNLISTEN)
        return "UNLISTEN *";
    if (q->rolling_back)
        return "ROLLBACK";
    if (!q->transaction) {
        *params = json_object_get(p, "params");
        snprintf(where, wlen, "sql");
        return json_string_value(json_object_get(p, "sql"));
    }
    if (q->step == 0)
        return "BEGIN";
    if (q->step == q->nsteps - 1)
        return "COMMIT";
    const json_t *s = json_array_get(json_object_get(p, "statements"), q->step - 1);
    snprintf(where, wlen, "statements[%zu]", q->step - 1);
    if (json_is_string(s))
        return json_string_value(s);
    *params = json_object_get(s, "params");
    return json_string_value(json_object_get(s, "sql"));
}

/* A JSON value as PostgreSQL's text input for a parameter: NULL for null; malloc'd text. */
static char *param_text(const json_t *v, int *err)
{
    char *s = NULL;
    switch (json_typeof(v)) {
    case JSON_NULL:
        return NULL;
    case JSON_TRUE:
        s = strdup("true");
        break;
    case JSON_FALSE:
        s = strdup("false");
        break;
    case JSON_INTEGER:
        if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
            s = NULL;
        break;
    case JSON_REAL: { /* the fewest digits: 0.1 into a numeric column stays 0.1 */
        char num[40];
        s = cbx__real_plain(json_real_value(v), num) ? strdup(num) : NULL;
        break;
    }
    case JSON_STRING:
        s = strdup(json_string_value(v));
        break;
    default: /* arrays and objects as JSON text: a json or jsonb parameter */
        s = json_dumps(v, JSON_COMPACT);
        break;
    }
    if (!s)
        *err = 1;
    return s;
}

/* The connection broke. at_send: before the statement was handed to the kernel. */
static void conn_broken(pg_query *q, int at_send)
{
    char why[400];
    cbx__pg_one_line(PQerrorMessage(q->conn->pg), why, sizeof why);
    int first = q->transaction ? q->step == 0 : 1;
    pg_conn *c = q->conn;
    q->conn = NULL;
    cbx__pg_pool_release(q->pool, c, 1);
    if ((at_send || q->terminated) && first && !q->retried && !q->cancelling && !q->error) {
        /* it never ran: once more on a new connection */
        q->retried = 1;
        q->sent = 0;
        q->terminated = 0;
        q->preparing = 0;
        cbx__pg_pool_acquire(q->pool, q);
        return;
    }
    set_error(q, CBX_OUTCOME_ERROR, "postgres: connection to %s lost: %s", q->pool->label,
              why[0] ? why : "closed by the server");
    finish(q);
}

static void send_step(pg_query *q)
{
    char where[48];
    const json_t *params;
    const char *sql = step_sql(q, &params, where, sizeof where);
    size_t n = json_array_size(params);
    char **vals = n ? calloc(n, sizeof *vals) : NULL;
    int oom = n && !vals;
    for (size_t i = 0; i < n && !oom; i++)
        vals[i] = param_text(json_array_get(params, i), &oom);
    int ok = 0;
    q->stmt = NULL;
    q->prepared_send = 0;
    if (!oom && where[0] && !q->unprepared &&
        json_is_true(json_object_get(cbx_task_params(q->t), "prepare")))
        q->stmt = cbx__pg_stmt_find(q->conn, sql, (int)n);
    pg_stmt *st = q->stmt;
    char name[24];
    if (st && (st->prepared || st->seen))
        snprintf(name, sizeof name, "cbx_%u", st->prepared ? st->name : q->conn->next_name);
    if (oom) {
    } else if (st && st->prepared) {
        ok = PQsendQueryPrepared(q->conn->pg, name, (int)n, (const char *const *)vals, NULL, NULL,
                                 0);
        q->prepared_send = 1;
    } else if (st && st->seen && !q->preparing) {
        /* the second sight: parse it once for this connection; the statement follows when
         * the server has said yes (step_done) */
        st->name = q->conn->next_name++;
        ok = PQsendPrepare(q->conn->pg, name, sql, (int)n, NULL);
        q->preparing = 1;
    } else {
        if (st)
            st->seen = 1;
        ok = PQsendQueryParams(q->conn->pg, sql, (int)n, NULL, (const char *const *)vals, NULL,
                               NULL, 0); /* libpq has copied the values when it returns */
    }
    for (size_t i = 0; i < n && vals; i++)
        free(vals[i]);
    free(vals);
    if (oom) {
        set_error(q, CBX_OUTCOME_ERROR, "postgres: out of memory");
        finish(q);
        return;
    }
    if (!ok) {
        conn_broken(q, 1);
        return;
    }
    int f = PQflush(q->conn->pg);
    if (f < 0) {
        conn_broken(q, 1);
        return;
    }
    q->sent = 1;
    int r = cbx__pg_conn_watch(q->conn, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
    if (r < 0) {
        set_error(q, CBX_OUTCOME_ERROR, "postgres: cannot watch the socket: %s", uv_strerror(r));
        pg_conn *c = q->conn;
        q->conn = NULL;
        cbx__pg_pool_release(q->pool, c, 1);
        finish(q);
    }
}

static void on_result(pg_query *q, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    char where[48];
    const json_t *params;
    step_sql(q, &params, where, sizeof where);
    if (q->preparing) {
        if (st == PGRES_COMMAND_OK && q->stmt) {
            q->stmt->prepared = 1;
            return;
        }
        if (st == PGRES_COMMAND_OK)
            return;
        /* the statement's own error (syntax, a missing table): reported as such below */
    }
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY) {
        if (where[0] && !q->error) {
            json_t *one = cbx__pg_result_json(
                res, json_integer_value(json_object_get(cbx_task_params(q->t), "max_rows")));
            if (!one)
                set_error(q, CBX_OUTCOME_ERROR, "postgres: out of memory");
            else
                json_array_append_new(q->results, one);
        }
        return;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (q->cancelling && state && strcmp(state, SQLSTATE_QUERY_CANCELED) == 0) {
        q->cancel_confirmed = 1;
        if (q->timed_out)
            set_error(q, CBX_OUTCOME_TIMEOUT,
                      "postgres: %s cancelled on the server after statement_timeout_ms %d",
                      where[0] ? where : "statement", param_int(q, "statement_timeout_ms"));
        else
            set_error(q, CBX_OUTCOME_TIMEOUT, "postgres: %s cancelled on the server",
                      where[0] ? where : "statement");
        return;
    }
    /* the server ended the session (pg_terminate_backend, a shutdown) before the first step
     * completed: a FATAL 57P0x with no result before it means the step did not take effect
     * (it never ran, or was rolled back with the session), so it may go to a new connection */
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (state && strncmp(state, "57P0", 4) == 0 && sev && strcmp(sev, "FATAL") == 0 && !q->error &&
        !q->retried && !q->cancelling &&
        (q->transaction ? q->step == 0 : json_array_size(q->results) == 0)) {
        q->terminated = 1;
        return;
    }
    /* a cached statement the server cannot use any more - its result type changed under an
     * ALTER TABLE (0A000), or it is gone after a DISCARD (26000) - is forgotten, and the step
     * sent again unprepared; inside a transaction the error has already aborted it */
    if (q->prepared_send && !q->transaction && !q->error && state &&
        (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0)) {
        if (q->stmt)
            cbx__pg_stmt_forget(q->conn, q->stmt);
        q->replan = 1;
        return;
    }
    char line[440];
    json_t *meta = NULL;
    cbx__pg_result_error(res, line, sizeof line, &meta);
    if (!q->error) {
        json_decref(q->meta_error);
        q->meta_error = meta;
        if (where[0])
            set_error(q, CBX_OUTCOME_ERROR, "postgres: %s: %s", where, line);
        else
            set_error(q, CBX_OUTCOME_ERROR, "postgres: %s", line);
    } else {
        json_decref(meta);
    }
}

static void unlisten(pg_query *q)
{
    uv_timer_stop(&q->timer);
    q->listen_stage = PGL_UNLISTEN;
    send_step(q);
}

static json_int_t listen_param(pg_query *q, const char *key)
{
    return json_integer_value(json_object_get(cbx_task_params(q->t), key));
}

/* Take the notifications libpq has read. */
static void drain_notes(pg_query *q)
{
    PGnotify *n;
    while ((n = PQnotifies(q->conn->pg)) != NULL) {
        json_t *o = json_pack("{s:s, s:s, s:i}", "channel", n->relname, "payload",
                              n->extra ? n->extra : "", "pid", n->be_pid);
        if (o)
            json_array_append_new(q->notes, o);
        PQfreemem(n);
    }
}

static int notes_enough(pg_query *q)
{
    json_int_t max = listen_param(q, "max_notifications");
    return max > 0 && (json_int_t)json_array_size(q->notes) >= max;
}

/* The statements are done: wait for notifications (or not), then UNLISTEN. */
static void begin_wait(pg_query *q)
{
    q->listen_stage = PGL_WAITING;
    drain_notes(q);
    json_int_t ms = listen_param(q, "wait_ms");
    if (ms <= 0 || notes_enough(q)) {
        unlisten(q);
        return;
    }
    uv_timer_stop(&q->timer);
    uv_timer_start(&q->timer, timer_fire_listen, (uint64_t)ms, 0);
}

/* Every result of the current step has been read. */
static void step_done(pg_query *q)
{
    if (q->terminated) {
        conn_broken(q, 0);
        return;
    }
    q->sent = 0;
    if (q->preparing && !q->error && !q->cancelling) {
        q->preparing = 0; /* prepared: now the statement itself */
        send_step(q);
        return;
    }
    q->preparing = 0;
    if (q->replan && !q->error && !q->cancelling) {
        q->replan = 0;
        q->unprepared = 1;
        send_step(q);
        q->unprepared = 0;
        return;
    }
    if (q->error || q->cancelling) {
        if (!q->error)
            set_error(q, q->timed_out ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR,
                      "postgres: stopped after the statement had ended");
        if (q->listen_stage != PGL_NONE && q->listen_stage != PGL_CLEAN) {
            finish(q); /* still listening: finish closes the connection */
            return;
        }
        if (q->transaction && !q->rolling_back && !q->cancelling &&
            PQtransactionStatus(q->conn->pg) != PQTRANS_IDLE) {
            q->rolling_back = 1; /* leave the connection clean for the pool */
            send_step(q);
            return;
        }
        finish(q);
        return;
    }
    if (q->listen_stage == PGL_LISTEN) {
        q->listen_stage = PGL_STATEMENTS;
        if (q->nsteps == 0) {
            begin_wait(q);
            return;
        }
        send_step(q);
        return;
    }
    if (q->listen_stage == PGL_UNLISTEN) {
        q->listen_stage = PGL_CLEAN;
        finish(q);
        return;
    }
    if (q->rolling_back || ++q->step >= q->nsteps) {
        if (q->listen_stage == PGL_STATEMENTS)
            begin_wait(q);
        else
            finish(q);
        return;
    }
    send_step(q);
}

void cbx__pg_query_io(pg_query *q, int status, int events)
{
    int waiting = q->listen_stage == PGL_WAITING;
    if (!q->conn || q->phase != PGQ_RUNNING || (!q->sent && !waiting))
        return;
    PGconn *pg = q->conn->pg;
    if (status < 0) {
        conn_broken(q, 0);
        return;
    }
    if (waiting) {
        if (!PQconsumeInput(pg)) {
            conn_broken(q, 0);
            return;
        }
        drain_notes(q);
        if (notes_enough(q))
            unlisten(q);
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(pg);
        if (f < 0) {
            conn_broken(q, 0);
            return;
        }
        if (f == 0)
            cbx__pg_conn_watch(q->conn, UV_READABLE);
    }
    if (!(events & UV_READABLE))
        return;
    if (!PQconsumeInput(pg)) {
        conn_broken(q, 0);
        return;
    }
    if (q->listen_stage != PGL_NONE)
        drain_notes(q);
    while (!PQisBusy(pg)) {
        PGresult *res = PQgetResult(pg);
        if (!res) {
            step_done(q);
            return;
        }
        on_result(q, res);
        PQclear(res);
        if (PQstatus(pg) == CONNECTION_BAD) {
            conn_broken(q, 0);
            return;
        }
    }
}

/* ---- cancel on the server --------------------------------------------------------------- */

static void cancel_run(uv_work_t *w)
{
    pg_query *q = w->data;
    if (!PQcancel(q->cancel_obj, q->cancel_err, (int)sizeof q->cancel_err))
        q->cancel_failed = 1;
}

static void cancel_after(uv_work_t *w, int status)
{
    pg_query *q = w->data;
    (void)status;
    PQfreeCancel(q->cancel_obj);
    q->cancel_obj = NULL;
    q->cancel_busy = 0;
    if (q->finish_wanted)
        finish(q);
}

static void timer_fire(uv_timer_t *h);

/* Ask the server to stop the running statement; its answer (or the grace timer) ends q. */
static void cancel_on_server(pg_query *q)
{
    if (q->cancelling)
        return;
    q->cancelling = 1;
    q->cancel_obj = PQgetCancel(q->conn->pg);
    if (q->cancel_obj) {
        q->cancel_work.data = q;
        if (uv_queue_work(q->lp->loop, &q->cancel_work, cancel_run, cancel_after) == 0)
            q->cancel_busy = 1;
        else {
            PQfreeCancel(q->cancel_obj);
            q->cancel_obj = NULL;
        }
    }
    uv_timer_start(&q->timer, timer_fire, CBX__PG_CANCEL_GRACE_MS, 0);
}

/* Stop q wherever it is: waiting, connecting, or with a statement out. */
static void stop(pg_query *q, cbx_outcome k, const char *why)
{
    switch (q->phase) {
    case PGQ_WAITING:
        cbx__pg_pool_unqueue(q->pool, q);
        set_error(q, k, "%s", why);
        finish(q);
        return;
    case PGQ_CONNECTING:
        if (q->conn) {
            pg_conn *c = q->conn;
            q->conn = NULL;
            cbx__pg_pool_release(q->pool, c, 1);
        }
        set_error(q, k, "%s", why);
        finish(q);
        return;
    case PGQ_RUNNING:
        if (q->conn && q->sent) {
            cancel_on_server(q);
            return;
        }
        set_error(q, k, "%s", why);
        finish(q);
        return;
    default:
        return;
    }
}

static void timer_fire(uv_timer_t *h)
{
    pg_query *q = h->data;
    char why[160];
    if (q->phase == PGQ_WAITING || q->phase == PGQ_CONNECTING) {
        snprintf(why, sizeof why, "postgres: no connection to %s within connect_timeout_ms %d",
                 q->pool->label, param_int(q, "connect_timeout_ms"));
        stop(q, CBX_OUTCOME_ERROR, why);
        return;
    }
    if (q->phase != PGQ_RUNNING)
        return;
    if (q->cancelling) { /* the server did not answer the cancel: drop the connection */
        set_error(q, CBX_OUTCOME_TIMEOUT,
                  "postgres: the server did not answer a cancel within %d ms; connection closed",
                  CBX__PG_CANCEL_GRACE_MS);
        pg_conn *c = q->conn;
        q->conn = NULL;
        if (c)
            cbx__pg_pool_release(q->pool, c, 1);
        finish(q);
        return;
    }
    q->timed_out = 1;
    stop(q, CBX_OUTCOME_TIMEOUT, "postgres: statement_timeout_ms passed");
}

/* wait_ms has passed: whatever arrived is the answer */
static void timer_fire_listen(uv_timer_t *h)
{
    pg_query *q = h->data;
    if (q->listen_stage == PGL_WAITING && q->phase == PGQ_RUNNING)
        unlisten(q);
}

/* ---- the attempt's life ----------------------------------------------------------------- */

static void reported(uv_handle_t *h)
{
    pg_query *q = h->data;
    pg_loop *lp = q->lp;
    json_t *meta = json_pack("{s:s, s:i, s:b, s:f}", "server", q->pool ? q->pool->label : "",
                             "backend_pid", q->backend_pid, "retried", q->retried, "duration_ms",
                             (double)(uv_hrtime() - q->t0_ns) / 1e6);
    if (meta && q->meta_error)
        json_object_update(meta, q->meta_error);
    if (meta && q->cancelling)
        json_object_set_new(meta, "cancel",
                            json_string(q->cancel_failed      ? q->cancel_err
                                        : q->cancel_confirmed ? "confirmed by the server"
                                                              : "sent"));
    if (meta && q->notices)
        json_object_set(meta, "notices", q->notices);
    json_decref(q->notices);
    json_decref(q->meta_error);
    free(q->listen_sql);
    json_t *notes = q->notes;
    q->notes = NULL;
    if (q->error) {
        char *error = q->error; /* q is gone once cbx_task_done returns */
        json_decref(q->results);
        cbx_task_done(q->t, q->outcome, NULL, meta, "%s", error);
        free(error);
    } else {
        json_t *out;
        if (q->nsteps == 0) {
            out = json_object();
            json_decref(q->results);
        } else if (!q->transaction) {
            out = json_incref(json_array_get(q->results, 0));
            json_decref(q->results);
        } else {
            out = json_pack("{s:o, s:b}", "results", q->results, "committed", 1);
        }
        if (out && notes)
            json_object_set(out, "notifications", notes);
        cbx_task_done(q->t, CBX_OUTCOME_SUCCESS, out, meta, NULL);
    }
    json_decref(notes);
    cbx__pg_loop_query_end(lp);
}

static void finish(pg_query *q)
{
    if (q->phase == PGQ_FINISHING && !q->finish_wanted)
        return;
    q->phase = PGQ_FINISHING;
    if (q->cancel_busy) { /* the cancel request must not reach a connection's next user */
        q->finish_wanted = 1;
        return;
    }
    q->finish_wanted = 0;
    if (q->conn) {
        pg_conn *c = q->conn;
        q->conn = NULL;
        /* after a cancel the server may still hold it for the next statement: drop the
         * connection unless the statement itself reported the cancel */
        int still_listening = q->listen_stage != PGL_NONE && q->listen_stage != PGL_CLEAN;
        cbx__pg_pool_release(q->pool, c,
                             (q->cancelling && !q->cancel_confirmed) || still_listening);
    }
    uv_timer_stop(&q->timer);
    uv_close((uv_handle_t *)&q->timer, reported);
}

void cbx__pg_query_ready(pg_query *q)
{
    q->phase = PGQ_RUNNING;
    q->backend_pid = PQbackendPID(q->conn->pg);
    uv_timer_stop(&q->timer);
    int ms = param_int(q, "statement_timeout_ms");
    if (ms > 0 && !q->retried)
        uv_timer_start(&q->timer, timer_fire, (uint64_t)ms, 0);
    if (q->listen_sql)
        q->listen_stage = PGL_LISTEN;
    else if (q->nsteps == 0) { /* nothing to send: cannot happen past validate */
        finish(q);
        return;
    }
    send_step(q);
}

void cbx__pg_query_fail(pg_query *q, const char *why)
{
    set_error(q, CBX_OUTCOME_ERROR, "postgres: cannot connect to %s: %s", q->pool->label, why);
    finish(q);
}

int cbx__pg_query_start(pg_query *q, cbx_task *t, pg_loop *lp)
{
    const json_t *p = cbx_task_params(t);
    q->t = t;
    q->lp = lp;
    q->t0_ns = uv_hrtime();
    q->results = json_array();
    if (!q->results)
        return -ENOMEM;
    const json_t *stmts = json_object_get(p, "statements");
    q->transaction = stmts != NULL;
    q->nsteps = stmts ? json_array_size(stmts) + 2 : json_object_get(p, "sql") ? 1 : 0;
    const char *ch = json_string_value(json_object_get(p, "listen"));
    if (ch) { /* the channel as a quoted identifier: "" for each " */
        size_t n = strlen(ch);
        q->listen_sql = malloc(2 * n + 16);
        q->notes = json_array();
        if (!q->listen_sql || !q->notes) {
            free(q->listen_sql);
            json_decref(q->notes);
            json_decref(q->results);
            q->listen_sql = NULL;
            q->notes = NULL;
            return -ENOMEM;
        }
        char *o = q->listen_sql + sprintf(q->listen_sql, "LISTEN \"");
        for (const char *c = ch; *c; c++) {
            *o++ = *c;
            if (*c == '"')
                *o++ = '"';
        }
        o[0] = '"';
        o[1] = '\0';
    }
    q->pool = cbx__pg_pool_get(lp, p);
    int r = q->pool ? uv_timer_init(lp->loop, &q->timer) : -ENOMEM;
    if (r < 0) {
        json_decref(q->results);
        json_decref(q->notes);
        free(q->listen_sql);
        return r;
    }
    q->timer.data = q;
    lp->queries++;
    uv_update_time(lp->loop);
    uv_timer_start(&q->timer, timer_fire, (uint64_t)param_int(q, "connect_timeout_ms"), 0);
    cbx__pg_pool_acquire(q->pool, q);
    return 0;
}

void cbx__pg_query_cancel(pg_query *q)
{
    q->stopped = 1;
    stop(q, CBX_OUTCOME_TIMEOUT, "postgres: cancelled");
}
