/* Executor types' per-runtime hooks (cbx/executor.h: loop_init, loop_close): called once per
 * runtime, on the loop's thread, init before every attempt and close after the last, in order;
 * the state reaches each task; several runtimes, on one thread or on threads of their own, each
 * get their own. */
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a log of hook calls -------------------------------------------------------------------- */

typedef struct hook_event {
    char what;  /* 'i' loop_init, 'c' loop_close, 't' a task */
    char type;  /* the type's tag: its data */
    void *loop; /* the loop it was given */
    void *state;
    pthread_t thread;
} hook_event;

#define MAX_EVENTS 4096
static hook_event events[MAX_EVENTS];
static size_t nevents;
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static int fail_init; /* loop_init of type 'b' fails */

static void log_event(char what, const cbx_executor_type *type, void *loop, void *state)
{
    pthread_mutex_lock(&events_lock);
    if (nevents < MAX_EVENTS)
        events[nevents++] =
            (hook_event){what, *(const char *)type->data, loop, state, pthread_self()};
    pthread_mutex_unlock(&events_lock);
}

/* Events of one loop, in order, into out (at most max); how many. */
static size_t events_of(void *loop, hook_event *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&events_lock);
    for (size_t i = 0; i < nevents; i++)
        if (events[i].loop == loop && n < max)
            out[n++] = events[i];
    pthread_mutex_unlock(&events_lock);
    return n;
}

/* ---- the hooked types ----------------------------------------------------------------------- */

typedef struct loop_state {
    void *loop;
    int tasks;
    int closed;
} loop_state;

static int hooked_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err)
{
    cr_assert_null(*state, "the state starts NULL");
    if (fail_init && *(const char *)type->data == 'b')
        return cbx_err_set(err, CBX_EFAILED, "no pool for you");
    loop_state *s = calloc(1, sizeof *s);
    s->loop = loop;
    *state = s;
    log_event('i', type, loop, s);
    return 0;
}

static void hooked_close(const cbx_executor_type *type, void *loop, void *state)
{
    loop_state *s = state;
    log_event('c', type, loop, s);
    s->closed = 1;
    free(s);
}

static int hooked_start(cbx_task *t)
{
    loop_state *s = cbx_task_loop_state(t);
    log_event('t', cbx_task_type(t), cbx_task_loop(t), s);
    if (!s || s->loop != cbx_task_loop(t) || s->closed)
        return CBX_EFAILED;
    s->tasks++;
    cbx_task_done(t, CBX_OUTCOME_SUCCESS, json_pack("{s:i}", "tasks", s->tasks), NULL, NULL);
    return 0;
}

static void hooked_cancel(cbx_task *t)
{
    (void)t;
}

static char tag_a = 'a', tag_b = 'b', tag_c = 'c';

/* Registered in name order b, a: the hooks still go by name. */
static const cbx_executor_type type_b = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "t_hooks_b",
    .summary = "test type with loop hooks",
    .data = &tag_b,
    .start = hooked_start,
    .cancel = hooked_cancel,
    .loop_init = hooked_init,
    .loop_close = hooked_close,
};
static const cbx_executor_type type_a = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "t_hooks_a",
    .summary = "test type with loop hooks",
    .data = &tag_a,
    .start = hooked_start,
    .cancel = hooked_cancel,
    .loop_init = hooked_init,
    .loop_close = hooked_close,
};
/* Registered after the runtime was made. */
static const cbx_executor_type type_c = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "t_hooks_c",
    .summary = "test type with loop hooks, registered late",
    .data = &tag_c,
    .start = hooked_start,
    .cancel = hooked_cancel,
    .loop_init = hooked_init,
    .loop_close = hooked_close,
};

static cbx_registry *new_registry(void)
{
    cbx_registry *reg;
    cbx_err err;
    cr_assert_eq(cbx_registry_new(&reg, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_registry_register(reg, &type_b, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_registry_register(reg, &type_a, &err), 0, "%s", err.msg);
    return reg;
}

/* Run one attempt of type; its "tasks" output (the count on the runtime's state). */
static int run_one(cbx_runtime *rt, const char *type)
{
    json_t *p = json_object();
    cbx_result r;
    int rc = cbx_runtime_execute(rt, &(cbx_request){.executor = type, .params = p}, &r, NULL);
    json_decref(p);
    int tasks = rc == 0 && r.status == CBX_STATUS_SUCCESS
                    ? (int)json_integer_value(json_object_get(r.outputs, "tasks"))
                    : -1;
    cbx_result_clear(&r);
    return tasks;
}

static void reset(void)
{
    nevents = 0;
    fail_init = 0;
}

TestSuite(loop_hooks, .init = reset);

/* ---- one runtime ------------------------------------------------------------------------------
 */

Test(loop_hooks, init_when_made_close_when_freed_in_order)
{
    cbx_registry *reg = new_registry();
    cbx_runtime *rt;
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &err), 0, "%s",
                 err.msg);
    void *loop = cbx_runtime_loop(rt);
    hook_event ev[16];
    cr_assert_eq(events_of(loop, ev, 16), 2, "loop_init of both types, at cbx_runtime_new");
    cr_assert(ev[0].what == 'i' && ev[0].type == 'a', "by name: a first");
    cr_assert(ev[1].what == 'i' && ev[1].type == 'b');

    cr_assert_eq(run_one(rt, "t_hooks_a"), 1);
    cr_assert_eq(run_one(rt, "t_hooks_a"), 2, "one state for every task of a type");
    cr_assert_eq(run_one(rt, "t_hooks_b"), 1, "and one per type");
    cbx_runtime_free(rt);

    size_t n = events_of(loop, ev, 16);
    cr_assert_eq(n, 7);
    cr_assert(ev[2].what == 't' && ev[2].type == 'a' && ev[2].state == ev[0].state);
    cr_assert(ev[3].what == 't' && ev[3].type == 'a' && ev[3].state == ev[0].state);
    cr_assert(ev[4].what == 't' && ev[4].type == 'b' && ev[4].state == ev[1].state);
    cr_assert(ev[5].what == 'c' && ev[5].type == 'b' && ev[5].state == ev[1].state,
              "closed newest first");
    cr_assert(ev[6].what == 'c' && ev[6].type == 'a' && ev[6].state == ev[0].state);
    for (size_t i = 0; i < n; i++)
        cr_assert(pthread_equal(ev[i].thread, pthread_self()), "event %zu on the loop's thread", i);
    cbx_registry_free(reg);
}

Test(loop_hooks, a_type_registered_later_is_set_up_on_its_first_attempt)
{
    cbx_registry *reg = new_registry();
    cbx_runtime *rt;
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &err), 0, "%s",
                 err.msg);
    void *loop = cbx_runtime_loop(rt);
    cr_assert_eq(cbx_registry_register(reg, &type_c, &err), 0, "%s", err.msg);
    hook_event ev[16];
    cr_assert_eq(events_of(loop, ev, 16), 2, "not yet");
    cr_assert_eq(run_one(rt, "t_hooks_c"), 1);
    cr_assert_eq(run_one(rt, "t_hooks_c"), 2);
    cr_assert_eq(events_of(loop, ev, 16), 5);
    cr_assert(ev[2].what == 'i' && ev[2].type == 'c', "loop_init before its first task");
    cbx_runtime_free(rt);
    size_t n = events_of(loop, ev, 16);
    cr_assert_eq(n, 8);
    cr_assert(ev[5].what == 'c' && ev[5].type == 'c', "the newest closed first");
    cr_assert(ev[6].type == 'b' && ev[7].type == 'a');
    cbx_registry_free(reg);
}

Test(loop_hooks, a_failed_loop_init_fails_the_runtime_and_closes_the_others)
{
    cbx_registry *reg = new_registry();
    fail_init = 1;
    cbx_runtime *rt = (cbx_runtime *)&rt;
    cbx_err err;
    cbx_err_clear(&err);
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &err), CBX_EFAILED);
    cr_assert_null(rt);
    cr_assert_str_eq(err.msg, "executor type 't_hooks_b': loop_init: no pool for you");
    cr_assert_eq(nevents, 2, "a's init, then its close");
    cr_assert(events[0].what == 'i' && events[0].type == 'a');
    cr_assert(events[1].what == 'c' && events[1].type == 'a');
    cbx_registry_free(reg);
}

Test(loop_hooks, a_failed_late_loop_init_fails_the_attempt)
{
    cbx_registry *reg;
    cbx_err err;
    cr_assert_eq(cbx_registry_new(&reg, &err), 0, "%s", err.msg);
    cbx_runtime *rt;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx_registry_register(reg, &type_b, &err), 0, "%s", err.msg);
    fail_init = 1;
    json_t *p = json_object();
    cbx_result r;
    cbx_runtime_execute(rt, &(cbx_request){.executor = "t_hooks_b", .params = p}, &r, NULL);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert(strstr(r.error, "loop_init: no pool for you"), "%s", r.error);
    cbx_result_clear(&r);
    json_decref(p);
    cbx_runtime_free(rt);
    cr_assert_eq(nevents, 0, "no close for a failed init");
    cbx_registry_free(reg);
}

Test(loop_hooks, runtimes_sharing_a_loop_each_get_their_own_state)
{
    cbx_registry *reg = new_registry();
    cbx_runtime *rt1, *rt2;
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt1, &(cbx_runtime_opts){.registry = reg}, &err), 0, "%s",
                 err.msg);
    void *loop = cbx_runtime_loop(rt1);
    cr_assert_eq(cbx_runtime_new(&rt2, &(cbx_runtime_opts){.registry = reg, .loop = loop}, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(run_one(rt1, "t_hooks_a"), 1);
    cr_assert_eq(run_one(rt2, "t_hooks_a"), 1, "not rt1's state");
    cr_assert_eq(run_one(rt1, "t_hooks_a"), 2);
    cbx_runtime_free(rt2);
    hook_event ev[16];
    size_t n = events_of(loop, ev, 16);
    cr_assert_eq(n, 9, "4 inits, 3 tasks, rt2's 2 closes");
    cr_assert_neq(ev[0].state, ev[2].state);
    cr_assert(ev[7].what == 'c' && ev[7].state == ev[3].state, "rt2's b");
    cr_assert(ev[8].what == 'c' && ev[8].state == ev[2].state, "rt2's a");
    cbx_runtime_free(rt1);
    cr_assert_eq(events_of(loop, ev, 16), 11);
    cbx_registry_free(reg);
}

/* ---- runtimes on threads ----------------------------------------------------------------------
 */

#define THREADS 6
#define TASKS   50

/* Every runtime is made before any is freed: no loop address is used twice in the log. */
static pthread_barrier_t all_made;

typedef struct thread_arg {
    cbx_registry *reg;
    void *loop;
    pthread_t self;
    int last_a, last_b;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    a->self = pthread_self();
    cbx_runtime *rt;
    cbx_err err;
    int r = cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = a->reg}, &err);
    pthread_barrier_wait(&all_made);
    if (r != 0)
        return NULL;
    a->loop = cbx_runtime_loop(rt);
    for (int i = 0; i < TASKS; i++) {
        a->last_a = run_one(rt, "t_hooks_a");
        a->last_b = run_one(rt, "t_hooks_b");
    }
    cbx_runtime_free(rt);
    return NULL;
}

Test(loop_hooks, runtimes_on_threads_each_see_init_and_close_once_on_their_thread)
{
    cbx_registry *reg = new_registry(); /* shared read-only */
    thread_arg args[THREADS];
    pthread_t th[THREADS];
    pthread_barrier_init(&all_made, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (thread_arg){.reg = reg};
        cr_assert_eq(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&all_made);
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(args[i].last_a, TASKS, "thread %d: one state per runtime", i);
        cr_assert_eq(args[i].last_b, TASKS);
        hook_event ev[2 * TASKS + 8];
        size_t n = events_of(args[i].loop, ev, 2 * TASKS + 8);
        cr_assert_eq(n, 2 * TASKS + 4, "thread %d", i);
        cr_assert(ev[0].what == 'i' && ev[0].type == 'a');
        cr_assert(ev[1].what == 'i' && ev[1].type == 'b');
        cr_assert(ev[n - 2].what == 'c' && ev[n - 2].type == 'b' && ev[n - 2].state == ev[1].state);
        cr_assert(ev[n - 1].what == 'c' && ev[n - 1].type == 'a' && ev[n - 1].state == ev[0].state);
        for (size_t k = 2; k < n - 2; k++)
            cr_assert_eq(ev[k].what, 't');
        for (size_t k = 0; k < n; k++)
            cr_assert(pthread_equal(ev[k].thread, args[i].self), "thread %d event %zu", i, k);
    }
    cbx_registry_free(reg);
}
