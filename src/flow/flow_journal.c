/* Flow runs and steps in SQLite, written through the runtime journal's connection and batches. */
#include "flow/flow_journal.h"

#include "cbx/flow.h"

#include <errno.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The records, in the order of the statements below. */
typedef enum rec_kind {
    REC_RUN_START,
    REC_RUN_END,
    REC_STEP_START,
    REC_STEP_END,
    REC_ITEM_END,
    REC_KINDS
} rec_kind;

static const char *const rec_sql[REC_KINDS] = {
    "INSERT INTO flow_runs (run_id, flow, file, inputs, status, started_ms, owner_pid,"
    " owner_start) VALUES (?1, ?2, ?3, ?4, 'running', ?5, cbx_owner_pid(), cbx_owner_start())"
    " ON CONFLICT(run_id) DO UPDATE SET status = 'running', ended_ms = NULL, error = NULL,"
    " owner_pid = excluded.owner_pid, owner_start = excluded.owner_start",
    "UPDATE flow_runs SET status = ?3, outputs = ?4, error = ?5, ended_ms = ?6 WHERE run_id = ?1",
    "INSERT INTO flow_steps (run_id, step, status, started_ms) VALUES (?1, ?2, 'running', ?6)"
    " ON CONFLICT(run_id, step) DO UPDATE SET status = 'running',"
    " started_ms = excluded.started_ms, ended_ms = NULL, error = NULL, outputs = NULL",
    "INSERT INTO flow_steps (run_id, step, status, outputs, attempts, error, ended_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?7, ?5, ?6) ON CONFLICT(run_id, step) DO UPDATE SET"
    " status = excluded.status, outputs = excluded.outputs, attempts = excluded.attempts,"
    " error = excluded.error, ended_ms = excluded.ended_ms",
    "INSERT INTO flow_items (run_id, step, item, status, outputs, attempts, error, ended_ms,"
    " item_hash) VALUES (?1, ?2, ?8, ?3, ?4, ?7, ?5, ?6, ?9) ON CONFLICT(run_id, step, item)"
    " DO UPDATE SET status = excluded.status, outputs = excluded.outputs,"
    " attempts = excluded.attempts, error = excluded.error, ended_ms = excluded.ended_ms,"
    " item_hash = excluded.item_hash"};

/* Retention, before each run starts: a run goes with the executions of its time. The journal
 * drops the oldest executions (by count, age and size, docs/journal.md) and records the cut below
 * which every execution is gone (journal_retention); a run that had ended (or, never ended, had
 * started) before that cut has lost them all, and goes too - but never the run being started (a
 * resumed one may be old). Before any retention there is no cut, and no run goes: the oldest
 * execution kept is then only the oldest, and a run still running (of another worker of a batch)
 * started before its own first execution. ?1: that run's id. The first condition is the index's;
 * the second implies it. */
#define PRUNED_RUNS                                                                                \
    "SELECT run_id FROM flow_runs, (SELECT max(cut_ms) AS cut FROM journal_retention)"             \
    " WHERE started_ms < cut AND coalesce(ended_ms, started_ms) < cut AND run_id <> ?1"
#define NPRUNE 3
static const char *const prune_sql[NPRUNE] = {
    "DELETE FROM flow_items WHERE run_id IN (" PRUNED_RUNS ")",
    "DELETE FROM flow_steps WHERE run_id IN (" PRUNED_RUNS ")",
    "DELETE FROM flow_runs WHERE run_id IN (" PRUNED_RUNS ")",
};

static const char *const rec_what[REC_KINDS] = {"run start", "run end", "step start", "step end",
                                                "item end"};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS flow_runs ("
    "  run_id TEXT PRIMARY KEY, flow TEXT, file TEXT, inputs TEXT, status TEXT, error TEXT,"
    "  started_ms INTEGER, ended_ms INTEGER, outputs TEXT, owner_pid INTEGER,"
    "  owner_start INTEGER);"
    "CREATE INDEX IF NOT EXISTS flow_runs_started ON flow_runs(started_ms);"
    "CREATE TABLE IF NOT EXISTS flow_steps ("
    "  run_id TEXT, step TEXT, status TEXT, outputs TEXT, attempts INTEGER, error TEXT,"
    "  started_ms INTEGER, ended_ms INTEGER, PRIMARY KEY (run_id, step));"
    "CREATE TABLE IF NOT EXISTS flow_items ("
    "  run_id TEXT, step TEXT, item INTEGER, status TEXT, outputs TEXT, attempts INTEGER,"
    "  error TEXT, ended_ms INTEGER, item_hash INTEGER, PRIMARY KEY (run_id, step, item));";

/* Whether retention has any run to drop, asked first: the deletes build temporary tables (the
 * run ids; a pager and a page cache of their own, allocated and freed), which at every run start
 * cost half of what journaling a no-op run did. And only once the journal has dropped executions
 * (the oldest kept is not the first written, rowid 1): until then the oldest execution is merely
 * the oldest, and a run still running on another worker of a batch, started a moment before its
 * first execution, would be dropped (as runs faster to start made happen). */
static const char prune_probe_sql[] =
    "SELECT CASE WHEN coalesce((SELECT min(rowid) FROM executions), 2) > 1"
    " THEN EXISTS (" PRUNED_RUNS ") ELSE 0 END";

struct cbx__flow_journal {
    cbx_journal *j;              /* borrowed */
    sqlite3_stmt *st[REC_KINDS]; /* prepared on j's connection */
    sqlite3_stmt *prune[NPRUNE];
    sqlite3_stmt *probe; /* prune_probe_sql */
};

/* One record. Parameters: ?1 run id, ?2 flow or step name, ?3 status (a run start: the flow's
 * file), ?4 JSON (inputs or outputs), ?5 error, ?6 time (ms; ?5 in a run start), ?7 attempts,
 * ?8 a foreach item's index, ?9 the hash of its value. */
typedef struct rec {
    cbx__flow_journal *fj;
    rec_kind kind;
    const char *run_id, *name, *file, *status, *error;
    const json_t *json;
    uint32_t attempts;
    uint64_t ms;
    size_t item;
    uint64_t item_hash;
} rec;

static int db_error(sqlite3 *db, cbx_err *err, const char *what)
{
    return cbx_err_set(err, CBX_EJOURNAL, "flow journal: %s: %s", what, sqlite3_errmsg(db));
}

/* ---- open and close ------------------------------------------------------------------------ */

/* flow_runs has the owner columns (a journal made before them has not, until written). */
static int has_owner(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(db, "SELECT owner_pid FROM flow_runs LIMIT 0", -1, &st, NULL) ==
             SQLITE_OK;
    sqlite3_finalize(st);
    return ok;
}

/* A run not ended whose process is gone shows as abandoned. */
#define RUN_STATUS                                                                                 \
    "(CASE WHEN ended_ms IS NULL AND status = 'running' AND owner_pid IS NOT NULL AND"             \
    " NOT cbx_owner_alive(owner_pid, owner_start) THEN 'abandoned' ELSE status END)"

/* Resuming a run closes what its dead process left unfinished: executions of the run not
 * ended whose owner is gone end as abandoned. A new run (most run starts) has none: the scan
 * of the executions by tag is only made for a run already journaled. */
static const char sql_run_known[] = "SELECT 1 FROM flow_runs WHERE run_id = ?1";

static int close_abandoned(sqlite3 *db, cbx_journal *j, const char *run_id, uint64_t ms,
                           cbx_err *err)
{
    sqlite3_stmt *st = NULL;
    if (cbx_journal_stmt(j, sql_run_known, &st, err) != 0)
        return CBX_EJOURNAL;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    int known = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    st = NULL;
    if (!known)
        return 0;
    if (sqlite3_prepare_v2(db,
                           "UPDATE executions SET status = 'abandoned', ended_ms = ?2,"
                           " error = 'its process ended before it did'"
                           " WHERE substr(tag, 1, length(?1)) = ?1 AND ended_ms IS NULL"
                           " AND owner_pid IS NOT NULL AND NOT cbx_owner_alive(owner_pid,"
                           " owner_start)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(db, err, "prepare");
    char prefix[80];
    snprintf(prefix, sizeof prefix, "flow:%s/", run_id);
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_error(db, err, "close abandoned executions");
}

/* The statements are the journal handle's (cbx_journal_stmt): parsed by the first run on a
 * handle, kept for the runs after it. The tables are made only when the first statement finds
 * them missing: no schema work on a journal that has them. */
static int prepare_all(cbx__flow_journal *fj, cbx_err *err)
{
    for (int k = 0; k < REC_KINDS; k++)
        if (cbx_journal_stmt(fj->j, rec_sql[k], &fj->st[k], err) != 0)
            return CBX_EJOURNAL;
    for (int k = 0; k < NPRUNE; k++)
        if (cbx_journal_stmt(fj->j, prune_sql[k], &fj->prune[k], err) != 0)
            return CBX_EJOURNAL;
    if (cbx_journal_stmt(fj->j, prune_probe_sql, &fj->probe, err) != 0)
        return CBX_EJOURNAL;
    return 0;
}

static int setup(sqlite3 *db, void *ud, cbx_err *err)
{
    cbx__flow_journal *fj = ud;
    if (prepare_all(fj, NULL) == 0)
        return 0;
    /* missing tables (flow_items came later), or a journal made before the owner columns */
    if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(db, err, "create tables");
    if (!has_owner(db) && sqlite3_exec(db,
                                       "ALTER TABLE flow_runs ADD COLUMN owner_pid INTEGER;"
                                       "ALTER TABLE flow_runs ADD COLUMN owner_start INTEGER",
                                       NULL, NULL, NULL) != SQLITE_OK)
        return db_error(db, err, "add the owner columns");
    return prepare_all(fj, err);
}

int cbx__flow_journal_open(cbx__flow_journal **out, cbx_journal *j, cbx_err *err)
{
    *out = NULL;
    cbx__flow_journal *fj = calloc(1, sizeof *fj);
    if (!fj)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    fj->j = j;
    int r = cbx_journal_write_db(j, setup, fj, NULL, err);
    if (r < 0) {
        cbx__flow_journal_close(fj);
        return r;
    }
    *out = fj;
    return 0;
}

void cbx__flow_journal_close(cbx__flow_journal *fj)
{
    free(fj); /* its statements are the journal's */
}

/* ---- writes -------------------------------------------------------------------------------- */

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC); /* stepped before the call returns */
    else
        sqlite3_bind_null(st, i);
}

static int prune(sqlite3 *db, cbx__flow_journal *fj, const char *run_id, cbx_err *err)
{
    sqlite3_stmt *q = fj->probe;
    sqlite3_bind_text(q, 1, run_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    int any = rc == SQLITE_ROW && sqlite3_column_int(q, 0) != 0;
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (rc != SQLITE_ROW)
        return db_error(db, err, "retention");
    for (int k = 0; k < NPRUNE && any; k++) {
        sqlite3_stmt *st = fj->prune[k];
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
            return db_error(db, err, "retention");
    }
    return 0;
}

static int write_rec(sqlite3 *db, void *ud, cbx_err *err)
{
    const rec *r = ud;
    if (r->kind == REC_RUN_START) {
        int p = prune(db, r->fj, r->run_id, err);
        if (!p)
            p = close_abandoned(db, r->fj->j, r->run_id, r->ms, err);
        if (p)
            return p;
    }
    sqlite3_stmt *st = r->fj->st[r->kind];
    /* through the journal's own encoder: secrets masked and the record cap applied as for
     * executions */
    char *json = NULL;
    int e = cbx_journal_encode(r->fj->j, r->json, &json, NULL, NULL, err);
    if (e < 0)
        return e;
    bind_text(st, 1, r->run_id);
    if (r->kind != REC_RUN_END)
        bind_text(st, 2, r->name);
    if (r->kind != REC_STEP_START) {
        bind_text(st, 3, r->kind == REC_RUN_START ? r->file : r->status);
        bind_text(st, 4, json);
    }
    if (r->kind != REC_RUN_START && r->kind != REC_STEP_START)
        bind_text(st, 5, r->error && r->error[0] ? r->error : NULL);
    sqlite3_bind_int64(st, r->kind == REC_RUN_START ? 5 : 6, (sqlite3_int64)r->ms);
    if (r->kind == REC_STEP_END || r->kind == REC_ITEM_END)
        sqlite3_bind_int64(st, 7, (sqlite3_int64)r->attempts);
    if (r->kind == REC_ITEM_END) {
        sqlite3_bind_int64(st, 8, (sqlite3_int64)r->item);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)r->item_hash);
    }
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : db_error(db, err, rec_what[r->kind]);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    free(json);
    return ret;
}

static int put(const rec *r, uint64_t *batch, cbx_err *err)
{
    if (!r->fj || !r->fj->st[r->kind])
        return cbx_err_set(err, CBX_EJOURNAL, "flow journal: not open");
    return cbx_journal_write_db(r->fj->j, write_rec, (void *)r, batch, err);
}

int cbx__flow_journal_run_start(cbx__flow_journal *fj, const char *run_id, const char *flow,
                                const char *file, const json_t *inputs, uint64_t started_ms,
                                uint64_t *batch, cbx_err *err)
{
    rec r = {.fj = fj,
             .kind = REC_RUN_START,
             .run_id = run_id,
             .name = flow,
             .file = file,
             .json = inputs,
             .ms = started_ms};
    return put(&r, batch, err);
}

int cbx__flow_journal_run_end(cbx__flow_journal *fj, const char *run_id, const char *status,
                              const json_t *outputs, const char *error, uint64_t ended_ms,
                              uint64_t *batch, cbx_err *err)
{
    rec r = {.fj = fj,
             .kind = REC_RUN_END,
             .run_id = run_id,
             .status = status,
             .json = outputs,
             .error = error,
             .ms = ended_ms};
    return put(&r, batch, err);
}

int cbx__flow_journal_step_start(cbx__flow_journal *fj, const char *run_id, const char *step,
                                 uint64_t started_ms, uint64_t *batch, cbx_err *err)
{
    rec r = {.fj = fj, .kind = REC_STEP_START, .run_id = run_id, .name = step, .ms = started_ms};
    return put(&r, batch, err);
}

int cbx__flow_journal_step_end(cbx__flow_journal *fj, const char *run_id, const char *step,
                               const char *status, const json_t *outputs, uint32_t attempts,
                               const char *error, uint64_t ended_ms, uint64_t *batch, cbx_err *err)
{
    rec r = {.fj = fj,
             .kind = REC_STEP_END,
             .run_id = run_id,
             .name = step,
             .status = status,
             .json = outputs,
             .error = error,
             .attempts = attempts,
             .ms = ended_ms};
    return put(&r, batch, err);
}

int cbx__flow_journal_item_end(cbx__flow_journal *fj, const char *run_id, const char *step,
                               size_t item, uint64_t item_hash, const char *status,
                               const json_t *outputs, uint32_t attempts, const char *error,
                               uint64_t ended_ms, cbx_err *err)
{
    rec r = {.fj = fj,
             .kind = REC_ITEM_END,
             .run_id = run_id,
             .name = step,
             .status = status,
             .json = outputs,
             .error = error,
             .attempts = attempts,
             .ms = ended_ms,
             .item = item,
             .item_hash = item_hash};
    return put(&r, NULL, err);
}

/* ---- reads --------------------------------------------------------------------------------- */

/* 1 when the flow tables exist (a journal no flow has run on has none), 0 when not. */
static int have_tables(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int n = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                           " AND name IN ('flow_runs', 'flow_steps')",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n == 2;
}

static json_t *column_json(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? json_loads(s, JSON_DECODE_ANY, NULL) : json_null();
}

static json_t *column_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? json_string(s) : json_null();
}

typedef struct get_args {
    const char *run_id;
    json_t *out;
} get_args;

static int get_run(sqlite3 *db, void *ud, cbx_err *err)
{
    get_args *a = ud;
    sqlite3_stmt *st = NULL;
    if (!have_tables(db))
        return cbx_err_set(err, -ENOENT, "no flow run '%s' in the journal", a->run_id);
    if (sqlite3_prepare_v2(db,
                           has_owner(db) ? "SELECT run_id, flow, file, inputs, " RUN_STATUS ","
                                           " error, started_ms, ended_ms, outputs FROM flow_runs"
                                           " WHERE run_id = ?"
                                         : "SELECT run_id, flow, file, inputs, status, error,"
                                           " started_ms, ended_ms, outputs FROM flow_runs"
                                           " WHERE run_id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(db, err, "prepare");
    bind_text(st, 1, a->run_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return cbx_err_set(err, -ENOENT, "no flow run '%s' in the journal", a->run_id);
    }
    json_t *run =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:o}", "run_id", column_text(st, 0),
                  "flow", column_text(st, 1), "file", column_text(st, 2), "inputs",
                  column_json(st, 3), "status", column_text(st, 4), "error", column_text(st, 5),
                  "started_ms", (json_int_t)sqlite3_column_int64(st, 6), "ended_ms",
                  (json_int_t)sqlite3_column_int64(st, 7), "outputs", column_json(st, 8));
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT step, status, outputs, attempts, error, started_ms, ended_ms"
                           " FROM flow_steps WHERE run_id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        json_decref(run);
        return db_error(db, err, "prepare");
    }
    bind_text(st, 1, a->run_id);
    json_t *steps = json_object();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_object_set_new(steps, (const char *)sqlite3_column_text(st, 0),
                            json_pack("{s:o, s:o, s:i, s:o, s:I, s:I}", "status",
                                      column_text(st, 1), "outputs", column_json(st, 2), "attempts",
                                      sqlite3_column_int(st, 3), "error", column_text(st, 4),
                                      "started_ms", (json_int_t)sqlite3_column_int64(st, 5),
                                      "ended_ms", (json_int_t)sqlite3_column_int64(st, 6)));
    }
    sqlite3_finalize(st);
    st = NULL;
    /* the foreach items that ended, under their steps (a journal written before items were
     * recorded has no such table: no items) */
    if (sqlite3_prepare_v2(db,
                           "SELECT step, item, status, outputs, attempts, error, item_hash"
                           " FROM flow_items WHERE run_id = ? ORDER BY step, item",
                           -1, &st, NULL) == SQLITE_OK) {
        bind_text(st, 1, a->run_id);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            json_t *step = json_object_get(steps, name);
            if (!step) {
                step = json_pack("{s:s, s:i}", "status", "running", "attempts", 0);
                json_object_set_new(steps, name, step);
            }
            json_t *items = json_object_get(step, "items");
            if (!items) {
                items = json_object();
                json_object_set_new(step, "items", items);
            }
            char key[32];
            snprintf(key, sizeof key, "%lld", (long long)sqlite3_column_int64(st, 1));
            json_object_set_new(items, key,
                                json_pack("{s:o, s:o, s:i, s:o, s:I}", "status", column_text(st, 2),
                                          "outputs", column_json(st, 3), "attempts",
                                          sqlite3_column_int(st, 4), "error", column_text(st, 5),
                                          "hash", (json_int_t)sqlite3_column_int64(st, 6)));
        }
    }
    sqlite3_finalize(st);
    json_object_set_new(run, "steps", steps);
    a->out = run;
    return 0;
}

int cbx__flow_journal_get(cbx_journal *j, const char *run_id, json_t **out, cbx_err *err)
{
    get_args a = {.run_id = run_id};
    *out = NULL;
    int r = cbx_journal_read_db(j, get_run, &a, err);
    if (r == 0)
        *out = a.out;
    return r;
}

typedef struct list_args {
    cbx_flow_runs_filter f;
    json_t *out;
} list_args;

static int list_runs(sqlite3 *db, void *ud, cbx_err *err)
{
    list_args *a = ud;
    json_t *rows = json_array();
    if (!rows)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    if (!have_tables(db)) {
        a->out = rows;
        return 0;
    }
    const char *status = has_owner(db) ? RUN_STATUS : "status";
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT run_id, flow, %s AS shown, started_ms, ended_ms, error FROM flow_runs"
             " WHERE (?1 IS NULL OR shown = ?1) AND (?2 IS NULL OR flow = ?2)"
             " AND (?3 IS NULL OR started_ms >= ?3) ORDER BY started_ms DESC LIMIT ?4",
             status);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        json_decref(rows);
        return db_error(db, err, "prepare");
    }
    bind_text(st, 1, a->f.status);
    bind_text(st, 2, a->f.flow);
    if (a->f.since_ms)
        sqlite3_bind_int64(st, 3, (sqlite3_int64)a->f.since_ms);
    sqlite3_bind_int(st, 4, a->f.limit ? (int)a->f.limit : 50);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(
            rows, json_pack("{s:o, s:o, s:o, s:I, s:I, s:o}", "run_id", column_text(st, 0), "flow",
                            column_text(st, 1), "status", column_text(st, 2), "started_ms",
                            (json_int_t)sqlite3_column_int64(st, 3), "ended_ms",
                            (json_int_t)sqlite3_column_int64(st, 4), "error", column_text(st, 5)));
    sqlite3_finalize(st);
    a->out = rows;
    return 0;
}

int cbx__flow_journal_list(cbx_journal *j, uint32_t limit, json_t **out, cbx_err *err)
{
    return cbx_flow_runs_query(j, &(cbx_flow_runs_filter){.limit = limit}, out, err);
}

int cbx_flow_runs_query(cbx_journal *j, const cbx_flow_runs_filter *f, json_t **out, cbx_err *err)
{
    list_args a = {.f = f ? *f : (cbx_flow_runs_filter){0}};
    *out = NULL;
    int r = cbx_journal_read_db(j, list_runs, &a, err);
    if (r == 0)
        *out = a.out;
    return r;
}

/* ---- the public queries ---------------------------------------------------------------------- */

int cbx_flow_runs_list(cbx_journal *j, uint32_t limit, json_t **out, cbx_err *err)
{
    return cbx__flow_journal_list(j, limit, out, err);
}

int cbx_flow_run_show(cbx_journal *j, const char *run_id, json_t **out, cbx_err *err)
{
    return cbx__flow_journal_get(j, run_id, out, err);
}
