/* cbx/journal.h - every execution and attempt, written to SQLite, and the queries over them.
 *
 * The journal is one SQLite database in WAL mode, by default $CBX_STATE_DIR/journal.db, else
 * $XDG_STATE_HOME/cbx/journal.db, else ~/.local/state/cbx/journal.db (the directory is made).
 * The runtime hands its writes to the journal's flusher thread from its loop thread (the
 * SQLite work runs there); several processes may share one file.
 *
 * Secrets are never written: the runtime passes parameters through cbx_schema_redact (secret
 * parameters), and the journal itself replaces Authorization-like headers, environment
 * variables on its redaction list and members with common secret names (*_TOKEN, *_KEY, ...)
 * with "***" wherever they appear, in every record (other modules' through cbx_journal_encode).
 * It is bounded by count, age and size, and one record's JSON by a cap; writes it could not
 * make are counted and kept in a loss ledger (cbx_journal_losses_get). docs/journal.md.
 */
#ifndef CBX_JOURNAL_H
#define CBX_JOURNAL_H

#include <jansson.h>
#include <stdint.h>

#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_journal cbx_journal;

typedef struct cbx_journal_opts {
    const char *path;              /* NULL = the default above; ":memory:" for tests */
    uint64_t max_executions;       /* retention: keep the newest N executions (a few hundred
                                      more between passes); 0 = 100000 */
    uint64_t max_age_ms;           /* retention: drop executions older than this; 0 = forever */
    const char *const *redact_env; /* NULL-terminated extra names (globs like "*_TOKEN") to
                                      redact; a built-in list always applies */
    /* The fields below were added later; the struct only grows at the end. */
    int read_only;      /* 1: open for queries only (SQLITE_OPEN_READONLY): nothing is made, written
                           or pruned, so a journal the caller may read but not write can be queried;
                           a missing file is -ENOENT; every write returns CBX_EJOURNAL */
    uint64_t max_bytes; /* retention: drop the oldest executions while the database's
                           pages in use exceed this; 0 = 256 MiB, UINT64_MAX = no bound */
    uint64_t max_record_bytes; /* the longest JSON text one column of a record may hold
                                  (params, outputs, metadata, flow inputs and outputs): beyond
                                  it long strings are cut and the value is flagged
                                  "cbx_truncated"; 0 = 1 MiB, UINT64_MAX = no cap */
    int open_in_background;    /* 1: cbx_journal_open checks the directory and the file (made when
                                  missing, a symbolic link refused) and returns; the journal's thread
                                  opens the database meanwhile (SQLite's open, the WAL's index, the
                                  schema, retention), while the caller goes on (cbx exec runs its
                                  command). Writes are queued as usual; every call that needs the
                                  database waits for the open. An open that fails there makes every
                                  write lost (counted, as a failed write is); cbx_journal_open_error
                                  says why. Meant for a handle used for writes, flush, losses and
                                  close: the queries of a handle whose open failed are undefined. */
} cbx_journal_opts;

/* Open (creating if needed; the file 0600, and its -wal and -shm the same). Errors: CBX_EJOURNAL
 * with SQLite's message, -errno for the directory or the file, -ELOOP when the file is a
 * symbolic link (never followed). Close with cbx_journal_close (NULL accepted), which flushes
 * pending writes. */
int cbx_journal_open(cbx_journal **out, const cbx_journal_opts *o, cbx_err *err);
void cbx_journal_close(cbx_journal *j);
const char *cbx_journal_path(const cbx_journal *j);
/* The outcome of an open made in the background (open_in_background), waited for: 0, or the error
 * cbx_journal_open would have returned (err filled). 0 for a handle opened the usual way. */
int cbx_journal_open_error(cbx_journal *j, cbx_err *err);

/* ---- writes (from the runtime) ------------------------------------------------------------- */

typedef struct cbx_journal_execution {
    const char *id; /* UUID */
    const char *executor;
    const json_t *params;  /* redacted by the caller; the journal redacts again by name */
    const char *tag;       /* NULL */
    const char *breaker;   /* the named breaker guarding it, NULL */
    const char *policy;    /* the policy's name, NULL */
    uint64_t submitted_ms; /* wall clock */
    const char *status;    /* the status it starts in: "pending" (queued) or NULL = "running" */
} cbx_journal_execution;

typedef struct cbx_journal_attempt_info {
    const char *execution_id;
    uint32_t number;
    const char *outcome; /* cbx_outcome_name */
    uint64_t started_ms; /* wall clock */
    uint64_t duration_ns;
    const char *error;            /* NULL */
    const json_t *metadata;       /* NULL */
    const char *breaker_decision; /* "admitted", "probe", "rejected: ..." ; NULL */
} cbx_journal_attempt_info;

typedef struct cbx_journal_end {
    const char *execution_id;
    const char *status; /* cbx_status_name */
    int rc;
    int fallback_used;
    uint32_t attempts;
    const json_t *outputs; /* NULL */
    const char *error;     /* NULL */
    uint64_t ended_ms;
    uint64_t duration_ns;
} cbx_journal_end;

/* Each encodes the record's JSON and copies its strings (nothing of the caller's is kept), then
 * queues it for the flusher thread, which writes it into a batch: a transaction that commits
 * within a few milliseconds and at close (flush, a query, cbx_journal_write_db write the queue
 * first, in order): nothing is lost on a clean exit, at most that window on a crash. Returns 0,
 * or CBX_EJOURNAL for a missing argument, a value that cannot be encoded, or an earlier write of
 * the handle that failed (a write the flusher cannot make is counted as lost and reported so by
 * the next call). A refused request is written as an execution with only its end (status
 * "rejected"). */
int cbx_journal_execution_start(cbx_journal *j, const cbx_journal_execution *e, cbx_err *err);
int cbx_journal_attempt(cbx_journal *j, const cbx_journal_attempt_info *a, cbx_err *err);
int cbx_journal_execution_end(cbx_journal *j, const cbx_journal_end *e, cbx_err *err);
/* The status an execution is in while it lasts ("pending", "running", "retrying"): written
 * over its row until its end replaces it (an execution already ended is left alone). */
int cbx_journal_execution_status(cbx_journal *j, const char *id, const char *status, cbx_err *err);
/* Commit what is pending now. */
int cbx_journal_flush(cbx_journal *j, cbx_err *err);

/* ---- records of other modules, in the same batches (flow runs use this) --------------------- */

struct sqlite3;

/* Work on the journal's own SQLite connection. db is borrowed for the call; return 0 or a
 * negative code with err filled. */
typedef int (*cbx_journal_db_fn)(struct sqlite3 *db, void *ud, cbx_err *err);

/* Run fn inside the open batch (one is begun if none is open) under the handle's lock, so that
 * its writes commit with the journal's own records, in the order made, on the one connection that
 * writes: nothing waits for another connection's batch. It counts as one write towards the
 * batch's limits, and may commit the batch after fn when that is due.
 *
 * fn must not begin, commit or roll back a transaction, must not call the journal (its lock is
 * held), and must finalize the statements it prepares on db, in this call or a later
 * cbx_journal_read_db, before cbx_journal_close. Tables of its own are the caller's (create them
 * with IF NOT EXISTS); the journal's retention and clear never touch them.
 *
 * *batch, if not NULL, gets the number of the batch that holds the writes (batches are numbered
 * from 1 in the order they begin), for cbx_journal_batch_state. Returns 0; fn's code when fn
 * fails (its failed statement is undone; the batch stays open unless SQLite rolled it back, which
 * is then reported as lost); CBX_EJOURNAL when the write succeeded but an earlier batch was lost;
 * CBX_EJOURNAL when the batch cannot begin. */
int cbx_journal_write_db(cbx_journal *j, cbx_journal_db_fn fn, void *ud, uint64_t *batch,
                         cbx_err *err);

/* As cbx_journal_write_db, but without waiting: fn(db, ud, err) is queued behind the journal's
 * own records and run in order with them, in a batch, by the thread that writes the queue (the
 * flusher thread, or a caller that writes it first: cbx_journal_write_db, a query, a flush,
 * close), within the batch window (a crash loses at most that window, as for the journal's own
 * records). The same rules hold for fn (no transaction, no call to the journal); its error is
 * counted as a lost write and reported by a later call. free_ud(ud), if not NULL, is called
 * once after fn ran, or instead of it when the write cannot be queued or is never made. So the
 * loop that produces records of its own (cbx serve's events) leaves SQLite's work to the
 * flusher. Returns 0, CBX_EJOURNAL for a missing argument or an earlier write that failed,
 * -ENOMEM. */
int cbx_journal_queue_db(cbx_journal *j, cbx_journal_db_fn fn, void *ud, void (*free_ud)(void *),
                         cbx_err *err);
/* As cbx_journal_queue_db, but free_ud(ud) is called later, and by another thread: by the next
 * caller that queues a write after fn ran (or by cbx_journal_close), not by the thread that wrote
 * the queue right after fn. For data that only fn reads and whose release nobody waits for: the
 * thread that writes the queue (the flusher) is what many writers wait on, and freeing what
 * their threads allocated cost it a tenth of its time in a --batch of short runs. free_ud must
 * not call the journal. */
int cbx_journal_queue_db_free_later(cbx_journal *j, cbx_journal_db_fn fn, void *ud,
                                    void (*free_ud)(void *), cbx_err *err);

/* A JSON value as the journal writes it, for the records of other modules: compact text with
 * the journal's secrets masked (docs/journal.md, "What is redacted") and cut to the record cap
 * (cbx_journal_opts.max_record_bytes; a cut value is flagged "cbx_truncated"), so that every
 * record kind goes through the one redaction path. *text (NUL-terminated, free() it) and *len;
 * NULL and 0 for v NULL. *truncated (may be NULL) says whether it was cut. Thread-safe; needs
 * no batch. Returns 0, -ENOMEM, or CBX_EJOURNAL for a value nested too deep (a cycle). */
int cbx_journal_encode(cbx_journal *j, const json_t *v, char **text, size_t *len, int *truncated,
                       cbx_err *err);
struct sqlite3_stmt;

/* Only inside fn of cbx_journal_write_db or cbx_journal_read_db (the handle's lock is held): the
 * statement for sql, prepared on the journal's connection the first time this handle is asked
 * for it and kept until cbx_journal_close, which finalizes it. sql is the key by its address: a
 * string that lives as long as the handle (a literal), the same address for the same text. *st
 * is borrowed: reset it (and clear its bindings) before fn returns, never finalize it. So a
 * module that writes through the journal parses its SQL once per handle, not once per use (each
 * flow run once prepared its six statements: a fifth of a no-op run's time). Returns 0;
 * CBX_EJOURNAL with SQLite's message (a table that does not exist, bad SQL: nothing is kept), or
 * for a NULL argument; -ENOMEM. */
int cbx_journal_stmt(cbx_journal *j, const char *sql, struct sqlite3_stmt **st, cbx_err *err);

/* A number that changes whenever retention may have dropped executions: new for each handle
 * opened and at each retention pass of the handle (cbx_journal_prune, and one every 1,000
 * writes); no two handles of the process share one; a pass of another process is seen at this
 * handle's next pass. So a module whose records follow the executions (flow runs) looks for the
 * ones retention left behind once per change, not at every record. Thread-safe (also inside fn
 * of cbx_journal_write_db and cbx_journal_queue_db). 0 for j NULL. */
uint64_t cbx_journal_retention_epoch(cbx_journal *j);

/* Run fn on the connection without beginning a batch, for reads (and to finalize statements). It
 * sees every write made before it on this handle, the open batch's included. Returns fn's
 * result. */
int cbx_journal_read_db(cbx_journal *j, cbx_journal_db_fn fn, void *ud, cbx_err *err);

/* Called once a batch has ended, committed or lost, on the thread that ended it (a writer's, one
 * calling cbx_journal_flush, or the journal's flusher thread), with the handle's lock held: it
 * must not call the journal nor block. Wake a thread of yours (uv_async_send, a condition
 * variable) and ask cbx_journal_batch_state there. */
typedef void (*cbx_journal_commit_fn)(void *ud);

/* Call fn(ud) after every batch from now on. Up to 1024 per handle (CBX_EJOURNAL beyond). */
int cbx_journal_on_commit(cbx_journal *j, cbx_journal_commit_fn fn, void *ud, cbx_err *err);
/* Stop calling fn(ud) (a pair not registered is ignored); once this returns, fn is not running
 * and will not be called. */
void cbx_journal_on_commit_remove(cbx_journal *j, cbx_journal_commit_fn fn, void *ud);

/* Have the open batch committed now, without waiting for it: the flusher thread commits it, or
 * the caller when that thread is busy with a checkpoint. The functions of cbx_journal_on_commit
 * are called then, also when there was nothing to commit. Returns 0, or CBX_EJOURNAL when the
 * caller committed and the commit failed. */
int cbx_journal_commit_soon(cbx_journal *j, cbx_err *err);

/* ---- writes that could not be made ----------------------------------------------------------- */

/* Writes (an execution's start, an attempt, an execution's end, a record of cbx_journal_write_db)
 * known to be lost: a write that failed, or the writes of a batch that SQLite rolled back or
 * whose commit failed (a full disk, an I/O error, a read-only file). */
typedef struct cbx_journal_losses {
    uint64_t writes;   /* how many; 0 = none known */
    uint64_t first_ms; /* wall clock of the first and the last loss; 0 when none */
    uint64_t last_ms;
    char last_error[256]; /* the last failure, one line (SQLite's words) */
} cbx_journal_losses;

/* Losses seen by this handle since it was opened (recorded = 0), or the losses every process
 * recorded in the journal's loss ledger (recorded = 1): the file `<journal>-lost` beside the
 * database, one page made when the journal is first opened, so that a loss can be recorded
 * there in place even when the disk is full. Losses a process could not record there (the
 * ledger could not be made) are counted by its handle only. Fills *out; returns 0, or -errno
 * when the ledger cannot be read. :memory: journals have no ledger. */
int cbx_journal_losses_get(cbx_journal *j, int recorded, cbx_journal_losses *out, cbx_err *err);
/* Zero the ledger (and this handle's count). Returns 0 or -errno. */
int cbx_journal_losses_reset(cbx_journal *j, cbx_err *err);

/* Whether batch number `batch` (from cbx_journal_write_db) is durable: 1 once it has committed
 * (in WAL mode with synchronous=NORMAL: it survives the death of the process), 0 while it is
 * still open, CBX_EJOURNAL when it was lost (rolled back, see "Batching and durability"; a batch
 * that committed between two lost ones may be reported lost too), -EINVAL for a number no batch
 * had. Never commits and never waits for the database; cbx_journal_flush commits at once. */
int cbx_journal_batch_state(cbx_journal *j, uint64_t batch, cbx_err *err);

/* ---- queries --------------------------------------------------------------------------------- */

typedef struct cbx_history_filter {
    const char *executor; /* NULL = any */
    const char *status;   /* NULL = any */
    const char *breaker;  /* NULL = any */
    const char *tag;      /* NULL = any */
    uint64_t since_ms;    /* 0 = any */
    uint64_t until_ms;    /* 0 = any */
    uint32_t limit;       /* newest first; 0 = 100 */
    /* The fields below were added later; the struct only grows at the end. */
    const char *run_id; /* a flow run's executions (tag "flow:<run_id>/..."); NULL = any */
    const char *step;   /* a flow step's executions (tag ".../<step>"); NULL = any */
    int brief; /* 1: rows without params and outputs (not read, not parsed); history only */
} cbx_history_filter;

/* Executions, newest first, as a JSON array of objects (id, executor, status, rc, error,
 * fallback_used, attempts, submitted_ms, ended_ms, duration_ms, tag, breaker, policy, params,
 * outputs). New reference in *rows. */
int cbx_journal_history(cbx_journal *j, const cbx_history_filter *f, json_t **rows, cbx_err *err);

/* The same rows one at a time, for listings too long to hold: fn(row, ud) for each, newest first.
 * row is borrowed, valid during the call only. fn returns 0 to go on, anything else to stop, and
 * cbx_journal_history_each then returns that value. fn runs with the handle's lock held: it must
 * not call the journal, and a slow fn delays the handle's writers. Returns 0, fn's value, -EINVAL,
 * -ENOMEM or CBX_EJOURNAL (err filled, but not for fn's value). */
typedef int (*cbx_journal_row_fn)(const json_t *row, void *ud);
int cbx_journal_history_each(cbx_journal *j, const cbx_history_filter *f, cbx_journal_row_fn fn,
                             void *ud, cbx_err *err);

/* One execution with its attempts (object; NULL in *row and -ENOENT when unknown). */
int cbx_journal_get(cbx_journal *j, const char *id, json_t **row, cbx_err *err);

/* Statistics over the filtered executions (seed 004 get_execution_stats / get_tool_stats):
 * executions, successes, failures, timeouts, cancelled, rejected, success_rate, latency
 * mean/p50/p95/p99 in ms, mean attempts. group_by NULL = one object; "executor", "breaker",
 * "tag", "step" or "flow" = an object of such objects keyed by name (tag, step and flow count
 * only executions with a tag; step and flow only flow executions: "step" by the step's name
 * within its flow, "flow" by the flow's name from its run). */
int cbx_journal_stats(cbx_journal *j, const cbx_history_filter *f, const char *group_by,
                      json_t **out, cbx_err *err);

/* Delete the filtered executions (all when f is NULL) and their attempts; *deleted if not NULL. */
int cbx_journal_clear(cbx_journal *j, const cbx_history_filter *f, uint64_t *deleted, cbx_err *err);

/* Apply the retention limits now, exactly: max_executions rows at most are left. They are also
 * applied every 1,000 writes and at the open, which lets the table exceed max_executions by up
 * to 333 rows (docs/journal.md, "Retention"). 0 or CBX_EJOURNAL. */
int cbx_journal_prune(cbx_journal *j, cbx_err *err);

/* The state directory the defaults use (made if missing); writes into buf. Returns 0 or -errno;
 * -EPERM when it breaks the rules of cbx/state_dir.h (another owner, writable by others). */
int cbx_state_dir(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
