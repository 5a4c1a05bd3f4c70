/* Scheduling of a flow's steps, through the library with real processes: independent steps
 * overlap in time, a step never starts before the steps it waits for have finished, the flow's
 * concurrency bounds the steps running at once, `when` skips a step without stopping those that
 * wait on it, and a failure skips its dependents unless the step has `continue_on_error`.
 *
 * Times come from the commands themselves: each step prints when it started and ended (date
 * +%s%N around a sleep, or around a rendezvous in tests/flows/run/meet.sh), so an interval is
 * inside the time its step really ran. Steps that must overlap wait for one another's start
 * (meet.sh) instead of sleeping, so that a slow machine cannot pull them apart. Speed is never
 * asserted, only order and overlap.
 */
#include "cbx/flow.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"
#include "flow_fixture.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(flow_schedule, .init = flow_fixture_setup, .fini = flow_fixture_teardown, .timeout = 60);

static cbx_flow *load_fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/flows/run/%s", CBX_SOURCE_DIR, name);
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load(&f, path, reg, &d);
    cbx_err first = {0};
    if (rc < 0)
        cbx_diag_first(&d, &first);
    cbx_diag_clear(&d);
    cr_assert_eq(rc, 0, "%s:%d:%d: %s", first.where, first.line, first.col, first.msg);
    return f;
}

/* Run f with inputs (JSON text or NULL) and a concurrency (0 = the flow's). */
static int run(cbx_flow *f, const char *inputs, uint32_t concurrency, cbx_flow_result *res)
{
    json_t *in = inputs ? json_loads(inputs, 0, NULL) : NULL;
    cr_assert(!inputs || in, "bad inputs JSON %s", inputs);
    cbx_flow_run_opts o = {.inputs = in, .concurrency = concurrency};
    cbx_err e;
    int rc = cbx_flow_run(rt, f, &o, res, &e);
    json_decref(in);
    return rc;
}

/* Run f as run() does, with the inputs of the meet.sh fixtures: a fresh directory for the
 * rendezvous marks (removed after the run) and the script's path. */
static int run_meeting(cbx_flow *f, uint32_t concurrency, cbx_flow_result *res)
{
    char dir[] = "/tmp/cbx-sched-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char inputs[1024];
    snprintf(inputs, sizeof inputs, "{\"dir\": \"%s\", \"meet\": \"%s/tests/flows/run/meet.sh\"}",
             dir, CBX_SOURCE_DIR);
    int rc = run(f, inputs, concurrency, res);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    return rc;
}

static json_t *step(const cbx_flow_result *res, const char *name)
{
    json_t *s = json_object_get(res->steps, name);
    cr_assert_not_null(s, "no step '%s' in the result", name);
    return s;
}

static const char *step_str(const cbx_flow_result *res, const char *name, const char *key)
{
    return json_string_value(json_object_get(step(res, name), key));
}

static const char *step_stdout(const cbx_flow_result *res, const char *name)
{
    const char *s =
        json_string_value(json_object_get(json_object_get(step(res, name), "outputs"), "stdout"));
    cr_assert_not_null(s, "step '%s' has no stdout", name);
    return s;
}

typedef struct interval {
    uint64_t start, end;
} interval;

/* The "START END ..." a timing step printed. */
static interval when_ran(const cbx_flow_result *res, const char *name)
{
    interval iv = {0, 0};
    const char *out = step_stdout(res, name);
    cr_assert_eq(sscanf(out, "%" SCNu64 " %" SCNu64, &iv.start, &iv.end), 2,
                 "step '%s' printed '%s'", name, out);
    cr_assert_leq(iv.start, iv.end);
    return iv;
}

static int overlap(interval a, interval b)
{
    return a.start < b.end && b.start < a.end;
}

/* The most intervals that hold one same instant. */
static int max_overlap(const interval *iv, size_t n)
{
    int best = 0;
    for (size_t i = 0; i < n; i++) {
        int at = 0; /* intervals holding iv[i].start */
        for (size_t k = 0; k < n; k++)
            if (iv[k].start <= iv[i].start && iv[i].start < iv[k].end)
                at++;
        if (at > best)
            best = at;
    }
    return best;
}

static void assert_after(const cbx_flow_result *res, const char *later, const char *earlier)
{
    interval l = when_ran(res, later), e = when_ran(res, earlier);
    cr_assert_geq(l.start, e.end, "'%s' started %.3f ms before '%s' ended", later,
                  (double)(e.end - l.start) / 1e6, earlier);
}

/* ---- overlap and order ------------------------------------------------------------------------
 */

Test(flow_schedule, independent_steps_overlap_and_dependents_wait)
{
    cbx_flow *f = load_fixture("sched_dag.yaml");
    cbx_flow_result res;
    cr_assert_eq(run_meeting(f, 0, &res), 0, "%s", res.error);
    cr_assert_eq(res.status, CBX_STATUS_SUCCESS);
    /* b and c wait for a only: they run side by side; e waits for nothing (each meets the steps
     * it must overlap with: see the fixture) */
    cr_assert(overlap(when_ran(&res, "b"), when_ran(&res, "c")), "b and c did not overlap");
    cr_assert(overlap(when_ran(&res, "e"), when_ran(&res, "a")), "e and a did not overlap");
    cr_assert(overlap(when_ran(&res, "e"), when_ran(&res, "b")), "e and b did not overlap");
    /* every edge: through needs: (a->b, a->c, b->d) and through a reference (c->d) */
    assert_after(&res, "b", "a");
    assert_after(&res, "c", "a");
    assert_after(&res, "d", "b");
    assert_after(&res, "d", "c");
    /* d saw c's output */
    char want[128];
    snprintf(want, sizeof want, " %s", step_stdout(&res, "c"));
    const char *d = step_stdout(&res, "d");
    cr_assert(strlen(d) > strlen(want) && strcmp(d + strlen(d) - strlen(want), want) == 0,
              "d printed '%s', expected it to end with '%s'", d, want);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* A layered DAG of twelve steps with sleeps of different lengths, three at a time: every edge is
 * respected and no more than three run at once. */
Test(flow_schedule, every_edge_of_a_dag_is_respected_under_a_concurrency_limit)
{
    static const char *const deps[12] = {
        "",       /* n0 */
        "",       /* n1 */
        "n0",     /* n2 */
        "n0 n1",  /* n3 */
        "n1",     /* n4 */
        "n2 n3",  /* n5 */
        "n3",     /* n6 */
        "n4 n2",  /* n7 */
        "n5",     /* n8 */
        "n6 n7",  /* n9 */
        "n8 n9",  /* n10 */
        "n4 n10", /* n11 */
    };
    static const char *const sleeps[12] = {"0.05", "0.15", "0.1", "0.05", "0.2",  "0.1",
                                           "0.15", "0.05", "0.1", "0.2",  "0.05", "0.1"};
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof text,
                                  "name: dag12\nconcurrency: 3\ninputs:\n  - {name: dir, type: "
                                  "string}\n  - {name: meet, type: string}\nsteps:\n");
    for (int i = 0; i < 12; i++) {
        if (i < 2) /* the two roots meet each other: they overlap however slow the machine */
            len += (size_t)snprintf(text + len, sizeof text - len,
                                    "  - name: n%d\n    executor: command\n    config: {argv: [sh, "
                                    "'{{ inputs.meet }}', '{{ inputs.dir }}', n%d, '20', n%d]}\n",
                                    i, i, 1 - i);
        else
            len +=
                (size_t)snprintf(text + len, sizeof text - len,
                                 "  - name: n%d\n    executor: command\n    config: {shell: true, "
                                 "command: \"s=$(date +%%s%%N); sleep %s; printf '%%s %%s' $s "
                                 "$(date +%%s%%N)\"}\n",
                                 i, sleeps[i]);
        if (deps[i][0]) {
            len += (size_t)snprintf(text + len, sizeof text - len, "    needs: [");
            char buf[32];
            snprintf(buf, sizeof buf, "%s", deps[i]);
            int first = 1;
            for (char *save = NULL, *t = strtok_r(buf, " ", &save); t;
                 t = strtok_r(NULL, " ", &save), first = 0)
                len +=
                    (size_t)snprintf(text + len, sizeof text - len, "%s%s", first ? "" : ", ", t);
            len += (size_t)snprintf(text + len, sizeof text - len, "]\n");
        }
        cr_assert_lt(len, sizeof text);
    }
    cbx_flow *f = flow_fixture_load(text);
    cbx_flow_result res;
    cr_assert_eq(run_meeting(f, 0, &res), 0, "%s", res.error);
    interval iv[12];
    for (int i = 0; i < 12; i++) {
        char name[8];
        snprintf(name, sizeof name, "n%d", i);
        iv[i] = when_ran(&res, name);
    }
    int edges = 0;
    for (int i = 0; i < 12; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%s", deps[i]);
        for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            int d = atoi(t + 1);
            cr_assert_geq(iv[i].start, iv[d].end, "n%d started before n%d ended", i, d);
            edges++;
        }
    }
    cr_assert_eq(edges, 16);
    int most = max_overlap(iv, 12);
    cr_assert_leq(most, 3, "%d steps ran at once under concurrency 3", most);
    cr_assert_geq(most, 2, "the steps never ran side by side");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- concurrency ------------------------------------------------------------------------------
 */

static int most_at_once(const cbx_flow_result *res)
{
    interval iv[6];
    for (int i = 0; i < 6; i++) {
        char name[8];
        snprintf(name, sizeof name, "s%d", i + 1);
        iv[i] = when_ran(res, name);
    }
    return max_overlap(iv, 6);
}

Test(flow_schedule, the_flows_concurrency_bounds_the_steps_at_once)
{
    cbx_flow *f = load_fixture("sched_limit.yaml");
    cbx_flow_result res;
    cr_assert_eq(run_meeting(f, 0, &res), 0, "%s", res.error);
    cr_assert_eq(most_at_once(&res), 2, "flow concurrency 2: %d at once", most_at_once(&res));
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_schedule, the_run_options_concurrency_overrides_the_flows)
{
    cbx_flow *f = load_fixture("sched_limit.yaml");
    cbx_flow_result res;
    cr_assert_eq(run_meeting(f, 3, &res), 0, "%s", res.error);
    cr_assert_eq(most_at_once(&res), 3, "concurrency 3: %d at once", most_at_once(&res));
    cbx_flow_result_clear(&res);
    cr_assert_eq(run_meeting(f, 1, &res), 0, "%s", res.error);
    cr_assert_eq(most_at_once(&res), 1, "concurrency 1: %d at once", most_at_once(&res));
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- when --------------------------------------------------------------------------------------
 */

Test(flow_schedule, when_false_skips_the_step_and_its_dependents_still_run)
{
    cbx_flow *f = load_fixture("sched_when.yaml");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, 0, &res), 0, "%s", res.error);
    cr_assert_eq(res.status, CBX_STATUS_SUCCESS);
    cr_assert_str_eq(step_str(&res, "maybe", "status"), "skipped");
    cr_assert(json_is_true(json_object_get(step(&res, "maybe"), "skipped")));
    cr_assert(json_is_null(json_object_get(step(&res, "maybe"), "outputs")));
    cr_assert(strstr(step_str(&res, "maybe", "error"), "when: inputs.flag is false"), "%s",
              step_str(&res, "maybe", "error"));
    cr_assert_str_eq(step_str(&res, "after", "status"), "success");
    cr_assert_str_eq(step_stdout(&res, "after"), "after skipped");
    cr_assert_str_eq(step_str(&res, "last", "status"), "success");
    cr_assert_str_eq(json_string_value(json_object_get(res.outputs, "seen")),
                     "after skipped, last");
    cr_assert_str_eq(json_string_value(json_object_get(res.outputs, "maybe")), "skipped");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_schedule, when_true_runs_the_step)
{
    cbx_flow *f = load_fixture("sched_when.yaml");
    cbx_flow_result res;
    cr_assert_eq(run(f, "{\"flag\": true}", 0, &res), 0, "%s", res.error);
    cr_assert_str_eq(step_str(&res, "maybe", "status"), "success");
    cr_assert(json_is_false(json_object_get(step(&res, "maybe"), "skipped")));
    cr_assert_str_eq(step_stdout(&res, "maybe"), "ran");
    cr_assert_str_eq(json_string_value(json_object_get(res.outputs, "seen")),
                     "after success, last");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_schedule, when_reads_the_outputs_of_the_steps_it_refers_to)
{
    cbx_flow *f =
        flow_fixture_load("name: w\n"
                          "steps:\n"
                          "  - {name: count, executor: command, config: {argv: [printf, '3']}}\n"
                          "  - name: big\n"
                          "    executor: command\n"
                          "    when: \"tonumber(steps.count.outputs.stdout) > 5\"\n"
                          "    config: {argv: [printf, big]}\n"
                          "  - name: small\n"
                          "    executor: command\n"
                          "    when: \"{{ tonumber(steps.count.outputs.stdout) <= 5 }}\"\n"
                          "    config: {argv: [printf, small]}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, 0, &res), 0, "%s", res.error);
    cr_assert_str_eq(step_str(&res, "big", "status"), "skipped");
    cr_assert_str_eq(step_str(&res, "small", "status"), "success");
    cr_assert_str_eq(step_stdout(&res, "small"), "small");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_schedule, a_when_that_cannot_be_evaluated_fails_the_step)
{
    cbx_flow *f =
        flow_fixture_load("name: w\n"
                          "inputs: [{name: n, type: integer, default: 1}]\n"
                          "steps:\n"
                          "  - name: odd\n"
                          "    executor: command\n"
                          "    when: \"inputs.n.x > 1\"\n"
                          "    config: {argv: [printf, odd]}\n"
                          "  - {name: next, executor: command, needs: [odd], config: {argv: "
                          "[printf, x]}}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, 0, &res), CBX_EFAILED, "%s", res.error);
    cr_assert_eq(res.status, CBX_STATUS_FAILED);
    cr_assert_str_eq(step_str(&res, "odd", "status"), "failed");
    cr_assert(strstr(step_str(&res, "odd", "error"), "when: "), "%s",
              step_str(&res, "odd", "error"));
    cr_assert(strstr(res.error, "step 'odd' failed"), "%s", res.error);
    cr_assert_str_eq(step_str(&res, "next", "status"), "skipped");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- failures -----------------------------------------------------------------------------------
 */

Test(flow_schedule, a_failure_skips_its_dependents_and_fails_the_flow_naming_the_step)
{
    cbx_flow *f = load_fixture("sched_fail.yaml");
    cbx_flow_result res;
    cbx_err e;
    cbx_flow_run_opts o = {0};
    int rc = cbx_flow_run(rt, f, &o, &res, &e);
    cr_assert_eq(rc, CBX_EFAILED, "%d: %s", rc, res.error);
    cr_assert_eq(e.code, CBX_EFAILED);
    cr_assert_eq(res.status, CBX_STATUS_FAILED);
    cr_assert_null(res.outputs);
    cr_assert(strstr(res.error, "step 'broken' failed: exit code 3: boom"), "%s", res.error);
    cr_assert_str_eq(e.msg, res.error);
    cr_assert_str_eq(step_str(&res, "broken", "status"), "failed");
    cr_assert_str_eq(step_str(&res, "child", "status"), "skipped");
    cr_assert_str_eq(step_str(&res, "child", "error"), "dependency 'broken' did not succeed");
    cr_assert_str_eq(step_str(&res, "grandchild", "status"), "skipped");
    cr_assert_str_eq(step_str(&res, "grandchild", "error"), "dependency 'child' did not succeed");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_schedule, continue_on_error_lets_dependents_run_and_the_flow_succeed)
{
    cbx_flow *f = load_fixture("sched_continue.yaml");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, 0, &res), 0, "%s", res.error);
    cr_assert_eq(res.status, CBX_STATUS_SUCCESS);
    cr_assert_str_eq(res.error, "");
    cr_assert_str_eq(step_str(&res, "broken", "status"), "failed");
    cr_assert(strstr(step_str(&res, "broken", "error"), "exit code 3"), "%s",
              step_str(&res, "broken", "error"));
    cr_assert_str_eq(step_stdout(&res, "child"), "broken was failed");
    cr_assert_str_eq(step_str(&res, "grandchild", "status"), "success");
    cr_assert_str_eq(json_string_value(json_object_get(res.outputs, "x")), "broken was failed");
    /* the failed attempt's outputs stay readable, typed */
    cr_assert(json_is_integer(json_object_get(res.outputs, "code")));
    cr_assert_eq(json_integer_value(json_object_get(res.outputs, "code")), 3);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_schedule, a_step_skipped_for_a_failure_is_not_a_when_skip)
{
    /* 'gate' is skipped because 'broken' failed; 'after' waits on 'gate' and is skipped too,
     * whereas after a when-skip it would run */
    cbx_flow *f =
        flow_fixture_load("name: w\n"
                          "steps:\n"
                          "  - {name: broken, executor: command, config: {argv: ['false']}}\n"
                          "  - {name: gate, executor: command, needs: [broken], when: 'true',\n"
                          "     config: {argv: [printf, gate]}}\n"
                          "  - {name: after, executor: command, needs: [gate], config: {argv: "
                          "[printf, after]}}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, 0, &res), CBX_EFAILED);
    cr_assert_str_eq(step_str(&res, "gate", "status"), "skipped");
    cr_assert_str_eq(step_str(&res, "after", "status"), "skipped");
    cr_assert_str_eq(step_str(&res, "after", "error"), "dependency 'gate' did not succeed");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}
