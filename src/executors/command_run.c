/* One attempt of the command executor on the runtime's loop.
 *
 * Handles: a timer (kill grace, then drain), the exit watch (a uv_poll_t on a pidfd, or a timer
 * polling waitid when pidfds are not available), the stdout and stderr pipes, and a uv_poll_t
 * feeding stdin when it did not fit in the pipe at once.
 *
 * The child exits -> the exit watch fires; the leader is NOT reaped yet, so that its pid (which is
 * the process group id) cannot be reused while we may still signal the group. The execution ends
 * with its leader: what the leader left running (in its cgroup, or without one in its process
 * group) gets SIGKILL at once, unless leftovers are to be left; the pipes are then read to EOF,
 * or, when something outside our reach still holds them, for a short drain and then up to what
 * they hold (never losing what was written). Then the leader is reaped with wait4() (status and
 * rusage), the cgroup gives its peak memory, every handle is closed, and the last close callback
 * reports with cbx_task_done.
 *
 * Cancel (timeout, cancel, shutdown): SIGTERM to the group; SIGKILL to the group when the grace
 * has passed or as soon as the leader has exited, whichever comes first (the grace is for the
 * leader to clean up; nothing of its group outlives it). The SIGKILL goes to the cgroup too, so a
 * process that escaped into its own session dies with the rest. After it the pipes get a short
 * drain (without a cgroup, an escaped process may still hold them), then our ends are closed. */
#define _GNU_SOURCE
#include "executors/command.h"
#include "executors/exit_params.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* After the SIGKILL, how long the pipes may stay open before our ends are closed. */
#define DRAIN_MS 100
/* Polling for the exit without a pidfd: from 1 ms, doubling up to this. */
#define EXIT_POLL_MAX_MS 20

/* Offered to the runtime: when it defines them, the stop reason and its kill grace are used. */
int cbx_task_timed_out(const cbx_task *t) __attribute__((weak));

/* ---- closing and reporting ----------------------------------------------------------------- */

static void deliver(cbx__cmd_run *r)
{
    cbx_task *t = r->task;
    cbx_outcome k = r->outcome;
    json_t *outputs = r->outputs, *metadata = r->metadata;
    char error[sizeof r->error];
    memcpy(error, r->error, sizeof error);
    /* r lives in the task's state, which is released by this call */
    if (error[0])
        cbx_task_done(t, k, outputs, metadata, "%s", error);
    else
        cbx_task_done(t, k, outputs, metadata, NULL);
}

static void on_closed(uv_handle_t *h)
{
    cbx__cmd_run *r = h->data;
    if (h == (uv_handle_t *)&r->exit_poll) {
        close(r->pidfd);
        r->pidfd = -1;
    } else if (h == (uv_handle_t *)&r->report_poll) {
        close(r->report_fd);
        r->report_fd = -1;
    } else if (h == (uv_handle_t *)&r->in_poll) {
        close(r->in_fd);
        r->in_fd = -1;
    } else if (h == (uv_handle_t *)&r->pump_poll) {
        close(r->pump_fd);
        close(r->pump_to);
        r->pump_fd = r->pump_to = -1;
    }
    if (--r->handles == 0)
        deliver(r);
}

static void close_handle(cbx__cmd_run *r, void *h)
{
    ((uv_handle_t *)h)->data = r;
    uv_close((uv_handle_t *)h, on_closed);
}

static ssize_t write_nosigpipe(int fd, const char *p, size_t n);

/* Pass a chunk on to the stream's tee descriptor, all of it (waiting while a non-blocking one is
 * full). A write error (the reader gone: EPIPE) gives the tee up; the capture goes on. */
static void tee_chunk(cbx__cmd_stream *s, const char *p, size_t n)
{
    while (s->tee_fd >= 0 && n > 0) {
        ssize_t w = write_nosigpipe(s->tee_fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = s->tee_fd, .events = POLLOUT};
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
                s->tee_errno = errno;
                s->tee_fd = -1;
            }
        } else if (w < 0 && errno != EINTR) {
            s->tee_errno = errno;
            s->tee_fd = -1;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* The chunk queue has been delivered: read the pipes again. */
static void reads_resume(cbx_task *t, void *ud)
{
    (void)t;
    cbx__cmd_run *r = ud;
    r->reads_held = 0;
    if (r->out.live)
        uv_read_start((uv_stream_t *)&r->out.pipe, on_alloc, on_read);
    if (r->err.live)
        uv_read_start((uv_stream_t *)&r->err.pipe, on_alloc, on_read);
}

/* Pass a chunk on to the submitter (cbx_task_emit). A full queue stops reading the pipes until it
 * drains, so a command that outruns its reader blocks on its full pipe, as it would writing to a
 * slow terminal. Returns -EPIPE when the submitter takes no more. */
static int emit_chunk(cbx__cmd_run *r, cbx__cmd_stream *s, const char *p, size_t n)
{
    if (!r->emit)
        return 0;
    int e = cbx_task_emit(r->task, s == &r->out ? "stdout" : "stderr", p, n);
    if (e == -EAGAIN && !r->reads_held) {
        r->reads_held = 1;
        if (r->out.live)
            uv_read_stop((uv_stream_t *)&r->out.pipe);
        if (r->err.live)
            uv_read_stop((uv_stream_t *)&r->err.pipe);
        cbx_task_on_drain(r->task, reads_resume, r);
    } else if (e == -EPIPE) {
        r->emit = 0;
    }
    return e;
}

/* Up to this many bytes are read from a pipe we let go before EOF: what it holds. */
#define DRAIN_MAX_BYTES (4u << 20)

static void stream_close(cbx__cmd_run *r, cbx__cmd_stream *s)
{
    if (!s->live)
        return;
    s->live = 0;
    close_handle(r, &s->pipe);
}

/* Let go of a pipe something else still holds open: first what it holds now (non-blocking
 * reads; a writer that never stops is cut at DRAIN_MAX_BYTES), then our end. */
static void stream_let_go(cbx__cmd_run *r, cbx__cmd_stream *s)
{
    if (!s->live)
        return;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&s->pipe, &fd) == 0) {
        size_t got = 0;
        while (got < DRAIN_MAX_BYTES) {
            uv_buf_t buf;
            cbx__capture_buf(65536, &buf);
            ssize_t n = read(fd, buf.base, buf.len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            cbx__capture_add(&s->cap, buf.base, (size_t)n);
            tee_chunk(s, buf.base, (size_t)n);
            emit_chunk(r, s, buf.base, (size_t)n);
            got += (size_t)n;
        }
    }
    stream_close(r, s);
}

static void stdin_close(cbx__cmd_run *r)
{
    r->in_open = 0;
    if (r->in_poll_live) {
        r->in_poll_live = 0;
        close_handle(r, &r->in_poll); /* closes in_fd */
    } else if (r->in_fd >= 0) {
        close(r->in_fd);
        r->in_fd = -1;
    }
}

/* The pty's input pump and window-size watch, and the master's held copy: no longer wanted once
 * the child has exited (a hangup then reaches only what it left, which goes anyway). */
static void pty_extras_close(cbx__cmd_run *r)
{
    if (r->pty_hold >= 0) {
        close(r->pty_hold);
        r->pty_hold = -1;
    }
    if (r->pump_live) {
        r->pump_live = 0;
        close_handle(r, &r->pump_poll); /* closes pump_fd and pump_to */
    }
    if (r->winch_live) {
        r->winch_live = 0;
        close_handle(r, &r->winch);
    }
}

static void report_close(cbx__cmd_run *r)
{
    if (r->report_live) {
        r->report_live = 0;
        close_handle(r, &r->report_poll); /* closes report_fd */
    } else if (r->report_fd >= 0) {
        close(r->report_fd);
        r->report_fd = -1;
    }
}

static void exit_watch_close(cbx__cmd_run *r)
{
    if (!r->exit_watch_live)
        return;
    r->exit_watch_live = 0;
    if (r->pidfd >= 0)
        close_handle(r, &r->exit_poll); /* closes the pidfd */
    else
        close_handle(r, &r->exit_timer);
}

/* ---- the result ---------------------------------------------------------------------------- */

static void signal_name(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, len, "SIG%s", abbrev);
    else
        snprintf(buf, len, "SIG%d", sig);
}

static double ms_of(const struct timeval *tv)
{
    return round(((double)tv->tv_sec * 1e3 + (double)tv->tv_usec / 1e3) * 1e3) / 1e3;
}

/* The last non-empty line of a capture, trimmed, for an error message. */
static void last_line(const cbx__capture *c, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t end = c->len;
    while (end > 0 && (c->data[end - 1] == '\n' || c->data[end - 1] == '\r' ||
                       c->data[end - 1] == ' ' || c->data[end - 1] == '\t'))
        end--;
    size_t start = end;
    while (start > 0 && c->data[start - 1] != '\n')
        start--;
    size_t n = end - start;
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = c->data[start + i];
        buf[i] = (unsigned char)ch < 0x20 ? ' ' : ch;
    }
    buf[n] = '\0';
}

/* Fill outcome, outputs, metadata and error from the wait status (or a wait failure). */
static void build_result(cbx__cmd_run *r, int waited, int st, const struct rusage *ru,
                         int wait_errno)
{
    int exited = waited && WIFEXITED(st), signaled = waited && WIFSIGNALED(st);
    int code = exited ? WEXITSTATUS(st) : -1;
    int sig = signaled ? WTERMSIG(st) : 0;
    char sname[32] = "";
    if (signaled)
        signal_name(sig, sname, sizeof sname);

    int out_lossy = 0, err_lossy = 0;
    json_t *out_s = cbx__capture_json(&r->out.cap, &out_lossy);
    json_t *err_s = cbx__capture_json(&r->err.cap, &err_lossy);
    int out_trunc = cbx__capture_truncated(&r->out.cap);
    int err_trunc = cbx__capture_truncated(&r->err.cap);

    int64_t tree_peak = -1;
    int cg_oom = 0;
    cbx__cgroup_memory(&r->cg, &tree_peak, &cg_oom);
    long rss = waited ? ru->ru_maxrss : 0;
    double user_ms = waited ? ms_of(&ru->ru_utime) : 0, sys_ms = waited ? ms_of(&ru->ru_stime) : 0;
    /* A memory cgroup counts every OOM kill in the tree (the limit's and the whole system's): it
     * is the answer where there is one. Without it, a SIGKILL nobody here sent is most likely
     * the kernel's OOM killer. Or, under a memory limit, a failure after the resident set came
     * within 10 % of the limit. */
    int oom =
        cg_oom || (r->cg.mem_dir < 0 && signaled && sig == SIGKILL && !r->kill_sent) ||
        (r->o.rlimit_as_bytes &&
         (signaled || (exited && !cbx__exit_code_succeeds(r->o.success_codes, code))) &&
         rss > r->parent_rss_kb && (double)rss * 1024.0 >= 0.9 * (double)r->o.rlimit_as_bytes);
    int cpu_limit = r->o.rlimit_cpu_s && signaled &&
                    (sig == SIGXCPU || (sig == SIGKILL && !r->kill_sent &&
                                        (user_ms + sys_ms) / 1e3 >= (double)r->o.rlimit_cpu_s));

    r->outputs = json_object();
    json_object_set_new(r->outputs, "exit_code", exited ? json_integer(code) : json_null());
    json_object_set_new(r->outputs, "signal", signaled ? json_string(sname) : json_null());
    json_object_set_new(r->outputs, "stdout", out_s ? out_s : json_string(""));
    json_object_set_new(r->outputs, "stderr", err_s ? err_s : json_string(""));

    json_t *m = json_object();
    json_object_set_new(m, "pid", json_integer(r->pid));
    json_object_set_new(m, "exit_code", exited ? json_integer(code) : json_null());
    json_object_set_new(m, "signal", signaled ? json_string(sname) : json_null());
    json_object_set_new(m, "core_dumped", json_boolean(signaled && WCOREDUMP(st)));
    json_object_set_new(m, "stdout_bytes", json_integer((json_int_t)r->out.cap.total));
    json_object_set_new(m, "stderr_bytes", json_integer((json_int_t)r->err.cap.total));
    json_object_set_new(m, "stdout_truncated", json_boolean(out_trunc));
    json_object_set_new(m, "stderr_truncated", json_boolean(err_trunc));
    json_object_set_new(m, "stdout_lossy", json_boolean(out_lossy));
    json_object_set_new(m, "stderr_lossy", json_boolean(err_lossy));
    if (r->out.tee_errno)
        json_object_set_new(m, "stdout_tee_error", json_string(strerror(r->out.tee_errno)));
    if (r->err.tee_errno)
        json_object_set_new(m, "stderr_tee_error", json_string(strerror(r->err.tee_errno)));
    json_object_set_new(m, "peak_rss_kb", json_integer(rss));
    json_object_set_new(m, "peak_rss_exact", json_boolean(waited && rss > r->parent_rss_kb));
    json_object_set_new(m, "peak_memory_bytes",
                        tree_peak >= 0 ? json_integer((json_int_t)tree_peak) : json_null());
    json_object_set_new(m, "tree", json_string(r->cg.tree_dir >= 0 ? "cgroup" : "process_group"));
    json_object_set_new(m, "leftovers_killed",
                        r->cg.tree_dir >= 0 ? json_boolean(r->leftovers_killed) : json_null());
    json_object_set_new(m, "cpu_user_ms", json_real(user_ms));
    json_object_set_new(m, "cpu_sys_ms", json_real(sys_ms));
    json_object_set_new(m, "duration_ms",
                        json_real(round((double)(r->t1_ns - r->t0_ns) / 1e3) / 1e3));
    json_object_set_new(m, "oom", json_boolean(oom));
    json_object_set_new(m, "cpu_limit_exceeded", json_boolean(cpu_limit));
    json_object_set_new(m, "killed_by", r->killed_by ? json_string(r->killed_by) : json_null());
    r->metadata = m;

    char line[160];
    r->outcome = CBX_OUTCOME_ERROR;
    if (r->exec_failed) { /* the command never ran: its child was only ever cbx's fork */
        json_object_set_new(m, "spawn_error", json_string(r->error));
        json_object_set_new(m, "pid", json_null());
        json_object_set_new(m, "exit_code", json_null());
        json_object_set_new(r->outputs, "exit_code", json_null());
    } else if (!waited) {
        snprintf(r->error, sizeof r->error, "wait4 on pid %d: %s", (int)r->pid,
                 strerror(wait_errno));
    } else if (r->cancelled) {
        snprintf(r->error, sizeof r->error, "%s: process group killed (%s)",
                 r->killed_by && strcmp(r->killed_by, "timeout") == 0 ? "timed out" : "cancelled",
                 !r->kill_sent  ? "SIGTERM"
                 : r->term_sent ? "SIGTERM, then SIGKILL"
                                : "SIGKILL");
    } else if (signaled) {
        if (oom) /* an outcome of its own, that policies can tell from other failures */
            r->outcome = CBX_OUTCOME_OOM;
        snprintf(r->error, sizeof r->error, "killed by %s%s%s%s", sname,
                 WCOREDUMP(st) ? " (core dumped)" : "",
                 cg_oom ? " (out of memory: memory_max_bytes reached)"
                 : oom  ? " (out of memory?)"
                        : "",
                 cpu_limit ? " (CPU time limit)" : "");
    } else if (!cbx__exit_code_succeeds(r->o.success_codes, code)) {
        if (oom)
            r->outcome = CBX_OUTCOME_OOM;
        last_line(&r->err.cap, line, sizeof line);
        snprintf(r->error, sizeof r->error, "exit code %d%s%s%s", code,
                 cg_oom ? " (out of memory: memory_max_bytes reached)"
                 : oom  ? " (out of memory?)"
                        : "",
                 line[0] ? ": " : "", line);
    } else if (r->o.parse_json && out_trunc) {
        snprintf(r->error, sizeof r->error,
                 "parse_json: stdout was truncated at %zu of %llu bytes (raise stdout_max)",
                 r->out.cap.len, (unsigned long long)r->out.cap.total);
    } else if (r->o.parse_json) {
        json_error_t je;
        json_t *doc = json_loadb(r->out.cap.data ? r->out.cap.data : "", r->out.cap.len,
                                 JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!doc) {
            snprintf(r->error, sizeof r->error,
                     "parse_json: stdout is not JSON: %s (line %d, column %d)", je.text, je.line,
                     je.column);
        } else {
            json_object_set_new(r->outputs, "json", doc);
            r->outcome = CBX_OUTCOME_SUCCESS;
        }
    } else {
        r->outcome = CBX_OUTCOME_SUCCESS;
    }
    cbx__capture_free(&r->out.cap);
    cbx__capture_free(&r->err.cap);
}

/* The leader has exited and nothing holds us any more: clean up the group, reap, report. */
static void maybe_finish(cbx__cmd_run *r)
{
    if (r->finishing || !r->exited || r->out.live || r->err.live || r->in_open || r->report_live)
        return;
    r->finishing = 1;
    uv_timer_stop(&r->timer);
    pty_extras_close(r);
    /* What is left of the group (processes that let go of the pipes) goes with its leader. The
     * leader is still unreaped, so the group id cannot have been reused. */
    if (!r->kill_sent && !r->leftovers_gone && !r->o.leave_leftovers) {
        cbx__cgroup_kill(&r->cg);
        kill(-r->pid, SIGKILL);
    }
    /* Without a cgroup: the attempt's orphans, wherever their sessions are. */
    if (r->tree_mark[0] && !r->o.leave_leftovers)
        cbx__orphans_kill(r->tree_mark, r->pid);
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t w;
    while ((w = wait4(r->pid, &st, 0, &ru)) < 0 && errno == EINTR)
        ;
    int wait_errno = w < 0 ? errno : 0;
    r->t1_ns = uv_hrtime();
    build_result(r, w == r->pid, st, &ru, wait_errno);
    cbx__cgroup_close(&r->cg);
    exit_watch_close(r);
    close_handle(r, &r->timer);
}

/* ---- signals ------------------------------------------------------------------------------- */

static void on_drain(uv_timer_t *timer)
{
    cbx__cmd_run *r = timer->data;
    /* Still open after the SIGKILL: held by a process out of reach. Let go. */
    stream_let_go(r, &r->out);
    stream_let_go(r, &r->err);
    stdin_close(r);
    maybe_finish(r);
}

static void send_kill(cbx__cmd_run *r)
{
    if (r->kill_sent)
        return;
    r->kill_sent = 1;
    cbx__cgroup_kill(&r->cg);
    kill(-r->pid, SIGKILL);
    kill(r->pid, SIGKILL); /* not in its own group yet if it has not reached setsid */
    r->timer.data = r;
    uv_timer_start(&r->timer, on_drain, DRAIN_MS, 0);
}

/* The leader has exited by itself: what it left running goes (the cgroup, else its group). */
static void kill_leftovers(cbx__cmd_run *r)
{
    if (r->cg.tree_dir >= 0 && !cbx__cgroup_empty(&r->cg))
        r->leftovers_killed = 1;
    r->leftovers_gone = 1;
    cbx__cgroup_kill(&r->cg);
    kill(-r->pid, SIGKILL);
    if (r->tree_mark[0])
        cbx__orphans_kill(r->tree_mark, r->pid);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_drain, DRAIN_MS, 0);
}

static void on_grace(uv_timer_t *timer)
{
    send_kill(timer->data);
}

/* ---- the exit ------------------------------------------------------------------------------ */

static void child_exited(cbx__cmd_run *r)
{
    if (r->exited)
        return;
    r->exited = 1;
    exit_watch_close(r);
    pty_extras_close(r);
    if (r->cancelled) {
        send_kill(r);
        if (r->tree_mark[0]) /* orphans now: reparented to us */
            cbx__orphans_kill(r->tree_mark, r->pid);
    } else if (r->o.leave_leftovers) {
        /* Whatever still holds the pipes was left running on purpose: take what they hold. */
        stream_let_go(r, &r->out);
        stream_let_go(r, &r->err);
        stdin_close(r);
    } else if (r->out.live || r->err.live || r->in_open) {
        /* Maybe only EOF not yet seen; or something the leader left holds the pipes: then it
         * goes, and the pipes reach EOF. */
        kill_leftovers(r);
    }
    maybe_finish(r);
}

static void on_pidfd(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    child_exited(p->data);
}

static void on_exit_poll(uv_timer_t *timer)
{
    cbx__cmd_run *r = timer->data;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc = waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT);
    if ((rc == 0 && si.si_pid == r->pid) || (rc < 0 && errno == ECHILD)) {
        child_exited(r);
        return;
    }
    if (r->exit_timer_ms < EXIT_POLL_MAX_MS)
        r->exit_timer_ms *= 2;
    uv_timer_start(&r->exit_timer, on_exit_poll, r->exit_timer_ms, 0);
}

/* ---- the exec report ---------------------------------------------------------------------- */

static void on_report(uv_poll_t *p, int status, int events)
{
    (void)events;
    cbx__cmd_run *r = p->data;
    cbx_err err;
    cbx_err_clear(&err);
    int rc = status < 0 ? 0 : cbx__cmd_spawn_report(r->report_fd, r->o.argv0, r->o.cwd, &err);
    if (rc == 1)
        return;
    if (rc < 0) {
        r->exec_failed = 1;
        snprintf(r->error, sizeof r->error, "%s", err.msg);
    }
    report_close(r);
    maybe_finish(r);
}

/* ---- the pipes ----------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    cbx__capture_buf(suggested, buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cbx__cmd_run *r = s->data;
    cbx__cmd_stream *st = (uv_pipe_t *)s == &r->out.pipe ? &r->out : &r->err;
    if (n > 0) {
        cbx__capture_add(&st->cap, buf->base, (size_t)n);
        tee_chunk(st, buf->base, (size_t)n);
        if (emit_chunk(r, st, buf->base, (size_t)n) != -EPIPE && st->tee_errno != EPIPE)
            return;
        /* Whoever read the tee (or took the chunks) is gone: so is the command's pipe, and the
         * command's next write raises SIGPIPE, as if it wrote there itself. */
    } else if (n == 0) {
        return;
    } else if (n == UV_EOF && r->spec.pty) {
        /* libuv takes a hang-up after a short read for the end. A pipe is empty then; a pty's
         * master may still hold what the child wrote just before it exited, which the kernel
         * hands to the master's reader in the background (a read takes what has arrived). Once
         * the other side is closed, a read waits for that hand-over and ends with EIO: so read
         * it all now. */
        stream_let_go(r, st);
        maybe_finish(r);
        return;
    }
    stream_close(r, st); /* EOF, a read error or a reader gone: either way nothing more comes */
    maybe_finish(r);
}

static void stream_open(cbx__cmd_run *r, cbx__cmd_stream *s, int fd)
{
    if (fd < 0)
        return; /* none: stderr with a pty */
    uv_pipe_init(r->loop, &s->pipe, 0);
    s->pipe.data = r;
    r->handles++;
    s->live = 1;
    if (uv_pipe_open(&s->pipe, fd) < 0) {
        close(fd);
        stream_close(r, s);
        return;
    }
    if (uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read) < 0)
        stream_close(r, s);
}

/* A write that cannot raise SIGPIPE in this process: the signal is blocked in this thread for
 * the call, and taken back if the write raised it. */
static ssize_t write_nosigpipe(int fd, const char *p, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = write(fd, p, n);
    int e = errno;
    if (w < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return w;
}

/* Write what the pipe (or pty) takes. 1 when stdin is finished (all written, or the reader is
 * gone). */
static int stdin_feed(cbx__cmd_run *r)
{
    /* On a pty the text is typed, then ^D: the end of the input (or of its last line). */
    size_t len = r->o.stdin_len, total = len + (r->spec.pty ? 1 : 0);
    while (r->in_off < total) {
        ssize_t w = r->in_off < len
                        ? write_nosigpipe(r->in_fd, r->o.stdin_data + r->in_off, len - r->in_off)
                        : write_nosigpipe(r->in_fd, "\x04", 1);
        if (w > 0) {
            r->in_off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return 1; /* EPIPE: the command does not read its input */
        }
    }
    return 1;
}

static void on_stdin_writable(uv_poll_t *p, int status, int events)
{
    (void)events;
    cbx__cmd_run *r = p->data;
    if (status < 0 || stdin_feed(r)) {
        stdin_close(r);
        maybe_finish(r);
    }
}

/* ---- the pty ------------------------------------------------------------------------------- */

/* What came on pty_input_fd is typed into the pty; at its end, the terminal's end-of-file (^D). */
static void on_pump(uv_poll_t *p, int status, int events)
{
    (void)events;
    cbx__cmd_run *r = p->data;
    char buf[4096];
    ssize_t n = status < 0 ? 0 : read(r->pump_fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        buf[0] = '\x04';
        n = 1;
        uv_poll_stop(p);
    }
    const char *q = buf;
    while (n > 0) {
        ssize_t w = write_nosigpipe(r->pump_to, q, (size_t)n);
        if (w > 0) {
            q += w;
            n -= w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pfd = {.fd = r->pump_to, .events = POLLOUT};
            poll(&pfd, 1, -1);
        } else {
            uv_poll_stop(p); /* the pty is gone: the child has exited */
            return;
        }
    }
}

static void copy_winsize(cbx__cmd_run *r)
{
    struct winsize ws;
    if (r->pump_to >= 0 && ioctl(r->o.winsize_fd, TIOCGWINSZ, &ws) == 0)
        ioctl(r->pump_to, TIOCSWINSZ, &ws); /* the child's foreground group gets SIGWINCH */
}

static void on_winch(uv_signal_t *h, int signum)
{
    (void)signum;
    copy_winsize(h->data);
}

/* Keep master (a copy of the pty's master) to type pty_input_fd into and to resize it. */
static void pty_extras_open(cbx__cmd_run *r, int master)
{
    r->pump_to = master;
    if (r->o.pty_input_fd >= 0)
        r->pump_fd = fcntl(r->o.pty_input_fd, F_DUPFD_CLOEXEC, 3);
    if (r->pump_fd >= 0 && uv_poll_init(r->loop, &r->pump_poll, r->pump_fd) == 0) {
        r->pump_poll.data = r;
        r->handles++;
        r->pump_live = 1;
        uv_poll_start(&r->pump_poll, UV_READABLE, on_pump);
    } else if (r->pump_fd >= 0) {
        close(r->pump_fd);
        r->pump_fd = -1;
    }
    if (r->o.winsize_fd >= 0 && uv_signal_init(r->loop, &r->winch) == 0) {
        r->winch.data = r;
        r->handles++;
        r->winch_live = 1;
        uv_signal_start(&r->winch, on_winch, SIGWINCH);
    }
    if (!r->pump_live) {
        /* the size was set at the start; the master copy is kept for SIGWINCH only */
        if (!r->winch_live) {
            close(r->pump_to);
            r->pump_to = -1;
        }
    }
}

/* ---- start and cancel ---------------------------------------------------------------------- */

int cbx__cmd_inline_spawn;

static void free_spec_mem(cbx__cmd_run *r)
{
    for (int i = 0; i < 4; i++) {
        free(r->spec_mem[i]);
        r->spec_mem[i] = NULL;
    }
}

/* Without a cgroup: the child's environment gets the attempt's mark (see command_orphans.c). */
static void mark_tree(cbx__cmd_run *r)
{
    size_t n = 0;
    while (r->spec.envp[n])
        n++;
    char **envp = malloc((n + 2) * sizeof *envp);
    if (!envp)
        return; /* unmarked: the process group is all that is reached */
    memcpy(envp, r->spec.envp, n * sizeof *envp);
    cbx__orphans_mark(r->tree_mark, sizeof r->tree_mark);
    envp[n] = r->tree_mark;
    envp[n + 1] = NULL;
    r->spec.envp = envp;
    r->spec_mem[3] = envp;
}

/* Not started: reported from the timer's close callback, never from inside start. */
static void start_failed(cbx__cmd_run *r, int rc, const cbx_err *err)
{
    r->t1_ns = uv_hrtime();
    r->outcome = CBX_OUTCOME_ERROR;
    snprintf(r->error, sizeof r->error, "%s", err->msg[0] ? err->msg : cbx_strerror(rc));
    r->metadata =
        json_pack("{s:n,s:n,s:n,s:s,s:f}", "pid", "exit_code", "signal", "spawn_error", r->error,
                  "duration_ms", round((double)(r->t1_ns - r->t0_ns) / 1e3) / 1e3);
    r->finishing = 1;
    cbx__cgroup_close(&r->cg);
    close_handle(r, &r->timer);
}

static void stop(cbx__cmd_run *r);

/* The child has started (or failed to): wire it to the loop. */
static void wire(cbx__cmd_run *r, int rc, const cbx__cmd_child *ch, cbx_err *err)
{
    const cbx__cmd_opts *o = &r->o;
    free_spec_mem(r);
    if (rc < 0) {
        start_failed(r, rc, err);
        return;
    }
    r->pid = ch->pid;
    r->pidfd = ch->pidfd;
    r->report_fd = ch->report_fd;
    r->parent_rss_kb = ch->parent_rss_kb;

    if (r->report_fd < 0) {
        if (ch->exec_stage) {
            r->exec_failed = 1;
            cbx__cmd_spawn_failure(o->argv0, o->cwd, ch->exec_stage, ch->exec_errno, err);
            snprintf(r->error, sizeof r->error, "%s", err->msg);
        }
    } else if (uv_poll_init(r->loop, &r->report_poll, r->report_fd) == 0) {
        r->report_poll.data = r;
        r->handles++;
        r->report_live = 1;
        uv_poll_start(&r->report_poll, UV_READABLE, on_report);
    } else {
        report_close(r); /* the exit status will still tell */
    }

    if (r->pidfd >= 0 && uv_poll_init(r->loop, &r->exit_poll, r->pidfd) < 0) {
        close(r->pidfd);
        r->pidfd = -1;
    }
    if (r->pidfd >= 0) {
        r->exit_poll.data = r;
        r->handles++;
        r->exit_watch_live = 1;
        uv_poll_start(&r->exit_poll, UV_READABLE, on_pidfd);
    } else {
        uv_timer_init(r->loop, &r->exit_timer);
        r->exit_timer.data = r;
        r->handles++;
        r->exit_watch_live = 1;
        r->exit_timer_ms = 1;
        uv_timer_start(&r->exit_timer, on_exit_poll, r->exit_timer_ms, 0);
    }

    /* The terminal stays up until the child has exited, whatever happens to the other copies
     * (child_exited lets go of this one). */
    if (r->spec.pty && ch->stdout_fd >= 0)
        r->pty_hold = fcntl(ch->stdout_fd, F_DUPFD_CLOEXEC, 3);
    stream_open(r, &r->out, ch->stdout_fd);
    stream_open(r, &r->err, ch->stderr_fd);

    int in_fd = ch->stdin_fd;
    if (r->spec.pty && !r->o.stdin_data) {
        pty_extras_open(r, in_fd); /* the master's copy is theirs */
        in_fd = -1;
    }
    r->in_fd = in_fd;
    r->in_open = r->in_fd >= 0;
    /* What the pipe takes now is written now; the rest when it is writable again. */
    int fed = r->in_open && stdin_feed(r);
    if (r->in_open && !fed && uv_poll_init(r->loop, &r->in_poll, r->in_fd) == 0) {
        r->in_poll.data = r;
        r->handles++;
        r->in_poll_live = 1;
        uv_poll_start(&r->in_poll, UV_WRITABLE, on_stdin_writable);
    } else if (r->in_open) {
        stdin_close(r); /* all written (or the poll could not be set up) */
    }
    if (r->cancelled && !r->exec_failed) /* cancelled while the spawner was at it */
        stop(r);
}

/* Timeout or cancel: SIGTERM, and SIGKILL after the grace (at once without one). */
static void stop(cbx__cmd_run *r)
{
    stdin_close(r);
    if (r->exited || r->o.kill_grace_ms == 0) {
        send_kill(r);
    } else {
        r->term_sent = 1;
        kill(-r->pid, SIGTERM);
        kill(r->pid, SIGTERM);
        uv_timer_start(&r->timer, on_grace, r->o.kill_grace_ms, 0);
    }
    maybe_finish(r);
}

static void on_spawned(uv_async_t *a)
{
    cbx__cmd_run *r = a->data;
    cbx__spawn_job_acquire(&r->job);
    r->spawning = 0;
    close_handle(r, &r->spawned);
    wire(r, r->job.rc, &r->job.child, &r->job.err);
}

int cbx__cmd_run_start(cbx_task *t, const cbx__cmd_spec *spec, void *mem[3], const cbx__cmd_opts *o)
{
    cbx__cmd_run *r = cbx_task_state(t);
    r->task = t;
    r->emit = cbx_task_stream_wanted(t);
    r->loop = cbx_task_loop(t);
    r->o = *o;
    r->pid = -1;
    r->pidfd = r->in_fd = r->report_fd = -1;
    r->pump_fd = r->pump_to = r->pty_hold = -1;
    r->out.cap.max = o->stdout_max;
    r->err.cap.max = o->stderr_max;
    r->out.tee_fd = o->tee_fd[0];
    r->err.tee_fd = o->tee_fd[1];
    r->spec = *spec;
    for (int i = 0; i < 3; i++)
        r->spec_mem[i] = mem[i];
    r->spec_mem[3] = NULL;
    uv_timer_init(r->loop, &r->timer);
    r->timer.data = r;
    r->handles = 1;
    r->t0_ns = uv_hrtime();

    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx__cgroup_open(&r->cg, o->memory_max_bytes, &err);
    if (rc < 0) {
        free_spec_mem(r);
        start_failed(r, rc, &err);
        return 0;
    }
    r->spec.n_cgroup_procs = 0;
    for (int i = 0; i < 2; i++)
        if (r->cg.procs_fd[i] >= 0)
            r->spec.cgroup_procs[r->spec.n_cgroup_procs++] = r->cg.procs_fd[i];
    if (rc == 1 && cbx__orphans_enable() == 0)
        mark_tree(r);

    if (uv_async_init(r->loop, &r->spawned, on_spawned) == 0) {
        r->spawned.data = r;
        r->job.spec = &r->spec;
        r->job.done = &r->spawned;
        if (cbx__spawner_submit(&r->job) == 0) {
            r->handles++;
            r->spawning = 1;
            return 0;
        }
        r->handles++;
        close_handle(r, &r->spawned); /* never signalled */
    }
    cbx__cmd_child ch;
    rc = cbx__cmd_spawn(&r->spec, &ch, &err);
    wire(r, rc, &ch, &err);
    return 0;
}

static int timed_out(const cbx_task *t)
{
    if (cbx_task_timed_out)
        return cbx_task_timed_out(t);
    /* Without the runtime's word: the deadline has passed (its timer never fires early). */
    uint64_t dl = cbx_task_deadline_ns(t);
    return dl != UINT64_MAX && cbx_clock_now_ns(cbx_task_clock(t)) + 1000000u >= dl;
}

void cbx__cmd_run_cancel(cbx_task *t)
{
    cbx__cmd_run *r = cbx_task_state(t);
    if (r->cancelled || r->finishing || (r->pid <= 0 && !r->spawning))
        return;
    r->cancelled = 1;
    r->killed_by = timed_out(t) ? "timeout" : "cancel";
    if (r->spawning)
        return; /* stopped as soon as the child is there (wire) */
    stop(r);
}
