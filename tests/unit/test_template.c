/* {{ }} templates: typing, interpolation, nested values, helpers, conditions, foreach lists,
 * the reference scan, syntax checks, error paths, and the cost of a render against a large
 * context. */
#include "cbx/template.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static cbx_template_env *env;
static json_t *ctx;

static const char ctx_text[] =
    "{\"inputs\": {\"url\": \"http://user:pw@Example.COM:8080/x\", \"n\": 3, \"ratio\": 0.5,"
    " \"flag\": true, \"off\": false, \"nothing\": null, \"list\": [1, 2, 3],"
    " \"obj\": {\"a\": 1, \"b\": [true, null]}, \"empty_list\": [], \"empty_obj\": {},"
    " \"name\": \" Ada \", \"input_data\": \"hello world\", \"words\": \"a,b,,c\","
    " \"zero\": 0, \"blank\": \"\"},"
    " \"steps\": {\"fetch\": {\"outputs\": {\"status\": 200, \"body\": \"{\\\"id\\\": 7}\","
    " \"stdout\": \"12\\n\", \"items\": [\"x\", \"y\"]}}},"
    " \"item\": {\"id\": 5}}";

static void setup(void)
{
    cr_assert_eq(cbx_template_env_new(&env, NULL, NULL), 0);
    json_error_t je;
    ctx = json_loads(ctx_text, 0, &je);
    cr_assert_not_null(ctx, "%s", je.text);
}

static void teardown(void)
{
    cbx_template_env_free(env);
    json_decref(ctx);
}

TestSuite(template, .init = setup, .fini = teardown);

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    cr_assert_not_null(v, "bad test JSON %s: %s", text, je.text);
    return v;
}

/* Render a JSON value given as text; must succeed. */
static json_t *render_json(const char *value_text)
{
    json_t *v = parse(value_text);
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_template_render(env, v, ctx, &out, &err);
    cr_assert_eq(rc, 0, "render %s: %s (%s) at '%s'", value_text, err.msg, cbx_err_name(rc),
                 err.where);
    cr_assert_not_null(out);
    json_decref(v);
    return out;
}

/* Render one string; must succeed. */
static json_t *render(const char *s)
{
    json_t *v = json_string(s);
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_template_render(env, v, ctx, &out, &err);
    cr_assert_eq(rc, 0, "render '%s': %s (%s)", s, err.msg, cbx_err_name(rc));
    json_decref(v);
    return out;
}

static void assert_json_eq(json_t *got, const char *want_text, const char *what)
{
    json_t *want = parse(want_text);
    char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
    cr_assert(json_equal(got, want), "%s: got %s, want %s", what, g, want_text);
    /* json_equal does not tell 1 from 1.0: the type must match too */
    cr_assert_eq(json_typeof(got), json_typeof(want), "%s: got %s, want %s", what, g, want_text);
    free(g);
    json_decref(want);
}

static void expect(const char *tpl, const char *want_json)
{
    json_t *out = render(tpl);
    assert_json_eq(out, want_json, tpl);
    json_decref(out);
}

static void expect_text(const char *tpl, const char *want)
{
    json_t *out = render(tpl);
    cr_assert(json_is_string(out), "'%s' gave a %d, not a string", tpl, json_typeof(out));
    cr_assert_str_eq(json_string_value(out), want, "'%s'", tpl);
    json_decref(out);
}

static cbx_err render_fails(const char *value_text, int code)
{
    json_t *v = parse(value_text);
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_template_render(env, v, ctx, &out, &err);
    cr_assert_eq(rc, code, "%s: %s, want %s (%s)", value_text, cbx_err_name(rc), cbx_err_name(code),
                 err.msg);
    cr_assert_eq(err.code, code);
    cr_assert_null(out);
    json_decref(v);
    return err;
}

/* ---- typing --------------------------------------------------------------------------------- */

Test(template, whole_template_keeps_the_json_type)
{
    expect("{{ inputs.n }}", "3");
    expect("{{ inputs.ratio }}", "0.5");
    expect("{{ inputs.flag }}", "true");
    expect("{{ inputs.off }}", "false");
    expect("{{ inputs.nothing }}", "null");
    expect("{{ inputs.missing }}", "null");
    expect("{{ inputs.obj }}", "{\"a\": 1, \"b\": [true, null]}");
    expect("{{ inputs.list }}", "[1, 2, 3]");
    expect("{{ inputs.empty_list }}", "[]");
    expect("{{ inputs.empty_obj }}", "{}");
    expect("{{ inputs.url }}", "\"http://user:pw@Example.COM:8080/x\"");
    expect("  {{inputs.n}}\n ", "3");
    expect("{{ '7' }}", "\"7\"");
    expect("{{ 1.0 }}", "1.0");
    expect("{{ 7 // 2 }}", "3");
    expect("{{ 7 / 2 }}", "3.5");
    expect("{{ inputs.n * 2 }}", "6");
    expect("{{ null }}", "null");
}

Test(template, lua_tables_become_arrays_or_objects)
{
    expect("{{ {1, 'a', null} }}", "[1, \"a\", null]");
    expect("{{ {a = 1, b = {true}} }}", "{\"a\": 1, \"b\": [true]}");
    expect("{{ {} }}", "{}");
    expect("{{ array() }}", "[]");
    expect("{{ {x = inputs.list, y = inputs.empty_list} }}", "{\"x\": [1,2,3], \"y\": []}");
    expect("{{ {[1] = 'a', [3] = 'c'} }}", "{\"1\": \"a\", \"3\": \"c\"}");
    expect("{{ {steps.fetch.outputs.items, inputs.obj.b} }}", "[[\"x\",\"y\"], [true, null]]");
}

Test(template, interpolation_gives_text)
{
    expect_text("n={{ inputs.n }}", "n=3");
    expect_text("{{ inputs.ratio }}x", "0.5x");
    expect_text("f={{ inputs.flag }}/{{ inputs.off }}", "f=true/false");
    expect_text("a{{ inputs.nothing }}b{{ inputs.missing }}c", "abc");
    expect_text("o={{ inputs.obj }}", "o={\"a\":1,\"b\":[true,null]}");
    expect_text("l={{ inputs.empty_list }} e={{ inputs.empty_obj }}", "l=[] e={}");
    expect_text("{{ 4 / 2 }} items", "2.0 items");
    expect_text("v={{ 0.1 + 0.2 }}", "v=0.30000000000000004");
    expect_text("v={{ 1e20 }} w={{ 2^63 }}", "v=1e+20 w=9.223372036854776e+18");
    expect_text("{{ inputs.n }}/{{ inputs.n + 1 }}", "3/4");
    expect_text("t={{ {b = 1, a = 2, c = {z = 1, y = 2}} }}",
                "t={\"a\":2,\"b\":1,\"c\":{\"y\":2,\"z\":1}}");
    expect_text("s={{ 'say \"hi\"' }}", "s=say \"hi\"");
    expect_text("j={{ {'a\\nb'} }}", "j=[\"a\\nb\"]");
    expect_text("no templates at all", "no templates at all");
    expect_text("a }} b {", "a }} b {");
}

Test(template, braces_and_strings_inside_templates)
{
    expect("{{ {a={b=1}} }}", "{\"a\": {\"b\": 1}}");
    expect("{{ '}}' }}", "\"}}\"");
    expect("{{ \"{{\" }}", "\"{{\"");
    expect("{{ [[x}}y]] }}", "\"x}}y\"");
    expect_text("{{inputs.n}}}", "3}");
    expect("{{ inputs.n -- a comment }}", "3");
    expect("{{ inputs.n --[[ a }} comment ]] + 1 }}", "4");
}

Test(template, nested_values_are_rendered_recursively)
{
    json_t *out = render_json(
        "{\"url\": \"{{ inputs.url }}\", \"headers\": {\"X-N\": \"{{ inputs.n }}\","
        " \"Lit\": \"plain\"}, \"argv\": [\"echo\", \"n={{ inputs.n }}\", \"{{ inputs.list }}\","
        " [\"{{ inputs.flag }}\"]], \"n\": 5, \"r\": 1.5, \"b\": false, \"z\": null}");
    assert_json_eq(out,
                   "{\"url\": \"http://user:pw@Example.COM:8080/x\", \"headers\": {\"X-N\": 3,"
                   " \"Lit\": \"plain\"}, \"argv\": [\"echo\", \"n=3\", [1, 2, 3], [true]],"
                   " \"n\": 5, \"r\": 1.5, \"b\": false, \"z\": null}",
                   "nested");
    json_decref(out);
}

Test(template, the_seed_flow_config)
{
    json_t *out = render_json("{\"input_data\": \"{{ inputs.input_data }}\"}");
    assert_json_eq(out, "{\"input_data\": \"hello world\"}", "seed");
    json_decref(out);
}

Test(template, rendered_values_are_copies)
{
    json_t *out = render("{{ inputs.obj }}");
    json_object_set_new(out, "added", json_true());
    json_array_clear(json_object_get(out, "b"));
    json_t *obj = json_object_get(json_object_get(ctx, "inputs"), "obj");
    cr_assert_null(json_object_get(obj, "added"));
    cr_assert_eq(json_array_size(json_object_get(obj, "b")), 2);
    json_decref(out);

    json_t *v = parse("{\"k\": [\"{{ inputs.n }}\", 1]}");
    out = NULL;
    cr_assert_eq(cbx_template_render(env, v, ctx, &out, NULL), 0);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "k"), 0)),
                     "{{ inputs.n }}");
    json_decref(out);
    json_decref(v);
}

Test(template, context_values_behave_like_tables)
{
    expect("{{ #inputs.list }}", "3");
    expect("{{ inputs.list[2] }}", "2");
    expect("{{ inputs.list[4] }}", "null");
    expect("{{ inputs.obj.b[2] == null }}", "true");
    expect("{{ table.concat(inputs.list, '+') }}", "\"1+2+3\"");
    expect("{{ (function() local s = 0 for _, v in ipairs(inputs.list) do s = s + v end"
           " return s end)() }}",
           "6");
    expect("{{ (function() local ks = {} for k in pairs(inputs.obj) do ks[#ks + 1] = k end"
           " return table.concat(ks, ',') end)() }}",
           "\"a,b\"");
    expect("{{ (function() local n = 0 for i, v in pairs(inputs.list) do n = n + i * v end"
           " return n end)() }}",
           "14");
    expect("{{ tostring(inputs.obj) }}", "\"{\\\"a\\\":1,\\\"b\\\":[true,null]}\"");
    expect("{{ inputs.obj == inputs.obj }}", "true");
    expect("{{ type(inputs.obj) }}", "\"table\"");
    expect("{{ select('#', table.unpack(inputs.list)) }}", "3");
    expect("{{ item.id }}", "5");
    expect("{{ steps.fetch.outputs.status == 200 }}", "true");
}

/* ---- helpers -------------------------------------------------------------------------------- */

Test(template, helper_json)
{
    expect("{{ json(inputs.obj) }}", "\"{\\\"a\\\":1,\\\"b\\\":[true,null]}\"");
    expect("{{ json({1, 'a', null}) }}", "\"[1,\\\"a\\\",null]\"");
    expect("{{ json('x\"y') }}", "\"\\\"x\\\\\\\"y\\\"\"");
    expect("{{ json(1.5) }}", "\"1.5\"");
    expect("{{ json(2) }}", "\"2\"");
    expect("x{{ json(array()) }}", "\"x[]\"");
    expect("{{ json({}) }}", "\"{}\"");
    expect("{{ json(nil) }}", "\"null\"");
    expect("{{ json(inputs.empty_list) }}", "\"[]\"");
}

Test(template, helper_parse_json)
{
    expect("{{ parse_json(steps.fetch.outputs.body).id }}", "7");
    expect("{{ parse_json('[]') }}", "[]");
    expect("{{ parse_json('{\"a\": [1, 2.5, null]}') }}", "{\"a\": [1, 2.5, null]}");
    expect("{{ parse_json('\"s\"') }}", "\"s\"");
    cbx_err err = render_fails("\"{{ parse_json('{') }}\"", CBX_EFAILED);
    cr_assert(strstr(err.msg, "parse_json()"), "%s", err.msg);
}

Test(template, helper_len)
{
    expect("{{ len('h\xc3\xa9llo') }}", "5");
    expect("{{ len(inputs.list) }}", "3");
    expect("{{ len(inputs.obj) }}", "2");
    expect("{{ len(inputs.empty_obj) }}", "0");
    expect("{{ len(nil) }}", "0");
    expect("{{ len(inputs.nothing) }}", "0");
    expect("{{ len({1, 2}) }}", "2");
    expect("{{ len({a = 1, b = 2, c = 3}) }}", "3");
    expect("{{ len(steps.fetch.outputs.stdout) }}", "3");
    cbx_err err = render_fails("\"{{ len(5) }}\"", CBX_EFAILED);
    cr_assert(strstr(err.msg, "len(): expected a string, an array or an object, got a number"),
              "%s", err.msg);
}

Test(template, helper_default)
{
    expect("{{ default(inputs.missing, 'd') }}", "\"d\"");
    expect("{{ default(inputs.nothing, 4) }}", "4");
    expect("{{ default(inputs.n, 9) }}", "3");
    expect("{{ default(inputs.off, 1) }}", "false");
    expect("{{ default(inputs.blank, 'x') }}", "\"\"");
    expect("{{ default(inputs.missing) }}", "null");
}

Test(template, helper_host)
{
    static const char *const cases[][2] = {
        {"http://user:pw@Example.COM:8080/x", "example.com"},
        {"https://[::1]:8443/p", "::1"},
        {"https://[2001:DB8::1]/", "2001:db8::1"},
        {"http://u:p@[fe80::1]:1/x?y", "fe80::1"},
        {"http://a.b/c?d#e", "a.b"},
        {"http://a.b?q=http://evil/", "a.b"},
        {"http://a.b#@evil", "a.b"},
        {"http://x@y@host.io:1/", "host.io"},
        {"example.org:99/path", "example.org"},
        {"//cdn.x.io/lib", "cdn.x.io"},
        {"ftp://h:21", "h"},
        {"HOST", "host"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char tpl[256], want[128];
        snprintf(tpl, sizeof tpl, "{{ host('%s') }}", cases[i][0]);
        snprintf(want, sizeof want, "\"%s\"", cases[i][1]);
        expect(tpl, want);
    }
    expect("{{ host(inputs.url) }}", "\"example.com\"");
    expect("{{ host('') }}", "null");
    expect("{{ host('http:///path') }}", "null");
    expect("{{ host('http://[::1') }}", "null");
    expect("{{ host(nil) }}", "null");
    expect_text("breaker:{{ host('https://api.example.com:443/v1') }}", "breaker:api.example.com");
}

Test(template, helpers_for_text_and_lists)
{
    expect("{{ trim(inputs.name) }}", "\"Ada\"");
    expect("{{ trim('\\t\\n x y \\r\\n') }}", "\"x y\"");
    expect("{{ split(' a  b\\tc\\n') }}", "[\"a\", \"b\", \"c\"]");
    expect("{{ split(inputs.words, ',') }}", "[\"a\", \"b\", \"\", \"c\"]");
    expect("{{ split('a::b', '::') }}", "[\"a\", \"b\"]");
    expect("{{ split('', ',') }}", "[\"\"]");
    expect("{{ split('') }}", "[]");
    expect("{{ split('a.b', '.') }}", "[\"a\", \"b\"]");
    expect("{{ join(inputs.list, '-') }}", "\"1-2-3\"");
    expect("{{ join({'a', 1, true, 2.5}, ',') }}", "\"a,1,true,2.5\"");
    expect("{{ join(split('a b c'), '+') }}", "\"a+b+c\"");
    expect("{{ join(steps.fetch.outputs.items) }}", "\"xy\"");
    expect("{{ join({}, ',') }}", "\"\"");
    expect("{{ contains({x = 1}, 1) }}", "false");
    expect("{{ contains('hello', 'ell') }}", "true");
    expect("{{ contains('hello', 'xyz') }}", "false");
    expect("{{ contains(inputs.list, 2) }}", "true");
    expect("{{ contains(inputs.list, 2.0) }}", "true");
    expect("{{ contains(inputs.list, 9) }}", "false");
    expect("{{ contains(inputs.obj, 'a') }}", "true");
    expect("{{ contains(inputs.obj, 'z') }}", "false");
    expect("{{ contains(inputs.obj.b, null) }}", "true");
    expect("{{ contains({1, 2}, 2) }}", "true");
    expect("{{ contains({x = 1}, 'x') }}", "true");
    expect("{{ contains({inputs.obj}, inputs.obj) }}", "true");
    expect("{{ contains({{a = 1}, 2}, {a = 1}) }}", "true");
    expect("{{ contains({{a = 1}}, {a = 2}) }}", "false");
    expect("{{ contains({inputs.list}, {1, 2, 3}) }}", "true");
    expect("{{ contains(nil, 1) }}", "false");
    expect("{{ contains(steps.fetch.outputs.items, 'y') }}", "true");
    expect("{{ starts_with(inputs.url, 'http://') }}", "true");
    expect("{{ starts_with(inputs.url, 'https://') }}", "false");
    expect("{{ ends_with(inputs.url, '/x') }}", "true");
    expect("{{ ends_with('x', 'long suffix') }}", "false");
    expect("{{ starts_with(inputs.missing, 'a') }}", "false");
    expect("{{ inputs.name:upper() }}", "\" ADA \"");
    expect("{{ trim(inputs.name):lower() }}", "\"ada\"");
    expect("{{ ('%05d'):format(inputs.n) }}", "\"00003\"");
    cbx_err err = render_fails("\"{{ split('a', '') }}\"", CBX_EFAILED);
    cr_assert(strstr(err.msg, "split(): the separator is empty"), "%s", err.msg);
}

/* ---- conditions and lists ------------------------------------------------------------------- */

static int truth(const char *expr)
{
    int t = -1;
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_template_truthy(env, expr, ctx, &t, &err);
    cr_assert_eq(rc, 0, "'%s': %s", expr, err.msg);
    return t;
}

Test(template, plain_paths_read_as_lua_would)
{
    /* a plain path is read from the JSON without Lua; in parentheses it goes through Lua */
    static const char *const paths[] = {
        "inputs.obj.a",
        "inputs.list[2]",
        "inputs.list[9]",
        "inputs.list[0]",
        "inputs.obj[\"b\"]",
        "inputs.obj['b'][2]",
        "inputs.obj.b[1]",
        "inputs.missing",
        "inputs.obj.missing",
        "inputs.list.x",
        "inputs.obj[1]",
        "inputs .obj . a",
        "item.id",
        "inputs.ratio",
        "inputs.nothing",
        "inputs",
        "steps.fetch.outputs.items[2]",
        "inputs.empty_list",
        "inputs.empty_obj",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char plain[128], lua[128], text[128], ltext[128], bare[128];
        snprintf(plain, sizeof plain, "{{ %s }}", paths[i]);
        snprintf(lua, sizeof lua, "{{ (%s) }}", paths[i]);
        snprintf(text, sizeof text, "<{{ %s }}>", paths[i]);
        snprintf(ltext, sizeof ltext, "<{{ (%s) }}>", paths[i]);
        snprintf(bare, sizeof bare, "(%s)", paths[i]);
        json_t *a = render(plain), *b = render(lua), *c = render(text), *d = render(ltext);
        char *as = json_dumps(a, JSON_ENCODE_ANY), *bs = json_dumps(b, JSON_ENCODE_ANY);
        cr_assert(json_equal(a, b) && json_typeof(a) == json_typeof(b), "%s: %s vs %s", paths[i],
                  as, bs);
        cr_assert_str_eq(json_string_value(c), json_string_value(d), "%s", paths[i]);
        cr_assert_eq(truth(paths[i]), truth(bare), "%s", paths[i]);
        free(as);
        free(bs);
        json_decref(a);
        json_decref(b);
        json_decref(c);
        json_decref(d);
    }
    /* what a plain path cannot judge goes to Lua, with Lua's message */
    cbx_err err = render_fails("\"{{ inputs.missing.x }}\"", CBX_EFAILED);
    cr_assert_str_eq(err.msg,
                     "{{ inputs.missing.x }}: attempt to index a nil value (field 'missing')");
    err = render_fails("\"{{ inputs.name.upper }}\"", CBX_EFAILED);
    cr_assert(strstr(err.msg, "a function cannot become JSON"), "%s", err.msg);
    expect("{{ inputs.list[1.0] }}", "1");
    expect("{{ inputs.list[0x2] }}", "2");
    json_t *v = parse("\"{{ inputs.end }}\"");
    cr_assert_eq(cbx_template_check(v, &err), CBX_EPARSE);
    json_decref(v);
    render_fails("\"{{ inputs.end }}\"", CBX_EPARSE);
    expect("{{ inputs['end'] }}", "null");
}

Test(template, truthiness_follows_lua_with_null_false)
{
    cr_assert_eq(truth("false"), 0);
    cr_assert_eq(truth("nil"), 0);
    cr_assert_eq(truth("null"), 0);
    cr_assert_eq(truth("inputs.nothing"), 0);
    cr_assert_eq(truth("inputs.missing"), 0);
    cr_assert_eq(truth("inputs.off"), 0);
    cr_assert_eq(truth("0"), 1);
    cr_assert_eq(truth("''"), 1);
    cr_assert_eq(truth("inputs.zero"), 1);
    cr_assert_eq(truth("inputs.blank"), 1);
    cr_assert_eq(truth("inputs.empty_list"), 1);
    cr_assert_eq(truth("{}"), 1);
    cr_assert_eq(truth("inputs.flag"), 1);
    cr_assert_eq(truth("tonumber(steps.fetch.outputs.stdout) > 10"), 1);
    cr_assert_eq(truth("tonumber(steps.fetch.outputs.stdout) > 20"), 0);
    cr_assert_eq(truth("len(inputs.blank) == 0 and inputs.n >= 3"), 1);
}

static json_t *eval(const char *expr)
{
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_template_eval(env, expr, ctx, &out, &err);
    cr_assert_eq(rc, 0, "'%s': %s", expr, err.msg);
    return out;
}

Test(template, eval_gives_foreach_lists)
{
    json_t *v = eval("inputs.list");
    assert_json_eq(v, "[1, 2, 3]", "list");
    json_decref(v);
    v = eval("split(inputs.words, ',')");
    assert_json_eq(v, "[\"a\", \"b\", \"\", \"c\"]", "split");
    json_decref(v);
    v = eval("inputs.empty_list");
    assert_json_eq(v, "[]", "empty");
    json_decref(v);
    v = eval("array()");
    assert_json_eq(v, "[]", "array()");
    json_decref(v);
    v = eval("(function() local t = {} for i = 1, 3 do t[i] = i * i end return t end)()");
    assert_json_eq(v, "[1, 4, 9]", "squares");
    json_decref(v);
    v = eval("steps.fetch.outputs.items");
    assert_json_eq(v, "[\"x\", \"y\"]", "items");
    json_decref(v);
    v = NULL;
    cr_assert_eq(cbx_template_eval(env, "1 + 1", NULL, &v, NULL), 0);
    assert_json_eq(v, "2", "no context");
    json_decref(v);
    json_t *notobj = json_array();
    cr_assert_eq(cbx_template_eval(env, "1", notobj, &v, NULL), -EINVAL);
    json_decref(notobj);
}

/* ---- references ----------------------------------------------------------------------------- */

static void assert_names(json_t *arr, const char *want_text)
{
    if (!arr)
        arr = json_array();
    else
        json_incref(arr);
    assert_json_eq(arr, want_text, "names");
    json_decref(arr);
}

static void refs_of(const char *value_text, const char *want_inputs, const char *want_steps)
{
    json_t *v = parse(value_text);
    json_t *in = NULL, *st = NULL;
    cr_assert_eq(cbx_template_refs(v, &in, &st), 0);
    assert_names(in, want_inputs);
    assert_names(st, want_steps);
    json_decref(in);
    json_decref(st);
    json_decref(v);
}

Test(template, refs_scan_finds_inputs_and_steps)
{
    refs_of("{\"a\": \"{{ inputs.x }} and {{ steps.s1.outputs.y }}\","
            " \"b\": [\"{{ inputs[\\\"y z\\\"] }}\", {\"c\": \"{{ steps['s2'].outputs }}\"}],"
            " \"d\": \"no refs: inputs.q steps.q\", \"g\": \"{{ inputs.x }}\", \"n\": 5}",
            "[\"x\", \"y z\"]", "[\"s1\", \"s2\"]");
}

Test(template, refs_scan_skips_strings_comments_and_fields)
{
    refs_of("\"{{ 'inputs.fake' .. \\\"steps.fake\\\" .. inputs.real }}\"", "[\"real\"]", "[]");
    refs_of("\"{{ [[steps.q]] .. [==[inputs.q]==] .. inputs.b }}\"", "[\"b\"]", "[]");
    refs_of("\"{{ inputs.a -- steps.c }}\"", "[\"a\"]", "[]");
    refs_of("\"{{ inputs.a --[[ steps.c ]] + steps.d.x }}\"", "[\"a\"]", "[\"d\"]");
    refs_of("\"{{ item.inputs.no .. x.steps.no .. y:steps() }}\"", "[]", "[]");
    refs_of("\"{{ steps[name] .. inputs[1] }}\"", "[]", "[]");
    refs_of("\"{{ {steps.a, {inputs.b}} }}\"", "[\"b\"]", "[\"a\"]");
    refs_of("\"{{ 'it''s' }} {{ steps . spaced . outputs }}\"", "[]", "[\"spaced\"]");
    refs_of("\"{{ inputs['a\\\\'b'] }}\"", "[\"a'b\"]", "[]");
    refs_of("\"{{ 1..2 .. inputs.c }}\"", "[\"c\"]", "[]");
    refs_of("\"{{ inputs.q\"", "[\"q\"]", "[]"); /* unterminated: scanned all the same */
}

Test(template, refs_expr_and_appending)
{
    json_t *in = json_array(), *st = NULL;
    json_array_append_new(in, json_string("min"));
    cr_assert_eq(cbx_template_refs_expr("tonumber(steps.words.outputs.stdout) > 0 and "
                                        "inputs.min ~= nil and inputs.max and steps[\"words\"]",
                                        &in, &st),
                 0);
    assert_names(in, "[\"min\", \"max\"]");
    assert_names(st, "[\"words\"]");
    json_decref(in);
    json_decref(st);
    /* only the steps wanted */
    st = NULL;
    cr_assert_eq(cbx_template_refs_expr("inputs.a .. steps.b.x", NULL, &st), 0);
    assert_names(st, "[\"b\"]");
    json_decref(st);
}

/* An expression that starts with a digit, at the very start of a page whose previous page
 * cannot be read: the scan must not look one byte before the text (it did: "1 == 1"). */
Test(template, refs_expr_starting_with_a_digit_reads_nothing_before_it)
{
    long page = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(map, MAP_FAILED);
    cr_assert_eq(mprotect(map, (size_t)page, PROT_NONE), 0);
    char *text = map + page;
    strcpy(text, "1 == 1 and steps.a");
    json_t *st = NULL;
    cr_assert_eq(cbx_template_refs_expr(text, NULL, &st), 0);
    assert_names(st, "[\"a\"]");
    json_decref(st);
    strcpy(text, "0x1p-3");
    cr_assert_eq(cbx_template_refs_expr(text, NULL, NULL), 0);
    munmap(map, (size_t)page * 2);
}

/* ---- syntax checks and errors --------------------------------------------------------------- */

Test(template, check_reports_syntax_errors_with_path_and_template)
{
    json_t *v = parse("{\"a\": \"{{ inputs.x + 1 }}\", \"b\": [1, \"x\"]}");
    cr_assert_eq(cbx_template_check(v, NULL), 0);
    json_decref(v);
    v = parse("{\"headers\": {\"Authorization\": \"Bearer {{ inputs.x + }}\"}}");
    cbx_err err;
    cbx_err_clear(&err);
    cr_assert_eq(cbx_template_check(v, &err), CBX_EPARSE);
    cr_assert_str_eq(err.where, "headers.Authorization");
    cr_assert_str_eq(err.msg, "{{ inputs.x + }}: unexpected symbol near <eof>");
    cr_assert_eq(err.line, 0);

    /* the same message when rendering */
    cbx_err rerr;
    cbx_err_clear(&rerr);
    json_t *out = NULL;
    cr_assert_eq(cbx_template_render(env, v, ctx, &out, &rerr), CBX_EPARSE);
    cr_assert_str_eq(rerr.where, err.where);
    cr_assert_str_eq(rerr.msg, err.msg);
    json_decref(v);

    v = parse("[\"ok\", \"{{ inputs.n }}\", \"{{ inputs.n\"]");
    cr_assert_eq(cbx_template_check(v, &err), CBX_EPARSE);
    cr_assert_str_eq(err.where, "[2]");
    cr_assert(strstr(err.msg, "unterminated template"), "%s", err.msg);
    json_decref(v);

    v = parse("{\"x\": \"a {{ }} b\"}");
    cr_assert_eq(cbx_template_check(v, &err), CBX_EPARSE);
    cr_assert_str_eq(err.msg, "{{ }}: empty expression");
    json_decref(v);

    v = parse("{\"x\": \"{{ 'it's' }}\"}");
    cr_assert_eq(cbx_template_check(v, &err), CBX_EPARSE);
    cr_assert(strstr(err.msg, "unfinished string"), "%s", err.msg);
    json_decref(v);

    v = parse("{\"a.b\": {\"c d\": \"{{ x = 1 }}\"}}");
    cr_assert_eq(cbx_template_check(v, &err), CBX_EPARSE);
    cr_assert_str_eq(err.where, "[\"a.b\"][\"c d\"]");
    json_decref(v);

    /* nothing runs during a check */
    v = parse("\"{{ os.exit(1) }} {{ io.open('/etc/passwd') }}\"");
    cr_assert_eq(cbx_template_check(v, NULL), 0);
    json_decref(v);
}

Test(template, check_expr_quotes_the_expression)
{
    cbx_err err;
    cbx_err_clear(&err);
    cr_assert_eq(cbx_template_check_expr("inputs.n > 2 and steps.x", &err), 0);
    cr_assert_eq(cbx_template_check_expr("inputs.n >", &err), CBX_EPARSE);
    cr_assert_str_eq(err.msg, "\"inputs.n >\": unexpected symbol near <eof>");
    cr_assert_eq(cbx_template_check_expr("  ", &err), CBX_EPARSE);
    cr_assert_eq(cbx_template_check_expr("1, 2", &err), 0);
    cr_assert_eq(cbx_template_check_expr("1 end", &err), CBX_EPARSE);

    int t = 0;
    cr_assert_eq(cbx_template_truthy(env, "inputs.n >", ctx, &t, &err), CBX_EPARSE);
    cr_assert_str_eq(err.msg, "\"inputs.n >\": unexpected symbol near <eof>");
    cr_assert_str_eq(err.where, "");
}

Test(template, runtime_errors_name_the_path_and_quote_the_template)
{
    cbx_err err =
        render_fails("{\"argv\": [\"a\", \"b\", \"x{{ inputs.obj.a.b.c }}\"]}", CBX_EFAILED);
    cr_assert_str_eq(err.where, "argv[2]");
    cr_assert_str_eq(err.msg,
                     "{{ inputs.obj.a.b.c }}: attempt to index a number value (field 'a')");

    err = render_fails("{\"config\": {\"headers\": {\"Authorization\": \"{{ nope.x }}\"}}}",
                       CBX_EFAILED);
    cr_assert_str_eq(err.where, "config.headers.Authorization");
    cr_assert_str_eq(err.msg, "{{ nope.x }}: attempt to index a nil value (global 'nope')");

    err = render_fails("\"{{ inputs.missing.x }}\"", CBX_EFAILED);
    cr_assert_str_eq(err.where, "");
    cr_assert_str_eq(err.msg,
                     "{{ inputs.missing.x }}: attempt to index a nil value (field 'missing')");

    err = render_fails("\"{{ error('boom') }}\"", CBX_EFAILED);
    cr_assert_str_eq(err.msg, "{{ error('boom') }}: boom");

    err = render_fails("\"{{ coroutine.wrap(function() error('in co') end)() }}\"", CBX_EFAILED);
    cr_assert_str_eq(err.msg, "{{ coroutine.wrap(function() error('in co') end)() }}: in co");

    err = render_fails("\"{{ print }}\"", CBX_EFAILED);
    cr_assert(strstr(err.msg, "a function cannot become JSON"), "%s", err.msg);

    err = render_fails("\"x {{ {f = print} }}\"", CBX_EFAILED);
    cr_assert(strstr(err.msg, "value.f: a function cannot become JSON"), "%s", err.msg);

    err = render_fails("\"{{ 0/0 }}\"", CBX_EFAILED);
    cr_assert(strstr(err.msg, "NaN"), "%s", err.msg);

    err = render_fails("\"{{ '\\\\xff' }}\"", CBX_EFAILED);
    cr_assert(strstr(err.msg, "UTF-8"), "%s", err.msg);

    /* a long template is shortened in the message */
    char big[600];
    snprintf(big, sizeof big, "\"{{ nope.x .. '%0400d' }}\"", 0);
    err = render_fails(big, CBX_EFAILED);
    cr_assert(strstr(err.msg, "...: attempt to index"), "%s", err.msg);
    cr_assert_lt(strlen(err.msg), 300);
}

Test(template, has_finds_templates_anywhere)
{
    json_t *v = parse("{\"a\": [1, {\"b\": \"x {{ y }}\"}]}");
    cr_assert_eq(cbx_template_has(v), 1);
    json_decref(v);
    v = parse("{\"a\": [1, {\"b\": \"x { { y }\"}], \"{{k}}\": 2}");
    cr_assert_eq(cbx_template_has(v), 0);
    json_decref(v);
    cr_assert_eq(cbx_template_has(NULL), 0);
}

Test(template, env_exposes_only_allowed_variables)
{
    setenv("CBX_TPL_A", "1", 1);
    setenv("CBX_TPL_B", "two", 1);
    setenv("OTHER_TPL", "3", 1);
    const char *const allow[] = {"CBX_TPL_*", "NO_SUCH_VAR", NULL};
    cbx_template_env *e2 = NULL;
    cr_assert_eq(cbx_template_env_new(&e2, &(cbx_template_opts){.env_allow = allow}, NULL), 0);
    json_t *vars = cbx_template_env_vars(e2);
    cr_assert_str_eq(json_string_value(json_object_get(vars, "CBX_TPL_A")), "1");
    cr_assert_str_eq(json_string_value(json_object_get(vars, "CBX_TPL_B")), "two");
    cr_assert_null(json_object_get(vars, "OTHER_TPL"));
    cr_assert_null(json_object_get(vars, "PATH"));
    cr_assert_eq(json_object_size(vars), 2);

    json_t *c = json_pack("{s:O}", "env", vars);
    json_t *v = json_string("{{ env.CBX_TPL_B }}-{{ env.OTHER_TPL }}-{{ default(env.HOME, 'h') }}");
    json_t *out = NULL;
    cr_assert_eq(cbx_template_render(e2, v, c, &out, NULL), 0);
    cr_assert_str_eq(json_string_value(out), "two--h");
    json_decref(out);
    json_decref(v);
    json_decref(c);
    json_decref(vars);
    cbx_template_env_free(e2);

    json_t *none = cbx_template_env_vars(env);
    cr_assert_eq(json_object_size(none), 0);
    json_decref(none);
}

Test(template, many_distinct_expressions)
{
    /* more than the compiled-expression cache holds */
    for (int i = 0; i < 5000; i++) {
        char tpl[64], want[32];
        snprintf(tpl, sizeof tpl, "{{ inputs.n + %d }}", i);
        snprintf(want, sizeof want, "%d", 3 + i);
        expect(tpl, want);
    }
    expect("{{ inputs.n + 1 }}", "4");
}

/* ---- a large context ------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(template, large_context_is_read_lazily)
{
    enum { NSTEPS = 10000, RENDERS = 20000 };
    json_t *steps = json_object();
    for (int i = 0; i < NSTEPS; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%d", i);
        json_object_set_new(steps, name,
                            json_pack("{s:{s:i,s:s,s:[i,i,i]}}", "outputs", "value", i, "stdout",
                                      "some output text of a step", "list", i, i + 1, i + 2));
    }
    json_t *big = json_pack("{s:{s:i}, s:o}", "inputs", "n", 7, "steps", steps);
    json_t *config = parse("{\"cmd\": \"echo\", \"argv\": [\"{{ steps.s9999.outputs.value }}\","
                           " \"n={{ inputs.n }}\"], \"timeout\": 5}");
    json_t *out = NULL;
    double t0 = now_s();
    for (int i = 0; i < RENDERS; i++) {
        cr_assert_eq(cbx_template_render(env, config, big, &out, NULL), 0);
        if (i + 1 < RENDERS)
            json_decref(out);
    }
    double per = (now_s() - t0) / RENDERS * 1e6;
    assert_json_eq(out, "{\"cmd\": \"echo\", \"argv\": [9999, \"n=7\"], \"timeout\": 5}", "big");
    json_decref(out);

    /* distinct templates, as a flow of 10,000 steps has: plain references (read without Lua)
     * and expressions (each compiled once) */
    double per_new[2];
    for (int kind = 0; kind < 2; kind++) {
        t0 = now_s();
        for (int i = 0; i < NSTEPS; i++) {
            char tpl[64];
            snprintf(tpl, sizeof tpl,
                     kind ? "{{ steps.s%d.outputs.list[2] * 1 }}"
                          : "{{ steps.s%d.outputs.list[2] }}",
                     i);
            json_t *v = json_string(tpl);
            cr_assert_eq(cbx_template_render(env, v, big, &out, NULL), 0);
            cr_assert_eq(json_integer_value(out), i + 1);
            json_decref(out);
            json_decref(v);
        }
        per_new[kind] = (now_s() - t0) / NSTEPS * 1e6;
    }
    cr_log_info("against %d steps: a 2-template config %.2f us per render; a new plain reference "
                "%.2f us; a new expression %.2f us\n",
                NSTEPS, per, per_new[0], per_new[1]);
    fprintf(stderr,
            "# template: against %d steps: a 2-template config %.2f us per render; a new plain "
            "reference %.2f us; a new expression %.2f us\n",
            NSTEPS, per, per_new[0], per_new[1]);
    json_decref(config);
    json_decref(big);
}
