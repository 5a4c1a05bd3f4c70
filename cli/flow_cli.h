/* What the flow subcommands (validate, run, runs, show, graph) share: their options, parsed in
 * one place into a flow_cfg, and the helpers more than one of them uses. */
#ifndef CBX_CLI_FLOW_CLI_H
#define CBX_CLI_FLOW_CLI_H

#include "args.h"
#include "cli.h"

#include "cbx/flow.h"
#include "cbx/journal.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

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
    OPT_RECORD,
    OPT_REPLAY,
};

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

void flow_cfg_free(flow_cfg *c);

/* Parse a subcommand's options. Returns 0, -1 after --help, or an exit code. */
int flow_parse(cli_ctx *ctx, const char *cmd, const cli_opt *table, const char *help,
               const char *exit_help, int argc, char **argv, flow_cfg *c);

/* Load and check FILE. Returns 0 and *out, or an exit code after the problems were printed
 * (on stderr, or as JSON on stdout when json). */
int flow_load_file(const char *cmd, const char *file, const cbx_registry *reg, int json,
                   cbx_flow **out);

/* What a run shows as its outputs: the flow's, or for a flow that declares none, {step:
 * outputs} of the steps that succeeded. New reference. */
json_t *flow_shown_outputs(const cbx_flow_result *r, int declared);

/* 0 when the positional FILE was given, else an exit code after a message. */
int flow_need_file(const flow_cfg *c);

/* One problem with an input, as a message ("input 'n': expected integer, got string "x""). */
void flow_input_problem(char *buf, size_t len, const cbx_err *e, const json_t *given, int hint);

/* With the retention of the environment (cli_journal_opts); read-only for runs and show. */
int flow_open_journal(const char *cmd, cbx_journal **j);

/* flow_resolve_run: in cli.h (history and stats take run ids too). */

void flow_noop_close(uv_handle_t *h);

/* A journal row's string ("" when absent) and positive integer (else 0). */
const char *flow_str_of(const json_t *o, const char *key);
uint64_t flow_int_of(const json_t *o, const char *key);

/* "1.2s" between two wall-clock ms, or "-" when it has not ended. */
const char *flow_span(uint64_t from, uint64_t to, char *buf, size_t len);

/* cbx run FILE --batch DATA (flow_batch.c): the flow once per line of DATA on c->parallel worker
 * threads, base the inputs from the command line. Returns the exit code. */
int flow_run_batch(flow_cfg *c, cli_ctx *ctx, cbx_registry *reg, cbx_flow *f, json_t *base);

#endif
