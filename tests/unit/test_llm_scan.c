/* The llm executor's JSON scanner (src/executors/llm/scan.c) beside jansson: a text the scanner
 * accepts must be one jansson reads, and every value found through it must be the value jansson
 * finds; the texts it is not sure of must be refused (jansson then reads them). And the request
 * body written as text (body.c) must be what jansson's compact dump of the same tree gives. */
#include "executors/llm/llm.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compare the scanner's view of span s with jansson's value j, recursively. */
static void same(llm_span s, const json_t *j, const char *where)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        cr_assert_eq(s.p[0], '{', "%s: not an object in the scan", where);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            llm_span f;
            cr_assert(cbx__llm_json_get(s, k, &f), "%s: key '%s' not found", where, k);
            char w[300];
            snprintf(w, sizeof w, "%s.%s", where, k);
            same(f, v, w);
        }
        llm_span none;
        cr_assert_not(cbx__llm_json_get(s, "no such key here", &none));
        break;
    }
    case JSON_ARRAY: {
        cr_assert_eq(s.p[0], '[', "%s: not an array in the scan", where);
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            llm_span f;
            cr_assert(cbx__llm_json_at(s, i, &f), "%s[%zu] not found", where, i);
            char w[300];
            snprintf(w, sizeof w, "%s[%zu]", where, i);
            same(f, v, w);
        }
        llm_span none;
        cr_assert_not(cbx__llm_json_at(s, json_array_size(j), &none), "%s: too many", where);
        break;
    }
    case JSON_STRING: {
        cr_assert(LLM_IS_STR(s), "%s: not a string in the scan", where);
        char *buf = malloc(s.n);
        size_t n = cbx__llm_json_decode(s, buf);
        cr_assert_eq(n, json_string_length(j), "%s: length %zu, jansson %zu", where, n,
                     json_string_length(j));
        cr_assert_eq(memcmp(buf, json_string_value(j), n), 0, "%s: '%s' vs '%s'", where, buf,
                     json_string_value(j));
        free(buf);
        break;
    }
    case JSON_INTEGER: {
        long long v = 0;
        cr_assert_eq(cbx__llm_json_int(s, &v), 0, "%s: not an integer in the scan", where);
        cr_assert_eq(v, (long long)json_integer_value(j), "%s", where);
        break;
    }
    case JSON_REAL: {
        long long v;
        cr_assert_neq(cbx__llm_json_int(s, &v), 0, "%s: a real read as an integer", where);
        break;
    }
    case JSON_TRUE:
        cr_assert(s.n == 4 && memcmp(s.p, "true", 4) == 0, "%s", where);
        break;
    case JSON_FALSE:
        cr_assert(s.n == 5 && memcmp(s.p, "false", 5) == 0, "%s", where);
        break;
    default:
        cr_assert(s.n == 4 && memcmp(s.p, "null", 4) == 0, "%s", where);
    }
}

/* If the scanner accepts text, jansson must, and agree on every value. 1 when accepted. */
static int agree(const char *text, size_t n)
{
    llm_span s;
    if (cbx__llm_json_check(text, n, &s) != 0)
        return 0;
    json_error_t je;
    json_t *j = json_loadb(text, n, 0, &je);
    cr_assert_not_null(j, "the scanner accepted what jansson refuses (%s): %.*s", je.text, (int)n,
                       text);
    same(s, j, "$");
    json_decref(j);
    return 1;
}

static const char *const corpus[] = {
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Circuit \"},"
    "\"finish_reason\":null}]}",
    "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":17,"
    "\"total_tokens\":47}}",
    "{\"model\":\"llama3.2\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":"
    "\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\","
    "\"prompt_eval_count\":26,\"eval_count\":-3,\"total_duration\":1.5}",
    " { \"a\" : [ 1 , -0 , 0.25 , true , false , null , \"\" , { } , [ ] ] ,\n\t\"b\":\"\\\"\\\\"
    "\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\" } ",
    "{\"k\":1,\"k\":\"last wins\",\"nested\":{\"k\":{\"k\":[[[{\"deep\":\"\\\\\\\"\"}]]]}}}",
    "[{\"a\":\"]}\\\"{[\"},\"\\\\\",123456789012345678,-123456789012345678]",
};

Test(llm_scan, accepts_what_jansson_reads_and_agrees_on_every_value)
{
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++)
        cr_assert(agree(corpus[i], strlen(corpus[i])), "refused: %s", corpus[i]);
}

Test(llm_scan, refuses_what_it_is_not_sure_of)
{
    static const char *const unsure[] = {
        "{\"a\":1e3}",                 /* exponents: jansson's range checks */
        "{\"a\":1234567890123456789}", /* 19 digits: maybe too big for jansson */
        "{\"a\":\"\\u0000\"}",         /* NUL inside a string */
        "{\"\\u0061\":1}",             /* an escaped key */
        "{\"a\":\"\xff\"}",            /* not UTF-8 */
        "{\"a\":\"\xc0\xaf\"}",        /* overlong UTF-8 */
        "{\"a\":\"\xed\xa0\x80\"}",    /* a surrogate in UTF-8 */
        "{\"a\":\"\\ud800\"}",         /* a lone high surrogate */
        "{\"a\":\"\\udc00\"}",         /* a lone low surrogate */
        "{\"a\":\"\\x\"}",             /* an unknown escape */
        "{\"a\":\"tab\there\"}",       /* a raw control character */
        "{\"a\":01}",                  /* a leading zero */
        "{\"a\":1.}",                  /* no fraction digits */
        "{\"a\":-}",                   /* no digits */
        "{\"a\":tru}",                 /* a cut literal */
        "{\"a\":1,}",                  /* a trailing comma */
        "{\"a\" 1}",                   /* no colon */
        "{\"a\":1} x",                 /* something after the value */
        "\"just a string\"",           /* not an object or an array */
        "{\"a\":1",                    /* cut */
        "",
    };
    for (size_t i = 0; i < sizeof unsure / sizeof unsure[0]; i++) {
        llm_span s;
        cr_assert_neq(cbx__llm_json_check(unsure[i], strlen(unsure[i]), &s), 0, "accepted: %s",
                      unsure[i]);
    }
    /* nesting deeper than the scanner goes */
    char deep[300];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    llm_span s;
    cr_assert_neq(cbx__llm_json_check(deep, n, &s), 0);
}

/* Every prefix of every text of the corpus, and every text with one byte changed to each of a
 * set of bytes that matter to JSON: whatever the scanner accepts, jansson reads the same. */
Test(llm_scan, cut_and_damaged_texts_never_read_differently)
{
    static const char bytes[] = "\"\\{}[]:,0-.e \x01\x80\xc3\xa9nu";
    size_t accepted = 0, tried = 0;
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        size_t n = strlen(corpus[i]);
        char *t = malloc(n + 1);
        for (size_t cut = 0; cut < n; cut++) {
            accepted += (size_t)agree(corpus[i], cut);
            tried++;
        }
        for (size_t at = 0; at < n; at++)
            for (size_t b = 0; b < sizeof bytes - 1; b++) {
                memcpy(t, corpus[i], n + 1);
                t[at] = bytes[b];
                accepted += (size_t)agree(t, n);
                tried++;
            }
        free(t);
    }
    cr_assert_gt(accepted, 100, "%zu of %zu accepted: the comparison compared nothing", accepted,
                 tried);
}

/* ---- request bodies ---- */

static char *body_of(const json_t *params, const json_t *messages, llm_proto proto, int stream)
{
    llm_call c;
    memset(&c, 0, sizeof c);
    c.params = params;
    c.messages = (json_t *)messages;
    llm_provider p = {.proto = proto, .model = "m-1"};
    size_t len = 0;
    char *t = cbx__llm_request_text(&c, &p, stream, &len);
    cr_assert_not_null(t);
    cr_assert_eq(strlen(t), len);
    return t;
}

static void same_text(char *got, json_t *want)
{
    char *w = json_dumps(want, JSON_COMPACT);
    cr_assert_str_eq(got, w);
    free(w);
    free(got);
    json_decref(want);
}

Test(llm_scan, request_bodies_are_janssons_compact_dump_of_the_same_tree)
{
    json_t *msgs = json_pack(
        "[{s:s, s:s}, {s:s, s:s}, {s:s, s:n, s:[{s:s, s:s, s:{s:s, s:s}}]}, {s:s, s:s, s:s, s:s}]",
        "role", "system", "content", "sys \"quoted\" \\ \x01 caf\xc3\xa9 \xf0\x9f\x98\x80\n",
        "role", "user", "content", "q\t/", "role", "assistant", "content", "tool_calls", "id", "c1",
        "type", "function", "function", "name", "dir", "arguments", "{\"path\":\"/tmp\"}", "role",
        "tool", "tool_call_id", "c1", "name", "dir", "content", "a b");
    json_t *params = json_pack("{s:{s:f, s:f, s:i, s:i, s:s, s:i}, s:{s:s, s:{s:{s:s}}}}",
                               "parameters", "temperature", 0.2, "top_p", 1.0, "top_k", 20,
                               "max_tokens", 9, "stop", "END", "seed", 7, "response_format", "type",
                               "object", "properties", "a", "type", "string");
    const json_t *par = json_object_get(params, "parameters");
    const json_t *rf = json_object_get(params, "response_format");

    /* OpenAI, streamed: as wire.c built it before it was written as text */
    json_t *want = json_pack("{s:s, s:O, s:b, s:{s:b}}", "model", "m-1", "messages", msgs, "stream",
                             1, "stream_options", "include_usage", 1);
    const char *keys[] = {"temperature", "top_p", "top_k", "max_tokens", "stop", "seed"};
    for (size_t i = 0; i < 6; i++)
        json_object_set(want, keys[i], json_object_get(par, keys[i]));
    json_object_set_new(want, "response_format",
                        json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema", "json_schema",
                                  "name", "response", "schema", rf, "strict", 1));
    same_text(body_of(params, msgs, LLM_OPENAI, 1), want);

    /* Ollama, plain: messages translated, options renamed, stop as a list, format */
    json_t *om = json_pack(
        "[{s:s, s:s}, {s:s, s:s}, {s:s, s:s, s:[{s:{s:s, s:{s:s}}}]}, {s:s, s:s, s:s}]", "role",
        "system", "content", "sys \"quoted\" \\ \x01 caf\xc3\xa9 \xf0\x9f\x98\x80\n", "role",
        "user", "content", "q\t/", "role", "assistant", "content", "", "tool_calls", "function",
        "name", "dir", "arguments", "path", "/tmp", "role", "tool", "content", "a b", "tool_name",
        "dir");
    want = json_pack("{s:s, s:o, s:b, s:{s:O, s:O, s:O, s:O, s:O, s:[O]}, s:O}", "model", "m-1",
                     "messages", om, "stream", 0, "options", "temperature",
                     json_object_get(par, "temperature"), "top_p", json_object_get(par, "top_p"),
                     "top_k", json_object_get(par, "top_k"), "num_predict",
                     json_object_get(par, "max_tokens"), "seed", json_object_get(par, "seed"),
                     "stop", json_object_get(par, "stop"), "format", rf);
    same_text(body_of(params, msgs, LLM_OLLAMA, 0), want);

    /* no parameters, response_format json */
    json_t *p2 = json_pack("{s:s}", "response_format", "json");
    want = json_pack("{s:s, s:O, s:b, s:{s:s}}", "model", "m-1", "messages", msgs, "stream", 0,
                     "response_format", "type", "json_object");
    same_text(body_of(p2, msgs, LLM_OPENAI, 0), want);
    json_decref(p2);
    json_decref(params);
    json_decref(msgs);
}
