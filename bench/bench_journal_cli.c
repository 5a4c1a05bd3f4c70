/* bench/bench_journal_cli.c - what the journal costs the cbx command, process by process.
 *
 * Each case runs the real `cbx` binary, with a fresh state directory of its own, and measures
 * it from outside (posix_spawn to waitpid), the journal on and off (--no-journal) in
 * alternating passes, best of --runs:
 *   journal.cli.exec.curve        --iters (default 10,000) consecutive `cbx exec -- true` on one
 *                                 state directory: two lines, .first and .last, the median ns
 *                                 per invocation of the first and of the last thousand; notes
 *                                 give the median of every thousand (wall and CPU), the last
 *                                 against the first (target: within 10%), and the WAL file's
 *                                 largest and last size (also "# journal.cli.wal_max_bytes").
 *                                 Then the same question without the machine's drift over the
 *                                 run: a copy of the state directory as it was after the first
 *                                 thousand and the full one, one invocation on each in turn,
 *                                 CURVE_PAIRS times: .small and .full, the median of each
 *   journal.cli.exec.nojournal    1,000 `cbx exec --no-journal -- true`: the median, for scale
 *   journal.cli.http.journal      `cbx exec http -p url=... --repeat N --parallel 64 -q`
 *   journal.cli.http.nojournal    (N = 20,000 GETs of the loopback server's /ok): ns per request
 *   journal.cli.batch.journal     `cbx run noop.yaml --batch items.jsonl --output /dev/null`, a
 *   journal.cli.batch.nojournal   flow of one chaos step (no delay) over 1,000 lines: ns per line
 *   journal.cli.batch10k.journal  the same over 10,000 lines (the start, the journal's open and
 *   journal.cli.batch10k.nojournal its close weigh a tenth as much)
 * A note gives journaled throughput as a fraction of unjournaled (target: at least 0.80).
 *   journal.cli.batch.full        the 10,000-line batch, journaled, on a journal at its bound
 *   journal.cli.batch.under       (CBX_JOURNAL_MAX_EXECUTIONS=FULL_BOUND, filled to it first:
 *                                 each run deletes as many executions, attempts and runs as
 *                                 it adds) and on an empty one with the same bound: ns per
 *                                 line; a note gives full against under (the deletions' cost;
 *                                 the count of what is kept must not weigh)
 *   journal.cli.exec.bound.small  `cbx exec -- true` on an empty journal and on one at the
 *   journal.cli.exec.bound.full   default bound (100,000 executions, filled by a batch), in
 *                                 turn, CURVE_PAIRS times: the median of each, and a note
 *
 * cbx is found through $CBX_CLI, else the path CMake compiled in; the HTTP server (the tests'
 * tests/helpers/http_server.c) through $CBX_HTTP_SERVER, else the compiled-in path. A missing one
 * skips its cases with a note. Every invocation must exit 0, or the run fails (exit 1). Speed is
 * reported, never asserted. Allocations are the child's: the column says "-".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

#define CURVE_DEFAULT  10000u
#define CURVE_BLOCK    1000u
#define CURVE_PAIRS    500u
#define HTTP_REQUESTS  20000u
#define BATCH_LINES    1000u
#define FULL_BOUND     20000u
#define BOUND_DEFAULT  100000u
#define NOJOURNAL_RUNS 1000u

extern char **environ;

static int failed;
static char cbx_path[PATH_MAX], server_path[PATH_MAX];
static char scratch[512]; /* the bench's temporary directory */
static char url[128];
static pid_t server_pid = -1;

/* ---- processes -------------------------------------------------------------------------- */

typedef struct ran {
    uint64_t wall_ns, cpu_ns; /* cpu: the child's user + system time, its own children included */
    int status;
} ran;

/* Run argv with stdin, stdout and stderr on /dev/null and CBX_STATE_DIR=state (NULL: unset);
 * returns 0 and fills *out, or -1 when it could not start. */
static int run_cmd(char *const argv[], const char *state, ran *out)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    if (state)
        setenv("CBX_STATE_DIR", state, 1);
    pid_t pid = -1;
    uint64_t t0 = bench_now_ns();
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    struct rusage ru;
    int st = 0;
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
        ;
    out->wall_ns = bench_now_ns() - t0;
    out->cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
                  ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
    out->status = st;
    return 0;
}

/* Run it and check that it exited 0; returns 0 or -1 (failed set, a # FAIL line printed). */
static int run_ok(const char *what, char *const argv[], const char *state, ran *out)
{
    if (run_cmd(argv, state, out) != 0) {
        printf("# FAIL\t%s: cannot start %s: %s\n", what, argv[0], strerror(errno));
        failed = 1;
        return -1;
    }
    if (!WIFEXITED(out->status) || WEXITSTATUS(out->status) != 0) {
        printf("# FAIL\t%s: %s exited with status 0x%x\n", what, argv[0], out->status);
        failed = 1;
        return -1;
    }
    return 0;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* A new empty directory under the scratch directory. */
static void fresh_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", scratch, name);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    if (system(cmd) != 0 || mkdir(out, 0700) != 0) {
        printf("# FAIL\tcannot make %s\n", out);
        failed = 1;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The median of n values (sorts them). */
static uint64_t median(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    return n ? v[n / 2] : 0;
}

static int find_exe(char *out, size_t len, const char *env, const char *built)
{
    const char *e = getenv(env);
    snprintf(out, len, "%s", e && *e ? e : built);
    return *out && access(out, X_OK) == 0 ? 0 : -1;
}

/* ---- the curve of consecutive invocations ----------------------------------------------- */

/* One invocation on the small journal, then one on the full one, CURVE_PAIRS times (wall and cpu
 * hold at least 2 * CURVE_PAIRS): a growth with the journal's size shows in their medians, the
 * machine's drift over the run does not. */
static void curve_pairs(const char *name, const char *small, const char *full, uint64_t *wall,
                        uint64_t *cpu, const char *small_what, const char *full_what)
{
    char *argv[] = {cbx_path, "exec", "--", "true", NULL};
    uint64_t *sw = wall, *sc = cpu, *fw = wall + CURVE_PAIRS, *fc = cpu + CURVE_PAIRS;
    for (size_t i = 0; i < CURVE_PAIRS; i++) {
        ran r;
        if (run_ok(name, argv, small, &r) != 0)
            return;
        sw[i] = r.wall_ns;
        sc[i] = r.cpu_ns;
        if (run_ok(name, argv, full, &r) != 0)
            return;
        fw[i] = r.wall_ns;
        fc[i] = r.cpu_ns;
    }
    uint64_t msw = median(sw, CURVE_PAIRS), msc = median(sc, CURVE_PAIRS);
    uint64_t mfw = median(fw, CURVE_PAIRS), mfc = median(fc, CURVE_PAIRS);
    printf("# note\t%s: in turn, %u pairs: on %s %.2f ms wall, %.2f ms CPU; on %s %.2f ms "
           "wall, %.2f ms CPU: %.3f wall, %.3f CPU (target: at most 1.10)\n",
           name, CURVE_PAIRS, small_what, (double)msw / 1e6, (double)msc / 1e6, full_what,
           (double)mfw / 1e6, (double)mfc / 1e6, (double)mfw / (double)msw,
           (double)mfc / (double)msc);
    char line[128];
    snprintf(line, sizeof line, "%s.small", name);
    bench_emit(line, (double)msw, -1, CURVE_PAIRS);
    snprintf(line, sizeof line, "%s.full", name);
    bench_emit(line, (double)mfw, -1, CURVE_PAIRS);
}

static void case_curve(const bench_args *a, const char *name)
{
    size_t n = a->iters ? (size_t)a->iters : CURVE_DEFAULT;
    if (n < 2 * CURVE_BLOCK)
        n = 2 * CURVE_BLOCK;
    char state[600], wal[PATH_MAX + 8], small[600], cmd[1300];
    fresh_dir(state, sizeof state, "curve");
    fresh_dir(small, sizeof small, "curve-small");
    snprintf(wal, sizeof wal, "%s/journal.db-wal", state);
    uint64_t *wall = malloc(n * sizeof *wall), *cpu = malloc(n * sizeof *cpu);
    if (!wall || !cpu) {
        free(wall);
        free(cpu);
        return;
    }
    char *argv[] = {cbx_path, "exec", "--", "true", NULL};
    long wal_max = 0;
    size_t done = 0;
    for (; done < n; done++) {
        ran r;
        if (run_ok(name, argv, state, &r) != 0)
            break;
        wall[done] = r.wall_ns;
        cpu[done] = r.cpu_ns;
        long w = file_size(wal);
        if (w > wal_max)
            wal_max = w;
        if (done + 1 == CURVE_BLOCK) {
            /* the journal as the first thousand left it, for the pairs below */
            snprintf(cmd, sizeof cmd, "cp -a '%s/.' '%s/'", state, small);
            if (system(cmd) != 0) {
                printf("# FAIL\t%s: cannot copy %s\n", name, state);
                failed = 1;
                break;
            }
        }
    }
    if (done == n) {
        uint64_t first_wall = 0, first_cpu = 0, last_wall = 0, last_cpu = 0;
        for (size_t b = 0; b + CURVE_BLOCK <= n; b += CURVE_BLOCK) {
            uint64_t mw = median(wall + b, CURVE_BLOCK), mc = median(cpu + b, CURVE_BLOCK);
            printf("# note\t%s: invocations %zu-%zu: median %.2f ms wall, %.2f ms CPU\n", name,
                   b + 1, b + CURVE_BLOCK, (double)mw / 1e6, (double)mc / 1e6);
            if (b == 0) {
                first_wall = mw;
                first_cpu = mc;
            }
            last_wall = mw;
            last_cpu = mc;
        }
        char db[700];
        snprintf(db, sizeof db, "%s/journal.db", state);
        printf("# note\t%s: %zu invocations; the last thousand against the first: %.3f wall, "
               "%.3f CPU (target: at most 1.10); WAL file at most %ld bytes, %ld at the end, "
               "database %ld bytes\n",
               name, n, (double)last_wall / (double)first_wall,
               (double)last_cpu / (double)first_cpu, wal_max, file_size(wal), file_size(db));
        printf("# journal.cli.wal_max_bytes\t%ld\n", wal_max);
        curve_pairs(name, small, state, wall, cpu, "the journal of the first thousand",
                    "the full one");
        char line[128];
        snprintf(line, sizeof line, "%s.first", name);
        bench_emit(line, (double)first_wall, -1, CURVE_BLOCK);
        snprintf(line, sizeof line, "%s.last", name);
        bench_emit(line, (double)last_wall, -1, CURVE_BLOCK);
    }
    free(wall);
    free(cpu);
}

static void case_exec_nojournal(const bench_args *a, const char *name)
{
    (void)a;
    char state[600];
    fresh_dir(state, sizeof state, "nojournal");
    uint64_t wall[NOJOURNAL_RUNS], cpu[NOJOURNAL_RUNS];
    char *argv[] = {cbx_path, "exec", "--no-journal", "--", "true", NULL};
    for (size_t i = 0; i < NOJOURNAL_RUNS; i++) {
        ran r;
        if (run_ok(name, argv, state, &r) != 0)
            return;
        wall[i] = r.wall_ns;
        cpu[i] = r.cpu_ns;
    }
    uint64_t mw = median(wall, NOJOURNAL_RUNS), mc = median(cpu, NOJOURNAL_RUNS);
    printf("# note\t%s: median %.2f ms wall, %.2f ms CPU per invocation\n", name, (double)mw / 1e6,
           (double)mc / 1e6);
    bench_emit(name, (double)mw, -1, NOJOURNAL_RUNS);
}

/* ---- journaled against unjournaled ------------------------------------------------------ */

/* Run argv (whose element at no_journal_at is "--no-journal" or a harmless "-q") --runs times
 * each way, alternating, each way on a state directory of its own; report the best of each as
 * ns per unit and the ratio of the rates. */
static void compare(const bench_args *a, const char *journal_name, const char *plain_name,
                    char **argv, int no_journal_at, uint64_t units, const char *unit)
{
    /* either name runs both: the ratio is the point */
    int want_j = bench_selected(a, journal_name) || bench_selected(a, plain_name), want_p = want_j;
    char sj[600], sp[600];
    fresh_dir(sj, sizeof sj, "with-journal");
    fresh_dir(sp, sizeof sp, "without");
    uint64_t best_j = 0, best_p = 0, cpu_j = 0, cpu_p = 0;
    char *keep = argv[no_journal_at];
    for (int i = 0; i < a->runs; i++) {
        ran r;
        if (want_j) {
            argv[no_journal_at] = "-q";
            if (run_ok(journal_name, argv, sj, &r) != 0)
                break;
            if (!best_j || r.wall_ns < best_j) {
                best_j = r.wall_ns;
                cpu_j = r.cpu_ns;
            }
        }
        if (want_p) {
            argv[no_journal_at] = "--no-journal";
            if (run_ok(plain_name, argv, sp, &r) != 0)
                break;
            if (!best_p || r.wall_ns < best_p) {
                best_p = r.wall_ns;
                cpu_p = r.cpu_ns;
            }
        }
    }
    argv[no_journal_at] = keep;
    if (best_j) {
        printf("# note\t%s: %.0f %ss per second, %.2f us CPU per %s\n", journal_name,
               (double)units * 1e9 / (double)best_j, unit, (double)cpu_j / 1e3 / (double)units,
               unit);
        bench_emit(journal_name, (double)best_j / (double)units, -1, units);
    }
    if (best_p) {
        printf("# note\t%s: %.0f %ss per second, %.2f us CPU per %s\n", plain_name,
               (double)units * 1e9 / (double)best_p, unit, (double)cpu_p / 1e3 / (double)units,
               unit);
        bench_emit(plain_name, (double)best_p / (double)units, -1, units);
    }
    if (best_j && best_p)
        printf("# note\t%s: journaled throughput %.2f of unjournaled (target: at least 0.80)\n",
               journal_name, (double)best_p / (double)best_j);
}

static int server_start(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    char *argv[] = {server_path, "--die-with-parent", NULL};
    int rc = posix_spawn(&server_pid, server_path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    FILE *f = rc == 0 ? fdopen(fds[0], "r") : NULL;
    int port = 0;
    if (!f || fscanf(f, "%d", &port) != 1) {
        printf("# FAIL\thttp: %s did not start or printed no port\n", server_path);
        failed = 1;
        if (f)
            fclose(f);
        else
            close(fds[0]);
        return -1;
    }
    fclose(f);
    snprintf(url, sizeof url, "url=http://127.0.0.1:%d/ok", port);
    return 0;
}

static void case_http(const bench_args *a, const char *name)
{
    (void)name;
    if (find_exe(server_path, sizeof server_path, "CBX_HTTP_SERVER",
#ifdef CBX_HTTP_SERVER
                 CBX_HTTP_SERVER
#else
                 ""
#endif
                 ) != 0) {
        printf("# note\thttp: no http_server (build the tests, or set CBX_HTTP_SERVER): "
               "skipped\n");
        return;
    }
    if (server_pid < 0 && server_start() != 0)
        return;
    char n[32];
    snprintf(n, sizeof n, "%u", HTTP_REQUESTS);
    char *argv[] = {cbx_path, "exec",       "http", "-p", url,  "--repeat",
                    n,        "--parallel", "64",   "-q", "-q", NULL};
    compare(a, "journal.cli.http.journal", "journal.cli.http.nojournal", argv, 10, HTTP_REQUESTS,
            "request");
}

/* The no-op flow and an items file of lines lines in the scratch directory: 0, or -1. */
static int batch_files(unsigned lines, char flow[PATH_MAX + 16], char items[PATH_MAX + 32])
{
    snprintf(flow, PATH_MAX + 16, "%s/noop.yaml", scratch);
    snprintf(items, PATH_MAX + 32, "%s/items-%u.jsonl", scratch, lines);
    FILE *f = fopen(flow, "w");
    if (!f)
        return -1;
    fputs("name: noop\ninputs:\n  - {name: n, type: integer, required: true}\nsteps:\n"
          "  - name: nothing\n    executor: chaos\n    config: {}\n",
          f);
    fclose(f);
    if (!(f = fopen(items, "w")))
        return -1;
    for (unsigned i = 1; i <= lines; i++)
        fprintf(f, "{\"n\": %u}\n", i);
    return fclose(f) == 0 ? 0 : -1;
}

/* lines: BATCH_LINES, or ten times as many (where the start and the journal's open and close
 * weigh less, and the queue fills) */
static void case_batch(const bench_args *a, const char *journal_name, const char *plain_name,
                       unsigned lines)
{
    char flow[PATH_MAX + 16], items[PATH_MAX + 32];
    if (batch_files(lines, flow, items) != 0)
        return;
    char *argv[] = {cbx_path, "run", flow, "--batch", items, "--output", "/dev/null", "-q", NULL};
    compare(a, journal_name, plain_name, argv, 7, lines, "line");
}

/* The 10,000-line batch on a journal at its bound (FULL_BOUND executions, filled first with a
 * batch of as many lines), then on an empty one with the same bound, in turn, --runs times. */
static void case_full(const bench_args *a, const char *full_name, const char *under_name)
{
    char flow[PATH_MAX + 16], items[PATH_MAX + 32], fill[PATH_MAX + 32];
    if (batch_files(FULL_BOUND, flow, fill) != 0 || batch_files(10 * BATCH_LINES, flow, items) != 0)
        return;
    char bound[16], sf[600], su[600];
    snprintf(bound, sizeof bound, "%u", FULL_BOUND);
    setenv("CBX_JOURNAL_MAX_EXECUTIONS", bound, 1);
    fresh_dir(sf, sizeof sf, "full");
    char *argv_fill[] = {cbx_path,   "run",       flow, "--batch", fill,
                         "--output", "/dev/null", "-q", NULL};
    char *argv[] = {cbx_path, "run", flow, "--batch", items, "--output", "/dev/null", "-q", NULL};
    uint64_t best_f = 0, best_u = 0;
    ran r;
    if (run_ok(full_name, argv_fill, sf, &r) == 0) {
        for (int i = 0; i < a->runs; i++) {
            if (run_ok(full_name, argv, sf, &r) != 0)
                break;
            if (!best_f || r.wall_ns < best_f)
                best_f = r.wall_ns;
            fresh_dir(su, sizeof su, "under");
            if (run_ok(under_name, argv, su, &r) != 0)
                break;
            if (!best_u || r.wall_ns < best_u)
                best_u = r.wall_ns;
        }
    }
    unsetenv("CBX_JOURNAL_MAX_EXECUTIONS");
    if (!best_f || !best_u)
        return;
    uint64_t lines = 10 * BATCH_LINES;
    bench_emit(full_name, (double)best_f / (double)lines, -1, lines);
    bench_emit(under_name, (double)best_u / (double)lines, -1, lines);
    printf("# note\t%s: %.2f us per line at the bound of %u executions, %.2f us under it: "
           "%.2f times\n",
           full_name, (double)best_f / 1e3 / (double)lines, FULL_BOUND,
           (double)best_u / 1e3 / (double)lines, (double)best_f / (double)best_u);
}

/* cbx exec -- true on a journal at its default bound (100,000 executions, a batch of as many
 * lines first) and on an empty one, in turn, CURVE_PAIRS times. */
static void case_exec_bound(const bench_args *a, const char *name)
{
    (void)a;
    char flow[PATH_MAX + 16], fill[PATH_MAX + 32], full[600], empty[600];
    if (batch_files(BOUND_DEFAULT, flow, fill) != 0)
        return;
    fresh_dir(full, sizeof full, "bound");
    fresh_dir(empty, sizeof empty, "bound-empty");
    char *argv_fill[] = {cbx_path,   "run",       flow, "--batch", fill,
                         "--output", "/dev/null", "-q", NULL};
    ran r;
    if (run_ok(name, argv_fill, full, &r) != 0)
        return;
    uint64_t *wall = malloc(2 * CURVE_PAIRS * sizeof *wall),
             *cpu = malloc(2 * CURVE_PAIRS * sizeof *cpu);
    if (wall && cpu)
        curve_pairs(name, empty, full, wall, cpu, "an empty journal",
                    "one at its bound of 100,000 executions");
    free(wall);
    free(cpu);
}

static const char *const names[] = {
    "journal.cli.exec.nojournal",   "journal.cli.http.journal",       "journal.cli.http.nojournal",
    "journal.cli.batch.journal",    "journal.cli.batch.nojournal",    "journal.cli.exec.curve",
    "journal.cli.batch10k.journal", "journal.cli.batch10k.nojournal", "journal.cli.batch.full",
    "journal.cli.batch.under",      "journal.cli.exec.bound"};

int main(int argc, char **argv)
{
    bench_args a;
    int rc = bench_start(argc, argv, "bench_journal_cli", names, sizeof names / sizeof names[0], 0,
                         NULL, alloc_count_selftest, &a);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    if (find_exe(cbx_path, sizeof cbx_path, "CBX_CLI",
#ifdef CBX_CLI
                 CBX_CLI
#else
                 ""
#endif
                 ) != 0) {
        printf("# note\tjournal.cli: no cbx binary (build cli/, or set CBX_CLI): skipped\n");
        return 0;
    }
    snprintf(scratch, sizeof scratch, "%s/cbx-bench-journal-cli-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(scratch)) {
        printf("# FAIL\tcannot make a scratch directory: %s\n", strerror(errno));
        return 1;
    }
    unsetenv("CBX_PLUGIN_PATH");
    unsetenv("CBX_LUA_PATH");
    printf("# note\tjournal.cli: %s\n", cbx_path);
    if (bench_selected(&a, names[0]))
        case_exec_nojournal(&a, names[0]);
    if (bench_selected(&a, names[1]) || bench_selected(&a, names[2]))
        case_http(&a, names[1]);
    if (bench_selected(&a, names[3]) || bench_selected(&a, names[4]))
        case_batch(&a, names[3], names[4], BATCH_LINES);
    if (bench_selected(&a, names[6]) || bench_selected(&a, names[7]))
        case_batch(&a, names[6], names[7], 10 * BATCH_LINES);
    if (bench_selected(&a, names[8]) || bench_selected(&a, names[9]))
        case_full(&a, names[8], names[9]);
    if (bench_selected(&a, names[10]))
        case_exec_bound(&a, names[10]);
    if (bench_selected(&a, names[5]))
        case_curve(&a, names[5]);
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    if (system(cmd) != 0)
        printf("# note\tcould not remove %s\n", scratch);
    return failed ? 1 : 0;
}
