/* A flow run's span ("flow <name>"): the parent of its steps' execution spans, itself a child of
 * the span the caller names (cbx_flow_run_opts.traceparent: the flow executor's attempt) or of
 * the process's TRACEPARENT. Its id is made from the run id (telemetry/trace_ids.c). */
#include "flow/flow_internal.h"

#include "telemetry/trace.h"

#include <string.h>

void cbx__flow_trace_begin(const char *parent, const char *run_id, char tp[56])
{
    tp[0] = '\0';
    if (!cbx__trace_propagate())
        return;
    cbx__trace_ctx c;
    cbx__trace_ctx_for(parent, run_id, &c);
    cbx__traceparent_format(c.trace, cbx__span_id_run(run_id), tp);
}

void cbx__flow_trace_end(const char *parent, const char *run_id, const cbx_flow *f,
                         const cbx_flow_result *res, uint64_t t0, uint64_t end)
{
    if (!cbx__trace_on())
        return;
    cbx__trace_ctx c;
    cbx__trace_ctx_for(parent, run_id, &c);
    char name[160];
    snprintf(name, sizeof name, "flow %s", f->name ? f->name : "?");
    cbx__span s;
    cbx__span_begin(&s, &c, cbx__span_id_run(run_id), name, CBX__SPAN_INTERNAL,
                    cbx__trace_mono_to_unix(t0), cbx__trace_mono_to_unix(end));
    cbx__span_str(&s, "cbx.run_id", run_id);
    cbx__span_str(&s, "cbx.flow", f->name);
    cbx__span_str(&s, "cbx.flow.version", f->version);
    cbx__span_str(&s, "cbx.status", cbx_status_name(res->status));
    if (res->status == CBX_STATUS_SUCCESS)
        cbx__span_status(&s, CBX__SPAN_OK, NULL);
    else /* the run's error quotes its steps', which their own spans give with secrets masked */
        cbx__span_status(&s, CBX__SPAN_ERROR, cbx_status_name(res->status));
    cbx__span_emit(&s);
}
