/* The runtime's spans: one per execution ("execution <executor>"), one per attempt ("attempt
 * <n>", child of its execution), built when they end from what the journal is given at the same
 * points. The ids are those cbx_task_traceparent propagates (telemetry/trace_ids.c). Parameters
 * are never attributes, and a secret parameter's value is masked in error messages. */
#include "runtime/runtime_internal.h"

#include "cbx/executor.h"
#include "telemetry/trace.h"

#include <stdlib.h>
#include <string.h>

static void exec_ctx(const cbx_execution *ex, const char *id, cbx__trace_ctx *c)
{
    if (ex && ex->trace)
        *c = *ex->trace;
    else
        cbx__trace_ctx_for(NULL, id, c);
}

void cbx__trace_exec_begin(cbx_execution *ex, const cbx_request *req)
{
    cbx__trace_ctx c;
    if (!req->traceparent || !cbx__traceparent_parse(req->traceparent, &c))
        return;
    ex->trace = malloc(sizeof *ex->trace);
    if (ex->trace)
        *ex->trace = c;
}

void cbx__trace_task_begin(const cbx_execution *ex, cbx_task *t)
{
    cbx__trace_ctx c;
    exec_ctx(ex, ex->id, &c);
    memcpy(t->trace, c.trace, sizeof t->trace);
}

int cbx_task_traceparent(const cbx_task *t, char out[56])
{
    if (!t->trace[0] || !cbx__trace_propagate())
        return 0;
    cbx__traceparent_format(t->trace, cbx__span_id_attempt(t->exec_id, t->attempt), out);
    return 1;
}

/* msg with every secret parameter's string value (4 bytes or longer) as "***", into out. */
static const char *masked(const cbx_execution *ex, const char *msg, char *out, size_t len)
{
    if (!msg || !ex || !ex->type)
        return msg;
    const char *cur = msg;
    for (const cbx_param *p = ex->type->params; p && p->name; p++) {
        const char *v = p->secret ? json_string_value(json_object_get(ex->params, p->name)) : NULL;
        size_t vl = v ? strlen(v) : 0;
        if (vl < 4 || !strstr(cur, v))
            continue;
        char tmp[1024];
        size_t o = 0;
        for (const char *s = cur; *s && o + 4 < sizeof tmp;) {
            if (strncmp(s, v, vl) == 0) {
                memcpy(tmp + o, "***", 3);
                o += 3;
                s += vl;
            } else {
                tmp[o++] = *s++;
            }
        }
        tmp[o] = '\0';
        snprintf(out, len, "%s", tmp);
        cur = out;
    }
    return cur;
}

void cbx__trace_attempt_end(const cbx_execution *ex, const cbx_task *t, const char *outcome,
                            uint64_t duration_ns, const char *error)
{
    cbx__trace_ctx c;
    exec_ctx(ex, ex->id, &c);
    c.parent = cbx__span_id_execution(ex->id);
    uint64_t start = cbx__trace_mono_to_unix(t->start_ns);
    char name[32];
    snprintf(name, sizeof name, "attempt %u", t->attempt);
    cbx__span s;
    cbx__span_begin(&s, &c, cbx__span_id_attempt(ex->id, t->attempt), name, CBX__SPAN_CLIENT, start,
                    start + duration_ns);
    cbx__span_str(&s, "cbx.execution.id", ex->id);
    cbx__span_str(&s, "cbx.executor", ex->type->name);
    cbx__span_int(&s, "cbx.attempt", t->attempt);
    cbx__span_str(&s, "cbx.outcome", outcome);
    char buf[1024];
    if (strcmp(outcome, "success") == 0)
        cbx__span_status(&s, CBX__SPAN_OK, NULL);
    else
        cbx__span_status(&s, CBX__SPAN_ERROR, masked(ex, error ? error : outcome, buf, sizeof buf));
    cbx__span_emit(&s);
}

static void common(cbx__span *s, const char *id, const char *executor, const char *tag,
                   const char *breaker)
{
    cbx__span_str(s, "cbx.execution.id", id);
    cbx__span_str(s, "cbx.executor", executor);
    cbx__span_str(s, "cbx.tag", tag);
    cbx__span_str(s, "cbx.breaker", breaker);
}

void cbx__trace_exec_end(const cbx_execution *ex, const cbx_result *r, uint64_t end)
{
    cbx__trace_ctx c;
    exec_ctx(ex, ex->id, &c);
    char name[96];
    snprintf(name, sizeof name, "execution %s", ex->type->name);
    cbx__span s;
    cbx__span_begin(&s, &c, cbx__span_id_execution(ex->id), name, CBX__SPAN_INTERNAL,
                    cbx__trace_mono_to_unix(ex->submitted_ns), cbx__trace_mono_to_unix(end));
    common(&s, ex->id, ex->type->name, ex->tag, ex->breaker);
    cbx__span_str(&s, "cbx.status", cbx_status_name(r->status));
    cbx__span_int(&s, "cbx.attempts", r->attempt_count);
    if (ex->policy)
        cbx__span_str(&s, "cbx.policy", cbx_policy_name(ex->policy));
    if (r->fallback_used)
        cbx__span_bool(&s, "cbx.fallback_used", 1);
    if (ex->ctx) {
        cbx__span_str(&s, "cbx.run_id", ex->ctx->run_id);
        cbx__span_str(&s, "cbx.step", ex->ctx->step);
    }
    char buf[1024];
    if (r->status == CBX_STATUS_SUCCESS)
        cbx__span_status(&s, CBX__SPAN_OK, NULL);
    else
        cbx__span_status(
            &s, CBX__SPAN_ERROR,
            masked(ex, r->error[0] ? r->error : cbx_status_name(r->status), buf, sizeof buf));
    cbx__span_emit(&s);
}

void cbx__trace_refused(const cbx_request *req, const char *id, const cbx_result *r)
{
    cbx__trace_ctx c;
    if (!req->traceparent || !cbx__traceparent_parse(req->traceparent, &c))
        cbx__trace_ctx_for(NULL, id, &c);
    char name[96];
    snprintf(name, sizeof name, "execution %s", req->executor ? req->executor : "?");
    uint64_t now = cbx__trace_now_ns();
    cbx__span s;
    cbx__span_begin(&s, &c, cbx__span_id_execution(id), name, CBX__SPAN_INTERNAL, now, now);
    common(&s, id, req->executor, req->tag, req->breaker);
    cbx__span_str(&s, "cbx.status", "rejected");
    cbx__span_int(&s, "cbx.attempts", 0);
    cbx__span_status(&s, CBX__SPAN_ERROR, r->error);
    cbx__span_emit(&s);
}
