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
 * Thread-safe. The first use of a name creates its breaker from the options given then, and the
 * store keeps those options with the breaker (in the host store, in its record, for every
 * process): later options for the same name, from this process or another, are ignored until
 * cbx_breaker_store_set_opts changes them or cbx_breaker_store_forget drops the name. Only the
 * clock and the event callback are each process's own.
 *
 * The file is made whole under a temporary name and linked into place; it is opened without
 * following a symbolic link and must be a regular file of this user. Each record's blocks are
 * allocated (posix_fallocate) before the record is first used, so a full file system gives
 * -ENOSPC when a new name is added (or when the file is made), never a SIGBUS; breakers already
 * in the file go on working. No wait for a lock another process holds is unbounded: acquire
 * waits until the deadline it is given (cbx_breaker_store_acquire_by), everything else at most
 * CBX_BREAKER_STORE_WAIT_NS, and -EAGAIN says the lock was still held then.
 */
#ifndef CBX_BREAKER_STORE_H
#define CBX_BREAKER_STORE_H

#include <jansson.h>

#include "cbx/breaker.h"
#include "cbx/err.h"
#include "cbx/ratelimit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_breaker_store cbx_breaker_store;

/* The longest name, in bytes (a name is 1 to this many bytes). */
#define CBX_BREAKER_NAME_MAX 200
/* How long an operation without a deadline of its own waits for a record lock: 10 s. */
#define CBX_BREAKER_STORE_WAIT_NS (10ULL * 1000000000ULL)

int cbx_breaker_store_memory_new(cbx_breaker_store **out, cbx_err *err);
/* path NULL = the default (the state directory must pass cbx_state_dir's checks). An empty file
 * or one left unfinished (all zeros) is made again, as is one from an older version or an
 * earlier boot. Errors, naming the file: -ENOSPC (no room to make it), -ELOOP (a symbolic
 * link), -EPERM (not a regular file of this user, or a state directory others can write),
 * CBX_EPARSE (not a store file, a newer version, damaged or truncated), -EAGAIN (locked past
 * CBX_BREAKER_STORE_WAIT_NS), -errno. */
int cbx_breaker_store_host_new(cbx_breaker_store **out, const char *path, cbx_err *err);
void cbx_breaker_store_free(cbx_breaker_store *s);

/* As cbx_breaker_acquire_ex / _record on the named breaker (created from o, or defaults when
 * o is NULL, on first use). Besides the breaker's refusals the permit's rc can be
 * CBX_EINVAL_CONFIG (bad name or options), -ENOSPC (a new name and no room: the table is full
 * or the file system is), -EAGAIN (the record stayed locked until the deadline) or -errno;
 * cbx_breaker_store_explain words them. acquire waits at most CBX_BREAKER_STORE_WAIT_NS. */
cbx_permit cbx_breaker_store_acquire(cbx_breaker_store *s, const char *name,
                                     const cbx_breaker_opts *o, cbx_breaker_rejection *why);
/* As cbx_breaker_store_acquire, waiting for a lock no later than deadline_ns (CLOCK_MONOTONIC,
 * as cbx_clock_now_ns(NULL); 0: only try). On -EAGAIN nothing changed: call again later. The
 * runtime calls it with a short deadline and tries again from a timer, so that the loop, the
 * execution's deadline and cancellation are never held up by another process's lock. */
cbx_permit cbx_breaker_store_acquire_by(cbx_breaker_store *s, const char *name,
                                        const cbx_breaker_opts *o, cbx_breaker_rejection *why,
                                        uint64_t deadline_ns);
/* record waits at most CBX_BREAKER_STORE_WAIT_NS for the breaker's record, record_by until
 * deadline_ns (CLOCK_MONOTONIC; 0: only try). An outcome not recorded by then is kept by this
 * handle and recorded first thing at its next operation on the name, or when it is freed
 * (cbx_breaker_store_free then waits at most CBX_BREAKER_STORE_WAIT_NS per name; what it
 * cannot record by then is lost, as when a process dies between acquire and record). */
void cbx_breaker_store_record(cbx_breaker_store *s, const char *name, cbx_permit p, cbx_outcome k,
                              int64_t latency_ns);
void cbx_breaker_store_record_by(cbx_breaker_store *s, const char *name, cbx_permit p,
                                 cbx_outcome k, int64_t latency_ns, uint64_t deadline_ns);
/* cbx_breaker_explain for a rejection from this store. */
const char *cbx_breaker_store_explain(cbx_breaker_store *s, const char *name,
                                      const cbx_breaker_rejection *why, char *buf, size_t len);

/* Manual control: reset, force open, force closed (mode as cbx_breaker_set_mode). -ENOENT when
 * the name is unknown. */
int cbx_breaker_store_set_mode(cbx_breaker_store *s, const char *name, cbx_breaker_mode mode);
int cbx_breaker_store_forget(cbx_breaker_store *s, const char *name);

/* The options the named breaker uses: the ones stored with it (numbers only: name, clock,
 * on_event and event_ud come back NULL). 0, -ENOENT when the name is unknown, CBX_EINVAL_CONFIG
 * for a bad name, -EAGAIN (locked past CBX_BREAKER_STORE_WAIT_NS). */
int cbx_breaker_store_get_opts(cbx_breaker_store *s, const char *name, cbx_breaker_opts *out);
/* Store o (defaults when NULL) as the named breaker's options, adding the name when unknown;
 * every process uses them from its next operation on the name. The breaker's state (counters,
 * windows, open or closed) is kept when the new options give it the same shape (count-window
 * size, time-window buckets and length, probe slots), else the breaker starts afresh. o's clock
 * and callback serve this handle only. 0, CBX_EINVAL_CONFIG (bad name or options, or a state
 * too large for a record), -ENOSPC, -EAGAIN, -errno; err words it. */
int cbx_breaker_store_set_opts(cbx_breaker_store *s, const char *name, const cbx_breaker_opts *o,
                               cbx_err *err);
/* The options as a JSON object {consecutive_failures, open_ms, half_open_probes, close_after,
 * open_multiplier, open_max_ms, probe_lease_ms, slow_call_ms, count_window_calls,
 * time_window_ms}: open_ms is the open time in effect (60000 for 0, -1 for "until closed by
 * hand"), the others as in cbx_breaker_opts (0: off or the default). New reference. */
json_t *cbx_breaker_opts_to_json(const cbx_breaker_opts *o);

/* Host-wide rate limiters. The arrival-time word of the limiter named key (a namespace of its
 * own: a breaker may have the same name), its record added when missing with a full bucket; o
 * (may be NULL) is noted in the record for information only. Give *word to
 * cbx_ratelimit_opts.shared_tat: every limiter on that word, in any process, takes from one
 * bucket. The word lives in the store's mapping: valid until cbx_breaker_store_free. A limiter
 * record is never forgotten (it takes a name of the 512 until the file is made again, at the
 * next boot). 0, CBX_EINVAL_CONFIG (key empty or over 200 bytes), -ENOTSUP (the memory store),
 * -ENOSPC, -EAGAIN, -errno; err words it. */
int cbx_breaker_store_limiter(cbx_breaker_store *s, const char *key, const cbx_ratelimit_opts *o,
                              void **word, cbx_err *err);

/* Rate limiters shared through the store, whatever its kind: o (a limiter's options) is given
 * the shared bucket of the limiter named key - the host store's arrival-time word
 * (o->shared_tat, as cbx_breaker_store_limiter), or the cluster store's bucket in NATS JetStream
 * KV (o->remote, see cbx_breaker_store_nats_new). Valid until cbx_breaker_store_free. 0,
 * CBX_EINVAL_CONFIG (key empty or over 200 bytes), -ENOTSUP (the memory store), or what
 * cbx_breaker_store_limiter returns; err words it. */
int cbx_breaker_store_limiter_opts(cbx_breaker_store *s, const char *key, cbx_ratelimit_opts *o,
                                   cbx_err *err);

/* Names and metrics: an array of objects {name, state, mode, calls, successes, failures,
 * rejections, consecutive_failures, success_rate, retry_in_ms, opens, latency_p50_ms, ...,
 * options (as cbx_breaker_opts_to_json)}; show gives one object (-ENOENT when unknown). New
 * references. */
int cbx_breaker_store_list(cbx_breaker_store *s, json_t **out, cbx_err *err);
int cbx_breaker_store_show(cbx_breaker_store *s, const char *name, json_t **out, cbx_err *err);

/* The metrics of a breaker as that JSON object (used by both). New reference. */
json_t *cbx_breaker_metrics_to_json(const char *name, const cbx_breaker_metrics *m);

#ifdef __cplusplus
}
#endif
#endif
