/* DynamoDB attribute values to and from plain JSON (see ddb.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executors/db/ddb.h"

#include "core/real_text.h"

json_t *cbx__ddb_to_attr(const json_t *v)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_NULL:
        return json_pack("{s:b}", "NULL", 1);
    case JSON_TRUE:
    case JSON_FALSE:
        return json_pack("{s:b}", "BOOL", json_is_true(v));
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_pack("{s:s}", "N", buf);
    case JSON_REAL:
        cbx__real_plain(json_real_value(v), buf);
        return json_pack("{s:s}", "N", buf);
    case JSON_STRING:
        return json_pack("{s:O}", "S", (json_t *)v);
    case JSON_ARRAY: {
        json_t *l = json_array();
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            json_t *a = cbx__ddb_to_attr(e);
            if (!a || json_array_append_new(l, a) < 0) {
                json_decref(l);
                return NULL;
            }
        }
        return l ? json_pack("{s:o}", "L", l) : NULL;
    }
    case JSON_OBJECT: {
        json_t *m = cbx__ddb_to_item(v);
        return m ? json_pack("{s:o}", "M", m) : NULL;
    }
    }
    return NULL;
}

json_t *cbx__ddb_to_item(const json_t *obj)
{
    json_t *m = json_object();
    const char *k;
    const json_t *e;
    json_object_foreach((json_t *)obj, k, e)
    {
        json_t *a = cbx__ddb_to_attr(e);
        if (!a || json_object_set_new(m, k, a) < 0) {
            json_decref(m);
            return NULL;
        }
    }
    return m;
}

static json_t *number(const char *s)
{
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*end == '\0' && end != s && errno == 0)
        return json_integer((json_int_t)i);
    double d = strtod(s, &end);
    if (*end == '\0' && end != s && isfinite(d))
        return json_real(d);
    return json_string(s); /* beyond a double: kept as its text */
}

static json_t *map_array(const json_t *arr, json_t *(*f)(const json_t *))
{
    json_t *out = json_array();
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        json_t *v = f(e);
        if (!v || json_array_append_new(out, v) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *number_of(const json_t *s)
{
    return number(json_string_value(s) ? json_string_value(s) : "");
}

static json_t *copy_of(const json_t *s)
{
    return json_deep_copy(s);
}

json_t *cbx__ddb_from_attr(const json_t *av)
{
    const char *k;
    const json_t *v;
    if (!json_is_object(av) || json_object_size(av) != 1)
        return json_deep_copy(av);
    json_object_foreach((json_t *)av, k, v)
    {
        if (strcmp(k, "S") == 0 || strcmp(k, "B") == 0 || strcmp(k, "BOOL") == 0)
            return json_deep_copy(v);
        if (strcmp(k, "N") == 0)
            return number_of(v);
        if (strcmp(k, "NULL") == 0)
            return json_null();
        if (strcmp(k, "L") == 0)
            return map_array(v, cbx__ddb_from_attr);
        if (strcmp(k, "M") == 0)
            return cbx__ddb_from_item(v);
        if (strcmp(k, "NS") == 0)
            return map_array(v, number_of);
        if (strcmp(k, "SS") == 0 || strcmp(k, "BS") == 0)
            return map_array(v, copy_of);
    }
    return json_deep_copy(av);
}

json_t *cbx__ddb_from_item(const json_t *item)
{
    json_t *out = json_object();
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)item, k, v)
    {
        json_t *p = cbx__ddb_from_attr(v);
        if (!p || json_object_set_new(out, k, p) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
