/* One runtime process of a local Lambda function: its Runtime API server (runtime_api.c), its
 * spawn with the command executor's helpers (command_spawn.c: a new session, descriptors closed,
 * exec reported; command_cgroup.c or, without cgroups, command_orphans.c for the whole tree), the
 * watch on its exit (a pidfd, else polling waitid), the tail of what it writes, and the SIGKILL
 * of its tree. The pool (runtime_pool.c) decides when a runtime starts and stops. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executors/serverless/local.h"

#define EXIT_POLL_MAX_MS 100

static void tail_add(cbx__lambda_rt *rt, const char *p, size_t n)
{
    if (rt->inv && rt->inv->want_log)
        cbx__capture_add(&rt->inv->log, p, n);
    if (n >= sizeof rt->tail) {
        p += n - sizeof rt->tail;
        n = sizeof rt->tail;
    }
    if (rt->tail_len + n > sizeof rt->tail) {
        size_t drop = rt->tail_len + n - sizeof rt->tail;
        memmove(rt->tail, rt->tail + drop, rt->tail_len - drop);
        rt->tail_len -= drop;
    }
    memcpy(rt->tail + rt->tail_len, p, n);
    rt->tail_len += n;
}

void cbx__lambda_rt_tail(const cbx__lambda_rt *rt, char *buf, size_t len)
{
    size_t n = rt->tail_len;
    while (n && (rt->tail[n - 1] == '\n' || rt->tail[n - 1] == ' ' || rt->tail[n - 1] == '\r'))
        n--;
    size_t from = n > len - 1 ? n - (len - 1) : 0, o = 0;
    for (size_t i = from; i < n && o + 1 < len; i++) {
        unsigned char ch = (unsigned char)rt->tail[i];
        buf[o++] = ch < 32 || ch == 127 ? ' ' : (char)ch;
    }
    buf[o] = '\0';
}

static void on_closed(uv_handle_t *h)
{
    cbx__lambda_rt *rt = h->data;
    if (h == (uv_handle_t *)&rt->exit_poll && rt->pidfd >= 0) {
        close(rt->pidfd);
        rt->pidfd = -1;
    }
    if (--rt->handles == 0 && rt->state == CBX__RT_DEAD && !rt->api) {
        cbx__cgroup_close(&rt->cg);
        free(rt);
    }
}

static void close_handle(cbx__lambda_rt *rt, void *h)
{
    (void)rt; /* on_closed finds it in the handle's data */
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

/* ---- output -------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    cbx__capture_buf(suggested, buf);
}

static void on_output(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cbx__lambda_rt *rt = s->data;
    if (n > 0) {
        tail_add(rt, buf->base, (size_t)n);
        return;
    }
    if (n < 0) {
        uv_read_stop(s);
        if (s == (uv_stream_t *)&rt->out)
            rt->out_live = 0;
        else
            rt->err_live = 0;
    }
}

/* What is still in the pipes when the exit is seen (they are non-blocking). */
static void drain(cbx__lambda_rt *rt, uv_pipe_t *p, int live)
{
    uv_os_fd_t fd;
    if (!live || uv_fileno((uv_handle_t *)p, &fd) < 0)
        return;
    char buf[4096];
    ssize_t n;
    for (int i = 0; i < 64 && (n = read(fd, buf, sizeof buf)) > 0; i++)
        tail_add(rt, buf, (size_t)n);
}

static int pipe_open(cbx__lambda_rt *rt, uv_pipe_t *p, int fd, int *live)
{
    if (fd < 0)
        return 0;
    uv_pipe_init(rt->loop, p, 0);
    p->data = rt;
    rt->handles++;
    if (uv_pipe_open(p, fd) < 0) {
        close(fd);
        close_handle(rt, p);
        return -EIO;
    }
    *live = uv_read_start((uv_stream_t *)p, on_alloc, on_output) == 0;
    return 0;
}

/* ---- the exit ------------------------------------------------------------------------------ */

static void kill_tree(cbx__lambda_rt *rt)
{
    if (rt->pid <= 0)
        return;
    cbx__cgroup_kill(&rt->cg);
    kill(-rt->pid, SIGKILL);
    kill(rt->pid, SIGKILL); /* not yet its own group's leader if it has not reached setsid */
}

/* Waiting for the tree's last processes to leave its cgroup: polled from 1 ms, doubling up to
 * 100 ms; after SETTLE_MAX_MS (a process stuck in the kernel) the exit is reported anyway. */
#define SETTLE_MAX_MS 10000

static void on_settle(uv_timer_t *timer)
{
    cbx__lambda_rt *rt = timer->data;
    if (cbx__cgroup_empty(&rt->cg) || uv_hrtime() - rt->settle_t0_ns > SETTLE_MAX_MS * 1000000ull) {
        cbx__lambda_pool_rt_exited(rt, rt->status);
        return;
    }
    cbx__cgroup_kill(&rt->cg);
    if (rt->settle_ms < EXIT_POLL_MAX_MS)
        rt->settle_ms *= 2;
    uv_timer_start(&rt->limit_timer, on_settle, rt->settle_ms, 0);
}

static void exited(cbx__lambda_rt *rt)
{
    if (rt->state == CBX__RT_DEAD)
        return;
    rt->state = CBX__RT_DEAD;
    drain(rt, &rt->out, rt->out_live);
    drain(rt, &rt->err, rt->err_live);
    /* What it left running goes with it; the leader is unreaped, so its group id is its own. */
    kill_tree(rt);
    if (rt->tree_mark[0])
        cbx__orphans_kill(rt->tree_mark, rt->pid);
    int st = 0;
    pid_t w;
    while ((w = waitpid(rt->pid, &st, 0)) < 0 && errno == EINTR)
        ;
    rt->status = w == rt->pid ? st : -1;
    /* Reported once the rest of the tree has left its cgroup too (SIGKILL is not instant); at
     * the pool's end, waited for here. */
    for (int i = 0; rt->stopping && i < 2000 && !cbx__cgroup_empty(&rt->cg); i++) {
        cbx__cgroup_kill(&rt->cg);
        usleep(1000);
    }
    if (rt->stopping || cbx__cgroup_empty(&rt->cg)) {
        cbx__lambda_pool_rt_exited(rt, rt->status);
        return;
    }
    rt->settle_ms = 1;
    rt->settle_t0_ns = uv_hrtime();
    uv_timer_stop(&rt->limit_timer);
    uv_timer_start(&rt->limit_timer, on_settle, 1, 0);
}

static void on_pidfd(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    cbx__lambda_rt *rt = p->data;
    uv_poll_stop(p);
    exited(rt);
}

static void on_exit_poll(uv_timer_t *timer)
{
    cbx__lambda_rt *rt = timer->data;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc = waitid(P_PID, (id_t)rt->pid, &si, WEXITED | WNOHANG | WNOWAIT);
    if ((rc == 0 && si.si_pid == rt->pid) || (rc < 0 && errno == ECHILD)) {
        exited(rt);
        return;
    }
    if (rt->exit_timer_ms < EXIT_POLL_MAX_MS)
        rt->exit_timer_ms *= 2;
    uv_timer_start(&rt->exit_timer, on_exit_poll, rt->exit_timer_ms, 0);
}

int cbx__lambda_rt_check(cbx__lambda_rt *rt)
{
    if (rt->state == CBX__RT_DEAD)
        return 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc = waitid(P_PID, (id_t)rt->pid, &si, WEXITED | WNOHANG | WNOWAIT);
    if ((rc == 0 && si.si_pid == rt->pid) || (rc < 0 && errno == ECHILD)) {
        exited(rt);
        return 0;
    }
    return 1;
}

void cbx__lambda_rt_kill(cbx__lambda_rt *rt, const char *why)
{
    if (rt->state == CBX__RT_DEAD)
        return;
    if (!rt->killed_by)
        rt->killed_by = why;
    kill_tree(rt);
    if (rt->tree_mark[0])
        cbx__orphans_kill(rt->tree_mark, rt->pid);
}

void cbx__lambda_rt_drain(cbx__lambda_rt *rt)
{
    drain(rt, &rt->out, rt->out_live);
    drain(rt, &rt->err, rt->err_live);
}

void cbx__lambda_rt_stop(cbx__lambda_rt *rt)
{
    if (rt->state == CBX__RT_DEAD)
        return;
    if (!rt->killed_by)
        rt->killed_by = "close";
    kill_tree(rt);
    rt->stopping = 1;
    exited(rt);
}

void cbx__lambda_rt_release(cbx__lambda_rt *rt)
{
    cbx__rapi_close(rt->api);
    rt->api = NULL;
    rt->state = CBX__RT_DEAD;
    rt->handles++; /* held while the others are closed */
    if (rt->exit_poll.data) {
        close_handle(rt, &rt->exit_poll);
    } else if (rt->exit_timer.data) {
        close_handle(rt, &rt->exit_timer);
    }
    if (rt->limit_timer.data)
        close_handle(rt, &rt->limit_timer);
    if (rt->out.data)
        close_handle(rt, &rt->out);
    if (rt->err.data)
        close_handle(rt, &rt->err);
    if (--rt->handles == 0) {
        cbx__cgroup_close(&rt->cg);
        free(rt);
    }
}

/* ---- the start ----------------------------------------------------------------------------- */

static void set(json_t *env, const char *k, const char *v)
{
    json_object_set_new(env, k, json_string(v));
}

/* The runtime's environment: cbx's own, the function's `environment`, then the variables Lambda
 * reserves (which the function's cannot replace). */
static json_t *runtime_env(const cbx__lambda_rt *rt, const cbx__lambda_conf *c)
{
    json_t *env = json_object();
    if (!env)
        return NULL;
    if (c->environment)
        json_object_update(env, (json_t *)c->environment);
    char api[32], mem[24];
    snprintf(api, sizeof api, "127.0.0.1:%d", rt->port);
    snprintf(mem, sizeof mem, "%d", c->memory_mb);
    set(env, "AWS_LAMBDA_RUNTIME_API", api);
    set(env, "_HANDLER", c->handler);
    set(env, "LAMBDA_TASK_ROOT", c->dir);
    set(env, "AWS_LAMBDA_FUNCTION_NAME", c->name);
    set(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", mem);
    set(env, "AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    set(env, "AWS_REGION", c->region);
    set(env, "AWS_DEFAULT_REGION", c->region);
    if (c->interpreter && strcmp(c->interpreter, "node") != 0)
        set(env, "PYTHONUNBUFFERED", "1");
    return env;
}

int cbx__lambda_rt_start(cbx__lambda_rt *rt, const cbx__lambda_conf *c, cbx_err *err)
{
    rt->pid = -1;
    rt->pidfd = -1;
    rt->init_ms = -1;
    rt->state = CBX__RT_STARTING;
    for (int i = 0; i < 2; i++)
        rt->cg.procs_fd[i] = -1;
    rt->cg.tree_dir = rt->cg.mem_dir = rt->cg.kill_fd = -1;
    int r = cbx__rapi_open(rt->loop, &cbx__lambda_rapi_ops, rt, &rt->api, &rt->port, err);
    if (r < 0)
        return r;
    json_t *env = runtime_env(rt, c);
    char **envp = NULL, **cands = NULL, **marked = NULL;
    int owned = 0;
    const char *path = NULL;
    char bootstrap[4200];
    snprintf(bootstrap, sizeof bootstrap, "%s/bootstrap", c->dir);
    if (!env || cbx__cmd_env_build(0, env, NULL, &envp, &owned, &path) < 0) {
        r = cbx_err_set(err, -ENOMEM, "serverless: out of memory");
        goto out;
    }
    int node = c->interpreter && !strcmp(c->interpreter, "node");
    const char *interp[] = {c->interpreter, node ? "-e" : "-c",
                            node ? cbx__lambda_node_bootstrap : cbx__lambda_python_bootstrap, NULL};
    const char *own[] = {bootstrap, NULL};
    if (c->interpreter && !(cands = cbx__cmd_path_candidates(c->interpreter, path))) {
        r = cbx_err_set(err, -ENOMEM, "serverless: out of memory");
        goto out;
    }
    cbx__cmd_spec spec = {
        .argv = (char *const *)(c->interpreter ? interp : own),
        .candidates = cands,
        .envp = envp,
        .cwd = c->dir,
        .stdin_fd = -1,
        .winsize_fd = -1,
    };
    if ((r = cbx__cgroup_open(&rt->cg, 0, err)) < 0)
        goto out;
    for (int i = 0; i < 2; i++)
        if (rt->cg.procs_fd[i] >= 0)
            spec.cgroup_procs[spec.n_cgroup_procs++] = rt->cg.procs_fd[i];
    if (r == 1 && cbx__orphans_enable() == 0) {
        /* without a cgroup: the tree is found by a mark in its environment */
        size_t n = 0;
        while (envp[n])
            n++;
        if ((marked = malloc((n + 2) * sizeof *marked))) {
            memcpy(marked, envp, n * sizeof *marked);
            cbx__orphans_mark(rt->tree_mark, sizeof rt->tree_mark);
            marked[n] = rt->tree_mark;
            marked[n + 1] = NULL;
            spec.envp = marked;
        }
    }
    cbx__cmd_child ch;
    rt->t_spawn_ns = uv_hrtime();
    if ((r = cbx__cmd_spawn(&spec, &ch, err)) < 0)
        goto out;
    rt->pid = ch.pid;
    rt->pidfd = ch.pidfd;
    if (ch.report_fd >= 0)
        close(ch.report_fd); /* a failed exec still shows as exit 127 */
    if (ch.stdin_fd >= 0)
        close(ch.stdin_fd);
    uv_timer_init(rt->loop, &rt->limit_timer);
    rt->limit_timer.data = rt;
    rt->handles++;
    if (rt->pidfd >= 0 && uv_poll_init(rt->loop, &rt->exit_poll, rt->pidfd) == 0) {
        rt->exit_poll.data = rt;
        rt->handles++;
        uv_poll_start(&rt->exit_poll, UV_READABLE, on_pidfd);
    } else {
        if (rt->pidfd >= 0)
            close(rt->pidfd);
        rt->pidfd = -1;
        uv_timer_init(rt->loop, &rt->exit_timer);
        rt->exit_timer.data = rt;
        rt->handles++;
        rt->exit_timer_ms = 1;
        uv_timer_start(&rt->exit_timer, on_exit_poll, 1, 0);
    }
    pipe_open(rt, &rt->out, ch.stdout_fd, &rt->out_live);
    pipe_open(rt, &rt->err, ch.stderr_fd, &rt->err_live);
    if (ch.exec_stage) {
        cbx_err e2;
        cbx__cmd_spawn_failure(spec.argv[0], c->dir, ch.exec_stage, ch.exec_errno, &e2);
        tail_add(rt, e2.msg, strlen(e2.msg));
    }
    r = 0;
out:
    json_decref(env);
    if (owned)
        free(envp);
    free(cands);
    free(marked);
    return r;
}
