/* Where the llm executor's requests go: the protocol, URL, model and key of each provider, and
 * the breakers that choose among several. */
#define _GNU_SOURCE /* asprintf */
#include "executors/llm/llm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cbx/breaker_store.h"
#include "cbx/llm.h"

#define DEFAULT_OPENAI_BASE "https://api.openai.com/v1"

static int parse_proto(const char *s, llm_proto *out)
{
    if (s && strcmp(s, "openai") == 0)
        *out = LLM_OPENAI;
    else if (s && strcmp(s, "ollama") == 0)
        *out = LLM_OLLAMA;
    else
        return -1;
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* The chat URL of a base URL: OpenAI-compatible servers take <base>/chat/completions (a base
 * that already ends so - an Azure-style deployment path - is used as it is, and so is one with
 * a query string), Ollama <base>/api/chat. */
static char *chat_url(llm_proto proto, const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    char *u = NULL;
    if (proto == LLM_OLLAMA) {
        if (ends_with(base, "/api/chat"))
            return strdup(base);
        if (asprintf(&u, "%.*s/api/chat", (int)n, base) < 0)
            return NULL;
        return u;
    }
    if (strstr(base, "/chat/completions"))
        return strdup(base);
    if (asprintf(&u, "%.*s/chat/completions", (int)n, base) < 0)
        return NULL;
    return u;
}

static char *env_dup(const char *name)
{
    const char *v = name ? getenv(name) : NULL;
    return v && *v ? strdup(v) : NULL;
}

/* An OpenAI-compatible server when the parameters name none: $OPENAI_BASE_URL (as OpenAI's own
 * clients read it), else OpenAI's. */
static const char *openai_default_base(void)
{
    const char *v = getenv("OPENAI_BASE_URL");
    return v && *v ? v : DEFAULT_OPENAI_BASE;
}

/* The host[:port] of a URL, into buf (for a breaker's name). */
static void url_host(const char *url, char *buf, size_t len)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    snprintf(buf, len, "%.*s", (int)n, p);
}

int cbx__llm_providers_validate(const json_t *params, cbx_err *err)
{
    const json_t *list = json_object_get(params, "providers");
    const json_t *model = json_object_get(params, "model");
    if (json_array_size(list) == 0 && !json_is_string(model))
        return cbx__llm_invalid(err, "model: required (or a 'providers' list)");
    size_t i;
    const json_t *p;
    json_array_foreach(list, i, p)
    {
        llm_proto pr;
        char where[64];
        if (!json_is_object(p))
            return cbx__llm_invalid(err, "providers[%zu]: expected an object", i);
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)p, k, v)
        {
            static const char *const keys[] = {"name",  "protocol",    "base_url",
                                               "model", "api_key_env", NULL};
            int known = 0;
            for (size_t j = 0; keys[j]; j++)
                known |= strcmp(k, keys[j]) == 0;
            if (!known)
                return cbx__llm_invalid(err,
                                        "providers[%zu]: unknown key '%s' (expected "
                                        "name, protocol, base_url, model, api_key_env)",
                                        i, k);
            if (!json_is_string(v))
                return cbx__llm_invalid(err, "providers[%zu].%s: expected a string", i, k);
        }
        snprintf(where, sizeof where, "providers[%zu].protocol", i);
        const char *proto = json_string_value(json_object_get(p, "protocol"));
        if (proto && parse_proto(proto, &pr) != 0)
            return cbx__llm_invalid(err, "%s: unknown provider '%s' (expected openai, ollama)",
                                    where, proto);
        if (!json_is_string(json_object_get(p, "model")) && !json_is_string(model))
            return cbx__llm_invalid(err, "providers[%zu].model: required (no 'model' either)", i);
    }
    return 0;
}

int cbx__llm_providers_load(llm_call *c, cbx_err *err)
{
    const json_t *params = c->params;
    const json_t *list = json_object_get(params, "providers");
    size_t n = json_array_size(list);
    c->providers = calloc(n ? n : 1, sizeof *c->providers);
    if (!c->providers)
        return cbx_err_set(err, -ENOMEM, "llm: out of memory");
    const char *model = json_string_value(json_object_get(params, "model"));
    const char *mp = json_string_value(json_object_get(params, "model_provider"));
    const char *ollama_base = json_string_value(json_object_get(params, "ollama_base_url"));
    const char *openai_base = json_string_value(json_object_get(params, "base_url"));
    const char *key = json_string_value(json_object_get(params, "api_key"));
    if (n == 0) {
        llm_provider *p = &c->providers[0];
        c->nproviders = 1;
        if (parse_proto(mp ? mp : cbx_llm_detect_provider(model), &p->proto) != 0)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "model_provider", 0, 0,
                                  "parameter 'model_provider': unknown provider '%s'", mp);
        const char *base = p->proto == LLM_OLLAMA
                               ? (ollama_base ? ollama_base : "http://localhost:11434")
                               : (openai_base ? openai_base : openai_default_base());
        p->url = chat_url(p->proto, base);
        p->model = strdup(model ? model : "");
        p->api_key = key ? strdup(key) : p->proto == LLM_OPENAI ? env_dup("OPENAI_API_KEY") : NULL;
        return p->url && p->model ? 0 : cbx_err_set(err, -ENOMEM, "llm: out of memory");
    }
    size_t i;
    const json_t *pj;
    json_array_foreach(list, i, pj)
    {
        llm_provider *p = &c->providers[i];
        c->nproviders = i + 1;
        const char *proto = json_string_value(json_object_get(pj, "protocol"));
        const char *pm = json_string_value(json_object_get(pj, "model"));
        if (!pm)
            pm = model;
        parse_proto(proto ? proto : cbx_llm_detect_provider(pm), &p->proto);
        const char *base = json_string_value(json_object_get(pj, "base_url"));
        if (!base)
            base = p->proto == LLM_OLLAMA ? (ollama_base ? ollama_base : "http://localhost:11434")
                                          : (openai_base ? openai_base : openai_default_base());
        const char *kenv = json_string_value(json_object_get(pj, "api_key_env"));
        p->url = chat_url(p->proto, base);
        p->model = strdup(pm ? pm : "");
        p->api_key = kenv                     ? env_dup(kenv)
                     : key                    ? strdup(key)
                     : p->proto == LLM_OPENAI ? env_dup("OPENAI_API_KEY")
                                              : NULL;
        const char *name = json_string_value(json_object_get(pj, "name"));
        char host[128];
        url_host(p->url ? p->url : "", host, sizeof host);
        if (!p->url || !p->model ||
            asprintf(&p->breaker, "llm:%s:%s@%s",
                     name                     ? name
                     : p->proto == LLM_OLLAMA ? "ollama"
                                              : "openai",
                     p->model, host) < 0) {
            p->breaker = NULL;
            return cbx_err_set(err, -ENOMEM, "llm: out of memory");
        }
        if (strlen(p->breaker) > CBX_BREAKER_NAME_MAX)
            p->breaker[CBX_BREAKER_NAME_MAX] = 0;
    }
    return 0;
}

void cbx__llm_providers_free(llm_call *c)
{
    for (size_t i = 0; i < c->nproviders; i++) {
        free(c->providers[i].url);
        free(c->providers[i].model);
        free(c->providers[i].api_key);
        free(c->providers[i].breaker);
    }
    free(c->providers);
    c->providers = NULL;
    c->nproviders = 0;
}

static void breaker_opts(const llm_call *c, cbx_breaker_opts *o)
{
    cbx_breaker_opts_default(o);
    const json_t *b = json_object_get(c->params, "provider_breaker");
    const json_t *f = json_object_get(b, "failures");
    const json_t *ms = json_object_get(b, "open_ms");
    o->consecutive_failures = json_is_integer(f) ? (uint32_t)json_integer_value(f) : 3;
    o->open_ns = (json_is_integer(ms) ? (uint64_t)json_integer_value(ms) : 30000) * 1000000ULL;
}

long cbx__llm_provider_acquire(llm_call *c, size_t from, char *why, size_t len)
{
    cbx_breaker_store *store = cbx_runtime_breakers(c->rt);
    for (size_t i = from; i < c->nproviders; i++) {
        llm_provider *p = &c->providers[i];
        if (!p->breaker || !store) {
            c->permit = (cbx_permit){0};
            return (long)i;
        }
        cbx_breaker_opts o;
        breaker_opts(c, &o);
        cbx_breaker_rejection rej;
        memset(&rej, 0, sizeof rej);
        cbx_permit pm = cbx_breaker_store_acquire(store, p->breaker, &o, &rej);
        if (pm.rc == 0) {
            c->permit = pm;
            return (long)i;
        }
        char buf[256];
        snprintf(why, len, "%s: %s", p->breaker,
                 cbx_breaker_store_explain(store, p->breaker, &rej, buf, sizeof buf));
        json_array_append_new(c->failures,
                              json_pack("{s:s, s:s}", "provider", p->breaker, "error", why));
    }
    return -1;
}

void cbx__llm_provider_record(llm_call *c, cbx_outcome k)
{
    llm_provider *p = &c->providers[c->provider];
    cbx_breaker_store *store = cbx_runtime_breakers(c->rt);
    if (!p->breaker || !store)
        return;
    cbx_breaker_store_record(store, p->breaker, c->permit, k,
                             (int64_t)(uv_hrtime() - c->req_t0_ns));
    c->permit = (cbx_permit){0};
}
