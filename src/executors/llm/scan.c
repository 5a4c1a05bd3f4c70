/* Reading the few fields the llm executor needs from a model server's JSON without building a
 * jansson tree: one validating pass over the text, then lookups that walk the checked text.
 *
 * The pass accepts only what jansson would read the same way; anything it is not sure of (an
 * exponent or a long integer, a \u0000, an escaped object key, deep nesting, a byte that is not
 * UTF-8) makes it say no, and the caller parses the text with jansson instead, which gives the
 * same answer or the same error as before. */
#include "executors/llm/llm.h"

#include <stddef.h>
#include <string.h>

#define MAX_DEPTH 64

static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* The length of the UTF-8 sequence at p (its first byte >= 0x80), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p, const unsigned char *e)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if ((size_t)(e - p) < n)
        return 0;
    unsigned v = c & (0x3f >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return n;
}

/* A string at p ('"'): the position after it, or NULL. *escaped: it holds a backslash. */
/* Bytes a string scan must stop at: the quote, the backslash, control characters and bytes of
 * UTF-8 sequences (plain[c] == 0); and the bytes an unchecked walk must look at (walk[c]). */
static const unsigned char plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0), /* 0x00-0x1f */
    1,      1,      0,      1,      1,      1,      1,      1,
    1,      1,      1,      1,      1,      1,      1,      1, /* 0x20-0x2f: '"' */
    R16(1), R16(1),                                            /* 0x30-0x4f */
    1,      1,      1,      1,      1,      1,      1,      1,
    1,      1,      1,      1,      0,      1,      1,      1,      /* 0x50-0x5f: '\\' */
    R16(1), R16(1),                                                 /* 0x60-0x7f */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* 0x80-0xff */
#undef R16
};

static const char *skip_string(const char *p, const char *e, int *escaped)
{
    p++;
    while (p < e) {
        while (e - p >= 4 && plain[(unsigned char)p[0]] && plain[(unsigned char)p[1]] &&
               plain[(unsigned char)p[2]] && plain[(unsigned char)p[3]])
            p += 4;
        while (p < e && plain[(unsigned char)*p])
            p++;
        if (p >= e)
            return NULL;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            *escaped = 1;
            if (++p >= e)
                return NULL;
            switch (*p) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p++;
                continue;
            case 'u': {
                unsigned u, lo;
                if (e - p < 5 || hex4(p + 1, &u) < 0 || u == 0)
                    return NULL;
                p += 5;
                if (u >= 0xdc00 && u <= 0xdfff)
                    return NULL;
                if (u >= 0xd800 && u <= 0xdbff) { /* a pair: the low half must follow */
                    if (e - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return NULL;
                    p += 6;
                }
                continue;
            }
            default:
                return NULL;
            }
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)e);
        if (!n)
            return NULL;
        p += n;
    }
    return NULL;
}

static const char *skip_number(const char *p, const char *e)
{
    if (p < e && *p == '-')
        p++;
    const char *d = p;
    if (p < e && *p == '0')
        p++;
    else
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    if (p == d || p - d > 18)
        return NULL; /* no digits, or an integer part jansson may find too big */
    if (p < e && *p == '.') {
        const char *f = ++p;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        if (p == f)
            return NULL;
    }
    if (p < e && (*p == 'e' || *p == 'E'))
        return NULL; /* exponents: left to jansson (its range checks) */
    return p;
}

static const char *skip_value(const char *p, const char *e, int depth)
{
    p = ws(p, e);
    if (p >= e)
        return NULL;
    int esc = 0;
    switch (*p) {
    case '"':
        return skip_string(p, e, &esc);
    case '{':
    case '[': {
        if (depth >= MAX_DEPTH)
            return NULL;
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                if (p >= e || *p != '"')
                    return NULL;
                esc = 0;
                p = skip_string(p, e, &esc);
                if (!p || esc) /* an escaped key: jansson compares it decoded */
                    return NULL;
                p = ws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p++;
            }
            p = skip_value(p, e, depth + 1);
            if (!p)
                return NULL;
            p = ws(p, e);
            if (p >= e)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p != ',')
                return NULL;
            p = ws(p + 1, e);
        }
    }
    case 't':
        return e - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return e - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return e - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return skip_number(p, e);
    }
}

int cbx__llm_json_check(const char *s, size_t n, llm_span *out)
{
    const char *e = s + n, *p = ws(s, e);
    if (p >= e || (*p != '{' && *p != '['))
        return -1;
    const char *end = skip_value(p, e, 0);
    if (!end || ws(end, e) != e)
        return -1;
    out->p = p;
    out->n = (size_t)(end - p);
    return 0;
}

/* The end of the value at p in checked text: no checks, only strings and brackets followed. */
static const char *next(const char *p, const char *e)
{
    if (*p == '"') {
        for (p++; p < e; p++) {
            const char *q = memchr(p, '"', (size_t)(e - p));
            if (!q)
                return e;
            /* the quote ends the string unless an odd run of backslashes escapes it */
            size_t bs = 0;
            while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
                bs++;
            if (bs % 2 == 0)
                return q + 1;
            p = q;
        }
        return e;
    }
    if (*p != '{' && *p != '[') {
        while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
               *p != '\r' && *p != '\t')
            p++;
        return p;
    }
    int depth = 0;
    for (; p < e; p++) {
        char c = *p;
        if (c == '"') {
            p = next(p, e) - 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return p + 1;
        }
    }
    return e;
}

unsigned cbx__llm_json_fields(llm_span obj, const char *const *keys, size_t nkeys, llm_span *out)
{
    if (!obj.p || obj.n < 2 || obj.p[0] != '{')
        return 0;
    const char *p = obj.p + 1, *e = obj.p + obj.n;
    unsigned found = 0;
    for (;;) {
        p = ws(p, e);
        if (p >= e || *p != '"')
            return found;
        const char *k = p + 1, *ke = next(p, e) - 1; /* keys hold no escapes: checked */
        p = ws(ke + 1, e) + 1;                       /* past ':' */
        p = ws(p, e);
        const char *v = p;
        p = next(p, e);
        size_t kn = (size_t)(ke - k);
        for (size_t i = 0; i < nkeys; i++)
            if (keys[i][0] == k[0] && strncmp(keys[i], k, kn) == 0 && keys[i][kn] == 0) {
                out[i].p = v; /* the last of equal keys, as jansson keeps it */
                out[i].n = (size_t)(p - v);
                found |= 1u << i;
            }
        p = ws(p, e);
        if (p >= e || *p != ',')
            return found;
        p++;
    }
}

int cbx__llm_json_get(llm_span obj, const char *key, llm_span *out)
{
    return cbx__llm_json_fields(obj, &key, 1, out) != 0;
}

int cbx__llm_json_at(llm_span arr, size_t i, llm_span *out)
{
    if (!arr.p || arr.n < 2 || arr.p[0] != '[')
        return 0;
    const char *p = arr.p + 1, *e = arr.p + arr.n;
    for (size_t k = 0;; k++) {
        p = ws(p, e);
        if (p >= e || *p == ']')
            return 0;
        const char *v = p;
        p = next(p, e);
        if (k == i) {
            out->p = v;
            out->n = (size_t)(p - v);
            return 1;
        }
        p = ws(p, e);
        if (p >= e || *p != ',')
            return 0;
        p++;
    }
}

static void put_utf8(char **d, unsigned u)
{
    char *o = *d;
    if (u < 0x80) {
        *o++ = (char)u;
    } else if (u < 0x800) {
        *o++ = (char)(0xc0 | (u >> 6));
        *o++ = (char)(0x80 | (u & 0x3f));
    } else if (u < 0x10000) {
        *o++ = (char)(0xe0 | (u >> 12));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3f));
        *o++ = (char)(0x80 | (u & 0x3f));
    } else {
        *o++ = (char)(0xf0 | (u >> 18));
        *o++ = (char)(0x80 | ((u >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3f));
        *o++ = (char)(0x80 | (u & 0x3f));
    }
    *d = o;
}

size_t cbx__llm_json_decode(llm_span v, char *dst)
{
    const char *p = v.p + 1, *e = v.p + v.n - 1; /* inside the quotes */
    char *o = dst;
    while (p < e) {
        const char *bs = memchr(p, '\\', (size_t)(e - p));
        size_t run = bs ? (size_t)(bs - p) : (size_t)(e - p);
        memcpy(o, p, run);
        o += run;
        p += run;
        if (!bs)
            break;
        char c = p[1];
        p += 2;
        switch (c) {
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned u = 0, lo = 0;
            hex4(p, &u);
            p += 4;
            if (u >= 0xd800 && u <= 0xdbff) {
                hex4(p + 2, &lo);
                p += 6;
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(&o, u);
            break;
        }
        default:
            *o++ = c;
            break; /* " \ / */
        }
    }
    *o = 0;
    return (size_t)(o - dst);
}

int cbx__llm_json_int(llm_span v, long long *out)
{
    if (!v.p || v.n == 0)
        return -1;
    const char *p = v.p, *e = v.p + v.n;
    int neg = *p == '-';
    if (neg)
        p++;
    long long x = 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9')
            return -1;           /* a real, or not a number */
        x = x * 10 + (*p - '0'); /* at most 18 digits: checked */
    }
    *out = neg ? -x : x;
    return 0;
}
