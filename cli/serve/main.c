/* cbx-serve: the HTTP server behind `cbx serve` (which execs this program with its arguments, so
 * that h2o is loaded only here). Options, then the server of src/server/. */
#include "server/server.h"

#include "cbx/llm.h"
#include "cbx/units.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CBX_VERSION
#define CBX_VERSION "0.0.0"
#endif

static const char usage[] =
    "Usage: cbx-serve [OPTIONS]: the server of 'cbx serve', which runs it with "
    "its options; see 'cbx serve --help'\n";

static int duration_ms(const char *opt, const char *v, uint64_t *out)
{
    uint64_t ns;
    if (cbx_duration_parse_ns(v, &ns) < 0 || ns < 1000000u) {
        fprintf(stderr, "cbx: serve: %s '%s': expected a duration of at least 1ms (10s, 500ms)\n",
                opt, v);
        return -1;
    }
    *out = ns / 1000000u;
    return 0;
}

static int number(const char *opt, const char *v, unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || !v[0] || *end || v[0] == '-' || n == 0 || n > max) {
        fprintf(stderr, "cbx: serve: %s '%s': expected a whole number from 1 to %llu\n", opt, v,
                max);
        return -1;
    }
    *out = n;
    return 0;
}

int main(int argc, char **argv)
{
    /* A server allocates and frees the same few kilobytes per request: keep the heap's top
     * instead of giving it back to the kernel after every request (glibc trims past 128 KiB by
     * default, and the next request grows it again, page faults included). */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    enum {
        O_LISTEN = 1,
        O_TOKEN,
        O_BODY,
        O_CTIMEOUT,
        O_GRACE,
        O_WAIT,
        O_CONC,
        O_READY,
        O_ROUTES,
        O_VERSION,
        O_STATE,
        O_NOJ,
        O_UTC,
        O_FLOWS,
        O_WORKFLOWS
    };
    static const struct option longopts[] = {
        {"listen", required_argument, 0, O_LISTEN},
        {"flows", required_argument, 0, O_FLOWS},
        {"workflows", required_argument, 0, O_WORKFLOWS},
        {"token-file", required_argument, 0, O_TOKEN},
        {"max-body", required_argument, 0, O_BODY},
        {"client-timeout", required_argument, 0, O_CTIMEOUT},
        {"grace", required_argument, 0, O_GRACE},
        {"max-wait", required_argument, 0, O_WAIT},
        {"max-concurrent", required_argument, 0, O_CONC},
        {"ready-fd", required_argument, 0, O_READY},
        {"print-routes", no_argument, 0, O_ROUTES},
        {"version", no_argument, 0, O_VERSION},
        {"state-dir", required_argument, 0, O_STATE}, /* cbx's global options, */
        {"no-journal", no_argument, 0, O_NOJ},        /* which `cbx serve` passes on */
        {"utc", no_argument, 0, O_UTC},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    srv_opts o = {.ready_fd = -1};
    int c;
    unsigned long long n;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            o.listen = optarg;
            break;
        case O_FLOWS:
            o.flows_dir = optarg;
            break;
        case O_WORKFLOWS:
            o.workflows_dir = optarg;
            break;
        case O_TOKEN:
            o.token_file = optarg;
            break;
        case O_BODY:
            if (number("--max-body", optarg, 1ull << 30, &n) < 0)
                return 2;
            o.max_body = (size_t)n;
            break;
        case O_CTIMEOUT:
            if (duration_ms("--client-timeout", optarg, &o.client_timeout_ms) < 0)
                return 2;
            break;
        case O_GRACE:
            if (duration_ms("--grace", optarg, &o.grace_ms) < 0)
                return 2;
            break;
        case O_WAIT:
            if (duration_ms("--max-wait", optarg, &o.max_wait_ms) < 0)
                return 2;
            break;
        case O_CONC:
            if (number("--max-concurrent", optarg, 100000, &n) < 0)
                return 2;
            o.max_concurrent = (uint32_t)n;
            break;
        case O_READY:
            if (number("--ready-fd", optarg, 1 << 20, &n) < 0)
                return 2;
            o.ready_fd = (int)n;
            break;
        case O_STATE:
            setenv("CBX_STATE_DIR", optarg, 1);
            break;
        case O_NOJ:
            setenv("CBX_NO_JOURNAL", "1", 1);
            break;
        case O_UTC:
            break;
        case O_ROUTES:
            srv_routes_print(stdout);
            return 0;
        case O_VERSION:
            printf("cbx-serve %s\n", CBX_VERSION);
            return 0;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            if (optopt)
                fprintf(stderr, "cbx: serve: option '%s' needs a value (see cbx serve --help)\n",
                        argv[optind - 1]);
            else
                fprintf(stderr, "cbx: serve: unknown option '%s' (see cbx serve --help)\n",
                        argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cbx: serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    o.no_journal = getenv("CBX_NO_JOURNAL") != NULL;
    const char *llm = getenv("CBX_SERVE_LLM_SETTINGS"); /* from cbx serve: the config's llm: */
    if (llm && llm[0]) {
        json_error_t je;
        json_t *v = json_loads(llm, 0, &je);
        cbx_err e;
        cbx_err_clear(&e);
        if (!v || cbx_llm_settings_set(v, &e) != 0) {
            fprintf(stderr, "cbx: serve: CBX_SERVE_LLM_SETTINGS: %s\n", v ? e.msg : je.text);
            json_decref(v);
            return 2;
        }
        json_decref(v);
    }
    /* a client gone mid-response is an error from write, not a signal (children get the default
     * disposition back: the command executor resets every signal before exec) */
    signal(SIGPIPE, SIG_IGN);
    srv *s = NULL;
    char msg[1024] = "";
    int r = srv_new(&s, &o, msg, sizeof msg);
    if (r < 0) {
        fprintf(stderr, "cbx: serve: %s\n", msg[0] ? msg : cbx_strerror(r));
        return r == CBX_EINVAL_CONFIG || r == -EADDRINUSE || r == -EACCES || r == -EBUSY ? 2 : 70;
    }
    int code = srv_run(s);
    if (s->nconns) /* the shutdown could not close them: they are dropped with the process */
        fprintf(stderr, "cbx: serve: %llu connection(s) still open at exit were dropped\n",
                (unsigned long long)s->nconns);
    srv_free(s);
    return code;
}
