/* A workflow firing's span ("firing <transition>"): from the start of a transition's action to
 * its result, the parent of the action's execution span. A workflow run lasts as long as its
 * tokens do, so each firing is a root of the trace named by the run id (or a child of the
 * process's TRACEPARENT). */
#include "workflow/net_internal.h"

#include "core/text.h"
#include "telemetry/trace.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void cbx__wf_trace_begin(cbx_workflow_run *r, wf_firing *f)
{
    f->traceparent[0] = '\0';
    if (!cbx__trace_propagate())
        return;
    f->trace_t0 = mono_ns();
    cbx__trace_ctx c;
    cbx__trace_ctx_for(NULL, r->id, &c);
    uint64_t h = cbx__fnv1a(CBX__FNV_OFFSET, "f", 1);
    h = cbx__fnv1a(h, r->id, strlen(r->id));
    h = cbx__fnv1a(h, f->key, strlen(f->key));
    h = cbx__fnv1a(h, &f->trace_t0, sizeof f->trace_t0);
    cbx__traceparent_format(c.trace, h ? h : 1, f->traceparent);
}

void cbx__wf_trace_end(cbx_workflow_run *r, wf_firing *f, int ok, const char *error,
                       const char *execution)
{
    if (!cbx__trace_on())
        return;
    cbx__trace_ctx c, self;
    cbx__trace_ctx_for(NULL, r->id, &c);
    if (!cbx__traceparent_parse(f->traceparent, &self))
        return;
    const cbx__wf_trans *tr = &r->w->trans[f->ti];
    char name[160];
    snprintf(name, sizeof name, "firing %s", tr->name);
    cbx__span s;
    cbx__span_begin(&s, &c, self.parent, name, CBX__SPAN_INTERNAL,
                    cbx__trace_mono_to_unix(f->trace_t0), cbx__trace_now_ns());
    cbx__span_str(&s, "cbx.workflow", r->w->name);
    cbx__span_str(&s, "cbx.run_id", r->id);
    cbx__span_str(&s, "cbx.transition", tr->name);
    cbx__span_str(&s, "cbx.token", f->ntoks ? f->toks[0]->id : NULL);
    cbx__span_int(&s, "cbx.tokens", (int64_t)f->ntoks);
    cbx__span_str(&s, "cbx.executor", tr->executor);
    cbx__span_str(&s, "cbx.execution.id", execution);
    cbx__span_str(&s, "cbx.signal", f->signal);
    cbx__span_bool(&s, "cbx.action.ok", ok);
    if (ok)
        cbx__span_status(&s, CBX__SPAN_OK, NULL);
    else
        cbx__span_status(&s, CBX__SPAN_ERROR,
                         error && *error ? error
                                         : "the action failed (its execution's span says why)");
    cbx__span_emit(&s);
}
