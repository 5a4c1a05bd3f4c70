/* Requests to AWS APIs (DynamoDB, Lambda) through the http executor's curl context on the loop,
 * signed with SigV4 by libcurl (CURLOPT_AWS_SIGV4), and the transfer plumbing every executor
 * that drives its own transfers through that context shares.
 *
 * Credentials and region come from the parameters (region, access_key_id, secret_access_key,
 * session_token), else from the usual environment variables (AWS_REGION / AWS_DEFAULT_REGION,
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else from the shared
 * credentials and config files for AWS_PROFILE (aws_profile.h; read once per process). Keys from
 * the files are taken only when neither key is given by a parameter or the environment, and then
 * with the files' session token.
 */
#ifndef CBX_EXECUTORS_AWS_REQUEST_H
#define CBX_EXECUTORS_AWS_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "executors/http.h"

typedef struct cbx__aws_auth {
    char region[64];
    char userpwd[512];      /* "key id:secret", for CURLOPT_USERPWD */
    char sigv4[128];        /* "aws:amz:REGION:SERVICE", for CURLOPT_AWS_SIGV4 */
    int have_keys;          /* both the key id and the secret were found */
    const char *file_token; /* the files' session token when the keys came from them (static) */
    const char *file_error; /* why the files gave no keys, or NULL (static) */
} cbx__aws_auth;

/* The first of two environment variables that is set and not empty (b may be NULL), or NULL. */
const char *cbx__aws_env(const char *a, const char *b);

/* Region and credentials for service ("dynamodb", "lambda") from p, else the environment. */
void cbx__aws_auth_from(const json_t *p, const char *service, cbx__aws_auth *a);

/* a has no keys: the one-line reason into err (without the executor's name); returns
 * CBX_EINVAL_CONFIG. */
int cbx__aws_no_keys_err(const cbx__aws_auth *a, cbx_err *err);

/* The endpoint into buf: p's endpoint_url, else $env_name, else $AWS_ENDPOINT_URL, else
 * https://SERVICE.REGION.amazonaws.com. */
void cbx__aws_endpoint(const json_t *p, const char *env_name, const char *service,
                       const char *region, char *buf, size_t len);

/* Send x: an easy handle from x->lp set up from http (the http executor's parameters: url,
 * method, headers, body, ...; borrowed until the transfer ends), with p's session token as
 * X-Amz-Security-Token, signed with a, added to the multi handle. 0, or a negative code with a
 * one-line message prefixed by who in err (x's handle is then still x->easy: see
 * cbx__http_xfer_fail_start). */
int cbx__aws_send(cbx__http_xfer *x, json_t *http, const json_t *p, const cbx__aws_auth *a,
                  const char *who, cbx_err *err);

/* Get x ready to serve task t through the type's curl context (the task's loop state): libcurl
 * loaded, the context ready, x's task, context, start time and on_end set. 0, or a negative code
 * (the attempt cannot start). */
int cbx__http_xfer_prepare(cbx__http_xfer *x, cbx_task *t, void (*on_end)(cbx__http_xfer *x));
/* The same with the curl context lp given (a type whose loop state holds more than it). */
int cbx__http_xfer_prepare_on(cbx__http_xfer *x, cbx_task *t, cbx__http_loop *lp,
                              void (*on_end)(cbx__http_xfer *x));

/* A transfer that could not start: its easy handle given back, and x reported (through its
 * on_end) with start_rc = rc and start_msg = msg on the loop's next turn. */
void cbx__http_xfer_fail_start(cbx__http_xfer *x, int rc, const char *msg);

/* Stop x at once (a cancel): removed from the multi handle when it was in it, and reported
 * through its on_end on the loop's next turn with x->cancelled set. */
void cbx__http_xfer_cancel(cbx__http_xfer *x);

/* A type's loop_init and loop_close when its tasks drive transfers through a curl context of
 * their own (cbx__http_loop_open / _close). */
int cbx__http_ctx_loop_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err);
void cbx__http_ctx_loop_close(const cbx_executor_type *type, void *loop, void *state);

#endif
