/* What type a templated parameter value will have, when that is known before the run: a template
 * inside longer text always gives a string, and a value that is one whole template of a declared
 * input (`{{ inputs.n }}`) has the input's type. The checker (flow_check.c) refuses the values
 * whose type cannot match their parameter. */
#ifndef CBX_FLOW_CHECK_TYPES_H
#define CBX_FLOW_CHECK_TYPES_H

#include "flow/flow_internal.h"

#include <stddef.h>

/* v is a string holding a template, given to a parameter (or array item) of type want. Returns 1
 * with the reason in msg when its type is known and cannot be want, else 0. */
int cbx__flow_template_type_problem(const cbx_flow *f, const json_t *v, cbx_param_type want,
                                    char *msg, size_t len);

#endif
