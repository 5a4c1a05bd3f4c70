/* The process's connections to servers, one per URL (see shared_conn.h). */
#include "dist/shared_conn.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dist/work.h"

typedef struct shared {
    char *url;
    natsConnection *nc;
    jsCtx *js;
    struct shared *next;
} shared;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static shared *all; /* under mu; never freed: the process keeps them */

/* A new connection to url with the stream made sure of, or NULL with *err set. */
static shared *connect_new(const char *url, cbx_err *err)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    if (cbx__dist_connect(url, &nc, err) != 0)
        return NULL;
    natsStatus s = natsConnection_JetStream(&js, nc, NULL);
    if (s != NATS_OK) {
        cbx_err_set(err, CBX_EFAILED, "JetStream: %s", cbx__nats_why(s));
    } else if (cbx__dist_ensure_stream(js, err) == 0) {
        shared *c = calloc(1, sizeof *c);
        if (c && (c->url = strdup(url)) != NULL) {
            c->nc = nc;
            c->js = js;
            return c;
        }
        free(c);
        cbx_err_set(err, -ENOMEM, "out of memory");
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return NULL;
}

int cbx__dist_shared(const char *url, natsConnection **nc, jsCtx **js, cbx_err *err)
{
    pthread_mutex_lock(&mu);
    shared *c = all;
    while (c && strcmp(c->url, url) != 0)
        c = c->next;
    if (!c && (c = connect_new(url, err)) != NULL) {
        c->next = all;
        all = c;
    }
    pthread_mutex_unlock(&mu);
    if (!c)
        return err && err->code ? err->code : CBX_EFAILED;
    if (natsConnection_Status(c->nc) != NATS_CONN_STATUS_CONNECTED)
        return cbx_err_set(err, CBX_EFAILED, "the NATS server is away (reconnecting to it)");
    *nc = c->nc;
    *js = c->js;
    return 0;
}
