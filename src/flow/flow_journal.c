/* Flow runs and steps in SQLite, each record committed before the runner goes on. */
#include "flow/flow_journal.h"

#include "cbx/flow.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

struct cbx__flow_journal {
    sqlite3 *db;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS flow_runs ("
    "  run_id TEXT PRIMARY KEY, flow TEXT, file TEXT, inputs TEXT, status TEXT, error TEXT,"
    "  started_ms INTEGER, ended_ms INTEGER, outputs TEXT);"
    "CREATE INDEX IF NOT EXISTS flow_runs_started ON flow_runs(started_ms);"
    "CREATE TABLE IF NOT EXISTS flow_steps ("
    "  run_id TEXT, step TEXT, status TEXT, outputs TEXT, attempts INTEGER, error TEXT,"
    "  started_ms INTEGER, ended_ms INTEGER, PRIMARY KEY (run_id, step));";

static int db_error(cbx__flow_journal *j, cbx_err *err, const char *what)
{
    return cbx_err_set(err, CBX_EJOURNAL, "flow journal: %s: %s", what,
                       j && j->db ? sqlite3_errmsg(j->db) : "not open");
}

int cbx__flow_journal_open(cbx__flow_journal **out, const char *path, cbx_err *err)
{
    *out = NULL;
    cbx__flow_journal *j = calloc(1, sizeof *j);
    if (!j)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        int r = cbx_err_set_at(err, CBX_EJOURNAL, path, 0, 0, "cannot open the journal: %s",
                               j->db ? sqlite3_errmsg(j->db) : "out of memory");
        cbx__flow_journal_close(j);
        return r;
    }
    sqlite3_busy_timeout(j->db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(j->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     &msg) != SQLITE_OK ||
        sqlite3_exec(j->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        int r = cbx_err_set_at(err, CBX_EJOURNAL, path, 0, 0, "flow journal: %s",
                               msg ? msg : "cannot create tables");
        sqlite3_free(msg);
        cbx__flow_journal_close(j);
        return r;
    }
    *out = j;
    return 0;
}

void cbx__flow_journal_close(cbx__flow_journal *j)
{
    if (!j)
        return;
    sqlite3_close(j->db);
    free(j);
}

/* Bind helpers: NULL-safe text and JSON. */
static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_json(sqlite3_stmt *st, int i, const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (s)
        sqlite3_bind_text(st, i, s, -1, free);
    else
        sqlite3_bind_null(st, i);
}

static int run_stmt(cbx__flow_journal *j, sqlite3_stmt *st, cbx_err *err, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_error(j, err, what);
}

static sqlite3_stmt *prepare(cbx__flow_journal *j, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (!j || !j->db)
        return NULL;
    sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
    return st;
}

int cbx__flow_journal_run_start(cbx__flow_journal *j, const char *run_id, const char *flow,
                                const char *file, const json_t *inputs, uint64_t started_ms,
                                cbx_err *err)
{
    sqlite3_stmt *st = prepare(j, "INSERT INTO flow_runs (run_id, flow, file, inputs, status,"
                                  " started_ms) VALUES (?, ?, ?, ?, 'running', ?)"
                                  " ON CONFLICT(run_id) DO UPDATE SET status = 'running',"
                                  " ended_ms = NULL, error = NULL");
    if (!st)
        return db_error(j, err, "prepare");
    bind_text(st, 1, run_id);
    bind_text(st, 2, flow);
    bind_text(st, 3, file);
    bind_json(st, 4, inputs);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)started_ms);
    return run_stmt(j, st, err, "run start");
}

int cbx__flow_journal_run_end(cbx__flow_journal *j, const char *run_id, const char *status,
                              const json_t *outputs, const char *error, uint64_t ended_ms,
                              cbx_err *err)
{
    sqlite3_stmt *st = prepare(j, "UPDATE flow_runs SET status = ?, outputs = ?, error = ?,"
                                  " ended_ms = ? WHERE run_id = ?");
    if (!st)
        return db_error(j, err, "prepare");
    bind_text(st, 1, status);
    bind_json(st, 2, outputs);
    bind_text(st, 3, error);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)ended_ms);
    bind_text(st, 5, run_id);
    return run_stmt(j, st, err, "run end");
}

int cbx__flow_journal_step_start(cbx__flow_journal *j, const char *run_id, const char *step,
                                 uint64_t started_ms, cbx_err *err)
{
    sqlite3_stmt *st =
        prepare(j, "INSERT INTO flow_steps (run_id, step, status, started_ms)"
                   " VALUES (?, ?, 'running', ?) ON CONFLICT(run_id, step)"
                   " DO UPDATE SET status = 'running', started_ms = excluded.started_ms,"
                   " ended_ms = NULL, error = NULL, outputs = NULL");
    if (!st)
        return db_error(j, err, "prepare");
    bind_text(st, 1, run_id);
    bind_text(st, 2, step);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)started_ms);
    return run_stmt(j, st, err, "step start");
}

int cbx__flow_journal_step_end(cbx__flow_journal *j, const char *run_id, const char *step,
                               const char *status, const json_t *outputs, uint32_t attempts,
                               const char *error, uint64_t ended_ms, cbx_err *err)
{
    sqlite3_stmt *st = prepare(j, "INSERT INTO flow_steps (run_id, step, status, outputs,"
                                  " attempts, error, ended_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
                                  " ON CONFLICT(run_id, step) DO UPDATE SET status ="
                                  " excluded.status, outputs = excluded.outputs, attempts ="
                                  " excluded.attempts, error = excluded.error, ended_ms ="
                                  " excluded.ended_ms");
    if (!st)
        return db_error(j, err, "prepare");
    bind_text(st, 1, run_id);
    bind_text(st, 2, step);
    bind_text(st, 3, status);
    bind_json(st, 4, outputs);
    sqlite3_bind_int(st, 5, (int)attempts);
    bind_text(st, 6, error && error[0] ? error : NULL);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)ended_ms);
    return run_stmt(j, st, err, "step end");
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

int cbx__flow_journal_get(cbx__flow_journal *j, const char *run_id, json_t **out, cbx_err *err)
{
    *out = NULL;
    sqlite3_stmt *st = prepare(j, "SELECT run_id, flow, file, inputs, status, error, started_ms,"
                                  " ended_ms, outputs FROM flow_runs WHERE run_id = ?");
    if (!st)
        return db_error(j, err, "prepare");
    bind_text(st, 1, run_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return cbx_err_set(err, -ENOENT, "no flow run '%s' in the journal", run_id);
    }
    json_t *run =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:o}", "run_id", column_text(st, 0),
                  "flow", column_text(st, 1), "file", column_text(st, 2), "inputs",
                  column_json(st, 3), "status", column_text(st, 4), "error", column_text(st, 5),
                  "started_ms", (json_int_t)sqlite3_column_int64(st, 6), "ended_ms",
                  (json_int_t)sqlite3_column_int64(st, 7), "outputs", column_json(st, 8));
    sqlite3_finalize(st);
    st = prepare(j, "SELECT step, status, outputs, attempts, error, started_ms, ended_ms FROM"
                    " flow_steps WHERE run_id = ?");
    if (!st) {
        json_decref(run);
        return db_error(j, err, "prepare");
    }
    bind_text(st, 1, run_id);
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
    json_object_set_new(run, "steps", steps);
    *out = run;
    return 0;
}

int cbx__flow_journal_list(cbx__flow_journal *j, uint32_t limit, json_t **out, cbx_err *err)
{
    *out = NULL;
    sqlite3_stmt *st = prepare(j, "SELECT run_id, flow, status, started_ms, ended_ms, error FROM"
                                  " flow_runs ORDER BY started_ms DESC LIMIT ?");
    if (!st)
        return db_error(j, err, "prepare");
    sqlite3_bind_int(st, 1, limit ? (int)limit : 50);
    json_t *rows = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(
            rows, json_pack("{s:o, s:o, s:o, s:I, s:I, s:o}", "run_id", column_text(st, 0), "flow",
                            column_text(st, 1), "status", column_text(st, 2), "started_ms",
                            (json_int_t)sqlite3_column_int64(st, 3), "ended_ms",
                            (json_int_t)sqlite3_column_int64(st, 4), "error", column_text(st, 5)));
    sqlite3_finalize(st);
    *out = rows;
    return 0;
}

/* ---- the public queries ---------------------------------------------------------------------- */

int cbx_flow_runs_list(cbx_journal *j, uint32_t limit, json_t **out, cbx_err *err)
{
    cbx__flow_journal *fj;
    int r = cbx__flow_journal_open(&fj, cbx_journal_path(j), err);
    if (r < 0)
        return r;
    r = cbx__flow_journal_list(fj, limit, out, err);
    cbx__flow_journal_close(fj);
    return r;
}

int cbx_flow_run_show(cbx_journal *j, const char *run_id, json_t **out, cbx_err *err)
{
    cbx__flow_journal *fj;
    int r = cbx__flow_journal_open(&fj, cbx_journal_path(j), err);
    if (r < 0)
        return r;
    r = cbx__flow_journal_get(fj, run_id, out, err);
    cbx__flow_journal_close(fj);
    return r;
}
