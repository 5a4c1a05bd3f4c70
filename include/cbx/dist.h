/* cbx/dist.h - executions run by a pool of workers over NATS JetStream.
 *
 * A submitter publishes a job - an execution's executor type, parameters, policy block and
 * timeout, under a new execution id - to the work-queue stream CBX_WORK (subject
 * cbx.work.<queue>). Workers pull jobs through the durable consumer cbx-worker-<queue>, run each
 * on their own runtime under its policy, store the result in the key-value bucket CBX_RESULTS
 * (key: the execution id), announce it on cbx.result.<id>, and only then acknowledge the job.
 * Delivery is at least once: a worker that dies mid-job leaves it unacknowledged, and JetStream
 * gives it to another worker after the ack wait. Before running a job given again, or one whose id
 * its submitter did not make for it alone, a worker looks its id up in CBX_RESULTS, so a job whose
 * result was stored is not run again (it is acknowledged and its result announced again); the
 * submitters here make a new id per job and say so ("fresh"), so a job's first delivery runs at
 * once. docs/distributed.md has the whole story. A worker tells its jobs' story
 * through the library's log (cbx/log.h, component "worker"): each job at INFO, what went wrong
 * (a malformed job, one given up, a result that could not be stored) at WARN.
 *
 * libnats is loaded on first use (dist/natslib.h); every function here returns CBX_EPLUGIN with
 * the reason when it cannot be.
 *
 * Every connection made here (workers, submitters, the cluster store, workflow events) takes its
 * credentials and TLS settings from the environment: NATS_TOKEN; NATS_USER and NATS_PASSWORD;
 * NATS_CREDS (a .creds file: JWT and NKey seed); NATS_CA (CA certificates, PEM; implies TLS),
 * NATS_CERT and NATS_KEY (a client certificate and its key; imply TLS); NATS_TLS=1 (require TLS;
 * a tls:// URL implies it). The nats executor takes them as parameters, these as defaults.
 */
#ifndef CBX_DIST_H
#define CBX_DIST_H

#include <jansson.h>
#include <stdint.h>

#include "cbx/breaker_store.h"
#include "cbx/err.h"
#include "cbx/journal.h"
#include "cbx/registry.h"
#include "cbx/workflow.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- workers ----------------------------------------------------------------------------------
 */

typedef struct cbx_worker cbx_worker;

typedef struct cbx_worker_opts {
    const char *url;             /* NATS server(s), comma-separated; NULL = $NATS_URL, else
                                    nats://127.0.0.1:4222 */
    const char *queue;           /* [A-Za-z0-9_-]+; NULL = "default" */
    uint32_t concurrency;        /* jobs run at once; 0 = 4 */
    const char *const *types;    /* NULL-terminated executor types this worker takes; NULL = all
                                    (a job of another type is handed back at once, for others) */
    cbx_registry *registry;      /* borrowed; NULL = the built-in types */
    cbx_journal *journal;        /* borrowed; NULL = nothing journaled here */
    uint64_t ack_wait_ns;        /* how long a job may go without news before JetStream gives it
                                    to another worker; 0 = 30 s. Running jobs send in-progress acks
                                    every third of it. Fixed when the queue's consumer is made. */
    uint32_t max_deliver;        /* deliveries before a job is given up (its result says so);
                                    0 = 5 */
    const char *worker_id;       /* put in each result as "worker"; NULL = host:pid */
    cbx_breaker_store *breakers; /* borrowed: where a job's named breaker ("breaker") lives
                                    (cbx_breaker_store_nats_new: shared by the cluster); NULL = an
                                    in-memory store of this worker's */
} cbx_worker_opts;

/* Connect, make the stream, the queue's consumer and the results bucket where missing, and get
 * ready to pull. 0, or CBX_EPLUGIN (libnats), CBX_EFAILED (the server: message names it),
 * CBX_EINVAL_CONFIG (a bad queue name), -ENOMEM. */
int cbx_worker_new(cbx_worker **out, const cbx_worker_opts *o, cbx_err *err);
/* Pull and run jobs until cbx_worker_stop; then take no more, finish the running jobs (their
 * results stored and acknowledged) and return 0, or a negative code when the connection failed
 * for good. */
int cbx_worker_run(cbx_worker *w);
/* Ask a running worker to drain and stop. Async-signal-safe; any thread. */
void cbx_worker_stop(cbx_worker *w);
/* Jobs this worker has finished (results stored), given back, and given up as poison. */
void cbx_worker_counts(const cbx_worker *w, uint64_t *done, uint64_t *handed_back,
                       uint64_t *poisoned);
void cbx_worker_free(cbx_worker *w);

/* ---- submitting -------------------------------------------------------------------------------
 */

typedef struct cbx_remote_job {
    const char *executor; /* type name */
    const json_t *params; /* NULL = {} */
    const json_t *policy; /* a policy block (docs/policy.md); NULL = one attempt */
    uint64_t timeout_ns;  /* per attempt; 0 = the policy's */
    const char *breaker;  /* a named breaker of the worker's store guarding it; NULL */
    /* Optional: polled every 50 ms while the result is awaited; non-zero stops the wait with
     * CBX_ECANCELLED (the job stays queued: it runs, and its result is stored). */
    int (*stop)(void *ud);
    void *stop_ud;
} cbx_remote_job;

/* Publish job to queue on url (NULLs as in cbx_worker_opts) and wait up to wait_ns (0 = for
 * ever) for its result: *result is the result as cbx_result_to_json gives it, with "worker",
 * and id (at least 40 bytes) the execution id. 0; CBX_ETIMEDOUT when no result came in time
 * (the job stays queued: its result will be in CBX_RESULTS under id); CBX_ECANCELLED when
 * job->stop said so; CBX_EFAILED when the server cannot be reached or refused the job;
 * CBX_EPLUGIN. Blocking: call it from a thread that may wait (a blocking executor's run()). */
int cbx_remote_execute(const char *url, const char *queue, const cbx_remote_job *job,
                       uint64_t wait_ns, json_t **result, char *id, cbx_err *err);

/* The result of the job id that cbx_remote_execute queued (a submitter that gave up waiting finds
 * it later by its id): from CBX_RESULTS on url, waiting up to wait_ns (0 = only look) for a worker
 * to store it. 0 and *result as cbx_remote_execute gives it; CBX_ETIMEDOUT when it is not stored
 * (yet); -EINVAL for an id that cannot be one; CBX_EFAILED when the server cannot be reached;
 * CBX_EPLUGIN. Blocking. */
int cbx_remote_result(const char *url, const char *id, uint64_t wait_ns, json_t **result,
                      cbx_err *err);

/* 1 when name can name a workers' queue: 1 to 64 letters, digits, '_' or '-'. */
int cbx_remote_queue_ok(const char *name);

/* ---- breakers shared by the cluster ---------------------------------------------------------- */

/* A breaker store kept in the JetStream key-value bucket CBX_BREAKERS on url (NULL = $NATS_URL,
 * else nats://127.0.0.1:4222), made where missing: one breaker per name for every process on
 * every host. Each operation reads the breaker, applies itself and writes back with
 * compare-and-set, deciding again when another process wrote first, so that half-open probes
 * are never over-admitted cluster-wide. Breaker times are wall-clock (keep hosts' clocks in
 * step). While the server cannot be reached (also at creation: the connection keeps trying),
 * operations decide on this process's own breakers and a warning is logged once per outage. No
 * word-based rate limiters (cbx_breaker_store_limiter answers -ENOTSUP: see
 * cbx_breaker_store_limiter_opts below). Operations block on the
 * server (a round trip or two): use it where a breaker's decision is worth that. 0, CBX_EPLUGIN
 * (libnats), CBX_EFAILED (libnats refused the options), -ENOMEM; a server that is away is not a
 * failure here. Free with cbx_breaker_store_free. */
int cbx_breaker_store_nats_new(cbx_breaker_store **out, const char *url, cbx_err *err);

/* How many times this store's operations were decided again because another process wrote the
 * breaker first (0 for another kind of store). */
uint64_t cbx_breaker_store_nats_cas_retries(const cbx_breaker_store *s);

/* Rate limiters shared by the cluster: cbx_breaker_store_limiter_opts on this store gives a
 * limiter the bucket of its key in the JetStream key-value bucket CBX_RATES (made where
 * missing): its GCRA arrival time (wall-clock ns, decimal text), read, decided on and written
 * back with compare-and-set, decided again when another process wrote first - so every limiter
 * on the key, in any process on any host, takes from one bucket and the cluster never exceeds
 * its rate. A refusal writes nothing. Each take costs a round trip or two to the server. While
 * the server cannot be reached a take decides on this process's own bucket (a warning says so
 * once per outage). This counts the takes decided again because of another writer. */
uint64_t cbx_breaker_store_nats_rate_cas_retries(const cbx_breaker_store *s);

/* ---- workflow events ------------------------------------------------------------------------ */

/* A publisher of one workflow's events on the core NATS subject cbx.events.workflow.<name> (the
 * workflow's name, with characters a subject token cannot hold as '_'), for other systems to
 * follow its tokens. Each message is JSON: {"workflow", "run_id", "event", "token", "transition",
 * "place", "detail", "wall_ms"} (null where they do not apply), with event one of created (a token
 * added), action_started, fired (the token moved to place), blocked (an attempt refused: detail
 * says why), signalled and signal (detail: its name), failed; and at rest
 * (cbx_workflow_events_rest) done (a token in a final place), waiting (detail: what for), stuck,
 * then run (detail: the run's state). Publishing is fire and forget: buffered while the server is
 * away, lost if it never comes back before the publisher is freed. */
typedef struct cbx_workflow_events cbx_workflow_events;

/* Connect to url (NULL = $NATS_URL, else nats://127.0.0.1:4222; credentials and TLS from the
 * environment, as above) for workflow (copied). A server that is not there yet is
 * not a failure: the connection keeps trying. 0, CBX_EPLUGIN, CBX_EFAILED, -ENOMEM. */
int cbx_workflow_events_nats_new(cbx_workflow_events **out, const char *url, const char *workflow,
                                 cbx_err *err);
/* The subject it publishes on (valid until freed). */
const char *cbx_workflow_events_subject(const cbx_workflow_events *e);
/* A cbx_workflow_event_fn: publish ev (events is the publisher; NULL does nothing). Events
 * replayed by a resume are not published again. */
void cbx_workflow_events_emit(const cbx_workflow_event *ev, void *events);
/* A run at rest (snapshot: cbx_workflow_run_snapshot, borrowed): each token's done, waiting or
 * stuck, then the run's state. */
void cbx_workflow_events_rest(cbx_workflow_events *e, const json_t *snapshot);
/* Flush what is buffered (at most a second) and disconnect. NULL is accepted. */
void cbx_workflow_events_free(cbx_workflow_events *e);

/* ---- workflow markings shared by the cluster ------------------------------------------------- */

/* A workflow's marking - its tokens with their places, data, histories and claims, its firing
 * counts and the workflow's source - kept as one JSON value in the JetStream key-value bucket
 * CBX_WORKFLOWS (made where missing), key = the workflow's id, so that any process on any host
 * may move its tokens. A firing reads the marking and its revision, decides with the workflow
 * engine (guards, validations, rules, action, as cbx/workflow.h runs them in one process) and
 * writes the tokens it changed only over that revision (compare-and-set); when another process
 * wrote first it is decided again on the newer marking, so a token is never consumed twice. A
 * token whose transition runs an action is claimed first (the claim written the same way), the
 * action runs in the claiming process while the claim is renewed, and the result is written
 * only while the claim is still that process's; a claim not renewed for the lease (the process
 * died) expires, and the action runs again elsewhere (at least once, as for workers). The value
 * lives as long as the bucket's key: nothing removes it. docs/distributed.md, "Workflow
 * markings in the cluster". */
typedef struct cbx_workflow_kv_opts {
    const char *url;      /* NATS server(s); NULL = $NATS_URL, else nats://127.0.0.1:4222 */
    const char *owner;    /* who claims tokens; NULL = host:pid */
    uint64_t lease_ms;    /* a claim not renewed for this long expires; 0 = 30000 */
    uint32_t max_firings; /* per token; 0 = the file's limits.firings_per_token */
    uint64_t max_moves;   /* cbx_workflow_kv_run returns after this many moves here; 0 = at rest */
    int wait_timers;      /* wait for after: timers to come due rather than rest */
    cbx_workflow_event_fn on_event; /* what this process does to the tokens, given once each
                                       move is written (never for a move decided again); NULL */
    void *ud;
} cbx_workflow_kv_opts;

typedef struct cbx_workflow_kv_stats {
    uint64_t fires;         /* firings written by this process */
    uint64_t blocks;        /* blocked attempts written */
    uint64_t cas_conflicts; /* writes refused because another process wrote first, decided again */
    uint64_t claims;        /* claims taken for actions */
    uint64_t claims_lost;   /* claims that expired and were taken over: their results dropped */
} cbx_workflow_kv_stats;

/* 1 when id can name a workflow in the bucket: 1 to 39 letters, digits, '-' or '_'. */
int cbx_workflow_kv_id_ok(const char *id);

/* Put a new workflow id of w (borrowed) holding tokens (an array of {"data": OBJECT, "place":
 * NAME (optional: the first start place)}; NULL = none), ids t1, t2, ... o may be NULL; its
 * on_event sees the tokens added. 0, -EINVAL (a bad id or token: err names it), -EEXIST (the id
 * is taken), CBX_EFAILED (the server), CBX_EPLUGIN. */
int cbx_workflow_kv_create(const cbx_workflow_kv_opts *o, const char *id, cbx_workflow *w,
                           const json_t *tokens, cbx_err *err);

/* Move the tokens of workflow id on rt (its actions run there; reg, borrowed, loads the stored
 * workflow's source) until it rests - no token may move and none is claimed by another process -
 * or o->max_moves. Any number of processes may do this at once. Returns the state
 * (CBX_WORKFLOW_DONE, _WAITING, _STUCK, _FAILED; _RUNNING after max_moves) or a negative code:
 * -ENOENT (no such workflow), CBX_EPARSE (the stored value is not a marking: err says where),
 * CBX_EINVAL_CONFIG (its workflow does not load here), CBX_EFAILED (the server), CBX_EPLUGIN.
 * *stats (may be NULL) counts this process's work; *snapshot (may be NULL) is the marking at the
 * end as cbx_workflow_run_snapshot gives it. Blocking; runs rt's loop while actions run. */
int cbx_workflow_kv_run(cbx_runtime *rt, const cbx_registry *reg, const char *id,
                        const cbx_workflow_kv_opts *o, cbx_workflow_kv_stats *stats,
                        json_t **snapshot, cbx_err *err);

/* Send signal name (data: an object or NULL) to token of workflow id, as cbx_workflow_signal
 * checks it, written by compare-and-set; nothing fires (cbx_workflow_kv_run does that). 0,
 * -ENOENT, -EINVAL (nothing waits for it), -EBUSY (the token is claimed), and the codes above. */
int cbx_workflow_kv_signal(const cbx_workflow_kv_opts *o, const cbx_registry *reg, const char *id,
                           const char *token, const char *name, const json_t *data, cbx_err *err);

/* The marking of workflow id as cbx_workflow_run_snapshot gives it, with "revision" (new
 * reference). The codes of cbx_workflow_kv_run. */
int cbx_workflow_kv_show(const cbx_workflow_kv_opts *o, const cbx_registry *reg, const char *id,
                         json_t **snapshot, cbx_err *err);

/* Every workflow of the bucket, by id: *list (new reference) an array of {"id", "workflow" (its
 * name), "state" (as cbx_workflow_kv_show's), "marking" (tokens per place), "tokens" (how many),
 * "revision"}; a value that is not a marking is listed with "state": "unreadable" and "error". 0,
 * CBX_EFAILED (the server), CBX_EPLUGIN. */
int cbx_workflow_kv_list(const cbx_workflow_kv_opts *o, const cbx_registry *reg, json_t **list,
                         cbx_err *err);

#ifdef __cplusplus
}
#endif
#endif
