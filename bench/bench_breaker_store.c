/* bench/bench_breaker_store.c - cost of a guarded call through the breaker stores, and of the
 * locking schemes a host-wide store could be built on.
 *
 * Cases run by default (each line "name<TAB>ns_per_call<TAB>allocs_per_call<TAB>calls_per_run",
 * see timing.h; a call is one acquire + record(success) pair unless said otherwise):
 *   store.memory.acquire_record  the memory store, one name, CLOSED
 *   store.host.acquire_record    the host store, one name, one process: the record is this
 *                                process's own last write, so nothing is loaded, the state is
 *                                saved back after record
 *   store.host.acquire_record.alternating
 *                                two host-store handles on one file taking turns, as two
 *                                processes would: every operation loads the state the other
 *                                handle saved
 *   store.host.reject            acquire refused by an OPEN breaker through the host store
 * Every default case is allocation-free per call (checked, as in bench_breaker.c) and checks
 * through cbx_breaker_store_show that every call was counted.
 *
 * Cases run only when named with --case (they allocate per call, or compare alternatives):
 *   store.host.open_call_close   open the store, acquire, record, close: what one
 *                                `cbx exec --breaker NAME` process pays for the store
 *   lock.ofd                     one F_OFD_SETLKW lock + unlock of a byte (per pair)
 *   lock.flock                   one flock(LOCK_EX) + flock(LOCK_UN) of a lock file
 *   lock.robust_mutex            one lock + unlock of a robust process-shared pthread mutex in
 *                                a MAP_SHARED file mapping
 *   alt.sqlite                   the same acquire + record as two SQLite transactions (BEGIN
 *                                IMMEDIATE; read a 300-byte state; write it; COMMIT) in WAL
 *                                mode with synchronous=NORMAL
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cbx/breaker.h"
#include "cbx/breaker_store.h"

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
static char dir[64] = "/tmp/cbx-bench-store-XXXXXX";
static char path[128];

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_breaker_store: %s: %s\n", what, detail);
    exit(3);
}

/* ---- store cases --------------------------------------------------------------------------- */

typedef struct store_ctx {
    cbx_breaker_store *s[2];
    int n; /* handles taking turns */
    cbx_breaker_opts o;
} store_ctx;

static void loop_acquire_record(void *arg, uint64_t iters)
{
    store_ctx *c = arg;
    for (uint64_t i = 0; i < iters; i++) {
        cbx_breaker_store *s = c->s[i % (uint64_t)c->n];
        cbx_permit p = cbx_breaker_store_acquire(s, "bench", &c->o, NULL);
        cbx_breaker_store_record(s, "bench", p, CBX_OUTCOME_SUCCESS, (int64_t)(1000 + (i & 1023)));
        BENCH_KEEP(p.rc);
    }
}

static void loop_reject(void *arg, uint64_t iters)
{
    store_ctx *c = arg;
    for (uint64_t i = 0; i < iters; i++) {
        cbx_permit p = cbx_breaker_store_acquire(c->s[0], "bench", &c->o, NULL);
        BENCH_KEEP(p.rc);
    }
}

static json_int_t shown(cbx_breaker_store *s, const char *key)
{
    json_t *m = NULL;
    cbx_err err;
    if (cbx_breaker_store_show(s, "bench", &m, &err) != 0)
        die("show", err.msg);
    json_int_t v = json_integer_value(json_object_get(m, key));
    json_decref(m);
    return v;
}

static void open_host(cbx_breaker_store **s)
{
    cbx_err err;
    if (cbx_breaker_store_host_new(s, path, &err) != 0)
        die("cbx_breaker_store_host_new", err.msg);
}

static void fresh_file(void)
{
    unlink(path);
}

static void run_store(const bench_args *a, const char *name, store_ctx *c, bench_loop_fn loop,
                      uint64_t default_iters, const char *counter)
{
    uint64_t iters = a->iters ? a->iters : default_iters;
    uint64_t warm = iters / 10;
    uint64_t calls = warm + iters * (uint64_t)a->runs;
    /* first use (creates the breaker and the record) outside the counted part */
    for (int i = 0; i < c->n; i++)
        cbx_breaker_store_record(c->s[i], "bench",
                                 cbx_breaker_store_acquire(c->s[i], "bench", &c->o, NULL),
                                 CBX_OUTCOME_SUCCESS, 1);
    json_int_t before = shown(c->s[0], counter);
    uint64_t a0 = alloc_count_total();
    double ns = bench_best_ns(loop, c, iters, a->runs, warm);
    uint64_t allocs = alloc_count_total() - a0;
    json_int_t after = shown(c->s[0], counter);
    if ((uint64_t)(after - before) != calls) {
        printf("# FAIL\t%s: %" PRIu64 " calls, the breaker counted %lld %s\n", name, calls,
               (long long)(after - before), counter);
        failed = 1;
    }
    if (allocs) {
        printf("# FAIL\t%s: %" PRIu64 " allocations in %" PRIu64 " calls\n", name, allocs, calls);
        failed = 1;
    }
    bench_emit(name, ns, (double)allocs / (double)calls, iters);
}

static void case_memory(const bench_args *a, const char *name)
{
    store_ctx c = {.n = 1};
    cbx_breaker_opts_default(&c.o);
    cbx_err err;
    if (cbx_breaker_store_memory_new(&c.s[0], &err) != 0)
        die("cbx_breaker_store_memory_new", err.msg);
    run_store(a, name, &c, loop_acquire_record, 5000000, "successes");
    cbx_breaker_store_free(c.s[0]);
}

static void case_host(const bench_args *a, const char *name)
{
    fresh_file();
    store_ctx c = {.n = 1};
    cbx_breaker_opts_default(&c.o);
    open_host(&c.s[0]);
    run_store(a, name, &c, loop_acquire_record, 300000, "successes");
    cbx_breaker_store_free(c.s[0]);
}

static void case_host_alternating(const bench_args *a, const char *name)
{
    fresh_file();
    store_ctx c = {.n = 2};
    cbx_breaker_opts_default(&c.o);
    open_host(&c.s[0]);
    open_host(&c.s[1]);
    run_store(a, name, &c, loop_acquire_record, 300000, "successes");
    cbx_breaker_store_free(c.s[0]);
    cbx_breaker_store_free(c.s[1]);
}

static void case_host_reject(const bench_args *a, const char *name)
{
    fresh_file();
    store_ctx c = {.n = 1};
    cbx_breaker_opts_default(&c.o);
    c.o.consecutive_failures = 1;
    c.o.open_ns = 3600 * CBX_NS_PER_S;
    open_host(&c.s[0]);
    cbx_breaker_store_record(c.s[0], "bench",
                             cbx_breaker_store_acquire(c.s[0], "bench", &c.o, NULL),
                             CBX_OUTCOME_ERROR, 1);
    uint64_t iters = a->iters ? a->iters : 300000;
    uint64_t warm = iters / 10, calls = warm + iters * (uint64_t)a->runs;
    json_int_t before = shown(c.s[0], "rejections");
    uint64_t a0 = alloc_count_total();
    double ns = bench_best_ns(loop_reject, &c, iters, a->runs, warm);
    uint64_t allocs = alloc_count_total() - a0;
    json_int_t after = shown(c.s[0], "rejections");
    if ((uint64_t)(after - before) != calls) {
        printf("# FAIL\t%s: %" PRIu64 " calls, %lld refused\n", name, calls,
               (long long)(after - before));
        failed = 1;
    }
    if (allocs) {
        printf("# FAIL\t%s: %" PRIu64 " allocations in %" PRIu64 " calls\n", name, allocs, calls);
        failed = 1;
    }
    bench_emit(name, ns, (double)allocs / (double)calls, iters);
    cbx_breaker_store_free(c.s[0]);
}

static void loop_open_call_close(void *arg, uint64_t iters)
{
    (void)arg;
    for (uint64_t i = 0; i < iters; i++) {
        cbx_breaker_store *s;
        open_host(&s);
        cbx_permit p = cbx_breaker_store_acquire(s, "bench", NULL, NULL);
        cbx_breaker_store_record(s, "bench", p, CBX_OUTCOME_SUCCESS, 1000);
        cbx_breaker_store_free(s);
    }
}

static void case_open_call_close(const bench_args *a, const char *name)
{
    fresh_file();
    uint64_t iters = a->iters ? a->iters : 20000;
    uint64_t a0 = alloc_count_total();
    double ns = bench_best_ns(loop_open_call_close, NULL, iters, a->runs, iters / 10);
    uint64_t calls = iters / 10 + iters * (uint64_t)a->runs;
    bench_emit(name, ns, (double)(alloc_count_total() - a0) / (double)calls, iters);
}

/* ---- locking schemes ----------------------------------------------------------------------- */

static void loop_ofd(void *arg, uint64_t iters)
{
    int fd = *(int *)arg;
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 4096, .l_len = 1};
    struct flock un = lk;
    un.l_type = F_UNLCK;
    for (uint64_t i = 0; i < iters; i++) {
        if (fcntl(fd, F_OFD_SETLKW, &lk) != 0 || fcntl(fd, F_OFD_SETLK, &un) != 0)
            die("fcntl", strerror(errno));
    }
}

static void loop_flock(void *arg, uint64_t iters)
{
    int fd = *(int *)arg;
    for (uint64_t i = 0; i < iters; i++) {
        if (flock(fd, LOCK_EX) != 0 || flock(fd, LOCK_UN) != 0)
            die("flock", strerror(errno));
    }
}

static void loop_robust(void *arg, uint64_t iters)
{
    pthread_mutex_t *mu = arg;
    for (uint64_t i = 0; i < iters; i++) {
        if (pthread_mutex_lock(mu) != 0)
            die("pthread_mutex_lock", "failed");
        pthread_mutex_unlock(mu);
    }
}

static int lock_file(void)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, 8192) != 0)
        die(path, strerror(errno));
    return fd;
}

static void case_lock(const bench_args *a, const char *name)
{
    fresh_file();
    int fd = lock_file();
    uint64_t iters = a->iters ? a->iters : 2000000;
    double ns;
    if (strcmp(name, "lock.ofd") == 0) {
        ns = bench_best_ns(loop_ofd, &fd, iters, a->runs, iters / 10);
    } else if (strcmp(name, "lock.flock") == 0) {
        ns = bench_best_ns(loop_flock, &fd, iters, a->runs, iters / 10);
    } else {
        pthread_mutex_t *mu = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        pthread_mutexattr_t at;
        if (mu == MAP_FAILED)
            die("mmap", strerror(errno));
        pthread_mutexattr_init(&at);
        pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(mu, &at);
        ns = bench_best_ns(loop_robust, mu, iters, a->runs, iters / 10);
        pthread_mutex_destroy(mu);
        munmap(mu, 4096);
    }
    close(fd);
    bench_emit(name, ns, -1, iters);
}

typedef struct sql_ctx {
    sqlite3 *db;
    sqlite3_stmt *begin, *get, *put, *commit;
    unsigned char blob[300];
} sql_ctx;

static void sql_step(sqlite3 *db, sqlite3_stmt *st)
{
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE && r != SQLITE_ROW)
        die("sqlite3_step", sqlite3_errmsg(db));
    sqlite3_reset(st);
}

static void sql_txn(sql_ctx *c)
{
    sql_step(c->db, c->begin);
    if (sqlite3_step(c->get) != SQLITE_ROW)
        die("sqlite3_step", sqlite3_errmsg(c->db));
    memcpy(c->blob, sqlite3_column_blob(c->get, 0), sizeof c->blob);
    sqlite3_reset(c->get);
    c->blob[0]++;
    sqlite3_bind_blob(c->put, 1, c->blob, sizeof c->blob, SQLITE_STATIC);
    sql_step(c->db, c->put);
    sql_step(c->db, c->commit);
}

static void loop_sqlite(void *arg, uint64_t iters)
{
    for (uint64_t i = 0; i < iters; i++) {
        sql_txn(arg); /* acquire */
        sql_txn(arg); /* record */
    }
}

static void case_sqlite(const bench_args *a, const char *name)
{
    char db_path[160];
    snprintf(db_path, sizeof db_path, "%s/breakers.db", dir);
    unlink(db_path);
    sql_ctx c = {0};
    if (sqlite3_open(db_path, &c.db) != SQLITE_OK)
        die("sqlite3_open", db_path);
    const char *setup = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                        "CREATE TABLE b(name TEXT PRIMARY KEY, state BLOB);"
                        "INSERT INTO b VALUES('bench', zeroblob(300));";
    if (sqlite3_exec(c.db, setup, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c.db, "BEGIN IMMEDIATE", -1, &c.begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c.db, "SELECT state FROM b WHERE name='bench'", -1, &c.get, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(c.db, "UPDATE b SET state=?1 WHERE name='bench'", -1, &c.put, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(c.db, "COMMIT", -1, &c.commit, NULL) != SQLITE_OK)
        die("sqlite", sqlite3_errmsg(c.db));
    uint64_t iters = a->iters ? a->iters : 50000;
    uint64_t a0 = alloc_count_total();
    double ns = bench_best_ns(loop_sqlite, &c, iters, a->runs, iters / 10);
    uint64_t calls = iters / 10 + iters * (uint64_t)a->runs;
    bench_emit(name, ns, (double)(alloc_count_total() - a0) / (double)calls, iters);
    sqlite3_finalize(c.begin);
    sqlite3_finalize(c.get);
    sqlite3_finalize(c.put);
    sqlite3_finalize(c.commit);
    sqlite3_close(c.db);
}

/* ---- main ---------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(const bench_args *a, const char *name);
    int on_request; /* only with --case NAME */
} cases[] = {
    {"store.memory.acquire_record", case_memory, 0},
    {"store.host.acquire_record", case_host, 0},
    {"store.host.acquire_record.alternating", case_host_alternating, 0},
    {"store.host.reject", case_host_reject, 0},
    {"store.host.open_call_close", case_open_call_close, 1},
    {"lock.ofd", case_lock, 1},
    {"lock.flock", case_lock, 1},
    {"lock.robust_mutex", case_lock, 1},
    {"alt.sqlite", case_sqlite, 1},
};

int main(int argc, char **argv)
{
    bench_args a;
    if (bench_args_parse(&a, argc, argv) != 0)
        return 2;
    if (a.list) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            printf("%s%s\n", cases[i].name, cases[i].on_request ? "\t(with --case only)" : "");
        return 0;
    }
    if (!a.no_selftest && alloc_count_selftest() != 0) {
        fprintf(stderr, "bench_breaker_store: the counting allocator is not in effect\n");
        return 3;
    }
    if (!mkdtemp(dir))
        die("mkdtemp", strerror(errno));
    snprintf(path, sizeof path, "%s/breakers", dir);
    printf("# build\t%s\t%s\n", CBX_BENCH_BUILD_TYPE, CBX_BENCH_CFLAGS);
    printf("# compiler\t%s\n", CBX_BENCH_COMPILER);
    printf("# runs\t%d\n", a.runs);
    printf("# note\tbench_breaker_store: files in %s\n", dir);

    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (a.only ? strcmp(a.only, cases[i].name) != 0 : cases[i].on_request)
            continue;
        cases[i].run(&a, cases[i].name);
        ran++;
    }
    char db[160];
    snprintf(db, sizeof db, "%s/breakers.db", dir);
    unlink(path);
    unlink(db);
    strcat(db, "-wal");
    unlink(db);
    db[strlen(db) - 4] = '\0';
    strcat(db, "-shm");
    unlink(db);
    rmdir(dir);
    if (ran == 0) {
        fprintf(stderr, "bench_breaker_store: no case named %s\n", a.only);
        return 2;
    }
    return failed ? 1 : 0;
}
