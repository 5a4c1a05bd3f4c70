/* The memory breaker store: a map of breakers in this process, behind the interface of
 * breaker_store_internal.h. */
#include "runtime/breaker_store_internal.h"

#include "core/text.h"
#include "resilience/breaker_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_entry {
    struct mem_entry *next;
    _Atomic uint32_t refs; /* the map holds one while the entry is in it */
    uint64_t hash;
    cbx_breaker *b;
    cbx_breaker_opts opts; /* what b was made from */
    char name[];
} mem_entry;

typedef struct mem_store {
    cbx_breaker_store base;
    pthread_mutex_t mu;
    mem_entry **slots;
    size_t nslots, count;
    uint32_t gen_seed;
} mem_store;

static void mem_put(mem_entry *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
        cbx_breaker_free(e->b);
        free(e);
    }
}

static mem_entry **mem_find(mem_store *m, const char *name, uint64_t h)
{
    mem_entry **pp = &m->slots[h % m->nslots];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void mem_grow(mem_store *m)
{
    size_t n = m->nslots * 2;
    mem_entry **slots = calloc(n, sizeof *slots);
    if (!slots)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < m->nslots; i++) {
        for (mem_entry *e = m->slots[i], *next; e; e = next) {
            next = e->next;
            e->next = slots[e->hash % n];
            slots[e->hash % n] = e;
        }
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = n;
}

/* The entry for name with a reference taken, created from o when missing and create is set. */
static int mem_get(mem_store *m, const char *name, const cbx_breaker_opts *o, int create,
                   mem_entry **out, cbx_err *err)
{
    size_t len = strlen(name);
    uint64_t h = cbx__bstore_name_hash(name, len);
    pthread_mutex_lock(&m->mu);
    mem_entry **pp = mem_find(m, name, h);
    if (*pp) {
        *out = *pp;
        atomic_fetch_add_explicit(&(*out)->refs, 1, memory_order_relaxed);
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    int r = -ENOENT;
    if (!create)
        goto out;
    mem_entry *e = calloc(1, sizeof *e + len + 1);
    if (!e) {
        r = cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
        goto out;
    }
    memcpy(e->name, name, len + 1);
    e->hash = h;
    m->gen_seed += 1u << 16;
    r = cbx__bstore_breaker_make(&e->b, e->name, o, m->gen_seed, err);
    if (r) {
        free(e);
        goto out;
    }
    if (o)
        e->opts = *o;
    else
        cbx_breaker_opts_default(&e->opts);
    e->opts.name = e->name;
    atomic_init(&e->refs, 2); /* the map's and the caller's */
    *pp = e;
    if (++m->count > m->nslots)
        mem_grow(m);
    *out = e;
out:
    pthread_mutex_unlock(&m->mu);
    return r;
}

static int mem_use(cbx_breaker_store *s, const char *name, const cbx_breaker_opts *o, int create,
                   uint64_t deadline_ns, use_fn fn, void *ud, cbx_err *err)
{
    (void)deadline_ns;
    mem_entry *e = NULL;
    int r = mem_get((mem_store *)s, name, o, create, &e, err);
    if (r)
        return r;
    r = fn(e->b, ud);
    mem_put(e);
    return r;
}

static int mem_peek(cbx_breaker_store *s, const char *name, use_fn fn, void *ud)
{
    return mem_use(s, name, NULL, 0, 0, fn, ud, NULL);
}

static int mem_forget(cbx_breaker_store *s, const char *name)
{
    mem_store *m = (mem_store *)s;
    pthread_mutex_lock(&m->mu);
    mem_entry **pp = mem_find(m, name, cbx__bstore_name_hash(name, strlen(name)));
    mem_entry *e = *pp;
    if (e) {
        *pp = e->next;
        m->count--;
    }
    pthread_mutex_unlock(&m->mu);
    if (!e)
        return -ENOENT;
    mem_put(e);
    return 0;
}

static int mem_names(cbx_breaker_store *s, char ***out, size_t *n, cbx_err *err)
{
    mem_store *m = (mem_store *)s;
    pthread_mutex_lock(&m->mu);
    char **v = calloc(m->count ? m->count : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; v && i < m->nslots; i++)
        for (mem_entry *e = m->slots[i]; e; e = e->next)
            if (!(v[k++] = strdup(e->name)))
                goto oom;
    pthread_mutex_unlock(&m->mu);
    if (!v)
        return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    qsort(v, k, sizeof *v, cbx__cmp_strings);
    *out = v;
    *n = k;
    return 0;
oom:
    pthread_mutex_unlock(&m->mu);
    cbx__bstore_free_names(v, k);
    return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
}

static void mem_destroy(cbx_breaker_store *s)
{
    mem_store *m = (mem_store *)s;
    for (size_t i = 0; i < m->nslots; i++) {
        for (mem_entry *e = m->slots[i], *next; e; e = next) {
            next = e->next;
            mem_put(e);
        }
    }
    free(m->slots);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int mem_get_opts(cbx_breaker_store *s, const char *name, cbx_breaker_opts *out)
{
    mem_entry *e = NULL;
    int r = mem_get((mem_store *)s, name, NULL, 0, &e, NULL);
    if (r)
        return r;
    *out = e->opts;
    out->name = NULL;
    mem_put(e);
    return 0;
}

/* A new entry from o in place of the old one, which its current users finish with; the state
 * is carried over when the shape allows. */
static int mem_set_opts(cbx_breaker_store *s, const char *name, const cbx_breaker_opts *o,
                        cbx_err *err)
{
    mem_store *m = (mem_store *)s;
    size_t len = strlen(name);
    mem_entry *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    memcpy(e->name, name, len + 1);
    e->hash = cbx__bstore_name_hash(name, len);
    pthread_mutex_lock(&m->mu);
    m->gen_seed += 1u << 16;
    int r = cbx__bstore_breaker_make(&e->b, e->name, o, m->gen_seed, err);
    if (r) {
        pthread_mutex_unlock(&m->mu);
        free(e);
        return r;
    }
    e->opts = *o;
    e->opts.name = e->name;
    atomic_init(&e->refs, 1);
    mem_entry **pp = mem_find(m, name, e->hash);
    mem_entry *old = *pp;
    if (old) {
        size_t n = cbx__breaker_state_size(old->b);
        uint8_t *buf = malloc(n);
        int w = buf ? cbx__breaker_state_save(old->b, buf, n) : -ENOMEM;
        if (w > 0)
            (void)cbx__breaker_state_load(e->b, buf, (size_t)w); /* another shape: afresh */
        free(buf);
        e->next = old->next;
    } else {
        m->count++;
    }
    *pp = e;
    if (!old && m->count > m->nslots)
        mem_grow(m);
    pthread_mutex_unlock(&m->mu);
    if (old)
        mem_put(old);
    return 0;
}

static const store_ops mem_ops = {mem_use,     mem_peek,     mem_forget,   NULL, mem_names,
                                  mem_destroy, mem_get_opts, mem_set_opts, NULL, NULL};

int cbx_breaker_store_memory_new(cbx_breaker_store **out, cbx_err *err)
{
    *out = NULL;
    mem_store *m = calloc(1, sizeof *m);
    if (!m || !(m->slots = calloc(16, sizeof *m->slots))) {
        free(m);
        return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    }
    m->nslots = 16;
    int r = pthread_mutex_init(&m->mu, NULL);
    if (r) {
        free(m->slots);
        free(m);
        return cbx_err_set(err, -r, "breaker store: mutex: %s", strerror(r));
    }
    m->base.ops = &mem_ops;
    *out = &m->base;
    return 0;
}
