/* The conversation of one attempt: which provider gets each request, what its answer means
 * (an outcome, tool calls to run, a poor answer to fail over), the agent's limits, and the
 * messages each request sends. */
#define _GNU_SOURCE
#include "executors/llm/llm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "cbx/llm.h"

size_t cbx__llm_window_from(const llm_call *c)
{
    if (c->memory_size == 0)
        return 0;
    size_t n = json_array_size(c->messages);
    size_t others = 0, from = n;
    while (from > 0 && others < c->memory_size) {
        const char *role =
            json_string_value(json_object_get(json_array_get(c->messages, from - 1), "role"));
        from--;
        if (!role || strcmp(role, "system") != 0)
            others++;
    }
    /* a tool result needs the assistant message that asked for it: start after the results */
    while (from < n) {
        const char *role =
            json_string_value(json_object_get(json_array_get(c->messages, from), "role"));
        if (!role || strcmp(role, "tool") != 0)
            break;
        from++;
    }
    return from;
}

static int over_budget(llm_call *c, const llm_answer *a);

/* ---- requests ----------------------------------------------------------------------------------
 */

static void ask(llm_call *c, size_t from)
{
    char why[300] = "";
    long i = cbx__llm_provider_acquire(c, from, why, sizeof why);
    if (i < 0) {
        cbx__llm_finish(c, CBX_OUTCOME_ERROR, "no_provider", NULL,
                        "no provider admits the call: %s", why);
        return;
    }
    c->provider = (size_t)i;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx__llm_transfer_start(c, &c->providers[i], &err);
    if (r < 0) {
        cbx__llm_provider_record(c, CBX_OUTCOME_IGNORED);
        if (r == -ENOENT) /* nothing recorded for a replayed request: no retry can help */
            cbx__llm_finish(c, CBX_OUTCOME_CUSTOM, "replay", NULL, "%s", err.msg);
        else
            cbx__llm_finish(c, CBX_OUTCOME_ERROR, "internal", NULL, "%s", err.msg);
    }
}

void cbx__llm_round_done(llm_call *c)
{
    if (c->cancelled) {
        cbx__llm_finish(c, CBX_OUTCOME_ERROR, "cancelled", NULL, NULL);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(c->round_results, i, m) json_array_append(c->messages, m);
    /* progress: which tools this round ran (cbx exec -v prints it as the round ends) */
    json_t *names = json_array();
    json_array_foreach(c->round_results, i, m) json_array_append(names, json_object_get(m, "name"));
    (void)cbx_task_emit_event(c->task, "verbose",
                              json_pack("{s:s, s:i, s:o}", "event",
                                        c->agent ? "iteration" : "round", "n", (int)c->rounds,
                                        "tools", names));
    if (c->breaker_tool[0]) {
        cbx__llm_finish(c, CBX_OUTCOME_CUSTOM, "tool_breaker_open", NULL,
                        "agent stopped: the breaker of tool '%s' is open", c->breaker_tool);
        return;
    }
    if (over_budget(c, NULL))
        return;
    ask(c, 0);
}

/* How long a Retry-After value asks to wait, in ns; 0 when absent or unreadable. */
static uint64_t retry_after_ns(const char *v)
{
    if (!v[0])
        return 0;
    char *end;
    double s = strtod(v, &end);
    if (end != v && *end == 0 && s >= 0)
        return (uint64_t)(s * 1e9);
    time_t when = curl_getdate(v, NULL);
    time_t now = time(NULL);
    return when > now ? (uint64_t)(when - now) * 1000000000ULL : 0;
}

static int contains(const char *hay, const char *needle)
{
    return strcasestr(hay, needle) != NULL;
}

/* A request that failed with outcome k: try the next provider, or end the attempt. */
static void failed(llm_call *c, cbx_outcome k, const char *kind, uint64_t retry_ns, const char *msg)
{
    const llm_provider *p = &c->providers[c->provider];
    cbx__llm_provider_record(c, k);
    if (c->provider + 1 < c->nproviders && k != CBX_OUTCOME_CUSTOM) {
        json_array_append_new(
            c->failures,
            json_pack("{s:s, s:s}", "provider", p->breaker ? p->breaker : p->url, "error", msg));
        char why[300] = "";
        long i = cbx__llm_provider_acquire(c, c->provider + 1, why, sizeof why);
        if (i >= 0) {
            c->provider = (size_t)i;
            cbx_err err;
            cbx_err_clear(&err);
            if (cbx__llm_transfer_start(c, &c->providers[i], &err) == 0)
                return;
            cbx__llm_provider_record(c, CBX_OUTCOME_IGNORED);
        }
    }
    if (retry_ns)
        cbx_task_set_retry_after(c->task, retry_ns);
    cbx__llm_finish(c, k, kind, NULL, "%s", msg);
}

/* The agent's budgets, checked before another round: 1 when one is spent (reported). */
static int over_budget(llm_call *c, const llm_answer *a)
{
    if (!c->agent)
        return 0;
    long long used = c->prompt_tokens + c->completion_tokens;
    if (c->max_total_tokens > 0 && used >= c->max_total_tokens) {
        cbx__llm_finish(c, CBX_OUTCOME_CUSTOM, "token_budget", a,
                        "agent stopped: %lld tokens used of a budget of %lld", used,
                        c->max_total_tokens);
        return 1;
    }
    if (c->max_cost > 0 && c->cost >= c->max_cost) {
        cbx__llm_finish(c, CBX_OUTCOME_CUSTOM, "cost_budget", a,
                        "agent stopped: $%.6f spent of a budget of $%.6f", c->cost, c->max_cost);
        return 1;
    }
    uint64_t spent = uv_hrtime() - c->t0_ns;
    if (c->max_time_ns > 0 && spent >= c->max_time_ns) {
        cbx__llm_finish(c, CBX_OUTCOME_CUSTOM, "time_budget", a,
                        "agent stopped: %llu ms spent of a budget of %llu ms",
                        (unsigned long long)(spent / 1000000),
                        (unsigned long long)(c->max_time_ns / 1000000));
        return 1;
    }
    return 0;
}

/* min_quality: a final answer that the quality expression scores under it. 1 when it is poor
 * (*q its score), 0 when it passes or nothing is asked. */
static int poor_answer(const llm_call *c, const llm_answer *a, double *q)
{
    double min = json_number_value(json_object_get(c->params, "min_quality"));
    const char *expr = json_string_value(json_object_get(c->params, "quality"));
    if (min <= 0 || !expr || json_array_size(a->tool_calls))
        return 0;
    json_t *out = json_pack("{s:s}", "content", a->content ? a->content : "");
    json_t *j = a->content ? json_loads(a->content, JSON_DECODE_ANY, NULL) : NULL;
    if (j)
        json_object_set_new(out, "json", j);
    char why[300];
    int r = cbx__llm_eval_quality(expr, out, q, why, sizeof why);
    json_decref(out);
    return r == 0 && *q < min;
}

static void answered(llm_call *c, llm_xfer *x)
{
    llm_answer *a = &x->ans;
    double q = 0;
    if (poor_answer(c, a, &q)) {
        /* a poor answer: a quality failure for this provider's breaker, and the same
         * conversation goes to the next provider that admits it */
        c->rounds++;
        c->prompt_tokens += a->prompt_tokens;
        c->completion_tokens += a->completion_tokens;
        int known = 0;
        c->cost += cbx_llm_price(a->model[0] ? a->model : c->providers[c->provider].model,
                                 a->prompt_tokens, a->completion_tokens, &known);
        c->cost_known |= known;
        char msg[200];
        snprintf(msg, sizeof msg, "the answer scored %.2f, under min_quality %.2f", q,
                 json_number_value(json_object_get(c->params, "min_quality")));
        failed(c, CBX_OUTCOME_QUALITY, "quality", 0, msg);
        return;
    }
    cbx__llm_provider_record(c, CBX_OUTCOME_SUCCESS);
    c->rounds++;
    c->prompt_tokens += a->prompt_tokens;
    c->completion_tokens += a->completion_tokens;
    int known = 0;
    c->cost += cbx_llm_price(a->model[0] ? a->model : c->providers[c->provider].model,
                             a->prompt_tokens, a->completion_tokens, &known);
    c->cost_known |= known;
    if (strcmp(a->finish_reason, "content_filter") == 0) {
        cbx__llm_finish(
            c, CBX_OUTCOME_CUSTOM, "content_filter", a,
            "content_filter: the provider withheld the answer (finish_reason content_filter)");
        return;
    }
    size_t ncalls = json_array_size(a->tool_calls);
    json_t *msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                            a->content ? json_string(a->content) : json_null());
    if (ncalls == 0) {
        json_array_append_new(c->messages, msg);
        cbx__llm_finish(c, CBX_OUTCOME_SUCCESS, NULL, a, NULL);
        return;
    }
    json_t *calls = json_array();
    size_t i;
    const json_t *tc;
    json_array_foreach(a->tool_calls, i, tc) json_array_append_new(
        calls, json_pack("{s:O, s:s, s:{s:O, s:O}}", "id", json_object_get(tc, "id"), "type",
                         "function", "function", "name", json_object_get(tc, "name"), "arguments",
                         json_object_get(tc, "arguments")));
    json_object_set_new(msg, "tool_calls", calls);
    json_array_append_new(c->messages, msg);
    if (c->rounds >= c->max_rounds) {
        if (c->agent)
            cbx__llm_finish(c, CBX_OUTCOME_CUSTOM, "max_iterations", a,
                            "agent stopped: max_iterations (%u) reached without a final answer",
                            c->max_rounds);
        else
            cbx__llm_finish(c, CBX_OUTCOME_CUSTOM, "max_rounds", a,
                            "the model still calls tools after max_rounds (%u) requests",
                            c->max_rounds);
        return;
    }
    if (over_budget(c, a))
        return;
    cbx__llm_tools_run(c, a->tool_calls);
    if (--c->children_running == 0)
        cbx__llm_round_done(c);
}

void cbx__llm_transfer_ended(llm_call *c, llm_xfer *x)
{
    c->xfer = NULL;
    cbx__http_easy *e = x->x.easy; /* NULL for a replay */
    CURLcode rc = x->x.result;
    if (e && x->status == 0 && rc == CURLE_OK)
        curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &x->status);
    char curl_msg[CURL_ERROR_SIZE + 64];
    snprintf(curl_msg, sizeof curl_msg, "%s (curl error %d)",
             e && e->errbuf[0] ? e->errbuf : curl_easy_strerror(rc), (int)rc);
    if (e) {
        e->x = NULL;
        cbx__http_easy_give(c->lp, e, 1);
        x->x.easy = NULL;
    }
    x->x.phase = 3;
    cbx__http_loop_end(c->lp);
    const llm_provider *p = &c->providers[c->provider];
    if (x->keep_raw && !x->x.cancelled && !c->cancelled)
        cbx__llm_cassette_record(c, p, x, (int)rc, uv_hrtime() - c->req_t0_ns);
    char msg[512];
    if (c->cancelled || x->x.cancelled) {
        cbx__llm_provider_record(c, CBX_OUTCOME_IGNORED);
        cbx__llm_xfer_free(x);
        cbx__llm_finish(c, CBX_OUTCOME_ERROR, "cancelled", NULL, NULL);
        return;
    }
    if (x->status == 200 && x->stream)
        cbx__llm_stream_end(x);
    if (x->ans.error[0]) {
        snprintf(msg, sizeof msg, "%s: %s", p->url, x->ans.error);
        cbx__llm_xfer_free(x);
        failed(c, CBX_OUTCOME_ERROR, "malformed", 0, msg);
        return;
    }
    if (rc != CURLE_OK) {
        snprintf(msg, sizeof msg, "%s: %s%s", p->url,
                 x->status == 200 && x->stream ? "the stream broke: " : "", curl_msg);
        cbx__llm_xfer_free(x);
        failed(c, rc == CURLE_OPERATION_TIMEDOUT ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR,
               "connection", 0, msg);
        return;
    }
    if (x->status == 200) {
        if (!x->stream && cbx__llm_parse_plain(p->proto, x->body.p, x->body.len, &x->ans) < 0) {
            snprintf(msg, sizeof msg, "%s: %s", p->url, x->ans.error);
            cbx__llm_xfer_free(x);
            failed(c, CBX_OUTCOME_ERROR, "malformed", 0, msg);
            return;
        }
        answered(c, x);
        cbx__llm_xfer_free(x);
        return;
    }
    char em[300];
    cbx__llm_error_message(x->body.p, x->body.len, em, sizeof em);
    uint64_t ra = retry_after_ns(x->retry_after);
    long st = x->status;
    cbx__llm_xfer_free(x);
    snprintf(msg, sizeof msg, "%s: HTTP %ld%s%s", p->url, st, em[0] ? ": " : "", em);
    if (st == 429)
        failed(c, CBX_OUTCOME_RATE_LIMITED, "rate_limited", ra, msg);
    else if (st >= 500 || st == 408)
        failed(c, CBX_OUTCOME_ERROR, "server", ra, msg);
    else if (contains(em, "context_length") || contains(em, "context length") ||
             contains(em, "maximum context") || contains(em, "too many tokens"))
        failed(c, CBX_OUTCOME_CUSTOM, "context_length", 0, msg);
    else if (contains(em, "content_filter") || contains(em, "content management policy") ||
             contains(em, "content_policy"))
        failed(c, CBX_OUTCOME_CUSTOM, "content_filter", 0, msg);
    else
        failed(c, CBX_OUTCOME_CUSTOM, st == 401 || st == 403 ? "auth" : "refused", 0, msg);
}

/* ---- the start
 * ------------------------------------------------------------------------------------------ */

static int build_messages(llm_call *c, cbx_err *err)
{
    c->messages = json_array();
    json_t *fresh = json_array(); /* this call's own turns */
    const char *sys = json_string_value(json_object_get(c->params, "system_prompt"));
    if (sys)
        json_array_append_new(c->messages,
                              json_pack("{s:s, s:s}", "role", "system", "content", sys));
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(c->params, "messages"), i, m)
        json_array_append_new(fresh, json_deep_copy(m));
    const char *in = json_string_value(json_object_get(c->params, c->agent ? "task" : "input"));
    if (in)
        json_array_append_new(fresh, json_pack("{s:s, s:s}", "role", "user", "content", in));
    json_t *history = NULL;
    int r = cbx__llm_memory_load(c, &history, err);
    if (r == 0) {
        long long keep = 0;
        json_array_foreach(c->messages, i, m) keep += cbx__llm_estimate_tokens(m);
        json_array_foreach(fresh, i, m) keep += cbx__llm_estimate_tokens(m);
        history = cbx__llm_memory_trim(
            history, json_integer_value(json_object_get(c->params, "memory_max_tokens")), keep);
        c->memory_loaded = json_array_size(history);
        json_array_extend(c->messages, history);
    }
    json_decref(history);
    c->first_new = json_array_size(c->messages);
    json_array_extend(c->messages, fresh);
    json_decref(fresh);
    c->first_added = json_array_size(c->messages);
    return r;
}

int cbx__llm_begin(llm_call *c)
{
    c->t0_ns = uv_hrtime();
    if (!c->tool_calls)
        c->tool_calls = json_array();
    if (!c->failures)
        c->failures = json_array();
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx__curl_load(&err);
    if (r < 0 || !c->lp || !c->rt) {
        cbx__llm_finish(c, CBX_OUTCOME_ERROR, "internal", NULL, "llm: %s",
                        r < 0 ? err.msg : "no runtime context");
        return 0;
    }
    if (cbx__llm_providers_load(c, &err) < 0 || cbx__llm_tools_load(c, &err) < 0) {
        cbx__llm_finish(c, CBX_OUTCOME_CUSTOM, "bad_input", NULL, "%s", err.msg);
        return 0;
    }
    if ((r = build_messages(c, &err)) < 0) {
        cbx__llm_finish(c, r == CBX_EINVAL_CONFIG ? CBX_OUTCOME_CUSTOM : CBX_OUTCOME_ERROR,
                        r == CBX_EINVAL_CONFIG ? "bad_input" : "memory", NULL, "%s", err.msg);
        return 0;
    }
    ask(c, 0);
    return 0;
}

void cbx__llm_cancel_call(llm_call *c)
{
    if (c->reported || c->cancelled)
        return;
    c->cancelled = 1;
    if (c->xfer)
        cbx__llm_transfer_cancel(c);
    else if (c->children_running)
        cbx__llm_tools_cancel(c);
}
