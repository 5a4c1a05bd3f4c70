/* A JSON value as compact text into a caller's buffer, byte for byte as jansson's
 * json_dumps(JSON_COMPACT | JSON_ENCODE_ANY) writes it (members in their order, strings escaped
 * the same way), but for reals, written with the fewest digits that read back, without jansson's
 * per-container cycle check (a printf of the pointer and a hash table insertion each): responses
 * are dumped on the loop's thread, one per request. */
#include "server/json_write.h"

#include "core/json_escape.h"
#include "core/real_text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct out {
    char *p;
    size_t len, cap;
    int full; /* did not fit, or cannot be written here: the caller falls back to jansson */
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void putc1(out *o, char c)
{
    put(o, &c, 1);
}

static void put_string(out *o, const char *s, size_t n)
{
    putc1(o, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        char esc[7];
        size_t len = cbx__json_escape(c, esc, 1);
        if (!len)
            continue;
        put(o, s + run, i - run);
        run = i + 1;
        put(o, esc, len);
    }
    put(o, s + run, n - run);
    putc1(o, '"');
}

/* A real: the fewest digits that read back. */
static void put_real(out *o, double v)
{
    char buf[40];
    size_t n = cbx__real_json(v, buf);
    if (!n)
        o->full = 1;
    else
        put(o, buf, n);
}

static void put_value(out *o, const json_t *v, int depth)
{
    if (o->full || depth > MAX_DEPTH) {
        o->full = 1;
        return;
    }
    json_t *m = (json_t *)(uintptr_t)v; /* only read: jansson's iterators take no const */
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        putc1(o, '{');
        int first = 1;
        for (void *it = json_object_iter(m); it && !o->full; it = json_object_iter_next(m, it)) {
            if (!first)
                putc1(o, ',');
            first = 0;
            const char *key = json_object_iter_key(it);
            put_string(o, key, strlen(key));
            putc1(o, ':');
            put_value(o, json_object_iter_value(it), depth + 1);
        }
        putc1(o, '}');
        break;
    }
    case JSON_ARRAY:
        putc1(o, '[');
        for (size_t i = 0; i < json_array_size(m) && !o->full; i++) {
            if (i)
                putc1(o, ',');
            put_value(o, json_array_get(m, i), depth + 1);
        }
        putc1(o, ']');
        break;
    case JSON_STRING:
        put_string(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        unsigned long long u = i < 0 ? 0ull - (unsigned long long)i : (unsigned long long)i;
        char buf[24], *p = buf + sizeof buf;
        do
            *--p = (char)('0' + u % 10);
        while (u /= 10);
        if (i < 0)
            *--p = '-';
        put(o, p, (size_t)(buf + sizeof buf - p));
        break;
    }
    case JSON_REAL:
        put_real(o, json_real_value(v));
        break;
    case JSON_TRUE:
        put(o, "true", 4);
        break;
    case JSON_FALSE:
        put(o, "false", 5);
        break;
    default:
        put(o, "null", 4);
        break;
    }
}

size_t srv_json_write(const json_t *v, char *buf, size_t cap)
{
    out o = {.p = buf, .cap = cap};
    if (!v)
        return 0;
    put_value(&o, v, 0);
    return o.full ? 0 : o.len;
}
