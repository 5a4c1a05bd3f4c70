/* Flow runs and their steps, in the journal's database (tables flow_runs, flow_steps).
 *
 * The records go through the journal's own connection and batches (cbx_journal_write_db): one
 * connection writes, so a record never waits for another's lock. A record is durable once its
 * batch has committed; the runner holds a step's outcome back from the rest of the flow until
 * then, so that a step recorded as succeeded is never run again and nothing ran on the strength
 * of a step the journal does not have. */
#ifndef CBX_FLOW_JOURNAL_H
#define CBX_FLOW_JOURNAL_H

#include "cbx/err.h"
#include "cbx/journal.h"

#include <jansson.h>
#include <stdint.h>

typedef struct cbx__flow_journal cbx__flow_journal;

/* Make the tables in j's database when missing and prepare the writes. j is borrowed: it must
 * outlive the handle. Returns 0 or CBX_EJOURNAL. */
int cbx__flow_journal_open(cbx__flow_journal **out, cbx_journal *j, cbx_err *err);
/* NULL accepted. */
void cbx__flow_journal_close(cbx__flow_journal *fj);

/* Each writes one record into the journal's open batch and returns 0 or CBX_EJOURNAL; *batch,
 * when not NULL, gets the batch's number (cbx_journal_batch_state says when it has committed;
 * cbx_journal_flush commits it now). */
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

/* A foreach item's end (table flow_items), in the open batch: item is its index (of the batch
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
