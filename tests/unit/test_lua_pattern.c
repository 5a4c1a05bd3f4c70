/* The sandbox's guarded C functions: string.find/match/gmatch/gsub give what Lua's own give
 * (compared case by case against a plain Lua state), and runaway patterns or table moves stop at
 * the instruction budget or the interrupt instead of spinning inside one C call. */
#include "cbx/lua_sandbox.h"

#include <criterion/criterion.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every way of using one (subject, pattern, replacement), as one string of results. */
static const char probe_src[] =
    "local function ser(...)\n"
    "  local t = table.pack(...)\n"
    "  local o = {}\n"
    "  for i = 1, t.n do o[#o + 1] = type(t[i]) .. ':' .. tostring(t[i]) end\n"
    "  return table.concat(o, ',')\n"
    "end\n"
    "return function(s, p, r)\n"
    "  local o = {}\n"
    "  o[#o + 1] = ser(pcall(string.find, s, p))\n"
    "  o[#o + 1] = ser(pcall(string.find, s, p, 3))\n"
    "  o[#o + 1] = ser(pcall(string.find, s, p, -2, true))\n"
    "  o[#o + 1] = ser(pcall(string.match, s, p))\n"
    "  o[#o + 1] = ser(pcall(string.match, s, p, -4))\n"
    "  o[#o + 1] = ser(pcall(function()\n"
    "    local t = {}\n"
    "    for a, b in string.gmatch(s, p) do t[#t + 1] = tostring(a) .. '|' .. tostring(b) end\n"
    "    for a in s:gmatch(p, 2) do t[#t + 1] = tostring(a) end\n"
    "    return table.concat(t, ';')\n"
    "  end))\n"
    "  o[#o + 1] = ser(pcall(string.gsub, s, p, r))\n"
    "  o[#o + 1] = ser(pcall(string.gsub, s, p, r, 1))\n"
    "  o[#o + 1] = ser(pcall(string.gsub, s, p, function(a, b) return b and a .. b or nil end))\n"
    "  o[#o + 1] = ser(pcall(string.gsub, s, p, {a = 'A', b = false, ['1'] = 7}))\n"
    "  return table.concat(o, '\\n')\n"
    "end\n";

typedef struct pair {
    lua_State *plain; /* Lua's own string library */
    cbx_sandbox *sb;  /* the guarded one */
} pair;

static void pair_new(pair *pr)
{
    pr->plain = luaL_newstate();
    luaL_openlibs(pr->plain);
    cr_assert_eq(luaL_loadbufferx(pr->plain, probe_src, strlen(probe_src), "=probe", "t"), 0);
    lua_call(pr->plain, 0, 1);
    cbx_sandbox_opts o = {.max_instructions = CBX_SANDBOX_UNLIMITED};
    cr_assert_eq(cbx_sandbox_new(&pr->sb, &o, NULL), 0);
    cbx_err err;
    cr_assert_eq(cbx_sandbox_load(pr->sb, "probe", probe_src, strlen(probe_src), &err), 0);
    cr_assert_eq(cbx_sandbox_call(pr->sb, 0, 1, &err), 0, "%s", err.msg);
}

static void pair_free(pair *pr)
{
    lua_close(pr->plain);
    cbx_sandbox_free(pr->sb);
}

/* Run the probe in both; fail with the case when they differ. */
static void same(pair *pr, const char *s, const char *p, const char *r)
{
    lua_State *L = pr->plain;
    lua_pushvalue(L, -1);
    lua_pushstring(L, s);
    lua_pushstring(L, p);
    lua_pushstring(L, r);
    lua_call(L, 3, 1);
    lua_State *G = cbx_sandbox_lua(pr->sb);
    lua_pushvalue(G, -1);
    lua_pushstring(G, s);
    lua_pushstring(G, p);
    lua_pushstring(G, r);
    cbx_err err;
    cr_assert_eq(cbx_sandbox_call(pr->sb, 3, 1, &err), 0, "s='%s' p='%s': %s", s, p, err.msg);
    cr_assert_str_eq(lua_tostring(G, -1), lua_tostring(L, -1), "s='%s' p='%s' r='%s'", s, p, r);
    lua_pop(L, 1);
    lua_pop(G, 1);
}

Test(pattern, same_results_as_lua_on_known_cases)
{
    static const char *const cases[][3] = {
        {"hello world", "o", "0"},
        {"hello world", "(o)(r)", "%2%1"},
        {"hello world", "^h", "H"},
        {"hello world", "d$", "D"},
        {"hello world", "l+", "L"},
        {"hello world", "l*", "-"},
        {"hello world", "l-o", "<%0>"},
        {"hello world", "x?o", "%%"},
        {"  trim me  ", "^%s*(.-)%s*$", "%1"},
        {"key = value", "(%w+)%s*=%s*(%w+)", "%2=%1"},
        {"f(a(b)c)d", "%b()", "[]"},
        {"THE (quick) fox", "%f[%a]%a+", "w"},
        {"THE (quick) fox", "%f[%A]", "|"},
        {"abcabc", "()b()", "%1"},
        {"abab", "(ab)%1", "x"},
        {"a.b.c", ".", "%0%0"},
        {"a.b.c", "%.", "/"},
        {"a]b", "[]]", "!"},
        {"a-b", "[a-]", "?"},
        {"a^b", "[%^b]", "?"},
        {"", "", "e"},
        {"abc", "", "-"},
        {"abc", "x*", "-"},
        {"aaa", "a-", "x"},
        {"a\0b", "%z", "0"},
        {"abc", "(", "x"},
        {"abc", "%", "x"},
        {"abc", "[a", "x"},
        {"abc", "(()", "x"},
        {"abc", "a)", "x"},
        {"abc", "%1", "x"},
        {"abc", "%f", "x"},
        {"abc", "%b", "x"},
        {"abc", "b", "%9"},
        {"abc", "b", "%x"},
        {"1 2 3", "%d", "%0%0"},
        {"x=1, y=2", "(%w+)=(%w+)", "%1"},
        {"UPPER lower", "%u+", "%1"},
        {"hello", "l", "%"},
        {"$1.00", "%$(%d+)", "%1"},
        {"a+b", "a+b", "plain"},
        {"one two", "^(%a+)", "%1!"},
        {"aaa", "^a", "b"},
        {"abc", "c$x", "?"},
        {"a$", "a$", "?"},
    };
    pair pr;
    pair_new(&pr);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same(&pr, cases[i][0], cases[i][1], cases[i][2]);
    pair_free(&pr);
}

/* Random small patterns and subjects, malformed ones included: results and messages agree. */
Test(pattern, same_results_as_lua_on_random_cases)
{
    static const char *const tokens[] = {
        "a",     "b",    "c",    ".",     "%a",     "%d", "%s", "%w", "%A", "[ab]", "[^a]",
        "[a-c]", "[%a]", "(",    ")",     "()",     "*",  "+",  "-",  "?",  "^",    "$",
        "%1",    "%2",   "%b()", "%f[a]", "%f[%w]", "%",  "[",  "]",  "%%", "x",    " ",
    };
    static const char subject_chars[] = "abc ()1x[]%";
    static const char *const repls[] = {"x", "%0", "%1", "%2", "%%", "<%1|%0>", "%z", ""};
    size_t nt = sizeof tokens / sizeof tokens[0];
    pair pr;
    pair_new(&pr);
    srand(20261206);
    for (int n = 0; n < 20000; n++) {
        char p[64] = "", s[16];
        int np = rand() % 7;
        for (int i = 0; i < np; i++)
            strcat(p, tokens[(size_t)rand() % nt]);
        int ns = rand() % 13;
        for (int i = 0; i < ns; i++)
            s[i] = subject_chars[(size_t)rand() % (sizeof subject_chars - 1)];
        s[ns] = '\0';
        same(&pr, s, p, repls[(size_t)rand() % (sizeof repls / sizeof repls[0])]);
    }
    pair_free(&pr);
}

/* ---- runaways ------------------------------------------------------------------------------ */

static cbx_err eval_fails(cbx_sandbox *sb, const char *code)
{
    cbx_err err;
    cbx_err_clear(&err);
    json_t *out = NULL;
    int rc = cbx_sandbox_eval(sb, "t", code, &out, &err);
    cr_assert_neq(rc, 0, "'%s' should fail", code);
    cr_assert_null(out);
    return err;
}

/* Each of these spins for hours (or forever) inside one call of Lua's own C function. A missing
 * guard shows as the test's timeout. */
static const char *const runaways[] = {
    "string.find(string.rep('a', 5000), '.-.-.-.-b')",
    "string.match(string.rep('a', 5000), '(.*)(.*)(.*)(.*)b')",
    "string.gsub(string.rep('a', 5000), '.-.-.-.-b', 'x')",
    "(function() for m in string.gmatch(string.rep('a', 5000), '.-.-.-.-b') do end end)()",
    "string.find(string.rep('(', 200000), '%b()')",
    "string.rep('a', 5000):find('a*a*a*a*a*b')",
    "table.move({}, 1, math.maxinteger, 1)",
    "table.insert(setmetatable({}, {__len = function() return 1 << 60 end}), 1, 'x')",
    "table.remove(setmetatable({}, {__len = function() return 1 << 60 end}), 1)",
    "pcall(string.find, string.rep('a', 5000), '.-.-.-.-b') return 'swallowed'",
};

Test(pattern, runaways_stop_at_the_instruction_limit, .timeout = 300)
{
    cbx_sandbox *sb;
    cr_assert_eq(cbx_sandbox_new(&sb, NULL, NULL), 0);
    for (size_t i = 0; i < sizeof runaways / sizeof runaways[0]; i++) {
        cbx_err err = eval_fails(sb, runaways[i]);
        cr_assert_eq(err.code, CBX_ESANDBOX, "%s: %s", runaways[i], err.msg);
        cr_assert(strstr(err.msg, "instruction limit exceeded"), "%s: %s", runaways[i], err.msg);
        cr_assert_str_eq(err.where, "t", "%s", runaways[i]);
        cr_assert_eq(err.line, 1, "%s", runaways[i]);
    }
    cbx_sandbox_free(sb);
}

static int polls;
static int stop_after_ten(void *ud)
{
    (void)ud;
    return ++polls > 10;
}

Test(pattern, runaways_without_a_budget_stop_at_the_interrupt, .timeout = 300)
{
    cbx_sandbox *sb;
    cbx_sandbox_opts o = {.max_instructions = CBX_SANDBOX_UNLIMITED, .interrupted = stop_after_ten};
    cr_assert_eq(cbx_sandbox_new(&sb, &o, NULL), 0);
    for (size_t i = 0; i < sizeof runaways / sizeof runaways[0]; i++) {
        polls = 0;
        cbx_err err = eval_fails(sb, runaways[i]);
        cr_assert_eq(err.code, CBX_ECANCELLED, "%s: %s", runaways[i], err.msg);
        cr_assert(strstr(err.msg, "interrupted"), "%s: %s", runaways[i], err.msg);
    }
    cbx_sandbox_free(sb);
}

/* Ordinary work on a large text stays well inside the default budget. */
Test(pattern, large_ordinary_work_fits_the_default_budget)
{
    cbx_sandbox *sb;
    cr_assert_eq(cbx_sandbox_new(&sb, NULL, NULL), 0);
    json_t *out = NULL;
    cbx_err err;
    int rc = cbx_sandbox_eval(sb, "t",
                              "local s = string.rep('word  ', 100000)\n"
                              "local t, n = s:gsub('%s+', ' ')\n"
                              "local words = 0 for _ in t:gmatch('%a+') do words = words + 1 end\n"
                              "local a = {} for i = 1, 1000 do table.insert(a, 1, i) end\n"
                              "table.move(a, 1, #a, 2)\n"
                              "return {n = n, words = words, trimmed = #t:match('^%s*(.-)%s*$')}",
                              &out, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(json_integer_value(json_object_get(out, "n")), 100000);
    cr_assert_eq(json_integer_value(json_object_get(out, "words")), 100000);
    cr_assert_eq(json_integer_value(json_object_get(out, "trimmed")), 100000 * 5 - 1);
    json_decref(out);
    cbx_sandbox_free(sb);
}

/* Run a chunk that returns a string in a plain Lua state and in a sandbox: the same string. */
static void same_chunk(const char *code)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    cr_assert_eq(luaL_loadbufferx(L, code, strlen(code), "=t", "t"), 0);
    cr_assert_eq(lua_pcall(L, 0, 1, 0), 0, "%s", lua_tostring(L, -1));
    cbx_sandbox *sb;
    cr_assert_eq(cbx_sandbox_new(&sb, NULL, NULL), 0);
    cbx_err err;
    cr_assert_eq(cbx_sandbox_load(sb, "t", code, strlen(code), &err), 0);
    cr_assert_eq(cbx_sandbox_call(sb, 0, 1, &err), 0, "%s", err.msg);
    cr_assert_str_eq(lua_tostring(cbx_sandbox_lua(sb), -1), lua_tostring(L, -1));
    cbx_sandbox_free(sb);
    lua_close(L);
}

/* The table functions keep Lua's behaviour, messages included. */
Test(pattern, table_functions_behave_as_lua)
{
    same_chunk("local o = {}\n"
               "local function ser(...)\n"
               "  local t = table.pack(...)\n"
               "  for i = 1, t.n do o[#o + 1] = tostring(t[i]) end\n"
               "  o[#o + 1] = '/'\n"
               "end\n"
               "local t = {1, 2, 3}\n"
               "table.insert(t, 4) table.insert(t, 1, 0) table.insert(t, #t + 1, 9)\n"
               "ser(table.remove(t, 2), table.remove(t), table.remove({}), table.remove({}, 0))\n"
               "ser(table.concat(t, ','))\n"
               "ser(table.concat(table.move({1, 2, 3}, 1, 3, 2), ','))\n"
               "ser(table.concat(table.move({1, 2, 3}, 2, 3, 1), ','))\n"
               "ser(table.concat(table.move({7, 8}, 1, 2, 1, {}), ','))\n"
               "ser(table.move({1}, 3, 1, 1)[1])\n"
               "ser(pcall(table.insert, t, 9, 'x'))\n"
               "ser(pcall(table.insert, t))\n"
               "ser(pcall(table.insert, 'str', 1))\n"
               "ser(pcall(table.remove, t, 9))\n"
               "ser(pcall(table.move, {}, -1, math.maxinteger, 1))\n"
               "ser(pcall(table.move, {}, 1, 10, math.maxinteger))\n"
               "ser(pcall(table.move, 1, 1, 1, 1))\n"
               "local p = setmetatable({}, {__len = function() return 2 end,\n"
               "  __index = function(_, k) return 'v' .. k end, __newindex = rawset})\n"
               "table.insert(p, 1, 'a') ser(rawget(p, 1), rawget(p, 2), rawget(p, 3))\n"
               "return table.concat(o, ' ')\n");
}

/* A plain search never costs len(subject) * len(needle), and is found where Lua finds it. */
Test(pattern, plain_find_is_linear_and_exact, .timeout = 300)
{
    same_chunk("local function ser(...)\n"
               "  local o = {}\n"
               "  for i = 1, select('#', ...) do o[#o + 1] = tostring((select(i, ...))) end\n"
               "  return table.concat(o, ',')\n"
               "end\n"
               "local hay = string.rep('a', 1000000)\n"
               "local needle = string.rep('a', 5000) .. 'b'\n"
               "return table.concat({ser(hay:find(needle, 1, true)),\n"
               "  ser((hay .. 'b'):find(needle, 1, true)),\n"
               "  ser(hay:find(string.rep('a', 5000) .. 'c' .. string.rep('a', 10))),\n"
               "  ser(('xabcabd'):find('abd', 1, true)), ser(('abc'):find('', 10, true)),\n"
               "  ser(('abc'):find('', 4, true)), ser(('abc'):find('c', -1, true))}, ' ')\n");
}
