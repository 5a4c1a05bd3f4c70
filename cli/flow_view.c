/* What cbx run shows while a flow runs: on a terminal, one line per step redrawn in place
 * (pending, running, retrying, done, failed, skipped, with attempts and marks); otherwise one
 * plain log line per event. Everything goes to stderr; stdout is for the flow's outputs. */
#include "cli.h"
#include "output.h"

#include "cbx/clock.h"
#include "cbx/flow.h"
#include "cbx/units.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

typedef enum vstate { V_PENDING, V_RUNNING, V_RETRYING, V_DONE, V_FAILED, V_SKIPPED } vstate;

typedef struct vstep {
    char *name; /* the full name: "fetch", "prepare.cache" */
    int depth;  /* nesting: 0 for the flow's own steps */
    int continue_on_error;
    int foreach; /* attempts are summed over its items */
    vstate state;
    cbx_status status;
    uint32_t attempts;
    uint64_t start_ns, end_ns;
    int started, resumed;
    char *note; /* the error or the reason it was skipped, or NULL: most steps have none */
} vstep;

struct cli_flow_view {
    int mode;
    vstep *steps;
    size_t n, cap;
    uint32_t *byname; /* the steps' indices, sorted by name: an event finds its step in log n */
    int indexed;      /* byname is up to date (it is built once the file's steps are read) */
    size_t drawn;     /* lines of the live block on the screen */
    uint64_t start_ns, last_draw_ns;
    int dirty;
    uint32_t done, total;
};

/* ---- the steps, in file order ---------------------------------------------------------------- */

static vstep *add_step(cli_flow_view *v, size_t at, const char *name, int depth)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        vstep *s = realloc(v->steps, cap * sizeof *s);
        if (!s)
            return NULL;
        v->steps = s;
        v->cap = cap;
    }
    char *nm = strdup(name);
    if (!nm)
        return NULL;
    if (v->indexed) {
        uint32_t *b = realloc(v->byname, (v->n + 1) * sizeof *b);
        if (!b) {
            free(nm);
            return NULL;
        }
        v->byname = b;
    }
    memmove(&v->steps[at + 1], &v->steps[at], (v->n - at) * sizeof *v->steps);
    v->n++;
    vstep *s = &v->steps[at];
    *s = (vstep){.name = nm, .depth = depth, .status = CBX_STATUS_PENDING};
    if (v->indexed) { /* a step learnt during the run (a sub-flow's): placed among the others */
        size_t pos = 0;
        for (size_t k = 0; k + 1 < v->n; k++) {
            if (v->byname[k] >= at)
                v->byname[k]++;
            pos += strcmp(v->steps[v->byname[k]].name, nm) < 0;
        }
        memmove(&v->byname[pos + 1], &v->byname[pos], (v->n - 1 - pos) * sizeof *v->byname);
        v->byname[pos] = (uint32_t)at;
    }
    return s;
}

static const cli_flow_view *sorting; /* qsort has no user data */

static int by_name(const void *a, const void *b)
{
    return strcmp(sorting->steps[*(const uint32_t *)a].name,
                  sorting->steps[*(const uint32_t *)b].name);
}

/* The index by name of the steps read from the file, built once. */
static void index_steps(cli_flow_view *v)
{
    v->byname = malloc((v->n ? v->n : 1) * sizeof *v->byname);
    if (!v->byname)
        return; /* then every lookup walks the steps */
    for (size_t i = 0; i < v->n; i++)
        v->byname[i] = (uint32_t)i;
    sorting = v;
    qsort(v->byname, v->n, sizeof *v->byname, by_name);
    sorting = NULL;
    v->indexed = 1;
}

/* The step of that exact name, or NULL. */
static vstep *lookup(cli_flow_view *v, const char *name)
{
    if (!v->indexed) {
        for (size_t i = 0; i < v->n; i++)
            if (strcmp(v->steps[i].name, name) == 0)
                return &v->steps[i];
        return NULL;
    }
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->steps[v->byname[mid]].name, name);
        if (c == 0)
            return &v->steps[v->byname[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* A step of the loaded flow, added in file order. */
static int read_step(const cbx_flow_step_info *info, void *ud)
{
    cli_flow_view *v = ud;
    vstep *st = add_step(v, v->n, info->name, info->depth);
    if (!st)
        return -1;
    st->continue_on_error = info->continue_on_error;
    st->foreach = info->foreach;
    return 0;
}

cli_flow_view *cli_flow_view_new(const cbx_flow *f, int mode)
{
    cli_flow_view *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->mode = mode;
    if (mode == CLI_VIEW_LIVE && !isatty(STDERR_FILENO))
        v->mode = CLI_VIEW_LOG;
    v->start_ns = cbx_clock_now_ns(NULL);
    if (v->mode == CLI_VIEW_QUIET) /* shows nothing: no steps to follow */
        return v;
    cbx_flow_steps_walk(f, read_step, v); /* out of memory: the steps not read are learnt later */
    index_steps(v);
    return v;
}

void cli_flow_view_free(cli_flow_view *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        free(v->steps[i].name);
        free(v->steps[i].note);
    }
    free(v->steps);
    free(v->byname);
    free(v);
}

/* The line of a step reported by an event: known from the file, a foreach item ("x[3]") folded
 * into its step, or a step learnt now (a sub-flow's), placed after its parent's last line. */
static vstep *find_step(cli_flow_view *v, const char *name)
{
    vstep *s = lookup(v, name);
    if (s)
        return s;
    const char *br = strchr(name, '[');
    if (br) {
        char base[512];
        snprintf(base, sizeof base, "%.*s", (int)(br - name), name);
        if ((s = lookup(v, base)))
            return s;
    }
    const char *dot = strrchr(name, '.');
    size_t at = v->n;
    int depth = 0;
    if (dot) {
        size_t plen = (size_t)(dot - name);
        for (size_t i = 0; i < v->n; i++) {
            const char *pn = v->steps[i].name;
            if (strlen(pn) == plen && strncmp(pn, name, plen) == 0) {
                depth = v->steps[i].depth + 1;
                at = i + 1;
                while (at < v->n && v->steps[at].depth >= depth)
                    at++;
                break;
            }
        }
    }
    return add_step(v, at, name, depth);
}

/* The note, cut to 255 bytes as the line shows it; none for an empty message. */
static void set_note(vstep *s, const char *msg)
{
    free(s->note);
    s->note = msg && msg[0] ? strndup(msg, 255) : NULL;
}

static const char *note_of(const vstep *s)
{
    return s->note ? s->note : "";
}

/* ---- words ----------------------------------------------------------------------------------- */

static const char *state_word(const vstep *s)
{
    switch (s->state) {
    case V_PENDING:
        return "pending";
    case V_RUNNING:
        return "running";
    case V_RETRYING:
        return "retrying";
    case V_SKIPPED:
        return "skipped";
    case V_DONE:
        return "success";
    case V_FAILED:
        break;
    }
    switch (s->status) {
    case CBX_STATUS_TIMEOUT:
        return "timeout";
    case CBX_STATUS_CANCELLED:
        return "cancelled";
    case CBX_STATUS_REJECTED:
        return "refused";
    default:
        return "failed";
    }
}

static const char *state_color(const vstep *s)
{
    if (s->state == V_FAILED && s->status == CBX_STATUS_REJECTED)
        return CLI_MAGENTA;
    if (s->state == V_SKIPPED || s->state == V_PENDING)
        return CLI_DIM;
    return cli_status_color(state_word(s));
}

/* How long the step ran (so far). */
static uint64_t step_ns(const vstep *s, uint64_t now)
{
    if (!s->started)
        return 0;
    return (s->end_ns ? s->end_ns : now) - s->start_ns;
}

/* ---- log lines ------------------------------------------------------------------------------- */

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *c = line; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    fflush(stdout);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

static void log_event(const vstep *s, const cbx_flow_event *ev)
{
    char d[32], att[48] = "";
    cbx_duration_human(step_ns(s, cbx_clock_now_ns(NULL)), d, sizeof d);
    switch (ev->kind) {
    case CBX_FLOW_STEP_STARTED:
        log_line("step %s started", ev->step);
        return;
    case CBX_FLOW_STEP_RETRYING:
        log_line("step %s retrying (attempt %u failed%s%s)", ev->step, ev->attempts,
                 ev->error[0] ? ": " : "", ev->error);
        return;
    case CBX_FLOW_STEP_SKIPPED:
        log_line("step %s skipped: %s", ev->step, ev->error[0] ? ev->error : "not needed");
        return;
    case CBX_FLOW_STEP_FINISHED:
        break;
    }
    if (s->resumed) {
        log_line("step %s succeeded in the run resumed: not run again", ev->step);
        return;
    }
    if (ev->status == CBX_STATUS_SUCCESS) {
        if (s->foreach)
            snprintf(att, sizeof att, " (%u attempts in all)", ev->attempts);
        else if (ev->attempts > 1)
            snprintf(att, sizeof att, " (%u attempts)", ev->attempts);
        log_line("step %s succeeded in %s%s", ev->step, d, att);
        return;
    }
    if (ev->attempts > 1)
        snprintf(att, sizeof att, " after %u attempts%s", ev->attempts,
                 s->foreach ? " in all" : "");
    const char *tail = s->continue_on_error ? " (continue_on_error: the flow goes on)" : "";
    switch (ev->status) {
    case CBX_STATUS_TIMEOUT:
        log_line("step %s timed out in %s%s: %s%s", ev->step, d, att, ev->error, tail);
        break;
    case CBX_STATUS_CANCELLED:
        log_line("step %s cancelled after %s%s", ev->step, d, tail);
        break;
    case CBX_STATUS_REJECTED:
        log_line("step %s refused: %s%s", ev->step, ev->error, tail);
        break;
    default:
        log_line("step %s failed in %s%s: %s%s", ev->step, d, att, ev->error, tail);
        break;
    }
}

/* ---- the live block -------------------------------------------------------------------------- */

static void term_size(int *cols, int *rows)
{
    struct winsize ws;
    *cols = 80;
    *rows = 24;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0) {
        if (ws.ws_col > 0)
            *cols = ws.ws_col;
        if (ws.ws_row > 0)
            *rows = ws.ws_row;
    }
}

/* Text cut to w columns (UTF-8: one column per code point). */
static void put_cut(FILE *f, const char *s, size_t w)
{
    size_t cols = 0, i = 0;
    while (s[i]) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (cols == w)
                break;
            cols++;
        }
        i++;
    }
    fwrite(s, 1, i, f);
}

static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* One step's line, at most cols-1 columns wide so that it never wraps. */
/* A nested step is shown by its own name, indented under its parent. */
static const char *shown_name(const vstep *s)
{
    const char *dot = s->depth ? strrchr(s->name, '.') : NULL;
    return dot ? dot + 1 : s->name;
}

static void draw_step(FILE *f, const vstep *s, size_t name_w, int cols, uint64_t now, int colors)
{
    char left[600], time[32] = "", extra[400] = "";
    snprintf(left, sizeof left, "%*s%-*s  ", 2 + 2 * s->depth, "", (int)name_w - 2 * s->depth,
             shown_name(s));
    if (s->started && !s->resumed)
        cbx_duration_human(step_ns(s, now), time, sizeof time);
    if (s->resumed)
        snprintf(extra, sizeof extra, "resumed: not run again");
    else if (s->state == V_RETRYING)
        snprintf(extra, sizeof extra, "attempt %u failed, retrying%s%s", s->attempts,
                 note_of(s)[0] ? ": " : "", note_of(s));
    else if (s->state == V_FAILED || s->state == V_SKIPPED)
        snprintf(extra, sizeof extra, "%s%s",
                 s->state == V_FAILED && s->continue_on_error ? "continued past: " : "",
                 note_of(s));
    if (s->attempts > 1 && s->state != V_RETRYING) {
        char a[64];
        snprintf(a, sizeof a, "%s%u attempts%s", extra[0] ? "; " : "", s->attempts,
                 s->foreach ? " in all" : "");
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%s", a);
    }
    size_t budget = cols > 1 ? (size_t)cols - 1 : 1;
    size_t used = 0;
    fputs("\033[K", f);
    put_cut(f, left, budget);
    used += text_width(left);
    if (used >= budget)
        return;
    char word[16];
    snprintf(word, sizeof word, "%-9s", state_word(s));
    const char *color = state_color(s);
    if (color && colors)
        fprintf(f, "\033[%sm", color);
    put_cut(f, word, budget - used);
    if (color && colors)
        fputs("\033[0m", f);
    used += text_width(word);
    if (used >= budget)
        return;
    char rest[512];
    snprintf(rest, sizeof rest, " %7s  %s", time, extra);
    size_t rl = strlen(rest);
    while (rl && rest[rl - 1] == ' ')
        rest[--rl] = '\0';
    put_cut(f, rest, budget - used);
}

/* Redraw the block: the cursor goes back to its first line, every line is rewritten, and what
 * is left of a longer block is cleared. A block taller than the terminal shows the running and
 * failed steps and a count of the others. */
static void draw(cli_flow_view *v)
{
    int cols, rows;
    term_size(&cols, &rows);
    int colors = cli_color_ok(stderr);
    uint64_t now = cbx_clock_now_ns(NULL);
    size_t name_w = 4;
    for (size_t i = 0; i < v->n; i++) {
        size_t w = text_width(shown_name(&v->steps[i])) + 2 * (size_t)v->steps[i].depth;
        if (w > name_w)
            name_w = w;
    }
    if (name_w > 40)
        name_w = 40;
    if (v->drawn)
        fprintf(stderr, "\033[%zuA\r", v->drawn);
    size_t max_lines = rows > 3 ? (size_t)rows - 2 : 1, lines = 0;
    int condensed = v->n + 1 > max_lines;
    size_t hidden = 0, hidden_done = 0, hidden_pending = 0;
    for (size_t i = 0; i < v->n; i++) {
        const vstep *s = &v->steps[i];
        int show = !condensed || s->state == V_RUNNING || s->state == V_RETRYING ||
                   (s->state == V_FAILED && !s->continue_on_error);
        if (!show || lines + 1 >= max_lines) {
            hidden++;
            hidden_pending += s->state == V_PENDING;
            hidden_done += s->state != V_PENDING && s->state != V_RUNNING && s->state != V_RETRYING;
            continue;
        }
        draw_step(stderr, s, name_w, cols, now, colors);
        fputc('\n', stderr);
        lines++;
    }
    char el[32], tail[160];
    cbx_duration_human(now - v->start_ns, el, sizeof el);
    snprintf(tail, sizeof tail, "[%u/%u] %s", v->done, v->total ? v->total : (uint32_t)v->n, el);
    if (hidden)
        snprintf(tail + strlen(tail), sizeof tail - strlen(tail),
                 "  (not shown: %zu finished, %zu pending, %zu running)", hidden_done,
                 hidden_pending, hidden - hidden_done - hidden_pending);
    fputs("\033[K", stderr);
    put_cut(stderr, tail, cols > 1 ? (size_t)cols - 1 : 1);
    fputc('\n', stderr);
    lines++;
    fputs("\033[J", stderr);
    fflush(stderr);
    v->drawn = lines;
    v->last_draw_ns = now;
    v->dirty = 0;
}

/* ---- events ---------------------------------------------------------------------------------- */

void cli_flow_view_event(const cbx_flow_event *ev, void *ud)
{
    cli_flow_view *v = ud;
    if (!v || v->mode == CLI_VIEW_QUIET)
        return;
    uint64_t now = cbx_clock_now_ns(NULL);
    v->done = ev->done;
    v->total = ev->total;
    vstep *s = find_step(v, ev->step);
    if (!s)
        return;
    int item = strchr(ev->step, '[') != NULL && strcmp(s->name, ev->step) != 0;
    switch (ev->kind) {
    case CBX_FLOW_STEP_STARTED:
        if (!s->started) {
            s->started = 1;
            s->start_ns = now;
        }
        s->state = V_RUNNING;
        break;
    case CBX_FLOW_STEP_RETRYING:
        s->state = V_RETRYING;
        s->attempts = ev->attempts;
        set_note(s, ev->error);
        break;
    case CBX_FLOW_STEP_SKIPPED:
        if (item)
            break;
        s->state = V_SKIPPED;
        set_note(s, ev->error);
        break;
    case CBX_FLOW_STEP_FINISHED:
        if (item)
            break;
        /* finished without having started: it had succeeded in the run being resumed */
        s->resumed = !s->started && ev->status == CBX_STATUS_SUCCESS;
        s->end_ns = now;
        s->status = ev->status;
        s->attempts = ev->attempts;
        s->state = ev->status == CBX_STATUS_SUCCESS ? V_DONE : V_FAILED;
        set_note(s, ev->error);
        break;
    }
    if (v->mode == CLI_VIEW_LOG && !item) {
        log_event(s, ev);
    } else if (v->mode == CLI_VIEW_LIVE) {
        v->dirty = 1;
        /* at most 20 redraws a second, however many events arrive */
        if (now - v->last_draw_ns >= 50 * CBX_NS_PER_MS)
            draw(v);
    }
}

void cli_flow_view_tick(cli_flow_view *v)
{
    if (v && v->mode == CLI_VIEW_LIVE)
        draw(v);
}

void cli_flow_view_note(cli_flow_view *v, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (v && v->mode == CLI_VIEW_QUIET)
        return;
    if (v && v->mode == CLI_VIEW_LIVE && v->drawn) {
        fprintf(stderr, "\033[%zuA\r\033[J", v->drawn);
        v->drawn = 0;
        log_line("%s", line);
        draw(v);
        return;
    }
    log_line("%s", line);
}

/* ---- the end --------------------------------------------------------------------------------- */

typedef struct tally {
    size_t ok, failed, tolerated, skipped, resumed, other, timeouts, cancelled;
} tally;

/* One top-level step's status word (as the result and the journal have it) in the tally. */
static void count(cli_flow_view *v, tally *t, const char *name, const char *s, int resumed)
{
    if (s && strcmp(s, "success") == 0) {
        t->ok++;
    } else if (s && strcmp(s, "skipped") == 0) {
        t->skipped++;
    } else if (s && (strcmp(s, "failed") == 0 || strcmp(s, "timeout") == 0 ||
                     strcmp(s, "cancelled") == 0 || strcmp(s, "rejected") == 0)) {
        /* the status words of the result, as the journal has them */
        if (s[0] == 't')
            t->timeouts++;
        else if (s[0] == 'c')
            t->cancelled++;
        else
            t->failed++;
        const vstep *vs = lookup(v, name);
        t->tolerated += vs && vs->depth == 0 && vs->continue_on_error;
    } else {
        t->other++;
    }
    t->resumed += resumed;
}

/* The result's records when it has them; else the view's own top-level steps, as their events
 * left them (the same words: a step that finished without having started was resumed, one that
 * never finished is pending). */
static void tally_steps(cli_flow_view *v, const cbx_flow_result *r, tally *t)
{
    if (r->steps) {
        const char *key;
        json_t *st;
        json_object_foreach(r->steps, key, st)
        {
            count(v, t, key, json_string_value(json_object_get(st, "status")),
                  json_is_true(json_object_get(st, "resumed")));
        }
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const vstep *s = &v->steps[i];
        if (s->depth != 0)
            continue;
        const char *word = s->state == V_DONE || s->state == V_FAILED ? cbx_status_name(s->status)
                           : s->state == V_SKIPPED                    ? "skipped"
                                                                      : "pending";
        count(v, t, s->name, word, s->state == V_DONE && s->resumed);
    }
}

void cli_flow_view_end(cli_flow_view *v, const char *flow_name, const cbx_flow_result *r)
{
    if (!v || v->mode == CLI_VIEW_QUIET)
        return;
    if (v->mode == CLI_VIEW_LIVE)
        draw(v);
    tally t = {0};
    tally_steps(v, r, &t);
    char d[32], line[512];
    cbx_duration_human(r->duration_ns, d, sizeof d);
    const char *how = r->status == CBX_STATUS_SUCCESS     ? "succeeded"
                      : r->status == CBX_STATUS_TIMEOUT   ? "timed out"
                      : r->status == CBX_STATUS_CANCELLED ? "was cancelled"
                                                          : "failed";
    int n = snprintf(line, sizeof line, "flow %s %s in %s: %zu step%s succeeded", flow_name, how, d,
                     t.ok, t.ok == 1 ? "" : "s");
    if (t.resumed && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, " (%zu resumed)", t.resumed);
    if (t.failed && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, ", %zu failed", t.failed);
    if (t.timeouts && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, ", %zu timed out", t.timeouts);
    if (t.cancelled && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, ", %zu cancelled", t.cancelled);
    if (t.tolerated && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, " (%zu with continue_on_error)",
                      t.tolerated);
    if (t.skipped && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, ", %zu skipped", t.skipped);
    if (t.other && n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, ", %zu not run", t.other);
    if (v->mode == CLI_VIEW_LIVE && cli_color_ok(stderr)) {
        const char *color = r->status == CBX_STATUS_SUCCESS ? CLI_GREEN : CLI_RED;
        fprintf(stderr, "\033[%sm%s\033[0m\n", color, line);
        fflush(stderr);
    } else {
        log_line("%s", line);
    }
    v->drawn = 0;
}
