/* A growable text buffer: the text is always NUL-terminated (when p is not NULL), and a failed
 * growth sets oom, after which nothing more is written (check oom once, at the end). The holder
 * owns p (free it). Start from {0}, or with p, cap from malloc. */
#ifndef CBX_CORE_STRBUF_H
#define CBX_CORE_STRBUF_H

#include <stddef.h>
#include <string.h>

typedef struct cbx__buf {
    char *p;
    size_t len, cap;
    int oom;
} cbx__buf;

/* Room for n more bytes and the NUL: 0, or -1 (oom set, or set before). */
int cbx__buf_reserve(cbx__buf *b, size_t n);

/* Append n bytes of s (inline: writers of JSON text call it for every piece). */
static inline void cbx__buf_put(cbx__buf *b, const char *s, size_t n)
{
    if (!(b->p && !b->oom && b->len + n + 1 <= b->cap) && cbx__buf_reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Append a string literal. */
#define CBX__BUF_LIT(b, lit) cbx__buf_put((b), "" lit, sizeof(lit) - 1)
/* Append the string s. */
void cbx__buf_puts(cbx__buf *b, const char *s);
/* Append printf's text. */
void cbx__buf_printf(cbx__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
