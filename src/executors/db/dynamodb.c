/* The dynamodb executor's type: GetItem, PutItem, UpdateItem, DeleteItem, Query and Scan (with
 * pagination), or any other action with a raw request, over DynamoDB's JSON API (see ddb.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "executors/builtins.h"
#include "executors/db/ddb.h"
#include "executors/aws_request.h"
#include "executors/http.h"

#define TARGET_PREFIX "DynamoDB_20120810."

/* The operations by their parameter name, with DynamoDB's action name. */
static const struct {
    const char *op, *action;
} ops[] = {
    {"get_item", "GetItem"},       {"put_item", "PutItem"}, {"update_item", "UpdateItem"},
    {"delete_item", "DeleteItem"}, {"query", "Query"},      {"scan", "Scan"},
};
static const char *const op_names[] = {"get_item", "put_item", "update_item", "delete_item",
                                       "query",    "scan",     "action",      NULL};

/* Per-attempt state: the transfer first (the http machinery sees only it). */
typedef struct ddb_task {
    cbx__http_xfer x;
    cbx_task *t;
    cbx__http_loop *lp;
    json_t *body;     /* the request (DynamoDB's JSON), kept across pages */
    json_t *http;     /* the http parameters of the transfer out (borrowed by it) */
    json_t *items;    /* query/scan: the plain items so far */
    json_t *last_key; /* query/scan: LastEvaluatedKey of the last page (raw) */
    json_int_t count, scanned;
    int pages;
    int began; /* cbx__http_loop_begin was called */
    char action[64];
    cbx__aws_auth auth;
    char endpoint[512];
} ddb_task;

static const char *str(const json_t *p, const char *k)
{
    return json_string_value(json_object_get(p, k));
}

/* ---- the request -------------------------------------------------------------------------- */

static int set_item(json_t *body, const char *key, const json_t *plain)
{
    if (!plain)
        return 0;
    json_t *m = cbx__ddb_to_item(plain);
    return m ? json_object_set_new(body, key, m) : -ENOMEM;
}

static void set_copy(json_t *body, const char *key, const json_t *v)
{
    if (v && !json_is_null(v))
        json_object_set(body, key, (json_t *)v);
}

/* DynamoDB's request for the attempt's parameters. NULL when out of memory. */
static json_t *make_body(const json_t *p, const char *op)
{
    if (strcmp(op, "action") == 0) {
        const json_t *r = json_object_get(p, "request");
        return r ? json_deep_copy(r) : json_object();
    }
    json_t *b = json_pack("{s:s}", "TableName", str(p, "table"));
    if (!b)
        return NULL;
    int r = set_item(b, "Key", json_object_get(p, "key"));
    r |= set_item(b, "Item", json_object_get(p, "item"));
    r |=
        set_item(b, "ExpressionAttributeValues", json_object_get(p, "expression_attribute_values"));
    r |= set_item(b, "ExclusiveStartKey", json_object_get(p, "exclusive_start_key"));
    if (r < 0) {
        json_decref(b);
        return NULL;
    }
    static const struct {
        const char *param, *field;
    } copies[] = {
        {"update_expression", "UpdateExpression"},
        {"condition_expression", "ConditionExpression"},
        {"key_condition_expression", "KeyConditionExpression"},
        {"filter_expression", "FilterExpression"},
        {"projection_expression", "ProjectionExpression"},
        {"expression_attribute_names", "ExpressionAttributeNames"},
        {"index_name", "IndexName"},
        {"consistent_read", "ConsistentRead"},
        {"scan_index_forward", "ScanIndexForward"},
        {"limit", "Limit"},
        {"return_values", "ReturnValues"},
    };
    for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++)
        set_copy(b, copies[i].field, json_object_get(p, copies[i].param));
    return b;
}

static void ddb_on_end(cbx__http_xfer *x);

/* Send d->body as the next request. 0, or a negative code with a message in err. */
static int send_request(ddb_task *d, cbx_err *err)
{
    const json_t *p = cbx_task_params(d->t);
    cbx__http_xfer *x = &d->x;
    char *text = json_dumps(d->body, JSON_COMPACT);
    char target[128];
    snprintf(target, sizeof target, TARGET_PREFIX "%s", d->action);
    json_decref(d->http);
    d->http = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:s?, s:b, s:I, s:I, s:b}", "url", d->endpoint, "method", "POST",
        "headers", "Content-Type", "application/x-amz-json-1.0", "X-Amz-Target", target, "body",
        text, "parse_json", 0, "max_body_bytes", (json_int_t)64 << 20, "timeout_ms",
        json_integer_value(json_object_get(p, "timeout_ms")), "follow_redirects", 0);
    free(text);
    if (!d->http)
        return cbx_err_set(err, -ENOMEM, "dynamodb: out of memory");
    return cbx__aws_send(x, d->http, p, &d->auth, "dynamodb", err);
}

/* ---- the response -------------------------------------------------------------------------- */

static void finish(ddb_task *d, cbx_outcome k, json_t *out, json_t *meta, const char *msg)
{
    cbx_task *t = d->t;
    json_decref(d->body);
    json_decref(d->http);
    json_decref(d->items);
    json_decref(d->last_key);
    d->body = d->http = d->items = d->last_key = NULL;
    d->x.phase = 3;
    if (d->began)
        cbx__http_loop_end(d->lp);
    if (msg && msg[0])
        cbx_task_done(t, k, out, meta, "%s", msg);
    else
        cbx_task_done(t, k, out, meta, NULL);
}

/* DynamoDB's error: __type's last part and the message, with the outcome it means. */
static cbx_outcome error_kind(const json_t *resp, long status, char *type, size_t tlen, char *msg,
                              size_t mlen)
{
    const char *ty = str(resp, "__type"), *m = str(resp, "message");
    if (!m)
        m = str(resp, "Message");
    const char *hash = ty ? strrchr(ty, '#') : NULL;
    snprintf(type, tlen, "%s", hash ? hash + 1 : ty ? ty : "");
    snprintf(msg, mlen, "%s", m ? m : "");
    if (strcmp(type, "ConditionalCheckFailedException") == 0)
        return CBX_OUTCOME_CUSTOM;
    if (strcmp(type, "ProvisionedThroughputExceededException") == 0 ||
        strcmp(type, "ThrottlingException") == 0 || strcmp(type, "RequestLimitExceeded") == 0 ||
        status == 429)
        return CBX_OUTCOME_RATE_LIMITED;
    return CBX_OUTCOME_ERROR;
}

static json_t *outputs_for(ddb_task *d, const char *op, json_t *resp)
{
    if (strcmp(op, "action") == 0)
        return json_incref(resp);
    if (strcmp(op, "get_item") == 0) {
        const json_t *item = json_object_get(resp, "Item");
        return json_pack("{s:o, s:b}", "item", item ? cbx__ddb_from_item(item) : json_null(),
                         "found", item != NULL);
    }
    if (strcmp(op, "query") == 0 || strcmp(op, "scan") == 0) {
        json_t *o = json_pack("{s:O, s:I, s:I, s:i, s:b}", "items", d->items, "count", d->count,
                              "scanned_count", d->scanned, "pages", d->pages, "truncated",
                              d->last_key != NULL);
        if (o && d->last_key)
            json_object_set_new(o, "last_evaluated_key", cbx__ddb_from_item(d->last_key));
        return o;
    }
    const json_t *attrs = json_object_get(resp, "Attributes");
    return json_pack("{s:o}", "attributes", attrs ? cbx__ddb_from_item(attrs) : json_null());
}

static void ddb_on_end(cbx__http_xfer *x)
{
    ddb_task *d = (ddb_task *)x; /* x is d's first member */
    const json_t *p = cbx_task_params(d->t);
    const char *op = str(p, "operation");
    long status = 0;
    char msg[512] = "";
    json_t *resp = NULL, *meta = NULL;
    cbx_outcome k = CBX_OUTCOME_ERROR;

    if (x->start_rc < 0) {
        snprintf(msg, sizeof msg, "dynamodb: %s",
                 x->start_msg ? x->start_msg : cbx_strerror(x->start_rc));
        free(x->start_msg);
        x->start_msg = NULL;
    } else if (x->cancelled) {
        snprintf(msg, sizeof msg, "dynamodb: %s stopped", d->action);
    } else if (x->result != CURLE_OK) {
        k = x->result == CURLE_OPERATION_TIMEDOUT ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR;
        snprintf(msg, sizeof msg, "dynamodb: %s: %s (curl error %d)", d->action,
                 x->easy && x->easy->errbuf[0] ? x->easy->errbuf : curl_easy_strerror(x->result),
                 (int)x->result);
    } else {
        curl_easy_getinfo(x->easy->curl, CURLINFO_RESPONSE_CODE, &status);
        const cbx__http_response *r = &x->easy->resp;
        resp = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
        const char *rid = json_string_value(json_object_get(r->headers, "x-amzn-requestid"));
        meta = json_pack("{s:s, s:s?, s:i, s:s?}", "action", d->action, "table", str(p, "table"),
                         "status", (int)status, "request_id", rid);
    }
    int failed_transfer = x->start_rc < 0 || x->result != CURLE_OK || x->cancelled;
    if (x->easy) {
        cbx__http_request_release(x);
        cbx__http_easy_give(d->lp, x->easy, failed_transfer);
        x->easy = NULL;
    }
    if (msg[0] || !meta) {
        json_decref(resp);
        finish(d, k, NULL, meta, msg[0] ? msg : "dynamodb: out of memory");
        return;
    }
    if (status != 200 || !json_is_object(resp)) {
        char type[128];
        if (!json_is_object(resp)) {
            snprintf(msg, sizeof msg, "dynamodb: %s: HTTP %ld with a body that is not JSON",
                     d->action, status);
            k = status == 429 ? CBX_OUTCOME_RATE_LIMITED : CBX_OUTCOME_ERROR;
        } else {
            char text[300];
            k = error_kind(resp, status, type, sizeof type, text, sizeof text);
            snprintf(msg, sizeof msg, "dynamodb: %s: %s: %s", d->action, type[0] ? type : "error",
                     text[0] ? text : "(no message)");
            json_object_set_new(meta, "error_type", json_string(type));
        }
        json_decref(resp);
        finish(d, k, NULL, meta, msg);
        return;
    }
    d->pages++;
    if (strcmp(op, "query") == 0 || strcmp(op, "scan") == 0) {
        const json_t *items = json_object_get(resp, "Items");
        size_t i;
        const json_t *it;
        json_array_foreach(items, i, it) json_array_append_new(d->items, cbx__ddb_from_item(it));
        d->count += json_integer_value(json_object_get(resp, "Count"));
        d->scanned += json_integer_value(json_object_get(resp, "ScannedCount"));
        json_decref(d->last_key);
        d->last_key = json_incref(json_object_get(resp, "LastEvaluatedKey"));
        json_int_t max_pages = json_integer_value(json_object_get(p, "max_pages"));
        if (d->last_key && d->pages < max_pages && !cbx_task_cancelled(d->t)) {
            json_object_set(d->body, "ExclusiveStartKey", d->last_key);
            json_decref(resp);
            json_decref(meta);
            cbx_err err;
            cbx_err_clear(&err);
            if (send_request(d, &err) < 0) {
                if (x->easy) {
                    cbx__http_request_release(x);
                    cbx__http_easy_give(d->lp, x->easy, 1);
                    x->easy = NULL;
                }
                finish(d, CBX_OUTCOME_ERROR, NULL, NULL, err.msg);
            }
            return;
        }
    }
    json_object_set_new(meta, "pages", json_integer(d->pages));
    json_t *out = outputs_for(d, op, resp);
    json_decref(resp);
    finish(d, out ? CBX_OUTCOME_SUCCESS : CBX_OUTCOME_ERROR, out, meta,
           out ? NULL : "dynamodb: out of memory");
}

/* ---- ops ------------------------------------------------------------------------------------ */

static int ddb_start(cbx_task *t)
{
    ddb_task *d = cbx_task_state(t);
    const json_t *p = cbx_task_params(t);
    const char *op = str(p, "operation");
    int r = cbx__http_xfer_prepare(&d->x, t, ddb_on_end);
    if (r < 0)
        return r;
    d->t = t;
    d->lp = d->x.lp;

    cbx__aws_auth_from(p, "dynamodb", &d->auth);
    if (strcmp(op, "action") == 0)
        snprintf(d->action, sizeof d->action, "%s", str(p, "action"));
    else
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (strcmp(op, ops[i].op) == 0)
                snprintf(d->action, sizeof d->action, "%s", ops[i].action);

    d->body = make_body(p, op);
    d->items = json_array();
    if (!d->body || !d->items || cbx__http_loop_begin(d->lp) < 0) {
        json_decref(d->body);
        json_decref(d->items);
        d->body = d->items = NULL;
        return -ENOMEM;
    }
    d->began = 1;
    cbx_err err;
    cbx_err_clear(&err);
    if (!d->auth.have_keys) {
        r = cbx__aws_no_keys_err(&d->auth, &err);
    } else {
        cbx__aws_endpoint(p, "AWS_ENDPOINT_URL_DYNAMODB", "dynamodb", d->auth.region, d->endpoint,
                          sizeof d->endpoint);
        r = send_request(d, &err);
    }
    if (r < 0)
        cbx__http_xfer_fail_start(&d->x, r, err.msg);
    return 0;
}

static void ddb_cancel(cbx_task *t)
{
    ddb_task *d = cbx_task_state(t);
    cbx__http_xfer_cancel(&d->x);
}

static int need(const json_t *p, const char *key, const char *op, cbx_err *err)
{
    if (json_object_get(p, key))
        return 0;
    return cbx_err_set_at(err, CBX_EINVAL_CONFIG, key, 0, 0, "%s: required by operation %s", key,
                          op);
}

static int ddb_validate(const cbx_executor_type *type, const json_t *p, cbx_err *err)
{
    (void)type;
    int r = cbx__curl_load(err);
    if (r < 0)
        return r;
    const char *op = str(p, "operation");
    if (strcmp(op, "action") == 0)
        return need(p, "action", op, err);
    if (!str(p, "table"))
        return need(p, "table", op, err);
    if (strcmp(op, "get_item") == 0 || strcmp(op, "update_item") == 0 ||
        strcmp(op, "delete_item") == 0)
        r = need(p, "key", op, err);
    else if (strcmp(op, "put_item") == 0)
        r = need(p, "item", op, err);
    else if (strcmp(op, "query") == 0)
        r = need(p, "key_condition_expression", op, err);
    if (r == 0 && strcmp(op, "update_item") == 0)
        r = need(p, "update_expression", op, err);
    const char *url = str(p, "endpoint_url");
    if (r == 0 && url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        r = cbx_err_set_at(err, CBX_EINVAL_CONFIG, "endpoint_url", 0, 0,
                           "endpoint_url: must start with http:// or https://");
    return r;
}

static const char *const return_values[] = {"NONE",    "ALL_OLD",     "UPDATED_OLD",
                                            "ALL_NEW", "UPDATED_NEW", NULL};

static const cbx_param ddb_params[] = {
    {.name = "operation",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .enum_values = op_names,
     .description = "get_item, put_item, update_item, delete_item, query, scan, or action (any "
                    "action with a raw request)"},
    {.name = "table", .type = CBX_PARAM_STRING, .description = "the table's name"},
    {.name = "key", .type = CBX_PARAM_OBJECT, .description = "the item's key, as plain JSON"},
    {.name = "item", .type = CBX_PARAM_OBJECT, .description = "put_item: the item, plain JSON"},
    {.name = "update_expression", .type = CBX_PARAM_STRING, .description = "update_item: SET ..."},
    {.name = "condition_expression",
     .type = CBX_PARAM_STRING,
     .description = "a write only if it holds (else ConditionalCheckFailedException, outcome "
                    "custom)"},
    {.name = "key_condition_expression", .type = CBX_PARAM_STRING, .description = "query"},
    {.name = "filter_expression", .type = CBX_PARAM_STRING, .description = "query, scan"},
    {.name = "projection_expression", .type = CBX_PARAM_STRING, .description = "attributes read"},
    {.name = "expression_attribute_names",
     .type = CBX_PARAM_OBJECT,
     .description = "#name placeholders"},
    {.name = "expression_attribute_values",
     .type = CBX_PARAM_OBJECT,
     .description = ":value placeholders, as plain JSON"},
    {.name = "index_name", .type = CBX_PARAM_STRING, .description = "query, scan: an index"},
    {.name = "consistent_read", .type = CBX_PARAM_BOOLEAN, .description = "strongly consistent"},
    {.name = "scan_index_forward", .type = CBX_PARAM_BOOLEAN, .description = "query: order"},
    {.name = "limit",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 1,
     .description = "query, scan: items evaluated per page"},
    {.name = "max_pages",
     .type = CBX_PARAM_INTEGER,
     .default_json = "100",
     .has_min = 1,
     .min = 1,
     .description = "query, scan: pages followed at most (more sets truncated)"},
    {.name = "exclusive_start_key",
     .type = CBX_PARAM_OBJECT,
     .description = "query, scan: go on from a last_evaluated_key"},
    {.name = "return_values",
     .type = CBX_PARAM_STRING,
     .enum_values = return_values,
     .description = "writes: the attributes to return"},
    {.name = "action",
     .type = CBX_PARAM_STRING,
     .description = "operation action: the DynamoDB action (CreateTable, DescribeTable, ...)"},
    {.name = "request",
     .type = CBX_PARAM_OBJECT,
     .description = "operation action: its request, sent as is"},
    {.name = "region", .type = CBX_PARAM_STRING, .description = "AWS_REGION, else us-east-1"},
    {.name = "endpoint_url",
     .type = CBX_PARAM_STRING,
     .description = "a DynamoDB-compatible endpoint (AWS_ENDPOINT_URL_DYNAMODB)"},
    {.name = "access_key_id", .type = CBX_PARAM_STRING, .description = "AWS_ACCESS_KEY_ID"},
    {.name = "secret_access_key",
     .type = CBX_PARAM_STRING,
     .secret = 1,
     .description = "AWS_SECRET_ACCESS_KEY"},
    {.name = "session_token",
     .type = CBX_PARAM_STRING,
     .secret = 1,
     .description = "AWS_SESSION_TOKEN"},
    {.name = "timeout_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .description = "limit on each request, in ms (0: the attempt's timeout only)"},
    {.name = NULL},
};

static const cbx_executor_type ddb_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "dynamodb",
    .summary = "a DynamoDB item read or write, query or scan (JSON API, SigV4; on the loop)",
    .params = ddb_params,
    .task_size = sizeof(ddb_task),
    .validate = ddb_validate,
    .start = ddb_start,
    .cancel = ddb_cancel,
    .loop_init = cbx__http_ctx_loop_init,
    .loop_close = cbx__http_ctx_loop_close,
};

const cbx_executor_type *cbx__dynamodb_type(void)
{
    return &ddb_type;
}
