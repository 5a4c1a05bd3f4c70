/* The request body of both protocols written straight as JSON text into one buffer, without
 * building a jansson tree and dumping it: OpenAI's chat completion request, and Ollama's /api/chat
 * (the conversation is kept in OpenAI's shape and translated as it is written). The text is the
 * one jansson's compact dump of the same tree would give, keys in the same order. */
#include "executors/llm/llm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_escape.h"
#include "core/strbuf.h"

typedef cbx__buf out;

static void put_str(out *o, const char *s, size_t n)
{
    if (cbx__buf_reserve(o, n + 2) < 0)
        return;
    o->p[o->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        char esc[7];
        size_t e = cbx__json_escape((unsigned char)s[i], esc, 1);
        if (!e)
            continue;
        cbx__buf_put(o, s + run, i - run);
        cbx__buf_put(o, esc, e);
        run = i + 1;
    }
    cbx__buf_put(o, s + run, n - run);
    cbx__buf_put(o, "\"", 1);
}

static void put_cstr(out *o, const char *s)
{
    put_str(o, s, strlen(s));
}

/* "key": (with the comma before it unless first) */
static void put_key(out *o, const char *key, int *first)
{
    if (!*first)
        cbx__buf_put(o, ",", 1);
    *first = 0;
    put_cstr(o, key);
    cbx__buf_put(o, ":", 1);
}

static void put_json(out *o, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        cbx__buf_put(o, "{", 1);
        int first = 1;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            put_key(o, k, &first);
            put_json(o, x);
        }
        cbx__buf_put(o, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        cbx__buf_put(o, "[", 1);
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (i)
                cbx__buf_put(o, ",", 1);
            put_json(o, x);
        }
        cbx__buf_put(o, "]", 1);
        break;
    }
    case JSON_STRING:
        put_str(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        char b[32];
        int n = snprintf(b, sizeof b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        cbx__buf_put(o, b, (size_t)n);
        break;
    }
    case JSON_REAL: { /* jansson's own text for a real (precision, ".0", locale) */
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (s)
            cbx__buf_put(o, s, strlen(s));
        else
            o->oom = 1;
        free(s);
        break;
    }
    case JSON_TRUE:
        CBX__BUF_LIT(o, "true");
        break;
    case JSON_FALSE:
        CBX__BUF_LIT(o, "false");
        break;
    default:
        CBX__BUF_LIT(o, "null");
        break;
    }
}

static void put_if(out *o, const char *key, const json_t *v, int *first)
{
    if (v && !json_is_null(v)) {
        put_key(o, key, first);
        put_json(o, v);
    }
}

static const char *role_of(const json_t *m)
{
    return json_string_value(json_object_get(m, "role"));
}

/* One message of the conversation in Ollama's shape: tool calls' arguments as objects, a tool
 * result's name as tool_name. */
static void put_ollama_message(out *o, const json_t *m)
{
    const char *role = role_of(m);
    const char *content = json_string_value(json_object_get(m, "content"));
    CBX__BUF_LIT(o, "{\"role\":");
    put_cstr(o, role ? role : "user");
    CBX__BUF_LIT(o, ",\"content\":");
    put_cstr(o, content ? content : "");
    const json_t *tcs = json_object_get(m, "tool_calls");
    if (json_array_size(tcs)) {
        CBX__BUF_LIT(o, ",\"tool_calls\":[");
        size_t k;
        const json_t *tc;
        json_array_foreach(tcs, k, tc)
        {
            const json_t *fn = json_object_get(tc, "function");
            const char *args = json_string_value(json_object_get(fn, "arguments"));
            json_t *a = args ? json_loads(args, 0, NULL) : NULL;
            if (k)
                cbx__buf_put(o, ",", 1);
            CBX__BUF_LIT(o, "{\"function\":{\"name\":");
            put_json(o, json_object_get(fn, "name"));
            CBX__BUF_LIT(o, ",\"arguments\":");
            if (json_is_object(a))
                put_json(o, a);
            else
                CBX__BUF_LIT(o, "{}");
            CBX__BUF_LIT(o, "}}");
            json_decref(a);
        }
        cbx__buf_put(o, "]", 1);
    }
    const json_t *name = json_object_get(m, "name");
    if (role && strcmp(role, "tool") == 0 && json_is_string(name)) {
        CBX__BUF_LIT(o, ",\"tool_name\":");
        put_json(o, name);
    }
    cbx__buf_put(o, "}", 1);
}

/* The messages sent: system messages and those from cbx__llm_window_from on. */
static void put_messages(out *o, const llm_call *c, int ollama)
{
    size_t from = cbx__llm_window_from(c), n = json_array_size(c->messages);
    int first = 1;
    cbx__buf_put(o, "[", 1);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(c->messages, i);
        const char *role;
        if (i < from && (!(role = role_of(m)) || strcmp(role, "system") != 0))
            continue;
        if (!first)
            cbx__buf_put(o, ",", 1);
        first = 0;
        if (ollama)
            put_ollama_message(o, m);
        else
            put_json(o, m);
    }
    cbx__buf_put(o, "]", 1);
}

char *cbx__llm_request_text(const llm_call *c, const llm_provider *p, int stream, size_t *len)
{
    const json_t *par = json_object_get(c->params, "parameters");
    const json_t *rf = json_object_get(c->params, "response_format");
    int rf_json = json_is_string(rf) && strcmp(json_string_value(rf), "json") == 0;
    out o = {0};
    int first = 1;
    cbx__buf_put(&o, "{", 1);
    put_key(&o, "model", &first);
    put_cstr(&o, p->model);
    put_key(&o, "messages", &first);
    put_messages(&o, c, p->proto == LLM_OLLAMA);
    put_key(&o, "stream", &first);
    if (stream)
        CBX__BUF_LIT(&o, "true");
    else
        CBX__BUF_LIT(&o, "false");
    if (p->proto == LLM_OLLAMA) {
        const json_t *stop = json_object_get(par, "stop");
        static const char *const keys[][2] = {{"temperature", "temperature"},
                                              {"top_p", "top_p"},
                                              {"top_k", "top_k"},
                                              {"num_predict", "max_tokens"},
                                              {"seed", "seed"}};
        int any = (stop && !json_is_null(stop));
        for (size_t i = 0; i < 5 && !any; i++) {
            const json_t *v = json_object_get(par, keys[i][1]);
            any = v && !json_is_null(v);
        }
        if (any) {
            int ofirst = 1;
            put_key(&o, "options", &first);
            cbx__buf_put(&o, "{", 1);
            for (size_t i = 0; i < 5; i++)
                put_if(&o, keys[i][0], json_object_get(par, keys[i][1]), &ofirst);
            if (json_is_string(stop)) {
                put_key(&o, "stop", &ofirst);
                cbx__buf_put(&o, "[", 1);
                put_json(&o, stop);
                cbx__buf_put(&o, "]", 1);
            } else {
                put_if(&o, "stop", stop, &ofirst);
            }
            cbx__buf_put(&o, "}", 1);
        }
        if (rf_json) {
            put_key(&o, "format", &first);
            put_cstr(&o, "json");
        } else if (json_is_object(rf)) {
            put_key(&o, "format", &first);
            put_json(&o, rf);
        }
    } else {
        if (stream)
            CBX__BUF_LIT(&o, ",\"stream_options\":{\"include_usage\":true}");
        static const char *const keys[] = {"temperature", "top_p", "top_k",
                                           "max_tokens",  "stop",  "seed"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            put_if(&o, keys[i], json_object_get(par, keys[i]), &first);
        if (rf_json) {
            CBX__BUF_LIT(&o, ",\"response_format\":{\"type\":\"json_object\"}");
        } else if (json_is_object(rf)) {
            CBX__BUF_LIT(&o,
                         ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                         "\"response\",\"schema\":");
            put_json(&o, rf);
            CBX__BUF_LIT(&o, ",\"strict\":true}}");
        }
    }
    json_t *tools = cbx__llm_tools_wire(c);
    if (tools) {
        put_key(&o, "tools", &first);
        put_json(&o, tools);
        json_decref(tools);
    }
    cbx__buf_put(&o, "}", 1);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return o.p;
}
