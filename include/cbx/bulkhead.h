/* cbx/bulkhead.h - a thread-safe bulkhead: a cap on concurrent calls, with a bounded FIFO
 * queue of callers waiting for a slot.
 *
 * A bulkhead has max_concurrent slots. A caller takes a slot before its call and gives it
 * back with cbx_bulkhead_leave() after. When every slot is taken, a caller may wait in the
 * queue (at most max_queued callers, each for at most its own wait limit); when the queue is
 * full, or the caller will not wait, it is refused at once with CBX_EBULKHEAD_FULL.
 *
 * Fairness: the queue is strictly first in, first out, and there is no barging. A slot that
 * is given back while callers wait is handed straight to the oldest waiter (it never becomes
 * free in between), and a newcomer never takes a slot while anyone waits. So while the queue
 * is not empty, every slot is taken.
 *
 * Two kinds of waiter share the one queue:
 *   - synchronous: cbx_bulkhead_enter() blocks the calling thread until it has a slot or its
 *     wait ends (CBX_EQUEUE_TIMEOUT);
 *   - asynchronous (for an event loop): cbx_bulkhead_enter_async() queues a caller-owned
 *     cbx_bulkhead_waiter with a callback, and returns at once. The callback later says
 *     "granted" (rc 0) or "timed out" (rc CBX_EQUEUE_TIMEOUT). The owner calls
 *     cbx_bulkhead_expire() from a timer to deliver timeouts; it returns when to call again.
 *
 * A waiter whose deadline has passed is never handed a slot: cbx_bulkhead_leave() first times
 * out the expired waiters at the head of the queue (sync and async), then hands the slot on.
 *
 * Time comes from the cbx_clock in the options: waits use cbx_clock_wait(), so on a virtual
 * clock a blocked thread's wait ends when the test advances the clock past its deadline.
 *
 * Every call takes one internal mutex for a few instructions (sync waiters sleep on a
 * condition variable, without the mutex); none allocates.
 *
 * Text form (policy block, see docs/ratelimit-bulkhead.md):
 *     bulkhead: {max_concurrent: 8, max_queued: 16, queue_timeout: 2s}
 */
#ifndef CBX_BULKHEAD_H
#define CBX_BULKHEAD_H

#include <stdint.h>

#include "cbx/clock.h"
#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_bulkhead cbx_bulkhead;

/* max_wait_ns meaning "no limit of the caller's own" (the queue_timeout option still
 * applies), and the "no deadline" answer of cbx_bulkhead_expire. */
#define CBX_BULKHEAD_FOREVER UINT64_MAX

typedef struct cbx_bulkhead_opts {
    uint32_t max_concurrent;   /* slots; required, >= 1 */
    uint32_t max_queued;       /* callers that may wait for a slot; 0 = no queue: refuse at
                                  once when every slot is taken */
    uint64_t queue_timeout_ns; /* longest wait in the queue for anyone; 0 = no limit of its own
                                  (each caller's max_wait_ns decides) */
    cbx_clock *clock;          /* borrowed, must outlive the bulkhead; NULL = monotonic clock */
} cbx_bulkhead_opts;

/* A snapshot. Counters are cumulative since creation. Every enter call ends in exactly one
 * of admitted, rejected, timed_out or cancelled, or is still queued, so at any moment
 *     calls == admitted + rejected + timed_out + cancelled + queued. */
typedef struct cbx_bulkhead_stats {
    uint32_t active;                     /* slots taken now */
    uint32_t queued;                     /* callers waiting now (sync and async) */
    uint32_t max_active;                 /* highest active seen */
    uint32_t max_concurrent, max_queued; /* as configured */
    uint64_t queue_timeout_ns;           /* as configured */
    uint64_t admitted;                   /* slots granted: at once, or handed over to a waiter */
    uint64_t rejected;                   /* refused at once with CBX_EBULKHEAD_FULL */
    uint64_t timed_out;                  /* waits that ended with CBX_EQUEUE_TIMEOUT */
    uint64_t cancelled; /* async waits withdrawn by cbx_bulkhead_cancel_wait or at free */
} cbx_bulkhead_stats;

typedef struct cbx_bulkhead_waiter cbx_bulkhead_waiter;

/* Tells an async waiter how its wait ended: rc 0 = it holds a slot now (leave it when done);
 * CBX_EQUEUE_TIMEOUT = its wait expired; CBX_ECANCELLED = the bulkhead was freed while it
 * waited. Called exactly once per wait that cbx_bulkhead_enter_async queued (returned
 * -EINPROGRESS), unless cbx_bulkhead_cancel_wait withdrew it (returned 0).
 *
 * Called without the bulkhead's lock, on the thread of whichever call ended the wait:
 * cbx_bulkhead_leave (grant, or timeout of an expired waiter), cbx_bulkhead_expire,
 * cbx_bulkhead_enter / _enter_async (timeouts swept to make room in a full queue), or
 * cbx_bulkhead_free. An event loop that wants callbacks on its own thread forwards them (e.g.
 * with uv_async_send). The callback may call any bulkhead function except cbx_bulkhead_free
 * (with rc CBX_ECANCELLED: none at all, the bulkhead is going away), and may free or reuse w:
 * the bulkhead no longer refers to it. */
typedef void (*cbx_bulkhead_granted_fn)(cbx_bulkhead_waiter *w, int rc, void *ud);

/* An async waiter: memory owned by the caller (embed it in the request), which must stay
 * valid and untouched from a cbx_bulkhead_enter_async that returned -EINPROGRESS until the
 * callback has returned or cbx_bulkhead_cancel_wait returned 0. Zero it before its first use
 * (= {0}, calloc or memset); after that it may be reused for wait after wait as it is. */
struct cbx_bulkhead_waiter {
    /* The wait's deadline on the bulkhead's clock, set by cbx_bulkhead_enter_async when it
     * queues the waiter; CBX_BULKHEAD_FOREVER = none. The owner may read it (to arm a timer
     * for cbx_bulkhead_expire) and must not write it. */
    uint64_t deadline_ns;
    struct {
        cbx_bulkhead_waiter *next, *prev;
        cbx_bulkhead *bh;
        cbx_bulkhead_granted_fn granted;
        void *ud;
        int state;
        int rc;
    } priv; /* the bulkhead's bookkeeping: do not touch */
};

/* Create a bulkhead. Options are copied (the clock is borrowed). Returns 0 and *out (free
 * with cbx_bulkhead_free), or:
 *   CBX_EINVAL_CONFIG  o is NULL, or max_concurrent is 0 (err->where = "max_concurrent");
 *   -EINVAL            out is NULL;
 *   -ENOMEM, or another -errno from creating the mutex or condition variable.
 * err may be NULL. */
int cbx_bulkhead_new(cbx_bulkhead **out, const cbx_bulkhead_opts *o, cbx_err *err);

/* Release a bulkhead. NULL is accepted. Async waiters still queued get their callback with
 * CBX_ECANCELLED (on this thread, before it returns). No thread may be inside
 * cbx_bulkhead_enter, and no other thread may use the bulkhead. Slots still held are simply
 * forgotten. */
void cbx_bulkhead_free(cbx_bulkhead *bh);

/* Take a slot if one is free and nobody waits; never waits. Returns 0 (the caller holds a
 * slot and must cbx_bulkhead_leave it) or CBX_EBULKHEAD_FULL. */
int cbx_bulkhead_try_enter(cbx_bulkhead *bh);

/* Take a slot, waiting for one if need be. The wait limit is the smaller of max_wait_ns and
 * the queue_timeout option (each: 0 in the option or CBX_BULKHEAD_FOREVER here = no limit).
 * Returns:
 *   0                   the caller holds a slot (at once, or handed over in FIFO order);
 *   CBX_EBULKHEAD_FULL  at once, when every slot is taken and the queue is full, there is
 *                       no queue (max_queued 0), or the wait limit is 0 (so max_wait_ns 0
 *                       is exactly cbx_bulkhead_try_enter);
 *   CBX_EQUEUE_TIMEOUT  the wait limit passed without a slot.
 * Blocks the calling thread (use cbx_bulkhead_enter_async on an event loop). */
int cbx_bulkhead_enter(cbx_bulkhead *bh, uint64_t max_wait_ns);

/* Give back a slot taken by any enter call (or granted to an async waiter). If callers wait,
 * the slot goes straight to the oldest one whose deadline has not passed. Returns 0, or
 * -EINVAL when no slot is taken (more leaves than enters; nothing changes). */
int cbx_bulkhead_leave(cbx_bulkhead *bh);

/* The non-blocking enter, for an event loop. Returns:
 *   0                   a slot was free: the caller holds it now; w is not used and granted
 *                       will not be called;
 *   -EINPROGRESS        w is queued; granted(w, rc, ud) will be called exactly once, later
 *                       (never from inside this call), unless cbx_bulkhead_cancel_wait
 *                       withdraws it. w->deadline_ns tells when the wait expires;
 *   CBX_EBULKHEAD_FULL  refused at once, as for cbx_bulkhead_enter;
 *   -EINVAL             w or granted is NULL, or w is already queued.
 * The wait limit is as for cbx_bulkhead_enter. A timeout is delivered by the next
 * cbx_bulkhead_expire (or cbx_bulkhead_leave) at or after w->deadline_ns. */
int cbx_bulkhead_enter_async(cbx_bulkhead *bh, cbx_bulkhead_waiter *w, uint64_t max_wait_ns,
                             cbx_bulkhead_granted_fn granted, void *ud);

/* Withdraw a queued async waiter. Returns 0 when w was waiting: it is out of the queue, its
 * callback will not be called, and w is the caller's again. Returns -ENOENT when w is not
 * waiting in this bulkhead: its wait has already ended, so its callback has run, is running
 * or is about to run on another thread; if that callback says rc 0, the slot is the
 * caller's to leave. */
int cbx_bulkhead_cancel_wait(cbx_bulkhead *bh, cbx_bulkhead_waiter *w);

/* Time out every async waiter whose deadline is at or before now: each is removed from the
 * queue and its callback is called with CBX_EQUEUE_TIMEOUT (on this thread, after the lock is
 * released, in queue order). Returns the earliest deadline among the async waiters still
 * queued, or CBX_BULKHEAD_FOREVER when there is none: the time to call again. (Synchronous
 * waiters keep their own time and need no expire calls.) */
uint64_t cbx_bulkhead_expire(cbx_bulkhead *bh);

/* Fill *out with a consistent snapshot (taken under the lock). */
void cbx_bulkhead_stats_get(cbx_bulkhead *bh, cbx_bulkhead_stats *out);

#ifdef __cplusplus
}
#endif
#endif
