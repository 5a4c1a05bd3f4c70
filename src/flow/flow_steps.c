/* The steps of a loaded flow in file order, for a caller that shows them (cbx run's view): read
 * from the loaded flow rather than from its file again. */
#include "flow/flow_internal.h"

#include <stdio.h>

typedef int (*step_fn)(const cbx_flow_step_info *s, void *ud);

/* Nesting is as deep as the file's composites, never as long as the flow. */
static int walk(const cbx__flow_step *steps, size_t n, const char *prefix, int depth, step_fn fn,
                void *ud)
{
    char full[1024];
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        const char *name = s->name;
        if (prefix) {
            snprintf(full, sizeof full, "%s.%s", prefix, s->name);
            name = full;
        }
        cbx_flow_step_info info = {.name = name,
                                   .executor = s->executor,
                                   .depth = depth,
                                   .foreach = s->foreach || s->foreach_list,
                                   .continue_on_error = s->continue_on_error};
        int r = fn(&info, ud);
        if (r)
            return r;
        if (s->nchildren && (r = walk(s->children, s->nchildren, name, depth + 1, fn, ud)))
            return r;
    }
    return 0;
}

int cbx_flow_steps_walk(const cbx_flow *f, step_fn fn, void *ud)
{
    return f ? walk(f->steps, f->nsteps, NULL, 0, fn, ud) : 0;
}
