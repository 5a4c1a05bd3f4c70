/* Workflow runs and their events in SQLite, written through the runtime journal's connection and
 * batches, so that the events commit in the order made, with the executions of their actions. */
#include "workflow/net_internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS wf_runs ("
    "  run_id TEXT PRIMARY KEY, workflow TEXT, file TEXT, source TEXT, state TEXT,"
    "  started_ms INTEGER, updated_ms INTEGER, owner_pid INTEGER, owner_start INTEGER);"
    "CREATE INDEX IF NOT EXISTS wf_runs_started ON wf_runs(started_ms);"
    "CREATE TABLE IF NOT EXISTS wf_events ("
    "  run_id TEXT, seq INTEGER, kind TEXT, body TEXT, PRIMARY KEY (run_id, seq));";

static const char sql_run[] =
    "INSERT INTO wf_runs (run_id, workflow, file, source, state, started_ms, updated_ms,"
    " owner_pid, owner_start) VALUES (?1, ?2, ?3, ?4, 'started', ?5, ?5, cbx_owner_pid(),"
    " cbx_owner_start()) ON CONFLICT(run_id) DO UPDATE SET state = 'started',"
    " updated_ms = excluded.updated_ms, owner_pid = excluded.owner_pid,"
    " owner_start = excluded.owner_start";
static const char sql_event[] =
    "INSERT INTO wf_events (run_id, seq, kind, body) VALUES (?1, ?2, ?3, ?4)";
static const char sql_state[] = "UPDATE wf_runs SET state = ?2, updated_ms = ?3 WHERE run_id = ?1";
/* the run, and whether another process that is alive is running it now */
static const char sql_read_run[] =
    "SELECT source, file, (state IN ('started', 'running') AND owner_pid IS NOT NULL AND"
    " owner_pid <> cbx_owner_pid() AND cbx_owner_alive(owner_pid, owner_start)), owner_pid"
    " FROM wf_runs WHERE run_id = ?1";
static const char sql_read_events[] =
    "SELECT seq, kind, body FROM wf_events WHERE run_id = ?1 ORDER BY seq";

struct cbx__wf_journal {
    cbx_journal *j; /* borrowed */
};

static int db_error(sqlite3 *db, cbx_err *err, const char *what)
{
    return cbx_err_set(err, CBX_EJOURNAL, "workflow journal: %s: %s", what, sqlite3_errmsg(db));
}

static int setup(sqlite3 *db, void *ud, cbx_err *err)
{
    cbx__wf_journal *jr = ud;
    sqlite3_stmt *st = NULL;
    if (cbx_journal_stmt(jr->j, sql_event, &st, NULL) == 0)
        return 0;
    if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(db, err, "create tables");
    return cbx_journal_stmt(jr->j, sql_event, &st, err);
}

int cbx__wf_journal_open(cbx__wf_journal **out, cbx_journal *j, cbx_err *err)
{
    *out = NULL;
    cbx__wf_journal *jr = calloc(1, sizeof *jr);
    if (!jr)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    jr->j = j;
    int r = cbx_journal_write_db(j, setup, jr, NULL, err);
    if (r < 0) {
        free(jr);
        return r;
    }
    *out = jr;
    return 0;
}

void cbx__wf_journal_close(cbx__wf_journal *jr)
{
    free(jr); /* the statements are the journal's */
}

typedef struct rec {
    cbx__wf_journal *jr;
    const char *sql;
    const char *run_id, *a, *b;
    const char *text;
    uint64_t n, ms;
} rec;

static int write_rec(sqlite3 *db, void *ud, cbx_err *err)
{
    const rec *r = ud;
    sqlite3_stmt *st = NULL;
    if (cbx_journal_stmt(r->jr->j, r->sql, &st, err) != 0)
        return CBX_EJOURNAL;
    sqlite3_bind_text(st, 1, r->run_id, -1, SQLITE_STATIC);
    if (r->sql == sql_run) {
        sqlite3_bind_text(st, 2, r->a, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->b, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)r->ms);
    } else if (r->sql == sql_event) {
        sqlite3_bind_int64(st, 2, (sqlite3_int64)r->n);
        sqlite3_bind_text(st, 3, r->a, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->text, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_text(st, 2, r->a, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r->ms);
    }
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : db_error(db, err, "write");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

int cbx__wf_journal_run(cbx__wf_journal *jr, const char *run_id, const cbx_workflow *w,
                        cbx_err *err)
{
    rec r = {.jr = jr,
             .sql = sql_run,
             .run_id = run_id,
             .a = w->name,
             .b = w->doc.file ? w->doc.file : "",
             .text = w->source,
             .ms = cbx__wf_now_ms()};
    return cbx_journal_write_db(jr->j, write_rec, &r, NULL, err);
}

int cbx__wf_journal_event(cbx__wf_journal *jr, const char *run_id, uint64_t seq, const char *kind,
                          const json_t *body, cbx_err *err)
{
    /* through the journal's encoder: secret-named members masked, the record cap applied */
    char *text = NULL;
    int e = cbx_journal_encode(jr->j, body, &text, NULL, NULL, err);
    if (e < 0)
        return e;
    rec r = {.jr = jr, .sql = sql_event, .run_id = run_id, .a = kind, .text = text, .n = seq};
    int rc = cbx_journal_write_db(jr->j, write_rec, &r, NULL, err);
    free(text);
    return rc;
}

int cbx__wf_journal_state(cbx__wf_journal *jr, const char *run_id, const char *state, cbx_err *err)
{
    rec r = {.jr = jr, .sql = sql_state, .run_id = run_id, .a = state, .ms = cbx__wf_now_ms()};
    int rc = cbx_journal_write_db(jr->j, write_rec, &r, NULL, err);
    if (rc == 0)
        rc = cbx_journal_flush(jr->j, err);
    return rc;
}

/* ---- reads ------------------------------------------------------------------------------- */

typedef struct reader {
    const char *run_id;
    int for_update; /* refuse a run another live process is running */
    char *source, *file;
    json_t *events;
    uint32_t limit;
    json_t *list;
} reader;

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

static int tables_exist(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(db, "SELECT 1 FROM wf_events LIMIT 0", -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    return ok;
}

static int read_fn(sqlite3 *db, void *ud, cbx_err *err)
{
    reader *R = ud;
    if (!tables_exist(db))
        return cbx_err_set(err, -ENOENT, "no workflow run %s in the journal", R->run_id);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql_read_run, -1, &st, NULL) != SQLITE_OK)
        return db_error(db, err, "read");
    sqlite3_bind_text(st, 1, R->run_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int busy = 0;
    long long owner = 0;
    if (rc == SQLITE_ROW) {
        R->source = col_dup(st, 0);
        R->file = col_dup(st, 1);
        busy = sqlite3_column_int(st, 2);
        owner = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return cbx_err_set(err, -ENOENT, "no workflow run %s in the journal", R->run_id);
    if (busy && R->for_update)
        return cbx_err_set(err, -EBUSY,
                           "workflow run %s is being run by process %lld; wait until it rests "
                           "(or ends) and try again",
                           R->run_id, owner);
    if (sqlite3_prepare_v2(db, sql_read_events, -1, &st, NULL) != SQLITE_OK)
        return db_error(db, err, "read");
    sqlite3_bind_text(st, 1, R->run_id, -1, SQLITE_STATIC);
    R->events = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        const char *body = (const char *)sqlite3_column_text(st, 2);
        json_t *b = body ? json_loads(body, 0, NULL) : NULL;
        json_array_append_new(R->events,
                              json_pack("[I, s, o]", (json_int_t)sqlite3_column_int64(st, 0),
                                        kind ? kind : "", b ? b : json_object()));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_error(db, err, "read events");
}

int cbx__wf_journal_read(cbx_journal *j, const char *run_id, int for_update, char **source,
                         char **file, json_t **events, cbx_err *err)
{
    reader R = {.run_id = run_id, .for_update = for_update};
    int rc = cbx_journal_read_db(j, read_fn, &R, err);
    if (rc) {
        free(R.source);
        free(R.file);
        json_decref(R.events);
        return rc;
    }
    *source = R.source;
    *file = R.file;
    *events = R.events;
    return 0;
}

static int list_fn(sqlite3 *db, void *ud, cbx_err *err)
{
    reader *R = ud;
    R->list = json_array();
    if (!tables_exist(db))
        return 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            db,
            "SELECT run_id, workflow, file, (CASE WHEN state = 'running' AND owner_pid IS NOT NULL"
            " AND NOT cbx_owner_alive(owner_pid, owner_start) THEN 'interrupted' ELSE state END),"
            " started_ms, updated_ms FROM wf_runs ORDER BY started_ms DESC, run_id DESC LIMIT ?1",
            -1, &st, NULL) != SQLITE_OK)
        return db_error(db, err, "list");
    sqlite3_bind_int64(st, 1, R->limit);
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *row = json_object();
        static const char *const names[] = {"run_id", "workflow", "file", "state"};
        for (int i = 0; i < 4; i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            json_object_set_new(row, names[i], json_string(t ? (const char *)t : ""));
        }
        json_object_set_new(row, "started_ms", json_integer(sqlite3_column_int64(st, 4)));
        json_object_set_new(row, "updated_ms", json_integer(sqlite3_column_int64(st, 5)));
        json_array_append_new(R->list, row);
    }
    sqlite3_finalize(st);
    return 0;
}

int cbx_workflow_runs_list(cbx_journal *j, uint32_t limit, json_t **out, cbx_err *err)
{
    reader R = {.limit = limit ? limit : 50};
    int rc = cbx_journal_read_db(j, list_fn, &R, err);
    if (rc) {
        json_decref(R.list);
        return rc;
    }
    *out = R.list;
    return 0;
}
