/* An ExportTraceServiceRequest in OTLP's JSON mapping: resourceSpans / scopeSpans / spans,
 * ids as hex strings, times and 64-bit integers as decimal strings, enums as integers, fields
 * with their default values left out. */
#include "telemetry/trace.h"

#include "core/json_escape.h"
#include "core/real_text.h"
#include "core/strbuf.h"

#ifndef CBX_VERSION
#define CBX_VERSION "0.0.0"
#endif

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef cbx__buf buf;

/* s as a JSON string (s is valid UTF-8: the span's text is made so). */
static void str(buf *b, const char *s)
{
    CBX__BUF_LIT(b, "\"");
    const char *run = s, *p = s;
    for (;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (!c)
            break;
        char esc[7];
        size_t n = cbx__json_escape(c, esc, 0);
        cbx__buf_put(b, run, (size_t)(p - run));
        cbx__buf_put(b, esc, n);
        run = p + 1;
    }
    cbx__buf_put(b, run, (size_t)(p - run));
    CBX__BUF_LIT(b, "\"");
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
    cbx__buf_put(b, t + i, sizeof t - i);
}

static void hex16(buf *b, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char t[16];
    for (int i = 15; i >= 0; i--, v >>= 4)
        t[i] = digits[v & 15];
    cbx__buf_put(b, t, sizeof t);
}

static void kv_str(buf *b, const char *key, const char *v)
{
    CBX__BUF_LIT(b, "{\"key\":");
    str(b, key);
    CBX__BUF_LIT(b, ",\"value\":{\"stringValue\":");
    str(b, v);
    CBX__BUF_LIT(b, "}}");
}

static void attr(buf *b, const cbx__span *s, const cbx__span_attr *a)
{
    switch (a->type) {
    case CBX__ATTR_STR:
        kv_str(b, a->key, s->text + a->off);
        return;
    case CBX__ATTR_INT:
        CBX__BUF_LIT(b, "{\"key\":");
        str(b, a->key);
        CBX__BUF_LIT(b, ",\"value\":{\"intValue\":\"");
        if (a->v.i < 0) {
            CBX__BUF_LIT(b, "-");
            dec(b, (uint64_t)0 - (uint64_t)a->v.i);
        } else {
            dec(b, (uint64_t)a->v.i);
        }
        CBX__BUF_LIT(b, "\"}}");
        return;
    case CBX__ATTR_BOOL:
        CBX__BUF_LIT(b, "{\"key\":");
        str(b, a->key);
        cbx__buf_printf(b, ",\"value\":{\"boolValue\":%s}}", a->v.i ? "true" : "false");
        return;
    default:
        CBX__BUF_LIT(b, "{\"key\":");
        str(b, a->key);
        char num[40];
        if (cbx__real_json(a->v.d, num))
            cbx__buf_printf(b, ",\"value\":{\"doubleValue\":%s}}", num);
        else
            cbx__buf_printf(b, ",\"value\":{\"doubleValue\":\"%s\"}}",
                            isnan(a->v.d) ? "NaN"
                            : a->v.d > 0  ? "Infinity"
                                          : "-Infinity");
        return;
    }
}

static void span(buf *b, const cbx__span *s)
{
    CBX__BUF_LIT(b, "{\"traceId\":\"");
    cbx__buf_put(b, s->trace, 32);
    CBX__BUF_LIT(b, "\",\"spanId\":\"");
    hex16(b, s->id);
    if (s->parent) {
        CBX__BUF_LIT(b, "\",\"parentSpanId\":\"");
        hex16(b, s->parent);
    }
    CBX__BUF_LIT(b, "\",\"name\":");
    str(b, s->text + s->name);
    CBX__BUF_LIT(b, ",\"kind\":");
    dec(b, s->kind);
    CBX__BUF_LIT(b, ",\"startTimeUnixNano\":\"");
    dec(b, s->start_ns);
    CBX__BUF_LIT(b, "\",\"endTimeUnixNano\":\"");
    dec(b, s->end_ns);
    CBX__BUF_LIT(b, "\"");
    if (s->nattrs) {
        CBX__BUF_LIT(b, ",\"attributes\":[");
        for (unsigned i = 0; i < s->nattrs; i++) {
            if (i)
                CBX__BUF_LIT(b, ",");
            attr(b, s, &s->attrs[i]);
        }
        CBX__BUF_LIT(b, "]");
    }
    if (s->status != CBX__SPAN_UNSET) {
        CBX__BUF_LIT(b, ",\"status\":{\"code\":");
        dec(b, s->status);
        if (s->msg) {
            CBX__BUF_LIT(b, ",\"message\":");
            str(b, s->text + s->msg);
        }
        CBX__BUF_LIT(b, "}");
    }
    CBX__BUF_LIT(b, "}");
}

char *cbx__otlp_json(const cbx__otlp_config *c, const cbx__span *spans, size_t n, size_t *len)
{
    buf b = {0};
    CBX__BUF_LIT(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    kv_str(&b, "service.name", c->service);
    CBX__BUF_LIT(&b, ",");
    kv_str(&b, "telemetry.sdk.name", "cbx");
    CBX__BUF_LIT(&b, ",");
    kv_str(&b, "telemetry.sdk.language", "c");
    CBX__BUF_LIT(&b, ",");
    kv_str(&b, "telemetry.sdk.version", CBX_VERSION);
    CBX__BUF_LIT(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"cbx\",\"version\":");
    str(&b, CBX_VERSION);
    CBX__BUF_LIT(&b, "},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            CBX__BUF_LIT(&b, ",");
        span(&b, &spans[i]);
    }
    CBX__BUF_LIT(&b, "]}]}]}");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
