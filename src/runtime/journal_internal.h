/* The journal's insides, shared by journal.c (open, schema, batched writes) and
 * journal_query.c (history, get, stats, clear, prune). */
#ifndef CBX_RUNTIME_JOURNAL_INTERNAL_H
#define CBX_RUNTIME_JOURNAL_INTERNAL_H

#include "cbx/journal.h"
#include "runtime/redact.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>

/* The schema this code writes (PRAGMA user_version), and the application id that marks a file
 * as a cbx journal ("cbxj"). */
#define CBX__JOURNAL_SCHEMA 1
#define CBX__JOURNAL_APP_ID 0x63627868
/* A batch commits this long after its first write, or at this many writes, whichever first. */
#define CBX__JOURNAL_COMMIT_NS 5000000ull
#define CBX__JOURNAL_BATCH_MAX 4096u
/* How soon the flusher looks again at an overdue batch whose lock a writer held. */
#define CBX__JOURNAL_RETRY_NS 500000ull
/* Retention is checked every so many writes (and at open and cbx_journal_prune). */
#define CBX__JOURNAL_PRUNE_EVERY 1000u
/* How long a write waits for another process's write transaction. */
#define CBX__JOURNAL_BUSY_MS 10000
/* WAL pages after which the flusher checkpoints (SQLite's own default threshold). */
#define CBX__JOURNAL_CHECKPOINT_PAGES 1000
/* A WAL file longer than this at close is copied into the database and removed when no other
 * connection has the journal open: a process that opens the journal when no other has it open
 * reads the whole WAL again (SQLite's recovery) and cannot know it was already copied, so
 * short-lived processes would otherwise make every later open slower without limit. */
#define CBX__JOURNAL_CLOSE_WAL_BYTES (1024L * 1024) /* 1 MiB */
/* A WAL file longer than this at open is copied into the database by the flusher thread at once,
 * on the journal's own connection, while the process goes on (a `cbx exec` runs its command):
 * the next batch then starts the WAL over, and a restarted WAL file is cut back to this length
 * (journal_size_limit), so that its length says how much the next open has to read. */
#define CBX__JOURNAL_EARLY_WAL_BYTES        (256L * 1024) /* 256 KiB */
#define CBX__JOURNAL_DEFAULT_MAX_EXECUTIONS 100000u
/* Functions cbx_journal_on_commit keeps per handle: one per flow run at once on the handle (cbx
 * run --batch --parallel N shares one handle among N runs, N up to 1024). */
#define CBX__JOURNAL_LISTENERS 1024

/* An execution start held back until its batch commits: when its end comes first (a short
 * execution), one row is inserted whole instead of inserted then updated. Strings live in the
 * journal's arena (offsets; CBX__JOURNAL_NO_STR for NULL). */
#define CBX__JOURNAL_NO_STR UINT32_MAX
/* Starts whose params are longer than this are written at once. */
#define CBX__JOURNAL_DEFER_MAX 16384u /* 16 KiB */
typedef struct cbx__jpending {
    uint64_t submitted_ms;
    uint32_t id, executor, tag, breaker, policy, params, status;
    uint32_t params_len;
    uint32_t hash;
    int live; /* 0 once its end has written the whole row */
} cbx__jpending;

/* A write handed to the flusher thread (journal_queue.c): the caller's strings copied into data,
 * its JSON (params, metadata or outputs) already encoded, secrets masked, into text. */
enum { CBX__JREC_START, CBX__JREC_ATTEMPT, CBX__JREC_END, CBX__JREC_STATUS, CBX__JREC_DB };
typedef struct cbx__jrec {
    struct cbx__jrec *next;
    int kind;
    union {
        cbx_journal_execution start; /* .params NULL: the text */
        cbx_journal_attempt_info attempt;
        cbx_journal_end end;
        struct {
            const char *id, *status;
        } status;
        struct { /* cbx_journal_queue_db */
            cbx_journal_db_fn fn;
            void *ud;
            void (*free_ud)(void *);
            int free_later; /* by the writer that gets it back (cbx__journal_rec_free_chain) */
        } db;
    } u;
    char *text; /* NULL = none (SQL NULL); else in data, behind the strings */
    size_t text_len;
    char data[];
} cbx__jrec;
/* Writes queued at most (so that a crash loses no more than it did when every write was made by
 * its caller: one batch): at this many, a writer waits for the flusher to take the queue, and
 * writes it itself only when the flusher has not in CBX__JOURNAL_QUEUE_WAIT_NS. */
#define CBX__JOURNAL_QUEUE_MAX     CBX__JOURNAL_BATCH_MAX
#define CBX__JOURNAL_QUEUE_WAIT_NS 200000000ull /* 200 ms */
/* Every so many writes queued, the flusher writes the queue into the open batch without waiting
 * for the batch's commit: its SQLite work is spread over the window rather than made at the
 * commit in one go, and the queue (its memory) stays short. What a crash loses is unchanged: a
 * write in the open batch and a queued one are lost alike. */
#define CBX__JOURNAL_DRAIN_AT 256u

/* What the flusher thread shares with cbx_journal_close, apart from the handle: a close does not
 * wait for a sleeping flusher to be scheduled and exit (milliseconds on a loaded machine), only
 * for one at work (busy); the last of the two to let go frees it. Under wmu: everything. */
struct cbx__jflusher {
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    int stopping;          /* the handle is closing: the flusher must not touch it again */
    int busy;              /* the flusher works on the handle without wmu: close waits */
    int refs;              /* 2 while the thread runs and the handle is open */
    int open_pending;      /* the thread opens the database first (open_in_background) */
    struct cbx_journal *j; /* the handle: the thread's argument is this, not it */
};

struct cbx_journal {
    sqlite3 *db;
    sqlite3 *ck; /* the flusher's own connection for checkpoints, opened when one is first due */
    int wal;     /* a file in WAL mode (not :memory:): the flusher checkpoints it */
    char *path;
    uint64_t max_executions, max_age_ms;
    cbx__redact_rules rules;

    /* The flusher sleeps on fl->wcv (under fl->wmu, never while holding mu) and takes mu only
     * to commit a batch that is overdue because no write came to commit it, or that was asked
     * for (cbx_journal_commit_soon), and for the last short step of a checkpoint. Lock order:
     * mu, then wmu. */
    struct cbx__jflusher *fl;
    pthread_t flusher;
    int flusher_running;
    _Atomic uint64_t batch_started_ns; /* txn_started_ns of the open batch; 0 = none */
    atomic_int flusher_idle;           /* asleep until a batch begins */
    atomic_int checkpoint_due;         /* the WAL has grown past CBX__JOURNAL_CHECKPOINT_PAGES */
    atomic_int commit_asked;           /* cbx_journal_commit_soon: the flusher commits at once */
    atomic_int drain_asked;      /* CBX__JOURNAL_DRAIN_AT more queued: the flusher writes them */
    atomic_int checkpointing;    /* the flusher is in a checkpoint */
    atomic_int checkpoint_early; /* the WAL was long at open: the flusher copies it (on db) */
    int mu_ready;

    /* The writes queued for the flusher (journal_queue.c), oldest first, under qmu (taken after
     * mu when both are). The flusher writes them into a batch and commits it
     * CBX__JOURNAL_COMMIT_NS after the first was queued; any call that needs them written
     * before it (a query, a flush, a record of cbx_journal_write_db) writes them itself first. */
    pthread_mutex_t qmu;
    int qmu_ready;
    pthread_cond_t qroom; /* with qmu: a writer waits for a full queue to be taken */
    int qroom_ready;
    cbx__jrec *qhead, *qtail;
    /* Records written, handed back for the writers to free: glibc's free of a block another
     * thread allocated takes that thread's arena lock, and the flusher freeing every record made
     * the loop thread wait for it (and wake it) at its next malloc. */
    cbx__jrec *qdone;
    uint32_t qlen;
    _Atomic uint64_t queued_ns; /* CLOCK_MONOTONIC when the oldest queued write came; 0 = none */
    atomic_int async_set;       /* async_rc is set: the next write reports it */

    pthread_mutex_t mu;      /* guards everything below and every use of db */
    int in_txn;              /* a batch is open (BEGIN IMMEDIATE done) */
    uint64_t txn_started_ns; /* CLOCK_MONOTONIC */
    uint32_t txn_writes;
    uint32_t writes_since_prune;
    atomic_uint_fast64_t retention_epoch; /* cbx_journal_retention_epoch: new at open, each pass */
    int draining; /* the queue is being written: no commit for the batch's age until it is */
    int async_rc; /* a commit by the flusher failed: reported by the next call */
    char async_msg[512];
    /* Batches are numbered from 1 as they begin; batch_no is the open one's or the last's. A
     * batch is lost when its commit fails or SQLite rolls it back: lost_first..lost_last cover
     * every lost batch (0 = none was). */
    uint64_t batch_no;
    uint64_t lost_first, lost_last;
    struct {
        cbx_journal_commit_fn fn;
        void *ud;
    } on_commit[CBX__JOURNAL_LISTENERS]; /* called when a batch ends; fn NULL = a free slot */
    int on_commit_n;                     /* slots at and past it are free */

    struct {
        const char *sql; /* the caller's, the key by address */
        sqlite3_stmt *st;
    } * cached; /* cbx_journal_stmt */
    size_t ncached, cached_cap;

    sqlite3_stmt *st_begin, *st_commit, *st_rollback;
    sqlite3_stmt *st_start, *st_attempt, *st_end, *st_whole;
    cbx__strbuf buf; /* JSON text being bound */

    /* held-back starts of the open batch (npend > 0 only while in_txn) */
    cbx__jpending *pend;
    uint32_t npend, pend_cap;
    uint32_t *slots; /* open addressing on the id's hash: index + 1, 0 = empty */
    char *arena;
    size_t arena_len, arena_cap;

    /* Faults, retention by size, the record cap (journal_faults.c, journal_retention.c). */
    int read_only;
    uint64_t max_bytes, max_record_bytes;
    int retention_ready; /* journal_retention exists */
    /* Retention by count: executions held count_rows rows, the last of them count_rowid, when
     * last known (journal_query.c); good while count_known and PRAGMA data_version is still
     * count_dv (no other connection has committed since). A lost batch or a deletion other
     * than retention's clears count_known. */
    int count_known;
    int64_t count_rows, count_rowid, count_dv;
    int lost_fd;             /* the loss ledger, -1 = none */
    cbx_journal_losses lost; /* this handle's losses (under mu) */

    /* An open made by the flusher (open_in_background): its outcome, under mu. A failed one
     * leaves db NULL, and every write is lost with open_msg. */
    int bg_wal_already;
    atomic_int opening; /* set until the flusher has opened it: cbx__journal_lock waits */
    pthread_cond_t open_cv;
    int open_cv_ready;
    int open_rc;
    char open_msg[512];

    /* journal_owner.c: this process as the owner of the rows it starts */
    int owner_pid;
    uint64_t owner_start;
    int has_owner; /* executions has the owner columns */
};

/* Take j->mu, the handle's lock, once the database is open: with open_in_background, the
 * flusher opens it holding mu, and a caller that gets mu first waits for that (every use of the
 * database takes mu through this). */
void cbx__journal_lock(cbx_journal *j);

/* The status of a row as queries show it: "abandoned" for one not ended whose owner is gone. */
#define CBX__STATUS_SQL                                                                            \
    "(CASE WHEN ended_ms IS NULL AND owner_pid IS NOT NULL AND"                                    \
    " NOT cbx_owner_alive(owner_pid, owner_start) THEN 'abandoned' ELSE status END)"

/* journal_owner.c: register cbx_owner_alive, add the owner columns to an older journal (not
 * read-only), note this process. 0 or CBX_EJOURNAL. */
int cbx__journal_owner_setup(cbx_journal *j, cbx_err *err);
/* Add owner_pid and owner_start to table when it exists without them. 0 or -1. */
int cbx__journal_owner_add_columns(sqlite3 *db, const char *table);
/* 1 when the main database has the table, from the schema already parsed (no SQL). */
int cbx__journal_table_exists(sqlite3 *db, const char *table);
/* CBX__STATUS_SQL, or plain "status" for a read-only journal without the columns. */
const char *cbx__journal_status_sql(const cbx_journal *j);
/* 1 when the journal holds flow runs (their table exists); takes mu. */
int cbx__journal_has_flow_runs(cbx_journal *j);

/* Open j->path read-only (j->read_only set): no schema made, no flusher, no pruning. Returns 0,
 * -errno (-ENOENT: no such file), or CBX_EJOURNAL. */
int cbx__journal_open_read_only(cbx_journal *j, cbx_err *err);

/* The loss ledger: PATH-lost, one page. */
#define CBX__JOURNAL_LEDGER_SUFFIX      "-lost"
#define CBX__JOURNAL_LEDGER_SIZE        4096
#define CBX__JOURNAL_DEFAULT_MAX_BYTES  ((uint64_t)256 * 1024 * 1024)
#define CBX__JOURNAL_DEFAULT_MAX_RECORD ((uint64_t)1024 * 1024)

/* Open (made when missing, unless the journal is read-only) the ledger beside j->path. Never
 * fails: without a ledger, losses are counted by the handle only. */
void cbx__journal_ledger_open(cbx_journal *j);
void cbx__journal_ledger_close(cbx_journal *j);
/* With j->mu held: n writes are lost, for the reason SQLite gives for j->db (or what, when
 * not NULL); counted on the handle and in the ledger. */
void cbx__journal_lost_locked(cbx_journal *j, uint64_t n, const char *what);

uint64_t cbx__journal_mono_ns(void);
uint64_t cbx__journal_wall_ms(void);

/* With j->mu held. Begin a batch unless one is open; commit the open batch (if any). Both
 * return 0 or CBX_EJOURNAL (err filled). */
int cbx__journal_begin_locked(cbx_journal *j, cbx_err *err);
int cbx__journal_commit_locked(cbx_journal *j, cbx_err *err);
/* With j->mu held: CBX_EJOURNAL with SQLite's message about what failed; notices a batch that
 * SQLite rolled back on its own. */
int cbx__journal_fail(cbx_journal *j, cbx_err *err, const char *what);
/* With j->mu held: write the queued writes and the held-back starts into the open batch, so
 * that queries see them. */
int cbx__journal_settle_locked(cbx_journal *j, cbx_err *err);

/* journal_queue.c. A record of each write kind, JSON encoded (CBX_EJOURNAL when it cannot be,
 * -ENOMEM); free with cbx__journal_rec_free. */
int cbx__journal_rec_start(cbx_journal *j, const cbx_journal_execution *e, cbx__jrec **out,
                           cbx_err *err);
int cbx__journal_rec_attempt(cbx_journal *j, const cbx_journal_attempt_info *a, cbx__jrec **out,
                             cbx_err *err);
int cbx__journal_rec_end(cbx_journal *j, const cbx_journal_end *e, cbx__jrec **out, cbx_err *err);
int cbx__journal_rec_status(const char *id, const char *status, cbx__jrec **out, cbx_err *err);
void cbx__journal_rec_free(cbx__jrec *rec);
/* Free a chain of records written (linked by next), calling the free_ud still due (those the
 * writer left for later). */
void cbx__journal_rec_free_chain(cbx__jrec *rec);
/* journal_scratch.c. v as the journal writes it (secrets masked, cut to the record cap) into
 * x->b: this thread's buffer, or one of x's own without memory for that; x->b NULL for v NULL.
 * 0, or -ENOMEM / -ELOOP (x released). Release with cbx__journal_enc_done once the text is
 * copied (a thread's buffer grown large is let go then). */
typedef struct cbx__jenc {
    cbx__strbuf own, *b;
} cbx__jenc;
int cbx__journal_enc(const cbx_journal *j, cbx__jenc *x, const json_t *v, int *truncated);
void cbx__journal_enc_done(cbx__jenc *x);
/* Hand rec over (it is the queue's or freed): queued for the flusher, or written now when there
 * is no flusher or the queue is full. Returns 0, the write's own error when written now, or
 * CBX_EJOURNAL for an earlier queued write that failed. */
int cbx__journal_submit(cbx_journal *j, cbx__jrec *rec, cbx_err *err);
/* With j->mu held: write every queued write, in order (a failure is lost and kept for the next
 * call to report, as a failed commit of the flusher is). */
void cbx__journal_drain_locked(cbx_journal *j);
/* journal.c, with j->mu held: make one write (begins a batch). 0 or CBX_EJOURNAL (lost). */
int cbx__journal_apply_locked(cbx_journal *j, const cbx__jrec *rec, cbx_err *err);
/* With j->mu held: keep a failure for the next call (the first one kept wins). */
void cbx__journal_set_async_locked(cbx_journal *j, const cbx_err *e);
/* The earliest of two CLOCK_MONOTONIC stamps, 0 meaning none. */
static inline uint64_t cbx__journal_earliest(uint64_t a, uint64_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}
/* journal_status.c: set the status of an execution whose start is written and whose end is
 * not (under mu, in the open batch). 0 or CBX_EJOURNAL. */
int cbx__journal_status_write_locked(cbx_journal *j, const char *id, const char *status,
                                     cbx_err *err);
/* With j->mu held and a batch open: apply the retention limits (count, age, then size);
 * at_open: the pass of the journal's open, which lets the count exceed its bound a little. */
int cbx__journal_prune_locked(cbx_journal *j, int at_open, cbx_err *err);
/* With j->mu held and a batch open: delete the executions up to (submitted_ms, rowid), oldest
 * first, with their attempts (journal_query.c); *deleted, if not NULL, gets how many. */
int cbx__journal_delete_upto_locked(cbx_journal *j, int64_t submitted_ms, int64_t rowid,
                                    uint64_t *deleted, cbx_err *err);
/* journal_retention.c, with j->mu held: make the journal_retention table when missing; record
 * that every execution submitted before cut_ms is gone; retention by size. */
int cbx__journal_retention_setup_locked(cbx_journal *j, cbx_err *err);
int cbx__journal_note_cut_locked(cbx_journal *j, int64_t cut_ms, cbx_err *err);
int cbx__journal_prune_size_locked(cbx_journal *j, cbx_err *err);
/* A number no handle of the process has had before (cbx_journal_retention_epoch). */
uint64_t cbx__journal_new_epoch(void);

#endif
