/* OpenTelemetry traces: the spans libcbx exports over OTLP/HTTP (JSON encoding).
 *
 * Export is configured by the environment of the process only (the OpenTelemetry SDK variables,
 * read once, the first time a runtime is made or a span would be recorded):
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  the URL spans are POSTed to, used as it is;
 *   OTEL_EXPORTER_OTLP_ENDPOINT         the base URL: spans go to <base>/v1/traces;
 *   OTEL_EXPORTER_OTLP[_TRACES]_HEADERS "k=v,k2=v2" (values URL-decoded) sent with each request;
 *   OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT one request's limit in ms (10000);
 *   OTEL_SERVICE_NAME                   the resource's service.name ("cbx");
 *   OTEL_TRACES_EXPORTER                "none" turns export off ("otlp", the default, on);
 *   OTEL_BSP_MAX_QUEUE_SIZE (2048), OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512),
 *   OTEL_BSP_SCHEDULE_DELAY (5000 ms)   the batching.
 * With no endpoint set nothing is recorded and nothing allocated. Spans wait in a bounded queue
 * and a thread of the exporter's own sends them in batches: a span that finds the queue full, or
 * whose batch the endpoint did not take (down, slow past the timeout, an error status), is
 * dropped and counted - the work that made it never waits for the exporter.
 *
 * Spans: "execution <executor>" (parent: the flow run or workflow firing it belongs to, else the
 * process's TRACEPARENT), "attempt <n>" (child of its execution; its ids are the traceparent the
 * attempt propagates), "flow <name>" (a flow run), "firing <transition>" (a workflow transition's
 * action). docs/traces.md lists their attributes. Parameters are never attributes.
 */
#ifndef CBX_TRACE_H
#define CBX_TRACE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Counts since the process started (all 0 when export is off). */
typedef struct cbx_trace_stats {
    uint64_t recorded;       /* spans handed to the exporter */
    uint64_t exported;       /* spans the endpoint took (a 2xx answer) */
    uint64_t dropped_full;   /* spans dropped because the queue was full */
    uint64_t dropped_failed; /* spans dropped because their request failed */
    uint64_t requests;       /* requests sent */
    uint32_t queued;         /* spans waiting now */
} cbx_trace_stats;

/* 1 when spans are exported (the environment above asks for it), else 0; reads the environment
 * the first time (and starts the exporter when it asks for export). Thread-safe. */
int cbx_trace_enabled(void);

/* The counts into *out. Thread-safe. */
void cbx_trace_stats_get(cbx_trace_stats *out);

/* Send what is queued now and wait for it, at most timeout_ms (0 = the request timeout,
 * OTEL_EXPORTER_OTLP_TIMEOUT): 0 when everything recorded before the call was sent (exported or
 * dropped), CBX_ETIMEDOUT when the wait ran out (the exporter goes on; nothing is lost by the
 * timeout itself). 0 at once when export is off or nothing was recorded yet. */
int cbx_trace_flush(uint64_t timeout_ms);

/* Flush (at most timeout_ms, 0 = the request timeout), then stop the exporter: later spans are
 * dropped (counted). Past the bound a request still out is abandoned and the exporter's thread
 * is waited for up to 3 s more, so that it has ended before the process does. Logs a WARN through
 * cbx/log.h when spans were dropped or are left queued. Called by itself at exit (atexit,
 * registered when the first span is recorded) with the request timeout as the bound; calling it
 * earlier is allowed, and later calls do nothing. */
void cbx_trace_shutdown(uint64_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
