/* A plugin built against another executor ABI. Built twice:
 *   plugin_bad_abi  - its init compares the runtime's ABI with its own and refuses;
 *   plugin_abi_lie  - (PLUGIN_SKIP_CHECK) its init skips the check and registers a type whose abi
 *                     field is wrong, which registration must refuse. */
#include <stdint.h>

#include "cbx/registry.h"

#define PLUGIN_ABI (CBX_EXECUTOR_ABI + 1)

static cbx_outcome old_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    (void)t, (void)outputs, (void)metadata, (void)err;
    return CBX_OUTCOME_SUCCESS;
}

static const cbx_executor_type old_type = {
    .abi = PLUGIN_ABI,
    .name = "from-the-future",
    .summary = "built against another header",
    .run = old_run,
};

/* The entry point the registry looks up (CBX_PLUGIN_INIT_SYMBOL), with C linkage. */
int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err);

int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err)
{
#ifndef PLUGIN_SKIP_CHECK
    if (abi != PLUGIN_ABI)
        return cbx_err_set(err, CBX_EABI, "plugin built for executor ABI %u, runtime has %u",
                           (unsigned)PLUGIN_ABI, (unsigned)abi);
#else
    (void)abi;
#endif
    return cbx_registry_register(r, &old_type, err);
}
