/* The journal's files: created 0600, never through a symbolic link, and a WAL that stays short
 * however many processes open, write and close the journal one after another. */
#include "cbx/journal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
