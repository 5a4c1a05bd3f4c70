/* The exporter's settings from the OpenTelemetry SDK environment variables (cbx/trace.h lists
 * them). Read once, by cbx__trace_init. */
#include "telemetry/trace.h"

#include "core/log_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* A whole number of at least min from the variable, else def (logged when not understood). */
static uint64_t env_num(const char *name, uint64_t def, uint64_t min, uint64_t max)
{
    const char *v = env(name);
    if (!v)
        return def;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (errno || *end || n < min || n > max || *v == '-') {
        CBX_LOG(CBX_LOG_WARN, "trace",
                "%s=%s: expected a whole number from %llu to %llu; using %llu", name, v,
                (unsigned long long)min, (unsigned long long)max, (unsigned long long)def);
        return def;
    }
    return n;
}

static char *trim_dup(const char *a, const char *b)
{
    while (a < b && isspace((unsigned char)*a))
        a++;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    char *s = malloc((size_t)(b - a) + 1);
    if (s) {
        memcpy(s, a, (size_t)(b - a));
        s[b - a] = '\0';
    }
    return s;
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* %XX decoded in place (the W3C Baggage octet encoding the variable uses for values). */
static void url_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && hexval((unsigned char)p[1]) >= 0 && hexval((unsigned char)p[2]) >= 0) {
            *o++ = (char)(hexval((unsigned char)p[1]) * 16 + hexval((unsigned char)p[2]));
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* "k=v,k2=v2" into "k: v" lines appended to c->headers. */
static int parse_headers(cbx__otlp_config *c, const char *name, const char *v, size_t *n)
{
    for (const char *p = v; *p;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq) {
            char *k = trim_dup(p, eq), *val = trim_dup(eq + 1, end);
            if (!k || !val) {
                free(k);
                free(val);
                return -1;
            }
            url_decode(val);
            int bad = !*k || strpbrk(k, " :\r\n") || strpbrk(val, "\r\n");
            if (bad) {
                CBX_LOG(CBX_LOG_WARN, "trace",
                        "%s: the header '%s' is left out (a bad name or value)", name, k);
            } else {
                char **h = realloc(c->headers, (*n + 2) * sizeof *h);
                size_t len = strlen(k) + strlen(val) + 3;
                char *line = h ? malloc(len) : NULL;
                if (h)
                    c->headers = h;
                if (!line) {
                    free(k);
                    free(val);
                    return -1;
                }
                snprintf(line, len, "%s: %s", k, val);
                c->headers[(*n)++] = line;
                c->headers[*n] = NULL;
            }
            free(k);
            free(val);
        } else if (end > p) {
            CBX_LOG(CBX_LOG_WARN, "trace", "%s: '%.*s' is not key=value; left out", name,
                    (int)(end - p), p);
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

void cbx__otlp_config_free(cbx__otlp_config *c)
{
    free(c->url);
    for (char **h = c->headers; h && *h; h++)
        free(*h);
    free(c->headers);
    free(c->service);
    memset(c, 0, sizeof *c);
}

int cbx__otlp_config_read(cbx__otlp_config *c)
{
    memset(c, 0, sizeof *c);
    const char *exporter = env("OTEL_TRACES_EXPORTER");
    if (exporter && strcmp(exporter, "none") == 0)
        return 0;
    const char *traces = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (!traces && !base)
        return 0;
    if (exporter && strcmp(exporter, "otlp") != 0)
        CBX_LOG(CBX_LOG_WARN, "trace",
                "OTEL_TRACES_EXPORTER=%s: only otlp (and none) are known; exporting over otlp",
                exporter);
    const char *proto = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
    if (!proto)
        proto = env("OTEL_EXPORTER_OTLP_PROTOCOL");
    if (proto && strcmp(proto, "http/json") != 0)
        CBX_LOG(CBX_LOG_WARN, "trace", "OTLP protocol %s is not supported; sending http/json",
                proto);
    if (traces) {
        c->url = strdup(traces);
    } else {
        size_t n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
            n--;
        c->url = malloc(n + sizeof "/v1/traces");
        if (c->url)
            snprintf(c->url, n + sizeof "/v1/traces", "%.*s/v1/traces", (int)n, base);
    }
    const char *svc = env("OTEL_SERVICE_NAME");
    c->service = strdup(svc ? svc : "cbx");
    size_t nh = 0;
    const char *h = env("OTEL_EXPORTER_OTLP_HEADERS");
    const char *th = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    if (!c->url || !c->service || (h && parse_headers(c, "OTEL_EXPORTER_OTLP_HEADERS", h, &nh)) ||
        (th && parse_headers(c, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", th, &nh))) {
        CBX_LOG(CBX_LOG_WARN, "trace", "out of memory: spans are not exported");
        cbx__otlp_config_free(c);
        return 0;
    }
    c->queue = (uint32_t)env_num("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, 1u << 20);
    c->batch = (uint32_t)env_num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, 1u << 20);
    if (c->batch > c->queue)
        c->batch = c->queue;
    c->delay_ms = env_num("OTEL_BSP_SCHEDULE_DELAY", 5000, 0, 86400000);
    uint64_t t = env_num("OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 1, 86400000);
    c->timeout_ms = env_num("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", t, 1, 86400000);
    return 1;
}
