/* lambda_invoke: the load driver of bench/lambda.sh. One cbx runtime (no journal) runs N
 * sequential invocations of the serverless executor with the parameters given as JSON - the
 * local backend (function_dir) or the Invoke API of an emulator (endpoint_url) - after one
 * warm-up call, and prints one JSON line: invocations, wall seconds, invocations per second, this
 * process's CPU seconds, and the CPU seconds of the process tree under --tree-pid (the emulator,
 * or with `--tree-pid runtime` the local runtime the warm-up used).
 *
 * Usage: lambda_invoke N PARAMS_JSON [--tree-pid PID|runtime] */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cbx/runtime.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* utime + stime (ticks) and the parent of /proc/PID; -1 when gone. */
static long long proc_ticks(long pid, long *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    char state;
    long pp;
    unsigned long long ut, st;
    /* fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime */
    if (sscanf(p + 2, "%c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &pp, &ut,
               &st) != 4)
        return -1;
    *ppid = pp;
    return (long long)(ut + st);
}

/* CPU seconds of root and every descendant now alive. */
static double tree_cpu_s(long root)
{
    if (root <= 0)
        return 0;
    long pids[8192], ppids[8192];
    long long ticks[8192];
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 8192) {
        long pid = strtol(e->d_name, NULL, 10);
        if (pid <= 0)
            continue;
        long pp;
        long long t = proc_ticks(pid, &pp);
        if (t < 0)
            continue;
        pids[n] = pid;
        ppids[n] = pp;
        ticks[n++] = t;
    }
    if (d)
        closedir(d);
    long long sum = 0;
    for (int i = 0; i < n; i++)
        for (long p = pids[i], hops = 0; p > 1 && hops < 64; hops++) {
            if (p == root) {
                sum += ticks[i];
                break;
            }
            long up = 0;
            for (int j = 0; j < n; j++)
                if (pids[j] == p)
                    up = ppids[j];
            p = up;
        }
    return (double)sum / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s N PARAMS_JSON [--tree-pid PID|runtime]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]);
    json_error_t je;
    json_t *params = json_loads(argv[2], 0, &je);
    if (n <= 0 || !params) {
        fprintf(stderr, "lambda_invoke: bad N or parameters (%s)\n", params ? "" : je.text);
        return 2;
    }
    const char *tree = argc > 4 && !strcmp(argv[3], "--tree-pid") ? argv[4] : NULL;
    cbx_runtime *rt;
    cbx_err err;
    if (cbx_runtime_new(&rt, NULL, &err) < 0) {
        fprintf(stderr, "lambda_invoke: %s\n", err.msg);
        return 1;
    }
    cbx_request req = {.executor = "serverless", .params = params};
    cbx_result r;
    if (cbx_runtime_execute(rt, &req, &r, NULL) != 0) {
        fprintf(stderr, "lambda_invoke: the warm-up failed: %s\n", r.error);
        return 1;
    }
    long root = 0;
    if (tree && !strcmp(tree, "runtime"))
        root = (long)json_integer_value(json_object_get(r.metadata, "runtime_pid"));
    else if (tree)
        root = atol(tree);
    cbx_result_clear(&r);
    double t0 = now_s(), c0 = self_cpu_s(), k0 = tree_cpu_s(root);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        if (cbx_runtime_execute(rt, &req, &r, NULL) != 0 && failed++ == 0)
            fprintf(stderr, "lambda_invoke: %s\n", r.error);
        cbx_result_clear(&r);
    }
    double wall = now_s() - t0, cpu = self_cpu_s() - c0, kids = tree_cpu_s(root) - k0;
    printf("{\"invocations\": %d, \"failed\": %d, \"wall_s\": %.3f, \"per_s\": %.1f, "
           "\"driver_cpu_s\": %.3f, \"tree_cpu_s\": %.3f}\n",
           n, failed, wall, n / wall, cpu, kids);
    cbx_runtime_free(rt);
    json_decref(params);
    return failed ? 1 : 0;
}
