/* Statements kept by a journal handle for the modules that write through it, and commit
 * listeners for as many flow runs as share a handle. */
#include "cbx/journal.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <string.h>

static cbx_journal *open_mem(void)
{
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = ":memory:"}, &err), 0, "%s",
                 err.msg);
    return j;
}

static const char create_sql[] = "CREATE TABLE IF NOT EXISTS t(x INTEGER)";
static const char insert_sql[] = "INSERT INTO t(x) VALUES(?1)";
static const char count_sql[] = "SELECT count(*) FROM t";
static const char bad_sql[] = "INSERT INTO no_such_table VALUES(1)";

typedef struct use {
    cbx_journal *j;
    const char *sql;
    sqlite3_stmt *st;
    int x;
} use;

static int create(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)ud;
    (void)err;
    return sqlite3_exec(db, create_sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : CBX_EJOURNAL;
}

static int insert(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)db;
    use *u = ud;
    int r = cbx_journal_stmt(u->j, u->sql, &u->st, err);
    if (r != 0)
        return r;
    sqlite3_bind_int(u->st, 1, u->x);
    r = sqlite3_step(u->st) == SQLITE_DONE ? 0 : CBX_EJOURNAL;
    sqlite3_reset(u->st);
    return r;
}

static int count(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)db;
    use *u = ud;
    int r = cbx_journal_stmt(u->j, count_sql, &u->st, err);
    if (r != 0)
        return r;
    r = sqlite3_step(u->st) == SQLITE_ROW ? 0 : CBX_EJOURNAL;
    u->x = sqlite3_column_int(u->st, 0);
    sqlite3_reset(u->st);
    return r;
}

Test(journal_stmt, prepared_once_per_handle_and_kept)
{
    cbx_journal *j = open_mem();
    cbx_err err;
    cr_assert_eq(cbx_journal_write_db(j, create, NULL, NULL, &err), 0, "%s", err.msg);
    use u = {.j = j, .sql = insert_sql};
    sqlite3_stmt *first = NULL;
    for (int i = 0; i < 100; i++) {
        u.x = i;
        cr_assert_eq(cbx_journal_write_db(j, insert, &u, NULL, &err), 0, "%s", err.msg);
        if (i == 0)
            first = u.st;
        cr_assert_eq(u.st, first, "prepared again at use %d", i);
    }
    cr_assert_eq(sqlite3_stmt_status(first, SQLITE_STMTSTATUS_RUN, 0), 100);
    use c = {.j = j};
    cr_assert_eq(cbx_journal_read_db(j, count, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.x, 100);
    cr_assert_neq(c.st, first, "two texts, two statements");
    cbx_journal_close(j); /* finalizes them: ASan reports a leak otherwise */
}

Test(journal_stmt, bad_sql_is_an_error_and_nothing_is_kept)
{
    cbx_journal *j = open_mem();
    cbx_err err;
    use u = {.j = j, .sql = bad_sql};
    cr_assert_eq(cbx_journal_write_db(j, insert, &u, NULL, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, "no_such_table") != NULL, "%s", err.msg);
    cr_assert_null(u.st);
    cbx_journal_close(j);
}

static void on_commit(void *ud)
{
    (*(int *)ud)++;
}

/* cbx run --batch --parallel N shares one handle among N flow runs, each listening. */
Test(journal_stmt, a_hundred_commit_listeners_on_one_handle)
{
    cbx_journal *j = open_mem();
    cbx_err err;
    int calls[100] = {0};
    for (int i = 0; i < 100; i++)
        cr_assert_eq(cbx_journal_on_commit(j, on_commit, &calls[i], &err), 0, "%d: %s", i, err.msg);
    cbx_journal_execution e = {.id = "a", .executor = "command", .submitted_ms = 1};
    cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(calls[i], 1, "listener %d called %d times", i, calls[i]);
    for (int i = 0; i < 100; i++)
        cbx_journal_on_commit_remove(j, on_commit, &calls[i]);
    cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(calls[i], 1, "listener %d called after its removal", i);
    cbx_journal_close(j);
}
