/* The runtime's insides: executions, their attempts (tasks), and the runtime itself. Shared by
 * runtime.c (queue, scheduling, the public API), attempt.c (one attempt's life), task.c (what
 * executors see) and result.c. */
#ifndef CBX_RUNTIME_INTERNAL_H
#define CBX_RUNTIME_INTERNAL_H

#include "cbx/runtime.h"
#include "core/uuid.h"

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

typedef struct cbx_link {
    struct cbx_link *prev, *next;
} cbx_link;

/* Why an attempt is being stopped. */
enum { STOP_NONE = 0, STOP_TIMEOUT, STOP_CANCEL };

/* What an execution's attempts see of its context (cbx_request.run_id ...): shared by the
 * execution and its tasks, counted, so that an abandoned attempt still running on a pool
 * thread keeps it. NULL when the request gave none. */
typedef struct cbx__exec_ctx {
    atomic_uint refs;
    char *run_id, *step, *tmpdir;
    json_t *metadata;
    int tmpdir_mode; /* CBX_TMPDIR_* */
} cbx__exec_ctx;

struct cbx_task {
    cbx_execution *ex;  /* not touched once abandoned: the execution may be gone */
    cbx__exec_ctx *ctx; /* a reference of its own; NULL */
    json_t *params;     /* a reference of its own, for the same reason */
    void *loop;
    uint64_t kill_grace_ns;
    void *loop_state; /* the type's loop_init state on this runtime (cbx_task_loop_state) */
    char exec_id[40];
    char trace[33]; /* the trace id its traceparent carries; "" = it carries none */
    const cbx_executor_type *type;
    uint32_t attempt;
    uint64_t start_ns, deadline_ns; /* monotonic */
    uint64_t started_ms;            /* wall clock */
    atomic_int stop;                /* STOP_*: set on the loop thread, read by pool threads */
    int in_start;                   /* inside type->start: completion is deferred */
    int reported;                   /* cbx_task_done (or run's return) happened */
    int abandoned;                  /* the execution moved on; free when the work returns */
    /* what the attempt produced */
    cbx_outcome outcome;
    json_t *outputs, *metadata;
    char *error; /* malloc'd, only when the attempt gave a reason (most succeed without one) */
    uint64_t retry_after_ns;
    double quality;
    uv_work_t work; /* blocking executors */
    /* streaming (stream.c): the queue, made on the first emit; what the chunks go to (STREAM_*,
     * fixed at start, so that a pool thread never reads the execution); the loop's thread */
    struct cbx__stream *_Atomic stream;
    cbx_runtime *rt;
    pthread_t loop_thread;
    uint32_t stream_cap;
    uint8_t stream_mode;
    uint8_t complete_deferred; /* cbx_task_done came while its chunks were being delivered */
    _Alignas(16) unsigned char state[];
};

/* What an execution needs once it runs (or ends): allocated when it leaves the queue, so that
 * a queued execution holds little more than its parameters. */
#define CBX__SPARE_BODIES 32

typedef struct cbx__exec_body {
    uv_timer_t timer; /* attempt deadline, retry delay, bulkhead wait; set up on first use */
    cbx_task *task;   /* the attempt out, if any */
    cbx_permit named_permit;
    uint8_t named_held;
    uint8_t lock_wait; /* res.error says the named breaker's record is locked elsewhere */
    uint8_t timer_on;  /* timer is initialized: it must be closed before the body is freed */
    uint32_t attempts; /* attempts started */
    uint64_t started_ns;
    cbx_policy_run run;   /* when policy */
    cbx_result res;       /* filled as it goes */
    json_t *last_outputs; /* the last failed attempt's outputs, for the result */
} cbx__exec_body;

typedef enum exec_phase {
    PHASE_QUEUED,    /* waiting for a concurrency slot */
    PHASE_ADMITTING, /* between attempts, or waiting for a bulkhead slot */
    PHASE_RUNNING,   /* an attempt is out */
    PHASE_WAITING,   /* the retry delay */
    PHASE_DONE,
} exec_phase;

struct cbx_execution {
    cbx_link link; /* in rt->queue or rt->active; once done without a timer, in rt->ended */
    cbx_runtime *rt;
    char id[40];
    const cbx_executor_type *type;
    json_t *params; /* normalized, owned */
    cbx_policy *policy;
    cbx__exec_body *b;              /* NULL while queued */
    char *breaker;                  /* named breaker in rt's store */
    cbx_breaker_opts *breaker_opts; /* owned copy, or NULL */
    uint64_t timeout_ns;            /* per attempt, from the request; 0 = policy's */
    uint64_t deadline_ns;           /* absolute monotonic; UINT64_MAX = none */
    char *fallback_key, *tag;
    cbx__exec_ctx *ctx;           /* NULL when the request gave no context */
    struct cbx__trace_ctx *trace; /* the request's traceparent, when tracing and it gave one */
    cbx_done_fn on_done;
    void *ud;
    void (*on_retry)(cbx_execution *, uint32_t, uint64_t, const char *, void *);
    cbx_chunk_fn on_chunk;
    void *chunk_ud;
    uint32_t chunk_queue;
    uint64_t submitted_ns;
    /* small fields last, packed: a queued execution should cost as little as it can */
    uint8_t status;        /* cbx_status */
    uint8_t phase;         /* exec_phase */
    uint8_t cancel_reason; /* STOP_* requested for the whole execution */
    uint8_t run_begun;     /* cbx_policy_begin was called */
    uint8_t res_taken;     /* an internal done callback took res's references */
    uint8_t in_active;     /* counted in rt->nactive (else in rt->nqueued) */
    uint8_t journaled;     /* the status its journal row shows while it lasts (cbx_status) */
    uint8_t stream_paused; /* its on_chunk said CBX_CHUNK_PAUSE */
};

typedef struct cbx__loop_state {
    const cbx_executor_type *type;
    void *state;
} cbx__loop_state;

struct cbx_runtime {
    uv_loop_t *loop;
    /* cbx_runtime_opts.remote: requests go to the workers through the "remote" executor */
    int remote;
    char *remote_url, *remote_queue;
    uv_loop_t own_loop;
    int owns_loop;
    cbx_registry *registry;
    int owns_registry;
    cbx_journal *journal;
    cbx_breaker_store *breakers;
    int owns_breakers;
    uint32_t max_concurrent, max_queued;
    uint64_t kill_grace_ns;
    cbx_link queue, active; /* queued; admitted (running, waiting, retrying) */
    uint32_t nqueued, nactive;
    uint64_t rng;         /* for execution ids */
    cbx__uuid_seq id_seq; /* their order within a millisecond */
    int closing;
    uint32_t unreaped; /* executions done since the loop last turned */
    /* Executions that ended without a timer to close: freed on the loop's next turn (by the
     * idle handle), so that one that ended inside submit stays readable until then. */
    cbx_link ended;
    uv_idle_t reaper;
    uint64_t mono_base_ns, wall_base_ms; /* see cbx__rt_wall_ms */
    /* The last request's normalized parameters: a request with the same ones shares them
     * instead of a copy of its own (executors only read them; jansson counts references
     * atomically). Valid while the registry is unchanged (same_mark). */
    json_t *same_params;
    const cbx_executor_type *same_type;
    uint64_t same_mark;
    /* A result's attempt list that its done callback did not keep, emptied, and its one record
     * (cbx__attempts_recycle): the next result's, set in place. */
    json_t *spare_attempts, *spare_attempt;
    /* Bodies of ended executions, kept for the next ones (cbx__exec_body_new): a body is over
     * 1 KiB, a size whose every malloc makes glibc consolidate its fast bins. */
    cbx__exec_body *spare_bodies[CBX__SPARE_BODIES];
    unsigned nspare_bodies;
    /* The Lua state for the policies' predicates (retry.when, breaker.count_when, ignore_when),
     * made on first use and used on the loop thread only (predicate.c). */
    struct cbx_sandbox *predicates;
    /* Executor types' per-runtime state (loop_state.c), in the order of their loop_init. */
    cbx__loop_state *loop_states;
    size_t nloop_states, cap_loop_states;
    /* Tasks with chunks to deliver (stream.c), under stream_mu; stream_async wakes the loop
     * (initialized on the first streaming attempt). */
    pthread_mutex_t stream_mu;
    cbx_link stream_ready;
    uv_async_t stream_async;
    int stream_async_on;
    uint32_t stream_tasks; /* attempts that may stream, not yet freed: the handle is ref'd */
};

/* runtime.c */
void cbx__rt_execution_done(cbx_execution *ex);
uint64_t cbx__rt_wall_ms(cbx_runtime *rt, uint64_t mono_ns);

/* Spans (trace_spans.c), each called only when cbx__trace_on(): the request's trace context
 * kept with the execution (ex->trace, when it gave one); an attempt's end; an execution's end
 * (end: monotonic ns); a request refused before it was queued. */
void cbx__trace_exec_begin(cbx_execution *ex, const cbx_request *req);
void cbx__trace_task_begin(const cbx_execution *ex, cbx_task *t);
void cbx__trace_attempt_end(const cbx_execution *ex, const cbx_task *t, const char *outcome,
                            uint64_t duration_ns, const char *error);
void cbx__trace_exec_end(const cbx_execution *ex, const cbx_result *r, uint64_t end);
void cbx__trace_refused(const cbx_request *req, const char *id, const cbx_result *r);

/* predicate.c: evaluate a policy's Lua predicate over an attempt (its table: number,
 * outcome, error, outputs, metadata, duration_ms; outputs and metadata borrowed, NULL as {}).
 * key names it in messages ("retry.when"). Returns 0 with *truth, or an error with a one-line
 * message in msg ("line 1: attempt to compare nil with number", "instruction limit exceeded
 * (1000000 instructions)"). */
typedef struct cbx__pred_attempt {
    uint32_t number;
    const char *outcome;
    const char *error; /* NULL: none */
    const json_t *outputs, *metadata;
    double duration_ms;
} cbx__pred_attempt;
int cbx__predicate_eval(cbx_runtime *rt, const char *key, const char *expr,
                        const cbx__pred_attempt *a, int *truth, char *msg, size_t len);
void cbx__predicates_free(cbx_runtime *rt);
/* loop_state.c: the loop_init / loop_close hooks of executor types, on the loop's thread.
 * _open: loop_init of every type registered now that has a hook (0, or its error; the states
 * opened stay for _close). _state: a type's state, from its loop_init - called now when the type
 * came after _open (0, or the hook's error); NULL for a type without hooks. _close: loop_close
 * of every state opened, newest first. */
int cbx__rt_loop_states_open(cbx_runtime *rt, cbx_err *err);
int cbx__rt_loop_state(cbx_runtime *rt, const cbx_executor_type *t, void **state, cbx_err *err);
void cbx__rt_loop_states_close(cbx_runtime *rt);

/* stream.c: partial output. _start: at an attempt's start (loop thread), what its chunks go
 * to. _stop: the attempt is being stopped: emits are refused from now on, a waiting emitter
 * wakes. _flush: deliver what is queued, paused or not (before the attempt's end is processed).
 * _journal_meta: the metadata to journal for the attempt: metadata (borrowed) with the chunk
 * log added, a new reference; NULL when there is nothing to add (journal metadata as it is).
 * _free: with the task. _delivering: chunks of t are being delivered now (cbx_task_done then
 * defers the completion). _rt_close: at cbx_runtime_free. */
void cbx__stream_start(cbx_task *t, cbx_execution *ex);
void cbx__stream_stop(cbx_task *t);
void cbx__stream_flush(cbx_task *t);
json_t *cbx__stream_journal_meta(cbx_task *t, json_t *metadata);
void cbx__stream_free(cbx_task *t);
int cbx__stream_delivering(const cbx_task *t);
void cbx__stream_rt_init(cbx_runtime *rt);
void cbx__stream_rt_close(cbx_runtime *rt);

/* attempt.c */
/* Journal the status the execution is in now (pending, running, retrying) if its row shows
 * another one. */
void cbx__exec_journal_status(cbx_execution *ex, cbx_status status);
int cbx__exec_ensure_body(cbx_execution *ex);
/* Give b back (NULL is fine): kept for the next execution's body, or freed. Loop thread. */
void cbx__exec_body_free(cbx_runtime *rt, cbx__exec_body *b);
/* Out of the queue into a slot, at monotonic time now (0 = read the clock). */
void cbx__exec_begin(cbx_execution *ex, uint64_t now);
void cbx__exec_cancel(cbx_execution *ex, int reason);
void cbx__task_complete(cbx_task *t);
/* Take back a result's attempt list (its reference) once its done callback has returned: when
 * nothing else holds it (nor its record, for a single attempt), it is kept for the next result
 * instead of being freed. */
void cbx__attempts_recycle(cbx_runtime *rt, json_t *list);

/* registry.c: the type called type (*found_type, NULL when there is none: CBX_EUNKNOWN_TYPE,
 * with nothing in diag) and cbx_registry_validate's checks and *normalized. same may be the
 * normalized parameters of an earlier request of same_type (made since the registry last
 * changed, cbx__registry_mark): when params normalize to them, they are shared (a new
 * reference) instead of a copy being made. */
int cbx__registry_admit(const cbx_registry *r, const char *type, const json_t *params,
                        const cbx_executor_type *same_type, json_t *same,
                        const cbx_executor_type **found_type, json_t **normalized, cbx_diag *diag);

/* schema.c: 1 when norm is what validating value (an object, or NULL for none) would give: its
 * members, equal, and the defaults of the parameters it leaves out. Then value fits the schema
 * if norm's source did. */
int cbx__schema_normalizes_to(const cbx_param *params, json_t *const *defaults, const json_t *value,
                              const json_t *norm);
/* schema.c: validation by difference from norm, the normalized parameters of an earlier request
 * that passed (each request of a stream usually differs from the last in a value or two): when
 * value (an object) has norm's members but for some of the parameters, each of those checked
 * alone fits, and norm's other members are the defaults of the parameters value leaves out,
 * *normalized is norm with those members replaced by copies of value's (a new object; norm itself,
 * another reference, when nothing differs) and 1 is returned. 0 otherwise (nothing allocated):
 * the caller validates in full, for the diagnostics. */
int cbx__schema_revalidate(const cbx_param *params, json_t *const *defaults, const json_t *value,
                           const json_t *norm, json_t **normalized);

/* fallback_fn.c: resolve the policy's fallback.function (if it names one still pending) in the
 * runtime's registry. 0, or CBX_EINVAL_CONFIG with why filled (the request is refused), or
 * -ENOMEM. */
int cbx__fallback_fn_resolve(cbx_runtime *rt, cbx_policy *p, char *why, size_t len);

/* rate_limit.key of p, bound to the limiter of that name in rt's breaker store (rate_key.c)
 * when it is not yet: 0, or a negative code with why (len bytes). */
int cbx__rate_key_resolve(cbx_runtime *rt, cbx_policy *p, char *why, size_t len);
/* The fallback cache key of a request that gives none: "<executor> <canonical parameters>"
 * (compact JSON, sorted keys). 0 and *out (malloc'd), or -ENOMEM. */
int cbx__fallback_default_key(const cbx_execution *ex, char **out);

/* exec_ctx.c: the context of a request (NULL in *out when it gives none); -ENOMEM. */
int cbx__exec_ctx_new(const cbx_request *req, cbx__exec_ctx **out);
cbx__exec_ctx *cbx__exec_ctx_ref(cbx__exec_ctx *c);
void cbx__exec_ctx_unref(cbx__exec_ctx *c);
/* Make the temporary directory (named after id) when one is asked for: 0, or -errno with why
 * filled. */
int cbx__exec_ctx_make_tmpdir(cbx__exec_ctx *c, const char *id, char *why, size_t len);
/* The execution has ended (succeeded or not): remove the directory, or keep it (returns 1). */
int cbx__exec_ctx_end_tmpdir(cbx__exec_ctx *c, int succeeded);

/* result.c */
uint64_t cbx__wall_ms(void);

/* Set t->error from a printf format (replacing any earlier one). */
void cbx__task_set_error(cbx_task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copy src into dst (size bytes), cut short if need be, always terminated. */
void cbx__copy_text(char *dst, size_t size, const char *src);

/* ids */
/* A time-ordered (version 7) id stamped wall_ms (ms since the epoch). */
void cbx__uuid4(uint64_t *rng, cbx__uuid_seq *seq, uint64_t wall_ms, char out[40]);

static inline void cbx__link_init(cbx_link *l)
{
    l->prev = l->next = l;
}
static inline int cbx__link_empty(const cbx_link *l)
{
    return l->next == l;
}
static inline void cbx__link_push(cbx_link *head, cbx_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}
static inline void cbx__link_remove(cbx_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

#define CBX__CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
