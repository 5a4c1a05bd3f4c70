/* Streamed answers: OpenAI's server-sent events ("data: {chunk}" ... "data: [DONE]") and
 * Ollama's NDJSON (one object per line, the last with "done": true), assembled into one
 * llm_answer as they arrive: content deltas appended, tool-call deltas merged by index. */
#include "executors/llm/llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cbx__llm_stream_delta(llm_xfer *x, const char *kind, const char *text, size_t n)
{
    x->ans.events++;
    /* The answer's text leaves as it comes, as "tokens" chunks (cbx_task_emit), for a submitter
     * that takes them (cbx exec prints them live) and, bounded, for the journal; the whole
     * answer is still what the attempt reports. A chunk the runtime refuses (a queue 4 times
     * full: this is the loop thread, which must not wait) is only missing from the live
     * output. Tool-call arguments are not shown: the progress events say which tools run. */
    if (strcmp(kind, "content") == 0 && n && x->call && x->call->task)
        (void)cbx_task_emit(x->call->task, "tokens", text, n);
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *p = realloc(*buf, c);
    if (!p)
        return -1;
    *buf = p;
    *cap = c;
    return 0;
}

static int fail(llm_xfer *x, const char *what, const char *detail)
{
    snprintf(x->ans.error, sizeof x->ans.error, "malformed stream: %s%s%s (after %u events)", what,
             detail ? ": " : "", detail ? detail : "", x->ans.events);
    return -1;
}

/* The tool call at index i of the answer, made (empty) when new. */
static json_t *tool_at(llm_answer *a, size_t i)
{
    if (!a->tool_calls)
        a->tool_calls = json_array();
    if (i > 1024)
        return NULL;
    while (json_array_size(a->tool_calls) <= i) {
        char id[32];
        snprintf(id, sizeof id, "call_%zu", json_array_size(a->tool_calls));
        json_array_append_new(a->tool_calls,
                              json_pack("{s:s, s:s, s:s}", "id", id, "name", "", "arguments", ""));
    }
    return json_array_get(a->tool_calls, i);
}

static void append_str(json_t *o, const char *key, const char *s)
{
    const char *old = json_string_value(json_object_get(o, key));
    size_t a = old ? strlen(old) : 0, b = strlen(s);
    char *t = malloc(a + b + 1);
    if (!t)
        return;
    memcpy(t, old ? old : "", a);
    memcpy(t + a, s, b + 1);
    json_object_set_new(o, key, json_stringn(t, a + b));
    free(t);
}

/* ---- events read without a jansson tree (scan.c): the common ones, text deltas, the finish and
 * the usage. An event with tool calls or an error, or one the scanner is not sure of, goes to
 * the jansson readers below, which say the same about it as they always did. */

/* An integer, or 0 (as jansson's json_integer_value of anything else). */
static long long span_int(llm_span v)
{
    long long i;
    return cbx__llm_json_int(v, &i) == 0 ? i : 0;
}

/* A content delta: appended to the answer and handed on. -1 when out of memory. */
static int take_content(llm_xfer *x, llm_span v)
{
    const char *text;
    size_t n;
    if (v.n == 2)
        return 0; /* "": nothing (the answer stays without content until some comes) */
    if (cbx__llm_answer_append_span(&x->ans, v, &text, &n) < 0)
        return -1;
    if (n)
        cbx__llm_stream_delta(x, "content", text, n);
    return 0;
}

/* 1 when the event was read here, 0 when jansson must read it, -1 on failure (reported). */
static int openai_fast(llm_xfer *x, const char *data, size_t n)
{
    static const char *const top_keys[] = {"error", "choices", "model", "usage"};
    static const char *const choice_keys[] = {"delta", "finish_reason"};
    static const char *const delta_keys[] = {"tool_calls", "content"};
    static const char *const usage_keys[] = {"prompt_tokens", "completion_tokens"};
    llm_span v, top[4], ch = {0}, cf[2], df[2], uf[2];
    if (cbx__llm_json_check(data, n, &v) < 0 || v.p[0] != '{')
        return 0;
    unsigned t = cbx__llm_json_fields(v, top_keys, 4, top);
    if (t & 1)
        return 0; /* an error event */
    unsigned c = (t & 2) && cbx__llm_json_at(top[1], 0, &ch)
                     ? cbx__llm_json_fields(ch, choice_keys, 2, cf)
                     : 0;
    unsigned d = c & 1 ? cbx__llm_json_fields(cf[0], delta_keys, 2, df) : 0;
    if (d & 1)
        return 0; /* tool-call deltas */
    llm_answer *a = &x->ans;
    if ((t & 4) && LLM_IS_STR(top[2]))
        cbx__llm_span_copy(top[2], a->model, sizeof a->model);
    if ((t & 8) && top[3].p[0] == '{') {
        unsigned u = cbx__llm_json_fields(top[3], usage_keys, 2, uf);
        a->prompt_tokens = u & 1 ? span_int(uf[0]) : 0;
        a->completion_tokens = u & 2 ? span_int(uf[1]) : 0;
    }
    if ((d & 2) && LLM_IS_STR(df[1]) && take_content(x, df[1]) < 0)
        return fail(x, "out of memory", NULL);
    if ((c & 2) && LLM_IS_STR(cf[1]))
        cbx__llm_span_copy(cf[1], a->finish_reason, sizeof a->finish_reason);
    return 1;
}

static int openai_chunk(llm_xfer *x, const char *data, size_t n)
{
    llm_answer *a = &x->ans;
    if (n == 6 && memcmp(data, "[DONE]", 6) == 0) {
        a->done = 1;
        return 0;
    }
    int fast = openai_fast(x, data, n);
    if (fast != 0)
        return fast < 0 ? -1 : 0;
    json_error_t je;
    json_t *v = json_loadb(data, n, 0, &je);
    if (!json_is_object(v)) {
        json_decref(v);
        return fail(x, "an event that is not a JSON object", je.text);
    }
    const json_t *err = json_object_get(v, "error");
    if (err) {
        char m[200];
        const char *msg = json_string_value(json_object_get(err, "message"));
        snprintf(m, sizeof m, "%s", msg ? msg : "error event");
        json_decref(v);
        snprintf(a->error, sizeof a->error, "the stream reported an error: %s", m);
        return -1;
    }
    const char *model = json_string_value(json_object_get(v, "model"));
    if (model)
        snprintf(a->model, sizeof a->model, "%s", model);
    const json_t *u = json_object_get(v, "usage");
    if (json_is_object(u)) {
        a->prompt_tokens = json_integer_value(json_object_get(u, "prompt_tokens"));
        a->completion_tokens = json_integer_value(json_object_get(u, "completion_tokens"));
    }
    const json_t *ch = json_array_get(json_object_get(v, "choices"), 0);
    const json_t *d = json_object_get(ch, "delta");
    const char *content = json_string_value(json_object_get(d, "content"));
    if (content && *content) {
        size_t cn = strlen(content);
        if (cbx__llm_answer_append(a, content, cn) < 0) {
            json_decref(v);
            return fail(x, "out of memory", NULL);
        }
        cbx__llm_stream_delta(x, "content", content, cn);
    }
    size_t i;
    const json_t *tc;
    json_array_foreach(json_object_get(d, "tool_calls"), i, tc)
    {
        const json_t *idx = json_object_get(tc, "index");
        json_t *t = tool_at(a, json_is_integer(idx) ? (size_t)json_integer_value(idx) : i);
        if (!t) {
            json_decref(v);
            return fail(x, "a tool call index out of range", NULL);
        }
        const char *id = json_string_value(json_object_get(tc, "id"));
        if (id)
            json_object_set_new(t, "id", json_string(id));
        const json_t *fn = json_object_get(tc, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (name)
            append_str(t, "name", name);
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        if (args && *args) {
            append_str(t, "arguments", args);
            cbx__llm_stream_delta(x, "tool_arguments", args, strlen(args));
        }
    }
    const char *fin = json_string_value(json_object_get(ch, "finish_reason"));
    if (fin)
        snprintf(a->finish_reason, sizeof a->finish_reason, "%s", fin);
    json_decref(v);
    return 0;
}

static void ollama_done(llm_answer *a, const char *fin)
{
    a->done = 1;
    snprintf(a->finish_reason, sizeof a->finish_reason, "%s", fin ? fin : "stop");
    if (json_array_size(a->tool_calls) && strcmp(a->finish_reason, "stop") == 0)
        snprintf(a->finish_reason, sizeof a->finish_reason, "tool_calls");
}

/* As openai_fast, for a line of Ollama's NDJSON. */
static int ollama_fast(llm_xfer *x, const char *line, size_t n)
{
    static const char *const top_keys[] = {"error",       "message",           "model",     "done",
                                           "done_reason", "prompt_eval_count", "eval_count"};
    static const char *const msg_keys[] = {"tool_calls", "content"};
    llm_span v, top[7], mf[2];
    if (cbx__llm_json_check(line, n, &v) < 0 || v.p[0] != '{')
        return 0;
    unsigned t = cbx__llm_json_fields(v, top_keys, 7, top);
    if (t & 1)
        return 0; /* an error line */
    unsigned m = t & 2 ? cbx__llm_json_fields(top[1], msg_keys, 2, mf) : 0;
    if (m & 1)
        return 0; /* tool calls */
    llm_answer *a = &x->ans;
    if ((t & 4) && LLM_IS_STR(top[2]))
        cbx__llm_span_copy(top[2], a->model, sizeof a->model);
    if ((m & 2) && LLM_IS_STR(mf[1]))
        (void)take_content(x, mf[1]);
    if ((t & 8) && top[3].n == 4 && memcmp(top[3].p, "true", 4) == 0) {
        char fin[32];
        int has = (t & 16) && LLM_IS_STR(top[4]);
        if (has)
            cbx__llm_span_copy(top[4], fin, sizeof fin);
        ollama_done(a, has ? fin : NULL);
        a->prompt_tokens = t & 32 ? span_int(top[5]) : 0;
        a->completion_tokens = t & 64 ? span_int(top[6]) : 0;
    }
    return 1;
}

static int ollama_line(llm_xfer *x, const char *line, size_t n)
{
    llm_answer *a = &x->ans;
    int fast = ollama_fast(x, line, n);
    if (fast != 0)
        return fast < 0 ? -1 : 0;
    json_error_t je;
    json_t *v = json_loadb(line, n, 0, &je);
    if (!json_is_object(v)) {
        json_decref(v);
        return fail(x, "a line that is not a JSON object", je.text);
    }
    const json_t *err = json_object_get(v, "error");
    if (json_is_string(err)) {
        snprintf(a->error, sizeof a->error, "the stream reported an error: %s",
                 json_string_value(err));
        json_decref(v);
        return -1;
    }
    const char *model = json_string_value(json_object_get(v, "model"));
    if (model)
        snprintf(a->model, sizeof a->model, "%s", model);
    const json_t *msg = json_object_get(v, "message");
    const char *content = json_string_value(json_object_get(msg, "content"));
    if (content && *content) {
        size_t cn = strlen(content);
        cbx__llm_answer_append(a, content, cn);
        cbx__llm_stream_delta(x, "content", content, cn);
    }
    size_t i;
    const json_t *tc;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc)
    {
        const json_t *fn = json_object_get(tc, "function");
        json_t *t = tool_at(a, json_array_size(a->tool_calls));
        const char *name = json_string_value(json_object_get(fn, "name"));
        char *args = json_dumps(json_object_get(fn, "arguments") ? json_object_get(fn, "arguments")
                                                                 : json_object(),
                                JSON_COMPACT | JSON_ENCODE_ANY);
        if (t) {
            json_object_set_new(t, "name", json_string(name ? name : ""));
            json_object_set_new(t, "arguments", json_string(args ? args : "{}"));
        }
        if (args)
            cbx__llm_stream_delta(x, "tool_arguments", args, strlen(args));
        free(args);
    }
    if (json_is_true(json_object_get(v, "done"))) {
        ollama_done(a, json_string_value(json_object_get(v, "done_reason")));
        a->prompt_tokens = json_integer_value(json_object_get(v, "prompt_eval_count"));
        a->completion_tokens = json_integer_value(json_object_get(v, "eval_count"));
    }
    json_decref(v);
    return 0;
}

/* One complete line (without its \n, a trailing \r dropped). */
static int on_line(llm_xfer *x, const char *line, size_t n)
{
    if (n && line[n - 1] == '\r')
        n--;
    llm_proto proto = x->call->providers[x->call->provider].proto;
    if (proto == LLM_OLLAMA)
        return n ? ollama_line(x, line, n) : 0;
    if (n == 0) { /* the end of an event */
        if (x->event_len == 0)
            return 0;
        int r = openai_chunk(x, x->event_data, x->event_len);
        x->event_len = 0;
        return r;
    }
    if (line[0] == ':')
        return 0; /* a comment (keep-alive) */
    if (n >= 5 && memcmp(line, "data:", 5) == 0) {
        const char *d = line + 5;
        size_t dn = n - 5;
        if (dn && *d == ' ')
            d++, dn--;
        size_t sep = x->event_len ? 1 : 0;
        if (grow(&x->event_data, &x->event_cap, x->event_len + sep + dn + 1) < 0)
            return fail(x, "out of memory", NULL);
        if (sep)
            x->event_data[x->event_len++] = '\n';
        memcpy(x->event_data + x->event_len, d, dn);
        x->event_len += dn;
        return 0;
    }
    return 0; /* event:, id:, retry: - nothing for us */
}

int cbx__llm_stream_feed(llm_xfer *x, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (x->line_len == 0 && nl) {
            if (on_line(x, p, take) < 0)
                return -1;
        } else {
            if (grow(&x->line, &x->line_cap, x->line_len + take + 1) < 0)
                return fail(x, "out of memory", NULL);
            memcpy(x->line + x->line_len, p, take);
            x->line_len += take;
            if (x->line_len > (8u << 20))
                return fail(x, "a line longer than 8 MiB", NULL);
            if (nl) {
                int r = on_line(x, x->line, x->line_len);
                x->line_len = 0;
                if (r < 0)
                    return -1;
            }
        }
        if (!nl)
            break;
        p += take + 1;
        n -= take + 1;
    }
    return 0;
}

void cbx__llm_stream_end(llm_xfer *x)
{
    if (x->ans.error[0])
        return;
    if (x->line_len) { /* a last line without its newline */
        if (on_line(x, x->line, x->line_len) < 0)
            return;
        x->line_len = 0;
    }
    if (x->event_len && on_line(x, "", 0) < 0)
        return;
    llm_answer *a = &x->ans;
    if (!a->done && a->finish_reason[0] &&
        x->call->providers[x->call->provider].proto == LLM_OPENAI)
        a->done = 1; /* every choice finished; only the [DONE] marker is missing */
    if (!a->done)
        snprintf(a->error, sizeof a->error,
                 "truncated stream: it ended after %u events without its last one (%s)", a->events,
                 x->call->providers[x->call->provider].proto == LLM_OLLAMA
                     ? "\"done\": true"
                     : "finish_reason or [DONE]");
    if (!a->finish_reason[0])
        snprintf(a->finish_reason, sizeof a->finish_reason, "%s",
                 json_array_size(a->tool_calls) ? "tool_calls" : "stop");
}
