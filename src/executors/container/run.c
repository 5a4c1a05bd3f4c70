/* One attempt of the container executor: its chain of requests to the engine, and the stop on
 * a timeout or cancel (SIGTERM, SIGKILL after the grace).
 *
 * The output comes from an attach to the container's stdout and stderr sent before the start
 * (the engine answers its headers at once, and the start goes only then), the stream `docker
 * run` reads: it ends when the container exits, so its end is also the sign of the exit, with no
 * wait on the engine's events (Podman reads its events file by polling it every 250 ms, which
 * a "next-exit" wait took on average per container) nor its "not-running" condition (Podman
 * polls the container's state for it, about a quarter of a core per waiting container). On
 * that end an inspect takes the exit code and the OOM flag; should the engine still say it runs
 * (it may see the exit a moment after the stream ends, or the container closed its output and
 * runs on), the inspect is asked again after 10 ms, then after twice as long each time. A probe
 * inspects the container now and then while it runs (after 2 s, then every 4, then 5 s) and takes
 * its exit code from there as well; an exit known while the attach still streams reads the logs
 * instead.
 *
 * One timer serves the attempt in turns: a zero delay to send the start from outside curl's
 * callback, then the ticks while the container runs (the stats stream after STATS_DELAY_MS,
 * the probe, the SIGKILL at the end of the grace), and a zero delay for a report from inside
 * start or cancel.
 */
#define _GNU_SOURCE /* strcasestr */
#include "executors/container/container.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a container runs before its stats are followed. */
#define STATS_DELAY_MS 2000
/* The probe's first delay and its longest. */
#define PROBE_FIRST_MS 2000
#define PROBE_MAX_MS   5000
/* After the attach's end, while the engine still says it runs: the probe's first delay. */
#define SETTLE_FIRST_MS 10

static void do_create(cbx__ctr_run *r);
static void do_logs(cbx__ctr_run *r);
static void after_logs(cbx__ctr_run *r);
static void probe_now(cbx__ctr_run *r);
static void do_delete(cbx__ctr_run *r);
static void finish(cbx__ctr_run *r);
static void on_start(cbx__ctr_req *rq);
static void on_tick(uv_timer_t *t);

__attribute__((format(printf, 2, 3))) static void fail(cbx__ctr_run *r, const char *fmt, ...)
{
    if (r->error[0])
        return; /* the first reason stands */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

/* Send on one of the attempt's requests; a failure to even send is the attempt's error. */
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

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
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
    send_req(r, &r->kill_rq, on_kill, "POST", path, NULL);
}

/* The next tick while the container runs: the probe's turn, or sooner the end of the grace. */
static void tick_arm(cbx__ctr_run *r)
{
    uint64_t now = now_ms(), at = r->probe_at_ms;
    if (r->want_stats && !r->stats_started && !r->cancelled && r->stats_at_ms < at)
        at = r->stats_at_ms;
    if (r->term_sent && !r->kill_sent && r->kill_at_ms < at)
        at = r->kill_at_ms;
    if (timer_ready(r) == 0)
        /* never 0: a timer re-armed for "now" inside its callback runs again in the same
         * turn of the loop, which would never get to its sockets */
        uv_timer_start(&r->timer, on_tick, at > now ? at - now : 1, 0);
}

/* The container runs and must stop: SIGTERM now, SIGKILL after the grace. */
static void stop_container(cbx__ctr_run *r)
{
    if (r->term_sent || r->kill_sent)
        return;
    if (r->grace_ms == 0) {
        r->kill_sent = 1;
        send_signal(r, "SIGKILL");
        return;
    }
    r->term_sent = 1;
    r->kill_at_ms = now_ms() + r->grace_ms;
    send_signal(r, "SIGTERM");
    tick_arm(r);
}

/* ---- the image ----------------------------------------------------------------------------- */

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

/* ---- create, wait, start -------------------------------------------------------------------- */

/* The container has exited (the attach's end and an inspect, the wait or the probe said so):
 * on to its output, whole when the attach has ended, else read from the logs. */
static void exited(cbx__ctr_run *r)
{
    r->t_exited_ns = uv_hrtime();
    if (r->timer_init)
        uv_timer_stop(&r->timer);
    cbx__ctr_abort(&r->stats_rq);
    cbx__ctr_abort(&r->probe_rq);
    if (r->gone) {
        finish(r); /* nothing left to read or remove */
        return;
    }
    if (r->attach_done) {
        after_logs(r);
        return;
    }
    cbx__ctr_abort(&r->attach_rq);
    r->attach_rq.sink = NULL;
    cbx__capture_free(&r->logs.out);
    cbx__capture_free(&r->logs.err);
    r->logs.hdr_len = 0;
    r->logs.left = 0;
    r->logs.raw = r->logs.started = 0;
    do_logs(r);
}

/* The attach has ended: the container has exited (or closed its output): an inspect says
 * which. */
static void on_attach(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    rq->sink = NULL;
    cbx__ctr_req_clear(rq);
    switch (r->phase) {
    case CTR_ARM: { /* the attach failed before the start went */
        char msg[400];
        cbx__ctr_req_error(rq, "attach", msg, sizeof msg);
        fail(r, "%s", msg);
        if (r->timer_init)
            uv_timer_stop(&r->timer);
        do_delete(r);
        break;
    }
    case CTR_START: /* ended before the start's answer came: on_start goes on */
        r->attach_done = 1;
        break;
    case CTR_WAIT:
        r->attach_done = 1;
        probe_now(r);
        break;
    default:
        break;
    }
}

/* The attach's headers have come: the engine streams the container's output; the start may go
 * (from the loop, not from inside curl's callback). */
static void on_attached(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    if (r->phase == CTR_ARM && timer_ready(r) == 0)
        uv_timer_start(&r->timer, on_tick, 0, 0);
}

static void do_arm(cbx__ctr_run *r)
{
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/attach?stream=true&stdout=true&stderr=true", r->id);
    r->phase = CTR_ARM;
    r->attach_rq.on_headers = on_attached;
    r->attach_rq.sink = cbx__ctr_logs_feed;
    r->attach_rq.sink_data = &r->logs;
    if (send_req(r, &r->attach_rq, on_attach, "POST", path, NULL) < 0) {
        r->attach_rq.sink = NULL;
        do_delete(r);
    }
}

static void do_start(cbx__ctr_run *r)
{
    char path[160];
    snprintf(path, sizeof path, "/containers/%s/start", r->id);
    r->phase = CTR_START;
    if (send_req(r, &r->rq, on_start, "POST", path, NULL) < 0) {
        cbx__ctr_abort(&r->attach_rq);
        do_delete(r);
    }
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
            do_arm(r);
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
        /* gone between its create and its start: Docker says 404, podman 500 "no such
         * container" */
        if (rq->status == 404 || (rq->status == 500 && strcasestr(msg, "no such container")))
            fail(r, "container %.12s was removed by someone else before it started", r->id);
        else
            fail(r, "%s", msg);
        cbx__ctr_abort(&r->attach_rq);
        do_delete(r);
        return;
    }
    cbx__ctr_req_clear(rq);
    r->t_started_ns = uv_hrtime();
    r->phase = CTR_WAIT;
    uint64_t now = now_ms();
    r->stats_at_ms = now + STATS_DELAY_MS;
    r->probe_every_ms = PROBE_FIRST_MS;
    r->probe_at_ms = now + PROBE_FIRST_MS;
    if (r->cancelled)
        stop_container(r);
    tick_arm(r);
    if (r->attach_done)
        probe_now(r);
}

/* ---- while it runs: stats and the probe ----------------------------------------------------- */

/* The stats stream: one JSON object a line; the highest memory use sampled, the CPU time. */
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

/* The probe's inspect: a container no longer running has exited, whatever the wait says. */
static void on_probe(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    json_t *doc = rq->status == 200 ? cbx__ctr_req_json(rq) : NULL;
    json_t *state = json_object_get(doc, "State");
    const char *status = json_string_value(json_object_get(state, "Status"));
    json_t *code = json_object_get(state, "ExitCode");
    int over = state && !json_is_true(json_object_get(state, "Running")) && status &&
               (strcmp(status, "exited") == 0 || strcmp(status, "stopped") == 0 ||
                strcmp(status, "dead") == 0) &&
               json_is_integer(code);
    if (over) {
        r->exit_code = (long)json_integer_value(code);
        r->have_exit = 1;
        r->oom_killed = json_is_true(json_object_get(state, "OOMKilled"));
        r->probed_exit = 1;
    }
    json_decref(doc);
    if (rq->status == 404 && r->phase == CTR_WAIT) {
        /* removed behind our back: no exit will come */
        fail(r, "container %.12s was removed by someone else while it ran", r->id);
        r->gone = 1;
        over = 1;
    }
    cbx__ctr_req_clear(rq);
    if (r->phase != CTR_WAIT)
        return;
    if (over) {
        exited(r);
    } else if (r->attach_done && !r->settling) {
        /* Running still: the engine has not seen the exit yet (the attach may end a moment
         * before it does), or the container closed its output and runs on. The probe asks
         * again soon, then less and less often. (Podman's "not-running" wait would poll the
         * state for it without a pause, a share of a core for hundreds of ms.) */
        r->settling = 1;
        r->probe_every_ms = SETTLE_FIRST_MS;
        r->probe_at_ms = now_ms() + SETTLE_FIRST_MS;
        tick_arm(r);
    }
}

/* Inspect the container now (the attach has ended). */
static void probe_now(cbx__ctr_run *r)
{
    char path[160];
    cbx__ctr_abort(&r->probe_rq);
    snprintf(path, sizeof path, "/containers/%s/json", r->id);
    if (send_req(r, &r->probe_rq, on_probe, "GET", path, NULL) < 0)
        r->error[0] = '\0'; /* the probe's schedule goes on */
}

static void on_tick(uv_timer_t *t)
{
    cbx__ctr_run *r = t->data;
    if (r->phase == CTR_ARM) {
        do_start(r);
        return;
    }
    if (r->phase != CTR_WAIT)
        return;
    uint64_t now = now_ms();
    if (r->term_sent && !r->kill_sent && now >= r->kill_at_ms) {
        r->kill_sent = 1;
        send_signal(r, "SIGKILL");
    }
    if (r->want_stats && !r->stats_started && now >= r->stats_at_ms && !r->cancelled) {
        char path[160];
        snprintf(path, sizeof path, "/containers/%s/stats?stream=true", r->id);
        r->stats_started = 1;
        r->stats_rq.sink = stats_feed;
        r->stats_rq.sink_data = r;
        if (send_req(r, &r->stats_rq, on_stats, "GET", path, NULL) < 0)
            r->error[0] = '\0'; /* optional: no stats without it */
    }
    if (now >= r->probe_at_ms) {
        if (!r->probe_rq.live) {
            char path[160];
            snprintf(path, sizeof path, "/containers/%s/json", r->id);
            if (send_req(r, &r->probe_rq, on_probe, "GET", path, NULL) < 0)
                r->error[0] = '\0'; /* the wait still watches */
        }
        r->probe_every_ms =
            r->probe_every_ms * 2 > PROBE_MAX_MS ? PROBE_MAX_MS : r->probe_every_ms * 2;
        r->probe_at_ms = now + r->probe_every_ms;
    }
    tick_arm(r);
}

/* ---- after the exit: output, OOM state, removal --------------------------------------------- */

static void on_inspect(cbx__ctr_req *rq)
{
    cbx__ctr_run *r = rq->data;
    json_t *doc = rq->status == 200 ? cbx__ctr_req_json(rq) : NULL;
    json_t *state = json_object_get(doc, "State");
    if (json_is_true(json_object_get(state, "OOMKilled")))
        r->oom_killed = 1;
    json_t *code = json_object_get(state, "ExitCode");
    if (!r->have_exit && json_is_integer(code) &&
        !json_is_true(json_object_get(state, "Running"))) {
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
    if (rq->status == 404) {
        /* its exit was its removal (podman rm -f, docker rm -f): nothing left to read or remove */
        fail(r, "container %.12s was removed by someone else while it ran", r->id);
        finish(r);
        return;
    }
    after_logs(r);
}

/* The output is in: the OOM state where it is not known yet, then the removal. */
static void after_logs(cbx__ctr_run *r)
{
    /* The engine's OOMKilled flag matters only for a container killed by SIGKILL (137), and an
     * inspect that saw the exit has read it already; a request less per container counts. */
    if (r->probed_exit || (r->have_exit && r->exit_code != 137)) {
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
    /* 404: someone else removed it first; it is gone all the same. When it ran, that was while
     * it ran (an exit seen before the removal, podman rm -f), which fails the attempt as a 404
     * of the logs would. */
    r->removed = rq->status == 204 || rq->status == 200 || rq->status == 404;
    if (rq->status == 404 && r->t_started_ns)
        fail(r, "container %.12s was removed by someone else while it ran", r->id);
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

/* ---- the report ----------------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    cbx__ctr_run_deliver(h->data);
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
    cbx__ctr_req *all[] = {&r->rq, &r->stats_rq, &r->kill_rq, &r->probe_rq, &r->attach_rq};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        cbx__ctr_abort(all[i]);
        cbx__ctr_req_clear(all[i]);
    }
    if (r->timer_init)
        uv_timer_stop(&r->timer);
    if (r->timer_init)
        uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    else
        cbx__ctr_run_deliver(r);
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
    r->rq.socket = r->stats_rq.socket = r->kill_rq.socket = r->probe_rq.socket =
        r->attach_rq.socket = r->socket;
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
    r->grace_ms =
        json_is_integer(g) ? (uint64_t)json_integer_value(g) : cbx_task_kill_grace_ns(t) / 1000000u;
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
    case CTR_ARM: /* created, not started: removed */
        if (r->timer_init)
            uv_timer_stop(&r->timer);
        cbx__ctr_abort(&r->attach_rq);
        r->attach_rq.sink = NULL;
        do_delete(r);
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
