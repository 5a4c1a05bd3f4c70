/* cbx_task_runtime: the runtime an attempt belongs to, for executors that submit children. */
#include "runtime/runtime_internal.h"

cbx_runtime *cbx_task_runtime(const cbx_task *t)
{
    if (!t || t->abandoned || !t->ex)
        return NULL;
    return t->ex->rt;
}
