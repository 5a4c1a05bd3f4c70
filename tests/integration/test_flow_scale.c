/* Long and wide flows give the right outputs: a chain of steps each adding one to the output of
 * the one before, a flat flow of independent steps, a step many others need, foreach steps that
 * wait for free slots of the flow's concurrency in turn, and a chain inside a composite. What
 * the runner keeps per step and how it schedules must not change what a flow computes, however
 * many steps it has. Speed is never asserted (bench/bench_flow_scale.c measures it).
 */
#define _GNU_SOURCE
#include "cbx/flow.h"
#include "cbx/function.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cbx_registry *reg;
static cbx_runtime *rt;

/* {n: input.n + 1} */
static cbx_outcome inc(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)t;
    (void)ud;
    json_int_t n = json_integer_value(json_object_get(input, "n"));
    *output = json_pack("{s:I}", "n", n + 1);
    return CBX_OUTCOME_SUCCESS;
}

static void setup(void)
{
    cbx_err e;
    cr_assert_eq(cbx_registry_new(&reg, &e), 0, "%s", e.msg);
    cbx_function_def def = {.call = inc, .flags = CBX_FUNCTION_INLINE};
    cr_assert_eq(cbx_function_register(reg, "inc", &def, &e), 0, "%s", e.msg);
    cbx_runtime_opts o = {.registry = reg};
    cr_assert_eq(cbx_runtime_new(&rt, &o, &e), 0, "%s", e.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    cbx_function_unregister_all(reg);
    cbx_registry_free(reg);
}

TestSuite(flow_scale, .init = setup, .fini = teardown, .timeout = 600);

typedef struct text {
    char *p;
    size_t len;
    FILE *f;
} text;

static void text_open(text *t)
{
    t->f = open_memstream(&t->p, &t->len);
    cr_assert_not_null(t->f);
}

static cbx_flow *text_load(text *t)
{
    cr_assert_eq(fclose(t->f), 0);
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load_string(&f, t->p, t->len, "scale.yaml", reg, &d);
    cbx_err first = {0};
    if (rc < 0)
        cbx_diag_first(&d, &first);
    cbx_diag_clear(&d);
    cr_assert_eq(rc, 0, "%d:%d: %s", first.line, first.col, first.msg);
    free(t->p);
    return f;
}

static void run_ok(cbx_flow *f, cbx_flow_result *res, size_t steps)
{
    cbx_err e;
    int rc = cbx_flow_run(rt, f, NULL, res, &e);
    cr_assert_eq(rc, 0, "%s", res->error);
    cr_assert_eq(res->status, CBX_STATUS_SUCCESS, "%s", res->error);
    cr_assert_eq(json_object_size(res->steps), steps);
}

static json_int_t step_n(const cbx_flow_result *res, const char *name)
{
    json_t *s = json_object_get(res->steps, name);
    cr_assert_str_eq(json_string_value(json_object_get(s, "status")), "success", "%s", name);
    return json_integer_value(json_object_get(json_object_get(s, "outputs"), "n"));
}

/* Each step's input is the previous step's output: the last gives the length of the chain. */
Test(flow_scale, a_long_chain_passes_each_output_to_the_next_step)
{
    const size_t n = 10000;
    text t;
    text_open(&t);
    fprintf(t.f, "name: chain\noutputs: {last: '{{ steps.s%zu.outputs.n }}'}\nsteps:\n", n - 1);
    fprintf(t.f, "  - {name: s0, executor: function, config: {name: inc, input: {n: 0}}}\n");
    for (size_t i = 1; i < n; i++)
        fprintf(t.f,
                "  - {name: s%zu, executor: function, needs: [s%zu], config: {name: inc, input: "
                "{n: '{{ steps.s%zu.outputs.n }}'}}}\n",
                i, i - 1, i - 1);
    cbx_flow *f = text_load(&t);
    cbx_flow_result res;
    run_ok(f, &res, n);
    cr_assert_eq(json_integer_value(json_object_get(res.outputs, "last")), (json_int_t)n);
    char name[32];
    for (size_t i = 0; i < n; i += 997) {
        snprintf(name, sizeof name, "s%zu", i);
        cr_assert_eq(step_n(&res, name), (json_int_t)i + 1, "%s", name);
    }
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* Many independent steps, then one that needs them all, and all of them needing one first. */
Test(flow_scale, a_wide_flat_flow_runs_every_step_once)
{
    const size_t n = 20000;
    text t;
    text_open(&t);
    fprintf(t.f, "name: flat\nconcurrency: 16\nsteps:\n");
    fprintf(t.f, "  - {name: first, executor: function, config: {name: inc, input: {n: 41}}}\n");
    for (size_t i = 0; i < n; i++)
        fprintf(t.f,
                "  - {name: s%zu, executor: function, needs: [first], config: {name: inc, input: "
                "{n: %zu}}}\n",
                i, i);
    fprintf(t.f, "  - {name: last, executor: function, needs: [");
    for (size_t i = 0; i < n; i++)
        fprintf(t.f, "%ss%zu", i ? ", " : "", i);
    fprintf(t.f, "], config: {name: inc, input: {n: '{{ steps.first.outputs.n }}'}}}\n");
    cbx_flow *f = text_load(&t);
    cbx_flow_result res;
    run_ok(f, &res, n + 2);
    cr_assert_eq(step_n(&res, "first"), 42);
    cr_assert_eq(step_n(&res, "last"), 43);
    char name[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "s%zu", i);
        cr_assert_eq(step_n(&res, name), (json_int_t)i + 1, "%s", name);
    }
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* Foreach steps side by side, more items than free slots: each waits for slots in turn, and
 * every item runs once, its output in its place. */
Test(flow_scale, foreach_steps_waiting_for_slots_run_every_item)
{
    const size_t steps = 50, items = 200;
    text t;
    text_open(&t);
    fprintf(t.f, "name: many_foreach\nconcurrency: 3\nsteps:\n");
    for (size_t s = 0; s < steps; s++) {
        fprintf(t.f,
                "  - {name: f%zu, executor: function, foreach: '{{ inputs.list }}', "
                "config: {name: inc, input: {n: '{{ item }}'}}%s}\n",
                s, s % 2 ? ", parallelism: 2" : "");
    }
    fprintf(t.f, "inputs:\n  list: {type: array}\n");
    cbx_flow *f = text_load(&t);
    json_t *list = json_array();
    for (size_t i = 0; i < items; i++)
        json_array_append_new(list, json_integer((json_int_t)(i * 10)));
    json_t *in = json_pack("{s:o}", "list", list);
    cbx_flow_run_opts o = {.inputs = in};
    cbx_flow_result res;
    cbx_err e;
    cr_assert_eq(cbx_flow_run(rt, f, &o, &res, &e), 0, "%s", res.error);
    json_decref(in);
    char name[32];
    for (size_t s = 0; s < steps; s++) {
        snprintf(name, sizeof name, "f%zu", s);
        json_t *outs = json_object_get(json_object_get(res.steps, name), "outputs");
        cr_assert_eq(json_array_size(outs), items, "%s", name);
        for (size_t i = 0; i < items; i++)
            cr_assert_eq(json_integer_value(json_object_get(json_array_get(outs, i), "n")),
                         (json_int_t)(i * 10 + 1), "%s[%zu]", name, i);
    }
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* A chain inside a composite sees its own steps (and the flow's) in its templates. */
Test(flow_scale, a_chain_in_a_composite_reads_its_own_steps_and_the_flows)
{
    const size_t n = 2000;
    text t;
    text_open(&t);
    fprintf(t.f, "name: nested\noutputs: {last: '{{ steps.group.outputs.c%zu.n }}'}\nsteps:\n",
            n - 1);
    fprintf(t.f, "  - {name: base, executor: function, config: {name: inc, input: {n: 99}}}\n");
    fprintf(t.f, "  - name: group\n    needs: [base]\n    executor: steps\n    steps:\n");
    fprintf(t.f, "      - {name: c0, executor: function, config: {name: inc, input: {n: '{{ "
                 "steps.base.outputs.n }}'}}}\n");
    for (size_t i = 1; i < n; i++)
        fprintf(t.f,
                "      - {name: c%zu, executor: function, config: {name: inc, input: {n: '{{ "
                "steps.c%zu.outputs.n }}'}}}\n",
                i, i - 1);
    cbx_flow *f = text_load(&t);
    cbx_flow_result res;
    run_ok(f, &res, 2);
    cr_assert_eq(json_integer_value(json_object_get(res.outputs, "last")), (json_int_t)(100 + n));
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

typedef struct counts {
    size_t started, finished;
    uint32_t last_done, total;
} counts;

static void count_event(const cbx_flow_event *ev, void *ud)
{
    counts *c = ud;
    if (ev->kind == CBX_FLOW_STEP_STARTED)
        c->started++;
    if (ev->kind == CBX_FLOW_STEP_FINISHED)
        c->finished++;
    c->last_done = ev->done;
    c->total = ev->total;
}

/* An inline function ends within cbx_runtime_submit: its step (and a foreach step of such items)
 * still ends once, with one FINISHED event, and the count of steps done ends at the total. */
Test(flow_scale, a_step_whose_execution_ends_at_once_ends_once)
{
    text t;
    text_open(&t);
    fprintf(t.f, "name: once\nsteps:\n"
                 "  - {name: a, executor: function, config: {name: inc, input: {n: 1}}}\n"
                 "  - {name: b, executor: function, needs: [a], foreach: [1, 2, 3], config: "
                 "{name: inc, input: {n: '{{ item }}'}}}\n"
                 "  - {name: c, executor: function, needs: [a, b], config: {name: inc, input: "
                 "{n: '{{ steps.b.outputs[3].n }}'}}}\n");
    cbx_flow *f = text_load(&t);
    counts c = {0};
    cbx_flow_run_opts o = {.on_event = count_event, .ud = &c};
    cbx_flow_result res;
    cbx_err e;
    cr_assert_eq(cbx_flow_run(rt, f, &o, &res, &e), 0, "%s", res.error);
    cr_assert_eq(c.started, 3);
    cr_assert_eq(c.finished, 3);
    cr_assert_eq(c.last_done, 3);
    cr_assert_eq(c.total, 3);
    cr_assert_eq(step_n(&res, "c"), 5);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}
