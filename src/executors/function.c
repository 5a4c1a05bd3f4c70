/* In-process C functions as executors: the process-wide table of registered functions, the
 * "function" and "cached_function" types, and the LRU result cache of the latter. */
#include "cbx/function.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "executors/function_internal.h"
#include "runtime/builtins.h"

#define FN_BUCKETS        128
#define CACHE_DEFAULT_CAP 1024
#define CACHE_DEFAULT_TTL "60000"

/* ---- the table of functions ---------------------------------------------------------------- */

typedef struct fn_entry {
    struct fn_entry *next; /* bucket chain */
    char name[64];
    cbx_function_def def;
    cbx_registry *owner;
    json_t **defaults; /* parsed schema defaults (cbx__schema_check) */
    atomic_uint refs;  /* one for the table, one per attempt or validation using it */
} fn_entry;

static pthread_mutex_t fn_mu = PTHREAD_MUTEX_INITIALIZER;
static fn_entry *fn_buckets[FN_BUCKETS];

static size_t bucket_of(const char *name)
{
    return (size_t)(cbx__fnv1a(CBX__FNV_OFFSET, name, strlen(name)) % FN_BUCKETS);
}

static fn_entry **find_slot(const char *name)
{
    fn_entry **pp = &fn_buckets[bucket_of(name)];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void fn_release(fn_entry *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1) {
        cbx__schema_defaults_free(e->defaults, e->def.params);
        free(e);
    }
}

/* The function called name, with a reference taken; NULL when there is none. */
static fn_entry *fn_acquire(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&fn_mu);
    fn_entry *e = *find_slot(name);
    if (e)
        atomic_fetch_add(&e->refs, 1);
    pthread_mutex_unlock(&fn_mu);
    return e;
}

/* The registered name closest to name, for "did you mean"; "" when none is close. */
static void closest_name(const char *name, char *out, size_t cap)
{
    size_t best = 99;
    out[0] = '\0';
    pthread_mutex_lock(&fn_mu);
    for (size_t b = 0; b < FN_BUCKETS; b++)
        for (fn_entry *e = fn_buckets[b]; e; e = e->next) {
            size_t d = cbx__edit_distance(name, e->name);
            if (d < best) {
                best = d;
                snprintf(out, cap, "%s", e->name);
            }
        }
    pthread_mutex_unlock(&fn_mu);
    if (!cbx__close_enough(best, strlen(name)))
        out[0] = '\0';
}

static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' ||
              *s == '-'))
            return 0;
    return 1;
}

static void cache_purge_name(const char *name);

int cbx_function_register(cbx_registry *r, const char *name, const cbx_function_def *def,
                          cbx_err *err)
{
    if (!r)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "no registry given");
    if (!name_ok(name))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, name ? name : "", 0, 0,
                              "bad function name '%s': 1 to 63 of [a-z0-9_.-]", name ? name : "");
    if (!def || (!!def->call + !!def->start + !!def->next) != 1)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, name, 0, 0,
                              "function '%s' needs exactly one of call (blocking), start "
                              "(asynchronous) and next (streaming)",
                              name);
    if ((def->flags & CBX_FUNCTION_INLINE) && !def->call)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, name, 0, 0,
                              "function '%s': CBX_FUNCTION_INLINE is for blocking functions", name);
    if (def->flags & ~CBX_FUNCTION_INLINE)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, name, 0, 0,
                              "function '%s': unknown flags 0x%x", name,
                              def->flags & ~CBX_FUNCTION_INLINE);
    json_t **defaults = NULL;
    int rc = cbx__schema_check(name, def->params, &defaults, err);
    if (rc) {
        if (err && strncmp(err->msg, "executor type", 13) == 0) { /* say what it is */
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "function%s", err->msg + 13);
            snprintf(err->msg, sizeof err->msg, "%s", msg);
        }
        return rc;
    }
    fn_entry *e = calloc(1, sizeof *e);
    if (!e) {
        cbx__schema_defaults_free(defaults, def->params);
        return cbx_err_set(err, -ENOMEM, "out of memory");
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->def = *def;
    e->owner = r;
    e->defaults = defaults;
    atomic_init(&e->refs, 1);
    pthread_mutex_lock(&fn_mu);
    fn_entry **slot = find_slot(name);
    if (*slot) {
        pthread_mutex_unlock(&fn_mu);
        fn_release(e);
        return cbx_err_set_at(err, CBX_EEXISTS, name, 0, 0,
                              "a function called '%s' is already registered", name);
    }
    *slot = e;
    pthread_mutex_unlock(&fn_mu);
    return 0;
}

int cbx_function_unregister(cbx_registry *r, const char *name, cbx_err *err)
{
    pthread_mutex_lock(&fn_mu);
    fn_entry **slot = name ? find_slot(name) : NULL;
    fn_entry *e = slot ? *slot : NULL;
    if (!e || e->owner != r) {
        pthread_mutex_unlock(&fn_mu);
        return cbx_err_set_at(err, -ENOENT, name ? name : "", 0, 0,
                              e ? "function '%s' was registered with another registry"
                                : "no function called '%s' is registered",
                              name ? name : "");
    }
    *slot = e->next;
    pthread_mutex_unlock(&fn_mu);
    cache_purge_name(e->name);
    fn_release(e);
    return 0;
}

size_t cbx_function_unregister_all(cbx_registry *r)
{
    fn_entry *gone = NULL;
    size_t n = 0;
    pthread_mutex_lock(&fn_mu);
    for (size_t b = 0; b < FN_BUCKETS; b++)
        for (fn_entry **pp = &fn_buckets[b]; *pp;) {
            fn_entry *e = *pp;
            if (e->owner == r) {
                *pp = e->next;
                e->next = gone;
                gone = e;
                n++;
            } else {
                pp = &e->next;
            }
        }
    pthread_mutex_unlock(&fn_mu);
    while (gone) {
        fn_entry *e = gone;
        gone = e->next;
        cache_purge_name(e->name);
        fn_release(e);
    }
    return n;
}

int cbx_function_exists(const char *name)
{
    fn_entry *e = fn_acquire(name);
    fn_release(e);
    return e != NULL;
}

/* ---- the cache ------------------------------------------------------------------------------ */

typedef struct cache_entry {
    struct cache_entry *hnext;       /* bucket chain */
    struct cache_entry *prev, *next; /* LRU list: cache.lru.next is the most recent */
    uint64_t hash;
    char *key; /* "name\ncanonical-json" */
    size_t key_len, name_len;
    json_t *outputs;
    double quality;
    uint64_t stored_ns;
} cache_entry;

static struct {
    pthread_mutex_t mu;
    cache_entry **buckets;
    size_t nbuckets; /* a power of two, at least twice the capacity */
    size_t n, cap;
    cache_entry lru; /* sentinel */
    cbx_function_cache_stats st;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void lru_unlink(cache_entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(cache_entry *e)
{
    e->next = cache.lru.next;
    e->prev = &cache.lru;
    cache.lru.next->prev = e;
    cache.lru.next = e;
}

static void cache_entry_free(cache_entry *e)
{
    json_decref(e->outputs);
    free(e->key);
    free(e);
}

/* Unlink e from its bucket and the LRU list (lock held); the caller frees it. */
static void cache_remove(cache_entry *e)
{
    cache_entry **pp = &cache.buckets[e->hash & (cache.nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(e);
    cache.n--;
}

/* Make sure the table exists and has room for the capacity (lock held). 0 or -ENOMEM. */
static int cache_ready(void)
{
    if (!cache.cap)
        cache.cap = CACHE_DEFAULT_CAP;
    if (!cache.lru.next)
        cache.lru.next = cache.lru.prev = &cache.lru;
    size_t want = 16;
    while (want < cache.cap * 2)
        want *= 2;
    if (cache.buckets && cache.nbuckets >= want)
        return 0;
    cache_entry **nb = calloc(want, sizeof(cache_entry *));
    if (!nb)
        return cache.buckets ? 0 : -ENOMEM; /* a smaller table still works */
    for (size_t i = 0; cache.buckets && i < cache.nbuckets; i++)
        for (cache_entry *e = cache.buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = nb[e->hash & (want - 1)];
            nb[e->hash & (want - 1)] = e;
        }
    free(cache.buckets);
    cache.buckets = nb;
    cache.nbuckets = want;
    return 0;
}

static cache_entry *cache_find(uint64_t hash, const char *key, size_t key_len)
{
    for (cache_entry *e = cache.buckets[hash & (cache.nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    return NULL;
}

/* Evict from the cold end until at most cap entries remain (lock held). */
static void cache_trim(void)
{
    cache_entry *e = cache.lru.prev;
    while (cache.n > cache.cap && e != &cache.lru) {
        cache_entry *older = e->prev; /* the next coldest, once e is gone */
        cache_remove(e);
        cache_entry_free(e);
        cache.st.evictions++;
        e = older;
    }
}

static void free_chain(cache_entry *e)
{
    while (e) {
        cache_entry *next = e->hnext;
        cache_entry_free(e);
        e = next;
    }
}

/* A hit younger than ttl_ns: a copy of its outputs, its quality and age. */
static int cache_lookup(uint64_t hash, const char *key, size_t key_len, uint64_t ttl_ns,
                        uint64_t now, json_t **outputs, double *quality, uint64_t *age_ns)
{
    int hit = 0;
    cache_entry *stale = NULL;
    pthread_mutex_lock(&cache.mu);
    if (cache_ready() == 0) {
        cache_entry *e = cache_find(hash, key, key_len);
        uint64_t age = e && now > e->stored_ns ? now - e->stored_ns : 0;
        if (e && ttl_ns > 0 && age < ttl_ns) {
            /* copied under the lock: the stored value is never shared between threads */
            *outputs = e->outputs ? cbx__json_copy(e->outputs) : NULL;
            if (!e->outputs || *outputs) {
                hit = 1;
                *quality = e->quality;
                *age_ns = age;
                lru_unlink(e);
                lru_push_front(e);
            }
        } else if (e && ttl_ns > 0) {
            cache_remove(e);
            stale = e;
            cache.st.expired++;
        }
    }
    if (hit)
        cache.st.hits++;
    else
        cache.st.misses++;
    pthread_mutex_unlock(&cache.mu);
    if (stale)
        cache_entry_free(stale);
    return hit;
}

/* Store (or refresh) an entry; takes key (malloc'd) and outputs (a private copy). */
static void cache_store(uint64_t hash, char *key, size_t key_len, size_t name_len, json_t *outputs,
                        double quality, uint64_t now)
{
    pthread_mutex_lock(&cache.mu);
    if (cache_ready() != 0) {
        pthread_mutex_unlock(&cache.mu);
        free(key);
        json_decref(outputs);
        return;
    }
    cache_entry *e = cache_find(hash, key, key_len);
    if (e) {
        json_decref(e->outputs);
        free(key);
        lru_unlink(e);
    } else {
        e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&cache.mu);
            free(key);
            json_decref(outputs);
            return;
        }
        e->hash = hash;
        e->key = key;
        e->key_len = key_len;
        e->name_len = name_len;
        e->hnext = cache.buckets[hash & (cache.nbuckets - 1)];
        cache.buckets[hash & (cache.nbuckets - 1)] = e;
        cache.n++;
    }
    e->outputs = outputs;
    e->quality = quality;
    e->stored_ns = now;
    lru_push_front(e);
    cache.st.inserts++;
    cache_trim();
    pthread_mutex_unlock(&cache.mu);
}

static void cache_purge_name(const char *name)
{
    size_t len = strlen(name);
    cache_entry *gone = NULL;
    pthread_mutex_lock(&cache.mu);
    for (size_t i = 0; cache.buckets && i < cache.nbuckets; i++)
        for (cache_entry *e = cache.buckets[i], *next; e; e = next) {
            next = e->hnext;
            if (e->name_len == len && memcmp(e->key, name, len) == 0) {
                cache_remove(e);
                e->hnext = gone;
                gone = e;
            }
        }
    pthread_mutex_unlock(&cache.mu);
    free_chain(gone);
}

void cbx_function_cache_stats_get(cbx_function_cache_stats *out)
{
    pthread_mutex_lock(&cache.mu);
    *out = cache.st;
    out->entries = cache.n;
    out->capacity = cache.cap ? cache.cap : CACHE_DEFAULT_CAP;
    pthread_mutex_unlock(&cache.mu);
}

void cbx_function_cache_set_capacity(size_t entries)
{
    pthread_mutex_lock(&cache.mu);
    cache.cap = entries ? entries : CACHE_DEFAULT_CAP;
    if (cache_ready() == 0)
        cache_trim();
    pthread_mutex_unlock(&cache.mu);
}

void cbx_function_cache_clear(void)
{
    cache_entry *gone = NULL;
    pthread_mutex_lock(&cache.mu);
    for (size_t i = 0; cache.buckets && i < cache.nbuckets; i++) {
        for (cache_entry *e = cache.buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = gone;
            gone = e;
        }
        cache.buckets[i] = NULL;
    }
    cache.n = 0;
    if (cache.lru.next)
        cache.lru.next = cache.lru.prev = &cache.lru;
    memset(&cache.st, 0, sizeof cache.st);
    pthread_mutex_unlock(&cache.mu);
    free_chain(gone);
}

int cbx_function_cache_key(const char *name, const json_t *input, uint64_t *hash, char **canonical)
{
    if (canonical)
        *canonical = NULL;
    char *text =
        json_dumps(input ? input : json_null(), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!text)
        return -ENOMEM;
    uint64_t h = cbx__fnv1a(CBX__FNV_OFFSET, name, strlen(name));
    h = cbx__fnv1a(h, "\n", 1);
    *hash = cbx__fnv1a(h, text, strlen(text));
    if (canonical)
        *canonical = text;
    else
        free(text);
    return 0;
}

/* ---- the key of one call --------------------------------------------------------------------- */

/* "name\ncanonical-json", built in place: in the caller's buffer while it fits, then on the heap
 * (a hit needs no allocation for its key; a miss copies it for the cache). */
typedef struct key_buf {
    char *p;
    size_t len, cap;
    int heap, failed;
} key_buf;

static void key_add(key_buf *k, const char *s, size_t n)
{
    if (k->failed)
        return;
    if (k->len + n + 1 > k->cap) {
        size_t cap = k->cap * 2 > k->len + n + 1 ? k->cap * 2 : k->len + n + 1;
        char *q = k->heap ? realloc(k->p, cap) : malloc(cap);
        if (!q) {
            k->failed = 1;
            return;
        }
        if (!k->heap)
            memcpy(q, k->p, k->len);
        k->p = q;
        k->cap = cap;
        k->heap = 1;
    }
    memcpy(k->p + k->len, s, n);
    k->len += n;
    k->p[k->len] = '\0';
}

static int key_dump(const char *buffer, size_t size, void *data)
{
    key_add(data, buffer, size);
    return 0;
}

/* The key of (name, input) into k (which starts on the caller's buffer) and its hash: the same
 * as cbx_function_cache_key's. 0 or -ENOMEM (k then holds nothing to free). */
static int key_build(key_buf *k, const char *name, const json_t *input, uint64_t *hash)
{
    key_add(k, name, strlen(name));
    key_add(k, "\n", 1);
    if (json_dump_callback(input ? input : json_null(), key_dump, k,
                           JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) != 0 ||
        k->failed) {
        if (k->heap)
            free(k->p);
        return -ENOMEM;
    }
    *hash = cbx__fnv1a(CBX__FNV_OFFSET, k->p, k->len);
    return 0;
}

/* ---- attempts ------------------------------------------------------------------------------- */

typedef struct fn_task {
    uv_work_t work;
    cbx_task *t;
    fn_entry *fn;
    const json_t *input; /* what the function gets */
    json_t *input_owned; /* the normalized input, when the function has a schema */
    json_t *output;      /* a blocking call's result */
    json_t *stream_meta; /* a streaming call's metadata, or NULL */
    cbx_outcome outcome;
    int queued; /* the blocking call is on the thread pool */
    char error[256];
    /* cached_function */
    int cached, hit;
    uint64_t hash, ttl_ns;
    char *key; /* "name\ncanonical", handed to the cache on a successful miss */
    size_t key_len, name_len;
} fn_task;

static const cbx_executor_type function_type, cached_function_type;

static int is_function_task(const cbx_task *t)
{
    const cbx_executor_type *type = cbx_task_type(t);
    return type == &function_type || type == &cached_function_type;
}

void cbx_function_error(cbx_task *t, const char *fmt, ...)
{
    if (!t || !is_function_task(t))
        return;
    fn_task *s = cbx_task_state(t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
}

/* Report a blocking call's result. */
static void finish_call(fn_task *s, cbx_outcome k, json_t *output)
{
    json_t *meta = s->stream_meta;
    s->stream_meta = NULL;
    if (k == CBX_OUTCOME_SUCCESS) {
        cbx_task_done(s->t, k, output, meta, NULL);
        return;
    }
    json_decref(meta);
    json_decref(output);
    if (s->error[0])
        cbx_task_done(s->t, k, NULL, NULL, "%s", s->error);
    else
        cbx_task_done(s->t, k, NULL, NULL, "function '%s' ended with %s", s->fn->name,
                      cbx_outcome_name(k));
}

static void work_call(uv_work_t *w)
{
    fn_task *s = w->data;
    json_t *out = NULL;
    if (s->fn->def.next)
        s->outcome = cbx__function_stream(&s->fn->def, s->input, &out, &s->stream_meta, s->t);
    else
        s->outcome = s->fn->def.call(s->input, &out, s->t, s->fn->def.ud);
    s->output = out;
}

static void work_called(uv_work_t *w, int status)
{
    fn_task *s = w->data;
    s->queued = 0;
    if (status == UV_ECANCELED) {
        cbx_task_done(s->t, CBX_OUTCOME_TIMEOUT, NULL, NULL,
                      "function '%s' was stopped before it ran", s->fn->name);
        return;
    }
    if (cbx_task_cancelled(s->t)) { /* too late: nobody waits for this result any more */
        json_decref(s->output);
        s->output = NULL;
        cbx_task_done(s->t, CBX_OUTCOME_TIMEOUT, NULL,
                      json_pack("{s:s, s:b}", "function", s->fn->name, "late_result_discarded", 1),
                      "function '%s' returned after its attempt was stopped; result discarded",
                      s->fn->name);
        return;
    }
    json_t *out = s->output;
    s->output = NULL;
    finish_call(s, s->outcome, out);
}

static int invoke(fn_task *s)
{
    const cbx_function_def *d = &s->fn->def;
    if (d->start)
        return d->start(s->t, s->input, d->ud);
    if (d->flags & CBX_FUNCTION_INLINE) {
        json_t *out = NULL;
        cbx_outcome k = d->call(s->input, &out, s->t, d->ud);
        finish_call(s, k, out);
        return 0;
    }
    s->work.data = s;
    int r = uv_queue_work(cbx_task_loop(s->t), &s->work, work_call, work_called);
    if (r < 0)
        return -ENOMEM;
    s->queued = 1;
    return 0;
}

/* Look the function up and prepare its input. 0, or the attempt has been reported failed. */
static int prepare(cbx_task *t, fn_task *s)
{
    s->t = t;
    const json_t *p = cbx_task_params(t);
    const char *name = json_string_value(json_object_get(p, "name"));
    s->fn = fn_acquire(name);
    if (!s->fn) {
        cbx_task_done(t, CBX_OUTCOME_ERROR, NULL, NULL, "no function called '%s' is registered",
                      name ? name : "");
        return -1;
    }
    const json_t *input = json_object_get(p, "input");
    if (!s->fn->def.params) {
        s->input = input ? input : json_null();
        return 0;
    }
    json_t *empty = input ? NULL : json_object();
    cbx_diag d = {0};
    int rc = cbx__schema_validate(s->fn->def.params, s->fn->defaults, input ? input : empty,
                                  &s->input_owned, &d);
    json_decref(empty);
    if (rc) {
        cbx_err first;
        cbx_err_clear(&first);
        cbx_diag_first(&d, &first);
        cbx_task_done(t, CBX_OUTCOME_ERROR, NULL, NULL, "input.%s: %s", first.where, first.msg);
        cbx_diag_clear(&d);
        return -1;
    }
    cbx_diag_clear(&d);
    s->input = s->input_owned;
    return 0;
}

static int function_start(cbx_task *t)
{
    fn_task *s = cbx_task_state(t);
    if (prepare(t, s))
        return 0;
    return invoke(s);
}

static int cached_function_start(cbx_task *t)
{
    fn_task *s = cbx_task_state(t);
    s->cached = 1;
    if (prepare(t, s))
        return 0;
    const json_t *p = cbx_task_params(t);
    s->ttl_ns = (uint64_t)json_integer_value(json_object_get(p, "ttl_ms")) * CBX_NS_PER_MS;
    char local[256];
    key_buf k = {.p = local, .cap = sizeof local};
    if (key_build(&k, s->fn->name, s->input, &s->hash) != 0)
        return -ENOMEM;
    s->name_len = strlen(s->fn->name);
    s->key_len = k.len;

    json_t *outputs = NULL;
    double quality = 1.0;
    uint64_t age = 0;
    if (cache_lookup(s->hash, k.p, k.len, s->ttl_ns, cbx_clock_now_ns(cbx_task_clock(t)), &outputs,
                     &quality, &age)) {
        if (k.heap)
            free(k.p);
        s->hit = 1;
        cbx_task_set_quality(t, quality);
        json_t *meta = json_object(); /* by hand: json_pack's parsing shows in profiles */
        if (meta) {
            json_object_set_new_nocheck(meta, "cache_hit", json_true());
            json_object_set_new_nocheck(meta, "cache_age_ms",
                                        json_real((double)age / (double)CBX_NS_PER_MS));
        }
        cbx_task_done(t, CBX_OUTCOME_SUCCESS, outputs, meta, NULL);
        return 0;
    }
    /* a miss: the key goes to the cache with the result */
    s->key = k.heap ? k.p : malloc(k.len + 1);
    if (!s->key)
        return -ENOMEM;
    if (!k.heap)
        memcpy(s->key, k.p, k.len + 1);
    return invoke(s);
}

static void function_cancel(cbx_task *t)
{
    fn_task *s = cbx_task_state(t);
    if (s->queued)
        uv_cancel((uv_req_t *)&s->work); /* fails (harmlessly) once the call is running */
    if (s->fn && s->fn->def.cancel)
        s->fn->def.cancel(t, s->fn->def.ud);
}

/* Every attempt ends here: cache a fresh success, then release what the attempt held. */
static void function_after(cbx_task *t, cbx_task_result *r)
{
    fn_task *s = cbx_task_state(t);
    if (s->cached && s->fn && !s->hit) {
        if (r->outcome == CBX_OUTCOME_SUCCESS && !cbx_task_cancelled(t) && s->key) {
            json_t *copy = r->outputs ? cbx__json_copy(r->outputs) : NULL;
            if (copy || !r->outputs) {
                cache_store(s->hash, s->key, s->key_len, s->name_len, copy, r->quality,
                            cbx_clock_now_ns(cbx_task_clock(t)));
                s->key = NULL;
            }
        }
        if (!r->metadata)
            r->metadata = json_object();
        if (json_is_object(r->metadata))
            json_object_set_new(r->metadata, "cache_hit", json_false());
    }
    free(s->key);
    s->key = NULL;
    json_decref(s->input_owned);
    json_decref(s->stream_meta);
    s->stream_meta = NULL;
    s->input_owned = NULL;
    fn_release(s->fn);
    s->fn = NULL;
}

/* At submission: the function exists, and its input fits its schema. */
static int function_validate(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    (void)type;
    const char *name = json_string_value(json_object_get(params, "name"));
    fn_entry *e = fn_acquire(name);
    if (!e) {
        char near[64];
        closest_name(name ? name : "", near, sizeof near);
        if (near[0])
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "name", 0, 0,
                                  "no function called '%s' is registered; did you mean '%s'?",
                                  name ? name : "", near);
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "name", 0, 0,
                              "no function called '%s' is registered", name ? name : "");
    }
    int rc = 0;
    if (e->def.params) {
        const json_t *input = json_object_get(params, "input");
        json_t *empty = input ? NULL : json_object();
        cbx_diag d = {0};
        if (cbx__schema_validate(e->def.params, e->defaults, input ? input : empty, NULL, &d)) {
            /* every problem, on one line */
            char msg[sizeof err->msg] = "";
            size_t len = 0;
            for (size_t i = 0; i < d.n && len < sizeof msg; i++)
                len += (size_t)snprintf(msg + len, sizeof msg - len, "%sinput%s%s: %s",
                                        i ? "; " : "", d.items[i].where[0] ? "." : "",
                                        d.items[i].where, d.items[i].msg);
            char where[sizeof err->where];
            snprintf(where, sizeof where, "input%s%.200s", d.n && d.items[0].where[0] ? "." : "",
                     d.n ? d.items[0].where : "");
            cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0, "function '%s': %s", e->name,
                           msg[0] ? msg : "input does not fit the schema");
            rc = CBX_EINVAL_CONFIG;
        }
        cbx_diag_clear(&d);
        json_decref(empty);
    }
    fn_release(e);
    return rc;
}

/* ---- the types ------------------------------------------------------------------------------ */

static const cbx_param function_params[] = {
    {.name = "name",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .description = "the registered function to call"},
    {.name = "input",
     .type = CBX_PARAM_ANY,
     .description = "the function's input (checked against its schema, if it has one)"},
    {.name = NULL},
};

static const cbx_param cached_function_params[] = {
    {.name = "name",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .description = "the registered function to call"},
    {.name = "input",
     .type = CBX_PARAM_ANY,
     .description = "the function's input; with the name, the cache key"},
    {.name = "ttl_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = CACHE_DEFAULT_TTL,
     .has_min = 1,
     .min = 0,
     .description = "how old a cached result may be, in ms (0: always call)"},
    {.name = NULL},
};

static const cbx_executor_type function_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "function",
    .summary = "Call an in-process C function registered with cbx_function_register",
    .params = function_params,
    .task_size = sizeof(fn_task),
    .validate = function_validate,
    .after = function_after,
    .start = function_start,
    .cancel = function_cancel,
};

static const cbx_executor_type cached_function_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "cached_function",
    .summary = "Call a registered C function, reusing its result for the same input within a TTL",
    .params = cached_function_params,
    .task_size = sizeof(fn_task),
    .validate = function_validate,
    .after = function_after,
    .start = cached_function_start,
    .cancel = function_cancel,
};

const cbx_executor_type *cbx__function_type(void)
{
    return &function_type;
}

const cbx_executor_type *cbx__cached_function_type(void)
{
    return &cached_function_type;
}

/* ---- a function asked directly (a policy's fallback.function) ------------------------------ */

int cbx__function_kind(const char *name)
{
    fn_entry *e = fn_acquire(name);
    if (!e)
        return -ENOENT;
    int blocking = e->def.call != NULL;
    fn_release(e);
    return blocking;
}

int cbx__function_call_now(const char *name, const json_t *input, json_t **out, cbx_err *err)
{
    *out = NULL;
    fn_entry *e = fn_acquire(name);
    if (!e)
        return cbx_err_set(err, -ENOENT, "no function called '%s' is registered", name);
    if (!e->def.call) {
        fn_release(e);
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "function '%s' is asynchronous", name);
    }
    json_t *owned = NULL;
    const json_t *in = input ? input : json_null();
    if (e->def.params) {
        json_t *empty = json_is_object(input) ? NULL : json_object();
        cbx_diag d = {0};
        int rc =
            cbx__schema_validate(e->def.params, e->defaults, empty ? empty : input, &owned, &d);
        json_decref(empty);
        if (rc) {
            cbx_err first;
            cbx_err_clear(&first);
            cbx_diag_first(&d, &first);
            cbx_diag_clear(&d);
            fn_release(e);
            return cbx_err_set(err, CBX_EFAILED, "input.%s: %s", first.where, first.msg);
        }
        cbx_diag_clear(&d);
        in = owned;
    }
    json_t *res = NULL;
    cbx_outcome k = e->def.call(in, &res, NULL, e->def.ud);
    json_decref(owned);
    int r = 0;
    if (k == CBX_OUTCOME_SUCCESS && res) {
        *out = res;
    } else {
        json_decref(res);
        r = cbx_err_set(err, CBX_EFAILED, "function '%s' ended with %s", name,
                        k == CBX_OUTCOME_SUCCESS ? "no output" : cbx_outcome_name(k));
    }
    fn_release(e);
    return r;
}
