/* One request to the container engine over its unix socket, on the loop's curl multi context. */
#include "executors/container/container.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bodies kept at most (the chain's answers are small; streams go to sinks). */
#define BODY_MAX (1u << 20)

/* ---- the socket --------------------------------------------------------------------------- */

static int is_socket(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Copy host (unix:///path or /path) into buf as a path. 0, or -1 for another scheme. */
static int host_path(const char *host, char *buf, size_t len)
{
    if (strncmp(host, "unix://", 7) == 0)
        host += 7;
    else if (strstr(host, "://"))
        return -1;
    snprintf(buf, len, "%s", host);
    return 0;
}

int cbx__ctr_socket_path(const char *docker_host, char *buf, size_t len, cbx_err *err)
{
    const char *src = "docker_host";
    const char *host = docker_host && *docker_host ? docker_host : NULL;
    if (!host) {
        host = getenv("DOCKER_HOST");
        src = "DOCKER_HOST";
        if (host && !*host)
            host = NULL;
    }
    if (host) {
        if (host_path(host, buf, len) < 0 || !buf[0])
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, src, 0, 0,
                                  "%s: '%.200s' is not a unix socket (unix:///path or a path); "
                                  "tcp and ssh engines are not supported",
                                  src, host);
        return 0;
    }
    char user[200] = "";
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    const char *fixed[] = {"/var/run/docker.sock", "/run/podman/podman.sock"};
    for (size_t i = 0; i < 2; i++) {
        if (is_socket(fixed[i])) {
            snprintf(buf, len, "%s", fixed[i]);
            return 0;
        }
    }
    if (xdg && *xdg) {
        snprintf(user, sizeof user, "%s/podman/podman.sock", xdg);
        if (is_socket(user)) {
            snprintf(buf, len, "%s", user);
            return 0;
        }
        snprintf(user, sizeof user, "%s/docker.sock", xdg);
        if (is_socket(user)) {
            snprintf(buf, len, "%s", user);
            return 0;
        }
    }
    /* None is there: Podman's usual one for this user, named in the error that follows. */
    if (geteuid() != 0 && xdg && *xdg)
        snprintf(buf, len, "%s/podman/podman.sock", xdg);
    else
        snprintf(buf, len, "%s", fixed[1]);
    return 0;
}

/* ---- requests ----------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *userp)
{
    cbx__ctr_req *rq = userp;
    size_t n = size * nmemb;
    if (rq->sink)
        return rq->sink(rq->sink_data, p, n) == 0 ? n : 0;
    if (rq->len >= BODY_MAX)
        return n; /* counted as read, not kept */
    size_t keep = n < BODY_MAX - rq->len ? n : BODY_MAX - rq->len;
    if (rq->len + keep + 1 > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 1024;
        while (cap < rq->len + keep + 1)
            cap *= 2;
        char *b = realloc(rq->body, cap);
        if (!b)
            return 0;
        rq->body = b;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, p, keep);
    rq->len += keep;
    rq->body[rq->len] = '\0';
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *userp)
{
    cbx__ctr_req *rq = userp;
    size_t n = size * nmemb;
    int blank = (n == 2 && p[0] == '\r' && p[1] == '\n') || (n == 1 && p[0] == '\n');
    if (blank && rq->on_headers && !rq->headers_seen && rq->easy) {
        long status = 0;
        curl_easy_getinfo(rq->easy->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            rq->headers_seen = 1;
            rq->on_headers(rq);
        }
    }
    return n;
}

/* The transfer has ended (drain_info or a deferred report of the curl context). */
static void on_end(cbx__http_xfer *x)
{
    cbx__ctr_req *rq = (cbx__ctr_req *)((char *)x - offsetof(cbx__ctr_req, x));
    cbx__http_easy *e = rq->easy;
    rq->result = x->result;
    long status = 0;
    curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
    rq->status = status;
    cbx__http_easy_give(rq->cl->http, e, 1);
    rq->easy = NULL;
    x->easy = NULL;
    curl_slist_free_all(rq->headers);
    rq->headers = NULL;
    free(rq->send);
    rq->send = NULL;
    rq->live = 0;
    rq->cb(rq);
}

int cbx__ctr_send(cbx__ctr_loop *cl, cbx__ctr_req *rq, const char *method, const char *path,
                  const char *json)
{
    cbx__ctr_req_clear(rq);
    rq->cl = cl;
    rq->status = 0;
    rq->result = CURLE_OK;
    rq->errbuf[0] = '\0';
    char url[1024];
    int n = snprintf(url, sizeof url, "http://d" CBX__CTR_API "%s", path);
    if (n < 0 || (size_t)n >= sizeof url)
        return -ENAMETOOLONG;
    cbx__http_easy *e = cbx__http_easy_take(cl->http);
    if (!e)
        return -ENOMEM;
    CURL *c = e->curl;
    cbx__http_loop_configure(cl->http, c);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never through a proxy: a local socket */
    if (!rq->socket)
        rq->socket = cl->socket;
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, rq->socket);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)e);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, rq->errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, rq);
    rq->headers_seen = 0;
    if (rq->on_headers) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, rq);
    }
    if (strcmp(method, "POST") == 0) {
        rq->send = strdup(json ? json : "");
        rq->headers = curl_slist_append(NULL, "Content-Type: application/json");
        if (!rq->send || !rq->headers) {
            cbx__http_easy_give(cl->http, e, 1);
            curl_slist_free_all(rq->headers);
            rq->headers = NULL;
            return -ENOMEM;
        }
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->send);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, rq->headers);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    e->configured = 0;
    e->extras = 1;
    rq->easy = e;
    rq->x = (cbx__http_xfer){.lp = cl->http, .easy = e, .on_end = on_end};
    e->x = &rq->x; /* how the context finds the transfer of a finished handle */
    int r = cbx__http_loop_add(cl->http, &rq->x);
    if (r < 0) {
        rq->easy = NULL;
        rq->x.easy = NULL;
        cbx__http_easy_give(cl->http, e, 1);
        free(rq->send);
        rq->send = NULL;
        curl_slist_free_all(rq->headers);
        rq->headers = NULL;
        return r;
    }
    rq->live = 1;
    return 0;
}

void cbx__ctr_abort(cbx__ctr_req *rq)
{
    if (!rq->live)
        return;
    cbx__http_loop_remove(rq->cl->http, &rq->x);
    cbx__http_easy_give(rq->cl->http, rq->easy, 1);
    rq->easy = NULL;
    rq->x.easy = NULL;
    rq->live = 0;
    rq->result = CURLE_ABORTED_BY_CALLBACK;
    curl_slist_free_all(rq->headers);
    rq->headers = NULL;
    free(rq->send);
    rq->send = NULL;
}

void cbx__ctr_req_clear(cbx__ctr_req *rq)
{
    free(rq->body);
    rq->body = NULL;
    rq->len = rq->cap = 0;
}

json_t *cbx__ctr_req_json(const cbx__ctr_req *rq)
{
    if (!rq->body)
        return NULL;
    return json_loadb(rq->body, rq->len, JSON_DECODE_ANY, NULL);
}

void cbx__ctr_req_error(const cbx__ctr_req *rq, const char *what, char *buf, size_t len)
{
    const char *sock = rq->socket ? rq->socket : rq->cl->socket;
    if (rq->status == 0) {
        const char *why = rq->errbuf[0] ? rq->errbuf : curl_easy_strerror(rq->result);
        if (!is_socket(sock))
            snprintf(buf, len,
                     "%s: no container engine socket at %s (start one: podman system service "
                     "--time=0 unix://%s &, or set docker_host / DOCKER_HOST)",
                     what, sock, sock);
        else if (rq->result == CURLE_COULDNT_CONNECT)
            snprintf(buf, len,
                     "%s: the container engine at %s is not running (connection refused; start "
                     "it: podman system service --time=0 unix://%s &)",
                     what, sock, sock);
        else
            snprintf(buf, len, "%s: no answer from the container engine at %s: %s", what, sock,
                     why);
        return;
    }
    json_t *doc = cbx__ctr_req_json(rq);
    const char *msg = json_string_value(json_object_get(doc, "message"));
    char text[300];
    if (!msg) {
        /* not JSON: its first line */
        size_t n = 0;
        const char *b = rq->body ? rq->body : "";
        while (b[n] && b[n] != '\n' && n < sizeof text - 1)
            n++;
        memcpy(text, b, n);
        text[n] = '\0';
        msg = text;
    }
    snprintf(buf, len, "%s: HTTP %ld from the engine: %s", what, rq->status, msg);
    /* one line */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_decref(doc);
}

char *cbx__ctr_urlencode(const char *s, char *buf, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        size_t need = plain ? 1 : 3;
        if (o + need + 1 > len) {
            if (len)
                buf[0] = '\0';
            return buf;
        }
        if (plain) {
            buf[o++] = (char)ch;
        } else {
            buf[o++] = '%';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        }
    }
    if (len)
        buf[o] = '\0';
    return buf;
}
