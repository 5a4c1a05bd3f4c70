/* cbx workflow run|start|resume|signal|show with --nats URL (or --workflow-id ID): the
 * workflow's marking in the cluster's key-value bucket CBX_WORKFLOWS, so that any number of
 * processes move its tokens (cbx/dist.h, docs/distributed.md). */
#ifndef CBX_CLI_WORKFLOW_KV_H
#define CBX_CLI_WORKFLOW_KV_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"

struct cbx_registry;

typedef struct cli_wf_kv {
    const char *url, *id, *owner; /* --nats, --workflow-id, --owner */
    uint64_t lease_ns, max_moves; /* --lease, --max-moves */
    /* from the rest of the command line */
    const char *sub;
    const char *const *pos;
    size_t npos;
    const char *const *tokens;
    size_t ntokens;
    const char *at, *data;
    int json, quiet, no_wait;
    uint32_t max_firings;
} cli_wf_kv;

/* Run k->sub against the bucket; the exit code (after its messages). */
int cli_workflow_kv(cli_ctx *ctx, struct cbx_registry *reg, const cli_wf_kv *k);

#endif
