/* Many threads sharing one retry budget and one retry policy while the clock moves; every
 * grant and refusal must be accounted for. Run under ThreadSanitizer by make tsan. */
#include "cbx/clock.h"
#include "cbx/retry.h"

#include "stress/stress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#define THREADS 8

typedef struct shared {
    cbx_retry_budget *budget;
    cbx_clock *clk;
    pthread_barrier_t start;
    const cbx_retry_opts *opts;
    unsigned calls_per_thread;
    _Atomic unsigned granted;
    _Atomic unsigned refused;
    _Atomic int stop;
} shared;

static void *record_then_withdraw(void *arg)
{
    shared *s = arg;
    pthread_barrier_wait(&s->start);
    for (unsigned i = 0; i < s->calls_per_thread; i++)
        cbx_retry_budget_record_call(s->budget);
    pthread_barrier_wait(&s->start); /* every call is in before anyone withdraws */
    for (unsigned i = 0; i < s->calls_per_thread; i++) {
        if (cbx_retry_budget_try_withdraw(s->budget) == 0)
            atomic_fetch_add(&s->granted, 1);
        else
            atomic_fetch_add(&s->refused, 1);
    }
    return NULL;
}

static void concurrent_withdrawals_grant_exactly_the_allowance(void)
{
    shared s = {.calls_per_thread = 5000};
    s.clk = cbx_clock_virtual(0);
    CHECK(cbx_retry_budget_new(&s.budget,
                               &(cbx_retry_budget_opts){.ratio = 0.1,
                                                        .min_per_second = 3,
                                                        .window_ns = 10 * CBX_NS_PER_S,
                                                        .clock = s.clk},
                               NULL) == 0);
    pthread_barrier_init(&s.start, NULL, THREADS);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, record_then_withdraw, &s);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&s.start);

    const unsigned calls = THREADS * s.calls_per_thread, allowed = calls / 10 + 30;
    CHECK(atomic_load(&s.granted) == allowed);
    CHECK(atomic_load(&s.refused) == calls - allowed);
    cbx_retry_budget_stats st;
    cbx_retry_budget_get_stats(s.budget, &st);
    CHECK(st.calls_total == calls);
    CHECK(st.retries_total == allowed);
    CHECK(st.refused_total == calls - allowed);
    cbx_retry_budget_free(s.budget);
    cbx_clock_free(s.clk);
}

/* Each worker runs logical calls that always fail, through the shared policy. */
static void *failing_calls(void *arg)
{
    shared *s = arg;
    pthread_barrier_wait(&s->start);
    for (unsigned i = 0; i < s->calls_per_thread; i++) {
        cbx_retry_state st;
        uint64_t d;
        cbx_retry_begin(s->opts, &st, cbx_clock_now_ns(s->clk));
        for (;;) {
            int r =
                cbx_retry_next(s->opts, &st, CBX_OUTCOME_ERROR, 0, cbx_clock_now_ns(s->clk), &d);
            if (r == 0) {
                atomic_fetch_add(&s->granted, 1);
                continue;
            }
            if (r == CBX_EBUDGET_EXHAUSTED)
                atomic_fetch_add(&s->refused, 1);
            break;
        }
    }
    return NULL;
}

static void *ticker(void *arg)
{
    shared *s = arg;
    while (!atomic_load(&s->stop))
        cbx_clock_advance_ns(s->clk, 10 * CBX_NS_PER_MS);
    return NULL;
}

static void shared_policy_while_the_clock_moves(void)
{
    shared s = {.calls_per_thread = 20000};
    s.clk = cbx_clock_virtual(0);
    CHECK(cbx_retry_budget_new(
              &s.budget,
              &(cbx_retry_budget_opts){
                  .ratio = 0.2, .min_per_second = 1, .window_ns = 1 * CBX_NS_PER_S, .clock = s.clk},
              NULL) == 0);
    cbx_retry_opts o;
    cbx_retry_opts_default(&o);
    o.max_attempts = 4;
    o.budget = s.budget;
    s.opts = &o;
    pthread_barrier_init(&s.start, NULL, THREADS);
    pthread_t t[THREADS], tick;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, failing_calls, &s);
    pthread_create(&tick, NULL, ticker, &s);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&s.stop, 1);
    pthread_join(tick, NULL);
    pthread_barrier_destroy(&s.start);

    cbx_retry_budget_stats st;
    cbx_retry_budget_get_stats(s.budget, &st);
    const unsigned calls = THREADS * s.calls_per_thread;
    CHECK(st.calls_total == calls);
    CHECK(st.retries_total == atomic_load(&s.granted));
    CHECK(st.refused_total == atomic_load(&s.refused));
    /* Without a budget every call would retry 3 times. With it, the retries granted in any
     * one-second block [j s, j+1 s) were allowed by a window that held at most the calls of
     * that block and the one before, so in all: retries <= 0.2 * 2 * calls + 1 per block. */
    CHECK(st.retries_total > 0);
    CHECK(st.refused_total > 0);
    uint64_t blocks = cbx_clock_now_ns(s.clk) / CBX_NS_PER_S + 1;
    CHECK(st.retries_total <= (uint64_t)(0.4 * calls) + blocks,
          "retries %llu for %u calls over %llu blocks", (unsigned long long)st.retries_total, calls,
          (unsigned long long)blocks);
    cbx_retry_budget_free(s.budget);
    cbx_clock_free(s.clk);
}

int main(void)
{
    concurrent_withdrawals_grant_exactly_the_allowance();
    shared_policy_while_the_clock_moves();
    printf("retry budget stress: ok\n");
    return 0;
}
