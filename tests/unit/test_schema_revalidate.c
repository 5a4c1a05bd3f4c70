/* Validation by difference from the last request's normalized parameters
 * (cbx__schema_revalidate): what differs is checked alone, what does not fit falls back to the
 * full validation, and through the runtime a stream of requests that differ in one value is
 * still checked value by value. */
#include <criterion/criterion.h>

#include <string.h>

#include "cbx/runtime.h"
#include "runtime/builtins.h"
#include "runtime/runtime_internal.h"

static const char *const methods[] = {"GET", "POST", NULL};

static const cbx_param schema[] = {
    {.name = "url", .type = CBX_PARAM_STRING, .required = 1, .has_min = 1, .min = 1},
    {.name = "method", .type = CBX_PARAM_STRING, .default_json = "\"GET\"", .enum_values = methods},
    {.name = "timeout",
     .type = CBX_PARAM_INTEGER,
     .default_json = "30",
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 3600},
    {.name = "args", .type = CBX_PARAM_ARRAY, .items = CBX_PARAM_INTEGER},
    {0},
};

static json_t *defaults[5];

static void setup(void)
{
    defaults[1] = json_string("GET");
    defaults[2] = json_integer(30);
}

static void teardown(void)
{
    json_decref(defaults[1]);
    json_decref(defaults[2]);
}

TestSuite(schema_revalidate, .init = setup, .fini = teardown);

static json_t *full(const char *text)
{
    json_t *v = json_loads(text, 0, NULL), *norm = NULL;
    cr_assert_eq(cbx__schema_validate(schema, defaults, v, &norm, NULL), 0, "%s", text);
    json_decref(v);
    return norm;
}

/* revalidate text against norm: 1 and the result equal to the full validation's, or 0. */
static int by_difference(json_t *norm, const char *text)
{
    json_t *v = json_loads(text, 0, NULL), *out = NULL;
    int r = cbx__schema_revalidate(schema, defaults, v, norm, &out);
    if (r) {
        json_t *want = full(text);
        cr_assert(json_equal(out, want), "%s", text);
        json_decref(want);
        json_decref(out);
    } else {
        cr_assert_null(out);
    }
    json_decref(v);
    return r;
}

Test(schema_revalidate, a_changed_value_that_fits_is_taken)
{
    json_t *norm = full("{\"url\": \"http://a\", \"args\": [1]}");
    cr_assert_eq(by_difference(norm, "{\"url\": \"http://a\", \"args\": [2, 3]}"), 1);
    cr_assert_eq(by_difference(norm, "{\"url\": \"http://b\", \"args\": [1]}"), 1);
    cr_assert_eq(by_difference(norm, "{\"url\": \"http://a\", \"args\": [1], \"timeout\": 30}"), 1);
    /* the same members: norm itself */
    json_t *v = json_loads("{\"url\": \"http://a\", \"args\": [1]}", 0, NULL), *out = NULL;
    cr_assert_eq(cbx__schema_revalidate(schema, defaults, v, norm, &out), 1);
    cr_assert_eq(out, norm);
    json_decref(out);
    json_decref(v);
    /* norm is not changed by a request that differs */
    json_t *again = full("{\"url\": \"http://a\", \"args\": [1]}");
    cr_assert(json_equal(norm, again));
    json_decref(again);
    json_decref(norm);
}

Test(schema_revalidate, a_changed_value_that_does_not_fit_falls_back)
{
    json_t *norm = full("{\"url\": \"http://a\", \"args\": [1], \"timeout\": 5}");
    cr_assert_eq(by_difference(norm, "{\"url\": \"http://a\", \"args\": [\"x\"], \"timeout\": 5}"),
                 0);
    cr_assert_eq(by_difference(norm, "{\"url\": \"http://a\", \"args\": [1], \"timeout\": 0}"), 0);
    cr_assert_eq(by_difference(norm, "{\"url\": \"\", \"args\": [1], \"timeout\": 5}"), 0);
    cr_assert_eq(
        by_difference(norm, "{\"url\": \"http://a\", \"args\": [1], \"timeout\": 5, \"x\": 1}"), 0);
    /* a member left out that norm had given (not a default): the full validation decides */
    cr_assert_eq(by_difference(norm, "{\"url\": \"http://a\", \"args\": [1]}"), 0);
    /* a required one left out */
    cr_assert_eq(by_difference(norm, "{\"args\": [1], \"timeout\": 5}"), 0);
    json_decref(norm);
}

Test(schema_revalidate, a_default_given_otherwise_or_not_an_object)
{
    json_t *norm = full("{\"url\": \"http://a\"}");
    cr_assert_eq(by_difference(norm, "{\"url\": \"http://a\", \"method\": \"POST\"}"), 1);
    cr_assert_eq(by_difference(norm, "{\"url\": \"http://a\", \"method\": \"PATCH\"}"), 0);
    json_t *arr = json_array(), *out = NULL;
    cr_assert_eq(cbx__schema_revalidate(schema, defaults, arr, norm, &out), 0);
    cr_assert_eq(cbx__schema_revalidate(schema, NULL, norm, norm, &out), 0);
    json_decref(arr);
    json_decref(norm);
}

/* Through the runtime: after a good request, one differing in a value that does not fit is
 * still refused, with the full validation's message. */
Test(schema_revalidate, the_runtime_refuses_a_bad_value_after_a_good_one)
{
    cbx_runtime *rt;
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, NULL, &err), 0, "%s", err.msg);
    json_t *good = json_pack("{s:[s,s]}", "argv", "true", "x");
    json_t *bad = json_pack("{s:[s,i]}", "argv", "true", 5);
    cbx_diag d = {0};
    cbx_execution *ex = NULL;
    cr_assert_eq(
        cbx_runtime_submit(rt, &(cbx_request){.executor = "command", .params = good}, &ex, &d), 0,
        "good: %s", d.n ? d.items[0].msg : "");
    cbx_diag_clear(&d);
    int r = cbx_runtime_submit(rt, &(cbx_request){.executor = "command", .params = bad}, NULL, &d);
    cr_assert_neq(r, 0, "a bad argv after a good one was taken");
    cr_assert(d.n > 0 && strstr(d.items[0].where, "argv"), "diag: %s",
              d.n ? d.items[0].where : "(none)");
    cbx_diag_clear(&d);
    cbx_runtime_run(rt);
    cbx_runtime_free(rt);
    json_decref(good);
    json_decref(bad);
}
