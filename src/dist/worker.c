/* A worker: jobs pulled from the work stream, run on a local runtime, their results stored and
 * announced, and only then acknowledged (cbx/dist.h).
 *
 * Everything happens on the runtime's loop thread, which also drives the worker's connection
 * (nats_uv.h): the loop reads what the server sends, and what the worker publishes in one turn
 * goes out in one write before the loop next polls. Nothing waits for the server. The worker asks
 * for as many jobs as it has free slots (a JetStream pull request), asks the results bucket about
 * each job it is given (a direct get: a job whose result is stored is not run again), runs it,
 * publishes its result to the bucket, and when the server acknowledges that store, announces the
 * result on cbx.result.<id> and acknowledges the job. The server's answers - jobs, look-ups,
 * stores' acknowledgements - come to two synchronous subscriptions that a check handle empties
 * after each poll of the loop; a look-up or store answer names its job by slot and generation in
 * its reply subject. A timer gives up on answers that do not come: a look-up after 2 s counts as
 * "no result" (the job runs), a store after 5 s is published again; a pull request is over when
 * it expires (5 s) whether or not the server says so, and after a reconnection.
 *
 * A job holds one of the --concurrency slots from its delivery to its acknowledgement.
 */
#define _GNU_SOURCE /* memmem */
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
#include "runtime/redact.h"

#define FETCH_MAX       256  /* jobs asked for in one pull request, at most */
#define PULL_EXPIRES_MS 5000 /* a pull request's life at the server, and here */
#define HAND_BACK_MS    1000
#define LOOKUP_WAIT_MS  2000
#define STORE_WAIT_MS   5000 /* for the server's acknowledgement of one stored result */
#define STORE_RETRY_MS  100  /* between tries of a store that failed */
#define STORE_GIVE_UP_MS                                                                           \
    60000 /* a minute for the server to come back, then left for redelivery                        \
           */
#define TICK_MS       100
#define CLOSE_WAIT_MS 2000 /* for the last acknowledgements to be written, when draining */

enum { J_LOOKING, J_RUNNING, J_STORING, J_RETRY };

typedef struct job {
    cbx_worker *w;
    natsMsg *msg; /* the delivery: its reply subject takes the acknowledgements */
    json_t *doc;
    char id[40];
    uint32_t slot, gen;
    int state;
    uint64_t delivered;    /* this delivery's number, 1 the first */
    uint64_t seq;          /* its sequence number in the work stream */
    int fresh;             /* "fresh": its submitter made its id for it alone */
    int64_t since_ms;      /* monotonic: J_LOOKING asked, J_STORING sent, J_RETRY failed */
    int64_t failing_since; /* ms, monotonic: the first failed store; 0 = none */
    cbx_policy *policy;
    json_t *result;          /* what is stored */
    char *text;              /* the result as stored */
    struct job *next, *prev; /* w->jobs */
} job;

struct cbx_worker {
    cbx_worker_opts o;
    char *url, *queue, *id, *work_subject, *durable, *pull_api;
    char *inbox;      /* answers come to <inbox>.pull and <inbox>.r.<kind>.<slot>.<gen> */
    char *pull_inbox; /* <inbox>.pull.<serial>: a pull request's jobs and its end */
    size_t inbox_len;
    char **types;
    natsConnection *nc;
    jsCtx *js;
    kvStore *results;
    natsSubscription *deliveries; /* jobs, and the pull requests' status messages */
    natsSubscription *answers;    /* look-ups' and stores' answers */
    cbx_runtime *rt;
    uv_loop_t *loop;
    uv_async_t stop_async, setup_async;
    natsStatistics *stats; /* the connection's, for its count of reconnections */
    /* The work stream's last sequence when this connection was made (UINT64_MAX until the server
     * says): a fresh job first given past it cannot have been given before (fresh_job). */
    uint64_t fresh_after;
    int64_t floor_asked_ms;
    uint64_t reconnects;
    uv_check_t drain;
    uv_prepare_t flush;
    uv_timer_t tick, progress;
    job **slots;          /* concurrency of them; NULL = free */
    uint32_t *free_slots; /* a stack of the free ones */
    uint32_t n_free, gen;
    job *jobs;            /* every job holding a slot */
    uint32_t inflight;    /* slots taken */
    uint32_t low_water;   /* no pull request while more slots than this are taken */
    int pull_open;        /* a pull request is at the server */
    int pull_hold;        /* the server refused one: the next waits for a tick */
    uint32_t pull_left;   /* jobs the open request may still bring */
    uint64_t pull_serial; /* the open request's (its reply subject ends with it) */
    uv_timer_t pull_end;  /* the open request's life here */
    int no_direct;        /* the bucket has no direct gets: the message-get API instead */
    int stopping, closing, nc_closed, handles_closed;
    int64_t closing_since;
    natsMsg **grave; /* messages done with, destroyed together before the loop polls: libnats
                        hands each to its garbage-collector thread, woken once for the lot */
    size_t n_grave, cap_grave;
    cbx_policy **spent; /* policies of ended executions, freed a turn later */
    size_t n_spent, cap_spent;
    atomic_uint_least64_t done, handed_back, poisoned;
};

/* A job's story goes through the library's log (cbx/log.h): INFO for each job, WARN for what
 * went wrong; every line names the worker. */
#define say(w, fmt, ...)  CBX_LOG(CBX_LOG_INFO, "worker", "%s: " fmt, (w)->id, __VA_ARGS__)
#define warn(w, fmt, ...) CBX_LOG(CBX_LOG_WARN, "worker", "%s: " fmt, (w)->id, __VA_ARGS__)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void maybe_pull(cbx_worker *w);
static void maybe_finish(cbx_worker *w);
static void check_reconnected(cbx_worker *w);

/* m is done with: destroyed with the others before the loop polls. */
static void drop(cbx_worker *w, natsMsg *m)
{
    if (!m)
        return;
    if (w->n_grave == w->cap_grave) {
        size_t cap = w->cap_grave ? w->cap_grave * 2 : 256;
        natsMsg **g = realloc(w->grave, cap * sizeof *g);
        if (!g) {
            natsMsg_Destroy(m);
            return;
        }
        w->grave = g;
        w->cap_grave = cap;
    }
    w->grave[w->n_grave++] = m;
}

static void drop_all(cbx_worker *w)
{
    for (size_t i = 0; i < w->n_grave; i++)
        natsMsg_Destroy(w->grave[i]);
    w->n_grave = 0;
}

/* ---- acknowledgements ------------------------------------------------------------------------ */

/* what: "+ACK", "+WPI", "+TERM" or "-NAK {...}", to the delivery's reply subject. */
static void reply_to(cbx_worker *w, natsMsg *msg, const char *what)
{
    const char *r = natsMsg_GetReply(msg);
    if (r && *r)
        natsConnection_Publish(w->nc, r, what, (int)strlen(what));
}

static void nak(cbx_worker *w, natsMsg *msg, int64_t delay_ms)
{
    char what[64];
    snprintf(what, sizeof what, "-NAK {\"delay\":%lld}", (long long)delay_ms * 1000000);
    reply_to(w, msg, delay_ms > 0 ? what : "-NAK");
}

/* ---- slots ----------------------------------------------------------------------------------- */

static void job_free(job *j)
{
    if (!j)
        return;
    drop(j->w, j->msg);
    json_decref(j->doc);
    json_decref(j->result);
    free(j->text);
    free(j);
}

/* The job is over here (acknowledged, handed back, or left for redelivery): its slot is free. */
static void job_end(cbx_worker *w, job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        w->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    w->slots[j->slot] = NULL;
    w->free_slots[w->n_free++] = j->slot;
    w->inflight--;
    job_free(j);
    maybe_pull(w);
    maybe_finish(w);
}

static void hand_back(cbx_worker *w, job *j, int64_t delay_ms)
{
    nak(w, j->msg, delay_ms);
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

/* The reply subject for an answer about j: <inbox>.r.<kind>.<slot>.<gen>. */
static void reply_subject(const cbx_worker *w, const job *j, char kind, char *buf, size_t len)
{
    snprintf(buf, len, "%s.r.%c.%u.%u", w->inbox, kind, j->slot, j->gen);
}

/* ---- storing results ------------------------------------------------------------------------- */

static void store_failed(cbx_worker *w, job *j, const char *why)
{
    if (!j->failing_since) {
        j->failing_since = now_ms();
        warn(w, "job %s: storing its result failed (%s); tried again until it is stored", j->id,
             why);
    }
    j->state = J_RETRY;
    j->since_ms = now_ms();
}

/* Publish j's result to the bucket; the server's answer comes to on_answer ('S'). */
static void store(cbx_worker *w, job *j)
{
    if (!j->text && !(j->result && (j->text = cbx__json_text(j->result)) != NULL)) {
        warn(w, "job %s: its result cannot be written (out of memory); handed back", j->id);
        hand_back(w, j, HAND_BACK_MS);
        return;
    }
    char subject[64], reply[200];
    snprintf(subject, sizeof subject, "$KV.%s.%s", CBX__DIST_RESULTS, j->id);
    reply_subject(w, j, 'S', reply, sizeof reply);
    j->state = J_STORING;
    j->since_ms = now_ms();
    natsStatus s =
        natsConnection_PublishRequest(w->nc, subject, reply, j->text, (int)strlen(j->text));
    if (s != NATS_OK)
        store_failed(w, j, natsStatus_GetText(s));
}

/* The server stored j's result: announced, then the job acknowledged. */
static void stored(cbx_worker *w, job *j)
{
    int len = (int)strlen(j->text);
    char subject[64 + CBX__DIST_TYPE_MAX];
    snprintf(subject, sizeof subject, "cbx.result.%s", j->id);
    natsConnection_Publish(w->nc, subject, j->text, len);
    /* for whoever watches the pool: cbx.events.execution.<type> */
    const char *type = json_string_value(json_object_get(j->result, "executor"));
    if (type && cbx__dist_token_ok(type)) {
        snprintf(subject, sizeof subject, "cbx.events.execution.%s", type);
        natsConnection_Publish(w->nc, subject, j->text, len);
    }
    reply_to(w, j->msg, "+ACK");
    atomic_fetch_add(&w->done, 1);
    say(w, "job %s: %s", j->id, json_string_value(json_object_get(j->result, "status")));
    job_end(w, j);
}

/* NULL when m, the answer to a store, says it is stored; else why not. */
static const char *store_refused(natsMsg *m, char *buf, size_t len)
{
    const char *status = NULL;
    if (natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status) {
        snprintf(buf, len, "%s", strcmp(status, "503") == 0 ? "JetStream is not there" : status);
        return buf;
    }
    const char *data = natsMsg_GetData(m);
    int n = natsMsg_GetDataLength(m);
    if (data && n > 0 && !memmem(data, (size_t)n, "\"error\"", 7) &&
        memmem(data, (size_t)n, "\"seq\"", 5))
        return NULL;
    json_t *doc = json_loadb(data ? data : "", n > 0 ? (size_t)n : 0, 0, NULL);
    const char *d =
        json_string_value(json_object_get(json_object_get(doc, "error"), "description"));
    snprintf(buf, len, "%s", d ? d : "not a publish acknowledgement");
    json_decref(doc);
    return buf;
}

/* ---- running --------------------------------------------------------------------------------- */

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    job *j = ud;
    cbx_worker *w = j->w;
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
    j->state = J_RUNNING;
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
    cbx_runtime_submit(w->rt, &req, NULL, NULL); /* a refusal reaches on_done too */
}

/* ---- jobs coming in -------------------------------------------------------------------------- */

/* A delivery kept (to look up, then run), or NULL when it has been dealt with here. */
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
        reply_to(w, msg, "+TERM");
        drop(w, msg);
        json_decref(doc);
        atomic_fetch_add(&w->poisoned, 1);
        return NULL;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        nak(w, msg, HAND_BACK_MS);
        drop(w, msg);
        json_decref(doc);
        return NULL;
    }
    j->w = w;
    j->msg = msg;
    j->doc = doc;
    j->fresh = json_is_true(json_object_get(doc, "fresh"));
    j->delivered = 1;
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        j->delivered = meta->NumDelivered;
        j->seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
    }
    snprintf(j->id, sizeof j->id, "%s", id);
    j->slot = w->free_slots[--w->n_free];
    j->gen = ++w->gen;
    w->slots[j->slot] = j;
    j->next = w->jobs;
    if (w->jobs)
        w->jobs->prev = j;
    w->jobs = j;
    w->inflight++;
    return j;
}

/* A job looked up and not found: given up, handed back, or to run (1). */
static int decide(cbx_worker *w, job *j)
{
    const char *type = json_string_value(json_object_get(j->doc, "executor"));
    uint64_t delivered = j->delivered;
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

/* The look-up found no result (or got no answer in time, which counts as none). */
static void not_done(cbx_worker *w, job *j)
{
    if (w->stopping)
        hand_back(w, j, 0); /* given as the worker stopped: handed back, not run */
    else if (decide(w, j))
        start_job(w, j);
}

/* A job whose result is stored (a redelivery after a worker stored it but died before its
 * ack, or the same job submitted again): not run again; the stored result announced again. */
static void already_done(cbx_worker *w, job *j, const char *text)
{
    char subject[64];
    snprintf(subject, sizeof subject, "cbx.result.%s", j->id);
    natsConnection_Publish(w->nc, subject, text, (int)strlen(text));
    reply_to(w, j->msg, "+ACK");
    say(w, "job %s: already done, its stored result announced again", j->id);
    job_end(w, j);
}

/* 1 when j's result cannot be stored yet, so it is run without a look-up: its submitter made its
 * id for it alone (JetStream keeps one message per id within its de-duplication window), this is
 * its first delivery, and it was published since this connection was made. A server killed with
 * SIGKILL can lose its consumers' state, delivery counts with it, and give again jobs a worker had
 * stored results for: those are older than the connection made to it since, and looked up. */
static int fresh_job(const cbx_worker *w, const job *j)
{
    return j->fresh && j->delivered == 1 && j->seq > w->fresh_after;
}

/* Ask the server for the work stream's last sequence (fresh_after); the answer comes to on_answer
 * ('I', with the count of reconnections it was asked after: an answer the connection before read
 * and left queued is not taken for this one's). */
static void ask_floor(cbx_worker *w)
{
    char reply[200];
    snprintf(reply, sizeof reply, "%s.r.I.%u.0", w->inbox, (unsigned)w->reconnects);
    w->floor_asked_ms = now_ms();
    natsConnection_PublishRequest(w->nc, "$JS.API.STREAM.INFO." CBX__DIST_STREAM, reply, NULL, 0);
}

static void floor_answered(cbx_worker *w, natsMsg *m)
{
    json_t *doc = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
    json_t *last = json_object_get(json_object_get(doc, "state"), "last_seq");
    if (json_is_integer(last) && json_integer_value(last) >= 0)
        w->fresh_after = (uint64_t)json_integer_value(last);
    json_decref(doc);
}

/* Ask the bucket whether j is done; the answer comes to on_answer ('L' or 'M'). */
static void look_up(cbx_worker *w, job *j)
{
    char reply[200];
    int direct = !w->no_direct;
    reply_subject(w, j, direct ? 'L' : 'M', reply, sizeof reply);
    j->state = J_LOOKING;
    j->since_ms = now_ms();
    if (cbx__lookup_ask(w->nc, j->id, reply, direct) != NATS_OK)
        not_done(w, j); /* as an unanswered look-up */
}

/* A message from the pull requests: a job, or a request's end. */
static void on_delivery(cbx_worker *w, natsMsg *m)
{
    const char *status = NULL;
    if (natsMsg_GetDataLength(m) == 0 && natsMsgHeader_Get(m, "Status", &status) == NATS_OK &&
        status) {
        /* the end of a request (its reply subject says which; an earlier one's is late news):
         * 408: it expired; 404: nothing to give; 409 and others: refused (a limit, the consumer
         * gone): the next request waits for a tick */
        const char *subj = natsMsg_GetSubject(m);
        const char *dot = subj ? strrchr(subj, '.') : NULL;
        if (w->pull_open && dot && strtoull(dot + 1, NULL, 10) == w->pull_serial) {
            w->pull_open = 0;
            uv_timer_stop(&w->pull_end);
            if (strcmp(status, "408") != 0 && strcmp(status, "404") != 0)
                w->pull_hold = 1;
        }
        drop(w, m);
        maybe_pull(w);
        return;
    }
    if (w->pull_left && --w->pull_left == 0) {
        w->pull_open = 0;
        uv_timer_stop(&w->pull_end);
    }
    if (w->stopping || w->n_free == 0) {
        /* given as the worker stopped, or more than asked for (an earlier request thought lost):
         * handed back, not run */
        nak(w, m, 0);
        drop(w, m);
        atomic_fetch_add(&w->handed_back, 1);
        maybe_pull(w);
        return;
    }
    job *j = take(w, m);
    if (j && fresh_job(w, j))
        not_done(w, j);
    else if (j)
        look_up(w, j);
    maybe_pull(w);
}

/* An answer about a job: <inbox>.r.<kind>.<slot>.<gen>; kind L (a direct get), M (a message
 * get) or S (a store). */
static void on_answer(cbx_worker *w, natsMsg *m)
{
    const char *subj = natsMsg_GetSubject(m);
    char kind = 0;
    unsigned slot = 0, gen = 0;
    job *j = NULL;
    int parsed = strlen(subj) > w->inbox_len + 3 &&
                 sscanf(subj + w->inbox_len, ".r.%c.%u.%u", &kind, &slot, &gen) == 3;
    if (parsed && kind == 'I') {
        if (slot == (unsigned)w->reconnects)
            floor_answered(w, m);
        drop(w, m);
        return;
    }
    if (parsed && slot < w->o.concurrency)
        j = w->slots[slot];
    if (!j || j->gen != gen) {
        drop(w, m); /* about a job that is over here */
        return;
    }
    if ((kind == 'L' || kind == 'M') && j->state == J_LOOKING) {
        char *text = NULL;
        int a = cbx__lookup_answer(m, kind == 'L', &text);
        drop(w, m);
        if (a < 0) {
            w->no_direct = 1; /* asked again the other way */
            look_up(w, j);
        } else if (a > 0) {
            already_done(w, j, text);
        } else {
            not_done(w, j);
        }
        free(text);
        return;
    }
    if (kind == 'S' && (j->state == J_STORING || j->state == J_RETRY)) {
        char why[200];
        const char *refused = store_refused(m, why, sizeof why);
        drop(w, m);
        if (!refused)
            stored(w, j);
        else if (j->state == J_STORING)
            store_failed(w, j, refused);
        return;
    }
    drop(w, m); /* late: the job has moved on */
}

/* Every message queued on sub, to fn, without waiting. */
static void drain_sub(cbx_worker *w, natsSubscription *sub, void (*fn)(cbx_worker *, natsMsg *))
{
    uint64_t n = 0;
    if (!sub || natsSubscription_QueuedMsgs(sub, &n) != NATS_OK)
        return;
    for (; n > 0; n--) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 1) != NATS_OK)
            break;
        fn(w, m);
    }
}

/* After each poll of the loop: what the connection read meanwhile. */
static void on_drain(uv_check_t *h)
{
    cbx_worker *w = h->data;
    if (w->nc_closed)
        return;
    check_reconnected(w); /* before any job the new connection brought (fresh_job) */
    drain_sub(w, w->answers, on_answer);
    drain_sub(w, w->deliveries, on_delivery);
}

/* Before the loop polls: what this turn published, written now, in one system call, rather than
 * on the poll's writable event a turn later (the adapter's way). */
static void on_flush(uv_prepare_t *h)
{
    cbx_worker *w = h->data;
    if (!w->nc_closed && natsConnection_Buffered(w->nc) > 0)
        natsConnection_ProcessWriteEvent(w->nc);
    drop_all(w);
}

static void on_pull_end(uv_timer_t *t)
{
    cbx_worker *w = t->data;
    w->pull_open = 0;
    maybe_pull(w);
}

/* Ask for as many jobs as there are free slots, when no request is out and at most low_water
 * slots are taken (a full worker asks again when a quarter of its slots are free, rather than
 * for one job at a time as each ends). */
static void maybe_pull(cbx_worker *w)
{
    if (w->stopping || w->nc_closed || w->pull_open || w->pull_hold || w->n_free == 0 ||
        w->inflight > w->low_water)
        return;
    uint32_t batch = w->n_free < FETCH_MAX ? w->n_free : FETCH_MAX;
    char body[96];
    int len = snprintf(body, sizeof body, "{\"batch\":%u,\"expires\":%lld}", batch,
                       (long long)PULL_EXPIRES_MS * 1000000);
    char reply[200];
    snprintf(reply, sizeof reply, "%s.%llu", w->pull_inbox, (unsigned long long)w->pull_serial + 1);
    if (natsConnection_PublishRequest(w->nc, w->pull_api, reply, body, len) != NATS_OK)
        return; /* the connection is away: the tick asks again */
    w->pull_serial++;
    w->pull_open = 1;
    w->pull_left = batch;
    /* Over when it expires, whether or not the server says so: nats-server 2.9 drops a request
     * that expired while nothing came, without a word, when the next job arrives (and the jobs
     * then waited for a request that was no longer there). */
    uv_timer_start(&w->pull_end, on_pull_end, PULL_EXPIRES_MS, 0);
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
    uv_close((uv_handle_t *)&w->stop_async, NULL);
    uv_close((uv_handle_t *)&w->setup_async, NULL);
    uv_close((uv_handle_t *)&w->drain, NULL);
    uv_close((uv_handle_t *)&w->flush, NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->progress, NULL);
    uv_close((uv_handle_t *)&w->pull_end, NULL);
}

/* Drained: once the last acknowledgements are written (or after CLOSE_WAIT_MS), the connection
 * closes, which detaches it from the loop, and the worker's handles close: the loop ends. */
static void maybe_finish(cbx_worker *w)
{
    if (!w->stopping || w->inflight > 0 || w->handles_closed)
        return;
    int64_t now = now_ms();
    if (!w->closing) {
        w->closing = 1;
        w->closing_since = now;
    }
    if (!w->nc_closed && natsConnection_Buffered(w->nc) > 0 &&
        now - w->closing_since < CLOSE_WAIT_MS)
        return; /* written at the loop's next turn; the tick looks again */
    if (!w->nc_closed) {
        w->nc_closed = 1;
        natsConnection_Close(w->nc);
    }
    w->handles_closed = 1;
    close_handles(w);
}

static void on_tick(uv_timer_t *t)
{
    cbx_worker *w = t->data;
    free_spent(w);
    int64_t now = now_ms();
    for (job *j = w->jobs, *next; j; j = next) {
        next = j->next; /* j may end here */
        if (j->state == J_LOOKING && now - j->since_ms >= LOOKUP_WAIT_MS) {
            not_done(w, j); /* no answer counts as no result, as a failed get always did */
        } else if (j->state == J_STORING && now - j->since_ms >= STORE_WAIT_MS) {
            store_failed(w, j, "no answer");
        } else if (j->state == J_RETRY && now - j->since_ms >= STORE_RETRY_MS) {
            if (now - j->failing_since >= STORE_GIVE_UP_MS) {
                /* not stored: the job is not acknowledged, so it will run again elsewhere */
                warn(w, "job %s: its result could not be stored for %d s; left for redelivery",
                     j->id, STORE_GIVE_UP_MS / 1000);
                job_end(w, j);
            } else {
                store(w, j);
            }
        }
    }
    check_reconnected(w);
    if (w->fresh_after == UINT64_MAX && now - w->floor_asked_ms >= 1000)
        ask_floor(w);
    w->pull_hold = 0;
    maybe_pull(w);
    maybe_finish(w);
}

static void on_progress(uv_timer_t *t)
{
    cbx_worker *w = t->data;
    /* every job held here, not only the running ones: a job whose look-up or store waits for
     * a server that restarted is still this worker's, and must not go to another meanwhile */
    for (job *j = w->jobs; j; j = j->next)
        reply_to(w, j->msg, "+WPI");
}

/* Once the connection is back (the server restarted, or the network came back): the server is
 * told at once that the jobs held here are still being worked on (a restarted server may otherwise
 * give those it thinks overdue to another worker), a pull request lost with the old connection is
 * made again, and so are look-ups and stores that were waiting for answers. Looked at every
 * tick. */
static void check_reconnected(cbx_worker *w)
{
    uint64_t n = 0;
    if (!w->stats || w->nc_closed || natsConnection_GetStats(w->nc, w->stats) != NATS_OK ||
        natsStatistics_GetCounts(w->stats, NULL, NULL, NULL, NULL, &n) != NATS_OK ||
        n == w->reconnects)
        return;
    w->reconnects = n;
    w->fresh_after = UINT64_MAX; /* the server may have restarted and lost delivery counts */
    ask_floor(w);
    on_progress(&w->progress);
    w->pull_open = 0;
    uv_timer_stop(&w->pull_end);
    /* look-ups and stores sent before the connection went were most likely lost with it: sent
     * again now rather than after their time limits (an answer to either try will do) */
    for (job *j = w->jobs, *next; j; j = next) {
        next = j->next; /* j may end here */
        if (j->state == J_LOOKING)
            look_up(w, j);
        else if (j->state == J_STORING)
            store(w, j);
    }
}

static void on_stop(uv_async_t *h)
{
    cbx_worker *w = h->data;
    if (!w->stopping)
        say(w, "draining: %u jobs to finish", w->inflight);
    w->stopping = 1;
    for (job *j = w->jobs, *next; j; j = next) {
        next = j->next;
        if (j->state == J_LOOKING)
            hand_back(w, j, 0); /* given as the worker stopped: handed back, not run */
    }
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
    return 0;
}

/* The subscriptions the answers come to. */
static int setup_inbox(cbx_worker *w, cbx_err *err)
{
    natsInbox *inbox = NULL;
    char wild[200];
    natsStatus s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        size_t n = strlen(inbox);
        w->inbox = strdup(inbox);
        w->pull_inbox = malloc(n + 6);
        if (!w->inbox || !w->pull_inbox)
            s = NATS_NO_MEMORY;
        else
            snprintf(w->pull_inbox, n + 6, "%s.pull", inbox);
        w->inbox_len = n;
    }
    natsInbox_Destroy(inbox);
    if (s == NATS_OK) {
        snprintf(wild, sizeof wild, "%s.*", w->pull_inbox);
        s = natsConnection_SubscribeSync(&w->deliveries, w->nc, wild);
    }
    if (s == NATS_OK) {
        snprintf(wild, sizeof wild, "%s.r.>", w->inbox);
        s = natsConnection_SubscribeSync(&w->answers, w->nc, wild);
    }
    if (s != NATS_OK)
        return cbx_err_set(err, CBX_EFAILED, "cannot subscribe on %s: %s", w->url,
                           cbx__nats_why(s));
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
        rc = setup_inbox(w, sj->err);
    /* A bucket made without direct gets (by an older client) leaves a direct get unanswered (the
     * server takes it and says nothing): asked through the message-get API from the start. */
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (!rc && js_GetStreamInfo(&si, w->js, "KV_" CBX__DIST_RESULTS, NULL, &jerr) == NATS_OK &&
        si && si->Config && !si->Config->AllowDirect)
        w->no_direct = 1;
    jsStreamInfo_Destroy(si);
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
    w->fresh_after = UINT64_MAX; /* until the server says (ask_floor) */
    if (!w->o.concurrency)
        w->o.concurrency = 4;
    w->low_water = w->o.concurrency - (w->o.concurrency / 4 ? w->o.concurrency / 4 : 1);
    if (!w->o.ack_wait_ns)
        w->o.ack_wait_ns = 30ull * 1000000000u;
    if (!w->o.max_deliver)
        w->o.max_deliver = 5;
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
    char subj[128], durable[128], api[256];
    snprintf(subj, sizeof subj, "cbx.work.%s", queue);
    snprintf(durable, sizeof durable, "cbx-worker-%s", queue);
    snprintf(api, sizeof api, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", CBX__DIST_STREAM, durable);
    w->url = strdup(cbx__dist_url(o->url));
    w->queue = strdup(queue);
    w->id = strdup(o->worker_id ? o->worker_id : idbuf);
    w->work_subject = strdup(subj);
    w->durable = strdup(durable);
    w->pull_api = strdup(api);
    w->slots = calloc(w->o.concurrency, sizeof *w->slots);
    w->free_slots = calloc(w->o.concurrency, sizeof *w->free_slots);
    if (!w->url || !w->queue || !w->id || !w->work_subject || !w->durable || !w->pull_api ||
        !w->slots || !w->free_slots) {
        rc = cbx_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < w->o.concurrency; i++)
        w->free_slots[w->n_free++] = w->o.concurrency - 1 - i;
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
    uv_async_init(w->loop, &w->stop_async, on_stop);
    uv_async_init(w->loop, &w->setup_async, on_setup_done);
    uv_check_init(w->loop, &w->drain);
    uv_prepare_init(w->loop, &w->flush);
    uv_timer_init(w->loop, &w->tick);
    uv_timer_init(w->loop, &w->progress);
    uv_timer_init(w->loop, &w->pull_end);
    w->stop_async.data = w->setup_async.data = w->drain.data = w->flush.data = w->tick.data =
        w->progress.data = w->pull_end.data = w;
    /* The connection is driven by the runtime's loop (nats_uv.h): what the worker publishes in
     * one turn (look-ups, stores, announcements, acknowledgements, pull requests) is written
     * before the loop polls again (on_flush), in one system call, rather than one call per message
     * or after the millisecond libnats' flusher waits; and what the server sends is read on the
     * loop, with no thread between the socket and the jobs. */
    if ((rc = cbx__dist_connect_loop(w->url, w->loop, &w->nc, err)) != 0)
        goto fail;
    natsStatus s = natsConnection_JetStream(&w->js, w->nc, NULL);
    if (s == NATS_OK)
        s = natsStatistics_Create(&w->stats);
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
    uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
    ask_floor(w);
    uv_check_start(&w->drain, on_drain);
    uv_prepare_start(&w->flush, on_flush);
    maybe_pull(w);
    uv_run(w->loop, UV_RUN_DEFAULT);
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
    cbx_runtime_free(w->rt); /* running jobs cancelled: their stores fail, the connection closed */
    /* jobs still held (a worker freed without draining): dropped, left for redelivery */
    for (job *j = w->jobs, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    w->jobs = NULL;
    drop_all(w);
    free(w->grave);
    free_spent(w);
    free(w->spent);
    natsSubscription_Destroy(w->deliveries);
    natsSubscription_Destroy(w->answers);
    kvStore_Destroy(w->results);
    natsStatistics_Destroy(w->stats);
    jsCtx_Destroy(w->js);
    natsConnection_Destroy(w->nc);
    if (w->types)
        for (char **t = w->types; *t; t++)
            free(*t);
    free(w->types);
    free(w->slots);
    free(w->free_slots);
    free(w->url);
    free(w->queue);
    free(w->id);
    free(w->work_subject);
    free(w->durable);
    free(w->pull_api);
    free(w->inbox);
    free(w->pull_inbox);
    free(w);
}
