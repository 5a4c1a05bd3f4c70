/* Tools are executors: each tool names a registered executor type; the model sees the type's
 * parameter schema as JSON Schema (less the parameters the tool fixes), or the tool's own
 * "arguments" schema whose values fill the tool's templated parameters ({{ args.x }}). A call
 * the model makes runs as a child execution on the same runtime, under the tool's policy. */
#define _GNU_SOURCE
#include "executors/llm/llm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbx/policy.h"
#include "cbx/registry.h"
#include "cbx/template.h"

#define RESULT_MAX (16u << 10) /* bytes of a tool's outputs given back to the model */

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

int cbx__llm_tools_validate(const json_t *params, cbx_err *err)
{
    static const char *const keys[] = {"name",   "description", "executor",          "params",
                                       "policy", "arguments",   "fallback_response", NULL};
    const json_t *tools = json_object_get(params, "tools");
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        if (!json_is_object(t))
            return cbx__llm_invalid(err, "tools[%zu]: expected an object", i);
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)t, k, v)
        {
            int known = 0;
            for (size_t j = 0; keys[j]; j++)
                known |= strcmp(k, keys[j]) == 0;
            if (!known)
                return cbx__llm_invalid(err,
                                        "tools[%zu]: unknown key '%s' (expected name, "
                                        "description, executor, params, policy, arguments, "
                                        "fallback_response)",
                                        i, k);
        }
        const char *name = json_string_value(json_object_get(t, "name"));
        if (!name || !name_ok(name))
            return cbx__llm_invalid(err,
                                    "tools[%zu].name: expected 1 to 64 of "
                                    "[A-Za-z0-9_-]",
                                    i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(name,
                       json_string_value(json_object_get(json_array_get(tools, j), "name"))) == 0)
                return cbx__llm_invalid(err, "tools[%zu].name: '%s' is also tools[%zu]'s", i, name,
                                        j);
        if (!json_is_string(json_object_get(t, "executor")))
            return cbx__llm_invalid(err, "tools[%zu].executor: required, an executor type", i);
        const json_t *p = json_object_get(t, "params");
        if (p && !json_is_object(p))
            return cbx__llm_invalid(err, "tools[%zu].params: expected an object", i);
        const json_t *a = json_object_get(t, "arguments");
        const char *aty = json_string_value(json_object_get(a, "type"));
        if (a && (!json_is_object(a) || !aty || strcmp(aty, "object") != 0))
            return cbx__llm_invalid(err,
                                    "tools[%zu].arguments: expected a JSON Schema of "
                                    "type object (a model takes only objects as arguments)",
                                    i);
        const json_t *d = json_object_get(t, "description");
        if (d && !json_is_string(d))
            return cbx__llm_invalid(err, "tools[%zu].description: expected a string", i);
        const json_t *pol = json_object_get(t, "policy");
        if (pol) {
            cbx_policy_opts o;
            cbx_policy_opts_default(&o);
            cbx_err e;
            cbx_err_clear(&e);
            if (cbx_policy_opts_parse(&o, pol, &e) != 0)
                return cbx__llm_invalid(err, "tools[%zu].policy%s%.100s: %.300s", i,
                                        e.where[0] ? "." : "", e.where, e.msg);
        }
        if (p && cbx_template_check(p, NULL) != 0)
            return cbx__llm_invalid(err, "tools[%zu].params: a template does not parse", i);
    }
    return 0;
}

/* The type's schema less the parameters the tool fixes. */
static json_t *exposed_schema(const cbx_executor_type *type, const json_t *fixed)
{
    json_t *s = cbx_schema_to_json(type->params);
    json_t *props = json_object_get(s, "properties");
    json_t *req = json_object_get(s, "required");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)fixed, k, v)
    {
        json_object_del(props, k);
        for (size_t i = 0; i < json_array_size(req); i++)
            if (strcmp(json_string_value(json_array_get(req, i)), k) == 0)
                json_array_remove(req, i--);
    }
    json_object_del(s, "$schema");
    json_object_del(s, "title");
    return s;
}

int cbx__llm_tools_load(llm_call *c, cbx_err *err)
{
    const json_t *tools = json_object_get(c->params, "tools");
    size_t n = json_array_size(tools);
    if (n == 0)
        return 0;
    c->tools = calloc(n, sizeof *c->tools);
    if (!c->tools)
        return cbx_err_set(err, -ENOMEM, "llm: out of memory");
    cbx_registry *reg = cbx_runtime_registry(c->rt);
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        llm_tool *tl = &c->tools[i];
        c->ntools = i + 1;
        tl->name = json_string_value(json_object_get(t, "name"));
        tl->spec = t;
        const char *ex = json_string_value(json_object_get(t, "executor"));
        tl->type = reg ? cbx_registry_find(reg, ex) : NULL;
        if (!tl->type)
            return cbx_err_set_at(err, CBX_EUNKNOWN_TYPE, "tools", 0, 0,
                                  "parameter 'tools[%zu].executor': unknown executor type '%s'", i,
                                  ex);
        const json_t *args = json_object_get(t, "arguments");
        tl->schema =
            args ? json_deep_copy(args) : exposed_schema(tl->type, json_object_get(t, "params"));
        const json_t *pol = json_object_get(t, "policy");
        if (pol) {
            cbx_err e;
            cbx_err_clear(&e);
            if (cbx_policy_new_json(&tl->policy, pol, NULL, &e) != 0)
                return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "tools", 0, 0,
                                      "parameter 'tools[%zu].policy': %s", i, e.msg);
        }
    }
    return 0;
}

void cbx__llm_tools_free(llm_call *c)
{
    for (size_t i = 0; i < c->ntools; i++) {
        json_decref(c->tools[i].schema);
        cbx_policy_free(c->tools[i].policy);
    }
    free(c->tools);
    c->tools = NULL;
    c->ntools = 0;
}

json_t *cbx__llm_tools_wire(const llm_call *c)
{
    if (c->ntools == 0)
        return NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < c->ntools; i++) {
        const llm_tool *t = &c->tools[i];
        const char *d = json_string_value(json_object_get(t->spec, "description"));
        json_array_append_new(out, json_pack("{s:s, s:{s:s, s:s, s:O}}", "type", "function",
                                             "function", "name", t->name, "description",
                                             d ? d : t->type->summary, "parameters", t->schema));
    }
    return out;
}

/* ---- arguments ----------------------------------------------------------------------------------
 */

static int type_matches(const char *want, const json_t *v)
{
    if (strcmp(want, "string") == 0)
        return json_is_string(v);
    if (strcmp(want, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(want, "number") == 0)
        return json_is_number(v);
    if (strcmp(want, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(want, "array") == 0)
        return json_is_array(v);
    if (strcmp(want, "object") == 0)
        return json_is_object(v);
    if (strcmp(want, "null") == 0)
        return json_is_null(v);
    return 1;
}

/* The arguments against a tool's own schema: an object, its required keys, each property's
 * type (and enum), no unknown keys when additionalProperties is false. 0, or -1 with why. */
static int check_arguments(const json_t *schema, const json_t *args, char *why, size_t len)
{
    const json_t *props = json_object_get(schema, "properties");
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(schema, "required"), i, r)
    {
        if (!json_object_get(args, json_string_value(r))) {
            snprintf(why, len, "missing required argument '%s'", json_string_value(r));
            return -1;
        }
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)args, k, v)
    {
        const json_t *p = json_object_get(props, k);
        if (!p) {
            if (json_is_false(json_object_get(schema, "additionalProperties"))) {
                snprintf(why, len, "unknown argument '%s'", k);
                return -1;
            }
            continue;
        }
        const json_t *ty = json_object_get(p, "type");
        int ok = 1;
        if (json_is_string(ty))
            ok = type_matches(json_string_value(ty), v);
        else if (json_is_array(ty)) {
            ok = 0;
            size_t j;
            const json_t *e;
            json_array_foreach(ty, j, e) ok |= type_matches(json_string_value(e), v);
        }
        if (!ok) {
            snprintf(why, len, "argument '%s': expected %s", k,
                     json_is_string(ty) ? json_string_value(ty) : "another type");
            return -1;
        }
        const json_t *en = json_object_get(p, "enum");
        if (json_is_array(en)) {
            int hit = 0;
            size_t j;
            const json_t *e;
            json_array_foreach(en, j, e) hit |= json_equal(e, v);
            if (!hit) {
                snprintf(why, len, "argument '%s': not one of the allowed values", k);
                return -1;
            }
        }
    }
    return 0;
}

/* The child's parameters for a call's arguments: the tool's params rendered with {args}, and
 * (without an arguments schema) the arguments merged under the fixed params. NULL with why. */
static json_t *child_params(llm_call *c, const llm_tool *t, const json_t *args, char *why,
                            size_t len)
{
    const json_t *fixed = json_object_get(t->spec, "params");
    const json_t *own = json_object_get(t->spec, "arguments");
    if (own && check_arguments(own, args, why, len) != 0)
        return NULL;
    json_t *out = NULL;
    if (fixed && cbx_template_has(fixed)) {
        cbx_template_env *env = NULL;
        cbx_err e;
        cbx_err_clear(&e);
        json_t *ctx = json_pack("{s:O}", "args", args);
        int r = cbx_template_env_new(&env, NULL, &e);
        if (r == 0)
            r = cbx_template_render(env, fixed, ctx, &out, &e);
        cbx_template_env_free(env);
        json_decref(ctx);
        if (r != 0) {
            snprintf(why, len, "the tool's params did not render: %.200s", e.msg);
            return NULL;
        }
    } else {
        out = fixed ? json_deep_copy(fixed) : json_object();
    }
    if (!own) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)args, k, v)
        {
            if (!json_object_get(out, k))
                json_object_set(out, k, (json_t *)v);
        }
    }
    cbx_diag d = {0};
    if (cbx_registry_validate(cbx_runtime_registry(c->rt), t->type->name, out, NULL, &d) != 0) {
        cbx_err e;
        cbx_err_clear(&e);
        cbx_diag_first(&d, &e);
        snprintf(why, len, "arguments refused by the %.40s schema: %.200s", t->type->name, e.msg);
        cbx_diag_clear(&d);
        json_decref(out);
        return NULL;
    }
    cbx_diag_clear(&d);
    return out;
}

/* ---- running calls ------------------------------------------------------------------------------
 */

static void set_result(llm_call *c, size_t i, const json_t *call, const char *content)
{
    json_array_set_new(c->round_results, i,
                       json_pack("{s:s, s:O, s:O, s:s}", "role", "tool", "tool_call_id",
                                 json_object_get(call, "id"), "name", json_object_get(call, "name"),
                                 "content", content));
}

static void refuse(llm_call *c, size_t i, const json_t *call, const char *why)
{
    c->tool_errors++;
    json_t *r = json_pack("{s:s}", "error", why);
    char *s = json_dumps(r, JSON_COMPACT);
    set_result(c, i, call, s ? s : "{\"error\":\"refused\"}");
    free(s);
    json_decref(r);
    const char *at = json_string_value(json_object_get(call, "arguments"));
    json_t *pa = at ? json_loads(at, JSON_DECODE_ANY, NULL) : NULL;
    json_array_append_new(c->tool_calls, json_pack("{s:O, s:O, s:o, s:b, s:s, s:s}", "id",
                                                   json_object_get(call, "id"), "name",
                                                   json_object_get(call, "name"), "arguments",
                                                   pa ? pa : json_string(at ? at : ""), "ok", 0,
                                                   "status", "refused", "error", why));
}

static void child_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    llm_child *ch = ud;
    llm_call *c = ch->call;
    const json_t *call = json_array_get(
        json_object_get(json_array_get(c->messages, json_array_size(c->messages) - 1),
                        "tool_calls"),
        ch->index);
    const char *name =
        json_string_value(json_object_get(json_object_get(call, "function"), "name"));
    const llm_tool *t = NULL;
    for (size_t i = 0; i < c->ntools; i++)
        if (name && strcmp(c->tools[i].name, name) == 0)
            t = &c->tools[i];
    int ok = res->status == CBX_STATUS_SUCCESS || res->fallback_used;
    json_t *content;
    if (ok) {
        content = res->outputs ? json_incref(res->outputs) : json_object();
    } else {
        const json_t *fb = t ? json_object_get(t->spec, "fallback_response") : NULL;
        content = json_pack("{s:s, s:s, s:o}", "error", res->error[0] ? res->error : "failed",
                            "status", cbx_status_name(res->status), "fallback_response",
                            fb ? json_incref((json_t *)fb)
                               : json_string("The tool failed; answer without its result."));
    }
    char *s = json_dumps(content, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s && strlen(s) > RESULT_MAX) {
        size_t cut = RESULT_MAX - 16;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--; /* not inside a UTF-8 sequence */
        memcpy(s + cut, "...(truncated)", sizeof "...(truncated)");
    }
    json_t *wire = json_pack("{s:O, s:O}", "id", json_object_get(call, "id"), "name",
                             json_object_get(json_object_get(call, "function"), "name"));
    set_result(c, ch->index, wire, s ? s : "{}");
    json_decref(wire);
    free(s);
    const char *args =
        json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
    json_t *pa = args ? json_loads(args, 0, NULL) : NULL;
    json_t *rec =
        json_pack("{s:O, s:s, s:o, s:b, s:s, s:s, s:I}", "id", json_object_get(call, "id"), "name",
                  name ? name : "", "arguments", pa ? pa : json_null(), "ok", ok, "status",
                  cbx_status_name(res->status), "execution", res->id, "duration_ms",
                  (json_int_t)(res->duration_ns / 1000000));
    if (!ok)
        json_object_set_new(rec, "error", json_string(res->error));
    json_array_append_new(c->tool_calls, rec);
    json_decref(content);
    if (c->agent && res->rc == CBX_ECIRCUIT_OPEN)
        snprintf(c->breaker_tool, sizeof c->breaker_tool, "%s", name ? name : "");
    ch->running = 0;
    ch->ex = NULL;
    if (--c->children_running == 0)
        cbx__llm_round_done(c);
}

size_t cbx__llm_tools_run(llm_call *c, const json_t *calls)
{
    size_t n = json_array_size(calls);
    json_decref(c->round_results);
    c->round_results = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(c->round_results, json_null());
    free(c->children);
    c->children = calloc(n ? n : 1, sizeof *c->children);
    c->nchildren = n;
    c->children_running = 1; /* held until every call is out, so that none ends the round */
    size_t started = 0;
    char parent_step[256];
    const char *step = cbx_task_step(c->task);
    for (size_t i = 0; i < n; i++) {
        const json_t *call = json_array_get(calls, i);
        const char *name = json_string_value(json_object_get(call, "name"));
        const llm_tool *t = NULL;
        for (size_t k = 0; k < c->ntools; k++)
            if (name && strcmp(c->tools[k].name, name) == 0)
                t = &c->tools[k];
        char why[300];
        if (!t) {
            snprintf(why, sizeof why, "unknown tool '%s'", name ? name : "");
            refuse(c, i, call, why);
            continue;
        }
        const char *at = json_string_value(json_object_get(call, "arguments"));
        json_error_t je;
        json_t *args = at && *at ? json_loads(at, JSON_DECODE_ANY, &je) : json_object();
        if (!json_is_object(args)) {
            snprintf(why, sizeof why, "arguments are not a JSON object: %s",
                     args ? "another JSON value" : je.text);
            json_decref(args);
            refuse(c, i, call, why);
            continue;
        }
        json_t *params = child_params(c, t, args, why, sizeof why);
        json_decref(args);
        if (!params) {
            refuse(c, i, call, why);
            continue;
        }
        llm_child *ch = &c->children[i];
        ch->call = c;
        ch->index = i;
        ch->running = 1;
        snprintf(parent_step, sizeof parent_step, "%s%stool:%s", step ? step : "", step ? "/" : "",
                 t->name);
        cbx_request req = {.executor = t->type->name,
                           .params = params,
                           .policy = t->policy,
                           .tag = cbx_task_execution_id(c->task),
                           .on_done = child_done,
                           .ud = ch,
                           .run_id = cbx_task_run_id(c->task),
                           .step = parent_step,
                           .metadata = cbx_task_metadata(c->task),
                           .child = 1};
        c->children_running++;
        started++;
        cbx_runtime_submit(c->rt, &req, &ch->ex, NULL); /* a refusal still reports to child_done */
        json_decref(params);
    }
    return started;
}

void cbx__llm_tools_cancel(llm_call *c)
{
    for (size_t i = 0; i < c->nchildren; i++)
        if (c->children[i].running && c->children[i].ex)
            cbx_runtime_cancel(c->rt, c->children[i].ex);
}
