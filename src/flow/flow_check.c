/* The checks across a loaded flow: names, executors and their literal parameters, templates and
 * what they refer to, needs, the dependencies they make, cycles and the order of the steps.
 *
 * Each scope (the flow's steps, or a composite's) is checked with its chain of enclosing scopes:
 * a reference is looked up from the innermost scope outwards, and becomes a dependency of the
 * step (or enclosing composite) that is a sibling of the step referred to. */
#include "flow/flow_check_outputs.h"
#include "flow/flow_check_types.h"
#include "flow/flow_load.h"
#include "flow/template_internal.h"

#include "cbx/template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

/* Text cut to its buffer on purpose: vsnprintf keeps the compiler's truncation checks, meant for
 * fixed formats, out of the way. */
static void textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void textf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

typedef struct scope_ctx scope_ctx;
struct scope_ctx {
    cbx__flow_step *steps;
    size_t n;
    const json_t *arr;  /* the steps as written (document nodes) */
    const char *path;   /* their node path: "steps", "steps[2].steps" */
    const char *prefix; /* "" or "outer." for nested names */
    int sequence;       /* mode: sequence (each step waits for the one before) */
    size_t cur;         /* the step being checked */
    json_t *index;      /* name -> position among the siblings */
    size_t *dep_stamp;  /* [d] == cur + 1: the step being checked depends on d already */
    scope_ctx *parent;
};

typedef struct checker {
    cbx__flow_loader *L;
    cbx_flow *f;
    const char **input_names; /* NULL-terminated */
    size_t ninputs;
    json_t *input_ix;    /* name -> true */
    size_t suggest_left; /* names that suggestions may still compare against (see below) */
} checker;

/* A suggestion compares the unknown name with every name in view: many unknown references among
 * many steps would make that quadratic, so the comparisons of one load are bounded; past the
 * bound, problems are reported without a suggestion. */
#define SUGGEST_BUDGET 2000000

static int may_suggest(checker *C, size_t cands)
{
    if (cands > C->suggest_left)
        return 0;
    C->suggest_left -= cands;
    return 1;
}

/* Where a template's references resolve. */
typedef struct ref_ctx {
    scope_ctx *sc;   /* NULL: step references are not allowed to matter (policies) */
    int deps;        /* 1: a reference makes a dependency of sc->cur */
    const char *ctx; /* "step 'x'", "outputs", "policy 'p'" */
} ref_ctx;

#define PROB(C, path, code, ...) cbx__flow_problem((C)->L, &(C)->f->doc, path, code, __VA_ARGS__)

static void path_index(char *buf, size_t len, const char *base, size_t i)
{
    textf(buf, len, "%s[%zu]", base, i);
}

static void path_key(char *buf, size_t len, const char *base, const char *key)
{
    textf(buf, len, "%s%s%s", base, base[0] ? "." : "", key);
}

/* ---- dependencies -------------------------------------------------------------------------- */

/* Step i of scope l depends on its sibling d. Each is added once: the stamp says whether i has it
 * already, so a step that needs thousands of others costs no more than that. */
static int add_dep(checker *C, scope_ctx *l, size_t i, size_t d)
{
    cbx__flow_step *s = &l->steps[i];
    if (!l->dep_stamp) {
        C->L->fatal = -ENOMEM;
        return -ENOMEM;
    }
    if (l->dep_stamp[d] == i + 1)
        return 0;
    if ((s->ndeps & (s->ndeps - 1)) == 0) { /* 0, 1, 2, 4...: the room is full */
        size_t *nd = realloc(s->deps, (s->ndeps ? s->ndeps * 2 : 1) * sizeof *nd);
        if (!nd) {
            C->L->fatal = -ENOMEM;
            return -ENOMEM;
        }
        s->deps = nd;
    }
    s->deps[s->ndeps++] = d;
    l->dep_stamp[d] = i + 1;
    return 0;
}

/* The names visible from sc, innermost first, for suggestions. Caller frees. */
static const char **visible_names(scope_ctx *sc)
{
    size_t n = 0;
    for (scope_ctx *l = sc; l; l = l->parent)
        n += l->n;
    const char **v = calloc(n + 1, sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (scope_ctx *l = sc; l; l = l->parent)
        for (size_t i = 0; i < l->n; i++)
            if (l->steps[i].name)
                v[k++] = l->steps[i].name;
    return v;
}

/* Resolve a reference to step `name` made at node path `at` (what: "config.url", "needs"). */
static void resolve_step(checker *C, const ref_ctx *rc, const char *name, const char *at,
                         const char *what)
{
    if (!rc->sc)
        return;
    for (scope_ctx *l = rc->sc; l; l = l->parent) {
        json_t *ix = json_object_get(l->index, name);
        if (ix) {
            size_t j = (size_t)json_integer_value(ix);
            if (!rc->deps)
                return;
            size_t rep = l->cur;
            if (j == rep) {
                if (l == rc->sc)
                    PROB(C, at, CBX_EINVAL_CONFIG,
                         "%s: %s: refers to the step itself (dependency cycle: %s -> %s)", rc->ctx,
                         what, name, name);
                else
                    PROB(C, at, CBX_EINVAL_CONFIG,
                         "%s: %s: refers to its enclosing step '%s%s', which ends only after it",
                         rc->ctx, what, l->prefix, name);
                return;
            }
            if (l->sequence && j > rep) {
                PROB(C, at, CBX_EINVAL_CONFIG,
                     "%s: %s: refers to step '%s%s', which runs after it in the sequence", rc->ctx,
                     what, l->prefix, name);
                return;
            }
            add_dep(C, l, rep, j);
            return;
        }
    }
    size_t in_view = 0;
    for (scope_ctx *l = rc->sc; l; l = l->parent)
        in_view += l->n;
    const char **names = may_suggest(C, in_view) ? visible_names(rc->sc) : NULL;
    const char *best = names ? cbx__flow_suggest(name, names) : NULL;
    if (best)
        PROB(C, at, CBX_EINVAL_CONFIG, "%s: %s: unknown step '%s'; did you mean '%s'?", rc->ctx,
             what, name, best);
    else
        PROB(C, at, CBX_EINVAL_CONFIG, "%s: %s: unknown step '%s'", rc->ctx, what, name);
    free(names);
}

static void resolve_input(checker *C, const ref_ctx *rc, const char *name, const char *at,
                          const char *what)
{
    if (json_object_get(C->input_ix, name))
        return;
    const char *best = may_suggest(C, C->ninputs) ? cbx__flow_suggest(name, C->input_names) : NULL;
    if (best)
        PROB(C, at, CBX_EINVAL_CONFIG, "%s: %s: unknown input '%s'; did you mean '%s'?", rc->ctx,
             what, name, best);
    else if (!C->input_names[0])
        PROB(C, at, CBX_EINVAL_CONFIG, "%s: %s: unknown input '%s' (the flow declares no inputs)",
             rc->ctx, what, name);
    else
        PROB(C, at, CBX_EINVAL_CONFIG, "%s: %s: unknown input '%s'", rc->ctx, what, name);
}

static void resolve_refs(checker *C, const ref_ctx *rc, json_t *inputs, json_t *steps,
                         const char *at, const char *what)
{
    size_t i;
    json_t *v;
    json_array_foreach(inputs, i, v) resolve_input(C, rc, json_string_value(v), at, what);
    json_array_foreach(steps, i, v) resolve_step(C, rc, json_string_value(v), at, what);
}

/* ---- outputs referred to ------------------------------------------------------------------- */

/* Each `steps.X.outputs.Y` in expr[0, len) where step X, found from rc's scope outwards, never
 * produces Y (flow_check_outputs.c). */
static void output_refs(checker *C, const ref_ctx *rc, const char *expr, size_t len, const char *at,
                        const char *what)
{
    if (!rc->sc || !C->L->reg)
        return;
    json_t *pairs = NULL;
    if (cbx__tpl_output_refs(expr, len, &pairs) < 0)
        C->L->fatal = -ENOMEM;
    size_t i;
    json_t *pair;
    json_array_foreach(pairs, i, pair)
    {
        const char *name = json_string_value(json_array_get(pair, 0));
        const char *key = json_string_value(json_array_get(pair, 1));
        for (scope_ctx *l = rc->sc; l; l = l->parent) {
            json_t *ix = json_object_get(l->index, name);
            if (!ix)
                continue;
            size_t j = (size_t)json_integer_value(ix);
            char msg[400];
            if (cbx__flow_output_problem(C->L->reg, C->f, &l->steps[j], json_array_get(l->arr, j),
                                         key, msg, sizeof msg))
                PROB(C, at, CBX_EINVAL_CONFIG, "%s: %s: %s", rc->ctx, what, msg);
            break;
        }
    }
    json_decref(pairs);
}

/* ---- templates ----------------------------------------------------------------------------- */

/* A function called by a name that no template can call: it would fail when rendered. */
static void unknown_calls(checker *C, const ref_ctx *rc, const char *expr, size_t len,
                          const char *at, const char *what)
{
    const char *name;
    size_t n;
    if (!cbx__tpl_unknown_call(expr, len, NULL, &name, &n))
        return;
    char word[64];
    textf(word, sizeof word, "%.*s", (int)(n < 63 ? n : 63), name);
    const char *best = cbx__flow_suggest(word, cbx__tpl_known_calls());
    PROB(C, at, CBX_EINVAL_CONFIG, "%s: %s: unknown helper '%s'%s%s%s", rc->ctx, what, word,
         best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
}

/* 1 when expr is exactly `word()` (spaces aside). */
static int only_call(const char *expr, const char *word)
{
    while (*expr == ' ' || *expr == '\t')
        expr++;
    size_t n = strlen(word);
    if (strncmp(expr, word, n) != 0)
        return 0;
    for (expr += n; *expr == ' ' || *expr == '\t'; expr++)
        ;
    if (*expr++ != '(')
        return 0;
    while (*expr == ' ' || *expr == '\t')
        expr++;
    if (*expr++ != ')')
        return 0;
    while (*expr == ' ' || *expr == '\t')
        expr++;
    return *expr == '\0';
}

/* Every string with templates in v: syntax, then references. at/what grow as the walk goes
 * down (node path and the path shown in messages). */
static void walk_templates(checker *C, const ref_ctx *rc, const json_t *v, char *at, size_t acap,
                           char *what, size_t wcap)
{
    size_t alen = strlen(at), wlen = strlen(what);
    switch (json_typeof(v)) {
    case JSON_STRING: {
        if (!cbx_template_has(v))
            return;
        cbx_err e;
        cbx_err_clear(&e);
        int r = cbx_template_check(v, &e);
        if (r == -ENOMEM) {
            C->L->fatal = r;
            return;
        }
        if (r < 0) {
            PROB(C, at, r, "%s: %s: %s", rc->ctx, what, e.msg);
            return;
        }
        json_t *ins = NULL, *sts = NULL;
        if (cbx_template_refs(v, &ins, &sts) < 0)
            C->L->fatal = -ENOMEM;
        resolve_refs(C, rc, ins, sts, at, what);
        json_decref(ins);
        json_decref(sts);
        const char *str = json_string_value(v);
        cbx__tpl_span sp;
        for (size_t pos = 0; cbx__tpl_next(str, json_string_length(v), pos, &sp) == 1;
             pos = sp.close) {
            unknown_calls(C, rc, str + sp.expr, sp.expr_end - sp.expr, at, what);
            output_refs(C, rc, str + sp.expr, sp.expr_end - sp.expr, at, what);
        }
        return;
    }
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++) {
            textf(at + alen, acap - alen, "[%zu]", i);
            textf(what + wlen, wcap - wlen, "[%zu]", i);
            walk_templates(C, rc, json_array_get(v, i), at, acap, what, wcap);
        }
        break;
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            textf(at + alen, acap - alen, "%s%s", alen ? "." : "", k);
            textf(what + wlen, wcap - wlen, "%s%s", wlen ? "." : "", k);
            walk_templates(C, rc, x, at, acap, what, wcap);
        }
        break;
    }
    default:
        break;
    }
    at[alen] = '\0';
    what[wlen] = '\0';
}

static void check_value_templates(checker *C, const ref_ctx *rc, const json_t *v, const char *at,
                                  const char *what)
{
    char a[CBX__FLOW_PATH_MAX], w[CBX__FLOW_PATH_MAX];
    textf(a, sizeof a, "%s", at);
    textf(w, sizeof w, "%s", what);
    walk_templates(C, rc, v, a, sizeof a, w, sizeof w);
}

static void check_expression(checker *C, const ref_ctx *rc, const char *expr, const char *at,
                             const char *what)
{
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_template_check_expr(expr, &e);
    if (r == -ENOMEM) {
        C->L->fatal = r;
        return;
    }
    if (r < 0) {
        PROB(C, at, r, "%s: %s: %s", rc->ctx, what, e.msg);
        return;
    }
    json_t *ins = NULL, *sts = NULL;
    if (cbx_template_refs_expr(expr, &ins, &sts) < 0)
        C->L->fatal = -ENOMEM;
    resolve_refs(C, rc, ins, sts, at, what);
    json_decref(ins);
    json_decref(sts);
    output_refs(C, rc, expr, strlen(expr), at, what);
    /* when: always() / failure() are the runner's (flow_run.c), as the whole condition */
    if (strcmp(what, "when") != 0 || (!only_call(expr, "always") && !only_call(expr, "failure")))
        unknown_calls(C, rc, expr, strlen(expr), at, what);
}

/* ---- executors and their parameters -------------------------------------------------------- */

/* The value at a parameter path ("headers.Authorization", "argv[2]") in v, or NULL. */
static const json_t *value_at(const json_t *v, const char *path)
{
    const char *p = path;
    while (v && *p) {
        if (*p == '[') {
            char *end;
            unsigned long long i = strtoull(p + 1, &end, 10);
            if (*end != ']' || !json_is_array(v))
                return NULL;
            v = json_array_get(v, (size_t)i);
            p = end + 1;
        } else {
            if (*p == '.')
                p++;
            size_t n = strcspn(p, ".[");
            if (!json_is_object(v))
                return NULL;
            char key[256];
            textf(key, sizeof key, "%.*s", (int)(n < 255 ? n : 255), p);
            v = json_object_get(v, key);
            p += n;
        }
    }
    return v;
}

static void param_problem(checker *C, const char *spath, const char *ctx, const cbx_err *e)
{
    char at[CBX__FLOW_PATH_MAX];
    if (e->where[0])
        textf(at, sizeof at, "%s.config.%s", spath, e->where);
    else
        textf(at, sizeof at, "%s.config", spath);
    int code = e->code < 0 ? e->code : CBX_EINVAL_CONFIG;
    if (code == -ENOMEM) {
        C->L->fatal = code;
        return;
    }
    size_t wl = strlen(e->where);
    if (wl && strncmp(e->msg, e->where, wl) == 0 && e->msg[wl] == ':')
        PROB(C, at, code, "%s: config.%s", ctx, e->msg); /* the message names it already */
    else if (e->where[0])
        PROB(C, at, code, "%s: config.%s: %s", ctx, e->where, e->msg);
    else
        PROB(C, at, code, "%s: config: %s", ctx, e->msg);
}

/* A templated value (or array item) whose type is known before the run and cannot be its
 * parameter's: refused now rather than when the step runs (flow_check_types.c). */
static void template_types(checker *C, const cbx_executor_type *t, const char *key, const json_t *v,
                           const char *spath, const char *ctx)
{
    const cbx_param *p = t->params;
    while (p && p->name && strcmp(p->name, key) != 0)
        p++;
    if (!p || !p->name)
        return;
    cbx_err e;
    cbx_err_clear(&e);
    e.code = CBX_EINVAL_CONFIG;
    if (json_is_string(v) && cbx_template_has(v) &&
        cbx__flow_template_type_problem(C->f, v, p->type, e.msg, sizeof e.msg)) {
        textf(e.where, sizeof e.where, "%s", key);
        param_problem(C, spath, ctx, &e);
    }
    for (size_t i = 0; p->type == CBX_PARAM_ARRAY && json_is_array(v) && i < json_array_size(v);
         i++) {
        const json_t *it = json_array_get(v, i);
        if (json_is_string(it) && cbx_template_has(it) &&
            cbx__flow_template_type_problem(C->f, it, p->items, e.msg, sizeof e.msg)) {
            textf(e.where, sizeof e.where, "%s[%zu]", key, i);
            param_problem(C, spath, ctx, &e);
        }
    }
}

static void check_executor(checker *C, const cbx__flow_step *s, const char *spath, const char *ctx)
{
    const cbx_registry *reg = C->L->reg;
    char at[CBX__FLOW_PATH_MAX];
    const cbx_executor_type *t = cbx_registry_find(reg, s->executor);
    if (!t) {
        size_t n = cbx_registry_list(reg, NULL, 0);
        const cbx_executor_type **types = calloc(n + 1, sizeof(const cbx_executor_type *));
        const char **names = calloc(n + 2, sizeof *names);
        const char *best = NULL;
        if (types && names) {
            cbx_registry_list(reg, types, n);
            for (size_t i = 0; i < n; i++)
                names[i] = types[i]->name;
            names[n] = "steps";
            best = cbx__flow_suggest(s->executor, names);
        }
        path_key(at, sizeof at, spath, "executor");
        if (best)
            PROB(C, at, CBX_EUNKNOWN_TYPE, "%s: unknown executor '%s'; did you mean '%s'?", ctx,
                 s->executor, best);
        else
            PROB(C, at, CBX_EUNKNOWN_TYPE, "%s: unknown executor '%s'", ctx, s->executor);
        free(types);
        free(names);
        return;
    }
    if (!json_is_object(s->config)) /* config: "{{ ... }}" as a whole: known when it runs */
        return;
    cbx_diag d = {0};
    if (!cbx_template_has(s->config)) {
        cbx_registry_validate(reg, s->executor, s->config, NULL, &d);
        for (size_t i = 0; i < d.n; i++)
            param_problem(C, spath, ctx, &d.items[i]);
        cbx_diag_clear(&d);
        return;
    }
    /* Templated values count as present and are not type-checked: they are left out of the
     * copy that is validated, and what is said about them is dropped. The type's validate hook
     * sees only whole parameters, so it waits for the rendered values at run time. */
    json_t *copy = json_object();
    if (!copy) {
        C->L->fatal = -ENOMEM;
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(s->config, key, v)
    {
        template_types(C, t, key, v, spath, ctx);
        if (json_is_string(v) && cbx_template_has(v)) {
            int known = 0;
            for (const cbx_param *p = t->params; p && p->name && !known; p++)
                known = strcmp(p->name, key) == 0;
            if (!known) {
                cbx_err e;
                cbx_err_clear(&e);
                e.code = CBX_EINVAL_CONFIG;
                textf(e.where, sizeof e.where, "%s", key);
                const char **names = NULL;
                size_t np = 0;
                while (t->params && t->params[np].name)
                    np++;
                names = calloc(np + 1, sizeof *names);
                for (size_t i = 0; names && i < np; i++)
                    names[i] = t->params[i].name;
                const char *best = names ? cbx__flow_suggest(key, names) : NULL;
                if (best)
                    textf(e.msg, sizeof e.msg, "unknown parameter '%.200s'; did you mean '%s'?",
                          key, best);
                else
                    textf(e.msg, sizeof e.msg, "unknown parameter '%.200s'", key);
                free(names);
                param_problem(C, spath, ctx, &e);
            }
            continue;
        }
        json_object_set(copy, key, v);
    }
    cbx_schema_validate(t->params, copy, NULL, &d);
    for (size_t i = 0; i < d.n; i++) {
        const cbx_err *e = &d.items[i];
        char first[256];
        textf(first, sizeof first, "%.*s", (int)strcspn(e->where, ".["), e->where);
        const json_t *orig = json_object_get(s->config, first);
        if (orig && !json_object_get(copy, first))
            continue; /* "missing": it is there, as a template */
        const json_t *at_v = value_at(s->config, e->where);
        if (at_v && cbx_template_has(at_v))
            continue;
        param_problem(C, spath, ctx, e);
    }
    cbx_diag_clear(&d);
    json_decref(copy);
}

/* ---- sub-flow inputs ----------------------------------------------------------------------- */

static void check_subflow_inputs(checker *C, const cbx__flow_step *s, const char *spath,
                                 const char *ctx)
{
    const cbx_flow *sub = s->subflow;
    char at[CBX__FLOW_PATH_MAX];
    const char **names = calloc(sub->ninputs + 1, sizeof *names);
    if (!names) {
        C->L->fatal = -ENOMEM;
        return;
    }
    for (size_t i = 0; i < sub->ninputs; i++)
        names[i] = sub->inputs[i].name;
    if (s->subflow_inputs) {
        const char *key;
        json_t *v;
        json_object_foreach(s->subflow_inputs, key, v)
        {
            textf(at, sizeof at, "%s.inputs.%s", spath, key);
            const cbx__flow_input *in = NULL;
            for (size_t i = 0; i < sub->ninputs && !in; i++)
                if (strcmp(sub->inputs[i].name, key) == 0)
                    in = &sub->inputs[i];
            if (!in) {
                const char *best = cbx__flow_suggest(key, names);
                if (best)
                    PROB(C, at, CBX_EINVAL_CONFIG,
                         "%s: inputs: flow '%s' has no input '%s'; did you mean '%s'?", ctx,
                         sub->name, key, best);
                else
                    PROB(C, at, CBX_EINVAL_CONFIG, "%s: inputs: flow '%s' has no input '%s'", ctx,
                         sub->name, key);
                continue;
            }
            char msg[400];
            if (!cbx_template_has(v) && cbx__flow_input_check(in, v, msg, sizeof msg) < 0)
                PROB(C, at, CBX_EINVAL_CONFIG, "%s: inputs.%s: %s", ctx, key, msg);
        }
    }
    for (size_t i = 0; i < sub->ninputs; i++) {
        const cbx__flow_input *in = &sub->inputs[i];
        if (!in->required || in->def ||
            (s->subflow_inputs && json_object_get(s->subflow_inputs, in->name)))
            continue;
        path_key(at, sizeof at, spath, s->subflow_inputs ? "inputs" : "flow");
        PROB(C, at, CBX_EINVAL_CONFIG, "%s: inputs: missing required input '%s' (%s) of flow '%s'",
             ctx, in->name, cbx_param_type_name(in->type), sub->name);
    }
    free(names);
}

/* ---- cycles and order ---------------------------------------------------------------------- */

typedef struct cycle_state {
    checker *C;
    scope_ctx *sc;
    unsigned char *color; /* 0 new, 1 on the path, 2 done */
    size_t *stack;        /* the path being walked, root first */
    size_t *next;         /* for each entry of stack, the next of its deps to follow */
    size_t depth;
} cycle_state;

static void report_cycle(cycle_state *cs, size_t from)
{
    /* the steps on the path from `from` wait each for the next; shown in the order they would
     * run, starting with the one written first */
    size_t len = cs->depth - from;
    if (len == 0)
        return;
    size_t first = from;
    for (size_t k = from; k < cs->depth; k++)
        if (cs->stack[k] < cs->stack[first])
            first = k;
    char text[400] = "";
    size_t n = 0;
    for (size_t m = 0; m <= len && n < sizeof text; m++) {
        /* walking backwards from `first` gives the run order */
        size_t k = from + ((first - from) + len - (m % len)) % len;
        const cbx__flow_step *s = &cs->sc->steps[cs->stack[k]];
        n += (size_t)snprintf(text + n, sizeof text - n, "%s%s%s", m ? " -> " : "", cs->sc->prefix,
                              s->name ? s->name : "?");
    }
    char at[CBX__FLOW_PATH_MAX];
    path_index(at, sizeof at, cs->sc->path, cs->stack[first]);
    const cbx__flow_step *s = &cs->sc->steps[cs->stack[first]];
    cbx__flow_problem(cs->C->L, &cs->C->f->doc, at, CBX_EINVAL_CONFIG,
                      "step '%s%s': dependency cycle: %s", cs->sc->prefix, s->name ? s->name : "?",
                      text);
}

static void dfs(cycle_state *cs, size_t root)
{
    /* an explicit stack: a chain of steps as long as the file allows must not recurse */
    cs->color[root] = 1;
    cs->stack[0] = root;
    cs->next[0] = 0;
    cs->depth = 1;
    while (cs->depth) {
        size_t top = cs->depth - 1, i = cs->stack[top];
        const cbx__flow_step *s = &cs->sc->steps[i];
        if (cs->next[top] == s->ndeps) {
            cs->color[i] = 2;
            cs->depth--;
            continue;
        }
        size_t d = s->deps[cs->next[top]++];
        if (cs->color[d] == 1) {
            size_t from = 0;
            while (cs->stack[from] != d)
                from++;
            report_cycle(cs, from);
        } else if (cs->color[d] == 0) {
            cs->color[d] = 1;
            cs->stack[cs->depth] = d;
            cs->next[cs->depth] = 0;
            cs->depth++;
        }
    }
}

static void check_cycles(checker *C, scope_ctx *sc)
{
    cycle_state cs = {.C = C, .sc = sc};
    cs.color = calloc(sc->n + 1, 1);
    cs.stack = calloc(sc->n + 1, sizeof *cs.stack);
    cs.next = calloc(sc->n + 1, sizeof *cs.next);
    if (cs.color && cs.stack && cs.next) {
        for (size_t i = 0; i < sc->n; i++)
            if (cs.color[i] == 0)
                dfs(&cs, i);
    } else {
        C->L->fatal = -ENOMEM;
    }
    free(cs.color);
    free(cs.stack);
    free(cs.next);
}

/* A topological order (Kahn's, ready steps taken in the order they became ready, the earlier
 * written first); steps left on a cycle go last, in file order. */
static size_t *topo_order(const cbx__flow_step *steps, size_t n)
{
    size_t *order = calloc(n + 1, sizeof *order);
    size_t *left = calloc(n + 1, sizeof *left);
    size_t *start = calloc(n + 2, sizeof *start); /* dependents of i: rev[start[i], start[i+1]) */
    size_t *rev = NULL;
    size_t edges = 0;
    for (size_t i = 0; i < n; i++)
        edges += steps[i].ndeps;
    rev = calloc(edges + 1, sizeof *rev);
    if (!order || !left || !start || !rev) {
        free(order);
        order = NULL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        left[i] = steps[i].ndeps;
        for (size_t d = 0; d < steps[i].ndeps; d++)
            start[steps[i].deps[d] + 1]++;
    }
    for (size_t i = 0; i < n; i++)
        start[i + 1] += start[i];
    size_t *fill = calloc(n + 1, sizeof *fill);
    if (!fill) {
        free(order);
        order = NULL;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < steps[i].ndeps; d++) {
            size_t dep = steps[i].deps[d];
            rev[start[dep] + fill[dep]++] = i;
        }
    free(fill);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (left[i] == 0)
            order[k++] = i;
    for (size_t head = 0; head < k; head++) {
        size_t i = order[head];
        for (size_t e = start[i]; e < start[i + 1]; e++)
            if (--left[rev[e]] == 0)
                order[k++] = rev[e];
    }
    if (k < n) { /* on a cycle: in file order */
        unsigned char *placed = calloc(n + 1, 1);
        if (!placed) {
            free(order);
            order = NULL;
            goto out;
        }
        for (size_t j = 0; j < k; j++)
            placed[order[j]] = 1;
        for (size_t i = 0; i < n; i++)
            if (!placed[i])
                order[k++] = i;
        free(placed);
    }
out:
    free(left);
    free(start);
    free(rev);
    return order;
}

/* ---- steps --------------------------------------------------------------------------------- */

static void check_scope(checker *C, scope_ctx *sc);

static void check_step(checker *C, scope_ctx *sc, size_t i)
{
    cbx__flow_step *s = &sc->steps[i];
    const json_t *node = json_array_get(sc->arr, i);
    if (!json_is_object(node))
        return;
    char spath[CBX__FLOW_PATH_MAX], ctx[240], at[CBX__FLOW_PATH_MAX];
    path_index(spath, sizeof spath, sc->path, i);
    if (s->name)
        textf(ctx, sizeof ctx, "step '%s%s'", sc->prefix, s->name);
    else
        textf(ctx, sizeof ctx, "%s", spath);
    ref_ctx rc = {.sc = sc, .deps = 1, .ctx = ctx};

    /* a sequence: each step waits for the one before it */
    if (sc->sequence && i > 0)
        add_dep(C, sc, i, i - 1);

    /* parameters are checked only when config: was readable (a problem was reported if not) */
    const json_t *cfg = json_object_get(node, "config");
    if (s->executor && strcmp(s->executor, "steps") != 0 && C->L->reg &&
        (!cfg || json_typeof(cfg) == json_typeof(s->config)))
        check_executor(C, s, spath, ctx);

    if (s->config && cbx_template_has(s->config)) {
        path_key(at, sizeof at, spath, "config");
        check_value_templates(C, &rc, s->config, at, "config");
    }
    if (s->when) {
        path_key(at, sizeof at, spath, "when");
        check_expression(C, &rc, s->when, at, "when");
    }
    if (s->foreach) {
        path_key(at, sizeof at, spath, "foreach");
        check_expression(C, &rc, s->foreach, at, "foreach");
    }
    if (s->subflow_inputs) {
        path_key(at, sizeof at, spath, "inputs");
        check_value_templates(C, &rc, s->subflow_inputs, at, "inputs");
    }
    if (s->subflow)
        check_subflow_inputs(C, s, spath, ctx);
    if (s->owns_policy) {
        ref_ctx prc = {.sc = NULL, .ctx = ctx};
        path_key(at, sizeof at, spath, "policy");
        check_value_templates(C, &prc, json_object_get(node, "policy"), at, "policy");
    }

    json_t *needs = json_object_get(node, "needs");
    if (json_is_string(needs)) {
        path_key(at, sizeof at, spath, "needs");
        resolve_step(C, &rc, json_string_value(needs), at, "needs");
    } else if (json_is_array(needs)) {
        size_t k;
        json_t *nv;
        json_array_foreach(needs, k, nv)
        {
            if (!json_is_string(nv))
                continue;
            char np[CBX__FLOW_PATH_MAX];
            path_key(np, sizeof np, spath, "needs");
            path_index(at, sizeof at, np, k);
            resolve_step(C, &rc, json_string_value(nv), at, "needs");
        }
    }

    if (s->nchildren) {
        char cpath[CBX__FLOW_PATH_MAX], prefix[240];
        path_key(cpath, sizeof cpath, spath, "steps");
        textf(prefix, sizeof prefix, "%s%s.", sc->prefix, s->name ? s->name : "?");
        scope_ctx child = {.steps = s->children,
                           .n = s->nchildren,
                           .arr = json_object_get(node, "steps"),
                           .path = cpath,
                           .prefix = prefix,
                           .sequence = !s->parallel,
                           .parent = sc};
        check_scope(C, &child);
    }
}

static void check_scope(checker *C, scope_ctx *sc)
{
    char at[CBX__FLOW_PATH_MAX], np[CBX__FLOW_PATH_MAX];
    json_t *own = sc->index ? NULL : (sc->index = json_object());
    if (!sc->index) {
        C->L->fatal = -ENOMEM;
        return;
    }
    for (size_t i = 0; i < sc->n; i++) {
        const cbx__flow_step *s = &sc->steps[i];
        if (!s->name)
            continue;
        json_t *first = json_object_get(sc->index, s->name);
        if (first) {
            const cbx__flow_step *f = &sc->steps[json_integer_value(first)];
            path_index(np, sizeof np, sc->path, i);
            path_key(at, sizeof at, np, "name");
            PROB(C, at, CBX_EINVAL_CONFIG, "step '%s%s': duplicate name (first used at line %d)",
                 sc->prefix, s->name, f->line);
            continue;
        }
        if (json_object_set_new(sc->index, s->name, json_integer((json_int_t)i)) < 0)
            C->L->fatal = -ENOMEM;
    }
    sc->dep_stamp = calloc(sc->n + 1, sizeof *sc->dep_stamp);
    for (size_t i = 0; i < sc->n; i++) {
        sc->cur = i;
        check_step(C, sc, i);
    }
    free(sc->dep_stamp);
    sc->dep_stamp = NULL;
    check_cycles(C, sc);
    if (own) {
        json_decref(own);
        sc->index = NULL;
    }
}

void cbx__flow_check(cbx__flow_loader *L, cbx_flow *f)
{
    checker C = {.L = L, .f = f, .ninputs = f->ninputs, .suggest_left = SUGGEST_BUDGET};
    C.input_names = calloc(f->ninputs + 1, sizeof *C.input_names);
    if (!C.input_names) {
        L->fatal = -ENOMEM;
        return;
    }
    C.input_ix = json_object();
    for (size_t i = 0; i < f->ninputs; i++) {
        C.input_names[i] = f->inputs[i].name;
        if (!C.input_ix || json_object_set_new(C.input_ix, f->inputs[i].name, json_true()) < 0)
            L->fatal = -ENOMEM;
    }

    const json_t *root = f->doc.root;
    scope_ctx top = {.steps = f->steps,
                     .n = f->nsteps,
                     .arr = json_object_get(root, "steps"),
                     .path = "steps",
                     .prefix = "",
                     .index = json_object()};
    if (!top.index)
        L->fatal = -ENOMEM;
    else if (json_is_array(top.arr))
        check_scope(&C, &top);

    /* outputs see the flow's steps, and depend on nothing */
    if (f->outputs) {
        top.cur = (size_t)-1;
        ref_ctx rc = {.sc = &top, .deps = 0, .ctx = "outputs"};
        const char *key;
        json_t *v;
        json_object_foreach(f->outputs, key, v)
        {
            char at[CBX__FLOW_PATH_MAX], what[CBX__FLOW_PATH_MAX];
            path_key(at, sizeof at, "outputs", key);
            textf(what, sizeof what, "%s", key);
            rc.ctx = "outputs";
            check_value_templates(&C, &rc, v, at, what);
        }
    }
    /* policy blocks (breaker keys) may refer to inputs */
    json_t *pols = json_object_get(root, "policies");
    if (json_is_object(pols)) {
        const char *key;
        json_t *block;
        json_object_foreach(pols, key, block)
        {
            char at[CBX__FLOW_PATH_MAX], ctx[128];
            path_key(at, sizeof at, "policies", key);
            textf(ctx, sizeof ctx, "policy '%.64s'", key);
            ref_ctx rc = {.sc = NULL, .ctx = ctx};
            check_value_templates(&C, &rc, block, at, "");
        }
    }
    free(C.input_names);
    json_decref(C.input_ix);
    json_decref(top.index);

    free(f->order);
    f->order = topo_order(f->steps, f->nsteps);
    if (!f->order)
        L->fatal = -ENOMEM;
}
