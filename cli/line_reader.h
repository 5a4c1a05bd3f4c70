/* Items (lines, or NUL-ended) of cbx exec --each's input, without stopping the event loop.
 *
 * A pipe or a terminal is read on the loop (libuv), so that jobs go on ending, writing their
 * output and seeing ^C while a slow producer has nothing to say; a regular file (or anything
 * libuv cannot watch) is read with plain reads, which never wait long. At most about 64 KiB
 * is read ahead of the jobs. */
#ifndef CBX_CLI_LINE_READER_H
#define CBX_CLI_LINE_READER_H

#include <stddef.h>
#include <stdio.h>
#include <uv.h>

typedef struct cli_line_reader {
    FILE *f;   /* borrowed */
    int delim; /* '\n' or '\0' */
    int async; /* read on the loop through h */
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } h;
    int reading, eof, error; /* error: a negative code from the read */
    char *buf;               /* read ahead: [off, len) not yet handed out */
    size_t off, len, cap;
    char *line; /* the last item handed out, NUL-terminated */
    size_t line_cap;
} cli_line_reader;

/* Read items from f (borrowed; stdin or an opened file) on loop. 0, or a negative code. */
int cli_line_reader_init(cli_line_reader *r, uv_loop_t *loop, FILE *f, int delim);
/* 1 and *item (the item without its delimiter, valid until the next call); 0 when none is there
 * yet (the loop wakes up when one comes) or none is left (r->eof set; r->error < 0 after a read
 * error); -ENOMEM. */
int cli_line_reader_next(cli_line_reader *r, const char **item);
/* Stop reading; close the loop's handle (the loop must run once more to finish closing). */
void cli_line_reader_close(cli_line_reader *r);

#endif
