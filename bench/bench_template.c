/* bench/bench_template.c - {{ }} templates against the context of a 10,000-step flow.
 *
 * The context holds inputs and the outputs of 10,000 steps (each {value, stdout, list, ok}), as
 * a flow's last steps see it. Expressions read the context through read-only tables that
 * convert only what they touch, so the size of the context should not show. Cases:
 *   template.render.cached     a small config (cmd, argv with two templates, a timeout)
 *                              rendered again and again: its expressions are compiled once
 *   template.render.new_path   a config whose one template is a new plain reference on every
 *                              call ({{ steps.sN.outputs.value }}): read from the JSON
 *                              without Lua, as most of a flow's templates are
 *   template.render.new_expr   a config whose one template is a new expression on every call
 *                              (compiled, then run): what a step with an expression of its
 *                              own pays once
 *   template.render.literal    a config without templates (the copy alone)
 *   template.truthy            a `when:` condition over two steps' outputs
 *   template.eval.list         a foreach expression giving a 3-item array
 *   template.check             the syntax check of the small config (a bare Lua state per call)
 * Target: a flow step's template work (render.new_path or render.new_expr, plus truthy when it
 * has a condition) well under the 20 us of overhead a step may cost in all.
 *
 * Templates allocate (the rendered copy, Lua strings and tables), so the allocs column says "-"
 * and a note gives the count per call. Every call must succeed with the expected value, or the
 * run fails (exit 1). Under valgrind nothing is measured (not an allocation-free path).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valgrind/valgrind.h>

#include "cbx/template.h"

#include "alloc_count.h"
#include "timing.h"

#ifndef CBX_BENCH_BUILD_TYPE
#define CBX_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef CBX_BENCH_CFLAGS
#define CBX_BENCH_CFLAGS ""
#endif
#ifndef CBX_BENCH_COMPILER
#define CBX_BENCH_COMPILER "unknown"
#endif

#define NSTEPS        10000
#define DEFAULT_CALLS 200000u

static const char *const names[] = {
    "template.render.cached",  "template.render.new_path", "template.render.new_expr",
    "template.render.literal", "template.truthy",          "template.eval.list",
    "template.check",
};

static int failed;

typedef struct bctx {
    cbx_template_env *env;
    json_t *ctx;
    json_t *config;
    const char *expr;
    uint64_t serial; /* new_expr: never the same expression twice */
} bctx;

static void fail(const char *name, const char *what, const cbx_err *err)
{
    if (!failed)
        printf("# FAIL\t%s: %s%s%s\n", name, what, err ? ": " : "", err ? err->msg : "");
    failed = 1;
}

static void loop_render(void *p, uint64_t iters)
{
    bctx *b = p;
    for (uint64_t i = 0; i < iters && !failed; i++) {
        json_t *out = NULL;
        cbx_err err;
        if (cbx_template_render(b->env, b->config, b->ctx, &out, &err) != 0) {
            fail("template.render", "render failed", &err);
            return;
        }
        BENCH_KEEP(out);
        json_decref(out);
    }
}

static void loop_new_expr(void *p, uint64_t iters)
{
    bctx *b = p;
    for (uint64_t i = 0; i < iters && !failed; i++) {
        char tpl[96];
        uint64_t n = b->serial++;
        snprintf(tpl, sizeof tpl, "{{ steps.s%" PRIu64 ".outputs.list[2] + %" PRIu64 " }}",
                 n % NSTEPS, n / NSTEPS);
        json_t *v = json_string(tpl);
        json_t *out = NULL;
        cbx_err err;
        if (cbx_template_render(b->env, v, b->ctx, &out, &err) != 0) {
            fail("template.render.new_expr", "render failed", &err);
        } else if (json_integer_value(out) !=
                   (json_int_t)(n % NSTEPS) + 1 + (json_int_t)(n / NSTEPS)) {
            fail("template.render.new_expr", "wrong value", NULL);
        }
        json_decref(out);
        json_decref(v);
    }
}

static void loop_new_path(void *p, uint64_t iters)
{
    bctx *b = p;
    for (uint64_t i = 0; i < iters && !failed; i++) {
        char tpl[64];
        uint64_t n = b->serial++ % NSTEPS;
        snprintf(tpl, sizeof tpl, "{{ steps.s%" PRIu64 ".outputs.value }}", n);
        json_t *v = json_string(tpl);
        json_t *out = NULL;
        cbx_err err;
        if (cbx_template_render(b->env, v, b->ctx, &out, &err) != 0)
            fail("template.render.new_path", "render failed", &err);
        else if (json_integer_value(out) != (json_int_t)n)
            fail("template.render.new_path", "wrong value", NULL);
        json_decref(out);
        json_decref(v);
    }
}

static void loop_truthy(void *p, uint64_t iters)
{
    bctx *b = p;
    for (uint64_t i = 0; i < iters && !failed; i++) {
        int t = 0;
        cbx_err err;
        if (cbx_template_truthy(b->env, b->expr, b->ctx, &t, &err) != 0 || t != 1)
            fail("template.truthy", "not true", &err);
    }
}

static void loop_eval(void *p, uint64_t iters)
{
    bctx *b = p;
    for (uint64_t i = 0; i < iters && !failed; i++) {
        json_t *out = NULL;
        cbx_err err;
        if (cbx_template_eval(b->env, b->expr, b->ctx, &out, &err) != 0 ||
            json_array_size(out) != 3)
            fail("template.eval.list", "not a 3-item list", &err);
        json_decref(out);
    }
}

static void loop_check(void *p, uint64_t iters)
{
    bctx *b = p;
    for (uint64_t i = 0; i < iters && !failed; i++) {
        cbx_err err;
        if (cbx_template_check(b->config, &err) != 0)
            fail("template.check", "check failed", &err);
    }
}

static void run_case(const bench_args *a, const char *name, bench_loop_fn loop, bctx *b,
                     uint64_t default_calls)
{
    uint64_t iters = a->iters ? a->iters : default_calls;
    uint64_t warm = iters / 10 ? iters / 10 : 1;
    uint64_t before = alloc_count_total();
    uint64_t calls = warm + iters * (uint64_t)a->runs;
    double ns = bench_best_ns(loop, b, iters, a->runs, warm);
    double allocs = (double)(alloc_count_total() - before) / (double)calls;
    if (failed)
        return;
    bench_emit(name, ns, -1, iters);
    printf("# note\t%s: %.2f us per call; %.1f allocations per call\n", name, ns / 1000.0, allocs);
}

static json_t *make_context(void)
{
    json_t *steps = json_object();
    for (int i = 0; i < NSTEPS; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%d", i);
        json_object_set_new(steps, name,
                            json_pack("{s:{s:i, s:s, s:[i,i,i], s:b}}", "outputs", "value", i,
                                      "stdout", "some output text of a step", "list", i, i + 1,
                                      i + 2, "ok", 1));
    }
    return json_pack("{s:{s:i, s:s}, s:o}", "inputs", "n", 7, "url", "https://api.example.com/v1",
                     "steps", steps);
}

int main(int argc, char **argv)
{
    bench_args a;
    int rc = bench_start(
        argc, argv, "bench_template", names, sizeof names / sizeof names[0], RUNNING_ON_VALGRIND,
        "template: not run under valgrind (rendering is not an allocation-free path)",
        alloc_count_selftest, &a);
    if (rc >= 0)
        return rc;

    bctx b = {0};
    cbx_err err;
    cbx_err_clear(&err);
    if (cbx_template_env_new(&b.env, NULL, &err) != 0) {
        printf("# FAIL\ttemplate: cbx_template_env_new: %s\n", err.msg);
        return 1;
    }
    b.ctx = make_context();
    json_t *small = json_pack("{s:s, s:[s,s], s:i}", "cmd", "echo", "argv",
                              "{{ steps.s9999.outputs.value }}", "n={{ inputs.n }}", "timeout", 5);
    json_t *literal =
        json_pack("{s:s, s:[s,s], s:i}", "cmd", "echo", "argv", "hello", "world", "timeout", 5);

    /* the small config must render as expected before it is timed */
    json_t *out = NULL;
    json_t *want =
        json_pack("{s:s, s:[i,s], s:i}", "cmd", "echo", "argv", 9999, "n=7", "timeout", 5);
    if (cbx_template_render(b.env, small, b.ctx, &out, &err) != 0 || !json_equal(out, want)) {
        printf("# FAIL\ttemplate: the small config rendered wrong: %s\n", err.msg);
        failed = 1;
    }
    json_decref(out);
    json_decref(want);

    if (!failed && bench_selected(&a, names[0])) {
        b.config = small;
        run_case(&a, names[0], loop_render, &b, DEFAULT_CALLS);
    }
    if (!failed && bench_selected(&a, names[1]))
        run_case(&a, names[1], loop_new_path, &b, DEFAULT_CALLS);
    if (!failed && bench_selected(&a, names[2]))
        run_case(&a, names[2], loop_new_expr, &b, DEFAULT_CALLS / 10);
    if (!failed && bench_selected(&a, names[3])) {
        b.config = literal;
        run_case(&a, names[3], loop_render, &b, DEFAULT_CALLS);
    }
    if (!failed && bench_selected(&a, names[4])) {
        b.expr = "steps.s4999.outputs.ok and steps.s5000.outputs.value > inputs.n";
        run_case(&a, names[4], loop_truthy, &b, DEFAULT_CALLS);
    }
    if (!failed && bench_selected(&a, names[5])) {
        b.expr = "steps.s1.outputs.list";
        run_case(&a, names[5], loop_eval, &b, DEFAULT_CALLS);
    }
    if (!failed && bench_selected(&a, names[6])) {
        b.config = small;
        run_case(&a, names[6], loop_check, &b, DEFAULT_CALLS / 10);
    }

    json_decref(small);
    json_decref(literal);
    json_decref(b.ctx);
    cbx_template_env_free(b.env);
    return failed ? 1 : 0;
}
