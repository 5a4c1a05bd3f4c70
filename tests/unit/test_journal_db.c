/* Records of other modules in the journal's batches: cbx_journal_write_db, cbx_journal_read_db and
 * cbx_journal_batch_state. The flusher may commit a batch at any moment (5 ms after it began), so
 * nothing here depends on a batch still being open: a check made while it is open is only made
 * when cbx_journal_batch_state, asked after the check, still says so. */
#include "cbx/journal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cbx-journal-db-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tree(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

static cbx_journal *open_file(char *path, size_t len)
{
    make_tmpdir();
    snprintf(path, len, "%s/j.db", tmpdir);
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    return j;
}

/* ---- the callers' functions ---------------------------------------------------------------- */

static int exec_sql(sqlite3 *db, const char *sql, cbx_err *err)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return cbx_err_set(err, CBX_EJOURNAL, "%s: %s", sql, sqlite3_errmsg(db));
    return 0;
}

static int make_table(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)ud;
    return exec_sql(db, "CREATE TABLE IF NOT EXISTS notes (k TEXT PRIMARY KEY, v TEXT)", err);
}

/* ud: "k" */
static int insert_note(sqlite3 *db, void *ud, cbx_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO notes (k, v) VALUES (?1, 'v')", -1, &st, NULL) !=
        SQLITE_OK)
        return cbx_err_set(err, CBX_EJOURNAL, "prepare: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, ud, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : cbx_err_set(err, CBX_EJOURNAL, "%s", sqlite3_errmsg(db));
}

/* Breaks the rule that fn leaves the transaction alone: the batch is rolled back. */
static int insert_then_roll_back(sqlite3 *db, void *ud, cbx_err *err)
{
    int r = insert_note(db, ud, err);
    if (r == 0)
        r = exec_sql(db, "ROLLBACK", err);
    return r == 0 ? cbx_err_set(err, -EIO, "rolled back") : r;
}

typedef struct count_args {
    const char *k;
    int n;
} count_args;

static int count_note(sqlite3 *db, void *ud, cbx_err *err)
{
    count_args *a = ud;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM notes WHERE k = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return cbx_err_set(err, CBX_EJOURNAL, "prepare: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, a->k, -1, SQLITE_STATIC);
    a->n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return 0;
}

/* The count of note k as another connection (another process) sees it: committed writes only. */
static int count_elsewhere(const char *path, const char *k)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    count_args a = {.k = k};
    cbx_err err;
    if (count_note(db, &a, &err) != 0)
        a.n = 0; /* no table yet: not committed */
    sqlite3_close(db);
    return a.n;
}

static uint64_t put(cbx_journal *j, const char *k)
{
    uint64_t b = 0;
    cbx_err err;
    cr_assert_eq(cbx_journal_write_db(j, insert_note, (void *)k, &b, &err), 0, "%s", err.msg);
    cr_assert_gt(b, 0);
    return b;
}

/* ---- tests --------------------------------------------------------------------------------- */

Test(journal_db, writes_join_the_batch_and_are_durable_once_it_commits)
{
    char path[300];
    cbx_journal *j = open_file(path, sizeof path);
    cbx_err err;
    cr_assert_eq(cbx_journal_write_db(j, make_table, NULL, NULL, &err), 0, "%s", err.msg);
    uint64_t b1 = put(j, "one");

    /* this handle sees it at once; another connection only once the batch has committed */
    count_args mine = {.k = "one"};
    cr_assert_eq(cbx_journal_read_db(j, count_note, &mine, &err), 0, "%s", err.msg);
    cr_assert_eq(mine.n, 1);
    int seen = count_elsewhere(path, "one");
    int state = cbx_journal_batch_state(j, b1, &err);
    cr_assert(state == 0 || state == 1, "batch state %d: %s", state, err.msg);
    if (state == 0)
        cr_assert_eq(seen, 0, "another connection read a batch that had not committed");

    /* a journal record goes into the same batches */
    cbx_journal_execution e = {.id = "ex-1", .executor = "command", .submitted_ms = 1};
    cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
    uint64_t b2 = put(j, "two");
    cr_assert_geq(b2, b1);

    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_batch_state(j, b1, &err), 1, "%s", err.msg);
    cr_assert_eq(cbx_journal_batch_state(j, b2, &err), 1, "%s", err.msg);
    cr_assert_eq(count_elsewhere(path, "one"), 1);
    cr_assert_eq(count_elsewhere(path, "two"), 1);

    /* after a commit, a new batch */
    uint64_t b3 = put(j, "three");
    cr_assert_gt(b3, b2);
    cbx_journal_close(j); /* commits */
    cr_assert_eq(count_elsewhere(path, "three"), 1);
    remove_tree(tmpdir);
}

Test(journal_db, a_failed_statement_leaves_the_batch_whole)
{
    char path[300];
    cbx_journal *j = open_file(path, sizeof path);
    cbx_err err;
    cr_assert_eq(cbx_journal_write_db(j, make_table, NULL, NULL, &err), 0, "%s", err.msg);
    uint64_t b = put(j, "k");
    uint64_t other = 0;
    cr_assert_eq(cbx_journal_write_db(j, insert_note, "k", &other, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, "UNIQUE"), "%s", err.msg);
    cr_assert_eq(other, 0, "a batch number was given for a failed write");
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_batch_state(j, b, &err), 1, "%s", err.msg);
    cr_assert_eq(count_elsewhere(path, "k"), 1);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

Test(journal_db, a_batch_sqlite_rolled_back_is_reported_lost)
{
    char path[300];
    cbx_journal *j = open_file(path, sizeof path);
    cbx_err err;
    cr_assert_eq(cbx_journal_write_db(j, make_table, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_write_db(j, insert_then_roll_back, "gone", NULL, &err), -EIO);
    /* the next write begins the batch after the lost one */
    uint64_t next = put(j, "kept");
    cr_assert_gt(next, 1);
    cr_assert_eq(cbx_journal_batch_state(j, next - 1, &err), CBX_EJOURNAL);
    cr_assert(strstr(err.msg, "lost"), "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_batch_state(j, next, &err), 1, "%s", err.msg);
    cr_assert_eq(count_elsewhere(path, "gone"), 0);
    cr_assert_eq(count_elsewhere(path, "kept"), 1);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

Test(journal_db, unknown_batches_and_missing_arguments)
{
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = ":memory:"}, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx_journal_batch_state(j, 0, &err), -EINVAL);
    cr_assert_eq(cbx_journal_batch_state(j, 1000000, &err), -EINVAL);
    cr_assert_eq(cbx_journal_write_db(j, NULL, NULL, NULL, &err), CBX_EJOURNAL);
    cr_assert_eq(cbx_journal_write_db(NULL, make_table, NULL, NULL, &err), CBX_EJOURNAL);
    cr_assert_eq(cbx_journal_read_db(NULL, count_note, NULL, &err), CBX_EJOURNAL);
    cr_assert_eq(cbx_journal_batch_state(NULL, 1, &err), CBX_EJOURNAL);
    /* an in-memory journal numbers and commits its batches the same way */
    cr_assert_eq(cbx_journal_write_db(j, make_table, NULL, NULL, &err), 0, "%s", err.msg);
    uint64_t b = put(j, "m");
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_batch_state(j, b, &err), 1, "%s", err.msg);
    count_args a = {.k = "m"};
    cr_assert_eq(cbx_journal_read_db(j, count_note, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(a.n, 1);
    cbx_journal_close(j);
}

/* ---- commit listeners and commits asked for -------------------------------------------------- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
} waiter;

static void on_commit(void *ud)
{
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Wait (at most 10 s) until the listener has been called more than `seen` times. */
static int wait_calls(waiter *w, int seen)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&w->mu);
    while (w->calls <= seen && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
        ;
    int calls = w->calls;
    pthread_mutex_unlock(&w->mu);
    return calls;
}

Test(journal_db, a_commit_asked_for_is_made_and_announced)
{
    char path[300];
    cbx_journal *j = open_file(path, sizeof path);
    cbx_err err;
    waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    cr_assert_eq(cbx_journal_on_commit(j, on_commit, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_write_db(j, make_table, NULL, NULL, &err), 0, "%s", err.msg);
    uint64_t b = put(j, "soon");
    int before = wait_calls(&w, -1); /* the flusher may have committed already */
    cr_assert_eq(cbx_journal_commit_soon(j, &err), 0, "%s", err.msg);
    if (cbx_journal_batch_state(j, b, &err) == 0)
        cr_assert_gt(wait_calls(&w, before), before, "no commit was announced");
    /* once announced, it has committed: another connection reads it */
    cr_assert_eq(cbx_journal_batch_state(j, b, &err), 1, "%s", err.msg);
    cr_assert_eq(count_elsewhere(path, "soon"), 1);

    /* asked for with no batch open: announced all the same (a waiter gets its answer) */
    int calls = wait_calls(&w, -1);
    cr_assert_eq(cbx_journal_commit_soon(j, &err), 0, "%s", err.msg);
    cr_assert_gt(wait_calls(&w, calls), calls);

    /* removed: no more calls */
    cbx_journal_on_commit_remove(j, on_commit, &w);
    calls = wait_calls(&w, -1);
    put(j, "after");
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_eq(wait_calls(&w, -1), calls);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

Test(journal_db, commit_listeners_are_limited_and_checked)
{
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = ":memory:"}, &err), 0, "%s",
                 err.msg);
    enum { MAX = 1024 }; /* one per flow run sharing the handle: --parallel goes up to 1024 */
    waiter *w = calloc(MAX + 1, sizeof *w);
    cr_assert_not_null(w);
    for (int i = 0; i < MAX; i++)
        cr_assert_eq(cbx_journal_on_commit(j, on_commit, &w[i], &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_on_commit(j, on_commit, &w[MAX], &err), CBX_EJOURNAL);
    cbx_journal_on_commit_remove(j, on_commit, &w[3]);
    cr_assert_eq(cbx_journal_on_commit(j, on_commit, &w[MAX], &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_on_commit(j, NULL, NULL, &err), CBX_EJOURNAL);
    cr_assert_eq(cbx_journal_commit_soon(NULL, &err), CBX_EJOURNAL);
    for (int i = 0; i <= MAX; i++)
        cbx_journal_on_commit_remove(j, on_commit, &w[i]);
    free(w);
    cbx_journal_close(j);
}

/* ---- cbx_journal_queue_db ------------------------------------------------------------------ */

static int freed;

static void free_key(void *p)
{
    freed++;
    free(p);
}

static int insert_owned(sqlite3 *db, void *ud, cbx_err *err)
{
    return insert_note(db, ud, err);
}

Test(journal_db, queued_writes_are_made_in_order_and_freed)
{
    char path[300];
    cbx_journal *j = open_file(path, sizeof path);
    cbx_err err;
    cr_assert_eq(cbx_journal_write_db(j, make_table, NULL, NULL, &err), 0, "%s", err.msg);
    freed = 0;
    for (int i = 0; i < 500; i++) {
        char k[16];
        snprintf(k, sizeof k, "q%d", i);
        cr_assert_eq(cbx_journal_queue_db(j, insert_owned, strdup(k), free_key, &err), 0, "%s",
                     err.msg);
    }
    /* a read has the queue written first: every one is seen */
    count_args a = {.k = "q499"};
    cr_assert_eq(cbx_journal_read_db(j, count_note, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(a.n, 1);
    cr_assert_eq(freed, 500);

    /* a failing one (a duplicate key) is counted lost and its ud still freed */
    cr_assert_eq(cbx_journal_queue_db(j, insert_owned, strdup("q0"), free_key, &err), 0);
    cr_assert_eq(cbx_journal_flush(j, &err), CBX_EJOURNAL);
    cr_assert_eq(freed, 501);
    cbx_journal_losses l;
    cr_assert_eq(cbx_journal_losses_get(j, 0, &l, &err), 0);
    cr_assert_eq(l.writes, 1);

    /* missing arguments: refused, ud freed */
    cr_assert_eq(cbx_journal_queue_db(j, NULL, strdup("x"), free_key, &err), CBX_EJOURNAL);
    cr_assert_eq(cbx_journal_queue_db(NULL, insert_owned, strdup("x"), free_key, &err),
                 CBX_EJOURNAL);
    cr_assert_eq(freed, 503);

    /* queued at close: written by it */
    cr_assert_eq(cbx_journal_queue_db(j, insert_owned, strdup("last"), free_key, &err), 0);
    cbx_journal_close(j);
    cr_assert_eq(freed, 504);
    cr_assert_eq(count_elsewhere(path, "last"), 1);
    cr_assert_eq(count_elsewhere(path, "q250"), 1);
    remove_tree(tmpdir);
}

/* ---- cbx_journal_queue_db_free_later ------------------------------------------------------ */

static atomic_int later_freed, later_freed_elsewhere;
static pthread_t later_owner;

static void free_key_later(void *p)
{
    atomic_fetch_add(&later_freed, 1);
    if (!pthread_equal(pthread_self(), later_owner))
        atomic_fetch_add(&later_freed_elsewhere, 1);
    free(p);
}

/* Written by the flusher (past the length at which it writes the queue early), and freed by the
 * thread that queues next, or by close: never by the flusher. */
Test(journal_db, a_write_freed_later_is_freed_by_the_next_writer_not_the_flusher)
{
    char path[300];
    cbx_journal *j = open_file(path, sizeof path);
    cbx_err err;
    cr_assert_eq(cbx_journal_write_db(j, make_table, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    later_owner = pthread_self();
    atomic_store(&later_freed, 0);
    atomic_store(&later_freed_elsewhere, 0);
    enum { N = 2 * 256 };
    for (int i = 0; i < N; i++) {
        char k[16];
        snprintf(k, sizeof k, "l%d", i);
        cr_assert_eq(
            cbx_journal_queue_db_free_later(j, insert_owned, strdup(k), free_key_later, &err), 0,
            "%s", err.msg);
    }
    char k[16];
    snprintf(k, sizeof k, "l%d", N - 1);
    for (int waited = 0; count_elsewhere(path, k) != 1; waited++) {
        cr_assert_lt(waited, 60000, "the queue was not committed within a minute");
        usleep(1000);
    }
    /* written and committed: the last ones are still to be freed, by the next writer */
    cr_assert_lt(atomic_load(&later_freed), N);
    cr_assert_eq(
        cbx_journal_queue_db_free_later(j, insert_owned, strdup("next"), free_key_later, &err), 0,
        "%s", err.msg);
    cr_assert_eq(atomic_load(&later_freed), N);
    /* the last one, written and freed by close */
    cbx_journal_close(j);
    cr_assert_eq(atomic_load(&later_freed), N + 1);
    cr_assert_eq(atomic_load(&later_freed_elsewhere), 0, "freed on another thread");
    cr_assert_eq(count_elsewhere(path, "next"), 1);
    /* refused: freed at once */
    cr_assert_eq(
        cbx_journal_queue_db_free_later(NULL, insert_owned, strdup("x"), free_key_later, &err),
        CBX_EJOURNAL);
    cr_assert_eq(atomic_load(&later_freed), N + 2);
    remove_tree(tmpdir);
}

/* ---- a long queue is written by the flusher before its batch's commit ----------------------- */

typedef struct seq_note {
    int i;
    int *last; /* the index written last: each must follow the one before */
    int *out_of_order;
    pthread_t *on; /* the thread that wrote it */
} seq_note;

static int insert_seq(sqlite3 *db, void *ud, cbx_err *err)
{
    seq_note *s = ud;
    if (*s->last != s->i - 1)
        (*s->out_of_order)++;
    *s->last = s->i;
    *s->on = pthread_self();
    char k[16];
    snprintf(k, sizeof k, "s%d", s->i);
    return insert_note(db, k, err);
}

/* Queued writes past the length at which the flusher writes the queue early (every 256): made by
 * the flusher, not by this thread (which makes no call that writes the queue), in the order
 * queued, all committed without a flush; the batch they went into commits within its window. */
Test(journal_db, a_long_queue_is_written_by_the_flusher_in_order)
{
    char path[300];
    cbx_journal *j = open_file(path, sizeof path);
    cbx_err err;
    cr_assert_eq(cbx_journal_write_db(j, make_table, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    enum { N = 5 * 256 + 10 };
    static seq_note notes[N];
    int last = -1, out_of_order = 0;
    pthread_t on = pthread_self(), self = pthread_self();
    for (int i = 0; i < N; i++) {
        notes[i] = (seq_note){.i = i, .last = &last, .out_of_order = &out_of_order, .on = &on};
        cr_assert_eq(cbx_journal_queue_db(j, insert_seq, &notes[i], NULL, &err), 0, "%s", err.msg);
    }
    char k[16];
    snprintf(k, sizeof k, "s%d", N - 1);
    for (int waited = 0; count_elsewhere(path, k) != 1; waited++) {
        cr_assert_lt(waited, 60000, "the queue was not committed within a minute");
        usleep(1000);
    }
    cr_assert_eq(count_elsewhere(path, "s0"), 1);
    cr_assert_eq(count_elsewhere(path, "s700"), 1);
    cr_assert_eq(out_of_order, 0);
    cr_assert_eq(last, N - 1);
    cr_assert_not(pthread_equal(on, self), "the queue was written by the caller's thread");
    cbx_journal_close(j);
    remove_tree(tmpdir);
}

/* ---- a full queue while another caller holds the journal ------------------------------------ */

static atomic_int queued_n;

/* Holds the journal (a write of its own) until the queue is full and for a while after: the
 * flusher cannot take the queue meanwhile, so the next writer waits for it, then writes it
 * itself once this is done. */
static int hold_until_full(sqlite3 *db, void *ud, cbx_err *err)
{
    (void)db;
    (void)ud;
    (void)err;
    for (int waited = 0; atomic_load(&queued_n) < 4096 && waited < 60000; waited++)
        usleep(1000);
    usleep(500000);
    return 0;
}

static void *holder_main(void *arg)
{
    cbx_err err;
    cbx_journal_write_db(arg, hold_until_full, NULL, NULL, &err);
    return NULL;
}

/* A writer that finds the queue full (4,096 writes) while another caller holds the journal waits
 * for the flusher, which cannot take it either, and at last writes the queue itself after that
 * caller: nothing is lost, the order is kept, and it does not wait for ever. */
Test(journal_db, a_full_queue_behind_a_long_write_is_all_written_in_order)
{
    char path[300];
    cbx_journal *j = open_file(path, sizeof path);
    cbx_err err;
    cr_assert_eq(cbx_journal_write_db(j, make_table, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    atomic_store(&queued_n, 0);
    pthread_t holder;
    cr_assert_eq(pthread_create(&holder, NULL, holder_main, j), 0);
    usleep(20000); /* most likely holding it by now; if not, the queue is merely written early */
    enum { N = 4096 + 300 };
    static seq_note notes[N];
    int last = -1, out_of_order = 0;
    pthread_t on = pthread_self();
    for (int i = 0; i < N; i++) {
        notes[i] = (seq_note){.i = i, .last = &last, .out_of_order = &out_of_order, .on = &on};
        cr_assert_eq(cbx_journal_queue_db(j, insert_seq, &notes[i], NULL, &err), 0, "%s", err.msg);
        atomic_fetch_add(&queued_n, 1);
    }
    pthread_join(holder, NULL);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_eq(count_elsewhere(path, "s0"), 1);
    cr_assert_eq(count_elsewhere(path, "s4096"), 1);
    char k[16];
    snprintf(k, sizeof k, "s%d", N - 1);
    cr_assert_eq(count_elsewhere(path, k), 1);
    cr_assert_eq(out_of_order, 0);
    cr_assert_eq(last, N - 1);
    cbx_journal_losses l;
    cr_assert_eq(cbx_journal_losses_get(j, 0, &l, &err), 0);
    cr_assert_eq(l.writes, 0);
    cbx_journal_close(j);
    remove_tree(tmpdir);
}
