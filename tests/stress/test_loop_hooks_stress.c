/* Runtimes made and freed over and over on threads of their own, sharing one registry that
 * holds a type with loop hooks (cbx/executor.h): each runtime's loop_init and loop_close run
 * once, on its own thread, around its attempts, and under TSan the runtime's bookkeeping of the
 * states shows no race. */
#include "stress/stress.h"

#include "cbx/runtime.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define THREADS  4
#define RUNTIMES 25 /* per thread, one after the other */
#define TASKS    40 /* per runtime */

typedef struct loop_state {
    pthread_t owner; /* the thread of loop_init */
    void *loop;
    int tasks; /* touched on the loop's thread only */
} loop_state;

static atomic_int inits, closes, bad;

static int hooks_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err)
{
    (void)type;
    (void)err;
    loop_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->owner = pthread_self();
    s->loop = loop;
    *state = s;
    atomic_fetch_add(&inits, 1);
    return 0;
}

static void hooks_close(const cbx_executor_type *type, void *loop, void *state)
{
    (void)type;
    loop_state *s = state;
    if (!pthread_equal(s->owner, pthread_self()) || s->loop != loop || s->tasks != TASKS)
        atomic_fetch_add(&bad, 1);
    free(s);
    atomic_fetch_add(&closes, 1);
}

static int hooks_start(cbx_task *t)
{
    loop_state *s = cbx_task_loop_state(t);
    if (!s || !pthread_equal(s->owner, pthread_self()) || s->loop != cbx_task_loop(t))
        atomic_fetch_add(&bad, 1);
    else
        s->tasks++;
    cbx_task_done(t, CBX_OUTCOME_SUCCESS, NULL, NULL, NULL);
    return 0;
}

static void hooks_cancel(cbx_task *t)
{
    (void)t;
}

static const cbx_executor_type hooks_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "t_loop_hooks",
    .summary = "stress type with loop hooks",
    .start = hooks_start,
    .cancel = hooks_cancel,
    .loop_init = hooks_init,
    .loop_close = hooks_close,
};

static cbx_registry *reg;

/* Runtimes are made and freed one at a time (they run at once): libuv, not instrumented,
 * closes its descriptors behind TSan's back, so a number another thread's loop reuses without
 * a lock in between reads as a race. */
static pthread_mutex_t churn = PTHREAD_MUTEX_INITIALIZER;

static void *worker_main(void *arg)
{
    (void)arg;
    json_t *params = json_object(); /* jansson's counts are per thread */
    for (int i = 0; i < RUNTIMES; i++) {
        cbx_runtime *rt = NULL;
        cbx_err err;
        pthread_mutex_lock(&churn);
        int r = cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &err);
        pthread_mutex_unlock(&churn);
        CHECK(r == 0, "%s", err.msg);
        for (int k = 0; k < TASKS; k++) {
            cbx_request q = {.executor = "t_loop_hooks", .params = params};
            CHECK(cbx_runtime_submit(rt, &q, NULL, NULL) == 0);
        }
        CHECK(cbx_runtime_run(rt) == 0);
        pthread_mutex_lock(&churn);
        cbx_runtime_free(rt);
        pthread_mutex_unlock(&churn);
    }
    json_decref(params);
    return NULL;
}

int main(void)
{
    cbx_err err;
    CHECK(cbx_registry_new(&reg, &err) == 0, "%s", err.msg);
    CHECK(cbx_registry_register(reg, &hooks_type, &err) == 0, "%s", err.msg);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker_main, NULL) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    cbx_registry_free(reg);
    int want = THREADS * RUNTIMES;
    CHECK(atomic_load(&inits) == want, " %d loop_init calls for %d runtimes", atomic_load(&inits),
          want);
    CHECK(atomic_load(&closes) == want, " %d loop_close calls", atomic_load(&closes));
    CHECK(atomic_load(&bad) == 0, " %d hook or task calls off their runtime's thread or state",
          atomic_load(&bad));
    printf("loop hooks: %d runtimes on %d threads, %d tasks each\n", want, THREADS, TASKS);
    return 0;
}
