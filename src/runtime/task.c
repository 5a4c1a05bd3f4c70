/* What an executor sees of its attempt. */
#define _GNU_SOURCE /* vasprintf */
#include "runtime/runtime_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const json_t *cbx_task_params(const cbx_task *t)
{
    return t->params;
}

void *cbx_task_state(cbx_task *t)
{
    return t->type->task_size ? t->state : NULL;
}

void *cbx_task_loop(cbx_task *t)
{
    return t->loop;
}

void *cbx_task_loop_state(const cbx_task *t)
{
    return t->loop_state;
}

const cbx_executor_type *cbx_task_type(const cbx_task *t)
{
    return t->type;
}

uint32_t cbx_task_attempt(const cbx_task *t)
{
    return t ? t->attempt : 0;
}

uint64_t cbx_task_deadline_ns(const cbx_task *t)
{
    return t ? t->deadline_ns : UINT64_MAX;
}

cbx_clock *cbx_task_clock(const cbx_task *t)
{
    (void)t;
    return cbx_clock_monotonic();
}

const char *cbx_task_execution_id(const cbx_task *t)
{
    return t->exec_id;
}

const char *cbx_task_run_id(const cbx_task *t)
{
    return t && t->ctx ? t->ctx->run_id : NULL;
}

const char *cbx_task_step(const cbx_task *t)
{
    return t && t->ctx ? t->ctx->step : NULL;
}

const json_t *cbx_task_metadata(const cbx_task *t)
{
    return t && t->ctx ? t->ctx->metadata : NULL;
}

const char *cbx_task_tmpdir(const cbx_task *t)
{
    return t && t->ctx ? t->ctx->tmpdir : NULL;
}

int cbx_task_cancelled(const cbx_task *t)
{
    if (!t)
        return 0;
    return atomic_load_explicit(&((cbx_task *)t)->stop, memory_order_acquire) != STOP_NONE;
}

int cbx_task_timed_out(const cbx_task *t)
{
    if (!t)
        return 0;
    return atomic_load_explicit(&((cbx_task *)t)->stop, memory_order_acquire) == STOP_TIMEOUT;
}

uint64_t cbx_task_kill_grace_ns(const cbx_task *t)
{
    return t->kill_grace_ns;
}

void cbx_task_set_retry_after(cbx_task *t, uint64_t ns)
{
    if (t)
        t->retry_after_ns = ns;
}

void cbx_task_set_quality(cbx_task *t, double quality)
{
    if (t)
        t->quality = quality;
}

void cbx__task_set_error(cbx_task *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *e = NULL;
    if (vasprintf(&e, fmt, ap) >= 0) {
        free(t->error);
        t->error = e;
    }
    va_end(ap);
}

void cbx_task_done(cbx_task *t, cbx_outcome k, json_t *outputs, json_t *metadata,
                   const char *error_fmt, ...)
{
    if (t->reported) { /* a second report is a bug in the executor: keep the first */
        json_decref(outputs);
        json_decref(metadata);
        return;
    }
    t->reported = 1;
    t->outcome = (unsigned)k < CBX_OUTCOME__COUNT ? k : CBX_OUTCOME_ERROR;
    t->outputs = outputs;
    t->metadata = metadata;
    if (error_fmt) {
        va_list ap;
        va_start(ap, error_fmt);
        char *e = NULL;
        if (vasprintf(&e, error_fmt, ap) >= 0) {
            free(t->error);
            t->error = e;
        }
        va_end(ap);
    }
    if (t->in_start)
        return; /* finished inside start(): completed when start returns */
    if (cbx__stream_delivering(t)) {
        t->complete_deferred = 1; /* from inside a chunk's callback: completed after it */
        return;
    }
    cbx__task_complete(t);
}
