/* Workflow markings in the bucket CBX_WORKFLOWS (wf_kv.c; cbx/dist.h has the public side) on a
 * connection the caller has - the nats executor's (executors/nats/nats_workflow.c). The
 * connection is borrowed; credentials are the caller's business. Codes as cbx/dist.h says. */
#ifndef CBX_DIST_WF_KV_H
#define CBX_DIST_WF_KV_H

#include <jansson.h>
#include <stdint.h>

#include "cbx/err.h"
#include "cbx/workflow.h"
#include "dist/natslib.h"

/* cbx_workflow_kv_create on nc; *revision the marking's first revision. */
int cbx__wf_kv_create_on(natsConnection *nc, const char *id, cbx_workflow *w, const json_t *tokens,
                         uint64_t *revision, cbx_err *err);
/* cbx_workflow_kv_show on nc (the stored workflow loaded without a registry). */
int cbx__wf_kv_show_on(natsConnection *nc, const char *id, json_t **snapshot, cbx_err *err);
/* cbx_workflow_kv_signal on nc. */
int cbx__wf_kv_signal_on(natsConnection *nc, const char *id, const char *token, const char *name,
                         const json_t *data, cbx_err *err);

#endif
