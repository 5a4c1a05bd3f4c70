/* The http executor: HTTP and GraphQL requests through libcurl's multi interface, driven by the
 * runtime's libuv loop.
 *
 * One curl multi handle serves every task on a runtime's loop, so connections (and DNS answers)
 * are reused across tasks and executions. It lives in a per-runtime context the type's
 * loop_init hook makes (cbx/executor.h) - a small allocation: libcurl is loaded and the multi
 * handle made on the first request - and its loop_close hook frees. While no transfer runs the
 * context holds no active libuv handle (it never keeps a loop alive), only the multi handle
 * with its idle connections.
 *
 * Files: http.c (the type: schema, validation, start/cancel, the response), http_request.c
 * (an easy handle from the parameters), http_multi.c (the per-loop context and the glue between
 * curl and libuv).
 */
#ifndef CBX_EXECUTORS_HTTP_H
#define CBX_EXECUTORS_HTTP_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/err.h"
#include "cbx/executor.h"
#include "core/curl_lib.h" /* curl_* calls go through the library loaded on first use */

/* The built-in "http" type (static; never freed). */
const cbx_executor_type *cbx__http_type(void);

/* ---- between the files of the executor ------------------------------------------------------ */

typedef struct cbx__http_loop cbx__http_loop;

/* Bodies up to this size (with their NUL) are received into the handle's own buffer. */
#define CBX__HTTP_INLINE_BODY 512

/* What the response so far holds; filled by curl's callbacks. */
typedef struct cbx__http_response {
    char *body; /* NUL-terminated, len bytes (at most max_body): inline_body, or malloc'd */
    size_t len, cap;
    size_t max_body;
    uint64_t received; /* body bytes seen, kept or not */
    int truncated;     /* more than max_body arrived: the transfer was stopped there */
    json_t *headers;   /* the last response's headers, lowercase names */
    char reason[64];   /* the status line's reason phrase */
    char inline_body[CBX__HTTP_INLINE_BODY];
} cbx__http_response;

typedef struct cbx__http_xfer cbx__http_xfer;

/* A pooled easy handle and what lives as long as it: the response it receives and curl's error
 * buffer, which its callbacks and CURLOPT_ERRORBUFFER point at, and CURLOPT_PRIVATE points at
 * the handle itself. So these and the other options every request sets alike (protocols,
 * signals, user agent) are set once, while the handle is "configured"; a request that sets
 * more (a method, a body, headers, authentication, TLS options) marks it "extras", and the
 * handle is reset to curl's defaults when it comes back. */
typedef struct cbx__http_easy {
    CURL *curl;
    cbx__http_xfer *x; /* the transfer it serves; NULL while pooled */
    int configured;    /* the options set once are on */
    int extras;        /* options beyond a plain GET's are on: reset before reuse */
    cbx__http_response resp;
    char errbuf[CURL_ERROR_SIZE];
} cbx__http_easy;

/* Per-attempt state (the task's cbx_task_state): small, as the runtime allocates it for every
 * attempt; what lives as long as a handle is in cbx__http_easy. */
struct cbx__http_xfer {
    cbx_task *task;
    cbx__http_loop *lp;
    cbx__http_easy *easy;
    struct curl_slist *header_list;
    char *request_body;           /* what CURLOPT_POSTFIELDS points at; malloc'd */
    const json_t *success_status; /* borrowed from the parameters */
    uint64_t t0_ns;               /* uv_hrtime() at start */
    char *start_msg;              /* why the request could not be built (malloc'd; NULL) */
    struct cbx__http_xfer *next_deferred;
    CURLcode result; /* curl's result, for the report */
    int start_rc;    /* < 0: the request could not be built; start_msg says why */
    /* Where the transfer is: 0 before start, 1 in the multi handle, 2 waiting for its deferred
     * report, 3 reported. */
    uint8_t phase;
    uint8_t cancelled; /* the runtime cancelled it */
    uint8_t graphql;
    int8_t parse_json; /* -1 auto, 0 no, 1 yes */
    /* Who the transfer reports to when it has ended: NULL = the http executor
     * (cbx__http_xfer_report); another executor that drives transfers through a context of its
     * own (dynamodb) sets its function here. Called as cbx__http_xfer_report would be. */
    void (*on_end)(struct cbx__http_xfer *x);
};

/* http_multi.c: the type's loop hooks. _open makes a context for a runtime's loop (a
 * uv_loop_t *) without touching libcurl: 0 or -ENOMEM. _close releases it: its multi handle,
 * idle connections and pooled easy handles, at once when no task runs on it (then it has no
 * libuv handle open); if tasks still run, they finish on it and it is freed on the loop after
 * the last (the loop must run on). NULL accepted. Both on the loop's thread. */
int cbx__http_loop_open(void *uv_loop, cbx__http_loop **out);
void cbx__http_loop_close(cbx__http_loop *lp);
/* Make lp ready for transfers on first use: libcurl's global state and the multi handle (libcurl
 * must be loaded, cbx__curl_load). 0, -ENOMEM or CBX_EFAILED (curl_global_init failed). */
int cbx__http_loop_ready(cbx__http_loop *lp);
/* Set on every easy handle of lp (with its other options set once): the socket callbacks that
 * let the context keep a connection's poll handle between transfers. */
void cbx__http_loop_configure(cbx__http_loop *lp, CURL *easy);
/* An easy handle (pooled or new), or NULL. A pooled one keeps its configured options. */
cbx__http_easy *cbx__http_easy_take(cbx__http_loop *lp);
/* Give an easy handle back: pooled (reset to curl's defaults first when it has extras, or when
 * reset is non-zero), or cleaned up. NULL accepted. */
void cbx__http_easy_give(cbx__http_loop *lp, cbx__http_easy *e, int reset);
/* A task begins on the loop (0, or -ENOMEM) / has reported. While any task is between the two,
 * the context's handles are open and referenced; when the last has reported they are closed. */
int cbx__http_loop_begin(cbx__http_loop *lp);
void cbx__http_loop_end(cbx__http_loop *lp);
/* Start the transfer: add x->easy to the multi handle. 0 or a negative code. */
int cbx__http_loop_add(cbx__http_loop *lp, cbx__http_xfer *x);
/* Stop the transfer at once (remove it from the multi handle). */
void cbx__http_loop_remove(cbx__http_loop *lp, cbx__http_xfer *x);
/* Report x on a later turn of the loop through cbx__http_xfer_report (never from inside the
 * caller's stack: start and cancel may not report synchronously). */
void cbx__http_loop_defer(cbx__http_loop *lp, cbx__http_xfer *x);

/* http.c: the transfer has ended (x->result set, x removed from the multi handle, or never
 * added); build the outputs and call cbx_task_done. */
void cbx__http_xfer_report(cbx__http_xfer *x);
/* The transfer has ended: x->on_end(x), or cbx__http_xfer_report(x) when it is NULL. */
static inline void cbx__http_xfer_end(cbx__http_xfer *x)
{
    if (x->on_end)
        x->on_end(x);
    else
        cbx__http_xfer_report(x);
}

/* http_request.c: set x->easy up from the parameters (URL with query, method, headers, body or
 * JSON or GraphQL, auth, TLS, timeouts, redirects) and the response callbacks, and clear its
 * response. 0, or a negative code with a one-line message in *err. */
int cbx__http_request_setup(cbx__http_xfer *x, const json_t *params, cbx_err *err);
/* Checks beyond the schema, every problem into *err (appended, "; "-separated). 0 or
 * CBX_EINVAL_CONFIG. */
int cbx__http_request_validate(const json_t *params, cbx_err *err);
/* 1 when status is in a success_status array (NULL or empty: 200-299). */
int cbx__http_status_matches(const json_t *set, long status);
/* Release what the request and response hold (not the easy handle itself). */
void cbx__http_request_release(cbx__http_xfer *x);

#endif
