/* The llm executor's process-wide tables: provider detection by model prefix, and prices. */
#include "cbx/llm.h"

#include <pthread.h>
#include <string.h>

#include "core/text.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *prefixes; /* {prefix: provider} added to the built-in ones; NULL = none */
static json_t *prices;   /* {model or glob: {input, output}}; NULL = none */

static const char *const builtin_prefixes[][2] = {
    {"llama", "ollama"}, {"codellama", "ollama"}, {"mistral", "ollama"}};

static int check_prefixes(const json_t *v, cbx_err *err)
{
    if (!json_is_object(v))
        return cbx_err_set(err, CBX_EINVAL_CONFIG,
                           "llm.provider_prefixes: expected a mapping of prefix to provider");
    const char *k;
    const json_t *p;
    json_object_foreach((json_t *)v, k, p)
    {
        const char *s = json_string_value(p);
        if (!s || (strcmp(s, "openai") != 0 && strcmp(s, "ollama") != 0))
            return cbx_err_set(err, CBX_EINVAL_CONFIG,
                               "llm.provider_prefixes.%s: expected \"openai\" or \"ollama\"", k);
    }
    return 0;
}

static int check_prices(const json_t *v, cbx_err *err)
{
    if (!json_is_object(v))
        return cbx_err_set(err, CBX_EINVAL_CONFIG,
                           "llm.prices: expected a mapping of model to {input, output}");
    const char *k;
    const json_t *p;
    json_object_foreach((json_t *)v, k, p)
    {
        const char *key;
        const json_t *x;
        if (!json_is_object(p))
            return cbx_err_set(err, CBX_EINVAL_CONFIG,
                               "llm.prices.%s: expected {input, output} in USD per million tokens",
                               k);
        json_object_foreach((json_t *)p, key, x)
        {
            if (strcmp(key, "input") != 0 && strcmp(key, "output") != 0)
                return cbx_err_set(err, CBX_EINVAL_CONFIG,
                                   "llm.prices.%s: unknown key '%s' (expected input, output)", k,
                                   key);
            if (!json_is_number(x) || json_number_value(x) < 0)
                return cbx_err_set(err, CBX_EINVAL_CONFIG,
                                   "llm.prices.%s.%s: expected a number >= 0", k, key);
        }
    }
    return 0;
}

int cbx_llm_settings_set(const json_t *settings, cbx_err *err)
{
    if (!settings) {
        pthread_mutex_lock(&lock);
        json_decref(prefixes);
        json_decref(prices);
        prefixes = prices = NULL;
        pthread_mutex_unlock(&lock);
        return 0;
    }
    if (!json_is_object(settings))
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "llm: expected a mapping");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)settings, k, v)
    {
        int r = 0;
        if (strcmp(k, "provider_prefixes") == 0)
            r = check_prefixes(v, err);
        else if (strcmp(k, "prices") == 0)
            r = check_prices(v, err);
        else
            r = cbx_err_set(err, CBX_EINVAL_CONFIG,
                            "llm: unknown key '%s' (expected provider_prefixes, prices)", k);
        if (r)
            return r;
    }
    json_t *np = json_deep_copy(json_object_get(settings, "provider_prefixes"));
    json_t *nc = json_deep_copy(json_object_get(settings, "prices"));
    pthread_mutex_lock(&lock);
    if (np) {
        json_decref(prefixes);
        prefixes = np;
    }
    if (nc) {
        json_decref(prices);
        prices = nc;
    }
    pthread_mutex_unlock(&lock);
    return 0;
}

const char *cbx_llm_detect_provider(const char *model)
{
    if (!model)
        return "openai";
    const char *best = "openai";
    size_t best_len = 0;
    for (size_t i = 0; i < sizeof builtin_prefixes / sizeof builtin_prefixes[0]; i++) {
        size_t n = strlen(builtin_prefixes[i][0]);
        if (n > best_len && strncmp(model, builtin_prefixes[i][0], n) == 0) {
            best = builtin_prefixes[i][1];
            best_len = n;
        }
    }
    pthread_mutex_lock(&lock);
    const char *k;
    const json_t *v;
    json_object_foreach(prefixes, k, v)
    {
        size_t n = strlen(k);
        /* a prefix given again replaces the built-in one of the same length */
        if (n >= best_len && strncmp(model, k, n) == 0) {
            best = strcmp(json_string_value(v), "ollama") == 0 ? "ollama" : "openai";
            best_len = n;
        }
    }
    pthread_mutex_unlock(&lock);
    return best;
}

double cbx_llm_price(const char *model, long long prompt_tokens, long long completion_tokens,
                     int *found)
{
    double cost = 0;
    int hit = 0;
    pthread_mutex_lock(&lock);
    const json_t *p = model ? json_object_get(prices, model) : NULL;
    if (!p && model) {
        const char *k;
        const json_t *v;
        json_object_foreach(prices, k, v)
        {
            if (cbx__glob_match(k, model, 0)) {
                p = v;
                break;
            }
        }
    }
    if (p) {
        hit = 1;
        cost = ((double)prompt_tokens * json_number_value(json_object_get(p, "input")) +
                (double)completion_tokens * json_number_value(json_object_get(p, "output"))) /
               1e6;
    }
    pthread_mutex_unlock(&lock);
    if (found)
        *found = hit;
    return cost;
}
