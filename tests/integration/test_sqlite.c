/* The sqlite executor through the runtime, on real database files in a temporary directory:
 * bound parameters (positional and named), max_rows, transactions that roll back on an error,
 * read-only mode, a timeout that interrupts a statement, and one-line errors. */
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cbx_runtime *rt;
static char dir[] = "/tmp/cbx-sqlite-test.XXXXXX";
static char db[256];

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/t.db", dir);
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, NULL, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("cannot remove %s", dir);
}

TestSuite(sqlite, .init = setup, .fini = teardown, .timeout = 60);

/* Run a request whose JSON lacks the database member; the caller clears *r. */
static int run_t(const char *json, uint64_t timeout_ms, cbx_result *r)
{
    json_error_t je;
    json_t *p = json_loads(json, 0, &je);
    cr_assert_not_null(p, "%s: %s", json, je.text);
    if (!json_object_get(p, "database"))
        json_object_set_new(p, "database", json_string(db));
    int rc = cbx_runtime_execute(
        rt,
        &(cbx_request){.executor = "sqlite", .params = p, .timeout_ns = timeout_ms * CBX_NS_PER_MS},
        r, NULL);
    json_decref(p);
    return rc;
}

static int run(const char *json, cbx_result *r)
{
    return run_t(json, 0, r);
}

static void ok(const char *json)
{
    cbx_result r;
    cr_assert_eq(run(json, &r), 0, "%s: %s", json, r.error);
    cbx_result_clear(&r);
}

static json_int_t count_rows(void)
{
    cbx_result r;
    cr_assert_eq(run("{\"sql\": \"SELECT count(*) AS n FROM t\"}", &r), 0, "%s", r.error);
    json_int_t n = json_integer_value(
        json_object_get(json_array_get(json_object_get(r.outputs, "rows"), 0), "n"));
    cbx_result_clear(&r);
    return n;
}

Test(sqlite, positional_and_named_parameters_are_bound)
{
    ok("{\"sql\": \"CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, tags TEXT, "
       "b BLOB)\"}");
    cbx_result r;
    const char *evil = "{\"sql\": \"INSERT INTO t (name, score, tags) VALUES (?, ?, ?)\", "
                       "\"params\": [\"x'); DROP TABLE t; --\", 2.5, [\"a\", \"b\"]]}";
    cr_assert_eq(run(evil, &r), 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "changes")), 1);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "last_insert_rowid")), 1);
    cbx_result_clear(&r);
    ok("{\"sql\": \"INSERT INTO t (name, score, b) VALUES (:name, @score, x'00ff')\", \"params\": "
       "{\"name\": \"named\", \"@score\": null}}");
    cr_assert_eq(run("{\"sql\": \"SELECT * FROM t WHERE id >= $min ORDER BY id\", \"params\": "
                     "{\"min\": 1}}",
                     &r),
                 0, "%s", r.error);
    const json_t *rows = json_object_get(r.outputs, "rows");
    cr_assert_eq(json_array_size(rows), 2);
    const json_t *a = json_array_get(rows, 0), *b = json_array_get(rows, 1);
    cr_assert_str_eq(json_string_value(json_object_get(a, "name")), "x'); DROP TABLE t; --");
    cr_assert_float_eq(json_real_value(json_object_get(a, "score")), 2.5, 1e-12);
    cr_assert_str_eq(json_string_value(json_object_get(a, "tags")), "[\"a\",\"b\"]");
    cr_assert(json_is_null(json_object_get(a, "b")));
    cr_assert_str_eq(json_string_value(json_object_get(b, "name")), "named");
    cr_assert(json_is_null(json_object_get(b, "score")));
    cr_assert_str_eq(json_string_value(json_object_get(b, "b")), "00ff");
    cr_assert_eq(json_integer_value(json_object_get(b, "id")), 2);
    cbx_result_clear(&r);
}

Test(sqlite, parameter_mismatch_names_params)
{
    ok("{\"sql\": \"CREATE TABLE t (a)\"}");
    cbx_result r;
    cr_assert_eq(run("{\"sql\": \"SELECT ?, ?\", \"params\": [1]}", &r), CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "params: 1 value(s) given for a statement with 2"), "%s",
                       r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run("{\"sql\": \"SELECT :a\", \"params\": {\"b\": 1}}", &r), CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "params: no value for :a"), "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run("{\"sql\": \"SELECT 1\", \"params\": 5}", &r), CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(r.error, "params"), "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run("{\"sql\": \"SELECT 1; SELECT 2\"}", &r), CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "more than one statement"), "%s", r.error);
    cbx_result_clear(&r);
}

Test(sqlite, max_rows_truncates)
{
    cbx_result r;
    cr_assert_eq(run("{\"sql\": \"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                     "WHERE x < 100) SELECT x FROM c\", \"max_rows\": 7}",
                     &r),
                 0, "%s", r.error);
    cr_assert_eq(json_array_size(json_object_get(r.outputs, "rows")), 7);
    cr_assert(json_is_true(json_object_get(r.outputs, "truncated")));
    cbx_result_clear(&r);
    cr_assert_eq(run("{\"sql\": \"SELECT 1 AS one\", \"max_rows\": 7}", &r), 0, "%s", r.error);
    cr_assert(json_is_false(json_object_get(r.outputs, "truncated")));
    cbx_result_clear(&r);
}

Test(sqlite, transaction_rolls_back_on_error)
{
    ok("{\"sql\": \"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)\"}");
    cbx_result r;
    int rc = run("{\"statements\": [\"INSERT INTO t VALUES (1, 'a')\", {\"sql\": \"INSERT INTO t "
                 "VALUES (?, ?)\", \"params\": [2, null]}]}",
                 &r);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "statements[1]"), "%s", r.error);
    cr_assert_not_null(strstr(r.error, "NOT NULL"), "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(count_rows(), 0, "the first insert survived the rollback");
    cr_assert_eq(run("{\"statements\": [\"INSERT INTO t VALUES (1, 'a')\", {\"sql\": \"INSERT "
                     "INTO t VALUES (:id, :v)\", \"params\": {\"id\": 2, \"v\": \"b\"}}]}",
                     &r),
                 0, "%s", r.error);
    cr_assert(json_is_true(json_object_get(r.outputs, "committed")));
    cr_assert_eq(json_array_size(json_object_get(r.outputs, "results")), 2);
    cbx_result_clear(&r);
    cr_assert_eq(count_rows(), 2);
}

Test(sqlite, read_only_refuses_writes)
{
    ok("{\"sql\": \"CREATE TABLE t (a)\"}");
    cbx_result r;
    cr_assert_eq(run("{\"sql\": \"INSERT INTO t VALUES (1)\", \"read_only\": true}", &r),
                 CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "readonly"), "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run("{\"sql\": \"SELECT count(*) AS n FROM t\", \"read_only\": true}", &r), 0,
                 "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(count_rows(), 0);
    /* read-only never creates a file */
    char missing[300];
    snprintf(missing, sizeof missing,
             "{\"database\": \"%s/none.db\", \"sql\": \"SELECT 1\", "
             "\"read_only\": true}",
             dir);
    cr_assert_eq(run(missing, &r), CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "none.db"), "%s", r.error);
    cbx_result_clear(&r);
}

Test(sqlite, missing_table_is_one_line)
{
    cbx_result r;
    cr_assert_eq(run("{\"sql\": \"SELECT * FROM nope\"}", &r), CBX_EFAILED);
    cr_assert_str_eq(r.error, "sqlite: sql: no such table: nope");
    cbx_result_clear(&r);
}

Test(sqlite, timeout_interrupts_the_statement)
{
    cbx_result r;
    int rc = run_t("{\"sql\": \"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                   "SELECT count(*) FROM c\"}",
                   200, &r);
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%s", r.error);
    cbx_result_clear(&r);
    /* the runtime waits for the interrupted run before it frees: nothing is left running */
}
