/* Record and replay of model exchanges ("cassettes"): with `record` (or $CBX_LLM_RECORD) each
 * exchange's request and raw response are written to a file in a directory; with `replay` (or
 * $CBX_LLM_REPLAY) the response is read back from there instead of being asked for, byte for
 * byte, so flows and agents that use models run the same without a network. A file is named by
 * a hash of the request (the URL's path and the body, keys sorted) and its occurrence in the
 * process: KEY-N.json. No header is recorded: no key reaches a cassette. */
#define _GNU_SOURCE
#include "executors/llm/llm.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/text.h"

/* Occurrences of each key in this process, so that identical requests get files in order. */
typedef struct seen {
    char key[24];
    int replay;
    unsigned n;
    struct seen *next;
} seen;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static seen *seen_list;

static unsigned next_occurrence(const char *key, int replay)
{
    pthread_mutex_lock(&seen_lock);
    seen *s = seen_list;
    while (s && (strcmp(s->key, key) != 0 || s->replay != replay))
        s = s->next;
    if (!s && (s = calloc(1, sizeof *s)) != NULL) {
        snprintf(s->key, sizeof s->key, "%s", key);
        s->replay = replay;
        s->next = seen_list;
        seen_list = s;
    }
    unsigned n = s ? s->n++ : 0;
    pthread_mutex_unlock(&seen_lock);
    return n;
}

const char *cbx__llm_cassette_dir(const llm_call *c, int replay)
{
    const char *d = json_string_value(json_object_get(c->params, replay ? "replay" : "record"));
    if (!d) {
        d = getenv(replay ? "CBX_LLM_REPLAY" : "CBX_LLM_RECORD");
        if (d && !*d)
            d = NULL;
    }
    return d;
}

static const char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *slash = strchr(p, '/');
    return slash ? slash : "/";
}

/* The file for the request body (text) to p, into path. */
static void file_for(const llm_provider *p, const char *body, const char *dir, int replay,
                     char *path, size_t len)
{
    json_t *v = json_loads(body, 0, NULL);
    char *canon = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(v);
    const char *up = url_path(p->url);
    uint64_t h = cbx__fnv1a(CBX__FNV_OFFSET, up, strlen(up));
    h = cbx__fnv1a(h, "\n", 1);
    const char *b = canon ? canon : body;
    h = cbx__fnv1a(h, b, strlen(b));
    free(canon);
    char key[24];
    snprintf(key, sizeof key, "%016llx", (unsigned long long)h);
    unsigned n = next_occurrence(key, replay);
    if (!replay) /* files of earlier processes stay: take the next free number */
        for (;; n = next_occurrence(key, replay)) {
            snprintf(path, len, "%s/%s-%u.json", dir, key, n);
            if (access(path, F_OK) != 0)
                return;
        }
    snprintf(path, len, "%s/%s-%u.json", dir, key, n);
}

void cbx__llm_cassette_record(llm_call *c, const llm_provider *p, llm_xfer *x, int curl_result,
                              uint64_t elapsed_ns)
{
    const char *dir = cbx__llm_cassette_dir(c, 0);
    if (!dir || !x->x.request_body)
        return;
    mkdir(dir, 0700);
    char path[1024];
    file_for(p, x->x.request_body, dir, 0, path, sizeof path);
    json_t *req = json_loads(x->x.request_body, 0, NULL);
    json_t *body = json_stringn(x->body.p ? x->body.p : "", x->body.len);
    json_t *rec = json_pack("{s:{s:s, s:o}, s:i, s:s, s:b, s:o, s:i, s:I}", "request", "path",
                            url_path(p->url), "body", req ? req : json_null(), "status",
                            (int)x->status, "retry_after", x->retry_after, "stream", x->stream,
                            "response", body ? body : json_null(), "curl_result", curl_result,
                            "elapsed_ms", (json_int_t)(elapsed_ns / 1000000));
    if (rec)
        json_dump_file(rec, path, JSON_INDENT(1));
    json_decref(rec);
}

int cbx__llm_cassette_replay(llm_call *c, const llm_provider *p, llm_xfer *x, cbx_err *err)
{
    const char *dir = cbx__llm_cassette_dir(c, 1);
    char path[1024];
    file_for(p, x->x.request_body, dir, 1, path, sizeof path);
    json_error_t je;
    json_t *rec = json_load_file(path, 0, &je);
    if (!rec)
        return cbx_err_set(err, -ENOENT,
                           "replay: no recorded exchange for this request in %s (%s: %s)", dir,
                           path, je.text);
    x->status = (long)json_integer_value(json_object_get(rec, "status"));
    const char *ra = json_string_value(json_object_get(rec, "retry_after"));
    snprintf(x->retry_after, sizeof x->retry_after, "%s", ra ? ra : "");
    x->x.result = (CURLcode)json_integer_value(json_object_get(rec, "curl_result"));
    x->stream = json_is_true(json_object_get(rec, "stream")); /* as the server answered */
    const json_t *resp = json_object_get(rec, "response");
    const char *text = json_string_value(resp);
    size_t n = json_string_length(resp);
    int r = 0;
    if (x->stream && x->status == 200) {
        if (text && cbx__llm_stream_feed(x, text, n) < 0)
            r = 0; /* the error is in x->ans, reported as it was */
    } else if (text) {
        x->body.p = malloc(n + 1);
        if (!x->body.p)
            r = cbx_err_set(err, -ENOMEM, "replay: out of memory");
        else {
            memcpy(x->body.p, text, n);
            x->body.p[n] = 0;
            x->body.len = n;
            x->body.cap = n + 1;
        }
    }
    json_decref(rec);
    return r;
}
