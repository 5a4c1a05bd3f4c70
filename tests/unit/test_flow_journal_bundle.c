/* A run's records are queued as rows of a bundle (src/flow/flow_journal.c) and written by the
 * thread that writes the journal's queue: what ends up in the tables is what the records said,
 * one by one, whether a step's end found its start still queued (one row inserted whole) or not;
 * a resumed run's row is updated, not duplicated; a bundle full of foreach items goes on in the
 * next; and a record the runner waits for gets the number of a batch that commits it. The
 * journal is read the way cbx show reads it, and also from a second connection, which sees only
 * what has committed. */
#include "cbx/journal.h"
#include "flow/flow_journal.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64], path[128];

static cbx_journal *open_file(void)
{
    snprintf(dir, sizeof dir, "/tmp/cbx-flow-bundle-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/j.db", dir);
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    return j;
}

static void cleanup(cbx_journal *j)
{
    cbx_journal_close(j);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static json_t *get(cbx_journal *j, const char *run_id)
{
    json_t *run = NULL;
    cbx_err err;
    cr_assert_eq(cbx__flow_journal_get(j, run_id, &run, &err), 0, "%s", err.msg);
    return run;
}

/* The status of a run (step NULL) or step as another connection sees it: committed rows only;
 * "" when there is none. */
static const char *committed(const char *run_id, const char *step, char *buf, size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    buf[0] = '\0';
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db,
                           step ? "SELECT status FROM flow_steps WHERE run_id = ?1 AND step = ?2"
                                : "SELECT status FROM flow_runs WHERE run_id = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        /* no table committed yet */
        cr_assert(strstr(sqlite3_errmsg(db), "no such table"), "%s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return buf;
    }
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    if (step)
        sqlite3_bind_text(st, 2, step, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return buf;
}

static json_int_t num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "(null)";
}

Test(flow_journal_bundle, a_short_run_is_written_whole_as_its_records_said)
{
    cbx_journal *j = open_file();
    cbx__flow_journal *fj = NULL;
    cbx_err err;
    cr_assert_eq(cbx__flow_journal_open(&fj, j, &err), 0, "%s", err.msg);
    json_t *in = json_pack("{s:i}", "n", 7), *out = json_pack("{s:s}", "x", "y");
    cr_assert_eq(cbx__flow_journal_run_start(fj, "r1", "f", "f.yaml", in, 1000, NULL, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_step_start(fj, "r1", "a", 1001, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_step_start(fj, "r1", "b", 1002, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(
        cbx__flow_journal_step_end(fj, "r1", "a", "success", out, 2, NULL, 1003, NULL, &err), 0,
        "%s", err.msg);
    cr_assert_eq(
        cbx__flow_journal_step_end(fj, "r1", "b", "failed", NULL, 1, "boom", 1004, NULL, &err), 0,
        "%s", err.msg);
    cr_assert_eq(
        cbx__flow_journal_run_end(fj, "r1", "failed", NULL, "step b failed", 1005, NULL, &err), 0,
        "%s", err.msg);
    cbx__flow_journal_close(fj); /* the bundle is the queue's now */
    char buf[32];
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_str_eq(committed("r1", NULL, buf, sizeof buf), "failed");

    json_t *run = get(j, "r1");
    cr_assert_str_eq(str(run, "status"), "failed");
    cr_assert_str_eq(str(run, "error"), "step b failed");
    cr_assert_str_eq(str(run, "flow"), "f");
    cr_assert_str_eq(str(run, "file"), "f.yaml");
    cr_assert_eq(num(json_object_get(run, "inputs"), "n"), 7);
    cr_assert_eq(num(run, "started_ms"), 1000);
    cr_assert_eq(num(run, "ended_ms"), 1005);
    json_t *a = json_object_get(json_object_get(run, "steps"), "a");
    json_t *b = json_object_get(json_object_get(run, "steps"), "b");
    cr_assert_str_eq(str(a, "status"), "success");
    cr_assert_str_eq(str(json_object_get(a, "outputs"), "x"), "y");
    cr_assert_eq(num(a, "attempts"), 2);
    cr_assert_eq(num(a, "started_ms"), 1001);
    cr_assert_eq(num(a, "ended_ms"), 1003);
    cr_assert(json_is_null(json_object_get(a, "error")));
    cr_assert_str_eq(str(b, "status"), "failed");
    cr_assert_str_eq(str(b, "error"), "boom");
    cr_assert_eq(num(b, "started_ms"), 1002);
    cr_assert_eq(num(b, "ended_ms"), 1004);
    json_decref(run);
    json_decref(in);
    json_decref(out);
    cleanup(j);
}

/* A start written (committed) before its end came: the end updates the row it left. */
/* A run and its step started and committed, then ended: the ends update the rows the starts
 * left, and the journal shows the run as its records said. */
static void end_after_start_written(cbx_journal *j, const char *id)
{
    cbx__flow_journal *fj = NULL;
    cbx_err err;
    cr_assert_eq(cbx__flow_journal_open(&fj, j, &err), 0, "%s", err.msg);
    json_t *in = json_pack("{s:i}", "n", 3), *out = json_pack("{s:i}", "k", 1);
    cr_assert_eq(cbx__flow_journal_run_start(fj, id, "f", "f.yaml", in, 10, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx__flow_journal_step_start(fj, id, "a", 11, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    char buf[32];
    cr_assert_str_eq(committed(id, NULL, buf, sizeof buf), "running");
    cr_assert_str_eq(committed(id, "a", buf, sizeof buf), "running");
    cr_assert_eq(cbx__flow_journal_step_end(fj, id, "a", "success", out, 1, NULL, 12, NULL, &err),
                 0, "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_run_end(fj, id, "success", out, NULL, 13, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    json_t *run = get(j, id);
    json_t *a = json_object_get(json_object_get(run, "steps"), "a");
    cr_assert_str_eq(str(run, "status"), "success");
    cr_assert_eq(num(run, "started_ms"), 10);
    cr_assert_eq(num(run, "ended_ms"), 13);
    cr_assert_eq(num(json_object_get(run, "inputs"), "n"), 3);
    cr_assert_eq(num(json_object_get(run, "outputs"), "k"), 1);
    cr_assert_str_eq(str(a, "status"), "success");
    cr_assert_eq(num(a, "started_ms"), 11);
    cr_assert_eq(num(a, "ended_ms"), 12);
    json_decref(run);
    json_decref(in);
    json_decref(out);
    cbx__flow_journal_close(fj);
}

Test(flow_journal_bundle, an_end_after_its_start_was_written_updates_the_row)
{
    cbx_journal *j = open_file();
    end_after_start_written(j, "r2");
    cleanup(j);
}

/* A resumed run (its id journaled already) keeps its row: started again, then ended again. */
Test(flow_journal_bundle, a_resumed_run_updates_its_row)
{
    cbx_journal *j = open_file();
    cbx__flow_journal *fj = NULL;
    cbx_err err;
    cr_assert_eq(cbx__flow_journal_open(&fj, j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_run_start(fj, "r3", "f", NULL, NULL, 100, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx__flow_journal_run_end(fj, "r3", "failed", NULL, "first", 101, NULL, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cbx__flow_journal_close(fj);
    cr_assert_eq(cbx__flow_journal_open(&fj, j, &err), 0, "%s", err.msg);
    /* a start alone, committed: running again, its end and error gone */
    cr_assert_eq(cbx__flow_journal_run_start(fj, "r3", "f", NULL, NULL, 200, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    json_t *run = get(j, "r3");
    cr_assert_str_eq(str(run, "status"), "running");
    cr_assert(json_is_null(json_object_get(run, "error")));
    cr_assert_eq(num(run, "ended_ms"), 0);
    cr_assert_eq(num(run, "started_ms"), 100, "the first start is kept");
    json_decref(run);
    /* a start and an end in one bundle */
    cr_assert_eq(cbx__flow_journal_run_start(fj, "r3", "f", NULL, NULL, 300, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx__flow_journal_run_end(fj, "r3", "success", NULL, NULL, 301, NULL, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    run = get(j, "r3");
    cr_assert_str_eq(str(run, "status"), "success");
    cr_assert(json_is_null(json_object_get(run, "error")));
    cr_assert_eq(num(run, "ended_ms"), 301);
    cr_assert_eq(num(run, "started_ms"), 100);
    json_decref(run);
    cbx__flow_journal_close(fj);
    cleanup(j);
}

/* More rows than a bundle holds (foreach items), and a step that runs twice in one bundle (the
 * last record wins, as it did record by record). */
Test(flow_journal_bundle, many_rows_and_a_step_recorded_twice)
{
    cbx_journal *j = open_file();
    cbx__flow_journal *fj = NULL;
    cbx_err err;
    cr_assert_eq(cbx__flow_journal_open(&fj, j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_run_start(fj, "r4", "f", NULL, NULL, 1, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx__flow_journal_step_start(fj, "r4", "each", 2, NULL, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < 300; i++) {
        json_t *o = json_pack("{s:I}", "i", (json_int_t)i);
        cr_assert_eq(cbx__flow_journal_item_end(fj, "r4", "each", i, 1000 + i, "success", o, 1,
                                                NULL, 3 + i, &err),
                     0, "%s", err.msg);
        json_decref(o);
    }
    cr_assert_eq(
        cbx__flow_journal_step_end(fj, "r4", "each", "success", NULL, 1, NULL, 400, NULL, &err), 0,
        "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_step_start(fj, "r4", "twice", 401, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(
        cbx__flow_journal_step_end(fj, "r4", "twice", "failed", NULL, 1, "no", 402, NULL, &err), 0,
        "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_step_start(fj, "r4", "twice", 403, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(
        cbx__flow_journal_step_end(fj, "r4", "twice", "success", NULL, 2, NULL, 404, NULL, &err), 0,
        "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    json_t *run = get(j, "r4");
    json_t *steps = json_object_get(run, "steps");
    json_t *each = json_object_get(steps, "each");
    cr_assert_eq(json_object_size(json_object_get(each, "items")), 300);
    cr_assert_eq(
        num(json_object_get(json_object_get(json_object_get(each, "items"), "299"), "outputs"),
            "i"),
        299);
    cr_assert_eq(num(json_object_get(json_object_get(each, "items"), "17"), "hash"), 1017);
    cr_assert_str_eq(str(each, "status"), "success");
    cr_assert_eq(num(each, "started_ms"), 2);
    cr_assert_eq(num(each, "ended_ms"), 400);
    json_t *twice = json_object_get(steps, "twice");
    cr_assert_str_eq(str(twice, "status"), "success");
    cr_assert(json_is_null(json_object_get(twice, "error")));
    cr_assert_eq(num(twice, "attempts"), 2);
    cr_assert_eq(num(twice, "started_ms"), 403);
    cr_assert_eq(num(twice, "ended_ms"), 404);
    json_decref(run);
    cbx__flow_journal_close(fj);
    cleanup(j);
}

/* A step end the runner waits for: the queue is written at once, and the batch number it gets
 * says when the end (and every record of the run before it) has committed. */
Test(flow_journal_bundle, a_held_end_gets_the_batch_that_commits_it)
{
    cbx_journal *j = open_file();
    cbx__flow_journal *fj = NULL;
    cbx_err err;
    cr_assert_eq(cbx__flow_journal_open(&fj, j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_run_start(fj, "r5", "f", NULL, NULL, 1, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx__flow_journal_step_start(fj, "r5", "a", 2, NULL, &err), 0, "%s", err.msg);
    uint64_t batch = 0;
    cr_assert_eq(
        cbx__flow_journal_step_end(fj, "r5", "a", "success", NULL, 1, NULL, 3, &batch, &err), 0,
        "%s", err.msg);
    cr_assert_gt(batch, 0);
    int s = cbx_journal_batch_state(j, batch, &err);
    char buf[32];
    if (s == 0) { /* not committed yet (the journal commits within its window) */
        cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
        s = cbx_journal_batch_state(j, batch, &err);
    }
    cr_assert_eq(s, 1, "%s", err.msg);
    cr_assert_str_eq(committed("r5", NULL, buf, sizeof buf), "running");
    cr_assert_str_eq(committed("r5", "a", buf, sizeof buf), "success");
    cbx__flow_journal_close(fj);
    cleanup(j);
}

/* Whether the file's flow_runs has rowids (the layout journals made before the flow tables were
 * WITHOUT ROWID). */
static int runs_have_rowid(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    int ok = sqlite3_prepare_v2(db, "SELECT rowid FROM flow_runs", -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

Test(flow_journal_bundle, new_flow_tables_are_without_rowid)
{
    cbx_journal *j = open_file();
    end_after_start_written(j, "old1");
    cr_assert_not(runs_have_rowid());
    cleanup(j);
}

/* A journal whose flow tables were made with rowids is written and read as before. */
Test(flow_journal_bundle, flow_tables_made_with_rowids_are_written_and_read_alike)
{
    cbx_journal *j = open_file(); /* a journal without flow tables yet */
    cbx_journal_close(j);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_exec(db,
                     "CREATE TABLE flow_runs (run_id TEXT PRIMARY KEY, flow TEXT, file TEXT,"
                     " inputs TEXT, status TEXT, error TEXT, started_ms INTEGER, ended_ms INTEGER,"
                     " outputs TEXT, owner_pid INTEGER, owner_start INTEGER);"
                     "CREATE INDEX flow_runs_started ON flow_runs(started_ms);"
                     "CREATE TABLE flow_steps (run_id TEXT, step TEXT, status TEXT, outputs TEXT,"
                     " attempts INTEGER, error TEXT, started_ms INTEGER, ended_ms INTEGER,"
                     " PRIMARY KEY (run_id, step));"
                     "CREATE TABLE flow_items (run_id TEXT, step TEXT, item INTEGER, status TEXT,"
                     " outputs TEXT, attempts INTEGER, error TEXT, ended_ms INTEGER,"
                     " item_hash INTEGER, PRIMARY KEY (run_id, step, item));",
                     NULL, NULL, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    end_after_start_written(j, "old1");
    cr_assert(runs_have_rowid());
    cleanup(j);
}
