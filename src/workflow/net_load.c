/* Loading a workflow file: YAML into places, rules, helpers and transitions, each part checked,
 * every problem reported with its file:line:col. */
#include "workflow/net_internal.h"

#include "core/text.h"
#include "flow/flow_load.h"

#include "cbx/template.h"
#include "cbx/units.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPOS        ((size_t)-1)
#define PATH_MAX_WF 256

typedef struct loader {
    cbx_workflow *w;
    const cbx_registry *reg;
    cbx_diag *diag;
    size_t problems;
    int fatal;
    cbx_sandbox *sb;    /* the check sandbox: prelude and helpers loaded */
    int helpers_broken; /* then names in rules are not checked: the helpers are unknown */
} loader;

static const char *const top_keys[] = {"name",   "description", "version", "helpers", "rules",
                                       "places", "states",      "start",   "final",   "policies",
                                       "limits", "transitions", NULL};
static const char *const trans_keys[] = {"name",   "desc",   "description", "from", "to",
                                         "policy", "action", "priority",    "join", "trigger",
                                         "signal", "after",  NULL};
static const char *const action_keys[] = {"executor", "config", "policy", "outputs", NULL};
static const char *const rule_keys[] = {"desc", "description", "when", NULL};
static const char *const limit_keys[] = {"firings_per_token", "rule_instructions", "rule_memory",
                                         NULL};
static const char *const lua_keywords[] = {
    "and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
    "function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
    "repeat",   "return", "then", "true", "until",  "while", NULL};

/* The functions every rule may call besides the helpers (the sandbox's own are found in it). */
const char cbx__wf_prelude[] = "function present(v)\n"
                               "  if v == nil or v == null then return false end\n"
                               "  if type(v) == 'string' then return v ~= '' end\n"
                               "  if type(v) == 'table' then return next(v) ~= nil end\n"
                               "  return true\n"
                               "end\n";

static void prob(loader *L, const char *path, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void prob(loader *L, const char *path, int code, const char *fmt, ...)
{
    int line = 0, col = 0;
    cbx_yaml_where(&L->w->doc, path, &line, &col);
    char msg[sizeof((cbx_err *)0)->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cbx_diag_add(L->diag, code, L->w->doc.file ? L->w->doc.file : "", line, col, "%s", msg);
    L->problems++;
}

/* A problem at an explicit position (Lua errors inside a string). */
static void prob_at(loader *L, int line, int col, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void prob_at(loader *L, int line, int col, int code, const char *fmt, ...)
{
    char msg[sizeof((cbx_err *)0)->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cbx_diag_add(L->diag, code, L->w->doc.file ? L->w->doc.file : "", line, col, "%s", msg);
    L->problems++;
}

static const char *pj(char *buf, const char *base, const char *key)
{
    cbx__wf_textf(buf, PATH_MAX_WF, "%s%s%s", base, *base ? "." : "", key);
    return buf;
}

static const char *kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "a mapping";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static void unknown_keys(loader *L, const json_t *obj, const char *const *known, const char *path,
                         const char *ctx)
{
    const char *key;
    json_t *v;
    char kp[PATH_MAX_WF];
    json_object_foreach((json_t *)obj, key, v)
    {
        if (in_list(known, key))
            continue;
        const char *best = cbx__flow_suggest(key, known);
        prob(L, pj(kp, path, key), CBX_EUNKNOWN_KEY, "%s: unknown key '%s'%s%s%s", ctx, key,
             best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
    }
}

size_t cbx__wf_place(const cbx_workflow *w, const char *name)
{
    for (size_t i = 0; i < w->nplaces; i++)
        if (strcmp(w->places[i], name) == 0)
            return i;
    return NPOS;
}

size_t cbx__wf_rule_index(const cbx_workflow *w, const char *name)
{
    for (size_t i = 0; i < w->nrules; i++)
        if (strcmp(w->rules[i].name, name) == 0)
            return i;
    return NPOS;
}

size_t cbx__wf_trans_index(const cbx_workflow *w, const char *name)
{
    for (size_t i = 0; i < w->ntrans; i++)
        if (w->trans[i].name && strcmp(w->trans[i].name, name) == 0)
            return i;
    return NPOS;
}

/* ---- Lua: syntax and names -------------------------------------------------------------- */

/* The file line of a Lua line inside a string node: a block scalar (text over several lines)
 * starts on the line after its indicator. */
static int lua_file_line(const char *text, int node_line, int lua_line)
{
    if (!strchr(text, '\n'))
        return node_line;
    return node_line + (lua_line > 0 ? lua_line : 1);
}

/* The column of the first character of a line of the file (a block scalar's text), or dflt. */
static int text_col(const cbx_workflow *w, int line, int dflt)
{
    const char *p = w->source;
    for (int l = 1; l < line && p; l++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p || !*p)
        return dflt;
    int col = 1;
    while (p[col - 1] == ' ' || p[col - 1] == '\t')
        col++;
    return col;
}

static int is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* 1 when name is a global of the check sandbox (read raw: the sandbox's _G raises on the
 * forbidden names). */
static int has_global(cbx_sandbox *sb, const char *name)
{
    lua_State *Ls = cbx_sandbox_lua(sb);
    lua_rawgeti(Ls, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushstring(Ls, name);
    lua_rawget(Ls, -2);
    int found = !lua_isnil(Ls, -1);
    lua_pop(Ls, 2);
    return found;
}

/* Call fn(name, ud) for each free name of an expression: not a field (after . or :), not a
 * keyword, not a table constructor's key, outside strings and comments. */
static void free_names(const char *s, void (*fn)(const char *name, void *ud), void *ud)
{
    char prev = 0;
    while (*s) {
        if (*s == '-' && s[1] == '-') {
            while (*s && *s != '\n')
                s++;
            continue;
        }
        if (*s == '"' || *s == '\'') {
            char q = *s++;
            while (*s && *s != q) {
                if (*s == '\\' && s[1])
                    s++;
                s++;
            }
            if (*s)
                s++;
            prev = 'x';
            continue;
        }
        if (*s == '[' && s[1] == '[') {
            const char *e = strstr(s + 2, "]]");
            s = e ? e + 2 : s + strlen(s);
            prev = 'x';
            continue;
        }
        if (*s >= '0' && *s <= '9') {
            while (is_ident(*s) || *s == '.')
                s++;
            prev = '0';
            continue;
        }
        if (is_ident_start(*s)) {
            const char *b = s;
            while (is_ident(*s))
                s++;
            char name[64];
            size_t n = (size_t)(s - b) < sizeof name - 1 ? (size_t)(s - b) : sizeof name - 1;
            memcpy(name, b, n);
            name[n] = 0;
            const char *a = s;
            while (*a == ' ' || *a == '\t')
                a++;
            int is_key = *a == '=' && a[1] != '=';
            if (prev != '.' && prev != ':' && !is_key && !in_list(lua_keywords, name))
                fn(name, ud);
            prev = 'a';
            continue;
        }
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            prev = *s;
        s++;
    }
}

typedef struct name_check {
    loader *L;
    const char *path, *rule;
} name_check;

static void check_name(const char *name, void *ud)
{
    name_check *c = ud;
    if (strcmp(name, "token") == 0 || has_global(c->L->sb, name))
        return;
    prob(c->L, c->path, CBX_EINVAL_CONFIG,
         "rule '%s': unknown name '%s' (neither a helper, a built-in function nor token)", c->rule,
         name);
}

static void load_helpers(loader *L, const json_t *v)
{
    cbx_workflow *w = L->w;
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx_sandbox_new(&L->sb, NULL, &e) != 0) {
        L->fatal = e.code ? e.code : -ENOMEM;
        return;
    }
    if (cbx_sandbox_load(L->sb, "prelude", cbx__wf_prelude, strlen(cbx__wf_prelude), &e) != 0 ||
        cbx_sandbox_call(L->sb, 0, 0, &e) != 0) {
        L->fatal = e.code;
        return;
    }
    if (!v || json_is_null(v))
        return;
    if (!json_is_string(v)) {
        prob(L, "helpers", CBX_EINVAL_CONFIG, "helpers: expected Lua text, got %s", kind(v));
        return;
    }
    w->helpers = strdup(json_string_value(v));
    if (!w->helpers) {
        L->fatal = -ENOMEM;
        return;
    }
    cbx_yaml_where(&w->doc, "helpers", &w->helpers_line, &w->helpers_col);
    cbx_err_clear(&e);
    if (cbx_sandbox_load(L->sb, "helpers", w->helpers, strlen(w->helpers), &e) != 0) {
        int line = lua_file_line(w->helpers, w->helpers_line, e.line);
        prob_at(L, line, text_col(w, line, w->helpers_col), CBX_EPARSE,
                "helpers: Lua syntax error: %s", e.msg);
        L->helpers_broken = 1;
        return;
    }
    if (cbx_sandbox_call(L->sb, 0, 0, &e) != 0) {
        int line = lua_file_line(w->helpers, w->helpers_line, e.line);
        prob_at(L, line, text_col(w, line, w->helpers_col), e.code, "helpers: %s", e.msg);
        L->helpers_broken = 1;
    }
}

/* ---- places ------------------------------------------------------------------------------- */

static void parse_places(loader *L, const json_t *v, const char *key)
{
    cbx_workflow *w = L->w;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        prob(L, key, CBX_EINVAL_CONFIG, "%s: expected a list of place names, got %s", key,
             v ? kind(v) : "nothing");
        return;
    }
    size_t n = json_array_size(v);
    w->places = calloc(n + 1, sizeof *w->places); /* NULL-terminated: suggestions */
    w->final = calloc(n, 1);
    w->start = calloc(n, 1);
    w->pline = calloc(n, sizeof(int));
    w->pcol = calloc(n, sizeof(int));
    if (!w->places || !w->final || !w->start || !w->pline || !w->pcol) {
        L->fatal = -ENOMEM;
        return;
    }
    char kp[PATH_MAX_WF];
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(v, i);
        cbx__wf_textf(kp, sizeof kp, "%s[%zu]", key, i);
        if (!json_is_string(it) || !name_ok(json_string_value(it))) {
            prob(L, kp, CBX_EINVAL_CONFIG,
                 "%s: a place name is 1 to 63 letters, digits, '_' or '-'", kp);
            continue;
        }
        const char *name = json_string_value(it);
        if (cbx__wf_place(w, name) != NPOS) {
            prob(L, kp, CBX_EINVAL_CONFIG, "place '%s' is listed twice", name);
            continue;
        }
        cbx_yaml_where(&w->doc, kp, &w->pline[w->nplaces], &w->pcol[w->nplaces]);
        w->places[w->nplaces++] = strdup(name);
        if (!w->places[w->nplaces - 1])
            L->fatal = -ENOMEM;
    }
}

/* A place or a list of places, as indexes; unknown names are problems. */
static size_t *place_list(loader *L, const json_t *v, const char *path, const char *ctx, size_t *n)
{
    *n = 0;
    if (!v) {
        prob(L, path, CBX_EINVAL_CONFIG, "%s: missing", ctx);
        return NULL;
    }
    size_t cnt = json_is_array(v) ? json_array_size(v) : 1;
    size_t *out = calloc(cnt ? cnt : 1, sizeof *out);
    if (!out) {
        L->fatal = -ENOMEM;
        return NULL;
    }
    char kp[PATH_MAX_WF];
    for (size_t i = 0; i < cnt; i++) {
        const json_t *it = json_is_array(v) ? json_array_get(v, i) : v;
        if (json_is_array(v))
            cbx__wf_textf(kp, sizeof kp, "%s[%zu]", path, i);
        else
            cbx__wf_textf(kp, sizeof kp, "%s", path);
        if (!json_is_string(it)) {
            prob(L, kp, CBX_EINVAL_CONFIG, "%s: expected a place name, got %s", ctx, kind(it));
            continue;
        }
        size_t p = cbx__wf_place(L->w, json_string_value(it));
        if (p == NPOS) {
            const char *best =
                cbx__flow_suggest(json_string_value(it), (const char *const *)L->w->places);
            prob(L, kp, CBX_EINVAL_CONFIG, "%s: unknown place '%s'%s%s%s", ctx,
                 json_string_value(it), best ? "; did you mean '" : "", best ? best : "",
                 best ? "'?" : "");
            continue;
        }
        int dup = 0;
        for (size_t k = 0; k < *n; k++)
            dup |= out[k] == p;
        if (dup) {
            prob(L, kp, CBX_EINVAL_CONFIG, "%s: place '%s' given twice", ctx,
                 json_string_value(it));
            continue;
        }
        out[(*n)++] = p;
    }
    return out;
}

static void mark_places(loader *L, const json_t *v, const char *key, uint8_t *flags)
{
    size_t n = 0;
    size_t *ix = place_list(L, v, key, key, &n);
    for (size_t i = 0; i < n; i++)
        flags[ix[i]] = 1;
    free(ix);
}

/* ---- rules -------------------------------------------------------------------------------- */

static void parse_rules(loader *L, const json_t *v)
{
    cbx_workflow *w = L->w;
    if (!v || json_is_null(v))
        return;
    if (!json_is_object(v)) {
        prob(L, "rules", CBX_EINVAL_CONFIG,
             "rules: expected a mapping of names to {desc, when}, got %s", kind(v));
        return;
    }
    w->rules = calloc(json_object_size(v) + 1, sizeof *w->rules);
    if (!w->rules) {
        L->fatal = -ENOMEM;
        return;
    }
    const char *key;
    json_t *spec;
    char kp[PATH_MAX_WF], wp[PATH_MAX_WF];
    json_object_foreach((json_t *)v, key, spec)
    {
        pj(kp, "rules", key);
        if (!name_ok(key)) {
            prob(L, kp, CBX_EINVAL_CONFIG,
                 "rule '%.64s': a name is 1 to 63 letters, digits, '_' or '-'", key);
            continue;
        }
        const json_t *when = spec;
        const json_t *desc = NULL;
        cbx__wf_textf(wp, sizeof wp, "%s", kp);
        if (json_is_object(spec)) {
            unknown_keys(L, spec, rule_keys, kp, key);
            when = json_object_get(spec, "when");
            desc = json_object_get(spec, "desc");
            if (!desc)
                desc = json_object_get(spec, "description");
            pj(wp, kp, "when");
        }
        if (!json_is_string(when) || !json_string_length(when)) {
            prob(L, wp, CBX_EINVAL_CONFIG,
                 "rule '%s': expected when: a Lua expression over token, got %s", key,
                 when ? kind(when) : "nothing");
            continue;
        }
        cbx__wf_rule *r = &w->rules[w->nrules++];
        r->name = strdup(key);
        r->when = strdup(json_string_value(when));
        r->desc = strdup(json_is_string(desc) ? json_string_value(desc) : "");
        if (!r->name || !r->when || !r->desc) {
            L->fatal = -ENOMEM;
            return;
        }
        cbx_yaml_where(&w->doc, wp, &r->line, &r->col);
        if (cbx__wf_rule_refs(w, r) != 0)
            L->fatal = -ENOMEM;
        /* the syntax, as it will be compiled */
        size_t n = strlen(r->when) + 16;
        char *src = malloc(n);
        if (!src) {
            L->fatal = -ENOMEM;
            return;
        }
        cbx__wf_textf(src, n, "return (%s\n)", r->when);
        cbx_err e;
        cbx_err_clear(&e);
        char chunk[96];
        cbx__wf_textf(chunk, sizeof chunk, "rules.%s", key);
        if (L->sb && cbx_sandbox_load(L->sb, chunk, src, strlen(src), &e) != 0) {
            prob_at(L, lua_file_line(r->when, r->line, e.line), r->col, CBX_EPARSE,
                    "rule '%s': Lua syntax error: %s", key, e.msg);
        } else if (L->sb) {
            lua_pop(cbx_sandbox_lua(L->sb), 1);
            if (L->helpers_broken)
                goto next;
            name_check c = {L, wp, key};
            free_names(r->when, check_name, &c);
        }
    next:
        free(src);
    }
}

/* ---- policies and limits ------------------------------------------------------------------ */

static int make_policy(loader *L, const json_t *block, const char *name, const char *path,
                       const char *ctx, cbx_policy **out)
{
    cbx_policy_opts base;
    cbx_policy_opts_default(&base);
    base.name = name;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_policy_new_json(out, block, &base, &e);
    if (r == 0)
        return 0;
    *out = NULL;
    if (r == -ENOMEM) {
        L->fatal = r;
        return r;
    }
    char kp[PATH_MAX_WF];
    if (e.where[0])
        prob(L, pj(kp, path, e.where), r, "%s: %s: %s", ctx, e.where, e.msg);
    else
        prob(L, path, r, "%s: %s", ctx, e.msg[0] ? e.msg : cbx_strerror(r));
    return r;
}

static void parse_policies(loader *L, const json_t *v)
{
    cbx_workflow *w = L->w;
    if (!v || json_is_null(v))
        return;
    if (!json_is_object(v)) {
        prob(L, "policies", CBX_EINVAL_CONFIG, "policies: expected a mapping of named blocks");
        return;
    }
    size_t n = json_object_size(v);
    w->pol_names = calloc(n + 1, sizeof *w->pol_names);
    w->pols = calloc(n + 1, sizeof *w->pols);
    if (!w->pol_names || !w->pols) {
        L->fatal = -ENOMEM;
        return;
    }
    const char *key;
    json_t *b;
    char kp[PATH_MAX_WF], ctx[96];
    json_object_foreach((json_t *)v, key, b)
    {
        pj(kp, "policies", key);
        cbx__wf_textf(ctx, sizeof ctx, "policy '%.64s'", key);
        cbx_policy *p = NULL;
        if (!json_is_object(b)) {
            prob(L, kp, CBX_EINVAL_CONFIG, "%s: expected a mapping", ctx);
            continue;
        }
        if (make_policy(L, b, key, kp, ctx, &p) == 0) {
            w->pol_names[w->npols] = strdup(key);
            w->pols[w->npols++] = p;
        }
    }
}

static uint64_t limit_int(loader *L, const json_t *lim, const char *key, uint64_t dflt,
                          uint64_t min)
{
    const json_t *v = json_object_get(lim, key);
    if (!v)
        return dflt;
    char kp[PATH_MAX_WF];
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min) {
        prob(L, pj(kp, "limits", key), CBX_EINVAL_CONFIG,
             "limits.%s: expected a whole number of at least %llu", key, (unsigned long long)min);
        return dflt;
    }
    return (uint64_t)json_integer_value(v);
}

static void parse_limits(loader *L, const json_t *v)
{
    cbx_workflow *w = L->w;
    w->max_firings = CBX_WORKFLOW_DEFAULT_FIRINGS;
    w->rule_instructions = CBX_WORKFLOW_DEFAULT_RULE_INSTRUCTIONS;
    w->rule_memory = CBX_WORKFLOW_DEFAULT_RULE_MEMORY;
    if (!v || json_is_null(v))
        return;
    if (!json_is_object(v)) {
        prob(L, "limits", CBX_EINVAL_CONFIG, "limits: expected a mapping");
        return;
    }
    unknown_keys(L, v, limit_keys, "limits", "limits");
    w->max_firings = (uint32_t)limit_int(L, v, "firings_per_token", w->max_firings, 1);
    w->rule_instructions = limit_int(L, v, "rule_instructions", w->rule_instructions, 1000);
    w->rule_memory = (size_t)limit_int(L, v, "rule_memory", w->rule_memory, 1u << 20);
}

/* ---- transitions -------------------------------------------------------------------------- */

static char **string_list(loader *L, const json_t *v, const char *path, const char *ctx, size_t *n)
{
    *n = 0;
    if (!v)
        return NULL;
    if (!json_is_array(v)) {
        prob(L, path, CBX_EINVAL_CONFIG, "%s: expected a list of names, got %s", ctx, kind(v));
        return NULL;
    }
    char **out = calloc(json_array_size(v) + 1, sizeof *out);
    if (!out) {
        L->fatal = -ENOMEM;
        return NULL;
    }
    char kp[PATH_MAX_WF];
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *it = json_array_get(v, i);
        if (!json_is_string(it)) {
            cbx__wf_textf(kp, sizeof kp, "%s[%zu]", path, i);
            prob(L, kp, CBX_EINVAL_CONFIG, "%s: expected a name, got %s", ctx, kind(it));
            continue;
        }
        out[(*n)++] = strdup(json_string_value(it));
    }
    return out;
}

static void parse_guard(loader *L, cbx__wf_trans *t, const json_t *policy, const char *path,
                        const char *ctx, json_t **resilience)
{
    char kp[PATH_MAX_WF], kp2[PATH_MAX_WF], c2[160];
    *resilience = NULL;
    if (!policy)
        return;
    if (json_is_string(policy)) { /* a named resilience policy, for the action */
        *resilience = json_incref((json_t *)policy);
        return;
    }
    if (!json_is_object(policy)) {
        prob(L, path, CBX_EINVAL_CONFIG, "%s: policy: expected a mapping, got %s", ctx,
             kind(policy));
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)policy, key, v)
    {
        if (strcmp(key, "validations") != 0 && strcmp(key, "rules") != 0) {
            if (!*resilience)
                *resilience = json_object();
            json_object_set(*resilience, key, v);
        }
    }
    const json_t *val = json_object_get(policy, "validations");
    if (val) {
        pj(kp, path, "validations");
        if (!json_is_object(val)) {
            prob(L, kp, CBX_EINVAL_CONFIG, "%s: validations: expected {all: [...], any: [...]}",
                 ctx);
        } else {
            static const char *const va[] = {"all", "any", NULL};
            unknown_keys(L, val, va, kp, ctx);
            cbx__wf_textf(c2, sizeof c2, "%s: validations.all", ctx);
            t->v_all =
                string_list(L, json_object_get(val, "all"), pj(kp2, kp, "all"), c2, &t->nv_all);
            cbx__wf_textf(c2, sizeof c2, "%s: validations.any", ctx);
            t->v_any =
                string_list(L, json_object_get(val, "any"), pj(kp2, kp, "any"), c2, &t->nv_any);
        }
    }
    const json_t *rules = json_object_get(policy, "rules");
    if (!rules)
        return;
    pj(kp, path, "rules");
    if (!json_is_object(rules)) {
        prob(L, kp, CBX_EINVAL_CONFIG, "%s: rules: expected {all: [...], any: [...]}", ctx);
        return;
    }
    static const char *const ra[] = {"all", "any", NULL};
    unknown_keys(L, rules, ra, kp, ctx);
    for (int k = 0; k < 2; k++) {
        const char *which = k ? "any" : "all";
        const json_t *list = json_object_get(rules, which);
        size_t n = 0;
        cbx__wf_textf(c2, sizeof c2, "%s: rules.%s", ctx, which);
        pj(kp2, kp, which);
        char **names = string_list(L, list, kp2, c2, &n);
        size_t *ix = calloc(n + 1, sizeof *ix);
        size_t m = 0;
        if (!ix)
            L->fatal = -ENOMEM;
        for (size_t i = 0; ix && i < n; i++) {
            size_t r = cbx__wf_rule_index(L->w, names[i]);
            if (r == NPOS) {
                char ip[PATH_MAX_WF];
                cbx__wf_textf(ip, sizeof ip, "%s[%zu]", kp2, i);
                const char **cands = calloc(L->w->nrules + 1, sizeof *cands);
                for (size_t q = 0; cands && q < L->w->nrules; q++)
                    cands[q] = L->w->rules[q].name;
                const char *best = cands ? cbx__flow_suggest(names[i], cands) : NULL;
                prob(L, ip, CBX_EINVAL_CONFIG, "%s: unknown rule '%s'%s%s%s", ctx, names[i],
                     best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
                free(cands);
            } else {
                ix[m++] = r;
            }
            free(names[i]);
        }
        free(names);
        if (k) {
            t->r_any = ix;
            t->nr_any = m;
        } else {
            t->r_all = ix;
            t->nr_all = m;
        }
    }
}

/* Parameters of the action: every problem of a config without templates; with templates, the
 * templated keys count as present and are not type-checked (they are known when it runs). */
static void check_params(loader *L, cbx__wf_trans *t, const char *path, const char *ctx)
{
    if (!L->reg || !t->executor)
        return;
    if (!cbx_registry_find(L->reg, t->executor)) {
        const cbx_executor_type *types[256];
        size_t n = cbx_registry_list(L->reg, types, 256);
        const char *names[257] = {0};
        for (size_t i = 0; i < n && i < 256; i++)
            names[i] = types[i]->name;
        const char *best = cbx__flow_suggest(t->executor, names);
        char kp[PATH_MAX_WF];
        prob(L, pj(kp, path, "executor"), CBX_EUNKNOWN_TYPE, "%s: unknown executor '%s'%s%s%s", ctx,
             t->executor, best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
        return;
    }
    json_t *copy = json_object();
    json_t *templated = json_object();
    if (!copy || !templated) {
        json_decref(copy);
        json_decref(templated);
        L->fatal = -ENOMEM;
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(t->config, key, v)
    {
        if (cbx_template_has(v))
            json_object_set_new(templated, key, json_true());
        else
            json_object_set(copy, key, v);
    }
    cbx_diag d = {0};
    cbx_registry_validate(L->reg, t->executor, copy, NULL, &d);
    char cp[PATH_MAX_WF], kp[PATH_MAX_WF];
    pj(cp, path, "config");
    for (size_t i = 0; i < d.n; i++) {
        const cbx_err *e = &d.items[i];
        char first[128];
        cbx__wf_textf(first, sizeof first, "%s", e->where);
        first[strcspn(first, ".[")] = 0;
        if (first[0] && json_object_get(templated, first))
            continue;
        prob(L, e->where[0] ? pj(kp, cp, e->where) : cp, e->code, "%s: config%s%s: %s", ctx,
             e->where[0] ? "." : "", e->where, e->msg);
    }
    cbx_diag_clear(&d);
    json_decref(copy);
    json_decref(templated);
}

static void parse_action(loader *L, cbx__wf_trans *t, const json_t *a, const char *path,
                         const char *ctx, json_t *resilience)
{
    char kp[PATH_MAX_WF];
    if (!a) {
        if (resilience && !json_is_string(resilience))
            prob(L, pj(kp, path, "policy"), CBX_EINVAL_CONFIG,
                 "%s: policy: timeout, retry, breaker, ... apply to an action, and there is none",
                 ctx);
        return;
    }
    pj(kp, path, "action");
    char ap[PATH_MAX_WF];
    cbx__wf_textf(ap, sizeof ap, "%s", kp);
    if (!json_is_object(a)) {
        prob(L, ap, CBX_EINVAL_CONFIG, "%s: action: expected {executor, config, policy}, got %s",
             ctx, kind(a));
        return;
    }
    unknown_keys(L, a, action_keys, ap, ctx);
    const json_t *ex = json_object_get(a, "executor");
    if (!json_is_string(ex)) {
        prob(L, ex ? pj(kp, ap, "executor") : ap, CBX_EINVAL_CONFIG,
             "%s: action: executor: expected an executor type's name", ctx);
        return;
    }
    t->executor = strdup(json_string_value(ex));
    const json_t *cfg = json_object_get(a, "config");
    if (cfg && !json_is_object(cfg)) {
        prob(L, pj(kp, ap, "config"), CBX_EINVAL_CONFIG, "%s: action: config: expected a mapping",
             ctx);
        cfg = NULL;
    }
    t->config = cfg ? json_deep_copy(cfg) : json_object();
    if (!t->executor || !t->config) {
        L->fatal = -ENOMEM;
        return;
    }
    char cpath[PATH_MAX_WF];
    const json_t *outs = json_object_get(a, "outputs");
    if (outs && !json_is_object(outs) && !(json_is_string(outs) && cbx_template_has(outs)))
        prob(L, pj(kp, ap, "outputs"), CBX_EINVAL_CONFIG,
             "%s: action: outputs: expected a mapping of token fields to templates, or one "
             "template giving an object",
             ctx);
    else if (outs && !(t->outputs = json_deep_copy(outs)))
        L->fatal = -ENOMEM;
    cbx_err e;
    cbx_err_clear(&e);
    if (t->outputs && cbx_template_check(t->outputs, &e) != 0)
        prob(L, pj(kp, ap, "outputs"), e.code, "%s: action: outputs.%s: %s", ctx, e.where, e.msg);
    cbx_err_clear(&e);
    if (cbx_template_check(t->config, &e) != 0)
        prob(L, e.where[0] ? pj(kp, pj(cpath, ap, "config"), e.where) : ap, e.code,
             "%s: action: config.%s: %s", ctx, e.where, e.msg);
    check_params(L, t, ap, ctx);
    const json_t *ap_pol = json_object_get(a, "policy");
    if (ap_pol && resilience) {
        prob(L, pj(kp, ap, "policy"), CBX_EINVAL_CONFIG,
             "%s: the action's policy is given twice (in policy: and in action.policy:); keep one",
             ctx);
        return;
    }
    const json_t *pol = ap_pol ? ap_pol : resilience;
    const char *pol_path = ap_pol ? pj(kp, ap, "policy") : pj(kp, path, "policy");
    if (!pol)
        return;
    if (json_is_string(pol)) {
        for (size_t i = 0; i < L->w->npols; i++)
            if (strcmp(L->w->pol_names[i], json_string_value(pol)) == 0)
                t->policy = L->w->pols[i];
        if (!t->policy)
            prob(L, pol_path, CBX_EINVAL_CONFIG, "%s: unknown policy '%s'", ctx,
                 json_string_value(pol));
        return;
    }
    if (!json_is_object(pol)) {
        prob(L, pol_path, CBX_EINVAL_CONFIG, "%s: policy: expected a name or a mapping", ctx);
        return;
    }
    if (make_policy(L, pol, t->name, pol_path, ctx, &t->policy) == 0)
        t->policy_owned = 1;
}

static void parse_transition(loader *L, const json_t *node, size_t i)
{
    cbx_workflow *w = L->w;
    cbx__wf_trans *t = &w->trans[w->ntrans++];
    char path[PATH_MAX_WF], kp[PATH_MAX_WF], ctx[128];
    cbx__wf_textf(path, sizeof path, "transitions[%zu]", i);
    cbx_yaml_where(&w->doc, path, &t->line, &t->col);
    if (!json_is_object(node)) {
        prob(L, path, CBX_EINVAL_CONFIG, "%s: expected a transition (a mapping), got %s", path,
             kind(node));
        return;
    }
    const json_t *name = json_object_get(node, "name");
    if (!json_is_string(name) || !name_ok(json_string_value(name))) {
        prob(L, name ? pj(kp, path, "name") : path, CBX_EINVAL_CONFIG,
             "%s: name: expected 1 to 63 letters, digits, '_' or '-'", path);
        cbx__wf_textf(ctx, sizeof ctx, "%s", path);
    } else {
        if (cbx__wf_trans_index(w, json_string_value(name)) != NPOS)
            prob(L, pj(kp, path, "name"), CBX_EINVAL_CONFIG, "transition '%s' is declared twice",
                 json_string_value(name));
        t->name = strdup(json_string_value(name));
        cbx__wf_textf(ctx, sizeof ctx, "transition '%s'", t->name);
    }
    unknown_keys(L, node, trans_keys, path, ctx);
    char c2[160];
    cbx__wf_textf(c2, sizeof c2, "%s: from", ctx);
    t->from = place_list(L, json_object_get(node, "from"), pj(kp, path, "from"), c2, &t->nfrom);
    cbx__wf_textf(c2, sizeof c2, "%s: to", ctx);
    t->to = place_list(L, json_object_get(node, "to"), pj(kp, path, "to"), c2, &t->nto);
    const json_t *v = json_object_get(node, "priority");
    if (v && !json_is_integer(v))
        prob(L, pj(kp, path, "priority"), CBX_EINVAL_CONFIG,
             "%s: priority: expected a whole number (higher is tried first)", ctx);
    else if (v)
        t->priority = (int)json_integer_value(v);
    v = json_object_get(node, "join");
    if (v && (!json_is_string(v) || (strcmp(json_string_value(v), "family") != 0 &&
                                     strcmp(json_string_value(v), "any") != 0)))
        prob(L, pj(kp, path, "join"), CBX_EINVAL_CONFIG, "%s: join: expected family or any", ctx);
    else if (v)
        t->join_any = strcmp(json_string_value(v), "any") == 0;
    v = json_object_get(node, "trigger");
    const json_t *sig = json_object_get(node, "signal");
    if (v && (!json_is_string(v) || (strcmp(json_string_value(v), "auto") != 0 &&
                                     strcmp(json_string_value(v), "signal") != 0)))
        prob(L, pj(kp, path, "trigger"), CBX_EINVAL_CONFIG, "%s: trigger: expected auto or signal",
             ctx);
    else if ((v && strcmp(json_string_value(v), "signal") == 0) || sig)
        t->trigger = WF_TRIGGER_SIGNAL;
    if (sig && !json_is_string(sig))
        prob(L, pj(kp, path, "signal"), CBX_EINVAL_CONFIG, "%s: signal: expected a name", ctx);
    else if (t->trigger == WF_TRIGGER_SIGNAL)
        t->signal = strdup(sig ? json_string_value(sig) : t->name ? t->name : "");
    v = json_object_get(node, "after");
    if (v) {
        uint64_t ns = 0;
        if (!json_is_string(v) || cbx_duration_parse_ns(json_string_value(v), &ns) != 0 ||
            ns < 1000000)
            prob(L, pj(kp, path, "after"), CBX_EINVAL_CONFIG,
                 "%s: after: expected a duration like 30s, 1h (at least 1ms)", ctx);
        else
            t->after_ms = ns / 1000000;
        if (t->trigger == WF_TRIGGER_SIGNAL)
            prob(L, pj(kp, path, "after"), CBX_EINVAL_CONFIG,
                 "%s: after: and trigger: signal exclude each other", ctx);
    }
    json_t *resilience = NULL;
    parse_guard(L, t, json_object_get(node, "policy"), pj(kp, path, "policy"), ctx, &resilience);
    parse_action(L, t, json_object_get(node, "action"), path, ctx, resilience);
    json_decref(resilience);
}

static int by_priority(const cbx_workflow *w, size_t a, size_t b)
{
    if (w->trans[a].priority != w->trans[b].priority)
        return w->trans[a].priority > w->trans[b].priority ? -1 : 1;
    return a < b ? -1 : 1;
}

static void index_transitions(loader *L)
{
    cbx_workflow *w = L->w;
    w->out_of = calloc(w->nplaces + 1, sizeof *w->out_of);
    w->nout_of = calloc(w->nplaces + 1, sizeof *w->nout_of);
    if (!w->out_of || !w->nout_of) {
        L->fatal = -ENOMEM;
        return;
    }
    for (size_t p = 0; p < w->nplaces; p++) {
        w->out_of[p] = calloc(w->ntrans + 1, sizeof(size_t));
        if (!w->out_of[p]) {
            L->fatal = -ENOMEM;
            return;
        }
        for (size_t t = 0; t < w->ntrans; t++)
            for (size_t k = 0; k < w->trans[t].nfrom; k++)
                if (w->trans[t].from[k] == p)
                    w->out_of[p][w->nout_of[p]++] = t;
        /* insertion sort: a place has few transitions */
        size_t *o = w->out_of[p];
        for (size_t i = 1; i < w->nout_of[p]; i++)
            for (size_t j = i; j > 0 && by_priority(w, o[j - 1], o[j]) > 0; j--) {
                size_t x = o[j];
                o[j] = o[j - 1];
                o[j - 1] = x;
            }
    }
}

static void parse_all(loader *L)
{
    cbx_workflow *w = L->w;
    json_t *root = w->doc.root;
    if (!json_is_object(root)) {
        prob(L, "", CBX_EINVAL_CONFIG,
             "expected a workflow (a mapping with places and transitions), got %s",
             root ? kind(root) : "an empty file");
        return;
    }
    unknown_keys(L, root, top_keys, "", "workflow");
    const json_t *name = json_object_get(root, "name");
    if (name && !json_is_string(name))
        prob(L, "name", CBX_EINVAL_CONFIG, "name: expected text");
    w->name = strdup(json_is_string(name) ? json_string_value(name) : "workflow");
    load_helpers(L, json_object_get(root, "helpers"));
    if (L->fatal)
        return;
    parse_rules(L, json_object_get(root, "rules"));
    const char *pkey = json_object_get(root, "places") ? "places" : "states";
    if (json_object_get(root, "places") && json_object_get(root, "states"))
        prob(L, "states", CBX_EINVAL_CONFIG, "states: is another name for places; keep one");
    parse_places(L, json_object_get(root, pkey), pkey);
    if (L->fatal || !w->nplaces)
        return;
    const json_t *start = json_object_get(root, "start");
    if (start)
        mark_places(L, start, "start", w->start);
    else
        w->start[0] = 1;
    const json_t *fin = json_object_get(root, "final");
    if (fin)
        mark_places(L, fin, "final", w->final);
    parse_policies(L, json_object_get(root, "policies"));
    parse_limits(L, json_object_get(root, "limits"));
    const json_t *tr = json_object_get(root, "transitions");
    if (!json_is_array(tr) || json_array_size(tr) == 0) {
        prob(L, tr ? "transitions" : "", CBX_EINVAL_CONFIG,
             "transitions: expected a list of transitions");
        return;
    }
    w->trans = calloc(json_array_size(tr), sizeof *w->trans);
    if (!w->trans) {
        L->fatal = -ENOMEM;
        return;
    }
    for (size_t i = 0; i < json_array_size(tr) && !L->fatal; i++)
        parse_transition(L, json_array_get(tr, i), i);
    if (!L->fatal)
        index_transitions(L);
}

static int by_position(const void *a, const void *b)
{
    const cbx_err *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->col < y->col ? -1 : x->col > y->col;
}

static int load_text(cbx_workflow **out, const char *text, size_t len, const char *name,
                     const cbx_registry *reg, cbx_diag *diag, int keep)
{
    *out = NULL;
    cbx_diag local = {0};
    cbx_diag *d = diag ? diag : &local;
    size_t before = d->n;
    cbx_workflow *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->source = malloc(len + 1);
    if (!w->source) {
        free(w);
        return -ENOMEM;
    }
    memcpy(w->source, text, len);
    w->source[len] = 0;
    w->source_len = len;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_yaml_load_string(text, len, name, &w->doc, &e);
    if (r != 0) {
        cbx_diag_push(d, &e);
        cbx_workflow_free(w);
        cbx_diag_clear(&local);
        return r;
    }
    loader L = {.w = w, .reg = reg, .diag = d};
    parse_all(&L);
    cbx_sandbox_free(L.sb);
    if (d->n > before + 1)
        qsort(d->items + before, d->n - before, sizeof *d->items, by_position);
    r = L.fatal ? L.fatal : L.problems ? CBX_EINVAL_CONFIG : 0;
    cbx_diag_clear(&local);
    if (r == CBX_EINVAL_CONFIG && keep && w->out_of) { /* validate: the structure too */
        *out = w;
        return r;
    }
    if (r) {
        cbx_workflow_free(w);
        return r;
    }
    *out = w;
    return 0;
}

int cbx_workflow_load_string(cbx_workflow **out, const char *text, size_t len, const char *name,
                             const cbx_registry *reg, cbx_diag *diag)
{
    if (!out || !text)
        return -EINVAL;
    return load_text(out, text, len, name ? name : "workflow", reg, diag, 0);
}

static int load_file(cbx_workflow **out, const char *path, const cbx_registry *reg, cbx_diag *diag,
                     int keep)
{
    if (!out || !path)
        return -EINVAL;
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int r = -errno;
        if (diag)
            cbx_diag_add(diag, r, path, 0, 0, "%s", strerror(-r));
        return r;
    }
    size_t cap = 8192, len = 0, max = cbx_yaml_max_bytes();
    char *buf = malloc(cap);
    int r = 0;
    while (buf) {
        if (len == cap) {
            char *nb = cap >= max + 1 ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                r = cap >= max + 1 ? -EFBIG : -ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0)
            break;
        if (len > max) {
            r = -EFBIG;
            break;
        }
    }
    if (!buf)
        r = -ENOMEM;
    else if (!r && ferror(fp))
        r = -EIO;
    fclose(fp);
    if (r) {
        if (diag)
            cbx_diag_add(diag, r, path, 0, 0, "%s", strerror(-r));
        free(buf);
        return r;
    }
    r = load_text(out, buf, len, path, reg, diag, keep);
    free(buf);
    return r;
}

int cbx_workflow_load(cbx_workflow **out, const char *path, const cbx_registry *reg, cbx_diag *diag)
{
    return load_file(out, path, reg, diag, 0);
}

int cbx_workflow_validate(const char *path, const cbx_registry *reg, size_t max_markings,
                          cbx_diag *diag)
{
    if (!path || !diag)
        return -EINVAL;
    cbx_workflow *w = NULL;
    size_t before = diag->n;
    int r = load_file(&w, path, reg, diag, 1);
    if (w) {
        int c = cbx_workflow_check(w, max_markings, diag);
        if (c < 0)
            r = c;
        else if (c > 0 && r == 0)
            r = CBX_EINVAL_CONFIG;
        if (diag->n > before + 1)
            qsort(diag->items + before, diag->n - before, sizeof *diag->items, by_position);
        cbx_workflow_free(w);
    }
    return r;
}

void cbx_workflow_free(cbx_workflow *w)
{
    if (!w)
        return;
    cbx_yaml_doc_clear(&w->doc);
    free(w->source);
    free(w->name);
    free(w->helpers);
    for (size_t i = 0; i < w->nplaces; i++)
        free(w->places[i]);
    for (size_t i = 0; w->out_of && i < w->nplaces; i++)
        free(w->out_of[i]);
    free(w->out_of);
    free(w->nout_of);
    free(w->places);
    free(w->final);
    free(w->start);
    free(w->pline);
    free(w->pcol);
    for (size_t i = 0; i < w->nrules; i++) {
        cbx__wf_rule *r = &w->rules[i];
        free(r->name);
        free(r->desc);
        free(r->when);
        for (size_t k = 0; k < r->nrefs; k++)
            free(r->refs[k]);
        free(r->refs);
    }
    free(w->rules);
    for (size_t i = 0; i < w->ntrans; i++) {
        cbx__wf_trans *t = &w->trans[i];
        free(t->name);
        free(t->from);
        free(t->to);
        free(t->signal);
        for (size_t k = 0; k < t->nv_all; k++)
            free(t->v_all[k]);
        for (size_t k = 0; k < t->nv_any; k++)
            free(t->v_any[k]);
        free(t->v_all);
        free(t->v_any);
        free(t->r_all);
        free(t->r_any);
        free(t->executor);
        json_decref(t->config);
        json_decref(t->outputs);
        if (t->policy_owned)
            cbx_policy_free(t->policy);
    }
    free(w->trans);
    for (size_t i = 0; i < w->npols; i++) {
        free(w->pol_names[i]);
        cbx_policy_free(w->pols[i]);
    }
    free(w->pol_names);
    free(w->pols);
    free(w);
}

const char *cbx_workflow_name(const cbx_workflow *w)
{
    return w ? w->name : NULL;
}

const char *cbx_workflow_file(const cbx_workflow *w)
{
    return w ? w->doc.file : NULL;
}

size_t cbx_workflow_place_count(const cbx_workflow *w)
{
    return w ? w->nplaces : 0;
}

size_t cbx_workflow_transition_count(const cbx_workflow *w)
{
    return w ? w->ntrans : 0;
}
