/* A plugin whose init registers a type and then fails: the registry must not keep the type
 * (its code is about to be unloaded). */
#include <stdint.h>

#include "cbx/registry.h"

static cbx_outcome half_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    (void)t, (void)outputs, (void)metadata, (void)err;
    return CBX_OUTCOME_SUCCESS;
}

static const cbx_executor_type half = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "half-registered",
    .summary = "registered by an init that then fails",
    .run = half_run,
};

/* The entry point the registry looks up (CBX_PLUGIN_INIT_SYMBOL), with C linkage. */
int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err);

int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err)
{
    (void)abi;
    int rc = cbx_registry_register(r, &half, err);
    if (rc)
        return rc;
    return cbx_err_set(err, CBX_EINVAL_CONFIG, "the second type's configuration is missing");
}
