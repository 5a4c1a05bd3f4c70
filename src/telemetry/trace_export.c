/* The span queue and the exporter's thread (cbx/trace.h): a ring of cfg.queue spans, filled by
 * cbx__span_emit under a mutex held only to copy one span in, emptied in batches of cfg.batch
 * by the thread, which encodes and POSTs them without holding it. */
#include "telemetry/trace.h"

#include "cbx/err.h"
#include "cbx/trace.h"
#include "core/log_internal.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

atomic_int cbx__trace_state;

/* How long shutdown waits, past its bound, for the exporter's thread to give up a request. */
#define CBX__TRACE_STOP_GRACE_MS 3000

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static cbx__otlp_config cfg;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv; /* the thread waits on it (CLOCK_MONOTONIC) */
static pthread_cond_t done_cv; /* flushes wait on it */
static pthread_t thread;
/* under mu */
static cbx__span *ring, *batch;
static uint32_t head, count;
static uint64_t oldest_ns;          /* CLOCK_MONOTONIC when the oldest queued span came */
static uint64_t enqueued, finished; /* spans put in the ring; spans whose request is over */
static uint64_t flush_upto;         /* send at once while finished < flush_upto */
static int stopping, stopped, warned;
static atomic_int abandon; /* shutdown's wait ran out: the request out gives up, the rest stays */
static _Atomic uint64_t n_recorded, n_exported, n_full, n_failed, n_requests;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void timed_wait(uint64_t until_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(until_ns / 1000000000ull),
                          .tv_nsec = (long)(until_ns % 1000000000ull)};
    pthread_cond_timedwait(&work_cv, &mu, &ts);
}

/* Send n spans (batch[0..n)); mu not held. */
static void send_batch(cbx__otlp_client **cl, uint32_t n)
{
    size_t len = 0;
    char why[512] = "out of memory";
    char *body = cbx__otlp_json(&cfg, batch, n, &len);
    int rc = body ? cbx__otlp_post(cl, &cfg, body, len, why, sizeof why) : -1;
    free(body);
    atomic_fetch_add(&n_requests, 1);
    if (rc == 0) {
        atomic_fetch_add(&n_exported, n);
        return;
    }
    atomic_fetch_add(&n_failed, n);
    pthread_mutex_lock(&mu);
    int first = !warned;
    warned = 1;
    pthread_mutex_unlock(&mu);
    if (first)
        CBX_LOG(CBX_LOG_WARN, "trace",
                "span export failed (%s): %u spans dropped; later failures are counted", why, n);
}

static void *exporter(void *arg)
{
    (void)arg;
    cbx__otlp_client *cl = NULL;
    pthread_mutex_lock(&mu);
    for (;;) {
        /* a batch goes when full, when its oldest span has waited the delay, when a flush
         * asks, and at the end */
        while (!stopping && count < cfg.batch && flush_upto <= finished) {
            if (count == 0)
                pthread_cond_wait(&work_cv, &mu);
            else if (mono_ns() >= oldest_ns + cfg.delay_ms * 1000000ull)
                break;
            else
                timed_wait(oldest_ns + cfg.delay_ms * 1000000ull);
        }
        if (atomic_load(&abandon))
            break;
        if (count == 0) {
            pthread_cond_broadcast(&done_cv);
            if (stopping)
                break;
            if (flush_upto > finished)
                flush_upto = finished;
            continue;
        }
        uint32_t n = count < cfg.batch ? count : cfg.batch;
        for (uint32_t i = 0; i < n; i++)
            memcpy(&batch[i], &ring[(head + i) % cfg.queue],
                   offsetof(cbx__span, text) + ring[(head + i) % cfg.queue].used);
        head = (head + n) % cfg.queue;
        count -= n;
        oldest_ns = mono_ns();
        pthread_mutex_unlock(&mu);
        send_batch(&cl, n);
        pthread_mutex_lock(&mu);
        finished += n;
        pthread_cond_broadcast(&done_cv);
    }
    pthread_mutex_unlock(&mu);
    cbx__otlp_client_free(cl); /* before saying so: exit may then tear libcurl down */
    pthread_mutex_lock(&mu);
    stopped = 1;
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void at_exit(void)
{
    cbx_trace_shutdown(0);
}

/* Started and exporting: the public calls below never start the exporter themselves. */
static int running(void)
{
    return atomic_load_explicit(&cbx__trace_state, memory_order_acquire) == 2;
}

static void init(void)
{
    int on = cbx__otlp_config_read(&cfg);
    if (on) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&work_cv, &ca);
        pthread_condattr_destroy(&ca);
        pthread_cond_init(&done_cv, NULL);
        ring = calloc(cfg.queue, sizeof *ring);
        batch = calloc(cfg.batch, sizeof *batch);
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, (size_t)256 * 1024);
        char why[300] = "out of memory";
        if (!ring || !batch || cbx__otlp_prepare(why, sizeof why) != 0 ||
            pthread_create(&thread, &a, exporter, NULL) != 0) {
            CBX_LOG(CBX_LOG_WARN, "trace",
                    "cannot start the span exporter (%s): spans are not exported", why);
            free(ring);
            free(batch);
            ring = batch = NULL;
            cbx__otlp_config_free(&cfg);
            on = 0;
        } else {
            atexit(at_exit); /* joined there, once it has stopped */
        }
        pthread_attr_destroy(&a);
    }
    atomic_store_explicit(&cbx__trace_state, on ? 2 : 1, memory_order_release);
}

int cbx__otlp_abandoned(void)
{
    return atomic_load_explicit(&abandon, memory_order_relaxed);
}

int cbx__trace_init(void)
{
    pthread_once(&init_once, init);
    return atomic_load_explicit(&cbx__trace_state, memory_order_acquire);
}

void cbx__span_emit(const cbx__span *s)
{
    if (!cbx__trace_on())
        return;
    atomic_fetch_add_explicit(&n_recorded, 1, memory_order_relaxed);
    pthread_mutex_lock(&mu);
    if (stopping || count >= cfg.queue) {
        pthread_mutex_unlock(&mu);
        atomic_fetch_add_explicit(&n_full, 1, memory_order_relaxed);
        return;
    }
    /* the header and the text in use, not the whole text buffer */
    memcpy(&ring[(head + count) % cfg.queue], s, offsetof(cbx__span, text) + s->used);
    if (count++ == 0)
        oldest_ns = mono_ns();
    enqueued++;
    if (count == 1 || count == cfg.batch)
        pthread_cond_signal(&work_cv);
    pthread_mutex_unlock(&mu);
}

int cbx_trace_enabled(void)
{
    return cbx__trace_on();
}

void cbx_trace_stats_get(cbx_trace_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!running())
        return;
    out->recorded = atomic_load(&n_recorded);
    out->exported = atomic_load(&n_exported);
    out->dropped_full = atomic_load(&n_full);
    out->dropped_failed = atomic_load(&n_failed);
    out->requests = atomic_load(&n_requests);
    pthread_mutex_lock(&mu);
    out->queued = count;
    pthread_mutex_unlock(&mu);
}

/* Ask for everything queued now to go at once and wait for it until deadline (CLOCK_REALTIME
 * timespec for done_cv); mu held. 0 or CBX_ETIMEDOUT. */
static int wait_sent(const struct timespec *deadline)
{
    uint64_t target = enqueued;
    if (flush_upto < target)
        flush_upto = target;
    pthread_cond_signal(&work_cv);
    while (finished < target && !stopped)
        if (pthread_cond_timedwait(&done_cv, &mu, deadline) == ETIMEDOUT)
            return finished < target ? CBX_ETIMEDOUT : 0;
    return 0;
}

static struct timespec deadline_in(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int cbx_trace_flush(uint64_t timeout_ms)
{
    if (!running())
        return 0;
    struct timespec dl = deadline_in(timeout_ms ? timeout_ms : cfg.timeout_ms);
    pthread_mutex_lock(&mu);
    int rc = stopping ? 0 : wait_sent(&dl);
    pthread_mutex_unlock(&mu);
    return rc;
}

void cbx_trace_shutdown(uint64_t timeout_ms)
{
    if (!running())
        return;
    struct timespec dl = deadline_in(timeout_ms ? timeout_ms : cfg.timeout_ms);
    pthread_mutex_lock(&mu);
    if (stopping) {
        pthread_mutex_unlock(&mu);
        return;
    }
    int late = wait_sent(&dl) != 0;
    stopping = 1;
    if (late) /* a request still out gives up at its next progress call (within a second) */
        atomic_store(&abandon, 1);
    pthread_cond_signal(&work_cv);
    /* the thread ends before exit tears down what it uses (libcurl, the TLS library) */
    struct timespec grace = deadline_in(CBX__TRACE_STOP_GRACE_MS);
    while (!stopped)
        if (pthread_cond_timedwait(&done_cv, &mu, &grace) == ETIMEDOUT)
            break;
    int joinable = stopped;
    uint32_t left = count;
    pthread_mutex_unlock(&mu);
    if (joinable)
        pthread_join(thread, NULL);
    uint64_t full = atomic_load(&n_full), failed = atomic_load(&n_failed);
    if (full || failed || left)
        CBX_LOG(CBX_LOG_WARN, "trace",
                "%llu of %llu spans were not exported: %llu found the queue full, %llu were in "
                "requests that failed, %u were still queued at exit",
                (unsigned long long)(full + failed + left),
                (unsigned long long)atomic_load(&n_recorded), (unsigned long long)full,
                (unsigned long long)failed, left);
}
