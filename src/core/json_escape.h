/* The escaping of one byte inside a JSON string, shared by the writers that build JSON text
 * without jansson (the journal's redacting dumper, the template engine's encoder). */
#ifndef CBX_CORE_JSON_ESCAPE_H
#define CBX_CORE_JSON_ESCAPE_H

#include <stddef.h>

/* When byte c must be escaped ('"', '\\', control characters), write its escape into out and
 * return its length: 2 (\n, \t, ...) or 6 (\u00XX, hex in upper case when upper, as jansson
 * writes it). Return 0 when c stands as it is (UTF-8 bytes included). */
size_t cbx__json_escape(unsigned char c, char out[7], int upper);

#endif
