/* Releasing a loaded flow, and its accessors. */
#include "flow/flow_internal.h"

#include <stdlib.h>

void cbx__flow_step_clear(cbx__flow_step *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->executor);
    json_decref(s->config);
    if (s->owns_policy)
        cbx_policy_free(s->policy);
    free(s->when);
    free(s->runs_on);
    free(s->foreach);
    json_decref(s->foreach_list);
    free(s->deps);
    for (size_t i = 0; i < s->nchildren; i++)
        cbx__flow_step_clear(&s->children[i]);
    free(s->children);
    free(s->subflow_path);
    cbx_flow_free(s->subflow);
    json_decref(s->subflow_inputs);
    *s = (cbx__flow_step){0};
}

void cbx_flow_free(cbx_flow *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nsteps; i++)
        cbx__flow_step_clear(&f->steps[i]);
    free(f->steps);
    for (size_t i = 0; i < f->ninputs; i++) {
        free(f->inputs[i].name);
        json_decref(f->inputs[i].def);
        json_decref(f->inputs[i].enum_values);
        free(f->inputs[i].description);
    }
    free(f->inputs);
    for (size_t i = 0; i < f->npolicies; i++) {
        free(f->policies[i].name);
        cbx_policy_free(f->policies[i].policy);
    }
    free(f->policies);
    free(f->order);
    json_decref(f->outputs);
    free(f->runs_on);
    free(f->name);
    free(f->version);
    free(f->description);
    free(f->file);
    cbx_yaml_doc_clear(&f->doc);
    free(f);
}

int cbx_flow_declares_outputs(const cbx_flow *f)
{
    return f && f->outputs != NULL;
}

const char *cbx_flow_name(const cbx_flow *f)
{
    return f ? f->name : NULL;
}

const char *cbx_flow_file(const cbx_flow *f)
{
    return f ? f->file : NULL;
}

static size_t count_steps(const cbx__flow_step *steps, size_t n)
{
    size_t total = n;
    for (size_t i = 0; i < n; i++) /* nesting is bounded by the loader's depth limit */
        total += count_steps(steps[i].children, steps[i].nchildren);
    return total;
}

size_t cbx_flow_step_count(const cbx_flow *f)
{
    return f ? count_steps(f->steps, f->nsteps) : 0;
}
