/* Executor types defined in Lua files: the loader (the `executor { ... }` definition becomes a
 * cbx_executor_type with a heap-allocated schema) and the hooks that run each attempt in a
 * fresh sandbox. */
#include "cbx/lua_executor.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>

#include "cbx/lua_sandbox.h"
#include "core/text.h"
#include "runtime/builtins.h"

#define MAX_FILE_BYTES (16u << 20)

/* ---- the type ------------------------------------------------------------------------------- */

typedef struct lx_type {
    cbx_executor_type type; /* registered; type.data points back here */
    char *chunk;            /* the file's path (or name): errors are reported against it */
    char *src;
    size_t src_len;
    int def_line; /* the line of `executor {`, 0 when unknown */
    int has_validate, has_before, has_after;
    uint64_t hook_budget, run_budget;
    size_t memory;
    void **allocs; /* everything the schema owns */
    size_t nallocs, capallocs;
} lx_type;

static void lx_type_free(lx_type *lt)
{
    if (!lt)
        return;
    for (size_t i = 0; i < lt->nallocs; i++)
        free(lt->allocs[i]);
    free(lt->allocs);
    free(lt->chunk);
    free(lt->src);
    free(lt);
}

static void lx_destroy(const cbx_executor_type *type)
{
    lx_type_free(type->data);
}

/* Keep p (or free it on failure); returns p or NULL. */
static void *own(lx_type *lt, void *p)
{
    if (!p)
        return NULL;
    if (lt->nallocs == lt->capallocs) {
        size_t cap = lt->capallocs ? lt->capallocs * 2 : 16;
        void **v = realloc(lt->allocs, cap * sizeof *v);
        if (!v) {
            free(p);
            return NULL;
        }
        lt->allocs = v;
        lt->capallocs = cap;
    }
    lt->allocs[lt->nallocs++] = p;
    return p;
}

static char *own_str(lx_type *lt, const char *s)
{
    return own(lt, strdup(s));
}

/* ---- the sandbox of an attempt -------------------------------------------------------------- */

/* Registry keys in each state. */
static const char def_key = 0, line_key = 0, params_key = 0, ctx_key = 0;

/* executor { ... }: remember the table and the line, give the table back. */
static int lua_executor_fn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_Debug ar;
    int line = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar))
        line = ar.currentline;
    lua_pushinteger(L, line);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &line_key);
    lua_pushvalue(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &def_key);
    return 1;
}

static int install_executor_fn(lua_State *L)
{
    lua_pushcfunction(L, lua_executor_fn);
    lua_setglobal(L, "executor");
    return 0;
}

/* keep_definition(result): the chunk's result, or else the table given to executor(), becomes
 * the definition in the registry; returns whether there is one. */
static int keep_definition(lua_State *L)
{
    if (lua_istable(L, 1)) {
        lua_pushvalue(L, 1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &def_key);
    }
    lua_pushboolean(L, lua_rawgetp(L, LUA_REGISTRYINDEX, &def_key) == LUA_TTABLE);
    return 1;
}

/* Run the chunk loaded on top of the stack and keep its definition. */
static int run_chunk(cbx_sandbox *sb, cbx_err *e)
{
    int rc = cbx_sandbox_call(sb, 0, 1, e);
    if (rc)
        return rc;
    lua_State *L = cbx_sandbox_lua(sb);
    lua_pushcfunction(L, keep_definition);
    lua_insert(L, -2);
    rc = cbx_sandbox_call(sb, 1, 1, e);
    if (rc)
        return rc;
    int found = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return found ? 0 : cbx_err_set(e, CBX_EFAILED, "the file must return executor { ... }");
}

/* Format a sandbox error as "where:line: msg" into msg (the where of a long path is shown by
 * Lua as "...tail"; the chunk's own name replaces it). */
static void describe(const lx_type *lt, const cbx_err *e, char *out, size_t cap)
{
    const char *where = e->where;
    if (strncmp(where, "...", 3) == 0 || where[0] == '\0')
        where = e->line > 0 ? lt->chunk : "";
    if (where[0] && e->line > 0)
        snprintf(out, cap, "%.150s:%d: %.340s", where, e->line, e->msg);
    else if (where[0])
        snprintf(out, cap, "%.150s: %.340s", where, e->msg);
    else
        snprintf(out, cap, "%s", e->msg);
}

typedef struct prep_args {
    const json_t *params;
    uint32_t attempt;
    const char *execution_id;
    const cbx_task *ctx_of; /* the attempt whose context ctx shows; NULL (validate) */
} prep_args;

static void set_string(lua_State *L, const char *field, const char *value)
{
    if (!value)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, field);
}

static int prep_values(lua_State *L)
{
    prep_args *a = lua_touserdata(L, 1);
    cbx_sandbox_pushjson(L, a->params);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &params_key);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)a->attempt);
    lua_setfield(L, -2, "attempt");
    lua_pushstring(L, a->execution_id ? a->execution_id : "");
    lua_setfield(L, -2, "execution_id");
    /* the execution's context: absent fields are nil */
    set_string(L, "run_id", cbx_task_run_id(a->ctx_of));
    set_string(L, "step", cbx_task_step(a->ctx_of));
    set_string(L, "tmpdir", cbx_task_tmpdir(a->ctx_of));
    const json_t *meta = cbx_task_metadata(a->ctx_of);
    if (meta) {
        cbx_sandbox_pushjson(L, meta);
        lua_setfield(L, -2, "metadata");
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
    return 0;
}

static int lx_interrupted(void *ud)
{
    return cbx_task_cancelled(ud);
}

/* A fresh sandbox with the file run and its definition, params and ctx in place. On failure
 * *msg has the reason. */
static int lx_open(const lx_type *lt, const json_t *params, cbx_task *t, uint32_t attempt,
                   const char *execution_id, const cbx_task *ctx_of, cbx_sandbox **out, char *msg,
                   size_t cap)
{
    *out = NULL;
    cbx_sandbox *sb = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    cbx_sandbox_opts o = {.max_instructions = lt->hook_budget,
                          .max_memory = lt->memory,
                          .interrupted = t ? lx_interrupted : NULL,
                          .interrupt_ud = t};
    int rc = cbx_sandbox_new(&sb, &o, &e);
    if (rc == 0)
        rc = cbx_sandbox_pcall_c(sb, install_executor_fn, NULL, 0, &e);
    if (rc == 0)
        rc = cbx_sandbox_load(sb, lt->chunk, lt->src, lt->src_len, &e);
    if (rc == 0)
        rc = run_chunk(sb, &e);
    prep_args a = {
        .params = params, .attempt = attempt, .execution_id = execution_id, .ctx_of = ctx_of};
    if (rc == 0)
        rc = cbx_sandbox_pcall_c(sb, prep_values, &a, 0, &e);
    if (rc) {
        describe(lt, &e, msg, cap);
        cbx_sandbox_free(sb);
        return rc;
    }
    *out = sb;
    return 0;
}

typedef struct invoke_args {
    const char *fn;
    int nres;
    int with_ctx;
    const json_t *extra[2]; /* pushed after p (and ctx) */
    int nextra;
} invoke_args;

static int invoke_cf(lua_State *L)
{
    invoke_args *a = lua_touserdata(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &def_key);
    lua_getfield(L, -1, a->fn);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "%s is not a function", a->fn);
    int nargs = 1;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &params_key);
    if (a->with_ctx) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &ctx_key);
        nargs++;
    }
    for (int i = 0; i < a->nextra; i++) {
        cbx_sandbox_pushjson(L, a->extra[i]);
        nargs++;
    }
    lua_call(L, nargs, a->nres);
    return a->nres;
}

/* Call the definition's function fn; its nres results are left on the stack. */
static int lx_invoke(const lx_type *lt, cbx_sandbox *sb, invoke_args *a, char *msg, size_t cap)
{
    cbx_err e;
    cbx_err_clear(&e);
    int rc = cbx_sandbox_pcall_c(sb, invoke_cf, a, a->nres, &e);
    if (rc)
        describe(lt, &e, msg, cap);
    return rc;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* A refusal given as results (r1, r2) at the top of the stack: 1 and msg filled when there is
 * one. r1 a string, or r1 nil/false and r2 a string; with table_ok, r1 a table of messages. */
static int refusal(lua_State *L, const char *fn, int table_ok, char *msg, size_t cap, char *where,
                   size_t wcap)
{
    int r1 = lua_gettop(L) - 1, r2 = lua_gettop(L);
    if (where)
        where[0] = '\0';
    if (lua_type(L, r1) == LUA_TSTRING) {
        snprintf(msg, cap, "%s", lua_tostring(L, r1));
        return 1;
    }
    if (!lua_toboolean(L, r1) && lua_type(L, r2) == LUA_TSTRING) {
        snprintf(msg, cap, "%s", lua_tostring(L, r2));
        return 1;
    }
    if (table_ok && lua_istable(L, r1)) {
        /* {param = "message"}: sorted by name, for a stable line */
        char keys[16][64];
        size_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, r1)) {
            if (n < 16 && lua_type(L, -2) == LUA_TSTRING)
                snprintf(keys[n++], sizeof keys[0], "%s", lua_tostring(L, -2));
            lua_pop(L, 1);
        }
        qsort(keys, n, sizeof keys[0], cmp_key);
        size_t len = 0;
        msg[0] = '\0';
        for (size_t i = 0; i < n && len < cap; i++) {
            lua_getfield(L, r1, keys[i]);
            const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "invalid";
            len += (size_t)snprintf(msg + len, cap - len, "%s%s: %s", i ? "; " : "", keys[i], m);
            lua_pop(L, 1);
        }
        if (where && n > 0)
            snprintf(where, wcap, "%s", keys[0]);
        return n > 0;
    }
    if (lua_type(L, r1) == LUA_TBOOLEAN && !lua_toboolean(L, r1)) {
        snprintf(msg, cap, "rejected by %s", fn);
        return 1;
    }
    return 0;
}

/* ---- the hooks ------------------------------------------------------------------------------ */

enum { PH_IDLE = 0, PH_RUNNING, PH_CLOSED, PH_ORPHANED };

typedef struct lx_task {
    atomic_int phase;
    cbx_sandbox *sb;  /* made by before (when the file has one) or by run */
    json_t *params;   /* run's private copy when before made no sandbox */
    uint32_t attempt; /* copied on the loop thread: run does not read the execution */
    char execution_id[40];
} lx_task;

static const lx_type *type_of(const cbx_task *t)
{
    return cbx_task_type(t)->data;
}

static void lx_release(lx_task *s)
{
    cbx_sandbox_free(s->sb);
    s->sb = NULL;
    json_decref(s->params);
    s->params = NULL;
}

static int lx_validate(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    const lx_type *lt = type->data;
    cbx_sandbox *sb = NULL;
    char msg[512];
    if (lx_open(lt, params, NULL, 0, NULL, NULL, &sb, msg, sizeof msg))
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "validate: %s", msg);
    invoke_args a = {.fn = "validate", .nres = 2};
    int rc = 0;
    if (lx_invoke(lt, sb, &a, msg, sizeof msg)) {
        rc = cbx_err_set(err, CBX_EINVAL_CONFIG, "validate: %s", msg);
    } else {
        char where[64];
        if (refusal(cbx_sandbox_lua(sb), "validate", 1, msg, sizeof msg, where, sizeof where))
            rc = cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0, "%s", msg);
    }
    cbx_sandbox_free(sb);
    return rc;
}

static int lx_before(cbx_task *t, cbx_err *err)
{
    const lx_type *lt = type_of(t);
    lx_task *s = cbx_task_state(t);
    s->attempt = cbx_task_attempt(t);
    snprintf(s->execution_id, sizeof s->execution_id, "%s", cbx_task_execution_id(t));
    if (!lt->has_before) {
        s->params = json_deep_copy(cbx_task_params(t));
        return s->params ? 0 : cbx_err_set(err, -ENOMEM, "out of memory");
    }
    char msg[512];
    if (lx_open(lt, cbx_task_params(t), t, s->attempt, s->execution_id, t, &s->sb, msg, sizeof msg))
        return cbx_err_set(err, CBX_EFAILED, "%s", msg);
    invoke_args a = {.fn = "before", .nres = 2, .with_ctx = 1};
    int rc = 0;
    if (lx_invoke(lt, s->sb, &a, msg, sizeof msg)) {
        rc = cbx_err_set(err, CBX_EFAILED, "%s", msg);
    } else {
        lua_State *L = cbx_sandbox_lua(s->sb);
        if (refusal(L, "before", 0, msg, sizeof msg, NULL, 0))
            rc = cbx_err_set(err, CBX_EFAILED, "%s", msg);
        lua_settop(L, 0);
    }
    if (rc)
        lx_release(s);
    return rc;
}

static int of_type(const json_t *v, cbx_param_type t)
{
    switch (t) {
    case CBX_PARAM_STRING:
        return json_is_string(v);
    case CBX_PARAM_INTEGER:
        return json_is_integer(v);
    case CBX_PARAM_NUMBER:
        return json_is_number(v);
    case CBX_PARAM_BOOLEAN:
        return json_is_boolean(v);
    case CBX_PARAM_ARRAY:
        return json_is_array(v);
    case CBX_PARAM_OBJECT:
        return json_is_object(v);
    default:
        return 1;
    }
}

/* 1 when outputs keep the declaration's promise (every key declared, of its type or null where
 * nullable, every key not optional there); else 0 with the first broken promise in why. */
static int outputs_keep_promise(const cbx_output *decl, const json_t *outputs, char *why,
                                size_t len)
{
    if (!json_is_object(outputs)) {
        snprintf(why, len, "expected a table of outputs");
        return 0;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)outputs, k, v)
    {
        const cbx_output *o = cbx_output_find(decl, k);
        if (!o) {
            snprintf(why, len, "'%.100s' is not declared", k);
            return 0;
        }
        if (!of_type(v, o->type) && !(json_is_null(v) && o->nullable)) {
            snprintf(why, len, "'%s' is not %s", k, cbx_param_type_name(o->type));
            return 0;
        }
    }
    for (const cbx_output *o = decl; o->name; o++)
        if (!o->optional && !json_object_get(outputs, o->name)) {
            snprintf(why, len, "'%s' is missing", o->name);
            return 0;
        }
    return 1;
}

/* run's results (outputs, error, metadata) at the top of the stack. */
static cbx_outcome run_results(const lx_type *lt, cbx_task *t, cbx_sandbox *sb, json_t **outputs,
                               json_t **metadata, cbx_err *err)
{
    lua_State *L = cbx_sandbox_lua(sb);
    int r1 = lua_gettop(L) - 2, r2 = r1 + 1, r3 = r1 + 2;
    cbx_err e;
    json_t *meta = NULL;
    if (lua_istable(L, r3)) {
        if (cbx_sandbox_to_json(L, r3, "metadata", &meta, &e)) {
            cbx_err_set(err, CBX_EFAILED, "%s: run returned bad metadata: %s", lt->chunk, e.msg);
            return CBX_OUTCOME_ERROR;
        }
        json_t *q = json_object_get(meta, "quality");
        if (json_is_number(q))
            cbx_task_set_quality(t, json_number_value(q));
    }
    json_t *lua = json_pack("{s:I, s:I}", "instructions", (json_int_t)cbx_sandbox_instructions(sb),
                            "memory_bytes", (json_int_t)cbx_sandbox_memory(sb));
    if (!meta)
        meta = json_object();
    if (meta && lua)
        json_object_set_new(meta, "lua", lua);
    else
        json_decref(lua);
    *metadata = meta;
    if (!lua_toboolean(L, r1) && lua_type(L, r2) == LUA_TSTRING) {
        cbx_err_set(err, CBX_EFAILED, "%s", lua_tostring(L, r2));
        return CBX_OUTCOME_ERROR;
    }
    if (lua_isnil(L, r1))
        return CBX_OUTCOME_SUCCESS;
    if (cbx_sandbox_to_json(L, r1, "outputs", outputs, &e)) {
        cbx_err_set(err, CBX_EFAILED, "%s: run returned a value that is not JSON: %s", lt->chunk,
                    e.msg);
        return CBX_OUTCOME_ERROR;
    }
    char why[300];
    if (lt->type.outputs && !outputs_keep_promise(lt->type.outputs, *outputs, why, sizeof why)) {
        cbx_err_set(err, CBX_EFAILED,
                    "%s: run returned outputs its definition does not declare: %s", lt->chunk, why);
        return CBX_OUTCOME_ERROR;
    }
    return CBX_OUTCOME_SUCCESS;
}

static cbx_outcome lx_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    const lx_type *lt = type_of(t);
    lx_task *s = cbx_task_state(t);
    int expected = PH_IDLE;
    if (!atomic_compare_exchange_strong(&s->phase, &expected, PH_RUNNING)) {
        cbx_err_set(err, CBX_ECANCELLED, "stopped before it ran");
        return CBX_OUTCOME_TIMEOUT;
    }
    char msg[512];
    cbx_outcome k = CBX_OUTCOME_ERROR;
    if (!s->sb &&
        lx_open(lt, s->params, t, s->attempt, s->execution_id, t, &s->sb, msg, sizeof msg)) {
        cbx_err_set(err, CBX_EFAILED, "%s", msg);
        goto out;
    }
    cbx_sandbox_set_interrupt(s->sb, lx_interrupted, t);
    cbx_sandbox_set_instruction_limit(s->sb, lt->run_budget);
    invoke_args a = {.fn = "run", .nres = 3, .with_ctx = 1};
    int rc = lx_invoke(lt, s->sb, &a, msg, sizeof msg);
    cbx_sandbox_set_instruction_limit(s->sb, lt->hook_budget);
    if (rc) {
        cbx_err_set(err, rc, "%s", msg);
        k = rc == CBX_ECANCELLED ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR;
        goto out;
    }
    k = run_results(lt, t, s->sb, outputs, metadata, err);
    lua_settop(cbx_sandbox_lua(s->sb), 0);
out:
    expected = PH_RUNNING;
    if (!atomic_compare_exchange_strong(&s->phase, &expected, PH_IDLE))
        lx_release(s); /* after has been and gone: this was the last use */
    return k;
}

/* Run the file's after(p, outputs, info) in sb and apply what it returns to r. */
static void run_after(const lx_type *lt, cbx_sandbox *sb, uint32_t attempt, cbx_task_result *r)
{
    json_t *info = json_pack("{s:s, s:s, s:i, s:f}", "outcome", cbx_outcome_name(r->outcome),
                             "error", r->error, "attempt", (int)attempt, "quality", r->quality);
    invoke_args a = {.fn = "after", .nres = 2, .extra = {r->outputs, info}, .nextra = 2};
    char msg[512];
    cbx_sandbox_set_instruction_limit(sb, lt->hook_budget);
    int rc = lx_invoke(lt, sb, &a, msg, sizeof msg);
    json_decref(info);
    if (rc) {
        r->outcome = CBX_OUTCOME_ERROR;
        snprintf(r->error, sizeof r->error, "after: %.480s", msg);
        return;
    }
    lua_State *L = cbx_sandbox_lua(sb);
    if (r->outcome == CBX_OUTCOME_SUCCESS) {
        if (refusal(L, "after", 0, msg, sizeof msg, NULL, 0)) {
            r->outcome = CBX_OUTCOME_ERROR;
            snprintf(r->error, sizeof r->error, "%s", msg);
        } else if (!lua_isnil(L, -2)) {
            json_t *out = NULL;
            cbx_err e;
            if (cbx_sandbox_to_json(L, -2, "outputs", &out, &e)) {
                r->outcome = CBX_OUTCOME_ERROR;
                snprintf(r->error, sizeof r->error,
                         "after returned a value that is not JSON: %.400s", e.msg);
            } else {
                json_decref(r->outputs);
                r->outputs = out;
            }
        }
    }
    lua_settop(L, 0);
}

static void lx_after(cbx_task *t, cbx_task_result *r)
{
    const lx_type *lt = type_of(t);
    lx_task *s = cbx_task_state(t);
    uint32_t attempt = cbx_task_attempt(t);
    for (;;) {
        int ph = atomic_load(&s->phase);
        if (ph == PH_IDLE && atomic_compare_exchange_strong(&s->phase, &ph, PH_CLOSED)) {
            /* run is over (or never ran): the attempt's sandbox is ours */
            if (lt->has_after) {
                char msg[512];
                if (!s->sb && lx_open(lt, cbx_task_params(t), NULL, attempt,
                                      cbx_task_execution_id(t), t, &s->sb, msg, sizeof msg)) {
                    r->outcome = CBX_OUTCOME_ERROR;
                    snprintf(r->error, sizeof r->error, "after: %.480s", msg);
                } else {
                    cbx_sandbox_set_interrupt(s->sb, NULL, NULL);
                    run_after(lt, s->sb, attempt, r);
                }
            }
            lx_release(s);
            return;
        }
        if (ph == PH_RUNNING && atomic_compare_exchange_strong(&s->phase, &ph, PH_ORPHANED)) {
            /* run goes on past a timeout and will clean up; after gets a sandbox of its own */
            if (lt->has_after) {
                cbx_sandbox *sb = NULL;
                char msg[512];
                if (lx_open(lt, cbx_task_params(t), NULL, attempt, cbx_task_execution_id(t), t, &sb,
                            msg, sizeof msg) == 0)
                    run_after(lt, sb, attempt, r);
                cbx_sandbox_free(sb);
            }
            return;
        }
        if (ph == PH_CLOSED || ph == PH_ORPHANED)
            return;
    }
}

/* ---- loading: the definition ----------------------------------------------------------------- */

typedef struct parse_ctx {
    lx_type *lt;
    const char *name, *summary;
    cbx_param *params;
    size_t nparams;
    cbx_output *outputs; /* NULL: not declared */
    char msg[400];       /* why the definition is refused */
} parse_ctx;

static _Noreturn void parse_fail(lua_State *L, parse_ctx *pc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Refuse the definition: the message goes to pc, a Lua error unwinds to the protected call. */
static _Noreturn void parse_fail(lua_State *L, parse_ctx *pc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pc->msg, sizeof pc->msg, fmt, ap);
    va_end(ap);
    lua_pushliteral(L, "bad definition");
    lua_error(L);
    abort(); /* lua_error does not return */
}

static void *parse_own(lua_State *L, parse_ctx *pc, void *p)
{
    if (!own(pc->lt, p))
        parse_fail(L, pc, "out of memory");
    return p;
}

static const char *parse_strdup(lua_State *L, parse_ctx *pc, const char *s)
{
    return parse_own(L, pc, strdup(s));
}

/* Refuse any key of the table at idx that is not in known; prefix names the table. */
static void check_keys(lua_State *L, parse_ctx *pc, int idx, const char *const *known,
                       const char *prefix)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            parse_fail(L, pc, "%s: a field name must be a string, not a %s", prefix,
                       luaL_typename(L, -1));
        const char *k = lua_tostring(L, -1);
        size_t best = 99, at = 0, i;
        for (i = 0; known[i]; i++) {
            if (strcmp(k, known[i]) == 0)
                break;
            size_t d = cbx__edit_distance(k, known[i]);
            if (d < best) {
                best = d;
                at = i;
            }
        }
        if (known[i])
            continue;
        if (cbx__close_enough(best, strlen(k)))
            parse_fail(L, pc, "%s: unknown field '%s'; did you mean '%s'?", prefix, k, known[at]);
        char list[256] = "";
        size_t len = 0;
        for (i = 0; known[i] && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", known[i]);
        parse_fail(L, pc, "%s: unknown field '%s' (known: %s)", prefix, k, list);
    }
}

static int parse_type_name(const char *s, cbx_param_type *out)
{
    for (int i = 0; i < CBX_PARAM_TYPE__COUNT; i++)
        if (strcmp(s, cbx_param_type_name((cbx_param_type)i)) == 0) {
            *out = (cbx_param_type)i;
            return 0;
        }
    return -1;
}

static cbx_param_type parse_type_field(lua_State *L, parse_ctx *pc, int idx, const char *field,
                                       const char *path, int required)
{
    int ty = lua_getfield(L, idx, field);
    cbx_param_type out = CBX_PARAM_ANY;
    if (ty == LUA_TNIL && !required) {
        lua_pop(L, 1);
        return out;
    }
    if (ty != LUA_TSTRING)
        parse_fail(L, pc,
                   "%s.%s: expected a type name (string, integer, number, boolean, array, "
                   "object, any), got %s",
                   path, field, lua_typename(L, ty));
    if (parse_type_name(lua_tostring(L, -1), &out))
        parse_fail(L, pc,
                   "%s.%s: unknown type '%s' (expected string, integer, number, boolean, array, "
                   "object or any)",
                   path, field, lua_tostring(L, -1));
    lua_pop(L, 1);
    return out;
}

static int opt_bool(lua_State *L, parse_ctx *pc, int idx, const char *field, const char *path)
{
    int ty = lua_getfield(L, idx, field);
    if (ty != LUA_TNIL && ty != LUA_TBOOLEAN)
        parse_fail(L, pc, "%s.%s: expected a boolean, got %s", path, field, lua_typename(L, ty));
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static const char *opt_string(lua_State *L, parse_ctx *pc, int idx, const char *field,
                              const char *path)
{
    int ty = lua_getfield(L, idx, field);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (ty != LUA_TSTRING)
        parse_fail(L, pc, "%s%s%s: expected a string, got %s", path, path[0] ? "." : "", field,
                   lua_typename(L, ty));
    const char *s = parse_strdup(L, pc, lua_tostring(L, -1));
    lua_pop(L, 1);
    return s;
}

static int opt_number(lua_State *L, parse_ctx *pc, int idx, const char *field, const char *path,
                      double *out)
{
    int ty = lua_getfield(L, idx, field);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (ty != LUA_TNUMBER)
        parse_fail(L, pc, "%s.%s: expected a number, got %s", path, field, lua_typename(L, ty));
    *out = (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return 1;
}

static const char *const param_fields[] = {"name",        "type",  "required", "default",
                                           "description", "enum",  "min",      "max",
                                           "secret",      "items", NULL};

/* The parameter described by the table at idx. */
static void parse_param(lua_State *L, parse_ctx *pc, int idx, const char *name, cbx_param *p)
{
    char path[128];
    snprintf(path, sizeof path, "params.%s", name);
    check_keys(L, pc, idx, param_fields, path);
    p->name = parse_strdup(L, pc, name);
    p->type = parse_type_field(L, pc, idx, "type", path, 1);
    p->required = opt_bool(L, pc, idx, "required", path);
    p->secret = opt_bool(L, pc, idx, "secret", path);
    p->description = opt_string(L, pc, idx, "description", path);
    p->has_min = opt_number(L, pc, idx, "min", path, &p->min);
    p->has_max = opt_number(L, pc, idx, "max", path, &p->max);
    p->items = parse_type_field(L, pc, idx, "items", path, 0);
    lua_getfield(L, idx, "items");
    if (!lua_isnil(L, -1) && p->type != CBX_PARAM_ARRAY)
        parse_fail(L, pc, "%s.items: only arrays have items", path);
    lua_pop(L, 1);

    if (lua_getfield(L, idx, "default") != LUA_TNIL) {
        json_t *v = NULL;
        cbx_err e;
        if (cbx_sandbox_to_json(L, -1, "default", &v, &e))
            parse_fail(L, pc, "%s.%s", path, e.msg);
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(v);
        if (!text)
            parse_fail(L, pc, "out of memory");
        p->default_json = parse_own(L, pc, text);
    }
    lua_pop(L, 1);

    int ty = lua_getfield(L, idx, "enum");
    if (ty != LUA_TNIL) {
        if (ty != LUA_TTABLE)
            parse_fail(L, pc, "%s.enum: expected a list of strings, got %s", path,
                       lua_typename(L, ty));
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        const char **vals = parse_own(L, pc, calloc((size_t)n + 1, sizeof *vals));
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
                parse_fail(L, pc, "%s.enum[%lld]: expected a string, got %s", path, (long long)i,
                           luaL_typename(L, -1));
            vals[i - 1] = parse_strdup(L, pc, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        p->enum_values = vals;
    }
    lua_pop(L, 1);
}

/* params = {name = {...}, ...} (sorted by name) or {{name = "x", ...}, ...} (in order). */
static void parse_params(lua_State *L, parse_ctx *pc, int idx)
{
    size_t seq = lua_rawlen(L, idx);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        lua_pop(L, 1);
    }
    if (n > 256)
        parse_fail(L, pc, "params: at most 256 parameters");
    pc->params = parse_own(L, pc, calloc(n + 1, sizeof *pc->params));
    pc->nparams = n;
    if (seq == n && n > 0) {
        for (size_t i = 0; i < n; i++) {
            if (lua_rawgeti(L, idx, (lua_Integer)i + 1) != LUA_TTABLE)
                parse_fail(L, pc, "params[%zu]: expected a table, got %s", i + 1,
                           luaL_typename(L, -1));
            if (lua_getfield(L, -1, "name") != LUA_TSTRING)
                parse_fail(L, pc, "params[%zu].name: a parameter in a list needs a name", i + 1);
            char name[64];
            snprintf(name, sizeof name, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
            parse_param(L, pc, lua_gettop(L), name, &pc->params[i]);
            lua_pop(L, 1);
        }
        return;
    }
    const char **names = parse_own(L, pc, calloc(n + 1, sizeof *names));
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            parse_fail(L, pc, "params: a parameter name must be a string, not a %s",
                       luaL_typename(L, -1));
        names[k++] = parse_strdup(L, pc, lua_tostring(L, -1));
    }
    qsort(names, n, sizeof *names, cbx__cmp_strings);
    for (size_t i = 0; i < n; i++) {
        if (lua_getfield(L, idx, names[i]) != LUA_TTABLE)
            parse_fail(L, pc, "params.%s: expected a table such as {type = \"string\"}, got %s",
                       names[i], luaL_typename(L, -1));
        parse_param(L, pc, lua_gettop(L), names[i], &pc->params[i]);
        lua_pop(L, 1);
    }
}

static const char *const output_fields[] = {"name",     "type",     "description",
                                            "optional", "nullable", NULL};

/* The output described by the table at idx. */
static void parse_output(lua_State *L, parse_ctx *pc, int idx, const char *name, cbx_output *o)
{
    char path[128];
    snprintf(path, sizeof path, "outputs.%s", name);
    check_keys(L, pc, idx, output_fields, path);
    o->name = parse_strdup(L, pc, name);
    o->type = parse_type_field(L, pc, idx, "type", path, 1);
    o->description = opt_string(L, pc, idx, "description", path);
    o->optional = opt_bool(L, pc, idx, "optional", path);
    o->nullable = opt_bool(L, pc, idx, "nullable", path);
}

/* outputs = {name = {...}, ...} (sorted by name) or {{name = "x", ...}, ...} (in order); {} is a
 * declaration too: no outputs at all. */
static void parse_outputs(lua_State *L, parse_ctx *pc, int idx)
{
    size_t seq = lua_rawlen(L, idx), n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        lua_pop(L, 1);
    }
    if (n > 256)
        parse_fail(L, pc, "outputs: at most 256 outputs");
    pc->outputs = parse_own(L, pc, calloc(n + 1, sizeof *pc->outputs));
    const char **names = parse_own(L, pc, calloc(n + 1, sizeof *names));
    if (seq == n && n > 0) {
        for (size_t i = 0; i < n; i++) {
            if (lua_rawgeti(L, idx, (lua_Integer)i + 1) != LUA_TTABLE)
                parse_fail(L, pc, "outputs[%zu]: expected a table, got %s", i + 1,
                           luaL_typename(L, -1));
            if (lua_getfield(L, -1, "name") != LUA_TSTRING)
                parse_fail(L, pc, "outputs[%zu].name: an output in a list needs a name", i + 1);
            names[i] = parse_strdup(L, pc, lua_tostring(L, -1));
            lua_pop(L, 1);
            for (size_t j = 0; j < i; j++)
                if (strcmp(names[j], names[i]) == 0)
                    parse_fail(L, pc, "outputs[%zu]: '%s' is declared twice", i + 1, names[i]);
            parse_output(L, pc, lua_gettop(L), names[i], &pc->outputs[i]);
            lua_pop(L, 1);
        }
        return;
    }
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            parse_fail(L, pc, "outputs: an output name must be a string, not a %s",
                       luaL_typename(L, -1));
        names[k++] = parse_strdup(L, pc, lua_tostring(L, -1));
    }
    qsort(names, n, sizeof *names, cbx__cmp_strings);
    for (size_t i = 0; i < n; i++) {
        if (lua_getfield(L, idx, names[i]) != LUA_TTABLE)
            parse_fail(L, pc, "outputs.%s: expected a table such as {type = \"string\"}, got %s",
                       names[i], luaL_typename(L, -1));
        parse_output(L, pc, lua_gettop(L), names[i], &pc->outputs[i]);
        lua_pop(L, 1);
    }
}

static const char *const def_fields[] = {"name",   "summary", "params", "outputs", "validate",
                                         "before", "run",     "after",  "limits",  NULL};
static const char *const limit_fields[] = {"instructions", "memory", NULL};

static int opt_function(lua_State *L, parse_ctx *pc, int idx, const char *field, int required)
{
    int ty = lua_getfield(L, idx, field);
    lua_pop(L, 1);
    if (ty == LUA_TNIL && !required)
        return 0;
    if (ty != LUA_TFUNCTION)
        parse_fail(L, pc, "%s: expected a function, got %s", field, lua_typename(L, ty));
    return 1;
}

static int parse_definition(lua_State *L)
{
    parse_ctx *pc = lua_touserdata(L, 1);
    lx_type *lt = pc->lt;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &def_key) != LUA_TTABLE)
        parse_fail(L, pc, "the file must return executor { ... }");
    int def = lua_gettop(L);
    check_keys(L, pc, def, def_fields, "executor");
    if (lua_getfield(L, def, "name") != LUA_TSTRING)
        parse_fail(L, pc, "name: required, a string such as \"word_count\"");
    pc->name = parse_strdup(L, pc, lua_tostring(L, -1));
    lua_pop(L, 1);
    pc->summary = opt_string(L, pc, def, "summary", "");
    opt_function(L, pc, def, "run", 1);
    lt->has_validate = opt_function(L, pc, def, "validate", 0);
    lt->has_before = opt_function(L, pc, def, "before", 0);
    lt->has_after = opt_function(L, pc, def, "after", 0);

    int ty = lua_getfield(L, def, "params");
    if (ty == LUA_TTABLE)
        parse_params(L, pc, lua_gettop(L));
    else if (ty != LUA_TNIL)
        parse_fail(L, pc, "params: expected a table, got %s", lua_typename(L, ty));
    lua_pop(L, 1);

    ty = lua_getfield(L, def, "outputs");
    if (ty == LUA_TTABLE)
        parse_outputs(L, pc, lua_gettop(L));
    else if (ty != LUA_TNIL)
        parse_fail(L, pc, "outputs: expected a table, got %s", lua_typename(L, ty));
    lua_pop(L, 1);

    ty = lua_getfield(L, def, "limits");
    if (ty == LUA_TTABLE) {
        int lim = lua_gettop(L);
        check_keys(L, pc, lim, limit_fields, "limits");
        double v;
        if (opt_number(L, pc, lim, "instructions", "limits", &v)) {
            if (!(v >= 1 && v <= 1e15))
                parse_fail(L, pc, "limits.instructions: expected 1 to 1e15, got %g", v);
            lt->hook_budget = lt->run_budget = (uint64_t)v;
        }
        if (opt_number(L, pc, lim, "memory", "limits", &v)) {
            if (!(v >= 65536 && v <= 1e12))
                parse_fail(L, pc, "limits.memory: expected 65536 to 1e12 bytes, got %g", v);
            lt->memory = (size_t)v;
        }
    } else if (ty != LUA_TNIL) {
        parse_fail(L, pc, "limits: expected a table, got %s", lua_typename(L, ty));
    }
    lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &line_key);
    lt->def_line = (int)lua_tointeger(L, -1);
    return 0;
}

int cbx_lua_executor_load_string(cbx_registry *r, const char *name, const char *src, size_t len,
                                 cbx_err *err)
{
    if (!r || !name || !src)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "no registry, name or text given");
    lx_type *lt = calloc(1, sizeof *lt);
    if (!lt || !(lt->chunk = strdup(name)) || !(lt->src = malloc(len + 1))) {
        lx_type_free(lt);
        return cbx_err_set(err, -ENOMEM, "out of memory");
    }
    memcpy(lt->src, src, len);
    lt->src[len] = '\0';
    lt->src_len = len;
    lt->hook_budget = CBX_SANDBOX_DEFAULT_INSTRUCTIONS;
    lt->run_budget = CBX_SANDBOX_UNLIMITED;
    lt->memory = CBX_SANDBOX_DEFAULT_MEMORY;

    /* run the file once, in a sandbox of its own, and read the definition */
    cbx_sandbox *sb = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    int rc = cbx_sandbox_new(&sb, NULL, &e);
    if (rc == 0)
        rc = cbx_sandbox_pcall_c(sb, install_executor_fn, NULL, 0, &e);
    if (rc == 0)
        rc = cbx_sandbox_load(sb, lt->chunk, lt->src, lt->src_len, &e);
    if (rc == CBX_EPARSE) {
        if (err)
            *err = e;
        goto fail;
    }
    if (rc == 0)
        rc = run_chunk(sb, &e);
    if (rc) {
        rc = rc == -ENOMEM ? rc : CBX_EINVAL_CONFIG;
        if (e.line > 0)
            cbx_err_set_at(err, rc, name, e.line, 0, "the file failed when run: %s", e.msg);
        else
            cbx_err_set_at(err, rc, name, 0, 0, "%s", e.msg);
        goto fail;
    }
    lua_State *L = cbx_sandbox_lua(sb);
    parse_ctx pc = {.lt = lt};
    rc = cbx_sandbox_pcall_c(sb, parse_definition, &pc, 0, &e);
    if (rc) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &line_key);
        int line = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        cbx_err_set_at(err, CBX_EINVAL_CONFIG, name, line, 0, "%s", pc.msg[0] ? pc.msg : e.msg);
        rc = CBX_EINVAL_CONFIG;
        goto fail;
    }
    cbx_sandbox_free(sb);
    sb = NULL;

    char summary[256];
    if (!pc.summary) {
        const char *base = strrchr(name, '/');
        snprintf(summary, sizeof summary, "Lua executor defined in %s", base ? base + 1 : name);
        pc.summary = own_str(lt, summary);
    }
    static const cbx_param no_params[] = {{.name = NULL}};
    lt->type = (cbx_executor_type){
        .abi = CBX_EXECUTOR_ABI,
        .name = pc.name,
        .summary = pc.summary ? pc.summary : "Lua executor",
        .params = pc.params ? pc.params : no_params,
        .task_size = sizeof(lx_task),
        .data = lt,
        .validate = lt->has_validate ? lx_validate : NULL,
        .before = lx_before,
        .after = lx_after,
        .run = lx_run,
        .destroy = lx_destroy,
        .outputs = pc.outputs,
    };
    rc = cbx_registry_register(r, &lt->type, &e);
    if (rc) {
        cbx_err_set_at(err, rc, name, lt->def_line, 0, "%s", e.msg);
        goto fail;
    }
    return 0;
fail:
    cbx_sandbox_free(sb);
    lx_type_free(lt);
    return rc;
}

int cbx_lua_executor_load(cbx_registry *r, const char *path, cbx_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return cbx_err_set_at(err, -e, path, 0, 0, "cannot read: %s", strerror(e));
    }
    char *buf = malloc(MAX_FILE_BYTES + 1);
    if (!buf) {
        fclose(f);
        return cbx_err_set(err, -ENOMEM, "out of memory");
    }
    size_t len = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    int rd_err = ferror(f);
    fclose(f);
    int rc;
    if (rd_err)
        rc = cbx_err_set_at(err, -EIO, path, 0, 0, "cannot read: %s", strerror(EIO));
    else if (len > MAX_FILE_BYTES)
        rc = cbx_err_set_at(err, -EFBIG, path, 0, 0, "larger than %u bytes", MAX_FILE_BYTES);
    else
        rc = cbx_lua_executor_load_string(r, path, buf, len, err);
    free(buf);
    return rc;
}

int cbx_lua_executor_load_path(cbx_registry *r, const char *dirs, cbx_err *err)
{
    if (!dirs)
        return 0;
    int loaded = 0;
    const char *p = dirs;
    while (*p) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        char dir[1024];
        snprintf(dir, sizeof dir, "%.*s", (int)(dlen < sizeof dir ? dlen : sizeof dir - 1), p);
        p += dlen + (end ? 1 : 0);
        if (!dir[0])
            continue;
        struct dirent **list = NULL;
        int n = scandir(dir, &list, NULL, alphasort);
        if (n < 0)
            continue; /* missing or unreadable directories are skipped */
        int rc = 0;
        for (int i = 0; i < n; i++) {
            const char *fn = list[i]->d_name;
            size_t fl = strlen(fn);
            if (rc == 0 && fl > 4 && strcmp(fn + fl - 4, ".lua") == 0) {
                char path[2048];
                snprintf(path, sizeof path, "%s/%s", dir, fn);
                struct stat st;
                if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                    rc = cbx_lua_executor_load(r, path, err);
                    if (rc == 0)
                        loaded++;
                }
            }
            free(list[i]);
        }
        free(list);
        if (rc)
            return rc;
    }
    return loaded;
}
