/* `runs_on:` in flows and workflows: where a step or an action runs. "workers" (the pool's
 * default queue), {queue: NAME} (another queue) or "local" (here, overriding a flow's or a
 * workflow's own runs_on). A step that runs on workers goes through the remote executor
 * (executors/remote): the submitter waits for the worker's result and journals it. */
#ifndef CBX_FLOW_RUNS_ON_H
#define CBX_FLOW_RUNS_ON_H

#include <jansson.h>
#include <stddef.h>

/* What runs_on: says. 0 and *queue: a queue name (malloc'd; free it) for workers, "" (malloc'd)
 * for local. -1 on a bad value: msg (len bytes) says what was wrong and *sub names the key
 * under runs_on it was at ("" for the value itself). -ENOMEM. */
int cbx__runs_on_parse(const json_t *v, char **queue, char *msg, size_t len, const char **sub);

/* 1 when queue (a value from cbx__runs_on_parse, may be NULL) sends the work to the workers. */
int cbx__runs_on_remote(const char *queue);

/* The remote executor's parameters for running executor with params (borrowed) on queue: a new
 * object, or NULL (out of memory). */
json_t *cbx__runs_on_params(const char *executor, json_t *params, const char *queue);

/* The executor type that runs it: "remote". */
#define CBX__RUNS_ON_EXECUTOR "remote"

#endif
