/* A status an execution passes through while it lasts (pending, running, retrying), written
 * over its row's status until its end replaces it. */
#include "runtime/journal_internal.h"

int cbx__journal_status_write_locked(cbx_journal *j, const char *id, const char *status,
                                     cbx_err *err)
{
    /* rare (a retry, an execution leaving the queue): prepared when used */
    static const char sql[] =
        "UPDATE executions SET status = ?2 WHERE id = ?1 AND ended_ms IS NULL";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
        return cbx__journal_fail(j, err, "prepare status");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return cbx__journal_fail(j, err, "write status");
    return 0;
}
