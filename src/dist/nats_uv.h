/* A NATS connection driven by a libuv loop (libnats' libuv adapter, nats/adapters/libuv.h): the
 * socket is read and written on the loop's thread, and what any thread publishes is gathered in
 * the connection's buffer until the loop writes it, in one system call for all that came in the
 * meantime, at the loop's next turn (rather than one call per message with SendAsap, or after the
 * millisecond libnats' flusher waits).
 *
 * The rules of the adapter: the connection is made on the loop's thread (cbx__nats_uv_thread
 * called there first); a request that waits for its answer (a JetStream API call, a fetch, a
 * flush) must not be made on the loop's thread while the loop does not run, since its answer is
 * read by the loop; and the connection must be closed (natsConnection_Close), with the loop
 * running or turned afterwards, before the loop is closed: closing detaches it, which closes the
 * adapter's two handles on the loop. */
#ifndef CBX_DIST_NATS_UV_H
#define CBX_DIST_NATS_UV_H

#include <uv.h>

#include "dist/natslib.h"

/* Tell the adapter that this thread runs loop. Call it before connecting and on the thread that
 * calls uv_run. libnats must be loaded. */
void cbx__nats_uv_thread(uv_loop_t *loop);
/* Set o so that its connection is driven by loop. */
natsStatus cbx__nats_uv_options(natsOptions *o, uv_loop_t *loop);

#endif
