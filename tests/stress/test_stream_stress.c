/* Streaming under load: many executions of a generator function emitting from pool threads at
 * once, each with a small chunk queue and a consumer that pauses and resumes at random, some
 * cancelled or timed out in mid-stream, on two runtimes on threads of their own. Every
 * execution's chunks must come in order, on its loop's thread, before its end; a successful one's
 * must all come. Under TSan the queue's hand-over between threads shows no race. */
#include "stress/stress.h"

#include "cbx/function.h"
#include "cbx/journal.h"
#include "cbx/runtime.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define THREADS 2
#define EXECS   150 /* per thread */

static int gen_next(const json_t *input, json_t **chunk, void **iter, cbx_task *t, void *ud)
{
    (void)t;
    (void)ud;
    intptr_t i = (intptr_t)*iter;
    if (!chunk || i >= json_integer_value(input))
        return 0;
    *iter = (void *)(i + 1);
    *chunk = (i % 7 == 3) ? json_pack("{s:I}", "i", (json_int_t)i) : json_sprintf("%d", (int)i);
    return 1;
}

typedef struct one {
    cbx_runtime *rt;
    pthread_t loop_thread;
    cbx_execution *ex;
    int n;            /* chunks to yield */
    int pause_at;     /* 0: never */
    int cancel_at;    /* 0: never */
    uint32_t attempt; /* of the chunks seen */
    uint64_t next_seq, seen;
    int done, bad;
    cbx_status status;
    uv_timer_t resume;
    int resume_on;
} one;

static void on_resume(uv_timer_t *h)
{
    one *o = h->data;
    if (!o->done)
        cbx_execution_stream_resume(o->ex);
}

static int on_chunk(cbx_execution *ex, const cbx_chunk *c, void *ud)
{
    one *o = ud;
    if (o->done || !pthread_equal(pthread_self(), o->loop_thread) || c->attempt != 1 ||
        c->seq != o->next_seq)
        o->bad = 1;
    o->next_seq = c->seq + 1;
    o->seen++;
    if (o->cancel_at && o->seen == (uint64_t)o->cancel_at)
        cbx_runtime_cancel(o->rt, ex);
    if (o->pause_at && o->seen % (uint64_t)o->pause_at == 0) {
        uv_timer_start(&o->resume, on_resume, (uint64_t)(o->seen % 3), 0);
        return CBX_CHUNK_PAUSE;
    }
    return CBX_CHUNK_MORE;
}

static void on_done(cbx_execution *ex, const cbx_result *r, void *ud)
{
    (void)ex;
    one *o = ud;
    o->done = 1;
    o->status = r->status;
    if (r->status == CBX_STATUS_SUCCESS &&
        (o->seen != (uint64_t)o->n ||
         json_integer_value(json_object_get(r->outputs, "chunks")) != o->n))
        o->bad = 2;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    cbx_registry *reg = NULL;
    cbx_journal *j = NULL;
    cbx_runtime *rt = NULL;
    cbx_err err;
    CHECK(cbx_registry_new(&reg, &err) == 0);
    CHECK(cbx_journal_open(&j, &(cbx_journal_opts){.path = ":memory:"}, &err) == 0, "%s", err.msg);
    char name[32];
    snprintf(name, sizeof name, "gen%u", seed);
    CHECK(cbx_function_register(reg, name, &(cbx_function_def){.next = gen_next}, &err) == 0, "%s",
          err.msg);
    CHECK(cbx_runtime_new(&rt,
                          &(cbx_runtime_opts){.registry = reg, .journal = j, .max_concurrent = 16},
                          &err) == 0);
    one *all = calloc(EXECS, sizeof *all);
    CHECK(all);
    for (int i = 0; i < EXECS; i++) {
        one *o = &all[i];
        o->rt = rt;
        o->loop_thread = pthread_self();
        o->n = (int)(rand_r(&seed) % 300);
        o->pause_at = rand_r(&seed) % 3 ? (int)(rand_r(&seed) % 20) : 0;
        o->cancel_at =
            rand_r(&seed) % 5 == 0 && o->n ? 1 + (int)(rand_r(&seed) % (unsigned)o->n) : 0;
        uint64_t timeout = rand_r(&seed) % 6 == 0 ? 2000000 : 0;
        uv_timer_init(cbx_runtime_loop(rt), &o->resume);
        o->resume.data = o;
        json_t *params = json_pack("{s:s, s:i}", "name", name, "input", o->n);
        cbx_request req = {.executor = "function",
                           .params = params,
                           .timeout_ns = timeout,
                           .on_done = on_done,
                           .ud = o,
                           .on_chunk = on_chunk,
                           .chunk_ud = o,
                           .chunk_queue = 1 + rand_r(&seed) % 8};
        CHECK(cbx_runtime_submit(rt, &req, &o->ex, NULL) == 0);
        json_decref(params);
    }
    cbx_runtime_run(rt);
    int ok = 0;
    for (int i = 0; i < EXECS; i++) {
        one *o = &all[i];
        CHECK(o->done, "execution %d never ended", i);
        CHECK(!o->bad, "execution %d: chunks out of order, late or missing (%d): %llu of %d", i,
              o->bad, (unsigned long long)o->seen, o->n);
        ok += o->status == CBX_STATUS_SUCCESS;
        uv_close((uv_handle_t *)&o->resume, NULL);
    }
    CHECK(ok > EXECS / 3, "only %d of %d succeeded", ok, EXECS);
    cbx_runtime_free(rt);
    free(all);
    cbx_function_unregister_all(reg);
    cbx_registry_free(reg);
    cbx_journal_close(j);
    return NULL;
}

int main(void)
{
    pthread_t th[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)(i + 1)) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    printf("ok: %d streaming executions on %d runtimes\n", THREADS * EXECS, THREADS);
    return 0;
}
