/* Flow runs and their steps, in the journal's database (tables flow_runs, flow_steps).
 *
 * Unlike execution records, which the journal batches, a step's record is committed before the
 * runner goes on: a run killed at any point resumes from exactly what had been recorded, and a
 * step recorded as succeeded is never run again. */
#ifndef CBX_FLOW_JOURNAL_H
#define CBX_FLOW_JOURNAL_H

#include "cbx/err.h"

#include <jansson.h>
#include <stdint.h>

typedef struct cbx__flow_journal cbx__flow_journal;

/* Open the tables in the database at path (made if missing). */
int cbx__flow_journal_open(cbx__flow_journal **out, const char *path, cbx_err *err);
void cbx__flow_journal_close(cbx__flow_journal *j);

int cbx__flow_journal_run_start(cbx__flow_journal *j, const char *run_id, const char *flow,
                                const char *file, const json_t *inputs, uint64_t started_ms,
                                cbx_err *err);
int cbx__flow_journal_run_end(cbx__flow_journal *j, const char *run_id, const char *status,
                              const json_t *outputs, const char *error, uint64_t ended_ms,
                              cbx_err *err);
int cbx__flow_journal_step_start(cbx__flow_journal *j, const char *run_id, const char *step,
                                 uint64_t started_ms, cbx_err *err);
int cbx__flow_journal_step_end(cbx__flow_journal *j, const char *run_id, const char *step,
                               const char *status, const json_t *outputs, uint32_t attempts,
                               const char *error, uint64_t ended_ms, cbx_err *err);

/* A run as {run_id, flow, file, inputs, status, error, started_ms, ended_ms, outputs,
 * steps: {name: {status, outputs, attempts, error, started_ms, ended_ms}}} (new reference), or
 * -ENOENT. */
int cbx__flow_journal_get(cbx__flow_journal *j, const char *run_id, json_t **out, cbx_err *err);

/* Runs, newest first: [{run_id, flow, status, started_ms, ended_ms, error}]. */
int cbx__flow_journal_list(cbx__flow_journal *j, uint32_t limit, json_t **out, cbx_err *err);

#endif
