/* cbx: the command line. A table of subcommands over libcbx; global options; exit codes. */
#include "args.h"
#include "cli.h"
#include "config.h"
#include "output.h"

#include "cbx/executor.h"
#include "cbx/state_dir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef CBX_VERSION
#define CBX_VERSION "0.0.0"
#endif

const char cli_exit_codes_help[] =
    "Exit codes:\n"
    "  0    success (or a fallback answered)\n"
    "  1    the work failed (exec -- CMD: the command's own exit code instead, 128+N when\n"
    "       killed by signal N); a query found nothing\n"
    "  2    bad usage or bad input: unknown subcommand, option, executor type or parameter,\n"
    "       a mistyped value, a bad policy, an unreadable plugin, an ABI mismatch\n"
    "  70   internal error (journal, state store, out of memory)\n"
    "  74   exec --journal-required: a record could not be written to the journal\n"
    "  75   an open breaker refused it; nothing ran\n"
    "  76   refused otherwise: rate limit, bulkhead, queue\n"
    "  124  timed out\n"
    "  130  cancelled (SIGINT or SIGTERM)\n";

const cli_cmd cli_commands[] = {
    {"exec", cli_cmd_exec, "run an executor, or a command (-- CMD ARGS), under a policy"},
    {"types", cli_cmd_types, "list executor types, or show one type's parameters"},
    {"history", cli_cmd_history, "past executions from the journal; show one; clear"},
    {"stats", cli_cmd_stats, "statistics over the journal: overall, per executor or breaker"},
    {"breaker", cli_cmd_breaker,
     "the host-wide named breakers: list, show, set, reset, open, close"},
    {"validate", cli_cmd_validate, "check a flow file: every problem as file:line:col"},
    {"run", cli_cmd_run, "run a flow (live view, journal, --resume, --batch)"},
    {"runs", cli_cmd_runs, "flow runs from the journal"},
    {"show", cli_cmd_show, "one flow run with its steps"},
    {"graph", cli_cmd_graph, "a flow's DAG as Mermaid or DOT"},
    {"workflow", cli_cmd_workflow,
     "Petri-net workflows: run, validate, signal, resume, show, graph"},
    {"config", cli_cmd_config, "the configuration in effect and where each value came from"},
    {"completion", cli_cmd_completion, "a bash or zsh completion script"},
    {"worker", cli_cmd_worker, "run executions pulled from a NATS JetStream work queue"},
    {"serve", cli_cmd_serve, "the HTTP API, Prometheus metrics and a live dashboard"},
};
#define N_COMMANDS (sizeof cli_commands / sizeof cli_commands[0])
const size_t cli_n_commands = N_COMMANDS;

void cli_usage(FILE *f)
{
    fputs("Usage: cbx [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
          "\n"
          "Run work under resilience policies (timeouts, retries, circuit breakers, rate limits,\n"
          "fallbacks) and record every attempt in a journal.\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-11s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fputs("  help        help on a command (same as cbx COMMAND --help); help --man [COMMAND]:\n"
          "              its manual page (roff), help --man-dir DIR: every page into DIR\n"
          "\n"
          "Global options (also accepted after the command):\n"
          "  --state-dir DIR   where the journal and the breaker store live (sets CBX_STATE_DIR;\n"
          "                    default $CBX_STATE_DIR, else $XDG_STATE_HOME/cbx, else\n"
          "                    ~/.local/state/cbx); it must be yours and writable by no one\n"
          "                    else, or cbx refuses it (exit 2)\n"
          "  --config FILE     the configuration file (default $CBX_CONFIG, else\n"
          "                    $XDG_CONFIG_HOME/cbx/config.yaml); see 'cbx config --help'\n"
          "  --no-journal      do not write the journal\n"
          "  --utc             show times in UTC, as ISO-8601 (2026-12-06T21:48:05Z)\n"
          "  -h, --help        this help\n"
          "  --version         the version and the executor ABI\n"
          "\n"
          "Examples:\n"
          "  cbx exec --timeout 5s --retries 2 -- curl -fsS https://example.com\n"
          "  cbx exec http -p url=https://example.com --json\n"
          "  cbx exec --breaker db --breaker-failures 3 -- ./backup.sh\n"
          "  cbx types command\n"
          "  cbx history --status failed --since 1h\n"
          "  cbx stats --by executor\n"
          "  cbx breaker list\n"
          "\n"
          "Environment: CBX_CONFIG, CBX_STATE_DIR, CBX_PLUGIN_PATH, CBX_LUA_PATH, NO_COLOR.\n"
          "\n",
          f);
    fputs(cli_exit_codes_help, f);
}

int cli_set_state_dir(cli_ctx *ctx, const char *dir)
{
    if (!dir[0]) {
        cli_err("--state-dir: expected a directory, got ''");
        return CLI_EXIT_USAGE;
    }
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        cli_err("--state-dir: '%s' is not a directory", dir);
        return CLI_EXIT_USAGE;
    }
    cbx_err err;
    cbx_err_clear(&err);
    /* the rules on who owns and may write the directory guard what cbx makes and opens for
     * writing there; a command that only reads may read another user's state */
    if (!ctx->reads_only && stat(dir, &st) == 0 && cbx_state_dir_check(dir, &err) < 0) {
        cli_err("--state-dir: %s", err.msg);
        return CLI_EXIT_USAGE;
    }
    ctx->state_dir = dir;
    setenv("CBX_STATE_DIR", dir, 1);
    return 0;
}

int cli_common_option(cli_ctx *ctx, int id, const char *val, int *json)
{
    switch (id) {
    case CLI_OPT_STATE_DIR:
        return cli_set_state_dir(ctx, val);
    case CLI_OPT_NO_JOURNAL:
        ctx->no_journal = 1;
        return 0;
    case CLI_OPT_JSON:
        *json = 1;
        return 0;
    case CLI_OPT_UTC:
        cli_time_utc(1);
        return 0;
    default:
        return 0;
    }
}

static const cli_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(cli_commands[i].name, name) == 0)
            return &cli_commands[i];
    return NULL;
}

static int unknown_command(const char *name)
{
    const char *cands[N_COMMANDS + 1];
    for (size_t i = 0; i < N_COMMANDS; i++)
        cands[i] = cli_commands[i].name;
    cands[N_COMMANDS] = "help";
    const char *best = cli_suggest(name, cands, N_COMMANDS + 1);
    if (best)
        cli_err("unknown command '%s' (did you mean '%s'?)", name, best);
    else
        cli_err("unknown command '%s' (see 'cbx --help')", name);
    return CLI_EXIT_USAGE;
}

static int run_help(cli_ctx *ctx, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--man-dir") == 0) {
        if (argc != 3) {
            cli_err("help: --man-dir needs a directory");
            return CLI_EXIT_USAGE;
        }
        return cli_man_dir(argv[2]);
    }
    if (argc >= 2 && strcmp(argv[1], "--man") == 0) {
        if (argc > 3) {
            cli_err("help: --man takes one command");
            return CLI_EXIT_USAGE;
        }
        const cli_cmd *c = argc == 3 ? find_command(argv[2]) : NULL;
        if (argc == 3 && !c)
            return unknown_command(argv[2]);
        return cli_man_page(stdout, c);
    }
    if (argc < 2) {
        cli_usage(stdout);
        return CLI_EXIT_OK;
    }
    const cli_cmd *c = find_command(argv[1]);
    if (!c)
        return unknown_command(argv[1]);
    char *sub[] = {argv[1], "--help", NULL};
    return c->fn(ctx, 2, sub);
}

/* Commands that only read the state directory (the journal, read-only). */
static int reads_only(int argc, char **argv)
{
    static const char *const readers[] = {"stats",    "runs",  "show",  "types",
                                          "validate", "graph", "config"};
    for (size_t k = 0; k < sizeof readers / sizeof readers[0]; k++)
        if (strcmp(argv[0], readers[k]) == 0)
            return 1;
    return strcmp(argv[0], "history") == 0 && !(argc > 1 && strcmp(argv[1], "clear") == 0);
}

int main(int argc, char **argv)
{
    cli_ctx ctx = {0};
    const char *global_dir = NULL, *config_file = NULL;
    int i = 1;
    if (cli_input_limit_from_env() < 0)
        return CLI_EXIT_USAGE;
    /* Global options, up to the command. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_usage(stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0) {
            printf("cbx %s (executor ABI %u)\n", CBX_VERSION, (unsigned)CBX_EXECUTOR_ABI);
            return CLI_EXIT_OK;
        }
        if (strcmp(a, "--no-journal") == 0) {
            ctx.no_journal = 1;
            continue;
        }
        if (strcmp(a, "--utc") == 0) {
            cli_time_utc(1);
            continue;
        }
        if (strcmp(a, "--state-dir") == 0 || strncmp(a, "--state-dir=", 12) == 0) {
            const char *v = a[11] == '=' ? a + 12 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                cli_err("option '--state-dir' needs a value");
                return CLI_EXIT_USAGE;
            }
            global_dir = v; /* applied once the command is known */
            continue;
        }
        if (strcmp(a, "--config") == 0 || strncmp(a, "--config=", 9) == 0) {
            config_file = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!config_file || !config_file[0]) {
                cli_err("option '--config' needs a file");
                return CLI_EXIT_USAGE;
            }
            continue;
        }
        static const char *const globals[] = {"--help",      "--version", "--no-journal",
                                              "--state-dir", "--utc",     "--config"};
        const char *best = cli_suggest(a, globals, 6);
        if (best)
            cli_err("unknown option '%s' (did you mean '%s'?)", a, best);
        else
            cli_err("unknown option '%s' (see 'cbx --help')", a);
        return CLI_EXIT_USAGE;
    }
    if (i >= argc) {
        cli_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0)
        return run_help(&ctx, argc - i, argv + i);
    const cli_cmd *c = find_command(argv[i]);
    if (!c)
        return unknown_command(argv[i]);
    if (c->fn == cli_cmd_completion) /* the same script whatever the configuration */
        return c->fn(&ctx, argc - i, argv + i);
    int crc = cli_config_load(config_file);
    if (crc)
        return crc;
    /* A state directory from the environment meets the same rules as --state-dir's (the
     * library would refuse it too, in fewer words). */
    ctx.reads_only = reads_only(argc - i, argv + i);
    if (global_dir) {
        int rc = cli_set_state_dir(&ctx, global_dir);
        if (rc)
            return rc;
    }
    const char *env_dir = getenv("CBX_STATE_DIR");
    struct stat st;
    const cli_config *cfg = cli_config_get();
    if (!ctx.state_dir && !(env_dir && *env_dir) && cfg->state_dir) {
        /* the file's state_dir, under the same rules as --state-dir's */
        cbx_err err;
        cbx_err_clear(&err);
        if (!ctx.reads_only && stat(cfg->state_dir, &st) == 0 &&
            cbx_state_dir_check(cfg->state_dir, &err) < 0) {
            cli_err("%s: state_dir: %s", cfg->file, err.msg);
            return CLI_EXIT_USAGE;
        }
        setenv("CBX_STATE_DIR", cfg->state_dir, 1);
        env_dir = NULL;
    }
    if (!ctx.reads_only && !ctx.state_dir && env_dir && *env_dir && stat(env_dir, &st) == 0) {
        cbx_err err;
        cbx_err_clear(&err);
        if (cbx_state_dir_check(env_dir, &err) < 0) {
            cli_err("CBX_STATE_DIR: %s", err.msg);
            return CLI_EXIT_USAGE;
        }
    }
    int code = c->fn(&ctx, argc - i, argv + i);
    cli_trace_finish();
    return code;
}
