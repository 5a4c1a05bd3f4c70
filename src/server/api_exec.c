/* /v1/executions: submit (synchronous with a wait limit, or asynchronous), get, cancel, and the
 * executions in flight. */
#include "server.h"

#include "cbx/units.h"
#include "core/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the list of executions ----------------------------------------------------------------- */

static void unlink_exec(srv_exec **head, srv_exec *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else if (*head == e)
        *head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

static void push_exec(srv_exec **head, srv_exec *e)
{
    e->prev = NULL;
    e->next = *head;
    if (*head)
        (*head)->prev = e;
    *head = e;
}

static void exec_free(srv_exec *e)
{
    cbx_policy_free(e->policy);
    json_decref(e->result);
    free(e);
}

static void reap_cb(uv_timer_t *t)
{
    srv_exec_reap(t->data);
}

/* Ended executions are freed here, after the runtime's callbacks returned (their policies must
 * outlive the execution). */
static void free_list(srv_exec **head)
{
    srv_exec *e = *head;
    *head = NULL;
    while (e) {
        srv_exec *next = e->next;
        exec_free(e);
        e = next;
    }
}

void srv_exec_reap(srv *s)
{
    free_list(&s->ended);
}

void srv_exec_free_all(srv *s)
{
    free_list(&s->ended);
    free_list(&s->inflight);
    s->n_inflight = 0;
}

static srv_exec *find_inflight(srv *s, const char *id)
{
    for (srv_exec *e = s->inflight; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

/* ---- waiting for the end -------------------------------------------------------------------- */

static json_t *pending_json(const srv_exec *e)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "id", e->id, "executor", e->executor, "status",
                          e->ex ? cbx_status_name(cbx_execution_status(e->ex)) : "pending",
                          "submitted_ms", (json_int_t)e->submitted_ms);
    if (o)
        json_object_set_new(o, "in_flight", json_true());
    return o;
}

static void send_accepted(h2o_req_t *req, const srv_exec *e)
{
    char loc[96];
    int n = snprintf(loc, sizeof loc, "/v1/executions/%s", e->id);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                   h2o_strdup(&req->pool, loc, (size_t)n).base, (size_t)n);
    srv_send_json(req, 202, pending_json(e));
}

static void waiter_timeout(h2o_req_t *req, void *e)
{
    send_accepted(req, e);
}

/* ---- the runtime's callbacks ---------------------------------------------------------------- */

static void on_retry(cbx_execution *ex, uint32_t attempt, uint64_t delay_ns, const char *error,
                     void *ud)
{
    (void)ex;
    srv_exec *e = ud;
    srv_event(e->s, "attempt",
              json_pack("{s:s,s:s,s:i,s:s,s:s,s:I}", "execution_id", e->id, "executor", e->executor,
                        "number", (int)attempt, "outcome", "failed", "error", error ? error : "",
                        "retry_in_ms", (json_int_t)(delay_ns / 1000000u)));
}

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    srv_exec *e = ud;
    srv *s = e->s;
    snprintf(e->id, sizeof e->id, "%s", res->id);
    e->result = cbx_result_to_json(res);
    e->ex = NULL;
    unlink_exec(&s->inflight, e);
    s->n_inflight--;
    push_exec(&s->ended, e);
    if (!uv_is_active((uv_handle_t *)&s->reap))
        uv_timer_start(&s->reap, reap_cb, 0, 0);

    srv_metrics_execution(s, res);
    size_t i;
    json_t *a;
    json_array_foreach(res->attempts, i, a)
    {
        json_t *ev = json_copy(a); /* shallow: only its own keys change */
        if (!ev)
            continue;
        json_object_del(ev, "metadata");
        json_object_set_new(ev, "execution_id", json_string(e->id));
        json_object_set_new(ev, "executor", json_string(e->executor));
        srv_event(s, "attempt", ev);
    }
    json_t *summary = json_pack(
        "{s:s,s:s,s:s,s:i,s:s,s:b,s:i,s:f,s:I}", "id", e->id, "executor", e->executor, "status",
        cbx_status_name(res->status), "rc", res->rc, "error", res->error, "fallback_used",
        res->fallback_used, "attempts", (int)res->attempt_count, "duration_ms",
        (double)res->duration_ns / 1e6, "submitted_ms", (json_int_t)res->submitted_ms);
    if (summary && res->status != CBX_STATUS_SUCCESS && !res->fallback_used) {
        json_array_append(s->recent_failures, summary);
        while (json_array_size(s->recent_failures) > 20)
            json_array_remove(s->recent_failures, 0);
    }
    srv_event(s, "execution", summary);

    for (h2o_req_t *req; (req = srv_wait_take(&e->waiters));)
        srv_send_json(req, 200, json_incref(e->result));
    if (s->stopping && !s->n_inflight && !s->n_flow_runs)
        srv_shutdown_poke(s);
}

/* ---- POST /v1/executions --------------------------------------------------------------------- */

static const char *const submit_fields[] = {"type", "params",  "policy",   "breaker", "mode",
                                            "wait", "timeout", "deadline", "tag",     NULL};

static int want_string(h2o_req_t *req, const json_t *body, const char *name, const char **out)
{
    const json_t *v = json_object_get(body, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 1;
    if (!json_is_string(v)) {
        srv_problem(req, 400, "wrong-type", name, "request body: field '%s': expected a string",
                    name);
        return 0;
    }
    *out = json_string_value(v);
    return 1;
}

static int want_duration(h2o_req_t *req, const json_t *body, const char *name, uint64_t *ns)
{
    const json_t *v = json_object_get(body, name);
    *ns = 0;
    if (!v || json_is_null(v))
        return 1;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *ns = (uint64_t)json_integer_value(v) * 1000000u;
        return 1;
    }
    if (!json_is_string(v) || cbx_duration_parse_ns(json_string_value(v), ns) < 0) {
        srv_problem(req, 400, "wrong-type", name,
                    "request body: field '%s': expected a duration (\"5s\", \"250ms\") or "
                    "milliseconds",
                    name);
        return 0;
    }
    return 1;
}

/* The CLI's one-line message for a request the runtime refused as invalid. */
static void invalid_request(srv *s, h2o_req_t *req, const char *type, const cbx_diag *d)
{
    if (d->n && d->items[0].code == CBX_EUNKNOWN_TYPE) {
        const cbx_executor_type *list[256];
        size_t n = cbx_registry_list(cbx_runtime_registry(s->rt), list, 256);
        const char *best = NULL;
        size_t bd = 99;
        for (size_t i = 0; i < n && i < 256; i++) {
            size_t dd = cbx__edit_distance(type, list[i]->name);
            if (dd < bd && cbx__close_enough(dd, strlen(type))) {
                bd = dd;
                best = list[i]->name;
            }
        }
        if (best)
            srv_problem(req, 400, "unknown-type", "type",
                        "unknown executor type '%s' (did you mean '%s'?)", type, best);
        else
            srv_problem(req, 400, "unknown-type", "type",
                        "unknown executor type '%s' (see GET /v1/types)", type);
        return;
    }
    char line[1024] = "", field[300] = "params";
    size_t n = 0;
    for (size_t i = 0; i < d->n && n < sizeof line; i++) {
        const cbx_err *e = &d->items[i];
        const char *sep = i ? "; " : "";
        if (i == 0 && e->where[0])
            snprintf(field, sizeof field, "params.%s", e->where);
        if (strncmp(e->msg, "unknown parameter", 17) == 0 || !e->where[0]) {
            n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", sep, e->msg);
            continue;
        }
        size_t wl = strlen(e->where);
        const char *msg = e->msg;
        if (strncmp(msg, e->where, wl) == 0 && msg[wl] == ':' && msg[wl + 1] == ' ')
            msg += wl + 2;
        n +=
            (size_t)snprintf(line + n, sizeof line - n, "%sparameter '%s': %s", sep, e->where, msg);
    }
    srv_problem(req, 400, "invalid-params", field, "%s", line[0] ? line : "invalid request");
}

int srv_h_submit(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    if (!srv_authorized(s, req))
        return 0;
    if (s->stopping) {
        srv_problem(req, 503, "stopping", NULL, "the server is shutting down");
        return 0;
    }
    json_t *body = srv_body_object(req);
    if (!body)
        return 0;
    const char *type, *breaker, *mode, *tag;
    uint64_t wait_ns, timeout_ns, deadline_ns;
    const json_t *params = json_object_get(body, "params");
    const json_t *pol = json_object_get(body, "policy");
    int ok = srv_only_fields(req, body, submit_fields) && want_string(req, body, "type", &type) &&
             want_string(req, body, "breaker", &breaker) && want_string(req, body, "mode", &mode) &&
             want_string(req, body, "tag", &tag) && want_duration(req, body, "wait", &wait_ns) &&
             want_duration(req, body, "timeout", &timeout_ns) &&
             want_duration(req, body, "deadline", &deadline_ns);
    if (!ok)
        goto out;
    if (!type) {
        srv_problem(req, 400, "missing-field", "type",
                    "request body: field 'type' is required (an executor type, see GET /v1/types)");
        goto out;
    }
    if (params && !json_is_object(params) && !json_is_null(params)) {
        srv_problem(req, 400, "wrong-type", "params",
                    "request body: field 'params': expected an "
                    "object");
        goto out;
    }
    if (pol && !json_is_object(pol) && !json_is_null(pol)) {
        srv_problem(req, 400, "wrong-type", "policy",
                    "request body: field 'policy': expected an "
                    "object");
        goto out;
    }
    int async = 0;
    if (mode && strcmp(mode, "async") == 0)
        async = 1;
    else if (mode && strcmp(mode, "sync") != 0) {
        srv_problem(req, 400, "wrong-value", "mode",
                    "request body: field 'mode': expected \"sync\" or \"async\", got \"%.40s\"",
                    mode);
        goto out;
    }
    uint64_t max_wait_ns = s->o.max_wait_ms * 1000000u;
    if (!wait_ns)
        wait_ns = 30ull * 1000000000u;
    if (wait_ns > max_wait_ns) {
        srv_problem(req, 400, "wrong-value", "wait",
                    "request body: field 'wait': at most %llu ms (cbx serve --max-wait)",
                    (unsigned long long)s->o.max_wait_ms);
        goto out;
    }
    if (breaker && (!breaker[0] || strlen(breaker) > CBX_BREAKER_NAME_MAX)) {
        srv_problem(req, 400, "wrong-value", "breaker",
                    "request body: field 'breaker': a breaker name is 1 to %d bytes",
                    CBX_BREAKER_NAME_MAX);
        goto out;
    }

    srv_exec *e = calloc(1, sizeof *e);
    if (!e) {
        srv_problem(req, 500, "internal", NULL, "out of memory");
        goto out;
    }
    e->s = s;
    snprintf(e->executor, sizeof e->executor, "%s", type);
    e->submitted_ms = srv_now_ms();
    if (pol && json_is_object(pol)) {
        cbx_err err;
        cbx_err_clear(&err);
        int r = cbx_policy_new_json(&e->policy, pol, NULL, &err);
        if (r < 0) {
            char field[300];
            snprintf(field, sizeof field, "policy%s%s", err.where[0] ? "." : "", err.where);
            srv_problem(req, 400, "invalid-policy", field, "policy: %s",
                        err.msg[0] ? err.msg : cbx_strerror(r));
            free(e);
            goto out;
        }
    }
    cbx_breaker_opts bo;
    cbx_breaker_opts_default(&bo);
    bo.open_ns = 30ull * 1000000000u; /* as 'cbx exec --breaker NAME' */
    cbx_request rq = {.executor = type,
                      .params = json_is_object(params) ? params : NULL,
                      .policy = e->policy,
                      .breaker = breaker,
                      .breaker_opts = breaker ? &bo : NULL,
                      .timeout_ns = timeout_ns,
                      .deadline_ns = deadline_ns,
                      .tag = tag,
                      .on_done = on_done,
                      .on_retry = on_retry,
                      .ud = e};
    push_exec(&s->inflight, e);
    s->n_inflight++;
    cbx_diag d = {0};
    cbx_execution *ex = NULL;
    int r = cbx_runtime_submit(s->rt, &rq, &ex, &d);
    if (r == CBX_EUNKNOWN_TYPE || r == CBX_EINVAL_CONFIG) {
        invalid_request(s, req, type, &d); /* on_done has run: e is on the ended list */
        cbx_diag_clear(&d);
        goto out;
    }
    cbx_diag_clear(&d);
    if (r < 0 && !e->result) { /* not reported to on_done (the runtime always does: defensive) */
        unlink_exec(&s->inflight, e);
        s->n_inflight--;
        exec_free(e);
        srv_problem(req, 500, "internal", NULL, "submit: %s", cbx_strerror(r));
        goto out;
    }
    if (r == CBX_EQUEUE_FULL) {
        srv_problem(req, 503, "queue-full", NULL, "the runtime's queue is full; try again later");
        goto out;
    }
    if (!e->result) { /* still running */
        e->ex = ex;
        snprintf(e->id, sizeof e->id, "%s", cbx_execution_id(ex));
        srv_event(s, "execution",
                  json_pack("{s:s,s:s,s:s,s:I}", "id", e->id, "executor", e->executor, "status",
                            cbx_status_name(cbx_execution_status(ex)), "submitted_ms",
                            (json_int_t)e->submitted_ms));
    }
    if (e->result) {
        srv_send_json(req, 200, json_incref(e->result));
    } else if (async || srv_wait(s, req, &e->waiters, e, wait_ns / 1000000u, waiter_timeout) < 0) {
        send_accepted(req, e); /* asynchronous, or the waiter could not be set up: 202 now */
    }
out:
    json_decref(body);
    return 0;
}

/* ---- GET /v1/executions/{id}, POST .../cancel ------------------------------------------------ */

static srv_exec *find_ended(srv *s, const char *id)
{
    for (srv_exec *e = s->ended; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

int srv_h_exec_get(srv *s, h2o_req_t *req, char **args)
{
    const char *id = args[0];
    srv_exec *e = find_inflight(s, id);
    if (e) {
        srv_send_json(req, 200, pending_json(e));
        return 0;
    }
    if ((e = find_ended(s, id))) {
        srv_send_json(req, 200, json_incref(e->result));
        return 0;
    }
    json_t *row = NULL;
    int r = s->journal ? cbx_journal_get(s->journal, id, &row, NULL) : -ENOENT;
    if (r == -ENOENT || (r == 0 && !row)) {
        srv_problem(req, 404, "not-found", "id", "no execution '%.60s' (see GET /v1/executions)",
                    id);
        return 0;
    }
    if (r < 0) {
        srv_problem(req, 500, "journal", NULL, "journal: %s", cbx_strerror(r));
        return 0;
    }
    srv_send_json(req, 200, row);
    return 0;
}

int srv_h_exec_cancel(srv *s, h2o_req_t *req, char **args)
{
    if (!srv_authorized(s, req))
        return 0;
    const char *id = args[0];
    srv_exec *e = find_inflight(s, id);
    if (e && e->ex && cbx_runtime_cancel(s->rt, e->ex) == 0) {
        json_t *o = pending_json(e);
        json_object_set_new(o, "cancelling", json_true());
        srv_send_json(req, 202, o);
        return 0;
    }
    json_t *row = NULL;
    if ((e = find_ended(s, id)))
        row = json_incref(e->result);
    else if (s->journal)
        cbx_journal_get(s->journal, id, &row, NULL);
    if (!row) {
        srv_problem(req, 404, "not-found", "id", "no execution '%.60s' (see GET /v1/executions)",
                    id);
        return 0;
    }
    const char *st = json_string_value(json_object_get(row, "status"));
    srv_problem(req, 409, "ended", "id", "execution '%s' has ended (%s): nothing to cancel", id,
                st ? st : "?");
    json_decref(row);
    return 0;
}

/* ---- GET /v1/executions/in-flight ----------------------------------------------------------- */

int srv_h_inflight(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    json_t *arr = json_array();
    size_t n = 0;
    for (srv_exec *e = s->inflight; e && n < 1000; e = e->next, n++)
        json_array_append_new(arr, pending_json(e));
    srv_send_json(req, 200,
                  json_pack("{s:o,s:I,s:O}", "executions", arr, "count", (json_int_t)s->n_inflight,
                            "recent_failures", s->recent_failures));
    return 0;
}
