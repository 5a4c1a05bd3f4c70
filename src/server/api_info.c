/* /v1/types, /v1/breakers (list, show, manual control), /v1/health, /v1/openapi.json, /metrics
 * and the dashboard page. */
#include "server.h"

#include "core/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- types ---------------------------------------------------------------------------------- */

int srv_h_types(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    cbx_registry *r = cbx_runtime_registry(s->rt);
    const cbx_executor_type *list[256];
    size_t n = cbx_registry_list(r, list, 256);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && i < 256; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:b}", "name", list[i]->name, "summary",
                                             list[i]->summary ? list[i]->summary : "", "builtin",
                                             cbx_registry_is_builtin(r, list[i]->name)));
    srv_send_json(req, 200, json_pack("{s:o}", "types", arr));
    return 0;
}

int srv_h_type(srv *s, h2o_req_t *req, char **args)
{
    cbx_registry *r = cbx_runtime_registry(s->rt);
    const cbx_executor_type *t = cbx_registry_find(r, args[0]);
    if (!t) {
        srv_problem(req, 404, "unknown-type", "name",
                    "unknown executor type '%.60s' (see GET /v1/types)", args[0]);
        return 0;
    }
    srv_send_json(req, 200,
                  json_pack("{s:s,s:s,s:b,s:o}", "name", t->name, "summary",
                            t->summary ? t->summary : "", "builtin",
                            cbx_registry_is_builtin(r, t->name), "schema",
                            cbx_schema_to_json(t->params)));
    return 0;
}

/* ---- breakers ------------------------------------------------------------------------------- */

int srv_h_breakers(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    json_t *arr = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_breaker_store_list(s->breakers, &arr, &err);
    if (r < 0) {
        srv_problem(req, 500, "breaker-store", NULL, "breaker list: %s",
                    err.msg[0] ? err.msg : cbx_strerror(r));
        return 0;
    }
    srv_send_json(req, 200, json_pack("{s:o}", "breakers", arr));
    return 0;
}

/* 404 with the CLI's words, suggesting a close name. */
static void unknown_breaker(srv *s, h2o_req_t *req, const char *action, const char *name)
{
    json_t *arr = NULL;
    const char *best = NULL;
    size_t bd = 99;
    if (cbx_breaker_store_list(s->breakers, &arr, NULL) == 0) {
        size_t i;
        json_t *b;
        json_array_foreach(arr, i, b)
        {
            const char *n = json_string_value(json_object_get(b, "name"));
            size_t d = n ? cbx__edit_distance(name, n) : 99;
            if (d < bd && cbx__close_enough(d, strlen(name))) {
                bd = d;
                best = n;
            }
        }
    }
    if (best)
        srv_problem(req, 404, "not-found", "name",
                    "breaker %s: no breaker named '%.200s' (did you mean '%s'?)", action, name,
                    best);
    else
        srv_problem(req, 404, "not-found", "name",
                    "breaker %s: no breaker named '%.200s' (see GET /v1/breakers)", action, name);
    json_decref(arr);
}

int srv_h_breaker(srv *s, h2o_req_t *req, char **args)
{
    json_t *b = NULL;
    int r = cbx_breaker_store_show(s->breakers, args[0], &b, NULL);
    if (r == -ENOENT || r == CBX_EINVAL_CONFIG) {
        unknown_breaker(s, req, "show", args[0]);
        return 0;
    }
    if (r < 0) {
        srv_problem(req, 500, "breaker-store", NULL, "breaker show: %s", cbx_strerror(r));
        return 0;
    }
    srv_send_json(req, 200, b);
    return 0;
}

static int breaker_action(srv *s, h2o_req_t *req, const char *name, cbx_breaker_mode mode,
                          const char *word)
{
    if (!srv_authorized(s, req))
        return 0;
    int r = cbx_breaker_store_set_mode(s->breakers, name, mode);
    if (r == -ENOENT || r == CBX_EINVAL_CONFIG) {
        unknown_breaker(s, req, word, name);
        return 0;
    }
    if (r == -EAGAIN) {
        srv_problem(req, 503, "locked", NULL,
                    "breaker %s: breaker '%s' stayed locked by another process for %llu s", word,
                    name, (unsigned long long)(CBX_BREAKER_STORE_WAIT_NS / 1000000000ull));
        return 0;
    }
    if (r < 0) {
        srv_problem(req, 500, "breaker-store", NULL, "breaker %s: %s", word, cbx_strerror(r));
        return 0;
    }
    json_t *b = NULL;
    cbx_breaker_store_show(s->breakers, name, &b, NULL);
    srv_event(s, "breaker_control",
              json_pack("{s:s,s:s,s:O?}", "name", name, "action", word, "breaker", b));
    srv_send_json(req, 200, b);
    return 0;
}

int srv_h_breaker_open(srv *s, h2o_req_t *req, char **args)
{
    return breaker_action(s, req, args[0], CBX_BREAKER_FORCED_OPEN, "open");
}

int srv_h_breaker_close(srv *s, h2o_req_t *req, char **args)
{
    return breaker_action(s, req, args[0], CBX_BREAKER_FORCED_CLOSED, "close");
}

int srv_h_breaker_reset(srv *s, h2o_req_t *req, char **args)
{
    return breaker_action(s, req, args[0], CBX_BREAKER_NORMAL, "reset");
}

/* ---- the rest ------------------------------------------------------------------------------- */

int srv_h_health(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    srv_send_json(req, s->stopping ? 503 : 200,
                  json_pack("{s:s,s:I,s:I,s:b}", "status", s->stopping ? "stopping" : "ok",
                            "in_flight", (json_int_t)s->n_inflight, "last_event_id",
                            (json_int_t)s->ev_seq, "journal", s->journal != NULL));
    return 0;
}

int srv_h_openapi(srv *s, h2o_req_t *req, char **args)
{
    (void)s;
    (void)args;
    srv_send(req, 200, "application/json", srv_openapi_json, srv_openapi_json_len);
    return 0;
}

int srv_h_dashboard(srv *s, h2o_req_t *req, char **args)
{
    (void)s;
    (void)args;
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0,
                          NULL,
                          H2O_STRLIT("default-src 'self'; script-src 'unsafe-inline'; style-src "
                                     "'unsafe-inline'; img-src 'self' data:"));
    srv_send(req, 200, "text/html; charset=utf-8", srv_dashboard_html, srv_dashboard_html_len);
    return 0;
}

int srv_h_metrics(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    char *text = NULL;
    size_t len = 0;
    if (srv_metrics_render(s, &text, &len) < 0) {
        srv_problem(req, 500, "internal", NULL, "out of memory");
        return 0;
    }
    srv_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return 0;
}

int srv_h_events(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    return srv_handle_events(s, req);
}
