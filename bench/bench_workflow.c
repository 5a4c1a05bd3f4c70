/* bench_workflow: the cost of a workflow firing, beside a flow step's, and the memory of a
 * waiting token.
 *
 *   workflow.fire100k            100,000 tokens through a chain of 5 transitions (a -> b -> ...
 *                                -> f), each a pure guard with one rule (no action), no journal:
 *                                ns per firing (token added, rule evaluated in the sandbox,
 *                                moved), best of --runs passes
 *   workflow.fire100k.journal    the same with a journal (a file in a temporary directory): every
 *                                token added and every firing, with its rule's verdict, written
 *                                as an event in the journal's batches
 *   workflow.fire100k.norules    the chain without rules: the engine's own cost per firing
 *   flow.noop10k.step            a flow of 10,000 independent no-op `function` steps run by
 *                                cbx_flow_run: ns per step, the reference the firing is compared
 *                                to (target: a firing costs at most twice a step)
 *   workflow.waiting_token       ns per token added to a place where it waits for a signal; a note
 *                                gives the bytes of heap per waiting token (glibc's mallinfo2 in
 *                                use, before and after 100,000 tokens; target at most 2 KiB)
 *
 * Speed is reported, never asserted; a run whose tokens do not all end final fails (exit 1).
 */
#define _GNU_SOURCE
#include "alloc_count.h"
#include "timing.h"

#include "cbx/flow.h"
#include "cbx/function.h"
#include "cbx/journal.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"
#include "cbx/workflow.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKENS 100000u
#define HOPS   5u

static int failed;

static const char chain_rules[] = "name: chain\n"
                                  "rules: {ok: {when: 'token.n >= 0'}}\n"
                                  "places: [a, b, c, d, e, f]\n"
                                  "final: [f]\n"
                                  "transitions:\n"
                                  "  - {name: ab, from: a, to: b, policy: {rules: {all: [ok]}}}\n"
                                  "  - {name: bc, from: b, to: c, policy: {rules: {all: [ok]}}}\n"
                                  "  - {name: cd, from: c, to: d, policy: {rules: {all: [ok]}}}\n"
                                  "  - {name: de, from: d, to: e, policy: {rules: {all: [ok]}}}\n"
                                  "  - {name: ef, from: e, to: f, policy: {rules: {all: [ok]}}}\n";

static const char chain_plain[] = "name: chain\n"
                                  "places: [a, b, c, d, e, f]\n"
                                  "final: [f]\n"
                                  "transitions:\n"
                                  "  - {name: ab, from: a, to: b}\n"
                                  "  - {name: bc, from: b, to: c}\n"
                                  "  - {name: cd, from: c, to: d}\n"
                                  "  - {name: de, from: d, to: e}\n"
                                  "  - {name: ef, from: e, to: f}\n";

static const char waiting_net[] = "name: wait\n"
                                  "places: [pending, done]\n"
                                  "final: [done]\n"
                                  "transitions:\n"
                                  "  - {name: go, from: pending, to: done, trigger: signal}\n";

static cbx_workflow *load(const char *text)
{
    cbx_workflow *w = NULL;
    cbx_diag d = {0};
    if (cbx_workflow_load_string(&w, text, strlen(text), "bench.yaml", NULL, &d) != 0) {
        cbx_err first;
        cbx_diag_first(&d, &first);
        printf("# FAIL\tworkflow: load: %s\n", first.msg);
        failed = 1;
    }
    cbx_diag_clear(&d);
    return w;
}

/* One pass: TOKENS tokens through the chain; ns per firing, or 0 on failure. */
static double chain_pass(cbx_runtime *rt, cbx_workflow *w, uint64_t *allocs)
{
    cbx_workflow_run *r = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx_workflow_start(&r, rt, w, NULL, &e) != 0) {
        printf("# FAIL\tworkflow: start: %s\n", e.msg);
        failed = 1;
        return 0;
    }
    json_t *data = json_object();
    uint64_t a0 = alloc_count_total();
    uint64_t t0 = bench_now_ns();
    for (unsigned i = 0; i < TOKENS; i++) {
        json_object_set_new(data, "n", json_integer(i));
        if (cbx_workflow_add_token(r, NULL, data, NULL, NULL, 0, &e) != 0) {
            printf("# FAIL\tworkflow: add token: %s\n", e.msg);
            failed = 1;
            break;
        }
    }
    int st = cbx_workflow_run_until_rest(r, 0);
    uint64_t t1 = bench_now_ns();
    if (allocs)
        *allocs = alloc_count_total() - a0;
    json_decref(data);
    json_t *snap = cbx_workflow_run_snapshot(r);
    json_int_t fin = json_integer_value(json_object_get(json_object_get(snap, "marking"), "f"));
    json_decref(snap);
    cbx_workflow_run_free(r);
    if (st != CBX_WORKFLOW_DONE || fin != TOKENS) {
        printf("# FAIL\tworkflow: state %s, %lld tokens final\n", cbx_workflow_state_name(st),
               (long long)fin);
        failed = 1;
        return 0;
    }
    return (double)(t1 - t0) / (double)(TOKENS * HOPS);
}

static double chain_case(const char *name, cbx_runtime *rt, const char *text, int runs)
{
    cbx_workflow *w = load(text);
    if (!w)
        return 0;
    double best = 0;
    uint64_t allocs = 0;
    for (int k = 0; k < runs; k++) {
        double ns = chain_pass(rt, w, k == 0 ? &allocs : NULL);
        if (ns > 0 && (best == 0 || ns < best))
            best = ns;
    }
    if (best > 0)
        bench_emit(name, best, (double)allocs / (double)(TOKENS * HOPS), TOKENS * HOPS);
    cbx_workflow_free(w);
    return best;
}

static cbx_outcome noop(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)input;
    (void)output;
    (void)t;
    (void)ud;
    return CBX_OUTCOME_SUCCESS;
}

static double flow_step_ns(cbx_runtime *rt, cbx_registry *reg, int runs)
{
    size_t n = 10000, cap = n * 80 + 64, len = 0;
    char *text = malloc(cap);
    if (!text)
        return 0;
    len += (size_t)snprintf(text, cap, "name: noop\nsteps:\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  - {name: s%05zu, executor: function, config: {name: wf_noop}}\n",
                                i);
    cbx_flow *f = NULL;
    cbx_diag d = {0};
    int rc = cbx_flow_load_string(&f, text, len, "noop.yaml", reg, &d);
    cbx_diag_clear(&d);
    free(text);
    if (rc) {
        printf("# FAIL\tflow: load\n");
        failed = 1;
        return 0;
    }
    double best = 0;
    for (int k = 0; k < runs; k++) {
        cbx_flow_result res;
        cbx_err e;
        uint64_t t0 = bench_now_ns();
        rc = cbx_flow_run(rt, f, NULL, &res, &e);
        uint64_t t1 = bench_now_ns();
        cbx_flow_result_clear(&res);
        double ns = (double)(t1 - t0) / (double)n;
        if (rc == 0 && (best == 0 || ns < best))
            best = ns;
    }
    cbx_flow_free(f);
    if (best > 0)
        bench_emit("flow.noop10k.step", best, -1, n);
    return best;
}

static void waiting_case(cbx_runtime *rt)
{
    cbx_workflow *w = load(waiting_net);
    if (!w)
        return;
    cbx_workflow_run *r = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx_workflow_start(&r, rt, w, NULL, &e) != 0) {
        failed = 1;
        cbx_workflow_free(w);
        return;
    }
    json_t *data = json_pack("{s:s, s:i}", "request", "laptop", "n", 0);
    malloc_trim(0);
    size_t before = mallinfo2().uordblks;
    uint64_t t0 = bench_now_ns();
    for (unsigned i = 0; i < TOKENS; i++) {
        json_object_set_new(data, "n", json_integer(i));
        cbx_workflow_add_token(r, NULL, data, NULL, NULL, 0, &e);
    }
    int st = cbx_workflow_run_until_rest(r, 0);
    uint64_t t1 = bench_now_ns();
    size_t after = mallinfo2().uordblks;
    if (st != CBX_WORKFLOW_WAITING) {
        printf("# FAIL\tworkflow.waiting_token: state %s\n", cbx_workflow_state_name(st));
        failed = 1;
    }
    bench_emit("workflow.waiting_token", (double)(t1 - t0) / TOKENS, -1, TOKENS);
    printf("# note\tworkflow.waiting_token: %.0f bytes of heap per waiting token (data {request, "
           "n}, its history line, its place in the table; target 2048)\n",
           (double)(after - before) / TOKENS);
    json_decref(data);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

int main(int argc, char **argv)
{
    bench_args a;
    if (bench_args_parse(&a, argc, argv) != 0)
        return 2;
    const char *names[] = {"workflow.fire100k", "workflow.fire100k.journal",
                           "workflow.fire100k.norules", "flow.noop10k.step",
                           "workflow.waiting_token"};
    if (a.list) {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            printf("%s\n", names[i]);
        return 0;
    }
    printf("# build\t%s\t%s\n", CBX_BENCH_BUILD_TYPE, CBX_BENCH_CFLAGS);
    printf("# compiler\t%s\n", CBX_BENCH_COMPILER);
    int runs = a.runs > 0 ? a.runs : 3;
    cbx_err e;
    cbx_err_clear(&e);
    cbx_registry *reg = NULL;
    cbx_runtime *rt = NULL, *rtj = NULL;
    cbx_journal *j = NULL;
    char dir[] = "/tmp/cbx-bench-wf-XXXXXX", path[128];
    if (!mkdtemp(dir)) {
        printf("# FAIL\tworkflow: mkdtemp\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/journal.db", dir);
    cbx_journal_opts jo = {.path = path};
    cbx_function_def def = {.call = noop, .flags = CBX_FUNCTION_INLINE};
    if (cbx_registry_new(&reg, &e) != 0 || cbx_function_register(reg, "wf_noop", &def, &e) != 0 ||
        cbx_journal_open(&j, &jo, &e) != 0 ||
        cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &e) != 0 ||
        cbx_runtime_new(&rtj, &(cbx_runtime_opts){.registry = reg, .journal = j}, &e) != 0) {
        printf("# FAIL\tworkflow: setup: %s\n", e.msg);
        return 1;
    }
    double firing = 0, firing_j = 0, step = 0;
    if (!a.only || strcmp(a.only, names[0]) == 0)
        firing = chain_case(names[0], rt, chain_rules, runs);
    if (!a.only || strcmp(a.only, names[1]) == 0)
        firing_j = chain_case(names[1], rtj, chain_rules, 1);
    if (!a.only || strcmp(a.only, names[2]) == 0)
        chain_case(names[2], rt, chain_plain, runs);
    if (!a.only || strcmp(a.only, names[3]) == 0)
        step = flow_step_ns(rt, reg, runs);
    if (!a.only || strcmp(a.only, names[4]) == 0)
        waiting_case(rt);
    if (firing > 0 && step > 0)
        printf("# note\tworkflow.fire100k: a firing costs %.2f flow steps (target at most 2), "
               "%.0f firings/s\n",
               firing / step, 1e9 / firing);
    if (firing_j > 0 && step > 0)
        printf("# note\tworkflow.fire100k.journal: %.2f flow steps per firing, %.0f firings/s\n",
               firing_j / step, 1e9 / firing_j);
    cbx_runtime_free(rtj);
    cbx_runtime_free(rt);
    cbx_journal_close(j);
    cbx_registry_free(reg);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("# note\tworkflow: could not remove %s\n", dir);
    return failed;
}
