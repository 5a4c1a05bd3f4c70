/* cbx validate, run, runs, show and graph: flows from the command line.
 *
 * A flow file is checked in full before anything runs (every problem as file:line:col). A run
 * happens on one runtime and one loop; a batch (--batch) runs the flow once per line of a JSON
 * Lines file on N worker threads, each with its own loop, runtime and copy of the flow, sharing
 * the registry (read-only), one in-memory breaker store and one journal handle (thread-safe). */
#include "args.h"
#include "batch_state.h"
#include "cli.h"
#include "flow_requires.h"
#include "joblog.h"
#include "output.h"
#include "signals.h"

#include "core/uuid.h"

#include "cbx/breaker_store.h"
#include "cbx/flow.h"
#include "cbx/journal.h"
#include "cbx/runtime.h"
#include "cbx/units.h"
#include "cbx/yaml.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ---- help ------------------------------------------------------------------------------------ */

static const char validate_help[] =
    "Usage: cbx validate FILE [--json] [--lua FILE]... [--plugin-path DIRS]\n"
    "\n"
    "Check a flow file without running it: YAML syntax, unknown keys, executors and their\n"
    "literal parameters, templates and what they refer to (inputs, steps), needs, cycles,\n"
    "policies, durations, sub-flows. Every problem is reported, one per line on stderr, as\n"
    "FILE:LINE:COLUMN: message. A good file prints \"FILE: ok (N steps)\". See docs/flows.md.\n"
    "A file is read up to $CBX_MAX_INPUT bytes (default 64M; 1M, 512K, 2G...); nesting past\n"
    "512 levels, aliases that add over a million nodes and a second document are refused.\n"
    "\n"
    "Options:\n"
    "  --json               print the problems as a JSON array on stdout ([] when none):\n"
    "                       [{file, line, col, code, message}]\n"
    "  --lua FILE           load the executor type defined in a Lua file, or every *.lua of a\n"
    "                       directory (repeatable; also $CBX_LUA_PATH)\n"
    "  --plugin-path DIRS   load the plugins (*.so) of these colon-separated directories or\n"
    "                       files (also $CBX_PLUGIN_PATH)\n"
    "  -h, --help           this help\n"
    "\n"
    "Examples:\n"
    "  cbx validate examples/flows/fetch_and_process.yaml\n"
    "  cbx validate --lua examples/lua/my_custom_executor.lua examples/flows/seed_flow.yaml\n"
    "  cbx validate flow.yaml --json | jq -r '.[].message'\n"
    "\n";

static const char validate_exit_help[] =
    "cbx validate exits 0 when the file is good and 2 when it has any problem.\n";

static const char run_help[] =
    "Usage: cbx run FILE [-i KEY=VALUE | -i KEY=@FILE]... [--inputs-json JSON] [OPTIONS]\n"
    "       cbx run FILE --resume RUN_ID\n"
    "       cbx run FILE --batch DATA.jsonl [--parallel N] [--output OUT.jsonl]\n"
    "                    [--joblog LOG] [--resume BATCH_ID]\n"
    "\n"
    "Run a flow: its steps as a DAG on the executor runtime, independent steps at once, each\n"
    "under its policy. The file is checked first (as 'cbx validate': every problem, exit 2).\n"
    "Every run has an id, printed on stderr at the start; the run and each step are journaled,\n"
    "so that a run that was killed can be resumed: the steps that had succeeded are not run\n"
    "again. On a terminal a live view shows each step (pending, running, retrying, success,\n"
    "failed, skipped, with attempts); otherwise one log line per step event on stderr. The\n"
    "flow's outputs are printed as JSON on stdout.\n"
    "\n"
    "Inputs:\n"
    "  -i, --input KEY=VALUE   an input, typed by the flow's declaration: integer, number,\n"
    "                          boolean, array and object values are parsed (JSON); string\n"
    "                          values are taken as they are\n"
    "  -i KEY=@FILE            the file's content (@- reads stdin), up to $CBX_MAX_INPUT\n"
    "                          bytes (default 64M)\n"
    "  --inputs-json JSON      every input as one JSON object (-i values override it)\n"
    "\n"
    "Running:\n"
    "  --json                  print the flow result as JSON: run_id, status, outputs, and\n"
    "                          every step's status, outputs, attempts, error and timings\n"
    "  --concurrency N         steps running at once; default the flow's (else 8)\n"
    "  --resume RUN_ID         resume that run (an id, or a unique prefix or suffix of one):\n"
    "                          re-run only the steps that had not succeeded, with the run's\n"
    "                          own inputs\n"
    "  --env NAME              an environment variable templates may read as env.NAME\n"
    "                          (repeatable; globs such as 'APP_*' allowed)\n"
    "  --lua FILE              load the executor type defined in a Lua file, or every *.lua of\n"
    "                          a directory (repeatable; also $CBX_LUA_PATH)\n"
    "  --plugin-path DIRS      load the plugins (*.so) of these colon-separated directories\n"
    "                          or files (also $CBX_PLUGIN_PATH)\n"
    "  -q, --quiet             no live view, log lines or summary: only the outputs and errors\n"
    "  --tmpdir                give each step execution a temporary directory of its own\n"
    "                          (a command finds it in $CBX_TMPDIR, a Lua type in ctx.tmpdir),\n"
    "                          removed when it ends\n"
    "  --keep-tmpdir           --tmpdir, kept when the step does not succeed\n"
    "  --state-dir DIR         the journal's directory (CBX_STATE_DIR)\n"
    "  --no-journal            do not journal (the run cannot be resumed)\n"
    "  -h, --help              this help\n"
    "\n";

/* The rest of run's help (one string would pass the 4095 bytes C99 promises). */
static const char run_help_batch[] =
    "Batch runs:\n"
    "  --batch DATA.jsonl      run the flow once per line of DATA (- = stdin): each line a JSON\n"
    "                          object of inputs (over the -i / --inputs-json ones). Every line\n"
    "                          is checked first; any bad line: all are reported, nothing runs\n"
    "  --parallel N            runs at once (each on its own thread and loop); default 4\n"
    "  --output OUT.jsonl      where the results go (default stdout): one JSON line per input\n"
    "                          line, in input order: {line, run_id, status, outputs | error,\n"
    "                          duration_ms}\n"
    "                          A progress bar on a terminal; a summary on stderr at the end\n"
    "                          (with --json and --output: as JSON on stdout).\n"
    "  --joblog LOG            a row per line in GNU parallel's --joblog columns\n"
    "  --resume BATCH_ID       finish a killed batch: succeeded lines are not run again\n"
    "\n"
    "The first ^C (or SIGTERM) cancels every running step - process trees are killed - and cbx\n"
    "exits 130; a second ^C exits at once. Resume the run later with --resume.\n"
    "\n"
    "Examples:\n"
    "  cbx run examples/flows/fetch_and_process.yaml -i url=https://example.com/\n"
    "  cbx run flow.yaml -i count=3 -i tags='[\"a\",\"b\"]' -i notes=@notes.txt --json\n"
    "  cbx run flow.yaml --inputs-json '{\"url\": \"https://example.com/\"}' --concurrency 2\n"
    "  cbx run flow.yaml --resume 0193a1b2\n"
    "  cbx run flow.yaml --batch data.jsonl --parallel 8 --output results.jsonl\n"
    "  cbx run --lua examples/lua/my_custom_executor.lua examples/flows/seed_flow.yaml \\\n"
    "      -i input_data='The quick brown fox'\n"
    "\n";

static const char run_exit_help[] =
    "cbx run exits 0 when the flow succeeded, 1 when a step failed (the error names it), 124\n"
    "when the flow or a step timed out, 2 when the file or the inputs are bad (nothing ran),\n"
    "130 when cancelled. A batch exits 0 when every run succeeded, else that of the first kind\n"
    "of trouble in this order: cancelled (130), failed (1), timed out (124).\n";

static const char runs_help[] =
    "Usage: cbx runs [--status S] [--flow NAME] [--since DUR] [--limit N] [--json]\n"
    "\n"
    "Flow runs from the journal, newest first: when, id, flow, status, duration and error.\n"
    "A run whose process died before it ended shows as 'abandoned' (its owner's pid and start\n"
    "time are recorded); resuming it (cbx run --resume) closes its unfinished executions.\n"
    "\n"
    "Options:\n"
    "  --status S       only runs in this status: running, success, failed, timeout,\n"
    "                   cancelled, abandoned\n"
    "  --flow NAME      only runs of this flow\n"
    "  --since DUR      only runs started within DUR before now (10m, 2h)\n"
    "  --limit N        at most N runs; default 20 (--json: 100)\n"
    "  --json           JSON instead of a table\n"
    "  --state-dir DIR  the journal's directory (CBX_STATE_DIR)\n"
    "  -h, --help       this help\n"
    "\n"
    "Examples:\n"
    "  cbx runs\n"
    "  cbx runs --limit 5 --json | jq -r '.[].run_id'\n"
    "\n";

static const char show_help[] =
    "Usage: cbx show RUN_ID [--json]\n"
    "\n"
    "One flow run from the journal: its flow and file, status, inputs, outputs, error, and each\n"
    "step that ran (status, attempts, duration, error). RUN_ID may be a unique prefix or\n"
    "suffix of a run id.\n"
    "\n"
    "Options:\n"
    "  --json           JSON instead of text: the run with its inputs, outputs and steps\n"
    "  --state-dir DIR  the journal's directory (CBX_STATE_DIR)\n"
    "  -h, --help       this help\n"
    "\n"
    "Examples:\n"
    "  cbx show 0193a1b2\n"
    "  cbx show 0193a1b2 --json | jq .steps.fetch\n"
    "\n";

static const char graph_help[] =
    "Usage: cbx graph FILE [--format mermaid|dot]\n"
    "\n"
    "Print a flow's DAG: a node per step (its name and executor, with foreach and when marks),\n"
    "an edge from each step to those that wait for it, composites and sub-flows as subgraphs.\n"
    "The file is checked as by 'cbx validate', except for executor types and their parameters\n"
    "(so a flow using Lua or plugin types is drawn without loading them).\n"
    "\n"
    "Options:\n"
    "  --format F       mermaid (default) or dot (Graphviz)\n"
    "  -h, --help       this help\n"
    "\n"
    "Examples:\n"
    "  cbx graph examples/flows/fan_out_fan_in.yaml\n"
    "  cbx graph flow.yaml --format dot | dot -Tsvg >flow.svg\n"
    "\n";

enum {
    OPT_INPUT = CLI_OPT_OWN,
    OPT_INPUTS_JSON,
    OPT_CONCURRENCY,
    OPT_RESUME,
    OPT_BATCH,
    OPT_PARALLEL,
    OPT_OUTPUT,
    OPT_JOBLOG,
    OPT_ENV,
    OPT_LUA,
    OPT_PLUGIN_PATH,
    OPT_QUIET,
    OPT_LIMIT,
    OPT_FORMAT,
    OPT_TMPDIR,
    OPT_KEEP_TMPDIR,
    OPT_STATUS,
    OPT_FLOW,
    OPT_SINCE,
};

static const cli_opt validate_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"lua", 0, 1, OPT_LUA},
    {"plugin-path", 0, 1, OPT_PLUGIN_PATH},
    {0},
};

static const cli_opt run_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"input", 'i', 1, OPT_INPUT},
    {"inputs-json", 0, 1, OPT_INPUTS_JSON},
    {"concurrency", 0, 1, OPT_CONCURRENCY},
    {"resume", 0, 1, OPT_RESUME},
    {"batch", 0, 1, OPT_BATCH},
    {"parallel", 0, 1, OPT_PARALLEL},
    {"output", 'o', 1, OPT_OUTPUT},
    {"joblog", 0, 1, OPT_JOBLOG},
    {"env", 0, 1, OPT_ENV},
    {"lua", 0, 1, OPT_LUA},
    {"plugin-path", 0, 1, OPT_PLUGIN_PATH},
    {"quiet", 'q', 0, OPT_QUIET},
    {"tmpdir", 0, 0, OPT_TMPDIR},
    {"keep-tmpdir", 0, 0, OPT_KEEP_TMPDIR},
    {0},
};

static const cli_opt runs_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"limit", 0, 1, OPT_LIMIT},
    {"status", 0, 1, OPT_STATUS},
    {"flow", 0, 1, OPT_FLOW},
    {"since", 0, 1, OPT_SINCE},
    {0},
};

static const cli_opt show_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {0},
};

static const cli_opt graph_opts[] = {
    CLI_OPTS_COMMON,
    {"format", 0, 1, OPT_FORMAT},
    {0},
};

/* ---- options --------------------------------------------------------------------------------- */

typedef struct flow_cfg {
    const char *cmd;  /* "run", "validate", ... for messages */
    const char *file; /* the positional FILE (or RUN_ID for show) */
    int json, quiet;
    int tmpdir;                /* CBX_TMPDIR_* */
    cbx_flow_runs_filter runs; /* cbx runs --status, --flow, --since */
    const char **kv;           /* -i values */
    size_t n_kv;
    const char *inputs_json;
    uint64_t concurrency;
    const char *resume;
    const char *batch, *output, *joblog;
    uint64_t parallel;
    int parallel_given;
    const char **env;      /* --env names, NULL-terminated */
    const char *state_dir; /* --state-dir (here or before the subcommand), for the resume hint */
    size_t n_env;
    uint64_t limit;
    int limit_given;
    const char *format;
    cli_types_src src;
} flow_cfg;

static void cfg_free(flow_cfg *c)
{
    free(c->kv);
    free(c->env);
    cli_flow_requires_free();
}

/* Parse a subcommand's options. Returns 0, -1 after --help, or an exit code. */
static int parse(cli_ctx *ctx, const char *cmd, const cli_opt *table, const char *help,
                 const char *exit_help, int argc, char **argv, flow_cfg *c)
{
    cli_args a;
    cli_args_init(&a, cmd, argc, argv, table);
    c->cmd = cmd;
    c->parallel = 4;
    c->kv = calloc((size_t)argc + 1, sizeof *c->kv);
    c->env = calloc((size_t)argc + 1, sizeof *c->env);
    if (!c->kv || !c->env) {
        cli_err("%s: out of memory", cmd);
        return CLI_EXIT_INTERNAL;
    }
    int id;
    const char *val;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(help, stdout);
            fputs(cli_exit_codes_help, stdout);
            if (exit_help)
                fputs(exit_help, stdout);
            return -1;
        case CLI_OPT_STATE_DIR:
        case CLI_OPT_NO_JOURNAL:
        case CLI_OPT_UTC:
        case CLI_OPT_JSON:
            if (cli_common_option(ctx, id, val, &c->json))
                return CLI_EXIT_USAGE;
            break;
        case OPT_QUIET:
            c->quiet = 1;
            break;
        case OPT_TMPDIR:
            if (!c->tmpdir)
                c->tmpdir = CBX_TMPDIR_MAKE;
            break;
        case OPT_KEEP_TMPDIR:
            c->tmpdir = CBX_TMPDIR_KEEP_ON_FAILURE;
            break;
        case OPT_INPUT:
            c->kv[c->n_kv++] = val;
            break;
        case OPT_INPUTS_JSON:
            c->inputs_json = val;
            break;
        case OPT_CONCURRENCY:
            if (cli_parse_uint("--concurrency", val, 1, 100000, &c->concurrency))
                return CLI_EXIT_USAGE;
            break;
        case OPT_RESUME:
            if (!val[0]) {
                cli_err("--resume: expected a run id (see 'cbx runs'), got ''");
                return CLI_EXIT_USAGE;
            }
            c->resume = val;
            break;
        case OPT_BATCH:
            c->batch = val;
            break;
        case OPT_PARALLEL:
            if (cli_parse_uint("--parallel", val, 1, 1024, &c->parallel))
                return CLI_EXIT_USAGE;
            c->parallel_given = 1;
            break;
        case OPT_OUTPUT:
            c->output = val;
            break;
        case OPT_JOBLOG:
            c->joblog = val;
            break;
        case OPT_ENV:
            c->env[c->n_env++] = val;
            break;
        case OPT_LIMIT:
            if (cli_parse_uint("--limit", val, 1, 1000000, &c->limit))
                return CLI_EXIT_USAGE;
            c->limit_given = 1;
            break;
        case OPT_STATUS: {
            static const char *const st[] = {"running",   "success",   "failed", "timeout",
                                             "cancelled", "abandoned", NULL};
            if (cli_parse_choice("--status", val, st))
                return CLI_EXIT_USAGE;
            c->runs.status = val;
            break;
        }
        case OPT_FLOW:
            c->runs.flow = val;
            break;
        case OPT_SINCE: {
            uint64_t ns = 0;
            if (cli_parse_duration("--since", val, &ns))
                return CLI_EXIT_USAGE;
            c->runs.since_ms = cli_now_ms() - ns / 1000000u;
            break;
        }
        case OPT_FORMAT: {
            static const char *const formats[] = {"mermaid", "dot", NULL};
            if (cli_parse_choice("--format", val, formats))
                return CLI_EXIT_USAGE;
            c->format = val;
            break;
        }
        case OPT_PLUGIN_PATH:
            if (c->src.n_plugin_paths == sizeof c->src.plugin_paths / sizeof *c->src.plugin_paths) {
                cli_err("%s: too many --plugin-path options", cmd);
                return CLI_EXIT_USAGE;
            }
            c->src.plugin_paths[c->src.n_plugin_paths++] = val;
            break;
        case OPT_LUA:
            if (c->src.n_lua_files == sizeof c->src.lua_files / sizeof *c->src.lua_files) {
                cli_err("%s: too many --lua options", cmd);
                return CLI_EXIT_USAGE;
            }
            c->src.lua_files[c->src.n_lua_files++] = val;
            break;
        case CLI_ARGS_POSITIONAL:
            if (c->file) {
                cli_err("%s: unexpected argument '%s' (one %s only)", cmd, val,
                        strcmp(cmd, "show") == 0 ? "RUN_ID" : "FILE");
                return CLI_EXIT_USAGE;
            }
            c->file = val;
            break;
        default:
            break;
        }
    }
    if (a.dashdash && a.rest < argc) {
        cli_err("%s: unexpected argument '%s'", cmd, argv[a.rest]);
        return CLI_EXIT_USAGE;
    }
    c->state_dir = ctx->state_dir;
    return 0;
}

/* ---- loading and problems -------------------------------------------------------------------- */

static void print_problem(FILE *f, const cbx_err *e)
{
    char line[1024];
    if (e->line > 0)
        snprintf(line, sizeof line, "%s:%d:%d: %s", e->where, e->line, e->col, e->msg);
    else if (e->where[0])
        snprintf(line, sizeof line, "%s: %s", e->where, e->msg);
    else
        snprintf(line, sizeof line, "%s", e->msg);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(f, "%s\n", line);
}

static json_t *problems_json(const cbx_diag *d)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < d->n; i++) {
        const cbx_err *e = &d->items[i];
        json_array_append_new(arr, json_pack("{s:s, s:i, s:i, s:s, s:s}", "file", e->where, "line",
                                             e->line, "col", e->col, "code", cbx_err_name(e->code),
                                             "message", e->msg));
    }
    return arr;
}

/* Load and check FILE. Returns 0 and *out, or an exit code after the problems were printed
 * (on stderr, or as JSON on stdout when json). */
static int load_flow(const char *cmd, const char *file, const cbx_registry *reg, int json,
                     cbx_flow **out)
{
    cbx_diag d = {0};
    *out = NULL;
    int r = cbx_flow_load(out, file, reg, &d);
    if (r == 0) {
        cbx_diag_clear(&d);
        return 0;
    }
    int code = r == -ENOMEM ? CLI_EXIT_INTERNAL : CLI_EXIT_USAGE;
    if (json) {
        json_t *arr = problems_json(&d);
        if (!d.n)
            json_array_append_new(arr, json_pack("{s:s, s:i, s:i, s:s, s:s}", "file", file, "line",
                                                 0, "col", 0, "code", cbx_err_name(r), "message",
                                                 cbx_strerror(r)));
        cli_print_json(stdout, arr);
        json_decref(arr);
    } else if (!d.n) {
        cli_err("%s: cannot load '%s': %s", cmd, file, cbx_strerror(r));
    } else {
        fflush(stdout);
        int unknown_type = 0;
        for (size_t i = 0; i < d.n; i++) {
            print_problem(stderr, &d.items[i]);
            unknown_type |=
                d.items[i].code == CBX_EUNKNOWN_TYPE && !strstr(d.items[i].msg, "did you mean");
        }
        fflush(stderr);
        if (unknown_type && reg)
            cli_err("%s: executor types written in Lua or as plugins are loaded with --lua FILE "
                    "or --plugin-path DIRS (see 'cbx types')",
                    cmd);
    }
    cbx_diag_clear(&d);
    return code;
}

/* What a run shows as its outputs: the flow's, or for a flow that declares none, {step:
 * outputs} of the steps that succeeded. New reference. */
static json_t *shown_outputs(const cbx_flow_result *r, int declared)
{
    if (declared || (r->outputs && json_object_size(r->outputs)))
        return r->outputs ? json_incref(r->outputs) : json_object();
    json_t *o = json_object();
    const char *key;
    json_t *st;
    json_object_foreach(r->steps, key, st)
    {
        const char *status = json_string_value(json_object_get(st, "status"));
        json_t *out = json_object_get(st, "outputs");
        if (status && strcmp(status, "success") == 0 && out)
            json_object_set(o, key, out);
    }
    return o;
}

static int need_file(const flow_cfg *c)
{
    if (c->file)
        return 0;
    cli_err("%s: expected a flow FILE (see 'cbx %s --help')", c->cmd, c->cmd);
    return CLI_EXIT_USAGE;
}

/* ---- cbx validate ---------------------------------------------------------------------------- */

int cli_cmd_validate(cli_ctx *ctx, int argc, char **argv)
{
    flow_cfg c = {0};
    cbx_registry *reg = NULL;
    cbx_flow *f = NULL;
    int rc =
        parse(ctx, "validate", validate_opts, validate_help, validate_exit_help, argc, argv, &c);
    if (rc || (rc = need_file(&c)) || (rc = cli_flow_requires("validate", c.file, &c.src)) ||
        (rc = cli_registry_open(&c.src, &reg)))
        goto out;
    rc = load_flow("validate", c.file, reg, c.json, &f);
    if (rc)
        goto out;
    if (c.json) {
        json_t *none = json_array();
        cli_print_json(stdout, none);
        json_decref(none);
    } else {
        size_t n = cbx_flow_step_count(f);
        printf("%s: ok (%zu step%s)\n", c.file, n, n == 1 ? "" : "s");
    }
out:
    cbx_flow_free(f);
    cbx_registry_free(reg);
    cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}

/* ---- inputs ---------------------------------------------------------------------------------- */

/* 1 when the flow takes v for input key; else 0 with the reason in why. */
static int input_accepts(const cbx_flow *f, const char *key, json_t *v, char *why, size_t len)
{
    json_t *given = json_object(), *out = NULL;
    if (!given || json_object_set(given, key, v) < 0) {
        json_decref(given);
        return 0;
    }
    cbx_diag d = {0};
    cbx_flow_inputs(f, given, &out, &d);
    int ok = 1;
    for (size_t i = 0; i < d.n; i++)
        if (strcmp(d.items[i].where, key) == 0) {
            ok = 0;
            if (why)
                snprintf(why, len, "%s", d.items[i].msg);
            break;
        }
    cbx_diag_clear(&d);
    json_decref(out);
    json_decref(given);
    return ok;
}

/* The text with surrounding white space removed (a file's trailing newline), copied. */
static char *trimmed(const char *text, size_t len)
{
    while (len && (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')) {
        text++;
        len--;
    }
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' ||
                   text[len - 1] == '\r'))
        len--;
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, text, len);
        s[len] = '\0';
    }
    return s;
}

/* The value of "-i key=text", typed by what the flow declares for key: the text as a string, or
 * parsed as JSON, whichever the declaration takes (both: the JSON value, as for an input of type
 * any, unless it is a string). When neither fits, the one whose refusal says more: the string
 * when it failed only an enum, else the JSON value ("expected integer, got number"). New
 * reference, or NULL when the text is not UTF-8. */
static json_t *typed_input(const cbx_flow *f, const char *key, const char *text, size_t len)
{
    json_t *s = json_stringn(text, len);
    if (!s)
        return NULL;
    char *t = trimmed(text, len);
    json_t *j = t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
    free(t);
    if (!j)
        return s;
    char why[600] = "";
    int s_ok = input_accepts(f, key, s, why, sizeof why);
    int j_ok = input_accepts(f, key, j, NULL, 0);
    int take_json =
        j_ok ? !(s_ok && json_is_string(j)) : !s_ok && strncmp(why, "expected one of", 15) != 0;
    if (take_json) {
        json_decref(s);
        return j;
    }
    json_decref(j);
    return s;
}

/* --inputs-json, then each -i over it. Returns 0 and *out, or an exit code after a message. */
static int build_inputs(const flow_cfg *c, const cbx_flow *f, json_t **out)
{
    *out = NULL;
    json_t *obj;
    if (c->inputs_json) {
        json_error_t je;
        obj = json_loads(c->inputs_json, JSON_REJECT_DUPLICATES, &je);
        if (!obj || !json_is_object(obj)) {
            if (obj)
                cli_err("--inputs-json: expected a JSON object, got %s", cli_json_kind(obj));
            else
                cli_err("--inputs-json: not valid JSON: %s (at column %d)", je.text, je.column);
            json_decref(obj);
            return CLI_EXIT_USAGE;
        }
    } else if (!(obj = json_object())) {
        return CLI_EXIT_INTERNAL;
    }
    for (size_t i = 0; i < c->n_kv; i++) {
        const char *eq = strchr(c->kv[i], '=');
        if (!eq || eq == c->kv[i]) {
            cli_err("%s: -i: expected key=value or key=@file, got '%s'", c->cmd, c->kv[i]);
            json_decref(obj);
            return CLI_EXIT_USAGE;
        }
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - c->kv[i] < 255 ? eq - c->kv[i] : 255),
                 c->kv[i]);
        const char *text = eq + 1;
        size_t len = strlen(text);
        char *file = NULL;
        if (text[0] == '@') {
            int r = cli_read_file(text + 1, &file, &len);
            if (r < 0) {
                cli_err("%s: -i %s: cannot read '%s': %s", c->cmd, key, text + 1,
                        cli_read_error(r));
                json_decref(obj);
                return CLI_EXIT_USAGE;
            }
            text = file;
        }
        json_t *v = typed_input(f, key, text, len);
        free(file);
        if (!v) {
            cli_err("%s: -i %s: the value is not UTF-8 text", c->cmd, key);
            json_decref(obj);
            return CLI_EXIT_USAGE;
        }
        json_object_set_new(obj, key, v);
    }
    *out = obj;
    return 0;
}

/* One problem with an input, as a message ("input 'n': expected integer, got string "x""). */
static void input_problem(char *buf, size_t len, const cbx_err *e, const json_t *given, int hint)
{
    if (!e->where[0] || strncmp(e->msg, "unknown input", 13) == 0) {
        snprintf(buf, len, "%s", e->msg);
        return;
    }
    const json_t *v = json_object_get(given, e->where);
    if (json_is_string(v) && strstr(e->msg, "got string"))
        snprintf(buf, len, "input '%s': %s \"%.60s%s\"", e->where, e->msg, json_string_value(v),
                 json_string_length(v) > 60 ? "..." : "");
    else if (hint && strncmp(e->msg, "missing required", 16) == 0)
        snprintf(buf, len, "input '%s': %s: give it with -i %s=VALUE", e->where, e->msg, e->where);
    else
        snprintf(buf, len, "input '%s': %s", e->where, e->msg);
}

/* ---- the journal and run ids ------------------------------------------------------------------
 */

/* With the retention of the environment (cli_journal_opts); read-only for runs and show. */
static int open_journal(const char *cmd, cbx_journal **j)
{
    return cli_journal_open(cmd, strcmp(cmd, "run") != 0, j);
}

/* A run id, or a unique prefix or suffix of one (time-ordered ids share their first digits): its
 * row from the list (new reference) in *row. Returns 0, -ENOENT, -EEXIST (ambiguous) or another
 * negative code (err filled). */
static int resolve_run(cbx_journal *j, const char *id, json_t **row, cbx_err *err)
{
    *row = NULL;
    json_t *rows = NULL;
    int r = cbx_flow_runs_list(j, 1000000, &rows, err);
    if (r < 0)
        return r;
    size_t i, found = 0, n = strlen(id);
    json_t *it;
    json_array_foreach(rows, i, it)
    {
        const char *rid = json_string_value(json_object_get(it, "run_id"));
        if (!rid)
            continue;
        if (strcmp(rid, id) == 0) {
            json_decref(*row);
            *row = json_incref(it);
            found = 1;
            break;
        }
        size_t rn = strlen(rid);
        if ((strncmp(rid, id, n) == 0 || (n <= rn && strcmp(rid + rn - n, id) == 0)) && !found++)
            *row = json_incref(it);
    }
    json_decref(rows);
    if (found != 1) {
        json_decref(*row);
        *row = NULL;
        return found ? -EEXIST : -ENOENT;
    }
    return 0;
}

/* ---- a single run ---------------------------------------------------------------------------- */

typedef struct run_state {
    const flow_cfg *c;
    cbx_runtime *rt;
    cli_flow_view *view;
    cbx_flow_result *res;
    int journaled;
    int announced;
    int stopping, signals;
    uv_signal_t sigint, sigterm;
    uv_prepare_t canceller;
    uv_timer_t tick;
} run_state;

/* An argument as a shell would need it. */
static void shell_word(char *buf, size_t len, const char *s)
{
    int plain = s[0] != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("_./:=@%+,-", *p);
    if (plain) {
        snprintf(buf, len, "%s", s);
        return;
    }
    size_t n = 0;
    if (n + 1 < len)
        buf[n++] = '\'';
    for (const char *p = s; *p && n + 5 < len; p++) {
        if (*p == '\'') {
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *p;
        }
    }
    if (n + 1 < len)
        buf[n++] = '\'';
    buf[n < len ? n : len - 1] = '\0';
}

/* The command that resumes this run, with what it needs to load the same flow. */
static void resume_command(const run_state *s, char *buf, size_t len)
{
    const flow_cfg *c = s->c;
    char w[1100];
    size_t n = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (n < len)                                                                               \
            n += (size_t)snprintf(buf + n, len - n, __VA_ARGS__);                                  \
    } while (0)
    shell_word(w, sizeof w, c->file);
    ADD("cbx run %s", w);
    for (size_t i = 0; i < c->src.n_lua_files; i++) {
        shell_word(w, sizeof w, c->src.lua_files[i]);
        ADD(" --lua %s", w);
    }
    for (size_t i = 0; i < c->src.n_plugin_paths; i++) {
        shell_word(w, sizeof w, c->src.plugin_paths[i]);
        ADD(" --plugin-path %s", w);
    }
    if (c->state_dir) {
        shell_word(w, sizeof w, c->state_dir);
        ADD(" --state-dir %s", w);
    }
    ADD(" --resume %s", s->res->run_id);
#undef ADD
}

/* The run id on stderr as soon as it is known (the first event): a crash can then be resumed. */
static void announce(run_state *s)
{
    if (s->announced || !s->res->run_id[0])
        return;
    s->announced = 1;
    if (s->c->quiet)
        return;
    if (s->c->resume) {
        cli_flow_view_note(s->view, "run %s resumed: the steps that succeeded are not run again",
                           s->res->run_id);
    } else if (s->journaled) {
        char cmd[4096];
        resume_command(s, cmd, sizeof cmd);
        cli_flow_view_note(s->view, "run %s started; resume with: %s", s->res->run_id, cmd);
    } else {
        cli_flow_view_note(s->view, "run %s started (--no-journal: it cannot be resumed)",
                           s->res->run_id);
    }
}

static void on_event(const cbx_flow_event *ev, void *ud)
{
    run_state *s = ud;
    announce(s);
    cli_flow_view_event(ev, s->view);
}

static void on_tick(uv_timer_t *t)
{
    run_state *s = t->data;
    cli_flow_view_tick(s->view);
}

/* While stopping, every turn of the loop cancels what the runner started since. */
static void on_canceller(uv_prepare_t *p)
{
    run_state *s = p->data;
    if (s->stopping)
        cbx_runtime_cancel_all(s->rt);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    run_state *s = h->data;
    if (s->signals++)
        _exit(CLI_EXIT_CANCELLED);
    s->stopping = 1;
    cbx_runtime_cancel_all(s->rt);
}

/* The exit code of a finished run. */
static int run_exit_code(const cbx_flow_result *r, int rc, int signalled)
{
    if (signalled)
        return CLI_EXIT_CANCELLED;
    switch (r->status) {
    case CBX_STATUS_SUCCESS:
        return CLI_EXIT_OK;
    case CBX_STATUS_TIMEOUT:
        return CLI_EXIT_TIMEOUT;
    case CBX_STATUS_CANCELLED:
        return CLI_EXIT_CANCELLED;
    case CBX_STATUS_REJECTED:
        return CLI_EXIT_USAGE;
    default:
        break;
    }
    if (rc == -ENOMEM || rc == CBX_EJOURNAL)
        return CLI_EXIT_INTERNAL;
    return CLI_EXIT_FAILED;
}

static void noop_close(uv_handle_t *h)
{
    (void)h;
}

/* What `cbx run` has loaded and got back is released by the process's exit, not one allocation
 * at a time: for a long flow that is a quarter of the command's CPU time. A leak checker
 * (AddressSanitizer) has it all freed instead; it stays reachable here meanwhile. */
#if defined(__SANITIZE_ADDRESS__)
#define CLI_FREE_AT_EXIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CLI_FREE_AT_EXIT 1
#endif
#endif
#ifndef CLI_FREE_AT_EXIT
static struct {
    cbx_flow *flow;
    json_t *steps, *outputs;
} left_to_exit;
#endif

static int run_single(flow_cfg *c, cbx_registry *reg, cbx_flow *f, json_t *inputs,
                      cbx_journal *journal)
{
    int code = CLI_EXIT_INTERNAL;
    cbx_err err;
    cbx_err_clear(&err);
    uv_loop_t loop;
    cbx_runtime *rt = NULL;
    cbx_flow_result res;
    memset(&res, 0, sizeof res);
    run_state s = {.c = c, .res = &res, .journaled = journal != NULL};
    if (uv_loop_init(&loop) < 0) {
        cli_err("run: cannot make the event loop");
        return CLI_EXIT_INTERNAL;
    }
    cbx_runtime_opts ro = {.loop = &loop, .registry = reg, .journal = journal};
    if (cbx_runtime_new(&rt, &ro, &err) < 0) {
        cli_err("run: cannot make the runtime: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        uv_loop_close(&loop);
        return CLI_EXIT_INTERNAL;
    }
    s.rt = rt;
    s.view = cli_flow_view_new(f, c->quiet ? CLI_VIEW_QUIET : CLI_VIEW_LIVE);
    uv_signal_init(&loop, &s.sigint);
    uv_signal_init(&loop, &s.sigterm);
    uv_prepare_init(&loop, &s.canceller);
    uv_timer_init(&loop, &s.tick);
    s.sigint.data = s.sigterm.data = s.canceller.data = s.tick.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    cli_signals_guard(); /* a second signal exits even while the loop is busy */
    uv_prepare_start(&s.canceller, on_canceller);
    uv_unref((uv_handle_t *)&s.sigint);
    uv_unref((uv_handle_t *)&s.sigterm);
    uv_unref((uv_handle_t *)&s.canceller);
    if (!c->quiet && isatty(STDERR_FILENO)) {
        uv_timer_start(&s.tick, on_tick, 100, 100);
        uv_unref((uv_handle_t *)&s.tick);
    }

    cbx_flow_run_opts o = {.inputs = inputs,
                           .resume_run_id = c->resume,
                           .concurrency = (uint32_t)c->concurrency,
                           .env_allow = c->n_env ? c->env : NULL,
                           .on_event = on_event,
                           .ud = &s,
                           .tmpdir = c->tmpdir};
    int rc = cbx_flow_run(rt, f, &o, &res, &err);
    announce(&s); /* a flow without steps had no event */
    uv_timer_stop(&s.tick);
    uv_signal_stop(&s.sigint);
    uv_signal_stop(&s.sigterm);
    uv_prepare_stop(&s.canceller);

    code = run_exit_code(&res, rc, s.signals > 0);
    cbx_flow_result shown = res; /* a shallow copy: what the summary says */
    if (s.signals)
        shown.status = CBX_STATUS_CANCELLED;
    cli_flow_view_end(s.view, cbx_flow_name(f), &shown);
    if (c->json) {
        json_t *j = cbx_flow_result_to_json(&res);
        if (cli_print_json(stdout, j) < 0 && code == CLI_EXIT_OK)
            code = CLI_EXIT_INTERNAL;
        json_decref(j);
    } else if (res.status == CBX_STATUS_SUCCESS) {
        json_t *out = shown_outputs(&res, cbx_flow_declares_outputs(f));
        if (cli_print_json(stdout, out) < 0)
            code = CLI_EXIT_INTERNAL;
        json_decref(out);
    }
    if (code == CLI_EXIT_CANCELLED && s.journaled && res.run_id[0]) {
        char cmd[4096];
        resume_command(&s, cmd, sizeof cmd);
        cli_err("run: cancelled; resume with: %s", cmd);
    } else if (code == CLI_EXIT_CANCELLED) {
        cli_err("run: cancelled");
    } else if (res.status == CBX_STATUS_REJECTED)
        cli_err("run: %s", res.error);
    else if (code != CLI_EXIT_OK)
        cli_err("run: %s", res.error[0] ? res.error : cbx_strerror(rc));

#ifndef CLI_FREE_AT_EXIT
    left_to_exit.steps = res.steps;
    left_to_exit.outputs = res.outputs;
    res.steps = res.outputs = NULL;
#endif
    cbx_flow_result_clear(&res);
    uv_close((uv_handle_t *)&s.sigint, noop_close);
    uv_close((uv_handle_t *)&s.sigterm, noop_close);
    uv_close((uv_handle_t *)&s.canceller, noop_close);
    uv_close((uv_handle_t *)&s.tick, noop_close);
    cbx_runtime_free(rt);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    cli_flow_view_free(s.view);
    return code;
}

/* ---- batch runs -------------------------------------------------------------------------------
 */

typedef struct batch_item {
    int line;       /* in the data file, 1-based */
    json_t *inputs; /* owned */
    json_t *result; /* the output line once the run is over; owned */
    char run_id[40];
    int resume; /* --resume BATCH_ID: run_id is this line's run, to resume */
} batch_item;

typedef struct batch batch;

typedef struct worker {
    batch *b;
    pthread_t th;
    int started;
    uv_loop_t loop;
    cbx_runtime *rt;
    uv_async_t wake; /* from the main thread: stop */
    uv_prepare_t canceller;
    int alive; /* under b->mu: wake may be sent */
} worker;

struct batch {
    const flow_cfg *c;
    cli_ctx *ctx;
    cbx_registry *reg;
    cbx_breaker_store *store;
    cbx_journal *journal; /* one handle for every worker (NULL: --no-journal) */
    int declared;         /* the flow declares outputs */
    batch_item *items;
    size_t n;
    pthread_mutex_t mu;
    size_t next, done, ok, failed, timeouts, cancelled, next_write, exited;
    atomic_int stopping;
    char setup_error[512]; /* the first worker that could not start */
    worker *workers;
    size_t nworkers;
    uv_loop_t loop;
    uv_async_t notify;
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
    int signals, closed;
    cli_progress progress;
    FILE *out;
    int write_failed;
    cli_batch_state state; /* which run each line went to, for --resume BATCH_ID */
    cli_joblog joblog;
    size_t reused; /* --resume: lines whose run had succeeded, not run again */
};

static json_t *result_line(int line, const cbx_flow_result *r, int declared)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "line", json_integer(line));
    json_object_set_new(o, "run_id", r->run_id[0] ? json_string(r->run_id) : json_null());
    json_object_set_new(o, "status", json_string(cbx_status_name(r->status)));
    if (r->status == CBX_STATUS_SUCCESS)
        json_object_set_new(o, "outputs", shown_outputs(r, declared));
    else
        json_object_set_new(o, "error", json_string(r->error));
    json_object_set_new(o, "duration_ns", json_integer((json_int_t)r->duration_ns));
    return o;
}

static void on_worker_wake(uv_async_t *a)
{
    worker *w = a->data;
    if (atomic_load(&w->b->stopping))
        cbx_runtime_cancel_all(w->rt);
}

static void on_worker_prepare(uv_prepare_t *p)
{
    worker *w = p->data;
    if (atomic_load(&w->b->stopping))
        cbx_runtime_cancel_all(w->rt);
}

static void worker_fail(worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void worker_fail(worker *w, const char *fmt, ...)
{
    batch *b = w->b;
    pthread_mutex_lock(&b->mu);
    if (!b->setup_error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->setup_error, sizeof b->setup_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&b->mu);
    atomic_store(&b->stopping, 1);
}

/* The joblog row of a line (under b->mu): GNU parallel's columns; Exitval is the exit code a
 * single cbx run of the line would have had, Command a cbx run of the line alone. */
static void joblog_row(batch *b, const batch_item *it, cbx_status st, double start_s,
                       double runtime_s)
{
    if (!b->joblog.f)
        return;
    char *cmd = NULL, *q = NULL;
    size_t len = 0;
    char *in = json_dumps(it->inputs, JSON_COMPACT | JSON_SORT_KEYS);
    const char *words[] = {"cbx", "run", b->c->file, "--inputs-json", in ? in : "{}"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t ql = 0, qc = 0;
        if (cli_shell_quote(&q, &ql, &qc, words[i]) < 0)
            break;
        char *grown = realloc(cmd, len + ql + 2);
        if (!grown)
            break;
        cmd = grown;
        if (len)
            cmd[len++] = ' ';
        memcpy(cmd + len, q, ql);
        len += ql;
        cmd[len] = '\0';
        free(q);
        q = NULL;
    }
    free(q);
    free(in);
    cli_joblog_row r = {.seq = (uint64_t)it->line,
                        .start_s = start_s,
                        .runtime_s = runtime_s,
                        .exitval = st == CBX_STATUS_SUCCESS     ? CLI_EXIT_OK
                                   : st == CBX_STATUS_TIMEOUT   ? CLI_EXIT_TIMEOUT
                                   : st == CBX_STATUS_CANCELLED ? CLI_EXIT_CANCELLED
                                                                : CLI_EXIT_FAILED,
                        .command = cmd ? cmd : ""};
    if (cli_joblog_write(&b->joblog, &r) < 0)
        b->write_failed = 1;
    free(cmd);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    batch *b = w->b;
    const flow_cfg *c = b->c;
    cbx_flow *f = NULL;
    cbx_journal *j = b->journal;
    int loop_ok = 0, handles_ok = 0;
    cbx_err err;
    cbx_err_clear(&err);
    cbx_diag d = {0};
    if (cbx_flow_load(&f, c->file, b->reg, &d) < 0) {
        cbx_err first;
        cbx_diag_first(&d, &first);
        worker_fail(w, "cannot load '%s': %s", c->file, first.msg);
        goto out;
    }
    if (uv_loop_init(&w->loop) < 0) {
        worker_fail(w, "cannot make an event loop");
        goto out;
    }
    loop_ok = 1;
    cbx_runtime_opts ro = {
        .loop = &w->loop, .registry = b->reg, .journal = j, .breakers = b->store};
    if (cbx_runtime_new(&w->rt, &ro, &err) < 0) {
        worker_fail(w, "cannot make the runtime: %s",
                    err.msg[0] ? err.msg : cbx_strerror(err.code));
        goto out;
    }
    uv_async_init(&w->loop, &w->wake, on_worker_wake);
    uv_prepare_init(&w->loop, &w->canceller);
    w->wake.data = w->canceller.data = w;
    uv_prepare_start(&w->canceller, on_worker_prepare);
    uv_unref((uv_handle_t *)&w->wake);
    uv_unref((uv_handle_t *)&w->canceller);
    handles_ok = 1;
    pthread_mutex_lock(&b->mu);
    w->alive = 1;
    pthread_mutex_unlock(&b->mu);

    for (;;) {
        pthread_mutex_lock(&b->mu);
        if (atomic_load(&b->stopping) || b->next >= b->n) {
            pthread_mutex_unlock(&b->mu);
            break;
        }
        batch_item *it = &b->items[b->next++];
        if (it->result) { /* --resume: it succeeded in the batch resumed */
            pthread_mutex_unlock(&b->mu);
            continue;
        }
        /* the line's run is recorded before it starts, so that a resume finds it */
        if (!it->resume && b->state.f) {
            cbx__uuid7(it->run_id);
            if (cli_batch_state_note(&b->state, it->line, it->run_id) < 0) {
                pthread_mutex_unlock(&b->mu);
                worker_fail(w, "cannot write %s", b->state.path);
                break;
            }
        }
        pthread_mutex_unlock(&b->mu);

        cbx_flow_result res;
        cbx_err e;
        cbx_err_clear(&e);
        cbx_flow_run_opts o = {.inputs = it->resume ? NULL : it->inputs,
                               .resume_run_id = it->resume ? it->run_id : NULL,
                               .run_id = it->resume || !it->run_id[0] ? NULL : it->run_id,
                               .concurrency = (uint32_t)c->concurrency,
                               .env_allow = c->n_env ? c->env : NULL,
                               .tmpdir = c->tmpdir};
        uint64_t t0 = cbx_clock_now_ns(NULL);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double start_s = (double)now.tv_sec + (double)(now.tv_nsec / 1000000) / 1e3;
        cbx_flow_run(w->rt, f, &o, &res, &e);
        /* a run that a ^C stopped counts as cancelled, whatever its steps made of it */
        if (res.status != CBX_STATUS_SUCCESS && atomic_load(&b->stopping))
            res.status = CBX_STATUS_CANCELLED;
        json_t *line = result_line(it->line, &res, b->declared);
        cbx_status st = res.status;
        cbx_flow_result_clear(&res);

        pthread_mutex_lock(&b->mu);
        joblog_row(b, it, st, start_s, (double)(cbx_clock_now_ns(NULL) - t0) / 1e9);
        it->result = line;
        b->done++;
        if (st == CBX_STATUS_SUCCESS)
            b->ok++;
        else if (st == CBX_STATUS_TIMEOUT)
            b->timeouts++;
        else if (st == CBX_STATUS_CANCELLED)
            b->cancelled++;
        else
            b->failed++;
        uv_async_send(&b->notify);
        pthread_mutex_unlock(&b->mu);
    }

    pthread_mutex_lock(&b->mu);
    w->alive = 0;
    pthread_mutex_unlock(&b->mu);
out:
    if (handles_ok) {
        uv_close((uv_handle_t *)&w->wake, noop_close);
        uv_close((uv_handle_t *)&w->canceller, noop_close);
    }
    cbx_runtime_free(w->rt);
    w->rt = NULL;
    if (loop_ok) {
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
    cbx_flow_free(f);
    cbx_diag_clear(&d);
    pthread_mutex_lock(&b->mu);
    b->exited++;
    uv_async_send(&b->notify);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* One result line: its duration goes last, in ms to the microsecond (a JSON real would be
 * written with 17 digits). Returns 0 or -1. */
static int write_line(FILE *out, const json_t *line)
{
    json_t *copy = json_copy((json_t *)line);
    const json_t *dur = json_object_get(line, "duration_ns");
    if (!copy)
        return -1;
    json_object_del(copy, "duration_ns");
    char *s = json_dumps(copy, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(copy);
    size_t len = s ? strlen(s) : 0;
    int rc = -1;
    if (len >= 2 && dur)
        rc = fprintf(out, "%.*s,\"duration_ms\":%.3f}\n", (int)(len - 1), s,
                     (double)json_integer_value(dur) / 1e6) < 0
                 ? -1
                 : 0;
    else if (len >= 2)
        rc = fprintf(out, "%s\n", s) < 0 ? -1 : 0;
    free(s);
    return rc;
}

/* Write the results that are ready, in input order (main thread). */
static void batch_write(batch *b)
{
    for (;;) {
        pthread_mutex_lock(&b->mu);
        json_t *line = b->next_write < b->n ? b->items[b->next_write].result : NULL;
        pthread_mutex_unlock(&b->mu);
        if (!line)
            return;
        if (b->out == stdout)
            cli_progress_clear(&b->progress);
        if (write_line(b->out, line) < 0)
            b->write_failed = 1;
        b->next_write++;
    }
}

static void batch_draw(batch *b)
{
    pthread_mutex_lock(&b->mu);
    size_t done = b->done, ok = b->ok, bad = b->failed + b->timeouts + b->cancelled;
    pthread_mutex_unlock(&b->mu);
    cli_progress_draw(&b->progress, done, b->n, ok, bad, 0);
}

static void batch_close(batch *b)
{
    if (b->closed)
        return;
    b->closed = 1;
    uv_close((uv_handle_t *)&b->notify, noop_close);
    uv_close((uv_handle_t *)&b->sigint, noop_close);
    uv_close((uv_handle_t *)&b->sigterm, noop_close);
    uv_close((uv_handle_t *)&b->tick, noop_close);
}

static void on_notify(uv_async_t *a)
{
    batch *b = a->data;
    batch_write(b);
    fflush(b->out);
    batch_draw(b);
    pthread_mutex_lock(&b->mu);
    int all_out = b->exited == b->nworkers;
    pthread_mutex_unlock(&b->mu);
    /* every worker has sent its last notice: nothing will touch the handle again */
    if (all_out)
        batch_close(b);
}

static void on_batch_tick(uv_timer_t *t)
{
    batch_draw(t->data);
}

static void on_batch_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    batch *b = h->data;
    if (b->signals++) {
        cli_progress_clear(&b->progress);
        _exit(CLI_EXIT_CANCELLED);
    }
    atomic_store(&b->stopping, 1);
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->nworkers; i++)
        if (b->workers[i].alive)
            uv_async_send(&b->workers[i].wake);
    pthread_mutex_unlock(&b->mu);
}

/* Read DATA: one JSON object of inputs per non-blank line, over base. Every problem (syntax,
 * inputs the flow does not take) is printed as DATA:LINE[:COL]: message; returns 0, or an exit
 * code after them. */
static int batch_read(const flow_cfg *c, const cbx_flow *f, const json_t *base, batch *b)
{
    char *text = NULL;
    size_t len = 0;
    int r = cli_read_file(c->batch, &text, &len);
    if (r < 0) {
        cli_err("--batch: cannot read '%s': %s", c->batch, cli_read_error(r));
        return CLI_EXIT_USAGE;
    }
    const char *name = strcmp(c->batch, "-") == 0 ? "<stdin>" : c->batch;
    size_t cap = 16, problems = 0;
    b->items = calloc(cap, sizeof *b->items);
    if (!b->items) {
        free(text);
        return CLI_EXIT_INTERNAL;
    }
    int lineno = 0;
    fflush(stdout);
    for (size_t pos = 0; pos < len;) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        lineno++;
        const char *l = text + pos;
        size_t ll = end - pos;
        pos = end + 1;
        size_t k = 0;
        while (k < ll && (l[k] == ' ' || l[k] == '\t' || l[k] == '\r'))
            k++;
        if (k == ll)
            continue; /* a blank line */
        json_error_t je;
        json_t *v = json_loadb(l, ll, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        if (!v) {
            fprintf(stderr, "%s:%d:%d: not valid JSON: %s\n", name, lineno, je.column, je.text);
            problems++;
            continue;
        }
        if (!json_is_object(v)) {
            fprintf(stderr, "%s:%d:1: expected a JSON object of inputs, got %s\n", name, lineno,
                    cli_json_kind(v));
            json_decref(v);
            problems++;
            continue;
        }
        json_t *merged = json_deep_copy(base);
        if (!merged || json_object_update(merged, v) < 0) {
            json_decref(v);
            json_decref(merged);
            free(text);
            return CLI_EXIT_INTERNAL;
        }
        json_decref(v);
        cbx_diag d = {0};
        json_t *checked = NULL;
        if (cbx_flow_inputs(f, merged, &checked, &d) < 0) {
            for (size_t i = 0; i < d.n; i++) {
                char msg[1200];
                input_problem(msg, sizeof msg, &d.items[i], merged, 0);
                fprintf(stderr, "%s:%d: %s\n", name, lineno, msg);
                problems++;
            }
            cbx_diag_clear(&d);
            json_decref(merged);
            continue;
        }
        json_decref(checked);
        if (b->n == cap) {
            batch_item *ni = realloc(b->items, cap * 2 * sizeof *ni);
            if (!ni) {
                json_decref(merged);
                free(text);
                return CLI_EXIT_INTERNAL;
            }
            b->items = ni;
            cap *= 2;
        }
        b->items[b->n++] = (batch_item){.line = lineno, .inputs = merged};
    }
    free(text);
    fflush(stderr);
    if (problems) {
        cli_err("run: --batch: %zu problem%s in %s; nothing ran", problems,
                problems == 1 ? "" : "s", name);
        return CLI_EXIT_USAGE;
    }
    if (!b->n) {
        cli_err("run: --batch: no inputs in %s (one JSON object per line)", name);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* The result line of a line whose run succeeded in the batch resumed, from the journal. */
static json_t *journaled_line(const batch_item *it, const json_t *run, int declared)
{
    cbx_flow_result r = {.status = CBX_STATUS_SUCCESS};
    snprintf(r.run_id, sizeof r.run_id, "%s", it->run_id);
    json_t *out = json_object_get(run, "outputs");
    r.outputs = json_is_null(out) ? NULL : out;
    r.steps = json_object_get(run, "steps");
    json_int_t t0 = json_integer_value(json_object_get(run, "started_ms"));
    json_int_t t1 = json_integer_value(json_object_get(run, "ended_ms"));
    r.duration_ns = t1 > t0 ? (uint64_t)(t1 - t0) * 1000000u : 0;
    return result_line(it->line, &r, declared);
}

/* Where each line's run is recorded: a new batch (its id on stderr, with the command that
 * resumes it), or --resume BATCH_ID: the lines whose run succeeded take their result from the
 * journal, the others resume their run (or start one). Returns 0 or an exit code. */
static int batch_begin(const flow_cfg *c, batch *b, cbx_journal *journal)
{
    char msg[4200], flow[4096];
    if (!realpath(c->file, flow))
        snprintf(flow, sizeof flow, "%s", c->file);
    if (c->joblog && cli_joblog_open(&b->joblog, c->joblog, c->resume != NULL) < 0) {
        cli_err("--joblog: cannot write '%s': %s", c->joblog, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if (!journal) {
        if (c->resume) {
            cli_err("run: --resume reads the journal; drop --no-journal");
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    if (!c->resume) {
        if (cli_batch_state_new(&b->state, flow, c->batch, msg, sizeof msg) < 0) {
            cli_err("run: batch: %s", msg);
            return CLI_EXIT_INTERNAL;
        }
        if (!c->quiet) {
            /* the same inputs from the command line: the lines that never started need them */
            char ins[2048] = "";
            size_t n = 0;
            for (size_t i = 0; i < c->n_kv && n < sizeof ins; i++)
                n += (size_t)snprintf(ins + n, sizeof ins - n, " -i '%s'", c->kv[i]);
            if (c->inputs_json && n < sizeof ins)
                snprintf(ins + n, sizeof ins - n, " --inputs-json '%s'", c->inputs_json);
            fprintf(stderr,
                    "batch %s started; resume with: cbx run %s --batch %s%s%s%s --resume %s\n",
                    b->state.id, c->file, c->batch, ins, c->output ? " --output " : "",
                    c->output ? c->output : "", b->state.id);
        }
        return 0;
    }
    json_t *lines = NULL;
    int r = cli_batch_state_resume(&b->state, c->resume, flow, &lines, msg, sizeof msg);
    if (r < 0) {
        cli_err("run: --resume: %s", msg);
        return r == -ENOENT || r == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_INTERNAL;
    }
    for (size_t i = 0; i < b->n; i++) {
        batch_item *it = &b->items[i];
        char key[32];
        snprintf(key, sizeof key, "%d", it->line);
        const char *id = json_string_value(json_object_get(lines, key));
        if (!id)
            continue; /* never started: it runs afresh */
        snprintf(it->run_id, sizeof it->run_id, "%s", id);
        json_t *run = NULL;
        cbx_err e;
        if (cbx_flow_run_show(journal, id, &run, &e) < 0)
            continue; /* its run was never journaled (killed first): afresh, under a new id */
        const char *st = json_string_value(json_object_get(run, "status"));
        if (st && strcmp(st, "success") == 0) {
            it->result = journaled_line(it, run, b->declared);
            b->done++;
            b->ok++;
            b->reused++;
        } else {
            it->resume = 1;
        }
        json_decref(run);
    }
    json_decref(lines);
    if (!c->quiet)
        fprintf(stderr, "batch %s resumed: %zu of %zu lines had succeeded and are not run again\n",
                c->resume, b->reused, b->n);
    return 0;
}

static int run_batch(flow_cfg *c, cli_ctx *ctx, cbx_registry *reg, cbx_flow *f, json_t *base)
{
    batch b = {
        .c = c, .ctx = ctx, .reg = reg, .out = stdout, .declared = cbx_flow_declares_outputs(f)};
    int code = batch_read(c, f, base, &b);
    cbx_err err;
    cbx_err_clear(&err);
    cbx_journal *journal = NULL;
    int mu_ok = 0, loop_ok = 0;
    if (code)
        goto out;
    /* One handle, shared by the workers (it is thread-safe; closed once they are joined): their
     * records go into the same batches through one connection, and the flow statements are
     * prepared once, where a handle each made every batch wait for the others' write lock
     * (SQLite's busy handler sleeps 1, 2, 5 ms...) and each worker open its own. */
    if (!ctx->no_journal && (code = open_journal("run", &journal)))
        goto out;
    b.journal = journal;
    if ((code = batch_begin(c, &b, journal)))
        goto out;
    code = CLI_EXIT_INTERNAL;
    if (c->output && !(b.out = fopen(c->output, "w"))) {
        cli_err("--output: cannot write '%s': %s", c->output, strerror(errno));
        b.out = stdout;
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if (cbx_breaker_store_memory_new(&b.store, &err) < 0) {
        cli_err("run: breaker store: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        goto out;
    }
    if (pthread_mutex_init(&b.mu, NULL) != 0)
        goto out;
    mu_ok = 1;
    if (uv_loop_init(&b.loop) < 0) {
        cli_err("run: cannot make the event loop");
        goto out;
    }
    loop_ok = 1;
    b.nworkers = c->parallel < b.n ? c->parallel : b.n;
    b.workers = calloc(b.nworkers, sizeof *b.workers);
    if (!b.workers) {
        b.nworkers = 0;
        goto out;
    }
    uv_async_init(&b.loop, &b.notify, on_notify);
    uv_signal_init(&b.loop, &b.sigint);
    uv_signal_init(&b.loop, &b.sigterm);
    uv_timer_init(&b.loop, &b.tick);
    b.notify.data = b.sigint.data = b.sigterm.data = b.tick.data = &b;
    uv_signal_start(&b.sigint, on_batch_signal, SIGINT);
    uv_signal_start(&b.sigterm, on_batch_signal, SIGTERM);
    cli_signals_guard();
    cli_progress_start(&b.progress, !c->quiet);
    if (b.progress.on)
        uv_timer_start(&b.tick, on_batch_tick, 100, 100);

    size_t started = 0;
    for (size_t i = 0; i < b.nworkers; i++) {
        b.workers[i].b = &b;
        if (pthread_create(&b.workers[i].th, NULL, worker_main, &b.workers[i]) != 0)
            break;
        b.workers[i].started = 1;
        started++;
    }
    if (!started) {
        cli_err("run: cannot start a worker thread");
        batch_close(&b);
        uv_run(&b.loop, UV_RUN_DEFAULT);
        goto out;
    }
    pthread_mutex_lock(&b.mu);
    b.nworkers = started; /* exited counts up to this */
    pthread_mutex_unlock(&b.mu);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < started; i++)
        pthread_join(b.workers[i].th, NULL);
    cli_progress_clear(&b.progress);

    /* lines that never ran (cancelled, or a worker could not start) */
    size_t not_run = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (b.items[i].result)
            continue;
        b.items[i].result = json_pack(
            "{s:i, s:n, s:s, s:s}", "line", b.items[i].line, "run_id", "status", "cancelled",
            "error", b.setup_error[0] ? "not run: the batch stopped" : "not run: cancelled");
        not_run++;
    }
    batch_write(&b);
    if (fflush(b.out) == EOF || b.write_failed) {
        cli_err("run: cannot write the results%s%s: %s", c->output ? " to " : "",
                c->output ? c->output : "", strerror(errno));
        code = CLI_EXIT_INTERNAL;
        goto out;
    }
    if (b.setup_error[0]) {
        cli_err("run: %s", b.setup_error);
        code = CLI_EXIT_INTERNAL;
        goto out;
    }
    uint64_t elapsed = cli_progress_elapsed_ns(&b.progress);
    char d[32];
    cbx_duration_human(elapsed, d, sizeof d);
    if (c->json && c->output) {
        json_t *sum = json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:s}", "total", (json_int_t)b.n, "succeeded",
            (json_int_t)b.ok, "failed", (json_int_t)b.failed, "timeouts", (json_int_t)b.timeouts,
            "cancelled", (json_int_t)b.cancelled + (json_int_t)not_run, "parallel",
            (json_int_t)b.nworkers, "duration_ms", (double)elapsed / 1e6, "output", c->output);
        cli_print_json(stdout, sum);
        json_decref(sum);
    } else if (!c->quiet) {
        char line[512];
        int n = snprintf(line, sizeof line, "batch: %zu run%s in %s: %zu succeeded, %zu failed",
                         b.n, b.n == 1 ? "" : "s", d, b.ok, b.failed);
        if (b.timeouts && n > 0 && (size_t)n < sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, ", %zu timed out", b.timeouts);
        if (b.cancelled + not_run && n > 0 && (size_t)n < sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, ", %zu cancelled",
                          b.cancelled + not_run);
        if (c->output && n > 0 && (size_t)n < sizeof line)
            snprintf(line + n, sizeof line - (size_t)n, "; results in %s", c->output);
        fflush(stdout);
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
    }
    if (b.signals || b.cancelled || not_run)
        code = CLI_EXIT_CANCELLED;
    else if (b.failed)
        code = CLI_EXIT_FAILED;
    else if (b.timeouts)
        code = CLI_EXIT_TIMEOUT;
    else
        code = CLI_EXIT_OK;
out:
    if (loop_ok) {
        uv_run(&b.loop, UV_RUN_NOWAIT);
        uv_loop_close(&b.loop);
    }
    if (mu_ok)
        pthread_mutex_destroy(&b.mu);
    for (size_t i = 0; i < b.n; i++) {
        json_decref(b.items[i].inputs);
        json_decref(b.items[i].result);
    }
    free(b.items);
    free(b.workers);
    cli_batch_state_close(&b.state);
    cli_joblog_close(&b.joblog);
    cbx_breaker_store_free(b.store);
    cbx_journal_close(journal);
    if (b.out && b.out != stdout)
        fclose(b.out);
    return code;
}

/* ---- cbx run --------------------------------------------------------------------------------- */

static int check_run_options(const flow_cfg *c, const cli_ctx *ctx)
{
    if (!c->batch && (c->parallel_given || c->output || c->joblog)) {
        cli_err("run: %s goes with --batch DATA.jsonl", c->parallel_given ? "--parallel"
                                                        : c->output       ? "--output"
                                                                          : "--joblog");
        return CLI_EXIT_USAGE;
    }
    if (c->resume && !c->batch && (c->n_kv || c->inputs_json)) {
        cli_err("run: --resume runs with the inputs of the run it resumes; drop %s",
                c->n_kv ? "-i" : "--inputs-json");
        return CLI_EXIT_USAGE;
    }
    if (c->resume && ctx->no_journal) {
        cli_err("run: --resume reads the journal; drop --no-journal");
        return CLI_EXIT_USAGE;
    }
    if (c->batch && c->json && !c->output) {
        cli_err("run: --json with --batch prints the summary: give the results a file with "
                "--output");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* --resume ID: the full id of a run of this flow. Returns 0, or an exit code after a message. */
static int find_resumed(flow_cfg *c, cbx_journal *j, const cbx_flow *f, char *id, size_t len)
{
    json_t *row = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int r = resolve_run(j, c->resume, &row, &err);
    if (r == -ENOENT) {
        cli_err("run: --resume: no flow run '%s' in the journal (see 'cbx runs')", c->resume);
        return CLI_EXIT_USAGE;
    }
    if (r == -EEXIST) {
        cli_err("run: --resume: '%s' matches more than one run; give more of the id", c->resume);
        return CLI_EXIT_USAGE;
    }
    if (r < 0) {
        cli_err("run: --resume: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        return CLI_EXIT_INTERNAL;
    }
    const char *flow = json_string_value(json_object_get(row, "flow"));
    snprintf(id, len, "%s", json_string_value(json_object_get(row, "run_id")));
    int code = 0;
    if (flow && strcmp(flow, cbx_flow_name(f)) != 0) {
        cli_err("run: --resume: run %s is of flow '%s', not '%s' (%s)", id, flow, cbx_flow_name(f),
                c->file);
        code = CLI_EXIT_USAGE;
    }
    json_decref(row);
    return code;
}

int cli_cmd_run(cli_ctx *ctx, int argc, char **argv)
{
    flow_cfg c = {0};
    cbx_registry *reg = NULL;
    cbx_flow *f = NULL;
    cbx_journal *journal = NULL;
    json_t *inputs = NULL;
    char resume_id[64];
    static char help[sizeof run_help + sizeof run_help_batch];
    if (!help[0])
        snprintf(help, sizeof help, "%s%s", run_help, run_help_batch);
    int rc = parse(ctx, "run", run_opts, help, run_exit_help, argc, argv, &c);
    if (rc || (rc = need_file(&c)) || (rc = check_run_options(&c, ctx)) ||
        (rc = cli_flow_requires("run", c.file, &c.src)) || (rc = cli_registry_open(&c.src, &reg)) ||
        (rc = load_flow("run", c.file, reg, 0, &f)))
        goto out;
    if ((!c.resume || c.batch) && (rc = build_inputs(&c, f, &inputs)))
        goto out;
    if (c.batch) {
        rc = run_batch(&c, ctx, reg, f, inputs);
        goto out;
    }
    if (!c.resume) {
        cbx_diag d = {0};
        json_t *checked = NULL;
        if (cbx_flow_inputs(f, inputs, &checked, &d) < 0) {
            for (size_t i = 0; i < d.n; i++) {
                char msg[1200];
                input_problem(msg, sizeof msg, &d.items[i], inputs, 1);
                cli_err("run: %s", msg);
            }
            if (!d.n)
                cli_err("run: out of memory");
            rc = d.n ? CLI_EXIT_USAGE : CLI_EXIT_INTERNAL;
            cbx_diag_clear(&d);
            goto out;
        }
        json_decref(checked);
    }
    if (!ctx->no_journal && (rc = open_journal("run", &journal)))
        goto out;
    if (c.resume) {
        if ((rc = find_resumed(&c, journal, f, resume_id, sizeof resume_id)))
            goto out;
        c.resume = resume_id;
    }
    rc = run_single(&c, reg, f, inputs, journal);
#ifndef CLI_FREE_AT_EXIT
    left_to_exit.flow = f; /* the command ends here: see run_single */
    f = NULL;
#endif
out:
    json_decref(inputs);
    cbx_journal_close(journal);
    cbx_flow_free(f);
    cbx_registry_free(reg);
    cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}

/* ---- cbx runs and cbx show ------------------------------------------------------------------- */

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static uint64_t int_of(const json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* "1.2s" between two wall-clock ms, or "-" when it has not ended. */
static const char *span(uint64_t from, uint64_t to, char *buf, size_t len)
{
    if (!from || !to || to < from) {
        snprintf(buf, len, "-");
        return buf;
    }
    return cbx_duration_human((to - from) * CBX_NS_PER_MS, buf, (unsigned)len);
}

int cli_cmd_runs(cli_ctx *ctx, int argc, char **argv)
{
    flow_cfg c = {0};
    cbx_journal *j = NULL;
    json_t *rows = NULL;
    int rc = parse(ctx, "runs", runs_opts, runs_help, NULL, argc, argv, &c);
    if (rc)
        goto out;
    if (c.file) {
        cli_err("runs: unexpected argument '%s' (to see one run: cbx show RUN_ID)", c.file);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if ((rc = open_journal("runs", &j)))
        goto out;
    cbx_err err;
    cbx_err_clear(&err);
    c.runs.limit = (uint32_t)(c.limit_given ? c.limit : c.json ? 100 : 20);
    int r = cbx_flow_runs_query(j, &c.runs, &rows, &err);
    if (r < 0) {
        cli_err("runs: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        rc = CLI_EXIT_INTERNAL;
        goto out;
    }
    if (c.json) {
        rc = cli_print_json(stdout, rows) ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
        goto out;
    }
    if (!json_array_size(rows)) {
        printf(c.runs.status || c.runs.flow || c.runs.since_ms ? "no flow runs match\n"
                                                               : "no flow runs in the journal\n");
        goto out;
    }
    static const char *const heads[] = {"STARTED", "RUN", "FLOW", "STATUS", "DURATION", "ERROR"};
    cli_table *t = cli_table_new(6, heads);
    if (!t) {
        rc = CLI_EXIT_INTERNAL;
        goto out;
    }
    cli_table_align_right(t, 4);
    size_t tail = cli_id_tail_len(rows, "run_id", 6), i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        char when[32], dur[32];
        cli_table_row(t);
        cli_table_cell(t, cli_format_time(int_of(row, "started_ms"), when, sizeof when), CLI_DIM);
        cli_table_cell(t, cli_id_tail(str_of(row, "run_id"), tail), NULL);
        cli_table_cell(t, str_of(row, "flow"), NULL);
        const char *st = str_of(row, "status");
        cli_table_cell(t, st, cli_status_color(st));
        cli_table_cell(t, span(int_of(row, "started_ms"), int_of(row, "ended_ms"), dur, sizeof dur),
                       NULL);
        cli_table_cell(t, str_of(row, "error"), NULL);
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
out:
    json_decref(rows);
    cbx_journal_close(j);
    cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}

/* Steps by start time (those never started last), then name. */
typedef struct step_ref {
    const char *name;
    const json_t *v;
} step_ref;

static int cmp_steps(const void *a, const void *b)
{
    const step_ref *x = a, *y = b;
    uint64_t sx = int_of(x->v, "started_ms"), sy = int_of(y->v, "started_ms");
    if (sx != sy)
        return !sx ? 1 : !sy ? -1 : sx < sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void print_json_field(const char *label, const json_t *v)
{
    if (!v || json_is_null(v))
        return;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%-9s %s\n", label, s ? s : "");
    free(s);
}

int cli_cmd_show(cli_ctx *ctx, int argc, char **argv)
{
    flow_cfg c = {0};
    cbx_journal *j = NULL;
    json_t *row = NULL, *run = NULL;
    step_ref *refs = NULL;
    int rc = parse(ctx, "show", show_opts, show_help, NULL, argc, argv, &c);
    if (rc)
        goto out;
    if (!c.file) {
        cli_err("show: expected a RUN_ID (see 'cbx runs')");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if ((rc = open_journal("show", &j)))
        goto out;
    cbx_err err;
    cbx_err_clear(&err);
    int r = resolve_run(j, c.file, &row, &err);
    if (r == -ENOENT) {
        cli_err("show: no flow run '%s' in the journal (see 'cbx runs')", c.file);
        rc = CLI_EXIT_FAILED;
        goto out;
    }
    if (r == -EEXIST) {
        cli_err("show: '%s' matches more than one run; give more of the id", c.file);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (r == 0)
        r = cbx_flow_run_show(j, str_of(row, "run_id"), &run, &err);
    if (r < 0) {
        cli_err("show: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        rc = CLI_EXIT_INTERNAL;
        goto out;
    }
    if (c.json) {
        rc = cli_print_json(stdout, run) ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
        goto out;
    }
    char when[32], dur[32];
    const char *st = str_of(run, "status");
    printf("run       %s\n", str_of(run, "run_id"));
    printf("flow      %s", str_of(run, "flow"));
    printf(str_of(run, "file")[0] ? " (%s)\n" : "%s\n", str_of(run, "file"));
    printf("status    ");
    cli_paint(stdout, cli_status_color(st), st);
    printf("\n");
    printf("started   %s\n", cli_format_time(int_of(run, "started_ms"), when, sizeof when));
    printf("duration  %s\n",
           span(int_of(run, "started_ms"), int_of(run, "ended_ms"), dur, sizeof dur));
    if (str_of(run, "error")[0])
        printf("error     %s\n", str_of(run, "error"));
    print_json_field("inputs", json_object_get(run, "inputs"));
    const json_t *outputs = json_object_get(run, "outputs");
    if (outputs && !json_is_null(outputs)) {
        printf("outputs   ");
        cli_print_json(stdout, outputs);
    }
    const json_t *steps = json_object_get(run, "steps");
    size_t n = json_object_size(steps);
    if (n) {
        refs = calloc(n, sizeof *refs);
        if (!refs) {
            rc = CLI_EXIT_INTERNAL;
            goto out;
        }
        size_t k = 0;
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)steps, key, v)
        {
            refs[k++] = (step_ref){key, v};
        }
        qsort(refs, n, sizeof *refs, cmp_steps);
        printf("\n");
        static const char *const heads[] = {"STEP", "STATUS", "ATTEMPTS", "DURATION", "ERROR"};
        cli_table *t = cli_table_new(5, heads);
        if (t) {
            cli_table_align_right(t, 2);
            cli_table_align_right(t, 3);
            for (size_t i = 0; i < n; i++) {
                const json_t *s = refs[i].v;
                const char *ss = str_of(s, "status");
                cli_table_row(t);
                cli_table_cell(t, refs[i].name, NULL);
                cli_table_cell(t, ss, cli_status_color(ss));
                cli_table_cellf(t, NULL, "%llu", (unsigned long long)int_of(s, "attempts"));
                cli_table_cell(
                    t, span(int_of(s, "started_ms"), int_of(s, "ended_ms"), dur, sizeof dur), NULL);
                cli_table_cell(t, str_of(s, "error"), NULL);
            }
            cli_table_print(t, stdout);
            cli_table_free(t);
        }
    }
    fflush(stdout);
out:
    free(refs);
    json_decref(row);
    json_decref(run);
    cbx_journal_close(j);
    cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}

/* ---- cbx graph ------------------------------------------------------------------------------- */

int cli_cmd_graph(cli_ctx *ctx, int argc, char **argv)
{
    flow_cfg c = {0};
    cbx_flow *f = NULL;
    int rc = parse(ctx, "graph", graph_opts, graph_help, NULL, argc, argv, &c);
    if (rc || (rc = need_file(&c)) || (rc = load_flow("graph", c.file, NULL, 0, &f)))
        goto out;
    char *text = cbx_flow_graph(f, c.format ? c.format : "mermaid");
    if (!text) {
        cli_err("graph: out of memory");
        rc = CLI_EXIT_INTERNAL;
        goto out;
    }
    size_t len = strlen(text);
    if (cli_write_all(STDOUT_FILENO, text, len) < 0 ||
        (len && text[len - 1] != '\n' && cli_write_all(STDOUT_FILENO, "\n", 1) < 0))
        rc = CLI_EXIT_INTERNAL;
    free(text);
out:
    cbx_flow_free(f);
    cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}
