/* cbx/llm.h - process-wide settings of the llm executor: provider detection and prices.
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

#ifdef __cplusplus
}
#endif
#endif
