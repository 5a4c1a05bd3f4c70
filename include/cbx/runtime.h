/* cbx/runtime.h - running executions under policies on one event loop.
 *
 * A runtime owns (or borrows) a libuv loop, a registry of executor types, an optional journal
 * and a breaker store. Submit a request - an executor type, its parameters, a policy - and the
 * runtime validates it, queues it (bounded), starts attempts as concurrency allows, enforces each
 * attempt's timeout and the overall deadline by cancelling the work (a process group is killed,
 * an HTTP transfer aborted, a blocking run's cancel flag set and its late result discarded),
 * retries under the policy, asks the fallback, journals every attempt, and reports the result.
 *
 * Status of an execution:
 *   PENDING -> RUNNING -> (RETRYING -> RUNNING)* -> SUCCESS | FAILED | TIMEOUT | CANCELLED
 *   PENDING -> REJECTED (a refusal before any attempt: invalid request, open breaker, rate limit,
 *              full bulkhead or queue)
 *
 * Threads: every function here is called on the loop's thread (the thread that calls
 * cbx_runtime_run / _execute); done callbacks run there too.
 */
#ifndef CBX_RUNTIME_H
#define CBX_RUNTIME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/breaker_store.h"
#include "cbx/diag.h"
#include "cbx/err.h"
#include "cbx/journal.h"
#include "cbx/policy.h"
#include "cbx/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_runtime cbx_runtime;
typedef struct cbx_execution cbx_execution;

#define CBX_STATUS_MAP(X)                                                                          \
    X(PENDING, "pending")                                                                          \
    X(RUNNING, "running")                                                                          \
    X(RETRYING, "retrying")                                                                        \
    X(SUCCESS, "success")                                                                          \
    X(FAILED, "failed")                                                                            \
    X(TIMEOUT, "timeout")                                                                          \
    X(CANCELLED, "cancelled")                                                                      \
    X(REJECTED, "rejected")

typedef enum cbx_status {
#define CBX__STATUS_ENUM(name, str) CBX_STATUS_##name,
    CBX_STATUS_MAP(CBX__STATUS_ENUM)
#undef CBX__STATUS_ENUM
        CBX_STATUS__COUNT
} cbx_status;

/* "pending", ...; static; "unknown" out of range. */
const char *cbx_status_name(cbx_status s);
/* 0 and *out for a name, or CBX_EPARSE. */
int cbx_status_parse(const char *name, cbx_status *out);

/* The whole story of one execution (seed 002 ExecutionResult, seed 004 ToolExecutionResult).
 * Caller-owned when returned by cbx_runtime_execute; borrowed (valid during the callback) when
 * passed to a done callback. */
typedef struct cbx_result {
    char id[40];       /* the execution's UUID */
    char executor[64]; /* the type's name */
    cbx_status status; /* a final status */
    int rc;            /* why it ended: 0, CBX_EFAILED, CBX_ETIMEDOUT, CBX_ECANCELLED,
                          CBX_ERETRY_EXHAUSTED, a refusal (CBX_ECIRCUIT_OPEN, ...),
                          CBX_EUNKNOWN_TYPE or CBX_EINVAL_CONFIG for a bad request */
    int fallback_used; /* 1 when outputs came from the fallback */
    json_t *outputs;   /* owned: the successful attempt's (or the fallback's) outputs; when
                          neither, the last failed attempt's (a command's stdout and
                          stderr); NULL when there are none */
    json_t *metadata;  /* owned: the last attempt's executor metadata; NULL */
    json_t *attempts;  /* owned: array, one object per attempt: number, outcome,
                          started_ms (wall clock), duration_ms, error, metadata */
    uint32_t attempt_count;
    char error[320];       /* one line: why it did not succeed ("" on success) */
    uint64_t submitted_ms; /* wall clock, ms since the epoch */
    uint64_t queued_ns;    /* waiting for a concurrency slot */
    uint64_t duration_ns;  /* first attempt's start to the end */
} cbx_result;

/* Release what *r owns and zero it. NULL is accepted. */
void cbx_result_clear(cbx_result *r);

/* The result as JSON (new reference): id, executor, status, rc, error, fallback_used,
 * outputs, metadata, attempts, timings. */
json_t *cbx_result_to_json(const cbx_result *r);

/* The reverse (a result that travelled as JSON, from a worker): fills *out (release with
 * cbx_result_clear; it takes references to j's outputs, metadata and attempts). Returns 0, or
 * CBX_EPARSE when j is not an object with a known "status". */
int cbx_result_from_json(const json_t *j, cbx_result *out, cbx_err *err);

typedef void (*cbx_done_fn)(cbx_execution *ex, const cbx_result *res, void *ud);

/* A chunk of partial output (cbx_task_emit, cbx/executor.h), as its consumer sees it: borrowed,
 * valid during the callback. */
typedef struct cbx_chunk {
    uint32_t attempt;    /* the attempt that emitted it: chunks of a failed attempt come before
                            the retry's, which start again at seq 0 */
    uint64_t seq;        /* 0, 1, 2, ... within the attempt, in the order emitted */
    const char *channel; /* "stdout", "stderr", "out", ... */
    const char *text;    /* a text chunk's bytes (NUL-terminated too); NULL for an event */
    size_t len;
    const json_t *event; /* a JSON event; NULL for text */
} cbx_chunk;

/* What a chunk callback returns. CBX_CHUNK_MORE: go on. CBX_CHUNK_PAUSE: hold further chunks
 * until cbx_execution_stream_resume - the queue fills and the emitter is held back (see
 * cbx/executor.h). CBX_CHUNK_STOP: take no more - the emitter gets -EPIPE (a command then gets
 * SIGPIPE on its next write, as a closed pipe would give it). */
#define CBX_CHUNK_MORE  0
#define CBX_CHUNK_PAUSE 1
#define CBX_CHUNK_STOP  2

/* Called on the loop thread for each chunk, in order. It may cancel executions (this one
 * included: the chunks it emitted before the stop still come, none after) but must not free the
 * runtime. */
typedef int (*cbx_chunk_fn)(cbx_execution *ex, const cbx_chunk *c, void *ud);

typedef struct cbx_request {
    const char *executor; /* type name */
    const json_t *params; /* borrowed: submit keeps a copy with the defaults applied, which the
                             caller's later changes do not reach (executions of one runtime with
                             equal parameters share one such copy: executors only read it);
                             NULL = {} */
    cbx_policy *policy;   /* borrowed, must outlive the execution; NULL = one attempt */
    const char *breaker;  /* a breaker of the runtime's store to guard every attempt (besides
                             the policy's own, unless the policy has a breaker key: then this
                             is the key's breaker, instead of the policy's); NULL */
    const cbx_breaker_opts *breaker_opts; /* for that breaker when the store creates it */
    uint64_t timeout_ns;                  /* per attempt; 0 = the policy's (or none) */
    uint64_t deadline_ns;                 /* overall, from submission; 0 = the policy's (or none) */
    const char *fallback_key;             /* the fallback cache key; NULL */
    const char *tag;     /* free text, journaled with the execution (a flow run and step) */
    cbx_done_fn on_done; /* may be NULL */
    void *ud;
    /* May be NULL. Called on the loop thread when attempt `attempt` failed with error and
     * another will start after delay_ns (status RETRYING); ud as above. */
    void (*on_retry)(cbx_execution *ex, uint32_t attempt, uint64_t delay_ns, const char *error,
                     void *ud);
    /* The context the executor sees (cbx_task_run_id, _step, _metadata, _tmpdir; a Lua type's
     * ctx table). run_id and step are copied (a flow's run id and step name; NULL outside a
     * flow); metadata is an object the execution keeps a reference to (a flow's name, version,
     * inputs; NULL = none). */
    const char *run_id;
    const char *step;
    const json_t *metadata;
    /* CBX_TMPDIR_*: a temporary directory of the execution's own, made (mode 0700, under
     * $TMPDIR or /tmp, named cbx-<execution id>-XXXXXX) before the first attempt and removed
     * with everything in it when the execution ends. KEEP_ON_FAILURE keeps it when the
     * execution did not succeed: its path is then in the result's metadata as "tmpdir". A
     * directory that cannot be made fails the execution before any attempt. */
    int tmpdir;
    /* 1 for a child of a running attempt (an executor's sub-work, cbx_task_runtime): it starts
     * at once, beyond max_concurrent and ahead of the queue, since its parent holds a slot
     * while it waits for it (with one slot the child would otherwise never start). */
    int child;
    /* Partial output (cbx_chunk above): on_chunk(ex, chunk, chunk_ud) for each chunk the
     * attempts emit, before the attempt's end is processed; NULL = none (chunks then only go to
     * the journal, bounded). chunk_queue bounds each attempt's queue (0 = 64 chunks). */
    cbx_chunk_fn on_chunk;
    void *chunk_ud;
    uint32_t chunk_queue;
    /* The W3C traceparent ("00-<trace>-<span>-<flags>") of the span this execution's span is a
     * child of: a flow run's, a workflow firing's (cbx/trace.h). Read only when the process
     * traces (TRACEPARENT or an OTLP endpoint in its environment), copied; NULL or not a valid
     * traceparent = the process's TRACEPARENT, else a trace of the execution's own. */
    const char *traceparent;
} cbx_request;

#define CBX_TMPDIR_NONE            0
#define CBX_TMPDIR_MAKE            1
#define CBX_TMPDIR_KEEP_ON_FAILURE 2

typedef struct cbx_runtime_opts {
    void *loop;                  /* a uv_loop_t * to borrow; NULL = the runtime makes its own */
    cbx_registry *registry;      /* borrowed; NULL = its own, with the built-in types */
    cbx_journal *journal;        /* borrowed; NULL = nothing is journaled */
    cbx_breaker_store *breakers; /* borrowed; NULL = its own in-memory store */
    uint32_t max_concurrent;     /* executions running at once; 0 = 64 */
    uint32_t max_queued;         /* executions waiting for a slot; 0 = 100000 */
    uint64_t kill_grace_ns;      /* SIGTERM to SIGKILL for process executors; 0 = 2 s */
    /* A remote backend (docs/distributed.md): with remote set, every request for another type
     * than "remote" runs on the workers pulling from remote_queue (NULL = "default") on the NATS
     * server(s) remote_url (NULL = $NATS_URL, else nats://127.0.0.1:4222), through the "remote"
     * executor (cbx/dist.h): its executor and params travel as the job, its policy applies here,
     * around the dispatch, as for a flow step with runs_on: workers (a retry sends the job again,
     * a timeout bounds the wait, a breaker counts the workers' outcomes); its result's outputs
     * are the worker's, the metadata names the worker. The strings are copied. */
    int remote;
    const char *remote_url;
    const char *remote_queue;
} cbx_runtime_opts;

int cbx_runtime_new(cbx_runtime **out, const cbx_runtime_opts *o, cbx_err *err);
/* Cancel what is left, run the loop until it has ended, release everything. NULL accepted. */
void cbx_runtime_free(cbx_runtime *rt);

cbx_registry *cbx_runtime_registry(cbx_runtime *rt);
cbx_journal *cbx_runtime_journal(cbx_runtime *rt); /* NULL when there is none */
cbx_breaker_store *cbx_runtime_breakers(cbx_runtime *rt);
void *cbx_runtime_loop(cbx_runtime *rt); /* uv_loop_t * */
uint64_t cbx_runtime_kill_grace_ns(const cbx_runtime *rt);

/* Queue a request. Returns 0 and (if out is not NULL) the execution, valid until its done
 * callback returns; or a refusal, which is also journaled and reported to on_done with status
 * REJECTED: CBX_EUNKNOWN_TYPE, CBX_EINVAL_CONFIG (every problem in *diag when not NULL),
 * CBX_EQUEUE_FULL. An execution can end inside submit (an inline function, an open breaker):
 * on_done has then run before submit returns, and *out still names the finished execution
 * (cbx_runtime_cancel answers -ENOENT) until the loop next turns. */
int cbx_runtime_submit(cbx_runtime *rt, const cbx_request *req, cbx_execution **out,
                       cbx_diag *diag);

/* Cancel one execution (its running attempt is stopped; status CANCELLED), or all. -ENOENT for
 * one that has ended but is still valid (see cbx_runtime_submit). */
int cbx_runtime_cancel(cbx_runtime *rt, cbx_execution *ex);
void cbx_runtime_cancel_all(cbx_runtime *rt);

/* Run the loop until no execution is left. Returns 0 or a negative code. */
int cbx_runtime_run(cbx_runtime *rt);

/* Submit one request and run the loop until it has ended; *res is filled either way (release
 * with cbx_result_clear). Returns 0 when res->status is SUCCESS (or a fallback answered), else
 * res->rc. */
int cbx_runtime_execute(cbx_runtime *rt, const cbx_request *req, cbx_result *res, cbx_diag *diag);

/* Run n requests in parallel (within max_concurrent) under an overall deadline (0 = none):
 * whatever has not ended when it passes is cancelled (TIMEOUT). Fills res[0..n) in request order
 * (seed 004 execute_tools). Returns how many succeeded. */
size_t cbx_runtime_execute_many(cbx_runtime *rt, const cbx_request *reqs, size_t n,
                                uint64_t overall_timeout_ns, cbx_result *res);

/* The runtime an attempt runs on, so that an executor can submit child executions there (the
 * llm executor's tool calls): cbx_runtime_submit and _cancel on it, from the loop thread, while
 * the attempt has not reported. Submit them with cbx_request.child set: they then start at once
 * instead of waiting for a slot their parent holds. A child's done callback may run inside
 * cbx_runtime_submit. NULL once the runtime has stopped waiting for the attempt (an abandoned
 * attempt must not start new work). */
cbx_runtime *cbx_task_runtime(const cbx_task *t);

const char *cbx_execution_id(const cbx_execution *ex);
cbx_status cbx_execution_status(const cbx_execution *ex);
/* Deliver the chunks held since the callback returned CBX_CHUNK_PAUSE (on the loop's next turn),
 * and go on delivering. No effect on an execution that is not paused. */
void cbx_execution_stream_resume(cbx_execution *ex);

#ifdef __cplusplus
}
#endif
#endif
