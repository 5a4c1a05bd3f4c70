/* The journal: writes, history, get, clear, retention, files, several writers, state dir. */
#include "cbx/journal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static cbx_journal *open_at(const char *path, uint64_t max_exec, uint64_t max_age_ms)
{
    cbx_journal *j = NULL;
    cbx_err err;
    cbx_journal_opts o = {.path = path, .max_executions = max_exec, .max_age_ms = max_age_ms};
    int r = cbx_journal_open(&j, &o, &err);
    cr_assert_eq(r, 0, "open %s: %s", path, err.msg);
    return j;
}

static cbx_journal *open_mem(void)
{
    return open_at(":memory:", 0, 0);
}

typedef struct ex_spec {
    const char *id, *executor, *status, *tag, *breaker;
    uint64_t submitted_ms;
    uint64_t duration_ms;
    uint32_t attempts;
} ex_spec;

/* start, its attempts (each failing but the last, unless the status says otherwise), end */
static void write_ex(cbx_journal *j, const ex_spec *s)
{
    cbx_err err;
    json_t *params = json_pack("{s:s}", "who", s->id);
    cbx_journal_execution e = {.id = s->id,
                               .executor = s->executor,
                               .params = params,
                               .tag = s->tag,
                               .breaker = s->breaker,
                               .policy = "p",
                               .submitted_ms = s->submitted_ms};
    cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
    for (uint32_t n = 1; n <= s->attempts; n++) {
        int last = n == s->attempts;
        int ok = last && strcmp(s->status, "success") == 0;
        json_t *md = json_pack("{s:i}", "n", (int)n);
        cbx_journal_attempt_info a = {.execution_id = s->id,
                                      .number = n,
                                      .outcome = ok ? "success" : "error",
                                      .started_ms = s->submitted_ms + n,
                                      .duration_ns = s->duration_ms * 1000000ull,
                                      .error = ok ? NULL : "exit 1",
                                      .metadata = md,
                                      .breaker_decision = s->breaker ? "admitted" : NULL};
        cr_assert_eq(cbx_journal_attempt(j, &a, &err), 0, "%s", err.msg);
        json_decref(md);
    }
    json_t *outputs = json_pack("{s:i}", "code", 0);
    cbx_journal_end end = {.execution_id = s->id,
                           .status = s->status,
                           .rc = strcmp(s->status, "success") == 0 ? 0 : CBX_EFAILED,
                           .attempts = s->attempts,
                           .outputs = outputs,
                           .error = strcmp(s->status, "success") == 0 ? NULL : "it failed",
                           .ended_ms = s->submitted_ms + s->duration_ms,
                           .duration_ns = s->duration_ms * 1000000ull};
    cr_assert_eq(cbx_journal_execution_end(j, &end, &err), 0, "%s", err.msg);
    json_decref(outputs);
    json_decref(params);
}

static json_t *history(cbx_journal *j, cbx_history_filter f)
{
    json_t *rows = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_history(j, &f, &rows, &err), 0, "%s", err.msg);
    cr_assert(json_is_array(rows));
    return rows;
}

static const char *row_id(json_t *rows, size_t i)
{
    return json_string_value(json_object_get(json_array_get(rows, i), "id"));
}

/* "a,b,c": the ids of the rows in order */
static void assert_ids(json_t *rows, const char *want)
{
    char got[512] = "";
    for (size_t i = 0; i < json_array_size(rows); i++) {
        if (i)
            strcat(got, ",");
        strcat(got, row_id(rows, i));
    }
    cr_assert_str_eq(got, want);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cbx-journal-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tree(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* A standard data set: five executions at t = 1000..5000 */
static void write_five(cbx_journal *j)
{
    ex_spec s[] = {
        {"e1", "command", "success", "flow:a", NULL, 1000, 10, 1},
        {"e2", "http", "failed", "flow:a", "api", 2000, 20, 3},
        {"e3", "command", "timeout", NULL, NULL, 3000, 30, 2},
        {"e4", "http", "success", "flow:b", "api", 4000, 40, 2},
        {"e5", "command", "success", NULL, "disk", 5000, 50, 1},
    };
    for (size_t i = 0; i < 5; i++)
        write_ex(j, &s[i]);
}

/* ---- history ----------------------------------------------------------------------------- */

Test(journal_history, newest_first_with_every_filter)
{
    cbx_journal *j = open_mem();
    write_five(j);
    json_t *r;

    r = history(j, (cbx_history_filter){0});
    assert_ids(r, "e5,e4,e3,e2,e1");
    json_decref(r);

    r = history(j, (cbx_history_filter){.executor = "command"});
    assert_ids(r, "e5,e3,e1");
    json_decref(r);

    r = history(j, (cbx_history_filter){.status = "success"});
    assert_ids(r, "e5,e4,e1");
    json_decref(r);

    r = history(j, (cbx_history_filter){.executor = "http", .status = "success"});
    assert_ids(r, "e4");
    json_decref(r);

    r = history(j, (cbx_history_filter){.breaker = "api"});
    assert_ids(r, "e4,e2");
    json_decref(r);

    r = history(j, (cbx_history_filter){.tag = "flow:a"});
    assert_ids(r, "e2,e1");
    json_decref(r);

    /* since inclusive, until exclusive */
    r = history(j, (cbx_history_filter){.since_ms = 2000, .until_ms = 4000});
    assert_ids(r, "e3,e2");
    json_decref(r);

    r = history(j, (cbx_history_filter){.limit = 2});
    assert_ids(r, "e5,e4");
    json_decref(r);

    r = history(j, (cbx_history_filter){.executor = "nope"});
    cr_assert_eq(json_array_size(r), 0);
    json_decref(r);

    json_t *none = NULL;
    cr_assert_eq(cbx_journal_history(j, NULL, &none, NULL), 0);
    cr_assert_eq(json_array_size(none), 5);
    json_decref(none);
    cbx_journal_close(j);
}

Test(journal_history, row_has_every_documented_field)
{
    cbx_journal *j = open_mem();
    write_five(j);
    json_t *r = history(j, (cbx_history_filter){.executor = "http", .status = "failed"});
    cr_assert_eq(json_array_size(r), 1);
    json_t *row = json_array_get(r, 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "id")), "e2");
    cr_assert_str_eq(json_string_value(json_object_get(row, "executor")), "http");
    cr_assert_str_eq(json_string_value(json_object_get(row, "status")), "failed");
    cr_assert_eq(json_integer_value(json_object_get(row, "rc")), CBX_EFAILED);
    cr_assert_str_eq(json_string_value(json_object_get(row, "error")), "it failed");
    cr_assert(json_is_false(json_object_get(row, "fallback_used")));
    cr_assert_eq(json_integer_value(json_object_get(row, "attempts")), 3);
    cr_assert_eq(json_integer_value(json_object_get(row, "submitted_ms")), 2000);
    cr_assert_eq(json_integer_value(json_object_get(row, "ended_ms")), 2020);
    cr_assert_float_eq(json_real_value(json_object_get(row, "duration_ms")), 20.0, 1e-9);
    cr_assert_str_eq(json_string_value(json_object_get(row, "tag")), "flow:a");
    cr_assert_str_eq(json_string_value(json_object_get(row, "breaker")), "api");
    cr_assert_str_eq(json_string_value(json_object_get(row, "policy")), "p");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(row, "params"), "who")),
                     "e2");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(row, "outputs"), "code")), 0);
    /* a row without tag or breaker says null, not nothing */
    json_decref(r);
    r = history(j, (cbx_history_filter){.status = "timeout"});
    cr_assert(json_is_null(json_object_get(json_array_get(r, 0), "tag")));
    cr_assert(json_is_null(json_object_get(json_array_get(r, 0), "breaker")));
    json_decref(r);
    cbx_journal_close(j);
}

Test(journal_history, running_execution_is_listed_as_running)
{
    cbx_journal *j = open_mem();
    cbx_journal_execution e = {.id = "r1", .executor = "command", .submitted_ms = 77};
    cr_assert_eq(cbx_journal_execution_start(j, &e, NULL), 0);
    json_t *r = history(j, (cbx_history_filter){0});
    json_t *row = json_array_get(r, 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "status")), "running");
    cr_assert(json_is_null(json_object_get(row, "ended_ms")));
    cr_assert(json_is_null(json_object_get(row, "params")));
    json_decref(r);
    cbx_journal_close(j);
}

/* ---- get --------------------------------------------------------------------------------- */

Test(journal_get, execution_with_its_attempts_in_order)
{
    cbx_journal *j = open_mem();
    write_five(j);
    json_t *row = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_get(j, "e2", &row, &err), 0, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(row, "status")), "failed");
    cr_assert_eq(json_integer_value(json_object_get(row, "attempt_count")), 3);
    json_t *atts = json_object_get(row, "attempts");
    cr_assert(json_is_array(atts));
    cr_assert_eq(json_array_size(atts), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *a = json_array_get(atts, i);
        cr_assert_eq(json_integer_value(json_object_get(a, "number")), (json_int_t)i + 1);
        cr_assert_str_eq(json_string_value(json_object_get(a, "outcome")), "error");
        cr_assert_eq(json_integer_value(json_object_get(a, "started_ms")), 2000 + (int)i + 1);
        cr_assert_float_eq(json_real_value(json_object_get(a, "duration_ms")), 20.0, 1e-9);
        cr_assert_str_eq(json_string_value(json_object_get(a, "error")), "exit 1");
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(a, "metadata"), "n")),
                     (json_int_t)i + 1);
        cr_assert_str_eq(json_string_value(json_object_get(a, "breaker_decision")), "admitted");
    }
    json_decref(row);

    cr_assert_eq(cbx_journal_get(j, "e5", &row, NULL), 0);
    json_t *a = json_array_get(json_object_get(row, "attempts"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(a, "outcome")), "success");
    cr_assert(json_is_null(json_object_get(a, "error")));
    cr_assert_str_eq(json_string_value(json_object_get(a, "breaker_decision")), "admitted");
    json_decref(row);
    cbx_journal_close(j);
}

Test(journal_get, unknown_id_is_enoent)
{
    cbx_journal *j = open_mem();
    write_five(j);
    cbx_err err;
    json_t *row = (json_t *)&err; /* any non-NULL value: it must be cleared */
    cr_assert_eq(cbx_journal_get(j, "nope", &row, &err), -ENOENT);
    cr_assert_null(row);
    cr_assert(strstr(err.msg, "nope") != NULL, "%s", err.msg);
    cbx_journal_close(j);
}

Test(journal_get, attempt_written_twice_keeps_the_last)
{
    cbx_journal *j = open_mem();
    cbx_journal_execution e = {.id = "x", .executor = "command", .submitted_ms = 1};
    cr_assert_eq(cbx_journal_execution_start(j, &e, NULL), 0);
    cbx_journal_attempt_info a = {.execution_id = "x", .number = 1, .outcome = "timeout"};
    cr_assert_eq(cbx_journal_attempt(j, &a, NULL), 0);
    a.outcome = "success";
    cr_assert_eq(cbx_journal_attempt(j, &a, NULL), 0);
    json_t *row = NULL;
    cr_assert_eq(cbx_journal_get(j, "x", &row, NULL), 0);
    json_t *atts = json_object_get(row, "attempts");
    cr_assert_eq(json_array_size(atts), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(atts, 0), "outcome")),
                     "success");
    json_decref(row);
    cbx_journal_close(j);
}

/* ---- refusals ---------------------------------------------------------------------------- */

Test(journal_write, end_without_start_records_the_refusal)
{
    cbx_journal *j = open_mem();
    cbx_journal_end end = {.execution_id = "rej",
                           .status = "rejected",
                           .rc = CBX_EUNKNOWN_TYPE,
                           .error = "unknown executor type \"comand\"",
                           .ended_ms = 9000,
                           .duration_ns = 0};
    cbx_err err;
    cr_assert_eq(cbx_journal_execution_end(j, &end, &err), 0, "%s", err.msg);
    json_t *row = NULL;
    cr_assert_eq(cbx_journal_get(j, "rej", &row, NULL), 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "status")), "rejected");
    cr_assert_eq(json_integer_value(json_object_get(row, "rc")), CBX_EUNKNOWN_TYPE);
    cr_assert_str_eq(json_string_value(json_object_get(row, "error")),
                     "unknown executor type \"comand\"");
    cr_assert_eq(json_integer_value(json_object_get(row, "submitted_ms")), 9000);
    cr_assert_eq(json_integer_value(json_object_get(row, "attempt_count")), 0);
    cr_assert_eq(json_array_size(json_object_get(row, "attempts")), 0);
    cr_assert(json_is_null(json_object_get(row, "executor")));
    json_decref(row);
    json_t *r = history(j, (cbx_history_filter){.status = "rejected"});
    assert_ids(r, "rej");
    json_decref(r);
    cbx_journal_close(j);
}

Test(journal_write, refusal_after_start_keeps_executor_and_params)
{
    cbx_journal *j = open_mem();
    json_t *p = json_pack("{s:s}", "url", "http://x");
    cbx_journal_execution e = {.id = "r", .executor = "http", .params = p, .submitted_ms = 500};
    cr_assert_eq(cbx_journal_execution_start(j, &e, NULL), 0);
    cbx_journal_end end = {.execution_id = "r",
                           .status = "rejected",
                           .rc = CBX_ECIRCUIT_OPEN,
                           .error = "breaker api is open",
                           .ended_ms = 501};
    cr_assert_eq(cbx_journal_execution_end(j, &end, NULL), 0);
    json_t *r = history(j, (cbx_history_filter){.executor = "http"});
    json_t *row = json_array_get(r, 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "status")), "rejected");
    cr_assert_eq(json_integer_value(json_object_get(row, "submitted_ms")), 500);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(row, "params"), "url")),
                     "http://x");
    json_decref(r);
    json_decref(p);
    cbx_journal_close(j);
}

Test(journal_write, missing_ids_are_refused)
{
    cbx_journal *j = open_mem();
    cbx_err err;
    cbx_journal_execution e = {.executor = "command"};
    cr_assert_eq(cbx_journal_execution_start(j, &e, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, "id") != NULL);
    cbx_journal_end end = {.execution_id = "a"};
    cr_assert_eq(cbx_journal_execution_end(j, &end, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, "status") != NULL, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(NULL, NULL), CBX_EJOURNAL);
    cbx_journal_close(j);
    cbx_journal_close(NULL);
}

/* ---- clear ------------------------------------------------------------------------------- */

Test(journal_clear, with_a_filter_then_everything)
{
    cbx_journal *j = open_mem();
    write_five(j);
    uint64_t n = 99;
    cbx_err err;
    cbx_history_filter f = {.executor = "http"};
    cr_assert_eq(cbx_journal_clear(j, &f, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    json_t *r = history(j, (cbx_history_filter){0});
    assert_ids(r, "e5,e3,e1");
    json_decref(r);
    json_t *row = NULL;
    cr_assert_eq(cbx_journal_get(j, "e2", &row, NULL), -ENOENT);

    /* the newest one command execution */
    f = (cbx_history_filter){.executor = "command", .limit = 1};
    cr_assert_eq(cbx_journal_clear(j, &f, &n, NULL), 0);
    cr_assert_eq(n, 1);
    r = history(j, (cbx_history_filter){0});
    assert_ids(r, "e3,e1");
    json_decref(r);

    cr_assert_eq(cbx_journal_clear(j, NULL, &n, NULL), 0);
    cr_assert_eq(n, 2);
    r = history(j, (cbx_history_filter){0});
    cr_assert_eq(json_array_size(r), 0);
    json_decref(r);
    cr_assert_eq(cbx_journal_clear(j, NULL, NULL, NULL), 0);
    cbx_journal_close(j);
}

Test(journal_clear, removes_the_attempts_too)
{
    make_tmpdir();
    char path[300];
    tmp_path(path, sizeof path, "j.db");
    cbx_journal *j = open_at(path, 0, 0);
    write_five(j);
    cr_assert_eq(cbx_journal_clear(j, &(cbx_history_filter){.status = "failed"}, NULL, NULL), 0);
    cbx_journal_close(j);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM attempts WHERE execution_id = 'e2'",
                                    -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM attempts", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 1 + 2 + 2 + 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_tree(tmpdir);
}

typedef struct seen {
    char ids[8][16];
    int n, stop_at, brief_ok;
} seen;

static int see_row(const json_t *row, void *ud)
{
    seen *s = ud;
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", json_string_value(json_object_get(row, "id")));
    if (json_object_get(row, "params") || json_object_get(row, "outputs"))
        s->brief_ok = 0;
    return ++s->n == s->stop_at ? 42 : 0;
}

/* The rows one at a time: newest first, brief ones without params and outputs, and a function
 * that stops the walk gets its value back. */
Test(journal_history, each_row_in_turn_and_a_stop)
{
    cbx_journal *j = open_mem();
    write_five(j);
    seen s = {.stop_at = 0, .brief_ok = 1};
    cr_assert_eq(cbx_journal_history_each(j, &(cbx_history_filter){.brief = 1}, see_row, &s, NULL),
                 0);
    cr_assert_eq(s.n, 5);
    cr_assert_str_eq(s.ids[0], "e5");
    cr_assert_str_eq(s.ids[4], "e1");
    cr_assert(s.brief_ok, "a brief row had params or outputs");
    s = (seen){.stop_at = 2, .brief_ok = 1};
    cr_assert_eq(cbx_journal_history_each(j, NULL, see_row, &s, NULL), 42);
    cr_assert_eq(s.n, 2);
    cr_assert_not(s.brief_ok, "a full row lacks params or outputs");
    cr_assert_eq(cbx_journal_history_each(j, NULL, NULL, NULL, NULL), -EINVAL);
    json_t *rows = history(j, (cbx_history_filter){0});
    cr_assert_not_null(json_object_get(json_array_get(rows, 0), "params"));
    json_decref(rows);
    cbx_journal_close(j);
}

/* ---- retention --------------------------------------------------------------------------- */

Test(journal_retention, keeps_the_newest_n)
{
    cbx_journal *j = open_at(":memory:", 10, 0);
    char id[16];
    /* submitted out of order: i * 7 mod 25 gives every time once */
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof id, "t%02d", (i * 7) % 25);
        write_ex(j, &(ex_spec){id, "command", "success", NULL, NULL,
                               1000 + (uint64_t)((i * 7) % 25), 1, 1});
    }
    cr_assert_eq(cbx_journal_prune(j, NULL), 0);
    json_t *r = history(j, (cbx_history_filter){.limit = 100});
    assert_ids(r, "t24,t23,t22,t21,t20,t19,t18,t17,t16,t15");
    json_decref(r);
    json_t *row = NULL;
    cr_assert_eq(cbx_journal_get(j, "t14", &row, NULL), -ENOENT);
    cr_assert_eq(cbx_journal_prune(j, NULL), 0);
    r = history(j, (cbx_history_filter){.limit = 100});
    cr_assert_eq(json_array_size(r), 10);
    json_decref(r);
    cbx_journal_close(j);
}

Test(journal_retention, prunes_by_itself_as_it_writes)
{
    cbx_journal *j = open_at(":memory:", 5, 0);
    char id[16];
    /* 3 writes each: 1500 writes pass the automatic check at least once */
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof id, "a%03d", i);
        write_ex(j, &(ex_spec){id, "command", "success", NULL, NULL, 1000 + (uint64_t)i, 1, 1});
    }
    json_t *r = history(j, (cbx_history_filter){.limit = 1000});
    cr_assert_lt(json_array_size(r), 500, "nothing was pruned: %zu rows", json_array_size(r));
    cr_assert_geq(json_array_size(r), 5);
    cr_assert_str_eq(row_id(r, 0), "a499");
    json_decref(r);
    cbx_journal_close(j);
}

/* Retention keeps its row count from pass to pass rather than counting the table each time: a
 * deletion by another connection in between must make it count again, or it would take the
 * count it kept plus the rows added since for the rows there are, and delete too many. */
Test(journal_retention, a_deletion_by_another_process_is_seen_by_the_next_pass)
{
    make_tmpdir();
    char path[300], id[16];
    tmp_path(path, sizeof path, "j.db");
    cbx_journal *j = open_at(path, 300, 0);
    /* 1,200 writes: a pass at the 1,000th cuts the table to 300 rows */
    for (int i = 0; i < 400; i++) {
        snprintf(id, sizeof id, "a%03d", i);
        write_ex(j, &(ex_spec){id, "command", "success", NULL, NULL, 1000 + (uint64_t)i, 1, 1});
    }
    cr_assert_eq(cbx_journal_flush(j, NULL), 0);
    sqlite3 *other = NULL;
    cr_assert_eq(sqlite3_open(path, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other,
                              "DELETE FROM executions WHERE rowid IN"
                              " (SELECT rowid FROM executions ORDER BY rowid LIMIT 250)",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(other));
    sqlite3_close(other);
    /* 1,050 writes more: the next pass comes after about 267 of these executions */
    for (int i = 0; i < 350; i++) {
        snprintf(id, sizeof id, "b%03d", i);
        write_ex(j, &(ex_spec){id, "command", "success", NULL, NULL, 2000 + (uint64_t)i, 1, 1});
    }
    json_t *r = history(j, (cbx_history_filter){.limit = 10000});
    /* 50 left, 350 added, the excess over 300 cut once: at least 300 remain */
    cr_assert_geq(json_array_size(r), 300, "retention deleted too many: %zu rows left",
                  json_array_size(r));
    cr_assert_leq(json_array_size(r), 300 + 350);
    cr_assert_str_eq(row_id(r, 0), "b349");
    json_decref(r);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

/* Pass after pass, the count kept follows the rows: the table stays at its bound. */
Test(journal_retention, stays_at_its_bound_pass_after_pass)
{
    cbx_journal *j = open_at(":memory:", 100, 0);
    char id[16];
    for (int i = 0; i < 3000; i++) { /* 9,000 writes: nine passes */
        snprintf(id, sizeof id, "c%04d", i);
        write_ex(j, &(ex_spec){id, "command", "success", NULL, NULL, 1000 + (uint64_t)i, 1, 1});
    }
    /* the last pass came at the 9,000th write, the last one: it left exactly the bound */
    json_t *r = history(j, (cbx_history_filter){.limit = 10000});
    cr_assert_eq(json_array_size(r), 100, "%zu rows", json_array_size(r));
    cr_assert_str_eq(row_id(r, 0), "c2999");
    cr_assert_str_eq(row_id(r, 99), "c2900");
    json_decref(r);
    cbx_journal_close(j);
}

Test(journal_retention, drops_what_is_older_than_max_age)
{
    uint64_t now = wall_ms(), day = 24ull * 3600 * 1000;
    cbx_journal *j = open_at(":memory:", 0, day);
    write_ex(j, &(ex_spec){"old", "command", "success", NULL, NULL, now - 3 * day, 5, 1});
    write_ex(j, &(ex_spec){"older", "command", "failed", NULL, NULL, now - 10 * day, 5, 2});
    write_ex(j, &(ex_spec){"recent", "command", "success", NULL, NULL, now - day / 2, 5, 1});
    write_ex(j, &(ex_spec){"now", "command", "success", NULL, NULL, now, 5, 1});
    cr_assert_eq(cbx_journal_prune(j, NULL), 0);
    json_t *r = history(j, (cbx_history_filter){0});
    assert_ids(r, "now,recent");
    json_decref(r);
    cbx_journal_close(j);
}

/* The pass at an open cuts back to the bound a table that exceeds it by more than a pass every
 * 1,000 writes allows (333 executions); a smaller excess waits for the next pass that counts
 * (so that a process at a full journal does not count the table to delete one row). */
Test(journal_retention, applied_when_a_file_is_opened)
{
    make_tmpdir();
    char path[300], id[16];
    tmp_path(path, sizeof path, "j.db");
    cbx_journal *j = open_at(path, 0, 0);
    write_five(j);
    cbx_journal_close(j);
    j = open_at(path, 2, 0);
    json_t *r = history(j, (cbx_history_filter){0});
    cr_assert_eq(json_array_size(r), 5, "an excess of 3 was cut at the open");
    json_decref(r);
    cr_assert_eq(cbx_journal_prune(j, NULL), 0);
    r = history(j, (cbx_history_filter){0});
    assert_ids(r, "e5,e4");
    json_decref(r);
    cbx_journal_close(j);
    j = open_at(path, 0, 0); /* the default bound: nothing cut while writing */
    for (int i = 0; i < 340; i++) {
        snprintf(id, sizeof id, "o%03d", i);
        write_ex(j, &(ex_spec){id, "command", "success", NULL, NULL, 9000 + (uint64_t)i, 1, 1});
    }
    cbx_journal_close(j);
    j = open_at(path, 2, 0);
    r = history(j, (cbx_history_filter){.limit = 1000});
    assert_ids(r, "o339,o338");
    json_decref(r);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

/* ---- files ------------------------------------------------------------------------------- */

Test(journal_file, reopen_after_close_keeps_everything)
{
    make_tmpdir();
    char path[300];
    tmp_path(path, sizeof path, "deep/er/j.db");
    cbx_journal *j = open_at(path, 0, 0);
    cr_assert_str_eq(cbx_journal_path(j), path);
    write_five(j); /* no flush: close commits */
    cbx_journal_close(j);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "journal mode %o", st.st_mode & 0777);
    char side[320];
    snprintf(side, sizeof side, "%s-wal", path);
    if (stat(side, &st) == 0) /* left for the next process unless a checkpoint was due */
        cr_assert_eq(st.st_mode & 0777, 0600, "WAL mode %o", st.st_mode & 0777);
    char dir[300];
    tmp_path(dir, sizeof dir, "deep/er");
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "directory mode %o", st.st_mode & 0777);

    j = open_at(path, 0, 0);
    json_t *r = history(j, (cbx_history_filter){0});
    assert_ids(r, "e5,e4,e3,e2,e1");
    json_decref(r);
    json_t *row = NULL;
    cr_assert_eq(cbx_journal_get(j, "e4", &row, NULL), 0);
    cr_assert_eq(json_array_size(json_object_get(row, "attempts")), 2);
    json_decref(row);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

Test(journal_file, wal_mode)
{
    make_tmpdir();
    char path[300];
    tmp_path(path, sizeof path, "j.db");
    cbx_journal *j = open_at(path, 0, 0);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

static int count_rows(const char *path, const char *sql);

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Under a steady stream of writes a batch is always open. The WAL must still be copied into the
 * database and start over: once, checkpoints copied nothing (the checkpointing connection had
 * never opened the WAL: the database file stayed empty), and then they never found the WAL whole,
 * so it grew without end (past 200 MB for these writes; about 5 MB now). */
Test(journal_file, wal_is_checkpointed_and_starts_over_under_steady_writes, .timeout = 120)
{
    make_tmpdir();
    char path[300], wal[310];
    tmp_path(path, sizeof path, "j.db");
    snprintf(wal, sizeof wal, "%s-wal", path);
    cbx_journal *j = open_at(path, 0, 0);
    cbx_err err;
    enum { N = 80000 };
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "steady-%06d", i);
        cbx_journal_execution e = {.id = id, .executor = "command", .submitted_ms = 1000 + i};
        cbx_journal_end end = {.execution_id = id, .status = "success", .ended_ms = 1001 + i};
        cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
        cr_assert_eq(cbx_journal_execution_end(j, &end, &err), 0, "%s", err.msg);
        /* a commit every 16 executions, and the next batch begins at once: never a moment
         * without one; still faster than the runtime writes (a pause of 0.2 ms per commit) */
        if (i % 16 == 15) {
            cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
            nanosleep(&(struct timespec){0, 200000}, NULL);
        }
    }
    long db_bytes = file_size(path), wal_bytes = file_size(wal);
    cr_assert_gt(db_bytes, 4L * 1024 * 1024, "the database file has %ld bytes: no checkpoint",
                 db_bytes);
    cr_assert_lt(wal_bytes, 32L * 1024 * 1024, "the WAL has %ld bytes: it never started over",
                 wal_bytes);
    cbx_journal_close(j);
    cr_assert_eq(count_rows(path, "SELECT count(*) FROM executions"), N);
    remove_tree(tmpdir);
}

static void make_db(const char *path, const char *sql)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

Test(journal_file, newer_schema_is_refused_clearly)
{
    make_tmpdir();
    char path[300];
    tmp_path(path, sizeof path, "j.db");
    cbx_journal *j = open_at(path, 0, 0);
    write_five(j);
    cbx_journal_close(j);
    make_db(path, "PRAGMA user_version = 99");

    cbx_err err;
    j = (cbx_journal *)1;
    int r = cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err);
    cr_assert_eq(r, CBX_EJOURNAL);
    cr_assert_null(j);
    cr_assert(strstr(err.msg, "schema version 99") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "newer") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);

    /* refused without being changed */
    sqlite3 *db;
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 99);
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_tree(tmpdir);
}

Test(journal_file, other_databases_and_files_are_refused)
{
    make_tmpdir();
    char path[300];
    cbx_err err;
    cbx_journal *j = NULL;

    tmp_path(path, sizeof path, "app.db");
    make_db(path, "CREATE TABLE executions(x); INSERT INTO executions VALUES(1)");
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, "not a cbx journal") != NULL, "%s", err.msg);

    tmp_path(path, sizeof path, "other-app.db");
    make_db(path, "PRAGMA application_id = 1234");
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, "not a cbx journal") != NULL, "%s", err.msg);

    tmp_path(path, sizeof path, "text.db");
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database at all\n", fp);
    fclose(fp);
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    cr_assert_null(j);
    remove_tree(tmpdir);
}

/* open_in_background: the database is opened on the journal's thread; every call that needs it
 * waits for that, so writes made at once and a query after them see the same as with an open
 * made before. */
Test(journal_file, opened_in_the_background)
{
    make_tmpdir();
    char path[300];
    cbx_err err;
    tmp_path(path, sizeof path, "bg.db");
    for (int round = 0; round < 3; round++) { /* made, then opened warm */
        cbx_journal *j = NULL;
        cr_assert_eq(
            cbx_journal_open(&j, &(cbx_journal_opts){.path = path, .open_in_background = 1}, &err),
            0, "%s", err.msg);
        cr_assert_not_null(j);
        if (round == 2) {
            json_t *r = history(j, (cbx_history_filter){0});
            cr_assert_eq(json_array_size(r), 7, "queried while it opens: %zu", json_array_size(r));
            json_decref(r);
        }
        cbx_journal_execution e = {.id = round == 0 ? "b1" : "b2", .executor = "command"};
        if (round < 2) {
            write_five(j);
            cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
        }
        cr_assert_eq(cbx_journal_open_error(j, &err), 0, "%s", err.msg);
        cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
        cbx_journal_close(j);
    }
    cbx_journal *j = open_at(path, 0, 0);
    json_t *r = history(j, (cbx_history_filter){0});
    cr_assert_eq(json_array_size(r), 7, "e1..e5 (twice, the same ids), b1, b2: %zu",
                 json_array_size(r));
    json_decref(r);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

static int not_called(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)db, (void)ud, (void)err;
    cr_assert_fail("called on a journal without a database");
    return 0;
}

/* A background open that fails leaves a handle whose writes are all lost, with the reason the
 * open would have given; the file is not touched. */
Test(journal_file, a_failed_background_open_loses_the_writes)
{
    make_tmpdir();
    char path[300];
    cbx_err err;
    tmp_path(path, sizeof path, "theirs.db");
    make_db(path, "CREATE TABLE theirs(x)");
    cbx_journal *j = NULL;
    cr_assert_eq(
        cbx_journal_open(&j, &(cbx_journal_opts){.path = path, .open_in_background = 1}, &err), 0,
        "%s", err.msg);
    cbx_journal_execution e = {.id = "x1", .executor = "command"};
    cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "queued: %s", err.msg);
    cbx_err_clear(&err);
    cr_assert_eq(cbx_journal_flush(j, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, "not a cbx journal") != NULL, "%s", err.msg);
    cbx_err_clear(&err);
    cr_assert_eq(cbx_journal_open_error(j, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, "not a cbx journal") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    cr_assert_eq(cbx_journal_execution_start(j, &e, NULL), 0, "queued again");
    cbx_journal_losses l;
    cr_assert_eq(cbx_journal_losses_get(j, 0, &l, NULL), 0);
    cr_assert_eq(l.writes, 2, "lost %llu", (unsigned long long)l.writes);
    cr_assert_eq(cbx_journal_write_db(j, not_called, NULL, NULL, &err), CBX_EJOURNAL);
    cr_assert_eq(cbx_journal_read_db(j, not_called, NULL, &err), CBX_EJOURNAL);
    cbx_journal_close(j);
    cr_assert_eq(count_rows(path, "SELECT count(*) FROM sqlite_master"), 1, "their file changed");

    tmp_path(path, sizeof path, "text.db");
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database at all\n", fp);
    fclose(fp);
    cr_assert_eq(
        cbx_journal_open(&j, &(cbx_journal_opts){.path = path, .open_in_background = 1}, &err), 0,
        "%s", err.msg);
    cr_assert_eq(cbx_journal_open_error(j, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

Test(journal_file, directory_errors_name_the_directory)
{
    make_tmpdir();
    char file[300], path[400];
    tmp_path(file, sizeof file, "plain-file");
    FILE *fp = fopen(file, "w");
    cr_assert_not_null(fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/sub/j.db", file);
    cbx_journal *j = NULL;
    cbx_err err;
    int r = cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err);
    cr_assert_eq(r, -ENOTDIR, "%d %s", r, err.msg);
    cr_assert(strstr(err.msg, file) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "directory") != NULL, "%s", err.msg);

    /* the same through the state directory */
    setenv("CBX_STATE_DIR", path, 1);
    r = cbx_journal_open(&j, NULL, &err);
    cr_assert_eq(r, -ENOTDIR, "%d %s", r, err.msg);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    remove_tree(tmpdir);
}

/* ---- the state directory ----------------------------------------------------------------- */

Test(state_dir, cbx_state_dir_then_xdg_then_home)
{
    make_tmpdir();
    char want[400], buf[512];
    struct stat st;

    snprintf(want, sizeof want, "%s/mine/state", tmpdir);
    setenv("CBX_STATE_DIR", want, 1);
    setenv("XDG_STATE_HOME", "/nonexistent-should-not-be-used", 1);
    cr_assert_eq(cbx_state_dir(buf, sizeof buf), 0);
    cr_assert_str_eq(buf, want);
    cr_assert_eq(stat(want, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0700);

    unsetenv("CBX_STATE_DIR");
    snprintf(want, sizeof want, "%s/xdg", tmpdir);
    setenv("XDG_STATE_HOME", want, 1);
    cr_assert_eq(cbx_state_dir(buf, sizeof buf), 0);
    strcat(want, "/cbx");
    cr_assert_str_eq(buf, want);
    cr_assert_eq(stat(want, &st), 0);

    /* a relative XDG_STATE_HOME is ignored, as the XDG spec says */
    setenv("XDG_STATE_HOME", "relative/dir", 1);
    snprintf(want, sizeof want, "%s/home", tmpdir);
    setenv("HOME", want, 1);
    cr_assert_eq(cbx_state_dir(buf, sizeof buf), 0);
    strcat(want, "/.local/state/cbx");
    cr_assert_str_eq(buf, want);
    cr_assert_eq(stat(want, &st), 0);

    unsetenv("XDG_STATE_HOME");
    cr_assert_eq(cbx_state_dir(buf, sizeof buf), 0);
    cr_assert_str_eq(buf, want);

    cr_assert_eq(cbx_state_dir(buf, 8), -ENAMETOOLONG);
    remove_tree(tmpdir);
}

Test(state_dir, default_journal_lives_there)
{
    make_tmpdir();
    char dir[400], want[500];
    snprintf(dir, sizeof dir, "%s/state/", tmpdir); /* a trailing slash is dropped */
    setenv("CBX_STATE_DIR", dir, 1);
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, NULL, &err), 0, "%s", err.msg);
    snprintf(want, sizeof want, "%s/state/journal.db", tmpdir);
    cr_assert_str_eq(cbx_journal_path(j), want);
    write_five(j);
    cbx_journal_close(j);
    struct stat st;
    cr_assert_eq(stat(want, &st), 0);
    remove_tree(tmpdir);
}

/* ---- several writers --------------------------------------------------------------------- */

#define PER_WRITER 1000

typedef struct writer {
    const char *path;
    int who;
    int failures;
    char msg[512];
} writer;

static int write_many(const char *path, int who, char *msg, size_t len)
{
    cbx_journal *j = NULL;
    cbx_err err;
    if (cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err) != 0) {
        snprintf(msg, len, "open: %.400s", err.msg);
        return 1;
    }
    int failures = 0;
    for (int i = 0; i < PER_WRITER; i++) {
        char id[32];
        snprintf(id, sizeof id, "w%d-%04d", who, i);
        cbx_journal_execution e = {.id = id, .executor = "command", .submitted_ms = 1000 + i};
        cbx_journal_attempt_info a = {
            .execution_id = id, .number = 1, .outcome = "success", .duration_ns = 1000};
        cbx_journal_end end = {.execution_id = id,
                               .status = "success",
                               .attempts = 1,
                               .ended_ms = 1001 + i,
                               .duration_ns = 1000};
        if (cbx_journal_execution_start(j, &e, &err) != 0 ||
            cbx_journal_attempt(j, &a, &err) != 0 ||
            cbx_journal_execution_end(j, &end, &err) != 0) {
            if (failures++ == 0)
                snprintf(msg, len, "%s", err.msg);
        }
        /* now and then make the batch visible at once, as the runtime's timer would */
        if (i % 50 == 49 && cbx_journal_flush(j, &err) != 0 && failures++ == 0)
            snprintf(msg, len, "flush: %.400s", err.msg);
    }
    cbx_journal_close(j);
    return failures;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    w->failures = write_many(w->path, w->who, w->msg, sizeof w->msg);
    return NULL;
}

static int count_rows(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

Test(journal_shared, two_handles_in_two_threads)
{
    make_tmpdir();
    char path[300];
    tmp_path(path, sizeof path, "j.db");
    writer w[2] = {{.path = path, .who = 0}, {.path = path, .who = 1}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].failures, 0, "writer %d: %s", i, w[i].msg);
    }
    cr_assert_eq(count_rows(path, "SELECT count(*) FROM executions WHERE status = 'success'"),
                 2 * PER_WRITER);
    cr_assert_eq(count_rows(path, "SELECT count(*) FROM attempts"), 2 * PER_WRITER);
    remove_tree(tmpdir);
}

Test(journal_shared, two_processes_on_one_file)
{
    make_tmpdir();
    char path[300];
    tmp_path(path, sizeof path, "j.db");
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        cr_assert_neq(pids[i], -1);
        if (pids[i] == 0) {
            char msg[512] = "";
            int failures = write_many(path, i, msg, sizeof msg);
            if (failures)
                fprintf(stderr, "writer process %d: %d failures, first: %s\n", i, failures, msg);
            _exit(failures ? 1 : 0);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer process %d failed", i);
    }
    cr_assert_eq(count_rows(path, "SELECT count(*) FROM executions WHERE status = 'success'"),
                 2 * PER_WRITER);
    cr_assert_eq(count_rows(path, "SELECT count(*) FROM executions WHERE id LIKE 'w1-%'"),
                 PER_WRITER);
    remove_tree(tmpdir);
}

/* Processes that open a journal file nobody has created yet, all at once, all succeed: one
 * creates it, the others see it whole (its tables once appeared before its id did). */
Test(journal_shared, many_processes_create_one_file_at_once)
{
    make_tmpdir();
    for (int round = 0; round < 15; round++) {
        char name[32], path[300];
        snprintf(name, sizeof name, "new-%d.db", round);
        tmp_path(path, sizeof path, name);
        pid_t pids[6];
        for (int i = 0; i < 6; i++) {
            pids[i] = fork();
            cr_assert_neq(pids[i], -1);
            if (pids[i] == 0) {
                cbx_journal *j = NULL;
                cbx_err err;
                int r = cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err);
                if (r != 0)
                    fprintf(stderr, "open: %s\n", err.msg);
                cbx_journal_close(j);
                _exit(r == 0 ? 0 : 1);
            }
        }
        for (int i = 0; i < 6; i++) {
            int status = 0;
            cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
            cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "round %d: process %d could not open the new journal", round, i);
        }
    }
    remove_tree(tmpdir);
}

Test(journal_shared, flush_makes_writes_visible_to_another_handle)
{
    make_tmpdir();
    char path[300];
    tmp_path(path, sizeof path, "j.db");
    cbx_journal *a = open_at(path, 0, 0), *b = open_at(path, 0, 0);
    write_ex(a, &(ex_spec){"from-a", "command", "success", NULL, NULL, 10, 1, 1});
    cr_assert_eq(cbx_journal_flush(a, NULL), 0);
    json_t *r = history(b, (cbx_history_filter){0});
    assert_ids(r, "from-a");
    json_decref(r);
    write_ex(b, &(ex_spec){"from-b", "http", "failed", NULL, NULL, 20, 1, 1});
    cr_assert_eq(cbx_journal_flush(b, NULL), 0);
    r = history(a, (cbx_history_filter){0});
    assert_ids(r, "from-b,from-a");
    json_decref(r);
    /* a clear through one handle is seen by the other */
    cr_assert_eq(cbx_journal_clear(b, &(cbx_history_filter){.executor = "command"}, NULL, NULL), 0);
    r = history(a, (cbx_history_filter){0});
    assert_ids(r, "from-b");
    json_decref(r);
    cbx_journal_close(a);
    cbx_journal_close(b);
    remove_tree(tmpdir);
}

Test(journal_shared, unflushed_batch_commits_by_itself)
{
    make_tmpdir();
    char path[300];
    tmp_path(path, sizeof path, "j.db");
    cbx_journal *a = open_at(path, 0, 0), *b = open_at(path, 0, 0);
    write_ex(a, &(ex_spec){"late", "command", "success", NULL, NULL, 10, 1, 1});
    /* No flush: a's flusher commits its batch within a few ms (b's write does not wait for it:
     * a's writes hold no lock until its flusher writes them); then both are there. */
    write_ex(b, &(ex_spec){"other", "command", "success", NULL, NULL, 20, 1, 1});
    cr_assert_eq(cbx_journal_flush(b, NULL), 0);
    json_t *r = history(b, (cbx_history_filter){0});
    for (int i = 0; i < 1000 && json_array_size(r) < 2; i++) { /* up to 10 s */
        json_decref(r);
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
        r = history(b, (cbx_history_filter){0});
    }
    assert_ids(r, "other,late");
    json_decref(r);
    cbx_journal_close(a);
    cbx_journal_close(b);
    remove_tree(tmpdir);
}
