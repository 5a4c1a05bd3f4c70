/* bench/bench_stream.c - partial output through the runtime (cbx_task_emit, on_chunk).
 *
 * One call = one chunk of 16 bytes emitted and delivered to the submitter's callback, no journal.
 * Cases:
 *   stream.chunk.pool      a streaming function (cbx_function_def.next) on a pool thread: each
 *                          chunk is copied, queued (queue of 64), handed to the loop thread by a
 *                          uv_async wake-up per batch, and delivered; one execution of --iters
 *                          chunks (default 1,000,000) per pass
 *   stream.chunk.loop      an asynchronous executor emitting from the loop thread in bursts,
 *                          stopping on -EAGAIN and going on from the drain callback
 *   stream.emit.unwanted   cbx_task_emit when nobody takes chunks (no on_chunk, no journal):
 *                          what an executor pays to emit into the void
 * The allocs column counts the counting allocator's allocations per chunk. */
#include "alloc_count.h"
#include "timing.h"

#include "cbx/function.h"
#include "cbx/runtime.h"

#include <errno.h>
#include <uv.h>

static uint64_t delivered;

static int on_chunk(cbx_execution *ex, const cbx_chunk *c, void *ud)
{
    (void)ex;
    (void)ud;
    delivered += c->len == 16;
    return CBX_CHUNK_MORE;
}

static const char payload[17] = "0123456789abcdef";

static int gen_next(const json_t *input, json_t **chunk, void **iter, cbx_task *t, void *ud)
{
    (void)ud;
    uintptr_t i = (uintptr_t)*iter;
    if (!chunk || i >= (uintptr_t)json_integer_value(input))
        return 0;
    *iter = (void *)(i + 1);
    /* emitted here, not yielded: the generator's own joining of text is not what is measured */
    if (cbx_task_emit(t, "out", payload, 16) < 0)
        return -ECANCELED;
    *chunk = NULL;
    return 1;
}

typedef struct burst {
    cbx_task *t;
    uv_timer_t timer;
    uint64_t left;
} burst;

static burst g_burst;

static void burst_go(uv_timer_t *h);

static void burst_drained(cbx_task *t, void *ud)
{
    (void)t;
    burst *b = ud;
    uv_timer_start(&b->timer, burst_go, 0, 0);
}

static void burst_closed(uv_handle_t *h)
{
    burst *b = h->data;
    cbx_task_done(b->t, CBX_OUTCOME_SUCCESS, NULL, NULL, NULL);
}

static void burst_go(uv_timer_t *h)
{
    burst *b = h->data;
    while (b->left) {
        b->left--;
        if (cbx_task_emit(b->t, "out", payload, 16) == -EAGAIN) {
            cbx_task_on_drain(b->t, burst_drained, b);
            return;
        }
    }
    uv_close((uv_handle_t *)&b->timer, burst_closed);
}

static int burst_start(cbx_task *t, const json_t *input, void *ud)
{
    burst *b = ud;
    b->t = t;
    b->left = (uint64_t)json_integer_value(input);
    uv_timer_init(cbx_task_loop(t), &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, burst_go, 0, 0);
    return 0;
}

static uint64_t unwanted_n;

static cbx_outcome unwanted_call(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)input;
    (void)output;
    (void)ud;
    for (uint64_t i = 0; i < unwanted_n; i++)
        BENCH_KEEP(cbx_task_emit(t, "out", payload, 16));
    return CBX_OUTCOME_SUCCESS;
}

typedef struct ctx {
    cbx_runtime *rt;
    const char *fn;
    int consumer;
} ctx;

static void run_one(void *p, uint64_t iters)
{
    ctx *c = p;
    unwanted_n = iters;
    delivered = 0;
    json_t *params = json_pack("{s:s, s:I}", "name", c->fn, "input", (json_int_t)iters);
    cbx_result r;
    cbx_runtime_execute(c->rt,
                        &(cbx_request){.executor = "function",
                                       .params = params,
                                       .on_chunk = c->consumer ? on_chunk : NULL},
                        &r, NULL);
    if (r.status != CBX_STATUS_SUCCESS || (c->consumer && delivered != iters))
        printf("# FAIL\tstream: %s ended %s with %llu of %llu chunks: %s\n", c->fn,
               cbx_status_name(r.status), (unsigned long long)delivered, (unsigned long long)iters,
               r.error);
    cbx_result_clear(&r);
    json_decref(params);
}

static void run_case(const bench_args *a, const char *name, const char *fn, int consumer)
{
    cbx_registry *reg = NULL;
    cbx_runtime *rt = NULL;
    cbx_err err;
    if (cbx_registry_new(&reg, &err) != 0 ||
        cbx_function_register(reg, "gen", &(cbx_function_def){.next = gen_next}, &err) != 0 ||
        cbx_function_register(
            reg, "burst", &(cbx_function_def){.start = burst_start, .ud = &g_burst}, &err) != 0 ||
        cbx_function_register(reg, "unwanted", &(cbx_function_def){.call = unwanted_call}, &err) !=
            0 ||
        cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &err) != 0) {
        printf("# FAIL\t%s: %s\n", name, err.msg);
        return;
    }
    ctx c = {.rt = rt, .fn = fn, .consumer = consumer};
    uint64_t n = a->iters ? a->iters : 1000000;
    run_one(&c, n / 10); /* warm-up */
    uint64_t allocs0 = alloc_count_total();
    run_one(&c, n);
    double allocs = (double)(alloc_count_total() - allocs0) / (double)n;
    double ns = bench_best_ns(run_one, &c, n, a->runs, 0);
    bench_emit(name, ns, allocs, n);
    printf("# note\t%s: %.1f M chunks/s\n", name, 1e3 / ns);
    cbx_runtime_free(rt);
    cbx_function_unregister_all(reg);
    cbx_registry_free(reg);
}

static void pool(const bench_args *a, const char *name)
{
    run_case(a, name, "gen", 1);
}

static void loop_thread(const bench_args *a, const char *name)
{
    run_case(a, name, "burst", 1);
}

static void unwanted(const bench_args *a, const char *name)
{
    run_case(a, name, "unwanted", 0);
}

int main(int argc, char **argv)
{
    static const bench_case cases[] = {
        {"stream.chunk.pool", pool},
        {"stream.chunk.loop", loop_thread},
        {"stream.emit.unwanted", unwanted},
    };
    return bench_main(argc, argv, "bench_stream", cases, sizeof cases / sizeof cases[0],
                      alloc_count_selftest);
}
