/* bench/bench_journal.c - cost of journaling one execution.
 *
 * One call = what the runtime writes for an execution with one attempt:
 * cbx_journal_execution_start (params of a command), cbx_journal_attempt (metadata),
 * cbx_journal_execution_end (outputs). Cases (lines "name<TAB>ns_per_call<TAB>allocs_per_call
 * <TAB>calls_per_run", see timing.h):
 *   journal.exec.memory          an in-memory database (":memory:"): SQLite and JSON alone
 *   journal.exec.file            a WAL file on disk, writes batched as the journal does by
 *                                default (a commit every 5 ms or 4096 writes)
 *   journal.exec.file.v7ids      the same with time-ordered (version 7) execution ids instead
 *                                of random (version 4) ones
 *   journal.exec.file.redacted   the same with params holding an Authorization header and a
 *                                secret environment variable (redaction makes a copy)
 *   journal.exec.file.flush_each the same as .file with cbx_journal_flush after every
 *                                execution: one commit each, the cost batching saves
 *   journal.exec.file.reopen     the same as .file with the journal closed and opened again
 *                                around every execution: what one `cbx exec` pays for its
 *                                journal (the WAL left by the last close read again, the
 *                                schema checked, statements prepared, one commit)
 *
 * The default retention (100,000 executions, checked every 1,000 writes) applies, so the
 * figures include pruning once the table is full. The file lives in $CBX_BENCH_TMPDIR (default
 * /tmp). Journaling is not an allocation-free path (SQLite allocates pages and cursors), so
 * the allocs column says "-" and a "# note" line gives the count per execution, with the
 * executions per second. Every write must succeed and the last execution must read back
 * complete, or the run fails (exit 1).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cbx/journal.h"

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

static int failed;

typedef struct jcase {
    const char *name;
    cbx_journal *j;
    json_t *params, *metadata, *outputs;
    int flush_each;
    const char *reopen; /* the path: close and open the journal around every execution */
    int v7;             /* time-ordered ids */
    uint64_t next;      /* id counter */
    uint64_t errors;
    char first_err[512];
    char last_id[40];
} jcase;

/* A UUID-shaped id from a counter. Version 4 (what the runtime makes): every digit scrambled
 * (splitmix64), so ids arrive in random order. Version 7 (RFC 9562): the first 48 bits are
 * the time in ms (here the submission time), so ids arrive in order and the indexes on them
 * grow at one end. Without printf. */
static void make_id(char *buf, uint64_t n, uint64_t ms, int v7)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h[2];
    for (int k = 0; k < 2; k++) {
        uint64_t z = (n * 2 + (uint64_t)k + 1) * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        h[k] = z ^ (z >> 31);
    }
    if (v7)
        h[0] = (ms << 16) | (h[0] & 0xffff);
    int o = 0;
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            buf[o++] = '-';
        buf[o++] = hex[(h[i / 16] >> (60 - (i % 16) * 4)) & 15];
    }
    buf[o] = '\0';
}

/* CPU time of the process (every thread: the journal's flusher too), in ns. On a loaded machine
 * it is steadier than the wall-clock figure. */
static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void note_error(jcase *c, const cbx_err *err)
{
    if (c->errors++ == 0)
        snprintf(c->first_err, sizeof c->first_err, "%s", err->msg);
}

static void loop_exec(void *ctx, uint64_t iters)
{
    jcase *c = ctx;
    char id[40];
    cbx_err err;
    for (uint64_t i = 0; i < iters; i++) {
        if (c->reopen) {
            cbx_journal_close(c->j);
            if (cbx_journal_open(&c->j, &(cbx_journal_opts){.path = c->reopen}, &err) != 0) {
                fprintf(stderr, "bench_journal: open %s: %s\n", c->reopen, err.msg);
                exit(3);
            }
        }
        uint64_t now_ms = 1700000000000ull + c->next / 16; /* 16 executions a millisecond */
        make_id(id, c->next++, now_ms, c->v7);
        cbx_journal_execution e = {.id = id,
                                   .executor = "command",
                                   .params = c->params,
                                   .tag = NULL,
                                   .breaker = "b",
                                   .policy = "default",
                                   .submitted_ms = now_ms};
        cbx_journal_attempt_info a = {.execution_id = id,
                                      .number = 1,
                                      .outcome = "success",
                                      .started_ms = now_ms,
                                      .duration_ns = 1200000,
                                      .metadata = c->metadata,
                                      .breaker_decision = "admitted"};
        cbx_journal_end end = {.execution_id = id,
                               .status = "success",
                               .rc = 0,
                               .attempts = 1,
                               .outputs = c->outputs,
                               .ended_ms = now_ms + 1,
                               .duration_ns = 1250000};
        if (cbx_journal_execution_start(c->j, &e, &err) != 0)
            note_error(c, &err);
        if (cbx_journal_attempt(c->j, &a, &err) != 0)
            note_error(c, &err);
        if (cbx_journal_execution_end(c->j, &end, &err) != 0)
            note_error(c, &err);
        if (c->flush_each && cbx_journal_flush(c->j, &err) != 0)
            note_error(c, &err);
    }
    memcpy(c->last_id, id, sizeof id);
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) {
        fprintf(stderr, "bench_journal: %s\n", e.text);
        exit(3);
    }
    return v;
}

/* The last execution reads back with its attempt. */
static void check_last(jcase *c)
{
    json_t *row = NULL;
    cbx_err err;
    if (cbx_journal_flush(c->j, &err) != 0) {
        printf("# FAIL\t%s: flush: %s\n", c->name, err.msg);
        failed = 1;
        return;
    }
    if (cbx_journal_get(c->j, c->last_id, &row, &err) != 0) {
        printf("# FAIL\t%s: %s: %s\n", c->name, c->last_id, err.msg);
        failed = 1;
        return;
    }
    const char *status = json_string_value(json_object_get(row, "status"));
    size_t natt = json_array_size(json_object_get(row, "attempts"));
    if (!status || strcmp(status, "success") != 0 || natt != 1) {
        printf("# FAIL\t%s: %s read back as %s with %zu attempts\n", c->name, c->last_id,
               status ? status : "(none)", natt);
        failed = 1;
    }
    json_decref(row);
}

/* flush_each: 1, a flush after every execution; -1, the journal closed and opened again before
 * every execution instead. */
static void run_case(const bench_args *a, const char *name, const char *path, int redacted,
                     int flush_each, int v7, uint64_t default_iters)
{
    jcase c = {.name = name, .flush_each = flush_each > 0, .v7 = v7};
    if (flush_each < 0)
        c.reopen = path;
    cbx_err err;
    if (cbx_journal_open(&c.j, &(cbx_journal_opts){.path = path}, &err) != 0) {
        fprintf(stderr, "bench_journal: open %s: %s\n", path, err.msg);
        exit(3);
    }
    c.params = load(redacted ? "{\"argv\": [\"curl\", \"-s\", \"https://example.test/v1/items\"],"
                               " \"timeout_ms\": 5000, \"capture\": true,"
                               " \"headers\": {\"Authorization\": \"Bearer abcdef\","
                               " \"Accept\": \"application/json\"},"
                               " \"env\": {\"API_TOKEN\": \"t0k3n\", \"LANG\": \"C\"}}"
                             : "{\"argv\": [\"/bin/true\", \"--flag\", \"value\"],"
                               " \"timeout_ms\": 5000, \"capture\": true,"
                               " \"env\": {\"LANG\": \"C\"}, \"cwd\": \"/tmp\"}");
    c.metadata = load("{\"pid\": 12345, \"exit_code\": 0, \"signal\": null,"
                      " \"max_rss_kib\": 2048, \"cpu_user_ms\": 1, \"cpu_sys_ms\": 0}");
    c.outputs = load("{\"exit_code\": 0, \"stdout\": \"ok\\n\", \"stderr\": \"\","
                     " \"stdout_truncated\": false}");

    uint64_t iters = a->iters ? a->iters : default_iters;
    uint64_t warm = iters / 10;
    uint64_t calls = warm + iters * (uint64_t)a->runs;
    uint64_t a0 = alloc_count_total();
    double cpu0 = cpu_ns();
    double ns = bench_best_ns(loop_exec, &c, iters, a->runs, warm);
    double cpu = cpu_ns() - cpu0;
    uint64_t allocs = alloc_count_total() - a0;
    if (c.errors) {
        printf("# FAIL\t%s: %" PRIu64 " failed writes, the first: %s\n", name, c.errors,
               c.first_err);
        failed = 1;
    }
    check_last(&c);
    bench_emit(name, ns, -1, iters);
    printf("# note\t%s: %.0f executions/s journaled; %.1f allocations and %.1f us of CPU (the "
           "process's, all threads, mean) per execution\n",
           name, 1e9 / ns, (double)allocs / (double)calls, cpu / 1e3 / (double)calls);
    json_decref(c.params);
    json_decref(c.metadata);
    json_decref(c.outputs);
    cbx_journal_close(c.j);
}

static char dir[512];

static void file_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s.db", dir, name);
}

static void remove_db(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char p[600];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

static void case_memory(const bench_args *a, const char *name)
{
    run_case(a, name, ":memory:", 0, 0, 0, 100000);
}

static void case_file(const bench_args *a, const char *name)
{
    char path[600];
    file_path(path, sizeof path, name);
    run_case(a, name, path, 0, 0, 0, 100000);
    remove_db(path);
}

static void case_file_v7(const bench_args *a, const char *name)
{
    char path[600];
    file_path(path, sizeof path, name);
    run_case(a, name, path, 0, 0, 1, 100000);
    remove_db(path);
}

static void case_file_redacted(const bench_args *a, const char *name)
{
    char path[600];
    file_path(path, sizeof path, name);
    run_case(a, name, path, 1, 0, 0, 100000);
    remove_db(path);
}

static void case_file_flush_each(const bench_args *a, const char *name)
{
    char path[600];
    file_path(path, sizeof path, name);
    run_case(a, name, path, 0, 1, 0, 20000);
    remove_db(path);
}

static void case_file_reopen(const bench_args *a, const char *name)
{
    char path[600];
    file_path(path, sizeof path, name);
    run_case(a, name, path, 0, -1, 0, 2000);
    remove_db(path);
}

static const struct {
    const char *name;
    void (*run)(const bench_args *a, const char *name);
} cases[] = {
    {"journal.exec.memory", case_memory},
    {"journal.exec.file", case_file},
    {"journal.exec.file.v7ids", case_file_v7},
    {"journal.exec.file.redacted", case_file_redacted},
    {"journal.exec.file.flush_each", case_file_flush_each},
    {"journal.exec.file.reopen", case_file_reopen},
};

int main(int argc, char **argv)
{
    bench_args a;
    if (bench_args_parse(&a, argc, argv) != 0)
        return 2;
    if (a.list) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    if (!a.no_selftest && alloc_count_selftest() != 0) {
        fprintf(stderr, "bench_journal: the counting allocator is not in effect\n");
        return 3;
    }
    const char *tmp = getenv("CBX_BENCH_TMPDIR");
    snprintf(dir, sizeof dir, "%s/cbx-bench-journal-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("bench_journal: mkdtemp");
        return 3;
    }
    printf("# build\t%s\t%s\n", CBX_BENCH_BUILD_TYPE, CBX_BENCH_CFLAGS);
    printf("# compiler\t%s\n", CBX_BENCH_COMPILER);
    printf("# runs\t%d\n", a.runs);
    printf("# journal\tfiles in %s; one call = start + 1 attempt + end\n", dir);

    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!bench_selected(&a, cases[i].name))
            continue;
        cases[i].run(&a, cases[i].name);
        ran++;
    }
    rmdir(dir);
    if (ran == 0) {
        fprintf(stderr, "bench_journal: no case named %s\n", a.only);
        return 2;
    }
    return failed ? 1 : 0;
}
