/* dist_load URL N [ROUND_TRIPS]: end-to-end throughput and round trips of executions through the
 * workers pulling from URL (cbx worker), with libnats directly as the submitter.
 *
 * Throughput: N no-op jobs (the chaos executor with no delay: nothing but the runtime's own
 * work) published at once to cbx.work.default; the clock stops when the N-th result has been
 * announced on cbx.result.*, that is stored in CBX_RESULTS by a worker, before its ack.
 * Round trip: ROUND_TRIPS jobs (default 500) one after the other, each published asynchronously and
 * its result waited for; p50 and p99. Prints tab-separated lines: case, value, unit; last, the CPU
 * time this submitter used. */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, natsStatus s)
{
    fprintf(stderr, "dist_load: %s: %s\n", what, natsStatus_GetText(s));
    exit(1);
}

static void job(char *buf, size_t len, const char *id)
{
    snprintf(buf, len, "{\"id\":\"%s\",\"fresh\":true,\"executor\":\"chaos\",\"params\":{}}", id);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: dist_load URL N [ROUND_TRIPS]\n");
        return 2;
    }
    int n = atoi(argv[2]);
    if (n < 1 || n > 10000000) {
        fprintf(stderr, "dist_load: N: 1 to 10000000\n");
        return 2;
    }
    int rts = argc == 4 ? atoi(argv[3]) : 500;
    if (rts < 0 || rts > 100000)
        rts = 500;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, argv[1]);
    if (s != NATS_OK)
        die("connect", s);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 4096;
    jo.PublishAsync.StallWait = 60000; /* a full window waits for the server, not fails */
    if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
        die("jetstream", s);
    /* the workers make the stream and their consumer: jobs published before would be lost */
    for (int tries = 0;; tries++) {
        jsConsumerInfo *ci = NULL;
        if (js_GetConsumerInfo(&ci, js, "CBX_WORK", "cbx-worker-default", NULL, NULL) == NATS_OK) {
            jsConsumerInfo_Destroy(ci);
            break;
        }
        if (tries == 600)
            die("no worker made the queue's consumer within a minute", NATS_NOT_FOUND);
        nats_Sleep(100);
    }
    natsSubscription *sub = NULL;
    if ((s = natsConnection_SubscribeSync(&sub, nc, "cbx.result.*")) != NATS_OK)
        die("subscribe", s);
    natsSubscription_SetPendingLimits(sub, 1 << 20, 1 << 30); /* every result of the run fits */
    natsConnection_Flush(nc);
    char buf[256], id[64];
    long tag = (long)time(NULL);

    /* throughput */
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "load-%ld-%d", tag, i);
        job(buf, sizeof buf, id);
        if ((s = js_PublishAsync(js, "cbx.work.default", buf, (int)strlen(buf), NULL)) != NATS_OK)
            die("publish", s);
    }
    /* Each result counted once, by its index in the id. An announcement is core NATS: one
     * published while this connection was reconnecting (bench/dist_faults.sh restarts the server)
     * is lost, so after 5 s without one the bucket is asked for the results still missing. */
    char *seen = calloc((unsigned)n, 1);
    kvStore *kv = NULL;
    if (!seen)
        die("results", NATS_NO_MEMORY);
    int quiet_ms = 0;
    for (int got = 0; got < n;) {
        natsMsg *m = NULL;
        s = natsSubscription_NextMsg(&m, sub, 5000);
        if (s == NATS_OK) {
            const char *p = strrchr(natsMsg_GetSubject(m), '-');
            int i = p ? atoi(p + 1) : -1;
            if (i >= 0 && i < n && !seen[i]) {
                seen[i] = 1;
                got++;
            }
            natsMsg_Destroy(m);
            quiet_ms = 0;
            continue;
        }
        if (s != NATS_TIMEOUT || (quiet_ms += 5000) >= 120000)
            die("waiting for results", s);
        if (!kv && js_KeyValue(&kv, js, "CBX_RESULTS") != NATS_OK)
            continue;
        for (int i = 0; i < n; i++) {
            kvEntry *e = NULL;
            snprintf(id, sizeof id, "load-%ld-%d", tag, i);
            if (!seen[i] && kvStore_Get(&e, kv, id) == NATS_OK) {
                seen[i] = 1;
                got++;
            }
            kvEntry_Destroy(e);
        }
    }
    kvStore_Destroy(kv);
    free(seen);
    double t = now_s() - t0;
    printf("throughput_%d\t%.0f\ttasks/s\n", n, n / t);
    js_PublishAsyncComplete(js, NULL);

    /* round trips, one at a time: the job published without waiting for the server's
     * acknowledgement (its result cannot come before it is stored), its result waited for. On a
     * connection of its own that writes each message at once (libnats' SendAsap), as a submitter
     * that waits for one job does, rather than after the flusher's millisecond. */
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions *opts = NULL;
    if ((s = natsOptions_Create(&opts)) != NATS_OK || (s = natsOptions_SetURL(opts, argv[1])) ||
        (s = natsOptions_SetSendAsap(opts, true)) || (s = natsConnection_Connect(&nc, opts)))
        die("connect", s);
    natsOptions_Destroy(opts);
    if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
        die("jetstream", s);
    if ((s = natsConnection_SubscribeSync(&sub, nc, "cbx.result.*")) != NATS_OK)
        die("subscribe", s);
    natsConnection_Flush(nc);
    double *rt = calloc((size_t)(rts ? rts : 1), sizeof *rt);
    if (!rt)
        die("round trips", NATS_NO_MEMORY);
    for (int i = 0; i < rts; i++) {
        snprintf(id, sizeof id, "rt-%ld-%d", tag, i);
        char subj[96];
        snprintf(subj, sizeof subj, "cbx.result.%s", id);
        job(buf, sizeof buf, id);
        double a = now_s();
        if ((s = js_PublishAsync(js, "cbx.work.default", buf, (int)strlen(buf), NULL)) != NATS_OK)
            die("publish", s);
        for (;;) {
            natsMsg *m = NULL;
            if ((s = natsSubscription_NextMsg(&m, sub, 120000)) != NATS_OK)
                die("waiting for a result", s);
            int mine = strcmp(natsMsg_GetSubject(m), subj) == 0;
            natsMsg_Destroy(m);
            if (mine)
                break;
        }
        rt[i] = (now_s() - a) * 1e3;
    }
    js_PublishAsyncComplete(js, NULL);
    qsort(rt, (size_t)rts, sizeof rt[0], cmp);
    if (rts) {
        printf("round_trip_p50\t%.3f\tms\n", rt[rts / 2]);
        printf("round_trip_p99\t%.3f\tms\n", rt[rts * 99 / 100]);
    }
    free(rt);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("submitter_cpu\t%.2f\ts\n", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}
