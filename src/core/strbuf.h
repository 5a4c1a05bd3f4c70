/* A growable text buffer: the text is always NUL-terminated (when p is not NULL), and a failed
 * growth sets oom, after which nothing more is written (check oom once, at the end). The holder
 * owns p (free it). Start from {0}, or with p, cap from malloc. */
#ifndef CBX_CORE_STRBUF_H
#define CBX_CORE_STRBUF_H

#include <stddef.h>

typedef struct cbx__buf {
    char *p;
    size_t len, cap;
    int oom;
} cbx__buf;

/* Append n bytes of s. */
void cbx__buf_put(cbx__buf *b, const char *s, size_t n);
/* Append the string s. */
void cbx__buf_puts(cbx__buf *b, const char *s);
/* Append printf's text. */
void cbx__buf_printf(cbx__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
