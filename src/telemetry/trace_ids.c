/* Trace and span ids: W3C traceparent values, the process's parent, and the ids of executions,
 * attempts and runs - made from their own ids, so that the id an attempt propagates is the id of
 * the span exported for it, without storing either. */
#include "telemetry/trace.h"

#include "core/text.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* n lower-case hex digits: 1 when all are zeros, 0 when not, -1 when not hex digits. */
static int hex_run(const char *v, size_t n)
{
    int zero = 1;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        zero &= c == '0';
    }
    return zero;
}

int cbx__traceparent_parse(const char *v, cbx__trace_ctx *ctx)
{
    if (!v || strlen(v) < 55 || strncmp(v, "00-", 3) != 0 || v[35] != '-' || v[52] != '-' ||
        (v[55] && v[55] != '-'))
        return 0;
    if (hex_run(v + 3, 32) != 0 || hex_run(v + 36, 16) != 0 || hex_run(v + 53, 2) < 0)
        return 0;
    memcpy(ctx->trace, v + 3, 32);
    ctx->trace[32] = '\0';
    char span[17];
    memcpy(span, v + 36, 16);
    span[16] = '\0';
    ctx->parent = strtoull(span, NULL, 16);
    return 1;
}

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static int env_has_parent;
static cbx__trace_ctx env_parent;
static int env_propagate;

static void read_env(void)
{
    env_has_parent = cbx__traceparent_parse(getenv("TRACEPARENT"), &env_parent);
    const char *a = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    const char *b = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    env_propagate = env_has_parent || (a && *a) || (b && *b);
    atomic_store_explicit(&cbx__trace_prop_state, env_propagate ? 2 : 1, memory_order_release);
}

atomic_int cbx__trace_prop_state;

int cbx__trace_process_parent(cbx__trace_ctx *ctx)
{
    pthread_once(&env_once, read_env);
    if (env_has_parent)
        *ctx = env_parent;
    return env_has_parent;
}

int cbx__trace_propagate_init(void)
{
    pthread_once(&env_once, read_env);
    return atomic_load_explicit(&cbx__trace_prop_state, memory_order_acquire);
}

void cbx__trace_id_from(const char *id, char out[33])
{
    /* a UUID as the runtime writes it (lower-case 8-4-4-4-12): its digits in five copies */
    if (id && strlen(id) == 36 && id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-') {
        memcpy(out, id, 8);
        memcpy(out + 8, id + 9, 4);
        memcpy(out + 12, id + 14, 4);
        memcpy(out + 16, id + 19, 4);
        memcpy(out + 20, id + 24, 12);
        out[32] = '\0';
        if (hex_run(out, 32) == 0)
            return;
    }
    size_t n = 0;
    int zero = 1;
    for (const char *p = id; p && *p && n < 32; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
            out[n++] = c;
            zero &= c == '0';
        }
    }
    while (n < 32)
        out[n++] = '0';
    if (zero)
        out[31] = '1';
    out[32] = '\0';
}

void cbx__trace_ctx_for(const char *parent, const char *id, cbx__trace_ctx *ctx)
{
    if (parent && cbx__traceparent_parse(parent, ctx))
        return;
    if (cbx__trace_process_parent(ctx))
        return;
    cbx__trace_id_from(id, ctx->trace);
    ctx->parent = 0;
}

static uint64_t nonzero(uint64_t h)
{
    return h ? h : 1;
}

uint64_t cbx__span_id_execution(const char *execution_id)
{
    return nonzero(
        cbx__fnv1a(cbx__fnv1a(CBX__FNV_OFFSET, "x", 1), execution_id, strlen(execution_id)));
}

/* as cbx_task_traceparent made them before spans were exported: kept, so ids stay stable */
uint64_t cbx__span_id_attempt(const char *execution_id, uint32_t attempt)
{
    return nonzero(cbx__fnv1a(cbx__fnv1a(CBX__FNV_OFFSET, execution_id, strlen(execution_id)),
                              &attempt, sizeof attempt));
}

uint64_t cbx__span_id_run(const char *run_id)
{
    return nonzero(cbx__fnv1a(cbx__fnv1a(CBX__FNV_OFFSET, "r", 1), run_id, strlen(run_id)));
}

void cbx__traceparent_format(const char *trace, uint64_t span, char out[56])
{
    snprintf(out, 56, "00-%.32s-%016llx-01", trace, (unsigned long long)span);
}
