/* The serverless executor's local backend (function_dir) through the runtime, with real runtime
 * processes: a shell bootstrap in the manner of AWS's custom runtime tutorial (curl against the
 * Runtime API cbx hosts) and python3 handlers through cbx's own bootstrap. One runtime stays warm
 * across 100 invocations; a crash (the runtime killed from outside, or its handler ending it) is
 * reported and a new runtime takes the next invocation; a timeout kills the runtime's whole tree;
 * the concurrency limit holds; function errors and init errors are failures with their
 * messages; Node.js handlers (async, callback, thrown) through cbx's node bootstrap. Nothing here
 * depends on how fast the machine is. */
#include "cbx/runtime.h"
#include "executors/command.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FN_DIR CBX_SOURCE_DIR "/tests/serverless/local"

static cbx_runtime *rt;

static void setup(void)
{
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, NULL, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
}

TestSuite(lambda_local, .init = setup, .fini = teardown, .timeout = 600);

static int run_t(json_t *p, uint64_t timeout_ms, cbx_result *r)
{
    int rc = cbx_runtime_execute(rt,
                                 &(cbx_request){.executor = "serverless",
                                                .params = p,
                                                .timeout_ns = timeout_ms * CBX_NS_PER_MS},
                                 r, NULL);
    json_decref(p);
    return rc;
}

static json_t *bash_fn(const char *payload)
{
    return json_pack("{s:s, s:s, s:o, s:{s:s}}", "function_dir", FN_DIR "/bash", "handler",
                     "function.handler", "payload", json_loads(payload, 0, NULL), "environment",
                     "STAGE", "test");
}

static json_t *py_fn(const char *dir, const char *payload)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "function_dir", dir, "runtime", "python3", "handler",
                     "app.handler", "payload", json_loads(payload, 0, NULL));
}

static json_int_t meta_int(const cbx_result *r, const char *k)
{
    return json_integer_value(json_object_get(r->metadata, k));
}

static int meta_cold(const cbx_result *r)
{
    return json_is_true(json_object_get(r->metadata, "cold_start"));
}

/* 1 when some running process's environment holds mark (a runtime's tree is marked through its
 * `environment`). */
static int marked_process_left(const char *mark)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[65536];
        snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        for (ssize_t i = 0; i < n && !found; i += (ssize_t)strlen(buf + i) + 1) {
            buf[n] = '\0';
            found = strstr(buf + i, mark) != NULL;
        }
        if (found) {
            /* a zombie is not running: its parent (init, here) has yet to reap it */
            char stat[600] = "";
            snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
            FILE *f = fopen(path, "r");
            if (f) {
                if (!fgets(stat, sizeof stat, f))
                    stat[0] = '\0';
                fclose(f);
            }
            const char *end = strrchr(stat, ')');
            if (end && end[1] == ' ' && (end[2] == 'Z' || end[2] == 'X'))
                found = 0;
        }
    }
    closedir(d);
    return found;
}

Test(lambda_local, the_bash_bootstrap_answers_with_the_event_and_its_environment)
{
    cbx_result r;
    cr_assert_eq(run_t(bash_fn("{\"n\": 1}"), 0, &r), 0, "%s", r.error);
    json_t *pl = json_object_get(r.outputs, "payload");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(pl, "event"), "n")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(pl, "name")), "bash");
    cr_assert_str_eq(json_string_value(json_object_get(pl, "memory")), "128");
    cr_assert_str_eq(json_string_value(json_object_get(pl, "stage")), "test");
    cr_assert(json_is_true(json_object_get(r.outputs, "cold_start")));
    cr_assert_eq(json_integer_value(json_object_get(pl, "pid")),
                 json_integer_value(json_object_get(r.outputs, "runtime_pid")));
    cbx_result_clear(&r);
}

Test(lambda_local, one_runtime_stays_warm_across_100_invocations)
{
    json_int_t pid = 0;
    int cold = 0, warm = 0;
    for (int i = 0; i < 100; i++) {
        char ev[40];
        snprintf(ev, sizeof ev, "{\"i\": %d}", i);
        cbx_result r;
        cr_assert_eq(run_t(bash_fn(ev), 0, &r), 0, "%d: %s", i, r.error);
        json_t *pl = json_object_get(r.outputs, "payload");
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(pl, "event"), "i")), i);
        if (meta_cold(&r))
            cold++;
        else
            warm++;
        if (i == 0)
            pid = meta_int(&r, "runtime_pid");
        cr_assert_eq(meta_int(&r, "runtime_pid"), pid, "invocation %d had another runtime", i);
        cr_assert_eq(json_integer_value(json_object_get(pl, "pid")), pid);
        cbx_result_clear(&r);
    }
    cr_assert_eq(cold, 1);
    cr_assert_eq(warm, 99);
}

Test(lambda_local, a_runtime_killed_from_outside_is_replaced)
{
    cbx_result r;
    cr_assert_eq(run_t(bash_fn("{}"), 0, &r), 0, "%s", r.error);
    pid_t a = (pid_t)meta_int(&r, "runtime_pid");
    cbx_result_clear(&r);
    cr_assert_eq(kill(a, SIGKILL), 0);
    /* the runtime is cbx's child: its death is visible without reaping it */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    cr_assert_eq(waitid(P_PID, (id_t)a, &si, WEXITED | WNOWAIT), 0);
    cr_assert_eq(run_t(bash_fn("{}"), 0, &r), 0, "%s", r.error);
    cr_assert_neq(meta_int(&r, "runtime_pid"), a);
    cr_assert(meta_cold(&r));
    cbx_result_clear(&r);
}

Test(lambda_local, a_crash_mid_invocation_is_reported_and_the_next_gets_a_new_runtime)
{
    cbx_result r;
    cr_assert_eq(run_t(bash_fn("{}"), 0, &r), 0, "%s", r.error);
    json_int_t a = meta_int(&r, "runtime_pid");
    cbx_result_clear(&r);
    cr_assert_neq(run_t(bash_fn("{\"crash\": 1}"), 0, &r), 0);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert(strstr(r.error, "was killed by signal 9") && strstr(r.error, "crashing on purpose"),
              "%s", r.error);
    cr_assert_eq(meta_int(&r, "runtime_pid"), a);
    cbx_result_clear(&r);
    cr_assert_eq(run_t(bash_fn("{}"), 0, &r), 0, "%s", r.error);
    cr_assert_neq(meta_int(&r, "runtime_pid"), a);
    cr_assert(meta_cold(&r));
    cbx_result_clear(&r);

    /* python: the handler ends its runtime */
    cr_assert_neq(run_t(py_fn(FN_DIR "/py", "{\"crash\": 1}"), 0, &r), 0);
    cr_assert(strstr(r.error, "exited with code 7 during the invocation") &&
                  strstr(r.error, "crashing on purpose"),
              "%s", r.error);
    json_int_t b = meta_int(&r, "runtime_pid");
    cbx_result_clear(&r);
    cr_assert_eq(run_t(py_fn(FN_DIR "/py", "{}"), 0, &r), 0, "%s", r.error);
    cr_assert_neq(meta_int(&r, "runtime_pid"), b);
    cbx_result_clear(&r);
}

Test(lambda_local, a_timeout_kills_the_runtime_tree_and_a_new_runtime_follows)
{
    char mark[64];
    snprintf(mark, sizeof mark, "CBX_LAMBDA_TEST_MARK=%d.%ld", (int)getpid(), (long)random());
    const char *eq = strchr(mark, '=');
    json_t *p = bash_fn("{\"sleep\": 1}");
    json_object_set_new(json_object_get(p, "environment"), "CBX_LAMBDA_TEST_MARK",
                        json_string(eq + 1));
    cbx_result r;
    /* the handler sleeps 600 s in a child of its own: only the kill ends it */
    cr_assert_neq(run_t(json_deep_copy(p), 1000, &r), 0);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT, "%s", r.error);
    cr_assert(strstr(r.error, "timed out"), "%s", r.error);
    pid_t a = (pid_t)meta_int(&r, "runtime_pid");
    cbx_result_clear(&r);
    cr_assert(!marked_process_left(mark), "a process of the runtime's tree is left");
    cr_assert(kill(a, 0) < 0 && errno == ESRCH);
    /* the function's own timeout_ms does the same */
    json_object_set_new(p, "timeout_ms", json_integer(300));
    cr_assert_neq(run_t(json_deep_copy(p), 0, &r), 0);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT, "%s", r.error);
    cr_assert(strstr(r.error, "timed out"), "%s", r.error);
    cbx_result_clear(&r);
    cr_assert(!marked_process_left(mark), "a process of the runtime's tree is left");
    json_object_set_new(p, "payload", json_pack("{s:i}", "n", 2));
    json_object_del(p, "timeout_ms");
    cr_assert_eq(run_t(p, 0, &r), 0, "%s", r.error);
    cr_assert(meta_cold(&r));
    cbx_result_clear(&r);
}

Test(lambda_local, without_cgroups_a_timeout_still_kills_the_tree)
{
    cbx__cmd_no_cgroup = 1; /* the fallback: a subreaper and the CBX_TREE mark */
    char mark[64];
    snprintf(mark, sizeof mark, "CBX_LAMBDA_TEST_MARK=%d.%ld.nocg", (int)getpid(), (long)random());
    json_t *p = bash_fn("{\"sleep\": 1}");
    json_object_set_new(json_object_get(p, "environment"), "CBX_LAMBDA_TEST_MARK",
                        json_string(strchr(mark, '=') + 1));
    cbx_result r;
    cr_assert_neq(run_t(p, 1000, &r), 0);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT, "%s", r.error);
    cr_assert_str_eq(json_string_value(json_object_get(r.metadata, "tree")), "marked");
    cbx_result_clear(&r);
    cr_assert(!marked_process_left(mark), "a process of the runtime's tree is left");
    cbx__cmd_no_cgroup = 0;
}

Test(lambda_local, the_concurrency_limit_holds)
{
    char dir[] = "/tmp/cbx-lambda-hold.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    enum { N = 8 };
    cbx_request req[N];
    json_t *ps[N];
    for (int i = 0; i < N; i++) {
        char ev[100];
        snprintf(ev, sizeof ev, "{\"hold\": \"%s\"}", dir);
        ps[i] = py_fn(FN_DIR "/py", ev);
        json_object_set_new(ps[i], "concurrency", json_integer(2));
        req[i] = (cbx_request){.executor = "serverless", .params = ps[i]};
    }
    cbx_result res[N];
    cr_assert_eq(cbx_runtime_execute_many(rt, req, N, 0, res), N, "%s", res[0].error);
    json_int_t pids[N];
    int cold = 0, distinct = 0;
    for (int i = 0; i < N; i++) {
        json_t *pl = json_object_get(res[i].outputs, "payload");
        cr_assert_leq(json_integer_value(json_object_get(pl, "active")), 2);
        cold += meta_cold(&res[i]);
        json_int_t pid = meta_int(&res[i], "runtime_pid");
        int seen = 0;
        for (int j = 0; j < distinct; j++)
            seen |= pids[j] == pid;
        if (!seen)
            pids[distinct++] = pid;
        cbx_result_clear(&res[i]);
        json_decref(ps[i]);
    }
    /* all 8 arrived at once: two runtimes started, the other six waited for them */
    cr_assert_eq(distinct, 2);
    cr_assert_eq(cold, 2);
    rmdir(dir);
}

Test(lambda_local, a_function_error_is_a_failure_with_its_payload)
{
    cbx_result r;
    cr_assert_neq(run_t(py_fn(FN_DIR "/py", "{\"fail\": \"x\"}"), 0, &r), 0);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_str_eq(r.error,
                     "serverless: function py failed (Unhandled): ValueError: bad input: x");
    json_int_t pid = meta_int(&r, "runtime_pid");
    cbx_result_clear(&r);
    /* the runtime survives its handler's exception */
    cr_assert_eq(run_t(py_fn(FN_DIR "/py", "{}"), 0, &r), 0, "%s", r.error);
    cr_assert_eq(meta_int(&r, "runtime_pid"), pid);
    cr_assert(!meta_cold(&r));
    cbx_result_clear(&r);

    cr_assert_neq(run_t(bash_fn("{\"fail\": 1}"), 0, &r), 0);
    cr_assert_str_eq(
        r.error, "serverless: function bash failed (Unhandled): HandlerError: handler exited 3");
    cbx_result_clear(&r);
}

Test(lambda_local, an_init_error_is_reported)
{
    cbx_result r;
    cr_assert_neq(run_t(py_fn(FN_DIR "/broken", "{}"), 0, &r), 0);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert(strstr(r.error, "function broken failed to initialise (Runtime.ImportModuleError) "
                              "ModuleNotFoundError: No module named 'module_that_does_not_exist'"),
              "%s", r.error);
    cbx_result_clear(&r);
}

Test(lambda_local, the_python_context_has_the_request_id_and_a_deadline)
{
    cbx_result r;
    json_t *p = py_fn(FN_DIR "/py", "{\"n\": 5}");
    json_object_set_new(p, "region", json_string("eu-west-1"));
    cr_assert_eq(run_t(p, 600000, &r), 0, "%s", r.error);
    json_t *pl = json_object_get(r.outputs, "payload");
    cr_assert_str_eq(json_string_value(json_object_get(pl, "request_id")),
                     json_string_value(json_object_get(r.outputs, "request_id")));
    json_int_t left = json_integer_value(json_object_get(pl, "left_ms"));
    cr_assert(left > 0 && left <= 600000, "left_ms %lld", (long long)left);
    cr_assert_str_eq(json_string_value(json_object_get(pl, "arn")),
                     "arn:aws:lambda:eu-west-1:000000000000:function:py");
    cbx_result_clear(&r);
}

static json_t *node_fn(const char *handler, const char *payload)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:{s:s}}", "function_dir", FN_DIR "/node", "runtime",
                     "nodejs20.x", "handler", handler, "payload", json_loads(payload, 0, NULL),
                     "environment", "STAGE", "node");
}

Test(lambda_local, nodejs_handlers_async_callback_and_thrown)
{
    if (system("node --version >/dev/null 2>&1") != 0) {
        cr_skip_test("no node on PATH");
        return;
    }
    cbx_result r;
    cr_assert_eq(run_t(node_fn("index.handler", "{\"n\": 7}"), 600000, &r), 0, "%s", r.error);
    json_t *pl = json_object_get(r.outputs, "payload");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(pl, "event"), "n")), 7);
    cr_assert_str_eq(json_string_value(json_object_get(pl, "stage")), "node");
    cr_assert_str_eq(json_string_value(json_object_get(pl, "request_id")),
                     json_string_value(json_object_get(r.outputs, "request_id")));
    json_int_t left = json_integer_value(json_object_get(pl, "left_ms"));
    cr_assert(left > 0 && left <= 600000, "left_ms %lld", (long long)left);
    json_int_t pid = meta_int(&r, "runtime_pid");
    cr_assert_eq(json_integer_value(json_object_get(pl, "pid")), pid);
    cbx_result_clear(&r);
    cr_assert_eq(run_t(node_fn("index.handler", "{}"), 0, &r), 0, "%s", r.error);
    cr_assert_eq(meta_int(&r, "runtime_pid"), pid);
    cr_assert(!meta_cold(&r));
    cbx_result_clear(&r);

    cr_assert_eq(run_t(node_fn("index.callback", "[1, 2]"), 0, &r), 0, "%s", r.error);
    cr_assert_eq(
        json_array_size(json_object_get(json_object_get(r.outputs, "payload"), "called_back")), 2);
    cbx_result_clear(&r);

    cr_assert_neq(run_t(node_fn("index.fail", "{}"), 0, &r), 0);
    cr_assert_str_eq(r.error,
                     "serverless: function node failed (Unhandled): TypeError: not a number");
    cbx_result_clear(&r);

    cr_assert_neq(run_t(node_fn("index.nope", "{}"), 0, &r), 0);
    cr_assert(strstr(r.error, "function node failed to initialise (Runtime.ImportModuleError) "
                              "Error: index.nope is not a function"),
              "%s", r.error);
    cbx_result_clear(&r);
}
