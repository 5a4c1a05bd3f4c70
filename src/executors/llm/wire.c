/* The two wire protocols' plain responses (OpenAI chat completions and Ollama /api/chat) and
 * error bodies, and the answer they fill. The request bodies are body.c's. */
#define _GNU_SOURCE
#include "executors/llm/llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cbx__llm_answer_clear(llm_answer *a)
{
    free(a->content);
    json_decref(a->tool_calls);
    memset(a, 0, sizeof *a);
}

/* Room in a's content for n more bytes and the NUL: 0, or -1 (out of memory; a unchanged). */
static int answer_room(llm_answer *a, size_t n)
{
    if (a->len + n + 1 <= a->cap)
        return 0;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < a->len + n + 1)
        cap *= 2;
    char *p = realloc(a->content, cap);
    if (!p)
        return -1;
    a->content = p;
    a->cap = cap;
    return 0;
}

int cbx__llm_answer_append(llm_answer *a, const char *s, size_t n)
{
    if (answer_room(a, n) < 0)
        return -1;
    memcpy(a->content + a->len, s, n);
    a->len += n;
    a->content[a->len] = 0;
    return 0;
}

int cbx__llm_answer_append_span(llm_answer *a, llm_span v, const char **text, size_t *n)
{
    if (answer_room(a, v.n) < 0)
        return -1;
    *text = a->content + a->len;
    *n = cbx__llm_json_decode(v, a->content + a->len);
    a->len += *n;
    return 0;
}

void cbx__llm_span_copy(llm_span v, char *buf, size_t len)
{
    char small[256];
    char *tmp = v.n <= sizeof small ? small : malloc(v.n);
    if (!tmp) {
        buf[0] = 0;
        return;
    }
    size_t n = cbx__llm_json_decode(v, tmp);
    if (n >= len)
        n = len - 1;
    memcpy(buf, tmp, n);
    buf[n] = 0;
    if (tmp != small)
        free(tmp);
}

/* ---- plain responses ---------------------------------------------------------------------------
 */

static long long int_of(const json_t *v)
{
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* Add tool calls in OpenAI's message shape ({id, function: {name, arguments}}) or Ollama's
 * ({function: {name, arguments: object}}) to a->tool_calls as {id, name, arguments(string)}. */
static void take_tool_calls(llm_answer *a, const json_t *tcs)
{
    size_t i;
    const json_t *tc;
    json_array_foreach(tcs, i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        const json_t *args = json_object_get(fn, "arguments");
        char *text = json_is_string(args) ? strdup(json_string_value(args))
                                          : json_dumps(args ? args : json_object(), JSON_COMPACT);
        const char *id = json_string_value(json_object_get(tc, "id"));
        char gen[32];
        if (!id) {
            snprintf(gen, sizeof gen, "call_%zu", json_array_size(a->tool_calls));
            id = gen;
        }
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_array_append_new(a->tool_calls,
                              json_pack("{s:s, s:s, s:s}", "id", id, "name", name ? name : "",
                                        "arguments", text ? text : "{}"));
        free(text);
    }
}

static long long span_int(llm_span v)
{
    long long i;
    return cbx__llm_json_int(v, &i) == 0 ? i : 0;
}

/* A plain answer without tool calls, read without a jansson tree (scan.c): 1, or 0 when the
 * jansson reader below must read it (tool calls, a shape it reports, a text the scanner is not
 * sure of), or -1 when out of memory. */
static int plain_fast(llm_proto proto, const char *body, size_t len, llm_answer *a)
{
    static const char *const oa_keys[] = {"choices", "usage", "model"};
    static const char *const choice_keys[] = {"message", "finish_reason"};
    static const char *const usage_keys[] = {"prompt_tokens", "completion_tokens"};
    static const char *const ol_keys[] = {"message", "done_reason", "model", "prompt_eval_count",
                                          "eval_count"};
    static const char *const msg_keys[] = {"tool_calls", "content"};
    llm_span v, top[5], ch, cf[2], uf[2], mf[2], msg = {0}, fin = {0}, model = {0};
    if (!body || cbx__llm_json_check(body, len, &v) < 0 || v.p[0] != '{')
        return 0;
    long long pt = 0, ct = 0;
    if (proto == LLM_OLLAMA) {
        unsigned t = cbx__llm_json_fields(v, ol_keys, 5, top);
        if (t & 1)
            msg = top[0];
        if (t & 2)
            fin = top[1];
        if (t & 4)
            model = top[2];
        pt = t & 8 ? span_int(top[3]) : 0;
        ct = t & 16 ? span_int(top[4]) : 0;
    } else {
        unsigned t = cbx__llm_json_fields(v, oa_keys, 3, top);
        unsigned c = (t & 1) && cbx__llm_json_at(top[0], 0, &ch)
                         ? cbx__llm_json_fields(ch, choice_keys, 2, cf)
                         : 0;
        if (c & 1)
            msg = cf[0];
        if (c & 2)
            fin = cf[1];
        if (t & 4)
            model = top[2];
        unsigned u = t & 2 ? cbx__llm_json_fields(top[1], usage_keys, 2, uf) : 0;
        pt = u & 1 ? span_int(uf[0]) : 0;
        ct = u & 2 ? span_int(uf[1]) : 0;
    }
    unsigned m = msg.p ? cbx__llm_json_fields(msg, msg_keys, 2, mf) : 0;
    if (!msg.p || msg.p[0] != '{' || (m & 1))
        return 0;
    if (!a->tool_calls)
        a->tool_calls = json_array();
    if (model.p && LLM_IS_STR(model))
        cbx__llm_span_copy(model, a->model, sizeof a->model);
    if (fin.p && LLM_IS_STR(fin))
        cbx__llm_span_copy(fin, a->finish_reason, sizeof a->finish_reason);
    else
        snprintf(a->finish_reason, sizeof a->finish_reason, "stop");
    a->prompt_tokens = pt;
    a->completion_tokens = ct;
    const char *text;
    size_t n;
    if ((m & 2) && LLM_IS_STR(mf[1]) && cbx__llm_answer_append_span(a, mf[1], &text, &n) < 0)
        return -1;
    a->done = 1;
    return 1;
}

int cbx__llm_parse_plain(llm_proto proto, const char *body, size_t len, llm_answer *a)
{
    int fast = plain_fast(proto, body, len, a);
    if (fast != 0)
        return fast > 0 ? 0 : -1;
    json_error_t je;
    json_t *v = json_loadb(body, len, 0, &je);
    if (!json_is_object(v)) {
        snprintf(a->error, sizeof a->error, "malformed response: %s",
                 v ? "not a JSON object" : je.text);
        json_decref(v);
        return -1;
    }
    if (!a->tool_calls)
        a->tool_calls = json_array();
    const json_t *msg;
    const char *model = json_string_value(json_object_get(v, "model"));
    if (model)
        snprintf(a->model, sizeof a->model, "%s", model);
    const char *fin;
    if (proto == LLM_OLLAMA) {
        msg = json_object_get(v, "message");
        fin = json_string_value(json_object_get(v, "done_reason"));
        a->prompt_tokens = int_of(json_object_get(v, "prompt_eval_count"));
        a->completion_tokens = int_of(json_object_get(v, "eval_count"));
    } else {
        const json_t *ch = json_array_get(json_object_get(v, "choices"), 0);
        msg = json_object_get(ch, "message");
        fin = json_string_value(json_object_get(ch, "finish_reason"));
        const json_t *u = json_object_get(v, "usage");
        a->prompt_tokens = int_of(json_object_get(u, "prompt_tokens"));
        a->completion_tokens = int_of(json_object_get(u, "completion_tokens"));
    }
    if (!json_is_object(msg)) {
        snprintf(a->error, sizeof a->error, "malformed response: no %s",
                 proto == LLM_OLLAMA ? "message" : "choices[0].message");
        json_decref(v);
        return -1;
    }
    const char *content = json_string_value(json_object_get(msg, "content"));
    if (content && cbx__llm_answer_append(a, content, strlen(content)) < 0) {
        json_decref(v);
        return -1;
    }
    take_tool_calls(a, json_object_get(msg, "tool_calls"));
    if (fin)
        snprintf(a->finish_reason, sizeof a->finish_reason, "%s", fin);
    else
        snprintf(a->finish_reason, sizeof a->finish_reason, "%s",
                 json_array_size(a->tool_calls) ? "tool_calls" : "stop");
    if (proto == LLM_OLLAMA && json_array_size(a->tool_calls) &&
        strcmp(a->finish_reason, "stop") == 0)
        snprintf(a->finish_reason, sizeof a->finish_reason, "tool_calls");
    a->done = 1;
    json_decref(v);
    return 0;
}

void cbx__llm_error_message(const char *body, size_t len, char *buf, size_t blen)
{
    buf[0] = 0;
    json_t *v = body ? json_loadb(body, len, 0, NULL) : NULL;
    const json_t *e = json_object_get(v, "error");
    const char *m =
        json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    const char *code = json_string_value(json_object_get(e, "code"));
    if (m && code)
        snprintf(buf, blen, "%s (%s)", m, code);
    else if (m)
        snprintf(buf, blen, "%s", m);
    else if (body && len)
        snprintf(buf, blen, "%.*s", (int)(len > 200 ? 200 : len), body);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_decref(v);
}
