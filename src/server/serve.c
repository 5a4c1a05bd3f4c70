/* The server's life: the runtime, journal and breaker store; h2o on the runtime's loop; the
 * listener; SIGTERM's graceful shutdown (stop accepting, let in-flight work finish within the
 * grace period, cancel the rest, journal everything, close the connections). */
#include "server.h"

#include "cbx/err.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct srv_handler {
    h2o_handler_t super;
    srv *s;
} srv_handler;

static int on_req(h2o_handler_t *h, h2o_req_t *req)
{
    return srv_dispatch(((srv_handler *)h)->s, req);
}

/* ---- the listen address -------------------------------------------------------------------- */

static int parse_listen(const char *spec, struct sockaddr_storage *ss, int *loopback, char *errbuf,
                        size_t errlen)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1]) {
        snprintf(errbuf, errlen, "--listen '%s': expected HOST:PORT (127.0.0.1:8080)", spec);
        return CBX_EINVAL_CONFIG;
    }
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host) {
        snprintf(errbuf, errlen, "--listen '%s': the host is too long", spec);
        return CBX_EINVAL_CONFIG;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || port < 0 || port > 65535) {
        snprintf(errbuf, errlen, "--listen '%s': the port must be 0 to 65535", spec);
        return CBX_EINVAL_CONFIG;
    }
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        memmove(host, host + 1, hl - 1);
    }
    if (!host[0])
        strcpy(host, "0.0.0.0");
    else if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) {
        uint32_t a = ntohl(((struct sockaddr_in *)ss)->sin_addr.s_addr);
        *loopback = (a >> 24) == 127;
    } else if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) {
        *loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ss)->sin6_addr);
    } else {
        snprintf(errbuf, errlen, "--listen '%s': '%s' is not an IPv4 or IPv6 address", spec, host);
        return CBX_EINVAL_CONFIG;
    }
    return 0;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void shutdown_step(uv_timer_t *t);

/* A connection's handle; h2o keeps its socket in the handle's data. */
typedef struct srv_conn {
    uv_tcp_t tcp; /* first: the handle's address is the struct's */
    srv *s;
    struct srv_conn *prev, *next;
} srv_conn;

static void on_conn_closed(uv_handle_t *h)
{
    srv_conn *c = (srv_conn *)h;
    srv *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    free(c);
    if (s->stopping == 3 && !s->nconns)
        shutdown_step(&s->grace);
}

static void on_accept(uv_stream_t *listener, int status)
{
    srv *s = listener->data;
    if (status != 0 || s->stopping)
        return;
    srv_conn *c = malloc(sizeof *c);
    if (!c)
        return;
    uv_tcp_t *conn = &c->tcp;
    uv_tcp_init(listener->loop, conn);
    c->s = s;
    c->prev = NULL;
    c->next = s->conns;
    if (c->next)
        c->next->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, on_conn_closed);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, on_conn_closed);
    h2o_accept(&s->accept_ctx, sock);
}

/* ---- shutdown ------------------------------------------------------------------------------- */

void srv_stop(srv *s)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->listening = 0;
    }
    srv_event(s, "server", json_pack("{s:s}", "state", "stopping"));
    srv_events_close_clients(s);
    uv_timer_start(&s->grace, shutdown_step, s->o.grace_ms, 0);
    if (!s->n_inflight && !s->n_flow_runs && !s->n_wf_busy)
        shutdown_step(&s->grace);
}

/* Called when the grace period ends, or when the last in-flight execution has ended. */
static void shutdown_step(uv_timer_t *t)
{
    srv *s = t->data;
    if (s->stopping == 1) {
        /* workflow runs are let go first: their actions cancelled unjournaled, so that a resume
         * (the next start takes them up) runs them again, rather than blocked by the cancel */
        srv_workflows_release_all(s);
        if (s->n_inflight || s->n_flow_runs) { /* the grace period is over: cancel the rest */
            s->stopping = 2;
            cbx_runtime_cancel_all(s->rt);
            srv_flows_cancel_all(s);
            return; /* called again when the last has ended */
        }
        s->stopping = 2;
    }
    if (s->stopping == 2 && !s->n_inflight && !s->n_flow_runs) {
        s->stopping = 3;
        uv_timer_stop(&s->grace);
        h2o_context_request_shutdown(&s->ctx);
        uv_timer_start(&s->grace, shutdown_step, 300, 0); /* the last answers go out */
        if (s->nconns)
            return;
    }
    if (s->stopping == 3 && s->nconns && !s->conns_cut) {
        /* HTTP/1 connections kept alive by their clients (a browser's) would wait for their
         * timeout: their read side is shut, so h2o sees the end and closes each itself */
        s->conns_cut = 1;
        for (srv_conn *c = s->conns; c; c = c->next) {
            uv_os_fd_t fd;
            if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
                shutdown(fd, SHUT_RD);
        }
        uv_timer_start(&s->grace, shutdown_step, 2000, 0);
        return;
    }
    if (s->stopping == 3) {
        s->stopping = 4;
        uv_timer_stop(&s->tick);
        uv_timer_stop(&s->reap);
        uv_signal_stop(&s->sig_term);
        uv_signal_stop(&s->sig_int);
        uv_stop(&s->loop);
    }
}

void srv_shutdown_poke(srv *s)
{
    if (s->stopping == 1 && s->n_wf_busy) /* a workflow run still fires within the grace */
        return;
    if (s->stopping == 1 || s->stopping == 2) {
        uv_timer_stop(&s->grace);
        uv_timer_start(&s->grace, shutdown_step, 0, 0);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    srv_stop(h->data);
}

/* ---- setup ---------------------------------------------------------------------------------- */

static int open_stores(srv *s, char *errbuf, size_t errlen)
{
    cbx_err err;
    cbx_err_clear(&err);
    int r;
    if (!s->o.no_journal) {
        cbx_journal_opts jo = {.path = s->o.journal_path};
        const char *keep = getenv("CBX_JOURNAL_MAX_EXECUTIONS"); /* as the cbx commands read it */
        if (keep && *keep) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(keep, &end, 10);
            if (errno || *end || !v || keep[0] == '-') {
                snprintf(errbuf, errlen,
                         "CBX_JOURNAL_MAX_EXECUTIONS: expected a positive integer, got '%.40s'",
                         keep);
                return CBX_EINVAL_CONFIG;
            }
            jo.max_executions = v;
        }
        r = cbx_journal_open(&s->journal, &jo, &err);
        if (r < 0) {
            snprintf(errbuf, errlen, "journal: %s", err.msg[0] ? err.msg : cbx_strerror(r));
            return r;
        }
        if ((r = srv_journal_lock(s, errbuf, errlen)) < 0)
            return r;
    }
    r = cbx_breaker_store_host_new(&s->breakers, NULL, &err);
    if (r < 0) {
        snprintf(errbuf, errlen, "breaker store: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        return r;
    }
    cbx_runtime_opts ro = {.loop = &s->loop,
                           .journal = s->journal,
                           .breakers = s->breakers,
                           .max_concurrent = s->o.max_concurrent};
    r = cbx_runtime_new(&s->rt, &ro, &err);
    if (r < 0) {
        snprintf(errbuf, errlen, "runtime: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        return r;
    }
    return 0;
}

static void tick_cb(uv_timer_t *t);

int srv_new(srv **out, const srv_opts *o, char *errbuf, size_t errlen)
{
    *out = NULL;
    srv *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->o = *o;
    s->lock_fd = -1;
    if (!s->o.listen)
        s->o.listen = "127.0.0.1:8080";
    if (!s->o.max_body)
        s->o.max_body = 1u << 20;
    if (!s->o.client_timeout_ms)
        s->o.client_timeout_ms = 10000;
    if (!s->o.grace_ms)
        s->o.grace_ms = 10000;
    if (!s->o.max_wait_ms)
        s->o.max_wait_ms = 300000;
    s->recent_failures = json_array();
    s->m.started_ms = srv_now_ms();
    struct sockaddr_storage ss;
    int r = parse_listen(s->o.listen, &ss, &s->loopback, errbuf, errlen);
    if (r < 0)
        goto fail_noloop;
    if (!s->loopback && !s->o.token_file) {
        snprintf(errbuf, errlen,
                 "--listen %s: not a loopback address; give --token-file FILE to listen there "
                 "(every mutation then needs that bearer token)",
                 s->o.listen);
        r = CBX_EINVAL_CONFIG;
        goto fail_noloop;
    }
    if (s->o.flows_dir) {
        DIR *d = opendir(s->o.flows_dir);
        if (!d) {
            r = -errno;
            snprintf(errbuf, errlen, "--flows '%s': %s", s->o.flows_dir, strerror(errno));
            goto fail_noloop;
        }
        closedir(d);
    }
    if (s->o.workflows_dir) {
        DIR *d = opendir(s->o.workflows_dir);
        if (!d) {
            r = -errno;
            snprintf(errbuf, errlen, "--workflows '%s': %s", s->o.workflows_dir, strerror(errno));
            goto fail_noloop;
        }
        closedir(d);
    }
    r = srv_token_load(s->o.token_file, s->token, sizeof s->token, errbuf, errlen);
    if (r < 0)
        goto fail_noloop;
    r = uv_loop_init(&s->loop);
    if (r < 0) {
        snprintf(errbuf, errlen, "event loop: %s", uv_strerror(r));
        goto fail_noloop;
    }
    r = open_stores(s, errbuf, errlen);
    if (r < 0)
        goto fail;
    r = srv_flows_init(s);
    if (r == 0)
        r = srv_events_init(s);
    if (r < 0) {
        snprintf(errbuf, errlen, "events: %s", cbx_strerror(r));
        goto fail;
    }

    h2o_config_init(&s->config);
    s->config.max_request_entity_size = s->o.max_body;
    s->config.http1.req_timeout = s->o.client_timeout_ms;
    s->config.http2.idle_timeout = s->o.client_timeout_ms;
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("cbx"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    srv_handler *h = (srv_handler *)h2o_create_handler(path, sizeof *h);
    h->super.on_req = on_req;
    h->s = s;
    h2o_context_init(&s->ctx, &s->loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;

    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    r = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->listener, 511, on_accept);
    if (r < 0) {
        snprintf(errbuf, errlen, "--listen %s: %s", s->o.listen, uv_strerror(r));
        goto fail;
    }
    struct sockaddr_storage got;
    int gl = sizeof got;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &gl);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (got.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&got, ip, sizeof ip);
        snprintf(s->bound, sizeof s->bound, "[%s]:%d", ip,
                 ntohs(((struct sockaddr_in6 *)&got)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&got, ip, sizeof ip);
        snprintf(s->bound, sizeof s->bound, "%s:%d", ip,
                 ntohs(((struct sockaddr_in *)&got)->sin_port));
    }

    uv_signal_init(&s->loop, &s->sig_term);
    uv_signal_init(&s->loop, &s->sig_int);
    s->sig_term.data = s->sig_int.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_timer_init(&s->loop, &s->tick);
    uv_timer_init(&s->loop, &s->reap);
    uv_timer_init(&s->loop, &s->grace);
    s->tick.data = s->reap.data = s->grace.data = s;
    uv_timer_start(&s->tick, tick_cb, 0, 1000);
    *out = s;
    return 0;
fail:
    srv_free(s);
    return r < 0 ? r : CBX_EINVAL_CONFIG;
fail_noloop:
    json_decref(s->recent_failures);
    free(s);
    return r;
}

/* ---- the 1 s tick: breaker transitions ------------------------------------------------------- */

static void tick_cb(uv_timer_t *t)
{
    srv *s = t->data;
    static unsigned ticks;
    if (++ticks % 15 == 0)
        srv_events_keepalive(s);
    json_t *arr = NULL;
    if (cbx_breaker_store_list(s->breakers, &arr, NULL) < 0)
        return;
    size_t i;
    json_t *b;
    json_array_foreach(arr, i, b)
    {
        const char *name = json_string_value(json_object_get(b, "name"));
        const char *state = json_string_value(json_object_get(b, "state"));
        if (!name || !state)
            continue;
        srv_breaker_seen *e = s->seen;
        while (e && strcmp(e->name, name) != 0)
            e = e->next;
        if (!e) {
            e = calloc(1, sizeof *e);
            if (!e)
                continue;
            snprintf(e->name, sizeof e->name, "%s", name);
            e->next = s->seen;
            s->seen = e;
        } else if (strcmp(e->state, state) == 0) {
            continue;
        }
        if (e->state[0]) {
            s->m.breaker_transitions++;
            srv_event(s, "breaker",
                      json_pack("{s:s,s:s,s:s,s:O?}", "name", name, "from", e->state, "to", state,
                                "breaker", b));
        }
        snprintf(e->state, sizeof e->state, "%s", state);
    }
    json_decref(arr);
}

/* ---- run and free --------------------------------------------------------------------------- */

int srv_run(srv *s)
{
    if (s->o.ready_fd >= 0) {
        char line[160];
        int n = snprintf(line, sizeof line, "listening on %s\n", s->bound);
        if (write(s->o.ready_fd, line, (size_t)n) < 0) {
            /* the reader went away: serve anyway */
        }
        if (s->o.ready_fd > 2)
            close(s->o.ready_fd);
    }
    srv_event(s, "server", json_pack("{s:s,s:s}", "state", "started", "listen", s->bound));
    srv_workflows_start(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return s->exit_code;
}

/* What is still open at the end (a connection a client keeps alive, h2o's and executors'
 * timers) no longer holds the loop: cbx_runtime_free runs it until only closing is left. */
static void unref_all(uv_handle_t *h, void *arg)
{
    (void)arg;
    uv_unref(h);
}

static void close_if(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

void srv_free(srv *s)
{
    if (!s)
        return;
    if (s->rt) {
        srv_flows_free(s); /* the run threads use the runtime's registry: first */
        srv_workflows_release_all(s);
        cbx_runtime_cancel_all(s->rt);
        while (s->n_inflight && uv_run(&s->loop, UV_RUN_ONCE))
            ;
        srv_events_close_clients(s);
        if (s->listening)
            uv_close((uv_handle_t *)&s->listener, NULL);
        s->listening = 0;
        close_if((uv_handle_t *)&s->tick);
        close_if((uv_handle_t *)&s->reap);
        close_if((uv_handle_t *)&s->grace);
        close_if((uv_handle_t *)&s->sig_term);
        close_if((uv_handle_t *)&s->sig_int);
        if (s->ctx.loop) {
            if (!s->ctx.shutdown_requested)
                h2o_context_request_shutdown(&s->ctx);
            uv_run(&s->loop, UV_RUN_NOWAIT);
            /* HTTP/2's GOAWAY resend timer, linked by the shutdown request */
            if (h2o_timeout_is_linked(&s->ctx.http2._graceful_shutdown_timeout))
                h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
            if (!s->nconns) { /* a connection still open uses them: the exit leaves them */
                h2o_context_dispose(&s->ctx);
                h2o_config_dispose(&s->config);
            }
        }
        uv_run(&s->loop, UV_RUN_NOWAIT);
        uv_walk(&s->loop, unref_all, NULL);
        srv_exec_free_all(s);
        cbx_runtime_free(s->rt);
    }
    srv_events_free(s);
    srv_exec_free_all(s);
    cbx_journal_close(s->journal);
    srv_journal_unlock(s);
    cbx_breaker_store_free(s->breakers);
    srv_metrics_free(&s->m);
    while (s->seen) {
        srv_breaker_seen *n = s->seen->next;
        free(s->seen);
        s->seen = n;
    }
    json_decref(s->recent_failures);
    uv_loop_close(&s->loop);
    srv_flows_destroy_mutex(s);
    free(s);
}
