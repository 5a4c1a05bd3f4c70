/* A plugin with one blocking executor type, "ticker", that streams: it emits "tick I\n" n times
 * from its pool thread (cbx_task_emit), then a JSON event; with gate, it waits after the first
 * tick until that file exists, so that a test can see the first tick arrive while it runs. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cbx/registry.h"

static const cbx_param ticker_params[] = {
    {.name = "n", .type = CBX_PARAM_INTEGER, .default_json = "3", .has_min = 1, .min = 1},
    {.name = "gate", .type = CBX_PARAM_STRING, .description = "wait for this file after tick 0"},
    {0},
};

static cbx_outcome ticker_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    (void)metadata, (void)err;
    const json_t *p = cbx_task_params(t);
    json_int_t n = json_integer_value(json_object_get(p, "n"));
    const char *gate = json_string_value(json_object_get(p, "gate"));
    for (json_int_t i = 0; i < n; i++) {
        char line[32];
        int len = snprintf(line, sizeof line, "tick %lld\n", (long long)i);
        if (cbx_task_emit(t, "out", line, (size_t)len) < 0)
            break;
        while (i == 0 && gate && access(gate, F_OK) != 0 && !cbx_task_cancelled(t))
            nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    cbx_task_emit_event(t, "progress", json_pack("{s:I}", "ticks", n));
    *outputs = json_pack("{s:I}", "ticks", n);
    return cbx_task_cancelled(t) ? CBX_OUTCOME_IGNORED : CBX_OUTCOME_SUCCESS;
}

static const cbx_executor_type ticker = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "ticker",
    .summary = "streams ticks",
    .params = ticker_params,
    .run = ticker_run,
};

int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err);

int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err)
{
    if (abi != CBX_EXECUTOR_ABI)
        return cbx_err_set(err, CBX_EABI, "plugin built for executor ABI %u, runtime has %u",
                           (unsigned)CBX_EXECUTOR_ABI, (unsigned)abi);
    return cbx_registry_register(r, &ticker, err);
}
