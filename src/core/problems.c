/* Problems collected into one cbx_err (see problems.h). */
#include "core/problems.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cbx__problem(cbx__problems *p, const char *where, const char *fmt, ...)
{
    p->n++;
    if (!p->err)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->n == 1) {
        p->err->code = CBX_EINVAL_CONFIG;
        snprintf(p->err->where, sizeof p->err->where, "%s", where);
        snprintf(p->err->msg, sizeof p->err->msg, "%s: %s", where, msg);
    } else {
        size_t len = strlen(p->err->msg);
        snprintf(p->err->msg + len, sizeof p->err->msg - len, "; %s: %s", where, msg);
    }
}

int cbx__c_string(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}
