/* Which outputs a step is known to produce before the run, so that the checker (flow_check.c)
 * refuses a reference to one it never produces (`steps.fetch.outputs.bdy` for an http step). */
#ifndef CBX_FLOW_CHECK_OUTPUTS_H
#define CBX_FLOW_CHECK_OUTPUTS_H

#include "flow/flow_internal.h"

#include "cbx/registry.h"

#include <stddef.h>

/* s is a step of f, node its mapping as written. Returns 1 with the problem in msg (the step's
 * type, the name, and "did you mean 'body'?" when one is close) when s never produces the
 * output key; 0 when it may (it is declared, or the step's outputs are not known: a type that
 * declares none, a composite, a sub-flow, a foreach, a fallback whose answer is not a literal
 * mapping). */
int cbx__flow_output_problem(const cbx_registry *reg, const cbx_flow *f, const cbx__flow_step *s,
                             const json_t *node, const char *key, char *msg, size_t len);

#endif
