/* The llm executor type: its parameters, their checks, start and cancel. */
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
     .description = "an OpenAI-compatible server (default $OPENAI_BASE_URL, else "
                    "https://api.openai.com/v1); a URL containing /chat/completions is used as it "
                    "is"},
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

int cbx__llm_invalid(cbx_err *err, const char *fmt, ...)
{
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *sep = strstr(buf, ": ");
    if (!sep)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "%s", buf);
    *sep = 0;
    return cbx_err_set_at(err, CBX_EINVAL_CONFIG, buf, 0, 0, "%s", sep + 2);
}

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
            return cbx__llm_invalid(err,
                                    "parameters: unknown key '%s' (expected temperature, "
                                    "top_p, top_k, max_tokens, stop, seed)",
                                    k);
        if (!ok)
            return cbx__llm_invalid(err, "parameters.%s: bad value", k);
    }
    return 0;
}

static int llm_validate(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    (void)type;
    if (!json_object_get(params, "input") &&
        json_array_size(json_object_get(params, "messages")) == 0)
        return cbx__llm_invalid(err, "input: required (or 'messages')");
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
            return cbx__llm_invalid(err, "messages[%zu]: expected {role, content}", i);
    }
    if ((r = validate_parameters(json_object_get(params, "parameters"), err)) != 0)
        return r;
    const json_t *rf = json_object_get(params, "response_format");
    if (rf && !json_is_object(rf) &&
        !(json_is_string(rf) && (strcmp(json_string_value(rf), "text") == 0 ||
                                 strcmp(json_string_value(rf), "json") == 0)))
        return cbx__llm_invalid(err, "response_format: expected text, json or a JSON Schema "
                                     "object");
    const char *q = json_string_value(json_object_get(params, "quality"));
    cbx_err e;
    cbx_err_clear(&e);
    if (q && cbx_template_check_expr(q, &e) != 0)
        return cbx__llm_invalid(err, "quality: %s", e.msg);
    return cbx__llm_tools_validate(params, err);
}

/* ---- ops ---- */

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

static void llm_cancel(cbx_task *t)
{
    cbx__llm_cancel_call(cbx_task_state(t));
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
