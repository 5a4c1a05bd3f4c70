/* The container executor: a container run through the Docker Engine REST API (Docker, or
 * Podman's compatible service) over its unix socket, with libcurl on the runtime's loop.
 *
 * An attempt is a chain of requests, one at a time except where noted: (pull) -> create ->
 * start -> wait (with a stats stream beside it) -> logs -> inspect -> delete -> report. A
 * timeout or cancel sends SIGTERM, then SIGKILL after the grace, and the chain goes on from the
 * wait as usual: the logs so far are read and the container is removed. Every container
 * carries labels naming its owner (this process: boot id, pid namespace, pid and start time), so
 * that the next cbx to run a container on the same engine removes what a killed cbx left behind.
 *
 * container.c  the type: schema, validation, start and cancel, the per-loop context
 * spec.c       the parameters -> the create request's JSON (command words, env, binds, limits)
 * engine.c     one request to the engine over the socket; the socket's path; error texts
 * run.c        one attempt's chain of requests, its stop
 * result.c     one attempt's outputs, metadata and outcome
 * logs.c       the multiplexed log stream (8-byte frame headers) into two bounded captures
 * reap.c       owner labels, and removing the containers of owners that are gone
 */
#ifndef CBX_EXECUTORS_CONTAINER_H
#define CBX_EXECUTORS_CONTAINER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cbx/err.h"
#include "cbx/executor.h"
#include "executors/command.h" /* cbx__capture */
#include "executors/http.h"    /* the curl multi context on the loop */

/* The built-in "container" type (static; never freed). */
const cbx_executor_type *cbx__container_type(void);

/* The API version spoken (Podman 4 reports 1.41; Docker accepts it). */
#define CBX__CTR_API "/v1.41"

/* Labels every container of cbx carries. */
#define CBX__CTR_LABEL_OWNER  "io.cbx.owner"  /* "<boot id>/<pid ns>/<pid>/<start ticks>" */
#define CBX__CTR_LABEL_REMOVE "io.cbx.remove" /* "1": removed when done; "0": kept */
#define CBX__CTR_LABEL_EXEC   "io.cbx.execution"

typedef struct cbx__ctr_loop cbx__ctr_loop;
typedef struct cbx__ctr_req cbx__ctr_req;

/* ---- engine.c: requests ------------------------------------------------------------------- */

typedef void (*cbx__ctr_req_cb)(cbx__ctr_req *rq);
/* A raw body sink: the bytes as they come (the log and stats streams). Returns 0 to go on,
 * non-zero to stop the transfer. */
typedef int (*cbx__ctr_sink)(void *data, const char *p, size_t n);

/* One request over the engine's socket. The body is kept (up to 1 MiB) unless a sink takes
 * it. */
struct cbx__ctr_req {
    cbx__http_xfer x; /* the transfer on the loop's curl context; x.on_end brings it back here */
    cbx__ctr_loop *cl;
    const char *socket;   /* the engine's socket path (borrowed; the caller sets it) */
    cbx__http_easy *easy; /* while in flight */
    struct curl_slist *headers;
    char *send; /* the request body (malloc'd) */
    char *body; /* the response body, NUL-terminated (malloc'd) */
    size_t len, cap;
    cbx__ctr_sink sink; /* NULL: the body is kept */
    void *sink_data;
    long status; /* HTTP status; 0 when there was no answer */
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
    cbx__ctr_req_cb cb;
    void *data; /* the caller's */
    /* Optional: called once, from inside curl's callback (send nothing from it), when a 2xx
     * response's headers have all come, before its body. */
    cbx__ctr_req_cb on_headers;
    int headers_seen;
    int live; /* in flight */
};

/* The engine's socket path for a docker_host parameter (may be NULL): "unix:///path" or a
 * path; else DOCKER_HOST; else the first of the usual Docker and Podman sockets that exists
 * (else the first of them). Writes the path into buf. 0, or CBX_EINVAL_CONFIG with a one-line
 * message in err (a tcp:// or ssh:// host, which this executor does not speak). */
int cbx__ctr_socket_path(const char *docker_host, char *buf, size_t len, cbx_err *err);

/* Send method path (path under CBX__CTR_API, with its query; json: the body, may be NULL) on
 * rq->socket (cl->socket when NULL); cb(rq) on the loop when it has ended (never from inside this
 * call). rq is the caller's, zeroed or finished before; its cb, data, sink and sink_data are kept.
 * 0, or a negative code (nothing sent, cb not called). */
int cbx__ctr_send(cbx__ctr_loop *cl, cbx__ctr_req *rq, const char *method, const char *path,
                  const char *json);
/* Stop a request in flight (cb is not called). No-op when it is not. */
void cbx__ctr_abort(cbx__ctr_req *rq);
/* Release what a finished request holds (its body). */
void cbx__ctr_req_clear(cbx__ctr_req *rq);
/* A one-line reason for a failed request into buf: the engine's "message", or curl's error
 * with how to start the engine when its socket is absent or refuses. */
void cbx__ctr_req_error(const cbx__ctr_req *rq, const char *what, char *buf, size_t len);
/* The response body parsed as JSON (new reference), or NULL. */
json_t *cbx__ctr_req_json(const cbx__ctr_req *rq);
/* Percent-encode s into buf (unreserved characters kept). Returns buf; "" when it won't fit. */
char *cbx__ctr_urlencode(const char *s, char *buf, size_t len);

/* ---- the per-loop context (container.c) ---------------------------------------------------- */

struct cbx__ctr_loop {
    cbx__http_loop *http; /* the curl multi context on this loop */
    char socket[256];     /* the socket the reap looks at: the first attempt's */
    /* Reaping the containers of dead owners: 0 not yet, 1 under way, 2 done. Attempts that
     * start while it is under way wait on the list. */
    int reap_state;
    struct cbx__ctr_run *reap_waiters;
    struct cbx__ctr_reap *reap;
    size_t refs; /* attempts begun and not yet reported */
    int closed;  /* the runtime closed it: freed after the last attempt */
};

/* An attempt has reported: drop its hold on cl (freed when closed and unused). */
void cbx__ctr_loop_release(cbx__ctr_loop *cl);

/* ---- reap.c ------------------------------------------------------------------------------- */

/* This process's owner label value (static; made once). */
const char *cbx__ctr_owner_label(void);
/* Begin reaping on cl's socket (cl->socket): list the containers with an owner label, remove
 * those whose owner is gone, then resume cl->reap_waiters (cbx__ctr_run_resume). Sets
 * cl->reap_state. Failures are ignored (the attempt's own requests report a dead engine). */
void cbx__ctr_reap_begin(cbx__ctr_loop *cl);
/* Stop a reap under way (its requests aborted, its waiters dropped): the loop closes. */
void cbx__ctr_reap_abort(cbx__ctr_loop *cl);
/* 1 when the owner label value names a process that no longer runs on this machine. */
int cbx__ctr_owner_gone(const char *label);

/* ---- logs.c ------------------------------------------------------------------------------- */

/* The demultiplexer of the log stream: frames of an 8-byte header (byte 0: 1 stdout, 2 stderr,
 * 3 an error of the engine; bytes 4-7 the big-endian length) and their payload. A stream that
 * does not start with a valid header (a container with a tty) is taken as plain stdout. */
typedef struct cbx__ctr_logs {
    cbx__capture out, err;
    unsigned char hdr[8];
    size_t hdr_len;
    uint32_t left; /* payload bytes of the current frame still to come */
    int stream;    /* of the current frame */
    int raw;       /* not multiplexed */
    int started;
} cbx__ctr_logs;

/* A cbx__ctr_sink: feed bytes of the stream. */
int cbx__ctr_logs_feed(void *logs, const char *p, size_t n);

/* ---- run.c -------------------------------------------------------------------------------- */

/* Where an attempt is. */
typedef enum cbx__ctr_phase {
    CTR_IDLE,
    CTR_REAP_WAIT,
    CTR_PULL,
    CTR_CREATE,
    CTR_ARM, /* the attach is on its way; the start goes when its headers have come */
    CTR_START,
    CTR_WAIT,
    CTR_LOGS,
    CTR_INSPECT,
    CTR_DELETE,
    CTR_REPORT,
} cbx__ctr_phase;

/* One attempt (the task's state). */
typedef struct cbx__ctr_run {
    cbx_task *task;
    cbx__ctr_loop *cl;
    struct cbx__ctr_run *next_waiter;
    cbx__ctr_phase phase;
    json_t *create_body;    /* the create request (owned) */
    const char *image;      /* borrowed from the parameters */
    char id[80];            /* the container's id once created */
    char socket[256];       /* the engine's socket path */
    cbx__ctr_req rq;        /* the chain's request: create, start, logs, inspect, delete */
    cbx__ctr_req attach_rq; /* the output, from before the start; its end is the exit's sign */
    cbx__ctr_req stats_rq;  /* the stats stream, while it runs */
    cbx__ctr_req kill_rq;   /* a signal sent on cancel */
    cbx__ctr_req probe_rq;  /* an inspect now and then while it runs */
    cbx__ctr_logs logs;
    uv_timer_t timer; /* the start's turn, the ticks while it runs, a deferred report */
    int timer_init;
    uint64_t grace_ms;
    int64_t memory_limit;
    int pull;   /* 0 never, 1 missing, 2 always */
    int pulled; /* a pull was made */
    int remove; /* delete when done */
    int cancelled;
    int in_call;        /* inside start or cancel: a report must wait for a later turn */
    int want_stats;     /* read the stats stream while the container runs */
    char *remove_error; /* why the removal failed (malloc'd) */
    int term_sent, kill_sent;
    int attach_done;   /* the attach has ended (the output is whole) */
    int gone;          /* removed by someone else while it ran */
    int settling;      /* the attach has ended, the engine said it still ran: probing soon */
    int stats_started; /* the stats stream was opened */
    int probed_exit;   /* the exit came from the probe, not the wait */
    uint64_t kill_at_ms, stats_at_ms, probe_at_ms, probe_every_ms; /* uv_hrtime in ms */
    int have_exit;
    long exit_code;
    int oom_killed; /* the engine's State.OOMKilled */
    int removed;
    int64_t mem_peak; /* from the stats stream; -1 unknown */
    int64_t cpu_ns;   /* likewise */
    char stats_line[16384];
    size_t stats_len;
    uint64_t t0_ns, t_started_ns, t_exited_ns;
    char error[512]; /* set: the attempt fails with this */
    int error_kind;  /* 0 error; 1 the container ran and failed (exit code, oom) */
} cbx__ctr_run;

/* result.c: build the outputs and report (cbx_task_done); r is gone afterwards. */
void cbx__ctr_run_deliver(cbx__ctr_run *r);
/* Begin the attempt on the engine at socket (copied), with the create request's body (stolen,
 * also on failure): 0, or a negative code (the runtime fails it). */
int cbx__ctr_run_start(cbx_task *t, cbx__ctr_loop *cl, json_t *create_body, const char *socket);
void cbx__ctr_run_cancel(cbx_task *t);
/* The reap it waited for is over: go on. */
void cbx__ctr_run_resume(cbx__ctr_run *r);

/* ---- spec.c ------------------------------------------------------------------------------- */

/* Checks beyond the schema, every problem into *err. 0 or CBX_EINVAL_CONFIG. */
int cbx__ctr_spec_validate(const json_t *params, cbx_err *err);
/* The create request's body for the parameters (new reference), labels included; NULL with a
 * message in err. */
json_t *cbx__ctr_spec_build(const json_t *params, const char *execution_id, cbx_err *err);
/* Split a command string into words as a POSIX shell would without expansions: blanks
 * separate, single quotes keep everything, double quotes keep all but \" \\ \$ \`, a backslash
 * outside quotes keeps the next character. A new array of strings, or NULL with a message
 * (an unterminated quote) in err. */
json_t *cbx__ctr_split_words(const char *s, cbx_err *err);
/* Parse a size: an integer of bytes, or a string "512m", "1g", "256MiB", "100k". 0 and *out,
 * or -1. */
int cbx__ctr_parse_bytes(const json_t *v, int64_t *out);

#endif
