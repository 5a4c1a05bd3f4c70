/* Parameter schemas: checks at registration, validation with every problem reported, defaults,
 * JSON Schema export and redaction of secrets. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbx/registry.h"
#include "runtime/builtins.h"
#include "runtime/runtime_internal.h"

const char *cbx_param_type_name(cbx_param_type t)
{
    switch (t) {
#define CBX__PARAM_TYPE_STR(name, str)                                                             \
    case CBX_PARAM_##name:                                                                         \
        return str;
        CBX_PARAM_TYPE_MAP(CBX__PARAM_TYPE_STR)
#undef CBX__PARAM_TYPE_STR
    default:
        return "unknown";
    }
}

/* ---- small helpers ------------------------------------------------------------------------ */

/* The JSON type of a value, in the schema's words. */
const char *cbx__json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* A bound or a value as people write it: 5, not 5.000000. */
static const char *fmt_num(double x, char *buf, size_t len)
{
    if (x == floor(x) && fabs(x) < 1e15)
        snprintf(buf, len, "%.0f", x);
    else
        snprintf(buf, len, "%.15g", x);
    return buf;
}

/* The same, as JSON (an integer when it is one). */
static json_t *json_num(double x)
{
    if (x == floor(x) && fabs(x) < 1e15)
        return json_integer((json_int_t)x);
    return json_real(x);
}

/* Characters (code points) in a UTF-8 string of len bytes. */
static size_t utf8_len(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

static size_t schema_len(const cbx_param *params)
{
    size_t n = 0;
    if (params)
        while (params[n].name)
            n++;
    return n;
}

int cbx__param_type_accepts(cbx_param_type want, const json_t *v)
{
    switch (want) {
    case CBX_PARAM_STRING:
        return json_is_string(v);
    case CBX_PARAM_INTEGER:
        return json_is_integer(v);
    case CBX_PARAM_NUMBER:
        return json_is_number(v);
    case CBX_PARAM_BOOLEAN:
        return json_is_boolean(v);
    case CBX_PARAM_ARRAY:
        return json_is_array(v);
    case CBX_PARAM_OBJECT:
        return json_is_object(v);
    case CBX_PARAM_ANY:
        return 1;
    default:
        return 0;
    }
}

/* Bounds on a count (characters, items, properties): appends a problem and returns 1 when the
 * count is out of them. */
static int check_count(const cbx_param *p, size_t n, const char *one, const char *many,
                       const char *where, cbx_diag *d)
{
    const char *kind = cbx_param_type_name(p->type);
    const char *with = p->type == CBX_PARAM_STRING ? "of" : "with";
    char a[32];
    if (p->has_min && (double)n < p->min) {
        cbx_diag_add(d, CBX_EINVAL_CONFIG, where, 0, 0, "expected %s %s at least %s %s, got %zu",
                     kind, with, fmt_num(p->min, a, sizeof a), p->min == 1 ? one : many, n);
        return 1;
    }
    if (p->has_max && (double)n > p->max) {
        cbx_diag_add(d, CBX_EINVAL_CONFIG, where, 0, 0, "expected %s %s at most %s %s, got %zu",
                     kind, with, fmt_num(p->max, a, sizeof a), p->max == 1 ? one : many, n);
        return 1;
    }
    return 0;
}

/* Check one value against one parameter; appends every problem to d (where = path). Returns the
 * number of problems found. */
static int check_value(const cbx_param *p, const json_t *v, const char *path, cbx_diag *d)
{
    char a[32], b[32];
    if (!cbx__param_type_accepts(p->type, v)) {
        cbx_diag_add(d, CBX_EINVAL_CONFIG, path, 0, 0, "expected %s, got %s",
                     cbx_param_type_name(p->type), cbx__json_kind(v));
        return 1;
    }
    int bad = 0;
    switch (p->type) {
    case CBX_PARAM_STRING: {
        const char *s = json_string_value(v);
        if (p->enum_values) {
            int found = 0;
            for (const char *const *e = p->enum_values; *e; e++)
                if (strcmp(*e, s) == 0) {
                    found = 1;
                    break;
                }
            if (!found) {
                char list[400] = "";
                size_t n = 0;
                for (const char *const *e = p->enum_values; *e && n < sizeof list; e++)
                    n += (size_t)snprintf(list + n, sizeof list - n, "%s%s",
                                          e == p->enum_values ? "" : ", ", *e);
                cbx_diag_add(d, CBX_EINVAL_CONFIG, path, 0, 0, "expected one of %s; got \"%.64s\"",
                             list, s);
                return 1;
            }
        }
        return check_count(p, utf8_len(s, json_string_length(v)), "character", "characters", path,
                           d);
    }
    case CBX_PARAM_INTEGER:
    case CBX_PARAM_NUMBER: {
        double x = json_number_value(v);
        if (p->has_min && x < p->min) {
            cbx_diag_add(d, CBX_EINVAL_CONFIG, path, 0, 0, "expected %s >= %s, got %s",
                         cbx_param_type_name(p->type), fmt_num(p->min, a, sizeof a),
                         fmt_num(x, b, sizeof b));
            return 1;
        }
        if (p->has_max && x > p->max) {
            cbx_diag_add(d, CBX_EINVAL_CONFIG, path, 0, 0, "expected %s <= %s, got %s",
                         cbx_param_type_name(p->type), fmt_num(p->max, a, sizeof a),
                         fmt_num(x, b, sizeof b));
            return 1;
        }
        return 0;
    }
    case CBX_PARAM_ARRAY: {
        bad += check_count(p, json_array_size(v), "item", "items", path, d);
        if (p->items == CBX_PARAM_ANY)
            return bad;
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            if (cbx__param_type_accepts(p->items, item))
                continue;
            char where[256];
            snprintf(where, sizeof where, "%s[%zu]", path, i);
            cbx_diag_add(d, CBX_EINVAL_CONFIG, where, 0, 0, "expected %s, got %s",
                         cbx_param_type_name(p->items), cbx__json_kind(item));
            bad++;
        }
        return bad;
    }
    case CBX_PARAM_OBJECT:
        return check_count(p, json_object_size(v), "property", "properties", path, d);
    default:
        return 0;
    }
}

/* ---- registration checks ------------------------------------------------------------------ */

static int param_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void cbx__schema_defaults_free(json_t **defaults, const cbx_param *params)
{
    if (!defaults)
        return;
    size_t n = schema_len(params);
    for (size_t i = 0; i < n; i++)
        json_decref(defaults[i]);
    free(defaults);
}

static int bad_schema(cbx_err *err, const char *type_name, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A schema mistake: where is "type.param", the message names both. */
static int bad_schema(cbx_err *err, const char *type_name, const char *param, const char *fmt, ...)
{
    char where[256];
    snprintf(where, sizeof where, "%s.%s", type_name, param ? param : "?");
    cbx_err_set_at(err, CBX_EINVAL_CONFIG, where, 0, 0,
                   "executor type '%s', parameter '%s': ", type_name, param ? param : "?");
    if (err) {
        size_t len = strlen(err->msg);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg + len, sizeof err->msg - len, fmt, ap);
        va_end(ap);
    }
    return CBX_EINVAL_CONFIG;
}

int cbx__schema_check(const char *type_name, const cbx_param *params, json_t ***defaults,
                      cbx_err *err)
{
    *defaults = NULL;
    size_t n = schema_len(params);
    if (n == 0)
        return 0;
    json_t **defs = calloc(n, sizeof *defs);
    if (!defs)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const cbx_param *p = &params[i];
        if (!param_name_ok(p->name)) {
            rc =
                bad_schema(err, type_name, p->name, "a parameter name is 1 to 63 of [A-Za-z0-9_-]");
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(params[j].name, p->name) == 0) {
                rc = bad_schema(err, type_name, p->name, "declared twice");
                break;
            }
        if (rc)
            break;
        if ((unsigned)p->type >= CBX_PARAM_TYPE__COUNT) {
            rc = bad_schema(err, type_name, p->name, "unknown parameter type");
            break;
        }
        if (p->type == CBX_PARAM_ARRAY && (unsigned)p->items >= CBX_PARAM_TYPE__COUNT) {
            rc = bad_schema(err, type_name, p->name, "unknown array item type");
            break;
        }
        if (p->enum_values && p->type != CBX_PARAM_STRING) {
            rc = bad_schema(err, type_name, p->name, "enum values are only for strings, not %s",
                            cbx_param_type_name(p->type));
            break;
        }
        if (p->enum_values && !p->enum_values[0]) {
            rc = bad_schema(err, type_name, p->name, "an empty enum allows nothing");
            break;
        }
        if ((p->has_min || p->has_max) &&
            (p->type == CBX_PARAM_BOOLEAN || p->type == CBX_PARAM_ANY)) {
            rc = bad_schema(err, type_name, p->name, "bounds do not apply to %s",
                            cbx_param_type_name(p->type));
            break;
        }
        if ((p->has_min && isnan(p->min)) || (p->has_max && isnan(p->max)) ||
            (p->has_min && p->has_max && p->min > p->max)) {
            rc = bad_schema(err, type_name, p->name, "bounds must be numbers with min <= max");
            break;
        }
        if (!p->default_json)
            continue;
        if (p->required) {
            rc = bad_schema(err, type_name, p->name, "a required parameter cannot have a default");
            break;
        }
        json_error_t je;
        defs[i] = json_loads(p->default_json, JSON_DECODE_ANY, &je);
        if (!defs[i]) {
            rc = bad_schema(err, type_name, p->name, "default is not JSON: %s", je.text);
            break;
        }
        cbx_diag d = {0};
        if (check_value(p, defs[i], p->name, &d)) {
            if (d.n > 0)
                rc = bad_schema(err, type_name, p->name, "default %s does not fit: %s",
                                p->default_json, d.items[0].msg);
            else /* the problem was dropped for lack of memory */
                rc = cbx_err_set(err, -ENOMEM, "out of memory");
        }
        cbx_diag_clear(&d);
    }
    if (rc) {
        for (size_t i = 0; i < n; i++)
            json_decref(defs[i]);
        free(defs);
        return rc;
    }
    *defaults = defs;
    return 0;
}

/* ---- validation --------------------------------------------------------------------------- */

/* A deep copy without json_deep_copy's cycle check (a table and a formatted key per container:
 * most of the cost of copying small parameters). Deeper than this, the rest is left to
 * json_deep_copy, which also refuses cycles. */
#define COPY_DEPTH_MAX 64

static json_t *copy_at(const json_t *v, int depth)
{
    if (depth > COPY_DEPTH_MAX)
        return json_deep_copy(v);
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        json_t *out = json_object();
        const char *key;
        size_t key_len;
        json_t *item;
        json_object_keylen_foreach((json_t *)v, key, key_len, item)
        {
            if (!out || json_object_setn_new_nocheck(out, key, key_len, copy_at(item, depth + 1)))
                goto fail_object;
        }
        return out;
    fail_object:
        json_decref(out);
        return NULL;
    }
    case JSON_ARRAY: {
        json_t *out = json_array();
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            if (!out || json_array_append_new(out, copy_at(item, depth + 1)))
                goto fail_array;
        }
        return out;
    fail_array:
        json_decref(out);
        return NULL;
    }
    case JSON_STRING:
        return json_stringn_nocheck(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return json_integer(json_integer_value(v));
    case JSON_REAL:
        return json_real(json_real_value(v));
    default: /* true, false, null: jansson's shared constants */
        return (json_t *)v;
    }
}

json_t *cbx__json_copy(const json_t *v)
{
    return v ? copy_at(v, 0) : NULL;
}

static const cbx_param *find_param(const cbx_param *params, const char *name)
{
    for (const cbx_param *p = params; p && p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

static void report_unknown(const cbx_param *params, const char *key, cbx_diag *d)
{
    const char *best = NULL;
    size_t best_d = 99;
    for (const cbx_param *p = params; p && p->name; p++) {
        size_t dist = cbx__edit_distance(key, p->name);
        if (dist < best_d) {
            best_d = dist;
            best = p->name;
        }
    }
    if (best && cbx__close_enough(best_d, strlen(key))) {
        cbx_diag_add(d, CBX_EINVAL_CONFIG, key, 0, 0, "unknown parameter '%s'; did you mean '%s'?",
                     key, best);
        return;
    }
    if (!params || !params->name) {
        cbx_diag_add(d, CBX_EINVAL_CONFIG, key, 0, 0,
                     "unknown parameter '%s' (this type takes no parameters)", key);
        return;
    }
    char list[400] = "";
    size_t n = 0;
    for (const cbx_param *p = params; p->name && n < sizeof list; p++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", p == params ? "" : ", ", p->name);
    cbx_diag_add(d, CBX_EINVAL_CONFIG, key, 0, 0, "unknown parameter '%s' (known: %s)", key, list);
}

int cbx__schema_validate(const cbx_param *params, json_t *const *defaults, const json_t *value,
                         json_t **normalized, cbx_diag *diag)
{
    cbx_diag local = {0};
    cbx_diag *d = diag ? diag : &local;
    size_t before = d->n;
    int problems = 0;
    if (normalized)
        *normalized = NULL;

    if (value && !json_is_object(value)) {
        cbx_diag_add(d, CBX_EINVAL_CONFIG, "", 0, 0, "expected parameters as an object, got %s",
                     cbx__json_kind(value));
        cbx_diag_clear(&local);
        return CBX_EINVAL_CONFIG;
    }

    for (const cbx_param *p = params; p && p->name; p++) {
        json_t *v = value ? json_object_get(value, p->name) : NULL;
        if (v) {
            problems += check_value(p, v, p->name, d);
        } else if (p->required) {
            cbx_diag_add(d, CBX_EINVAL_CONFIG, p->name, 0, 0,
                         "missing required parameter (expected %s)", cbx_param_type_name(p->type));
            problems++;
        }
    }
    if (value) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)value, key, v)
        {
            if (find_param(params, key))
                continue;
            report_unknown(params, key, d);
            problems++;
        }
    }
    if (problems) {
        if (d->n == before) /* every problem was dropped: memory ran out */
            cbx_diag_add(d, -ENOMEM, "", 0, 0, "out of memory");
        cbx_diag_clear(&local);
        return CBX_EINVAL_CONFIG;
    }
    cbx_diag_clear(&local);
    if (!normalized)
        return 0;

    json_t *out = value ? cbx__json_copy(value) : json_object();
    if (!out)
        return diag ? cbx_diag_add(diag, -ENOMEM, "", 0, 0, "out of memory") : -ENOMEM;
    size_t i = 0;
    for (const cbx_param *p = params; p && p->name; p++, i++) {
        if (!p->default_json || json_object_get(out, p->name))
            continue;
        json_t *def;
        if (defaults) {
            def = defaults[i] ? cbx__json_copy(defaults[i]) : NULL;
        } else {
            def = json_loads(p->default_json, JSON_DECODE_ANY, NULL);
            if (!def) {
                json_decref(out);
                return diag ? cbx_diag_add(diag, CBX_EINVAL_CONFIG, p->name, 0, 0,
                                           "the schema's default is not JSON: %s", p->default_json)
                            : CBX_EINVAL_CONFIG;
            }
        }
        if (!def || json_object_set_new(out, p->name, def) < 0) {
            json_decref(out);
            return diag ? cbx_diag_add(diag, -ENOMEM, "", 0, 0, "out of memory") : -ENOMEM;
        }
    }
    *normalized = out;
    return 0;
}

int cbx__schema_normalizes_to(const cbx_param *params, json_t *const *defaults, const json_t *value,
                              const json_t *norm)
{
    if ((value && !json_is_object(value)) || !json_is_object(norm))
        return 0;
    size_t added = 0, i = 0;
    for (const cbx_param *p = params; p && p->name; p++, i++) {
        if (!p->default_json || (value && json_object_get(value, p->name)))
            continue;
        const json_t *v = json_object_get(norm, p->name);
        if (!v || !defaults || !defaults[i] || !json_equal(v, defaults[i]))
            return 0;
        added++;
    }
    if (json_object_size(norm) != (value ? json_object_size(value) : 0) + added)
        return 0;
    const char *key;
    size_t len;
    json_t *v;
    json_object_keylen_foreach((json_t *)value, key, len, v)
    {
        const json_t *w = json_object_getn(norm, key, len);
        if (!w || !json_equal(v, w))
            return 0;
    }
    return 1;
}

int cbx__schema_revalidate(const cbx_param *params, json_t *const *defaults, const json_t *value,
                           const json_t *norm, json_t **normalized)
{
    if (!json_is_object(value) || !json_is_object(norm) || !defaults)
        return 0;
    size_t added = 0, i = 0;
    for (const cbx_param *p = params; p && p->name; p++, i++) {
        if (!p->default_json || json_object_get(value, p->name))
            continue;
        const json_t *v = json_object_get(norm, p->name);
        if (!v || !defaults[i] || !json_equal(v, defaults[i]))
            return 0;
        added++;
    }
    if (json_object_size(norm) != json_object_size(value) + added)
        return 0;
    json_t *out = NULL;
    const char *key;
    size_t len;
    json_t *v;
    json_object_keylen_foreach((json_t *)value, key, len, v)
    {
        const json_t *w = json_object_getn(norm, key, len);
        if (!w)
            goto no; /* a member norm lacks (and so one of norm's that value lacks) */
        if (json_equal(v, w))
            continue;
        const cbx_param *p = find_param(params, key);
        cbx_diag d = {0};
        int bad = !p || check_value(p, v, p->name, &d);
        cbx_diag_clear(&d);
        if (bad)
            goto no;
        if (!out && !(out = json_copy((json_t *)norm)))
            goto no;
        json_t *c = cbx__json_copy(v);
        if (!c || json_object_setn_new(out, key, len, c) < 0)
            goto no;
    }
    *normalized = out ? out : json_incref((json_t *)norm);
    return 1;
no:
    json_decref(out);
    return 0;
}

int cbx_schema_validate(const cbx_param *params, const json_t *value, json_t **normalized,
                        cbx_diag *diag)
{
    return cbx__schema_validate(params, NULL, value, normalized, diag);
}

/* ---- JSON Schema -------------------------------------------------------------------------- */

static int set_bounds(json_t *prop, const cbx_param *p)
{
    const char *lo = NULL, *hi = NULL;
    switch (p->type) {
    case CBX_PARAM_INTEGER:
    case CBX_PARAM_NUMBER:
        lo = "minimum", hi = "maximum";
        break;
    case CBX_PARAM_STRING:
        lo = "minLength", hi = "maxLength";
        break;
    case CBX_PARAM_ARRAY:
        lo = "minItems", hi = "maxItems";
        break;
    case CBX_PARAM_OBJECT:
        lo = "minProperties", hi = "maxProperties";
        break;
    default:
        return 0;
    }
    int rc = 0;
    if (p->has_min)
        rc |= json_object_set_new(prop, lo, json_num(p->min));
    if (p->has_max)
        rc |= json_object_set_new(prop, hi, json_num(p->max));
    return rc;
}

static json_t *param_to_json(const cbx_param *p)
{
    json_t *prop = json_object();
    if (!prop)
        return NULL;
    int rc = 0;
    if (p->type != CBX_PARAM_ANY)
        rc |= json_object_set_new(prop, "type", json_string(cbx_param_type_name(p->type)));
    if (p->description)
        rc |= json_object_set_new(prop, "description", json_string(p->description));
    if (p->default_json) {
        json_t *def = json_loads(p->default_json, JSON_DECODE_ANY, NULL);
        if (def)
            rc |= json_object_set_new(prop, "default", def);
    }
    if (p->enum_values) {
        json_t *e = json_array();
        for (const char *const *s = p->enum_values; e && *s; s++)
            rc |= json_array_append_new(e, json_string(*s));
        rc |= json_object_set_new(prop, "enum", e);
    }
    rc |= set_bounds(prop, p);
    if (p->type == CBX_PARAM_ARRAY && p->items != CBX_PARAM_ANY)
        rc |= json_object_set_new(prop, "items",
                                  json_pack("{s:s}", "type", cbx_param_type_name(p->items)));
    if (p->secret)
        rc |= json_object_set_new(prop, "writeOnly", json_true());
    if (rc) {
        json_decref(prop);
        return NULL;
    }
    return prop;
}

json_t *cbx_schema_to_json(const cbx_param *params)
{
    json_t *props = json_object(), *required = json_array();
    json_t *s = json_object();
    if (!props || !required || !s)
        goto fail;
    for (const cbx_param *p = params; p && p->name; p++) {
        json_t *prop = param_to_json(p);
        if (!prop || json_object_set_new(props, p->name, prop) < 0)
            goto fail;
        if (p->required && json_array_append_new(required, json_string(p->name)) < 0)
            goto fail;
    }
    if (json_object_set_new(s, "$schema",
                            json_string("https://json-schema.org/draft/2020-12/schema")) < 0 ||
        json_object_set_new(s, "type", json_string("object")) < 0 ||
        json_object_set(s, "properties", props) < 0 ||
        json_object_set(s, "required", required) < 0 ||
        json_object_set_new(s, "additionalProperties", json_false()) < 0)
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

/* ---- redaction ---------------------------------------------------------------------------- */

json_t *cbx_schema_redact(const cbx_param *params, const json_t *value)
{
    if (!value)
        return NULL;
    json_t *out = json_deep_copy(value);
    if (!out || !json_is_object(out))
        return out;
    for (const cbx_param *p = params; p && p->name; p++) {
        if (!p->secret || !json_object_get(out, p->name))
            continue;
        if (json_object_set_new(out, p->name, json_string("***")) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
