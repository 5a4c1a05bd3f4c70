/* bench/bench_flow.c - flows: a DAG of `true` commands beside make and ninja running the same
 * graph, and the runner's own cost per step on no-op function steps.
 *
 * The DAG: 2,000 nodes in 40 layers of 50, each node of a layer after the first waiting for 1
 * to 3 nodes of the layer before it and, one time in four, for a node of an earlier layer
 * (xorshift with a fixed seed, so every run builds the same graph). It is written three ways in
 * a temporary directory, and each runs a process per node, 4 at a time:
 *   flow.dag2000.cbx_cli      `cbx run dag.yaml -q --state-dir DIR` (the command line built
 *                             beside this binary, ../cli/cbx), a process per pass like make
 *                             and ninja: it checks the file, journals the run and each step
 *   flow.dag2000.cbx          the flow (YAML: `executor: command`, argv [true], `needs:`,
 *                             concurrency 4) loaded with cbx_flow_load and run with cbx_flow_run
 *                             on a runtime with a journal, as `cbx run` does (load and run
 *                             timed; the runtime and journal are opened once)
 *   flow.dag2000.cbx_nojournal  the same on a runtime without a journal
 *   flow.dag2000.make         make -j4 -s on a Makefile of .PHONY targets whose recipe is
 *                             `true` (GNU make runs it without a shell)
 *   flow.dag2000.ninja        ninja -j4 on a build.ninja whose rule's command is `true` (run by
 *                             /bin/sh -c); the outputs are never made, so every pass runs all
 * Each line gives ns per node (wall time of a pass / nodes); the passes alternate between the
 * contenders, and the best of --runs is kept. Before timing, make -n and ninja -n must list every
 * node, and every cbx run must succeed with every step, or the bench fails (exit 1). A "# note"
 * gives the wall times and cbx's ratio to ninja (target: at most 1.2x).
 *
 * The runner's overhead: 10,000 steps of the `function` executor calling a registered no-op
 * (CBX_FUNCTION_INLINE: it runs on the loop thread), no journal unless said:
 *   flow.noop10k.run          independent steps, the default concurrency (8): cbx_flow_run only
 *   flow.noop10k.chain        each step needing the one before it (one step at a time)
 *   flow.noop1k.journal       1,000 independent steps with a journal: the run, each step's start
 *                             and end written into the journal's batches, each step's outcome
 *                             used only once its end has committed (docs/flows.md, "The journal")
 *   flow.noop10k.load         cbx_flow_load_string of the 10,000-step file (YAML and checks)
 * Each gives ns per step; the target is at most 20 us per step for flow.noop10k.run. A note
 * gives the allocations per step.
 *
 * --iters N (when smaller than a case's size) shrinks the graphs for a quick look. Processes and
 * executions allocate by design: the allocs column says "-". Under valgrind nothing is measured.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "cbx/flow.h"
#include "cbx/function.h"
#include "cbx/journal.h"
#include "cbx/registry.h"
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

#define DAG_NODES  2000u
#define DAG_WIDTH  50u
#define JOBS       4
#define NOOP_STEPS 10000u
#define BUDGET_NS  20000000000ull /* passes of one case stop once it has run this long */

extern char **environ;

static int failed;

enum {
    DAG_CLI,
    DAG_CBX,
    DAG_CBX_NOJ,
    DAG_MAKE,
    DAG_NINJA,
    NOOP_RUN,
    NOOP_CHAIN,
    NOOP_JOURNAL,
    NOOP_LOAD,
    NCASES
};
static const char *const names[NCASES] = {
    "flow.dag2000.cbx_cli", "flow.dag2000.cbx",    "flow.dag2000.cbx_nojournal",
    "flow.dag2000.make",    "flow.dag2000.ninja",  "flow.noop10k.run",
    "flow.noop10k.chain",   "flow.noop1k.journal", "flow.noop10k.load"};

/* ---- text buffers and files ----------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            fprintf(stderr, "bench_flow: vsnprintf failed\n");
            exit(1);
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1 << 16;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "bench_flow: out of memory\n");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
}

static int write_file(const char *dir, const char *name, const buf *b)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(b->p, 1, b->len, f) != b->len) {
        printf("# FAIL\tflow: cannot write %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- the DAG ------------------------------------------------------------------------------------
 */

typedef struct dag {
    size_t n;
    size_t *deps; /* n * 4 slots */
    size_t *ndeps;
    size_t edges;
} dag;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void dag_build(dag *g, size_t n)
{
    g->n = n;
    g->deps = calloc(n * 4, sizeof *g->deps);
    g->ndeps = calloc(n, sizeof *g->ndeps);
    if (!g->deps || !g->ndeps) {
        fprintf(stderr, "bench_flow: out of memory\n");
        exit(1);
    }
    g->edges = 0;
    for (size_t i = DAG_WIDTH; i < n; i++) {
        size_t layer = i / DAG_WIDTH, prev = (layer - 1) * DAG_WIDTH;
        size_t want = 1 + rng_next() % 3;
        while (g->ndeps[i] < want) {
            size_t d = prev + rng_next() % DAG_WIDTH;
            int dup = 0;
            for (size_t k = 0; k < g->ndeps[i]; k++)
                dup |= g->deps[i * 4 + k] == d;
            if (!dup)
                g->deps[i * 4 + g->ndeps[i]++] = d;
        }
        if (layer >= 2 && rng_next() % 4 == 0)
            g->deps[i * 4 + g->ndeps[i]++] = rng_next() % prev;
        g->edges += g->ndeps[i];
    }
}

static void dag_free(dag *g)
{
    free(g->deps);
    free(g->ndeps);
}

static void dag_write_yaml(const dag *g, buf *b)
{
    bprintf(b, "name: dag\nconcurrency: %d\nsteps:\n", JOBS);
    for (size_t i = 0; i < g->n; i++) {
        bprintf(b, "  - {name: n%04zu, executor: command, config: {argv: [\"true\"]}", i);
        for (size_t k = 0; k < g->ndeps[i]; k++)
            bprintf(b, "%sn%04zu", k ? ", " : ", needs: [", g->deps[i * 4 + k]);
        bprintf(b, "%s}\n", g->ndeps[i] ? "]" : "");
    }
}

static void dag_write_make(const dag *g, buf *b)
{
    bprintf(b, ".PHONY: all");
    for (size_t i = 0; i < g->n; i++)
        bprintf(b, " n%04zu", i);
    bprintf(b, "\nall:");
    for (size_t i = 0; i < g->n; i++)
        bprintf(b, " n%04zu", i);
    bprintf(b, "\n");
    for (size_t i = 0; i < g->n; i++) {
        bprintf(b, "n%04zu:", i);
        for (size_t k = 0; k < g->ndeps[i]; k++)
            bprintf(b, " n%04zu", g->deps[i * 4 + k]);
        bprintf(b, "\n\ttrue\n");
    }
}

static void dag_write_ninja(const dag *g, buf *b)
{
    bprintf(b, "rule t\n  command = true\n");
    for (size_t i = 0; i < g->n; i++) {
        bprintf(b, "build n%04zu: t", i);
        for (size_t k = 0; k < g->ndeps[i]; k++)
            bprintf(b, " n%04zu", g->deps[i * 4 + k]);
        bprintf(b, "\n");
    }
}

/* ---- peers ------------------------------------------------------------------------------------
 */

/* Run argv with stdout to out_path (or /dev/null) and stderr to /dev/null; wall ns, or 0 when
 * it could not start or did not exit 0. */
static uint64_t spawn_pass(char *const argv[], const char *out_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null",
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    uint64_t t0 = bench_now_ns();
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return 0;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 0;
    uint64_t t1 = bench_now_ns();
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t1 - t0 : 0;
}

static size_t count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char b[4096];
    for (const char *p = path ? path : "/usr/bin:/bin"; p && *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(b, sizeof b, "%.*s/%s", (int)len, p, prog);
        if (access(b, X_OK) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* ---- cbx ----------------------------------------------------------------------------------------
 */

static int check_result(const char *name, int rc, const cbx_flow_result *res, size_t steps)
{
    if (rc != 0 || res->status != CBX_STATUS_SUCCESS) {
        printf("# FAIL\t%s: %s: %s\n", name, cbx_status_name(res->status), res->error);
        return -1;
    }
    if (json_object_size(res->steps) != steps) {
        printf("# FAIL\t%s: %zu steps in the result, %zu expected\n", name,
               json_object_size(res->steps), steps);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(res->steps, k, v)
    {
        const char *st = json_string_value(json_object_get(v, "status"));
        if (!st || strcmp(st, "success") != 0) {
            printf("# FAIL\t%s: step %s: %s\n", name, k, st ? st : "no status");
            return -1;
        }
    }
    return 0;
}

/* Load the file and run it; wall ns of both, or 0 on failure. */
static uint64_t cbx_dag_pass(const char *name, cbx_runtime *rt, cbx_registry *reg, const char *path,
                             size_t nodes, uint64_t *load_ns)
{
    uint64_t t0 = bench_now_ns();
    cbx_flow *f = NULL;
    cbx_diag d = {0};
    if (cbx_flow_load(&f, path, reg, &d) != 0) {
        cbx_err first;
        cbx_diag_first(&d, &first);
        printf("# FAIL\t%s: load: %s:%d:%d: %s\n", name, first.where, first.line, first.col,
               first.msg);
        cbx_diag_clear(&d);
        return 0;
    }
    uint64_t t1 = bench_now_ns();
    cbx_flow_result res;
    cbx_err err;
    int rc = cbx_flow_run(rt, f, NULL, &res, &err);
    uint64_t t2 = bench_now_ns();
    int bad = check_result(name, rc, &res, nodes);
    cbx_flow_result_clear(&res);
    cbx_flow_free(f);
    if (load_ns)
        *load_ns = t1 - t0;
    return bad ? 0 : t2 - t0;
}

static cbx_outcome flow_noop(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)input;
    (void)output;
    (void)t;
    (void)ud;
    return CBX_OUTCOME_SUCCESS;
}

static void noop_write_yaml(buf *b, size_t n, int chain)
{
    bprintf(b, "name: noop\nsteps:\n");
    for (size_t i = 0; i < n; i++) {
        bprintf(b, "  - {name: s%05zu, executor: function, config: {name: flow_noop}", i);
        if (chain && i > 0)
            bprintf(b, ", needs: [s%05zu]", i - 1);
        bprintf(b, "}\n");
    }
}

static cbx_flow *load_text(const char *name, cbx_registry *reg, const buf *b)
{
    cbx_flow *f = NULL;
    cbx_diag d = {0};
    if (cbx_flow_load_string(&f, b->p, b->len, "noop.yaml", reg, &d) != 0) {
        cbx_err first;
        cbx_diag_first(&d, &first);
        printf("# FAIL\t%s: load: %s:%d:%d: %s\n", name, first.where, first.line, first.col,
               first.msg);
        cbx_diag_clear(&d);
        failed = 1;
        return NULL;
    }
    return f;
}

/* Run f; wall ns of cbx_flow_run, or 0 on failure. */
static uint64_t cbx_noop_pass(const char *name, cbx_runtime *rt, cbx_flow *f, size_t steps,
                              uint64_t *allocs)
{
    cbx_flow_result res;
    cbx_err err;
    uint64_t a0 = alloc_count_total();
    uint64_t t0 = bench_now_ns();
    int rc = cbx_flow_run(rt, f, NULL, &res, &err);
    uint64_t t1 = bench_now_ns();
    if (allocs)
        *allocs = alloc_count_total() - a0;
    int bad = check_result(name, rc, &res, steps);
    cbx_flow_result_clear(&res);
    return bad ? 0 : t1 - t0;
}

/* Per case: the best timed pass, the warm-up's time, passes made, time spent so far. */
static uint64_t best[NCASES], warm[NCASES], spent[NCASES];
static int passes[NCASES];

/* Whether case c makes pass r (r < 0: the warm-up): every pass while the case has run for less
 * than BUDGET_NS in all, so that a pathologically slow case cannot hold the run for minutes. */
static int due(int c, int r)
{
    return r < 0 || spent[c] < BUDGET_NS;
}

/* Record a pass of case c; ns 0 = it failed. Returns 1 when it was the best so far. */
static int record(int c, int r, uint64_t ns)
{
    spent[c] += ns;
    if (!ns)
        return 0;
    if (r < 0) {
        warm[c] = ns;
        return 0;
    }
    passes[c]++;
    if (best[c] && ns >= best[c])
        return 0;
    best[c] = ns;
    return 1;
}

/* ---- main ---------------------------------------------------------------------------------------
 */

int main(int argc, char **argv)
{
    bench_args a;
    if (bench_args_parse(&a, argc, argv) != 0)
        return 2;
    if (a.list) {
        for (int i = 0; i < NCASES; i++)
            printf("%s\n", names[i]);
        return 0;
    }
    if (RUNNING_ON_VALGRIND) {
        printf("# note\tflow: not run under valgrind (processes and executions allocate by "
               "design)\n");
        return 0;
    }
    if (!a.no_selftest && alloc_count_selftest() != 0) {
        fprintf(stderr, "bench_flow: the counting allocator is not in effect\n");
        return 3;
    }
    signal(SIGPIPE, SIG_IGN);
    int sel[NCASES], any = 0;
    for (int i = 0; i < NCASES; i++)
        any |= sel[i] = bench_selected(&a, names[i]);
    if (!any) {
        fprintf(stderr, "bench_flow: no case named %s\n", a.only);
        return 2;
    }
    size_t nodes = a.iters && a.iters < DAG_NODES ? (size_t)a.iters : DAG_NODES;
    size_t steps = a.iters && a.iters < NOOP_STEPS ? (size_t)a.iters : NOOP_STEPS;
    if (nodes < DAG_WIDTH)
        nodes = DAG_WIDTH;
    size_t jsteps = steps / 10 ? steps / 10 : 1;
    printf("# build\t%s\t%s\n", CBX_BENCH_BUILD_TYPE, CBX_BENCH_CFLAGS);
    printf("# compiler\t%s\n", CBX_BENCH_COMPILER);
    printf("# runs\t%d\n", a.runs);

    char dir[] = "/tmp/cbx_bench_flow_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("# FAIL\tflow: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    cbx_registry *reg = NULL;
    cbx_journal *journal = NULL;
    cbx_runtime *rt = NULL, *rt_j = NULL;
    cbx_err err;
    char path[4200];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    cbx_journal_opts jo = {.path = path};
    cbx_function_def noop_def = {.call = flow_noop, .flags = CBX_FUNCTION_INLINE};
    if (cbx_registry_new(&reg, &err) != 0 || cbx_journal_open(&journal, &jo, &err) != 0 ||
        cbx_function_register(reg, "flow_noop", &noop_def, &err) != 0) {
        printf("# FAIL\tflow: setup: %s\n", err.msg);
        return 1;
    }
    cbx_runtime_opts ro = {.registry = reg};
    cbx_runtime_opts ro_j = {.registry = reg, .journal = journal};
    if (cbx_runtime_new(&rt, &ro, &err) != 0 || cbx_runtime_new(&rt_j, &ro_j, &err) != 0) {
        printf("# FAIL\tflow: cbx_runtime_new: %s\n", err.msg);
        return 1;
    }

    double allocs_per_step = -1;
    uint64_t load_best = 0;

    /* ---- the DAG ---- */
    if (sel[DAG_CLI] || sel[DAG_CBX] || sel[DAG_CBX_NOJ] || sel[DAG_MAKE] || sel[DAG_NINJA]) {
        dag g;
        dag_build(&g, nodes);
        buf y = {0}, m = {0}, nj = {0};
        dag_write_yaml(&g, &y);
        dag_write_make(&g, &m);
        dag_write_ninja(&g, &nj);
        if (write_file(dir, "dag.yaml", &y) || write_file(dir, "Makefile", &m) ||
            write_file(dir, "build.ninja", &nj))
            failed = 1;
        printf("# note\tflow.dag2000: %zu nodes in %zu layers of %u, %zu edges, %d jobs at "
               "once\n",
               g.n, (g.n + DAG_WIDTH - 1) / DAG_WIDTH, DAG_WIDTH, g.edges, JOBS);
        free(y.p);
        free(m.p);
        free(nj.p);
        dag_free(&g);

        char yaml[4200], mk[4200], out[4200], jobs[8];
        snprintf(yaml, sizeof yaml, "%s/dag.yaml", dir);
        snprintf(mk, sizeof mk, "%s/Makefile", dir);
        snprintf(out, sizeof out, "%s/dry_run.txt", dir);
        snprintf(jobs, sizeof jobs, "-j%d", JOBS);
        char *make_argv[] = {"make", jobs, "-s", "-f", mk, "-C", dir, NULL};
        char *make_dry[] = {"make", "-n", "-f", mk, "-C", dir, NULL};
        char *ninja_argv[] = {"ninja", jobs, "-C", dir, NULL};
        char *ninja_dry[] = {"ninja", "-n", "-C", dir, NULL};
        char cli[4200] = "";
        ssize_t len = readlink("/proc/self/exe", cli, sizeof cli - 16);
        char *slash = len > 0 ? memrchr(cli, '/', (size_t)len) : NULL;
        if (slash)
            snprintf(slash, sizeof cli - (size_t)(slash - cli), "/../cli/cbx");
        if (sel[DAG_CLI] && (!slash || access(cli, X_OK) != 0)) {
            printf("# note\t%s: no cbx command line beside this binary; not measured\n",
                   names[DAG_CLI]);
            sel[DAG_CLI] = 0;
        }
        char *cli_argv[] = {cli, "run", yaml, "-q", "--state-dir", dir, NULL};
        char ninja_log[4200];
        snprintf(ninja_log, sizeof ninja_log, "%s/.ninja_log", dir);
        if (sel[DAG_MAKE] && !on_path("make")) {
            printf("# note\t%s: make is not installed; not measured\n", names[DAG_MAKE]);
            sel[DAG_MAKE] = 0;
        }
        if (sel[DAG_NINJA] && !on_path("ninja")) {
            printf("# note\t%s: ninja is not installed; not measured\n", names[DAG_NINJA]);
            sel[DAG_NINJA] = 0;
        }
        /* the peers really run every node: their dry runs list each once */
        if (sel[DAG_MAKE] && !failed &&
            (!spawn_pass(make_dry, out) || count_lines(out, "true") != nodes)) {
            printf("# FAIL\t%s: make -n lists %zu commands, %zu expected\n", names[DAG_MAKE],
                   count_lines(out, "true"), nodes);
            failed = 1;
        }
        if (sel[DAG_NINJA] && !failed &&
            (!spawn_pass(ninja_dry, out) || count_lines(out, "] true") != nodes)) {
            printf("# FAIL\t%s: ninja -n lists %zu commands, %zu expected\n", names[DAG_NINJA],
                   count_lines(out, "] true"), nodes);
            failed = 1;
        }
        /* a warm-up of each, then passes in turn */
        for (int r = -1; r < a.runs && !failed; r++) {
            uint64_t ns;
            if (sel[DAG_CLI] && due(DAG_CLI, r)) {
                ns = spawn_pass(cli_argv, NULL);
                if (!ns) {
                    printf("# FAIL\t%s: cbx run did not run to success\n", names[DAG_CLI]);
                    failed = 1;
                }
                record(DAG_CLI, r, ns);
            }
            if (sel[DAG_CBX] && due(DAG_CBX, r)) {
                uint64_t load_ns = 0;
                ns = cbx_dag_pass(names[DAG_CBX], rt_j, reg, yaml, nodes, &load_ns);
                failed |= ns == 0;
                if (record(DAG_CBX, r, ns) || (r < 0 && !load_best))
                    load_best = load_ns;
            }
            if (sel[DAG_CBX_NOJ] && due(DAG_CBX_NOJ, r)) {
                ns = cbx_dag_pass(names[DAG_CBX_NOJ], rt, reg, yaml, nodes, NULL);
                failed |= ns == 0;
                record(DAG_CBX_NOJ, r, ns);
            }
            if (sel[DAG_MAKE] && due(DAG_MAKE, r)) {
                ns = spawn_pass(make_argv, NULL);
                if (!ns) {
                    printf("# FAIL\t%s: make did not run to success\n", names[DAG_MAKE]);
                    failed = 1;
                }
                record(DAG_MAKE, r, ns);
            }
            if (sel[DAG_NINJA] && due(DAG_NINJA, r)) {
                unlink(ninja_log);
                ns = spawn_pass(ninja_argv, NULL);
                if (!ns) {
                    printf("# FAIL\t%s: ninja did not run to success\n", names[DAG_NINJA]);
                    failed = 1;
                }
                record(DAG_NINJA, r, ns);
            }
        }
    }

    /* ---- no-op function steps ---- */
    if (!failed && (sel[NOOP_RUN] || sel[NOOP_CHAIN] || sel[NOOP_JOURNAL] || sel[NOOP_LOAD])) {
        buf indep = {0}, chain = {0}, small = {0};
        noop_write_yaml(&indep, steps, 0);
        noop_write_yaml(&chain, steps, 1);
        noop_write_yaml(&small, jsteps, 0);
        for (int r = 0; sel[NOOP_LOAD] && r < a.runs && !failed && due(NOOP_LOAD, r); r++) {
            uint64_t t0 = bench_now_ns();
            cbx_flow *f = load_text(names[NOOP_LOAD], reg, &indep);
            uint64_t t1 = bench_now_ns();
            cbx_flow_free(f);
            record(NOOP_LOAD, r, f ? t1 - t0 : 0);
        }
        cbx_flow *fi = load_text(names[NOOP_RUN], reg, &indep);
        cbx_flow *fc = load_text(names[NOOP_CHAIN], reg, &chain);
        cbx_flow *fs = load_text(names[NOOP_JOURNAL], reg, &small);
        for (int r = -1; r < a.runs && !failed && fi && fc && fs; r++) {
            uint64_t ns, allocs = 0;
            if (sel[NOOP_RUN] && due(NOOP_RUN, r)) {
                ns = cbx_noop_pass(names[NOOP_RUN], rt, fi, steps, &allocs);
                failed |= ns == 0;
                if (record(NOOP_RUN, r, ns))
                    allocs_per_step = (double)allocs / (double)steps;
            }
            if (sel[NOOP_CHAIN] && due(NOOP_CHAIN, r)) {
                ns = cbx_noop_pass(names[NOOP_CHAIN], rt, fc, steps, NULL);
                failed |= ns == 0;
                record(NOOP_CHAIN, r, ns);
            }
            if (sel[NOOP_JOURNAL] && due(NOOP_JOURNAL, r)) {
                ns = cbx_noop_pass(names[NOOP_JOURNAL], rt_j, fs, jsteps, NULL);
                failed |= ns == 0;
                record(NOOP_JOURNAL, r, ns);
            }
        }
        cbx_flow_free(fi);
        cbx_flow_free(fc);
        cbx_flow_free(fs);
        free(indep.p);
        free(chain.p);
        free(small.p);
    }

    /* a case so slow that only its warm-up ran reports the warm-up */
    for (int i = 0; i < NCASES; i++)
        if (!best[i] && warm[i] && !failed) {
            best[i] = warm[i];
            printf("# note\t%s: one pass only (%.1f s; passes stop after %.0f s in all)\n",
                   names[i], (double)warm[i] / 1e9, (double)BUDGET_NS / 1e9);
        } else if (passes[i] > 0 && passes[i] < a.runs) {
            printf("# note\t%s: best of %d passes, not %d (a pass took %.1f s; passes stop "
                   "after %.0f s in all)\n",
                   names[i], passes[i], a.runs, (double)best[i] / 1e9, (double)BUDGET_NS / 1e9);
        }
    for (int i = 0; i < NCASES; i++) {
        if (!best[i])
            continue;
        size_t n = i <= DAG_NINJA ? nodes : i == NOOP_JOURNAL ? jsteps : steps;
        bench_emit(names[i], (double)best[i] / (double)n, -1, n);
    }
    double ms[NCASES];
    for (int i = 0; i < NCASES; i++)
        ms[i] = (double)best[i] / 1e6;
    if (best[DAG_NINJA])
        printf("# note\tflow.dag2000: ninja -j%d %.0f ms, make -j%d %.0f ms; cbx run %.0f ms "
               "(%.2fx ninja's time; target: at most 1.2x); through the library with the "
               "journal %.0f ms (%.2fx; loading the flow %.0f ms of it), without it %.0f ms "
               "(%.2fx)\n",
               JOBS, ms[DAG_NINJA], JOBS, ms[DAG_MAKE], ms[DAG_CLI], ms[DAG_CLI] / ms[DAG_NINJA],
               ms[DAG_CBX], ms[DAG_CBX] / ms[DAG_NINJA], (double)load_best / 1e6, ms[DAG_CBX_NOJ],
               ms[DAG_CBX_NOJ] / ms[DAG_NINJA]);
    if (best[NOOP_RUN])
        printf("# note\tflow.noop10k: %zu no-op function steps: run %.1f ms (%.2f us per step, "
               "target at most 20 us; %.1f allocations per step); as a chain %.2f us per step; "
               "with a journal (%zu steps) %.2f us per step; loading the file %.2f us per step\n",
               steps, ms[NOOP_RUN], (double)best[NOOP_RUN] / 1e3 / (double)steps, allocs_per_step,
               (double)best[NOOP_CHAIN] / 1e3 / (double)steps, jsteps,
               (double)best[NOOP_JOURNAL] / 1e3 / (double)jsteps,
               (double)best[NOOP_LOAD] / 1e3 / (double)steps);

    cbx_runtime_free(rt);
    cbx_runtime_free(rt_j);
    cbx_journal_close(journal);
    cbx_function_unregister_all(reg);
    cbx_registry_free(reg);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? 1 : 0;
}
