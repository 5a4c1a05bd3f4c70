/* The flow executor: a flow file run as one execution, so that a workflow's action, a model's
 * tool or `cbx exec` can run a whole flow (a sub-flow, or a composite of steps written as a
 * small flow) under a policy of its own.
 *
 * cbx_flow_run drives a loop until the flow ends, so each attempt runs the flow on a thread and
 * loop of its own (never on the shared thread pool, whose few threads a sub-flow would hold for
 * its whole run), with a runtime sharing the parent's registry, journal (the sub-run is a flow
 * run of its own in `cbx runs`) and breakers. The attempt ends on the parent's loop when the
 * run has ended; a cancel or a timeout cancels the run's steps.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cbx/flow.h"

typedef struct sub_run {
    cbx_task *t;
    char *path;
    json_t *inputs;
    uint32_t concurrency;
    cbx_registry *registry;
    cbx_journal *journal;
    cbx_breaker_store *breakers;
    pthread_t thread;
    uv_async_t *done;  /* on the parent's loop: the run has ended (heap: outlives the task) */
    uv_loop_t loop;    /* the run's own */
    uv_async_t cancel; /* on the run's loop */
    cbx_runtime *rt;   /* the run's */
    pthread_mutex_t mu;
    int cancel_ready;  /* under mu: cancel may be sent */
    int cancel_wanted; /* under mu */
    cbx_flow_result res;
    char error[600]; /* a failure before the run (loading), or "" */
    int failed_early;
    char traceparent[56]; /* the attempt's, or "" */
} sub_run;

typedef struct flow_task {
    sub_run *run;
} flow_task;

static const cbx_param flow_params[] = {
    {.name = "file",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .has_min = 1,
     .min = 1,
     .description = "the flow file (YAML or JSON)"},
    {.name = "inputs", .type = CBX_PARAM_OBJECT, .default_json = "{}", .description = "its inputs"},
    {.name = "concurrency",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "its steps at once; 0 = the flow's own setting"},
    {0},
};

static void on_cancel(uv_async_t *a)
{
    sub_run *r = a->data;
    cbx_runtime_cancel_all(r->rt);
}

static void *run_main(void *arg)
{
    sub_run *r = arg;
    cbx_err err;
    cbx_err_clear(&err);
    cbx_diag diag = {0};
    cbx_flow *f = NULL;
    if (uv_loop_init(&r->loop) < 0) {
        snprintf(r->error, sizeof r->error, "flow: cannot make an event loop");
        r->failed_early = 1;
        goto out;
    }
    if (cbx_flow_load(&f, r->path, r->registry, &diag) < 0) {
        cbx_diag_first(&diag, &err);
        char line[480];
        snprintf(r->error, sizeof r->error, "flow: %s", cbx_err_format(&err, line, sizeof line));
        r->failed_early = 1;
        goto close_loop;
    }
    cbx_runtime_opts ro = {
        .loop = &r->loop,
        .registry = r->registry,
        .journal = r->journal,
        .breakers = r->breakers,
    };
    if (cbx_runtime_new(&r->rt, &ro, &err) < 0) {
        snprintf(r->error, sizeof r->error, "flow: %s", err.msg);
        r->failed_early = 1;
        goto close_loop;
    }
    uv_async_init(&r->loop, &r->cancel, on_cancel);
    r->cancel.data = r;
    uv_unref((uv_handle_t *)&r->cancel);
    pthread_mutex_lock(&r->mu);
    r->cancel_ready = 1;
    int wanted = r->cancel_wanted;
    pthread_mutex_unlock(&r->mu);
    if (wanted)
        uv_async_send(&r->cancel);
    cbx_flow_run_opts fo = {.inputs = r->inputs,
                            .concurrency = r->concurrency,
                            .traceparent = r->traceparent[0] ? r->traceparent : NULL};
    cbx_flow_run(r->rt, f, &fo, &r->res, &err);
    pthread_mutex_lock(&r->mu);
    r->cancel_ready = 0;
    pthread_mutex_unlock(&r->mu);
    uv_close((uv_handle_t *)&r->cancel, NULL);
    cbx_runtime_free(r->rt); /* runs the loop to the end of its work and of the close above */
    r->rt = NULL;
close_loop:
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
out:
    cbx_flow_free(f);
    cbx_diag_clear(&diag);
    uv_async_send(r->done);
    return NULL;
}

static void done_closed(uv_handle_t *h)
{
    free(h);
}

static void sub_free(sub_run *r)
{
    cbx_flow_result_clear(&r->res);
    json_decref(r->inputs);
    free(r->path);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* The run has ended: the attempt reports, on the parent's loop. */
static void on_done(uv_async_t *a)
{
    sub_run *r = a->data;
    pthread_join(r->thread, NULL);
    uv_close((uv_handle_t *)a, done_closed);
    cbx_task *t = r->t;
    flow_task *ft = cbx_task_state(t);
    ft->run = NULL;
    if (r->failed_early) {
        cbx_task_done(t, CBX_OUTCOME_ERROR, NULL, NULL, "%s", r->error);
        sub_free(r);
        return;
    }
    json_t *steps = json_object();
    const char *name;
    json_t *s;
    json_object_foreach(r->res.steps, name, s)
        json_object_set(steps, name, json_object_get(s, "status"));
    json_t *out =
        json_pack("{s:s, s:s, s:O?, s:o}", "run_id", r->res.run_id, "status",
                  cbx_status_name(r->res.status), "outputs", r->res.outputs, "steps", steps);
    cbx_outcome k = r->res.status == CBX_STATUS_SUCCESS   ? CBX_OUTCOME_SUCCESS
                    : r->res.status == CBX_STATUS_TIMEOUT ? CBX_OUTCOME_TIMEOUT
                                                          : CBX_OUTCOME_ERROR;
    if (k == CBX_OUTCOME_SUCCESS)
        cbx_task_done(t, k, out, NULL, NULL);
    else
        cbx_task_done(t, k, out, NULL, "flow %s: %s", r->res.run_id,
                      r->res.error[0] ? r->res.error : cbx_status_name(r->res.status));
    sub_free(r);
}

static int flow_start(cbx_task *t)
{
    flow_task *ft = cbx_task_state(t);
    const json_t *p = cbx_task_params(t);
    cbx_runtime *parent = cbx_task_runtime(t);
    if (!parent)
        return CBX_ECANCELLED;
    sub_run *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    r->t = t;
    if (!cbx_task_traceparent(t, r->traceparent))
        r->traceparent[0] = '\0';
    r->path = strdup(json_string_value(json_object_get(p, "file")));
    r->inputs = json_deep_copy(json_object_get(p, "inputs"));
    r->concurrency = (uint32_t)json_integer_value(json_object_get(p, "concurrency"));
    r->registry = cbx_runtime_registry(parent);
    r->journal = cbx_runtime_journal(parent);
    r->breakers = cbx_runtime_breakers(parent);
    r->done = malloc(sizeof *r->done);
    if (!r->path || !r->inputs || !r->done ||
        uv_async_init(cbx_task_loop(t), r->done, on_done) < 0) {
        free(r->done);
        sub_free(r);
        return -ENOMEM;
    }
    r->done->data = r;
    if (pthread_create(&r->thread, NULL, run_main, r) != 0) {
        uv_close((uv_handle_t *)r->done, done_closed);
        sub_free(r);
        return -EAGAIN;
    }
    ft->run = r;
    return 0;
}

static void flow_cancel(cbx_task *t)
{
    flow_task *ft = cbx_task_state(t);
    sub_run *r = ft->run;
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->cancel_wanted = 1;
    if (r->cancel_ready)
        uv_async_send(&r->cancel);
    pthread_mutex_unlock(&r->mu);
}

static const cbx_executor_type flow_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "flow",
    .summary = "run a flow file as one execution (a sub-flow, a composite of steps)",
    .params = flow_params,
    .task_size = sizeof(flow_task),
    .start = flow_start,
    .cancel = flow_cancel,
};

const cbx_executor_type *cbx_flow_executor_type(void)
{
    return &flow_type;
}
