/* The built-in executor types of function.c (also declared in executors/builtins.h). */
#ifndef CBX_EXECUTORS_FUNCTION_INTERNAL_H
#define CBX_EXECUTORS_FUNCTION_INTERNAL_H

#include "cbx/executor.h"

/* Static types, never freed: "function" and "cached_function". */
const cbx_executor_type *cbx__function_type(void);
const cbx_executor_type *cbx__cached_function_type(void);

/* 1 when a function called name is registered and blocking (call), 0 when asynchronous
 * (start), -ENOENT when there is none. */
int cbx__function_kind(const char *name);

/* Call the blocking function name now, on the calling thread, with no task (call() gets t
 * NULL): a policy's fallback.function. input is borrowed (checked against the function's
 * schema, defaults applied). Returns 0 and *out (a new reference), or -ENOENT, CBX_EINVAL_CONFIG
 * (asynchronous), CBX_EFAILED (a bad input, a failed call, or no output), with err's message. */
int cbx__function_call_now(const char *name, const json_t *input, json_t **out, cbx_err *err);

/* function_stream.c: run a streaming function (def->next) to its end on the calling pool
 * thread, emitting each chunk on t. *out: {"text", "chunks"} (a new reference); *meta: NULL, or
 * {"stream_stopped": true} when the consumer stopped it. */
struct cbx_function_def;
cbx_outcome cbx__function_stream(const struct cbx_function_def *def, const json_t *input,
                                 json_t **out, json_t **meta, cbx_task *t);

#endif
