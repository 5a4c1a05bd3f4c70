/* The known types of templated values (see flow_check_types.h). */
#include "flow/flow_check_types.h"

#include "flow/template_internal.h"

#include <stdio.h>
#include <string.h>

static int fits(cbx_param_type got, cbx_param_type want)
{
    return want == CBX_PARAM_ANY || got == CBX_PARAM_ANY || got == want ||
           (got == CBX_PARAM_INTEGER && want == CBX_PARAM_NUMBER);
}

/* The declared type of the input a whole-template path `inputs.NAME` reads, or ANY. */
static cbx_param_type input_type(const cbx_flow *f, const char *s, size_t len)
{
    cbx__tpl_path_step st[CBX__TPL_PATH_MAX];
    size_t n = cbx__tpl_parse_path(s, len, st);
    if (n != 2 || st[0].kn != 6 || memcmp(st[0].k, "inputs", 6) != 0 || !st[1].k)
        return CBX_PARAM_ANY;
    for (size_t i = 0; i < f->ninputs; i++)
        if (strlen(f->inputs[i].name) == st[1].kn &&
            memcmp(f->inputs[i].name, st[1].k, st[1].kn) == 0)
            return f->inputs[i].type;
    return CBX_PARAM_ANY;
}

int cbx__flow_template_type_problem(const cbx_flow *f, const json_t *v, cbx_param_type want,
                                    char *msg, size_t len)
{
    if (!json_is_string(v) || want == CBX_PARAM_ANY)
        return 0;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    cbx__tpl_span sp;
    if (!cbx__tpl_whole(s, n, &sp)) {
        if (fits(CBX_PARAM_STRING, want))
            return 0;
        snprintf(msg, len,
                 "a template inside text gives a string, and this takes %s (write the value as "
                 "one whole template, \"{{ ... }}\", to keep the type of what it gives)",
                 cbx_param_type_name(want));
        return 1;
    }
    cbx_param_type got = f ? input_type(f, s + sp.expr, sp.expr_end - sp.expr) : CBX_PARAM_ANY;
    if (fits(got, want))
        return 0;
    snprintf(msg, len, "%.*s gives the input's type, %s, and this takes %s%s",
             (int)(sp.close - sp.open), s + sp.open, cbx_param_type_name(got),
             cbx_param_type_name(want),
             want == CBX_PARAM_STRING ? " (convert it: \"{{ tostring(...) }}\")" : "");
    return 1;
}
