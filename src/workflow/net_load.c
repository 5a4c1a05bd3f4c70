/* Loading a workflow file: YAML into places, rules, helpers and transitions, each part checked,
 * every problem reported with its file:line:col. This file: the top level, places, policies and
 * limits, the problems' helpers, and freeing. */
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

static const char *const top_keys[] = {"name",   "description", "version", "helpers", "rules",
                                       "places", "states",      "start",   "final",   "policies",
                                       "limits", "transitions", "runs_on", NULL};
static const char *const limit_keys[] = {"firings_per_token", "rule_instructions", "rule_memory",
                                         NULL};

void cbx__wf_prob(loader *L, const char *path, int code, const char *fmt, ...)
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
void cbx__wf_prob_at(loader *L, int line, int col, int code, const char *fmt, ...)
{
    char msg[sizeof((cbx_err *)0)->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cbx_diag_add(L->diag, code, L->w->doc.file ? L->w->doc.file : "", line, col, "%s", msg);
    L->problems++;
}

const char *cbx__wf_pj(char *buf, const char *base, const char *key)
{
    cbx__wf_textf(buf, PATH_MAX_WF, "%s%s%s", base, *base ? "." : "", key);
    return buf;
}

const char *cbx__wf_kind(const json_t *v)
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

int cbx__wf_name_ok(const char *s)
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

int cbx__wf_in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

void cbx__wf_unknown_keys(loader *L, const json_t *obj, const char *const *known, const char *path,
                          const char *ctx)
{
    const char *key;
    json_t *v;
    char kp[PATH_MAX_WF];
    json_object_foreach((json_t *)obj, key, v)
    {
        if (cbx__wf_in_list(known, key))
            continue;
        const char *best = cbx__flow_suggest(key, known);
        cbx__wf_prob(L, cbx__wf_pj(kp, path, key), CBX_EUNKNOWN_KEY, "%s: unknown key '%s'%s%s%s",
                     ctx, key, best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
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

/* ---- places ------------------------------------------------------------------------------- */

static void parse_places(loader *L, const json_t *v, const char *key)
{
    cbx_workflow *w = L->w;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        cbx__wf_prob(L, key, CBX_EINVAL_CONFIG, "%s: expected a list of place names, got %s", key,
                     v ? cbx__wf_kind(v) : "nothing");
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
        if (!json_is_string(it) || !cbx__wf_name_ok(json_string_value(it))) {
            cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG,
                         "%s: a place name is 1 to 63 letters, digits, '_' or '-'", kp);
            continue;
        }
        const char *name = json_string_value(it);
        if (cbx__wf_place(w, name) != NPOS) {
            cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG, "place '%s' is listed twice", name);
            continue;
        }
        cbx_yaml_where(&w->doc, kp, &w->pline[w->nplaces], &w->pcol[w->nplaces]);
        w->places[w->nplaces++] = strdup(name);
        if (!w->places[w->nplaces - 1])
            L->fatal = -ENOMEM;
    }
}

/* A place or a list of places, as indexes; unknown names are problems. */
size_t *cbx__wf_place_list(loader *L, const json_t *v, const char *path, const char *ctx, size_t *n)
{
    *n = 0;
    if (!v) {
        cbx__wf_prob(L, path, CBX_EINVAL_CONFIG, "%s: missing", ctx);
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
            cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG, "%s: expected a place name, got %s", ctx,
                         cbx__wf_kind(it));
            continue;
        }
        size_t p = cbx__wf_place(L->w, json_string_value(it));
        if (p == NPOS) {
            const char *best =
                cbx__flow_suggest(json_string_value(it), (const char *const *)L->w->places);
            cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG, "%s: unknown place '%s'%s%s%s", ctx,
                         json_string_value(it), best ? "; did you mean '" : "", best ? best : "",
                         best ? "'?" : "");
            continue;
        }
        int dup = 0;
        for (size_t k = 0; k < *n; k++)
            dup |= out[k] == p;
        if (dup) {
            cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG, "%s: place '%s' given twice", ctx,
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
    size_t *ix = cbx__wf_place_list(L, v, key, key, &n);
    for (size_t i = 0; i < n; i++)
        flags[ix[i]] = 1;
    free(ix);
}

/* ---- policies and limits ------------------------------------------------------------------ */

int cbx__wf_make_policy(loader *L, const json_t *block, const char *name, const char *path,
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
        cbx__wf_prob(L, cbx__wf_pj(kp, path, e.where), r, "%s: %s: %s", ctx, e.where, e.msg);
    else
        cbx__wf_prob(L, path, r, "%s: %s", ctx, e.msg[0] ? e.msg : cbx_strerror(r));
    return r;
}

static void parse_policies(loader *L, const json_t *v)
{
    cbx_workflow *w = L->w;
    if (!v || json_is_null(v))
        return;
    if (!json_is_object(v)) {
        cbx__wf_prob(L, "policies", CBX_EINVAL_CONFIG,
                     "policies: expected a mapping of named blocks");
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
        cbx__wf_pj(kp, "policies", key);
        cbx__wf_textf(ctx, sizeof ctx, "policy '%.64s'", key);
        cbx_policy *p = NULL;
        if (!json_is_object(b)) {
            cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG, "%s: expected a mapping", ctx);
            continue;
        }
        if (cbx__wf_make_policy(L, b, key, kp, ctx, &p) == 0) {
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
        cbx__wf_prob(L, cbx__wf_pj(kp, "limits", key), CBX_EINVAL_CONFIG,
                     "limits.%s: expected a whole number of at least %llu", key,
                     (unsigned long long)min);
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
        cbx__wf_prob(L, "limits", CBX_EINVAL_CONFIG, "limits: expected a mapping");
        return;
    }
    cbx__wf_unknown_keys(L, v, limit_keys, "limits", "limits");
    w->max_firings = (uint32_t)limit_int(L, v, "firings_per_token", w->max_firings, 1);
    w->rule_instructions = limit_int(L, v, "rule_instructions", w->rule_instructions, 1000);
    w->rule_memory = (size_t)limit_int(L, v, "rule_memory", w->rule_memory, 1u << 20);
}

static void parse_all(loader *L)
{
    cbx_workflow *w = L->w;
    json_t *root = w->doc.root;
    if (!json_is_object(root)) {
        cbx__wf_prob(L, "", CBX_EINVAL_CONFIG,
                     "expected a workflow (a mapping with places and transitions), got %s",
                     root ? cbx__wf_kind(root) : "an empty file");
        return;
    }
    cbx__wf_unknown_keys(L, root, top_keys, "", "workflow");
    const json_t *name = json_object_get(root, "name");
    if (name && !json_is_string(name))
        cbx__wf_prob(L, "name", CBX_EINVAL_CONFIG, "name: expected text");
    w->name = strdup(json_is_string(name) ? json_string_value(name) : "workflow");
    cbx__wf_load_helpers(L, json_object_get(root, "helpers"));
    if (L->fatal)
        return;
    cbx__wf_parse_rules(L, json_object_get(root, "rules"));
    const char *pkey = json_object_get(root, "places") ? "places" : "states";
    if (json_object_get(root, "places") && json_object_get(root, "states"))
        cbx__wf_prob(L, "states", CBX_EINVAL_CONFIG,
                     "states: is another name for places; keep one");
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
    cbx__wf_parse_runs_on(L, root, "", "workflow", &w->runs_on);
    const json_t *tr = json_object_get(root, "transitions");
    if (!json_is_array(tr) || json_array_size(tr) == 0) {
        cbx__wf_prob(L, tr ? "transitions" : "", CBX_EINVAL_CONFIG,
                     "transitions: expected a list of transitions");
        return;
    }
    w->trans = calloc(json_array_size(tr), sizeof *w->trans);
    if (!w->trans) {
        L->fatal = -ENOMEM;
        return;
    }
    for (size_t i = 0; i < json_array_size(tr) && !L->fatal; i++)
        cbx__wf_parse_transition(L, json_array_get(tr, i), i);
    if (!L->fatal)
        cbx__wf_index_transitions(L);
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
    int r = buf ? 0 : -ENOMEM;
    while (r == 0) {
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
    if (!r && ferror(fp))
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
    free(w->runs_on);
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
        free(t->runs_on);
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
