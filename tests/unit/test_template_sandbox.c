/* Templates cannot escape the sandbox: forbidden libraries and functions, writes to the context
 * and the globals, the instruction, memory and recursion limits, and context values kept past
 * their evaluation. Every refusal is an error that names the path and quotes the template. */
#include "cbx/template.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cbx_template_env *env;
static json_t *ctx;

static void setup(void)
{
    cr_assert_eq(cbx_template_env_new(&env, NULL, NULL), 0);
    ctx = json_pack("{s:{s:i, s:[i,i], s:{s:s}}, s:{}}", "inputs", "n", 3, "list", 1, 2, "obj", "a",
                    "x", "steps");
    cr_assert_not_null(ctx);
}

static void teardown(void)
{
    cbx_template_env_free(env);
    json_decref(ctx);
}

TestSuite(template_sandbox, .init = setup, .fini = teardown);

/* Render "{{ expr }}" inside a config at argv[1]; it must fail with code and a message that
 * quotes the template and contains needle. */
static cbx_err refused_in(cbx_template_env *e, const char *expr, int code, const char *needle)
{
    char tpl[1024];
    snprintf(tpl, sizeof tpl, "{{ %s }}", expr);
    json_t *v = json_pack("{s:[s,s]}", "argv", "cmd", tpl);
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_template_render(e, v, ctx, &out, &err);
    cr_assert_eq(rc, code, "%s: got %s (%s), want %s", expr, cbx_err_name(rc), err.msg,
                 cbx_err_name(code));
    cr_assert_null(out);
    cr_assert_str_eq(err.where, "argv[1]", "%s", expr);
    cr_assert(strncmp(err.msg, tpl, strlen(tpl)) == 0 && err.msg[strlen(tpl)] == ':',
              "%s: message does not quote the template: %s", expr, err.msg);
    cr_assert(strstr(err.msg, needle), "%s: message '%s' lacks '%s'", expr, err.msg, needle);
    json_decref(v);
    return err;
}

static cbx_err refused(const char *expr, int code, const char *needle)
{
    return refused_in(env, expr, code, needle);
}

static void still_works(void)
{
    json_t *v = json_string("{{ inputs.n + #inputs.list }}");
    json_t *out = NULL;
    cr_assert_eq(cbx_template_render(env, v, ctx, &out, NULL), 0);
    cr_assert_eq(json_integer_value(out), 5);
    json_decref(out);
    json_decref(v);
}

Test(template_sandbox, no_io_os_require_load_debug_package)
{
    refused("io.open('/etc/passwd')", CBX_ESANDBOX, "io is not available in the sandbox");
    refused("io.popen('id')", CBX_ESANDBOX, "io is not available in the sandbox");
    refused("os.execute('touch /tmp/cbx_pwned')", CBX_ESANDBOX,
            "os.execute is not available in the sandbox");
    refused("os.exit(1)", CBX_ESANDBOX, "os.exit is not available in the sandbox");
    refused("os.getenv('HOME')", CBX_ESANDBOX, "os.getenv is not available in the sandbox");
    refused("os.remove('/tmp/x')", CBX_ESANDBOX, "os.remove is not available in the sandbox");
    refused("require('os')", CBX_ESANDBOX, "require is not available in the sandbox");
    refused("load('return 1')()", CBX_ESANDBOX, "load is not available in the sandbox");
    refused("loadstring('return 1')", CBX_ESANDBOX, "loadstring is not available in the sandbox");
    refused("loadfile('/etc/passwd')", CBX_ESANDBOX, "loadfile is not available in the sandbox");
    refused("dofile('/etc/passwd')", CBX_ESANDBOX, "dofile is not available in the sandbox");
    refused("string.dump(print)", CBX_ESANDBOX, "string.dump is not available in the sandbox");
    refused("('x').dump(print)", CBX_ESANDBOX, "string.dump is not available in the sandbox");
    refused("debug.getinfo(1)", CBX_ESANDBOX, "debug is not available in the sandbox");
    refused("debug.sethook()", CBX_ESANDBOX, "debug is not available in the sandbox");
    refused("package.loadlib('libc.so.6', 'system')", CBX_ESANDBOX,
            "package is not available in the sandbox");
    refused("_G.io", CBX_ESANDBOX, "io is not available in the sandbox");
    refused("_G['require']", CBX_ESANDBOX, "require is not available in the sandbox");
    refused("collectgarbage('collect')", CBX_ESANDBOX, "not available in the sandbox");
    refused("collectgarbage('stop')", CBX_ESANDBOX, "not available in the sandbox");
    refused("pcall(io.open, 'x')", CBX_ESANDBOX, "io is not available in the sandbox");
    /* the file was not created by the refused os.execute */
    FILE *f = fopen("/tmp/cbx_pwned", "r");
    cr_assert_null(f);
    still_works();
}

Test(template_sandbox, what_stays_allowed)
{
    json_t *v =
        json_pack("[s,s,s,s,s]", "{{ type(collectgarbage('count')) }}", "{{ type(os.time()) }}",
                  "{{ math.max(1, 5) }}", "{{ utf8.char(72, 105) }}", "{{ print('to the log') }}");
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    cr_assert_eq(cbx_template_render(env, v, ctx, &out, &err), 0, "%s", err.msg);
    json_t *want = json_pack("[s,s,i,s,n]", "number", "number", 5, "Hi");
    cr_assert(json_equal(out, want));
    json_decref(want);
    json_decref(out);
    json_decref(v);
}

Test(template_sandbox, metatables_of_globals_strings_and_context_are_protected)
{
    refused("setmetatable(_G, nil)", CBX_ESANDBOX,
            "setmetatable(): the context and the globals are read-only");
    refused("setmetatable(_ENV, {})", CBX_ESANDBOX,
            "setmetatable(): the context and the globals are read-only");
    refused("setmetatable(inputs, nil)", CBX_ESANDBOX,
            "setmetatable(): the context and the globals are read-only");
    refused("setmetatable(inputs.obj, {__index = function() return 1 end})", CBX_ESANDBOX,
            "setmetatable(): the context and the globals are read-only");
    refused("setmetatable(string, nil)", CBX_ESANDBOX, "cannot change a protected metatable");
    refused("rawget(inputs, 'n')", CBX_ESANDBOX, "table expected, got read-only table");
    refused("next(inputs)", CBX_ESANDBOX, "table expected, got read-only table");
    refused("setmetatable('', {})", CBX_EFAILED, "table expected, got string");
    refused("getmetatable('').__index", CBX_EFAILED, "attempt to index a boolean value");
    json_t *v = json_string("{{ {getmetatable(''), getmetatable(_G), getmetatable(inputs)} }}");
    json_t *out = NULL;
    cr_assert_eq(cbx_template_render(env, v, ctx, &out, NULL), 0);
    json_t *want = json_pack("[b,b,b]", 0, 0, 0);
    cr_assert(json_equal(out, want));
    json_decref(want);
    json_decref(out);
    json_decref(v);
    still_works();
}

Test(template_sandbox, context_and_globals_are_read_only)
{
    json_t *before = json_deep_copy(ctx);
    refused("rawset(inputs, 'n', 99)", CBX_ESANDBOX,
            "rawset(): the context and the globals are read-only");
    refused("rawset(inputs.obj, 'a', 'y')", CBX_ESANDBOX, "read-only");
    refused("rawset(_ENV, 'inputs', {})", CBX_ESANDBOX, "read-only");
    refused("rawset(_G, 'inputs', {})", CBX_ESANDBOX, "read-only");
    refused("rawset(_G, 'tostring', print)", CBX_ESANDBOX, "read-only");
    /* a refusal caught by pcall does not make a later error a refusal */
    refused("(pcall(rawset, _G, 'tostring', print) or true) and nope.x", CBX_EFAILED,
            "global 'nope'");
    refused("(function() inputs.n = 99 end)()", CBX_ESANDBOX,
            "the context is read-only (cannot set 'n')");
    refused("(function() inputs.list[1] = 99 end)()", CBX_ESANDBOX, "the context is read-only");
    refused("table.insert(inputs.list, 4)", CBX_ESANDBOX, "the context is read-only");
    refused("table.sort(inputs.list, function(a, b) return a > b end)", CBX_ESANDBOX,
            "the context is read-only");
    refused("(function() x = 1 end)()", CBX_ESANDBOX,
            "cannot assign the global 'x' in a template (use a local)");
    refused("(function() inputs = 1 end)()", CBX_ESANDBOX, "cannot assign the global 'inputs'");
    refused("(function() _G.json = print end)()", CBX_ESANDBOX, "cannot assign the global 'json'");
    cr_assert(json_equal(before, ctx), "the context changed");
    json_decref(before);
    /* an ordinary table is still the script's to change */
    json_t *v = json_string("{{ (function() local t = {} rawset(t, 'k', 1) return t end)() }}");
    json_t *out = NULL;
    cr_assert_eq(cbx_template_render(env, v, ctx, &out, NULL), 0);
    cr_assert_eq(json_integer_value(json_object_get(out, "k")), 1);
    json_decref(out);
    json_decref(v);
    still_works();
}

Test(template_sandbox, endless_loops_hit_the_instruction_limit)
{
    refused("(function() while true do end end)()", CBX_ESANDBOX,
            "instruction limit exceeded (1000000 instructions)");
    /* pcall cannot swallow the limit */
    refused("(function() pcall(function() while true do end end) return 1 end)()", CBX_ESANDBOX,
            "instruction limit exceeded");
    refused("coroutine.wrap(function() while true do end end)()", CBX_ESANDBOX,
            "instruction limit exceeded");
    refused("(function(f) return f(f) end)(function(f) return f(f) end)", CBX_ESANDBOX,
            "instruction limit exceeded");
    refused("string.rep('x', 100):gsub('x', function() while true do end end)", CBX_ESANDBOX,
            "instruction limit exceeded");
    still_works();

    cbx_template_env *small = NULL;
    cr_assert_eq(cbx_template_env_new(&small, &(cbx_template_opts){.max_instructions = 5000}, NULL),
                 0);
    refused_in(small, "(function() local n = 0 for i = 1, 1e6 do n = n + i end return n end)()",
               CBX_ESANDBOX, "instruction limit exceeded (5000 instructions)");
    cbx_template_env_free(small);
}

Test(template_sandbox, deep_recursion_is_stopped)
{
    cbx_err err = refused("(function(f) return 1 + f(f) end)(function(f) return 1 + f(f) end)",
                          CBX_ESANDBOX, "");
    cr_assert(strstr(err.msg, "stack overflow") || strstr(err.msg, "instruction limit") ||
                  strstr(err.msg, "memory limit"),
              "%s", err.msg);
    /* recursion through C functions (a metamethod calling itself) */
    err =
        refused("setmetatable({}, {__index = function(t, k) return t[k] end}).x", CBX_ESANDBOX, "");
    cr_assert(strstr(err.msg, "stack overflow") || strstr(err.msg, "instruction limit"), "%s",
              err.msg);
    still_works();

    /* with instructions to spare, Lua's stack limit stops it */
    cbx_template_env *big = NULL;
    cr_assert_eq(
        cbx_template_env_new(&big, &(cbx_template_opts){.max_instructions = 1000000000ULL}, NULL),
        0);
    refused_in(big, "(function(f) return 1 + f(f) end)(function(f) return 1 + f(f) end)",
               CBX_ESANDBOX, "stack overflow");
    refused_in(big, "(function() local function r(n) return {r(n + 1)} end return r(1) end)()",
               CBX_ESANDBOX, "memory limit exceeded");
    cbx_template_env_free(big);
}

Test(template_sandbox, memory_bombs_hit_the_memory_limit)
{
    refused("string.rep('x', 1e10)", CBX_ESANDBOX, "memory limit exceeded");
    refused("('x'):rep(2^40)", CBX_ESANDBOX, "memory limit exceeded");
    refused("string.rep('abc', 1e9, ',')", CBX_ESANDBOX, "memory limit exceeded");
    refused("(function() local s = 'xxxxxxxx' for i = 1, 40 do s = s .. s end return #s end)()",
            CBX_ESANDBOX, "memory limit exceeded");
    /* a table that shares itself: small in Lua, 2^40 nodes as JSON or text */
    refused("(function() local t = {1} for i = 1, 40 do t = {t, t} end return t end)()",
            CBX_ESANDBOX, "memory limit exceeded");
    refused("(function() local t = {inputs.list} for i = 1, 40 do t = {t, t} end return t end)()",
            CBX_ESANDBOX, "memory limit exceeded");
    refused("json((function() local t = {1} for i = 1, 40 do t = {t, t} end return t end)())",
            CBX_ESANDBOX, "memory limit exceeded");
    still_works();

    cbx_template_env *small = NULL;
    cr_assert_eq(cbx_template_env_new(&small,
                                      &(cbx_template_opts){.max_memory_bytes = 4u << 20,
                                                           .max_instructions = 100000000},
                                      NULL),
                 0);
    refused_in(small, "(function() local t = {} for i = 1, 1e8 do t[i] = i end return 1 end)()",
               CBX_ESANDBOX, "memory limit exceeded");
    refused_in(small, "string.rep('x', 8 * 1024 * 1024)", CBX_ESANDBOX, "memory limit exceeded");
    /* and it recovers */
    json_t *v = json_string("{{ #string.rep('x', 1024 * 1024) }}");
    json_t *out = NULL;
    cr_assert_eq(cbx_template_render(small, v, ctx, &out, NULL), 0);
    cr_assert_eq(json_integer_value(out), (json_int_t)1024 * 1024);
    json_decref(out);
    json_decref(v);
    cbx_template_env_free(small);
}

Test(template_sandbox, context_values_do_not_outlive_their_call)
{
    /* the library tables are the script's own: a context value can be hidden there, but it is
     * dead once its call is over (the JSON it stood for may be gone) */
    json_t *c1 = json_pack("{s:{s:{s:s}}}", "inputs", "obj", "a", "first");
    json_t *v = json_string("{{ (function() string.kept = inputs.obj return 1 end)() }}");
    json_t *out = NULL;
    cr_assert_eq(cbx_template_render(env, v, c1, &out, NULL), 0);
    json_decref(out);
    json_decref(v);
    json_decref(c1);
    refused("string.kept.a", CBX_EFAILED, "kept from an earlier evaluation");
    refused("json(string.kept)", CBX_EFAILED, "kept from an earlier evaluation");
    refused("string.kept", CBX_EFAILED, "kept from an earlier evaluation");
    refused("len(string.kept)", CBX_EFAILED, "kept from an earlier evaluation");
    still_works();
}

Test(template_sandbox, errors_from_conditions_and_lists_quote_the_expression)
{
    int t = 1;
    cbx_err err;
    cbx_err_clear(&err);
    cr_assert_eq(cbx_template_truthy(env, "io.open('x')", ctx, &t, &err), CBX_ESANDBOX);
    cr_assert_str_eq(err.msg, "\"io.open('x')\": io is not available in the sandbox");
    cr_assert_eq(t, 0);
    json_t *out = NULL;
    cr_assert_eq(cbx_template_eval(env, "(function() while true do end end)()", ctx, &out, &err),
                 CBX_ESANDBOX);
    cr_assert_null(out);
    cr_assert(strstr(err.msg, "instruction limit exceeded"), "%s", err.msg);
    cr_assert_eq(cbx_template_eval(env, "error({})", ctx, &out, &err), CBX_EFAILED);
    cr_assert_null(out);
}

Test(template_sandbox, precompiled_chunks_never_load)
{
    /* text only: a binary chunk cannot even be built, nor loaded */
    refused("string.dump(function() end)", CBX_ESANDBOX, "string.dump is not available");
    cbx_err err;
    cbx_err_clear(&err);
    cr_assert_eq(cbx_template_check_expr("\x1bLua", &err), CBX_EPARSE);
}

/* One C call that would spin for hours (a backtracking pattern, a move over 2^63 slots) is
 * stopped by the instruction limit like a loop, with the template quoted. */
Test(template_sandbox, runaway_c_calls_hit_the_instruction_limit, .timeout = 300)
{
    refused("string.find(string.rep('a', 5000), '.-.-.-.-b')", CBX_ESANDBOX,
            "instruction limit exceeded (1000000 instructions)");
    refused("select(2, pcall(string.match, string.rep('a', 5000), '(.-)(.-)(.-)(.-)b')) or 1",
            CBX_ESANDBOX, "instruction limit exceeded");
    refused("table.move({}, 1, math.maxinteger, 1)", CBX_ESANDBOX, "instruction limit exceeded");
    still_works();
}

/* contains(list, table) converts the table once, not once per item: a 100,000-item list and a
 * 100,000-item table were 10^10 conversions. */
Test(template_sandbox, contains_converts_a_table_once, .timeout = 300)
{
    json_t *big = json_array();
    for (int i = 0; i < 100000; i++)
        json_array_append_new(big, json_integer(i));
    json_t *c = json_pack("{s:{s:o, s:[[i,i],[i]]}}", "inputs", "big", big, "nested", 1, 2, 3);
    const char *const cases[][2] = {
        {"contains(inputs.big, (function() local t = {} for i = 1, 100000 do t[i] = i end "
         "return t end)())",
         "false"},
        {"contains(inputs.nested, {1, 2})", "true"},
        {"contains(inputs.nested, {2, 1})", "false"},
        {"contains(inputs.nested, inputs.nested[2])", "true"},
        {"contains(inputs.big, 99999)", "true"},
        {"contains(inputs.big, '1')", "false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *out = NULL;
        cbx_err err;
        cbx_err_clear(&err);
        cr_assert_eq(cbx_template_eval(env, cases[i][0], c, &out, &err), 0, "%s: %s", cases[i][0],
                     err.msg);
        cr_assert_str_eq(json_is_true(out) ? "true" : "false", cases[i][1], "%s", cases[i][0]);
        json_decref(out);
    }
    json_decref(c);
}
