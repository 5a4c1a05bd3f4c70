/* A loaded flow, as the parser (flow_load.c, flow_check.c) builds it and the runner
 * (flow_run.c) and the graph writer (flow_graph.c) read it. */
#ifndef CBX_FLOW_INTERNAL_H
#define CBX_FLOW_INTERNAL_H

#include "cbx/executor.h"
#include "cbx/flow.h"
#include "cbx/policy.h"
#include "cbx/yaml.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cbx__flow_input {
    char *name;
    cbx_param_type type; /* CBX_PARAM_ANY when not declared */
    int required;
    json_t *def;         /* default, or NULL */
    json_t *enum_values; /* array, or NULL */
    char *description;
} cbx__flow_input;

typedef struct cbx__flow_policy {
    char *name;
    cbx_policy *policy; /* owned */
} cbx__flow_policy;

typedef struct cbx__flow_step cbx__flow_step;

struct cbx__flow_step {
    char *name;         /* unique among its siblings; nested names are "parent.child" */
    char *executor;     /* a type name; "steps" for a composite; NULL for a sub-flow */
    json_t *config;     /* owned; may hold templates; {} when absent */
    cbx_policy *policy; /* borrowed from the flow's named policies, or owned when inline */
    int owns_policy;
    char *when;           /* a condition (bare Lua expression, braces stripped), or NULL */
    char *foreach;        /* an expression giving an array, or NULL */
    json_t *foreach_list; /* a literal array instead, or NULL */
    uint32_t batch_size;  /* foreach: items per execution batch; 0 = 1 */
    uint32_t parallelism; /* foreach: items at once; 0 = the flow's concurrency */
    int continue_on_error;
    uint64_t timeout_ns; /* per attempt, from the step's `timeout:`; 0 = the policy's */
    char *runs_on;       /* runs_on: a workers' queue, "" = here; NULL = as its parent or the
                            flow (flow/runs_on.h) */

    size_t *deps; /* indices of the sibling steps this one waits for */
    size_t ndeps;

    /* executor: steps */
    int parallel; /* mode: parallel (else sequence) */
    cbx__flow_step *children;
    size_t nchildren;

    /* flow: other.yaml */
    char *subflow_path;     /* resolved relative to the including file */
    cbx_flow *subflow;      /* owned, loaded at load time */
    json_t *subflow_inputs; /* owned; may hold templates */

    int line, col; /* where the step starts in the file */
};

struct cbx_flow {
    char *name, *version, *description;
    char *file; /* the path it was loaded from */
    cbx__flow_input *inputs;
    size_t ninputs;
    cbx__flow_policy *policies;
    size_t npolicies;
    cbx__flow_step *steps;
    size_t nsteps;
    size_t *order;        /* steps in a topological order (indices) */
    json_t *outputs;      /* owned: {name: template}; may be NULL */
    uint64_t timeout_ns;  /* the whole flow; 0 = none */
    uint32_t concurrency; /* 0 = 8 */
    char *runs_on;        /* the flow's runs_on: a workers' queue, "" or NULL = here */
    cbx_yaml_doc doc;     /* the source, for positions: only while loading */
};

/* Free one step's contents (not the struct itself). */
void cbx__flow_step_clear(cbx__flow_step *s);

/* A flow run's span (flow_trace.c): begin makes the traceparent its steps' executions are given
 * (tp "" when the process does not trace); end records the run's span (t0, end: monotonic ns).
 * parent: cbx_flow_run_opts.traceparent (NULL = none). */
void cbx__flow_trace_begin(const char *parent, const char *run_id, char tp[56]);
void cbx__flow_trace_end(const char *parent, const char *run_id, const cbx_flow *f,
                         const cbx_flow_result *res, uint64_t t0, uint64_t end);

#endif
