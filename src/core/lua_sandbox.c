/* Sandboxed Lua 5.4 states: safe libraries only, an instruction budget per call enforced by a
 * count hook, a memory limit enforced by the allocator, and JSON <-> Lua conversion. */
#include "cbx/lua_sandbox.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "core/log_internal.h"
#include "core/lua_sandbox_internal.h"

#define HOOK_EVERY 1000
#define MIN_MEMORY (64u << 10)

enum { ABORT_NONE = 0, ABORT_INSTRUCTIONS, ABORT_INTERRUPT };

struct cbx_sandbox {
    lua_State *L;
    size_t used, limit;
    uint64_t budget; /* per call; CBX_SANDBOX_UNLIMITED = none */
    uint64_t steps;  /* instructions counted in the current (or last) call */
    int (*interrupted)(void *ud);
    void *interrupt_ud;
    int depth;           /* nested calls: only the outermost resets the budget */
    int abort;           /* ABORT_*: once set, every instruction raises */
    int mem_hit;         /* the allocator refused a request during this call */
    int refused;         /* a forbidden name or option was touched during this call */
    char long_name[256]; /* the last chunk name too long for Lua's messages ("...tail") */
};

/* Registry keys (their addresses). */
static const char null_key = 0;
static const char array_key = 0;

/* ---- memory -------------------------------------------------------------------------------- */

static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    cbx_sandbox *sb = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        sb->used -= old;
        return NULL;
    }
    if (nsize > old && (nsize - old > sb->limit || sb->used + (nsize - old) > sb->limit)) {
        sb->mem_hit = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    sb->used = sb->used - old + nsize;
    return p;
}

cbx_sandbox *cbx_sandbox_of(lua_State *L)
{
    void *ud = NULL;
    if (lua_getallocf(L, &ud) != sb_alloc)
        return NULL;
    return ud;
}

/* ---- instruction budget -------------------------------------------------------------------- */

static void sb_hook(lua_State *L, lua_Debug *ar);

/* Decide whether the running call must stop (budget spent, interrupt asked); once it must,
 * make every following instruction raise, here and in the main thread, so that a pcall in the
 * script cannot catch the error and go on. Returns whether it must stop. */
static int must_stop(cbx_sandbox *sb, lua_State *L, uint64_t spent)
{
    if (sb->abort)
        return 1;
    sb->steps += spent;
    if (sb->interrupted && sb->interrupted(sb->interrupt_ud))
        sb->abort = ABORT_INTERRUPT;
    else if (sb->budget != CBX_SANDBOX_UNLIMITED && sb->steps > sb->budget)
        sb->abort = ABORT_INSTRUCTIONS;
    else
        return 0;
    lua_sethook(L, sb_hook, LUA_MASKCOUNT, 1);
    if (L != sb->L)
        lua_sethook(sb->L, sb_hook, LUA_MASKCOUNT, 1);
    return 1;
}

/* Raise the abort's error; where is "src:line:" (pushed by the caller, popped here). */
static int raise_abort(cbx_sandbox *sb, lua_State *L)
{
    if (sb->abort == ABORT_INTERRUPT)
        lua_pushliteral(L, "interrupted");
    else
        lua_pushfstring(L, "instruction limit exceeded (%I instructions)", (lua_Integer)sb->budget);
    lua_concat(L, 2);
    return lua_error(L);
}

static void sb_hook(lua_State *L, lua_Debug *ar)
{
    cbx_sandbox *sb = cbx_sandbox_of(L);
    if (!must_stop(sb, L, (uint64_t)lua_gethookcount(L)))
        return;
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: ", ar->short_src, ar->currentline);
    raise_abort(sb, L);
}

void cbx__sandbox_charge(lua_State *L, uint64_t instructions)
{
    cbx_sandbox *sb = cbx_sandbox_of(L);
    if (!sb || !must_stop(sb, L, instructions))
        return;
    luaL_where(L, 1); /* the Lua line that called the C function */
    raise_abort(sb, L);
}

static void arm_hook(cbx_sandbox *sb)
{
    if (sb->budget == CBX_SANDBOX_UNLIMITED && !sb->interrupted) {
        lua_sethook(sb->L, NULL, 0, 0);
        return;
    }
    int every = HOOK_EVERY;
    if (sb->budget != CBX_SANDBOX_UNLIMITED && sb->budget < HOOK_EVERY)
        every = sb->budget > 0 ? (int)sb->budget : 1;
    lua_sethook(sb->L, sb_hook, LUA_MASKCOUNT, every);
}

/* ---- refusals ------------------------------------------------------------------------------ */

static int refuse(lua_State *L, const char *fmt, ...)
{
    cbx_sandbox *sb = cbx_sandbox_of(L);
    if (sb)
        sb->refused = 1;
    luaL_where(L, 1);
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

static const char *const forbidden_globals[] = {
    "io",     "require", "package", "debug",   "load", "loadstring", "loadfile",
    "dofile", "module",  "setfenv", "getfenv", "warn", NULL,
};

/* _G's __index: a forbidden name raises, any other missing name is nil. */
static int global_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *k = lua_tostring(L, 2);
        for (size_t i = 0; forbidden_globals[i]; i++)
            if (strcmp(k, forbidden_globals[i]) == 0)
                return refuse(L, "%s is not available in the sandbox", k);
    }
    return 0;
}

static int os_index(lua_State *L)
{
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    return refuse(L, "os.%s is not available in the sandbox (only os.time, os.clock and os.date)",
                  k);
}

static int string_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "dump") == 0)
        return refuse(L, "string.dump is not available in the sandbox");
    return 0;
}

static int safe_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") != 0)
        return refuse(L, "collectgarbage('%s') is not available in the sandbox (only 'count')",
                      opt);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Lua runs finalizers with hooks off, out of the budget's reach: no __gc for scripts. A table
 * can only be marked for finalization by setmetatable with a __gc field already present. */
static int safe_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        int has = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (has)
            return refuse(L, "__gc metamethods are not available in the sandbox");
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* string.rep("", 1e15) would loop 1e15 times inside C, out of the count hook's reach; a result
 * larger than the memory left is refused before anything is allocated. */
static int safe_rep(lua_State *L)
{
    size_t l = 0, lsep = 0;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    cbx_sandbox *sb = cbx_sandbox_of(L);
    size_t left = sb->limit > sb->used ? sb->limit - sb->used : 0;
    if ((uint64_t)n > left / (l + lsep) + 1) {
        sb->mem_hit = 1;
        return luaL_error(L, "memory limit exceeded (%I bytes; string.rep would make %f)",
                          (lua_Integer)sb->limit, (double)n * (double)(l + lsep));
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int safe_print(lua_State *L)
{
    if (!cbx__log_enabled(CBX_LOG_DEBUG))
        return 0;
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    cbx__log(CBX_LOG_DEBUG, "lua", "%s", lua_tostring(L, -1));
    return 0;
}

/* ---- null and arrays ----------------------------------------------------------------------- */

void cbx_sandbox_push_null(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &null_key);
}

int cbx_sandbox_is_null(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TUSERDATA)
        return 0;
    idx = lua_absindex(L, idx);
    cbx_sandbox_push_null(L);
    int eq = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return eq;
}

static int null_tostring(lua_State *L)
{
    lua_pushliteral(L, "null");
    return 1;
}

static int null_index(lua_State *L)
{
    return luaL_error(L, "attempt to index null");
}

static int is_marked_array(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
    int eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return eq;
}

/* array([t]): mark t (or a new table) as a JSON array; returns it. */
static int lua_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (lua_getmetatable(L, 1)) {
            if (!is_marked_array(L, 1))
                return luaL_error(L, "array(): the table already has a metatable");
            lua_pop(L, 1);
            return 1;
        }
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
    lua_setmetatable(L, 1);
    return 1;
}

/* ---- setup --------------------------------------------------------------------------------- */

static void set_protected_metatable(lua_State *L, int idx, lua_CFunction index)
{
    idx = lua_absindex(L, idx);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, index);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, idx);
}

static int sb_setup(lua_State *L)
{
    /* base, then what it must not offer */
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    lua_pop(L, 1);
    static const char *const drop_base[] = {"dofile", "loadfile",   "load", "require",
                                            "warn",   "loadstring", NULL};
    for (size_t i = 0; drop_base[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, drop_base[i]);
    }
    lua_getglobal(L, "collectgarbage");
    lua_pushcclosure(L, safe_collectgarbage, 1);
    lua_setglobal(L, "collectgarbage");
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, safe_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    lua_pushcfunction(L, safe_print);
    lua_setglobal(L, "print");

    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_getfield(L, -1, "rep");
    lua_pushcclosure(L, safe_rep, 1);
    lua_setfield(L, -2, "rep");
    cbx__sandbox_guard_patterns(L);
    set_protected_metatable(L, -1, string_index);
    lua_pop(L, 1);

    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    cbx__sandbox_guard_table(L);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
    lua_pop(L, 4);

    /* os: only the clock and calendar functions */
    luaopen_os(L);
    lua_createtable(L, 0, 3);
    static const char *const keep_os[] = {"time", "clock", "date", NULL};
    for (size_t i = 0; keep_os[i]; i++) {
        lua_getfield(L, -2, keep_os[i]);
        lua_setfield(L, -2, keep_os[i]);
    }
    set_protected_metatable(L, -1, os_index);
    lua_setglobal(L, "os");
    lua_pop(L, 1);

    /* null: one full userdata, "null" when printed */
    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, null_index);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "null");
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &null_key);
    lua_setglobal(L, "null");

    /* the array marker */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_key);
    lua_pushcfunction(L, lua_array);
    lua_setglobal(L, "array");

    /* last: forbidden names raise instead of being nil */
    lua_pushglobaltable(L);
    set_protected_metatable(L, -1, global_index);
    lua_pop(L, 1);
    return 0;
}

static int sb_panic(lua_State *L)
{
    (void)L;
    abort(); /* only reachable through a bug: every call into Lua here is protected */
}

int cbx_sandbox_new(cbx_sandbox **out, const cbx_sandbox_opts *o, cbx_err *err)
{
    *out = NULL;
    cbx_sandbox_opts d = {0};
    if (!o)
        o = &d;
    size_t limit = o->max_memory ? o->max_memory : CBX_SANDBOX_DEFAULT_MEMORY;
    if (limit < MIN_MEMORY)
        return cbx_err_set(err, CBX_EINVAL_CONFIG,
                           "sandbox memory limit %zu bytes is below the minimum of %u", limit,
                           MIN_MEMORY);
    cbx_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    sb->limit = limit;
    sb->budget = o->max_instructions ? o->max_instructions : CBX_SANDBOX_DEFAULT_INSTRUCTIONS;
    sb->interrupted = o->interrupted;
    sb->interrupt_ud = o->interrupt_ud;
    sb->L = lua_newstate(sb_alloc, sb);
    if (!sb->L) {
        free(sb);
        return cbx_err_set(err, -ENOMEM, "cannot create a Lua state: out of memory");
    }
    lua_atpanic(sb->L, sb_panic);
    lua_pushcfunction(sb->L, sb_setup);
    if (lua_pcall(sb->L, 0, 0, 0) != LUA_OK) {
        lua_close(sb->L);
        free(sb);
        return cbx_err_set(err, -ENOMEM, "cannot set up the Lua sandbox: out of memory");
    }
    *out = sb;
    return 0;
}

void cbx_sandbox_free(cbx_sandbox *sb)
{
    if (!sb)
        return;
    /* Finalizers run while the state closes: give them a budget of their own. */
    sb->steps = 0;
    sb->abort = ABORT_NONE;
    sb->interrupted = NULL;
    if (sb->budget == CBX_SANDBOX_UNLIMITED)
        sb->budget = CBX_SANDBOX_DEFAULT_INSTRUCTIONS;
    arm_hook(sb);
    lua_close(sb->L);
    free(sb);
}

lua_State *cbx_sandbox_lua(cbx_sandbox *sb)
{
    return sb->L;
}

void cbx_sandbox_set_instruction_limit(cbx_sandbox *sb, uint64_t max_instructions)
{
    sb->budget = max_instructions ? max_instructions : CBX_SANDBOX_DEFAULT_INSTRUCTIONS;
}

void cbx_sandbox_set_interrupt(cbx_sandbox *sb, int (*interrupted)(void *ud), void *ud)
{
    sb->interrupted = interrupted;
    sb->interrupt_ud = ud;
}

size_t cbx_sandbox_memory(const cbx_sandbox *sb)
{
    return sb->used;
}

uint64_t cbx_sandbox_instructions(const cbx_sandbox *sb)
{
    return sb->steps;
}

/* ---- errors -------------------------------------------------------------------------------- */

/* Split "src:LINE: message" into err's where, line and msg; anything else is the message. */
static void set_positioned(cbx_err *err, int code, const char *text, const char *fallback_where)
{
    if (!err)
        return;
    cbx_err_clear(err);
    err->code = code;
    for (const char *p = strchr(text, ':'); p; p = strchr(p + 1, ':')) {
        const char *q = p + 1;
        if (p == text || !isdigit((unsigned char)*q))
            continue;
        long line = 0;
        while (isdigit((unsigned char)*q) && line < 100000000)
            line = line * 10 + (*q++ - '0');
        if (*q != ':')
            continue;
        q++;
        while (*q == ' ')
            q++;
        int wlen = (int)(p - text);
        snprintf(err->where, sizeof err->where, "%.*s", wlen, text);
        err->line = (int)line;
        snprintf(err->msg, sizeof err->msg, "%s", q);
        return;
    }
    snprintf(err->where, sizeof err->where, "%s", fallback_where ? fallback_where : "");
    snprintf(err->msg, sizeof err->msg, "%s", text);
}

/* The error object on top of the stack after a failed call or load: fill err, pop it. */
static int take_error(cbx_sandbox *sb, int status, cbx_err *err)
{
    lua_State *L = sb->L;
    char buf[512];
    const char *msg;
    if (lua_type(L, -1) == LUA_TSTRING) {
        msg = lua_tostring(L, -1);
    } else if (cbx_sandbox_is_null(L, -1)) {
        msg = "(error object is null)";
    } else {
        snprintf(buf, sizeof buf, "(error object is a %s value)", luaL_typename(L, -1));
        msg = buf;
    }
    int code = CBX_EFAILED;
    if (status == LUA_ERRSYNTAX) {
        code = CBX_EPARSE;
    } else if (sb->abort == ABORT_INTERRUPT) {
        code = CBX_ECANCELLED;
        if (!strstr(msg, "interrupted"))
            msg = "interrupted";
    } else if (sb->abort == ABORT_INSTRUCTIONS) {
        code = CBX_ESANDBOX;
        if (!strstr(msg, "instruction limit exceeded")) {
            snprintf(buf, sizeof buf, "instruction limit exceeded (%llu instructions)",
                     (unsigned long long)sb->budget);
            msg = buf;
        }
    } else if (status == LUA_ERRMEM || (sb->mem_hit && strstr(msg, "not enough memory"))) {
        code = CBX_ESANDBOX;
        snprintf(buf, sizeof buf, "memory limit exceeded (%zu bytes)", sb->limit);
        msg = buf;
    } else if ((sb->mem_hit && strstr(msg, "memory limit exceeded")) ||
               (sb->refused && strstr(msg, "not available in the sandbox"))) {
        code = CBX_ESANDBOX; /* a refusal raised by the sandbox's own functions */
    }
    set_positioned(err, code, msg, NULL);
    /* Lua shows a long name as "...tail": give the whole name back when it is the last one */
    if (err && strncmp(err->where, "...", 3) == 0 && sb->long_name[0]) {
        size_t tl = strlen(err->where + 3), nl = strlen(sb->long_name);
        if (tl <= nl && strcmp(sb->long_name + nl - tl, err->where + 3) == 0)
            snprintf(err->where, sizeof err->where, "%s", sb->long_name);
    }
    lua_pop(L, 1);
    return code;
}

/* ---- loading and calling ------------------------------------------------------------------- */

int cbx_sandbox_load(cbx_sandbox *sb, const char *name, const char *src, size_t len, cbx_err *err)
{
    lua_State *L = sb->L;
    if (!lua_checkstack(L, 2))
        return cbx_err_set(err, CBX_ESANDBOX, "Lua stack overflow");
    /* "=name" keeps the head of a name in messages, "@name" (for long paths) the tail. */
    char chunk[320];
    int is_long = strlen(name) >= LUA_IDSIZE - 1;
    snprintf(chunk, sizeof chunk, "%c%s", is_long ? '@' : '=', name);
    if (is_long)
        snprintf(sb->long_name, sizeof sb->long_name, "%s", name);
    sb->mem_hit = 0;
    int st = luaL_loadbufferx(L, src, len, chunk, "t");
    if (st == LUA_OK)
        return 0;
    int code = take_error(sb, st, err);
    if (err && !err->where[0])
        snprintf(err->where, sizeof err->where, "%s", name);
    return code;
}

int cbx_sandbox_call(cbx_sandbox *sb, int nargs, int nresults, cbx_err *err)
{
    lua_State *L = sb->L;
    int base = lua_gettop(L) - nargs - 1;
    int outer = sb->depth == 0;
    if (outer) {
        sb->steps = 0;
        sb->abort = ABORT_NONE;
        sb->mem_hit = 0;
        sb->refused = 0;
        arm_hook(sb);
    }
    if (nresults > 0 && !lua_checkstack(L, nresults)) {
        lua_settop(L, base);
        return cbx_err_set(err, CBX_ESANDBOX, "Lua stack overflow");
    }
    sb->depth++;
    int st = lua_pcall(L, nargs, nresults, 0);
    sb->depth--;
    int rc = 0;
    if (st != LUA_OK) {
        rc = take_error(sb, st, err);
    } else if (sb->abort) {
        /* the error was caught in a coroutine and the main thread went on: still a failure */
        lua_settop(L, base);
        lua_pushliteral(L, "aborted");
        rc = take_error(sb, LUA_ERRRUN, err);
    }
    if (outer) {
        sb->abort = ABORT_NONE;
        lua_sethook(L, NULL, 0, 0);
        if (sb->mem_hit) /* give the garbage of a failed allocation spree back at once */
            lua_gc(L, LUA_GCCOLLECT);
    }
    return rc;
}

int cbx_sandbox_pcall_c(cbx_sandbox *sb, int (*fn)(lua_State *L), void *ud, int nresults,
                        cbx_err *err)
{
    if (!lua_checkstack(sb->L, 2))
        return cbx_err_set(err, CBX_ESANDBOX, "Lua stack overflow");
    lua_pushcfunction(sb->L, fn);
    lua_pushlightuserdata(sb->L, ud);
    return cbx_sandbox_call(sb, 1, nresults, err);
}

/* ---- JSON -> Lua --------------------------------------------------------------------------- */

static void push_json_at(lua_State *L, const json_t *v, int depth)
{
    if (depth > CBX_SANDBOX_MAX_DEPTH)
        luaL_error(L, "JSON value nested deeper than %d levels", CBX_SANDBOX_MAX_DEPTH);
    luaL_checkstack(L, 4, "JSON value too deep");
    if (!v) {
        lua_pushnil(L);
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(v));
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            lua_pushlstring(L, json_object_iter_key(it), json_object_iter_key_len(it));
            push_json_at(L, json_object_iter_value(it), depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_json_at(L, json_array_get(v, i), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
        lua_setmetatable(L, -2);
        break;
    }
    default:
        cbx_sandbox_push_scalar(L, v);
        break;
    }
}

int cbx_sandbox_push_scalar(lua_State *L, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        return 1;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        return 1;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        return 1;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        return 1;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        return 1;
    case JSON_NULL:
        cbx_sandbox_push_null(L);
        return 1;
    default:
        return 0;
    }
}

void cbx_sandbox_pushjson(lua_State *L, const json_t *value)
{
    push_json_at(L, value, 0);
}

static int push_json_cf(lua_State *L)
{
    const json_t *v = lua_touserdata(L, 1);
    push_json_at(L, v, 0);
    return 1;
}

int cbx_sandbox_push_json(cbx_sandbox *sb, const json_t *value, cbx_err *err)
{
    return cbx_sandbox_pcall_c(sb, push_json_cf, (void *)value, 1, err);
}

typedef struct set_global_args {
    const char *name;
    const json_t *value;
} set_global_args;

static int set_global_cf(lua_State *L)
{
    set_global_args *a = lua_touserdata(L, 1);
    push_json_at(L, a->value, 0);
    lua_pushglobaltable(L);
    lua_insert(L, -2);
    lua_setfield(L, -2, a->name);
    return 0;
}

int cbx_sandbox_set_global(cbx_sandbox *sb, const char *name, const json_t *value, cbx_err *err)
{
    set_global_args a = {.name = name, .value = value};
    return cbx_sandbox_pcall_c(sb, set_global_cf, &a, 0, err);
}

/* ---- Lua -> JSON --------------------------------------------------------------------------- */

typedef struct conv {
    lua_State *L;
    cbx_err *err;
    char path[256];
} conv;

static int conv_fail(conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int conv_fail(conv *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cbx_err_set_at(c->err, CBX_EFAILED, c->path, 0, 0, "%s: %s", c->path, msg);
    return CBX_EFAILED;
}

static int to_json_at(conv *c, int idx, int depth, json_t **out);

/* Append ".key" or "[i]" to the path; returns the old length to restore. */
static size_t path_push(conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t path_push(conv *c, const char *fmt, ...)
{
    size_t len = strlen(c->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->path + len, sizeof c->path - len, fmt, ap);
    va_end(ap);
    return len;
}

/* An object key for the key at idx (string, integer or float). */
static int key_text(conv *c, int idx, char *buf, size_t cap, const char **key, size_t *klen)
{
    lua_State *L = c->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        *key = lua_tolstring(L, idx, klen);
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(buf, cap, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(buf, cap, "%.14g", (double)lua_tonumber(L, idx));
        *key = buf;
        *klen = strlen(buf);
        return 0;
    default:
        return conv_fail(c, "a table key of type %s cannot become a JSON object key",
                         luaL_typename(L, idx));
    }
}

static int table_to_json(conv *c, int idx, int depth, json_t **out)
{
    lua_State *L = c->L;
    int marked = is_marked_array(L, idx);
    /* count the entries and see whether the keys are exactly 1..n */
    lua_Integer n = 0, max_int = 0;
    int all_int = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
            lua_Integer k = lua_tointeger(L, -2);
            if (k > max_int)
                max_int = k;
        } else {
            all_int = 0;
        }
        lua_pop(L, 1);
    }
    if (marked && !all_int)
        return conv_fail(c, "a table marked as an array has a key that is not a positive integer");
    if (marked && max_int > 100000000)
        return conv_fail(c, "an array with index %lld is too sparse", (long long)max_int);
    if (marked || (n > 0 && all_int && max_int == n)) {
        json_t *a = json_array();
        if (!a)
            return conv_fail(c, "out of memory");
        for (lua_Integer i = 1; i <= max_int; i++) {
            lua_rawgeti(L, idx, i);
            size_t len = path_push(c, "[%lld]", (long long)(i - 1));
            json_t *item = NULL;
            int rc = lua_isnil(L, -1) ? 0 : to_json_at(c, lua_gettop(L), depth + 1, &item);
            lua_pop(L, 1);
            if (rc) {
                json_decref(a);
                return rc;
            }
            c->path[len] = '\0';
            if (json_array_append_new(a, item ? item : json_null())) {
                json_decref(a);
                return conv_fail(c, "out of memory");
            }
        }
        *out = a;
        return 0;
    }
    json_t *o = json_object();
    if (!o)
        return conv_fail(c, "out of memory");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        char kb[64];
        const char *key = NULL;
        size_t klen = 0;
        int rc = key_text(c, lua_gettop(L) - 1, kb, sizeof kb, &key, &klen);
        json_t *item = NULL;
        if (rc == 0) {
            size_t len = path_push(c, ".%.*s", (int)(klen > 64 ? 64 : klen), key);
            rc = to_json_at(c, lua_gettop(L), depth + 1, &item);
            if (rc == 0)
                c->path[len] = '\0';
        }
        if (rc == 0 && json_object_setn_new(o, key, klen, item)) {
            rc = conv_fail(c, "the object key is not valid UTF-8");
        }
        if (rc) {
            lua_pop(L, 2);
            json_decref(o);
            return rc;
        }
        lua_pop(L, 1);
    }
    *out = o;
    return 0;
}

static int to_json_at(conv *c, int idx, int depth, json_t **out)
{
    lua_State *L = c->L;
    *out = NULL;
    if (depth > CBX_SANDBOX_MAX_DEPTH)
        return conv_fail(c, "nested deeper than %d levels (a table that contains itself?)",
                         CBX_SANDBOX_MAX_DEPTH);
    if (!lua_checkstack(L, 4))
        return conv_fail(c, "Lua stack overflow");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        *out = json_null();
        return 0;
    case LUA_TBOOLEAN:
        *out = json_boolean(lua_toboolean(L, idx));
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            *out = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (!isfinite(d))
                return conv_fail(c, "%s is not a JSON number", isnan(d) ? "NaN" : "infinity");
            *out = json_real(d);
        }
        return *out ? 0 : conv_fail(c, "out of memory");
    case LUA_TSTRING: {
        size_t len = 0;
        const char *s = lua_tolstring(L, idx, &len);
        *out = json_stringn(s, len);
        return *out ? 0 : conv_fail(c, "the string is not valid UTF-8");
    }
    case LUA_TTABLE:
        return table_to_json(c, idx, depth, out);
    case LUA_TUSERDATA:
        if (cbx_sandbox_is_null(L, idx)) {
            *out = json_null();
            return 0;
        }
        /* fall through */
    default:
        return conv_fail(c, "a %s cannot become JSON", luaL_typename(L, idx));
    }
}

int cbx_sandbox_to_json(lua_State *L, int idx, const char *what, json_t **out, cbx_err *err)
{
    conv c = {.L = L, .err = err};
    snprintf(c.path, sizeof c.path, "%s", what ? what : "value");
    *out = NULL;
    return to_json_at(&c, lua_absindex(L, idx), 0, out);
}

/* ---- evaluation ---------------------------------------------------------------------------- */

static int load_expr_or_chunk(cbx_sandbox *sb, const char *name, const char *code, cbx_err *err)
{
    size_t len = strlen(code);
    char *buf = malloc(len + 8);
    if (!buf)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    snprintf(buf, len + 8, "return %s", code);
    int rc = cbx_sandbox_load(sb, name, buf, len + 7, NULL);
    free(buf);
    if (rc == 0)
        return 0;
    return cbx_sandbox_load(sb, name, code, len, err);
}

int cbx_sandbox_eval(cbx_sandbox *sb, const char *name, const char *code, json_t **out,
                     cbx_err *err)
{
    if (out)
        *out = NULL;
    int rc = load_expr_or_chunk(sb, name, code, err);
    if (rc)
        return rc;
    rc = cbx_sandbox_call(sb, 0, 1, err);
    if (rc)
        return rc;
    if (out)
        rc = cbx_sandbox_to_json(sb->L, -1, "result", out, err);
    lua_pop(sb->L, 1);
    return rc;
}

int cbx_sandbox_eval_bool(cbx_sandbox *sb, const char *name, const char *code, int *out,
                          cbx_err *err)
{
    *out = 0;
    int rc = load_expr_or_chunk(sb, name, code, err);
    if (rc)
        return rc;
    rc = cbx_sandbox_call(sb, 0, 1, err);
    if (rc)
        return rc;
    *out = lua_toboolean(sb->L, -1) && !cbx_sandbox_is_null(sb->L, -1);
    lua_pop(sb->L, 1);
    return 0;
}
