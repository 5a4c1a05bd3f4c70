/* cbx exec: the partial output of an execution (cbx_chunk) written as it arrives.
 *
 * Text on the channel "stderr" goes to cbx's stderr, every other channel's to its stdout; a JSON
 * event is written as one compact JSON line on stdout. Passed through as it comes (one
 * execution), or whole lines at a time (several executions at once, --repeat and --each: lines
 * of different executions never mix within a line; a line is held until its newline, up to 64
 * KiB, and a last line without one gets one when the execution ends), or all of it when the
 * execution ends (--group); each line optionally prefixed by a tag and a TAB (--tag). With --json
 * nothing is written: the chunks are kept (bounded) for the result's "chunks". */
#ifndef CBX_CLI_EXEC_CHUNKS_H
#define CBX_CLI_EXEC_CHUNKS_H

#include "cbx/runtime.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct exec_linebuf {
    char *p;
    size_t len, cap;
    int cont; /* a piece of a long line went out: the rest comes without a tag */
} exec_linebuf;

/* How the chunks are written. */
#define EXEC_STREAM_RAW   0 /* as they come */
#define EXEC_STREAM_LINES 1 /* whole lines as they come */
#define EXEC_STREAM_GROUP 2 /* all of it when the execution ends (stdout, then stderr) */

typedef struct exec_stream {
    int lines;   /* EXEC_STREAM_LINES or _GROUP */
    int group;   /* EXEC_STREAM_GROUP */
    char *tag;   /* the prefix of each line (malloc'd), or NULL */
    int collect; /* keep the chunks for the result instead of writing them */
    int stopped; /* a write failed (the reader is gone): take no more */
    uint32_t attempt;
    exec_linebuf buf[2]; /* stdout, stderr */
    json_t *chunks;      /* collect: [{attempt, seq, channel, text | event}] */
    size_t kept_bytes;
    uint64_t dropped;
    uint64_t text_chunks; /* text chunks taken */
    int mid_line;         /* the last byte written to stdout was not a newline */
} exec_stream;

/* mode EXEC_STREAM_*; tag is copied (NULL: none). */
void exec_stream_init(exec_stream *x, int mode, const char *tag, int collect);
/* The chunk callback's body: CBX_CHUNK_MORE, or CBX_CHUNK_STOP once cbx's output is gone. */
int exec_stream_chunk(exec_stream *x, const cbx_chunk *c);
/* The execution has ended: write what is held. */
void exec_stream_end(exec_stream *x);
/* Put the kept chunks into a result's JSON ("chunks", and "chunks_dropped" when some were not
 * kept). */
void exec_stream_attach(exec_stream *x, json_t *result);
void exec_stream_free(exec_stream *x);

/* Whether cbx exec takes an execution's chunks: always, but for a command's output where its
 * result holds it anyway - with --json (-- CMD), or run as the TYPE "command", whose outputs are
 * what is printed (-- CMD streams it). */
int exec_takes_chunks(int cmd_mode, const char *type, int json);

#endif
