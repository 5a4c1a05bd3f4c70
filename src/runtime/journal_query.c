/* The journal's queries: history, one execution, statistics, clear, and retention. */
#include "runtime/journal_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters of a filter, always at these numbers so that one binder serves every query. */
enum { P_EXECUTOR = 1, P_STATUS, P_BREAKER, P_TAG, P_SINCE, P_UNTIL, P_LIMIT, P_RUN, P_STEP };

/* A flow step's execution: tag "flow:<run id>/<step>" (run ids hold no '/'). */
#define FLOW_TAG  "tag LIKE 'flow:%/%'"
#define STEP_OF   "substr(tag, instr(tag, '/') + 1)"
#define RUN_ID_OF "substr(tag, 6, instr(tag, '/') - 6)"

/* %s: the status as shown (cbx__journal_status_sql) */
#define EXEC_COLUMNS                                                                               \
    "id, executor, %s, rc, error, fallback_used, attempts, submitted_ms, ended_ms,"                \
    " duration_ns, tag, breaker, policy, %s"

/* " WHERE ..." for f (plus extra, a condition of the caller's; NULL = none), or "". */
static void where_build(const cbx_journal *j, const cbx_history_filter *f, const char *extra,
                        char *buf, size_t len)
{
    static const struct {
        int param;
        const char *cond;
    } conds[] = {
        {P_EXECUTOR, "executor = ?1"},
        {P_STATUS, "status = ?2"},
        {P_BREAKER, "breaker = ?3"},
        {P_TAG, "tag = ?4"},
        {P_SINCE, "submitted_ms >= ?5"},
        {P_UNTIL, "submitted_ms < ?6"},
        {P_RUN, FLOW_TAG " AND " RUN_ID_OF " = ?8"},
        {P_STEP, FLOW_TAG " AND " STEP_OF " = ?9"},
    };
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; f && i < sizeof conds / sizeof conds[0]; i++) {
        int on = 0;
        switch (conds[i].param) {
        case P_EXECUTOR:
            on = f->executor != NULL;
            break;
        case P_STATUS:
            on = f->status != NULL;
            break;
        case P_BREAKER:
            on = f->breaker != NULL;
            break;
        case P_TAG:
            on = f->tag != NULL;
            break;
        case P_SINCE:
            on = f->since_ms != 0;
            break;
        case P_RUN:
            on = f->run_id != NULL;
            break;
        case P_STEP:
            on = f->step != NULL;
            break;
        default:
            on = f->until_ms != 0;
            break;
        }
        if (on && conds[i].param == P_STATUS) /* as shown: "abandoned" included */
            used += (size_t)snprintf(buf + used, len - used, "%s%s = ?2",
                                     used ? " AND " : " WHERE ", cbx__journal_status_sql(j));
        else if (on)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? " AND " : " WHERE ",
                                     conds[i].cond);
    }
    if (extra)
        snprintf(buf + used, len - used, "%s%s", used ? " AND " : " WHERE ", extra);
}

static void where_bind(sqlite3_stmt *st, const cbx_history_filter *f)
{
    if (!f)
        return;
    if (f->executor)
        sqlite3_bind_text(st, P_EXECUTOR, f->executor, -1, SQLITE_STATIC);
    if (f->status)
        sqlite3_bind_text(st, P_STATUS, f->status, -1, SQLITE_STATIC);
    if (f->breaker)
        sqlite3_bind_text(st, P_BREAKER, f->breaker, -1, SQLITE_STATIC);
    if (f->tag)
        sqlite3_bind_text(st, P_TAG, f->tag, -1, SQLITE_STATIC);
    if (f->since_ms)
        sqlite3_bind_int64(st, P_SINCE, (sqlite3_int64)f->since_ms);
    if (f->until_ms)
        sqlite3_bind_int64(st, P_UNTIL, (sqlite3_int64)f->until_ms);
    if (f->limit)
        sqlite3_bind_int64(st, P_LIMIT, (sqlite3_int64)f->limit);
    if (f->run_id)
        sqlite3_bind_text(st, P_RUN, f->run_id, -1, SQLITE_STATIC);
    if (f->step)
        sqlite3_bind_text(st, P_STEP, f->step, -1, SQLITE_STATIC);
}

static int prepare_q(cbx_journal *j, const char *sql, sqlite3_stmt **st, cbx_err *err)
{
    if (sqlite3_prepare_v2(j->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return cbx__journal_fail(j, err, "prepare query");
    }
    return 0;
}

static int oom(cbx_err *err)
{
    return cbx_err_set(err, CBX_EJOURNAL, "journal: out of memory");
}

/* ---- rows as JSON ------------------------------------------------------------------------ */

/* Text that is not valid UTF-8 (a child's stderr in an error message, say) is kept with each
 * byte that does not fit replaced by '?'. */
static json_t *text_json(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    const char *s = (const char *)sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    json_t *v = json_stringn(s ? s : "", s ? n : 0);
    if (v || !s)
        return v;
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = (s[i] & 0x80) || s[i] == '\0' ? '?' : s[i];
    v = json_stringn(copy, n);
    free(copy);
    return v;
}

static json_t *int_json(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return json_integer((json_int_t)sqlite3_column_int64(st, col));
}

static json_t *ms_from_ns_json(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return json_real((double)sqlite3_column_int64(st, col) / 1e6);
}

/* A column holding JSON text, parsed back (as text if it does not parse). */
static json_t *json_col(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    const char *s = (const char *)sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    json_t *v = s ? json_loadb(s, n, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : text_json(st, col);
}

static int set(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) : -1;
}

/* A row of EXEC_COLUMNS as the object cbx_journal_history documents. */
static json_t *exec_row(sqlite3_stmt *st, int brief)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    bad |= set(o, "id", text_json(st, 0));
    bad |= set(o, "executor", text_json(st, 1));
    bad |= set(o, "status", text_json(st, 2));
    bad |= set(o, "rc", int_json(st, 3));
    bad |= set(o, "error", text_json(st, 4));
    bad |= set(o, "fallback_used", json_boolean(sqlite3_column_int(st, 5) != 0));
    bad |= set(o, "attempts", int_json(st, 6));
    bad |= set(o, "submitted_ms", int_json(st, 7));
    bad |= set(o, "ended_ms", int_json(st, 8));
    bad |= set(o, "duration_ms", ms_from_ns_json(st, 9));
    bad |= set(o, "tag", text_json(st, 10));
    bad |= set(o, "breaker", text_json(st, 11));
    bad |= set(o, "policy", text_json(st, 12));
    if (!brief) {
        bad |= set(o, "params", json_col(st, 13));
        bad |= set(o, "outputs", json_col(st, 14));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *attempt_row(sqlite3_stmt *st)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    bad |= set(o, "number", int_json(st, 0));
    bad |= set(o, "outcome", text_json(st, 1));
    bad |= set(o, "started_ms", int_json(st, 2));
    bad |= set(o, "duration_ms", ms_from_ns_json(st, 3));
    bad |= set(o, "error", text_json(st, 4));
    bad |= set(o, "metadata", json_col(st, 5));
    bad |= set(o, "breaker_decision", text_json(st, 6));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- history and get --------------------------------------------------------------------- */

int cbx_journal_history_each(cbx_journal *j, const cbx_history_filter *f, cbx_journal_row_fn fn,
                             void *ud, cbx_err *err)
{
    if (!j || !fn)
        return cbx_err_set(err, -EINVAL, "cbx_journal_history: no journal or no function");
    cbx_history_filter lf = f ? *f : (cbx_history_filter){0};
    if (lf.limit == 0)
        lf.limit = 100;
    char where[1024], sql[1536];
    where_build(j, &lf, NULL, where, sizeof where);
    snprintf(sql, sizeof sql,
             "SELECT " EXEC_COLUMNS " FROM executions%s ORDER BY submitted_ms DESC, rowid DESC"
             " LIMIT ?7",
             cbx__journal_status_sql(j), lf.brief ? "NULL, NULL" : "params, outputs", where);
    cbx__journal_lock(j);
    sqlite3_stmt *st = NULL;
    int r = cbx__journal_settle_locked(j, err);
    if (r == 0)
        r = prepare_q(j, sql, &st, err);
    if (r == 0) {
        where_bind(st, &lf);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *row = exec_row(st, lf.brief);
            if (!row) {
                r = oom(err);
                break;
            }
            r = fn(row, ud);
            json_decref(row);
            if (r != 0)
                break;
        }
        if (r == 0 && rc != SQLITE_DONE)
            r = cbx__journal_fail(j, err, "history");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&j->mu);
    return r;
}

static int append_row(const json_t *row, void *ud)
{
    return json_array_append((json_t *)ud, (json_t *)(uintptr_t)row) == 0 ? 0 : -ENOMEM;
}

int cbx_journal_history(cbx_journal *j, const cbx_history_filter *f, json_t **rows, cbx_err *err)
{
    if (!rows)
        return cbx_err_set(err, -EINVAL, "cbx_journal_history: rows is NULL");
    *rows = NULL;
    json_t *out = json_array();
    if (!out)
        return oom(err);
    int r = cbx_journal_history_each(j, f, append_row, out, err);
    if (r == -ENOMEM)
        r = oom(err);
    if (r != 0) {
        json_decref(out);
        return r;
    }
    *rows = out;
    return 0;
}

int cbx_journal_get(cbx_journal *j, const char *id, json_t **row, cbx_err *err)
{
    if (!row)
        return cbx_err_set(err, -EINVAL, "cbx_journal_get: row is NULL");
    *row = NULL;
    if (!j || !id)
        return cbx_err_set(err, -EINVAL, "cbx_journal_get: no journal or no id");
    json_t *o = NULL, *atts = NULL;
    cbx__journal_lock(j);
    sqlite3_stmt *st = NULL;
    int r = cbx__journal_settle_locked(j, err);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT " EXEC_COLUMNS " FROM executions WHERE id = ?1",
             cbx__journal_status_sql(j), "params, outputs");
    if (r == 0)
        r = prepare_q(j, sql, &st, err);
    if (r == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            if (!(o = exec_row(st, 0)))
                r = oom(err);
        } else if (rc == SQLITE_DONE) {
            r = cbx_err_set(err, -ENOENT, "journal %s: no execution %s", j->path, id);
        } else {
            r = cbx__journal_fail(j, err, "get");
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (r == 0 && !(atts = json_array()))
        r = oom(err);
    if (r == 0)
        r = prepare_q(j,
                      "SELECT number, outcome, started_ms, duration_ns, error, metadata,"
                      " breaker_decision FROM attempts WHERE execution_id = ?1 ORDER BY number",
                      &st, err);
    if (r == 0) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *a = attempt_row(st);
            if (!a || json_array_append_new(atts, a) != 0) {
                r = oom(err);
                break;
            }
        }
        if (r == 0 && rc != SQLITE_DONE)
            r = cbx__journal_fail(j, err, "get attempts");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&j->mu);
    if (r == 0) {
        /* The row's attempt count moves to attempt_count; attempts becomes the list. */
        json_t *count = json_object_get(o, "attempts");
        if (json_object_set(o, "attempt_count", count) != 0 ||
            json_object_set_new(o, "attempts", atts) != 0)
            r = oom(err);
        atts = NULL;
    }
    if (r != 0) {
        json_decref(o);
        json_decref(atts);
        return r;
    }
    *row = o;
    return 0;
}

/* ---- statistics -------------------------------------------------------------------------- */

/* Nearest rank: the smallest value with at least p% of the values at or below it. */
static double nearest_rank_ms(const int64_t *sorted, size_t n, unsigned p)
{
    size_t rank = (p * n + 99) / 100;
    if (rank < 1)
        rank = 1;
    return (double)sorted[rank - 1] / 1e6;
}

/* A number a model call's outputs carry (the llm and agent executors: usage and cost), or NULL. */
#define LLM_FIELD(path)                                                                            \
    "CASE WHEN executor IN ('llm', 'agent') AND json_valid(outputs) THEN json_extract(outputs, "   \
    "'" path "') END"

static json_t *stats_object(sqlite3_stmt *st)
{
    /* columns: 0 key, 1 executions (ended), 2 successes, 3 failures, 4 timeouts, 5 cancelled,
     * 6 rejected, 7 running, 8 fallbacks, 9 mean duration ns, 10 mean attempts, 11 executions
     * with an attempt that ran out of memory (outcome oom), 12-14 model calls' prompt tokens,
     * completion tokens and cost (NULL when there were none) */
    int64_t ended = sqlite3_column_int64(st, 1);
    int64_t ok = sqlite3_column_int64(st, 2);
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    bad |= set(o, "executions", json_integer(ended));
    bad |= set(o, "successes", json_integer(ok));
    bad |= set(o, "failures", json_integer(sqlite3_column_int64(st, 3)));
    bad |= set(o, "timeouts", json_integer(sqlite3_column_int64(st, 4)));
    bad |= set(o, "ooms", json_integer(sqlite3_column_int64(st, 11)));
    bad |= set(o, "cancelled", json_integer(sqlite3_column_int64(st, 5)));
    bad |= set(o, "rejected", json_integer(sqlite3_column_int64(st, 6)));
    bad |= set(o, "running", json_integer(sqlite3_column_int64(st, 7)));
    bad |= set(o, "fallbacks", json_integer(sqlite3_column_int64(st, 8)));
    bad |= set(o, "success_rate", ended > 0 ? json_real((double)ok / (double)ended) : json_null());
    bad |= set(o, "mean_ms",
               sqlite3_column_type(st, 9) == SQLITE_NULL
                   ? json_null()
                   : json_real(sqlite3_column_double(st, 9) / 1e6));
    bad |= set(o, "p50_ms", json_null());
    bad |= set(o, "p95_ms", json_null());
    bad |= set(o, "p99_ms", json_null());
    bad |=
        set(o, "mean_attempts",
            sqlite3_column_type(st, 10) == SQLITE_NULL ? json_null()
                                                       : json_real(sqlite3_column_double(st, 10)));
    if (sqlite3_column_type(st, 12) != SQLITE_NULL || sqlite3_column_type(st, 14) != SQLITE_NULL) {
        bad |= set(o, "prompt_tokens", json_integer(sqlite3_column_int64(st, 12)));
        bad |= set(o, "completion_tokens", json_integer(sqlite3_column_int64(st, 13)));
        bad |= set(o, "cost", json_real(sqlite3_column_double(st, 14)));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int set_percentiles(json_t *o, const int64_t *d, size_t n)
{
    if (!o || n == 0)
        return 0;
    if (set(o, "p50_ms", json_real(nearest_rank_ms(d, n, 50))) ||
        set(o, "p95_ms", json_real(nearest_rank_ms(d, n, 95))) ||
        set(o, "p99_ms", json_real(nearest_rank_ms(d, n, 99))))
        return -1;
    return 0;
}

/* "Ran" executions: finished and not refused; latency and attempts are taken over these. */
#define RAN "ended_ms IS NOT NULL AND status <> 'rejected'"

int cbx_journal_stats(cbx_journal *j, const cbx_history_filter *f, const char *group_by,
                      json_t **out, cbx_err *err)
{
    if (!out)
        return cbx_err_set(err, -EINVAL, "cbx_journal_stats: out is NULL");
    *out = NULL;
    if (!j)
        return cbx_err_set(err, -EINVAL, "cbx_journal_stats: no journal");
    const char *key, *extra = NULL;
    if (!group_by) {
        key = "''";
    } else if (strcmp(group_by, "executor") == 0) {
        key = "coalesce(executor, '(unknown)')";
    } else if (strcmp(group_by, "breaker") == 0) {
        key = "breaker";
        extra = "breaker IS NOT NULL";
    } else if (strcmp(group_by, "tag") == 0) {
        key = "tag";
        extra = "tag IS NOT NULL";
    } else if (strcmp(group_by, "step") == 0) {
        key = STEP_OF;
        extra = FLOW_TAG;
    } else if (strcmp(group_by, "model") == 0) {
        /* the model a call's outputs name (llm, agent) */
        key = "json_extract(outputs, '$.model')";
        extra = "executor IN ('llm', 'agent') AND json_valid(outputs) AND "
                "json_extract(outputs, '$.model') IS NOT NULL";
    } else if (strcmp(group_by, "flow") == 0) {
        /* the flow's name is its run's (flow_runs, written by flow/); a run pruned or never
         * journaled groups under "(unknown)" */
        key = cbx__journal_has_flow_runs(j)
                  ? "coalesce((SELECT flow FROM flow_runs WHERE run_id = " RUN_ID_OF
                    "), '(unknown)')"
                  : "'(unknown)'";
        extra = FLOW_TAG;
    } else {
        return cbx_err_set_at(err, -EINVAL, "group_by", 0, 0,
                              "cannot group by \"%s\": expected \"executor\", \"breaker\", "
                              "\"tag\", \"step\", \"flow\" or \"model\"",
                              group_by);
    }
    char where[1024], src[1280], sql[3072];
    where_build(j, f, extra, where, sizeof where);
    if (f && f->limit)
        snprintf(src, sizeof src,
                 "(SELECT * FROM executions%s ORDER BY submitted_ms DESC, rowid DESC LIMIT ?7)",
                 where);
    else
        snprintf(src, sizeof src, "(SELECT * FROM executions%s)", where);

    json_t *res = group_by ? json_object() : NULL;
    json_t *single = NULL;
    int64_t *d = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    if (group_by && !res)
        return oom(err);

    cbx__journal_lock(j);
    snprintf(
        sql, sizeof sql,
        "SELECT %s AS k, sum(ended_ms IS NOT NULL), sum(status = 'success'),"
        " sum(status = 'failed'), sum(status = 'timeout'), sum(status = 'cancelled'),"
        " sum(status = 'rejected'), sum(ended_ms IS NULL), sum(fallback_used),"
        " avg(CASE WHEN " RAN " THEN duration_ns END),"
        " avg(CASE WHEN " RAN " THEN attempts END),"
        " sum(EXISTS(SELECT 1 FROM attempts a WHERE a.execution_id = id"
        " AND a.outcome = 'oom')),"
        " sum(" LLM_FIELD(
            "$.usage.prompt_tokens") "),"
                                     " sum(" LLM_FIELD(
                                         "$.usage.completion_tokens") "),"
                                                                      " sum(" LLM_FIELD(
                                                                          "$.cost") ")"
                                                                                    " FROM %s%s",
        key, src, group_by ? " GROUP BY k ORDER BY k" : "");
    int r = cbx__journal_settle_locked(j, err);
    if (r == 0)
        r = prepare_q(j, sql, &st, err);
    if (r == 0) {
        where_bind(st, f);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *o = stats_object(st);
            if (!o) {
                r = oom(err);
                break;
            }
            if (!group_by) {
                single = o;
            } else {
                const char *k = (const char *)sqlite3_column_text(st, 0);
                if (json_object_set_new(res, k ? k : "", o) != 0) {
                    r = oom(err);
                    break;
                }
            }
        }
        if (r == 0 && rc != SQLITE_DONE)
            r = cbx__journal_fail(j, err, "stats");
    }
    sqlite3_finalize(st);
    st = NULL;

    /* Percentiles: every ran execution's duration, sorted within its group. */
    if (r == 0) {
        snprintf(sql, sizeof sql,
                 "SELECT %s AS k, duration_ns FROM %s WHERE " RAN
                 " AND duration_ns IS NOT NULL ORDER BY k, duration_ns",
                 key, src);
        r = prepare_q(j, sql, &st, err);
    }
    if (r == 0) {
        where_bind(st, f);
        char *cur = NULL;
        int rc;
        for (;;) {
            rc = sqlite3_step(st);
            const char *k = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
            if (rc == SQLITE_ROW && !k)
                k = "";
            if (cur && (rc != SQLITE_ROW || strcmp(cur, k) != 0)) {
                json_t *o = group_by ? json_object_get(res, cur) : single;
                if (set_percentiles(o, d, n) != 0) {
                    r = oom(err);
                    break;
                }
                free(cur);
                cur = NULL;
                n = 0;
            }
            if (rc != SQLITE_ROW)
                break;
            if (!cur && !(cur = strdup(k))) {
                r = oom(err);
                break;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 1024;
                int64_t *nd = realloc(d, ncap * sizeof *d);
                if (!nd) {
                    r = oom(err);
                    break;
                }
                d = nd;
                cap = ncap;
            }
            d[n++] = sqlite3_column_int64(st, 1);
        }
        free(cur);
        if (r == 0 && rc != SQLITE_DONE)
            r = cbx__journal_fail(j, err, "stats percentiles");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&j->mu);
    free(d);
    if (r != 0) {
        json_decref(res);
        json_decref(single);
        return r;
    }
    *out = group_by ? res : single;
    return 0;
}

/* ---- clear and retention ----------------------------------------------------------------- */

/* Delete the executions selected by cond (a WHERE clause on executions, possibly "") and their
 * attempts, binding with bind(st, ud). With j->mu held and a batch open. */
static int delete_where(cbx_journal *j, const char *cond,
                        void (*bind)(sqlite3_stmt *, const void *), const void *ud,
                        uint64_t *deleted, cbx_err *err)
{
    char sql[1536];
    sqlite3_stmt *st = NULL;
    j->count_known = 0; /* retention by count takes the count again (its own deletion resets it) */
    /* A savepoint, so that a failure undoes the deletion and nothing else of the batch. */
    if (sqlite3_exec(j->db, "SAVEPOINT cbx_delete", NULL, NULL, NULL) != SQLITE_OK)
        return cbx__journal_fail(j, err, "savepoint");
    snprintf(sql, sizeof sql,
             "DELETE FROM attempts WHERE execution_id IN (SELECT id FROM executions%s)", cond);
    int r = prepare_q(j, sql, &st, err);
    if (r == 0) {
        bind(st, ud);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = cbx__journal_fail(j, err, "delete attempts");
    }
    sqlite3_finalize(st);
    st = NULL;
    uint64_t n = 0;
    if (r == 0) {
        snprintf(sql, sizeof sql, "DELETE FROM executions%s", cond);
        r = prepare_q(j, sql, &st, err);
    }
    if (r == 0) {
        bind(st, ud);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = cbx__journal_fail(j, err, "delete executions");
        else
            n = (uint64_t)sqlite3_changes(j->db);
    }
    sqlite3_finalize(st);
    if (r != 0 && j->in_txn)
        sqlite3_exec(j->db, "ROLLBACK TO cbx_delete", NULL, NULL, NULL);
    if (j->in_txn)
        sqlite3_exec(j->db, "RELEASE cbx_delete", NULL, NULL, NULL);
    if (r == 0 && deleted)
        *deleted += n;
    return r;
}

static void bind_filter(sqlite3_stmt *st, const void *ud)
{
    where_bind(st, ud);
}

int cbx_journal_clear(cbx_journal *j, const cbx_history_filter *f, uint64_t *deleted, cbx_err *err)
{
    if (deleted)
        *deleted = 0;
    if (!j)
        return cbx_err_set(err, -EINVAL, "cbx_journal_clear: no journal");
    char where[1024], cond[1280];
    where_build(j, f, NULL, where, sizeof where);
    if (f && f->limit)
        snprintf(cond, sizeof cond,
                 " WHERE rowid IN (SELECT rowid FROM executions%s ORDER BY submitted_ms DESC,"
                 " rowid DESC LIMIT ?7)",
                 where);
    else
        snprintf(cond, sizeof cond, "%s", where);
    cbx__journal_lock(j);
    uint64_t n = 0;
    int r = cbx__journal_begin_locked(j, err);
    if (r == 0)
        r = cbx__journal_settle_locked(j, err);
    if (r == 0)
        r = delete_where(j, cond, bind_filter, f, &n, err);
    /* On failure the deletion was undone: the batch's writes still commit. */
    int c = cbx__journal_commit_locked(j, r == 0 ? err : NULL);
    if (r == 0)
        r = c;
    pthread_mutex_unlock(&j->mu);
    if (r == 0 && deleted)
        *deleted = n;
    return r;
}

static int query_2i64(cbx_journal *j, const char *sql, int64_t a, int64_t *x, int64_t *y, int *have,
                      cbx_err *err)
{
    sqlite3_stmt *st = NULL;
    *have = 0;
    int r = prepare_q(j, sql, &st, err);
    if (r != 0)
        return r;
    if (sqlite3_bind_parameter_count(st) >= 1)
        sqlite3_bind_int64(st, 1, a);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *have = sqlite3_column_type(st, 0) != SQLITE_NULL;
        *x = sqlite3_column_int64(st, 0);
        *y = sqlite3_column_count(st) > 1 ? sqlite3_column_int64(st, 1) : 0;
    } else if (rc != SQLITE_DONE) {
        r = cbx__journal_fail(j, err, "retention");
    }
    sqlite3_finalize(st);
    return r;
}

static void bind_cutoff(sqlite3_stmt *st, const void *ud)
{
    const int64_t *c = ud;
    sqlite3_bind_int64(st, 1, c[0]);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, c[1]);
}

/* The rows of executions, max_rowid the largest rowid. A count(*) reads every page of the
 * smallest index: at the cap (max_executions rows, the oldest deleted as new ones come) that was
 * every retention pass, and made each write of a full journal half as costly again. So the count
 * is kept: within a batch (the write lock held, no one else writes), when no other connection
 * has committed since it was taken (PRAGMA data_version) and no batch of this handle was lost,
 * the rows are those counted plus those inserted since, whose rowids are past the last one
 * counted: a walk over the new rows only. */
static int count_rows_locked(cbx_journal *j, int64_t max_rowid, int64_t *n, cbx_err *err)
{
    int64_t dv = 0, x = 0, y = 0;
    int have = 0, r = 0;
    int in_batch = j->in_txn && !sqlite3_get_autocommit(j->db);
    if (in_batch && (r = query_2i64(j, "PRAGMA data_version", 0, &dv, &y, &have, err)) != 0)
        return r;
    int known = in_batch && have && j->count_known && dv == j->count_dv;
    if (known)
        r = query_2i64(j, "SELECT count(*) FROM executions WHERE rowid > ?1", j->count_rowid, &x,
                       &y, &have, err);
    else
        r = query_2i64(j, "SELECT count(*) FROM executions", 0, &x, &y, &have, err);
    j->count_known = 0;
    if (r != 0)
        return r;
    *n = known ? j->count_rows + x : x;
    j->count_dv = in_batch ? dv : 0;
    j->count_rows = *n;
    j->count_rowid = max_rowid;
    j->count_known = in_batch;
    return 0;
}

/* Cheap when nothing is due: two index look-ups. A batch is begun only to delete. slack: the
 * rows the table may exceed max_executions by before they are counted (see
 * cbx__journal_prune_locked). */
static int prune_count_age_locked(cbx_journal *j, uint64_t slack, cbx_err *err)
{
    int64_t x = 0, y = 0;
    int have = 0, r;
    if (j->max_age_ms) {
        uint64_t now = cbx__journal_wall_ms();
        int64_t cutoff = now > j->max_age_ms ? (int64_t)(now - j->max_age_ms) : 0;
        r = query_2i64(j, "SELECT min(submitted_ms) FROM executions", 0, &x, &y, &have, err);
        if (r != 0)
            return r;
        if (have && x < cutoff) {
            int64_t c[2] = {cutoff, 0};
            if ((r = cbx__journal_begin_locked(j, err)) != 0 ||
                (r = delete_where(j, " WHERE submitted_ms < ?1", bind_cutoff, c, NULL, err)) != 0 ||
                (r = cbx__journal_note_cut_locked(j, cutoff, err)) != 0)
                return r;
        }
    }
    /* The rowid span bounds the row count from above (two look-ups); only when it exceeds the
     * limit is the row counted (a walk over the smallest index's pages, not its entries) and
     * the excess, the oldest, cut off: the cost follows what is deleted, not what is kept. */
    r = query_2i64(j,
                   "SELECT (SELECT min(rowid) FROM executions),"
                   " (SELECT max(rowid) FROM executions)",
                   0, &x, &y, &have, err);
    if (r != 0 || !have || (uint64_t)(y - x + 1) <= j->max_executions + slack)
        return r;
    if ((r = count_rows_locked(j, y, &x, err)) != 0 || (uint64_t)x <= j->max_executions)
        return r;
    int64_t c[2];
    r = query_2i64(j,
                   "SELECT submitted_ms, rowid FROM executions ORDER BY submitted_ms, rowid"
                   " LIMIT 1 OFFSET ?1",
                   x - (int64_t)j->max_executions - 1, &c[0], &c[1], &have, err);
    if (r != 0 || !have)
        return r;
    uint64_t gone = 0;
    int keep = j->count_known; /* the deletion forgets the count */
    if ((r = cbx__journal_begin_locked(j, err)) != 0 ||
        (r = cbx__journal_delete_upto_locked(j, c[0], c[1], &gone, err)) != 0 ||
        (r = cbx__journal_note_cut_locked(j, c[0] + 1, err)) != 0)
        return r;
    /* the count goes on from here: what is left, up to the newest row left (a row inserted
     * next has a greater rowid: SQLite's is the largest plus one) */
    if (!keep || (uint64_t)x < gone)
        return 0;
    r = query_2i64(j, "SELECT max(rowid) FROM executions", 0, &j->count_rowid, &y, &have, err);
    j->count_rows = x - (int64_t)gone;
    j->count_known = r == 0 && have;
    return r;
}

int cbx__journal_delete_upto_locked(cbx_journal *j, int64_t submitted_ms, int64_t rowid,
                                    uint64_t *deleted, cbx_err *err)
{
    int64_t c[2] = {submitted_ms, rowid};
    return delete_where(j, " WHERE (submitted_ms, rowid) <= (?1, ?2)", bind_cutoff, c, deleted,
                        err);
}

int cbx__journal_prune_locked(cbx_journal *j, int at_open, cbx_err *err)
{
    /* A process that opens the journal makes its first pass outside any batch, where the count
     * is never kept, and a short one (one cbx exec) makes no other: at the bound, each one would
     * count the whole table to delete the one row the last one added. So the pass at an open
     * lets the table exceed the bound by what the passes every 1,000 writes allow between two of
     * them (a third of that, in executions) before it counts and cuts back to the bound: once
     * in about 330 short processes. */
    uint64_t slack = at_open ? CBX__JOURNAL_PRUNE_EVERY / 3 : 0;
    /* whatever it finds: another process cuts too */
    atomic_store_explicit(&j->retention_epoch, cbx__journal_new_epoch(), memory_order_relaxed);
    int r = cbx__journal_retention_setup_locked(j, err);
    if (r == 0)
        r = prune_count_age_locked(j, slack, err);
    if (r == 0)
        r = cbx__journal_prune_size_locked(j, err);
    return r;
}

uint64_t cbx_journal_retention_epoch(cbx_journal *j)
{
    return j ? (uint64_t)atomic_load_explicit(&j->retention_epoch, memory_order_relaxed) : 0;
}

int cbx_journal_prune(cbx_journal *j, cbx_err *err)
{
    if (!j)
        return cbx_err_set(err, -EINVAL, "cbx_journal_prune: no journal");
    cbx__journal_lock(j);
    int r = cbx__journal_settle_locked(j, err);
    if (r == 0)
        r = cbx__journal_prune_locked(j, 0, err);
    int c = cbx__journal_commit_locked(j, r == 0 ? err : NULL);
    pthread_mutex_unlock(&j->mu);
    return r != 0 ? r : c;
}
