/* Many threads on one rate limiter and one bulkhead: the counts must add up exactly and the
 * limits must hold at every instant. Run under ThreadSanitizer by `make tsan`. */
#include "cbx/bulkhead.h"
#include "cbx/ratelimit.h"

#include "stress/stress.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>

#define THREADS 8

/* Workers wait here until all of them exist, so that they really run at the same time. */
static pthread_barrier_t start_line;

static void run_threads(void *(*fn)(void *), void *args, size_t arg_size, int n)
{
    pthread_t t[THREADS];
    CHECK(n <= THREADS);
    CHECK(pthread_barrier_init(&start_line, NULL, (unsigned)n) == 0);
    for (int i = 0; i < n; i++)
        CHECK(pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * arg_size) == 0);
    for (int i = 0; i < n; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    pthread_barrier_destroy(&start_line);
}

/* Cheap per-thread pseudo-random numbers (xorshift). */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* --- rate limiter ----------------------------------------------------------------------- */

#define LIMITER_CALLS 20000

typedef struct limiter_worker {
    cbx_ratelimit *rl;
    uint32_t max_n; /* each call asks for 1..max_n tokens */
    uint32_t seed;
    uint64_t admitted, rejected, tokens;
} limiter_worker;

static void *hammer_limiter(void *arg)
{
    limiter_worker *w = arg;
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < LIMITER_CALLS; i++) {
        uint32_t n = 1 + next_rand(&w->seed) % w->max_n;
        uint64_t wait = 0;
        int r = cbx_ratelimit_try_acquire(w->rl, n, &wait);
        if (r == 0) {
            w->admitted++;
            w->tokens += n;
            CHECK(wait == 0);
        } else {
            CHECK(r == CBX_ERATE_LIMITED);
            CHECK(wait > 0);
            w->rejected++;
        }
        if (i % 64 == 0)
            (void)cbx_ratelimit_wait_ns(w->rl, n);
    }
    return NULL;
}

static void limiter_on_a_frozen_clock_admits_exactly_the_burst(void)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_ratelimit *rl = NULL;
    CHECK(cbx_ratelimit_new(&rl,
                            &(cbx_ratelimit_opts){.per_second = 1000, .burst = 24989, .clock = clk},
                            NULL) == 0);
    limiter_worker w[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        w[i] = (limiter_worker){.rl = rl, .max_n = 1, .seed = 0x9e3779b9u + (uint32_t)i};
    run_threads(hammer_limiter, w, sizeof w[0], THREADS);

    uint64_t admitted = 0, rejected = 0;
    for (int i = 0; i < THREADS; i++) {
        admitted += w[i].admitted;
        rejected += w[i].rejected;
    }
    CHECK(admitted == 24989, "admitted %llu", (unsigned long long)admitted);
    CHECK(admitted + rejected == (uint64_t)THREADS * LIMITER_CALLS);
    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    CHECK(st.admitted == admitted);
    CHECK(st.rejected == rejected);
    CHECK(st.tokens_admitted == 24989);
    CHECK(st.available == 0);
    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

static void limiter_with_mixed_sizes_never_hands_out_more_than_the_bucket(void)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_ratelimit *rl = NULL;
    CHECK(cbx_ratelimit_new(&rl,
                            &(cbx_ratelimit_opts){.per_second = 50, .burst = 1000, .clock = clk},
                            NULL) == 0);
    limiter_worker w[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        w[i] = (limiter_worker){.rl = rl, .max_n = 7, .seed = 0x2545f491u * (uint32_t)(i + 1)};
    run_threads(hammer_limiter, w, sizeof w[0], THREADS);

    uint64_t admitted = 0, rejected = 0, tokens = 0;
    for (int i = 0; i < THREADS; i++) {
        admitted += w[i].admitted;
        rejected += w[i].rejected;
        tokens += w[i].tokens;
    }
    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    CHECK(admitted + rejected == (uint64_t)THREADS * LIMITER_CALLS);
    CHECK(st.admitted == admitted);
    CHECK(st.rejected == rejected);
    CHECK(st.tokens_admitted == tokens);
    /* Every size 1..7 was tried after the bucket ran low, so it ends with under 7 left. */
    CHECK(tokens <= 1000);
    CHECK(tokens > 1000 - 7);
    CHECK(tokens + st.available == 1000);
    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

typedef struct advancer {
    cbx_clock *clk;
    atomic_int *stop;
    uint64_t step_ns;
    uint64_t advanced_ns;
} advancer;

static void *advance_clock(void *arg)
{
    advancer *a = arg;
    while (!atomic_load(a->stop)) {
        cbx_clock_advance_ns(a->clk, a->step_ns);
        a->advanced_ns += a->step_ns;
        sched_yield();
    }
    return NULL;
}

static void limiter_on_a_moving_clock_keeps_to_the_rate(void)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_ratelimit *rl = NULL;
    CHECK(cbx_ratelimit_new(&rl,
                            &(cbx_ratelimit_opts){.per_second = 1000, .burst = 10, .clock = clk},
                            NULL) == 0);
    atomic_int stop = 0;
    advancer adv = {.clk = clk, .stop = &stop, .step_ns = 100 * CBX_NS_PER_US};
    pthread_t at;
    CHECK(pthread_create(&at, NULL, advance_clock, &adv) == 0);
    limiter_worker w[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        w[i] = (limiter_worker){.rl = rl, .max_n = 2, .seed = 0x85ebca6bu + (uint32_t)i};
    run_threads(hammer_limiter, w, sizeof w[0], THREADS);
    atomic_store(&stop, 1);
    CHECK(pthread_join(at, NULL) == 0);

    uint64_t tokens = 0, calls = 0;
    for (int i = 0; i < THREADS; i++) {
        tokens += w[i].tokens;
        calls += w[i].admitted + w[i].rejected;
    }
    CHECK(calls == (uint64_t)THREADS * LIMITER_CALLS);
    /* At most the bucket plus one token per millisecond that passed. */
    uint64_t ceiling = 10 + adv.advanced_ns / CBX_NS_PER_MS;
    CHECK(tokens <= ceiling, "%llu tokens in %llu ns", (unsigned long long)tokens,
          (unsigned long long)adv.advanced_ns);
    cbx_ratelimit_stats st;
    cbx_ratelimit_stats_get(rl, &st);
    CHECK(st.tokens_admitted == tokens);
    cbx_ratelimit_free(rl);
    cbx_clock_free(clk);
}

/* --- bulkhead --------------------------------------------------------------------------- */

#define BH_SLOTS  3
#define BH_QUEUE  4
#define BH_ROUNDS 3000

typedef struct occupancy {
    atomic_int inside;
    atomic_int peak;
} occupancy;

static void occupy(occupancy *o)
{
    int now = atomic_fetch_add(&o->inside, 1) + 1;
    CHECK(now <= BH_SLOTS, "%d callers inside a bulkhead of %d", now, BH_SLOTS);
    int peak = atomic_load(&o->peak);
    while (now > peak && !atomic_compare_exchange_weak(&o->peak, &peak, now))
        ;
    for (int i = 0; i < 8; i++)
        sched_yield();
    atomic_fetch_sub(&o->inside, 1);
}

typedef struct bh_worker {
    cbx_bulkhead *bh;
    occupancy *occ;
    uint32_t seed;
    int use_async;
    uint64_t calls, admitted, rejected, timed_out, cancelled;
} bh_worker;

typedef struct async_wait {
    cbx_bulkhead_waiter w;
    atomic_int done;
    atomic_int rc;
} async_wait;

static void async_done(cbx_bulkhead_waiter *w, int rc, void *ud)
{
    async_wait *a = ud;
    CHECK((void *)w == (void *)&a->w);
    atomic_store(&a->rc, rc);
    atomic_store_explicit(&a->done, 1, memory_order_release);
}

/* One call through the async API: queue, maybe cancel, else wait for the callback (which
 * may come from another thread's leave or from the expiring thread). */
static int enter_via_async(bh_worker *w, uint64_t max_wait)
{
    async_wait a = {0};
    atomic_init(&a.done, 0);
    atomic_init(&a.rc, 1);
    int r = cbx_bulkhead_enter_async(w->bh, &a.w, max_wait, async_done, &a);
    if (r != -EINPROGRESS)
        return r;
    if (next_rand(&w->seed) % 4 == 0 && cbx_bulkhead_cancel_wait(w->bh, &a.w) == 0)
        return CBX_ECANCELLED;
    while (!atomic_load_explicit(&a.done, memory_order_acquire))
        sched_yield();
    return atomic_load(&a.rc);
}

static void *hammer_bulkhead(void *arg)
{
    bh_worker *w = arg;
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < BH_ROUNDS; i++) {
        uint32_t pick = next_rand(&w->seed) % 4;
        uint64_t max_wait = pick == 0 ? CBX_BULKHEAD_FOREVER : (uint64_t)pick * CBX_NS_PER_MS;
        int r;
        if (w->use_async)
            r = enter_via_async(w, max_wait);
        else if (pick == 3)
            r = cbx_bulkhead_try_enter(w->bh);
        else
            r = cbx_bulkhead_enter(w->bh, max_wait);
        w->calls++;
        switch (r) {
        case 0:
            w->admitted++;
            occupy(w->occ);
            CHECK(cbx_bulkhead_leave(w->bh) == 0);
            break;
        case CBX_EBULKHEAD_FULL:
            w->rejected++;
            break;
        case CBX_EQUEUE_TIMEOUT:
            w->timed_out++;
            break;
        case CBX_ECANCELLED:
            w->cancelled++;
            break;
        default:
            CHECK(0, "unexpected rc %d", r);
        }
    }
    return NULL;
}

typedef struct expirer {
    cbx_bulkhead *bh;
    cbx_clock *clk;
    atomic_int *stop;
} expirer;

/* The owner's timer: moves virtual time on and delivers async timeouts. */
static void *expire_loop(void *arg)
{
    expirer *e = arg;
    while (!atomic_load(e->stop)) {
        cbx_clock_advance_ns(e->clk, 250 * CBX_NS_PER_US);
        (void)cbx_bulkhead_expire(e->bh);
        sched_yield();
    }
    return NULL;
}

static void bulkhead_round(int async_every)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_bulkhead *bh = NULL;
    CHECK(cbx_bulkhead_new(&bh,
                           &(cbx_bulkhead_opts){.max_concurrent = BH_SLOTS,
                                                .max_queued = BH_QUEUE,
                                                .queue_timeout_ns = 50 * CBX_NS_PER_MS,
                                                .clock = clk},
                           NULL) == 0);
    occupancy occ;
    atomic_init(&occ.inside, 0);
    atomic_init(&occ.peak, 0);
    atomic_int stop = 0;
    expirer ex = {.bh = bh, .clk = clk, .stop = &stop};
    pthread_t et;
    CHECK(pthread_create(&et, NULL, expire_loop, &ex) == 0);

    bh_worker w[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        w[i] = (bh_worker){.bh = bh,
                           .occ = &occ,
                           .seed = 0xc2b2ae35u + (uint32_t)i * 7919u,
                           .use_async = async_every && i % async_every == 0};
    run_threads(hammer_bulkhead, w, sizeof w[0], THREADS);
    atomic_store(&stop, 1);
    CHECK(pthread_join(et, NULL) == 0);

    uint64_t calls = 0, admitted = 0, rejected = 0, timed_out = 0, cancelled = 0;
    for (int i = 0; i < THREADS; i++) {
        calls += w[i].calls;
        admitted += w[i].admitted;
        rejected += w[i].rejected;
        timed_out += w[i].timed_out;
        cancelled += w[i].cancelled;
    }
    CHECK(calls == (uint64_t)THREADS * BH_ROUNDS);
    CHECK(admitted + rejected + timed_out + cancelled == calls);

    cbx_bulkhead_stats st;
    cbx_bulkhead_stats_get(bh, &st);
    CHECK(st.active == 0, "every enter was matched by a leave");
    CHECK(st.queued == 0);
    CHECK(st.max_active <= BH_SLOTS);
    CHECK(atomic_load(&occ.peak) <= BH_SLOTS);
    CHECK(st.admitted == admitted);
    CHECK(st.rejected == rejected);
    CHECK(st.timed_out == timed_out);
    CHECK(st.cancelled == cancelled);
    CHECK(admitted > 0);
    CHECK(rejected + timed_out > 0, "the test never filled the bulkhead");
    printf("bulkhead (%s): %llu calls: %llu admitted, %llu rejected, %llu timed out, "
           "%llu cancelled\n",
           async_every ? "sync and async" : "sync", (unsigned long long)calls,
           (unsigned long long)admitted, (unsigned long long)rejected,
           (unsigned long long)timed_out, (unsigned long long)cancelled);
    cbx_bulkhead_free(bh);
    cbx_clock_free(clk);
}

static void bulkhead_with_blocking_callers(void)
{
    bulkhead_round(0);
}

static void bulkhead_with_blocking_and_async_callers(void)
{
    bulkhead_round(2);
}

int main(void)
{
    /* Races show up only now and then: several rounds make a lost update likely to show. */
    for (int round = 0; round < 10; round++) {
        limiter_on_a_frozen_clock_admits_exactly_the_burst();
        limiter_with_mixed_sizes_never_hands_out_more_than_the_bucket();
    }
    limiter_on_a_moving_clock_keeps_to_the_rate();
    for (int round = 0; round < 3; round++) {
        bulkhead_with_blocking_callers();
        bulkhead_with_blocking_and_async_callers();
    }
    printf("rate limiter and bulkhead stress: ok\n");
    return 0;
}
