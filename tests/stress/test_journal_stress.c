/* The journal's queue under threads: four writers hand executions (start, status, attempt, end)
 * to one file-backed handle (two of them never flush: they fill the queue, and wait for the
 * flusher to take it) while another thread writes records of its own through
 * cbx_journal_write_db, waits for their batches to commit and queries; the flusher thread writes
 * and commits the queued writes meanwhile. Afterwards every execution is in the journal, whole
 * and in its final state, every record of the other thread too, and nothing was lost. Run under
 * ThreadSanitizer (-DCBX_SANITIZE=thread) for the data races. */
#include "stress.h"

#include "cbx/journal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WRITERS    4
#define PER_WRITER 4000
#define RECORDS    300

static cbx_journal *j;
static atomic_int commits;

static void *writer(void *arg)
{
    int who = (int)(intptr_t)arg;
    for (int i = 0; i < PER_WRITER; i++) {
        char id[32];
        snprintf(id, sizeof id, "w%d-%05d", who, i);
        json_t *params = json_pack("{s:i, s:s, s:s}", "n", i, "api_key", "secret", "url", "x");
        cbx_journal_execution e = {.id = id,
                                   .executor = "command",
                                   .params = params,
                                   .submitted_ms = 1000 + (uint64_t)i,
                                   .status = i % 3 ? NULL : "pending"};
        cbx_err err;
        CHECK(cbx_journal_execution_start(j, &e, &err) == 0, "%s", err.msg);
        json_decref(params);
        if (i % 3 == 0)
            CHECK(cbx_journal_execution_status(j, id, "running", &err) == 0, "%s", err.msg);
        json_t *meta = json_pack("{s:f}", "ms", 1.5);
        cbx_journal_attempt_info a = {
            .execution_id = id, .number = 1, .outcome = "success", .metadata = meta};
        CHECK(cbx_journal_attempt(j, &a, &err) == 0, "%s", err.msg);
        json_decref(meta);
        json_t *out = json_pack("{s:i}", "rc", 0);
        cbx_journal_end end = {.execution_id = id,
                               .status = "success",
                               .attempts = 1,
                               .outputs = out,
                               .ended_ms = 1001 + (uint64_t)i,
                               .duration_ns = 1000};
        CHECK(cbx_journal_execution_end(j, &end, &err) == 0, "%s", err.msg);
        json_decref(out);
        if (who < 2 && i % 500 == 499) /* the other two never: the queue fills, they wait */
            CHECK(cbx_journal_flush(j, &err) == 0, "%s", err.msg);
    }
    return NULL;
}

static int make_table(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)ud;
    (void)err;
    return sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS stress_marks(n INTEGER)", NULL, NULL,
                        NULL) == SQLITE_OK
               ? 0
               : -1;
}

static int mark(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)err;
    char sql[64];
    snprintf(sql, sizeof sql, "INSERT INTO stress_marks VALUES(%d)", *(int *)ud);
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static void on_commit(void *ud)
{
    (void)ud;
    atomic_fetch_add(&commits, 1);
}

/* Records of its own, each waited for until its batch has committed, and queries. */
static void *other(void *arg)
{
    (void)arg;
    cbx_err err;
    for (int i = 0; i < RECORDS; i++) {
        uint64_t batch = 0;
        CHECK(cbx_journal_write_db(j, mark, &i, &batch, &err) == 0, "%s", err.msg);
        if (i % 2)
            CHECK(cbx_journal_commit_soon(j, &err) == 0, "%s", err.msg);
        int s;
        while ((s = cbx_journal_batch_state(j, batch, &err)) == 0)
            nanosleep(&(struct timespec){0, 200000L}, NULL);
        CHECK(s == 1, "batch %llu: %d %s", (unsigned long long)batch, s, err.msg);
        if (i % 50 == 0) {
            json_t *rows = NULL;
            CHECK(cbx_journal_history(j, &(cbx_history_filter){.limit = 5}, &rows, &err) == 0, "%s",
                  err.msg);
            json_decref(rows);
        }
    }
    return NULL;
}

static int count(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)err;
    int64_t *out = ud;
    const char *sql[] = {"SELECT count(*) FROM executions WHERE status = 'success' AND"
                         " ended_ms IS NOT NULL AND executor = 'command' AND"
                         " params LIKE '%\"api_key\":\"***\"%'",
                         "SELECT count(*) FROM attempts", "SELECT count(*) FROM stress_marks"};
    for (int k = 0; k < 3; k++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql[k], -1, &st, NULL) != SQLITE_OK)
            return -1;
        out[k] = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
    }
    return 0;
}

int main(void)
{
    char dir[] = "/tmp/cbx-journal-stress-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/j.db", dir);
    cbx_err err;
    CHECK(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err) == 0, "%s", err.msg);
    CHECK(cbx_journal_on_commit(j, on_commit, NULL, &err) == 0, "%s", err.msg);
    CHECK(cbx_journal_write_db(j, make_table, NULL, NULL, &err) == 0, "%s", err.msg);

    pthread_t th[WRITERS + 1];
    for (int i = 0; i < WRITERS; i++)
        CHECK(pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i) == 0);
    CHECK(pthread_create(&th[WRITERS], NULL, other, NULL) == 0);
    for (int i = 0; i <= WRITERS; i++)
        pthread_join(th[i], NULL);

    CHECK(cbx_journal_flush(j, &err) == 0, "%s", err.msg);
    int64_t n[3] = {0};
    CHECK(cbx_journal_read_db(j, count, n, &err) == 0, "%s", err.msg);
    CHECK(n[0] == WRITERS * PER_WRITER, "executions whole: %lld", (long long)n[0]);
    CHECK(n[1] == WRITERS * PER_WRITER, "attempts: %lld", (long long)n[1]);
    CHECK(n[2] == RECORDS, "records: %lld", (long long)n[2]);
    cbx_journal_losses l;
    CHECK(cbx_journal_losses_get(j, 0, &l, &err) == 0, "%s", err.msg);
    CHECK(l.writes == 0, "lost %llu: %s", (unsigned long long)l.writes, l.last_error);
    CHECK(atomic_load(&commits) > 0);
    cbx_journal_on_commit_remove(j, on_commit, NULL);
    cbx_journal_close(j);

    /* what was written is in the file for another handle */
    CHECK(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err) == 0, "%s", err.msg);
    json_t *row = NULL;
    CHECK(cbx_journal_get(j, "w3-03999", &row, &err) == 0, "%s", err.msg);
    CHECK(strcmp(json_string_value(json_object_get(row, "status")), "success") == 0);
    json_decref(row);
    cbx_journal_close(j);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    printf("journal stress: %d executions from %d threads, %d records waited for\n",
           WRITERS * PER_WRITER, WRITERS, RECORDS);
    return 0;
}
