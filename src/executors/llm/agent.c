/* The agent executor: the llm conversation loop as an agent - a task, tools, and limits that
 * stop it (iterations, tokens, cost, wall time, a tool's open breaker, cancel) with a reason. */
#include "executors/llm/llm.h"

#include <stdio.h>
#include <string.h>

static const char *const providers_enum[] = {"openai", "ollama", NULL};

static const cbx_param agent_params[] = {
    {.name = "task", .type = CBX_PARAM_STRING, .required = 1, .description = "what to do"},
    {.name = "system_prompt", .type = CBX_PARAM_STRING, .description = "the system message"},
    {.name = "tools",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_OBJECT,
     .description = "executors the agent may call (as the llm executor's tools)"},
    {.name = "max_iterations",
     .type = CBX_PARAM_INTEGER,
     .default_json = "5",
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 100,
     .description = "model requests (plan, act, observe) before the agent gives up"},
    {.name = "memory_size",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "non-system messages sent to the model (0 = all)"},
    {.name = "max_total_tokens",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "token budget over the run (0 = none)"},
    {.name = "max_cost",
     .type = CBX_PARAM_NUMBER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "cost budget in US dollars by the price table (0 = none)"},
    {.name = "max_time_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "wall-time budget from the attempt's start (0 = none)"},
    {.name = "model", .type = CBX_PARAM_STRING, .description = "the model"},
    {.name = "model_provider",
     .type = CBX_PARAM_STRING,
     .enum_values = providers_enum,
     .description = "openai or ollama; default: detected from the model name"},
    {.name = "ollama_base_url",
     .type = CBX_PARAM_STRING,
     .default_json = "\"http://localhost:11434\"",
     .description = "the Ollama server"},
    {.name = "base_url", .type = CBX_PARAM_STRING, .description = "an OpenAI-compatible server"},
    {.name = "api_key",
     .type = CBX_PARAM_STRING,
     .secret = 1,
     .description = "bearer key (default: $OPENAI_API_KEY for openai)"},
    {.name = "parameters",
     .type = CBX_PARAM_OBJECT,
     .description = "{temperature, top_p, top_k, max_tokens, stop, seed}"},
    {.name = "stream",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "false",
     .description = "stream each answer"},
    {.name = "providers",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_OBJECT,
     .description = "[{name, protocol, base_url, model, api_key_env}], each behind a breaker"},
    {.name = "record",
     .type = CBX_PARAM_STRING,
     .description = "a directory to write each model exchange to (default $CBX_LLM_RECORD)"},
    {.name = "replay",
     .type = CBX_PARAM_STRING,
     .description = "a directory of recorded exchanges to answer from (default $CBX_LLM_REPLAY)"},
    {.name = "provider_breaker",
     .type = CBX_PARAM_OBJECT,
     .description = "{failures (3), open_ms (30000)}"},
    {0},
};

static int agent_validate(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    (void)type;
    return cbx__llm_validate_common(params, err);
}

static int agent_start(cbx_task *t)
{
    llm_call *c = cbx_task_state(t);
    const json_t *p = cbx_task_params(t);
    c->task = t;
    c->params = p;
    c->rt = cbx_task_runtime(t);
    c->lp = cbx_task_loop_state(t);
    c->agent = 1;
    c->max_rounds = (uint32_t)json_integer_value(json_object_get(p, "max_iterations"));
    if (c->max_rounds == 0)
        c->max_rounds = 5;
    c->memory_size = (uint32_t)json_integer_value(json_object_get(p, "memory_size"));
    c->max_total_tokens = (long long)json_integer_value(json_object_get(p, "max_total_tokens"));
    c->max_cost = json_number_value(json_object_get(p, "max_cost"));
    c->max_time_ns = (uint64_t)json_integer_value(json_object_get(p, "max_time_ms")) * 1000000u;
    return cbx__llm_begin(c);
}

static void agent_cancel(cbx_task *t)
{
    cbx__llm_cancel_call(cbx_task_state(t));
}

static const cbx_executor_type agent_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "agent",
    .summary = "a model that plans and calls tools (executors) until it answers, within "
               "iteration, token, cost and time budgets",
    .params = agent_params,
    .task_size = sizeof(llm_call),
    .validate = agent_validate,
    .start = agent_start,
    .cancel = agent_cancel,
    .loop_init = cbx__llm_loop_init,
    .loop_close = cbx__llm_loop_close,
};

const cbx_executor_type *cbx__agent_type(void)
{
    return &agent_type;
}
