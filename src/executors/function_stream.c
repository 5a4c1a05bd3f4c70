/* The streaming variant of the function executor: a generator called chunk by chunk on a pool
 * thread, each chunk emitted (and waited for, when the consumer is slow) before the next call. */
#include "executors/function_internal.h"

#include "cbx/function.h"
#include "core/strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

cbx_outcome cbx__function_stream(const cbx_function_def *def, const json_t *input, json_t **out,
                                 json_t **meta, cbx_task *t)
{
    void *iter = NULL;
    cbx__buf text = {0}; /* the text chunks joined, for the outputs */
    uint64_t count = 0;
    int stopped = 0, done = 0;
    cbx_outcome k = CBX_OUTCOME_SUCCESS;
    *out = NULL;
    *meta = NULL;
    while (!cbx_task_cancelled(t)) {
        json_t *chunk = NULL;
        int r = def->next(input, &chunk, &iter, t, def->ud);
        if (r <= 0) {
            json_decref(chunk);
            done = 1;
            if (r < 0) {
                k = CBX_OUTCOME_ERROR;
                cbx_function_error(t, "streaming function failed: %s", strerror(-r));
            }
            break;
        }
        if (!chunk)
            continue; /* nothing this time */
        count++;
        int e;
        if (json_is_string(chunk)) {
            cbx__buf_put(&text, json_string_value(chunk), json_string_length(chunk));
            e = cbx_task_emit(t, "out", json_string_value(chunk), json_string_length(chunk));
            json_decref(chunk);
        } else {
            e = cbx_task_emit_event(t, "out", chunk);
        }
        if (e == -EPIPE) {
            stopped = 1;
            break;
        }
        if (e == CBX_ECANCELLED)
            break;
    }
    if (!done) /* stopped early: let it release its state */
        def->next(input, NULL, &iter, t, def->ud);
    if (k == CBX_OUTCOME_SUCCESS && !cbx_task_cancelled(t)) {
        if (text.oom) {
            k = CBX_OUTCOME_ERROR;
            cbx_function_error(t, "out of memory joining the chunks");
        } else {
            *out = json_pack("{s:s%, s:I}", "text", text.p ? text.p : "", text.len, "chunks",
                             (json_int_t)count);
            if (stopped)
                *meta = json_pack("{s:b}", "stream_stopped", 1);
        }
    }
    free(text.p);
    return k;
}
