/* The llm executor type: parameters, the conversation loop of one attempt, outcomes. */
#define _GNU_SOURCE
#include "executors/llm/llm.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "cbx/llm.h"
#include "cbx/template.h"

static const char *const providers_enum[] = {"openai", "ollama", NULL};

static const cbx_param llm_params[] = {
    {.name = "model",
     .type = CBX_PARAM_STRING,
     .description = "the model to ask (e.g. gpt-4o-mini, llama3.2)"},
    {.name = "model_provider",
     .type = CBX_PARAM_STRING,
     .enum_values = providers_enum,
     .description = "openai or ollama; default: detected from the model name (cbx/llm.h)"},
    {.name = "ollama_base_url",
     .type = CBX_PARAM_STRING,
     .default_json = "\"http://localhost:11434\"",
     .description = "the Ollama server"},
    {.name = "base_url",
     .type = CBX_PARAM_STRING,
     .description = "an OpenAI-compatible server (default https://api.openai.com/v1); a URL "
                    "containing /chat/completions is used as it is"},
    {.name = "api_key",
     .type = CBX_PARAM_STRING,
     .secret = 1,
     .description = "bearer key (default: $OPENAI_API_KEY for openai)"},
    {.name = "system_prompt", .type = CBX_PARAM_STRING, .description = "the system message"},
    {.name = "input", .type = CBX_PARAM_STRING, .description = "the user's message"},
    {.name = "messages",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_OBJECT,
     .description = "earlier turns [{role, content}], before input"},
    {.name = "parameters",
     .type = CBX_PARAM_OBJECT,
     .description = "{temperature, top_p, top_k, max_tokens, stop, seed}"},
    {.name = "response_format",
     .type = CBX_PARAM_ANY,
     .default_json = "\"text\"",
     .description = "text, json, or a JSON Schema object the answer must follow"},
    {.name = "tools",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_OBJECT,
     .description = "[{name, executor, description, params, arguments, policy, "
                    "fallback_response}]: executors the model may call"},
    {.name = "max_rounds",
     .type = CBX_PARAM_INTEGER,
     .default_json = "8",
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 100,
     .description = "model requests per attempt (tool rounds + the answer)"},
    {.name = "stream",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "false",
     .description = "stream the answer (SSE or NDJSON)"},
    {.name = "conversation",
     .type = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 200,
     .description = "an id whose turns are kept in the journal and sent again with the next call"},
    {.name = "memory_max_tokens",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "trim the conversation's oldest turns to this estimate (0 = keep all)"},
    {.name = "memory_clear",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "false",
     .description = "forget the conversation's turns before this call"},
    {.name = "record",
     .type = CBX_PARAM_STRING,
     .description = "a directory to write each model exchange to (default $CBX_LLM_RECORD)"},
    {.name = "replay",
     .type = CBX_PARAM_STRING,
     .description = "a directory of recorded exchanges to answer from, without a network "
                    "(default $CBX_LLM_REPLAY)"},
    {.name = "min_quality",
     .type = CBX_PARAM_NUMBER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 1,
     .description = "with quality: a final answer scored under this fails over to the next "
                    "provider, or fails as a quality failure"},
    {.name = "quality",
     .type = CBX_PARAM_STRING,
     .description = "Lua expression over output, content, json giving a score 0..1"},
    {.name = "providers",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_OBJECT,
     .description = "[{name, protocol, base_url, model, api_key_env}]: tried in order, each "
                    "behind its own breaker"},
    {.name = "provider_breaker",
     .type = CBX_PARAM_OBJECT,
     .description = "{failures (3), open_ms (30000)}: each provider's breaker"},
    {0},
};

/* ---- validation
 * ---------------------------------------------------------------------------------- */

static int validate_parameters(const json_t *par, cbx_err *err)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)par, k, v)
    {
        int ok;
        if (strcmp(k, "temperature") == 0 || strcmp(k, "top_p") == 0)
            ok = json_is_number(v) && json_number_value(v) >= 0;
        else if (strcmp(k, "top_k") == 0 || strcmp(k, "max_tokens") == 0)
            ok = json_is_integer(v) && json_integer_value(v) > 0;
        else if (strcmp(k, "seed") == 0)
            ok = json_is_integer(v);
        else if (strcmp(k, "stop") == 0)
            ok = json_is_string(v) || json_is_array(v);
        else
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "parameters", 0, 0,
                                  "parameter 'parameters': unknown key '%s' (expected temperature, "
                                  "top_p, top_k, max_tokens, stop, seed)",
                                  k);
        if (!ok)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "parameters", 0, 0,
                                  "parameter 'parameters.%s': bad value", k);
    }
    return 0;
}

static int llm_validate(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    (void)type;
    if (!json_object_get(params, "input") &&
        json_array_size(json_object_get(params, "messages")) == 0)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "input", 0, 0,
                              "parameter 'input': required (or 'messages')");
    return cbx__llm_validate_common(params, err);
}

int cbx__llm_validate_common(const json_t *params, cbx_err *err)
{
    int r = cbx__llm_providers_validate(params, err);
    if (r)
        return r;
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(params, "messages"), i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role || !json_object_get(m, "content"))
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "messages", 0, 0,
                                  "parameter 'messages[%zu]': expected {role, content}", i);
    }
    if ((r = validate_parameters(json_object_get(params, "parameters"), err)) != 0)
        return r;
    const json_t *rf = json_object_get(params, "response_format");
    if (rf && !json_is_object(rf) &&
        !(json_is_string(rf) && (strcmp(json_string_value(rf), "text") == 0 ||
                                 strcmp(json_string_value(rf), "json") == 0)))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "response_format", 0, 0,
                              "parameter 'response_format': expected text, json or a JSON Schema "
                              "object");
    const char *q = json_string_value(json_object_get(params, "quality"));
    cbx_err e;
    cbx_err_clear(&e);
    if (q && cbx_template_check_expr(q, &e) != 0)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "quality", 0, 0, "parameter 'quality': %s",
                              e.msg);
    return cbx__llm_tools_validate(params, err);
}

json_t *cbx__llm_window(const llm_call *c)
{
    size_t n = json_array_size(c->messages);
    if (c->memory_size == 0)
        return json_incref(c->messages);
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
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(c->messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (i >= from || (role && strcmp(role, "system") == 0))
            json_array_append(out, m);
    }
    return out;
}

/* ---- the end of an attempt
 * ------------------------------------------------------------------------ */

static json_t *added_messages(const llm_call *c)
{
    json_t *out = json_array();
    for (size_t i = c->first_added; i < json_array_size(c->messages); i++)
        json_array_append(out, json_array_get(c->messages, i));
    return out;
}

static void release(llm_call *c)
{
    cbx__llm_providers_free(c);
    cbx__llm_tools_free(c);
    json_decref(c->messages);
    json_decref(c->tool_calls);
    json_decref(c->round_results);
    json_decref(c->failures);
    free(c->children);
    c->messages = c->tool_calls = c->round_results = c->failures = NULL;
    c->children = NULL;
}

/* The quality expression's score for the outputs: 0 and *q, or -1 with why. */
static int eval_quality(const char *expr, json_t *outputs, double *q, char *why, size_t len)
{
    cbx_template_env *env = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    json_t *ctx = json_pack(
        "{s:O, s:O, s:O}", "output", outputs, "content", json_object_get(outputs, "content"),
        "json", json_object_get(outputs, "json") ? json_object_get(outputs, "json") : json_null());
    json_t *v = NULL;
    int r = cbx_template_env_new(&env, NULL, &e);
    if (r == 0)
        r = cbx_template_eval(env, expr, ctx, &v, &e);
    cbx_template_env_free(env);
    json_decref(ctx);
    if (r != 0) {
        snprintf(why, len, "quality: %.200s", e.msg);
        return -1;
    }
    if (json_is_number(v))
        *q = json_number_value(v);
    else if (json_is_boolean(v))
        *q = json_is_true(v) ? 1 : 0;
    else {
        snprintf(why, len, "quality: the expression gave %s, not a number",
                 json_is_null(v) || !v ? "nil" : "another value");
        json_decref(v);
        return -1;
    }
    json_decref(v);
    if (isnan(*q))
        *q = 0;
    *q = *q < 0 ? 0 : *q > 1 ? 1 : *q;
    return 0;
}

/* Report the attempt: outputs on success (and what is known on failure), then free. */
static void finish(llm_call *c, cbx_outcome k, const char *kind, const llm_answer *a,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void finish(llm_call *c, cbx_outcome k, const char *kind, const llm_answer *a,
                   const char *fmt, ...)
{
    if (c->reported)
        return;
    c->reported = 1;
    char msg[512] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    const llm_provider *p = c->nproviders ? &c->providers[c->provider] : NULL;
    json_t *meta =
        json_pack("{s:i, s:i}", "rounds", (int)c->rounds, "tool_errors", (int)c->tool_errors);
    if (p) {
        json_object_set_new(meta, "provider",
                            json_string(p->proto == LLM_OLLAMA ? "ollama" : "openai"));
        json_object_set_new(meta, "url", json_string(p->url));
        if (p->breaker)
            json_object_set_new(meta, "breaker", json_string(p->breaker));
    }
    if (json_array_size(c->failures))
        json_object_set(meta, "skipped", c->failures);
    json_t *out = NULL;
    if (c->messages) {
        const char *model = a && a->model[0] ? a->model : p ? p->model : "";
        out = json_pack("{s:s, s:o, s:O, s:{s:I, s:I, s:I}, s:f, s:s, s:s, s:i}", "content",
                        a && a->content ? a->content : "", "messages", added_messages(c),
                        "tool_calls", c->tool_calls, "usage", "prompt_tokens",
                        (json_int_t)c->prompt_tokens, "completion_tokens",
                        (json_int_t)c->completion_tokens, "total_tokens",
                        (json_int_t)(c->prompt_tokens + c->completion_tokens), "cost", c->cost,
                        "finish_reason", a && a->finish_reason[0] ? a->finish_reason : "", "model",
                        model, "tool_errors", (int)c->tool_errors);
        if (out && !c->cost_known)
            json_object_set_new(out, "cost", json_null());
        if (out && kind)
            json_object_set_new(out, "error_kind", json_string(kind));
        if (out && c->agent) {
            json_object_set_new(out, "iterations", json_integer(c->rounds));
            json_object_set_new(out, "stop_reason",
                                json_string(k == CBX_OUTCOME_SUCCESS ? "answer"
                                            : kind                   ? kind
                                                                     : "error"));
        }
        const json_t *rf = json_object_get(c->params, "response_format");
        if (out && a && a->content &&
            (json_is_object(rf) ||
             (json_is_string(rf) && strcmp(json_string_value(rf), "json") == 0))) {
            json_t *j = json_loads(a->content, JSON_DECODE_ANY, NULL);
            if (j)
                json_object_set_new(out, "json", j);
            else if (k == CBX_OUTCOME_SUCCESS) {
                k = CBX_OUTCOME_ERROR;
                kind = "malformed";
                json_object_set_new(out, "error_kind", json_string(kind));
                snprintf(msg, sizeof msg, "the answer is not the JSON response_format asked for");
            }
        }
    }
    const char *qexpr = json_string_value(json_object_get(c->params, "quality"));
    if (k == CBX_OUTCOME_SUCCESS && qexpr && out) {
        double q = 0;
        char why[300];
        if (eval_quality(qexpr, out, &q, why, sizeof why) == 0) {
            cbx_task_set_quality(c->task, q);
            json_object_set_new(meta, "quality", json_real(q));
        } else {
            k = CBX_OUTCOME_ERROR;
            snprintf(msg, sizeof msg, "%s", why);
        }
    }
    if (json_object_get(c->params, "conversation")) {
        json_object_set_new(meta, "memory_loaded", json_integer((json_int_t)c->memory_loaded));
        cbx_err merr;
        cbx_err_clear(&merr);
        if (k == CBX_OUTCOME_SUCCESS && c->messages &&
            cbx__llm_memory_save(c, c->first_new, &merr) != 0)
            json_object_set_new(meta, "memory_error", json_string(merr.msg));
    }
    cbx_task *t = c->task;
    release(c);
    if (msg[0])
        cbx_task_done(t, k, out, meta, "%s", msg);
    else
        cbx_task_done(t, k, out, meta, NULL);
}

static int over_budget(llm_call *c, const llm_answer *a);

/* ---- requests ----------------------------------------------------------------------------------
 */

static void ask(llm_call *c, size_t from)
{
    char why[300] = "";
    long i = cbx__llm_provider_acquire(c, from, why, sizeof why);
    if (i < 0) {
        finish(c, CBX_OUTCOME_ERROR, "no_provider", NULL, "no provider admits the call: %s", why);
        return;
    }
    c->provider = (size_t)i;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx__llm_transfer_start(c, &c->providers[i], &err);
    if (r < 0) {
        cbx__llm_provider_record(c, CBX_OUTCOME_IGNORED);
        if (r == -ENOENT) /* nothing recorded for a replayed request: no retry can help */
            finish(c, CBX_OUTCOME_CUSTOM, "replay", NULL, "%s", err.msg);
        else
            finish(c, CBX_OUTCOME_ERROR, "internal", NULL, "%s", err.msg);
    }
}

void cbx__llm_round_done(llm_call *c)
{
    if (c->cancelled) {
        finish(c, CBX_OUTCOME_ERROR, "cancelled", NULL, NULL);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(c->round_results, i, m) json_array_append(c->messages, m);
    if (c->breaker_tool[0]) {
        finish(c, CBX_OUTCOME_CUSTOM, "tool_breaker_open", NULL,
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
    finish(c, k, kind, NULL, "%s", msg);
}

/* The agent's budgets, checked before another round: 1 when one is spent (reported). */
static int over_budget(llm_call *c, const llm_answer *a)
{
    if (!c->agent)
        return 0;
    long long used = c->prompt_tokens + c->completion_tokens;
    if (c->max_total_tokens > 0 && used >= c->max_total_tokens) {
        finish(c, CBX_OUTCOME_CUSTOM, "token_budget", a,
               "agent stopped: %lld tokens used of a budget of %lld", used, c->max_total_tokens);
        return 1;
    }
    if (c->max_cost > 0 && c->cost >= c->max_cost) {
        finish(c, CBX_OUTCOME_CUSTOM, "cost_budget", a,
               "agent stopped: $%.6f spent of a budget of $%.6f", c->cost, c->max_cost);
        return 1;
    }
    uint64_t spent = uv_hrtime() - c->t0_ns;
    if (c->max_time_ns > 0 && spent >= c->max_time_ns) {
        finish(c, CBX_OUTCOME_CUSTOM, "time_budget", a,
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
    int r = eval_quality(expr, out, q, why, sizeof why);
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
        finish(c, CBX_OUTCOME_CUSTOM, "content_filter", a,
               "content_filter: the provider withheld the answer (finish_reason content_filter)");
        return;
    }
    size_t ncalls = json_array_size(a->tool_calls);
    json_t *msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                            a->content ? json_string(a->content) : json_null());
    if (ncalls == 0) {
        json_array_append_new(c->messages, msg);
        finish(c, CBX_OUTCOME_SUCCESS, NULL, a, NULL);
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
            finish(c, CBX_OUTCOME_CUSTOM, "max_iterations", a,
                   "agent stopped: max_iterations (%u) reached without a final answer",
                   c->max_rounds);
        else
            finish(c, CBX_OUTCOME_CUSTOM, "max_rounds", a,
                   "the model still calls tools after max_rounds (%u) requests", c->max_rounds);
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
        finish(c, CBX_OUTCOME_ERROR, "cancelled", NULL, NULL);
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
        if (!x->stream && cbx__llm_parse_plain(p->proto, x->body, x->body_len, &x->ans) < 0) {
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
    cbx__llm_error_message(x->body, x->body_len, em, sizeof em);
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

/* ---- ops
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

static int llm_start(cbx_task *t)
{
    llm_call *c = cbx_task_state(t);
    c->task = t;
    c->params = cbx_task_params(t);
    c->rt = cbx_task_runtime(t);
    c->lp = cbx_task_loop_state(t);
    c->tool_calls = json_array();
    c->failures = json_array();
    c->max_rounds = (uint32_t)json_integer_value(json_object_get(c->params, "max_rounds"));
    if (c->max_rounds == 0)
        c->max_rounds = 8;
    return cbx__llm_begin(c);
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
        finish(c, CBX_OUTCOME_ERROR, "internal", NULL, "llm: %s",
               r < 0 ? err.msg : "no runtime context");
        return 0;
    }
    if (cbx__llm_providers_load(c, &err) < 0 || cbx__llm_tools_load(c, &err) < 0) {
        finish(c, CBX_OUTCOME_CUSTOM, "bad_input", NULL, "%s", err.msg);
        return 0;
    }
    if ((r = build_messages(c, &err)) < 0) {
        finish(c, r == CBX_EINVAL_CONFIG ? CBX_OUTCOME_CUSTOM : CBX_OUTCOME_ERROR,
               r == CBX_EINVAL_CONFIG ? "bad_input" : "memory", NULL, "%s", err.msg);
        return 0;
    }
    ask(c, 0);
    return 0;
}

static void llm_cancel(cbx_task *t)
{
    cbx__llm_cancel_call(cbx_task_state(t));
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

int cbx__llm_loop_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err)
{
    (void)type;
    cbx__http_loop *lp;
    int r = cbx__http_loop_open(loop, &lp);
    if (r < 0)
        return cbx_err_set(err, r, "llm: out of memory");
    *state = lp;
    return 0;
}

void cbx__llm_loop_close(const cbx_executor_type *type, void *loop, void *state)
{
    (void)type;
    (void)loop;
    cbx__http_loop_close(state);
}

static const cbx_executor_type llm_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "llm",
    .summary = "a chat model call (OpenAI-compatible or Ollama), streamed or not, with tools "
               "that are executors",
    .params = llm_params,
    .task_size = sizeof(llm_call),
    .validate = llm_validate,
    .start = llm_start,
    .cancel = llm_cancel,
    .loop_init = cbx__llm_loop_init,
    .loop_close = cbx__llm_loop_close,
};

const cbx_executor_type *cbx__llm_type(void)
{
    return &llm_type;
}
