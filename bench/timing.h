/* bench/timing.h - timing helpers for the benchmarks.
 *
 * A benchmark body is a loop function that makes `iters` calls. bench_best_ns() runs it
 * `runs` times after one warm-up pass and returns the best (lowest) nanoseconds per call:
 * the run least disturbed by the scheduler, page faults or frequency changes. Time comes
 * from CLOCK_MONOTONIC, read only outside the loop.
 */
#ifndef CBX_BENCH_TIMING_H
#define CBX_BENCH_TIMING_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A loop that makes iters calls; ctx is the case's state. */
typedef void (*bench_loop_fn)(void *ctx, uint64_t iters);

/* CLOCK_MONOTONIC now, in nanoseconds. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Keep a value alive: the compiler must assume the asm reads it, so the computation that
 * produced it (and the loop around it) cannot be dropped. */
#define BENCH_KEEP(v) __asm__ volatile("" : : "g"(v) : "memory")

/* One warm-up pass of warmup_iters calls (none when 0), then `runs` timed passes of iters
 * calls each; returns the best ns per call. */
static inline double bench_best_ns(bench_loop_fn loop, void *ctx, uint64_t iters, int runs,
                                   uint64_t warmup_iters)
{
    double best = 0;
    if (warmup_iters > 0)
        loop(ctx, warmup_iters);
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = bench_now_ns();
        loop(ctx, iters);
        uint64_t t1 = bench_now_ns();
        double ns = (double)(t1 - t0) / (double)iters;
        if (r == 0 || ns < best)
            best = ns;
    }
    return best;
}

/* --- Output and command line, shared by every bench_*.c ---------------------------------
 *
 * A bench binary writes one line per measured case to stdout:
 *     name<TAB>ns_per_call<TAB>allocs_per_call<TAB>calls_per_run
 * and lines starting with '#' for anything else (build facts, failures). bench/run collects
 * the lines of every bench binary, so a new binary needs no change to the runner. */

/* allocs_per_call < 0 prints "-" (not measured). */
static inline void bench_emit(const char *name, double ns_per_call, double allocs_per_call,
                              uint64_t calls_per_run)
{
    if (allocs_per_call < 0)
        printf("%s\t%.2f\t-\t%llu\n", name, ns_per_call, (unsigned long long)calls_per_run);
    else
        printf("%s\t%.2f\t%.3g\t%llu\n", name, ns_per_call, allocs_per_call,
               (unsigned long long)calls_per_run);
    fflush(stdout);
}

typedef struct bench_args {
    uint64_t iters;   /* calls per timed run; 0 = each case's default */
    int runs;         /* timed runs per case (best is reported) */
    const char *only; /* run only the case with this name; NULL = all */
    int list;         /* print the case names instead of running them */
    int no_selftest;  /* skip the counting allocator's self-test: under valgrind, whose
                         allocator replaces it, the counts are valgrind's to report */
} bench_args;

/* Parse [--iters N] [--runs K] [--case NAME] [--list] [--no-selftest]. Returns 0, or -1 after
 * printing usage. */
static inline int bench_args_parse(bench_args *a, int argc, char **argv)
{
    *a = (bench_args){.runs = 5};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        char *end = NULL;
        int ok = 1;
        if (strcmp(argv[i], "--list") == 0) {
            a->list = 1;
        } else if (strcmp(argv[i], "--no-selftest") == 0) {
            a->no_selftest = 1;
        } else if (strcmp(argv[i], "--iters") == 0) {
            a->iters = strtoull(v, &end, 10);
            ok = *v != '\0' && *end == '\0' && a->iters > 0;
            i++;
        } else if (strcmp(argv[i], "--runs") == 0) {
            a->runs = (int)strtol(v, &end, 10);
            ok = *v != '\0' && *end == '\0' && a->runs > 0;
            i++;
        } else if (strcmp(argv[i], "--case") == 0) {
            a->only = v;
            ok = *v != '\0';
            i++;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr,
                    "usage: %s [--iters N] [--runs K] [--case NAME] [--list] [--no-selftest]\n",
                    argv[0]);
            return -1;
        }
    }
    return 0;
}

/* 1 when the case called name is to run. */
static inline int bench_selected(const bench_args *a, const char *name)
{
    return a->only == NULL || strcmp(name, a->only) == 0;
}

/* The start every bench binary shares: parse the command line, answer --list, stop when not to
 * be measured under valgrind (skip_note printed as a note, when under_valgrind), check that the
 * counting allocator is in effect (selftest, when given and not --no-selftest), refuse an unknown
 * --case, print the build facts. Returns -1 to go on with *a filled, else the exit status: 0,
 * 2 (usage, unknown case) or 3 (no counting allocator). */
static inline int bench_start(int argc, char **argv, const char *prog, const char *const *names,
                              size_t nnames, int under_valgrind, const char *skip_note,
                              int (*selftest)(void), bench_args *a)
{
    if (bench_args_parse(a, argc, argv) != 0)
        return 2;
    if (a->list) {
        for (size_t i = 0; i < nnames; i++)
            printf("%s\n", names[i]);
        return 0;
    }
    if (under_valgrind && skip_note) {
        printf("# note\t%s\n", skip_note);
        return 0;
    }
    if (selftest && !a->no_selftest && selftest() != 0) {
        fprintf(stderr, "%s: the counting allocator is not in effect\n", prog);
        return 3;
    }
    int any = 0;
    for (size_t i = 0; i < nnames; i++)
        any |= bench_selected(a, names[i]);
    if (!any) {
        fprintf(stderr, "%s: no case named %s\n", prog, a->only);
        return 2;
    }
    printf("# build\t%s\t%s\n", CBX_BENCH_BUILD_TYPE, CBX_BENCH_CFLAGS);
    printf("# compiler\t%s\n", CBX_BENCH_COMPILER);
    printf("# runs\t%d\n", a->runs);
    return -1;
}

/* A bench binary's cases, and the main that runs them: bench_start, then each selected case. */
typedef struct bench_case {
    const char *name;
    void (*run)(const bench_args *a, const char *name);
} bench_case;

#define BENCH_MAX_CASES 32

static inline int bench_main(int argc, char **argv, const char *prog, const bench_case *cases,
                             size_t ncases, int (*selftest)(void))
{
    const char *names[BENCH_MAX_CASES];
    size_t n = ncases < BENCH_MAX_CASES ? ncases : BENCH_MAX_CASES;
    for (size_t i = 0; i < n; i++)
        names[i] = cases[i].name;
    bench_args a;
    int rc = bench_start(argc, argv, prog, names, n, 0, NULL, selftest, &a);
    if (rc >= 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (bench_selected(&a, cases[i].name))
            cases[i].run(&a, cases[i].name);
    return 0;
}

#endif
