/* What workers and submitters share: the names on the server, the connection, and making the
 * stream, consumer and bucket where they are missing. */
#ifndef CBX_DIST_WORK_H
#define CBX_DIST_WORK_H

#include <stdint.h>

#include "cbx/err.h"
#include "dist/natslib.h"

#define CBX__DIST_STREAM          "CBX_WORK"
#define CBX__DIST_STREAM_SUBJECTS "cbx.work.>"
#define CBX__DIST_RESULTS         "CBX_RESULTS"
#define CBX__DIST_DEFAULT_URL     "nats://127.0.0.1:4222"
#define CBX__DIST_DEFAULT_QUEUE   "default"

/* url, else $NATS_URL, else the default. */
const char *cbx__dist_url(const char *url);
/* 1 when name is a usable queue name: [A-Za-z0-9_-]{1,64}. */
int cbx__dist_queue_ok(const char *name);

/* The longest executor type name put in a subject. */
#define CBX__DIST_TYPE_MAX 64
/* 1 when s can be one token of a subject: 1 to CBX__DIST_TYPE_MAX printable characters, none of
 * them a space, '.', '*' or '>'. */
int cbx__dist_token_ok(const char *s);

/* How to connect: credentials, TLS, patience. Strings NULL or "" = not given. */
typedef struct cbx__nats_conn_opts {
    const char *token, *user, *password, *ca_file;
    int tls;                          /* require TLS (also implied by ca_file, cert_file) */
    const char *creds_file;           /* a .creds file: the user's JWT and NKey seed */
    const char *cert_file, *key_file; /* a client certificate (chain) and its key, for TLS */
    int64_t timeout_ms;               /* for connecting; 0 = 2000 */
    int reconnect_forever;  /* once connected, never give up reconnecting (else libnats' 60) */
    int lazy;               /* a server that is not there is not a failure: the connection keeps
                               trying in the background, and requests fail meanwhile */
    int send_asap;          /* each message written at once, rather than gathered by libnats'
                               flusher for about a millisecond: for latency */
    struct uv_loop_s *loop; /* driven by this loop (nats_uv.h; made on the loop's thread), with
                               send_asap: what is published is written at the loop's next turn */
} cbx__nats_conn_opts;

/* Load libnats and connect to url (one server or a comma-separated list) as o says (NULL = the
 * defaults). 0, CBX_EPLUGIN, or CBX_EFAILED with a line naming the server, credentials in the
 * URL shown as "***". */
int cbx__dist_open(const char *url, const cbx__nats_conn_opts *o, natsConnection **nc,
                   cbx_err *err);

/* Fill what o leaves unset from the environment: NATS_TOKEN, NATS_USER, NATS_PASSWORD,
 * NATS_CREDS, NATS_CA, NATS_CERT, NATS_KEY, NATS_TLS (1, true or yes). The strings point into
 * the environment. */
void cbx__nats_conn_opts_env(cbx__nats_conn_opts *o);

/* cbx__dist_open for workers and submitters, with the options of the environment: reconnecting for
 * ever once connected (a restarted server is found again), each message written at once (a job
 * passes through several processes and would wait for libnats' flusher in each); _lazy (without
 * send_asap) also takes a server that is not there yet. */
int cbx__dist_connect(const char *url, natsConnection **nc, cbx_err *err);
int cbx__dist_connect_lazy(const char *url, natsConnection **nc, cbx_err *err);
/* cbx__dist_connect driven by loop (nats_uv.h): call it on the loop's thread. */
int cbx__dist_connect_loop(const char *url, struct uv_loop_s *loop, natsConnection **nc,
                           cbx_err *err);
/* 1 when s is a key-value write refused because another process wrote first (the revision
 * moved on, or the key exists). */
int cbx__dist_kv_conflict(natsStatus s);
/* kvStore_Get, read again (up to 5 times) when the server's direct-get reply comes without its
 * headers: nats-server 2.9 sends such a reply now and then while the key is being written by
 * others, and libnats 3.4 fails the get with "direct get message response should have headers".
 * A read changes nothing, so reading again is safe; the failure is not the server being away.
 * A read whose reply does not come within the JetStream context's wait is asked once more (a
 * reply lost while others write the key, seen under load): only a second silence counts as the
 * server being away. */
natsStatus cbx__dist_kv_get(kvEntry **e, kvStore *kv, const char *key);
/* The work stream (work-queue retention, file storage) where it is missing. */
int cbx__dist_ensure_stream(jsCtx *js, cbx_err *err);
/* The key-value bucket `name` opened into *kv, made where missing (one revision per key, file
 * storage, entries kept ttl_ns; 0: for ever); a bucket another process made meanwhile is opened.
 * *kv is NULL on failure. */
natsStatus cbx__dist_kv_bucket(kvStore **kv, jsCtx *js, const char *name, int64_t ttl_ns);
/* The results bucket where it is missing; *kv opened either way. */
int cbx__dist_ensure_results(jsCtx *js, kvStore **kv, cbx_err *err);

#endif
