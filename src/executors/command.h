/* The command executor: a program started without a shell (unless asked), in its own session and
 * process group, with captured output, rlimits, and a kill of the whole tree on cancel.
 *
 * command.c         the type: schema, validation, params -> spawn spec, start and cancel
 * command_run.c     one attempt on the loop: pipes, exit watch, TERM/grace/KILL, the result
 * command_spawn.c   clone (vfork-like) + exec with setsid, dup2, chdir, rlimits; exec errors
 * command_env.c     the child's environment (inherit or clear, set, unset) and PATH search list
 * command_capture.c bounded capture of a stream, its JSON string
 */
#ifndef CBX_EXECUTORS_COMMAND_H
#define CBX_EXECUTORS_COMMAND_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "cbx/err.h"
#include "cbx/executor.h"

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

/* ---- command_spawn.c ----------------------------------------------------------------------- */

typedef struct cbx__cmd_spec {
    char *const *argv;       /* argv[0] is searched in candidates when given */
    char *const *candidates; /* NULL: exec argv[0] as a path */
    char *const *envp;
    const char *cwd;          /* NULL: the parent's */
    int stdin_pipe;           /* 1: a pipe the parent writes; 0: /dev/null */
    uint64_t rlimit_cpu_s;    /* 0: unchanged */
    uint64_t rlimit_as_bytes; /* 0: unchanged */
    uint64_t rlimit_nofile;   /* 0: unchanged */
} cbx__cmd_spec;

typedef struct cbx__cmd_child {
    pid_t pid;
    int pidfd;     /* -1 when pidfd_open is not available */
    int stdin_fd;  /* the parent's write end (non-blocking), or -1 */
    int stdout_fd; /* the parent's read ends (non-blocking) */
    int stderr_fd;
    int report_fd;      /* the exec report (non-blocking): see cbx__cmd_spawn_report; -1 when the
                           outcome of exec was known at once (exec_stage) */
    int exec_stage;     /* report_fd < 0: 0 when exec succeeded, else where the child failed (see
                           cbx__cmd_spawn_failure); the child then exits 127 */
    int exec_errno;     /* with exec_stage: why */
    long parent_rss_kb; /* the parent's peak RSS when the child was forked: Linux counts what the
                           child inherited of it in the child's ru_maxrss */
} cbx__cmd_child;

/* Start the child: a new session (its pid is its process group), stdin/stdout/stderr on pipes,
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
    uint64_t rlimit_as_bytes; /* for the oom hint */
    uint64_t rlimit_cpu_s;    /* for the cpu limit flag */
} cbx__cmd_opts;

/* The per-attempt state (the type's task_size); see command_run.c. */
typedef struct cbx__cmd_stream {
    uv_pipe_t pipe;
    cbx__capture cap;
    int live; /* open, not yet closing */
} cbx__cmd_stream;

typedef struct cbx__cmd_run {
    cbx_task *task;
    uv_loop_t *loop;
    cbx__cmd_opts o;
    pid_t pid;
    int pidfd;
    long parent_rss_kb;
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

    uv_poll_t in_poll;
    int in_poll_live;
    int in_open; /* still feeding the command's stdin */
    int in_fd;
    size_t in_off;

    int exited, finishing, cancelled, term_sent, kill_sent;
    const char *killed_by;
    uint64_t t0_ns, t1_ns;

    /* the report, handed to cbx_task_done by the last close callback */
    cbx_outcome outcome;
    json_t *outputs, *metadata;
    char error[512];
} cbx__cmd_run;

/* Start the child of spec and wire it to the loop. Always ends in cbx_task_done (a failure to
 * start is reported there with its message, never synchronously). Returns 0. */
int cbx__cmd_run_start(cbx_task *t, const cbx__cmd_spec *spec, const cbx__cmd_opts *o);

/* SIGTERM to the process group, SIGKILL after the grace; see command_run.c. */
void cbx__cmd_run_cancel(cbx_task *t);

#endif
