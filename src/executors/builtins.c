/* The list of built-in executor types (see builtins.h). */
#include <stddef.h>

#include "executors/builtins.h"
#include "runtime/builtins.h"

typedef const cbx_executor_type *(*type_fn)(void);

/* Each is referenced directly, so that a program linked with the static library gets every
 * built-in executor's object. */
static const type_fn builtins[] = {
    cbx__command_type,
    cbx__http_type,
    cbx__function_type,
    cbx__cached_function_type,
    cbx__chaos_type,
    /* executors/db/ */
    cbx__sqlite_type,
    cbx__postgres_type,
    cbx__dynamodb_type,
    /* executors/llm/ */
    cbx__llm_type,
    cbx__agent_type,
    /* executors/nats/, executors/remote/ */
    cbx__nats_type,
    cbx__remote_type,
    /* executors/serverless/ */
    cbx__serverless_type,
    /* executors/container/ */
    cbx__container_type,
};

int cbx__register_builtins(cbx_registry *r, cbx_err *err)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        const cbx_executor_type *t = builtins[i]();
        if (!t)
            continue;
        int rc = cbx__registry_register_builtin(r, t, err);
        if (rc)
            return rc;
    }
    return 0;
}
