/* W3C Trace Context for an attempt (cbx_task_traceparent): the traceparent header value that the
 * http executor sends and the command executor puts in TRACEPARENT, so that what an attempt
 * calls can be joined to the trace that started cbx.
 *
 * Only when this process is itself part of a trace - TRACEPARENT in its environment (a CI system,
 * a parent process) - or asked to trace (OTEL_EXPORTER_OTLP_ENDPOINT set): otherwise nothing is
 * added, and commands keep the environment they would have had. The trace id is the parent's,
 * else the execution id's 32 hex digits; the span id is a hash of the execution id and the
 * attempt number, so each attempt is a span of its own. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "runtime/runtime_internal.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int enabled;
static char parent_trace[33];

/* "00-<32 hex>-<16 hex>-<2 hex>": the trace id of a valid traceparent into out. */
static int parse_parent(const char *v, char out[33])
{
    if (!v || strlen(v) < 55 || strncmp(v, "00-", 3) != 0 || v[35] != '-' || v[52] != '-')
        return 0;
    int zero = 1;
    for (int i = 0; i < 32; i++) {
        if (!isxdigit((unsigned char)v[3 + i]) || isupper((unsigned char)v[3 + i]))
            return 0;
        zero &= v[3 + i] == '0';
    }
    if (zero)
        return 0;
    memcpy(out, v + 3, 32);
    out[32] = '\0';
    return 1;
}

static void init(void)
{
    const char *tp = getenv("TRACEPARENT");
    if (parse_parent(tp, parent_trace))
        enabled = 1;
    const char *otel = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (otel && *otel)
        enabled = 1;
}

int cbx_task_traceparent(const cbx_task *t, char out[56])
{
    pthread_once(&once, init);
    const char *id = cbx_task_execution_id(t);
    if (!enabled || !id)
        return 0;
    char trace[33];
    if (parent_trace[0]) {
        memcpy(trace, parent_trace, sizeof trace);
    } else {
        size_t n = 0;
        for (const char *p = id; *p && n < 32; p++)
            if (isxdigit((unsigned char)*p))
                trace[n++] = (char)tolower((unsigned char)*p);
        while (n < 32)
            trace[n++] = '0';
        trace[32] = '\0';
    }
    uint32_t attempt = cbx_task_attempt(t);
    uint64_t span =
        cbx__fnv1a(cbx__fnv1a(CBX__FNV_OFFSET, id, strlen(id)), &attempt, sizeof attempt);
    if (!span)
        span = 1; /* all zeros is invalid */
    snprintf(out, 56, "00-%s-%016llx-01", trace, (unsigned long long)span);
    return 1;
}
