#include "executors/exit_params.h"

#include <stdio.h>

void cbx__exit_codes_check(const json_t *p, cbx__problems *pr)
{
    const json_t *codes = json_object_get(p, "success_exit_codes");
    size_t i;
    json_t *v;
    json_array_foreach(codes, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255) {
            char where[48];
            snprintf(where, sizeof where, "success_exit_codes[%zu]", i);
            cbx__problem(pr, where, "expected an exit code from 0 to 255");
        }
    }
}

int cbx__exit_code_succeeds(const json_t *codes, long code)
{
    if (!json_is_array(codes))
        return code == 0;
    size_t i;
    json_t *v;
    json_array_foreach(codes, i, v)
    {
        if (json_is_integer(v) && json_integer_value(v) == code)
            return 1;
    }
    return 0;
}
