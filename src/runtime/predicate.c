/* The policies' Lua predicates (retry.when, breaker.count_when, breaker.ignore_when), evaluated
 * after an attempt in one sandbox per runtime, on its loop thread. Each expression is compiled
 * once and kept in the state's registry, keyed by its text. */
#include "runtime/runtime_internal.h"

#include "cbx/lua_sandbox.h"
#include "resilience/policy_lua.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The registry table of compiled predicates. */
#define CACHE_KEY "cbx.policy_predicates"

/* Limits of the predicates' state: a predicate is a small expression. */
#define PREDICATE_MEMORY (16u << 20)

typedef struct pred_call {
    const char *key, *expr;
    const cbx__pred_attempt *a;
    int truth;
} pred_call;

/* Push the compiled predicate: from the cache, or compiled now and cached. */
static void push_predicate(lua_State *L, const pred_call *c)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, CACHE_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, CACHE_KEY);
    }
    if (lua_getfield(L, -1, c->expr) == LUA_TFUNCTION) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    size_t len = 0;
    char *chunk = cbx__policy_lua_chunk(c->expr, &len);
    if (!chunk)
        luaL_error(L, "not enough memory");
    char name[96];
    snprintf(name, sizeof name, "=%s", c->key);
    int st = luaL_loadbufferx(L, chunk, len, name, "t");
    free(chunk);
    if (st != LUA_OK)
        lua_error(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, c->expr);
    lua_remove(L, -2);
}

static void set_string(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* The attempt table; outputs and metadata are {} when there are none. */
static void push_attempt(lua_State *L, const cbx__pred_attempt *a)
{
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)a->number);
    lua_setfield(L, -2, "number");
    set_string(L, "outcome", a->outcome);
    if (a->error)
        set_string(L, "error", a->error);
    lua_pushnumber(L, a->duration_ms);
    lua_setfield(L, -2, "duration_ms");
    if (a->outputs)
        cbx_sandbox_pushjson(L, a->outputs);
    else
        lua_newtable(L);
    lua_setfield(L, -2, "outputs");
    if (a->metadata)
        cbx_sandbox_pushjson(L, a->metadata);
    else
        lua_newtable(L);
    lua_setfield(L, -2, "metadata");
}

/* Runs protected, under the sandbox's limits. */
static int pred_run(lua_State *L)
{
    pred_call *c = lua_touserdata(L, 1);
    push_predicate(L, c);
    push_attempt(L, c->a);
    lua_call(L, 1, 1);
    c->truth = lua_toboolean(L, -1) && !cbx_sandbox_is_null(L, -1);
    return 0;
}

int cbx__predicate_eval(cbx_runtime *rt, const char *key, const char *expr,
                        const cbx__pred_attempt *a, int *truth, char *msg, size_t len)
{
    cbx_err err;
    cbx_err_clear(&err);
    *truth = 0;
    if (!rt->predicates) {
        cbx_sandbox_opts o = {.max_instructions = CBX__POLICY_LUA_INSTRUCTIONS,
                              .max_memory = PREDICATE_MEMORY};
        int r = cbx_sandbox_new(&rt->predicates, &o, &err);
        if (r < 0) {
            snprintf(msg, len, "%s", err.msg[0] ? err.msg : cbx_strerror(r));
            return r;
        }
    }
    pred_call c = {.key = key, .expr = expr, .a = a};
    lua_State *L = cbx_sandbox_lua(rt->predicates);
    int top = lua_gettop(L);
    int r = cbx_sandbox_pcall_c(rt->predicates, pred_run, &c, 0, &err);
    lua_settop(L, top);
    if (r < 0) {
        const char *m = err.msg[0] ? err.msg : cbx_strerror(r);
        /* a value used at the end is charged to the chunk's closing line: the expression's */
        int lines = 1;
        for (const char *e = expr; *e; e++)
            lines += *e == '\n';
        if (err.line > 0)
            snprintf(msg, len, "line %d: %s", err.line < lines ? err.line : lines, m);
        else
            snprintf(msg, len, "%s", m);
        return r;
    }
    *truth = c.truth;
    return 0;
}

void cbx__predicates_free(cbx_runtime *rt)
{
    cbx_sandbox_free(rt->predicates);
    rt->predicates = NULL;
}
