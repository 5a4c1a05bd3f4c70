/* A breaker in front of a flaky service, told as a timeline.
 *
 * The "service" is a function that works, then goes down for a while, then recovers. Calls go
 * through a circuit breaker with a fallback. Watch the breaker open after a run of failures,
 * refuse calls at once (saying why and when it will probe), let a probe through when its open
 * time is up, re-open for longer when the probe fails, and close when probes succeed.
 *
 * Runs on the real clock in about three seconds. Build: make demo.
 */
#include <cbx/breaker.h>

#include <stdio.h>
#include <time.h>

static uint64_t t0;

static double since_start(void)
{
    return (double)(cbx_clock_now_ns(NULL) - t0) / 1e9;
}

/* Down from 0.4 s to 1.6 s after the start. */
static cbx_outcome flaky_service(void *ud, double *quality)
{
    (void)quality;
    int *served = ud;
    double t = since_start();
    struct timespec work = {0, 2 * 1000 * 1000}; /* 2 ms of "work" */
    nanosleep(&work, NULL);
    if (t >= 0.4 && t < 1.6)
        return CBX_OUTCOME_ERROR;
    ++*served;
    return CBX_OUTCOME_SUCCESS;
}

static int cached_answer(void *ud, int rc)
{
    (void)ud;
    (void)rc;
    return 0; /* a cached page, say: always available */
}

static void on_event(const cbx_breaker_event *ev, void *ud)
{
    (void)ud;
    char extra[64] = "";
    if (ev->to == CBX_BREAKER_OPEN)
        snprintf(extra, sizeof extra, " for %.0f ms", (double)ev->open_for_ns / 1e6);
    printf("%7.3fs  ** breaker '%s': %s -> %s (%s)%s\n", since_start(), ev->name,
           cbx_breaker_state_name(ev->from), cbx_breaker_state_name(ev->to),
           cbx_breaker_reason_name(ev->reason), extra);
}

int main(void)
{
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.name = "catalog-api";
    o.consecutive_failures = 3;
    o.open_ns = 300 * CBX_NS_PER_MS;
    o.open_multiplier = 2;                /* each failed probe doubles the open time ... */
    o.open_max_ns = 1200 * CBX_NS_PER_MS; /* ... up to 1.2 s */
    o.half_open_probes = 1;
    o.close_after = 2;
    o.on_event = on_event;

    cbx_breaker *b;
    cbx_err err;
    if (cbx_breaker_new(&b, &o, &err) < 0) {
        fprintf(stderr, "breaker_timeline: %s\n", err.msg);
        return 1;
    }
    t0 = cbx_clock_now_ns(NULL);
    printf("   time  call  result\n");
    int served = 0, refused = 0, failed = 0, fell_back = 0;
    for (int call = 1; since_start() < 3.0; call++) {
        cbx_breaker_call_result res;
        cbx_breaker_call(b, flaky_service, &served, cached_answer, NULL, &res);
        char line[256];
        if (res.rc == 0)
            snprintf(line, sizeof line, "ok (%.1f ms)", (double)res.latency_ns / 1e6);
        else if (res.rc == CBX_EFAILED)
            snprintf(line, sizeof line, "failed: %s", cbx_outcome_name(res.outcome));
        else
            cbx_breaker_explain(b, &res.why, line, sizeof line);
        if (res.rc == CBX_EFAILED)
            failed++;
        else if (res.rc)
            refused++;
        fell_back += res.used_fallback;
        /* Refusals come fast; show one in ten so the timeline stays readable. */
        if (res.rc == 0 || res.rc == CBX_EFAILED || refused % 10 == 1)
            printf("%7.3fs  %4d  %s%s\n", since_start(), call, line,
                   res.used_fallback ? "  [fallback answered]" : "");
        struct timespec gap = {0, 40 * 1000 * 1000};
        nanosleep(&gap, NULL);
    }

    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    printf("\nserved %d, failed %d, refused without calling %d, answered by fallback %d\n", served,
           failed, refused, fell_back);
    printf("breaker: state %s, calls %llu, successes %llu, failures %llu, rejections %llu, "
           "opened %llu times, success rate %.0f%%, latency p50 %.2f ms p99 %.2f ms\n",
           cbx_breaker_state_name(m.state), (unsigned long long)m.calls,
           (unsigned long long)m.successes, (unsigned long long)m.failures,
           (unsigned long long)m.rejections, (unsigned long long)m.opens, 100 * m.success_rate,
           (double)m.latency_p50_ns / 1e6, (double)m.latency_p99_ns / 1e6);
    cbx_breaker_free(b);
    return m.state == CBX_BREAKER_CLOSED ? 0 : 1;
}
