/* A workflow whose marking lives outside the process - in the cluster's key-value store
 * (dist/wf_kv.c) - so that any process may move its tokens.
 *
 * The marking is JSON:
 *   {"v": 1, "workflow": NAME, "file": PATH, "source": TEXT, "next_id": N,
 *    "fired": {TRANSITION: COUNT},
 *    "tokens": {ID: {"place", "data", "family", "firings", "nchild", "epoch", "entered_ms",
 *                    "tried": [TRANSITION...], "signals": [{"name", "data"}],
 *                    "history": [[MS, TEXT]...], "why", "failed": true,
 *                    "claim": {"by": OWNER, "until_ms": MS, "nonce": TEXT}}}}
 * Tokens consumed by a join are removed; those in final places stay. A claim says that a process
 * runs an action for the token until until_ms (wall clock); others leave it alone till then.
 *
 * A shared run (cbx__wf_shared) is a run of the engine (net_run.c, net_fire.c) used as a
 * calculator: it loads a marking, and one token steps once - one firing or the blocked attempts
 * before it, its action run on the runtime - and the tokens it changed come back as changes to
 * write into the marking. The engine's rules, validations, actions, policies, joins, forks,
 * signals, timers and firing cap are the same as for a run in one process. */
#ifndef CBX_WORKFLOW_NET_SHARED_H
#define CBX_WORKFLOW_NET_SHARED_H

#include <jansson.h>
#include <stdint.h>

#include "cbx/err.h"
#include "cbx/runtime.h"
#include "cbx/workflow.h"

typedef struct cbx__wf_shared cbx__wf_shared;

/* A shared run of w (borrowed) on rt (borrowed; NULL = nothing runs: show, signal) named id
 * (events' run_id). max_firings: 0 = the file's cap. on_event sees what happens as a run's
 * events do. 0, CBX_ESANDBOX, -ENOMEM. */
int cbx__wf_shared_new(cbx__wf_shared **out, cbx_runtime *rt, cbx_workflow *w, const char *id,
                       uint32_t max_firings, cbx_workflow_event_fn on_event, void *ud,
                       cbx_err *err);
void cbx__wf_shared_free(cbx__wf_shared *s);

/* The marking of a new workflow holding tokens: an array of {"data": OBJECT, "place": NAME
 * (optional: the first start place)}. Their ADDED events are emitted. 0 or -EINVAL (the token
 * at fault named in err). */
int cbx__wf_shared_initial(cbx__wf_shared *s, const json_t *tokens, json_t **marking, cbx_err *err);

/* Load marking m: tokens claimed by another owner until after now_ms are busy (not moved, not
 * joined). 0, or CBX_EINVAL_CONFIG with what is wrong with m in err ("tokens.t1.place: ..."). */
int cbx__wf_shared_load(cbx__wf_shared *s, const json_t *m, const char *owner, uint64_t now_ms,
                        cbx_err *err);

/* A token of the loaded marking that may fire now, searched from the offset-th: *ids = [its id,
 * the join partners it may take] (new reference), *claim = 1 when a transition it may take runs
 * an action (claim the tokens before firing). 1 found, 0 none. *next_due_ms: the earliest after:
 * timer still to come (0 = none). */
int cbx__wf_shared_pick(cbx__wf_shared *s, size_t offset, json_t **ids, int *claim,
                        uint64_t *next_due_ms);

/* Step the token ids[0] of the loaded marking once, only ids' tokens taking part; wait for its
 * action on the runtime's loop, calling tick(ud) every tick_ms meanwhile (tick may be NULL).
 * *changes (new reference) = {"put": {ID: token}, "remove": [ID...], "fired": {T: n}, "fires": n,
 * "blocks": n}. 0 or -ENOMEM. */
int cbx__wf_shared_fire(cbx__wf_shared *s, const json_t *ids, void (*tick)(void *), void *ud,
                        uint64_t tick_ms, json_t **changes);

/* Send signal name (data may be NULL) to token of the loaded marking, as cbx_workflow_signal
 * checks it; *changes as above. 0, -ENOENT, -EINVAL (err says why). */
int cbx__wf_shared_signal(cbx__wf_shared *s, const char *token, const char *name,
                          const json_t *data, json_t **changes, cbx_err *err);

/* Write changes into marking m (in place): removed tokens go, put ones replace (their claims
 * gone), firing counts add up. 0 or -ENOMEM. */
int cbx__wf_marking_apply(json_t *m, const json_t *changes);

/* The loaded marking's state: CBX_WORKFLOW_RUNNING while tokens are claimed by others or may
 * fire, else DONE, WAITING, STUCK or FAILED. */
cbx_workflow_state cbx__wf_shared_state(const cbx__wf_shared *s);
/* cbx_workflow_run_snapshot of the loaded marking (new reference). */
json_t *cbx__wf_shared_snapshot(const cbx__wf_shared *s);

#endif
