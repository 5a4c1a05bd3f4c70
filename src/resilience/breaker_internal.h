/* What other parts of libcbx may know about a breaker beyond its public header. */
#ifndef CBX_RESILIENCE_BREAKER_INTERNAL_H
#define CBX_RESILIENCE_BREAKER_INTERNAL_H

#include "cbx/breaker.h"

#include "resilience/breaker_window.h"
#include "resilience/latency_hist.h"

#include <pthread.h>
#include <stdatomic.h>

/* The breaker's layout, shared by breaker.c (the state machine) and the code that saves and
 * loads a breaker's state for stores shared between processes. */
/* word: gen << 32 | mode << 2 | state */
#define W_STATE(w)               ((cbx_breaker_state)((w)&3u))
#define W_MODE(w)                ((cbx_breaker_mode)(((w) >> 2) & 7u))
#define W_GEN(w)                 ((uint32_t)((w) >> 32))
#define W_MAKE(gen, mode, state) (((uint64_t)(gen) << 32) | ((uint64_t)(mode) << 2) | (state))
#define W_LOW_BITS               0x1fu
#define W_CLOSED_NORMAL          ((CBX_BREAKER_NORMAL << 2) | CBX_BREAKER_CLOSED)

/* The last value of cbx_breaker_reason (a saved state's trip reason is checked against it). */
#define CBX__BREAKER_REASON_LAST CBX_BREAKER_REASON_PREDICATE

#define PPM 1000000u
/* How many recent lease serials are remembered as expired, to tell a late report apart. */
#define CBX__EXPIRED_MEMORY 256u
#define MAX_EVENTS          4

typedef struct probe_slot {
    uint64_t deadline_ns;
    uint32_t lease; /* 0 = free */
} probe_slot;

typedef struct trip_info {
    cbx_breaker_reason reason;
    uint32_t consecutive;
    cbx__win_totals window;
} trip_info;

struct cbx_breaker {
    /* Read on every call. */
    _Atomic uint64_t word;
    _Atomic uint64_t open_until_ns;
    cbx_clock *clock;
    uint32_t consecutive_limit;
    uint32_t failure_mask;
    uint64_t slow_call_ns;
    double quality_threshold;
    uint32_t cw_min_calls, cw_fail_ppm, cw_slow_ppm;
    uint32_t tw_min_calls, tw_fail_ppm, tw_slow_ppm;
    int has_count_window, has_time_window;
    cbx_breaker_classify_fn classify_fn;
    void *classify_ud;
    cbx_breaker_trip_fn trip_fn;
    void *trip_ud;

    /* Written on every call: a line of its own, away from the read-mostly fields. */
    _Alignas(64) _Atomic uint32_t consecutive;
    _Atomic uint64_t by_kind[CBX_OUTCOME__COUNT];
    _Atomic uint64_t failures, ignored, slow_calls, rejections;
    cbx__count_window cw;
    cbx__time_window tw;
    cbx__hist hist;

    /* Under mu. */
    _Alignas(64) pthread_mutex_t mu;
    uint64_t open_ns, open_max_ns, probe_lease_ns;
    double open_multiplier;
    uint32_t max_probes, close_after;
    uint64_t half_open_max_ns;
    int judge_rate;
    uint32_t ho_fail_ppm, ho_slow_ppm;
    uint64_t state_since_ns;
    uint32_t reopens, probe_successes, probes_in_flight, lease_serial;
    cbx__win_totals probe_tally; /* JUDGE_RATE: the probes reported in this half-open period */
    probe_slot probes[CBX_BREAKER_MAX_PROBES];
    uint32_t expired_leases[CBX__EXPIRED_MEMORY]; /* at serial % size: the serial, if expired */
    trip_info trip;
    _Atomic uint64_t expired_probes, late_results, opens;

    cbx_breaker_event_fn on_event;
    void *event_ud;
    cbx_breaker_open_fn open_fn;
    void *open_ud;
    char *name;
};

/* The clock the breaker reads (borrowed; NULL means monotonic). */
cbx_clock *cbx__breaker_clock(const cbx_breaker *b);

/* ---- state persistence (breaker_state.c) -------------------------------------------------
 * A breaker's whole dynamic state as plain little-endian bytes: the word, open time, counters,
 * probe leases, trip, latency histogram and windows. The configuration is not saved; a record
 * carries a fingerprint of the configuration's shape (window sizes, time buckets, probe slots)
 * and only a breaker of the same shape loads it. The caller holds the breaker exclusively (no
 * other thread uses it) during save and load. */

/* The most bytes a save of this breaker can write. */
size_t cbx__breaker_state_size(const cbx_breaker *b);

/* Write the state into buf. Returns the bytes written, or -ENOSPC when len is less than
 * cbx__breaker_state_size(b). */
int cbx__breaker_state_save(cbx_breaker *b, void *buf, size_t len);

/* Replace b's state by the saved one. Returns 0, or CBX_EPARSE when the record is damaged or
 * was saved by a breaker of another shape; b is then left as it was. */
int cbx__breaker_state_load(cbx_breaker *b, const void *buf, size_t len);

/* A 64-bit value that changes whenever the state changes (all but certainly: it is a hash),
 * cheap next to a save; a store compares it before and after an operation to skip saving a
 * state that did not change. */
uint64_t cbx__breaker_state_stamp(cbx_breaker *b);

#endif
