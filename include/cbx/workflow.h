/* cbx/workflow.h - workflows: Petri nets of places and transitions, guarded by rules, moving
 * tokens through executors (seed 000's rules engine and workflow DSL; docs/workflows.md).
 *
 * A workflow file names its `places`, where tokens start (`start`, default the first place) and
 * end (`final`), its `rules` (Lua predicates over `token`), optional Lua `helpers`, and its
 * `transitions`. A token carries a JSON object (its data) and its history, and sits in one
 * place. A transition takes one token from each of its `from` places (a join merges their data)
 * and puts one into each of its `to` places (a fork).
 *
 * Firing, in this order (docs/workflows.md, "Semantics"):
 *   1. enabled: a token in every input place (a join pairs tokens of one family, or any with
 *      `join: any`), the `validations` hold (fields present: all / any), and the trigger is
 *      there (automatic; a signal sent to the token; `after:` time spent in the place);
 *   2. the `action` runs (an executor under its resilience policy) on the token's data;
 *   3. its outputs (and a signal's data) merge into a copy of the data, top-level keys replacing;
 *   4. the `rules` (all / any) are evaluated on the merged copy;
 *   5. the tokens move (the copy becomes their data), or stay with their data unchanged and a
 *      history entry saying why ("transition complete blocked: rule high_confidence is false
 *      (token.confidence_score = 0.62)").
 * Transitions from one place are tried by `priority` (higher first), then declaration order; a
 * transition that was tried and blocked is not tried again for the same token until it moves
 * (or, for a signal transition, until the next signal). A token that can go nowhere outside a
 * final place is stuck; one that only waits for a signal or timer is waiting. A token that
 * fired `limits.firings_per_token` transitions (default 1000) fails.
 *
 * Durability: a run on a runtime with a journal writes every token added, firing, blocked
 * attempt with its rules' verdicts, action start and result, and signal as an event, in order.
 * cbx_workflow_resume rebuilds the run from its events; an action whose result was journaled is
 * never run again (its result is committed from the journal).
 *
 * Threads: a run belongs to the thread running its runtime's loop.
 */
#ifndef CBX_WORKFLOW_H
#define CBX_WORKFLOW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/diag.h"
#include "cbx/err.h"
#include "cbx/journal.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_workflow cbx_workflow;
typedef struct cbx_workflow_run cbx_workflow_run;

/* The default per-token cap on firings (limits.firings_per_token). */
#define CBX_WORKFLOW_DEFAULT_FIRINGS 1000u
/* The default instruction budget of one rule evaluation (limits.rule_instructions). */
#define CBX_WORKFLOW_DEFAULT_RULE_INSTRUCTIONS 1000000u
/* The default memory limit of a run's rule sandbox in bytes (limits.rule_memory). */
#define CBX_WORKFLOW_DEFAULT_RULE_MEMORY (32u << 20)

/* ---- loading and checking ----------------------------------------------------------------- */

/* Load a workflow file and check each part of it: keys, places, rules (Lua syntax, unknown names
 * and helpers), helpers (Lua syntax), transitions, executors and their literal parameters,
 * policies. Every problem goes into *diag with file:line:col (positions of Lua errors are
 * mapped into the file). reg is borrowed during the call (executor names and parameters; NULL
 * skips those checks). Returns 0 and *out (free with cbx_workflow_free), CBX_EPARSE (YAML),
 * CBX_EINVAL_CONFIG (problems), -errno or -ENOMEM. The structure is checked apart
 * (cbx_workflow_check). */
int cbx_workflow_load(cbx_workflow **out, const char *path, const cbx_registry *reg,
                      cbx_diag *diag);
/* The same from text (len bytes, borrowed); name is the file name in messages (copied). */
int cbx_workflow_load_string(cbx_workflow **out, const char *text, size_t len, const char *name,
                             const cbx_registry *reg, cbx_diag *diag);
void cbx_workflow_free(cbx_workflow *w);

const char *cbx_workflow_name(const cbx_workflow *w);
const char *cbx_workflow_file(const cbx_workflow *w);
size_t cbx_workflow_place_count(const cbx_workflow *w);
size_t cbx_workflow_transition_count(const cbx_workflow *w);

/* The structure, with guards ignored (every rule, validation and trigger taken as able to hold):
 * places unreachable from the start places, transitions that can never be enabled, non-final
 * places with no transition out, and - when the markings reachable from one token in each start
 * place are at most max_markings (0 = 10000) - each reachable marking where no transition is
 * enabled and a token is outside a final place, with a firing sequence that leads there.
 * Appends to *diag (each at the place or transition's position; problems are CBX_EINVAL_CONFIG,
 * a net too big to explore is a note with code 0). Returns the number of problems, or -ENOMEM. */
int cbx_workflow_check(const cbx_workflow *w, size_t max_markings, cbx_diag *diag);

/* cbx workflow validate: load path and check it, structure included, reporting every problem
 * at once into *diag sorted by position - also the structure of a file with other problems, as
 * far as its places and transitions could be read. Returns 0 when there is no problem (notes
 * have code 0), CBX_EINVAL_CONFIG, CBX_EPARSE, -errno. */
int cbx_workflow_validate(const char *path, const cbx_registry *reg, size_t max_markings,
                          cbx_diag *diag);

/* ---- runs --------------------------------------------------------------------------------- */

/* The state a run rests in once nothing more can fire on its own. */
typedef enum cbx_workflow_state {
    CBX_WORKFLOW_RUNNING, /* something is still firing or can fire */
    CBX_WORKFLOW_DONE,    /* every token is in a final place (or there is no token) */
    CBX_WORKFLOW_WAITING, /* no token is stuck or failed; some wait for a signal or a timer */
    CBX_WORKFLOW_STUCK,   /* a token can go nowhere outside a final place (none failed) */
    CBX_WORKFLOW_FAILED,  /* a token passed the firing cap, or a journal write failed */
} cbx_workflow_state;

/* "running", "done", "waiting", "stuck", "failed"; static. */
const char *cbx_workflow_state_name(cbx_workflow_state s);

typedef enum cbx_workflow_event_kind {
    CBX_WORKFLOW_TOKEN_ADDED,
    CBX_WORKFLOW_ACTION_STARTED,
    CBX_WORKFLOW_FIRED,     /* the token moved: place is where it went (a fork: once per token) */
    CBX_WORKFLOW_BLOCKED,   /* detail says why (rules, validations, the action's failure) */
    CBX_WORKFLOW_SIGNALLED, /* a signal reached the token */
    CBX_WORKFLOW_TOKEN_FAILED,
} cbx_workflow_event_kind;

/* Valid during the callback only. */
typedef struct cbx_workflow_event {
    cbx_workflow_event_kind kind;
    const char *run_id;
    const char *token;
    const char *transition; /* NULL for ADDED, SIGNALLED (then the signal's name), FAILED */
    const char *place;      /* where the token is now */
    const char *detail;     /* a blocked attempt's or a failure's explanation; "" otherwise */
    int replayed;           /* 1 while cbx_workflow_resume rebuilds the run from its journal */
} cbx_workflow_event;

typedef void (*cbx_workflow_event_fn)(const cbx_workflow_event *ev, void *ud);

typedef struct cbx_workflow_run_opts {
    const char *run_id;   /* a new run's id (up to 39 characters, copied); NULL = a new UUIDv7 */
    uint32_t max_firings; /* per token; 0 = the file's limits.firings_per_token */
    cbx_workflow_event_fn on_event; /* NULL */
    void *ud;
} cbx_workflow_run_opts;

/* Start a run of w on rt (borrowed, both must outlive the run). When rt has a journal the run
 * and w's source text are journaled. No token is added: see cbx_workflow_add_token. Returns 0
 * and *out (free with cbx_workflow_run_free), CBX_EJOURNAL, CBX_ESANDBOX (the rules'
 * sandbox), -ENOMEM. */
int cbx_workflow_start(cbx_workflow_run **out, cbx_runtime *rt, cbx_workflow *w,
                       const cbx_workflow_run_opts *o, cbx_err *err);

/* Rebuild the run run_id from rt's journal: the workflow from the journaled source (a new
 * cbx_workflow owned by the run; reg borrowed for its check), then every event in order. Actions
 * journaled as started but without a result run again when their firing comes; those with a
 * result are committed from it. Returns 0 and *out; -ENOENT for an unknown run; -EBUSY when
 * another process that is alive holds it (its state in the journal is started or running);
 * CBX_EJOURNAL;
 * CBX_EINVAL_CONFIG when the journaled source no longer loads (a registry without its types). */
int cbx_workflow_resume(cbx_workflow_run **out, cbx_runtime *rt, const char *run_id,
                        const cbx_registry *reg, const cbx_workflow_run_opts *o, cbx_err *err);

/* Free a run (its pending actions are cancelled; the journal keeps it for a later resume). NULL
 * accepted. */
void cbx_workflow_run_free(cbx_workflow_run *r);

const char *cbx_workflow_run_id(const cbx_workflow_run *r);
const cbx_workflow *cbx_workflow_run_net(const cbx_workflow_run *r);

/* Add a token with data (an object, borrowed and copied; NULL = {}) in place (NULL = the first
 * start place). id (NULL = "t1", "t2", ... in order) must be unique in the run; the id used is
 * copied into id_out when not NULL (up to idlen bytes). Returns 0, -EINVAL (not an object, an
 * unknown place; err says which), -EEXIST (the id), CBX_EJOURNAL, -ENOMEM. */
int cbx_workflow_add_token(cbx_workflow_run *r, const char *place, const json_t *data,
                           const char *id, char *id_out, size_t idlen, cbx_err *err);

/* Signal token `token` with `name`: a transition from its place with `trigger: signal` and that
 * signal name (by default its own name) may then fire once, with data (an object, borrowed;
 * NULL = {}) merged into the token's data before its action and rules. Returns 0; -ENOENT (no
 * such token); -EINVAL (the token is final, failed, or no transition from its place waits for
 * that signal: err lists the signals it waits for); CBX_EJOURNAL. */
int cbx_workflow_signal(cbx_workflow_run *r, const char *token, const char *name,
                        const json_t *data, cbx_err *err);

/* Start every firing that can start now (pure guards are decided at once; actions are submitted
 * to the runtime). Returns the number of attempts started or decided (fired or blocked, not
 * counting validations that failed), or a negative code. Does not block. */
int cbx_workflow_step(cbx_workflow_run *r);

/* Run the loop until the run rests: every token final, waiting, stuck or failed. With
 * wait_timers, a token whose `after:` timer is pending keeps the loop running until it fires;
 * without, such a token counts as waiting. Returns the state (>= 0) or a negative code. */
int cbx_workflow_run_until_rest(cbx_workflow_run *r, int wait_timers);

/* For a caller that runs the loop itself (a server, where cbx_workflow_run_until_rest cannot
 * block): start every firing that can start now, tokens whose after: timer is due included, and
 * journal the run's state when it changed (running, or the state it rests in). Call it again when
 * an event came (an action's end fires or blocks), after a signal or a new token, and at
 * *next_due_ms (wall-clock ms since the epoch; 0 = no timer pending, or actions in flight whose
 * end will come as events). Does not block. Returns the state (>= 0) or a negative code. */
int cbx_workflow_advance(cbx_workflow_run *r, uint64_t *next_due_ms);

/* The state now (RUNNING while firings are in flight or possible). */
cbx_workflow_state cbx_workflow_run_state(const cbx_workflow_run *r);

/* The run as JSON (new reference): {run_id, workflow, state, tokens: [{id, place, state, data,
 * firings, waiting_for, explanation, history: [...]}], marking: {place: n}, firings:
 * {transition: n}}. Token state: active, busy, final, waiting, stuck, failed. */
json_t *cbx_workflow_run_snapshot(const cbx_workflow_run *r);

/* The net as text, format "dot" or "mermaid"; with a snapshot (from cbx_workflow_run_snapshot
 * or cbx_workflow_run_show, borrowed; NULL = none) each place shows its token count and each
 * transition its firing count. malloc'd (caller frees), NULL for an unknown format. */
char *cbx_workflow_graph(const cbx_workflow *w, const json_t *snapshot, const char *format);

/* The net's structure as JSON (new reference): {name, file, places: [{name, start, final}],
 * transitions: [{name, from: [place...], to: [place...], trigger ("auto" or "signal"), signal,
 * after_ms, executor (null for a pure guard), priority}]}, in declaration order. */
json_t *cbx_workflow_describe(const cbx_workflow *w);

/* ---- the journal ------------------------------------------------------------------------ */

/* Workflow runs, newest first: [{run_id, workflow, file, state, started_ms, updated_ms}] (new
 * reference; limit 0 = 50). state: started, running, done, waiting, stuck, failed, or
 * interrupted (left running by a process that is gone). */
int cbx_workflow_runs_list(cbx_journal *j, uint32_t limit, json_t **out, cbx_err *err);

/* A run rebuilt from its events, without running anything: the snapshot above plus the
 * source, and each token's history with each rule's verdict (new reference). -ENOENT. */
int cbx_workflow_run_show(cbx_journal *j, const char *run_id, const cbx_registry *reg, json_t **out,
                          cbx_err *err);

#ifdef __cplusplus
}
#endif
#endif
