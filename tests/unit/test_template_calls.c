/* The names the checker lets a template call (template_calls.c) are exactly callable in a real
 * template environment, and the scan finds calls by other names, not methods, fields, keywords,
 * strings or comments. */
#include "flow/template_internal.h"

#include "cbx/template.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

Test(template_calls, every_known_name_is_callable)
{
    cbx_template_env *env = NULL;
    cbx_err e;
    cr_assert_eq(cbx_template_env_new(&env, NULL, &e), 0, "%s", e.msg);
    json_t *ctx = json_pack("{s:{}, s:{}}", "inputs", "steps");
    for (const char *const *k = cbx__tpl_known_calls(); *k; k++) {
        char expr[128];
        snprintf(expr, sizeof expr, "{{ rawequal(type(%s), 'function') }}", *k);
        json_t *t = json_string(expr), *out = NULL;
        cr_assert_eq(cbx_template_render(env, t, ctx, &out, &e), 0, "%s: %s", *k, e.msg);
        cr_expect(json_is_true(out), "'%s' is not a function in a template", *k);
        json_decref(out);
        json_decref(t);
    }
    json_decref(ctx);
    cbx_template_env_free(env);
}

static const char *unknown(const char *expr)
{
    static char buf[64];
    const char *name;
    size_t n;
    if (!cbx__tpl_unknown_call(expr, strlen(expr), NULL, &name, &n))
        return "";
    snprintf(buf, sizeof buf, "%.*s", (int)n, name);
    return buf;
}

Test(template_calls, finds_calls_by_unknown_names)
{
    cr_expect_str_eq(unknown("upper(inputs.s)"), "upper");
    cr_expect_str_eq(unknown("len(x) + lenght(y)"), "lenght");
    cr_expect_str_eq(unknown("f 'text'"), "f");
    cr_expect_str_eq(unknown("g{1, 2}"), "g");
    cr_expect_str_eq(unknown("inputs.s:upper()"), "");
    cr_expect_str_eq(unknown("string.format('%s', x)"), "");
    cr_expect_str_eq(unknown("(function(x) return x end)(1)"), "");
    cr_expect_str_eq(unknown("'upper(x)' .. [[lower(y)]] .. [==[ a ]] b(c) ]==]"), "");
    cr_expect_str_eq(unknown("x -- foo(y)\n"), "");
    cr_expect_str_eq(unknown("not default(x, 1) and tostring(1) or json(x)"), "");
    cr_expect_str_eq(unknown("x.y and x.y.z or 1e3"), "");
}
