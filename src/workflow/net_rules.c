/* Rules: Lua predicates over `token` in a sandbox, evaluated with a verdict for each and an
 * explanation of the first that fails. */
#include "workflow/net_internal.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- what a rule reads ------------------------------------------------------------------- */

static int add_ref(cbx__wf_rule *r, const char *b, size_t n)
{
    for (size_t i = 0; i < r->nrefs; i++)
        if (strlen(r->refs[i]) == n && memcmp(r->refs[i], b, n) == 0)
            return 0;
    char **nr = realloc(r->refs, (r->nrefs + 1) * sizeof *nr);
    if (!nr)
        return -ENOMEM;
    r->refs = nr;
    r->refs[r->nrefs] = strndup(b, n);
    if (!r->refs[r->nrefs])
        return -ENOMEM;
    r->nrefs++;
    return 0;
}

static int ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Every token.a.b in text[0..len) (a field chain after `token.`). */
static int scan_refs(cbx__wf_rule *r, const char *text, size_t len)
{
    for (size_t i = 0; i + 6 < len; i++) {
        if (memcmp(text + i, "token.", 6) != 0 ||
            (i > 0 && (ident(text[i - 1]) || text[i - 1] == '.')))
            continue;
        size_t b = i + 6, e = b;
        while (e < len && (ident(text[e]) || (text[e] == '.' && e + 1 < len && ident(text[e + 1]))))
            e++;
        if (e > b && add_ref(r, text + b, e - b) != 0)
            return -ENOMEM;
        i = e;
    }
    return 0;
}

int cbx__wf_rule_refs(const cbx_workflow *w, cbx__wf_rule *r)
{
    if (scan_refs(r, r->when, strlen(r->when)) != 0)
        return -ENOMEM;
    if (!w->helpers)
        return 0;
    /* the bodies of the helpers the rule calls: from "function NAME" to the next function */
    const char *h = w->helpers;
    for (const char *p = strstr(h, "function "); p; p = strstr(p + 1, "function ")) {
        const char *n = p + 9;
        while (*n == ' ')
            n++;
        size_t nl = 0;
        while (ident(n[nl]))
            nl++;
        if (!nl)
            continue;
        char name[64];
        cbx__wf_textf(name, sizeof name, "%.*s", (int)(nl < 63 ? nl : 63), n);
        const char *use = strstr(r->when, name);
        int called = 0;
        while (use && !called) {
            const char *after = use + strlen(name);
            called = (use == r->when || !ident(use[-1])) && !ident(*after);
            use = strstr(after, name);
        }
        if (!called)
            continue;
        const char *end = strstr(n, "\nfunction ");
        if (!end)
            end = n + strlen(n);
        if (scan_refs(r, n, (size_t)(end - n)) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- present ------------------------------------------------------------------------------ */

static const json_t *lookup(const json_t *data, const char *path)
{
    const json_t *v = data;
    const char *p = path;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char key[128];
        if (n >= sizeof key || !json_is_object(v))
            return NULL;
        memcpy(key, p, n);
        key[n] = 0;
        v = json_object_get(v, key);
        p += n + (dot ? 1 : 0);
    }
    return v;
}

int cbx__wf_present(const json_t *data, const char *path)
{
    const json_t *v = lookup(data, path);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_object(v))
        return json_object_size(v) > 0;
    return 1;
}

/* ---- the sandbox -------------------------------------------------------------------------- */

int cbx__wf_rules_open(cbx__wf_rules *R, const cbx_workflow *w, cbx_err *err)
{
    memset(R, 0, sizeof *R);
    cbx_sandbox_opts so = {.max_instructions = w->rule_instructions, .max_memory = w->rule_memory};
    int r = cbx_sandbox_new(&R->sb, &so, err);
    if (r)
        return r;
    if ((r = cbx_sandbox_load(R->sb, "prelude", cbx__wf_prelude, strlen(cbx__wf_prelude), err)) ||
        (r = cbx_sandbox_call(R->sb, 0, 0, err)))
        goto fail;
    if (w->helpers &&
        ((r = cbx_sandbox_load(R->sb, "helpers", w->helpers, strlen(w->helpers), err)) ||
         (r = cbx_sandbox_call(R->sb, 0, 0, err))))
        goto fail;
    R->refs = calloc(w->nrules + 1, sizeof *R->refs);
    if (!R->refs) {
        r = -ENOMEM;
        goto fail;
    }
    R->n = w->nrules;
    lua_State *L = cbx_sandbox_lua(R->sb);
    for (size_t i = 0; i < w->nrules; i++) {
        size_t n = strlen(w->rules[i].when) + 16;
        char *src = malloc(n);
        if (!src) {
            r = -ENOMEM;
            goto fail;
        }
        cbx__wf_textf(src, n, "return (%s\n)", w->rules[i].when);
        char chunk[96];
        cbx__wf_textf(chunk, sizeof chunk, "rules.%s", w->rules[i].name);
        r = cbx_sandbox_load(R->sb, chunk, src, strlen(src), err);
        free(src);
        if (r)
            goto fail;
        R->refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
fail:
    cbx__wf_rules_close(R);
    return r;
}

void cbx__wf_rules_close(cbx__wf_rules *R)
{
    cbx_sandbox_free(R->sb);
    free(R->refs);
    memset(R, 0, sizeof *R);
}

/* "token.a = 1, token.b = nil" for the rule's refs. */
static void values_text(const cbx__wf_rule *rule, const json_t *data, char *buf, size_t len,
                        json_t *values)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < rule->nrefs && used + 1 < len; i++) {
        const json_t *v = lookup(data, rule->refs[i]);
        char *txt =
            v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
        int n =
            cbx__wf_textf(buf + used, len - used, "%stoken.%s = %.80s%s", i ? ", " : "",
                          rule->refs[i], txt ? txt : "nil", txt && strlen(txt) > 80 ? "..." : "");
        if (values) {
            char k[160];
            cbx__wf_textf(k, sizeof k, "token.%s", rule->refs[i]);
            json_object_set_new(values, k, v ? json_deep_copy(v) : json_null());
        }
        free(txt);
        if (n < 0)
            break;
        used += (size_t)n < len - used ? (size_t)n : len - used - 1;
    }
}

/* One rule: 1 true, 0 false, -1 an error (message in msg). */
static int eval_one(cbx__wf_rules *R, size_t rule, char *msg, size_t len)
{
    lua_State *L = cbx_sandbox_lua(R->sb);
    lua_rawgeti(L, LUA_REGISTRYINDEX, R->refs[rule]);
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx_sandbox_call(R->sb, 0, 1, &e) != 0) {
        cbx__wf_textf(msg, len, "%s", e.msg[0] ? e.msg : cbx_strerror(e.code));
        return -1;
    }
    int truth = lua_toboolean(L, -1) && !cbx_sandbox_is_null(L, -1);
    lua_pop(L, 1);
    return truth;
}

int cbx__wf_rules_eval(cbx__wf_rules *R, const cbx_workflow *w, const cbx__wf_trans *t,
                       const json_t *data, int *ok, json_t **verdicts, char *why, size_t len)
{
    *ok = 1;
    if (why && len)
        why[0] = 0;
    if (verdicts)
        *verdicts = NULL;
    if (!t->nr_all && !t->nr_any)
        return 0;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_sandbox_set_global(R->sb, "token", data, &e);
    if (r) {
        *ok = 0;
        if (why)
            cbx__wf_textf(why, len, "the token's data cannot be given to the rules: %s", e.msg);
        return 0;
    }
    json_t *arr = verdicts ? json_array() : NULL;
    int any_true = t->nr_any == 0;
    char vt[400], msg[320];
    for (int g = 0; g < 2; g++) {
        const size_t *ix = g ? t->r_any : t->r_all;
        size_t n = g ? t->nr_any : t->nr_all;
        for (size_t i = 0; i < n; i++) {
            const cbx__wf_rule *rule = &w->rules[ix[i]];
            int v = eval_one(R, ix[i], msg, sizeof msg);
            json_t *values = arr && v != 1 ? json_object() : NULL;
            if (v != 1)
                values_text(rule, data, vt, sizeof vt, values);
            if (arr) {
                json_t *o = json_pack("{s:s, s:s, s:o}", "rule", rule->name, "group",
                                      g ? "any" : "all", "verdict",
                                      v == 1   ? json_true()
                                      : v == 0 ? json_false()
                                               : json_string("error"));
                if (o && values)
                    json_object_set_new(o, "values", values);
                else
                    json_decref(values);
                if (o && v < 0)
                    json_object_set_new(o, "error", json_string(msg));
                json_array_append_new(arr, o);
            }
            if (g == 1 && v == 1)
                any_true = 1;
            if (g == 0 && v != 1 && *ok) {
                *ok = 0;
                if (why && v == 0)
                    cbx__wf_textf(why, len, "rule %s is false%s%s%s", rule->name, vt[0] ? " (" : "",
                                  vt, vt[0] ? ")" : "");
                else if (why)
                    cbx__wf_textf(why, len, "rule %s failed: %s", rule->name, msg);
            }
        }
    }
    if (!any_true && *ok) {
        *ok = 0;
        if (why) {
            size_t used = (size_t)cbx__wf_textf(why, len, "none of the rules");
            for (size_t i = 0; i < t->nr_any && used < len; i++)
                used += (size_t)cbx__wf_textf(why + used, len - used, "%s %s", i ? "," : "",
                                              w->rules[t->r_any[i]].name);
            if (used < len) {
                /* the values of the first any-rule's refs */
                values_text(&w->rules[t->r_any[0]], data, vt, sizeof vt, NULL);
                cbx__wf_textf(why + used, len - used, " is true%s%s%s", vt[0] ? " (" : "", vt,
                              vt[0] ? ")" : "");
            }
        }
    }
    if (verdicts)
        *verdicts = arr;
    return 0;
}
