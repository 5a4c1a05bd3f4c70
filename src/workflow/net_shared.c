/* A workflow whose marking lives outside the process (net_shared.h): the engine's run as a
 * calculator over a marking loaded from JSON, one token stepping once at a time. */
#include "workflow/net_shared.h"
#include "workflow/net_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define HIST_KEEP 100 /* history lines a token keeps in the marking */

struct cbx__wf_shared {
    cbx_workflow_run *r;
    cbx_workflow_event_fn fn;
    void *ud;
    uint64_t blocks;  /* during a step */
    uv_timer_t *tick; /* made on first use */
    void (*tick_fn)(void *);
    void *tick_ud;
};

static void forward(const cbx_workflow_event *ev, void *ud)
{
    cbx__wf_shared *s = ud;
    if (ev->kind == CBX_WORKFLOW_BLOCKED)
        s->blocks++;
    if (s->fn)
        s->fn(ev, s->ud);
}

int cbx__wf_shared_new(cbx__wf_shared **out, cbx_runtime *rt, cbx_workflow *w, const char *id,
                       uint32_t max_firings, cbx_workflow_event_fn on_event, void *ud, cbx_err *err)
{
    *out = NULL;
    cbx__wf_shared *s = calloc(1, sizeof *s);
    if (!s)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    s->fn = on_event;
    s->ud = ud;
    cbx_workflow_run_opts o = {.max_firings = max_firings, .on_event = forward, .ud = s};
    int rc = cbx__wf_run_new(&s->r, rt, w, &o, id, err);
    if (rc) {
        free(s);
        return rc;
    }
    s->r->one_hop = 1;
    *out = s;
    return 0;
}

static void tick_closed(uv_handle_t *h)
{
    free(h);
}

void cbx__wf_shared_free(cbx__wf_shared *s)
{
    if (!s)
        return;
    if (s->tick) {
        uv_timer_stop(s->tick);
        uv_close((uv_handle_t *)s->tick, tick_closed);
        uv_run(cbx_runtime_loop(s->r->rt), UV_RUN_NOWAIT);
    }
    cbx_workflow_run_free(s->r);
    free(s);
}

/* ---- tokens as JSON ---------------------------------------------------------------------- */

static int tried(const wf_token *t, size_t ti)
{
    return t->tried && (t->tried[ti / 64] >> (ti % 64)) & 1;
}

static json_t *token_json(const cbx_workflow_run *r, const wf_token *t)
{
    const cbx_workflow *w = r->w;
    json_t *tr = json_array(), *sig = json_array(), *hist = json_array();
    for (size_t ti = 0; tr && ti < w->ntrans; ti++)
        if (tried(t, ti))
            json_array_append_new(tr, json_string(w->trans[ti].name));
    for (const wf_signal *g = t->signals; sig && g; g = g->next)
        json_array_append_new(sig, json_pack("{s:s, s:O}", "name", g->name, "data", g->data));
    size_t n = 0;
    for (const wf_hist *h = t->hist; h; h = h->next)
        n++;
    for (const wf_hist *h = t->hist; hist && h; h = h->next)
        if (n-- <= HIST_KEEP)
            json_array_append_new(hist, json_pack("[I, s]", (json_int_t)h->ms, h->text));
    json_t *o = json_pack("{s:s, s:s, s:O, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "place",
                          w->places[t->place], "family", t->family, "data", t->data, "firings",
                          (json_int_t)t->firings, "nchild", (json_int_t)t->nchild, "epoch",
                          (json_int_t)t->epoch, "entered_ms", (json_int_t)t->entered_ms, "tried",
                          tr, "signals", sig, "history", hist);
    if (o && t->why)
        json_object_set_new(o, "why", json_string(t->why));
    if (o && t->life == WF_TOK_FAILED)
        json_object_set_new(o, "failed", json_true());
    return o;
}

static int bad(cbx_err *err, const char *id, const char *what)
{
    return cbx_err_set(err, CBX_EINVAL_CONFIG, "tokens.%s: %s", id, what);
}

static int count_of(const json_t *o, const char *key, uint64_t *v)
{
    json_t *j = json_object_get(o, key);
    if (!j) {
        *v = 0;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return -1;
    *v = (uint64_t)json_integer_value(j);
    return 0;
}

/* A token from its JSON (o), checked against the workflow. */
static int token_from(cbx_workflow_run *r, const char *id, const json_t *o, wf_token **out,
                      cbx_err *err)
{
    const cbx_workflow *w = r->w;
    *out = NULL;
    if (!*id || strlen(id) >= CBX__WF_ID_MAX)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "tokens: a token id of %zu characters",
                           strlen(id));
    if (!json_is_object(o))
        return bad(err, id, "expected an object");
    const char *place = json_string_value(json_object_get(o, "place"));
    size_t p = place ? cbx__wf_place(w, place) : (size_t)-1;
    if (p == (size_t)-1)
        return bad(err, id, "place: missing, or not a place of the workflow");
    json_t *data = json_object_get(o, "data");
    if (!json_is_object(data))
        return bad(err, id, "data: expected an object");
    json_t *fam = json_object_get(o, "family");
    if (fam && !json_is_string(fam))
        return bad(err, id, "family: expected a string");
    uint64_t firings, nchild, epoch, entered;
    if (count_of(o, "firings", &firings) || count_of(o, "nchild", &nchild) ||
        count_of(o, "epoch", &epoch) || count_of(o, "entered_ms", &entered))
        return bad(err, id, "firings, nchild, epoch, entered_ms: expected whole numbers");
    wf_token *t = calloc(1, sizeof *t);
    if (!t || !(t->id = strdup(id)) || !(t->family = strdup(fam ? json_string_value(fam) : id))) {
        cbx__wf_token_free(t);
        return cbx_err_set(err, -ENOMEM, "out of memory");
    }
    t->data = json_incref(data);
    t->place = p;
    t->firings = (uint32_t)firings;
    t->nchild = (uint32_t)nchild;
    t->epoch = (uint32_t)epoch;
    t->entered_ms = entered;
    t->life = json_is_true(json_object_get(o, "failed")) ? WF_TOK_FAILED : WF_TOK_ACTIVE;
    const char *why = json_string_value(json_object_get(o, "why"));
    if (why)
        t->why = strdup(why);
    int rc = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "tried"), i, v)
    {
        size_t ti = cbx__wf_trans_index(w, json_string_value(v) ? json_string_value(v) : "");
        if (ti == (size_t)-1) {
            rc = bad(err, id, "tried: not a transition of the workflow");
            break;
        }
        if (!t->tried && !(t->tried = calloc((w->ntrans + 63) / 64, sizeof *t->tried)))
            rc = cbx_err_set(err, -ENOMEM, "out of memory");
        else
            t->tried[ti / 64] |= 1ull << (ti % 64);
    }
    wf_signal **tail = &t->signals;
    json_array_foreach(json_object_get(o, "signals"), i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        json_t *sd = json_object_get(v, "data");
        if (rc || !name || !json_is_object(sd)) {
            rc = rc ? rc : bad(err, id, "signals: expected [{name, data}]");
            break;
        }
        wf_signal *g = calloc(1, sizeof *g);
        if (!g || !(g->name = strdup(name))) {
            free(g);
            rc = cbx_err_set(err, -ENOMEM, "out of memory");
            break;
        }
        g->data = json_incref(sd);
        *tail = g;
        tail = &g->next;
    }
    json_array_foreach(json_object_get(o, "history"), i, v)
    {
        const char *text = json_string_value(json_array_get(v, 1));
        if (text)
            cbx__wf_hist(t, (uint64_t)json_integer_value(json_array_get(v, 0)), "%s", text);
    }
    if (rc) {
        cbx__wf_token_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- loading ----------------------------------------------------------------------------- */

static void clear(cbx_workflow_run *r)
{
    for (size_t i = 0; i < r->tabcap; i++) {
        cbx__wf_token_free(r->tab[i]);
        r->tab[i] = NULL;
    }
    r->ntok = 0;
    memset(r->at, 0, r->w->nplaces * sizeof *r->at);
    r->qhead = r->qtail = NULL;
    memset(r->fired, 0, (r->w->ntrans + 1) * sizeof *r->fired);
    r->next_due = 0;
}

int cbx__wf_shared_load(cbx__wf_shared *s, const json_t *m, const char *owner, uint64_t now_ms,
                        cbx_err *err)
{
    cbx_workflow_run *r = s->r;
    clear(r);
    if (!json_is_object(m))
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "expected a JSON object");
    if (json_integer_value(json_object_get(m, "v")) != 1)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "v: expected 1");
    json_t *tokens = json_object_get(m, "tokens");
    if (!json_is_object(tokens))
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "tokens: expected an object");
    uint64_t next_id;
    if (count_of(m, "next_id", &next_id))
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "next_id: expected a whole number");
    r->next_id = next_id;
    const char *id;
    json_t *o;
    json_object_foreach(tokens, id, o)
    {
        wf_token *t = NULL;
        int rc = token_from(r, id, o, &t, err);
        if (rc || !t)
            return rc ? rc : cbx_err_set(err, -ENOMEM, "out of memory");
        if ((rc = cbx__wf_token_insert(r, t)) != 0) {
            cbx__wf_token_free(t);
            return cbx_err_set(err, rc, "tokens.%s: %s", id, cbx_strerror(rc));
        }
        cbx__wf_place_put(r, t, t->place);
        json_t *c = json_object_get(o, "claim");
        const char *by = json_string_value(json_object_get(c, "by"));
        json_int_t until = json_integer_value(json_object_get(c, "until_ms"));
        if (by && until > 0 && (uint64_t)until > now_ms && strcmp(by, owner) != 0)
            t->busy = 1;
    }
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(m, "fired"), name, v)
    {
        size_t ti = cbx__wf_trans_index(r->w, name);
        if (ti != (size_t)-1 && json_is_integer(v) && json_integer_value(v) >= 0)
            r->fired[ti] = (uint64_t)json_integer_value(v);
    }
    return 0;
}

int cbx__wf_shared_initial(cbx__wf_shared *s, const json_t *tokens, json_t **marking, cbx_err *err)
{
    cbx_workflow_run *r = s->r;
    *marking = NULL;
    clear(r);
    r->next_id = 0;
    size_t i;
    json_t *tk;
    json_array_foreach(tokens, i, tk)
    {
        const char *place = json_string_value(json_object_get(tk, "place"));
        int rc = cbx_workflow_add_token(r, place, json_object_get(tk, "data"), NULL, NULL, 0, err);
        if (rc)
            return rc;
    }
    const cbx_workflow *w = r->w;
    json_t *toks = json_object();
    for (wf_token *t = NULL, **p = r->tab; toks && p < r->tab + r->tabcap; p++)
        if ((t = *p) != NULL)
            json_object_set_new(toks, t->id, token_json(r, t));
    /* in the order they were added: t1, t2, ... (a join takes the oldest partner) */
    json_t *ordered = json_object();
    for (uint64_t n = 1; ordered && n <= r->next_id; n++) {
        char id[32];
        snprintf(id, sizeof id, "t%llu", (unsigned long long)n);
        json_t *o = json_object_get(toks, id);
        if (o)
            json_object_set(ordered, id, o);
    }
    json_decref(toks);
    *marking = json_pack("{s:i, s:s, s:s, s:s%, s:I, s:{}, s:o}", "v", 1, "workflow", w->name,
                         "file", w->doc.file ? w->doc.file : "", "source", w->source, w->source_len,
                         "next_id", (json_int_t)r->next_id, "fired", "tokens", ordered);
    return *marking ? 0 : cbx_err_set(err, -ENOMEM, "out of memory");
}

/* ---- choosing --------------------------------------------------------------------------- */

static int free_tok(const wf_token *u)
{
    return !u->busy && u->life == WF_TOK_ACTIVE;
}

static const wf_token *partner_of(const cbx_workflow_run *r, const wf_token *t, size_t q, size_t ti)
{
    const cbx__wf_trans *tr = &r->w->trans[ti];
    for (const wf_token *u = r->at[q].head; u; u = u->next)
        if (u != t && free_tok(u) && !tried(u, ti) &&
            (tr->join_any || strcmp(u->family, t->family) == 0))
            return u;
    return NULL;
}

static int has_signal(const wf_token *t, const char *name)
{
    for (const wf_signal *g = t->signals; g; g = g->next)
        if (strcmp(g->name, name) == 0)
            return 1;
    return 0;
}

/* 1 when t may fire now: ids gets t and the partners its transitions may take. */
static int candidate(cbx_workflow_run *r, const wf_token *t, uint64_t now, json_t *ids, int *claim,
                     uint64_t *due)
{
    const cbx_workflow *w = r->w;
    if (!free_tok(t) || w->final[t->place])
        return 0;
    int any = 0;
    for (size_t j = 0; j < w->nout_of[t->place]; j++) {
        size_t ti = w->out_of[t->place][j];
        const cbx__wf_trans *tr = &w->trans[ti];
        if (tried(t, ti))
            continue;
        const wf_token *parts[64];
        const wf_token *first = t; /* the token of the first input place: a signal's */
        size_t n = 0;
        int ok = tr->nfrom <= 64;
        uint64_t entered = t->entered_ms;
        for (size_t k = 0; ok && k < tr->nfrom; k++) {
            if (tr->from[k] == t->place)
                continue;
            const wf_token *u = partner_of(r, t, tr->from[k], ti);
            if (!u)
                ok = 0;
            else {
                parts[n++] = u;
                if (k == 0)
                    first = u;
                entered = u->entered_ms > entered ? u->entered_ms : entered;
            }
        }
        /* as the engine decides (net_run.c, consider) */
        if (!ok || (tr->trigger == WF_TRIGGER_SIGNAL && !has_signal(first, tr->signal)))
            continue;
        if (tr->after_ms && now < entered + tr->after_ms) {
            if (!*due || entered + tr->after_ms < *due)
                *due = entered + tr->after_ms;
            continue;
        }
        if (!any)
            json_array_append_new(ids, json_string(t->id));
        any = 1;
        if (tr->executor)
            *claim = 1;
        for (size_t k = 0; k < n; k++) {
            int seen = 0;
            size_t i;
            json_t *v;
            json_array_foreach(ids, i, v) seen |= strcmp(json_string_value(v), parts[k]->id) == 0;
            if (!seen)
                json_array_append_new(ids, json_string(parts[k]->id));
        }
    }
    return any;
}

int cbx__wf_shared_pick(cbx__wf_shared *s, size_t offset, json_t **ids, int *claim,
                        uint64_t *next_due_ms)
{
    cbx_workflow_run *r = s->r;
    *ids = NULL;
    *claim = 0;
    *next_due_ms = 0;
    if (!r->tabcap)
        return 0;
    uint64_t now = cbx__wf_now_ms();
    for (size_t k = 0; k < r->tabcap; k++) {
        const wf_token *t = r->tab[(offset + k) % r->tabcap];
        if (!t)
            continue;
        json_t *a = json_array();
        if (!a)
            return -ENOMEM;
        int c = 0;
        if (candidate(r, t, now, a, &c, next_due_ms)) {
            *ids = a;
            *claim = c;
            return 1;
        }
        json_decref(a);
    }
    return 0;
}

/* ---- stepping ----------------------------------------------------------------------------- */

static int in_ids(const json_t *ids, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) if (strcmp(json_string_value(v), id) == 0) return 1;
    return 0;
}

static void on_tick(uv_timer_t *h)
{
    cbx__wf_shared *s = h->data;
    if (s->tick_fn)
        s->tick_fn(s->tick_ud);
}

int cbx__wf_shared_fire(cbx__wf_shared *s, const json_t *ids, void (*tick)(void *), void *ud,
                        uint64_t tick_ms, json_t **changes)
{
    cbx_workflow_run *r = s->r;
    *changes = NULL;
    wf_token *t = cbx__wf_token_find(r, json_string_value(json_array_get(ids, 0)));
    if (!t)
        return -ENOENT;
    uint64_t *fired0 = malloc((r->w->ntrans + 1) * sizeof *fired0);
    if (!fired0)
        return -ENOMEM;
    memcpy(fired0, r->fired, (r->w->ntrans + 1) * sizeof *fired0);
    /* only ids' tokens take part: the others are busy, so that no join takes them and the
     * changes below leave them out (the run is loaded afresh before it is used again) */
    for (size_t i = 0; i < r->tabcap; i++)
        if (r->tab[i])
            r->tab[i]->busy = !in_ids(ids, r->tab[i]->id);
    s->blocks = 0;
    cbx__wf_enqueue(r, t);
    int rc = cbx_workflow_step(r);
    if (r->inflight && tick && tick_ms) {
        if (!s->tick && (s->tick = calloc(1, sizeof *s->tick)) != NULL) {
            uv_timer_init(cbx_runtime_loop(r->rt), s->tick);
            s->tick->data = s;
        }
        s->tick_fn = tick;
        s->tick_ud = ud;
        if (s->tick)
            uv_timer_start(s->tick, on_tick, tick_ms, tick_ms);
    }
    while (rc >= 0 && r->inflight)
        uv_run(cbx_runtime_loop(r->rt), UV_RUN_ONCE);
    if (s->tick)
        uv_timer_stop(s->tick);
    /* what changed: ids' tokens, and new ones (forks), which are not busy */
    json_t *put = json_object(), *removed = json_array(), *fired = json_object();
    for (size_t i = 0; put && i < r->tabcap; i++) {
        wf_token *u = r->tab[i];
        if (!u)
            continue;
        if (u->busy && !in_ids(ids, u->id))
            continue;
        if (u->life == WF_TOK_GONE)
            json_array_append_new(removed, json_string(u->id));
        else
            json_object_set_new(put, u->id, token_json(r, u));
    }
    uint64_t fires = 0;
    for (size_t ti = 0; fired && ti < r->w->ntrans; ti++)
        if (r->fired[ti] != fired0[ti]) {
            fires += r->fired[ti] - fired0[ti];
            json_object_set_new(fired, r->w->trans[ti].name,
                                json_integer((json_int_t)(r->fired[ti] - fired0[ti])));
        }
    *changes = json_pack("{s:o, s:o, s:o, s:I, s:I}", "put", put, "remove", removed, "fired", fired,
                         "fires", (json_int_t)fires, "blocks", (json_int_t)s->blocks);
    free(fired0);
    if (rc < 0) {
        json_decref(*changes);
        *changes = NULL;
        return rc;
    }
    return *changes ? 0 : -ENOMEM;
}

int cbx__wf_shared_signal(cbx__wf_shared *s, const char *token, const char *name,
                          const json_t *data, json_t **changes, cbx_err *err)
{
    cbx_workflow_run *r = s->r;
    *changes = NULL;
    wf_token *t = cbx__wf_token_find(r, token);
    if (t && t->busy)
        return cbx_err_set(err, -EBUSY, "token %s is being moved by another process", token);
    int rc = cbx_workflow_signal(r, token, name, data, err);
    if (rc)
        return rc;
    if (!t && !(t = cbx__wf_token_find(r, token)))
        return cbx_err_set(err, -ENOENT, "token %s: not found", token);
    *changes =
        json_pack("{s:{s:o}, s:[], s:{}}", "put", token, token_json(r, t), "remove", "fired");
    return *changes ? 0 : cbx_err_set(err, -ENOMEM, "out of memory");
}

int cbx__wf_marking_apply(json_t *m, const json_t *changes)
{
    json_t *tokens = json_object_get(m, "tokens"), *fired = json_object_get(m, "fired");
    if (!json_is_object(fired)) {
        fired = json_object();
        if (!fired || json_object_set_new(m, "fired", fired) != 0)
            return -ENOMEM;
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(changes, "remove"), i, v)
        json_object_del(tokens, json_string_value(v));
    const char *id;
    json_object_foreach(json_object_get(changes, "put"), id, v)
    {
        if (json_object_set(tokens, id, v) != 0)
            return -ENOMEM;
    }
    json_object_foreach(json_object_get(changes, "fired"), id, v)
    {
        json_int_t n = json_integer_value(json_object_get(fired, id)) + json_integer_value(v);
        if (json_object_set_new(fired, id, json_integer(n)) != 0)
            return -ENOMEM;
    }
    return 0;
}

cbx_workflow_state cbx__wf_shared_state(const cbx__wf_shared *s)
{
    return cbx_workflow_run_state(s->r);
}

json_t *cbx__wf_shared_snapshot(const cbx__wf_shared *s)
{
    return cbx_workflow_run_snapshot(s->r);
}
