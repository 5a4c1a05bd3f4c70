/* One connection per server for a process's submitters (cbx_remote_execute, so `cbx exec
 * --remote` and the remote executor): connected, and the work stream made sure of, once, rather
 * than for every job. */
#ifndef CBX_DIST_SHARED_CONN_H
#define CBX_DIST_SHARED_CONN_H

#include "cbx/err.h"
#include "dist/natslib.h"

/* The process's connection to url (connected now if it has none) and its JetStream context, both
 * kept for the life of the process (never freed by the caller). The connection reconnects for
 * ever and writes each message at once (SendAsap). Thread-safe. 0; CBX_EPLUGIN; CBX_EFAILED when
 * it cannot connect, when the stream cannot be made, or when the server is away now (the
 * connection is reconnecting), each with a line. */
int cbx__dist_shared(const char *url, natsConnection **nc, jsCtx **js, cbx_err *err);

#endif
