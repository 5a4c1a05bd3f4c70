/* Flow runs and steps in SQLite, written through the runtime journal's connection and batches. */
#include "flow/flow_journal.h"

#include "cbx/flow.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The statements that write the rows. A row whose start and end are both in one bundle (below)
 * is inserted whole: one statement where a start and its end made two. */
static const char sql_run_start[] =
    "INSERT INTO flow_runs (run_id, flow, file, inputs, status, started_ms, owner_pid,"
    " owner_start) VALUES (?1, ?2, ?3, ?4, 'running', ?5, cbx_owner_pid(), cbx_owner_start())"
    " ON CONFLICT(run_id) DO UPDATE SET status = 'running', ended_ms = NULL, error = NULL,"
    " owner_pid = excluded.owner_pid, owner_start = excluded.owner_start";
/* A run not journaled yet (most run starts): the row alone, no conflict to resolve. */
#define RUN_NEW(sql) sql " ON CONFLICT(run_id) DO NOTHING"
static const char sql_run_start_new[] = RUN_NEW(
    "INSERT INTO flow_runs (run_id, flow, file, inputs, status, started_ms, owner_pid,"
    " owner_start) VALUES (?1, ?2, ?3, ?4, 'running', ?5, cbx_owner_pid(), cbx_owner_start())");
static const char sql_run_whole_new[] =
    RUN_NEW("INSERT INTO flow_runs (run_id, flow, file, inputs, status, started_ms, outputs, error,"
            " ended_ms, owner_pid, owner_start) VALUES (?1, ?2, ?3, ?4, ?6, ?5, ?7, ?8, ?9,"
            " cbx_owner_pid(), cbx_owner_start())");
static const char sql_run_end[] =
    "UPDATE flow_runs SET status = ?2, outputs = ?3, error = ?4, ended_ms = ?5 WHERE run_id = ?1";
static const char sql_run_whole[] =
    "INSERT INTO flow_runs (run_id, flow, file, inputs, status, started_ms, outputs, error,"
    " ended_ms, owner_pid, owner_start) VALUES (?1, ?2, ?3, ?4, ?6, ?5, ?7, ?8, ?9,"
    " cbx_owner_pid(), cbx_owner_start()) ON CONFLICT(run_id) DO UPDATE SET"
    " status = excluded.status, outputs = excluded.outputs, error = excluded.error,"
    " ended_ms = excluded.ended_ms, owner_pid = excluded.owner_pid,"
    " owner_start = excluded.owner_start";
static const char sql_step_start[] =
    "INSERT INTO flow_steps (run_id, step, status, started_ms) VALUES (?1, ?2, 'running', ?3)"
    " ON CONFLICT(run_id, step) DO UPDATE SET status = 'running',"
    " started_ms = excluded.started_ms, ended_ms = NULL, error = NULL, outputs = NULL";
static const char sql_step_end[] =
    "INSERT INTO flow_steps (run_id, step, status, outputs, attempts, error, ended_ms)"
    " VALUES (?1, ?2, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(run_id, step) DO UPDATE SET"
    " status = excluded.status, outputs = excluded.outputs, attempts = excluded.attempts,"
    " error = excluded.error, ended_ms = excluded.ended_ms";
static const char sql_step_whole[] =
    "INSERT INTO flow_steps (run_id, step, started_ms, status, outputs, attempts, error, ended_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(run_id, step) DO UPDATE SET"
    " status = excluded.status, outputs = excluded.outputs, attempts = excluded.attempts,"
    " error = excluded.error, started_ms = excluded.started_ms, ended_ms = excluded.ended_ms";
static const char sql_item_end[] =
    "INSERT INTO flow_items (run_id, step, item, status, outputs, attempts, error, ended_ms,"
    " item_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(run_id, step, item)"
    " DO UPDATE SET status = excluded.status, outputs = excluded.outputs,"
    " attempts = excluded.attempts, error = excluded.error, ended_ms = excluded.ended_ms,"
    " item_hash = excluded.item_hash";

/* Retention, before a run starts (the first run of a retention epoch, prune() below): a run goes
 * with the executions of its time. The journal drops the oldest executions (by count, age and
 * size, docs/journal.md) and records the cut below which every execution is gone
 * (journal_retention); a run that had ended (or, never ended, had started) before that cut has
 * lost them all, and goes too - but never the run being started (a resumed one may be old).
 * Before any retention there is no cut, and no run goes: the oldest execution kept is then only
 * the oldest, and a run still running (of another worker of a batch) started before its own
 * first execution. ?1: that run's id. The first condition is the index's; the second implies
 * it. */
#define PRUNED_RUNS                                                                                \
    "SELECT run_id FROM flow_runs, (SELECT max(cut_ms) AS cut FROM journal_retention)"             \
    " WHERE started_ms < cut AND coalesce(ended_ms, started_ms) < cut AND run_id <> ?1"
#define NPRUNE 3
static const char *const prune_sql[NPRUNE] = {
    "DELETE FROM flow_items WHERE run_id IN (" PRUNED_RUNS ")",
    "DELETE FROM flow_steps WHERE run_id IN (" PRUNED_RUNS ")",
    "DELETE FROM flow_runs WHERE run_id IN (" PRUNED_RUNS ")",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS flow_runs ("
    "  run_id TEXT PRIMARY KEY, flow TEXT, file TEXT, inputs TEXT, status TEXT, error TEXT,"
    "  started_ms INTEGER, ended_ms INTEGER, outputs TEXT, owner_pid INTEGER,"
    "  owner_start INTEGER) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS flow_runs_started ON flow_runs(started_ms);"
    "CREATE TABLE IF NOT EXISTS flow_steps ("
    "  run_id TEXT, step TEXT, status TEXT, outputs TEXT, attempts INTEGER, error TEXT,"
    "  started_ms INTEGER, ended_ms INTEGER, PRIMARY KEY (run_id, step)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS flow_items ("
    "  run_id TEXT, step TEXT, item INTEGER, status TEXT, outputs TEXT, attempts INTEGER,"
    "  error TEXT, ended_ms INTEGER, item_hash INTEGER, PRIMARY KEY (run_id, step, item))"
    " WITHOUT ROWID;";

/* Whether retention has any run to drop, asked first: the deletes build temporary tables (the
 * run ids; a pager and a page cache of their own, allocated and freed), which at every run start
 * cost half of what journaling a no-op run did. And only once the journal has dropped executions
 * (the oldest kept is not the first written, rowid 1): until then the oldest execution is merely
 * the oldest, and a run still running on another worker of a batch, started a moment before its
 * first execution, would be dropped (as runs faster to start made happen). */
static const char prune_probe_sql[] =
    "SELECT CASE WHEN coalesce((SELECT min(rowid) FROM executions), 2) > 1"
    " THEN EXISTS (" PRUNED_RUNS ") ELSE 0 END";

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

/* ---- the statements ------------------------------------------------------------------------ */

/* Make the tables when missing (flow_items came later), and add the owner columns to a journal
 * made before them. */
static int make_tables(sqlite3 *db, cbx_err *err)
{
    if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(db, err, "create tables");
    if (!has_owner(db) && sqlite3_exec(db,
                                       "ALTER TABLE flow_runs ADD COLUMN owner_pid INTEGER;"
                                       "ALTER TABLE flow_runs ADD COLUMN owner_start INTEGER",
                                       NULL, NULL, NULL) != SQLITE_OK)
        return db_error(db, err, "add the owner columns");
    return 0;
}

/* The journal handle's statement for sql (cbx_journal_stmt: parsed by the first run on a handle,
 * kept for the runs after it). The tables are made only when a statement finds them missing: no
 * schema work on a journal that has them. */
static int stmt(sqlite3 *db, cbx_journal *j, const char *sql, sqlite3_stmt **st, cbx_err *err)
{
    if (cbx_journal_stmt(j, sql, st, NULL) == 0)
        return 0;
    int r = make_tables(db, err);
    return r ? r : cbx_journal_stmt(j, sql, st, err);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC); /* stepped before the call returns */
    else
        sqlite3_bind_null(st, i);
}

/* Step a statement that returns no row, then reset it. */
static int step_done(sqlite3 *db, sqlite3_stmt *st, cbx_err *err, const char *what)
{
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_DONE ? 0 : db_error(db, err, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

/* Runs left without executions by a retention cut, dropped before a run starts, once per
 * retention epoch of the journal (cbx_journal_retention_epoch): the look-up at every run start
 * was a tenth of the instructions journaling a no-op run took. Kept per thread, as the thread
 * that writes a journal's queue (its flusher, or a caller writing it first) can change; epochs
 * are unique in the process. */
static _Thread_local uint64_t probed_epoch;

static int prune(sqlite3 *db, cbx_journal *j, const char *run_id, cbx_err *err)
{
    uint64_t epoch = cbx_journal_retention_epoch(j);
    if (epoch != 0 && epoch == probed_epoch)
        return 0;
    sqlite3_stmt *q = NULL;
    int r = stmt(db, j, prune_probe_sql, &q, err);
    if (r)
        return r;
    sqlite3_bind_text(q, 1, run_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    int any = rc == SQLITE_ROW && sqlite3_column_int(q, 0) != 0;
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (rc != SQLITE_ROW)
        return db_error(db, err, "retention");
    for (int k = 0; k < NPRUNE && any; k++) {
        sqlite3_stmt *st = NULL;
        if ((r = stmt(db, j, prune_sql[k], &st, err)) != 0)
            return r;
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        if ((r = step_done(db, st, err, "retention")) != 0)
            return r;
    }
    probed_epoch = epoch;
    return 0;
}

/* ---- bundles: a run's rows, queued --------------------------------------------------------- */

/* The records of a run do not go to SQLite one by one from the run's thread: they are kept as
 * rows in a bundle queued behind the journal's own records (cbx_journal_queue_db), and the thread
 * that writes the queue (the journal's flusher, within its batch window, or a caller that writes
 * it first) writes the bundle's rows, all in one batch. Until then a record joins the run's
 * bundle: a step's end finds its start there and the row is inserted whole, as is a run whose
 * end comes before its start was written (a short run: one statement, not a start and an update
 * after it). Rows in one bundle commit together, so their order within it does not matter;
 * bundles are written in the order they were queued, so a record never commits after a later
 * one. A bundle holds at most BUNDLE_ROWS rows. */
#define BUNDLE_ROWS 64
/* Bytes of the rows' strings a bundle holds itself: a short run's names, inputs and outputs fit,
 * and are freed with it, not one by one (by another thread than the one that allocated them,
 * whose arena lock each such free takes). */
#define BUNDLE_TEXT 512

typedef enum row_kind { ROW_RUN, ROW_STEP, ROW_ITEM } row_kind;

typedef struct row {
    row_kind kind;
    int has_start, has_end;
    char *name;   /* the flow's (run), the step's */
    char *file;   /* a run's start */
    char *inputs; /* a run's start: encoded */
    uint64_t started_ms;
    char *status, *outputs, *error; /* the end; outputs encoded */
    uint32_t attempts;
    uint64_t ended_ms;
    size_t item;
    uint64_t item_hash;
    char *block[2]; /* the strings above (name, file, status, error), one allocation each */
} row;

typedef struct bundle {
    pthread_mutex_t mu; /* taken and the rows, while not taken */
    int taken;          /* being written (or never will be): no row joins it any more */
    atomic_int refs;    /* the run's (cbx__flow_journal) and the queue's */
    cbx_journal *j;
    char run_id[64];
    row *rows; /* inline, then grown up to BUNDLE_ROWS */
    size_t n, cap;
    row inline_rows[2]; /* a short run's: its row and its step's */
    size_t text_used;
    char text[BUNDLE_TEXT]; /* the rows' strings while they fit, then each its own block */
} bundle;

struct cbx__flow_journal {
    cbx_journal *j; /* borrowed */
    bundle *cur;    /* the run's bundle in the queue, or NULL */
};

/* Room for n bytes in b's own text, or NULL (the caller allocates). */
static char *bundle_room(bundle *b, size_t n)
{
    if (n > sizeof b->text - b->text_used)
        return NULL;
    char *p = b->text + b->text_used;
    b->text_used += n;
    return p;
}

static void bundle_free_text(const bundle *b, char *p)
{
    if (!(p >= b->text && p < b->text + sizeof b->text))
        free(p);
}

static void row_clear(const bundle *b, row *r)
{
    bundle_free_text(b, r->block[0]);
    bundle_free_text(b, r->block[1]);
    bundle_free_text(b, r->inputs);
    bundle_free_text(b, r->outputs);
}

static void bundle_unref(bundle *b)
{
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    for (size_t i = 0; i < b->n; i++)
        row_clear(b, &b->rows[i]);
    if (b->rows != b->inline_rows)
        free(b->rows);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* The queue's free_ud: after the bundle was written, or instead (then its rows are lost, which
 * the journal counts). */
static void bundle_done(void *ud)
{
    bundle *b = ud;
    pthread_mutex_lock(&b->mu);
    b->taken = 1;
    pthread_mutex_unlock(&b->mu);
    bundle_unref(b);
}

static int bind_run(sqlite3 *db, sqlite3_stmt *st, const char *run_id, const row *r, cbx_err *err);

static int write_run(sqlite3 *db, cbx_journal *j, const char *run_id, const row *r, cbx_err *err)
{
    sqlite3_stmt *st = NULL;
    int e;
    /* retention, before a run starts */
    if (r->has_start && (e = prune(db, j, run_id, err)) != 0)
        return e;
    const char *sql = !r->has_start ? sql_run_end
                      : r->has_end  ? sql_run_whole_new
                                    : sql_run_start_new;
    for (;;) {
        if ((e = stmt(db, j, sql, &st, err)) != 0)
            return e;
        if ((e = bind_run(db, st, run_id, r, err)) != 0 || !r->has_start || sqlite3_changes(db))
            return e;
        if (sql != sql_run_start_new && sql != sql_run_whole_new)
            return 0;
        /* the run was journaled already (a resume): close what its dead process left, then
         * update its row */
        if ((e = close_abandoned(db, j, run_id, r->started_ms, err)) != 0)
            return e;
        sql = r->has_end ? sql_run_whole : sql_run_start;
    }
}

static int bind_run(sqlite3 *db, sqlite3_stmt *st, const char *run_id, const row *r, cbx_err *err)
{
    bind_text(st, 1, run_id);
    if (!r->has_start) {
        bind_text(st, 2, r->status);
        bind_text(st, 3, r->outputs);
        bind_text(st, 4, r->error);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)r->ended_ms);
        return step_done(db, st, err, "run end");
    }
    bind_text(st, 2, r->name);
    bind_text(st, 3, r->file);
    bind_text(st, 4, r->inputs);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)r->started_ms);
    if (r->has_end) {
        bind_text(st, 6, r->status);
        bind_text(st, 7, r->outputs);
        bind_text(st, 8, r->error);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)r->ended_ms);
    }
    return step_done(db, st, err, r->has_end ? "run" : "run start");
}

static int write_step(sqlite3 *db, cbx_journal *j, const char *run_id, const row *r, cbx_err *err)
{
    sqlite3_stmt *st = NULL;
    const char *sql = r->kind == ROW_ITEM ? sql_item_end
                      : !r->has_end       ? sql_step_start
                      : r->has_start      ? sql_step_whole
                                          : sql_step_end;
    int e = stmt(db, j, sql, &st, err);
    if (e)
        return e;
    bind_text(st, 1, run_id);
    bind_text(st, 2, r->name);
    if (r->kind == ROW_ITEM) {
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r->item);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)r->item_hash);
    } else if (r->has_start) {
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r->started_ms);
    }
    if (r->has_end) {
        bind_text(st, 4, r->status);
        bind_text(st, 5, r->outputs);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)r->attempts);
        bind_text(st, 7, r->error);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)r->ended_ms);
    }
    return step_done(db, st, err,
                     r->kind == ROW_ITEM ? "item end"
                     : !r->has_end       ? "step start"
                                         : "step end");
}

/* The queued write: every row of the bundle, in this batch. A row that fails is undone alone and
 * the others are written; the first failure is returned (the journal counts it as lost). */
static int bundle_write(sqlite3 *db, void *ud, cbx_err *err)
{
    bundle *b = ud;
    pthread_mutex_lock(&b->mu);
    b->taken = 1;
    pthread_mutex_unlock(&b->mu);
    int first = 0;
    for (size_t i = 0; i < b->n; i++) {
        const row *r = &b->rows[i];
        cbx_err e;
        cbx_err_clear(&e);
        int rc = r->kind == ROW_RUN ? write_run(db, b->j, b->run_id, r, &e)
                                    : write_step(db, b->j, b->run_id, r, &e);
        if (rc != 0 && !first) {
            first = rc;
            if (err)
                *err = e;
        }
    }
    return first;
}

static row *open_row(bundle *b, row_kind kind, const char *name);

/* The run's bundle that the record r may still join, locked: *to is the row r completes (with
 * merge: the start of its row, in this bundle), else NULL and the bundle has room for r as a new
 * row (grown only then: the end of a short run's step or of the run itself completes a row);
 * *fresh is set when it is a new one, to be queued once the row is in. NULL: out of memory. */
static bundle *bundle_open(cbx__flow_journal *fj, const char *run_id, const row *r, int merge,
                           row **to, int *fresh)
{
    bundle *b = fj->cur;
    *fresh = 0;
    *to = NULL;
    if (b) {
        pthread_mutex_lock(&b->mu);
        if (!b->taken && b->n < BUNDLE_ROWS && strcmp(b->run_id, run_id) == 0) {
            if (merge && (*to = open_row(b, r->kind, r->kind == ROW_RUN ? NULL : r->name)))
                return b;
            if (b->n < b->cap)
                return b;
            size_t cap = b->cap && b->cap * 4 < BUNDLE_ROWS ? b->cap * 4 : BUNDLE_ROWS;
            row *rows = malloc(cap * sizeof *rows);
            if (rows) {
                memcpy(rows, b->rows, b->n * sizeof *rows);
                if (b->rows != b->inline_rows)
                    free(b->rows);
                b->rows = rows;
                b->cap = cap;
                return b;
            }
        }
        pthread_mutex_unlock(&b->mu);
        bundle_unref(b);
        fj->cur = NULL;
    }
    if (strlen(run_id) >= sizeof b->run_id || !(b = calloc(1, sizeof *b)))
        return NULL;
    pthread_mutex_init(&b->mu, NULL);
    atomic_init(&b->refs, 1);
    b->j = fj->j;
    b->rows = b->inline_rows;
    b->cap = sizeof b->inline_rows / sizeof *b->inline_rows;
    memcpy(b->run_id, run_id, strlen(run_id) + 1);
    fj->cur = b;
    *fresh = 1;
    pthread_mutex_lock(&b->mu);
    return b;
}

/* Unlock b after a row joined it; queue it when it is new. */
static int bundle_close(cbx__flow_journal *fj, bundle *b, int fresh, cbx_err *err)
{
    pthread_mutex_unlock(&b->mu);
    if (!fresh)
        return 0;
    atomic_fetch_add(&b->refs, 1); /* the queue's */
    /* freed by a writer's thread, not by the flusher (which all writers wait on) */
    return cbx_journal_queue_db_free_later(fj->j, bundle_write, b, bundle_done, err);
}

/* Copy the strings *s[0..n) into one block, *block (in b's own text when there is room), and
 * point them there (NULL stays NULL). 0 or -ENOMEM (the pointers then NULL). */
static int copy_strs(bundle *b, char **block, char **s[], size_t n)
{
    size_t len[4], total = 0;
    for (size_t i = 0; i < n; i++)
        total += (len[i] = *s[i] ? strlen(*s[i]) + 1 : 0);
    *block = NULL;
    if (!total)
        return 0;
    char *p = bundle_room(b, total);
    if (!p)
        p = malloc(total);
    *block = p;
    for (size_t i = 0; i < n; i++) {
        if (!*s[i])
            continue;
        if (p)
            memcpy(p, *s[i], len[i]);
        *s[i] = p;
        if (p)
            p += len[i];
    }
    return p ? 0 : -ENOMEM;
}

/* An encoded value (allocated by this thread) moved into b's own text when there is room. */
static void move_text(bundle *b, char **text)
{
    if (!*text)
        return;
    size_t n = strlen(*text) + 1;
    char *p = bundle_room(b, n);
    if (!p)
        return;
    memcpy(p, *text, n);
    free(*text);
    *text = p;
}

/* The most recent row of the bundle for a step (or the run, name NULL) with a start and no end. */
static row *open_row(bundle *b, row_kind kind, const char *name)
{
    for (size_t i = b->n; i-- > 0;) {
        row *r = &b->rows[i];
        if (r->kind != kind || (name && (!r->name || strcmp(r->name, name) != 0)))
            continue;
        return r->has_start && !r->has_end ? r : NULL;
    }
    return NULL;
}

static int oom(cbx_err *err)
{
    return cbx_err_set(err, -ENOMEM, "flow journal: out of memory");
}

/* Nothing: cbx_journal_write_db for the number of the batch that the queue was written into. */
static int mark(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)db;
    (void)ud;
    (void)err;
    return 0;
}

/* A record joins the run's bundle as a row: r (its strings the caller's, its JSON encoded and
 * handed over) becomes a new row, or completes the start of the same row (merge). With batch,
 * the queue is written now and *batch gets the number of the batch that holds the record. */
static int put(cbx__flow_journal *fj, const char *run_id, row *r, int merge, uint64_t *batch,
               cbx_err *err)
{
    if (!fj)
        return cbx_err_set(err, CBX_EJOURNAL, "flow journal: not open");
    int fresh;
    row *to;
    bundle *b = bundle_open(fj, run_id, r, merge, &to, &fresh);
    if (!b) {
        free(r->inputs);
        free(r->outputs);
        return oom(err);
    }
    int e = 0;
    /* the record's strings, copied; out of memory, the record is not kept (and said lost) */
    if (copy_strs(b, &r->block[0], (char **[]){&r->name, &r->file, &r->status, &r->error}, 4) < 0) {
        free(r->inputs);
        free(r->outputs);
        e = oom(err);
    } else if (to) {
        move_text(b, &r->outputs);
        to->has_end = 1;
        to->status = r->status;
        to->error = r->error;
        to->outputs = r->outputs;
        to->attempts = r->attempts;
        to->ended_ms = r->ended_ms;
        to->block[1] = r->block[0];
    } else {
        move_text(b, &r->inputs);
        move_text(b, &r->outputs);
        b->rows[b->n++] = *r;
    }
    int q = bundle_close(fj, b, fresh, err);
    if (!e)
        e = q;
    if (!e && batch)
        e = cbx_journal_write_db(fj->j, mark, NULL, batch, err);
    return e;
}

static int encode(cbx__flow_journal *fj, const json_t *v, char **out, cbx_err *err)
{
    *out = NULL;
    /* through the journal's own encoder: secrets masked and the record cap applied as for
     * executions */
    return fj ? cbx_journal_encode(fj->j, v, out, NULL, NULL, err) : 0;
}

int cbx__flow_journal_open(cbx__flow_journal **out, cbx_journal *j, cbx_err *err)
{
    *out = NULL;
    cbx__flow_journal *fj = calloc(1, sizeof *fj);
    if (!fj)
        return oom(err);
    fj->j = j;
    *out = fj;
    return 0;
}

void cbx__flow_journal_close(cbx__flow_journal *fj)
{
    if (!fj)
        return;
    bundle_unref(fj->cur); /* the queue's reference writes it */
    free(fj);
}

int cbx__flow_journal_run_start(cbx__flow_journal *fj, const char *run_id, const char *flow,
                                const char *file, const json_t *inputs, uint64_t started_ms,
                                uint64_t *batch, cbx_err *err)
{
    row r = {.kind = ROW_RUN,
             .has_start = 1,
             .name = (char *)flow,
             .file = (char *)file,
             .started_ms = started_ms};
    int e = encode(fj, inputs, &r.inputs, err);
    return e ? e : put(fj, run_id, &r, 0, batch, err);
}

int cbx__flow_journal_run_end(cbx__flow_journal *fj, const char *run_id, const char *status,
                              const json_t *outputs, const char *error, uint64_t ended_ms,
                              uint64_t *batch, cbx_err *err)
{
    row r = {.kind = ROW_RUN,
             .has_end = 1,
             .status = (char *)status,
             .error = error && error[0] ? (char *)error : NULL,
             .ended_ms = ended_ms};
    int e = encode(fj, outputs, &r.outputs, err);
    return e ? e : put(fj, run_id, &r, 1, batch, err);
}

int cbx__flow_journal_step_start(cbx__flow_journal *fj, const char *run_id, const char *step,
                                 uint64_t started_ms, uint64_t *batch, cbx_err *err)
{
    row r = {.kind = ROW_STEP, .has_start = 1, .name = (char *)step, .started_ms = started_ms};
    return put(fj, run_id, &r, 0, batch, err);
}

int cbx__flow_journal_step_end(cbx__flow_journal *fj, const char *run_id, const char *step,
                               const char *status, const json_t *outputs, uint32_t attempts,
                               const char *error, uint64_t ended_ms, uint64_t *batch, cbx_err *err)
{
    row r = {.kind = ROW_STEP,
             .has_end = 1,
             .name = (char *)step,
             .status = (char *)status,
             .error = error && error[0] ? (char *)error : NULL,
             .attempts = attempts,
             .ended_ms = ended_ms};
    int e = encode(fj, outputs, &r.outputs, err);
    return e ? e : put(fj, run_id, &r, 1, batch, err);
}

int cbx__flow_journal_item_end(cbx__flow_journal *fj, const char *run_id, const char *step,
                               size_t item, uint64_t item_hash, const char *status,
                               const json_t *outputs, uint32_t attempts, const char *error,
                               uint64_t ended_ms, cbx_err *err)
{
    row r = {.kind = ROW_ITEM,
             .has_end = 1,
             .name = (char *)step,
             .status = (char *)status,
             .error = error && error[0] ? (char *)error : NULL,
             .attempts = attempts,
             .ended_ms = ended_ms,
             .item = item,
             .item_hash = item_hash};
    int e = encode(fj, outputs, &r.outputs, err);
    return e ? e : put(fj, run_id, &r, 0, NULL, err);
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
    cbx_journal_row_fn fn;
    void *ud;
    int stopped; /* fn's value, when it stopped the walk */
} list_args;

static int list_runs(sqlite3 *db, void *ud, cbx_err *err)
{
    list_args *a = ud;
    if (!have_tables(db))
        return 0;
    const char *status = has_owner(db) ? RUN_STATUS : "status";
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT run_id, flow, %s AS shown, started_ms, ended_ms, error FROM flow_runs"
             " WHERE (?1 IS NULL OR shown = ?1) AND (?2 IS NULL OR flow = ?2)"
             " AND (?3 IS NULL OR started_ms >= ?3) ORDER BY started_ms DESC LIMIT ?4",
             status);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(db, err, "prepare");
    bind_text(st, 1, a->f.status);
    bind_text(st, 2, a->f.flow);
    if (a->f.since_ms)
        sqlite3_bind_int64(st, 3, (sqlite3_int64)a->f.since_ms);
    sqlite3_bind_int(st, 4, a->f.limit ? (int)a->f.limit : 50);
    int r = 0;
    while (!r && sqlite3_step(st) == SQLITE_ROW) {
        json_t *run =
            json_pack("{s:o, s:o, s:o, s:I, s:I, s:o}", "run_id", column_text(st, 0), "flow",
                      column_text(st, 1), "status", column_text(st, 2), "started_ms",
                      (json_int_t)sqlite3_column_int64(st, 3), "ended_ms",
                      (json_int_t)sqlite3_column_int64(st, 4), "error", column_text(st, 5));
        if (!run) {
            r = cbx_err_set(err, -ENOMEM, "out of memory");
            break;
        }
        if ((r = a->fn(run, a->ud)) != 0)
            a->stopped = r;
        json_decref(run);
    }
    sqlite3_finalize(st);
    return r;
}

int cbx_flow_runs_each(cbx_journal *j, const cbx_flow_runs_filter *f, cbx_journal_row_fn fn,
                       void *ud, cbx_err *err)
{
    if (!j || !fn)
        return cbx_err_set(err, -EINVAL, "cbx_flow_runs_each: no journal or no function");
    list_args a = {.f = f ? *f : (cbx_flow_runs_filter){0}, .fn = fn, .ud = ud};
    int r = cbx_journal_read_db(j, list_runs, &a, err);
    return a.stopped ? a.stopped : r;
}

static int append_run(const json_t *run, void *ud)
{
    return json_array_append((json_t *)ud, (json_t *)(uintptr_t)run) == 0 ? 0 : -ENOMEM;
}

int cbx__flow_journal_list(cbx_journal *j, uint32_t limit, json_t **out, cbx_err *err)
{
    return cbx_flow_runs_query(j, &(cbx_flow_runs_filter){.limit = limit}, out, err);
}

int cbx_flow_runs_query(cbx_journal *j, const cbx_flow_runs_filter *f, json_t **out, cbx_err *err)
{
    *out = NULL;
    json_t *rows = json_array();
    if (!rows)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    int r = cbx_flow_runs_each(j, f, append_run, rows, err);
    if (r == -ENOMEM)
        cbx_err_set(err, -ENOMEM, "out of memory");
    if (r != 0) {
        json_decref(rows);
        return r;
    }
    *out = rows;
    return 0;
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
