/* The bulkhead: slots, the FIFO queue, sync and async waiters, on virtual time. */
#include "cbx/bulkhead.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

static cbx_bulkhead *bulkhead(uint32_t max_concurrent, uint32_t max_queued,
                              uint64_t queue_timeout_ns, cbx_clock *clk)
{
    cbx_bulkhead *bh = NULL;
    cbx_err e;
    int r = cbx_bulkhead_new(&bh,
                             &(cbx_bulkhead_opts){.max_concurrent = max_concurrent,
                                                  .max_queued = max_queued,
                                                  .queue_timeout_ns = queue_timeout_ns,
                                                  .clock = clk},
                             &e);
    cr_assert_eq(r, 0, "cbx_bulkhead_new: %s", e.msg);
    return bh;
}

static cbx_bulkhead_stats stats(cbx_bulkhead *bh)
{
    cbx_bulkhead_stats st;
    cbx_bulkhead_stats_get(bh, &st);
    return st;
}

/* Spin (yielding, never sleeping) until the queue holds n waiters; fail after 10 s of real
 * time so that a bug shows as a failure, not a hang. */
static void await_queued(cbx_bulkhead *bh, uint32_t n)
{
    uint64_t give_up = cbx_clock_now_ns(NULL) + 10 * CBX_NS_PER_S;
    while (stats(bh).queued != n) {
        cr_assert_lt(cbx_clock_now_ns(NULL), give_up, "queue never reached %u", n);
        sched_yield();
    }
}

/* --- async waiters that record what happened to them ------------------------------------ */

#define LOG_MAX 16

typedef struct record {
    int order[LOG_MAX]; /* waiter ids, in callback order */
    int rc[LOG_MAX];
    int n;
} record;

typedef struct tagged_waiter {
    cbx_bulkhead_waiter w; /* first, so the callback can find the tag */
    int id;
    record *log;
} tagged_waiter;

static void log_granted(cbx_bulkhead_waiter *w, int rc, void *ud)
{
    tagged_waiter *t = (tagged_waiter *)w;
    record *log = ud;
    cr_assert_eq(log, t->log);
    cr_assert_lt(log->n, LOG_MAX);
    log->order[log->n] = t->id;
    log->rc[log->n] = rc;
    log->n++;
}

static int enter_async(cbx_bulkhead *bh, tagged_waiter *t, int id, record *log, uint64_t max_wait)
{
    t->id = id;
    t->log = log;
    return cbx_bulkhead_enter_async(bh, &t->w, max_wait, log_granted, log);
}

/* --- sync waiters on threads ------------------------------------------------------------ */

typedef struct sync_caller {
    cbx_bulkhead *bh;
    cbx_clock *clk;
    uint64_t max_wait_ns;
    int rc;
    uint64_t returned_at_ns;
    pthread_t thread;
} sync_caller;

static void *sync_enter(void *arg)
{
    sync_caller *c = arg;
    c->rc = cbx_bulkhead_enter(c->bh, c->max_wait_ns);
    c->returned_at_ns = cbx_clock_now_ns(c->clk);
    return NULL;
}

static void start_sync(sync_caller *c, cbx_bulkhead *bh, cbx_clock *clk, uint64_t max_wait_ns)
{
    *c = (sync_caller){.bh = bh, .clk = clk, .max_wait_ns = max_wait_ns, .rc = 1};
    cr_assert_eq(pthread_create(&c->thread, NULL, sync_enter, c), 0);
}

static void join_sync(sync_caller *c)
{
    cr_assert_eq(pthread_join(c->thread, NULL), 0);
}

/* --- tests ------------------------------------------------------------------------------ */

Test(bulkhead, max_concurrent_is_enforced)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(2, 0, 0, clk);

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(cbx_bulkhead_try_enter(bh), CBX_EBULKHEAD_FULL);
    /* No queue: even a caller willing to wait forever is refused at once. */
    cr_assert_eq(cbx_bulkhead_enter(bh, CBX_BULKHEAD_FOREVER), CBX_EBULKHEAD_FULL);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(cbx_bulkhead_enter(bh, 0), 0);

    cbx_bulkhead_stats st = stats(bh);
    cr_assert_eq(st.active, 2);
    cr_assert_eq(st.max_active, 2);
    cr_assert_eq(st.admitted, 3);
    cr_assert_eq(st.rejected, 2);
    cr_assert_eq(st.max_concurrent, 2);

    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(cbx_bulkhead_leave(bh), -EINVAL); /* more leaves than enters */
    st = stats(bh);
    cr_assert_eq(st.active, 0);
    cr_assert_eq(st.max_active, 2);

    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

Test(bulkhead, full_queue_rejects_at_once)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(1, 2, 0, clk);
    record log = {0};
    tagged_waiter a = {0}, b = {0}, c = {0};

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(enter_async(bh, &a, 1, &log, CBX_BULKHEAD_FOREVER), -EINPROGRESS);
    cr_assert_eq(enter_async(bh, &b, 2, &log, CBX_BULKHEAD_FOREVER), -EINPROGRESS);
    cr_assert_eq(enter_async(bh, &c, 3, &log, CBX_BULKHEAD_FOREVER), CBX_EBULKHEAD_FULL);
    cr_assert_eq(cbx_bulkhead_enter(bh, CBX_BULKHEAD_FOREVER), CBX_EBULKHEAD_FULL);
    cr_assert_eq(cbx_bulkhead_try_enter(bh), CBX_EBULKHEAD_FULL);
    /* A waiter that will not wait is refused even when the queue has room. */
    cbx_bulkhead_cancel_wait(bh, &b.w);
    cr_assert_eq(enter_async(bh, &c, 3, &log, 0), CBX_EBULKHEAD_FULL);
    cr_assert_eq(cbx_bulkhead_enter(bh, 0), CBX_EBULKHEAD_FULL);
    cr_assert_eq(log.n, 0);

    cbx_bulkhead_stats st = stats(bh);
    cr_assert_eq(st.queued, 1);
    cr_assert_eq(st.rejected, 5);
    cr_assert_eq(st.cancelled, 1);
    cr_assert_eq(st.admitted, 1);

    cbx_bulkhead_free(bh); /* a is still queued: it hears CBX_ECANCELLED */
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.order[0], 1);
    cr_assert_eq(log.rc[0], CBX_ECANCELLED);
    cbx_clock_free(clk);
}

Test(bulkhead, async_waiters_are_granted_in_fifo_order_without_barging)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(2, 8, 0, clk);
    record log = {0};
    tagged_waiter w[4] = {0};

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(enter_async(bh, &w[0], 0, &log, CBX_BULKHEAD_FOREVER), 0); /* a free slot */
    for (int i = 1; i < 4; i++)
        cr_assert_eq(enter_async(bh, &w[i], i, &log, CBX_BULKHEAD_FOREVER), -EINPROGRESS);
    cr_assert_eq(log.n, 0, "a queued waiter is never called from its own enter");

    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.order[0], 1);
    cr_assert_eq(log.rc[0], 0);
    /* The slot went to waiter 1, so it is not free for a newcomer. */
    cr_assert_eq(stats(bh).active, 2);
    cr_assert_eq(cbx_bulkhead_try_enter(bh), CBX_EBULKHEAD_FULL);

    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(log.n, 3);
    cr_assert_eq(log.order[1], 2);
    cr_assert_eq(log.order[2], 3);
    cr_assert_eq(stats(bh).queued, 0);
    cr_assert_eq(stats(bh).active, 2);

    /* With the queue empty, slots become free again and newcomers get them. */
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(stats(bh).active, 1);
    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(stats(bh).admitted, 6);

    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

Test(bulkhead, blocked_threads_are_granted_in_fifo_order)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(1, 4, 0, clk);
    sync_caller first, second;

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    start_sync(&first, bh, clk, CBX_BULKHEAD_FOREVER);
    await_queued(bh, 1);
    start_sync(&second, bh, clk, CBX_BULKHEAD_FOREVER);
    await_queued(bh, 2);

    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    join_sync(&first); /* only the oldest waiter can return now */
    cr_assert_eq(first.rc, 0);
    cr_assert_eq(stats(bh).queued, 1);
    cr_assert_eq(stats(bh).active, 1);

    cr_assert_eq(cbx_bulkhead_leave(bh), 0); /* first is done */
    join_sync(&second);
    cr_assert_eq(second.rc, 0);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);

    cbx_bulkhead_stats st = stats(bh);
    cr_assert_eq(st.active, 0);
    cr_assert_eq(st.admitted, 3);
    cr_assert_eq(st.timed_out, 0);
    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

Test(bulkhead, blocked_thread_on_the_monotonic_clock_is_woken_by_leave)
{
    cbx_bulkhead *bh = bulkhead(1, 1, 0, NULL);
    sync_caller t;

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    start_sync(&t, bh, NULL, CBX_BULKHEAD_FOREVER); /* no deadline at all */
    await_queued(bh, 1);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    join_sync(&t);
    cr_assert_eq(t.rc, 0);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(stats(bh).active, 0);
    cbx_bulkhead_free(bh);
}

Test(bulkhead, sync_and_async_waiters_share_one_queue)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(1, 4, 0, clk);
    record log = {0};
    tagged_waiter a = {0}, b = {0};
    sync_caller t;

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(enter_async(bh, &a, 1, &log, CBX_BULKHEAD_FOREVER), -EINPROGRESS);
    start_sync(&t, bh, clk, CBX_BULKHEAD_FOREVER);
    await_queued(bh, 2);
    cr_assert_eq(enter_async(bh, &b, 2, &log, CBX_BULKHEAD_FOREVER), -EINPROGRESS);

    cr_assert_eq(cbx_bulkhead_leave(bh), 0); /* to a */
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.order[0], 1);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0); /* a leaves: to the thread, not to b */
    join_sync(&t);
    cr_assert_eq(t.rc, 0);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0); /* the thread leaves: to b */
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.order[1], 2);
    cr_assert_eq(log.rc[1], 0);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(stats(bh).active, 0);

    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

Test(bulkhead, blocked_thread_times_out_on_virtual_time)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(1, 4, 2 * CBX_NS_PER_S, clk);
    sync_caller t;

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    start_sync(&t, bh, clk, CBX_BULKHEAD_FOREVER); /* the option's 2 s applies */
    await_queued(bh, 1);
    cbx_clock_advance(clk, 1999);
    cbx_clock_advance(clk, 1);
    join_sync(&t);
    cr_assert_eq(t.rc, CBX_EQUEUE_TIMEOUT);
    cr_assert_eq(t.returned_at_ns, 2 * CBX_NS_PER_S, "returned at %llu ns",
                 (unsigned long long)t.returned_at_ns);

    /* The caller's own, shorter limit wins. */
    start_sync(&t, bh, clk, 500 * CBX_NS_PER_MS);
    await_queued(bh, 1);
    cbx_clock_advance(clk, 499);
    cbx_clock_advance(clk, 1);
    join_sync(&t);
    cr_assert_eq(t.rc, CBX_EQUEUE_TIMEOUT);
    cr_assert_eq(t.returned_at_ns, 2500 * CBX_NS_PER_MS);

    cbx_bulkhead_stats st = stats(bh);
    cr_assert_eq(st.timed_out, 2);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.active, 1);
    cr_assert_eq(st.admitted, 1);
    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

Test(bulkhead, leave_never_hands_a_slot_to_an_expired_waiter)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(1, 4, 0, clk);
    record log = {0};
    tagged_waiter a = {0}, b = {0};
    sync_caller t;

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(enter_async(bh, &a, 1, &log, 1 * CBX_NS_PER_S), -EINPROGRESS);
    start_sync(&t, bh, clk, 1 * CBX_NS_PER_S);
    await_queued(bh, 2);
    cr_assert_eq(enter_async(bh, &b, 2, &log, 5 * CBX_NS_PER_S), -EINPROGRESS);

    /* Nobody calls expire, and the thread may or may not have noticed the time yet: the
     * leave itself times out both expired waiters and gives the slot to b. */
    cbx_clock_advance(clk, 1000);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    join_sync(&t);
    cr_assert_eq(t.rc, CBX_EQUEUE_TIMEOUT);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.order[0], 1);
    cr_assert_eq(log.rc[0], CBX_EQUEUE_TIMEOUT);
    cr_assert_eq(log.order[1], 2);
    cr_assert_eq(log.rc[1], 0);

    cbx_bulkhead_stats st = stats(bh);
    cr_assert_eq(st.timed_out, 2);
    cr_assert_eq(st.active, 1);
    cr_assert_eq(st.queued, 0);
    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

Test(bulkhead, expire_times_out_async_waiters_and_names_the_next_deadline)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(1, 4, 2 * CBX_NS_PER_S, clk);
    record log = {0};
    tagged_waiter a = {0}, b = {0};

    cr_assert_eq(cbx_bulkhead_expire(bh), CBX_BULKHEAD_FOREVER);
    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(enter_async(bh, &a, 1, &log, CBX_BULKHEAD_FOREVER), -EINPROGRESS);
    cr_assert_eq(a.w.deadline_ns, 2 * CBX_NS_PER_S);
    cbx_clock_advance(clk, 1000);
    cr_assert_eq(enter_async(bh, &b, 2, &log, 500 * CBX_NS_PER_MS), -EINPROGRESS);
    cr_assert_eq(b.w.deadline_ns, 1500 * CBX_NS_PER_MS);

    cr_assert_eq(cbx_bulkhead_expire(bh), 1500 * CBX_NS_PER_MS);
    cr_assert_eq(log.n, 0);
    cbx_clock_advance(clk, 499);
    cr_assert_eq(cbx_bulkhead_expire(bh), 1500 * CBX_NS_PER_MS);
    cr_assert_eq(log.n, 0);
    cbx_clock_advance(clk, 1);
    cr_assert_eq(cbx_bulkhead_expire(bh), 2 * CBX_NS_PER_S);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.order[0], 2);
    cr_assert_eq(log.rc[0], CBX_EQUEUE_TIMEOUT);
    cbx_clock_advance(clk, 500);
    cr_assert_eq(cbx_bulkhead_expire(bh), CBX_BULKHEAD_FOREVER);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.order[1], 1);
    cr_assert_eq(log.rc[1], CBX_EQUEUE_TIMEOUT);

    cbx_bulkhead_stats st = stats(bh);
    cr_assert_eq(st.timed_out, 2);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.active, 1);
    /* The waiters are reusable. */
    cr_assert_eq(enter_async(bh, &a, 1, &log, CBX_BULKHEAD_FOREVER), -EINPROGRESS);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(log.n, 3);
    cr_assert_eq(log.rc[2], 0);
    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

Test(bulkhead, a_full_queue_sweeps_expired_waiters_to_make_room)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(1, 1, 0, clk);
    record log = {0};
    tagged_waiter a = {0}, b = {0};

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(enter_async(bh, &a, 1, &log, 1 * CBX_NS_PER_S), -EINPROGRESS);
    cr_assert_eq(enter_async(bh, &b, 2, &log, 1 * CBX_NS_PER_S), CBX_EBULKHEAD_FULL);
    cbx_clock_advance(clk, 1000);
    cr_assert_eq(enter_async(bh, &b, 2, &log, 1 * CBX_NS_PER_S), -EINPROGRESS);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.order[0], 1);
    cr_assert_eq(log.rc[0], CBX_EQUEUE_TIMEOUT);
    cr_assert_eq(stats(bh).queued, 1);
    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

Test(bulkhead, cancel_withdraws_a_waiter)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(1, 4, 0, clk);
    record log = {0};
    tagged_waiter a = {0}, b = {0}, never_queued = {0};

    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    cr_assert_eq(enter_async(bh, &a, 1, &log, CBX_BULKHEAD_FOREVER), -EINPROGRESS);
    cr_assert_eq(enter_async(bh, &b, 2, &log, CBX_BULKHEAD_FOREVER), -EINPROGRESS);
    cr_assert_eq(enter_async(bh, &a, 1, &log, CBX_BULKHEAD_FOREVER), -EINVAL); /* twice */
    cr_assert_eq(cbx_bulkhead_cancel_wait(bh, &a.w), 0);
    cr_assert_eq(cbx_bulkhead_cancel_wait(bh, &a.w), -ENOENT);
    cr_assert_eq(cbx_bulkhead_cancel_wait(bh, &never_queued.w), -ENOENT);
    cr_assert_eq(cbx_bulkhead_cancel_wait(bh, NULL), -ENOENT);
    cr_assert_eq(stats(bh).queued, 1);

    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(log.n, 1, "a cancelled waiter is never called");
    cr_assert_eq(log.order[0], 2);
    cr_assert_eq(cbx_bulkhead_cancel_wait(bh, &b.w), -ENOENT); /* already granted */

    cbx_bulkhead_stats st = stats(bh);
    cr_assert_eq(st.cancelled, 1);
    cr_assert_eq(st.admitted, 2);
    cr_assert_eq(st.active, 1);
    cr_assert_eq(cbx_bulkhead_enter_async(bh, NULL, 0, log_granted, &log), -EINVAL);
    cr_assert_eq(cbx_bulkhead_enter_async(bh, &a.w, 0, NULL, &log), -EINVAL);
    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

/* A callback that leaves at once and frees its heap waiter: the chain of hand-overs runs
 * through every waiter without touching freed memory (ASan checks). */
typedef struct chained {
    cbx_bulkhead_waiter w;
    cbx_bulkhead *bh;
    int *granted;
} chained;

static void leave_and_free(cbx_bulkhead_waiter *w, int rc, void *ud)
{
    chained *c = (chained *)w;
    (void)ud;
    cr_assert_eq(rc, 0);
    (*c->granted)++;
    cbx_bulkhead *bh = c->bh;
    free(c);
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
}

Test(bulkhead, callbacks_may_leave_and_free_their_waiter)
{
    cbx_bulkhead *bh = bulkhead(1, 8, 0, NULL);
    int granted = 0;
    cr_assert_eq(cbx_bulkhead_try_enter(bh), 0);
    for (int i = 0; i < 8; i++) {
        chained *c = calloc(1, sizeof *c);
        cr_assert_not_null(c);
        c->bh = bh;
        c->granted = &granted;
        cr_assert_eq(
            cbx_bulkhead_enter_async(bh, &c->w, CBX_BULKHEAD_FOREVER, leave_and_free, NULL),
            -EINPROGRESS);
    }
    cr_assert_eq(cbx_bulkhead_leave(bh), 0);
    cr_assert_eq(granted, 8);
    cbx_bulkhead_stats st = stats(bh);
    cr_assert_eq(st.active, 0);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.admitted, 9);
    cbx_bulkhead_free(bh);
}

Test(bulkhead, stats_add_up)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = bulkhead(2, 2, 1 * CBX_NS_PER_S, clk);
    record log = {0};
    tagged_waiter w[4] = {0};
    uint64_t calls = 0;

    for (int i = 0; i < 3; i++, calls++)
        cbx_bulkhead_try_enter(bh); /* 2 admitted, 1 rejected */
    for (int i = 0; i < 4; i++, calls++)
        enter_async(bh, &w[i], i, &log, CBX_BULKHEAD_FOREVER); /* 2 queued, 2 rejected */
    cbx_bulkhead_cancel_wait(bh, &w[0].w);
    cbx_clock_advance(clk, 1000);
    cbx_bulkhead_expire(bh);

    cbx_bulkhead_stats st = stats(bh);
    cr_assert_eq(st.admitted, 2);
    cr_assert_eq(st.rejected, 3);
    cr_assert_eq(st.cancelled, 1);
    cr_assert_eq(st.timed_out, 1);
    cr_assert_eq(st.admitted + st.rejected + st.timed_out + st.cancelled + st.queued, calls);
    cr_assert_eq(st.max_queued, 2);
    cr_assert_eq(st.queue_timeout_ns, 1 * CBX_NS_PER_S);
    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

Test(bulkhead, config_errors_name_the_field)
{
    cbx_bulkhead *bh = (cbx_bulkhead *)&bh; /* must be reset to NULL */
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_bulkhead_new(&bh, &(cbx_bulkhead_opts){.max_queued = 4}, &e),
                 CBX_EINVAL_CONFIG);
    cr_assert_null(bh);
    cr_assert_str_eq(e.where, "max_concurrent");
    cr_assert_neq(e.msg[0], '\0');
    cr_assert_eq(cbx_bulkhead_new(&bh, NULL, &e), CBX_EINVAL_CONFIG);
    cr_assert_eq(cbx_bulkhead_new(NULL, &(cbx_bulkhead_opts){.max_concurrent = 1}, &e), -EINVAL);
    cbx_bulkhead_free(NULL);
}
