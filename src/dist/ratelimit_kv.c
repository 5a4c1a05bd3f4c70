/* Rate limiters shared by the cluster (ratelimit_kv.h).
 *
 * A limiter's whole state is one number, its GCRA arrival time in wall-clock nanoseconds (hosts
 * share that clock: keep it in step with NTP), kept as decimal text under the limiter's key in
 * the bucket CBX_RATES. A take reads it with its revision, decides with cbx_ratelimit_gcra (the
 * same arithmetic as a limiter in memory), and, when tokens were taken, writes the new arrival
 * time only if the revision is still the one read (kvStore_Update; kvStore_Create for a key not
 * there yet). When another process wrote first, the take is decided again on the newer value, so
 * the bucket never gives out more than its rate allows, cluster-wide. A refusal writes nothing.
 *
 * While the server cannot be reached a take answers -EAGAIN at once (after the first failure,
 * for RETRY_SERVER_NS) and the limiter decides on its own word; a warning says so once per
 * outage. */
#include "dist/ratelimit_kv.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbx/breaker_store.h"
#include "core/log_internal.h"
#include "dist/work.h"

#define MAX_TRIES       200
#define RETRY_SERVER_NS (2 * CBX_NS_PER_S)

typedef struct limiter {
    cbx_ratelimit_remote remote; /* ud = this */
    cbx__kv_rates *owner;
    struct limiter *next;
    char key[]; /* the name as a key: =XX for what a key cannot hold */
} limiter;

struct cbx__kv_rates {
    jsCtx *js;
    kvStore *kv; /* NULL until the bucket could be opened */
    pthread_mutex_t mu;
    limiter *limiters;
    char *url;
    atomic_int unreachable;
    atomic_uint_least64_t down_until_ns;
    atomic_uint_least64_t cas_retries;
};

static uint64_t now_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * CBX_NS_PER_S + (uint64_t)ts.tv_nsec;
}

int cbx__kv_rates_new(cbx__kv_rates **out, jsCtx *js, const char *url, cbx_err *err)
{
    *out = NULL;
    cbx__kv_rates *r = calloc(1, sizeof *r);
    if (!r || !(r->url = strdup(url))) {
        free(r);
        return cbx_err_set(err, -ENOMEM, "rate limits: out of memory");
    }
    r->js = js;
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

void cbx__kv_rates_free(cbx__kv_rates *r)
{
    if (!r)
        return;
    for (limiter *l = r->limiters, *next; l; l = next) {
        next = l->next;
        free(l);
    }
    kvStore_Destroy(r->kv);
    pthread_mutex_destroy(&r->mu);
    free(r->url);
    free(r);
}

uint64_t cbx__kv_rates_cas_retries(const cbx__kv_rates *r)
{
    return r ? atomic_load(&r->cas_retries) : 0;
}

/* The bucket, opened (made where missing) on first use; NULL when the server says no. */
static kvStore *bucket(cbx__kv_rates *r, natsStatus *st)
{
    pthread_mutex_lock(&r->mu);
    *st = NATS_OK;
    if (!r->kv)
        *st = cbx__dist_kv_bucket(&r->kv, r->js, CBX__DIST_RATES, 0);
    kvStore *kv = r->kv;
    pthread_mutex_unlock(&r->mu);
    return kv;
}

static int away(cbx__kv_rates *r, natsStatus st)
{
    atomic_store(&r->down_until_ns, now_of(CLOCK_MONOTONIC) + RETRY_SERVER_NS);
    if (atomic_exchange(&r->unreachable, 1) == 0)
        CBX_LOG(CBX_LOG_WARN, "ratelimit",
                "the cluster's rate limits on %s are unreachable (%s): deciding on this "
                "process's own view until they are back",
                r->url, cbx__nats_why(st));
    return -EAGAIN;
}

static int take(void *ud, uint64_t interval_ns, uint64_t window_ns, uint32_t n,
                uint64_t max_wait_ns, uint64_t *delay_ns)
{
    limiter *l = ud;
    cbx__kv_rates *r = l->owner;
    if (now_of(CLOCK_MONOTONIC) < atomic_load(&r->down_until_ns))
        return -EAGAIN;
    natsStatus st;
    kvStore *kv = bucket(r, &st);
    if (!kv)
        return away(r, st);
    int silent = 0;
    for (int tries = 0; tries < MAX_TRIES; tries++) {
        kvEntry *e = NULL;
        uint64_t tat = 0, rev = 0;
        st = cbx__dist_kv_get(&e, kv, l->key);
        if (st == NATS_OK) {
            char text[32] = "";
            int len = kvEntry_ValueLen(e);
            if (len > 0 && len < (int)sizeof text)
                memcpy(text, kvEntry_Value(e), (size_t)len);
            tat = strtoull(text, NULL, 10); /* anything else reads as a full bucket */
            rev = kvEntry_Revision(e);
            kvEntry_Destroy(e);
        } else if (st != NATS_NOT_FOUND) {
            return away(r, st);
        }
        uint64_t next;
        int rc = cbx_ratelimit_gcra(tat, now_of(CLOCK_REALTIME), interval_ns, window_ns, n,
                                    max_wait_ns, &next, delay_ns);
        if (atomic_exchange(&r->unreachable, 0) == 1)
            CBX_LOG(CBX_LOG_WARN, "ratelimit", "the cluster's rate limits on %s are back", r->url);
        if (rc)
            return rc;
        char text[32];
        int len = snprintf(text, sizeof text, "%" PRIu64, next);
        uint64_t new_rev = 0;
        st = rev ? kvStore_Update(&new_rev, kv, l->key, text, len, rev)
                 : kvStore_Create(&new_rev, kv, l->key, text, len);
        if (st == NATS_OK)
            return 0;
        /* A write whose acknowledgement did not come is decided again on what the key holds
         * now, once: when the write did land, that takes from the bucket twice (the safe side). */
        if (st == NATS_TIMEOUT && !silent++)
            continue;
        if (!cbx__dist_kv_conflict(st))
            return away(r, st);
        atomic_fetch_add(&r->cas_retries, 1);
    }
    return -EAGAIN; /* written too often by others to win: decide here this time */
}

static int key_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '/';
}

int cbx__kv_rates_limiter(cbx__kv_rates *r, const char *key, const cbx_ratelimit_remote **out,
                          cbx_err *err)
{
    char k[3 * CBX_BREAKER_NAME_MAX + 1];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p && o + 4 < sizeof k; p++) {
        if (key_char(*p))
            k[o++] = (char)*p;
        else
            o += (size_t)snprintf(k + o, sizeof k - o, "=%02X", *p);
    }
    k[o] = '\0';
    pthread_mutex_lock(&r->mu);
    limiter *l = r->limiters;
    while (l && strcmp(l->key, k) != 0)
        l = l->next;
    if (!l && (l = calloc(1, sizeof *l + o + 1))) {
        memcpy(l->key, k, o + 1);
        l->owner = r;
        l->remote = (cbx_ratelimit_remote){.take = take, .ud = l};
        l->next = r->limiters;
        r->limiters = l;
    }
    pthread_mutex_unlock(&r->mu);
    if (!l)
        return cbx_err_set(err, -ENOMEM, "rate limits: out of memory");
    *out = &l->remote;
    return 0;
}
