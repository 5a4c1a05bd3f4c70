/* bench/trace_cost.c - the CPU cost per execution of exporting spans (bench/trace.sh).
 *
 * N no-op executions (an inline function: the cheapest way through the runtime) submitted 1,000
 * at a time and run to their end, no journal; then, when spans are exported
 * (OTEL_EXPORTER_OTLP_ENDPOINT), a wait until every span was sent (cbx_trace_flush). The CPU time
 * of the whole process (user + sys of every thread: the exporter's encoding and POSTs are in it)
 * and the wall time are divided by N. A first 1,000 executions warm up (and start the exporter).
 * Prints one line of name=value pairs; exits 1 when an execution fails or spans were dropped.
 *
 *   trace_cost [N]   (default 200,000)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <uv.h>

#include "cbx/function.h"
#include "cbx/runtime.h"
#include "cbx/trace.h"

static uint64_t ok_count, bad_count;

static cbx_outcome noop(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)input;
    (void)output;
    (void)t;
    (void)ud;
    return CBX_OUTCOME_SUCCESS;
}

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    (void)ud;
    if (res->status == CBX_STATUS_SUCCESS)
        ok_count++;
    else
        bad_count++;
}

static uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void run(cbx_runtime *rt, const cbx_request *req, uint64_t n)
{
    for (uint64_t done = 0; done < n;) {
        uint64_t k = n - done < 1000 ? n - done : 1000;
        for (uint64_t i = 0; i < k; i++)
            cbx_runtime_submit(rt, req, NULL, NULL);
        cbx_runtime_run(rt);
        uv_run(cbx_runtime_loop(rt), UV_RUN_NOWAIT);
        done += k;
    }
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    cbx_err err;
    cbx_err_clear(&err);
    cbx_registry *reg = NULL;
    cbx_runtime *rt = NULL;
    cbx_function_def def = {.call = noop, .flags = CBX_FUNCTION_INLINE};
    if (cbx_registry_new(&reg, &err) != 0 || cbx_function_register(reg, "noop", &def, &err) != 0 ||
        cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg, .max_queued = 2000}, &err) != 0) {
        fprintf(stderr, "trace_cost: %s\n", err.msg);
        return 1;
    }
    json_t *params = json_pack("{s:s}", "name", "noop");
    cbx_request req = {.executor = "function", .params = params, .on_done = on_done};
    run(rt, &req, 1000);
    cbx_trace_flush(120000);
    cbx_trace_stats s0;
    cbx_trace_stats_get(&s0);
    uint64_t c0 = cpu_ns(), w0 = wall_ns();
    run(rt, &req, n);
    int flushed = cbx_trace_flush(120000);
    uint64_t c1 = cpu_ns(), w1 = wall_ns();
    cbx_trace_stats s;
    cbx_trace_stats_get(&s);
    printf("export=%s executions=%" PRIu64 " cpu_ns_per_execution=%.0f wall_ns_per_execution=%.0f "
           "spans=%" PRIu64 " exported=%" PRIu64 " dropped_full=%" PRIu64 " dropped_failed=%" PRIu64
           " requests=%" PRIu64 "\n",
           cbx_trace_enabled() ? "on" : "off", n, (double)(c1 - c0) / (double)n,
           (double)(w1 - w0) / (double)n, s.recorded - s0.recorded, s.exported - s0.exported,
           s.dropped_full, s.dropped_failed, s.requests - s0.requests);
    json_decref(params);
    cbx_runtime_free(rt);
    cbx_registry_free(reg);
    return bad_count || ok_count != n + 1000 || flushed != 0 || s.dropped_full || s.dropped_failed;
}
