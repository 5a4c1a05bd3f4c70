/* The llm executor: chat completions over the OpenAI and Ollama wire protocols, plain or
 * streamed, with tools that are cbx executors, on the runtime's loop through libcurl's multi
 * interface (the http executor's per-loop context, executors/http.h).
 *
 * One attempt is a conversation: a request to the model; when the model answers with tool
 * calls, each call runs as a child execution on the same runtime, the results go back to the
 * model, and the loop goes on until the model answers without tool calls (at most max_rounds
 * requests). With several providers, each request goes to the first whose breaker admits it.
 *
 * Files: llm.c (the type: schema, validation, start, cancel), provider.c (which server,
 * which protocol, which key; breakers), body.c (request bodies of both protocols, written as
 * text), wire.c (plain responses of both protocols), stream.c (SSE and NDJSON events into one
 * answer), transfer.c (the HTTP exchange), tools.c (tool definitions and child executions),
 * settings.c (cbx/llm.h's tables), conversation.c (the loop of one attempt), report.c (its end),
 * memory.c (conversation memory), cassette.c (record and replay), agent.c (the agent type), scan.c
 * (reading fields of the servers' JSON without a jansson tree).
 */
#ifndef CBX_EXECUTORS_LLM_LLM_H
#define CBX_EXECUTORS_LLM_LLM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/executor.h"
#include "cbx/runtime.h"
#include "core/strbuf.h"
#include "executors/http.h"

const cbx_executor_type *cbx__llm_type(void);
const cbx_executor_type *cbx__agent_type(void);

typedef enum llm_proto { LLM_OPENAI, LLM_OLLAMA } llm_proto;

/* One place requests can go. Strings are malloc'd. */
typedef struct llm_provider {
    llm_proto proto;
    char *url;     /* the full chat URL */
    char *model;   /* the model to ask for */
    char *api_key; /* NULL: no Authorization header */
    char *breaker; /* its breaker's name ("llm:openai:gpt-4o@host"); NULL for a lone provider */
} llm_provider;

/* What one model response said, plain or assembled from a stream. */
typedef struct llm_answer {
    char *content; /* malloc'd, NUL-terminated; NULL = none yet */
    size_t len, cap;
    json_t *tool_calls; /* [{id, name, arguments (string)}] in the model's order */
    char finish_reason[32];
    char model[128];
    long long prompt_tokens, completion_tokens;
    int done;        /* the stream's end was seen ([DONE], done:true, or a finish) */
    uint32_t events; /* streamed events parsed */
    char error[256]; /* a malformed response or stream; "" when fine */
} llm_answer;

typedef struct llm_call llm_call;

/* One HTTP exchange; x first so that the multi context's callbacks find it. */
typedef struct llm_xfer {
    cbx__http_xfer x;
    llm_call *call;
    int stream;
    long status;
    cbx__buf body; /* the response body when it is not a 200 stream (an error, or plain JSON) */
    char *line;    /* a stream's unfinished line */
    size_t line_len, line_cap;
    char *event_data; /* SSE: the data lines of the event being read */
    size_t event_len, event_cap;
    char retry_after[64];
    int replay;    /* served from a cassette, not the network */
    int keep_raw;  /* recording: a 200 stream's bytes are kept in body too */
    int json_body; /* the response's Content-Type is application/json (not a stream) */
    llm_answer ans;
} llm_xfer;

/* A tool as the request gave it (borrowed from the parameters) and what the model sees. */
typedef struct llm_tool {
    const char *name;
    const json_t *spec;            /* the tool's object in the parameters */
    const cbx_executor_type *type; /* the executor it runs */
    json_t *schema;                /* the arguments' JSON Schema (owned) */
    cbx_policy *policy;            /* from spec.policy (owned); NULL = one attempt */
} llm_tool;

/* A tool call being run as a child execution. */
typedef struct llm_child {
    llm_call *call;
    size_t index; /* in the round's tool calls */
    cbx_execution *ex;
    int running;
} llm_child;

struct llm_call {
    cbx_task *task;
    cbx_runtime *rt;
    cbx__http_loop *lp;
    const json_t *params;
    llm_provider *providers;
    size_t nproviders, provider; /* the list, and the one in use */
    cbx_permit permit;           /* the provider's breaker permit, while a request is out */
    uint64_t req_t0_ns;
    llm_tool *tools;
    size_t ntools;
    json_t *messages;      /* the whole conversation so far, OpenAI-shaped */
    size_t first_added;    /* index of the first message this attempt added */
    json_t *tool_calls;    /* every call made: {id, name, arguments, ok, error?, execution} */
    json_t *round_results; /* this round's tool messages, by call index (null until done) */
    llm_child *children;
    size_t nchildren, children_running;
    uint32_t rounds, max_rounds;
    uint32_t tool_errors; /* calls refused: unknown tool, bad arguments */
    long long prompt_tokens, completion_tokens;
    double cost;
    int cost_known;
    llm_xfer *xfer; /* the request out; NULL */
    int cancelled;
    int reported;
    json_t *failures; /* providers skipped this request: [{provider, error}] */
    /* the agent executor's limits (agent.c); agent 0 for llm */
    int agent;
    uint32_t memory_size;       /* non-system messages sent to the model; 0 = all */
    long long max_total_tokens; /* 0 = none */
    double max_cost;            /* US dollars; 0 = none */
    uint64_t max_time_ns;       /* from the attempt's start; 0 = none */
    uint64_t t0_ns;
    char breaker_tool[72]; /* agent: a tool refused by its open breaker this round ("" none) */
    size_t first_new;      /* index of the first message of this call (after the memory) */
    size_t memory_loaded;  /* messages read back from the conversation's memory */
};

/* ---- llm.c ---- */
/* A parameter refused by validation: fmt gives "PATH: what is wrong"; PATH becomes err->where
 * (which the caller shows as "parameter 'PATH': ...") and the rest the message. Returns
 * CBX_EINVAL_CONFIG. */
int cbx__llm_invalid(cbx_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- provider.c ---- */
/* Fill c->providers from the parameters. 0, or CBX_EINVAL_CONFIG with a one-line message
 * naming the parameter in err. */
int cbx__llm_providers_load(llm_call *c, cbx_err *err);
void cbx__llm_providers_free(llm_call *c);
/* Checks of the provider parameters without building anything (the validate hook). */
int cbx__llm_providers_validate(const json_t *params, cbx_err *err);
/* The next provider from c->provider on whose breaker a permit is granted (c->permit): its
 * index, or -1 when every breaker refuses (why words the last refusal). */
long cbx__llm_provider_acquire(llm_call *c, size_t from, char *why, size_t len);
void cbx__llm_provider_record(llm_call *c, cbx_outcome k);

/* ---- scan.c ---- */
/* A JSON value's text inside a checked document. */
typedef struct llm_span {
    const char *p;
    size_t n;
} llm_span;
/* Check that s is one JSON object or array that jansson reads the same way (else -1: parse it
 * with jansson, which says what is wrong); 0 and the value's span in *out. */
int cbx__llm_json_check(const char *s, size_t n, llm_span *out);
/* The value of key in a checked object (the last of equal keys): 1, or 0 when absent or obj is
 * not an object. */
int cbx__llm_json_get(llm_span obj, const char *key, llm_span *out);
/* Several keys of a checked object at once (at most 32): out[i] for each key found, whose bits
 * are set in the result. */
unsigned cbx__llm_json_fields(llm_span obj, const char *const *keys, size_t nkeys, llm_span *out);
/* Element i of a checked array: 1, or 0. */
int cbx__llm_json_at(llm_span arr, size_t i, llm_span *out);
/* Decode a checked string value (v.p[0] == '"') into dst, which has room for v.n bytes;
 * NUL-terminated; returns its length. */
size_t cbx__llm_json_decode(llm_span v, char *dst);
/* A checked integer value: 0 and *out, or -1 when v is not an integer. */
int cbx__llm_json_int(llm_span v, long long *out);
#define LLM_IS_STR(s) ((s).n >= 2 && (s).p[0] == '"')

/* ---- body.c ---- */
/* The request body for the conversation so far, in p's protocol, as JSON text (malloc'd,
 * *len its length), or NULL when out of memory. */
char *cbx__llm_request_text(const llm_call *c, const llm_provider *p, int stream, size_t *len);

/* ---- wire.c ---- */
/* Read a plain (non-streamed) response body into a. 0, or -1 with a->error set. */
int cbx__llm_parse_plain(llm_proto proto, const char *body, size_t len, llm_answer *a);
/* The error message in an error body of either protocol (into buf), "" when there is none. */
void cbx__llm_error_message(const char *body, size_t len, char *buf, size_t blen);
void cbx__llm_answer_clear(llm_answer *a);
int cbx__llm_answer_append(llm_answer *a, const char *s, size_t n);
/* Append a checked JSON string's decoded text; *text and *n say where it went. 0, or -1. */
int cbx__llm_answer_append_span(llm_answer *a, llm_span v, const char **text, size_t *n);
/* A checked JSON string's decoded text into buf, cut to len - 1 bytes as snprintf would. */
void cbx__llm_span_copy(llm_span v, char *buf, size_t len);

/* ---- stream.c ---- */
/* Feed response bytes of a 200 stream. 0, or -1 with x->ans.error set (stop the transfer). */
int cbx__llm_stream_feed(llm_xfer *x, const char *p, size_t n);
/* The transfer ended: parse what is left. */
void cbx__llm_stream_end(llm_xfer *x);
/* Where a streamed piece of the answer arrives (a content delta, or a piece of a tool call's
 * arguments), in order: the one place partial output is handed on as it comes. The full
 * answer is assembled in x->ans whatever this does. */
void cbx__llm_stream_delta(llm_xfer *x, const char *kind, const char *text, size_t n);

/* ---- transfer.c ---- */
/* Send the conversation to provider p. 0, or a negative code with err set (nothing is out). */
int cbx__llm_transfer_start(llm_call *c, const llm_provider *p, cbx_err *err);
/* Stop the request out (its end is reported later through cbx__llm_transfer_ended). */
void cbx__llm_transfer_cancel(llm_call *c);
/* The exchange ended (from the multi context): hand it to the conversation. */
void cbx__llm_transfer_ended(llm_call *c, llm_xfer *x);
void cbx__llm_xfer_free(llm_xfer *x);

/* ---- cassette.c ---- */
/* The record (replay 0) or replay directory: the parameter, else $CBX_LLM_RECORD /
 * $CBX_LLM_REPLAY; NULL when none. */
const char *cbx__llm_cassette_dir(const llm_call *c, int replay);
/* Write the exchange x (its request body, status, Retry-After, raw response) to the record
 * directory. Best effort: a cassette that cannot be written is skipped. */
void cbx__llm_cassette_record(llm_call *c, const llm_provider *p, llm_xfer *x, int curl_result,
                              uint64_t elapsed_ns);
/* Fill x from the replay directory's file for its request (status, Retry-After, curl's result,
 * the response fed to the stream parser or put in body). 0, or a negative code with err set
 * (-ENOENT: nothing recorded for this request). */
int cbx__llm_cassette_replay(llm_call *c, const llm_provider *p, llm_xfer *x, cbx_err *err);

/* ---- tools.c ---- */
/* Resolve the tools parameter against the runtime's registry. 0 or CBX_EINVAL_CONFIG. */
int cbx__llm_tools_load(llm_call *c, cbx_err *err);
void cbx__llm_tools_free(llm_call *c);
int cbx__llm_tools_validate(const json_t *params, cbx_err *err);
/* The tools array for the request body in p's protocol (new reference; NULL = no tools). */
json_t *cbx__llm_tools_wire(const llm_call *c);
/* Start the answer's tool calls (appended to the conversation first). Calls that cannot run
 * get their error result at once. Returns how many children were started. */
size_t cbx__llm_tools_run(llm_call *c, const json_t *tool_calls);
/* Cancel the running children (their ends still arrive). */
void cbx__llm_tools_cancel(llm_call *c);

/* ---- memory.c ---- */
/* The conversation's kept messages (params.conversation; an empty array without one; cleared
 * first with memory_clear) in *out. 0, or a negative code with err set (no journal: the
 * parameter is named). */
int cbx__llm_memory_load(llm_call *c, json_t **out, cbx_err *err);
/* Keep messages [from, end) of the conversation, in the journal's open batch. */
int cbx__llm_memory_save(llm_call *c, size_t from, cbx_err *err);
/* Drop the oldest of history (stolen; the result is a new reference) until it and keep_tokens
 * fit budget by the estimate (never starting on a tool result); budget <= 0: all kept. */
json_t *cbx__llm_memory_trim(json_t *history, long long budget, long long keep_tokens);
/* The token estimate of a message: (content + tool_calls bytes + 3) / 4 + 4. */
long long cbx__llm_estimate_tokens(const json_t *msg);

/* ---- report.c ---- */
/* Report the attempt with outcome k (kind: the error_kind of a failure, NULL on success), the
 * last answer a (may be NULL) and a one-line error (NULL: none), then release c. Once. */
void cbx__llm_finish(llm_call *c, cbx_outcome k, const char *kind, const llm_answer *a,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The quality expression over outputs: 0 and *q in 0..1, or -1 with why. */
int cbx__llm_eval_quality(const char *expr, json_t *outputs, double *q, char *why, size_t len);

/* ---- conversation.c, llm.c ---- */
/* Begin the conversation of c (task, params, rt, lp and the limits set): 0 (the attempt reports
 * later, or has reported already). */
int cbx__llm_begin(llm_call *c);
void cbx__llm_cancel_call(llm_call *c);
int cbx__llm_loop_init(const cbx_executor_type *type, void *loop, void **state, cbx_err *err);
void cbx__llm_loop_close(const cbx_executor_type *type, void *loop, void *state);
/* Checks shared by llm and agent: providers, parameters, response_format, quality, tools. */
int cbx__llm_validate_common(const json_t *params, cbx_err *err);
/* The messages to send are the system messages and those from this index on: the last
 * memory_size others (never starting on a tool result, whose assistant message would be
 * missing); 0 when memory_size is 0. */
size_t cbx__llm_window_from(const llm_call *c);
/* Every child of the round has ended: append the results and ask the model again. */
void cbx__llm_round_done(llm_call *c);

#endif
