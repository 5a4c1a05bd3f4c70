/* Partial output through the runtime (cbx_task_emit, cbx_request.on_chunk): order, back-pressure
 * against a slow consumer from a pool thread and from the loop thread, attempts and retries,
 * cancellation and timeouts while an emitter waits, and the journal's bound. Real loop, real
 * thread pool, real (in-memory) SQLite journal. */
#include "cbx/function.h"
#include "cbx/journal.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct gen_cfg {
    int count;            /* chunks to yield; < 0: forever */
    int fail_first_after; /* attempt 1 fails after this many chunks (0: never) */
    int events;           /* every other chunk is an event */
    int width;            /* pad each text chunk to this many bytes */
    atomic_int calls;     /* next() calls that yielded */
    atomic_int released;  /* calls with chunk NULL */
} gen_cfg;

static gen_cfg g_gen;
static cbx_runtime *rt;
static cbx_registry *reg;
static cbx_journal *jr;
static pthread_t loop_thread;

/* ---- what the consumer saw ---------------------------------------------------------------------
 */

typedef struct seen {
    uint64_t n;
    uint32_t attempt[4096];
    uint64_t seq[4096];
    char text[4096][16];
    int done;            /* on_done has run */
    int chunk_after;     /* a chunk came after on_done */
    int off_loop;        /* a chunk came on another thread */
    int pause_at;        /* return CBX_CHUNK_PAUSE at this chunk (1-based; 0 = never) */
    int cancel_at;       /* cancel the execution at this chunk (1-based; 0 = never) */
    int stop_at;         /* return CBX_CHUNK_STOP at this chunk */
    int calls_at_cancel; /* chunks the generator had yielded when the cancel came */
    cbx_execution *ex;   /* the execution (set by submit) */
    cbx_result res;
} seen;

static int on_chunk(cbx_execution *ex, const cbx_chunk *c, void *ud)
{
    seen *s = ud;
    if (s->done)
        s->chunk_after = 1;
    if (!pthread_equal(pthread_self(), loop_thread))
        s->off_loop = 1;
    if (s->n < 4096) {
        s->attempt[s->n] = c->attempt;
        s->seq[s->n] = c->seq;
        if (c->text)
            snprintf(s->text[s->n], sizeof s->text[0], "%.*s", (int)c->len, c->text);
        else
            snprintf(s->text[s->n], sizeof s->text[0], "ev%lld",
                     (long long)json_integer_value(json_object_get(c->event, "i")));
    }
    s->n++;
    if (s->cancel_at && s->n == (uint64_t)s->cancel_at) {
        s->calls_at_cancel = atomic_load(&g_gen.calls);
        cbx_runtime_cancel(rt, ex);
    }
    if (s->stop_at && s->n == (uint64_t)s->stop_at)
        return CBX_CHUNK_STOP;
    if (s->pause_at && s->n == (uint64_t)s->pause_at)
        return CBX_CHUNK_PAUSE;
    return CBX_CHUNK_MORE;
}

static void on_done(cbx_execution *ex, const cbx_result *r, void *ud)
{
    (void)ex;
    seen *s = ud;
    s->res = *r;
    s->res.outputs = json_incref(r->outputs);
    s->res.metadata = json_incref(r->metadata);
    s->res.attempts = json_incref(r->attempts);
    s->done = 1;
}

static void submit(const char *fn, json_t *input, cbx_policy *p, uint64_t timeout_ns,
                   uint32_t queue, seen *s)
{
    json_t *params = json_pack("{s:s, s:o}", "name", fn, "input", input ? input : json_null());
    cbx_request req = {.executor = "function",
                       .params = params,
                       .policy = p,
                       .timeout_ns = timeout_ns,
                       .on_done = on_done,
                       .ud = s,
                       .on_chunk = on_chunk,
                       .chunk_ud = s,
                       .chunk_queue = queue};
    cr_assert_eq(cbx_runtime_submit(rt, &req, &s->ex, NULL), 0);
    json_decref(params);
}

/* Turn the loop until cond(arg) holds; a generous bound of minutes, never a fixed wait. */
static void run_until(int (*cond)(void *), void *arg)
{
    for (int i = 0; i < 600000 && !cond(arg); i++) {
        uv_run(cbx_runtime_loop(rt), UV_RUN_NOWAIT);
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    cr_assert(cond(arg), "the condition never held");
}

static int is_done(void *arg)
{
    return ((seen *)arg)->done;
}

/* ---- the functions -----------------------------------------------------------------------------
 */

static int gen_next(const json_t *input, json_t **chunk, void **iter, cbx_task *t, void *ud)
{
    (void)input;
    gen_cfg *g = ud;
    intptr_t i = (intptr_t)*iter;
    if (!chunk) {
        atomic_fetch_add(&g->released, 1);
        return 0;
    }
    if (g->fail_first_after && cbx_task_attempt(t) == 1 && i == g->fail_first_after) {
        cbx_function_error(t, "attempt 1 gives up after %d chunks", g->fail_first_after);
        return -EIO;
    }
    if (g->count >= 0 && i >= g->count)
        return 0;
    atomic_fetch_add(&g->calls, 1);
    *iter = (void *)(i + 1);
    if (g->events && i % 2)
        *chunk = json_pack("{s:I}", "i", (json_int_t)i);
    else if (g->width)
        *chunk = json_sprintf("c%0*d", g->width - 1, (int)i);
    else
        *chunk = json_sprintf("c%d", (int)i);
    return 1;
}

/* An asynchronous function that emits from the loop thread, off a timer, honouring -EAGAIN. */
typedef struct loop_emitter {
    cbx_task *t;
    uv_timer_t timer;
    int i, count;
    int eagain, drains, bad;
    int timer_live;
} loop_emitter;

static loop_emitter g_le;

static void le_tick(uv_timer_t *h);

static void le_drained(cbx_task *t, void *ud)
{
    (void)t;
    loop_emitter *e = ud;
    e->drains++;
    uv_timer_start(&e->timer, le_tick, 0, 0);
}

static void le_closed(uv_handle_t *h)
{
    loop_emitter *e = h->data;
    cbx_task_done(e->t, CBX_OUTCOME_SUCCESS, json_pack("{s:i}", "emitted", e->i), NULL, NULL);
}

static void le_tick(uv_timer_t *h)
{
    loop_emitter *e = h->data;
    while (e->i < e->count) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "l%d", e->i);
        int r = cbx_task_emit(e->t, "tokens", buf, (size_t)n);
        if (r != 0 && r != -EAGAIN)
            e->bad = r; /* checked by the test, not here inside the loop */
        e->i++;
        if (r == -EAGAIN) {
            e->eagain++;
            cbx_task_on_drain(e->t, le_drained, e);
            return;
        }
    }
    uv_close((uv_handle_t *)&e->timer, le_closed);
}

static int le_start(cbx_task *t, const json_t *input, void *ud)
{
    loop_emitter *e = ud;
    memset(e, 0, sizeof *e);
    e->t = t;
    e->count = (int)json_integer_value(input);
    uv_timer_init(cbx_task_loop(t), &e->timer);
    e->timer.data = e;
    uv_timer_start(&e->timer, le_tick, 0, 0);
    return 0;
}

static void setup(void)
{
    loop_thread = pthread_self();
    cr_assert_eq(cbx_registry_new(&reg, NULL), 0);
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&jr, &(cbx_journal_opts){.path = ":memory:"}, &err), 0);
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg, .journal = jr}, NULL),
                 0);
    memset(&g_gen, 0, sizeof g_gen);
    cr_assert_eq(cbx_function_register(reg, "gen",
                                       &(cbx_function_def){.next = gen_next, .ud = &g_gen}, &err),
                 0, "%s", err.msg);
    cr_assert_eq(cbx_function_register(reg, "loop_emitter",
                                       &(cbx_function_def){.start = le_start, .ud = &g_le}, &err),
                 0, "%s", err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    cbx_function_unregister_all(reg);
    cbx_registry_free(reg);
    cbx_journal_close(jr);
}

static void seen_clear(seen *s)
{
    cbx_result_clear(&s->res);
}

TestSuite(stream, .init = setup, .fini = teardown, .timeout = 600);

/* ---- order --------------------------------------------------------------------------------------
 */

Test(stream, chunks_arrive_in_order_on_the_loop_thread_before_the_end)
{
    static seen s;
    memset(&s, 0, sizeof s);
    g_gen.count = 2000;
    g_gen.events = 1;
    submit("gen", NULL, NULL, 0, 0, &s);
    run_until(is_done, &s);
    cr_assert_eq(s.res.status, CBX_STATUS_SUCCESS, "%s", s.res.error);
    cr_assert_eq(s.n, 2000);
    cr_assert(!s.chunk_after, "a chunk came after the end");
    cr_assert(!s.off_loop, "a chunk was delivered off the loop thread");
    for (uint64_t i = 0; i < s.n; i++) {
        char want[32];
        snprintf(want, sizeof want, i % 2 ? "ev%llu" : "c%llu", (unsigned long long)i);
        cr_assert_eq(s.seq[i], i);
        cr_assert_eq(s.attempt[i], 1);
        cr_assert_str_eq(s.text[i], want);
    }
    /* the outputs join the text chunks and count them all */
    cr_assert_eq(json_integer_value(json_object_get(s.res.outputs, "chunks")), 2000);
    const char *text = json_string_value(json_object_get(s.res.outputs, "text"));
    cr_assert(text && strncmp(text, "c0c2c4", 6) == 0, "text: %.40s", text ? text : "(null)");
    seen_clear(&s);
}

Test(stream, a_retry_starts_its_chunks_again_under_its_own_attempt)
{
    static seen s;
    memset(&s, 0, sizeof s);
    g_gen.count = 3;
    g_gen.fail_first_after = 2;
    cbx_policy *p = NULL;
    json_t *block = json_pack("{s:{s:i, s:s}}", "retry", "attempts", 2, "initial", "1ms");
    cbx_err err;
    cr_assert_eq(cbx_policy_new_json(&p, block, NULL, &err), 0, "%s", err.msg);
    json_decref(block);
    submit("gen", NULL, p, 0, 0, &s);
    run_until(is_done, &s);
    cr_assert_eq(s.res.status, CBX_STATUS_SUCCESS, "%s", s.res.error);
    cr_assert_eq(s.n, 5);
    uint32_t att[] = {1, 1, 2, 2, 2};
    uint64_t seq[] = {0, 1, 0, 1, 2};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(s.attempt[i], att[i], "chunk %d: attempt %u", i, s.attempt[i]);
        cr_assert_eq(s.seq[i], seq[i]);
    }
    seen_clear(&s);
    cbx_policy_free(p);
}

/* ---- back-pressure
 * ------------------------------------------------------------------------------- */

static int calls_reached(void *arg)
{
    return atomic_load(&g_gen.calls) >= *(int *)arg;
}

Test(stream, a_paused_consumer_holds_a_pool_thread_emitter_back)
{
    static seen s;
    memset(&s, 0, sizeof s);
    g_gen.count = 200;
    s.pause_at = 1;
    submit("gen", NULL, NULL, 0, 4, &s);
    /* chunk 0 is delivered and pauses; 1..4 fill the queue; the 6th call yields chunk 5, whose
     * emit waits for room */
    int six = 6;
    run_until(calls_reached, &six);
    for (int i = 0; i < 200; i++) { /* the loop turns; the generator stays held */
        uv_run(cbx_runtime_loop(rt), UV_RUN_NOWAIT);
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(atomic_load(&g_gen.calls), 6, "the emitter ran ahead of a paused consumer: %d",
                 atomic_load(&g_gen.calls));
    cr_assert_eq(s.n, 1);
    cr_assert(!s.done);
    cbx_execution_stream_resume(s.ex);
    run_until(is_done, &s);
    cr_assert_eq(s.res.status, CBX_STATUS_SUCCESS, "%s", s.res.error);
    cr_assert_eq(s.n, 200);
    for (uint64_t i = 0; i < s.n; i++)
        cr_assert_eq(s.seq[i], i);
    seen_clear(&s);
}

static int eagain_seen(void *arg)
{
    (void)arg;
    return g_le.eagain > 0;
}

Test(stream, a_loop_thread_emitter_is_told_to_wait_and_called_back)
{
    static seen s;
    memset(&s, 0, sizeof s);
    s.pause_at = 1;
    submit("loop_emitter", json_integer(50), NULL, 0, 3, &s);
    run_until(eagain_seen, NULL);
    int at = g_le.i;
    for (int i = 0; i < 50; i++)
        uv_run(cbx_runtime_loop(rt), UV_RUN_NOWAIT);
    cr_assert_eq(g_le.i, at, "the emitter went on after -EAGAIN");
    cr_assert_eq(g_le.drains, 0, "drained while the consumer was paused");
    cbx_execution_stream_resume(s.ex);
    run_until(is_done, &s);
    cr_assert_eq(s.res.status, CBX_STATUS_SUCCESS, "%s", s.res.error);
    cr_assert_eq(s.n, 50);
    cr_assert_geq(g_le.drains, 1);
    cr_assert_eq(g_le.bad, 0, "an emit failed: %d", g_le.bad);
    for (uint64_t i = 0; i < s.n; i++) {
        char want[32];
        snprintf(want, sizeof want, "l%llu", (unsigned long long)i);
        cr_assert_str_eq(s.text[i], want);
    }
    seen_clear(&s);
}

/* ---- stopping
 * ------------------------------------------------------------------------------------ */

static int released(void *arg)
{
    (void)arg;
    return atomic_load(&g_gen.released) > 0;
}

Test(stream, a_cancel_from_the_consumer_ends_the_stream_there)
{
    static seen s;
    memset(&s, 0, sizeof s);
    g_gen.count = -1; /* forever */
    s.cancel_at = 10;
    submit("gen", NULL, NULL, 0, 8, &s);
    run_until(is_done, &s);
    cr_assert_eq(s.res.status, CBX_STATUS_CANCELLED);
    /* what was emitted before the stop is delivered, in order; nothing after it */
    cr_assert_geq(s.n, 10);
    cr_assert_leq(s.n, (uint64_t)s.calls_at_cancel, "%llu chunks delivered, %d yielded",
                  (unsigned long long)s.n, s.calls_at_cancel);
    for (uint64_t i = 0; i < s.n; i++)
        cr_assert_eq(s.seq[i], i);
    run_until(released, NULL); /* the generator was stopped and let release its state */
    seen_clear(&s);
}

Test(stream, a_timeout_wakes_an_emitter_waiting_for_room)
{
    static seen s;
    memset(&s, 0, sizeof s);
    g_gen.count = -1;
    s.pause_at = 1; /* never resumed: the generator waits in emit until the timeout */
    submit("gen", NULL, NULL, 200 * 1000000ull, 2, &s);
    run_until(is_done, &s);
    cr_assert_eq(s.res.status, CBX_STATUS_TIMEOUT);
    run_until(released, NULL);
    cr_assert_leq(atomic_load(&g_gen.calls), 4);
    seen_clear(&s);
}

Test(stream, a_consumer_that_stops_the_stream_ends_the_generator)
{
    static seen s;
    memset(&s, 0, sizeof s);
    g_gen.count = -1;
    s.stop_at = 5;
    submit("gen", NULL, NULL, 0, 4, &s);
    run_until(is_done, &s);
    cr_assert_eq(s.res.status, CBX_STATUS_SUCCESS, "%s", s.res.error);
    cr_assert_eq(s.n, 5);
    cr_assert(json_is_true(json_object_get(s.res.metadata, "stream_stopped")));
    cr_assert_eq(atomic_load(&g_gen.released), 1);
    seen_clear(&s);
}

/* ---- the journal
 * --------------------------------------------------------------------------------- */

Test(stream, the_journal_keeps_a_bounded_share_and_counts_the_rest)
{
    static seen s;
    memset(&s, 0, sizeof s);
    g_gen.count = 1000;
    g_gen.width = 100; /* 100 KB in all: more than the journal keeps */
    submit("gen", NULL, NULL, 0, 0, &s);
    run_until(is_done, &s);
    cr_assert_eq(s.res.status, CBX_STATUS_SUCCESS, "%s", s.res.error);
    cr_assert_eq(s.n, 1000);
    json_t *row = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_get(jr, s.res.id, &row, &err), 0, "%s", err.msg);
    json_t *meta = json_object_get(json_array_get(json_object_get(row, "attempts"), 0), "metadata");
    json_t *chunks = json_object_get(meta, "chunks");
    cr_assert(json_is_array(chunks), "no chunks in the journal");
    size_t kept = json_array_size(chunks), bytes = 0;
    for (size_t i = 0; i < kept; i++) {
        json_t *c = json_array_get(chunks, i);
        cr_assert_eq(json_integer_value(json_object_get(c, "seq")), (json_int_t)i);
        cr_assert_str_eq(json_string_value(json_object_get(c, "channel")), "out");
        bytes += json_string_length(json_object_get(c, "text"));
    }
    cr_assert_gt(kept, 0);
    cr_assert_leq(kept, 256);
    cr_assert_leq(bytes, 64 * 1024);
    cr_assert_eq(json_integer_value(json_object_get(meta, "chunks_dropped")),
                 (json_int_t)(1000 - kept));
    cr_assert_eq(json_integer_value(json_object_get(meta, "chunks_dropped_bytes")),
                 (json_int_t)((1000 - kept) * 100));
    /* the result itself does not carry them */
    cr_assert_null(json_object_get(s.res.metadata, "chunks"));
    json_decref(row);
    seen_clear(&s);
}

Test(stream, nobody_listening_costs_an_emit_nothing)
{
    cbx_runtime *bare = NULL;
    cr_assert_eq(cbx_runtime_new(&bare, &(cbx_runtime_opts){.registry = reg}, NULL), 0);
    g_gen.count = 100;
    json_t *params = json_pack("{s:s}", "name", "gen");
    cbx_result r;
    cbx_runtime_execute(bare, &(cbx_request){.executor = "function", .params = params}, &r, NULL);
    cr_assert_eq(r.status, CBX_STATUS_SUCCESS, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "chunks")), 100);
    cbx_result_clear(&r);
    json_decref(params);
    cbx_runtime_free(bare);
}

Test(stream, an_emitter_that_never_stops_leaves_the_loop_its_timers)
{
    static seen s;
    memset(&s, 0, sizeof s);
    g_gen.count = -1; /* forever, as fast as the consumer takes them */
    submit("gen", NULL, NULL, 100 * 1000000ull, 0, &s);
    run_until(is_done, &s);
    cr_assert_eq(s.res.status, CBX_STATUS_TIMEOUT, "%s", cbx_status_name(s.res.status));
    cr_assert_gt(s.n, 0);
    for (uint64_t i = 0; i < s.n && i < 4096; i++)
        cr_assert_eq(s.seq[i], i);
    run_until(released, NULL);
    seen_clear(&s);
}
