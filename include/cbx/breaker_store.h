/* cbx/breaker_store.h - named breakers, in this process or shared by every cbx process on the
 * host.
 *
 * A store maps names to breakers. The memory store keeps them in this process. The host store
 * keeps each breaker's whole state in a file that every process on the machine maps (by default
 * $CBX_STATE_DIR/breakers, see cbx_state_dir): each operation locks the breaker's record, loads
 * it, decides, and writes it back, so `cbx exec --breaker NAME` run again and again from a shell
 * script trips, refuses and recovers across invocations exactly as one long-lived breaker would.
 * Times are CLOCK_MONOTONIC, which all processes share; a reboot resets the store.
 *
 * Thread-safe. The first use of a name creates its breaker from the options given then; later
 * options for the same name are ignored until cbx_breaker_store_forget.
 */
#ifndef CBX_BREAKER_STORE_H
#define CBX_BREAKER_STORE_H

#include <jansson.h>

#include "cbx/breaker.h"
#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_breaker_store cbx_breaker_store;

int cbx_breaker_store_memory_new(cbx_breaker_store **out, cbx_err *err);
/* path NULL = the default. Errors: -errno (naming the file), CBX_EPARSE (not a store file). */
int cbx_breaker_store_host_new(cbx_breaker_store **out, const char *path, cbx_err *err);
void cbx_breaker_store_free(cbx_breaker_store *s);

/* As cbx_breaker_acquire_ex / _record on the named breaker (created from o, or defaults when
 * o is NULL, on first use). */
cbx_permit cbx_breaker_store_acquire(cbx_breaker_store *s, const char *name,
                                     const cbx_breaker_opts *o, cbx_breaker_rejection *why);
void cbx_breaker_store_record(cbx_breaker_store *s, const char *name, cbx_permit p, cbx_outcome k,
                              int64_t latency_ns);
/* cbx_breaker_explain for a rejection from this store. */
const char *cbx_breaker_store_explain(cbx_breaker_store *s, const char *name,
                                      const cbx_breaker_rejection *why, char *buf, size_t len);

/* Manual control: reset, force open, force closed (mode as cbx_breaker_set_mode). -ENOENT when
 * the name is unknown. */
int cbx_breaker_store_set_mode(cbx_breaker_store *s, const char *name, cbx_breaker_mode mode);
int cbx_breaker_store_forget(cbx_breaker_store *s, const char *name);

/* Names and metrics: an array of objects {name, state, mode, calls, successes, failures,
 * rejections, consecutive_failures, success_rate, retry_in_ms, opens, latency_p50_ms, ...};
 * show gives one object (-ENOENT when unknown). New references. */
int cbx_breaker_store_list(cbx_breaker_store *s, json_t **out, cbx_err *err);
int cbx_breaker_store_show(cbx_breaker_store *s, const char *name, json_t **out, cbx_err *err);

/* The metrics of a breaker as that JSON object (used by both). New reference. */
json_t *cbx_breaker_metrics_to_json(const char *name, const cbx_breaker_metrics *m);

#ifdef __cplusplus
}
#endif
#endif
