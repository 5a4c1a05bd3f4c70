/* Opening a journal for queries only: nothing is made, written or pruned, so that a journal
 * the caller may read but not write (another user's, a read-only mount) can be queried.
 *
 * SQLite reads a WAL database read-only when its -wal and -shm files exist or can be made. When
 * they cannot (no -wal file, and a directory the caller may not write), the file is read as
 * immutable: what a checkpointed journal holds, without SQLite's locks. */
#include "runtime/journal_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "file:PATH?immutable=1", with the characters a URI path cannot hold escaped. */
static char *immutable_uri(const char *path)
{
    size_t n = strlen(path);
    char *u = malloc(3 * n + sizeof "file:?immutable=1");
    if (!u)
        return NULL;
    char *o = u + sprintf(u, "file:");
    for (const char *p = path; *p; p++) {
        if (*p == '%' || *p == '?' || *p == '#')
            o += sprintf(o, "%%%02X", (unsigned char)*p);
        else
            *o++ = *p;
    }
    memcpy(o, "?immutable=1", sizeof "?immutable=1");
    return u;
}

/* Read the marks that say this is a cbx journal of a schema this code understands. */
static int check(cbx_journal *j, cbx_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(j->db,
                                "SELECT (SELECT application_id FROM pragma_application_id),"
                                " (SELECT user_version FROM pragma_user_version),"
                                " (SELECT count(*) FROM sqlite_master)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int r = cbx_err_set(err, CBX_EJOURNAL, "journal %s: %s", j->path, sqlite3_errmsg(j->db));
        sqlite3_finalize(st);
        /* no -wal/-shm and none can be made: "unable to open" or "readonly database" */
        return (rc & 0xff) == SQLITE_CANTOPEN || (rc & 0xff) == SQLITE_READONLY ? -EACCES : r;
    }
    int64_t app = sqlite3_column_int64(st, 0), version = sqlite3_column_int64(st, 1),
            objects = sqlite3_column_int64(st, 2);
    sqlite3_finalize(st);
    if ((app != 0 && app != CBX__JOURNAL_APP_ID) || (app == 0 && objects > 0))
        return cbx_err_set(err, CBX_EJOURNAL, "journal %s: not a cbx journal", j->path);
    if (version > CBX__JOURNAL_SCHEMA)
        return cbx_err_set(err, CBX_EJOURNAL,
                           "journal %s: schema version %lld is newer than this cbx understands "
                           "(%d); use a newer cbx or another journal file",
                           j->path, (long long)version, CBX__JOURNAL_SCHEMA);
    if (version < CBX__JOURNAL_SCHEMA)
        return cbx_err_set(err, CBX_EJOURNAL,
                           "journal %s: not set up yet (open it once for writing)", j->path);
    return 0;
}

static int open_db(cbx_journal *j, const char *name, int flags, cbx_err *err)
{
    sqlite3_close_v2(j->db);
    j->db = NULL;
    if (sqlite3_open_v2(name, &j->db, flags, NULL) != SQLITE_OK)
        return cbx_err_set(err, CBX_EJOURNAL, "journal %s: %s", j->path,
                           j->db ? sqlite3_errmsg(j->db) : "out of memory");
    sqlite3_busy_timeout(j->db, CBX__JOURNAL_BUSY_MS);
    return check(j, err);
}

int cbx__journal_open_read_only(cbx_journal *j, cbx_err *err)
{
    if (access(j->path, R_OK) != 0) {
        int e = errno;
        return cbx_err_set(err, -e, "journal %s: %s", j->path, strerror(e));
    }
    int r = open_db(j, j->path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, err);
    if (r == -EACCES) {
        /* the -wal/-shm files are missing and cannot be made here */
        char *uri = immutable_uri(j->path);
        if (!uri)
            return cbx_err_set(err, -ENOMEM, "out of memory");
        r = open_db(j, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, err);
        free(uri);
    }
    if (r != 0)
        return r;
    /* the writers then fail at their first step with SQLite's "readonly database" */
    if (sqlite3_prepare_v2(j->db, "BEGIN IMMEDIATE", -1, &j->st_begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db, "COMMIT", -1, &j->st_commit, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db, "ROLLBACK", -1, &j->st_rollback, NULL) != SQLITE_OK)
        return cbx_err_set(err, CBX_EJOURNAL, "journal %s: %s", j->path, sqlite3_errmsg(j->db));
    cbx__journal_ledger_open(j);
    return 0;
}
