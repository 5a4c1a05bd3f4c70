/* Loading a workflow: the Lua parts - helpers run in a check sandbox, rules compiled (syntax
 * errors at their line in the file) and their free names looked up (unknown helpers). */
#include "workflow/net_load.h"

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

static const char *const rule_keys[] = {"desc", "description", "when", NULL};
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
            if (prev != '.' && prev != ':' && !is_key && !cbx__wf_in_list(lua_keywords, name))
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
    cbx__wf_prob(c->L, c->path, CBX_EINVAL_CONFIG,
                 "rule '%s': unknown name '%s' (neither a helper, a built-in function nor token)",
                 c->rule, name);
}

void cbx__wf_load_helpers(loader *L, const json_t *v)
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
        cbx__wf_prob(L, "helpers", CBX_EINVAL_CONFIG, "helpers: expected Lua text, got %s",
                     cbx__wf_kind(v));
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
        cbx__wf_prob_at(L, line, text_col(w, line, w->helpers_col), CBX_EPARSE,
                        "helpers: Lua syntax error: %s", e.msg);
        L->helpers_broken = 1;
        return;
    }
    if (cbx_sandbox_call(L->sb, 0, 0, &e) != 0) {
        int line = lua_file_line(w->helpers, w->helpers_line, e.line);
        cbx__wf_prob_at(L, line, text_col(w, line, w->helpers_col), e.code, "helpers: %s", e.msg);
        L->helpers_broken = 1;
    }
}

/* ---- rules -------------------------------------------------------------------------------- */

void cbx__wf_parse_rules(loader *L, const json_t *v)
{
    cbx_workflow *w = L->w;
    if (!v || json_is_null(v))
        return;
    if (!json_is_object(v)) {
        cbx__wf_prob(L, "rules", CBX_EINVAL_CONFIG,
                     "rules: expected a mapping of names to {desc, when}, got %s", cbx__wf_kind(v));
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
        cbx__wf_pj(kp, "rules", key);
        if (!cbx__wf_name_ok(key)) {
            cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG,
                         "rule '%.64s': a name is 1 to 63 letters, digits, '_' or '-'", key);
            continue;
        }
        const json_t *when = spec;
        const json_t *desc = NULL;
        cbx__wf_textf(wp, sizeof wp, "%s", kp);
        if (json_is_object(spec)) {
            cbx__wf_unknown_keys(L, spec, rule_keys, kp, key);
            when = json_object_get(spec, "when");
            desc = json_object_get(spec, "desc");
            if (!desc)
                desc = json_object_get(spec, "description");
            cbx__wf_pj(wp, kp, "when");
        }
        if (!json_is_string(when) || !json_string_length(when)) {
            cbx__wf_prob(L, wp, CBX_EINVAL_CONFIG,
                         "rule '%s': expected when: a Lua expression over token, got %s", key,
                         when ? cbx__wf_kind(when) : "nothing");
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
            cbx__wf_prob_at(L, lua_file_line(r->when, r->line, e.line), r->col, CBX_EPARSE,
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
