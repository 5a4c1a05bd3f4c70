/* A worker: jobs pulled from the work stream, run on a local runtime, their results stored and
 * announced, and only then acknowledged (cbx/dist.h).
 *
 * Three threads. The puller fetches jobs (never more than there are free slots), turns away
 * what it must not run - poison, jobs already done, jobs past their delivery limit, types this
 * worker does not take - and queues the rest for the loop. The loop thread submits them to the
 * runtime and, while they run, tells JetStream they are in progress. A finisher stores each
 * result in the results bucket, announces it on cbx.result.<id>, and acknowledges the job; a
 * result that cannot be stored (the server is away) is retried, and the job is not acknowledged
 * until it has been.
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
#include "dist/work.h"

#define FETCH_MAX       64
#define FETCH_WAIT_MS   500
#define HAND_BACK_MS    1000
#define STORE_RETRY_MAX 600 /* tries, 100 ms apart: a minute for the server to come back */
#define FINISHERS       4   /* threads storing results: each store is a round trip to the server */

typedef struct job {
    cbx_worker *w;
    natsMsg *msg;
    json_t *doc;
    char id[40];
    cbx_policy *policy;
    json_t *result; /* what the finisher stores; NULL: hand the job back */
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
    cbx_runtime *rt;
    uv_loop_t *loop;
    uv_async_t inbox_async, stop_async;
    uv_timer_t progress;
    pthread_t puller, finishers[FINISHERS];
    int puller_started, finishers_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_puller, cv_finisher;
    list inbox, outbox; /* under mu */
    job *running;       /* loop thread only: jobs in the runtime */
    cbx_policy **spent; /* loop thread only: policies of ended executions, freed a turn later */
    size_t n_spent, cap_spent;
    uint32_t inflight; /* under mu: queued for the loop or in the runtime */
    int stopping;      /* under mu */
    int puller_done;   /* under mu */
    int finisher_stop; /* under mu */
    int handles_closed;
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
    json_decref(j->doc);
    json_decref(j->result);
    free(j);
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

/* ---- the puller ------------------------------------------------------------------------------ */

/* A message the puller keeps for the loop, or NULL when it has dealt with it itself. */
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
                      : !id || strlen(id) >= 40 || !*id
                          ? "no \"id\" (a string of 1 to 39 characters)"
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
    /* done before (a redelivery after a worker stored the result but died before its ack): not
     * run again */
    kvEntry *e = NULL;
    if (cbx__dist_kv_get(&e, w->results, id) == NATS_OK) {
        char subject[64];
        snprintf(subject, sizeof subject, "cbx.result.%s", id);
        natsConnection_Publish(w->nc, subject, kvEntry_Value(e), kvEntry_ValueLen(e));
        kvEntry_Destroy(e);
        natsMsg_Ack(msg, NULL);
        natsMsg_Destroy(msg);
        say(w, "job %s: already done, its stored result announced again", id);
        json_decref(doc); /* id points into it */
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
    jsMsgMetaData *meta = NULL;
    uint64_t delivered = 1;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
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
        pthread_mutex_lock(&w->mu);
        push(&w->outbox, j);
        pthread_cond_signal(&w->cv_finisher);
        pthread_mutex_unlock(&w->mu);
        return NULL;
    }
    if (!takes_type(w, type)) {
        natsMsg_NakWithDelay(msg, HAND_BACK_MS, NULL);
        j->msg = NULL;
        natsMsg_Destroy(msg);
        job_free(j);
        atomic_fetch_add(&w->handed_back, 1);
        return NULL;
    }
    return j;
}

static void *puller_main(void *arg)
{
    cbx_worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->stopping && w->inflight >= w->o.concurrency) {
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
        int queued = 0;
        for (int i = 0; i < got.Count; i++) {
            natsMsg *m = got.Msgs[i];
            got.Msgs[i] = NULL; /* ours now, not the list's */
            job *j = take(w, m);
            if (!j)
                continue;
            pthread_mutex_lock(&w->mu);
            push(&w->inbox, j);
            w->inflight++;
            pthread_mutex_unlock(&w->mu);
            queued++;
        }
        natsMsgList_Destroy(&got);
        if (queued)
            uv_async_send(&w->inbox_async);
    }
    pthread_mutex_lock(&w->mu);
    w->puller_done = 1;
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->inbox_async); /* let the loop see that it may finish */
    return NULL;
}

/* ---- the finisher ---------------------------------------------------------------------------- */

static void finish(cbx_worker *w, job *j)
{
    if (!j->result) {
        natsMsg_NakWithDelay(j->msg, 0, NULL);
        atomic_fetch_add(&w->handed_back, 1);
        return;
    }
    char *text = json_dumps(j->result, JSON_COMPACT);
    if (!text) {
        natsMsg_NakWithDelay(j->msg, HAND_BACK_MS, NULL);
        return;
    }
    natsStatus s = NATS_ERR;
    for (int tries = 0; tries < STORE_RETRY_MAX; tries++) {
        uint64_t rev = 0;
        s = kvStore_Put(&rev, w->results, j->id, text, (int)strlen(text));
        if (s == NATS_OK)
            break;
        sleep_ms(100);
    }
    if (s != NATS_OK) {
        /* not stored: the job is not acknowledged, so it will run again elsewhere */
        warn(w, "job %s: its result could not be stored (%s); left for redelivery", j->id,
             natsStatus_GetText(s));
        free(text);
        return;
    }
    char subject[64 + CBX__DIST_TYPE_MAX];
    snprintf(subject, sizeof subject, "cbx.result.%s", j->id);
    natsConnection_Publish(w->nc, subject, text, (int)strlen(text));
    /* for whoever watches the pool: cbx.events.execution.<type> */
    const char *type = json_string_value(json_object_get(j->result, "executor"));
    if (type && cbx__dist_token_ok(type)) {
        snprintf(subject, sizeof subject, "cbx.events.execution.%s", type);
        natsConnection_Publish(w->nc, subject, text, (int)strlen(text));
    }
    natsMsg_Ack(j->msg, NULL);
    free(text);
    atomic_fetch_add(&w->done, 1);
    say(w, "job %s: %s", j->id, json_string_value(json_object_get(j->result, "status")));
}

static void *finisher_main(void *arg)
{
    cbx_worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->outbox.head && !w->finisher_stop)
            pthread_cond_wait(&w->cv_finisher, &w->mu);
        job *j = pop(&w->outbox);
        pthread_mutex_unlock(&w->mu);
        if (!j)
            break;
        finish(w, j);
        job_free(j);
    }
    return NULL;
}

/* ---- the loop -------------------------------------------------------------------------------- */

static void free_spent(cbx_worker *w)
{
    for (size_t i = 0; i < w->n_spent; i++)
        cbx_policy_free(w->spent[i]);
    w->n_spent = 0;
}

static void to_finisher(cbx_worker *w, job *j)
{
    pthread_mutex_lock(&w->mu);
    push(&w->outbox, j);
    w->inflight--;
    pthread_cond_signal(&w->cv_finisher);
    pthread_cond_signal(&w->cv_puller);
    pthread_mutex_unlock(&w->mu);
}

static void maybe_finish(cbx_worker *w)
{
    pthread_mutex_lock(&w->mu);
    int ready = w->stopping && w->puller_done && w->inflight == 0;
    pthread_mutex_unlock(&w->mu);
    if (!ready || w->handles_closed)
        return;
    w->handles_closed = 1;
    uv_close((uv_handle_t *)&w->inbox_async, NULL);
    uv_close((uv_handle_t *)&w->stop_async, NULL);
    uv_close((uv_handle_t *)&w->progress, NULL);
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
    if (res->rc == CBX_EQUEUE_FULL) {
        j->result = NULL; /* a local refusal: another worker, or this one later */
    } else {
        j->result = cbx_result_to_json(res);
        if (j->result) {
            json_object_set_new(j->result, "worker_execution_id", json_string(res->id));
            json_object_set_new(j->result, "id", json_string(j->id));
            json_object_set_new(j->result, "worker", json_string(w->id));
        }
    }
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
    to_finisher(w, j);
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
            to_finisher(w, j);
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
    for (;;) {
        pthread_mutex_lock(&w->mu);
        job *j = pop(&w->inbox);
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->mu);
        if (!j)
            break;
        if (stopping)
            to_finisher(w, j); /* fetched as the worker stopped: handed back, not run */
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

int cbx_worker_new(cbx_worker **out, const cbx_worker_opts *o, cbx_err *err)
{
    *out = NULL;
    cbx_worker *w = calloc(1, sizeof *w);
    if (!w)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    w->o = *o;
    if (!w->o.concurrency)
        w->o.concurrency = 4;
    if (!w->o.ack_wait_ns)
        w->o.ack_wait_ns = 30ull * 1000000000u;
    if (!w->o.max_deliver)
        w->o.max_deliver = 5;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_puller, NULL);
    pthread_cond_init(&w->cv_finisher, NULL);
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
    if ((rc = cbx__dist_connect(w->url, &w->nc, err)) != 0)
        goto fail;
    natsStatus s = natsConnection_JetStream(&w->js, w->nc, NULL);
    if (s != NATS_OK) {
        rc = cbx_err_set(err, CBX_EFAILED, "JetStream on %s: %s", w->url, natsStatus_GetText(s));
        goto fail;
    }
    if ((rc = cbx__dist_ensure_stream(w->js, err)) != 0 ||
        (rc = cbx__dist_ensure_results(w->js, &w->results, err)) != 0 ||
        (rc = setup_consumer(w, err)) != 0)
        goto fail;
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
    uv_timer_init(w->loop, &w->progress);
    w->inbox_async.data = w->stop_async.data = w->progress.data = w;
    *out = w;
    return 0;
fail:
    cbx_worker_free(w);
    return rc;
}

int cbx_worker_run(cbx_worker *w)
{
    uint64_t every_ms = w->o.ack_wait_ns / 3000000u;
    uv_timer_start(&w->progress, on_progress, every_ms ? every_ms : 1, every_ms ? every_ms : 1);
    for (; w->finishers_started < FINISHERS; w->finishers_started++)
        if (pthread_create(&w->finishers[w->finishers_started], NULL, finisher_main, w) != 0)
            break;
    if (!w->finishers_started)
        return -EAGAIN;
    if (pthread_create(&w->puller, NULL, puller_main, w) != 0) {
        cbx_worker_stop(w);
    } else {
        w->puller_started = 1;
    }
    if (!w->puller_started) {
        pthread_mutex_lock(&w->mu);
        w->puller_done = 1;
        pthread_mutex_unlock(&w->mu);
    }
    uv_run(w->loop, UV_RUN_DEFAULT);
    if (w->puller_started) {
        pthread_join(w->puller, NULL);
        w->puller_started = 0;
    }
    pthread_mutex_lock(&w->mu);
    w->finisher_stop = 1;
    pthread_cond_broadcast(&w->cv_finisher);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->finishers_started; i++)
        pthread_join(w->finishers[i], NULL);
    w->finishers_started = 0;
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
    if (w->rt && !w->handles_closed) {
        uv_close((uv_handle_t *)&w->inbox_async, NULL);
        uv_close((uv_handle_t *)&w->stop_async, NULL);
        uv_close((uv_handle_t *)&w->progress, NULL);
        uv_run(w->loop, UV_RUN_NOWAIT);
    }
    cbx_runtime_free(w->rt);
    free(w->spent);
    for (job *j; (j = pop(&w->outbox)) != NULL;)
        job_free(j);
    for (job *j; (j = pop(&w->inbox)) != NULL;)
        job_free(j);
    natsSubscription_Destroy(w->sub);
    kvStore_Destroy(w->results);
    jsCtx_Destroy(w->js);
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
    pthread_cond_destroy(&w->cv_finisher);
    pthread_cond_destroy(&w->cv_puller);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
