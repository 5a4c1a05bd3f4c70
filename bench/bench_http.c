/* bench/bench_http.c - HTTP GETs through the runtime and the http executor, beside wrk.
 *
 * Both hit the same loopback server (tests/helpers/http_server.c, one epoll thread, keep-alive)
 * in the same run, at 64 connections:
 *   http.get.c64.cbx         --iters GETs of /ok (default 20,000) submitted at once to a runtime
 *                            with max_concurrent 64, no policy; best of --runs passes
 *   http.get.c64.cbx_policy  the same under a policy with a 10 s timeout and 3 retry attempts
 *   http.get.c64.cbx_2threads  two runtimes, each on a thread of its own with max_concurrent 32
 *                            and half the GETs, as wrk runs two threads of 32 connections: the
 *                            like-for-like comparison (a program scales cbx over cores with a
 *                            runtime per thread, as `cbx run --batch --parallel N` does)
 *   http.get.c64.curl_floor  the same GETs from a bare libcurl multi client on libuv with the
 *                            glue the executor uses (easy handles reused without a reset, no
 *                            signals, no proxy lookups, poll handles kept between transfers and
 *                            restarted only when their events change, idle connections kept
 *                            between passes) and nothing else: no runtime, no JSON, the body
 *                            thrown away. What libcurl itself costs: the ceiling for cbx
 *   http.get.c64.wrk         wrk -c64 -t2 -d5s against /ok (one pass; wrk's own average)
 * Each line gives ns per request (the inverse of the request rate); a "# note" line gives the
 * requests per second, the CPU time per request of the client (this process; wrk's two threads)
 * and of the server over the same requests, and the ratios to wrk (target for cbx: at least
 * 0.5, judged on two threads as wrk's -t2). The machine has two cores: the client's loop thread and
 * the server's thread each take one, while wrk's two threads share them with the server.
 *
 * An HTTP request is not an allocation-free path (libcurl, jansson and the runtime allocate per
 * request), so the allocs column says "-" and a note gives the count per request.
 *
 * The server is found through $CBX_HTTP_SERVER, else the path CMake compiled in, else
 * ../tests/http_server beside this binary. Without a server or without wrk the missing part is
 * skipped with a note, never failed. Every request must succeed, or the run fails (exit 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "cbx/policy.h"
#include "cbx/runtime.h"

#include "alloc_count.h"
#include "timing.h"

#ifndef CBX_BENCH_BUILD_TYPE
#define CBX_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef CBX_BENCH_CFLAGS
#define CBX_BENCH_CFLAGS ""
#endif
#ifndef CBX_BENCH_COMPILER
#define CBX_BENCH_COMPILER "unknown"
#endif

#define CONCURRENCY      64
#define DEFAULT_REQUESTS 20000
#define WRK_SECONDS      5

extern char **environ;

static int failed;
static pid_t server_pid = -1;
static char url[128];
static double cbx_best_rps, cbx2_rps, floor_rps, wrk_rps;

/* CPU time (user + system) this process has used, ns. */
static uint64_t cpu_self_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* CPU time (user + system) the server has used, ns (clock ticks: 10 ms steps, so read it over
 * many requests); 0 when unknown. */
static uint64_t server_cpu_ns(void)
{
    if (server_pid <= 0)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)server_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* past the command name */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? (ut + st) * (1000000000ull / (uint64_t)hz) : 0;
}

/* ---- child processes ------------------------------------------------------------------------ */

/* Start argv with stdout on a pipe; returns the pid and the read end in *fd, or -1. */
static pid_t spawn_piped(char *const argv[], int *fd)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    *fd = fds[0];
    return pid;
}

static int find_server(char *out, size_t len)
{
    const char *env = getenv("CBX_HTTP_SERVER");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return access(out, X_OK);
    }
#ifdef CBX_HTTP_SERVER
    snprintf(out, len, "%s", CBX_HTTP_SERVER);
    if (access(out, X_OK) == 0)
        return 0;
#endif
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    snprintf(out, len, "%s/../tests/http_server", dirname(self));
    return access(out, X_OK);
}

static int server_start(void)
{
    char path[PATH_MAX];
    if (find_server(path, sizeof path) != 0) {
        printf("# note\thttp: no http_server found (build the tests, or set CBX_HTTP_SERVER): "
               "skipped\n");
        return -1;
    }
    char *argv[] = {path, "--die-with-parent", NULL};
    int fd;
    server_pid = spawn_piped(argv, &fd);
    if (server_pid < 0) {
        printf("# FAIL\thttp: cannot start %s: %s\n", path, strerror(errno));
        failed = 1;
        return -1;
    }
    FILE *f = fdopen(fd, "r");
    int port = 0;
    if (!f || fscanf(f, "%d", &port) != 1) {
        printf("# FAIL\thttp: %s printed no port\n", path);
        failed = 1;
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
    return 0;
}

static void server_stop(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
}

/* ---- cbx ------------------------------------------------------------------------------------ */

typedef struct pass {
    uint64_t done, ok;
    char first_error[600];
} pass;

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    pass *p = ud;
    p->done++;
    if (res->status == CBX_STATUS_SUCCESS)
        p->ok++;
    else if (!p->first_error[0])
        snprintf(p->first_error, sizeof p->first_error, "%s: %s", cbx_status_name(res->status),
                 res->error);
}

/* One pass: n GETs submitted at once, run to the end. ns for the pass, or 0 on failure. */
static uint64_t cbx_pass(cbx_runtime *rt, const json_t *params, cbx_policy *pol, uint64_t n,
                         pass *p)
{
    memset(p, 0, sizeof *p);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        cbx_request req = {
            .executor = "http", .params = params, .policy = pol, .on_done = on_done, .ud = p};
        if (cbx_runtime_submit(rt, &req, NULL, NULL) != 0) {
            printf("# FAIL\thttp: submit %" PRIu64 " refused\n", i);
            failed = 1;
            return 0;
        }
    }
    if (cbx_runtime_run(rt) != 0) {
        printf("# FAIL\thttp: cbx_runtime_run failed\n");
        failed = 1;
        return 0;
    }
    return bench_now_ns() - t0;
}

static void case_cbx(const bench_args *a, const char *name, const char *policy_json)
{
    uint64_t n = a->iters ? a->iters : DEFAULT_REQUESTS;
    cbx_err err;
    cbx_runtime *rt = NULL;
    cbx_runtime_opts o = {.max_concurrent = CONCURRENCY, .max_queued = (uint32_t)n + 1};
    if (cbx_runtime_new(&rt, &o, &err) != 0) {
        printf("# FAIL\t%s: cbx_runtime_new: %s\n", name, err.msg);
        failed = 1;
        return;
    }
    cbx_policy *pol = NULL;
    if (policy_json) {
        json_t *b = json_loads(policy_json, 0, NULL);
        if (cbx_policy_new_json(&pol, b, NULL, &err) != 0) {
            printf("# FAIL\t%s: policy: %s\n", name, err.msg);
            failed = 1;
        }
        json_decref(b);
    }
    json_t *params = json_pack("{s:s}", "url", url);
    pass p;
    /* warm-up: connections opened, caches filled */
    cbx_pass(rt, params, pol, n < 2000 ? n : 2000, &p);

    uint64_t best = 0, allocs = 0, best_cpu = 0, server0 = server_cpu_ns(), done = 0;
    for (int r = 0; r < a->runs && !failed; r++) {
        uint64_t a0 = alloc_count_total(), c0 = cpu_self_ns();
        uint64_t ns = cbx_pass(rt, params, pol, n, &p);
        uint64_t used = alloc_count_total() - a0, cpu = cpu_self_ns() - c0;
        done += n;
        if (best_cpu == 0 || cpu < best_cpu)
            best_cpu = cpu;
        if (p.ok != n) {
            printf("# FAIL\t%s: %" PRIu64 " of %" PRIu64 " requests succeeded; first: %s\n", name,
                   p.ok, n, p.first_error);
            failed = 1;
            break;
        }
        if (ns && (best == 0 || ns < best)) {
            best = ns;
            allocs = used;
        }
    }
    uint64_t server = server_cpu_ns() - server0;
    if (best) {
        double rps = (double)n * 1e9 / (double)best;
        if (rps > cbx_best_rps)
            cbx_best_rps = rps;
        bench_emit(name, (double)best / (double)n, -1, n);
        printf("# note\t%s: %.0f requests/s (best of %d passes of %" PRIu64
               " GETs, %d at a time); %.1f us of client CPU, %.1f us of server CPU and %.1f "
               "allocations per request\n",
               name, rps, a->runs, n, CONCURRENCY, (double)best_cpu / 1e3 / (double)n,
               done ? (double)server / 1e3 / (double)done : 0.0, (double)allocs / (double)n);
    }
    json_decref(params);
    cbx_runtime_free(rt);
    cbx_policy_free(pol);
}

static void case_cbx_plain(const bench_args *a, const char *name)
{
    case_cbx(a, name, NULL);
}

static void case_cbx_policy(const bench_args *a, const char *name)
{
    case_cbx(a, name, "{\"timeout\": \"10s\", \"retry\": {\"attempts\": 3}}");
}

/* Two runtimes on two threads (wrk's -t2), each with half the GETs and half the connections. */
typedef struct half {
    pthread_t th;
    cbx_runtime *rt;
    json_t *params;
    uint64_t n;
    pass p;
} half;

static void *half_main(void *arg)
{
    half *h = arg;
    cbx_pass(h->rt, h->params, NULL, h->n, &h->p);
    return NULL;
}

static void case_cbx_2threads(const bench_args *a, const char *name)
{
    uint64_t n = a->iters ? a->iters : DEFAULT_REQUESTS;
    half hs[2];
    memset(hs, 0, sizeof hs);
    for (int i = 0; i < 2; i++) {
        cbx_err err;
        cbx_runtime_opts o = {.max_concurrent = CONCURRENCY / 2, .max_queued = (uint32_t)n + 1};
        if (cbx_runtime_new(&hs[i].rt, &o, &err) != 0) {
            printf("# FAIL\t%s: cbx_runtime_new: %s\n", name, err.msg);
            failed = 1;
            return;
        }
        hs[i].params = json_pack("{s:s}", "url", url);
        hs[i].n = n / 2;
        half_main(&hs[i]); /* warm-up, on this thread: the runtime is not bound to one */
    }
    uint64_t best = 0;
    for (int r = 0; r < a->runs && !failed; r++) {
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < 2; i++)
            pthread_create(&hs[i].th, NULL, half_main, &hs[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(hs[i].th, NULL);
        uint64_t ns = bench_now_ns() - t0;
        for (int i = 0; i < 2; i++)
            if (hs[i].p.ok != hs[i].n) {
                printf("# FAIL\t%s: %" PRIu64 " of %" PRIu64 " requests succeeded; first: %s\n",
                       name, hs[i].p.ok, hs[i].n, hs[i].p.first_error);
                failed = 1;
            }
        if (best == 0 || ns < best)
            best = ns;
    }
    if (best && !failed) {
        bench_emit(name, (double)best / (double)(2 * (n / 2)), -1, 2 * (n / 2));
        cbx2_rps = (double)(2 * (n / 2)) * 1e9 / (double)best;
        printf("# note\t%s: %.0f requests/s (best of %d passes; two runtimes on two threads, %d "
               "connections each)\n",
               name, cbx2_rps, a->runs, CONCURRENCY / 2);
    }
    for (int i = 0; i < 2; i++) {
        json_decref(hs[i].params);
        cbx_runtime_free(hs[i].rt);
    }
}

/* ---- the libcurl floor ---------------------------------------------------------------------- */

/* The best glue libcurl allows here, as the executor has it: easy handles set up once and reused
 * without a reset, no signals, a poll handle per socket started only when its events change, and
 * kept while curl sets its connection aside between transfers (released when curl closes the
 * socket, known through CURLOPT_SOCKOPTFUNCTION and CURLOPT_CLOSESOCKETFUNCTION). */

typedef struct floor_sock floor_sock;

typedef struct floor_run {
    uv_loop_t loop;
    uv_timer_t timer;
    CURLM *multi;
    CURL *easy[CONCURRENCY];
    floor_sock **by_fd;  /* poll handles by descriptor number */
    unsigned char *conn; /* 1: a connection socket, closed through floor_close_socket */
    size_t nfds;
    uint64_t total, to_start, done, ok;
} floor_run;

struct floor_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    floor_run *f;
    int events, idle;
};

static size_t floor_discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static int floor_fd_room(floor_run *f, curl_socket_t fd)
{
    if (fd < 0)
        return -1;
    if ((size_t)fd < f->nfds)
        return 0;
    size_t n = f->nfds ? f->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    floor_sock **b = realloc(f->by_fd, n * sizeof *b);
    if (!b)
        return -1;
    f->by_fd = b;
    unsigned char *c = realloc(f->conn, n);
    if (!c)
        return -1;
    f->conn = c;
    memset(b + f->nfds, 0, (n - f->nfds) * sizeof *b);
    memset(c + f->nfds, 0, n - f->nfds);
    f->nfds = n;
    return 0;
}

static void floor_sock_closed(uv_handle_t *h)
{
    free(h);
}

static void floor_sock_release(floor_run *f, floor_sock *fs)
{
    if ((size_t)fs->fd < f->nfds && f->by_fd[fs->fd] == fs)
        f->by_fd[fs->fd] = NULL;
    uv_close((uv_handle_t *)&fs->poll, floor_sock_closed);
}

static int floor_sockopt(void *ud, curl_socket_t s, curlsocktype purpose)
{
    floor_run *f = ud;
    if (purpose == CURLSOCKTYPE_IPCXN && floor_fd_room(f, s) == 0) {
        if (f->by_fd[s])
            floor_sock_release(f, f->by_fd[s]);
        f->conn[s] = 1;
    }
    return CURL_SOCKOPT_OK;
}

static int floor_close_socket(void *ud, curl_socket_t s)
{
    floor_run *f = ud;
    if (s >= 0 && (size_t)s < f->nfds) {
        if (f->by_fd[s])
            floor_sock_release(f, f->by_fd[s]);
        f->conn[s] = 0;
    }
    return close(s) == 0 ? 0 : 1;
}

static void floor_release_idle(floor_run *f)
{
    for (size_t i = 0; i < f->nfds; i++)
        if (f->by_fd[i] && f->by_fd[i]->idle)
            floor_sock_release(f, f->by_fd[i]);
}

static void floor_add(floor_run *f, CURL *e)
{
    if (!e) {
        e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, floor_discard);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PROXY, ""); /* as the executor without proxy variables */
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
        curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, floor_sockopt);
        curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, f);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, floor_close_socket);
        curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, f);
        for (int i = 0; i < CONCURRENCY; i++) {
            if (!f->easy[i]) {
                f->easy[i] = e;
                break;
            }
        }
    }
    curl_multi_add_handle(f->multi, e);
    f->to_start--;
}

static void floor_drain(floor_run *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        long status = 0;
        if (m->data.result == CURLE_OK &&
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200)
            f->ok++;
        f->done++;
        curl_multi_remove_handle(f->multi, e);
        if (f->to_start > 0)
            floor_add(f, e); /* the same handle, as it is: the options stay */
    }
    if (f->done == f->total) /* the pass is over: no poll handle is left for idle connections */
        floor_release_idle(f);
}

static void floor_on_poll(uv_poll_t *p, int status, int events)
{
    floor_sock *s = (floor_sock *)p;
    if (s->idle) { /* a set-aside connection turned readable: its server closed it */
        uv_poll_stop(p);
        s->events = 0;
        return;
    }
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(s->f->multi, s->fd, flags, &running);
    floor_drain(s->f);
}

static void floor_on_timer(uv_timer_t *t)
{
    floor_run *f = t->data;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    floor_drain(f);
}

static int floor_timer_cb(CURLM *m, long ms, void *ud)
{
    (void)m;
    floor_run *f = ud;
    if (ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, floor_on_timer, (uint64_t)ms, 0);
    return 0;
}

static int floor_socket_cb(CURL *e, curl_socket_t s, int what, void *ud, void *sp)
{
    (void)e;
    floor_run *f = ud;
    floor_sock *fs = sp;
    if (what == CURL_POLL_REMOVE) {
        if (fs) {
            curl_multi_assign(f->multi, s, NULL);
            if ((size_t)s < f->nfds && f->conn[s] && f->by_fd[s] == fs && f->to_start > 0)
                fs->idle = 1;
            else
                floor_sock_release(f, fs);
        }
        return 0;
    }
    if (!fs) {
        if (floor_fd_room(f, s) != 0)
            return -1;
        fs = f->by_fd[s];
        if (fs) {
            fs->idle = 0;
        } else {
            fs = calloc(1, sizeof *fs);
            if (!fs || uv_poll_init_socket(&f->loop, &fs->poll, s) != 0) {
                free(fs);
                return -1;
            }
            fs->fd = s;
            fs->f = f;
            f->by_fd[s] = fs;
        }
        curl_multi_assign(f->multi, s, fs);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    if (ev == fs->events)
        return 0;
    int r = ev ? uv_poll_start(&fs->poll, ev, floor_on_poll) : uv_poll_stop(&fs->poll);
    fs->events = r == 0 ? ev : 0;
    return r == 0 ? 0 : -1;
}

/* One pass of n GETs, CONCURRENCY at a time, on f's multi handle (its connections kept from
 * the pass before, as the runtime keeps them); ns. */
static uint64_t floor_pass(floor_run *f, uint64_t n)
{
    f->total = f->to_start = n;
    f->done = f->ok = 0;
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < CONCURRENCY && f->to_start > 0; i++)
        floor_add(f, f->easy[i]);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return bench_now_ns() - t0;
}

static void case_floor(const bench_args *a, const char *name)
{
    uint64_t n = a->iters ? a->iters : DEFAULT_REQUESTS, best = 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    floor_run f = {0};
    uv_loop_init(&f.loop);
    uv_timer_init(&f.loop, &f.timer);
    f.timer.data = &f;
    f.multi = curl_multi_init();
    curl_multi_setopt(f.multi, CURLMOPT_SOCKETFUNCTION, floor_socket_cb);
    curl_multi_setopt(f.multi, CURLMOPT_SOCKETDATA, &f);
    curl_multi_setopt(f.multi, CURLMOPT_TIMERFUNCTION, floor_timer_cb);
    curl_multi_setopt(f.multi, CURLMOPT_TIMERDATA, &f);
    /* as the executor: up to 4 idle connections per transfer at the busiest are kept */
    curl_multi_setopt(f.multi, CURLMOPT_MAXCONNECTS, (long)(4 * CONCURRENCY));
    floor_pass(&f, n < 2000 ? n : 2000); /* warm-up, as for cbx */
    uint64_t best_cpu = 0, server0 = server_cpu_ns(), done = 0;
    for (int r = 0; r < a->runs; r++) {
        uint64_t c0 = cpu_self_ns();
        uint64_t ns = floor_pass(&f, n);
        uint64_t cpu = cpu_self_ns() - c0;
        done += n;
        if (best_cpu == 0 || cpu < best_cpu)
            best_cpu = cpu;
        if (f.ok != n) {
            printf("# FAIL\t%s: %" PRIu64 " of %" PRIu64 " requests succeeded\n", name, f.ok, n);
            failed = 1;
            break;
        }
        if (best == 0 || ns < best)
            best = ns;
    }
    uint64_t server = server_cpu_ns() - server0;
    curl_multi_cleanup(f.multi); /* closes the connections, through floor_close_socket */
    for (int i = 0; i < CONCURRENCY; i++)
        curl_easy_cleanup(f.easy[i]);
    for (size_t i = 0; i < f.nfds; i++)
        if (f.by_fd[i])
            floor_sock_release(&f, f.by_fd[i]);
    uv_close((uv_handle_t *)&f.timer, NULL);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uv_loop_close(&f.loop);
    free(f.by_fd);
    free(f.conn);
    if (failed || best == 0)
        return;
    floor_rps = (double)n * 1e9 / (double)best;
    bench_emit(name, (double)best / (double)n, -1, n);
    printf("# note\t%s: %.0f requests/s (best of %d passes of %" PRIu64
           " GETs, %d at a time); %.1f us of client CPU, %.1f us of server CPU per request\n",
           name, floor_rps, a->runs, n, CONCURRENCY, (double)best_cpu / 1e3 / (double)n,
           done ? (double)server / 1e3 / (double)done : 0.0);
}

/* ---- wrk ------------------------------------------------------------------------------------ */

static void case_wrk(const bench_args *a, const char *name)
{
    (void)a;
    char c[16], t[16], d[16];
    snprintf(c, sizeof c, "-c%d", CONCURRENCY);
    snprintf(t, sizeof t, "-t2");
    snprintf(d, sizeof d, "-d%ds", WRK_SECONDS);
    char *argv[] = {"wrk", c, t, d, url, NULL};
    int fd;
    uint64_t server0 = server_cpu_ns();
    pid_t pid = spawn_piped(argv, &fd);
    if (pid < 0) {
        printf("# note\t%s: wrk is not installed: skipped\n", name);
        return;
    }
    FILE *f = fdopen(fd, "r");
    char line[512];
    double rps = 0;
    uint64_t total = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long reqs;
        if (sscanf(line, "Requests/sec: %lf", &rps) == 1)
            continue;
        if (sscanf(line, " %llu requests in", &reqs) == 1)
            total = reqs;
    }
    if (f)
        fclose(f);
    int status = 0;
    struct rusage ru = {0};
    wait4(pid, &status, 0, &ru);
    uint64_t server = server_cpu_ns() - server0;
    double cpu_us = ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e6 +
                    (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || rps <= 0) {
        printf("# note\t%s: wrk did not run (exit status %d): skipped\n", name,
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return;
    }
    wrk_rps = rps;
    bench_emit(name, 1e9 / rps, -1, total);
    printf("# note\t%s: %.0f requests/s (wrk -c%d -t2 -d%ds, %" PRIu64
           " requests); %.1f us of client CPU (on 2 threads), %.1f us of server CPU per request\n",
           name, rps, CONCURRENCY, WRK_SECONDS, total, total ? cpu_us / (double)total : 0.0,
           total ? (double)server / 1e3 / (double)total : 0.0);
}

static const struct {
    const char *name;
    void (*run)(const bench_args *a, const char *name);
} cases[] = {
    {"http.get.c64.cbx", case_cbx_plain},
    {"http.get.c64.cbx_policy", case_cbx_policy},
    {"http.get.c64.cbx_2threads", case_cbx_2threads},
    {"http.get.c64.curl_floor", case_floor},
    {"http.get.c64.wrk", case_wrk},
};

int main(int argc, char **argv)
{
    bench_args a;
    if (bench_args_parse(&a, argc, argv) != 0)
        return 2;
    if (a.list) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    if (!a.no_selftest && alloc_count_selftest() != 0) {
        fprintf(stderr, "bench_http: the counting allocator is not in effect\n");
        return 3;
    }
    signal(SIGPIPE, SIG_IGN);
    printf("# build\t%s\t%s\n", CBX_BENCH_BUILD_TYPE, CBX_BENCH_CFLAGS);
    printf("# compiler\t%s\n", CBX_BENCH_COMPILER);
    printf("# runs\t%d\n", a.runs);
    if (server_start() != 0)
        return failed;

    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!bench_selected(&a, cases[i].name))
            continue;
        cases[i].run(&a, cases[i].name);
        ran++;
    }
    server_stop();
    if (ran == 0) {
        fprintf(stderr, "bench_http: no case named %s\n", a.only);
        return 2;
    }
    if (cbx_best_rps > 0 && wrk_rps > 0)
        printf("# note\thttp: cbx %.0f requests/s, wrk %.0f requests/s against the same server: "
               "%.2f of wrk (target: at least 0.50)\n",
               cbx_best_rps, wrk_rps, cbx_best_rps / wrk_rps);
    if (cbx2_rps > 0 && wrk_rps > 0)
        printf("# note\thttp: cbx on two threads (two runtimes) %.0f requests/s, wrk -t2 %.0f "
               "requests/s: %.2f of wrk (target: at least 0.50)\n",
               cbx2_rps, wrk_rps, cbx2_rps / wrk_rps);
    if (floor_rps > 0 && wrk_rps > 0)
        printf("# note\thttp: bare libcurl %.0f requests/s: %.2f of wrk; cbx makes %.2f of the "
               "bare libcurl rate\n",
               floor_rps, floor_rps / wrk_rps, cbx_best_rps / floor_rps);
    return failed ? 1 : 0;
}
