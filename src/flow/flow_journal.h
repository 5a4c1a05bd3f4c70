/* Flow runs and their steps, in the journal's database (tables flow_runs, flow_steps,
 * flow_items).
 *
 * The records go through the journal's own connection and batches: one connection writes, so a
 * record never waits for another's lock. They are queued (cbx_journal_queue_db) as rows of a
 * bundle per run, which the thread that writes the journal's queue writes in one go, in one
 * batch; a row whose start and end are both in the bundle is inserted whole. A record is durable
 * once its batch has committed; the runner holds a step's outcome back from the rest of the flow
 * until then (asking for the batch's number writes the queue at once), so that a step recorded
 * as succeeded is never run again and nothing ran on the strength of a step the journal does not
 * have. */
#ifndef CBX_FLOW_JOURNAL_H
#define CBX_FLOW_JOURNAL_H

#include "cbx/err.h"
#include "cbx/journal.h"

#include <jansson.h>
#include <stdint.h>

typedef struct cbx__flow_journal cbx__flow_journal;

/* A run's handle on j (borrowed: it must outlive the handle and the run's queued records); the
 * tables are made when a record first finds them missing. Returns 0 or -ENOMEM. */
int cbx__flow_journal_open(cbx__flow_journal **out, cbx_journal *j, cbx_err *err);
/* NULL accepted. The records queued stay queued: the journal writes them. */
void cbx__flow_journal_close(cbx__flow_journal *fj);

/* Each queues one record (behind every record queued before it) and returns 0, CBX_EJOURNAL
 * (an earlier write that failed; a record written at once that failed) or -ENOMEM. With batch
 * not NULL the queue is written now and *batch gets the number of the batch that holds the
 * record (cbx_journal_batch_state says when it has committed; cbx_journal_flush commits it
 * now). */
int cbx__flow_journal_run_start(cbx__flow_journal *fj, const char *run_id, const char *flow,
                                const char *file, const json_t *inputs, uint64_t started_ms,
                                uint64_t *batch, cbx_err *err);
int cbx__flow_journal_run_end(cbx__flow_journal *fj, const char *run_id, const char *status,
                              const json_t *outputs, const char *error, uint64_t ended_ms,
                              uint64_t *batch, cbx_err *err);
int cbx__flow_journal_step_start(cbx__flow_journal *fj, const char *run_id, const char *step,
                                 uint64_t started_ms, uint64_t *batch, cbx_err *err);
int cbx__flow_journal_step_end(cbx__flow_journal *fj, const char *run_id, const char *step,
                               const char *status, const json_t *outputs, uint32_t attempts,
                               const char *error, uint64_t ended_ms, uint64_t *batch, cbx_err *err);

/* A foreach item's end (table flow_items), queued: item is its index (of the batch
 * with batch_size), item_hash a hash of its value, so that a resume takes its outputs only for the
 * same item. */
int cbx__flow_journal_item_end(cbx__flow_journal *fj, const char *run_id, const char *step,
                               size_t item, uint64_t item_hash, const char *status,
                               const json_t *outputs, uint32_t attempts, const char *error,
                               uint64_t ended_ms, cbx_err *err);

/* A run as {run_id, flow, file, inputs, status, error, started_ms, ended_ms, outputs,
 * steps: {name: {status, outputs, attempts, error, started_ms, ended_ms[, items]}}} (new
 * reference), where items is {"index": {status, outputs, attempts, error, hash}} for a foreach
 * step whose items were recorded; or
 * -ENOENT. Sees the records of the open batch too. */
int cbx__flow_journal_get(cbx_journal *j, const char *run_id, json_t **out, cbx_err *err);

/* Runs, newest first: [{run_id, flow, status, started_ms, ended_ms, error}]. */
int cbx__flow_journal_list(cbx_journal *j, uint32_t limit, json_t **out, cbx_err *err);

#endif
