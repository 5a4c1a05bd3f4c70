/* Sliding windows over calls and over time for the breaker's rate rules. */
#include "resilience/breaker_window.h"

#include <errno.h>
#include <stdlib.h>

int cbx__count_window_init(cbx__count_window *w, uint32_t size)
{
    w->size = size;
    atomic_init(&w->n, 0);
    atomic_init(&w->failures, 0);
    atomic_init(&w->slow, 0);
    w->ring = NULL;
    if (size == 0)
        return 0;
    w->ring = calloc(size, sizeof *w->ring);
    return w->ring ? 0 : -ENOMEM;
}

void cbx__count_window_destroy(cbx__count_window *w)
{
    free((void *)w->ring);
    w->ring = NULL;
}

void cbx__count_window_reset(cbx__count_window *w)
{
    for (uint32_t i = 0; i < w->size; i++)
        atomic_store_explicit(&w->ring[i], 0, memory_order_relaxed);
    atomic_store_explicit(&w->failures, 0, memory_order_relaxed);
    atomic_store_explicit(&w->slow, 0, memory_order_relaxed);
    atomic_store_explicit(&w->n, 0, memory_order_release);
}

static uint32_t delta_of(unsigned now_bits, unsigned old_bits, unsigned bit)
{
    return (uint32_t)((now_bits & bit) != 0) - (uint32_t)((old_bits & bit) != 0);
}

cbx__win_totals cbx__count_window_add(cbx__count_window *w, unsigned bits)
{
    uint64_t i = atomic_fetch_add_explicit(&w->n, 1, memory_order_relaxed);
    unsigned old =
        atomic_exchange_explicit(&w->ring[i % w->size], (uint8_t)bits, memory_order_relaxed);
    /* Unsigned wrap-around makes -1 work as a decrement. */
    uint32_t df = delta_of(bits, old, CBX__WIN_FAIL), ds = delta_of(bits, old, CBX__WIN_SLOW);
    uint32_t f = df ? atomic_fetch_add_explicit(&w->failures, df, memory_order_relaxed) + df
                    : atomic_load_explicit(&w->failures, memory_order_relaxed);
    uint32_t s = ds ? atomic_fetch_add_explicit(&w->slow, ds, memory_order_relaxed) + ds
                    : atomic_load_explicit(&w->slow, memory_order_relaxed);
    uint64_t calls = i + 1 < w->size ? i + 1 : w->size;
    return (cbx__win_totals){(uint32_t)calls, f, s};
}

cbx__win_totals cbx__count_window_totals(cbx__count_window *w)
{
    uint64_t n = atomic_load_explicit(&w->n, memory_order_relaxed);
    return (cbx__win_totals){(uint32_t)(n < w->size ? n : w->size),
                             atomic_load_explicit(&w->failures, memory_order_relaxed),
                             atomic_load_explicit(&w->slow, memory_order_relaxed)};
}

int cbx__time_window_init(cbx__time_window *w, uint64_t length_ns, uint32_t buckets)
{
    w->buckets = buckets;
    w->bucket_ns = buckets ? length_ns / buckets : 0;
    w->ring = NULL;
    int r = pthread_mutex_init(&w->roll, NULL);
    if (r)
        return -r;
    if (buckets == 0)
        return 0;
    w->ring = calloc(buckets, sizeof *w->ring);
    if (!w->ring)
        return -ENOMEM;
    cbx__time_window_reset(w);
    return 0;
}

void cbx__time_window_destroy(cbx__time_window *w)
{
    free(w->ring);
    w->ring = NULL;
    pthread_mutex_destroy(&w->roll);
}

static void bucket_clear(cbx__time_bucket *b, uint64_t epoch)
{
    atomic_store_explicit(&b->calls, 0, memory_order_relaxed);
    atomic_store_explicit(&b->failures, 0, memory_order_relaxed);
    atomic_store_explicit(&b->slow, 0, memory_order_relaxed);
    atomic_store_explicit(&b->epoch, epoch, memory_order_release);
}

void cbx__time_window_reset(cbx__time_window *w)
{
    pthread_mutex_lock(&w->roll);
    for (uint32_t i = 0; i < w->buckets; i++)
        bucket_clear(&w->ring[i], UINT64_MAX);
    pthread_mutex_unlock(&w->roll);
}

cbx__win_totals cbx__time_window_add(cbx__time_window *w, uint64_t now_ns, unsigned bits)
{
    uint64_t epoch = now_ns / w->bucket_ns;
    cbx__time_bucket *b = &w->ring[epoch % w->buckets];
    if (atomic_load_explicit(&b->epoch, memory_order_acquire) != epoch) {
        pthread_mutex_lock(&w->roll);
        if (atomic_load_explicit(&b->epoch, memory_order_relaxed) != epoch)
            bucket_clear(b, epoch);
        pthread_mutex_unlock(&w->roll);
    }
    atomic_fetch_add_explicit(&b->calls, 1, memory_order_relaxed);
    if (bits & CBX__WIN_FAIL)
        atomic_fetch_add_explicit(&b->failures, 1, memory_order_relaxed);
    if (bits & CBX__WIN_SLOW)
        atomic_fetch_add_explicit(&b->slow, 1, memory_order_relaxed);
    return cbx__time_window_totals(w, now_ns);
}

cbx__win_totals cbx__time_window_totals(cbx__time_window *w, uint64_t now_ns)
{
    uint64_t epoch = now_ns / w->bucket_ns;
    cbx__win_totals t = {0, 0, 0};
    for (uint32_t i = 0; i < w->buckets; i++) {
        cbx__time_bucket *b = &w->ring[i];
        uint64_t e = atomic_load_explicit(&b->epoch, memory_order_acquire);
        if (e == UINT64_MAX || e > epoch || epoch - e >= w->buckets)
            continue;
        t.calls += atomic_load_explicit(&b->calls, memory_order_relaxed);
        t.failures += atomic_load_explicit(&b->failures, memory_order_relaxed);
        t.slow += atomic_load_explicit(&b->slow, memory_order_relaxed);
    }
    return t;
}
