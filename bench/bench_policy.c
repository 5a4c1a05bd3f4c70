/* A full policy around a no-op function: timeout, retry (+ budget), breaker, rate limit and
 * bulkhead together, one success per call.
 *
 *   policy.sync.noop     cbx_policy_call (the synchronous call, fallback cache off)
 *   policy.async.noop    begin / admit / attempt_end / end: the interface the runtime drives;
 *                        must not allocate
 *   policy.sync.open     cbx_policy_call refused by a forced-open breaker
 */
#include "alloc_count.h"
#include "timing.h"

#include "cbx/policy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed;

static const char block[] =
    "{\"timeout\": \"5s\","
    " \"retry\": {\"attempts\": 3, \"backoff\": \"exponential\", \"initial\": \"1ms\","
    "            \"budget\": {\"ratio\": \"20%\", \"min_per_second\": 10}},"
    " \"breaker\": {\"consecutive_failures\": 5, \"open_for\": \"30s\"},"
    " \"rate_limit\": {\"rate\": \"1000000000/s\", \"burst\": 1000000000},"
    " \"bulkhead\": {\"max_concurrent\": 64}}";

static cbx_policy *make_policy(void)
{
    json_t *j = json_loads(block, 0, NULL);
    cbx_policy *p = NULL;
    cbx_err err;
    if (!j || cbx_policy_new_json(&p, j, NULL, &err) < 0) {
        printf("# FAIL\tpolicy: %s: %s\n", err.where, err.msg);
        exit(1);
    }
    json_decref(j);
    return p;
}

static cbx_outcome noop(const json_t *input, json_t **output, cbx_attempt *a, void *ud)
{
    (void)input;
    (void)output;
    (void)a;
    (void)ud;
    return CBX_OUTCOME_SUCCESS;
}

typedef struct {
    cbx_policy *p;
    uint64_t ok, refused;
} ctx;

static void loop_sync(void *arg, uint64_t iters)
{
    ctx *c = arg;
    cbx_policy_result r;
    for (uint64_t i = 0; i < iters; i++) {
        int rc = cbx_policy_call(c->p, noop, NULL, NULL, NULL, &r, NULL);
        if (rc == 0)
            c->ok++;
        else
            c->refused++;
        cbx_policy_result_clear(&r);
    }
}

static void loop_async(void *arg, uint64_t iters)
{
    ctx *c = arg;
    cbx_policy_run run;
    for (uint64_t i = 0; i < iters; i++) {
        cbx_policy_begin(c->p, &run);
        if (cbx_policy_admit(c->p, &run) == 0) {
            uint64_t delay;
            if (cbx_policy_attempt_end(c->p, &run, CBX_OUTCOME_SUCCESS, 0, 0, 1.0, &delay) ==
                CBX_POLICY_DONE_SUCCESS)
                c->ok++;
        } else {
            c->refused++;
        }
        cbx_policy_end(c->p, &run);
    }
}

static void run_case(const bench_args *a, const char *name, bench_loop_fn loop, int force_open,
                     int must_not_allocate)
{
    ctx c = {.p = make_policy()};
    if (force_open)
        cbx_breaker_force_open(cbx_policy_breaker(c.p));
    uint64_t iters = a->iters ? a->iters : 2000000;
    uint64_t warm = iters / 10, calls = warm + iters * (uint64_t)a->runs;
    uint64_t a0 = alloc_count_total();
    double ns = bench_best_ns(loop, &c, iters, a->runs, warm);
    uint64_t allocs = alloc_count_total() - a0;
    uint64_t expected_ok = force_open ? 0 : calls;
    if (c.ok != expected_ok || c.ok + c.refused != calls) {
        printf("# FAIL\t%s: %" PRIu64 " succeeded and %" PRIu64 " refused of %" PRIu64 "\n", name,
               c.ok, c.refused, calls);
        failed = 1;
    }
    if (must_not_allocate && allocs) {
        printf("# FAIL\t%s: %" PRIu64 " allocations in %" PRIu64 " calls\n", name, allocs, calls);
        failed = 1;
    }
    bench_emit(name, ns, (double)allocs / (double)calls, iters);
    cbx_policy_free(c.p);
}

static void case_sync(const bench_args *a, const char *name)
{
    run_case(a, name, loop_sync, 0, 0);
}

static void case_async(const bench_args *a, const char *name)
{
    run_case(a, name, loop_async, 0, 1);
}

static void case_open(const bench_args *a, const char *name)
{
    run_case(a, name, loop_sync, 1, 0);
}

static const bench_case cases[] = {
    {"policy.sync.noop", case_sync},
    {"policy.async.noop", case_async},
    {"policy.sync.open", case_open},
};

int main(int argc, char **argv)
{
    int rc = bench_main(argc, argv, "bench_policy", cases, sizeof cases / sizeof cases[0],
                        alloc_count_selftest);
    return rc ? rc : failed ? 1 : 0;
}
