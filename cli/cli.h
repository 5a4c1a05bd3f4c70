/* The cbx command line: exit codes, the state every subcommand shares, and the subcommands.
 *
 * cli/ is the only part of cbx that writes to a terminal: the library reports through return
 * codes and cbx_err, and the subcommands turn those into one-line messages and exit codes. */
#ifndef CBX_CLI_H
#define CBX_CLI_H

#include "cbx/journal.h"
#include "cbx/registry.h"

#include <stddef.h>
#include <stdio.h>

/* Exit codes, the same for every subcommand (docs/cli.md). */
enum {
    CLI_EXIT_OK = 0,            /* success, or a fallback answered */
    CLI_EXIT_FAILED = 1,        /* the work failed; a query found nothing */
    CLI_EXIT_USAGE = 2,         /* bad usage or bad input: nothing ran */
    CLI_EXIT_INTERNAL = 70,     /* EX_SOFTWARE: cbx itself failed (journal, memory, ...) */
    CLI_EXIT_JOURNAL = 74,      /* EX_IOERR: --journal-required and a record was not written */
    CLI_EXIT_BREAKER_OPEN = 75, /* EX_TEMPFAIL: an open breaker refused it; nothing ran */
    CLI_EXIT_REFUSED = 76,      /* refused otherwise: rate limit, bulkhead, queue */
    CLI_EXIT_TIMEOUT = 124,     /* timed out, as timeout(1) */
    CLI_EXIT_CANCELLED = 130,   /* cancelled by SIGINT (or SIGTERM) */
};

/* The text of the exit-code section every --help ends with. */
extern const char cli_exit_codes_help[];

/* What the global options set; shared by every subcommand. */
typedef struct cli_ctx {
    int no_journal;        /* --no-journal: run without writing the journal */
    const char *state_dir; /* --state-dir: also exported as CBX_STATE_DIR */
    int reads_only;        /* the command only reads state (history, stats, runs, show...): its
                              state directory may be another user's (see cli_set_state_dir) */
} cli_ctx;

/* A subcommand: argv[0] is its name. Returns the process exit code. */
typedef int (*cli_cmd_fn)(cli_ctx *ctx, int argc, char **argv);

int cli_cmd_exec(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_types(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_history(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_breaker(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_validate(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_run(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_runs(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_show(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_graph(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_completion(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_workflow(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_worker(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_serve(cli_ctx *ctx, int argc, char **argv);

/* The table of subcommands (cli/main.c), in the order of 'cbx --help'. */
typedef struct cli_cmd {
    const char *name;
    cli_cmd_fn fn;
    const char *summary; /* one line, lower case, no period */
} cli_cmd;
extern const cli_cmd cli_commands[];
extern const size_t cli_n_commands;

/* cbx's own help ('cbx --help') on f. */
void cli_usage(FILE *f);

/* The --help text of c (NULL: cbx's own), as the command prints it. Returns a malloc'd string,
 * or NULL (no memory, no temporary file). */
char *cli_help_text(const cli_cmd *c);

/* The option table of c's parser, which c reports when run in probe mode (cli/args.h), or
 * NULL when c has none. The table is static: never freed. */
const struct cli_opt *cli_opt_table(const cli_cmd *c);

/* The manual page of c (NULL: cbx(1)) in roff, made from its --help text (cli/man.c). Returns
 * 0, or CLI_EXIT_INTERNAL after a message. */
int cli_man_page(FILE *out, const cli_cmd *c);
/* cbx.1 and cbx-COMMAND.1 of every command into dir (made when missing). */
int cli_man_dir(const char *dir);

/* The journal (cli/journal_cli.c). Retention and the record cap come from the environment:
 * CBX_JOURNAL_MAX_SIZE, CBX_JOURNAL_MAX_RECORD (sizes: 256M, 2G, none), CBX_JOURNAL_MAX_AGE
 * (a duration, or days: 30d; none), CBX_JOURNAL_MAX_EXECUTIONS. */
struct cbx_journal;
struct cbx_journal_opts;
/* Fill *o from the environment. Returns 0, or CLI_EXIT_USAGE after a message. */
int cli_journal_opts(struct cbx_journal_opts *o);
/* Open the journal (read_only for queries: a missing journal is then made, as a writer would).
 * Returns 0, or an exit code after a one-line message prefixed with cmd. */
int cli_journal_open(const char *cmd, int read_only, struct cbx_journal **j);
/* The same for a writer that goes on while SQLite opens the database (open_in_background): the
 * directory and the file are checked here; a failure of the rest is said by cli_journal_finish. */
int cli_journal_open_writer(const char *cmd, struct cbx_journal **j);
/* Commit what is pending; when writes of this handle could not be made, say so on stderr (one
 * line: the open's error, as cli_journal_open says it, when it was opened in the background and
 * that failed) and return 1, else 0. j may be NULL. Call before cbx_journal_close. */
int cli_journal_finish(const char *cmd, struct cbx_journal *j);
/* One line on stderr when the journal's loss ledger records missing writes. */
void cli_journal_note_losses(const char *cmd, struct cbx_journal *j);

/* Handle --state-dir (exports CBX_STATE_DIR). Returns 0, or CLI_EXIT_USAGE after a message. */
int cli_set_state_dir(cli_ctx *ctx, const char *dir);

/* Apply one of the options every subcommand takes besides --help (CLI_OPT_STATE_DIR,
 * CLI_OPT_NO_JOURNAL, CLI_OPT_JSON: *json = 1) with its value. Returns 0, or CLI_EXIT_USAGE
 * after a message. */
int cli_common_option(cli_ctx *ctx, int id, const char *val, int *json);

/* Extra executor types: plugin directories and Lua files. Both lists are borrowed. */
typedef struct cli_types_src {
    const char *plugin_paths[16]; /* --plugin-path values (colon-separated dirs or .so files) */
    size_t n_plugin_paths;
    const char *lua_files[64]; /* --lua values */
    size_t n_lua_files;
} cli_types_src;

/* A registry with the built-in types, then the plugins of $CBX_PLUGIN_PATH and of src, then the
 * Lua types of $CBX_LUA_PATH and of src. Returns 0 and *out, or an exit code after printing the
 * one-line error (CLI_EXIT_USAGE for an unreadable plugin, an ABI mismatch or a bad Lua file). */
int cli_registry_open(const cli_types_src *src, cbx_registry **out);

/* --record DIR / --replay DIR (cassette_opts.c): checks DIR (made for --record) and sets the
 * variable the model executors read. 0, or CLI_EXIT_USAGE after a message naming flag. */
int cli_cassette_option(const char *flag, const char *dir, int replay);

/* The store of named breakers (breaker_home.c): the host-wide one, or the cluster one when
 * CBX_BREAKER_STORE is 'nats' or a nats:// URL. Returns what the store's constructor returns
 * (CBX_EINVAL_CONFIG for a value it cannot take), with err filled. */
struct cbx_breaker_store;
int cli_breaker_store_open(struct cbx_breaker_store **out, cbx_err *err);
/* For the commands whose runtime keeps breakers of its own unless told (cbx run, cbx workflow on
 * the journal): the store CBX_BREAKER_STORE names when it is set (so that keyed breakers and
 * rate_limit.key are shared), else *out NULL. 0, or CLI_EXIT_USAGE after a line naming cmd. */
int cli_breaker_store_chosen(const char *cmd, struct cbx_breaker_store **out);

/* The publisher of workflow's events (events_home.c) when CBX_EVENTS is 'nats' or a nats://
 * URL, else *out = NULL. 0, or a CLI_EXIT_* code after a message naming cmd. */
struct cbx_workflow_events;
int cli_workflow_events_open(const char *cmd, const char *workflow,
                             struct cbx_workflow_events **out);

/* The closest name to word among the registry's types, or NULL when none is close. */
const char *cli_suggest_type(const cbx_registry *r, const char *word);

/* The view of a running flow (cli/flow_view.c), on stderr: CLI_VIEW_LIVE redraws one line per
 * step in place (it falls back to CLI_VIEW_LOG when stderr is not a terminal), CLI_VIEW_LOG
 * writes a line per event ("step fetch succeeded in 120ms (2 attempts)"), CLI_VIEW_QUIET
 * nothing. */
enum { CLI_VIEW_QUIET, CLI_VIEW_LOG, CLI_VIEW_LIVE };
typedef struct cli_flow_view cli_flow_view;
struct cbx_flow_event;
struct cbx_flow_result;
struct cbx_flow;
/* The steps are read from the loaded flow (borrowed during the call), in file order. NULL: no
 * memory. */
cli_flow_view *cli_flow_view_new(const struct cbx_flow *f, int mode);
void cli_flow_view_free(cli_flow_view *v);
/* A cbx_flow_event_fn: ud is the view. */
void cli_flow_view_event(const struct cbx_flow_event *ev, void *ud);
/* Redraw the live block (elapsed times); a no-op otherwise. */
void cli_flow_view_tick(cli_flow_view *v);
/* One line above the live block (or a plain line). */
void cli_flow_view_note(cli_flow_view *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The last redraw and the summary line ("flow x succeeded in 1.2s: 3 steps succeeded, ..."):
 * the steps counted from r->steps' records, or with r->steps NULL from the events the view saw. */
void cli_flow_view_end(cli_flow_view *v, const char *flow_name, const struct cbx_flow_result *r);

/* A run id, or a unique prefix or suffix of one (time-ordered ids share their first digits): its
 * row from the list (new reference) in *row. Returns 0, -ENOENT, -EEXIST (ambiguous) or another
 * negative code (err filled). In flow_cli.c. */
int flow_resolve_run(cbx_journal *j, const char *id, json_t **row, cbx_err *err);

#endif
