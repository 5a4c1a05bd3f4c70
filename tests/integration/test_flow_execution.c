/* The seed's `config: {execution: {timeout, mode}}`, at the top of a flow and in a step's config:
 * the timeout is honoured (the flow's run, a step's attempts), and what cbx cannot honour is
 * refused at load time with the key named. Real processes; speed is never asserted. */
#include "cbx/flow.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"
#include "flow_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(flow_execution, .init = flow_fixture_setup, .fini = flow_fixture_teardown,
          .timeout = 120);

/* Load text: 0 and the flow, or the first problem's message in msg. */
static int load(const char *text, cbx_flow **f, char *msg, size_t len)
{
    cbx_diag d = {0};
    int rc = cbx_flow_load_string(f, text, strlen(text), "inline.yaml", reg, &d);
    cbx_err first = {0};
    if (rc < 0) {
        cbx_diag_first(&d, &first);
        snprintf(msg, len, "%d:%d: %s", first.line, first.col, first.msg);
    }
    cbx_diag_clear(&d);
    return rc;
}

Test(flow_execution, the_flows_timeout_in_seconds_bounds_the_run)
{
    cbx_flow *f = NULL;
    char msg[1024] = "";
    cr_assert_eq(load("name: seed\n"
                      "steps:\n"
                      "  - {name: nap, executor: command, config: {argv: [sleep, '60']}}\n"
                      "config:\n"
                      "  execution:\n"
                      "    mode: async\n"
                      "    timeout: 0.3\n",
                      &f, msg, sizeof msg),
                 0, "%s", msg);
    cbx_flow_result res;
    cbx_err e;
    cr_expect_eq(cbx_flow_run(rt, f, NULL, &res, &e), CBX_ETIMEDOUT, "%s", res.error);
    cr_expect_str_eq(res.error, "the flow timed out after 300ms");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_execution, a_steps_timeout_bounds_each_attempt)
{
    cbx_flow *f = NULL;
    char msg[1024] = "";
    cr_assert_eq(load("name: seed\n"
                      "steps:\n"
                      "  - name: nap\n"
                      "    executor: command\n"
                      "    config: {argv: [sleep, '60'], execution: {timeout: 200ms}}\n",
                      &f, msg, sizeof msg),
                 0, "%s", msg);
    cbx_flow_result res;
    cbx_err e;
    cr_expect_eq(cbx_flow_run(rt, f, NULL, &res, &e), CBX_ETIMEDOUT, "%s", res.error);
    json_t *nap = json_object_get(res.steps, "nap");
    cr_expect_str_eq(json_string_value(json_object_get(nap, "status")), "timeout");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

static void refused(const char *text, const char *want)
{
    cbx_flow *f = NULL;
    char msg[1024] = "";
    cr_expect_neq(load(text, &f, msg, sizeof msg), 0, "accepted: %s", text);
    cr_expect(strstr(msg, want), "'%s' not in '%s'", want, msg);
    cbx_flow_free(f);
}

#define STEPS "steps:\n  - {name: a, executor: command, config: {argv: [echo]}}\n"

Test(flow_execution, what_cannot_be_honoured_is_refused)
{
    refused("name: x\n" STEPS "config: {execution: {mode: sync}}\n",
            "4:22: config.execution.mode: only 'async' is supported");
    refused("name: x\n" STEPS "config: {execution: {timeout: -1}}\n",
            "config.execution.timeout: expected a positive number of seconds");
    refused("name: x\n" STEPS "config: {execution: {timeout: 5, retries: 2}}\n",
            "config.execution.retries: unknown execution setting 'retries'");
    refused("name: x\n" STEPS "config: {workers: 2}\n", "config: unknown key 'workers'");
    refused("name: x\ntimeout: 10s\n" STEPS "config: {execution: {timeout: 300}}\n",
            "config.execution.timeout and timeout: disagree");
    refused("name: x\nsteps:\n"
            "  - {name: a, executor: command, timeout: 1s,\n"
            "     config: {argv: [echo], execution: {timeout: 2}}}\n",
            "step 'a': config.execution.timeout and timeout: disagree");
    refused("name: x\nsteps:\n"
            "  - {name: a, executor: command, config: {argv: [echo], execution: {when: 1}}}\n",
            "step 'a': config.execution.when: unknown execution setting");
}
