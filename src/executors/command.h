/* The command executor: a program started without a shell (unless asked), in a cgroup of its own
 * where the machine allows it and in its own session and process group, with captured output,
 * limits, a kill of the whole tree on cancel and of what it leaves when it exits.
 *
 * command.c         the type: schema, validation, params -> spawn spec, start and cancel
 * command_run.c     one attempt on the loop: pipes, exit watch, TERM/grace/KILL, the result
 * command_spawn.c   clone (vfork-like) + exec with setsid, dup2, chdir, rlimits; exec errors
 * command_env.c     the child's environment (inherit or clear, set, unset) and PATH search list
 * command_capture.c bounded capture of a stream, its JSON string
 * command_cgroup.c  a cgroup per attempt (the whole tree, its peak memory, a memory limit) and
 *                   the guard that kills the trees when this process dies
 * command_orphans.c without cgroups: orphans collected as a subreaper and killed
 * command_spawner.c the threads that start children, so that the loop never waits on a clone
 */
#ifndef CBX_EXECUTORS_COMMAND_H
#define CBX_EXECUTORS_COMMAND_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "cbx/err.h"
#include "cbx/executor.h"

/* Where a child that shares our memory (clone with CLONE_VM: command_spawn.c, the cgroup guard)
 * is forked instead: the sanitizers intercept fork and must see one, and clone() is glibc's. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CBX__PLAIN_FORK 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CBX__PLAIN_FORK 1
#endif
#endif
#if !defined(CBX__PLAIN_FORK) && !defined(__GLIBC__)
#define CBX__PLAIN_FORK 1
#endif

/* The "command" type (static, never freed). */
const cbx_executor_type *cbx__command_type(void);

/* ---- command_capture.c ---------------------------------------------------------------------- */

/* At most max bytes of a stream are kept; every byte is counted. */
typedef struct cbx__capture {
    char *data; /* owned, NULL until the first byte */
    size_t len, alloc, max;
    uint64_t total; /* bytes seen, kept or not */
    int failed;     /* memory ran out: kept bytes stop at len (reported as truncated) */
} cbx__capture;

/* Where the next read goes: a per-thread scratch buffer (the bytes are then added with
 * cbx__capture_add). Never fails: without memory for the scratch buffer, a small static one. */
void cbx__capture_buf(size_t suggested, uv_buf_t *buf);
/* Count n bytes and keep what fits below max. */
void cbx__capture_add(cbx__capture *c, const char *p, size_t n);
/* 1 when bytes were dropped (over max, or out of memory). */
int cbx__capture_truncated(const cbx__capture *c);
/* The kept bytes as a JSON string (new reference; NULL only when memory runs out). Invalid UTF-8
 * becomes U+FFFD and *lossy is set; a multi-byte character cut by truncation is dropped. */
json_t *cbx__capture_json(const cbx__capture *c, int *lossy);
/* Release the bytes and zero *c (max is kept). */
void cbx__capture_free(cbx__capture *c);

/* ---- command_env.c ------------------------------------------------------------------------- */

/* The child's environment: the process's own (env_mode "inherit") or none ("clear"), minus the
 * names in unset (array of strings, may be NULL), plus env (object of strings, may be NULL; a set
 * name replaces an inherited one). Returns 0 and *envp (NULL-terminated; free(*envp) when
 * *owned, which is 0 when the process's environ is passed as is) and *path, the child's PATH
 * value or NULL (borrowed from *envp). Errors: -ENOMEM. */
int cbx__cmd_env_build(int clear, const json_t *env, const json_t *unset, char ***envp, int *owned,
                       const char **path);

/* Where to look for a program name without a '/': "dir/name" for each entry of path (NULL:
 * "/usr/local/bin:/usr/bin:/bin"; an empty entry is the working directory). Returns a
 * NULL-terminated array in one allocation (free it), or NULL when memory runs out. */
char **cbx__cmd_path_candidates(const char *name, const char *path);

/* ---- command_cgroup.c ---------------------------------------------------------------------- */

typedef struct cbx__cgroup {
    int tree_dir;      /* the v2 cgroup's directory (O_DIRECTORY), or -1 */
    int mem_dir;       /* the memory cgroup's: tree_dir on v2 with memory, a v1 one, or -1 */
    int procs_fd[2];   /* their cgroup.procs (write "0" to join), or -1 */
    int kill_fd;       /* the v2 cgroup.kill, or -1 (kernels before 5.14) */
    int limited;       /* a memory limit is set */
    uint64_t oom_base; /* OOM kills counted before this attempt (a cgroup used again) */
    char name[24];     /* the attempt's directory name under each base */
} cbx__cgroup;

/* Make the attempt's cgroups (and, the first time, probe the machine and start the guard). 0
 * when the tree is tracked; 1 when cgroups cannot be used here and no memory limit was asked
 * (*cg is then empty and the attempt runs without); a negative errno and *err when
 * memory_max_bytes (0: none) cannot be honoured. Release with cbx__cgroup_close. */
int cbx__cgroup_open(cbx__cgroup *cg, uint64_t memory_max_bytes, cbx_err *err);
/* Probe the machine and start the guard now, as the first cbx__cgroup_open would (once per
 * process): called early by a program that will run a command (cbx exec -- CMD), while it is
 * small and has one thread, the guard's fork copies fewer page tables and the program's later
 * writes to its memory take no copy-on-write faults. */
void cbx__cgroup_warm(void);
/* SIGKILL to every process in the attempt's cgroup (cgroup.kill, or each listed pid). */
void cbx__cgroup_kill(cbx__cgroup *cg);
/* 1 when no process is left in the cgroup (or there is none). */
int cbx__cgroup_empty(cbx__cgroup *cg);
/* The tree's peak memory in bytes (-1 without a memory cgroup) and whether the kernel killed a
 * process of it for memory (the limit was hit). */
void cbx__cgroup_memory(cbx__cgroup *cg, int64_t *peak_bytes, int *oom);
/* Close the descriptors and remove the directories (later, while processes are still leaving). */
void cbx__cgroup_close(cbx__cgroup *cg);
/* The process's base in the v2 hierarchy (".../cbx-<pid>"), or NULL when cgroups are not used;
 * the guard's pid, or -1. */
const char *cbx__cgroup_path(void);
int cbx__cgroup_guard_pid(void);
/* Descriptors held by the pool of empty cgroups kept for later attempts. */
int cbx__cgroup_pool_fds(void);

/* Tests only: when set, no cgroup is made (the fallback of a machine without them). */
extern int cbx__cmd_no_cgroup;

/* ---- command_orphans.c --------------------------------------------------------------------- */

/* Make this process a child subreaper (once): 0, or -ENOTSUP when the kernel refuses. */
int cbx__orphans_enable(void);
/* A new mark for an attempt's environment: "CBX_TREE=<pid>.<n>" (len: 48 is plenty). */
void cbx__orphans_mark(char *buf, size_t len);
/* SIGKILL and reap every child of ours (orphans reparented to us) whose environment holds mark,
 * generation after generation; leader (not yet reaped) is left alone. Returns how many. */
int cbx__orphans_kill(const char *mark, pid_t leader);

/* ---- command_spawn.c ----------------------------------------------------------------------- */

typedef struct cbx__cmd_spec {
    char *const *argv;       /* argv[0] is searched in candidates when given */
    char *const *candidates; /* NULL: exec argv[0] as a path */
    char *const *envp;
    const char *cwd; /* NULL: the parent's */
    int stdin_pipe;  /* 1: a pipe the parent writes; 0: stdin_fd, else /dev/null */
    int stdin_fd;    /* -1, or this process's descriptor for the child's stdin: a
                        regular file is opened anew (read from its start), anything
                        else is passed as is */
    int pty;        /* 1: stdin, stdout and stderr on a new pseudo-terminal, the child's controlling
                       terminal; stdin_pipe and stdin_fd are then ignored */
    int winsize_fd; /* pty: a terminal whose window size the pty gets, or -1 */
    uint64_t rlimit_cpu_s;    /* 0: unchanged */
    uint64_t rlimit_as_bytes; /* 0: unchanged */
    uint64_t rlimit_nofile;   /* 0: unchanged */
    int cgroup_procs[2];      /* cgroup.procs descriptors the child joins by writing "0" */
    int n_cgroup_procs;       /* how many of them are given (0: none) */
} cbx__cmd_spec;

typedef struct cbx__cmd_child {
    pid_t pid;
    int pidfd;          /* -1 when pidfd_open is not available */
    int stdin_fd;       /* the parent's write end (non-blocking), or -1; with a pty, a copy of the
                           master (so that input can be written to it) */
    int stdout_fd;      /* the parent's read ends (non-blocking); with a pty, its master */
    int stderr_fd;      /* -1 with a pty (the child's stderr is the pty too) */
    int report_fd;      /* the exec report (non-blocking): see cbx__cmd_spawn_report; -1 when the
                           outcome of exec was known at once (exec_stage) */
    int exec_stage;     /* report_fd < 0: 0 when exec succeeded, else where the child failed (see
                           cbx__cmd_spawn_failure); the child then exits 127 */
    int exec_errno;     /* with exec_stage: why */
    long parent_rss_kb; /* the parent's peak RSS when the child was forked: Linux counts what the
                           child inherited of it in the child's ru_maxrss */
} cbx__cmd_child;

/* Start the child: its cgroups joined, a SIGKILL asked for when the calling thread ends (see
 * command_spawner.c: that thread lives as long as the process), a new session (its pid is its
 * process group), stdin/stdout/stderr on pipes,
 * every other descriptor closed at exec, signals at their defaults and unblocked, cwd, rlimits,
 * then exec. Returns once the child has called exec (or, when it is a fork, at once): 0 and
 * *child (every descriptor the parent keeps is close-on-exec), or a negative errno with a
 * one-line message in *err ("stdout pipe: Too many open files", "clone: ..."); then no child is
 * left. A failure of the child itself (exec, cwd, an rlimit) is not an error here: it comes in
 * child->exec_stage or on child->report_fd, and the child exits 127. */
int cbx__cmd_spawn(const cbx__cmd_spec *spec, cbx__cmd_child *child, cbx_err *err);

/* Read the exec report from child->report_fd once it is readable: 0 when exec succeeded (EOF),
 * 1 when nothing has come yet, or a negative errno with *err set: "argv[0] 'foo': No such file or
 * directory", "cwd '/x': ...", "rlimit_nofile: ...". After a failure the child exits 127. */
int cbx__cmd_spawn_report(int fd, const char *argv0, const char *cwd, cbx_err *err);

/* The message for a child that failed at exec_stage with exec_errno (as the report gives):
 * returns -exec_errno with *err set. */
int cbx__cmd_spawn_failure(const char *argv0, const char *cwd, int stage, int e, cbx_err *err);

/* Tests only: when set, pidfd_open is not used and exits are noticed by polling. */
extern int cbx__cmd_no_pidfd;

/* ---- command_spawner.c --------------------------------------------------------------------- */

/* A child to start on the spawner thread. The submitter owns it; spec (and what it points to)
 * must stay valid until done is signalled; then rc, child and err hold cbx__cmd_spawn's answer. */
typedef struct cbx__spawn_job {
    struct cbx__spawn_job *next;
    const cbx__cmd_spec *spec;
    uv_async_t *done; /* uv_async_send'd once the spawn is over; the job is then the loop's */
    /* Set (release) before done is sent, read (acquire) by cbx__spawn_job_acquire: uv_async_send
     * orders the two threads already, but inside libuv, where ThreadSanitizer cannot see it. */
    atomic_int over;
    int rc;
    cbx__cmd_child child;
    cbx_err err;
} cbx__spawn_job;

/* Queue job for the spawner thread (started on first use). 0, or a negative errno when there is
 * no such thread (then spawn on the calling thread). */
int cbx__spawner_submit(cbx__spawn_job *job);

/* On the loop, once job->done fired, before reading the answer. */
void cbx__spawn_job_acquire(cbx__spawn_job *job);

/* Tests and benchmarks only: when set, children are started on the loop's thread. */
extern int cbx__cmd_inline_spawn;

/* ---- command_run.c ------------------------------------------------------------------------- */

/* What an attempt was asked to do, besides the spawn spec. */
typedef struct cbx__cmd_opts {
    const char *argv0, *cwd; /* borrowed from the params, for the exec report's message */
    const char *stdin_data;  /* borrowed from the params; NULL = none */
    size_t stdin_len;
    size_t stdout_max, stderr_max;
    const json_t *success_codes; /* borrowed array of integers */
    int parse_json;
    uint64_t kill_grace_ms;
    uint64_t rlimit_as_bytes;  /* for the oom hint */
    uint64_t rlimit_cpu_s;     /* for the cpu limit flag */
    uint64_t memory_max_bytes; /* the cgroup's memory limit; 0: none */
    int leave_leftovers;       /* 1: what the command left running when it exited is not killed */
    int tee_fd[2];             /* stdout, stderr: also written here as read (tee_*_fd); -1: no */
    int pty_input_fd;          /* pty: copied into it as it comes (stdin_fd); -1: none */
    int winsize_fd;            /* pty: its window size follows this terminal's; -1: none */
} cbx__cmd_opts;

/* The per-attempt state (the type's task_size); see command_run.c. */
typedef struct cbx__cmd_stream {
    uv_pipe_t pipe;
    cbx__capture cap;
    int live;      /* open, not yet closing */
    int tee_fd;    /* each chunk read is also written here; -1: none (or given up) */
    int tee_errno; /* why the tee was given up (0: it was not) */
} cbx__cmd_stream;

typedef struct cbx__cmd_run {
    cbx_task *task;
    uv_loop_t *loop;
    cbx__cmd_opts o;
    pid_t pid;
    int pidfd;
    long parent_rss_kb;
    cbx__cgroup cg; /* the attempt's cgroups (tree_dir -1: not tracked by a cgroup) */

    /* the spawn, on the spawner thread; the spec's memory is the attempt's until it is over */
    cbx__cmd_spec spec;
    void *spec_mem[4];  /* freed once the child is started (see cbx__cmd_run_start) */
    char tree_mark[48]; /* without a cgroup: the attempt's CBX_TREE=... environment entry */
    cbx__spawn_job job;
    uv_async_t spawned;
    int spawning;
    int handles; /* initialised and not yet through their close callback */

    uv_timer_t timer; /* grace, drain */
    uv_poll_t exit_poll;
    uv_timer_t exit_timer;
    uint64_t exit_timer_ms;
    int exit_watch_live;

    uv_poll_t report_poll; /* the exec report pipe */
    int report_fd;
    int report_live;
    int exec_failed; /* the child never ran the command: error holds why */

    cbx__cmd_stream out, err;

    uv_poll_t pump_poll;  /* pty: pty_input_fd readable (a copy of it: pump_fd) */
    int pump_fd, pump_to; /* the copy read, and a copy of the master written; -1 */
    int pump_live;
    uv_signal_t winch; /* pty with winsize_fd: SIGWINCH copies the size again */
    int winch_live;
    /* pty: a copy of the master held until the child has exited. Closing the last copy hangs the
     * terminal up, and a child that has closed its descriptors but not yet exited (a reader of
     * EIO on the master closes it) would be killed by that SIGHUP. -1 when none. */
    int pty_hold;

    uv_poll_t in_poll;
    int in_poll_live;
    int in_open; /* still feeding the command's stdin */
    int in_fd;
    size_t in_off;

    int exited, finishing, cancelled, term_sent, kill_sent;
    int emit;             /* the submitter takes the output as chunks (cbx_task_emit) */
    int reads_held;       /* the chunk queue is full: the pipes are not read until it drains */
    int leftovers_gone;   /* the leader exited by itself and what it left was sent SIGKILL */
    int leftovers_killed; /* ... and its cgroup still held processes then */
    const char *killed_by;
    uint64_t t0_ns, t1_ns;

    /* the report, handed to cbx_task_done by the last close callback */
    cbx_outcome outcome;
    json_t *outputs, *metadata;
    char error[512];
} cbx__cmd_run;

/* Start the child of spec (on the spawner thread) and wire it to the loop. spec is copied; the
 * blocks in mem[0..2] (NULL or malloc'd: what spec's arrays live in) become the attempt's and are
 * freed once the child has started. Always ends in cbx_task_done (a failure to start is reported
 * there with its message, never synchronously). Returns 0. */
int cbx__cmd_run_start(cbx_task *t, const cbx__cmd_spec *spec, void *mem[3],
                       const cbx__cmd_opts *o);

/* SIGTERM to the process group, SIGKILL after the grace; see command_run.c. */
void cbx__cmd_run_cancel(cbx_task *t);

#endif
