/* Flows from the --flows directory: list them, run one (synchronously with a wait limit, or
 * asynchronously), follow and cancel its run. cbx_flow_run blocks the loop it runs, so each run
 * has a thread of its own with its own loop and runtime (as `cbx run --batch` does), sharing the
 * server's registry, journal and breaker store; its step events and its end come back to the
 * server's loop through a queue and a uv_async_t. */
#include "server.h"

#include "cbx/flow.h"
#include "cbx/units.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

typedef struct flow_msg {
    srv_flow_run *run;
    int end; /* 1: the run ended (data: its result); then the message is the run's own */
    json_t *data;
    struct flow_msg *next;
} flow_msg;

struct srv_flow_run {
    srv *s;
    char run_id[40];
    char name[128];
    cbx_flow *f;
    json_t *inputs;
    pthread_t th;
    int started;            /* the thread exists: join it */
    uv_loop_t loop;         /* the run's own (its thread's) */
    uv_async_t cancel;      /* wakes the run's loop to cancel it */
    uv_prepare_t canceller; /* once cancelled, each turn cancels what the runner started since */
    int cancel_ready;       /* under s->flow_mu: cancel may be sent */
    int cancel_wanted;      /* under s->flow_mu */
    cbx_runtime *rt;        /* the thread's */
    int done;               /* on the server's loop: the end has been received */
    json_t *result;         /* cbx_flow_result_to_json, once done */
    flow_msg end_msg;       /* the end's message: posting it cannot fail */
    srv_waiter *waiters;
    srv_flow_run *next;
};

/* ---- messages from the run threads ----------------------------------------------------------- */

static void post(srv_flow_run *r, int end, json_t *data)
{
    srv *s = r->s;
    flow_msg *m = end ? &r->end_msg : calloc(1, sizeof *m);
    if (!m) { /* a step event lost for want of memory; the end never is */
        json_decref(data);
        return;
    }
    pthread_mutex_lock(&s->flow_mu);
    *m = (flow_msg){.run = r, .end = end, .data = data};
    flow_msg **pp = (flow_msg **)&s->flow_msgs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    pthread_mutex_unlock(&s->flow_mu);
    uv_async_send(&s->flow_async);
}

static void on_flow_event(const cbx_flow_event *ev, void *ud)
{
    srv_flow_run *r = ud;
    static const char *const kinds[] = {"started", "retrying", "finished", "skipped"};
    json_t *d =
        json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:I}", "run_id", ev->run_id ? ev->run_id : "",
                  "flow", r->name, "step", ev->step ? ev->step : "", "event",
                  (unsigned)ev->kind < 4 ? kinds[ev->kind] : "?", "attempts", (int)ev->attempts,
                  "done", (int)ev->done, "total", (int)ev->total, "ms", (json_int_t)srv_now_ms());
    if (d && ev->kind == CBX_FLOW_STEP_FINISHED) {
        json_object_set_new(d, "status", json_string(cbx_status_name(ev->status)));
        if (ev->error && ev->error[0])
            json_object_set_new(d, "error", json_string(ev->error));
    }
    post(r, 0, d);
}

static void on_canceller(uv_prepare_t *p)
{
    srv_flow_run *r = p->data;
    cbx_runtime_cancel_all(r->rt);
}

/* As `cbx run` on SIGTERM: every running step is cancelled, and so is each the runner starts
 * afterwards; the run ends with its steps cancelled (and its status failed, naming the step). */
static void on_cancel(uv_async_t *a)
{
    srv_flow_run *r = a->data;
    cbx_runtime_cancel_all(r->rt);
    if (!uv_is_active((uv_handle_t *)&r->canceller))
        uv_prepare_start(&r->canceller, on_canceller);
}

static void *run_main(void *arg)
{
    srv_flow_run *r = arg;
    srv *s = r->s;
    cbx_flow_result res;
    memset(&res, 0, sizeof res);
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    if (uv_loop_init(&r->loop) < 0) {
        out = json_pack("{s:s,s:s,s:s}", "run_id", r->run_id, "status", "failed", "error",
                        "cannot make an event loop");
        goto done;
    }
    cbx_runtime_opts ro = {.loop = &r->loop,
                           .registry = cbx_runtime_registry(s->rt),
                           .journal = s->journal,
                           .breakers = s->breakers,
                           .max_concurrent = s->o.max_concurrent};
    if (cbx_runtime_new(&r->rt, &ro, &err) < 0) {
        out = json_pack("{s:s,s:s,s:s}", "run_id", r->run_id, "status", "failed", "error",
                        err.msg[0] ? err.msg : "cannot make the runtime");
        goto close_loop;
    }
    uv_async_init(&r->loop, &r->cancel, on_cancel);
    uv_prepare_init(&r->loop, &r->canceller);
    r->cancel.data = r->canceller.data = r;
    uv_unref((uv_handle_t *)&r->cancel);
    uv_unref((uv_handle_t *)&r->canceller);
    pthread_mutex_lock(&s->flow_mu);
    r->cancel_ready = 1;
    int wanted = r->cancel_wanted;
    pthread_mutex_unlock(&s->flow_mu);
    if (wanted)
        uv_async_send(&r->cancel);
    cbx_flow_run_opts fo = {
        .inputs = r->inputs, .run_id = r->run_id, .on_event = on_flow_event, .ud = r};
    cbx_flow_run(r->rt, r->f, &fo, &res, &err);
    out = cbx_flow_result_to_json(&res);
    if (out && res.error[0])
        json_object_set_new(out, "error", json_string(res.error));
    cbx_flow_result_clear(&res);
    pthread_mutex_lock(&s->flow_mu);
    r->cancel_ready = 0;
    pthread_mutex_unlock(&s->flow_mu);
    uv_close((uv_handle_t *)&r->cancel, NULL);
    uv_close((uv_handle_t *)&r->canceller, NULL);
    cbx_runtime_free(r->rt); /* runs the loop to the end of its work and of the close above */
    r->rt = NULL;
close_loop:
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
done:
    if (!out)
        out = json_pack("{s:s,s:s}", "run_id", r->run_id, "status", "failed");
    post(r, 1, out);
    return NULL;
}

/* ---- the server's side ---------------------------------------------------------------------- */

static json_t *running_json(const srv_flow_run *r)
{
    return json_pack("{s:s,s:s,s:s}", "run_id", r->run_id, "flow", r->name, "status", "running");
}

static void send_accepted(h2o_req_t *req, const srv_flow_run *r)
{
    char loc[96];
    int n = snprintf(loc, sizeof loc, "/v1/runs/%s", r->run_id);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                   h2o_strdup(&req->pool, loc, (size_t)n).base, (size_t)n);
    srv_send_json(req, 202, running_json(r));
}

static void waiter_timeout(h2o_req_t *req, void *r)
{
    send_accepted(req, r);
}

static void run_free(srv_flow_run *r)
{
    cbx_flow_free(r->f);
    json_decref(r->inputs);
    json_decref(r->result);
    free(r);
}

static void on_flow_async(uv_async_t *a)
{
    srv *s = a->data;
    pthread_mutex_lock(&s->flow_mu);
    flow_msg *m = s->flow_msgs;
    s->flow_msgs = NULL;
    pthread_mutex_unlock(&s->flow_mu);
    while (m) {
        flow_msg *next = m->next;
        srv_flow_run *r = m->run;
        if (!m->end) {
            srv_event(s, "flow_step", m->data);
        } else {
            pthread_join(r->th, NULL);
            r->started = 0;
            r->done = 1;
            r->result = m->data;
            s->n_flow_runs--;
            const char *st = json_string_value(json_object_get(r->result, "status"));
            srv_event(s, "flow_run",
                      json_pack("{s:s,s:s,s:s,s:O?}", "run_id", r->run_id, "flow", r->name,
                                "status", st ? st : "?", "error",
                                json_object_get(r->result, "error")));
            for (h2o_req_t *req; (req = srv_wait_take(&r->waiters));)
                srv_send_json(req, 200, json_incref(r->result));
            if (s->stopping && !s->n_inflight && !s->n_flow_runs)
                srv_shutdown_poke(s);
        }
        if (!m->end)
            free(m);
        m = next;
    }
}

int srv_flows_init(srv *s)
{
    if (pthread_mutex_init(&s->flow_mu, NULL) != 0)
        return -ENOMEM;
    s->flow_mu_ok = 1;
    uv_async_init(&s->loop, &s->flow_async, on_flow_async);
    s->flow_async.data = s;
    uv_unref((uv_handle_t *)&s->flow_async);
    return 0;
}

void srv_flows_cancel_all(srv *s)
{
    for (srv_flow_run *r = s->runs; r; r = r->next) {
        if (r->done)
            continue;
        pthread_mutex_lock(&s->flow_mu);
        r->cancel_wanted = 1;
        if (r->cancel_ready)
            uv_async_send(&r->cancel);
        pthread_mutex_unlock(&s->flow_mu);
    }
}

void srv_flows_free(srv *s)
{
    srv_flows_cancel_all(s);
    for (srv_flow_run *r = s->runs; r; r = r->next)
        if (r->started) {
            pthread_join(r->th, NULL);
            r->started = 0;
        }
    if (s->flow_mu_ok) {
        on_flow_async(&s->flow_async); /* what the threads posted last */
        if (!uv_is_closing((uv_handle_t *)&s->flow_async))
            uv_close((uv_handle_t *)&s->flow_async, NULL);
    }
    while (s->runs) {
        srv_flow_run *n = s->runs->next;
        while (srv_wait_take(&s->runs->waiters))
            ; /* their requests go with the server */
        run_free(s->runs);
        s->runs = n;
    }
}

void srv_flows_destroy_mutex(srv *s)
{
    if (s->flow_mu_ok)
        pthread_mutex_destroy(&s->flow_mu);
    s->flow_mu_ok = 0;
}

/* ---- the flows directory -------------------------------------------------------------------- */

static int no_flows(srv *s, h2o_req_t *req)
{
    if (s->o.flows_dir)
        return 0;
    srv_problem(req, 404, "no-flows", NULL,
                "this server has no flows directory (cbx serve --flows DIR)");
    return 1;
}

int srv_h_flows(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    json_t *arr = json_array();
    DIR *dir = s->o.flows_dir ? opendir(s->o.flows_dir) : NULL;
    char name[256];
    while (srv_def_next(dir, name)) {
        char path[PATH_MAX];
        if (srv_def_path(s->o.flows_dir, name, path, sizeof path) < 0)
            continue;
        cbx_flow *f = NULL;
        cbx_diag d = {0};
        json_t *o = json_pack("{s:s,s:s}", "name", name, "file", path);
        if (cbx_flow_load(&f, path, cbx_runtime_registry(s->rt), &d) == 0) {
            json_object_set_new(o, "flow", json_string(cbx_flow_name(f)));
            json_object_set_new(o, "steps", json_integer((json_int_t)cbx_flow_step_count(f)));
            json_object_set_new(o, "valid", json_true());
        } else {
            char line[600];
            srv_diag_line(&d, line, sizeof line);
            json_object_set_new(o, "valid", json_false());
            json_object_set_new(o, "error", json_string(line));
        }
        cbx_diag_clear(&d);
        cbx_flow_free(f);
        json_array_append_new(arr, o);
    }
    if (dir)
        closedir(dir);
    srv_send_json(req, 200, json_pack("{s:o}", "flows", arr));
    return 0;
}

/* ---- POST /v1/flows/{name}/runs -------------------------------------------------------------- */

static void uuid4(char out[40])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)rand();
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int srv_h_flow_run(srv *s, h2o_req_t *req, char **args)
{
    if (!srv_authorized(s, req) || no_flows(s, req))
        return 0;
    if (s->stopping) {
        srv_problem(req, 503, "stopping", NULL, "the server is shutting down");
        return 0;
    }
    char path[PATH_MAX];
    if (srv_def_path(s->o.flows_dir, args[0], path, sizeof path) < 0) {
        srv_problem(req, 404, "not-found", "name", "no flow '%.100s' in %s (see GET /v1/flows)",
                    args[0], s->o.flows_dir);
        return 0;
    }
    json_t *body = srv_body_object(req);
    if (!body)
        return 0;
    static const char *const fields[] = {"inputs", "mode", "wait", NULL};
    srv_flow_run *r = NULL;
    cbx_diag d = {0};
    if (!srv_only_fields(req, body, fields))
        goto out;
    const json_t *given = json_object_get(body, "inputs");
    if (given && !json_is_object(given)) {
        srv_problem(req, 400, "wrong-type", "inputs",
                    "request body: field 'inputs': expected an object");
        goto out;
    }
    const json_t *mode = json_object_get(body, "mode");
    int async = 0;
    if (mode &&
        !(json_is_string(mode) && (strcmp(json_string_value(mode), "sync") == 0 ||
                                   (async = strcmp(json_string_value(mode), "async") == 0)))) {
        srv_problem(req, 400, "wrong-value", "mode",
                    "request body: field 'mode': expected \"sync\" or \"async\"");
        goto out;
    }
    uint64_t wait_ns = 30ull * 1000000000u;
    const json_t *w = json_object_get(body, "wait");
    if (w) {
        if (json_is_integer(w) && json_integer_value(w) > 0)
            wait_ns = (uint64_t)json_integer_value(w) * 1000000u;
        else if (!json_is_string(w) || cbx_duration_parse_ns(json_string_value(w), &wait_ns) < 0 ||
                 !wait_ns) {
            srv_problem(req, 400, "wrong-type", "wait",
                        "request body: field 'wait': expected a duration (\"5s\") or milliseconds");
            goto out;
        }
        if (wait_ns > s->o.max_wait_ms * 1000000u) {
            srv_problem(req, 400, "wrong-value", "wait",
                        "request body: field 'wait': at most %llu ms (cbx serve --max-wait)",
                        (unsigned long long)s->o.max_wait_ms);
            goto out;
        }
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        srv_problem(req, 500, "internal", NULL, "out of memory");
        goto out;
    }
    r->s = s;
    snprintf(r->name, sizeof r->name, "%s", args[0]);
    if (cbx_flow_load(&r->f, path, cbx_runtime_registry(s->rt), &d) < 0) {
        char line[700];
        srv_diag_line(&d, line, sizeof line);
        srv_problem(req, 409, "invalid-flow", NULL, "flow '%s': %s", r->name, line);
        goto out;
    }
    json_t *empty = json_object();
    int rc = cbx_flow_inputs(r->f, given ? given : empty, &r->inputs, &d);
    json_decref(empty);
    if (rc < 0) {
        cbx_err e;
        cbx_diag_first(&d, &e);
        char field[300];
        snprintf(field, sizeof field, "inputs%s%s", e.where[0] ? "." : "", e.where);
        srv_problem(req, 400, "invalid-inputs", field, "inputs: %s%s%s", e.where,
                    e.where[0] ? ": " : "", e.msg);
        goto out;
    }
    uuid4(r->run_id);
    if (pthread_create(&r->th, NULL, run_main, r) != 0) {
        srv_problem(req, 500, "internal", NULL, "cannot start a thread for the run");
        goto out;
    }
    r->started = 1;
    r->next = s->runs;
    s->runs = r;
    s->n_flow_runs++;
    srv_event(
        s, "flow_run",
        json_pack("{s:s,s:s,s:s}", "run_id", r->run_id, "flow", r->name, "status", "running"));
    /* asynchronous, or the waiter could not be set up: 202 now */
    if (async || srv_wait(s, req, &r->waiters, r, wait_ns / 1000000u, waiter_timeout) < 0)
        send_accepted(req, r);
    r = NULL; /* the server's now */
out:
    if (r)
        run_free(r);
    cbx_diag_clear(&d);
    json_decref(body);
    return 0;
}

/* ---- runs ------------------------------------------------------------------------------------ */

static srv_flow_run *find_run(srv *s, const char *id)
{
    for (srv_flow_run *r = s->runs; r; r = r->next)
        if (strcmp(r->run_id, id) == 0)
            return r;
    return NULL;
}

int srv_h_runs(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    static const char *const allowed[] = {"status", "flow", "since", "limit", NULL};
    if (!srv_query_only(req, allowed))
        return 0;
    if (!s->journal) {
        srv_problem(req, 503, "no-journal", NULL, "the server runs without a journal");
        return 0;
    }
    char status[32], flow[256], since[32], limit[32];
    cbx_flow_runs_filter f = {0};
    if (srv_query(req, "status", status, sizeof status))
        f.status = status;
    if (srv_query(req, "flow", flow, sizeof flow))
        f.flow = flow;
    char *end = NULL;
    if (srv_query(req, "since", since, sizeof since)) {
        f.since_ms = strtoull(since, &end, 10);
        if (!since[0] || *end || since[0] == '-') {
            srv_problem(req, 400, "wrong-type", "since",
                        "query parameter 'since': expected ms since the epoch, got '%.30s'", since);
            return 0;
        }
    }
    if (srv_query(req, "limit", limit, sizeof limit)) {
        unsigned long long v = strtoull(limit, &end, 10);
        if (!limit[0] || *end || limit[0] == '-' || v > 10000) {
            srv_problem(req, 400, "wrong-type", "limit",
                        "query parameter 'limit': expected 0 to 10000, got '%.30s'", limit);
            return 0;
        }
        f.limit = (uint32_t)v;
    }
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_flow_runs_query(s->journal, &f, &out, &err);
    if (rc < 0) {
        srv_problem(req, rc == CBX_EINVAL_CONFIG ? 400 : 500, "runs", NULL, "runs: %s",
                    err.msg[0] ? err.msg : cbx_strerror(rc));
        return 0;
    }
    srv_send_json(req, 200, json_pack("{s:o}", "runs", out));
    return 0;
}

int srv_h_run_get(srv *s, h2o_req_t *req, char **args)
{
    json_t *out = NULL;
    int rc = s->journal ? cbx_flow_run_show(s->journal, args[0], &out, NULL) : -ENOENT;
    if (rc == 0 && out) {
        srv_send_json(req, 200, out);
        return 0;
    }
    srv_flow_run *r = find_run(s, args[0]);
    if (r) {
        srv_send_json(req, 200, r->done ? json_incref(r->result) : running_json(r));
        return 0;
    }
    srv_problem(req, 404, "not-found", "id", "no flow run '%.60s' (see GET /v1/runs)", args[0]);
    return 0;
}

int srv_h_run_cancel(srv *s, h2o_req_t *req, char **args)
{
    if (!srv_authorized(s, req))
        return 0;
    srv_flow_run *r = find_run(s, args[0]);
    if (r && !r->done) {
        pthread_mutex_lock(&s->flow_mu);
        r->cancel_wanted = 1;
        if (r->cancel_ready)
            uv_async_send(&r->cancel);
        pthread_mutex_unlock(&s->flow_mu);
        json_t *o = running_json(r);
        json_object_set_new(o, "cancelling", json_true());
        srv_send_json(req, 202, o);
        return 0;
    }
    json_t *row = NULL;
    if (r && r->done)
        row = json_incref(r->result);
    else if (s->journal)
        cbx_flow_run_show(s->journal, args[0], &row, NULL);
    if (!row) {
        srv_problem(req, 404, "not-found", "id", "no flow run '%.60s' (see GET /v1/runs)", args[0]);
        return 0;
    }
    const char *st = json_string_value(json_object_get(row, "status"));
    srv_problem(req, 409, "ended", "id",
                "flow run '%s' is not running here (%s): nothing to cancel", args[0],
                st ? st : "?");
    json_decref(row);
    return 0;
}
