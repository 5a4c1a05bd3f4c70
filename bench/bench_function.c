/* bench/bench_function.c - no-op in-process functions through the runtime.
 *
 * One call = one execution submitted with cbx_runtime_submit and run to its end by
 * cbx_runtime_run (validation of the request, the queue, a concurrency slot, one attempt, the
 * result), no policy and no journal. Executions are submitted in batches of 10,000 (within the
 * runtime's queue bound), then the loop runs them all; a pass is --iters executions (default
 * 1,000,000; a tenth for the thread-pool case). Cases:
 *   function.noop.inline       a blocking no-op flagged CBX_FUNCTION_INLINE: runs on the loop
 *                              thread, inside the attempt's start (the cheapest way in); every
 *                              request is the same, so their parameters share one normalized
 *                              copy (see cbx__registry_admit)
 *   function.noop.varied       the same with parameters that differ from one request to the next
 *                              (1,000 prepared inputs {"n": i} in turn): a copy per execution
 *   function.noop.async        an asynchronous no-op: start reports cbx_task_done at once
 *   function.noop.pool         a blocking no-op on libuv's thread pool (a hand-off to a pool
 *                              thread and back per execution)
 *   cached_function.hit        cached_function on one input: every execution after the first
 *                              is a cache hit that copies the cached outputs
 * Memory per queued execution: 100,000 executions submitted without running the loop, each with
 * parameters of its own (inputs {"n": i}, prepared beforehand: every one is copied); the growth
 * of the heap in use (glibc mallinfo2, bytes handed out and not freed) divided by the count,
 * printed as "# function.queued_bytes" and in a note, with the allocations per queued
 * execution; the note also gives the figure for 100,000 equal requests (one shared copy).
 * Targets: at most 1 us per execution, at most 1 KiB per queued execution.
 *
 * The runtime allocates per execution (the execution, its running state and the attempt; the
 * parameters' copy when they differ from the last request's; the result's attempt list and
 * record unless the previous done callback left them to be reused, as this one does), so the
 * allocs column says "-" and a note gives the count per execution. Every execution must succeed, or
 * the run fails (exit 1). Under valgrind (bench/run's allocation cross-check) nothing is measured,
 * as for the other runtime benchmarks.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <valgrind/valgrind.h>

#include "cbx/function.h"
#include "cbx/runtime.h"

#include "alloc_count.h"
#include "timing.h"

#ifndef CBX_BENCH_BUILD_TYPE
#define CBX_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef CBX_BENCH_CFLAGS
#define CBX_BENCH_CFLAGS ""
#endif
#ifndef CBX_BENCH_COMPILER
#define CBX_BENCH_COMPILER "unknown"
#endif

#define DEFAULT_CALLS 1000000u
#define BATCH         1000u
#define QUEUED        100000u
#define VARIED        1000u

static int failed;
static uint64_t succeeded;

static cbx_outcome noop(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)input;
    (void)output;
    (void)t;
    (void)ud;
    return CBX_OUTCOME_SUCCESS;
}

static int noop_start(cbx_task *t, const json_t *input, void *ud)
{
    (void)input;
    (void)ud;
    cbx_task_done(t, CBX_OUTCOME_SUCCESS, NULL, NULL, NULL);
    return 0;
}

static void noop_cancel(cbx_task *t, void *ud)
{
    (void)t;
    (void)ud;
}

static cbx_outcome echo(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)t;
    (void)ud;
    *output = json_deep_copy(input);
    return CBX_OUTCOME_SUCCESS;
}

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    (void)ud;
    if (res->status == CBX_STATUS_SUCCESS)
        succeeded++;
    else if (!failed) {
        printf("# FAIL\tfunction: an execution ended %s: %s\n", cbx_status_name(res->status),
               res->error);
        failed = 1;
    }
}

typedef struct rt_case {
    cbx_runtime *rt;
    cbx_request req;
    json_t **varied; /* when not NULL: nvaried parameters, used in turn instead of req.params */
    size_t nvaried, next;
    uint64_t allocs; /* during the last pass */
} rt_case;

/* The next request's parameters. */
static const json_t *next_params(rt_case *c)
{
    if (!c->varied)
        return c->req.params;
    const json_t *p = c->varied[c->next];
    c->next = (c->next + 1) % c->nvaried;
    return p;
}

/* n parameter objects {"name": name, "input": {"n": i}}; NULL when out of memory. */
static json_t **make_varied(const char *name, size_t n)
{
    json_t **v = calloc(n, sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        v[i] = json_pack("{s:s, s:{s:I}}", "name", name, "input", "n", (json_int_t)i);
        if (!v[i]) {
            while (i > 0)
                json_decref(v[--i]);
            free(v);
            return NULL;
        }
    }
    return v;
}

static void free_varied(json_t **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        json_decref(v[i]);
    free(v);
}

/* iters executions, submitted BATCH at a time, each batch run to its end. */
static void rt_loop(void *ctx, uint64_t iters)
{
    rt_case *c = ctx;
    uint64_t a0 = alloc_count_total();
    uint64_t left = iters;
    while (left > 0 && !failed) {
        uint64_t n = left < BATCH ? left : BATCH;
        for (uint64_t i = 0; i < n; i++) {
            c->req.params = next_params(c);
            if (cbx_runtime_submit(c->rt, &c->req, NULL, NULL) != 0 && !failed) {
                printf("# FAIL\tfunction: submit refused\n");
                failed = 1;
            }
        }
        cbx_runtime_run(c->rt);
        /* executions that ended inside submit (inline and immediate completions) release their
         * memory in close callbacks, which only a turn of the loop runs */
        uv_run(cbx_runtime_loop(c->rt), UV_RUN_NOWAIT);
        left -= n;
    }
    c->allocs = alloc_count_total() - a0;
}

static int rt_case_init(rt_case *c, cbx_registry *reg, const char *type, json_t *params)
{
    cbx_err err;
    cbx_err_clear(&err);
    memset(c, 0, sizeof *c);
    if (cbx_runtime_new(
            &c->rt,
            &(cbx_runtime_opts){.registry = reg, .max_queued = BATCH > QUEUED ? BATCH : QUEUED},
            &err) != 0) {
        printf("# FAIL\tfunction: cbx_runtime_new: %s\n", err.msg);
        failed = 1;
        return -1;
    }
    c->req = (cbx_request){.executor = type, .params = params, .on_done = on_done};
    return 0;
}

/* varied: 0, or how many different parameter objects to use in turn (for the function in
 * params_json's "name"). */
static void run_rt_case(const bench_args *a, const char *name, cbx_registry *reg, const char *type,
                        const char *params_json, size_t varied, uint64_t default_calls)
{
    json_t *params = json_loads(params_json, 0, NULL);
    rt_case c;
    if (!params || rt_case_init(&c, reg, type, params) != 0) {
        json_decref(params);
        failed = 1;
        return;
    }
    if (varied) {
        c.varied = make_varied(json_string_value(json_object_get(params, "name")), varied);
        c.nvaried = varied;
        if (!c.varied) {
            printf("# FAIL\t%s: out of memory\n", name);
            failed = 1;
        }
    }
    uint64_t n = a->iters ? a->iters : default_calls;
    succeeded = 0;
    double ns = bench_best_ns(rt_loop, &c, n, a->runs, n / 10 ? n / 10 : 1);
    uint64_t want = n * (uint64_t)a->runs + (n / 10 ? n / 10 : 1);
    if (!failed && succeeded != want) {
        printf("# FAIL\t%s: %" PRIu64 " of %" PRIu64 " executions succeeded\n", name, succeeded,
               want);
        failed = 1;
    }
    bench_emit(name, ns, -1, n);
    printf("# note\t%s: %.0f executions/s; %.1f allocations per execution\n", name, 1e9 / ns,
           (double)c.allocs / (double)n);
    cbx_runtime_free(c.rt);
    free_varied(c.varied, c.nvaried);
    json_decref(params);
}

/* Heap growth per execution queued and not yet run, for n submissions of c's requests (with
 * c->varied, each its own parameters); allocations per submission in *allocs_per. */
static double queue_growth(rt_case *c, uint32_t n, double *allocs_per)
{
    malloc_trim(0);
    succeeded = 0;
    struct mallinfo2 before = mallinfo2();
    uint64_t a0 = alloc_count_total();
    for (uint32_t i = 0; i < n; i++) {
        c->req.params = next_params(c);
        if (cbx_runtime_submit(c->rt, &c->req, NULL, NULL) != 0 && !failed) {
            printf("# FAIL\tfunction.queued: submit %u refused\n", i);
            failed = 1;
            break;
        }
    }
    struct mallinfo2 after = mallinfo2();
    *allocs_per = (double)(alloc_count_total() - a0) / n;
    cbx_runtime_run(c->rt);
    if (!failed && succeeded != n) {
        printf("# FAIL\tfunction.queued: %" PRIu64 " of %u queued executions succeeded\n",
               succeeded, n);
        failed = 1;
    }
    return ((double)after.uordblks - (double)before.uordblks) / n;
}

/* Heap growth per execution queued and not yet run. */
static void queued_memory(cbx_registry *reg)
{
    /* a pool function: the first max_concurrent go to the pool, the rest wait in the queue
     * (an inline one would run to its end inside submit) */
    json_t *params = json_loads("{\"name\": \"noop_pool\", \"input\": {\"n\": 1}}", 0, NULL);
    rt_case c;
    if (!params || rt_case_init(&c, reg, "function", params) != 0) {
        json_decref(params);
        return;
    }
    /* warm the runtime's own structures up first */
    rt_loop(&c, 100);
    double same_allocs, allocs;
    double same = queue_growth(&c, QUEUED, &same_allocs);
    /* the parameters are made before the measure: only the runtime's copies count */
    c.varied = make_varied("noop_pool", QUEUED);
    c.nvaried = QUEUED;
    if (!c.varied) {
        printf("# FAIL\tfunction.queued: out of memory\n");
        failed = 1;
    }
    double per = failed ? 0 : queue_growth(&c, QUEUED, &allocs);
    if (!failed) {
        printf("# function.queued_bytes\t%.0f\n", per);
        printf("# note\tfunction.queued: %.0f bytes of heap per queued execution (%u queued with "
               "parameters of their own, %.1f allocations each; target at most 1024); %.0f bytes "
               "(%.1f allocations) when the requests are equal\n",
               per, QUEUED, allocs, same, same_allocs);
    }
    cbx_runtime_free(c.rt);
    free_varied(c.varied, c.nvaried);
    json_decref(params);
}

static const char *const names[] = {
    "function.noop.inline", "function.noop.async", "function.noop.pool",
    "cached_function.hit",  "function.queued",     "function.noop.varied",
};

int main(int argc, char **argv)
{
    bench_args a;
    int rc = bench_start(argc, argv, "bench_function", names, sizeof names / sizeof names[0],
                         RUNNING_ON_VALGRIND,
                         "function: not run under valgrind (an execution through the runtime is "
                         "not an allocation-free path)",
                         alloc_count_selftest, &a);
    if (rc >= 0)
        return rc;

    cbx_registry *reg = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    if (cbx_registry_new(&reg, &err) != 0) {
        printf("# FAIL\tfunction: cbx_registry_new: %s\n", err.msg);
        return 1;
    }
    struct {
        const char *name;
        cbx_function_def def;
    } fns[] = {
        {"noop_inline", {.call = noop, .flags = CBX_FUNCTION_INLINE}},
        {"noop_async", {.start = noop_start, .cancel = noop_cancel}},
        {"noop_pool", {.call = noop}},
        {"echo", {.call = echo, .flags = CBX_FUNCTION_INLINE}},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (cbx_function_register(reg, fns[i].name, &fns[i].def, &err) != 0) {
            printf("# FAIL\tfunction: cbx_function_register %s: %s\n", fns[i].name, err.msg);
            return 1;
        }

    if (bench_selected(&a, names[0]))
        run_rt_case(&a, names[0], reg, "function", "{\"name\": \"noop_inline\"}", 0, DEFAULT_CALLS);
    if (!failed && bench_selected(&a, names[5]))
        run_rt_case(&a, names[5], reg, "function", "{\"name\": \"noop_inline\"}", VARIED,
                    DEFAULT_CALLS);
    if (!failed && bench_selected(&a, names[1]))
        run_rt_case(&a, names[1], reg, "function", "{\"name\": \"noop_async\"}", 0, DEFAULT_CALLS);
    if (!failed && bench_selected(&a, names[2]))
        run_rt_case(&a, names[2], reg, "function", "{\"name\": \"noop_pool\"}", 0,
                    DEFAULT_CALLS / 10);
    if (!failed && bench_selected(&a, names[3]))
        run_rt_case(&a, names[3], reg, "cached_function",
                    "{\"name\": \"echo\", \"input\": {\"q\": \"same\", \"n\": 1}}", 0,
                    DEFAULT_CALLS);
    if (!failed && bench_selected(&a, names[4]))
        queued_memory(reg);

    cbx_function_unregister_all(reg);
    cbx_registry_free(reg);
    cbx_function_cache_clear();
    return failed ? 1 : 0;
}
