/* cbx worker: run executions pulled from a NATS JetStream work queue (cbx/dist.h). */
#include "args.h"
#include "cli.h"
#include "nats_opts.h"
#include "output.h"

#include "cbx/dist.h"
#include "cbx/journal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "Usage: cbx worker [--nats URL] [--queue NAME] [--concurrency N] [--types T1,T2] [OPTIONS]\n"
    "\n"
    "Pull executions from the NATS JetStream work queue NAME and run them here, under their\n"
    "policies, journaled in this host's journal. Each result is stored in the CBX_RESULTS\n"
    "key-value bucket and announced to the submitter before the job is acknowledged; a job\n"
    "delivered again after its result was stored is not run again. SIGTERM or SIGINT drains: no\n"
    "new jobs, the running ones finish (a second signal exits at once; unacknowledged jobs go to\n"
    "other workers after the ack wait). Submit with 'cbx exec --remote URL TYPE ...'.\n"
    "docs/distributed.md has the streams, subjects and guarantees.\n"
    "\n"
    "Options:\n"
    "  --nats URL          the server(s), comma-separated (default $NATS_URL, else\n"
    "                      nats://127.0.0.1:4222)\n"
    "  --queue NAME        the work queue (default \"default\"; letters, digits, - and _)\n"
    "  -j, --concurrency N jobs run at once (default 4)\n"
    "  --types LIST        only these executor types (comma-separated); others are handed back\n"
    "  --ack-wait DURATION how long a job may go without news before another worker gets it\n"
    "                      (default 30s; fixed when the queue's consumer is first made)\n"
    "  --max-deliver N     deliveries before a job is given up with a failed result (default 5)\n"
    "  --id NAME           the name results carry as \"worker\" (default host:pid)\n"
    "  -v, --verbose       one line per job on stderr\n"

    "  --state-dir DIR     the journal's directory\n"
    "  --no-journal        journal nothing here\n"
    "  -h, --help          this help\n"
    "\n"
    "A job's named breaker (cbx exec --remote --breaker NAME) is this host's, or the cluster's\n"
    "when CBX_BREAKER_STORE is 'nats' or a nats:// URL (docs/breaker-store.md).\n"
    "\n"
    "Examples:\n"
    "  cbx worker --nats nats://10.0.0.5:4222 -j 16\n"
    "  cbx exec --remote nats://10.0.0.5:4222 http -p url=https://example.com\n"
    "\n";

enum {
    OPT_NATS = CLI_OPT_OWN,
    OPT_QUEUE,
    OPT_CONCURRENCY,
    OPT_TYPES,
    OPT_ACK_WAIT,
    OPT_MAX_DELIVER,
    OPT_ID,
    OPT_VERBOSE,
};

static const cli_opt opts[] = {
    CLI_OPTS_COMMON,
    {"nats", 0, 1, OPT_NATS},
    {"queue", 0, 1, OPT_QUEUE},
    {"concurrency", 'j', 1, OPT_CONCURRENCY},
    {"types", 0, 1, OPT_TYPES},
    {"ack-wait", 0, 1, OPT_ACK_WAIT},
    {"max-deliver", 0, 1, OPT_MAX_DELIVER},
    {"id", 0, 1, OPT_ID},
    {"verbose", 'v', 0, OPT_VERBOSE},
    CLI_OPTS_NATS,
    {0},
};

static cbx_worker *running_worker;
static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
    if (signals_seen++ && sig)
        _exit(CLI_EXIT_CANCELLED);
    if (running_worker)
        cbx_worker_stop(running_worker);
}

/* "a,b,c" into a NULL-terminated array pointing into text (changed in place). */
static const char **split_types(char *text)
{
    size_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    const char **out = calloc(n + 1, sizeof *out);
    if (!out)
        return NULL;
    size_t i = 0;
    for (char *save = NULL, *t = strtok_r(text, ",", &save); t; t = strtok_r(NULL, ",", &save))
        out[i++] = t;
    return out;
}

int cli_cmd_worker(cli_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "worker", argc, argv, opts);
    cbx_worker_opts o = {0};
    const char *types_arg = NULL; /* --types, split after the options (argv outlives it) */
    char *types_text = NULL;
    const char *val;
    int id, json = 0, verbose = 0;
    uint64_t u;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(help, stdout);
            fputs("Connecting (also the nats: section of the configuration file):\n", stdout);
            fputs(cli_nats_opts_help, stdout);
            fputs("\n", stdout);
            fputs(cli_exit_codes_help, stdout);
            return CLI_EXIT_OK;
        case CLI_ARGS_POSITIONAL:
            cli_err("worker: unexpected argument '%s' (see 'cbx worker --help')", val);
            return CLI_EXIT_USAGE;
        case OPT_NATS:
            o.url = val;
            break;
        case OPT_QUEUE:
            o.queue = val;
            break;
        case OPT_CONCURRENCY:
            if (cli_parse_uint("--concurrency", val, 1, 4096, &u))
                return CLI_EXIT_USAGE;
            o.concurrency = (uint32_t)u;
            break;
        case OPT_TYPES:
            types_arg = val;
            break;
        case OPT_ACK_WAIT:
            if (cli_parse_duration("--ack-wait", val, &o.ack_wait_ns))
                return CLI_EXIT_USAGE;
            if (o.ack_wait_ns < 1000000000ull) {
                cli_err("--ack-wait: at least 1s (in-progress acks go every third of it)");
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_MAX_DELIVER:
            if (cli_parse_uint("--max-deliver", val, 1, 1000, &u))
                return CLI_EXIT_USAGE;
            o.max_deliver = (uint32_t)u;
            break;
        case OPT_ID:
            o.worker_id = val;
            break;
        case OPT_VERBOSE:
            verbose = 1;
            break;
        default:
            if (!cli_nats_option(id, val) && cli_common_option(ctx, id, val, &json))
                return CLI_EXIT_USAGE;
        }
    }
    if (types_arg && !(types_text = strdup(types_arg))) {
        cli_err("worker: out of memory");
        return CLI_EXIT_INTERNAL;
    }
    const char **types = types_text ? split_types(types_text) : NULL;
    o.types = types;
    cbx_registry *reg = NULL;
    cbx_journal *j = NULL;
    cbx_worker *w = NULL;
    cbx_breaker_store *breakers = NULL;
    cli_types_src src = {0};
    int code = cli_registry_open(&src, &reg);
    if (!code && !ctx->no_journal)
        code = cli_journal_open("worker", 0, &j);
    if (code)
        goto out;
    if (types)
        for (const char **t = types; *t; t++)
            if (!cbx_registry_find(reg, *t)) {
                const char *near = cli_suggest_type(reg, *t);
                cli_err("--types: unknown executor type '%s'%s%s%s", *t,
                        near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
                code = CLI_EXIT_USAGE;
                goto out;
            }
    o.registry = reg;
    o.journal = j;
    cbx_err err;
    cbx_err_clear(&err);
    /* jobs' named breakers: the cluster's when CBX_BREAKER_STORE says so, else this host's */
    if (cli_breaker_store_open(&breakers, &err) < 0) {
        cli_err("worker: breaker store: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        code = CLI_EXIT_FAILED;
        goto out;
    }
    o.breakers = breakers;
    int r = cbx_worker_new(&w, &o, &err);
    if (r) {
        cli_err("worker: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        code = r == CBX_EINVAL_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
        goto out;
    }
    cli_log_install(verbose); /* the jobs' story: what went wrong always, each job with -v */
    running_worker = w;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (verbose)
        fprintf(stderr, "cbx worker: pulling from queue %s\n", o.queue ? o.queue : "default");
    cbx_worker_run(w);
    running_worker = NULL;
    uint64_t done = 0, back = 0, poisoned = 0;
    cbx_worker_counts(w, &done, &back, &poisoned);
    fprintf(stderr, "cbx worker: stopped: %llu jobs done, %llu handed back, %llu given up\n",
            (unsigned long long)done, (unsigned long long)back, (unsigned long long)poisoned);
    code = signals_seen ? CLI_EXIT_OK : CLI_EXIT_FAILED;
out:
    cbx_worker_free(w);
    cbx_breaker_store_free(breakers);
    if (j) {
        cli_journal_finish("worker", j);
        cbx_journal_close(j);
    }
    cbx_registry_free(reg);
    free(types);
    free(types_text);
    return code;
}
