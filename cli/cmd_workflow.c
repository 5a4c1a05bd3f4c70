/* cbx workflow: run, validate, start, signal, resume, show, list and graph Petri-net workflows
 * (docs/workflows.md). */
#include "args.h"
#include "cli.h"
#include "nats_opts.h"
#include "output.h"
#include "signals.h"
#include "workflow_kv.h"

#include "cbx/dist.h"
#include "cbx/journal.h"
#include "cbx/runtime.h"
#include "cbx/workflow.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* Exit codes of the run faces (besides 2, 70, 74 and 130 as everywhere). */
enum { WF_EXIT_DONE = 0, WF_EXIT_STUCK = 1, WF_EXIT_WAITING = 3 };

static const char workflow_help[] =
    "Usage: cbx workflow run FILE --token JSON [--token JSON ...] [options]\n"
    "       cbx workflow validate FILE\n"
    "       cbx workflow start FILE --token JSON [--token JSON ...]\n"
    "       cbx workflow signal RUN TOKEN NAME [-d JSON]\n"
    "       cbx workflow resume RUN\n"
    "       cbx workflow show RUN [--id TOKEN]\n"
    "       cbx workflow list [--limit N]\n"
    "       cbx workflow graph FILE|RUN [--format mermaid|dot]\n"
    "\n"
    "Workflows are Petri nets: tokens carrying JSON data move between places through\n"
    "transitions guarded by validations and Lua rules, whose actions run executors under\n"
    "their policies. Every firing, rule evaluation, action and signal is journaled; a run\n"
    "killed at any point resumes with 'cbx workflow resume RUN' without running a journaled\n"
    "action again. See docs/workflows.md.\n"
    "\n"
    "  run       start a run with the given tokens and run it until it rests: every token\n"
    "            final, waiting for a signal, or stuck (pending after: timers are waited\n"
    "            for unless --no-wait); tokens move live on a terminal\n"
    "  validate  every problem of the file at once, as file:line:col, and the structure\n"
    "            (unreachable places, dead transitions, places with no way out, reachable\n"
    "            stuck markings with a firing sequence; guards ignored)\n"
    "  start     journal a new run with its tokens and print its id; nothing fires until\n"
    "            'resume'\n"
    "  signal    send signal NAME (with -d data) to a token of a run, then run it on\n"
    "  resume    rebuild a run from the journal and run it until it rests\n"
    "  show      a run's tokens, each with its timeline and every rule's verdict\n"
    "  list      the runs in the journal, newest first\n"
    "  graph     the net as Mermaid or DOT; for a run, with its marking and firing counts\n"
    "\n"
    "Options:\n"
    "  --token JSON     a token's data (an object); repeat for more tokens\n"
    "  --at PLACE       where the --token tokens start (default: the first start place)\n"
    "  --run-id ID      the new run's id (default: a UUIDv7)\n"
    "  -d, --data JSON  the signal's data, merged into the token's when it fires\n"
    "  --no-wait        do not wait for after: timers; such tokens count as waiting\n"
    "  --max-firings N  per-token cap on firings (default: the file's, else 1000)\n"
    "  --max-markings N markings the structure check explores (default 10000)\n"
    "  --format F       graph: mermaid (default) or dot\n"
    "  --lua FILE       load an executor type written in Lua (repeatable)\n"
    "  --id TOKEN       show: only that token\n"
    "  --limit N        list: at most N runs (default 50)\n"
    "  -q, --quiet      no live view\n"
    "  --json           machine-readable output\n"
    "  -h, --help       this help\n"
    "\n"

    "Exit codes of run, signal and resume: 0 every token is in a final place; 3 waiting\n"
    "(a token waits for a signal or a timer); 1 stuck or failed (a token can go nowhere\n"
    "outside a final place, or passed the firing cap); 2 bad usage or a bad file; 74 a\n"
    "journal write failed; 76 another process is running that run; 130 interrupted.\n"
    "\n"
    "With CBX_EVENTS=nats (the server of $NATS_URL) or a nats:// URL, run, start, resume and\n"
    "signal publish each token's events on cbx.events.workflow.<name> (docs/distributed.md).\n"
    "\n"
    "Examples:\n"
    "  cbx workflow validate examples/workflows/order_fulfilment.yaml\n"
    "  cbx workflow run examples/workflows/data_review.yaml --token '{\"input_file\": "
    "\"d.json\"}'\n"
    "  cbx workflow signal 0190f3... t1 approve -d '{\"approved_by\": \"ann\"}'\n"
    "  cbx workflow graph RUN --format dot | dot -Tsvg >net.svg\n"
    "  cbx workflow start order.yaml --token '{}' --nats nats://10.0.0.5:4222 --workflow-id o1\n"
    "  cbx workflow resume o1 --nats nats://10.0.0.5:4222   # on as many hosts as you like\n"
    "\n";

/* Printed after workflow_help (one literal would be too long for C99). */
static const char workflow_kv_help[] =
    "The workflow's marking in the cluster (NATS JetStream key-value bucket CBX_WORKFLOWS),\n"
    "its tokens moved by any number of processes on any host (docs/distributed.md):\n"
    "  --nats URL         the server(s) (default $NATS_URL, else nats://127.0.0.1:4222)\n"
    "  --workflow-id ID   run, start: the new workflow's id (1 to 39 letters, digits, - _);\n"
    "                     resume ID, signal ID TOKEN NAME and show ID take it as an argument;\n"
    "                     list --nats URL lists the bucket's workflows\n"
    "  --lease DURATION   how long a claim on tokens whose action runs lasts unrenewed\n"
    "                     (default 30s; renewed every third of it)\n"
    "  --owner NAME       who claims tokens (default host:pid)\n"
    "  --max-moves N      stop after moving tokens N times (the others go on)\n"
    "  and the --nats-* connection flags of cbx worker\n"
    "\n";

enum {
    OPT_TOKEN = CLI_OPT_OWN,
    OPT_AT,
    OPT_RUN_ID,
    OPT_DATA,
    OPT_NO_WAIT,
    OPT_MAX_FIRINGS,
    OPT_MAX_MARKINGS,
    OPT_FORMAT,
    OPT_LIMIT,
    OPT_QUIET,
    OPT_TOKEN_ID,
    OPT_LUA,
    OPT_NATS,
    OPT_WORKFLOW_ID,
    OPT_LEASE,
    OPT_MAX_MOVES,
    OPT_OWNER,
};

static const cli_opt workflow_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"token", 0, 1, OPT_TOKEN},
    {"at", 0, 1, OPT_AT},
    {"run-id", 0, 1, OPT_RUN_ID},
    {"data", 'd', 1, OPT_DATA},
    {"no-wait", 0, 0, OPT_NO_WAIT},
    {"max-firings", 0, 1, OPT_MAX_FIRINGS},
    {"max-markings", 0, 1, OPT_MAX_MARKINGS},
    {"format", 0, 1, OPT_FORMAT},
    {"limit", 0, 1, OPT_LIMIT},
    {"quiet", 'q', 0, OPT_QUIET},
    {"id", 0, 1, OPT_TOKEN_ID},
    {"lua", 0, 1, OPT_LUA},
    {"nats", 0, 1, OPT_NATS},
    {"workflow-id", 0, 1, OPT_WORKFLOW_ID},
    {"lease", 0, 1, OPT_LEASE},
    {"max-moves", 0, 1, OPT_MAX_MOVES},
    {"owner", 0, 1, OPT_OWNER},
    CLI_OPTS_NATS,
    {0},
};

typedef struct wf_cfg {
    const char *sub;
    const char *pos[4];
    size_t npos;
    const char *tokens[1024];
    size_t ntokens;
    const char *at, *run_id, *data, *format, *token_id;
    int no_wait, quiet, json;
    uint64_t max_firings, max_markings, limit;
    cli_types_src src;
    cli_wf_kv kv; /* --nats: the marking in the cluster (workflow_kv.c) */
} wf_cfg;

/* ---- the live view --------------------------------------------------------------------- */

typedef struct view {
    int tty, quiet;
    const cbx_workflow *w;
    cbx_workflow_events *events; /* CBX_EVENTS: published on NATS, else NULL */
    uint64_t fired, blocked, added;
    int drawn;
} view;

static void view_line(view *v)
{
    if (!v->tty || v->quiet)
        return;
    fprintf(stderr,
            "\r\033[K%s: %" PRIu64 " token%s, %" PRIu64 " firing%s, %" PRIu64 " blocked attempt%s",
            cbx_workflow_name(v->w), v->added, v->added == 1 ? "" : "s", v->fired,
            v->fired == 1 ? "" : "s", v->blocked, v->blocked == 1 ? "" : "s");
    fflush(stderr);
    v->drawn = 1;
}

static void on_event(const cbx_workflow_event *ev, void *ud)
{
    view *v = ud;
    cbx_workflow_events_emit(ev, v->events);
    switch (ev->kind) {
    case CBX_WORKFLOW_TOKEN_ADDED:
        v->added++;
        break;
    case CBX_WORKFLOW_FIRED:
        v->fired++;
        break;
    case CBX_WORKFLOW_BLOCKED:
        v->blocked++;
        break;
    default:
        break;
    }
    if (v->quiet || ev->replayed || !v->tty)
        return;
    const char *what = NULL;
    char line[1200];
    switch (ev->kind) {
    case CBX_WORKFLOW_FIRED:
        snprintf(line, sizeof line, "%-10s %s -> %s", ev->token, ev->transition, ev->place);
        what = CLI_GREEN;
        break;
    case CBX_WORKFLOW_BLOCKED:
        snprintf(line, sizeof line, "%-10s %s", ev->token, ev->detail);
        what = CLI_YELLOW;
        break;
    case CBX_WORKFLOW_SIGNALLED:
        snprintf(line, sizeof line, "%-10s signal %s", ev->token, ev->transition);
        what = CLI_CYAN;
        break;
    case CBX_WORKFLOW_TOKEN_FAILED:
        snprintf(line, sizeof line, "%-10s failed: %s", ev->token, ev->detail);
        what = CLI_RED;
        break;
    default:
        break;
    }
    if (what) {
        fprintf(stderr, "\r\033[K");
        cli_paint(stderr, what, line);
        fputc('\n', stderr);
    }
    view_line(v);
}

/* ---- options --------------------------------------------------------------------------- */

static int parse(cli_ctx *ctx, int argc, char **argv, wf_cfg *c)
{
    cli_args a;
    cli_args_init(&a, "workflow", argc, argv, workflow_opts);
    const char *val;
    int id;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(workflow_help, stdout);
            fputs(workflow_kv_help, stdout);
            return -1;
        case CLI_ARGS_POSITIONAL:
            if (!c->sub)
                c->sub = val;
            else if (c->npos < 4)
                c->pos[c->npos++] = val;
            else {
                cli_err("workflow %s: unexpected argument '%s'", c->sub, val);
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_TOKEN:
            if (c->ntokens == sizeof c->tokens / sizeof c->tokens[0]) {
                cli_err("workflow: --token: at most 1024 tokens on the command line");
                return CLI_EXIT_USAGE;
            }
            c->tokens[c->ntokens++] = val;
            break;
        case OPT_AT:
            c->at = val;
            break;
        case OPT_RUN_ID:
            c->run_id = val;
            break;
        case OPT_DATA:
            c->data = val;
            break;
        case OPT_NO_WAIT:
            c->no_wait = 1;
            break;
        case OPT_QUIET:
            c->quiet = 1;
            break;
        case OPT_FORMAT:
            c->format = val;
            break;
        case OPT_TOKEN_ID:
            c->token_id = val;
            break;
        case OPT_LUA:
            if (c->src.n_lua_files == sizeof c->src.lua_files / sizeof c->src.lua_files[0]) {
                cli_err("workflow: --lua: at most 64 files");
                return CLI_EXIT_USAGE;
            }
            c->src.lua_files[c->src.n_lua_files++] = val;
            break;
        case OPT_MAX_FIRINGS:
            if (cli_parse_uint("--max-firings", val, 1, UINT32_MAX, &c->max_firings) < 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_NATS:
            c->kv.url = val;
            break;
        case OPT_WORKFLOW_ID:
            c->kv.id = val;
            break;
        case OPT_OWNER:
            c->kv.owner = val;
            break;
        case OPT_LEASE:
            if (cli_parse_duration("--lease", val, &c->kv.lease_ns))
                return CLI_EXIT_USAGE;
            if (c->kv.lease_ns < 3000000ull) {
                cli_err("--lease: at least 3ms (the claim is renewed every third of it)");
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_MAX_MOVES:
            if (cli_parse_uint("--max-moves", val, 1, UINT64_MAX, &c->kv.max_moves) < 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_MAX_MARKINGS:
            if (cli_parse_uint("--max-markings", val, 1, 100000000, &c->max_markings) < 0)
                return CLI_EXIT_USAGE;
            break;
        case OPT_LIMIT:
            if (cli_parse_uint("--limit", val, 1, 100000, &c->limit) < 0)
                return CLI_EXIT_USAGE;
            break;
        default:
            if (!cli_nats_option(id, val) && cli_common_option(ctx, id, val, &c->json) != 0)
                return CLI_EXIT_USAGE;
            break;
        }
    }
    if (!c->sub) {
        fputs(workflow_help, stderr);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static int need(const wf_cfg *c, size_t n, const char *what)
{
    if (c->npos >= n)
        return 0;
    cli_err("workflow %s: missing %s (see cbx workflow --help)", c->sub, what);
    return CLI_EXIT_USAGE;
}

/* ---- loading ---------------------------------------------------------------------------- */

static void print_problems(const cbx_diag *d, int json)
{
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < d->n; i++) {
            const cbx_err *e = &d->items[i];
            json_array_append_new(arr, json_pack("{s:s, s:i, s:i, s:s, s:s}", "file", e->where,
                                                 "line", e->line, "col", e->col, "message", e->msg,
                                                 "kind", e->code ? "problem" : "note"));
        }
        cli_print_json(stdout, arr);
        json_decref(arr);
        return;
    }
    char buf[1024];
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "%s\n", cbx_err_format(&d->items[i], buf, sizeof buf));
}

static int load(const char *cmd, const char *file, const cbx_registry *reg, int json,
                cbx_workflow **out)
{
    cbx_diag d = {0};
    int r = cbx_workflow_load(out, file, reg, &d);
    if (r) {
        print_problems(&d, json);
        if (!json)
            cli_err("%s: %s: %zu problem%s", cmd, file, d.n, d.n == 1 ? "" : "s");
        cbx_diag_clear(&d);
        return r == -ENOMEM ? CLI_EXIT_INTERNAL : CLI_EXIT_USAGE;
    }
    cbx_diag_clear(&d);
    return 0;
}

static int cmd_validate(wf_cfg *c, cbx_registry *reg)
{
    int rc = need(c, 1, "FILE");
    if (rc)
        return rc;
    cbx_diag d = {0};
    int r = cbx_workflow_validate(c->pos[0], reg, c->max_markings, &d);
    size_t problems = 0;
    for (size_t i = 0; i < d.n; i++)
        problems += d.items[i].code != 0;
    print_problems(&d, c->json);
    if (!c->json && problems)
        cli_err("workflow validate: %s: %zu problem%s", c->pos[0], problems,
                problems == 1 ? "" : "s");
    else if (!c->json)
        fprintf(stderr, "%s: ok\n", c->pos[0]);
    cbx_diag_clear(&d);
    if (r == -ENOMEM)
        return CLI_EXIT_INTERNAL;
    return problems || r ? CLI_EXIT_USAGE : CLI_EXIT_OK;
}

/* ---- running ---------------------------------------------------------------------------- */

typedef struct session {
    uv_loop_t loop;
    cbx_runtime *rt;
    cbx_journal *j;
    cbx_registry *reg;
    struct cbx_breaker_store *store; /* CBX_BREAKER_STORE's, or NULL: the runtime's own */
    view v;
    uv_signal_t sigint, sigterm;
    cbx_workflow_run *run;
} session;

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    session *s = h->data;
    /* what was journaled stays; the run goes on with 'resume' (actions in flight then run
     * again unless their result was journaled) */
    if (s->j)
        cbx_journal_flush(s->j, NULL);
    if (s->v.drawn)
        fputc('\n', stderr);
    if (s->run && s->j)
        cli_err("workflow: interrupted; resume with: cbx workflow resume %s",
                cbx_workflow_run_id(s->run));
    else
        cli_err("workflow: interrupted");
    _exit(CLI_EXIT_CANCELLED);
}

static void noop_close(uv_handle_t *h)
{
    (void)h;
}

static int session_open(session *s, cli_ctx *ctx, const char *cmd, cbx_registry *reg)
{
    memset(s, 0, sizeof *s);
    s->reg = reg;
    s->v.tty = isatty(STDERR_FILENO);
    if (!ctx->no_journal) {
        int rc = cli_journal_open(cmd, 0, &s->j);
        if (rc)
            return rc;
    }
    int rc = cli_breaker_store_chosen(cmd, &s->store);
    if (rc)
        return rc; /* session_close frees what is open */
    if (uv_loop_init(&s->loop) < 0) {
        cli_err("%s: cannot make the event loop", cmd);
        return CLI_EXIT_INTERNAL;
    }
    cbx_runtime_opts ro = {
        .loop = &s->loop, .registry = reg, .journal = s->j, .breakers = s->store};
    cbx_err err;
    cbx_err_clear(&err);
    if (cbx_runtime_new(&s->rt, &ro, &err) < 0) {
        cli_err("%s: cannot make the runtime: %s", cmd, err.msg);
        return CLI_EXIT_INTERNAL;
    }
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_unref((uv_handle_t *)&s->sigint);
    uv_unref((uv_handle_t *)&s->sigterm);
    cli_signals_guard();
    return 0;
}

static int session_close(session *s, const char *cmd, int code)
{
    cbx_workflow_run_free(s->run);
    s->run = NULL;
    cbx_workflow_events_free(s->v.events);
    s->v.events = NULL;
    if (s->rt) {
        uv_signal_stop(&s->sigint);
        uv_signal_stop(&s->sigterm);
        uv_close((uv_handle_t *)&s->sigint, noop_close);
        uv_close((uv_handle_t *)&s->sigterm, noop_close);
        cbx_runtime_free(s->rt);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
    }
    cbx_breaker_store_free(s->store);
    if (s->j) {
        if (cli_journal_finish(cmd, s->j) && code == CLI_EXIT_OK)
            code = CLI_EXIT_JOURNAL;
        cbx_journal_close(s->j);
    }
    return code;
}

static int exit_of(int state)
{
    switch (state) {
    case CBX_WORKFLOW_DONE:
        return WF_EXIT_DONE;
    case CBX_WORKFLOW_WAITING:
        return WF_EXIT_WAITING;
    default: /* CBX_WORKFLOW_STUCK, and anything not at rest */
        return WF_EXIT_STUCK;
    }
}

/* Run to rest, then the summary: the tokens not final, and the exit code. */
static int run_and_report(session *s, wf_cfg *c, const char *cmd)
{
    int st = cbx_workflow_run_until_rest(s->run, !c->no_wait);
    if (s->v.drawn) {
        view_line(&s->v);
        fputc('\n', stderr);
    }
    if (st < 0) {
        cli_err("%s: %s", cmd, cbx_strerror(st));
        return CLI_EXIT_INTERNAL;
    }
    json_t *snap = cbx_workflow_run_snapshot(s->run);
    cbx_workflow_events_rest(s->v.events, snap);
    if (c->json) {
        cli_print_json(stdout, snap);
    } else {
        printf("run %s: %s\n", cbx_workflow_run_id(s->run), cbx_workflow_state_name(st));
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(snap, "tokens"), i, t)
        {
            const char *ts = json_string_value(json_object_get(t, "state"));
            if (strcmp(ts, "gone") == 0)
                continue;
            const char *why = json_string_value(json_object_get(t, "explanation"));
            const char *wait = json_string_value(json_object_get(t, "waiting_for"));
            printf("  %-12s %-14s %-8s", json_string_value(json_object_get(t, "id")),
                   json_string_value(json_object_get(t, "place")), ts);
            if (strcmp(ts, "waiting") == 0 && wait)
                printf(" waits for %s", wait);
            else if (why && strcmp(ts, "final") != 0)
                printf(" %s", why);
            printf("\n");
        }
    }
    const char *jerr = json_string_value(json_object_get(snap, "journal_error"));
    json_decref(snap);
    if (jerr) {
        cli_err("%s: journal: %s", cmd, jerr);
        return CLI_EXIT_JOURNAL;
    }
    if (st == CBX_WORKFLOW_WAITING && s->j && !c->json)
        fprintf(stderr,
                "waiting: signal with 'cbx workflow signal %s TOKEN NAME', then it goes "
                "on; or 'cbx workflow resume %s' once timers are due\n",
                cbx_workflow_run_id(s->run), cbx_workflow_run_id(s->run));
    return exit_of(st);
}

static int add_tokens(session *s, wf_cfg *c, const char *cmd)
{
    for (size_t i = 0; i < c->ntokens; i++) {
        char flag[32];
        snprintf(flag, sizeof flag, "--token %zu", i + 1);
        json_t *d = NULL;
        if (cli_parse_object(cmd, flag, c->tokens[i], &d) < 0)
            return CLI_EXIT_USAGE;
        cbx_err e;
        cbx_err_clear(&e);
        int r = cbx_workflow_add_token(s->run, c->at, d, NULL, NULL, 0, &e);
        json_decref(d);
        if (r) {
            cli_err("%s: --token %zu: %s", cmd, i + 1, e.msg);
            return r == CBX_EJOURNAL ? CLI_EXIT_JOURNAL : CLI_EXIT_USAGE;
        }
    }
    return 0;
}

static int cmd_run(wf_cfg *c, cli_ctx *ctx, cbx_registry *reg, int start_only)
{
    const char *cmd = start_only ? "workflow start" : "workflow run";
    int rc = need(c, 1, "FILE");
    cbx_workflow *w = NULL;
    if (rc || (rc = load(cmd, c->pos[0], reg, c->json, &w)))
        return rc;
    if (!c->ntokens && start_only) {
        cli_err("%s: give the tokens with --token JSON", cmd);
        cbx_workflow_free(w);
        return CLI_EXIT_USAGE;
    }
    if (start_only && ctx->no_journal) {
        cli_err("%s: a started run lives in the journal: --no-journal makes no sense here", cmd);
        cbx_workflow_free(w);
        return CLI_EXIT_USAGE;
    }
    session s;
    if ((rc = session_open(&s, ctx, cmd, reg))) {
        session_close(&s, cmd, rc);
        cbx_workflow_free(w);
        return rc;
    }
    s.v.w = w;
    s.v.quiet = c->quiet;
    if ((rc = cli_workflow_events_open(cmd, cbx_workflow_name(w), &s.v.events))) {
        session_close(&s, cmd, rc);
        cbx_workflow_free(w);
        return rc;
    }
    cbx_workflow_run_opts o = {.run_id = c->run_id,
                               .max_firings = (uint32_t)c->max_firings,
                               .on_event = on_event,
                               .ud = &s.v};
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx_workflow_start(&s.run, s.rt, w, &o, &e) != 0) {
        cli_err("%s: %s", cmd, e.msg);
        rc = CLI_EXIT_INTERNAL;
    } else if (!(rc = add_tokens(&s, c, cmd))) {
        if (start_only) {
            printf("%s\n", cbx_workflow_run_id(s.run));
        } else {
            rc = run_and_report(&s, c, cmd);
        }
    }
    rc = session_close(&s, cmd, rc);
    cbx_workflow_free(w);
    return rc;
}

static int cmd_resume(wf_cfg *c, cli_ctx *ctx, cbx_registry *reg, int signal)
{
    const char *cmd = signal ? "workflow signal" : "workflow resume";
    int rc = need(c, signal ? 3 : 1, signal ? "RUN TOKEN NAME" : "RUN");
    if (rc)
        return rc;
    if (ctx->no_journal) {
        cli_err("%s: a run is read from the journal: --no-journal makes no sense here", cmd);
        return CLI_EXIT_USAGE;
    }
    json_t *data = NULL;
    if (signal && c->data && cli_parse_object(cmd, "--data", c->data, &data) < 0)
        return CLI_EXIT_USAGE;
    session s;
    if ((rc = session_open(&s, ctx, cmd, reg))) {
        json_decref(data);
        return session_close(&s, cmd, rc);
    }
    s.v.quiet = c->quiet;
    cbx_workflow_run_opts o = {
        .max_firings = (uint32_t)c->max_firings, .on_event = on_event, .ud = &s.v};
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_workflow_resume(&s.run, s.rt, c->pos[0], reg, &o, &e);
    if (r) {
        cli_err("%s: %s", cmd, e.msg[0] ? e.msg : cbx_strerror(r));
        rc = r == -ENOENT ? CLI_EXIT_FAILED : r == -EBUSY ? CLI_EXIT_REFUSED : CLI_EXIT_USAGE;
    } else {
        s.v.w = cbx_workflow_run_net(s.run);
        if ((rc = cli_workflow_events_open(cmd, cbx_workflow_name(s.v.w), &s.v.events)))
            ;
        else if (signal && (r = cbx_workflow_signal(s.run, c->pos[1], c->pos[2], data, &e)) != 0) {
            cli_err("%s: %s", cmd, e.msg);
            rc = r == CBX_EJOURNAL ? CLI_EXIT_JOURNAL : CLI_EXIT_USAGE;
        } else {
            rc = run_and_report(&s, c, cmd);
        }
    }
    json_decref(data);
    return session_close(&s, cmd, rc);
}

/* ---- reading the journal ------------------------------------------------------------------- */

static void print_time(uint64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char b[32];
    localtime_r(&t, &tm);
    strftime(b, sizeof b, "%H:%M:%S", &tm);
    printf("%s.%03u", b, (unsigned)(ms % 1000));
}

static int cmd_show(wf_cfg *c)
{
    int rc = need(c, 1, "RUN");
    cbx_journal *j = NULL;
    if (rc || (rc = cli_journal_open("workflow show", 1, &j)))
        return rc;
    json_t *snap = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_workflow_run_show(j, c->pos[0], NULL, &snap, &e);
    cbx_journal_close(j);
    if (r) {
        cli_err("workflow show: %s", e.msg[0] ? e.msg : cbx_strerror(r));
        return r == -ENOENT ? CLI_EXIT_FAILED : CLI_EXIT_INTERNAL;
    }
    if (c->json) {
        json_object_del(snap, "source");
        cli_print_json(stdout, snap);
        json_decref(snap);
        return 0;
    }
    printf("run %s  workflow %s  %s\n", json_string_value(json_object_get(snap, "run_id")),
           json_string_value(json_object_get(snap, "workflow")),
           json_string_value(json_object_get(snap, "file")));
    size_t i, k;
    json_t *t, *h;
    int shown = 0;
    json_array_foreach(json_object_get(snap, "tokens"), i, t)
    {
        const char *id = json_string_value(json_object_get(t, "id"));
        if (c->token_id && strcmp(c->token_id, id) != 0)
            continue;
        shown++;
        printf("\ntoken %s  in %s  (", id, json_string_value(json_object_get(t, "place")));
        const char *ts = json_string_value(json_object_get(t, "state"));
        cli_paint(stdout, cli_status_color(strcmp(ts, "final") == 0 ? "success" : ts), ts);
        printf(", %" JSON_INTEGER_FORMAT " firing%s)\n",
               json_integer_value(json_object_get(t, "firings")),
               json_integer_value(json_object_get(t, "firings")) == 1 ? "" : "s");
        json_array_foreach(json_object_get(t, "history"), k, h)
        {
            printf("  ");
            print_time((uint64_t)json_integer_value(json_object_get(h, "ms")));
            printf("  %s\n", json_string_value(json_object_get(h, "text")));
        }
        const char *wait = json_string_value(json_object_get(t, "waiting_for"));
        if (wait && strcmp(ts, "final") != 0)
            printf("  waits for %s\n", wait);
        char *d = json_dumps(json_object_get(t, "data"),
                             JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(12));
        printf("  data %s\n", d ? d : "{}");
        free(d);
    }
    json_decref(snap);
    if (c->token_id && !shown) {
        cli_err("workflow show: no token '%s' in that run", c->token_id);
        return CLI_EXIT_FAILED;
    }
    return 0;
}

static int cmd_list(wf_cfg *c)
{
    cbx_journal *j = NULL;
    int rc = cli_journal_open("workflow list", 1, &j);
    if (rc)
        return rc;
    json_t *rows = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_workflow_runs_list(j, (uint32_t)c->limit, &rows, &e);
    cbx_journal_close(j);
    if (r) {
        cli_err("workflow list: %s", e.msg);
        return CLI_EXIT_INTERNAL;
    }
    if (c->json) {
        cli_print_json(stdout, rows);
    } else {
        static const char *const heads[] = {"RUN", "WORKFLOW", "STATE", "STARTED", "FILE"};
        cli_table *tb = cli_table_new(5, heads);
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            cli_table_row(tb);
            cli_table_cell(tb, json_string_value(json_object_get(row, "run_id")), NULL);
            cli_table_cell(tb, json_string_value(json_object_get(row, "workflow")), NULL);
            const char *st = json_string_value(json_object_get(row, "state"));
            cli_table_cell(tb, st, cli_status_color(strcmp(st, "done") == 0 ? "success" : st));
            time_t t = (time_t)(json_integer_value(json_object_get(row, "started_ms")) / 1000);
            struct tm tm;
            char b[32];
            localtime_r(&t, &tm);
            strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", &tm);
            cli_table_cell(tb, b, NULL);
            cli_table_cell(tb, json_string_value(json_object_get(row, "file")), NULL);
        }
        cli_table_print(tb, stdout);
        cli_table_free(tb);
    }
    size_t n = json_array_size(rows);
    json_decref(rows);
    return n ? 0 : CLI_EXIT_FAILED;
}

static int cmd_graph(wf_cfg *c, cbx_registry *reg)
{
    int rc = need(c, 1, "FILE or RUN");
    if (rc)
        return rc;
    const char *fmt = c->format ? c->format : "mermaid";
    if (strcmp(fmt, "mermaid") != 0 && strcmp(fmt, "dot") != 0) {
        cli_err("workflow graph: --format: expected mermaid or dot, got '%s'", fmt);
        return CLI_EXIT_USAGE;
    }
    cbx_workflow *w = NULL;
    json_t *snap = NULL;
    struct stat sb;
    if (stat(c->pos[0], &sb) == 0) {
        if ((rc = load("workflow graph", c->pos[0], reg, 0, &w)))
            return rc;
    } else {
        cbx_journal *j = NULL;
        if ((rc = cli_journal_open("workflow graph", 1, &j)))
            return rc;
        cbx_err e;
        cbx_err_clear(&e);
        int r = cbx_workflow_run_show(j, c->pos[0], NULL, &snap, &e);
        cbx_journal_close(j);
        if (r) {
            cli_err("workflow graph: '%s' is neither a file nor a run: %s", c->pos[0], e.msg);
            return CLI_EXIT_USAGE;
        }
        const char *src = json_string_value(json_object_get(snap, "source"));
        cbx_diag d = {0};
        r = cbx_workflow_load_string(&w, src, strlen(src),
                                     json_string_value(json_object_get(snap, "file")), NULL, &d);
        cbx_diag_clear(&d);
        if (r) {
            json_decref(snap);
            cli_err("workflow graph: the run's workflow no longer loads");
            return CLI_EXIT_INTERNAL;
        }
    }
    char *text = cbx_workflow_graph(w, snap, fmt);
    if (text)
        fputs(text, stdout);
    free(text);
    json_decref(snap);
    cbx_workflow_free(w);
    return text ? 0 : CLI_EXIT_INTERNAL;
}

int cli_cmd_workflow(cli_ctx *ctx, int argc, char **argv)
{
    wf_cfg c;
    memset(&c, 0, sizeof c);
    int rc = parse(ctx, argc, argv, &c);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    cbx_registry *reg = NULL;
    int needs_types = strcmp(c.sub, "list") != 0;
    if (needs_types) {
        if ((rc = cli_registry_open(&c.src, &reg)))
            return rc;
    }
    if (c.kv.url || c.kv.id) {
        c.kv.sub = c.sub;
        c.kv.pos = c.pos;
        c.kv.npos = c.npos;
        c.kv.tokens = c.tokens;
        c.kv.ntokens = c.ntokens;
        c.kv.at = c.at;
        c.kv.data = c.data;
        c.kv.json = c.json;
        c.kv.quiet = c.quiet;
        c.kv.no_wait = c.no_wait;
        c.kv.max_firings = (uint32_t)c.max_firings;
        rc = cli_workflow_kv(ctx, reg, &c.kv);
    } else if (strcmp(c.sub, "run") == 0)
        rc = cmd_run(&c, ctx, reg, 0);
    else if (strcmp(c.sub, "start") == 0)
        rc = cmd_run(&c, ctx, reg, 1);
    else if (strcmp(c.sub, "validate") == 0)
        rc = cmd_validate(&c, reg);
    else if (strcmp(c.sub, "resume") == 0)
        rc = cmd_resume(&c, ctx, reg, 0);
    else if (strcmp(c.sub, "signal") == 0)
        rc = cmd_resume(&c, ctx, reg, 1);
    else if (strcmp(c.sub, "show") == 0)
        rc = cmd_show(&c);
    else if (strcmp(c.sub, "list") == 0)
        rc = cmd_list(&c);
    else if (strcmp(c.sub, "graph") == 0)
        rc = cmd_graph(&c, reg);
    else {
        static const char *const subs[] = {"run",    "validate", "start", "signal",
                                           "resume", "show",     "list",  "graph"};
        const char *best = cli_suggest(c.sub, subs, 8);
        cli_err("workflow: unknown subcommand '%s'%s%s%s", c.sub, best ? "; did you mean '" : "",
                best ? best : "", best ? "'?" : "");
        rc = CLI_EXIT_USAGE;
    }
    cbx_registry_free(reg);
    return rc;
}
