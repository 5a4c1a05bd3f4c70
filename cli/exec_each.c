/* cbx exec --each: one execution per input line (stdin or --arg-file), P at a time, as xargs -P
 * and GNU parallel run them; the same runtime, policy, breaker and journal as any cbx exec.
 *
 * Placeholders, as GNU parallel's, in every string of the request's parameters (for -- CMD: in
 * the command's arguments): {} the line, {.} without its extension, {/} its base name, {//} its
 * directory, {/.} the base name without extension, {#} the job's number (the line's, from 1),
 * {%} the job slot (1..P). A command with no placeholder gets the line as its last argument.
 *
 * Lines are read as jobs are started, so a long producer's first lines run at once. Each job's
 * output is written as it comes, a whole line at a time (cli/exec_chunks.h), so the lines of jobs
 * running at once never mix; with --group it is written when the job ends, whole (stdout, then
 * stderr); --tag puts the item and a TAB before each line. The joblog (cli/joblog.h) gets a row per
 * job that ended on its own; jobs cancelled by ^C get none, so that --resume runs them again. */
#define _GNU_SOURCE /* sigabbrev_np */
#include "exec_each.h"
#include "core/strbuf.h"
#include "exec_cli.h"

#include "cbx/breaker_store.h"
#include "cbx/journal.h"
#include "cbx/units.h"
#include "joblog.h"
#include "line_reader.h"
#include "output.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

typedef struct each_run each_run;

/* One job in flight: its request's user data. */
typedef struct each_job {
    each_run *e;
    uint64_t seq;
    uint32_t slot; /* 1..jobs */
    double start_s;
    char *command;   /* for the joblog */
    exec_stream out; /* its chunks, written as they come */
} each_job;

struct each_run {
    const cli_each_opts *o;
    cbx_runtime *rt;
    FILE *in;
    cli_line_reader reader;
    uint8_t *skip; /* from the joblog, with --resume */
    size_t n_skip;
    uint8_t *busy; /* job slots taken, [1..jobs] */
    cli_joblog log;
    uint64_t seq, inflight, done, skipped;
    exec_counts n;
    int first_code;       /* the first failed job's exit code (for --repeat-style precedence) */
    char last_error[512]; /* the last failure's error line */
    int stopping, signals, log_failed;
    cli_progress progress;
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
};

/* ---- placeholders ------------------------------------------------------------------------- */

/* The placeholder at s ("{...}"): its length, or 0 when s does not start one. */
static size_t placeholder_len(const char *s)
{
    static const char *const names[] = {"{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]);
        if (strncmp(s, names[i], n) == 0)
            return n;
    }
    return 0;
}

static int has_placeholder(const char *s)
{
    for (const char *p = strchr(s, '{'); p; p = strchr(p + 1, '{'))
        if (placeholder_len(p))
            return 1;
    return 0;
}

/* Write what placeholder ph (of length n) stands for. */
static void expand_one(cbx__buf *b, const char *ph, size_t n, const char *item, uint64_t seq,
                       uint32_t slot)
{
    const char *slash = strrchr(item, '/');
    const char *base = slash ? slash + 1 : item;
    const char *dot = strrchr(base, '.');
    char num[24];
    if (n == 2) { /* {} */
        cbx__buf_put(b, item, strlen(item));
    } else if (ph[1] == '.') { /* {.} */
        cbx__buf_put(b, item, dot ? (size_t)(dot - item) : strlen(item));
    } else if (ph[1] == '#' || ph[1] == '%') {
        snprintf(num, sizeof num, "%llu", (unsigned long long)(ph[1] == '#' ? seq : slot));
        cbx__buf_put(b, num, strlen(num));
    } else if (n == 3) { /* {/} */
        cbx__buf_put(b, base, strlen(base));
    } else if (ph[2] == '/') { /* {//} */
        if (slash)
            cbx__buf_put(b, item, slash == item ? 1 : (size_t)(slash - item));
        else
            cbx__buf_put(b, ".", 1);
    } else { /* {/.} */
        cbx__buf_put(b, base, dot ? (size_t)(dot - base) : strlen(base));
    }
}

static json_t *expand_string(const char *s, const char *item, uint64_t seq, uint32_t slot)
{
    cbx__buf b = {0};
    cbx__buf_put(&b, "", 0);
    while (*s) {
        size_t n = *s == '{' ? placeholder_len(s) : 0;
        if (n) {
            expand_one(&b, s, n, item, seq, slot);
            s += n;
        } else {
            cbx__buf_put(&b, s, 1);
            s++;
        }
    }
    json_t *v = b.oom ? NULL : json_stringn_nocheck(b.p, b.len);
    free(b.p);
    return v;
}

/* A copy of v with every placeholder in its strings expanded. NULL: out of memory. */
static json_t *expand(const json_t *v, const char *item, uint64_t seq, uint32_t slot)
{
    if (json_is_string(v))
        return has_placeholder(json_string_value(v))
                   ? expand_string(json_string_value(v), item, seq, slot)
                   : json_incref((json_t *)v);
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        const json_t *x;
        json_array_foreach(v, i, x)
        {
            if (!a || json_array_append_new(a, expand(x, item, seq, slot)) < 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (!o || json_object_set_new(o, k, expand(x, item, seq, slot)) < 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    return json_incref((json_t *)v);
}

static int any_placeholder(const json_t *v)
{
    if (json_is_string(v))
        return has_placeholder(json_string_value(v));
    size_t i;
    const char *k;
    const json_t *x;
    if (json_is_array(v))
        json_array_foreach(v, i, x) if (any_placeholder(x)) return 1;
    if (json_is_object(v))
        json_object_foreach((json_t *)v, k, x) if (any_placeholder(x)) return 1;
    return 0;
}

/* The joblog's Command: the argv shell-quoted, or TYPE and the parameters as JSON. */
static char *command_text(const each_run *e, const json_t *params)
{
    if (e->o->cmd_mode) {
        cbx__buf b = {0};
        cbx__buf_put(&b, "", 0);
        size_t i;
        const json_t *a;
        json_array_foreach(json_object_get(params, "argv"), i, a)
        {
            if (i)
                cbx__buf_put(&b, " ", 1);
            if (!b.oom && cli_shell_quote(&b.p, &b.len, &b.cap, json_string_value(a)) < 0)
                b.oom = 1;
        }
        if (b.oom) {
            free(b.p);
            return NULL;
        }
        return b.p;
    }
    char *js = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    if (!js)
        return NULL;
    size_t n = strlen(e->o->type) + strlen(js) + 2;
    char *buf = malloc(n);
    if (buf)
        snprintf(buf, n, "%s %s", e->o->type, js);
    free(js);
    return buf;
}

/* ---- jobs --------------------------------------------------------------------------------- */

static double wall_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void write_json_line(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        size_t n = strlen(s);
        s[n] = '\n'; /* json_dumps's NUL becomes the newline: written with its length */
        cli_write_all(STDOUT_FILENO, s, n + 1);
        free(s);
    }
}

/* What the job wrote, or its outputs; and a line for a failure that does not speak itself. */
static void job_output(each_run *e, const each_job *j, const cbx_result *r)
{
    const cli_each_opts *o = e->o;
    int ok = r->status == CBX_STATUS_SUCCESS || r->fallback_used;
    if (o->json) {
        json_t *v = cbx_result_to_json(r);
        json_object_set_new(v, "seq", json_integer((json_int_t)j->seq));
        exec_stream_attach((exec_stream *)&j->out, v);
        write_json_line(v);
        json_decref(v);
    } else if (o->cmd_mode && !r->fallback_used) {
        /* every attempt's output went out as it came */
    } else if (!r->fallback_used && j->out.text_chunks) {
        /* so did the executor's text (a model's tokens): that is its answer */
    } else if (ok && json_is_string(r->outputs)) {
        size_t n = json_string_length(r->outputs);
        const char *p = json_string_value(r->outputs);
        cli_write_all(STDOUT_FILENO, p, n);
        if (n && p[n - 1] != '\n')
            cli_write_all(STDOUT_FILENO, "\n", 1);
    } else if (ok && r->outputs) {
        write_json_line(r->outputs);
    }
    int says_itself = o->cmd_mode && r->status == CBX_STATUS_FAILED &&
                      (json_is_integer(cli_exec_cmd_field(r, "exit_code")) ||
                       json_is_string(cli_exec_cmd_field(r, "signal")));
    if (!ok && !says_itself && !o->quiet && r->status != CBX_STATUS_CANCELLED)
        cli_err("exec: job %llu: %s: %s", (unsigned long long)j->seq, cbx_status_name(r->status),
                r->error);
}

static int signal_of(const cbx_result *r)
{
    const char *name = json_string_value(cli_exec_cmd_field(r, "signal"));
    if (!name || strncmp(name, "SIG", 3) != 0)
        return 0;
    for (int i = 1; i < 65; i++) {
        const char *ab = sigabbrev_np(i);
        if (ab && strcmp(ab, name + 3) == 0)
            return i;
    }
    return atoi(name + 3);
}

static uint64_t bytes_of(const cbx_result *r, const char *stream)
{
    char key[32];
    snprintf(key, sizeof key, "%s_bytes", stream);
    const json_t *n = cli_exec_cmd_field(r, key);
    if (json_is_integer(n))
        return (uint64_t)json_integer_value(n);
    const json_t *s = cli_exec_cmd_field(r, stream);
    return json_is_string(s) ? json_string_length(s) : 0;
}

static void on_job_done(cbx_execution *ex, const cbx_result *r, void *ud)
{
    (void)ex;
    each_job *j = ud;
    each_run *e = j->e;
    e->inflight--;
    e->done++;
    e->busy[j->slot] = 0;
    exec_counts_add(&e->n, r);
    if (r->status != CBX_STATUS_SUCCESS && !r->fallback_used && r->error[0])
        snprintf(e->last_error, sizeof e->last_error, "job %llu: %s", (unsigned long long)j->seq,
                 r->error);
    cli_progress_clear(&e->progress);
    exec_stream_end(&j->out);
    job_output(e, j, r);
    if (r->status != CBX_STATUS_CANCELLED) {
        int sig = signal_of(r);
        int code = cli_exec_result_code(r, e->o->cmd_mode);
        cli_joblog_row row = {.seq = j->seq,
                              .start_s = j->start_s,
                              .runtime_s = (double)r->duration_ns / 1e9,
                              .receive = bytes_of(r, "stdout") + bytes_of(r, "stderr"),
                              .exitval = sig ? 0 : code,
                              .signal = sig,
                              .command = j->command};
        if (cli_joblog_write(&e->log, &row) < 0 && !e->log_failed) {
            e->log_failed = 1;
            cli_err("exec: --joblog %s: %s", e->o->joblog, strerror(errno));
        }
    }
    exec_stream_free(&j->out);
    free(j->command);
    free(j);
}

static int on_job_chunk(cbx_execution *ex, const cbx_chunk *c, void *ud)
{
    (void)ex;
    each_job *j = (each_job *)(void *)((char *)ud - offsetof(each_job, out));
    cli_progress_clear(&j->e->progress);
    return exec_stream_chunk(&j->out, c);
}

/* Start the job of item. 0, or an exit code after a message. */
static int start_job(each_run *e, const cbx_request *tmpl, const json_t *params, int append,
                     const char *item)
{
    uint32_t slot = 1;
    while (e->busy[slot])
        slot++;
    json_t *p = expand(params, item, e->seq, slot);
    if (p && append &&
        json_array_append_new(json_object_get(p, "argv"), json_string_nocheck(item)) < 0) {
        json_decref(p);
        p = NULL;
    }
    each_job *j = p ? calloc(1, sizeof *j) : NULL;
    if (j)
        j->command = command_text(e, p);
    if (!j || !j->command) {
        if (j)
            free(j);
        json_decref(p);
        cli_err("exec: out of memory");
        return CLI_EXIT_INTERNAL;
    }
    j->e = e;
    j->seq = e->seq;
    j->slot = slot;
    j->start_s = wall_s();
    e->busy[slot] = 1;
    e->inflight++;
    cbx_request req = *tmpl;
    req.params = p;
    req.ud = j;
    if (exec_takes_chunks(e->o->cmd_mode, e->o->type, e->o->json)) {
        exec_stream_init(&j->out, e->o->group ? EXEC_STREAM_GROUP : EXEC_STREAM_LINES,
                         e->o->tag ? item : NULL, e->o->json);
        req.on_chunk = on_job_chunk;
        req.chunk_ud = &j->out;
    }
    char *fb_key = NULL; /* this item's fallback cache key, when the policy has a template */
    if (cli_exec_fallback_key(tmpl->executor, tmpl->policy, p, &fb_key) == 0)
        req.fallback_key = fb_key;
    cbx_diag diag = {0};
    int r = cbx_runtime_submit(e->rt, &req, NULL, &diag); /* on_job_done has j either way */
    free(fb_key);
    json_decref(p);
    /* An unknown type would refuse every other job the same way (its line is out); invalid
     * parameters may come from this line only: the next lines run. */
    if (r == CBX_EUNKNOWN_TYPE)
        e->stopping = 1;
    cbx_diag_clear(&diag);
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    each_run *e = t->data;
    cli_progress_draw(&e->progress, e->done, e->seq - e->skipped, e->n.ok,
                      e->n.failed + e->n.timeouts + e->n.cancelled,
                      e->n.refused + e->n.breaker_open + e->n.invalid);
}

static void on_signal(uv_signal_t *h, int signum)
{
    each_run *e = h->data;
    (void)signum;
    if (e->signals++) {
        cli_progress_clear(&e->progress);
        _exit(CLI_EXIT_CANCELLED);
    }
    e->stopping = 1;
    cbx_runtime_cancel_all(e->rt);
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static int summary(each_run *e, uint64_t elapsed_ns)
{
    if (!e->o->quiet) {
        char el[32];
        cbx_duration_human(elapsed_ns, el, sizeof el);
        char skipped[64] = "";
        if (e->skipped)
            snprintf(skipped, sizeof skipped, "; %llu skipped (done in the joblog)",
                     (unsigned long long)e->skipped);
        cli_err("exec: %llu jobs in %s: %llu succeeded, %llu failed, %llu timed out, %llu refused, "
                "%llu cancelled%s",
                (unsigned long long)e->done, el, (unsigned long long)e->n.ok,
                (unsigned long long)e->n.failed, (unsigned long long)e->n.timeouts,
                (unsigned long long)(e->n.refused + e->n.breaker_open + e->n.invalid),
                (unsigned long long)e->n.cancelled, skipped);
    }
    if (e->n.cancelled || e->signals)
        return CLI_EXIT_CANCELLED;
    if (e->n.invalid)
        return CLI_EXIT_USAGE;
    if (e->n.failed)
        return CLI_EXIT_FAILED;
    if (e->n.timeouts)
        return CLI_EXIT_TIMEOUT;
    if (e->n.breaker_open)
        return CLI_EXIT_BREAKER_OPEN;
    if (e->n.refused)
        return CLI_EXIT_REFUSED;
    return CLI_EXIT_OK;
}

int cli_exec_each(const cli_each_opts *o, cli_ctx *ctx, cbx_registry *reg, cbx_policy *policy,
                  const json_t *params)
{
    int code = CLI_EXIT_INTERNAL, r;
    each_run e = {.o = o};
    cbx_err err;
    cbx_err_clear(&err);
    cbx_journal *journal = NULL;
    cbx_breaker_store *store = NULL;
    uv_loop_t loop;
    int loop_ok = 0, handles_ok = 0;

    int append = o->cmd_mode && !any_placeholder(json_object_get(params, "argv"));
    if (!o->cmd_mode && !any_placeholder(params)) {
        cli_err("exec: --each: no placeholder ({}, {.}, {/}, {//}, {/.}, {#}, {%%}) in the "
                "parameters of '%s'",
                o->type);
        return CLI_EXIT_USAGE;
    }
    if (o->resume && !o->joblog) {
        cli_err("exec: --resume needs --joblog FILE (the record of what is done)");
        return CLI_EXIT_USAGE;
    }
    e.in = o->input ? fopen(o->input, "r") : stdin;
    if (!e.in) {
        cli_err("exec: --arg-file: cannot read '%s': %s", o->input, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if (o->resume && (r = cli_joblog_read(o->joblog, o->resume == 2, &e.skip, &e.n_skip)) < 0) {
        cli_err("exec: --joblog %s: %s", o->joblog,
                r == -EINVAL ? "not a joblog (no 'Seq Host ...' header)" : strerror(-r));
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if (o->joblog && (r = cli_joblog_open(&e.log, o->joblog, o->resume)) < 0) {
        cli_err("exec: --joblog: cannot write '%s': %s", o->joblog, strerror(-r));
        code = CLI_EXIT_USAGE;
        goto out;
    }
    e.busy = calloc(o->jobs + 1, 1);
    if (!e.busy) {
        cli_err("exec: out of memory");
        goto out;
    }
    if (!ctx->no_journal && cbx_journal_open(&journal, NULL, &err) < 0) {
        cli_err("journal: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        goto out;
    }
    if (o->breaker && cli_breaker_store_open(&store, &err) < 0) {
        cli_err("breaker store: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        goto out;
    }
    if (uv_loop_init(&loop) < 0) {
        cli_err("exec: cannot make the event loop");
        goto out;
    }
    loop_ok = 1;
    cbx_runtime_opts ro = {.loop = &loop,
                           .registry = reg,
                           .journal = journal,
                           .breakers = store,
                           .max_concurrent = (uint32_t)o->jobs,
                           .max_queued = (uint32_t)o->jobs + 1};
    if (cbx_runtime_new(&e.rt, &ro, &err) < 0) {
        cli_err("exec: cannot make the runtime: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        goto out;
    }
    cbx_request tmpl = {.executor = o->type,
                        .policy = policy,
                        .breaker = o->breaker,
                        .breaker_opts = o->breaker ? o->breaker_opts : NULL,
                        .tmpdir = o->tmpdir,
                        .on_done = on_job_done};
    uv_signal_init(&loop, &e.sigint);
    uv_signal_init(&loop, &e.sigterm);
    e.sigint.data = e.sigterm.data = &e;
    uv_signal_start(&e.sigint, on_signal, SIGINT);
    uv_signal_start(&e.sigterm, on_signal, SIGTERM);
    uv_timer_init(&loop, &e.tick);
    e.tick.data = &e;
    cli_line_reader_init(&e.reader, &loop, e.in, o->null_sep ? '\0' : '\n');
    handles_ok = 1;
    cli_progress_start(&e.progress, !o->quiet);
    if (e.progress.on)
        uv_timer_start(&e.tick, on_tick, 100, 100);
    uint64_t t0 = cbx_clock_now_ns(NULL);

    code = 0;
    r = 0;
    const char *item;
    for (;;) {
        while (!code && !e.stopping && e.inflight < o->jobs &&
               (r = cli_line_reader_next(&e.reader, &item)) == 1) {
            e.seq++;
            if (e.seq < e.n_skip && e.skip[e.seq]) {
                e.skipped++;
                continue;
            }
            code = start_job(&e, &tmpl, params, append, item);
        }
        if (r < 0 && !code) {
            cli_err("exec: out of memory");
            code = CLI_EXIT_INTERNAL;
        }
        if (e.inflight == 0 && (e.reader.eof || e.stopping || code))
            break;
        uv_run(&loop, UV_RUN_ONCE);
    }
    if (e.reader.error < 0 && !code) {
        cli_err("exec: reading the input: %s", uv_strerror(e.reader.error));
        code = CLI_EXIT_INTERNAL;
    }
    cli_progress_clear(&e.progress);
    if (!code)
        code = summary(&e, cbx_clock_now_ns(NULL) - t0);
    else
        summary(&e, cbx_clock_now_ns(NULL) - t0);
out:
    if (loop_ok) {
        if (handles_ok) {
            uv_close((uv_handle_t *)&e.sigint, close_cb);
            uv_close((uv_handle_t *)&e.sigterm, close_cb);
            uv_close((uv_handle_t *)&e.tick, close_cb);
            cli_line_reader_close(&e.reader);
        }
        cbx_runtime_free(e.rt);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    cbx_breaker_store_free(store);
    cbx_journal_close(journal);
    cli_joblog_close(&e.log);
    if (e.in && e.in != stdin)
        fclose(e.in);
    free(e.skip);
    free(e.busy);
    return code;
}
