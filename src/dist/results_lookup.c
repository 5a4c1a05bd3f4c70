/* Stored results asked for and their answers read (see results_lookup.h). */
#include "dist/results_lookup.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "dist/work.h"

#define DIRECT_GET "$JS.API.DIRECT.GET.KV_" CBX__DIST_RESULTS
#define MSG_GET    "$JS.API.STREAM.MSG.GET.KV_" CBX__DIST_RESULTS

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

natsStatus cbx__lookup_ask(natsConnection *nc, const char *id, const char *reply, int direct)
{
    char body[128];
    int len =
        snprintf(body, sizeof body, "{\"last_by_subj\":\"$KV.%s.%s\"}", CBX__DIST_RESULTS, id);
    return natsConnection_PublishRequest(nc, direct ? DIRECT_GET : MSG_GET, reply, body, len);
}

static char *dup_bytes(const void *data, size_t len)
{
    char *t = malloc(len + 1);
    if (t) {
        memcpy(t, data, len);
        t[len] = 0;
    }
    return t;
}

/* The message-get API's answer: {"message": {"hdrs", "data"} (base64)} or {"error": ...}. */
static int msg_get_answer(natsMsg *m, char **text)
{
    const char *data = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    json_t *doc = json_loadb(data ? data : "", len > 0 ? (size_t)len : 0, 0, NULL);
    const json_t *msg = json_object_get(doc, "message");
    const char *b64 = json_string_value(json_object_get(msg, "data"));
    const char *hdrs = json_string_value(json_object_get(msg, "hdrs"));
    int found = 0;
    unsigned char *h = NULL, *d = NULL;
    size_t hn = 0, dn = 0;
    /* a deleted or purged key: its last message is a marker with a KV-Operation header */
    int deleted = hdrs && cbx__base64_decode(hdrs, &h, &hn) == 0 && h &&
                  strstr((const char *)h, "KV-Operation");
    if (b64 && !deleted && cbx__base64_decode(b64, &d, &dn) == 0 && d && dn > 0)
        found = (*text = dup_bytes(d, dn)) != NULL;
    free(h);
    free(d);
    json_decref(doc);
    return found;
}

int cbx__lookup_answer(natsMsg *m, int direct, char **text)
{
    *text = NULL;
    const char *status = NULL, *op = NULL;
    if (natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status)
        return direct && strcmp(status, "503") == 0 ? -1 : 0; /* 404: no such key; 408: none */
    if (!direct)
        return msg_get_answer(m, text);
    /* a deleted or purged key: none */
    if (natsMsgHeader_Get(m, "KV-Operation", &op) == NATS_OK && op)
        return 0;
    const char *data = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    *text = dup_bytes(data ? data : "", len > 0 ? (size_t)len : 0);
    return *text ? 1 : 0;
}
