/* Stored results looked up a batch at a time (see results_lookup.h). */
#include "dist/results_lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/work.h"

#define DIRECT_GET "$JS.API.DIRECT.GET.KV_" CBX__DIST_RESULTS

struct cbx__lookup {
    natsConnection *nc;
    kvStore *kv;
    natsSubscription *sub;
    char *inbox;    /* replies come to <inbox>.<batch>.<index> */
    uint64_t batch; /* answers of an earlier batch that timed out are told apart by it */
    int no_direct;  /* the server answered "no responders": one get per id */
};

int cbx__lookup_key_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= 40 || id[0] == '.' || id[n - 1] == '.')
        return 0;
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-/_=.", c)))
            return 0;
    }
    return 1;
}

int cbx__lookup_new(cbx__lookup **out, natsConnection *nc, kvStore *kv, cbx_err *err)
{
    *out = NULL;
    cbx__lookup *l = calloc(1, sizeof *l);
    natsInbox *inbox = NULL;
    char wild[160];
    natsStatus s = l ? natsInbox_Create(&inbox) : NATS_NO_MEMORY;
    if (s == NATS_OK && !(l->inbox = strdup(inbox)))
        s = NATS_NO_MEMORY;
    natsInbox_Destroy(inbox);
    if (s == NATS_OK) {
        snprintf(wild, sizeof wild, "%s.>", l->inbox);
        s = natsConnection_SubscribeSync(&l->sub, nc, wild);
    }
    if (s != NATS_OK) {
        cbx__lookup_free(l);
        return cbx_err_set(err, CBX_EFAILED, "results look-up: %s", cbx__nats_why(s));
    }
    l->nc = nc;
    l->kv = kv;
    *out = l;
    return 0;
}

void cbx__lookup_free(cbx__lookup *l)
{
    if (!l)
        return;
    natsSubscription_Destroy(l->sub);
    free(l->inbox);
    free(l);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_data(const char *data, int len)
{
    char *t = malloc((size_t)len + 1);
    if (t) {
        memcpy(t, data, (size_t)len);
        t[len] = 0;
    }
    return t;
}

/* One synchronous get per id: for servers whose bucket has no direct gets. */
static void one_by_one(cbx__lookup *l, const char *const *ids, int n, char **found)
{
    for (int i = 0; i < n; i++) {
        kvEntry *e = NULL;
        if (!found[i] && cbx__dist_kv_get(&e, l->kv, ids[i]) == NATS_OK)
            found[i] = dup_data(kvEntry_Value(e), kvEntry_ValueLen(e));
        kvEntry_Destroy(e);
    }
}

/* What an answer says: 1 found (*text set), 0 none, -1 no direct gets on this server. */
static int answer(natsMsg *m, char **text)
{
    const char *status = NULL, *op = NULL;
    if (natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status) {
        return strcmp(status, "503") == 0 ? -1 : 0; /* 404: no such key; 408 and the like: none */
    }
    /* a deleted or purged key: none */
    if (natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op)
        return 0;
    *text = dup_data(natsMsg_GetData(m) ? natsMsg_GetData(m) : "", natsMsg_GetDataLength(m));
    return *text ? 1 : 0;
}

void cbx__lookup_results(cbx__lookup *l, const char *const *ids, int n, char **found,
                         int64_t timeout_ms)
{
    for (int i = 0; i < n; i++)
        found[i] = NULL;
    if (n <= 0)
        return;
    if (l->no_direct) {
        one_by_one(l, ids, n, found);
        return;
    }
    uint64_t batch = ++l->batch;
    int sent = 0;
    for (int i = 0; i < n; i++) {
        char reply[200], body[128];
        snprintf(reply, sizeof reply, "%s.%llu.%d", l->inbox, (unsigned long long)batch, i);
        int len = snprintf(body, sizeof body, "{\"last_by_subj\":\"$KV.%s.%s\"}", CBX__DIST_RESULTS,
                           ids[i]);
        if (natsConnection_PublishRequest(l->nc, DIRECT_GET, reply, body, len) != NATS_OK)
            break;
        sent++;
    }
    size_t prefix = strlen(l->inbox);
    int64_t deadline = now_ms() + timeout_ms;
    for (int left = sent; left > 0;) {
        int64_t wait = deadline - now_ms();
        natsMsg *m = NULL;
        if (wait <= 0 || natsSubscription_NextMsg(&m, l->sub, wait) != NATS_OK)
            break;
        const char *subj = natsMsg_GetSubject(m);
        unsigned long long b = 0;
        int i = -1;
        if (strlen(subj) > prefix && sscanf(subj + prefix, ".%llu.%d", &b, &i) == 2 && b == batch &&
            i >= 0 && i < sent) {
            int a = answer(m, &found[i]);
            left--;
            if (a < 0) {
                l->no_direct = 1;
                natsMsg_Destroy(m);
                one_by_one(l, ids, n, found);
                return;
            }
        }
        natsMsg_Destroy(m);
    }
}
