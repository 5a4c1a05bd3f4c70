/* What a flow run's result holds per step, as cbx_flow_run_opts.steps asks: a record per step
 * (the default), only the outputs of the steps that succeeded (in the flow's order), or nothing;
 * the run, its status and its outputs are the same either way. Real processes run the steps.
 */
#define _GNU_SOURCE
#include "cbx/flow.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"
#include "flow_fixture.h"

#include <criterion/criterion.h>
#include <string.h>

TestSuite(flow_steps_table, .init = flow_fixture_setup, .fini = flow_fixture_teardown,
          .timeout = 60);

static int run(cbx_flow *f, cbx_flow_steps_table table, cbx_flow_result *res)
{
    cbx_flow_run_opts o = {.steps = table};
    cbx_err e;
    memset(res, 0, sizeof *res);
    return cbx_flow_run(rt, f, &o, res, &e);
}

/* Written out of name order, so that the flow's order shows: a failure tolerated, a step
 * skipped by its condition, a step without outputs of its own (a composite's), and two that
 * print. */
static const char *mixed =
    "name: mixed\n"
    "steps:\n"
    "  - {name: zeta, executor: command, config: {argv: [printf, z]}}\n"
    "  - {name: broken, executor: command, continue_on_error: true,\n"
    "     config: {argv: ['false']}}\n"
    "  - {name: never, executor: command, when: 'false',\n"
    "     config: {argv: [printf, never]}}\n"
    "  - name: alpha\n"
    "    needs: [zeta, broken]\n"
    "    executor: command\n"
    "    config: {argv: [printf, '%s', '{{ steps.zeta.outputs.stdout }}a']}\n";

Test(flow_steps_table, outputs_are_those_of_the_records_that_succeeded_in_the_flows_order)
{
    cbx_flow *f = flow_fixture_load(mixed);
    cbx_flow_result full, brief;
    cr_assert_eq(run(f, CBX_FLOW_STEPS_RECORDS, &full), 0, "%s", full.error);
    cr_assert_eq(run(f, CBX_FLOW_STEPS_OUTPUTS, &brief), 0, "%s", brief.error);
    cr_assert_eq(brief.status, CBX_STATUS_SUCCESS);
    cr_assert_eq(json_object_size(full.steps), 4);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(full.steps, "broken"), "status")),
        "failed");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(full.steps, "never"), "status")),
        "skipped");

    /* the same as a record's outputs, for exactly the steps whose status is success */
    const char *want[] = {"zeta", "alpha"};
    cr_assert_eq(json_object_size(brief.steps), 2, "%zu steps", json_object_size(brief.steps));
    size_t k = 0;
    const char *key;
    json_t *out;
    json_object_foreach(brief.steps, key, out)
    {
        cr_assert(k < 2);
        cr_assert_str_eq(key, want[k], "step %zu is %s", k, key);
        json_t *rec = json_object_get(full.steps, key);
        cr_assert_str_eq(json_string_value(json_object_get(rec, "status")), "success");
        cr_assert(json_equal(out, json_object_get(rec, "outputs")));
        k++;
    }
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(brief.steps, "alpha"), "stdout")), "za");
    cr_assert(json_equal(brief.outputs, full.outputs));
    cbx_flow_result_clear(&full);
    cbx_flow_result_clear(&brief);
    cbx_flow_free(f);
}

Test(flow_steps_table, none_leaves_steps_null_and_the_rest_as_it_is)
{
    cbx_flow *f =
        flow_fixture_load("name: declared\n"
                          "steps:\n"
                          "  - {name: a, executor: command, config: {argv: [printf, one]}}\n"
                          "  - {name: b, executor: command, needs: [a],\n"
                          "     config: {argv: [printf, '{{ steps.a.outputs.stdout }}+two']}}\n"
                          "outputs:\n"
                          "  got: '{{ steps.b.outputs.stdout }}'\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, CBX_FLOW_STEPS_NONE, &res), 0, "%s", res.error);
    cr_assert_eq(res.status, CBX_STATUS_SUCCESS);
    cr_assert_null(res.steps);
    cr_assert_str_eq(json_string_value(json_object_get(res.outputs, "got")), "one+two");
    cr_assert_neq(res.run_id[0], '\0');
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_steps_table, a_failed_run_reports_its_error_without_records)
{
    cbx_flow *f =
        flow_fixture_load("name: failing\n"
                          "steps:\n"
                          "  - {name: ok, executor: command, config: {argv: [printf, fine]}}\n"
                          "  - {name: bad, executor: command, needs: [ok],\n"
                          "     config: {argv: ['false']}}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, CBX_FLOW_STEPS_OUTPUTS, &res), CBX_EFAILED);
    cr_assert_eq(res.status, CBX_STATUS_FAILED);
    cr_assert(strstr(res.error, "step 'bad' failed"), "%s", res.error);
    /* the step that succeeded is there, the failed one is not */
    cr_assert_eq(json_object_size(res.steps), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(res.steps, "ok"), "stdout")),
                     "fine");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}
