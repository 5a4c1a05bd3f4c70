/* Running a flow: the DAG scheduler over the runtime.
 *
 * Each step becomes a node with a count of dependencies left; a node whose count reaches zero
 * joins the ready queue, and the queue is drained while the flow's concurrency allows. A plain
 * step is one execution on the runtime (or one per foreach item); a `steps` composite and a
 * sub-flow open a child scope of nodes.
 *
 * The run and every step's start and end are journaled through the runtime's journal, in its
 * batches. A step that ends is held back: its dependents, the run's count and its FINISHED event
 * wait until the batch holding its end record has committed, so that nothing goes on from an
 * outcome a crash could take back, and a resumed run skips exactly the steps recorded as
 * succeeded. As soon as nothing else is ready to start, the runner has the batch committed
 * (one commit for every step that ended since the last: a group commit) by the journal's flusher
 * thread, whose commits wake the loop; otherwise it commits within the journal's batch window,
 * while the free slots run steps that are ready. */
#include "flow/flow_chunks.h"
#include "flow/flow_internal.h"
#include "flow/flow_journal.h"
#include "flow/runs_on.h"

#include "core/real_text.h"
#include "core/text.h"
#include "core/uuid.h"
#include "runtime/builtins.h"

#include "cbx/template.h"
#include "cbx/units.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

typedef enum node_state { N_WAIT, N_RUNNING, N_DONE, N_FAILED, N_SKIPPED } node_state;

typedef struct runner runner;
typedef struct scope scope;
typedef struct node node;

/* A first-in first-out queue of nodes. */
typedef struct nqueue {
    node **v;
    size_t head, len, cap; /* the live entries are v[head .. len) */
} nqueue;

typedef struct item_run {
    node *n;
    size_t index;
    cbx_execution *ex;
} item_run;

struct node {
    const cbx__flow_step *def;
    scope *sc;
    char *full_name; /* the step's own name (borrowed) in the root scope, else "parent.child" */
    char *error;     /* why it failed or was skipped, or NULL; read through node_err() */
    json_t *outputs;
    uint64_t started_ns, ended_ns;
    uint64_t started_ms;
    uint64_t batch; /* the journal batch that holds its end record */
    uint32_t deps_left;
    uint32_t attempts;
    node_state state;
    cbx_status status;      /* how it ended, kept while it is held */
    unsigned tolerated : 1; /* failed, but continue_on_error */
    unsigned skipped_by_when : 1;
    unsigned resumed : 1;
    unsigned waiting_slot : 1; /* in the runner's queue of foreach nodes waiting for a slot */
    unsigned item_failed : 1;
    unsigned starting : 1; /* in start_more_items: an item that ends at once must not re-enter */
    /* foreach */
    json_t *items; /* the items (or batches) to run */
    size_t next_item, items_done, items_running, items_resumed;
    cbx_status item_status; /* how the failed items ended: a cancellation only when every failed
                               item was cancelled (PENDING: none failed) */
    json_t *item_outputs;
    item_run *runs;          /* one per item */
    scope *child;            /* composite or sub-flow */
    cbx__flow_chunks chunks; /* its executions' chunks, when a template reads them */
};

struct scope {
    runner *R;
    scope *parent;
    node *owner; /* the composite or sub-flow node, NULL for the root */
    const cbx__flow_step *steps;
    size_t nsteps;
    node *nodes;
    /* the reverse edges, in one block: the dependents of node i are
     * dependents[first_dependent[i] .. first_dependent[i + 1]) */
    size_t *first_dependent;
    uint32_t *dependents;
    json_t *inputs;    /* owned */
    json_t *steps_ctx; /* owned: {name: {outputs, status, attempts}}, filled when read */
    uint32_t *ended;   /* the nodes released, in the order they were */
    size_t nended;
    size_t nctx; /* ended[0 .. nctx) are in steps_ctx already */
    size_t finished;
    const cbx_flow *flow; /* whose outputs this scope renders (root and sub-flows) */
};

struct runner {
    cbx_runtime *rt;
    cbx_flow *f;
    const cbx_flow_run_opts *o;
    int lazy; /* o->lazy_commit */
    cbx_template_env *tenv;
    json_t *env;
    cbx_journal *journal; /* the runtime's, NULL when it has none */
    cbx__flow_journal *fj;
    node **held; /* ended, waiting for their end records to commit, in the order they ended */
    size_t nheld, held_cap, held_head;
    uint64_t asked; /* the last batch whose commit was asked for (cbx_journal_commit_soon) */
    int listening;  /* journal commits wake the loop through `committed` */
    int has_committed, listen_asked; /* `committed` is made; listening was asked for */
    uv_async_t committed;
    char run_id[40];
    char traceparent[56]; /* what its steps' executions are children of; "" = none */
    json_t *resumed;      /* {full_name: {status, outputs...}} of the run being resumed */
    scope *root;
    nqueue ready;   /* nodes whose dependencies are over, to start in turn */
    nqueue waiting; /* foreach nodes with items left that stopped for want of a free slot */
    uint32_t running, max_running;
    uint32_t total, done_count;
    int failed, timed_out, cancelled;
    cbx_status fail_status;
    char first_error[512];
    int finished;
    uv_timer_t timeout;
    int want_chunks; /* a template reads steps.<name>.chunks */
};

static void node_finish(node *n, node_state st, cbx_status status);
static void pump(runner *R);

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *node_err(const node *n)
{
    return n->error ? n->error : "";
}

static void emit(runner *R, cbx_flow_event_kind kind, node *n, cbx_status status)
{
    if (!R->o->on_event)
        return;
    cbx_flow_event ev = {.kind = kind,
                         .run_id = R->run_id,
                         .step = n->full_name,
                         .status = status,
                         .error = node_err(n),
                         .attempts = n->attempts,
                         .done = R->done_count,
                         .total = R->total};
    R->o->on_event(&ev, R->o->ud);
}

/* Messages are cut to their buffer on purpose: vsnprintf keeps the compiler's truncation
 * checks, meant for fixed formats, out of the way. */
static void textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void textf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

#define res_error(r, ...) textf((r)->error, sizeof(r)->error, __VA_ARGS__)

/* A node's message is allocated only when it has one: most steps never do. */
static void node_errorf(node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void node_errorf(node *n, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *e = strdup(buf); /* out of memory: the message is lost, not the step's outcome */
    free(n->error);
    n->error = e;
}

static void fail_flow(runner *R, cbx_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_flow(runner *R, cbx_status status, const char *fmt, ...)
{
    if (R->failed)
        return;
    R->failed = 1;
    R->fail_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R->first_error, sizeof R->first_error, fmt, ap);
    va_end(ap);
}

/* ---- contexts -------------------------------------------------------------------------------- */

/* What a template sees of a node that has ended, as steps.<name>. A step without outputs
 * (skipped, or failed before any) has none: `steps.x.outputs` is nil, which renders as null and
 * is false, so that `steps.x.outputs and steps.x.outputs.y` guards a read. */
static json_t *node_ctx(const node *n)
{
    json_t *c = json_pack("{s:s, s:i}", "status",
                          n->state == N_SKIPPED ? "skipped" : cbx_status_name(n->status),
                          "attempts", (int)n->attempts);
    if (c && n->outputs && !json_is_null(n->outputs))
        json_object_set(c, "outputs", n->outputs);
    if (n->sc->R->want_chunks && n->def->executor)
        cbx__flow_chunks_ctx(&n->chunks, c);
    return c;
}

/* The scope's steps_ctx brought up to date with the nodes released since it was last read: it is
 * filled only when a template reads it, so that a flow without templates never builds it. */
static json_t *steps_ctx(scope *sc)
{
    for (; sc->nctx < sc->nended; sc->nctx++) {
        const node *n = &sc->nodes[sc->ended[sc->nctx]];
        json_object_set_new(sc->steps_ctx, n->def->name, node_ctx(n));
    }
    return sc->steps_ctx;
}

/* {inputs, steps, env[, item]} as a template sees them from scope sc. The root scope's steps are
 * shared, not copied (templates only read them): a copy per step would make a long flow
 * quadratic. A nested scope sees its own steps over its parents'. */
static json_t *context(scope *sc, const json_t *item)
{
    json_t *steps;
    if (!sc->parent) {
        steps = json_incref(steps_ctx(sc));
    } else {
        steps = json_object();
        for (scope *s = sc; s; s = s->parent)
            json_object_update_missing(steps, steps_ctx(s));
    }
    json_t *ctx =
        json_pack("{s:O, s:o, s:O}", "inputs", sc->inputs, "steps", steps, "env", sc->R->env);
    if (item)
        json_object_set(ctx, "item", (json_t *)item);
    return ctx;
}

/* ---- queues of nodes ----------------------------------------------------------------------- */

static int nqueue_push(nqueue *q, node *n)
{
    if (q->len == q->cap && q->head > 0) {
        q->len -= q->head;
        memmove(q->v, q->v + q->head, q->len * sizeof *q->v);
        q->head = 0;
    }
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        node **v = realloc(q->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        q->v = v;
        q->cap = cap;
    }
    q->v[q->len++] = n;
    return 0;
}

static node *nqueue_pop(nqueue *q)
{
    if (q->head == q->len)
        return NULL;
    node *n = q->v[q->head++];
    if (q->head == q->len)
        q->head = q->len = 0;
    return n;
}

static int nqueue_empty(const nqueue *q)
{
    return q->head == q->len;
}

static void make_ready(runner *R, node *n)
{
    if (nqueue_push(&R->ready, n) < 0)
        fail_flow(R, CBX_STATUS_FAILED, "out of memory");
}

/* ---- scopes --------------------------------------------------------------------------------- */

static void scope_free(scope *sc);

/* The reverse edges of the scope's steps, counted then placed in one block. */
static int scope_dependents(scope *sc)
{
    size_t edges = 0;
    for (size_t i = 0; i < sc->nsteps; i++)
        edges += sc->steps[i].ndeps;
    sc->first_dependent = calloc(sc->nsteps + 1, sizeof *sc->first_dependent);
    sc->dependents = malloc((edges ? edges : 1) * sizeof *sc->dependents);
    if (!sc->first_dependent || !sc->dependents)
        return -ENOMEM;
    size_t *first = sc->first_dependent;
    for (size_t i = 0; i < sc->nsteps; i++)
        for (size_t k = 0; k < sc->steps[i].ndeps; k++)
            first[sc->steps[i].deps[k]]++;
    for (size_t i = 1; i < sc->nsteps; i++) /* first[d]: where d's dependents end */
        first[i] += first[i - 1];
    first[sc->nsteps] = edges;
    /* placed from the back, so that first[d] ends where they start, in file order */
    for (size_t i = sc->nsteps; i-- > 0;)
        for (size_t k = sc->steps[i].ndeps; k-- > 0;)
            sc->dependents[--first[sc->steps[i].deps[k]]] = (uint32_t)i;
    return 0;
}

static scope *scope_new(runner *R, scope *parent, node *owner, const cbx__flow_step *steps,
                        size_t nsteps, json_t *inputs, const cbx_flow *flow)
{
    scope *sc = calloc(1, sizeof *sc);
    if (!sc) {
        json_decref(inputs);
        return NULL;
    }
    sc->R = R;
    sc->parent = parent;
    sc->owner = owner;
    sc->steps = steps;
    sc->nsteps = nsteps;
    sc->inputs = inputs;
    sc->flow = flow;
    sc->steps_ctx = json_object();
    sc->nodes = calloc(nsteps ? nsteps : 1, sizeof *sc->nodes);
    sc->ended = malloc((nsteps ? nsteps : 1) * sizeof *sc->ended);
    if (!sc->nodes || !sc->steps_ctx || !sc->ended || scope_dependents(sc) < 0) {
        scope_free(sc);
        return NULL;
    }
    for (size_t i = 0; i < nsteps; i++) {
        node *n = &sc->nodes[i];
        n->def = &steps[i];
        n->sc = sc;
        n->deps_left = (uint32_t)steps[i].ndeps; /* a sequence's order is in deps already */
        if (!owner) {
            n->full_name = steps[i].name;
            continue;
        }
        size_t len = strlen(owner->full_name) + 1 + strlen(steps[i].name) + 1;
        n->full_name = malloc(len);
        if (!n->full_name) {
            scope_free(sc);
            return NULL;
        }
        snprintf(n->full_name, len, "%s.%s", owner->full_name, steps[i].name);
    }
    R->total += (uint32_t)nsteps;
    for (size_t i = 0; i < nsteps; i++)
        if (sc->nodes[i].deps_left == 0)
            make_ready(R, &sc->nodes[i]);
    return sc;
}

static void scope_free(scope *sc)
{
    if (!sc)
        return;
    for (size_t i = 0; sc->nodes && i < sc->nsteps; i++) {
        node *n = &sc->nodes[i];
        scope_free(n->child);
        if (sc->owner)
            free(n->full_name);
        free(n->error);
        free(n->runs);
        json_decref(n->outputs);
        json_decref(n->items);
        json_decref(n->item_outputs);
        cbx__flow_chunks_free(&n->chunks);
    }
    free(sc->nodes);
    free(sc->first_dependent);
    free(sc->dependents);
    free(sc->ended);
    json_decref(sc->inputs);
    json_decref(sc->steps_ctx);
    free(sc);
}

/* The scope's own outputs once all its steps are over: a composite's are {child: outputs}; a
 * flow's (root or sub-flow) are its rendered `outputs:`. */
static int scope_outputs(scope *sc, json_t **out, char *err_buf, size_t len)
{
    *out = NULL;
    if (!sc->flow) {
        json_t *o = json_object();
        for (size_t i = 0; i < sc->nsteps; i++)
            if (sc->nodes[i].outputs)
                json_object_set(o, sc->steps[i].name, sc->nodes[i].outputs);
        *out = o;
        return 0;
    }
    if (!sc->flow->outputs) {
        *out = json_object();
        return 0;
    }
    json_t *ctx = context(sc, NULL);
    cbx_err e;
    int r = cbx_template_render(sc->R->tenv, sc->flow->outputs, ctx, out, &e);
    json_decref(ctx);
    if (r < 0)
        textf(err_buf, len, "outputs.%s: %s", e.where, e.msg);
    return r;
}

static void scope_step_finished(scope *sc)
{
    if (++sc->finished < sc->nsteps || !sc->owner)
        return;
    node *owner = sc->owner;
    int failed = 0;
    cbx_status status = CBX_STATUS_FAILED;
    for (size_t i = 0; i < sc->nsteps; i++)
        if (sc->nodes[i].state == N_FAILED && !sc->nodes[i].tolerated) {
            failed = 1;
            /* a composite stopped with its step has that step's status (cancelled, timeout) */
            status = sc->nodes[i].status;
            node_errorf(owner, "step '%s': %s", sc->nodes[i].full_name, node_err(&sc->nodes[i]));
            break;
        }
    json_t *out = NULL;
    char why[512];
    if (!failed && scope_outputs(sc, &out, why, sizeof why) < 0) {
        node_errorf(owner, "%s", why);
        failed = 1;
    }
    owner->outputs = out;
    node_finish(owner, failed ? N_FAILED : N_DONE, failed ? status : CBX_STATUS_SUCCESS);
}

/* ---- finishing a node ------------------------------------------------------------------------ */

/* A step's one status word, the same in the journal, the result (--json), show and the summary:
 * a step the flow's timeout stopped is "cancelled" everywhere. */
static const char *state_word(node_state st, cbx_status status)
{
    if (st == N_SKIPPED)
        return "skipped";
    return cbx_status_name(status);
}

/* What follows from a node's end: its place in the context of templates, the flow's failure,
 * the count, the FINISHED event, its dependents, its scope. */
static void node_release(node *n)
{
    runner *R = n->sc->R;
    scope *sc = n->sc;
    node_state st = n->state;
    cbx_status status = n->status;
    if (sc->nended < sc->nsteps) /* each node ends once: the guard is for memory's sake */
        sc->ended[sc->nended++] = (uint32_t)(n - sc->nodes);
    if (st == N_FAILED && !n->tolerated)
        fail_flow(R, status == CBX_STATUS_TIMEOUT ? CBX_STATUS_TIMEOUT : CBX_STATUS_FAILED,
                  "step '%s' failed: %s", n->full_name, node_err(n));
    R->done_count++;
    emit(R, st == N_SKIPPED ? CBX_FLOW_STEP_SKIPPED : CBX_FLOW_STEP_FINISHED, n, status);
    size_t i = (size_t)(n - sc->nodes);
    for (size_t k = sc->first_dependent[i]; k < sc->first_dependent[i + 1]; k++) {
        node *d = &sc->nodes[sc->dependents[k]];
        if (--d->deps_left == 0)
            make_ready(R, d);
    }
    scope_step_finished(sc);
    if (sc == R->root && sc->finished == sc->nsteps)
        R->finished = 1;
}

/* On the thread that ended a batch of the journal, with its lock held: wake the loop. */
static void on_journal_commit(void *ud)
{
    runner *R = ud;
    uv_async_send(&R->committed);
}

static void on_committed(uv_async_t *a)
{
    (void)a; /* the loop goes on to settle() */
}

/* Hold n until its end record has committed. Returns 0 when it cannot be held (out of memory):
 * the batch is then committed at once and n is to be released by the caller. */
static int hold(runner *R, node *n)
{
    /* the first node held: from now on the journal's commits wake the loop (a run that holds
     * none, a short run of a batch, never takes the journal's lock for it) */
    if (!R->listen_asked && R->has_committed) {
        R->listen_asked = 1;
        R->listening = cbx_journal_on_commit(R->journal, on_journal_commit, R, NULL) == 0;
    }
    if (R->nheld == R->held_cap && R->held_head > 0) {
        R->nheld -= R->held_head;
        memmove(R->held, R->held + R->held_head, R->nheld * sizeof *R->held);
        R->held_head = 0;
    }
    if (R->nheld == R->held_cap) {
        size_t cap = R->held_cap ? R->held_cap * 2 : 16;
        node **h = realloc(R->held, cap * sizeof *h);
        if (!h) {
            cbx_err e;
            if (cbx_journal_flush(R->journal, &e) < 0)
                fail_flow(R, CBX_STATUS_FAILED, "%s", e.msg);
            return 0;
        }
        R->held = h;
        R->held_cap = cap;
    }
    R->held[R->nheld++] = n;
    return 1;
}

/* Release the held nodes whose end records have committed, in the order they ended (batches
 * commit in order). Returns how many. */
static size_t release_committed(runner *R)
{
    size_t released = 0;
    while (R->held_head < R->nheld) {
        node *n = R->held[R->held_head];
        cbx_err e;
        int s = cbx_journal_batch_state(R->journal, n->batch, &e);
        if (s == 0)
            break;
        if (s < 0)
            fail_flow(R, CBX_STATUS_FAILED, "step '%s': %s", n->full_name, e.msg);
        R->held_head++;
        node_release(n); /* may hold a composite's node: after the others, in a later batch */
        released++;
    }
    if (R->held_head == R->nheld)
        R->held_head = R->nheld = 0;
    return released;
}

/* Release what has committed; when nothing was and commit_now, have the batch committed now
 * rather than within the journal's window: by the journal's flusher thread, whose commit wakes
 * the loop (on_journal_commit), while this thread waits for its steps; or here, when nothing
 * runs (the loop would only wait for the commit and then for the wake-up: in a chain, a step
 * at a time, that was two hand-offs between threads a step) or the loop cannot be woken.
 * Returns how many nodes were released. */
static size_t settle(runner *R, int commit_now)
{
    if (R->held_head == R->nheld)
        return 0;
    size_t released = release_committed(R);
    uint64_t last = R->nheld > R->held_head ? R->held[R->nheld - 1]->batch : 0;
    int here = !R->listening || R->running == 0;
    if (released || !commit_now || !last || (!here && last <= R->asked))
        return released;
    cbx_err e;
    R->asked = last;
    if ((here ? cbx_journal_flush(R->journal, &e) : cbx_journal_commit_soon(R->journal, &e)) < 0)
        fail_flow(R, CBX_STATUS_FAILED, "%s", e.msg);
    return release_committed(R); /* committed here, or by the flusher in the meantime */
}

/* With o->lazy_commit and no events, a step of the top level that no step needs is not held:
 * nothing follows from its outcome but the run's end, which commits after it (batches commit in
 * order) and before cbx_flow_run returns. */
static int unheld(const runner *R, const node *n)
{
    const scope *sc = n->sc;
    size_t i = (size_t)(n - sc->nodes);
    return R->lazy && !R->o->on_event && sc == R->root &&
           sc->first_dependent[i] == sc->first_dependent[i + 1];
}

static void node_finish(node *n, node_state st, cbx_status status)
{
    runner *R = n->sc->R;
    n->state = st;
    n->status = status;
    if (st == N_FAILED && n->def->continue_on_error)
        n->tolerated = 1;
    n->ended_ns = cbx_clock_now_ns(NULL);
    if (!n->resumed && st != N_SKIPPED && R->fj) {
        cbx_err e;
        int held = !unheld(R, n); /* an unheld step's end is queued: nothing waits for it */
        if (cbx__flow_journal_step_end(R->fj, R->run_id, n->full_name, state_word(st, status),
                                       n->outputs, n->attempts, node_err(n), wall_ms(),
                                       held ? &n->batch : NULL, &e) < 0)
            fail_flow(R, CBX_STATUS_FAILED, "%s", e.msg);
        else if (held && hold(R, n))
            return;
    }
    node_release(n);
}

static void skip(node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void skip(node *n, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    node_errorf(n, "%s", why);
    node_finish(n, N_SKIPPED, CBX_STATUS_CANCELLED);
}

/* ---- running a node ------------------------------------------------------------------------ */

static void item_done(cbx_execution *ex, const cbx_result *res, void *ud);

/* A chunk of an item's execution: kept for steps.<name>.chunks. */
static int item_chunk(cbx_execution *ex, const cbx_chunk *c, void *ud)
{
    (void)ex;
    item_run *ir = ud;
    cbx__flow_chunks_add(&ir->n->chunks, ir->n->items ? ir->index : SIZE_MAX, c);
    return CBX_CHUNK_MORE;
}

/* An attempt of the step failed and another will follow: tell the live view. */
static void item_retry(cbx_execution *ex, uint32_t attempt, uint64_t delay_ns, const char *error,
                       void *ud)
{
    (void)ex;
    (void)delay_ns;
    item_run *ir = ud;
    node *n = ir->n;
    uint32_t counted = n->attempts; /* the finished executions' attempts, added when each ends */
    n->attempts = counted + attempt;
    node_errorf(n, "%s", error);
    emit(n->sc->R, CBX_FLOW_STEP_RETRYING, n, CBX_STATUS_RETRYING);
    free(n->error);
    n->error = NULL;
    n->attempts = counted;
}

/* A key template of a policy (breaker.key, fallback.cache.key) expanded for this call into buf.
 * The key must come out as a non-empty string or a number. */
static int expand_key(runner *R, cbx_policy *p, const char *what, const char *tpl,
                      const json_t *ctx, char *buf, size_t len, node *n)
{
    json_t *t = json_string(tpl), *v = NULL;
    cbx_err e;
    int r = t ? cbx_template_render(R->tenv, t, ctx, &v, &e) : -ENOMEM;
    json_decref(t);
    if (r < 0) {
        node_errorf(n, "policy '%s': %s: %s", cbx_policy_name(p), what,
                    t ? e.msg : cbx_strerror(r));
        return r;
    }
    char num[64];
    const char *k = json_is_string(v) ? json_string_value(v) : NULL;
    if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        k = num;
    } else if (json_is_real(v)) {
        cbx__real_plain(json_real_value(v), num);
        k = num;
    }
    if (!k || !k[0]) {
        node_errorf(n, "policy '%s': %s '%s' gave %s, not a name", cbx_policy_name(p), what, tpl,
                    k ? "an empty string" : cbx__json_kind(v));
        json_decref(v);
        return CBX_EINVAL_CONFIG;
    }
    snprintf(buf, len, "%s", k);
    json_decref(v);
    return 0;
}

/* The runtime store's breaker for this call of a policy whose breaker is picked per key:
 * "<policy>:<expanded key>" in buf. */
static int breaker_for_key(runner *R, cbx_policy *p, const char *tpl, const json_t *ctx, char *buf,
                           size_t len, node *n)
{
    char k[480];
    int r = expand_key(R, p, "breaker.key", tpl, ctx, k, sizeof k, n);
    if (r == 0)
        snprintf(buf, len, "%s:%s", cbx_policy_name(p), k);
    return r;
}

static int start_item(node *n, size_t i)
{
    runner *R = n->sc->R;
    const cbx__flow_step *def = n->def;
    json_t *item = n->items ? json_array_get(n->items, i) : NULL;
    json_t *params = NULL;
    const char *key_tpl = def->policy ? cbx_policy_breaker_key(def->policy) : NULL;
    const char *fb_tpl = def->policy ? cbx_policy_fallback_key(def->policy) : NULL;
    json_t *ctx = cbx_template_has(def->config) || key_tpl || fb_tpl ? context(n->sc, item) : NULL;
    if (cbx_template_has(def->config)) {
        cbx_err e;
        int r = cbx_template_render(R->tenv, def->config, ctx, &params, &e);
        if (r < 0) {
            json_decref(ctx);
            node_errorf(n, "config.%s: %s", e.where, e.msg);
            return r;
        }
    } else {
        params = json_incref(def->config);
    }
    char breaker[512];
    if (key_tpl) {
        int r = breaker_for_key(R, def->policy, key_tpl, ctx, breaker, sizeof breaker, n);
        if (r < 0) {
            json_decref(ctx);
            json_decref(params);
            return r;
        }
    }
    char fb_key[512];
    if (fb_tpl) {
        int r =
            expand_key(R, def->policy, "fallback.cache.key", fb_tpl, ctx, fb_key, sizeof fb_key, n);
        if (r < 0) {
            json_decref(ctx);
            json_decref(params);
            return r;
        }
    }
    json_decref(ctx);
    char tag[600];
    snprintf(tag, sizeof tag, "flow:%s/%s", R->run_id, n->full_name);
    item_run *ir = &n->runs[i];
    *ir = (item_run){.n = n, .index = i};
    const cbx_flow *fl = n->sc->flow ? n->sc->flow : R->f;
    json_t *meta = json_pack("{s:s?, s:s?, s:s?, s:O}", "flow", fl->name, "version", fl->version,
                             "description", fl->description, "inputs", n->sc->inputs);
    const char *executor = def->executor;
    if (cbx__runs_on_remote(def->runs_on)) {
        /* runs_on: workers: the remote executor carries the step's work to the pool */
        json_t *wrapped = cbx__runs_on_params(def->executor, params, def->runs_on);
        json_decref(params);
        if (!wrapped) {
            json_decref(meta);
            node_errorf(n, "out of memory");
            return -ENOMEM;
        }
        params = wrapped;
        executor = CBX__RUNS_ON_EXECUTOR;
    }
    cbx_request q = {.executor = executor,
                     .params = params,
                     .policy = def->policy,
                     .breaker = key_tpl ? breaker : NULL,
                     .breaker_opts = key_tpl ? cbx_policy_breaker_opts(def->policy) : NULL,
                     .timeout_ns = def->timeout_ns,
                     .fallback_key = fb_tpl ? fb_key : NULL,
                     .run_id = R->run_id,
                     .step = n->full_name,
                     .metadata = meta,
                     .tmpdir = R->o->tmpdir,
                     .tag = tag,
                     .on_done = item_done,
                     .on_retry = item_retry,
                     .ud = ir,
                     .on_chunk = R->want_chunks ? item_chunk : NULL,
                     .chunk_ud = ir,
                     .traceparent = R->traceparent[0] ? R->traceparent : NULL};
    R->running++;
    n->items_running++;
    cbx_diag diag = {0};
    int r = cbx_runtime_submit(R->rt, &q, &ir->ex, &diag);
    cbx_diag_clear(&diag);
    json_decref(params);
    json_decref(meta);
    return r < 0 && r != CBX_EINVAL_CONFIG && r != CBX_EUNKNOWN_TYPE ? r : 0;
}

/* A hash of a foreach item's value (its compact JSON, keys sorted): a resume takes an item's
 * recorded outputs only when the item at that index is still the same. */
static uint64_t item_hash(const json_t *item)
{
    char *text = json_dumps(item, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    uint64_t h = cbx__fnv1a(CBX__FNV_OFFSET, text ? text : "", text ? strlen(text) : 0);
    free(text);
    return h;
}

/* Resuming: item i succeeded in the run being resumed, with the same value. Its recorded outputs
 * are taken and it is not run again. Returns 1 when so. */
static int resume_item(node *n, size_t i)
{
    runner *R = n->sc->R;
    json_t *prev = R->resumed ? json_object_get(R->resumed, n->full_name) : NULL;
    json_t *items = prev ? json_object_get(prev, "items") : NULL;
    if (!items)
        return 0;
    char key[32];
    snprintf(key, sizeof key, "%zu", i);
    json_t *it = json_object_get(items, key);
    const char *status = json_string_value(json_object_get(it, "status"));
    if (!status || strcmp(status, "success") != 0 ||
        (uint64_t)json_integer_value(json_object_get(it, "hash")) !=
            item_hash(json_array_get(n->items, i)))
        return 0;
    json_array_set(n->item_outputs, i, json_object_get(it, "outputs"));
    n->attempts += (uint32_t)json_integer_value(json_object_get(it, "attempts"));
    return 1;
}

static void start_more_items(node *n)
{
    runner *R = n->sc->R;
    size_t total = n->items ? json_array_size(n->items) : 1;
    uint32_t par = n->def->parallelism ? n->def->parallelism : R->max_running;
    /* an executor may end an item within cbx_runtime_submit (an inline function): its item_done
     * comes back here, and the loop below goes on with the next item instead of recursing */
    if (n->starting)
        return;
    n->starting = 1;
    while (n->next_item < total && n->items_running < par && R->running < R->max_running &&
           !R->timed_out && !R->cancelled) {
        size_t i = n->next_item++;
        if (n->items && resume_item(n, i)) {
            n->items_done++;
            n->items_resumed++;
            continue;
        }
        if (start_item(n, i) < 0) {
            n->item_failed = 1;
            n->item_status = CBX_STATUS_FAILED;
            n->items_done++;
        }
    }
    n->starting = 0;
    /* stopped for want of a slot of the flow's (its own are freed by its items): it waits in
     * turn for one (a walk over every node here would make long flows quadratic) */
    if (n->next_item < total && n->items_running < par && R->running >= R->max_running &&
        !R->timed_out && !R->cancelled && !n->waiting_slot) {
        if (nqueue_push(&R->waiting, n) == 0)
            n->waiting_slot = 1;
        else
            fail_flow(R, CBX_STATUS_FAILED, "out of memory");
    }
    /* ended already when a single execution ended within submit (item_done finished it) */
    if (n->state == N_RUNNING && n->items_done == total && n->items_running == 0) {
        if (n->items)
            n->outputs = json_incref(n->item_outputs);
        node_finish(n, n->item_failed ? N_FAILED : N_DONE,
                    n->item_failed ? n->item_status : CBX_STATUS_SUCCESS);
    }
}

static void item_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    item_run *ir = ud;
    node *n = ir->n;
    runner *R = n->sc->R;
    ir->ex = NULL;
    R->running--;
    n->items_running--;
    n->items_done++;
    n->attempts += res->attempt_count;
    int ok = res->status == CBX_STATUS_SUCCESS || res->fallback_used;
    if (!ok) {
        n->item_failed = 1;
        /* one status for the step: cancelled (by the flow's timeout or a ^C) only when every item
         * that failed was; any other failure names it */
        if (n->item_status == CBX_STATUS_PENDING || n->item_status == CBX_STATUS_CANCELLED)
            n->item_status = res->status;
        if (n->items)
            node_errorf(n, "item %zu: %s", ir->index, res->error);
        else
            node_errorf(n, "%s", res->error);
    }
    if (n->items) {
        json_array_set(n->item_outputs, ir->index, res->outputs ? res->outputs : json_null());
        /* each item's end is recorded, so that a resume runs only the items that did not
         * succeed; it commits with (or before) the step's own end */
        cbx_err e;
        if (R->fj && cbx__flow_journal_item_end(R->fj, R->run_id, n->full_name, ir->index,
                                                item_hash(json_array_get(n->items, ir->index)),
                                                ok ? "success" : cbx_status_name(res->status),
                                                res->outputs, res->attempt_count,
                                                ok ? NULL : res->error, wall_ms(), &e) < 0)
            fail_flow(R, CBX_STATUS_FAILED, "%s", e.msg);
        start_more_items(n);
        return;
    }
    n->outputs = res->outputs ? json_incref(res->outputs) : NULL;
    node_finish(n, ok ? N_DONE : N_FAILED, ok ? CBX_STATUS_SUCCESS : res->status);
}

/* Split items into batches of batch_size (each batch an array), when asked. */
static json_t *batches(json_t *items, uint32_t size)
{
    if (size <= 1)
        return json_incref(items);
    json_t *out = json_array(), *cur = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v)
    {
        if (!cur || json_array_size(cur) == size) {
            cur = json_array();
            json_array_append_new(out, cur);
        }
        json_array_append(cur, v);
    }
    return out;
}

/* `when: always()` and `when: failure()` (the whole condition) are the runner's, not Lua's: they
 * decide on the dependencies' ends rather than on values. */
typedef enum when_kind { WHEN_EXPR, WHEN_ALWAYS, WHEN_FAILURE } when_kind;

static int when_is(const char *when, const char *word)
{
    while (*when == ' ' || *when == '\t')
        when++;
    size_t len = strlen(word);
    if (strncmp(when, word, len) != 0)
        return 0;
    for (when += len; *when == ' ' || *when == '\t'; when++)
        ;
    return *when == '\0';
}

static when_kind when_kind_of(const char *when)
{
    if (!when)
        return WHEN_EXPR;
    if (when_is(when, "always()"))
        return WHEN_ALWAYS;
    if (when_is(when, "failure()"))
        return WHEN_FAILURE;
    return WHEN_EXPR;
}

static void start_node(node *n)
{
    runner *R = n->sc->R;
    const cbx__flow_step *def = n->def;
    /* dependencies that failed (not tolerated) or were skipped for a failure skip this one,
     * unless it runs whatever they did (when: always()) or because one failed (failure()) */
    when_kind wk = when_kind_of(def->when);
    const node *failed_dep = NULL;
    for (size_t k = 0; k < def->ndeps && !failed_dep; k++) {
        const node *d = &n->sc->nodes[def->deps[k]];
        if ((d->state == N_FAILED && (!d->tolerated || wk == WHEN_FAILURE)) ||
            (d->state == N_SKIPPED && !d->skipped_by_when))
            failed_dep = d;
    }
    if (failed_dep && wk == WHEN_EXPR) {
        skip(n, "dependency '%s' did not succeed", failed_dep->def->name);
        return;
    }
    if (!failed_dep && wk == WHEN_FAILURE) {
        n->skipped_by_when = 1;
        skip(n, "when: failure() is false: no dependency failed");
        return;
    }
    if (R->timed_out || R->cancelled) {
        skip(n, "%s", R->timed_out ? "the flow timed out" : "the flow was cancelled");
        return;
    }
    /* resumed: it succeeded in the run being resumed */
    json_t *prev = R->resumed ? json_object_get(R->resumed, n->full_name) : NULL;
    if (prev && json_is_string(json_object_get(prev, "status")) &&
        strcmp(json_string_value(json_object_get(prev, "status")), "success") == 0) {
        n->resumed = 1;
        json_t *o = json_object_get(prev, "outputs");
        n->outputs = json_is_null(o) ? NULL : json_incref(o);
        n->attempts = (uint32_t)json_integer_value(json_object_get(prev, "attempts"));
        node_finish(n, N_DONE, CBX_STATUS_SUCCESS);
        return;
    }
    cbx_err e;
    if (def->when && wk == WHEN_EXPR) {
        json_t *ctx = context(n->sc, NULL);
        int truth = 0;
        int r = cbx_template_truthy(R->tenv, def->when, ctx, &truth, &e);
        json_decref(ctx);
        if (r < 0) {
            node_errorf(n, "when: %s", e.msg);
            node_finish(n, N_FAILED, CBX_STATUS_FAILED);
            return;
        }
        if (!truth) {
            n->skipped_by_when = 1;
            skip(n, "when: %s is false", def->when);
            return;
        }
    }
    n->state = N_RUNNING;
    n->started_ns = cbx_clock_now_ns(NULL);
    n->started_ms = wall_ms();
    if (R->fj &&
        cbx__flow_journal_step_start(R->fj, R->run_id, n->full_name, n->started_ms, NULL, &e) < 0) {
        node_errorf(n, "%s", e.msg);
        node_finish(n, N_FAILED, CBX_STATUS_FAILED);
        return;
    }
    emit(R, CBX_FLOW_STEP_STARTED, n, CBX_STATUS_RUNNING);

    if (def->nchildren) { /* executor: steps */
        n->child =
            scope_new(R, n->sc, n, def->children, def->nchildren, json_incref(n->sc->inputs), NULL);
        if (!n->child) {
            node_errorf(n, "out of memory");
            node_finish(n, N_FAILED, CBX_STATUS_FAILED);
        }
        return;
    }
    if (def->subflow) {
        json_t *given = NULL, *inputs = NULL;
        json_t *ctx = context(n->sc, NULL);
        int r = def->subflow_inputs
                    ? cbx_template_render(R->tenv, def->subflow_inputs, ctx, &given, &e)
                    : ((given = json_object()) ? 0 : -ENOMEM);
        json_decref(ctx);
        cbx_diag d = {0};
        if (r < 0) {
            node_errorf(n, "inputs.%s: %s", e.where, e.msg);
        } else if ((r = cbx_flow_inputs(def->subflow, given, &inputs, &d)) < 0) {
            cbx_err first;
            cbx_diag_first(&d, &first);
            node_errorf(n, "flow %s: inputs: %s", def->subflow_path, first.msg);
        }
        cbx_diag_clear(&d);
        json_decref(given);
        if (r < 0) {
            node_finish(n, N_FAILED, CBX_STATUS_FAILED);
            return;
        }
        n->child =
            scope_new(R, n->sc, n, def->subflow->steps, def->subflow->nsteps, inputs, def->subflow);
        if (!n->child) {
            node_errorf(n, "out of memory");
            node_finish(n, N_FAILED, CBX_STATUS_FAILED);
        } else if (def->subflow->nsteps == 0) {
            scope_step_finished(n->child); /* nothing to wait for */
        }
        return;
    }
    size_t count = 1;
    if (def->foreach || def->foreach_list) {
        json_t *list = NULL;
        if (def->foreach_list) {
            list = json_incref(def->foreach_list);
        } else {
            json_t *ctx = context(n->sc, NULL);
            int r = cbx_template_eval(R->tenv, def->foreach, ctx, &list, &e);
            json_decref(ctx);
            if (r < 0 || !json_is_array(list)) {
                node_errorf(n, "foreach: %s", r < 0 ? e.msg : "the expression did not give a list");
                json_decref(list);
                node_finish(n, N_FAILED, CBX_STATUS_FAILED);
                return;
            }
        }
        n->items = batches(list, def->batch_size);
        json_decref(list);
        count = json_array_size(n->items);
        n->item_outputs = json_array();
        for (size_t i = 0; i < count; i++)
            json_array_append_new(n->item_outputs, json_null());
    }
    n->runs = calloc(count ? count : 1, sizeof *n->runs);
    if (!n->runs) {
        node_errorf(n, "out of memory");
        node_finish(n, N_FAILED, CBX_STATUS_FAILED);
        return;
    }
    if (count == 0) {
        n->outputs = json_array();
        node_finish(n, N_DONE, CBX_STATUS_SUCCESS);
        return;
    }
    start_more_items(n);
}

/* Start what is ready while the concurrency allows, then more items of the foreach nodes that
 * wait for a slot, in the order they began to wait. */
static void pump(runner *R)
{
    node *n;
    while (R->running < R->max_running && (n = nqueue_pop(&R->ready)))
        start_node(n);
    while (R->running < R->max_running && (n = nqueue_pop(&R->waiting))) {
        n->waiting_slot = 0;
        if (n->state == N_RUNNING)
            start_more_items(n);
    }
}

/* ---- cancellation --------------------------------------------------------------------------- */

static void cancel_scope(scope *sc)
{
    for (size_t i = 0; i < sc->nsteps; i++) {
        node *n = &sc->nodes[i];
        if (n->runs) {
            size_t total = n->items ? json_array_size(n->items) : 1;
            for (size_t k = 0; k < total; k++)
                if (n->runs[k].ex)
                    cbx_runtime_cancel(sc->R->rt, n->runs[k].ex);
        }
        if (n->child)
            cancel_scope(n->child);
    }
}

static void on_flow_timeout(uv_timer_t *t)
{
    runner *R = t->data;
    R->timed_out = 1;
    char d[32];
    cbx_duration_format(R->f->timeout_ns, d, sizeof d);
    fail_flow(R, CBX_STATUS_TIMEOUT, "the flow timed out after %s", d);
    cancel_scope(R->root);
}

/* ---- the run --------------------------------------------------------------------------------- */

static int load_resume(runner *R, const char *run_id, json_t **inputs, cbx_err *err)
{
    if (!R->journal)
        return cbx_err_set(err, -ENOENT, "cannot resume: the runtime has no journal");
    json_t *run;
    int r = cbx__flow_journal_get(R->journal, run_id, &run, err);
    if (r < 0)
        return r;
    snprintf(R->run_id, sizeof R->run_id, "%s", run_id);
    *inputs = json_incref(json_object_get(run, "inputs"));
    R->resumed = json_incref(json_object_get(run, "steps"));
    json_decref(run);
    return 0;
}

/* res->steps as asked: a record per step of the root scope (nested ones appear in their parent's
 * outputs), the outputs of those that succeeded, or nothing. */
static void result_steps(runner *R, cbx_flow_steps_table table, cbx_flow_result *res)
{
    if (table == CBX_FLOW_STEPS_NONE)
        return;
    res->steps = json_object();
    for (size_t i = 0; i < R->root->nsteps; i++) {
        node *n = &R->root->nodes[i];
        const char *word = n->state == N_WAIT || n->state == N_RUNNING
                               ? "pending"
                               : state_word(n->state, n->status);
        if (table == CBX_FLOW_STEPS_OUTPUTS) {
            if (strcmp(word, "success") == 0)
                json_object_set_new(res->steps, n->def->name,
                                    n->outputs ? json_incref(n->outputs) : json_null());
            continue;
        }
        json_object_set_new(
            res->steps, n->def->name,
            json_pack("{s:s, s:O?, s:i, s:s, s:I, s:f, s:b, s:b}", "status", word, "outputs",
                      n->outputs, "attempts", (int)n->attempts, "error", node_err(n), "started_ms",
                      (json_int_t)n->started_ms, "duration_ms",
                      n->started_ns && n->ended_ns ? (double)(n->ended_ns - n->started_ns) / 1e6
                                                   : 0.0,
                      "resumed", n->resumed, "skipped", n->state == N_SKIPPED));
        if (n->items_resumed)
            json_object_set_new(json_object_get(res->steps, n->def->name), "items_resumed",
                                json_integer((json_int_t)n->items_resumed));
    }
}

int cbx_flow_run(cbx_runtime *rt, cbx_flow *f, const cbx_flow_run_opts *o, cbx_flow_result *res,
                 cbx_err *err)
{
    memset(res, 0, sizeof *res);
    cbx_flow_run_opts def = {0};
    if (!o)
        o = &def;
    runner R = {.rt = rt, .f = f, .o = o};
    R.max_running = o->concurrency ? o->concurrency : f->concurrency ? f->concurrency : 8;
    R.want_chunks = cbx__flow_wants_chunks(f);
    int rc = 0;
    json_t *given = NULL, *inputs = NULL;
    R.journal = cbx_runtime_journal(rt);
    R.lazy = o->lazy_commit;
    if (R.journal && (rc = cbx__flow_journal_open(&R.fj, R.journal, err)) < 0)
        return rc;
    if (o->resume_run_id) {
        rc = load_resume(&R, o->resume_run_id, &given, err);
        if (rc < 0)
            goto out;
    } else if (o->run_id && o->run_id[0]) {
        snprintf(R.run_id, sizeof R.run_id, "%s", o->run_id);
        given = o->inputs ? json_incref((json_t *)o->inputs) : json_object();
    } else {
        cbx__uuid7(R.run_id);
        given = o->inputs ? json_incref((json_t *)o->inputs) : json_object();
    }
    snprintf(res->run_id, sizeof res->run_id, "%s", R.run_id);
    cbx__flow_trace_begin(o->traceparent, R.run_id, R.traceparent);
    cbx_diag d = {0};
    rc = cbx_flow_inputs(f, given, &inputs, &d);
    if (rc < 0) {
        cbx_err first;
        cbx_diag_first(&d, &first);
        cbx_diag_clear(&d);
        res->status = CBX_STATUS_REJECTED;
        res_error(res, "inputs: %s%s%s", first.where, first.where[0] ? ": " : "", first.msg);
        cbx_err_set(err, rc, "%s", res->error);
        goto out;
    }
    cbx_template_opts to = {.env_allow = o->env_allow};
    rc = cbx_template_env_new(&R.tenv, &to, err);
    if (rc < 0)
        goto out;
    R.env = cbx_template_env_vars(R.tenv);
    uint64_t t0 = cbx_clock_now_ns(NULL);
    /* the run is committed before anything of it is seen (events, a printed run id), unless the
     * caller shows nothing of it before it has committed (o->lazy_commit) */
    if (R.fj && ((rc = cbx__flow_journal_run_start(R.fj, R.run_id, f->name, f->file, inputs,
                                                   wall_ms(), NULL, err)) < 0 ||
                 (!R.lazy && (rc = cbx_journal_flush(R.journal, err)) < 0)))
        goto out;
    R.root = scope_new(&R, NULL, NULL, f->steps, f->nsteps, json_incref(inputs), f);
    if (!R.root) {
        rc = cbx_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    uv_loop_t *loop = cbx_runtime_loop(rt);
    uv_timer_init(loop, &R.timeout);
    R.timeout.data = &R;
    if (R.journal) {
        uv_async_init(loop, &R.committed, on_committed);
        R.has_committed = 1; /* the journal's commits wake it once a step is held (hold) */
    }
    if (f->timeout_ns)
        uv_timer_start(&R.timeout, on_flow_timeout, (f->timeout_ns + 999999) / 1000000, 0);
    if (f->nsteps == 0)
        R.finished = 1;
    for (;;) {
        pump(&R);
        /* when nothing is ready to start, waiting for the batch's window would only idle: commit
         * now */
        if (settle(&R, nqueue_empty(&R.ready)) > 0)
            continue;
        if (R.finished && R.running == 0)
            break;
        if (R.running == 0 && nqueue_empty(&R.ready) && R.held_head == R.nheld) {
            /* nothing runs and nothing is ready, yet not finished: a cycle the checker missed */
            fail_flow(&R, CBX_STATUS_FAILED, "the flow cannot progress");
            break;
        }
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&R.timeout);
    uv_close((uv_handle_t *)&R.timeout, NULL);
    if (R.journal) {
        if (R.listening)
            cbx_journal_on_commit_remove(R.journal, on_journal_commit, &R);
        uv_close((uv_handle_t *)&R.committed, NULL);
    }
    uv_run(loop, UV_RUN_NOWAIT);

    res->duration_ns = cbx_clock_now_ns(NULL) - t0;
    result_steps(&R, o->steps, res);
    if (!R.failed) {
        char buf[512] = "";
        if (scope_outputs(R.root, &res->outputs, buf, sizeof buf) < 0)
            fail_flow(&R, CBX_STATUS_FAILED, "%s", buf);
    }
    res->status = R.failed ? R.fail_status : CBX_STATUS_SUCCESS;
    if (R.failed) {
        res_error(res, "%s", R.first_error);
        json_decref(res->outputs);
        res->outputs = NULL;
        rc = res->status == CBX_STATUS_TIMEOUT ? CBX_ETIMEDOUT : CBX_EFAILED;
        cbx_err_set(err, rc, "%s", res->error);
    }
    if (R.fj &&
        cbx__flow_journal_run_end(R.fj, R.run_id, cbx_status_name(res->status), res->outputs,
                                  R.failed ? R.first_error : NULL, wall_ms(), NULL, NULL) == 0 &&
        !R.lazy)
        cbx_journal_flush(R.journal, NULL);
    cbx__flow_trace_end(o->traceparent, R.run_id, f, res, t0, t0 + res->duration_ns);
out:
    if (rc < 0 && res->status == CBX_STATUS_PENDING) {
        res->status = CBX_STATUS_FAILED;
        if (!res->error[0] && err)
            res_error(res, "%s", err->msg);
    }
    scope_free(R.root);
    free(R.ready.v);
    free(R.waiting.v);
    free(R.held);
    json_decref(R.resumed);
    json_decref(R.env);
    json_decref(given);
    json_decref(inputs);
    cbx_template_env_free(R.tenv);
    cbx__flow_journal_close(R.fj);
    return rc;
}

void cbx_flow_result_clear(cbx_flow_result *r)
{
    if (!r)
        return;
    json_decref(r->outputs);
    json_decref(r->steps);
    memset(r, 0, sizeof *r);
}

json_t *cbx_flow_result_to_json(const cbx_flow_result *r)
{
    return json_pack("{s:s, s:s, s:O?, s:O?, s:s, s:f}", "run_id", r->run_id, "status",
                     cbx_status_name(r->status), "outputs", r->outputs, "steps", r->steps, "error",
                     r->error, "duration_ms", (double)r->duration_ns / 1e6);
}
