/* Loading a workflow: transitions - places, guard (validations and rules), trigger, action with
 * its parameters checked against the executor's schema, resilience policy; then the order in
 * which the transitions of each place are tried. */
#include "workflow/net_load.h"

#include "core/text.h"
#include "flow/flow_load.h"
#include "flow/runs_on.h"

#include "cbx/template.h"
#include "cbx/units.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const trans_keys[] = {"name",   "desc",   "description", "from", "to",
                                         "policy", "action", "priority",    "join", "trigger",
                                         "signal", "after",  NULL};
static const char *const action_keys[] = {"executor", "config",  "policy",
                                          "outputs",  "runs_on", NULL};

/* ---- transitions -------------------------------------------------------------------------- */

static char **string_list(loader *L, const json_t *v, const char *path, const char *ctx, size_t *n)
{
    *n = 0;
    if (!v)
        return NULL;
    if (!json_is_array(v)) {
        cbx__wf_prob(L, path, CBX_EINVAL_CONFIG, "%s: expected a list of names, got %s", ctx,
                     cbx__wf_kind(v));
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
            cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG, "%s: expected a name, got %s", ctx,
                         cbx__wf_kind(it));
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
        cbx__wf_prob(L, path, CBX_EINVAL_CONFIG, "%s: policy: expected a mapping, got %s", ctx,
                     cbx__wf_kind(policy));
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
        cbx__wf_pj(kp, path, "validations");
        if (!json_is_object(val)) {
            cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG,
                         "%s: validations: expected {all: [...], any: [...]}", ctx);
        } else {
            static const char *const va[] = {"all", "any", NULL};
            cbx__wf_unknown_keys(L, val, va, kp, ctx);
            cbx__wf_textf(c2, sizeof c2, "%s: validations.all", ctx);
            t->v_all = string_list(L, json_object_get(val, "all"), cbx__wf_pj(kp2, kp, "all"), c2,
                                   &t->nv_all);
            cbx__wf_textf(c2, sizeof c2, "%s: validations.any", ctx);
            t->v_any = string_list(L, json_object_get(val, "any"), cbx__wf_pj(kp2, kp, "any"), c2,
                                   &t->nv_any);
        }
    }
    const json_t *rules = json_object_get(policy, "rules");
    if (!rules)
        return;
    cbx__wf_pj(kp, path, "rules");
    if (!json_is_object(rules)) {
        cbx__wf_prob(L, kp, CBX_EINVAL_CONFIG, "%s: rules: expected {all: [...], any: [...]}", ctx);
        return;
    }
    static const char *const ra[] = {"all", "any", NULL};
    cbx__wf_unknown_keys(L, rules, ra, kp, ctx);
    for (int k = 0; k < 2; k++) {
        const char *which = k ? "any" : "all";
        const json_t *list = json_object_get(rules, which);
        size_t n = 0;
        cbx__wf_textf(c2, sizeof c2, "%s: rules.%s", ctx, which);
        cbx__wf_pj(kp2, kp, which);
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
                cbx__wf_prob(L, ip, CBX_EINVAL_CONFIG, "%s: unknown rule '%s'%s%s%s", ctx, names[i],
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
        cbx__wf_prob(L, cbx__wf_pj(kp, path, "executor"), CBX_EUNKNOWN_TYPE,
                     "%s: unknown executor '%s'%s%s%s", ctx, t->executor,
                     best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
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
    cbx__wf_pj(cp, path, "config");
    for (size_t i = 0; i < d.n; i++) {
        const cbx_err *e = &d.items[i];
        char first[128];
        cbx__wf_textf(first, sizeof first, "%s", e->where);
        first[strcspn(first, ".[")] = 0;
        if (first[0] && json_object_get(templated, first))
            continue;
        cbx__wf_prob(L, e->where[0] ? cbx__wf_pj(kp, cp, e->where) : cp, e->code,
                     "%s: config%s%s: %s", ctx, e->where[0] ? "." : "", e->where, e->msg);
    }
    cbx_diag_clear(&d);
    json_decref(copy);
    json_decref(templated);
}

void cbx__wf_parse_runs_on(loader *L, const json_t *node, const char *path, const char *ctx,
                           char **out)
{
    const json_t *v = json_object_get(node, "runs_on");
    if (!v)
        return;
    char kp[PATH_MAX_WF], at[PATH_MAX_WF], msg[200];
    const char *sub = "";
    cbx__wf_pj(kp, path, "runs_on");
    int r = cbx__runs_on_parse(v, out, msg, sizeof msg, &sub);
    if (r == -ENOMEM)
        L->fatal = -ENOMEM;
    else if (r < 0)
        cbx__wf_prob(L, sub[0] ? cbx__wf_pj(at, kp, sub) : kp, CBX_EINVAL_CONFIG, "%s: runs_on: %s",
                     ctx, msg);
    else if (cbx__runs_on_remote(*out) && L->reg &&
             !cbx_registry_find(L->reg, CBX__RUNS_ON_EXECUTOR))
        cbx__wf_prob(L, kp, CBX_EUNKNOWN_TYPE,
                     "%s: runs_on: the registry has no '" CBX__RUNS_ON_EXECUTOR
                     "' executor to send it with",
                     ctx);
}

static void parse_action(loader *L, cbx__wf_trans *t, const json_t *a, const char *path,
                         const char *ctx, json_t *resilience)
{
    char kp[PATH_MAX_WF];
    if (!a) {
        if (resilience && !json_is_string(resilience))
            cbx__wf_prob(
                L, cbx__wf_pj(kp, path, "policy"), CBX_EINVAL_CONFIG,
                "%s: policy: timeout, retry, breaker, ... apply to an action, and there is none",
                ctx);
        return;
    }
    cbx__wf_pj(kp, path, "action");
    char ap[PATH_MAX_WF];
    cbx__wf_textf(ap, sizeof ap, "%s", kp);
    if (!json_is_object(a)) {
        cbx__wf_prob(L, ap, CBX_EINVAL_CONFIG,
                     "%s: action: expected {executor, config, policy}, got %s", ctx,
                     cbx__wf_kind(a));
        return;
    }
    cbx__wf_unknown_keys(L, a, action_keys, ap, ctx);
    const json_t *ex = json_object_get(a, "executor");
    if (!json_is_string(ex)) {
        cbx__wf_prob(L, ex ? cbx__wf_pj(kp, ap, "executor") : ap, CBX_EINVAL_CONFIG,
                     "%s: action: executor: expected an executor type's name", ctx);
        return;
    }
    t->executor = strdup(json_string_value(ex));
    const json_t *cfg = json_object_get(a, "config");
    if (cfg && !json_is_object(cfg)) {
        cbx__wf_prob(L, cbx__wf_pj(kp, ap, "config"), CBX_EINVAL_CONFIG,
                     "%s: action: config: expected a mapping", ctx);
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
        cbx__wf_prob(L, cbx__wf_pj(kp, ap, "outputs"), CBX_EINVAL_CONFIG,
                     "%s: action: outputs: expected a mapping of token fields to templates, or one "
                     "template giving an object",
                     ctx);
    else if (outs && !(t->outputs = json_deep_copy(outs)))
        L->fatal = -ENOMEM;
    cbx_err e;
    cbx_err_clear(&e);
    if (t->outputs && cbx_template_check(t->outputs, &e) != 0)
        cbx__wf_prob(L, cbx__wf_pj(kp, ap, "outputs"), e.code, "%s: action: outputs.%s: %s", ctx,
                     e.where, e.msg);
    cbx_err_clear(&e);
    if (cbx_template_check(t->config, &e) != 0)
        cbx__wf_prob(L, e.where[0] ? cbx__wf_pj(kp, cbx__wf_pj(cpath, ap, "config"), e.where) : ap,
                     e.code, "%s: action: config.%s: %s", ctx, e.where, e.msg);
    check_params(L, t, ap, ctx);
    cbx__wf_parse_runs_on(L, a, ap, ctx, &t->runs_on);
    if (!t->runs_on && L->w->runs_on && !(t->runs_on = strdup(L->w->runs_on)))
        L->fatal = -ENOMEM;
    const json_t *ap_pol = json_object_get(a, "policy");
    if (ap_pol && resilience) {
        cbx__wf_prob(
            L, cbx__wf_pj(kp, ap, "policy"), CBX_EINVAL_CONFIG,
            "%s: the action's policy is given twice (in policy: and in action.policy:); keep one",
            ctx);
        return;
    }
    const json_t *pol = ap_pol ? ap_pol : resilience;
    const char *pol_path = ap_pol ? cbx__wf_pj(kp, ap, "policy") : cbx__wf_pj(kp, path, "policy");
    if (!pol)
        return;
    if (json_is_string(pol)) {
        for (size_t i = 0; i < L->w->npols; i++)
            if (strcmp(L->w->pol_names[i], json_string_value(pol)) == 0)
                t->policy = L->w->pols[i];
        if (!t->policy)
            cbx__wf_prob(L, pol_path, CBX_EINVAL_CONFIG, "%s: unknown policy '%s'", ctx,
                         json_string_value(pol));
        return;
    }
    if (!json_is_object(pol)) {
        cbx__wf_prob(L, pol_path, CBX_EINVAL_CONFIG, "%s: policy: expected a name or a mapping",
                     ctx);
        return;
    }
    if (cbx__wf_make_policy(L, pol, t->name, pol_path, ctx, &t->policy) == 0)
        t->policy_owned = 1;
}

void cbx__wf_parse_transition(loader *L, const json_t *node, size_t i)
{
    cbx_workflow *w = L->w;
    cbx__wf_trans *t = &w->trans[w->ntrans++];
    char path[PATH_MAX_WF], kp[PATH_MAX_WF], ctx[128];
    cbx__wf_textf(path, sizeof path, "transitions[%zu]", i);
    cbx_yaml_where(&w->doc, path, &t->line, &t->col);
    if (!json_is_object(node)) {
        cbx__wf_prob(L, path, CBX_EINVAL_CONFIG, "%s: expected a transition (a mapping), got %s",
                     path, cbx__wf_kind(node));
        return;
    }
    const json_t *name = json_object_get(node, "name");
    if (!json_is_string(name) || !cbx__wf_name_ok(json_string_value(name))) {
        cbx__wf_prob(L, name ? cbx__wf_pj(kp, path, "name") : path, CBX_EINVAL_CONFIG,
                     "%s: name: expected 1 to 63 letters, digits, '_' or '-'", path);
        cbx__wf_textf(ctx, sizeof ctx, "%s", path);
    } else {
        if (cbx__wf_trans_index(w, json_string_value(name)) != NPOS)
            cbx__wf_prob(L, cbx__wf_pj(kp, path, "name"), CBX_EINVAL_CONFIG,
                         "transition '%s' is declared twice", json_string_value(name));
        t->name = strdup(json_string_value(name));
        cbx__wf_textf(ctx, sizeof ctx, "transition '%s'", t->name);
    }
    cbx__wf_unknown_keys(L, node, trans_keys, path, ctx);
    char c2[160];
    cbx__wf_textf(c2, sizeof c2, "%s: from", ctx);
    t->from = cbx__wf_place_list(L, json_object_get(node, "from"), cbx__wf_pj(kp, path, "from"), c2,
                                 &t->nfrom);
    cbx__wf_textf(c2, sizeof c2, "%s: to", ctx);
    t->to =
        cbx__wf_place_list(L, json_object_get(node, "to"), cbx__wf_pj(kp, path, "to"), c2, &t->nto);
    const json_t *v = json_object_get(node, "priority");
    if (v && !json_is_integer(v))
        cbx__wf_prob(L, cbx__wf_pj(kp, path, "priority"), CBX_EINVAL_CONFIG,
                     "%s: priority: expected a whole number (higher is tried first)", ctx);
    else if (v)
        t->priority = (int)json_integer_value(v);
    v = json_object_get(node, "join");
    if (v && (!json_is_string(v) || (strcmp(json_string_value(v), "family") != 0 &&
                                     strcmp(json_string_value(v), "any") != 0)))
        cbx__wf_prob(L, cbx__wf_pj(kp, path, "join"), CBX_EINVAL_CONFIG,
                     "%s: join: expected family or any", ctx);
    else if (v)
        t->join_any = strcmp(json_string_value(v), "any") == 0;
    v = json_object_get(node, "trigger");
    const json_t *sig = json_object_get(node, "signal");
    if (v && (!json_is_string(v) || (strcmp(json_string_value(v), "auto") != 0 &&
                                     strcmp(json_string_value(v), "signal") != 0)))
        cbx__wf_prob(L, cbx__wf_pj(kp, path, "trigger"), CBX_EINVAL_CONFIG,
                     "%s: trigger: expected auto or signal", ctx);
    else if ((v && strcmp(json_string_value(v), "signal") == 0) || sig)
        t->trigger = WF_TRIGGER_SIGNAL;
    if (sig && !json_is_string(sig))
        cbx__wf_prob(L, cbx__wf_pj(kp, path, "signal"), CBX_EINVAL_CONFIG,
                     "%s: signal: expected a name", ctx);
    else if (t->trigger == WF_TRIGGER_SIGNAL)
        t->signal = strdup(sig ? json_string_value(sig) : t->name ? t->name : "");
    v = json_object_get(node, "after");
    if (v) {
        uint64_t ns = 0;
        if (!json_is_string(v) || cbx_duration_parse_ns(json_string_value(v), &ns) != 0 ||
            ns < 1000000)
            cbx__wf_prob(L, cbx__wf_pj(kp, path, "after"), CBX_EINVAL_CONFIG,
                         "%s: after: expected a duration like 30s, 1h (at least 1ms)", ctx);
        else
            t->after_ms = ns / 1000000;
        if (t->trigger == WF_TRIGGER_SIGNAL)
            cbx__wf_prob(L, cbx__wf_pj(kp, path, "after"), CBX_EINVAL_CONFIG,
                         "%s: after: and trigger: signal exclude each other", ctx);
    }
    json_t *resilience = NULL;
    parse_guard(L, t, json_object_get(node, "policy"), cbx__wf_pj(kp, path, "policy"), ctx,
                &resilience);
    parse_action(L, t, json_object_get(node, "action"), path, ctx, resilience);
    json_decref(resilience);
}

static int by_priority(const cbx_workflow *w, size_t a, size_t b)
{
    if (w->trans[a].priority != w->trans[b].priority)
        return w->trans[a].priority > w->trans[b].priority ? -1 : 1;
    return a < b ? -1 : 1;
}

void cbx__wf_index_transitions(loader *L)
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
