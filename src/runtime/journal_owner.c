/* Owners: every execution (and flow run) row carries the pid and start time of the process
 * that wrote its start, so that a row left unfinished by a process that died reads as
 * "abandoned" instead of running forever.
 *
 * The two columns are added to a journal made before them (ALTER TABLE ... ADD COLUMN: older
 * cbx versions read such a journal as before). Queries compute the status through the SQL
 * function cbx_owner_alive(pid, start): see CBX__STATUS_SQL. cbx_owner_pid() and
 * cbx_owner_start() give this process's, to the SQL of other modules (flow runs). */
#include "runtime/journal_internal.h"

#include "core/proc.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void owner_alive(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        sqlite3_result_int(ctx, 1); /* no owner recorded: assume it lives */
        return;
    }
    int pid = sqlite3_value_int(argv[0]);
    uint64_t start = (uint64_t)sqlite3_value_int64(argv[1]);
    sqlite3_result_int(ctx, cbx__proc_alive(pid, start) != 0); /* unknown counts as alive */
}

/* cbx_owner_pid(), cbx_owner_start(): this process, for records other modules write (flow runs) */
static void owner_pid(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc, (void)argv;
    const cbx_journal *j = sqlite3_user_data(ctx);
    sqlite3_result_int(ctx, j->owner_pid);
}

static void owner_start(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc, (void)argv;
    const cbx_journal *j = sqlite3_user_data(ctx);
    sqlite3_result_int64(ctx, (sqlite3_int64)j->owner_start);
}

/* From the schema SQLite has already parsed (sqlite3_table_column_metadata): no statement is
 * prepared, so a warm journal's open parses no SQL for these checks. */
static int has_column(sqlite3 *db, const char *table, const char *column)
{
    return sqlite3_table_column_metadata(db, "main", table, column, NULL, NULL, NULL, NULL, NULL) ==
           SQLITE_OK;
}

static int table_exists(sqlite3 *db, const char *table)
{
    return has_column(db, table, NULL);
}

int cbx__journal_table_exists(sqlite3 *db, const char *table)
{
    return table_exists(db, table);
}

int cbx__journal_owner_add_columns(sqlite3 *db, const char *table)
{
    if (!table_exists(db, table) || has_column(db, table, "owner_pid"))
        return 0;
    char sql[160];
    snprintf(sql, sizeof sql,
             "ALTER TABLE %s ADD COLUMN owner_pid INTEGER;"
             "ALTER TABLE %s ADD COLUMN owner_start INTEGER",
             table, table);
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int cbx__journal_owner_setup(cbx_journal *j, cbx_err *err)
{
    j->owner_pid = (int)getpid();
    if (cbx__proc_start_ticks(j->owner_pid, &j->owner_start) < 0)
        j->owner_start = 0;
    if (sqlite3_create_function(j->db, "cbx_owner_alive", 2, SQLITE_UTF8, NULL, owner_alive, NULL,
                                NULL) != SQLITE_OK ||
        sqlite3_create_function(j->db, "cbx_owner_pid", 0, SQLITE_UTF8, j, owner_pid, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_create_function(j->db, "cbx_owner_start", 0, SQLITE_UTF8, j, owner_start, NULL,
                                NULL) != SQLITE_OK)
        return cbx__journal_fail(j, err, "the owner functions");
    if (!j->read_only && cbx__journal_owner_add_columns(j->db, "executions") != 0)
        return cbx__journal_fail(j, err, "add the owner columns");
    j->has_owner = has_column(j->db, "executions", "owner_pid");
    return 0;
}

const char *cbx__journal_status_sql(const cbx_journal *j)
{
    return j->has_owner ? CBX__STATUS_SQL : "status";
}

int cbx__journal_has_flow_runs(cbx_journal *j)
{
    cbx__journal_lock(j);
    int yes = table_exists(j->db, "flow_runs");
    pthread_mutex_unlock(&j->mu);
    return yes;
}
