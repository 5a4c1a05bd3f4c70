/* The cluster breaker store: every breaker in a NATS JetStream key-value bucket (CBX_BREAKERS),
 * so that every worker and every cbx on any host sees one breaker per name.
 *
 * An operation reads the name's entry (options, state and revision), rebuilds the breaker,
 * applies the operation, and writes the new state back only if the revision is still the one
 * read (kvStore_Update: compare-and-set). When another process wrote in between, the operation
 * is run again on the newer state, so two processes never both take the same half-open probe
 * slot: one of the two writes loses and its acquire is decided again. Conflicts are counted
 * (cbx_breaker_store_nats_cas_retries).
 *
 * Times in a breaker's state are wall-clock nanoseconds (a virtual clock this store moves to
 * CLOCK_REALTIME before each operation), so that hosts agree on when an open breaker may probe:
 * keep their clocks in step (NTP). The value is JSON: {"v": 1, "opts": {numbers},
 * "state": base64 of the breaker's state}. Names are keys with the characters a key cannot hold
 * written as =XX.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbx/dist.h"
#include "cbx/units.h"
#include "core/base64.h"
#include "core/log_internal.h"
#include "core/text.h"
#include "dist/ratelimit_kv.h"
#include "dist/work.h"
#include "resilience/breaker_internal.h"
#include "runtime/breaker_store_internal.h"

#define BUCKET    "CBX_BREAKERS"
#define MAX_TRIES 200

typedef struct kv_store {
    cbx_breaker_store base;
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;              /* NULL until the bucket could be opened */
    pthread_mutex_t kv_mu;    /* opening it */
    cbx_breaker_store *local; /* this process's own view, while the cluster cannot be reached */
    atomic_int unreachable;   /* the last operation fell back to the local view */
    atomic_uint_least64_t down_until_ns; /* CLOCK_MONOTONIC: until then, do not ask the server */
    char *url;
    cbx_clock *clock; /* wall-clock time, moved forward before each operation */
    pthread_mutex_t clock_mu;
    atomic_uint_least64_t cas_retries;
    atomic_uint gen_seed;
    cbx__kv_rates *rates; /* the rate limiters' buckets */
} kv_store;

static int conflict(natsStatus s)
{
    return cbx__dist_kv_conflict(s);
}

static void sync_clock(kv_store *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wall = (uint64_t)ts.tv_sec * CBX_NS_PER_S + (uint64_t)ts.tv_nsec;
    pthread_mutex_lock(&s->clock_mu);
    uint64_t now = cbx_clock_now_ns(s->clock);
    if (wall > now)
        cbx_clock_advance_ns(s->clock, wall - now);
    pthread_mutex_unlock(&s->clock_mu);
}

/* ---- names as keys ----------------------------------------------------------------------------
 */

static int key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '/';
}

static void to_key(const char *name, char *key, size_t len)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < len; p++) {
        if (key_char(*p))
            key[o++] = (char)*p;
        else
            o += (size_t)snprintf(key + o, len - o, "=%02X", *p);
    }
    key[o] = '\0';
}

static char *from_key(const char *key)
{
    char *name = malloc(strlen(key) + 1);
    size_t o = 0;
    for (const char *p = key; name && *p; p++) {
        unsigned v;
        if (*p == '=' && sscanf(p + 1, "%2X", &v) == 1) {
            name[o++] = (char)v;
            p += 2;
        } else {
            name[o++] = *p;
        }
    }
    if (name)
        name[o] = '\0';
    return name;
}

/* ---- options as JSON --------------------------------------------------------------------------
 */

#define U64_FIELDS(X)                                                                              \
    X("tw_length_ns", time_window.length_ns)                                                       \
    X("slow_call_ns", slow_call_ns)                                                                \
    X("open_ns", open_ns)                                                                          \
    X("open_max_ns", open_max_ns)                                                                  \
    X("probe_lease_ns", probe_lease_ns)
#define U32_FIELDS(X)                                                                              \
    X("consecutive_failures", consecutive_failures)                                                \
    X("cw_calls", count_window.calls)                                                              \
    X("cw_min_calls", count_window.min_calls)                                                      \
    X("tw_buckets", time_window.buckets)                                                           \
    X("tw_min_calls", time_window.min_calls)                                                       \
    X("failure_kinds", failure_kinds)                                                              \
    X("half_open_probes", half_open_probes)                                                        \
    X("close_after", close_after)
#define REAL_FIELDS(X)                                                                             \
    X("cw_failure_rate", count_window.failure_rate)                                                \
    X("cw_slow_rate", count_window.slow_rate)                                                      \
    X("tw_failure_rate", time_window.failure_rate)                                                 \
    X("tw_slow_rate", time_window.slow_rate)                                                       \
    X("quality_threshold", quality_threshold)                                                      \
    X("open_multiplier", open_multiplier)

static json_t *opts_json(const cbx_breaker_opts *o)
{
    json_t *j = json_object();
    /* UINT64_MAX (open until closed by hand) does not fit a JSON integer: -1 */
#define PUT_U64(k, f)                                                                              \
    json_object_set_new(j, k, json_integer(o->f == UINT64_MAX ? -1 : (json_int_t)o->f));
#define PUT_U32(k, f)  json_object_set_new(j, k, json_integer((json_int_t)o->f));
#define PUT_REAL(k, f) json_object_set_new(j, k, json_real(o->f));
    U64_FIELDS(PUT_U64) U32_FIELDS(PUT_U32) REAL_FIELDS(PUT_REAL) return j;
}

static void opts_from(cbx_breaker_opts *o, const json_t *j)
{
#define GET_U64(k, f)                                                                              \
    {                                                                                              \
        json_int_t v = json_integer_value(json_object_get(j, k));                                  \
        o->f = v < 0 ? UINT64_MAX : (uint64_t)v;                                                   \
    }
#define GET_U32(k, f)  o->f = (uint32_t)json_integer_value(json_object_get(j, k));
#define GET_REAL(k, f) o->f = json_number_value(json_object_get(j, k));
    U64_FIELDS(GET_U64) U32_FIELDS(GET_U32) REAL_FIELDS(GET_REAL)
}

/* ---- the cluster, or this process's view ------------------------------------------------------
 */

/* The bucket, opened (made where missing) on first use: 0, or a negative code with the server's
 * reason in err. */
static int ensure_kv(kv_store *s, cbx_err *err)
{
    pthread_mutex_lock(&s->kv_mu);
    natsStatus st = NATS_OK;
    if (!s->kv)
        st = cbx__dist_kv_bucket(&s->kv, s->js, BUCKET, 0);
    pthread_mutex_unlock(&s->kv_mu);
    if (st != NATS_OK)
        return cbx_err_set(err, CBX_EFAILED, "breaker store %s on %s: %s", BUCKET, s->url,
                           cbx__nats_why(st));
    return 0;
}

#define RETRY_SERVER_NS (2 * CBX_NS_PER_S)

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * CBX_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* 1 while a recent failure says the server is away: operations decide here at once, and ask the
 * server again only every RETRY_SERVER_NS (each asking may wait up to the JetStream wait). */
static int server_away(kv_store *s)
{
    return mono_ns() < atomic_load(&s->down_until_ns);
}

/* The cluster could not be reached (a partition, a server down): say so, once per outage. */
static void unreachable(kv_store *s, const cbx_err *why_err)
{
    atomic_store(&s->down_until_ns, mono_ns() + RETRY_SERVER_NS);
    if (atomic_exchange(&s->unreachable, 1) == 0)
        CBX_LOG(CBX_LOG_WARN, "breaker",
                "the cluster store is unreachable (%s): deciding on this process's own view "
                "until it is back",
                why_err->msg);
}

static void reachable(kv_store *s)
{
    if (atomic_exchange(&s->unreachable, 0) == 1)
        CBX_LOG(CBX_LOG_WARN, "breaker", "the cluster store on %s is reachable again", s->url);
}

/* ---- an entry ---------------------------------------------------------------------------------
 */

typedef struct entry {
    json_t *doc;  /* the stored value; NULL: none */
    uint64_t rev; /* its revision; 0: none */
    cbx_breaker *b;
    cbx_breaker_opts opts;
} entry;

static void entry_clear(entry *e)
{
    json_decref(e->doc);
    cbx_breaker_free(e->b);
    memset(e, 0, sizeof *e);
}

/* Read name's entry and rebuild its breaker (from o when there is no entry). -ENOENT when there
 * is none and o is NULL. */
static int entry_load(kv_store *s, const char *name, const char *key, const cbx_breaker_opts *o,
                      entry *e, cbx_err *err)
{
    memset(e, 0, sizeof *e);
    kvEntry *ke = NULL;
    natsStatus st = cbx__dist_kv_get(&ke, s->kv, key);
    if (st == NATS_OK) {
        e->rev = kvEntry_Revision(ke);
        e->doc = json_loadb(kvEntry_Value(ke), (size_t)kvEntry_ValueLen(ke), 0, NULL);
        kvEntry_Destroy(ke);
    } else if (st != NATS_NOT_FOUND) {
        return cbx_err_set(err, CBX_EFAILED, "breaker store %s: %s", BUCKET, cbx__nats_why(st));
    }
    const json_t *stored = json_object_get(e->doc, "opts");
    if (!stored && !o)
        return -ENOENT;
    if (o) {
        e->opts = *o;
    } else {
        cbx_breaker_opts_default(&e->opts);
    }
    if (stored)
        opts_from(&e->opts, stored); /* the stored options win, as in the host store */
    e->opts.clock = s->clock;
    int r = cbx__bstore_breaker_make(&e->b, name, &e->opts,
                                     atomic_fetch_add(&s->gen_seed, 1u << 16), err);
    if (r)
        return r;
    const char *state = json_string_value(json_object_get(e->doc, "state"));
    if (state) {
        unsigned char *blob = NULL;
        size_t n = 0;
        if (cbx__base64_decode(state, &blob, &n) == 0)
            (void)cbx__breaker_state_load(e->b, blob, n); /* another shape: afresh */
        free(blob);
    }
    return 0;
}

/* Write e's breaker back if the entry is still at the revision read: 0, 1 on a conflict, or a
 * negative code. */
static int entry_save(kv_store *s, const char *key, entry *e, cbx_err *err)
{
    size_t cap = cbx__breaker_state_size(e->b);
    unsigned char *blob = malloc(cap);
    int n = blob ? cbx__breaker_state_save(e->b, blob, cap) : -ENOMEM;
    char *b64 = n >= 0 ? cbx__base64_encode(blob, (size_t)n) : NULL;
    free(blob);
    json_t *doc =
        b64 ? json_pack("{s:i, s:o, s:s}", "v", 1, "opts", opts_json(&e->opts), "state", b64)
            : NULL;
    free(b64);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    uint64_t rev = 0;
    natsStatus st = e->rev ? kvStore_Update(&rev, s->kv, key, text, (int)strlen(text), e->rev)
                           : kvStore_Create(&rev, s->kv, key, text, (int)strlen(text));
    free(text);
    if (st == NATS_OK)
        return 0;
    if (conflict(st))
        return 1;
    return cbx_err_set(err, CBX_EFAILED, "breaker store %s: %s", BUCKET, cbx__nats_why(st));
}

/* A transition this process wrote, for whoever watches the cluster: cbx.events.breaker.<key>
 * gets {"name", "from", "to", "wall_ms"}. */
static void announce(kv_store *s, const char *name, const char *key, cbx_breaker_state from,
                     cbx_breaker_state to)
{
    char subject[4 * CBX_BREAKER_NAME_MAX + 32];
    snprintf(subject, sizeof subject, "cbx.events.breaker.%s", key);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:I}", "name", name, "from",
                           cbx_breaker_state_name(from), "to", cbx_breaker_state_name(to),
                           "wall_ms", (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    if (text)
        natsConnection_Publish(s->nc, subject, text, (int)strlen(text));
    free(text);
    json_decref(ev);
}

/* ---- the interface ----------------------------------------------------------------------------
 */

static int kv_use(cbx_breaker_store *bs, const char *name, const cbx_breaker_opts *o, int create,
                  uint64_t deadline_ns, use_fn fn, void *ud, cbx_err *err)
{
    kv_store *s = (kv_store *)bs;
    char key[4 * CBX_BREAKER_NAME_MAX + 4];
    to_key(name, key, sizeof key);
    cbx_err net;
    cbx_err_clear(&net);
    if (server_away(s))
        return s->local->ops->use(s->local, name, o, create, deadline_ns, fn, ud, err);
    for (int tries = 0;; tries++) {
        entry e;
        memset(&e, 0, sizeof e);
        sync_clock(s);
        int r = ensure_kv(s, &net);
        if (r == 0)
            r = entry_load(s, name, key, create ? o : NULL, &e, &net);
        if (r == -ENOENT && create && !o) {
            cbx_breaker_opts d;
            cbx_breaker_opts_default(&d);
            r = entry_load(s, name, key, &d, &e, &net);
        }
        if (r == CBX_EFAILED) { /* the server: decide here */
            entry_clear(&e);
            unreachable(s, &net);
            return s->local->ops->use(s->local, name, o, create, deadline_ns, fn, ud, err);
        }
        if (r) {
            entry_clear(&e);
            if (err)
                *err = net;
            return r;
        }
        uint64_t stamp = cbx__breaker_state_stamp(e.b);
        cbx_breaker_state before = cbx_breaker_state_now(e.b);
        int fr = fn ? fn(e.b, ud) : 0;
        cbx_breaker_state after = cbx_breaker_state_now(e.b);
        int w = 0;
        if (!e.doc || cbx__breaker_state_stamp(e.b) != stamp)
            w = entry_save(s, key, &e, &net);
        entry_clear(&e);
        if (w == CBX_EFAILED) { /* lost on the way: decide again here */
            unreachable(s, &net);
            return s->local->ops->use(s->local, name, o, create, deadline_ns, fn, ud, err);
        }
        if (w == 0) {
            reachable(s);
            if (before != after)
                announce(s, name, key, before, after);
            return fr;
        }
        if (w < 0) {
            if (err)
                *err = net;
            return w;
        }
        atomic_fetch_add(&s->cas_retries, 1); /* written meanwhile: decide again on it */
        if (tries >= MAX_TRIES)
            return cbx_err_set(err, -EAGAIN, "breaker store: '%s' is written too often to win",
                               name);
    }
}

static int kv_peek(cbx_breaker_store *bs, const char *name, use_fn fn, void *ud)
{
    kv_store *s = (kv_store *)bs;
    char key[4 * CBX_BREAKER_NAME_MAX + 4];
    to_key(name, key, sizeof key);
    if (server_away(s))
        return s->local->ops->peek(s->local, name, fn, ud);
    entry e;
    memset(&e, 0, sizeof e);
    sync_clock(s);
    cbx_err net;
    cbx_err_clear(&net);
    int r = ensure_kv(s, &net);
    if (r == 0)
        r = entry_load(s, name, key, NULL, &e, &net);
    if (r == 0)
        r = fn(e.b, ud);
    entry_clear(&e);
    if (r == CBX_EFAILED) {
        unreachable(s, &net);
        return s->local->ops->peek(s->local, name, fn, ud);
    }
    return r;
}

static int kv_forget(cbx_breaker_store *bs, const char *name)
{
    kv_store *s = (kv_store *)bs;
    char key[4 * CBX_BREAKER_NAME_MAX + 4];
    to_key(name, key, sizeof key);
    if (ensure_kv(s, NULL) < 0)
        return -EIO;
    kvEntry *ke = NULL;
    natsStatus st = cbx__dist_kv_get(&ke, s->kv, key);
    kvEntry_Destroy(ke);
    if (st == NATS_NOT_FOUND)
        return -ENOENT;
    return kvStore_Delete(s->kv, key) == NATS_OK ? 0 : -EIO;
}

static int kv_names(cbx_breaker_store *bs, char ***out, size_t *n, cbx_err *err)
{
    kv_store *s = (kv_store *)bs;
    int r0 = ensure_kv(s, err);
    if (r0)
        return r0;
    kvKeysList list = {0};
    natsStatus st = kvStore_Keys(&list, s->kv, NULL);
    if (st != NATS_OK && st != NATS_NOT_FOUND)
        return cbx_err_set(err, CBX_EFAILED, "breaker store %s: %s", BUCKET, cbx__nats_why(st));
    char **v = calloc((size_t)list.Count + 1, sizeof *v);
    size_t k = 0;
    for (int i = 0; v && i < list.Count; i++)
        if ((v[k] = from_key(list.Keys[i])) != NULL)
            k++;
    kvKeysList_Destroy(&list);
    if (!v)
        return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    qsort(v, k, sizeof *v, cbx__cmp_strings);
    *out = v;
    *n = k;
    return 0;
}

static int kv_get_opts(cbx_breaker_store *bs, const char *name, cbx_breaker_opts *out)
{
    kv_store *s = (kv_store *)bs;
    char key[4 * CBX_BREAKER_NAME_MAX + 4];
    to_key(name, key, sizeof key);
    if (server_away(s))
        return s->local->ops->get_opts(s->local, name, out);
    entry e;
    memset(&e, 0, sizeof e);
    int r = ensure_kv(s, NULL);
    if (r == 0)
        r = entry_load(s, name, key, NULL, &e, NULL);
    if (r == CBX_EFAILED) {
        entry_clear(&e);
        return s->local->ops->get_opts(s->local, name, out);
    }
    if (r == 0) {
        *out = e.opts;
        out->name = NULL;
        out->clock = NULL;
    }
    entry_clear(&e);
    return r;
}

static int kv_set_opts(cbx_breaker_store *bs, const char *name, const cbx_breaker_opts *o,
                       cbx_err *err)
{
    kv_store *s = (kv_store *)bs;
    char key[4 * CBX_BREAKER_NAME_MAX + 4];
    to_key(name, key, sizeof key);
    int r0 = ensure_kv(s, err);
    if (r0)
        return r0;
    for (int tries = 0; tries < MAX_TRIES; tries++) {
        entry old, e;
        int r = entry_load(s, name, key, o, &old, err);
        if (r && r != -ENOENT) {
            entry_clear(&old);
            return r;
        }
        memset(&e, 0, sizeof e);
        e.opts = *o;
        e.opts.clock = s->clock;
        e.rev = old.rev;
        e.doc = json_incref(old.doc);
        r = cbx__bstore_breaker_make(&e.b, name, &e.opts, atomic_fetch_add(&s->gen_seed, 1u << 16),
                                     err);
        if (r == 0 && old.b) {
            /* the state carried over when the shape allows */
            size_t cap = cbx__breaker_state_size(old.b);
            unsigned char *blob = malloc(cap);
            int n = blob ? cbx__breaker_state_save(old.b, blob, cap) : -ENOMEM;
            if (n > 0)
                (void)cbx__breaker_state_load(e.b, blob, (size_t)n);
            free(blob);
        }
        int w = r ? r : entry_save(s, key, &e, err);
        entry_clear(&old);
        entry_clear(&e);
        if (w <= 0)
            return w;
        atomic_fetch_add(&s->cas_retries, 1);
    }
    return cbx_err_set(err, -EAGAIN, "breaker store: '%s' is written too often to win", name);
}

static void kv_destroy(cbx_breaker_store *bs)
{
    kv_store *s = (kv_store *)bs;
    cbx__kv_rates_free(s->rates);
    kvStore_Destroy(s->kv);
    jsCtx_Destroy(s->js);
    natsConnection_Destroy(s->nc);
    cbx_breaker_store_free(s->local);
    cbx_clock_free(s->clock);
    pthread_mutex_destroy(&s->clock_mu);
    pthread_mutex_destroy(&s->kv_mu);
    free(s->url);
    free(s);
}

static int kv_limiter_remote(cbx_breaker_store *bs, const char *key,
                             const cbx_ratelimit_remote **out, cbx_err *err)
{
    kv_store *s = (kv_store *)bs;
    return cbx__kv_rates_limiter(s->rates, key, out, err);
}

static const store_ops kv_ops = {kv_use,     kv_peek,     kv_forget,   NULL, kv_names,
                                 kv_destroy, kv_get_opts, kv_set_opts, NULL, kv_limiter_remote};

int cbx_breaker_store_nats_new(cbx_breaker_store **out, const char *url, cbx_err *err)
{
    *out = NULL;
    kv_store *s = calloc(1, sizeof *s);
    if (!s)
        return cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    pthread_mutex_init(&s->clock_mu, NULL);
    pthread_mutex_init(&s->kv_mu, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->clock = cbx_clock_virtual((uint64_t)ts.tv_sec * 1000u);
    atomic_init(&s->gen_seed, (unsigned)ts.tv_nsec);
    s->base.ops = &kv_ops;
    url = cbx__dist_url(url);
    s->url = strdup(url);
    int r = s->clock && s->url ? cbx_breaker_store_memory_new(&s->local, err)
                               : cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    /* A server that is not there yet is a partition like any other: the connection keeps
     * trying, and operations decide on this process's view meanwhile. */
    if (r == 0)
        r = cbx__dist_connect_lazy(url, &s->nc, err);
    /* An unreachable cluster costs an operation at most this; CBX_BREAKER_STORE_WAIT (a
     * duration) gives more to a busy server. */
    int64_t wait_ms = 1000;
    const char *w = getenv("CBX_BREAKER_STORE_WAIT");
    if (r == 0 && w && *w) {
        uint64_t ns = 0;
        if (cbx_duration_parse_ns(w, &ns) != 0 || ns < CBX_NS_PER_MS || ns > 3600 * CBX_NS_PER_S)
            r = cbx_err_set(err, CBX_EINVAL_CONFIG,
                            "CBX_BREAKER_STORE_WAIT: expected a duration from 1ms to 1h, got "
                            "'%.40s'",
                            w);
        else
            wait_ms = (int64_t)(ns / CBX_NS_PER_MS);
    }
    if (r == 0) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = wait_ms;
        natsStatus st = natsConnection_JetStream(&s->js, s->nc, &jo);
        if (st != NATS_OK)
            r = cbx_err_set(err, CBX_EFAILED, "breaker store on %s: %s", url, cbx__nats_why(st));
    }
    if (r == 0)
        r = cbx__kv_rates_new(&s->rates, s->js, url, err);
    if (r) {
        kv_destroy(&s->base);
        return r;
    }
    if (natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED)
        (void)ensure_kv(s, NULL); /* now, else at the first operation */
    *out = &s->base;
    return 0;
}

uint64_t cbx_breaker_store_nats_rate_cas_retries(const cbx_breaker_store *bs)
{
    return bs && bs->ops == &kv_ops ? cbx__kv_rates_cas_retries(((kv_store *)bs)->rates) : 0;
}

uint64_t cbx_breaker_store_nats_cas_retries(const cbx_breaker_store *bs)
{
    return bs && bs->ops == &kv_ops ? atomic_load(&((kv_store *)bs)->cas_retries) : 0;
}
