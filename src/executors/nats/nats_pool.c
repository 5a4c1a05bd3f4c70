/* The nats executor's connections: one per server list and credentials, per runtime.
 *
 * libnats connections are thread-safe and reconnect by themselves, so attempts on the pool's
 * threads share one. A connection found closed (its reconnect attempts ran out) is replaced; the
 * old one may still be in another attempt's hands, so it is only destroyed with the pool.
 */
#include "dist/work.h"
#include "executors/nats/nats_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct conn {
    char *key; /* url, user, token, password, tls, ca_file joined with \x1f */
    natsConnection *nc;
    int retired; /* replaced by a newer connection for the same key */
    struct conn *next;
} conn;

struct cbx__nats_pool {
    pthread_mutex_t mu;
    conn *conns;
};

int cbx__nats_pool_open(cbx__nats_pool **out)
{
    cbx__nats_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return 0;
}

void cbx__nats_pool_close(cbx__nats_pool *p)
{
    if (!p)
        return;
    for (conn *c = p->conns, *next; c; c = next) {
        next = c->next;
        natsConnection_Close(c->nc);
        natsConnection_Destroy(c->nc);
        free(c->key);
        free(c);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static const char *str(const json_t *params, const char *name)
{
    const char *s = json_string_value(json_object_get(params, name));
    return s ? s : "";
}

static char *conn_key(const char *url, const json_t *params)
{
    const char *parts[] = {url,
                           str(params, "user"),
                           str(params, "token"),
                           str(params, "password"),
                           str(params, "ca_file"),
                           str(params, "creds_file"),
                           str(params, "cert_file"),
                           str(params, "key_file")};
    size_t len = 8;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        len += strlen(parts[i]) + 1;
    char *key = malloc(len);
    if (!key)
        return NULL;
    snprintf(key, len, "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%d", parts[0], parts[1],
             parts[2], parts[3], parts[4], parts[5], parts[6], parts[7],
             json_is_true(json_object_get(params, "tls")));
    return key;
}

static int connect_new(const char *url, const json_t *params, int64_t connect_ms,
                       natsConnection **out, cbx_err *err)
{
    cbx__nats_conn_opts o = {
        .token = str(params, "token"),
        .user = str(params, "user"),
        .password = str(params, "password"),
        .ca_file = str(params, "ca_file"),
        .tls = json_is_true(json_object_get(params, "tls")),
        .creds_file = str(params, "creds_file"),
        .cert_file = str(params, "cert_file"),
        .key_file = str(params, "key_file"),
        .timeout_ms = connect_ms > 0 ? connect_ms : 1,
    };
    cbx__nats_conn_opts_env(&o); /* what the parameters leave unset: NATS_TOKEN, ... */
    int r = cbx__dist_open(url, &o, out, err);
    if (r && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        cbx_err_set(err, r, "nats: %s", msg);
    }
    return r;
}

int cbx__nats_pool_get(cbx__nats_pool *p, const char *url, const json_t *params, int64_t connect_ms,
                       natsConnection **out, cbx_err *err)
{
    char *key = conn_key(url, params);
    if (!key)
        return cbx_err_set(err, CBX_EFAILED, "nats: out of memory");
    pthread_mutex_lock(&p->mu);
    conn *found = NULL;
    for (conn *c = p->conns; c; c = c->next)
        if (!c->retired && strcmp(c->key, key) == 0) {
            found = c;
            break;
        }
    if (found && natsConnection_IsClosed(found->nc)) {
        found->retired = 1;
        found = NULL;
    }
    int rc = 0;
    if (!found) {
        /* Connecting under the lock: attempts for the same servers wait for one connection
         * rather than each making their own; the wait is bounded by connect_ms. */
        natsConnection *nc = NULL;
        rc = connect_new(url, params, connect_ms, &nc, err);
        if (rc == 0) {
            found = calloc(1, sizeof *found);
            if (!found) {
                natsConnection_Destroy(nc);
                rc = cbx_err_set(err, CBX_EFAILED, "nats: out of memory");
            } else {
                found->key = key;
                key = NULL;
                found->nc = nc;
                found->next = p->conns;
                p->conns = found;
            }
        }
    }
    if (rc == 0 && found)
        *out = found->nc;
    else if (rc == 0)
        rc = cbx_err_set(err, CBX_EFAILED, "nats: no connection");
    pthread_mutex_unlock(&p->mu);
    free(key);
    return rc;
}
