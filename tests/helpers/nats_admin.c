/* nats_admin URL COMMAND ARGS...: what the nats tests need from a NATS server that the executor
 * under test does not do itself, done with libnats directly.
 *
 *   stream NAME SUBJECT     create a JetStream stream (file storage) taking SUBJECT
 *   kv BUCKET               create a key-value bucket
 *   count NAME              print the number of messages in stream NAME
 *   reply SUBJECT           answer every request on SUBJECT with "echo:" + its data and a header
 *                           X-Echo: yes; prints "ready" once subscribed; runs until killed
 *   pub SUBJECT DATA        publish DATA to SUBJECT (into a stream, when one takes it)
 *   sub SUBJECT N           print the data of the next N messages on SUBJECT, one per line;
 *                           prints "ready" (to stderr) once subscribed
 *   take STREAM DURABLE     take the next message from the pull consumer DURABLE of STREAM and
 *                           print its data, without acknowledging it (as a worker that dies)
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, natsStatus s)
{
    fprintf(stderr, "nats_admin: %s: %s\n", what, natsStatus_GetText(s));
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr,
                "usage: nats_admin URL stream|kv|kv-nodirect|count|reply|pub|sub|take ARGS...\n");
        return 2;
    }
    natsConnection *nc = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, argv[1]);
    if (s != NATS_OK)
        die("connect", s);
    jsCtx *js = NULL;
    if ((s = natsConnection_JetStream(&js, nc, NULL)) != NATS_OK)
        die("jetstream", s);
    const char *cmd = argv[2];
    if (strcmp(cmd, "stream") == 0 && argc == 5) {
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        cfg.Name = argv[3];
        const char *subjects[] = {argv[4]};
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        jsErrCode jerr = 0;
        if ((s = js_AddStream(NULL, js, &cfg, NULL, &jerr)) != NATS_OK)
            die("add stream", s);
    } else if (strcmp(cmd, "kv-nodirect") == 0) {
        /* a bucket's stream as a client older than direct gets makes it */
        char name[256], subject[256];
        snprintf(name, sizeof name, "KV_%s", argv[3]);
        snprintf(subject, sizeof subject, "$KV.%s.>", argv[3]);
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        cfg.Name = name;
        const char *subjects[] = {subject};
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.MaxMsgsPerSubject = 1;
        cfg.AllowRollup = true;
        cfg.DenyDelete = true;
        cfg.Discard = js_DiscardNew;
        cfg.AllowDirect = false;
        jsErrCode jerr = 0;
        if ((s = js_AddStream(NULL, js, &cfg, NULL, &jerr)) != NATS_OK)
            die("add stream", s);
    } else if (strcmp(cmd, "kv") == 0) {
        kvConfig cfg;
        kvConfig_Init(&cfg);
        cfg.Bucket = argv[3];
        cfg.History = 5;
        kvStore *kv = NULL;
        if ((s = js_CreateKeyValue(&kv, js, &cfg)) != NATS_OK)
            die("create bucket", s);
        kvStore_Destroy(kv);
    } else if (strcmp(cmd, "count") == 0) {
        jsStreamInfo *si = NULL;
        if ((s = js_GetStreamInfo(&si, js, argv[3], NULL, NULL)) != NATS_OK)
            die("stream info", s);
        printf("%llu\n", (unsigned long long)si->State.Msgs);
        jsStreamInfo_Destroy(si);
    } else if (strcmp(cmd, "reply") == 0) {
        natsSubscription *sub = NULL;
        if ((s = natsConnection_SubscribeSync(&sub, nc, argv[3])) != NATS_OK)
            die("subscribe", s);
        natsConnection_Flush(nc);
        printf("ready\n");
        fflush(stdout);
        for (;;) {
            natsMsg *m = NULL;
            if ((s = natsSubscription_NextMsg(&m, sub, 600000)) != NATS_OK)
                die("next", s);
            char buf[4096];
            int n = snprintf(buf, sizeof buf, "echo:%.*s", natsMsg_GetDataLength(m),
                             natsMsg_GetData(m));
            natsMsg *r = NULL;
            natsMsg_Create(&r, natsMsg_GetReply(m), NULL, buf, n);
            natsMsgHeader_Set(r, "X-Echo", "yes");
            natsConnection_PublishMsg(nc, r);
            natsMsg_Destroy(r);
            natsMsg_Destroy(m);
        }
    } else if (strcmp(cmd, "pub") == 0 && argc == 5) {
        jsPubAck *ack = NULL;
        if ((s = js_Publish(&ack, js, argv[3], argv[4], (int)strlen(argv[4]), NULL, NULL)) !=
            NATS_OK)
            die("publish", s);
        jsPubAck_Destroy(ack);
    } else if (strcmp(cmd, "sub") == 0 && argc == 5) {
        natsSubscription *sub = NULL;
        if ((s = natsConnection_SubscribeSync(&sub, nc, argv[3])) != NATS_OK)
            die("subscribe", s);
        natsConnection_Flush(nc);
        fprintf(stderr, "ready\n");
        for (int i = atoi(argv[4]); i > 0; i--) {
            natsMsg *m = NULL;
            if ((s = natsSubscription_NextMsg(&m, sub, 600000)) != NATS_OK)
                die("next", s);
            printf("%.*s\n", natsMsg_GetDataLength(m), natsMsg_GetData(m));
            fflush(stdout);
            natsMsg_Destroy(m);
        }
        natsSubscription_Destroy(sub); /* nothing left behind for LeakSanitizer to report */
    } else if (strcmp(cmd, "take") == 0 && argc == 5) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = argv[3];
        so.Consumer = argv[4];
        natsSubscription *sub = NULL;
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        if ((s = js_PullSubscribe(&sub, js, NULL, argv[4], NULL, &so, &jerr)) != NATS_OK)
            die("bind to the consumer", s);
        if ((s = natsSubscription_Fetch(&list, sub, 1, 600000, &jerr)) != NATS_OK)
            die("fetch", s);
        printf("%.*s\n", natsMsg_GetDataLength(list.Msgs[0]), natsMsg_GetData(list.Msgs[0]));
        natsMsgList_Destroy(&list);
        natsSubscription_Destroy(sub);
    } else {
        fprintf(stderr, "nats_admin: unknown command or arguments: %s\n", cmd);
        return 2;
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}
