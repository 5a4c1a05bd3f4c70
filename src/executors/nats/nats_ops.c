/* The nats executor's operations: core publish and request/reply, JetStream publish, and the
 * key-value store. Each runs on a pool thread with a connection from the runtime's pool.
 *
 * Payloads: a string parameter is sent as its bytes, any other JSON value as compact JSON.
 * Received payloads come back as "data" (a string) and, when they parse as JSON, "json"; bytes
 * that are not UTF-8 come back as "data_base64" instead of "data".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "executors/nats/nats_internal.h"

static const char *pstr(const json_t *params, const char *name)
{
    return json_string_value(json_object_get(params, name));
}

/* The bytes to send for a value: malloc'd, *len set; NULL when out of memory. */
static char *payload(const json_t *v, size_t *len)
{
    char *out;
    if (!v || json_is_null(v))
        out = strdup("");
    else if (json_is_string(v))
        out = strndup(json_string_value(v), json_string_length(v));
    else
        out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (out)
        *len = json_is_string(v) ? json_string_length(v) : strlen(out);
    return out;
}

static json_t *base64(const char *b, size_t n)
{
    char *text = cbx__base64_encode(b, n);
    json_t *j = text ? json_string(text) : NULL;
    free(text);
    return j;
}

/* data / json / data_base64 of received bytes into o. */
static void put_data(json_t *o, const char *data, int len)
{
    size_t n = data && len > 0 ? (size_t)len : 0;
    if (!data)
        data = "";
    json_t *s = json_stringn(data, n);
    if (!s) {
        json_object_set_new_nocheck(o, "data_base64", base64(data, n));
        return;
    }
    json_object_set_new_nocheck(o, "data", s);
    json_t *j = n ? json_loadb(data, n, JSON_DECODE_ANY, NULL) : NULL;
    if (j)
        json_object_set_new_nocheck(o, "json", j);
}

static json_t *msg_headers(natsMsg *m)
{
    json_t *h = json_object();
    const char **keys = NULL;
    int count = 0;
    if (natsMsgHeader_Keys(m, &keys, &count) == NATS_OK) {
        for (int i = 0; i < count; i++) {
            const char *v = NULL;
            if (natsMsgHeader_Get(m, keys[i], &v) == NATS_OK && v)
                json_object_set_new(h, keys[i], json_string(v));
        }
        free((void *)keys);
    }
    return h;
}

/* A message to subject with params' data and headers (and a reply subject, NULL for none). */
static natsStatus make_msg(natsMsg **out, const char *subject, const char *reply,
                           const json_t *params, cbx_err *err)
{
    size_t len = 0;
    char *data = payload(json_object_get(params, "data"), &len);
    if (!data) {
        cbx_err_set(err, CBX_EFAILED, "nats: out of memory");
        return NATS_NO_MEMORY;
    }
    natsStatus s = natsMsg_Create(out, subject, reply, data, (int)len);
    free(data);
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(params, "headers"), name, v)
    {
        if (s != NATS_OK)
            break;
        s = natsMsgHeader_Set(*out, name, json_string_value(v));
    }
    if (s != NATS_OK) {
        cbx_err_set(err, CBX_EFAILED, "nats: message to %s: %s", subject, cbx__nats_why(s));
        natsMsg_Destroy(*out);
        *out = NULL;
    }
    return s;
}

static cbx__nats_result fail(cbx_outcome k)
{
    return (cbx__nats_result){.outcome = k};
}

static cbx__nats_result ok(json_t *outputs)
{
    return (cbx__nats_result){.outcome = CBX_OUTCOME_SUCCESS, .outputs = outputs};
}

static cbx__nats_result op_publish(natsConnection *nc, const json_t *params, int64_t wait_ms,
                                   cbx_err *err)
{
    const char *subject = pstr(params, "subject");
    natsMsg *m = NULL;
    if (make_msg(&m, subject, pstr(params, "reply_to"), params, err) != NATS_OK)
        return fail(CBX_OUTCOME_ERROR);
    int bytes = natsMsg_GetDataLength(m);
    natsStatus s = natsConnection_PublishMsg(nc, m);
    natsMsg_Destroy(m);
    /* A flush waits for the server's PONG: the message has reached the server, not only the
     * connection's buffer (where a reconnecting connection would keep it). */
    if (s == NATS_OK && json_is_true(json_object_get(params, "flush")))
        s = natsConnection_FlushTimeout(nc, wait_ms);
    if (s == NATS_TIMEOUT) {
        cbx_err_set(err, CBX_ETIMEDOUT,
                    "nats: publish to %s: the server did not confirm within "
                    "%lld ms",
                    subject, (long long)wait_ms);
        return fail(CBX_OUTCOME_TIMEOUT);
    }
    if (s != NATS_OK) {
        cbx_err_set(err, CBX_EFAILED, "nats: publish to %s: %s", subject, cbx__nats_why(s));
        return fail(CBX_OUTCOME_ERROR);
    }
    return ok(json_pack("{s:s, s:i}", "subject", subject, "bytes", bytes));
}

/* Request/reply on a private inbox, waiting in short slices so that a cancel is seen soon. */
static cbx__nats_result op_request(cbx_task *t, natsConnection *nc, const json_t *params,
                                   int64_t wait_ms, cbx_err *err)
{
    const char *subject = pstr(params, "subject");
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL, *reply = NULL;
    cbx__nats_result r = fail(CBX_OUTCOME_ERROR);
    natsStatus s = natsInbox_Create(&inbox);
    if (s == NATS_OK)
        s = natsConnection_SubscribeSync(&sub, nc, inbox);
    if (s == NATS_OK)
        s = natsSubscription_AutoUnsubscribe(sub, 1);
    if (s != NATS_OK) {
        cbx_err_set(err, CBX_EFAILED, "nats: request to %s: %s", subject, cbx__nats_why(s));
        goto out;
    }
    if (make_msg(&m, subject, inbox, params, err) != NATS_OK)
        goto out;
    s = natsConnection_PublishMsg(nc, m);
    if (s != NATS_OK) {
        cbx_err_set(err, CBX_EFAILED, "nats: request to %s: %s", subject, cbx__nats_why(s));
        goto out;
    }
    for (int64_t left = wait_ms;;) {
        int64_t slice = left < 20 ? left : 20;
        s = natsSubscription_NextMsg(&reply, sub, slice > 0 ? slice : 1);
        if (s != NATS_TIMEOUT)
            break;
        left -= slice;
        if (cbx_task_cancelled(t))
            goto out; /* the runtime records the cancel or the timeout itself */
        if (left <= 0) {
            cbx_err_set(err, CBX_ETIMEDOUT, "nats: no reply on %s within %lld ms", subject,
                        (long long)wait_ms);
            r = fail(CBX_OUTCOME_TIMEOUT);
            goto out;
        }
    }
    if (s == NATS_NO_RESPONDERS || (s == NATS_OK && natsMsg_IsNoResponders(reply))) {
        cbx_err_set(err, CBX_EFAILED, "nats: no responders on subject %s", subject);
        goto out;
    }
    if (s != NATS_OK) {
        cbx_err_set(err, CBX_EFAILED, "nats: request to %s: %s", subject, cbx__nats_why(s));
        goto out;
    }
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "subject", json_string(natsMsg_GetSubject(reply)));
    put_data(o, natsMsg_GetData(reply), natsMsg_GetDataLength(reply));
    json_object_set_new_nocheck(o, "headers", msg_headers(reply));
    r = ok(o);
out:
    natsMsg_Destroy(reply);
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    return r;
}

static natsStatus jetstream(jsCtx **js, natsConnection *nc, int64_t wait_ms)
{
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = wait_ms;
    return natsConnection_JetStream(js, nc, &o);
}

static cbx__nats_result op_js_publish(natsConnection *nc, const json_t *params, int64_t wait_ms,
                                      cbx_err *err)
{
    const char *subject = pstr(params, "subject");
    jsCtx *js = NULL;
    natsMsg *m = NULL;
    jsPubAck *ack = NULL;
    cbx__nats_result r = fail(CBX_OUTCOME_ERROR);
    natsStatus s = jetstream(&js, nc, wait_ms);
    if (s != NATS_OK) {
        cbx_err_set(err, CBX_EFAILED, "nats: JetStream: %s", cbx__nats_why(s));
        goto out;
    }
    if (make_msg(&m, subject, NULL, params, err) != NATS_OK)
        goto out;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = wait_ms;
    po.MsgId = pstr(params, "msg_id");
    po.ExpectStream = pstr(params, "expect_stream");
    json_t *last = json_object_get(params, "expect_last_sequence");
    if (json_is_integer(last))
        po.ExpectLastSeq = (uint64_t)json_integer_value(last);
    jsErrCode jerr = 0;
    s = js_PublishMsg(&ack, js, m, &po, &jerr);
    if (s == NATS_NO_RESPONDERS) {
        cbx_err_set(err, CBX_EFAILED, "nats: no JetStream stream takes subject %s", subject);
    } else if (s == NATS_TIMEOUT) {
        cbx_err_set(err, CBX_ETIMEDOUT,
                    "nats: JetStream publish to %s: no acknowledgement within "
                    "%lld ms",
                    subject, (long long)wait_ms);
        r = fail(CBX_OUTCOME_TIMEOUT);
    } else if (s != NATS_OK) {
        cbx_err_set(err, CBX_EFAILED, "nats: JetStream publish to %s: %s%s", subject,
                    cbx__nats_why(s),
                    jerr == JSStreamWrongLastSequenceErr ? " (expect_last_sequence)" : "");
        if (jerr)
            r.metadata = json_pack("{s:i}", "jetstream_error", (int)jerr);
    } else {
        r = ok(json_pack("{s:s, s:I, s:b}", "stream", ack->Stream ? ack->Stream : "", "sequence",
                         (json_int_t)ack->Sequence, "duplicate", ack->Duplicate));
    }
out:
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
    jsCtx_Destroy(js);
    return r;
}

static cbx__nats_result op_kv(const char *op, natsConnection *nc, const json_t *params,
                              int64_t wait_ms, cbx_err *err)
{
    const char *bucket = pstr(params, "bucket"), *key = pstr(params, "key");
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    kvEntry *e = NULL;
    char *data = NULL;
    cbx__nats_result r = fail(CBX_OUTCOME_ERROR);
    natsStatus s = jetstream(&js, nc, wait_ms);
    if (s == NATS_OK)
        s = js_KeyValue(&kv, js, bucket);
    if (s == NATS_NOT_FOUND) {
        cbx_err_set(err, CBX_EFAILED, "nats: no key-value bucket '%s'", bucket);
        goto out;
    }
    if (s != NATS_OK) {
        cbx_err_set(err, s == NATS_TIMEOUT ? CBX_ETIMEDOUT : CBX_EFAILED,
                    "nats: key-value bucket '%s': %s", bucket, cbx__nats_why(s));
        r = fail(s == NATS_TIMEOUT ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR);
        goto out;
    }
    uint64_t rev = 0;
    if (strcmp(op, "kv_get") == 0) {
        s = kvStore_Get(&e, kv, key);
        if (s == NATS_NOT_FOUND) {
            r = ok(
                json_pack("{s:s, s:b, s:n, s:i}", "key", key, "found", 0, "value", "revision", 0));
            goto out;
        }
        if (s == NATS_OK) {
            json_t *o = json_pack("{s:s, s:b, s:I}", "key", key, "found", 1, "revision",
                                  (json_int_t)kvEntry_Revision(e));
            put_data(o, kvEntry_Value(e), kvEntry_ValueLen(e));
            /* "value" is the JSON when the bytes are JSON, else the string */
            json_t *j = json_object_get(o, "json");
            json_object_set(o, "value", j ? j : json_object_get(o, "data"));
            r = ok(o);
            goto out;
        }
    } else if (strcmp(op, "kv_delete") == 0) {
        s = kvStore_Delete(kv, key);
        if (s == NATS_OK) {
            r = ok(json_pack("{s:s, s:b}", "key", key, "deleted", 1));
            goto out;
        }
    } else {
        size_t len = 0;
        data = payload(json_object_get(params, "value"), &len);
        if (!data) {
            cbx_err_set(err, CBX_EFAILED, "nats: out of memory");
            goto out;
        }
        if (strcmp(op, "kv_put") == 0)
            s = kvStore_Put(&rev, kv, key, data, (int)len);
        else if (strcmp(op, "kv_create") == 0)
            s = kvStore_Create(&rev, kv, key, data, (int)len);
        else
            s = kvStore_Update(&rev, kv, key, data, (int)len,
                               (uint64_t)json_integer_value(json_object_get(params, "revision")));
        if (s == NATS_OK) {
            r = ok(json_pack("{s:s, s:I}", "key", key, "revision", (json_int_t)rev));
            goto out;
        }
    }
    const char *why = cbx__nats_why(s);
    if (s == NATS_TIMEOUT) {
        cbx_err_set(err, CBX_ETIMEDOUT, "nats: %s of '%s' in '%s': no answer within %lld ms", op,
                    key, bucket, (long long)wait_ms);
        r = fail(CBX_OUTCOME_TIMEOUT);
    } else if (strstr(why, "wrong last sequence") || strstr(why, "key exists")) {
        /* A compare-and-set lost: the key exists (kv_create) or has moved past revision. */
        if (strcmp(op, "kv_create") == 0)
            cbx_err_set(err, CBX_EFAILED,
                        "nats: kv_create of '%s' in '%s': the key exists "
                        "(conflict)",
                        key, bucket);
        else
            cbx_err_set(err, CBX_EFAILED,
                        "nats: kv_update of '%s' in '%s': revision %lld is not "
                        "the latest (conflict)",
                        key, bucket,
                        (long long)json_integer_value(json_object_get(params, "revision")));
        r.metadata = json_pack("{s:b}", "conflict", 1);
    } else {
        cbx_err_set(err, CBX_EFAILED, "nats: %s of '%s' in '%s': %s", op, key, bucket, why);
    }
out:
    free(data);
    kvEntry_Destroy(e);
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    return r;
}

cbx__nats_result cbx__nats_run_op(cbx_task *t, natsConnection *nc, const json_t *params,
                                  int64_t wait_ms, cbx_err *err)
{
    const char *op = pstr(params, "operation");
    if (strcmp(op, "publish") == 0)
        return op_publish(nc, params, wait_ms, err);
    if (strcmp(op, "request") == 0)
        return op_request(t, nc, params, wait_ms, err);
    if (strcmp(op, "js_publish") == 0)
        return op_js_publish(nc, params, wait_ms, err);
    if (strncmp(op, "workflow_", 9) == 0)
        return cbx__nats_workflow_op(op, nc, params, err);
    return op_kv(op, nc, params, wait_ms, err);
}
