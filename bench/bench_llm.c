/* bench_llm - chat completions through the llm executor against the scripted model server
 * (tests/helpers/fake_llm), 64 at a time: plain and streamed, OpenAI and Ollama protocols.
 *
 * Each case makes --iters calls (default 4000) on one runtime with max_concurrent 64 and reports
 * ns per call (wall-clock), plus notes with calls per second and the client's CPU per call
 * (user + system of this process: libcurl, the executor, the runtime), and, for the
 * llm.inflight case, the heap held per conversation in flight (1,000 calls parked on a server
 * that delays its answers, malloc'd bytes from mallinfo2 before and at the peak). The Node
 * clients on the same server are bench/llm_peers.mjs (run by bench/llm_peers.sh).
 *
 * The llm.*.own_cost cases measure what the executor adds to the HTTP exchange: in one run,
 * alternating passes of the http executor POSTing the very body and headers the llm call sends
 * (its answer kept as an unparsed string) and of the llm call, each --iters at concurrency 64;
 * the value is the difference of the least client CPU per call of each (ns), and the note gives
 * both. Instruction counts of the same passes: valgrind --tool=callgrind
 * --dump-after='exec_pass*' build/bench/bench_llm --case llm.openai.plain.own_cost --runs 1
 * (part 3 of the dump is the http pass, part 4 the llm pass).
 */
#define _GNU_SOURCE
#include "alloc_count.h"
#include "timing.h"

#include "cbx/runtime.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

#define ANSWER "Circuit breakers stop calls to a failing service until it recovers."

static char server_path[512];

static void find_server(const char *argv0)
{
    const char *env = getenv("CBX_FAKE_LLM");
    if (env) {
        snprintf(server_path, sizeof server_path, "%s", env);
        return;
    }
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        snprintf(self, sizeof self, "%s", argv0);
    else
        self[n] = 0;
    snprintf(server_path, sizeof server_path, "%s/../tests/fake_llm", dirname(self));
}

/* Start fake_llm with a script: its pid in *pid, its port returned (-1 on failure). */
static int start_server(const char *script, pid_t *pid)
{
    char path[] = "/tmp/cbx-bench-llm-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    if (write(fd, script, strlen(script)) != (ssize_t)strlen(script)) {
        close(fd);
        return -1;
    }
    close(fd);
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = {server_path, "--script", path, "--die-with-parent", NULL};
    int rc = posix_spawn(pid, server_path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    int port = -1;
    FILE *f = rc == 0 ? fdopen(fds[0], "r") : NULL;
    if (!f || fscanf(f, "%d", &port) != 1)
        port = -1;
    if (f)
        fclose(f);
    else
        close(fds[0]);
    unlink(path);
    return port;
}

static void stop_server(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

typedef struct pass {
    uint64_t ok, failed;
    int http; /* the http executor's answers: a 200 with a body is a success */
    char first_error[200];
    size_t heap0, heap_peak;
    uint64_t inflight_target;
} pass;

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    pass *p = ud;
    const char *c = json_string_value(json_object_get(res->outputs, p->http ? "body" : "content"));
    int good = p->http ? c && strlen(c) > strlen(ANSWER) /* the answer, in JSON or events */
                       : c && strcmp(c, ANSWER) == 0;
    if (res->status == CBX_STATUS_SUCCESS && good) {
        p->ok++;
    } else {
        if (p->failed++ == 0)
            snprintf(p->first_error, sizeof p->first_error, "%s: %.180s",
                     cbx_status_name(res->status), res->error);
    }
}

/* Submit n calls of executor with params on a fresh runtime (max_concurrent conc), run them. */
static int exec_pass(const char *executor, const json_t *params, uint64_t n, uint32_t conc, pass *p)
{
    cbx_runtime *rt;
    cbx_err err;
    if (cbx_runtime_new(&rt, &(cbx_runtime_opts){.max_concurrent = conc, .max_queued = 1000000},
                        &err) != 0)
        return -1;
    for (uint64_t i = 0; i < n; i++)
        cbx_runtime_submit(
            rt, &(cbx_request){.executor = executor, .params = params, .on_done = on_done, .ud = p},
            NULL, NULL);
    cbx_runtime_run(rt);
    cbx_runtime_free(rt);
    return 0;
}

static int one_pass(const json_t *params, uint64_t n, uint32_t conc, pass *p)
{
    return exec_pass("llm", params, n, conc, p);
}

static void run_case(const bench_args *a, const char *name, int ollama, int stream)
{
    pid_t pid;
    int port = start_server(
        "{\"turns\": [{\"content\": \"" ANSWER "\", \"chunk_chars\": 8, \"repeat\": -1}]}", &pid);
    if (port < 0) {
        printf("# FAIL\t%s: cannot start %s (build the tests, or set CBX_FAKE_LLM)\n", name,
               server_path);
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, ollama ? "" : "/v1");
    json_t *params =
        json_pack("{s:s, s:s, s:s, s:s, s:b}", "model", ollama ? "llama3.2" : "gpt-4o-mini",
                  ollama ? "ollama_base_url" : "base_url", url, "input",
                  "What does a circuit breaker do?", "api_key", "sk-bench", "stream", stream);
    if (ollama)
        json_object_del(params, "api_key");
    uint64_t n = a->iters ? a->iters : 4000;
    pass warm = {0};
    one_pass(params, n / 10 + 1, 64, &warm);
    double best = 0, best_cpu = 0;
    for (int r = 0; r < a->runs; r++) {
        pass p = {0};
        uint64_t c0 = cpu_ns(), t0 = bench_now_ns();
        one_pass(params, n, 64, &p);
        uint64_t t1 = bench_now_ns(), c1 = cpu_ns();
        if (p.ok != n) {
            printf("# FAIL\t%s: %" PRIu64 " of %" PRIu64 " calls succeeded; first: %s\n", name,
                   p.ok, n, p.first_error);
            break;
        }
        double ns = (double)(t1 - t0) / (double)n, cpu = (double)(c1 - c0) / (double)n;
        if (r == 0 || ns < best)
            best = ns;
        if (r == 0 || cpu < best_cpu)
            best_cpu = cpu;
    }
    if (best > 0) {
        bench_emit(name, best, -1, n);
        printf("# note\t%s: %.0f calls/s at concurrency 64 (best of %d passes of %" PRIu64
               "), client CPU %.1f us per call\n",
               name, 1e9 / best, a->runs, n, best_cpu / 1000.0);
    }
    json_decref(params);
    stop_server(pid);
}

static void plain_openai(const bench_args *a, const char *name)
{
    run_case(a, name, 0, 0);
}
static void stream_openai(const bench_args *a, const char *name)
{
    run_case(a, name, 0, 1);
}
static void plain_ollama(const bench_args *a, const char *name)
{
    run_case(a, name, 1, 0);
}
static void stream_ollama(const bench_args *a, const char *name)
{
    run_case(a, name, 1, 1);
}

/* ---- cbx's own cost beyond the HTTP transfer ------------------------------------------------
 * The same exchange two ways in one run against one server: the http executor POSTing the very
 * body (and headers) the llm executor sends, its answer kept as an unparsed string (the HTTP
 * transfer through the runtime: libcurl, the loop, the task), and the llm call. The difference
 * in client CPU per call is what the llm executor adds: the request built, the answer parsed,
 * the outputs made. Passes alternate (http, llm, http, llm, ...) so that both see the same
 * load; the least CPU per call of each is kept. */

static void own_cost(const bench_args *a, const char *name, int ollama, int stream)
{
    pid_t pid;
    int port = start_server(
        "{\"turns\": [{\"content\": \"" ANSWER "\", \"chunk_chars\": 8, \"repeat\": -1}]}", &pid);
    if (port < 0) {
        printf("# FAIL\t%s: cannot start %s\n", name, server_path);
        return;
    }
    char base[64], url[96];
    snprintf(base, sizeof base, "http://127.0.0.1:%d%s", port, ollama ? "" : "/v1");
    snprintf(url, sizeof url, "%s%s", base, ollama ? "/api/chat" : "/chat/completions");
    const char *model = ollama ? "llama3.2" : "gpt-4o-mini";
    const char *input = "What does a circuit breaker do?";
    json_t *llm =
        json_pack("{s:s, s:s, s:s, s:b}", "model", model, ollama ? "ollama_base_url" : "base_url",
                  base, "input", input, "stream", stream);
    if (!ollama)
        json_object_set_new(llm, "api_key", json_string("sk-bench"));
    /* the body and headers the llm executor sends (src/executors/llm/wire.c, transfer.c) */
    json_t *body = json_pack("{s:s, s:[{s:s, s:s}], s:b}", "model", model, "messages", "role",
                             "user", "content", input, "stream", stream);
    if (stream && !ollama)
        json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *headers = json_pack("{s:s}", "Content-Type", "application/json");
    if (!ollama)
        json_object_set_new(headers, "Authorization", json_string("Bearer sk-bench"));
    if (stream)
        json_object_set_new(headers, "Accept",
                            json_string(ollama ? "application/x-ndjson" : "text/event-stream"));
    json_t *http = json_pack("{s:s, s:s, s:s, s:o, s:b}", "url", url, "method", "POST", "body",
                             text, "headers", headers, "parse_json", 0);
    free(text);
    json_decref(body);
    uint64_t n = a->iters ? a->iters : 4000;
    pass warm = {.http = 1}, warm2 = {0};
    exec_pass("http", http, n / 10 + 1, 64, &warm);
    exec_pass("llm", llm, n / 10 + 1, 64, &warm2);
    double best_http = 0, best_llm = 0;
    int ok = 1;
    for (int r = 0; r < a->runs && ok; r++) {
        for (int which = 0; which < 2; which++) {
            pass p = {.http = which == 0};
            uint64_t c0 = cpu_ns();
            exec_pass(which == 0 ? "http" : "llm", which == 0 ? http : llm, n, 64, &p);
            double cpu = (double)(cpu_ns() - c0) / (double)n;
            if (p.ok != n) {
                printf("# FAIL\t%s: %s: %" PRIu64 " of %" PRIu64 " calls succeeded; first: %s\n",
                       name, which == 0 ? "http" : "llm", p.ok, n, p.first_error);
                ok = 0;
                break;
            }
            double *best = which == 0 ? &best_http : &best_llm;
            if (r == 0 || cpu < *best)
                *best = cpu;
        }
    }
    if (ok) {
        bench_emit(name, best_llm - best_http, -1, n);
        printf("# note\t%s: client CPU per call: llm %.1f us, the http executor's POST of the "
               "same body %.1f us: the llm executor's own cost %.1f us per call (target < 20; "
               "least of %d alternating passes of %" PRIu64 " each; the value column is CPU ns "
               "beyond the transfer)\n",
               name, best_llm / 1000.0, best_http / 1000.0, (best_llm - best_http) / 1000.0,
               a->runs, n);
    }
    json_decref(llm);
    json_decref(http);
    stop_server(pid);
}

static void own_openai_plain(const bench_args *a, const char *name)
{
    own_cost(a, name, 0, 0);
}
static void own_openai_stream(const bench_args *a, const char *name)
{
    own_cost(a, name, 0, 1);
}
static void own_ollama_plain(const bench_args *a, const char *name)
{
    own_cost(a, name, 1, 0);
}
static void own_ollama_stream(const bench_args *a, const char *name)
{
    own_cost(a, name, 1, 1);
}

/* ---- memory per conversation in flight ---------------------------------------------------------
 */

static void peek_heap(uv_timer_t *t)
{
    pass *p = t->data;
    struct mallinfo2 mi = mallinfo2();
    if (mi.uordblks > p->heap_peak)
        p->heap_peak = mi.uordblks;
    if (p->ok + p->failed >= p->inflight_target)
        uv_close((uv_handle_t *)t, NULL);
}

static void inflight(const bench_args *a, const char *name)
{
    (void)a;
    pid_t pid;
    int port = start_server(
        "{\"turns\": [{\"content\": \"" ANSWER "\", \"delay_ms\": 1500, \"repeat\": -1}]}", &pid);
    if (port < 0) {
        printf("# FAIL\t%s: cannot start %s\n", name, server_path);
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    json_t *params = json_pack("{s:s, s:s, s:s}", "model", "gpt-4o-mini", "base_url", url, "input",
                               "What does a circuit breaker do?");
    const uint64_t n = 1000;
    cbx_runtime *rt;
    cbx_err err;
    if (cbx_runtime_new(&rt, &(cbx_runtime_opts){.max_concurrent = 2000}, &err) != 0)
        return;
    pass warm = {0};
    one_pass(params, 8, 8, &warm); /* libcurl loaded, caches made */
    pass p = {.inflight_target = n};
    p.heap0 = mallinfo2().uordblks;
    for (uint64_t i = 0; i < n; i++) {
        /* each with its own parameters: a real workload does not share one object */
        json_t *own = json_deep_copy(params);
        cbx_runtime_submit(
            rt, &(cbx_request){.executor = "llm", .params = own, .on_done = on_done, .ud = &p},
            NULL, NULL);
        json_decref(own);
    }
    uv_timer_t t;
    uv_timer_init(cbx_runtime_loop(rt), &t);
    t.data = &p;
    uv_timer_start(&t, peek_heap, 200, 100);
    cbx_runtime_run(rt);
    cbx_runtime_free(rt);
    if (p.ok != n)
        printf("# FAIL\t%s: %" PRIu64 " of %" PRIu64 " calls succeeded; first: %s\n", name, p.ok, n,
               p.first_error);
    else {
        double per = (double)(p.heap_peak - p.heap0) / (double)n;
        bench_emit(name, per, -1, n);
        printf("# note\t%s: %.1f KiB of heap per conversation in flight (%" PRIu64
               " parked on a delayed answer; the value column is bytes, not ns)\n",
               name, per / 1024.0, n);
    }
    json_decref(params);
    stop_server(pid);
}

int main(int argc, char **argv)
{
    find_server(argv[0]);
    static const bench_case cases[] = {
        {"llm.openai.plain.c64", plain_openai},
        {"llm.openai.stream.c64", stream_openai},
        {"llm.ollama.plain.c64", plain_ollama},
        {"llm.ollama.stream.c64", stream_ollama},
        {"llm.inflight.heap_bytes", inflight},
        {"llm.openai.plain.own_cost", own_openai_plain},
        {"llm.openai.stream.own_cost", own_openai_stream},
        {"llm.ollama.plain.own_cost", own_ollama_plain},
        {"llm.ollama.stream.own_cost", own_ollama_stream},
    };
    return bench_main(argc, argv, "bench_llm", cases, sizeof cases / sizeof cases[0],
                      alloc_count_selftest);
}
