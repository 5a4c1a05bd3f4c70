/* Several threads hammer one breaker through every state; afterwards every admitted call,
 * refusal and outcome must be accounted for exactly. Run under ThreadSanitizer by make tsan. */
#include "cbx/breaker.h"

#include "stress/stress.h"

#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define THREADS 4
#define ITERS   100000

typedef struct {
    cbx_breaker *b;
    uint64_t seed;
    uint64_t admitted, rejected, by_kind[CBX_OUTCOME__COUNT];
} worker;

static atomic_uint events_seen;

static void on_event(const cbx_breaker_event *ev, void *ud)
{
    (void)ev;
    (void)ud;
    atomic_fetch_add(&events_seen, 1);
}

static void *hammer(void *arg)
{
    worker *w = arg;
    uint64_t x = w->seed;
    for (int i = 0; i < ITERS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cbx_permit p = (x & 7) == 0 ? cbx_breaker_acquire_ex(w->b, &(cbx_breaker_rejection){0})
                                    : cbx_breaker_acquire(w->b);
        if (p.rc) {
            w->rejected++;
            continue;
        }
        w->admitted++;
        /* Bursts of failures and of successes, so the breaker keeps moving. */
        cbx_outcome k = ((x >> 8) % 100) < ((i / 5000) % 2 ? 70u : 5u) ? CBX_OUTCOME_ERROR
                                                                       : CBX_OUTCOME_SUCCESS;
        if ((x >> 20) % 50 == 0)
            k = CBX_OUTCOME_IGNORED;
        w->by_kind[k]++;
        cbx_breaker_record(w->b, p, k, (int64_t)((x >> 32) % 1000000));
        if ((x >> 40) % 20000 == 0) {
            cbx_breaker_metrics m;
            cbx_breaker_metrics_get(w->b, &m);
        }
    }
    return NULL;
}

static void run(cbx_breaker_opts *o)
{
    cbx_breaker *b;
    o->on_event = on_event;
    CHECK(cbx_breaker_new(&b, o, NULL) == 0);
    worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].b = b;
        w[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        CHECK(pthread_create(&t[i], NULL, hammer, &w[i]) == 0);
    }
    uint64_t admitted = 0, rejected = 0, by_kind[CBX_OUTCOME__COUNT] = {0};
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        admitted += w[i].admitted;
        rejected += w[i].rejected;
        for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
            by_kind[k] += w[i].by_kind[k];
    }
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    CHECK(admitted + rejected == (uint64_t)THREADS * ITERS);
    CHECK(m.rejections == rejected, "rejections %llu vs %llu", (unsigned long long)m.rejections,
          (unsigned long long)rejected);
    /* Every admitted call is counted once by kind, except probe reports that came too late
     * (counted as late); an expired probe is counted as a timeout as well as its late report. */
    uint64_t counted = 0;
    for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
        counted += m.by_kind[k];
    CHECK(counted + m.late_results == admitted + m.expired_probes,
          "counted %llu late %llu admitted %llu expired %llu", (unsigned long long)counted,
          (unsigned long long)m.late_results, (unsigned long long)admitted,
          (unsigned long long)m.expired_probes);
    CHECK(m.calls == m.successes + m.failures + m.ignored);
    if (m.late_results == 0 && m.expired_probes == 0)
        for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
            CHECK(m.by_kind[k] == by_kind[k], "kind %d", k);
    CHECK(m.by_kind[CBX_OUTCOME_SUCCESS] <= by_kind[CBX_OUTCOME_SUCCESS]);
    CHECK(m.opens > 0, "the breaker never opened: the stress missed the slow paths");
    CHECK(atomic_load(&events_seen) > 0);
    cbx_breaker_free(b);
}

static void consecutive_rule_across_threads(void)
{
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = 5;
    o.open_ns = 200 * CBX_NS_PER_US;
    o.half_open_probes = 3;
    o.close_after = 2;
    run(&o);
}

static void windows_and_slow_calls_across_threads(void)
{
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = 0;
    o.count_window.calls = 50;
    o.count_window.min_calls = 10;
    o.count_window.failure_rate = 0.5;
    o.time_window.length_ns = 50 * CBX_NS_PER_MS;
    o.time_window.buckets = 5;
    o.time_window.failure_rate = 0.6;
    o.time_window.slow_rate = 0.99;
    o.slow_call_ns = 900 * CBX_NS_PER_US;
    o.open_ns = 100 * CBX_NS_PER_US;
    o.half_open_probes = 4;
    o.close_after = 3;
    o.probe_lease_ns = 50 * CBX_NS_PER_US; /* short leases: some expire while threads race */
    run(&o);
}

static int four_in_a_row(const cbx_breaker_counts *c, void *ud)
{
    (void)ud;
    return c->consecutive_failures >= 4;
}

static uint64_t short_open(const cbx_breaker_open_info *info, void *ud)
{
    (void)ud;
    return (100 + 50 * (uint64_t)(info->reopens % 4)) * CBX_NS_PER_US;
}

/* The options of the peers' suites: a trip predicate, the open time from a function, half-open
 * judged by rate over the probes, with a time limit. */
static void predicates_and_rate_judged_half_open_across_threads(void)
{
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = 0;
    o.trip_fn = four_in_a_row;
    o.open_fn = short_open;
    o.half_open_probes = 3;
    o.close_after = 5;
    o.half_open_judge = CBX_BREAKER_JUDGE_RATE;
    o.half_open_failure_rate = 0.4;
    o.half_open_max_ns = 300 * CBX_NS_PER_US;
    o.probe_lease_ns = 100 * CBX_NS_PER_US;
    run(&o);
}

int main(void)
{
    consecutive_rule_across_threads();
    windows_and_slow_calls_across_threads();
    predicates_and_rate_judged_half_open_across_threads();
    printf("breaker stress: ok\n");
    return 0;
}
