/* Between the files of the nats executor (nats.c: the type; nats_pool.c: connections;
 * nats_ops.c: the operations). */
#ifndef CBX_EXECUTORS_NATS_INTERNAL_H
#define CBX_EXECUTORS_NATS_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "cbx/executor.h"
#include "dist/natslib.h"
#include "executors/builtins.h" /* cbx__nats_type */

/* Connections of one runtime, shared by its attempts (on the thread pool), one per server list
 * and credentials. Made by the type's loop_init without touching libnats; freed by loop_close,
 * after the runtime's executions have ended. */
typedef struct cbx__nats_pool cbx__nats_pool;

/* 0 or -ENOMEM. */
int cbx__nats_pool_open(cbx__nats_pool **out);
/* Closes and frees every connection. NULL accepted. */
void cbx__nats_pool_close(cbx__nats_pool *p);
/* A connected connection to url (one server or a comma-separated list) with params' token,
 * user, password, tls and ca_file: the pool's, or a new one made within connect_ms. It stays the
 * pool's (never destroy it). 0, or CBX_EFAILED with a one-line reason naming the servers.
 * Thread-safe. */
int cbx__nats_pool_get(cbx__nats_pool *p, const char *url, const json_t *params, int64_t connect_ms,
                       natsConnection **out, cbx_err *err);

/* What an operation reports. */
typedef struct cbx__nats_result {
    cbx_outcome outcome;
    json_t *outputs;  /* new reference, or NULL */
    json_t *metadata; /* new reference, or NULL */
} cbx__nats_result;

/* nats_ops.c: run params' operation on nc, waiting at most wait_ms for an answer, and stopping
 * early when the task is cancelled. Failures are described in err. */
cbx__nats_result cbx__nats_run_op(cbx_task *t, natsConnection *nc, const json_t *params,
                                  int64_t wait_ms, cbx_err *err);

/* nats_workflow.c: workflow_start, workflow_get, workflow_signal (the bucket CBX_WORKFLOWS). */
cbx__nats_result cbx__nats_workflow_op(const char *op, natsConnection *nc, const json_t *params,
                                       cbx_err *err);

#endif
