/* The seed's `execution: {timeout, mode}` block (under a flow's or a step's `config:`). */
#ifndef CBX_FLOW_EXECUTION_H
#define CBX_FLOW_EXECUTION_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Read an execution block. `timeout` is seconds (a number, as in the seed) or a duration string
 * ("30s"); `mode` may only be "async" (what cbx does). whole_flow picks the wording of the
 * messages. Returns 1 with *timeout_ns set when a timeout is given, 0 when none is, or -1 with
 * the offending key (relative: "execution.timeout") in where and the reason in msg. */
int cbx__flow_execution_read(const json_t *execution, int whole_flow, uint64_t *timeout_ns,
                             char *where, size_t wlen, char *msg, size_t mlen);

#endif
