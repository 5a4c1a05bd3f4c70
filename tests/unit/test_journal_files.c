/* The journal's files: created 0600, never through a symbolic link, and a WAL that stays short
 * however many processes open, write and close the journal one after another. */
#include "cbx/journal.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cbx-journal-files-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tree(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

static mode_t file_mode(const char *path)
{
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
    return st.st_mode & 0777;
}

Test(journal_files, database_wal_and_shm_are_0600_whatever_the_umask)
{
    make_tmpdir();
    char path[300], side[320];
    snprintf(path, sizeof path, "%s/j.db", tmpdir);
    mode_t old = umask(0);
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    umask(old);
    cbx_journal_execution e = {.id = "a", .executor = "command", .submitted_ms = 1};
    cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_eq(file_mode(path), 0600, "journal mode %o", file_mode(path));
    snprintf(side, sizeof side, "%s-wal", path);
    cr_assert_eq(file_mode(side), 0600, "WAL mode %o", file_mode(side));
    snprintf(side, sizeof side, "%s-shm", path);
    cr_assert_eq(file_mode(side), 0600, "shm mode %o", file_mode(side));
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

/* A link in the journal's place (to a file of the victim's, or to nowhere yet) is refused and
 * its target left alone: neither created nor written. */
Test(journal_files, a_symbolic_link_in_its_place_is_refused)
{
    make_tmpdir();
    char path[300], target[300], dangling[300];
    snprintf(path, sizeof path, "%s/journal.db", tmpdir);
    snprintf(target, sizeof target, "%s/victim", tmpdir);
    snprintf(dangling, sizeof dangling, "%s/not-yet", tmpdir);
    FILE *fp = fopen(target, "w");
    cr_assert_not_null(fp);
    fputs("precious\n", fp);
    fclose(fp);

    cr_assert_eq(symlink(target, path), 0);
    cbx_journal *j = (cbx_journal *)1;
    cbx_err err;
    int r = cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err);
    cr_assert_eq(r, -ELOOP, "%d %s", r, err.msg);
    cr_assert_null(j);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "symbolic link") != NULL, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(target, &st), 0);
    cr_assert_eq(st.st_size, 9, "the link's target was changed");

    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(symlink(dangling, path), 0);
    r = cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err);
    cr_assert_eq(r, -ELOOP, "%d %s", r, err.msg);
    cr_assert_neq(access(dangling, F_OK), 0, "the link's target was created");
    remove_tree(tmpdir);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Past 1 MiB of WAL, a close copies it into the database and removes it; but not while another
 * connection has the journal open (nor does the close wait for it): the next close alone does. */
Test(journal_files, close_cuts_a_long_wal_unless_another_connection_is_open)
{
    make_tmpdir();
    char path[300], wal[320];
    snprintf(path, sizeof path, "%s/j.db", tmpdir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    cbx_err err;
    cbx_journal *j = NULL;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    /* another connection that holds a read transaction open on the first commit */
    sqlite3 *reader = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open(path, &reader), SQLITE_OK);
    /* as the journal's own connections: its close leaves the WAL alone */
    sqlite3_db_config(reader, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    cr_assert_eq(sqlite3_prepare_v2(reader, "SELECT id FROM executions", -1, &st, NULL), SQLITE_OK);
    char big[2048];
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    json_t *params = json_pack("{s:s}", "blob", big);
    for (int i = 0; i < 2000; i++) {
        char id[32];
        snprintf(id, sizeof id, "x-%05d", i);
        cbx_journal_execution e = {
            .id = id, .executor = "command", .params = params, .submitted_ms = 1000 + i};
        cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
        if (i == 0) {
            cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
            cr_assert_eq(sqlite3_step(st), SQLITE_ROW); /* the read transaction stays open */
        }
    }
    json_decref(params);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cbx_journal_close(j);
    long held = file_size(wal);
    cr_assert_gt(held, 1024L * 1024, "the WAL (%ld bytes) was cut while a reader had it open",
                 held);

    sqlite3_finalize(st);
    sqlite3_close(reader);
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    cbx_journal_close(j);
    cr_assert_eq(file_size(wal), 0, "the WAL has %ld bytes after a close alone", file_size(wal));
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM executions", -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 2000);
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_tree(tmpdir);
}

/* A close made while the flusher sleeps, waits for a commit, or has just committed the batch
 * (0 to 6 ms after the first write; it commits at 5), or right after cbx_journal_commit_soon:
 * every execution is kept whole, and the next open finds the file as the close left it. */
Test(journal_files, short_handles_closed_at_every_moment_of_the_flusher_keep_everything)
{
    make_tmpdir();
    char path[300];
    snprintf(path, sizeof path, "%s/j.db", tmpdir);
    cbx_err err;
    enum { N = 140 };
    for (int i = 0; i < N; i++) {
        cbx_journal *j = NULL;
        cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s",
                     err.msg);
        char id[32];
        snprintf(id, sizeof id, "s-%04d", i);
        cbx_journal_execution e = {.id = id, .executor = "command", .submitted_ms = 1000 + i};
        cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
        if (i % 2 == 1)
            cr_assert_eq(cbx_journal_commit_soon(j, &err), 0, "%s", err.msg);
        long ms = (i / 2) % 7;
        if (ms)
            nanosleep(&(struct timespec){0, ms * 1000000L}, NULL);
        cbx_journal_end end = {
            .execution_id = id, .status = "success", .attempts = 1, .ended_ms = 2000 + i};
        cr_assert_eq(cbx_journal_execution_end(j, &end, &err), 0, "%s", err.msg);
        cbx_journal_close(j);
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT count(*), sum(status = 'success'),"
                                    " sum(submitted_ms = 1000 + CAST(substr(id, 3) AS INTEGER))"
                                    " FROM executions",
                                    -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), N);
    cr_assert_eq(sqlite3_column_int(st, 1), N, "an end was lost");
    cr_assert_eq(sqlite3_column_int(st, 2), N, "a start was lost");
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_tree(tmpdir);
}

static int has_object(const char *path, const char *name)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = ?1", -1, &st, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* The status index that journals of an earlier cbx have (no query used it) goes at the first open
 * that may write, and what the journal holds is all there after it. */
Test(journal_files, the_unused_status_index_of_an_older_journal_is_dropped)
{
    make_tmpdir();
    char path[300];
    snprintf(path, sizeof path, "%s/j.db", tmpdir);
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    cbx_journal_execution e = {.id = "a", .executor = "command", .submitted_ms = 1};
    cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
    cbx_journal_close(j);
    cr_assert_eq(has_object(path, "executions_status"), 0, "a new journal has it");
    /* as an earlier cbx made it */
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE INDEX executions_status ON executions(status, submitted_ms)",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    cr_assert_eq(has_object(path, "executions_status"), 1);

    j = NULL;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    cr_assert_eq(has_object(path, "executions_status"), 0, "the open kept it");
    json_t *row = NULL;
    cr_assert_eq(cbx_journal_get(j, "a", &row, &err), 0, "%s", err.msg);
    cr_assert_str_eq(json_string_value(json_object_get(row, "status")), "running");
    json_decref(row);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

/* The retention epoch: new for every handle and at every retention pass, steady in between. */
Test(journal_files, the_retention_epoch_changes_at_each_pass_and_each_open)
{
    make_tmpdir();
    char path[300];
    snprintf(path, sizeof path, "%s/j.db", tmpdir);
    cbx_journal *a = NULL, *b = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&a, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_open(&b, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    uint64_t ea = cbx_journal_retention_epoch(a), eb = cbx_journal_retention_epoch(b);
    cr_assert_neq(ea, 0);
    cr_assert_neq(ea, eb, "two handles share an epoch");
    cbx_journal_execution e = {.id = "a", .executor = "command", .submitted_ms = 1};
    cr_assert_eq(cbx_journal_execution_start(a, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(a, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_retention_epoch(a), ea, "a write changed it");
    cr_assert_eq(cbx_journal_prune(a, &err), 0, "%s", err.msg);
    cr_assert_neq(cbx_journal_retention_epoch(a), ea, "a retention pass kept it");
    cr_assert_neq(cbx_journal_retention_epoch(a), eb);
    cr_assert_eq(cbx_journal_retention_epoch(NULL), 0);
    cbx_journal_close(a);
    cbx_journal_close(b);
    remove_tree(tmpdir);
}
