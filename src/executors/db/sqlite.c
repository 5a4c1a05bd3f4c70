/* The sqlite executor: one statement, or several in a transaction, against a database file, with
 * bound parameters (never interpolated), rows as JSON objects. Blocking: run() works on the
 * loop's thread pool; a cancel interrupts the statement through SQLite's progress handler. */
#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbx/executor.h"
#include "executors/builtins.h"

/* How many virtual machine steps SQLite runs between two looks at the cancel flag. */
#define PROGRESS_STEPS 1000

typedef struct sq_run {
    cbx_task *t;
    sqlite3 *db;
    json_int_t max_rows;
    cbx_err *err;
} sq_run;

static int progress(void *ud)
{
    return cbx_task_cancelled(((sq_run *)ud)->t); /* non-zero interrupts the statement */
}

static const char *hex = "0123456789abcdef";

/* A column of the current row as JSON; BLOBs as lowercase hex text. NULL when out of memory. */
static json_t *column_value(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_integer((json_int_t)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, i));
    case SQLITE_NULL:
        return json_null();
    case SQLITE_BLOB: {
        const unsigned char *b = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        char *s = malloc(2 * n + 1);
        if (!s)
            return NULL;
        for (size_t k = 0; k < n; k++) {
            s[2 * k] = hex[b[k] >> 4];
            s[2 * k + 1] = hex[b[k] & 15];
        }
        json_t *v = json_stringn(s, 2 * n);
        free(s);
        return v;
    }
    default: {
        const char *s = (const char *)sqlite3_column_text(st, i);
        int n = sqlite3_column_bytes(st, i);
        json_t *v = json_stringn(s ? s : "", (size_t)n);
        /* text that is not UTF-8 comes back as a string of its bytes' hex rather than failing */
        if (!v && s) {
            char *h = malloc(2 * (size_t)n + 1);
            if (!h)
                return NULL;
            for (size_t k = 0; k < (size_t)n; k++) {
                h[2 * k] = hex[(unsigned char)s[k] >> 4];
                h[2 * k + 1] = hex[(unsigned char)s[k] & 15];
            }
            v = json_stringn(h, 2 * (size_t)n);
            free(h);
        }
        return v;
    }
    }
}

static int bind_one(sqlite3_stmt *st, int i, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        return sqlite3_bind_null(st, i);
    case JSON_TRUE:
        return sqlite3_bind_int(st, i, 1);
    case JSON_FALSE:
        return sqlite3_bind_int(st, i, 0);
    case JSON_INTEGER:
        return sqlite3_bind_int64(st, i, (sqlite3_int64)json_integer_value(v));
    case JSON_REAL:
        return sqlite3_bind_double(st, i, json_real_value(v));
    case JSON_STRING:
        return sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v),
                                 SQLITE_TRANSIENT);
    default: { /* arrays and objects as JSON text (for SQLite's json functions) */
        char *s = json_dumps(v, JSON_COMPACT);
        if (!s)
            return SQLITE_NOMEM;
        return sqlite3_bind_text(st, i, s, -1, free);
    }
    }
}

/* Bind params (an array: positional ?NNN in order; an object: :name, @name or $name by name,
 * with or without the prefix). where names the parameter for errors ("params"). */
static int bind_all(sq_run *r, sqlite3_stmt *st, const json_t *params, const char *where)
{
    int n = sqlite3_bind_parameter_count(st);
    if (!params || json_is_null(params)) {
        if (n > 0)
            return cbx_err_set(r->err, CBX_EINVAL_CONFIG,
                               "sqlite: %s: the statement has %d parameter(s) and none were given",
                               where, n);
        return 0;
    }
    if (json_is_array(params)) {
        if ((int)json_array_size(params) != n)
            return cbx_err_set(
                r->err, CBX_EINVAL_CONFIG,
                "sqlite: %s: %zu value(s) given for a statement with %d parameter(s)", where,
                json_array_size(params), n);
        for (int i = 1; i <= n; i++)
            if (bind_one(st, i, json_array_get(params, (size_t)i - 1)) != SQLITE_OK)
                return cbx_err_set(r->err, CBX_EFAILED, "sqlite: %s[%d]: %s", where, i - 1,
                                   sqlite3_errmsg(r->db));
        return 0;
    }
    if (!json_is_object(params))
        return cbx_err_set(r->err, CBX_EINVAL_CONFIG, "sqlite: %s: must be an array or an object",
                           where);
    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        if (!name)
            return cbx_err_set(
                r->err, CBX_EINVAL_CONFIG,
                "sqlite: %s: parameter %d of the statement is positional; give an array", where, i);
        const json_t *v = json_object_get(params, name);
        if (!v)
            v = json_object_get(params, name + 1);
        if (!v)
            return cbx_err_set(r->err, CBX_EINVAL_CONFIG, "sqlite: %s: no value for %s", where,
                               name);
        if (bind_one(st, i, v) != SQLITE_OK)
            return cbx_err_set(r->err, CBX_EFAILED, "sqlite: %s.%s: %s", where, name + 1,
                               sqlite3_errmsg(r->db));
    }
    return 0;
}

static int sql_error(sq_run *r, const char *where, const char *sql)
{
    if (cbx_task_cancelled(r->t))
        return cbx_err_set(r->err, CBX_ECANCELLED, "sqlite: interrupted");
    int off = sqlite3_error_offset(r->db);
    if (off >= 0 && sql)
        return cbx_err_set(r->err, CBX_EFAILED, "sqlite: %s: %s (at offset %d)", where,
                           sqlite3_errmsg(r->db), off);
    return cbx_err_set(r->err, CBX_EFAILED, "sqlite: %s: %s", where, sqlite3_errmsg(r->db));
}

/* Run one statement: {columns, rows, row_count, truncated, changes, last_insert_rowid} into
 * *out. where is the parameter path of the statement ("sql", "statements[2]"). */
static int run_statement(sq_run *r, const char *sql, const json_t *params, const char *where,
                         json_t **out)
{
    char pwhere[96];
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc;
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, &tail) != SQLITE_OK)
        return sql_error(r, where, sql);
    if (!st)
        return cbx_err_set(r->err, CBX_EINVAL_CONFIG, "sqlite: %s: no statement", where);
    for (const char *p = tail; p && *p; p++)
        if (!strchr(" \t\r\n;", *p)) {
            sqlite3_finalize(st);
            return cbx_err_set(r->err, CBX_EINVAL_CONFIG,
                               "sqlite: %s: more than one statement; give them as statements",
                               where);
        }
    snprintf(pwhere, sizeof pwhere, "%s%s", strcmp(where, "sql") ? where : "",
             strcmp(where, "sql") ? ".params" : "params");
    if ((rc = bind_all(r, st, params, pwhere)) < 0) {
        sqlite3_finalize(st);
        return rc;
    }
    int ncol = sqlite3_column_count(st);
    json_t *res = json_object(), *cols = json_array(), *rows = json_array();
    if (!res || !cols || !rows)
        goto oom;
    for (int i = 0; i < ncol; i++)
        json_array_append_new(cols, json_string(sqlite3_column_name(st, i)));
    json_int_t count = 0;
    int truncated = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count >= r->max_rows) {
            truncated = 1; /* stop reading: a full scan would only be thrown away */
            break;
        }
        json_t *row = json_object();
        if (!row)
            goto oom;
        for (int i = 0; i < ncol; i++) {
            json_t *v = column_value(st, i);
            if (!v) {
                json_decref(row);
                goto oom;
            }
            json_object_set_new(row, sqlite3_column_name(st, i), v);
        }
        json_array_append_new(rows, row);
        count++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(res);
        json_decref(cols);
        json_decref(rows);
        rc = sql_error(r, where, NULL);
        sqlite3_finalize(st);
        return rc;
    }
    int readonly = sqlite3_stmt_readonly(st);
    sqlite3_finalize(st);
    json_object_set_new(res, "columns", cols);
    json_object_set_new(res, "rows", rows);
    json_object_set_new(res, "row_count", json_integer(count));
    json_object_set_new(res, "truncated", json_boolean(truncated));
    json_object_set_new(res, "changes",
                        json_integer(readonly ? 0 : (json_int_t)sqlite3_changes64(r->db)));
    json_object_set_new(res, "last_insert_rowid",
                        json_integer((json_int_t)sqlite3_last_insert_rowid(r->db)));
    *out = res;
    return 0;
oom:
    json_decref(res);
    json_decref(cols);
    json_decref(rows);
    sqlite3_finalize(st);
    return cbx_err_set(r->err, -ENOMEM, "sqlite: out of memory");
}

static int exec_plain(sq_run *r, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    int rc = cbx_err_set(r->err, CBX_EFAILED, "sqlite: %s: %s", sql, msg ? msg : "failed");
    sqlite3_free(msg);
    return rc;
}

/* statements in one transaction: {results: [...]}; rolled back when one fails. */
static int run_transaction(sq_run *r, const json_t *stmts, json_t **out, int read_only)
{
    /* IMMEDIATE: take the write lock up front, so that two writers wait (busy_timeout_ms)
     * rather than one failing midway with SQLITE_BUSY */
    int rc = exec_plain(r, read_only ? "BEGIN" : "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    json_t *results = json_array();
    size_t i;
    const json_t *s;
    json_array_foreach(stmts, i, s)
    {
        char where[48];
        snprintf(where, sizeof where, "statements[%zu]", i);
        const json_t *sql = json_is_string(s) ? s : json_object_get(s, "sql");
        json_t *one = NULL;
        rc = run_statement(r, json_string_value(sql), json_object_get(s, "params"), where, &one);
        if (rc < 0)
            break;
        json_array_append_new(results, one);
    }
    if (rc < 0) {
        cbx_err keep = *r->err; /* the statement's error, not the rollback's */
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        *r->err = keep;
        json_decref(results);
        return rc;
    }
    if ((rc = exec_plain(r, "COMMIT")) < 0) {
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        json_decref(results);
        return rc;
    }
    *out = json_pack("{s:o, s:b}", "results", results, "committed", 1);
    return 0;
}

static cbx_outcome sqlite_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    const json_t *p = cbx_task_params(t);
    const char *path = json_string_value(json_object_get(p, "database"));
    int read_only = json_is_true(json_object_get(p, "read_only"));
    sq_run r = {.t = t, .err = err};
    r.max_rows = json_integer_value(json_object_get(p, "max_rows"));
    int flags =
        SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI |
        (read_only ? SQLITE_OPEN_READONLY
                   : SQLITE_OPEN_READWRITE |
                         (json_is_false(json_object_get(p, "create")) ? 0 : SQLITE_OPEN_CREATE));
    int rc;
    if (sqlite3_open_v2(path, &r.db, flags, NULL) != SQLITE_OK) {
        cbx_err_set(err, CBX_EFAILED, "sqlite: database %s: %s", path,
                    r.db ? sqlite3_errmsg(r.db) : "out of memory");
        sqlite3_close(r.db);
        return CBX_OUTCOME_ERROR;
    }
    sqlite3_busy_timeout(r.db, (int)json_integer_value(json_object_get(p, "busy_timeout_ms")));
    sqlite3_progress_handler(r.db, PROGRESS_STEPS, progress, &r);
    if (read_only) /* also refuses writes to attached or temporary databases */
        sqlite3_exec(r.db, "PRAGMA query_only = 1", NULL, NULL, NULL);

    json_t *out = NULL;
    const json_t *stmts = json_object_get(p, "statements");
    if (stmts)
        rc = run_transaction(&r, stmts, &out, read_only);
    else
        rc = run_statement(&r, json_string_value(json_object_get(p, "sql")),
                           json_object_get(p, "params"), "sql", &out);
    sqlite3_close(r.db);
    if (rc < 0)
        return rc == CBX_ECANCELLED ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR;
    *outputs = out;
    *metadata = json_pack("{s:s, s:b}", "database", path, "read_only", read_only);
    return CBX_OUTCOME_SUCCESS;
}

static int sqlite_validate(const cbx_executor_type *type, const json_t *p, cbx_err *err)
{
    (void)type;
    const json_t *sql = json_object_get(p, "sql"), *stmts = json_object_get(p, "statements");
    const json_t *params = json_object_get(p, "params");
    if (!sql == !stmts)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "sql", 0, 0,
                              "sqlite: give either sql or statements");
    if (params && !json_is_array(params) && !json_is_object(params))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "params", 0, 0,
                              "params: must be an array (?) or an object (:name)");
    if (stmts && params)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "params", 0, 0,
                              "params: goes inside each of statements, not beside them");
    size_t i;
    const json_t *s;
    json_array_foreach(stmts, i, s)
    {
        char where[48];
        snprintf(where, sizeof where, "statements[%zu]", i);
        if (json_is_string(s))
            continue;
        const json_t *ps = json_object_get(s, "params");
        if (!json_is_object(s) || !json_is_string(json_object_get(s, "sql")))
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0,
                                  "%s: must be a string or an object with sql (and params)", where);
        if (ps && !json_is_array(ps) && !json_is_object(ps))
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0,
                                  "%s.params: must be an array or an object", where);
    }
    return 0;
}

static const cbx_param sqlite_params[] = {
    {.name = "database",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .has_min = 1,
     .min = 1,
     .description = "the database file (a path, a file: URI, or :memory:)"},
    {.name = "sql", .type = CBX_PARAM_STRING, .description = "one statement (or use statements)"},
    {.name = "params",
     .type = CBX_PARAM_ANY,
     .description = "values bound to sql: an array for ?, an object for :name/@name/$name"},
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
     .description = "rows kept per statement; more sets truncated"},
    {.name = "read_only",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "false",
     .description = "open the database read-only: writes fail"},
    {.name = "create",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "true",
     .description = "create the file when missing (not with read_only)"},
    {.name = "busy_timeout_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "5000",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 3600000,
     .description = "how long to wait for another connection's lock, in ms"},
    {.name = NULL},
};

static const cbx_executor_type sqlite_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "sqlite",
    .summary = "a SQL statement or a transaction against an SQLite database file",
    .params = sqlite_params,
    .validate = sqlite_validate,
    .run = sqlite_run,
};

const cbx_executor_type *cbx__sqlite_type(void)
{
    return &sqlite_type;
}
