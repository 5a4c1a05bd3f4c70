/* cbx workflow ... --nats URL: a workflow whose marking lives in the cluster (workflow_kv.h). */
#include "workflow_kv.h"
#include "args.h"
#include "output.h"

#include "cbx/breaker_store.h"
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
#include <unistd.h>
#include <uv.h>

static char interrupted_line[512];

static void on_interrupt(int sig)
{
    (void)sig;
    ssize_t n = write(STDERR_FILENO, interrupted_line, strlen(interrupted_line));
    (void)n;
    _exit(CLI_EXIT_CANCELLED);
}

static int exit_of_code(int rc)
{
    switch (rc) {
    case -ENOENT:
    case CBX_EPARSE:
    case CBX_EFAILED:
    case -EBUSY:
        return CLI_EXIT_FAILED;
    case -EINVAL:
    case -EEXIST:
    case CBX_EINVAL_CONFIG:
        return CLI_EXIT_USAGE;
    case CBX_EPLUGIN:
        return CLI_EXIT_INTERNAL;
    default:
        return rc == -ENOMEM ? CLI_EXIT_INTERNAL : CLI_EXIT_FAILED;
    }
}

static int fail(const char *cmd, int rc, const cbx_err *e)
{
    cli_err("%s: %s", cmd, e->msg[0] ? e->msg : cbx_strerror(rc));
    return exit_of_code(rc);
}

/* The --token values as [{data, place}]. */
static int tokens_of(const char *cmd, const cli_wf_kv *k, json_t **out)
{
    *out = json_array();
    for (size_t i = 0; *out && i < k->ntokens; i++) {
        char flag[32];
        snprintf(flag, sizeof flag, "--token %zu", i + 1);
        json_t *d = NULL;
        if (cli_parse_object(cmd, flag, k->tokens[i], &d) < 0) {
            json_decref(*out);
            *out = NULL;
            return CLI_EXIT_USAGE;
        }
        json_t *t = json_pack("{s:o}", "data", d);
        if (t && k->at)
            json_object_set_new(t, "place", json_string(k->at));
        json_array_append_new(*out, t);
    }
    return *out ? 0 : CLI_EXIT_INTERNAL;
}

static void on_event(const cbx_workflow_event *ev, void *ud)
{
    cbx_workflow_events_emit(ev, ud);
}

static int create(const char *cmd, const cli_wf_kv *k, cbx_registry *reg, cbx_workflow_kv_opts *o)
{
    if (!k->npos) {
        cli_err("%s: missing FILE (see cbx workflow --help)", cmd);
        return CLI_EXIT_USAGE;
    }
    if (!k->id) {
        cli_err("%s: --nats: give the workflow's id with --workflow-id ID", cmd);
        return CLI_EXIT_USAGE;
    }
    if (!cbx_workflow_kv_id_ok(k->id)) {
        cli_err("%s: --workflow-id: '%s' is not 1 to 39 letters, digits, '-' or '_'", cmd, k->id);
        return CLI_EXIT_USAGE;
    }
    cbx_workflow *w = NULL;
    cbx_diag d = {0};
    int lr = cbx_workflow_load(&w, k->pos[0], reg, &d);
    if (lr != 0) {
        cbx_err first;
        cbx_err_clear(&first);
        cbx_diag_first(&d, &first);
        if (first.line > 0)
            cli_err("%s: %s:%d:%d: %s", cmd, k->pos[0], first.line, first.col, first.msg);
        else
            cli_err("%s: %s: %s", cmd, k->pos[0], first.msg[0] ? first.msg : cbx_strerror(lr));
        cbx_diag_clear(&d);
        return CLI_EXIT_USAGE;
    }
    cbx_diag_clear(&d);
    json_t *tokens = NULL;
    cbx_workflow_events *events = NULL;
    int rc = tokens_of(cmd, k, &tokens);
    if (!rc)
        rc = cli_workflow_events_open(cmd, cbx_workflow_name(w), &events);
    if (!rc) {
        cbx_err e;
        cbx_err_clear(&e);
        cbx_workflow_kv_opts co = *o;
        co.on_event = events ? on_event : NULL;
        co.ud = events;
        int r = cbx_workflow_kv_create(&co, k->id, w, tokens, &e);
        if (r)
            rc = fail(cmd, r, &e);
    }
    cbx_workflow_events_free(events);
    json_decref(tokens);
    cbx_workflow_free(w);
    return rc;
}

static void print_rest(const char *id, const json_t *snap, int state, int json,
                       const cbx_workflow_kv_stats *st)
{
    if (json) {
        json_t *out = json_deep_copy(snap);
        json_object_set_new(out, "stats",
                            json_pack("{s:I, s:I, s:I, s:I, s:I}", "fires", (json_int_t)st->fires,
                                      "blocks", (json_int_t)st->blocks, "cas_conflicts",
                                      (json_int_t)st->cas_conflicts, "claims",
                                      (json_int_t)st->claims, "claims_lost",
                                      (json_int_t)st->claims_lost));
        cli_print_json(stdout, out);
        json_decref(out);
    } else {
        printf("workflow %s: %s\n", id, cbx_workflow_state_name((cbx_workflow_state)state));
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(snap, "tokens"), i, t)
        {
            const char *ts = json_string_value(json_object_get(t, "state"));
            const char *why = json_string_value(json_object_get(t, "explanation"));
            const char *wait = json_string_value(json_object_get(t, "waiting_for"));
            printf("  %-12s %-14s %-8s", json_string_value(json_object_get(t, "id")),
                   json_string_value(json_object_get(t, "place")), ts ? ts : "");
            if (ts && strcmp(ts, "waiting") == 0 && wait)
                printf(" waits for %s", wait);
            else if (why && ts && strcmp(ts, "final") != 0)
                printf(" %s", why);
            printf("\n");
        }
    }
    fprintf(stderr,
            "workflow %s: here %" PRIu64 " firings, %" PRIu64 " blocked attempts, %" PRIu64
            " claims (%" PRIu64 " lost), %" PRIu64 " compare-and-set conflicts decided again\n",
            id, st->fires, st->blocks, st->claims, st->claims_lost, st->cas_conflicts);
}

/* Move the tokens of k->id until the workflow rests; the exit code. */
static int move(const char *cmd, cli_ctx *ctx, cbx_registry *reg, const cli_wf_kv *k,
                const char *id, cbx_workflow_kv_opts *o)
{
    snprintf(interrupted_line, sizeof interrupted_line,
             "cbx %s: interrupted; its claims expire after the lease; go on with: cbx workflow "
             "resume %s --nats URL\n",
             cmd, id);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    cbx_journal *j = NULL;
    int rc = 0;
    if (!ctx->no_journal && (rc = cli_journal_open(cmd, 0, &j)) != 0)
        return rc;
    cbx_err e;
    cbx_err_clear(&e);
    /* with CBX_BREAKER_STORE, the actions' named breakers and rate_limit.key live in that store
     * (the host's, or the cluster's): shared by every process moving the tokens */
    cbx_breaker_store *store = NULL;
    const char *where = getenv("CBX_BREAKER_STORE");
    if (where && *where && cli_breaker_store_open(&store, &e) < 0) {
        cli_err("%s: breaker store: %s", cmd, e.msg[0] ? e.msg : cbx_strerror(e.code));
        cbx_journal_close(j);
        return e.code == CBX_EINVAL_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_INTERNAL;
    }
    uv_loop_t loop;
    if (uv_loop_init(&loop) < 0) {
        cli_err("%s: cannot make the event loop", cmd);
        cbx_breaker_store_free(store);
        cbx_journal_close(j);
        return CLI_EXIT_INTERNAL;
    }
    cbx_runtime *rt = NULL;
    cbx_runtime_opts ro = {.loop = &loop, .registry = reg, .journal = j, .breakers = store};
    cbx_workflow_events *events = NULL;
    json_t *snap = NULL;
    if (cbx_runtime_new(&rt, &ro, &e) < 0) {
        cli_err("%s: cannot make the runtime: %s", cmd, e.msg);
        rc = CLI_EXIT_INTERNAL;
    } else {
        /* the events' subject names the workflow: known once the marking is read */
        json_t *peek = NULL;
        if (cbx_workflow_kv_show(o, reg, id, &peek, &e) != 0) {
            rc = fail(cmd, e.code, &e);
        } else if ((rc = cli_workflow_events_open(
                        cmd, json_string_value(json_object_get(peek, "workflow")), &events)) == 0) {
            o->on_event = events ? on_event : NULL;
            o->ud = events;
            cbx_workflow_kv_stats st;
            memset(&st, 0, sizeof st);
            int r = cbx_workflow_kv_run(rt, reg, id, o, &st, &snap, &e);
            if (r < 0) {
                rc = fail(cmd, r, &e);
            } else {
                cbx_workflow_events_rest(events, snap);
                print_rest(id, snap, r, k->json, &st);
                rc = r == CBX_WORKFLOW_DONE      ? CLI_EXIT_OK
                     : r == CBX_WORKFLOW_WAITING ? 3
                     : r == CBX_WORKFLOW_RUNNING ? CLI_EXIT_OK /* --max-moves */
                                                 : CLI_EXIT_FAILED;
            }
        }
        json_decref(peek);
    }
    json_decref(snap);
    cbx_workflow_events_free(events);
    cbx_runtime_free(rt);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    cbx_breaker_store_free(store);
    if (j) {
        if (cli_journal_finish(cmd, j) && rc == CLI_EXIT_OK)
            rc = CLI_EXIT_JOURNAL;
        cbx_journal_close(j);
    }
    return rc;
}

static int show(const char *cmd, cbx_registry *reg, const cli_wf_kv *k, const char *id,
                const cbx_workflow_kv_opts *o)
{
    json_t *snap = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_workflow_kv_show(o, reg, id, &snap, &e);
    if (r)
        return fail(cmd, r, &e);
    if (k->json) {
        cli_print_json(stdout, snap);
    } else {
        printf("workflow %s (%s, revision %" JSON_INTEGER_FORMAT ")\n", id,
               json_string_value(json_object_get(snap, "workflow")),
               json_integer_value(json_object_get(snap, "revision")));
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(snap, "tokens"), i, t)
        {
            char *data = json_dumps(json_object_get(t, "data"), JSON_COMPACT);
            printf("  %-12s %-14s %-8s %s\n", json_string_value(json_object_get(t, "id")),
                   json_string_value(json_object_get(t, "place")),
                   json_string_value(json_object_get(t, "state")), data ? data : "");
            free(data);
        }
    }
    json_decref(snap);
    return 0;
}

/* The bucket's workflows, a row each; CLI_EXIT_FAILED when there is none (as the journal's). */
static int list(const char *cmd, cbx_registry *reg, const cli_wf_kv *k,
                const cbx_workflow_kv_opts *o)
{
    json_t *rows = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_workflow_kv_list(o, reg, &rows, &e);
    if (r)
        return fail(cmd, r, &e);
    if (k->json) {
        cli_print_json(stdout, rows);
    } else {
        static const char *const heads[] = {"ID", "WORKFLOW", "STATE", "MARKING", "REVISION"};
        cli_table *tb = cli_table_new(5, heads);
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            const char *st = json_string_value(json_object_get(row, "state"));
            char marking[512] = "", rev[32];
            size_t n = 0;
            const char *place;
            json_t *count;
            json_object_foreach(json_object_get(row, "marking"), place, count)
            {
                int w = snprintf(marking + n, sizeof marking - n, "%s%s:%" JSON_INTEGER_FORMAT,
                                 n ? " " : "", place, json_integer_value(count));
                if (w < 0 || (size_t)w >= sizeof marking - n)
                    break;
                n += (size_t)w;
            }
            snprintf(rev, sizeof rev, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(row, "revision")));
            cli_table_row(tb);
            cli_table_cell(tb, json_string_value(json_object_get(row, "id")), NULL);
            cli_table_cell(tb, json_string_value(json_object_get(row, "workflow")), NULL);
            cli_table_cell(tb, st,
                           cli_status_color(st && strcmp(st, "done") == 0 ? "success" : st));
            cli_table_cell(tb,
                           st && strcmp(st, "unreadable") == 0
                               ? json_string_value(json_object_get(row, "error"))
                               : marking,
                           NULL);
            cli_table_cell(tb, rev, NULL);
        }
        cli_table_print(tb, stdout);
        cli_table_free(tb);
    }
    size_t n = json_array_size(rows);
    json_decref(rows);
    return n ? 0 : CLI_EXIT_FAILED;
}

int cli_workflow_kv(cli_ctx *ctx, cbx_registry *reg, const cli_wf_kv *k)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "workflow %s", k->sub);
    cbx_workflow_kv_opts o = {.url = k->url,
                              .owner = k->owner,
                              .lease_ms = k->lease_ns / 1000000,
                              .max_firings = k->max_firings,
                              .max_moves = k->max_moves,
                              .wait_timers = !k->no_wait};
    int is_run = strcmp(k->sub, "run") == 0, is_start = strcmp(k->sub, "start") == 0;
    if (is_run || is_start) {
        if (!k->ntokens && is_start) {
            cli_err("%s: give the tokens with --token JSON", cmd);
            return CLI_EXIT_USAGE;
        }
        int rc = create(cmd, k, reg, &o);
        if (rc)
            return rc;
        if (is_start) {
            printf("%s\n", k->id);
            return 0;
        }
        return move(cmd, ctx, reg, k, k->id, &o);
    }
    if (strcmp(k->sub, "list") == 0) {
        if (k->id) {
            cli_err("%s: --workflow-id is for run, start, resume, signal and show", cmd);
            return CLI_EXIT_USAGE;
        }
        return list(cmd, reg, k, &o);
    }
    int is_signal = strcmp(k->sub, "signal") == 0;
    if (!is_signal && strcmp(k->sub, "resume") != 0 && strcmp(k->sub, "show") != 0) {
        cli_err("%s: --nats and --workflow-id are for run, start, resume, signal, show and list",
                cmd);
        return CLI_EXIT_USAGE;
    }
    /* the workflow's id: the first argument, or --workflow-id */
    const char *id = k->id;
    size_t first = 0;
    if (!id && k->npos)
        id = k->pos[first++];
    if (!id) {
        cli_err("%s: missing the workflow's id (ID, or --workflow-id ID)", cmd);
        return CLI_EXIT_USAGE;
    }
    if (!cbx_workflow_kv_id_ok(id)) {
        cli_err("%s: workflow id '%s': 1 to 39 letters, digits, '-' or '_'", cmd, id);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(k->sub, "show") == 0)
        return show(cmd, reg, k, id, &o);
    if (is_signal) {
        if (k->npos < first + 2) {
            cli_err("%s: missing TOKEN NAME (see cbx workflow --help)", cmd);
            return CLI_EXIT_USAGE;
        }
        json_t *data = NULL;
        if (k->data && cli_parse_object(cmd, "--data", k->data, &data) < 0)
            return CLI_EXIT_USAGE;
        cbx_err e;
        cbx_err_clear(&e);
        int r = cbx_workflow_kv_signal(&o, reg, id, k->pos[first], k->pos[first + 1], data, &e);
        json_decref(data);
        if (r)
            return fail(cmd, r, &e);
    }
    return move(cmd, ctx, reg, k, id, &o);
}
