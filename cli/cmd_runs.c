/* cbx runs: flow runs from the journal, newest first. */
#include "flow_cli.h"
#include "output.h"

#include <errno.h>
#include <stdio.h>

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

static int print_run(const json_t *row, void *ud)
{
    return cli_json_list_add(ud, row) == 0 ? 0 : -EIO;
}

static const cli_opt runs_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"limit", 0, 1, OPT_LIMIT},
    {"status", 0, 1, OPT_STATUS},
    {"flow", 0, 1, OPT_FLOW},
    {"since", 0, 1, OPT_SINCE},
    {0},
};

int cli_cmd_runs(cli_ctx *ctx, int argc, char **argv)
{
    flow_cfg c = {0};
    cbx_journal *j = NULL;
    json_t *rows = NULL;
    int rc = flow_parse(ctx, "runs", runs_opts, runs_help, NULL, argc, argv, &c);
    if (rc)
        goto out;
    if (c.file) {
        cli_err("runs: unexpected argument '%s' (to see one run: cbx show RUN_ID)", c.file);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if ((rc = flow_open_journal("runs", &j)))
        goto out;
    cbx_err err;
    cbx_err_clear(&err);
    c.runs.limit = (uint32_t)(c.limit_given ? c.limit : c.json ? 100 : 20);
    int r;
    cli_json_list l;
    if (c.json) { /* printed as they come: a long listing is never held whole */
        cli_json_list_begin(&l, stdout);
        r = cbx_flow_runs_each(j, &c.runs, print_run, &l, &err);
    } else {
        r = cbx_flow_runs_query(j, &c.runs, &rows, &err);
    }
    if (r < 0 && r != -EIO) {
        cli_err("runs: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        rc = CLI_EXIT_INTERNAL;
        goto out;
    }
    if (c.json) {
        rc = cli_json_list_end(&l) || r ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
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
        cli_table_cell(t, cli_format_time(flow_int_of(row, "started_ms"), when, sizeof when),
                       CLI_DIM);
        cli_table_cell(t, cli_id_tail(flow_str_of(row, "run_id"), tail), NULL);
        cli_table_cell(t, flow_str_of(row, "flow"), NULL);
        const char *st = flow_str_of(row, "status");
        cli_table_cell(t, st, cli_status_color(st));
        cli_table_cell(t,
                       flow_span(flow_int_of(row, "started_ms"), flow_int_of(row, "ended_ms"), dur,
                                 sizeof dur),
                       NULL);
        cli_table_cell(t, flow_str_of(row, "error"), NULL);
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
out:
    json_decref(rows);
    cbx_journal_close(j);
    flow_cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}
