/* cbx/executor.h - executor types: what a kind of work takes and how it runs.
 *
 * An executor type is a const struct: a name, a summary, a parameter schema, optional hooks
 * (validate, before, after) and its ops. Ops are either asynchronous - start() begins the work
 * on the runtime's event loop and the work later reports with cbx_task_done(); cancel() stops
 * it - or blocking - run() does the work on the loop's thread pool and returns; a cancel then
 * sets a flag the run can poll, and a late result is discarded.
 *
 * One attempt of one execution is a cbx_task. The runtime owns it; the executor sees it only
 * through the functions below, and keeps its per-attempt state in cbx_task_state() (task_size
 * zeroed bytes). Hooks run for every executor, built-in or not: validate when a request is
 * submitted, before just before each attempt starts, after when each attempt has ended.
 *
 * A type may also keep a resource per runtime (a connection pool, a curl multi handle): its
 * loop_init and loop_close hooks are called once per runtime, on the loop's thread, when the
 * runtime is made and freed, and its tasks find the state with cbx_task_loop_state(). The
 * runtime names no executor; executors fill these slots.
 *
 * A type may declare the outputs it produces (name, type, description: cbx_output), so that a
 * flow's references to them are checked before it runs (`cbx validate`) and `cbx types` shows
 * them. A type that declares none (outputs NULL) produces outputs nobody knows in advance: a
 * function's, a plugin's; references to them are not checked.
 *
 * Types carry an ABI number (CBX_EXECUTOR_ABI). The struct only ever grows at the end, and each
 * growth bumps the number (2 added loop_init and loop_close; 3 added outputs). A runtime accepts
 * types of its own ABI and of the older ones down to CBX_EXECUTOR_ABI_MIN: the fields an older
 * type's struct does not have are never read, and mean "absent" (for ABI 2: no outputs
 * declared; read them with cbx_executor_type_outputs, never through the field). Types built
 * against a newer header (a longer struct this runtime does not know) are refused.
 */
#ifndef CBX_EXECUTOR_H
#define CBX_EXECUTOR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/outcome.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CBX_EXECUTOR_ABI 3
/* The oldest ABI whose types (and plugins) this runtime still accepts. */
#define CBX_EXECUTOR_ABI_MIN 2

/* ---- parameter schemas -------------------------------------------------------------------- */

#define CBX_PARAM_TYPE_MAP(X)                                                                      \
    X(STRING, "string")                                                                            \
    X(INTEGER, "integer")                                                                          \
    X(NUMBER, "number")                                                                            \
    X(BOOLEAN, "boolean")                                                                          \
    X(ARRAY, "array")                                                                              \
    X(OBJECT, "object")                                                                            \
    X(ANY, "any")

typedef enum cbx_param_type {
#define CBX__PARAM_TYPE_ENUM(name, str) CBX_PARAM_##name,
    CBX_PARAM_TYPE_MAP(CBX__PARAM_TYPE_ENUM)
#undef CBX__PARAM_TYPE_ENUM
        CBX_PARAM_TYPE__COUNT
} cbx_param_type;

/* One parameter. A schema is an array of these ended by an entry whose name is NULL.
 * Strings are borrowed: they must live as long as the type is registered. */
typedef struct cbx_param {
    const char *name;
    cbx_param_type type;
    int required;
    const char *default_json;       /* JSON text of the default ("30", "\"GET\"", "[]"); NULL */
    const char *description;        /* one line */
    const char *const *enum_values; /* NULL-terminated allowed strings (string params); NULL */
    int has_min, has_max;           /* bounds: the value (integer, number) or the length
                                       (string, array, object) */
    double min, max;
    int secret;           /* never journaled, logged or shown: "***" instead */
    cbx_param_type items; /* arrays: the element type; CBX_PARAM_ANY = any */
} cbx_param;

/* "string", "integer", ...; static. */
const char *cbx_param_type_name(cbx_param_type t);

/* ---- output declarations -------------------------------------------------------------------- */

typedef struct cbx_executor_type cbx_executor_type;

/* One key of the outputs object an attempt reports (cbx_task_done's outputs). A declaration is an
 * array of these ended by an entry whose name is NULL; strings are borrowed and must live as
 * long as the type is registered. A declaration is a promise, checked by the tests of each
 * built-in type: every key an attempt of the type reports is declared, with a value of its type
 * (or null where nullable), and every key not optional is there whenever outputs are. */
typedef struct cbx_output {
    const char *name;
    cbx_param_type type;     /* CBX_PARAM_ANY: any JSON value */
    const char *description; /* one line; for an optional key, when it is there */
    int optional;            /* only in some cases (a parameter asked for it, a kind of reply) */
    int nullable;            /* may be null (a command killed by a signal has no exit_code) */
} cbx_output;

/* The type's declared outputs, or NULL when it declares none (also for a type of ABI 2, whose
 * struct has no outputs field). Borrowed from the type. */
const cbx_output *cbx_executor_type_outputs(const cbx_executor_type *t);

/* The declared output called name, or NULL (also when t declares none). */
const cbx_output *cbx_output_find(const cbx_output *outputs, const char *name);

/* A declaration as a JSON Schema (draft 2020-12) of the outputs object: type object, properties
 * (type, description), required (the keys not optional); nullable keys take ["T", "null"]. NULL
 * outputs give json null. New reference (NULL only when out of memory). */
json_t *cbx_outputs_to_json(const cbx_output *outputs);

/* ---- tasks: one attempt as the executor sees it -------------------------------------------- */

typedef struct cbx_task cbx_task;
typedef struct cbx_executor_type cbx_executor_type;

/* The parameters, validated, with defaults applied (borrowed, read-only, valid until done). */
const json_t *cbx_task_params(const cbx_task *t);
/* The executor's per-attempt state: type->task_size zeroed bytes (NULL when 0). */
void *cbx_task_state(cbx_task *t);
/* The event loop (a uv_loop_t *), for asynchronous executors. */
void *cbx_task_loop(cbx_task *t);
const cbx_executor_type *cbx_task_type(const cbx_task *t);
/* 1 for the first attempt of an execution. */
uint32_t cbx_task_attempt(const cbx_task *t);
/* When this attempt times out, on cbx_task_clock(); UINT64_MAX when never. */
uint64_t cbx_task_deadline_ns(const cbx_task *t);
cbx_clock *cbx_task_clock(const cbx_task *t);
/* The execution's id (a UUID string, owned by the runtime). */
const char *cbx_task_execution_id(const cbx_task *t);
/* The context of the execution the attempt belongs to (cbx_request.run_id, .step, .metadata,
 * .tmpdir): borrowed, valid until the attempt has reported (also on a pool thread), NULL when
 * the request gave none. run_id and step are a flow's run id and step name; metadata is an
 * object (a flow's {flow, version, description, inputs}); tmpdir is a directory of the
 * execution's own, made before its first attempt, shared by its attempts, removed (with its
 * contents) when the execution ends unless kept on failure. */
const char *cbx_task_run_id(const cbx_task *t);
const char *cbx_task_step(const cbx_task *t);
const json_t *cbx_task_metadata(const cbx_task *t);
const char *cbx_task_tmpdir(const cbx_task *t);
/* The W3C traceparent of this attempt ("00-TRACE-SPAN-01", 55 characters + NUL into out) when
 * the process takes part in a trace (TRACEPARENT in its environment, whose trace id is kept, or
 * OTEL_EXPORTER_OTLP_ENDPOINT set): 1; else 0 and out untouched. Each attempt is a span of its
 * own. The http executor sends it (header traceparent) and the command executor sets
 * TRACEPARENT, unless the request gives its own. */
int cbx_task_traceparent(const cbx_task *t, char out[56]);

/* Non-zero once the attempt is being cancelled (timeout, cancel, runtime shutdown). Safe to call
 * from a blocking run() on a pool thread. */
int cbx_task_cancelled(const cbx_task *t);
/* 1 when the attempt is being stopped because its deadline passed (0 for a cancel). */
int cbx_task_timed_out(const cbx_task *t);
/* How long a process executor waits between SIGTERM and SIGKILL (the runtime's kill_grace_ns). */
uint64_t cbx_task_kill_grace_ns(const cbx_task *t);
/* The state the type's loop_init gave for this runtime (NULL when the type has no loop_init,
 * or it left the state NULL). Safe from a blocking run() on a pool thread. */
void *cbx_task_loop_state(const cbx_task *t);

/* Report how the attempt ended: exactly once per attempt, on the loop thread (asynchronous
 * executors; a blocking run() returns instead). outputs and metadata are stolen (may be NULL);
 * error is copied (NULL or a one-line printf format). After a cancel the runtime records the
 * attempt as TIMEOUT or CANCELLED whatever outcome is given here, but keeps the metadata. */
void cbx_task_done(cbx_task *t, cbx_outcome k, json_t *outputs, json_t *metadata,
                   const char *error_fmt, ...) __attribute__((format(printf, 5, 6)));
/* Before cbx_task_done (or from run()): a delay the work asks for before a retry (an HTTP
 * Retry-After), and a quality score 0..1 for a success. */
void cbx_task_set_retry_after(cbx_task *t, uint64_t ns);
void cbx_task_set_quality(cbx_task *t, double quality);

/* ---- streaming: partial output before the attempt ends -------------------------------------
 *
 * An executor may emit chunks - text (a command's output, a model's tokens) or JSON events - while
 * its attempt runs. The runtime queues them per attempt, in the order emitted, and delivers them on
 * the loop thread to the submitter's callback (cbx_request.on_chunk, cbx/runtime.h) and, bounded,
 * to the journal (the attempt's metadata "chunks"). Every chunk emitted before the attempt ends is
 * delivered before the attempt's end is processed (before a retry, before on_done).
 *
 * Back-pressure. An attempt's queue holds up to cbx_request.chunk_queue chunks (default 64). While
 * the consumer keeps up it stays short; a consumer that pauses (CBX_CHUNK_PAUSE) lets it fill:
 *   - from a pool thread (a blocking run(), a function's call()), an emit into a full queue WAITS
 *     until there is room, the attempt is stopped (CBX_ECANCELLED) or the consumer stops (-EPIPE);
 *   - from the loop thread (asynchronous executors) an emit never waits: the chunk is queued and
 *     -EAGAIN says the queue is now full - stop producing (uv_read_stop, stop reading a socket)
 *     until the function given to cbx_task_on_drain is called. An executor that goes on emitting
 *     anyway may queue up to 4 x the bound; beyond that chunks are dropped (-ENOBUFS, counted).
 *
 * Cost: nothing when nobody takes chunks (no on_chunk and no journal: emit returns 0 at once);
 * otherwise one allocation per chunk (its bytes copied), a mutex per attempt, one uv_async
 * wake-up per batch of chunks from a pool thread.
 */

/* Emit len bytes of text (copied; need not be NUL-terminated, not checked for UTF-8) on a channel
 * ("stdout", "stderr", "tokens"...; NULL = "out"; copied, at most 31 bytes used). Safe from the
 * loop thread and from the attempt's pool thread. Returns
 *   0             queued;
 *   -EAGAIN       queued, and the queue is now full (loop thread only): wait for the drain call;
 *   -ENOBUFS      dropped: the queue is 4 x full (loop thread only);
 *   CBX_ECANCELLED dropped: the attempt is being stopped (timeout, cancel) or has ended;
 *   -EPIPE        dropped: the consumer stopped the stream (CBX_CHUNK_STOP); stop producing;
 *   -ENOMEM, -EINVAL (t NULL). */
int cbx_task_emit(cbx_task *t, const char *channel, const char *text, size_t len);
/* The same for a JSON event (stolen, also on failure). */
int cbx_task_emit_event(cbx_task *t, const char *channel, json_t *event);
/* 1 when the submitter takes chunks (a request with on_chunk); 0 when they would only be
 * journaled (or go nowhere). An executor whose output is captured anyway (the command's stdout)
 * emits only for 1; one whose output exists only as chunks (tokens) emits either way. */
int cbx_task_stream_wanted(const cbx_task *t);
/* Loop thread: call fn(t, ud) once, on the loop thread, when the queue has been delivered after
 * an emit answered -EAGAIN (on the loop's next turn if it already is; never from inside this
 * call). Not called once the attempt is stopped or has ended, nor when nobody takes chunks (emits
 * then never answer -EAGAIN). fn NULL forgets an earlier call. */
void cbx_task_on_drain(cbx_task *t, void (*fn)(cbx_task *t, void *ud), void *ud);

/* What an attempt produced, as the after hook sees it (and may change). */
typedef struct cbx_task_result {
    cbx_outcome outcome;
    json_t *outputs;  /* owned by the runtime; the hook may replace it (decref the old one) */
    json_t *metadata; /* likewise */
    char error[512];
    uint64_t retry_after_ns;
    double quality;
} cbx_task_result;

/* ---- executor types ------------------------------------------------------------------------ */

struct cbx_executor_type {
    uint32_t abi;        /* CBX_EXECUTOR_ABI */
    const char *name;    /* [a-z0-9_.-]+ */
    const char *summary; /* one line */
    const cbx_param *params;
    size_t task_size; /* bytes of per-attempt state for cbx_task_state */
    void *data;       /* the type's own data, for its ops (cbx_task_type(t)->data) */

    /* Optional. Checks beyond the schema, on params with defaults applied. Add every problem
     * to *err as a one-line message naming the parameter; return 0 or CBX_EINVAL_CONFIG. */
    int (*validate)(const cbx_executor_type *type, const json_t *params, cbx_err *err);
    /* Optional. Before each attempt, on the loop thread; < 0 fails the attempt (ERROR) with
     * the message in err, without starting it. */
    int (*before)(cbx_task *t, cbx_err *err);
    /* Optional. After each attempt (also a failed or timed-out one), on the loop thread. */
    void (*after)(cbx_task *t, cbx_task_result *r);

    /* Either start (+ cancel) - asynchronous - or run - blocking, on the thread pool. */
    int (*start)(cbx_task *t);   /* < 0: could not start; the attempt fails with that code */
    void (*cancel)(cbx_task *t); /* stop the work; it must still end in cbx_task_done */
    cbx_outcome (*run)(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err);

    /* Optional. Called when the type is unregistered or the registry is freed. */
    void (*destroy)(const cbx_executor_type *type);

    /* ---- ABI 2 ---- */

    /* Optional, per runtime: set up what the type's tasks share on one runtime's loop (loop is
     * its uv_loop_t *). Called on the loop's thread: by cbx_runtime_new for every type then
     * registered that has loop_init or loop_close (in name order), or before the first attempt
     * of a type registered later. *state starts NULL; what is put there is the type's, handed
     * to each task (cbx_task_loop_state) and to loop_close. Keep it cheap: a runtime that never
     * runs the type pays for it too (load libraries, open connections on first use instead).
     * < 0 fails cbx_runtime_new with err (or that first attempt, as an ERROR); loop_close is
     * not called for a failed loop_init. Runtimes sharing one loop each get their own state. */
    int (*loop_init)(const cbx_executor_type *type, void *loop, void **state, cbx_err *err);
    /* Optional: release the state, once per successful loop_init (also when loop_init is NULL:
     * then state is NULL). Called by cbx_runtime_free on the loop's thread, in the reverse
     * order of the loop_init calls, once the runtime's executions have ended and before the
     * loop stops running: libuv handles may be closed here (their close callbacks still run).
     * An asynchronous attempt the runtime stopped waiting for may not have reported yet: what
     * it uses must outlive this call until it has. The type must stay registered until then. */
    void (*loop_close)(const cbx_executor_type *type, void *loop, void *state);

    /* ---- ABI 3 ---- */

    /* Optional: the outputs the type produces (see cbx_output), ended by a NULL name. NULL: not
     * declared - any outputs, and a flow's references to them are not checked. A declared type
     * may still report outputs it did not declare only by mistake: flows refuse references to
     * them (`steps.x.outputs.bdy`: "did you mean body?"). Read with cbx_executor_type_outputs. */
    const cbx_output *outputs;
};

#ifdef __cplusplus
}
#endif
#endif
