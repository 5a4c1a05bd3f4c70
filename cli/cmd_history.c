/* cbx history [show ID | clear] and cbx stats: queries over the journal. */
#include "args.h"
#include "cli.h"
#include "output.h"

#include "cbx/journal.h"
#include "cbx/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char history_help[] =
    "Usage: cbx history [--executor X] [--status S] [--breaker B] [--run ID] [--step S]\n"
    "                   [--tag T] [--since DUR] [--limit N] [--json]\n"
    "       cbx history show ID [--json]\n"
    "       cbx history clear [--executor X] [--before DUR] --yes\n"
    "\n"
    "Past executions from the journal, newest first: when, id, executor, status, attempts,\n"
    "duration and error. 'show' gives one execution with its parameters (secrets redacted),\n"
    "outputs and every attempt; ID may be a unique prefix or suffix of a recent execution's id.\n"
    "'clear' deletes executions (all of them, or those selected) and their attempts.\n"
    "\n"
    "Options:\n"
    "  --executor X     only this executor type\n"
    "  --status S       only this status: success, failed, timeout, cancelled, rejected;\n"
    "                   or, while they last, pending, running, retrying; or abandoned (its\n"
    "                   process died before it ended)\n"
    "  --breaker B      only executions guarded by the named breaker B\n"
    "  --run ID         only the executions of this flow run (its id, or the tail\n"
    "                   'cbx runs' shows)\n"
    "  --step S         only the executions of flow steps named S (a.b inside composites)\n"
    "  --tag T          only executions tagged T (a flow step's: flow:RUN_ID/STEP)\n"
    "  --since DUR      only executions submitted within DUR before now (10m, 2h)\n"
    "  --limit N        at most N executions; default 20 (--json: 100)\n"
    "  --before DUR     clear: only executions submitted more than DUR ago\n"
    "  --yes            clear: really delete\n"
    "  --json           JSON instead of a table\n"
    "  --state-dir DIR  the journal's directory (CBX_STATE_DIR)\n"
    "  -h, --help       this help\n"
    "\n"
    "Examples:\n"
    "  cbx history\n"
    "  cbx history --executor http --status failed --since 1h\n"
    "  cbx history show 3f2a9c\n"
    "  cbx history clear --before 30d --yes\n"
    "\n";

static const char stats_help[] =
    "Usage: cbx stats [--by executor|breaker|step|flow|tag|model] [--executor X] [--run ID]\n"
    "                 [--step S] [--tag T] [--since DUR] [--json]\n"
    "\n"
    "Statistics over the journal: executions, successes, failures, timeouts, cancelled,\n"
    "rejected, success rate, latency mean/p50/p95/p99 and mean attempts - overall, or one row\n"
    "per executor type, named breaker, flow step, flow, tag or model - and, where model calls\n"
    "(llm, agent) are among them, their prompt and completion tokens and cost.\n"
    "\n"
    "Options:\n"
    "  --by KEY         executor, breaker, step (a flow step's name), flow (the flow's name),\n"
    "                   tag or model (the model an llm or agent call used): one row per value\n"
    "                   (step, flow, tag and model count only the executions that have one)\n"
    "  --executor X     only this executor type\n"
    "  --breaker B      only executions guarded by the named breaker B\n"
    "  --run ID         only the executions of this flow run\n"
    "  --step S         only the executions of flow steps named S\n"
    "  --tag T          only executions tagged T\n"
    "  --since DUR      only executions submitted within DUR before now\n"
    "  --json           JSON instead of a table\n"
    "  --state-dir DIR  the journal's directory (CBX_STATE_DIR)\n"
    "  -h, --help       this help\n"
    "\n"
    "Examples:\n"
    "  cbx stats\n"
    "  cbx stats --by executor --since 1h\n"
    "  cbx stats --by breaker --json\n"
    "  cbx stats --by step --since 1d\n"
    "  cbx stats --by model --since 7d      # tokens and cost per model\n"
    "\n";

enum {
    OPT_EXECUTOR = CLI_OPT_OWN,
    OPT_STATUS,
    OPT_BREAKER,
    OPT_SINCE,
    OPT_LIMIT,
    OPT_BEFORE,
    OPT_YES,
    OPT_BY,
    OPT_RUN,
    OPT_STEP,
    OPT_TAG,
};

static const cli_opt history_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"executor", 0, 1, OPT_EXECUTOR},
    {"status", 0, 1, OPT_STATUS},
    {"breaker", 0, 1, OPT_BREAKER},
    {"since", 0, 1, OPT_SINCE},
    {"run", 0, 1, OPT_RUN},
    {"step", 0, 1, OPT_STEP},
    {"tag", 0, 1, OPT_TAG},
    {"limit", 0, 1, OPT_LIMIT},
    {"before", 0, 1, OPT_BEFORE},
    {"yes", 'y', 0, OPT_YES},
    {0},
};

static const cli_opt stats_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"by", 0, 1, OPT_BY},
    {"executor", 0, 1, OPT_EXECUTOR},
    {"breaker", 0, 1, OPT_BREAKER},
    {"since", 0, 1, OPT_SINCE},
    {"run", 0, 1, OPT_RUN},
    {"step", 0, 1, OPT_STEP},
    {"tag", 0, 1, OPT_TAG},
    {0},
};

typedef struct query {
    cbx_history_filter f;
    int json, yes, limit_given;
    const char *by;
    const char *action; /* NULL, "show", "clear" */
    const char *id;
    int have_before, have_since;
    char run_full[64]; /* --run given as the tail or head of an id: the whole id */
} query;

/* Queries open the journal read-only, so that a journal the user may read but not write can be
 * queried; clear writes. */
static int open_journal(cbx_journal **j, int read_only)
{
    return cli_journal_open(NULL, read_only, j);
}

static int journal_error(const char *what, int rc, const cbx_err *err)
{
    cli_err("%s: %s", what, err->msg[0] ? err->msg : cbx_strerror(rc));
    return CLI_EXIT_INTERNAL;
}

/* Options of history and stats; positional words go to q->action / q->id. */
static int parse(cli_ctx *ctx, const char *cmd, const cli_opt *table, const char *help, int argc,
                 char **argv, query *q)
{
    cli_args a;
    cli_args_init(&a, cmd, argc, argv, table);
    int id;
    const char *val;
    uint64_t u;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(help, stdout);
            fputs(cli_exit_codes_help, stdout);
            return -1;
        case CLI_OPT_STATE_DIR:
        case CLI_OPT_NO_JOURNAL:
        case CLI_OPT_UTC:
        case CLI_OPT_JSON:
            if (cli_common_option(ctx, id, val, &q->json))
                return CLI_EXIT_USAGE;
            break;
        case OPT_EXECUTOR:
            q->f.executor = val;
            break;
        case OPT_STATUS: {
            cbx_status st;
            /* abandoned: not a status of an execution, but of a row whose process died */
            if (strcmp(val, "abandoned") != 0 && cbx_status_parse(val, &st) < 0) {
                static const char *const names[] = {"pending",   "running", "retrying",  "success",
                                                    "failed",    "timeout", "cancelled", "rejected",
                                                    "abandoned", NULL};
                cli_parse_choice("--status", val, names);
                return CLI_EXIT_USAGE;
            }
            q->f.status = val;
            break;
        }
        case OPT_BREAKER:
            q->f.breaker = val;
            break;
        case OPT_RUN:
            q->f.run_id = val;
            break;
        case OPT_STEP:
            q->f.step = val;
            break;
        case OPT_TAG:
            q->f.tag = val;
            break;
        case OPT_SINCE:
            if (cli_parse_duration("--since", val, &u))
                return CLI_EXIT_USAGE;
            q->f.since_ms = cli_now_ms() - u / 1000000u;
            q->have_since = 1;
            break;
        case OPT_BEFORE:
            if (cli_parse_duration("--before", val, &u))
                return CLI_EXIT_USAGE;
            q->f.until_ms = cli_now_ms() - u / 1000000u;
            q->have_before = 1;
            break;
        case OPT_LIMIT:
            if (cli_parse_uint("--limit", val, 1, 1000000, &u))
                return CLI_EXIT_USAGE;
            q->f.limit = (uint32_t)u;
            q->limit_given = 1;
            break;
        case OPT_YES:
            q->yes = 1;
            break;
        case OPT_BY: {
            static const char *const keys[] = {"executor", "breaker", "step", "flow",
                                               "tag",      "model",   NULL};
            if (cli_parse_choice("--by", val, keys))
                return CLI_EXIT_USAGE;
            q->by = val;
            break;
        }
        case CLI_ARGS_POSITIONAL:
            if (table == history_opts && !q->action &&
                (strcmp(val, "show") == 0 || strcmp(val, "clear") == 0)) {
                q->action = val;
            } else if (q->action && strcmp(q->action, "show") == 0 && !q->id) {
                q->id = val;
            } else if (table == history_opts && !q->action) {
                static const char *const actions[] = {"show", "clear"};
                const char *best = cli_suggest(val, actions, 2);
                cli_err("history: unknown action '%s'%s%s%s", val,
                        best ? " (did you mean '" : " (expected show or clear)", best ? best : "",
                        best ? "'?)" : "");
                return CLI_EXIT_USAGE;
            } else {
                cli_err("%s: unexpected argument '%s'", cmd, val);
                return CLI_EXIT_USAGE;
            }
            break;
        default:
            break;
        }
    }
    if (a.dashdash && a.rest < argc) {
        cli_err("%s: unexpected argument '%s'", cmd, argv[a.rest]);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* ---- history --------------------------------------------------------------------------------- */

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int print_row(const json_t *row, void *ud)
{
    return cli_json_list_add(ud, row) == 0 ? 0 : -EIO;
}

/* The table's rows as they come: each row's cells in one block (when, id whole, executor,
 * status, attempts, duration, error, each NUL-terminated) and its status's colour; the ids are
 * cut to their telling tail once all are known. A long listing so holds its text, not its rows
 * as JSON objects (100,000 rows: 227 MB that way). */
typedef struct table_rows {
    struct {
        char *cells;
        const char *color;
    } * v;
    size_t n, cap;
} table_rows;

#define HISTORY_COLS 7

static int collect_row(const json_t *r, void *ud)
{
    table_rows *t = ud;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        void *v = realloc(t->v, cap * sizeof *t->v);
        if (!v)
            return -ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    char when[32], dur[32], status[96], attempts[24];
    const char *st = str_of(r, "status");
    snprintf(status, sizeof status,
             json_is_true(json_object_get(r, "fallback_used")) ? "%s (fallback)" : "%s", st);
    snprintf(attempts, sizeof attempts, "%lld",
             (long long)json_integer_value(json_object_get(r, "attempts")));
    const char *cell[HISTORY_COLS] = {
        cli_format_time((uint64_t)json_integer_value(json_object_get(r, "submitted_ms")), when,
                        sizeof when),
        str_of(r, "id"),
        str_of(r, "executor"),
        status,
        attempts,
        cli_format_ms(json_object_get(r, "duration_ms"), dur, sizeof dur),
        str_of(r, "error")};
    size_t len = 0;
    for (int i = 0; i < HISTORY_COLS; i++)
        len += strlen(cell[i]) + 1;
    char *block = malloc(len), *p = block;
    if (!block)
        return -ENOMEM;
    for (int i = 0; i < HISTORY_COLS; i++) {
        size_t k = strlen(cell[i]) + 1;
        memcpy(p, cell[i], k);
        p += k;
    }
    t->v[t->n].cells = block;
    t->v[t->n++].color = cli_status_color(st);
    return 0;
}

static void table_rows_free(table_rows *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].cells);
    free(t->v);
}

static int history_table(const table_rows *rows)
{
    static const char *const heads[] = {"WHEN",     "ID",       "EXECUTOR", "STATUS",
                                        "ATTEMPTS", "DURATION", "ERROR"};
    cli_table *t = cli_table_new(HISTORY_COLS, heads);
    const char **ids = rows->n ? malloc(rows->n * sizeof *ids) : NULL;
    if (!t || (rows->n && !ids)) {
        cli_table_free(t);
        free(ids);
        return -ENOMEM;
    }
    for (size_t i = 0; i < rows->n; i++)
        ids[i] = rows->v[i].cells + strlen(rows->v[i].cells) + 1; /* the second cell */
    size_t tail = cli_id_tail_len_of(ids, rows->n, 6);
    cli_table_align_right(t, 4);
    cli_table_align_right(t, 5);
    for (size_t i = 0; i < rows->n; i++) {
        const char *c = rows->v[i].cells;
        cli_table_row(t);
        for (int col = 0; col < HISTORY_COLS; col++, c += strlen(c) + 1)
            cli_table_cell(t, col == 1 ? cli_id_tail(c, tail) : c,
                           col == 0   ? CLI_DIM
                           : col == 3 ? rows->v[i].color
                                      : NULL);
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
    free(ids);
    return 0;
}

typedef struct id_match {
    const char *id;
    char *out;
    size_t len;
    int found;
} id_match;

static int match_id(const json_t *r, void *ud)
{
    id_match *m = ud;
    const char *rid = str_of(r, "id");
    if (cli_id_abbreviates(rid, m->id)) {
        if (m->found++)
            return 1; /* a second one: ambiguous, no need to look further */
        snprintf(m->out, m->len, "%s", rid);
    }
    return 0;
}

/* An id, or a unique prefix or suffix of one among the newest executions. Ids are time-ordered
 * (UUID v7): executions started in the same millisecond share a prefix, while the last digits are
 * random, so a short suffix is the handy form. */
static int resolve_id(cbx_journal *j, const char *id, char *out, size_t len)
{
    json_t *row = NULL;
    if (cbx_journal_get(j, id, &row, NULL) == 0) {
        json_decref(row);
        snprintf(out, len, "%s", id);
        return 0;
    }
    /* a prefix or a suffix: brief rows, one at a time, until a second match */
    id_match m = {.id = id, .out = out, .len = len};
    cbx_history_filter f = {.limit = 100000, .brief = 1};
    int r = cbx_journal_history_each(j, &f, match_id, &m, NULL);
    if (r < 0)
        return -ENOENT;
    return m.found == 1 ? 0 : m.found ? -EEXIST : -ENOENT;
}

static int history_show(cbx_journal *j, const query *q)
{
    if (!q->id) {
        cli_err("history show: expected an execution ID (see 'cbx history')");
        return CLI_EXIT_USAGE;
    }
    char id[64];
    int r = resolve_id(j, q->id, id, sizeof id);
    if (r == -EEXIST) {
        cli_err("history show: '%s' matches more than one execution; give more of the id", q->id);
        return CLI_EXIT_USAGE;
    }
    if (r < 0) {
        cli_err("history show: no execution '%s' in the journal", q->id);
        return CLI_EXIT_FAILED;
    }
    json_t *row = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    r = cbx_journal_get(j, id, &row, &err);
    if (r < 0)
        return journal_error("history show", r, &err);
    if (q->json) {
        int rc = cli_print_json(stdout, row);
        json_decref(row);
        return rc ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
    }
    char when[32], dur[32];
    const char *status = str_of(row, "status");
    printf("id        %s\n", str_of(row, "id"));
    printf("executor  %s\n", str_of(row, "executor"));
    printf("status    ");
    cli_paint(stdout, cli_status_color(status), status);
    printf("%s\n",
           json_is_true(json_object_get(row, "fallback_used")) ? " (fallback answered)" : "");
    if (json_integer_value(json_object_get(row, "rc")))
        printf("rc        %s\n", cbx_err_name((int)json_integer_value(json_object_get(row, "rc"))));
    printf("submitted %s\n",
           cli_format_time((uint64_t)json_integer_value(json_object_get(row, "submitted_ms")), when,
                           sizeof when));
    printf("duration  %s\n", cli_format_ms(json_object_get(row, "duration_ms"), dur, sizeof dur));
    if (str_of(row, "breaker")[0])
        printf("breaker   %s\n", str_of(row, "breaker"));
    if (str_of(row, "policy")[0])
        printf("policy    %s\n", str_of(row, "policy"));
    if (str_of(row, "tag")[0])
        printf("tag       %s\n", str_of(row, "tag"));
    if (str_of(row, "error")[0])
        printf("error     %s\n", str_of(row, "error"));
    const json_t *params = json_object_get(row, "params");
    if (params && !json_is_null(params)) {
        char *s = json_dumps(params, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("params    %s\n", s ? s : "");
        free(s);
    }
    const json_t *outputs = json_object_get(row, "outputs");
    if (outputs && !json_is_null(outputs)) {
        printf("outputs   ");
        cli_print_json(stdout, outputs);
    }
    const json_t *atts = json_object_get(row, "attempts");
    if (json_array_size(atts)) {
        printf("\n");
        static const char *const heads[] = {"ATTEMPT",  "STARTED", "OUTCOME",
                                            "DURATION", "BREAKER", "ERROR"};
        cli_table *t = cli_table_new(6, heads);
        if (t) {
            cli_table_align_right(t, 0);
            cli_table_align_right(t, 3);
            size_t i;
            json_t *a;
            json_array_foreach(atts, i, a)
            {
                cli_table_row(t);
                cli_table_cellf(t, NULL, "%lld",
                                (long long)json_integer_value(json_object_get(a, "number")));
                cli_table_cell(
                    t,
                    cli_format_time((uint64_t)json_integer_value(json_object_get(a, "started_ms")),
                                    when, sizeof when),
                    CLI_DIM);
                const char *oc = str_of(a, "outcome");
                cli_table_cell(t, oc, cli_status_color(oc));
                cli_table_cell(t, cli_format_ms(json_object_get(a, "duration_ms"), dur, sizeof dur),
                               NULL);
                cli_table_cell(
                    t, str_of(a, "breaker_decision")[0] ? str_of(a, "breaker_decision") : "-",
                    NULL);
                cli_table_cell(t, str_of(a, "error"), NULL);
            }
            cli_table_print(t, stdout);
            cli_table_free(t);
        }
    }
    fflush(stdout);
    json_decref(row);
    return CLI_EXIT_OK;
}

/* --run takes what `cbx runs` shows (the id's distinguishing tail) as well as the whole id. */
static int resolve_run(cbx_journal *j, query *q, const char *cmd)
{
    if (!q->f.run_id)
        return 0;
    json_t *row = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int r = flow_resolve_run(j, q->f.run_id, &row, &err);
    if (r == -ENOENT) {
        cli_err("%s: no flow run matches '%s' (see 'cbx runs')", cmd, q->f.run_id);
        return CLI_EXIT_FAILED;
    }
    if (r == -EEXIST) {
        cli_err("%s: '%s' matches more than one flow run; give more of its id", cmd, q->f.run_id);
        return CLI_EXIT_USAGE;
    }
    if (r < 0)
        return journal_error(cmd, r, &err);
    snprintf(q->run_full, sizeof q->run_full, "%s",
             json_string_value(json_object_get(row, "run_id")));
    json_decref(row);
    q->f.run_id = q->run_full;
    return 0;
}

static int history_clear(cbx_journal *j, const query *q)
{
    if (q->f.status || q->f.breaker || q->f.run_id || q->f.step || q->f.tag || q->have_since ||
        q->limit_given) {
        cli_err("history clear: takes only --executor and --before");
        return CLI_EXIT_USAGE;
    }
    if (!q->yes) {
        cli_err("history clear: this deletes %s; add --yes to do it",
                q->f.executor || q->have_before ? "the selected executions" : "the whole history");
        return CLI_EXIT_USAGE;
    }
    cbx_history_filter f = {.executor = q->f.executor, .until_ms = q->f.until_ms};
    uint64_t deleted = 0;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_journal_clear(j, q->f.executor || q->have_before ? &f : NULL, &deleted, &err);
    if (r < 0)
        return journal_error("history clear", r, &err);
    /* the whole history is gone: so is the note of what was missing from it */
    if (!q->f.executor && !q->have_before && cbx_journal_losses_reset(j, &err) < 0)
        return journal_error("history clear", err.code, &err);
    if (q->json) {
        json_t *o = json_pack("{s:I}", "deleted", (json_int_t)deleted);
        cli_print_json(stdout, o);
        json_decref(o);
    } else {
        printf("deleted %llu execution%s\n", (unsigned long long)deleted, deleted == 1 ? "" : "s");
    }
    return CLI_EXIT_OK;
}

int cli_cmd_history(cli_ctx *ctx, int argc, char **argv)
{
    query q = {0};
    int rc = parse(ctx, "history", history_opts, history_help, argc, argv, &q);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (q.yes && (!q.action || strcmp(q.action, "clear") != 0)) {
        cli_err("history: --yes goes with 'history clear'");
        return CLI_EXIT_USAGE;
    }
    if (q.have_before && (!q.action || strcmp(q.action, "clear") != 0)) {
        cli_err("history: --before goes with 'history clear' (to list, use --since)");
        return CLI_EXIT_USAGE;
    }
    cbx_journal *j = NULL;
    rc = open_journal(&j, !q.action || strcmp(q.action, "clear") != 0);
    if (rc)
        return rc;
    if (!q.action || strcmp(q.action, "clear") != 0)
        cli_journal_note_losses("history", j);
    if (!q.action && (rc = resolve_run(j, &q, "history")) != 0) {
        cbx_journal_close(j);
        return rc;
    }
    if (q.action && strcmp(q.action, "show") == 0) {
        rc = history_show(j, &q);
    } else if (q.action) {
        rc = history_clear(j, &q);
    } else {
        if (!q.limit_given)
            q.f.limit = q.json ? 100 : 20;
        table_rows table = {0};
        cbx_err err;
        cbx_err_clear(&err);
        int r;
        if (q.json) { /* printed as they come: a long listing is never held whole */
            cli_json_list l;
            cli_json_list_begin(&l, stdout);
            r = cbx_journal_history_each(j, &q.f, print_row, &l, &err);
            if (cli_json_list_end(&l) != 0 && r == 0)
                r = -EIO;
        } else { /* the table needs neither the parameters nor the outputs */
            q.f.brief = 1;
            r = cbx_journal_history_each(j, &q.f, collect_row, &table, &err);
            if (r == -ENOMEM)
                snprintf(err.msg, sizeof err.msg, "out of memory");
        }
        if (r == -EIO) {
            rc = CLI_EXIT_INTERNAL;
        } else if (r < 0) {
            rc = journal_error("history", r, &err);
        } else if (q.json) {
            rc = CLI_EXIT_OK;
        } else if (!table.n) {
            printf("no executions in the journal%s\n", q.f.executor || q.f.status || q.f.breaker ||
                                                               q.f.run_id || q.f.step || q.f.tag ||
                                                               q.have_since
                                                           ? " match"
                                                           : "");
        } else if (history_table(&table) != 0) {
            cli_err("history: out of memory");
            rc = CLI_EXIT_INTERNAL;
        }
        table_rows_free(&table);
    }
    cbx_journal_close(j);
    return rc;
}

/* ---- stats ----------------------------------------------------------------------------------- */

static void stats_row(cli_table *t, const char *name, const json_t *o, int llm)
{
    char a[32];
    cli_table_row(t);
    cli_table_cell(t, name, CLI_BOLD);
    static const char *const counts[] = {"executions", "successes", "failures", "timeouts",
                                         "ooms",       "cancelled", "rejected"};
    for (size_t i = 0; i < 7; i++)
        cli_table_cellf(t, NULL, "%lld",
                        (long long)json_integer_value(json_object_get(o, counts[i])));
    const json_t *rate = json_object_get(o, "success_rate");
    if (json_is_number(rate)) {
        double r = json_number_value(rate);
        cli_table_cellf(t,
                        r >= 0.99  ? CLI_GREEN
                        : r >= 0.9 ? CLI_YELLOW
                                   : CLI_RED,
                        "%.1f%%", r * 100);
    } else {
        cli_table_cell(t, "-", NULL);
    }
    static const char *const lat[] = {"mean_ms", "p50_ms", "p95_ms", "p99_ms"};
    for (size_t i = 0; i < 4; i++)
        cli_table_cell(t, cli_format_ms(json_object_get(o, lat[i]), a, sizeof a), NULL);
    const json_t *ma = json_object_get(o, "mean_attempts");
    if (json_is_number(ma))
        cli_table_cellf(t, NULL, "%.2f", json_number_value(ma));
    else
        cli_table_cell(t, "-", NULL);
    if (!llm)
        return;
    if (json_object_get(o, "prompt_tokens")) {
        cli_table_cellf(t, NULL, "%lld/%lld",
                        (long long)json_integer_value(json_object_get(o, "prompt_tokens")),
                        (long long)json_integer_value(json_object_get(o, "completion_tokens")));
        cli_table_cellf(t, NULL, "%.4f", json_number_value(json_object_get(o, "cost")));
    } else {
        cli_table_cell(t, "-", NULL);
        cli_table_cell(t, "-", NULL);
    }
}

/* 1 when a row of out (one row, or an object of rows) counts model calls. */
static int has_llm(const json_t *out, int grouped)
{
    if (!grouped)
        return json_object_get(out, "prompt_tokens") != NULL;
    const char *k;
    json_t *o;
    json_object_foreach((json_t *)out, k, o) if (json_object_get(o, "prompt_tokens")) return 1;
    return 0;
}

int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv)
{
    query q = {0};
    int rc = parse(ctx, "stats", stats_opts, stats_help, argc, argv, &q);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    cbx_journal *j = NULL;
    rc = open_journal(&j, 1);
    if (rc)
        return rc;
    cli_journal_note_losses("stats", j);
    if ((rc = resolve_run(j, &q, "stats")) != 0) {
        cbx_journal_close(j);
        return rc;
    }
    json_t *out = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_journal_stats(j, &q.f, q.by, &out, &err);
    if (r < 0) {
        rc = journal_error("stats", r, &err);
    } else if (q.json) {
        rc = cli_print_json(stdout, out) ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
    } else {
        int llm = has_llm(out, q.by != NULL);
        size_t ncols = llm ? 16 : 14;
        static const char *const heads[] = {
            "NAME",    "EXECS", "OK",  "FAILED", "TIMEOUT", "OOM",      "CANCELLED",     "REJECTED",
            "SUCCESS", "MEAN",  "P50", "P95",    "P99",     "ATTEMPTS", "TOKENS IN/OUT", "COST"};
        cli_table *t = cli_table_new(ncols, heads);
        if (t) {
            for (size_t c = 1; c < ncols; c++)
                cli_table_align_right(t, c);
            if (q.by) {
                const char *k;
                json_t *o;
                json_object_foreach(out, k, o)
                {
                    stats_row(t, k[0] ? k : q.by[0] == 'b' ? "(no breaker)" : "(none)", o, llm);
                }
            } else {
                stats_row(t, "all", out, llm);
            }
            cli_table_print(t, stdout);
            cli_table_free(t);
        }
        rc = CLI_EXIT_OK;
    }
    json_decref(out);
    cbx_journal_close(j);
    return rc;
}
