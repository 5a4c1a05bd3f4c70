/* Runtimes on threads of their own, each sending GETs through the http executor to one real
 * loopback server (tests/helpers/http_server) at once: the way a program spreads HTTP work over
 * cores. Every request must succeed, and under TSan the executor's shared state (curl's global
 * initialisation, the lazy load of libcurl; each runtime's context comes from the type's
 * loop_init hook) must show no race. */
#define _GNU_SOURCE
#include "http_server_spawn.h"
#include "stress/stress.h"

#include "cbx/runtime.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS    4
#define REQUESTS   400 /* per thread */
#define CONCURRENT 16  /* per runtime */

static char url[128];

typedef struct worker {
    pthread_t th;
    uint64_t ok, done;
    char first_error[400];
} worker;

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    worker *w = ud;
    w->done++;
    if (res->status == CBX_STATUS_SUCCESS)
        w->ok++;
    else if (!w->first_error[0])
        snprintf(w->first_error, sizeof w->first_error, "%s: %s", cbx_status_name(res->status),
                 res->error);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    cbx_runtime *rt = NULL;
    cbx_err err;
    cbx_runtime_opts o = {.max_concurrent = CONCURRENT, .max_queued = REQUESTS};
    CHECK(cbx_runtime_new(&rt, &o, &err) == 0, "%s", err.msg);
    json_t *params = json_pack("{s:s}", "url", url); /* jansson's counts are per thread */
    for (int round = 0; round < 2; round++) {        /* the second reuses connections */
        for (int i = 0; i < REQUESTS / 2; i++) {
            cbx_request q = {.executor = "http", .params = params, .on_done = on_done, .ud = w};
            CHECK(cbx_runtime_submit(rt, &q, NULL, NULL) == 0);
        }
        CHECK(cbx_runtime_run(rt) == 0);
    }
    json_decref(params);
    cbx_runtime_free(rt);
    return NULL;
}

int main(void)
{
    pid_t server = -1;
    char why[300];
    int port =
        cbx_test_http_server_spawn(CBX_TEST_BIN_DIR "/http_server", &server, why, sizeof why);
    CHECK(port > 0, "%s", why);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);

    worker ws[THREADS];
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(ws[i].th, NULL);
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    for (int i = 0; i < THREADS; i++) {
        CHECK(ws[i].done == REQUESTS, "thread %d: %llu of %d ended", i,
              (unsigned long long)ws[i].done, REQUESTS);
        CHECK(ws[i].ok == REQUESTS, "thread %d: %llu of %d succeeded; first: %s", i,
              (unsigned long long)ws[i].ok, REQUESTS, ws[i].first_error);
    }
    printf("http threads: %d runtimes x %d GETs, all succeeded\n", THREADS, REQUESTS);
    return 0;
}
