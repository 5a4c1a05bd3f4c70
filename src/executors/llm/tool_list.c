/* cbx_llm_tool_add, _remove, _tools_clear: editing a tools array from C (cbx/llm.h). */
#include "cbx/llm.h"

#include <errno.h>
#include <string.h>

static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static long find(const json_t *tools, const char *name)
{
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n && name && strcmp(n, name) == 0)
            return (long)i;
    }
    return -1;
}

int cbx_llm_tool_add(json_t *tools, const cbx_llm_tool_opts *o, cbx_err *err)
{
    const char *name = o ? o->name : NULL;
    if (!json_is_array(tools))
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "tools: expected a JSON array");
    if (!name_ok(name))
        return cbx_err_set(err, CBX_EINVAL_CONFIG,
                           "tool name '%s': expected 1 to 64 of [A-Za-z0-9_-]", name ? name : "");
    if (find(tools, name) >= 0)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "tool '%s': there is one of that name already",
                           name);
    if (!o->executor || !*o->executor)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "tool '%s': no executor type", name);
    if ((o->params && !json_is_object(o->params)) ||
        (o->arguments && !json_is_object(o->arguments)))
        return cbx_err_set(err, CBX_EINVAL_CONFIG,
                           "tool '%s': params and arguments must be objects", name);
    json_t *t = json_pack("{s:s, s:s}", "name", name, "executor", o->executor);
    if (!t)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    if (o->description)
        json_object_set_new(t, "description", json_string(o->description));
    if (o->params)
        json_object_set_new(t, "params", json_deep_copy(o->params));
    if (o->arguments)
        json_object_set_new(t, "arguments", json_deep_copy(o->arguments));
    if (o->policy)
        json_object_set_new(t, "policy", json_deep_copy(o->policy));
    if (o->fallback_response)
        json_object_set_new(t, "fallback_response", json_deep_copy(o->fallback_response));
    return json_array_append_new(tools, t) == 0 ? 0 : cbx_err_set(err, -ENOMEM, "out of memory");
}

int cbx_llm_tool_remove(json_t *tools, const char *name)
{
    long i = find(tools, name);
    if (i < 0)
        return -ENOENT;
    json_array_remove(tools, (size_t)i);
    return 0;
}

void cbx_llm_tools_clear(json_t *tools)
{
    json_array_clear(tools);
}
