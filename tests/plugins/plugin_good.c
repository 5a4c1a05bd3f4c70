/* A plugin with one blocking executor type, "greet": it says hello to a name, times times. */
#include <stdint.h>
#include <string.h>

#include "cbx/registry.h"

static const cbx_param greet_params[] = {
    {.name = "name",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .description = "who to greet",
     .has_min = 1,
     .min = 1},
    {.name = "times",
     .type = CBX_PARAM_INTEGER,
     .default_json = "1",
     .description = "how many greetings",
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 10},
    {.name = "token", .type = CBX_PARAM_STRING, .secret = 1, .description = "not used"},
    {0},
};

/* Beyond the schema: nobody greets "nobody". */
static int greet_validate(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    (void)type;
    if (strcmp(json_string_value(json_object_get(params, "name")), "nobody") == 0)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "name", 0, 0, "cannot greet nobody");
    return 0;
}

static cbx_outcome greet_run(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    (void)metadata, (void)err;
    const json_t *p = cbx_task_params(t);
    const char *name = json_string_value(json_object_get(p, "name"));
    json_int_t times = json_integer_value(json_object_get(p, "times"));
    json_t *lines = json_array();
    for (json_int_t i = 0; i < times; i++)
        json_array_append_new(lines, json_sprintf("hello, %s", name));
    *outputs = json_pack("{s:o}", "greetings", lines);
    return CBX_OUTCOME_SUCCESS;
}

/* Runs when the registry lets the type go, while this library is still loaded. */
static volatile int destroyed;

static void greet_destroy(const cbx_executor_type *type)
{
    (void)type;
    destroyed++;
}

static const cbx_executor_type greet = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "greet",
    .summary = "says hello",
    .params = greet_params,
    .validate = greet_validate,
    .run = greet_run,
    .destroy = greet_destroy,
};

/* The entry point the registry looks up (CBX_PLUGIN_INIT_SYMBOL), with C linkage. */
int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err);

int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err)
{
    if (abi != CBX_EXECUTOR_ABI)
        return cbx_err_set(err, CBX_EABI, "plugin built for executor ABI %u, runtime has %u",
                           (unsigned)CBX_EXECUTOR_ABI, (unsigned)abi);
    return cbx_registry_register(r, &greet, err);
}
