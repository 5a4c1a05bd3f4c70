/* The "command" executor type: its parameters, their checks, and what start and cancel do with
 * them. The attempt itself lives in command_run.c. */
#include "executors/command.h"

#include "core/problems.h"
#include "executors/exit_params.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Offered to the runtime: when it defines it, its kill grace is the default. */
uint64_t cbx_task_kill_grace_ns(const cbx_task *t) __attribute__((weak));

#define DEFAULT_KILL_GRACE_MS 2000

static const char *const env_modes[] = {"inherit", "clear", NULL};
static const char *const leftover_modes[] = {"kill", "leave", NULL};

static const cbx_param params[] = {
    {.name = "argv",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .description = "the program and its arguments, run without a shell; argv[0] without a '/' "
                    "is looked up in PATH (required unless shell is true)"},
    {.name = "shell",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "false",
     .description = "run the command string with /bin/sh -c instead of argv"},
    {.name = "command",
     .type = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .description = "the shell command line (only with shell: true)"},
    {.name = "env",
     .type = CBX_PARAM_OBJECT,
     .description = "environment variables to set (name to string value)"},
    {.name = "env_mode",
     .type = CBX_PARAM_STRING,
     .default_json = "\"inherit\"",
     .enum_values = env_modes,
     .description = "start from this process's environment (inherit) or from an empty one "
                    "(clear)"},
    {.name = "unset_env",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_STRING,
     .description = "names of inherited environment variables to remove"},
    {.name = "cwd",
     .type = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .description = "working directory of the command (default: this process's)"},
    {.name = "stdin",
     .type = CBX_PARAM_STRING,
     .description = "text written to the command's standard input (default: /dev/null)"},
    {.name = "stdin_fd",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 1 << 30,
     .description = "a descriptor of this process as the command's standard input (not with "
                    "stdin): a regular file is opened anew for each attempt, which reads it "
                    "from its start; a pipe, terminal or socket is passed as is (what one "
                    "attempt reads is gone for the next)"},
    {.name = "pty",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "false",
     .description = "run the command on a new pseudo-terminal, its controlling terminal: its "
                    "stdout and stderr both come as stdout; stdin (text) or stdin_fd (copied as "
                    "it comes) is typed into it; the window size follows stdin_fd's terminal, "
                    "else tee_stdout_fd's"},
    CBX__PARAM_CAPTURE_MAX("stdout"),
    CBX__PARAM_CAPTURE_MAX("stderr"),
    {.name = "tee_stdout_fd",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 1 << 30,
     .description = "a descriptor of this process that stdout is also written to, chunk by "
                    "chunk as the command writes it (the capture is unchanged; a write error "
                    "stops the tee: metadata.stdout_tee_error)"},
    {.name = "tee_stderr_fd",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 1 << 30,
     .description = "the same for stderr"},
    CBX__PARAM_SUCCESS_EXIT_CODES,
    {.name = "parse_json",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "false",
     .description = "parse stdout as JSON into outputs.json; stdout that is not JSON fails the "
                    "attempt"},
    {.name = "rlimit_cpu_s",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 1e9,
     .description = "CPU seconds (RLIMIT_CPU): SIGXCPU at the limit, SIGKILL a second later"},
    {.name = "rlimit_memory_bytes",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = CBX__MIB,
     .has_max = 1,
     .max = 9.0e18,
     .description = "address space in bytes (RLIMIT_AS): allocations beyond it fail"},
    {.name = "rlimit_nofile",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 3,
     .has_max = 1,
     .max = 1 << 30,
     .description = "open file descriptors (RLIMIT_NOFILE)"},
    {.name = "memory_max_bytes",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = CBX__MIB,
     .has_max = 1,
     .max = 9.0e18,
     .description = "memory of the whole tree in bytes (its cgroup's limit): the kernel kills it "
                    "at the limit and the attempt fails with metadata.oom; needs cgroups (root)"},
    {.name = "leftovers",
     .type = CBX_PARAM_STRING,
     .default_json = "\"kill\"",
     .enum_values = leftover_modes,
     .description = "what the command left running when it exited: killed (kill) or left "
                    "running (leave; with a cgroup, until cbx exits)"},
    {.name = "kill_grace_ms",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 3600000,
     .description = "on timeout or cancel, SIGTERM to the process group, then SIGKILL after this "
                    "many ms (default: the runtime's kill grace, 2000)"},
    {.name = NULL},
};

/* ---- validation ---------------------------------------------------------------------------- */

static int command_validate(const cbx_executor_type *type, const json_t *p, cbx_err *err)
{
    (void)type;
    cbx__problems pr = {.err = err};
    char where[64];
    int shell = json_is_true(json_object_get(p, "shell"));
    const json_t *argv = json_object_get(p, "argv");
    const json_t *command = json_object_get(p, "command");

    if (shell) {
        if (!command)
            cbx__problem(&pr, "command", "required when shell is true (a string for /bin/sh -c)");
        else if (!cbx__c_string(command))
            cbx__problem(&pr, "command", "expected a string without NUL characters");
        if (argv)
            cbx__problem(&pr, "argv", "not allowed with shell: true (use command)");
    } else {
        if (command)
            cbx__problem(&pr, "command", "only allowed with shell: true (or give argv)");
        if (!argv) {
            cbx__problem(&pr, "argv",
                         "required: an array of strings (the program and its arguments)");
        } else {
            size_t i;
            json_t *v;
            json_array_foreach(argv, i, v)
            {
                snprintf(where, sizeof where, "argv[%zu]", i);
                if (!cbx__c_string(v))
                    cbx__problem(&pr, where, "expected a string without NUL characters");
                else if (i == 0 && json_string_length(v) == 0)
                    cbx__problem(&pr, where, "the program name must not be empty");
            }
        }
    }

    const json_t *env = json_object_get(p, "env");
    if (env) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)env, key, v)
        {
            snprintf(where, sizeof where, "env.%.58s", key);
            if (!key[0] || strchr(key, '='))
                cbx__problem(&pr, where, "a variable name must be non-empty and without '='");
            if (!cbx__c_string(v))
                cbx__problem(&pr, where, "expected a string without NUL characters, got %s",
                             json_is_string(v) ? "a string with NUL" : "another type");
        }
    }
    const json_t *unset = json_object_get(p, "unset_env");
    if (unset) {
        size_t i;
        json_t *v;
        json_array_foreach(unset, i, v)
        {
            snprintf(where, sizeof where, "unset_env[%zu]", i);
            const char *s = json_string_value(v);
            if (!cbx__c_string(v) || !s[0] || strchr(s, '='))
                cbx__problem(&pr, where, "expected a variable name (non-empty, without '=')");
        }
    }
    if (json_object_get(p, "stdin") && json_object_get(p, "stdin_fd"))
        cbx__problem(&pr, "stdin_fd", "not allowed with stdin (give one of them)");
    const json_t *cwd = json_object_get(p, "cwd");
    if (cwd && !cbx__c_string(cwd))
        cbx__problem(&pr, "cwd", "expected a path without NUL characters");
    cbx__exit_codes_check(p, &pr);
    return pr.n ? CBX_EINVAL_CONFIG : 0;
}

/* ---- start and cancel ---------------------------------------------------------------------- */

static uint64_t int_param(const json_t *p, const char *name, uint64_t dflt)
{
    const json_t *v = json_object_get(p, name);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v)
                                                            : dflt;
}

static int command_start(cbx_task *t)
{
    const json_t *p = cbx_task_params(t);
    int shell = json_is_true(json_object_get(p, "shell"));
    const json_t *jargv = json_object_get(p, "argv");
    size_t argc = shell ? 3 : json_array_size(jargv);
    if (argc == 0)
        return CBX_EINVAL_CONFIG; /* validation lets no such request through */
    char **argv = malloc((argc + 1) * sizeof *argv);
    if (!argv)
        return -ENOMEM;
    if (shell) {
        argv[0] = (char *)"/bin/sh";
        argv[1] = (char *)"-c";
        argv[2] = (char *)json_string_value(json_object_get(p, "command"));
    } else {
        for (size_t i = 0; i < argc; i++)
            argv[i] = (char *)json_string_value(json_array_get(jargv, i));
    }
    argv[argc] = NULL;

    const char *mode = json_string_value(json_object_get(p, "env_mode"));
    const char *leftovers = json_string_value(json_object_get(p, "leftovers"));
    char **envp = NULL;
    int env_owned = 0;
    const char *path = NULL;
    /* the execution's context, for the child: CBX_RUN_ID, CBX_STEP, CBX_TMPDIR, and
     * TRACEPARENT when cbx takes part in a trace (the env parameter wins) */
    json_t *env = (json_t *)json_object_get(p, "env"), *ctx_env = NULL;
    char tp[56];
    const char *ctx_vals[] = {cbx_task_run_id(t), cbx_task_step(t), cbx_task_tmpdir(t),
                              cbx_task_traceparent(t, tp) ? tp : NULL};
    static const char *const ctx_names[] = {"CBX_RUN_ID", "CBX_STEP", "CBX_TMPDIR", "TRACEPARENT"};
    for (int i = 0; i < 4; i++) {
        if (!ctx_vals[i] || json_object_get(env, ctx_names[i]))
            continue;
        if (!ctx_env && !(ctx_env = json_is_object(env) ? json_copy(env) : json_object())) {
            free(argv);
            return -ENOMEM;
        }
        json_object_set_new(ctx_env, ctx_names[i], json_string(ctx_vals[i]));
    }
    int rc = cbx__cmd_env_build(mode && strcmp(mode, "clear") == 0, ctx_env ? ctx_env : env,
                                json_object_get(p, "unset_env"), &envp, &env_owned, &path);
    json_decref(ctx_env);
    if (rc < 0) {
        free(argv);
        return rc;
    }
    char **candidates = NULL;
    if (!strchr(argv[0], '/')) {
        candidates = cbx__cmd_path_candidates(argv[0], path);
        if (!candidates) {
            if (env_owned)
                free(envp);
            free(argv);
            return -ENOMEM;
        }
    }

    const json_t *in = json_object_get(p, "stdin");
    int pty = json_is_true(json_object_get(p, "pty"));
    int stdin_fd = in ? -1 : (int)int_param(p, "stdin_fd", (uint64_t)-1);
    int tee_out = (int)int_param(p, "tee_stdout_fd", (uint64_t)-1);
    cbx__cmd_spec spec = {
        .argv = argv,
        .candidates = candidates,
        .envp = envp,
        .cwd = json_string_value(json_object_get(p, "cwd")),
        .stdin_pipe = in != NULL && !pty,
        .stdin_fd = in || pty ? -1 : stdin_fd,
        .pty = pty,
        .winsize_fd = -1,
        .rlimit_cpu_s = int_param(p, "rlimit_cpu_s", 0),
        .rlimit_as_bytes = int_param(p, "rlimit_memory_bytes", 0),
        .rlimit_nofile = int_param(p, "rlimit_nofile", 0),
    };
    uint64_t grace_ms = DEFAULT_KILL_GRACE_MS;
    if (cbx_task_kill_grace_ns)
        grace_ms = cbx_task_kill_grace_ns(t) / 1000000u;
    cbx__cmd_opts o = {
        .argv0 = argv[0],
        .cwd = spec.cwd,
        .stdin_data = json_string_value(in),
        .stdin_len = json_string_length(in),
        .stdout_max = (size_t)int_param(p, "stdout_max", 1u << 20),
        .stderr_max = (size_t)int_param(p, "stderr_max", 1u << 20),
        .success_codes = json_object_get(p, "success_exit_codes"),
        .parse_json = json_is_true(json_object_get(p, "parse_json")),
        .kill_grace_ms = int_param(p, "kill_grace_ms", grace_ms),
        .rlimit_as_bytes = spec.rlimit_as_bytes,
        .rlimit_cpu_s = spec.rlimit_cpu_s,
        .memory_max_bytes = int_param(p, "memory_max_bytes", 0),
        .leave_leftovers = leftovers && strcmp(leftovers, "leave") == 0,
        .pty_input_fd = pty ? stdin_fd : -1,
        .tee_fd = {tee_out, (int)int_param(p, "tee_stderr_fd", (uint64_t)-1)},
    };
    if (pty)
        spec.winsize_fd = stdin_fd >= 0 && isatty(stdin_fd) ? stdin_fd
                          : tee_out >= 0 && isatty(tee_out) ? tee_out
                                                            : -1;
    o.winsize_fd = spec.winsize_fd;
    void *mem[3] = {argv, candidates, env_owned ? envp : NULL};
    return cbx__cmd_run_start(t, &spec, mem, &o); /* mem is the attempt's now */
}

static void command_cancel(cbx_task *t)
{
    cbx__cmd_run_cancel(t);
}

/* What every attempt that ran (or tried to run) the program reports, success or not. */
static const cbx_output outputs[] = {
    {.name = "exit_code",
     .type = CBX_PARAM_INTEGER,
     .nullable = 1,
     .description = "the exit code; null when killed by a signal or never started"},
    {.name = "signal",
     .type = CBX_PARAM_STRING,
     .nullable = 1,
     .description = "the signal that killed it (\"SIGKILL\"); null when it exited"},
    {.name = "stdout",
     .type = CBX_PARAM_STRING,
     .description = "what it wrote to stdout (up to stdout_max; with pty, stdout and stderr)"},
    {.name = "stderr", .type = CBX_PARAM_STRING, .description = "what it wrote to stderr"},
    {.name = "json",
     .type = CBX_PARAM_ANY,
     .optional = 1,
     .description = "with parse_json: stdout parsed as JSON"},
    {.name = NULL},
};

static const cbx_executor_type command_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "command",
    .summary = "run a program (argv, or /bin/sh -c with shell: true) in its own cgroup (or "
               "process group), with captured output, limits and the whole tree killed on "
               "timeout",
    .params = params,
    .task_size = sizeof(cbx__cmd_run),
    .validate = command_validate,
    .start = command_start,
    .cancel = command_cancel,
    .outputs = outputs,
};

const cbx_executor_type *cbx__command_type(void)
{
    return &command_type;
}
