/* The HTTP server of `cbx serve` (cbx-serve): h2o on the runtime's libuv loop, the /v1 JSON API,
 * /metrics, /v1/events and the dashboard. Internal to the server layer: it uses only the public
 * API of libcbx (the headers of include/cbx). Everything here runs on the loop's one thread. */
#ifndef CBX_SERVER_H
#define CBX_SERVER_H

#define H2O_USE_LIBUV 1
#include <dirent.h>
#include <h2o.h>
#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cbx/breaker_store.h"
#include "cbx/journal.h"
#include "cbx/policy.h"
#include "server/json_write.h"
#include "cbx/runtime.h"

/* What cbx-serve is told on its command line. Strings are borrowed for the server's life. */
typedef struct srv_opts {
    const char *listen;         /* "127.0.0.1:8080", "[::1]:8080", ":8080" (all addresses) */
    const char *token_file;     /* NULL: the state directory's serve.token, made at first start */
    const char *journal_path;   /* NULL: the default journal */
    int no_journal;             /* 1: nothing is journaled (events cannot be resumed) */
    size_t max_body;            /* request body limit in bytes (413 beyond); 0 = 1 MiB */
    uint64_t client_timeout_ms; /* a request's headers and body must arrive within it; 0 = 10 s */
    uint64_t grace_ms;          /* SIGTERM: in-flight work may finish within it; 0 = 10 s */
    uint64_t max_wait_ms;       /* the longest wait a synchronous submission may ask; 0 = 300 s */
    uint32_t max_concurrent;    /* the runtime's; 0 = its default (64) */
    const char *flows_dir;      /* NULL: no flows (POST /v1/flows/NAME/runs answers 404) */
    const char *workflows_dir;  /* NULL: no workflows (POST /v1/workflows/NAME/runs: 404) */
    int ready_fd;               /* >= 0: "listening on ADDR:PORT\n" is written there, then closed */
} srv_opts;

typedef struct srv srv;
typedef struct srv_exec srv_exec;
typedef struct srv_sse srv_sse;
typedef struct srv_flow_run srv_flow_run;
typedef struct srv_wf_run srv_wf_run;

/* ---- metrics (metrics.c) ------------------------------------------------------------------- */

#define SRV_LAT_BUCKETS 14
typedef struct srv_type_metrics {
    char executor[64];
    uint64_t by_status[CBX_STATUS__COUNT];
    uint64_t attempts_by_outcome[16]; /* by cbx_outcome */
    uint64_t lat_buckets[SRV_LAT_BUCKETS];
    uint64_t lat_count;
    double lat_sum_s;
    uint64_t rejected_by_reason[6]; /* circuit_open, forced_open, rate_limited, bulkhead_full,
                                       queue_full, other */
    uint64_t budget_exhausted;      /* a retry budget refused the retry that was due */
    uint64_t rate_limited;          /* a rate limiter stopped it (before or between attempts) */
    struct srv_type_metrics *next;
} srv_type_metrics;

typedef struct srv_metrics {
    srv_type_metrics *types;
    uint64_t http_requests[6];    /* by class: 1xx..5xx, [0] other */
    uint64_t breaker_transitions; /* seen by the poll, all breakers */
    uint64_t events_dropped;      /* events not written to the journal */
    uint64_t started_ms;          /* the server's start: LLM usage is summed from then on */
    json_t *llm;                  /* cbx_journal_stats by model, read at most every LLM_EVERY */
    uint64_t llm_read_ms;
} srv_metrics;

void srv_metrics_execution(srv *s, const cbx_result *res);
/* The Prometheus text exposition into *out (malloc'd; free it). 0 or -ENOMEM. */
int srv_metrics_render(srv *s, char **out, size_t *len);
void srv_metrics_free(srv_metrics *m);

/* ---- events (events.c) --------------------------------------------------------------------- */

/* Append an event (kind "execution", "attempt", "breaker", ...; data is stolen) to the journal's
 * event table and send it to every SSE client. The events of one turn of the loop are written
 * together (one journal write) at the start of the next turn, before anything else is read, and
 * sent once written. */
void srv_event(srv *s, const char *kind, json_t *data);
int srv_events_init(srv *s);
void srv_events_close_clients(srv *s);
void srv_events_keepalive(srv *s);
void srv_events_free(srv *s);
int srv_handle_events(srv *s, h2o_req_t *req);

/* ---- executions in flight (api_exec.c) ----------------------------------------------------- */

typedef struct srv_waiter srv_waiter;
struct srv_exec {
    srv *s;
    char id[40];
    char executor[64];
    cbx_execution *ex; /* NULL once ended */
    cbx_policy *policy;
    json_t *result; /* the result's JSON once ended */
    uint64_t submitted_ms;
    srv_waiter *waiters; /* synchronous submissions waiting for its end */
    srv_exec *prev, *next;
};

void srv_exec_reap(srv *s);
void srv_exec_free_all(srv *s);

/* ---- flows (api_flows.c) ------------------------------------------------------------------- */

int srv_flows_init(srv *s);
void srv_flows_cancel_all(srv *s);
/* Cancel and join every run thread, answer what they posted, free the runs. */
void srv_flows_free(srv *s);
void srv_flows_destroy_mutex(srv *s);

/* ---- workflows (api_workflows.c) ----------------------------------------------------------- */

/* Take up the runs of the workflows directory that the journal shows resting (waiting) or left
 * by a process that is gone, as `cbx workflow resume` does. */
void srv_workflows_start(srv *s);
/* Let every held run go: actions in flight are cancelled unjournaled (a resume runs them again). */
void srv_workflows_release_all(srv *s);

/* ---- the server ---------------------------------------------------------------------------- */

typedef struct srv_breaker_seen {
    char name[CBX_BREAKER_NAME_MAX + 1];
    char state[16];
    struct srv_breaker_seen *next;
} srv_breaker_seen;

struct srv {
    srv_opts o;
    uv_loop_t loop;
    cbx_runtime *rt;
    cbx_journal *journal;
    int lock_fd; /* the journal's serve-lock, held while the server runs; -1: none */
    cbx_breaker_store *breakers;
    char token[128];
    char bound[128]; /* the address actually bound, "127.0.0.1:8080" */
    int loopback;

    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    int listening;
    uint64_t nconns;
    void *conns;   /* the open connections (serve.c) */
    int conns_cut; /* shutting down: their read sides were shut */

    uv_signal_t sig_term, sig_int;
    uv_timer_t tick;  /* 1 s: breakers poll, SSE keep-alive */
    uv_timer_t reap;  /* frees ended executions after their callbacks */
    uv_timer_t grace; /* shutdown steps */
    int stopping;     /* 1: draining; 2: cancelling; 3: closing connections */
    int exit_code;

    srv_exec *inflight; /* running or queued */
    size_t n_inflight;
    srv_exec *ended;         /* waiting to be freed by the reap timer */
    json_t *recent_failures; /* the last 20 failed executions (array), for the dashboard */

    srv_metrics m;
    srv_breaker_seen *seen;

    /* api_flows.c: flow runs, each on a thread of its own */
    srv_flow_run *runs;
    size_t n_flow_runs; /* not ended */
    pthread_mutex_t flow_mu;
    int flow_mu_ok;
    void *flow_msgs; /* from the run threads, under flow_mu */
    uv_async_t flow_async;

    /* api_workflows.c: workflow runs held by this server, firing on its loop */
    srv_wf_run *wf_runs;
    size_t n_wf_busy; /* held runs firing (or able to fire) */

    /* events.c */
    uint64_t ev_seq;  /* the last event's id */
    void *ev_ring;    /* recent events */
    srv_sse *clients; /* SSE clients */
    size_t n_clients;
};

int srv_new(srv **out, const srv_opts *o, char *errbuf, size_t errlen);
/* Serve until SIGTERM or SIGINT has drained the server. Returns the process exit code. */
int srv_run(srv *s);
void srv_free(srv *s);
/* Start the shutdown (as SIGTERM). */
void srv_stop(srv *s);
/* The last in-flight execution has ended while stopping: go on with the shutdown. */
void srv_shutdown_poke(srv *s);

/* The route table as "METHOD PATH" lines (for the OpenAPI check). */
void srv_routes_print(FILE *f);

/* ---- HTTP helpers (http.c) ----------------------------------------------------------------- */

int srv_dispatch(srv *s, h2o_req_t *req);

void srv_send(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len);
/* A JSON body (v is stolen). */
void srv_send_json(h2o_req_t *req, int status, json_t *v);
/* RFC 9457 problem+json: type slug, title from the status, detail one line; field (NULL) names
 * the request member at fault. */
void srv_problem(h2o_req_t *req, int status, const char *slug, const char *field, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));
/* 1 when the request carries the bearer token; else sends 401 and returns 0. */
int srv_authorized(srv *s, h2o_req_t *req);
/* Parse the body as a JSON object; on failure a 400 problem has been sent and NULL returned. */
json_t *srv_body_object(h2o_req_t *req);
/* Check o's members against allowed (NULL-terminated); 400 and 0 when one is unknown. */
int srv_only_fields(h2o_req_t *req, const json_t *o, const char *const *allowed);
/* The query parameter name (percent-decoded) into buf; 1 found, 0 absent. */
int srv_query(h2o_req_t *req, const char *name, char *buf, size_t len);
/* Check the query's names against allowed; 400 and 0 when one is unknown. */
int srv_query_only(h2o_req_t *req, const char *const *allowed);
/* Decode %XX in place; -1 for a bad escape or a NUL. */
int srv_pct_decode(char *s);
uint64_t srv_now_ms(void);
const char *srv_reason(int status);

/* ---- waiter.c: requests waiting for an end ------------------------------------------------- */

/* Called when a waiter's time is up, after it left its list: answer req about owner. */
typedef void (*srv_wait_timeout_fn)(h2o_req_t *req, void *owner);
/* Put req on *list until srv_wait_take takes it, ms pass (then on_timeout), or the request goes
 * away (it then leaves the list). 0, or -ENOMEM (nothing done: answer now). */
int srv_wait(srv *s, h2o_req_t *req, srv_waiter **list, void *owner, uint64_t ms,
             srv_wait_timeout_fn on_timeout);
/* Take the first waiter off *list: its request, to answer, or NULL when the list is empty. */
h2o_req_t *srv_wait_take(srv_waiter **list);

/* ---- def_dir.c: the flows and workflows directories ----------------------------------------- */

/* DIR/NAME.yaml, .yml or .json, whichever exists, into path: 0, or -ENOENT (also for a name that
 * is not [A-Za-z0-9_.-]+, starts with a dot, or is over 100 bytes, and for a NULL dir). */
int srv_def_path(const char *dir, const char *name, char *path, size_t len);
/* The next definition file of dir (NULL: none) as its name without the extension: 1, or 0 at the
 * end. */
int srv_def_next(DIR *dir, char name[256]);
/* The first problem of d as one line: file:line:col: message. */
void srv_diag_line(const cbx_diag *d, char *buf, size_t len);

/* ---- handlers ------------------------------------------------------------------------------ */

typedef int (*srv_handler_fn)(srv *s, h2o_req_t *req, char **args);
int srv_h_submit(srv *s, h2o_req_t *req, char **args);
int srv_h_exec_list(srv *s, h2o_req_t *req, char **args);
int srv_h_exec_get(srv *s, h2o_req_t *req, char **args);
int srv_h_exec_cancel(srv *s, h2o_req_t *req, char **args);
int srv_h_types(srv *s, h2o_req_t *req, char **args);
int srv_h_type(srv *s, h2o_req_t *req, char **args);
int srv_h_breakers(srv *s, h2o_req_t *req, char **args);
int srv_h_breaker(srv *s, h2o_req_t *req, char **args);
int srv_h_breaker_open(srv *s, h2o_req_t *req, char **args);
int srv_h_breaker_close(srv *s, h2o_req_t *req, char **args);
int srv_h_breaker_reset(srv *s, h2o_req_t *req, char **args);
int srv_h_stats(srv *s, h2o_req_t *req, char **args);
int srv_h_health(srv *s, h2o_req_t *req, char **args);
int srv_h_inflight(srv *s, h2o_req_t *req, char **args);
int srv_h_metrics(srv *s, h2o_req_t *req, char **args);
int srv_h_events(srv *s, h2o_req_t *req, char **args);
int srv_h_openapi(srv *s, h2o_req_t *req, char **args);
int srv_h_dashboard(srv *s, h2o_req_t *req, char **args);
int srv_h_flows(srv *s, h2o_req_t *req, char **args);
int srv_h_flow_run(srv *s, h2o_req_t *req, char **args);
int srv_h_runs(srv *s, h2o_req_t *req, char **args);
int srv_h_run_get(srv *s, h2o_req_t *req, char **args);
int srv_h_run_cancel(srv *s, h2o_req_t *req, char **args);
int srv_h_workflows(srv *s, h2o_req_t *req, char **args);
int srv_h_workflow(srv *s, h2o_req_t *req, char **args);
int srv_h_workflow_start(srv *s, h2o_req_t *req, char **args);
int srv_h_workflow_runs(srv *s, h2o_req_t *req, char **args);
int srv_h_workflow_run(srv *s, h2o_req_t *req, char **args);
int srv_h_workflow_token(srv *s, h2o_req_t *req, char **args);
int srv_h_workflow_add(srv *s, h2o_req_t *req, char **args);
int srv_h_workflow_signal(srv *s, h2o_req_t *req, char **args);
int srv_h_workflow_resume(srv *s, h2o_req_t *req, char **args);

/* Embedded files (generated from src/server/openapi.json and dashboard.html). */
extern const char *const srv_openapi_json;
extern const size_t srv_openapi_json_len;
extern const char *const srv_dashboard_html;
extern const size_t srv_dashboard_html_len;

/* token.c: the bearer token into buf (from file, or made into the state directory's
 * serve.token, mode 0600, at first start). 0, or -errno / CBX_EINVAL_CONFIG with errbuf. */
/* Take the journal's serve-lock (JOURNAL.serve-lock, flock): -EBUSY with a message naming the
 * other server's pid when one holds it; 0 without a journal file. Released by srv_journal_unlock
 * (and by the process's end). */
int srv_journal_lock(srv *s, char *errbuf, size_t errlen);
void srv_journal_unlock(srv *s);

int srv_token_load(const char *file, char *buf, size_t len, char *errbuf, size_t errlen);

#endif
