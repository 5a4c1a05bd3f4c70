/* The span exporter through the public API (cbx/trace.h), against tests/helpers/http_server on
 * loopback as the OTLP endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT names one of its paths: /ok
 * takes the POST, /status/500 refuses it, /delay holds it). What is sent is checked against the
 * OTLP definitions by tests/cli/otlp.sh; here: the counts, the bounds, and that the work never
 * waits. Each test is a process of its own (Criterion forks), so each reads the environment
 * afresh. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "cbx/function.h"
#include "cbx/policy.h"
#include "cbx/runtime.h"
#include "cbx/trace.h"
#include "http_server_spawn.h"

static pid_t server_pid = -1;
static char base[64];
static int failures_left;

static void server_start(void)
{
    char why[300];
    int port =
        cbx_test_http_server_spawn(CBX_TEST_BIN_DIR "/http_server", &server_pid, why, sizeof why);
    cr_assert_gt(port, 0, "%s", why);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
}

static void teardown(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
}

static cbx_outcome flaky(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)input;
    (void)output;
    (void)t;
    (void)ud;
    if (failures_left > 0) {
        failures_left--;
        return CBX_OUTCOME_ERROR;
    }
    return CBX_OUTCOME_SUCCESS;
}

/* n executions of an inline function (the first `fail` attempts fail, with one retry each
 * allowed), run to their end: the spans recorded. */
static uint64_t run_executions(unsigned n, int fail)
{
    cbx_err err;
    cbx_err_clear(&err);
    cbx_registry *reg = NULL;
    cbx_runtime *rt = NULL;
    cbx_policy *pol = NULL;
    cbx_function_def def = {.call = flaky, .flags = CBX_FUNCTION_INLINE};
    cr_assert_eq(cbx_registry_new(&reg, &err), 0, "%s", err.msg);
    static int registered; /* functions are known process-wide: one registration */
    if (!registered)
        cr_assert_eq(cbx_function_register(reg, "flaky", &def, &err), 0, "%s", err.msg);
    registered = 1;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &err), 0, "%s",
                 err.msg);
    json_t *block = json_loads(
        "{\"retry\": {\"attempts\": 2, \"backoff\": \"fixed\", \"initial\": \"1ms\"}}", 0, NULL);
    cr_assert_eq(cbx_policy_new_json(&pol, block, NULL, &err), 0, "%s", err.msg);
    json_decref(block);
    failures_left = fail;
    json_t *params = json_pack("{s:s}", "name", "flaky");
    cbx_request req = {.executor = "function", .params = params, .policy = pol};
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(cbx_runtime_submit(rt, &req, NULL, NULL), 0);
    cbx_runtime_run(rt);
    json_decref(params);
    cbx_runtime_free(rt);
    cbx_policy_free(pol);
    cbx_registry_free(reg);
    return (uint64_t)n * 2 + (uint64_t)fail; /* an execution and its attempts */
}

static void endpoint(const char *path)
{
    char url[160];
    snprintf(url, sizeof url, "%s%s", base, path);
    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url, 1);
}

TestSuite(trace_export, .init = server_start, .fini = teardown, .timeout = 300);

Test(trace_export, off_without_an_endpoint)
{
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    run_executions(3, 1);
    cr_assert_eq(cbx_trace_enabled(), 0);
    cbx_trace_stats st;
    cbx_trace_stats_get(&st);
    cr_assert_eq(st.recorded, 0);
    cr_assert_eq(cbx_trace_flush(1000), 0);
}

Test(trace_export, every_span_exported)
{
    endpoint("/ok");
    setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4", 1);
    uint64_t want = run_executions(5, 2);
    cr_assert_eq(cbx_trace_enabled(), 1);
    cr_assert_eq(cbx_trace_flush(120000), 0);
    cbx_trace_stats st;
    cbx_trace_stats_get(&st);
    cr_assert_eq(st.recorded, want, "recorded %llu, want %llu", (unsigned long long)st.recorded,
                 (unsigned long long)want);
    cr_assert_eq(st.exported, want, "exported %llu", (unsigned long long)st.exported);
    cr_assert_eq(st.dropped_full + st.dropped_failed, 0);
    /* batches of 4 at most: 12 spans need 3 requests or more */
    cr_assert_geq(st.requests, (want + 3) / 4);
    cr_assert_eq(st.queued, 0);
}

Test(trace_export, a_refusing_endpoint_drops_and_counts)
{
    endpoint("/status/500");
    uint64_t want = run_executions(4, 0);
    cr_assert_eq(cbx_trace_flush(120000), 0);
    cbx_trace_stats st;
    cbx_trace_stats_get(&st);
    cr_assert_eq(st.recorded, want);
    cr_assert_eq(st.exported, 0);
    cr_assert_eq(st.dropped_failed, want, "dropped_failed %llu",
                 (unsigned long long)st.dropped_failed);
}

Test(trace_export, a_stuck_endpoint_never_holds_the_work)
{
    /* every request waits ten minutes for its answer: the queue (4) fills behind the one out
     * (a batch of 1), and the rest is dropped while the executions run on */
    endpoint("/delay?ms=600000");
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4", 1);
    setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1", 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "0", 1);
    setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "600000", 1);
    uint64_t want = run_executions(50, 0);
    cbx_trace_stats st;
    cbx_trace_stats_get(&st);
    cr_assert_eq(st.recorded, want);
    cr_assert_eq(st.exported, 0);
    cr_assert_leq(st.queued, 4, "queued %u past the bound", st.queued);
    /* at most one in the request and four queued escaped the drop */
    cr_assert_geq(st.dropped_full, want - 5, "dropped_full %llu of %llu",
                  (unsigned long long)st.dropped_full, (unsigned long long)want);
    /* a bounded wait gives up, and later spans are dropped */
    cr_assert_eq(cbx_trace_flush(50), CBX_ETIMEDOUT);
    cbx_trace_shutdown(50);
    run_executions(1, 0);
    cbx_trace_stats_get(&st);
    cr_assert_geq(st.dropped_full, want - 5 + 2);
}

Test(trace_export, none_exports_nothing)
{
    endpoint("/ok");
    setenv("OTEL_TRACES_EXPORTER", "none", 1);
    run_executions(3, 0);
    cr_assert_eq(cbx_trace_enabled(), 0);
    cbx_trace_stats st;
    cbx_trace_stats_get(&st);
    cr_assert_eq(st.recorded, 0);
}
