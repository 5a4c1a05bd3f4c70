/* A cgroup per attempt: the command's whole tree, whatever it does with sessions and groups.
 *
 * Where the machine allows it (the cgroup files are writable: root, or a delegated subtree),
 * every attempt gets a cgroup of its own under one per process:
 *
 *   <cgroup v2 mount><our cgroup>/cbx-<pid>/<seq>      tracking and kill (cgroup.kill)
 *   <v1 memory mount><our memory cgroup>/cbx-<pid>/<seq>  on hybrid hosts, where the memory
 *                                                        controller is bound to v1
 *
 * On a pure v2 host whose cgroup delegates the memory controller, the v2 cgroup is also the
 * memory one. The child joins them before exec by writing "0" to their cgroup.procs (opened
 * here, before the clone). What the tree forks stays in the cgroup: setsid() or a double fork
 * does not take a process out. The memory cgroup gives the tree's peak memory and, under a limit,
 * the kernel's OOM kills.
 *
 * A guard process (started once, the first time a cgroup is made) waits for this process to die,
 * on a pipe only we hold; then it kills cbx-<pid> (all of it: every attempt's tree) and removes
 * the directories. So a kill -9 of cbx takes its commands' trees with it. The guard is a clone
 * that shares our memory (CLONE_VM), not a fork: a fork copied the page tables, and every page
 * this process wrote afterwards was copied again on its first write (about 25 page faults of
 * `cbx exec -- true`, and the fork's copy, on the start of every process that runs a command).
 *
 * Making and removing cgroup directories costs a few hundred microseconds each (more in v1's
 * memory hierarchy), as much as a short command itself: an attempt's cgroup that is empty at the
 * end is kept in a pool and given to a later attempt (its peak memory reset, its limit set
 * again, its OOM count taken as the new base). A directory still busy (processes leave a short
 * while after a SIGKILL) is kept on a list and removed at a later attempt, or by the guard. */
#define _GNU_SOURCE
#include "executors/command.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

int cbx__cmd_no_cgroup;

/* Busy directories kept for later: at most this many, the rest is left to the guard. */
#define PENDING_MAX 256
/* Empty cgroups kept for later attempts. */
#define POOL_MAX 64

static struct {
    pthread_once_t once;
    pthread_mutex_t lock;
    int tree_ok, mem_ok; /* what the probe found usable */
    int mem_v1;          /* the memory cgroup is v1's (else the v2 cgroup is also the memory one) */
    int has_kill;        /* v2 cgroup.kill exists (kernel 5.14+) */
    char tree_base[PATH_MAX], mem_base[PATH_MAX]; /* .../cbx-<pid> */
    int tree_base_fd, mem_base_fd;                /* O_DIRECTORY of the bases */
    uint64_t seq;
    pid_t guard;
    int guard_fd; /* the write end the guard watches */
    char *pending[PENDING_MAX];
    int npending;
    cbx__cgroup pool[POOL_MAX];
    int npool;
} g = {.once = PTHREAD_ONCE_INIT,
       .lock = PTHREAD_MUTEX_INITIALIZER,
       .tree_base_fd = -1,
       .mem_base_fd = -1,
       .guard = -1,
       .guard_fd = -1};

/* ---- small file helpers (system calls only: also used by the guard) ------------------------- */

static int write_at(int dirfd, const char *name, const char *s)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, s, strlen(s));
    int rc = n < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static ssize_t read_at(int dirfd, const char *name, char *buf, size_t len)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    while (got + 1 < len) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    return (ssize_t)got;
}

/* Kill every process of the cgroup at dirfd and its descendants: cgroup.kill when the kernel has
 * it, else SIGKILL to each pid listed in cgroup.procs, a few rounds (a fork racing the reading
 * is caught by the next round). System calls only. */
static void kill_dir(int dirfd)
{
    if (write_at(dirfd, "cgroup.kill", "1") == 0)
        return;
    for (int round = 0; round < 8; round++) {
        char buf[4096];
        ssize_t n = read_at(dirfd, "cgroup.procs", buf, sizeof buf);
        if (n <= 0)
            return;
        for (char *p = buf; *p;) {
            long pid = 0;
            while (*p >= '0' && *p <= '9')
                pid = pid * 10 + (*p++ - '0');
            if (pid > 0)
                kill((pid_t)pid, SIGKILL);
            while (*p && (*p < '0' || *p > '9'))
                p++;
        }
    }
}

/* ---- the probe ------------------------------------------------------------------------------ */

/* /proc/self/mountinfo and /proc/self/cgroup, each read once by the probe (both hierarchies are
 * looked up in them): NUL-terminated, NULL when unreadable. The kernel writes every mount's line
 * at each read, and sscanf over each line was most of the probe's own work. */
static char *read_proc(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return NULL;
    }
    for (;;) {
        if (len + 1 == cap) {
            char *p = cap < ((size_t)4 << 20) ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                close(fd);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

/* The next space-separated field of *p (at most len - 1 bytes kept) into out; *p moves past it.
 * 0, or -1 when the line has no more. */
static int field(const char **p, char *out, size_t len)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    size_t n = strcspn(s, " \n");
    if (n == 0 || n >= len)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n;
    return 0;
}

/* 1 when the comma-separated list (up to a space, a newline or the end) has word. */
static int list_has(const char *list, const char *word)
{
    size_t w = strlen(word);
    for (const char *t = list;;) {
        size_t n = strcspn(t, ",: \n");
        if (n == w && strncmp(t, word, w) == 0)
            return 1;
        if (t[n] != ',')
            return 0;
        t += n + 1;
    }
}

/* Our cgroup path in the hierarchy of this /proc/self/cgroup line's controller list: "" for v2
 * ("0::/x"), "memory" for v1's memory. 0 and path, or -1. */
static int own_cgroup(const char *text, const char *want, char *path, size_t len)
{
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *c1 = strchr(line, ':');
        const char *eol = line + strcspn(line, "\n");
        const char *c2 = c1 && c1 < eol ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2 > eol)
            continue;
        const char *ctrls = c1 + 1;
        int match = !want[0] ? c1 - line == 1 && line[0] == '0' && ctrls == c2
                             : c2 > ctrls && list_has(ctrls, want);
        size_t n = (size_t)(eol - (c2 + 1));
        if (match && n < len) {
            memcpy(path, c2 + 1, n);
            path[n] = '\0';
            return 0;
        }
    }
    return -1;
}

/* The mount point and root of the hierarchy in the mountinfo text: fstype "cgroup2", or "cgroup"
 * with the super option opt ("memory"). 0, or -1 when not mounted. */
static int mount_of(const char *text, const char *fstype, const char *opt, char *mnt, size_t mlen,
                    char *root, size_t rlen)
{
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        /* id parent major:minor root mountpoint opts [optional...] - fstype source superopts */
        const char *eol = line + strcspn(line, "\n");
        const char *dash = strstr(line, " - ");
        if (!dash || dash > eol)
            continue;
        const char *p = dash + 3;
        char fs[64], src[256], sopts[512] = "";
        if (field(&p, fs, sizeof fs) < 0 || strcmp(fs, fstype) != 0 ||
            field(&p, src, sizeof src) < 0)
            continue;
        if (opt && (field(&p, sopts, sizeof sopts) < 0 || !list_has(sopts, opt)))
            continue;
        char skip[64];
        p = line;
        if (field(&p, skip, sizeof skip) < 0 || field(&p, skip, sizeof skip) < 0 ||
            field(&p, skip, sizeof skip) < 0 || field(&p, root, rlen) < 0 ||
            field(&p, mnt, mlen) < 0)
            continue;
        return 0;
    }
    return -1;
}

/* <mount><our path below the mount's root>/cbx-<pid>, created; its fd, or -1. */
static int make_base(const char *mountinfo, const char *cgroups, const char *fstype,
                     const char *opt, const char *ctrl, char *base, size_t len)
{
    char mnt[1024], root[1024], own[1024];
    if (!mountinfo || !cgroups ||
        mount_of(mountinfo, fstype, opt, mnt, sizeof mnt, root, sizeof root) < 0 ||
        own_cgroup(cgroups, ctrl, own, sizeof own) < 0)
        return -1;
    const char *rel = own;
    size_t rl = strlen(root);
    if (strcmp(root, "/") != 0) {
        if (strncmp(own, root, rl) != 0 || (own[rl] && own[rl] != '/'))
            return -1; /* our cgroup is not visible in this mount */
        rel = own + rl;
    }
    if (strcmp(rel, "/") == 0)
        rel = "";
    if (snprintf(base, len, "%s%s/cbx-%d", mnt, rel, (int)getpid()) >= (int)len)
        return -1;
    if (mkdir(base, 0755) < 0 && errno != EEXIST)
        return -1;
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        rmdir(base);
    return fd;
}

/* Remove the empty attempt directories under dirfd, then the directory base itself. */
static void remove_tree(int dirfd, const char *base)
{
    char buf[4096];
    for (int tries = 0; tries < 50; tries++) {
        lseek(dirfd, 0, SEEK_SET);
        int busy = 0;
        long n;
        while ((n = syscall(SYS_getdents64, dirfd, buf, sizeof buf)) > 0) {
            for (long off = 0; off < n;) {
                struct {
                    uint64_t ino;
                    int64_t off;
                    unsigned short reclen;
                    unsigned char type;
                    char name[];
                } *d = (void *)(buf + off);
                if (d->type == DT_DIR && d->name[0] != '.' &&
                    unlinkat(dirfd, d->name, AT_REMOVEDIR) < 0 && errno == EBUSY)
                    busy = 1;
                off += d->reclen;
            }
        }
        if (!busy && rmdir(base) == 0)
            return;
        struct timespec ts = {0, 20L * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* The guard: waits for EOF on fd (this process is gone), kills the trees, removes the bases.
 * Started from a process that may have threads: system calls only. As a clone it shares this
 * process's memory, errno included (the starting thread's): until the EOF it makes only calls that
 * cannot fail and the wait, through syscall(), which glibc's read would make a cancellation
 * point that marks the starting thread's cancellation state. The EOF comes when the last thread of
 * this process has exited (its memory let go before its descriptors are closed): from then on the
 * guard is alone in that memory, and reads g as this process left it (set before the guard
 * started, never changed after). */
__attribute__((noreturn)) static void guard_main(int fd)
{
    setsid(); /* out of the terminal's process group: a ^C to cbx is not for the guard */
    /* Every signal but SIGKILL and SIGSTOP stays blocked, as start_guard started it: none is
     * delivered (where one sigaction per signal, 62 system calls, ignored them one by one), and
     * the wait is not interrupted. */
    char c;
    while (syscall(SYS_read, fd, &c, 1) != 0 && (errno == EINTR || errno == EAGAIN))
        ;
    if (g.tree_base_fd >= 0)
        kill_dir(g.tree_base_fd);
    if (g.mem_base_fd >= 0 && g.mem_v1)
        kill_dir(g.mem_base_fd);
    if (g.tree_base_fd >= 0)
        remove_tree(g.tree_base_fd, g.tree_base);
    if (g.mem_base_fd >= 0 && g.mem_v1)
        remove_tree(g.mem_base_fd, g.mem_base);
    _exit(0);
}

/* Close every descriptor but the three of keep (-1 for none): close_range over the gaps between
 * them, a few system calls where closing one by one up to 1024 took a thousand. Where the kernel
 * has no close_range (before 5.9), one by one below 1024. */
static void close_all_but(int keep[3])
{
    for (int i = 0; i < 3; i++) /* sort the three */
        for (int k = i + 1; k < 3; k++)
            if (keep[k] < keep[i]) {
                int t = keep[i];
                keep[i] = keep[k];
                keep[k] = t;
            }
    unsigned from = 0;
    for (int i = 0; i <= 3; i++) {
        if (i < 3 && (keep[i] < 0 || (unsigned)keep[i] < from))
            continue;
        unsigned to = i < 3 ? (unsigned)keep[i] : ~0u; /* the gap [from, to) */
        if (to > from && syscall(SYS_close_range, from, to == ~0u ? ~0u : to - 1, 0u) != 0)
            for (unsigned fd = from; fd < to && fd < 1024; fd++)
                close((int)fd);
        if (i < 3)
            from = to + 1;
    }
}

/* The guard's first steps: keep only what it needs (the pipe's read end and the bases), then
 * wait. */
__attribute__((noreturn)) static void guard_start(int fd)
{
    int keep[3] = {fd, g.tree_base_fd, g.mem_base_fd};
    close_all_but(keep);
    guard_main(fd);
}

#ifndef CBX__PLAIN_FORK
/* The guard's stack, in this process's memory, which the guard shares: its deepest call holds two
 * 4 KiB buffers. */
static _Alignas(16) char guard_stack[32768];

static int guard_entry(void *arg)
{
    guard_start((int)(intptr_t)arg);
}

/* The guard as a clone sharing our memory, or -1 when it cannot be: under valgrind (which stops
 * the program at a clone that is neither a thread nor a fork; it preloads its vgpreload_*
 * libraries into every program it runs), or on a kernel without close_range (the guard's
 * close_all_but would set errno, which is ours, while we run). */
static pid_t clone_guard(int fd)
{
    const char *preload = getenv("LD_PRELOAD");
    if ((preload && strstr(preload, "vgpreload")) || syscall(SYS_close_range, ~0u, ~0u, 0u) != 0)
        return -1;
    return clone(guard_entry, guard_stack + sizeof guard_stack, CLONE_VM | SIGCHLD,
                 (void *)(intptr_t)fd);
}
#endif

static void start_guard(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = -1;
#ifndef CBX__PLAIN_FORK
    pid = clone_guard(p[0]);
#endif
    if (pid < 0 && (pid = fork()) == 0)
        guard_start(p[0]);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(p[0]);
    if (pid < 0) {
        close(p[1]);
        return;
    }
    g.guard = pid;
    g.guard_fd = p[1];
}

static int has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
            return 1;
    return 0;
}

static void probe_with(const char *mountinfo, const char *cgroups);

static void probe(void)
{
    char *mountinfo = read_proc("/proc/self/mountinfo");
    char *cgroups = read_proc("/proc/self/cgroup");
    probe_with(mountinfo, cgroups);
    free(mountinfo);
    free(cgroups);
}

static void probe_with(const char *mountinfo, const char *cgroups)
{
    g.tree_base_fd =
        make_base(mountinfo, cgroups, "cgroup2", NULL, "", g.tree_base, sizeof g.tree_base);
    if (g.tree_base_fd < 0)
        return;
    /* The attempts' cgroups must take processes: their files are made as the base's are, ours
     * (a child cgroup made and removed here to try cost about 80 us of system time and 200 us of
     * wall time per process, the removal waiting for the kernel). */
    int fd = openat(g.tree_base_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0;
    if (fd >= 0)
        close(fd);
    g.has_kill = faccessat(g.tree_base_fd, "cgroup.kill", W_OK, 0) == 0;
    if (!ok)
        goto no_tree;
    g.tree_ok = 1;

    char ctrls[512];
    if (read_at(g.tree_base_fd, "cgroup.controllers", ctrls, sizeof ctrls) > 0 &&
        has_word(ctrls, "memory") &&
        write_at(g.tree_base_fd, "cgroup.subtree_control", "+memory") == 0) {
        g.mem_ok = 1;
        g.mem_base_fd = g.tree_base_fd;
        memcpy(g.mem_base, g.tree_base, sizeof g.mem_base);
    } else {
        g.mem_base_fd = make_base(mountinfo, cgroups, "cgroup", "memory", "memory", g.mem_base,
                                  sizeof g.mem_base);
        g.mem_ok = g.mem_v1 = g.mem_base_fd >= 0;
    }
    start_guard();
    return;

no_tree:
    close(g.tree_base_fd);
    g.tree_base_fd = -1;
    rmdir(g.tree_base);
}

int cbx__cgroup_pool_fds(void)
{
    int n = 0;
    pthread_mutex_lock(&g.lock);
    for (int i = 0; i < g.npool; i++) {
        const cbx__cgroup *c = &g.pool[i];
        n += (c->tree_dir >= 0) + (c->mem_dir >= 0 && c->mem_dir != c->tree_dir) +
             (c->procs_fd[0] >= 0) + (c->procs_fd[1] >= 0) + (c->kill_fd >= 0);
    }
    pthread_mutex_unlock(&g.lock);
    return n;
}

int cbx__cgroup_guard_pid(void)
{
    return (int)g.guard;
}

/* ---- an attempt's cgroup ------------------------------------------------------------------- */

static void retry_pending(void)
{
    int kept = 0;
    for (int i = 0; i < g.npending; i++) {
        if (rmdir(g.pending[i]) < 0 && errno == EBUSY)
            g.pending[kept++] = g.pending[i];
        else
            free(g.pending[i]);
    }
    g.npending = kept;
}

static void remove_later(const char *base, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", base, name);
    if (rmdir(path) == 0 || errno != EBUSY)
        return;
    pthread_mutex_lock(&g.lock);
    char *p = g.npending < PENDING_MAX ? strdup(path) : NULL;
    if (p)
        g.pending[g.npending++] = p;
    pthread_mutex_unlock(&g.lock);
}

static int make_dir(int base_fd, const char *name, int *dirfd, int *procs)
{
    if (mkdirat(base_fd, name, 0755) < 0)
        return -errno;
    *dirfd = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0) {
        int e = errno;
        unlinkat(base_fd, name, AT_REMOVEDIR);
        return -e;
    }
    *procs = openat(*dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (*procs < 0) {
        int e = errno;
        close(*dirfd);
        *dirfd = -1;
        unlinkat(base_fd, name, AT_REMOVEDIR);
        return -e;
    }
    return 0;
}

/* bytes 0: no limit. memory + swap is never below memory (v1 refuses it): lifted first. */
static int set_memory_limit(cbx__cgroup *cg, uint64_t bytes)
{
    char v[32];
    if (bytes)
        snprintf(v, sizeof v, "%llu", (unsigned long long)bytes);
    else
        snprintf(v, sizeof v, "%s", g.mem_v1 ? "-1" : "max");
    int rc;
    if (!g.mem_v1) {
        rc = write_at(cg->mem_dir, "memory.max", v);
        if (rc == 0) /* absent without swap accounting */
            write_at(cg->mem_dir, "memory.swap.max", bytes ? "0" : "max");
    } else {
        write_at(cg->mem_dir, "memory.memsw.limit_in_bytes", "-1"); /* absent without swap */
        rc = write_at(cg->mem_dir, "memory.limit_in_bytes", v);
        if (rc == 0 && bytes)
            write_at(cg->mem_dir, "memory.memsw.limit_in_bytes", v);
    }
    cg->limited = rc == 0 && bytes;
    return rc;
}

/* "key value" lines: the value of key, or 0. */
static uint64_t keyed(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, n) == 0 && p[n] == ' ')
            return strtoull(p + n + 1, NULL, 10);
    return 0;
}

static uint64_t oom_kills(cbx__cgroup *cg)
{
    char buf[1024] = "";
    if (cg->mem_dir < 0 || read_at(cg->mem_dir, g.mem_v1 ? "memory.oom_control" : "memory.events",
                                   buf, sizeof buf) <= 0)
        return 0;
    return keyed(buf, "oom_kill");
}

/* A cgroup from the pool, made ready for a new attempt: 1, or 0 when the pool is empty. */
static int from_pool(cbx__cgroup *cg, uint64_t memory_max_bytes)
{
    pthread_mutex_lock(&g.lock);
    int got = g.npool > 0;
    if (got)
        *cg = g.pool[--g.npool];
    pthread_mutex_unlock(&g.lock);
    if (!got)
        return 0;
    if (cg->mem_dir >= 0) {
        write_at(cg->mem_dir, "memory.max_usage_in_bytes", "0"); /* v1: the peak starts again */
        if (memory_max_bytes || cg->limited)
            set_memory_limit(cg, memory_max_bytes);
        cg->oom_base = oom_kills(cg);
    }
    return 1;
}

/* Keep an empty cgroup for a later attempt: 1 when kept. Only where its peak can be reset (v1's
 * memory, or no memory cgroup). */
static int to_pool(cbx__cgroup *cg)
{
    if (cg->tree_dir < 0 || (cg->mem_dir >= 0 && !g.mem_v1) || !cbx__cgroup_empty(cg))
        return 0;
    pthread_mutex_lock(&g.lock);
    int kept = g.npool < POOL_MAX;
    if (kept)
        g.pool[g.npool++] = *cg;
    pthread_mutex_unlock(&g.lock);
    return kept;
}

void cbx__cgroup_warm(void)
{
    if (!cbx__cmd_no_cgroup)
        pthread_once(&g.once, probe);
}

int cbx__cgroup_open(cbx__cgroup *cg, uint64_t memory_max_bytes, cbx_err *err)
{
    cg->tree_dir = cg->mem_dir = cg->procs_fd[0] = cg->procs_fd[1] = cg->kill_fd = -1;
    cg->limited = 0;
    cg->oom_base = 0;
    cg->name[0] = '\0';
    if (cbx__cmd_no_cgroup)
        goto unavailable;
    pthread_once(&g.once, probe);
    if (!g.tree_ok)
        goto unavailable;
    if (from_pool(cg, memory_max_bytes)) {
        if (memory_max_bytes && !cg->limited) {
            cbx__cgroup_close(cg);
            return cbx_err_set(err, -ENOTSUP, "memory_max_bytes: the limit cannot be set");
        }
        return 0;
    }
    pthread_mutex_lock(&g.lock);
    snprintf(cg->name, sizeof cg->name, "%llu", (unsigned long long)++g.seq);
    if (g.npending)
        retry_pending();
    pthread_mutex_unlock(&g.lock);

    int rc = make_dir(g.tree_base_fd, cg->name, &cg->tree_dir, &cg->procs_fd[0]);
    if (rc < 0) {
        if (memory_max_bytes)
            return cbx_err_set(err, rc, "cgroup %s/%s: %s", g.tree_base, cg->name, strerror(-rc));
        cg->name[0] = '\0';
        return 1; /* run without: as when there are no cgroups */
    }
    if (g.has_kill)
        cg->kill_fd = openat(cg->tree_dir, "cgroup.kill", O_WRONLY | O_CLOEXEC);
    if (g.mem_ok && !g.mem_v1) {
        cg->mem_dir = cg->tree_dir;
    } else if (g.mem_ok) { /* also without a limit: it gives the peak memory */
        rc = make_dir(g.mem_base_fd, cg->name, &cg->mem_dir, &cg->procs_fd[1]);
        if (rc < 0)
            cg->mem_dir = cg->procs_fd[1] = -1;
    }
    if (memory_max_bytes) {
        rc = cg->mem_dir < 0 ? -ENOTSUP : set_memory_limit(cg, memory_max_bytes);
        if (rc < 0) {
            cbx__cgroup_close(cg);
            return cbx_err_set(err, rc, "memory_max_bytes: %s",
                               rc == -ENOTSUP ? "no memory cgroup can be made here (cgroup v1 "
                                                "memory, or v2 with the memory controller "
                                                "delegated; usually: run as root)"
                                              : strerror(-rc));
        }
    }
    return 0;

unavailable:
    if (memory_max_bytes)
        return cbx_err_set(err, -ENOTSUP,
                           "memory_max_bytes: no cgroup can be made here (needs a writable "
                           "cgroup v2 hierarchy; usually: run as root)");
    return 1;
}

void cbx__cgroup_kill(cbx__cgroup *cg)
{
    if (cg->kill_fd >= 0 && write(cg->kill_fd, "1", 1) == 1)
        return;
    if (cg->tree_dir >= 0)
        kill_dir(cg->tree_dir);
}

int cbx__cgroup_empty(cbx__cgroup *cg)
{
    char buf[64];
    if (cg->tree_dir < 0)
        return 1;
    ssize_t n = read_at(cg->tree_dir, "cgroup.procs", buf, sizeof buf);
    return n <= 0;
}

void cbx__cgroup_memory(cbx__cgroup *cg, int64_t *peak_bytes, int *oom)
{
    *peak_bytes = -1;
    *oom = 0;
    if (cg->mem_dir < 0)
        return;
    char buf[1024];
    if (read_at(cg->mem_dir, g.mem_v1 ? "memory.max_usage_in_bytes" : "memory.peak", buf,
                sizeof buf) > 0)
        *peak_bytes = (int64_t)strtoll(buf, NULL, 10);
    *oom = oom_kills(cg) > cg->oom_base;
}

const char *cbx__cgroup_path(void)
{
    return g.tree_ok ? g.tree_base : NULL;
}

void cbx__cgroup_close(cbx__cgroup *cg)
{
    if (to_pool(cg)) {
        cg->tree_dir = cg->mem_dir = cg->procs_fd[0] = cg->procs_fd[1] = cg->kill_fd = -1;
        return;
    }
    if (cg->kill_fd >= 0) {
        close(cg->kill_fd);
        cg->kill_fd = -1;
    }
    for (int i = 0; i < 2; i++)
        if (cg->procs_fd[i] >= 0) {
            close(cg->procs_fd[i]);
            cg->procs_fd[i] = -1;
        }
    if (cg->mem_dir >= 0 && cg->mem_dir != cg->tree_dir) {
        close(cg->mem_dir);
        remove_later(g.mem_base, cg->name);
    }
    cg->mem_dir = -1;
    if (cg->tree_dir >= 0) {
        close(cg->tree_dir);
        remove_later(g.tree_base, cg->name);
    }
    cg->tree_dir = -1;
}
