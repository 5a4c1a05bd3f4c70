/* The joblog of cbx exec --each: one row per finished job, in GNU parallel's --joblog format,
 * so the tools that read parallel's logs read cbx's; and the read-back that --resume uses.
 *
 * The file is tab-separated with a header line:
 *   Seq Host Starttime JobRuntime Send Receive Exitval Signal Command
 * Seq is the input line's number (from 1), Host ":" (this machine), Starttime seconds since the
 * epoch with milliseconds, JobRuntime seconds ("%10.3f", as parallel pads it), Send 0, Receive
 * the bytes the job wrote (stdout and stderr), Exitval and Signal as the job ended, Command the
 * command line, shell-quoted where an argument needs it. Each row is written and flushed when
 * its job ends, so a run killed at any moment leaves every finished job recorded. */
#ifndef CBX_CLI_JOBLOG_H
#define CBX_CLI_JOBLOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cli_joblog {
    FILE *f; /* NULL: no joblog (writing is then a no-op) */
} cli_joblog;

typedef struct cli_joblog_row {
    uint64_t seq;
    double start_s, runtime_s;
    uint64_t receive;
    int exitval, signal;
    const char *command;
} cli_joblog_row;

/* Open path: appended to when append is non-zero and the file has a header already, else
 * written anew with the header. 0, or -errno (nothing printed). */
int cli_joblog_open(cli_joblog *j, const char *path, int append);
/* Write and flush one row. 0, or -errno. */
int cli_joblog_write(cli_joblog *j, const cli_joblog_row *r);
void cli_joblog_close(cli_joblog *j);

/* The set of jobs a joblog records as done: done[seq] = 1 for every row (only_ok: for every
 * row with Exitval 0 and Signal 0). *done is malloc'd (free it), *n its length; a missing file
 * is an empty set. 0, -errno, or -EINVAL when the file is not a joblog (nothing printed). */
int cli_joblog_read(const char *path, int only_ok, uint8_t **done, size_t *n);

/* Append s to buf as one shell word (quoted with '...' when it holds anything but safe
 * characters). buf grows; returns 0 or -ENOMEM. */
int cli_shell_quote(char **buf, size_t *len, size_t *cap, const char *s);

#endif
