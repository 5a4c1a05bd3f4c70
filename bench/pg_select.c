/* pg_select: single-row SELECTs through the postgres executor, `-c` at a time for `-T` seconds,
 * against the server in PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE and pgbench's tables (the
 * statement pgbench -S runs: SELECT abalance FROM pgbench_accounts WHERE aid = $1, a random aid
 * of 1..100000*scale). Prints "transactions<TAB>seconds<TAB>tps<TAB>client CPU us per
 * transaction" (user + system of this process). Run by bench/postgres.sh,
 * beside `pgbench -S` on the same server. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbx/runtime.h"
#include <sys/resource.h>
#include <time.h>

typedef struct bench {
    cbx_runtime *rt;
    json_t *base;
    uint64_t end_ns;
    uint64_t done, failed;
    uint32_t rng;
    long accounts;
    char last_error[320];
} bench;

static void submit_one(bench *b);

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    bench *b = ud;
    (void)ex;
    if (res->status == CBX_STATUS_SUCCESS) {
        b->done++;
    } else {
        b->failed++;
        snprintf(b->last_error, sizeof b->last_error, "%s", res->error);
    }
    if (bench_now_ns() < b->end_ns && b->failed < 100)
        submit_one(b);
}

static void submit_one(bench *b)
{
    b->rng = b->rng * 1103515245u + 12345u;
    long aid = 1 + (long)((b->rng >> 1) % (uint32_t)b->accounts);
    /* one parameters object for every request, its params replaced: submit borrows it and keeps
     * a copy of its own */
    json_object_set_new(b->base, "params", json_pack("[I]", (json_int_t)aid));
    cbx_runtime_submit(
        b->rt,
        &(cbx_request){.executor = "postgres", .params = b->base, .on_done = on_done, .ud = b},
        NULL, NULL);
}

int main(int argc, char **argv)
{
    int conc = 8, secs = 5, scale = 1, opt;
    while ((opt = getopt(argc, argv, "c:T:s:")) != -1) {
        switch (opt) {
        case 'c':
            conc = atoi(optarg);
            break;
        case 'T':
            secs = atoi(optarg);
            break;
        case 's':
            scale = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: pg_select [-c clients] [-T seconds] [-s scale]\n");
            return 2;
        }
    }
    const char *env[] = {"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"};
    const char *key[] = {"host", "port", "user", "password", "dbname"};
    bench b = {.rng = 12345, .accounts = 100000L * scale};
    b.base = json_pack("{s:s, s:i}", "sql", "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                       "pool_size", conc);
    for (int i = 0; i < 5; i++) {
        const char *v = getenv(env[i]);
        if (!v) {
            fprintf(stderr, "pg_select: %s is not set (bench/postgres.sh sets it)\n", env[i]);
            return 2;
        }
        json_object_set_new(b.base, key[i], i == 1 ? json_integer(atoi(v)) : json_string(v));
    }
    cbx_err err;
    if (cbx_runtime_new(&b.rt, &(cbx_runtime_opts){.max_concurrent = (uint32_t)conc}, &err) < 0) {
        fprintf(stderr, "pg_select: %s\n", err.msg);
        return 1;
    }
    /* warm-up: open the pool's connections */
    b.end_ns = bench_now_ns() + 500000000ull;
    for (int i = 0; i < conc; i++)
        submit_one(&b);
    cbx_runtime_run(b.rt);
    b.done = 0;
    double cpu0 = cpu_us();
    uint64_t t0 = bench_now_ns();
    b.end_ns = t0 + (uint64_t)secs * 1000000000ull;
    for (int i = 0; i < conc; i++)
        submit_one(&b);
    cbx_runtime_run(b.rt);
    double el = (double)(bench_now_ns() - t0) / 1e9;
    double cpu = cpu_us() - cpu0;
    cbx_runtime_free(b.rt);
    json_decref(b.base);
    if (b.failed) {
        fprintf(stderr, "pg_select: %llu failed: %s\n", (unsigned long long)b.failed, b.last_error);
        return 1;
    }
    printf("%llu\t%.3f\t%.0f\t%.1f\n", (unsigned long long)b.done, el, (double)b.done / el,
           b.done ? cpu / (double)b.done : 0.0);
    return 0;
}
