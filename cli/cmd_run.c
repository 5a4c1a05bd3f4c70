/* cbx run: a flow run on one runtime and one loop, its inputs from the command line; --resume
 * picks up a killed run. A batch (--batch) is flow_batch.c. */
#include "flow_cli.h"
#include "flow_requires.h"
#include "output.h"
#include "signals.h"

#include "cbx/runtime.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

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
    "  --record DIR            write the model exchanges of llm and agent steps to cassettes in\n"
    "                          DIR (made if missing)\n"
    "  --replay DIR            answer those steps' model calls from DIR's cassettes, offline\n"
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
    "A policy's keyed breakers are the run's own, unless CBX_BREAKER_STORE names a store (host,\n"
    "nats, nats://...): then they, and rate_limit.key limiters, are shared with every process\n"
    "using it (docs/breaker-store.md).\n"
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
    {"record", 0, 1, OPT_RECORD},
    {"replay", 0, 1, OPT_REPLAY},
    {0},
};

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
/* volatile: the compiler would drop stores that nothing reads, and the pointers with them (a
 * leak checker such as valgrind's memcheck then reports the blocks definitely lost) */
static volatile struct {
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
    cbx_breaker_store *store = NULL;
    int chosen = cli_breaker_store_chosen("run", &store);
    if (chosen)
        return chosen;
    if (uv_loop_init(&loop) < 0) {
        cli_err("run: cannot make the event loop");
        cbx_breaker_store_free(store);
        return CLI_EXIT_INTERNAL;
    }
    cbx_runtime_opts ro = {.loop = &loop, .registry = reg, .journal = journal, .breakers = store};
    if (cbx_runtime_new(&rt, &ro, &err) < 0) {
        cli_err("run: cannot make the runtime: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        cbx_breaker_store_free(store);
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
    /* Without --json nothing shows a step's record: the summary counts the view's own steps,
     * and a flow that declares no outputs prints its steps' (a record is 1.1 KB a step, made at
     * the run's end). */
    int declared = cbx_flow_declares_outputs(f);
    if (!c->json)
        o.steps = declared ? CBX_FLOW_STEPS_NONE : CBX_FLOW_STEPS_OUTPUTS;
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
    if (o.steps != CBX_FLOW_STEPS_RECORDS)
        shown.steps = NULL; /* no records: the view counts its own */
    cli_flow_view_end(s.view, cbx_flow_name(f), &shown);
    if (c->json) {
        json_t *j = cbx_flow_result_to_json(&res);
        if (cli_print_json(stdout, j) < 0 && code == CLI_EXIT_OK)
            code = CLI_EXIT_INTERNAL;
        json_decref(j);
    } else if (res.status == CBX_STATUS_SUCCESS) {
        json_t *out = o.steps == CBX_FLOW_STEPS_OUTPUTS && res.steps &&
                              !(res.outputs && json_object_size(res.outputs))
                          ? json_incref(res.steps) /* already the outputs shown */
                          : flow_shown_outputs(&res, declared);
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
    uv_close((uv_handle_t *)&s.sigint, flow_noop_close);
    uv_close((uv_handle_t *)&s.sigterm, flow_noop_close);
    uv_close((uv_handle_t *)&s.canceller, flow_noop_close);
    uv_close((uv_handle_t *)&s.tick, flow_noop_close);
    cbx_runtime_free(rt);
    cbx_breaker_store_free(store);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    cli_flow_view_free(s.view);
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
    int r = flow_resolve_run(j, c->resume, &row, &err);
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
    int rc = flow_parse(ctx, "run", run_opts, help, run_exit_help, argc, argv, &c);
    if (rc || (rc = flow_need_file(&c)) || (rc = check_run_options(&c, ctx)) ||
        (rc = cli_flow_requires("run", c.file, &c.src)) || (rc = cli_registry_open(&c.src, &reg)) ||
        (rc = flow_load_file("run", c.file, reg, 0, &f)))
        goto out;
    if ((!c.resume || c.batch) && (rc = build_inputs(&c, f, &inputs)))
        goto out;
    if (c.batch) {
        rc = flow_run_batch(&c, ctx, reg, f, inputs);
        goto out;
    }
    if (!c.resume) {
        cbx_diag d = {0};
        json_t *checked = NULL;
        if (cbx_flow_inputs(f, inputs, &checked, &d) < 0) {
            for (size_t i = 0; i < d.n; i++) {
                char msg[1200];
                flow_input_problem(msg, sizeof msg, &d.items[i], inputs, 1);
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
    if (!ctx->no_journal && (rc = flow_open_journal("run", &journal)))
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
    flow_cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}
