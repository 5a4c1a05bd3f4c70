/* A shared object that forgot its entry point: it exports a function under another name. */
#include <stdint.h>

#include "cbx/registry.h"

int cbx_plugin_initialise(cbx_registry *r, uint32_t abi, cbx_err *err);

int cbx_plugin_initialise(cbx_registry *r, uint32_t abi, cbx_err *err)
{
    (void)r, (void)abi, (void)err;
    return 0;
}
