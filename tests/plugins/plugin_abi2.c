/* A plugin built against the ABI-2 header: its type struct ends after loop_close (no outputs
 * field), and its init accepts only ABI 2, as such a plugin's own check does. The struct is
 * followed by a pointer that is not one: a runtime that read the missing field would find it,
 * not NULL, and crash on it. */
#include <stddef.h>
#include <stdint.h>

#include "cbx/registry.h"

/* cbx_executor_type as ABI 2 had it. */
typedef struct abi2_type {
    uint32_t abi;
    const char *name;
    const char *summary;
    const cbx_param *params;
    size_t task_size;
    void *data;
    int (*validate)(const cbx_executor_type *type, const json_t *params, cbx_err *err);
    int (*before)(cbx_task *t, cbx_err *err);
    void (*after)(cbx_task *t, cbx_task_result *r);
    int (*start)(cbx_task *t);
    void (*cancel)(cbx_task *t);
    cbx_outcome (*run)(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err);
    void (*destroy)(const cbx_executor_type *type);
    int (*loop_init)(const cbx_executor_type *type, void *loop, void **state, cbx_err *err);
    void (*loop_close)(const cbx_executor_type *type, void *loop, void *state);
} abi2_type;

_Static_assert(sizeof(abi2_type) == offsetof(cbx_executor_type, outputs),
               "the ABI-2 struct is the ABI-3 one up to outputs");

static cbx_outcome old_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    (void)t, (void)metadata, (void)err;
    *outputs = json_pack("{s:s}", "said", "still here");
    return CBX_OUTCOME_SUCCESS;
}

static const struct {
    abi2_type t;
    const void *after_the_end; /* where ABI 3's outputs would be */
} old = {
    .t = {.abi = 2, .name = "abi2", .summary = "built against ABI 2", .run = old_run},
    .after_the_end = (const void *)1,
};

/* The entry point the registry looks up (CBX_PLUGIN_INIT_SYMBOL), with C linkage. */
int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err);

int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err)
{
    if (abi != 2)
        return cbx_err_set(err, CBX_EABI, "plugin built for executor ABI 2, runtime has %u",
                           (unsigned)abi);
    return cbx_registry_register(r, (const cbx_executor_type *)(const void *)&old.t, err);
}
