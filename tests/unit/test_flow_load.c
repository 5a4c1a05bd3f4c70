/* Loading flows: what each key becomes in the structure the runner reads, and cbx_flow_inputs. */
#include "flow/flow_internal.h"

#include "cbx/flow.h"
#include "cbx/lua_executor.h"
#include "cbx/registry.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cbx_registry *reg;

static void setup(void)
{
    cr_assert_eq(cbx_registry_new(&reg, NULL), 0);
}

static void teardown(void)
{
    cbx_registry_free(reg);
}

TestSuite(flow_load, .init = setup, .fini = teardown);

/* A path from the source tree's root, found from this file's place in it. */
static const char *source_path(const char *rel)
{
    static char path[1024];
    const char *file = __FILE__;
    const char *unit = strstr(file, "tests/unit/");
    int dir = unit ? (int)(unit - file) : 0;
    snprintf(path, sizeof path, "%.*s%s", dir, file, rel);
    return path;
}

static cbx_flow *load(const char *text)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load_string(&f, text, strlen(text), "t.yaml", reg, &d);
    char b[1024] = "";
    if (d.n)
        cbx_err_format(&d.items[0], b, sizeof b);
    cr_assert_eq(rc, 0, "rc %d, %zu problems, first: %s", rc, d.n, b);
    cr_assert_not_null(f);
    cbx_diag_clear(&d);
    return f;
}

static const cbx__flow_step *step(const cbx_flow *f, const char *name)
{
    for (size_t i = 0; i < f->nsteps; i++)
        if (strcmp(f->steps[i].name, name) == 0)
            return &f->steps[i];
    cr_assert_fail("no step %s", name);
    return NULL;
}

static const char *page_digest =
    "name: page_digest\n"
    "version: \"2.1\"\n"
    "description: fetch a page and count its words\n"
    "inputs:\n"
    "  - {name: url, type: string, required: true, description: the page}\n"
    "  - {name: min_quality, type: number, default: 0.7}\n"
    "policies:\n"
    "  upstream:\n"
    "    timeout: 5s\n"
    "    retry: {attempts: 4, backoff: exponential, initial: 200ms, max: 5s, jitter: full}\n"
    "    breaker: {key: \"{{ host(inputs.url) }}\", failure_rate: 50%, window: 20, "
    "min_calls: 5,\n"
    "              open_for: 30s, half_open_probes: 2}\n"
    "    fallback: {value: {body: \"\"}}\n"
    "steps:\n"
    "  - name: fetch\n"
    "    executor: http\n"
    "    config: {url: \"{{ inputs.url }}\", method: GET}\n"
    "    policy: upstream\n"
    "  - name: words\n"
    "    executor: command\n"
    "    config: {argv: [wc, -w], stdin: \"{{ steps.fetch.outputs.body }}\"}\n"
    "  - name: report\n"
    "    executor: command\n"
    "    when: \"tonumber(steps.words.outputs.stdout) > 0\"\n"
    "    config: {argv: [echo, \"{{ steps.words.outputs.stdout }} words\"]}\n"
    "outputs:\n"
    "  words: \"{{ steps.words.outputs.stdout }}\"\n"
    "timeout: 2m\n"
    "concurrency: 3\n";

Test(flow_load, the_architecture_example)
{
    cbx_flow *f = load(page_digest);
    cr_assert_str_eq(cbx_flow_name(f), "page_digest");
    cr_assert_str_eq(cbx_flow_file(f), "t.yaml");
    cr_assert_str_eq(f->version, "2.1");
    cr_assert_str_eq(f->description, "fetch a page and count its words");
    cr_assert_eq(f->timeout_ns, 120000000000ULL);
    cr_assert_eq(f->concurrency, 3);

    cr_assert_eq(f->ninputs, 2);
    cr_assert_str_eq(f->inputs[0].name, "url");
    cr_assert_eq(f->inputs[0].type, CBX_PARAM_STRING);
    cr_assert(f->inputs[0].required);
    cr_assert_null(f->inputs[0].def);
    cr_assert_str_eq(f->inputs[0].description, "the page");
    cr_assert_eq(f->inputs[1].type, CBX_PARAM_NUMBER);
    cr_assert_float_eq(json_number_value(f->inputs[1].def), 0.7, 1e-12);

    cr_assert_eq(f->npolicies, 1);
    cr_assert_str_eq(f->policies[0].name, "upstream");
    cr_assert_not_null(f->policies[0].policy);

    cr_assert_eq(f->nsteps, 3);
    const cbx__flow_step *fetch = step(f, "fetch"), *words = step(f, "words"),
                         *report = step(f, "report");
    cr_assert_str_eq(fetch->executor, "http");
    /* a named policy is borrowed */
    cr_assert_eq(fetch->policy, f->policies[0].policy);
    cr_assert_not(fetch->owns_policy);
    /* config stays as written, templates unrendered */
    cr_assert_str_eq(json_string_value(json_object_get(fetch->config, "url")), "{{ inputs.url }}");
    cr_assert_eq(fetch->line, 15);
    cr_assert_eq(fetch->col, 5);
    cr_assert_eq(fetch->ndeps, 0);
    /* dependencies from references */
    cr_assert_eq(words->ndeps, 1);
    cr_assert_eq(words->deps[0], 0);
    cr_assert_eq(report->ndeps, 1);
    cr_assert_eq(report->deps[0], 1);
    cr_assert_str_eq(report->when, "tonumber(steps.words.outputs.stdout) > 0");
    cr_assert_null(words->policy);
    cr_assert_eq(f->order[0], 0);
    cr_assert_eq(f->order[1], 1);
    cr_assert_eq(f->order[2], 2);
    cr_assert_str_eq(json_string_value(json_object_get(f->outputs, "words")),
                     "{{ steps.words.outputs.stdout }}");
    cbx_flow_free(f);
}

Test(flow_load, inputs_as_a_mapping)
{
    cbx_flow *f = load("name: t\n"
                       "inputs:\n"
                       "  url: string\n"
                       "  n: {type: integer, default: 3, description: how many}\n"
                       "  mode: {enum: [fast, slow], default: fast}\n"
                       "  anything:\n"
                       "steps: []\n");
    cr_assert_eq(f->ninputs, 4);
    cr_assert_str_eq(f->inputs[0].name, "url");
    cr_assert_eq(f->inputs[0].type, CBX_PARAM_STRING);
    cr_assert_not(f->inputs[0].required);
    cr_assert_eq(f->inputs[1].type, CBX_PARAM_INTEGER);
    cr_assert_eq(json_integer_value(f->inputs[1].def), 3);
    cr_assert_str_eq(f->inputs[1].description, "how many");
    cr_assert_eq(f->inputs[2].type, CBX_PARAM_ANY);
    cr_assert_eq(json_array_size(f->inputs[2].enum_values), 2);
    cr_assert_str_eq(f->inputs[3].name, "anything");
    cr_assert_eq(f->inputs[3].type, CBX_PARAM_ANY);
    cbx_flow_free(f);
}

Test(flow_load, step_options)
{
    cbx_flow *f = load("name: t\n"
                       "inputs: {list: array}\n"
                       "steps:\n"
                       "  - name: a\n"
                       "    executor: command\n"
                       "    config: {argv: [echo, \"{{ item }}\"]}\n"
                       "    foreach: \"{{ inputs.list }}\"\n"
                       "    batch_size: 10\n"
                       "    parallelism: 4\n"
                       "    continue_on_error: true\n"
                       "    timeout: 1500\n"
                       "    when: \"{{ #inputs.list > 0 }}\"\n"
                       "    policy: {retry: {attempts: 3}}\n"
                       "  - name: b\n"
                       "    executor: command\n"
                       "    config: {argv: [echo]}\n"
                       "    foreach: [1, two, {x: 3}]\n"
                       "    needs: a\n"
                       "    when: false\n"
                       "  - name: c\n"
                       "    executor: command\n"
                       "    config: {argv: [echo]}\n"
                       "    needs: [b, a]\n");
    const cbx__flow_step *a = step(f, "a"), *b = step(f, "b"), *c = step(f, "c");
    cr_assert_str_eq(a->foreach, "inputs.list");
    cr_assert_null(a->foreach_list);
    cr_assert_eq(a->batch_size, 10);
    cr_assert_eq(a->parallelism, 4);
    cr_assert(a->continue_on_error);
    cr_assert_eq(a->timeout_ns, 1500000000ULL);
    cr_assert_str_eq(a->when, "#inputs.list > 0");
    cr_assert(a->owns_policy);
    cr_assert_not_null(a->policy);
    cr_assert_null(b->foreach);
    cr_assert_eq(json_array_size(b->foreach_list), 3);
    cr_assert_eq(b->batch_size, 0);
    cr_assert_not(b->continue_on_error);
    cr_assert_str_eq(b->when, "false");
    cr_assert_eq(b->ndeps, 1);
    cr_assert_eq(b->deps[0], 0);
    cr_assert_eq(c->ndeps, 2);
    cr_assert_eq(c->deps[0], 1);
    cr_assert_eq(c->deps[1], 0);
    /* empty config is {} */
    cbx_flow *g = load("name: t\nsteps:\n  - {name: x, executor: chaos}\n");
    cr_assert(json_is_object(g->steps[0].config));
    cr_assert_eq(json_object_size(g->steps[0].config), 0);
    cbx_flow_free(g);
    cbx_flow_free(f);
}

Test(flow_load, whether_outputs_are_declared)
{
    static const char *const step = "  - {name: a, executor: command, config: {argv: [echo]}}\n";
    char text[256];
    const char *tails[] = {"", "outputs: {}\n", "outputs: {x: \"{{ steps.a.outputs.stdout }}\"}\n"};
    for (int i = 0; i < 3; i++) {
        snprintf(text, sizeof text, "name: t\nsteps:\n%s%s", step, tails[i]);
        cbx_flow *f = load(text);
        cr_assert_eq(cbx_flow_declares_outputs(f), i > 0, "%s", text);
        cbx_flow_free(f);
    }
    cr_assert_eq(cbx_flow_declares_outputs(NULL), 0);
}

Test(flow_load, independent_steps_have_no_dependencies)
{
    cbx_flow *f = load("name: t\nsteps:\n"
                       "  - {name: a, executor: command, config: {argv: [echo]}}\n"
                       "  - {name: b, executor: command, config: {argv: [echo]}}\n"
                       "  - name: c\n    executor: command\n"
                       "    config: {argv: [echo, \"{{ steps.b.outputs.stdout }}\",\n"
                       "                    \"{{ steps.a.outputs.stdout }}\", "
                       "\"{{ steps.b.outputs.stderr }}\"]}\n");
    cr_assert_eq(f->steps[0].ndeps, 0);
    cr_assert_eq(f->steps[1].ndeps, 0);
    cr_assert_eq(f->steps[2].ndeps, 2); /* b once, a once */
    cbx_flow_free(f);
}

Test(flow_load, topological_order)
{
    cbx_flow *f = load("name: t\nsteps:\n"
                       "  - {name: last, executor: command, config: {argv: [echo]}, needs: [mid]}\n"
                       "  - {name: mid, executor: command, config: {argv: [echo]}, needs: first}\n"
                       "  - {name: first, executor: command, config: {argv: [echo]}}\n"
                       "  - {name: alone, executor: command, config: {argv: [echo]}}\n");
    size_t pos[4];
    for (size_t i = 0; i < 4; i++)
        pos[f->order[i]] = i;
    cr_assert_lt(pos[2], pos[1]);
    cr_assert_lt(pos[1], pos[0]);
    cr_assert_eq(f->order[0], 2); /* the first ready, in file order */
    cr_assert_eq(f->order[1], 3);
    cbx_flow_free(f);
}

Test(flow_load, composites)
{
    cbx_flow *f = load("name: t\nsteps:\n"
                       "  - {name: first, executor: command, config: {argv: [echo]}}\n"
                       "  - {name: other, executor: command, config: {argv: [echo]}}\n"
                       "  - name: group\n"
                       "    executor: steps\n"
                       "    steps:\n"
                       "      - {name: one, executor: command, config: {argv: [echo]}}\n"
                       "      - name: two\n"
                       "        executor: command\n"
                       "        config: {argv: [echo, \"{{ steps.first.outputs.stdout }}\"]}\n"
                       "  - name: fan\n"
                       "    mode: parallel\n"
                       "    steps:\n"
                       "      - {name: x, executor: command, config: {argv: [echo]}}\n"
                       "      - name: y\n"
                       "        executor: command\n"
                       "        config: {argv: [echo, \"{{ steps.x.outputs.stdout }}\"]}\n"
                       "        needs: other\n"
                       "      - name: z\n"
                       "        executor: command\n"
                       "        config: {argv: [echo, \"{{ steps.group.outputs.one }}\"]}\n");
    const cbx__flow_step *g = step(f, "group"), *fan = step(f, "fan");
    cr_assert_str_eq(g->executor, "steps");
    cr_assert_not(g->parallel);
    cr_assert_eq(g->nchildren, 2);
    cr_assert_str_eq(g->children[0].name, "one"); /* names are the children's own */
    cr_assert_str_eq(g->children[1].name, "two");
    /* in a sequence each child waits for the one before */
    cr_assert_eq(g->children[0].ndeps, 0);
    cr_assert_eq(g->children[1].ndeps, 1);
    cr_assert_eq(g->children[1].deps[0], 0);
    /* a child's reference to an outer step makes its composite depend on it */
    cr_assert_eq(g->ndeps, 1);
    cr_assert_eq(g->deps[0], 0);
    /* executor: steps is implied by steps: */
    cr_assert_str_eq(fan->executor, "steps");
    cr_assert(fan->parallel);
    cr_assert_eq(fan->children[0].ndeps, 0);
    cr_assert_eq(fan->children[1].ndeps, 1); /* x, within the scope; other is outside */
    cr_assert_eq(fan->children[1].deps[0], 0);
    cr_assert_eq(fan->children[2].ndeps, 0);
    cr_assert_eq(fan->ndeps, 2); /* other (needs of y) and group (z's reference) */
    cr_assert_eq(fan->deps[0], 1);
    cr_assert_eq(fan->deps[1], 2);
    cbx_flow_free(f);
}

Test(flow_load, sub_flows_resolve_relative_to_the_including_file)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load(&f, source_path("tests/flows/parent.yaml"), reg, &d);
    char b[1024] = "";
    if (d.n)
        cbx_err_format(&d.items[0], b, sizeof b);
    cr_assert_eq(rc, 0, "%s", b);
    const cbx__flow_step *child = step(f, "child");
    cr_assert_null(child->executor);
    cr_assert_not_null(child->subflow);
    cr_assert(strstr(child->subflow_path, "tests/flows/sub/child.yaml"), "%s", child->subflow_path);
    cr_assert_str_eq(cbx_flow_name(child->subflow), "child");
    cr_assert_eq(child->subflow->ninputs, 3);
    cr_assert_str_eq(json_string_value(json_object_get(child->subflow_inputs, "text")),
                     "{{ steps.prepare.outputs.stdout }}");
    cr_assert_eq(child->ndeps, 1); /* prepare, from its inputs */
    /* the sub-flow's own sub-flow, beside it */
    const cbx__flow_step *inner = &child->subflow->steps[0];
    cr_assert_not_null(inner->subflow);
    cr_assert(strstr(inner->subflow_path, "tests/flows/sub/grandchild.yaml"), "%s",
              inner->subflow_path);
    cr_assert_str_eq(inner->subflow->steps[0].executor, "command");
    cbx_flow_free(f);
}

Test(flow_load, json_files)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    cr_assert_eq(cbx_flow_load(&f, source_path("tests/flows/flow.json"), reg, &d), 0);
    cr_assert_str_eq(cbx_flow_name(f), "json_flow");
    cr_assert_eq(f->nsteps, 2);
    cr_assert_eq(f->steps[1].ndeps, 1);
    cr_assert_eq(json_integer_value(f->inputs[0].def), 2);
    cbx_flow_free(f);
}

Test(flow_load, name_defaults_to_the_file_name)
{
    const char *text = "steps: []\n";
    cbx_flow *f = NULL;
    cr_assert_eq(cbx_flow_load_string(&f, text, strlen(text), "dir/nightly.yaml", reg, NULL), 0);
    cr_assert_str_eq(cbx_flow_name(f), "nightly");
    cr_assert_str_eq(cbx_flow_file(f), "dir/nightly.yaml");
    cbx_flow_free(f);
    cr_assert_null(cbx_flow_name(NULL));
    cbx_flow_free(NULL);
}

Test(flow_load, the_seed_flow_loads_once_its_executor_is_registered)
{
    const char *flow = source_path("examples/flows/seed_flow.yaml");
    char path[1024];
    snprintf(path, sizeof path, "%s", flow);
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    /* without the executor: refused, naming it */
    cr_assert_eq(cbx_flow_load(&f, path, reg, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 1);
    cr_assert_eq(d.items[0].code, CBX_EUNKNOWN_TYPE);
    cr_assert_eq(d.items[0].line, 14);
    cr_assert_eq(d.items[0].col, 5);
    cr_assert(strstr(d.items[0].msg, "unknown executor 'my_custom_executor'"), "%s",
              d.items[0].msg);
    cbx_diag_clear(&d);

    cbx_err e;
    cr_assert_eq(cbx_lua_executor_load(reg, source_path("examples/lua/my_custom_executor.lua"), &e),
                 0, "%s", e.msg);
    cr_assert_eq(cbx_flow_load(&f, path, reg, &d), 0);
    cr_assert_str_eq(cbx_flow_name(f), "my_custom_flow");
    cr_assert_str_eq(f->version, "1.0.0");
    cr_assert_eq(f->ninputs, 1);
    cr_assert(f->inputs[0].required);
    const cbx__flow_step *s = step(f, "custom_processing");
    cr_assert_str_eq(s->executor, "my_custom_executor");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(s->config, "processing_options"), "quality")),
                     "high");
    cbx_flow_free(f);
}

Test(flow_load, the_seed_flow_runs_as_written)
{
    cbx_err e;
    cr_assert_eq(cbx_lua_executor_load(reg, source_path("examples/lua/my_custom_executor.lua"), &e),
                 0, "%s", e.msg);
    cbx_flow *f = NULL;
    cr_assert_eq(cbx_flow_load(&f, source_path("examples/flows/seed_flow.yaml"), reg, NULL), 0);
    cbx_runtime *rt = NULL;
    cbx_runtime_opts ro = {.registry = reg};
    cr_assert_eq(cbx_runtime_new(&rt, &ro, &e), 0, "%s", e.msg);
    json_t *in = json_pack("{s:s}", "input_data", "The quick  brown fox. It jumps!");
    cbx_flow_run_opts o = {.inputs = in};
    cbx_flow_result res;
    int rc = cbx_flow_run(rt, f, &o, &res, &e);
    cr_assert_eq(rc, 0, "%s", res.error);
    json_t *out = json_object_get(json_object_get(res.steps, "custom_processing"), "outputs");
    cr_assert_str_eq(json_string_value(json_object_get(out, "result")),
                     "The quick brown fox. It jumps!");
    cr_assert_eq(json_integer_value(json_object_get(out, "words")), 6);
    cr_assert_eq(json_integer_value(json_object_get(out, "sentences")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(out, "mode")), "advanced");
    cbx_flow_result_clear(&res);
    json_decref(in);
    cbx_runtime_free(rt);
    cbx_flow_free(f);
}

/* ---- cbx_flow_inputs ------------------------------------------------------------------------- */

static const char *with_inputs = "name: t\n"
                                 "inputs:\n"
                                 "  - {name: url, type: string, required: true}\n"
                                 "  - {name: n, type: integer, default: 3}\n"
                                 "  - {name: ratio, type: number}\n"
                                 "  - {name: mode, enum: [fast, slow], default: fast}\n"
                                 "  - {name: tags, type: array, default: []}\n"
                                 "  - {name: opts, type: object}\n"
                                 "  - {name: dry, type: boolean, default: false}\n"
                                 "steps: []\n";

Test(flow_load, inputs_defaults_applied)
{
    cbx_flow *f = load(with_inputs);
    json_t *given =
        json_pack("{s:s, s:i}", "url", "http://x", "ratio", 1); /* integer is a number */
    json_t *out = NULL;
    cbx_diag d = {0};
    cr_assert_eq(cbx_flow_inputs(f, given, &out, &d), 0);
    cr_assert_eq(d.n, 0);
    cr_assert_str_eq(json_string_value(json_object_get(out, "url")), "http://x");
    cr_assert_eq(json_integer_value(json_object_get(out, "n")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(out, "mode")), "fast");
    cr_assert(json_is_array(json_object_get(out, "tags")));
    cr_assert(json_is_false(json_object_get(out, "dry")));
    cr_assert_null(json_object_get(out, "opts")); /* optional, no default: absent */
    /* the given object is not changed */
    cr_assert_eq(json_object_size(given), 2);
    json_decref(out);
    json_decref(given);
    cbx_flow_free(f);
}

Test(flow_load, inputs_every_problem)
{
    cbx_flow *f = load(with_inputs);
    json_t *given = json_pack("{s:i, s:s, s:s, s:s, s:[]}", "n", 1, "ratio", "half", "mode",
                              "medium", "urll", "http://x", "opts", "x");
    json_t *out = NULL;
    cbx_diag d = {0};
    cr_assert_eq(cbx_flow_inputs(f, given, &out, &d), CBX_EINVAL_CONFIG);
    cr_assert_null(out);
    cr_assert_eq(d.n, 5);
    int seen = 0;
    for (size_t i = 0; i < d.n; i++) {
        const cbx_err *e = &d.items[i];
        if (strcmp(e->where, "ratio") == 0) {
            cr_assert_str_eq(e->msg, "expected number, got string");
            seen |= 1;
        } else if (strcmp(e->where, "mode") == 0) {
            cr_assert_str_eq(e->msg, "expected one of \"fast\",\"slow\"; got \"medium\"");
            seen |= 2;
        } else if (strcmp(e->where, "urll") == 0) {
            cr_assert_str_eq(e->msg, "unknown input 'urll'; did you mean 'url'?");
            seen |= 4;
        } else if (strcmp(e->where, "url") == 0) {
            cr_assert_str_eq(e->msg, "missing required input (string)");
            seen |= 8;
        } else if (strcmp(e->where, "opts") == 0) {
            cr_assert_str_eq(e->msg, "expected object, got array");
            seen |= 16;
        }
    }
    cr_assert_eq(seen, 31);
    cbx_diag_clear(&d);
    json_decref(given);

    /* not an object */
    json_t *arr = json_array();
    cr_assert_eq(cbx_flow_inputs(f, arr, &out, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.items[0].msg, "expected the inputs as an object, got array");
    json_decref(arr);
    cbx_diag_clear(&d);
    cbx_flow_free(f);
}

Test(flow_load, inputs_for_a_flow_that_declares_none)
{
    cbx_flow *f = load("name: t\nsteps: []\n");
    json_t *out = NULL;
    cr_assert_eq(cbx_flow_inputs(f, NULL, &out, NULL), 0);
    cr_assert_eq(json_object_size(out), 0);
    json_decref(out);
    json_t *given = json_pack("{s:i}", "x", 1);
    cbx_diag d = {0};
    cr_assert_eq(cbx_flow_inputs(f, given, &out, &d), CBX_EINVAL_CONFIG);
    cr_assert_str_eq(d.items[0].msg, "unknown input 'x' (the flow declares no inputs)");
    cbx_diag_clear(&d);
    json_decref(given);
    cbx_flow_free(f);
}
