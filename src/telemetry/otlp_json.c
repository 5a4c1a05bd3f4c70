/* An ExportTraceServiceRequest in OTLP's JSON mapping: resourceSpans / scopeSpans / spans,
 * ids as hex strings, times and 64-bit integers as decimal strings, enums as integers, fields
 * with their default values left out. */
#include "telemetry/trace.h"

#include "core/json_escape.h"

#ifndef CBX_VERSION
#define CBX_VERSION "0.0.0"
#endif

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void grow_to(buf *b, size_t more)
{
    if (b->oom)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static inline void put(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap)
        grow_to(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* a string literal */
#define lit(b, s) put(b, "" s, sizeof(s) - 1)

static void fmt(buf *b, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void fmt(buf *b, const char *f, ...)
{
    char tmp[96];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(tmp, sizeof tmp, f, ap);
    va_end(ap);
    if (n > 0)
        put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* s as a JSON string (s is valid UTF-8: the span's text is made so). */
static void str(buf *b, const char *s)
{
    lit(b, "\"");
    const char *run = s, *p = s;
    for (;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (!c)
            break;
        char esc[7];
        size_t n = cbx__json_escape(c, esc, 0);
        put(b, run, (size_t)(p - run));
        put(b, esc, n);
        run = p + 1;
    }
    put(b, run, (size_t)(p - run));
    lit(b, "\"");
}

/* Unsigned decimal and 16 hex digits, without printf. */
static void dec(buf *b, uint64_t v)
{
    char t[24];
    size_t i = sizeof t;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(b, t + i, sizeof t - i);
}

static void hex16(buf *b, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char t[16];
    for (int i = 15; i >= 0; i--, v >>= 4)
        t[i] = digits[v & 15];
    put(b, t, sizeof t);
}

static void kv_str(buf *b, const char *key, const char *v)
{
    lit(b, "{\"key\":");
    str(b, key);
    lit(b, ",\"value\":{\"stringValue\":");
    str(b, v);
    lit(b, "}}");
}

static void attr(buf *b, const cbx__span *s, const cbx__span_attr *a)
{
    switch (a->type) {
    case CBX__ATTR_STR:
        kv_str(b, a->key, s->text + a->off);
        return;
    case CBX__ATTR_INT:
        lit(b, "{\"key\":");
        str(b, a->key);
        lit(b, ",\"value\":{\"intValue\":\"");
        if (a->v.i < 0) {
            lit(b, "-");
            dec(b, (uint64_t)0 - (uint64_t)a->v.i);
        } else {
            dec(b, (uint64_t)a->v.i);
        }
        lit(b, "\"}}");
        return;
    case CBX__ATTR_BOOL:
        lit(b, "{\"key\":");
        str(b, a->key);
        fmt(b, ",\"value\":{\"boolValue\":%s}}", a->v.i ? "true" : "false");
        return;
    default:
        lit(b, "{\"key\":");
        str(b, a->key);
        if (isfinite(a->v.d))
            fmt(b, ",\"value\":{\"doubleValue\":%.17g}}", a->v.d);
        else
            fmt(b, ",\"value\":{\"doubleValue\":\"%s\"}}",
                isnan(a->v.d) ? "NaN"
                : a->v.d > 0  ? "Infinity"
                              : "-Infinity");
        return;
    }
}

static void span(buf *b, const cbx__span *s)
{
    lit(b, "{\"traceId\":\"");
    put(b, s->trace, 32);
    lit(b, "\",\"spanId\":\"");
    hex16(b, s->id);
    if (s->parent) {
        lit(b, "\",\"parentSpanId\":\"");
        hex16(b, s->parent);
    }
    lit(b, "\",\"name\":");
    str(b, s->text + s->name);
    lit(b, ",\"kind\":");
    dec(b, s->kind);
    lit(b, ",\"startTimeUnixNano\":\"");
    dec(b, s->start_ns);
    lit(b, "\",\"endTimeUnixNano\":\"");
    dec(b, s->end_ns);
    lit(b, "\"");
    if (s->nattrs) {
        lit(b, ",\"attributes\":[");
        for (unsigned i = 0; i < s->nattrs; i++) {
            if (i)
                lit(b, ",");
            attr(b, s, &s->attrs[i]);
        }
        lit(b, "]");
    }
    if (s->status != CBX__SPAN_UNSET) {
        lit(b, ",\"status\":{\"code\":");
        dec(b, s->status);
        if (s->msg) {
            lit(b, ",\"message\":");
            str(b, s->text + s->msg);
        }
        lit(b, "}");
    }
    lit(b, "}");
}

char *cbx__otlp_json(const cbx__otlp_config *c, const cbx__span *spans, size_t n, size_t *len)
{
    buf b = {0};
    lit(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    kv_str(&b, "service.name", c->service);
    lit(&b, ",");
    kv_str(&b, "telemetry.sdk.name", "cbx");
    lit(&b, ",");
    kv_str(&b, "telemetry.sdk.language", "c");
    lit(&b, ",");
    kv_str(&b, "telemetry.sdk.version", CBX_VERSION);
    lit(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"cbx\",\"version\":");
    str(&b, CBX_VERSION);
    lit(&b, "},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            lit(&b, ",");
        span(&b, &spans[i]);
    }
    lit(&b, "]}]}]}");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
