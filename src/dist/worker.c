/* A worker: jobs pulled from the work stream, run on a local runtime, their results stored and
 * announced, and only then acknowledged (cbx/dist.h).
 *
 * Two threads of its own, and libnats' callback thread. The puller fetches jobs in batches (never
 * more than there are free slots), turns away what it must not run - poison, jobs past their
 * delivery limit, types this worker does not take - looks the rest up in the results bucket in
 * one round trip per batch (a job whose result is stored is not run again), and queues what is
 * left for the loop. The loop thread submits them to the runtime and, while they run, tells
 * JetStream they are in progress. When a job ends, the loop publishes its result to the results
 * bucket asynchronously (no thread waits on the server); the server's acknowledgement of that
 * store arrives in libnats' publish-ack callback, which announces the result on cbx.result.<id>
 * and only then acknowledges the job. A store that fails or times out (the server is away) is
 * retried from the loop, and the job is not acknowledged until it has been stored.
 *
 * A job holds one of the --concurrency slots from its fetch to its acknowledgement.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cbx/dist.h"
#include "cbx/policy.h"
#include "cbx/runtime.h"
#include "core/log_internal.h"
#include "dist/nats_uv.h"
#include "dist/results_lookup.h"
#include "dist/work.h"

#define FETCH_MAX      256
#define FETCH_WAIT_MS  500
#define HAND_BACK_MS   1000
#define LOOKUP_WAIT_MS 2000
#define STORE_WAIT_MS  5000 /* for the server's acknowledgement of one stored result */
#define STORE_RETRY_MS 100  /* between tries of a store that failed */
#define STORE_GIVE_UP_MS                                                                           \
    60000 /* a minute for the server to come back, then left for redelivery                        \
           */

typedef struct job {
    cbx_worker *w;
    natsMsg *msg;
    json_t *doc;
    char id[40];
    cbx_policy *policy;
    json_t *result;        /* what is stored; NULL: hand the job back */
    natsMsg *store;        /* the result's message to the bucket, while it is ours */
    int64_t failing_since; /* ms, monotonic: the first failed store; 0 = none */
    struct job *next, *prev;
} job;

typedef struct list {
    job *head, *tail;
} list;

struct cbx_worker {
    cbx_worker_opts o;
    char *url, *queue, *id, *work_subject, *durable;
    char **types;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    kvStore *results;
    cbx__lookup *lookup; /* the puller's */
    cbx_runtime *rt;
    uv_loop_t *loop;
    uv_async_t inbox_async, stop_async, setup_async;
    uv_timer_t progress, retry;
    pthread_t puller;
    int puller_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_puller;
    list inbox;                  /* under mu: fetched, for the loop */
    list retries;                /* under mu: stores to try again */
    job *storing, *storing_tail; /* under mu: stores awaiting the server's acknowledgement, the
                                    newest first */
    job *running;                /* loop thread only: jobs in the runtime */
    cbx_policy **spent; /* loop thread only: policies of ended executions, freed a turn later */
    size_t n_spent, cap_spent;
    uint32_t inflight;  /* under mu: fetched and not yet acknowledged, handed back or left */
    uint32_t low_water; /* the puller waits while more slots than this are taken */
    int stopping;       /* under mu */
    int puller_done;    /* under mu */
    int handles_closed; /* under mu */
    int nc_closed;      /* the connection closed (and detached from the loop) */
    atomic_uint_least64_t done, handed_back, poisoned;
};

/* A job's story goes through the library's log (cbx/log.h): INFO for each job, WARN for what
 * went wrong; every line names the worker. */
#define say(w, fmt, ...)  CBX_LOG(CBX_LOG_INFO, "worker", "%s: " fmt, (w)->id, __VA_ARGS__)
#define warn(w, fmt, ...) CBX_LOG(CBX_LOG_WARN, "worker", "%s: " fmt, (w)->id, __VA_ARGS__)

static void push(list *l, job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static job *pop(list *l)
{
    job *j = l->head;
    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
        j->next = NULL;
    }
    return j;
}

static void job_free(job *j)
{
    if (!j)
        return;
    natsMsg_Destroy(j->msg);
    natsMsg_Destroy(j->store);
    json_decref(j->doc);
    json_decref(j->result);
    free(j);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wake the loop, unless it has closed its handles. Under w->mu. */
static void wake_loop_locked(cbx_worker *w)
{
    if (!w->handles_closed)
        uv_async_send(&w->inbox_async);
}

/* The job is over here (acknowledged, handed back, or left for redelivery): its slot is free.
 * Any thread. */
static void job_end(cbx_worker *w, job *j)
{
    job_free(j);
    pthread_mutex_lock(&w->mu);
    w->inflight--;
    if (w->inflight == w->low_water)
        pthread_cond_signal(&w->cv_puller); /* room for a batch again */
    if (w->stopping && w->inflight == 0) {
        pthread_cond_signal(&w->cv_puller); /* the puller may flush and close now */
        wake_loop_locked(w);                /* the loop may finish now */
    }
    pthread_mutex_unlock(&w->mu);
}

static void hand_back(cbx_worker *w, job *j, int64_t delay_ms)
{
    natsMsg_NakWithDelay(j->msg, delay_ms, NULL);
    atomic_fetch_add(&w->handed_back, 1);
    job_end(w, j);
}

static int takes_type(const cbx_worker *w, const char *type)
{
    if (!w->types)
        return 1;
    for (char **t = w->types; *t; t++)
        if (strcmp(*t, type) == 0)
            return 1;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* ---- storing results ------------------------------------------------------------------------- */

/* Under w->mu. */
static void unlink_storing(cbx_worker *w, job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        w->storing = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        w->storing_tail = j->prev;
    j->next = j->prev = NULL;
}

/* Publish j's result to the bucket; the server's answer comes to on_stored. Any thread; never
 * under w->mu (a full window of pending stores makes the publish wait for on_stored). */
static void store(cbx_worker *w, job *j)
{
    if (!j->store) {
        char *text = j->result ? json_dumps(j->result, JSON_COMPACT) : NULL;
        char subject[64];
        snprintf(subject, sizeof subject, "$KV.%s.%s", CBX__DIST_RESULTS, j->id);
        natsStatus s = text ? natsMsg_Create(&j->store, subject, NULL, text, (int)strlen(text))
                            : NATS_NO_MEMORY;
        free(text);
        if (s != NATS_OK) {
            warn(w, "job %s: its result cannot be written (%s); handed back", j->id,
                 natsStatus_GetText(s));
            hand_back(w, j, HAND_BACK_MS);
            return;
        }
    }
    natsMsg *m = j->store;
    pthread_mutex_lock(&w->mu);
    j->prev = NULL;
    j->next = w->storing;
    if (w->storing)
        w->storing->prev = j;
    else
        w->storing_tail = j;
    w->storing = j;
    pthread_mutex_unlock(&w->mu);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = STORE_WAIT_MS;
    /* from here on j may already be acknowledged and freed by on_stored */
    natsStatus s = js_PublishMsgAsync(w->js, &m, &po);
    if (s == NATS_OK)
        return;
    /* not sent: still ours (m was not taken); tried again from the loop */
    pthread_mutex_lock(&w->mu);
    unlink_storing(w, j);
    if (!j->failing_since)
        j->failing_since = now_ms();
    push(&w->retries, j);
    pthread_mutex_unlock(&w->mu);
}

/* libnats' publish-ack callback: the server stored a result (pa) or did not (pae). */
static void on_stored(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    cbx_worker *w = closure;
    pthread_mutex_lock(&w->mu);
    job *j = w->storing_tail; /* answers come mostly in the order of the stores */
    while (j && j->store != msg)
        j = j->prev;
    if (j)
        unlink_storing(w, j);
    int again = 0, first = 0;
    char id[sizeof j->id];
    if (j && (!pa || pae)) {
        /* not stored: tried again from the loop, the job still unacknowledged */
        if (!j->failing_since) {
            j->failing_since = now_ms();
            first = 1;
            memcpy(id, j->id, sizeof id);
        }
        push(&w->retries, j);
        again = 1;
    }
    pthread_mutex_unlock(&w->mu);
    if (first) /* j is the loop's now */
        warn(w, "job %s: storing its result failed (%s); tried again until it is stored", id,
             pae ? natsStatus_GetText(pae->Err) : "no answer");
    if (!j) {
        natsMsg_Destroy(msg); /* not one of ours (cannot happen) */
        return;
    }
    if (again)
        return;
    const char *text = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    char subject[64 + CBX__DIST_TYPE_MAX];
    snprintf(subject, sizeof subject, "cbx.result.%s", j->id);
    natsConnection_Publish(w->nc, subject, text, len);
    /* for whoever watches the pool: cbx.events.execution.<type> */
    const char *type = json_string_value(json_object_get(j->result, "executor"));
    if (type && cbx__dist_token_ok(type)) {
        snprintf(subject, sizeof subject, "cbx.events.execution.%s", type);
        natsConnection_Publish(w->nc, subject, text, len);
    }
    natsMsg_Ack(j->msg, NULL);
    atomic_fetch_add(&w->done, 1);
    say(w, "job %s: %s", j->id, json_string_value(json_object_get(j->result, "status")));
    job_end(w, j); /* destroys msg, which is j->store */
}

/* Every STORE_RETRY_MS on the loop: stores that failed, tried again. */
static void on_retry(uv_timer_t *t)
{
    cbx_worker *w = t->data;
    pthread_mutex_lock(&w->mu);
    list again = w->retries;
    w->retries.head = w->retries.tail = NULL;
    pthread_mutex_unlock(&w->mu);
    int64_t now = now_ms();
    for (job *j; (j = pop(&again)) != NULL;) {
        if (now - j->failing_since >= STORE_GIVE_UP_MS) {
            /* not stored: the job is not acknowledged, so it will run again elsewhere */
            warn(w, "job %s: its result could not be stored for %d s; left for redelivery", j->id,
                 STORE_GIVE_UP_MS / 1000);
            job_end(w, j);
            continue;
        }
        store(w, j);
    }
}

/* ---- the puller ------------------------------------------------------------------------------ */

/* A message the puller keeps (to look up, then run), or NULL when it has dealt with it. */
static job *take(cbx_worker *w, natsMsg *msg)
{
    const char *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    json_error_t je;
    json_t *doc = json_loadb(data ? data : "", len > 0 ? (size_t)len : 0, 0, &je);
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *type = json_string_value(json_object_get(doc, "executor"));
    const json_t *params = json_object_get(doc, "params");
    const char *bad = !doc                   ? je.text
                      : !json_is_object(doc) ? "not a JSON object"
                      : !id || !cbx__lookup_key_ok(id)
                          ? "no \"id\" (1 to 39 of A-Z a-z 0-9 - _ = / and ., not at either end)"
                      : !type                             ? "no \"executor\" string"
                      : params && !json_is_object(params) ? "\"params\" is not an object"
                                                          : NULL;
    if (bad) {
        /* poison: never redelivered, and said why */
        warn(w, "job %s terminated: the message is not a job: %s", id ? id : "(no id)", bad);
        natsMsg_Term(msg, NULL);
        natsMsg_Destroy(msg);
        json_decref(doc);
        atomic_fetch_add(&w->poisoned, 1);
        return NULL;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        natsMsg_NakWithDelay(msg, HAND_BACK_MS, NULL);
        natsMsg_Destroy(msg);
        json_decref(doc);
        return NULL;
    }
    j->w = w;
    j->msg = msg;
    j->doc = doc;
    snprintf(j->id, sizeof j->id, "%s", id);
    pthread_mutex_lock(&w->mu);
    w->inflight++;
    pthread_mutex_unlock(&w->mu);
    return j;
}

/* A job looked up and not found: given up, handed back, or queued for the loop (1). */
static int decide(cbx_worker *w, job *j)
{
    const char *type = json_string_value(json_object_get(j->doc, "executor"));
    jsMsgMetaData *meta = NULL;
    uint64_t delivered = 1;
    if (natsMsg_GetMetaData(&meta, j->msg) == NATS_OK) {
        delivered = meta->NumDelivered;
        jsMsgMetaData_Destroy(meta);
    }
    if (delivered > w->o.max_deliver) {
        /* Every delivery so far ended without a result: the workers that took it died or lost
         * their connection. Give up, with a result that says so. */
        j->result =
            json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:i}", "id", j->id, "executor", type,
                      "status", "failed", "rc", CBX_EFAILED, "rc_name", "CBX_EFAILED", "error",
                      "given up: delivered to workers too often "
                      "without a result (they were killed or lost)",
                      "deliveries", (int)delivered);
        json_object_set_new(j->result, "worker", json_string(w->id));
        warn(w, "job %s given up after %llu deliveries", j->id, (unsigned long long)delivered);
        atomic_fetch_add(&w->poisoned, 1);
        store(w, j);
        return 0;
    }
    if (!takes_type(w, type)) {
        hand_back(w, j, HAND_BACK_MS);
        return 0;
    }
    return 1;
}

/* A job whose result is stored (a redelivery after a worker stored it but died before its
 * ack, or the same job submitted again): not run again; the stored result announced again. */
static void already_done(cbx_worker *w, job *j, const char *text)
{
    char subject[64];
    snprintf(subject, sizeof subject, "cbx.result.%s", j->id);
    natsConnection_Publish(w->nc, subject, text, (int)strlen(text));
    natsMsg_Ack(j->msg, NULL);
    say(w, "job %s: already done, its stored result announced again", j->id);
    job_end(w, j);
}

static void *puller_main(void *arg)
{
    cbx_worker *w = arg;
    job *batch[FETCH_MAX];
    const char *ids[FETCH_MAX];
    char *found[FETCH_MAX];
    for (;;) {
        pthread_mutex_lock(&w->mu);
        /* a full worker fetches again when a quarter of its slots are free, rather than one
         * message at a time as each job ends */
        while (!w->stopping && w->inflight > w->low_water) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 200000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&w->cv_puller, &w->mu, &until);
        }
        int stop = w->stopping;
        uint32_t room = w->o.concurrency - w->inflight;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
        natsMsgList got = {0};
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(
            &got, w->sub, room < FETCH_MAX ? (int)room : FETCH_MAX, FETCH_WAIT_MS, &jerr);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            /* the server is away: libnats reconnects; ask again a little later */
            natsMsgList_Destroy(&got);
            sleep_ms(100);
            continue;
        }
        int n = 0;
        for (int i = 0; i < got.Count; i++) {
            natsMsg *m = got.Msgs[i];
            got.Msgs[i] = NULL; /* ours now, not the list's */
            job *j = take(w, m);
            if (j) {
                batch[n] = j;
                ids[n++] = j->id;
            }
        }
        natsMsgList_Destroy(&got);
        /* done before? one round trip for the whole batch */
        cbx__lookup_results(w->lookup, ids, n, found, LOOKUP_WAIT_MS);
        int queued = 0;
        pthread_mutex_lock(&w->mu);
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->mu);
        list run = {0};
        for (int i = 0; i < n; i++) {
            job *j = batch[i];
            if (found[i])
                already_done(w, j, found[i]);
            else if (stopping)
                hand_back(w, j, 0); /* fetched as the worker stopped: handed back, not run */
            else if (decide(w, j)) {
                push(&run, j);
                queued++;
            }
            free(found[i]);
        }
        if (queued) {
            pthread_mutex_lock(&w->mu);
            if (w->inbox.tail)
                w->inbox.tail->next = run.head;
            else
                w->inbox.head = run.head;
            w->inbox.tail = run.tail;
            wake_loop_locked(w);
            pthread_mutex_unlock(&w->mu);
        }
    }
    /* Drained: the last results stored and their jobs acknowledged. Those acknowledgements are
     * in the connection's buffer until the loop writes them: flushed (the loop reads the answer)
     * before the connection is closed, which detaches it from the loop. */
    pthread_mutex_lock(&w->mu);
    while (w->inflight > 0)
        pthread_cond_wait(&w->cv_puller, &w->mu);
    pthread_mutex_unlock(&w->mu);
    natsConnection_FlushTimeout(w->nc, 2000);
    natsConnection_Close(w->nc);
    pthread_mutex_lock(&w->mu);
    w->nc_closed = 1;
    w->puller_done = 1;
    wake_loop_locked(w); /* let the loop see that it may finish */
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- the loop -------------------------------------------------------------------------------- */

static void free_spent(cbx_worker *w)
{
    for (size_t i = 0; i < w->n_spent; i++)
        cbx_policy_free(w->spent[i]);
    w->n_spent = 0;
}

static void close_handles(cbx_worker *w)
{
    uv_close((uv_handle_t *)&w->inbox_async, NULL);
    uv_close((uv_handle_t *)&w->stop_async, NULL);
    uv_close((uv_handle_t *)&w->setup_async, NULL);
    uv_close((uv_handle_t *)&w->progress, NULL);
    uv_close((uv_handle_t *)&w->retry, NULL);
}

static void maybe_finish(cbx_worker *w)
{
    pthread_mutex_lock(&w->mu);
    int ready = w->stopping && w->puller_done && w->inflight == 0 && !w->handles_closed;
    int close_nc = ready && !w->nc_closed; /* no puller ran: nothing to flush */
    if (ready) {
        w->handles_closed = 1; /* no thread wakes the loop after this */
        w->nc_closed = 1;
        close_handles(w);
    }
    pthread_mutex_unlock(&w->mu);
    if (close_nc)
        natsConnection_Close(w->nc); /* detached from the loop, which can end */
}

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    job *j = ud;
    cbx_worker *w = j->w;
    if (j->prev)
        j->prev->next = j->next;
    else
        w->running = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->next = j->prev = NULL;
    if (j->policy) {
        if (w->n_spent == w->cap_spent) {
            size_t cap = w->cap_spent ? w->cap_spent * 2 : 16;
            cbx_policy **p = realloc(w->spent, cap * sizeof *p);
            if (p) {
                w->spent = p;
                w->cap_spent = cap;
            }
        }
        if (w->n_spent < w->cap_spent)
            w->spent[w->n_spent++] = j->policy; /* else it leaks rather than be freed too soon */
        j->policy = NULL;
    }
    if (res->rc == CBX_EQUEUE_FULL) {
        hand_back(w, j, 0); /* a local refusal: another worker, or this one later */
        return;
    }
    j->result = cbx_result_to_json(res);
    if (j->result) {
        json_object_set_new(j->result, "worker_execution_id", json_string(res->id));
        json_object_set_new(j->result, "id", json_string(j->id));
        json_object_set_new(j->result, "worker", json_string(w->id));
    }
    store(w, j);
}

static void start_job(cbx_worker *w, job *j)
{
    const char *type = json_string_value(json_object_get(j->doc, "executor"));
    const json_t *block = json_object_get(j->doc, "policy");
    if (block) {
        cbx_err err;
        cbx_err_clear(&err);
        if (cbx_policy_new_json(&j->policy, block, NULL, &err) < 0) {
            j->result = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "id", j->id, "executor",
                                  type, "status", "rejected", "rc", CBX_EINVAL_CONFIG, "rc_name",
                                  "CBX_EINVAL_CONFIG", "error", "policy", "worker", w->id);
            char msg[800];
            snprintf(msg, sizeof msg, "policy: %s%s%s", err.where, err.where[0] ? ": " : "",
                     err.msg);
            json_object_set_new(j->result, "error", json_string(msg));
            store(w, j);
            return;
        }
    }
    json_int_t timeout_ms = json_integer_value(json_object_get(j->doc, "timeout_ms"));
    cbx_request req = {
        .executor = type,
        .params = json_object_get(j->doc, "params"),
        .policy = j->policy,
        .timeout_ns = timeout_ms > 0 ? (uint64_t)timeout_ms * 1000000u : 0,
        .breaker = json_string_value(json_object_get(j->doc, "breaker")),
        .tag = "worker",
        .on_done = on_done,
        .ud = j,
    };
    j->next = w->running;
    if (w->running)
        w->running->prev = j;
    w->running = j;
    cbx_runtime_submit(w->rt, &req, NULL, NULL); /* a refusal reaches on_done too */
}

static void on_inbox(uv_async_t *h)
{
    cbx_worker *w = h->data;
    free_spent(w);
    pthread_mutex_lock(&w->mu);
    list todo = w->inbox;
    w->inbox.head = w->inbox.tail = NULL;
    int stopping = w->stopping;
    pthread_mutex_unlock(&w->mu);
    for (job *j; (j = pop(&todo)) != NULL;) {
        if (stopping)
            hand_back(w, j, 0); /* fetched as the worker stopped: handed back, not run */
        else
            start_job(w, j);
    }
    maybe_finish(w);
}

static void on_stop(uv_async_t *h)
{
    cbx_worker *w = h->data;
    pthread_mutex_lock(&w->mu);
    if (!w->stopping)
        say(w, "draining: %u jobs to finish", w->inflight);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv_puller);
    pthread_mutex_unlock(&w->mu);
    on_inbox(&w->inbox_async);
}

static void on_progress(uv_timer_t *t)
{
    cbx_worker *w = t->data;
    free_spent(w);
    for (job *j = w->running; j; j = j->next)
        natsMsg_InProgress(j->msg, NULL);
    maybe_finish(w);
}

/* ---- the worker ------------------------------------------------------------------------------ */

static int setup_consumer(cbx_worker *w, cbx_err *err)
{
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = w->durable;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = (int64_t)w->o.ack_wait_ns;
    cc.MaxDeliver = (int64_t)w->o.max_deliver + 1; /* the extra one is answered "given up" */
    cc.FilterSubject = w->work_subject;
    cc.MaxAckPending = -1;
    jsErrCode jerr = 0;
    jsConsumerInfo *ci = NULL;
    /* Made once, by the first worker of the queue: adding it again would change its settings
     * under the workers that pull from it (the server updates a consumer added twice). */
    natsStatus s = js_GetConsumerInfo(&ci, w->js, CBX__DIST_STREAM, w->durable, NULL, &jerr);
    if (s == NATS_NOT_FOUND)
        s = js_AddConsumer(&ci, w->js, CBX__DIST_STREAM, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    /* another worker may have made it meanwhile */
    if (s != NATS_OK && jerr != JSConsumerNameExistErr && jerr != JSConsumerExistingActiveErr)
        return cbx_err_set(err, CBX_EFAILED, "cannot make the consumer %s on %s: %s", w->durable,
                           w->url, cbx__nats_why(s));
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = CBX__DIST_STREAM;
    so.Consumer = w->durable;
    s = js_PullSubscribe(&w->sub, w->js, w->work_subject, w->durable, NULL, &so, &jerr);
    if (s != NATS_OK)
        return cbx_err_set(err, CBX_EFAILED, "cannot pull from %s on %s: %s", w->work_subject,
                           w->url, natsStatus_GetText(s));
    return 0;
}

/* The server's side made sure of, on a thread of its own while the loop turns (the loop reads the
 * answers of the connection it drives). */
typedef struct setup_job {
    cbx_worker *w;
    cbx_err *err;
    int rc;
} setup_job;

static void *setup_main(void *arg)
{
    setup_job *sj = arg;
    cbx_worker *w = sj->w;
    int rc = cbx__dist_ensure_stream(w->js, sj->err);
    if (!rc)
        rc = cbx__dist_ensure_results(w->js, &w->results, sj->err);
    if (!rc)
        rc = setup_consumer(w, sj->err);
    if (!rc)
        rc = cbx__lookup_new(&w->lookup, w->nc, w->results, sj->err);
    sj->rc = rc;
    uv_async_send(&w->setup_async);
    return NULL;
}

static void on_setup_done(uv_async_t *h)
{
    uv_stop(h->loop);
}

static int setup_on_loop(cbx_worker *w, cbx_err *err)
{
    setup_job sj = {.w = w, .err = err};
    pthread_t t;
    if (pthread_create(&t, NULL, setup_main, &sj) != 0)
        return cbx_err_set(err, -EAGAIN, "cannot start a thread");
    uv_run(w->loop, UV_RUN_DEFAULT); /* until on_setup_done */
    pthread_join(t, NULL);
    return sj.rc;
}

/* Turn the loop until the connection's adapter has closed its handles on it (a poll handle). */
static void count_polls(uv_handle_t *h, void *arg)
{
    if (h->type == UV_POLL && !uv_is_closing(h))
        ++*(int *)arg;
}

static void settle_detach(uv_loop_t *loop)
{
    for (int i = 0; i < 100; i++) {
        int polls = 0;
        uv_walk(loop, count_polls, &polls);
        if (!polls)
            break;
        uv_run(loop, UV_RUN_NOWAIT);
    }
    uv_run(loop, UV_RUN_NOWAIT); /* the close callbacks */
}

int cbx_worker_new(cbx_worker **out, const cbx_worker_opts *o, cbx_err *err)
{
    *out = NULL;
    cbx_worker *w = calloc(1, sizeof *w);
    if (!w)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    w->o = *o;
    if (!w->o.concurrency)
        w->o.concurrency = 4;
    w->low_water = w->o.concurrency - (w->o.concurrency / 4 ? w->o.concurrency / 4 : 1);
    if (!w->o.ack_wait_ns)
        w->o.ack_wait_ns = 30ull * 1000000000u;
    if (!w->o.max_deliver)
        w->o.max_deliver = 5;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_puller, NULL);
    const char *queue = o->queue ? o->queue : CBX__DIST_DEFAULT_QUEUE;
    int rc = 0;
    if (!cbx__dist_queue_ok(queue)) {
        rc = cbx_err_set(err, CBX_EINVAL_CONFIG,
                         "queue '%s': use letters, digits, - and _ (at most 64)", queue);
        goto fail;
    }
    char host[256] = "host", idbuf[300];
    gethostname(host, sizeof host - 1);
    snprintf(idbuf, sizeof idbuf, "%s:%ld", host, (long)getpid());
    char subj[128], durable[128];
    snprintf(subj, sizeof subj, "cbx.work.%s", queue);
    snprintf(durable, sizeof durable, "cbx-worker-%s", queue);
    w->url = strdup(cbx__dist_url(o->url));
    w->queue = strdup(queue);
    w->id = strdup(o->worker_id ? o->worker_id : idbuf);
    w->work_subject = strdup(subj);
    w->durable = strdup(durable);
    if (!w->url || !w->queue || !w->id || !w->work_subject || !w->durable) {
        rc = cbx_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (o->types) {
        size_t n = 0;
        while (o->types[n])
            n++;
        w->types = calloc(n + 1, sizeof *w->types);
        for (size_t i = 0; w->types && i < n; i++)
            w->types[i] = strdup(o->types[i]);
    }
    cbx_runtime_opts ro = {
        .registry = o->registry,
        .journal = o->journal,
        .breakers = o->breakers,
        .max_concurrent = w->o.concurrency,
    };
    if ((rc = cbx_runtime_new(&w->rt, &ro, err)) != 0)
        goto fail;
    w->loop = cbx_runtime_loop(w->rt);
    uv_async_init(w->loop, &w->inbox_async, on_inbox);
    uv_async_init(w->loop, &w->stop_async, on_stop);
    uv_async_init(w->loop, &w->setup_async, on_setup_done);
    uv_timer_init(w->loop, &w->progress);
    uv_timer_init(w->loop, &w->retry);
    w->inbox_async.data = w->stop_async.data = w->setup_async.data = w->progress.data =
        w->retry.data = w;
    /* The connection is driven by the runtime's loop (nats_uv.h): what the loop and libnats'
     * threads publish meanwhile (stores, announcements, acknowledgements, fetches, look-ups) is
     * written at the loop's next turn, in one system call, rather than one call per message or
     * after the millisecond libnats' flusher waits. */
    if ((rc = cbx__dist_connect_loop(w->url, w->loop, &w->nc, err)) != 0)
        goto fail;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.AckHandler = on_stored;
    jo.PublishAsync.AckHandlerClosure = w;
    /* every job holds a slot until its store is acknowledged: the window never fills */
    jo.PublishAsync.MaxPending = (int64_t)w->o.concurrency + FETCH_MAX;
    natsStatus s = natsConnection_JetStream(&w->js, w->nc, &jo);
    if (s != NATS_OK) {
        rc = cbx_err_set(err, CBX_EFAILED, "JetStream on %s: %s", w->url, natsStatus_GetText(s));
        goto fail;
    }
    if ((rc = setup_on_loop(w, err)) != 0)
        goto fail;
    *out = w;
    return 0;
fail:
    cbx_worker_free(w);
    return rc;
}

int cbx_worker_run(cbx_worker *w)
{
    cbx__nats_uv_thread(w->loop); /* the loop turns on this thread */
    uint64_t every_ms = w->o.ack_wait_ns / 3000000u;
    uv_timer_start(&w->progress, on_progress, every_ms ? every_ms : 1, every_ms ? every_ms : 1);
    uv_timer_start(&w->retry, on_retry, STORE_RETRY_MS, STORE_RETRY_MS);
    if (pthread_create(&w->puller, NULL, puller_main, w) != 0) {
        pthread_mutex_lock(&w->mu);
        w->puller_done = 1;
        pthread_mutex_unlock(&w->mu);
        cbx_worker_stop(w);
    } else {
        w->puller_started = 1;
    }
    uv_run(w->loop, UV_RUN_DEFAULT);
    if (w->puller_started) {
        pthread_join(w->puller, NULL);
        w->puller_started = 0;
    }
    free_spent(w);
    return 0;
}

void cbx_worker_stop(cbx_worker *w)
{
    uv_async_send(&w->stop_async);
}

void cbx_worker_counts(const cbx_worker *w, uint64_t *done, uint64_t *handed_back,
                       uint64_t *poisoned)
{
    cbx_worker *mw = (cbx_worker *)w;
    if (done)
        *done = atomic_load(&mw->done);
    if (handed_back)
        *handed_back = atomic_load(&mw->handed_back);
    if (poisoned)
        *poisoned = atomic_load(&mw->poisoned);
}

void cbx_worker_free(cbx_worker *w)
{
    if (!w)
        return;
    if (w->nc && !w->nc_closed) {
        w->nc_closed = 1;
        natsConnection_Close(w->nc); /* on the loop's thread: detached at once */
    }
    if (w->rt && !w->handles_closed) {
        w->handles_closed = 1;
        close_handles(w);
    }
    if (w->rt)
        settle_detach(w->loop); /* before the runtime closes the loop */
    cbx_runtime_free(w->rt);
    free(w->spent);
    for (job *j; (j = pop(&w->retries)) != NULL;)
        job_free(j);
    for (job *j; (j = pop(&w->inbox)) != NULL;)
        job_free(j);
    cbx__lookup_free(w->lookup);
    natsSubscription_Destroy(w->sub);
    kvStore_Destroy(w->results);
    jsCtx_Destroy(w->js); /* stores still pending (none after a drain) are dropped with it */
    natsConnection_Destroy(w->nc);
    if (w->types)
        for (char **t = w->types; *t; t++)
            free(*t);
    free(w->types);
    free(w->url);
    free(w->queue);
    free(w->id);
    free(w->work_subject);
    free(w->durable);
    pthread_cond_destroy(&w->cv_puller);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
