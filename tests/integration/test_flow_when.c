/* Steps that run on failure: `when: always()` runs after its dependencies whatever their end,
 * `when: failure()` only when one of them failed; and what templates see of a step that did not
 * run (its outputs are nil: they render as null, and `x and x.y` guards a read). Real processes;
 * speed is never asserted. */
#include "cbx/flow.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"
#include "flow_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(flow_when, .init = flow_fixture_setup, .fini = flow_fixture_teardown, .timeout = 60);

static int run_text(const char *text, cbx_flow_result *res)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load_string(&f, text, strlen(text), "inline.yaml", reg, &d);
    cbx_err first = {0};
    if (rc < 0)
        cbx_diag_first(&d, &first);
    cbx_diag_clear(&d);
    cr_assert_eq(rc, 0, "%d:%d: %s", first.line, first.col, first.msg);
    cbx_err e;
    rc = cbx_flow_run(rt, f, NULL, res, &e);
    cbx_flow_free(f);
    return rc;
}

static const char *status_of(const cbx_flow_result *res, const char *name)
{
    json_t *s = json_object_get(res->steps, name);
    cr_assert_not_null(s, "no step '%s'", name);
    return json_string_value(json_object_get(s, "status"));
}

static const char *stdout_of(const cbx_flow_result *res, const char *name)
{
    json_t *o = json_object_get(json_object_get(res->steps, name), "outputs");
    return json_string_value(json_object_get(o, "stdout"));
}

#define FAILING                                                                                    \
    "name: w\n"                                                                                    \
    "steps:\n"                                                                                     \
    "  - {name: bad, executor: command, config: {argv: [sh, -c, 'exit 3']}}\n"                     \
    "  - {name: after, executor: command, needs: bad, config: {argv: [echo, after]}}\n"

Test(flow_when, always_runs_after_a_failure_and_reads_skipped_outputs_as_null)
{
    cbx_flow_result res;
    int rc = run_text(FAILING "  - name: cleanup\n"
                              "    executor: command\n"
                              "    needs: [bad, after]\n"
                              "    when: always()\n"
                              "    config: {argv: [echo, \"{{ steps.after.outputs and "
                              "steps.after.outputs.stdout or 'none' }}|{{ steps.after.outputs }}|"
                              "{{ steps.after.status }}\"]}\n",
                      &res);
    cr_expect_neq(rc, 0, "the flow still fails: its step 'bad' did");
    cr_expect_str_eq(status_of(&res, "bad"), "failed");
    cr_expect_str_eq(status_of(&res, "after"), "skipped");
    cr_expect_str_eq(status_of(&res, "cleanup"), "success");
    cr_expect_str_eq(stdout_of(&res, "cleanup"), "none||skipped\n");
    cbx_flow_result_clear(&res);
}

Test(flow_when, failure_runs_only_when_a_dependency_failed)
{
    cbx_flow_result res;
    int rc = run_text(FAILING "  - {name: notify, executor: command, needs: after,\n"
                              "     when: '{{ failure() }}', config: {argv: [echo, notified]}}\n",
                      &res);
    cr_expect_neq(rc, 0);
    cr_expect_str_eq(status_of(&res, "notify"), "success", "'after' was skipped for bad's failure");
    cr_expect_str_eq(stdout_of(&res, "notify"), "notified\n");
    cbx_flow_result_clear(&res);

    rc = run_text("name: w\n"
                  "steps:\n"
                  "  - {name: good, executor: command, config: {argv: [echo, ok]}}\n"
                  "  - {name: notify, executor: command, needs: good, when: failure(),\n"
                  "     config: {argv: [echo, notified]}}\n"
                  "  - {name: fin, executor: command, needs: notify, when: always(),\n"
                  "     config: {argv: [echo, fin]}}\n"
                  "  - {name: next, executor: command, needs: notify, config: {argv: [echo, n]}}\n",
                  &res);
    cr_expect_eq(rc, 0, "%s", res.error);
    cr_expect_str_eq(status_of(&res, "notify"), "skipped");
    cr_expect_str_eq(status_of(&res, "fin"), "success");
    cr_expect_str_eq(status_of(&res, "next"), "success",
                     "a step skipped by its condition does not skip its dependents");
    cbx_flow_result_clear(&res);
}

Test(flow_when, failure_sees_a_tolerated_failure)
{
    cbx_flow_result res;
    int rc = run_text("name: w\n"
                      "steps:\n"
                      "  - {name: bad, executor: command, continue_on_error: true,\n"
                      "     config: {argv: [sh, -c, 'exit 1']}}\n"
                      "  - {name: plain, executor: command, needs: bad, config: {argv: ['true']}}\n"
                      "  - {name: notify, executor: command, needs: bad, when: failure(),\n"
                      "     config: {argv: ['true']}}\n",
                      &res);
    cr_expect_eq(rc, 0, "%s", res.error);
    cr_expect_str_eq(status_of(&res, "plain"), "success");
    cr_expect_str_eq(status_of(&res, "notify"), "success");
    cbx_flow_result_clear(&res);
}
