/* The journal: opening the SQLite file, its schema, and batched writes.
 *
 * Writes go into a batch, one write transaction (BEGIN IMMEDIATE) that stays open across calls.
 * It commits once it is CBX__JOURNAL_COMMIT_NS old (by the next write, or by the flusher thread
 * when no write comes), at CBX__JOURNAL_BATCH_MAX writes, on cbx_journal_flush, before a clear
 * or prune, and at close; so it never holds the database's write lock, and never makes another
 * process's writes wait, much longer than that window, whatever the caller does. The flusher
 * also runs the WAL checkpoints, on a connection of its own and outside the journal's lock, so
 * that a writer does not wait for the copying and the syncs of a checkpoint; only the last short
 * step, which lets the WAL start over, holds the lock (checkpoint_wal).
 *
 * Within a batch a start is held back (cbx__jpending); when the execution's end comes before
 * the commit, one whole row is inserted instead of a row inserted and then updated.
 */
#include "runtime/journal_internal.h"
#include "cbx/state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MEMORY_PATH ":memory:"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS executions("
    " id TEXT PRIMARY KEY,"
    " executor TEXT,"
    " status TEXT NOT NULL,"
    " rc INTEGER,"
    " error TEXT,"
    " fallback_used INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " submitted_ms INTEGER NOT NULL,"
    " ended_ms INTEGER,"
    " duration_ns INTEGER,"
    " tag TEXT,"
    " breaker TEXT,"
    " policy TEXT,"
    " params TEXT,"
    " outputs TEXT,"
    " owner_pid INTEGER,"
    " owner_start INTEGER);"
    "CREATE INDEX IF NOT EXISTS executions_submitted ON executions(submitted_ms);"
    "CREATE INDEX IF NOT EXISTS executions_executor ON executions(executor, submitted_ms);"
    "CREATE INDEX IF NOT EXISTS executions_breaker ON executions(breaker, submitted_ms)"
    " WHERE breaker IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS attempts("
    " execution_id TEXT NOT NULL,"
    " number INTEGER NOT NULL,"
    " outcome TEXT,"
    " started_ms INTEGER,"
    " duration_ns INTEGER,"
    " error TEXT,"
    " metadata TEXT,"
    " breaker_decision TEXT,"
    " PRIMARY KEY(execution_id, number)) WITHOUT ROWID;";

static const char sql_start[] =
    "INSERT INTO executions(id, executor, status, submitted_ms, tag, breaker, policy, params,"
    " owner_pid, owner_start) VALUES(?1, ?2, coalesce(?8, 'running'), ?3, ?4, ?5, ?6, ?7, ?9, ?10)"
    " ON CONFLICT(id) DO UPDATE SET executor = excluded.executor,"
    " submitted_ms = excluded.submitted_ms, tag = excluded.tag, breaker = excluded.breaker,"
    " policy = excluded.policy, params = excluded.params";

static const char sql_attempt[] =
    "INSERT OR REPLACE INTO attempts(execution_id, number, outcome, started_ms, duration_ns,"
    " error, metadata, breaker_decision) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/* An end without a start (a refusal) inserts the row; submitted_ms is then derived from the
 * end and the duration. After a start it updates the row and keeps submitted_ms. */
static const char sql_end[] =
    "INSERT INTO executions(id, status, rc, error, fallback_used, attempts, outputs, ended_ms,"
    " duration_ns, submitted_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    " ON CONFLICT(id) DO UPDATE SET status = excluded.status, rc = excluded.rc,"
    " error = excluded.error, fallback_used = excluded.fallback_used,"
    " attempts = excluded.attempts, outputs = excluded.outputs, ended_ms = excluded.ended_ms,"
    " duration_ns = excluded.duration_ns";

/* A start held back and its end, as one row. */
static const char sql_whole[] =
    "INSERT INTO executions(id, executor, status, rc, error, fallback_used, attempts,"
    " submitted_ms, ended_ms, duration_ns, tag, breaker, policy, params, outputs, owner_pid,"
    " owner_start) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
    " ?17)"
    " ON CONFLICT(id) DO UPDATE SET executor = excluded.executor, status = excluded.status,"
    " rc = excluded.rc, error = excluded.error, fallback_used = excluded.fallback_used,"
    " attempts = excluded.attempts, submitted_ms = excluded.submitted_ms,"
    " ended_ms = excluded.ended_ms, duration_ns = excluded.duration_ns, tag = excluded.tag,"
    " breaker = excluded.breaker, policy = excluded.policy, params = excluded.params,"
    " outputs = excluded.outputs";

#define PEND_SLOTS ((size_t)2 * CBX__JOURNAL_BATCH_MAX) /* a power of two, load at most 1/2 */

uint64_t cbx__journal_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cbx__journal_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* ---- errors and transactions ------------------------------------------------------------- */

static void pend_reset(cbx_journal *j)
{
    if (j->npend > PEND_SLOTS / 16) {
        memset(j->slots, 0, PEND_SLOTS * sizeof *j->slots);
    } else {
        /* a few: each one's slot, found from its hash as pend_add placed it (the table's 32 KiB,
         * zeroed whole, was most of a short process's first commit: 8 pages touched) */
        for (uint32_t k = 0; k < j->npend; k++) {
            uint32_t i = j->pend[k].hash & (PEND_SLOTS - 1);
            while (j->slots[i] != k + 1)
                i = (i + 1) & (PEND_SLOTS - 1);
            j->slots[i] = 0;
        }
    }
    j->npend = 0;
    j->arena_len = 0;
    if (j->arena_cap > (size_t)4 * 1024 * 1024) { /* a batch of huge params: give the memory back */
        free(j->arena);
        j->arena = NULL;
        j->arena_cap = 0;
    }
}

/* A batch has ended (committed or lost), or a commit asked for found none: tell the listeners. */
static void notify_locked(cbx_journal *j)
{
    for (int i = 0; i < j->on_commit_n; i++)
        if (j->on_commit[i].fn)
            j->on_commit[i].fn(j->on_commit[i].ud);
}

/* The open batch (j->batch_no) will never commit: its writes are lost, for the reason msg. */
static void note_lost(cbx_journal *j, const char *msg)
{
    if (!j->lost_first)
        j->lost_first = j->batch_no;
    j->lost_last = j->batch_no;
    j->count_known = 0; /* the rows it counted are gone */
    cbx__journal_lost_locked(j, j->txn_writes, msg);
}

int cbx__journal_fail(cbx_journal *j, cbx_err *err, const char *what)
{
    const char *msg = sqlite3_errmsg(j->db);
    if (j->in_txn && sqlite3_get_autocommit(j->db)) {
        uint32_t lost = j->txn_writes;
        note_lost(j, msg);
        j->in_txn = 0;
        j->txn_writes = 0;
        atomic_store(&j->batch_started_ns, 0);
        pend_reset(j);
        notify_locked(j);
        return cbx_err_set(err, CBX_EJOURNAL,
                           "journal %s: %s: %s (SQLite rolled back the open batch of %u writes)",
                           j->path, what, msg, lost);
    }
    return cbx_err_set(err, CBX_EJOURNAL, "journal %s: %s: %s", j->path, what, msg);
}

/* Step a statement that returns no row, then reset it. */
static int step_done(cbx_journal *j, sqlite3_stmt *st, cbx_err *err, const char *what)
{
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_DONE ? 0 : cbx__journal_fail(j, err, what);
    sqlite3_reset(st);
    return r;
}

static void wake_flusher(cbx_journal *j)
{
    if (!j->flusher_running)
        return;
    pthread_mutex_lock(&j->fl->wmu);
    pthread_cond_signal(&j->fl->wcv);
    pthread_mutex_unlock(&j->fl->wmu);
}

int cbx__journal_begin_locked(cbx_journal *j, cbx_err *err)
{
    if (j->in_txn)
        return 0;
    /* a long WAL found at open that the flusher has not copied yet: copied now, so that this
     * batch starts the WAL over (checkpoint_early) */
    if (atomic_load(&j->checkpoint_early) && atomic_exchange(&j->checkpoint_early, 0))
        sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    int r = step_done(j, j->st_begin, err, "begin");
    if (r != 0)
        return r;
    j->in_txn = 1;
    j->batch_no++;
    j->txn_writes = 0;
    j->txn_started_ns = cbx__journal_mono_ns();
    atomic_store(&j->batch_started_ns, j->txn_started_ns);
    if (atomic_load(&j->flusher_idle))
        wake_flusher(j);
    return 0;
}

static int settle_pend_locked(cbx_journal *j, cbx_err *err);

int cbx__journal_commit_locked(cbx_journal *j, cbx_err *err)
{
    if (!j->in_txn)
        return 0;
    int r = settle_pend_locked(j, err);
    if (r == 0)
        r = step_done(j, j->st_commit, err, "commit");
    char why[256] = "";
    if (r != 0)
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(j->db));
    if (r != 0 && !sqlite3_get_autocommit(j->db)) {
        sqlite3_step(j->st_rollback);
        sqlite3_reset(j->st_rollback);
    }
    if (r != 0 && j->in_txn)
        note_lost(j, why);
    pend_reset(j);
    j->in_txn = 0;
    j->txn_writes = 0;
    atomic_store(&j->batch_started_ns, 0);
    notify_locked(j);
    if (atomic_load(&j->checkpoint_due) && atomic_load(&j->flusher_idle))
        wake_flusher(j);
    return r;
}

/* Called by SQLite inside every commit of j->db (with j->mu held): the WAL's size decides
 * whether the flusher checkpoints. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    cbx_journal *j = arg;
    if (pages >= CBX__JOURNAL_CHECKPOINT_PAGES)
        atomic_store(&j->checkpoint_due, 1);
    return SQLITE_OK;
}

/* ---- the flusher thread ------------------------------------------------------------------ */

/* Commit a batch no write has come to commit (with j->mu held). */
static void commit_overdue_locked(cbx_journal *j)
{
    uint64_t first =
        cbx__journal_earliest(j->in_txn ? j->txn_started_ns : 0, atomic_load(&j->queued_ns));
    if (!first || cbx__journal_mono_ns() - first < CBX__JOURNAL_COMMIT_NS)
        return;
    cbx__journal_drain_locked(j);
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx__journal_commit_locked(j, &e) != 0)
        cbx__journal_set_async_locked(j, &e);
}

/* Commit the open batch on request (with j->mu held); with none open, still tell the listeners,
 * which wait for an answer. */
static int commit_asked_locked(cbx_journal *j)
{
    cbx__journal_drain_locked(j);
    if (!j->in_txn) {
        notify_locked(j);
        return 0;
    }
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx__journal_commit_locked(j, &e);
    if (r != 0)
        cbx__journal_set_async_locked(j, &e);
    return r;
}

/* The flusher's connection for checkpoints, opened when the first is due (most short processes
 * never need one, and opening it reads the schema). */
static int open_ck(cbx_journal *j)
{
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW;
    if (sqlite3_open_v2(j->path, &j->ck, flags, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(j->ck, CBX__JOURNAL_BUSY_MS);
        sqlite3_db_config(j->ck, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        /* A connection that has read nothing has not opened the WAL, and SQLite (3.40) then
         * answers a checkpoint with SQLITE_OK having copied nothing: read once. */
        if (sqlite3_exec(j->ck, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) ==
            SQLITE_OK)
            return 0;
    }
    sqlite3_close_v2(j->ck);
    j->ck = NULL;
    return -1;
}

/* Copy the WAL into the database, on the flusher's connection. PASSIVE never waits for readers
 * or writers: the bulk is copied outside the journal's lock, while writers go on. But the WAL
 * starts over only when a batch begins with every frame copied, and under a steady stream of
 * writes the next batch has always begun already: the WAL would grow without end. So, when the
 * bulk of a long WAL is copied, take the lock, commit the open batch and copy what was committed
 * since (a batch or two): the next batch starts the WAL over. */
static void checkpoint_wal(cbx_journal *j)
{
    int log = 0, copied = 0;
    if (!j->ck && open_ck(j) != 0)
        return; /* the next one tries again */
    if (sqlite3_wal_checkpoint_v2(j->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) !=
            SQLITE_OK ||
        log < CBX__JOURNAL_CHECKPOINT_PAGES || copied < log)
        return; /* a reader (of another process) holds frames back: the next one goes on */
    cbx__journal_lock(j);
    if (j->in_txn)
        commit_asked_locked(j);
    sqlite3_wal_checkpoint_v2(j->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    atomic_store(&j->checkpoint_due, 0); /* the commits since found the WAL long: copied now */
    pthread_mutex_unlock(&j->mu);
}

/* The WAL was long at open (CBX__JOURNAL_EARLY_WAL_BYTES): copy it into the database on the
 * journal's own connection, which a short process does not otherwise use until its close (its
 * writes wait in the queue meanwhile), rather than open the checkpoint connection, which would
 * parse the schema again. The next batch then starts the WAL over, and the next process to open
 * the journal reads only what was written since. Should a batch begin first (a command that
 * ended before this thread got here), cbx__journal_begin_locked copies it instead: whichever
 * claims checkpoint_early. */
static void checkpoint_early(cbx_journal *j)
{
    cbx__journal_lock(j);
    if (!j->in_txn)
        sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    pthread_mutex_unlock(&j->mu);
}

/* Let go of the shared part; the last to let go frees it (with f->wmu held, which it drops). */
static void flusher_release(struct cbx__jflusher *f)
{
    int last = --f->refs == 0;
    pthread_mutex_unlock(&f->wmu);
    if (last) {
        pthread_cond_destroy(&f->wcv);
        pthread_mutex_destroy(&f->wmu);
        free(f);
    }
}

/* Work on the handle without wmu (busy: a close waits for it), then take wmu back. */
static void work_begin(struct cbx__jflusher *f)
{
    f->busy = 1;
    pthread_mutex_unlock(&f->wmu);
}

static void work_end(struct cbx__jflusher *f)
{
    pthread_mutex_lock(&f->wmu);
    f->busy = 0;
    if (f->stopping)
        pthread_cond_broadcast(&f->wcv); /* the close waiting for it */
}

static void background_open(struct cbx__jflusher *f, cbx_journal *j);

/* With wmu held, the handle may be used only while !f->stopping, which is checked first after
 * every wait: once a close has set it and seen the flusher idle, the handle may be gone. */
static void *flusher_main(void *arg)
{
    struct cbx__jflusher *f = arg;
    cbx_journal *j = f->j; /* not used before f->stopping is read (or by background_open) */
    if (f->open_pending)
        background_open(f, j); /* the handle cannot close before it is done */
    pthread_mutex_lock(&f->wmu);
    while (!f->stopping) {
        uint64_t started =
            cbx__journal_earliest(atomic_load(&j->batch_started_ns), atomic_load(&j->queued_ns));
        if (atomic_load(&j->commit_asked)) {
            atomic_store(&j->commit_asked, 0);
            work_begin(f);
            cbx__journal_lock(j);
            commit_asked_locked(j);
            pthread_mutex_unlock(&j->mu);
            work_end(f);
            continue;
        }
        if (atomic_load(&j->drain_asked)) {
            /* a long queue: write it into the open batch now (the commit stays due when it
             * was); never wait for a writer that holds the lock: it writes the queue itself */
            atomic_store(&j->drain_asked, 0);
            work_begin(f);
            if (pthread_mutex_trylock(&j->mu) == 0) {
                cbx__journal_drain_locked(j);
                pthread_mutex_unlock(&j->mu);
            }
            work_end(f);
            continue;
        }
        if (atomic_load(&j->checkpoint_early) && atomic_exchange(&j->checkpoint_early, 0)) {
            work_begin(f);
            checkpoint_early(j);
            work_end(f);
            continue;
        }
        if (j->wal && atomic_load(&j->checkpoint_due)) {
            /* first, even while a batch is open (under a steady stream of writes there is
             * always one) */
            atomic_store(&j->checkpoint_due, 0);
            atomic_store(&j->checkpointing, 1);
            work_begin(f);
            checkpoint_wal(j);
            atomic_store(&j->checkpointing, 0);
            work_end(f);
            continue;
        }
        if (!started) {
            /* Announce the sleep, then look again: a writer that began a batch in between
             * either is seen here or sees flusher_idle and signals (under wmu, so not before
             * the wait has begun). */
            atomic_store(&j->flusher_idle, 1);
            if (!atomic_load(&j->batch_started_ns) && !atomic_load(&j->queued_ns) &&
                !(j->wal && atomic_load(&j->checkpoint_due)) && !atomic_load(&j->commit_asked) &&
                !atomic_load(&j->checkpoint_early))
                pthread_cond_wait(&f->wcv, &f->wmu);
            if (!f->stopping)
                atomic_store(&j->flusher_idle, 0);
            continue;
        }
        uint64_t due = started + CBX__JOURNAL_COMMIT_NS;
        uint64_t now = cbx__journal_mono_ns();
        if (now < due) {
            struct timespec ts = {.tv_sec = (time_t)(due / 1000000000ull),
                                  .tv_nsec = (long)(due % 1000000000ull)};
            pthread_cond_timedwait(&f->wcv, &f->wmu, &ts);
            continue;
        }
        /* Overdue. A writer that holds the lock commits it itself (write_done); and waiting for
         * the lock behind a busy writer could take long (a mutex is not fair), keeping the
         * checkpoints above from running: try, else look again a little later. */
        work_begin(f);
        int locked = pthread_mutex_trylock(&j->mu) == 0;
        if (locked) {
            commit_overdue_locked(j);
            pthread_mutex_unlock(&j->mu);
        }
        int again = !locked && cbx__journal_earliest(atomic_load(&j->batch_started_ns),
                                                     atomic_load(&j->queued_ns)) == started;
        work_end(f);
        if (again && !f->stopping) {
            uint64_t at = now + CBX__JOURNAL_RETRY_NS;
            struct timespec ts = {.tv_sec = (time_t)(at / 1000000000ull),
                                  .tv_nsec = (long)(at % 1000000000ull)};
            pthread_cond_timedwait(&f->wcv, &f->wmu, &ts);
        }
    }
    flusher_release(f);
    return NULL;
}

/* ---- open and close ---------------------------------------------------------------------- */

/* mkdir -p for the directory part of path, new directories 0700. */
static int make_parent_dir(const char *path, cbx_err *err)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir)
        return cbx_err_set(err, -ENAMETOOLONG, "journal directory of %s: %s", path,
                           strerror(ENAMETOOLONG));
    memcpy(dir, path, n);
    dir[n] = '\0';
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0; /* the usual case: one call, not a mkdir per component */
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            return cbx_err_set(err, -e, "journal directory %s: %s", dir, strerror(e));
        }
        *p = c;
        if (c == '\0')
            break;
    }
    if (stat(dir, &st) != 0) {
        int e = errno;
        return cbx_err_set(err, -e, "journal directory %s: %s", dir, strerror(e));
    }
    if (!S_ISDIR(st.st_mode))
        return cbx_err_set(err, -ENOTDIR, "journal directory %s: %s", dir, strerror(ENOTDIR));
    return 0;
}

/* Create the file 0600 before SQLite does (SQLite would use 0644 less the umask), and make an
 * existing one 0600; the -wal and -shm files SQLite makes later take the database file's
 * permissions. A symbolic link is refused, not followed (someone else's file must never become
 * this journal). */
/* Make the file (0600) when missing. *wal: 1 when its header already says WAL (bytes 18 and 19,
 * the read and write versions, are 2), which SQLite keeps in the file: no PRAGMA to set it. */
static int precreate(const char *path, int *wal, cbx_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return cbx_err_set(err, -e, "journal %s: a symbolic link; refusing to follow it", path);
        return cbx_err_set(err, -e, "journal %s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 0077) && st.st_uid == geteuid())
        (void)fchmod(fd, 0600);
    unsigned char hdr[20];
    *wal = pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr && hdr[18] == 2 && hdr[19] == 2;
    close(fd);
    return 0;
}

/* The first row's first n columns of sql into out[0..n-1]. 0 or an error. */
static int query_ints(cbx_journal *j, const char *sql, int64_t *out, int n, cbx_err *err)
{
    sqlite3_stmt *st = NULL;
    int r = 0;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
        return cbx__journal_fail(j, err, sql);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        for (int i = 0; i < n; i++)
            out[i] = sqlite3_column_int64(st, i);
    else
        r = cbx__journal_fail(j, err, sql);
    sqlite3_finalize(st);
    return r;
}

static int exec_sql(cbx_journal *j, const char *sql, cbx_err *err, const char *what)
{
    if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return cbx__journal_fail(j, err, what);
    return 0;
}

/* An index that journals made by an earlier cbx have: no query used it (a status filter is on
 * the status as shown, an expression: CBX__STATUS_SQL), and keeping it up cost every
 * execution's write a tenth of its SQLite work. An open that may write drops it. */
#define STALE_INDEX "executions_status"

/* Refuse files that are not (or not yet understood as) a cbx journal. *stale_out: whether the
 * file has STALE_INDEX. */
static int check_identity(cbx_journal *j, int64_t *version_out, int *stale_out, cbx_err *err)
{
    /* one statement for the four: each one prepared is about 50 k instructions at every open */
    int64_t v[4] = {0, 0, 0, 0};
    int r = query_ints(j,
                       "SELECT (SELECT user_version FROM pragma_user_version),"
                       " (SELECT application_id FROM pragma_application_id), count(*),"
                       " coalesce(max(name = '" STALE_INDEX "'), 0) FROM sqlite_master",
                       v, 4, err);
    if (r != 0)
        return r;
    int64_t version = v[0], app = v[1], objects_n = v[2];
    *stale_out = v[3] != 0;
    if (app != 0 && app != CBX__JOURNAL_APP_ID)
        return cbx_err_set(err, CBX_EJOURNAL,
                           "journal %s: not a cbx journal (SQLite application id 0x%llx)", j->path,
                           (unsigned long long)app);
    if (app == 0 && objects_n > 0)
        return cbx_err_set(err, CBX_EJOURNAL,
                           "journal %s: not a cbx journal (an SQLite database with tables of its "
                           "own)",
                           j->path);
    if (version > CBX__JOURNAL_SCHEMA)
        return cbx_err_set(err, CBX_EJOURNAL,
                           "journal %s: schema version %lld is newer than this cbx understands "
                           "(%d); use a newer cbx or another journal file",
                           j->path, (long long)version, CBX__JOURNAL_SCHEMA);
    *version_out = version;
    return 0;
}

static int setup_schema(cbx_journal *j, int memory, int wal_already, cbx_err *err)
{
    /* One read transaction for the three reads: outside one, each sees the file as it is then,
     * and a journal another process creates meanwhile looks like tables without an id. */
    int64_t version = 0;
    int stale = 0;
    int r = exec_sql(j, "BEGIN", err, "begin");
    if (r != 0)
        return r;
    r = check_identity(j, &version, &stale, err);
    sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL);
    if (r != 0)
        return r;
    if (!memory && !wal_already) {
        /* WAL lets readers and one writer of several processes work at once; where the file
         * system cannot do WAL, SQLite keeps its rollback journal, which is slower but safe. */
        /* Changing the journal mode takes an exclusive lock and does not go through the busy
         * handler: while another process creates the same file it answers "locked" at once,
         * so wait a little and try again. */
        int rc = SQLITE_BUSY;
        for (int tries = 0; tries < 200; tries++) {
            rc = sqlite3_exec(j->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
            if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
                break;
            nanosleep(&(struct timespec){0, 5000000L}, NULL);
        }
        if (rc != SQLITE_OK)
            return cbx__journal_fail(j, err, "journal_mode=WAL");
    }
    /* NORMAL in WAL mode: a commit is durable across a crash of the process, and only a power
     * failure or an OS crash can take back the last commits; checkpoints still fsync. */
    /* A WAL that grew long (a burst of writes outran the checkpoints, or short processes wrote
     * one after another) is cut back to CBX__JOURNAL_EARLY_WAL_BYTES when it starts over, rather
     * than keep its longest length on disk: so the file's length at open tells whether it holds
     * much to copy (cbx_journal_open). */
    /* A page cache of 256 KiB (SQLite keeps every page it has read, up to the bound): ids are
     * time-ordered (UUIDv7), so the writes append at the right edge of the table and of every
     * index and touch few pages; 8 MiB made a 2,000-step flow's process hold 2.7 MB of pages it
     * had written once and would not read again, and 1 MiB still 1 MB (the same run's CPU time
     * and a 3,000-line batch's are the same at 256 KiB). */
    char size_limit[64];
    snprintf(size_limit, sizeof size_limit, "PRAGMA journal_size_limit=%ld",
             (long)CBX__JOURNAL_EARLY_WAL_BYTES);
    if ((r = exec_sql(j, "PRAGMA synchronous=NORMAL", err, "synchronous=NORMAL")) != 0 ||
        (r = exec_sql(j, "PRAGMA cache_size=-256", err, "cache_size")) != 0 ||
        (r = exec_sql(j, size_limit, err, "journal_size_limit")) != 0)
        return r;
    /* set up already (the version is only ever raised): the usual open, which reads no more */
    if (version == CBX__JOURNAL_SCHEMA && !stale)
        return 0;
    if (version == CBX__JOURNAL_SCHEMA) /* once per file; no version of cbx needs it back */
        return exec_sql(j, "DROP INDEX IF EXISTS " STALE_INDEX, err, "drop " STALE_INDEX);
    /* Another process may be creating it at the same moment: decide inside the write lock. */
    if ((r = exec_sql(j, "BEGIN IMMEDIATE", err, "begin")) != 0)
        return r;
    if ((r = check_identity(j, &version, &stale, err)) != 0)
        goto rollback;
    if (version == 0) {
        char set[128];
        snprintf(set, sizeof set, "PRAGMA user_version=%d; PRAGMA application_id=%d;",
                 CBX__JOURNAL_SCHEMA, CBX__JOURNAL_APP_ID);
        if ((r = exec_sql(j, schema_sql, err, "create schema")) != 0 ||
            (r = exec_sql(j, set, err, "set schema version")) != 0)
            goto rollback;
    }
    return exec_sql(j, "COMMIT", err, "commit schema");
rollback:
    sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

static int prepare(cbx_journal *j, const char *sql, sqlite3_stmt **st, cbx_err *err)
{
    if (sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return cbx__journal_fail(j, err, "prepare");
    return 0;
}

static int resolve_path(cbx_journal *j, const cbx_journal_opts *o, cbx_err *err)
{
    if (o->path && *o->path) {
        j->path = strdup(o->path);
        return j->path ? 0 : cbx_err_set(err, -ENOMEM, "out of memory");
    }
    char dir[PATH_MAX];
    /* a read-only open makes nothing, so it takes the directory as it is (another user's too) */
    int r =
        o->read_only ? cbx_state_dir_path(dir, sizeof dir, NULL) : cbx_state_dir(dir, sizeof dir);
    if (r != 0)
        return cbx_err_set(err, r, "state directory %s: %s", dir[0] ? dir : "(unknown)",
                           strerror(-r));
    size_t n = strlen(dir) + sizeof "/journal.db";
    j->path = malloc(n);
    if (!j->path)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    snprintf(j->path, n, "%s/journal.db", dir);
    return 0;
}

/* SQLite's side of an open: the connection, the schema checked (made when missing), the owner
 * functions, the transaction statements, the WAL hook, the loss ledger. 0 or an error. */
static int open_db(cbx_journal *j, int memory, int wal_already, cbx_err *err)
{
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                      (memory ? 0 : SQLITE_OPEN_NOFOLLOW);
    if (sqlite3_open_v2(j->path, &j->db, flags, NULL) != SQLITE_OK)
        return cbx_err_set(err, CBX_EJOURNAL, "journal %s: %s", j->path,
                           j->db ? sqlite3_errmsg(j->db) : "out of memory");
    sqlite3_busy_timeout(j->db, CBX__JOURNAL_BUSY_MS);
    int r;
    if ((r = setup_schema(j, memory, wal_already, err)) != 0 ||
        (r = cbx__journal_owner_setup(j, err)) != 0)
        return r;
    if ((r = prepare(j, "BEGIN IMMEDIATE", &j->st_begin, err)) != 0 ||
        (r = prepare(j, "COMMIT", &j->st_commit, err)) != 0 ||
        (r = prepare(j, "ROLLBACK", &j->st_rollback, err)) != 0)
        return r;
    if (!memory) {
        /* Checkpoints move to the flusher's connection, and happen when the WAL has grown, not
         * at every close: a short-lived process (one `cbx exec`) would otherwise pay for a
         * checkpoint and its fsync on its way out. */
        sqlite3_wal_hook(j->db, wal_hook, j);
        sqlite3_db_config(j->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        j->wal = 1; /* the checkpoint connection is opened when one is due (open_ck) */
    }
    cbx__journal_ledger_open(j);
    return 0;
}

static long long wal_bytes(const cbx_journal *j);

/* The end of an open, with mu held and the flusher started: retention, and a long WAL handed to
 * the flusher to copy. */
static int open_finish_locked(cbx_journal *j, int memory, cbx_err *err)
{
    int r = cbx__journal_prune_locked(j, 1, err);
    if (r == 0)
        r = cbx__journal_commit_locked(j, err);
    if (r == 0 && !memory && wal_bytes(j) > CBX__JOURNAL_EARLY_WAL_BYTES) {
        atomic_store(&j->checkpoint_early, 1); /* seen by the flusher before it sleeps, or ... */
        wake_flusher(j);                       /* ... woken */
    }
    return r;
}

/* A background open failed (with mu held): the handle stays, without a database; every write
 * is lost with the reason, which cbx_journal_open_error gives. */
static void open_failed_locked(cbx_journal *j, const cbx_err *e)
{
    j->open_rc = e->code ? e->code : CBX_EJOURNAL;
    snprintf(j->open_msg, sizeof j->open_msg, "%s", e->msg[0] ? e->msg : cbx_strerror(j->open_rc));
    sqlite3_stmt *sts[] = {j->st_begin, j->st_commit, j->st_rollback};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
        sqlite3_finalize(sts[i]);
    j->st_begin = j->st_commit = j->st_rollback = NULL;
    sqlite3_close_v2(j->db);
    j->db = NULL;
    j->wal = 0;
    j->in_txn = 0;
}

/* The flusher's first work for open_in_background: open, holding mu; until it is done every
 * cbx__journal_lock waits (opening), so every call that needs the database waits for the open.
 * The flusher is busy from its start (start_flusher), so that a close waits for it. The statement
 * that writes an execution whole (its start and its end in one batch, as a short `cbx exec` writes
 * it at its close) is prepared here too, while the caller goes on, rather than when the caller
 * waits for the close's commit. */
static void background_open(struct cbx__jflusher *f, cbx_journal *j)
{
    pthread_mutex_lock(&j->mu); /* not cbx__journal_lock: this is the open it would wait for */
    cbx_err e;
    cbx_err_clear(&e);
    int r = open_db(j, 0, j->bg_wal_already, &e);
    if (r == 0)
        r = open_finish_locked(j, 0, &e);
    if (r != 0)
        open_failed_locked(j, &e);
    else if (prepare(j, sql_whole, &j->st_whole, &e) != 0) /* tried again when first used */
        j->st_whole = NULL;
    atomic_store(&j->opening, 0);
    pthread_cond_broadcast(&j->open_cv);
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_lock(&f->wmu);
    f->busy = 0;
    if (f->stopping)
        pthread_cond_broadcast(&f->wcv); /* the close waiting for it */
    pthread_mutex_unlock(&f->wmu);
}

int cbx_journal_open_error(cbx_journal *j, cbx_err *err)
{
    if (!j)
        return 0;
    cbx__journal_lock(j);
    int r = j->open_rc;
    if (r != 0)
        cbx_err_set(err, r, "%s", j->open_msg);
    pthread_mutex_unlock(&j->mu);
    return r;
}

/* The length of the WAL file, or -1 when there is none. */
static long long wal_bytes(const cbx_journal *j)
{
    char wal[PATH_MAX];
    struct stat st;
    int n = snprintf(wal, sizeof wal, "%s-wal", j->path);
    if (n <= 0 || (size_t)n >= sizeof wal || stat(wal, &st) != 0)
        return -1;
    return (long long)st.st_size;
}

/* background: the thread opens the database first (background_open). */
static int start_flusher(cbx_journal *j, int background, cbx_err *err)
{
    struct cbx__jflusher *f = calloc(1, sizeof *f);
    if (!f)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    pthread_condattr_t ca;
    int e = pthread_mutex_init(&f->wmu, NULL);
    if (e != 0) {
        free(f);
        return cbx_err_set(err, -e, "journal: mutex: %s", strerror(e));
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    e = pthread_cond_init(&f->wcv, &ca);
    pthread_condattr_destroy(&ca);
    if (e != 0) {
        pthread_mutex_destroy(&f->wmu);
        free(f);
        return cbx_err_set(err, -e, "journal: condition variable: %s", strerror(e));
    }
    f->refs = 2;
    f->j = j;
    f->open_pending = background;
    f->busy = background; /* until background_open is done: a close waits for it */
    j->fl = f;
    /* set before the thread starts: a background open's flusher reads it (wake_flusher) */
    j->flusher_running = 1;
    e = pthread_create(&j->flusher, NULL, flusher_main, f);
    if (e != 0) {
        j->flusher_running = 0;
        j->fl = NULL;
        pthread_cond_destroy(&f->wcv);
        pthread_mutex_destroy(&f->wmu);
        free(f);
        return cbx_err_set(err, -e, "journal: flusher thread: %s", strerror(e));
    }
    pthread_detach(j->flusher);
    return 0;
}

int cbx_journal_open(cbx_journal **out, const cbx_journal_opts *o, cbx_err *err)
{
    static const cbx_journal_opts defaults = {0};
    if (!out)
        return cbx_err_set(err, -EINVAL, "cbx_journal_open: out is NULL");
    *out = NULL;
    if (!o)
        o = &defaults;
    cbx_journal *j = calloc(1, sizeof *j);
    if (!j)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    j->lost_fd = -1;
    atomic_init(&j->retention_epoch, cbx__journal_new_epoch());
    atomic_init(&j->batch_started_ns, 0);
    atomic_init(&j->flusher_idle, 0);
    atomic_init(&j->checkpoint_due, 0);
    atomic_init(&j->commit_asked, 0);
    atomic_init(&j->checkpointing, 0);
    atomic_init(&j->checkpoint_early, 0);
    atomic_init(&j->opening, 0);
    atomic_init(&j->queued_ns, 0);
    atomic_init(&j->async_set, 0);
    int e = pthread_mutex_init(&j->mu, NULL);
    if (e != 0) {
        free(j);
        return cbx_err_set(err, -e, "journal: mutex: %s", strerror(e));
    }
    j->mu_ready = 1;
    if ((e = pthread_mutex_init(&j->qmu, NULL)) != 0) {
        cbx_journal_close(j);
        return cbx_err_set(err, -e, "journal: mutex: %s", strerror(e));
    }
    j->qmu_ready = 1;
    pthread_condattr_t qa;
    pthread_condattr_init(&qa);
    pthread_condattr_setclock(&qa, CLOCK_MONOTONIC);
    e = pthread_cond_init(&j->qroom, &qa);
    pthread_condattr_destroy(&qa);
    if (e != 0) {
        cbx_journal_close(j);
        return cbx_err_set(err, -e, "journal: condition variable: %s", strerror(e));
    }
    j->qroom_ready = 1;
    j->max_executions = o->max_executions ? o->max_executions : CBX__JOURNAL_DEFAULT_MAX_EXECUTIONS;
    j->max_age_ms = o->max_age_ms;
    j->max_bytes = o->max_bytes ? o->max_bytes : CBX__JOURNAL_DEFAULT_MAX_BYTES;
    j->max_record_bytes =
        o->max_record_bytes ? o->max_record_bytes : CBX__JOURNAL_DEFAULT_MAX_RECORD;
    int r = cbx__redact_rules_init(&j->rules, o->redact_env);
    if (r != 0) {
        cbx_err_set(err, r, "out of memory");
        goto fail;
    }
    if ((r = resolve_path(j, o, err)) != 0)
        goto fail;
    int memory = strcmp(j->path, MEMORY_PATH) == 0;
    j->read_only = o->read_only && !memory;
    if (j->read_only) { /* journal_readonly.c */
        if ((r = cbx__journal_open_read_only(j, err)) != 0 ||
            (r = cbx__journal_owner_setup(j, err)) != 0)
            goto fail;
        *out = j;
        return 0;
    }
    int wal_already = 0;
    if (!memory && ((r = make_parent_dir(j->path, err)) != 0 ||
                    (r = precreate(j->path, &wal_already, err)) != 0))
        goto fail;
    if (o->open_in_background && !memory) {
        /* the flusher opens the database before anything else; cbx__journal_lock waits for it */
        j->bg_wal_already = wal_already;
        if ((e = pthread_cond_init(&j->open_cv, NULL)) != 0) {
            r = cbx_err_set(err, -e, "journal: condition variable: %s", strerror(e));
            goto fail;
        }
        j->open_cv_ready = 1;
        atomic_store(&j->opening, 1);
        if ((r = start_flusher(j, 1, err)) != 0) {
            atomic_store(&j->opening, 0);
            goto fail;
        }
        *out = j;
        return 0;
    }
    if ((r = open_db(j, memory, wal_already, err)) != 0 || (r = start_flusher(j, 0, err)) != 0)
        goto fail;
    cbx__journal_lock(j);
    r = open_finish_locked(j, memory, err);
    pthread_mutex_unlock(&j->mu);
    if (r != 0)
        goto fail;
    *out = j;
    return 0;
fail:
    cbx_journal_close(j);
    return r;
}

/* At close, after the last commit, when the WAL file is longer than CBX__JOURNAL_CLOSE_WAL_BYTES:
 * the connections close as SQLite's own do, checkpointing on the way out, which SQLite does only
 * for the last connection to the file (it must get the exclusive lock, which any other
 * connection's shared lock refuses): the WAL is then copied into the database and removed, so
 * that the next process to open the journal alone does not read it all again. (That process
 * rebuilds SQLite's index of the WAL from the file and then counts nothing in it as copied:
 * without this a WAL written by one short process after another never starts over, and every
 * open reads more of it.) With another connection open, nothing is done and nothing waited for:
 * a long-lived process beside short ones keeps the WAL short itself (checkpoint_wal). Otherwise,
 * a checkpoint the flusher did not get to. */
static void checkpoint_at_close(cbx_journal *j)
{
    if (wal_bytes(j) > CBX__JOURNAL_CLOSE_WAL_BYTES) {
        if (j->ck)
            sqlite3_db_config(j->ck, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
        sqlite3_db_config(j->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
    } else if (atomic_load(&j->checkpoint_due)) {
        /* the flusher is gone: the journal's own connection is free */
        sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    }
}

void cbx_journal_close(cbx_journal *j)
{
    if (!j)
        return;
    if (j->flusher_running && j->fl) {
        /* Wait for the flusher only while it works on the handle (a commit, a checkpoint); a
         * sleeping one exits when next scheduled, without touching the handle again. */
        struct cbx__jflusher *f = j->fl;
        pthread_mutex_lock(&f->wmu);
        f->stopping = 1;
        pthread_cond_broadcast(&f->wcv);
        while (f->busy)
            pthread_cond_wait(&f->wcv, &f->wmu);
        flusher_release(f);
        j->fl = NULL;
        j->flusher_running = 0;
    }
    if (j->db && j->st_commit) { /* the flusher is gone: no lock needed */
        cbx__journal_drain_locked(j);
        cbx__journal_commit_locked(j, NULL);
    }
    for (cbx__jrec *rec = j->qhead, *next; rec; rec = next) { /* none, unless the open failed */
        next = rec->next;
        cbx__journal_rec_free(rec);
    }
    cbx__journal_rec_free_chain(j->qdone);
    sqlite3_stmt *sts[] = {j->st_begin,   j->st_commit, j->st_rollback, j->st_start,
                           j->st_attempt, j->st_end,    j->st_whole};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
        sqlite3_finalize(sts[i]);
    for (size_t i = 0; i < j->ncached; i++)
        sqlite3_finalize(j->cached[i].st);
    free(j->cached);
    if (j->wal)
        checkpoint_at_close(j);
    sqlite3_close_v2(j->ck);
    sqlite3_close_v2(j->db);
    if (j->mu_ready)
        pthread_mutex_destroy(&j->mu);
    if (j->qmu_ready)
        pthread_mutex_destroy(&j->qmu);
    if (j->qroom_ready)
        pthread_cond_destroy(&j->qroom);
    if (j->open_cv_ready)
        pthread_cond_destroy(&j->open_cv);
    cbx__journal_ledger_close(j);
    cbx__redact_rules_clear(&j->rules);
    free(j->buf.p);
    free(j->pend);
    free(j->slots);
    free(j->arena);
    free(j->path);
    free(j);
}

const char *cbx_journal_path(const cbx_journal *j)
{
    return j ? j->path : NULL;
}

/* ---- writes ------------------------------------------------------------------------------ */

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Bound without a copy: valid until the statement is stepped and reset, which every writer
 * does before it returns. */
static void bind_blob_text(sqlite3_stmt *st, int i, const char *text, size_t len)
{
    if (text)
        sqlite3_bind_text(st, i, text, (int)len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* The statement *st for sql, prepared the first time it is needed: a short process (one `cbx
 * exec`) uses two or three of the four, and parsing each costs about as much as running it. */
static int lazy_stmt(cbx_journal *j, sqlite3_stmt **st, const char *sql, cbx_err *err)
{
    return *st ? 0 : prepare(j, sql, st, err);
}

/* ---- held-back starts -------------------------------------------------------------------- */

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static const char *arena_str(const cbx_journal *j, uint32_t off)
{
    return off == CBX__JOURNAL_NO_STR ? NULL : j->arena + off;
}

/* Copy n bytes (and a NUL) into the arena; CBX__JOURNAL_NO_STR for NULL. Returns 0 or -1. */
static int arena_put(cbx_journal *j, const char *s, size_t n, uint32_t *off)
{
    if (!s) {
        *off = CBX__JOURNAL_NO_STR;
        return 0;
    }
    if (j->arena_len + n + 1 > j->arena_cap) {
        size_t cap = j->arena_cap ? j->arena_cap : (size_t)64 * 1024;
        while (cap < j->arena_len + n + 1)
            cap *= 2;
        if (cap >= CBX__JOURNAL_NO_STR)
            return -1;
        char *p = realloc(j->arena, cap);
        if (!p)
            return -1;
        j->arena = p;
        j->arena_cap = cap;
    }
    memcpy(j->arena + j->arena_len, s, n);
    j->arena[j->arena_len + n] = '\0';
    *off = (uint32_t)j->arena_len;
    j->arena_len += n + 1;
    return 0;
}

static cbx__jpending *pend_find(cbx_journal *j, const char *id, uint32_t h)
{
    if (j->npend == 0)
        return NULL;
    for (uint32_t i = h & (PEND_SLOTS - 1); j->slots[i]; i = (i + 1) & (PEND_SLOTS - 1)) {
        cbx__jpending *p = &j->pend[j->slots[i] - 1];
        if (p->live && p->hash == h && strcmp(j->arena + p->id, id) == 0)
            return p;
    }
    return NULL;
}

/* Hold a start back. Returns 1 when held, 0 when it must be written now (no room). */
static int pend_add(cbx_journal *j, const cbx_journal_execution *e, const char *params,
                    size_t params_len, uint32_t h)
{
    if (j->npend >= CBX__JOURNAL_BATCH_MAX || params_len > CBX__JOURNAL_DEFER_MAX)
        return 0;
    if (!j->slots && !(j->slots = calloc(PEND_SLOTS, sizeof *j->slots)))
        return 0;
    if (j->npend == j->pend_cap) {
        uint32_t cap = j->pend_cap ? j->pend_cap * 2 : 256;
        cbx__jpending *p = realloc(j->pend, cap * sizeof *p);
        if (!p)
            return 0;
        j->pend = p;
        j->pend_cap = cap;
    }
    cbx__jpending *old = pend_find(j, e->id, h);
    cbx__jpending p = {.submitted_ms = e->submitted_ms, .hash = h, .live = 1};
    size_t mark = j->arena_len;
    if (arena_put(j, e->id, strlen(e->id), &p.id) != 0 ||
        arena_put(j, e->executor, e->executor ? strlen(e->executor) : 0, &p.executor) != 0 ||
        arena_put(j, e->tag, e->tag ? strlen(e->tag) : 0, &p.tag) != 0 ||
        arena_put(j, e->breaker, e->breaker ? strlen(e->breaker) : 0, &p.breaker) != 0 ||
        arena_put(j, e->policy, e->policy ? strlen(e->policy) : 0, &p.policy) != 0 ||
        arena_put(j, params, params_len, &p.params) != 0 ||
        arena_put(j, e->status, e->status ? strlen(e->status) : 0, &p.status) != 0) {
        j->arena_len = mark;
        return 0;
    }
    p.params_len = (uint32_t)params_len;
    if (old)
        old->live = 0; /* a second start of the same id replaces the first */
    uint32_t i = h & (PEND_SLOTS - 1);
    while (j->slots[i])
        i = (i + 1) & (PEND_SLOTS - 1);
    j->pend[j->npend++] = p;
    j->slots[i] = j->npend;
    return 1;
}

static void bind_arena(cbx_journal *j, sqlite3_stmt *st, int i, uint32_t off)
{
    const char *s = arena_str(j, off);
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_start(cbx_journal *j, const cbx__jpending *p)
{
    sqlite3_stmt *st = j->st_start;
    bind_arena(j, st, 1, p->id);
    bind_arena(j, st, 2, p->executor);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)p->submitted_ms);
    bind_arena(j, st, 4, p->tag);
    bind_arena(j, st, 5, p->breaker);
    bind_arena(j, st, 6, p->policy);
    bind_blob_text(st, 7, arena_str(j, p->params), p->params_len);
    bind_arena(j, st, 8, p->status);
    sqlite3_bind_int(st, 9, j->owner_pid);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)j->owner_start);
}

static int settle_pend_locked(cbx_journal *j, cbx_err *err)
{
    int r = 0;
    uint32_t i = 0;
    for (; i < j->npend && r == 0; i++) {
        if (!j->pend[i].live)
            continue;
        if ((r = lazy_stmt(j, &j->st_start, sql_start, err)) != 0)
            continue; /* i + 1: the count below includes this start */
        bind_start(j, &j->pend[i]);
        r = step_done(j, j->st_start, err, "write execution start");
    }
    if (r != 0 && j->in_txn) { /* the batch goes on without these starts (the failed one too) */
        uint64_t dropped = 1;
        for (; i < j->npend; i++)
            dropped += j->pend[i].live ? 1 : 0;
        cbx__journal_lost_locked(j, dropped, NULL);
    }
    pend_reset(j);
    return r;
}

int cbx__journal_settle_locked(cbx_journal *j, cbx_err *err)
{
    cbx__journal_drain_locked(j);
    return settle_pend_locked(j, err);
}

/* Report (and forget) a failure kept for the next call. */
static int report_async_locked(cbx_journal *j, cbx_err *err)
{
    if (j->async_rc == 0)
        return 0;
    int r = cbx_err_set(err, j->async_rc, "an earlier batch was lost: %s", j->async_msg);
    j->async_rc = 0;
    atomic_store(&j->async_set, 0);
    return r;
}

/* After a successful write: count it, prune and commit when due, and report a failure of an
 * earlier commit made by the flusher (whose data is lost) now that a caller is here. */
static int write_done(cbx_journal *j, cbx_err *err)
{
    int r = 0;
    j->txn_writes++;
    if (++j->writes_since_prune >= CBX__JOURNAL_PRUNE_EVERY) {
        j->writes_since_prune = 0;
        r = cbx__journal_prune_locked(j, 0, err);
    }
    /* not in the middle of writing the queue: a start and its end queued together make one
     * row only within one batch (the caller of the drain commits after it when due) */
    if (r == 0 &&
        (j->txn_writes >= CBX__JOURNAL_BATCH_MAX ||
         (!j->draining && cbx__journal_mono_ns() - j->txn_started_ns >= CBX__JOURNAL_COMMIT_NS)))
        r = cbx__journal_commit_locked(j, err);
    if (r == 0)
        r = report_async_locked(j, err);
    return r;
}

/* A record's own write failed (after its arguments were checked): it is lost. */
static void lost_one(cbx_journal *j, const cbx_err *err)
{
    cbx__journal_lost_locked(j, 1, err && err->msg[0] ? err->msg : NULL);
}

void cbx__journal_lock(cbx_journal *j)
{
    pthread_mutex_lock(&j->mu);
    while (atomic_load(&j->opening))
        pthread_cond_wait(&j->open_cv, &j->mu);
}

/* With mu held, on a handle whose background open failed. */
static int opened_not(cbx_journal *j, cbx_err *err)
{
    return cbx_err_set(err, j->open_rc ? j->open_rc : CBX_EJOURNAL, "%s", j->open_msg);
}

static int missing(cbx_err *err, const char *what)
{
    return cbx_err_set(err, CBX_EJOURNAL, "journal: %s is missing", what);
}

static int apply_start(cbx_journal *j, const cbx__jrec *rec, cbx_err *err)
{
    const cbx_journal_execution *e = &rec->u.start;
    const char *params = rec->text;
    size_t params_len = rec->text_len;
    int r = cbx__journal_begin_locked(j, err);
    uint32_t h = hash_id(e->id);
    if (r == 0 && !pend_add(j, e, params, params_len, h)) {
        cbx__jpending *old = pend_find(j, e->id, h);
        if (old)
            old->live = 0;
        if ((r = lazy_stmt(j, &j->st_start, sql_start, err)) != 0)
            return r;
        sqlite3_stmt *st = j->st_start;
        bind_text(st, 1, e->id);
        bind_text(st, 2, e->executor);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)e->submitted_ms);
        bind_text(st, 4, e->tag);
        bind_text(st, 5, e->breaker);
        bind_text(st, 6, e->policy);
        bind_blob_text(st, 7, params, params_len);
        bind_text(st, 8, e->status);
        sqlite3_bind_int(st, 9, j->owner_pid);
        sqlite3_bind_int64(st, 10, (sqlite3_int64)j->owner_start);
        r = step_done(j, st, err, "write execution start");
    }
    return r;
}

static int apply_attempt(cbx_journal *j, const cbx__jrec *rec, cbx_err *err)
{
    const cbx_journal_attempt_info *a = &rec->u.attempt;
    int r = cbx__journal_begin_locked(j, err);
    if (r == 0)
        r = lazy_stmt(j, &j->st_attempt, sql_attempt, err);
    if (r != 0)
        return r;
    sqlite3_stmt *st = j->st_attempt;
    bind_text(st, 1, a->execution_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)a->number);
    bind_text(st, 3, a->outcome);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)a->started_ms);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)a->duration_ns);
    bind_text(st, 6, a->error);
    bind_blob_text(st, 7, rec->text, rec->text_len);
    bind_text(st, 8, a->breaker_decision);
    return step_done(j, st, err, "write attempt");
}

static int apply_end(cbx_journal *j, const cbx__jrec *rec, cbx_err *err)
{
    const cbx_journal_end *e = &rec->u.end;
    int r = cbx__journal_begin_locked(j, err);
    cbx__jpending *p = r == 0 ? pend_find(j, e->execution_id, hash_id(e->execution_id)) : NULL;
    if (r == 0)
        r = p ? lazy_stmt(j, &j->st_whole, sql_whole, err) : lazy_stmt(j, &j->st_end, sql_end, err);
    if (r != 0)
        return r;
    sqlite3_stmt *st = p ? j->st_whole : j->st_end;
    bind_blob_text(st, p ? 15 : 7, rec->text, rec->text_len);
    if (p) {
        /* its start is still held back: the whole row at once */
        bind_arena(j, st, 1, p->id);
        bind_arena(j, st, 2, p->executor);
        bind_text(st, 3, e->status);
        sqlite3_bind_int(st, 4, e->rc);
        bind_text(st, 5, e->error);
        sqlite3_bind_int(st, 6, e->fallback_used ? 1 : 0);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)e->attempts);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)p->submitted_ms);
        sqlite3_bind_int64(st, 9, (sqlite3_int64)e->ended_ms);
        sqlite3_bind_int64(st, 10, (sqlite3_int64)e->duration_ns);
        bind_arena(j, st, 11, p->tag);
        bind_arena(j, st, 12, p->breaker);
        bind_arena(j, st, 13, p->policy);
        bind_blob_text(st, 14, arena_str(j, p->params), p->params_len);
        sqlite3_bind_int(st, 16, j->owner_pid);
        sqlite3_bind_int64(st, 17, (sqlite3_int64)j->owner_start);
        r = step_done(j, st, err, "write execution");
        if (r == 0)
            p->live = 0;
        return r;
    }
    /* after a start already written, or none at all (a refusal): submitted_ms is then the end
     * less the duration */
    uint64_t dur_ms = e->duration_ns / 1000000ull;
    uint64_t submitted = e->ended_ms > dur_ms ? e->ended_ms - dur_ms : 0;
    bind_text(st, 1, e->execution_id);
    bind_text(st, 2, e->status);
    sqlite3_bind_int(st, 3, e->rc);
    bind_text(st, 4, e->error);
    sqlite3_bind_int(st, 5, e->fallback_used ? 1 : 0);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)e->attempts);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)e->ended_ms);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)e->duration_ns);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)submitted);
    return step_done(j, st, err, "write execution end");
}

static int apply_status(cbx_journal *j, const cbx__jrec *rec, cbx_err *err)
{
    const char *id = rec->u.status.id, *status = rec->u.status.status;
    int r = cbx__journal_begin_locked(j, err);
    cbx__jpending *p = r == 0 ? pend_find(j, id, hash_id(id)) : NULL;
    if (p) { /* its start is still held back: it will be written with this status */
        uint32_t off;
        if (arena_put(j, status, strlen(status), &off) != 0)
            return cbx_err_set(err, -ENOMEM, "journal: out of memory");
        p->status = off;
        return 0;
    }
    return r == 0 ? cbx__journal_status_write_locked(j, id, status, err) : r;
}

/* A function of cbx_journal_queue_db, as cbx_journal_write_db runs one. */
static int apply_db(cbx_journal *j, const cbx__jrec *rec, cbx_err *err)
{
    int r = cbx__journal_begin_locked(j, err);
    if (r != 0)
        return r;
    r = rec->u.db.fn(j->db, rec->u.db.ud, err);
    if (r != 0 && j->in_txn && sqlite3_get_autocommit(j->db))
        cbx__journal_fail(j, NULL, "write");
    return r;
}

int cbx__journal_apply_locked(cbx_journal *j, const cbx__jrec *rec, cbx_err *err)
{
    int r;
    if (!j->db) { /* its open (in the background) failed */
        r = cbx_err_set(err, j->open_rc ? j->open_rc : CBX_EJOURNAL, "%s", j->open_msg);
        lost_one(j, err);
        return r;
    }
    switch (rec->kind) {
    case CBX__JREC_DB:
        r = apply_db(j, rec, err);
        break;
    case CBX__JREC_START:
        r = apply_start(j, rec, err);
        break;
    case CBX__JREC_ATTEMPT:
        r = apply_attempt(j, rec, err);
        break;
    case CBX__JREC_END:
        r = apply_end(j, rec, err);
        break;
    default:
        r = apply_status(j, rec, err);
        break;
    }
    if (r == 0)
        r = write_done(j, err);
    else
        lost_one(j, err);
    return r;
}

/* A record that could not be made (its JSON, memory) is lost like a failed write. */
static int not_made(cbx_journal *j, int r, cbx_err *err)
{
    cbx__journal_lock(j);
    lost_one(j, err);
    pthread_mutex_unlock(&j->mu);
    return r;
}

int cbx_journal_execution_start(cbx_journal *j, const cbx_journal_execution *e, cbx_err *err)
{
    if (!j || !e || !e->id)
        return missing(err, !j ? "the journal" : "the execution id");
    cbx__jrec *rec;
    int r = cbx__journal_rec_start(j, e, &rec, err);
    return r != 0 ? not_made(j, r, err) : cbx__journal_submit(j, rec, err);
}

int cbx_journal_attempt(cbx_journal *j, const cbx_journal_attempt_info *a, cbx_err *err)
{
    if (!j || !a || !a->execution_id)
        return missing(err, !j ? "the journal" : "the attempt's execution id");
    cbx__jrec *rec;
    int r = cbx__journal_rec_attempt(j, a, &rec, err);
    return r != 0 ? not_made(j, r, err) : cbx__journal_submit(j, rec, err);
}

int cbx_journal_execution_end(cbx_journal *j, const cbx_journal_end *e, cbx_err *err)
{
    if (!j || !e || !e->execution_id || !e->status)
        return missing(err, !j                       ? "the journal"
                            : !e || !e->execution_id ? "the execution id"
                                                     : "the status");
    cbx__jrec *rec;
    int r = cbx__journal_rec_end(j, e, &rec, err);
    return r != 0 ? not_made(j, r, err) : cbx__journal_submit(j, rec, err);
}

int cbx_journal_execution_status(cbx_journal *j, const char *id, const char *status, cbx_err *err)
{
    if (!j || !id || !status)
        return missing(err, !j ? "the journal" : !id ? "the execution id" : "the status");
    cbx__jrec *rec;
    int r = cbx__journal_rec_status(id, status, &rec, err);
    return r != 0 ? not_made(j, r, err) : cbx__journal_submit(j, rec, err);
}

int cbx_journal_flush(cbx_journal *j, cbx_err *err)
{
    if (!j)
        return missing(err, "the journal");
    cbx__journal_lock(j);
    cbx__journal_drain_locked(j);
    int r = cbx__journal_commit_locked(j, err);
    if (r == 0)
        r = report_async_locked(j, err);
    pthread_mutex_unlock(&j->mu);
    return r;
}

/* ---- records of other modules ------------------------------------------------------------ */

int cbx_journal_write_db(cbx_journal *j, cbx_journal_db_fn fn, void *ud, uint64_t *batch,
                         cbx_err *err)
{
    if (!j || !fn)
        return missing(err, !j ? "the journal" : "the function");
    cbx__journal_lock(j);
    cbx__journal_drain_locked(j); /* the writes queued before it go first */
    int r = j->db ? cbx__journal_begin_locked(j, err) : opened_not(j, err);
    uint64_t b = j->batch_no;
    if (r == 0) {
        r = fn(j->db, ud, err);
        /* SQLite rolled the whole batch back (an I/O error, a full disk): the batch is lost;
         * err keeps fn's message */
        if (r != 0 && j->in_txn && sqlite3_get_autocommit(j->db))
            cbx__journal_fail(j, NULL, "write");
    }
    if (r == 0)
        r = write_done(j, err);
    else
        lost_one(j, err);
    if (r == 0 && batch)
        *batch = b;
    pthread_mutex_unlock(&j->mu);
    return r;
}

static int queue_db(cbx_journal *j, cbx_journal_db_fn fn, void *ud, void (*free_ud)(void *),
                    int free_later, cbx_err *err)
{
    if (!j || !fn) {
        if (free_ud)
            free_ud(ud);
        return missing(err, !j ? "the journal" : "the function");
    }
    cbx__jrec *rec = malloc(sizeof *rec);
    if (!rec) {
        if (free_ud)
            free_ud(ud);
        return not_made(j, cbx_err_set(err, -ENOMEM, "out of memory"), err);
    }
    memset(rec, 0, sizeof *rec);
    rec->kind = CBX__JREC_DB;
    rec->u.db.fn = fn;
    rec->u.db.ud = ud;
    rec->u.db.free_ud = free_ud;
    rec->u.db.free_later = free_later;
    return cbx__journal_submit(j, rec, err);
}

int cbx_journal_queue_db(cbx_journal *j, cbx_journal_db_fn fn, void *ud, void (*free_ud)(void *),
                         cbx_err *err)
{
    return queue_db(j, fn, ud, free_ud, 0, err);
}

int cbx_journal_queue_db_free_later(cbx_journal *j, cbx_journal_db_fn fn, void *ud,
                                    void (*free_ud)(void *), cbx_err *err)
{
    return queue_db(j, fn, ud, free_ud, 1, err);
}

int cbx_journal_stmt(cbx_journal *j, const char *sql, sqlite3_stmt **st, cbx_err *err)
{
    if (!j || !sql || !st)
        return missing(err, !j ? "the journal" : !sql ? "the SQL" : "the statement");
    *st = NULL;
    for (size_t i = 0; i < j->ncached; i++)
        if (j->cached[i].sql == sql) {
            *st = j->cached[i].st;
            return 0;
        }
    if (j->ncached == j->cached_cap) {
        size_t cap = j->cached_cap ? 2 * j->cached_cap : 16;
        void *p = realloc(j->cached, cap * sizeof *j->cached);
        if (!p)
            return cbx_err_set(err, -ENOMEM, "out of memory");
        j->cached = p;
        j->cached_cap = cap;
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
        return cbx_err_set(err, CBX_EJOURNAL, "journal %s: prepare: %s", j->path,
                           sqlite3_errmsg(j->db));
    j->cached[j->ncached].sql = sql;
    j->cached[j->ncached++].st = s;
    *st = s;
    return 0;
}

int cbx_journal_read_db(cbx_journal *j, cbx_journal_db_fn fn, void *ud, cbx_err *err)
{
    if (!j || !fn)
        return missing(err, !j ? "the journal" : "the function");
    cbx__journal_lock(j);
    int r = j->db ? cbx__journal_settle_locked(j, err) : opened_not(j, err);
    if (r == 0)
        r = fn(j->db, ud, err);
    pthread_mutex_unlock(&j->mu);
    return r;
}

int cbx_journal_batch_state(cbx_journal *j, uint64_t batch, cbx_err *err)
{
    if (!j)
        return missing(err, "the journal");
    cbx__journal_lock(j);
    int r;
    if (batch == 0 || batch > j->batch_no)
        r = cbx_err_set(err, -EINVAL, "journal %s: no batch %llu (the last is %llu)", j->path,
                        (unsigned long long)batch, (unsigned long long)j->batch_no);
    else if (batch == j->batch_no && j->in_txn)
        r = 0;
    else if (j->lost_last && batch >= j->lost_first && batch <= j->lost_last)
        r = cbx_err_set(err, CBX_EJOURNAL, "journal %s: batch %llu was lost (rolled back)", j->path,
                        (unsigned long long)batch);
    else
        r = 1;
    pthread_mutex_unlock(&j->mu);
    return r;
}

int cbx_journal_on_commit(cbx_journal *j, cbx_journal_commit_fn fn, void *ud, cbx_err *err)
{
    if (!j || !fn)
        return missing(err, !j ? "the journal" : "the function");
    cbx__journal_lock(j);
    int i = 0;
    while (i < CBX__JOURNAL_LISTENERS && j->on_commit[i].fn)
        i++;
    if (i < CBX__JOURNAL_LISTENERS) {
        j->on_commit[i].fn = fn;
        j->on_commit[i].ud = ud;
        if (i >= j->on_commit_n)
            j->on_commit_n = i + 1;
    }
    pthread_mutex_unlock(&j->mu);
    if (i == CBX__JOURNAL_LISTENERS)
        return cbx_err_set(err, CBX_EJOURNAL, "journal %s: more than %d commit listeners", j->path,
                           CBX__JOURNAL_LISTENERS);
    return 0;
}

void cbx_journal_on_commit_remove(cbx_journal *j, cbx_journal_commit_fn fn, void *ud)
{
    if (!j || !fn)
        return;
    cbx__journal_lock(j);
    for (int i = 0; i < j->on_commit_n; i++)
        if (j->on_commit[i].fn == fn && j->on_commit[i].ud == ud) {
            j->on_commit[i].fn = NULL;
            j->on_commit[i].ud = NULL;
            break;
        }
    while (j->on_commit_n > 0 && !j->on_commit[j->on_commit_n - 1].fn)
        j->on_commit_n--;
    pthread_mutex_unlock(&j->mu);
}

int cbx_journal_commit_soon(cbx_journal *j, cbx_err *err)
{
    if (!j)
        return missing(err, "the journal");
    if (j->flusher_running && !atomic_load(&j->checkpointing)) {
        pthread_mutex_lock(&j->fl->wmu);
        atomic_store(&j->commit_asked, 1);
        pthread_cond_signal(&j->fl->wcv);
        pthread_mutex_unlock(&j->fl->wmu);
        return 0;
    }
    /* the flusher is copying the WAL (and syncing): do not wait behind it */
    cbx__journal_lock(j);
    int r = commit_asked_locked(j);
    if (r != 0) {
        r = cbx_err_set(err, j->async_rc, "%s", j->async_msg);
        j->async_rc = 0;
    }
    pthread_mutex_unlock(&j->mu);
    return r;
}
