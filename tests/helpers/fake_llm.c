/* fake_llm - a scripted model server on loopback speaking the OpenAI and Ollama chat protocols.
 *
 *   fake_llm --script FILE [--record FILE] [--port N] [--die-with-parent]
 *
 * Binds 127.0.0.1 (port 0 = any), prints the port on stdout when ready and serves until killed
 * (or, with --die-with-parent, until its parent dies). One thread per connection, keep-alive.
 *
 *   POST /v1/chat/completions   OpenAI (also under any prefix ending so: /openai/v1/...)
 *   POST /api/chat              Ollama
 *   GET  /stats                 {"requests": n, "turns_left": n, "in_flight": n}: in_flight
 *                               counts the chat requests being answered now (a client that goes
 *                               away mid-answer is noticed at the next write)
 *
 * The script is a JSON object {"turns": [TURN, ...]}; each chat request takes the next turn (a
 * turn with "repeat": N serves N requests, -1 every request from then on). Past the last turn
 * the answer is 500 "script exhausted". A turn says what to answer, in protocol-neutral terms;
 * the server writes it in the request's protocol, streamed when the request asked ("stream"):
 *
 *   content        the assistant's text ("")
 *   tool_calls     [{id, name, arguments}] (arguments an object or a JSON string)
 *   finish_reason  default "tool_calls" when there are tool calls, else "stop"
 *   usage          {prompt_tokens, completion_tokens}; default: request bytes / 4 and
 *                  content bytes / 4 + 1
 *   model          default: the request's
 *   status         HTTP status (200); with "error": the error body in the protocol's shape
 *   error          a message; error_code and error_type fill OpenAI's code and type
 *   retry_after    a Retry-After header value (seconds)
 *   delay_ms       wait before the response's headers
 *   chunk_chars    streamed text and tool arguments come in pieces of this many bytes (3)
 *   chunk_delay_ms wait between streamed events
 *   drop           close the connection without answering
 *   drop_after     streamed: close the connection after this many events (no terminator)
 *   raw            the body, verbatim (content_type, default application/json); streamed
 *                  responses send it as one chunk
 *
 * With --record every chat request is appended to FILE as one JSON line
 * {"n", "method", "path", "authorization", "body"} (body parsed), flushed before answering.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *turns;
static size_t turn_i;
static long turn_used;
static long nrequests;
static long in_flight;
static FILE *record;

static void sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- the script ------------------------------------------------------------------------------ */

/* The next turn (a copy of its own), or NULL when the script is exhausted. A copy, not a new
 * reference: connection threads would otherwise share reference counts, which jansson's header
 * reads without atomics. */
static json_t *take_turn(void)
{
    json_t *t = NULL;
    while (turn_i < json_array_size(turns)) {
        json_t *cand = json_array_get(turns, turn_i);
        json_int_t rep = json_integer_value(json_object_get(cand, "repeat"));
        if (rep == 0)
            rep = 1;
        if (rep < 0 || turn_used < rep) {
            turn_used++;
            t = json_deep_copy(cand);
            break;
        }
        turn_i++;
        turn_used = 0;
    }
    return t;
}

/* ---- answers ------------------------------------------------------------------------------- */

typedef struct conn {
    int fd;
    int ollama;
    int stream;
    int include_usage;
    const char *model;
} conn;

static int send_head(int fd, int status, const char *ctype, const char *extra, long length)
{
    char h[1024];
    int n = snprintf(h, sizeof h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s", status,
                     status == 200 ? "OK" : "Status", ctype, extra ? extra : "");
    if (length >= 0)
        n += snprintf(h + n, sizeof h - (size_t)n, "Content-Length: %ld\r\n\r\n", length);
    else
        n += snprintf(h + n, sizeof h - (size_t)n, "Transfer-Encoding: chunked\r\n\r\n");
    return write_all(fd, h, (size_t)n);
}

/* One chunk of a chunked body in one send: size line, data and CRLF leave as one TCP segment (the
 * socket has TCP_NODELAY), as a streaming server writes an event. */
static int send_chunk(int fd, const char *p, size_t n)
{
    char small[1024];
    char *buf = n + 32 <= sizeof small ? small : malloc(n + 32);
    if (!buf)
        return -1;
    int hn = snprintf(buf, 32, "%zx\r\n", n);
    memcpy(buf + hn, p, n);
    memcpy(buf + (size_t)hn + n, "\r\n", 2);
    int r = write_all(fd, buf, (size_t)hn + n + 2);
    if (buf != small)
        free(buf);
    return r;
}

static int send_body(int fd, int status, const char *ctype, const char *extra, const char *body)
{
    size_t n = strlen(body);
    if (send_head(fd, status, ctype, extra, (long)n))
        return -1;
    return write_all(fd, body, n);
}

static int send_json(int fd, int status, const char *extra, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    int r = send_body(fd, status, "application/json", extra, s ? s : "{}");
    free(s);
    return r;
}

/* A streamed event in the connection's framing: "data: JSON\n\n" or "JSON\n". */
typedef struct streamer {
    conn *c;
    long delay_ms;
    long drop_after; /* 0 = never */
    long sent;
} streamer;

static int emit(streamer *s, json_t *v)
{
    if (s->drop_after > 0 && s->sent >= s->drop_after) {
        json_decref(v);
        return -1;
    }
    if (s->sent > 0)
        sleep_ms(s->delay_ms);
    char *j = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    char *line = NULL;
    int n = s->c->ollama ? asprintf(&line, "%s\n", j) : asprintf(&line, "data: %s\n\n", j);
    free(j);
    if (n < 0)
        return -1;
    int r = send_chunk(s->c->fd, line, (size_t)n);
    free(line);
    s->sent++;
    return r;
}

static char *arguments_text(const json_t *tc)
{
    const json_t *a = json_object_get(tc, "arguments");
    if (json_is_string(a))
        return strdup(json_string_value(a));
    return json_dumps(a ? a : json_object(), JSON_COMPACT);
}

static json_t *openai_chunk(conn *c, json_t *delta, const char *finish)
{
    return json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:o, s:o}]}", "id", "chatcmpl-fake", "object",
                     "chat.completion.chunk", "created", 1700000000, "model", c->model, "choices",
                     "index", 0, "delta", delta, "finish_reason",
                     finish ? json_string(finish) : json_null());
}

static json_t *usage_of(const json_t *turn, size_t req_len, const char *content)
{
    const json_t *u = json_object_get(turn, "usage");
    json_int_t p =
        u ? json_integer_value(json_object_get(u, "prompt_tokens")) : (json_int_t)(req_len / 4);
    json_int_t k = u ? json_integer_value(json_object_get(u, "completion_tokens"))
                     : (json_int_t)(strlen(content) / 4 + 1);
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", p, "completion_tokens", k, "total_tokens",
                     p + k);
}

static int answer_stream(conn *c, const json_t *turn, const char *content, const char *finish,
                         json_t *usage)
{
    const json_t *tcs = json_object_get(turn, "tool_calls");
    size_t step = (size_t)json_integer_value(json_object_get(turn, "chunk_chars"));
    if (step == 0)
        step = 3;
    streamer s = {c, (long)json_integer_value(json_object_get(turn, "chunk_delay_ms")),
                  (long)json_integer_value(json_object_get(turn, "drop_after")), 0};
    if (send_head(c->fd, 200, c->ollama ? "application/x-ndjson" : "text/event-stream", NULL, -1))
        return -1;
    size_t len = strlen(content);
    if (!c->ollama &&
        emit(&s,
             openai_chunk(c, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL)))
        return -1;
    for (size_t i = 0; i < len; i += step) {
        json_t *piece = json_stringn(content + i, len - i < step ? len - i : step);
        json_t *ev = c->ollama ? json_pack("{s:s, s:s, s:{s:s, s:o}, s:b}", "model", c->model,
                                           "created_at", "2024-01-01T00:00:00Z", "message", "role",
                                           "assistant", "content", piece, "done", 0)
                               : openai_chunk(c, json_pack("{s:o}", "content", piece), NULL);
        if (emit(&s, ev))
            return -1;
    }
    size_t i;
    const json_t *tc;
    json_array_foreach(tcs, i, tc)
    {
        const char *name = json_string_value(json_object_get(tc, "name"));
        const char *id = json_string_value(json_object_get(tc, "id"));
        if (c->ollama) {
            json_t *args = json_object_get(tc, "arguments");
            json_t *a = json_is_string(args) ? json_loads(json_string_value(args), 0, NULL)
                                             : json_incref(args);
            json_t *ev =
                json_pack("{s:s, s:s, s:{s:s, s:s, s:[{s:{s:s, s:o}}]}, s:b}", "model", c->model,
                          "created_at", "2024-01-01T00:00:00Z", "message", "role", "assistant",
                          "content", "", "tool_calls", "function", "name", name ? name : "",
                          "arguments", a ? a : json_object(), "done", 0);
            if (emit(&s, ev))
                return -1;
            continue;
        }
        json_t *head = json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index",
                                 (int)i, "id", id ? id : "call", "type", "function", "function",
                                 "name", name ? name : "", "arguments", "");
        if (emit(&s, openai_chunk(c, head, NULL)))
            return -1;
        char *args = arguments_text(tc);
        size_t an = strlen(args);
        for (size_t k = 0; k < an; k += step) {
            json_t *d =
                json_pack("{s:[{s:i, s:{s:o}}]}", "tool_calls", "index", (int)i, "function",
                          "arguments", json_stringn(args + k, an - k < step ? an - k : step));
            if (emit(&s, openai_chunk(c, d, NULL))) {
                free(args);
                return -1;
            }
        }
        free(args);
    }
    if (c->ollama) {
        json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:b, s:s, s:I, s:O, s:O}", "model",
                               c->model, "created_at", "2024-01-01T00:00:00Z", "message", "role",
                               "assistant", "content", "", "done", 1, "done_reason", finish,
                               "total_duration", (json_int_t)1000, "prompt_eval_count",
                               json_object_get(usage, "prompt_tokens"), "eval_count",
                               json_object_get(usage, "completion_tokens"));
        if (emit(&s, ev))
            return -1;
    } else {
        if (emit(&s, openai_chunk(c, json_object(), finish)))
            return -1;
        if (c->include_usage) {
            json_t *u = json_pack("{s:s, s:s, s:i, s:s, s:[], s:O}", "id", "chatcmpl-fake",
                                  "object", "chat.completion.chunk", "created", 1700000000, "model",
                                  c->model, "choices", "usage", usage);
            if (emit(&s, u))
                return -1;
        }
        if (s.drop_after > 0 && s.sent >= s.drop_after)
            return -1;
        if (send_chunk(c->fd, "data: [DONE]\n\n", 14))
            return -1;
    }
    return write_all(c->fd, "0\r\n\r\n", 5);
}

static json_t *plain_tool_calls(conn *c, const json_t *tcs)
{
    json_t *out = json_array();
    size_t i;
    const json_t *tc;
    json_array_foreach(tcs, i, tc)
    {
        const char *name = json_string_value(json_object_get(tc, "name"));
        if (c->ollama) {
            json_t *args = json_object_get(tc, "arguments");
            json_t *a = json_is_string(args) ? json_loads(json_string_value(args), 0, NULL)
                                             : json_incref(args);
            json_array_append_new(out,
                                  json_pack("{s:{s:s, s:o}}", "function", "name", name ? name : "",
                                            "arguments", a ? a : json_object()));
        } else {
            char *args = arguments_text(tc);
            const char *id = json_string_value(json_object_get(tc, "id"));
            json_array_append_new(out, json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id ? id : "call",
                                                 "type", "function", "function", "name",
                                                 name ? name : "", "arguments", args));
            free(args);
        }
    }
    return out;
}

static int answer_plain(conn *c, const json_t *turn, const char *content, const char *finish,
                        json_t *usage)
{
    const json_t *tcs = json_object_get(turn, "tool_calls");
    json_t *msg = json_pack("{s:s, s:s}", "role", "assistant", "content", content);
    if (json_array_size(tcs))
        json_object_set_new(msg, "tool_calls", plain_tool_calls(c, tcs));
    json_t *body;
    if (c->ollama)
        body = json_pack("{s:s, s:s, s:o, s:b, s:s, s:I, s:O, s:O}", "model", c->model,
                         "created_at", "2024-01-01T00:00:00Z", "message", msg, "done", 1,
                         "done_reason", finish, "total_duration", (json_int_t)1000,
                         "prompt_eval_count", json_object_get(usage, "prompt_tokens"), "eval_count",
                         json_object_get(usage, "completion_tokens"));
    else
        body = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:o, s:s}], s:O}", "id", "chatcmpl-fake",
                         "object", "chat.completion", "created", 1700000000, "model", c->model,
                         "choices", "index", 0, "message", msg, "finish_reason", finish, "usage",
                         usage);
    return send_json(c->fd, 200, NULL, body);
}

/* Answer one chat request with the next turn. < 0: close the connection. */
static int answer(conn *c, const json_t *turn, size_t req_len)
{
    sleep_ms((long)json_integer_value(json_object_get(turn, "delay_ms")));
    if (json_is_true(json_object_get(turn, "drop")))
        return -1;
    char extra[256] = "";
    const json_t *ra = json_object_get(turn, "retry_after");
    if (json_is_integer(ra))
        snprintf(extra, sizeof extra, "Retry-After: %lld\r\n", (long long)json_integer_value(ra));
    else if (json_is_string(ra))
        snprintf(extra, sizeof extra, "Retry-After: %s\r\n", json_string_value(ra));
    int status = (int)json_integer_value(json_object_get(turn, "status"));
    if (status == 0)
        status = 200;
    const json_t *raw = json_object_get(turn, "raw");
    if (json_is_string(raw)) {
        const char *ct = json_string_value(json_object_get(turn, "content_type"));
        if (!c->stream)
            return send_body(c->fd, status, ct ? ct : "application/json", extra,
                             json_string_value(raw));
        if (send_head(c->fd, status, ct ? ct : "text/event-stream", extra, -1) ||
            send_chunk(c->fd, json_string_value(raw), json_string_length(raw)))
            return -1;
        if (json_is_true(json_object_get(turn, "truncate")))
            return -1; /* the stream ends without its terminating chunk */
        return write_all(c->fd, "0\r\n\r\n", 5);
    }
    const json_t *err = json_object_get(turn, "error");
    if (err || status != 200) {
        const char *m = json_is_string(err) ? json_string_value(err) : "error";
        json_t *body;
        if (c->ollama) {
            body = json_pack("{s:s}", "error", m);
        } else {
            const char *code = json_string_value(json_object_get(turn, "error_code"));
            const char *type = json_string_value(json_object_get(turn, "error_type"));
            body = json_pack("{s:{s:s, s:s, s:o}}", "error", "message", m, "type",
                             type ? type : "invalid_request_error", "code",
                             code ? json_string(code) : json_null());
        }
        return send_json(c->fd, status == 200 ? 400 : status, extra, body);
    }
    const char *content = json_string_value(json_object_get(turn, "content"));
    if (!content)
        content = "";
    const char *finish = json_string_value(json_object_get(turn, "finish_reason"));
    if (!finish)
        finish = json_array_size(json_object_get(turn, "tool_calls")) ? "tool_calls" : "stop";
    const char *m = json_string_value(json_object_get(turn, "model"));
    if (m)
        c->model = m;
    json_t *usage = usage_of(turn, req_len, content);
    int r = c->stream ? answer_stream(c, turn, content, finish, usage)
                      : answer_plain(c, turn, content, finish, usage);
    json_decref(usage);
    return r;
}

/* ---- connections ------------------------------------------------------------------------------
 */

static const char *header_value(char *head, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    for (char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            char *e = strstr(v, "\r\n");
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= len)
                n = len - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return out;
        }
    }
    return NULL;
}

static int handle(int fd, char *head, const char *body, size_t body_len)
{
    char method[16] = "", path[512] = "";
    if (sscanf(head, "%15s %511s", method, path) != 2)
        return -1;
    if (strcmp(path, "/stats") == 0) {
        pthread_mutex_lock(&lock);
        long left = 0;
        for (size_t i = turn_i; i < json_array_size(turns); i++) {
            json_int_t rep =
                json_integer_value(json_object_get(json_array_get(turns, i), "repeat"));
            left += rep < 0 ? 1000000 : (rep ? rep : 1) - (i == turn_i ? turn_used : 0);
        }
        json_t *v = json_pack("{s:i, s:i, s:i}", "requests", (int)nrequests, "turns_left",
                              (int)left, "in_flight", (int)in_flight);
        pthread_mutex_unlock(&lock);
        return send_json(fd, 200, NULL, v);
    }
    size_t pl = strlen(path);
    conn c = {.fd = fd, .model = "fake-model"};
    if (pl >= 17 && strcmp(path + pl - 17, "/chat/completions") == 0)
        c.ollama = 0;
    else if (strcmp(path, "/api/chat") == 0)
        c.ollama = 1;
    else
        return send_json(fd, 404, NULL, json_pack("{s:s}", "error", "not found"));
    json_error_t je;
    json_t *req = json_loadb(body, body_len, 0, &je);
    char auth[512] = "";
    header_value(head, "Authorization", auth, sizeof auth);
    pthread_mutex_lock(&lock);
    long n = ++nrequests;
    if (record) {
        json_t *line = json_pack("{s:i, s:s, s:s, s:s, s:O}", "n", (int)n, "method", method, "path",
                                 path, "authorization", auth, "body", req ? req : json_null());
        char *s = json_dumps(line, JSON_COMPACT);
        fprintf(record, "%s\n", s);
        fflush(record);
        free(s);
        json_decref(line);
    }
    json_t *turn = take_turn();
    in_flight++;
    pthread_mutex_unlock(&lock);
    int r;
    if (!req) {
        json_t *e = c.ollama ? json_pack("{s:s}", "error", je.text)
                             : json_pack("{s:{s:s, s:s}}", "error", "message", je.text, "type",
                                         "invalid_request_error");
        r = send_json(fd, 400, NULL, e);
    } else if (!turn) {
        r = send_json(fd, 500, NULL, json_pack("{s:s}", "error", "script exhausted"));
    } else {
        c.stream = c.ollama ? !json_is_false(json_object_get(req, "stream"))
                            : json_is_true(json_object_get(req, "stream"));
        c.include_usage =
            json_is_true(json_object_get(json_object_get(req, "stream_options"), "include_usage"));
        const char *m = json_string_value(json_object_get(req, "model"));
        if (m)
            c.model = m;
        r = answer(&c, turn, body_len);
    }
    pthread_mutex_lock(&lock);
    in_flight--;
    pthread_mutex_unlock(&lock);
    json_decref(turn);
    json_decref(req);
    return r;
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        char *end;
        buf[len] = 0;
        while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
            if (len == cap && (buf = realloc(buf, (cap *= 2) + 1)) == NULL)
                goto out;
            ssize_t r = recv(fd, buf + len, cap - len, 0);
            if (r <= 0)
                goto out;
            len += (size_t)r;
            buf[len] = 0;
        }
        size_t head_len = (size_t)(end - buf) + 4;
        end[2] = 0; /* the head keeps its last line's \r\n */
        char cl[32] = "";
        size_t body_len =
            header_value(buf, "Content-Length", cl, sizeof cl) ? strtoul(cl, NULL, 10) : 0;
        while (len < head_len + body_len) {
            if (len == cap && (buf = realloc(buf, (cap *= 2) + 1)) == NULL)
                goto out;
            ssize_t r = recv(fd, buf + len, cap - len, 0);
            if (r <= 0)
                goto out;
            len += (size_t)r;
        }
        if (handle(fd, buf, buf + head_len, body_len) < 0)
            goto out;
        memmove(buf, buf + head_len + body_len, len - head_len - body_len);
        len -= head_len + body_len;
    }
out:
    free(buf);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *script = NULL, *rec = NULL;
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--script") == 0 && i + 1 < argc)
            script = argv[++i];
        else if (strcmp(argv[i], "--record") == 0 && i + 1 < argc)
            rec = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--die-with-parent") == 0)
            prctl(PR_SET_PDEATHSIG, SIGKILL);
        else {
            fprintf(stderr, "usage: fake_llm --script FILE [--record FILE] [--port N] "
                            "[--die-with-parent]\n");
            return 2;
        }
    }
    json_error_t je;
    json_t *doc = script ? json_load_file(script, 0, &je) : NULL;
    if (!doc || !json_is_array(json_object_get(doc, "turns"))) {
        fprintf(stderr, "fake_llm: %s:%d: %s\n", script ? script : "(no --script)", je.line,
                doc ? "expected {\"turns\": [...]}" : je.text);
        return 2;
    }
    turns = json_incref(json_object_get(doc, "turns"));
    if (rec && (record = fopen(rec, "a")) == NULL) {
        perror(rec);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 512) ||
        getsockname(lfd, (struct sockaddr *)&a, &al)) {
        perror("fake_llm: bind");
        return 1;
    }
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 256 * 1024);
        if (pthread_create(&th, &at, serve, (void *)(intptr_t)fd) != 0)
            close(fd);
        pthread_attr_destroy(&at);
    }
}
