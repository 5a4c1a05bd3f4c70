/* Starting a child by hand, not uv_spawn.
 *
 * uv_spawn reaps its children itself with waitpid() and so loses their rusage (peak memory, CPU
 * time), and it cannot set rlimits. Here the child is started, watched through a pidfd by the
 * caller and reaped with wait4() by the caller. libuv's own SIGCHLD handler waits only on the
 * pids of its uv_process_t handles, so it never takes ours.
 *
 * clone(CLONE_VM | CLONE_VFORK), as posix_spawn does: the child runs on a stack of its own in the
 * parent's memory and the parent's thread sleeps until the child has called exec or exited. Not
 * a copy of the parent's page tables, as fork() makes: with libcurl, Lua, SQLite and their heaps
 * mapped, that copy was most of the cost of a short command. The wait is the child's few system
 * calls up to exec. Whether exec succeeded is known when clone returns: the child writes where
 * and why it failed into the shared context before it exits.
 *
 * Under the sanitizers (which must see a fork they can follow) and on C libraries without clone,
 * it is a fork; then the child reports a failure on a close-on-exec pipe (EOF: exec succeeded),
 * which the caller watches on the loop (cbx__cmd_spawn_report). The same pipe serves when a tool
 * such as valgrind turns the vfork-like clone into a plain fork: the child's mark in the shared
 * context then never reaches the parent, which notices and watches the pipe instead.
 *
 * In the child, before exec, only system calls are made (async-signal-safe): the parent may have
 * other threads, holding locks the child must never wait for. Every signal is blocked across the
 * clone so that no handler of the parent runs in the child (libuv's would write into the parent's
 * signal pipe, which the child shares); the child resets every disposition to the default and
 * unblocks all signals just before exec. With CLONE_VM the child's errno is the parent thread's:
 * the parent reads errno only from clone's own return. */
#define _GNU_SOURCE
#include "executors/command.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child's stack, on the parent's (asleep until exec): the child makes a few system calls. */
#define CHILD_STACK_BYTES 16384

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

int cbx__cmd_no_pidfd;

/* Where the child failed, as written to the report pipe. */
enum {
    STAGE_SETSID = 1,
    STAGE_DUP,
    STAGE_CWD,
    STAGE_RLIMIT_CPU,
    STAGE_RLIMIT_AS,
    STAGE_RLIMIT_NOFILE,
    STAGE_EXEC,
    STAGE_CGROUP,
    STAGE_PDEATHSIG,
    STAGE_CTTY
};

typedef struct child_ctx {
    const cbx__cmd_spec *spec;
    int fd_in, fd_out, fd_err, fd_report;
    pid_t parent;
    sigset_t empty;
    /* Written by the child in the parent's memory (clone with CLONE_VM), read after clone
     * returns: the child has started; where and why it failed. */
    volatile int started, stage, error;
} child_ctx;

__attribute__((noreturn)) static void child_fail(child_ctx *c, int stage, int e)
{
    c->stage = stage;
    c->error = e;
    int msg[2] = {stage, e};
    while (write(c->fd_report, msg, sizeof msg) < 0 && errno == EINTR)
        ;
    _exit(127);
}

static int limit(int resource, uint64_t soft, uint64_t hard)
{
    struct rlimit rl = {.rlim_cur = (rlim_t)soft, .rlim_max = (rlim_t)hard};
    return setrlimit(resource, &rl);
}

/* The child, up to exec. System calls only; never returns. */
__attribute__((noreturn, noinline)) static void child_main(child_ctx *c)
{
    const cbx__cmd_spec *s = c->spec;
    c->started = 1;
    /* Into the attempt's cgroups first: whatever it forks from here on is tracked. */
    for (int i = 0; i < s->n_cgroup_procs; i++)
        if (write(s->cgroup_procs[i], "0", 1) < 0)
            child_fail(c, STAGE_CGROUP, errno);
    /* Dies with the thread that started it (the spawner, which lives as long as cbx); a parent
     * already gone before the prctl is seen by getppid. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        child_fail(c, STAGE_PDEATHSIG, errno);
    if (getppid() != c->parent)
        _exit(127);
    if (setsid() < 0)
        child_fail(c, STAGE_SETSID, errno);
    if (dup2(c->fd_in, 0) < 0 || dup2(c->fd_out, 1) < 0 || dup2(c->fd_err, 2) < 0)
        child_fail(c, STAGE_DUP, errno);
    /* The pty becomes the new session's controlling terminal: job control, ^C, `tty` work. */
    if (s->pty && ioctl(0, TIOCSCTTY, 0) < 0)
        child_fail(c, STAGE_CTTY, errno);
    /* Descriptors someone opened without O_CLOEXEC do not leak into the command either. */
    syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
    if (s->cwd && chdir(s->cwd) < 0)
        child_fail(c, STAGE_CWD, errno);
    /* CPU: SIGXCPU at the limit, SIGKILL a second later if that is caught or ignored. */
    if (s->rlimit_cpu_s && limit(RLIMIT_CPU, s->rlimit_cpu_s, s->rlimit_cpu_s + 1) < 0 &&
        limit(RLIMIT_CPU, s->rlimit_cpu_s, s->rlimit_cpu_s) < 0)
        child_fail(c, STAGE_RLIMIT_CPU, errno);
    if (s->rlimit_as_bytes && limit(RLIMIT_AS, s->rlimit_as_bytes, s->rlimit_as_bytes) < 0)
        child_fail(c, STAGE_RLIMIT_AS, errno);
    if (s->rlimit_nofile && limit(RLIMIT_NOFILE, s->rlimit_nofile, s->rlimit_nofile) < 0)
        child_fail(c, STAGE_RLIMIT_NOFILE, errno);

    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* EINVAL for the C library's own signals: fine */
    sigprocmask(SIG_SETMASK, &c->empty, NULL);

    if (!s->candidates) {
        execve(s->argv[0], s->argv, s->envp);
        child_fail(c, STAGE_EXEC, errno);
    }
    /* As execvp: try each directory; a permission problem wins over "not found". */
    int seen_eacces = 0;
    for (char *const *p = s->candidates; *p; p++) {
        execve(*p, s->argv, s->envp);
        switch (errno) {
        case EACCES:
            seen_eacces = 1;
            break;
        case ENOENT:
        case ENOTDIR:
        case ESTALE:
        case ENODEV:
        case ETIMEDOUT:
        case ENAMETOOLONG:
        case ELOOP:
            break;
        default:
            child_fail(c, STAGE_EXEC, errno);
        }
    }
    child_fail(c, STAGE_EXEC, seen_eacces ? EACCES : ENOENT);
}

#ifdef CBX__PLAIN_FORK
#define SPAWN_CALL "fork"
#else
#define SPAWN_CALL "clone"
static int child_entry(void *arg)
{
    child_main(arg);
}
#endif

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Keep descriptors off 0..2 so that the child's dup2 calls never clobber one another (possible
 * only when the parent runs with its standard descriptors closed). */
static int lift(int *fd)
{
    if (*fd > 2)
        return 0;
    int n = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (n < 0)
        return -errno;
    close(*fd);
    *fd = n;
    return 0;
}

static int nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int make_pipe(int fds[2], cbx_err *err, const char *what)
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return cbx_err_set(err, -errno, "%s pipe: %s", what, strerror(errno));
    int rc = lift(&fds[0]);
    if (!rc)
        rc = lift(&fds[1]);
    if (rc)
        return cbx_err_set(err, rc, "%s pipe: %s", what, strerror(-rc));
    return 0;
}

/* The child's stdin from one of our descriptors: a regular file opened anew, with an offset of
 * its own at 0 (each attempt reads all of it, however many run at once); else a copy of fd. */
static int open_stdin_fd(int fd, int *out, cbx_err *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return cbx_err_set(err, -errno, "stdin_fd %d: %s", fd, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        *out = open(path, O_RDONLY | O_CLOEXEC);
    } else {
        *out = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    }
    int rc = *out < 0 ? -errno : lift(out);
    if (rc < 0)
        return cbx_err_set(err, rc, "stdin_fd %d: %s", fd, strerror(-rc));
    return 0;
}

/* A new pseudo-terminal: *master (close-on-exec) and *slave, with the window size of
 * winsize_fd when that is a terminal. */
static int open_pty(int winsize_fd, int *master, int *slave, cbx_err *err)
{
    *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    char name[64];
    if (*master < 0 || grantpt(*master) < 0 || unlockpt(*master) < 0 ||
        ptsname_r(*master, name, sizeof name) != 0)
        return cbx_err_set(err, -errno, "pty: %s", strerror(errno));
    *slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    int rc = *slave < 0 ? -errno : lift(slave);
    if (rc == 0)
        rc = lift(master);
    if (rc < 0)
        return cbx_err_set(err, rc, "pty %s: %s", name, strerror(-rc));
    struct winsize ws;
    if (winsize_fd >= 0 && ioctl(winsize_fd, TIOCGWINSZ, &ws) == 0)
        ioctl(*master, TIOCSWINSZ, &ws);
    return 0;
}

static void reap(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

int cbx__cmd_spawn_failure(const char *argv0, const char *cwd, int stage, int e, cbx_err *err)
{
    switch (stage) {
    case STAGE_EXEC:
        return cbx_err_set(err, -e, "argv[0] '%s': %s", argv0, strerror(e));
    case STAGE_CWD:
        return cbx_err_set(err, -e, "cwd '%s': %s", cwd ? cwd : "", strerror(e));
    case STAGE_RLIMIT_CPU:
        return cbx_err_set(err, -e, "rlimit_cpu_s: %s", strerror(e));
    case STAGE_RLIMIT_AS:
        return cbx_err_set(err, -e, "rlimit_memory_bytes: %s", strerror(e));
    case STAGE_RLIMIT_NOFILE:
        return cbx_err_set(err, -e, "rlimit_nofile: %s", strerror(e));
    case STAGE_CGROUP:
        return cbx_err_set(err, -e, "joining the attempt's cgroup: %s", strerror(e));
    case STAGE_PDEATHSIG:
        return cbx_err_set(err, -e, "prctl(PR_SET_PDEATHSIG): %s", strerror(e));
    case STAGE_SETSID:
        return cbx_err_set(err, -e, "setsid: %s", strerror(e));
    case STAGE_CTTY:
        return cbx_err_set(err, -e, "pty: TIOCSCTTY: %s", strerror(e));
    default:
        return cbx_err_set(err, -e, "dup2: %s", strerror(e));
    }
}

int cbx__cmd_spawn(const cbx__cmd_spec *spec, cbx__cmd_child *child, cbx_err *err)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1};
    int rc;
    child->pid = -1;
    child->pidfd = child->stdin_fd = child->stdout_fd = child->stderr_fd = child->report_fd = -1;
    child->parent_rss_kb = 0;
    child->exec_stage = child->exec_errno = 0;

    if (spec->pty) {
        /* out[0] the master, read; in[1] a copy of it, written; the slave is all three */
        if ((rc = make_pipe(rep, err, "exec report")) ||
            (rc = open_pty(spec->winsize_fd, &out[0], &out[1], err)))
            goto fail;
        in[1] = fcntl(out[0], F_DUPFD_CLOEXEC, 3);
        in[0] = fcntl(out[1], F_DUPFD_CLOEXEC, 3);
        errp[1] = fcntl(out[1], F_DUPFD_CLOEXEC, 3);
        if (in[1] < 0 || in[0] < 0 || errp[1] < 0) {
            rc = cbx_err_set(err, -errno, "pty: %s", strerror(errno));
            goto fail;
        }
    } else if ((rc = make_pipe(out, err, "stdout")) || (rc = make_pipe(errp, err, "stderr")) ||
               (rc = make_pipe(rep, err, "exec report"))) {
        goto fail;
    } else if (spec->stdin_pipe) {
        if ((rc = make_pipe(in, err, "stdin")))
            goto fail;
    } else if (spec->stdin_fd >= 0) {
        if ((rc = open_stdin_fd(spec->stdin_fd, &in[0], err)))
            goto fail;
    } else {
        in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        rc = in[0] < 0 ? -errno : lift(&in[0]);
        if (rc < 0) {
            cbx_err_set(err, rc, "/dev/null: %s", strerror(-rc));
            goto fail;
        }
    }

    child_ctx c = {.spec = spec,
                   .fd_in = in[0],
                   .fd_out = out[1],
                   .fd_err = errp[1],
                   .fd_report = rep[1],
                   .parent = getpid()};
    sigemptyset(&c.empty);
    struct rusage self;
    if (getrusage(RUSAGE_SELF, &self) == 0)
        child->parent_rss_kb = self.ru_maxrss;

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
#ifdef CBX__PLAIN_FORK
    pid_t pid = fork();
    if (pid == 0)
        child_main(&c);
#else
    _Alignas(16) char stack[CHILD_STACK_BYTES];
    pid_t pid = clone(child_entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
#endif
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&errp[1]);
    close_fd(&rep[1]);
    if (pid < 0) {
        rc = cbx_err_set(err, -fork_errno, "%s: %s", SPAWN_CALL, strerror(fork_errno));
        goto fail;
    }
    /* Known already (the child ran up to exec or its failure before clone returned): no pipe to
     * watch. A fork (or a clone a tool turned into one) leaves the mark unset. */
    if (c.started) {
        close_fd(&rep[0]);
        child->exec_stage = c.stage;
        child->exec_errno = c.error;
    }

    child->pid = pid;
    child->pidfd = cbx__cmd_no_pidfd ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
    if (child->pidfd >= 0 && child->pidfd <= 2) {
        int fd = child->pidfd;
        if (lift(&fd) == 0)
            child->pidfd = fd;
    }
    if ((rc = nonblock(out[0])) || (errp[0] >= 0 && (rc = nonblock(errp[0]))) ||
        (rep[0] >= 0 && (rc = nonblock(rep[0]))) || (in[1] >= 0 && (rc = nonblock(in[1])))) {
        /* not expected with pipes of our own; do not leave the child behind */
        kill(pid, SIGKILL);
        reap(pid);
        if (child->pidfd >= 0)
            close(child->pidfd);
        child->pid = -1;
        child->pidfd = -1;
        cbx_err_set(err, rc, "fcntl: %s", strerror(-rc));
        goto fail;
    }
    child->stdout_fd = out[0];
    child->stderr_fd = errp[0];
    child->stdin_fd = in[1];
    child->report_fd = rep[0];
    return 0;

fail:
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    close_fd(&rep[0]);
    close_fd(&rep[1]);
    return rc;
}

int cbx__cmd_spawn_report(int fd, const char *argv0, const char *cwd, cbx_err *err)
{
    int msg[2];
    ssize_t n;
    while ((n = read(fd, msg, sizeof msg)) < 0 && errno == EINTR)
        ;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 1;
    if (n == 0)
        return 0;
    if (n == (ssize_t)sizeof msg)
        return cbx__cmd_spawn_failure(argv0, cwd, msg[0], msg[1], err);
    return cbx_err_set(err, -EIO, "argv[0] '%s': the child failed before exec", argv0);
}
