/* Which run each line of a `cbx run --batch` went to, so that `--resume BATCH_ID` can finish a
 * batch that was killed: <state dir>/batches/<BATCH_ID>.jsonl, a header line
 * {"batch", "flow", "data"} and then one {"line", "run_id"} per line, written and flushed before
 * that line's run starts (the run id is given to cbx_flow_run); `--batch` notes the lines ahead
 * of their runs in groups, one write for many. A line noted whose run never started has no run in
 * the journal, and runs afresh on resume (the last note of a line counts). What became of each run
 * is the journal's: the file only says where to look. */
#ifndef CBX_CLI_BATCH_STATE_H
#define CBX_CLI_BATCH_STATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

typedef struct cli_batch_state {
    FILE *f; /* NULL: nothing is recorded (no journal) */
    char id[40];
    char path[4096];
} cli_batch_state;

/* A new batch of flow over data: a fresh id and its file. 0, or -errno with a message in msg. */
int cli_batch_state_new(cli_batch_state *s, const char *flow, const char *data, char *msg,
                        size_t len);
/* The batch id's file, to append to; *lines gets {"<line>": "run_id"} (new reference). The flow
 * must be the one the batch ran. 0, or -errno (-ENOENT: no such batch) with a message in msg. */
int cli_batch_state_resume(cli_batch_state *s, const char *id, const char *flow, json_t **lines,
                           char *msg, size_t len);
/* Record that line runs as run_id (flushed). 0 or -errno. */
int cli_batch_state_note(cli_batch_state *s, int line, const char *run_id);
/* The same, buffered: written by the next cli_batch_state_sync (or note). 0 or -errno. */
int cli_batch_state_add(cli_batch_state *s, int line, const char *run_id);
int cli_batch_state_sync(cli_batch_state *s);
void cli_batch_state_close(cli_batch_state *s);

#endif
