/* One OTLP/HTTP request: POST the JSON body to the traces endpoint with libcurl's easy
 * interface, on the exporter's thread (it blocks for at most the request timeout). libcurl is
 * the one the http executor loads on first use (core/curl_lib.h): loaded (cbx__otlp_prepare)
 * when the exporter starts, with the first span, never at start. */
#include "telemetry/trace.h"

#include <curl/curl.h>

#include "core/curl_lib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cbx__otlp_client {
    CURL *easy;
    struct curl_slist *headers;
};

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* libcurl calls it while a transfer waits (about once a second at least): non-zero aborts it. */
static int progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                    curl_off_t ulnow)
{
    (void)ud, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return cbx__otlp_abandoned();
}

int cbx__otlp_prepare(char *why, size_t whylen)
{
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx__curl_load(&e) < 0) {
        snprintf(why, whylen, "%s", e.msg);
        return -1;
    }
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "curl_global_init: %s", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

static cbx__otlp_client *client_new(const cbx__otlp_config *c, char *why, size_t whylen)
{
    cbx__otlp_client *cl = calloc(1, sizeof *cl);
    if (!cl || !(cl->easy = curl_easy_init())) {
        free(cl);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (char **p = c->headers; h && p && *p; p++) {
        struct curl_slist *more = curl_slist_append(h, *p);
        if (!more) {
            curl_slist_free_all(h);
            h = NULL;
        } else {
            h = more;
        }
    }
    struct curl_slist *more = h ? curl_slist_append(h, "Expect:") : NULL; /* no 100-continue */
    if (!more) {
        curl_slist_free_all(h);
        curl_easy_cleanup(cl->easy);
        free(cl);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    cl->headers = more;
    return cl;
}

void cbx__otlp_client_free(cbx__otlp_client *cl)
{
    if (!cl)
        return;
    curl_easy_cleanup(cl->easy);
    curl_slist_free_all(cl->headers);
    free(cl);
}

int cbx__otlp_post(cbx__otlp_client **clp, const cbx__otlp_config *c, const char *body, size_t len,
                   char *why, size_t whylen)
{
    if (!*clp && !(*clp = client_new(c, why, whylen)))
        return -1;
    CURL *e = (*clp)->easy;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, (*clp)->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "cbx-otlp");
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress);
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s: %s", c->url, curl_easy_strerror(rc));
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        snprintf(why, whylen, "%s: HTTP status %ld", c->url, status);
        return -1;
    }
    return 0;
}
