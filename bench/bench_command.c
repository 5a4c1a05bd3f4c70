/* bench/bench_command.c - /bin/true through the command executor, beside xargs and GNU parallel.
 *
 * The same work in the same run: --iters runs of /bin/true (default 2,000), 4 at a time:
 *   command.true.cbx          the runtime (max_concurrent 4) and the command executor with
 *                             stdout/stderr captured, a 10 s timeout armed on every attempt and a
 *                             3-attempt retry policy, all submitted at once with
 *                             cbx_runtime_execute_many; best of --runs passes
 *   command.true.xargs        xargs -P4 -n1 /bin/true fed N lines; best of --runs passes
 *                             (the passes alternate with cbx's and the floor's)
 *   command.true.parallel     parallel -j4 /bin/true fed N lines (one pass: it is slow)
 *   command.true.spawn_floor  a bare C loop: posix_spawn + waitpid, 4 in flight, no capture,
 *                             no runtime: the bare cost of the processes, for scale
 * Each line gives ns per run of /bin/true (wall time / N). A "# note" line gives the wall times
 * and the ratios against the targets: cbx at most 1.0x the time of xargs, at least 4x faster
 * than parallel. Starting a process is not an allocation-free path: the allocs column says "-"
 * and a note gives cbx's allocations per run.
 *
 * Knobs, from the environment (to compare with what cbx did before): CBX_BENCH_INLINE_SPAWN=1
 * starts the children on the loop's thread instead of the spawner thread, CBX_BENCH_NO_CGROUP=1
 * runs them without a cgroup each, CBX_BENCH_NO_PARALLEL=1 skips GNU parallel (slow).
 *
 * Under valgrind (bench/run's allocation cross-check) nothing is measured: a process per call
 * is not a path that could be allocation-free, and a hundred thousand spawns would take ages. A
 * peer that is not installed is skipped with a note. A cbx run that does not succeed fails the
 * bench (exit 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

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

#define DEFAULT_RUNS_OF_TRUE 2000
#define IN_FLIGHT            4

extern char **environ;

/* A built-in of libcbx; naming it links it in from the static library whatever the registry's
 * own references are. */
const cbx_executor_type *cbx__command_type(void);
/* Internal switches of the command executor (see the knobs above). */
extern int cbx__cmd_inline_spawn, cbx__cmd_no_cgroup;

static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static int failed;
static double cbx_cpu_us_per_run; /* this process's CPU time (every thread) per run, last pass */
static double wall_ms[4];         /* best wall time per case, 0 = not measured */
enum { CBX, XARGS, PARALLEL, FLOOR };

/* ---- cbx ---------------------------------------------------------------------------------- */

static uint64_t cbx_pass(cbx_runtime *rt, cbx_policy *pol, const json_t *params, size_t n,
                         uint64_t *allocs)
{
    cbx_request *reqs = calloc(n, sizeof *reqs);
    cbx_result *res = calloc(n, sizeof *res);
    if (!reqs || !res) {
        fprintf(stderr, "bench_command: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        reqs[i] = (cbx_request){.executor = "command",
                                .params = params,
                                .policy = pol,
                                .timeout_ns = 10 * 1000000000ull};
    uint64_t a0 = alloc_count_total();
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_now_ns();
    size_t ok = cbx_runtime_execute_many(rt, reqs, n, 0, res);
    uint64_t t1 = bench_now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    double cpu_us = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                             ru0.ru_stime.tv_sec) *
                        1e6 +
                    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                             ru0.ru_stime.tv_usec);
    if (allocs) /* a measured pass, not the warm-up */
        cbx_cpu_us_per_run = cpu_us / (double)n;
    if (allocs)
        *allocs = alloc_count_total() - a0;
    if (ok != n) {
        for (size_t i = 0; i < n; i++)
            if (res[i].status != CBX_STATUS_SUCCESS) {
                printf("# FAIL\tcommand.true.cbx: run %zu: %s\n", i, res[i].error);
                break;
            }
        failed = 1;
    }
    for (size_t i = 0; i < n; i++)
        cbx_result_clear(&res[i]);
    free(reqs);
    free(res);
    return t1 - t0;
}

/* The runtime, policy and parameters every cbx pass shares. */
typedef struct cbx_case {
    cbx_runtime *rt;
    cbx_policy *pol;
    json_t *params;
    uint64_t allocs; /* of the best pass */
} cbx_case;

static int cbx_case_init(cbx_case *c, size_t n)
{
    cbx_err err;
    memset(c, 0, sizeof *c);
    if (!cbx__command_type()) {
        printf("# FAIL\tcommand.true.cbx: no command executor in this libcbx\n");
        return -1;
    }
    cbx_runtime_opts o = {.max_concurrent = IN_FLIGHT, .max_queued = (uint32_t)n + 16};
    if (cbx_runtime_new(&c->rt, &o, &err) != 0) {
        printf("# FAIL\tcommand.true.cbx: cbx_runtime_new: %s\n", err.msg);
        return -1;
    }
    json_t *block = json_loads("{\"timeout\": \"10s\", \"retry\": {\"attempts\": 3, "
                               "\"backoff\": \"fixed\", \"initial\": \"10ms\"}}",
                               0, NULL);
    int rc = block ? cbx_policy_new_json(&c->pol, block, NULL, &err) : -1;
    json_decref(block);
    if (rc != 0) {
        printf("# FAIL\tcommand.true.cbx: policy: %s\n", err.msg);
        return -1;
    }
    c->params = json_pack("{s:[s]}", "argv", "/bin/true");         /* capture is on by default */
    cbx_pass(c->rt, c->pol, c->params, n / 10 ? n / 10 : 1, NULL); /* warm-up */
    return failed ? -1 : 0;
}

static void cbx_case_free(cbx_case *c)
{
    json_decref(c->params);
    cbx_policy_free(c->pol);
    cbx_runtime_free(c->rt);
}

/* ---- peers -------------------------------------------------------------------------------- */

static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];
    for (const char *p = path ? path : "/usr/bin:/bin"; p && *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Run argv with n lines on its stdin and its output to /dev/null; wall ns, or 0 on failure. */
static uint64_t feed_pass(char *const argv[], size_t n)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    uint64_t t0 = bench_now_ns();
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        return 0;
    }
    FILE *in = fdopen(fds[1], "w");
    for (size_t i = 0; in && i < n; i++)
        fputs("x\n", in);
    if (in)
        fclose(in);
    else
        close(fds[1]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    uint64_t t1 = bench_now_ns();
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t1 - t0 : 0;
}

static char *xargs_argv[] = {"xargs", "-P4", "-n1", "/bin/true", NULL};
static char *parallel_argv[] = {"parallel", "--will-cite", "-j4", "/bin/true", NULL};

/* posix_spawn + waitpid with IN_FLIGHT children at a time; wall ns, or 0 on failure. */
static uint64_t floor_pass(size_t n)
{
    char *argv[] = {"/bin/true", NULL};
    uint64_t t0 = bench_now_ns();
    size_t started = 0, ended = 0;
    while (ended < n) {
        while (started < n && started - ended < IN_FLIGHT) {
            pid_t pid;
            int rc = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
            if (rc != 0) {
                printf("# FAIL\tcommand.true.spawn_floor: posix_spawn: %s\n", strerror(rc));
                return 0;
            }
            started++;
        }
        int st;
        if (waitpid(-1, &st, 0) > 0)
            ended++;
        else if (errno != EINTR)
            return 0;
    }
    return bench_now_ns() - t0;
}

static const char *const names[] = {"command.true.cbx", "command.true.xargs",
                                    "command.true.parallel", "command.true.spawn_floor"};

static void keep_best(uint64_t *best, uint64_t ns)
{
    if (ns && (*best == 0 || ns < *best))
        *best = ns;
}

int main(int argc, char **argv)
{
    bench_args a;
    if (bench_args_parse(&a, argc, argv) != 0)
        return 2;
    if (a.list) {
        for (int i = 0; i < 4; i++)
            printf("%s\n", names[i]);
        return 0;
    }
    if (RUNNING_ON_VALGRIND) {
        printf("# note\tcommand: not run under valgrind (a process per run is not an "
               "allocation-free path)\n");
        return 0;
    }
    if (!a.no_selftest && alloc_count_selftest() != 0) {
        fprintf(stderr, "bench_command: the counting allocator is not in effect\n");
        return 3;
    }
    signal(SIGPIPE, SIG_IGN);
    size_t n = a.iters ? (size_t)a.iters : DEFAULT_RUNS_OF_TRUE;
    printf("# build\t%s\t%s\n", CBX_BENCH_BUILD_TYPE, CBX_BENCH_CFLAGS);
    printf("# compiler\t%s\n", CBX_BENCH_COMPILER);
    printf("# runs\t%d\n", a.runs);

    cbx__cmd_inline_spawn = env_set("CBX_BENCH_INLINE_SPAWN");
    cbx__cmd_no_cgroup = env_set("CBX_BENCH_NO_CGROUP");
    printf("# spawn\t%s, %s\n", cbx__cmd_inline_spawn ? "on the loop's thread" : "spawner thread",
           cbx__cmd_no_cgroup ? "no cgroups" : "a cgroup per run where the machine allows");
    int sel[4], any = 0;
    for (int i = 0; i < 4; i++)
        any |= sel[i] = bench_selected(&a, names[i]);
    if (env_set("CBX_BENCH_NO_PARALLEL"))
        sel[PARALLEL] = 0;
    if (!any) {
        fprintf(stderr, "bench_command: no case named %s\n", a.only);
        return 2;
    }
    if (sel[XARGS] && !on_path(xargs_argv[0])) {
        printf("# note\t%s: xargs is not installed; not measured\n", names[XARGS]);
        sel[XARGS] = 0;
    }
    if (sel[PARALLEL] && !on_path(parallel_argv[0])) {
        printf("# note\t%s: GNU parallel is not installed; not measured\n", names[PARALLEL]);
        sel[PARALLEL] = 0;
    }
    cbx_case c;
    if (sel[CBX] && cbx_case_init(&c, n) != 0) {
        failed = 1;
        sel[CBX] = 0;
    }

    /* The passes alternate (cbx, xargs, floor, cbx, ...), so that a change in the machine's load
     * falls on every contender alike. */
    uint64_t best[4] = {0};
    for (int r = 0; r < a.runs && !failed; r++) {
        if (sel[CBX]) {
            uint64_t allocs = 0, ns = cbx_pass(c.rt, c.pol, c.params, n, &allocs);
            if (!best[CBX] || ns < best[CBX])
                c.allocs = allocs;
            keep_best(&best[CBX], ns);
        }
        if (sel[XARGS]) {
            uint64_t ns = feed_pass(xargs_argv, n);
            if (!ns) {
                printf("# FAIL\t%s: xargs did not run to success\n", names[XARGS]);
                failed = 1;
            }
            keep_best(&best[XARGS], ns);
        }
        if (sel[FLOOR]) {
            uint64_t ns = floor_pass(n);
            failed |= ns == 0;
            keep_best(&best[FLOOR], ns);
        }
    }
    if (sel[PARALLEL] && !failed) { /* one pass: at ~10 ms a job it is slow */
        best[PARALLEL] = feed_pass(parallel_argv, n);
        if (!best[PARALLEL]) {
            printf("# FAIL\t%s: parallel did not run to success\n", names[PARALLEL]);
            failed = 1;
        }
    }
    if (sel[CBX])
        cbx_case_free(&c);
    for (int i = 0; i < 4; i++) {
        if (!best[i])
            continue;
        wall_ms[i] = (double)best[i] / 1e6;
        bench_emit(names[i], (double)best[i] / (double)n, -1, n);
    }
    if (best[CBX])
        printf("# note\t%s: %.1f allocations per run (the runtime, the executor, the result "
               "JSON)\n",
               names[CBX], (double)c.allocs / (double)n);
    if (wall_ms[CBX] > 0 && wall_ms[XARGS] > 0)
        printf("# note\tcommand: %zu runs of /bin/true, %d at a time: cbx %.0f ms, xargs -P4 %.0f "
               "ms: %.2fx the time of xargs (target: at most 1.0x)\n",
               n, IN_FLIGHT, wall_ms[CBX], wall_ms[XARGS], wall_ms[CBX] / wall_ms[XARGS]);
    if (wall_ms[CBX] > 0)
        printf("# note\t%s: %.0f us of CPU per run in this process (every thread; the children's "
               "own time apart)\n",
               names[CBX], cbx_cpu_us_per_run);
    if (wall_ms[CBX] > 0 && wall_ms[PARALLEL] > 0)
        printf("# note\tcommand: GNU parallel -j4 %.0f ms: cbx is %.1fx faster (target: at least "
               "4x)\n",
               wall_ms[PARALLEL], wall_ms[PARALLEL] / wall_ms[CBX]);
    if (wall_ms[CBX] > 0 && wall_ms[FLOOR] > 0)
        printf("# note\tcommand: bare posix_spawn + waitpid, 4 in flight, no capture: %.0f ms; cbx "
               "adds %.0f us per run on top\n",
               wall_ms[FLOOR], (wall_ms[CBX] - wall_ms[FLOOR]) * 1e3 / (double)n);
    return failed ? 1 : 0;
}
