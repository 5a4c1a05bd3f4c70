/* Fallback answers: a last-good-result cache, a degraded function and a static value. */
#include "cbx/fallback.h"
#include "core/text.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One remembered result. Entries sit in a hash chain (lookup by key) and in a doubly linked
 * list ordered by last use (head = most recent), which makes eviction O(1). */
struct entry {
    struct entry *hnext;
    struct entry *prev, *next;
    json_t *value; /* our own deep copy, never modified after it is stored */
    uint64_t stored_ns;
    uint64_t ttl_ns; /* UINT64_MAX: never expires */
    uint64_t hash;
    size_t key_len;
    char key[]; /* NUL-terminated copy */
};

struct cbx_fallback {
    pthread_mutex_t mu;
    cbx_clock *clock;
    json_t *value; /* deep copy of opts->value, immutable; NULL when none */
    cbx_fallback_fn fn;
    void *fn_ud;
    cbx_fallback_source order[CBX_FALLBACK_MAX_SOURCES];
    int norder;

    int cache;
    uint64_t ttl_ns;
    size_t max_entries;
    struct entry **buckets; /* nbuckets is a power of two */
    size_t nbuckets;
    size_t max_buckets;
    struct entry *head, *tail;

    cbx_fallback_stats st; /* st.entries is the number of entries held */
};

#define INITIAL_BUCKETS 16

static const char *const source_names[] = {
    [CBX_FALLBACK_NONE] = "none",
    [CBX_FALLBACK_CACHE] = "cache",
    [CBX_FALLBACK_FUNCTION] = "function",
    [CBX_FALLBACK_VALUE] = "value",
};

const char *cbx_fallback_source_name(int source)
{
    if (source < 0 || source > CBX_FALLBACK_VALUE)
        return "unknown";
    return source_names[source];
}

int cbx_fallback_source_parse(const char *name, cbx_fallback_source *out)
{
    if (!name || !out)
        return CBX_EPARSE;
    for (int s = CBX_FALLBACK_CACHE; s <= CBX_FALLBACK_VALUE; s++) {
        if (strcmp(name, source_names[s]) == 0) {
            *out = (cbx_fallback_source)s;
            return 0;
        }
    }
    return CBX_EPARSE;
}

static uint64_t ttl_ms_to_ns(uint64_t ms)
{
    if (ms == CBX_FALLBACK_TTL_NEVER || ms > UINT64_MAX / CBX_NS_PER_MS)
        return UINT64_MAX;
    return ms * CBX_NS_PER_MS;
}

static size_t pow2_at_least(size_t n, size_t cap)
{
    size_t p = 1;
    while (p < n && p < cap)
        p <<= 1;
    return p;
}

/* --- configuration ---------------------------------------------------------------------- */

static int is_configured(const cbx_fallback_opts *o, int s)
{
    switch (s) {
    case CBX_FALLBACK_CACHE:
        return o->cache != 0;
    case CBX_FALLBACK_FUNCTION:
        return o->fn != NULL;
    case CBX_FALLBACK_VALUE:
        return o->value != NULL;
    default:
        return 0;
    }
}

static int order_is_default(const cbx_fallback_opts *o)
{
    for (int i = 0; i < CBX_FALLBACK_MAX_SOURCES; i++)
        if (o->order[i] != CBX_FALLBACK_NONE)
            return 0;
    return 1;
}

static int resolve_order(const cbx_fallback_opts *o, cbx_fallback_source *order, int *norder,
                         cbx_err *err)
{
    char where[16];
    int n = 0;
    if (order_is_default(o)) {
        static const cbx_fallback_source dflt[] = {CBX_FALLBACK_CACHE, CBX_FALLBACK_FUNCTION,
                                                   CBX_FALLBACK_VALUE};
        for (int i = 0; i < CBX_FALLBACK_MAX_SOURCES; i++)
            if (is_configured(o, dflt[i]))
                order[n++] = dflt[i];
        *norder = n;
        return 0;
    }
    int listed[CBX_FALLBACK_MAX_SOURCES + 1] = {0};
    int ended = 0;
    for (int i = 0; i < CBX_FALLBACK_MAX_SOURCES; i++) {
        int s = (int)o->order[i];
        snprintf(where, sizeof where, "order[%d]", i);
        if (s == CBX_FALLBACK_NONE) {
            ended = 1;
            continue;
        }
        if (ended)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0,
                                  "source listed after the end of the order (a NONE entry)");
        if (s < CBX_FALLBACK_CACHE || s > CBX_FALLBACK_VALUE)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0, "unknown source %d", s);
        if (listed[s])
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0, "source %s listed twice",
                                  source_names[s]);
        if (!is_configured(o, s))
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0,
                                  "source %s is listed but not configured", source_names[s]);
        listed[s] = 1;
        order[n++] = (cbx_fallback_source)s;
    }
    for (int s = CBX_FALLBACK_CACHE; s <= CBX_FALLBACK_VALUE; s++)
        if (is_configured(o, s) && !listed[s])
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "order", 0, 0,
                                  "source %s is configured but not listed", source_names[s]);
    *norder = n;
    return 0;
}

static int check_opts(const cbx_fallback_opts *o, cbx_err *err)
{
    if (!o->cache && !o->fn && !o->value)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "fallback", 0, 0,
                              "no source: set a value, a cache or a function");
    if (o->cache) {
        if (o->cache_ttl_ms == 0)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "cache_ttl_ms", 0, 0,
                                  "the cache needs a time to live above 0");
        if (o->cache_max_entries == 0)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "cache_max_entries", 0, 0,
                                  "the cache needs room for at least one entry");
    } else if (o->cache_ttl_ms || o->cache_max_entries) {
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "cache", 0, 0,
                              "cache_ttl_ms or cache_max_entries is set but the cache is off");
    }
    return 0;
}

int cbx_fallback_new(cbx_fallback **out, const cbx_fallback_opts *opts, cbx_err *err)
{
    if (!out)
        return cbx_err_set(err, -EINVAL, "out is NULL");
    *out = NULL;
    if (!opts)
        return cbx_err_set(err, -EINVAL, "opts is NULL");
    int r = check_opts(opts, err);
    if (r)
        return r;

    cbx_fallback *fb = calloc(1, sizeof *fb);
    if (!fb)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    r = resolve_order(opts, fb->order, &fb->norder, err);
    if (r) {
        free(fb);
        return r;
    }
    r = pthread_mutex_init(&fb->mu, NULL);
    if (r) {
        free(fb);
        return cbx_err_set(err, -r, "pthread_mutex_init: %s", strerror(r));
    }
    fb->clock = opts->clock;
    fb->fn = opts->fn;
    fb->fn_ud = opts->fn_ud;
    fb->cache = opts->cache != 0;
    if (opts->value) {
        fb->value = json_deep_copy(opts->value);
        if (!fb->value) {
            cbx_fallback_free(fb);
            return cbx_err_set_at(err, -ENOMEM, "value", 0, 0, "cannot copy the static value");
        }
    }
    if (fb->cache) {
        fb->ttl_ns = ttl_ms_to_ns(opts->cache_ttl_ms);
        fb->max_entries = opts->cache_max_entries;
        /* A load factor up to 1 at max_entries; the table grows towards that on demand. */
        size_t limit = SIZE_MAX / sizeof(struct entry *);
        fb->max_buckets = pow2_at_least(fb->max_entries, limit / 2 + 1);
        fb->nbuckets = pow2_at_least(INITIAL_BUCKETS, fb->max_buckets);
        fb->buckets = calloc(fb->nbuckets, sizeof(struct entry *));
        if (!fb->buckets) {
            cbx_fallback_free(fb);
            return cbx_err_set(err, -ENOMEM, "out of memory");
        }
    }
    *out = fb;
    return 0;
}

void cbx_fallback_free(cbx_fallback *fb)
{
    if (!fb)
        return;
    struct entry *e = fb->head;
    while (e) {
        struct entry *next = e->next;
        json_decref(e->value);
        free(e);
        e = next;
    }
    free(fb->buckets);
    json_decref(fb->value);
    pthread_mutex_destroy(&fb->mu);
    free(fb);
}

/* --- the cache (callers hold fb->mu) ---------------------------------------------------- */

static uint64_t key_hash(const char *key, size_t len)
{
    return cbx__fnv1a(CBX__FNV_OFFSET, key, len);
}

static struct entry **chain_slot(cbx_fallback *fb, const char *key, size_t len, uint64_t h)
{
    struct entry **slot = &fb->buckets[h & (fb->nbuckets - 1)];
    while (*slot) {
        struct entry *e = *slot;
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
            break;
        slot = &e->hnext;
    }
    return slot; /* points at the entry, or at the NULL ending the chain */
}

static void list_unlink(cbx_fallback *fb, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        fb->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        fb->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(cbx_fallback *fb, struct entry *e)
{
    e->prev = NULL;
    e->next = fb->head;
    if (fb->head)
        fb->head->prev = e;
    fb->head = e;
    if (!fb->tail)
        fb->tail = e;
}

/* Take e out of the table and the list; the caller releases it (outside the lock). */
static void entry_detach(cbx_fallback *fb, struct entry *e)
{
    struct entry **slot = chain_slot(fb, e->key, e->key_len, e->hash);
    *slot = e->hnext;
    e->hnext = NULL;
    list_unlink(fb, e);
    fb->st.entries--;
}

static void entry_release(struct entry *e)
{
    if (!e)
        return;
    json_decref(e->value);
    free(e);
}

static int entry_expired(const struct entry *e, uint64_t now_ns)
{
    if (e->ttl_ns == UINT64_MAX)
        return 0;
    uint64_t age = now_ns > e->stored_ns ? now_ns - e->stored_ns : 0;
    return age >= e->ttl_ns;
}

/* Double the table when it holds more entries than buckets; on failure keep the old one,
 * which stays correct, only with longer chains. */
static void table_maybe_grow(cbx_fallback *fb)
{
    if (fb->st.entries < fb->nbuckets || fb->nbuckets >= fb->max_buckets)
        return;
    size_t n = fb->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(struct entry *));
    if (!b)
        return;
    for (size_t i = 0; i < fb->nbuckets; i++) {
        struct entry *e = fb->buckets[i];
        while (e) {
            struct entry *next = e->hnext;
            struct entry **slot = &b[e->hash & (n - 1)];
            e->hnext = *slot;
            *slot = e;
            e = next;
        }
    }
    free(fb->buckets);
    fb->buckets = b;
    fb->nbuckets = n;
}

int cbx_fallback_remember_ttl(cbx_fallback *fb, const char *key, const json_t *value,
                              uint64_t ttl_ms)
{
    if (!fb || !key || !value)
        return -EINVAL;
    if (!fb->cache)
        return CBX_EINVAL_CONFIG;

    /* Copy and allocate before taking the lock; free what turned out unneeded after it. */
    size_t len = strlen(key);
    json_t *copy = json_deep_copy(value);
    struct entry *fresh = malloc(sizeof *fresh + len + 1);
    if (!copy || !fresh) {
        json_decref(copy);
        free(fresh);
        return -ENOMEM;
    }
    memcpy(fresh->key, key, len + 1);
    fresh->key_len = len;
    fresh->hash = key_hash(key, len);
    fresh->ttl_ns = ttl_ms ? ttl_ms_to_ns(ttl_ms) : fb->ttl_ns;
    fresh->hnext = fresh->prev = fresh->next = NULL;

    json_t *old_value = NULL;
    struct entry *evicted = NULL;

    pthread_mutex_lock(&fb->mu);
    uint64_t now = cbx_clock_now_ns(fb->clock);
    struct entry **slot = chain_slot(fb, key, len, fresh->hash);
    struct entry *e = *slot;
    if (e) {
        old_value = e->value;
        e->value = copy;
        e->stored_ns = now;
        e->ttl_ns = fresh->ttl_ns;
        list_unlink(fb, e);
        list_push_front(fb, e);
    } else {
        if (fb->st.entries >= fb->max_entries) {
            evicted = fb->tail;
            entry_detach(fb, evicted);
            if (entry_expired(evicted, now))
                fb->st.expirations++;
            else
                fb->st.evictions++;
        }
        e = fresh;
        fresh = NULL;
        e->value = copy;
        e->stored_ns = now;
        slot = &fb->buckets[e->hash & (fb->nbuckets - 1)];
        e->hnext = *slot;
        *slot = e;
        list_push_front(fb, e);
        fb->st.entries++;
        table_maybe_grow(fb);
    }
    fb->st.stores++;
    pthread_mutex_unlock(&fb->mu);

    json_decref(old_value);
    entry_release(evicted);
    free(fresh);
    return 0;
}

int cbx_fallback_remember(cbx_fallback *fb, const char *key, const json_t *value)
{
    return cbx_fallback_remember_ttl(fb, key, value, 0);
}

int cbx_fallback_forget(cbx_fallback *fb, const char *key)
{
    if (!fb || !key)
        return -EINVAL;
    if (!fb->cache)
        return CBX_EINVAL_CONFIG;
    size_t len = strlen(key);
    pthread_mutex_lock(&fb->mu);
    struct entry *e = *chain_slot(fb, key, len, key_hash(key, len));
    if (e)
        entry_detach(fb, e);
    pthread_mutex_unlock(&fb->mu);
    entry_release(e);
    return e ? 0 : -ENOENT;
}

size_t cbx_fallback_purge(cbx_fallback *fb)
{
    if (!fb || !fb->cache)
        return 0;
    struct entry *dead = NULL; /* chained through hnext, released after unlocking */
    size_t n = 0;
    pthread_mutex_lock(&fb->mu);
    uint64_t now = cbx_clock_now_ns(fb->clock);
    struct entry *e = fb->head;
    while (e) {
        struct entry *next = e->next;
        if (entry_expired(e, now)) {
            entry_detach(fb, e);
            e->hnext = dead;
            dead = e;
            n++;
        }
        e = next;
    }
    fb->st.expirations += n;
    pthread_mutex_unlock(&fb->mu);
    while (dead) {
        struct entry *next = dead->hnext;
        entry_release(dead);
        dead = next;
    }
    return n;
}

/* --- asking the sources ----------------------------------------------------------------- */

/* What each source did, for the error detail when none answered. */
struct notes {
    char buf[384];
    size_t len;
};

static void note(struct notes *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct notes *n, const char *fmt, ...)
{
    if (n->len >= sizeof n->buf - 1)
        return;
    if (n->len) {
        int w = snprintf(n->buf + n->len, sizeof n->buf - n->len, "; ");
        n->len += (size_t)w;
        if (n->len >= sizeof n->buf)
            n->len = sizeof n->buf - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(n->buf + n->len, sizeof n->buf - n->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        n->len += (size_t)w;
    if (n->len >= sizeof n->buf)
        n->len = sizeof n->buf - 1;
}

/* 1 and a private deep copy in *hold when the cache has a live entry for key, 0 on a miss,
 * -ENOMEM. The copy is taken under the lock: jansson's reference counts are not safe to touch
 * from several threads at once, so the stored value never leaves the lock. */
static int cache_lookup(cbx_fallback *fb, const char *key, json_t **hold, struct notes *n)
{
    size_t len = strlen(key);
    uint64_t h = key_hash(key, len);
    struct entry *expired = NULL;
    int found = 0;

    pthread_mutex_lock(&fb->mu);
    struct entry *e = *chain_slot(fb, key, len, h);
    if (!e) {
        fb->st.cache_misses++;
        note(n, "cache: miss");
    } else if (entry_expired(e, cbx_clock_now_ns(fb->clock))) {
        entry_detach(fb, e);
        expired = e;
        fb->st.expirations++;
        note(n, "cache: expired");
    } else {
        list_unlink(fb, e);
        list_push_front(fb, e);
        *hold = json_deep_copy(e->value);
        found = *hold ? 1 : -ENOMEM;
    }
    pthread_mutex_unlock(&fb->mu);
    entry_release(expired);
    return found;
}

static void count_result(cbx_fallback *fb, int source)
{
    pthread_mutex_lock(&fb->mu);
    if (source == CBX_FALLBACK_CACHE)
        fb->st.cache_hits++;
    else if (source == CBX_FALLBACK_FUNCTION)
        fb->st.function_hits++;
    else if (source == CBX_FALLBACK_VALUE)
        fb->st.value_hits++;
    else
        fb->st.misses++;
    pthread_mutex_unlock(&fb->mu);
}

/* 0 and a new reference in *res, or the function's failure code (always negative). */
static int call_function(cbx_fallback *fb, const json_t *input, json_t **res, struct notes *n)
{
    json_t *got = NULL;
    int r = fb->fn(input, &got, fb->fn_ud);
    if (r == 0 && got) {
        *res = got;
        return 0;
    }
    json_decref(got);
    if (r == 0) {
        r = CBX_EFAILED;
        note(n, "function: returned 0 but no value");
    } else if (r > 0) {
        note(n, "function: returned positive %d", r);
        r = CBX_EFAILED;
    } else {
        note(n, "function: failed (%s: %s)", cbx_err_name(r), cbx_strerror(r));
    }
    pthread_mutex_lock(&fb->mu);
    fb->st.function_errors++;
    pthread_mutex_unlock(&fb->mu);
    return r;
}

int cbx_fallback_get(cbx_fallback *fb, const char *key, const json_t *input, json_t **out,
                     int *source, cbx_err *err)
{
    if (source)
        *source = CBX_FALLBACK_NONE;
    if (!out)
        return cbx_err_set(err, -EINVAL, "out is NULL");
    *out = NULL;
    if (!fb)
        return cbx_err_set(err, -EINVAL, "fallback is NULL");

    struct notes n = {.len = 0};
    n.buf[0] = '\0';
    int fn_rc = 0;
    for (int i = 0; i < fb->norder; i++) {
        int s = fb->order[i];
        json_t *res = NULL;
        if (s == CBX_FALLBACK_CACHE) {
            json_t *hold = NULL;
            if (!key) {
                note(&n, "cache: no key");
                continue;
            }
            int found = cache_lookup(fb, key, &hold, &n);
            if (found == 0)
                continue;
            res = hold; /* NULL when the copy failed: reported below */
        } else if (s == CBX_FALLBACK_FUNCTION) {
            int r = call_function(fb, input, &res, &n);
            if (r) {
                fn_rc = r;
                continue;
            }
        } else {
            res = json_deep_copy(fb->value);
        }
        if (!res)
            return cbx_err_set(err, -ENOMEM, "cannot copy the %s answer", source_names[s]);
        count_result(fb, s);
        if (source)
            *source = s;
        *out = res;
        return 0;
    }
    count_result(fb, CBX_FALLBACK_NONE);
    int rc = fn_rc ? fn_rc : CBX_ENO_FALLBACK;
    return cbx_err_set(err, rc, "no fallback answered: %s", n.len ? n.buf : "no source");
}

void cbx_fallback_stats_get(cbx_fallback *fb, cbx_fallback_stats *out)
{
    if (!fb || !out)
        return;
    pthread_mutex_lock(&fb->mu);
    *out = fb->st;
    pthread_mutex_unlock(&fb->mu);
}

int cbx_fallback_has_cache(const cbx_fallback *fb)
{
    return fb && fb->cache;
}
