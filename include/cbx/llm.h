/* cbx/llm.h - the llm and agent executors from C: process-wide settings (provider detection,
 * prices) and helpers that build the `tools` parameter.
 *
 * The llm executor (docs/executors.md) picks a wire protocol from its model name when the
 * request names no model_provider, and prices each call from a per-model table. Both tables
 * are process-wide, read by every runtime; the cbx CLI fills them from the `llm:` section of
 * its configuration file. Without a call here the tables hold the built-in defaults:
 *
 *   provider_prefixes   llama -> ollama, codellama -> ollama, mistral -> ollama
 *                       (the longest matching prefix wins; no match: openai)
 *   prices              empty: cost is 0 for every model
 *
 * Thread-safe: a mutex guards the tables; a call replaces them wholesale.
 */
#ifndef CBX_LLM_H
#define CBX_LLM_H

#include <jansson.h>

#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Set the tables from a settings object (borrowed; its values are copied):
 *
 *   {"provider_prefixes": {"llama": "ollama", "gpt-": "openai", ...},
 *    "prices": {"gpt-4o-mini": {"input": 0.15, "output": 0.60}, "llama*": {...}}}
 *
 * provider_prefixes, when present, is added to the built-in table (a prefix given again
 * replaces the built-in entry); its values are "openai" or "ollama". prices maps a model name
 * or a glob pattern (*, ?) to US dollars per million prompt ("input") and completion
 * ("output") tokens; an exact name wins over a pattern, and among patterns the first in the
 * object's order. Either key may be absent (that table is left as it is). Other keys are
 * refused. 0, or CBX_EINVAL_CONFIG with a one-line message naming the key in *err (nothing is
 * changed then). NULL resets both tables to the defaults. */
int cbx_llm_settings_set(const json_t *settings, cbx_err *err);

/* The provider detection gives for a model name: "openai" or "ollama" (static). */
const char *cbx_llm_detect_provider(const char *model);

/* The cost in US dollars of prompt_tokens and completion_tokens on model by the price table;
 * *found is set to 1 when the table has the model (0: the cost is 0). */
double cbx_llm_price(const char *model, long long prompt_tokens, long long completion_tokens,
                     int *found);

/* ---- tools, for C callers (seed 000's add_tool, remove_tool, clear_tools) ------------------ */

/* The llm and agent executors take their tools as the `tools` parameter, a JSON array of
 * {name, executor, description, params, arguments, policy, fallback_response}
 * (docs/executors.md). These edit such an array (borrowed; the caller owns it).
 */

/* One tool. Strings and values are copied by cbx_llm_tool_add; NULL = absent. */
typedef struct cbx_llm_tool_opts {
    const char *name;        /* [A-Za-z0-9_-], 1 to 64, unique in the array; required */
    const char *executor;    /* an executor type's name; required */
    const char *description; /* NULL: the type's summary */
    const json_t *params;    /* an object: fixed parameters, {{ args.X }} templates allowed */
    const json_t *arguments; /* a JSON Schema of type object the model fills; NULL: the type's
                                own schema less params */
    const json_t *policy;    /* a policy block for each call; NULL: one attempt */
    const json_t *fallback_response; /* told to the model when the call fails */
} cbx_llm_tool_opts;

/* Append a tool to tools. 0, or CBX_EINVAL_CONFIG with a one-line message in *err (a bad or
 * taken name, no executor, params or arguments not objects, tools not an array). */
int cbx_llm_tool_add(json_t *tools, const cbx_llm_tool_opts *o, cbx_err *err);
/* Remove the tool called name: 0, or -ENOENT when there is none. */
int cbx_llm_tool_remove(json_t *tools, const char *name);
/* Remove every tool. */
void cbx_llm_tools_clear(json_t *tools);

#ifdef __cplusplus
}
#endif
#endif
