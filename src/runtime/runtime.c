/* The runtime: submission, the bounded queue, concurrency slots, cancellation and the loops
 * that wait for results. One attempt's life is in attempt.c. */
#include "runtime/runtime_internal.h"

#include "cbx/journal.h"
#include "telemetry/trace.h"
#include "runtime/builtins.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const status_names[] = {
#define CBX__STATUS_STR(name, str) str,
    CBX_STATUS_MAP(CBX__STATUS_STR)
#undef CBX__STATUS_STR
};

const char *cbx_status_name(cbx_status s)
{
    return (unsigned)s < CBX_STATUS__COUNT ? status_names[s] : "unknown";
}

int cbx_status_parse(const char *name, cbx_status *out)
{
    for (unsigned i = 0; name && i < CBX_STATUS__COUNT; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (cbx_status)i;
            return 0;
        }
    }
    return CBX_EPARSE;
}

/* ---- creation ------------------------------------------------------------------------------ */

int cbx_runtime_new(cbx_runtime **out, const cbx_runtime_opts *o, cbx_err *err)
{
    *out = NULL;
    cbx_runtime_opts def = {0};
    if (!o)
        o = &def;
    cbx_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return cbx_err_set(err, -ENOMEM, "runtime: out of memory");
    int r;
    if (o->loop) {
        rt->loop = o->loop;
    } else {
        r = uv_loop_init(&rt->own_loop);
        if (r < 0) {
            free(rt);
            return cbx_err_set(err, r, "runtime: uv_loop_init: %s", uv_strerror(r));
        }
        rt->loop = &rt->own_loop;
        rt->owns_loop = 1;
    }
    cbx__link_init(&rt->queue);
    cbx__link_init(&rt->active);
    cbx__link_init(&rt->ended);
    uv_idle_init(rt->loop, &rt->reaper);
    cbx__stream_rt_init(rt);
    rt->registry = o->registry;
    if (!rt->registry) {
        r = cbx_registry_new(&rt->registry, err);
        if (r < 0)
            goto fail;
        rt->owns_registry = 1;
    }
    rt->breakers = o->breakers;
    if (!rt->breakers) {
        r = cbx_breaker_store_memory_new(&rt->breakers, err);
        if (r < 0)
            goto fail;
        rt->owns_breakers = 1;
    }
    rt->journal = o->journal;
    rt->max_concurrent = o->max_concurrent ? o->max_concurrent : 64;
    rt->max_queued = o->max_queued ? o->max_queued : 100000;
    rt->kill_grace_ns = o->kill_grace_ns ? o->kill_grace_ns : 2 * CBX_NS_PER_S;
    rt->remote = o->remote;
    if ((o->remote_url && !(rt->remote_url = strdup(o->remote_url))) ||
        (o->remote_queue && !(rt->remote_queue = strdup(o->remote_queue)))) {
        r = cbx_err_set(err, -ENOMEM, "runtime: out of memory");
        goto fail;
    }
    if (getrandom(&rt->rng, sizeof rt->rng, 0) != sizeof rt->rng)
        rt->rng = cbx_clock_now_ns(NULL) ^ (uint64_t)(uintptr_t)rt;
    r = cbx__rt_loop_states_open(rt, err);
    if (r < 0)
        goto fail;
    *out = rt;
    return 0;
fail:
    cbx_runtime_free(rt);
    return r;
}

static void free_ended(uv_idle_t *reaper);

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void cbx_runtime_free(cbx_runtime *rt)
{
    if (!rt)
        return;
    cbx_runtime_cancel_all(rt);
    cbx_runtime_run(rt);
    rt->closing = 1;
    free_ended(&rt->reaper);
    uv_close((uv_handle_t *)&rt->reaper, NULL);
    cbx__stream_rt_close(rt);
    cbx__rt_loop_states_close(rt); /* executors' per-loop state; handles they close end below */
    uv_run(rt->loop, UV_RUN_DEFAULT);
    if (rt->journal)
        cbx_journal_flush(rt->journal, NULL);
    if (rt->owns_loop) {
        uv_walk(rt->loop, walk_close, NULL);
        uv_run(rt->loop, UV_RUN_DEFAULT);
        uv_loop_close(rt->loop);
    }
    pthread_mutex_destroy(&rt->stream_mu);
    json_decref(rt->same_params);
    json_decref(rt->spare_attempts);
    json_decref(rt->spare_attempt);
    free(rt->remote_url);
    free(rt->remote_queue);
    while (rt->nspare_bodies)
        free(rt->spare_bodies[--rt->nspare_bodies]);
    cbx__predicates_free(rt);
    if (rt->owns_breakers)
        cbx_breaker_store_free(rt->breakers);
    if (rt->owns_registry)
        cbx_registry_free(rt->registry);
    free(rt);
}

cbx_registry *cbx_runtime_registry(cbx_runtime *rt)
{
    return rt->registry;
}

cbx_journal *cbx_runtime_journal(cbx_runtime *rt)
{
    return rt->journal;
}

cbx_breaker_store *cbx_runtime_breakers(cbx_runtime *rt)
{
    return rt->breakers;
}

void *cbx_runtime_loop(cbx_runtime *rt)
{
    return rt->loop;
}

/* Wall-clock milliseconds for a monotonic time, from a pair of readings taken at most a minute
 * ago: one clock read serves both timings and journal stamps. */
uint64_t cbx__rt_wall_ms(cbx_runtime *rt, uint64_t mono_ns)
{
    if (!rt->wall_base_ms || mono_ns < rt->mono_base_ns ||
        mono_ns - rt->mono_base_ns > 60 * CBX_NS_PER_S) {
        rt->mono_base_ns = cbx_clock_now_ns(NULL);
        rt->wall_base_ms = cbx__wall_ms();
        if (mono_ns < rt->mono_base_ns)
            return rt->wall_base_ms - (rt->mono_base_ns - mono_ns) / CBX_NS_PER_MS;
    }
    return rt->wall_base_ms + (mono_ns - rt->mono_base_ns) / CBX_NS_PER_MS;
}

uint64_t cbx_runtime_kill_grace_ns(const cbx_runtime *rt)
{
    return rt->kill_grace_ns;
}

const char *cbx_execution_id(const cbx_execution *ex)
{
    return ex->id;
}

cbx_status cbx_execution_status(const cbx_execution *ex)
{
    return ex->status;
}

/* ---- scheduling ---------------------------------------------------------------------------- */

/* Start queued executions while slots are free. now: a monotonic reading just taken, for the
 * first one started (0 = read the clock). */
static void schedule(cbx_runtime *rt, uint64_t now)
{
    while (rt->nactive < rt->max_concurrent && !cbx__link_empty(&rt->queue)) {
        cbx_execution *ex = CBX__CONTAINER(rt->queue.next, cbx_execution, link);
        cbx__link_remove(&ex->link);
        rt->nqueued--;
        cbx__link_push(&rt->active, &ex->link);
        rt->nactive++;
        ex->in_active = 1;
        cbx__exec_begin(ex, now);
        now = 0;
    }
}

static void free_execution(cbx_execution *ex)
{
    if (ex->b) {
        if (!ex->res_taken)
            cbx_result_clear(&ex->b->res);
        json_decref(ex->b->last_outputs);
        cbx__exec_body_free(ex->rt, ex->b);
    }
    json_decref(ex->params);
    free(ex->breaker);
    free(ex->breaker_opts);
    free(ex->fallback_key);
    free(ex->tag);
    if (ex->trace)
        free(ex->trace);
    cbx__exec_ctx_unref(ex->ctx);
    free(ex);
}

static void on_timer_closed(uv_handle_t *h)
{
    free_execution(h->data);
}

static void free_ended(uv_idle_t *reaper)
{
    cbx_runtime *rt = CBX__CONTAINER(reaper, cbx_runtime, reaper);
    for (cbx_link *l = rt->ended.next, *next; l != &rt->ended; l = next) {
        next = l->next;
        free_execution(CBX__CONTAINER(l, cbx_execution, link));
    }
    cbx__link_init(&rt->ended);
    uv_idle_stop(reaper);
}

void cbx__rt_execution_done(cbx_execution *ex)
{
    cbx_runtime *rt = ex->rt;
    cbx__link_remove(&ex->link);
    if (ex->in_active)
        rt->nactive--;
    else
        rt->nqueued--;
    if (!ex->b) { /* out of memory for its state: report what can be said, without a timer */
        cbx_result r = {.status = ex->status, .rc = -ENOMEM};
        memcpy(r.id, ex->id, sizeof r.id);
        snprintf(r.error, sizeof r.error, "out of memory");
        if (ex->on_done)
            ex->on_done(ex, &r, ex->ud);
        if (!ex->res_taken)
            cbx_result_clear(&r);
        free_execution(ex);
        schedule(rt, 0);
        return;
    }
    if (ex->on_done)
        ex->on_done(ex, &ex->b->res, ex->ud);
    /* What the result, the parameters and the last outputs hold goes back now, while the
     * allocator still has it at hand; the finished execution itself stays (cancel answers
     * -ENOENT) until its timer has closed. */
    if (!ex->res_taken) { /* cbx_result_clear without zeroing what is about to go */
        cbx_result *r = &ex->b->res;
        json_decref(r->outputs);
        json_decref(r->metadata);
        cbx__attempts_recycle(rt, r->attempts);
        r->outputs = r->metadata = r->attempts = NULL;
        ex->res_taken = 1;
    }
    json_decref(ex->b->last_outputs);
    ex->b->last_outputs = NULL;
    json_decref(ex->params);
    ex->params = NULL;
    if (ex->b->timer_on) {
        uv_close((uv_handle_t *)&ex->b->timer, on_timer_closed);
    } else {
        cbx__exec_body_free(rt, ex->b);
        ex->b = NULL;
        cbx__link_push(&rt->ended, &ex->link);
        if (!uv_is_active((uv_handle_t *)&rt->reaper))
            uv_idle_start(&rt->reaper, free_ended);
    }
    rt->unreaped++;
    schedule(rt, 0);
}

/* ---- submission ---------------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Whether a secret parameter of the schema has a value in params. */
static int secret_set(const cbx_param *schema, const json_t *params)
{
    for (const cbx_param *p = schema; p && p->name; p++)
        if (p->secret && json_object_get(params, p->name))
            return 1;
    return 0;
}

/* A request refused before it was queued: journaled, reported, gone. */
static int refuse(cbx_runtime *rt, const cbx_request *req, int rc, const char *why)
{
    cbx__exec_body body = {0};
    cbx_execution ex = {.rt = rt, .status = CBX_STATUS_REJECTED, .b = &body};
    cbx_result *r = &body.res;
    r->submitted_ms = cbx__rt_wall_ms(rt, cbx_clock_now_ns(NULL));
    cbx__uuid4(&rt->rng, &rt->id_seq, r->submitted_ms, ex.id);
    memcpy(r->id, ex.id, sizeof r->id);
    snprintf(r->executor, sizeof r->executor, "%s", req->executor ? req->executor : "");
    r->status = CBX_STATUS_REJECTED;
    r->rc = rc;
    cbx__copy_text(r->error, sizeof r->error, why);
    r->attempts = json_array();
    if (rt->journal) {
        cbx_journal_end e = {.execution_id = ex.id,
                             .status = "rejected",
                             .rc = rc,
                             .error = r->error,
                             .ended_ms = r->submitted_ms};
        cbx_journal_execution_start(rt->journal,
                                    &(cbx_journal_execution){.id = ex.id,
                                                             .executor = r->executor,
                                                             .tag = req->tag,
                                                             .breaker = req->breaker,
                                                             .submitted_ms = r->submitted_ms},
                                    NULL);
        cbx_journal_execution_end(rt->journal, &e, NULL);
    }
    if (cbx__trace_on())
        cbx__trace_refused(req, ex.id, r);
    if (req->on_done)
        req->on_done(&ex, r, req->ud);
    if (!ex.res_taken)
        cbx_result_clear(r);
    return rc;
}

static int submit(cbx_runtime *rt, const cbx_request *req, cbx_execution **out, cbx_diag *diag);

/* The remote executor's parameters for req (cbx_runtime_opts.remote), or NULL (out of memory). */
static json_t *remote_params(const cbx_runtime *rt, const cbx_request *req)
{
    json_t *inner = req->params ? json_incref((json_t *)req->params) : json_object();
    json_t *p = json_pack("{s:s, s:o}", "executor", req->executor, "params", inner); /* takes it */
    if (p && rt->remote_queue)
        json_object_set_new(p, "queue", json_string(rt->remote_queue));
    if (p && rt->remote_url)
        json_object_set_new(p, "url", json_string(rt->remote_url));
    return p;
}

int cbx_runtime_submit(cbx_runtime *rt, const cbx_request *req, cbx_execution **out, cbx_diag *diag)
{
    if (!rt->remote || !req->executor || strcmp(req->executor, "remote") == 0)
        return submit(rt, req, out, diag);
    json_t *wrapped = remote_params(rt, req);
    if (!wrapped) {
        if (out)
            *out = NULL;
        return refuse(rt, req, -ENOMEM, "out of memory");
    }
    cbx_request on_workers = *req;
    on_workers.executor = "remote";
    on_workers.params = wrapped;
    int r = submit(rt, &on_workers, out, diag);
    json_decref(wrapped);
    return r;
}

static int submit(cbx_runtime *rt, const cbx_request *req, cbx_execution **out, cbx_diag *diag)
{
    if (out)
        *out = NULL;
    char why[600];
    const cbx_executor_type *type = NULL;
    json_t *params = NULL;
    cbx_diag local = {0};
    cbx_diag *d = diag ? diag : &local;
    size_t before = d->n;
    uint64_t mark = cbx__registry_mark(rt->registry);
    if (rt->same_params && rt->same_mark != mark) {
        json_decref(rt->same_params);
        rt->same_params = NULL;
    }
    int r = cbx__registry_admit(rt->registry, req->executor, req->params, rt->same_type,
                                rt->same_params, &type, &params, d);
    if (!type) {
        snprintf(why, sizeof why, "unknown executor type '%s'",
                 req->executor ? req->executor : "(none)");
        if (diag)
            cbx_diag_add(diag, CBX_EUNKNOWN_TYPE, req->executor ? req->executor : "", 0, 0, "%s",
                         why);
        return refuse(rt, req, CBX_EUNKNOWN_TYPE, why);
    }
    if (r < 0) {
        cbx_err first;
        cbx_diag tail = {.n = d->n - before, .cap = 0, .items = d->items + before};
        cbx_diag_first(&tail, &first);
        char loc[300] = "";
        if (first.where[0])
            snprintf(loc, sizeof loc, "%s: ", first.where);
        snprintf(why, sizeof why, "%.63s: %.300s%.220s", req->executor, loc, first.msg);
        cbx_diag_clear(&local);
        return refuse(rt, req, r, why);
    }
    if (params != rt->same_params) {
        json_decref(rt->same_params);
        rt->same_params = json_incref(params);
        rt->same_type = type;
        rt->same_mark = mark;
    }
    if (req->policy && (r = cbx__fallback_fn_resolve(rt, req->policy, why, sizeof why)) < 0) {
        json_decref(params);
        if (diag)
            cbx_diag_add(diag, r, "fallback.function", 0, 0, "%s", why);
        return refuse(rt, req, r, why);
    }
    if (req->policy && (r = cbx__rate_key_resolve(rt, req->policy, why, sizeof why)) < 0) {
        json_decref(params);
        if (diag)
            cbx_diag_add(diag, r, "rate_limit.key", 0, 0, "%s", why);
        return refuse(rt, req, r, why);
    }
    if (rt->nqueued >= rt->max_queued) {
        json_decref(params);
        snprintf(why, sizeof why, "the runtime's queue is full (%u waiting)", rt->nqueued);
        return refuse(rt, req, CBX_EQUEUE_FULL, why);
    }

    cbx_execution *ex = calloc(1, sizeof *ex);
    if (!ex) {
        json_decref(params);
        return -ENOMEM;
    }
    ex->rt = rt;
    ex->submitted_ns = cbx_clock_now_ns(NULL);
    uint64_t submitted_ms = cbx__rt_wall_ms(rt, ex->submitted_ns);
    cbx__uuid4(&rt->rng, &rt->id_seq, submitted_ms, ex->id);
    ex->type = type;
    ex->params = params;
    ex->policy = req->policy;
    ex->breaker = dup_or_null(req->breaker);
    if (req->breaker_opts) {
        ex->breaker_opts = malloc(sizeof *ex->breaker_opts);
        if (ex->breaker_opts)
            *ex->breaker_opts = *req->breaker_opts;
    }
    ex->timeout_ns = req->timeout_ns;
    ex->deadline_ns = req->deadline_ns ? ex->submitted_ns + req->deadline_ns : UINT64_MAX;
    ex->fallback_key = dup_or_null(req->fallback_key);
    if (!req->fallback_key && req->policy && cbx_policy_fallback(req->policy) &&
        cbx_fallback_has_cache(cbx_policy_fallback(req->policy)))
        cbx__fallback_default_key(ex, &ex->fallback_key);
    ex->tag = dup_or_null(req->tag);
    cbx__exec_ctx_new(req, &ex->ctx); /* without memory, the execution runs without it */
    ex->on_done = req->on_done;
    ex->on_retry = req->on_retry;
    ex->ud = req->ud;
    ex->on_chunk = req->on_chunk;
    ex->chunk_ud = req->chunk_ud;
    ex->chunk_queue = req->chunk_queue;
    ex->status = CBX_STATUS_PENDING;
    ex->phase = PHASE_QUEUED;
    if (req->traceparent && cbx__trace_propagate())
        cbx__trace_exec_begin(ex, req);

    if (rt->journal) {
        /* it waits for a slot: its row says so until it leaves the queue */
        int waits =
            !req->child && (rt->nactive >= rt->max_concurrent || !cbx__link_empty(&rt->queue));
        ex->journaled = waits ? CBX_STATUS_PENDING : CBX_STATUS_RUNNING;
        /* the journal encodes the value before the call returns: the request's own params do
         * when no secret parameter is set (no copy) */
        json_t *shown = secret_set(type->params, params) ? cbx_schema_redact(type->params, params)
                                                         : json_incref(params);
        cbx_journal_execution e = {.id = ex->id,
                                   .executor = type->name,
                                   .params = shown,
                                   .tag = ex->tag,
                                   .breaker = ex->breaker,
                                   .policy = req->policy ? cbx_policy_name(req->policy) : NULL,
                                   .submitted_ms = submitted_ms,
                                   .status = waits ? "pending" : NULL};
        cbx_journal_execution_start(rt->journal, &e, NULL);
        json_decref(shown);
    }
    if (out)
        *out = ex;
    if (req->child) { /* its parent holds a slot and waits for it: no queue */
        cbx__link_push(&rt->active, &ex->link);
        rt->nactive++;
        ex->in_active = 1;
        cbx__exec_begin(ex, ex->submitted_ns);
        return 0;
    }
    cbx__link_push(&rt->queue, &ex->link);
    rt->nqueued++;
    schedule(rt, ex->submitted_ns);
    return 0;
}

/* ---- cancelling and waiting ------------------------------------------------------------------ */

int cbx_runtime_cancel(cbx_runtime *rt, cbx_execution *ex)
{
    (void)rt;
    if (!ex || ex->phase == PHASE_DONE)
        return -ENOENT;
    cbx__exec_cancel(ex, STOP_CANCEL);
    return 0;
}

static void cancel_list(cbx_link *head, int reason)
{
    /* Cancelling may finish an execution and unlink it, and start queued ones: take them one
     * at a time from the front, skipping those already being stopped. */
    for (cbx_link *l = head->next; l != head;) {
        cbx_execution *ex = CBX__CONTAINER(l, cbx_execution, link);
        l = l->next;
        if (!ex->cancel_reason) {
            cbx__exec_cancel(ex, reason);
            l = head->next;
        }
    }
}

void cbx_runtime_cancel_all(cbx_runtime *rt)
{
    cancel_list(&rt->queue, STOP_CANCEL);
    cancel_list(&rt->active, STOP_CANCEL);
}

/* Executions that end inside submit (an inline function) are freed on the loop's next turn;
 * turn it now and then so that they do not pile up. */
static void reap_closed(cbx_runtime *rt)
{
    if (rt->unreaped > 256) {
        rt->unreaped = 0;
        uv_run(rt->loop, UV_RUN_NOWAIT);
    }
}

int cbx_runtime_run(cbx_runtime *rt)
{
    while (rt->nactive || rt->nqueued)
        uv_run(rt->loop, UV_RUN_ONCE);
    rt->unreaped = 0;
    uv_run(rt->loop, UV_RUN_NOWAIT); /* the close callbacks of the last ones */
    return 0;
}

typedef struct one_wait {
    cbx_result *out;
    int done;
} one_wait;

static void take_result(cbx_execution *ex, const cbx_result *res, void *ud)
{
    one_wait *w = ud;
    *w->out = *res; /* the references move to the caller */
    if (ex->rt)
        ex->res_taken = 1;
    w->done = 1;
}

int cbx_runtime_execute(cbx_runtime *rt, const cbx_request *req, cbx_result *res, cbx_diag *diag)
{
    memset(res, 0, sizeof *res);
    one_wait w = {.out = res};
    cbx_request q = *req;
    q.on_done = take_result;
    q.ud = &w;
    cbx_runtime_submit(rt, &q, NULL, diag);
    while (!w.done)
        uv_run(rt->loop, UV_RUN_ONCE);
    reap_closed(rt);
    return res->status == CBX_STATUS_SUCCESS || res->fallback_used ? 0 : res->rc;
}

typedef struct many_wait {
    cbx_result *res;
    cbx_execution **ex;
    size_t left;
    size_t n;
} many_wait;

typedef struct many_slot {
    many_wait *m;
    size_t i;
} many_slot;

static void take_one_of_many(cbx_execution *ex, const cbx_result *res, void *ud)
{
    many_slot *s = ud;
    s->m->res[s->i] = *res;
    s->m->ex[s->i] = NULL;
    if (ex->rt)
        ex->res_taken = 1;
    s->m->left--;
}

static void many_deadline(uv_timer_t *timer)
{
    many_wait *m = timer->data;
    for (size_t i = 0; i < m->n; i++)
        if (m->ex[i])
            cbx__exec_cancel(m->ex[i], STOP_TIMEOUT);
}

size_t cbx_runtime_execute_many(cbx_runtime *rt, const cbx_request *reqs, size_t n,
                                uint64_t overall_timeout_ns, cbx_result *res)
{
    memset(res, 0, n * sizeof *res);
    many_slot *slots = calloc(n ? n : 1, sizeof *slots);
    cbx_execution **exs = calloc(n ? n : 1, sizeof *exs);
    many_wait m = {.res = res, .ex = exs, .left = n, .n = n};
    if (!slots || !exs) {
        free(slots);
        free(exs);
        for (size_t i = 0; i < n; i++) {
            res[i].status = CBX_STATUS_REJECTED;
            res[i].rc = -ENOMEM;
        }
        return 0;
    }
    uv_timer_t timer;
    uv_timer_init(rt->loop, &timer);
    timer.data = &m;
    if (overall_timeout_ns)
        uv_timer_start(&timer, many_deadline,
                       (overall_timeout_ns + CBX_NS_PER_MS - 1) / CBX_NS_PER_MS, 0);
    for (size_t i = 0; i < n; i++) {
        slots[i] = (many_slot){&m, i};
        cbx_request q = reqs[i];
        q.on_done = take_one_of_many;
        q.ud = &slots[i];
        cbx_runtime_submit(rt, &q, &exs[i], NULL);
    }
    while (m.left)
        uv_run(rt->loop, UV_RUN_ONCE);
    uv_timer_stop(&timer);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(rt->loop, UV_RUN_NOWAIT); /* let the close complete before the stack frame goes */
    free(slots);
    free(exs);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += res[i].status == CBX_STATUS_SUCCESS;
    return ok;
}
