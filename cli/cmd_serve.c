/* cbx serve: check the options, then exec cbx-serve (the HTTP server, a program of its own so
 * that h2o and its libraries are loaded only when serving; docs/design.md). */
#include "args.h"
#include "cli.h"
#include "config.h"
#include "output.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char serve_help[] =
    "Usage: cbx serve [--listen ADDR] [--token-file FILE] [--flows DIR] [--workflows DIR]\n"
    "                 [OPTIONS]\n"
    "\n"
    "Serve the HTTP API (/v1), Prometheus metrics (/metrics), live events (/v1/events, SSE)\n"
    "and a dashboard (/) on the runtime's event loop, with the journal and the host-wide\n"
    "breaker store of the state directory. Mutations (submit, cancel, breaker control) need\n"
    "'Authorization: Bearer TOKEN'; the token is made at first start into the state\n"
    "directory's serve.token (mode 0600) unless --token-file gives one. SIGTERM or SIGINT\n"
    "stops accepting, lets work in flight finish within --grace, cancels the rest and journals\n"
    "everything. The server is the program cbx-serve (beside cbx, or $CBX_SERVE_BIN).\n"
    "\n"
    "Options:\n"
    "  --listen ADDR          HOST:PORT to listen on (default 127.0.0.1:8080; port 0: any\n"
    "                         free port). A non-loopback address needs --token-file\n"
    "  --token-file FILE      the bearer token (16+ printable characters, mode 0600)\n"
    "  --flows DIR            the flows (NAME.yaml, .yml, .json) that POST\n"
    "                         /v1/flows/NAME/runs runs, each run on a thread of its own\n"
    "  --workflows DIR        the workflows (NAME.yaml, .yml, .json) that POST\n"
    "                         /v1/workflows/NAME/runs starts; their runs left waiting or\n"
    "                         interrupted in the journal are taken up at start\n"
    "  --max-body BYTES       the largest request body; larger ones get 413 (default 1048576)\n"
    "  --client-timeout DUR   a request must arrive within it, else the connection is closed\n"
    "                         (default 10s)\n"
    "  --grace DUR            SIGTERM: how long work in flight may finish (default 10s)\n"
    "  --max-wait DUR         the longest 'wait' a synchronous submission may ask (default 5m)\n"
    "  --max-concurrent N     executions running at once (default 64; more wait in a queue)\n"
    "  --ready-fd FD          write 'listening on ADDR:PORT' to FD once listening\n"
    "  --print-routes         print the routes (METHOD PATH) and exit\n"
    "  -h, --help             this help\n"
    "\n"
    "Examples:\n"
    "  cbx serve\n"
    "  cbx serve --listen 127.0.0.1:0 --ready-fd 3 3>ready\n"
    "  TOKEN=$(cat ~/.local/state/cbx/serve.token)\n"
    "  curl -H \"Authorization: Bearer $TOKEN\" -d '{\"type\":\"command\",\n"
    "       \"params\":{\"argv\":[\"echo\",\"hi\"]}}' http://127.0.0.1:8080/v1/executions\n"
    "\n";

enum {
    OPT_LISTEN = CLI_OPT_OWN,
    OPT_TOKEN,
    OPT_BODY,
    OPT_CTIMEOUT,
    OPT_GRACE,
    OPT_WAIT,
    OPT_CONC,
    OPT_READY,
    OPT_ROUTES,
    OPT_FLOWS,
    OPT_WORKFLOWS
};

static const cli_opt serve_opts[] = {
    CLI_OPTS_COMMON,
    {"listen", 0, 1, OPT_LISTEN},
    {"flows", 0, 1, OPT_FLOWS},
    {"workflows", 0, 1, OPT_WORKFLOWS},
    {"token-file", 0, 1, OPT_TOKEN},
    {"max-body", 0, 1, OPT_BODY},
    {"client-timeout", 0, 1, OPT_CTIMEOUT},
    {"grace", 0, 1, OPT_GRACE},
    {"max-wait", 0, 1, OPT_WAIT},
    {"max-concurrent", 0, 1, OPT_CONC},
    {"ready-fd", 0, 1, OPT_READY},
    {"print-routes", 0, 0, OPT_ROUTES},
    {0},
};

/* cbx-serve: $CBX_SERVE_BIN, else beside this program, else on $PATH. */
static void exec_server(char **argv)
{
    const char *env = getenv("CBX_SERVE_BIN");
    if (env && env[0]) {
        execv(env, argv);
        cli_err("serve: CBX_SERVE_BIN=%s: %s", env, strerror(errno));
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 16);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            snprintf(slash + 1, sizeof self - (size_t)(slash + 1 - self), "cbx-serve");
            if (access(self, X_OK) == 0)
                execv(self, argv);
        }
    }
    execvp("cbx-serve", argv);
    cli_err("serve: cannot run cbx-serve (%s): it is built when libh2o-dev is installed "
            "(scripts/deps build)",
            strerror(errno));
}

int cli_cmd_serve(cli_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "serve", argc, argv, serve_opts);
    int id, json = 0;
    const char *val;
    uint64_t v;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_ARGS_POSITIONAL:
            cli_err("serve: unexpected argument '%s'", val);
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(serve_help, stdout);
            fputs(cli_exit_codes_help, stdout);
            return CLI_EXIT_OK;
        case CLI_OPT_STATE_DIR:
        case CLI_OPT_NO_JOURNAL:
        case CLI_OPT_UTC:
            if (cli_common_option(ctx, id, val, &json))
                return CLI_EXIT_USAGE;
            break;
        case OPT_CTIMEOUT:
        case OPT_GRACE:
        case OPT_WAIT:
            if (cli_parse_duration(cli_args_name(&a, id), val, &v))
                return CLI_EXIT_USAGE;
            if (v < 1000000u) {
                cli_err("%s: expected a duration of at least 1ms, got '%s'", cli_args_name(&a, id),
                        val);
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_BODY:
        case OPT_CONC:
        case OPT_READY:
            if (cli_parse_uint(cli_args_name(&a, id), val, id == OPT_READY ? 0 : 1,
                               id == OPT_BODY ? 1u << 30 : 100000, &v))
                return CLI_EXIT_USAGE;
            break;
        case OPT_FLOWS:
        case OPT_WORKFLOWS: {
            const char *opt = id == OPT_FLOWS ? "--flows" : "--workflows";
            struct stat st;
            if (stat(val, &st) < 0) {
                cli_err("serve: %s '%s': %s", opt, val, strerror(errno));
                return CLI_EXIT_USAGE;
            }
            if (!S_ISDIR(st.st_mode)) {
                cli_err("serve: %s '%s': not a directory", opt, val);
                return CLI_EXIT_USAGE;
            }
            break;
        }
        default:
            break;
        }
    }
    if (ctx->no_journal)
        setenv("CBX_NO_JOURNAL", "1", 1);
    /* the configuration file's llm: section (prices, provider prefixes), which cbx-serve, not
     * reading the file itself, applies as cbx does */
    const cli_config *cfg = cli_config_get();
    char *llm = cfg->llm ? json_dumps(cfg->llm, JSON_COMPACT) : NULL;
    if (llm)
        setenv("CBX_SERVE_LLM_SETTINGS", llm, 1);
    else
        unsetenv("CBX_SERVE_LLM_SETTINGS");
    free(llm);
    /* the arguments as given: cbx-serve parses the same options (the global ones are in the
     * environment already: CBX_STATE_DIR, CBX_NO_JOURNAL) */
    argv[0] = "cbx-serve";
    fflush(stdout);
    exec_server(argv);
    return CLI_EXIT_INTERNAL;
}
