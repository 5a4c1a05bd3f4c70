/* The host breaker store across real processes: each child is a fork that opens the store
 * file on its own, uses it and exits, as `cbx exec --breaker NAME` does. Most tests give the
 * children a virtual clock copied at fork (the parent moves it between children), so that
 * open times pass without waiting; one test runs on the real monotonic clock with short
 * waits. Also: the memory store, list/show JSON, and bad, foreign or damaged files. */
#include "cbx/breaker.h"
#include "cbx/breaker_store.h"
#include "cbx/clock.h"
#include "cbx/err.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MS CBX_NS_PER_MS
#define S  CBX_NS_PER_S

/* Byte offsets in the store file, as docs/breaker-store.md gives them. */
#define FILE_BOOT_ID_AT 24
#define FILE_VERSION_AT 8
#define FILE_HEADER     4096
#define FILE_RECORD     32768
#define RECORD_HEADER   512

/* ---- helpers ------------------------------------------------------------------------------- */

static char dir[256], path[300];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/cbx-bstore-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/breakers", dir);
}

static void remove_dir(void)
{
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(breaker_store, .init = make_dir, .fini = remove_dir, .timeout = 60);

/* What a child reports back, in memory shared with the parent. */
typedef struct report {
    int done;
    int open_rc;
    int rc;
    cbx_breaker_rejection why;
    cbx_permit permit;
    char text[600];
    char json[4096];
} report;

static report *shared_reports(int n)
{
    void *p = mmap(NULL, sizeof(report) * (size_t)n, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    memset(p, 0, sizeof(report) * (size_t)n);
    return p;
}

typedef void (*child_fn)(report *r, void *arg);

static pid_t start_child(child_fn fn, report *r, void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        fn(r, arg);
        r->done = 1;
        _exit(0);
    }
    return pid;
}

static void wait_child(pid_t pid)
{
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d ended with status %#x", pid, st);
}

/* Run fn in a child process and wait for it. */
static void in_child(child_fn fn, report *r, void *arg)
{
    wait_child(start_child(fn, r, arg));
    cr_assert(r->done, "the child did not finish");
}

static cbx_breaker_store *open_host(report *r)
{
    cbx_breaker_store *s = NULL;
    cbx_err err = {0};
    r->open_rc = cbx_breaker_store_host_new(&s, path, &err);
    if (r->open_rc)
        snprintf(r->text, sizeof r->text, "%s", err.msg);
    return s;
}

/* The options every child of a test uses. */
typedef struct plan {
    const char *name;
    cbx_breaker_opts opts;
    cbx_outcome outcome; /* what to record when admitted; IGNORED = record nothing */
} plan;

/* Open, acquire, record, close: one `cbx exec --breaker NAME` run. */
static void child_call(report *r, void *arg)
{
    plan *p = arg;
    cbx_breaker_store *s = open_host(r);
    if (!s)
        return;
    r->permit = cbx_breaker_store_acquire(s, p->name, &p->opts, &r->why);
    r->rc = r->permit.rc;
    cbx_breaker_store_explain(s, p->name, &r->why, r->text, sizeof r->text);
    if (r->rc == 0 && p->outcome != CBX_OUTCOME_IGNORED)
        cbx_breaker_store_record(s, p->name, r->permit, p->outcome, 5 * (int64_t)MS);
    cbx_breaker_store_free(s);
}

static void child_show(report *r, void *arg)
{
    cbx_breaker_store *s = open_host(r);
    if (!s)
        return;
    json_t *o = NULL;
    cbx_err err = {0};
    r->rc = cbx_breaker_store_show(s, arg, &o, &err);
    if (r->rc == 0) {
        char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(r->json, sizeof r->json, "%s", t);
        free(t);
        json_decref(o);
    } else {
        snprintf(r->text, sizeof r->text, "%s", err.msg);
    }
    cbx_breaker_store_free(s);
}

static void child_list(report *r, void *arg)
{
    (void)arg;
    cbx_breaker_store *s = open_host(r);
    if (!s)
        return;
    json_t *o = NULL;
    cbx_err err = {0};
    r->rc = cbx_breaker_store_list(s, &o, &err);
    if (r->rc == 0) {
        char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(r->json, sizeof r->json, "%s", t);
        free(t);
        json_decref(o);
    }
    cbx_breaker_store_free(s);
}

typedef struct mode_arg {
    const char *name;
    cbx_breaker_mode mode;
    int forget;
} mode_arg;

static void child_mode(report *r, void *arg)
{
    mode_arg *m = arg;
    cbx_breaker_store *s = open_host(r);
    if (!s)
        return;
    r->rc = m->forget ? cbx_breaker_store_forget(s, m->name)
                      : cbx_breaker_store_set_mode(s, m->name, m->mode);
    cbx_breaker_store_free(s);
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    cr_assert_not_null(j, "bad JSON (%s): %s", e.text, text);
    return j;
}

static json_int_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

static json_t *show_in_child(const char *name)
{
    report *r = shared_reports(1);
    in_child(child_show, r, (void *)name);
    cr_assert_eq(r->open_rc, 0, "open: %s", r->text);
    cr_assert_eq(r->rc, 0, "show %s: %s (%s)", name, cbx_strerror(r->rc), r->text);
    json_t *j = parse(r->json);
    munmap(r, sizeof *r);
    return j;
}

static cbx_breaker_opts opts_consecutive(uint32_t n, uint64_t open_ns, cbx_clock *clk)
{
    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.consecutive_failures = n;
    o.open_ns = open_ns;
    o.clock = clk;
    return o;
}

/* ---- processes in sequence ------------------------------------------------------------------ */

Test(breaker_store, trips_across_processes_and_refuses_with_the_reason)
{
    report *r = shared_reports(5);
    plan p = {"svc", opts_consecutive(3, 60 * S, NULL), CBX_OUTCOME_ERROR};
    for (int i = 0; i < 5; i++) {
        in_child(child_call, &r[i], &p);
        cr_assert_eq(r[i].open_rc, 0, "open: %s", r[i].text);
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(r[i].rc, 0, "process %d refused: %s", i, r[i].text);
    for (int i = 3; i < 5; i++) {
        cr_assert_eq(r[i].rc, CBX_ECIRCUIT_OPEN, "process %d: %s", i, cbx_err_name(r[i].rc));
        cr_assert_eq(r[i].why.state, CBX_BREAKER_OPEN);
        cr_assert_eq(r[i].why.reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
        cr_assert_eq(r[i].why.consecutive_failures, 3);
        cr_assert_gt(r[i].why.retry_in_ns, 50 * S, "retry in %llu ns",
                     (unsigned long long)r[i].why.retry_in_ns);
        cr_assert_leq(r[i].why.retry_in_ns, 60 * S);
        cr_assert(strstr(r[i].text, "breaker 'svc' is open: 3 consecutive failures; next probe in"),
                  "explained as: %s", r[i].text);
    }
    json_t *j = show_in_child("svc");
    cr_assert_str_eq(jstr(j, "state"), "open");
    cr_assert_eq(jint(j, "failures"), 3);
    cr_assert_eq(jint(j, "calls"), 3);
    cr_assert_eq(jint(j, "rejections"), 2);
    cr_assert_eq(jint(j, "opens"), 1);
    cr_assert_gt(jint(j, "retry_in_ms"), 50000);
    json_decref(j);
}

Test(breaker_store, recovers_after_the_open_time_on_a_virtual_clock)
{
    cbx_clock *clk = cbx_clock_virtual(1000000);
    report *r = shared_reports(8);
    plan fail = {"api", opts_consecutive(3, 30 * S, clk), CBX_OUTCOME_ERROR};
    plan ok = {"api", opts_consecutive(3, 30 * S, clk), CBX_OUTCOME_SUCCESS};
    for (int i = 0; i < 3; i++)
        in_child(child_call, &r[i], &fail);
    cbx_clock_advance(clk, 10000);
    in_child(child_call, &r[3], &ok);
    cr_assert_eq(r[3].rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(r[3].why.retry_in_ns, 20 * S);
    cbx_clock_advance(clk, 20000);
    in_child(child_call, &r[4], &ok); /* the probe, which succeeds */
    cr_assert_eq(r[4].rc, 0, "%s", r[4].text);
    cr_assert_eq(r[4].permit.state, CBX_BREAKER_HALF_OPEN);
    cr_assert_neq(r[4].permit.slot, 0, "not admitted as a probe");
    in_child(child_call, &r[5], &ok);
    cr_assert_eq(r[5].rc, 0);
    cr_assert_eq(r[5].permit.state, CBX_BREAKER_CLOSED);
    cr_assert_eq(r[5].permit.slot, 0);
    cbx_clock_free(clk);
}

Test(breaker_store, recovers_after_the_open_time_in_real_time)
{
    report *r = shared_reports(8);
    plan fail = {"rt", opts_consecutive(3, 200 * MS, NULL), CBX_OUTCOME_ERROR};
    plan ok = {"rt", opts_consecutive(3, 200 * MS, NULL), CBX_OUTCOME_SUCCESS};
    for (int i = 0; i < 2; i++)
        in_child(child_call, &r[i], &fail);
    uint64_t t0 = cbx_clock_now_ns(NULL);
    in_child(child_call, &r[2], &fail); /* trips */
    in_child(child_call, &r[3], &ok);
    uint64_t t1 = cbx_clock_now_ns(NULL);
    if (t1 - t0 < 150 * MS) {
        cr_assert_eq(r[3].rc, CBX_ECIRCUIT_OPEN, "not refused: %s", cbx_err_name(r[3].rc));
        cr_assert_leq(r[3].why.retry_in_ns, 200 * MS);
        cr_assert_gt(r[3].why.retry_in_ns, 0);
    } else {
        cr_log_warn("the machine is slow (%llu ms for two processes): refusal not checked",
                    (unsigned long long)((t1 - t0) / MS));
    }
    struct timespec ts = {0, 250 * 1000 * 1000};
    nanosleep(&ts, NULL);
    in_child(child_call, &r[4], &ok);
    cr_assert_eq(r[4].rc, 0, "the probe was refused: %s", r[4].text);
    cr_assert_eq(r[4].permit.state, CBX_BREAKER_HALF_OPEN);
    json_t *j = show_in_child("rt");
    cr_assert_str_eq(jstr(j, "state"), "closed");
    cr_assert_eq(jint(j, "successes"), 1);
    cr_assert_eq(jint(j, "retry_in_ms"), 0);
    json_decref(j);
    in_child(child_call, &r[5], &ok);
    cr_assert_eq(r[5].rc, 0);
    cr_assert_eq(r[5].permit.state, CBX_BREAKER_CLOSED);
}

/* ---- processes at once ---------------------------------------------------------------------- */

typedef struct probe_arg {
    plan p;
    int go[2];      /* closed by the parent: acquire now */
    int release[2]; /* closed by the parent: record and exit */
} probe_arg;

static void wait_closed(int fd)
{
    char c;
    while (read(fd, &c, 1) > 0)
        ;
}

static void child_probe(report *r, void *arg)
{
    probe_arg *a = arg;
    close(a->go[1]);
    close(a->release[1]);
    cbx_breaker_store *s = open_host(r);
    if (!s)
        return;
    wait_closed(a->go[0]);
    r->permit = cbx_breaker_store_acquire(s, a->p.name, &a->p.opts, &r->why);
    r->rc = r->permit.rc;
    __atomic_store_n(&r->json[0], 'x', __ATOMIC_RELEASE); /* "acquired" */
    wait_closed(a->release[0]);
    if (r->rc == 0)
        cbx_breaker_store_record(s, a->p.name, r->permit, CBX_OUTCOME_SUCCESS, 1);
    cbx_breaker_store_free(s);
}

Test(breaker_store, one_half_open_probe_between_two_processes)
{
    cbx_clock *clk = cbx_clock_virtual(5000);
    for (int round = 0; round < 10; round++) {
        char name[32];
        snprintf(name, sizeof name, "probe%d", round);
        report *r = shared_reports(4);
        plan fail = {name, opts_consecutive(1, 1 * S, clk), CBX_OUTCOME_ERROR};
        fail.opts.half_open_probes = 1;
        in_child(child_call, &r[0], &fail);
        cr_assert_eq(r[0].rc, 0);
        cbx_clock_advance(clk, 1000);
        if (round % 2) {
            /* half-open already (seen by another process): the probes change only the lease */
            json_t *j = show_in_child(name);
            cr_assert_str_eq(jstr(j, "state"), "half_open");
            json_decref(j);
        }

        probe_arg a = {.p = fail};
        cr_assert_eq(pipe(a.go), 0);
        cr_assert_eq(pipe(a.release), 0);
        pid_t pids[2];
        for (int i = 0; i < 2; i++)
            pids[i] = start_child(child_probe, &r[1 + i], &a);
        close(a.go[0]);
        close(a.release[0]);
        close(a.go[1]); /* both acquire now */
        for (int i = 0; i < 2; i++) {
            for (int spin = 0;
                 spin < 10000 && !__atomic_load_n(&r[1 + i].json[0], __ATOMIC_ACQUIRE); spin++) {
                struct timespec ts = {0, 1000 * 1000};
                nanosleep(&ts, NULL);
            }
            cr_assert(r[1 + i].json[0], "process %d never acquired", i);
        }
        close(a.release[1]);
        for (int i = 0; i < 2; i++)
            wait_child(pids[i]);
        int admitted = (r[1].rc == 0) + (r[2].rc == 0);
        int full = (r[1].rc == CBX_EHALF_OPEN_FULL) + (r[2].rc == CBX_EHALF_OPEN_FULL);
        cr_assert_eq(admitted, 1, "round %d: %d admitted (%s, %s)", round, admitted,
                     cbx_err_name(r[1].rc), cbx_err_name(r[2].rc));
        cr_assert_eq(full, 1);
        json_t *j = show_in_child(name);
        cr_assert_str_eq(jstr(j, "state"), "closed", "round %d", round);
        cr_assert_eq(jint(j, "rejections"), 1);
        json_decref(j);
        munmap(r, 4 * sizeof *r);
    }
    cbx_clock_free(clk);
}

/* ---- control from another process ----------------------------------------------------------- */

Test(breaker_store, set_mode_forget_list_and_show_from_other_processes)
{
    report *r = shared_reports(16);
    plan x = {"x", opts_consecutive(3, 60 * S, NULL), CBX_OUTCOME_ERROR};
    plan y = {"y", opts_consecutive(3, 60 * S, NULL), CBX_OUTCOME_SUCCESS};
    in_child(child_call, &r[0], &x);
    in_child(child_call, &r[1], &y);

    /* this process keeps its own store open across everything the children do */
    cbx_breaker_store *mine = NULL;
    cr_assert_eq(cbx_breaker_store_host_new(&mine, path, NULL), 0);
    cbx_permit p = cbx_breaker_store_acquire(mine, "y", &y.opts, NULL);
    cr_assert_eq(p.rc, 0);
    cbx_breaker_store_record(mine, "y", p, CBX_OUTCOME_SUCCESS, 1);

    in_child(child_list, &r[2], NULL);
    cr_assert_eq(r[2].rc, 0);
    json_t *l = parse(r[2].json);
    cr_assert_eq(json_array_size(l), 2, "%s", r[2].json);
    json_t *j0 = json_array_get(l, 0), *j1 = json_array_get(l, 1);
    cr_assert_str_eq(jstr(j0, "name"), "x");
    cr_assert_eq(jint(j0, "failures"), 1);
    cr_assert_eq(jint(j0, "consecutive_failures"), 1);
    cr_assert_str_eq(jstr(j0, "state"), "closed");
    cr_assert_str_eq(jstr(j1, "name"), "y");
    cr_assert_eq(jint(j1, "successes"), 2);
    json_decref(l);

    mode_arg m = {"x", CBX_BREAKER_FORCED_OPEN, 0};
    in_child(child_mode, &r[3], &m);
    cr_assert_eq(r[3].rc, 0);
    in_child(child_call, &r[4], &x);
    cr_assert_eq(r[4].rc, CBX_EFORCED_OPEN);
    cr_assert(strstr(r[4].text, "forced open"), "%s", r[4].text);
    cbx_breaker_rejection why;
    cr_assert_eq(cbx_breaker_store_acquire(mine, "x", &x.opts, &why).rc, CBX_EFORCED_OPEN);
    json_t *j = show_in_child("x");
    cr_assert_str_eq(jstr(j, "mode"), "forced_open");
    cr_assert_str_eq(jstr(j, "state"), "open");
    json_decref(j);

    m.mode = CBX_BREAKER_NORMAL;
    in_child(child_mode, &r[5], &m);
    cr_assert_eq(r[5].rc, 0);
    cr_assert_eq(cbx_breaker_store_acquire(mine, "x", &x.opts, NULL).rc, 0);

    mode_arg f = {"y", 0, 1};
    in_child(child_mode, &r[6], &f);
    cr_assert_eq(r[6].rc, 0);
    in_child(child_list, &r[7], NULL);
    l = parse(r[7].json);
    cr_assert_eq(json_array_size(l), 1, "%s", r[7].json);
    json_decref(l);
    in_child(child_show, &r[8], "y");
    cr_assert_eq(r[8].rc, -ENOENT);
    cr_assert(strstr(r[8].text, "'y'"), "%s", r[8].text);
    f.name = "nobody";
    in_child(child_mode, &r[9], &f);
    cr_assert_eq(r[9].rc, -ENOENT);
    m.name = "nobody";
    in_child(child_mode, &r[10], &m);
    cr_assert_eq(r[10].rc, -ENOENT);

    /* y, forgotten elsewhere, starts afresh here although this process had a copy */
    p = cbx_breaker_store_acquire(mine, "y", &y.opts, NULL);
    cr_assert_eq(p.rc, 0);
    json_t *o = NULL;
    cr_assert_eq(cbx_breaker_store_show(mine, "y", &o, NULL), 0);
    cr_assert_eq(jint(o, "calls"), 0);
    cr_assert_eq(jint(o, "successes"), 0);
    json_decref(o);
    cbx_breaker_store_record(mine, "y", p, CBX_OUTCOME_SUCCESS, 1);
    cbx_breaker_store_free(mine);
}

/* cbx_breaker_store_set_opts in a child: p->opts become the stored options. */
static void child_set_opts(report *r, void *arg)
{
    plan *p = arg;
    cbx_breaker_store *s = open_host(r);
    if (!s)
        return;
    cbx_err err = {0};
    r->rc = cbx_breaker_store_set_opts(s, p->name, &p->opts, &err);
    snprintf(r->text, sizeof r->text, "%s", err.msg);
    cbx_breaker_store_free(s);
}

Test(breaker_store, the_stored_options_win_and_set_opts_changes_them)
{
    report *r = shared_reports(8);
    plan a = {"shape", opts_consecutive(3, 60 * S, NULL), CBX_OUTCOME_ERROR};
    a.opts.count_window.calls = 10;
    a.opts.count_window.failure_rate = 0.9;
    in_child(child_call, &r[0], &a);
    in_child(child_call, &r[1], &a);

    /* other options from another process, even another shape: ignored, the state carries on */
    plan c = a;
    c.opts.consecutive_failures = 1;
    c.opts.count_window.calls = 20;
    in_child(child_call, &r[2], &c);
    cr_assert_eq(r[2].rc, 0);
    json_t *j = show_in_child("shape");
    cr_assert_eq(jint(j, "failures"), 3);
    cr_assert_str_eq(jstr(j, "state"), "open", "3 stored failures open it; 1 was not asked");
    json_t *o = json_object_get(j, "options");
    cr_assert_eq(jint(o, "consecutive_failures"), 3);
    cr_assert_eq(jint(o, "count_window_calls"), 10);
    json_decref(j);

    /* set_opts with the same shape: the state is kept, the options change for everyone */
    plan d = a;
    d.opts.consecutive_failures = 6;
    in_child(child_set_opts, &r[3], &d);
    cr_assert_eq(r[3].rc, 0, "%s", r[3].text);
    j = show_in_child("shape");
    cr_assert_eq(jint(j, "failures"), 3);
    cr_assert_str_eq(jstr(j, "state"), "open");
    cr_assert_eq(jint(json_object_get(j, "options"), "consecutive_failures"), 6);
    json_decref(j);
    cbx_breaker_opts got;
    cbx_breaker_store *mine = NULL;
    cr_assert_eq(cbx_breaker_store_host_new(&mine, path, NULL), 0);
    cr_assert_eq(cbx_breaker_store_get_opts(mine, "shape", &got), 0);
    cr_assert_eq(got.consecutive_failures, 6);
    cr_assert_eq(got.count_window.calls, 10);
    cr_assert_eq(cbx_breaker_store_get_opts(mine, "nobody", &got), -ENOENT);
    cbx_breaker_store_free(mine);

    /* set_opts with another count window: the breaker starts afresh */
    plan b = d;
    b.opts.count_window.calls = 20;
    in_child(child_set_opts, &r[4], &b);
    cr_assert_eq(r[4].rc, 0, "%s", r[4].text);
    j = show_in_child("shape");
    cr_assert_eq(jint(j, "failures"), 0);
    cr_assert_eq(jint(j, "calls"), 0);
    cr_assert_str_eq(jstr(j, "state"), "closed");
    cr_assert_eq(jint(json_object_get(j, "options"), "count_window_calls"), 20);
    json_decref(j);

    /* bad options are refused and change nothing */
    plan bad = d;
    bad.opts.half_open_probes = 1000;
    in_child(child_set_opts, &r[5], &bad);
    cr_assert_eq(r[5].rc, CBX_EINVAL_CONFIG);
    j = show_in_child("shape");
    cr_assert_eq(jint(json_object_get(j, "options"), "count_window_calls"), 20);
    json_decref(j);
}

/* ---- the file ------------------------------------------------------------------------------- */

static void put_bytes(off_t at, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, p, n, at), (ssize_t)n);
    close(fd);
}

Test(breaker_store, a_file_from_another_boot_is_reset)
{
    report *r = shared_reports(4);
    plan p = {"boot", opts_consecutive(1, 60 * S, NULL), CBX_OUTCOME_ERROR};
    in_child(child_call, &r[0], &p);
    in_child(child_call, &r[1], &p);
    cr_assert_eq(r[1].rc, CBX_ECIRCUIT_OPEN);

    char boot[64] = {0}, fake[48] = "00000000-0000-0000-0000-000000000000";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    cr_assert_not_null(f, "no boot id on this system");
    cr_assert_not_null(fgets(boot, sizeof boot, f));
    fclose(f);
    int fd = open(path, O_RDONLY);
    char in_file[48] = {0};
    cr_assert_eq(pread(fd, in_file, 36, FILE_BOOT_ID_AT), 36);
    close(fd);
    cr_assert_eq(strncmp(in_file, boot, 36), 0, "header boot id %.36s, system %.36s", in_file,
                 boot);
    put_bytes(FILE_BOOT_ID_AT, fake, sizeof fake);

    in_child(child_list, &r[2], NULL);
    cr_assert_eq(r[2].open_rc, 0, "%s", r[2].text);
    cr_assert_str_eq(r[2].json, "[]");
    in_child(child_call, &r[3], &p);
    cr_assert_eq(r[3].rc, 0, "still open after the reset");
}

static void expect_open_fails(int code, const char *needle)
{
    cbx_breaker_store *s = NULL;
    cbx_err err = {0};
    int rc = cbx_breaker_store_host_new(&s, path, &err);
    cr_assert_eq(rc, code, "got %s (%s)", cbx_err_name(rc), err.msg);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, path), "the message does not name the file: %s", err.msg);
    cr_assert_str_eq(err.where, path);
    if (needle)
        cr_assert(strstr(err.msg, needle), "%s", err.msg);
}

Test(breaker_store, bad_files_are_errors_naming_the_file)
{
    FILE *f = fopen(path, "w");
    fputs("not a breaker store", f);
    fclose(f);
    expect_open_fails(CBX_EPARSE, "not a breaker store");

    /* a good file, then cut short */
    cr_assert_eq(unlink(path), 0);
    report *r = shared_reports(1);
    plan p = {"t", opts_consecutive(3, 60 * S, NULL), CBX_OUTCOME_ERROR};
    in_child(child_call, &r[0], &p);
    cr_assert_eq(truncate(path, FILE_HEADER + FILE_RECORD), 0);
    expect_open_fails(CBX_EPARSE, "truncated");
    cr_assert_eq(truncate(path, 40), 0);
    expect_open_fails(CBX_EPARSE, NULL);

    /* a version from the future */
    cr_assert_eq(unlink(path), 0);
    in_child(child_call, &r[0], &p);
    uint32_t v = 99;
    put_bytes(FILE_VERSION_AT, &v, sizeof v);
    expect_open_fails(CBX_EPARSE, "version 99");

    /* not a file, and no directory */
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(mkdir(path, 0700), 0);
    expect_open_fails(-EISDIR, NULL);
    snprintf(path, sizeof path, "%s/missing/breakers", dir);
    expect_open_fails(-ENOENT, NULL);
}

Test(breaker_store, a_damaged_record_starts_that_breaker_afresh)
{
    report *r = shared_reports(2);
    plan p = {"torn", opts_consecutive(5, 60 * S, NULL), CBX_OUTCOME_ERROR};
    in_child(child_call, &r[0], &p);
    in_child(child_call, &r[1], &p);
    /* find the record and scribble over its saved state */
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    int hit = 0;
    for (int k = 0; k < 512 && !hit; k++) {
        off_t at = FILE_HEADER + (off_t)k * FILE_RECORD;
        uint32_t state;
        cr_assert_eq(pread(fd, &state, 4, at), 4);
        if (state != 1)
            continue;
        char junk[64];
        memset(junk, 0x5a, sizeof junk);
        cr_assert_eq(pwrite(fd, junk, sizeof junk, at + RECORD_HEADER + 40), (ssize_t)sizeof junk);
        hit = 1;
    }
    close(fd);
    cr_assert(hit, "no record in use in the file");
    json_t *j = show_in_child("torn");
    cr_assert_eq(jint(j, "calls"), 0);
    cr_assert_eq(jint(j, "consecutive_failures"), 0);
    json_decref(j);
}

static void child_default_path(report *r, void *arg)
{
    (void)arg;
    setenv("CBX_STATE_DIR", dir, 1);
    cbx_breaker_store *s = NULL;
    cbx_err err = {0};
    r->open_rc = cbx_breaker_store_host_new(&s, NULL, &err);
    if (r->open_rc) {
        snprintf(r->text, sizeof r->text, "%s", err.msg);
        return;
    }
    r->rc = cbx_breaker_store_acquire(s, "d", NULL, NULL).rc;
    cbx_breaker_store_free(s);
}

Test(breaker_store, the_default_file_is_in_the_state_directory)
{
    report *r = shared_reports(1);
    in_child(child_default_path, r, NULL);
    cr_assert_eq(r->open_rc, 0, "%s", r->text);
    cr_assert_eq(r->rc, 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "no %s", path);
    cr_assert_eq(st.st_mode & 0777, 0600);
    json_t *j = show_in_child("d");
    cr_assert_eq(jint(j, "calls"), 0);
    json_decref(j);
}

Test(breaker_store, a_full_table_and_an_oversized_breaker_are_clear_errors)
{
    cbx_breaker_store *s = NULL;
    cr_assert_eq(cbx_breaker_store_host_new(&s, path, NULL), 0);
    char name[32], line[512];
    int i = 0;
    cbx_permit p;
    for (;; i++) {
        snprintf(name, sizeof name, "n%d", i);
        p = cbx_breaker_store_acquire(s, name, NULL, NULL);
        if (p.rc)
            break;
        cr_assert_lt(i, 10000);
    }
    cr_assert_eq(i, 512);
    cr_assert_eq(p.rc, -ENOSPC);
    cbx_breaker_rejection why;
    p = cbx_breaker_store_acquire(s, name, NULL, &why);
    cr_assert_eq(why.rc, -ENOSPC);
    cbx_breaker_store_explain(s, name, &why, line, sizeof line);
    cr_assert(strstr(line, "full"), "%s", line);
    /* forgetting one makes room */
    cr_assert_eq(cbx_breaker_store_forget(s, "n7"), 0);
    cr_assert_eq(cbx_breaker_store_acquire(s, name, NULL, NULL).rc, 0);
    cr_assert_eq(cbx_breaker_store_acquire(s, "n7", NULL, NULL).rc, -ENOSPC);

    cbx_breaker_opts o;
    cbx_breaker_opts_default(&o);
    o.time_window.length_ns = 3600 * S;
    o.time_window.buckets = 3600;
    cr_assert_eq(cbx_breaker_store_forget(s, "n8"), 0);
    p = cbx_breaker_store_acquire(s, "huge", &o, &why);
    cr_assert_eq(p.rc, CBX_EINVAL_CONFIG);
    cbx_breaker_store_explain(s, "huge", &why, line, sizeof line);
    cr_assert(strstr(line, "more than a record"), "%s", line);
    cbx_breaker_store_free(s);
}

/* ---- the memory store and the JSON ------------------------------------------------------------
 */

Test(breaker_store, memory_store_options)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_store *s = NULL;
    cr_assert_eq(cbx_breaker_store_memory_new(&s, NULL), 0);
    cbx_breaker_opts o = opts_consecutive(2, 10 * S, clk), got;
    cr_assert_eq(cbx_breaker_store_get_opts(s, "m", &got), -ENOENT);
    cbx_permit p = cbx_breaker_store_acquire(s, "m", &o, NULL);
    cbx_breaker_store_record(s, "m", p, CBX_OUTCOME_ERROR, 1);
    cr_assert_eq(cbx_breaker_store_get_opts(s, "m", &got), 0);
    cr_assert_eq(got.consecutive_failures, 2);
    cr_assert_null(got.clock);
    /* new options, same shape: the failure is kept, and now three more are needed */
    cbx_breaker_opts n = opts_consecutive(4, 10 * S, clk);
    cr_assert_eq(cbx_breaker_store_set_opts(s, "m", &n, NULL), 0);
    cr_assert_eq(cbx_breaker_store_get_opts(s, "m", &got), 0);
    cr_assert_eq(got.consecutive_failures, 4);
    for (int i = 0; i < 3; i++) {
        p = cbx_breaker_store_acquire(s, "m", &o, NULL);
        cr_assert_eq(p.rc, 0, "failure %d of 4", i + 2);
        cbx_breaker_store_record(s, "m", p, CBX_OUTCOME_ERROR, 1);
    }
    cr_assert_eq(cbx_breaker_store_acquire(s, "m", &o, NULL).rc, CBX_ECIRCUIT_OPEN);
    /* set_opts of a new name makes it; bad options change nothing */
    cr_assert_eq(cbx_breaker_store_set_opts(s, "new", &n, NULL), 0);
    cr_assert_eq(cbx_breaker_store_get_opts(s, "new", &got), 0);
    n.half_open_probes = 1000;
    cr_assert_eq(cbx_breaker_store_set_opts(s, "m", &n, NULL), CBX_EINVAL_CONFIG);
    cr_assert_eq(cbx_breaker_store_acquire(s, "m", &o, NULL).rc, CBX_ECIRCUIT_OPEN);
    void *word;
    cr_assert_eq(cbx_breaker_store_limiter(s, "k", NULL, &word, NULL), -ENOTSUP);
    cbx_breaker_store_free(s);
    cbx_clock_free(clk);
}

Test(breaker_store, memory_store_semantics)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_breaker_store *s = NULL;
    cr_assert_eq(cbx_breaker_store_memory_new(&s, NULL), 0);
    cbx_breaker_opts o = opts_consecutive(2, 10 * S, clk);
    for (int i = 0; i < 2; i++) {
        cbx_permit p = cbx_breaker_store_acquire(s, "m", &o, NULL);
        cr_assert_eq(p.rc, 0);
        cbx_breaker_store_record(s, "m", p, CBX_OUTCOME_ERROR, (int64_t)(10 * MS));
    }
    /* later options for the same name are ignored */
    cbx_breaker_opts other = opts_consecutive(100, 1 * S, clk);
    cbx_breaker_rejection why;
    cbx_permit p = cbx_breaker_store_acquire(s, "m", &other, &why);
    cr_assert_eq(p.rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(why.retry_in_ns, 10 * S);
    char line[384];
    cbx_breaker_store_explain(s, "m", &why, line, sizeof line);
    cr_assert_str_eq(line, "breaker 'm' is open: 2 consecutive failures; next probe in 10.0s");

    json_t *o1 = NULL;
    cr_assert_eq(cbx_breaker_store_show(s, "m", &o1, NULL), 0);
    cr_assert_str_eq(jstr(o1, "name"), "m");
    cr_assert_str_eq(jstr(o1, "state"), "open");
    cr_assert_str_eq(jstr(o1, "mode"), "normal");
    cr_assert_eq(jint(o1, "retry_in_ms"), 10000);
    cr_assert_eq(jint(o1, "failures"), 2);
    cr_assert_eq(jint(o1, "rejections"), 1);
    cr_assert_eq(jint(o1, "opens"), 1);
    double p50 = json_real_value(json_object_get(o1, "latency_p50_ms"));
    cr_assert(p50 > 9.3 && p50 < 10.7, "p50 %f ms", p50);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(o1, "by_kind"), "error")), 2);
    cr_assert_eq(json_real_value(json_object_get(o1, "success_rate")), 0.0);
    json_decref(o1);

    cr_assert_eq(cbx_breaker_store_set_mode(s, "m", CBX_BREAKER_NORMAL), 0);
    cr_assert_eq(cbx_breaker_store_acquire(s, "m", NULL, NULL).rc, 0);
    cr_assert_eq(cbx_breaker_store_set_mode(s, "nobody", CBX_BREAKER_FORCED_OPEN), -ENOENT);
    cr_assert_eq(cbx_breaker_store_forget(s, "nobody"), -ENOENT);
    json_t *l = NULL;
    cr_assert_eq(cbx_breaker_store_acquire(s, "a", NULL, NULL).rc, 0);
    cr_assert_eq(cbx_breaker_store_list(s, &l, NULL), 0);
    cr_assert_eq(json_array_size(l), 2);
    cr_assert_str_eq(jstr(json_array_get(l, 0), "name"), "a");
    cr_assert_str_eq(jstr(json_array_get(l, 1), "name"), "m");
    json_decref(l);
    cr_assert_eq(cbx_breaker_store_forget(s, "m"), 0);
    /* forgotten: the next use takes the new options */
    p = cbx_breaker_store_acquire(s, "m", &other, NULL);
    cr_assert_eq(p.rc, 0);
    json_t *e = NULL;
    cbx_err err = {0};
    cr_assert_eq(cbx_breaker_store_show(s, "gone", &e, &err), -ENOENT);
    cr_assert_null(e);

    /* a bad name is refused with the reason */
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    p = cbx_breaker_store_acquire(s, big, NULL, &why);
    cr_assert_eq(p.rc, CBX_EINVAL_CONFIG);
    cbx_breaker_store_explain(s, big, &why, line, sizeof line);
    cr_assert(strstr(line, "1 to 200 bytes"), "%s", line);
    cbx_breaker_store_free(s);
    cbx_breaker_store_free(NULL);
    cbx_clock_free(clk);
}

Test(breaker_store, metrics_json_has_the_documented_fields)
{
    cbx_breaker_metrics m = {.state = CBX_BREAKER_HALF_OPEN,
                             .mode = CBX_BREAKER_METRICS_ONLY,
                             .time_in_state_ns = 2500 * MS,
                             .calls = 10,
                             .successes = 7,
                             .failures = 3,
                             .rejections = 4,
                             .consecutive_failures = 1,
                             .success_rate = 0.7,
                             .opens = 2,
                             .latency_count = 10,
                             .latency_p50_ns = 1500 * 1000,
                             .latency_p95_ns = 20 * MS,
                             .latency_p99_ns = 30 * MS};
    m.by_kind[CBX_OUTCOME_TIMEOUT] = 3;
    json_t *o = cbx_breaker_metrics_to_json("db", &m);
    cr_assert_not_null(o);
    cr_assert_str_eq(jstr(o, "name"), "db");
    cr_assert_str_eq(jstr(o, "state"), "half_open");
    cr_assert_str_eq(jstr(o, "mode"), "metrics_only");
    cr_assert_eq(jint(o, "time_in_state_ms"), 2500);
    cr_assert_eq(jint(o, "calls"), 10);
    cr_assert_eq(jint(o, "successes"), 7);
    cr_assert_eq(jint(o, "failures"), 3);
    cr_assert_eq(jint(o, "rejections"), 4);
    cr_assert_eq(jint(o, "consecutive_failures"), 1);
    cr_assert_eq(jint(o, "opens"), 2);
    cr_assert_eq(json_real_value(json_object_get(o, "success_rate")), 0.7);
    cr_assert_eq(json_real_value(json_object_get(o, "latency_p50_ms")), 1.5);
    cr_assert_eq(json_real_value(json_object_get(o, "latency_p95_ms")), 20.0);
    cr_assert_eq(json_real_value(json_object_get(o, "latency_p99_ms")), 30.0);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "by_kind"), "timeout")), 3);
    json_decref(o);
}
