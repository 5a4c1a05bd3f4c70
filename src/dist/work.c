/* The connection and the server-side objects workers and submitters share (see work.h). */
#include "dist/work.h"

#include "cbx/dist.h"
#include "dist/nats_uv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* kvConfig.TTL is in nanoseconds (libnats passes it on as the stream's max age) */
#define RESULTS_TTL_NS (24LL * 3600 * 1000000000)

const char *cbx__dist_url(const char *url)
{
    if (url && *url)
        return url;
    const char *env = getenv("NATS_URL");
    return env && *env ? env : CBX__DIST_DEFAULT_URL;
}

int cbx__dist_queue_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return 0;
    for (; *name; name++)
        if (!isalnum((unsigned char)*name) && *name != '-' && *name != '_')
            return 0;
    return 1;
}

int cbx_remote_queue_ok(const char *name)
{
    return name && cbx__dist_queue_ok(name);
}

int cbx__dist_token_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CBX__DIST_TYPE_MAX)
        return 0;
    for (; *s; s++)
        if (!isgraph((unsigned char)*s) || strchr(".*>", *s))
            return 0;
    return 1;
}

/* Given to libnats so that a connect that cannot reach the server returns at once and goes on
 * in the background (without a callback it would retry before returning). */
static void connected_later(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
}

/* url as it may be shown: credentials in it ("nats://user:pass@host") become "***". */
static void shown_url(const char *url, char *buf, size_t len)
{
    const char *at = strchr(url, '@'), *scheme = strstr(url, "://");
    if (at && scheme && scheme < at && !memchr(scheme + 3, '/', (size_t)(at - scheme - 3)))
        snprintf(buf, len, "%.*s***%s", (int)(scheme + 3 - url), url, at);
    else
        snprintf(buf, len, "%s", url);
}

static int given(const char *s)
{
    return s && *s;
}

int cbx__dist_open(const char *url, const cbx__nats_conn_opts *co, natsConnection **nc,
                   cbx_err *err)
{
    int rc = cbx__nats_load(err);
    if (rc)
        return rc;
    static const cbx__nats_conn_opts none;
    if (!co)
        co = &none;
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, url);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, "cbx");
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, co->timeout_ms > 0 ? co->timeout_ms : 2000);
    if (s == NATS_OK && co->reconnect_forever)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK && co->lazy)
        s = natsOptions_SetRetryOnFailedConnect(o, true, connected_later, NULL);
    if (s == NATS_OK && co->send_asap)
        s = natsOptions_SetSendAsap(o, true);
    if (s == NATS_OK && co->loop) {
        cbx__nats_uv_thread(co->loop);
        s = cbx__nats_uv_options(o, co->loop);
    }
    if (s == NATS_OK && given(co->token))
        s = natsOptions_SetToken(o, co->token);
    if (s == NATS_OK && given(co->user))
        s = natsOptions_SetUserInfo(o, co->user, co->password);
    if (s == NATS_OK && given(co->creds_file))
        s = natsOptions_SetUserCredentialsFromFiles(o, co->creds_file, NULL);
    if (s == NATS_OK && (co->tls || given(co->ca_file) || given(co->cert_file)))
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && given(co->ca_file))
        s = natsOptions_LoadCATrustedCertificates(o, co->ca_file);
    if (s == NATS_OK && (given(co->cert_file) || given(co->key_file)))
        s = natsOptions_LoadCertificatesChain(o, co->cert_file, co->key_file);
    char shown[512];
    shown_url(url, shown, sizeof shown);
    if (s != NATS_OK) {
        natsOptions_Destroy(o);
        return cbx_err_set(err, CBX_EFAILED, "options for %s: %s", shown, cbx__nats_why(s));
    }
    s = natsConnection_Connect(nc, o);
    if (co->lazy && s == NATS_NOT_YET_CONNECTED)
        s = NATS_OK; /* it goes on trying in the background */
    natsOptions_Destroy(o);
    if (s != NATS_OK)
        return cbx_err_set(err, CBX_EFAILED, "cannot connect to %s: %s", shown, cbx__nats_why(s));
    return 0;
}

static const char *env_of(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void cbx__nats_conn_opts_env(cbx__nats_conn_opts *o)
{
    if (!given(o->token))
        o->token = env_of("NATS_TOKEN");
    if (!given(o->user)) {
        o->user = env_of("NATS_USER");
        if (!given(o->password))
            o->password = env_of("NATS_PASSWORD");
    }
    if (!given(o->creds_file))
        o->creds_file = env_of("NATS_CREDS");
    if (!given(o->ca_file))
        o->ca_file = env_of("NATS_CA");
    if (!given(o->cert_file) && !given(o->key_file)) {
        o->cert_file = env_of("NATS_CERT");
        o->key_file = env_of("NATS_KEY");
    }
    const char *tls = env_of("NATS_TLS");
    if (tls &&
        (strcmp(tls, "1") == 0 || strcasecmp(tls, "true") == 0 || strcasecmp(tls, "yes") == 0))
        o->tls = 1;
}

int cbx__dist_connect(const char *url, natsConnection **nc, cbx_err *err)
{
    cbx__nats_conn_opts o = {.reconnect_forever = 1, .send_asap = 1};
    cbx__nats_conn_opts_env(&o);
    return cbx__dist_open(url, &o, nc, err);
}

int cbx__dist_connect_loop(const char *url, struct uv_loop_s *loop, natsConnection **nc,
                           cbx_err *err)
{
    cbx__nats_conn_opts o = {.reconnect_forever = 1, .send_asap = 1, .loop = loop};
    cbx__nats_conn_opts_env(&o);
    return cbx__dist_open(url, &o, nc, err);
}

int cbx__dist_connect_lazy(const char *url, natsConnection **nc, cbx_err *err)
{
    cbx__nats_conn_opts o = {.reconnect_forever = 1, .lazy = 1};
    cbx__nats_conn_opts_env(&o);
    return cbx__dist_open(url, &o, nc, err);
}

int cbx__dist_kv_conflict(natsStatus s)
{
    const char *w = s != NATS_OK ? cbx__nats_why(s) : "";
    return s != NATS_OK && (strstr(w, "wrong last sequence") || strstr(w, "key exists"));
}

natsStatus cbx__dist_kv_get(kvEntry **e, kvStore *kv, const char *key)
{
    natsStatus s = NATS_OK;
    int silences = 0;
    for (int i = 0; i < 6; i++) {
        s = kvStore_Get(e, kv, key);
        if (s == NATS_TIMEOUT && ++silences < 2)
            continue;
        if (s != NATS_ERR || !strstr(cbx__nats_why(s), "should have headers"))
            break;
    }
    return s;
}

int cbx__dist_ensure_stream(jsCtx *js, cbx_err *err)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, CBX__DIST_STREAM, NULL, &jerr);
    if (s == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (s != NATS_NOT_FOUND)
        return cbx_err_set(err, CBX_EFAILED, "stream %s: %s", CBX__DIST_STREAM, cbx__nats_why(s));
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = CBX__DIST_STREAM;
    const char *subjects[] = {CBX__DIST_STREAM_SUBJECTS};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = js_WorkQueuePolicy;
    cfg.Storage = js_FileStorage;
    s = js_AddStream(NULL, js, &cfg, NULL, &jerr);
    /* another process may have made it meanwhile: fine */
    if (s != NATS_OK && jerr != JSStreamNameExistErr)
        return cbx_err_set(err, CBX_EFAILED, "cannot make stream %s: %s", CBX__DIST_STREAM,
                           cbx__nats_why(s));
    return 0;
}

natsStatus cbx__dist_kv_bucket(kvStore **kv, jsCtx *js, const char *name, int64_t ttl_ns)
{
    natsStatus s = js_KeyValue(kv, js, name);
    if (s == NATS_NOT_FOUND) {
        kvConfig cfg;
        kvConfig_Init(&cfg);
        cfg.Bucket = name;
        cfg.History = 1;
        cfg.TTL = ttl_ns;
        cfg.StorageType = js_FileStorage;
        s = js_CreateKeyValue(kv, js, &cfg);
        if (s != NATS_OK && js_KeyValue(kv, js, name) == NATS_OK)
            s = NATS_OK; /* made by another process meanwhile */
    }
    if (s != NATS_OK)
        *kv = NULL;
    return s;
}

int cbx__dist_ensure_results(jsCtx *js, kvStore **kv, cbx_err *err)
{
    natsStatus s = cbx__dist_kv_bucket(kv, js, CBX__DIST_RESULTS, RESULTS_TTL_NS);
    if (s != NATS_OK)
        return cbx_err_set(err, CBX_EFAILED, "results bucket %s: %s", CBX__DIST_RESULTS,
                           cbx__nats_why(s));
    return 0;
}
