/* The dynamodb executor against dynalite on loopback (tests/db/with_dynalite.sh starts it; its
 * address in AWS_ENDPOINT_URL_DYNAMODB): items as plain JSON both ways, updates, deletes, a
 * conditional write raced by eight executions (exactly one wins, the rest fail as
 * ConditionalCheckFailedException, outcome custom), queries and scans across pages, and
 * one-line errors. */
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cbx_runtime *rt;

static void setup(void)
{
    if (!getenv("AWS_ENDPOINT_URL_DYNAMODB"))
        cr_skip_test("no dynalite: run through tests/db/with_dynalite.sh (ctest does)");
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.max_concurrent = 16}, &err), 0, "%s",
                 err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
}

TestSuite(dynamodb, .init = setup, .fini = teardown, .timeout = 120);

static int run_p(json_t *p, cbx_result *r)
{
    int rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "dynamodb", .params = p}, r, NULL);
    json_decref(p);
    return rc;
}

static json_t *params(const char *json)
{
    json_error_t je;
    json_t *p = json_loads(json, 0, &je);
    cr_assert_not_null(p, "%s: %s", json, je.text);
    return p;
}

static int run(const char *json, cbx_result *r)
{
    return run_p(params(json), r);
}

/* A table with a string hash key pk and a number range key sk. */
static void make_table(const char *name)
{
    cbx_result r;
    json_t *p =
        params("{\"operation\": \"action\", \"action\": \"CreateTable\", \"request\": {"
               "\"AttributeDefinitions\": [{\"AttributeName\": \"pk\", \"AttributeType\": \"S\"}, "
               "{\"AttributeName\": \"sk\", \"AttributeType\": \"N\"}], \"KeySchema\": [{"
               "\"AttributeName\": \"pk\", \"KeyType\": \"HASH\"}, {\"AttributeName\": \"sk\", "
               "\"KeyType\": \"RANGE\"}], \"BillingMode\": \"PAY_PER_REQUEST\"}}");
    json_object_set_new(json_object_get(p, "request"), "TableName", json_string(name));
    cr_assert_eq(run_p(p, &r), 0, "%s", r.error);
    cbx_result_clear(&r);
    /* a new table is CREATING for a moment, even in dynalite: wait until it is ACTIVE */
    for (int i = 0; i < 10000; i++) {
        json_t *d = json_pack("{s:s, s:s, s:{s:s}}", "operation", "action", "action",
                              "DescribeTable", "request", "TableName", name);
        cr_assert_eq(run_p(d, &r), 0, "%s", r.error);
        const char *st =
            json_string_value(json_object_get(json_object_get(r.outputs, "Table"), "TableStatus"));
        int active = st && strcmp(st, "ACTIVE") == 0;
        cbx_result_clear(&r);
        if (active)
            return;
    }
    cr_assert_fail("table %s never became ACTIVE", name);
}

static json_t *with_table(const char *json, const char *table)
{
    json_t *p = params(json);
    json_object_set_new(p, "table", json_string(table));
    return p;
}

Test(dynamodb, items_round_trip_as_plain_json)
{
    make_table("roundtrip");
    cbx_result r;
    const char *item = "{\"pk\": \"a\", \"sk\": 1, \"s\": \"héllo\", \"i\": -42, \"f\": 1.5, "
                       "\"t\": true, \"z\": null, \"l\": [1, \"x\", false, [2]], \"m\": {\"n\": "
                       "{\"deep\": 7}}}";
    json_t *p = with_table("{\"operation\": \"put_item\"}", "roundtrip");
    json_object_set_new(p, "item", params(item));
    cr_assert_eq(run_p(p, &r), 0, "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run_p(with_table("{\"operation\": \"get_item\", \"key\": {\"pk\": \"a\", \"sk\": "
                                  "1}, \"consistent_read\": true}",
                                  "roundtrip"),
                       &r),
                 0, "%s", r.error);
    cr_assert(json_is_true(json_object_get(r.outputs, "found")));
    json_t *want = params(item);
    cr_assert(json_equal(json_object_get(r.outputs, "item"), want), "%s",
              json_dumps(json_object_get(r.outputs, "item"), 0));
    json_decref(want);
    cr_assert_str_eq(json_string_value(json_object_get(r.metadata, "action")), "GetItem");
    cbx_result_clear(&r);
}

Test(dynamodb, update_and_delete)
{
    make_table("upd");
    cbx_result r;
    cr_assert_eq(run_p(with_table("{\"operation\": \"put_item\", \"item\": {\"pk\": \"k\", \"sk\": "
                                  "0, \"n\": 1}}",
                                  "upd"),
                       &r),
                 0, "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run_p(with_table("{\"operation\": \"update_item\", \"key\": {\"pk\": \"k\", "
                                  "\"sk\": 0}, \"update_expression\": \"SET n = n + :d, #w = :w\", "
                                  "\"expression_attribute_names\": {\"#w\": \"who\"}, "
                                  "\"expression_attribute_values\": {\":d\": 41, \":w\": "
                                  "[\"ops\"]}, \"return_values\": \"ALL_NEW\"}",
                                  "upd"),
                       &r),
                 0, "%s", r.error);
    const json_t *a = json_object_get(r.outputs, "attributes");
    cr_assert_eq(json_integer_value(json_object_get(a, "n")), 42);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(a, "who"), 0)), "ops");
    cbx_result_clear(&r);
    cr_assert_eq(run_p(with_table("{\"operation\": \"delete_item\", \"key\": {\"pk\": \"k\", "
                                  "\"sk\": 0}, \"return_values\": \"ALL_OLD\"}",
                                  "upd"),
                       &r),
                 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.outputs, "attributes"), "n")),
                 42);
    cbx_result_clear(&r);
    cr_assert_eq(run_p(with_table("{\"operation\": \"get_item\", \"key\": {\"pk\": \"k\", \"sk\": "
                                  "0}}",
                                  "upd"),
                       &r),
                 0, "%s", r.error);
    cr_assert(json_is_false(json_object_get(r.outputs, "found")));
    cr_assert(json_is_null(json_object_get(r.outputs, "item")));
    cbx_result_clear(&r);
}

Test(dynamodb, a_conditional_write_raced_by_eight_has_one_winner)
{
    enum { N = 8 };
    make_table("race");
    cbx_request reqs[N];
    cbx_result res[N];
    json_t *ps[N];
    for (int i = 0; i < N; i++) {
        ps[i] = with_table("{\"operation\": \"put_item\", \"condition_expression\": "
                           "\"attribute_not_exists(pk)\"}",
                           "race");
        json_object_set_new(ps[i], "item",
                            json_pack("{s:s, s:i, s:i}", "pk", "lock", "sk", 0, "owner", i));
        reqs[i] = (cbx_request){.executor = "dynamodb", .params = ps[i]};
    }
    size_t ok = cbx_runtime_execute_many(rt, reqs, N, 0, res);
    cr_assert_eq(ok, 1, "%zu executions won the conditional write", ok);
    int winner = -1;
    for (int i = 0; i < N; i++) {
        if (res[i].status == CBX_STATUS_SUCCESS) {
            winner = i;
        } else {
            const json_t *a = json_array_get(res[i].attempts, 0);
            cr_assert_str_eq(json_string_value(json_object_get(a, "outcome")), "custom");
            cr_assert_str_eq(json_string_value(json_object_get(res[i].metadata, "error_type")),
                             "ConditionalCheckFailedException");
            cr_assert_not_null(strstr(res[i].error, "ConditionalCheckFailedException"), "%s",
                               res[i].error);
        }
        cbx_result_clear(&res[i]);
        json_decref(ps[i]);
    }
    cbx_result r;
    cr_assert_eq(run_p(with_table("{\"operation\": \"get_item\", \"key\": {\"pk\": \"lock\", "
                                  "\"sk\": 0}}",
                                  "race"),
                       &r),
                 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.outputs, "item"), "owner")),
                 winner);
    cbx_result_clear(&r);
}

Test(dynamodb, query_and_scan_follow_pages)
{
    make_table("pages");
    cbx_result r;
    for (int i = 0; i < 25; i++) {
        json_t *p = with_table("{\"operation\": \"put_item\"}", "pages");
        json_object_set_new(p, "item",
                            json_pack("{s:s, s:i, s:s}", "pk", i < 23 ? "p" : "q", "sk", i, "v",
                                      i % 2 ? "odd" : "even"));
        cr_assert_eq(run_p(p, &r), 0, "%s", r.error);
        cbx_result_clear(&r);
    }
    const char *q = "{\"operation\": \"query\", \"key_condition_expression\": \"pk = :p\", "
                    "\"expression_attribute_values\": {\":p\": \"p\"}, \"limit\": 10}";
    cr_assert_eq(run_p(with_table(q, "pages"), &r), 0, "%s", r.error);
    const json_t *items = json_object_get(r.outputs, "items");
    cr_assert_eq(json_array_size(items), 23);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "pages")), 3);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "count")), 23);
    cr_assert(json_is_false(json_object_get(r.outputs, "truncated")));
    for (int i = 0; i < 23; i++)
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(items, (size_t)i), "sk")),
                     i);
    cbx_result_clear(&r);
    json_t *p2 = with_table(q, "pages");
    json_object_set_new(p2, "max_pages", json_integer(2));
    cr_assert_eq(run_p(p2, &r), 0, "%s", r.error);
    cr_assert_eq(json_array_size(json_object_get(r.outputs, "items")), 20);
    cr_assert(json_is_true(json_object_get(r.outputs, "truncated")));
    const json_t *last = json_object_get(r.outputs, "last_evaluated_key");
    cr_assert_eq(json_integer_value(json_object_get(last, "sk")), 19);
    /* and on from there */
    json_t *p3 = with_table(q, "pages");
    json_object_set(p3, "exclusive_start_key", (json_t *)last);
    cbx_result r3;
    cr_assert_eq(run_p(p3, &r3), 0, "%s", r3.error);
    cr_assert_eq(json_array_size(json_object_get(r3.outputs, "items")), 3);
    cbx_result_clear(&r3);
    cbx_result_clear(&r);
    cr_assert_eq(run_p(with_table("{\"operation\": \"scan\", \"filter_expression\": \"v = :v\", "
                                  "\"expression_attribute_values\": {\":v\": \"odd\"}, "
                                  "\"limit\": 7}",
                                  "pages"),
                       &r),
                 0, "%s", r.error);
    cr_assert_eq(json_array_size(json_object_get(r.outputs, "items")), 12);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "scanned_count")), 25);
    cr_assert_geq(json_integer_value(json_object_get(r.outputs, "pages")), 4);
    cbx_result_clear(&r);
}

Test(dynamodb, errors_are_one_line)
{
    cbx_result r;
    cr_assert_eq(run("{\"operation\": \"get_item\", \"table\": \"no_such_table\", \"key\": "
                     "{\"pk\": \"a\"}}",
                     &r),
                 CBX_EFAILED);
    cr_assert_str_eq(r.error, "dynamodb: GetItem: ResourceNotFoundException: Requested resource "
                              "not found");
    cbx_result_clear(&r);
    cr_assert_eq(run("{\"operation\": \"get_item\", \"table\": \"tbl\"}", &r), CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(r.error, "key: required by operation get_item"), "%s", r.error);
    cbx_result_clear(&r);
    cr_assert_eq(run("{\"operation\": \"scan\", \"table\": \"tbl\", \"endpoint_url\": "
                     "\"ftp://x\"}",
                     &r),
                 CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(r.error, "endpoint_url"), "%s", r.error);
    cbx_result_clear(&r);
    /* nothing listens there: curl's message, one line */
    cr_assert_eq(run("{\"operation\": \"scan\", \"table\": \"tbl\", \"endpoint_url\": "
                     "\"http://127.0.0.1:1\"}",
                     &r),
                 CBX_EFAILED);
    cr_assert_not_null(strstr(r.error, "dynamodb: Scan: "), "%s", r.error);
    cr_assert_null(strchr(r.error, '\n'));
    cbx_result_clear(&r);
}
