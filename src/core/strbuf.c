#include "core/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cbx__buf_reserve(cbx__buf *b, size_t n)
{
    if (b->oom)
        return -1;
    if (b->p && b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void cbx__buf_puts(cbx__buf *b, const char *s)
{
    cbx__buf_put(b, s, strlen(s));
}

void cbx__buf_printf(cbx__buf *b, const char *fmt, ...)
{
    if (cbx__buf_reserve(b, 0) < 0)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        if (cbx__buf_reserve(b, (size_t)n) < 0)
            return;
    }
}
