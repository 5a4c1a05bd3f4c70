/* The host breaker store: named breakers shared by every process on the host, as a file of
 * records each holding one breaker's saved state, behind the interface of
 * breaker_store_internal.h. (How the file is made, opened and allocated, and the bounded lock
 * waits: breaker_store_file.c.)
 *
 * The host store file (see docs/breaker-store.md for the figures behind the choices):
 *
 *   [0, 4096)        header: magic, version, header size, record size, capacity, boot id,
 *                    the bitmap of records whose blocks are allocated
 *   then capacity records of record_size bytes each:
 *     [0, 512)       record header: state (empty / used / forgotten), name and its hash,
 *                    seq (bumped by every save), blob length and checksum, the breaker's
 *                    options (which every process uses), the kind (breaker or rate limiter)
 *     [512, ...)     a breaker's state as cbx__breaker_state_save wrote it, or a rate
 *                    limiter's arrival time (see host_limiter_word)
 *
 * Names are found by linear probing from their hash. A record is locked with an open file
 * description lock (F_OFD_SETLK, polled until a deadline) on its first byte, together with a mutex
 * per record inside this process (OFD locks do not exclude threads sharing the descriptor); the
 * table (byte 0) is locked the same way, only to add or forget a name. An operation locks the
 * record, loads the blob into this process's breaker for that name (skipped when the record has not
 * changed since this process last wrote or read it), runs, saves the state back if it changed, and
 * unlocks. The kernel drops the locks of a process that dies; a record torn by a writer killed
 * mid-save fails its checksum and that breaker starts afresh.
 */
#define _GNU_SOURCE
#include "runtime/breaker_store_internal.h"
#include "cbx/state_dir.h"

#include "core/text.h"
#include "resilience/breaker_internal.h"
#include "runtime/breaker_store_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_BYTES CBX_BREAKER_NAME_MAX

/* ---- host store: the file --------------------------------------------------------------- */

#define REC_HEADER 512u

#define REC_EMPTY     0u
#define REC_USED      1u
#define REC_FORGOTTEN 2u

/* The numeric options of the last writer: how another process (cbx breaker show) rebuilds
 * the breaker when it has no options of its own. */
typedef struct stored_opts {
    uint64_t tw_length_ns, slow_call_ns, open_ns, open_max_ns, probe_lease_ns;
    double cw_failure_rate, cw_slow_rate, tw_failure_rate, tw_slow_rate, quality_threshold,
        open_multiplier;
    uint32_t consecutive_failures, cw_calls, cw_min_calls, tw_buckets, tw_min_calls, failure_kinds,
        half_open_probes, close_after;
} stored_opts;

typedef struct host_record {
    _Atomic uint32_t state;
    uint32_t name_len;
    _Atomic uint64_t hash;
    _Atomic uint64_t seq; /* bumped by every save and by forget; never reset */
    uint32_t blob_len;
    uint32_t has_opts;
    uint64_t blob_sum;
    stored_opts opts;
    char name[NAME_MAX_BYTES + 1];
    /* version 3: what the record holds (zero in a version 2 file: a breaker) */
    uint32_t kind;
} host_record;

#define KIND_BREAKER 0u
#define KIND_LIMITER 1u

/* A limiter record's blob: the GCRA arrival time, updated by compare-and-swap in the mapping
 * (cbx_ratelimit_opts.shared_tat), and its creator's options (informational). */
typedef struct limiter_blob {
    _Atomic uint64_t tat_ns;
    uint64_t interval_ns;
    uint32_t burst;
    uint32_t pad;
} limiter_blob;

_Static_assert(sizeof(host_record) <= REC_HEADER, "record header too large");
_Static_assert(offsetof(host_record, kind) == 364, "the kind field moved (docs/breaker-store.md)");
_Static_assert(HOST_ALLOC_AT + HOST_CAPACITY / 8 <= HOST_HEADER_SIZE, "file header too large");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "shared-memory atomics must be lock-free");

/* An outcome whose record stayed locked past its deadline, to record later. */
typedef struct pending_record {
    cbx_permit p;
    cbx_outcome k;
    int64_t latency_ns;
} pending_record;

/* This process's copy of one named breaker. */
typedef struct host_entry {
    struct host_entry *next;
    uint64_t hash;
    pthread_mutex_t mu;    /* held across a whole operation on the name */
    cbx_breaker *b;        /* NULL until first use */
    cbx_breaker_opts opts; /* what b was made from */
    int user_opts;         /* opts came from a caller, not from the record or the defaults */
    int pristine;          /* b has not been used since it was made */
    int dirty;             /* the record does not hold b's state and options */
    uint32_t slot;         /* the record b was last in step with */
    uint64_t seq;          /* that record's seq then; 0 = never */
    uint8_t *scratch;      /* cbx__breaker_state_size(b) bytes */
    size_t scratch_len;
    pending_record *pending; /* outcomes not recorded yet, oldest first */
    size_t npending, pending_cap;
    char name[];
} host_entry;

typedef struct host_store {
    cbx_breaker_store base;
    char *path;
    int fd;
    unsigned fork_gen;
    uint8_t *map;
    size_t map_len;
    host_geom geom;
    uint32_t capacity, record_size, header_size;
    pthread_mutex_t mu;       /* entries, fd replacement */
    pthread_mutex_t table_mu; /* with the lock on byte 0: adding and forgetting names */
    pthread_mutex_t *slot_mu; /* with the lock on each record's first byte */
    host_entry **entries;     /* capacity chains */
} host_store;

/* After fork the child shares the parent's open file description, hence its locks: a store
 * used in the child first reopens the file to get a description of its own. */
static atomic_uint fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void fork_hook(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

/* The in-process half of a lock, with the same deadline as the file half (0: only try). The
 * wait is pthread_mutex_timedlock's, on CLOCK_REALTIME: ThreadSanitizer (GCC 12) does not know
 * pthread_mutex_clocklock, and a jump of the wall clock only moves an in-process wait that is
 * bounded anyway. */
static int mutex_lock_by(pthread_mutex_t *mu, uint64_t deadline_ns)
{
    if (deadline_ns == UINT64_MAX)
        return -pthread_mutex_lock(mu);
    if (pthread_mutex_trylock(mu) == 0)
        return 0;
    uint64_t now = cbx_clock_now_ns(NULL);
    if (deadline_ns <= now)
        return -EAGAIN;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t at = (uint64_t)ts.tv_sec * CBX_NS_PER_S + (uint64_t)ts.tv_nsec + (deadline_ns - now);
    ts.tv_sec = (time_t)(at / CBX_NS_PER_S);
    ts.tv_nsec = (long)(at % CBX_NS_PER_S);
    int e = pthread_mutex_timedlock(mu, &ts);
    return e == ETIMEDOUT ? -EAGAIN : -e;
}

static host_record *record_at(host_store *s, uint32_t k)
{
    return (host_record *)(s->map + s->header_size + (size_t)k * s->record_size);
}

static uint8_t *blob_at(host_store *s, uint32_t k)
{
    return (uint8_t *)record_at(s, k) + REC_HEADER;
}

static size_t blob_cap(const host_store *s)
{
    return s->record_size - REC_HEADER;
}

static off_t record_off(host_store *s, uint32_t k)
{
    return (off_t)s->header_size + (off_t)k * s->record_size;
}

/* Lock record k, waiting no later than deadline_ns: 0, -EAGAIN or -errno. */
static int slot_lock(host_store *s, uint32_t k, uint64_t deadline_ns)
{
    int r = mutex_lock_by(&s->slot_mu[k], deadline_ns);
    if (r)
        return r;
    r = cbx__bsf_lock(s->fd, record_off(s, k), deadline_ns);
    if (r)
        pthread_mutex_unlock(&s->slot_mu[k]);
    return r;
}

static void slot_unlock(host_store *s, uint32_t k)
{
    cbx__bsf_unlock(s->fd, record_off(s, k));
    pthread_mutex_unlock(&s->slot_mu[k]);
}

static int table_lock(host_store *s, uint64_t deadline_ns)
{
    int r = mutex_lock_by(&s->table_mu, deadline_ns);
    if (r)
        return r;
    r = cbx__bsf_lock(s->fd, 0, deadline_ns);
    if (r)
        pthread_mutex_unlock(&s->table_mu);
    return r;
}

static void table_unlock(host_store *s)
{
    cbx__bsf_unlock(s->fd, 0);
    pthread_mutex_unlock(&s->table_mu);
}

/* The message for a lock not had by the deadline, or another lock error. */
static int lock_fail(host_store *s, const char *name, int r, cbx_err *err)
{
    if (r == -EAGAIN)
        return cbx_err_set_at(err, r, s->path, 0, 0,
                              "breaker store %s: breaker '%s' stayed locked by another process "
                              "until the deadline",
                              s->path, name);
    return cbx_err_set_at(err, r, s->path, 0, 0, "breaker store %s: lock: %s", s->path,
                          strerror(-r));
}

static uint64_t blob_sum(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

/* ---- host store: names ------------------------------------------------------------------- */

/* The slot holding name, locked; -ENOENT when it is not in the table, -EAGAIN when its record
 * stayed locked until deadline_ns. A record whose blocks were never allocated was never used:
 * it ends the probe like an empty one, untouched (touching it could need a block the file
 * system no longer has). */
static int find_locked(host_store *s, const char *name, size_t len, uint64_t h, uint32_t *slot,
                       uint64_t deadline_ns, uint32_t kind)
{
    uint32_t start = (uint32_t)(h % s->capacity);
    for (uint32_t i = 0; i < s->capacity; i++) {
        uint32_t k = (start + i) % s->capacity;
        if (!cbx__bsf_allocated(s->map, k))
            return -ENOENT;
        host_record *rec = record_at(s, k);
        uint32_t st = atomic_load_explicit(&rec->state, memory_order_acquire);
        if (st == REC_EMPTY)
            return -ENOENT;
        if (st != REC_USED || atomic_load_explicit(&rec->hash, memory_order_relaxed) != h)
            continue;
        int r = slot_lock(s, k, deadline_ns);
        if (r)
            return r;
        if (atomic_load_explicit(&rec->state, memory_order_acquire) == REC_USED &&
            rec->kind == kind && rec->name_len == len && memcmp(rec->name, name, len) == 0) {
            *slot = k;
            return 0;
        }
        slot_unlock(s, k);
    }
    return -ENOENT;
}

/* Find name, adding it when missing; the slot comes back locked. */
static int insert_locked(host_store *s, const char *name, size_t len, uint64_t h, uint32_t *slot,
                         uint64_t deadline_ns, uint32_t kind, cbx_err *err)
{
    int r = table_lock(s, deadline_ns);
    if (r)
        return lock_fail(s, name, r, err);
    r = find_locked(s, name, len, h, slot, deadline_ns, kind);
    if (r != -ENOENT) {
        if (r)
            lock_fail(s, name, r, err);
        goto out;
    }
    uint32_t start = (uint32_t)(h % s->capacity), k = 0;
    r = -ENOSPC;
    for (uint32_t i = 0; i < s->capacity; i++) {
        k = (start + i) % s->capacity;
        if (!cbx__bsf_allocated(s->map, k) ||
            atomic_load_explicit(&record_at(s, k)->state, memory_order_acquire) != REC_USED) {
            r = 0;
            break;
        }
    }
    if (r) {
        cbx_err_set_at(err, r, s->path, 0, 0, "breaker store %s is full (%u names); forget some",
                       s->path, s->capacity);
        goto out;
    }
    /* The record's blocks first: on a full file system this is a clean -ENOSPC, where a first
     * write into a hole of the mapping would be a SIGBUS. */
    r = cbx__bsf_allocate(s->fd, s->map, &s->geom, k);
    if (r) {
        if (r == -ENOSPC)
            cbx_err_set_at(err, r, s->path, 0, 0,
                           "breaker store %s: no space left on its file system to add breaker "
                           "'%s' (%u KiB): free some space, or run without the shared breaker",
                           s->path, name, s->record_size / 1024);
        else
            cbx_err_set_at(err, r, s->path, 0, 0, "breaker store %s: allocate: %s", s->path,
                           strerror(-r));
        goto out;
    }
    r = slot_lock(s, k, deadline_ns);
    if (r) {
        lock_fail(s, name, r, err);
        goto out;
    }
    host_record *rec = record_at(s, k);
    memset(rec->name, 0, sizeof rec->name);
    memcpy(rec->name, name, len);
    rec->name_len = (uint32_t)len;
    rec->blob_len = 0;
    rec->has_opts = 0;
    rec->kind = kind;
    atomic_store_explicit(&rec->hash, h, memory_order_relaxed);
    atomic_store_explicit(&rec->state, REC_USED, memory_order_release);
    atomic_fetch_add_explicit(&((host_header *)s->map)->names, 1, memory_order_relaxed);
    *slot = k;
out:
    table_unlock(s);
    return r;
}

/* ---- host store: this process's copies ----------------------------------------------------- */

static void opts_store(stored_opts *d, const cbx_breaker_opts *o)
{
    memset(d, 0, sizeof *d);
    d->consecutive_failures = o->consecutive_failures;
    d->cw_calls = o->count_window.calls;
    d->cw_min_calls = o->count_window.min_calls;
    d->cw_failure_rate = o->count_window.failure_rate;
    d->cw_slow_rate = o->count_window.slow_rate;
    d->tw_length_ns = o->time_window.length_ns;
    d->tw_buckets = o->time_window.buckets;
    d->tw_min_calls = o->time_window.min_calls;
    d->tw_failure_rate = o->time_window.failure_rate;
    d->tw_slow_rate = o->time_window.slow_rate;
    d->slow_call_ns = o->slow_call_ns;
    d->quality_threshold = o->quality_threshold;
    d->failure_kinds = o->failure_kinds;
    d->open_ns = o->open_ns;
    d->open_multiplier = o->open_multiplier;
    d->open_max_ns = o->open_max_ns;
    d->half_open_probes = o->half_open_probes;
    d->close_after = o->close_after;
    d->probe_lease_ns = o->probe_lease_ns;
}

/* The stored numbers written over *o (whose clock and event callback are kept). */
static void opts_load(cbx_breaker_opts *o, const stored_opts *d)
{
    o->consecutive_failures = d->consecutive_failures;
    o->count_window.calls = d->cw_calls;
    o->count_window.min_calls = d->cw_min_calls;
    o->count_window.failure_rate = d->cw_failure_rate;
    o->count_window.slow_rate = d->cw_slow_rate;
    o->time_window.length_ns = d->tw_length_ns;
    o->time_window.buckets = d->tw_buckets;
    o->time_window.min_calls = d->tw_min_calls;
    o->time_window.failure_rate = d->tw_failure_rate;
    o->time_window.slow_rate = d->tw_slow_rate;
    o->slow_call_ns = d->slow_call_ns;
    o->quality_threshold = d->quality_threshold;
    o->failure_kinds = d->failure_kinds;
    o->open_ns = d->open_ns;
    o->open_multiplier = d->open_multiplier;
    o->open_max_ns = d->open_max_ns;
    o->half_open_probes = d->half_open_probes;
    o->close_after = d->close_after;
    o->probe_lease_ns = d->probe_lease_ns;
}

static host_entry *host_entry_get(host_store *s, const char *name, cbx_err *err)
{
    size_t len = strlen(name);
    uint64_t h = cbx__bstore_name_hash(name, len);
    pthread_mutex_lock(&s->mu);
    host_entry **pp = &s->entries[h % s->capacity];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->name, name) != 0))
        pp = &(*pp)->next;
    host_entry *e = *pp;
    if (!e && (e = calloc(1, sizeof *e + len + 1))) {
        memcpy(e->name, name, len + 1);
        e->hash = h;
        pthread_mutex_init(&e->mu, NULL);
        *pp = e;
    }
    pthread_mutex_unlock(&s->mu);
    if (!e)
        cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    return e;
}

static void entry_drop_breaker(host_entry *e)
{
    cbx_breaker_free(e->b);
    e->b = NULL;
    e->seq = 0;
}

/* A breaker for e from opts that fits a record; e->scratch grows to its size. */
static int entry_build(host_store *s, host_entry *e, const cbx_breaker_opts *opts,
                       cbx_breaker **out, cbx_err *err)
{
    int r = cbx__bstore_breaker_make(out, e->name, opts, 1, err);
    if (r)
        return r;
    size_t need = cbx__breaker_state_size(*out);
    if (need > blob_cap(s)) {
        cbx_breaker_free(*out);
        *out = NULL;
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "breaker", 0, 0,
                              "breaker '%s': its state needs up to %zu bytes, more than a record "
                              "of %s holds (%zu); use a smaller count or time window",
                              e->name, need, s->path, blob_cap(s));
    }
    if (need > e->scratch_len) {
        uint8_t *p = realloc(e->scratch, need);
        if (!p) {
            cbx_breaker_free(*out);
            *out = NULL;
            return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
        }
        e->scratch = p;
        e->scratch_len = need;
    }
    return 0;
}

/* Make b e's breaker; its generation is seeded from the record's seq, so that a permit from
 * an earlier breaker kept in the record never matches this one. */
static void entry_install(host_entry *e, cbx_breaker *b, const cbx_breaker_opts *opts, int user,
                          const host_record *rec)
{
    uint32_t gen = (uint32_t)(atomic_load_explicit(&rec->seq, memory_order_relaxed) << 12) | 1;
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    atomic_store_explicit(&b->word, ((uint64_t)gen << 32) | (w & 0xffffffffu),
                          memory_order_relaxed);
    entry_drop_breaker(e);
    e->b = b;
    e->opts = *opts;
    e->opts.name = e->name;
    e->user_opts = user;
    e->pristine = 1;
}

/* Whether o are the options stored in rec. */
static int opts_same(const cbx_breaker_opts *o, const host_record *rec)
{
    stored_opts so;
    opts_store(&so, o);
    /* both sides were zeroed by opts_store before their fields were set: padding compares
     * equal */
    // NOLINTNEXTLINE(bugprone-suspicious-memory-comparison)
    return rec->has_opts && memcmp(&rec->opts, &so, sizeof so) == 0;
}

/* Make e->b from the record's options, else the defaults (which always fit); the clock and the
 * event callback come from base when it is given. */
static int entry_make_stored(host_store *s, host_entry *e, const host_record *rec,
                             const cbx_breaker_opts *base, cbx_err *err)
{
    cbx_breaker_opts opts, dflt;
    cbx_breaker_opts_default(&dflt);
    if (base) {
        dflt.clock = base->clock;
        dflt.on_event = base->on_event;
        dflt.event_ud = base->event_ud;
    }
    cbx_breaker *b = NULL;
    int r = -1;
    if (rec->has_opts) {
        opts = dflt;
        opts_load(&opts, &rec->opts);
        r = entry_build(s, e, &opts, &b, NULL);
    }
    if (r) {
        /* none, or options this build refuses */
        opts = dflt;
        r = entry_build(s, e, &opts, &b, err);
        if (r)
            return r;
    }
    entry_install(e, b, &opts, 0, rec);
    return 0;
}

/* Bring e->b in step with the record in slot k (locked). */
static int entry_sync(host_store *s, host_entry *e, uint32_t k, cbx_err *err)
{
    host_record *rec = record_at(s, k);
    uint64_t seq = atomic_load_explicit(&rec->seq, memory_order_relaxed);
    if (e->seq == seq && e->slot == k && e->seq != 0)
        return 0;
    uint32_t n = rec->blob_len;
    const uint8_t *blob = blob_at(s, k);
    int loaded = n > 0 && n <= blob_cap(s) && blob_sum(blob, n) == rec->blob_sum &&
                 cbx__breaker_state_load(e->b, blob, n) == 0;
    if (!loaded && !e->pristine) {
        /* nothing usable saved (new, forgotten, torn, or another shape): start afresh */
        cbx_breaker_opts o = e->opts;
        cbx_breaker *b = NULL;
        int r = entry_build(s, e, &o, &b, err);
        if (r)
            return r;
        entry_install(e, b, &o, e->user_opts, rec);
    }
    e->slot = k;
    e->seq = seq;
    e->dirty = !loaded;
    if (loaded)
        e->dirty = !opts_same(&e->opts, rec);
    return 0;
}

static void entry_save(host_store *s, host_entry *e, uint32_t k)
{
    host_record *rec = record_at(s, k);
    int n = cbx__breaker_state_save(e->b, e->scratch, e->scratch_len);
    e->pristine = 0;
    if (n < 0)
        return; /* cannot happen: the scratch is sized for the worst case */
    uint8_t *blob = blob_at(s, k);
    memcpy(blob, e->scratch, (size_t)n);
    rec->blob_len = (uint32_t)n;
    rec->blob_sum = blob_sum(blob, (size_t)n);
    opts_store(&rec->opts, &e->opts);
    rec->has_opts = 1;
    e->seq = atomic_fetch_add_explicit(&rec->seq, 1, memory_order_relaxed) + 1;
    e->slot = k;
    e->dirty = 0;
}

static void maybe_reopen(host_store *s)
{
    unsigned g = atomic_load_explicit(&fork_gen, memory_order_relaxed);
    if (g == s->fork_gen)
        return;
    pthread_mutex_lock(&s->mu);
    if (g != s->fork_gen) {
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", s->fd);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            close(s->fd);
            s->fd = fd;
        }
        s->fork_gen = g;
        /* the parent's outcomes are the parent's to record */
        for (uint32_t i = 0; i < s->capacity; i++)
            for (host_entry *e = s->entries ? s->entries[i] : NULL; e; e = e->next)
                e->npending = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

static int host_use(cbx_breaker_store *bs, const char *name, const cbx_breaker_opts *o, int create,
                    uint64_t deadline_ns, use_fn fn, void *ud, cbx_err *err)
{
    host_store *s = (host_store *)bs;
    host_entry *e = host_entry_get(s, name, err);
    if (!e)
        return -ENOMEM;
    size_t len = strlen(name);
    uint32_t k;
    int r = 0;
    cbx_breaker *fresh = NULL;
    r = mutex_lock_by(&e->mu, deadline_ns);
    if (r)
        return lock_fail(s, name, r, err);
    /* Options given for a name this process has no breaker of (from a caller) are checked
     * before the name is added to the file. */
    if (o && !e->b)
        r = entry_build(s, e, o, &fresh, err);
    if (r) {
        pthread_mutex_unlock(&e->mu);
        return r;
    }
    maybe_reopen(s);
    r = find_locked(s, name, len, e->hash, &k, deadline_ns, KIND_BREAKER);
    if (r == -ENOENT && create)
        r = insert_locked(s, name, len, e->hash, &k, deadline_ns, KIND_BREAKER, err);
    else if (r && r != -ENOENT)
        lock_fail(s, name, r, err);
    if (r) {
        if (r == -ENOENT)
            e->npending = 0; /* forgotten meanwhile: its outcomes go with it */
        cbx_breaker_free(fresh);
        pthread_mutex_unlock(&e->mu);
        return r;
    }
    host_record *rec = record_at(s, k);
    if (rec->has_opts) {
        /* The stored options win over the caller's and over this process's copy (they may
         * have been changed by cbx_breaker_store_set_opts elsewhere). */
        if (!e->b || !opts_same(&e->opts, rec)) {
            r = entry_make_stored(s, e, rec, o ? o : e->b ? &e->opts : NULL, err);
            if (r)
                goto out;
        }
    } else if (fresh) {
        entry_install(e, fresh, o, 1, rec);
        fresh = NULL;
    } else if (!e->b) {
        r = entry_make_stored(s, e, rec, NULL, err);
        if (r)
            goto out;
    }
    r = entry_sync(s, e, k, err);
    if (r)
        goto out;
    uint64_t stamp = cbx__breaker_state_stamp(e->b);
    for (size_t i = 0; i < e->npending; i++)
        cbx_breaker_record(e->b, e->pending[i].p, e->pending[i].k, e->pending[i].latency_ns);
    e->npending = 0;
    r = fn ? fn(e->b, ud) : 0;
    if (e->dirty || cbx__breaker_state_stamp(e->b) != stamp)
        entry_save(s, e, k);
out:
    slot_unlock(s, k);
    cbx_breaker_free(fresh);
    pthread_mutex_unlock(&e->mu);
    return r;
}

/* name's entry, its mutex taken by deadline (the caller unlocks e->mu). 0, -ENOMEM, or the
 * lock's error. */
static int entry_lock(host_store *s, const char *name, uint64_t deadline, host_entry **out)
{
    host_entry *e = host_entry_get(s, name, NULL);
    if (!e)
        return -ENOMEM;
    int r = mutex_lock_by(&e->mu, deadline);
    if (r == 0)
        *out = e;
    return r;
}

static int host_get_opts(cbx_breaker_store *bs, const char *name, cbx_breaker_opts *out)
{
    host_store *s = (host_store *)bs;
    host_entry *e = NULL;
    uint64_t deadline = cbx__bstore_default_deadline();
    int r = entry_lock(s, name, deadline, &e);
    if (r)
        return r;
    maybe_reopen(s);
    uint32_t k;
    r = find_locked(s, name, strlen(name), e->hash, &k, deadline, KIND_BREAKER);
    if (r == 0) {
        host_record *rec = record_at(s, k);
        cbx_breaker_opts_default(out);
        if (rec->has_opts)
            opts_load(out, &rec->opts);
        slot_unlock(s, k);
    }
    pthread_mutex_unlock(&e->mu);
    return r;
}

/* New options in the record, the breaker's state carried over when it has the same shape. */
static int host_set_opts(cbx_breaker_store *bs, const char *name, const cbx_breaker_opts *o,
                         cbx_err *err)
{
    host_store *s = (host_store *)bs;
    host_entry *e = host_entry_get(s, name, err);
    if (!e)
        return -ENOMEM;
    uint64_t deadline = cbx__bstore_default_deadline();
    int r = mutex_lock_by(&e->mu, deadline);
    if (r)
        return lock_fail(s, name, r, err);
    cbx_breaker *fresh = NULL;
    r = entry_build(s, e, o, &fresh, err);
    if (r) {
        pthread_mutex_unlock(&e->mu);
        return r;
    }
    maybe_reopen(s);
    uint32_t k;
    r = insert_locked(s, name, strlen(name), e->hash, &k, deadline, KIND_BREAKER, err);
    if (r) {
        cbx_breaker_free(fresh);
        pthread_mutex_unlock(&e->mu);
        return r;
    }
    host_record *rec = record_at(s, k);
    entry_install(e, fresh, o, 1, rec);
    r = entry_sync(s, e, k, err); /* loads the saved state when it fits the new shape */
    if (r == 0)
        entry_save(s, e, k);
    slot_unlock(s, k);
    pthread_mutex_unlock(&e->mu);
    return r;
}

static int host_peek(cbx_breaker_store *bs, const char *name, use_fn fn, void *ud)
{
    host_store *s = (host_store *)bs;
    host_entry *e = NULL;
    int r = entry_lock(s, name, cbx__bstore_default_deadline(), &e);
    if (r)
        return r;
    r = e->b ? fn(e->b, ud) : -ENOENT;
    pthread_mutex_unlock(&e->mu);
    return r;
}

static int host_forget(cbx_breaker_store *bs, const char *name)
{
    host_store *s = (host_store *)bs;
    host_entry *e = NULL;
    uint64_t deadline = cbx__bstore_default_deadline();
    int r = entry_lock(s, name, deadline, &e);
    if (r)
        return r;
    maybe_reopen(s);
    r = table_lock(s, deadline);
    if (r)
        goto out;
    uint32_t k;
    r = find_locked(s, name, strlen(name), e->hash, &k, deadline, KIND_BREAKER);
    if (r == 0) {
        host_record *rec = record_at(s, k);
        rec->blob_len = 0;
        rec->has_opts = 0;
        atomic_fetch_add_explicit(&rec->seq, 1, memory_order_relaxed);
        atomic_store_explicit(&rec->state, REC_FORGOTTEN, memory_order_release);
        atomic_fetch_sub_explicit(&((host_header *)s->map)->names, 1, memory_order_relaxed);
        slot_unlock(s, k);
    }
    table_unlock(s);
out:
    entry_drop_breaker(e);
    pthread_mutex_unlock(&e->mu);
    return r;
}

static int host_names(cbx_breaker_store *bs, char ***out, size_t *n, cbx_err *err)
{
    host_store *s = (host_store *)bs;
    maybe_reopen(s);
    size_t cap = 16, k = 0;
    char **v = malloc(cap * sizeof *v);
    if (!v)
        return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    uint64_t deadline = cbx__bstore_default_deadline();
    for (uint32_t i = 0; i < s->capacity; i++) {
        if (!cbx__bsf_allocated(s->map, i))
            continue; /* never used, and best left untouched */
        host_record *rec = record_at(s, i);
        if (atomic_load_explicit(&rec->state, memory_order_acquire) != REC_USED)
            continue;
        int r = slot_lock(s, i, deadline);
        if (r) {
            cbx__bstore_free_names(v, k);
            if (r == -EAGAIN)
                return cbx_err_set_at(err, r, s->path, 0, 0,
                                      "breaker store %s: record %u stayed locked by another "
                                      "process until the deadline",
                                      s->path, i);
            return cbx_err_set_at(err, r, s->path, 0, 0, "breaker store %s: lock: %s", s->path,
                                  strerror(-r));
        }
        char *name = NULL;
        if (atomic_load_explicit(&rec->state, memory_order_acquire) == REC_USED &&
            rec->kind == KIND_BREAKER && rec->name_len <= NAME_MAX_BYTES)
            name = strndup(rec->name, rec->name_len);
        slot_unlock(s, i);
        if (!name)
            continue;
        if (k == cap) {
            char **nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                free(name);
                cbx__bstore_free_names(v, k);
                return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
            }
            v = nv;
            cap *= 2;
        }
        v[k++] = name;
    }
    qsort(v, k, sizeof *v, cbx__cmp_strings);
    *out = v;
    *n = k;
    return 0;
}

static int host_defer(cbx_breaker_store *bs, const char *name, cbx_permit p, cbx_outcome k,
                      int64_t latency_ns)
{
    host_store *s = (host_store *)bs;
    host_entry *e = NULL;
    int r = entry_lock(s, name, cbx__bstore_default_deadline(), &e);
    if (r)
        return r;
    if (e->npending == e->pending_cap) {
        size_t cap = e->pending_cap ? 2 * e->pending_cap : 4;
        pending_record *v = realloc(e->pending, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&e->mu);
            return -ENOMEM;
        }
        e->pending = v;
        e->pending_cap = cap;
    }
    e->pending[e->npending++] = (pending_record){p, k, latency_ns};
    pthread_mutex_unlock(&e->mu);
    return 0;
}

/* Record what is still pending, waiting at most CBX_BREAKER_STORE_WAIT_NS for each name. */
static void host_flush(host_store *s)
{
    if (!s->map || !s->entries)
        return;
    maybe_reopen(s);
    for (uint32_t i = 0; i < s->capacity; i++)
        for (host_entry *e = s->entries[i]; e; e = e->next)
            if (e->npending)
                host_use(&s->base, e->name, NULL, 0, cbx__bstore_default_deadline(), NULL, NULL,
                         NULL);
}

static void host_destroy(cbx_breaker_store *bs)
{
    host_store *s = (host_store *)bs;
    host_flush(s);
    if (s->entries) {
        for (uint32_t i = 0; i < s->capacity; i++) {
            for (host_entry *e = s->entries[i], *next; e; e = next) {
                next = e->next;
                cbx_breaker_free(e->b);
                free(e->scratch);
                free(e->pending);
                pthread_mutex_destroy(&e->mu);
                free(e);
            }
        }
    }
    if (s->slot_mu) {
        for (uint32_t i = 0; i < s->capacity; i++)
            pthread_mutex_destroy(&s->slot_mu[i]);
    }
    free(s->slot_mu);
    free(s->entries);
    if (s->map)
        munmap(s->map, s->map_len);
    if (s->fd >= 0)
        close(s->fd);
    pthread_mutex_destroy(&s->table_mu);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

/* The shared arrival time of the limiter named key, its record added (with o's interval and
 * burst, informational) when missing. The word stays valid while the store is open: a limiter
 * record is never forgotten or reused. */
static int host_limiter_word(cbx_breaker_store *bs, const char *key, const cbx_ratelimit_opts *o,
                             void **word, cbx_err *err)
{
    host_store *s = (host_store *)bs;
    size_t len = strlen(key);
    /* another hash than the breaker of the same name, so that the two do not share a probe */
    uint64_t h = cbx__bstore_name_hash(key, len) ^ 0x6c696d6974657221ULL;
    uint64_t deadline = cbx__bstore_default_deadline();
    maybe_reopen(s);
    uint32_t k;
    int r = find_locked(s, key, len, h, &k, deadline, KIND_LIMITER);
    if (r == -ENOENT)
        r = insert_locked(s, key, len, h, &k, deadline, KIND_LIMITER, err);
    else if (r)
        lock_fail(s, key, r, err);
    if (r)
        return r;
    limiter_blob *lb = (limiter_blob *)blob_at(s, k);
    host_record *rec = record_at(s, k);
    if (rec->blob_len != sizeof *lb) {
        /* new: a full bucket (an arrival time of 0 is long past) */
        atomic_store_explicit(&lb->tat_ns, 0, memory_order_relaxed);
        lb->interval_ns = o && o->per_second > 0 ? (uint64_t)(1e9 / o->per_second) : 0;
        lb->burst = o ? o->burst : 0;
        rec->blob_len = sizeof *lb;
        atomic_fetch_add_explicit(&rec->seq, 1, memory_order_relaxed);
    }
    slot_unlock(s, k);
    *word = (void *)&lb->tat_ns;
    return 0;
}

static const store_ops host_ops = {host_use,          host_peek,    host_forget,   host_defer,
                                   host_names,        host_destroy, host_get_opts, host_set_opts,
                                   host_limiter_word, NULL};

int cbx_breaker_store_host_new(cbx_breaker_store **out, const char *path, cbx_err *err)
{
    *out = NULL;
    pthread_once(&fork_once, fork_hook);
    host_store *s = calloc(1, sizeof *s);
    if (!s)
        return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    s->fd = -1;
    s->fork_gen = atomic_load(&fork_gen);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->table_mu, NULL);
    s->base.ops = &host_ops;
    int r;
    if (path) {
        s->path = strdup(path);
    } else {
        char dir[4096];
        r = cbx_state_dir_get(dir, sizeof dir, err);
        if (r)
            goto fail;
        size_t n = strlen(dir) + sizeof "/breakers";
        if ((s->path = malloc(n)))
            snprintf(s->path, n, "%s/breakers", dir);
    }
    if (!s->path) {
        r = cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
        goto fail;
    }
    r = cbx__bsf_open(s->path, &s->fd, &s->geom, cbx__bstore_default_deadline(), err);
    if (r)
        goto fail;
    s->header_size = s->geom.header_size;
    s->record_size = s->geom.record_size;
    s->capacity = s->geom.capacity;
    s->map_len = s->geom.map_len;
    s->map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
    if (s->map == MAP_FAILED) {
        s->map = NULL;
        r = cbx_err_set_at(err, -errno, s->path, 0, 0, "breaker store %s: mmap: %s", s->path,
                           strerror(errno));
        goto fail;
    }
    s->entries = calloc(s->capacity, sizeof *s->entries);
    s->slot_mu = malloc(s->capacity * sizeof *s->slot_mu);
    if (!s->entries || !s->slot_mu) {
        free(s->slot_mu);
        s->slot_mu = NULL;
        r = cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < s->capacity; i++)
        pthread_mutex_init(&s->slot_mu[i], NULL);
    *out = &s->base;
    return 0;
fail:
    host_destroy(&s->base);
    return r;
}
