/* The postgres executor against a real PostgreSQL server that tests/db/with_pg.sh started for
 * this run (its address in PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE): typed rows, bound
 * parameters, SQL errors as one line with the server's message and position, transactions, a
 * statement timeout that stops the statement on the server, a pool that survives a restart,
 * eight statements at once, and libpq loaded only on first use. */
#define _GNU_SOURCE
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static cbx_runtime *rt;

static void setup(void)
{
    if (!getenv("CBX_PG_STATE"))
        cr_skip_test("no server: run through tests/db/with_pg.sh (ctest does)");
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.max_concurrent = 16}, &err), 0, "%s",
                 err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
}

TestSuite(postgres, .init = setup, .fini = teardown, .timeout = 120);

/* The connection parameters from the environment, plus the request's own members. */
static json_t *params(const char *json)
{
    json_error_t je;
    json_t *p = json_loads(json, 0, &je);
    cr_assert_not_null(p, "%s: %s", json, je.text);
    json_object_set_new(p, "host", json_string(getenv("PGHOST")));
    json_object_set_new(p, "port", json_integer(atoi(getenv("PGPORT"))));
    json_object_set_new(p, "user", json_string(getenv("PGUSER")));
    json_object_set_new(p, "password", json_string(getenv("PGPASSWORD")));
    json_object_set_new(p, "dbname", json_string(getenv("PGDATABASE")));
    return p;
}

static int run_p(json_t *p, uint64_t timeout_ms, cbx_result *r)
{
    int rc = cbx_runtime_execute(rt,
                                 &(cbx_request){.executor = "postgres",
                                                .params = p,
                                                .timeout_ns = timeout_ms * CBX_NS_PER_MS},
                                 r, NULL);
    json_decref(p);
    return rc;
}

static int run(const char *json, cbx_result *r)
{
    return run_p(params(json), 0, r);
}

static const json_t *row0(const cbx_result *r)
{
    return json_array_get(json_object_get(r->outputs, "rows"), 0);
}

static json_int_t scalar_int(const char *sql)
{
    cbx_result r;
    json_t *p = params("{}");
    json_object_set_new(p, "sql", json_string(sql));
    cr_assert_eq(run_p(p, 0, &r), 0, "%s: %s", sql, r.error);
    const json_t *v = json_object_iter_value(json_object_iter((json_t *)row0(&r)));
    cr_assert(json_is_integer(v), "%s", sql);
    json_int_t n = json_integer_value(v);
    cbx_result_clear(&r);
    return n;
}

Test(postgres, rows_are_typed)
{
    cbx_result r;
    int rc = run("{\"sql\": \"SELECT 1::int2 AS i2, 2::int4 AS i4, 9007199254740993::int8 AS i8, "
                 "1.5::float8 AS f, 12.25::numeric AS n, true AS b, false AS nb, NULL::int AS z, "
                 "'{\\\"a\\\": [1, 2]}'::jsonb AS jb, '[1, \\\"x\\\"]'::json AS j, 'héllo' AS t, "
                 "'2024-02-29'::date AS d, 'NaN'::float8 AS nan\"}",
                 &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    const json_t *row = row0(&r);
    cr_assert_eq(json_integer_value(json_object_get(row, "i2")), 1);
    cr_assert_eq(json_integer_value(json_object_get(row, "i4")), 2);
    cr_assert_eq(json_integer_value(json_object_get(row, "i8")), 9007199254740993LL);
    cr_assert_float_eq(json_real_value(json_object_get(row, "f")), 1.5, 1e-12);
    cr_assert_float_eq(json_real_value(json_object_get(row, "n")), 12.25, 1e-12);
    cr_assert(json_is_true(json_object_get(row, "b")));
    cr_assert(json_is_false(json_object_get(row, "nb")));
    cr_assert(json_is_null(json_object_get(row, "z")));
    json_t *jb = json_pack("{s:[i,i]}", "a", 1, 2);
    cr_assert(json_equal(json_object_get(row, "jb"), jb));
    json_decref(jb);
    json_t *j = json_pack("[i,s]", 1, "x");
    cr_assert(json_equal(json_object_get(row, "j"), j));
    json_decref(j);
    cr_assert_str_eq(json_string_value(json_object_get(row, "t")), "héllo");
    cr_assert_str_eq(json_string_value(json_object_get(row, "d")), "2024-02-29");
    cr_assert_str_eq(json_string_value(json_object_get(row, "nan")), "NaN");
    cr_assert_str_eq(json_string_value(json_object_get(r.outputs, "command")), "SELECT 1");
    json_t *cols = json_object_get(r.outputs, "columns");
    cr_assert_eq(json_array_size(cols), 13);
    cr_assert_str_eq(json_string_value(json_array_get(cols, 0)), "i2");
    cbx_result_clear(&r);
}

Test(postgres, parameters_are_bound_not_interpolated)
{
    cbx_result r;
    const char *evil = "x'); DROP TABLE pg_class; --";
    json_t *p = params("{\"sql\": \"SELECT $1::int + 1 AS n, $2::text AS s, $3::jsonb -> 'k' AS "
                       "j, $4::bool AS b, $5::text IS NULL AS isnull, $6::float8 AS f\"}");
    json_object_set_new(p, "params",
                        json_pack("[i, s, {s:s}, b, n, f]", 41, evil, "k", "v", 1, 2.5));
    cr_assert_eq(run_p(p, 0, &r), 0, "%s", r.error);
    const json_t *row = row0(&r);
    cr_assert_eq(json_integer_value(json_object_get(row, "n")), 42);
    cr_assert_str_eq(json_string_value(json_object_get(row, "s")), evil);
    cr_assert_str_eq(json_string_value(json_object_get(row, "j")), "v");
    cr_assert(json_is_true(json_object_get(row, "b")));
    cr_assert(json_is_true(json_object_get(row, "isnull")));
    cr_assert_float_eq(json_real_value(json_object_get(row, "f")), 2.5, 1e-12);
    cbx_result_clear(&r);
}

Test(postgres, missing_table_is_one_line_with_message_and_position)
{
    cbx_result r;
    int rc = run("{\"sql\": \"SELECT a FROM no_such_table\"}", &r);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_not_null(strstr(r.error, "42P01"), "%s", r.error);
    cr_assert_not_null(strstr(r.error, "relation \"no_such_table\" does not exist"), "%s", r.error);
    cr_assert_not_null(strstr(r.error, "at character 15"), "%s", r.error);
    cr_assert_null(strchr(r.error, '\n'), "%s", r.error);
    cr_assert_str_eq(json_string_value(json_object_get(r.metadata, "sqlstate")), "42P01");
    cr_assert_eq(json_integer_value(json_object_get(r.metadata, "position")), 15);
    cbx_result_clear(&r);
}

Test(postgres, syntax_error_names_its_position)
{
    cbx_result r;
    cr_assert_eq(run("{\"sql\": \"SELECT 1 FROM WHERE\"}", &r), CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "42601"), "%s", r.error);
    cr_assert_not_null(strstr(r.error, "syntax error at or near \"WHERE\""), "%s", r.error);
    cr_assert_not_null(strstr(r.error, "at character 15"), "%s", r.error);
    cbx_result_clear(&r);
}

Test(postgres, max_rows_truncates)
{
    cbx_result r;
    cr_assert_eq(run("{\"sql\": \"SELECT g FROM generate_series(1, 50) g\", \"max_rows\": 10}", &r),
                 0, "%s", r.error);
    cr_assert_eq(json_array_size(json_object_get(r.outputs, "rows")), 10);
    cr_assert(json_is_true(json_object_get(r.outputs, "truncated")));
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "affected")), 50);
    cbx_result_clear(&r);
}

Test(postgres, transaction_commits_or_rolls_back)
{
    cbx_result r;
    cr_assert_eq(
        run("{\"sql\": \"CREATE TABLE IF NOT EXISTS tx_t (id int primary key, v text)\"}", &r), 0,
        "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run("{\"sql\": \"TRUNCATE tx_t\"}", &r), 0, "%s", r.error);
    cbx_result_clear(&r);
    /* the second insert fails: the first must not stay */
    int rc = run("{\"statements\": [{\"sql\": \"INSERT INTO tx_t VALUES ($1, $2)\", \"params\": "
                 "[1, \"one\"]}, {\"sql\": \"INSERT INTO tx_t VALUES ($1, $2)\", \"params\": [1, "
                 "\"dup\"]}]}",
                 &r);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "statements[1]"), "%s", r.error);
    cr_assert_not_null(strstr(r.error, "23505"), "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(scalar_int("SELECT count(*)::int FROM tx_t"), 0);
    rc = run("{\"statements\": [\"INSERT INTO tx_t VALUES (1, 'a')\", {\"sql\": \"INSERT INTO "
             "tx_t VALUES ($1, $2)\", \"params\": [2, \"b\"]}, \"SELECT count(*) AS n FROM "
             "tx_t\"]}",
             &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    const json_t *res = json_object_get(r.outputs, "results");
    cr_assert_eq(json_array_size(res), 3);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_array_get(json_object_get(json_array_get(res, 2), "rows"), 0), "n")),
                 2);
    cbx_result_clear(&r);
    cr_assert_eq(scalar_int("SELECT count(*)::int FROM tx_t"), 2);
}

/* How many statements with the marker run on the server now (not counting the asking one). */
static json_int_t active_with(const char *marker)
{
    cbx_result r;
    json_t *p = params("{\"sql\": \"SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = "
                       "'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0\"}");
    json_object_set_new(p, "params", json_pack("[s]", marker));
    cr_assert_eq(run_p(p, 0, &r), 0, "%s", r.error);
    json_int_t n = json_integer_value(json_object_get(row0(&r), "n"));
    cbx_result_clear(&r);
    return n;
}

Test(postgres, statement_timeout_cancels_on_the_server)
{
    cbx_result r;
    int rc = run("{\"sql\": \"SELECT pg_sleep(60) /* cbx-sleep-1 */\", \"statement_timeout_ms\": "
                 "300}",
                 &r);
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%d %s", rc, r.error);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    const json_t *a = json_array_get(r.attempts, 0);
    cr_assert_str_eq(json_string_value(json_object_get(a, "outcome")), "timeout");
    cr_assert_not_null(strstr(r.error, "cancelled on the server"), "%s", r.error);
    cr_assert_str_eq(json_string_value(json_object_get(r.metadata, "cancel")),
                     "confirmed by the server");
    cbx_result_clear(&r);
    cr_assert_eq(active_with("cbx-sleep-1"), 0, "the statement still runs on the server");
}

Test(postgres, attempt_timeout_cancels_on_the_server)
{
    cbx_result r;
    int rc = run_p(params("{\"sql\": \"SELECT pg_sleep(60) /* cbx-sleep-2 */\"}"), 300, &r);
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%d %s", rc, r.error);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    cbx_result_clear(&r);
    cr_assert_eq(active_with("cbx-sleep-2"), 0, "the statement still runs on the server");
    /* the pool's connections still work */
    cr_assert_eq(scalar_int("SELECT 7"), 7);
}

Test(postgres, pool_survives_a_server_restart)
{
    json_int_t pid1 = scalar_int("SELECT pg_backend_pid()");
    cr_assert_eq(scalar_int("SELECT pg_backend_pid()"), pid1, "the connection was not reused");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bash '%s' restart '%s'", getenv("CBX_PG_SERVER"),
             getenv("CBX_PG_STATE"));
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    json_int_t pid2 = scalar_int("SELECT pg_backend_pid()");
    cr_assert_neq(pid2, pid1);
    cr_assert_eq(scalar_int("SELECT 1 + 1"), 2);
}

Test(postgres, eight_at_once_on_eight_connections)
{
    enum { N = 8 };
    cbx_request reqs[N];
    cbx_result res[N];
    json_t *p = params("{\"sql\": \"SELECT pg_backend_pid() AS pid, $1::int AS i FROM "
                       "pg_sleep(0.3)\", \"pool_size\": 8}");
    json_t *ps[N];
    for (int i = 0; i < N; i++) {
        ps[i] = json_deep_copy(p);
        json_object_set_new(ps[i], "params", json_pack("[i]", i));
        reqs[i] = (cbx_request){.executor = "postgres", .params = ps[i]};
    }
    cr_assert_eq(cbx_runtime_execute_many(rt, reqs, N, 0, res), N);
    json_int_t pids[N];
    for (int i = 0; i < N; i++) {
        const json_t *row = row0(&res[i]);
        cr_assert_eq(json_integer_value(json_object_get(row, "i")), i);
        pids[i] = json_integer_value(json_object_get(row, "pid"));
        for (int k = 0; k < i; k++)
            cr_assert_neq(pids[k], pids[i], "two statements ran on one connection at once");
        cbx_result_clear(&res[i]);
        json_decref(ps[i]);
    }
    json_decref(p);
}

Test(postgres, password_is_secret_and_a_wrong_one_fails_in_one_line)
{
    cbx_result r;
    json_t *p = params("{\"sql\": \"SELECT 1\"}");
    json_object_set_new(p, "password", json_string("wrong-pw-xyz"));
    cr_assert_eq(run_p(p, 0, &r), CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "password authentication failed"), "%s", r.error);
    cr_assert_null(strstr(r.error, "wrong-pw-xyz"), "%s", r.error);
    cr_assert_null(strchr(r.error, '\n'));
    cbx_result_clear(&r);

    char ci[256];
    snprintf(ci, sizeof ci, "host=%s port=%s user=%s password=%s dbname=%s", getenv("PGHOST"),
             getenv("PGPORT"), getenv("PGUSER"), getenv("PGPASSWORD"), getenv("PGDATABASE"));
    json_t *q = json_pack("{s:s, s:s}", "conninfo", ci, "sql", "SELECT 1 AS one");
    cr_assert_eq(run_p(q, 0, &r), 0, "%s", r.error);
    char *all = json_dumps(r.metadata, 0);
    cr_assert_null(strstr(all, getenv("PGPASSWORD")), "%s", all);
    cr_assert_not_null(strstr(json_string_value(json_object_get(r.metadata, "server")), "port="));
    free(all);
    cbx_result_clear(&r);
}

Test(postgres, no_server_is_a_clear_error)
{
    cbx_result r;
    json_t *p = params("{\"sql\": \"SELECT 1\"}");
    json_object_set_new(p, "port", json_integer(1)); /* nothing listens on port 1 */
    cr_assert_eq(run_p(p, 0, &r), CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "cannot connect to"), "%s", r.error);
    cr_assert_not_null(strstr(r.error, "port=1"), "%s", r.error);
    cbx_result_clear(&r);
}

Test(postgres, bad_input_names_the_parameter)
{
    cbx_result r;
    cr_assert_eq(run("{\"sql\": \"SELECT 1\", \"params\": {\"a\": 1}}", &r), CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(r.error, "params"), "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run("{}", &r), CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(r.error, "sql"), "%s", r.error);
    cbx_result_clear(&r);
}

static int find_pq(struct dl_phdr_info *info, size_t size, void *found)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libpq.so"))
        *(int *)found = 1;
    return 0;
}

Test(postgres, libpq_is_loaded_on_first_use)
{
    int found = 0;
    dl_iterate_phdr(find_pq, &found);
    cr_assert_not(found, "libpq is mapped before the first postgres request");
    cr_assert_eq(scalar_int("SELECT 3"), 3);
    dl_iterate_phdr(find_pq, &found);
    cr_assert(found);
}

Test(postgres, a_pooled_connection_killed_on_the_server_is_replaced)
{
    /* one connection in the pool: its backend is terminated from another pool (another
     * application_name makes another target), and the next statement runs on a new one */
    json_t *p = params("{\"sql\": \"SELECT pg_backend_pid() AS pid\", \"pool_size\": 1}");
    cbx_result r;
    cr_assert_eq(run_p(json_incref(p), 0, &r), 0, "%s", r.error);
    json_int_t pid = json_integer_value(json_object_get(row0(&r), "pid"));
    cbx_result_clear(&r);
    json_t *k = params("{\"sql\": \"SELECT pg_terminate_backend($1) AS ok\", \"conninfo\": "
                       "\"application_name=killer\"}");
    json_object_set_new(k, "params", json_pack("[I]", pid));
    cr_assert_eq(run_p(k, 0, &r), 0, "%s", r.error);
    cr_assert(json_is_true(json_object_get(row0(&r), "ok")));
    cbx_result_clear(&r);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(run_p(json_incref(p), 0, &r), 0, "%s", r.error);
        cr_assert_neq(json_integer_value(json_object_get(row0(&r), "pid")), pid);
        cbx_result_clear(&r);
    }
    json_decref(p);
}

/* Run sql on a one-connection pool (so that every run shares the connection); 0 or rc. */
static int run_one_conn(const char *sql, cbx_result *r)
{
    json_t *p = params("{\"pool_size\": 1}");
    json_object_set_new(p, "sql", json_string(sql));
    return run_p(p, 0, r);
}

Test(postgres, a_statement_seen_again_is_prepared_once_per_connection)
{
    const char *sql = "SELECT 40 + 2 AS answer";
    cbx_result r;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(run_one_conn(sql, &r), 0, "%s", r.error);
        cr_assert_eq(json_integer_value(json_object_get(row0(&r), "answer")), 42);
        cbx_result_clear(&r);
    }
    json_t *p = params("{\"pool_size\": 1, \"sql\": \"SELECT count(*)::int AS n FROM "
                       "pg_prepared_statements WHERE statement = $1\"}");
    json_object_set_new(p, "params", json_pack("[s]", sql));
    cr_assert_eq(run_p(p, 0, &r), 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(row0(&r), "n")), 1);
    cbx_result_clear(&r);
    /* prepare: false never prepares */
    p = params("{\"pool_size\": 1, \"prepare\": false, \"sql\": \"SELECT 7 AS seven\"}");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(run_p(json_incref(p), 0, &r), 0, "%s", r.error);
        cbx_result_clear(&r);
    }
    json_decref(p);
    cr_assert_eq(run_one_conn("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE "
                              "statement = 'SELECT 7 AS seven'",
                              &r),
                 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(row0(&r), "n")), 0);
    cbx_result_clear(&r);
}

Test(postgres, a_prepared_statement_survives_alter_table_and_discard)
{
    cbx_result r;
    cr_assert_eq(run_one_conn("DROP TABLE IF EXISTS prep_t; CREATE TABLE prep_t (a int); "
                              "INSERT INTO prep_t VALUES (1)",
                              &r),
                 CBX_EFAILED); /* one statement at a time */
    cbx_result_clear(&r);
    cr_assert_eq(run_one_conn("DROP TABLE IF EXISTS prep_t", &r), 0, "%s", r.error);
    /* the server's notice is in the metadata (libpq would print it to stderr) */
    cr_assert_not_null(
        strstr(json_string_value(json_array_get(json_object_get(r.metadata, "notices"), 0)),
               "does not exist, skipping"));
    cbx_result_clear(&r);
    cr_assert_eq(run_one_conn("CREATE TABLE prep_t (a int)", &r), 0, "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run_one_conn("INSERT INTO prep_t VALUES (1)", &r), 0, "%s", r.error);
    cbx_result_clear(&r);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(run_one_conn("SELECT * FROM prep_t", &r), 0, "%s", r.error);
        cbx_result_clear(&r);
    }
    cr_assert_eq(run_one_conn("ALTER TABLE prep_t ADD COLUMN b int DEFAULT 5", &r), 0, "%s",
                 r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run_one_conn("SELECT * FROM prep_t", &r), 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(row0(&r), "b")), 5);
    cbx_result_clear(&r);
    cr_assert_eq(run_one_conn("DISCARD ALL", &r), 0, "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run_one_conn("SELECT * FROM prep_t", &r), 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(row0(&r), "a")), 1);
    cbx_result_clear(&r);
}

Test(postgres, listen_hears_its_own_notify)
{
    const char *ch = "cbx \"odd\" channel";
    cbx_result r;
    json_t *p = params("{\"sql\": \"SELECT pg_notify($1, 'hello') AS sent\", \"wait_ms\": 60000}");
    json_object_set_new(p, "listen", json_string(ch));
    json_object_set_new(p, "params", json_pack("[s]", ch));
    cr_assert_eq(run_p(p, 0, &r), 0, "%s", r.error);
    const json_t *n = json_array_get(json_object_get(r.outputs, "notifications"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(n, "channel")), ch);
    cr_assert_str_eq(json_string_value(json_object_get(n, "payload")), "hello");
    cr_assert_eq(json_array_size(json_object_get(r.outputs, "rows")), 1);
    cbx_result_clear(&r);
}

Test(postgres, listen_without_notifications_waits_wait_ms)
{
    cbx_result r;
    cr_assert_eq(run("{\"listen\": \"quiet\", \"wait_ms\": 200}", &r), 0, "%s", r.error);
    cr_assert_eq(json_array_size(json_object_get(r.outputs, "notifications")), 0);
    cbx_result_clear(&r);
}

typedef struct notify_loop {
    int listener_done;
    int notifies;
    json_t *notifier;
    cbx_result listener;
} notify_loop;

static void listener_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    notify_loop *nl = ud;
    (void)ex;
    nl->listener_done = 1;
    nl->listener.status = res->status;
    nl->listener.outputs = json_incref(res->outputs);
    snprintf(nl->listener.error, sizeof nl->listener.error, "%s", res->error);
}

static void notifier_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    notify_loop *nl = ud;
    (void)ex;
    cr_assert_eq(res->status, CBX_STATUS_SUCCESS, "%s", res->error);
    nl->notifies++;
    /* the listener may not be listening yet: notify again until it has heard one */
    if (!nl->listener_done && nl->notifies < 100000)
        cbx_runtime_submit(
            rt,
            &(cbx_request){
                .executor = "postgres", .params = nl->notifier, .on_done = notifier_done, .ud = nl},
            NULL, NULL);
}

Test(postgres, listen_hears_another_session_and_leaves_the_connection_clean)
{
    notify_loop nl = {0};
    json_t *l = params("{\"listen\": \"jobs\", \"wait_ms\": 60000, \"pool_size\": 1}");
    nl.notifier = params("{\"sql\": \"SELECT pg_notify('jobs', 'ping')\", \"conninfo\": "
                         "\"application_name=notifier\"}");
    cr_assert_eq(cbx_runtime_submit(
                     rt,
                     &(cbx_request){
                         .executor = "postgres", .params = l, .on_done = listener_done, .ud = &nl},
                     NULL, NULL),
                 0);
    cr_assert_eq(cbx_runtime_submit(rt,
                                    &(cbx_request){.executor = "postgres",
                                                   .params = nl.notifier,
                                                   .on_done = notifier_done,
                                                   .ud = &nl},
                                    NULL, NULL),
                 0);
    cr_assert_eq(cbx_runtime_run(rt), 0);
    cr_assert_eq(nl.listener.status, CBX_STATUS_SUCCESS, "%s", nl.listener.error);
    const json_t *n = json_array_get(json_object_get(nl.listener.outputs, "notifications"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(n, "payload")), "ping");
    json_decref(nl.listener.outputs);
    json_decref(nl.notifier);
    json_decref(l);
    /* the listener's connection went back to the pool without its LISTEN */
    cbx_result r;
    cr_assert_eq(run("{\"sql\": \"SELECT count(*)::int AS n FROM pg_listening_channels()\", "
                     "\"pool_size\": 1}",
                     &r),
                 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(row0(&r), "n")), 0);
    cbx_result_clear(&r);
}

Test(postgres, more_statements_than_connections_wait_their_turn)
{
    enum { N = 16 };
    cbx_request reqs[N];
    cbx_result res[N];
    json_t *p = params("{\"sql\": \"SELECT pg_backend_pid() AS pid FROM pg_sleep(0.05)\", "
                       "\"pool_size\": 4}");
    for (int i = 0; i < N; i++)
        reqs[i] = (cbx_request){.executor = "postgres", .params = p};
    cr_assert_eq(cbx_runtime_execute_many(rt, reqs, N, 0, res), N);
    json_int_t pids[N];
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        pids[i] = json_integer_value(json_object_get(row0(&res[i]), "pid"));
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen |= pids[k] == pids[i];
        distinct += !seen;
        cbx_result_clear(&res[i]);
    }
    cr_assert_leq(distinct, 4, "%d connections for a pool of 4", distinct);
    json_decref(p);
}

Test(postgres, a_timeout_while_waiting_for_a_connection)
{
    /* one connection, held by a slow statement; the next waits for it and times out */
    cbx_request reqs[2];
    cbx_result res[2];
    json_t *slow = params("{\"sql\": \"SELECT pg_sleep(1) /* cbx-hold */\", \"pool_size\": 1}");
    json_t *quick = params("{\"sql\": \"SELECT 1\", \"pool_size\": 1}");
    reqs[0] = (cbx_request){.executor = "postgres", .params = slow};
    reqs[1] =
        (cbx_request){.executor = "postgres", .params = quick, .timeout_ns = 200 * CBX_NS_PER_MS};
    cr_assert_eq(cbx_runtime_execute_many(rt, reqs, 2, 0, res), 1);
    cr_assert_eq(res[0].status, CBX_STATUS_SUCCESS, "%s", res[0].error);
    cr_assert_eq(res[1].status, CBX_STATUS_TIMEOUT, "%s", res[1].error);
    cbx_result_clear(&res[0]);
    cbx_result_clear(&res[1]);
    json_decref(slow);
    json_decref(quick);
    cr_assert_eq(scalar_int("SELECT 5"), 5);
}

Test(postgres, timeouts_at_every_moment_leave_nothing_running)
{
    enum { N = 40 };
    cbx_request reqs[N];
    cbx_result res[N];
    json_t *ps[N];
    for (int i = 0; i < N; i++) {
        /* statements of 0 to 39 ms against timeouts of 1 to 20 ms: some connect, wait, run,
         * finish or are cancelled at each stage */
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT pg_sleep(%d / 1000.0) /* cbx-many */", i);
        ps[i] = params("{\"pool_size\": 4}");
        json_object_set_new(ps[i], "sql", json_string(sql));
        reqs[i] = (cbx_request){.executor = "postgres",
                                .params = ps[i],
                                .timeout_ns = (uint64_t)(1 + i % 20) * CBX_NS_PER_MS};
    }
    size_t ok = cbx_runtime_execute_many(rt, reqs, N, 0, res);
    for (int i = 0; i < N; i++) {
        cr_assert(res[i].status == CBX_STATUS_SUCCESS || res[i].status == CBX_STATUS_TIMEOUT,
                  "%d: %s %s", i, cbx_status_name(res[i].status), res[i].error);
        cbx_result_clear(&res[i]);
        json_decref(ps[i]);
    }
    cr_assert_lt(ok, (size_t)N);
    cr_assert_eq(active_with("cbx-many"), 0);
    cr_assert_eq(scalar_int("SELECT 6"), 6);
}

static void count_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    (void)res;
    (*(int *)ud)++;
}

Test(postgres, a_runtime_freed_under_running_statements_stops_them)
{
    int done = 0;
    json_t *p = params("{\"sql\": \"SELECT pg_sleep(60) /* cbx-freed */\"}");
    cbx_runtime *r2;
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&r2, NULL, &err), 0, "%s", err.msg);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(cbx_runtime_submit(r2,
                                        &(cbx_request){.executor = "postgres",
                                                       .params = p,
                                                       .on_done = count_done,
                                                       .ud = &done},
                                        NULL, NULL),
                     0);
    /* let them connect and send: run the other runtime's loop until the server shows them */
    for (int i = 0; i < 100000 && active_with("cbx-freed") < 3; i++)
        uv_run(cbx_runtime_loop(r2), UV_RUN_NOWAIT);
    cr_assert_eq(active_with("cbx-freed"), 3);
    cbx_runtime_free(r2);
    cr_assert_eq(done, 3);
    cr_assert_eq(active_with("cbx-freed"), 0, "statements still run after cbx_runtime_free");
    json_decref(p);
}
