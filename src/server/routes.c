/* The route table: METHOD and a path pattern whose {name} parts match one segment (decoded). */
#include "server.h"

#include <stdio.h>
#include <string.h>

typedef struct srv_route {
    const char *method;
    const char *pattern;
    srv_handler_fn fn;
} srv_route;

static const srv_route routes[] = {
    {"GET", "/", srv_h_dashboard},
    {"GET", "/metrics", srv_h_metrics},
    {"GET", "/v1/openapi.json", srv_h_openapi},
    {"GET", "/v1/health", srv_h_health},
    {"GET", "/v1/events", srv_h_events},
    {"GET", "/v1/types", srv_h_types},
    {"GET", "/v1/types/{name}", srv_h_type},
    {"POST", "/v1/executions", srv_h_submit},
    {"GET", "/v1/executions", srv_h_exec_list},
    {"GET", "/v1/executions/in-flight", srv_h_inflight},
    {"GET", "/v1/executions/{id}", srv_h_exec_get},
    {"POST", "/v1/executions/{id}/cancel", srv_h_exec_cancel},
    {"GET", "/v1/breakers", srv_h_breakers},
    {"GET", "/v1/breakers/{name}", srv_h_breaker},
    {"POST", "/v1/breakers/{name}/open", srv_h_breaker_open},
    {"POST", "/v1/breakers/{name}/close", srv_h_breaker_close},
    {"POST", "/v1/breakers/{name}/reset", srv_h_breaker_reset},
    {"GET", "/v1/stats", srv_h_stats},
    {"GET", "/v1/flows", srv_h_flows},
    {"POST", "/v1/flows/{name}/runs", srv_h_flow_run},
    {"GET", "/v1/runs", srv_h_runs},
    {"GET", "/v1/runs/{id}", srv_h_run_get},
    {"POST", "/v1/runs/{id}/cancel", srv_h_run_cancel},
    {"GET", "/v1/workflows", srv_h_workflows},
    {"GET", "/v1/workflows/{name}", srv_h_workflow},
    {"POST", "/v1/workflows/{name}/runs", srv_h_workflow_start},
    {"GET", "/v1/workflow-runs", srv_h_workflow_runs},
    {"GET", "/v1/workflow-runs/{id}", srv_h_workflow_run},
    {"POST", "/v1/workflow-runs/{id}/resume", srv_h_workflow_resume},
    {"POST", "/v1/workflow-runs/{id}/tokens", srv_h_workflow_add},
    {"GET", "/v1/workflow-runs/{id}/tokens/{token}", srv_h_workflow_token},
    {"POST", "/v1/workflow-runs/{id}/tokens/{token}/signal", srv_h_workflow_signal},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])
#define MAX_SEGS 8

void srv_routes_print(FILE *f)
{
    for (size_t i = 0; i < N_ROUTES; i++)
        fprintf(f, "%s %s\n", routes[i].method, routes[i].pattern);
}

/* Split path (a copy, modified) into segments; returns how many, -1 when too many. */
static int split(char *path, char **segs)
{
    int n = 0;
    char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        if (n == MAX_SEGS)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    return n;
}

/* 1 when the pattern matches (args get the {} segments, decoded in place). */
static int match(const char *pattern, char **segs, int n, char **args)
{
    char pat[128];
    snprintf(pat, sizeof pat, "%s", pattern);
    char *ps[MAX_SEGS];
    int pn = split(pat, ps);
    if (pn != n)
        return 0;
    int na = 0;
    for (int i = 0; i < n; i++) {
        if (ps[i][0] == '{')
            args[na++] = segs[i];
        else if (strcmp(ps[i], segs[i]) != 0)
            return 0;
    }
    return 1;
}

/* On a loopback address, only requests naming a loopback host: a web page whose name an
 * attacker points at 127.0.0.1 (DNS rebinding) sends its own name as Host and is refused, so it
 * cannot read the history or the metrics. */
static int host_allowed(const srv *s, h2o_req_t *req)
{
    if (!s->loopback)
        return 1;
    h2o_iovec_t a = req->input.authority;
    char host[256];
    if (a.len >= sizeof host)
        return 0;
    memcpy(host, a.base, a.len);
    host[a.len] = '\0';
    char *end = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
    if (host[0] == '[') {
        if (!end)
            return 0;
        end[1] = '\0';
    } else if (end) {
        *end = '\0';
    }
    return strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
           strncmp(host, "127.", 4) == 0;
}

int srv_dispatch(srv *s, h2o_req_t *req)
{
    if (!host_allowed(s, req)) {
        int n = req->input.authority.len > 100 ? 100 : (int)req->input.authority.len;
        srv_problem(req, 421, "misdirected", "Host",
                    "Host '%.*s' is not a loopback name: this server answers 127.0.0.1, "
                    "localhost and [::1] only",
                    n, req->input.authority.base);
        return 0;
    }
    size_t pl = req->query_at == SIZE_MAX ? req->path.len : req->query_at;
    char path[1024];
    if (pl >= sizeof path) {
        srv_problem(req, 404, "not-found", NULL, "no such resource (the path is too long)");
        return 0;
    }
    memcpy(path, req->path.base, pl);
    path[pl] = '\0';
    char shown[128];
    snprintf(shown, sizeof shown, "%.120s", path);
    char *segs[MAX_SEGS];
    int n = split(path, segs);
    if (n < 0) {
        srv_problem(req, 404, "not-found", NULL, "no such resource: %s", shown);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (srv_pct_decode(segs[i]) < 0) {
            srv_problem(req, 400, "bad-path", NULL, "the path has a bad %%-escape");
            return 0;
        }
    char method[16];
    snprintf(method, sizeof method, "%.*s", (int)req->method.len, req->method.base);
    int is_head = strcmp(method, "HEAD") == 0;
    int path_known = 0;
    char allow[64] = "";
    for (size_t i = 0; i < N_ROUTES; i++) {
        char *args[MAX_SEGS] = {0};
        /* segments matched for {} are copies into the same buffer: matching does not modify */
        if (!match(routes[i].pattern, segs, n, args))
            continue;
        /* a literal route wins over a {} one listed later (in-flight before {id}) */
        path_known = 1;
        if (strcmp(routes[i].method, method) == 0 ||
            (is_head && strcmp(routes[i].method, "GET") == 0)) {
            return routes[i].fn(s, req, args);
        }
        if (!strstr(allow, routes[i].method))
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                     allow[0] ? ", " : "", routes[i].method);
    }
    if (path_known) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
        srv_problem(req, 405, "method-not-allowed", NULL, "%s %s: method not allowed (allowed: %s)",
                    method, shown, allow);
        return 0;
    }
    srv_problem(req, 404, "not-found", NULL, "no such resource: %s (see /v1/openapi.json)", shown);
    return 0;
}
