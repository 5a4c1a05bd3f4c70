/* Workflows from the --workflows directory: list them and their nets, start runs with tokens, add
 * tokens, signal them, show runs with their marking, and take up (resume) runs from the journal.
 * A workflow run fires on the server's own loop and runtime (cbx_workflow_advance never blocks):
 * each of its events schedules the next advance, and a timer waits for its after: timers. Token
 * events go to /v1/events as kind workflow_token. */
#include "server.h"

#include "cbx/workflow.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct srv_wf_run {
    srv *s;
    cbx_workflow_run *run;
    cbx_workflow *w; /* owned when started here; NULL when resumed (the run owns its net) */
    char run_id[40];
    char workflow[128]; /* the net's name */
    uv_timer_t *timer;  /* the next advance: at once after an event, or at an after: timer */
    int busy;           /* counted in s->n_wf_busy: firing, or able to fire */
    json_t *reported;   /* token id -> "state@place" last sent as an event */
    json_t *finals;     /* the net's final places: {place: true} */
    srv_wf_run *next;
};

/* ---- files of the directory ------------------------------------------------------------------ */

static int no_workflows(srv *s, h2o_req_t *req)
{
    if (s->o.workflows_dir)
        return 0;
    srv_problem(req, 404, "no-workflows", NULL,
                "this server has no workflows directory (cbx serve --workflows DIR)");
    return 1;
}

static int refuse_stopping(srv *s, h2o_req_t *req)
{
    if (!s->stopping)
        return 0;
    srv_problem(req, 503, "stopping", NULL, "the server is shutting down");
    return 1;
}

static int need_journal(srv *s, h2o_req_t *req)
{
    if (s->journal)
        return 0;
    srv_problem(req, 503, "no-journal", NULL,
                "the server runs without a journal: workflow runs live in it");
    return 1;
}

/* ---- runs held by this server ------------------------------------------------------------------
 */

static srv_wf_run *held(srv *s, const char *id)
{
    for (srv_wf_run *x = s->wf_runs; x; x = x->next)
        if (strcmp(x->run_id, id) == 0)
            return x;
    return NULL;
}

static void wf_event(srv_wf_run *x, const char *what, const char *token, const char *transition,
                     const char *place, const char *detail)
{
    json_t *d = json_pack("{s:s,s:s,s:s,s:s}", "run_id", x->run_id, "workflow", x->workflow,
                          "token", token ? token : "", "event", what);
    if (!d)
        return;
    if (transition)
        json_object_set_new(d, "transition", json_string(transition));
    if (place)
        json_object_set_new(d, "place", json_string(place));
    if (detail && detail[0])
        json_object_set_new(d, "detail", json_string(detail));
    srv_event(x->s, "workflow_token", d);
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_timer(uv_timer_t *t);

static void kick(srv_wf_run *x, uint64_t after_ms)
{
    if (x->timer)
        uv_timer_start(x->timer, on_timer, after_ms, 0);
}

static void on_wf_event(const cbx_workflow_event *ev, void *ud)
{
    srv_wf_run *x = ud;
    if (ev->replayed)
        return;
    switch (ev->kind) {
    case CBX_WORKFLOW_TOKEN_ADDED:
        wf_event(x, "created", ev->token, NULL, ev->place, NULL);
        break;
    case CBX_WORKFLOW_ACTION_STARTED:
        wf_event(x, "action_started", ev->token, ev->transition, ev->place, NULL);
        break;
    case CBX_WORKFLOW_FIRED:
        wf_event(x, "fired", ev->token, ev->transition, ev->place, NULL);
        if (ev->place && json_object_get(x->finals, ev->place)) { /* at once, not at rest */
            char key[300];
            snprintf(key, sizeof key, "done@%s", ev->place);
            json_object_set_new(x->reported, ev->token, json_string(key));
            wf_event(x, "done", ev->token, NULL, ev->place, NULL);
        }
        break;
    case CBX_WORKFLOW_BLOCKED:
        wf_event(x, "blocked", ev->token, ev->transition, ev->place, ev->detail);
        break;
    case CBX_WORKFLOW_SIGNALLED:
        wf_event(x, "signalled", ev->token, ev->transition, ev->place, NULL);
        break;
    case CBX_WORKFLOW_TOKEN_FAILED:
        wf_event(x, "failed", ev->token, NULL, ev->place, ev->detail);
        json_object_set_new(x->reported, ev->token, json_string("failed"));
        break;
    }
    kick(x, 0);
}

/* Tokens that came to rest since the last look: waiting, stuck, done (in a final place). Looked
 * at when the run rests (a snapshot walks every token). */
static void report_rest(srv_wf_run *x)
{
    json_t *snap = cbx_workflow_run_snapshot(x->run);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(snap, "tokens"), i, t)
    {
        const char *id = json_string_value(json_object_get(t, "id"));
        const char *st = json_string_value(json_object_get(t, "state"));
        const char *place = json_string_value(json_object_get(t, "place"));
        if (!id || !st || !place)
            continue;
        const char *what = strcmp(st, "final") == 0     ? "done"
                           : strcmp(st, "waiting") == 0 ? "waiting"
                           : strcmp(st, "stuck") == 0   ? "stuck"
                                                        : NULL;
        if (!what)
            continue;
        char key[300];
        snprintf(key, sizeof key, "%s@%s", what, place);
        const char *was = json_string_value(json_object_get(x->reported, id));
        if (was && (strcmp(was, key) == 0 || strcmp(was, "failed") == 0))
            continue;
        json_object_set_new(x->reported, id, json_string(key));
        const char *detail =
            strcmp(what, "waiting") == 0 ? json_string_value(json_object_get(t, "waiting_for"))
            : strcmp(what, "stuck") == 0 ? json_string_value(json_object_get(t, "explanation"))
                                         : NULL;
        wf_event(x, what, id, NULL, place, detail);
    }
    json_decref(snap);
}

static void set_busy(srv_wf_run *x, int busy)
{
    if (x->busy == busy)
        return;
    x->busy = busy;
    if (busy)
        x->s->n_wf_busy++;
    else
        x->s->n_wf_busy--;
}

static void unlink_run(srv *s, srv_wf_run *x)
{
    srv_wf_run **pp = &s->wf_runs;
    while (*pp && *pp != x)
        pp = &(*pp)->next;
    if (*pp)
        *pp = x->next;
}

/* Free a held run (its actions in flight are cancelled unjournaled: a resume runs them again). */
static void release(srv_wf_run *x)
{
    set_busy(x, 0);
    if (x->timer) {
        uv_timer_stop(x->timer);
        uv_close((uv_handle_t *)x->timer, timer_closed);
        x->timer = NULL;
    }
    cbx_workflow_run_free(x->run);
    cbx_workflow_free(x->w);
    json_decref(x->reported);
    json_decref(x->finals);
    free(x);
}

static int advance(srv_wf_run *x)
{
    uint64_t due = 0;
    int st = cbx_workflow_advance(x->run, &due);
    if (st < 0)
        st = CBX_WORKFLOW_FAILED;
    if (st != CBX_WORKFLOW_RUNNING)
        report_rest(x);
    set_busy(x, st == CBX_WORKFLOW_RUNNING);
    if (due) {
        uint64_t now = srv_now_ms();
        kick(x, due > now ? due - now : 0);
    }
    srv *s = x->s;
    if (s->stopping && !s->n_inflight && !s->n_flow_runs && !s->n_wf_busy)
        srv_shutdown_poke(s);
    return st;
}

static void on_timer(uv_timer_t *t)
{
    srv_wf_run *x = t->data;
    int st = advance(x);
    /* a run that can go on no more is let go (the journal has it; a new token or a resume takes
     * it up again); one waiting for a signal or a timer is kept */
    if (st == CBX_WORKFLOW_DONE || st == CBX_WORKFLOW_FAILED || st == CBX_WORKFLOW_STUCK) {
        unlink_run(x->s, x);
        release(x);
    }
}

static srv_wf_run *wf_new(srv *s)
{
    srv_wf_run *x = calloc(1, sizeof *x);
    uv_timer_t *t = calloc(1, sizeof *t);
    json_t *rep = json_object(), *fin = json_object();
    if (!x || !t || !rep || !fin) {
        free(x);
        free(t);
        json_decref(rep);
        json_decref(fin);
        return NULL;
    }
    x->s = s;
    x->reported = rep;
    x->finals = fin;
    x->timer = t;
    uv_timer_init(&s->loop, t);
    t->data = x;
    return x;
}

static void hold(srv *s, srv_wf_run *x)
{
    snprintf(x->run_id, sizeof x->run_id, "%s", cbx_workflow_run_id(x->run));
    snprintf(x->workflow, sizeof x->workflow, "%s",
             cbx_workflow_name(cbx_workflow_run_net(x->run)));
    json_t *net = cbx_workflow_describe(cbx_workflow_run_net(x->run));
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(net, "places"), i, p)
    {
        if (json_is_true(json_object_get(p, "final")))
            json_object_set_new(x->finals, json_string_value(json_object_get(p, "name")),
                                json_true());
    }
    json_decref(net);
    x->next = s->wf_runs;
    s->wf_runs = x;
}

/* Take up run id from the journal (as `cbx workflow resume`). 0 and *out, or a negative code with
 * the reason in err. */
static int take(srv *s, const char *id, srv_wf_run **out, cbx_err *err)
{
    *out = held(s, id);
    if (*out)
        return 0;
    srv_wf_run *x = wf_new(s);
    if (!x)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    cbx_workflow_run_opts o = {.on_event = on_wf_event, .ud = x};
    int rc = cbx_workflow_resume(&x->run, s->rt, id, cbx_runtime_registry(s->rt), &o, err);
    if (rc) {
        release(x);
        return rc;
    }
    hold(s, x);
    /* what was already at rest is not announced again */
    json_t *snap = cbx_workflow_run_snapshot(x->run);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(snap, "tokens"), i, t)
    {
        const char *tid = json_string_value(json_object_get(t, "id"));
        const char *st = json_string_value(json_object_get(t, "state"));
        const char *place = json_string_value(json_object_get(t, "place"));
        if (!tid || !st || !place)
            continue;
        char key[300];
        snprintf(key, sizeof key, "%s@%s",
                 strcmp(st, "final") == 0    ? "done"
                 : strcmp(st, "failed") == 0 ? "failed"
                                             : st,
                 place);
        json_object_set_new(x->reported, tid,
                            json_string(strcmp(st, "failed") == 0 ? "failed" : key));
    }
    json_decref(snap);
    *out = x;
    return 0;
}

static int take_or_problem(srv *s, h2o_req_t *req, const char *id, srv_wf_run **out)
{
    cbx_err e;
    cbx_err_clear(&e);
    int rc = take(s, id, out, &e);
    if (rc == 0)
        return 1;
    if (rc == -ENOENT)
        srv_problem(req, 404, "not-found", "id",
                    "no workflow run '%.60s' (see GET /v1/workflow-runs)", id);
    else if (rc == -EBUSY || rc == CBX_EINVAL_CONFIG)
        srv_problem(req, 409, rc == -EBUSY ? "busy" : "invalid-workflow", "id", "%s",
                    e.msg[0] ? e.msg : cbx_strerror(rc));
    else
        srv_problem(req, 500, "internal", NULL, "workflow run %.60s: %s", id,
                    e.msg[0] ? e.msg : cbx_strerror(rc));
    return 0;
}

/* ---- start, shut down ---------------------------------------------------------------------- */

static int same_dir(const char *file, const char *dir)
{
    char a[PATH_MAX], b[PATH_MAX], d[PATH_MAX];
    snprintf(d, sizeof d, "%s", file);
    char *slash = strrchr(d, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(d, sizeof d, ".");
    if (!realpath(d, a) || !realpath(dir, b))
        return 0;
    return strcmp(a, b) == 0;
}

void srv_workflows_start(srv *s)
{
    if (!s->o.workflows_dir || !s->journal)
        return;
    json_t *rows = NULL;
    if (cbx_workflow_runs_list(s->journal, 100000, &rows, NULL) != 0)
        return;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *st = json_string_value(json_object_get(row, "state"));
        const char *file = json_string_value(json_object_get(row, "file"));
        const char *id = json_string_value(json_object_get(row, "run_id"));
        if (!st || !file || !id || !same_dir(file, s->o.workflows_dir))
            continue;
        if (strcmp(st, "interrupted") != 0 && strcmp(st, "waiting") != 0 &&
            strcmp(st, "started") != 0 && strcmp(st, "running") != 0)
            continue;
        srv_wf_run *x = NULL;
        cbx_err e;
        cbx_err_clear(&e);
        if (take(s, id, &x, &e) == 0)
            kick(x, 0);
        else if (e.msg[0])
            fprintf(stderr, "cbx: serve: workflow run %s not taken up: %s\n", id, e.msg);
    }
    json_decref(rows);
}

void srv_workflows_release_all(srv *s)
{
    while (s->wf_runs) {
        srv_wf_run *x = s->wf_runs;
        s->wf_runs = x->next;
        release(x);
    }
}

/* ---- GET /v1/workflows, GET /v1/workflows/{name} ------------------------------------------- */

static json_t *held_ids(srv *s, const char *net)
{
    json_t *a = json_array();
    for (srv_wf_run *x = s->wf_runs; x; x = x->next)
        if (!net || strcmp(x->workflow, net) == 0)
            json_array_append_new(a, json_string(x->run_id));
    return a;
}

int srv_h_workflows(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    json_t *arr = json_array();
    DIR *dir = s->o.workflows_dir ? opendir(s->o.workflows_dir) : NULL;
    char name[256];
    while (srv_def_next(dir, name)) {
        char path[PATH_MAX];
        if (srv_def_path(s->o.workflows_dir, name, path, sizeof path) < 0)
            continue;
        cbx_workflow *w = NULL;
        cbx_diag d = {0};
        json_t *o = json_pack("{s:s,s:s}", "name", name, "file", path);
        if (cbx_workflow_load(&w, path, cbx_runtime_registry(s->rt), &d) == 0) {
            json_object_set_new(o, "workflow", json_string(cbx_workflow_name(w)));
            json_object_set_new(o, "places", json_integer((json_int_t)cbx_workflow_place_count(w)));
            json_object_set_new(o, "transitions",
                                json_integer((json_int_t)cbx_workflow_transition_count(w)));
            json_object_set_new(o, "valid", json_true());
        } else {
            char line[600];
            srv_diag_line(&d, line, sizeof line);
            json_object_set_new(o, "valid", json_false());
            json_object_set_new(o, "error", json_string(line));
        }
        cbx_diag_clear(&d);
        cbx_workflow_free(w);
        json_array_append_new(arr, o);
    }
    if (dir)
        closedir(dir);
    srv_send_json(req, 200, json_pack("{s:o}", "workflows", arr));
    return 0;
}

/* Load DIR/NAME: 1 and *out, or 0 with a problem sent. */
static int load_named(srv *s, h2o_req_t *req, const char *name, cbx_workflow **out)
{
    char path[PATH_MAX];
    if (srv_def_path(s->o.workflows_dir, name, path, sizeof path) < 0) {
        srv_problem(req, 404, "not-found", "name",
                    "no workflow '%.100s' in %s (see GET /v1/workflows)", name, s->o.workflows_dir);
        return 0;
    }
    cbx_diag d = {0};
    if (cbx_workflow_load(out, path, cbx_runtime_registry(s->rt), &d) != 0) {
        char line[700];
        srv_diag_line(&d, line, sizeof line);
        cbx_diag_clear(&d);
        srv_problem(req, 409, "invalid-workflow", NULL, "workflow '%s': %s", name, line);
        return 0;
    }
    cbx_diag_clear(&d);
    return 1;
}

int srv_h_workflow(srv *s, h2o_req_t *req, char **args)
{
    cbx_workflow *w = NULL;
    if (no_workflows(s, req) || !load_named(s, req, args[0], &w))
        return 0;
    json_t *o = cbx_workflow_describe(w);
    json_object_set_new(o, "runs", held_ids(s, cbx_workflow_name(w)));
    cbx_workflow_free(w);
    srv_send_json(req, 200, o);
    return 0;
}

/* ---- tokens from a request ------------------------------------------------------------------ */

/* Check one token spec {data, place, id}: 1, or 0 with a 400 problem naming field prefix.member. */
static int token_spec_ok(h2o_req_t *req, const json_t *t, const char *prefix, const json_t *net)
{
    if (!json_is_object(t)) {
        srv_problem(req, 400, "wrong-type", prefix, "request body: field '%s': expected an object",
                    prefix);
        return 0;
    }
    char field[160];
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)t, k, v)
    {
        snprintf(field, sizeof field, "%s%s%.60s", prefix, prefix[0] ? "." : "", k);
        if (strcmp(k, "data") == 0) {
            if (!json_is_object(v)) {
                srv_problem(req, 400, "wrong-type", field,
                            "request body: field '%s': expected an object", field);
                return 0;
            }
        } else if (strcmp(k, "place") == 0 || strcmp(k, "id") == 0) {
            if (!json_is_string(v)) {
                srv_problem(req, 400, "wrong-type", field,
                            "request body: field '%s': expected a string", field);
                return 0;
            }
        } else {
            srv_problem(req, 400, "unknown-field", field,
                        "request body: unknown field '%s' (known: data, place, id)", field);
            return 0;
        }
    }
    const char *place = json_string_value(json_object_get(t, "place"));
    if (place) {
        int found = 0;
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(net, "places"), i, p)
        {
            found |= strcmp(json_string_value(json_object_get(p, "name")), place) == 0;
        }
        if (!found) {
            snprintf(field, sizeof field, "%s%splace", prefix, prefix[0] ? "." : "");
            srv_problem(req, 400, "wrong-value", field,
                        "request body: field '%s': unknown place '%.100s'", field, place);
            return 0;
        }
    }
    const char *id = json_string_value(json_object_get(t, "id"));
    if (id && (!*id || strlen(id) >= 40 || strchr(id, '/'))) {
        snprintf(field, sizeof field, "%s%sid", prefix, prefix[0] ? "." : "");
        srv_problem(req, 400, "wrong-value", field,
                    "request body: field '%s': 1 to 39 characters, no '/'", field);
        return 0;
    }
    return 1;
}

/* Add a checked token spec; the id used into idbuf. 0, or a problem sent and -1. */
static int add_token(h2o_req_t *req, srv_wf_run *x, const json_t *t, const char *prefix,
                     char *idbuf, size_t idlen)
{
    cbx_err e;
    cbx_err_clear(&e);
    int rc = cbx_workflow_add_token(x->run, json_string_value(json_object_get(t, "place")),
                                    json_object_get(t, "data"),
                                    json_string_value(json_object_get(t, "id")), idbuf, idlen, &e);
    if (rc == 0)
        return 0;
    char field[160];
    snprintf(field, sizeof field, "%s%s%s", prefix, prefix[0] && rc == -EEXIST ? "." : "",
             rc == -EEXIST ? "id"
             : prefix[0]   ? ""
                           : "place");
    srv_problem(req,
                rc == -EEXIST   ? 409
                : rc == -EINVAL ? 400
                                : 500,
                rc == -EEXIST   ? "exists"
                : rc == -EINVAL ? "wrong-value"
                                : "journal",
                field, "%s: %s", field, e.msg[0] ? e.msg : cbx_strerror(rc));
    return -1;
}

static json_t *run_json(srv_wf_run *x)
{
    json_t *o = cbx_workflow_run_snapshot(x->run);
    json_object_set_new(o, "held", json_true());
    json_object_set_new(o, "net", cbx_workflow_describe(cbx_workflow_run_net(x->run)));
    return o;
}

/* ---- POST /v1/workflows/{name}/runs -------------------------------------------------------- */

int srv_h_workflow_start(srv *s, h2o_req_t *req, char **args)
{
    if (!srv_authorized(s, req) || no_workflows(s, req) || refuse_stopping(s, req) ||
        need_journal(s, req))
        return 0;
    cbx_workflow *w = NULL;
    json_t *net = NULL, *body = NULL, *ids = NULL;
    srv_wf_run *x = NULL;
    if (!load_named(s, req, args[0], &w))
        return 0;
    if (!(body = srv_body_object(req)))
        goto out;
    static const char *const fields[] = {"tokens", "run_id", NULL};
    if (!srv_only_fields(req, body, fields))
        goto out;
    const json_t *toks = json_object_get(body, "tokens");
    if (!json_is_array(toks) || !json_array_size(toks)) {
        srv_problem(req, 400, toks ? "wrong-type" : "missing-field", "tokens",
                    "request body: field 'tokens': expected an array of one or more tokens "
                    "({\"data\": {...}})");
        goto out;
    }
    if (json_array_size(toks) > 1024) {
        srv_problem(req, 400, "wrong-value", "tokens",
                    "request body: field 'tokens': at most 1024 tokens");
        goto out;
    }
    const json_t *rid = json_object_get(body, "run_id");
    if (rid && (!json_is_string(rid) || !json_string_length(rid) || json_string_length(rid) > 39)) {
        srv_problem(req, 400, "wrong-type", "run_id",
                    "request body: field 'run_id': expected a string of 1 to 39 characters");
        goto out;
    }
    if (rid) {
        json_t *old = NULL;
        if (held(s, json_string_value(rid)) ||
            cbx_workflow_run_show(s->journal, json_string_value(rid), NULL, &old, NULL) == 0) {
            json_decref(old);
            srv_problem(req, 409, "exists", "run_id", "workflow run '%s' exists already",
                        json_string_value(rid));
            goto out;
        }
    }
    net = cbx_workflow_describe(w);
    size_t i;
    json_t *t;
    char prefix[64];
    json_array_foreach(toks, i, t)
    {
        snprintf(prefix, sizeof prefix, "tokens[%zu]", i);
        if (!token_spec_ok(req, t, prefix, net))
            goto out;
        /* two tokens of one request with one id: refused before the run is made */
        const char *id = json_string_value(json_object_get(t, "id"));
        for (size_t k = 0; id && k < i; k++)
            if (json_equal(json_object_get(json_array_get(toks, k), "id"),
                           json_object_get(t, "id"))) {
                char field[96];
                snprintf(field, sizeof field, "%s.id", prefix);
                srv_problem(req, 409, "exists", field,
                            "%s.id: token id '%s' is taken (by tokens[%zu])", prefix, id, k);
                goto out;
            }
    }
    if (!(x = wf_new(s))) {
        srv_problem(req, 500, "internal", NULL, "out of memory");
        goto out;
    }
    cbx_workflow_run_opts o = {.run_id = json_string_value(rid), .on_event = on_wf_event, .ud = x};
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx_workflow_start(&x->run, s->rt, w, &o, &e) != 0) {
        srv_problem(req, 500, "internal", NULL, "workflow '%s': %s", args[0], e.msg);
        goto out;
    }
    x->w = w;
    w = NULL;
    hold(s, x);
    ids = json_array();
    json_array_foreach(toks, i, t)
    {
        char id[64];
        snprintf(prefix, sizeof prefix, "tokens[%zu]", i);
        if (add_token(req, x, t, prefix, id, sizeof id) < 0) {
            kick(x, 0); /* the tokens added so far go on */
            x = NULL;
            goto out;
        }
        json_array_append_new(ids, json_string(id));
    }
    advance(x);
    json_t *res = run_json(x);
    json_object_set(res, "started_tokens", ids);
    char loc[96];
    int n = snprintf(loc, sizeof loc, "/v1/workflow-runs/%s", x->run_id);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                   h2o_strdup(&req->pool, loc, (size_t)n).base, (size_t)n);
    kick(x, 0); /* also lets a run that ended at once go */
    x = NULL;
    srv_send_json(req, 201, res);
out:
    if (x)
        release(x);
    cbx_workflow_free(w);
    json_decref(net);
    json_decref(body);
    json_decref(ids);
    return 0;
}

/* ---- GET /v1/workflow-runs ------------------------------------------------------------------ */

int srv_h_workflow_runs(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    static const char *const allowed[] = {"workflow", "state", "limit", NULL};
    if (!srv_query_only(req, allowed) || need_journal(s, req))
        return 0;
    char wf[256], state[32], limit[32];
    int by_wf = srv_query(req, "workflow", wf, sizeof wf);
    int by_state = srv_query(req, "state", state, sizeof state);
    unsigned long long lim = 50;
    if (srv_query(req, "limit", limit, sizeof limit)) {
        char *end = NULL;
        lim = strtoull(limit, &end, 10);
        if (!limit[0] || *end || limit[0] == '-' || lim == 0 || lim > 10000) {
            srv_problem(req, 400, "wrong-type", "limit",
                        "query parameter 'limit': expected 1 to 10000, got '%.30s'", limit);
            return 0;
        }
    }
    if (by_state) {
        static const char *const states[] = {"started", "running", "done",       "waiting",
                                             "stuck",   "failed",  "interrupted"};
        int ok = 0;
        for (size_t i = 0; i < 7; i++)
            ok |= strcmp(state, states[i]) == 0;
        if (!ok) {
            srv_problem(req, 400, "wrong-value", "state",
                        "query parameter 'state': expected started, running, done, waiting, "
                        "stuck, failed or interrupted, got '%.30s'",
                        state);
            return 0;
        }
    }
    json_t *rows = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    /* filtered here: the list is read with room for the filter */
    int rc =
        cbx_workflow_runs_list(s->journal, (by_wf || by_state) ? 100000 : (uint32_t)lim, &rows, &e);
    if (rc) {
        srv_problem(req, 500, "journal", NULL, "workflow runs: %s", e.msg);
        return 0;
    }
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        if (json_array_size(out) >= lim)
            break;
        const char *id = json_string_value(json_object_get(row, "run_id"));
        if (by_wf && strcmp(json_string_value(json_object_get(row, "workflow")), wf) != 0)
            continue;
        srv_wf_run *x = id ? held(s, id) : NULL;
        if (x) /* the live state, which the journal has only once the run rests */
            json_object_set_new(
                row, "state", json_string(cbx_workflow_state_name(cbx_workflow_run_state(x->run))));
        if (by_state && strcmp(json_string_value(json_object_get(row, "state")), state) != 0)
            continue;
        json_object_set_new(row, "held", json_boolean(x != NULL));
        json_array_append(out, row);
    }
    json_decref(rows);
    srv_send_json(req, 200, json_pack("{s:o}", "runs", out));
    return 0;
}

/* ---- GET /v1/workflow-runs/{id}[/tokens/{token}] -------------------------------------------- */

/* The run: live when held, else from the journal. NULL with a problem sent. */
static json_t *run_view(srv *s, h2o_req_t *req, const char *id)
{
    srv_wf_run *x = held(s, id);
    if (x)
        return run_json(x);
    json_t *o = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    int rc = s->journal ? cbx_workflow_run_show(s->journal, id, cbx_runtime_registry(s->rt), &o, &e)
                        : -ENOENT;
    if (rc) {
        if (rc == -ENOENT)
            srv_problem(req, 404, "not-found", "id",
                        "no workflow run '%.60s' (see GET /v1/workflow-runs)", id);
        else
            srv_problem(req, 500, "journal", NULL, "workflow run %.60s: %s", id, e.msg);
        return NULL;
    }
    const char *src = json_string_value(json_object_get(o, "source"));
    cbx_workflow *w = NULL;
    cbx_diag d = {0};
    if (src &&
        cbx_workflow_load_string(&w, src, strlen(src),
                                 json_string_value(json_object_get(o, "file")), NULL, &d) == 0)
        json_object_set_new(o, "net", cbx_workflow_describe(w));
    cbx_diag_clear(&d);
    cbx_workflow_free(w);
    json_object_del(o, "source");
    json_object_set_new(o, "held", json_false());
    return o;
}

int srv_h_workflow_run(srv *s, h2o_req_t *req, char **args)
{
    json_t *o = run_view(s, req, args[0]);
    if (o)
        srv_send_json(req, 200, o);
    return 0;
}

int srv_h_workflow_token(srv *s, h2o_req_t *req, char **args)
{
    json_t *o = run_view(s, req, args[0]);
    if (!o)
        return 0;
    size_t i;
    json_t *t, *found = NULL;
    json_array_foreach(json_object_get(o, "tokens"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "id")), args[1]) == 0)
            found = t;
    }
    if (found) {
        json_t *r = json_deep_copy(found);
        json_object_set_new(r, "run_id", json_string(args[0]));
        srv_send_json(req, 200, r);
    } else {
        srv_problem(req, 404, "not-found", "token", "no token '%.60s' in workflow run %.60s",
                    args[1], args[0]);
    }
    json_decref(o);
    return 0;
}

/* ---- POST /v1/workflow-runs/{id}/tokens, .../signal, .../resume -------------------------------
 */

int srv_h_workflow_add(srv *s, h2o_req_t *req, char **args)
{
    if (!srv_authorized(s, req) || refuse_stopping(s, req) || need_journal(s, req))
        return 0;
    json_t *body = srv_body_object(req);
    if (!body)
        return 0;
    srv_wf_run *x = NULL;
    json_t *net = NULL;
    if (!take_or_problem(s, req, args[0], &x))
        goto out;
    net = cbx_workflow_describe(cbx_workflow_run_net(x->run));
    char id[64];
    if (token_spec_ok(req, body, "", net) && add_token(req, x, body, "", id, sizeof id) == 0) {
        advance(x);
        json_t *res = run_json(x);
        json_object_set_new(res, "token", json_string(id));
        srv_send_json(req, 201, res);
    }
    kick(x, 0);
out:
    json_decref(net);
    json_decref(body);
    return 0;
}

int srv_h_workflow_signal(srv *s, h2o_req_t *req, char **args)
{
    if (!srv_authorized(s, req) || refuse_stopping(s, req) || need_journal(s, req))
        return 0;
    json_t *body = srv_body_object(req);
    if (!body)
        return 0;
    static const char *const fields[] = {"name", "data", NULL};
    srv_wf_run *x = NULL;
    if (!srv_only_fields(req, body, fields))
        goto out;
    const json_t *name = json_object_get(body, "name"), *data = json_object_get(body, "data");
    if (!json_is_string(name) || !json_string_length(name)) {
        srv_problem(req, 400, name ? "wrong-type" : "missing-field", "name",
                    "request body: field 'name': expected the signal's name (a string)");
        goto out;
    }
    if (data && !json_is_object(data)) {
        srv_problem(req, 400, "wrong-type", "data",
                    "request body: field 'data': expected an object");
        goto out;
    }
    if (!take_or_problem(s, req, args[0], &x))
        goto out;
    cbx_err e;
    cbx_err_clear(&e);
    int rc = cbx_workflow_signal(x->run, args[1], json_string_value(name), data, &e);
    if (rc == -ENOENT)
        srv_problem(req, 404, "not-found", "token", "%s", e.msg);
    else if (rc == -EINVAL)
        srv_problem(req, 409, "no-such-signal", "name", "%s", e.msg);
    else if (rc)
        srv_problem(req, 500, "journal", NULL, "signal: %s", e.msg[0] ? e.msg : cbx_strerror(rc));
    else {
        int st = advance(x);
        srv_send_json(req, 202,
                      json_pack("{s:s,s:s,s:s,s:s}", "run_id", x->run_id, "token", args[1],
                                "signal", json_string_value(name), "state",
                                cbx_workflow_state_name((cbx_workflow_state)st)));
    }
    kick(x, 0);
out:
    json_decref(body);
    return 0;
}

int srv_h_workflow_resume(srv *s, h2o_req_t *req, char **args)
{
    if (!srv_authorized(s, req) || refuse_stopping(s, req) || need_journal(s, req))
        return 0;
    srv_wf_run *x = NULL;
    if (!take_or_problem(s, req, args[0], &x))
        return 0;
    advance(x);
    srv_send_json(req, 200, run_json(x));
    kick(x, 0);
    return 0;
}
