/* breaker_kv_load URL PROCS CALLS [same|own]: PROCS forked processes, each with its own cluster
 * breaker store (cbx_breaker_store_nats_new on URL), make CALLS acquire+record(success) calls on
 * one breaker shared by all ("same") or on one breaker each ("own"). Prints one line: calls per
 * second over the wall time of the whole run, CAS retries in all and per call, CPU time (user +
 * sys) of the callers per call, and the load average before. Run by bench/breaker_kv.sh. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbx/dist.h"
#include "cbx/log.h"

/* A caller whose store fell back to its own view is not measuring the cluster: say so. */
static void on_log(cbx_log_level level, const char *component, const char *msg, void *ud)
{
    (void)ud;
    fprintf(stderr, "breaker_kv_load: %s %s: %s\n", cbx_log_level_name(level), component, msg);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One caller: CALLS calls, then its retries and refusals on the pipe. */
static int caller(const char *url, const char *name, long calls, int fd)
{
    cbx_breaker_store *s = NULL;
    cbx_err err;
    if (cbx_breaker_store_nats_new(&s, url, &err) != 0) {
        fprintf(stderr, "breaker_kv_load: %s\n", err.msg);
        return 1;
    }
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    uint64_t refused = 0;
    for (long i = 0; i < calls; i++) {
        cbx_permit p = cbx_breaker_store_acquire(s, name, &o, NULL);
        if (p.rc) {
            refused++;
            continue;
        }
        cbx_breaker_store_record(s, name, p, CBX_OUTCOME_SUCCESS, 1000);
    }
    uint64_t out[2] = {cbx_breaker_store_nats_cas_retries(s), refused};
    cbx_breaker_store_free(s);
    return write(fd, out, sizeof out) == (ssize_t)sizeof out ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: breaker_kv_load URL PROCS CALLS [same|own]\n");
        return 2;
    }
    cbx_log_set(on_log, CBX_LOG_WARN, NULL);
    const char *url = argv[1];
    int procs = atoi(argv[2]);
    long calls = atol(argv[3]);
    int same = argc < 5 || strcmp(argv[4], "own") != 0;
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    int fds[2];
    if (procs < 1 || calls < 1 || pipe(fds) < 0)
        return 2;
    /* the breaker made before the clock starts */
    if (same) {
        cbx_breaker_store *s = NULL;
        cbx_err err;
        if (cbx_breaker_store_nats_new(&s, url, &err) != 0) {
            fprintf(stderr, "breaker_kv_load: %s\n", err.msg);
            return 1;
        }
        cbx_breaker_store_record(s, "bench", cbx_breaker_store_acquire(s, "bench", NULL, NULL),
                                 CBX_OUTCOME_SUCCESS, 1000);
        cbx_breaker_store_free(s);
    }
    double t0 = now_s();
    for (int i = 0; i < procs; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char name[32];
            snprintf(name, sizeof name, same ? "bench" : "bench-%d", i);
            _exit(caller(url, name, calls, fds[1]));
        }
        if (pid < 0)
            return 1;
    }
    int bad = 0, st;
    for (int i = 0; i < procs; i++)
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = 1;
    double wall = now_s() - t0;
    uint64_t retries = 0, refused = 0, got[2];
    for (int i = 0; i < procs; i++)
        if (read(fds[0], got, sizeof got) == (ssize_t)sizeof got) {
            retries += got[0];
            refused += got[1];
        }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double total = (double)procs * (double)calls;
    printf("%s breaker, %d processes x %ld calls: %.0f calls/s (wall %.2f s), CAS retries %" PRIu64
           " (%.3f per call), refused %" PRIu64 ", callers' CPU %.1f us per call; load average "
           "before %.2f %.2f %.2f\n",
           same ? "one shared" : "one per process", procs, calls, total / wall, wall, retries,
           (double)retries / total, refused, cpu / total * 1e6, load[0], load[1], load[2]);
    return bad;
}
