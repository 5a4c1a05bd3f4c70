/* The serverless executor's local backend: cbx hosts the AWS Lambda Runtime API and runs the
 * function's runtime processes itself (seed 000's ServerlessExecutor `runtime` and
 * `environment`), with `function_dir` instead of an endpoint.
 *
 * http_parser.c   libhttp_parser (Debian's libhttp-parser2.9) through dlopen, on first use
 * runtime_api.c   the Runtime API's HTTP server for one runtime process, on loopback
 * runtime_proc.c  one runtime process: spawned, watched, its output's tail, its tree killed
 * runtime_pool.c  the functions of one loop: warm runtimes reused, a concurrency limit, a queue
 * runtime_python.c the bootstrap cbx ships for python3 handlers (file.function)
 * runtime_node.c  the bootstrap cbx ships for Node.js handlers (file.function)
 * local.c         the executor's side: parameters checked, an invocation made and reported
 *
 * Everything runs on the runtime's loop thread.
 */
#ifndef CBX_EXECUTORS_SERVERLESS_LOCAL_H
#define CBX_EXECUTORS_SERVERLESS_LOCAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "cbx/err.h"
#include "cbx/executor.h"
#include "executors/command.h"

/* ---- http_parser.c ------------------------------------------------------------------------ */

struct http_parser;
struct http_parser_settings;

/* The functions of libhttp_parser used here (filled by cbx__hp_load). */
typedef struct cbx__hp_api {
    void (*init)(struct http_parser *p, int type);
    void (*settings_init)(struct http_parser_settings *s);
    size_t (*execute)(struct http_parser *p, const struct http_parser_settings *s, const char *data,
                      size_t len);
    int (*should_keep_alive)(const struct http_parser *p);
    const char *(*errno_description)(int e);
} cbx__hp_api;

extern cbx__hp_api cbx__hp;

/* Load libhttp_parser once (thread-safe); later calls give the first call's answer. 0, or
 * CBX_EPLUGIN with dlopen's reason in *err (may be NULL). */
int cbx__hp_load(cbx_err *err);

/* ---- runtime_api.c ------------------------------------------------------------------------ */

typedef struct cbx__rapi cbx__rapi;

/* What the server asks of its owner (ud). Each call happens on the loop thread, from a request
 * the runtime process made. */
typedef struct cbx__rapi_ops {
    /* GET /runtime/invocation/next arrived and is parked: answer it with cbx__rapi_deliver (now,
     * or later when an invocation comes). */
    void (*next)(void *ud);
    /* POST /runtime/invocation/ID/response (error = 0) or /error (error = 1, etype the
     * Lambda-Runtime-Function-Error-Type header or ""): the body (borrowed). Return 1 when ID is
     * the invocation in progress (answered 202), 0 when not (answered 400 InvalidRequestID). */
    int (*result)(void *ud, const char *id, int error, const char *etype, const char *body,
                  size_t len);
    /* POST /runtime/init/error: the runtime could not start (answered 202). */
    void (*init_error)(void *ud, const char *etype, const char *body, size_t len);
} cbx__rapi_ops;

/* Listen on 127.0.0.1 (a port of the kernel's choosing, in *port). ops is borrowed and must
 * outlive the server. 0, or a negative errno with *err. */
int cbx__rapi_open(uv_loop_t *loop, const cbx__rapi_ops *ops, void *ud, cbx__rapi **out, int *port,
                   cbx_err *err);
/* Answer the parked /next with an event: 0, or -EAGAIN when none is parked. headers are
 * name/value pairs ending with NULL (borrowed). */
int cbx__rapi_deliver(cbx__rapi *s, const char *const *headers, const char *body, size_t len);
/* Stop listening and drop every connection; the memory goes once the handles have closed. The
 * owner's callbacks are not called again. NULL is harmless. */
void cbx__rapi_close(cbx__rapi *s);

/* ---- runtime_python.c --------------------------------------------------------------------- */

/* The Python program (for `python3 -c`) that runs _HANDLER (module.function, looked up under
 * LAMBDA_TASK_ROOT) against the Runtime API at AWS_LAMBDA_RUNTIME_API. */
extern const char cbx__lambda_python_bootstrap[];

/* ---- runtime_node.c ----------------------------------------------------------------------- */

/* The Node.js program (for `node -e`) that runs _HANDLER (module.function, a CommonJS module
 * under LAMBDA_TASK_ROOT; async or callback handlers) against the Runtime API. */
extern const char cbx__lambda_node_bootstrap[];

/* ---- the pool and its runtimes ------------------------------------------------------------- */

typedef struct cbx__lambda_pool cbx__lambda_pool;
typedef struct cbx__lambda_fn cbx__lambda_fn;
typedef struct cbx__lambda_rt cbx__lambda_rt;
typedef struct cbx__lambda_inv cbx__lambda_inv;

/* How a function is run (copied into the pool by cbx__lambda_invoke). */
typedef struct cbx__lambda_conf {
    const char *dir;         /* the function's directory (absolute) */
    const char *name;        /* AWS_LAMBDA_FUNCTION_NAME */
    const char *handler;     /* _HANDLER ("" when none) */
    const char *interpreter; /* NULL: dir/bootstrap is run; else "python3..." or "node", run
                                with cbx's bootstrap for it (-c / -e) */
    const char *region;
    const json_t *environment; /* object of strings, or NULL */
    int memory_mb;
    int concurrency; /* runtimes at most at once */
} cbx__lambda_conf;

/* One invocation, in the task's state. Zeroed by the caller before cbx__lambda_invoke. */
struct cbx__lambda_inv {
    cbx_task *t;
    cbx__lambda_fn *fn;
    cbx__lambda_rt *rt; /* the runtime it was given to, or NULL while queued */
    cbx__lambda_inv *next;
    char id[40];
    char *payload; /* owned */
    size_t payload_len;
    uint64_t timeout_ms; /* 0: none of its own */
    int cold, delivered, ended, want_log;
    uint64_t t0_ns, t_assigned_ns, t_delivered_ns;
    cbx__capture log; /* what the runtime wrote while it was at this invocation */
    /* the report, handed to cbx_task_done on the loop's next turn */
    cbx__lambda_inv *done_next;
    cbx_outcome outcome;
    json_t *outputs, *metadata;
    char msg[1024];
};

/* The runtime process of a function, see runtime_proc.c. */
enum { CBX__RT_STARTING, CBX__RT_READY, CBX__RT_DEAD };

struct cbx__lambda_rt {
    cbx__lambda_fn *fn;
    cbx__lambda_rt *next;
    uv_loop_t *loop;
    cbx__rapi *api;
    int port;
    int state;
    pid_t pid;
    int pidfd;
    cbx__cgroup cg;
    char tree_mark[48];
    uv_poll_t exit_poll;
    uv_timer_t exit_timer, limit_timer;
    uint64_t exit_timer_ms;
    uint64_t settle_ms, settle_t0_ns; /* after the exit: waiting for the tree's cgroup to empty */
    int status;                       /* the exit status (as from wait4), -1 when unknown */
    int stopping;                     /* cbx__lambda_rt_stop: reported synchronously */
    uv_pipe_t out, err;
    int out_live, err_live, handles;
    cbx__lambda_inv *inv; /* the invocation it is at, or NULL (idle) */
    int invocations;      /* given so far */
    uint64_t t_spawn_ns;
    double init_ms;        /* from the spawn to its first /next; -1 until then */
    const char *killed_by; /* "timeout", "cancel", "init error", "close" or NULL */
    char init_error[512];
    char tail[2048]; /* the last bytes of its output (stdout and stderr) */
    size_t tail_len;
};

/* The Runtime API callbacks of every runtime (runtime_pool.c; ud is the cbx__lambda_rt). */
extern const cbx__rapi_ops cbx__lambda_rapi_ops;

/* Start rt's process for fn (rt zeroed but for fn, loop). 0, or a negative errno with *err. */
int cbx__lambda_rt_start(cbx__lambda_rt *rt, const cbx__lambda_conf *c, cbx_err *err);
/* SIGKILL the runtime's process tree (its exit is then reported as usual); why is kept. */
void cbx__lambda_rt_kill(cbx__lambda_rt *rt, const char *why);
/* 1 when the runtime is still running; else 0, and its exit is reported now (an idle runtime
 * killed from outside is found before an invocation is given to it). */
int cbx__lambda_rt_check(cbx__lambda_rt *rt);
/* Read what the runtime has written and the loop has not yet read (an answer's log is complete:
 * the runtime wrote it before it posted the answer). */
void cbx__lambda_rt_drain(cbx__lambda_rt *rt);
/* SIGKILL the tree and reap the runtime now (blocking until it is gone): its exit is reported. */
void cbx__lambda_rt_stop(cbx__lambda_rt *rt);
/* The tail of its output as one line (control characters as spaces), into buf. */
void cbx__lambda_rt_tail(const cbx__lambda_rt *rt, char *buf, size_t len);

/* Called by runtime_proc.c: the process has exited and been reaped (status as from wait4, -1
 * when unknown). The pool then lets rt go with cbx__lambda_rt_release. */
void cbx__lambda_pool_rt_exited(cbx__lambda_rt *rt, int status);
/* Close rt's handles and free it once they are closed. */
void cbx__lambda_rt_release(cbx__lambda_rt *rt);

/* The loop's pool (created on first use, freed by cbx__lambda_pool_free). */
cbx__lambda_pool *cbx__lambda_pool_new(uv_loop_t *loop);
/* Stop every runtime (SIGKILL to its tree, reaped), fail what is queued, free the pool. */
void cbx__lambda_pool_free(cbx__lambda_pool *p);

/* Queue inv (its t, payload, timeout_ms set) for the function c describes: a warm runtime takes
 * it, or a new one up to c->concurrency, else it waits. Always ends in cbx_task_done, never
 * from inside this call. */
void cbx__lambda_invoke(cbx__lambda_pool *p, const cbx__lambda_conf *c, cbx__lambda_inv *inv);
/* Stop inv: taken off the queue, or its runtime killed (a new one replaces it later). */
void cbx__lambda_cancel(cbx__lambda_inv *inv);

/* ---- local.c ------------------------------------------------------------------------------- */

/* The parameters of the local backend, when function_dir is given: 0 or CBX_EINVAL_CONFIG
 * naming the parameter. */
int cbx__lambda_local_validate(const json_t *p, cbx_err *err);
/* Start the invocation (pool from the loop state). Returns 0; always ends in cbx_task_done. */
int cbx__lambda_local_start(cbx_task *t, cbx__lambda_pool **pool, cbx__lambda_inv *inv);

#endif
