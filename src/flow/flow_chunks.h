/* A flow step's chunks (the partial output its executions emitted, cbx_chunk), kept bounded for
 * templates as steps.<name>.chunks. */
#ifndef CBX_FLOW_CHUNKS_H
#define CBX_FLOW_CHUNKS_H

#include "cbx/runtime.h"
#include "flow/flow_internal.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* What a step keeps; the rest is counted (steps.<name>.chunks_dropped). */
#define CBX__FLOW_CHUNKS_MAX       256
#define CBX__FLOW_CHUNKS_MAX_BYTES ((size_t)64 * 1024)

typedef struct cbx__flow_chunks {
    json_t *list; /* [{attempt, seq, channel, text | event[, item]}] in the order they came */
    size_t bytes;
    uint64_t dropped;
} cbx__flow_chunks;

/* 1 when some template of the flow (or of its steps and sub-flows) reads a step's chunks: only
 * then are they taken from the runtime. */
int cbx__flow_wants_chunks(const cbx_flow *f);
/* Keep a chunk of item (foreach) or of the step (item SIZE_MAX). */
void cbx__flow_chunks_add(cbx__flow_chunks *fc, size_t item, const cbx_chunk *c);
/* Put "chunks" (and "chunks_dropped") into a step's template context. */
void cbx__flow_chunks_ctx(const cbx__flow_chunks *fc, json_t *step_ctx);
void cbx__flow_chunks_free(cbx__flow_chunks *fc);

#endif
