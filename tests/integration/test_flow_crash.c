/* Crash and resume: a runner killed with SIGKILL at random points of a twenty-step flow, then
 * resumed (and perhaps killed again) until it finishes.
 *
 * The flow (tests/flows/run/crash.yaml) is a DAG of command steps with parallel branches; each
 * step appends its name to a log file before doing anything else, so every execution of a step
 * shows in the log, and prints a number derived from the seed input or its dependencies' outputs.
 * tests/helpers/flow_runner runs it with a journal in a directory of its own.
 *
 * For each kill, before resuming, the journal is read (cbx_flow_run_show): the steps it records as
 * succeeded must never run again in that run, so their count of lines in the log must not change
 * from then on. A step's outcome reaches the rest of the flow only once it is committed, so every
 * step that has run (its line is in the log) must find each step whose outputs it uses recorded
 * as succeeded, and no step runs before the run itself is in the journal. Each run's final outputs
 * must equal those of an uninterrupted run. Kill delays
 * are spread over the length of an uninterrupted run (plus random jitter), so that kills land
 * before the first step, while steps run, and between them; the test checks that each of these
 * happened. CBX_CRASH_SEED=N replays a sequence of delays.
 */
#define _GNU_SOURCE
#include "cbx/flow.h"
#include "cbx/journal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NSTEPS          20
#define KILLS           50
#define MAX_ITERATIONS  400
#define MAX_RESUME_KILL 4

extern char **environ;

static const char step_names[NSTEPS + 1] = "abcdefghijklmnopqrst";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Uniform in [0, 1). */
static double rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0;
}

static char flow_path[1024];
static char runner_path[1024];

/* uses[i][d]: step i renders step d's outputs, so d had succeeded before i started. */
static int uses[NSTEPS][NSTEPS];

static int step_index(char name)
{
    const char *p = name ? strchr(step_names, name) : NULL;
    return p ? (int)(p - step_names) : -1;
}

/* The dependencies, from the flow file: the `steps.X.` references of each step's lines. */
static void read_uses(void)
{
    FILE *f = fopen(flow_path, "r");
    cr_assert_not_null(f, "%s: %s", flow_path, strerror(errno));
    char line[1024];
    int cur = -1, edges = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "- name: ");
        if (line[0] != ' ' && line[0] != '#')
            cur = -1; /* outputs: and the rest */
        else if (p && p[8] && p[9] == '\n')
            cur = step_index(p[8]);
        for (p = line; cur >= 0 && (p = strstr(p, "steps.")) != NULL; p += 6) {
            int d = p[7] == '.' ? step_index(p[6]) : -1;
            if (d >= 0 && !uses[cur][d]) {
                uses[cur][d] = 1;
                edges++;
            }
        }
    }
    fclose(f);
    cr_assert_geq(edges, NSTEPS - 1, "%s: only %d dependencies found", flow_path, edges);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Start flow_runner DIR FLOW (--inputs-json {"log": DIR/log} | --resume ID), stdout to out. */
static pid_t start_runner(const char *dir, const char *resume_id, const char *out)
{
    char inputs[1200];
    snprintf(inputs, sizeof inputs, "{\"log\": \"%s/log\"}", dir);
    char *argv[6] = {runner_path, (char *)dir, flow_path, NULL, NULL, NULL};
    argv[3] = resume_id ? "--resume" : "--inputs-json";
    argv[4] = resume_id ? (char *)resume_id : inputs;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, runner_path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "posix_spawn %s: %s", runner_path, strerror(rc));
    return pid;
}

/* Wait for pid, killing it with SIGKILL once delay_ns have passed since t0 (never when
 * delay_ns is UINT64_MAX). Returns 1 when the kill ended it, 0 when it exited by itself. */
static int wait_or_kill(pid_t pid, uint64_t t0, uint64_t delay_ns, int *status)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        cr_assert(r == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        if (delay_ns != UINT64_MAX && now_ns() - t0 >= delay_ns)
            break;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0)
        cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    return WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL;
}

/* The lines of a file (first and last, without the newline); 0 when it has none. */
static int read_lines(const char *path, char *first, size_t flen, char *last, size_t llen)
{
    first[0] = last[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\n");
        line[len] = '\0';
        if (n++ == 0 && flen > 0)
            memcpy(first, line, len < flen ? len + 1 : flen - 1), first[flen - 1] = '\0';
        if (llen > 0)
            memcpy(last, line, len < llen ? len + 1 : llen - 1), last[llen - 1] = '\0';
    }
    fclose(f);
    return n;
}

/* How many times each step wrote its name to the log. */
static void log_counts(const char *dir, int counts[NSTEPS])
{
    memset(counts, 0, NSTEPS * sizeof *counts);
    char path[1100];
    snprintf(path, sizeof path, "%s/log", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[64];
    while (fgets(line, sizeof line, f)) {
        const char *p = line[0] ? strchr(step_names, line[0]) : NULL;
        cr_assert(p && line[1] == '\n', "unexpected log line '%s'", line);
        counts[p - step_names]++;
    }
    fclose(f);
}

/* The run in dir's journal (there is at most one), with its steps; NULL when there is none. */
static json_t *journal_run(const char *dir)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    cbx_journal *j = NULL;
    cbx_err e;
    cbx_journal_opts jo = {.path = path};
    cr_assert_eq(cbx_journal_open(&j, &jo, &e), 0, "%s", e.msg);
    json_t *runs = NULL;
    cr_assert_eq(cbx_flow_runs_list(j, 0, &runs, &e), 0, "%s", e.msg);
    cr_assert_leq(json_array_size(runs), 1);
    json_t *run = NULL;
    if (json_array_size(runs) == 1) {
        const char *id = json_string_value(json_object_get(json_array_get(runs, 0), "run_id"));
        cr_assert_eq(cbx_flow_run_show(j, id, &run, &e), 0, "%s", e.msg);
    }
    json_decref(runs);
    cbx_journal_close(j);
    return run;
}

static const char *step_status(json_t *run, char name)
{
    char key[2] = {name, '\0'};
    return json_string_value(
        json_object_get(json_object_get(json_object_get(run, "steps"), key), "status"));
}

/* What the journal said at one kill: the steps recorded as succeeded and their log counts. */
typedef struct snapshot {
    int succeeded[NSTEPS];
    int counts[NSTEPS];
} snapshot;

typedef struct tally {
    int kills, before_any_run, before_first_success, partial, during_step, between_steps, all_done,
        resume_kills;
} tally;

/* After a kill: read the journal and the log; classify where the kill landed. Returns the run
 * id (empty when the run never reached the journal). */
static void after_kill(const char *dir, const char *out, snapshot *s, tally *t, char run_id[40],
                       uint64_t seed, int iter)
{
    json_t *run = journal_run(dir);
    memset(s, 0, sizeof *s);
    log_counts(dir, s->counts);
    char first[256], last[256];
    int lines = read_lines(out, first, sizeof first, last, sizeof last);
    if (!run) {
        run_id[0] = '\0';
        t->before_any_run++;
        for (int i = 0; i < NSTEPS; i++)
            cr_assert_eq(s->counts[i], 0,
                         "seed %llu iteration %d: step %c ran but the journal has no run",
                         (unsigned long long)seed, iter, step_names[i]);
        cr_assert_eq(lines, 0,
                     "seed %llu iteration %d: a run id was printed (%s) but the "
                     "journal has no run",
                     (unsigned long long)seed, iter, first);
        return;
    }
    snprintf(run_id, 40, "%s", json_string_value(json_object_get(run, "run_id")));
    if (lines > 0)
        cr_assert_str_eq(first, run_id, "seed %llu iteration %d: printed run id",
                         (unsigned long long)seed, iter);
    int nsucc = 0, nrunning = 0;
    for (int i = 0; i < NSTEPS; i++) {
        const char *st = step_status(run, step_names[i]);
        if (st && strcmp(st, "success") == 0) {
            s->succeeded[i] = 1;
            nsucc++;
            cr_assert_geq(s->counts[i], 1,
                          "seed %llu iteration %d: step %c recorded as succeeded never ran",
                          (unsigned long long)seed, iter, step_names[i]);
        } else if (st && strcmp(st, "running") == 0) {
            nrunning++;
        }
    }
    /* whatever ran did so on outcomes the journal had committed */
    for (int i = 0; i < NSTEPS; i++)
        for (int d = 0; d < NSTEPS && s->counts[i] > 0; d++) {
            const char *st = step_status(run, step_names[d]);
            cr_assert(!uses[i][d] || (st && strcmp(st, "success") == 0),
                      "seed %llu iteration %d: step %c ran, but step %c whose outputs it uses is "
                      "recorded as %s",
                      (unsigned long long)seed, iter, step_names[i], step_names[d],
                      st ? st : "nothing");
        }
    if (nsucc == 0)
        t->before_first_success++;
    else if (nsucc < NSTEPS)
        t->partial++;
    else
        t->all_done++;
    if (nrunning > 0)
        t->during_step++;
    else if (nsucc > 0 && nsucc < NSTEPS)
        t->between_steps++;
    json_decref(run);
}

/* One uninterrupted run: its outputs line, and how long it took. */
static uint64_t reference_run(const char *base, char *outputs, size_t len)
{
    char dir[1100], out[1200];
    snprintf(dir, sizeof dir, "%s/reference", base);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(out, sizeof out, "%s/out", dir);
    uint64_t t0 = now_ns();
    pid_t pid = start_runner(dir, NULL, out);
    int st;
    cr_assert_eq(wait_or_kill(pid, t0, UINT64_MAX, &st), 0);
    uint64_t took = now_ns() - t0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the uninterrupted run failed (status %d)",
              st);
    char first[256];
    cr_assert_eq(read_lines(out, first, sizeof first, outputs, len), 2);
    cr_assert(strstr(outputs, "\"final\":"), "outputs: %s", outputs);
    int counts[NSTEPS];
    log_counts(dir, counts);
    for (int i = 0; i < NSTEPS; i++)
        cr_assert_eq(counts[i], 1, "step %c ran %d times in the uninterrupted run", step_names[i],
                     counts[i]);
    return took;
}

Test(flow_crash, killed_at_random_points_and_resumed_ends_as_an_uninterrupted_run, .timeout = 240)
{
    snprintf(flow_path, sizeof flow_path, "%s/tests/flows/run/crash.yaml", CBX_SOURCE_DIR);
    snprintf(runner_path, sizeof runner_path, "%s/flow_runner", CBX_TEST_BIN_DIR);
    cr_assert_eq(access(runner_path, X_OK), 0, "%s is not built", runner_path);
    read_uses();
    const char *env_seed = getenv("CBX_CRASH_SEED");
    uint64_t seed = env_seed ? strtoull(env_seed, NULL, 10) : (uint64_t)time(NULL);
    rng_state = seed * 2654435761u + 1;
    fprintf(stderr, "flow_crash: seed %llu (CBX_CRASH_SEED replays it)\n",
            (unsigned long long)seed);

    char base[] = "/tmp/cbx_flow_crash_XXXXXX";
    cr_assert_not_null(mkdtemp(base));
    char reference[512];
    uint64_t span = reference_run(base, reference, sizeof reference);

    tally t = {0};
    int iter = 0;
    for (; t.kills < KILLS && iter < MAX_ITERATIONS; iter++) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/run%03d", base, iter);
        cr_assert_eq(mkdir(dir, 0755), 0);
        snapshot snaps[MAX_RESUME_KILL + 2];
        int nsnaps = 0;
        char run_id[40] = "";
        /* The first kill of each iteration sweeps the length of a run: kill k lands near
         * k/KILLS of it, give or take one step of the sweep. */
        uint64_t delay = (uint64_t)((double)span * ((double)t.kills + rng_unit()) / KILLS);
        for (int attempt = 0;; attempt++) {
            char out[1200];
            snprintf(out, sizeof out, "%s/out%d", dir, attempt);
            uint64_t t0 = now_ns();
            pid_t pid = start_runner(dir, run_id[0] ? run_id : NULL, out);
            int st;
            int killed = wait_or_kill(pid, t0, delay, &st);
            if (!killed && attempt == 0) {
                /* A whole run finished before its kill: runs are quicker now than the reference
                 * was (the machine's load changes). Sweep the length runs really take. */
                uint64_t took = now_ns() - t0;
                if (took < span)
                    span = took;
            }
            if (!killed) {
                cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                          "seed %llu iteration %d attempt %d: the runner failed (status %d)",
                          (unsigned long long)seed, iter, attempt, st);
                char first[256], last[512];
                read_lines(out, first, sizeof first, last, sizeof last);
                cr_assert_str_eq(last, reference,
                                 "seed %llu iteration %d attempt %d: outputs differ from an "
                                 "uninterrupted run's",
                                 (unsigned long long)seed, iter, attempt);
                if (run_id[0])
                    cr_assert_str_eq(first, run_id, "seed %llu iteration %d: resumed run's id",
                                     (unsigned long long)seed, iter);
                break;
            }
            t.kills++;
            if (attempt > 0)
                t.resume_kills++;
            cr_assert_lt(nsnaps, MAX_RESUME_KILL + 2);
            after_kill(dir, out, &snaps[nsnaps++], &t, run_id, seed, iter);
            /* Resumed runs are killed again half of the time, a few times at most. */
            delay = attempt < MAX_RESUME_KILL && rng_unit() < 0.5
                        ? (uint64_t)((double)span * rng_unit())
                        : UINT64_MAX;
        }

        /* No step recorded as succeeded at a kill ran again afterwards. */
        int counts[NSTEPS];
        log_counts(dir, counts);
        for (int k = 0; k < nsnaps; k++)
            for (int i = 0; i < NSTEPS; i++) {
                cr_assert_geq(counts[i], 1, "seed %llu iteration %d: step %c never ran",
                              (unsigned long long)seed, iter, step_names[i]);
                if (snaps[k].succeeded[i])
                    cr_assert_eq(counts[i], snaps[k].counts[i],
                                 "seed %llu iteration %d: step %c had succeeded at kill %d "
                                 "(%d runs logged) yet ran again (%d logged at the end)",
                                 (unsigned long long)seed, iter, step_names[i], k + 1,
                                 snaps[k].counts[i], counts[i]);
            }
        /* The journal ends with the run and every step succeeded. */
        json_t *run = journal_run(dir);
        cr_assert_not_null(run);
        cr_assert_str_eq(json_string_value(json_object_get(run, "status")), "success");
        for (int i = 0; i < NSTEPS; i++)
            cr_assert_str_eq(step_status(run, step_names[i]), "success",
                             "seed %llu iteration %d: step %c", (unsigned long long)seed, iter,
                             step_names[i]);
        json_decref(run);
    }
    fprintf(stderr,
            "flow_crash: %d iterations, %d kills (%d of resumed runs): %d before the run was "
            "journaled, %d before any step succeeded, %d part-way (%d with a step running, %d "
            "between steps), %d after the last step; uninterrupted run %.0f ms\n",
            iter, t.kills, t.resume_kills, t.before_any_run, t.before_first_success, t.partial,
            t.during_step, t.between_steps, t.all_done, (double)span / 1e6);
    cr_assert_geq(t.kills, KILLS, "only %d kills landed in %d iterations", t.kills, iter);
    cr_assert_gt(t.before_any_run + t.before_first_success, 0, "no kill landed before a step");
    cr_assert_gt(t.partial, 0, "no kill landed part-way through the flow");
    cr_assert_gt(t.during_step, 0, "no kill landed while a step was running");
    cr_assert_gt(t.resume_kills, 0, "no resumed run was killed");
    rm_tree(base);
}
