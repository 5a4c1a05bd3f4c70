/* The runtime with executor types defined here: an asynchronous one on a libuv timer and a
 * blocking one on the thread pool. Real loop, real timers, real threads. */
#include "cbx/policy.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/* ---- an asynchronous executor: answers after delay_ms, or fails, or hangs ------------------ */

static int starts, cancels, befores, afters, running, max_running;
static const json_t *started_with[8]; /* the parameters of the first attempts started */

typedef struct {
    uv_timer_t timer;
    cbx_task *task;
} async_state;

static void async_closed(uv_handle_t *h)
{
    async_state *s = h->data;
    cbx_task *t = s->task;
    const json_t *p = cbx_task_params(t);
    const char *mode = json_string_value(json_object_get(p, "mode"));
    running--;
    if (cbx_task_cancelled(t)) {
        cbx_task_done(t, CBX_OUTCOME_ERROR, NULL, json_pack("{s:b}", "cancelled", 1), "stopped");
        return;
    }
    int *fails_left = cbx_task_type(t)->data;
    if (strcmp(mode, "flaky") == 0 && *fails_left > 0) {
        --*fails_left;
        cbx_task_done(t, CBX_OUTCOME_ERROR, NULL, NULL, "flaky: %d failures to go", *fails_left);
    } else if (strcmp(mode, "fail") == 0) {
        cbx_task_done(t, CBX_OUTCOME_ERROR, NULL, NULL, "failed as asked");
    } else if (strcmp(mode, "busy") == 0) {
        cbx_task_set_retry_after(t, 150 * CBX_NS_PER_MS);
        cbx_task_done(t, CBX_OUTCOME_RATE_LIMITED, NULL, NULL, "busy, come back later");
    } else {
        json_t *v = json_object_get(p, "value");
        cbx_task_done(t, CBX_OUTCOME_SUCCESS, json_pack("{s:O?}", "value", v),
                      json_pack("{s:i}", "attempt", (int)cbx_task_attempt(t)), NULL);
    }
}

static void async_fire(uv_timer_t *timer)
{
    uv_close((uv_handle_t *)timer, async_closed);
}

static int async_start(cbx_task *t)
{
    async_state *s = cbx_task_state(t);
    s->task = t;
    if (starts < 8)
        started_with[starts] = cbx_task_params(t);
    starts++;
    if (++running > max_running)
        max_running = running;
    uv_timer_init(cbx_task_loop(t), &s->timer);
    s->timer.data = s;
    const json_t *p = cbx_task_params(t);
    if (strcmp(json_string_value(json_object_get(p, "mode")), "hang") == 0)
        return 0; /* never fires: only a cancel ends it */
    uv_timer_start(&s->timer, async_fire,
                   (uint64_t)json_integer_value(json_object_get(p, "delay_ms")), 0);
    return 0;
}

static void async_cancel(cbx_task *t)
{
    async_state *s = cbx_task_state(t);
    cancels++;
    uv_timer_stop(&s->timer);
    if (!uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, async_closed);
}

static int count_before(cbx_task *t, cbx_err *err)
{
    (void)t;
    (void)err;
    befores++;
    return 0;
}

static void count_after(cbx_task *t, cbx_task_result *r)
{
    (void)t;
    (void)r;
    afters++;
}

static const char *const modes[] = {"ok", "fail", "flaky", "hang", "busy", NULL};
static const cbx_param async_params[] = {
    {.name = "mode", .type = CBX_PARAM_STRING, .default_json = "\"ok\"", .enum_values = modes},
    {.name = "delay_ms", .type = CBX_PARAM_INTEGER, .default_json = "1", .has_min = 1, .min = 0},
    {.name = "value", .type = CBX_PARAM_ANY},
    {.name = NULL},
};
static int fails_left;
static const cbx_executor_type async_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "t_async",
    .summary = "test executor on a timer",
    .params = async_params,
    .task_size = sizeof(async_state),
    .data = &fails_left,
    .before = count_before,
    .after = count_after,
    .start = async_start,
    .cancel = async_cancel,
};

/* ---- a blocking executor: sleeps in slices, watching its cancel flag ---------------------- */

static atomic_int block_finished;

static cbx_outcome block_run(cbx_task *t, json_t **out, json_t **meta, cbx_err *err)
{
    (void)meta;
    (void)err;
    int64_t ms = json_integer_value(json_object_get(cbx_task_params(t), "sleep_ms"));
    int ignore = json_is_true(json_object_get(cbx_task_params(t), "ignore_cancel"));
    for (int64_t i = 0; i < ms; i++) {
        if (!ignore && cbx_task_cancelled(t))
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    atomic_fetch_add(&block_finished, 1);
    *out = json_pack("{s:s}", "late", "yes");
    return CBX_OUTCOME_SUCCESS;
}

static const cbx_param block_params[] = {
    {.name = "sleep_ms", .type = CBX_PARAM_INTEGER, .required = 1},
    {.name = "ignore_cancel", .type = CBX_PARAM_BOOLEAN, .default_json = "false"},
    {.name = NULL},
};
static const cbx_executor_type block_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "t_block",
    .summary = "test executor on the thread pool",
    .params = block_params,
    .run = block_run,
};

/* ---- an executor that answers inside start with the parameters it was given --------------- */

/* Succeeds, or fails without a message when given "fail": true. */
static int echo_start(cbx_task *t)
{
    const json_t *p = cbx_task_params(t);
    cbx_outcome k =
        json_is_true(json_object_get(p, "fail")) ? CBX_OUTCOME_ERROR : CBX_OUTCOME_SUCCESS;
    cbx_task_done(t, k, json_deep_copy(p), NULL, NULL);
    return 0;
}

static void echo_cancel(cbx_task *t)
{
    (void)t;
}

static const cbx_param echo_params[] = {
    {.name = "n", .type = CBX_PARAM_INTEGER, .default_json = "1"},
    {.name = "tag", .type = CBX_PARAM_STRING},
    {.name = "fail", .type = CBX_PARAM_BOOLEAN},
    {.name = NULL},
};
static const cbx_executor_type echo_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "t_echo",
    .summary = "test executor answering at once with its parameters",
    .params = echo_params,
    .start = echo_start,
    .cancel = echo_cancel,
};

/* ---- fixture -------------------------------------------------------------------------------- */

static cbx_runtime *rt;
static cbx_registry *reg;

static void setup(void)
{
    starts = cancels = befores = afters = running = max_running = 0;
    memset(started_with, 0, sizeof started_with);
    fails_left = 0;
    atomic_store(&block_finished, 0);
    cr_assert_eq(cbx_registry_new(&reg, NULL), 0);
    cbx_err err;
    cr_assert_eq(cbx_registry_register(reg, &async_type, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_registry_register(reg, &block_type, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_registry_register(reg, &echo_type, &err), 0, "%s", err.msg);
    cbx_runtime_opts o = {.registry = reg, .max_concurrent = 8, .max_queued = 50};
    cr_assert_eq(cbx_runtime_new(&rt, &o, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    cbx_registry_free(reg);
}

static cbx_policy *policy(const char *json)
{
    json_error_t je;
    json_t *b = json_loads(json, 0, &je);
    cr_assert_not_null(b, "%s", je.text);
    cbx_policy *p;
    cbx_err err;
    cr_assert_eq(cbx_policy_new_json(&p, b, NULL, &err), 0, "%s: %s", err.where, err.msg);
    json_decref(b);
    return p;
}

static json_t *params(const char *json)
{
    json_t *j = json_loads(json, 0, NULL);
    cr_assert_not_null(j);
    return j;
}

TestSuite(runtime, .init = setup, .fini = teardown, .timeout = 60);

Test(runtime, one_attempt_succeeds_with_outputs_and_hooks)
{
    json_t *p = params("{\"value\": [1, 2]}");
    cbx_result r;
    int rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "t_async", .params = p}, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(r.status, CBX_STATUS_SUCCESS);
    cr_assert_eq(r.attempt_count, 1);
    cr_assert(json_equal(json_object_get(r.outputs, "value"), json_object_get(p, "value")));
    cr_assert_eq(json_array_size(r.attempts), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r.attempts, 0), "outcome")),
                     "success");
    cr_assert_eq(befores, 1);
    cr_assert_eq(afters, 1);
    cr_assert_eq(strlen(r.id), 36);
    cbx_result_clear(&r);
    json_decref(p);
}

static int retries_seen;
static void count_retry(cbx_execution *ex, uint32_t attempt, uint64_t delay_ns, const char *error,
                        void *ud)
{
    (void)ex;
    (void)ud;
    retries_seen++;
    cr_assert_eq(attempt, (uint32_t)retries_seen, "attempts are reported in order");
    cr_assert_eq(delay_ns, 5 * CBX_NS_PER_MS);
    cr_assert(strstr(error, "flaky"), "%s", error);
}

Test(runtime, retries_until_success_under_the_policy)
{
    cbx_policy *pol = policy("{\"retry\": {\"attempts\": 4, \"backoff\": \"fixed\", \"initial\": "
                             "\"5ms\", \"jitter\": \"none\"}}");
    fails_left = 2;
    json_t *p = params("{\"mode\": \"flaky\"}");
    cbx_result r;
    retries_seen = 0;
    int rc = cbx_runtime_execute(
        rt,
        &(cbx_request){.executor = "t_async", .params = p, .policy = pol, .on_retry = count_retry},
        &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(r.attempt_count, 3);
    cr_assert_eq(retries_seen, 2, "on_retry after each failed attempt but the last");
    cr_assert_eq(json_array_size(r.attempts), 3);
    cr_assert_eq(befores, 3, "before ran %d times", befores);
    cr_assert_eq(afters, 3);
    cbx_result_clear(&r);
    json_decref(p);
    cbx_policy_free(pol);
}

Test(runtime, failure_after_every_attempt_names_the_last_error)
{
    cbx_policy *pol = policy("{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\"}}");
    json_t *p = params("{\"mode\": \"fail\"}");
    cbx_result r;
    int rc = cbx_runtime_execute(
        rt, &(cbx_request){.executor = "t_async", .params = p, .policy = pol}, &r, NULL);
    cr_assert_neq(rc, 0);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_eq(r.attempt_count, 3);
    cr_assert(strstr(r.error, "failed as asked") || strstr(r.error, "retries"), "%s", r.error);
    cbx_result_clear(&r);
    json_decref(p);
    cbx_policy_free(pol);
}

Test(runtime, an_attempt_past_its_timeout_is_cancelled)
{
    json_t *p = params("{\"mode\": \"hang\"}");
    cbx_result r;
    cbx_runtime_execute(
        rt, &(cbx_request){.executor = "t_async", .params = p, .timeout_ns = 50 * CBX_NS_PER_MS},
        &r, NULL);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT, "%s", cbx_status_name(r.status));
    cr_assert_eq(r.rc, CBX_ETIMEDOUT);
    cr_assert_eq(cancels, 1);
    cr_assert_geq(r.duration_ns, 50 * CBX_NS_PER_MS);
    /* the executor's own metadata from the cancelled attempt is kept */
    cr_assert(json_is_true(json_object_get(r.metadata, "cancelled")));
    cbx_result_clear(&r);
    json_decref(p);
}

Test(runtime, a_blocking_run_past_its_timeout_is_abandoned_and_its_late_result_dropped)
{
    json_t *p = params("{\"sleep_ms\": 3000, \"ignore_cancel\": true}");
    cbx_result r;
    cbx_runtime_execute(
        rt, &(cbx_request){.executor = "t_block", .params = p, .timeout_ns = 30 * CBX_NS_PER_MS},
        &r, NULL);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    cr_assert_null(r.outputs, "the late result must be discarded");
    /* the result came back while the blocking call still ran: it ended at its deadline */
    cr_assert_eq(atomic_load(&block_finished), 0, "the result waited for the blocking call");
    cbx_result_clear(&r);
    json_decref(p);
    /* cbx_runtime_free (teardown) waits for the pool thread; nothing leaks (ASan checks). */
}

Test(runtime, a_blocking_run_sees_its_cancel_flag)
{
    json_t *p = params("{\"sleep_ms\": 5000}");
    cbx_result r;
    cbx_runtime_execute(
        rt, &(cbx_request){.executor = "t_block", .params = p, .timeout_ns = 20 * CBX_NS_PER_MS},
        &r, NULL);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    while (atomic_load(&block_finished) == 0) /* it stops early, long before 5 s */
        uv_run(cbx_runtime_loop(rt), UV_RUN_ONCE);
    cbx_result_clear(&r);
    json_decref(p);
}

Test(runtime, bad_requests_are_refused_with_every_problem)
{
    cbx_result r;
    int rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "nope"}, &r, NULL);
    cr_assert_eq(rc, CBX_EUNKNOWN_TYPE);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert(strstr(r.error, "nope"), "%s", r.error);
    cbx_result_clear(&r);

    cbx_diag d = {0};
    json_t *p = params("{\"mode\": \"sideways\", \"delay_ms\": \"soon\", \"colour\": 1}");
    rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "t_async", .params = p}, &r, &d);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert_geq(d.n, 3, "every problem at once, got %zu", d.n);
    cr_assert_eq(starts, 0, "nothing ran");
    cbx_diag_clear(&d);
    cbx_result_clear(&r);
    json_decref(p);
}

typedef struct {
    int done;
    cbx_status status;
} seen;

static void note_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    seen *s = ud;
    s->done++;
    s->status = res->status;
}

Test(runtime, cancel_stops_a_running_execution)
{
    json_t *p = params("{\"mode\": \"hang\"}");
    seen s = {0};
    cbx_execution *ex;
    cr_assert_eq(
        cbx_runtime_submit(
            rt, &(cbx_request){.executor = "t_async", .params = p, .on_done = note_done, .ud = &s},
            &ex, NULL),
        0);
    for (int i = 0; i < 3; i++)
        uv_run(cbx_runtime_loop(rt), UV_RUN_NOWAIT);
    cr_assert_eq(cbx_execution_status(ex), CBX_STATUS_RUNNING);
    cr_assert_eq(cbx_runtime_cancel(rt, ex), 0);
    cbx_runtime_run(rt);
    cr_assert_eq(s.done, 1);
    cr_assert_eq(s.status, CBX_STATUS_CANCELLED);
    json_decref(p);
}

Test(runtime, many_in_parallel_under_an_overall_deadline)
{
    json_t *fast = params("{\"delay_ms\": 10, \"value\": 1}");
    json_t *hang = params("{\"mode\": \"hang\"}");
    cbx_request reqs[3] = {
        {.executor = "t_async", .params = fast},
        {.executor = "t_async", .params = hang},
        {.executor = "t_async", .params = fast},
    };
    cbx_result res[3];
    size_t ok = cbx_runtime_execute_many(rt, reqs, 3, 100 * CBX_NS_PER_MS, res);
    cr_assert_eq(ok, 2);
    cr_assert_eq(res[0].status, CBX_STATUS_SUCCESS);
    cr_assert_eq(res[1].status, CBX_STATUS_TIMEOUT);
    cr_assert_eq(res[2].status, CBX_STATUS_SUCCESS);
    cr_assert_eq(max_running, 3, "the three ran side by side");
    for (int i = 0; i < 3; i++)
        cbx_result_clear(&res[i]);
    json_decref(fast);
    json_decref(hang);
}

Test(runtime, concurrency_is_limited_and_the_queue_bounded)
{
    cbx_runtime_free(rt);
    cbx_err err;
    cr_assert_eq(
        cbx_runtime_new(
            &rt, &(cbx_runtime_opts){.registry = reg, .max_concurrent = 2, .max_queued = 5}, &err),
        0);
    json_t *p = params("{\"delay_ms\": 5}");
    seen s = {0};
    cbx_request q = {.executor = "t_async", .params = p, .on_done = note_done, .ud = &s};
    int refused = 0;
    for (int i = 0; i < 9; i++)
        refused += cbx_runtime_submit(rt, &q, NULL, NULL) == CBX_EQUEUE_FULL;
    cr_assert_eq(refused, 2, "2 running + 5 queued fit; 2 are refused (got %d)", refused);
    cbx_runtime_run(rt);
    cr_assert_eq(s.done, 9);
    cr_assert_eq(max_running, 2);
    json_decref(p);
}

Test(runtime, a_named_breaker_refuses_without_starting_the_work)
{
    cbx_breaker_opts bo;
    cbx_breaker_opts_default(&bo);
    bo.consecutive_failures = 2;
    json_t *p = params("{\"mode\": \"fail\"}");
    cbx_request q = {.executor = "t_async", .params = p, .breaker = "db", .breaker_opts = &bo};
    cbx_result r;
    for (int i = 0; i < 2; i++) {
        cbx_runtime_execute(rt, &q, &r, NULL);
        cr_assert_eq(r.status, CBX_STATUS_FAILED);
        cbx_result_clear(&r);
    }
    int rc = cbx_runtime_execute(rt, &q, &r, NULL);
    cr_assert_eq(rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert_eq(starts, 2, "the third never started");
    cr_assert(strstr(r.error, "breaker 'db' is open"), "%s", r.error);
    cbx_result_clear(&r);
    json_decref(p);
}

Test(runtime, the_fallback_answers_a_failed_call)
{
    cbx_policy *pol = policy("{\"fallback\": {\"value\": {\"cached\": true}}}");
    json_t *p = params("{\"mode\": \"fail\"}");
    cbx_result r;
    int rc = cbx_runtime_execute(
        rt, &(cbx_request){.executor = "t_async", .params = p, .policy = pol}, &r, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_eq(r.fallback_used, 1);
    cr_assert(json_is_true(json_object_get(r.outputs, "cached")));
    cbx_result_clear(&r);
    json_decref(p);
    cbx_policy_free(pol);
}

Test(runtime, retry_after_from_the_work_sets_the_delay)
{
    cbx_policy *pol = policy("{\"retry\": {\"attempts\": 2, \"backoff\": \"fixed\", \"initial\": "
                             "\"1ms\", \"max\": \"5s\", \"jitter\": \"none\"}}");
    json_t *p = params("{\"mode\": \"busy\"}");
    cbx_result r;
    cbx_runtime_execute(rt, &(cbx_request){.executor = "t_async", .params = p, .policy = pol}, &r,
                        NULL);
    cr_assert_eq(r.attempt_count, 2);
    json_t *a1 = json_array_get(r.attempts, 0), *a2 = json_array_get(r.attempts, 1);
    double gap = (double)(json_integer_value(json_object_get(a2, "started_ms")) -
                          json_integer_value(json_object_get(a1, "started_ms")));
    cr_assert_geq(gap, 150, "the second attempt waited for Retry-After (gap %.0f ms)", gap);
    cbx_result_clear(&r);
    json_decref(p);
    cbx_policy_free(pol);
}

Test(runtime, the_result_as_json)
{
    cbx_result r;
    cbx_runtime_execute(rt, &(cbx_request){.executor = "t_async"}, &r, NULL);
    json_t *j = cbx_result_to_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "success");
    cr_assert_str_eq(json_string_value(json_object_get(j, "executor")), "t_async");
    cr_assert(json_is_array(json_object_get(j, "attempts")));
    json_decref(j);
    cbx_result_clear(&r);
}

/* The outputs of an echo execution: {"n": ..., ...} as JSON text (caller frees). */
static char *echo_of(const char *params_json)
{
    json_t *p = params_json ? params(params_json) : NULL;
    cbx_result r;
    int rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "t_echo", .params = p}, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    char *text = json_dumps(r.outputs, JSON_COMPACT | JSON_SORT_KEYS);
    cbx_result_clear(&r);
    json_decref(p);
    return text;
}

static void expect_echo(const char *params_json, const char *want)
{
    char *got = echo_of(params_json);
    json_t *g = params(got), *w = params(want);
    cr_assert(json_equal(g, w), "parameters %s: got %s, want %s",
              params_json ? params_json : "NULL", got, want);
    json_decref(g);
    json_decref(w);
    free(got);
}

Test(runtime, equal_parameters_share_one_copy_and_the_caller_keeps_its_own)
{
    json_t *a = params("{\"mode\": \"hang\", \"value\": [1, {\"x\": 2}]}");
    json_t *b = params("{\"mode\": \"hang\", \"value\": [1, {\"x\": 2}]}");
    json_t *c = params("{\"mode\": \"hang\", \"value\": [1, {\"x\": 3}]}");
    cbx_request q = {.executor = "t_async"};
    json_t *each[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        q.params = each[i];
        cr_assert_eq(cbx_runtime_submit(rt, &q, NULL, NULL), 0);
    }
    cr_assert_eq(starts, 3);
    cr_assert_eq(started_with[0], started_with[1], "equal parameters, one copy");
    cr_assert_neq(started_with[0], started_with[2], "other parameters, another copy");
    /* the caller changes its own: the executions keep what was submitted */
    json_object_set_new(json_array_get(json_object_get(a, "value"), 1), "x", json_integer(9));
    json_object_set_new(b, "mode", json_string("ok"));
    const json_t *x =
        json_object_get(json_array_get(json_object_get(started_with[1], "value"), 1), "x");
    cr_assert_eq(json_integer_value(x), 2);
    cr_assert_str_eq(json_string_value(json_object_get(started_with[1], "mode")), "hang");
    cr_assert_eq(json_integer_value(json_object_get(started_with[0], "delay_ms")), 1,
                 "the default applied");
    cbx_runtime_cancel_all(rt);
    cbx_runtime_run(rt);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

Test(runtime, a_default_is_never_taken_from_an_earlier_request)
{
    expect_echo("{\"n\": 5}", "{\"n\": 5}");
    expect_echo("{}", "{\"n\": 1}");
    expect_echo("{\"n\": 5, \"tag\": \"t\"}", "{\"n\": 5, \"tag\": \"t\"}");
    expect_echo("{\"tag\": \"t\"}", "{\"n\": 1, \"tag\": \"t\"}");
    expect_echo("{\"tag\": \"t\", \"n\": 1}", "{\"n\": 1, \"tag\": \"t\"}");
    expect_echo(NULL, "{\"n\": 1}");
    expect_echo("{\"n\": 1}", "{\"n\": 1}");
    /* after an equal-looking valid request, an invalid one is still refused */
    json_t *p = params("{\"n\": 1.0}");
    cbx_result r;
    int rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "t_echo", .params = p}, &r, NULL);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG, "%s", r.error);
    cbx_result_clear(&r);
    json_decref(p);
}

static json_t *kept_outputs;

static void keep_outputs(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    (void)ud;
    kept_outputs = json_incref(res->outputs);
}

Test(runtime, an_execution_ended_inside_submit_stays_readable_until_the_loop_turns)
{
    json_t *p = params("{\"n\": 3}");
    cbx_execution *ex = NULL;
    kept_outputs = NULL;
    cr_assert_eq(cbx_runtime_submit(
                     rt, &(cbx_request){.executor = "t_echo", .params = p, .on_done = keep_outputs},
                     &ex, NULL),
                 0);
    cr_assert_not_null(ex);
    cr_assert_not_null(kept_outputs, "it ended inside submit");
    cr_assert_eq(kept_outputs->refcount, 1, "the runtime let go of the result at once");
    cr_assert_eq(cbx_execution_status(ex), CBX_STATUS_SUCCESS);
    cr_assert_eq(cbx_runtime_cancel(rt, ex), -ENOENT, "a finished execution is not cancelled");
    cbx_runtime_run(rt);
    json_decref(kept_outputs);
    json_decref(p);
}

/* What each done callback saw of its result's attempts (copies), and what two of them kept. */
typedef struct {
    json_t *seen[10];
    int n;
    json_t *kept_list, *kept_list_then;     /* the list the third kept, and a copy at the time */
    json_t *kept_record, *kept_record_then; /* the record the fifth kept */
} attempt_log;

static void log_attempts(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    attempt_log *l = ud;
    cr_assert_eq(json_array_size(res->attempts), res->attempt_count);
    if (l->n == 2) {
        l->kept_list = json_incref(res->attempts);
        l->kept_list_then = json_deep_copy(res->attempts);
    }
    if (l->n == 4) {
        l->kept_record = json_incref(json_array_get(res->attempts, 0));
        l->kept_record_then = json_deep_copy(l->kept_record);
    }
    l->seen[l->n++] = json_deep_copy(res->attempts);
}

Test(runtime, every_result_lists_its_own_attempts)
{
    cbx_policy *pol = policy("{\"retry\": {\"attempts\": 2, \"backoff\": \"fixed\", \"initial\": "
                             "\"1ms\", \"jitter\": \"none\"}}");
    attempt_log l = {0};
    struct {
        const char *executor, *params;
        int retry;
        const char *outcomes; /* of each attempt, "," between */
    } runs[] = {
        {"t_echo", "{}", 0, "success"},
        {"t_echo", "{\"fail\": true}", 0, "error"},
        {"t_echo", "{}", 0, "success"}, /* kept */
        {"t_async", "{\"mode\": \"fail\", \"delay_ms\": 0}", 0, "error"},
        {"t_echo", "{\"fail\": true}", 0, "error"}, /* its record kept */
        {"t_echo", "{}", 0, "success"},
        {"t_echo", "{\"fail\": true}", 1, "error,error"},
        {"t_echo", "{}", 0, "success"},
        {"t_async", "{\"delay_ms\": 0}", 0, "success"}, /* with metadata */
        {"t_echo", "{}", 0, "success"},
    };
    for (int i = 0; i < 10; i++) {
        json_t *p = params(runs[i].params);
        cbx_request q = {.executor = runs[i].executor,
                         .params = p,
                         .policy = runs[i].retry ? pol : NULL,
                         .on_done = log_attempts,
                         .ud = &l};
        cr_assert_eq(cbx_runtime_submit(rt, &q, NULL, NULL), 0);
        cbx_runtime_run(rt);
        json_decref(p);
    }
    cr_assert_eq(l.n, 10);
    for (int i = 0; i < 10; i++) {
        char want[64];
        snprintf(want, sizeof want, "%s", runs[i].outcomes);
        size_t n = 0;
        for (char *o = strtok(want, ","); o; o = strtok(NULL, ","), n++) {
            json_t *a = json_array_get(l.seen[i], n);
            cr_assert_not_null(a, "run %d: attempt %zu missing", i, n + 1);
            cr_assert_eq(json_integer_value(json_object_get(a, "number")), (json_int_t)n + 1);
            cr_assert_str_eq(json_string_value(json_object_get(a, "outcome")), o, "run %d", i);
            cr_assert(json_is_integer(json_object_get(a, "started_ms")));
            cr_assert(json_is_real(json_object_get(a, "duration_ms")));
            /* only the t_async failure gave a reason, only its success metadata */
            cr_assert_eq(json_object_get(a, "error") != NULL, i == 3, "run %d", i);
            cr_assert_eq(json_object_get(a, "metadata") != NULL, i == 8, "run %d", i);
        }
        cr_assert_eq(json_array_size(l.seen[i]), n, "run %d", i);
        if (i > 0)
            cr_assert_geq(
                json_integer_value(json_object_get(json_array_get(l.seen[i], 0), "started_ms")),
                json_integer_value(
                    json_object_get(json_array_get(l.seen[i - 1], 0), "started_ms")));
        json_decref(l.seen[i]);
    }
    /* what a callback kept is never reused for a later result */
    cr_assert(json_equal(l.kept_list, l.kept_list_then));
    cr_assert(json_equal(l.kept_record, l.kept_record_then));
    json_decref(l.kept_list);
    json_decref(l.kept_list_then);
    json_decref(l.kept_record);
    json_decref(l.kept_record_then);
    cbx_policy_free(pol);
}
