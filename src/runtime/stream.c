/* Partial output of an attempt: the chunks an executor emits, queued in order with a bound, and
 * delivered on the loop thread to the submitter's callback and (bounded) to the journal.
 *
 * Each attempt that emits gets a queue (made on its first emit) under a mutex of its own: an
 * emit from a pool thread pushes and, when the queue was not yet waiting for delivery, puts it on
 * the runtime's ready list and wakes the loop (one uv_async per runtime); from the loop thread the
 * same happens without a wait. The loop delivers queue after queue from the ready list. A full
 * queue holds a pool-thread emitter on a condition variable; the loop-thread emitter is told
 * (-EAGAIN) and called back when the queue is empty again. Stopping the attempt (timeout, cancel)
 * closes the queue: later emits are refused and a waiting emitter wakes. What is queued when the
 * attempt ends is delivered before its end is processed.
 *
 * Lock order: a queue's mutex, then the runtime's stream_mu. */
#include "runtime/runtime_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_CONSUMER = 1, STREAM_JOURNAL = 2 };

/* What the journal keeps of one attempt's chunks; the rest is counted. */
#define LOG_MAX_CHUNKS 256
#define LOG_MAX_BYTES  ((size_t)64 * 1024)
/* A loop-thread emitter that ignores -EAGAIN may queue up to this many times the bound. */
#define LOOP_OVERFILL 4
#define CHANNEL_MAX   32

typedef struct chunk_node {
    struct chunk_node *next;
    uint64_t seq;
    json_t *event; /* NULL for text */
    size_t len;
    char channel[CHANNEL_MAX];
    char text[]; /* len bytes and a NUL */
} chunk_node;

typedef struct cbx__stream {
    pthread_mutex_t mu;
    pthread_cond_t room;
    chunk_node *head, *tail;
    uint32_t n;        /* queued */
    uint64_t next_seq; /* the next chunk's number */
    int closed;        /* the attempt is stopped or has ended: emits are refused */
    int stopped;       /* the consumer said CBX_CHUNK_STOP */
    uint64_t dropped;  /* emits refused for a queue 4 x full */
    cbx_link link;     /* in rt->stream_ready (under rt->stream_mu) */
    cbx_task *task;
    /* loop thread only */
    int delivering;
    void (*drain_fn)(cbx_task *, void *);
    void *drain_ud;
    json_t *log; /* the journal's share: an array of {seq, channel, text | event} */
    size_t log_bytes;
    uint64_t log_dropped, log_dropped_bytes;
} cbx__stream;

static cbx__stream *stream_of(const cbx_task *t)
{
    return atomic_load_explicit(&((cbx_task *)t)->stream, memory_order_acquire);
}

/* ---- the runtime's ready list -----------------------------------------------------------------
 */

static void deliver(cbx_task *t, int all);

/* The queues ready now get one turn each (a bounded share, see deliver): queues that become
 * ready meanwhile wait for the next wake-up, so that emitters that never stop cannot keep the loop
 * from its timers and I/O. */
static void on_ready(uv_async_t *a)
{
    cbx_runtime *rt = CBX__CONTAINER(a, cbx_runtime, stream_async);
    cbx_link now;
    cbx__link_init(&now);
    pthread_mutex_lock(&rt->stream_mu);
    if (!cbx__link_empty(&rt->stream_ready)) { /* move the list over to `now` */
        now.next = rt->stream_ready.next;
        now.prev = rt->stream_ready.prev;
        now.next->prev = &now;
        now.prev->next = &now;
        cbx__link_init(&rt->stream_ready);
    }
    pthread_mutex_unlock(&rt->stream_mu);
    for (;;) {
        pthread_mutex_lock(&rt->stream_mu); /* a task freed meanwhile has left `now` */
        if (cbx__link_empty(&now)) {
            pthread_mutex_unlock(&rt->stream_mu);
            return;
        }
        cbx__stream *s = CBX__CONTAINER(now.next, cbx__stream, link);
        cbx__link_remove(&s->link);
        pthread_mutex_unlock(&rt->stream_mu);
        deliver(s->task, 0); /* may end (and free) the task */
    }
}

/* With s->mu held: have the loop deliver s. */
static void make_ready(cbx_runtime *rt, cbx__stream *s)
{
    pthread_mutex_lock(&rt->stream_mu);
    int was = !cbx__link_empty(&s->link);
    if (!was)
        cbx__link_push(&rt->stream_ready, &s->link);
    pthread_mutex_unlock(&rt->stream_mu);
    if (!was)
        uv_async_send(&rt->stream_async);
}

void cbx__stream_rt_init(cbx_runtime *rt)
{
    pthread_mutex_init(&rt->stream_mu, NULL);
    cbx__link_init(&rt->stream_ready);
}

void cbx__stream_rt_close(cbx_runtime *rt)
{
    if (rt->stream_async_on) {
        rt->stream_async_on = 0;
        uv_close((uv_handle_t *)&rt->stream_async, NULL);
    }
}

/* ---- the executor's side ----------------------------------------------------------------------
 */

void cbx__stream_start(cbx_task *t, cbx_execution *ex)
{
    cbx_runtime *rt = ex->rt;
    t->rt = rt;
    t->loop_thread = pthread_self();
    t->stream_mode =
        (uint8_t)((ex->on_chunk ? STREAM_CONSUMER : 0) | (rt->journal ? STREAM_JOURNAL : 0));
    t->stream_cap = ex->chunk_queue ? ex->chunk_queue : 64;
    if (t->stream_mode && !rt->stream_async_on) {
        if (uv_async_init(rt->loop, &rt->stream_async, on_ready) == 0) {
            uv_unref((uv_handle_t *)&rt->stream_async);
            rt->stream_async_on = 1;
        } else {
            t->stream_mode = 0; /* nowhere to deliver: emits go nowhere */
        }
    }
    /* The handle keeps the loop running while an attempt may stream: its chunks (or the
     * consumer's resume) may be all that is left to wait for. */
    if (t->stream_mode && rt->stream_tasks++ == 0)
        uv_ref((uv_handle_t *)&rt->stream_async);
}

static cbx__stream *stream_make(cbx_task *t)
{
    cbx__stream *s = stream_of(t);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->room, NULL);
    cbx__link_init(&s->link);
    s->task = t;
    cbx__stream *expected = NULL;
    if (!atomic_compare_exchange_strong(&t->stream, &expected, s)) {
        pthread_cond_destroy(&s->room);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return expected;
    }
    return s;
}

static int emit(cbx_task *t, const char *channel, const char *text, size_t len, json_t *event)
{
    if (!t) {
        json_decref(event);
        return -EINVAL;
    }
    if (!t->stream_mode) {
        json_decref(event);
        return 0;
    }
    if (cbx_task_cancelled(t)) {
        json_decref(event);
        return CBX_ECANCELLED;
    }
    cbx__stream *s = stream_make(t);
    chunk_node *c = s ? malloc(sizeof *c + len + 1) : NULL;
    if (!c) {
        json_decref(event);
        return -ENOMEM;
    }
    c->next = NULL;
    c->event = event;
    c->len = len;
    if (len)
        memcpy(c->text, text, len);
    c->text[len] = '\0';
    snprintf(c->channel, sizeof c->channel, "%s", channel ? channel : "out");

    int on_loop = pthread_equal(pthread_self(), t->loop_thread);
    int r = 0;
    pthread_mutex_lock(&s->mu);
    while (!on_loop && !s->closed && !s->stopped && s->n >= t->stream_cap && !cbx_task_cancelled(t))
        pthread_cond_wait(&s->room, &s->mu);
    if (s->closed || cbx_task_cancelled(t))
        r = CBX_ECANCELLED;
    else if (s->stopped)
        r = -EPIPE;
    else if (s->n >= t->stream_cap * LOOP_OVERFILL)
        r = -ENOBUFS;
    if (r) {
        if (r == -ENOBUFS)
            s->dropped++;
        pthread_mutex_unlock(&s->mu);
        json_decref(event);
        free(c);
        return r;
    }
    c->seq = s->next_seq++;
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    s->n++;
    if (on_loop && s->n >= t->stream_cap)
        r = -EAGAIN;
    make_ready(t->rt, s);
    pthread_mutex_unlock(&s->mu);
    return r;
}

int cbx_task_emit(cbx_task *t, const char *channel, const char *text, size_t len)
{
    if (!text && len)
        return -EINVAL;
    return emit(t, channel, text ? text : "", len, NULL);
}

int cbx_task_emit_event(cbx_task *t, const char *channel, json_t *event)
{
    if (!event)
        return -EINVAL;
    return emit(t, channel, "", 0, event);
}

int cbx_task_stream_wanted(const cbx_task *t)
{
    return t && (t->stream_mode & STREAM_CONSUMER) ? 1 : 0;
}

void cbx_task_on_drain(cbx_task *t, void (*fn)(cbx_task *t, void *ud), void *ud)
{
    if (!t)
        return;
    cbx__stream *s = fn && t->stream_mode ? stream_make(t) : stream_of(t);
    if (!s)
        return; /* nothing is ever queued (or no memory for the queue) */
    s->drain_fn = fn;
    s->drain_ud = ud;
    pthread_mutex_lock(&s->mu);
    if (fn && s->n == 0)
        make_ready(t->rt, s); /* already empty: called from the loop, not from inside here */
    pthread_mutex_unlock(&s->mu);
}

/* ---- delivery (loop thread) ----------------------------------------------------------------- */

/* Length of the well-formed UTF-8 character at s[0..n) (RFC 3629), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len = c >= 0xC2 && c <= 0xDF   ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    if (!len || n < len)
        return 0;
    unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* Text as a JSON string: invalid UTF-8 bytes (a character cut between two chunks) become U+FFFD. */
static json_t *text_json(const char *p, size_t n)
{
    json_t *j = json_stringn(p, n);
    if (j)
        return j;
    char *out = malloc(n * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len((const unsigned char *)p + i, n - i);
        if (k) {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn_nocheck(out, o);
    free(out);
    return j;
}

static void log_add(cbx__stream *s, const chunk_node *c)
{
    size_t bytes = c->event ? 0 : c->len;
    if (c->event) {
        char *d = json_dumps(c->event, JSON_COMPACT | JSON_ENCODE_ANY);
        bytes = d ? strlen(d) : 0;
        free(d);
    }
    if ((s->log && json_array_size(s->log) >= LOG_MAX_CHUNKS) ||
        s->log_bytes + bytes > LOG_MAX_BYTES) {
        s->log_dropped++;
        s->log_dropped_bytes += bytes;
        return;
    }
    if (!s->log && !(s->log = json_array()))
        return;
    json_t *e = json_object();
    if (!e)
        return;
    json_object_set_new(e, "seq", json_integer((json_int_t)c->seq));
    json_object_set_new(e, "channel", json_string(c->channel));
    if (c->event)
        json_object_set(e, "event", c->event);
    else
        json_object_set_new(e, "text", text_json(c->text, c->len));
    json_array_append_new(s->log, e);
    s->log_bytes += bytes;
}

static void node_free(chunk_node *c)
{
    json_decref(c->event);
    free(c);
}

/* Deliver what t has queued, in order; all: also when the consumer paused (the end). */
static void deliver(cbx_task *t, int all)
{
    cbx__stream *s = stream_of(t);
    if (!s || s->delivering)
        return;
    s->delivering = 1;
    /* one turn delivers at most a queue's worth; the rest on the next wake-up */
    uint32_t turn = all ? UINT32_MAX : t->stream_cap;
    while (!t->abandoned) {
        cbx_execution *ex = t->ex;
        if (!all && ex->stream_paused)
            break;
        if (turn-- == 0) {
            pthread_mutex_lock(&s->mu);
            if (s->head)
                make_ready(t->rt, s);
            pthread_mutex_unlock(&s->mu);
            break;
        }
        pthread_mutex_lock(&s->mu);
        chunk_node *c = s->head;
        if (c) {
            s->head = c->next;
            if (!s->head)
                s->tail = NULL;
            s->n--;
            pthread_cond_broadcast(&s->room);
        }
        int stopped = s->stopped;
        pthread_mutex_unlock(&s->mu);
        if (!c)
            break;
        if (t->stream_mode & STREAM_JOURNAL)
            log_add(s, c);
        if (ex->on_chunk && !stopped) {
            cbx_chunk k = {.attempt = t->attempt,
                           .seq = c->seq,
                           .channel = c->channel,
                           .text = c->event ? NULL : c->text,
                           .len = c->event ? 0 : c->len,
                           .event = c->event};
            int r = ex->on_chunk(ex, &k, ex->chunk_ud);
            if (r == CBX_CHUNK_PAUSE && !t->abandoned) {
                ex->stream_paused = 1;
            } else if (r == CBX_CHUNK_STOP) {
                pthread_mutex_lock(&s->mu);
                s->stopped = 1;
                pthread_cond_broadcast(&s->room);
                pthread_mutex_unlock(&s->mu);
            }
        }
        node_free(c);
    }
    s->delivering = 0;
    if (t->complete_deferred) { /* cbx_task_done came from inside a callback */
        t->complete_deferred = 0;
        cbx__task_complete(t);
        return;
    }
    pthread_mutex_lock(&s->mu);
    int empty = s->n == 0, closed = s->closed;
    pthread_mutex_unlock(&s->mu);
    if (empty && !closed && !t->abandoned && !t->reported && s->drain_fn) {
        void (*fn)(cbx_task *, void *) = s->drain_fn;
        s->drain_fn = NULL;
        fn(t, s->drain_ud);
    }
}

void cbx__stream_stop(cbx_task *t)
{
    cbx__stream *s = stream_of(t);
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    pthread_cond_broadcast(&s->room);
    pthread_mutex_unlock(&s->mu);
}

void cbx__stream_flush(cbx_task *t)
{
    cbx__stream *s = stream_of(t);
    if (!s)
        return;
    cbx__stream_stop(t);
    s->drain_fn = NULL;
    deliver(t, 1);
}

int cbx__stream_delivering(const cbx_task *t)
{
    cbx__stream *s = stream_of(t);
    return s && s->delivering;
}

json_t *cbx__stream_journal_meta(cbx_task *t, json_t *metadata)
{
    cbx__stream *s = stream_of(t);
    if (!s || !(t->stream_mode & STREAM_JOURNAL))
        return NULL;
    pthread_mutex_lock(&s->mu); /* an abandoned run may still be refused an emit */
    uint64_t dropped = s->log_dropped + s->dropped;
    pthread_mutex_unlock(&s->mu);
    if (!s->log && !dropped)
        return NULL;
    json_t *m = json_is_object(metadata) ? json_copy(metadata) : json_object();
    if (!m)
        return NULL;
    json_object_set(m, "chunks", s->log ? s->log : json_array());
    if (dropped) {
        json_object_set_new(m, "chunks_dropped", json_integer((json_int_t)dropped));
        json_object_set_new(m, "chunks_dropped_bytes",
                            json_integer((json_int_t)s->log_dropped_bytes));
    }
    return m;
}

void cbx__stream_free(cbx_task *t)
{
    if (t->stream_mode && t->rt && --t->rt->stream_tasks == 0 && t->rt->stream_async_on)
        uv_unref((uv_handle_t *)&t->rt->stream_async);
    cbx__stream *s = stream_of(t);
    if (!s)
        return;
    if (t->rt) {
        pthread_mutex_lock(&t->rt->stream_mu);
        if (!cbx__link_empty(&s->link))
            cbx__link_remove(&s->link);
        pthread_mutex_unlock(&t->rt->stream_mu);
    }
    for (chunk_node *c = s->head, *next; c; c = next) {
        next = c->next;
        node_free(c);
    }
    json_decref(s->log);
    pthread_cond_destroy(&s->room);
    pthread_mutex_destroy(&s->mu);
    free(s);
    atomic_store(&t->stream, NULL);
}

/* ---- the consumer's side ----------------------------------------------------------------------
 */

void cbx_execution_stream_resume(cbx_execution *ex)
{
    if (!ex || !ex->stream_paused)
        return;
    ex->stream_paused = 0;
    cbx_task *t = ex->phase == PHASE_RUNNING && ex->b ? ex->b->task : NULL;
    cbx__stream *s = t ? stream_of(t) : NULL;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    make_ready(t->rt, s);
    pthread_mutex_unlock(&s->mu);
}
