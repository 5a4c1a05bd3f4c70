/* The Lua sandbox: what scripts can and cannot reach, the instruction and memory limits, the
 * interrupt, error positions, and JSON round trips. */
#include "cbx/log.h"
#include "cbx/lua_sandbox.h"

#include <criterion/criterion.h>
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

static cbx_sandbox *sb;

static void setup(void)
{
    cr_assert_eq(cbx_sandbox_new(&sb, NULL, NULL), 0);
}

static void teardown(void)
{
    cbx_sandbox_free(sb);
    sb = NULL;
}

TestSuite(sandbox, .init = setup, .fini = teardown);

/* Evaluate code that must fail; returns the error. */
static cbx_err eval_fails(const char *code)
{
    cbx_err err;
    cbx_err_clear(&err);
    json_t *out = NULL;
    int rc = cbx_sandbox_eval(sb, "t", code, &out, &err);
    cr_assert_neq(rc, 0, "'%s' should fail", code);
    cr_assert_eq(rc, err.code);
    cr_assert_null(out);
    return err;
}

static json_t *eval_ok(const char *code)
{
    cbx_err err;
    cbx_err_clear(&err);
    json_t *out = NULL;
    int rc = cbx_sandbox_eval(sb, "t", code, &out, &err);
    char buf[1024];
    cr_assert_eq(rc, 0, "'%s' failed: %s", code, cbx_err_format(&err, buf, sizeof buf));
    cr_assert_not_null(out);
    return out;
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void assert_refused(const char *code, const char *needle)
{
    cbx_err err = eval_fails(code);
    cr_assert_eq(err.code, CBX_ESANDBOX, "'%s': code %s, message '%s'", code,
                 cbx_err_name(err.code), err.msg);
    cr_assert(strstr(err.msg, needle), "'%s': message '%s' lacks '%s'", code, err.msg, needle);
    cr_assert_str_eq(err.where, "t");
    cr_assert_gt(err.line, 0);
}

Test(sandbox, io_os_and_loaders_are_refused_with_clear_errors)
{
    assert_refused("io.open('/etc/passwd')", "io is not available in the sandbox");
    assert_refused("os.execute('true')", "os.execute is not available in the sandbox");
    assert_refused("os.getenv('HOME')", "os.getenv is not available");
    assert_refused("os.exit(1)", "os.exit is not available");
    assert_refused("require('os')", "require is not available in the sandbox");
    assert_refused("load('return 1')", "load is not available in the sandbox");
    assert_refused("loadstring('return 1')", "loadstring is not available");
    assert_refused("dofile('/etc/passwd')", "dofile is not available");
    assert_refused("loadfile('/etc/passwd')", "loadfile is not available");
    assert_refused("string.dump(function() end)", "string.dump is not available");
    assert_refused("('x'):dump()", "string.dump is not available");
    assert_refused("debug.getinfo(1)", "debug is not available in the sandbox");
    assert_refused("package.loaded", "package is not available in the sandbox");
    assert_refused("collectgarbage('stop')", "collectgarbage('stop') is not available");
    assert_refused("collectgarbage()", "collectgarbage('collect') is not available");
}

Test(sandbox, refusal_names_the_line)
{
    cbx_err err = eval_fails("local a = 1\nlocal b = 2\nreturn io.lines('x')");
    cr_assert_eq(err.line, 3);
    char buf[1200];
    snprintf(buf, sizeof buf, "%s:%d: %s", err.where, err.line, err.msg);
    cr_assert_str_eq(buf, "t:3: io is not available in the sandbox");
}

Test(sandbox, safe_libraries_work)
{
    json_t *v = eval_ok("{ string.format('%05.1f', math.pi), table.concat({'a','b'}, '-'),"
                        "  utf8.char(233), #string.rep('ab', 3, ','), math.type(os.time()),"
                        "  type(os.clock()), os.date('!%Y', 0), collectgarbage('count') > 0,"
                        "  select('#', 1, 2, 3), coroutine.wrap(function() coroutine.yield(7) "
                        "end)() }");
    json_t *want = json_loads("[\"003.1\", \"a-b\", \"\\u00e9\", 8, \"integer\", \"number\","
                              " \"1970\", true, 3, 7]",
                              0, NULL);
    cr_assert(json_equal(v, want), "got %s", json_dumps(v, JSON_COMPACT));
    json_decref(want);
    json_decref(v);
}

Test(sandbox, protected_metatables_cannot_be_removed)
{
    cbx_err err = eval_fails("setmetatable(_G, nil)");
    cr_assert(strstr(err.msg, "protected metatable"), "%s", err.msg);
    json_t *v = eval_ok("getmetatable(_G)");
    cr_assert(json_is_false(v));
    json_decref(v);
}

Test(sandbox, undefined_globals_are_nil)
{
    json_t *v = eval_ok("no_such_name == nil");
    cr_assert(json_is_true(v));
    json_decref(v);
}

/* ---- limits -------------------------------------------------------------------------------- */

Test(sandbox, string_rep_bomb_is_stopped_by_the_memory_limit)
{
    cbx_err err = eval_fails("local s = string.rep('x', 1e10) return #s");
    cr_assert_eq(err.code, CBX_ESANDBOX);
    cr_assert(strstr(err.msg, "memory limit exceeded"), "%s", err.msg);
    cr_assert_eq(err.line, 1);
    err = eval_fails("return #string.rep('abc', 1e8, ',')");
    cr_assert(strstr(err.msg, "memory limit exceeded"), "%s", err.msg);
    err = eval_fails("local s = 'x' for i = 1, 64 do s = s .. s end return #s");
    cr_assert_eq(err.code, CBX_ESANDBOX);
    cr_assert(strstr(err.msg, "memory limit exceeded"), "%s", err.msg);
    /* and the state is still usable, with its memory back */
    json_t *v = eval_ok("1 + 1");
    cr_assert_eq(json_integer_value(v), 2);
    json_decref(v);
    cr_assert_lt(cbx_sandbox_memory(sb), 1u << 20);
}

Test(sandbox, empty_string_rep_does_not_loop)
{
    json_t *v = eval_ok("#string.rep('', 1e15) + #string.rep('', 1e15, '')");
    cr_assert_eq(json_integer_value(v), 0);
    json_decref(v);
}

Test(sandbox, table_growth_is_stopped_by_a_small_memory_limit)
{
    cbx_sandbox *small = NULL;
    cr_assert_eq(cbx_sandbox_new(&small,
                                 &(cbx_sandbox_opts){.max_memory = 1u << 20,
                                                     .max_instructions = CBX_SANDBOX_UNLIMITED},
                                 NULL),
                 0);
    cbx_err err;
    json_t *out = NULL;
    int rc =
        cbx_sandbox_eval(small, "grow", "local t = {} for i = 1, 1e9 do t[i] = i end", &out, &err);
    cr_assert_eq(rc, CBX_ESANDBOX);
    cr_assert(strstr(err.msg, "memory limit exceeded (1048576 bytes)"), "%s", err.msg);
    cr_assert_leq(cbx_sandbox_memory(small), 1u << 20);
    cbx_sandbox_free(small);
}

Test(sandbox, endless_loop_is_stopped_by_the_instruction_limit)
{
    cbx_sandbox_set_instruction_limit(sb, 100000);
    cbx_err err = eval_fails("local n = 0\nwhile true do\n  n = n + 1\nend");
    cr_assert_eq(err.code, CBX_ESANDBOX);
    cr_assert(strstr(err.msg, "instruction limit exceeded"), "%s", err.msg);
    cr_assert_str_eq(err.where, "t");
    cr_assert(err.line >= 2 && err.line <= 4, "line %d", err.line);
    cr_assert_geq(cbx_sandbox_instructions(sb), 100000);
}

Test(sandbox, pcall_in_the_script_cannot_swallow_the_limit)
{
    cbx_sandbox_set_instruction_limit(sb, 50000);
    cbx_err err = eval_fails("while true do pcall(function() while true do end end) end");
    cr_assert(strstr(err.msg, "instruction limit exceeded"), "%s", err.msg);
    err = eval_fails("local ok = pcall(function() while true do end end)\n"
                     "local n = 0 while n < 10 do n = n + 1 end\nreturn ok");
    cr_assert(strstr(err.msg, "instruction limit exceeded"), "%s", err.msg);
    err = eval_fails("local co = coroutine.wrap(function() while true do end end)\n"
                     "local ok = pcall(co)\nreturn 'escaped'");
    cr_assert_eq(err.code, CBX_ESANDBOX, "%s", err.msg);
}

Test(sandbox, budget_is_per_call)
{
    cbx_sandbox_set_instruction_limit(sb, 200000);
    for (int i = 0; i < 5; i++) {
        json_t *v = eval_ok("local s = 0 for i = 1, 20000 do s = s + i end return s");
        cr_assert_eq(json_integer_value(v), 200010000);
        json_decref(v);
    }
    cbx_err err = eval_fails("local s = 0 for i = 1, 1e7 do s = s + i end return s");
    cr_assert(strstr(err.msg, "instruction limit exceeded"));
    json_t *v = eval_ok("'usable again'");
    cr_assert_str_eq(json_string_value(v), "usable again");
    json_decref(v);
}

static int polls;
static int stop_after_ten(void *ud)
{
    (void)ud;
    return ++polls > 10;
}

Test(sandbox, interrupt_stops_an_unbudgeted_loop)
{
    cbx_sandbox_set_instruction_limit(sb, CBX_SANDBOX_UNLIMITED);
    cbx_sandbox_set_interrupt(sb, stop_after_ten, NULL);
    polls = 0;
    cbx_err err = eval_fails("while true do end");
    cr_assert_eq(err.code, CBX_ECANCELLED);
    cr_assert(strstr(err.msg, "interrupted"), "%s", err.msg);
    cr_assert_eq(polls, 11);
}

/* Lua runs finalizers with hooks off: an endless __gc would hang the state for good. */
Test(sandbox, finalizers_are_refused)
{
    assert_refused("setmetatable({}, {__gc = function() while true do end end})",
                   "__gc metamethods are not available in the sandbox");
    assert_refused("setmetatable({}, {__gc = true})", "__gc metamethods are not available");
    /* a __gc added later is ignored by Lua: the object was never marked */
    json_t *v = eval_ok("local mt = {} local t = setmetatable({}, mt)\n"
                        "mt.__gc = function() while true do end end\n"
                        "t = nil collectgarbage('count') return getmetatable(t) == nil");
    json_decref(v);
    v = eval_ok("getmetatable(setmetatable({}, {__index = {a = 1}})).__index.a");
    cr_assert_eq(json_integer_value(v), 1);
    json_decref(v);
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(sandbox, syntax_error_names_chunk_and_line)
{
    cbx_err err;
    int rc = cbx_sandbox_load(sb, "rules.lua", "local x = 1\nlocal y = = 2\n", 24, &err);
    cr_assert_eq(rc, CBX_EPARSE);
    cr_assert_str_eq(err.where, "rules.lua");
    cr_assert_eq(err.line, 2);
    cr_assert(strstr(err.msg, "unexpected symbol"), "%s", err.msg);
    cr_assert_eq(lua_gettop(cbx_sandbox_lua(sb)), 0);
}

Test(sandbox, long_chunk_names_are_kept_whole)
{
    const char *name = "/a/very/long/path/that/goes/on/and/on/for/more/than/sixty/chars/rules.lua";
    cbx_err err;
    int rc = cbx_sandbox_load(sb, name, "x = = 1", 7, &err);
    cr_assert_eq(rc, CBX_EPARSE);
    cr_assert_str_eq(err.where, name);
    cr_assert_eq(err.line, 1);
    /* and a runtime error in that chunk too */
    cr_assert_eq(cbx_sandbox_load(sb, name, "local x\nreturn x.y", 18, &err), 0);
    cr_assert_eq(cbx_sandbox_call(sb, 0, 1, &err), CBX_EFAILED);
    cr_assert_str_eq(err.where, name);
    cr_assert_eq(err.line, 2);
}

Test(sandbox, runtime_error_names_chunk_and_line)
{
    cbx_err err = eval_fails("local t = nil\n\nreturn t.x");
    cr_assert_eq(err.code, CBX_EFAILED);
    cr_assert_str_eq(err.where, "t");
    cr_assert_eq(err.line, 3);
    cr_assert(strstr(err.msg, "attempt to index a nil value"), "%s", err.msg);
    err = eval_fails("error({code = 1})");
    cr_assert_str_eq(err.msg, "(error object is a table value)");
}

Test(sandbox, call_leaves_results_and_cleans_up_on_error)
{
    lua_State *L = cbx_sandbox_lua(sb);
    cbx_err err;
    cr_assert_eq(cbx_sandbox_load(sb, "f", "return 1, 2", 11, &err), 0);
    cr_assert_eq(cbx_sandbox_call(sb, 0, 2, &err), 0);
    cr_assert_eq(lua_gettop(L), 2);
    cr_assert_eq(lua_tointeger(L, -1), 2);
    lua_settop(L, 0);
    cr_assert_eq(cbx_sandbox_load(sb, "g", "error('no')", 11, &err), 0);
    cr_assert_eq(cbx_sandbox_call(sb, 0, 2, &err), CBX_EFAILED);
    cr_assert_eq(lua_gettop(L), 0);
    cr_assert_str_eq(err.msg, "no");
}

/* ---- values -------------------------------------------------------------------------------- */

static void round_trip(const char *text)
{
    json_error_t je;
    json_t *in = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    cr_assert_not_null(in, "%s", je.text);
    cbx_err err;
    cr_assert_eq(cbx_sandbox_set_global(sb, "x", in, &err), 0, "%s", err.msg);
    json_t *out = eval_ok("x");
    char *a = json_dumps(in, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
    char *b = json_dumps(out, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert_str_eq(b, a);
    cr_assert(json_equal(in, out));
    free(a);
    free(b);
    json_decref(in);
    json_decref(out);
}

Test(sandbox, json_round_trips)
{
    round_trip("{\"a\": {\"b\": [1, 2.5, \"three\", null, true, false, {\"c\": []}]},"
               " \"empty_obj\": {}, \"empty_arr\": [], \"n\": null}");
    round_trip("[[], [[]], [null, null], {\"1\": \"string key one\"}]");
    round_trip("3");
    round_trip("3.0");
    round_trip("-9007199254740993");
    round_trip("\"caf\\u00e9 \\u0000 nul\"");
    round_trip("null");
    round_trip("[1.5e300, -0.25, 9223372036854775807]");
}

Test(sandbox, json_types_as_lua_sees_them)
{
    json_t *in =
        json_loads("{\"i\": 3, \"f\": 3.0, \"n\": null, \"a\": [10, 20], \"o\": {}}", 0, NULL);
    cr_assert_eq(cbx_sandbox_set_global(sb, "x", in, NULL), 0);
    json_t *v = eval_ok("{ math.type(x.i), math.type(x.f), x.n == null, tostring(x.n), #x.a,"
                        "  x.a[2], type(x.o), x.missing == nil }");
    json_t *want =
        json_loads("[\"integer\", \"float\", true, \"null\", 2, 20, \"table\", true]", 0, NULL);
    cr_assert(json_equal(v, want), "got %s", json_dumps(v, JSON_COMPACT));
    json_decref(want);
    json_decref(v);
    json_decref(in);
}

Test(sandbox, lua_tables_become_json)
{
    json_t *v = eval_ok("{ list = {1, 2, 3}, map = {a = 1}, empty = {}, marked = array(),"
                        "  holes = array({1, nil, 3}), mixed = {1, 2, x = 3}, num = {[2] = 'b'},"
                        "  float = 2.0, int = 2 }");
    json_t *want = json_loads("{\"list\": [1, 2, 3], \"map\": {\"a\": 1}, \"empty\": {},"
                              " \"marked\": [], \"holes\": [1, null, 3],"
                              " \"mixed\": {\"1\": 1, \"2\": 2, \"x\": 3},"
                              " \"num\": {\"2\": \"b\"}, \"float\": 2.0, \"int\": 2}",
                              0, NULL);
    cr_assert(json_equal(v, want), "got %s", json_dumps(v, JSON_COMPACT));
    cr_assert(json_is_real(json_object_get(v, "float")));
    cr_assert(json_is_integer(json_object_get(v, "int")));
    json_decref(want);
    json_decref(v);
}

Test(sandbox, unconvertible_values_are_refused_with_their_path)
{
    cbx_err err = eval_fails("{ a = { b = { print } } }");
    cr_assert_eq(err.code, CBX_EFAILED);
    cr_assert(strstr(err.msg, "result.a.b[0]: a function cannot become JSON"), "%s", err.msg);
    err = eval_fails("{ x = 0/0 }");
    cr_assert(strstr(err.msg, "result.x: NaN is not a JSON number"), "%s", err.msg);
    err = eval_fails("{ s = '\\xff\\xfe' }");
    cr_assert(strstr(err.msg, "not valid UTF-8"), "%s", err.msg);
    err = eval_fails("local t = {} t.self = t return t");
    cr_assert(strstr(err.msg, "nested deeper than 100 levels"), "%s", err.msg);
    err = eval_fails("{ [true] = 1 }");
    cr_assert(strstr(err.msg, "a table key of type boolean"), "%s", err.msg);
}

Test(sandbox, deep_json_is_refused_not_crashed)
{
    json_t *deep = json_array();
    json_t *cur = deep;
    for (int i = 0; i < 150; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    cbx_err err;
    int rc = cbx_sandbox_set_global(sb, "x", deep, &err);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert(strstr(err.msg, "nested deeper than 100 levels"), "%s", err.msg);
    json_decref(deep);
}

Test(sandbox, eval_bool_follows_lua_truth)
{
    struct {
        const char *code;
        int want;
    } cases[] = {{"nil", 0}, {"false", 0}, {"null", 0},          {"0", 1},
                 {"''", 1},  {"{}", 1},    {"1 < 2 and 'y'", 1}, {"x = 1", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int b = -1;
        cr_assert_eq(cbx_sandbox_eval_bool(sb, "cond", cases[i].code, &b, NULL), 0);
        cr_assert_eq(b, cases[i].want, "%s", cases[i].code);
    }
}

Test(sandbox, statements_run_as_a_chunk)
{
    json_t *v = eval_ok("local t = {}\nfor i = 1, 3 do t[#t + 1] = i * i end\nreturn t");
    json_t *want = json_loads("[1, 4, 9]", 0, NULL);
    cr_assert(json_equal(v, want));
    json_decref(want);
    json_decref(v);
}

Test(sandbox, sandboxes_are_independent)
{
    cbx_sandbox *other = NULL;
    cr_assert_eq(cbx_sandbox_new(&other, NULL, NULL), 0);
    json_decref(eval_ok("shared = 42"));
    json_t *v = NULL;
    cr_assert_eq(
        cbx_sandbox_eval(other, "o", "shared == nil and string.rep == string.rep", &v, NULL), 0);
    cr_assert(json_is_true(v));
    json_decref(v);
    json_decref(eval_ok("string.rep = nil"));
    cr_assert_eq(cbx_sandbox_eval(other, "o", "#string.rep('a', 3)", &v, NULL), 0);
    cr_assert_eq(json_integer_value(v), 3);
    json_decref(v);
    cr_assert_eq(cbx_sandbox_of(cbx_sandbox_lua(other)), other);
    cbx_sandbox_free(other);
}

static char logged[256];
static void capture(cbx_log_level level, const char *component, const char *msg, void *ud)
{
    (void)ud;
    snprintf(logged, sizeof logged, "%s %s %s", cbx_log_level_name(level), component, msg);
}

Test(sandbox, print_goes_to_the_log)
{
    cbx_log_set(capture, CBX_LOG_DEBUG, NULL);
    json_decref(eval_ok("print('hello', 1, nil, null)"));
    cbx_log_set(NULL, CBX_LOG_ERROR, NULL);
    cr_assert_str_eq(logged, "debug lua hello\t1\tnil\tnull");
}

Test(sandbox, tiny_memory_limit_is_refused)
{
    cbx_sandbox *s = NULL;
    cbx_err err;
    cr_assert_eq(cbx_sandbox_new(&s, &(cbx_sandbox_opts){.max_memory = 1000}, &err),
                 CBX_EINVAL_CONFIG);
    cr_assert_null(s);
    cbx_sandbox_free(NULL);
}
