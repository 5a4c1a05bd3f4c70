/* {{ expr }} templates: environments over a Lua sandbox, the context seen through read-only
 * tables that convert JSON only where an expression looks, evaluation, and rendering. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cbx/lua_sandbox.h"
#include "cbx/template.h"
#include "core/text.h"
#include "flow/template_internal.h"

#define DEFAULT_INSTRUCTIONS 1000000ULL
#define DEFAULT_MEMORY       (64u << 20)
#define CACHE_SLOTS          4096 /* compiled expressions: a hash table of this many slots */
#define CACHE_MAX            2048 /* filled to this, then emptied */
#define MAX_DEPTH            CBX_SANDBOX_MAX_DEPTH

/* What a converted value costs in jansson's memory (bytes, allocator overhead included), charged
 * against the memory limit: a value that shares tables with itself is small in Lua and huge as
 * JSON. */
#define SCALAR_COST 40
#define ARRAY_COST  128
#define ITEM_COST   8
#define OBJECT_COST 256
#define KEY_COST    96

extern char **environ;

typedef struct cache_slot {
    char *expr; /* NULL: empty */
    size_t len;
    uint64_t hash;
} cache_slot;

struct cbx_template_env {
    cbx_sandbox *sb; /* NULL until an expression needs Lua (ensure_lua) */
    lua_State *L;
    uint64_t max_instructions;
    char **allow; /* environment variable globs, NULL-terminated */
    size_t max_memory;
    const void *objmeta, *arrmeta; /* the metatables of context values */
    const json_t *ctx;             /* the context of the call in progress */
    uint64_t gen;                  /* the number of the call in progress */
    int refused;                   /* a write to the context or to a global was refused */
    int top;                       /* the Lua stack's height when the call began */
    cache_slot *slots; /* the compiled function of slot i is at [i + 1] of the table cache_ref */
    size_t ncached;
    int cache_ref;
};

/* Registry keys (their addresses). */
static const char k_env = 0;     /* the _ENV table of every compiled expression */
static const char k_marker = 0;  /* the metatable array() puts on arrays */
static const char k_objmeta = 0; /* metatables of context objects and arrays */
static const char k_arrmeta = 0;

/* ---- context values -----------------------------------------------------------------------
 *
 * A JSON object or array of the context is seen in Lua as a small userdata whose metatable
 * reads the JSON on demand (__index, __len, __pairs, __eq, __tostring) and refuses writes. It
 * records the call it was made in: one kept past its call (hidden in a library table, say)
 * raises instead of reading JSON that may be gone. The `type` helper calls it a table. */

typedef struct ctxref {
    const json_t *v;
    uint64_t gen;
} ctxref;

static cbx_template_env *up_env(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* 1 for a context object, 2 for a context array, 0 for anything else. */
static int context_kind(cbx_template_env *e, lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
        return 0;
    const void *mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    return mt == e->objmeta ? 1 : mt == e->arrmeta ? 2 : 0;
}

/* The JSON behind the context value at idx (known to be one), or NULL when stale. */
static const json_t *context_target(cbx_template_env *e, lua_State *L, int idx)
{
    const ctxref *r = lua_touserdata(L, idx);
    return r && r->gen == e->gen ? r->v : NULL;
}

static const char stale_msg[] =
    "a context value kept from an earlier evaluation cannot be used (read it again)";

int cbx__tpl_is_context(cbx_template_env *e, lua_State *L, int idx)
{
    return context_kind(e, L, idx) != 0;
}

const json_t *cbx__tpl_context_value(cbx_template_env *e, lua_State *L, int idx)
{
    if (!context_kind(e, L, idx))
        return NULL;
    const json_t *v = context_target(e, L, idx);
    if (!v)
        luaL_error(L, "%s", stale_msg);
    return v;
}

static void push_context(cbx_template_env *e, lua_State *L, const json_t *v)
{
    luaL_checkstack(L, 3, "context value");
    ctxref *r = lua_newuserdatauv(L, sizeof *r, 0);
    r->v = v;
    r->gen = e->gen;
    lua_rawgetp(L, LUA_REGISTRYINDEX, json_is_array(v) ? &k_arrmeta : &k_objmeta);
    lua_setmetatable(L, -2);
}

static void push_value(cbx_template_env *e, lua_State *L, const json_t *v)
{
    if (!cbx_sandbox_push_scalar(L, v))
        push_context(e, L, v); /* objects and arrays: seen through, never copied */
}

static const json_t *check_target(lua_State *L)
{
    const json_t *v = context_target(up_env(L), L, 1);
    if (!v)
        luaL_error(L, "%s", stale_msg);
    return v;
}

static int obj_index(lua_State *L)
{
    const json_t *o = check_target(L);
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    size_t n = 0;
    const char *k = lua_tolstring(L, 2, &n);
    const json_t *v = json_object_getn(o, k, n);
    if (!v)
        return 0;
    push_value(up_env(L), L, v);
    return 1;
}

static int arr_index(lua_State *L)
{
    const json_t *a = check_target(L);
    if (lua_type(L, 2) != LUA_TNUMBER)
        return 0;
    int isint = 0;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (!isint || i < 1 || (size_t)i > json_array_size(a))
        return 0;
    push_value(up_env(L), L, json_array_get(a, (size_t)i - 1));
    return 1;
}

static int ctx_newindex(lua_State *L)
{
    up_env(L)->refused = 1;
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "the context is read-only (cannot set '%s')", lua_tostring(L, 2));
    return luaL_error(L, "the context is read-only");
}

static int obj_len(lua_State *L)
{
    check_target(L);
    lua_pushinteger(L, 0); /* as # of any table without a sequence; len() counts keys */
    return 1;
}

static int arr_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)json_array_size(check_target(L)));
    return 1;
}

static int obj_next(lua_State *L)
{
    const json_t *o = check_target(L);
    void *it;
    if (lua_isnoneornil(L, 2)) {
        it = json_object_iter((json_t *)o);
    } else {
        it = lua_type(L, 2) == LUA_TSTRING ? json_object_iter_at((json_t *)o, lua_tostring(L, 2))
                                           : NULL;
        if (!it)
            return luaL_error(L, "invalid key to 'next'");
        it = json_object_iter_next((json_t *)o, it);
    }
    if (!it) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, json_object_iter_key(it), json_object_iter_key_len(it));
    push_value(up_env(L), L, json_object_iter_value(it));
    return 2;
}

static int arr_next(lua_State *L)
{
    const json_t *a = check_target(L);
    lua_Integer i = luaL_checkinteger(L, 2) + 1;
    if (i < 1 || (size_t)i > json_array_size(a)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, i);
    push_value(up_env(L), L, json_array_get(a, (size_t)i - 1));
    return 2;
}

static int pairs_with(lua_State *L, lua_CFunction next, int array)
{
    check_target(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, next, 1);
    lua_pushvalue(L, 1);
    if (array)
        lua_pushinteger(L, 0);
    else
        lua_pushnil(L);
    return 3;
}

static int obj_pairs(lua_State *L)
{
    return pairs_with(L, obj_next, 0);
}

static int arr_pairs(lua_State *L)
{
    return pairs_with(L, arr_next, 1);
}

static int ctx_eq(lua_State *L)
{
    cbx_template_env *e = up_env(L);
    const json_t *a = context_kind(e, L, 1) ? context_target(e, L, 1) : NULL;
    const json_t *b = context_kind(e, L, 2) ? context_target(e, L, 2) : NULL;
    lua_pushboolean(L, a && a == b);
    return 1;
}

static int ctx_tostring(lua_State *L)
{
    cbx_template_env *e = up_env(L);
    const json_t *v = check_target(L);
    cbx__tpl_buf b = {.limit = e->max_memory};
    cbx__tpl_json_write(&b, v);
    if (b.oom || b.over) {
        cbx__tpl_buf_free(&b);
        return luaL_error(L, "tostring(): memory limit exceeded");
    }
    cbx__tpl_push_owned(L, b.p, b.len);
    return 1;
}

/* ---- the environment of expressions ---------------------------------------------------------- */

/* _ENV's __index: the context's keys first, then the helpers, then the sandbox's globals (where
 * a forbidden name raises). Upvalues: env, helpers, globals. */
static int env_index(lua_State *L)
{
    cbx_template_env *e = up_env(L);
    if (e->ctx && lua_type(L, 2) == LUA_TSTRING) {
        size_t n = 0;
        const char *k = lua_tolstring(L, 2, &n);
        const json_t *v = json_object_getn(e->ctx, k, n);
        if (v) {
            push_value(e, L, v);
            return 1;
        }
    }
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    lua_gettable(L, lua_upvalueindex(3));
    return 1;
}

static int global_newindex(lua_State *L)
{
    up_env(L)->refused = 1;
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "cannot assign the global '%s' in a template (use a local)",
                          lua_tostring(L, 2));
    return luaL_error(L, "cannot assign globals in a template");
}

/* rawset and setmetatable, refusing the context and the globals. Upvalues: the function, env,
 * _ENV, globals, the function's name. */
static int guarded(lua_State *L)
{
    cbx_template_env *e = lua_touserdata(L, lua_upvalueindex(2));
    if (lua_rawequal(L, 1, lua_upvalueindex(3)) || lua_rawequal(L, 1, lua_upvalueindex(4)) ||
        context_kind(e, L, 1)) {
        e->refused = 1;
        return luaL_error(L, "%s(): the context and the globals are read-only",
                          lua_tostring(L, lua_upvalueindex(5)));
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static void guard_global(lua_State *L, cbx_template_env *e, int env, int globals, const char *name)
{
    lua_getfield(L, globals, name);
    lua_pushlightuserdata(L, e);
    lua_pushvalue(L, env);
    lua_pushvalue(L, globals);
    lua_pushstring(L, name);
    lua_pushcclosure(L, guarded, 5);
    lua_setfield(L, globals, name);
}

static void make_context_meta(lua_State *L, cbx_template_env *e, lua_CFunction index,
                              lua_CFunction len, lua_CFunction pairs, const char *key,
                              const void **ptr)
{
    lua_createtable(L, 0, 8);
    static const char *const names[] = {"__index",    "__len", "__pairs",
                                        "__newindex", "__eq",  "__tostring"};
    lua_CFunction fns[] = {index, len, pairs, ctx_newindex, ctx_eq, ctx_tostring};
    for (size_t i = 0; i < 6; i++) {
        lua_pushlightuserdata(L, e);
        lua_pushcclosure(L, fns[i], 1);
        lua_setfield(L, -2, names[i]);
    }
    lua_pushliteral(L, "read-only table"); /* in Lua's messages: "got read-only table" */
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    *ptr = lua_topointer(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

static int setup_cf(lua_State *L)
{
    cbx_template_env *e = lua_touserdata(L, 1);

    /* the array marker, as array() sets it */
    lua_getglobal(L, "array");
    lua_call(L, 0, 1);
    lua_getmetatable(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &k_marker);
    lua_pop(L, 1);

    cbx__tpl_helpers_push(L, e); /* 2 */
    lua_pushglobaltable(L);      /* 3 */

    lua_newtable(L); /* 4: _ENV */
    lua_createtable(L, 0, 3);
    lua_pushlightuserdata(L, e);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, env_index, 3);
    lua_setfield(L, -2, "__index");
    lua_pushlightuserdata(L, e);
    lua_pushcclosure(L, global_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, 4);
    lua_pushvalue(L, 4);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &k_env);

    /* the globals: no assignment from templates */
    if (lua_getmetatable(L, 3)) {
        lua_pushlightuserdata(L, e);
        lua_pushcclosure(L, global_newindex, 1);
        lua_setfield(L, -2, "__newindex");
        lua_pop(L, 1);
    }
    guard_global(L, e, 4, 3, "rawset");
    guard_global(L, e, 4, 3, "setmetatable");

    /* strings keep their methods, but their metatable cannot be reached */
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    make_context_meta(L, e, obj_index, obj_len, obj_pairs, &k_objmeta, &e->objmeta);
    make_context_meta(L, e, arr_index, arr_len, arr_pairs, &k_arrmeta, &e->arrmeta);

    e->cache_ref = LUA_NOREF; /* the cache is made with the first expression compiled */
    return 0;
}

/* ---- environments ---------------------------------------------------------------------------- */

int cbx_template_env_new(cbx_template_env **out, const cbx_template_opts *o, cbx_err *err)
{
    *out = NULL;
    cbx_template_opts d = {0};
    if (!o)
        o = &d;
    cbx_template_env *e = calloc(1, sizeof *e);
    if (!e)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    uint64_t mem = o->max_memory_bytes ? o->max_memory_bytes : DEFAULT_MEMORY;
    e->max_memory = mem > SIZE_MAX ? SIZE_MAX : (size_t)mem;
    size_t n = 0;
    while (o->env_allow && o->env_allow[n])
        n++;
    e->allow = calloc(n + 1, sizeof *e->allow);
    if (!e->allow) {
        free(e);
        return cbx_err_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        e->allow[i] = strdup(o->env_allow[i]);
        if (!e->allow[i]) {
            cbx_template_env_free(e);
            return cbx_err_set(err, -ENOMEM, "out of memory");
        }
    }
    e->max_instructions = o->max_instructions ? o->max_instructions : DEFAULT_INSTRUCTIONS;
    *out = e;
    return 0;
}

/* The Lua state, made when the first expression needs it: values without expressions, and
 * references the fast path reads from the JSON, need none, and an environment is made per flow
 * run (per line of a --batch), where making and closing the state was a fifth of a no-op run's
 * CPU. 0, or the sandbox's error (the environment stays without a state; the next call tries
 * again). */
static int ensure_lua(cbx_template_env *e, cbx_err *err)
{
    if (e->sb)
        return 0;
    cbx_sandbox_opts so = {.max_instructions = e->max_instructions, .max_memory = e->max_memory};
    int rc = cbx_sandbox_new(&e->sb, &so, err);
    if (rc == 0) {
        e->L = cbx_sandbox_lua(e->sb);
        rc = cbx_sandbox_pcall_c(e->sb, setup_cf, e, 0, err);
    }
    if (rc) {
        cbx_sandbox_free(e->sb);
        e->sb = NULL;
        e->L = NULL;
    }
    return rc;
}

void cbx_template_env_free(cbx_template_env *e)
{
    if (!e)
        return;
    cbx_sandbox_free(e->sb);
    for (size_t i = 0; e->slots && i < CACHE_SLOTS; i++)
        free(e->slots[i].expr);
    free(e->slots);
    for (size_t i = 0; e->allow && e->allow[i]; i++)
        free(e->allow[i]);
    free(e->allow);
    free(e);
}

json_t *cbx_template_env_vars(const cbx_template_env *e)
{
    json_t *o = json_object();
    if (!o || !e)
        return o;
    for (char **p = environ; p && *p; p++) {
        const char *eq = strchr(*p, '=');
        size_t n = eq ? (size_t)(eq - *p) : 0;
        char name[256];
        if (n == 0 || n >= sizeof name)
            continue;
        memcpy(name, *p, n);
        name[n] = '\0';
        for (size_t i = 0; e->allow[i]; i++) {
            if (cbx__glob_match(e->allow[i], name, 0)) {
                json_t *v = json_string(eq + 1); /* NULL (skipped) when not UTF-8 */
                if (v && json_object_set_new(o, name, v)) {
                    json_decref(o);
                    return NULL;
                }
                break;
            }
        }
    }
    return o;
}

size_t cbx__tpl_output_limit(const cbx_template_env *e)
{
    return e->max_memory;
}

/* ---- Lua -> JSON ------------------------------------------------------------------------------
 */

int cbx__tpl_is_marked(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &k_marker);
    int eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return eq;
}

void cbx__tpl_mark_array(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &k_marker);
    lua_setmetatable(L, -2);
}

typedef struct conv {
    cbx_template_env *e;
    lua_State *L;
    size_t left; /* bytes the converted value may still take */
    char path[256];
    char *msg;
    size_t cap;
} conv;

static int conv_fail(conv *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int conv_fail(conv *c, int code, const char *fmt, ...)
{
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (c->cap && (code == CBX_ESANDBOX || !c->path[0]))
        snprintf(c->msg, c->cap, "%s", text);
    else if (c->cap)
        snprintf(c->msg, c->cap, "value%s: %s", c->path, text);
    return code;
}

static int charge(conv *c, size_t n)
{
    if (n > c->left)
        return conv_fail(c, CBX_ESANDBOX,
                         "memory limit exceeded (the value is larger than %zu bytes)",
                         c->e->max_memory);
    c->left -= n;
    return 0;
}

static size_t path_mark(conv *c)
{
    return strlen(c->path);
}

static void path_add(conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void path_add(conv *c, const char *fmt, ...)
{
    size_t n = strlen(c->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->path + n, sizeof c->path - n, fmt, ap);
    va_end(ap);
}

/* A copy of context JSON, charged to the budget. */
static int copy_json(conv *c, const json_t *v, int depth, json_t **out)
{
    *out = NULL;
    if (depth > 10 * MAX_DEPTH)
        return conv_fail(c, CBX_EFAILED, "nested too deep");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (charge(c, OBJECT_COST))
            return CBX_ESANDBOX;
        json_t *o = json_object();
        if (!o)
            return conv_fail(c, -ENOMEM, "out of memory");
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            json_t *x = NULL;
            int rc = charge(c, KEY_COST + json_object_iter_key_len(it));
            if (!rc)
                rc = copy_json(c, json_object_iter_value(it), depth + 1, &x);
            if (!rc && json_object_setn_new_nocheck(o, json_object_iter_key(it),
                                                    json_object_iter_key_len(it), x))
                rc = conv_fail(c, -ENOMEM, "out of memory");
            if (rc) {
                json_decref(o);
                return rc;
            }
        }
        *out = o;
        return 0;
    }
    case JSON_ARRAY: {
        if (charge(c, ARRAY_COST))
            return CBX_ESANDBOX;
        json_t *a = json_array();
        if (!a)
            return conv_fail(c, -ENOMEM, "out of memory");
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = NULL;
            int rc = charge(c, ITEM_COST);
            if (!rc)
                rc = copy_json(c, json_array_get(v, i), depth + 1, &x);
            if (!rc && json_array_append_new(a, x))
                rc = conv_fail(c, -ENOMEM, "out of memory");
            if (rc) {
                json_decref(a);
                return rc;
            }
        }
        *out = a;
        return 0;
    }
    case JSON_STRING:
        if (charge(c, SCALAR_COST + json_string_length(v)))
            return CBX_ESANDBOX;
        *out = json_stringn_nocheck(json_string_value(v), json_string_length(v));
        break;
    default:
        if (charge(c, SCALAR_COST))
            return CBX_ESANDBOX;
        *out = json_copy((json_t *)v);
        break;
    }
    return *out ? 0 : conv_fail(c, -ENOMEM, "out of memory");
}

static int lua_conv(conv *c, int idx, int depth, json_t **out);

typedef struct kv {
    const char *k;
    size_t n;
    json_t *v;
} kv;

static int kv_cmp(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int r = memcmp(x->k, y->k, n);
    return r ? r : (x->n > y->n) - (x->n < y->n);
}

/* The object with its keys in byte order, so that text made from Lua tables does not depend on
 * the order of a hash table. Consumes o. */
static json_t *sort_keys(json_t *o)
{
    size_t n = json_object_size(o);
    if (n < 2)
        return o;
    kv *items = malloc(n * sizeof *items);
    json_t *s = items ? json_object() : NULL;
    if (!s) {
        free(items);
        json_decref(o);
        return NULL;
    }
    size_t i = 0;
    for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it))
        items[i++] = (kv){json_object_iter_key(it), json_object_iter_key_len(it),
                          json_object_iter_value(it)};
    qsort(items, n, sizeof *items, kv_cmp);
    for (i = 0; i < n; i++)
        if (json_object_setn_nocheck(s, items[i].k, items[i].n, items[i].v)) {
            json_decref(s);
            s = NULL;
            break;
        }
    free(items);
    json_decref(o);
    return s;
}

static int table_conv(conv *c, int idx, int depth, json_t **out)
{
    lua_State *L = c->L;
    int marked = cbx__tpl_is_marked(L, idx);
    lua_Integer n = 0, max = 0;
    int all_int = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
            if (lua_tointeger(L, -2) > max)
                max = lua_tointeger(L, -2);
        } else {
            all_int = 0;
        }
        lua_pop(L, 1);
    }
    if (marked && !all_int)
        return conv_fail(c, CBX_EFAILED,
                         "a table marked as an array has a key that is not a positive integer");
    if (marked || (n > 0 && all_int && max == n)) {
        if (max > 100000000)
            return conv_fail(c, CBX_EFAILED, "an array with index %lld is too sparse",
                             (long long)max);
        if (charge(c, ARRAY_COST + ITEM_COST * (size_t)max))
            return CBX_ESANDBOX;
        json_t *a = json_array();
        if (!a)
            return conv_fail(c, -ENOMEM, "out of memory");
        for (lua_Integer i = 1; i <= max; i++) {
            lua_rawgeti(L, idx, i);
            size_t mark = path_mark(c);
            path_add(c, "[%lld]", (long long)(i - 1));
            json_t *x = NULL;
            int rc = lua_conv(c, lua_gettop(L), depth + 1, &x);
            lua_pop(L, 1);
            if (!rc && json_array_append_new(a, x))
                rc = conv_fail(c, -ENOMEM, "out of memory");
            if (rc) {
                json_decref(a);
                return rc;
            }
            c->path[mark] = '\0';
        }
        *out = a;
        return 0;
    }
    if (charge(c, OBJECT_COST))
        return CBX_ESANDBOX;
    json_t *o = json_object();
    if (!o)
        return conv_fail(c, -ENOMEM, "out of memory");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        char kb[64];
        const char *k = NULL;
        size_t kn = 0;
        int rc = 0;
        switch (lua_type(L, -2)) {
        case LUA_TSTRING:
            k = lua_tolstring(L, -2, &kn);
            if (!cbx__tpl_utf8_valid(k, kn))
                rc = conv_fail(c, CBX_EFAILED, "an object key is not valid UTF-8");
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, -2))
                snprintf(kb, sizeof kb, "%lld", (long long)lua_tointeger(L, -2));
            else if (isfinite((double)lua_tonumber(L, -2)))
                cbx__tpl_fmt_real((double)lua_tonumber(L, -2), kb, sizeof kb);
            else
                rc = conv_fail(c, CBX_EFAILED, "a table key that is not a finite number");
            k = kb;
            kn = strlen(kb);
            break;
        default:
            rc = conv_fail(c, CBX_EFAILED, "a table key of type %s cannot become a JSON key",
                           luaL_typename(L, -2));
        }
        json_t *x = NULL;
        if (!rc)
            rc = charge(c, KEY_COST + kn);
        if (!rc) {
            size_t mark = path_mark(c);
            path_add(c, ".%.*s", (int)(kn > 64 ? 64 : kn), k);
            rc = lua_conv(c, lua_gettop(L), depth + 1, &x);
            if (!rc)
                c->path[mark] = '\0';
        }
        if (!rc && json_object_setn_new_nocheck(o, k, kn, x))
            rc = conv_fail(c, -ENOMEM, "out of memory");
        if (rc) {
            lua_pop(L, 2);
            json_decref(o);
            return rc;
        }
        lua_pop(L, 1);
    }
    *out = sort_keys(o);
    return *out ? 0 : conv_fail(c, -ENOMEM, "out of memory");
}

static int lua_conv(conv *c, int idx, int depth, json_t **out)
{
    lua_State *L = c->L;
    *out = NULL;
    if (depth > MAX_DEPTH)
        return conv_fail(c, CBX_EFAILED,
                         "nested deeper than %d levels (a table that contains itself?)", MAX_DEPTH);
    if (!lua_checkstack(L, 6))
        return conv_fail(c, CBX_EFAILED, "Lua stack overflow");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        *out = json_null();
        return 0;
    case LUA_TBOOLEAN:
        *out = json_boolean(lua_toboolean(L, idx));
        return 0;
    case LUA_TNUMBER:
        if (charge(c, SCALAR_COST))
            return CBX_ESANDBOX;
        if (lua_isinteger(L, idx)) {
            *out = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (!isfinite(d))
                return conv_fail(c, CBX_EFAILED, "%s is not a JSON number",
                                 isnan(d) ? "NaN" : "infinity");
            *out = json_real(d);
        }
        break;
    case LUA_TSTRING: {
        size_t n = 0;
        const char *s = lua_tolstring(L, idx, &n);
        if (charge(c, SCALAR_COST + n))
            return CBX_ESANDBOX;
        if (!cbx__tpl_utf8_valid(s, n))
            return conv_fail(c, CBX_EFAILED, "the string is not valid UTF-8");
        *out = json_stringn_nocheck(s, n);
        break;
    }
    case LUA_TTABLE:
        return table_conv(c, idx, depth, out);
    case LUA_TUSERDATA:
        if (cbx_sandbox_is_null(L, idx)) {
            *out = json_null();
            return 0;
        }
        if (context_kind(c->e, L, idx)) {
            const json_t *v = context_target(c->e, L, idx);
            if (!v)
                return conv_fail(c, CBX_EFAILED, "%s", stale_msg);
            return copy_json(c, v, depth, out);
        }
        /* fall through */
    default:
        return conv_fail(c, CBX_EFAILED, "a %s cannot become JSON", luaL_typename(L, idx));
    }
    return *out ? 0 : conv_fail(c, -ENOMEM, "out of memory");
}

int cbx__tpl_to_json(cbx_template_env *e, lua_State *L, int idx, json_t **out, char *msg,
                     size_t cap)
{
    conv c = {.e = e, .L = L, .left = e->max_memory, .msg = msg, .cap = cap};
    *out = NULL;
    return lua_conv(&c, lua_absindex(L, idx), 0, out);
}

int cbx__tpl_append_text(cbx_template_env *e, lua_State *L, int idx, cbx__tpl_buf *b, char *msg,
                         size_t cap)
{
    char num[40];
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            cbx__tpl_buf_add(b, "true", 4);
        else
            cbx__tpl_buf_add(b, "false", 5);
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (!isfinite(d)) {
                snprintf(msg, cap, "%s has no text form here", isnan(d) ? "NaN" : "infinity");
                return CBX_EFAILED;
            }
            cbx__tpl_fmt_real(d, num, sizeof num);
        }
        cbx__tpl_buf_add(b, num, strlen(num));
        return 0;
    case LUA_TSTRING: {
        size_t n = 0;
        const char *s = lua_tolstring(L, idx, &n);
        if (!cbx__tpl_utf8_valid(s, n)) {
            snprintf(msg, cap, "the text is not valid UTF-8");
            return CBX_EFAILED;
        }
        cbx__tpl_buf_add(b, s, n);
        return 0;
    }
    case LUA_TTABLE: {
        json_t *v = NULL;
        int rc = cbx__tpl_to_json(e, L, idx, &v, msg, cap);
        if (rc)
            return rc;
        cbx__tpl_json_write(b, v);
        json_decref(v);
        return 0;
    }
    case LUA_TUSERDATA:
        if (cbx_sandbox_is_null(L, idx))
            return 0;
        if (context_kind(e, L, idx)) {
            const json_t *v = context_target(e, L, idx);
            if (!v) {
                snprintf(msg, cap, "%s", stale_msg);
                return CBX_EFAILED;
            }
            cbx__tpl_json_write(b, v);
            return 0;
        }
        /* fall through */
    default:
        snprintf(msg, cap, "a %s cannot become text", luaL_typename(L, idx));
        return CBX_EFAILED;
    }
}

/* ---- pushing values that C owns -------------------------------------------------------------- */

static int push_string_cf(lua_State *L)
{
    lua_pushlstring(L, lua_touserdata(L, 1), (size_t)lua_tointeger(L, 2));
    return 1;
}

void cbx__tpl_push_owned(lua_State *L, char *buf, size_t len)
{
    if (!lua_checkstack(L, 3)) {
        free(buf);
        luaL_error(L, "Lua stack overflow");
        return;
    }
    lua_pushcfunction(L, push_string_cf);
    lua_pushlightuserdata(L, buf ? buf : (char *)"");
    lua_pushinteger(L, (lua_Integer)len);
    int st = lua_pcall(L, 2, 1, 0);
    free(buf);
    if (st != LUA_OK)
        lua_error(L);
}

static int push_json_cf(lua_State *L)
{
    const json_t *v = lua_touserdata(L, 1);
    cbx_sandbox_pushjson(L, v);
    return 1;
}

void cbx__tpl_push_json_owned(lua_State *L, json_t *v)
{
    if (!lua_checkstack(L, 3)) {
        json_decref(v);
        luaL_error(L, "Lua stack overflow");
        return;
    }
    lua_pushcfunction(L, push_json_cf);
    lua_pushlightuserdata(L, v);
    int st = lua_pcall(L, 1, 1, 0);
    json_decref(v);
    if (st != LUA_OK)
        lua_error(L);
}

/* ---- evaluation ------------------------------------------------------------------------------ */

typedef struct run_args {
    cbx_template_env *e;
    const char *expr;
    size_t len;
    int compile_failed; /* CBX_EPARSE or CBX_ESANDBOX (out of memory) */
    char msg[400];
} run_args;

static uint64_t text_hash(const char *s, size_t n)
{
    return cbx__fnv1a(CBX__FNV_OFFSET, s, n);
}

/* The cache of compiled expressions, made when the first is compiled: an environment whose
 * templates have no expression (a flow of literal configs, one made per flow run and per line of
 * a --batch) then costs neither its 96 KB of slots nor its Lua table of 4,096, made and walked
 * again at every free. 1, or 0 when out of memory (the expression is then compiled uncached). */
static int cache_ready(lua_State *L, cbx_template_env *e)
{
    if (e->slots)
        return 1;
    e->slots = calloc(CACHE_SLOTS, sizeof *e->slots);
    if (!e->slots)
        return 0;
    lua_createtable(L, CACHE_SLOTS, 0);
    e->cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* Push the compiled function of a->expr (from the cache, or compiled and cached), or return 1
 * with the reason in a. */
static int compiled(lua_State *L, run_args *a)
{
    cbx_template_env *e = a->e;
    uint64_t h = text_hash(a->expr, a->len);
    size_t mask = CACHE_SLOTS - 1, i = (size_t)h & mask;
    int cache = cache_ready(L, e);
    for (; cache && e->slots[i].expr; i = (i + 1) & mask) {
        cache_slot *c = &e->slots[i];
        if (c->hash == h && c->len == a->len && memcmp(c->expr, a->expr, a->len) == 0) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, e->cache_ref);
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            lua_remove(L, -2);
            return 0;
        }
    }
    int top = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "return ");
    luaL_addlstring(&b, a->expr, a->len);
    luaL_pushresult(&b);
    size_t n = 0;
    const char *src = lua_tolstring(L, -1, &n);
    int st = luaL_loadbufferx(L, src, n, "=template", "t");
    if (st != LUA_OK) {
        a->compile_failed = st == LUA_ERRMEM ? CBX_ESANDBOX : CBX_EPARSE;
        const char *m = lua_tostring(L, -1);
        snprintf(a->msg, sizeof a->msg, "%s",
                 st == LUA_ERRMEM ? "memory limit exceeded while compiling"
                                  : cbx__tpl_strip_position(m ? m : "syntax error"));
        lua_settop(L, top);
        return 1;
    }
    lua_remove(L, -2); /* the source */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &k_env);
    lua_setupvalue(L, -2, 1); /* _ENV */
    if (!cache)
        return 0;

    if (e->ncached >= CACHE_MAX) { /* start again with an empty cache */
        for (size_t k = 0; k < CACHE_SLOTS; k++) {
            free(e->slots[k].expr);
            e->slots[k].expr = NULL;
        }
        e->ncached = 0;
        lua_createtable(L, CACHE_SLOTS, 0);
        lua_rawseti(L, LUA_REGISTRYINDEX, e->cache_ref);
        i = (size_t)h & mask;
    }
    /* the table's array part was made with every slot: storing allocates nothing */
    lua_rawgeti(L, LUA_REGISTRYINDEX, e->cache_ref);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
    char *copy = malloc(a->len + 1);
    if (copy) {
        memcpy(copy, a->expr, a->len);
        copy[a->len] = '\0';
        e->slots[i] = (cache_slot){copy, a->len, h};
        e->ncached++;
    } else {
        lua_pushnil(L);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pop(L, 1);
    return 0;
}

static int run_cf(lua_State *L)
{
    run_args *a = lua_touserdata(L, 1);
    if (compiled(L, a))
        return 0;
    lua_call(L, 0, 1);
    return 1;
}

/* Evaluate an expression; on success its value is left on top of the Lua stack. quote and
 * bare say how messages show the expression, path where it was found. */
static int run_expr(cbx_template_env *e, const char *expr, size_t len, const char *path,
                    const char *quote, size_t qlen, int bare, cbx_err *err)
{
    if (cbx__tpl_blank(expr, len))
        return cbx__tpl_fail(err, CBX_EPARSE, path, quote, qlen, bare, "empty expression");
    int rc = ensure_lua(e, err); /* a state made now starts with an empty stack: e->top is 0 */
    if (rc)
        return rc;
    run_args a = {.e = e, .expr = expr, .len = len};
    cbx_err le;
    cbx_err_clear(&le);
    e->refused = 0;
    rc = cbx_sandbox_pcall_c(e->sb, run_cf, &a, 1, &le);
    if (rc == 0 && a.compile_failed) {
        lua_pop(e->L, 1);
        return cbx__tpl_fail(err, a.compile_failed, path, quote, qlen, bare, a.msg);
    }
    if (rc == 0)
        return 0;
    const char *m = le.msg[0] ? le.msg : cbx_strerror(rc);
    while (strncmp(m, "template:", 9) == 0 && cbx__tpl_strip_position(m) != m)
        m = cbx__tpl_strip_position(m); /* raised again through a coroutine */
    if (rc == CBX_EFAILED &&
        ((e->refused && (strstr(m, "read-only") || strstr(m, "cannot assign"))) ||
         strstr(m, "stack overflow") || strstr(m, "memory limit exceeded") ||
         strstr(m, "cannot change a protected metatable") || strstr(m, "got read-only table")))
        rc = CBX_ESANDBOX;
    return cbx__tpl_fail(err, rc, path, quote, qlen, bare, m);
}

/* ---- plain references, read without Lua ----------------------------------------------------
 *
 * Most templates name a value: {{ inputs.url }}, {{ steps.fetch.outputs.body }}. Such a path
 * (a context key, then .name, [integer] or ['string'] steps) is read straight from the JSON,
 * with the meaning Lua would give it; anything else, and any path Lua would have to judge
 * (indexing a missing value, a string or a number), goes to Lua. */

/* 1 when expr is a plain path resolved in ctx (*out borrowed; NULL for nil), else 0. */
static int fast_path(const json_t *ctx, const char *s, size_t len, const json_t **out)
{
    cbx__tpl_path_step st[CBX__TPL_PATH_MAX];
    size_t n = ctx ? cbx__tpl_parse_path(s, len, st) : 0;
    if (n == 0)
        return 0;
    const json_t *cur = json_object_getn(ctx, st[0].k, st[0].kn);
    if (!cur)
        return 0; /* a global or a helper */
    for (size_t i = 1; i < n; i++) {
        if (!cur || !(json_is_object(cur) || json_is_array(cur)))
            return 0; /* Lua raises, or reaches the string methods */
        if (st[i].k && json_is_object(cur))
            cur = json_object_getn(cur, st[i].k, st[i].kn);
        else if (!st[i].k && st[i].idx >= 1 && json_is_array(cur) &&
                 (size_t)st[i].idx <= json_array_size(cur))
            cur = json_array_get(cur, (size_t)st[i].idx - 1);
        else
            cur = NULL; /* a name in an array, a number in an object, out of range: nil */
    }
    *out = cur;
    return 1;
}

/* The value of an expression: read from the context (json, NULL for nil) or left on top of the
 * Lua stack (in_lua). */
typedef struct value_ref {
    int in_lua;
    const json_t *json;
} value_ref;

static int evaluate(cbx_template_env *e, const char *expr, size_t len, const char *path,
                    const char *quote, size_t qlen, int bare, value_ref *v, cbx_err *err)
{
    v->json = NULL;
    v->in_lua = 0;
    if (fast_path(e->ctx, expr, len, &v->json))
        return 0;
    v->in_lua = 1;
    return run_expr(e, expr, len, path, quote, qlen, bare, err);
}

static int call_begin(cbx_template_env *e, const json_t *ctx, cbx_err *err)
{
    if (ctx && !json_is_object(ctx))
        return cbx_err_set(err, -EINVAL, "the template context must be a JSON object");
    e->ctx = ctx;
    e->top = e->L ? lua_gettop(e->L) : 0;
    return 0;
}

static void call_end(cbx_template_env *e)
{
    if (e->L)
        lua_settop(e->L, e->top);
    e->ctx = NULL;
    e->gen++; /* context values made during the call go stale */
}

/* ---- rendering ------------------------------------------------------------------------------- */

typedef struct render {
    cbx_template_env *e;
    cbx_err *err;
    char path[256];
} render;

/* The value as JSON (a new reference); a Lua value is popped. */
static int value_to_json(render *r, value_ref *v, const char *quote, size_t qlen, int bare,
                         json_t **out)
{
    char msg[400] = "";
    int rc;
    if (v->in_lua) {
        rc = cbx__tpl_to_json(r->e, r->e->L, -1, out, msg, sizeof msg);
        lua_pop(r->e->L, 1);
    } else if (!v->json) {
        *out = json_null();
        rc = 0;
    } else {
        conv c = {.e = r->e, .L = r->e->L, .left = r->e->max_memory, .msg = msg, .cap = sizeof msg};
        rc = copy_json(&c, v->json, 0, out);
    }
    if (rc == -ENOMEM)
        return cbx_err_set(r->err, rc, "out of memory");
    if (rc)
        return cbx__tpl_fail(r->err, rc, r->path, quote, qlen, bare, msg);
    return 0;
}

/* Append the value's text; a Lua value is popped. */
static int value_to_text(cbx_template_env *e, value_ref *v, cbx__tpl_buf *b, char *msg, size_t cap)
{
    if (v->in_lua) {
        int rc = cbx__tpl_append_text(e, e->L, -1, b, msg, cap);
        lua_pop(e->L, 1);
        return rc;
    }
    if (!v->json || json_is_null(v->json))
        return 0;
    if (json_is_string(v->json))
        cbx__tpl_buf_add(b, json_string_value(v->json), json_string_length(v->json));
    else
        cbx__tpl_json_write(b, v->json);
    return 0;
}

static int render_string(render *r, const json_t *v, json_t **out)
{
    cbx_template_env *e = r->e;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    cbx__tpl_span sp;
    value_ref val;
    if (cbx__tpl_whole(s, len, &sp)) {
        int rc = evaluate(e, s + sp.expr, sp.expr_end - sp.expr, r->path, s + sp.open,
                          sp.close - sp.open, 0, &val, r->err);
        return rc ? rc : value_to_json(r, &val, s + sp.open, sp.close - sp.open, 0, out);
    }
    cbx__tpl_buf b = {.limit = e->max_memory};
    size_t pos = 0;
    int found, rc = 0;
    while ((found = cbx__tpl_next(s, len, pos, &sp)) == 1) {
        const char *q = s + sp.open;
        size_t qlen = sp.close - sp.open;
        cbx__tpl_buf_add(&b, s + pos, sp.open - pos);
        rc = evaluate(e, s + sp.expr, sp.expr_end - sp.expr, r->path, q, qlen, 0, &val, r->err);
        if (rc)
            goto out;
        char msg[400] = "";
        rc = value_to_text(e, &val, &b, msg, sizeof msg);
        if (rc == -ENOMEM || b.oom) {
            rc = cbx_err_set(r->err, -ENOMEM, "out of memory");
            goto out;
        }
        if (!rc && b.over) {
            rc = CBX_ESANDBOX;
            snprintf(msg, sizeof msg, "memory limit exceeded (the text is longer than %zu bytes)",
                     e->max_memory);
        }
        if (rc) {
            cbx__tpl_fail(r->err, rc, r->path, q, qlen, 0, msg);
            goto out;
        }
        pos = sp.close;
    }
    if (found < 0) {
        rc = cbx__tpl_fail(r->err, CBX_EPARSE, r->path, s + sp.open, len - sp.open, 0,
                           cbx__tpl_scan_reason(-found));
        goto out;
    }
    cbx__tpl_buf_add(&b, s + pos, len - pos);
    if (b.oom || b.over) {
        rc = b.oom ? cbx_err_set(r->err, -ENOMEM, "out of memory")
                   : cbx_err_set_at(r->err, CBX_ESANDBOX, r->path, 0, 0,
                                    "memory limit exceeded (the text is longer than %zu bytes)",
                                    e->max_memory);
        goto out;
    }
    *out = json_stringn(b.p ? b.p : "", b.len);
    if (!*out)
        rc = cbx_err_set_at(r->err, CBX_EFAILED, r->path, 0, 0, "the text is not valid UTF-8");
out:
    cbx__tpl_buf_free(&b);
    return rc;
}

static int render_value(render *r, const json_t *v, json_t **out)
{
    *out = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING: {
        if (!cbx_template_has(v)) {
            *out = json_stringn_nocheck(json_string_value(v), json_string_length(v));
            break;
        }
        return render_string(r, v, out);
    }
    case JSON_ARRAY: {
        json_t *a = json_array();
        if (!a)
            return cbx_err_set(r->err, -ENOMEM, "out of memory");
        for (size_t i = 0; i < json_array_size(v); i++) {
            size_t old = cbx__tpl_path_index(r->path, sizeof r->path, i);
            json_t *x = NULL;
            int rc = render_value(r, json_array_get(v, i), &x);
            if (!rc && json_array_append_new(a, x))
                rc = cbx_err_set(r->err, -ENOMEM, "out of memory");
            if (rc) {
                json_decref(a);
                return rc;
            }
            r->path[old] = '\0';
        }
        *out = a;
        return 0;
    }
    case JSON_OBJECT: {
        json_t *o = json_object();
        if (!o)
            return cbx_err_set(r->err, -ENOMEM, "out of memory");
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            const char *k = json_object_iter_key(it);
            size_t kn = json_object_iter_key_len(it);
            size_t old = cbx__tpl_path_key(r->path, sizeof r->path, k, kn);
            json_t *x = NULL;
            int rc = render_value(r, json_object_iter_value(it), &x);
            if (!rc && json_object_setn_new_nocheck(o, k, kn, x))
                rc = cbx_err_set(r->err, -ENOMEM, "out of memory");
            if (rc) {
                json_decref(o);
                return rc;
            }
            r->path[old] = '\0';
        }
        *out = o;
        return 0;
    }
    default:
        *out = json_copy((json_t *)v);
        break;
    }
    return *out ? 0 : cbx_err_set(r->err, -ENOMEM, "out of memory");
}

int cbx_template_render(cbx_template_env *e, const json_t *value, const json_t *ctx, json_t **out,
                        cbx_err *err)
{
    *out = NULL;
    if (!e || !value)
        return cbx_err_set(err, -EINVAL, "no template environment or no value given");
    int rc = call_begin(e, ctx, err);
    if (rc)
        return rc;
    render r = {.e = e, .err = err};
    rc = render_value(&r, value, out);
    call_end(e);
    return rc;
}

int cbx_template_eval(cbx_template_env *e, const char *expr, const json_t *ctx, json_t **out,
                      cbx_err *err)
{
    *out = NULL;
    if (!e || !expr)
        return cbx_err_set(err, -EINVAL, "no template environment or no expression given");
    int rc = call_begin(e, ctx, err);
    if (rc)
        return rc;
    size_t len = strlen(expr);
    value_ref val;
    rc = evaluate(e, expr, len, NULL, expr, len, 1, &val, err);
    if (rc == 0) {
        render r = {.e = e, .err = err};
        rc = value_to_json(&r, &val, expr, len, 1, out);
    }
    call_end(e);
    return rc;
}

int cbx_template_truthy(cbx_template_env *e, const char *expr, const json_t *ctx, int *truth,
                        cbx_err *err)
{
    *truth = 0;
    if (!e || !expr)
        return cbx_err_set(err, -EINVAL, "no template environment or no expression given");
    int rc = call_begin(e, ctx, err);
    if (rc)
        return rc;
    size_t len = strlen(expr);
    value_ref val;
    rc = evaluate(e, expr, len, NULL, expr, len, 1, &val, err);
    if (rc == 0 && val.in_lua) {
        *truth = lua_toboolean(e->L, -1) && !cbx_sandbox_is_null(e->L, -1);
        lua_pop(e->L, 1);
    } else if (rc == 0) {
        *truth = val.json && !json_is_null(val.json) && !json_is_false(val.json);
    }
    call_end(e);
    return rc;
}
