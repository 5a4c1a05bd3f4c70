/* The postgres executor's type: its schema, checks, and the start and cancel of an attempt
 * (see pg.h for how it runs). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "executors/builtins.h"
#include "executors/db/pg.h"

static int pg_start(cbx_task *t)
{
    pg_loop *lp = cbx_task_loop_state(t);
    if (!lp)
        return -ENOMEM;
    int r = cbx__pq_load(NULL); /* loaded by validate already; answers at once */
    if (r < 0)
        return r;
    return cbx__pg_query_start(cbx_task_state(t), t, lp);
}

static void pg_cancel(cbx_task *t)
{
    cbx__pg_query_cancel(cbx_task_state(t));
}

static int check_params(const json_t *params, const char *where, cbx_err *err)
{
    if (params && !json_is_array(params))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0,
                              "%s: must be an array (bound to $1, $2, ...)", where);
    return 0;
}

static int pg_validate(const cbx_executor_type *type, const json_t *p, cbx_err *err)
{
    (void)type;
    int r = cbx__pq_load(err); /* libpq is loaded on the type's first use */
    if (r < 0)
        return r;
    const json_t *sql = json_object_get(p, "sql"), *stmts = json_object_get(p, "statements");
    if (sql && stmts)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "sql", 0, 0,
                              "postgres: give either sql or statements, not both");
    if (!sql && !stmts && !json_object_get(p, "listen"))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "sql", 0, 0,
                              "postgres: give sql, statements or listen");
    if (stmts && json_object_get(p, "params"))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "params", 0, 0,
                              "params: goes inside each of statements, not beside them");
    if ((r = check_params(json_object_get(p, "params"), "params", err)) < 0)
        return r;
    size_t i;
    const json_t *s;
    json_array_foreach(stmts, i, s)
    {
        char where[64];
        snprintf(where, sizeof where, "statements[%zu]", i);
        if (json_is_string(s))
            continue;
        if (!json_is_object(s) || !json_is_string(json_object_get(s, "sql")))
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0,
                                  "%s: must be a string or an object with sql (and params)", where);
        snprintf(where, sizeof where, "statements[%zu].params", i);
        if ((r = check_params(json_object_get(s, "params"), where, err)) < 0)
            return r;
    }
    const char *ci = json_string_value(json_object_get(p, "conninfo"));
    if (ci && ci[0]) {
        char *why = NULL;
        PQconninfoOption *o = PQconninfoParse(ci, &why);
        if (!o) {
            char line[300];
            cbx__pg_one_line(why ? why : "cannot parse", line, sizeof line);
            PQfreemem(why);
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "conninfo", 0, 0, "conninfo: %s", line);
        }
        PQconninfoFree(o);
    }
    return 0;
}

static int pg_loop_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err)
{
    (void)type;
    pg_loop *lp;
    int r = cbx__pg_loop_open(loop, &lp);
    if (r < 0)
        return cbx_err_set(err, r, "postgres: out of memory");
    *state = lp;
    return 0;
}

static void pg_loop_close(const cbx_executor_type *type, void *loop, void *state)
{
    (void)type;
    (void)loop;
    cbx__pg_loop_close(state);
}

static const cbx_param pg_params[] = {
    {.name = "conninfo",
     .type = CBX_PARAM_STRING,
     .secret = 1, /* may hold a password: journaled as *** (metadata.server shows the target) */
     .description = "a libpq connection string or URI (the other connection parameters, when "
                    "given, override its parts)"},
    {.name = "host", .type = CBX_PARAM_STRING, .description = "server host or socket directory"},
    {.name = "port",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 65535,
     .description = "server port"},
    {.name = "dbname", .type = CBX_PARAM_STRING, .description = "database name"},
    {.name = "user", .type = CBX_PARAM_STRING, .description = "role to connect as"},
    {.name = "password", .type = CBX_PARAM_STRING, .secret = 1, .description = "its password"},
    {.name = "sql", .type = CBX_PARAM_STRING, .description = "one statement (or use statements)"},
    {.name = "params",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_ANY,
     .description = "values bound to $1, $2, ... (never interpolated); objects and arrays as "
                    "JSON text"},
    {.name = "statements",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_ANY,
     .has_min = 1,
     .min = 1,
     .description = "statements run in one transaction, each a string or {sql, params}; all or "
                    "none take effect"},
    {.name = "max_rows",
     .type = CBX_PARAM_INTEGER,
     .default_json = "1000",
     .has_min = 1,
     .min = 0,
     .description = "rows kept per statement; more sets truncated (they are still received)"},
    {.name = "statement_timeout_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "cancel the statements on the server after this many ms (0: never)"},
    {.name = "connect_timeout_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "10000",
     .has_min = 1,
     .min = 1,
     .description = "how long to wait for a connection (from the pool or a new one), in ms"},
    {.name = "prepare",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "true",
     .description = "prepare a statement a connection sees again, and reuse it (false behind "
                    "PgBouncer's transaction pooling)"},
    {.name = "listen",
     .type = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .description = "LISTEN on this channel before the statements (if any), then wait for "
                    "notifications: outputs.notifications"},
    {.name = "wait_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "listen: how long to wait for notifications after the statements, in ms"},
    {.name = "max_notifications",
     .type = CBX_PARAM_INTEGER,
     .default_json = "1",
     .has_min = 1,
     .min = 0,
     .description = "listen: stop waiting once this many arrived (0: wait the whole wait_ms)"},
    {.name = "pool_size",
     .type = CBX_PARAM_INTEGER,
     .default_json = "10",
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 1000,
     .description = "connections kept per target and runtime (set by the first request)"},
    {.name = NULL},
};

static const cbx_executor_type pg_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "postgres",
    .summary = "a SQL statement or a transaction on PostgreSQL (libpq on the loop; pooled)",
    .params = pg_params,
    .task_size = sizeof(pg_query),
    .validate = pg_validate,
    .start = pg_start,
    .cancel = pg_cancel,
    .loop_init = pg_loop_init,
    .loop_close = pg_loop_close,
};

const cbx_executor_type *cbx__postgres_type(void)
{
    return &pg_type;
}
