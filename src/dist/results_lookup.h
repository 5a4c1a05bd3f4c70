/* Looking up many stored results at once: one round trip to the server for a whole batch of
 * execution ids, instead of one synchronous get each. Used by a worker before it runs what it
 * fetched (a job whose result is stored is not run again). */
#ifndef CBX_DIST_RESULTS_LOOKUP_H
#define CBX_DIST_RESULTS_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include "cbx/err.h"
#include "dist/natslib.h"

typedef struct cbx__lookup cbx__lookup;

/* A lookup on nc for the results bucket kv (both borrowed; they must outlive it). One reply
 * subscription is made here. Not thread-safe: one thread uses it. 0 or CBX_EFAILED. */
int cbx__lookup_new(cbx__lookup **out, natsConnection *nc, kvStore *kv, cbx_err *err);
void cbx__lookup_free(cbx__lookup *l);

/* For each of ids[0..n): found[i] = its stored result (malloc'd, NUL-terminated, the caller
 * frees it) or NULL when there is none, or when the server did not answer within timeout_ms
 * (treated as none, as a failed get always was). The requests go out together (JetStream direct
 * gets of the last message on each key's subject) and the answers are matched by their reply
 * subjects; a server without direct gets on the bucket gets one kvStore_Get per id instead. */
void cbx__lookup_results(cbx__lookup *l, const char *const *ids, int n, char **found,
                         int64_t timeout_ms);

/* 1 when id can be a key of the results bucket: 1 to 39 of [-/_=.A-Za-z0-9], not starting or
 * ending with '.'. */
int cbx__lookup_key_ok(const char *id);

#endif
