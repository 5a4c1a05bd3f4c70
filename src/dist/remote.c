/* Submitting a job to the workers and waiting for its result (cbx_remote_execute), on the
 * process's connection to the server (shared_conn.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbx/dist.h"
#include "core/uuid.h"
#include "dist/results_lookup.h"
#include "dist/shared_conn.h"
#include "dist/work.h"

#define SLICE_MS 50

static json_t *job_json(const cbx_remote_job *job, const char *id)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(id));
    json_object_set_new(j, "fresh", json_true()); /* made here, for this job only */
    json_object_set_new(j, "executor", json_string(job->executor));
    if (job->params)
        json_object_set(j, "params", (json_t *)job->params);
    else
        json_object_set_new(j, "params", json_object());
    if (job->policy)
        json_object_set(j, "policy", (json_t *)job->policy);
    if (job->breaker)
        json_object_set_new(j, "breaker", json_string(job->breaker));
    if (j && job->timeout_ns)
        json_object_set_new(j, "timeout_ms", json_integer((json_int_t)(job->timeout_ns / 1000000)));
    return j;
}

/* The stored result for id, or NULL. */
static json_t *stored_result(jsCtx *js, const char *id)
{
    kvStore *kv = NULL;
    kvEntry *e = NULL;
    json_t *r = NULL;
    if (js_KeyValue(&kv, js, CBX__DIST_RESULTS) == NATS_OK && kvStore_Get(&e, kv, id) == NATS_OK)
        r = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, NULL);
    kvEntry_Destroy(e);
    kvStore_Destroy(kv);
    return r;
}

/* Wait on sub (cbx.result.<id>) up to wait_ns (0 = for ever, unless job is NULL: then only the
 * bucket is asked) for id's result; the bucket is asked every second (an announcement is lost
 * while the connection reconnects) and at the end. 0, CBX_ETIMEDOUT (*waited_ms said), or
 * CBX_ECANCELLED (job->stop). */
static int await_result(jsCtx *js, natsSubscription *sub, const char *id, uint64_t wait_ns,
                        const cbx_remote_job *job, json_t **result, uint64_t *waited_ms,
                        cbx_err *err)
{
    uint64_t limit_ms = wait_ns ? wait_ns / 1000000 : job ? UINT64_MAX : 0;
    natsMsg *reply = NULL;
    natsStatus s = NATS_TIMEOUT;
    *waited_ms = 0;
    while (*waited_ms < limit_ms) {
        s = natsSubscription_NextMsg(&reply, sub, SLICE_MS);
        if (s == NATS_OK)
            break;
        *waited_ms += SLICE_MS;
        if (s != NATS_TIMEOUT)
            break;
        if (job && job->stop && job->stop(job->stop_ud))
            return cbx_err_set(err, CBX_ECANCELLED, "stopped waiting for the job %s", id);
        if (*waited_ms % 1000 == 0 && (*result = stored_result(js, id)) != NULL)
            return 0;
    }
    if (s == NATS_OK)
        *result = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
    natsMsg_Destroy(reply);
    if (!*result)
        *result = stored_result(js, id);
    return *result ? 0 : CBX_ETIMEDOUT;
}

int cbx_remote_result(const char *url, const char *id, uint64_t wait_ns, json_t **result,
                      cbx_err *err)
{
    *result = NULL;
    url = cbx__dist_url(url);
    if (!id || !cbx__lookup_key_ok(id))
        return cbx_err_set(err, -EINVAL,
                           "job id '%s': 1 to 39 of A-Z a-z 0-9 - _ = / and ., not at either end",
                           id ? id : "");
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int rc = cbx__dist_shared(url, &nc, &js, err);
    if (rc)
        return rc;
    char subject[128];
    snprintf(subject, sizeof subject, "cbx.result.%s", id);
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_SubscribeSync(&sub, nc, subject);
    if (s != NATS_OK)
        return cbx_err_set(err, CBX_EFAILED, "cannot subscribe on %s: %s", url, cbx__nats_why(s));
    uint64_t waited_ms = 0;
    rc = await_result(js, sub, id, wait_ns, NULL, result, &waited_ms, err);
    natsSubscription_Destroy(sub);
    if (rc == CBX_ETIMEDOUT)
        cbx_err_set(err, CBX_ETIMEDOUT, "no result for the job %s in %s on %s%s", id,
                    CBX__DIST_RESULTS, url, wait_ns ? " in the time given" : "");
    return rc;
}

int cbx_remote_execute(const char *url, const char *queue, const cbx_remote_job *job,
                       uint64_t wait_ns, json_t **result, char *id, cbx_err *err)
{
    *result = NULL;
    url = cbx__dist_url(url);
    if (!queue)
        queue = CBX__DIST_DEFAULT_QUEUE;
    if (!cbx__dist_queue_ok(queue))
        return cbx_err_set(err, CBX_EINVAL_CONFIG,
                           "queue '%s': use letters, digits, - and _ (at most 64)", queue);
    if (!job->executor || !*job->executor)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "no executor type");
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int rc = cbx__dist_shared(url, &nc, &js, err);
    if (rc)
        return rc;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    jsPubAck *ack = NULL;
    char *text = NULL;
    char subject[128], work[128];
    cbx__uuid7(id);
    snprintf(subject, sizeof subject, "cbx.result.%s", id);
    snprintf(work, sizeof work, "cbx.work.%s", queue);
    json_t *j = job_json(job, id);
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    natsStatus s = text ? NATS_OK : NATS_NO_MEMORY;
    /* subscribed before the job is out, so that the announcement cannot be missed */
    if (s == NATS_OK)
        s = natsConnection_SubscribeSync(&sub, nc, subject);
    if (s == NATS_OK)
        s = natsMsg_Create(&m, work, NULL, text, (int)strlen(text));
    if (s == NATS_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = id; /* a publish retried by libnats is stored once */
        po.ExpectStream = CBX__DIST_STREAM;
        s = js_PublishMsg(&ack, js, m, &po, NULL);
    }
    if (s != NATS_OK) {
        rc = cbx_err_set(err, CBX_EFAILED, "cannot queue the job on %s (%s): %s", url, work,
                         s == NATS_NO_RESPONDERS ? "JetStream is not enabled on the server"
                                                 : cbx__nats_why(s));
        goto out;
    }
    uint64_t waited_ms = 0;
    rc = await_result(js, sub, id, wait_ns, job, result, &waited_ms, err);
    if (rc == CBX_ETIMEDOUT)
        cbx_err_set(err, CBX_ETIMEDOUT,
                    "no result within %llu ms; the job %s stays queued on %s and its result will "
                    "be kept in the %s bucket under its id (cbx exec --remote URL --remote-result "
                    "%s)",
                    (unsigned long long)waited_ms, id, work, CBX__DIST_RESULTS, id);
out:
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
    natsSubscription_Destroy(sub);
    free(text);
    return rc;
}
