/* Compact JSON text of a jansson value into a caller's buffer, as json_dumps writes it
 * (json_write.c). */
#ifndef CBX_SERVER_JSON_WRITE_H
#define CBX_SERVER_JSON_WRITE_H

#include <jansson.h>
#include <stddef.h>

/* v as json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) writes it, into buf (not NUL-terminated):
 * its length; 0 for v NULL, when it does not fit in cap, or when it nests deeper than 64
 * (then use json_dumps, which also reports a cycle). */
size_t srv_json_write(const json_t *v, char *buf, size_t cap);

#endif
