/* Retention by size, and the retention cut other modules' records follow.
 *
 * Size: the database's pages in use ((page_count - freelist_count) * page_size, two header
 * reads) are compared with max_bytes whenever retention is checked; over it, the oldest
 * executions are deleted in a few rounds, each estimating from the rows and bytes left how many
 * must go to come under 90% of the bound (so that the next writes do not prune again at once).
 * Freed pages are reused by later writes: the file stops growing at about max_bytes, plus the
 * WAL.
 *
 * The cut: every deletion by retention records, in the one-row table journal_retention, the
 * submitted_ms below which every execution is gone. A flow run that ended before it has lost all
 * its executions, and goes too (flow_journal.c). Nothing is cut until retention has deleted
 * something: the oldest execution kept says nothing about a journal that was never pruned. A
 * handle's retention epoch changes at its open and at each of its retention passes, so that a
 * module looks for what a cut left behind once per pass rather than at every record (another
 * process's cut is seen at the next pass). */
#include "runtime/journal_internal.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>

uint64_t cbx__journal_new_epoch(void)
{
    static atomic_uint_fast64_t last;
    return (uint64_t)atomic_fetch_add(&last, 1) + 1;
}

static const char retention_sql[] =
    "CREATE TABLE IF NOT EXISTS journal_retention("
    " id INTEGER PRIMARY KEY CHECK (id = 1), cut_ms INTEGER NOT NULL)";

int cbx__journal_retention_setup_locked(cbx_journal *j, cbx_err *err)
{
    if (j->retention_ready)
        return 0;
    /* on a warm journal the table is there: no CREATE statement to parse */
    if (!cbx__journal_table_exists(j->db, "journal_retention") &&
        sqlite3_exec(j->db, retention_sql, NULL, NULL, NULL) != SQLITE_OK)
        return cbx__journal_fail(j, err, "create journal_retention");
    j->retention_ready = 1;
    return 0;
}

/* The cut is the oldest execution kept (every older one is gone), or cut_ms when none is. */
int cbx__journal_note_cut_locked(cbx_journal *j, int64_t cut_ms, cbx_err *err)
{
    sqlite3_stmt *st = NULL;
    int r = 0;
    if (sqlite3_prepare_v2(j->db,
                           "INSERT INTO journal_retention(id, cut_ms)"
                           " VALUES(1, coalesce((SELECT min(submitted_ms) FROM executions), ?1))"
                           " ON CONFLICT(id) DO UPDATE SET cut_ms = max(cut_ms, excluded.cut_ms)",
                           -1, &st, NULL) != SQLITE_OK)
        return cbx__journal_fail(j, err, "retention cut");
    sqlite3_bind_int64(st, 1, cut_ms);
    if (sqlite3_step(st) != SQLITE_DONE)
        r = cbx__journal_fail(j, err, "retention cut");
    sqlite3_finalize(st);
    return r;
}

static int query_i64(cbx_journal *j, const char *sql, int64_t arg, int64_t *a, int64_t *b,
                     int *have, cbx_err *err)
{
    sqlite3_stmt *st = NULL;
    *have = 0;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
        return cbx__journal_fail(j, err, "retention by size");
    if (sqlite3_bind_parameter_count(st) >= 1)
        sqlite3_bind_int64(st, 1, arg);
    int rc = sqlite3_step(st), r = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *have = 1;
        *a = sqlite3_column_int64(st, 0);
        if (b)
            *b = sqlite3_column_count(st) > 1 ? sqlite3_column_int64(st, 1) : 0;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        r = cbx__journal_fail(j, err, "retention by size");
    }
    sqlite3_finalize(st);
    return r;
}

/* The bytes of the database's pages in use. */
static int used_bytes(cbx_journal *j, uint64_t *out, cbx_err *err)
{
    int64_t pages = 0, free_pages = 0, size = 0;
    int have = 0, r;
    if ((r = query_i64(j, "PRAGMA page_count", 0, &pages, NULL, &have, err)) != 0 ||
        (r = query_i64(j, "PRAGMA freelist_count", 0, &free_pages, NULL, &have, err)) != 0 ||
        (r = query_i64(j, "PRAGMA page_size", 0, &size, NULL, &have, err)) != 0)
        return r;
    *out = pages > free_pages ? (uint64_t)(pages - free_pages) * (uint64_t)size : 0;
    return 0;
}

#define SIZE_ROUNDS 8

/* Outside a transaction, the pages in use are never more than the database file and its WAL
 * hold together (a page the WAL adds past the file's end is a frame of the WAL): two stats,
 * where the three PRAGMAs would be three statements to parse in a process that opens the
 * journal once. Inside a batch, pages not yet written anywhere may be in use: no shortcut. */
static int surely_under(const cbx_journal *j)
{
    if (!j->wal || !sqlite3_get_autocommit(j->db))
        return 0;
    char wal[PATH_MAX];
    struct stat db_st, wal_st;
    int n = snprintf(wal, sizeof wal, "%s-wal", j->path);
    if (n < 0 || (size_t)n >= sizeof wal || stat(j->path, &db_st) != 0)
        return 0;
    uint64_t total = (uint64_t)db_st.st_size;
    if (stat(wal, &wal_st) == 0)
        total += (uint64_t)wal_st.st_size;
    return total <= j->max_bytes;
}

int cbx__journal_prune_size_locked(cbx_journal *j, cbx_err *err)
{
    if (j->max_bytes == UINT64_MAX || surely_under(j))
        return 0;
    uint64_t used = 0;
    int r = used_bytes(j, &used, err);
    if (r != 0 || used <= j->max_bytes)
        return r;
    uint64_t target = j->max_bytes / 10 * 9;
    for (int round = 0; round < SIZE_ROUNDS && used > target; round++) {
        int64_t n = 0, cut_ms = 0, cut_rowid = 0;
        int have = 0;
        if ((r = query_i64(j, "SELECT count(*) FROM executions", 0, &n, NULL, &have, err)) != 0)
            return r;
        if (n == 0)
            return 0; /* what is left is not the executions': other modules' records */
        /* the share of the rows to delete is the share of the bytes to free, and a little more */
        uint64_t k = (uint64_t)((double)n * (double)(used - target) / (double)used) + 1;
        if (k > (uint64_t)n)
            k = (uint64_t)n;
        if ((r = query_i64(j,
                           "SELECT submitted_ms, rowid FROM executions ORDER BY submitted_ms, rowid"
                           " LIMIT 1 OFFSET ?1",
                           (int64_t)k - 1, &cut_ms, &cut_rowid, &have, err)) != 0 ||
            !have)
            return r;
        if ((r = cbx__journal_begin_locked(j, err)) != 0 ||
            (r = cbx__journal_delete_upto_locked(j, cut_ms, cut_rowid, NULL, err)) != 0 ||
            (r = cbx__journal_note_cut_locked(j, cut_ms + 1, err)) != 0 ||
            (r = used_bytes(j, &used, err)) != 0)
            return r;
    }
    return 0;
}
