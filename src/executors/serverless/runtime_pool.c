/* The local Lambda functions of one loop (local.h): for each function (its directory, runtime,
 * handler, environment ...), its runtime processes and the invocations waiting for one.
 *
 * An invocation goes to an idle (warm) runtime when there is one, else to a new runtime (a cold
 * start) while the function has fewer than its concurrency limit, else it waits in a FIFO queue.
 * A runtime gets its invocation when it asks (GET /next, answered at once or parked); its
 * /response or /error ends the invocation and makes it idle again. A runtime that exits (it
 * crashed, was killed for a timeout or a cancel, or posted an init error) fails the invocation it
 * was at, with the tail of its output; a new runtime takes the next invocation. Reports reach
 * cbx_task_done on the loop's next turn (a zero timer), never from inside a call from the task.
 * Idle runtimes live until the pool is freed (the cbx runtime closes): then every tree is killed
 * and reaped. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "core/uuid.h"
#include "executors/serverless/local.h"

struct cbx__lambda_fn {
    cbx__lambda_pool *pool;
    cbx__lambda_fn *next;
    char *key;
    cbx__lambda_conf conf; /* its strings and environment are owned */
    json_t *env;
    cbx__lambda_rt *rts;
    int n_rt;
    cbx__lambda_inv *qhead, *qtail;
    char arn[300];
};

struct cbx__lambda_pool {
    uv_loop_t *loop;
    cbx__lambda_fn *fns;
    cbx__lambda_inv *done, *done_tail;
    uv_timer_t kick;
    int kicked;
};

static double ms_since(uint64_t t0_ns)
{
    return round((double)(uv_hrtime() - t0_ns) / 1e3) / 1e3;
}

static void on_kick(uv_timer_t *timer);

static void kick(cbx__lambda_pool *p)
{
    if (!p->kicked) {
        p->kicked = 1;
        uv_timer_start(&p->kick, on_kick, 0, 0);
    }
}

/* ---- reports ------------------------------------------------------------------------------ */

static void finish(cbx__lambda_inv *inv, cbx_outcome k, json_t *out, json_t *meta, const char *msg)
{
    if (inv->ended) {
        json_decref(out);
        json_decref(meta);
        return;
    }
    inv->ended = 1;
    inv->outcome = k;
    inv->outputs = out;
    inv->metadata = meta;
    snprintf(inv->msg, sizeof inv->msg, "%s", msg ? msg : "");
    cbx__lambda_pool *p = inv->fn->pool;
    inv->done_next = NULL;
    if (p->done_tail)
        p->done_tail->done_next = inv;
    else
        p->done = inv;
    p->done_tail = inv;
    kick(p);
}

static void report(cbx__lambda_inv *inv)
{
    free(inv->payload);
    inv->payload = NULL;
    cbx__capture_free(&inv->log);
    if (inv->msg[0])
        cbx_task_done(inv->t, inv->outcome, inv->outputs, inv->metadata, "%s", inv->msg);
    else
        cbx_task_done(inv->t, inv->outcome, inv->outputs, inv->metadata, NULL);
}

/* The outputs and metadata every report of a runtime's invocation has. */
static void describe(cbx__lambda_inv *inv, cbx__lambda_rt *rt, json_t **out, json_t **meta)
{
    *out = json_pack("{s:s, s:b, s:I, s:s, s:f}", "request_id", inv->id, "cold_start", inv->cold,
                     "runtime_pid", (json_int_t)rt->pid, "executed_version", "$LATEST",
                     "duration_ms", inv->t_delivered_ns ? ms_since(inv->t_delivered_ns) : 0.0);
    if (*out && inv->cold && rt->init_ms >= 0)
        json_object_set_new(*out, "init_ms", json_real(rt->init_ms));
    if (*out && inv->want_log) {
        int lossy = 0;
        json_t *log = cbx__capture_json(&inv->log, &lossy);
        if (log)
            json_object_set_new(*out, "log", log);
    }
    *meta = json_pack("{s:s, s:s, s:s, s:b, s:I, s:s}", "function", inv->fn->conf.name, "backend",
                      "local", "request_id", inv->id, "cold_start", inv->cold, "runtime_pid",
                      (json_int_t)rt->pid, "tree",
                      rt->cg.tree_dir >= 0 ? "cgroup"
                      : rt->tree_mark[0]   ? "marked"
                                           : "process_group");
}

/* ---- giving an invocation to a runtime ---------------------------------------------------- */

static void deliver(cbx__lambda_rt *rt)
{
    cbx__lambda_inv *inv = rt->inv;
    if (!inv || inv->delivered || rt->state != CBX__RT_READY)
        return;
    /* the deadline the function sees: the attempt's, or its own timeout's, whichever is first */
    uint64_t left_ms = 900000; /* Lambda's largest timeout, when nothing sets one */
    uint64_t dl = cbx_task_deadline_ns(inv->t);
    if (dl != UINT64_MAX) {
        uint64_t now = cbx_clock_now_ns(cbx_task_clock(inv->t));
        left_ms = dl > now ? (dl - now) / 1000000u : 0;
    }
    if (inv->timeout_ms && inv->timeout_ms < left_ms)
        left_ms = inv->timeout_ms;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t epoch_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)(ts.tv_nsec / 1000000);
    char deadline[24], trace[96];
    snprintf(deadline, sizeof deadline, "%" PRIu64, epoch_ms + left_ms);
    snprintf(trace, sizeof trace, "Root=1-%08llx-%.24s;Sampled=0",
             (unsigned long long)(epoch_ms / 1000), inv->id + 12);
    const char *headers[] = {"Lambda-Runtime-Aws-Request-Id",
                             inv->id,
                             "Lambda-Runtime-Deadline-Ms",
                             deadline,
                             "Lambda-Runtime-Invoked-Function-Arn",
                             inv->fn->arn,
                             "Lambda-Runtime-Trace-Id",
                             trace,
                             NULL};
    if (cbx__rapi_deliver(rt->api, headers, inv->payload, inv->payload_len) == 0) {
        inv->delivered = 1;
        inv->t_delivered_ns = uv_hrtime();
    }
}

static void on_limit(uv_timer_t *timer)
{
    cbx__lambda_rt *rt = timer->data;
    if (rt->inv)
        cbx__lambda_rt_kill(rt, "timeout");
}

static void assign(cbx__lambda_rt *rt, cbx__lambda_inv *inv)
{
    rt->inv = inv;
    inv->rt = rt;
    inv->cold = rt->invocations == 0;
    inv->t_assigned_ns = uv_hrtime();
    rt->invocations++;
    if (inv->timeout_ms)
        uv_timer_start(&rt->limit_timer, on_limit, inv->timeout_ms, 0);
    deliver(rt);
}

static cbx__lambda_rt *spawn(cbx__lambda_fn *fn, cbx_err *err)
{
    cbx__lambda_rt *rt = calloc(1, sizeof *rt);
    if (!rt) {
        cbx_err_set(err, -ENOMEM, "serverless: out of memory");
        return NULL;
    }
    rt->fn = fn;
    rt->loop = fn->pool->loop;
    if (cbx__lambda_rt_start(rt, &fn->conf, err) < 0) {
        cbx__lambda_rt_release(rt);
        return NULL;
    }
    rt->next = fn->rts;
    fn->rts = rt;
    fn->n_rt++;
    return rt;
}

static void pump(cbx__lambda_fn *fn)
{
    while (fn->qhead) {
        cbx__lambda_rt *rt = fn->rts;
        while (rt && (rt->inv || rt->state == CBX__RT_DEAD || rt->killed_by))
            rt = rt->next;
        if (rt && !cbx__lambda_rt_check(rt))
            continue; /* it had exited: gone from the list now */
        cbx__lambda_inv *inv = fn->qhead;
        if (!rt && fn->n_rt >= fn->conf.concurrency)
            return; /* waits for a runtime to be free */
        fn->qhead = inv->next;
        if (!fn->qhead)
            fn->qtail = NULL;
        inv->next = NULL;
        if (!rt) {
            cbx_err err;
            cbx_err_clear(&err);
            if (!(rt = spawn(fn, &err))) {
                finish(inv, CBX_OUTCOME_ERROR, NULL,
                       json_pack("{s:s, s:s}", "function", fn->conf.name, "backend", "local"),
                       err.msg);
                continue;
            }
        }
        assign(rt, inv);
    }
}

static void on_kick(uv_timer_t *timer)
{
    cbx__lambda_pool *p = timer->data;
    p->kicked = 0;
    cbx__lambda_inv *d = p->done;
    p->done = p->done_tail = NULL;
    while (d) {
        cbx__lambda_inv *n = d->done_next;
        report(d);
        d = n;
    }
    for (cbx__lambda_fn *fn = p->fns; fn; fn = fn->next)
        pump(fn);
}

/* ---- the Runtime API's callbacks ---------------------------------------------------------- */

static void api_next(void *ud)
{
    cbx__lambda_rt *rt = ud;
    if (rt->state == CBX__RT_STARTING) {
        rt->state = CBX__RT_READY;
        rt->init_ms = ms_since(rt->t_spawn_ns);
    }
    deliver(rt);
}

static int api_result(void *ud, const char *id, int error, const char *etype, const char *body,
                      size_t len)
{
    cbx__lambda_rt *rt = ud;
    cbx__lambda_inv *inv = rt->inv;
    if (!inv || !inv->delivered || strcmp(id, inv->id) != 0 || rt->killed_by)
        return 0;
    uv_timer_stop(&rt->limit_timer);
    if (inv->want_log)
        cbx__lambda_rt_drain(rt);
    json_t *payload = len ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;
    if (!payload)
        payload = len ? json_stringn(body, len) : json_null();
    json_t *out, *meta;
    describe(inv, rt, &out, &meta);
    json_object_set_new(out, "status_code", json_integer(200));
    json_object_set_new(out, "payload", payload);
    rt->inv = NULL;
    if (!error) {
        finish(inv, CBX_OUTCOME_SUCCESS, out, meta, NULL);
    } else {
        const char *ferr = etype && *etype ? etype : "Unhandled";
        json_object_set_new(out, "function_error", json_string(ferr));
        const char *type = json_string_value(json_object_get(payload, "errorType"));
        const char *text = json_string_value(json_object_get(payload, "errorMessage"));
        char msg[1024];
        snprintf(msg, sizeof msg, "serverless: function %s failed (%s): %s%s%s", inv->fn->conf.name,
                 ferr, type ? type : "", type ? ": " : "", text ? text : "(no message)");
        finish(inv, CBX_OUTCOME_ERROR, out, meta, msg);
    }
    kick(rt->fn->pool);
    return 1;
}

static void api_init_error(void *ud, const char *etype, const char *body, size_t len)
{
    cbx__lambda_rt *rt = ud;
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "errorType"));
    const char *text = json_string_value(json_object_get(j, "errorMessage"));
    snprintf(rt->init_error, sizeof rt->init_error, "(%s) %s%s%.*s",
             etype && *etype ? etype : "Runtime.InitError", type ? type : "", type ? ": " : "",
             text ? 400 : (int)(len < 400 ? len : 400), text ? text : body);
    json_decref(j);
    cbx__lambda_rt_kill(rt, "init error");
}

const cbx__rapi_ops cbx__lambda_rapi_ops = {
    .next = api_next,
    .result = api_result,
    .init_error = api_init_error,
};

/* ---- a runtime's exit --------------------------------------------------------------------- */

static void exit_text(int status, char *buf, size_t len)
{
    if (status < 0)
        snprintf(buf, len, "exited");
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
}

void cbx__lambda_pool_rt_exited(cbx__lambda_rt *rt, int status)
{
    cbx__lambda_fn *fn = rt->fn;
    for (cbx__lambda_rt **pp = &fn->rts; *pp; pp = &(*pp)->next)
        if (*pp == rt) {
            *pp = rt->next;
            fn->n_rt--;
            break;
        }
    cbx__lambda_inv *inv = rt->inv;
    rt->inv = NULL;
    if (inv && !inv->ended) {
        json_t *out, *meta;
        describe(inv, rt, &out, &meta);
        char how[96], tail[400], msg[1024];
        exit_text(status, how, sizeof how);
        cbx__lambda_rt_tail(rt, tail, sizeof tail);
        json_object_set_new(meta, "runtime_exit", json_string(how));
        const char *name = fn->conf.name;
        cbx_outcome k = CBX_OUTCOME_ERROR;
        if (rt->killed_by && !strcmp(rt->killed_by, "timeout")) {
            k = CBX_OUTCOME_TIMEOUT;
            snprintf(msg, sizeof msg,
                     "serverless: function %s timed out after %.0f ms; its runtime (pid %d) and "
                     "what it started were killed",
                     name, ms_since(inv->t_assigned_ns), (int)rt->pid);
        } else if (rt->killed_by && !strcmp(rt->killed_by, "cancel")) {
            snprintf(msg, sizeof msg,
                     "serverless: function %s stopped; its runtime (pid %d) was "
                     "killed",
                     name, (int)rt->pid);
        } else if (rt->init_error[0]) {
            json_object_set_new(out, "function_error", json_string("Runtime.InitError"));
            snprintf(msg, sizeof msg, "serverless: function %s failed to initialise %s", name,
                     rt->init_error);
        } else {
            json_object_set_new(out, "function_error", json_string("Runtime.ExitError"));
            snprintf(msg, sizeof msg, "serverless: the runtime of function %s (pid %d) %s %s%s%s",
                     name, (int)rt->pid, how,
                     rt->state == CBX__RT_DEAD && rt->init_ms < 0 ? "before it asked for the "
                                                                    "event (init)"
                                                                  : "during the invocation",
                     tail[0] ? "; its output ends: " : "", tail);
        }
        finish(inv, k, out, meta, msg);
    }
    cbx__lambda_rt_release(rt);
    kick(fn->pool);
}

/* ---- functions and invocations ------------------------------------------------------------ */

static char *key_of(const cbx__lambda_conf *c)
{
    char *env = c->environment ? json_dumps(c->environment, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    size_t n = strlen(c->dir) + strlen(c->name) + strlen(c->handler) + strlen(c->region) +
               (c->interpreter ? strlen(c->interpreter) : 0) + (env ? strlen(env) : 0) + 64;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s\n%s\n%s\n%s\n%s\n%d\n%s", c->dir, c->name, c->handler, c->region,
                 c->interpreter ? c->interpreter : "", c->memory_mb, env ? env : "");
    free(env);
    return k;
}

static void fn_free(cbx__lambda_fn *fn)
{
    free(fn->key);
    free((char *)fn->conf.dir);
    free((char *)fn->conf.name);
    free((char *)fn->conf.handler);
    free((char *)fn->conf.interpreter);
    free((char *)fn->conf.region);
    json_decref(fn->env);
    free(fn);
}

static cbx__lambda_fn *fn_get(cbx__lambda_pool *p, const cbx__lambda_conf *c)
{
    char *key = key_of(c);
    if (!key)
        return NULL;
    for (cbx__lambda_fn *fn = p->fns; fn; fn = fn->next)
        if (!strcmp(fn->key, key)) {
            free(key);
            fn->conf.concurrency = c->concurrency; /* the latest word */
            return fn;
        }
    cbx__lambda_fn *fn = calloc(1, sizeof *fn);
    if (!fn) {
        free(key);
        return NULL;
    }
    fn->pool = p;
    fn->key = key;
    fn->conf = *c;
    fn->conf.dir = strdup(c->dir);
    fn->conf.name = strdup(c->name);
    fn->conf.handler = strdup(c->handler);
    fn->conf.region = strdup(c->region);
    fn->conf.interpreter = c->interpreter ? strdup(c->interpreter) : NULL;
    fn->env = c->environment ? json_deep_copy(c->environment) : NULL;
    fn->conf.environment = fn->env;
    if (!fn->conf.dir || !fn->conf.name || !fn->conf.handler || !fn->conf.region ||
        (c->interpreter && !fn->conf.interpreter) || (c->environment && !fn->env)) {
        fn_free(fn);
        return NULL;
    }
    snprintf(fn->arn, sizeof fn->arn, "arn:aws:lambda:%s:000000000000:function:%s", c->region,
             c->name);
    fn->next = p->fns;
    p->fns = fn;
    return fn;
}

void cbx__lambda_invoke(cbx__lambda_pool *p, const cbx__lambda_conf *c, cbx__lambda_inv *inv)
{
    cbx__uuid7(inv->id);
    inv->t0_ns = uv_hrtime();
    inv->log.max = 4096;
    cbx__lambda_fn *fn = fn_get(p, c);
    if (!fn) {
        static cbx__lambda_fn none; /* only to reach the pool from finish */
        none.pool = p;
        none.conf.name = "";
        inv->fn = &none;
        finish(inv, CBX_OUTCOME_ERROR, NULL, NULL, "serverless: out of memory");
        return;
    }
    inv->fn = fn;
    if (fn->qtail)
        fn->qtail->next = inv;
    else
        fn->qhead = inv;
    fn->qtail = inv;
    kick(p);
}

void cbx__lambda_cancel(cbx__lambda_inv *inv)
{
    if (inv->ended || !inv->fn)
        return;
    int timed_out = cbx_task_timed_out(inv->t);
    if (inv->rt) {
        cbx__lambda_rt_kill(inv->rt, timed_out ? "timeout" : "cancel");
        return;
    }
    cbx__lambda_fn *fn = inv->fn;
    cbx__lambda_inv *prev = NULL;
    for (cbx__lambda_inv *q = fn->qhead; q; prev = q, q = q->next)
        if (q == inv) {
            if (prev)
                prev->next = q->next;
            else
                fn->qhead = q->next;
            if (fn->qtail == q)
                fn->qtail = prev;
            break;
        }
    char msg[300];
    snprintf(msg, sizeof msg, "serverless: function %s %s while it waited for a runtime",
             fn->conf.name, timed_out ? "timed out" : "stopped");
    finish(inv, timed_out ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR, NULL,
           json_pack("{s:s, s:s, s:s}", "function", fn->conf.name, "backend", "local", "request_id",
                     inv->id),
           msg);
}

/* ---- the pool ------------------------------------------------------------------------------ */

cbx__lambda_pool *cbx__lambda_pool_new(uv_loop_t *loop)
{
    cbx__lambda_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->loop = loop;
    uv_timer_init(loop, &p->kick);
    p->kick.data = p;
    return p;
}

static void on_pool_closed(uv_handle_t *h)
{
    free(h->data);
}

void cbx__lambda_pool_free(cbx__lambda_pool *p)
{
    if (!p)
        return;
    for (cbx__lambda_fn *fn = p->fns; fn; fn = fn->next) {
        while (fn->qhead)
            cbx__lambda_cancel(fn->qhead);
        while (fn->rts)
            cbx__lambda_rt_stop(fn->rts); /* reaped; leaves the list */
    }
    /* what was still to be reported (attempts the runtime no longer waits for) */
    cbx__lambda_inv *d = p->done;
    p->done = p->done_tail = NULL;
    while (d) {
        cbx__lambda_inv *n = d->done_next;
        report(d);
        d = n;
    }
    while (p->fns) {
        cbx__lambda_fn *n = p->fns->next;
        fn_free(p->fns);
        p->fns = n;
    }
    uv_close((uv_handle_t *)&p->kick, on_pool_closed);
}
