/* The command executor through the runtime, against real child processes (tests/helpers/cmd_*):
 * ones that exit non-zero, crash, hang, ignore SIGTERM, fork grandchildren that hang (some
 * escaping into their own session), flood gigabytes of output, read stdin, report their
 * environment and limits, allocate, burn CPU, and fail a counted number of times.
 *
 * Processes our children leave behind are reparented to this test process (a child subreaper),
 * so that "nothing is left" can be checked exactly: waitpid(-1) finds no child alive. */
#include "cbx/policy.h"
#include "cbx/runtime.h"
#include "cbx/units.h"
#include "executors/command.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define HELPER(name) CBX_TEST_BIN_DIR "/" name

static cbx_runtime *rt;

static void setup(void)
{
    /* The type is built in; referring to it also links it into this test from the archive. */
    cr_assert_not_null(cbx__command_type());
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    cbx_err err;
    cbx_runtime_opts o = {.max_concurrent = 16, .max_queued = 5000};
    cr_assert_eq(cbx_runtime_new(&rt, &o, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
}

TestSuite(command, .init = setup, .fini = teardown, .timeout = 240);

/* ---- helpers ------------------------------------------------------------------------------- */

static int run(json_t *params, uint64_t timeout_ms, cbx_policy *pol, cbx_result *r)
{
    cbx_diag d = {0};
    int rc = cbx_runtime_execute(rt,
                                 &(cbx_request){.executor = "command",
                                                .params = params,
                                                .policy = pol,
                                                .timeout_ns = timeout_ms * CBX_NS_PER_MS},
                                 r, &d);
    cbx_diag_clear(&d);
    json_decref(params);
    return rc;
}

static const json_t *meta(const cbx_result *r, const char *key)
{
    json_t *v = json_object_get(r->metadata, key);
    cr_assert_not_null(v, "metadata.%s is missing: %s", key, r->error);
    return v;
}

static json_int_t meta_int(const cbx_result *r, const char *key)
{
    const json_t *v = meta(r, key);
    cr_assert(json_is_integer(v), "metadata.%s is not an integer", key);
    return json_integer_value(v);
}

static double meta_num(const cbx_result *r, const char *key)
{
    const json_t *v = meta(r, key);
    cr_assert(json_is_number(v), "metadata.%s is not a number", key);
    return json_number_value(v);
}

static const char *meta_str(const cbx_result *r, const char *key)
{
    const json_t *v = meta(r, key);
    return json_is_null(v) ? NULL : json_string_value(v);
}

static int meta_bool(const cbx_result *r, const char *key)
{
    const json_t *v = meta(r, key);
    cr_assert(json_is_boolean(v), "metadata.%s is not a boolean", key);
    return json_is_true(v);
}

static const char *out_str(const cbx_result *r, const char *key)
{
    return json_string_value(json_object_get(r->outputs, key));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *temp_path(const char *what)
{
    static int n;
    char *p = malloc(PATH_MAX);
    snprintf(p, PATH_MAX, "%s/cbx-cmd-%d-%d-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), ++n, what);
    unlink(p);
    return p;
}

/* The pids a cmd_hang wrote to its pidfile (this one first). Returns how many. */
static int read_pids(const char *path, pid_t *pids, int max)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no pidfile %s", path);
    int n = 0, p;
    while (n < max && fscanf(f, "%d", &p) == 1)
        pids[n++] = p;
    fclose(f);
    return n;
}

/* Our children, zombies included (not reaped yet), but for the cgroup guard of the command executor
 * (which lives as long as this process: see command_cgroup.c). */
static int alive_children(void)
{
    int alive = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(buf, sizeof buf, f)) {
            char *rp = strrchr(buf, ')');
            int ppid = 0;
            char state = 0;
            if (rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid() &&
                atoi(de->d_name) != cbx__cgroup_guard_pid())
                alive++;
        }
        fclose(f);
    }
    if (d)
        closedir(d);
    return alive;
}

/* Reap what has died among our children (orphans come to us: we are a subreaper) for up to
 * wait_ms; returns how many are still alive (0 when waitpid says there are no children). */
static int children_alive(double wait_ms)
{
    double end = now_ms() + wait_ms;
    for (;;) {
        pid_t w;
        while ((w = waitpid(-1, NULL, WNOHANG)) > 0)
            ;
        if ((w < 0 && errno == ECHILD) || alive_children() == 0)
            return 0;
        if (now_ms() >= end)
            break;
        usleep(2000);
    }
    return alive_children();
}

/* Gone: not a process any more (reaped). */
static int gone(pid_t pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static cbx_policy *policy(const char *json)
{
    json_error_t je;
    json_t *b = json_loads(json, 0, &je);
    cr_assert_not_null(b, "%s", je.text);
    cbx_policy *p;
    cbx_err err;
    cr_assert_eq(cbx_policy_new_json(&p, b, NULL, &err), 0, "%s: %s", err.where, err.msg);
    json_decref(b);
    return p;
}

/* ---- exit codes and signals ---------------------------------------------------------------- */

Test(command, exit_zero_succeeds_with_both_streams)
{
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s,s]}", "argv", HELPER("cmd_exit"), "0", "hello\n", "warn\n"),
                 0, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(r.status, CBX_STATUS_SUCCESS);
    cr_assert_eq(r.attempt_count, 1);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "exit_code")), 0);
    cr_assert(json_is_null(json_object_get(r.outputs, "signal")));
    cr_assert_str_eq(out_str(&r, "stdout"), "hello\n");
    cr_assert_str_eq(out_str(&r, "stderr"), "warn\n");
    cr_assert_null(json_object_get(r.outputs, "json"), "no json unless parse_json");
    cr_assert_gt(meta_int(&r, "pid"), 0);
    cr_assert_eq(meta_int(&r, "stdout_bytes"), 6);
    cr_assert_eq(meta_int(&r, "stderr_bytes"), 5);
    cr_assert_not(meta_bool(&r, "stdout_truncated"));
    cr_assert_null(meta_str(&r, "killed_by"));
    cr_assert_gt(meta_num(&r, "duration_ms"), 0);
    cr_assert(gone((pid_t)meta_int(&r, "pid")), "the child was reaped");
    cbx_result_clear(&r);
}

Test(command, exit_three_fails_with_the_code)
{
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s,s]}", "argv", HELPER("cmd_exit"), "3", "", "it broke\n"), 0,
                 NULL, &r);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_eq(meta_int(&r, "exit_code"), 3);
    cr_assert_null(meta_str(&r, "signal"));
    cr_assert_str_eq(r.error, "exit code 3: it broke", "%s", r.error);
    cbx_result_clear(&r);
}

Test(command, success_exit_codes_decide)
{
    cbx_result r;
    int rc = run(
        json_pack("{s:[s,s],s:[i,i]}", "argv", HELPER("cmd_exit"), "3", "success_exit_codes", 0, 3),
        0, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "exit_code")), 3);
    cbx_result_clear(&r);

    rc = run(json_pack("{s:[s,s],s:[i]}", "argv", HELPER("cmd_exit"), "0", "success_exit_codes", 1),
             0, NULL, &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED, "0 is not in [1]");
    cr_assert_eq(meta_int(&r, "exit_code"), 0);
    cbx_result_clear(&r);
}

Test(command, crash_reports_the_signal_name)
{
    cbx_result r;
    int rc = run(json_pack("{s:[s]}", "argv", HELPER("cmd_crash")), 0, NULL, &r);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_str_eq(meta_str(&r, "signal"), "SIGSEGV");
    cr_assert(json_is_null(meta(&r, "exit_code")));
    cr_assert(strncmp(r.error, "killed by SIGSEGV", 17) == 0, "%s", r.error);
    cr_assert_null(meta_str(&r, "killed_by"));
    cbx_result_clear(&r);
}

Test(command, shell_only_when_asked)
{
    cbx_result r;
    int rc = run(json_pack("{s:b,s:s}", "shell", 1, "command", "echo $((40 + 2)) | tr 4 x"), 0,
                 NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "stdout"), "x2\n");
    cbx_result_clear(&r);

    /* without shell, the same text is one argument, not a pipeline */
    rc = run(json_pack("{s:[s,s]}", "argv", "echo", "$((40 + 2)) | tr 4 x"), 0, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "stdout"), "$((40 + 2)) | tr 4 x\n");
    cbx_result_clear(&r);
}

/* ---- timeouts and the process tree --------------------------------------------------------- */

Test(command, hang_times_out_and_is_killed)
{
    cbx_result r;
    double t0 = now_ms();
    int rc = run(json_pack("{s:[s],s:i}", "argv", HELPER("cmd_hang"), "kill_grace_ms", 120000), 200,
                 NULL, &r);
    double took = now_ms() - t0;
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%s", r.error);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    cr_assert_str_eq(meta_str(&r, "killed_by"), "timeout");
    cr_assert_str_eq(meta_str(&r, "signal"), "SIGTERM", "SIGTERM was enough");
    cr_assert_geq(took, 200);
    cr_assert_lt(took, 60000, "ended on SIGTERM, without waiting out the 2 min grace (%.0f ms)",
                 took);
    cr_assert(gone((pid_t)meta_int(&r, "pid")));
    cbx_result_clear(&r);
}

Test(command, timeout_from_a_policy)
{
    cbx_policy *pol = policy("{\"timeout\": \"150ms\"}");
    cbx_result r;
    int rc = run(json_pack("{s:[s]}", "argv", HELPER("cmd_hang")), 0, pol, &r);
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%s", r.error);
    cr_assert_str_eq(meta_str(&r, "killed_by"), "timeout");
    cbx_result_clear(&r);
    cbx_policy_free(pol);
}

Test(command, sigterm_ignored_gets_sigkill_after_the_grace)
{
    cbx_result r;
    double t0 = now_ms();
    /* the timeout leaves the helper time to ignore SIGTERM (under ASan it starts slowly) */
    int rc = run(json_pack("{s:[s,s],s:i}", "argv", HELPER("cmd_hang"), "--ignore-term",
                           "kill_grace_ms", 300),
                 1000, NULL, &r);
    double took = now_ms() - t0;
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%s", r.error);
    cr_assert_str_eq(meta_str(&r, "signal"), "SIGKILL");
    cr_assert_geq(took, 1300, "timeout + grace (%.0f ms)", took);
    cr_assert(strstr(r.error, "SIGTERM, then SIGKILL"), "%s", r.error);
    cbx_result_clear(&r);
}

Test(command, grandchildren_that_hang_all_die)
{
    char *pidfile = temp_path("pids");
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s,s,s,s,s]}", "argv", HELPER("cmd_hang"), "--ignore-term",
                           "--children", "3", "--children-ignore-term", "--pidfile", pidfile),
                 300, NULL, &r);
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%s", r.error);
    pid_t pids[8];
    int n = read_pids(pidfile, pids, 8);
    cr_assert_eq(n, 4, "the helper and its 3 children");
    cr_assert_eq(children_alive(2000), 0, "no process of the tree is left");
    for (int i = 0; i < n; i++)
        cr_assert(gone(pids[i]), "pid %d (%s) is gone", (int)pids[i], i ? "grandchild" : "child");
    unlink(pidfile);
    free(pidfile);
    cbx_result_clear(&r);
}

/* The outcome of the result's last attempt ("oom", "error", ...), or "". */
static const char *last_outcome(const cbx_result *r)
{
    size_t n = json_array_size(r->attempts);
    const char *s =
        n ? json_string_value(json_object_get(json_array_get(r->attempts, n - 1), "outcome"))
          : NULL;
    return s ? s : "";
}

/* The tree this machine gives the command executor: "cgroup" (root, cgroup v2) or
 * "process_group"; and whether it has a memory cgroup. */
static int have_cgroups(int *memory)
{
    cbx_result r;
    run(json_pack("{s:[s]}", "argv", "true"), 0, NULL, &r);
    cr_assert_eq(r.status, CBX_STATUS_SUCCESS, "%s", r.error);
    int cg = strcmp(meta_str(&r, "tree"), "cgroup") == 0;
    if (memory)
        *memory = !json_is_null(meta(&r, "peak_memory_bytes"));
    cbx_result_clear(&r);
    return cg;
}

Test(command, escaped_session_with_a_grandchild_dies_on_timeout)
{
    if (!have_cgroups(NULL))
        cr_skip_test("no writable cgroup v2 hierarchy here (run as root): the tree is the process "
                     "group, and what leaves it is out of reach (see the next test)");
    char *pidfile = temp_path("pids");
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s,s,s,s,s],s:i}", "argv", HELPER("cmd_hang"), "--children", "1",
                           "--escape", "--grandchild", "--pidfile", pidfile, "kill_grace_ms", 100),
                 300, NULL, &r);
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%s", r.error);
    cr_assert_str_eq(meta_str(&r, "tree"), "cgroup");
    pid_t pids[4];
    cr_assert_eq(read_pids(pidfile, pids, 4), 3, "the helper, its child, its grandchild");
    /* the child left the session and its grandchild with it: the cgroup still had them */
    cr_assert_eq(children_alive(120000), 0, "nothing of the tree is left");
    for (int i = 0; i < 3; i++)
        cr_assert(gone(pids[i]), "pid %d is gone", (int)pids[i]);
    unlink(pidfile);
    free(pidfile);
    cbx_result_clear(&r);
}

Test(command, without_cgroups_an_escaped_session_and_its_grandchild_are_killed_as_orphans)
{
    cbx__cmd_no_cgroup = 1; /* the fallback: a subreaper and the CBX_TREE mark */
    char *pidfile = temp_path("pids");
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s,s,s,s,s],s:i}", "argv", HELPER("cmd_hang"), "--children", "1",
                           "--escape", "--grandchild", "--pidfile", pidfile, "kill_grace_ms", 100),
                 300, NULL, &r);
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%s", r.error);
    cr_assert_str_eq(meta_str(&r, "tree"), "process_group");
    pid_t pids[4];
    cr_assert_eq(read_pids(pidfile, pids, 4), 3, "the helper, its child, its grandchild");
    cr_assert_eq(children_alive(120000), 0, "nothing of the tree is left");
    for (int i = 0; i < 3; i++)
        cr_assert(gone(pids[i]), "pid %d is gone", (int)pids[i]);
    unlink(pidfile);
    free(pidfile);
    cbx_result_clear(&r);
}

Test(command, without_cgroups_an_escaped_session_that_clears_its_environment_is_out_of_reach)
{
    cbx__cmd_no_cgroup = 1;
    cbx_result r;
    char *ready = temp_path("escaped");
    char cmd[1024];
    /* the documented limit of the fallback: no mark, no kill; the attempt is not held. The shell
     * waits until the escapee is in its session (else the group's SIGKILL may still reach it). */
    snprintf(cmd, sizeof cmd,
             "setsid env -i /bin/sh -c 'touch %s; exec sleep 300' </dev/null >/dev/null 2>&1 & "
             "while [ ! -e %s ]; do sleep 0.01; done; echo $!",
             ready, ready);
    int rc = run(json_pack("{s:b,s:s}", "shell", 1, "command", cmd), 120000, NULL, &r);
    unlink(ready);
    free(ready);
    cr_assert_eq(rc, 0, "%s", r.error);
    int pid = atoi(out_str(&r, "stdout"));
    cr_assert_gt(pid, 0);
    cr_assert_eq(children_alive(100), 1);
    kill(pid, SIGKILL);
    cr_assert_eq(children_alive(60000), 0);
    cbx_result_clear(&r);
}

Test(command, background_child_holding_stdout_does_not_turn_success_into_a_timeout)
{
    int cgroups = have_cgroups(NULL);
    for (int with_cgroup = 0; with_cgroup <= cgroups; with_cgroup++) {
        cbx__cmd_no_cgroup = !with_cgroup;
        cbx_result r;
        /* the sleep keeps stdout open for minutes; the shell has exited at once */
        int rc = run(json_pack("{s:b,s:s}", "shell", 1, "command", "sleep 300 & echo started"),
                     120000, NULL, &r);
        cr_assert_eq(rc, 0, "%s", r.error);
        cr_assert_eq(r.status, CBX_STATUS_SUCCESS, "%s", r.error);
        cr_assert_str_eq(out_str(&r, "stdout"), "started\n");
        cr_assert_eq(meta_int(&r, "exit_code"), 0);
        if (with_cgroup)
            cr_assert(meta_bool(&r, "leftovers_killed"));
        else
            cr_assert(json_is_null(meta(&r, "leftovers_killed")));
        cr_assert_eq(children_alive(60000), 0, "the background sleep was killed");
        cbx_result_clear(&r);
    }
}

Test(command, leftovers_leave_lets_the_background_child_run)
{
    cbx_result r;
    int rc = run(json_pack("{s:b,s:s,s:s}", "shell", 1, "command",
                           "sleep 300 & echo $!; echo started", "leftovers", "leave"),
                 120000, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    const char *out = out_str(&r, "stdout");
    int pid = atoi(out);
    cr_assert_gt(pid, 0, "%s", out);
    cr_assert(strstr(out, "\nstarted\n"), "%s", out);
    cr_assert_not(gone(pid), "the background sleep was left running");
    kill(pid, SIGKILL);
    cr_assert_eq(children_alive(60000), 0);
    cbx_result_clear(&r);
}

Test(command, over_memory_tree_is_killed_and_reported_as_oom)
{
    int memory = 0;
    if (!have_cgroups(&memory) || !memory)
        cr_skip_test("no writable memory cgroup here (v1 memory, or v2 with the memory "
                     "controller; run as root)");
    cbx_result r;
    run(json_pack("{s:[s,s],s:I}", "argv", HELPER("cmd_alloc"), "1024", "memory_max_bytes",
                  (json_int_t)64 << 20),
        0, NULL, &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED, "%s", r.error);
    cr_assert(meta_bool(&r, "oom"), "%s", r.error);
    /* a kind of its own, that policies match (retry_on, breaker failure kinds) */
    cr_assert_str_eq(last_outcome(&r), "oom", "%s", r.error);
    cr_assert_str_eq(meta_str(&r, "signal"), "SIGKILL", "%s", r.error);
    cr_assert(strstr(r.error, "memory_max_bytes reached"), "%s", r.error);
    cr_assert_geq(meta_int(&r, "peak_memory_bytes"), (json_int_t)32 << 20);
    cr_assert_leq(meta_int(&r, "peak_memory_bytes"), (json_int_t)64 << 20);
    cbx_result_clear(&r);

    /* under the limit: fine, not flagged, and the peak is the tree's */
    run(json_pack("{s:[s,s],s:I}", "argv", HELPER("cmd_alloc"), "16", "memory_max_bytes",
                  (json_int_t)256 << 20),
        0, NULL, &r);
    cr_assert_eq(r.status, CBX_STATUS_SUCCESS, "%s", r.error);
    cr_assert_not(meta_bool(&r, "oom"));
    cr_assert_str_eq(last_outcome(&r), "success");
    cr_assert_geq(meta_int(&r, "peak_memory_bytes"), (json_int_t)16 << 20);
    cbx_result_clear(&r);
}

/* A SIGKILL nobody in cbx sent: with a memory cgroup to ask, its count of OOM kills decides (none
 * here: an error); without one, it is taken for the kernel's OOM killer (oom). */
Test(command, an_unexplained_sigkill_is_oom_only_without_a_memory_cgroup_to_ask)
{
    int memory = 0;
    int cgroups = have_cgroups(&memory);
    cbx_result r;
    if (cgroups && memory) {
        run(json_pack("{s:[s,s,s]}", "argv", "sh", "-c", "kill -9 $$"), 0, NULL, &r);
        cr_assert_str_eq(meta_str(&r, "signal"), "SIGKILL");
        cr_assert_not(meta_bool(&r, "oom"), "%s", r.error);
        cr_assert_str_eq(last_outcome(&r), "error", "%s", r.error);
        cbx_result_clear(&r);
    }
    cbx__cmd_no_cgroup = 1;
    run(json_pack("{s:[s,s,s]}", "argv", "sh", "-c", "kill -9 $$"), 0, NULL, &r);
    cbx__cmd_no_cgroup = 0;
    cr_assert_str_eq(meta_str(&r, "tree"), "process_group");
    cr_assert(meta_bool(&r, "oom"), "%s", r.error);
    cr_assert_str_eq(last_outcome(&r), "oom", "%s", r.error);
    cr_assert(strstr(r.error, "(out of memory?)"), "%s", r.error);
    cbx_result_clear(&r);
}

Test(command, memory_limit_without_cgroups_is_a_clear_error)
{
    cbx__cmd_no_cgroup = 1;
    cbx_result r;
    run(json_pack("{s:[s],s:I}", "argv", "true", "memory_max_bytes", (json_int_t)64 << 20), 0, NULL,
        &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED, "%d %s", r.status, r.error);
    cr_assert(strstr(r.error, "memory_max_bytes"), "%s", r.error);
    cbx_result_clear(&r);
}

static void cancel_soon(uv_timer_t *t)
{
    cbx_runtime_cancel(rt, t->data);
    uv_close((uv_handle_t *)t, NULL);
}

static cbx_result cancelled_res;

static void keep_result(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    (void)ud;
    cancelled_res = *res;
    cancelled_res.outputs = json_incref(res->outputs);
    cancelled_res.metadata = json_incref(res->metadata);
    cancelled_res.attempts = json_incref(res->attempts);
}

Test(command, cancel_kills_and_says_so)
{
    json_t *p = json_pack("{s:[s]}", "argv", HELPER("cmd_hang"));
    cbx_execution *ex;
    cr_assert_eq(cbx_runtime_submit(
                     rt, &(cbx_request){.executor = "command", .params = p, .on_done = keep_result},
                     &ex, NULL),
                 0);
    uv_timer_t timer;
    uv_timer_init(cbx_runtime_loop(rt), &timer);
    timer.data = ex;
    uv_timer_start(&timer, cancel_soon, 100, 0);
    cr_assert_eq(cbx_runtime_run(rt), 0);
    cr_assert_eq(cancelled_res.status, CBX_STATUS_CANCELLED, "%s", cancelled_res.error);
    cr_assert_str_eq(meta_str(&cancelled_res, "killed_by"), "cancel");
    cr_assert_str_eq(meta_str(&cancelled_res, "signal"), "SIGTERM");
    cbx_result_clear(&cancelled_res);
    json_decref(p);
}

/* ---- output -------------------------------------------------------------------------------- */

Test(command, flood_of_gigabytes_is_capped_counted_and_bounded)
{
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    cbx_result r;
    const long long out = 2LL << 30, err = 512LL << 20;
    char a[32], b[32];
    snprintf(a, sizeof a, "%lld", out);
    snprintf(b, sizeof b, "%lld", err);
    int rc = run(json_pack("{s:[s,s,s],s:i,s:i}", "argv", HELPER("cmd_flood"), a, b, "stdout_max",
                           4096, "stderr_max", 100),
                 0, NULL, &r);
    getrusage(RUSAGE_SELF, &after);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(meta_int(&r, "stdout_bytes"), out);
    cr_assert_eq(meta_int(&r, "stderr_bytes"), err);
    cr_assert(meta_bool(&r, "stdout_truncated"));
    cr_assert(meta_bool(&r, "stderr_truncated"));
    cr_assert_eq(strlen(out_str(&r, "stdout")), 4096);
    cr_assert_eq(strlen(out_str(&r, "stderr")), 100);
    cr_assert_lt(after.ru_maxrss - before.ru_maxrss, 64 * 1024,
                 "memory stayed bounded: peak grew by %ld kB", after.ru_maxrss - before.ru_maxrss);
    cbx_result_clear(&r);
}

Test(command, output_not_utf8_is_replaced_and_flagged)
{
    cbx_result r;
    int rc = run(json_pack("{s:b,s:s}", "shell", 1, "command", "printf 'a\\377b'"), 0, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "stdout"), "a\xEF\xBF\xBD"
                                            "b");
    cr_assert(meta_bool(&r, "stdout_lossy"));
    cr_assert_eq(meta_int(&r, "stdout_bytes"), 3);
    cbx_result_clear(&r);
}

/* ---- what the child is given --------------------------------------------------------------- */

static json_t *inspect(json_t *extra, const char *expect_error)
{
    json_t *p = json_pack("{s:[s],s:b,s:i}", "argv", HELPER("cmd_inspect"), "parse_json", 1,
                          "stdout_max", 8 << 20);
    json_object_update(p, extra);
    json_decref(extra);
    cbx_result r;
    int rc = run(p, 0, NULL, &r);
    if (expect_error) {
        cr_assert_eq(r.status, CBX_STATUS_FAILED);
        cr_assert_str_eq(r.error, expect_error);
        cbx_result_clear(&r);
        return NULL;
    }
    cr_assert_eq(rc, 0, "%s", r.error);
    json_t *j = json_incref(json_object_get(r.outputs, "json"));
    cr_assert(json_is_object(j));
    cbx_result_clear(&r);
    return j;
}

Test(command, stdin_is_passed_through)
{
    json_t *j = inspect(json_pack("{s:s}", "stdin", "line one\nline two"), NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "stdin")), "line one\nline two");
    json_decref(j);

    /* more than a pipe holds at once: written as the child reads */
    size_t n = 3 << 20;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    j = inspect(json_pack("{s:s}", "stdin", big), NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "stdin")), big);
    json_decref(j);

    /* without stdin: /dev/null */
    j = inspect(json_object(), NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "stdin")), "");
    json_decref(j);

    /* a command that never reads its stdin: no SIGPIPE for us, success for it */
    cbx_result r;
    int rc =
        run(json_pack("{s:[s,s],s:s}", "argv", HELPER("cmd_exit"), "0", "stdin", big), 0, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cbx_result_clear(&r);
    free(big);
}

Test(command, env_set_clear_and_unset)
{
    setenv("CBX_TEST_INHERITED", "from-parent", 1);
    setenv("CBX_TEST_DROPPED", "x", 1);

    json_t *j = inspect(json_pack("{s:{s:s}}", "env", "FOO", "bar"), NULL);
    json_t *env = json_object_get(j, "env");
    cr_assert_str_eq(json_string_value(json_object_get(env, "FOO")), "bar");
    cr_assert_str_eq(json_string_value(json_object_get(env, "CBX_TEST_INHERITED")), "from-parent");
    json_decref(j);

    j = inspect(json_pack("{s:{s:s},s:s}", "env", "FOO", "bar", "env_mode", "clear"), NULL);
    env = json_object_get(j, "env");
    cr_assert_eq(json_object_size(env), 1, "only what was set");
    cr_assert_str_eq(json_string_value(json_object_get(env, "FOO")), "bar");
    json_decref(j);

    j = inspect(json_pack("{s:[s],s:{s:s}}", "unset_env", "CBX_TEST_DROPPED", "env",
                          "CBX_TEST_INHERITED", "replaced"),
                NULL);
    env = json_object_get(j, "env");
    cr_assert_null(json_object_get(env, "CBX_TEST_DROPPED"));
    cr_assert_str_eq(json_string_value(json_object_get(env, "CBX_TEST_INHERITED")), "replaced");
    cr_assert_not_null(json_object_get(env, "PATH"), "the rest is inherited");
    json_decref(j);

    /* PATH for the lookup comes from the child's environment */
    cbx_result r;
    run(json_pack("{s:[s],s:s,s:{s:s}}", "argv", "cmd_exit", "env_mode", "clear", "env", "PATH",
                  "/nonexistent:" CBX_TEST_BIN_DIR),
        0, NULL, &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED, "cmd_exit without a code exits 64");
    cr_assert_eq(meta_int(&r, "exit_code"), 64, "%s", r.error);
    cbx_result_clear(&r);
}

Test(command, cwd_is_set)
{
    char want[PATH_MAX];
    cr_assert_not_null(realpath(CBX_TEST_BIN_DIR, want));
    json_t *j = inspect(json_pack("{s:s}", "cwd", CBX_TEST_BIN_DIR), NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "cwd")), want);
    json_decref(j);
    inspect(json_pack("{s:s}", "cwd", "/nonexistent/cbx"),
            "cwd '/nonexistent/cbx': No such file or directory");
}

Test(command, no_descriptor_leaks_into_the_child)
{
    int fd = dup(0); /* a descriptor of ours without O_CLOEXEC */
    json_t *j = inspect(json_object(), NULL);
    cr_assert_eq(json_integer_value(json_object_get(j, "open_fds_above_2")), 0);
    json_decref(j);
    close(fd);
}

Test(command, parse_json_ok_and_bad)
{
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s],s:b}", "argv", HELPER("cmd_exit"), "0",
                           "{\"n\": 1, \"list\": [true]}", "parse_json", 1),
                 0, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    json_t *want = json_pack("{s:i,s:[b]}", "n", 1, "list", 1);
    cr_assert(json_equal(json_object_get(r.outputs, "json"), want));
    json_decref(want);
    cbx_result_clear(&r);

    rc = run(
        json_pack("{s:[s,s,s],s:b}", "argv", HELPER("cmd_exit"), "0", "not json", "parse_json", 1),
        0, NULL, &r);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert(strncmp(r.error, "parse_json: stdout is not JSON: ", 32) == 0, "%s", r.error);
    cbx_result_clear(&r);

    rc = run(json_pack("{s:[s,s,s],s:b,s:i}", "argv", HELPER("cmd_exit"), "0", "[1, 2, 3]",
                       "parse_json", 1, "stdout_max", 4),
             0, NULL, &r);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert(strstr(r.error, "truncated"), "%s", r.error);
    cbx_result_clear(&r);
}

/* ---- limits and usage ---------------------------------------------------------------------- */

Test(command, rlimit_nofile_is_honoured)
{
    json_t *j = inspect(json_pack("{s:i}", "rlimit_nofile", 17), NULL);
    cr_assert_eq(json_integer_value(json_object_get(j, "nofile")), 17);
    json_decref(j);
}

Test(command, rlimit_memory_stops_a_greedy_child)
{
    cbx_result r;
    run(json_pack("{s:[s,s],s:I}", "argv", HELPER("cmd_alloc"), "2048", "rlimit_memory_bytes",
                  (json_int_t)128 << 20),
        0, NULL, &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED, "%s", r.error);
    if (!UNDER_ASAN) { /* an ASan child cannot even map its shadow memory under RLIMIT_AS */
        cr_assert_eq(meta_int(&r, "exit_code"), 2, "%s", r.error);
        cr_assert(meta_bool(&r, "oom"), "%s", r.error);
        cr_assert_str_eq(last_outcome(&r), "oom", "%s", r.error);
        cr_assert(strstr(r.error, "out of memory after"), "%s", r.error);
    }
    cbx_result_clear(&r);

    /* the same child without the limit, asking for less, is fine and not flagged */
    run(json_pack("{s:[s,s]}", "argv", HELPER("cmd_alloc"), "16"), 0, NULL, &r);
    cr_assert_eq(r.status, CBX_STATUS_SUCCESS, "%s", r.error);
    cr_assert_not(meta_bool(&r, "oom"));
    cbx_result_clear(&r);
}

Test(command, rlimit_cpu_stops_a_spinning_child)
{
    cbx_result r;
    run(json_pack("{s:[s,s,s],s:i}", "argv", HELPER("cmd_alloc"), "0", "60000", "rlimit_cpu_s", 1),
        30000, NULL, &r);
    cr_assert_eq(r.status, CBX_STATUS_FAILED, "%s", r.error);
    cr_assert_str_eq(meta_str(&r, "signal"), "SIGXCPU");
    cr_assert(meta_bool(&r, "cpu_limit_exceeded"));
    cr_assert_geq(meta_num(&r, "cpu_user_ms") + meta_num(&r, "cpu_sys_ms"), 500);
    cbx_result_clear(&r);
}

Test(command, peak_memory_and_cpu_time_are_plausible)
{
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s]}", "argv", HELPER("cmd_alloc"), "200", "300"), 0, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_geq(meta_int(&r, "peak_rss_kb"), 200 * 1024);
    cr_assert(meta_bool(&r, "peak_rss_exact"), "200 MiB is above what the parent lends");
    cr_assert_gt(meta_num(&r, "cpu_user_ms"), 0);
    cr_assert_gt(meta_num(&r, "cpu_sys_ms"), 0, "touching 200 MiB costs page faults");
    cr_assert_leq(meta_num(&r, "cpu_user_ms") + meta_num(&r, "cpu_sys_ms"),
                  meta_num(&r, "duration_ms") * 1.05 + 5,
                  "one thread cannot use more CPU than wall time");
    cbx_result_clear(&r);
}

/* ---- failures to start --------------------------------------------------------------------- */

Test(command, command_not_found_is_a_clear_error)
{
    cbx_result r;
    int rc = run(json_pack("{s:[s]}", "argv", "cbx-no-such-command-xyz"), 0, NULL, &r);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_str_eq(r.error, "argv[0] 'cbx-no-such-command-xyz': No such file or directory");
    cr_assert_str_eq(meta_str(&r, "spawn_error"), r.error);
    cr_assert(json_is_null(meta(&r, "pid")));
    cr_assert(json_is_null(meta(&r, "exit_code")));
    cbx_result_clear(&r);

    rc = run(json_pack("{s:[s]}", "argv", CBX_SOURCE_DIR "/CMakeLists.txt"), 0, NULL, &r);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_str_eq(r.error, "argv[0] '" CBX_SOURCE_DIR "/CMakeLists.txt': Permission denied");
    cbx_result_clear(&r);
}

Test(command, bad_parameters_are_refused_all_at_once)
{
    cbx_diag d = {0};
    cbx_result r;
    json_t *p = json_pack("{s:[s],s:s,s:{s:s},s:[i,i]}", "argv", "true", "command", "x", "env",
                          "A=B", "v", "success_exit_codes", 0, 300);
    int rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "command", .params = p}, &r, &d);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert(strstr(r.error, "command"), "%s", r.error);
    cr_assert(strstr(r.error, "env.A=B"), "%s", r.error);
    cr_assert(strstr(r.error, "success_exit_codes[1]"), "%s", r.error);
    cbx_result_clear(&r);
    cbx_diag_clear(&d);
    json_decref(p);

    p = json_pack("{s:b}", "shell", 1);
    rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "command", .params = p}, &r, NULL);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert(strstr(r.error, "command: required when shell is true"), "%s", r.error);
    cbx_result_clear(&r);
    json_decref(p);

    p = json_object();
    rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "command", .params = p}, &r, NULL);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert(strstr(r.error, "argv: required"), "%s", r.error);
    cbx_result_clear(&r);
    json_decref(p);
}

/* ---- policies, concurrency, leaks ---------------------------------------------------------- */

Test(command, retries_until_the_flaky_command_succeeds)
{
    char *counter = temp_path("counter");
    cbx_policy *pol =
        policy("{\"retry\": {\"attempts\": 3, \"backoff\": \"fixed\", \"initial\": \"1ms\"}}");
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s]}", "argv", HELPER("cmd_flaky"), counter, "2"), 0, pol, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(r.attempt_count, 3);
    cr_assert_str_eq(out_str(&r, "stdout"), "run 3\n");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r.attempts, 0), "outcome")),
                     "error");
    cbx_result_clear(&r);
    cbx_policy_free(pol);
    unlink(counter);
    free(counter);
}

static int uv_child_status = -1;

static void uv_child_exit(uv_process_t *p, int64_t status, int sig)
{
    (void)status;
    uv_child_status = sig;
    uv_close((uv_handle_t *)p, NULL);
}

Test(command, many_at_once_each_gets_its_own_exit_status)
{
    /* libuv's SIGCHLD handler is live (a uv_spawn child runs on the same loop) the whole time. */
    uv_process_t proc;
    char *uv_args[] = {(char *)HELPER("cmd_hang"), NULL};
    uv_process_options_t po = {.file = uv_args[0], .args = uv_args, .exit_cb = uv_child_exit};
    cr_assert_eq(uv_spawn(cbx_runtime_loop(rt), &proc, &po), 0);

    enum { N = 200 };
    cbx_request *reqs = calloc(N, sizeof *reqs);
    cbx_result *res = calloc(N, sizeof *res);
    json_t *params[N];
    for (int i = 0; i < N; i++) {
        char code[8], text[16];
        snprintf(code, sizeof code, "%d", i % 7);
        snprintf(text, sizeof text, "run %d", i);
        params[i] = json_pack("{s:[s,s,s],s:[i,i,i,i,i,i,i]}", "argv", HELPER("cmd_exit"), code,
                              text, "success_exit_codes", 0, 1, 2, 3, 4, 5, 6);
        reqs[i] = (cbx_request){.executor = "command", .params = params[i]};
    }
    size_t ok = cbx_runtime_execute_many(rt, reqs, N, 0, res);
    cr_assert_eq(ok, N);
    for (int i = 0; i < N; i++) {
        char text[16];
        snprintf(text, sizeof text, "run %d", i);
        cr_assert_eq(meta_int(&res[i], "exit_code"), i % 7, "run %d", i);
        cr_assert_str_eq(out_str(&res[i], "stdout"), text);
        cbx_result_clear(&res[i]);
        json_decref(params[i]);
    }
    cr_assert_eq(uv_child_status, -1, "libuv's own child is still running");
    uv_process_kill(&proc, SIGKILL);
    uv_run(cbx_runtime_loop(rt), UV_RUN_DEFAULT);
    cr_assert_eq(uv_child_status, SIGKILL, "and libuv still reaps its own");
    free(reqs);
    free(res);
}

Test(command, without_pidfd_exits_are_polled)
{
    cbx__cmd_no_pidfd = 1;
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s],s:[i]}", "argv", HELPER("cmd_exit"), "5", "polled",
                           "success_exit_codes", 5),
                 0, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(meta_int(&r, "exit_code"), 5);
    cr_assert_str_eq(out_str(&r, "stdout"), "polled");
    cbx_result_clear(&r);
    rc =
        run(json_pack("{s:[s,s,s]}", "argv", HELPER("cmd_hang"), "--children", "2"), 100, NULL, &r);
    cr_assert_eq(rc, CBX_ETIMEDOUT);
    cr_assert_eq(children_alive(2000), 0);
    cbx_result_clear(&r);
}

Test(command, a_thousand_timed_out_trees_leave_nothing_behind)
{
    /* warm up: whatever the loop opens once (signal pipes, the thread pool) is open before */
    cbx_result r;
    run(json_pack("{s:[s,s,s]}", "argv", HELPER("cmd_hang"), "--children", "1"), 20, NULL, &r);
    cbx_result_clear(&r);
    cr_assert_eq(children_alive(2000), 0);
    int fds_before = count_fds() - cbx__cgroup_pool_fds();

    enum { N = 1000 };
    cbx_request *reqs = calloc(N, sizeof *reqs);
    cbx_result *res = calloc(N, sizeof *res);
    json_t *p = json_pack("{s:[s,s,s]}", "argv", HELPER("cmd_hang"), "--children", "1");
    for (int i = 0; i < N; i++)
        reqs[i] =
            (cbx_request){.executor = "command", .params = p, .timeout_ns = 20 * CBX_NS_PER_MS};
    size_t ok = cbx_runtime_execute_many(rt, reqs, N, 0, res); /* 16 at a time: the runtime's cap */
    cr_assert_eq(ok, 0);
    int timeouts = 0;
    for (int i = 0; i < N; i++) {
        timeouts += res[i].status == CBX_STATUS_TIMEOUT;
        if (res[i].status == CBX_STATUS_TIMEOUT)
            cr_assert_str_eq(meta_str(&res[i], "killed_by"), "timeout");
        cbx_result_clear(&res[i]);
    }
    cr_assert_eq(timeouts, N);
    cr_assert_eq(count_fds() - cbx__cgroup_pool_fds(), fds_before,
                 "no descriptor left behind (but for the pool of empty cgroups)");
    cr_assert_eq(children_alive(5000), 0, "no process left behind");
    json_decref(p);
    free(reqs);
    free(res);
}

/* ---- streaming and stdin from a descriptor --------------------------------------------------- */

Test(command, tee_fds_get_each_stream_as_captured)
{
    int out[2], err[2];
    cr_assert_eq(pipe(out), 0);
    cr_assert_eq(pipe(err), 0);
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s,s],s:i,s:i}", "argv", HELPER("cmd_exit"), "0", "hello\n",
                           "warn\n", "tee_stdout_fd", out[1], "tee_stderr_fd", err[1]),
                 0, NULL, &r);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "stdout"), "hello\n", "the capture is unchanged");
    close(out[1]);
    close(err[1]);
    char buf[64];
    ssize_t n = read(out[0], buf, sizeof buf);
    cr_assert_eq(n, 6);
    cr_assert_eq(memcmp(buf, "hello\n", 6), 0);
    n = read(err[0], buf, sizeof buf);
    cr_assert_eq(n, 5);
    cr_assert_eq(memcmp(buf, "warn\n", 5), 0);
    close(out[0]);
    close(err[0]);
    cbx_result_clear(&r);
}

Test(command, tee_reader_gone_gives_the_command_sigpipe)
{
    int out[2];
    cr_assert_eq(pipe(out), 0);
    close(out[0]);
    cbx_result r;
    run(json_pack("{s:[s,s,s],s:i}", "argv", "sh", "-c", "while :; do echo y; done",
                  "tee_stdout_fd", out[1]),
        60000, NULL, &r);
    close(out[1]);
    cr_assert_str_eq(meta_str(&r, "signal"), "SIGPIPE", "%s", r.error);
    cr_assert_str_eq(meta_str(&r, "stdout_tee_error"), strerror(EPIPE));
    cbx_result_clear(&r);
}

Test(command, stdin_fd_file_is_read_from_its_start_by_every_attempt)
{
    char *path = temp_path("stdin"), *seen = temp_path("seen");
    FILE *f = fopen(path, "w+");
    cr_assert_not_null(f);
    fputs("abc", f);
    fflush(f); /* the offset is now at the end: each attempt still reads from the start */
    cbx_policy *pol =
        policy("{\"retry\":{\"attempts\":2,\"initial\":\"1ms\",\"jitter\":\"none\"}}");
    cbx_result r;
    int rc = run(json_pack("{s:[s,s,s,s],s:i}", "argv", "sh", "-c", "cat >>\"$0\"; exit 1", seen,
                           "stdin_fd", fileno(f)),
                 0, pol, &r);
    cr_assert_neq(rc, 0);
    cr_assert_eq(r.status, CBX_STATUS_FAILED, "%s", r.error);
    cr_assert_eq(r.attempt_count, 2);
    char buf[32] = "";
    FILE *s = fopen(seen, "r");
    cr_assert_not_null(s);
    size_t n = fread(buf, 1, sizeof buf - 1, s);
    buf[n] = '\0';
    fclose(s);
    cr_assert_str_eq(buf, "abcabc", "each attempt read all of it");
    cbx_result_clear(&r);
    fclose(f);
    unlink(path);
    unlink(seen);
    free(path);
    free(seen);
    cbx_policy_free(pol);
}

Test(command, stdin_and_stdin_fd_together_are_refused)
{
    cbx_result r;
    int rc =
        run(json_pack("{s:[s],s:s,s:i}", "argv", "cat", "stdin", "x", "stdin_fd", 0), 0, NULL, &r);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG, "%s", r.error);
    cbx_result_clear(&r);
}
