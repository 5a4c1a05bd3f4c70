/* /metrics: counters kept as executions end, breaker gauges read from the store at scrape time,
 * written in the Prometheus text exposition format (version 0.0.4). */
#include "server.h"
#include "core/strbuf.h"

#include "cbx/outcome.h"
#include "cbx/trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the latency buckets, in seconds (+Inf is implied). */
static const double lat_bounds[SRV_LAT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,  0.5,    1,     2.5,  5,     10,   60};
static const char *const reasons[6] = {"circuit_open",  "forced_open", "rate_limited",
                                       "bulkhead_full", "queue_full",  "other"};

static srv_type_metrics *type_metrics(srv *s, const char *executor)
{
    srv_type_metrics **pp = &s->m.types;
    for (; *pp; pp = &(*pp)->next) {
        int c = strcmp((*pp)->executor, executor);
        if (c == 0)
            return *pp;
        if (c > 0)
            break;
    }
    srv_type_metrics *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    snprintf(t->executor, sizeof t->executor, "%s", executor);
    t->next = *pp; /* kept sorted by name: a stable exposition */
    *pp = t;
    return t;
}

static int reason_index(int rc)
{
    switch (rc) {
    case CBX_ECIRCUIT_OPEN:
    case CBX_EHALF_OPEN_FULL:
        return 0;
    case CBX_EFORCED_OPEN:
        return 1;
    case CBX_ERATE_LIMITED:
        return 2;
    case CBX_EBULKHEAD_FULL:
    case CBX_EQUEUE_TIMEOUT:
        return 3;
    case CBX_EQUEUE_FULL:
        return 4;
    default:
        return 5;
    }
}

void srv_metrics_execution(srv *s, const cbx_result *res)
{
    srv_type_metrics *t = type_metrics(s, res->executor[0] ? res->executor : "unknown");
    if (!t)
        return;
    if ((unsigned)res->status < CBX_STATUS__COUNT)
        t->by_status[res->status]++;
    if (res->status == CBX_STATUS_REJECTED)
        t->rejected_by_reason[reason_index(res->rc)]++;
    if (res->rc == CBX_EBUDGET_EXHAUSTED)
        t->budget_exhausted++;
    if (res->rc == CBX_ERATE_LIMITED)
        t->rate_limited++;
    size_t i;
    json_t *a;
    json_array_foreach(res->attempts, i, a)
    {
        const char *o = json_string_value(json_object_get(a, "outcome"));
        for (int k = 0; o && k < CBX_OUTCOME__COUNT && k < 16; k++)
            if (strcmp(o, cbx_outcome_name((cbx_outcome)k)) == 0)
                t->attempts_by_outcome[k]++;
    }
    if (res->status != CBX_STATUS_REJECTED) {
        double sec = (double)res->duration_ns / 1e9;
        for (int b = 0; b < SRV_LAT_BUCKETS; b++)
            if (sec <= lat_bounds[b])
                t->lat_buckets[b]++;
        t->lat_count++;
        t->lat_sum_s += sec;
    }
}

void srv_metrics_free(srv_metrics *m)
{
    json_decref(m->llm);
    m->llm = NULL;
    while (m->types) {
        srv_type_metrics *n = m->types->next;
        free(m->types);
        m->types = n;
    }
}

/* ---- the text ------------------------------------------------------------------------------- */

/* A label value with \, " and newline escaped. */
static const char *label(const char *v, char *buf, size_t len)
{
    size_t n = 0;
    for (; *v && n + 3 < len; v++) {
        if (*v == '\\' || *v == '"') {
            buf[n++] = '\\';
            buf[n++] = *v;
        } else if (*v == '\n') {
            buf[n++] = '\\';
            buf[n++] = 'n';
        } else {
            buf[n++] = *v;
        }
    }
    buf[n] = '\0';
    return buf;
}

static void head(cbx__buf *b, const char *name, const char *type, const char *help)
{
    cbx__buf_put(b, "# HELP ", 7);
    cbx__buf_puts(b, name);
    cbx__buf_put(b, " ", 1);
    cbx__buf_puts(b, help);
    cbx__buf_put(b, "\n# TYPE ", 8);
    cbx__buf_puts(b, name);
    cbx__buf_put(b, " ", 1);
    cbx__buf_puts(b, type);
    cbx__buf_put(b, "\n", 1);
}

static void executions(cbx__buf *b, srv *s)
{
    head(b, "cbx_executions_total", "counter",
         "Executions submitted through the server that ended, by executor type and final status.");
    for (srv_type_metrics *t = s->m.types; t; t = t->next)
        for (int st = CBX_STATUS_SUCCESS; st < CBX_STATUS__COUNT; st++)
            cbx__buf_printf(b, "cbx_executions_total{executor=\"%s\",status=\"%s\"} %llu\n",
                            t->executor, cbx_status_name((cbx_status)st),
                            (unsigned long long)t->by_status[st]);
    head(b, "cbx_executions_rejected_total", "counter",
         "Executions refused before any attempt, by executor type and reason.");
    for (srv_type_metrics *t = s->m.types; t; t = t->next)
        for (int r = 0; r < 6; r++)
            cbx__buf_printf(b,
                            "cbx_executions_rejected_total{executor=\"%s\",reason=\"%s\"} %llu\n",
                            t->executor, reasons[r], (unsigned long long)t->rejected_by_reason[r]);
    head(b, "cbx_retry_budget_exhausted_total", "counter",
         "Executions that stopped because a retry budget refused the retry that was due.");
    for (srv_type_metrics *t = s->m.types; t; t = t->next)
        cbx__buf_printf(b, "cbx_retry_budget_exhausted_total{executor=\"%s\"} %llu\n", t->executor,
                        (unsigned long long)t->budget_exhausted);
    head(b, "cbx_rate_limited_total", "counter",
         "Executions a rate limiter stopped, before any attempt or between attempts.");
    for (srv_type_metrics *t = s->m.types; t; t = t->next)
        cbx__buf_printf(b, "cbx_rate_limited_total{executor=\"%s\"} %llu\n", t->executor,
                        (unsigned long long)t->rate_limited);
    head(b, "cbx_attempts_total", "counter", "Attempts, by executor type and outcome kind.");
    for (srv_type_metrics *t = s->m.types; t; t = t->next)
        for (int k = 0; k < CBX_OUTCOME__COUNT && k < 16; k++)
            cbx__buf_printf(b, "cbx_attempts_total{executor=\"%s\",outcome=\"%s\"} %llu\n",
                            t->executor, cbx_outcome_name((cbx_outcome)k),
                            (unsigned long long)t->attempts_by_outcome[k]);
    head(b, "cbx_execution_duration_seconds", "histogram",
         "Time from an execution's first attempt to its end, by executor type.");
    for (srv_type_metrics *t = s->m.types; t; t = t->next) {
        for (int i = 0; i < SRV_LAT_BUCKETS; i++)
            cbx__buf_printf(
                b, "cbx_execution_duration_seconds_bucket{executor=\"%s\",le=\"%g\"} %llu\n",
                t->executor, lat_bounds[i], (unsigned long long)t->lat_buckets[i]);
        cbx__buf_printf(b,
                        "cbx_execution_duration_seconds_bucket{executor=\"%s\",le=\"+Inf\"} %llu\n",
                        t->executor, (unsigned long long)t->lat_count);
        cbx__buf_printf(b, "cbx_execution_duration_seconds_sum{executor=\"%s\"} %.9g\n",
                        t->executor, t->lat_sum_s);
        cbx__buf_printf(b, "cbx_execution_duration_seconds_count{executor=\"%s\"} %llu\n",
                        t->executor, (unsigned long long)t->lat_count);
    }
}

static void runtime_gauges(cbx__buf *b, srv *s)
{
    size_t queued = 0;
    for (srv_exec *e = s->inflight; e; e = e->next)
        if (e->ex && cbx_execution_status(e->ex) == CBX_STATUS_PENDING)
            queued++;
    uint32_t slots = s->o.max_concurrent ? s->o.max_concurrent : 64;
    size_t running = s->n_inflight - queued;
    head(b, "cbx_executions_in_flight", "gauge",
         "Executions submitted through the server that have not ended (running and queued).");
    cbx__buf_printf(b, "cbx_executions_in_flight %zu\n", s->n_inflight);
    head(b, "cbx_queue_depth", "gauge", "Executions waiting for one of the runtime's slots.");
    cbx__buf_printf(b, "cbx_queue_depth %zu\n", queued);
    head(b, "cbx_bulkhead_slots", "gauge",
         "The runtime's concurrency limit (its bulkhead): executions that may run at once.");
    cbx__buf_printf(b, "cbx_bulkhead_slots %u\n", slots);
    head(b, "cbx_bulkhead_saturation_ratio", "gauge",
         "Running executions over the runtime's concurrency limit (1 = full).");
    cbx__buf_printf(b, "cbx_bulkhead_saturation_ratio %.4g\n", (double)running / (double)slots);
    head(b, "cbx_sse_clients", "gauge", "Clients following /v1/events.");
    cbx__buf_printf(b, "cbx_sse_clients %zu\n", s->n_clients);
    head(b, "cbx_events_total", "counter", "Events written to the journal and sent over SSE.");
    cbx__buf_printf(b, "cbx_events_total %llu\n", (unsigned long long)s->ev_seq);
    head(b, "cbx_events_dropped_total", "counter",
         "Events that could not be written to the journal, so were never sent.");
    cbx__buf_printf(b, "cbx_events_dropped_total %llu\n", (unsigned long long)s->m.events_dropped);
    if (s->journal) {
        cbx_journal_losses l = {0};
        cbx_journal_losses_get(s->journal, 0, &l, NULL);
        head(b, "cbx_journal_lost_writes_total", "counter",
             "Journal writes this server knows were lost (a full disk, an I/O error).");
        cbx__buf_printf(b, "cbx_journal_lost_writes_total %llu\n", (unsigned long long)l.writes);
    }
}

static void breakers(cbx__buf *b, srv *s)
{
    json_t *arr = NULL;
    if (cbx_breaker_store_list(s->breakers, &arr, NULL) < 0)
        return;
    static const char *const states[] = {"closed", "open", "half_open"};
    static const struct {
        const char *key, *name, *help;
    } counters[] = {
        {"calls", "cbx_breaker_calls_total", "Calls a breaker admitted or refused."},
        {"successes", "cbx_breaker_successes_total", "Calls a breaker counted as successes."},
        {"failures", "cbx_breaker_failures_total", "Calls a breaker counted as failures."},
        {"rejections", "cbx_breaker_rejections_total", "Calls a breaker refused."},
        {"slow_calls", "cbx_breaker_slow_calls_total", "Calls slower than the slow-call limit."},
        {"opens", "cbx_breaker_opens_total",
         "Times a breaker opened (CLOSED or HALF_OPEN to OPEN)."},
    };
    char lb[512];
    size_t i;
    json_t *o;
    head(b, "cbx_breaker_state", "gauge", "1 for the state each breaker is in, else 0.");
    json_array_foreach(arr, i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *st = json_string_value(json_object_get(o, "state"));
        for (int k = 0; name && st && k < 3; k++)
            cbx__buf_printf(b, "cbx_breaker_state{breaker=\"%s\",state=\"%s\"} %d\n",
                            label(name, lb, sizeof lb), states[k], strcmp(st, states[k]) == 0);
    }
    head(b, "cbx_breaker_forced", "gauge",
         "1 when a breaker is under manual control (forced open or closed), else 0.");
    json_array_foreach(arr, i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *mode = json_string_value(json_object_get(o, "mode"));
        if (name && mode)
            cbx__buf_printf(b, "cbx_breaker_forced{breaker=\"%s\"} %d\n",
                            label(name, lb, sizeof lb), strncmp(mode, "forced", 6) == 0);
    }
    for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
        head(b, counters[c].name, "counter", counters[c].help);
        json_array_foreach(arr, i, o)
        {
            const char *name = json_string_value(json_object_get(o, "name"));
            if (name)
                cbx__buf_printf(b, "%s{breaker=\"%s\"} %lld\n", counters[c].name,
                                label(name, lb, sizeof lb),
                                (long long)json_integer_value(json_object_get(o, counters[c].key)));
        }
    }
    head(b, "cbx_breaker_latency_seconds", "summary",
         "Call latency from each breaker's own latency histogram (its recent calls).");
    static const char *const q[] = {"latency_p50_ms", "0.5", "latency_p95_ms", "0.95",
                                    "latency_p99_ms", "0.99"};
    json_array_foreach(arr, i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!name)
            continue;
        label(name, lb, sizeof lb);
        for (int k = 0; k < 6; k += 2)
            cbx__buf_printf(b, "cbx_breaker_latency_seconds{breaker=\"%s\",quantile=\"%s\"} %.6g\n",
                            lb, q[k + 1], json_number_value(json_object_get(o, q[k])) / 1000.0);
        double n = (double)json_integer_value(json_object_get(o, "latency_count"));
        double mean_s = json_number_value(json_object_get(o, "latency_mean_ms")) / 1000.0;
        cbx__buf_printf(b, "cbx_breaker_latency_seconds_sum{breaker=\"%s\"} %.9g\n", lb,
                        n * mean_s);
        cbx__buf_printf(b, "cbx_breaker_latency_seconds_count{breaker=\"%s\"} %.0f\n", lb, n);
    }
    head(b, "cbx_breaker_transitions_total", "counter",
         "State changes of the breakers seen by this server (polled every second).");
    cbx__buf_printf(b, "cbx_breaker_transitions_total %llu\n",
                    (unsigned long long)s->m.breaker_transitions);
    json_decref(arr);
}

/* LLM usage by model: `cbx stats --by model`'s query over the journal's llm and agent executions
 * that ended since the server started (every process's on the host, like the breakers), read at
 * most once per LLM_EVERY_MS so that scrapes stay cheap. */
#define LLM_EVERY_MS 5000u
static void llm(cbx__buf *b, srv *s)
{
    if (!s->journal)
        return;
    uint64_t now = srv_now_ms();
    if (!s->m.llm || now - s->m.llm_read_ms >= LLM_EVERY_MS) {
        cbx_history_filter f = {.since_ms = s->m.started_ms};
        json_t *o = NULL;
        if (cbx_journal_stats(s->journal, &f, "model", &o, NULL) == 0) {
            json_decref(s->m.llm);
            s->m.llm = o;
            s->m.llm_read_ms = now;
        }
    }
    char lb[512];
    const char *model;
    json_t *row;
    head(b, "cbx_llm_calls_total", "counter",
         "LLM and agent executions that ended since the server started, by model (from the "
         "journal).");
    json_object_foreach(s->m.llm, model, row)
    {
        cbx__buf_printf(b, "cbx_llm_calls_total{model=\"%s\"} %lld\n", label(model, lb, sizeof lb),
                        (long long)json_integer_value(json_object_get(row, "executions")));
    }
    head(b, "cbx_llm_tokens_total", "counter",
         "Tokens of those calls, by model and kind (prompt, completion), as the providers "
         "reported them.");
    json_object_foreach(s->m.llm, model, row)
    {
        label(model, lb, sizeof lb);
        cbx__buf_printf(b, "cbx_llm_tokens_total{model=\"%s\",kind=\"prompt\"} %lld\n", lb,
                        (long long)json_integer_value(json_object_get(row, "prompt_tokens")));
        cbx__buf_printf(b, "cbx_llm_tokens_total{model=\"%s\",kind=\"completion\"} %lld\n", lb,
                        (long long)json_integer_value(json_object_get(row, "completion_tokens")));
    }
    head(b, "cbx_llm_cost_dollars_total", "counter",
         "Cost of those calls in US dollars by the price table, by model (calls of a model "
         "without a price add nothing).");
    json_object_foreach(s->m.llm, model, row)
    {
        cbx__buf_printf(b, "cbx_llm_cost_dollars_total{model=\"%s\"} %.9g\n",
                        label(model, lb, sizeof lb),
                        json_number_value(json_object_get(row, "cost")));
    }
}

/* The span exporter's counts (cbx/trace.h), when spans are exported. */
static void traces(cbx__buf *b)
{
    cbx_trace_stats t;
    cbx_trace_stats_get(&t);
    if (!cbx_trace_enabled())
        return;
    head(b, "cbx_trace_spans_total", "counter",
         "Spans recorded for OTLP export, by what became of them (queue_full and export_failed "
         "are dropped).");
    cbx__buf_printf(b, "cbx_trace_spans_total{outcome=\"exported\"} %llu\n",
                    (unsigned long long)t.exported);
    cbx__buf_printf(b, "cbx_trace_spans_total{outcome=\"queue_full\"} %llu\n",
                    (unsigned long long)t.dropped_full);
    cbx__buf_printf(b, "cbx_trace_spans_total{outcome=\"export_failed\"} %llu\n",
                    (unsigned long long)t.dropped_failed);
    head(b, "cbx_trace_queue_spans", "gauge", "Spans waiting in the exporter's queue.");
    cbx__buf_printf(b, "cbx_trace_queue_spans %u\n", t.queued);
}

int srv_metrics_render(srv *s, char **out, size_t *len)
{
    /* sized for a scrape of a few breakers and executor types: one allocation, as a rule */
    cbx__buf b = {.p = malloc(16384), .cap = 16384};
    if (!b.p)
        return -ENOMEM;
    b.p[0] = '\0';
    executions(&b, s);
    runtime_gauges(&b, s);
    breakers(&b, s);
    llm(&b, s);
    traces(&b);
    if (b.oom || !b.p) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
