/* Loading a flow file: YAML (or JSON) into a cbx_flow, every value's shape checked where it is
 * read. The checks across the structure (executors, templates, references, cycles) are in
 * flow_check.c; both report into one list, so that a file's problems come all at once. */
#include "flow/flow_execution.h"
#include "flow/flow_load.h"
#include "flow/runs_on.h"
#include "flow/template_internal.h"
#include "runtime/builtins.h"

#include "cbx/template.h"
#include "cbx/units.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct parser {
    cbx__flow_loader *L;
    cbx_flow *f;
    char dir[PATH_MAX];  /* where sub-flow paths are resolved from */
    json_t *input_ix;    /* input name -> 1, to find a name declared twice */
    json_t *policy_ix;   /* policy name -> its index in f->policies */
    size_t suggest_left; /* policy names that suggestions may still compare against */
} parser;

/* Suggestions for unknown policy names compare with every policy declared: bounded per load, as
 * in flow_check.c, so that many steps naming unknown policies among many do not cost n^2. */
#define SUGGEST_BUDGET 2000000

#define PROB(P, path, code, ...) cbx__flow_problem((P)->L, &(P)->f->doc, path, code, __VA_ARGS__)

static const char *const top_keys[] = {
    "name",    "version",     "description", "inputs",   "policies", "steps", "outputs",
    "timeout", "concurrency", "config",      "requires", "runs_on",  NULL};
static const char *const step_keys[] = {"name",
                                        "description",
                                        "executor",
                                        "config",
                                        "policy",
                                        "needs",
                                        "when",
                                        "foreach",
                                        "batch_size",
                                        "parallelism",
                                        "continue_on_error",
                                        "timeout",
                                        "steps",
                                        "mode",
                                        "flow",
                                        "inputs",
                                        "runs_on",
                                        NULL};
static const char *const input_keys[] = {"name", "type",        "required", "default",
                                         "enum", "description", NULL};
static const char *const input_types[] = {"string", "integer", "number", "boolean",
                                          "array",  "object",  "any",    NULL};
static const char *const modes[] = {"sequence", "parallel", NULL};

#define DURATION_HINT "a duration like 30s or 250ms (a bare number is milliseconds)"

/* ---- shared helpers ------------------------------------------------------------------------ */

void cbx__flow_problem(cbx__flow_loader *L, const cbx_yaml_doc *doc, const char *path, int code,
                       const char *fmt, ...)
{
    if (L->problems >= CBX__FLOW_MAX_PROBLEMS) { /* counted, not kept: see finish() */
        L->problems++;
        return;
    }
    int line = 0, col = 0;
    cbx_yaml_where(doc, path, &line, &col);
    char msg[sizeof((cbx_err *)0)->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cbx_diag_add(L->diag, code, doc->file ? doc->file : "", line, col, "%s", msg);
    L->problems++;
}

const char *cbx__flow_suggest(const char *word, const char *const *cands)
{
    const char *best = NULL;
    size_t best_d = 99;
    for (const char *const *c = cands; c && *c; c++) {
        size_t d = cbx__edit_distance(word, *c);
        if (d < best_d) {
            best_d = d;
            best = *c;
        }
    }
    return best && cbx__close_enough(best_d, strlen(word)) ? best : NULL;
}

static const char *join(char *buf, size_t len, const char *base, const char *key)
{
    textf(buf, len, "%s%s%s", base, base[0] ? "." : "", key);
    return buf;
}

static const char *index_path(char *buf, size_t len, const char *base, size_t i)
{
    textf(buf, len, "%s[%zu]", base, i);
    return buf;
}

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

static char *dup_str(parser *P, const char *s)
{
    char *d = strdup(s);
    if (!d)
        P->L->fatal = -ENOMEM;
    return d;
}

static void unknown_keys(parser *P, const json_t *obj, const char *path, const char *const *known,
                         const char *ctx)
{
    const char *key;
    json_t *v;
    char kp[CBX__FLOW_PATH_MAX];
    json_object_foreach((json_t *)obj, key, v)
    {
        if (in_list(key, known))
            continue;
        const char *best = cbx__flow_suggest(key, known);
        join(kp, sizeof kp, path, key);
        if (best)
            PROB(P, kp, CBX_EUNKNOWN_KEY, "%s '%s'; did you mean '%s'?", ctx, key, best);
        else
            PROB(P, kp, CBX_EUNKNOWN_KEY, "%s '%s'", ctx, key);
    }
}

/* A name usable as steps.NAME / inputs.NAME and in "parent.child". */
static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* A string value at obj.key: 1 and *out (copied), 0 when absent, -1 on a problem. */
static int get_string(parser *P, const json_t *obj, const char *key, const char *path,
                      const char *ctx, char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char kp[CBX__FLOW_PATH_MAX];
    join(kp, sizeof kp, path, key);
    if (!json_is_string(v)) {
        if (json_is_number(v))
            PROB(P, kp, CBX_EINVAL_CONFIG, "%s%s%s: expected a string, got %s (quote it: \"...\")",
                 ctx, ctx[0] ? ": " : "", key, cbx__json_kind(v));
        else
            PROB(P, kp, CBX_EINVAL_CONFIG, "%s%s%s: expected a string, got %s", ctx,
                 ctx[0] ? ": " : "", key, cbx__json_kind(v));
        return -1;
    }
    *out = dup_str(P, json_string_value(v));
    return *out ? 1 : -1;
}

static int get_bool(parser *P, const json_t *obj, const char *key, const char *path,
                    const char *ctx, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        char kp[CBX__FLOW_PATH_MAX];
        PROB(P, join(kp, sizeof kp, path, key), CBX_EINVAL_CONFIG,
             "%s: %s: expected true or false, got %s", ctx, key, cbx__json_kind(v));
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

/* A positive integer (1 .. UINT32_MAX). */
static int get_count(parser *P, const json_t *obj, const char *key, const char *path,
                     const char *ctx, uint32_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char kp[CBX__FLOW_PATH_MAX];
    join(kp, sizeof kp, path, key);
    if (!json_is_integer(v)) {
        PROB(P, kp, CBX_EINVAL_CONFIG, "%s%s%s: expected a positive integer, got %s", ctx,
             ctx[0] ? ": " : "", key, cbx__json_kind(v));
        return -1;
    }
    json_int_t n = json_integer_value(v);
    if (n < 1 || (unsigned long long)n > UINT32_MAX) {
        PROB(P, kp, CBX_EINVAL_CONFIG, "%s%s%s: expected a positive integer, got %lld", ctx,
             ctx[0] ? ": " : "", key, (long long)n);
        return -1;
    }
    *out = (uint32_t)n;
    return 1;
}

/* A duration > 0: "30s", "250ms", or a number of milliseconds. */
static int get_duration(parser *P, const json_t *obj, const char *key, const char *path,
                        const char *ctx, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char kp[CBX__FLOW_PATH_MAX];
    join(kp, sizeof kp, path, key);
    const char *sep = ctx[0] ? ": " : "";
    uint64_t ns = 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (cbx_duration_parse_ns(s, &ns) != 0) {
            PROB(P, kp, CBX_EPARSE, "%s%s%s: expected %s, got \"%.64s\"", ctx, sep, key,
                 DURATION_HINT, s);
            return -1;
        }
    } else if (json_is_number(v)) {
        double ms = json_number_value(v);
        if (!(ms >= 0) || ms * 1e6 >= 1.8e19) {
            PROB(P, kp, CBX_EINVAL_CONFIG, "%s%s%s: expected %s, got %g", ctx, sep, key,
                 DURATION_HINT, ms);
            return -1;
        }
        ns = (uint64_t)llround(ms * 1e6);
    } else {
        PROB(P, kp, CBX_EINVAL_CONFIG, "%s%s%s: expected %s, got %s", ctx, sep, key, DURATION_HINT,
             cbx__json_kind(v));
        return -1;
    }
    if (ns == 0) {
        PROB(P, kp, CBX_EINVAL_CONFIG, "%s%s%s: must be greater than 0", ctx, sep, key);
        return -1;
    }
    *out = ns;
    return 1;
}

/* An expression as written in when: or foreach: - bare, or one "{{ expr }}" - without braces.
 * NULL with a problem when it is neither. */
static char *expression(parser *P, const json_t *v, const char *kp, const char *ctx,
                        const char *key)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    cbx__tpl_span sp;
    const char *e = s;
    size_t n = len;
    if (cbx__tpl_whole(s, len, &sp)) {
        e = s + sp.expr;
        n = sp.expr_end - sp.expr;
    } else if (cbx_template_has(v)) {
        PROB(P, kp, CBX_EINVAL_CONFIG,
             "%s: %s: expected a Lua expression, bare or as one {{ expression }}, got \"%.80s\"",
             ctx, key, s);
        return NULL;
    }
    while (n > 0 && (*e == ' ' || *e == '\t' || *e == '\n' || *e == '\r')) {
        e++;
        n--;
    }
    while (n > 0 && (e[n - 1] == ' ' || e[n - 1] == '\t' || e[n - 1] == '\n' || e[n - 1] == '\r'))
        n--;
    if (n == 0) {
        PROB(P, kp, CBX_EINVAL_CONFIG, "%s: %s: empty expression", ctx, key);
        return NULL;
    }
    char *out = strndup(e, n);
    if (!out)
        P->L->fatal = -ENOMEM;
    return out;
}

/* ---- inputs -------------------------------------------------------------------------------- */

static int parse_type(const char *s, cbx_param_type *t)
{
    for (int i = 0; input_types[i]; i++)
        if (strcmp(s, input_types[i]) == 0) {
            static const cbx_param_type types[] = {
                CBX_PARAM_STRING, CBX_PARAM_INTEGER, CBX_PARAM_NUMBER, CBX_PARAM_BOOLEAN,
                CBX_PARAM_ARRAY,  CBX_PARAM_OBJECT,  CBX_PARAM_ANY};
            *t = types[i];
            return 0;
        }
    return -1;
}

static void input_type(parser *P, cbx__flow_input *in, const json_t *v, const char *kp)
{
    if (!json_is_string(v)) {
        PROB(P, kp, CBX_EINVAL_CONFIG, "input '%s': type: expected one of %s, got %s", in->name,
             "string, integer, number, boolean, array, object, any", cbx__json_kind(v));
        return;
    }
    const char *s = json_string_value(v);
    if (parse_type(s, &in->type) == 0)
        return;
    const char *best = cbx__flow_suggest(s, input_types);
    if (best)
        PROB(P, kp, CBX_EINVAL_CONFIG, "input '%s': unknown type '%s'; did you mean '%s'?",
             in->name, s, best);
    else
        PROB(P, kp, CBX_EINVAL_CONFIG,
             "input '%s': unknown type '%s' (string, integer, number, boolean, array, object or "
             "any)",
             in->name, s);
}

/* One input: spec is its mapping (or NULL for the shorthand forms); name is known. */
static void parse_input(parser *P, const char *name, const char *name_path, const json_t *spec,
                        const char *path)
{
    cbx_flow *f = P->f;
    char kp[CBX__FLOW_PATH_MAX];
    if (!name_ok(name)) {
        PROB(P, name_path, CBX_EINVAL_CONFIG,
             "input '%.64s': a name is 1 to 63 letters, digits, '_' or '-'", name);
        return;
    }
    if (json_object_get(P->input_ix, name)) {
        PROB(P, name_path, CBX_EINVAL_CONFIG, "input '%s' is declared twice", name);
        return;
    }
    if (json_object_set_new(P->input_ix, name, json_true()) < 0) {
        P->L->fatal = -ENOMEM;
        return;
    }
    cbx__flow_input *in = &f->inputs[f->ninputs];
    *in = (cbx__flow_input){.type = CBX_PARAM_ANY};
    in->name = dup_str(P, name);
    if (!in->name)
        return;
    f->ninputs++;
    if (!spec)
        return;
    if (json_is_string(spec)) { /* name: type */
        input_type(P, in, spec, path);
        return;
    }
    if (json_is_null(spec))
        return;
    char ctx[128];
    textf(ctx, sizeof ctx, "input '%s': unknown key", name);
    unknown_keys(P, spec, path, input_keys, ctx);
    textf(ctx, sizeof ctx, "input '%s'", name);
    json_t *v;
    if ((v = json_object_get(spec, "type")))
        input_type(P, in, v, join(kp, sizeof kp, path, "type"));
    get_bool(P, spec, "required", path, ctx, &in->required);
    if (get_string(P, spec, "description", path, ctx, &in->description) < 0)
        in->description = NULL;
    if ((v = json_object_get(spec, "enum"))) {
        join(kp, sizeof kp, path, "enum");
        if (!json_is_array(v) || json_array_size(v) == 0) {
            PROB(P, kp, CBX_EINVAL_CONFIG, "%s: enum: expected a non-empty list of values", ctx);
        } else {
            int ok = 1;
            size_t i;
            json_t *e;
            cbx__flow_input any = {.name = in->name, .type = in->type};
            json_array_foreach(v, i, e)
            {
                char msg[400], ip[CBX__FLOW_PATH_MAX];
                if (cbx__flow_input_check(&any, e, msg, sizeof msg) < 0) {
                    PROB(P, index_path(ip, sizeof ip, kp, i), CBX_EINVAL_CONFIG,
                         "%s: enum[%zu]: %s", ctx, i, msg);
                    ok = 0;
                }
            }
            if (ok && !(in->enum_values = json_deep_copy(v)))
                P->L->fatal = -ENOMEM;
        }
    }
    if ((v = json_object_get(spec, "default"))) {
        join(kp, sizeof kp, path, "default");
        char msg[400];
        if (in->required) {
            PROB(P, kp, CBX_EINVAL_CONFIG,
                 "%s: a required input cannot have a default (drop one of them)", ctx);
        } else if (!json_is_null(v) && cbx__flow_input_check(in, v, msg, sizeof msg) < 0) {
            PROB(P, kp, CBX_EINVAL_CONFIG, "%s: default: %s", ctx, msg);
        } else if (!json_is_null(v) && !(in->def = json_deep_copy(v))) {
            P->L->fatal = -ENOMEM;
        }
    }
}

static void parse_inputs(parser *P, const json_t *v)
{
    cbx_flow *f = P->f;
    size_t n = json_is_array(v) ? json_array_size(v) : json_is_object(v) ? json_object_size(v) : 0;
    if (!json_is_array(v) && !json_is_object(v) && !json_is_null(v)) {
        PROB(P, "inputs", CBX_EINVAL_CONFIG,
             "inputs: expected a list of {name, type, ...} or a mapping of name to "
             "{type, ...}, got %s",
             cbx__json_kind(v));
        return;
    }
    f->inputs = calloc(n ? n : 1, sizeof *f->inputs);
    if (!f->inputs) {
        P->L->fatal = -ENOMEM;
        return;
    }
    char path[CBX__FLOW_PATH_MAX], np[CBX__FLOW_PATH_MAX];
    if (json_is_array(v)) {
        size_t i;
        json_t *spec;
        json_array_foreach(v, i, spec)
        {
            index_path(path, sizeof path, "inputs", i);
            if (!json_is_object(spec)) {
                PROB(P, path, CBX_EINVAL_CONFIG,
                     "inputs[%zu]: expected a mapping {name, type, required, default, ...}, got %s",
                     i, cbx__json_kind(spec));
                continue;
            }
            json_t *name = json_object_get(spec, "name");
            if (!name) {
                PROB(P, path, CBX_EINVAL_CONFIG, "inputs[%zu]: missing 'name'", i);
                continue;
            }
            join(np, sizeof np, path, "name");
            if (!json_is_string(name)) {
                PROB(P, np, CBX_EINVAL_CONFIG, "inputs[%zu]: name: expected a string, got %s", i,
                     cbx__json_kind(name));
                continue;
            }
            parse_input(P, json_string_value(name), np, spec, path);
        }
        return;
    }
    if (json_is_null(v))
        return;
    const char *key;
    json_t *spec;
    json_object_foreach((json_t *)v, key, spec)
    {
        join(path, sizeof path, "inputs", key);
        json_t *name = json_is_object(spec) ? json_object_get(spec, "name") : NULL;
        if (name && !(json_is_string(name) && strcmp(json_string_value(name), key) == 0)) {
            PROB(P, join(np, sizeof np, path, "name"), CBX_EINVAL_CONFIG,
                 "input '%s': name: differs from its key (leave it out in the mapping form)", key);
            continue;
        }
        if (!json_is_object(spec) && !json_is_string(spec) && !json_is_null(spec)) {
            PROB(P, path, CBX_EINVAL_CONFIG,
                 "input '%s': expected a mapping {type, required, default, ...} or a type name, "
                 "got %s",
                 key, cbx__json_kind(spec));
            continue;
        }
        parse_input(P, key, path, spec, path);
    }
}

/* ---- policies ------------------------------------------------------------------------------ */

/* A policy block at path into *out; problems are placed at the block's offending key. */
static void make_policy(parser *P, const json_t *block, const char *name, const char *path,
                        const char *ctx, cbx_policy **out)
{
    cbx_policy_opts base;
    cbx_policy_opts_default(&base);
    base.name = name;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_policy_new_json(out, block, &base, &e);
    if (r == 0)
        return;
    *out = NULL;
    if (r == -ENOMEM) {
        P->L->fatal = r;
        return;
    }
    char kp[CBX__FLOW_PATH_MAX];
    if (e.where[0])
        PROB(P, join(kp, sizeof kp, path, e.where), r, "%s: %s: %s", ctx, e.where, e.msg);
    else
        PROB(P, path, r, "%s: %s", ctx, e.msg[0] ? e.msg : cbx_strerror(r));
}

static void parse_policies(parser *P, const json_t *v)
{
    cbx_flow *f = P->f;
    if (!json_is_object(v)) {
        if (!json_is_null(v))
            PROB(P, "policies", CBX_EINVAL_CONFIG,
                 "policies: expected a mapping of name to policy block, got %s", cbx__json_kind(v));
        return;
    }
    f->policies = calloc(json_object_size(v) + 1, sizeof *f->policies);
    if (!f->policies) {
        P->L->fatal = -ENOMEM;
        return;
    }
    const char *key;
    json_t *block;
    char path[CBX__FLOW_PATH_MAX], ctx[128];
    json_object_foreach((json_t *)v, key, block)
    {
        join(path, sizeof path, "policies", key);
        textf(ctx, sizeof ctx, "policy '%.64s'", key);
        if (!json_is_object(block)) {
            PROB(P, path, CBX_EINVAL_CONFIG, "%s: expected a policy block (a mapping), got %s", ctx,
                 cbx__json_kind(block));
            continue;
        }
        cbx__flow_policy *fp = &f->policies[f->npolicies];
        make_policy(P, block, key, path, ctx, &fp->policy);
        if (!fp->policy)
            continue;
        fp->name = dup_str(P, key);
        if (!fp->name ||
            json_object_set_new(P->policy_ix, key, json_integer((json_int_t)f->npolicies)) < 0) {
            free(fp->name);
            fp->name = NULL;
            cbx_policy_free(fp->policy);
            fp->policy = NULL;
            P->L->fatal = -ENOMEM;
            continue;
        }
        f->npolicies++;
    }
}

/* ---- sub-flows ----------------------------------------------------------------------------- */

static cbx_flow *build_flow(cbx__flow_loader *L, cbx_yaml_doc *doc, const char *file);

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void load_subflow(parser *P, cbx__flow_step *s, const char *rel, const char *kp,
                         const char *ctx)
{
    cbx__flow_loader *L = P->L;
    char full[PATH_MAX], real[PATH_MAX];
    if (rel[0] == '/' || !P->dir[0])
        textf(full, sizeof full, "%s", rel);
    else
        textf(full, sizeof full, "%s/%s", P->dir, rel);
    s->subflow_path = dup_str(P, full);
    if (!s->subflow_path)
        return;
    const char *id = realpath(full, real) ? real : full;
    for (size_t k = 0; k < L->depth; k++) {
        if (strcmp(L->chain[k], id) != 0)
            continue;
        char cycle[400] = "";
        size_t n = 0;
        for (size_t j = k; j < L->depth && n < sizeof cycle; j++)
            n += (size_t)snprintf(cycle + n, sizeof cycle - n, "%s -> ", base_name(L->chain[j]));
        if (n < sizeof cycle)
            textf(cycle + n, sizeof cycle - n, "%s", base_name(id));
        PROB(P, kp, CBX_EINVAL_CONFIG, "%s: flow '%s' includes itself (%s)", ctx, rel, cycle);
        return;
    }
    if (L->depth >= CBX__FLOW_MAX_DEPTH) {
        PROB(P, kp, CBX_EINVAL_CONFIG, "%s: flow '%s': sub-flows nested deeper than %d", ctx, rel,
             CBX__FLOW_MAX_DEPTH);
        return;
    }
    cbx_yaml_doc doc;
    cbx_err e;
    int r = cbx_yaml_load_file(full, &doc, &e);
    if (r == CBX_EPARSE) { /* the sub-flow's own file:line:col */
        cbx_diag_push(L->diag, &e);
        L->problems++;
        return;
    }
    if (r < 0) {
        PROB(P, kp, r, "%s: cannot read flow '%s': %s", ctx, full, cbx_strerror(r));
        return;
    }
    char *chain_id = strdup(id);
    if (!chain_id) {
        cbx_yaml_doc_clear(&doc);
        L->fatal = -ENOMEM;
        return;
    }
    L->chain[L->depth++] = chain_id;
    s->subflow = build_flow(L, &doc, full);
    free(L->chain[--L->depth]);
    cbx_yaml_doc_clear(&doc);
}

/* ---- steps --------------------------------------------------------------------------------- */

/* requires: {lua: [files], plugins: [files]}: what the caller loads into the registry before
 * loading the flow (cbx does: cli/flow_requires.c); here only its shape is checked. */
static void flow_requires(parser *P, const json_t *root)
{
    json_t *r = json_object_get(root, "requires"), *v;
    const char *key;
    char kp[CBX__FLOW_PATH_MAX];
    if (r && !json_is_object(r)) {
        PROB(P, "requires", CBX_EINVAL_CONFIG,
             "requires: expected a mapping {lua: [files], plugins: [files]}, got %s",
             cbx__json_kind(r));
        return;
    }
    json_object_foreach(r, key, v)
    {
        join(kp, sizeof kp, "requires", key);
        if (strcmp(key, "lua") != 0 && strcmp(key, "plugins") != 0)
            PROB(P, kp, CBX_EINVAL_CONFIG, "requires: unknown key '%.64s' (lua, plugins)", key);
        else if (!json_is_string(v) && !json_is_array(v))
            PROB(P, kp, CBX_EINVAL_CONFIG,
                 "requires.%s: expected a file or a list of files, got %s", key, cbx__json_kind(v));
    }
}

/* config: {execution: {timeout, mode}} (the seed's flow files): its timeout bounds the run. */
static void flow_config(parser *P, const json_t *root, cbx_flow *f)
{
    json_t *c = json_object_get(root, "config");
    if (!c)
        return;
    const char *key;
    json_t *v;
    char kp[CBX__FLOW_PATH_MAX], where[200], msg[300];
    if (!json_is_object(c)) {
        PROB(P, "config", CBX_EINVAL_CONFIG, "config: expected a mapping (execution:), got %s",
             cbx__json_kind(c));
        return;
    }
    json_object_foreach(c, key, v)
    {
        if (strcmp(key, "execution") != 0) {
            PROB(P, join(kp, sizeof kp, "config", key), CBX_EINVAL_CONFIG,
                 "config: unknown key '%.64s' (cbx reads config.execution; the flow's settings "
                 "are top-level keys)",
                 key);
            continue;
        }
        uint64_t ns = 0;
        int r = cbx__flow_execution_read(v, 1, &ns, where, sizeof where, msg, sizeof msg);
        if (r < 0)
            PROB(P, join(kp, sizeof kp, "config", where), CBX_EINVAL_CONFIG, "config.%s: %s", where,
                 msg);
        else if (r > 0 && f->timeout_ns && f->timeout_ns != ns)
            PROB(P, "config.execution.timeout", CBX_EINVAL_CONFIG,
                 "config.execution.timeout and timeout: disagree; keep one");
        else if (r > 0)
            f->timeout_ns = ns;
    }
}

/* A step's config.execution (the seed's shape): its timeout is the step's, per attempt; taken
 * out of the config unless the executor has a parameter of that name. */
static void step_execution(parser *P, cbx__flow_step *s, const char *path, const char *ctx)
{
    json_t *ex = json_is_object(s->config) ? json_object_get(s->config, "execution") : NULL;
    const cbx_executor_type *t = s->executor ? cbx_registry_find(P->L->reg, s->executor) : NULL;
    if (!ex || !t)
        return;
    for (const cbx_param *p = t->params; p && p->name; p++)
        if (strcmp(p->name, "execution") == 0)
            return;
    char kp[CBX__FLOW_PATH_MAX], cp[CBX__FLOW_PATH_MAX], where[200], msg[300];
    uint64_t ns = 0;
    join(cp, sizeof cp, path, "config");
    int r = cbx__flow_execution_read(ex, 0, &ns, where, sizeof where, msg, sizeof msg);
    if (r < 0)
        PROB(P, join(kp, sizeof kp, cp, where), CBX_EINVAL_CONFIG, "%s: config.%s: %s", ctx, where,
             msg);
    else if (r > 0 && s->timeout_ns && s->timeout_ns != ns)
        PROB(P, join(kp, sizeof kp, cp, "execution"), CBX_EINVAL_CONFIG,
             "%s: config.execution.timeout and timeout: disagree; keep one", ctx);
    else if (r > 0)
        s->timeout_ns = ns;
    json_object_del(s->config, "execution");
}

/* runs_on: at path (a step's or the flow's) into *out; a bad value is a problem placed at it. */
static void get_runs_on(parser *P, const json_t *node, const char *path, const char *ctx,
                        char **out)
{
    json_t *v = json_object_get(node, "runs_on");
    if (!v)
        return;
    char kp[CBX__FLOW_PATH_MAX], at[CBX__FLOW_PATH_MAX], msg[200];
    const char *sub = "";
    join(kp, sizeof kp, path, "runs_on");
    int r = cbx__runs_on_parse(v, out, msg, sizeof msg, &sub);
    if (r == -ENOMEM)
        P->L->fatal = -ENOMEM;
    else if (r < 0)
        PROB(P, sub[0] ? join(at, sizeof at, kp, sub) : kp, CBX_EINVAL_CONFIG, "%s%sruns_on: %s",
             ctx, ctx[0] ? ": " : "", msg);
    else if (cbx__runs_on_remote(*out) && P->L->reg &&
             !cbx_registry_find(P->L->reg, CBX__RUNS_ON_EXECUTOR))
        PROB(P, kp, CBX_EUNKNOWN_TYPE,
             "%s%sruns_on: the registry has no '" CBX__RUNS_ON_EXECUTOR
             "' executor to send it with",
             ctx, ctx[0] ? ": " : "");
}

/* Steps without runs_on: take their parent's (a composite's), else the flow's. */
static void inherit_runs_on(parser *P, cbx__flow_step *steps, size_t n, const char *parent)
{
    for (size_t i = 0; i < n; i++) {
        cbx__flow_step *s = &steps[i];
        if (!s->runs_on && parent && !(s->runs_on = strdup(parent))) {
            P->L->fatal = -ENOMEM;
            return;
        }
        inherit_runs_on(P, s->children, s->nchildren, s->runs_on);
    }
}

static void parse_steps(parser *P, const json_t *arr, const char *path, const char *prefix,
                        cbx__flow_step **out, size_t *n);

static void parse_step(parser *P, const json_t *node, const char *path, const char *prefix,
                       cbx__flow_step *s)
{
    cbx_flow *f = P->f;
    char kp[CBX__FLOW_PATH_MAX], ctx[200];
    cbx_yaml_where(&f->doc, path, &s->line, &s->col);
    if (!json_is_object(node)) {
        PROB(P, path, CBX_EINVAL_CONFIG,
             "%s: expected a step (a mapping with name and executor), got %s", path,
             cbx__json_kind(node));
        return;
    }
    s->config = json_object();
    if (!s->config) {
        P->L->fatal = -ENOMEM;
        return;
    }
    /* the name first: every later message names the step */
    json_t *name = json_object_get(node, "name");
    if (!name) {
        PROB(P, path, CBX_EINVAL_CONFIG, "%s: missing 'name'", path);
        textf(ctx, sizeof ctx, "%s", path);
    } else if (!json_is_string(name) || !name_ok(json_string_value(name))) {
        PROB(P, join(kp, sizeof kp, path, "name"), CBX_EINVAL_CONFIG,
             "%s: name: expected 1 to 63 letters, digits, '_' or '-'%s%.64s%s", path,
             json_is_string(name) ? ", got '" : "",
             json_is_string(name) ? json_string_value(name) : "", json_is_string(name) ? "'" : "");
        textf(ctx, sizeof ctx, "%s", path);
    } else {
        s->name = dup_str(P, json_string_value(name));
        textf(ctx, sizeof ctx, "step '%s%s'", prefix, json_string_value(name));
    }
    {
        char uctx[240];
        textf(uctx, sizeof uctx, "%s: unknown key", ctx);
        unknown_keys(P, node, path, step_keys, uctx);
    }
    if (json_object_get(node, "description") &&
        !json_is_string(json_object_get(node, "description")))
        PROB(P, join(kp, sizeof kp, path, "description"), CBX_EINVAL_CONFIG,
             "%s: description: expected a string", ctx);

    json_t *exe = json_object_get(node, "executor");
    json_t *flow = json_object_get(node, "flow");
    json_t *kids = json_object_get(node, "steps");
    json_t *mode = json_object_get(node, "mode");
    json_t *inputs = json_object_get(node, "inputs");
    json_t *config = json_object_get(node, "config");
    int composite = 0, runs_executor = 0;

    if (exe && !json_is_string(exe)) {
        PROB(P, join(kp, sizeof kp, path, "executor"), CBX_EINVAL_CONFIG,
             "%s: executor: expected a type name, got %s", ctx, cbx__json_kind(exe));
        exe = NULL;
        runs_executor = 1; /* report the rest as for an executor step */
    }
    if (flow) {
        join(kp, sizeof kp, path, "flow");
        if (exe)
            PROB(P, join(kp, sizeof kp, path, "executor"), CBX_EINVAL_CONFIG,
                 "%s: a step runs either an executor or a flow, not both", ctx);
        else if (!json_is_string(flow) || json_string_length(flow) == 0)
            PROB(P, kp, CBX_EINVAL_CONFIG, "%s: flow: expected the path of a flow file, got %s",
                 ctx, cbx__json_kind(flow));
        else
            load_subflow(P, s, json_string_value(flow), kp, ctx);
        if (inputs) {
            join(kp, sizeof kp, path, "inputs");
            if (!json_is_object(inputs))
                PROB(P, kp, CBX_EINVAL_CONFIG,
                     "%s: inputs: expected a mapping of the flow's input names to values, got %s",
                     ctx, cbx__json_kind(inputs));
            else
                s->subflow_inputs = json_incref(inputs);
        }
        if (config)
            PROB(P, join(kp, sizeof kp, path, "config"), CBX_EINVAL_CONFIG,
                 "%s: config is for executors; a flow step takes inputs:", ctx);
    } else if ((exe && strcmp(json_string_value(exe), "steps") == 0) || (!exe && kids)) {
        composite = 1;
        s->executor = dup_str(P, "steps");
        if (!kids) {
            PROB(P, join(kp, sizeof kp, path, "executor"), CBX_EINVAL_CONFIG,
                 "%s: executor 'steps' needs a list of steps under steps:", ctx);
        } else if (!json_is_array(kids) || json_array_size(kids) == 0) {
            PROB(P, join(kp, sizeof kp, path, "steps"), CBX_EINVAL_CONFIG,
                 "%s: steps: expected a non-empty list of steps, got %s", ctx,
                 json_is_array(kids) ? "an empty list" : cbx__json_kind(kids));
        } else {
            char sub[CBX__FLOW_PATH_MAX], pre[200];
            textf(pre, sizeof pre, "%s%s.", prefix, s->name ? s->name : "?");
            parse_steps(P, kids, join(sub, sizeof sub, path, "steps"), pre, &s->children,
                        &s->nchildren);
        }
        if (mode) {
            join(kp, sizeof kp, path, "mode");
            if (json_is_string(mode) && in_list(json_string_value(mode), modes)) {
                s->parallel = strcmp(json_string_value(mode), "parallel") == 0;
            } else if (json_is_string(mode)) {
                const char *best = cbx__flow_suggest(json_string_value(mode), modes);
                PROB(P, kp, CBX_EINVAL_CONFIG,
                     "%s: mode: expected sequence or parallel, got '%.64s'%s%s%s", ctx,
                     json_string_value(mode), best ? "; did you mean '" : "", best ? best : "",
                     best ? "'?" : "");
            } else {
                PROB(P, kp, CBX_EINVAL_CONFIG, "%s: mode: expected sequence or parallel, got %s",
                     ctx, cbx__json_kind(mode));
            }
        }
        if (config)
            PROB(P, join(kp, sizeof kp, path, "config"), CBX_EINVAL_CONFIG,
                 "%s: config is for executors; executor 'steps' runs the steps under steps:", ctx);
    } else if (exe) {
        runs_executor = 1;
        s->executor = dup_str(P, json_string_value(exe));
    } else if (!runs_executor) {
        PROB(P, path, CBX_EINVAL_CONFIG, "%s: missing 'executor' (or flow: for a sub-flow)", ctx);
        runs_executor = 1;
    }
    if (!composite) {
        if (kids)
            PROB(P, join(kp, sizeof kp, path, "steps"), CBX_EINVAL_CONFIG,
                 "%s: steps: only for executor: steps", ctx);
        if (mode)
            PROB(P, join(kp, sizeof kp, path, "mode"), CBX_EINVAL_CONFIG,
                 "%s: mode: only for executor: steps", ctx);
    }
    if (inputs && !flow)
        PROB(P, join(kp, sizeof kp, path, "inputs"), CBX_EINVAL_CONFIG,
             "%s: inputs: only for flow: steps (an executor takes config:)", ctx);

    if (runs_executor && config) {
        join(kp, sizeof kp, path, "config");
        cbx__tpl_span sp;
        if (json_is_object(config) ||
            (json_is_string(config) &&
             cbx__tpl_whole(json_string_value(config), json_string_length(config), &sp))) {
            /* shared with the document, which is read-only and let go after the checks */
            json_decref(s->config);
            s->config = json_incref(config);
        } else {
            PROB(P, kp, CBX_EINVAL_CONFIG, "%s: config: expected a mapping of parameters, got %s",
                 ctx, cbx__json_kind(config));
        }
    }

    /* policy: a name or an inline block */
    json_t *pol = json_object_get(node, "policy");
    if (pol) {
        join(kp, sizeof kp, path, "policy");
        if (!runs_executor) {
            PROB(P, kp, CBX_EINVAL_CONFIG,
                 "%s: policy: applies to steps that run an executor (put it on the steps inside)",
                 ctx);
        } else if (json_is_string(pol)) {
            const char *pn = json_string_value(pol);
            json_t *pix = json_object_get(P->policy_ix, pn);
            if (pix)
                s->policy = f->policies[json_integer_value(pix)].policy;
            if (!s->policy) {
                /* suggest among the names declared, also those whose block had problems */
                json_t *declared = json_object_get(f->doc.root, "policies");
                size_t nd = json_is_object(declared) ? json_object_size(declared) : 0;
                int suggest = nd <= P->suggest_left;
                P->suggest_left -= suggest ? nd : 0;
                const char **names = suggest ? calloc(nd + 1, sizeof *names) : NULL;
                size_t k = 0;
                const char *dk;
                json_t *dv;
                if (names && nd)
                    json_object_foreach(declared, dk, dv) names[k++] = dk;
                const char *best = names ? cbx__flow_suggest(pn, names) : NULL;
                if (best)
                    PROB(P, kp, CBX_EINVAL_CONFIG, "%s: unknown policy '%s'; did you mean '%s'?",
                         ctx, pn, best);
                else if (!json_is_object(declared) || json_object_size(declared) == 0)
                    PROB(P, kp, CBX_EINVAL_CONFIG,
                         "%s: unknown policy '%s' (the flow declares no policies:)", ctx, pn);
                else if (!json_object_get(declared, pn))
                    PROB(P, kp, CBX_EINVAL_CONFIG, "%s: unknown policy '%s'", ctx, pn);
                /* else: declared, but its block had problems, already reported */
                free(names);
            }
        } else if (json_is_object(pol)) {
            char pctx[240];
            textf(pctx, sizeof pctx, "%s: policy", ctx);
            make_policy(P, pol, s->name ? s->name : "step", kp, pctx, &s->policy);
            s->owns_policy = s->policy != NULL;
        } else {
            PROB(P, kp, CBX_EINVAL_CONFIG,
                 "%s: policy: expected a policy name or a policy block, got %s", ctx,
                 cbx__json_kind(pol));
        }
    }

    /* needs: checked for shape here, resolved with the other references in flow_check.c */
    json_t *needs = json_object_get(node, "needs");
    if (needs) {
        join(kp, sizeof kp, path, "needs");
        if (json_is_array(needs)) {
            size_t i;
            json_t *nv;
            json_array_foreach(needs, i, nv)
            {
                char ip[CBX__FLOW_PATH_MAX];
                if (!json_is_string(nv))
                    PROB(P, index_path(ip, sizeof ip, kp, i), CBX_EINVAL_CONFIG,
                         "%s: needs[%zu]: expected a step name, got %s", ctx, i,
                         cbx__json_kind(nv));
            }
        } else if (!json_is_string(needs)) {
            PROB(P, kp, CBX_EINVAL_CONFIG,
                 "%s: needs: expected a step name or a list of step names, got %s", ctx,
                 cbx__json_kind(needs));
        }
    }

    json_t *when = json_object_get(node, "when");
    if (when) {
        join(kp, sizeof kp, path, "when");
        if (json_is_boolean(when))
            s->when = dup_str(P, json_is_true(when) ? "true" : "false");
        else if (json_is_string(when))
            s->when = expression(P, when, kp, ctx, "when");
        else
            PROB(P, kp, CBX_EINVAL_CONFIG,
                 "%s: when: expected a condition (a Lua expression), got %s", ctx,
                 cbx__json_kind(when));
    }

    json_t *fe = json_object_get(node, "foreach");
    if (fe) {
        join(kp, sizeof kp, path, "foreach");
        if (!runs_executor)
            PROB(P, kp, CBX_EINVAL_CONFIG, "%s: foreach: applies to steps that run an executor",
                 ctx);
        else if (json_is_array(fe))
            s->foreach_list = json_incref(fe);
        else if (json_is_string(fe))
            s->foreach = expression(P, fe, kp, ctx, "foreach");
        else if (!json_is_array(fe))
            PROB(P, kp, CBX_EINVAL_CONFIG,
                 "%s: foreach: expected a list, or an expression that gives one, got %s", ctx,
                 cbx__json_kind(fe));
    }
    if (get_count(P, node, "batch_size", path, ctx, &s->batch_size) > 0 && !fe)
        PROB(P, join(kp, sizeof kp, path, "batch_size"), CBX_EINVAL_CONFIG,
             "%s: batch_size: only with foreach:", ctx);
    if (get_count(P, node, "parallelism", path, ctx, &s->parallelism) > 0 && !fe)
        PROB(P, join(kp, sizeof kp, path, "parallelism"), CBX_EINVAL_CONFIG,
             "%s: parallelism: only with foreach:", ctx);
    get_bool(P, node, "continue_on_error", path, ctx, &s->continue_on_error);
    if (get_duration(P, node, "timeout", path, ctx, &s->timeout_ns) > 0 && !runs_executor)
        PROB(P, join(kp, sizeof kp, path, "timeout"), CBX_EINVAL_CONFIG,
             "%s: timeout: applies to steps that run an executor (the flow's timeout: bounds "
             "the whole run)",
             ctx);
    if (runs_executor)
        step_execution(P, s, path, ctx);
    if (flow && json_object_get(node, "runs_on"))
        PROB(P, join(kp, sizeof kp, path, "runs_on"), CBX_EINVAL_CONFIG,
             "%s: runs_on: applies to steps that run an executor (put it in the sub-flow)", ctx);
    else
        get_runs_on(P, node, path, ctx, &s->runs_on);
}

static void parse_steps(parser *P, const json_t *arr, const char *path, const char *prefix,
                        cbx__flow_step **out, size_t *n)
{
    size_t count = json_array_size(arr);
    *out = calloc(count ? count : 1, sizeof **out);
    if (!*out) {
        P->L->fatal = -ENOMEM;
        return;
    }
    /* one entry per item, also for a broken one, so that flow_check.c can walk the document
     * beside the structure */
    *n = count;
    char ip[CBX__FLOW_PATH_MAX];
    for (size_t i = 0; i < count; i++) {
        if (P->L->problems > CBX__FLOW_MAX_PROBLEMS) { /* the load stops: see finish() */
            *n = i;
            break;
        }
        parse_step(P, json_array_get(arr, i), index_path(ip, sizeof ip, path, i), prefix,
                   &(*out)[i]);
    }
}

/* ---- the flow ------------------------------------------------------------------------------ */

static void dir_of(const char *file, char *dir, size_t len)
{
    const char *slash = strrchr(file, '/');
    if (!slash) {
        dir[0] = '\0';
        return;
    }
    if (slash == file) {
        textf(dir, len, "/");
        return;
    }
    textf(dir, len, "%.*s", (int)(slash - file), file);
}

/* Build a flow from doc (taken over: *doc is zeroed) and check it. Always returns the flow (even
 * with problems, for the callers that look further), or NULL when memory ran out. */
static cbx_flow *build_flow(cbx__flow_loader *L, cbx_yaml_doc *doc, const char *file)
{
    cbx_flow *f = calloc(1, sizeof *f);
    if (!f || !(f->file = strdup(file))) {
        free(f);
        L->fatal = -ENOMEM;
        return NULL;
    }
    f->doc = *doc;
    memset(doc, 0, sizeof *doc);
    parser P = {.L = L,
                .f = f,
                .input_ix = json_object(),
                .policy_ix = json_object(),
                .suggest_left = SUGGEST_BUDGET};
    const json_t *root = f->doc.root;
    if (!P.input_ix || !P.policy_ix) {
        L->fatal = -ENOMEM;
        goto out;
    }
    dir_of(file, P.dir, sizeof P.dir);
    if (!json_is_object(root)) {
        PROB(&P, "", CBX_EINVAL_CONFIG,
             "a flow file is a mapping (name, inputs, policies, steps, outputs), got %s",
             root ? cbx__json_kind(root) : "an empty document");
        goto out;
    }
    unknown_keys(&P, root, "", top_keys, "unknown top-level key");
    if (get_string(&P, root, "name", "", "", &f->name) <= 0) {
        const char *b = base_name(file);
        const char *dot = strrchr(b, '.');
        f->name = strndup(b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
        if (!f->name)
            L->fatal = -ENOMEM;
    }
    get_string(&P, root, "version", "", "", &f->version);
    get_string(&P, root, "description", "", "", &f->description);
    json_t *v;
    if ((v = json_object_get(root, "inputs")))
        parse_inputs(&P, v);
    if ((v = json_object_get(root, "policies")))
        parse_policies(&P, v);
    v = json_object_get(root, "steps");
    if (!v)
        PROB(&P, "", CBX_EINVAL_CONFIG, "missing 'steps' (the list of steps to run)");
    else if (!json_is_array(v))
        PROB(&P, "steps", CBX_EINVAL_CONFIG, "steps: expected a list of steps, got %s",
             cbx__json_kind(v));
    else
        parse_steps(&P, v, "steps", "", &f->steps, &f->nsteps);
    if ((v = json_object_get(root, "outputs"))) {
        if (!json_is_object(v))
            PROB(&P, "outputs", CBX_EINVAL_CONFIG,
                 "outputs: expected a mapping of output names to values (templates), got %s",
                 cbx__json_kind(v));
        else
            f->outputs = json_incref(v);
    }
    get_duration(&P, root, "timeout", "", "", &f->timeout_ns);
    get_count(&P, root, "concurrency", "", "", &f->concurrency);
    get_runs_on(&P, root, "", "", &f->runs_on);
    inherit_runs_on(&P, f->steps, f->nsteps, f->runs_on);
    flow_config(&P, root, f);
    flow_requires(&P, root);
    if (L->problems <= CBX__FLOW_MAX_PROBLEMS)
        cbx__flow_check(L, f);
out:
    /* the document served the checks (positions, the steps as written): a big flow should not
     * keep it for as long as it runs */
    cbx_yaml_doc_clear(&f->doc);
    json_decref(P.input_ix);
    json_decref(P.policy_ix);
    return f;
}

typedef struct problem_key {
    size_t rank; /* the file, by first appearance */
    int line, col;
    size_t index; /* keeps the order of problems at the same place */
} problem_key;

static int problem_cmp(const void *a, const void *b)
{
    const problem_key *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Order the problems added since `from` by file (in order of first appearance), line and col. */
static void sort_problems(cbx_diag *d, size_t from)
{
    size_t n = d->n - from;
    if (n < 2)
        return;
    problem_key *keys = calloc(n, sizeof *keys);
    cbx_err *items = calloc(n, sizeof *items);
    json_t *ranks = json_object();
    if (!keys || !items || !ranks)
        goto out; /* left in the order found */
    for (size_t i = 0; i < n; i++) {
        const cbx_err *e = &d->items[from + i];
        json_t *r = json_object_get(ranks, e->where);
        if (!r) {
            r = json_integer((json_int_t)json_object_size(ranks));
            if (json_object_set_new(ranks, e->where, r) < 0)
                goto out;
        }
        keys[i] = (problem_key){
            .rank = (size_t)json_integer_value(r), .line = e->line, .col = e->col, .index = i};
    }
    qsort(keys, n, sizeof *keys, problem_cmp);
    for (size_t i = 0; i < n; i++)
        items[i] = d->items[from + keys[i].index];
    memcpy(d->items + from, items, n * sizeof *items);
out:
    free(keys);
    free(items);
    json_decref(ranks);
}

static int finish(cbx__flow_loader *L, cbx_flow *f, size_t before, cbx_flow **out, cbx_diag *local)
{
    int rc = 0;
    if (L->fatal) {
        rc = L->fatal;
        cbx_diag_add(L->diag, rc, f ? f->file : "", 0, 0, "%s", cbx_strerror(rc));
    } else if (L->problems || !f) {
        rc = CBX_EINVAL_CONFIG;
    }
    sort_problems(L->diag, before);
    if (L->problems > CBX__FLOW_MAX_PROBLEMS)
        cbx_diag_add(L->diag, CBX_EINVAL_CONFIG, f ? f->file : "", 0, 0,
                     "more than %d problems: the first %d are listed, and the checks stopped",
                     CBX__FLOW_MAX_PROBLEMS, CBX__FLOW_MAX_PROBLEMS);
    if (rc) {
        cbx_flow_free(f);
        f = NULL;
    }
    *out = f;
    cbx_diag_clear(local);
    return rc;
}

static int load_doc(cbx_flow **out, cbx_yaml_doc *doc, const char *file, const char *chain_id,
                    const cbx_registry *reg, cbx_diag *diag, cbx_diag *local)
{
    char *chain[CBX__FLOW_MAX_DEPTH + 1];
    cbx__flow_loader L = {.reg = reg, .diag = diag, .chain = chain};
    size_t before = diag->n;
    chain[0] = strdup(chain_id);
    if (!chain[0]) {
        cbx_yaml_doc_clear(doc);
        cbx_diag_clear(local);
        return -ENOMEM;
    }
    L.depth = 1;
    cbx_flow *f = build_flow(&L, doc, file);
    free(chain[0]);
    cbx_yaml_doc_clear(doc);
    return finish(&L, f, before, out, local);
}

int cbx_flow_load(cbx_flow **out, const char *path, const cbx_registry *reg, cbx_diag *diag)
{
    *out = NULL;
    cbx_diag local = {0};
    cbx_diag *d = diag ? diag : &local;
    if (!path) {
        cbx_diag_add(d, -EINVAL, "", 0, 0, "no flow file given");
        cbx_diag_clear(&local);
        return -EINVAL;
    }
    cbx_yaml_doc doc;
    cbx_err e;
    int r = cbx_yaml_load_file(path, &doc, &e);
    if (r < 0) {
        cbx_diag_push(d, &e);
        cbx_diag_clear(&local);
        return r;
    }
    char real[PATH_MAX];
    return load_doc(out, &doc, path, realpath(path, real) ? real : path, reg, d, &local);
}

int cbx_flow_load_string(cbx_flow **out, const char *text, size_t len, const char *name,
                         const cbx_registry *reg, cbx_diag *diag)
{
    *out = NULL;
    cbx_diag local = {0};
    cbx_diag *d = diag ? diag : &local;
    if (!name)
        name = "<string>";
    cbx_yaml_doc doc;
    cbx_err e;
    int r = cbx_yaml_load_string(text ? text : "", text ? len : 0, name, &doc, &e);
    if (r < 0) {
        cbx_diag_push(d, &e);
        cbx_diag_clear(&local);
        return r;
    }
    char real[PATH_MAX];
    return load_doc(out, &doc, name, realpath(name, real) ? real : name, reg, d, &local);
}
