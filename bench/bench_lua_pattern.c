/* bench/bench_lua_pattern.c - the sandbox's guarded pattern matcher beside Lua's own.
 *
 * The sandbox replaces string.find/match/gmatch/gsub with a matcher that counts its steps
 * against the instruction budget (src/core/lua_pattern.c). Each case runs the same Lua code in
 * the same sandbox twice: with the guarded functions (.cbx) and with Lua's own C functions,
 * taken from a plain state (.lua), so that only the matcher differs. Cases:
 *   pattern.gsub_spaces     gsub(text, '%s+', ' ') over a 6 KB text
 *   pattern.gmatch_words    counting the words of the same text with gmatch('%a+')
 *   pattern.match_line      match('  key = some value  ', '^%s*(%w+)%s*=%s*(.-)%s*$')
 *   pattern.find_plain      find(text, 'needle', 1, true) at the end of the text
 *   pattern.runaway.cbx     string.find(string.rep('a', 5000), '.-.-.-.-b') under the default
 *                           template budget (1,000,000 instructions): the time until it stops
 *                           with "instruction limit exceeded" (Lua's own would run for hours,
 *                           so it has no .lua twin)
 * Target: the guarded matcher within 2x of Lua's own on ordinary patterns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <valgrind/valgrind.h>

#include "cbx/lua_sandbox.h"

#include "alloc_count.h"
#include "timing.h"

#define DEFAULT_CALLS 20000u

static const char *const names[] = {
    "pattern.gsub_spaces.cbx",  "pattern.gsub_spaces.lua", "pattern.gmatch_words.cbx",
    "pattern.gmatch_words.lua", "pattern.match_line.cbx",  "pattern.match_line.lua",
    "pattern.find_plain.cbx",   "pattern.find_plain.lua",  "pattern.runaway.cbx",
};

/* Each case's body; `S` is the string library to use (guarded or Lua's), TEXT the text. */
static const char *const bodies[] = {
    "return (S.gsub(TEXT, '%s+', ' '))",
    "local n = 0 for _ in S.gmatch(TEXT, '%a+') do n = n + 1 end return n",
    "return S.match('  key = some value  ', '^%s*(%w+)%s*=%s*(.-)%s*$')",
    "return S.find(TEXT, 'needle', 1, true)",
    "return S.find(string.rep('a', 5000), '.-.-.-.-b')",
};

static int failed;

typedef struct bctx {
    cbx_sandbox *sb;
    int fn_ref; /* the compiled case in the registry */
    int expect_fail;
} bctx;

static void loop_case(void *p, uint64_t iters)
{
    bctx *b = p;
    lua_State *L = cbx_sandbox_lua(b->sb);
    for (uint64_t i = 0; i < iters && !failed; i++) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, b->fn_ref);
        cbx_err err;
        int rc = cbx_sandbox_call(b->sb, 0, 1, &err);
        if ((rc != 0) != b->expect_fail) {
            printf("# FAIL\tpattern: rc %d: %s\n", rc, rc ? err.msg : "(no error)");
            failed = 1;
            return;
        }
        if (rc == 0)
            lua_pop(L, 1);
    }
}

/* A global table LUASTR with Lua's own string functions, from a plain state. */
static void install_lua_string(lua_State *plain, lua_State *L)
{
    luaL_openlibs(plain);
    lua_getglobal(plain, "string");
    lua_newtable(L);
    static const char *const fns[] = {"find", "match", "gmatch", "gsub", NULL};
    for (size_t i = 0; fns[i]; i++) {
        lua_getfield(plain, -1, fns[i]);
        lua_pushcfunction(L, lua_tocfunction(plain, -1));
        lua_setfield(L, -2, fns[i]);
        lua_pop(plain, 1);
    }
    lua_setglobal(L, "LUASTR");
}

static int compile(bctx *b, const char *body, const char *lib)
{
    char src[512];
    snprintf(src, sizeof src, "local S = %s\nreturn function() %s end", lib, body);
    cbx_err err;
    if (cbx_sandbox_load(b->sb, "case", src, strlen(src), &err) != 0 ||
        cbx_sandbox_call(b->sb, 0, 1, &err) != 0) {
        printf("# FAIL\tpattern: %s\n", err.msg);
        failed = 1;
        return -1;
    }
    b->fn_ref = luaL_ref(cbx_sandbox_lua(b->sb), LUA_REGISTRYINDEX);
    return 0;
}

int main(int argc, char **argv)
{
    bench_args a;
    int rc = bench_start(
        argc, argv, "bench_lua_pattern", names, sizeof names / sizeof names[0], RUNNING_ON_VALGRIND,
        "pattern: not run under valgrind (Lua allocates on every call)", alloc_count_selftest, &a);
    if (rc >= 0)
        return rc;

    bctx b = {0};
    cbx_err err;
    if (cbx_sandbox_new(&b.sb, &(cbx_sandbox_opts){.max_instructions = 1000000}, &err) != 0) {
        printf("# FAIL\tpattern: cbx_sandbox_new: %s\n", err.msg);
        return 1;
    }
    lua_State *plain = luaL_newstate();
    install_lua_string(plain, cbx_sandbox_lua(b.sb));
    /* TEXT: 6 KB of words and runs of spaces, "needle" at its end */
    static const char text_src[] = "TEXT = string.rep('lorem  ipsum dolor\\tsit   amet, ', 200) "
                                   ".. 'needle'";
    if (cbx_sandbox_load(b.sb, "text", text_src, strlen(text_src), &err) != 0 ||
        cbx_sandbox_call(b.sb, 0, 0, &err) != 0) {
        printf("# FAIL\tpattern: %s\n", err.msg);
        return 1;
    }

    for (size_t i = 0; i < sizeof names / sizeof names[0] && !failed; i++) {
        if (!bench_selected(&a, names[i]))
            continue;
        int lua_own = strstr(names[i], ".lua") != NULL;
        if (compile(&b, bodies[i / 2], lua_own ? "LUASTR" : "string") != 0)
            break;
        b.expect_fail = i / 2 == 4;
        uint64_t iters = a.iters ? a.iters : b.expect_fail ? 20 : DEFAULT_CALLS;
        double ns = bench_best_ns(loop_case, &b, iters, a.runs, iters / 10 ? iters / 10 : 1);
        luaL_unref(cbx_sandbox_lua(b.sb), LUA_REGISTRYINDEX, b.fn_ref);
        if (failed)
            break;
        bench_emit(names[i], ns, -1, iters);
        if (b.expect_fail)
            printf("# note\t%s: stopped after %.1f ms (%llu instructions charged)\n", names[i],
                   ns / 1e6, (unsigned long long)cbx_sandbox_instructions(b.sb));
    }
    cbx_sandbox_free(b.sb);
    lua_close(plain);
    return failed;
}
