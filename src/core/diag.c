/* A growable list of problems. */
#include "cbx/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cbx_err *slot(cbx_diag *d)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        cbx_err *items = realloc(d->items, cap * sizeof *items);
        if (!items)
            return NULL;
        d->items = items;
        d->cap = cap;
    }
    return &d->items[d->n++];
}

int cbx_diag_add(cbx_diag *d, int code, const char *where, int line, int col, const char *fmt, ...)
{
    cbx_err *e = slot(d);
    if (!e)
        return code;
    cbx_err_clear(e);
    e->code = code;
    e->line = line;
    e->col = col;
    snprintf(e->where, sizeof e->where, "%s", where ? where : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void cbx_diag_push(cbx_diag *d, const cbx_err *src)
{
    cbx_err *e = slot(d);
    if (e)
        *e = *src;
}

void cbx_diag_clear(cbx_diag *d)
{
    if (!d)
        return;
    free(d->items);
    memset(d, 0, sizeof *d);
}

int cbx_diag_first(const cbx_diag *d, cbx_err *err)
{
    if (!d || d->n == 0)
        return 0;
    if (err) {
        *err = d->items[0];
        if (d->n > 1) {
            size_t len = strlen(err->msg);
            snprintf(err->msg + len, sizeof err->msg - len, " (and %zu more)", d->n - 1);
        }
    }
    return d->items[0].code;
}
