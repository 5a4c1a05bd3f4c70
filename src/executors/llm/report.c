/* The end of an llm or agent attempt: its outputs and metadata, the quality score, the
 * conversation's memory kept, everything released, and cbx_task_done. */
#define _GNU_SOURCE
#include "executors/llm/llm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbx/template.h"

static json_t *added_messages(const llm_call *c)
{
    json_t *out = json_array();
    for (size_t i = c->first_added; i < json_array_size(c->messages); i++)
        json_array_append(out, json_array_get(c->messages, i));
    return out;
}

/* The outputs every report has (built without json_pack's format parsing: this is per call).
 * NULL when a string is not UTF-8 (or out of memory). */
static json_t *outputs(const llm_call *c, const llm_answer *a, const char *model)
{
    json_t *out = json_object(), *usage = json_object();
    json_t *content = json_string(a && a->content ? a->content : "");
    json_t *fin = json_string(a && a->finish_reason[0] ? a->finish_reason : "");
    json_t *mod = json_string(model);
    if (!out || !usage || !content || !fin || !mod) {
        json_decref(out);
        json_decref(usage);
        json_decref(content);
        json_decref(fin);
        json_decref(mod);
        return NULL;
    }
    json_object_set_new_nocheck(usage, "prompt_tokens", json_integer(c->prompt_tokens));
    json_object_set_new_nocheck(usage, "completion_tokens", json_integer(c->completion_tokens));
    json_object_set_new_nocheck(usage, "total_tokens",
                                json_integer(c->prompt_tokens + c->completion_tokens));
    json_object_set_new_nocheck(out, "content", content);
    json_object_set_new_nocheck(out, "messages", added_messages(c));
    json_object_set_nocheck(out, "tool_calls", c->tool_calls);
    json_object_set_new_nocheck(out, "usage", usage);
    json_object_set_new_nocheck(out, "cost", json_real(c->cost));
    json_object_set_new_nocheck(out, "finish_reason", fin);
    json_object_set_new_nocheck(out, "model", mod);
    json_object_set_new_nocheck(out, "tool_errors", json_integer(c->tool_errors));
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
int cbx__llm_eval_quality(const char *expr, json_t *outputs, double *q, char *why, size_t len)
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
void cbx__llm_finish(llm_call *c, cbx_outcome k, const char *kind, const llm_answer *a,
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
    json_t *meta = json_object();
    json_object_set_new_nocheck(meta, "rounds", json_integer(c->rounds));
    json_object_set_new_nocheck(meta, "tool_errors", json_integer(c->tool_errors));
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
        out = outputs(c, a, model);
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
        if (cbx__llm_eval_quality(qexpr, out, &q, why, sizeof why) == 0) {
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
