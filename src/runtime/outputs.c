/* Executor types' output declarations: reading them across ABIs, finding one, and the JSON
 * Schema `cbx types` shows. */
#include <string.h>

#include "cbx/executor.h"

const cbx_output *cbx_executor_type_outputs(const cbx_executor_type *t)
{
    /* An ABI-2 struct ends before the field: reading it would read past the plugin's object. */
    if (!t || t->abi < 3)
        return NULL;
    return t->outputs;
}

const cbx_output *cbx_output_find(const cbx_output *outputs, const char *name)
{
    for (const cbx_output *o = outputs; o && o->name && name; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

static json_t *output_to_json(const cbx_output *o)
{
    json_t *prop = json_object();
    if (!prop)
        return NULL;
    int rc = 0;
    if (o->type != CBX_PARAM_ANY) {
        json_t *ty = o->nullable ? json_pack("[s,s]", cbx_param_type_name(o->type), "null")
                                 : json_string(cbx_param_type_name(o->type));
        rc |= json_object_set_new(prop, "type", ty);
    }
    if (o->description)
        rc |= json_object_set_new(prop, "description", json_string(o->description));
    if (rc) {
        json_decref(prop);
        return NULL;
    }
    return prop;
}

json_t *cbx_outputs_to_json(const cbx_output *outputs)
{
    if (!outputs)
        return json_null();
    json_t *props = json_object(), *required = json_array(), *s = json_object();
    if (!props || !required || !s)
        goto fail;
    for (const cbx_output *o = outputs; o->name; o++) {
        json_t *prop = output_to_json(o);
        if (!prop || json_object_set_new(props, o->name, prop) < 0)
            goto fail;
        if (!o->optional && json_array_append_new(required, json_string(o->name)) < 0)
            goto fail;
    }
    if (json_object_set_new(s, "type", json_string("object")) < 0 ||
        json_object_set(s, "properties", props) < 0 || json_object_set(s, "required", required) < 0)
        goto fail;
    json_decref(props);
    json_decref(required);
    return s;
fail:
    json_decref(props);
    json_decref(required);
    json_decref(s);
    return NULL;
}
