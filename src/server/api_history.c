/* GET /v1/executions and /v1/stats: the journal's history and statistics, with the CLI's filters
 * as query parameters. */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- GET /v1/executions, /v1/stats, /v1/executions/in-flight ----------------------------------
 */

static const char *const filter_params[] = {"executor", "status", "breaker", "tag",  "since",
                                            "until",    "limit",  "run_id",  "step", NULL};
static const char *const stats_params[] = {"executor", "status",   "breaker", "tag",
                                           "since",    "until",    "limit",   "run_id",
                                           "step",     "group_by", NULL};

typedef struct filter_buf {
    char executor[128], status[32], breaker[256], tag[256], run_id[64], step[128], num[32];
} filter_buf;

static int query_u64(h2o_req_t *req, const char *name, uint64_t *out, char *buf, size_t len)
{
    *out = 0;
    if (!srv_query(req, name, buf, len))
        return 1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || !buf[0] || *end || buf[0] == '-') {
        srv_problem(req, 400, "wrong-type", name,
                    "query parameter '%s': expected a non-negative integer, got '%.40s'", name,
                    buf);
        return 0;
    }
    *out = v;
    return 1;
}

static int read_filter(h2o_req_t *req, cbx_history_filter *f, filter_buf *b)
{
    memset(f, 0, sizeof *f);
    if (srv_query(req, "executor", b->executor, sizeof b->executor))
        f->executor = b->executor;
    if (srv_query(req, "status", b->status, sizeof b->status)) {
        cbx_status st;
        if (cbx_status_parse(b->status, &st) < 0) {
            srv_problem(req, 400, "wrong-value", "status",
                        "query parameter 'status': unknown status '%.30s' (pending, running, "
                        "retrying, success, failed, timeout, cancelled, rejected)",
                        b->status);
            return 0;
        }
        f->status = b->status;
    }
    if (srv_query(req, "breaker", b->breaker, sizeof b->breaker))
        f->breaker = b->breaker;
    if (srv_query(req, "tag", b->tag, sizeof b->tag))
        f->tag = b->tag;
    if (srv_query(req, "run_id", b->run_id, sizeof b->run_id))
        f->run_id = b->run_id;
    if (srv_query(req, "step", b->step, sizeof b->step))
        f->step = b->step;
    uint64_t limit;
    if (!query_u64(req, "since", &f->since_ms, b->num, sizeof b->num) ||
        !query_u64(req, "until", &f->until_ms, b->num, sizeof b->num) ||
        !query_u64(req, "limit", &limit, b->num, sizeof b->num))
        return 0;
    if (limit > 10000) {
        srv_problem(req, 400, "wrong-value", "limit", "query parameter 'limit': at most 10000");
        return 0;
    }
    f->limit = (uint32_t)limit;
    return 1;
}

static int need_journal(srv *s, h2o_req_t *req)
{
    if (s->journal)
        return 1;
    srv_problem(req, 503, "no-journal", NULL, "the server runs without a journal (--no-journal)");
    return 0;
}

int srv_h_exec_list(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    cbx_history_filter f;
    filter_buf b;
    if (!srv_query_only(req, filter_params) || !read_filter(req, &f, &b) || !need_journal(s, req))
        return 0;
    json_t *rows = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_journal_history(s->journal, &f, &rows, &err);
    if (r < 0) {
        srv_problem(req, 500, "journal", NULL, "history: %s",
                    err.msg[0] ? err.msg : cbx_strerror(r));
        return 0;
    }
    srv_send_json(req, 200, json_pack("{s:o}", "executions", rows));
    return 0;
}

int srv_h_stats(srv *s, h2o_req_t *req, char **args)
{
    (void)args;
    cbx_history_filter f;
    filter_buf b;
    char group[32];
    if (!srv_query_only(req, stats_params) || !read_filter(req, &f, &b) || !need_journal(s, req))
        return 0;
    const char *g = NULL;
    if (srv_query(req, "group_by", group, sizeof group)) {
        static const char *const groups[] = {"executor", "breaker", "tag", "step", "flow", NULL};
        for (size_t i = 0; groups[i]; i++)
            if (strcmp(group, groups[i]) == 0)
                g = groups[i];
        if (!g) {
            srv_problem(req, 400, "wrong-value", "group_by",
                        "query parameter 'group_by': expected executor, breaker, tag, step or "
                        "flow, got '%.30s'",
                        group);
            return 0;
        }
    }
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_journal_stats(s->journal, &f, g, &out, &err);
    if (r < 0) {
        srv_problem(req, 500, "journal", NULL, "stats: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        return 0;
    }
    srv_send_json(req, 200, out);
    return 0;
}
