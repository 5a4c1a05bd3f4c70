/* Spans and their export over OTLP/HTTP (JSON), internal to libcbx (the public face is
 * cbx/trace.h).
 *
 * The runtime, flows and workflows build a span on their own stack (cbx__span, no allocation)
 * when it ends and hand it to cbx__span_emit, which copies it into a bounded queue; a thread of
 * the exporter's own takes batches from the queue, encodes them as an ExportTraceServiceRequest
 * in OTLP's JSON mapping and POSTs them to the endpoint with libcurl (loaded when the
 * exporter starts, core/curl_lib.h). A full queue drops the span (counted); a failed POST
 * drops its batch (counted); neither ever waits.
 *
 * Nothing happens, and nothing is allocated, unless the process was started with
 * OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set (and OTEL_TRACES_EXPORTER
 * not "none"): callers test cbx__trace_on() first, one load of an atomic once the environment
 * has been read. */
#ifndef CBX_TELEMETRY_TRACE_H
#define CBX_TELEMETRY_TRACE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- ids ------------------------------------------------------------------------------------ */

/* A span's place in a trace: its trace id (32 lower-case hex digits) and the span id of its
 * parent (0 = a root span). */
typedef struct cbx__trace_ctx {
    char trace[33];
    uint64_t parent;
} cbx__trace_ctx;

/* Parse a W3C traceparent "00-<32 hex>-<16 hex>-<2 hex>" into ctx (the trace, and its span as
 * the parent): 1, or 0 when v is NULL or not one (ctx untouched). */
int cbx__traceparent_parse(const char *v, cbx__trace_ctx *ctx);
/* The process's own parent: TRACEPARENT from the environment when it holds a valid one. 1 and
 * *ctx, or 0. */
int cbx__trace_process_parent(cbx__trace_ctx *ctx);
/* 1 when attempts should carry a traceparent: the process has a TRACEPARENT or an OTLP endpoint
 * in its environment. One atomic load once the environment was read. */
extern atomic_int cbx__trace_prop_state; /* 0 not read yet, 1 no, 2 yes */
int cbx__trace_propagate_init(void);
static inline int cbx__trace_propagate(void)
{
    int s = atomic_load_explicit(&cbx__trace_prop_state, memory_order_acquire);
    if (__builtin_expect(s == 0, 0))
        s = cbx__trace_propagate_init();
    return s == 2;
}
/* A trace id made of an id's hex digits (a UUID's 32), zero-padded; all zeros is never made. */
void cbx__trace_id_from(const char *id, char out[33]);
/* The context for a new root of work with id `id` (an execution, a run): parent given (a
 * traceparent, NULL = none), else the process's TRACEPARENT, else a trace of its own. */
void cbx__trace_ctx_for(const char *parent, const char *id, cbx__trace_ctx *ctx);
/* Span ids (never 0): of an execution, of its attempt n, of a flow run. */
uint64_t cbx__span_id_execution(const char *execution_id);
uint64_t cbx__span_id_attempt(const char *execution_id, uint32_t attempt);
uint64_t cbx__span_id_run(const char *run_id);
/* "00-<trace>-<span>-01" into out. */
void cbx__traceparent_format(const char *trace, uint64_t span, char out[56]);

/* ---- spans ---------------------------------------------------------------------------------- */

enum { CBX__SPAN_INTERNAL = 1, CBX__SPAN_SERVER = 2, CBX__SPAN_CLIENT = 3 };
enum { CBX__SPAN_UNSET = 0, CBX__SPAN_OK = 1, CBX__SPAN_ERROR = 2 };
enum { CBX__ATTR_STR, CBX__ATTR_INT, CBX__ATTR_BOOL, CBX__ATTR_DOUBLE };

#define CBX__SPAN_ATTRS 16
#define CBX__SPAN_TEXT  1536 /* bytes for the name, the status message and string attributes */

typedef struct cbx__span_attr {
    const char *key; /* a string literal */
    uint8_t type;    /* CBX__ATTR_* */
    uint16_t off;    /* CBX__ATTR_STR: the value's offset in text */
    union {
        int64_t i;
        double d;
    } v;
} cbx__span_attr;

typedef struct cbx__span {
    char trace[33];
    uint64_t id, parent;
    uint64_t start_ns, end_ns; /* Unix time */
    uint8_t kind, status;
    uint8_t nattrs;
    uint16_t name, msg; /* offsets in text; msg 0 = no status message */
    uint16_t used;
    cbx__span_attr attrs[CBX__SPAN_ATTRS];
    char text[CBX__SPAN_TEXT];
} cbx__span;

/* The switch: 0 not read yet, 1 off, 2 on. */
extern atomic_int cbx__trace_state;
int cbx__trace_init(void);
static inline int cbx__trace_on(void)
{
    int s = atomic_load_explicit(&cbx__trace_state, memory_order_acquire);
    if (__builtin_expect(s == 0, 0))
        s = cbx__trace_init();
    return s == 2;
}

/* Begin s: ctx's trace and parent, its own id, name (copied), kind, Unix times in ns. */
void cbx__span_begin(cbx__span *s, const cbx__trace_ctx *ctx, uint64_t id, const char *name,
                     int kind, uint64_t start_ns, uint64_t end_ns);
/* Attributes (strings copied, invalid UTF-8 bytes become '?', cut to what fits; NULL or
 * a full span = left out). */
void cbx__span_str(cbx__span *s, const char *key, const char *v);
void cbx__span_int(cbx__span *s, const char *key, int64_t v);
void cbx__span_bool(cbx__span *s, const char *key, int v);
void cbx__span_double(cbx__span *s, const char *key, double v);
/* The status: CBX__SPAN_OK, or CBX__SPAN_ERROR with a message (NULL = none). */
void cbx__span_status(cbx__span *s, int code, const char *msg);
/* Queue s for export (a copy): never waits; a full queue counts it dropped. */
void cbx__span_emit(const cbx__span *s);

/* Unix time in ns from the wall clock; a CLOCK_MONOTONIC reading (ns) turned into Unix time
 * (through an offset taken once); now on that same scale. Spans use the last two. */
uint64_t cbx__trace_unix_ns(void);
uint64_t cbx__trace_mono_to_unix(uint64_t mono_ns);
uint64_t cbx__trace_now_ns(void);

/* ---- export --------------------------------------------------------------------------------- */

typedef struct cbx__otlp_config {
    char *url;           /* the traces endpoint, whole (…/v1/traces) */
    char **headers;      /* "Name: value" lines, NULL-terminated */
    char *service;       /* service.name */
    uint32_t queue;      /* spans queued at most (OTEL_BSP_MAX_QUEUE_SIZE) */
    uint32_t batch;      /* spans per request at most (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) */
    uint64_t delay_ms;   /* how long spans wait for a batch to fill (OTEL_BSP_SCHEDULE_DELAY) */
    uint64_t timeout_ms; /* one request's limit (OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT) */
} cbx__otlp_config;

/* Read the environment: 1 with *c filled (free with cbx__otlp_config_free) when spans are to be
 * exported, 0 when not; a value that is not understood is logged (WARN) and its default used. */
int cbx__otlp_config_read(cbx__otlp_config *c);
void cbx__otlp_config_free(cbx__otlp_config *c);

/* Append the JSON of an ExportTraceServiceRequest holding spans[0..n) to a malloc'd buffer:
 * returns it (NUL-terminated, *len its length) or NULL without memory. */
char *cbx__otlp_json(const cbx__otlp_config *c, const cbx__span *spans, size_t n, size_t *len);

/* POST body to the endpoint: 0 on a 2xx answer, else -1 with the reason in why. Blocking (the
 * exporter's thread), at most c->timeout_ms. */
typedef struct cbx__otlp_client cbx__otlp_client;
/* Load libcurl and run its global init (and so the TLS library's) on the calling thread - the
 * one that records the first span - rather than on the exporter's, whose thread-local state
 * the TLS library would not free at exit: 0, or -1 with the reason in why. */
int cbx__otlp_prepare(char *why, size_t whylen);
int cbx__otlp_post(cbx__otlp_client **cl, const cbx__otlp_config *c, const char *body, size_t len,
                   char *why, size_t whylen);
void cbx__otlp_client_free(cbx__otlp_client *cl);
/* 1 once shutdown gave up waiting: a request out is abandoned (its progress callback). */
int cbx__otlp_abandoned(void);

#endif
