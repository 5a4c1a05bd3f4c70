/* cbx exec --each: one execution per input line, xargs- and GNU parallel-style, with
 * placeholders, a joblog and --resume (cli/exec_each.c). */
#ifndef CBX_CLI_EXEC_EACH_H
#define CBX_CLI_EXEC_EACH_H

#include <jansson.h>
#include <stdint.h>

#include "cbx/breaker.h"
#include "cbx/policy.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"
#include "cli.h"

typedef struct cli_each_opts {
    const char *type;   /* the executor type ("command" for -- CMD) */
    int cmd_mode;       /* -- CMD: write what each command wrote; no {} appends the line */
    const char *input;  /* --arg-file FILE; NULL: stdin */
    int null_sep;       /* -0: items end with NUL, not newline */
    uint64_t jobs;      /* at a time (-j, --parallel) */
    const char *joblog; /* --joblog FILE, or NULL */
    int resume;         /* 1 --resume: skip every job in the joblog; 2 --resume-failed: skip
                           the jobs that succeeded there */
    int json, quiet;
    const char *breaker; /* --breaker NAME, or NULL */
    const cbx_breaker_opts *breaker_opts;
    int tmpdir; /* CBX_TMPDIR_*: --tmpdir, --keep-tmpdir */
    int tag;    /* --tag: each line of output after the item and a TAB */
    int group;  /* --group: each job's output whole when it ends (else line by line) */
} cli_each_opts;

/* Run the request (params: a template whose string values hold the placeholders) once per
 * input item. Returns the exit code (as --repeat's: 0 when every job succeeded). */
int cli_exec_each(const cli_each_opts *o, cli_ctx *ctx, cbx_registry *reg, cbx_policy *policy,
                  const json_t *params);

/* Defined in exec_output.c (the first two) and cmd_exec.c, shared with exec_each.c. */
/* A field of a command's result: from the outputs, else from the last attempt's metadata. */
const json_t *cli_exec_cmd_field(const cbx_result *r, const char *key);
/* The exit code one result gives cbx exec (a command's own code with -- CMD). */
int cli_exec_result_code(const cbx_result *r, int cmd_mode);
/* The policy's fallback.cache.key expanded against {executor, params} (*out malloc'd; NULL when
 * the policy has none). 0, or an exit code after saying why on stderr. */
int cli_exec_fallback_key(const char *type, const cbx_policy *policy, const json_t *params,
                          char **out);

#endif
