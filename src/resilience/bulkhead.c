/* The bulkhead: slots, a FIFO queue of sync and async waiters, hand-over on leave. */
#include "cbx/bulkhead.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

enum {
    WAIT_IDLE = 0, /* not in any queue; an async waiter whose wait ended */
    WAIT_QUEUED,
    WAIT_GRANTED,   /* sync waiters only: the slot was handed over */
    WAIT_TIMED_OUT, /* sync waiters only: timed out by another thread's sweep */
};

struct cbx_bulkhead {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* sync waiters sleep here; broadcast when one of them is settled */
    cbx_clock *clock;
    uint32_t max_concurrent;
    uint32_t max_queued;
    uint64_t queue_timeout_ns;
    /* Everything below is guarded by mu. */
    uint32_t active;
    uint32_t queued;
    uint32_t max_active;
    cbx_bulkhead_waiter *head, *tail;
    uint64_t admitted, rejected, timed_out, cancelled;
};

/* Async waiters whose callbacks are due, chained through priv.next once out of the queue. */
typedef struct due_list {
    cbx_bulkhead_waiter *first, *last;
} due_list;

static void due_push(due_list *d, cbx_bulkhead_waiter *w, int rc)
{
    w->priv.rc = rc;
    w->priv.next = NULL;
    w->priv.prev = NULL;
    if (d->last)
        d->last->priv.next = w;
    else
        d->first = w;
    d->last = w;
}

/* Call the due callbacks; the lock must not be held. Each node is read before its callback
 * runs, because the callback may free or reuse it. */
static void due_deliver(due_list *d)
{
    cbx_bulkhead_waiter *w = d->first;
    while (w) {
        cbx_bulkhead_waiter *next = w->priv.next;
        cbx_bulkhead_granted_fn fn = w->priv.granted;
        void *ud = w->priv.ud;
        int rc = w->priv.rc;
        fn(w, rc, ud);
        w = next;
    }
    d->first = d->last = NULL;
}

static void queue_append(cbx_bulkhead *bh, cbx_bulkhead_waiter *w)
{
    w->priv.next = NULL;
    w->priv.prev = bh->tail;
    if (bh->tail)
        bh->tail->priv.next = w;
    else
        bh->head = w;
    bh->tail = w;
    w->priv.bh = bh;
    w->priv.state = WAIT_QUEUED;
    bh->queued++;
}

static void queue_unlink(cbx_bulkhead *bh, cbx_bulkhead_waiter *w)
{
    if (w->priv.prev)
        w->priv.prev->priv.next = w->priv.next;
    else
        bh->head = w->priv.next;
    if (w->priv.next)
        w->priv.next->priv.prev = w->priv.prev;
    else
        bh->tail = w->priv.prev;
    w->priv.next = w->priv.prev = NULL;
    bh->queued--;
}

/* 1 if w waits in bh's queue. A waiter starts zeroed (WAIT_IDLE) and its state is kept up
 * to date under the lock, so the state says it. */
static int queue_holds(const cbx_bulkhead *bh, const cbx_bulkhead_waiter *w)
{
    return w->priv.state == WAIT_QUEUED && w->priv.bh == bh;
}

/* End the wait of a queued waiter that timed out: async ones join the due list, sync ones are
 * marked for their thread to find. Returns 1 when a sync waiter must be woken. */
static int time_out(cbx_bulkhead *bh, cbx_bulkhead_waiter *w, due_list *due)
{
    queue_unlink(bh, w);
    bh->timed_out++;
    if (w->priv.granted) {
        w->priv.state = WAIT_IDLE;
        due_push(due, w, CBX_EQUEUE_TIMEOUT);
        return 0;
    }
    w->priv.state = WAIT_TIMED_OUT;
    return 1;
}

/* Time out every waiter whose deadline is at or before now. Returns 1 when a sync waiter
 * must be woken. */
static int sweep_expired(cbx_bulkhead *bh, uint64_t now, due_list *due)
{
    int wake = 0;
    cbx_bulkhead_waiter *w = bh->head;
    while (w) {
        cbx_bulkhead_waiter *next = w->priv.next;
        if (w->deadline_ns <= now)
            wake |= time_out(bh, w, due);
        w = next;
    }
    return wake;
}

static void take_slot(cbx_bulkhead *bh)
{
    bh->active++;
    bh->admitted++;
    if (bh->active > bh->max_active)
        bh->max_active = bh->active;
}

/* The wait limit of one caller: the smaller of its own and the option, 0 meaning none may
 * be waited for, CBX_BULKHEAD_FOREVER meaning unlimited. */
static uint64_t wait_limit(const cbx_bulkhead *bh, uint64_t max_wait_ns)
{
    if (bh->queue_timeout_ns && bh->queue_timeout_ns < max_wait_ns)
        return bh->queue_timeout_ns;
    return max_wait_ns;
}

static uint64_t deadline_after(uint64_t now, uint64_t wait)
{
    if (wait == CBX_BULKHEAD_FOREVER || now > CBX_BULKHEAD_FOREVER - wait)
        return CBX_BULKHEAD_FOREVER;
    return now + wait;
}

typedef enum admit {
    ADMIT_TAKEN, /* the caller holds a slot */
    ADMIT_FULL,  /* refused (counted) */
    ADMIT_QUEUE, /* there is room in the queue: the caller may join it */
    ADMIT_RETRY, /* expired waiters were swept out and their callbacks are due: deliver them
                    without the lock, then decide again */
} admit;

/* The common front of every enter: take a free slot, refuse, or make room in the queue.
 * Called with the lock held. */
static admit admit_or_queue(cbx_bulkhead *bh, uint64_t limit, uint64_t now, due_list *due)
{
    if (bh->queued == 0 && bh->active < bh->max_concurrent) {
        take_slot(bh);
        return ADMIT_TAKEN;
    }
    if (limit == 0 || bh->max_queued == 0) {
        bh->rejected++;
        return ADMIT_FULL;
    }
    if (bh->queued >= bh->max_queued) {
        if (sweep_expired(bh, now, due))
            pthread_cond_broadcast(&bh->cond);
        if (due->first)
            return ADMIT_RETRY;
        if (bh->queued >= bh->max_queued) {
            bh->rejected++;
            return ADMIT_FULL;
        }
    }
    return ADMIT_QUEUE;
}

int cbx_bulkhead_new(cbx_bulkhead **out, const cbx_bulkhead_opts *o, cbx_err *err)
{
    if (!out)
        return cbx_err_set(err, -EINVAL, "cbx_bulkhead_new: out is NULL");
    *out = NULL;
    if (!o)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "bulkhead options are missing");
    if (o->max_concurrent == 0)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "max_concurrent", 0, 0,
                              "max_concurrent must be at least 1");

    cbx_bulkhead *bh = calloc(1, sizeof *bh);
    if (!bh)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    int r = -pthread_mutex_init(&bh->mu, NULL);
    if (r) {
        free(bh);
        return cbx_err_set(err, r, "cannot create the bulkhead mutex");
    }
    r = cbx_clock_cond_init(&bh->cond);
    if (r) {
        pthread_mutex_destroy(&bh->mu);
        free(bh);
        return cbx_err_set(err, r, "cannot create the bulkhead condition variable");
    }
    bh->clock = o->clock;
    bh->max_concurrent = o->max_concurrent;
    bh->max_queued = o->max_queued;
    bh->queue_timeout_ns = o->queue_timeout_ns;
    *out = bh;
    return 0;
}

void cbx_bulkhead_free(cbx_bulkhead *bh)
{
    if (!bh)
        return;
    due_list due = {0};
    pthread_mutex_lock(&bh->mu);
    while (bh->head) {
        cbx_bulkhead_waiter *w = bh->head;
        queue_unlink(bh, w);
        w->priv.state = WAIT_IDLE;
        if (w->priv.granted) {
            bh->cancelled++;
            due_push(&due, w, CBX_ECANCELLED);
        }
    }
    pthread_mutex_unlock(&bh->mu);
    due_deliver(&due);
    pthread_cond_destroy(&bh->cond);
    pthread_mutex_destroy(&bh->mu);
    free(bh);
}

int cbx_bulkhead_try_enter(cbx_bulkhead *bh)
{
    int rc = 0;
    pthread_mutex_lock(&bh->mu);
    if (bh->queued == 0 && bh->active < bh->max_concurrent) {
        take_slot(bh);
    } else {
        bh->rejected++;
        rc = CBX_EBULKHEAD_FULL;
    }
    pthread_mutex_unlock(&bh->mu);
    return rc;
}

int cbx_bulkhead_enter(cbx_bulkhead *bh, uint64_t max_wait_ns)
{
    uint64_t limit = wait_limit(bh, max_wait_ns);
    due_list due = {0};
    cbx_bulkhead_waiter self = {0};
    int rc;

    pthread_mutex_lock(&bh->mu);
    uint64_t now;
    admit a;
    for (;;) {
        now = cbx_clock_now_ns(bh->clock);
        a = admit_or_queue(bh, limit, now, &due);
        if (a != ADMIT_RETRY)
            break;
        pthread_mutex_unlock(&bh->mu);
        due_deliver(&due);
        pthread_mutex_lock(&bh->mu);
    }
    if (a == ADMIT_TAKEN) {
        rc = 0;
        goto out;
    }
    if (a == ADMIT_FULL) {
        rc = CBX_EBULKHEAD_FULL;
        goto out;
    }

    self.deadline_ns = deadline_after(now, limit);
    queue_append(bh, &self);
    while (self.priv.state == WAIT_QUEUED) {
        int w = cbx_clock_wait(bh->clock, &bh->cond, &bh->mu, self.deadline_ns);
        if (w == CBX_ETIMEDOUT && self.priv.state == WAIT_QUEUED)
            time_out(bh, &self, &due);
    }
    rc = self.priv.state == WAIT_GRANTED ? 0 : CBX_EQUEUE_TIMEOUT;
out:
    pthread_mutex_unlock(&bh->mu);
    return rc;
}

int cbx_bulkhead_enter_async(cbx_bulkhead *bh, cbx_bulkhead_waiter *w, uint64_t max_wait_ns,
                             cbx_bulkhead_granted_fn granted, void *ud)
{
    if (!w || !granted)
        return -EINVAL;
    uint64_t limit = wait_limit(bh, max_wait_ns);
    due_list due = {0};
    int rc;

    pthread_mutex_lock(&bh->mu);
    if (queue_holds(bh, w)) {
        pthread_mutex_unlock(&bh->mu);
        return -EINVAL;
    }
    uint64_t now;
    admit a;
    for (;;) {
        now = cbx_clock_now_ns(bh->clock);
        a = admit_or_queue(bh, limit, now, &due);
        if (a != ADMIT_RETRY)
            break;
        pthread_mutex_unlock(&bh->mu);
        due_deliver(&due);
        pthread_mutex_lock(&bh->mu);
    }
    if (a == ADMIT_TAKEN) {
        rc = 0;
    } else if (a == ADMIT_FULL) {
        rc = CBX_EBULKHEAD_FULL;
    } else {
        w->deadline_ns = deadline_after(now, limit);
        w->priv.granted = granted;
        w->priv.ud = ud;
        w->priv.rc = 0;
        queue_append(bh, w);
        rc = -EINPROGRESS;
    }
    pthread_mutex_unlock(&bh->mu);
    return rc;
}

int cbx_bulkhead_leave(cbx_bulkhead *bh)
{
    due_list due = {0};
    int wake = 0;

    pthread_mutex_lock(&bh->mu);
    if (bh->active == 0) {
        pthread_mutex_unlock(&bh->mu);
        return -EINVAL;
    }
    if (bh->head) {
        uint64_t now = cbx_clock_now_ns(bh->clock);
        while (bh->head && bh->head->deadline_ns <= now)
            wake |= time_out(bh, bh->head, &due);
    }
    cbx_bulkhead_waiter *w = bh->head;
    if (w) {
        /* Hand the slot over: active stays the same. */
        queue_unlink(bh, w);
        bh->admitted++;
        if (w->priv.granted) {
            w->priv.state = WAIT_IDLE;
            due_push(&due, w, 0);
        } else {
            w->priv.state = WAIT_GRANTED;
            wake = 1;
        }
    } else {
        bh->active--;
    }
    if (wake)
        pthread_cond_broadcast(&bh->cond);
    pthread_mutex_unlock(&bh->mu);
    due_deliver(&due);
    return 0;
}

int cbx_bulkhead_cancel_wait(cbx_bulkhead *bh, cbx_bulkhead_waiter *w)
{
    if (!w)
        return -ENOENT;
    int rc = -ENOENT;
    pthread_mutex_lock(&bh->mu);
    if (w->priv.granted && queue_holds(bh, w)) {
        queue_unlink(bh, w);
        w->priv.state = WAIT_IDLE;
        bh->cancelled++;
        rc = 0;
    }
    pthread_mutex_unlock(&bh->mu);
    return rc;
}

uint64_t cbx_bulkhead_expire(cbx_bulkhead *bh)
{
    due_list due = {0};
    uint64_t next = CBX_BULKHEAD_FOREVER;

    pthread_mutex_lock(&bh->mu);
    if (bh->head) {
        if (sweep_expired(bh, cbx_clock_now_ns(bh->clock), &due))
            pthread_cond_broadcast(&bh->cond);
        for (const cbx_bulkhead_waiter *w = bh->head; w; w = w->priv.next)
            if (w->priv.granted && w->deadline_ns < next)
                next = w->deadline_ns;
    }
    pthread_mutex_unlock(&bh->mu);
    due_deliver(&due);
    return next;
}

void cbx_bulkhead_stats_get(cbx_bulkhead *bh, cbx_bulkhead_stats *out)
{
    pthread_mutex_lock(&bh->mu);
    out->active = bh->active;
    out->queued = bh->queued;
    out->max_active = bh->max_active;
    out->max_concurrent = bh->max_concurrent;
    out->max_queued = bh->max_queued;
    out->queue_timeout_ns = bh->queue_timeout_ns;
    out->admitted = bh->admitted;
    out->rejected = bh->rejected;
    out->timed_out = bh->timed_out;
    out->cancelled = bh->cancelled;
    pthread_mutex_unlock(&bh->mu);
}
