/* Running flows through the library, with real processes: foreach (items, literal lists,
 * batches, parallelism, failures), composites in sequence and in parallel, sub-flows with their
 * own inputs, the flow's timeout, input checks, the typing of outputs, resuming a failed run
 * from the journal, and what of a run is committed to the journal when the flow acts on it.
 * Fixtures are in tests/flows/run/. Speed is never asserted.
 */
#define _GNU_SOURCE
#include "cbx/flow.h"
#include "cbx/journal.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"
#include "flow_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

TestSuite(flow_run, .init = flow_fixture_setup, .fini = flow_fixture_teardown, .timeout = 60);

static const char *fixture(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/tests/flows/run/%s", CBX_SOURCE_DIR, name);
    return path;
}

static cbx_flow *load_fixture(const char *name)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    flow_fixture_assert_loaded(cbx_flow_load(&f, fixture(name), reg, &d), &d);
    return f;
}

/* A flow given as text, named as if it were a file in tests/flows/run (sub-flow paths resolve
 * from there). */
static cbx_flow *load_text(const char *text)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    flow_fixture_assert_loaded(
        cbx_flow_load_string(&f, text, strlen(text), fixture("inline.yaml"), reg, &d), &d);
    return f;
}

static int run(cbx_flow *f, const char *inputs, cbx_flow_result *res)
{
    json_t *in = inputs ? json_loads(inputs, 0, NULL) : NULL;
    cr_assert(!inputs || in, "bad inputs JSON %s", inputs);
    cbx_flow_run_opts o = {.inputs = in};
    cbx_err e;
    int rc = cbx_flow_run(rt, f, &o, res, &e);
    json_decref(in);
    return rc;
}

static json_t *step(const cbx_flow_result *res, const char *name)
{
    json_t *s = json_object_get(res->steps, name);
    cr_assert_not_null(s, "no step '%s' in the result", name);
    return s;
}

static json_t *step_outputs(const cbx_flow_result *res, const char *name)
{
    return json_object_get(step(res, name), "outputs");
}

static const char *step_str(const cbx_flow_result *res, const char *name, const char *key)
{
    return json_string_value(json_object_get(step(res, name), key));
}

static const char *out_str(const cbx_flow_result *res, const char *key)
{
    return json_string_value(json_object_get(res->outputs, key));
}

/* The compact JSON text of v (sorted keys), in a static buffer. */
static const char *text_of(const json_t *v)
{
    static char buf[2048];
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    snprintf(buf, sizeof buf, "%s", s ? s : "(none)");
    free(s);
    return buf;
}

typedef struct interval {
    uint64_t start, end;
} interval;

static interval interval_of(const json_t *outputs, const char *what)
{
    interval iv = {0, 0};
    const char *out = json_string_value(json_object_get(outputs, "stdout"));
    cr_assert_not_null(out, "%s: no stdout", what);
    cr_assert_eq(sscanf(out, "%" SCNu64 " %" SCNu64, &iv.start, &iv.end), 2, "%s printed '%s'",
                 what, out);
    return iv;
}

static int overlap(interval a, interval b)
{
    return a.start < b.end && b.start < a.end;
}

/* ---- foreach ------------------------------------------------------------------------------------
 */

Test(flow_run, foreach_runs_once_per_item_with_outputs_in_order)
{
    cbx_flow *f = load_fixture("run_foreach.yaml");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), 0, "%s", res.error);
    json_t *t = step_outputs(&res, "times10");
    cr_assert(json_is_array(t), "%s", text_of(t));
    cr_assert_eq(json_array_size(t), 5);
    for (size_t i = 0; i < 5; i++) {
        char want[8];
        snprintf(want, sizeof want, "%zu", (i + 1) * 10);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(t, i), "stdout")), want,
                         "item %zu", i);
    }
    /* batch_size 2: three executions, each given a list of items */
    json_t *b = step_outputs(&res, "batched");
    cr_assert_eq(json_array_size(b), 3, "%s", text_of(b));
    const char *batches[] = {"[1,2]", "[3,4]", "[5]"};
    for (size_t i = 0; i < 3; i++)
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(b, i), "stdout")),
                         batches[i]);
    /* a literal list */
    json_t *l = step_outputs(&res, "letters");
    cr_assert_eq(json_array_size(l), 3);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(l, 2), "stdout")), "<z>");
    /* outputs read the list */
    cr_assert_eq(json_integer_value(json_object_get(res.outputs, "count")), 5);
    cr_assert(json_is_integer(json_object_get(res.outputs, "first")));
    cr_assert_eq(json_integer_value(json_object_get(res.outputs, "first")), 10);
    cr_assert_str_eq(out_str(&res, "last_batch"), "[5]");
    cbx_flow_result_clear(&res);

    /* other inputs, and an empty list */
    cr_assert_eq(run(f, "{\"items\": [7]}", &res), 0, "%s", res.error);
    cr_assert_str_eq(text_of(json_object_get(res.outputs, "first")), "70");
    cr_assert_eq(json_array_size(step_outputs(&res, "batched")), 1);
    cr_assert_str_eq(out_str(&res, "last_batch"), "[7]");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_run, foreach_over_an_empty_list_succeeds_with_no_outputs)
{
    cbx_flow *f = load_text("name: e\n"
                            "inputs: [{name: items, type: array, default: []}]\n"
                            "steps:\n"
                            "  - {name: each, executor: command, foreach: 'inputs.items',\n"
                            "     config: {argv: ['false']}}\n"
                            "  - {name: after, executor: command, config: {argv: [printf, '%s',\n"
                            "     '{{ tostring(len(steps.each.outputs)) }}']}}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), 0, "%s", res.error);
    cr_assert_str_eq(text_of(step_outputs(&res, "each")), "[]");
    cr_assert_str_eq(json_string_value(json_object_get(step_outputs(&res, "after"), "stdout")),
                     "0");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_run, foreach_parallelism_bounds_the_items_at_once)
{
    cbx_flow *f = load_fixture("run_foreach_parallel.yaml");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), 0, "%s", res.error);
    json_t *o = step_outputs(&res, "each");
    cr_assert_eq(json_array_size(o), 6);
    interval iv[6];
    for (size_t i = 0; i < 6; i++) {
        char what[16];
        snprintf(what, sizeof what, "item %zu", i);
        iv[i] = interval_of(json_array_get(o, i), what);
        unsigned item = 0;
        sscanf(json_string_value(json_object_get(json_array_get(o, i), "stdout")), "%*u %*u %u",
               &item);
        cr_assert_eq(item, i + 1, "outputs out of order");
    }
    int most = 0;
    for (size_t i = 0; i < 6; i++) {
        int at = 0;
        for (size_t k = 0; k < 6; k++)
            at += iv[k].start <= iv[i].start && iv[i].start < iv[k].end;
        if (at > most)
            most = at;
    }
    cr_assert_eq(most, 2, "parallelism 2: %d items at once", most);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_run, a_failed_item_fails_the_step_naming_the_item)
{
    cbx_flow *f = load_text("name: e\n"
                            "steps:\n"
                            "  - name: each\n"
                            "    executor: command\n"
                            "    foreach: [1, 0, 2]\n"
                            "    parallelism: 1\n"
                            "    config: {shell: true, command: 'test {{ item }} -ne 0'}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), CBX_EFAILED);
    cr_assert_str_eq(step_str(&res, "each", "status"), "failed");
    cr_assert(strstr(step_str(&res, "each", "error"), "item 1: exit code 1"), "%s",
              step_str(&res, "each", "error"));
    cr_assert(strstr(res.error, "step 'each' failed: item 1"), "%s", res.error);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_run, a_foreach_expression_that_is_not_a_list_fails_the_step)
{
    cbx_flow *f = load_text("name: e\n"
                            "inputs: [{name: n, type: integer, default: 3}]\n"
                            "steps:\n"
                            "  - {name: each, executor: command, foreach: 'inputs.n',\n"
                            "     config: {argv: [printf, x]}}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), CBX_EFAILED);
    cr_assert(
        strstr(step_str(&res, "each", "error"), "foreach: the expression did not give a list"),
        "%s", step_str(&res, "each", "error"));
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- composites
 * ---------------------------------------------------------------------------------- */

Test(flow_run, composites_run_in_sequence_and_in_parallel)
{
    cbx_flow *f = load_fixture("run_composite.yaml");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), 0, "%s", res.error);
    json_t *seq = step_outputs(&res, "seq");
    cr_assert(json_is_object(seq), "%s", text_of(seq));
    cr_assert_eq(json_object_size(seq), 3, "%s", text_of(seq));
    interval x = interval_of(json_object_get(seq, "x"), "seq.x");
    interval y = interval_of(json_object_get(seq, "y"), "seq.y");
    interval z = interval_of(json_object_get(seq, "z"), "seq.z");
    cr_assert_geq(y.start, x.end, "sequence: y started before x ended");
    cr_assert_geq(z.start, y.end, "sequence: z started before y ended");

    json_t *par = step_outputs(&res, "par");
    interval p = interval_of(json_object_get(par, "p"), "par.p");
    interval q = interval_of(json_object_get(par, "q"), "par.q");
    cr_assert(overlap(p, q), "parallel: p and q did not overlap");
    /* a nested step reads the flow's inputs and a step outside its composite */
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(par, "r"), "stdout")),
                     "hi+hi");
    /* a later step reads a nested step's outputs through the composite's */
    cr_assert_str_eq(out_str(&res, "r"), "hi+hi");
    cr_assert_eq(json_integer_value(json_object_get(res.outputs, "seq_children")), 3);
    cbx_flow_result_clear(&res);

    cr_assert_eq(run(f, "{\"word\": \"yo\"}", &res), 0, "%s", res.error);
    cr_assert_str_eq(out_str(&res, "r"), "yo+yo");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_run, a_failing_nested_step_fails_its_composite_and_stops_the_sequence)
{
    cbx_flow *f = load_text("name: c\n"
                            "steps:\n"
                            "  - name: grp\n"
                            "    executor: steps\n"
                            "    steps:\n"
                            "      - {name: x, executor: command, config: {argv: [printf, x]}}\n"
                            "      - {name: y, executor: command, config: {shell: true,\n"
                            "         command: 'echo nope >&2; exit 4'}}\n"
                            "      - {name: z, executor: command, config: {argv: [printf, z]}}\n"
                            "  - {name: after, executor: command, needs: [grp],\n"
                            "     config: {argv: [printf, after]}}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), CBX_EFAILED);
    cr_assert(strstr(res.error, "grp.y"), "%s", res.error);
    cr_assert(strstr(res.error, "exit code 4: nope"), "%s", res.error);
    cr_assert_str_eq(step_str(&res, "grp", "status"), "failed");
    cr_assert(strstr(step_str(&res, "grp", "error"), "step 'grp.y': exit code 4"), "%s",
              step_str(&res, "grp", "error"));
    cr_assert_str_eq(step_str(&res, "after", "status"), "skipped");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_run, a_tolerated_nested_failure_lets_the_composite_succeed)
{
    cbx_flow *f =
        load_text("name: c\n"
                  "steps:\n"
                  "  - name: grp\n"
                  "    executor: steps\n"
                  "    mode: parallel\n"
                  "    steps:\n"
                  "      - {name: bad, executor: command, continue_on_error: true,\n"
                  "         config: {argv: ['false']}}\n"
                  "      - {name: good, executor: command, config: {argv: [printf, ok]}}\n"
                  "outputs:\n"
                  "  good: '{{ steps.grp.outputs.good.stdout }}'\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), 0, "%s", res.error);
    cr_assert_str_eq(out_str(&res, "good"), "ok");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- sub-flows
 * ----------------------------------------------------------------------------------- */

Test(flow_run, sub_flows_run_with_their_own_inputs_and_give_their_outputs)
{
    cbx_flow *f = load_fixture("run_parent.yaml");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), 0, "%s", res.error);
    /* 4*10 = 40; 40+2 = 42; 42 + 1 (the sub-flow's default b) = 43 */
    cr_assert_str_eq(text_of(step_outputs(&res, "once")),
                     "{\"label\":\"sum of 40 and 2\",\"sum\":42}");
    json_t *total = json_object_get(res.outputs, "total");
    cr_assert(json_is_integer(total), "%s", text_of(total));
    cr_assert_eq(json_integer_value(total), 43);
    cr_assert_str_eq(text_of(json_object_get(res.outputs, "labels")),
                     "[\"sum of 40 and 2\",\"sum of 42 and 1\"]");
    cbx_flow_result_clear(&res);
    cr_assert_eq(run(f, "{\"x\": -1}", &res), 0, "%s", res.error);
    cr_assert_eq(json_integer_value(json_object_get(res.outputs, "total")), -7);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_run, a_sub_flow_given_bad_inputs_fails_its_step)
{
    cbx_flow *f = load_text("name: p\n"
                            "inputs: [{name: word, type: string, default: abc}]\n"
                            "steps:\n"
                            "  - name: sub\n"
                            "    flow: run_sub_sum.yaml\n"
                            "    inputs: {a: '{{ inputs.word }}'}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), CBX_EFAILED);
    const char *err = step_str(&res, "sub", "error");
    cr_assert(strstr(err, "run_sub_sum.yaml: inputs: "), "%s", err);
    cr_assert(strstr(err, "a"), "%s", err);
    cr_assert(strstr(res.error, "step 'sub' failed"), "%s", res.error);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- the flow's timeout -------------------------------------------------------------------------
 */

Test(flow_run, the_flows_timeout_stops_what_runs_and_skips_what_waits)
{
    cbx_flow *f =
        load_text("name: slow\n"
                  "timeout: 300ms\n"
                  "concurrency: 1\n"
                  "steps:\n"
                  "  - {name: sleeper, executor: command, config: {argv: [sleep, '30']}}\n"
                  "  - {name: queued, executor: command, config: {argv: [printf, q]}}\n"
                  "  - {name: after, executor: command, needs: [sleeper],\n"
                  "     config: {argv: [printf, a]}}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), CBX_ETIMEDOUT, "%s", res.error);
    cr_assert_eq(res.status, CBX_STATUS_TIMEOUT);
    cr_assert(strstr(res.error, "the flow timed out after 300ms"), "%s", res.error);
    cr_assert_null(res.outputs);
    cr_assert_str_eq(step_str(&res, "sleeper", "status"), "cancelled");
    cr_assert_str_eq(step_str(&res, "queued", "status"), "skipped");
    cr_assert_str_eq(step_str(&res, "queued", "error"), "the flow timed out");
    cr_assert_str_eq(step_str(&res, "after", "status"), "skipped");
    /* the sleep was stopped, not waited for */
    cr_assert_lt(res.duration_ns, 20 * 1000000000ull);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- inputs
 * -------------------------------------------------------------------------------------- */

static void assert_rejected(cbx_flow *f, const char *inputs, const char *needle)
{
    cbx_flow_result res;
    int rc = run(f, inputs, &res);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG, "%s: rc %d: %s", inputs, rc, res.error);
    cr_assert_eq(res.status, CBX_STATUS_REJECTED, "%s", inputs);
    cr_assert(strncmp(res.error, "inputs: ", 8) == 0, "%s", res.error);
    cr_assert(strstr(res.error, needle), "%s: '%s' lacks '%s'", inputs, res.error, needle);
    cr_assert_null(res.outputs);
    cr_assert_eq(json_object_size(res.steps), 0, "steps ran: %s", text_of(res.steps));
    cbx_flow_result_clear(&res);
}

Test(flow_run, inputs_are_checked_before_anything_runs)
{
    cbx_flow *f = load_fixture("run_inputs.yaml");
    assert_rejected(f, "{}", "name");
    assert_rejected(f, "{\"name\": 5}", "name");
    assert_rejected(f, "{\"name\": \"n\", \"count\": \"two\"}", "count");
    assert_rejected(f, "{\"name\": \"n\", \"count\": 1.5}", "count");
    assert_rejected(f, "{\"name\": \"n\", \"mode\": \"medium\"}", "mode");
    assert_rejected(f, "{\"name\": \"n\", \"tags\": {}}", "tags");
    assert_rejected(f, "{\"name\": \"n\", \"colour\": \"red\"}", "colour");

    cbx_flow_result res;
    cr_assert_eq(run(f, "{\"name\": \"n\"}", &res), 0, "%s", res.error);
    cr_assert_str_eq(out_str(&res, "shown"), "n/2/fast");
    cr_assert(json_is_integer(json_object_get(res.outputs, "count")));
    cr_assert_str_eq(text_of(json_object_get(res.outputs, "tags")), "[]");
    cbx_flow_result_clear(&res);
    cr_assert_eq(run(f, "{\"name\": \"m\", \"count\": 9, \"mode\": \"slow\", \"tags\": [1]}", &res),
                 0, "%s", res.error);
    cr_assert_str_eq(out_str(&res, "shown"), "m/9/slow");
    cr_assert_str_eq(text_of(json_object_get(res.outputs, "tags")), "[1]");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- outputs
 * ------------------------------------------------------------------------------------- */

Test(flow_run, outputs_keep_the_type_of_a_whole_template)
{
    cbx_flow *f = load_fixture("run_outputs.yaml");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), 0, "%s", res.error);
    json_t *o = res.outputs;
    cr_assert(json_is_integer(json_object_get(o, "integer")), "%s", text_of(o));
    cr_assert_eq(json_integer_value(json_object_get(o, "integer")), 42);
    cr_assert(json_is_real(json_object_get(o, "number")), "%s", text_of(o));
    cr_assert_float_eq(json_real_value(json_object_get(o, "number")), 0.5, 1e-12);
    cr_assert(json_is_true(json_object_get(o, "boolean")), "%s", text_of(o));
    cr_assert_str_eq(text_of(json_object_get(o, "object")),
                     "{\"n\":3,\"ok\":true,\"ratio\":0.5,\"tags\":[\"a\",\"b\"]}");
    cr_assert_str_eq(text_of(json_object_get(o, "array")), "[\"a\",\"b\"]");
    cr_assert_str_eq(out_str(&res, "text"), "n=3, ok=true");
    cr_assert_str_eq(out_str(&res, "bracketed"), "[42]");
    cr_assert(json_is_integer(json_object_get(o, "literal")));
    cr_assert_eq(json_integer_value(json_object_get(o, "literal")), 7);
    cr_assert(json_is_null(json_object_get(o, "nothing")), "%s", text_of(o));
    cr_assert_str_eq(text_of(json_object_get(o, "nested")), "{\"count\":3,\"label\":\"x3\"}");
    cr_assert_str_eq(text_of(json_object_get(o, "list")), "[3,\"42\"]");
    cr_assert_eq(json_object_size(o), 11, "%s", text_of(o));

    /* the result as JSON carries the same outputs */
    json_t *j = cbx_flow_result_to_json(&res);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "success");
    cr_assert_str_eq(json_string_value(json_object_get(j, "run_id")), res.run_id);
    cr_assert(json_equal(json_object_get(j, "outputs"), o));
    cr_assert(json_is_object(json_object_get(json_object_get(j, "steps"), "data")));
    json_decref(j);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_run, an_output_that_cannot_be_rendered_fails_the_flow)
{
    cbx_flow *f = load_text("name: o\n"
                            "steps:\n"
                            "  - {name: s, executor: command, config: {argv: [printf, x]}}\n"
                            "outputs:\n"
                            "  bad: '{{ steps.s.outputs.stdout.deeper.still }}'\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), CBX_EFAILED);
    cr_assert_eq(res.status, CBX_STATUS_FAILED);
    cr_assert(strstr(res.error, "outputs.bad"), "%s", res.error);
    cr_assert_null(res.outputs);
    cr_assert_str_eq(step_str(&res, "s", "status"), "success");
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- the journal and resuming a failed run ------------------------------------------------------
 */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int count_lines(const char *path, const char *line)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[128];
    int n = 0;
    while (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        n += strcmp(buf, line) == 0;
    }
    fclose(f);
    return n;
}

/* A journal in a new directory (dir: a mkdtemp template, filled in), its file dir/journal.db;
 * keeping at most max_executions (0: the default). */
static cbx_journal *temp_journal_keeping(char *dir, uint64_t max_executions)
{
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    cbx_err e;
    cbx_journal *j = NULL;
    cbx_journal_opts jo = {.path = path, .max_executions = max_executions};
    cr_assert_eq(cbx_journal_open(&j, &jo, &e), 0, "%s", e.msg);
    return j;
}

static cbx_journal *temp_journal(char *dir)
{
    return temp_journal_keeping(dir, 0);
}

/* cbx_flow_runs_each's function: keeps the first run's id, stops with 7 */
static int first_run(const json_t *run, void *ud)
{
    snprintf(ud, 40, "%s", json_string_value(json_object_get(run, "run_id")));
    return 7;
}

Test(flow_run, a_failed_run_resumed_reruns_only_what_had_not_succeeded)
{
    char dir[] = "/tmp/cbx_flow_run_XXXXXX";
    cbx_journal *j = temp_journal(dir);
    char log[256], marker[256];
    snprintf(log, sizeof log, "%s/log", dir);
    snprintf(marker, sizeof marker, "%s/marker", dir);
    cbx_err e;
    cbx_runtime *jrt = NULL;
    cbx_runtime_opts ro = {.registry = reg, .journal = j};
    cr_assert_eq(cbx_runtime_new(&jrt, &ro, &e), 0, "%s", e.msg);
    cbx_flow *f = load_fixture("run_resume.yaml");

    json_t *in = json_pack("{s:s}", "dir", dir);
    cbx_flow_run_opts o = {.inputs = in};
    cbx_flow_result res;
    cr_assert_eq(cbx_flow_run(jrt, f, &o, &res, &e), CBX_EFAILED);
    char run_id[40];
    snprintf(run_id, sizeof run_id, "%s", res.run_id);
    cr_assert_neq(run_id[0], '\0');
    cr_assert_str_eq(step_str(&res, "check", "status"), "failed");
    cr_assert_str_eq(step_str(&res, "c", "status"), "skipped");
    cbx_flow_result_clear(&res);

    /* the journal has the run, failed, with its steps */
    json_t *runs = NULL;
    cr_assert_eq(cbx_flow_runs_list(j, 0, &runs, &e), 0, "%s", e.msg);
    cr_assert_eq(json_array_size(runs), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(runs, 0), "run_id")), run_id);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(runs, 0), "status")),
                     "failed");
    json_decref(runs);
    /* one at a time: the same run, and a stop returns the function's value */
    char seen[40] = "";
    cr_assert_eq(cbx_flow_runs_each(j, NULL, first_run, seen, &e), 7);
    cr_assert_str_eq(seen, run_id);
    cr_assert_eq(
        cbx_flow_runs_each(j, &(cbx_flow_runs_filter){.status = "success"}, first_run, seen, &e), 0,
        "a run that failed listed as a success");
    cr_assert_eq(cbx_flow_runs_each(j, NULL, NULL, NULL, &e), -EINVAL);
    json_t *shown = NULL;
    cr_assert_eq(cbx_flow_run_show(j, run_id, &shown, &e), 0, "%s", e.msg);
    json_t *steps = json_object_get(shown, "steps");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(steps, "a"), "status")),
                     "success");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(steps, "check"), "status")),
                     "failed");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(shown, "inputs"), "dir")),
                     dir);
    json_decref(shown);

    /* fixed, then resumed without inputs: they come from the journal */
    FILE *m = fopen(marker, "w");
    cr_assert_not_null(m);
    fclose(m);
    cbx_flow_run_opts ro2 = {.resume_run_id = run_id};
    cr_assert_eq(cbx_flow_run(jrt, f, &ro2, &res, &e), 0, "%s", res.error);
    cr_assert_str_eq(res.run_id, run_id);
    cr_assert_str_eq(out_str(&res, "joined"), "AC");
    cr_assert(json_is_true(json_object_get(step(&res, "a"), "resumed")));
    cr_assert(json_is_false(json_object_get(step(&res, "check"), "resumed")));
    cbx_flow_result_clear(&res);
    cr_assert_eq(count_lines(log, "a"), 1, "a ran again");
    cr_assert_eq(count_lines(log, "check"), 2);
    cr_assert_eq(count_lines(log, "c"), 1);

    /* resuming a finished run runs nothing and gives the same outputs */
    cr_assert_eq(cbx_flow_run(jrt, f, &ro2, &res, &e), 0, "%s", res.error);
    cr_assert_str_eq(out_str(&res, "joined"), "AC");
    cbx_flow_result_clear(&res);
    cr_assert_eq(count_lines(log, "a") + count_lines(log, "check") + count_lines(log, "c"), 4);

    /* an unknown run */
    cbx_flow_run_opts ro3 = {.resume_run_id = "00000000-0000-4000-8000-000000000000"};
    cr_assert_eq(cbx_flow_run(jrt, f, &ro3, &res, &e), -ENOENT);
    cbx_flow_result_clear(&res);

    json_decref(in);
    cbx_flow_free(f);
    cbx_runtime_free(jrt);
    cbx_journal_close(j);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A step's duration is its own, not the time from its start to the end of the flow (it once was
 * measured when the result was built). */
Test(flow_run, each_step_reports_its_own_duration)
{
    cbx_flow *f = load_text("name: durations\n"
                            "steps:\n"
                            "  - name: quick\n"
                            "    executor: command\n"
                            "    config: {argv: [\"true\"]}\n"
                            "  - name: slow\n"
                            "    executor: command\n"
                            "    needs: [quick]\n"
                            "    config: {argv: [sleep, \"3\"]}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), 0, "%s", res.error);
    double quick = json_number_value(json_object_get(step(&res, "quick"), "duration_ms"));
    double slow = json_number_value(json_object_get(step(&res, "slow"), "duration_ms"));
    cr_assert_geq(slow, 3000);
    cr_assert_lt(quick, slow - 1000, "quick took %.1f ms: the slow step's time was counted", quick);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- what is committed when the flow acts on it ------------------------------------------- */

/* The status recorded for the run (step NULL) or one of its steps, as another connection to the
 * journal file reads it: committed records only. "" when there is none. */
static const char *committed(sqlite3 *db, const char *run_id, const char *step, char *buf,
                             size_t len)
{
    sqlite3_stmt *st = NULL;
    buf[0] = '\0';
    const char *sql = step ? "SELECT status FROM flow_steps WHERE run_id = ?1 AND step = ?2"
                           : "SELECT status FROM flow_runs WHERE run_id = ?1";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        if (step)
            sqlite3_bind_text(st, 2, step, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return buf;
}

typedef struct durable_watch {
    sqlite3 *db;
    int started, finished;
} durable_watch;

/* The steps of the flow below and the steps each waits for. */
static const char *const durable_needs[][3] = {
    {"a"},      {"b", "a"},      {"c", "a"}, {"d", "a"}, {"e", "b", "c"},
    {"f", "d"}, {"g", "e", "f"}, {"h", "g"}, {"h.x"},    {"h.y", "h.x"},
};

static void on_durable_event(const cbx_flow_event *ev, void *ud)
{
    durable_watch *w = ud;
    char buf[64];
    cr_assert_str_eq(committed(w->db, ev->run_id, NULL, buf, sizeof buf), "running",
                     "the run is not committed at an event of step %s", ev->step);
    if (ev->kind == CBX_FLOW_STEP_STARTED) {
        w->started++;
        for (size_t i = 0; i < sizeof durable_needs / sizeof durable_needs[0]; i++) {
            if (strcmp(durable_needs[i][0], ev->step) != 0)
                continue;
            for (int k = 1; k < 3 && durable_needs[i][k]; k++)
                cr_assert_str_eq(committed(w->db, ev->run_id, durable_needs[i][k], buf, sizeof buf),
                                 "success", "step %s started before the end of %s was committed",
                                 ev->step, durable_needs[i][k]);
        }
    } else if (ev->kind == CBX_FLOW_STEP_FINISHED) {
        w->finished++;
        cr_assert_str_eq(committed(w->db, ev->run_id, ev->step, buf, sizeof buf), "success",
                         "step %s was reported finished before its end was committed", ev->step);
    }
}

/* A step's end is committed before anything follows from it: its FINISHED event, the start of
 * the steps that wait for it (a composite's too), the run's end. Another connection to the file,
 * which reads committed records only, checks at every event. */
Test(flow_run, a_step_outcome_is_committed_before_the_flow_acts_on_it)
{
    char dir[] = "/tmp/cbx_flow_durable_XXXXXX";
    cbx_journal *j = temp_journal(dir);
    cbx_err e;
    cbx_runtime *jrt = NULL;
    cbx_runtime_opts ro = {.registry = reg, .journal = j};
    cr_assert_eq(cbx_runtime_new(&jrt, &ro, &e), 0, "%s", e.msg);
    cbx_flow *f =
        load_text("name: durable\n"
                  "concurrency: 3\n"
                  "steps:\n"
                  "  - {name: a, executor: command, config: {argv: [\"true\"]}}\n"
                  "  - {name: b, executor: command, needs: a, config: {argv: [\"true\"]}}\n"
                  "  - {name: c, executor: command, needs: a, config: {argv: [\"true\"]}}\n"
                  "  - {name: d, executor: command, needs: a, config: {argv: [\"true\"]}}\n"
                  "  - name: e\n"
                  "    executor: command\n"
                  "    needs: [b, c]\n"
                  "    config: {argv: [\"true\"]}\n"
                  "  - {name: f, executor: command, needs: d, config: {argv: [\"true\"]}}\n"
                  "  - name: g\n"
                  "    executor: command\n"
                  "    needs: [e, f]\n"
                  "    config: {argv: [\"true\"]}\n"
                  "  - name: h\n"
                  "    executor: steps\n"
                  "    mode: sequence\n"
                  "    needs: g\n"
                  "    steps:\n"
                  "      - {name: x, executor: command, config: {argv: [\"true\"]}}\n"
                  "      - {name: y, executor: command, config: {argv: [\"true\"]}}\n");
    durable_watch w = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    cr_assert_eq(sqlite3_open_v2(path, &w.db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(w.db, 10000);
    cbx_flow_run_opts o = {.on_event = on_durable_event, .ud = &w};
    cbx_flow_result res;
    cr_assert_eq(cbx_flow_run(jrt, f, &o, &res, &e), 0, "%s", res.error);
    cr_assert_eq(w.started, 10);
    cr_assert_eq(w.finished, 10);
    /* the run's end is committed when cbx_flow_run returns */
    char buf[64];
    cr_assert_str_eq(committed(w.db, res.run_id, NULL, buf, sizeof buf), "success");
    cbx_flow_result_clear(&res);
    sqlite3_close(w.db);
    cbx_flow_free(f);
    cbx_runtime_free(jrt);
    cbx_journal_close(j);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The runs of a journal no flow has run on: none, and no error. An in-memory journal keeps the
 * runs of its own handle. */
Test(flow_run, runs_of_a_journal_without_flows_and_of_an_in_memory_one)
{
    char dir[] = "/tmp/cbx_flow_noruns_XXXXXX";
    cbx_journal *j = temp_journal(dir);
    cbx_err e;
    json_t *runs = NULL;
    cr_assert_eq(cbx_flow_runs_list(j, 0, &runs, &e), 0, "%s", e.msg);
    cr_assert_eq(json_array_size(runs), 0);
    json_decref(runs);
    json_t *run = NULL;
    cr_assert_eq(cbx_flow_run_show(j, "nope", &run, &e), -ENOENT);
    cr_assert_null(run);
    cbx_journal_close(j);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

    cbx_journal_opts mo = {.path = ":memory:"};
    cr_assert_eq(cbx_journal_open(&j, &mo, &e), 0, "%s", e.msg);
    cbx_runtime *jrt = NULL;
    cbx_runtime_opts ro = {.registry = reg, .journal = j};
    cr_assert_eq(cbx_runtime_new(&jrt, &ro, &e), 0, "%s", e.msg);
    cbx_flow *f = load_text("name: mem\n"
                            "steps:\n"
                            "  - {name: only, executor: command, config: {argv: [\"true\"]}}\n");
    cbx_flow_result res;
    cr_assert_eq(cbx_flow_run(jrt, f, NULL, &res, &e), 0, "%s", res.error);
    cr_assert_eq(cbx_flow_run_show(j, res.run_id, &run, &e), 0, "%s", e.msg);
    cr_assert_str_eq(json_string_value(json_object_get(run, "status")), "success");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(run, "steps"), "only"), "status")),
                     "success");
    json_decref(run);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
    cbx_runtime_free(jrt);
    cbx_journal_close(j);
}

/* ---- a breaker picked per key ------------------------------------------------------------------
 */

static json_t *store_breaker(const char *name)
{
    json_t *b = NULL;
    cbx_err e;
    cr_assert_eq(cbx_breaker_store_show(cbx_runtime_breakers(rt), name, &b, &e), 0, "%s: %s", name,
                 e.msg);
    return b;
}

Test(flow_run, a_breaker_key_gives_each_key_its_own_breaker)
{
    /* 'bad' fails twice and opens its breaker, so its third call is refused without running;
     * 'good' goes through its own breaker, still closed. One breaker for the policy would have
     * refused 'good' too. */
    cbx_flow *f = load_text("name: k\n"
                            "policies:\n"
                            "  per_host:\n"
                            "    breaker: {key: '{{ item }}', consecutive_failures: 2, "
                            "open_for: 60s}\n"
                            "steps:\n"
                            "  - name: each\n"
                            "    executor: command\n"
                            "    policy: per_host\n"
                            "    foreach: [bad, bad, bad, good]\n"
                            "    parallelism: 1\n"
                            "    config: {argv: [test, '{{ item }}', '=', good]}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), CBX_EFAILED);
    json_t *bad = store_breaker("per_host:bad"), *good = store_breaker("per_host:good");
    cr_assert_str_eq(json_string_value(json_object_get(bad, "state")), "open");
    cr_assert_eq(json_integer_value(json_object_get(bad, "failures")), 2);
    cr_assert_eq(json_integer_value(json_object_get(bad, "rejections")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(good, "state")), "closed");
    cr_assert_eq(json_integer_value(json_object_get(good, "successes")), 1);
    json_decref(bad);
    json_decref(good);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* A keyed breaker's refusal goes to the policy's fallback, as an in-process breaker's does: the
 * refused item is the fallback's answer, not null. */
Test(flow_run, a_keyed_breaker_refusal_answers_with_the_fallback)
{
    cbx_flow *f = load_text("name: k\n"
                            "policies:\n"
                            "  per_host:\n"
                            "    breaker: {key: '{{ item }}', consecutive_failures: 1, "
                            "open_for: 60s}\n"
                            "    fallback: {value: {stdout: fb}}\n"
                            "steps:\n"
                            "  - name: each\n"
                            "    executor: command\n"
                            "    policy: per_host\n"
                            "    foreach: [bad2, bad2, good2]\n"
                            "    parallelism: 1\n"
                            "    config: {argv: [sh, -c, 'test {{ item }} = good2 && echo ok']}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), 0, "%s", res.error);
    json_t *o = step_outputs(&res, "each");
    cr_assert_eq(json_array_size(o), 3, "%s", text_of(o));
    for (int i = 0; i < 2; i++)
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(o, i), "stdout")), "fb",
                         "item %d: %s", i, text_of(o));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(o, 2), "stdout")), "ok\n");
    json_t *bad = store_breaker("per_host:bad2");
    cr_assert_eq(json_integer_value(json_object_get(bad, "rejections")), 1);
    json_decref(bad);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

Test(flow_run, a_breaker_key_that_names_nothing_fails_the_step)
{
    cbx_flow *f = load_text("name: k\n"
                            "policies:\n"
                            "  per_host:\n"
                            "    breaker: {key: \"{{ '' }}\"}\n"
                            "steps:\n"
                            "  - {name: one, executor: command, policy: per_host, config: {argv: "
                            "['true']}}\n");
    cbx_flow_result res;
    cr_assert_eq(run(f, NULL, &res), CBX_EFAILED);
    cr_assert(strstr(step_str(&res, "one", "error"),
                     "policy 'per_host': breaker.key '{{ '' }}' gave an empty string, not a name"),
              "%s", step_str(&res, "one", "error"));
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
}

/* ---- retention ---------------------------------------------------------------------------------
 */

static void next_millisecond(void)
{
    struct timespec ts = {0, 3 * 1000 * 1000}; /* distinct wall-clock stamps for the runs */
    nanosleep(&ts, NULL);
}

/* A flow run goes with the executions of its time: once the journal has dropped every execution
 * of a run, the next run's start drops the run and its steps. */
Test(flow_run, flow_runs_go_with_the_executions_the_journal_drops)
{
    char dir[] = "/tmp/cbx_flow_retention_XXXXXX";
    cbx_journal *j = temp_journal_keeping(dir, 2);
    cbx_err e;
    cbx_runtime *jrt = NULL;
    cbx_runtime_opts ro = {.registry = reg, .journal = j};
    cr_assert_eq(cbx_runtime_new(&jrt, &ro, &e), 0, "%s", e.msg);
    cbx_flow *f =
        load_text("name: two\n"
                  "steps:\n"
                  "  - {name: a, executor: command, config: {argv: ['true']}}\n"
                  "  - {name: b, executor: command, needs: [a], config: {argv: ['true']}}\n");
    char ids[4][40];
    for (int i = 0; i < 4; i++) {
        if (i == 3) /* keeps the newest 2 executions: the third run's */
            cr_assert_eq(cbx_journal_prune(j, &e), 0, "%s", e.msg);
        cbx_flow_result res;
        cbx_flow_run_opts o = {0};
        cr_assert_eq(cbx_flow_run(jrt, f, &o, &res, &e), 0, "%s", res.error);
        snprintf(ids[i], sizeof ids[i], "%s", res.run_id);
        cbx_flow_result_clear(&res);
        next_millisecond();
    }
    json_t *runs = NULL;
    cr_assert_eq(cbx_flow_runs_list(j, 0, &runs, &e), 0, "%s", e.msg);
    cr_assert_eq(json_array_size(runs), 2, "%zu runs kept", json_array_size(runs));
    for (int i = 0; i < 4; i++) {
        json_t *shown = NULL;
        int rc = cbx_flow_run_show(j, ids[i], &shown, &e);
        if (i < 2)
            cr_assert_neq(rc, 0, "run %d (%s) was kept", i + 1, ids[i]);
        else
            cr_assert_eq(rc, 0, "run %d: %s", i + 1, e.msg);
        json_decref(shown);
    }
    json_decref(runs);
    cbx_flow_free(f);
    cbx_runtime_free(jrt);
    cbx_journal_close(j);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
