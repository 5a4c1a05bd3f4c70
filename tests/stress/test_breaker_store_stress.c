/* Many threads in several processes hammer one named breaker in one host store file, on the
 * real clock with a 200 us open time so that it trips, refuses, probes and closes over and over.
 * Half the processes use a store opened by the parent before fork (so they must each get a
 * lock handle of their own), half open their own. Afterwards the counts must add up exactly:
 * every attempt was admitted or refused, every admitted outcome was counted once, and the
 * breaker's own counters (kept in the file) agree with what the callers saw.
 * Then the same on the memory store with threads only. */
#include "cbx/breaker.h"
#include "cbx/breaker_store.h"
#include "cbx/err.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stress/stress.h"

#define NPROC   4
#define NTHREAD 4
#define ITERS   2500  /* per thread, host store */
#define MITERS  50000 /* per thread, memory store */
#define NAME    "hammer"

typedef struct counts {
    uint64_t attempts, admitted, refused, successes, errors, ignored, probes, odd_rc;
} counts;

typedef struct worker {
    cbx_breaker_store *s;
    const cbx_breaker_opts *o;
    uint64_t seed;
    int iters;
    counts *c;
} worker;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < w->iters; i++) {
        cbx_breaker_rejection why;
        cbx_permit p = cbx_breaker_store_acquire(w->s, NAME, w->o, &why);
        w->c->attempts++;
        if (p.rc) {
            if (p.rc == CBX_ECIRCUIT_OPEN || p.rc == CBX_EHALF_OPEN_FULL)
                w->c->refused++;
            else
                w->c->odd_rc++;
            continue;
        }
        w->c->admitted++;
        w->c->probes += p.slot != 0;
        uint64_t r = rng_next(&w->seed);
        cbx_outcome k = r % 100 < 30   ? CBX_OUTCOME_ERROR
                        : r % 100 < 35 ? CBX_OUTCOME_IGNORED
                                       : CBX_OUTCOME_SUCCESS;
        if (r >> 60 == 0)
            sched_yield(); /* hold the permit a little while others go on */
        cbx_breaker_store_record(w->s, NAME, p, k, (int64_t)((r >> 8) % 1000000));
        if (k == CBX_OUTCOME_ERROR)
            w->c->errors++;
        else if (k == CBX_OUTCOME_IGNORED)
            w->c->ignored++;
        else
            w->c->successes++;
    }
    return NULL;
}

static void run_threads(cbx_breaker_store *s, const cbx_breaker_opts *o, counts *c, int n,
                        int iters, uint64_t seed)
{
    pthread_t t[16];
    worker w[16];
    for (int i = 0; i < n; i++) {
        w[i] = (worker){s, o, seed * 1000 + (uint64_t)i, iters, &c[i]};
        CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

static counts sum(const counts *c, int n)
{
    counts t = {0};
    for (int i = 0; i < n; i++) {
        t.attempts += c[i].attempts;
        t.admitted += c[i].admitted;
        t.refused += c[i].refused;
        t.successes += c[i].successes;
        t.errors += c[i].errors;
        t.ignored += c[i].ignored;
        t.probes += c[i].probes;
        t.odd_rc += c[i].odd_rc;
    }
    return t;
}

static json_int_t field(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    CHECK(json_is_integer(v), "%s missing", k);
    return json_integer_value(v);
}

static void check_totals(cbx_breaker_store *s, counts t, int n_callers, int iters)
{
    json_t *m = NULL;
    cbx_err err = {0};
    CHECK(cbx_breaker_store_show(s, NAME, &m, &err) == 0, "show: %s", err.msg);
    char *text = json_dumps(m, JSON_COMPACT);
    printf("%d callers: %llu attempts, %llu admitted (%llu probes), %llu refused\n  %s\n",
           n_callers, (unsigned long long)t.attempts, (unsigned long long)t.admitted,
           (unsigned long long)t.probes, (unsigned long long)t.refused, text);
    free(text);
    CHECK(t.odd_rc == 0, "%llu acquires failed with a store error", (unsigned long long)t.odd_rc);
    CHECK(t.attempts == (uint64_t)n_callers * (uint64_t)iters);
    CHECK(t.admitted + t.refused == t.attempts);
    CHECK(t.successes + t.errors + t.ignored == t.admitted);
    CHECK(field(m, "expired_probes") == 0);
    CHECK(field(m, "late_results") == 0);
    CHECK((uint64_t)field(m, "calls") == t.admitted, "calls %lld, admitted %llu",
          (long long)field(m, "calls"), (unsigned long long)t.admitted);
    CHECK((uint64_t)field(m, "rejections") == t.refused, "rejections %lld, refused %llu",
          (long long)field(m, "rejections"), (unsigned long long)t.refused);
    CHECK((uint64_t)field(m, "successes") == t.successes);
    CHECK((uint64_t)field(m, "failures") == t.errors);
    CHECK((uint64_t)field(m, "ignored") == t.ignored);
    CHECK((uint64_t)field(m, "latency_count") == t.admitted);
    /* the run exercised what it is meant to */
    CHECK(field(m, "opens") > 10, "only %lld opens", (long long)field(m, "opens"));
    CHECK(t.refused > 0 && t.probes > 0);
    json_decref(m);
}

int main(void)
{
    char dir[] = "/tmp/cbx-bstress-XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/breakers", dir);

    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = 3;
    o.count_window.calls = 50;
    o.count_window.failure_rate = 0.5;
    o.open_ns = 200 * CBX_NS_PER_US;
    o.half_open_probes = 2;
    o.probe_lease_ns = 600 * CBX_NS_PER_S;

    /* --- host store: processes x threads --- */
    cbx_breaker_store *inherited = NULL;
    cbx_err err = {0};
    CHECK(cbx_breaker_store_host_new(&inherited, path, &err) == 0, "%s", err.msg);
    counts *c = mmap(NULL, sizeof(counts) * NPROC * NTHREAD, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(c != MAP_FAILED);
    memset(c, 0, sizeof(counts) * NPROC * NTHREAD);
    pid_t pids[NPROC];
    fflush(NULL);
    for (int p = 0; p < NPROC; p++) {
        pids[p] = fork();
        CHECK(pids[p] >= 0);
        if (pids[p] == 0) {
            cbx_breaker_store *s = inherited;
            if (p % 2) {
                CHECK(cbx_breaker_store_host_new(&s, path, &err) == 0, "%s", err.msg);
            }
            run_threads(s, &o, &c[p * NTHREAD], NTHREAD, ITERS, (uint64_t)p + 1);
            if (s != inherited)
                cbx_breaker_store_free(s);
            cbx_breaker_store_free(inherited);
            _exit(0);
        }
    }
    for (int p = 0; p < NPROC; p++) {
        int st = 0;
        CHECK(waitpid(pids[p], &st, 0) == pids[p]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "process %d ended with %#x", p, st);
    }
    check_totals(inherited, sum(c, NPROC * NTHREAD), NPROC * NTHREAD, ITERS);
    cbx_breaker_store_free(inherited);

    /* --- memory store: threads --- */
    cbx_breaker_store *mem = NULL;
    CHECK(cbx_breaker_store_memory_new(&mem, NULL) == 0);
    counts mc[8] = {{0}};
    run_threads(mem, &o, mc, 8, MITERS, 99);
    check_totals(mem, sum(mc, 8), 8, MITERS);
    cbx_breaker_store_free(mem);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    printf("ok\n");
    return 0;
}
