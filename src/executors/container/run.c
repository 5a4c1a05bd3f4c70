/* One attempt of the container executor: its chain of requests to the engine, the stop on a
 * timeout or cancel (SIGTERM, SIGKILL after the grace), and its result.
 *
 * Outcomes: SUCCESS for an exit code in success_exit_codes; the "oom" kind when the engine says
 * the container was OOM-killed, or it exited 137 under a memory limit without cbx having sent a
 * signal (on hosts with cgroup v1 the engine's OOMKilled flag is not always set); ERROR for
 * other exit codes and for the engine's refusals (no such image, a pull that failed, a daemon
 * that does not answer). A cancelled attempt is recorded by the runtime as TIMEOUT or CANCELLED.
 */
#include "executors/container/container.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a container runs before its stats are followed. */
#define STATS_DELAY_MS 1000

static void do_create(cbx__ctr_run *r);
static void do_wait(cbx__ctr_run *r);
static void do_logs(cbx__ctr_run *r);
static void do_delete(cbx__ctr_run *r);
static void finish(cbx__ctr_run *r);
static void on_start(cbx__ctr_req *rq);

__attribute__((format(printf, 2, 3))) static void fail(cbx__ctr_run *r, const char *fmt, ...)
{
    if (r->error[0])
        return; /* the first reason stands */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

/* Send on the chain's request; a failure to even send ends the attempt. */
static int send_req(cbx__ctr_run *r, cbx__ctr_req *rq, cbx__ctr_req_cb cb, const char *method,
                const char *path, const char *json)
{
    rq->cb = cb;
    rq->data = r;
    int rc = cbx__ctr_send(r->cl, rq, method, path, json);
    if (rc < 0)
        fail(r, "%s %s: cannot send the request: %s", method, path, cbx_strerror(rc));
    return rc;
}

/* ---- the stop: SIGTERM, then SIGKILL ------------------------------------------------------- */

static void on_kill(cbx__ctr_req *rq)
{
    cbx__ctr_req_clear(rq); /* 204, or 409 when it had already stopped: either is fine */
}

static void send_signal(cbx__ctr_run *r, const char *sig)
{
    char path[160];
    cbx__ctr_abort(&r->kill_rq);
    snprintf(path, sizeof path, "/containers/%s/kill?signal=%s", r->id, sig);
    r->kill_rq.cb = on_kill;
    r->kill_rq.data = r;
    cbx__ctr_send(r->cl, &r->kill_rq, "POST", path, NULL);
}

static void on_grace(uv_timer_t *t)
{
    cbx__ctr_run *r = t->data;
    if (r->phase != CTR_WAIT && r->phase != CTR_START)
        return;
    r->kill_sent = 1;
    send_signal(r, "SIGKILL");
}

static int timer_ready(cbx__ctr_run *r)
{
    if (r->timer_init)
        return 0;
    int rc = uv_timer_init(cbx_task_loop(r->task), &r->timer);
    if (rc < 0)
        return rc;
    r->timer.data = r;
    r->timer_init = 1;
    return 0;
}

/* The container runs and must stop: SIGTERM now, SIGKILL after the grace. */
static void stop_container(cbx__ctr_run *r)
{
    if (r->term_sent || r->kill_sent)
        return;
    if (r->grace_ms == 0 || timer_ready(r) < 0) {
        r->kill_sent = 1;
        send_signal(r, "SIGKILL");
        return;
    }
    r->term_sent = 1;
    send_signal(r, "SIGTERM");
    uv_timer_start(&r->timer, on_grace, r->grace_ms, 0);
}

/* ---- the chain ------------------------------------------------------------------------------ */

static void on_pull(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    char msg[400] = "";
    if (rq->status == 200 && rq->body) {
        /* a stream of JSON progress lines; a failure is a line with "error" */
        for (char *line = rq->body; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            json_t *doc = json_loads(line, JSON_DECODE_ANY, NULL);
            const char *e = json_string_value(json_object_get(doc, "error"));
            if (e && !msg[0])
                snprintf(msg, sizeof msg, "%s", e);
            json_decref(doc);
            line = nl ? nl + 1 : NULL;
        }
    } else if (rq->status != 200) {
        cbx__ctr_req_error(rq, "pull", msg, sizeof msg);
    }
    cbx__ctr_req_clear(rq);
    if (msg[0]) {
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        fail(r, "image '%.200s': not found locally and the pull failed: %s", r->image, msg);
        finish(r);
        return;
    }
    r->pulled = 1;
    do_create(r);
}

static void do_pull(cbx__ctr_run *r)
{
    char enc[600], path[700];
    cbx__ctr_urlencode(r->image, enc, sizeof enc);
    snprintf(path, sizeof path, "/images/create?fromImage=%s", enc);
    r->phase = CTR_PULL;
    if (send_req(r, &r->rq, on_pull, "POST", path, NULL) < 0)
        finish(r);
}

static void on_create(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    if (rq->status == 201) {
        json_t *doc = cbx__ctr_req_json(rq);
        const char *id = json_string_value(json_object_get(doc, "Id"));
        if (id && strlen(id) < sizeof r->id)
            snprintf(r->id, sizeof r->id, "%s", id);
        json_decref(doc);
        cbx__ctr_req_clear(rq);
        if (!r->id[0]) {
            fail(r, "create: the engine answered without a container id");
            finish(r);
        } else if (r->cancelled) {
            do_delete(r);
        } else {
            char path[160];
            snprintf(path, sizeof path, "/containers/%s/start", r->id);
            r->phase = CTR_START;
            if (send_req(r, &r->rq, on_start, "POST", path, NULL) < 0)
                do_delete(r);
        }
        return;
    }
    if (rq->status == 404 && !r->cancelled) {
        cbx__ctr_req_clear(rq);
        if (r->pull == 1 && !r->pulled) {
            do_pull(r);
            return;
        }
        fail(r, "image '%.200s' not found%s", r->image,
             r->pull == 0 ? " (pull: never; load or pull it first)" : " after the pull");
        finish(r);
        return;
    }
    char msg[400];
    cbx__ctr_req_error(rq, "create", msg, sizeof msg);
    cbx__ctr_req_clear(rq);
    fail(r, "%s", msg);
    finish(r);
}

static void do_create(cbx__ctr_run *r)
{
    if (r->cancelled) {
        finish(r);
        return;
    }
    char *json = json_dumps(r->create_body, JSON_COMPACT);
    if (!json) {
        fail(r, "create: out of memory");
        finish(r);
        return;
    }
    r->phase = CTR_CREATE;
    int rc = send_req(r, &r->rq, on_create, "POST", "/containers/create", json);
    free(json);
    if (rc < 0)
        finish(r);
}

static void on_start(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    if (rq->status != 204 && rq->status != 304) {
        char msg[400];
        cbx__ctr_req_error(rq, "start", msg, sizeof msg);
        cbx__ctr_req_clear(rq);
        fail(r, "%s", msg);
        do_delete(r);
        return;
    }
    cbx__ctr_req_clear(rq);
    r->t_started_ns = uv_hrtime();
    do_wait(r);
    if (r->cancelled && r->phase == CTR_WAIT)
        stop_container(r);
}

/* The stats stream: one JSON object a line; the peak memory and the CPU time so far. */
static void stats_line(cbx__ctr_run *r, const char *line, size_t n)
{
    json_t *doc = json_loadb(line, n, 0, NULL);
    if (!doc)
        return;
    json_t *mem = json_object_get(doc, "memory_stats");
    json_int_t use = json_integer_value(json_object_get(mem, "usage"));
    json_int_t max = json_integer_value(json_object_get(mem, "max_usage"));
    json_int_t peak = max > use ? max : use;
    if (peak > r->mem_peak)
        r->mem_peak = peak;
    json_t *cpu = json_object_get(json_object_get(doc, "cpu_stats"), "cpu_usage");
    json_t *total = json_object_get(cpu, "total_usage");
    if (json_is_integer(total) && json_integer_value(total) > r->cpu_ns)
        r->cpu_ns = json_integer_value(total);
    json_decref(doc);
}

static int stats_feed(void *data, const char *p, size_t n)
{
    cbx__ctr_run *r = data;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            stats_line(r, r->stats_line, r->stats_len);
            r->stats_len = 0;
        } else if (r->stats_len < sizeof r->stats_line) {
            r->stats_line[r->stats_len++] = p[i];
        }
    }
    return 0;
}

static void on_stats(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    if (r->stats_len > 0)
        stats_line(r, r->stats_line, r->stats_len);
    r->stats_len = 0;
    cbx__ctr_req_clear(rq);
}

static void on_stats_delay(uv_timer_t *t)
{
    cbx__ctr_run *r = t->data;
    if (r->phase != CTR_WAIT || r->cancelled || r->stats_rq.live)
        return;
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/stats?stream=true", r->id);
    r->stats_rq.sink = stats_feed;
    r->stats_rq.sink_data = r;
    r->stats_rq.cb = on_stats;
    r->stats_rq.data = r;
    cbx__ctr_send(r->cl, &r->stats_rq, "GET", path, NULL); /* optional: no stats without it */
}

static void on_wait(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    r->t_exited_ns = uv_hrtime();
    if (r->timer_init)
        uv_timer_stop(&r->timer);
    cbx__ctr_abort(&r->stats_rq);
    if (rq->status == 200) {
        json_t *doc = cbx__ctr_req_json(rq);
        json_t *code = json_object_get(doc, "StatusCode");
        if (json_is_integer(code)) {
            r->exit_code = (long)json_integer_value(code);
            r->have_exit = 1;
        }
        json_decref(doc);
    } else {
        char msg[400];
        cbx__ctr_req_error(rq, "wait", msg, sizeof msg);
        fail(r, "%s", msg);
    }
    cbx__ctr_req_clear(rq);
    do_logs(r);
}

static void do_wait(cbx__ctr_run *r)
{
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/wait", r->id);
    r->phase = CTR_WAIT;
    if (send_req(r, &r->rq, on_wait, "POST", path, NULL) < 0) {
        do_delete(r);
        return;
    }
    /* The stats stream only for a container still running after STATS_DELAY_MS: the engine
     * samples about once a second, so a shorter run would get nothing from it but its cost. */
    if (r->want_stats && timer_ready(r) == 0)
        uv_timer_start(&r->timer, on_stats_delay, STATS_DELAY_MS, 0);
}

static void on_inspect(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    json_t *doc = rq->status == 200 ? cbx__ctr_req_json(rq) : NULL;
    json_t *state = json_object_get(doc, "State");
    r->oom_killed = json_is_true(json_object_get(state, "OOMKilled"));
    json_t *code = json_object_get(state, "ExitCode");
    if (!r->have_exit && json_is_integer(code) && !json_is_true(json_object_get(state, "Running"))) {
        r->exit_code = (long)json_integer_value(code);
        r->have_exit = 1;
    }
    json_decref(doc);
    cbx__ctr_req_clear(rq);
    do_delete(r);
}

static void on_logs(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    cbx__ctr_req_clear(rq);
    rq->sink = NULL;
    /* The engine's OOMKilled flag matters only for a container killed by SIGKILL (137); any
     * other exit code is the wait's, and a request less per container counts. */
    if (r->have_exit && r->exit_code != 137) {
        do_delete(r);
        return;
    }
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/json", r->id);
    r->phase = CTR_INSPECT;
    if (send_req(r, &r->rq, on_inspect, "GET", path, NULL) < 0)
        do_delete(r);
}

static void do_logs(cbx__ctr_run *r)
{
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/logs?stdout=true&stderr=true", r->id);
    r->phase = CTR_LOGS;
    r->rq.sink = cbx__ctr_logs_feed;
    r->rq.sink_data = &r->logs;
    if (send_req(r, &r->rq, on_logs, "GET", path, NULL) < 0) {
        r->rq.sink = NULL;
        do_delete(r);
    }
}

static void on_delete(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    r->removed = rq->status == 204 || rq->status == 200;
    if (!r->removed && !r->error[0]) {
        char msg[400];
        cbx__ctr_req_error(rq, "remove", msg, sizeof msg);
        r->remove_error = strdup(msg);
    }
    cbx__ctr_req_clear(rq);
    finish(r);
}

static void do_delete(cbx__ctr_run *r)
{
    r->rq.sink = NULL;
    /* a container that never ran goes whatever remove says: it was cbx's to start */
    if ((!r->remove && r->t_started_ns) || !r->id[0]) {
        finish(r);
        return;
    }
    char path[160];
    snprintf(path, sizeof path, "/containers/%s?force=true&v=true", r->id);
    r->phase = CTR_DELETE;
    if (send_req(r, &r->rq, on_delete, "DELETE", path, NULL) < 0)
        finish(r);
}

/* ---- the result ----------------------------------------------------------------------------- */

static int code_succeeds(const json_t *codes, long code)
{
    if (!json_is_array(codes))
        return code == 0;
    size_t i;
    json_t *v;
    json_array_foreach(codes, i, v)
    {
        if (json_integer_value(v) == code)
            return 1;
    }
    return 0;
}

/* The last non-empty line of a capture, control characters as spaces. */
static void last_line(const cbx__capture *c, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t end = c->len;
    while (end > 0 && (c->data[end - 1] == '\n' || c->data[end - 1] == '\r'))
        end--;
    size_t start = end;
    while (start > 0 && c->data[start - 1] != '\n')
        start--;
    size_t n = end - start;
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = c->data[start + i];
        buf[i] = (unsigned char)ch < 0x20 ? ' ' : ch;
    }
    buf[n] = '\0';
}

static double ms_between(uint64_t a, uint64_t b)
{
    return a && b > a ? round((double)(b - a) / 1e3) / 1e3 : 0.0;
}

static void deliver(cbx__ctr_run *r)
{
    cbx_task *t = r->task;
    const json_t *p = cbx_task_params(t);
    int out_lossy = 0, err_lossy = 0;
    json_t *out_s = cbx__capture_json(&r->logs.out, &out_lossy);
    json_t *err_s = cbx__capture_json(&r->logs.err, &err_lossy);
    int out_trunc = cbx__capture_truncated(&r->logs.out);
    int err_trunc = cbx__capture_truncated(&r->logs.err);
    int timed_out = r->cancelled && cbx_task_timed_out(t);
    int oom = r->have_exit && !r->cancelled &&
              (r->oom_killed || (r->exit_code == 137 && r->memory_limit > 0 && !r->kill_sent &&
                                 !r->term_sent));

    json_t *outputs = NULL, *m = json_object();
    if (r->id[0]) {
        outputs = json_object();
        json_object_set_new(outputs, "exit_code",
                            r->have_exit ? json_integer(r->exit_code) : json_null());
        json_object_set_new(outputs, "stdout", out_s ? out_s : json_string(""));
        json_object_set_new(outputs, "stderr", err_s ? err_s : json_string(""));
        json_object_set_new(outputs, "container_id", json_string(r->id));
        json_object_set_new(outputs, "oom", json_boolean(oom));
    } else {
        json_decref(out_s);
        json_decref(err_s);
    }
    json_object_set_new(m, "container_id", r->id[0] ? json_string(r->id) : json_null());
    json_object_set_new(m, "image", json_string(r->image));
    json_object_set_new(m, "socket", json_string(r->socket));
    json_object_set_new(m, "exit_code", r->have_exit ? json_integer(r->exit_code) : json_null());
    json_object_set_new(m, "oom", json_boolean(oom));
    json_object_set_new(m, "oom_killed_flag", json_boolean(r->oom_killed));
    json_object_set_new(m, "memory_limit_bytes",
                        r->memory_limit > 0 ? json_integer(r->memory_limit) : json_null());
    json_object_set_new(m, "stdout_bytes", json_integer((json_int_t)r->logs.out.total));
    json_object_set_new(m, "stderr_bytes", json_integer((json_int_t)r->logs.err.total));
    json_object_set_new(m, "stdout_truncated", json_boolean(out_trunc));
    json_object_set_new(m, "stderr_truncated", json_boolean(err_trunc));
    json_object_set_new(m, "stdout_lossy", json_boolean(out_lossy));
    json_object_set_new(m, "stderr_lossy", json_boolean(err_lossy));
    json_object_set_new(m, "peak_memory_bytes",
                        r->mem_peak >= 0 ? json_integer(r->mem_peak) : json_null());
    json_object_set_new(m, "cpu_ms",
                        r->cpu_ns >= 0 ? json_real(round((double)r->cpu_ns / 1e3) / 1e3)
                                       : json_null());
    json_object_set_new(m, "duration_ms", json_real(ms_between(r->t0_ns, uv_hrtime())));
    json_object_set_new(m, "run_ms", json_real(ms_between(r->t_started_ns, r->t_exited_ns)));
    json_object_set_new(m, "pulled", json_boolean(r->pulled));
    json_object_set_new(m, "removed", json_boolean(r->removed));
    if (r->remove_error)
        json_object_set_new(m, "remove_error", json_string(r->remove_error));
    json_object_set_new(m, "killed_by",
                        !r->cancelled ? json_null()
                                      : json_string(timed_out ? "timeout" : "cancel"));
    json_object_set_new(m, "signals",
                        r->kill_sent && r->term_sent ? json_string("SIGTERM, then SIGKILL")
                        : r->kill_sent               ? json_string("SIGKILL")
                        : r->term_sent               ? json_string("SIGTERM")
                                                     : json_null());

    cbx_outcome k = CBX_OUTCOME_ERROR;
    char msg[600] = "", line[160];
    if (r->cancelled) {
        snprintf(msg, sizeof msg, "%s: container %.12s stopped (%s)%s",
                 timed_out ? "timed out" : "cancelled", r->id[0] ? r->id : "(not created)",
                 r->kill_sent && r->term_sent ? "SIGTERM, then SIGKILL"
                 : r->kill_sent               ? "SIGKILL"
                 : r->term_sent               ? "SIGTERM"
                                              : "before it ran",
                 r->removed ? " and removed" : "");
    } else if (r->error[0]) {
        snprintf(msg, sizeof msg, "%s", r->error);
    } else if (!r->have_exit) {
        snprintf(msg, sizeof msg, "container %.12s: the engine gave no exit code", r->id);
    } else if (oom) {
        /* the "oom" failure kind where the runtime knows it; else an error flagged in metadata */
        cbx_outcome ko;
        if (cbx_outcome_parse("oom", &ko) == 0)
            k = ko;
        snprintf(msg, sizeof msg, "out of memory: container %.12s killed at its memory limit "
                 "(%lld bytes; exit code %ld)",
                 r->id, (long long)r->memory_limit, r->exit_code);
    } else if (!code_succeeds(json_object_get(p, "success_exit_codes"), r->exit_code)) {
        last_line(&r->logs.err, line, sizeof line);
        snprintf(msg, sizeof msg, "exit code %ld%s%s", r->exit_code, line[0] ? ": " : "", line);
    } else {
        k = CBX_OUTCOME_SUCCESS;
    }
    cbx__capture_free(&r->logs.out);
    cbx__capture_free(&r->logs.err);
    json_decref(r->create_body);
    r->create_body = NULL;
    free(r->remove_error);
    r->remove_error = NULL;
    cbx__http_loop_end(r->cl->http);
    cbx__ctr_loop_release(r->cl);
    /* r lives in the task's state, which is released by this call */
    if (msg[0])
        cbx_task_done(t, k, outputs, m, "%s", msg);
    else
        cbx_task_done(t, k, outputs, m, NULL);
}

static void on_timer_closed(uv_handle_t *h)
{
    deliver(h->data);
}

static void finish_later(cbx__ctr_run *r);

static void finish(cbx__ctr_run *r)
{
    if (r->phase == CTR_REPORT)
        return;
    if (r->in_call) {
        finish_later(r); /* start and cancel may not report from inside their call */
        return;
    }
    r->phase = CTR_REPORT;
    cbx__ctr_abort(&r->stats_rq);
    cbx__ctr_abort(&r->kill_rq);
    cbx__ctr_abort(&r->rq);
    cbx__ctr_req_clear(&r->rq);
    cbx__ctr_req_clear(&r->stats_rq);
    cbx__ctr_req_clear(&r->kill_rq);
    if (r->timer_init)
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    else
        deliver(r);
}

/* ---- start, resume, cancel ------------------------------------------------------------------ */

static void begin_chain(cbx__ctr_run *r)
{
    if (r->pull == 2)
        do_pull(r);
    else
        do_create(r);
}

void cbx__ctr_run_resume(cbx__ctr_run *r)
{
    if (r->phase == CTR_REAP_WAIT)
        begin_chain(r);
}

int cbx__ctr_run_start(cbx_task *t, cbx__ctr_loop *cl, json_t *create_body, const char *socket)
{
    cbx__ctr_run *r = cbx_task_state(t);
    const json_t *p = cbx_task_params(t);
    int rc = cbx__http_loop_begin(cl->http);
    if (rc < 0) {
        json_decref(create_body);
        return rc;
    }
    cl->refs++;
    r->task = t;
    r->cl = cl;
    r->create_body = create_body;
    snprintf(r->socket, sizeof r->socket, "%s", socket);
    r->rq.socket = r->stats_rq.socket = r->kill_rq.socket = r->socket;
    r->image = json_string_value(json_object_get(p, "image"));
    r->t0_ns = uv_hrtime();
    r->mem_peak = -1;
    r->cpu_ns = -1;
    r->remove = !json_is_false(json_object_get(p, "remove"));
    r->want_stats = !json_is_false(json_object_get(p, "stats"));
    const char *pull = json_string_value(json_object_get(p, "pull"));
    r->pull = !pull || strcmp(pull, "missing") == 0 ? 1 : strcmp(pull, "always") == 0 ? 2 : 0;
    int64_t mem = 0;
    if (cbx__ctr_parse_bytes(json_object_get(p, "memory"), &mem) == 0)
        r->memory_limit = mem;
    const json_t *g = json_object_get(p, "kill_grace_ms");
    r->grace_ms = json_is_integer(g) ? (uint64_t)json_integer_value(g)
                                     : cbx_task_kill_grace_ns(t) / 1000000u;
    const json_t *om = json_object_get(p, "stdout_max"), *em = json_object_get(p, "stderr_max");
    r->logs.out.max = json_is_integer(om) ? (size_t)json_integer_value(om) : 1u << 20;
    r->logs.err.max = json_is_integer(em) ? (size_t)json_integer_value(em) : 1u << 20;

    if (cl->reap_state == 0) {
        snprintf(cl->socket, sizeof cl->socket, "%s", socket);
        cbx__ctr_reap_begin(cl);
    }
    if (cl->reap_state == 1) {
        r->phase = CTR_REAP_WAIT;
        r->next_waiter = cl->reap_waiters;
        cl->reap_waiters = r;
        return 0;
    }
    /* A request's callback never runs inside this call; a failure to send is reported from
     * a later turn (finish defers while in_call). */
    r->in_call = 1;
    begin_chain(r);
    r->in_call = 0;
    return 0;
}

static void on_deferred(uv_timer_t *h)
{
    finish(h->data);
}

/* Report on a later turn. */
static void finish_later(cbx__ctr_run *r)
{
    if (timer_ready(r) < 0) {
        /* no timer (uv_timer_init fails only on a broken loop): report now */
        r->in_call = 0;
        finish(r);
        return;
    }
    uv_timer_start(&r->timer, on_deferred, 0, 0);
}

void cbx__ctr_run_cancel(cbx_task *t)
{
    cbx__ctr_run *r = cbx_task_state(t);
    if (r->cancelled)
        return;
    r->cancelled = 1;
    r->in_call = 1;
    switch (r->phase) {
    case CTR_REAP_WAIT:
        for (cbx__ctr_run **pp = &r->cl->reap_waiters; *pp; pp = &(*pp)->next_waiter) {
            if (*pp == r) {
                *pp = r->next_waiter;
                break;
            }
        }
        r->phase = CTR_IDLE;
        finish(r);
        break;
    case CTR_PULL:
        cbx__ctr_abort(&r->rq);
        r->phase = CTR_IDLE;
        finish(r);
        break;
    case CTR_WAIT:
        stop_container(r);
        break;
    default:
        break; /* create: removed when it answers; start: stopped when it answers; the rest
                  goes on to the removal */
    }
    r->in_call = 0;
}
