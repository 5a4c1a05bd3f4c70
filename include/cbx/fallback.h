/* cbx/fallback.h - answers for a call that failed or was refused.
 *
 * A cbx_fallback holds up to three sources of a substitute answer and asks them in a fixed
 * order until one answers:
 *
 *   cache     the last good result remembered for a key, if younger than its time to live
 *             (cbx_fallback_remember); bounded by max_entries, least recently used out first
 *   function  a C callback that computes a degraded answer from the original input
 *   value     a static JSON value given at creation
 *
 * The default order is cache, function, value: real data for this very key first, then an
 * answer computed from the input, then the catch-all. cbx_fallback_opts.order changes it.
 *
 * Values are jansson json_t. Every value handed in is deep-copied, and every value handed
 * out is a new, independent value the caller owns (json_decref): mutating either side never
 * changes what the fallback holds or what another caller got.
 *
 * Thread safety: every function may be called from any thread at the same time, on the same
 * cbx_fallback. The cache and the counters sit behind one mutex; the degraded function is
 * called with no lock held. Time comes from a cbx_clock (virtual in tests).
 *
 * In a policy block (see docs/fallback.md) the same options read:
 *   fallback: {value: <any JSON>, cache: {ttl: 10m, max_entries: 1000},
 *              function: "<registered name>", order: [cache, function, value]}
 */
#ifndef CBX_FALLBACK_H
#define CBX_FALLBACK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/clock.h"
#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_fallback cbx_fallback;

/* Where an answer came from. The names ("cache", "function", "value") are the ones used in
 * policy blocks and in the journal. */
typedef enum cbx_fallback_source {
    CBX_FALLBACK_NONE = 0, /* nothing answered; also ends a short order[] list */
    CBX_FALLBACK_CACHE = 1,
    CBX_FALLBACK_FUNCTION = 2,
    CBX_FALLBACK_VALUE = 3,
} cbx_fallback_source;

/* Number of distinct sources, and so the length of cbx_fallback_opts.order. */
#define CBX_FALLBACK_MAX_SOURCES 3

/* A time to live that never runs out (cbx_fallback_remember_ttl, cbx_fallback_opts). */
#define CBX_FALLBACK_TTL_NEVER UINT64_MAX

/* What a policy parser should fill in when a `cache:` block leaves a key out. The C API
 * itself has no defaults: a cache with cache_ttl_ms or cache_max_entries 0 is refused. */
#define CBX_FALLBACK_DEFAULT_TTL_MS      (10ULL * 60 * 1000) /* 10m */
#define CBX_FALLBACK_DEFAULT_MAX_ENTRIES 1000

/* A degraded answer computed from the input of the call that failed.
 *
 * input is borrowed (may be NULL when the caller had none) and must not be modified.
 * *out is NULL on entry. Return 0 with *out set to a new reference, which the fallback takes
 * over; or return a negative code (a CBX_E* code or -errno) to say "no answer". On failure
 * anything left in *out is released by the fallback. A 0 return with *out NULL, or a positive
 * return, counts as a failure with code CBX_EFAILED.
 *
 * Called with no lock held, possibly from several threads at once. */
typedef int (*cbx_fallback_fn)(const json_t *input, json_t **out, void *ud);

typedef struct cbx_fallback_opts {
    /* Static value, or NULL for none. Borrowed during cbx_fallback_new, which keeps a deep
     * copy: the caller keeps (and later releases) its own reference. json_null() is a value
     * like any other ("answer null"), not "none". */
    const json_t *value;

    /* Non-zero: keep the last good result per key (cbx_fallback_remember). */
    int cache;
    /* Time to live of a remembered result, in milliseconds: a lookup returns an entry only
     * while its age is below this. Must be > 0 when cache is on, 0 when it is off.
     * CBX_FALLBACK_TTL_NEVER keeps entries until evicted. */
    uint64_t cache_ttl_ms;
    /* Most keys held at once; storing one more evicts the least recently used (stored or
     * returned) entry. Must be > 0 when cache is on, 0 when it is off. */
    size_t cache_max_entries;

    /* Degraded function, or NULL for none; fn_ud is passed to it untouched (borrowed, must
     * outlive the fallback). */
    cbx_fallback_fn fn;
    void *fn_ud;

    /* The order in which sources are asked. All CBX_FALLBACK_NONE (the zero value) means the
     * default: cache, function, value, skipping the ones not configured. Otherwise list the
     * sources to ask, each at most once, ending early with CBX_FALLBACK_NONE; every listed
     * source must be configured and every configured source must be listed. */
    cbx_fallback_source order[CBX_FALLBACK_MAX_SOURCES];

    /* Time source for the cache, borrowed (must outlive the fallback). NULL: monotonic. */
    cbx_clock *clock;
} cbx_fallback_opts;

/* Create a fallback. opts is copied (the pointers in it are borrowed as documented above).
 *
 * Returns 0 and *out (free with cbx_fallback_free), or:
 *   CBX_EINVAL_CONFIG  with err->where naming the field at fault: "fallback" (no source at
 *                      all), "cache_ttl_ms", "cache_max_entries", "cache" (TTL or size set
 *                      while the cache is off), "order" / "order[i]" (unknown, repeated,
 *                      unconfigured or missing source)
 *   -EINVAL            out or opts is NULL
 *   -ENOMEM            out of memory (also when the static value cannot be copied) */
int cbx_fallback_new(cbx_fallback **out, const cbx_fallback_opts *opts, cbx_err *err);

/* Release a fallback, its cached values and its static value. NULL is accepted. No other
 * call on fb may be running or start afterwards. */
void cbx_fallback_free(cbx_fallback *fb);

/* Ask the sources in order for a substitute answer.
 *
 * key selects the cache entry (borrowed; NULL skips the cache, as if it missed). input is
 * borrowed, passed to the degraded function and never modified (may be NULL). source may be
 * NULL; otherwise it receives the cbx_fallback_source that answered (CBX_FALLBACK_NONE on
 * failure). An expired entry met by a lookup is removed.
 *
 * Returns 0 and *out, a new value the caller owns (json_decref); or, with *out NULL:
 *   CBX_ENO_FALLBACK  no source answered (cache miss or expired entry, no other source)
 *   <fn's code>       no source answered and the degraded function was asked and failed:
 *                     its code is returned instead of CBX_ENO_FALLBACK (CBX_EFAILED when
 *                     it broke its contract); a failing function does not stop the sources
 *                     after it from being asked
 *   -ENOMEM           an answer was found but could not be copied
 *   -EINVAL           fb or out is NULL
 * err, when given, says what each source did ("cache: expired; function: failed (...)"). */
int cbx_fallback_get(cbx_fallback *fb, const char *key, const json_t *input, json_t **out,
                     int *source, cbx_err *err);

/* Remember value as the last good result for key, stamped with the clock's now and the
 * fallback's TTL. key is copied; value is borrowed and deep-copied (the caller's reference
 * stays the caller's, and later changes to it do not reach the cache). Storing an existing
 * key replaces its value and stamp. Storing a new key when max_entries are held evicts the
 * least recently used entry. Pre-populating the cache is the same call.
 *
 * Returns 0, or -EINVAL (fb, key or value NULL), -ENOMEM (nothing changed), or
 * CBX_EINVAL_CONFIG when the fallback has no cache. */
int cbx_fallback_remember(cbx_fallback *fb, const char *key, const json_t *value);

/* As cbx_fallback_remember with this entry's own time to live in milliseconds: 0 means the
 * fallback's TTL, CBX_FALLBACK_TTL_NEVER keeps it until it is replaced, forgotten or evicted
 * (useful for canned answers loaded at start-up). */
int cbx_fallback_remember_ttl(cbx_fallback *fb, const char *key, const json_t *value,
                              uint64_t ttl_ms);

/* Drop the entry for key. Returns 0 when one was dropped, -ENOENT when there was none,
 * -EINVAL (fb or key NULL), or CBX_EINVAL_CONFIG when the fallback has no cache. */
int cbx_fallback_forget(cbx_fallback *fb, const char *key);

/* Drop every expired entry now (lookups drop them lazily otherwise). Returns how many were
 * dropped, counted in the expirations statistic; 0 when fb is NULL or has no cache. */
size_t cbx_fallback_purge(cbx_fallback *fb);

typedef struct cbx_fallback_stats {
    uint64_t cache_hits;      /* answers from the cache */
    uint64_t function_hits;   /* answers from the degraded function */
    uint64_t value_hits;      /* answers from the static value */
    uint64_t misses;          /* cbx_fallback_get calls where nothing answered */
    uint64_t cache_misses;    /* cache lookups that found no entry for the key */
    uint64_t expirations;     /* entries found expired (by a lookup or cbx_fallback_purge) */
    uint64_t evictions;       /* entries pushed out by max_entries */
    uint64_t function_errors; /* degraded function calls that failed */
    uint64_t stores;          /* successful cbx_fallback_remember(_ttl) calls */
    size_t entries;           /* entries held now, expired or not */
} cbx_fallback_stats;

/* 1 when fb keeps a cache of last good results (0 for NULL). */
int cbx_fallback_has_cache(const cbx_fallback *fb);

/* Copy the counters into *out (a consistent snapshot). Both pointers must be non-NULL. */
void cbx_fallback_stats_get(cbx_fallback *fb, cbx_fallback_stats *out);

/* Name of a source ("cache", "function", "value", "none"); static. Out of range: "unknown". */
const char *cbx_fallback_source_name(int source);

/* Parse a source name as used in a policy block's `order:` list. Returns 0, or CBX_EPARSE. */
int cbx_fallback_source_parse(const char *name, cbx_fallback_source *out);

#ifdef __cplusplus
}
#endif
#endif
