/* One execution's life once it has a concurrency slot: admit under the named breaker and the
 * policy, run an attempt with its deadline enforced, judge it, retry or finish. Everything here
 * runs on the loop thread, except a blocking executor's run(), which runs on the thread pool and
 * touches only its own task. */
#include "runtime/runtime_internal.h"

#include "cbx/journal.h"
#include "telemetry/trace.h"
#include "core/log_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void next_attempt(cbx_execution *ex, uint64_t now);

/* A named breaker's record locked by another process: how long one admission or record waits
 * on the loop thread, and how long until an admission tries again. */
#define LOCK_SPIN_NS  (2 * CBX_NS_PER_MS)
#define LOCK_RETRY_NS (5 * CBX_NS_PER_MS)

static uint64_t now_ns(void)
{
    return cbx_clock_now_ns(NULL);
}

/* The timer's callback whenever the execution should go on with its next attempt. */
static void resume(uv_timer_t *timer)
{
    next_attempt((cbx_execution *)timer->data, now_ns());
}

/* ---- the execution's one timer ------------------------------------------------------------ */

/* Set up on first use: most executions (a function that answers at once, no deadline) never
 * need it, and one never set up needs no close (a turn of the loop) before it is freed. */
static uv_timer_t *body_timer(cbx_execution *ex)
{
    cbx__exec_body *b = ex->b;
    if (!b->timer_on) {
        uv_timer_init(ex->rt->loop, &b->timer);
        b->timer.data = ex;
        b->timer_on = 1;
    }
    return &b->timer;
}

static void timer_at(cbx_execution *ex, uint64_t at_ns, uv_timer_cb cb)
{
    /* The loop's cached time may lag: refresh it, or a deadline would fire early. */
    uv_update_time(ex->rt->loop);
    uint64_t now = now_ns();
    uint64_t ms = at_ns > now ? (at_ns - now + CBX_NS_PER_MS - 1) / CBX_NS_PER_MS : 0;
    /* The loop counts whole milliseconds: one more keeps the timer from firing before at_ns. */
    uv_timer_start(body_timer(ex), cb, ms ? ms + 1 : 0, 0);
}

static void timer_stop(cbx_execution *ex)
{
    if (ex->b->timer_on)
        uv_timer_stop(&ex->b->timer);
}

void cbx__exec_journal_status(cbx_execution *ex, cbx_status status)
{
    if (!ex->rt->journal || ex->journaled == status)
        return;
    ex->journaled = (uint8_t)status;
    cbx_journal_execution_status(ex->rt->journal, ex->id, cbx_status_name(status), NULL);
}

/* ---- finishing ---------------------------------------------------------------------------- */

static cbx_status status_of_policy(cbx_policy_status s)
{
    switch (s) {
    case CBX_POLICY_SUCCESS:
        return CBX_STATUS_SUCCESS;
    case CBX_POLICY_TIMEOUT:
        return CBX_STATUS_TIMEOUT;
    case CBX_POLICY_REJECTED:
        return CBX_STATUS_REJECTED;
    case CBX_POLICY_CANCELLED:
        return CBX_STATUS_CANCELLED;
    default:
        return CBX_STATUS_FAILED;
    }
}

static void release_named(cbx_execution *ex)
{
    if (!ex->b->named_held)
        return;
    ex->b->named_held = 0;
    cbx_breaker_store_record_by(ex->rt->breakers, ex->breaker, ex->b->named_permit,
                                CBX_OUTCOME_IGNORED, -1, now_ns() + LOCK_SPIN_NS);
}

/* A failed attempt's outputs (a command's stdout and stderr, an HTTP error body) are kept: if
 * nothing better answers, the result carries the last ones. */
static void keep_last(cbx_execution *ex, json_t *outputs)
{
    if (!outputs)
        return;
    json_decref(ex->b->last_outputs);
    ex->b->last_outputs = outputs;
}

/* The end, at monotonic time end (a reading the caller has just taken): record it, free the
 * slot, tell the caller. */
static void finish_at(cbx_execution *ex, cbx_status status, int rc, const char *why, uint64_t end)
{
    if (cbx__exec_ensure_body(ex) < 0) {
        ex->phase = PHASE_DONE;
        ex->status = status;
        cbx__rt_execution_done(ex);
        return;
    }
    timer_stop(ex);
    release_named(ex);
    if (ex->run_begun) {
        cbx_policy_end(ex->policy, &ex->b->run);
        ex->run_begun = 0;
    }
    ex->status = status;
    ex->phase = PHASE_DONE;
    cbx_result *r = &ex->b->res;
    r->status = status;
    r->rc = status == CBX_STATUS_SUCCESS ? 0 : rc;
    r->attempt_count = ex->b->attempts;
    if (!r->outputs && ex->b->last_outputs && status != CBX_STATUS_SUCCESS) {
        r->outputs = ex->b->last_outputs;
        ex->b->last_outputs = NULL;
    }
    /* a refusal says why it refused, even after attempts that left their own error */
    if (status != CBX_STATUS_SUCCESS && why && why[0] &&
        (!r->error[0] || status == CBX_STATUS_REJECTED))
        cbx__copy_text(r->error, sizeof r->error, why);
    if (status != CBX_STATUS_SUCCESS && !r->error[0])
        cbx__copy_text(r->error, sizeof r->error, cbx_strerror(rc));
    r->duration_ns = ex->b->started_ns ? end - ex->b->started_ns : 0;
    if (ex->ctx && cbx__exec_ctx_end_tmpdir(ex->ctx, status == CBX_STATUS_SUCCESS)) {
        if (!json_is_object(r->metadata)) {
            json_decref(r->metadata);
            r->metadata = json_object();
        }
        json_object_set_new(r->metadata, "tmpdir", json_string(ex->ctx->tmpdir));
    }
    if (ex->rt->journal) {
        cbx_journal_end e = {.execution_id = ex->id,
                             .status = cbx_status_name(status),
                             .rc = r->rc,
                             .fallback_used = r->fallback_used,
                             .attempts = ex->b->attempts,
                             .outputs = r->outputs,
                             .error = r->error[0] ? r->error : NULL,
                             .ended_ms = cbx__rt_wall_ms(ex->rt, end),
                             .duration_ns = r->duration_ns};
        cbx_journal_execution_end(ex->rt->journal, &e, NULL);
    }
    if (cbx__trace_on())
        cbx__trace_exec_end(ex, r, end);
    cbx__rt_execution_done(ex);
}

static void finish(cbx_execution *ex, cbx_status status, int rc, const char *why)
{
    finish_at(ex, status, rc, why, now_ns());
}

/* The policy has decided the call is over, one way or the other (at monotonic time now). */
static void finish_from_policy_why(cbx_execution *ex, cbx_policy_decision d, json_t *outputs,
                                   uint64_t now, const char *line)
{
    if (d == CBX_POLICY_DONE_SUCCESS) {
        cbx_policy_remember(ex->policy, ex->fallback_key, outputs);
        ex->b->res.outputs = outputs;
        finish_at(ex, CBX_STATUS_SUCCESS, 0, NULL, now);
        return;
    }
    char why[384];
    if (line)
        cbx__copy_text(why, sizeof why, line);
    else
        cbx_policy_explain(ex->policy, &ex->b->run, why, sizeof why);
    keep_last(ex, outputs);
    if (d == CBX_POLICY_USE_FALLBACK) {
        json_t *fb = NULL;
        cbx_fallback_source src;
        if (cbx_policy_fallback_get(ex->policy, ex->fallback_key, ex->params, &fb, &src, NULL) ==
            0) {
            ex->b->res.outputs = fb;
            ex->b->res.fallback_used = 1;
        }
    }
    finish_at(ex, status_of_policy(ex->b->run.status), ex->b->run.rc, why, now);
}

static void finish_from_policy(cbx_execution *ex, cbx_policy_decision d, json_t *outputs,
                               uint64_t now)
{
    finish_from_policy_why(ex, d, outputs, now, NULL);
}

/* ---- the result's attempt list ------------------------------------------------------------ */

/* The keys of an attempt record, in order; "error" and "metadata" follow when there are some. */
static const char *const record_keys[] = {"number", "outcome", "started_ms", "duration_ms"};
static const json_type record_types[] = {JSON_INTEGER, JSON_STRING, JSON_INTEGER, JSON_REAL};
#define RECORD_KEYS 4

/* 1 when nothing but its holder has a reference to j (read atomically, as jansson counts). */
static int held_once(const json_t *j)
{
    return __atomic_load_n(&j->refcount, __ATOMIC_ACQUIRE) == 1;
}

/* 1 when att is a record as attempt_record makes it, held only by its list, and its four values
 * by it: they can then be set in place for another execution, once its error and metadata (if
 * any) are dropped. */
static int reusable_record(json_t *att)
{
    if (!json_is_object(att) || !held_once(att))
        return 0;
    size_t n = json_object_size(att);
    void *it = json_object_iter(att);
    for (int i = 0; i < RECORD_KEYS; i++, it = json_object_iter_next(att, it)) {
        json_t *v = it ? json_object_iter_value(it) : NULL;
        if (!v || strcmp(json_object_iter_key(it), record_keys[i]) != 0 ||
            json_typeof(v) != record_types[i] || !held_once(v))
            return 0;
    }
    for (size_t i = RECORD_KEYS; i < n; i++, it = json_object_iter_next(att, it)) {
        const char *key = it ? json_object_iter_key(it) : "";
        if (strcmp(key, "error") != 0 && strcmp(key, "metadata") != 0)
            return 0;
    }
    return 1;
}

void cbx__attempts_recycle(cbx_runtime *rt, json_t *list)
{
    if (!list)
        return;
    if (rt->spare_attempts || !json_is_array(list) || !held_once(list)) {
        json_decref(list);
        return;
    }
    json_t *att = json_array_size(list) == 1 ? json_array_get(list, 0) : NULL;
    if (att && !rt->spare_attempt && reusable_record(att)) {
        json_object_del(att, "error");
        json_object_del(att, "metadata");
        rt->spare_attempt = json_incref(att);
    }
    json_array_clear(list);
    rt->spare_attempts = list;
}

/* An empty attempt list for a new result: the spare one, or a new one (NULL without memory). */
static json_t *attempt_list(cbx_runtime *rt)
{
    json_t *list = rt->spare_attempts;
    rt->spare_attempts = NULL;
    return list ? list : json_array();
}

/* The record of one attempt: number, outcome, started_ms, duration_ms, then error and metadata
 * when there are some (a new reference; NULL without memory). The spare record's values are
 * set in place when there is one: most executions then make no JSON for their attempt. */
static json_t *attempt_record(cbx_runtime *rt, uint32_t number, const char *outcome,
                              uint64_t started_ms, double duration_ms, const char *error,
                              json_t *metadata)
{
    json_t *att = rt->spare_attempt;
    rt->spare_attempt = NULL;
    if (att) {
        void *it = json_object_iter(att);
        json_t *v[RECORD_KEYS];
        for (int i = 0; i < RECORD_KEYS; i++, it = json_object_iter_next(att, it))
            v[i] = json_object_iter_value(it);
        json_integer_set(v[0], (json_int_t)number);
        json_integer_set(v[2], (json_int_t)started_ms);
        json_real_set(v[3], duration_ms);
        if (strcmp(json_string_value(v[1]), outcome) != 0 &&
            json_string_setn_nocheck(v[1], outcome, strlen(outcome)) < 0) {
            json_decref(att);
            att = NULL;
        }
    }
    if (!att) { /* built by hand: json_pack's format parsing shows in profiles */
        att = json_object();
        if (!att)
            return NULL;
        json_object_set_new_nocheck(att, "number", json_integer((json_int_t)number));
        json_object_set_new_nocheck(att, "outcome", json_string_nocheck(outcome));
        json_object_set_new_nocheck(att, "started_ms", json_integer((json_int_t)started_ms));
        json_object_set_new_nocheck(att, "duration_ms", json_real(duration_ms));
    }
    if (error)
        json_object_set_new(att, "error", json_string(error));
    if (metadata)
        json_object_set(att, "metadata", metadata);
    return att;
}

/* ---- one attempt -------------------------------------------------------------------------- */

/* A result filter (retry.on_status, retry.on_exit_code) refused a retry: say which value. */
static void no_retry_because(cbx_policy_run *run, const json_t *outputs)
{
    const json_t *st = json_object_get(outputs, "status");
    if (json_is_integer(st))
        cbx_policy_run_no_retry(run, "status", json_integer_value(st));
    else
        cbx_policy_run_no_retry(run, "exit code",
                                json_integer_value(json_object_get(outputs, "exit_code")));
}

/* Add "; what" to the result's error line (or make it the line when there is none). */
static void error_append(cbx_execution *ex, const char *what)
{
    char *e = ex->b->res.error;
    size_t n = strlen(e);
    if (n)
        snprintf(e + n, sizeof ex->b->res.error - n, "; %s", what);
    else
        cbx__copy_text(e, sizeof ex->b->res.error, what);
}

/* The breaker's predicates (breaker.ignore_when, then breaker.count_when) on the attempt: how
 * the breaker is to count it. An error in one leaves it to the fixed rules (and is logged). */
static cbx_breaker_verdict breaker_verdict(cbx_execution *ex, const cbx__pred_attempt *a)
{
    static const char *const keys[2] = {"breaker.ignore_when", "breaker.count_when"};
    const char *expr[2] = {cbx_policy_breaker_ignore_when(ex->policy),
                           cbx_policy_breaker_count_when(ex->policy)};
    for (int i = 0; i < 2; i++) {
        if (!expr[i])
            continue;
        int truth = 0;
        char msg[256];
        if (cbx__predicate_eval(ex->rt, keys[i], expr[i], a, &truth, msg, sizeof msg) < 0) {
            cbx__log(CBX_LOG_WARN, "policy",
                     "%s failed: %s; the breaker's own rules count attempt %u", keys[i], msg,
                     a->number);
            return CBX_BREAKER_VERDICT_DEFAULT;
        }
        if (i == 0 && truth)
            return CBX_BREAKER_VERDICT_IGNORE;
        if (i == 1)
            return truth ? CBX_BREAKER_VERDICT_FAILURE : CBX_BREAKER_VERDICT_SUCCESS;
    }
    return CBX_BREAKER_VERDICT_DEFAULT;
}

/* retry.when on a failed attempt the other filters let be retried: false, or an error in the
 * expression, ends the retries, and the result's error says so. */
static void ask_retry_when(cbx_execution *ex, const cbx__pred_attempt *a)
{
    int truth = 0;
    char msg[256], line[320];
    if (cbx__predicate_eval(ex->rt, "retry.when", cbx_policy_retry_when(ex->policy), a, &truth, msg,
                            sizeof msg) < 0) {
        snprintf(line, sizeof line, "retry.when failed: %s; no more retries", msg);
    } else if (!truth) {
        snprintf(line, sizeof line, "retry.when said no");
    } else {
        return;
    }
    cbx_policy_run_no_retry_why(&ex->b->run, line);
    error_append(ex, line);
}

static void attempt_finished(cbx_execution *ex, cbx_task *t, cbx_outcome k, json_t *outputs,
                             json_t *metadata, const char *error, uint64_t retry_after_ns,
                             double quality)
{
    timer_stop(ex);
    ex->b->task = NULL;
    uint64_t ended = now_ns(), duration = ended - t->start_ns;
    int stop = atomic_load(&t->stop);
    char after_error[sizeof(cbx_task_result){0}.error]; /* not t's: an abandoned run may still
                                                            write it */

    if (t->type->after) {
        cbx_task_result r = {.outcome = k,
                             .outputs = outputs,
                             .metadata = metadata,
                             .retry_after_ns = retry_after_ns,
                             .quality = quality};
        cbx__copy_text(r.error, sizeof r.error, error);
        t->type->after(t, &r);
        k = (unsigned)r.outcome < CBX_OUTCOME__COUNT ? r.outcome : CBX_OUTCOME_ERROR;
        outputs = r.outputs;
        metadata = r.metadata;
        retry_after_ns = r.retry_after_ns;
        quality = r.quality;
        cbx__copy_text(after_error, sizeof after_error, r.error);
        error = after_error;
    }
    if (stop == STOP_TIMEOUT)
        k = CBX_OUTCOME_TIMEOUT;
    /* judged once, here, so the records, a named breaker and the policy all agree */
    k = cbx_policy_judge(ex->policy, k, quality);
    if (error && !error[0])
        error = NULL;
    char timed_out[96];
    if (stop == STOP_TIMEOUT && !error) {
        snprintf(timed_out, sizeof timed_out, "attempt %u timed out after %.0f ms", t->attempt,
                 (double)duration / 1e6);
        error = timed_out;
    }

    /* record: the result's attempt list, the journal */
    json_t *att =
        attempt_record(ex->rt, t->attempt, stop == STOP_CANCEL ? "cancelled" : cbx_outcome_name(k),
                       t->started_ms, (double)duration / 1e6, error, metadata);
    if (att)
        json_array_append_new(ex->b->res.attempts, att);
    if (metadata) {
        json_decref(ex->b->res.metadata);
        ex->b->res.metadata = metadata;
    }
    if (error)
        cbx__copy_text(ex->b->res.error, sizeof ex->b->res.error, error);
    else if (k == CBX_OUTCOME_SUCCESS)
        ex->b->res.error[0] = '\0';
    if (ex->rt->journal) {
        json_t *with_chunks = cbx__stream_journal_meta(t, metadata);
        cbx_journal_attempt_info a = {.execution_id = ex->id,
                                      .number = t->attempt,
                                      .outcome =
                                          stop == STOP_CANCEL ? "cancelled" : cbx_outcome_name(k),
                                      .started_ms = t->started_ms,
                                      .duration_ns = duration,
                                      .error = error,
                                      .metadata = with_chunks ? with_chunks : metadata,
                                      .breaker_decision = ex->breaker ? "admitted" : NULL};
        cbx_journal_attempt(ex->rt->journal, &a, NULL);
        json_decref(with_chunks);
    }
    if (cbx__trace_on())
        cbx__trace_attempt_end(ex, t, stop == STOP_CANCEL ? "cancelled" : cbx_outcome_name(k),
                               duration, error);

    /* judge: the policy's predicates, the named breaker, then the policy */
    cbx_outcome judged = stop == STOP_CANCEL ? CBX_OUTCOME_IGNORED : k;
    cbx__pred_attempt pa = {.number = t->attempt,
                            .outcome = cbx_outcome_name(judged),
                            .error = error,
                            .outputs = outputs,
                            .metadata = metadata,
                            .duration_ms = (double)duration / 1e6};
    cbx_breaker_verdict verdict = CBX_BREAKER_VERDICT_DEFAULT;
    /* the policy's own breaker, or the one its breaker section makes per key */
    int keyed = ex->b->named_held && ex->policy && cbx_policy_breaker_key(ex->policy);
    if (ex->policy && stop != STOP_CANCEL &&
        (cbx_policy_breaker_count_when(ex->policy) || cbx_policy_breaker_ignore_when(ex->policy)) &&
        (keyed || ex->b->run.priv.permit_held))
        verdict = breaker_verdict(ex, &pa);
    if (ex->b->named_held) {
        ex->b->named_held = 0;
        /* a record locked elsewhere: the store keeps the outcome for later */
        cbx_breaker_store_record_by(ex->rt->breakers, ex->breaker, ex->b->named_permit,
                                    keyed ? cbx_policy_breaker_kind(judged, verdict) : judged,
                                    (int64_t)duration, now_ns() + LOCK_SPIN_NS);
    }
    if (ex->policy) {
        if (stop == STOP_CANCEL)
            cbx_policy_run_cancel(&ex->b->run);
        if (cbx_outcome_is_failure(judged) && !cbx_policy_retry_allows(ex->policy, outputs))
            no_retry_because(&ex->b->run, outputs);
        else if (cbx_outcome_is_failure(judged) && stop != STOP_CANCEL && !ex->cancel_reason &&
                 cbx_policy_retry_when(ex->policy))
            ask_retry_when(ex, &pa);
        cbx_policy_run_breaker_verdict(&ex->b->run, verdict);
        uint64_t delay = 0;
        cbx_policy_decision d = cbx_policy_attempt_end(
            ex->policy, &ex->b->run, judged, (int64_t)duration, retry_after_ns, quality, &delay);
        if (d != CBX_POLICY_RETRY) {
            if (stop == STOP_CANCEL) {
                keep_last(ex, outputs);
                finish_at(ex, CBX_STATUS_CANCELLED, CBX_ECANCELLED, "cancelled", ended);
                return;
            }
            finish_from_policy(ex, d, outputs, ended);
            return;
        }
        keep_last(ex, outputs);
        if (ex->cancel_reason || ended + delay >= ex->deadline_ns) {
            int timeout = ex->cancel_reason != STOP_CANCEL;
            finish_at(ex, timeout ? CBX_STATUS_TIMEOUT : CBX_STATUS_CANCELLED,
                      timeout ? CBX_ETIMEDOUT : CBX_ECANCELLED,
                      timeout ? "the deadline passed before the next attempt" : "cancelled", ended);
            return;
        }
        ex->status = CBX_STATUS_RETRYING;
        ex->phase = PHASE_WAITING;
        cbx__exec_journal_status(ex, CBX_STATUS_RETRYING);
        timer_at(ex, ended + delay, resume);
        if (ex->on_retry)
            ex->on_retry(ex, t->attempt, delay, error ? error : "", ex->ud);
        return;
    }
    /* no policy: one attempt */
    if (stop == STOP_CANCEL) {
        keep_last(ex, outputs);
        finish_at(ex, CBX_STATUS_CANCELLED, CBX_ECANCELLED, "cancelled", ended);
    } else if (k == CBX_OUTCOME_SUCCESS) {
        ex->b->res.outputs = outputs;
        finish_at(ex, CBX_STATUS_SUCCESS, 0, NULL, ended);
    } else {
        keep_last(ex, outputs);
        finish_at(ex, k == CBX_OUTCOME_TIMEOUT ? CBX_STATUS_TIMEOUT : CBX_STATUS_FAILED,
                  k == CBX_OUTCOME_TIMEOUT ? CBX_ETIMEDOUT : CBX_EFAILED, error, ended);
    }
}

static void task_free(cbx_task *t)
{
    cbx__stream_free(t);
    cbx__exec_ctx_unref(t->ctx);
    json_decref(t->params);
    free(t->error);
    free(t);
}

/* A reported attempt (cbx_task_done, or a blocking run that returned in time). */
void cbx__task_complete(cbx_task *t)
{
    cbx_execution *ex = t->ex;
    cbx__stream_flush(t); /* every chunk emitted before the end comes before it */
    if (t->abandoned) {   /* the consumer cancelled it meanwhile: its attempt has been ended */
        json_decref(t->outputs);
        json_decref(t->metadata);
        task_free(t);
        return;
    }
    attempt_finished(ex, t, t->outcome, t->outputs, t->metadata, t->error, t->retry_after_ns,
                     t->quality);
    task_free(t);
}

static void work_run(uv_work_t *w)
{
    cbx_task *t = CBX__CONTAINER(w, cbx_task, work);
    cbx_err err;
    cbx_err_clear(&err);
    json_t *out = NULL, *meta = NULL;
    cbx_outcome k = t->type->run(t, &out, &meta, &err);
    t->outcome = (unsigned)k < CBX_OUTCOME__COUNT ? k : CBX_OUTCOME_ERROR;
    t->outputs = out;
    t->metadata = meta;
    if (k != CBX_OUTCOME_SUCCESS && err.msg[0])
        t->error = strdup(err.msg);
}

static void work_done(uv_work_t *w, int status)
{
    cbx_task *t = CBX__CONTAINER(w, cbx_task, work);
    (void)status;
    if (t->abandoned) { /* its attempt was already ended by a timeout or cancel */
        json_decref(t->outputs);
        json_decref(t->metadata);
        task_free(t);
        return;
    }
    t->reported = 1;
    cbx__task_complete(t);
}

/* Stop the attempt that is out. Asynchronous work is cancelled and reports later; blocking
 * work gets its flag set and is left to finish on its own: its attempt ends now. */
static void stop_task(cbx_task *t, int reason)
{
    int expected = STOP_NONE;
    if (!atomic_compare_exchange_strong(&t->stop, &expected, reason))
        return;
    cbx__stream_stop(t); /* refuse later emits; wake an emitter waiting for room */
    if (t->type->start) {
        if (!t->reported)
            t->type->cancel(t); /* ends in cbx_task_done, maybe at once */
        return;
    }
    cbx__stream_flush(t); /* what it emitted before the stop */
    if (t->abandoned)
        return; /* a chunk's consumer stopped it from inside the flush */
    t->abandoned = 1;
    attempt_finished(t->ex, t, reason == STOP_TIMEOUT ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_IGNORED,
                     NULL, NULL, NULL, 0, 1.0);
}

static void on_attempt_deadline(uv_timer_t *timer)
{
    cbx_execution *ex = (cbx_execution *)timer->data;
    if (ex->b->task)
        stop_task(ex->b->task, STOP_TIMEOUT);
}

static void start_task(cbx_execution *ex, uint64_t now, uint64_t deadline)
{
    const cbx_executor_type *type = ex->type;
    cbx_task *t = calloc(1, sizeof *t + type->task_size);
    if (!t) {
        release_named(ex);
        finish(ex, CBX_STATUS_FAILED, -ENOMEM, "out of memory");
        return;
    }
    t->ex = ex;
    t->params = json_incref(ex->params);
    t->ctx = cbx__exec_ctx_ref(ex->ctx);
    t->loop = ex->rt->loop;
    t->kill_grace_ns = ex->rt->kill_grace_ns;
    memcpy(t->exec_id, ex->id, sizeof t->exec_id);
    if (cbx__trace_propagate())
        cbx__trace_task_begin(ex, t);
    t->type = type;
    t->attempt = ++ex->b->attempts;
    t->start_ns = now;
    t->started_ms = cbx__rt_wall_ms(ex->rt, now);
    t->deadline_ns = deadline;
    t->quality = 1.0;
    t->outcome = CBX_OUTCOME_ERROR;
    ex->b->task = t;
    cbx__stream_start(t, ex);
    ex->status = CBX_STATUS_RUNNING;
    ex->phase = PHASE_RUNNING;
    cbx__exec_journal_status(ex, CBX_STATUS_RUNNING); /* after the queue or a retry delay */

    if (type->loop_init || type->loop_close) {
        cbx_err err;
        cbx_err_clear(&err);
        if (cbx__rt_loop_state(ex->rt, type, &t->loop_state, &err) < 0) {
            t->reported = 1;
            cbx__task_set_error(t, "%s", err.msg[0] ? err.msg : cbx_strerror(err.code));
            cbx__task_complete(t);
            return;
        }
    }
    if (type->before) {
        cbx_err err;
        cbx_err_clear(&err);
        if (type->before(t, &err) < 0) {
            t->reported = 1;
            cbx__task_set_error(t, "before hook: %s",
                                err.msg[0] ? err.msg : cbx_strerror(err.code));
            cbx__task_complete(t);
            return;
        }
    }
    if (deadline != UINT64_MAX)
        timer_at(ex, deadline, on_attempt_deadline);
    if (type->start) {
        t->in_start = 1;
        int r = type->start(t);
        t->in_start = 0;
        if (r < 0 && !t->reported) {
            t->reported = 1;
            cbx__task_set_error(t, "could not start: %s", cbx_strerror(r));
        }
        if (t->reported)
            cbx__task_complete(t);
        return;
    }
    int r = uv_queue_work(ex->rt->loop, &t->work, work_run, work_done);
    if (r < 0) {
        t->reported = 1;
        cbx__task_set_error(t, "could not queue: %s", uv_strerror(r));
        cbx__task_complete(t);
    }
}

/* ---- admission ------------------------------------------------------------------------------ */

/* A bulkhead slot was handed over (or the wait ended): go on from the loop, not from inside
 * whichever execution gave the slot back. */
static void on_slot(cbx_policy_run *run, int rc, void *ud)
{
    (void)run;
    (void)rc;
    cbx_execution *ex = ud;
    uv_timer_start(body_timer(ex), resume, 0, 0);
}

static void on_bulkhead_wait_deadline(uv_timer_t *timer)
{
    cbx_execution *ex = (cbx_execution *)timer->data;
    cbx_bulkhead_expire(cbx_policy_bulkhead(ex->policy)); /* calls on_slot with a timeout */
}

/* Admit and start the next attempt; now is a fresh monotonic reading. */
static void next_attempt(cbx_execution *ex, uint64_t now)
{
    ex->phase = PHASE_ADMITTING;
    if (ex->cancel_reason) {
        int timeout = ex->cancel_reason == STOP_TIMEOUT;
        if (ex->b->lock_wait && !timeout)
            ex->b->res.error[0] = '\0';
        finish_at(ex, timeout ? CBX_STATUS_TIMEOUT : CBX_STATUS_CANCELLED,
                  timeout ? CBX_ETIMEDOUT : CBX_ECANCELLED,
                  timeout ? "deadline passed" : "cancelled", now);
        return;
    }
    if (now >= ex->deadline_ns) {
        finish_at(ex, CBX_STATUS_TIMEOUT, CBX_ETIMEDOUT, "the deadline passed", now);
        return;
    }
    if (ex->breaker && !ex->b->named_held) {
        cbx_breaker_rejection why;
        /* Another process holding the breaker's record must not hold up the loop, the
         * deadline or a cancel: wait a moment, then try again from the timer. */
        uint64_t dl = ex->deadline_ns;
        if (ex->run_begun && ex->b->run.deadline_ns < dl)
            dl = ex->b->run.deadline_ns; /* the policy's --deadline */
        if (ex->b->lock_wait && now >= dl) {
            finish_at(ex, CBX_STATUS_TIMEOUT, CBX_ETIMEDOUT, NULL, now);
            return;
        }
        uint64_t wait_until = now + LOCK_SPIN_NS < dl ? now + LOCK_SPIN_NS : dl;
        cbx_permit p = cbx_breaker_store_acquire_by(ex->rt->breakers, ex->breaker, ex->breaker_opts,
                                                    &why, wait_until);
        if (p.rc == -EAGAIN && now < dl) {
            /* what the result says if the deadline comes first */
            if (!ex->b->res.error[0] || ex->b->lock_wait) {
                snprintf(ex->b->res.error, sizeof ex->b->res.error,
                         "the deadline passed while breaker '%s' was locked by another process",
                         ex->breaker);
                ex->b->lock_wait = 1;
            }
            timer_at(ex, now + LOCK_RETRY_NS < dl ? now + LOCK_RETRY_NS : dl, resume);
            return;
        }
        if (ex->b->lock_wait) {
            ex->b->res.error[0] = '\0';
            ex->b->lock_wait = 0;
        }
        if (p.rc) {
            char line[384];
            cbx_breaker_store_explain(ex->rt->breakers, ex->breaker, &why, line, sizeof line);
            if (ex->policy) {
                /* the same end as a refusal by the policy's own breaker: the fallback */
                cbx_policy_run_refuse(ex->policy, &ex->b->run, p.rc, &why);
                finish_from_policy_why(ex, ex->b->run.decision, NULL, now, line);
            } else {
                finish_at(ex, CBX_STATUS_REJECTED, p.rc, line, now);
            }
            return;
        }
        ex->b->named_permit = p;
        ex->b->named_held = 1;
    }
    uint64_t deadline = UINT64_MAX;
    if (ex->policy) {
        int r = cbx_policy_admit(ex->policy, &ex->b->run);
        if (r == -EINPROGRESS) {
            release_named(ex); /* taken again when the slot comes */
            int w = cbx_policy_wait_slot(ex->policy, &ex->b->run, on_slot, ex);
            if (w == 0) {
                next_attempt(ex, now);
                return;
            }
            if (w == -EINPROGRESS) {
                if (ex->b->run.priv.waiter.deadline_ns != UINT64_MAX)
                    timer_at(ex, ex->b->run.priv.waiter.deadline_ns, on_bulkhead_wait_deadline);
                return;
            }
            r = cbx_policy_admit(ex->policy, &ex->b->run); /* reports the full queue */
        }
        if (r == -EAGAIN) {
            /* rate_limit.wait: a token is reserved for later; the named breaker is asked
             * again then, so that no probe slot is held while waiting */
            release_named(ex);
            ex->phase = PHASE_WAITING; /* a cancel ends it at once, as a retry's wait */
            uint64_t at = now + ex->b->run.rate_wait_ns;
            timer_at(ex, at < ex->deadline_ns ? at : ex->deadline_ns, resume);
            return;
        }
        if (r != 0) {
            release_named(ex);
            finish_from_policy(ex, ex->b->run.decision, NULL, now);
            return;
        }
        deadline = ex->b->run.attempt_deadline_ns;
    }
    if (ex->timeout_ns && now + ex->timeout_ns < deadline)
        deadline = now + ex->timeout_ns;
    if (ex->deadline_ns < deadline)
        deadline = ex->deadline_ns;
    start_task(ex, now, deadline);
}

/* ---- entry points from runtime.c ----------------------------------------------------------- */

void cbx__exec_body_free(cbx_runtime *rt, cbx__exec_body *b)
{
    if (b && rt->nspare_bodies < CBX__SPARE_BODIES)
        rt->spare_bodies[rt->nspare_bodies++] = b;
    else
        free(b);
}

int cbx__exec_ensure_body(cbx_execution *ex)
{
    if (ex->b)
        return 0;
    cbx_runtime *rt = ex->rt;
    cbx__exec_body *b =
        rt->nspare_bodies ? rt->spare_bodies[--rt->nspare_bodies] : malloc(sizeof *b);
    if (!b)
        return -ENOMEM;
    memset(b, 0, sizeof *b);
    ex->b = b;
    cbx_result *r = &b->res;
    memcpy(r->id, ex->id, sizeof r->id);
    size_t n = strlen(ex->type->name);
    memcpy(r->executor, ex->type->name, n < sizeof r->executor ? n + 1 : sizeof r->executor);
    r->executor[sizeof r->executor - 1] = '\0';
    r->submitted_ms = cbx__rt_wall_ms(ex->rt, ex->submitted_ns);
    r->attempts = attempt_list(ex->rt);
    return 0;
}

void cbx__exec_begin(cbx_execution *ex, uint64_t now)
{
    if (cbx__exec_ensure_body(ex) < 0) {
        /* no memory for its state: it ends as it is, without a result to speak of */
        ex->phase = PHASE_DONE;
        ex->status = CBX_STATUS_FAILED;
        cbx__rt_execution_done(ex);
        return;
    }
    ex->b->started_ns = now ? now : now_ns();
    ex->b->res.queued_ns = ex->b->started_ns - ex->submitted_ns;
    if (ex->ctx && ex->ctx->tmpdir_mode) {
        char why[320];
        if (cbx__exec_ctx_make_tmpdir(ex->ctx, ex->id, why, sizeof why) < 0) {
            finish(ex, CBX_STATUS_FAILED, CBX_EFAILED, why);
            return;
        }
    }
    if (ex->policy) {
        cbx_policy_begin(ex->policy, &ex->b->run);
        /* a policy whose breaker is picked per key: the store's breaker the request names is
         * that key's, and the policy's own breaker (for no key in particular) stays out */
        if (ex->breaker && cbx_policy_breaker_key(ex->policy))
            cbx_policy_run_use_breaker(&ex->b->run, NULL);
        ex->run_begun = 1;
    }
    next_attempt(ex, ex->b->started_ns);
}

void cbx__exec_cancel(cbx_execution *ex, int reason)
{
    if (ex->phase == PHASE_DONE || ex->cancel_reason)
        return;
    ex->cancel_reason = reason;
    if (ex->run_begun && reason == STOP_CANCEL)
        cbx_policy_run_cancel(&ex->b->run);
    int timeout = reason == STOP_TIMEOUT;
    cbx_status st = timeout ? CBX_STATUS_TIMEOUT : CBX_STATUS_CANCELLED;
    int rc = timeout ? CBX_ETIMEDOUT : CBX_ECANCELLED;
    const char *why = timeout ? "the overall deadline passed" : "cancelled";
    switch (ex->phase) {
    case PHASE_QUEUED:
        finish(ex, st, rc, why);
        break;
    case PHASE_RUNNING:
        if (ex->b->task)
            stop_task(ex->b->task, reason);
        break;
    case PHASE_WAITING:
        finish(ex, st, rc, why);
        break;
    case PHASE_ADMITTING:
        if (ex->run_begun && cbx_policy_cancel_wait(ex->policy, &ex->b->run) == 0)
            finish(ex, st, rc, why);
        /* else the slot callback is on its way and will see cancel_reason */
        break;
    case PHASE_DONE:
        break;
    }
}
