/* The list of built-in executor types. */
#include <stddef.h>

#include "runtime/builtins.h"

/* An executor whose file has not joined the library yet is declared weak, so that the library
 * still links; its function is then NULL and the type is left out. A weak reference does not
 * pull an object out of a static archive, so each executor that exists is referenced strongly
 * (listed in neither line below). */
#define CBX__PENDING __attribute__((weak))
const cbx_executor_type *cbx__command_type(void) CBX__PENDING;
const cbx_executor_type *cbx__http_type(void) CBX__PENDING;
const cbx_executor_type *cbx__function_type(void) CBX__PENDING;
const cbx_executor_type *cbx__cached_function_type(void) CBX__PENDING;
const cbx_executor_type *cbx__chaos_type(void) CBX__PENDING;

typedef const cbx_executor_type *(*type_fn)(void);

int cbx__register_builtins(cbx_registry *r, cbx_err *err)
{
    const type_fn all[] = {
        cbx__command_type,         cbx__http_type,  cbx__function_type,
        cbx__cached_function_type, cbx__chaos_type,
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!all[i])
            continue;
        const cbx_executor_type *t = all[i]();
        if (!t)
            continue;
        int rc = cbx__registry_register_builtin(r, t, err);
        if (rc)
            return rc;
    }
    return 0;
}
