/* The journal's queue of writes: the caller (the runtime's loop thread) encodes a write's JSON
 * and copies its strings into one record, and hands it over; the flusher thread writes the
 * queued records into a batch and commits it, so that SQLite's work (the inserts, the indexes,
 * the commit) runs beside the loop rather than on it. Order is kept: a write the caller makes
 * itself (cbx_journal_write_db, a query, a flush) first writes everything queued before it. */
#include "runtime/journal_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cbx__journal_rec_free(cbx__jrec *rec)
{
    if (!rec)
        return;
    if (rec->kind == CBX__JREC_DB && rec->u.db.free_ud)
        rec->u.db.free_ud(rec->u.db.ud);
    free(rec);
}

void cbx__journal_rec_free_chain(cbx__jrec *rec)
{
    while (rec) {
        cbx__jrec *next = rec->next;
        cbx__journal_rec_free(rec);
        rec = next;
    }
}

/* Room for the strings of a record: each copied behind the header, NULL kept NULL. */
typedef struct strs {
    const char **at[8];
    size_t n, bytes;
} strs;

static void strs_add(strs *s, const char **p)
{
    s->at[s->n++] = p;
    if (*p)
        s->bytes += strlen(*p) + 1;
}

/* v as the journal writes it, into x; the errors a record's caller reports. */
static int encode(cbx_journal *j, cbx__jenc *x, const json_t *v, const char *what, cbx_err *err)
{
    int r = cbx__journal_enc(j, x, v, NULL);
    if (r == 0 && x->b && x->b->len > (size_t)INT_MAX) {
        size_t len = x->b->len;
        cbx__journal_enc_done(x);
        return cbx_err_set(err, CBX_EJOURNAL, "journal %s: %s: too large (%zu bytes)", j->path,
                           what, len);
    }
    if (r == 0)
        return 0;
    return cbx_err_set(err, CBX_EJOURNAL, "journal %s: cannot encode %s as JSON: %s", j->path, what,
                       r == -ELOOP ? "nested too deep (a cycle?)" : "out of memory");
}

/* A record with room for the strings of s and the text of x (its NUL included). */
static cbx__jrec *rec_alloc(int kind, const strs *s, cbx__jenc *x, cbx_err *err)
{
    cbx__jrec *rec = malloc(sizeof *rec + s->bytes + (x && x->b ? x->b->len + 1 : 0));
    if (!rec) {
        if (x)
            cbx__journal_enc_done(x);
        cbx_err_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    rec->next = NULL;
    rec->kind = kind;
    rec->text = NULL;
    rec->text_len = 0;
    return rec;
}

/* Copy the strings s points at (in rec->u) into rec->data and point them there, then the text
 * of x behind them; the record is made. */
static int finish(cbx__jrec *rec, const strs *s, cbx__jenc *x, cbx__jrec **out)
{
    char *p = rec->data;
    for (size_t i = 0; i < s->n; i++) {
        const char *v = *s->at[i];
        if (!v)
            continue;
        size_t n = strlen(v) + 1;
        memcpy(p, v, n);
        *s->at[i] = p;
        p += n;
    }
    if (x && x->b) {
        memcpy(p, x->b->p, x->b->len);
        p[x->b->len] = '\0';
        rec->text = p;
        rec->text_len = x->b->len;
        cbx__journal_enc_done(x);
    }
    *out = rec;
    return 0;
}

int cbx__journal_rec_start(cbx_journal *j, const cbx_journal_execution *e, cbx__jrec **out,
                           cbx_err *err)
{
    *out = NULL;
    cbx__jenc x;
    int r = encode(j, &x, e->params, "params", err);
    if (r != 0)
        return r;
    cbx_journal_execution c = *e;
    c.params = NULL;
    strs s = {0};
    strs_add(&s, &c.id);
    strs_add(&s, &c.executor);
    strs_add(&s, &c.tag);
    strs_add(&s, &c.breaker);
    strs_add(&s, &c.policy);
    strs_add(&s, &c.status);
    cbx__jrec *rec = rec_alloc(CBX__JREC_START, &s, &x, err);
    if (!rec)
        return -ENOMEM;
    rec->u.start = c;
    /* the pointers to copy are rec->u's own */
    strs t = {0};
    strs_add(&t, &rec->u.start.id);
    strs_add(&t, &rec->u.start.executor);
    strs_add(&t, &rec->u.start.tag);
    strs_add(&t, &rec->u.start.breaker);
    strs_add(&t, &rec->u.start.policy);
    strs_add(&t, &rec->u.start.status);
    return finish(rec, &t, &x, out);
}

int cbx__journal_rec_attempt(cbx_journal *j, const cbx_journal_attempt_info *a, cbx__jrec **out,
                             cbx_err *err)
{
    *out = NULL;
    cbx__jenc x;
    int r = encode(j, &x, a->metadata, "metadata", err);
    if (r != 0)
        return r;
    strs s = {0};
    cbx_journal_attempt_info c = *a;
    c.metadata = NULL;
    strs_add(&s, &c.execution_id);
    strs_add(&s, &c.outcome);
    strs_add(&s, &c.error);
    strs_add(&s, &c.breaker_decision);
    cbx__jrec *rec = rec_alloc(CBX__JREC_ATTEMPT, &s, &x, err);
    if (!rec)
        return -ENOMEM;
    rec->u.attempt = c;
    strs t = {0};
    strs_add(&t, &rec->u.attempt.execution_id);
    strs_add(&t, &rec->u.attempt.outcome);
    strs_add(&t, &rec->u.attempt.error);
    strs_add(&t, &rec->u.attempt.breaker_decision);
    return finish(rec, &t, &x, out);
}

int cbx__journal_rec_end(cbx_journal *j, const cbx_journal_end *e, cbx__jrec **out, cbx_err *err)
{
    *out = NULL;
    cbx__jenc x;
    int r = encode(j, &x, e->outputs, "outputs", err);
    if (r != 0)
        return r;
    strs s = {0};
    cbx_journal_end c = *e;
    c.outputs = NULL;
    strs_add(&s, &c.execution_id);
    strs_add(&s, &c.status);
    strs_add(&s, &c.error);
    cbx__jrec *rec = rec_alloc(CBX__JREC_END, &s, &x, err);
    if (!rec)
        return -ENOMEM;
    rec->u.end = c;
    strs t = {0};
    strs_add(&t, &rec->u.end.execution_id);
    strs_add(&t, &rec->u.end.status);
    strs_add(&t, &rec->u.end.error);
    return finish(rec, &t, &x, out);
}

int cbx__journal_rec_status(const char *id, const char *status, cbx__jrec **out, cbx_err *err)
{
    *out = NULL;
    strs s = {0};
    strs_add(&s, &id);
    strs_add(&s, &status);
    cbx__jrec *rec = rec_alloc(CBX__JREC_STATUS, &s, NULL, err);
    if (!rec)
        return -ENOMEM;
    rec->u.status.id = id;
    rec->u.status.status = status;
    strs t = {0};
    strs_add(&t, &rec->u.status.id);
    strs_add(&t, &rec->u.status.status);
    return finish(rec, &t, NULL, out);
}

void cbx__journal_set_async_locked(cbx_journal *j, const cbx_err *e)
{
    if (j->async_rc != 0)
        return;
    j->async_rc = e->code ? e->code : CBX_EJOURNAL;
    snprintf(j->async_msg, sizeof j->async_msg, "%s", e->msg);
    atomic_store(&j->async_set, 1);
}

void cbx__journal_drain_locked(cbx_journal *j)
{
    if (!j->qmu_ready)
        return;
    pthread_mutex_lock(&j->qmu);
    cbx__jrec *rec = j->qhead;
    if (j->qlen >= CBX__JOURNAL_QUEUE_MAX && j->qroom_ready)
        pthread_cond_broadcast(&j->qroom); /* writers waiting for room */
    j->qhead = j->qtail = NULL;
    j->qlen = 0;
    uint64_t queued = atomic_load(&j->queued_ns);
    atomic_store(&j->queued_ns, 0);
    pthread_mutex_unlock(&j->qmu);
    j->draining = 1;
    cbx__jrec *done = rec, *last = NULL;
    for (; rec; last = rec, rec = rec->next) {
        cbx_err e;
        cbx_err_clear(&e);
        if (cbx__journal_apply_locked(j, rec, &e) != 0)
            cbx__journal_set_async_locked(j, &e);
        if (rec->kind == CBX__JREC_DB && rec->u.db.free_ud && !rec->u.db.free_later) {
            /* at once: the caller's rule */
            rec->u.db.free_ud(rec->u.db.ud);
            rec->u.db.free_ud = NULL;
        }
    }
    j->draining = 0;
    if (last) { /* the next writer frees them (cbx__journal_submit) */
        pthread_mutex_lock(&j->qmu);
        last->next = j->qdone;
        j->qdone = done;
        pthread_mutex_unlock(&j->qmu);
    }
    /* the batch is as old as the oldest write it holds: one written before its commit was due
     * (an early drain) still commits within the window of its first queued write */
    if (j->in_txn && queued && queued < j->txn_started_ns) {
        j->txn_started_ns = queued;
        atomic_store(&j->batch_started_ns, queued);
    }
}

/* Written by the caller, after what is queued. */
static int write_now(cbx_journal *j, cbx__jrec *rec, cbx_err *err)
{
    cbx__journal_lock(j);
    cbx__journal_drain_locked(j);
    int r = cbx__journal_apply_locked(j, rec, err);
    pthread_mutex_unlock(&j->mu);
    cbx__journal_rec_free(rec);
    return r;
}

static void wake_flusher(cbx_journal *j)
{
    pthread_mutex_lock(&j->fl->wmu);
    pthread_cond_signal(&j->fl->wcv);
    pthread_mutex_unlock(&j->fl->wmu);
}

/* With qmu held and the queue full (the flusher is behind): wait for the flusher to take it, and
 * ask it to every millisecond (it does not wait for a lock another caller holds; that caller
 * writes the queue before its own write, but may have begun before the queue filled). A writer
 * that wrote the queue itself held the journal's lock meanwhile: every other writer waited for
 * it, and the flusher's core stood idle. 1 when there is room, 0 when the flusher has not made
 * any in CBX__JOURNAL_QUEUE_WAIT_NS (then the caller writes it). */
static int wait_room_qlocked(cbx_journal *j)
{
    uint64_t give_up = cbx__journal_mono_ns() + CBX__JOURNAL_QUEUE_WAIT_NS;
    while (j->qlen >= CBX__JOURNAL_QUEUE_MAX) {
        uint64_t now = cbx__journal_mono_ns();
        if (now >= give_up || !j->qroom_ready)
            return 0;
        pthread_mutex_unlock(&j->qmu);
        atomic_store(&j->drain_asked, 1);
        wake_flusher(j);
        pthread_mutex_lock(&j->qmu);
        if (j->qlen < CBX__JOURNAL_QUEUE_MAX)
            break;
        uint64_t at = now + 1000000ull;
        struct timespec ts = {.tv_sec = (time_t)(at / 1000000000ull),
                              .tv_nsec = (long)(at % 1000000000ull)};
        pthread_cond_timedwait(&j->qroom, &j->qmu, &ts);
    }
    return 1;
}

/* 0, or the failure of a write made before this call (the flusher's: it found no caller then),
 * reported once. Asked before a record is queued: the flusher may write the record at once, and
 * its own failure is for a later call to report, as for every queued write. */
static int earlier_failure(cbx_journal *j, cbx_err *err)
{
    if (!atomic_load(&j->async_set))
        return 0;
    int r = 0;
    cbx__journal_lock(j);
    if (j->async_rc != 0) {
        r = cbx_err_set(err, j->async_rc, "an earlier batch was lost: %s", j->async_msg);
        j->async_rc = 0;
    }
    atomic_store(&j->async_set, 0);
    pthread_mutex_unlock(&j->mu);
    return r;
}

int cbx__journal_submit(cbx_journal *j, cbx__jrec *rec, cbx_err *err)
{
    if (!j->flusher_running || !j->qmu_ready)
        return write_now(j, rec, err);
    int r = earlier_failure(j, err);
    pthread_mutex_lock(&j->qmu);
    if (j->qlen >= CBX__JOURNAL_QUEUE_MAX && !wait_room_qlocked(j)) {
        pthread_mutex_unlock(&j->qmu);
        int w = write_now(j, rec, r ? NULL : err);
        return r ? r : w;
    }
    cbx__jrec *written = j->qdone;
    j->qdone = NULL;
    int first = j->qlen == 0;
    if (first) {
        j->qhead = rec;
        atomic_store(&j->queued_ns, cbx__journal_mono_ns());
    } else {
        j->qtail->next = rec;
    }
    j->qtail = rec;
    j->qlen++;
    int drain = j->qlen % CBX__JOURNAL_DRAIN_AT == 0;
    pthread_mutex_unlock(&j->qmu);
    /* a sleeping flusher has no deadline: give it this one (one wake-up per batch); a long
     * queue is written before the deadline */
    if (drain)
        atomic_store(&j->drain_asked, 1);
    if ((first && atomic_load(&j->flusher_idle)) || drain)
        wake_flusher(j);
    cbx__journal_rec_free_chain(written);
    return r;
}
