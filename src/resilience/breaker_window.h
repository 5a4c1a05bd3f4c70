/* The sliding windows a breaker judges rates over: the last N calls (a ring of outcome bits)
 * and the last T of time (a ring of time buckets). Both are updated lock-free by concurrent
 * recorders; a reset (when the breaker closes) runs under the breaker's mutex. */
#ifndef CBX_RESILIENCE_BREAKER_WINDOW_H
#define CBX_RESILIENCE_BREAKER_WINDOW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* What one call leaves in a window. */
#define CBX__WIN_FAIL 1u
#define CBX__WIN_SLOW 2u

/* Totals of a window at one moment. */
typedef struct cbx__win_totals {
    uint32_t calls, failures, slow;
} cbx__win_totals;

/* Last `size` calls. */
typedef struct cbx__count_window {
    uint32_t size;
    _Atomic uint64_t n; /* calls ever added since the last reset */
    _Atomic uint32_t failures, slow;
    _Atomic uint8_t *ring;
} cbx__count_window;

int cbx__count_window_init(cbx__count_window *w, uint32_t size);
void cbx__count_window_destroy(cbx__count_window *w);
void cbx__count_window_reset(cbx__count_window *w);
/* Adds one call; returns the totals just after it. */
cbx__win_totals cbx__count_window_add(cbx__count_window *w, unsigned bits);
cbx__win_totals cbx__count_window_totals(cbx__count_window *w);

typedef struct cbx__time_bucket {
    _Atomic uint64_t epoch; /* now / bucket_ns of the calls counted here; UINT64_MAX = empty */
    _Atomic uint32_t calls, failures, slow;
} cbx__time_bucket;

/* Last `buckets` buckets of bucket_ns each, the current one included. */
typedef struct cbx__time_window {
    uint32_t buckets;
    uint64_t bucket_ns;
    cbx__time_bucket *ring;
    pthread_mutex_t roll; /* serialises turning a stale bucket into the current one */
} cbx__time_window;

int cbx__time_window_init(cbx__time_window *w, uint64_t length_ns, uint32_t buckets);
void cbx__time_window_destroy(cbx__time_window *w);
void cbx__time_window_reset(cbx__time_window *w);
cbx__win_totals cbx__time_window_add(cbx__time_window *w, uint64_t now_ns, unsigned bits);
cbx__win_totals cbx__time_window_totals(cbx__time_window *w, uint64_t now_ns);

#endif
