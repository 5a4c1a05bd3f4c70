/* bench/bench_flow_scale.c - how a flow's cost grows with its number of steps: flat, chain and
 * random-DAG flows of 1,000 to 1,000,000 steps, through the library and through the command line.
 *
 * Shapes (every step `executor: chaos` with no rates set: a no-op that ends on the next turn of
 * the loop, so that what is measured is cbx's own cost per step):
 *   flat    no `needs`: every step independent (the flow's concurrency, 8, at once)
 *   chain   each step needs the one before it: one step at a time, N turns of the loop
 *   dag     each step after the first needs 1 to 3 steps picked at random (xorshift, fixed seed)
 *           among the 1,000 before it
 * Modes, each pass in a child process of its own, so that its peak memory (ru_maxrss) is its own:
 *   lib          cbx_flow_load of the file, then cbx_flow_run on a runtime without a journal;
 *                load and run are timed apart
 *   cli          `cbx run FILE --no-journal -q` (the command line built beside this binary)
 *   cli_journal  `cbx run FILE -q --state-dir DIR`, a fresh journal each pass
 * Each line gives ns per step for a case named flow.scale.<shape>.<steps>.<mode> (the wall time
 * of the pass / steps), for the pass of least CPU time (user + system, of the child and its
 * threads) among --runs: on a machine shared with other work the CPU time is the steadier
 * figure, and a note gives it. With --csv FILE every pass is also written as a row:
 * shape,steps,mode,load_s,run_s,wall_s,cpu_s,maxrss_kib,load_cpu_s,run_cpu_s (the load and run
 * columns for lib only; cpu_s includes the process's start and exit).
 * bench/flow_scale_plot turns the CSV into docs/flow_scale.png.
 *
 * Options: --max N (largest size, default 100000; 1000000 for the full table), --runs K
 * (default 3; one pass for sizes over 100,000), --case PREFIX (cases whose name starts so),
 * --csv FILE, --list. Every run must succeed with every step, or the bench fails (exit 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbx/flow.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"

#include "timing.h"

#ifndef CBX_BENCH_BUILD_TYPE
#define CBX_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef CBX_BENCH_CFLAGS
#define CBX_BENCH_CFLAGS ""
#endif

#define DAG_WINDOW 1000u

static const char *const shapes[] = {"flat", "chain", "dag"};
static const size_t sizes[] = {1000, 10000, 100000, 1000000};
static const char *const modes[] = {"lib", "cli", "cli_journal"};
enum { M_LIB, M_CLI, M_CLI_JOURNAL };

static int failed;

/* ---- the flow file ----------------------------------------------------------------------------
 */

static uint64_t rng;

static uint64_t rng_next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int write_flow(const char *path, const char *shape, size_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    rng = 0x9e3779b97f4a7c15ull;
    fprintf(f, "name: %s\nsteps:\n", shape);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "  - {name: s%zu, executor: chaos", i);
        if (strcmp(shape, "chain") == 0 && i > 0) {
            fprintf(f, ", needs: [s%zu]", i - 1);
        } else if (strcmp(shape, "dag") == 0 && i > 0) {
            size_t lo = i > DAG_WINDOW ? i - DAG_WINDOW : 0, want = 1 + rng_next() % 3, d[3];
            size_t got = 0;
            if (want > i - lo)
                want = i - lo;
            while (got < want) {
                size_t c = lo + rng_next() % (i - lo);
                int dup = 0;
                for (size_t k = 0; k < got; k++)
                    dup |= d[k] == c;
                if (!dup)
                    d[got++] = c;
            }
            for (size_t k = 0; k < got; k++)
                fprintf(f, "%ss%zu", k ? ", " : ", needs: [", d[k]);
            fprintf(f, "]");
        }
        fprintf(f, "}\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- a pass ---------------------------------------------------------------------------------- */

typedef struct pass {
    double load_s, run_s, wall_s, cpu_s, load_cpu_s, run_cpu_s;
    long maxrss_kib;
} pass;

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* In the child: load and run the flow, write "load_ns run_ns load_cpu_ns run_cpu_ns" to fd;
 * exit 0 when every step succeeded. */
static void lib_child(const char *path, size_t steps, int fd)
{
    cbx_registry *reg = NULL;
    cbx_runtime *rt = NULL;
    cbx_err err;
    if (cbx_registry_new(&reg, &err) != 0 ||
        cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg}, &err) != 0) {
        fprintf(stderr, "setup: %s\n", err.msg);
        _exit(1);
    }
    uint64_t c0 = cpu_ns(), t0 = bench_now_ns();
    cbx_flow *f = NULL;
    cbx_diag d = {0};
    if (cbx_flow_load(&f, path, reg, &d) != 0) {
        cbx_err first;
        cbx_diag_first(&d, &first);
        fprintf(stderr, "load: %s:%d: %s\n", first.where, first.line, first.msg);
        _exit(1);
    }
    uint64_t c1 = cpu_ns(), t1 = bench_now_ns();
    cbx_flow_result res;
    int rc = cbx_flow_run(rt, f, NULL, &res, &err);
    uint64_t c2 = cpu_ns(), t2 = bench_now_ns();
    int ok = rc == 0 && res.status == CBX_STATUS_SUCCESS && json_object_size(res.steps) == steps;
    if (!ok)
        fprintf(stderr, "run: %s: %s\n", cbx_status_name(res.status), res.error);
    char line[128];
    int len = snprintf(line, sizeof line, "%llu %llu %llu %llu\n", (unsigned long long)(t1 - t0),
                       (unsigned long long)(t2 - t1), (unsigned long long)(c1 - c0),
                       (unsigned long long)(c2 - c1));
    if (write(fd, line, (size_t)len) != len)
        ok = 0;
    _exit(ok ? 0 : 1); /* the pass ends here: what is freed at exit is no part of it */
}

static int run_pass(int mode, const char *cli, const char *path, const char *state, size_t steps,
                    pass *p)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    uint64_t t0 = bench_now_ns();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        if (mode == M_LIB)
            lib_child(path, steps, fds[1]);
        dup2(null, 2);
        if (mode == M_CLI)
            execl(cli, cli, "run", path, "--no-journal", "-q", (char *)NULL);
        else
            execl(cli, cli, "run", path, "-q", "--state-dir", state, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[128] = "";
    ssize_t got = 0, r;
    while ((r = read(fds[0], line + got, sizeof line - 1 - (size_t)got)) > 0)
        got += r;
    close(fds[0]);
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            return -1;
    uint64_t t1 = bench_now_ns();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    *p = (pass){.wall_s = (double)(t1 - t0) / 1e9,
                .cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
                .maxrss_kib = ru.ru_maxrss};
    unsigned long long load_ns = 0, run_ns = 0, load_cpu = 0, run_cpu = 0;
    if (mode == M_LIB) {
        if (sscanf(line, "%llu %llu %llu %llu", &load_ns, &run_ns, &load_cpu, &run_cpu) != 4)
            return -1;
        p->load_s = (double)load_ns / 1e9;
        p->run_s = (double)run_ns / 1e9;
        p->load_cpu_s = (double)load_cpu / 1e9;
        p->run_cpu_s = (double)run_cpu / 1e9;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- main -------------------------------------------------------------------------------------
 */

int main(int argc, char **argv)
{
    size_t max = 100000;
    int runs = 3, list = 0;
    const char *only = NULL, *csv_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
            max = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
            csv_path = argv[++i];
        else if (strcmp(argv[i], "--list") == 0)
            list = 1;
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            max = (size_t)strtoull(argv[++i], NULL, 10); /* bench/run's way to shrink a bench */
        else if (strcmp(argv[i], "--no-selftest") == 0)
            ;
        else {
            fprintf(stderr, "usage: bench_flow_scale [--max N] [--runs K] [--case PREFIX] "
                            "[--csv FILE] [--list]\n");
            return 2;
        }
    }
    if (runs < 1)
        runs = 1;
    char name[128];
    if (list) {
        for (size_t s = 0; s < 3; s++)
            for (size_t k = 0; k < 4; k++)
                for (size_t m = 0; m < 3; m++)
                    printf("flow.scale.%s.%zu.%s\n", shapes[s], sizes[k], modes[m]);
        return 0;
    }
    printf("# build\t%s\t%s\n", CBX_BENCH_BUILD_TYPE, CBX_BENCH_CFLAGS);
    printf("# runs\t%d\n", runs);
    signal(SIGPIPE, SIG_IGN);

    char cli[4200] = "";
    ssize_t len = readlink("/proc/self/exe", cli, sizeof cli - 16);
    char *slash = len > 0 ? memrchr(cli, '/', (size_t)len) : NULL;
    if (slash)
        snprintf(slash, sizeof cli - (size_t)(slash - cli), "/../cli/cbx");
    int have_cli = slash && access(cli, X_OK) == 0;
    if (!have_cli)
        printf("# note\tflow.scale: no cbx command line beside this binary; cli cases not "
               "measured\n");

    char dir[] = "/tmp/cbx_bench_flow_scale_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("# FAIL\tflow.scale: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    FILE *csv = csv_path ? fopen(csv_path, "w") : NULL;
    if (csv_path && !csv) {
        printf("# FAIL\tflow.scale: %s: %s\n", csv_path, strerror(errno));
        return 1;
    }
    if (csv)
        fprintf(csv,
                "shape,steps,mode,load_s,run_s,wall_s,cpu_s,maxrss_kib,load_cpu_s,run_cpu_s\n");

    for (size_t k = 0; k < 4 && !failed; k++) {
        size_t n = sizes[k];
        if (n > max)
            break;
        for (size_t s = 0; s < 3 && !failed; s++) {
            int any = 0;
            for (size_t m = 0; m < 3; m++) {
                snprintf(name, sizeof name, "flow.scale.%s.%zu.%s", shapes[s], n, modes[m]);
                any |= !only || strncmp(name, only, strlen(only)) == 0;
            }
            if (!any)
                continue;
            char path[4300];
            snprintf(path, sizeof path, "%s/%s%zu.yaml", dir, shapes[s], n);
            if (write_flow(path, shapes[s], n) < 0) {
                printf("# FAIL\tflow.scale: cannot write %s\n", path);
                failed = 1;
                break;
            }
            for (size_t m = 0; m < 3 && !failed; m++) {
                snprintf(name, sizeof name, "flow.scale.%s.%zu.%s", shapes[s], n, modes[m]);
                if (only && strncmp(name, only, strlen(only)) != 0)
                    continue;
                if (m != M_LIB && !have_cli)
                    continue;
                pass best = {0};
                int passes = n > 100000 ? 1 : runs;
                for (int r = 0; r < passes; r++) {
                    char state[4300];
                    snprintf(state, sizeof state, "%s/state%d", dir, r);
                    pass p;
                    if (run_pass((int)m, cli, path, state, n, &p) < 0) {
                        printf("# FAIL\t%s: the run did not succeed\n", name);
                        failed = 1;
                        break;
                    }
                    nftw(state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
                    if (csv)
                        fprintf(csv, "%s,%zu,%s,%.6f,%.6f,%.6f,%.6f,%ld,%.6f,%.6f\n", shapes[s], n,
                                modes[m], p.load_s, p.run_s, p.wall_s, p.cpu_s, p.maxrss_kib,
                                p.load_cpu_s, p.run_cpu_s);
                    if (!best.cpu_s || p.cpu_s < best.cpu_s)
                        best = p;
                }
                if (failed)
                    break;
                bench_emit(name, best.wall_s * 1e9 / (double)n, -1, n);
                if (m == M_LIB)
                    printf("# note\t%s: load %.3f s, run %.3f s; cpu: load %.3f s, run %.3f s "
                           "(%.2f us per step), all %.3f s; peak %.1f MiB\n",
                           name, best.load_s, best.run_s, best.load_cpu_s, best.run_cpu_s,
                           best.run_cpu_s * 1e6 / (double)n, best.cpu_s,
                           (double)best.maxrss_kib / 1024);
                else
                    printf("# note\t%s: %.3f s (%.2f us per step), cpu %.3f s, peak %.1f MiB\n",
                           name, best.wall_s, best.wall_s * 1e6 / (double)n, best.cpu_s,
                           (double)best.maxrss_kib / 1024);
                fflush(stdout);
                if (csv)
                    fflush(csv);
            }
            unlink(path);
        }
    }
    if (csv)
        fclose(csv);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? 1 : 0;
}
