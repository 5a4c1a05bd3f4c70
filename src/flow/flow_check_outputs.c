/* The outputs a step is known to produce: its executor type's declaration (cbx_output), and the
 * keys of its fallback's literal answer, which may stand in for them. */
#include "flow/flow_check_outputs.h"
#include "flow/flow_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The step's policy block as written: inline, or the named one; NULL when none. */
static const json_t *policy_block(const cbx_flow *f, const json_t *node)
{
    const json_t *pol = json_object_get(node, "policy");
    if (json_is_string(pol))
        return json_object_get(json_object_get(f->doc.root, "policies"), json_string_value(pol));
    return json_is_object(pol) ? pol : NULL;
}

/* What the step's fallback may answer with instead of the executor's outputs:
 *   0  nothing (no fallback, or only a cache of the step's own past outputs)
 *   1  the keys of *value, a literal mapping
 *  -1  something not known before the run (a function, a value that is not a mapping) */
static int fallback_answer(const cbx_flow *f, const json_t *node, const json_t **value)
{
    *value = NULL;
    const json_t *fb = json_object_get(policy_block(f, node), "fallback");
    if (!fb)
        return 0;
    if (!json_is_object(fb) || json_object_get(fb, "function") || json_object_get(fb, "entries") ||
        json_object_get(json_object_get(fb, "cache"), "entries"))
        return -1;
    const json_t *v = json_object_get(fb, "value");
    if (!v)
        return 0;
    if (!json_is_object(v))
        return -1;
    *value = v;
    return 1;
}

int cbx__flow_output_problem(const cbx_registry *reg, const cbx_flow *f, const cbx__flow_step *s,
                             const json_t *node, const char *key, char *msg, size_t len)
{
    /* a composite's outputs are its children's, a sub-flow's its own, a foreach's a list */
    if (!reg || !s->executor || strcmp(s->executor, "steps") == 0 || s->subflow || s->foreach ||
        s->foreach_list)
        return 0;
    const cbx_executor_type *t = cbx_registry_find(reg, s->executor);
    const cbx_output *outs = cbx_executor_type_outputs(t);
    if (!outs || cbx_output_find(outs, key))
        return 0;
    const json_t *fv;
    int fb = fallback_answer(f, node, &fv);
    if (fb < 0 || (fb == 1 && json_object_get(fv, key)))
        return 0;

    size_t n = 0;
    while (outs[n].name)
        n++;
    size_t nf = fb == 1 ? json_object_size(fv) : 0;
    const char **names = calloc(n + nf + 1, sizeof *names);
    for (size_t i = 0; names && i < n; i++)
        names[i] = outs[i].name;
    if (names && nf) {
        const char *k;
        json_t *v;
        size_t i = n;
        json_object_foreach((json_t *)fv, k, v) names[i++] = k;
    }
    const char *best = names ? cbx__flow_suggest(key, names) : NULL;
    snprintf(msg, len, "step '%s' (%s) has no output '%s'%s%s%s", s->name ? s->name : "?", t->name,
             key, best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
    free(names);
    return 1;
}
