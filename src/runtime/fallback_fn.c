/* A policy's fallback.function, resolved when a request is submitted: a registered function
 * (called directly) or a blocking executor type of the runtime's registry (one attempt run on
 * the calling thread: before, run, after). Anything else refuses the request. */
#include "runtime/runtime_internal.h"

#include "executors/function_internal.h"
#include "runtime/builtins.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fb_target {
    const cbx_executor_type *type; /* NULL: a registered function */
    char name[64];
} fb_target;

static int call_function(const json_t *input, json_t **out, void *ud)
{
    fb_target *f = ud;
    cbx_err e;
    cbx_err_clear(&e);
    return cbx__function_call_now(f->name, input, out, &e);
}

/* One attempt of a blocking type with those of the failed call's parameters that its schema
 * declares (its defaults applied), outside any execution: no journal row, no policy, no
 * deadline. */
static int call_type(const json_t *input, json_t **out, void *ud)
{
    fb_target *f = ud;
    const cbx_executor_type *type = f->type;
    /* the parameters its schema declares, of those the failed call had */
    json_t *given = json_object();
    if (!given)
        return -ENOMEM;
    for (const cbx_param *pp = type->params; pp && pp->name; pp++) {
        json_t *v = json_object_get(input, pp->name);
        if (v)
            json_object_set(given, pp->name, v);
    }
    json_t *params = NULL;
    cbx_diag d = {0};
    int r = cbx__schema_validate(type->params, NULL, given, &params, &d);
    json_decref(given);
    cbx_diag_clear(&d);
    if (r)
        return CBX_EFAILED;
    cbx_task *t = calloc(1, sizeof *t + type->task_size);
    if (!t) {
        json_decref(params);
        return -ENOMEM;
    }
    t->params = params;
    t->type = type;
    t->attempt = 1;
    t->deadline_ns = UINT64_MAX;
    t->quality = 1.0;
    snprintf(t->exec_id, sizeof t->exec_id, "fallback");
    cbx_err err;
    cbx_err_clear(&err);
    json_t *outputs = NULL, *meta = NULL;
    cbx_outcome k = CBX_OUTCOME_ERROR;
    if (!type->before || type->before(t, &err) >= 0)
        k = type->run(t, &outputs, &meta, &err);
    if (type->after) {
        cbx_task_result res = {.outcome = k, .outputs = outputs, .metadata = meta, .quality = 1.0};
        type->after(t, &res);
        k = res.outcome;
        outputs = res.outputs;
        meta = res.metadata;
    }
    json_decref(meta);
    json_decref(t->params);
    free(t->error);
    free(t);
    if (k != CBX_OUTCOME_SUCCESS || !outputs) {
        json_decref(outputs);
        return CBX_EFAILED;
    }
    *out = outputs;
    return 0;
}

int cbx__fallback_fn_resolve(cbx_runtime *rt, cbx_policy *p, char *why, size_t len)
{
    if (!p || !cbx_policy_fallback_pending(p))
        return 0;
    const char *name = cbx_policy_fallback_function(p);
    fb_target *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    snprintf(f->name, sizeof f->name, "%s", name);
    cbx_fallback_fn fn = NULL;
    int kind = cbx__function_kind(name);
    const cbx_executor_type *type = cbx_registry_find(rt->registry, name);
    if (kind == 1) {
        fn = call_function;
    } else if (type && type->run) {
        f->type = type;
        fn = call_type;
    }
    if (!fn) {
        free(f);
        if (kind == 0)
            snprintf(why, len,
                     "policy '%s': fallback.function: '%s' is an asynchronous function; a "
                     "fallback function must be blocking (call, not start)",
                     cbx_policy_name(p), name);
        else if (type)
            snprintf(why, len,
                     "policy '%s': fallback.function: executor type '%s' runs asynchronously; "
                     "only registered functions and blocking types (Lua, plugins with run) can "
                     "answer as a fallback",
                     cbx_policy_name(p), name);
        else
            snprintf(why, len,
                     "policy '%s': fallback.function: '%s' is neither a registered function nor "
                     "an executor type",
                     cbx_policy_name(p), name);
        return CBX_EINVAL_CONFIG;
    }
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_policy_fallback_resolve(p, fn, f, free, &err);
    if (r) {
        free(f);
        snprintf(why, len, "policy '%s': %s: %s", cbx_policy_name(p),
                 err.where[0] ? err.where : "fallback.function", err.msg);
        return r;
    }
    return 0;
}

int cbx__fallback_default_key(const cbx_execution *ex, char **out)
{
    *out = NULL;
    char *canon = json_dumps(ex->params, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!canon)
        return -ENOMEM;
    size_t n = strlen(ex->type->name) + 1 + strlen(canon) + 1;
    char *k = malloc(n);
    if (k)
        snprintf(k, n, "%s %s", ex->type->name, canon);
    free(canon);
    if (!k)
        return -ENOMEM;
    *out = k;
    return 0;
}
