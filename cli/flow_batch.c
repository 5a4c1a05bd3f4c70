/* cbx run --batch: the flow once per line of a JSON Lines file on N worker threads, each with its
 * own loop, runtime and copy of the flow, sharing the registry (read-only), one in-memory breaker
 * store and one journal handle (thread-safe). */
#include "batch_state.h"
#include "flow_cli.h"
#include "joblog.h"
#include "output.h"
#include "signals.h"

#include "core/uuid.h"

#include "cbx/breaker_store.h"
#include "cbx/runtime.h"
#include "cbx/units.h"

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

/* Lines whose run ids are noted in the batch state file in one write. */
#define NOTE_AHEAD 64
/* Lines a worker may start ahead of the first line not yet written out: beyond, it waits for the
 * writer (the main thread), so that a batch whose results are written slower than its runs end
 * (an output read slowly, a writer slower than the workers) holds a bounded number of results
 * (a few MB), not one for every line. */
#define WRITE_AHEAD 4096

typedef struct batch_item {
    int line; /* in the data file, 1-based */
    /* the line's text in the data file's (b->text): its inputs are made from it when its run
     * starts and let go when the run is over, so that a batch holds a line's text, not a JSON
     * tree of it (about 300 bytes a line more: 30 MB for 100,000 lines, at the start) */
    size_t off, len;
    json_t *inputs; /* owned, while its run goes on */
    char *command;  /* with --joblog, the row's Command, from the run's end to the row; owned */
    char *result;   /* the output line's text, "\n" ended, once the run is over; owned */
    char run_id[40];
    int resume; /* --resume BATCH_ID: run_id is this line's run, to resume */
    /* A line whose run has ended, until the journal's batch holding the run's end has
     * committed: then its result, joblog row and counts show (release_committed). The line's
     * mark, queued behind the run's records, gets a number (wseq) when it is written into a
     * batch; once a batch has ended after that, the run's end has committed. */
    char *ended;
    struct batch *b;
    _Atomic uint64_t wseq; /* 0: not written yet */
    atomic_int unmarked;   /* the mark could not be queued: shown at once */
    cbx_status st;
    double start_s, runtime_s;
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
    char *text;         /* the data file (owned): the lines' inputs */
    const json_t *base; /* the inputs every line is over (--inputs, --inputs-json) */
    cli_ctx *ctx;
    cbx_registry *reg;
    cbx_breaker_store *store;
    cbx_journal *journal; /* one handle for every worker (NULL: --no-journal) */
    int declared;         /* the flow declares outputs */
    batch_item *items;
    size_t n;
    pthread_mutex_t mu;
    /* next_write: the lines before it are out, their results freed (batch_write) */
    size_t next, done, ok, failed, timeouts, cancelled, next_write, exited;
    int writing;           /* a thread is in batch_write, writing lines out (under mu) */
    pthread_mutex_t outmu; /* the result lines and the progress line: one thread at a time */
    pthread_cond_t room;   /* next_write moved (or the batch stops): WRITE_AHEAD */
    size_t *unreleased;    /* items ended whose run's end has not committed yet (under mu) */
    size_t nunreleased;
    /* The marks written (wseq, the last number given) and, at the end of every journal batch,
     * the last mark written before it ended (durable): both under the journal's lock. */
    _Atomic uint64_t wseq, durable;
    int listening; /* the journal's commits wake the main thread (on_batch_commit) */
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
    atomic_int write_failed; /* set by any thread that writes */
    cli_batch_state state;   /* which run each line went to, for --resume BATCH_ID */
    cli_joblog joblog;
    size_t reused; /* --resume: lines whose run had succeeded, not run again */
};

/* The text of a result line, "\n" ended: the object's members, then the duration (if any) last,
 * in ms to the microsecond (a JSON real would be written with 17 digits). Made on the worker that
 * ran the line, so that the thread writing the lines out only writes them. NULL without memory. */
static char *line_text(const json_t *o, const uint64_t *duration_ns)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    size_t len = s ? strlen(s) : 0;
    if (len < 2) {
        free(s);
        return NULL;
    }
    char tail[64] = "}\n";
    if (duration_ns)
        snprintf(tail, sizeof tail, ",\"duration_ms\":%.3f}\n", (double)*duration_ns / 1e6);
    size_t tl = strlen(tail);
    char *t = realloc(s, len - 1 + tl + 1);
    if (!t) {
        free(s);
        return NULL;
    }
    memcpy(t + len - 1, tail, tl + 1);
    return t;
}

static char *result_text(int line, const cbx_flow_result *r, int declared)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "line", json_integer(line));
    json_object_set_new(o, "run_id", r->run_id[0] ? json_string(r->run_id) : json_null());
    json_object_set_new(o, "status", json_string(cbx_status_name(r->status)));
    if (r->status == CBX_STATUS_SUCCESS)
        json_object_set_new(o, "outputs", flow_shown_outputs(r, declared));
    else
        json_object_set_new(o, "error", json_string(r->error));
    char *t = line_text(o, &r->duration_ns);
    json_decref(o);
    return t;
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
    atomic_store(&b->stopping, 1);
    pthread_cond_broadcast(&b->room);
    pthread_mutex_unlock(&b->mu);
}

/* Under b->mu: the line has its result (a line of a resumed batch that succeeded there has it
 * from the start), or had it and it is out: a written result is freed, as a batch that kept every
 * line's inputs and result to its end held about 1.9 KB a line (194 MB for 100,000 lines). */
static int has_result(const batch *b, const batch_item *it)
{
    return it->result || (size_t)(it - b->items) < b->next_write;
}

/* The joblog's Command of a line: a cbx run of the line alone, with its inputs (NULL: a resumed
 * run, "{}"). Made on the line's worker. NULL without memory. */
static char *joblog_command(const batch *b, const json_t *inputs)
{
    char *cmd = NULL, *q = NULL;
    size_t len = 0;
    char *in = inputs ? json_dumps(inputs, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
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
    return cmd;
}

/* The joblog row of a line (under b->mu): GNU parallel's columns; Exitval is the exit code a
 * single cbx run of the line would have had, Command its joblog_command. */
static void joblog_row(batch *b, const batch_item *it)
{
    if (!b->joblog.f)
        return;
    cbx_status st = it->st;
    cli_joblog_row r = {.seq = (uint64_t)it->line,
                        .start_s = it->start_s,
                        .runtime_s = it->runtime_s,
                        .exitval = st == CBX_STATUS_SUCCESS     ? CLI_EXIT_OK
                                   : st == CBX_STATUS_TIMEOUT   ? CLI_EXIT_TIMEOUT
                                   : st == CBX_STATUS_CANCELLED ? CLI_EXIT_CANCELLED
                                                                : CLI_EXIT_FAILED,
                        .command = it->command ? it->command : ""};
    if (cli_joblog_write(&b->joblog, &r) < 0)
        b->write_failed = 1;
}

/* A line's mark, written by the journal (under its lock) in the order queued, after the records
 * of the line's run: numbered, so that the end of the batch it went into says its run's end has
 * committed (on_batch_commit). */
static int batch_mark(struct sqlite3 *db, void *ud, cbx_err *err)
{
    (void)db;
    (void)err;
    batch_item *it = ud;
    uint64_t n = atomic_load(&it->b->wseq) + 1;
    atomic_store(&it->b->wseq, n);
    atomic_store(&it->wseq, n);
    return 0;
}

/* After the mark was written, or instead (never written: the journal counts the loss). */
static void batch_mark_done(void *ud)
{
    batch_item *it = ud;
    if (!atomic_load(&it->wseq))
        atomic_store(&it->unmarked, 1);
}

/* Whether the line's run's end has committed (or its batch was lost, which the journal
 * reports). */
static int committed(batch *b, const batch_item *it)
{
    uint64_t w = atomic_load(&it->wseq);
    return atomic_load(&it->unmarked) || (w && w <= atomic_load(&b->durable));
}

/* Under b->mu: show the lines whose run's end has committed (all: every ended line, the journal
 * flushed or absent): result, joblog row (in the order the lines ended), counts. */
static void release_committed(batch *b, int all)
{
    size_t k = 0;
    for (size_t i = 0; i < b->nunreleased; i++) {
        batch_item *it = &b->items[b->unreleased[i]];
        if (!all && b->journal && !committed(b, it)) {
            b->unreleased[k++] = b->unreleased[i];
            continue;
        }
        joblog_row(b, it);
        free(it->command);
        it->command = NULL;
        it->result = it->ended;
        it->ended = NULL;
        b->done++;
        if (it->st == CBX_STATUS_SUCCESS)
            b->ok++;
        else if (it->st == CBX_STATUS_TIMEOUT)
            b->timeouts++;
        else if (it->st == CBX_STATUS_CANCELLED)
            b->cancelled++;
        else
            b->failed++;
    }
    b->nunreleased = k;
}

/* The object v over base (a new one), as a line's inputs are. NULL without memory. */
static json_t *over_base(const json_t *base, json_t *v)
{
    json_t *merged = json_deep_copy(base);
    if (merged && json_object_update(merged, v) < 0) {
        json_decref(merged);
        merged = NULL;
    }
    return merged;
}

/* The inputs of a line, over the base: as batch_read found them. NULL without memory. */
static json_t *line_inputs(const batch *b, const batch_item *it)
{
    json_t *v =
        json_loadb(b->text + it->off, it->len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    json_t *merged = v ? over_base(b->base, v) : NULL;
    json_decref(v);
    return merged;
}

static void batch_write(batch *b);

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
        while (!atomic_load(&b->stopping) && b->next < b->n &&
               b->next >= b->next_write + WRITE_AHEAD) {
            /* the writer is behind: wake it (lines a resume takes from the journal, skipped
             * here, may be all it has to write) and wait for it */
            uv_async_send(&b->notify);
            pthread_cond_wait(&b->room, &b->mu);
        }
        if (atomic_load(&b->stopping) || b->next >= b->n) {
            pthread_mutex_unlock(&b->mu);
            break;
        }
        batch_item *it = &b->items[b->next++];
        if (has_result(b, it)) { /* --resume: it succeeded in the batch resumed */
            pthread_mutex_unlock(&b->mu);
            continue;
        }
        /* the line's run is recorded before it starts, so that a resume finds it: with the
         * lines after it that will run afresh, up to NOTE_AHEAD, in one write (a line noted
         * whose run never started has no run in the journal: a resume runs it afresh) */
        if (!it->resume && b->state.f && !it->run_id[0]) {
            size_t k = (size_t)(it - b->items);
            int r = 0;
            for (size_t m = k; m < b->n && m < k + NOTE_AHEAD && !r; m++) {
                batch_item *x = &b->items[m];
                if (x->run_id[0] || has_result(b, x) || x->resume)
                    continue;
                cbx__uuid7(x->run_id);
                r = cli_batch_state_add(&b->state, x->line, x->run_id);
            }
            if (r < 0 || cli_batch_state_sync(&b->state) < 0) {
                pthread_mutex_unlock(&b->mu);
                worker_fail(w, "cannot write %s", b->state.path);
                break;
            }
        }
        pthread_mutex_unlock(&b->mu);
        if (!it->resume && !(it->inputs = line_inputs(b, it))) {
            worker_fail(w, "line %d: out of memory", it->line);
            break;
        }

        cbx_flow_result res;
        cbx_err e;
        cbx_err_clear(&e);
        cbx_flow_run_opts o = {.inputs = it->resume ? NULL : it->inputs,
                               .resume_run_id = it->resume ? it->run_id : NULL,
                               .run_id = it->resume || !it->run_id[0] ? NULL : it->run_id,
                               .concurrency = (uint32_t)c->concurrency,
                               .env_allow = c->n_env ? c->env : NULL,
                               .tmpdir = c->tmpdir,
                               /* nothing of a line's run shows before it ends, and a line
                                  whose run the journal lacks runs afresh on --resume */
                               .lazy_commit = 1};
        uint64_t t0 = cbx_clock_now_ns(NULL);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        long start_ms = now.tv_nsec / 1000000; /* the joblog's start, to the millisecond */
        double start_s = (double)now.tv_sec + (double)start_ms / 1e3;
        cbx_flow_run(w->rt, f, &o, &res, &e);
        /* a run that a ^C stopped counts as cancelled, whatever its steps made of it */
        if (res.status != CBX_STATUS_SUCCESS && atomic_load(&b->stopping))
            res.status = CBX_STATUS_CANCELLED;
        char *line = result_text(it->line, &res, b->declared);
        cbx_status st = res.status;
        cbx_flow_result_clear(&res);
        char *command = b->joblog.f ? joblog_command(b, it->inputs) : NULL;
        json_decref(it->inputs); /* the run is over */
        it->inputs = NULL;
        pthread_mutex_lock(&b->mu);
        it->ended = line;
        it->command = command;
        it->st = st;
        it->start_s = start_s;
        it->runtime_s = (double)(cbx_clock_now_ns(NULL) - t0) / 1e9;
        b->unreleased[b->nunreleased++] = (size_t)(it - b->items);
        if (!j) /* nothing to wait for: the line shows at once */
            release_committed(b, 1);
        pthread_mutex_unlock(&b->mu);
        if (!j) {
            /* the worker that ends the next line to write writes it (and the lines ready
             * after it): no wake of the main thread a line */
            batch_write(b);
            continue;
        }
        /* the line shows once the batch that holds its run's end has committed: a mark queued
         * behind the run's records, numbered when written; the journal's commits wake the main
         * thread (on_batch_commit), so the line's end need not. Nothing here waits for the
         * journal's lock. */
        it->b = b;
        if (j && cbx_journal_queue_db(j, batch_mark, it, batch_mark_done, NULL) < 0 &&
            !atomic_load(&it->wseq))
            atomic_store(&it->unmarked, 1); /* counted as a loss by the journal: at once */
        if (atomic_load(&it->unmarked) || !b->listening)
            uv_async_send(&b->notify);
    }

    pthread_mutex_lock(&b->mu);
    w->alive = 0;
    pthread_mutex_unlock(&b->mu);
out:
    if (handles_ok) {
        uv_close((uv_handle_t *)&w->wake, flow_noop_close);
        uv_close((uv_handle_t *)&w->canceller, flow_noop_close);
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

/* Write the results that are ready, in input order: on the main thread, or (without a journal)
 * on the worker that ended a line. One thread writes at a time; one that finds another writing
 * leaves its lines to it, which looks again before it stops. */
static void batch_write(batch *b)
{
    pthread_mutex_lock(&b->mu);
    if (b->writing) {
        pthread_mutex_unlock(&b->mu);
        return;
    }
    b->writing = 1;
    for (;;) {
        size_t from = b->next_write, to = from;
        while (to < b->n && b->items[to].result)
            to++;
        if (to == from)
            break;
        pthread_mutex_unlock(&b->mu);
        /* lines from..to-1 are this thread's: a result is set once, and only the writer
         * takes it */
        pthread_mutex_lock(&b->outmu);
        if (b->out == stdout)
            cli_progress_clear(&b->progress);
        for (size_t i = from; i < to; i++)
            if (fputs(b->items[i].result, b->out) == EOF)
                b->write_failed = 1;
        if (fflush(b->out) == EOF)
            b->write_failed = 1;
        pthread_mutex_unlock(&b->outmu);
        pthread_mutex_lock(&b->mu);
        for (size_t i = from; i < to; i++) {
            free(b->items[i].result);
            b->items[i].result = NULL;
        }
        b->next_write = to;
        pthread_cond_broadcast(&b->room);
    }
    b->writing = 0;
    pthread_mutex_unlock(&b->mu);
}

static void batch_draw(batch *b)
{
    pthread_mutex_lock(&b->mu);
    size_t done = b->done, ok = b->ok, bad = b->failed + b->timeouts + b->cancelled;
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_lock(&b->outmu);
    cli_progress_draw(&b->progress, done, b->n, ok, bad, 0);
    pthread_mutex_unlock(&b->outmu);
}

/* On the thread that ended a journal batch (its lock held, as when the marks are written): every
 * mark written so far went into this batch or an earlier one. Wake the main thread when that
 * releases lines. */
static void on_batch_commit(void *ud)
{
    batch *b = ud;
    uint64_t w = atomic_load(&b->wseq);
    if (w != atomic_load(&b->durable)) {
        atomic_store(&b->durable, w);
        uv_async_send(&b->notify);
    }
}

static void batch_close(batch *b)
{
    if (b->closed)
        return;
    b->closed = 1;
    if (b->listening)
        cbx_journal_on_commit_remove(b->journal, on_batch_commit, b);
    b->listening = 0;
    uv_close((uv_handle_t *)&b->notify, flow_noop_close);
    uv_close((uv_handle_t *)&b->sigint, flow_noop_close);
    uv_close((uv_handle_t *)&b->sigterm, flow_noop_close);
    uv_close((uv_handle_t *)&b->tick, flow_noop_close);
}

static void on_notify(uv_async_t *a)
{
    batch *b = a->data;
    pthread_mutex_lock(&b->mu);
    int all_out = b->exited == b->nworkers;
    pthread_mutex_unlock(&b->mu);
    if (all_out && b->journal) {
        cbx_journal_flush(b->journal, NULL); /* the last runs' ends; a failure is a loss */
    } else if (b->journal && !b->listening) {
        /* no commit wakes this thread: the marks written before the flush have committed */
        uint64_t w = atomic_load(&b->wseq);
        cbx_journal_flush(b->journal, NULL);
        pthread_mutex_lock(&b->mu);
        if (w > atomic_load(&b->durable))
            atomic_store(&b->durable, w);
        pthread_mutex_unlock(&b->mu);
    }
    pthread_mutex_lock(&b->mu);
    release_committed(b, all_out);
    pthread_mutex_unlock(&b->mu);
    batch_write(b);
    batch_draw(b);
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
    pthread_cond_broadcast(&b->room);
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
        json_t *merged = over_base(base, v);
        json_decref(v);
        if (!merged) {
            free(text);
            return CLI_EXIT_INTERNAL;
        }
        cbx_diag d = {0};
        json_t *checked = NULL;
        if (cbx_flow_inputs(f, merged, &checked, &d) < 0) {
            for (size_t i = 0; i < d.n; i++) {
                char msg[1200];
                flow_input_problem(msg, sizeof msg, &d.items[i], merged, 0);
                fprintf(stderr, "%s:%d: %s\n", name, lineno, msg);
                problems++;
            }
            cbx_diag_clear(&d);
            json_decref(merged);
            continue;
        }
        json_decref(checked);
        json_decref(merged); /* made again from the line when its run starts */
        if (b->n == cap) {
            batch_item *ni = realloc(b->items, cap * 2 * sizeof *ni);
            if (!ni) {
                free(text);
                return CLI_EXIT_INTERNAL;
            }
            b->items = ni;
            cap *= 2;
        }
        b->items[b->n++] = (batch_item){.line = lineno, .off = (size_t)(l - text), .len = ll};
    }
    b->text = text;
    b->base = base;
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
static char *journaled_line(const batch_item *it, const json_t *run, int declared)
{
    cbx_flow_result r = {.status = CBX_STATUS_SUCCESS};
    snprintf(r.run_id, sizeof r.run_id, "%s", it->run_id);
    json_t *out = json_object_get(run, "outputs");
    r.outputs = json_is_null(out) ? NULL : out;
    r.steps = json_object_get(run, "steps");
    json_int_t t0 = json_integer_value(json_object_get(run, "started_ms"));
    json_int_t t1 = json_integer_value(json_object_get(run, "ended_ms"));
    r.duration_ns = t1 > t0 ? (uint64_t)(t1 - t0) * 1000000u : 0;
    return result_text(it->line, &r, declared);
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
        if (cbx_flow_run_show(journal, id, &run, &e) < 0) {
            it->run_id[0] = '\0'; /* never journaled (killed first): afresh, under a new id */
            continue;
        }
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

int flow_run_batch(flow_cfg *c, cli_ctx *ctx, cbx_registry *reg, cbx_flow *f, json_t *base)
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
    if (!ctx->no_journal && (code = flow_open_journal("run", &journal)))
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
    int chosen = cli_breaker_store_chosen("run", &b.store);
    if (chosen) {
        code = chosen;
        goto out;
    }
    if (!b.store && cbx_breaker_store_memory_new(&b.store, &err) < 0) {
        cli_err("run: breaker store: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        goto out;
    }
    if (pthread_mutex_init(&b.mu, NULL) != 0)
        goto out;
    if (pthread_cond_init(&b.room, NULL) != 0) {
        pthread_mutex_destroy(&b.mu);
        goto out;
    }
    if (pthread_mutex_init(&b.outmu, NULL) != 0) {
        pthread_cond_destroy(&b.room);
        pthread_mutex_destroy(&b.mu);
        goto out;
    }
    mu_ok = 1;
    if (uv_loop_init(&b.loop) < 0) {
        cli_err("run: cannot make the event loop");
        goto out;
    }
    loop_ok = 1;
    b.nworkers = c->parallel < b.n ? c->parallel : b.n;
    b.workers = calloc(b.nworkers, sizeof *b.workers);
    b.unreleased = calloc(b.n ? b.n : 1, sizeof *b.unreleased);
    if (!b.workers || !b.unreleased) {
        b.nworkers = 0;
        goto out;
    }
    uv_async_init(&b.loop, &b.notify, on_notify);
    b.listening = journal && cbx_journal_on_commit(journal, on_batch_commit, &b, NULL) == 0;
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
    if (journal)
        cbx_journal_flush(journal, NULL);
    release_committed(&b, 1); /* none left, unless the loop ended early */
    cli_progress_clear(&b.progress);

    /* lines that never ran (cancelled, or a worker could not start) */
    size_t not_run = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (has_result(&b, &b.items[i]))
            continue;
        json_t *o = json_pack(
            "{s:i, s:n, s:s, s:s}", "line", b.items[i].line, "run_id", "status", "cancelled",
            "error", b.setup_error[0] ? "not run: the batch stopped" : "not run: cancelled");
        b.items[i].result = line_text(o, NULL);
        json_decref(o);
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
    if (mu_ok) {
        pthread_mutex_destroy(&b.outmu);
        pthread_cond_destroy(&b.room);
        pthread_mutex_destroy(&b.mu);
    }
    for (size_t i = 0; i < b.n; i++) {
        json_decref(b.items[i].inputs);
        free(b.items[i].command);
        free(b.items[i].result);
        free(b.items[i].ended);
    }
    free(b.items);
    free(b.text);
    free(b.unreleased);
    free(b.workers);
    cli_batch_state_close(&b.state);
    cli_joblog_close(&b.joblog);
    cbx_breaker_store_free(b.store);
    cbx_journal_close(journal);
    if (b.out && b.out != stdout)
        fclose(b.out);
    return code;
}
