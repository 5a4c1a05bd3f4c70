/* The http executor's per-loop context: one curl multi handle driven by libuv.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: a uv_poll_t per socket) and
 * when to call it back (CURLMOPT_TIMERFUNCTION: one uv_timer_t); we hand readiness and timer
 * expiries to curl_multi_socket_action and collect finished transfers with curl_multi_info_read.
 *
 * The context outlives its transfers so that the multi handle's connection cache carries over
 * from one execution to the next. Its libuv handles do not: the timer and the idle handle that
 * runs deferred reports are opened when the first task begins and closed when the last one has
 * reported, and a socket curl still watches while nothing runs (an idle connection) is unref'd.
 * So an idle context never keeps a loop running.
 *
 * Sockets cost system calls, and curl asks for each connection to be forgotten (CURL_POLL_REMOVE)
 * when its transfer ends and watched again when the next transfer takes it from the cache. So
 * while tasks run, the poll handle of a connection curl has set aside stays as it is, ready for
 * the next transfer on it: a connection socket is known from CURLOPT_SOCKOPTFUNCTION and its end
 * from CURLOPT_CLOSESOCKETFUNCTION, which closes the handle before the descriptor (whose number
 * may then be reused). Other sockets (a resolver's) are closed at CURL_POLL_REMOVE. And libuv's
 * uv_poll_start re-registers the descriptor with epoll even for the same events, so it is called
 * only when the events change.
 */
#include "executors/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define EASY_POOL_MAX 256

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    cbx__http_loop *lp;
    int events; /* what the poll handle watches: UV_READABLE | UV_WRITABLE, 0 when stopped */
    int idle;   /* curl forgot it (CURL_POLL_REMOVE): a connection in its cache */
    struct sock_ctx *prev, *next;
} sock_ctx;

/* What is known of a descriptor number. */
typedef struct fd_slot {
    sock_ctx *sc; /* its poll handle, if any */
    int conn;     /* a connection socket: curl closes it through on_close_socket */
} fd_slot;

/* The handles that live while tasks run; freed when both have closed. */
typedef struct loop_handles {
    uv_timer_t timer;
    uv_idle_t idle;
    int open;
    cbx__http_loop *release; /* a context released while busy: freed once these have closed */
} loop_handles;

struct cbx__http_loop {
    uv_loop_t *loop;
    CURLM *multi;
    loop_handles *h; /* NULL while no task runs */
    size_t busy;     /* tasks begun and not yet reported */
    size_t peak;     /* the most tasks begun at once */
    int env_proxy;   /* a proxy variable was set in the environment when the context was made */
    int released;    /* cbx__http_loop_close came while busy: free when idle */
    long timeout_ms; /* curl's last timer request; -1 = none */
    sock_ctx *socks;
    fd_slot *fds; /* by descriptor number */
    size_t nfds;
    cbx__http_xfer *deferred_head, *deferred_tail;
    cbx__http_easy **pool;
    size_t npool;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- finished transfers --------------------------------------------------------------------- */

static void drain_info(cbx__http_loop *lp)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(lp->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result; /* m is gone after remove_handle */
        cbx__http_easy *he = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&he);
        curl_multi_remove_handle(lp->multi, e);
        cbx__http_xfer *x = he ? he->x : NULL;
        if (!x)
            continue;
        x->result = rc;
        x->phase = 2;
        cbx__http_xfer_end(x);
    }
}

/* ---- sockets -------------------------------------------------------------------------------- */

/* The slot of descriptor fd; grow: make room for it. NULL when out of range or memory. */
static fd_slot *slot_of(cbx__http_loop *lp, curl_socket_t fd, int grow)
{
    if (fd < 0)
        return NULL;
    size_t i = (size_t)fd;
    if (i >= lp->nfds) {
        if (!grow)
            return NULL;
        size_t n = lp->nfds ? lp->nfds : 64;
        while (n <= i)
            n *= 2;
        fd_slot *t = realloc(lp->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + lp->nfds, 0, (n - lp->nfds) * sizeof *t);
        lp->fds = t;
        lp->nfds = n;
    }
    return &lp->fds[i];
}

static void sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_release(cbx__http_loop *lp, sock_ctx *sc)
{
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        lp->socks = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    fd_slot *fs = slot_of(lp, sc->fd, 0);
    if (fs && fs->sc == sc)
        fs->sc = NULL;
    uv_close((uv_handle_t *)&sc->poll, sock_closed);
}

/* Close the poll handles of connections curl has set aside (when the last task has reported:
 * an idle context keeps no handle open for them). */
static void release_idle_socks(cbx__http_loop *lp)
{
    sock_ctx *next;
    for (sock_ctx *sc = lp->socks; sc; sc = next) {
        next = sc->next;
        if (sc->idle)
            sock_release(lp, sc);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *sc = p->data;
    cbx__http_loop *lp = sc->lp;
    if (sc->idle) {
        /* Something arrived on a connection no transfer uses (the server closing it, most
         * likely): stop watching, or the loop would spin; curl finds out when it next looks. */
        uv_poll_stop(p);
        sc->events = 0;
        return;
    }
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR | CURL_CSELECT_IN | CURL_CSELECT_OUT;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running = 0;
    curl_multi_socket_action(lp->multi, sc->fd, flags, &running);
    drain_info(lp);
}

static sock_ctx *sock_new(cbx__http_loop *lp, curl_socket_t s)
{
    sock_ctx *sc = calloc(1, sizeof *sc);
    if (!sc)
        return NULL;
    if (uv_poll_init_socket(lp->loop, &sc->poll, s) != 0) {
        free(sc);
        return NULL;
    }
    sc->fd = s;
    sc->lp = lp;
    sc->poll.data = sc;
    sc->next = lp->socks;
    if (lp->socks)
        lp->socks->prev = sc;
    lp->socks = sc;
    if (lp->busy == 0)
        uv_unref((uv_handle_t *)&sc->poll);
    return sc;
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    cbx__http_loop *lp = userp;
    sock_ctx *sc = socketp;
    fd_slot *fs = slot_of(lp, s, what != CURL_POLL_REMOVE);
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            curl_multi_assign(lp->multi, s, NULL);
            if (fs && fs->conn && fs->sc == sc && lp->busy > 0)
                sc->idle = 1; /* kept for the next transfer on this connection */
            else
                sock_release(lp, sc);
        }
        return 0;
    }
    if (!sc) {
        if (fs && fs->sc) {
            sc = fs->sc; /* a connection taken back from curl's cache */
            sc->idle = 0;
        } else if ((sc = sock_new(lp, s)) == NULL) {
            return -1;
        } else if (fs) {
            fs->sc = sc;
        }
        curl_multi_assign(lp->multi, s, sc);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if (events == sc->events)
        return 0;
    int r = events ? uv_poll_start(&sc->poll, events, on_poll) : uv_poll_stop(&sc->poll);
    sc->events = r == 0 ? events : 0;
    return r == 0 ? 0 : -1;
}

static int on_sockopt(void *clientp, curl_socket_t s, curlsocktype purpose)
{
    cbx__http_loop *lp = clientp;
    fd_slot *fs = purpose == CURLSOCKTYPE_IPCXN ? slot_of(lp, s, 1) : NULL;
    if (fs) {
        /* A poll handle still there for this number belonged to a socket closed behind our
         * back: it goes before the new socket is watched. */
        if (fs->sc)
            sock_release(lp, fs->sc);
        fs->conn = 1;
    }
    return CURL_SOCKOPT_OK;
}

static int on_close_socket(void *clientp, curl_socket_t s)
{
    cbx__http_loop *lp = clientp;
    fd_slot *fs = slot_of(lp, s, 0);
    if (fs) {
        if (fs->sc)
            sock_release(lp, fs->sc); /* before close: the number may be reused at once */
        fs->conn = 0;
    }
    return close(s) == 0 ? 0 : 1;
}

void cbx__http_loop_configure(cbx__http_loop *lp, CURL *easy)
{
    if (!lp->env_proxy) {
        /* No proxy: said once, instead of curl reading 4 to 6 variables for every transfer. */
        curl_easy_setopt(easy, CURLOPT_PROXY, "");
        curl_easy_setopt(easy, CURLOPT_NOPROXY, "");
    }
    curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(easy, CURLOPT_SOCKOPTDATA, lp);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, lp);
}

/* ---- the timer ------------------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t)
{
    cbx__http_loop *lp = t->data;
    int running = 0;
    curl_multi_socket_action(lp->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_info(lp);
}

static void timer_apply(cbx__http_loop *lp)
{
    if (!lp->h)
        return;
    if (lp->timeout_ms < 0)
        uv_timer_stop(&lp->h->timer);
    else
        uv_timer_start(&lp->h->timer, on_timer, (uint64_t)lp->timeout_ms, 0);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    cbx__http_loop *lp = userp;
    lp->timeout_ms = timeout_ms;
    timer_apply(lp);
    return 0;
}

/* ---- deferred reports ----------------------------------------------------------------------- */

static void on_idle(uv_idle_t *i)
{
    cbx__http_loop *lp = i->data;
    cbx__http_xfer *x = lp->deferred_head;
    lp->deferred_head = lp->deferred_tail = NULL;
    uv_idle_stop(i);
    /* Reports may begin new tasks (which may defer again, onto a fresh list) and the last one
     * closes this handle: nothing below touches i. */
    while (x) {
        cbx__http_xfer *next = x->next_deferred;
        x->next_deferred = NULL;
        cbx__http_xfer_end(x);
        x = next;
    }
}

void cbx__http_loop_defer(cbx__http_loop *lp, cbx__http_xfer *x)
{
    x->next_deferred = NULL;
    if (lp->deferred_tail)
        lp->deferred_tail->next_deferred = x;
    else
        lp->deferred_head = x;
    lp->deferred_tail = x;
    /* x has not reported, so the context is busy and its handles are open. */
    uv_idle_start(&lp->h->idle, on_idle);
}

/* ---- handles while busy --------------------------------------------------------------------- */

static void loop_free(cbx__http_loop *lp);

static void handles_closed(uv_handle_t *h)
{
    loop_handles *lh = h->data;
    if (--lh->open > 0)
        return;
    loop_free(lh->release);
    free(lh);
}

static int handles_open(cbx__http_loop *lp)
{
    loop_handles *lh = calloc(1, sizeof *lh);
    if (!lh)
        return -ENOMEM;
    uv_timer_init(lp->loop, &lh->timer);
    uv_idle_init(lp->loop, &lh->idle);
    lh->timer.data = lp;
    lh->idle.data = lp;
    lh->open = 2;
    lp->h = lh;
    timer_apply(lp);
    return 0;
}

static void handles_close(cbx__http_loop *lp)
{
    loop_handles *lh = lp->h;
    if (!lh)
        return;
    lp->h = NULL;
    lh->timer.data = lh;
    lh->idle.data = lh;
    uv_close((uv_handle_t *)&lh->timer, handles_closed);
    uv_close((uv_handle_t *)&lh->idle, handles_closed);
}

int cbx__http_loop_begin(cbx__http_loop *lp)
{
    if (lp->busy == 0) {
        int r = handles_open(lp);
        if (r < 0)
            return r;
        for (sock_ctx *sc = lp->socks; sc; sc = sc->next)
            uv_ref((uv_handle_t *)&sc->poll);
    }
    if (++lp->busy > lp->peak) {
        /* curl keeps at most 4 idle connections per transfer running *now*, so the end of a
         * burst closed most of the connections the next burst needs again: keep as many as 4
         * per transfer at the busiest yet. */
        lp->peak = lp->busy;
        curl_multi_setopt(lp->multi, CURLMOPT_MAXCONNECTS, (long)(4 * lp->peak));
    }
    return 0;
}

void cbx__http_loop_end(cbx__http_loop *lp)
{
    if (lp->busy == 0 || --lp->busy > 0)
        return;
    if (lp->released) {
        /* The caller is still inside this context (drain_info, on_idle): it goes when its
         * handles have closed, on a later turn of the loop. */
        lp->h->release = lp;
    }
    handles_close(lp);
    release_idle_socks(lp);
    for (sock_ctx *sc = lp->socks; sc; sc = sc->next)
        uv_unref((uv_handle_t *)&sc->poll);
}

/* ---- transfers ------------------------------------------------------------------------------ */

int cbx__http_loop_add(cbx__http_loop *lp, cbx__http_xfer *x)
{
    CURLMcode mc = curl_multi_add_handle(lp->multi, x->easy->curl);
    if (mc == CURLM_OK)
        return 0;
    return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : CBX_EFAILED;
}

void cbx__http_loop_remove(cbx__http_loop *lp, cbx__http_xfer *x)
{
    curl_multi_remove_handle(lp->multi, x->easy->curl);
}

static void easy_free(cbx__http_easy *e)
{
    if (!e)
        return;
    curl_easy_cleanup(e->curl);
    free(e->resp.body != e->resp.inline_body ? e->resp.body : NULL);
    json_decref(e->resp.headers);
    free(e);
}

cbx__http_easy *cbx__http_easy_take(cbx__http_loop *lp)
{
    if (lp->npool > 0)
        return lp->pool[--lp->npool];
    cbx__http_easy *e = calloc(1, sizeof *e);
    if (e && (e->curl = curl_easy_init()) == NULL) {
        free(e);
        e = NULL;
    }
    return e;
}

void cbx__http_easy_give(cbx__http_loop *lp, cbx__http_easy *e, int reset)
{
    if (!e)
        return;
    e->x = NULL;
    if (lp->npool >= EASY_POOL_MAX) {
        easy_free(e);
        return;
    }
    if (reset || e->extras) {
        /* Back to curl's defaults (its connection and DNS caches are the multi handle's, and
         * stay); the options set once go on again at the next use. */
        curl_easy_reset(e->curl);
        e->configured = e->extras = 0;
    }
    lp->pool[lp->npool++] = e;
}

/* ---- the context's life -------------------------------------------------------------------- */

static void loop_free(cbx__http_loop *lp)
{
    if (!lp)
        return;
    if (lp->multi)
        curl_multi_cleanup(lp->multi); /* may still call on_socket with CURL_POLL_REMOVE */
    while (lp->socks)
        sock_release(lp, lp->socks);
    handles_close(lp);
    for (size_t i = 0; i < lp->npool; i++)
        easy_free(lp->pool[i]);
    free(lp->pool);
    free(lp->fds);
    free(lp);
}

/* 1 when the environment names a proxy curl would use for http or https (it ignores an empty
 * value, and HTTP_PROXY). */
static int env_names_proxy(void)
{
    static const char *const names[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                        "ALL_PROXY"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return 1;
    }
    return 0;
}

int cbx__http_loop_open(void *uv_loop, cbx__http_loop **out)
{
    cbx__http_loop *lp = calloc(1, sizeof *lp);
    if (!lp)
        return -ENOMEM;
    lp->loop = uv_loop;
    lp->timeout_ms = -1;
    *out = lp;
    return 0;
}

int cbx__http_loop_ready(cbx__http_loop *lp)
{
    if (lp->multi)
        return 0;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return CBX_EFAILED;
    if (!lp->pool && (lp->pool = calloc(EASY_POOL_MAX, sizeof *lp->pool)) == NULL)
        return -ENOMEM;
    lp->multi = curl_multi_init();
    if (!lp->multi)
        return -ENOMEM;
    lp->env_proxy = env_names_proxy();
    curl_multi_setopt(lp->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(lp->multi, CURLMOPT_SOCKETDATA, lp);
    curl_multi_setopt(lp->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(lp->multi, CURLMOPT_TIMERDATA, lp);
    return 0;
}

void cbx__http_loop_close(cbx__http_loop *lp)
{
    if (!lp)
        return;
    if (lp->busy > 0) {
        /* Transfers still run (attempts the runtime gave up on): they finish on this context,
         * which is freed after the last. */
        lp->released = 1;
        return;
    }
    loop_free(lp);
}
