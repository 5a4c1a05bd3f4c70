/* cbx/flow.h - flows: YAML (or JSON) files of steps that run executors, as a DAG.
 *
 * A flow names typed inputs, named policies, steps and outputs (see docs/flows.md and the seed's
 * flow.yaml). A step runs an executor with a templated config under a policy; it depends on
 * the steps it references ({{ steps.X... }}) and on those in its `needs:`; independent steps
 * run concurrently. `when:` skips a step, `foreach:` runs it once per item (batch_size,
 * parallelism), `continue_on_error:` lets the flow go on past its failure. A step whose
 * executor is `steps` runs nested steps in sequence or in parallel; a step with `flow:` runs
 * another flow file with its own inputs.
 *
 * Loading checks everything that can be checked before running and reports every problem at
 * once, each with file:line:col. Running journals the run and each step (start, outcome,
 * outputs), so that a run killed half-way can be resumed: steps that succeeded are not run
 * again, the others are, with the same inputs.
 */
#ifndef CBX_FLOW_H
#define CBX_FLOW_H

#include <jansson.h>

#include "cbx/diag.h"
#include "cbx/err.h"
#include "cbx/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_flow cbx_flow;

/* Load and check a flow file. Returns 0 and *out (free with cbx_flow_free), or CBX_EPARSE /
 * CBX_EINVAL_CONFIG / -errno with every problem in *diag (where = the file, line, col). reg is
 * borrowed for the check only (executor names and literal parameters). */
int cbx_flow_load(cbx_flow **out, const char *path, const cbx_registry *reg, cbx_diag *diag);
int cbx_flow_load_string(cbx_flow **out, const char *text, size_t len, const char *name,
                         const cbx_registry *reg, cbx_diag *diag);
void cbx_flow_free(cbx_flow *f);

const char *cbx_flow_name(const cbx_flow *f);
const char *cbx_flow_file(const cbx_flow *f);
/* 1 when the flow declares an outputs block (even an empty one), else 0. */
int cbx_flow_declares_outputs(const cbx_flow *f);
/* The steps written in the file: the flow's, and those inside executor: steps blocks (not those
 * of sub-flows). 0 for NULL. */
size_t cbx_flow_step_count(const cbx_flow *f);

/* Check inputs against the flow's declarations; returns a new object with defaults applied
 * (*out) or CBX_EINVAL_CONFIG with each problem (unknown, missing, mistyped, not in enum). */
int cbx_flow_inputs(const cbx_flow *f, const json_t *given, json_t **out, cbx_diag *diag);

/* One step of a loaded flow, as cbx_flow_steps_walk shows it. Valid during the callback only. */
typedef struct cbx_flow_step_info {
    const char *name;     /* the full name: "fetch", or "prepare.cache" for a composite's child */
    const char *executor; /* its type name; "steps" for a composite; NULL for a sub-flow */
    int depth;            /* 0 for the flow's own steps, 1 for their children, ... */
    int foreach;          /* 1 when it has foreach: (a list or an expression) */
    int continue_on_error;
} cbx_flow_step_info;

/* Call fn for each step of f in file order, a composite's steps right after it (a sub-flow's
 * steps are not shown: they belong to its own file). Stops at the first non-zero return of fn
 * and returns it; 0 when every step was shown. Costs no allocation; names up to 1,023 bytes. */
int cbx_flow_steps_walk(const cbx_flow *f, int (*fn)(const cbx_flow_step_info *s, void *ud),
                        void *ud);

/* The DAG as text: format "mermaid" or "dot". Returns a malloc'd string (caller frees), or NULL
 * for an unknown format. */
char *cbx_flow_graph(const cbx_flow *f, const char *format);

/* What happens during a run, for a live view. Valid during the callback only. */
typedef enum cbx_flow_event_kind {
    CBX_FLOW_STEP_STARTED,
    CBX_FLOW_STEP_RETRYING,
    CBX_FLOW_STEP_FINISHED, /* status says how */
    CBX_FLOW_STEP_SKIPPED,  /* when: was false, or a dependency failed */
} cbx_flow_event_kind;

typedef struct cbx_flow_event {
    cbx_flow_event_kind kind;
    const char *run_id; /* the run's id (resume with it) */
    const char *step;   /* "fetch", or "fanout[3]" for a foreach item */
    cbx_status status;  /* for FINISHED */
    const char *error;  /* for FINISHED when not successful; "" otherwise */
    uint32_t attempts;
    uint32_t done, total; /* steps finished so far, steps in all */
} cbx_flow_event;

typedef void (*cbx_flow_event_fn)(const cbx_flow_event *ev, void *ud);

/* What cbx_flow_result.steps holds (cbx_flow_run_opts.steps). A record is about 1.1 KB of memory
 * a step, made when the run ends: a caller that shows less asks for less. */
typedef enum cbx_flow_steps_table {
    CBX_FLOW_STEPS_RECORDS = 0, /* {name: {status, outputs, attempts, ...}}: see steps below */
    CBX_FLOW_STEPS_OUTPUTS,     /* {name: outputs} of the top-level steps whose status is success,
                                   in the flow's order (null for a step without outputs): what
                                   cbx run prints for a flow that declares no outputs */
    CBX_FLOW_STEPS_NONE,        /* steps is NULL */
} cbx_flow_steps_table;

typedef struct cbx_flow_run_opts {
    const json_t *inputs;         /* borrowed; checked with cbx_flow_inputs */
    const char *resume_run_id;    /* re-run only what had not succeeded in that run; NULL */
    uint32_t concurrency;         /* steps at once; 0 = the flow's, else 8 */
    const char *const *env_allow; /* environment variables templates may read (env.X) */
    cbx_flow_event_fn on_event;
    void *ud;
    /* CBX_TMPDIR_* (cbx/runtime.h): a temporary directory for each step execution. Every step
     * execution sees the run id, its step name and the flow's metadata {flow, version,
     * description, inputs} (cbx_task_run_id, _step, _metadata, _tmpdir). */
    int tmpdir;
    /* A new run's id (up to 39 characters; copied), so that a caller can record it before the
     * run starts (a batch maps its lines to runs this way); NULL = a new UUIDv7. Not with
     * resume_run_id (that run keeps its id). */
    const char *run_id;
    /* 1: cbx_flow_run commits neither the run's start before its first step nor its end before
     * it returns; both commit with the journal's batches (within its 5 ms window). Without
     * on_event, a step of the top level that no other step needs is not held for its commit
     * either (nothing follows from it but the run's end, in a later or the same batch). So a
     * short run waits for no commit, and many runs share one. For a caller that shows nothing of
     * a run before that run's end has committed (cbx_journal_write_db's batch number and
     * cbx_journal_batch_state tell it when), and that can tell a run the journal does not have:
     * a crash before the commit leaves no trace of the run (cbx run --batch notes each line's
     * run id first, and on --resume runs a line whose run the journal lacks afresh). 0 = the
     * run is committed before anything of it shows and its end before cbx_flow_run returns
     * (docs/flows.md). */
    int lazy_commit;
    /* The W3C traceparent of the span the run's span is a child of (cbx/trace.h): the flow
     * executor gives its attempt's. NULL or not valid = the process's TRACEPARENT, else the run
     * is a trace of its own. Read only when the process traces. */
    const char *traceparent;
    /* What res->steps holds; 0 = CBX_FLOW_STEPS_RECORDS, a record per step. */
    cbx_flow_steps_table steps;
} cbx_flow_run_opts;

typedef struct cbx_flow_result {
    char run_id[40];
    cbx_status status; /* SUCCESS, FAILED, TIMEOUT, CANCELLED (REJECTED: bad inputs) */
    json_t *outputs;   /* owned: the flow's outputs, rendered; NULL when it failed */
    json_t *steps;     /* owned: {name: {status, outputs, attempts, error, started_ms,
                          duration_ms, skipped, resumed[, items_resumed]}}; status is the word the
                          journal has: success, failed, timeout, cancelled (a step the flow's
                          timeout stopped), rejected, or skipped / pending for steps that did
                          not run; items_resumed: a foreach's items taken from the run resumed.
                          Other shapes, or NULL, as cbx_flow_run_opts.steps asks */
    char error[512];   /* the first failure, naming the step */
    uint64_t duration_ns;
} cbx_flow_result;

/* Run a flow on rt (its journal records the run). Blocks, running rt's loop, until the flow
 * ends. Returns 0 when res->status is SUCCESS, else a negative code; *res is filled either way
 * (release with cbx_flow_result_clear). */
int cbx_flow_run(cbx_runtime *rt, cbx_flow *f, const cbx_flow_run_opts *o, cbx_flow_result *res,
                 cbx_err *err);
void cbx_flow_result_clear(cbx_flow_result *r);
json_t *cbx_flow_result_to_json(const cbx_flow_result *r);

/* The "flow" executor type (static; register it with cbx_registry_register): one execution runs
 * a flow file - params {file, inputs, concurrency} - on a thread and loop of its own, with a
 * runtime sharing the submitting runtime's registry, journal and breakers, and reports
 * {run_id, status, outputs (the flow's), steps: {name: status}}. Outcome: success, timeout, or
 * error naming the failed step (a file that does not load: its first problem, file:line:col). A
 * cancel or a timeout cancels the run's steps. The cbx command registers it. */
const cbx_executor_type *cbx_flow_executor_type(void);

/* Runs recorded in a journal, newest first: [{run_id, flow, status, started_ms, ended_ms,
 * error}] (new reference; limit 0 = 50). */
int cbx_flow_runs_list(cbx_journal *j, uint32_t limit, json_t **out, cbx_err *err);

/* Which runs cbx_flow_runs_query lists (every field optional: 0 / NULL = any). */
typedef struct cbx_flow_runs_filter {
    const char *status; /* as listed: running, success, failed, ..., or abandoned (a run not
                           ended whose process is gone) */
    const char *flow;   /* the flow's name */
    uint64_t since_ms;  /* started at or after (wall clock, ms) */
    uint32_t limit;     /* newest first; 0 = 50 */
} cbx_flow_runs_filter;

/* As cbx_flow_runs_list, for the runs f selects (NULL = all). */
int cbx_flow_runs_query(cbx_journal *j, const cbx_flow_runs_filter *f, json_t **out, cbx_err *err);

/* The same runs one at a time, as cbx_journal_history_each gives executions (cbx/journal.h):
 * fn(row, ud) for each, newest first, row borrowed for the call; fn returns 0 to go on, anything
 * else to stop, returned. fn runs under the journal's lock and must not call it. Returns 0, fn's
 * value, -EINVAL, -ENOMEM or CBX_EJOURNAL (err filled, but not for fn's value). */
int cbx_flow_runs_each(cbx_journal *j, const cbx_flow_runs_filter *f, cbx_journal_row_fn fn,
                       void *ud, cbx_err *err);

/* One run with its inputs, outputs and every step's record (new reference), or -ENOENT. */
int cbx_flow_run_show(cbx_journal *j, const char *run_id, json_t **out, cbx_err *err);

#ifdef __cplusplus
}
#endif
#endif
