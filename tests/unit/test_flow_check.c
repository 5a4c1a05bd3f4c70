/* Flow validation: every problem with its exact file:line:column, and all of them at once. */
#include "cbx/flow.h"
#include "cbx/registry.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
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

TestSuite(flow_check, .init = setup, .fini = teardown);

/* tests/flows/<name>, found from this file's place in the tree */
static const char *fixture(const char *name)
{
    static char path[1024];
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    int dir = slash ? (int)(slash - file) : 1;
    snprintf(path, sizeof path, "%.*s/../flows/%s", dir, slash ? file : ".", name);
    return path;
}

static void dump(const cbx_diag *d, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < d->n && n < len; i++) {
        char b[1024];
        n +=
            (size_t)snprintf(out + n, len - n, "\n  %s", cbx_err_format(&d->items[i], b, sizeof b));
    }
}

/* Load text as "t.yaml": it must fail with exactly one problem, at line:col, of code, whose
 * message contains msg. */
static void one_problem(const char *text, int code, int line, int col, const char *msg)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load_string(&f, text, strlen(text), "t.yaml", reg, &d);
    char all[4096];
    dump(&d, all, sizeof all);
    cr_assert_lt(rc, 0, "loaded, expected: %s", msg);
    cr_assert_null(f);
    cr_assert_eq(d.n, 1, "expected one problem, got %zu:%s", d.n, all);
    const cbx_err *e = &d.items[0];
    cr_assert_str_eq(e->where, "t.yaml");
    cr_assert_eq(e->line, line, "line %d, expected %d:%s", e->line, line, all);
    cr_assert_eq(e->col, col, "col %d, expected %d:%s", e->col, col, all);
    cr_assert_eq(e->code, code, "code %s, expected %s:%s", cbx_err_name(e->code),
                 cbx_err_name(code), all);
    cr_assert(strstr(e->msg, msg), "message '%s' lacks '%s'", e->msg, msg);
    cbx_diag_clear(&d);
}

static void loads(const char *text)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load_string(&f, text, strlen(text), "t.yaml", reg, &d);
    char all[4096];
    dump(&d, all, sizeof all);
    cr_assert_eq(rc, 0, "rc %d:%s", rc, all);
    cr_assert_eq(d.n, 0);
    cbx_flow_free(f);
}

#define STEP_A "  - name: a\n    executor: command\n"

/* ---- the file ------------------------------------------------------------------------------- */

Test(flow_check, yaml_syntax_error)
{
    one_problem("name: t\nsteps:\n  - name: a\n    config: {argv: [echo\n", CBX_EPARSE, 5, 1, "");
}

Test(flow_check, not_a_mapping)
{
    one_problem("- a\n- b\n", CBX_EINVAL_CONFIG, 1, 1, "a flow file is a mapping");
    one_problem("", CBX_EINVAL_CONFIG, 0, 0, "an empty document");
}

Test(flow_check, unknown_top_level_key)
{
    one_problem("name: t\nstpes: 1\nsteps: []\n", CBX_EUNKNOWN_KEY, 2, 1,
                "unknown top-level key 'stpes'; did you mean 'steps'?");
}

Test(flow_check, missing_steps)
{
    one_problem("name: t\n", CBX_EINVAL_CONFIG, 1, 1, "missing 'steps'");
}

Test(flow_check, version_must_be_quoted)
{
    one_problem("name: t\nversion: 1.0\nsteps: []\n", CBX_EINVAL_CONFIG, 2, 1,
                "version: expected a string, got number (quote it");
}

Test(flow_check, flow_timeout_and_concurrency)
{
    one_problem("name: t\nsteps: []\ntimeout: 0\n", CBX_EINVAL_CONFIG, 3, 1,
                "timeout: must be greater than 0");
    one_problem("name: t\nsteps: []\ntimeout: soon\n", CBX_EPARSE, 3, 1,
                "timeout: expected a duration");
    one_problem("name: t\nsteps: []\nconcurrency: 0\n", CBX_EINVAL_CONFIG, 3, 1,
                "concurrency: expected a positive integer, got 0");
}

Test(flow_check, json_positions)
{
    one_problem("{\"name\": \"t\", \"steps\": [{\"name\": \"a\", \"executor\": \"htp\"}]}",
                CBX_EUNKNOWN_TYPE, 1, 39, "unknown executor 'htp'; did you mean 'http'?");
}

/* ---- steps ---------------------------------------------------------------------------------- */

Test(flow_check, unknown_step_key)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n"
                "    contnue_on_error: true\n",
                CBX_EUNKNOWN_KEY, 6, 5,
                "step 'a': unknown key 'contnue_on_error'; did you mean 'continue_on_error'?");
}

Test(flow_check, missing_name)
{
    one_problem("name: t\nsteps:\n  - executor: command\n    config: {argv: [echo]}\n",
                CBX_EINVAL_CONFIG, 3, 5, "steps[0]: missing 'name'");
}

Test(flow_check, bad_name)
{
    one_problem("name: t\nsteps:\n  - name: a.b\n    executor: command\n"
                "    config: {argv: [echo]}\n",
                CBX_EINVAL_CONFIG, 3, 5, "name: expected 1 to 63 letters, digits");
}

Test(flow_check, missing_executor)
{
    one_problem("name: t\nsteps:\n  - name: a\n    config: {argv: [echo]}\n", CBX_EINVAL_CONFIG, 3,
                5, "step 'a': missing 'executor'");
}

Test(flow_check, duplicate_names)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n" STEP_A
                "    config: {argv: [echo]}\n",
                CBX_EINVAL_CONFIG, 6, 5, "step 'a': duplicate name (first used at line 3)");
}

Test(flow_check, unknown_executor)
{
    one_problem("name: t\nsteps:\n  - name: a\n    executor: htp\n", CBX_EUNKNOWN_TYPE, 4, 5,
                "step 'a': unknown executor 'htp'; did you mean 'http'?");
    one_problem("name: t\nsteps:\n  - name: a\n    executor: step\n", CBX_EUNKNOWN_TYPE, 4, 5,
                "did you mean 'steps'?");
}

Test(flow_check, config_not_a_mapping)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: [echo]\n", CBX_EINVAL_CONFIG, 5, 5,
                "step 'a': config: expected a mapping of parameters, got array");
}

Test(flow_check, executor_and_flow)
{
    one_problem("name: t\nsteps:\n  - name: a\n    executor: command\n    flow: x.yaml\n",
                CBX_EINVAL_CONFIG, 4, 5, "either an executor or a flow");
}

/* ---- executor parameters -------------------------------------------------------------------- */

Test(flow_check, unknown_parameter)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo], stdni: x}\n",
                CBX_EINVAL_CONFIG, 5, 28,
                "step 'a': config.stdni: unknown parameter 'stdni'; did you mean 'stdin'?");
}

Test(flow_check, mistyped_parameter)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo], stdout_max: big}\n",
                CBX_EINVAL_CONFIG, 5, 28,
                "step 'a': config.stdout_max: expected integer, got string");
}

Test(flow_check, mistyped_array_item)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo, 3]}\n", CBX_EINVAL_CONFIG, 5,
                27, "step 'a': config.argv[1]: expected string, got integer");
}

Test(flow_check, missing_parameter)
{
    one_problem("name: t\nsteps:\n  - name: a\n    executor: http\n    config: {method: GET}\n",
                CBX_EINVAL_CONFIG, 5, 5,
                "step 'a': config.url: missing required parameter (expected string)");
    /* no config at all: the step itself */
    one_problem("name: t\nsteps:\n  - name: a\n    executor: http\n", CBX_EINVAL_CONFIG, 3, 5,
                "step 'a': config.url: missing required parameter");
}

Test(flow_check, validate_hook_problem)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {shell: true}\n", CBX_EINVAL_CONFIG, 5, 5,
                "step 'a': config.command: required when shell is true");
}

Test(flow_check, templated_values_count_as_present_and_are_not_type_checked)
{
    loads("name: t\ninputs: {u: string, n: integer}\nsteps:\n"
          "  - name: a\n    executor: http\n    config: {url: \"{{ inputs.u }}\"}\n"
          "  - name: b\n    executor: command\n"
          "    config: {argv: [\"{{ inputs.u }}\"], stdout_max: \"{{ inputs.n }}\",\n"
          "             success_exit_codes: [0, \"{{ inputs.n }}\"]}\n"
          "  - name: c\n    executor: command\n    config: {argv: \"{{ {inputs.u} }}\"}\n");
}

Test(flow_check, templated_unknown_parameter)
{
    one_problem("name: t\ninputs: {u: string}\nsteps:\n" STEP_A
                "    config: {argv: [echo], stdni: \"{{ inputs.u }}\"}\n",
                CBX_EINVAL_CONFIG, 6, 28, "config.stdni: unknown parameter 'stdni'");
}

Test(flow_check, literal_problems_beside_templates)
{
    one_problem("name: t\ninputs: {u: string}\nsteps:\n" STEP_A
                "    config: {argv: [\"{{ inputs.u }}\", 7]}\n",
                CBX_EINVAL_CONFIG, 6, 39, "config.argv[1]: expected string, got integer");
}

/* ---- templates and references --------------------------------------------------------------- */

Test(flow_check, unknown_input_in_config)
{
    one_problem("name: t\ninputs: [{name: name, type: string}]\nsteps:\n" STEP_A
                "    config: {argv: [echo, \"{{ inputs.nme }}\"]}\n",
                CBX_EINVAL_CONFIG, 6, 27,
                "step 'a': config.argv[1]: unknown input 'nme'; did you mean 'name'?");
}

Test(flow_check, unknown_input_when_none_declared)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n"
                "    when: \"inputs.flag\"\n",
                CBX_EINVAL_CONFIG, 6, 5,
                "step 'a': when: unknown input 'flag' (the flow declares no inputs)");
}

Test(flow_check, unknown_step_in_config)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n"
                "  - name: b\n    executor: command\n"
                "    config: {argv: [echo, \"{{ steps.aa.outputs.stdout }}\"]}\n",
                CBX_EINVAL_CONFIG, 8, 27,
                "step 'b': config.argv[1]: unknown step 'aa'; did you mean 'a'?");
}

Test(flow_check, unknown_step_in_foreach)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n"
                "    foreach: \"{{ steps.list.outputs }}\"\n",
                CBX_EINVAL_CONFIG, 6, 5, "step 'a': foreach: unknown step 'list'");
}

Test(flow_check, template_syntax_in_config)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo, \"{{ 1 + }}\"]}\n",
                CBX_EPARSE, 5, 27, "step 'a': config.argv[1]: {{ 1 + }}:");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo, \"{{ 1 \"]}\n", CBX_EPARSE, 5,
                27, "unterminated template");
}

Test(flow_check, condition_syntax)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    when: \"1 ==\"\n",
                CBX_EPARSE, 6, 5, "step 'a': when: \"1 ==\":");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n"
                "    when: \"{{ a }} and {{ b }}\"\n",
                CBX_EINVAL_CONFIG, 6, 5, "when: expected a Lua expression");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    when: 3\n",
                CBX_EINVAL_CONFIG, 6, 5, "when: expected a condition");
}

Test(flow_check, unknown_step_in_outputs)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n"
                "outputs:\n  x: \"{{ steps.nope.outputs }}\"\n",
                CBX_EINVAL_CONFIG, 7, 3, "outputs: x: unknown step 'nope'");
}

Test(flow_check, unknown_input_in_policy)
{
    one_problem("name: t\npolicies:\n  p:\n    breaker: {key: \"{{ host(inputs.url) }}\"}\n"
                "steps: []\n",
                CBX_EINVAL_CONFIG, 4, 15, "policy 'p': breaker.key: unknown input 'url'");
}

/* ---- needs, dependencies and cycles ---------------------------------------------------------- */

Test(flow_check, unknown_needs)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    needs: [b]\n",
                CBX_EINVAL_CONFIG, 6, 13, "step 'a': needs: unknown step 'b'");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    needs: b\n",
                CBX_EINVAL_CONFIG, 6, 5, "step 'a': needs: unknown step 'b'");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    needs: [1]\n",
                CBX_EINVAL_CONFIG, 6, 13, "needs[0]: expected a step name, got integer");
}

Test(flow_check, cycle_names_the_path_at_the_first_step)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    needs: c\n"
                "  - name: b\n    executor: command\n    config: {argv: [echo]}\n    needs: a\n"
                "  - name: c\n    executor: command\n    config: {argv: [echo]}\n    needs: b\n",
                CBX_EINVAL_CONFIG, 3, 5, "step 'a': dependency cycle: a -> b -> c -> a");
}

Test(flow_check, cycle_through_templates)
{
    one_problem("name: t\nsteps:\n"
                "  - name: x\n    executor: command\n"
                "    config: {argv: [echo, \"{{ steps.y.outputs.stdout }}\"]}\n"
                "  - name: y\n    executor: command\n"
                "    when: \"steps.x.outputs.stdout ~= ''\"\n    config: {argv: [echo]}\n",
                CBX_EINVAL_CONFIG, 3, 5, "step 'x': dependency cycle: x -> y -> x");
}

Test(flow_check, self_reference)
{
    one_problem("name: t\nsteps:\n" STEP_A
                "    config: {argv: [echo, \"{{ steps.a.outputs.stdout }}\"]}\n",
                CBX_EINVAL_CONFIG, 5, 27, "step 'a': config.argv[1]: refers to the step itself");
}

Test(flow_check, nested_reference_to_enclosing_step)
{
    one_problem(
        "name: t\nsteps:\n  - name: g\n    executor: steps\n    steps:\n"
        "      - {name: x, executor: command, config: {argv: [\"{{ steps.g.outputs }}\"]}}\n",
        CBX_EINVAL_CONFIG, 6, 54, "step 'g.x': config.argv[0]: refers to its enclosing step 'g'");
}

Test(flow_check, sequence_reference_forward)
{
    one_problem(
        "name: t\nsteps:\n  - name: g\n    executor: steps\n    steps:\n"
        "      - {name: x, executor: command, config: {argv: [\"{{ steps.y.outputs }}\"]}}\n"
        "      - {name: y, executor: command, config: {argv: [echo]}}\n",
        CBX_EINVAL_CONFIG, 6, 54, "refers to step 'g.y', which runs after it");
    /* in parallel mode it is a plain dependency */
    loads("name: t\nsteps:\n  - name: g\n    executor: steps\n    mode: parallel\n    steps:\n"
          "      - {name: x, executor: command, config: {argv: [\"{{ steps.y.outputs }}\"]}}\n"
          "      - {name: y, executor: command, config: {argv: [echo]}}\n");
}

/* ---- policies ------------------------------------------------------------------------------- */

Test(flow_check, unknown_policy_name)
{
    one_problem("name: t\npolicies:\n  upstream: {timeout: 5s}\nsteps:\n" STEP_A
                "    config: {argv: [echo]}\n    policy: upstrem\n",
                CBX_EINVAL_CONFIG, 8, 5,
                "step 'a': unknown policy 'upstrem'; did you mean "
                "'upstream'?");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    policy: p\n",
                CBX_EINVAL_CONFIG, 6, 5, "unknown policy 'p' (the flow declares no policies:)");
}

Test(flow_check, bad_named_policy_block)
{
    one_problem("name: t\npolicies:\n  p:\n    retry: {attempts: 3, backof: exponential}\n"
                "steps: []\n",
                CBX_EUNKNOWN_KEY, 4, 26,
                "policy 'p': retry.backof: unknown key 'backof' in retry; did you mean 'backoff'?");
    one_problem("name: t\npolicies:\n  p: 5\nsteps: []\n", CBX_EINVAL_CONFIG, 3, 3,
                "policy 'p': expected a policy block");
}

Test(flow_check, bad_inline_policy)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n"
                "    policy: {timeout: 1s, retry: {attempts: zero}}\n",
                CBX_EINVAL_CONFIG, 6, 35, "step 'a': policy: retry.attempts:");
}

/* ---- durations, foreach and composites ------------------------------------------------------ */

Test(flow_check, bad_step_timeout)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    timeout: 5 parsecs\n",
                CBX_EPARSE, 6, 5, "step 'a': timeout: expected a duration like 30s");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    timeout: [1]\n",
                CBX_EINVAL_CONFIG, 6, 5, "got array");
}

Test(flow_check, foreach_counts_must_be_positive)
{
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    foreach: [1, 2]\n"
                "    batch_size: 0\n",
                CBX_EINVAL_CONFIG, 7, 5,
                "step 'a': batch_size: expected a positive integer, got 0");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    foreach: [1, 2]\n"
                "    parallelism: -1\n",
                CBX_EINVAL_CONFIG, 7, 5, "parallelism: expected a positive integer, got -1");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    parallelism: 2\n",
                CBX_EINVAL_CONFIG, 6, 5, "parallelism: only with foreach:");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    foreach: 3\n",
                CBX_EINVAL_CONFIG, 6, 5, "foreach: expected a list");
}

Test(flow_check, composite_problems)
{
    one_problem("name: t\nsteps:\n  - name: g\n    executor: steps\n    mode: paralel\n"
                "    steps: [{name: x, executor: command, config: {argv: [echo]}}]\n",
                CBX_EINVAL_CONFIG, 5, 5,
                "mode: expected sequence or parallel, got 'paralel'; "
                "did you mean 'parallel'?");
    one_problem("name: t\nsteps:\n  - name: g\n    executor: steps\n    steps: []\n",
                CBX_EINVAL_CONFIG, 5, 5, "steps: expected a non-empty list of steps");
    one_problem("name: t\nsteps:\n  - name: g\n    executor: steps\n", CBX_EINVAL_CONFIG, 4, 5,
                "executor 'steps' needs a list of steps");
    one_problem("name: t\nsteps:\n  - name: g\n    executor: steps\n    timeout: 1s\n"
                "    steps: [{name: x, executor: command, config: {argv: [echo]}}]\n",
                CBX_EINVAL_CONFIG, 5, 5, "timeout: applies to steps that run an executor");
    one_problem("name: t\nsteps:\n" STEP_A "    config: {argv: [echo]}\n    mode: parallel\n",
                CBX_EINVAL_CONFIG, 6, 5, "mode: only for executor: steps");
}

Test(flow_check, nested_problems_name_the_nested_step)
{
    one_problem("name: t\nsteps:\n  - name: g\n    executor: steps\n    steps:\n"
                "      - name: x\n        executor: comand\n",
                CBX_EUNKNOWN_TYPE, 7, 9, "step 'g.x': unknown executor 'comand'");
}

/* ---- inputs --------------------------------------------------------------------------------- */

Test(flow_check, input_declarations)
{
    one_problem("name: t\ninputs:\n  - {name: u, type: strng}\nsteps: []\n", CBX_EINVAL_CONFIG, 3,
                15, "input 'u': unknown type 'strng'; did you mean 'string'?");
    one_problem("name: t\ninputs:\n  - {name: n, type: integer, default: x}\nsteps: []\n",
                CBX_EINVAL_CONFIG, 3, 30, "input 'n': default: expected integer, got string");
    one_problem("name: t\ninputs:\n  - {name: m, enum: [a, b], default: c}\nsteps: []\n",
                CBX_EINVAL_CONFIG, 3, 29,
                "input 'm': default: expected one of \"a\",\"b\"; got "
                "\"c\"");
    one_problem("name: t\ninputs:\n  - {name: r, required: true, default: 1}\nsteps: []\n",
                CBX_EINVAL_CONFIG, 3, 31, "a required input cannot have a default");
    one_problem("name: t\ninputs:\n  - {name: a}\n  - {name: a}\nsteps: []\n", CBX_EINVAL_CONFIG, 4,
                6, "input 'a' is declared twice");
    one_problem("name: t\ninputs:\n  - {type: string}\nsteps: []\n", CBX_EINVAL_CONFIG, 3, 5,
                "inputs[0]: missing 'name'");
    one_problem("name: t\ninputs:\n  u: {type: string, requird: true}\nsteps: []\n",
                CBX_EUNKNOWN_KEY, 3, 21,
                "input 'u': unknown key 'requird'; did you mean "
                "'required'?");
    one_problem("name: t\ninputs: 5\nsteps: []\n", CBX_EINVAL_CONFIG, 2, 1,
                "inputs: expected a list");
}

/* ---- sub-flows ------------------------------------------------------------------------------ */

static void file_problems(const char *name, size_t n, cbx_diag *d)
{
    cbx_flow *f = NULL;
    int rc = cbx_flow_load(&f, fixture(name), reg, d);
    char all[4096];
    dump(d, all, sizeof all);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG, "rc %d:%s", rc, all);
    cr_assert_null(f);
    cr_assert_eq(d->n, n, "%zu problems:%s", d->n, all);
}

static void assert_at(const cbx_err *e, const char *file, int line, int col, const char *msg)
{
    size_t fl = strlen(file), wl = strlen(e->where);
    cr_assert(wl >= fl && strcmp(e->where + wl - fl, file) == 0, "where '%s', expected ...%s",
              e->where, file);
    cr_assert_eq(e->line, line, "%s: line %d, expected %d (%s)", file, e->line, line, e->msg);
    cr_assert_eq(e->col, col, "%s: col %d, expected %d (%s)", file, e->col, col, e->msg);
    cr_assert(strstr(e->msg, msg), "message '%s' lacks '%s'", e->msg, msg);
}

Test(flow_check, sub_flow_problems_are_placed_in_their_own_file)
{
    cbx_diag d = {0};
    file_problems("uses_broken.yaml", 2, &d);
    assert_at(&d.items[0], "/broken_child.yaml", 6, 5,
              "step 'say': unknown executor 'comand'; did you mean 'command'?");
    cr_assert_eq(d.items[0].code, CBX_EUNKNOWN_TYPE);
    assert_at(&d.items[1], "/uses_broken.yaml", 8, 56,
              "step 'child': inputs: flow 'broken_child' has no input 'txt'; did you mean "
              "'text'?");
    cbx_diag_clear(&d);
}

Test(flow_check, sub_flow_that_includes_itself)
{
    cbx_diag d = {0};
    file_problems("loop_a.yaml", 1, &d);
    assert_at(&d.items[0], "/loop_b.yaml", 4, 5,
              "step 'back_to_a': flow 'loop_a.yaml' includes itself (loop_a.yaml -> loop_b.yaml "
              "-> loop_a.yaml)");
    cbx_diag_clear(&d);
}

Test(flow_check, sub_flow_missing_file)
{
    cbx_diag d = {0};
    file_problems("missing_child.yaml", 1, &d);
    assert_at(&d.items[0], "/missing_child.yaml", 4, 5, "step 'child': cannot read flow");
    cr_assert(strstr(d.items[0].msg, "no_such_flow.yaml': No such file or directory"), "%s",
              d.items[0].msg);
    cr_assert_eq(d.items[0].code, -ENOENT);
    cbx_diag_clear(&d);
}

Test(flow_check, sub_flow_inputs_missing_and_mistyped)
{
    /* a flow in memory named as if it sat beside the fixtures, so that sub/child.yaml resolves */
    char name[1024];
    snprintf(name, sizeof name, "%s", fixture("inline.yaml"));
    const char *text = "name: t\nsteps:\n  - name: c\n    flow: sub/child.yaml\n"
                       "    inputs: {times: many}\n";
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    cr_assert_eq(cbx_flow_load_string(&f, text, strlen(text), name, reg, &d), CBX_EINVAL_CONFIG);
    char all[4096];
    dump(&d, all, sizeof all);
    cr_assert_eq(d.n, 2, "%s", all);
    assert_at(&d.items[0], "/inline.yaml", 5, 5,
              "step 'c': inputs: missing required input 'text' (string) of flow 'child'");
    assert_at(&d.items[1], "/inline.yaml", 5, 14,
              "step 'c': inputs.times: expected integer, got string");
    cbx_diag_clear(&d);
}

Test(flow_check, sub_flow_inputs_refer_to_the_parent)
{
    char name[1024];
    snprintf(name, sizeof name, "%s", fixture("inline.yaml"));
    const char *text = "name: t\nsteps:\n  - name: c\n    flow: sub/grandchild.yaml\n"
                       "    inputs: {word: \"{{ steps.nope.outputs }}\"}\n";
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    cr_assert_eq(cbx_flow_load_string(&f, text, strlen(text), name, reg, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 1);
    assert_at(&d.items[0], "/inline.yaml", 5, 14, "step 'c': inputs.word: unknown step 'nope'");
    cbx_diag_clear(&d);
}

/* ---- everything at once --------------------------------------------------------------------- */

Test(flow_check, many_errors_reported_at_once_in_file_order)
{
    static const struct {
        int line, col, code;
        const char *msg;
    } want[] = {
        {3, 1, CBX_EUNKNOWN_KEY, "unknown top-level key 'stpes'; did you mean 'steps'?"},
        {5, 17, CBX_EINVAL_CONFIG, "input 'url': unknown type 'strng'; did you mean 'string'?"},
        {8, 26, CBX_EUNKNOWN_KEY, "policy 'upstream': retry.backof: unknown key 'backof'"},
        {11, 5, CBX_EUNKNOWN_TYPE, "step 'fetch': unknown executor 'htp'; did you mean 'http'?"},
        {12, 14, CBX_EINVAL_CONFIG,
         "step 'fetch': config.url: unknown input 'ur'; did you mean 'url'?"},
        {13, 5, CBX_EINVAL_CONFIG,
         "step 'fetch': unknown policy 'upstreem'; did you mean 'upstream'?"},
        {14, 5, CBX_EINVAL_CONFIG, "step 'count': dependency cycle: count -> report -> count"},
        {16, 30, CBX_EINVAL_CONFIG,
         "step 'count': config.stdni: unknown parameter 'stdni'; did you mean 'stdin'?"},
        {16, 30, CBX_EINVAL_CONFIG,
         "step 'count': config.stdni: unknown step 'fech'; did you mean 'fetch'?"},
        {18, 5, CBX_EPARSE, "step 'count': timeout: expected a duration"},
        {21, 5, CBX_EPARSE, "step 'report': when: \"tonumber(steps.count.outputs.stdout) >\":"},
        {22, 27, CBX_EINVAL_CONFIG, "step 'report': config.argv[1]: expected string, got integer"},
        {24, 5, CBX_EINVAL_CONFIG, "step 'report': duplicate name (first used at line 19)"},
        {27, 5, CBX_EINVAL_CONFIG,
         "step 'report': foreach: unknown input 'urls'; did you mean 'url'?"},
        {28, 5, CBX_EINVAL_CONFIG, "step 'report': batch_size: expected a positive integer"},
        {30, 3, CBX_EINVAL_CONFIG, "outputs: words: unknown step 'cnt'"},
    };
    size_t n = sizeof want / sizeof want[0];
    cbx_diag d = {0};
    file_problems("many_errors.yaml", n, &d);
    for (size_t i = 0; i < n; i++) {
        assert_at(&d.items[i], "/many_errors.yaml", want[i].line, want[i].col, want[i].msg);
        cr_assert_eq(d.items[i].code, want[i].code, "problem %zu: %s, expected %s", i,
                     cbx_err_name(d.items[i].code), cbx_err_name(want[i].code));
    }
    /* the first, for callers that show one line */
    cbx_err first;
    cr_assert_eq(cbx_diag_first(&d, &first), CBX_EUNKNOWN_KEY);
    cr_assert(strstr(first.msg, "(and 15 more)"), "%s", first.msg);
    cbx_diag_clear(&d);
}

Test(flow_check, no_registry_skips_executor_checks)
{
    const char *text = "name: t\nsteps:\n  - name: a\n    executor: whatever\n"
                       "    config: {anything: 1}\n";
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    cr_assert_eq(cbx_flow_load_string(&f, text, strlen(text), "t.yaml", NULL, &d), 0);
    cr_assert_eq(d.n, 0);
    cbx_flow_free(f);
    /* and with one, the same file is refused */
    cr_assert_eq(cbx_flow_load_string(&f, text, strlen(text), "t.yaml", reg, &d),
                 CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 1);
    cr_assert_eq(d.items[0].code, CBX_EUNKNOWN_TYPE);
    cbx_diag_clear(&d);
}

Test(flow_check, unreadable_file)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    cr_assert_eq(cbx_flow_load(&f, fixture("does_not_exist.yaml"), reg, &d), -ENOENT);
    cr_assert_null(f);
    cr_assert_eq(d.n, 1);
    cr_assert(strstr(d.items[0].where, "does_not_exist.yaml"));
    cbx_diag_clear(&d);
}
