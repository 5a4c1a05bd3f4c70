/* Runtimes on several threads, each with blocking functions on the shared thread pool, some of
 * which outlive their timeout (their attempt is abandoned while the pool thread still runs),
 * asynchronous chaos work, retries and cancels. Then every thread submits the same parameter
 * objects (made once, read by all the threads at once): each runtime shares one normalized copy
 * between its executions while pool threads read it, and inline functions end inside submit.
 * Every execution must end exactly once with a final status, and ThreadSanitizer (make tsan)
 * must find no race. */
#include "cbx/function.h"
#include "cbx/runtime.h"

#include "stress/stress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define THREADS    3
#define PER_THREAD 600
#define SHARED     400 /* requests with the shared parameters, per thread */

static atomic_int calls;

/* Sleeps 0-3 ms in 1 ms slices, ignoring its cancel flag one time in four. */
static cbx_outcome sleepy(const json_t *in, json_t **out, cbx_task *t, void *ud)
{
    (void)ud;
    int n = (int)json_integer_value(json_object_get(in, "n"));
    atomic_fetch_add(&calls, 1);
    for (int i = 0; i < n % 4; i++) {
        if (n % 4 != 3 && cbx_task_cancelled(t))
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    *out = json_pack("{s:i}", "n", n);
    return n % 5 == 0 ? CBX_OUTCOME_ERROR : CBX_OUTCOME_SUCCESS;
}

/* On the loop thread, inside the attempt's start. */
static cbx_outcome quick(const json_t *in, json_t **out, cbx_task *t, void *ud)
{
    (void)t;
    (void)ud;
    *out = json_pack("{s:O}", "n", json_object_get(in, "n"));
    return CBX_OUTCOME_SUCCESS;
}

typedef struct {
    cbx_registry *reg;
    const json_t *shared[2]; /* the same objects for every thread: sleepy's and quick's */
    int done, final_statuses;
} worker;

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    worker *w = ud;
    w->done++;
    if (res->status >= CBX_STATUS_SUCCESS)
        w->final_statuses++;
}

static void *run(void *arg)
{
    worker *w = arg;
    cbx_runtime *rt;
    cbx_err err;
    CHECK(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = w->reg, .max_concurrent = 16},
                          &err) == 0,
          "%s", err.msg);
    json_t *blk = json_loads("{\"timeout\": \"2ms\", \"retry\": {\"attempts\": 2, \"initial\": "
                             "\"1ms\", \"jitter\": \"none\"}}",
                             0, NULL);
    cbx_policy *pol;
    CHECK(cbx_policy_new_json(&pol, blk, NULL, &err) == 0, "%s", err.msg);
    json_decref(blk);
    cbx_execution *last = NULL;
    for (int i = 0; i < PER_THREAD; i++) {
        json_t *p = i % 3 == 2 ? json_pack("{s:f, s:i}", "fail_rate", 0.3, "delay_ms", i % 3)
                               : json_pack("{s:s, s:{s:i}}", "name", "sleepy", "input", "n", i);
        cbx_request q = {.executor = i % 3 == 2 ? "chaos" : "function",
                         .params = p,
                         .policy = pol,
                         .on_done = on_done,
                         .ud = w};
        CHECK(cbx_runtime_submit(rt, &q, &last, NULL) == 0);
        json_decref(p);
        if (i % 50 == 49 && last)
            cbx_runtime_cancel(rt, last); /* queued or running: either way it ends once */
        if (i % 100 == 99)
            cbx_runtime_run(rt);
    }
    for (int i = 0; i < SHARED; i++) {
        cbx_request q = {.executor = "function",
                         .params = w->shared[i % 3 == 0],
                         .policy = i % 2 ? pol : NULL,
                         .on_done = on_done,
                         .ud = w};
        CHECK(cbx_runtime_submit(rt, &q, &last, NULL) == 0);
        if (i % 25 == 24)
            cbx_runtime_cancel(rt, last); /* maybe already ended inside submit: -ENOENT */
        if (i % 100 == 99)
            cbx_runtime_run(rt);
    }
    cbx_runtime_run(rt);
    cbx_runtime_free(rt);
    cbx_policy_free(pol);
    return NULL;
}

int main(void)
{
    cbx_registry *reg;
    cbx_err err;
    CHECK(cbx_registry_new(&reg, &err) == 0);
    CHECK(cbx_function_register(reg, "sleepy", &(cbx_function_def){.call = sleepy}, &err) == 0,
          "%s", err.msg);
    CHECK(cbx_function_register(reg, "quick",
                                &(cbx_function_def){.call = quick, .flags = CBX_FUNCTION_INLINE},
                                &err) == 0,
          "%s", err.msg);
    json_t *shared_sleepy = json_pack("{s:s, s:{s:i}}", "name", "sleepy", "input", "n", 6);
    json_t *shared_quick = json_pack("{s:s, s:{s:i}}", "name", "quick", "input", "n", 7);
    worker w[THREADS] = {0};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].reg = reg;
        w[i].shared[0] = shared_sleepy;
        w[i].shared[1] = shared_quick;
        CHECK(pthread_create(&t[i], NULL, run, &w[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].done == PER_THREAD + SHARED, "thread %d: %d of %d executions ended", i,
              w[i].done, PER_THREAD + SHARED);
        CHECK(w[i].final_statuses == PER_THREAD + SHARED);
    }
    json_decref(shared_sleepy);
    json_decref(shared_quick);
    cbx_function_unregister_all(reg);
    cbx_registry_free(reg);
    printf("runtime stress: ok (%d function calls)\n", atomic_load(&calls));
    return 0;
}
