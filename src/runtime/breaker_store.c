/* Named breakers: everything public about breaker stores, written once over the interface of
 * breaker_store_internal.h that both stores implement: the memory store
 * (breaker_store_memory.c, a map of breakers in this process) and the host store
 * (breaker_store_host.c, a file of records shared by every process on the host, whose file
 * handling is breaker_store_file.c). See docs/breaker-store.md.
 */
#define _GNU_SOURCE
#include "runtime/breaker_store_internal.h"

#include "resilience/breaker_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_BYTES CBX_BREAKER_NAME_MAX

/* ---- helpers both stores use ------------------------------------------------ */

/* Detail of the last store error on this thread, for cbx_breaker_store_explain. */
static _Thread_local cbx_err last_err;

uint64_t cbx__bstore_name_hash(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int check_name(const char *name, cbx_err *err)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > NAME_MAX_BYTES)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "breaker", 0, 0,
                              "breaker name must be 1 to %d bytes", NAME_MAX_BYTES);
    return 0;
}

/* A new breaker named `name` from o (defaults when NULL), its generation starting at gen. */
int cbx__bstore_breaker_make(cbx_breaker **out, const char *name, const cbx_breaker_opts *o,
                             uint32_t gen, cbx_err *err)
{
    cbx_breaker_opts opts;
    if (o)
        opts = *o;
    else
        cbx_breaker_opts_default(&opts);
    opts.name = name;
    int r = cbx_breaker_new(out, &opts, err);
    if (r)
        return r;
    /* A permit from an earlier breaker of the same name then never matches this one. */
    uint64_t w = atomic_load_explicit(&(*out)->word, memory_order_relaxed);
    atomic_store_explicit(&(*out)->word, ((uint64_t)(gen ? gen : 1) << 32) | (w & 0xffffffffu),
                          memory_order_relaxed);
    return 0;
}

void cbx__bstore_free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

uint64_t cbx__bstore_default_deadline(void)
{
    return cbx_clock_now_ns(NULL) + CBX_BREAKER_STORE_WAIT_NS;
}

/* ---- the public operations ---------------------------------------------------------------- */

void cbx_breaker_store_free(cbx_breaker_store *s)
{
    if (s)
        s->ops->destroy(s);
}

typedef struct acquire_call {
    cbx_breaker_rejection *why;
    cbx_permit p;
} acquire_call;

static int do_acquire(cbx_breaker *b, void *ud)
{
    acquire_call *c = ud;
    c->p = cbx_breaker_acquire_ex(b, c->why);
    return 0;
}

cbx_permit cbx_breaker_store_acquire(cbx_breaker_store *s, const char *name,
                                     const cbx_breaker_opts *o, cbx_breaker_rejection *why)
{
    return cbx_breaker_store_acquire_by(s, name, o, why, cbx__bstore_default_deadline());
}

cbx_permit cbx_breaker_store_acquire_by(cbx_breaker_store *s, const char *name,
                                        const cbx_breaker_opts *o, cbx_breaker_rejection *why,
                                        uint64_t deadline_ns)
{
    acquire_call c = {.why = why};
    last_err.code = 0;
    int r = check_name(name, &last_err);
    if (r == 0)
        r = s->ops->use(s, name, o, 1, deadline_ns, do_acquire, &c, &last_err);
    if (r) {
        c.p = (cbx_permit){.rc = r};
        if (why)
            *why = (cbx_breaker_rejection){.rc = r};
    }
    return c.p;
}

typedef struct record_call {
    cbx_permit p;
    cbx_outcome k;
    int64_t latency_ns;
} record_call;

static int do_record(cbx_breaker *b, void *ud)
{
    record_call *c = ud;
    cbx_breaker_record(b, c->p, c->k, c->latency_ns);
    return 0;
}

void cbx_breaker_store_record(cbx_breaker_store *s, const char *name, cbx_permit p, cbx_outcome k,
                              int64_t latency_ns)
{
    cbx_breaker_store_record_by(s, name, p, k, latency_ns, cbx__bstore_default_deadline());
}

void cbx_breaker_store_record_by(cbx_breaker_store *s, const char *name, cbx_permit p,
                                 cbx_outcome k, int64_t latency_ns, uint64_t deadline_ns)
{
    if (p.rc != 0 || check_name(name, NULL) != 0)
        return;
    record_call c = {p, k, latency_ns};
    int r = s->ops->use(s, name, NULL, 0, deadline_ns, do_record, &c, NULL);
    if (r == -EAGAIN && s->ops->defer)
        s->ops->defer(s, name, p, k, latency_ns);
}

typedef struct explain_call {
    const cbx_breaker_rejection *why;
    char *buf;
    size_t len;
} explain_call;

static int do_explain(cbx_breaker *b, void *ud)
{
    explain_call *c = ud;
    cbx_breaker_explain(b, c->why, c->buf, c->len);
    return 0;
}

const char *cbx_breaker_store_explain(cbx_breaker_store *s, const char *name,
                                      const cbx_breaker_rejection *why, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    const char *n = name ? name : "";
    switch (why->rc) {
    case 0:
        snprintf(buf, len, "breaker '%s' admitted the call", n);
        return buf;
    case CBX_ECIRCUIT_OPEN:
    case CBX_EHALF_OPEN_FULL:
    case CBX_EFORCED_OPEN: {
        explain_call c = {why, buf, len};
        if (name && s->ops->peek(s, name, do_explain, &c) == 0)
            return buf;
        snprintf(buf, len, "breaker '%s' refused the call: %s", n, cbx_strerror(why->rc));
        return buf;
    }
    default:
        if (last_err.code == why->rc && last_err.msg[0])
            snprintf(buf, len, "breaker '%s' unavailable: %s", n, last_err.msg);
        else
            snprintf(buf, len, "breaker '%s' unavailable: %s", n, cbx_strerror(why->rc));
        return buf;
    }
}

static int do_set_mode(cbx_breaker *b, void *ud)
{
    cbx_breaker_set_mode(b, *(cbx_breaker_mode *)ud);
    return 0;
}

int cbx_breaker_store_set_mode(cbx_breaker_store *s, const char *name, cbx_breaker_mode mode)
{
    if ((unsigned)mode > CBX_BREAKER_METRICS_ONLY)
        return CBX_EINVAL_CONFIG;
    int r = check_name(name, NULL);
    return r ? r
             : s->ops->use(s, name, NULL, 0, cbx__bstore_default_deadline(), do_set_mode, &mode,
                           NULL);
}

int cbx_breaker_store_forget(cbx_breaker_store *s, const char *name)
{
    int r = check_name(name, NULL);
    return r ? r : s->ops->forget(s, name);
}

int cbx_breaker_store_get_opts(cbx_breaker_store *s, const char *name, cbx_breaker_opts *out)
{
    int r = check_name(name, NULL);
    if (r == 0)
        r = s->ops->get_opts(s, name, out);
    if (r == 0) {
        out->name = NULL;
        out->clock = NULL;
        out->on_event = NULL;
        out->event_ud = NULL;
    }
    return r;
}

int cbx_breaker_store_set_opts(cbx_breaker_store *s, const char *name, const cbx_breaker_opts *o,
                               cbx_err *err)
{
    int r = check_name(name, err);
    if (r)
        return r;
    cbx_breaker_opts opts;
    if (o)
        opts = *o;
    else
        cbx_breaker_opts_default(&opts);
    opts.name = name;
    return s->ops->set_opts(s, name, &opts, err);
}

int cbx_breaker_store_limiter(cbx_breaker_store *s, const char *key, const cbx_ratelimit_opts *o,
                              void **word, cbx_err *err)
{
    *word = NULL;
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len > NAME_MAX_BYTES)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "rate_key", 0, 0,
                              "a rate limit key must be 1 to %d bytes", NAME_MAX_BYTES);
    if (!s->ops->limiter_word)
        return cbx_err_set(err, -ENOTSUP, "host-wide rate limits need the host store");
    return s->ops->limiter_word(s, key, o, word, err);
}

int cbx_breaker_store_limiter_opts(cbx_breaker_store *s, const char *key, cbx_ratelimit_opts *o,
                                   cbx_err *err)
{
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len > NAME_MAX_BYTES)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "rate_key", 0, 0,
                              "a rate limit key must be 1 to %d bytes", NAME_MAX_BYTES);
    if (s->ops->limiter_remote) {
        const cbx_ratelimit_remote *remote = NULL;
        int r = s->ops->limiter_remote(s, key, &remote, err);
        if (r == 0)
            o->remote = remote;
        return r;
    }
    void *word = NULL;
    int r = cbx_breaker_store_limiter(s, key, o, &word, err);
    if (r == 0)
        o->shared_tat = word;
    return r;
}

json_t *cbx_breaker_opts_to_json(const cbx_breaker_opts *o)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    json_object_set_new(j, "consecutive_failures", json_integer(o->consecutive_failures));
    uint64_t open_ns = o->open_ns ? o->open_ns : 60 * CBX_NS_PER_S; /* cbx_breaker_opts' 0 */
    json_object_set_new(
        j, "open_ms",
        json_integer(open_ns == UINT64_MAX ? -1 : (json_int_t)(open_ns / CBX_NS_PER_MS)));
    json_object_set_new(j, "half_open_probes",
                        json_integer(o->half_open_probes ? o->half_open_probes : 1));
    json_object_set_new(j, "close_after", json_integer(o->close_after));
    json_object_set_new(j, "open_multiplier", json_real(o->open_multiplier));
    json_object_set_new(j, "open_max_ms",
                        json_integer((json_int_t)(o->open_max_ns / CBX_NS_PER_MS)));
    json_object_set_new(j, "probe_lease_ms",
                        json_integer((json_int_t)(o->probe_lease_ns / CBX_NS_PER_MS)));
    json_object_set_new(j, "slow_call_ms",
                        json_integer((json_int_t)(o->slow_call_ns / CBX_NS_PER_MS)));
    json_object_set_new(j, "count_window_calls", json_integer(o->count_window.calls));
    json_object_set_new(j, "time_window_ms",
                        json_integer((json_int_t)(o->time_window.length_ns / CBX_NS_PER_MS)));
    return j;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static double ms(double ns)
{
    return ns / (double)CBX_NS_PER_MS;
}

json_t *cbx_breaker_metrics_to_json(const char *name, const cbx_breaker_metrics *m)
{
    json_t *o = json_object();
    json_t *kinds = json_object();
    if (!o || !kinds) {
        json_decref(o);
        json_decref(kinds);
        return NULL;
    }
    for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
        json_object_set_new(kinds, cbx_outcome_name((cbx_outcome)k),
                            json_integer((json_int_t)m->by_kind[k]));
    json_object_set_new(o, "name", json_string(name ? name : ""));
    json_object_set_new(o, "state", json_string(cbx_breaker_state_name(m->state)));
    json_object_set_new(o, "mode", json_string(cbx_breaker_mode_name(m->mode)));
    json_object_set_new(o, "time_in_state_ms",
                        json_integer((json_int_t)(m->time_in_state_ns / CBX_NS_PER_MS)));
    json_object_set_new(o, "calls", json_integer((json_int_t)m->calls));
    json_object_set_new(o, "successes", json_integer((json_int_t)m->successes));
    json_object_set_new(o, "failures", json_integer((json_int_t)m->failures));
    json_object_set_new(o, "ignored", json_integer((json_int_t)m->ignored));
    json_object_set_new(o, "rejections", json_integer((json_int_t)m->rejections));
    json_object_set_new(o, "slow_calls", json_integer((json_int_t)m->slow_calls));
    json_object_set_new(o, "expired_probes", json_integer((json_int_t)m->expired_probes));
    json_object_set_new(o, "late_results", json_integer((json_int_t)m->late_results));
    json_object_set_new(o, "opens", json_integer((json_int_t)m->opens));
    json_object_set_new(o, "consecutive_failures", json_integer(m->consecutive_failures));
    json_object_set_new(o, "probes_in_flight", json_integer(m->probes_in_flight));
    json_object_set_new(o, "reopens", json_integer(m->reopens));
    json_object_set_new(o, "success_rate", json_real(m->success_rate));
    json_object_set_new(o, "latency_count", json_integer((json_int_t)m->latency_count));
    json_object_set_new(o, "latency_mean_ms", json_real(ms(m->latency_mean_ns)));
    json_object_set_new(o, "latency_p50_ms", json_real(ms((double)m->latency_p50_ns)));
    json_object_set_new(o, "latency_p95_ms", json_real(ms((double)m->latency_p95_ns)));
    json_object_set_new(o, "latency_p99_ms", json_real(ms((double)m->latency_p99_ns)));
    json_object_set_new(o, "by_kind", kinds);
    return o;
}

/* How long until a call could be admitted, as an acquire now would see it. */
static uint64_t retry_in_ns(cbx_breaker *b, const cbx_breaker_metrics *m)
{
    if (m->mode != CBX_BREAKER_NORMAL)
        return 0;
    uint64_t now = cbx_clock_now_ns(b->clock);
    if (m->state == CBX_BREAKER_OPEN) {
        uint64_t until = atomic_load_explicit(&b->open_until_ns, memory_order_relaxed);
        return until > now ? until - now : 0;
    }
    if (m->state == CBX_BREAKER_HALF_OPEN && m->probes_in_flight >= b->max_probes) {
        uint64_t first = UINT64_MAX;
        pthread_mutex_lock(&b->mu);
        for (uint32_t i = 0; i < b->max_probes; i++)
            if (b->probes[i].lease && b->probes[i].deadline_ns < first)
                first = b->probes[i].deadline_ns;
        pthread_mutex_unlock(&b->mu);
        return first != UINT64_MAX && first > now ? first - now : 0;
    }
    return 0;
}

typedef struct show_call {
    json_t *out;
} show_call;

static int do_show(cbx_breaker *b, void *ud)
{
    show_call *c = ud;
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(b, &m);
    c->out = cbx_breaker_metrics_to_json(cbx_breaker_name(b), &m);
    if (!c->out)
        return -ENOMEM;
    uint64_t in = retry_in_ns(b, &m);
    json_object_set_new(c->out, "retry_in_ms",
                        json_integer((json_int_t)((in + CBX_NS_PER_MS - 1) / CBX_NS_PER_MS)));
    return 0;
}

int cbx_breaker_store_show(cbx_breaker_store *s, const char *name, json_t **out, cbx_err *err)
{
    *out = NULL;
    int r = check_name(name, err);
    if (r)
        return r;
    show_call c = {NULL};
    r = s->ops->use(s, name, NULL, 0, cbx__bstore_default_deadline(), do_show, &c, err);
    if (r == -ENOENT)
        return cbx_err_set_at(err, r, name, 0, 0, "no breaker named '%s'", name);
    if (r) {
        json_decref(c.out);
        if (r == -ENOMEM)
            cbx_err_set(err, r, "breaker store: out of memory");
        return r;
    }
    cbx_breaker_opts o;
    if (s->ops->get_opts(s, name, &o) == 0)
        json_object_set_new(c.out, "options", cbx_breaker_opts_to_json(&o));
    *out = c.out;
    return 0;
}

int cbx_breaker_store_list(cbx_breaker_store *s, json_t **out, cbx_err *err)
{
    *out = NULL;
    char **names;
    size_t n;
    int r = s->ops->names(s, &names, &n, err);
    if (r)
        return r;
    json_t *arr = json_array();
    if (!arr)
        r = cbx_err_set(err, -ENOMEM, "breaker store: out of memory");
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *one;
        cbx_err e1;
        int r1 = cbx_breaker_store_show(s, names[i], &one, &e1);
        if (r1 == -ENOENT)
            continue; /* forgotten meanwhile */
        if (r1) {
            r = r1;
            if (err)
                *err = e1;
            break;
        }
        json_array_append_new(arr, one);
    }
    cbx__bstore_free_names(names, n);
    if (r) {
        json_decref(arr);
        return r;
    }
    *out = arr;
    return 0;
}
