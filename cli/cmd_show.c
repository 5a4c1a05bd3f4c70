/* cbx show: one flow run from the journal, with its steps. */
#include "flow_cli.h"
#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char show_help[] =
    "Usage: cbx show RUN_ID [--json] [--trace FILE]\n"
    "\n"
    "One flow run from the journal: its flow and file, status, inputs, outputs, error, and each\n"
    "step that ran (status, attempts, duration, error). RUN_ID may be a unique prefix or\n"
    "suffix of a run id.\n"
    "\n"
    "Options:\n"
    "  --json           JSON instead of text: the run with its inputs, outputs and steps\n"
    "  --trace FILE     also write the run as Chrome trace-event JSON (open it in Perfetto or\n"
    "                   chrome://tracing): one bar per step, steps that overlapped on lanes of\n"
    "                   their own; - for stdout\n"
    "  --state-dir DIR  the journal's directory (CBX_STATE_DIR)\n"
    "  -h, --help       this help\n"
    "\n"
    "Examples:\n"
    "  cbx show 0193a1b2\n"
    "  cbx show 0193a1b2 --json | jq .steps.fetch\n"
    "  cbx show 0193a1b2 --trace run.json\n"
    "\n";

static const cli_opt show_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"trace", 0, 1, OPT_OUTPUT},
    {0},
};

/* Steps by start time (those never started last), then name. */
typedef struct step_ref {
    const char *name;
    const json_t *v;
} step_ref;

static int cmp_steps(const void *a, const void *b)
{
    const step_ref *x = a, *y = b;
    uint64_t sx = flow_int_of(x->v, "started_ms"), sy = flow_int_of(y->v, "started_ms");
    if (sx != sy)
        return !sx ? 1 : !sy ? -1 : sx < sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The run as Chrome trace-event JSON: a bar for the run on lane 0, one per step that started,
 * on the lowest lane free at its start (steps that overlapped are on lanes of their own), times
 * in microseconds from the run's start. */
static json_t *trace_of(const json_t *run, step_ref *refs, size_t n)
{
    uint64_t t0 = flow_int_of(run, "started_ms"), end = flow_int_of(run, "ended_ms");
    for (size_t i = 0; i < n; i++)
        if (flow_int_of(refs[i].v, "ended_ms") > end)
            end = flow_int_of(refs[i].v, "ended_ms");
    json_t *ev = json_array();
    json_array_append_new(ev, json_pack("{s:s, s:s, s:i, s:{s:s}}", "name", "process_name", "ph",
                                        "M", "pid", 1, "args", "name", flow_str_of(run, "flow")));
    json_array_append_new(
        ev, json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:{s:s, s:s, s:s}}", "name",
                      flow_str_of(run, "flow"), "cat", "run", "ph", "X", "ts", (json_int_t)0, "dur",
                      (json_int_t)((end > t0 ? end - t0 : 0) * 1000), "pid", 1, "tid", 0, "args",
                      "run_id", flow_str_of(run, "run_id"), "status", flow_str_of(run, "status"),
                      "error", flow_str_of(run, "error")));
    uint64_t *lane_end = calloc(n + 1, sizeof *lane_end);
    size_t lanes = 0;
    for (size_t i = 0; lane_end && i < n; i++) { /* refs are sorted by start */
        const json_t *s = refs[i].v;
        uint64_t a = flow_int_of(s, "started_ms"), b = flow_int_of(s, "ended_ms");
        if (!a)
            continue;
        if (b < a)
            b = end > a ? end : a; /* never ended: to the run's end */
        size_t k = 0;
        while (k < lanes && lane_end[k] > a)
            k++;
        if (k == lanes)
            lanes++;
        lane_end[k] = b;
        json_array_append_new(
            ev,
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:I, s:{s:s, s:I, s:s}}", "name",
                      refs[i].name, "cat", "step", "ph", "X", "ts", (json_int_t)((a - t0) * 1000),
                      "dur", (json_int_t)((b - a) * 1000), "pid", 1, "tid", (json_int_t)(k + 1),
                      "args", "status", flow_str_of(s, "status"), "attempts",
                      (json_int_t)flow_int_of(s, "attempts"), "error", flow_str_of(s, "error")));
    }
    for (size_t k = 0; k <= lanes; k++) {
        char name[32];
        snprintf(name, sizeof name, k ? "lane %zu" : "run", k);
        json_array_append_new(ev, json_pack("{s:s, s:s, s:i, s:I, s:{s:s}}", "name", "thread_name",
                                            "ph", "M", "pid", 1, "tid", (json_int_t)k, "args",
                                            "name", name));
    }
    free(lane_end);
    return json_pack("{s:o, s:s}", "traceEvents", ev, "displayTimeUnit", "ms");
}

static int write_trace(const char *path, const json_t *run, step_ref *refs, size_t n)
{
    json_t *trace = trace_of(run, refs, n);
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f || !trace) {
        cli_err("show: --trace %s: %s", path, trace ? strerror(errno) : "out of memory");
        json_decref(trace);
        return CLI_EXIT_FAILED;
    }
    int bad = json_dumpf(trace, f, JSON_COMPACT) < 0 || fputc('\n', f) == EOF;
    if (f != stdout)
        bad |= fclose(f) != 0;
    json_decref(trace);
    if (bad) {
        cli_err("show: --trace %s: cannot write: %s", path, strerror(errno));
        return CLI_EXIT_FAILED;
    }
    return 0;
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
    int rc = flow_parse(ctx, "show", show_opts, show_help, NULL, argc, argv, &c);
    if (rc)
        goto out;
    if (!c.file) {
        cli_err("show: expected a RUN_ID (see 'cbx runs')");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if ((rc = flow_open_journal("show", &j)))
        goto out;
    cbx_err err;
    cbx_err_clear(&err);
    int r = flow_resolve_run(j, c.file, &row, &err);
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
        r = cbx_flow_run_show(j, flow_str_of(row, "run_id"), &run, &err);
    if (r < 0) {
        cli_err("show: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        rc = CLI_EXIT_INTERNAL;
        goto out;
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
    }
    if (c.output && (rc = write_trace(c.output, run, refs, n)) != 0)
        goto out;
    if (c.output && strcmp(c.output, "-") == 0)
        goto out; /* the trace was the output */
    if (c.json) {
        rc = cli_print_json(stdout, run) ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
        goto out;
    }
    char when[32], dur[32];
    const char *st = flow_str_of(run, "status");
    printf("run       %s\n", flow_str_of(run, "run_id"));
    printf("flow      %s", flow_str_of(run, "flow"));
    printf(flow_str_of(run, "file")[0] ? " (%s)\n" : "%s\n", flow_str_of(run, "file"));
    printf("status    ");
    cli_paint(stdout, cli_status_color(st), st);
    printf("\n");
    printf("started   %s\n", cli_format_time(flow_int_of(run, "started_ms"), when, sizeof when));
    printf("duration  %s\n", flow_span(flow_int_of(run, "started_ms"), flow_int_of(run, "ended_ms"),
                                       dur, sizeof dur));
    if (flow_str_of(run, "error")[0])
        printf("error     %s\n", flow_str_of(run, "error"));
    print_json_field("inputs", json_object_get(run, "inputs"));
    const json_t *outputs = json_object_get(run, "outputs");
    if (outputs && !json_is_null(outputs)) {
        printf("outputs   ");
        cli_print_json(stdout, outputs);
    }
    if (n) {
        printf("\n");
        static const char *const heads[] = {"STEP", "STATUS", "ATTEMPTS", "DURATION", "ERROR"};
        cli_table *t = cli_table_new(5, heads);
        if (t) {
            cli_table_align_right(t, 2);
            cli_table_align_right(t, 3);
            for (size_t i = 0; i < n; i++) {
                const json_t *s = refs[i].v;
                const char *ss = flow_str_of(s, "status");
                cli_table_row(t);
                cli_table_cell(t, refs[i].name, NULL);
                cli_table_cell(t, ss, cli_status_color(ss));
                cli_table_cellf(t, NULL, "%llu", (unsigned long long)flow_int_of(s, "attempts"));
                cli_table_cell(t,
                               flow_span(flow_int_of(s, "started_ms"), flow_int_of(s, "ended_ms"),
                                         dur, sizeof dur),
                               NULL);
                cli_table_cell(t, flow_str_of(s, "error"), NULL);
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
    flow_cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}
