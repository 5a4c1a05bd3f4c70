/* What cbx writes: error lines, JSON, tables, colours and the progress line.
 *
 * Colours only on a terminal, and never when NO_COLOR is set (to anything but "") or TERM is
 * "dumb". The progress line is drawn only when stderr is a terminal. */
#ifndef CBX_CLI_OUTPUT_H
#define CBX_CLI_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One line on stderr: "cbx: " + the message + "\n". */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "object", "array", "string", ... */
const char *cli_json_kind(const json_t *v);

/* Print v (any JSON value) indented, with a newline. Returns 0 or -1 (write error). */
int cli_print_json(FILE *f, const json_t *v);

/* A JSON array printed item by item as it comes, the same text cli_print_json prints for the
 * whole array: begin, add each item (0 or -1), end (0 or -1, for any write error). */
typedef struct cli_json_list {
    FILE *f;
    size_t n;
    int failed;
} cli_json_list;
void cli_json_list_begin(cli_json_list *l, FILE *f);
int cli_json_list_add(cli_json_list *l, const json_t *item);
int cli_json_list_end(cli_json_list *l);

/* 1 when colours may be written to f. */
int cli_color_ok(FILE *f);

/* ANSI colours (SGR parameters); use through cli_paint or a table cell. */
#define CLI_GREEN   "32"
#define CLI_RED     "31"
#define CLI_YELLOW  "33"
#define CLI_MAGENTA "35"
#define CLI_CYAN    "36"
#define CLI_DIM     "2"
#define CLI_BOLD    "1"

/* The colour of a status or state name ("success", "failed", "open", ...); NULL for none. */
const char *cli_status_color(const char *name);

/* Write s to f, in colour when f allows it (color NULL: plain). */
void cli_paint(FILE *f, const char *color, const char *s);

/* Write exactly len bytes (output captured from a command). Returns 0 or -errno. */
int cli_write_all(int fd, const void *buf, size_t len);

/* ---- tables ---------------------------------------------------------------------------------- */

typedef struct cli_table cli_table;

/* A table with ncols columns and these headings (borrowed, static). NULL when out of memory. */
cli_table *cli_table_new(size_t ncols, const char *const *headings);
void cli_table_free(cli_table *t);
/* Start a row; then fill its cells with cli_table_cell / _cellf (copied). */
void cli_table_row(cli_table *t);
void cli_table_cell(cli_table *t, const char *text, const char *color);
void cli_table_cellf(cli_table *t, const char *color, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Right-align a column (numbers). */
void cli_table_align_right(cli_table *t, size_t col);
/* Print: headings (bold on a terminal), then the rows, columns padded to fit; on a terminal the
 * last column is cut to the terminal's width. */
void cli_table_print(cli_table *t, FILE *f);

/* ---- formatting -------------------------------------------------------------------------- */

/* Wall-clock ms as local "YYYY-MM-DD HH:MM:SS". Returns buf. */
const char *cli_format_time(uint64_t ms, char *buf, size_t len);
/* Times from now on in UTC, ISO-8601 ("2026-12-06T21:48:05Z"), instead of local time (--utc). */
void cli_time_utc(int on);
/* A duration in ms (a JSON number, may be NULL) as "260ms", "2.5s"; "-" when absent. */
const char *cli_format_ms(const json_t *ms, char *buf, size_t len);
/* How many trailing characters of the ids under key in rows (an array of objects) tell them
 * apart: at least min, at most the whole id. Ids are time-ordered UUIDs whose tails are random,
 * so the tail is what a person types (history show, --resume accept it). */
size_t cli_id_tail_len(const json_t *rows, const char *key, size_t min);
/* The same over n ids. */
size_t cli_id_tail_len_of(const char *const *ids, size_t n, size_t min);
/* Route the library's log lines to stderr ("cbx: component: level: message"): warnings and
 * errors, and with verbose everything down to debug. */
void cli_log_install(int verbose);
/* At the end of a command that recorded spans (cbx/trace.h): send what is queued, waiting at
 * most the export timeout, and say on stderr how many spans were dropped, if any. */
void cli_trace_finish(void);
/* The last n characters of id (all of it when shorter). */
const char *cli_id_tail(const char *id, size_t n);
/* 1 when given is a prefix or a suffix of id (what history show, show and --resume accept). */
int cli_id_abbreviates(const char *id, const char *given);
/* Wall-clock ms now. */
uint64_t cli_now_ms(void);

/* ---- the progress line ----------------------------------------------------------------------- */

typedef struct cli_progress {
    int on;            /* stderr is a terminal and the caller wants it */
    uint64_t start_ns; /* monotonic */
    int drawn;         /* something is on the line */
} cli_progress;

void cli_progress_start(cli_progress *p, int want);
/* Redraw: "[done/total] ok N  failed N  refused N  12.3s". */
void cli_progress_draw(cli_progress *p, uint64_t done, uint64_t total, uint64_t ok, uint64_t failed,
                       uint64_t refused);
/* Redraw: "<text>  12.3s". */
void cli_progress_text(cli_progress *p, const char *text);
/* Time since cli_progress_start. */
uint64_t cli_progress_elapsed_ns(const cli_progress *p);
/* Clear the line (before other output, and at the end). */
void cli_progress_clear(cli_progress *p);

#endif
