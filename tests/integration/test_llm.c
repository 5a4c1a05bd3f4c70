/* The llm executor through the runtime against fake_llm (tests/helpers/fake_llm.c), a scripted
 * model server on loopback speaking the OpenAI and Ollama wire protocols. Each test writes the
 * script of answers, starts the server, runs the executor and reads back what the server was
 * sent from its request record. */
#define _GNU_SOURCE
#include "cbx/breaker_store.h"
#include "cbx/journal.h"
#include "cbx/llm.h"
#include "cbx/policy.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

typedef struct server {
    pid_t pid;
    int port;
    char url[64];
    char record[256];
} server;

static char tmpdir[128];
static int nservers;

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cbx-llm-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    cbx_llm_settings_set(NULL, NULL);
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

/* Start fake_llm with the given script (JSON text). */
static server start(const char *script)
{
    server s = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/script%d.json", tmpdir, nservers);
    snprintf(s.record, sizeof s.record, "%s/record%d.jsonl", tmpdir, nservers++);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(script, f);
    fclose(f);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = {CBX_TEST_BIN_DIR "/fake_llm", "--script", path, "--record", s.record,
                    "--die-with-parent",          NULL};
    cr_assert_eq(posix_spawn(&s.pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    cr_assert(fscanf(in, "%d", &s.port) == 1 && s.port > 0, "fake_llm did not start");
    fclose(in);
    snprintf(s.url, sizeof s.url, "http://127.0.0.1:%d", s.port);
    return s;
}

static void stop(server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = -1;
    }
}

/* The requests the server got, as an array of {n, method, path, authorization, body}. */
static json_t *requests(const server *s)
{
    json_t *out = json_array();
    FILE *f = fopen(s->record, "r");
    if (!f)
        return out;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0)
        json_array_append_new(out, json_loads(line, 0, NULL));
    free(line);
    fclose(f);
    return out;
}

static cbx_policy *policy(const char *json)
{
    if (!json)
        return NULL;
    json_t *b = json_loads(json, 0, NULL);
    cr_assert_not_null(b, "bad policy JSON: %s", json);
    cbx_err err;
    cbx_err_clear(&err);
    cbx_policy *p;
    cr_assert_eq(cbx_policy_new_json(&p, b, NULL, &err), 0, "%s", err.msg);
    json_decref(b);
    return p;
}

/* Run llm with params (JSON text, printf-style) on rt (a fresh one when NULL). */
static int run_on(cbx_runtime *rt, const char *pol, cbx_result *r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int run_on(cbx_runtime *rt, const char *pol, cbx_result *r, const char *fmt, ...)
{
    char *text;
    va_list ap;
    va_start(ap, fmt);
    cr_assert_geq(vasprintf(&text, fmt, ap), 0);
    va_end(ap);
    json_error_t je;
    json_t *p = json_loads(text, 0, &je);
    cr_assert_not_null(p, "bad params JSON (%s): %s", je.text, text);
    free(text);
    int own = rt == NULL;
    if (own)
        cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.max_concurrent = 1}, NULL), 0);
    cbx_policy *po = policy(pol);
    cbx_diag d = {0};
    /* a task is the agent's */
    const char *type = json_object_get(p, "task") ? "agent" : "llm";
    int rc =
        cbx_runtime_execute(rt, &(cbx_request){.executor = type, .params = p, .policy = po}, r, &d);
    if (d.n)
        snprintf(r->error, sizeof r->error, "%.60s: %.250s", d.items[0].where, d.items[0].msg);
    cbx_diag_clear(&d);
    if (own)
        cbx_runtime_free(rt);
    cbx_policy_free(po);
    json_decref(p);
    return rc;
}

#define out_str(r, k) json_string_value(json_object_get((r)->outputs, k))

TestSuite(llm, .init = setup, .fini = teardown, .timeout = 120);

/* ---- both protocols, plain and streamed --------------------------------------------------------
 */

Test(llm, openai_plain_sends_the_conversation_and_reads_usage)
{
    server s = start("{\"turns\": [{\"content\": \"Paris.\", \"usage\": {\"prompt_tokens\": 12, "
                     "\"completion_tokens\": 2}}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o-mini\", \"base_url\": \"%s/v1\", \"api_key\": \"sk-t\", "
                    "\"system_prompt\": \"Be brief.\", \"input\": \"Capital of France?\", "
                    "\"parameters\": {\"temperature\": 0.2, \"top_p\": 0.9, \"max_tokens\": 50, "
                    "\"seed\": 7, \"stop\": [\"\\n\"]}}",
                    s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "content"), "Paris.");
    cr_assert_str_eq(out_str(&r, "finish_reason"), "stop");
    cr_assert_str_eq(out_str(&r, "model"), "gpt-4o-mini");
    json_t *u = json_object_get(r.outputs, "usage");
    cr_assert_eq(json_integer_value(json_object_get(u, "prompt_tokens")), 12);
    cr_assert_eq(json_integer_value(json_object_get(u, "completion_tokens")), 2);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 1);
    json_t *q = json_array_get(reqs, 0);
    cr_assert_str_eq(json_string_value(json_object_get(q, "path")), "/v1/chat/completions");
    cr_assert_str_eq(json_string_value(json_object_get(q, "authorization")), "Bearer sk-t");
    json_t *b = json_object_get(q, "body");
    cr_assert_str_eq(json_string_value(json_object_get(b, "model")), "gpt-4o-mini");
    cr_assert(json_is_false(json_object_get(b, "stream")));
    cr_assert_eq(json_integer_value(json_object_get(b, "max_tokens")), 50);
    cr_assert_eq(json_integer_value(json_object_get(b, "seed")), 7);
    cr_assert_float_eq(json_number_value(json_object_get(b, "temperature")), 0.2, 1e-9);
    json_t *msgs = json_object_get(b, "messages");
    cr_assert_eq(json_array_size(msgs), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "role")), "system");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
                     "Capital of France?");
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, openai_stream_assembles_content_and_tool_call_deltas)
{
    /* round 1: a streamed tool call (its arguments in 2-byte pieces); round 2: streamed text */
    server s = start("{\"turns\": ["
                     "{\"tool_calls\": [{\"id\": \"call_a\", \"name\": \"say\", \"arguments\": "
                     "{\"argv\": [\"echo\", \"streamed tool\"]}}], \"chunk_chars\": 2},"
                     "{\"content\": \"The tool said: streamed tool\", \"chunk_chars\": 3}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"go\", "
                    "\"stream\": true, \"tools\": [{\"name\": \"say\", \"executor\": "
                    "\"command\", \"description\": \"run a program\"}]}",
                    s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "content"), "The tool said: streamed tool");
    json_t *calls = json_object_get(r.outputs, "tool_calls");
    cr_assert_eq(json_array_size(calls), 1);
    json_t *c0 = json_array_get(calls, 0);
    cr_assert(json_is_true(json_object_get(c0, "ok")));
    cr_assert_str_eq(json_string_value(json_object_get(c0, "id")), "call_a");
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 2);
    json_t *b2 = json_object_get(json_array_get(reqs, 1), "body");
    cr_assert(json_is_true(json_object_get(b2, "stream")));
    cr_assert(
        json_is_true(json_object_get(json_object_get(b2, "stream_options"), "include_usage")));
    json_t *msgs = json_object_get(b2, "messages");
    json_t *asst = json_array_get(msgs, 1);
    json_t *fn =
        json_object_get(json_array_get(json_object_get(asst, "tool_calls"), 0), "function");
    cr_assert_str_eq(json_string_value(json_object_get(fn, "arguments")),
                     "{\"argv\":[\"echo\",\"streamed tool\"]}");
    json_t *tool = json_array_get(msgs, 2);
    cr_assert_str_eq(json_string_value(json_object_get(tool, "tool_call_id")), "call_a");
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(tool, "content")), "streamed tool\\n"));
    /* the tool schema the model saw is the command type's */
    json_t *t0 = json_array_get(json_object_get(b2, "tools"), 0);
    cr_assert_not_null(json_object_get(
        json_object_get(json_object_get(json_object_get(t0, "function"), "parameters"),
                        "properties"),
        "argv"));
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, ollama_plain_and_ndjson_stream)
{
    server s = start("{\"turns\": [{\"content\": \"plain answer\", \"usage\": {\"prompt_tokens\": "
                     "5, \"completion_tokens\": 3}}, {\"content\": \"streamed answer\", "
                     "\"usage\": {\"prompt_tokens\": 6, \"completion_tokens\": 4}}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"llama3.2\", \"ollama_base_url\": \"%s\", \"input\": \"hi\", "
                    "\"parameters\": {\"top_k\": 20, \"max_tokens\": 9}, \"response_format\": "
                    "\"text\"}",
                    s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "content"), "plain answer");
    cr_assert_eq(json_integer_value(
                     json_object_get(json_object_get(r.outputs, "usage"), "completion_tokens")),
                 3);
    cbx_result_clear(&r);
    rc = run_on(NULL, NULL, &r,
                "{\"model\": \"llama3.2\", \"ollama_base_url\": \"%s\", \"input\": \"hi\", "
                "\"stream\": true}",
                s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "content"), "streamed answer");
    cr_assert_eq(
        json_integer_value(json_object_get(json_object_get(r.outputs, "usage"), "prompt_tokens")),
        6);
    json_t *reqs = requests(&s);
    json_t *b1 = json_object_get(json_array_get(reqs, 0), "body");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(reqs, 0), "path")),
                     "/api/chat");
    cr_assert(json_is_false(json_object_get(b1, "stream")));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(b1, "options"), "top_k")), 20);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(b1, "options"), "num_predict")),
                 9);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(reqs, 0), "authorization")),
                     "");
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, ollama_tool_call_with_object_arguments)
{
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"say\", \"arguments\": "
                     "{\"word\": \"ndjson\"}}]}, {\"content\": \"ok\"}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"mistral-small\", \"ollama_base_url\": \"%s\", \"input\": \"x\","
                    " \"stream\": true, \"tools\": [{\"name\": \"say\", \"executor\": "
                    "\"command\", \"params\": {\"argv\": [\"echo\", \"{{ args.word }}\"]}, "
                    "\"arguments\": {\"type\": \"object\", \"properties\": {\"word\": {\"type\": "
                    "\"string\"}}, \"required\": [\"word\"]}}]}",
                    s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    json_t *reqs = requests(&s);
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    json_t *asst = json_array_get(msgs, 1);
    json_t *args = json_object_get(
        json_object_get(json_array_get(json_object_get(asst, "tool_calls"), 0), "function"),
        "arguments");
    cr_assert(json_is_object(args), "Ollama takes tool arguments as an object");
    json_t *tool = json_array_get(msgs, 2);
    cr_assert_str_eq(json_string_value(json_object_get(tool, "tool_name")), "say");
    cr_assert_not_null(strstr(json_string_value(json_object_get(tool, "content")), "ndjson\\n"));
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

/* ---- provider detection -------------------------------------------------------------------------
 */

Test(llm, provider_detection_by_prefix_table)
{
    cr_assert_str_eq(cbx_llm_detect_provider("llama3.2"), "ollama");
    cr_assert_str_eq(cbx_llm_detect_provider("codellama:7b"), "ollama");
    cr_assert_str_eq(cbx_llm_detect_provider("mistral-large"), "ollama");
    cr_assert_str_eq(cbx_llm_detect_provider("gpt-4o"), "openai");
    cr_assert_str_eq(cbx_llm_detect_provider("qwen2.5"), "openai");
    json_t *cfg = json_loads("{\"provider_prefixes\": {\"qwen\": \"ollama\", \"llama-api\": "
                             "\"openai\"}, \"prices\": {\"qwen*\": {\"input\": 1.0, \"output\": "
                             "2.0}}}",
                             0, NULL);
    cbx_err err;
    cbx_err_clear(&err);
    cr_assert_eq(cbx_llm_settings_set(cfg, &err), 0, "%s", err.msg);
    json_decref(cfg);
    cr_assert_str_eq(cbx_llm_detect_provider("qwen2.5"), "ollama");
    cr_assert_str_eq(cbx_llm_detect_provider("llama-api-70b"), "openai");
    cr_assert_str_eq(cbx_llm_detect_provider("llama3"), "ollama");
    cfg = json_loads("{\"provider_prefixes\": {\"x\": \"anthropic\"}}", 0, NULL);
    cr_assert_eq(cbx_llm_settings_set(cfg, &err), CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(err.msg, "llm.provider_prefixes.x"), "%s", err.msg);
    json_decref(cfg);

    /* the detected protocol is the one spoken, and the price table gives the cost */
    server s = start("{\"turns\": [{\"content\": \"q\", \"usage\": {\"prompt_tokens\": 1000000, "
                     "\"completion_tokens\": 500000}}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"qwen2.5\", \"ollama_base_url\": \"%s\", \"base_url\": "
                    "\"http://127.0.0.1:1/v1\", \"input\": \"hi\"}",
                    s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_float_eq(json_number_value(json_object_get(r.outputs, "cost")), 2.0, 1e-9);
    json_t *reqs = requests(&s);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(reqs, 0), "path")),
                     "/api/chat");
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

/* ---- tools: two parallel calls, one times out, one fails
 * ----------------------------------------- */

Test(llm, parallel_tool_calls_one_times_out_one_fails_the_model_gets_both)
{
    server s = start("{\"turns\": [{\"tool_calls\": ["
                     "{\"id\": \"slow\", \"name\": \"sleepy\", \"arguments\": {}},"
                     "{\"id\": \"bad\", \"name\": \"broken\", \"arguments\": {}}]},"
                     "{\"content\": \"Both tools failed; here is what I know.\"}]}");
    cbx_result r = {0};
    uint64_t t0 = uv_hrtime();
    int rc = run_on(
        NULL, NULL, &r,
        "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"go\", \"tools\": ["
        "{\"name\": \"sleepy\", \"executor\": \"command\", \"params\": {\"argv\": [\"sleep\", "
        "\"60\"]}, \"policy\": {\"timeout\": \"300ms\"}, \"fallback_response\": \"no data\"},"
        "{\"name\": \"broken\", \"executor\": \"command\", \"params\": {\"argv\": [\"sh\", "
        "\"-c\", \"exit 3\"]}}]}",
        s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_lt(uv_hrtime() - t0, 30ull * 1000000000ull, "the timed-out tool was not stopped");
    cr_assert_str_eq(out_str(&r, "content"), "Both tools failed; here is what I know.");
    json_t *calls = json_object_get(r.outputs, "tool_calls");
    cr_assert_eq(json_array_size(calls), 2);
    size_t i;
    json_t *c;
    int saw_timeout = 0, saw_failed = 0;
    json_array_foreach(calls, i, c)
    {
        cr_assert(json_is_false(json_object_get(c, "ok")));
        const char *st = json_string_value(json_object_get(c, "status"));
        saw_timeout |= strcmp(st, "timeout") == 0;
        saw_failed |= strcmp(st, "failed") == 0;
        cr_assert_not_null(json_object_get(c, "execution"), "each call is an execution");
    }
    cr_assert(saw_timeout && saw_failed);
    json_t *reqs = requests(&s);
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    cr_assert_eq(json_array_size(msgs), 4);
    for (size_t k = 2; k < 4; k++) {
        json_t *m = json_array_get(msgs, k);
        cr_assert_str_eq(json_string_value(json_object_get(m, "role")), "tool");
        json_t *content = json_loads(json_string_value(json_object_get(m, "content")), 0, NULL);
        cr_assert_not_null(json_object_get(content, "error"));
        cr_assert_not_null(json_object_get(content, "fallback_response"));
        if (strcmp(json_string_value(json_object_get(m, "tool_call_id")), "slow") == 0)
            cr_assert_str_eq(json_string_value(json_object_get(content, "fallback_response")),
                             "no data");
        json_decref(content);
    }
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, unknown_tool_and_bad_arguments_go_back_to_the_model_never_run)
{
    char marker[300];
    snprintf(marker, sizeof marker, "%s/ran", tmpdir);
    server s = start("{\"turns\": [{\"tool_calls\": ["
                     "{\"id\": \"a\", \"name\": \"ghost\", \"arguments\": {}},"
                     "{\"id\": \"b\", \"name\": \"touch\", \"arguments\": {\"n\": \"many\"}},"
                     "{\"id\": \"c\", \"name\": \"touch\", \"arguments\": \"{not json\"}]},"
                     "{\"content\": \"sorry\"}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"go\", "
                    "\"tools\": [{\"name\": \"touch\", \"executor\": \"command\", \"params\": "
                    "{\"argv\": [\"touch\", \"%s\"]}, \"arguments\": {\"type\": \"object\", "
                    "\"properties\": {\"n\": {\"type\": \"integer\"}}}}]}",
                    s.url, marker);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "tool_errors")), 3);
    cr_assert_neq(access(marker, F_OK), 0, "a refused tool call ran");
    json_t *reqs = requests(&s);
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
               "unknown tool 'ghost'"));
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(json_array_get(msgs, 3), "content")),
               "argument 'n': expected integer"));
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(json_array_get(msgs, 4), "content")),
               "not a JSON object"));
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, tool_rounds_are_bounded)
{
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"t\", \"arguments\": {\"argv\": "
                     "[\"true\"]}}], \"repeat\": -1}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"go\", "
                    "\"max_rounds\": 3, \"tools\": [{\"name\": \"t\", \"executor\": \"command\"}]}",
                    s.url);
    cr_assert_neq(rc, 0);
    cr_assert_not_null(strstr(r.error, "max_rounds (3)"), "%s", r.error);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 3);
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

/* ---- errors -------------------------------------------------------------------------------------
 */

Test(llm, rate_limited_with_retry_after_then_retried)
{
    server s = start("{\"turns\": [{\"status\": 429, \"error\": \"slow down\", \"retry_after\": "
                     "1}, {\"content\": \"after the wait\"}]}");
    cbx_result r = {0};
    uint64_t t0 = uv_hrtime();
    int rc = run_on(NULL, "{\"retry\": {\"attempts\": 2, \"initial\": \"1ms\"}}", &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\"}", s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_geq(uv_hrtime() - t0, 900000000ull, "the Retry-After delay was not honoured");
    cr_assert_eq(r.attempt_count, 2);
    json_t *a0 = json_array_get(r.attempts, 0);
    cr_assert_str_eq(json_string_value(json_object_get(a0, "outcome")), "rate_limited");
    cr_assert_str_eq(out_str(&r, "content"), "after the wait");
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, context_length_and_content_filter_are_not_retried)
{
    server s = start(
        "{\"turns\": [{\"status\": 400, \"error\": \"This model's maximum context length is "
        "8192 tokens\", \"error_code\": \"context_length_exceeded\"},"
        "{\"content\": \"\", \"finish_reason\": \"content_filter\"}, {\"content\": \"never\"}]}");
    cbx_result r = {0};
    const char *pol = "{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\"}}";
    int rc = run_on(NULL, pol, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\"}", s.url);
    cr_assert_neq(rc, 0);
    cr_assert_eq(r.attempt_count, 1);
    cr_assert_str_eq(out_str(&r, "error_kind"), "context_length");
    cbx_result_clear(&r);
    rc = run_on(NULL, pol, &r,
                "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\"}", s.url);
    cr_assert_neq(rc, 0);
    cr_assert_eq(r.attempt_count, 1);
    cr_assert_str_eq(out_str(&r, "error_kind"), "content_filter");
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, server_error_and_dropped_connection_are_errors)
{
    server s = start("{\"turns\": [{\"status\": 503, \"error\": \"overloaded\"}, {\"drop\": "
                     "true}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\"}", s.url);
    cr_assert_neq(rc, 0);
    cr_assert_str_eq(out_str(&r, "error_kind"), "server");
    cr_assert_not_null(strstr(r.error, "HTTP 503: overloaded"), "%s", r.error);
    cbx_result_clear(&r);
    rc = run_on(NULL, NULL, &r,
                "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\"}", s.url);
    cr_assert_neq(rc, 0);
    cr_assert_str_eq(out_str(&r, "error_kind"), "connection");
    json_t *a0 = json_array_get(r.attempts, 0);
    cr_assert_str_eq(json_string_value(json_object_get(a0, "outcome")), "error");
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, malformed_and_truncated_streams)
{
    server s = start("{\"turns\": [{\"raw\": \"data: {\\\"choices\\\": [{\\\"delta\\\": \\n\\n\"},"
                     "{\"content\": \"a long answer cut short\", \"drop_after\": 3},"
                     "{\"content\": \"ndjson cut short\", \"drop_after\": 2}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\", "
                    "\"stream\": true}",
                    s.url);
    cr_assert_neq(rc, 0);
    cr_assert_not_null(strstr(r.error, "malformed stream"), "%s", r.error);
    cbx_result_clear(&r);
    rc = run_on(NULL, NULL, &r,
                "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\", \"stream\": "
                "true}",
                s.url);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(r.error, "truncated stream") || strstr(r.error, "the stream broke"), "%s",
              r.error);
    cbx_result_clear(&r);
    rc = run_on(NULL, NULL, &r,
                "{\"model\": \"llama3\", \"ollama_base_url\": \"%s\", \"input\": \"hi\", "
                "\"stream\": true}",
                s.url);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(r.error, "truncated stream") || strstr(r.error, "the stream broke"), "%s",
              r.error);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, bad_input_names_the_parameter)
{
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"m\", \"model_provider\": \"anthropic\", \"input\": \"hi\"}");
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(r.error, "model_provider"), "%s", r.error);
    cbx_result_clear(&r);
    rc = run_on(NULL, NULL, &r,
                "{\"providers\": [{\"protocol\": \"bedrock\", \"model\": \"m\"}], \"input\": "
                "\"hi\"}");
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(r.error, "providers[0].protocol"), "%s", r.error);
    cbx_result_clear(&r);
    rc = run_on(NULL, NULL, &r, "{\"model\": \"gpt-4o\"}");
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(r.error, "input: required"), "%s", r.error);
    cbx_result_clear(&r);
    rc = run_on(NULL, NULL, &r,
                "{\"model\": \"gpt-4o\", \"input\": \"x\", \"tools\": [{\"name\": \"t\", "
                "\"executor\": \"command\", \"arguments\": {\"type\": \"string\"}}]}");
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(r.error, "tools[0].arguments"), "%s", r.error);
    cbx_result_clear(&r);
    /* a tool naming an unknown executor type: refused before any request */
    server s = start("{\"turns\": [{\"content\": \"never\"}]}");
    rc = run_on(NULL, "{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\"}}", &r,
                "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"x\", \"tools\": "
                "[{\"name\": \"t\", \"executor\": \"no_such_type\"}]}",
                s.url);
    cr_assert_neq(rc, 0);
    cr_assert_eq(r.attempt_count, 1);
    cr_assert_not_null(strstr(r.error, "tools[0].executor"), "%s", r.error);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 0);
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

/* ---- several providers
 * --------------------------------------------------------------------------- */

Test(llm, failover_when_the_first_provider_is_rate_limited_and_its_breaker_opens)
{
    server a = start("{\"turns\": [{\"status\": 429, \"error\": \"quota\", \"retry_after\": 30, "
                     "\"repeat\": -1}]}");
    server b = start("{\"turns\": [{\"content\": \"from b\", \"repeat\": -1}]}");
    cbx_runtime *rt;
    cr_assert_eq(cbx_runtime_new(&rt, NULL, NULL), 0);
    for (int i = 0; i < 3; i++) {
        cbx_result r = {0};
        int rc = run_on(rt, NULL, &r,
                        "{\"model\": \"gpt-4o\", \"input\": \"hi\", \"provider_breaker\": "
                        "{\"failures\": 1, \"open_ms\": 60000}, \"providers\": ["
                        "{\"name\": \"a\", \"protocol\": \"openai\", \"base_url\": \"%s/v1\"},"
                        "{\"name\": \"b\", \"protocol\": \"ollama\", \"base_url\": \"%s\", "
                        "\"model\": \"llama3\"}]}",
                        a.url, b.url);
        cr_assert_eq(rc, 0, "%s", r.error);
        cr_assert_str_eq(out_str(&r, "content"), "from b");
        cr_assert_str_eq(json_string_value(json_object_get(r.metadata, "provider")), "ollama");
        cbx_result_clear(&r);
    }
    json_t *ra = requests(&a), *rb = requests(&b);
    cr_assert_eq(json_array_size(ra), 1, "the open breaker should skip provider a");
    cr_assert_eq(json_array_size(rb), 3);
    json_decref(ra);
    json_decref(rb);
    json_t *list = NULL;
    cr_assert_eq(cbx_breaker_store_list(cbx_runtime_breakers(rt), &list, NULL), 0);
    char *dump = json_dumps(list, 0);
    cr_assert_not_null(strstr(dump, "llm:a:gpt-4o@127.0.0.1"), "%s", dump);
    free(dump);
    json_decref(list);
    cbx_runtime_free(rt);
    stop(&a);
    stop(&b);
}

/* ---- quality, JSON answers
 * ------------------------------------------------------------------------ */

Test(llm, quality_from_a_json_answer)
{
    server s = start("{\"turns\": [{\"content\": \"{\\\"answer\\\": 4, \\\"confidence_score\\\": "
                     "0.25}\"}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"2+2\", "
                    "\"response_format\": {\"type\": \"object\", \"properties\": {\"answer\": "
                    "{\"type\": \"integer\"}}}, \"quality\": \"json.confidence_score\"}",
                    s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.outputs, "json"), "answer")),
                 4);
    cr_assert_float_eq(json_number_value(json_object_get(r.metadata, "quality")), 0.25, 1e-9);
    json_t *reqs = requests(&s);
    json_t *rf =
        json_object_get(json_object_get(json_array_get(reqs, 0), "body"), "response_format");
    cr_assert_str_eq(json_string_value(json_object_get(rf, "type")), "json_schema");
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

/* ---- cancelling
 * ---------------------------------------------------------------------------------- */

Test(llm, timeout_stops_a_slow_stream)
{
    server s = start("{\"turns\": [{\"content\": \"one word every few seconds\", \"chunk_chars\": "
                     "1, \"chunk_delay_ms\": 2000}]}");
    cbx_result r = {0};
    uint64_t t0 = uv_hrtime();
    int rc = run_on(NULL, "{\"timeout\": \"500ms\"}", &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\", "
                    "\"stream\": true}",
                    s.url);
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%d %s", rc, r.error);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    cr_assert_lt(uv_hrtime() - t0, 20ull * 1000000000ull);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, timeout_during_a_tool_call_leaves_no_tool_process)
{
    char pidfile[300];
    snprintf(pidfile, sizeof pidfile, "%s/tool.pid", tmpdir);
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"hang\", \"arguments\": {}}]}, "
                     "{\"content\": \"never asked\"}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, "{\"timeout\": \"1s\"}", &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\", "
                    "\"tools\": [{\"name\": \"hang\", \"executor\": \"command\", \"params\": "
                    "{\"argv\": [\"sh\", \"-c\", \"echo $$ > %s; exec sleep 60\"]}}]}",
                    s.url, pidfile);
    cr_assert_eq(rc, CBX_ETIMEDOUT, "%d %s", rc, r.error);
    FILE *f = fopen(pidfile, "r");
    cr_assert_not_null(f, "the tool never started");
    int pid = 0;
    cr_assert_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    cr_assert_neq(kill(pid, 0), 0, "the tool's process %d outlived the cancelled attempt", pid);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 1, "the model was asked again after the cancel");
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

/* ---- the agent
 * ----------------------------------------------------------------------------------- */

#define AGENT_TOOL                                                                                 \
    "\"tools\": [{\"name\": \"look\", \"executor\": \"command\", \"params\": {\"argv\": "          \
    "[\"echo\", \"seen\"]}}]"

Test(llm, agent_answers_and_says_why_it_stopped)
{
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"look\", \"arguments\": {}}]}, "
                     "{\"content\": \"final\"}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"task\": \"look around\", "
                    "\"system_prompt\": \"You are careful.\", " AGENT_TOOL "}",
                    s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "content"), "final");
    cr_assert_str_eq(out_str(&r, "stop_reason"), "answer");
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "iterations")), 2);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, agent_stops_at_max_iterations)
{
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"look\", \"arguments\": {}}], "
                     "\"repeat\": -1}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, "{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\"}}", &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"task\": \"t\", "
                    "\"max_iterations\": 3, " AGENT_TOOL "}",
                    s.url);
    cr_assert_neq(rc, 0);
    cr_assert_eq(r.attempt_count, 1, "a stop for a limit is not retried");
    cr_assert_str_eq(out_str(&r, "stop_reason"), "max_iterations");
    cr_assert_not_null(strstr(r.error, "max_iterations (3)"), "%s", r.error);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 3);
    json_decref(reqs);
    cr_assert_eq(json_array_size(json_object_get(r.outputs, "tool_calls")), 2,
                 "tools of the last iteration must not run");
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, agent_stops_at_its_token_budget)
{
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"look\", \"arguments\": {}}], "
                     "\"usage\": {\"prompt_tokens\": 100, \"completion_tokens\": 100}, "
                     "\"repeat\": -1}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"task\": \"t\", "
                    "\"max_iterations\": 10, \"max_total_tokens\": 300, " AGENT_TOOL "}",
                    s.url);
    cr_assert_neq(rc, 0);
    cr_assert_str_eq(out_str(&r, "stop_reason"), "token_budget");
    cr_assert_eq(
        json_integer_value(json_object_get(json_object_get(r.outputs, "usage"), "total_tokens")),
        400);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 2);
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, agent_memory_size_trims_the_oldest_turns_keeping_the_system_prompt)
{
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"look\", \"arguments\": {}}], "
                     "\"repeat\": 2}, {\"content\": \"done\"}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"task\": \"t\", "
                    "\"system_prompt\": \"sys\", \"memory_size\": 3, " AGENT_TOOL "}",
                    s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 3);
    /* the whole conversation is sys, user, a1, t1, a2, t2: three others would start on t1, a
     * tool result without its call, so the window starts at a2 */
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 2), "body"), "messages");
    cr_assert_eq(json_array_size(msgs), 3, "%s", json_dumps(msgs, 0));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "content")), "sys");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "role")),
                     "assistant");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 2), "role")), "tool");
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, agent_stops_when_a_tool_breaker_opens)
{
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"flaky\", \"arguments\": {}}], "
                     "\"repeat\": -1}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"task\": \"t\", "
                    "\"max_iterations\": 10, \"tools\": [{\"name\": \"flaky\", \"executor\": "
                    "\"command\", \"params\": {\"argv\": [\"false\"]}, \"policy\": {\"breaker\": "
                    "{\"consecutive_failures\": 1, \"open_for\": \"60s\"}}}]}",
                    s.url);
    cr_assert_neq(rc, 0);
    cr_assert_str_eq(out_str(&r, "stop_reason"), "tool_breaker_open", "%s", r.error);
    cr_assert_not_null(strstr(r.error, "tool 'flaky'"), "%s", r.error);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 2);
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

typedef struct cancel_ctx {
    cbx_runtime *rt;
    cbx_execution *ex;
    const char *pidfile;
    cbx_result res;
    int done;
} cancel_ctx;

/* The tool writes its pid to a file of another name and renames it: the file is there only
 * once the pid is in it. */
static void cancel_when_tool_runs(uv_timer_t *t)
{
    cancel_ctx *cc = t->data;
    if (access(cc->pidfile, F_OK) == 0) {
        cbx_runtime_cancel(cc->rt, cc->ex);
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, NULL);
    }
}

static void cancel_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    cancel_ctx *cc = ud;
    cc->res.status = res->status;
    cc->res.outputs = json_incref(res->outputs);
    cc->done = 1;
}

Test(llm, agent_cancel_stops_its_tools)
{
    char pidfile[300];
    snprintf(pidfile, sizeof pidfile, "%s/tool.pid", tmpdir);
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"hang\", \"arguments\": {}}]}, "
                     "{\"content\": \"never asked\"}]}");
    char *ptext;
    cr_assert_geq(asprintf(&ptext,
                           "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"task\": \"t\", "
                           "\"tools\": [{\"name\": \"hang\", \"executor\": \"command\", "
                           "\"params\": {\"argv\": [\"sh\", \"-c\", \"echo $$ > %s.tmp && mv "
                           "%s.tmp %s; exec sleep 60\"]}}]}",
                           s.url, pidfile, pidfile, pidfile),
                  0);
    json_t *p = json_loads(ptext, 0, NULL);
    free(ptext);
    cancel_ctx cc = {.pidfile = pidfile};
    cr_assert_eq(cbx_runtime_new(&cc.rt, NULL, NULL), 0);
    cr_assert_eq(
        cbx_runtime_submit(
            cc.rt,
            &(cbx_request){.executor = "agent", .params = p, .on_done = cancel_done, .ud = &cc},
            &cc.ex, NULL),
        0);
    uv_timer_t timer;
    uv_timer_init(cbx_runtime_loop(cc.rt), &timer);
    timer.data = &cc;
    uv_timer_start(&timer, cancel_when_tool_runs, 10, 10);
    cbx_runtime_run(cc.rt);
    cr_assert(cc.done);
    cr_assert_eq(cc.res.status, CBX_STATUS_CANCELLED);
    FILE *f = fopen(pidfile, "r");
    cr_assert_not_null(f);
    int pid = 0;
    cr_assert_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    cr_assert_neq(kill(pid, 0), 0, "the tool's process %d outlived the cancel", pid);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 1, "no request may follow a cancel");
    json_decref(reqs);
    json_decref(cc.res.outputs);
    json_decref(p);
    cbx_runtime_free(cc.rt);
    stop(&s);
}

/* ---- conversation memory
 * ------------------------------------------------------------------------- */

#define MEM_CALL                                                                                   \
    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"system_prompt\": \"sys\", "                \
    "\"conversation\": \"c1\", \"input\": \"%s\"%s}"

Test(llm, conversation_memory_keeps_trims_and_clears)
{
    server s = start("{\"turns\": [{\"content\": \"Hello Ada.\"}, {\"content\": \"You are "
                     "Ada.\"}, {\"content\": \"third\"}, {\"content\": \"fresh\"}]}");
    char path[300];
    snprintf(path, sizeof path, "%s/journal.db", tmpdir);
    cbx_journal *j;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    cbx_runtime *rt;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.journal = j}, NULL), 0);
    cbx_result r = {0};
    cr_assert_eq(run_on(rt, NULL, &r, MEM_CALL, s.url, "My name is Ada.", ""), 0, "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run_on(rt, NULL, &r, MEM_CALL, s.url, "What is my name?", ""), 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(r.metadata, "memory_loaded")), 2);
    cbx_result_clear(&r);
    /* a budget that holds the system prompt, the new input and only the last turn pair */
    cr_assert_eq(run_on(rt, NULL, &r, MEM_CALL, s.url, "Third?", ", \"memory_max_tokens\": 30"), 0,
                 "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run_on(rt, NULL, &r, MEM_CALL, s.url, "Anew.", ", \"memory_clear\": true"), 0,
                 "%s", r.error);
    cbx_result_clear(&r);
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 4);
    json_t *m2 = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    cr_assert_eq(json_array_size(m2), 4, "%s", json_dumps(m2, 0));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m2, 0), "content")), "sys");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m2, 1), "content")),
                     "My name is Ada.");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m2, 2), "content")),
                     "Hello Ada.");
    json_t *m3 = json_object_get(json_object_get(json_array_get(reqs, 2), "body"), "messages");
    /* by the estimate (bytes + 3) / 4 + 4: sys 5, "Third?" 6, then from the newest back "You
     * are Ada." 7 and "What is my name?" 8 make 26 <= 30; "Hello Ada." would make 33 */
    cr_assert_eq(json_array_size(m3), 4, "%s", json_dumps(m3, 0));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(m3, 1), "content")),
                     "What is my name?");
    json_t *m4 = json_object_get(json_object_get(json_array_get(reqs, 3), "body"), "messages");
    cr_assert_eq(json_array_size(m4), 2, "cleared: %s", json_dumps(m4, 0));
    json_decref(reqs);
    cbx_runtime_free(rt);
    cbx_journal_close(j);
    /* without a journal the parameter is refused, naming it */
    int rc = run_on(NULL, NULL, &r, MEM_CALL, s.url, "x", "");
    cr_assert_neq(rc, 0);
    cr_assert_not_null(strstr(r.error, "parameter 'conversation'"), "%s", r.error);
    cbx_result_clear(&r);
    stop(&s);
}

/* ---- record and replay
 * --------------------------------------------------------------------------- */

Test(llm, replay_reproduces_a_recorded_agent_run_without_a_server)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/cassette", tmpdir);
    server s = start("{\"turns\": ["
                     "{\"tool_calls\": [{\"id\": \"a\", \"name\": \"look\", \"arguments\": {}}], "
                     "\"chunk_chars\": 2},"
                     "{\"tool_calls\": [{\"id\": \"b\", \"name\": \"look\", \"arguments\": {}}]},"
                     "{\"content\": \"all seen\", \"chunk_chars\": 3, \"usage\": "
                     "{\"prompt_tokens\": 30, \"completion_tokens\": 3}}]}");
#define REPLAY_FMT                                                                                 \
    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"api_key\": \"sk-secret-9\", "              \
    "\"task\": \"look twice\", \"stream\": true, \"%s\": \"%s\", " AGENT_TOOL "}"
    cbx_result rec = {0}, rep = {0};
    cr_assert_eq(run_on(NULL, NULL, &rec, REPLAY_FMT, s.url, "record", dir), 0, "%s", rec.error);
    char url[64];
    snprintf(url, sizeof url, "%s", s.url);
    stop(&s); /* no server from here on */
    cr_assert_eq(run_on(NULL, NULL, &rep, REPLAY_FMT, url, "replay", dir), 0, "%s", rep.error);
    const char *keys[] = {"content",    "messages",    "usage", "finish_reason",
                          "iterations", "stop_reason", "model"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert(json_equal(json_object_get(rec.outputs, keys[i]),
                             json_object_get(rep.outputs, keys[i])),
                  "%s differs: %s vs %s", keys[i],
                  json_dumps(json_object_get(rec.outputs, keys[i]), JSON_ENCODE_ANY),
                  json_dumps(json_object_get(rep.outputs, keys[i]), JSON_ENCODE_ANY));
    cr_assert_str_eq(out_str(&rep, "content"), "all seen");
    cr_assert_eq(json_array_size(json_object_get(rep.outputs, "tool_calls")), 2,
                 "the tools run again on replay");
    /* three exchanges on file, none holding the key */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) -eq 3 && ! grep -rq sk-secret-9 '%s'", dir,
             dir);
    cr_assert_eq(system(cmd), 0, "cassette files or a key in them");
    /* a request never recorded: a clear error, not retried */
    cbx_result miss = {0};
    int rc = run_on(NULL, "{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\"}}", &miss,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"never "
                    "recorded\", \"replay\": \"%s\"}",
                    url, dir);
    cr_assert_neq(rc, 0);
    cr_assert_eq(miss.attempt_count, 1);
    cr_assert_not_null(strstr(miss.error, "replay: no recorded exchange"), "%s", miss.error);
    cbx_result_clear(&miss);
    cbx_result_clear(&rec);
    cbx_result_clear(&rep);
}

Test(llm, a_poor_answer_goes_to_the_next_provider_or_is_retried)
{
    server a = start("{\"turns\": [{\"content\": \"{\\\"answer\\\": 1, \\\"confidence\\\": 0.1}\", "
                     "\"repeat\": -1}]}");
    server b = start("{\"turns\": [{\"content\": \"{\\\"answer\\\": 2, \\\"confidence\\\": 0.9}\", "
                     "\"repeat\": -1}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"input\": \"q\", \"response_format\": \"json\", "
                    "\"quality\": \"json.confidence\", \"min_quality\": 0.5, \"providers\": ["
                    "{\"name\": \"a\", \"base_url\": \"%s/v1\"}, {\"name\": \"b\", \"base_url\": "
                    "\"%s/v1\"}]}",
                    a.url, b.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.outputs, "json"), "answer")),
                 2);
    char *skipped = json_dumps(json_object_get(r.metadata, "skipped"), 0);
    cr_assert_not_null(strstr(skipped, "under min_quality 0.50"), "%s", skipped);
    free(skipped);
    cbx_result_clear(&r);
    /* one provider: a quality failure the policy retries; the second answer is good */
    stop(&a);
    stop(&b);
    server s = start("{\"turns\": [{\"content\": \"{\\\"confidence\\\": 0.2}\"}, {\"content\": "
                     "\"{\\\"confidence\\\": 0.8}\"}]}");
    rc = run_on(NULL, "{\"retry\": {\"attempts\": 2, \"on\": [\"quality\"], \"initial\": \"1ms\"}}",
                &r,
                "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"q\", "
                "\"response_format\": \"json\", \"quality\": \"json.confidence\", "
                "\"min_quality\": 0.5}",
                s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(r.attempt_count, 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r.attempts, 0), "outcome")),
                     "quality");
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, a_long_tool_result_is_cut_on_a_character_boundary)
{
    server s = start("{\"turns\": [{\"tool_calls\": [{\"name\": \"big\", \"arguments\": {}}]}, "
                     "{\"content\": \"ok\"}]}");
    cbx_result r = {0};
    int rc =
        run_on(NULL, NULL, &r,
               "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"x\", \"tools\": "
               "[{\"name\": \"big\", \"executor\": \"command\", \"params\": {\"argv\": [\"sh\", "
               "\"-c\", \"yes é | head -n 20000 | tr -d '\\\\n'\"]}}]}",
               s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    json_t *reqs = requests(&s);
    json_t *b = json_object_get(json_array_get(reqs, 1), "body");
    cr_assert(json_is_object(b), "the second request was not JSON");
    const char *content = json_string_value(
        json_object_get(json_array_get(json_object_get(b, "messages"), 2), "content"));
    cr_assert_not_null(content);
    size_t n = strlen(content);
    cr_assert_leq(n, 16384);
    cr_assert_str_eq(content + n - 14, "...(truncated)");
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, a_server_that_does_not_stream_answers_a_streamed_request_with_json)
{
    server s = start("{\"turns\": [{\"raw\": \"{\\\"choices\\\": [{\\\"message\\\": {\\\"role\\\": "
                     "\\\"assistant\\\", \\\"content\\\": \\\"not streamed\\\"}, "
                     "\\\"finish_reason\\\": \\\"stop\\\"}]}\", \"content_type\": "
                     "\"application/json\"}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"x\", "
                    "\"stream\": true}",
                    s.url);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "content"), "not streamed");
    cbx_result_clear(&r);
    stop(&s);
}

Test(llm, tools_built_with_the_c_helpers)
{
    json_t *tools = json_array();
    cbx_err err;
    cbx_err_clear(&err);
    /* argv fixed; the model fills the rest of the command type's parameters (stdin) */
    json_t *fixed = json_pack("{s:[s]}", "argv", "cat");
    json_t *pol = json_pack("{s:s}", "timeout", "5s");
    cr_assert_eq(cbx_llm_tool_add(tools,
                                  &(cbx_llm_tool_opts){.name = "say",
                                                       .executor = "command",
                                                       .description = "say a word",
                                                       .params = fixed,
                                                       .policy = pol},
                                  &err),
                 0, "%s", err.msg);
    cr_assert_eq(
        cbx_llm_tool_add(tools, &(cbx_llm_tool_opts){.name = "gone", .executor = "command"}, &err),
        0);
    cr_assert_eq(
        cbx_llm_tool_add(tools, &(cbx_llm_tool_opts){.name = "say", .executor = "http"}, &err),
        CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(err.msg, "already"), "%s", err.msg);
    cr_assert_eq(
        cbx_llm_tool_add(tools, &(cbx_llm_tool_opts){.name = "bad name", .executor = "http"}, &err),
        CBX_EINVAL_CONFIG);
    cr_assert_eq(cbx_llm_tool_remove(tools, "gone"), 0);
    cr_assert_eq(cbx_llm_tool_remove(tools, "gone"), -ENOENT);
    cr_assert_eq(json_array_size(tools), 1);
    json_decref(fixed);
    json_decref(pol);

    server s =
        start("{\"turns\": [{\"tool_calls\": [{\"name\": \"say\", \"arguments\": {\"stdin\": "
              "\"helper\"}}]}, {\"content\": \"done\"}]}");
    char *tt = json_dumps(tools, JSON_COMPACT);
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"x\", \"tools\": "
                    "%s}",
                    s.url, tt);
    free(tt);
    cr_assert_eq(rc, 0, "%s", r.error);
    json_t *reqs = requests(&s);
    json_t *m = json_array_get(
        json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages"), 2);
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(m, "content")), "\"stdout\":\"helper\""), "%s",
        json_string_value(json_object_get(m, "content")));
    json_decref(reqs);
    cbx_result_clear(&r);
    cbx_llm_tools_clear(tools);
    cr_assert_eq(json_array_size(tools), 0);
    json_decref(tools);
    stop(&s);
}

/* ---- streams and bodies the scanner and jansson both read ------------------------------------ */

Test(llm, malformed_streams_and_bodies_of_both_protocols)
{
    server s =
        start("{\"turns\": ["
              /* OpenAI: two good events, then one that is not JSON */
              "{\"raw\": \"data: {\\\"choices\\\": [{\\\"delta\\\": {\\\"content\\\": "
              "\\\"Hel\\\"}}]}\\n\\n"
              "data: {\\\"choices\\\": [{\\\"delta\\\": {\\\"content\\\": \\\"lo\\\"}}]}\\n\\n"
              "data: {\\\"choices\\\": [oops]}\\n\\n\"},"
              /* OpenAI: an error event in the stream */
              "{\"raw\": \"data: {\\\"error\\\": {\\\"message\\\": \\\"overloaded\\\"}}\\n\\n\"},"
              /* Ollama: a good line, then a cut literal */
              "{\"content_type\": \"application/x-ndjson\", \"raw\": \"{\\\"message\\\": "
              "{\\\"content\\\": \\\"x\\\"}, \\\"done\\\": false}\\n{\\\"done\\\": tru}\\n\"},"
              /* OpenAI plain: cut JSON; Ollama plain: no message */
              "{\"raw\": \"{\\\"choices\\\": [\"},"
              "{\"raw\": \"{\\\"model\\\": \\\"m\\\"}\"}]}");
    static const struct {
        int ollama, stream;
        const char *want, *also;
    } cases[] = {
        {0, 1, "malformed stream: an event that is not a JSON object", "after 2 events"},
        {0, 1, "the stream reported an error: overloaded", NULL},
        {1, 1, "malformed stream: a line that is not a JSON object", "after 1 events"},
        {0, 0, "malformed response", NULL},
        {1, 0, "malformed response: no message", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cbx_result r = {0};
        int rc = run_on(NULL, NULL, &r,
                        "{\"model\": \"%s\", \"%s\": \"%s%s\", \"input\": \"hi\", "
                        "\"stream\": %s}",
                        cases[i].ollama ? "llama3" : "gpt-4o",
                        cases[i].ollama ? "ollama_base_url" : "base_url", s.url,
                        cases[i].ollama ? "" : "/v1", cases[i].stream ? "true" : "false");
        cr_assert_neq(rc, 0, "case %zu succeeded", i);
        cr_assert_not_null(strstr(r.error, cases[i].want), "case %zu: %s", i, r.error);
        if (cases[i].also)
            cr_assert_not_null(strstr(r.error, cases[i].also), "case %zu: %s", i, r.error);
        cr_assert_str_eq(out_str(&r, "error_kind"), "malformed", "case %zu", i);
        cbx_result_clear(&r);
    }
    stop(&s);
}

Test(llm, escapes_and_utf8_in_streamed_and_plain_answers)
{
    /* \u escapes (a surrogate pair too), raw UTF-8, escaped quotes and newlines, split over
     * events; then the same in a plain answer, and a usage chunk */
    server s = start(
        "{\"turns\": ["
        "{\"raw\": \"data: {\\\"model\\\": \\\"m\\\\u00e9\\\", \\\"choices\\\": [{\\\"delta\\\": "
        "{\\\"content\\\": \\\"caf\\\\u00e9 \\\\ud83d\\\\ude00 \\\"}}]}\\n\\n"
        "data: {\\\"choices\\\": [{\\\"delta\\\": {\\\"content\\\": \\\"\\\\\\\"q\\\\\\\" "
        "\xe2\x82\xac\\\\n\\\"}, \\\"finish_reason\\\": \\\"stop\\\"}]}\\n\\n"
        "data: {\\\"choices\\\": [], \\\"usage\\\": {\\\"prompt_tokens\\\": 12, "
        "\\\"completion_tokens\\\": 5}}\\n\\ndata: [DONE]\\n\\n\"},"
        "{\"raw\": \"{\\\"choices\\\": [{\\\"message\\\": {\\\"role\\\": \\\"assistant\\\", "
        "\\\"content\\\": \\\"caf\\\\u00e9 \\\\ud83d\\\\ude00 \\\\\\\"q\\\\\\\" \xe2\x82\xac\\\\n"
        "\\\"}, \\\"finish_reason\\\": \\\"length\\\"}], \\\"usage\\\": {\\\"prompt_tokens\\\": "
        "12, "
        "\\\"completion_tokens\\\": 5}}\"}]}");
    const char *want = "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \xe2\x82\xac\n";
    for (int stream = 1; stream >= 0; stream--) {
        cbx_result r = {0};
        int rc = run_on(NULL, NULL, &r,
                        "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"input\": \"hi\", "
                        "\"stream\": %s}",
                        s.url, stream ? "true" : "false");
        cr_assert_eq(rc, 0, "%s", r.error);
        cr_assert_str_eq(out_str(&r, "content"), want);
        cr_assert_str_eq(out_str(&r, "finish_reason"), stream ? "stop" : "length");
        if (stream)
            cr_assert_str_eq(out_str(&r, "model"), "m\xc3\xa9");
        json_t *u = json_object_get(r.outputs, "usage");
        cr_assert_eq(json_integer_value(json_object_get(u, "prompt_tokens")), 12);
        cr_assert_eq(json_integer_value(json_object_get(u, "completion_tokens")), 5);
        cbx_result_clear(&r);
    }
    stop(&s);
}

/* ---- the breaker of a failed-over provider lets a probe through ---------------------------- */

Test(llm, failover_breaker_probes_the_first_provider_again)
{
    server a = start("{\"turns\": [{\"status\": 429, \"error\": \"quota\"}, "
                     "{\"content\": \"from a\", \"repeat\": -1}]}");
    server b = start("{\"turns\": [{\"content\": \"from b\", \"repeat\": -1}]}");
    cbx_runtime *rt;
    cr_assert_eq(cbx_runtime_new(&rt, NULL, NULL), 0);
#define PROBE_CALL                                                                                 \
    "{\"model\": \"gpt-4o\", \"input\": \"hi\", \"provider_breaker\": {\"failures\": 1, "          \
    "\"open_ms\": 200}, \"providers\": [{\"name\": \"a\", \"protocol\": \"openai\", "              \
    "\"base_url\": "                                                                               \
    "\"%s/v1\"}, {\"name\": \"b\", \"protocol\": \"openai\", \"base_url\": \"%s/v1\"}]}"
    cbx_result r = {0};
    cr_assert_eq(run_on(rt, NULL, &r, PROBE_CALL, a.url, b.url), 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "content"), "from b");
    cbx_result_clear(&r);
    /* longer than open_ms: the next call is the probe (a sleep that can only be too long) */
    usleep(400 * 1000);
    cr_assert_eq(run_on(rt, NULL, &r, PROBE_CALL, a.url, b.url), 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "content"), "from a", "the probe did not go to provider a");
    cbx_result_clear(&r);
    json_t *list = NULL;
    cr_assert_eq(cbx_breaker_store_list(cbx_runtime_breakers(rt), &list, NULL), 0);
    size_t i;
    json_t *br;
    int seen = 0;
    json_array_foreach(list, i, br)
    {
        if (strncmp(json_string_value(json_object_get(br, "name")), "llm:a:", 6) != 0)
            continue;
        seen = 1;
        cr_assert_eq(json_integer_value(json_object_get(br, "opens")), 1);
        cr_assert_str_eq(json_string_value(json_object_get(br, "state")), "closed");
    }
    cr_assert(seen);
    json_decref(list);
    json_t *ra = requests(&a), *rb = requests(&b);
    cr_assert_eq(json_array_size(ra), 2);
    cr_assert_eq(json_array_size(rb), 1);
    json_decref(ra);
    json_decref(rb);
    cbx_runtime_free(rt);
    stop(&a);
    stop(&b);
}

/* ---- an agent cancelled while its model call is out -------------------------------------------
 */

/* A number from fake_llm's /stats, over a plain socket. */
static long stat_of(const server *s, const char *key)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char req[] = "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    shutdown(fd, SHUT_WR); /* the server keeps connections alive: it closes on our end */
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(body, "%s", buf);
    json_t *v = json_loads(strchr(body, '{'), JSON_DISABLE_EOF_CHECK, NULL);
    cr_assert_not_null(v, "%s", body);
    long out = (long)json_integer_value(json_object_get(v, key));
    json_decref(v);
    return out;
}

static const server *slow_server;
static long in_flight_before; /* the server's count when the cancel was made */

static void cancel_when_asked(uv_timer_t *t)
{
    cancel_ctx *cc = t->data;
    json_t *reqs = requests(slow_server);
    size_t n = json_array_size(reqs);
    json_decref(reqs);
    if (n >= 1) {
        in_flight_before = stat_of(slow_server, "in_flight");
        cbx_runtime_cancel(cc->rt, cc->ex);
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, NULL);
    }
}

Test(llm, agent_cancel_during_the_model_call_leaves_no_request_in_flight)
{
    /* an answer streamed one character every 200 ms: minutes long */
    char script[2048];
    snprintf(script, sizeof script,
             "{\"turns\": [{\"content\": \"%0600d\", \"chunk_chars\": 1, \"chunk_delay_ms\": "
             "200}, {\"content\": \"never asked\"}]}",
             0);
    server s = start(script);
    slow_server = &s;
    char *ptext;
    cr_assert_geq(asprintf(&ptext,
                           "{\"model\": \"gpt-4o\", \"base_url\": \"%s/v1\", \"task\": \"t\", "
                           "\"stream\": true, \"tools\": [{\"name\": \"t\", \"executor\": "
                           "\"command\", \"params\": {\"argv\": [\"true\"]}}]}",
                           s.url),
                  0);
    json_t *p = json_loads(ptext, 0, NULL);
    free(ptext);
    cancel_ctx cc = {0};
    cr_assert_eq(cbx_runtime_new(&cc.rt, NULL, NULL), 0);
    cr_assert_eq(
        cbx_runtime_submit(
            cc.rt,
            &(cbx_request){.executor = "agent", .params = p, .on_done = cancel_done, .ud = &cc},
            &cc.ex, NULL),
        0);
    uv_timer_t timer;
    uv_timer_init(cbx_runtime_loop(cc.rt), &timer);
    timer.data = &cc;
    uv_timer_start(&timer, cancel_when_asked, 10, 10);
    uint64_t t0 = uv_hrtime();
    cbx_runtime_run(cc.rt);
    cr_assert(cc.done);
    cr_assert_eq(cc.res.status, CBX_STATUS_CANCELLED);
    cr_assert_lt(uv_hrtime() - t0, 60ull * 1000000000ull, "the cancel did not stop the stream");
    cr_assert_eq(in_flight_before, 1, "the model request was not being answered at the cancel");
    /* the server sees the request go away (at its next write, 200 ms on) and gets no other */
    long in_flight = -1;
    for (int i = 0; i < 600 && (in_flight = stat_of(&s, "in_flight")) != 0; i++)
        usleep(100 * 1000);
    cr_assert_eq(in_flight, 0, "the model request is still being answered after the cancel");
    cr_assert_eq(stat_of(&s, "requests"), 1, "no request may follow a cancel");
    json_decref(cc.res.outputs);
    json_decref(p);
    cbx_runtime_free(cc.rt);
    stop(&s);
}

Test(llm, refused_tool_calls_in_an_ollama_stream_are_counted_and_never_run)
{
    char marker[300];
    snprintf(marker, sizeof marker, "%s/ran", tmpdir);
    server s = start("{\"turns\": [{\"tool_calls\": ["
                     "{\"name\": \"ghost\", \"arguments\": {}},"
                     "{\"name\": \"touch\", \"arguments\": {\"n\": \"many\"}}]},"
                     "{\"content\": \"sorry\"}]}");
    cbx_result r = {0};
    int rc = run_on(NULL, NULL, &r,
                    "{\"model\": \"llama3\", \"ollama_base_url\": \"%s\", \"input\": \"go\", "
                    "\"stream\": true, \"tools\": [{\"name\": \"touch\", \"executor\": "
                    "\"command\", \"params\": {\"argv\": [\"touch\", \"%s\"]}, \"arguments\": "
                    "{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\"}}}}]}",
                    s.url, marker);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_str_eq(out_str(&r, "content"), "sorry");
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "tool_errors")), 2);
    cr_assert_neq(access(marker, F_OK), 0, "a refused tool call ran");
    json_t *reqs = requests(&s);
    cr_assert_eq(json_array_size(reqs), 2);
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    cr_assert_eq(json_array_size(msgs), 4);
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
               "unknown tool 'ghost'"));
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(json_array_get(msgs, 3), "content")),
               "argument 'n': expected integer"));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 3), "tool_name")),
                     "touch");
    json_decref(reqs);
    cbx_result_clear(&r);
    stop(&s);
}
