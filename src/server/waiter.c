/* Requests that wait for something to end (a synchronous submission's execution, a flow run),
 * each with a time limit: the list they are on, their timer, and their removal when the
 * request goes away first. */
#include "server.h"

#include <errno.h>
#include <stdlib.h>

struct srv_waiter {
    h2o_req_t *req;
    srv_waiter **list; /* the list it is on; NULL once answered or gone */
    void *owner;
    uv_timer_t *timer;
    srv_wait_timeout_fn on_timeout;
    srv_waiter *next;
};

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

static void detach(srv_waiter *w)
{
    if (w->list) {
        srv_waiter **pp = w->list;
        while (*pp && *pp != w)
            pp = &(*pp)->next;
        if (*pp)
            *pp = w->next;
        w->list = NULL;
    }
    if (w->timer) {
        uv_timer_stop(w->timer);
        uv_close((uv_handle_t *)w->timer, timer_closed);
        w->timer = NULL;
    }
}

/* The request's pool is released (answered, or the client went away). */
static void disposed(void *p)
{
    detach(p);
}

static void timed_out(uv_timer_t *t)
{
    srv_waiter *w = t->data;
    h2o_req_t *req = w->req;
    detach(w);
    w->on_timeout(req, w->owner);
}

int srv_wait(srv *s, h2o_req_t *req, srv_waiter **list, void *owner, uint64_t ms,
             srv_wait_timeout_fn on_timeout)
{
    uv_timer_t *t = malloc(sizeof *t);
    if (!t)
        return -ENOMEM;
    srv_waiter *w = h2o_mem_alloc_shared(&req->pool, sizeof *w, disposed);
    *w = (srv_waiter){.req = req,
                      .list = list,
                      .owner = owner,
                      .timer = t,
                      .on_timeout = on_timeout,
                      .next = *list};
    *list = w;
    uv_timer_init(&s->loop, t);
    t->data = w;
    uv_timer_start(t, timed_out, ms, 0);
    return 0;
}

h2o_req_t *srv_wait_take(srv_waiter **list)
{
    srv_waiter *w = *list;
    if (!w)
        return NULL;
    h2o_req_t *req = w->req;
    detach(w);
    return req;
}
