/* Requests to AWS APIs through the http executor's curl context (see aws_request.h). */
#include "executors/aws_request.h"

#include "executors/aws_profile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char *str(const json_t *p, const char *k)
{
    return json_string_value(json_object_get(p, k));
}

const char *cbx__aws_env(const char *a, const char *b)
{
    const char *v = getenv(a);
    if ((!v || !v[0]) && b)
        v = getenv(b);
    return v && v[0] ? v : NULL;
}

void cbx__aws_auth_from(const json_t *p, const char *service, cbx__aws_auth *a)
{
    const char *region = str(p, "region");
    if (!region)
        region = cbx__aws_env("AWS_REGION", "AWS_DEFAULT_REGION");
    const char *id = str(p, "access_key_id"), *secret = str(p, "secret_access_key");
    if (!id)
        id = cbx__aws_env("AWS_ACCESS_KEY_ID", NULL);
    if (!secret)
        secret = cbx__aws_env("AWS_SECRET_ACCESS_KEY", NULL);
    a->file_token = a->file_error = NULL;
    if (!region || (!id && !secret)) {
        const cbx__aws_profile *f = cbx__aws_profile_cached();
        if (!region && f->region[0])
            region = f->region;
        if (!id && !secret) {
            if (f->error[0]) {
                a->file_error = f->error;
            } else if (f->access_key_id[0]) {
                id = f->access_key_id;
                secret = f->secret_access_key;
                a->file_token = f->session_token;
            }
        }
    }
    snprintf(a->region, sizeof a->region, "%s", region ? region : "us-east-1");
    a->have_keys = id && secret;
    snprintf(a->userpwd, sizeof a->userpwd, "%s:%s", id ? id : "", secret ? secret : "");
    snprintf(a->sigv4, sizeof a->sigv4, "aws:amz:%s:%s", a->region, service);
}

int cbx__aws_no_keys_err(const cbx__aws_auth *a, cbx_err *err)
{
    if (a->file_error)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "no credentials: %s", a->file_error);
    return cbx_err_set(err, CBX_EINVAL_CONFIG,
                       "no credentials: give access_key_id and secret_access_key, set "
                       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put them in the AWS "
                       "credentials file (~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE)");
}

void cbx__aws_endpoint(const json_t *p, const char *env_name, const char *service,
                       const char *region, char *buf, size_t len)
{
    const char *url = str(p, "endpoint_url");
    if (!url)
        url = cbx__aws_env(env_name, "AWS_ENDPOINT_URL");
    if (url)
        snprintf(buf, len, "%s", url);
    else /* the region's own */
        snprintf(buf, len, "https://%s.%s.amazonaws.com", service, region);
}

int cbx__aws_send(cbx__http_xfer *x, json_t *http, const json_t *p, const cbx__aws_auth *a,
                  const char *who, cbx_err *err)
{
    const char *token = str(p, "session_token");
    if (!token)
        token = a->file_token ? (a->file_token[0] ? a->file_token : NULL)
                              : cbx__aws_env("AWS_SESSION_TOKEN", NULL);
    if (token)
        json_object_set_new(json_object_get(http, "headers"), "X-Amz-Security-Token",
                            json_string(token));
    x->easy = cbx__http_easy_take(x->lp);
    if (!x->easy)
        return cbx_err_set(err, -ENOMEM, "%s: out of memory", who);
    x->result = CURLE_OK;
    x->cancelled = 0;
    int r = cbx__http_request_setup(x, http, err);
    if (r < 0)
        return r;
    CURL *e = x->easy->curl;
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, a->sigv4);
    curl_easy_setopt(e, CURLOPT_USERPWD, a->userpwd);
    if ((r = cbx__http_loop_add(x->lp, x)) < 0)
        return cbx_err_set(err, r, "%s: cannot start the request: %s", who, cbx_strerror(r));
    x->phase = 1;
    return 0;
}

int cbx__http_xfer_prepare(cbx__http_xfer *x, cbx_task *t, void (*on_end)(cbx__http_xfer *x))
{
    return cbx__http_xfer_prepare_on(x, t, cbx_task_loop_state(t), on_end);
}

int cbx__http_xfer_prepare_on(cbx__http_xfer *x, cbx_task *t, cbx__http_loop *lp,
                              void (*on_end)(cbx__http_xfer *x))
{
    int r = cbx__curl_load(NULL);
    if (r < 0)
        return r;
    if (!lp)
        return -ENOMEM;
    if ((r = cbx__http_loop_ready(lp)) < 0)
        return r;
    x->task = t;
    x->lp = lp;
    x->t0_ns = uv_hrtime();
    x->on_end = on_end;
    return 0;
}

void cbx__http_xfer_fail_start(cbx__http_xfer *x, int rc, const char *msg)
{
    if (x->easy) {
        cbx__http_request_release(x);
        cbx__http_easy_give(x->lp, x->easy, 1);
        x->easy = NULL;
    }
    x->start_rc = rc;
    x->start_msg = strdup(msg && msg[0] ? msg : cbx_strerror(rc));
    x->phase = 2;
    cbx__http_loop_defer(x->lp, x); /* reported on the loop's next turn */
}

void cbx__http_xfer_cancel(cbx__http_xfer *x)
{
    x->cancelled = 1;
    if (x->phase != 1)
        return;
    cbx__http_loop_remove(x->lp, x);
    x->result = CURLE_ABORTED_BY_CALLBACK;
    x->phase = 2;
    cbx__http_loop_defer(x->lp, x);
}

int cbx__http_ctx_loop_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err)
{
    cbx__http_loop *lp;
    int r = cbx__http_loop_open(loop, &lp);
    if (r < 0)
        return cbx_err_set(err, r, "%s: out of memory", type->name);
    *state = lp;
    return 0;
}

void cbx__http_ctx_loop_close(const cbx_executor_type *type, void *loop, void *state)
{
    (void)type;
    (void)loop;
    cbx__http_loop_close(state);
}
