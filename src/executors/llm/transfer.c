/* One exchange with a model server: the request on a pooled easy handle of the llm type's
 * multi context, the response read as it arrives (a 200 stream into the stream parser,
 * anything else into a buffer), and its end handed back to the conversation. */
#define _GNU_SOURCE
#include "executors/llm/llm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define MAX_BODY (64u << 20)

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    llm_xfer *x = ud;
    size_t n = size * nmemb;
    if (x->status == 0) {
        curl_easy_getinfo(x->x.easy->curl, CURLINFO_RESPONSE_CODE, &x->status);
        /* a server that does not stream answers a streamed request with one JSON body */
        if (x->stream && x->json_body)
            x->stream = 0;
    }
    if (x->stream && x->status == 200) {
        if (cbx__llm_stream_feed(x, p, n) < 0)
            return 0; /* stops the transfer */
        if (!x->keep_raw)
            return n;
    }
    if (x->body.len + n > MAX_BODY) {
        snprintf(x->ans.error, sizeof x->ans.error, "response larger than %u bytes", MAX_BODY);
        return 0;
    }
    cbx__buf_put(&x->body, p, n);
    return x->body.oom ? 0 : n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    llm_xfer *x = ud;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        const char *v = p + 12;
        size_t vn = n - 12;
        while (vn && (*v == ' ' || *v == '\t'))
            v++, vn--;
        while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
            vn--;
        snprintf(x->retry_after, sizeof x->retry_after, "%.*s", (int)vn, v);
    } else if (n > 13 && strncasecmp(p, "content-type:", 13) == 0) {
        const char *v = p + 13;
        while (*v == ' ' || *v == '\t')
            v++;
        x->json_body = strncasecmp(v, "application/json", 16) == 0;
    }
    return n;
}

static void on_end(cbx__http_xfer *hx)
{
    llm_xfer *x = (llm_xfer *)hx;
    cbx__llm_transfer_ended(x->call, x);
}

void cbx__llm_xfer_free(llm_xfer *x)
{
    if (!x)
        return;
    curl_slist_free_all(x->x.header_list);
    free(x->x.request_body);
    free(x->body.p);
    free(x->line);
    free(x->event_data);
    cbx__llm_answer_clear(&x->ans);
    free(x);
}

int cbx__llm_transfer_start(llm_call *c, const llm_provider *p, cbx_err *err)
{
    int r = cbx__http_loop_ready(c->lp);
    if (r < 0)
        return cbx_err_set(err, r, "llm: cannot set up libcurl: %s", cbx_strerror(r));
    llm_xfer *x = calloc(1, sizeof *x);
    if (!x)
        return cbx_err_set(err, -ENOMEM, "llm: out of memory");
    x->call = c;
    x->stream = json_is_true(json_object_get(c->params, "stream"));
    size_t body_len = 0;
    x->x.request_body = cbx__llm_request_text(c, p, x->stream, &body_len);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char *auth = NULL;
    if (p->api_key && *p->api_key && asprintf(&auth, "Authorization: Bearer %s", p->api_key) > 0)
        h = curl_slist_append(h, auth);
    free(auth);
    if (x->stream)
        h = curl_slist_append(h, p->proto == LLM_OPENAI ? "Accept: text/event-stream"
                                                        : "Accept: application/x-ndjson");
    x->x.header_list = h;
    if (cbx__llm_cassette_dir(c, 1)) {
        /* replay: no network; the recorded response is reported on the next turn of the loop */
        x->replay = 1;
        if (!x->x.request_body || (r = cbx__llm_cassette_replay(c, p, x, err)) < 0 ||
            (r = cbx__http_loop_ready(c->lp)) < 0 || (r = cbx__http_loop_begin(c->lp)) < 0) {
            if (r == 0)
                r = cbx_err_set(err, -ENOMEM, "llm: out of memory");
            cbx__llm_xfer_free(x);
            return r;
        }
        x->x.task = c->task;
        x->x.lp = c->lp;
        x->x.on_end = on_end;
        x->x.phase = 2;
        c->xfer = x;
        c->req_t0_ns = uv_hrtime();
        cbx__http_loop_defer(c->lp, &x->x);
        return 0;
    }
    x->keep_raw = cbx__llm_cassette_dir(c, 0) != NULL;
    cbx__http_easy *e = x->x.request_body && h ? cbx__http_easy_take(c->lp) : NULL;
    if (!e) {
        cbx__llm_xfer_free(x);
        return cbx_err_set(err, -ENOMEM, "llm: out of memory");
    }
    if ((r = cbx__http_loop_begin(c->lp)) < 0) {
        cbx__http_easy_give(c->lp, e, 1);
        cbx__llm_xfer_free(x);
        return cbx_err_set(err, r, "llm: out of memory");
    }
    x->x.task = c->task;
    x->x.lp = c->lp;
    x->x.easy = e;
    x->x.on_end = on_end;
    x->x.t0_ns = uv_hrtime();
    e->x = &x->x;
    e->extras = 1; /* our callbacks and body: back to curl's defaults when it returns */
    CURL *cu = e->curl;
    curl_easy_setopt(cu, CURLOPT_PRIVATE, (char *)e);
    curl_easy_setopt(cu, CURLOPT_URL, p->url);
    curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_USERAGENT, "cbx-llm");
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(cu, CURLOPT_POSTFIELDS, x->x.request_body);
    curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)body_len);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, e->errbuf);
    curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
    e->errbuf[0] = 0;
    cbx__http_loop_configure(c->lp, cu);
    if ((r = cbx__http_loop_add(c->lp, &x->x)) < 0) {
        e->x = NULL;
        cbx__http_easy_give(c->lp, e, 1);
        cbx__http_loop_end(c->lp);
        cbx__llm_xfer_free(x);
        return cbx_err_set(err, r, "llm: cannot start the transfer: %s", cbx_strerror(r));
    }
    x->x.phase = 1;
    c->xfer = x;
    c->req_t0_ns = uv_hrtime();
    return 0;
}

void cbx__llm_transfer_cancel(llm_call *c)
{
    llm_xfer *x = c->xfer;
    if (!x || x->x.phase != 1)
        return;
    x->x.cancelled = 1;
    cbx__http_loop_remove(c->lp, &x->x);
    x->x.result = CURLE_ABORTED_BY_CALLBACK;
    x->x.phase = 2;
    cbx__http_loop_defer(c->lp, &x->x);
}
