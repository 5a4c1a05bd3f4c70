/* Option parsing for the cbx subcommands, and the value forms options take.
 *
 * Every helper that fails prints one line ("cbx: ...") on stderr and returns a negative value;
 * the caller then exits with CLI_EXIT_USAGE. */
#ifndef CBX_CLI_ARGS_H
#define CBX_CLI_ARGS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/executor.h"

/* One option of a subcommand. */
typedef struct cli_opt {
    const char *name; /* long name without the dashes ("timeout"); NULL ends a table */
    char short_name;  /* 'p', or 0 */
    int has_arg;      /* 1: takes a value (--name VALUE, --name=VALUE, -p VALUE, -pVALUE) */
    int id;           /* > 0, returned by cli_args_next */
} cli_opt;

/* Ids shared by every subcommand's table (subcommands number their own from CLI_OPT_OWN). */
enum {
    CLI_OPT_HELP = 1,
    CLI_OPT_STATE_DIR,
    CLI_OPT_NO_JOURNAL,
    CLI_OPT_JSON,
    CLI_OPT_UTC,
    CLI_OPT_OWN = 16
};

/* The options every subcommand accepts. */
#define CLI_OPTS_COMMON                                                                            \
    {"help", 'h', 0, CLI_OPT_HELP}, {"state-dir", 0, 1, CLI_OPT_STATE_DIR},                        \
        {"no-journal", 0, 0, CLI_OPT_NO_JOURNAL},                                                  \
    {                                                                                              \
        "utc", 0, 0, CLI_OPT_UTC                                                                   \
    }

typedef struct cli_args {
    const char *cmd; /* "exec", "history": for messages */
    int argc;
    char **argv;
    int i; /* the next argument to look at; starts at 1 (argv[0] is the subcommand) */
    const cli_opt *opts;
    int rest;            /* after CLI_ARGS_END: index of the first argument after "--", or argc */
    int dashdash;        /* 1 when "--" was seen */
    const char *cluster; /* inside a cluster of short options ("-qh"): the next character */
    int probe;           /* made in probe mode: cli_args_next ends at once */
} cli_args;

enum {
    CLI_ARGS_END = -1,   /* no more options: see a->rest */
    CLI_ARGS_ERROR = -2, /* a message was printed */
    CLI_ARGS_POSITIONAL = 0,
};

void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv, const cli_opt *opts);

/* The next option: its id (and *val its value, or NULL), CLI_ARGS_POSITIONAL (*val the
 * argument), CLI_ARGS_END, or CLI_ARGS_ERROR (an unknown option, with a suggestion; a missing
 * value). Long names must be given in full. */
int cli_args_next(cli_args *a, const char **val);

/* Probe mode, to learn a subcommand's option table without running it (completion scripts):
 * between cli_args_probe_begin and cli_args_probe_end, the first cli_args_init records its
 * table, and cli_args_next returns CLI_ARGS_ERROR at once without printing, so that the
 * subcommand stops as on bad usage before doing anything. _end returns the table, or NULL. */
void cli_args_probe_begin(void);
const cli_opt *cli_args_probe_end(void);

/* The long name of an option id in a's table ("--timeout"), for messages. */
const char *cli_args_name(const cli_args *a, int id);

/* ---- value forms ------------------------------------------------------------------------- */

/* "cbx: <flag>: expected a duration like 250ms or 5s, got '<text>'" on failure. */
int cli_parse_duration(const char *flag, const char *text, uint64_t *out_ns);
/* A whole number in [min, max]. */
int cli_parse_uint(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out);
/* A rate: "5/s", "600/min", "10" (per second). */
int cli_parse_rate(const char *flag, const char *text, double *per_second);
/* One of a NULL-terminated list of words. */
int cli_parse_choice(const char *flag, const char *text, const char *const *choices);
/* The JSON object text holds, a new reference in *out ("<cmd>: <flag>: expected a JSON object:
 * <the parser's reason>" on failure, *out NULL). */
int cli_parse_object(const char *cmd, const char *flag, const char *text, json_t **out);

/* Read a whole file ("-" = stdin) into a NUL-terminated buffer (*len bytes, NUL not counted),
 * up to the input limit (cbx_yaml_max_bytes()). Returns 0, or -errno (nothing printed): -EFBIG
 * past the limit (an endless pipe or /dev/zero is not read further). */
int cli_read_file(const char *path, char **buf, size_t *len);
/* Why cli_read_file failed, for a message: strerror, or the limit and how to raise it. */
const char *cli_read_error(int r);
/* Set the input limit from CBX_MAX_INPUT (bytes, or with a K, M or G suffix). Returns 0, or
 * -EINVAL after a message when the value is not a size. */
int cli_input_limit_from_env(void);

/* The candidate the word most likely meant: the only one it abbreviates, else the closest (by
 * cbx__edit_distance, core/text.h) within a third of the word's length (2 edits for short
 * words), or NULL. */
const char *cli_suggest(const char *word, const char *const *cands, size_t n);

/* ---- executor parameters ----------------------------------------------------------------- */

/* The value of "-p key=text" for parameter p (NULL when the type has no such parameter):
 * integer, number and boolean text become those JSON types; array and object text is parsed as
 * JSON; string text stays a string; "any" is JSON when it parses, else a string. Text that does
 * not fit the type stays a string, so that the type's validation names the parameter and its
 * expected type; *note then says why ("not valid JSON: ...") or is left "". New reference, or
 * NULL when the text is not UTF-8. */
json_t *cli_param_value(const cbx_param *p, const char *text, size_t len, char *note,
                        size_t note_len);

/* The parameters of a request: --params-json first (object_text, may be NULL), then each
 * "-p key=value" / "-p key=@file" of kv[0..n) over it, typed by the schema params (may be NULL:
 * every value then stays a string). notes (may be NULL) collects, per key, why a value was
 * left a string. Returns 0 and *out (new object), or CLI_ARGS_ERROR after a message (a -p
 * without '=', an unreadable @file, --params-json that is not a JSON object). */
int cli_params_build(const char *cmd, const cbx_param *params, const char *object_text,
                     const char *const *kv, size_t n, json_t **out, json_t *notes);

#endif
