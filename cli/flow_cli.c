/* The flow subcommands' shared part: option parsing, loading a flow with its problems, the
 * journal and run ids. */
#include "flow_cli.h"
#include "flow_requires.h"
#include "output.h"

#include "cbx/units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void flow_cfg_free(flow_cfg *c)
{
    free(c->kv);
    free(c->env);
    cli_flow_requires_free();
}

/* Parse a subcommand's options. Returns 0, -1 after --help, or an exit code. */
int flow_parse(cli_ctx *ctx, const char *cmd, const cli_opt *table, const char *help,
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
        case OPT_RECORD:
        case OPT_REPLAY:
            if (cli_cassette_option(id == OPT_RECORD ? "--record" : "--replay", val,
                                    id == OPT_REPLAY))
                return CLI_EXIT_USAGE;
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
int flow_load_file(const char *cmd, const char *file, const cbx_registry *reg, int json,
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
json_t *flow_shown_outputs(const cbx_flow_result *r, int declared)
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

int flow_need_file(const flow_cfg *c)
{
    if (c->file)
        return 0;
    cli_err("%s: expected a flow FILE (see 'cbx %s --help')", c->cmd, c->cmd);
    return CLI_EXIT_USAGE;
}

/* One problem with an input, as a message ("input 'n': expected integer, got string "x""). */
void flow_input_problem(char *buf, size_t len, const cbx_err *e, const json_t *given, int hint)
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
int flow_open_journal(const char *cmd, cbx_journal **j)
{
    return cli_journal_open(cmd, strcmp(cmd, "run") != 0, j);
}

/* A run id, or a unique prefix or suffix of one (time-ordered ids share their first digits): its
 * row from the list (new reference) in *row. Returns 0, -ENOENT, -EEXIST (ambiguous) or another
 * negative code (err filled). */
typedef struct run_match {
    const char *id;
    json_t *row; /* the exact match, or the first prefix or suffix match */
    size_t found;
} run_match;

/* One run at a time (a journal may hold 100,000): an exact id ends the walk. */
static int match_run(const json_t *it, void *ud)
{
    run_match *m = ud;
    const char *rid = json_string_value(json_object_get(it, "run_id"));
    if (!rid)
        return 0;
    if (strcmp(rid, m->id) == 0) {
        json_decref(m->row);
        m->row = json_deep_copy(it);
        m->found = 1;
        return 1;
    }
    if (cli_id_abbreviates(rid, m->id) && !m->found++)
        m->row = json_deep_copy(it);
    return 0;
}

int flow_resolve_run(cbx_journal *j, const char *id, json_t **row, cbx_err *err)
{
    *row = NULL;
    run_match m = {.id = id};
    int r = cbx_flow_runs_each(j, &(cbx_flow_runs_filter){.limit = 1000000}, match_run, &m, err);
    if (r < 0) {
        json_decref(m.row);
        return r;
    }
    if (m.found != 1) {
        json_decref(m.row);
        return m.found ? -EEXIST : -ENOENT;
    }
    *row = m.row;
    return 0;
}

void flow_noop_close(uv_handle_t *h)
{
    (void)h;
}

/* ---- cbx runs and cbx show ------------------------------------------------------------------- */

const char *flow_str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

uint64_t flow_int_of(const json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* "1.2s" between two wall-clock ms, or "-" when it has not ended. */
const char *flow_span(uint64_t from, uint64_t to, char *buf, size_t len)
{
    if (!from || !to || to < from) {
        snprintf(buf, len, "-");
        return buf;
    }
    return cbx_duration_human((to - from) * CBX_NS_PER_MS, buf, (unsigned)len);
}
