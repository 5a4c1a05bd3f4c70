/* cbx/function.h - in-process C functions as executors.
 *
 * Register a C function under a name; the built-in executor types then run it:
 *
 *   function         params {name: string (required), input: any}
 *   cached_function  params {name, input, ttl_ms: integer >= 0 (default 60000)}
 *
 * A function is either blocking - call() runs on the event loop's thread pool (or, with
 * CBX_FUNCTION_INLINE, directly on the loop thread) and returns - or asynchronous - start()
 * begins the work on the loop thread and it later ends with cbx_task_done(), exactly once, on
 * the loop thread - or streaming - next() yields chunks one by one on the thread pool, each
 * delivered to the submitter as it comes (cbx_request.on_chunk). Any of them may also emit
 * partial output itself with cbx_task_emit (cbx/executor.h).
 *
 * Input: the request's "input" (JSON null when absent). When the function declares a parameter
 * schema, the input must be an object that fits it (checked when the request is submitted, so
 * a bad input is REJECTED naming "input.<param>") and the function receives it with the
 * defaults applied.
 *
 * Timeouts and cancels. The attempt's cancel flag is set (cbx_task_cancelled(t) turns
 * non-zero) and the function's cancel callback, if any, is called on the loop thread. A
 * blocking call still queued is dropped without running; a running one is expected to poll
 * cbx_task_cancelled() and return: the attempt ends when it returns, as TIMEOUT or CANCELLED,
 * and whatever it returned is discarded (never cached). An asynchronous function must still end
 * with cbx_task_done(); without a cancel callback it ends when its work ends.
 *
 * Caching (cached_function). The key is a 64-bit FNV-1a hash of the function's name and the
 * canonical JSON of its input (after defaults: sorted keys, no whitespace, integers and reals
 * kept apart, so {"b":1,"a":2} and {"a":2,"b":1} share an entry); the canonical text is kept
 * and compared too, so a hash collision never returns a wrong result. A hit - an entry younger
 * than the request's ttl_ms - returns a copy of the cached outputs (and quality) without
 * calling the function, with metadata {"cache_hit": true, "cache_age_ms": ...}; a miss calls it
 * and caches a successful result, with metadata "cache_hit": false. ttl_ms 0 never hits (and
 * still refreshes the entry). The cache is process-wide, thread-safe, bounded (LRU eviction,
 * default 1024 entries), and concurrent misses on one key each call the function.
 *
 * Names are process-wide: one name maps to one function, whichever registry it was registered
 * with (the executor sees only its task, not the registry); the registry given owns the
 * function, for cbx_function_unregister_all.
 */
#ifndef CBX_FUNCTION_H
#define CBX_FUNCTION_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/err.h"
#include "cbx/executor.h"
#include "cbx/outcome.h"
#include "cbx/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Run call() on the loop thread, inside the attempt's start, instead of the thread pool: for
 * functions that return within microseconds. Such a call cannot be interrupted by a timeout. */
#define CBX_FUNCTION_INLINE 0x1u

typedef struct cbx_function_def {
    /* Blocking: set *output (a new reference, stolen; may stay NULL) and return the outcome.
     * input is borrowed, read-only, valid during the call. Runs on a pool thread (or the loop
     * thread with CBX_FUNCTION_INLINE); may run on several threads at once. On failure, give
     * the reason with cbx_function_error(). */
    cbx_outcome (*call)(const json_t *input, json_t **output, cbx_task *t, void *ud);
    /* Asynchronous: begin the work and return 0 (or a negative code: the attempt fails). End
     * it with cbx_task_done(t, ...) on the loop thread. input is borrowed until then. */
    int (*start)(cbx_task *t, const json_t *input, void *ud);
    /* Optional: stop the work (loop thread). For a blocking call, it runs while call() may
     * still be running on a pool thread. */
    void (*cancel)(cbx_task *t, void *ud);
    /* Optional: the schema of the input (borrowed; NULL-name terminated; must outlive the
     * registration). NULL = any JSON value is accepted as it is. */
    const cbx_param *params;
    void *ud;
    unsigned flags; /* CBX_FUNCTION_* */
    /* Streaming (a generator, seed 001's StreamingFunctionExecutor), instead of call and start:
     * called again and again on a pool thread, each call yields the next chunk. *iter starts NULL
     * and is the function's own (its iteration state). Return 1 with *chunk set (a new
     * reference, stolen: a JSON string is emitted as text, anything else as an event, on the
     * channel "out"), 0 at the end (success), or < 0 for a failure (say why with
     * cbx_function_error). Each chunk goes out with cbx_task_emit before the next call, so a slow
     * consumer holds the function back (the emit waits). The attempt's outputs are {"text": the
     * text chunks joined, "chunks": how many were yielded}. After a 0 or a failure the function
     * is not called again; when the executor stops early (the attempt is stopped, or the
     * consumer stopped the stream: then metadata "stream_stopped" is true and it succeeds with
     * what was yielded) it is called once more with chunk NULL, to release *iter. (Added after
     * the fields above: the struct only grows at the end.) */
    int (*next)(const json_t *input, json_t **chunk, void **iter, cbx_task *t, void *ud);
} cbx_function_def;

/* Register a function (the def is copied; params, ud and the code must outlive the
 * registration). name: 1 to 63 of [a-z0-9_.-]. Exactly one of call and start. Errors:
 * CBX_EINVAL_CONFIG (bad name, def or schema: err says which), CBX_EEXISTS (the name is
 * taken), -ENOMEM. Thread-safe. */
int cbx_function_register(cbx_registry *r, const char *name, const cbx_function_def *def,
                          cbx_err *err);

/* Remove a function and its cache entries. Attempts already running keep it until they end.
 * Errors: -ENOENT (no such function, or registered with another registry). Thread-safe. */
int cbx_function_unregister(cbx_registry *r, const char *name, cbx_err *err);

/* Remove every function registered with r (call it before cbx_registry_free(r) when the
 * functions' ud dies with the registry). Returns how many were removed. */
size_t cbx_function_unregister_all(cbx_registry *r);

/* 1 when a function of that name is registered. */
int cbx_function_exists(const char *name);

/* From inside call(): the one-line reason of a failure (printf format; copied). Ignored for a
 * task that is not a function's. */
void cbx_function_error(cbx_task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the cache of cached_function ----------------------------------------------------------- */

typedef struct cbx_function_cache_stats {
    uint64_t hits, misses; /* lookups (ttl_ms 0 counts as a miss) */
    uint64_t inserts, evictions, expired;
    size_t entries, capacity;
} cbx_function_cache_stats;

void cbx_function_cache_stats_get(cbx_function_cache_stats *out);

/* Bound the cache (entries; 0 = the default, 1024). Evicts the least recently used at once
 * when it holds more. */
void cbx_function_cache_set_capacity(size_t entries);

/* Drop every cached result (and zero the counters). */
void cbx_function_cache_clear(void);

/* The cache key of (name, input): its 64-bit hash, and (if canonical is not NULL) the
 * canonical JSON text of input, malloc'd, for the caller to free. Returns 0 or -ENOMEM. */
int cbx_function_cache_key(const char *name, const json_t *input, uint64_t *hash, char **canonical);

#ifdef __cplusplus
}
#endif
#endif
