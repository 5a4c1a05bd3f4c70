/* Error lines, JSON, tables, colours and the progress line. */
#include "output.h"

#include "cbx/clock.h"
#include "cbx/log.h"
#include "cbx/trace.h"
#include "cbx/units.h"
#include "core/text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

void cli_err(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* one line, whatever the message holds */
    for (char *c = line; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    fflush(stdout);
    fprintf(stderr, "cbx: %s\n", line);
    fflush(stderr);
}

const char *cli_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

int cli_print_json(FILE *f, const json_t *v)
{
    /* 9 significant digits: 0.1 reads 0.1, a duration 13.918297 ms keeps its microseconds */
    if (json_dumpf(v, f, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9)) < 0)
        return -1;
    fputc('\n', f);
    return fflush(f) == 0 ? 0 : -1;
}

void cli_json_list_begin(cli_json_list *l, FILE *f)
{
    *l = (cli_json_list){.f = f};
}

/* An item as json_dumpf writes it one level down in an indented array: its own indented text,
 * every line two spaces further in (a string holds no raw newline). */
int cli_json_list_add(cli_json_list *l, const json_t *item)
{
    char *text = json_dumps(item, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
    if (!text) {
        l->failed = 1;
        return -1;
    }
    fputs(l->n++ ? ",\n  " : "[\n  ", l->f);
    for (const char *p = text, *nl; *p; p = nl + 1) {
        if (!(nl = strchr(p, '\n'))) {
            fputs(p, l->f);
            break;
        }
        fwrite(p, 1, (size_t)(nl - p + 1), l->f);
        fputs("  ", l->f);
    }
    free(text);
    return ferror(l->f) ? (l->failed = 1, -1) : 0;
}

int cli_json_list_end(cli_json_list *l)
{
    fputs(l->n ? "\n]\n" : "[]\n", l->f);
    return fflush(l->f) == 0 && !l->failed && !ferror(l->f) ? 0 : -1;
}

int cli_color_ok(FILE *f)
{
    const char *no = getenv("NO_COLOR");
    if (no && no[0])
        return 0;
    const char *term = getenv("TERM");
    if (term && strcmp(term, "dumb") == 0)
        return 0;
    return isatty(fileno(f));
}

const char *cli_status_color(const char *name)
{
    static const struct {
        const char *name, *color;
    } map[] = {
        {"success", CLI_GREEN},    {"closed", CLI_GREEN},     {"failed", CLI_RED},
        {"open", CLI_RED},         {"forced_open", CLI_RED},  {"timeout", CLI_YELLOW},
        {"half_open", CLI_YELLOW}, {"rejected", CLI_MAGENTA}, {"cancelled", CLI_DIM},
        {"running", CLI_CYAN},     {"pending", CLI_CYAN},     {"retrying", CLI_CYAN},
        {"abandoned", CLI_YELLOW},
    };
    for (size_t i = 0; name && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, name) == 0)
            return map[i].color;
    return NULL;
}

void cli_paint(FILE *f, const char *color, const char *s)
{
    if (color && cli_color_ok(f))
        fprintf(f, "\033[%sm%s\033[0m", color, s);
    else
        fputs(s, f);
}

int cli_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- tables ---------------------------------------------------------------------------------- */

typedef struct cell {
    char *text;
    const char *color;
} cell;

struct cli_table {
    size_t ncols;
    const char *const *headings;
    cell *cells; /* rows * ncols */
    size_t rows, cap_rows;
    size_t col; /* next cell of the current row */
    unsigned char *right;
};

cli_table *cli_table_new(size_t ncols, const char *const *headings)
{
    cli_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->headings = headings;
    t->right = calloc(ncols, 1);
    if (!t->right) {
        free(t);
        return NULL;
    }
    return t;
}

void cli_table_free(cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i].text);
    free(t->cells);
    free(t->right);
    free(t);
}

void cli_table_row(cli_table *t)
{
    if (t->rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
        cell *c = realloc(t->cells, cap * t->ncols * sizeof *c);
        if (!c)
            return;
        t->cells = c;
        t->cap_rows = cap;
    }
    memset(&t->cells[t->rows * t->ncols], 0, t->ncols * sizeof *t->cells);
    t->rows++;
    t->col = 0;
}

void cli_table_cell(cli_table *t, const char *text, const char *color)
{
    if (!t->rows || t->col >= t->ncols)
        return;
    cell *c = &t->cells[(t->rows - 1) * t->ncols + t->col++];
    c->text = strdup(text ? text : "");
    c->color = color;
}

void cli_table_cellf(cli_table *t, const char *color, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cli_table_cell(t, buf, color);
}

void cli_table_align_right(cli_table *t, size_t col)
{
    if (col < t->ncols)
        t->right[col] = 1;
}

/* Display width of UTF-8 text: one column per code point (no wide characters in our tables). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; s && *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* The byte length of the first w columns of s. */
static size_t prefix_bytes(const char *s, size_t w)
{
    size_t i = 0, cols = 0;
    while (s[i]) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (cols == w)
                break;
            cols++;
        }
        i++;
    }
    return i;
}

static void put_cell(FILE *f, const char *text, const char *color, size_t pad_to, int right,
                     int last, size_t max_w, int colors)
{
    size_t w = width(text);
    size_t bytes = strlen(text);
    if (last && max_w && w > max_w) {
        bytes = prefix_bytes(text, max_w > 1 ? max_w - 1 : max_w);
        w = max_w;
    }
    if (right)
        for (size_t i = w; i < pad_to; i++)
            fputc(' ', f);
    if (color && colors)
        fprintf(f, "\033[%sm", color);
    fwrite(text, 1, bytes, f);
    if (bytes < strlen(text))
        fputs("\u2026", f);
    if (color && colors)
        fputs("\033[0m", f);
    if (!right && !last)
        for (size_t i = w; i < pad_to; i++)
            fputc(' ', f);
}

void cli_table_print(cli_table *t, FILE *f)
{
    size_t *w = calloc(t->ncols, sizeof *w);
    if (!w)
        return;
    for (size_t c = 0; c < t->ncols; c++)
        w[c] = width(t->headings[c]);
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t cw = width(t->cells[r * t->ncols + c].text);
            if (cw > w[c])
                w[c] = cw;
        }
    int colors = cli_color_ok(f);
    size_t last_w = 0;
    if (isatty(fileno(f))) {
        struct winsize ws;
        if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
            size_t used = 0;
            for (size_t c = 0; c + 1 < t->ncols; c++)
                used += w[c] + 2;
            last_w = ws.ws_col > used + 8 ? ws.ws_col - used : 8;
        }
    }
    for (size_t c = 0; c < t->ncols; c++) {
        put_cell(f, t->headings[c], CLI_BOLD, w[c], t->right[c], c + 1 == t->ncols, last_w, colors);
        fputs(c + 1 == t->ncols ? "\n" : "  ", f);
    }
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            cell *x = &t->cells[r * t->ncols + c];
            put_cell(f, x->text ? x->text : "", x->color, w[c], t->right[c], c + 1 == t->ncols,
                     last_w, colors);
            fputs(c + 1 == t->ncols ? "\n" : "  ", f);
        }
    free(w);
    fflush(f);
}

/* ---- formatting -------------------------------------------------------------------------- */

static int time_utc;

void cli_time_utc(int on)
{
    time_utc = on;
}

const char *cli_format_time(uint64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    int ok = ms && (time_utc ? gmtime_r(&s, &tm) : localtime_r(&s, &tm)) &&
             strftime(buf, len, time_utc ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm);
    if (!ok)
        snprintf(buf, len, "-");
    return buf;
}

const char *cli_format_ms(const json_t *ms, char *buf, size_t len)
{
    if (!json_is_number(ms)) {
        snprintf(buf, len, "-");
        return buf;
    }
    double v = json_number_value(ms);
    return cbx_duration_human(v > 0 ? (uint64_t)(v * 1e6) : 0, buf, (unsigned)len);
}

uint64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the progress line ----------------------------------------------------------------------- */

void cli_progress_start(cli_progress *p, int want)
{
    p->on = want && isatty(STDERR_FILENO);
    p->start_ns = cbx_clock_now_ns(NULL);
    p->drawn = 0;
}

void cli_progress_draw(cli_progress *p, uint64_t done, uint64_t total, uint64_t ok, uint64_t failed,
                       uint64_t refused)
{
    if (!p->on)
        return;
    char el[32];
    cbx_duration_human(cbx_clock_now_ns(NULL) - p->start_ns, el, sizeof el);
    int colors = cli_color_ok(stderr);
    fprintf(stderr, "\r\033[K[%llu/%llu] ", (unsigned long long)done, (unsigned long long)total);
    char n[48];
    snprintf(n, sizeof n, "ok %llu", (unsigned long long)ok);
    fprintf(stderr, colors ? "\033[" CLI_GREEN "m%s\033[0m" : "%s", n);
    snprintf(n, sizeof n, "failed %llu", (unsigned long long)failed);
    fprintf(stderr, colors && failed ? "  \033[" CLI_RED "m%s\033[0m" : "  %s", n);
    snprintf(n, sizeof n, "refused %llu", (unsigned long long)refused);
    fprintf(stderr, colors && refused ? "  \033[" CLI_MAGENTA "m%s\033[0m" : "  %s", n);
    fprintf(stderr, "  %s", el);
    fflush(stderr);
    p->drawn = 1;
}

void cli_progress_text(cli_progress *p, const char *text)
{
    if (!p->on)
        return;
    char el[32];
    cbx_duration_human(cli_progress_elapsed_ns(p), el, sizeof el);
    fprintf(stderr, "\r\033[K%s  %s", text, el);
    fflush(stderr);
    p->drawn = 1;
}

uint64_t cli_progress_elapsed_ns(const cli_progress *p)
{
    return cbx_clock_now_ns(NULL) - p->start_ns;
}

void cli_progress_clear(cli_progress *p)
{
    if (!p->on || !p->drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = 0;
}

const char *cli_id_tail(const char *id, size_t n)
{
    size_t len = strlen(id);
    return len > n ? id + len - n : id;
}

int cli_id_abbreviates(const char *id, const char *given)
{
    size_t n = strlen(given), len = strlen(id);
    return strncmp(id, given, n) == 0 || (n <= len && strcmp(id + len - n, given) == 0);
}

size_t cli_id_tail_len_of(const char *const *ids, size_t n, size_t min)
{
    size_t longest = 0;
    for (size_t i = 0; i < n; i++)
        if (strlen(ids[i]) > longest)
            longest = strlen(ids[i]);
    size_t want = min;
    const char **cut = n ? calloc(n, sizeof *cut) : NULL;
    if (n && !cut)
        return longest;
    for (; cut && want < longest; want++) {
        for (size_t i = 0; i < n; i++)
            cut[i] = cli_id_tail(ids[i], want);
        qsort(cut, n, sizeof *cut, cbx__cmp_strings);
        size_t i = 1;
        while (i < n && strcmp(cut[i - 1], cut[i]) != 0)
            i++;
        if (i >= n)
            break;
    }
    free(cut);
    return want;
}

size_t cli_id_tail_len(const json_t *rows, const char *key, size_t min)
{
    size_t n = json_array_size(rows);
    const char **ids = n ? calloc(n, sizeof *ids) : NULL;
    if (n && !ids)
        return 36;
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(rows, i), key));
        ids[i] = id ? id : "";
    }
    size_t want = cli_id_tail_len_of(ids, n, min);
    free(ids);
    return want;
}

static void log_line(cbx_log_level level, const char *component, const char *msg, void *ud)
{
    (void)ud;
    cli_err("%s: %s: %s", component, cbx_log_level_name(level), msg);
}

void cli_log_install(int verbose)
{
    cbx_log_set(log_line, verbose ? CBX_LOG_DEBUG : CBX_LOG_WARN, NULL);
}

void cli_trace_finish(void)
{
    cbx_trace_stats st;
    cbx_trace_stats_get(&st);
    if (!st.recorded)
        return;
    cli_log_install(0); /* the drop report is a warning, whatever the command installed */
    cbx_trace_shutdown(0);
}
