/* Flows refuse references to outputs a step's executor type never produces (its declaration,
 * cbx_output), with a suggestion; they leave alone what is not known before the run. */
#include <criterion/criterion.h>
#include <string.h>

#include "cbx/flow.h"
#include "cbx/registry.h"

static cbx_registry *reg;

static void setup(void)
{
    cr_assert_eq(cbx_registry_new(&reg, NULL), 0);
}

static void teardown(void)
{
    cbx_registry_free(reg);
}

TestSuite(flow_outputs, .init = setup, .fini = teardown);

/* Load text as "t.yaml": the problems' "line:col: message" lines, joined by '\n' ("" when it
 * loads). */
static const char *problems(const char *text)
{
    static char out[4096];
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load_string(&f, text, strlen(text), "t.yaml", reg, &d);
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < d.n && n < sizeof out; i++)
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%d:%d: %s", i ? "\n" : "",
                              d.items[i].line, d.items[i].col, d.items[i].msg);
    cr_assert_eq(rc == 0, d.n == 0, "rc %d with %zu problems", rc, d.n);
    cbx_diag_clear(&d);
    cbx_flow_free(f);
    return out;
}

#define FETCH                                                                                      \
    "name: t\nsteps:\n"                                                                            \
    "  - name: fetch\n    executor: http\n    config: {url: 'http://127.0.0.1:1/'}\n"

Test(flow_outputs, an_output_the_type_never_produces_is_refused_with_a_suggestion)
{
    cr_assert_str_eq(problems(FETCH
                              "  - name: w\n    executor: command\n"
                              "    config: {argv: [wc], stdin: '{{ steps.fetch.outputs.bdy }}'}\n"),
                     "8:26: step 'w': config.stdin: step 'fetch' (http) has no output 'bdy'; did "
                     "you mean 'body'?");
}

Test(flow_outputs, every_way_of_referring_is_checked)
{
    const char *p =
        problems(FETCH "  - name: w\n    executor: command\n"
                       "    when: \"steps.fetch.outputs['stats'] == 200\"\n"
                       "    config: {argv: [echo, '{{ steps[\"fetch\"].outputs.urll }}']}\n"
                       "outputs:\n  h: '{{ steps.fetch.outputs.header }}'\n");
    cr_assert(strstr(p, "when: step 'fetch' (http) has no output 'stats'; did you mean 'status'?"),
              "%s", p);
    cr_assert(strstr(p, "config.argv[1]: step 'fetch' (http) has no output 'urll'; did you mean "
                        "'url'?"),
              "%s", p);
    cr_assert(strstr(p, "outputs: h: step 'fetch' (http) has no output 'header'; did you mean "
                        "'headers'?"),
              "%s", p);
}

Test(flow_outputs, declared_and_optional_outputs_and_deeper_paths_load)
{
    cr_assert_str_eq(problems(FETCH
                              "  - name: c\n    executor: command\n"
                              "    config: {argv: [echo, '{{ steps.fetch.outputs.json.a.b }}',"
                              " '{{ steps.fetch.outputs.body_encoding }}']}\n"
                              "outputs:\n  o: '{{ steps.c.outputs.json }} "
                              "{{ steps.c.outputs.exit_code }} {{ steps.c.outputs }}'\n"),
                     "");
}

Test(flow_outputs, a_fallback_value_adds_its_keys_a_fallback_function_makes_them_unknown)
{
    const char *lit = "name: t\nsteps:\n"
                      "  - name: f\n    executor: http\n    config: {url: 'http://127.0.0.1:1/'}\n"
                      "    policy: {fallback: {value: {body: '', cached: true}}}\n"
                      "outputs:\n  a: '{{ steps.f.outputs.cached }}'\n"
                      "  b: '{{ steps.f.outputs.cahced }}'\n";
    cr_assert_str_eq(problems(lit),
                     "9:3: outputs: b: step 'f' (http) has no output 'cahced'; did you mean "
                     "'cached'?");
    /* a named policy's fallback counts the same */
    const char *named =
        "name: t\npolicies:\n  p: {fallback: {value: {extra: 1}}}\nsteps:\n"
        "  - name: f\n    executor: http\n    config: {url: 'http://127.0.0.1:1/'}\n"
        "    policy: p\n"
        "outputs:\n  a: '{{ steps.f.outputs.extra }}'\n";
    cr_assert_str_eq(problems(named), "");
    /* a value that is not a mapping: not known */
    const char *scalar =
        "name: t\nsteps:\n"
        "  - name: f\n    executor: http\n    config: {url: 'http://127.0.0.1:1/'}\n"
        "    policy: {fallback: {value: 'none'}}\n"
        "outputs:\n  a: '{{ steps.f.outputs.anything }}'\n";
    cr_assert_str_eq(problems(scalar), "");
}

Test(flow_outputs, types_without_a_declaration_and_composites_are_not_checked)
{
    cr_assert_str_eq(
        problems("name: t\nsteps:\n"
                 "  - name: c\n    executor: chaos\n    config: {outputs: {x: 1}}\n"
                 "  - name: g\n    executor: steps\n    steps:\n"
                 "      - name: in\n        executor: command\n        config: {argv: [echo]}\n"
                 "  - name: e\n    executor: command\n    foreach: [1, 2]\n"
                 "    config: {argv: [echo]}\n"
                 "outputs:\n  a: '{{ steps.c.outputs.x }} {{ steps.g.outputs.whatever }}'\n"
                 "  b: '{{ steps.e.outputs.anything }}'\n"),
        "");
}
