/* Base64 (RFC 4648, the standard alphabet, padded). */
#ifndef CBX_CORE_BASE64_H
#define CBX_CORE_BASE64_H

#include <stddef.h>

/* The encoding of n bytes as a NUL-terminated string (malloc'd; NULL when out of memory). */
char *cbx__base64_encode(const void *data, size_t n);

/* The bytes of s, skipping characters outside the alphabet (white space, padding): malloc'd into
 * *out (NUL-terminated, not counted in *n). 0, or -ENOMEM. */
int cbx__base64_decode(const char *s, unsigned char **out, size_t *n);

#endif
