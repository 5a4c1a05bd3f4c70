/* Parameter schemas on their own: every kind of validation problem with its path and message,
 * several at once, defaults, the JSON Schema export and redaction of secrets. */
#include <criterion/criterion.h>

#include <string.h>

#include "cbx/registry.h"

static const char *const methods[] = {"GET", "POST", "PUT", NULL};

static const cbx_param schema[] = {
    {.name = "url",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .description = "where to send it",
     .has_min = 1,
     .min = 1},
    {.name = "method",
     .type = CBX_PARAM_STRING,
     .default_json = "\"GET\"",
     .enum_values = methods,
     .description = "HTTP method"},
    {.name = "timeout",
     .type = CBX_PARAM_INTEGER,
     .default_json = "30",
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 3600},
    {.name = "ratio", .type = CBX_PARAM_NUMBER, .has_min = 1, .min = 0, .has_max = 1, .max = 1},
    {.name = "verbose", .type = CBX_PARAM_BOOLEAN, .default_json = "false"},
    {.name = "argv",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 4},
    {.name = "headers", .type = CBX_PARAM_OBJECT, .has_max = 1, .max = 2},
    {.name = "body", .type = CBX_PARAM_ANY},
    {.name = "token", .type = CBX_PARAM_STRING, .secret = 1, .description = "bearer token"},
    {.name = "label", .type = CBX_PARAM_STRING, .has_max = 1, .max = 5},
    {.name = "extra", .type = CBX_PARAM_ARRAY, .items = CBX_PARAM_ANY, .default_json = "[]"},
    {0},
};

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    cr_assert_not_null(v, "bad JSON in the test: %s", je.text);
    return v;
}

/* Validate text against schema; returns the code, problems in *d (caller clears). */
static int check(const char *text, cbx_diag *d, json_t **norm)
{
    json_t *v = load(text);
    int rc = cbx_schema_validate(schema, v, norm, d);
    json_decref(v);
    return rc;
}

/* The problem reported at where, or NULL. */
static const cbx_err *at(const cbx_diag *d, const char *where)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->items[i].where, where) == 0)
            return &d->items[i];
    return NULL;
}

/* Exactly one problem, at where, whose message holds fragment. */
static void expect_one(const char *text, const char *where, const char *fragment)
{
    cbx_diag d = {0};
    json_t *norm = (json_t *)1;
    cr_assert_eq(check(text, &d, &norm), CBX_EINVAL_CONFIG, "%s should be refused", text);
    cr_assert_null(norm, "no normalized copy on failure");
    cr_assert_eq(d.n, 1, "%s: %zu problems (first: %s: %s)", text, d.n, d.n ? d.items[0].where : "",
                 d.n ? d.items[0].msg : "");
    cr_assert_str_eq(d.items[0].where, where);
    cr_assert_eq(d.items[0].code, CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(d.items[0].msg, fragment), "'%s' lacks '%s'", d.items[0].msg,
                       fragment);
    cbx_diag_clear(&d);
}

Test(schema, type_names)
{
    cr_assert_str_eq(cbx_param_type_name(CBX_PARAM_STRING), "string");
    cr_assert_str_eq(cbx_param_type_name(CBX_PARAM_INTEGER), "integer");
    cr_assert_str_eq(cbx_param_type_name(CBX_PARAM_NUMBER), "number");
    cr_assert_str_eq(cbx_param_type_name(CBX_PARAM_BOOLEAN), "boolean");
    cr_assert_str_eq(cbx_param_type_name(CBX_PARAM_ARRAY), "array");
    cr_assert_str_eq(cbx_param_type_name(CBX_PARAM_OBJECT), "object");
    cr_assert_str_eq(cbx_param_type_name(CBX_PARAM_ANY), "any");
    cr_assert_str_eq(cbx_param_type_name(CBX_PARAM_TYPE__COUNT), "unknown");
}

Test(schema, accepts_a_good_request)
{
    cbx_diag d = {0};
    cr_assert_eq(check("{\"url\": \"http://x\", \"method\": \"POST\", \"timeout\": 5,"
                       " \"ratio\": 0.5, \"verbose\": true, \"argv\": [\"a\", \"b\"],"
                       " \"headers\": {\"A\": \"1\"}, \"body\": null, \"label\": \"héllo\"}",
                       &d, NULL),
                 0);
    cr_assert_eq(d.n, 0);
}

Test(schema, unknown_parameter_with_suggestion)
{
    expect_one("{\"url\": \"u\", \"timout\": 5}", "timout",
               "unknown parameter 'timout'; did you mean 'timeout'?");
}

Test(schema, unknown_parameter_lists_the_known_ones)
{
    expect_one("{\"url\": \"u\", \"zzzzzz\": 5}", "zzzzzz", "known: url, method, timeout");
}

Test(schema, unknown_parameter_when_none_are_taken)
{
    static const cbx_param none[] = {{0}};
    cbx_diag d = {0};
    json_t *v = load("{\"x\": 1}");
    cr_assert_eq(cbx_schema_validate(none, v, NULL, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.items[0].where, "x");
    cr_assert_not_null(strstr(d.items[0].msg, "takes no parameters"));
    json_decref(v);
    cbx_diag_clear(&d);
    /* NULL schema: the same as an empty one */
    v = load("{}");
    cr_assert_eq(cbx_schema_validate(NULL, v, NULL, &d), 0);
    json_decref(v);
}

Test(schema, missing_required)
{
    expect_one("{\"timeout\": 5}", "url", "missing required parameter (expected string)");
}

Test(schema, wrong_type_names_expected_and_got)
{
    expect_one("{\"url\": \"u\", \"timeout\": \"5\"}", "timeout", "expected integer, got string");
    expect_one("{\"url\": 7}", "url", "expected string, got integer");
    expect_one("{\"url\": \"u\", \"verbose\": 1}", "verbose", "expected boolean, got integer");
    expect_one("{\"url\": \"u\", \"argv\": \"ls\"}", "argv", "expected array, got string");
    expect_one("{\"url\": \"u\", \"headers\": []}", "headers", "expected object, got array");
    expect_one("{\"url\": \"u\", \"ratio\": \"x\"}", "ratio", "expected number, got string");
    expect_one("{\"url\": null}", "url", "expected string, got null");
}

Test(schema, integers_accept_json_integers_only)
{
    expect_one("{\"url\": \"u\", \"timeout\": 5.0}", "timeout", "expected integer, got number");
    expect_one("{\"url\": \"u\", \"timeout\": 5.5}", "timeout", "expected integer, got number");
}

Test(schema, numbers_accept_integers_and_reals)
{
    cbx_diag d = {0};
    cr_assert_eq(check("{\"url\": \"u\", \"ratio\": 1}", &d, NULL), 0);
    cr_assert_eq(check("{\"url\": \"u\", \"ratio\": 0.25}", &d, NULL), 0);
    cr_assert_eq(d.n, 0);
}

Test(schema, enum_mismatch_lists_allowed_values)
{
    expect_one("{\"url\": \"u\", \"method\": \"FETCH\"}", "method",
               "expected one of GET, POST, PUT; got \"FETCH\"");
}

Test(schema, value_bounds)
{
    expect_one("{\"url\": \"u\", \"timeout\": 0}", "timeout", "expected integer >= 1, got 0");
    expect_one("{\"url\": \"u\", \"timeout\": 3601}", "timeout",
               "expected integer <= 3600, got 3601");
    expect_one("{\"url\": \"u\", \"ratio\": 1.5}", "ratio", "expected number <= 1, got 1.5");
    expect_one("{\"url\": \"u\", \"ratio\": -0.5}", "ratio", "expected number >= 0, got -0.5");
}

Test(schema, length_bounds)
{
    expect_one("{\"url\": \"\"}", "url", "expected string of at least 1 character, got 0");
    /* characters, not bytes: 5 characters in 6 bytes fit, 6 do not */
    expect_one("{\"url\": \"u\", \"label\": \"héllo!\"}", "label",
               "expected string of at most 5 characters, got 6");
    expect_one("{\"url\": \"u\", \"argv\": []}", "argv",
               "expected array with at least 1 item, got 0");
    expect_one("{\"url\": \"u\", \"argv\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", "argv",
               "expected array with at most 4 items, got 5");
    expect_one("{\"url\": \"u\", \"headers\": {\"a\":1,\"b\":2,\"c\":3}}", "headers",
               "expected object with at most 2 properties, got 3");
}

Test(schema, array_items_each_reported_with_index)
{
    cbx_diag d = {0};
    cr_assert_eq(check("{\"url\": \"u\", \"argv\": [\"ls\", \"-l\", 3, true]}", &d, NULL),
                 CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 2);
    cr_assert_str_eq(d.items[0].where, "argv[2]");
    cr_assert_str_eq(d.items[0].msg, "expected string, got integer");
    cr_assert_str_eq(d.items[1].where, "argv[3]");
    cr_assert_str_eq(d.items[1].msg, "expected string, got boolean");
    cbx_diag_clear(&d);
    /* items of any type */
    cr_assert_eq(check("{\"url\": \"u\", \"extra\": [1, \"a\", null, {}]}", &d, NULL), 0);
}

Test(schema, not_an_object)
{
    cbx_diag d = {0};
    json_t *v = load("[1, 2]");
    cr_assert_eq(cbx_schema_validate(schema, v, NULL, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.items[0].where, "");
    cr_assert_not_null(strstr(d.items[0].msg, "expected parameters as an object, got array"));
    json_decref(v);
    cbx_diag_clear(&d);
}

Test(schema, every_problem_reported_at_once)
{
    cbx_diag d = {0};
    cr_assert_eq(check("{\"method\": \"FETCH\", \"timeout\": \"x\", \"argv\": [1],"
                       " \"verbos\": true, \"nonsense_key\": 1}",
                       &d, NULL),
                 CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 6, "got %zu problems", d.n);
    /* schema order first, then unknown keys in the order given */
    cr_assert_str_eq(d.items[0].where, "url");
    cr_assert_str_eq(d.items[1].where, "method");
    cr_assert_str_eq(d.items[2].where, "timeout");
    cr_assert_str_eq(d.items[3].where, "argv[0]");
    cr_assert_str_eq(d.items[4].where, "verbos");
    cr_assert_str_eq(d.items[5].where, "nonsense_key");
    cr_assert_not_null(strstr(at(&d, "url")->msg, "missing required"));
    cr_assert_not_null(strstr(at(&d, "verbos")->msg, "did you mean 'verbose'?"));
    cr_assert_null(strstr(at(&d, "nonsense_key")->msg, "did you mean"));
    cbx_err one;
    cr_assert_eq(cbx_diag_first(&d, &one), CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(one.msg, "(and 5 more)"));
    cbx_diag_clear(&d);
}

Test(schema, problems_append_to_an_existing_diag)
{
    cbx_diag d = {0};
    cbx_diag_add(&d, CBX_EPARSE, "earlier", 0, 0, "an earlier problem");
    cr_assert_eq(check("{}", &d, NULL), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 2);
    cr_assert_str_eq(d.items[0].where, "earlier");
    cr_assert_str_eq(d.items[1].where, "url");
    cbx_diag_clear(&d);
}

Test(schema, works_without_a_diag)
{
    json_t *v = load("{\"timeout\": 1}");
    cr_assert_eq(cbx_schema_validate(schema, v, NULL, NULL), CBX_EINVAL_CONFIG);
    json_decref(v);
}

Test(schema, defaults_applied_to_a_copy)
{
    json_t *in = load("{\"url\": \"u\", \"timeout\": 7}");
    json_t *norm = NULL;
    cbx_diag d = {0};
    cr_assert_eq(cbx_schema_validate(schema, in, &norm, &d), 0);
    cr_assert_not_null(norm);
    cr_assert_neq(norm, in);
    json_t *want = load("{\"url\": \"u\", \"timeout\": 7, \"method\": \"GET\", \"verbose\": false,"
                        " \"extra\": []}");
    cr_assert(json_equal(norm, want), "normalized: %s", json_dumps(norm, JSON_COMPACT));
    /* the input is untouched */
    cr_assert_eq(json_object_size(in), 2);
    /* the copy is deep: changing it does not reach the input */
    json_object_set_new(norm, "url", json_string("changed"));
    cr_assert_str_eq(json_string_value(json_object_get(in, "url")), "u");
    json_decref(want);
    json_decref(norm);
    json_decref(in);
}

Test(schema, the_copy_is_deep_for_every_kind_of_value)
{
    json_t *in = load("{\"url\": \"u\", \"body\": {\"list\": [1, 2.5, \"s\", true, false, null,"
                      " {\"k\": []}], \"empty\": {}}, \"headers\": {\"a\": \"b\"}}");
    json_object_set_new(json_object_get(in, "body"), "nul", json_stringn("a\0b", 3));
    json_t *norm = NULL;
    cr_assert_eq(cbx_schema_validate(schema, in, &norm, NULL), 0);
    json_t *body = json_object_get(norm, "body");
    cr_assert(json_equal(body, json_object_get(in, "body")));
    cr_assert_eq(json_string_length(json_object_get(body, "nul")), 3);
    /* nothing that can change is shared with the input */
    json_t *list = json_object_get(body, "list");
    cr_assert_neq(list, json_object_get(json_object_get(in, "body"), "list"));
    json_integer_set(json_array_get(list, 0), 7);
    json_real_set(json_array_get(list, 1), 7.5);
    json_string_set(json_array_get(list, 2), "changed");
    json_array_append_new(json_object_get(json_array_get(list, 6), "k"), json_integer(1));
    json_object_set_new(json_object_get(norm, "headers"), "c", json_string("d"));
    json_t *want =
        load("{\"list\": [1, 2.5, \"s\", true, false, null, {\"k\": []}], \"empty\": {}}");
    json_object_set_new(want, "nul", json_stringn("a\0b", 3));
    cr_assert(json_equal(json_object_get(in, "body"), want));
    cr_assert_eq(json_object_size(json_object_get(in, "headers")), 1);
    json_decref(want);
    json_decref(norm);
    json_decref(in);
}

Test(schema, a_deeply_nested_value_is_copied_whole)
{
    json_t *in = load("{\"url\": \"u\"}");
    json_t *v = json_integer(42);
    for (int i = 0; i < 200; i++) {
        json_t *wrap = i % 2 ? json_array() : json_object();
        if (i % 2)
            json_array_append_new(wrap, v);
        else
            json_object_set_new(wrap, "in", v);
        v = wrap;
    }
    json_object_set_new(in, "body", v);
    json_t *norm = NULL;
    cr_assert_eq(cbx_schema_validate(schema, in, &norm, NULL), 0);
    cr_assert(json_equal(json_object_get(norm, "body"), v));
    json_decref(norm);
    json_decref(in);
}

Test(schema, a_value_that_contains_itself_is_refused)
{
    json_t *in = load("{\"url\": \"u\", \"body\": {\"inner\": {}}}");
    json_t *inner = json_object_get(json_object_get(in, "body"), "inner");
    json_object_set(inner, "loop", json_object_get(in, "body")); /* body -> inner -> body */
    json_t *norm = (json_t *)1;
    cbx_diag d = {0};
    cr_assert_neq(cbx_schema_validate(schema, in, &norm, &d), 0);
    cr_assert_null(norm);
    cbx_diag_clear(&d);
    json_object_del(inner, "loop"); /* undo the cycle, or it never frees */
    json_decref(in);
}

Test(schema, null_params_mean_empty)
{
    static const cbx_param opt[] = {{.name = "n", .type = CBX_PARAM_INTEGER, .default_json = "3"},
                                    {0}};
    json_t *norm = NULL;
    cr_assert_eq(cbx_schema_validate(opt, NULL, &norm, NULL), 0);
    cr_assert_eq(json_integer_value(json_object_get(norm, "n")), 3);
    json_decref(norm);
}

/* ---- JSON Schema ------------------------------------------------------------------------- */

Test(schema, exports_json_schema)
{
    json_t *got = cbx_schema_to_json(schema);
    cr_assert_not_null(got);
    json_t *want = load(
        "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
        " \"type\": \"object\","
        " \"properties\": {"
        "  \"url\": {\"type\": \"string\", \"description\": \"where to send it\", \"minLength\": "
        "1},"
        "  \"method\": {\"type\": \"string\", \"description\": \"HTTP method\", \"default\": "
        "\"GET\","
        "             \"enum\": [\"GET\", \"POST\", \"PUT\"]},"
        "  \"timeout\": {\"type\": \"integer\", \"default\": 30, \"minimum\": 1, \"maximum\": "
        "3600},"
        "  \"ratio\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1},"
        "  \"verbose\": {\"type\": \"boolean\", \"default\": false},"
        "  \"argv\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"minItems\": 1,"
        "           \"maxItems\": 4},"
        "  \"headers\": {\"type\": \"object\", \"maxProperties\": 2},"
        "  \"body\": {},"
        "  \"token\": {\"type\": \"string\", \"description\": \"bearer token\", \"writeOnly\": "
        "true},"
        "  \"label\": {\"type\": \"string\", \"maxLength\": 5},"
        "  \"extra\": {\"type\": \"array\", \"default\": []}"
        " },"
        " \"required\": [\"url\"],"
        " \"additionalProperties\": false}");
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert(json_equal(got, want), "got %s", g);
    free(g);
    json_decref(got);
    json_decref(want);
}

Test(schema, exports_fractional_bounds_as_numbers)
{
    static const cbx_param p[] = {{.name = "q", .type = CBX_PARAM_NUMBER, .has_min = 1, .min = 0.5},
                                  {0}};
    json_t *got = cbx_schema_to_json(p);
    json_t *min =
        json_object_get(json_object_get(json_object_get(got, "properties"), "q"), "minimum");
    cr_assert(json_is_real(min));
    cr_assert_float_eq(json_real_value(min), 0.5, 1e-12);
    cr_assert_eq(json_array_size(json_object_get(got, "required")), 0);
    json_decref(got);
}

/* ---- redaction --------------------------------------------------------------------------- */

Test(schema, redacts_secrets_only)
{
    static const cbx_param p[] = {
        {.name = "user", .type = CBX_PARAM_STRING},
        {.name = "password", .type = CBX_PARAM_STRING, .secret = 1},
        {.name = "keys", .type = CBX_PARAM_ARRAY, .secret = 1},
        {.name = "unset_secret", .type = CBX_PARAM_STRING, .secret = 1},
        {0},
    };
    json_t *in = load("{\"user\": \"ann\", \"password\": \"hunter2\", \"keys\": [\"k1\"],"
                      " \"other\": {\"password\": \"x\"}}");
    char *before = json_dumps(in, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *out = cbx_schema_redact(p, in);
    cr_assert_not_null(out);
    cr_assert_neq(out, in);
    json_t *want = load("{\"user\": \"ann\", \"password\": \"***\", \"keys\": \"***\","
                        " \"other\": {\"password\": \"x\"}}");
    cr_assert(json_equal(out, want), "redacted: %s", json_dumps(out, JSON_COMPACT));
    cr_assert_null(json_object_get(out, "unset_secret"), "an absent secret stays absent");
    char *after = json_dumps(in, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert_str_eq(before, after, "the input is not modified");
    free(before);
    free(after);
    json_decref(want);
    json_decref(out);
    json_decref(in);
}

Test(schema, redact_of_nothing)
{
    cr_assert_null(cbx_schema_redact(schema, NULL));
    json_t *s = json_string("plain");
    json_t *out = cbx_schema_redact(schema, s);
    cr_assert(json_equal(out, s));
    json_decref(out);
    json_decref(s);
}
