/* What cbx exec's files share (exec_policy.c: the options and the policy built from them;
 * exec_output.c: results printed and their exit codes; cmd_exec.c: the run loop). */
#ifndef CBX_CLI_EXEC_CLI_H
#define CBX_CLI_EXEC_CLI_H

#include "cli.h"
#include "exec_chunks.h"
#include "exec_each.h"
#include "output.h"

#include "cbx/breaker_store.h"
#include "cbx/policy.h"
#include "cbx/runtime.h"

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

/* The policy flags that write a policy-block key (flag_keys in exec_policy.c). */
#define N_FLAG_KEYS 11

typedef struct exec_cfg {
    const char *type;
    char **cmd; /* after "--"; NULL-terminated; NULL when no "--" */
    int ncmd;
    const char **kv;
    size_t n_kv;
    const char *params_json;
    const char *flag_val[N_FLAG_KEYS]; /* the text given to each policy flag, or NULL */
    const char *policy_file, *policy_json;
    const char *breaker;
    const char *rate_key; /* --rate-key: the host-wide limiter's name */
    uint64_t breaker_failures, breaker_open_ns, breaker_probes;
    int breaker_given; /* BREAKER_GIVEN_* bits: the --breaker-* flags on the command line */
    int json, quiet, verbose;
    int journal_required; /* --journal-required */
    int tmpdir;           /* CBX_TMPDIR_*: --tmpdir, --keep-tmpdir */
    uint64_t repeat, parallel;
    uint64_t max_attempts; /* of the policy: 1 without retries */
    uint64_t stdin_max;    /* --stdin-max */
    int tty;               /* -- CMD on a terminal: on a pty, ours in raw mode while it runs */
    int stream; /* -- CMD run once: its stdout and stderr pass through as they come (chunks) */
    int tag;    /* --tag: each line of output after the run's number and a TAB */
    int group;  /* --group: each run's output whole when it ends */
    int each;   /* --each (or --arg-file): the options below, in each_opts */
    cli_each_opts each_opts;
    cli_types_src src;
    const char *remote;        /* --remote URL: run on a worker (cbx/dist.h) */
    const char *remote_queue;  /* --queue */
    uint64_t remote_wait_ns;   /* --remote-wait; 0 = until the result comes */
    const char *remote_result; /* --remote-result ID: the stored result of an earlier job */
} exec_cfg;

/* How runs ended, as the summaries count them. */
typedef struct exec_counts {
    uint64_t ok, failed, timeouts, breaker_open, refused, cancelled, invalid, fallbacks;
} exec_counts;

/* Count one result: a success or a fallback's answer is ok (the latter also in fallbacks); a
 * refusal by a breaker, by bad parameters or by anything else apart. */
void exec_counts_add(exec_counts *c, const cbx_result *r);

typedef struct run_state {
    const exec_cfg *cfg;
    cbx_runtime *rt;
    uv_loop_t *loop;
    const cbx_request *req;
    uint64_t submitted, done;
    exec_counts n;
    uint64_t *lat_ns; /* durations of the runs that ran */
    uint64_t n_lat;
    cbx_execution *current; /* the last one submitted, until it is done */
    cbx_result first;       /* N = 1: the result itself (references held) */
    int have_first;
    json_t *all;              /* --json with --repeat: every result */
    exec_stream first_stream; /* the single run's chunks (taken from its slot) */
    int chunks;               /* register on_chunk: chunks are printed or kept */
    char last_error[512];     /* the last failure's error line */
    int stopping;             /* a signal arrived: submit no more */
    int signals;
    cli_progress progress;
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
} run_state;

/* Parse cbx exec's options. Returns 0, -1 after --help, or an exit code. */
int exec_parse(cli_ctx *ctx, int argc, char **argv, exec_cfg *c);

/* The policy: the policy block (--policy, --policy-json) with the flags written over its keys.
 * Returns 0 and *out, or an exit code after a message that names the flag. */
int exec_build_policy(exec_cfg *c, cbx_breaker_store *rate_store, cbx_policy **out);
/* The policy block alone (what exec_build_policy parses): 0 and *out (new reference), or an
 * exit code after a message. */
int exec_policy_block(const exec_cfg *c, json_t **out);
/* exec_remote.c: --remote (params already hold a -- CMD's argv): the execution queued for the
 * workers, its result awaited, printed as a local one's and journaled here (unless --no-journal).
 * Returns the exit code. */
int exec_remote(exec_cfg *c, cli_ctx *ctx, const cbx_registry *reg, json_t *params);
/* --remote-result ID: the result of a job queued before (its submitter gave up waiting), printed
 * and journaled as exec_remote does; waits --remote-wait for it (none: only looks). */
int exec_remote_result(exec_cfg *c, cli_ctx *ctx, const cbx_registry *reg);

int exec_is_breaker_refusal(int rc);

/* -v: one line per retry, as it is decided. */
void exec_on_retry_verbose(cbx_execution *ex, uint32_t attempt, uint64_t delay_ns,
                           const char *error, void *ud);

/* -v: how each attempt of a result ended, and what the breaker and the fallback decided. */
void exec_verbose_result(const cbx_result *res);

/* The exit code of one result, and its line on stderr. st: its chunks (NULL: none taken). */
int exec_finish_one(const exec_cfg *c, const cbx_result *r, exec_stream *st);

/* --repeat: the summary, and the exit code of the first kind of trouble. */
int exec_finish_many(run_state *s, uint64_t elapsed_ns);

/* The one-line message for a request the runtime refused as invalid. */
void exec_report_invalid(const exec_cfg *c, const cbx_registry *reg, const cbx_diag *d,
                         const json_t *params, const json_t *notes);

#endif
