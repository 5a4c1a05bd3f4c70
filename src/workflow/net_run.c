/* Running a workflow: choosing what can fire, timers and signals, running until the run rests,
 * making, rebuilding and freeing runs. Firing itself is in net_fire.c. */
#include "workflow/net_internal.h"

#include "core/uuid.h"

#include "cbx/template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- choosing what fires ---------------------------------------------------------------- */

static int tried(const wf_token *t, size_t ti)
{
    return t->tried && (t->tried[ti / 64] >> (ti % 64)) & 1;
}

static wf_signal *signal_of(const wf_token *t, const char *name)
{
    for (wf_signal *s = t->signals; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* A token of place q to join t by transition ti: the oldest free one of t's family (or any). */
static wf_token *partner(cbx_workflow_run *r, const wf_token *t, size_t q, size_t ti)
{
    const cbx__wf_trans *tr = &r->w->trans[ti];
    for (wf_token *u = r->at[q].head; u; u = u->next)
        if (u != t && !u->busy && u->life == WF_TOK_ACTIVE && !tried(u, ti) &&
            (tr->join_any || strcmp(u->family, t->family) == 0))
            return u;
    return NULL;
}

static const char *missing_field(const cbx__wf_trans *tr, const json_t *data, char *buf, size_t len)
{
    for (size_t i = 0; i < tr->nv_all; i++)
        if (!cbx__wf_present(data, tr->v_all[i])) {
            cbx__wf_textf(buf, len, "validation failed: field %s is missing (validations.all)",
                          tr->v_all[i]);
            return buf;
        }
    if (!tr->nv_any)
        return NULL;
    for (size_t i = 0; i < tr->nv_any; i++)
        if (cbx__wf_present(data, tr->v_any[i]))
            return NULL;
    size_t used = (size_t)cbx__wf_textf(buf, len, "validation failed: none of the fields");
    for (size_t i = 0; i < tr->nv_any && used < len; i++)
        used += (size_t)cbx__wf_textf(buf + used, len - used, "%s %s", i ? "," : "", tr->v_any[i]);
    if (used < len)
        cbx__wf_textf(buf + used, len - used, " is present (validations.any)");
    return buf;
}

/* Try the transitions from t's place in order; 1 when one fired or started. */
static int consider(cbx_workflow_run *r, wf_token *t, uint64_t now)
{
    const cbx_workflow *w = r->w;
    for (size_t j = 0; j < w->nout_of[t->place]; j++) {
        size_t ti = w->out_of[t->place][j];
        const cbx__wf_trans *tr = &w->trans[ti];
        if (tried(t, ti))
            continue;
        wf_token *toks[64] = {0};
        size_t n = 0;
        int ok = tr->nfrom <= 64;
        for (size_t k = 0; ok && k < tr->nfrom; k++) {
            wf_token *u = tr->from[k] == t->place ? t : partner(r, t, tr->from[k], ti);
            if (!u)
                ok = 0;
            else
                toks[n++] = u;
        }
        if (!ok)
            continue; /* waiting for a token to join */
        wf_token *p = toks[0];
        if (!p)
            continue; /* no input place: nothing to fire with */
        if (tr->trigger == WF_TRIGGER_SIGNAL && !signal_of(p, tr->signal))
            continue;
        if (tr->after_ms) {
            uint64_t entered = 0;
            for (size_t k = 0; k < n; k++)
                entered = toks[k]->entered_ms > entered ? toks[k]->entered_ms : entered;
            if (now < entered + tr->after_ms) {
                if (!r->next_due || entered + tr->after_ms < r->next_due)
                    r->next_due = entered + tr->after_ms;
                continue;
            }
        }
        wf_firing *f = calloc(1, sizeof *f);
        if (!f)
            return -ENOMEM;
        f->r = r;
        f->ti = ti;
        f->ntoks = n;
        f->toks = malloc((n ? n : 1) * sizeof *f->toks);
        /* a copy only when something merges into it: a join, a signal, an action's outputs */
        int merges = n > 1 || tr->trigger == WF_TRIGGER_SIGNAL || tr->executor;
        f->base = merges ? json_deep_copy(p->data) : json_incref(p->data);
        if (!f->toks || !f->base) {
            cbx__wf_firing_free(f);
            return -ENOMEM;
        }
        memcpy(f->toks, toks, n * sizeof *toks);
        for (size_t k = 1; k < n; k++)
            cbx__wf_merge(f->base, toks[k]->data);
        cbx__wf_textf(f->key, sizeof f->key, "%s/%s/%u", p->id, tr->name, p->epoch);
        char why[600];
        if (missing_field(tr, f->base, why, sizeof why)) {
            cbx__wf_block(r, f, why, NULL);
            cbx__wf_firing_free(f);
            continue;
        }
        if (tr->trigger == WF_TRIGGER_SIGNAL) {
            wf_signal *s = signal_of(p, tr->signal);
            f->signal = strdup(s->name);
            cbx__wf_merge(f->base, s->data);
        }
        for (size_t k = 0; k < n; k++)
            toks[k]->busy = 1;
        if (!tr->executor) {
            cbx__wf_commit(r, f, 1, NULL, NULL);
            cbx__wf_firing_free(f);
            return 1;
        }
        for (wf_pending *pd = r->pending; pd; pd = pd->next)
            if (strcmp(pd->key, f->key) == 0) { /* journaled before a crash: not run again */
                json_t *outs = json_incref(pd->outputs);
                char *perr = strdup(pd->error ? pd->error : "");
                cbx__wf_commit(r, f, pd->ok, outs, perr);
                json_decref(outs);
                free(perr);
                cbx__wf_firing_free(f);
                return 1;
            }
        if (!r->rt) {
            for (size_t k = 0; k < n; k++)
                toks[k]->busy = 0;
            cbx__wf_firing_free(f);
            return 0;
        }
        cbx__wf_start_action(r, f);
        return 1;
    }
    return 0;
}

int cbx_workflow_step(cbx_workflow_run *r)
{
    if (!r || r->stepping)
        return 0;
    r->stepping = 1;
    int count = 0;
    uint64_t now = cbx__wf_now_ms();
    r->next_due = 0;
    while (r->qhead) {
        wf_token *t = r->qhead;
        r->qhead = t->qnext;
        if (!r->qhead)
            r->qtail = NULL;
        t->queued = 0;
        if (t->life != WF_TOK_ACTIVE || t->busy)
            continue;
        int rc = consider(r, t, now);
        if (rc < 0) {
            r->stepping = 0;
            return rc;
        }
        count += rc;
    }
    r->stepping = 0;
    return count;
}

/* ---- timers ------------------------------------------------------------------------------- */

/* Enqueue the tokens whose after: timer is due; the earliest one still to come in r->next_due. */
static void timers_scan(cbx_workflow_run *r)
{
    uint64_t now = cbx__wf_now_ms();
    r->next_due = 0;
    for (size_t ti = 0; ti < r->w->ntrans; ti++) {
        const cbx__wf_trans *tr = &r->w->trans[ti];
        if (!tr->after_ms)
            continue;
        for (size_t k = 0; k < tr->nfrom; k++)
            for (wf_token *t = r->at[tr->from[k]].head; t; t = t->next) {
                if (t->busy || t->life != WF_TOK_ACTIVE || tried(t, ti))
                    continue;
                uint64_t due = t->entered_ms + tr->after_ms;
                if (due <= now)
                    cbx__wf_enqueue(r, t);
                else if (!r->next_due || due < r->next_due)
                    r->next_due = due;
            }
    }
}

static void on_timer(uv_timer_t *h)
{
    cbx_workflow_run *r = h->data;
    r->timer_armed = 0;
    timers_scan(r);
}

static int arm_timer(cbx_workflow_run *r)
{
    uv_loop_t *loop = cbx_runtime_loop(r->rt);
    if (!r->timer) {
        uv_timer_t *h = calloc(1, sizeof *h);
        if (!h)
            return -ENOMEM;
        uv_timer_init(loop, h);
        h->data = r;
        r->timer = h;
    }
    uint64_t now = cbx__wf_now_ms();
    uv_timer_start(r->timer, on_timer, r->next_due > now ? r->next_due - now : 0, 0);
    r->timer_armed = 1;
    return 0;
}

int cbx_workflow_run_until_rest(cbx_workflow_run *r, int wait_timers)
{
    if (!r)
        return -EINVAL;
    cbx_err je;
    cbx_err_clear(&je);
    if (r->jr && cbx__wf_journal_state(r->jr, r->id, "running", &je) != 0 && !r->failed_journal) {
        r->failed_journal = 1;
        cbx__wf_textf(r->journal_error, sizeof r->journal_error, "%s", je.msg);
    }
    for (;;) {
        int rc = cbx_workflow_step(r);
        if (rc < 0)
            return rc;
        if (r->qhead)
            continue;
        if (!r->inflight) {
            timers_scan(r);
            if (r->qhead)
                continue;
            if (!wait_timers || !r->next_due || !r->rt)
                break;
            if ((rc = arm_timer(r)) < 0)
                return rc;
        }
        uv_run(cbx_runtime_loop(r->rt), UV_RUN_ONCE);
    }
    if (r->timer && r->timer_armed) {
        uv_timer_stop(r->timer);
        r->timer_armed = 0;
    }
    cbx_workflow_state s = cbx_workflow_run_state(r);
    if (r->jr) {
        cbx_err e;
        cbx_err_clear(&e);
        if (cbx__wf_journal_state(r->jr, r->id, cbx_workflow_state_name(s), &e) != 0 &&
            !r->failed_journal) {
            r->failed_journal = 1;
            cbx__wf_textf(r->journal_error, sizeof r->journal_error, "%s", e.msg);
            s = CBX_WORKFLOW_FAILED;
        }
    }
    return (int)s;
}

/* ---- creating and freeing ---------------------------------------------------------------- */

int cbx__wf_run_new(cbx_workflow_run **out, cbx_runtime *rt, cbx_workflow *w,
                    const cbx_workflow_run_opts *o, const char *id, cbx_err *err)
{
    cbx_workflow_run *r = calloc(1, sizeof *r);
    if (!r) {
        cbx_err_set(err, -ENOMEM, "out of memory");
        return -ENOMEM;
    }
    r->rt = rt;
    r->w = w;
    if (o)
        r->o = *o;
    r->o.run_id = NULL;
    if (id)
        cbx__wf_textf(r->id, sizeof r->id, "%s", id);
    else
        cbx__uuid7(r->id);
    r->at = calloc(w->nplaces, sizeof *r->at);
    r->fired = calloc(w->ntrans + 1, sizeof *r->fired);
    int rc = -ENOMEM;
    if (!r->at || !r->fired)
        goto fail;
    if ((rc = cbx__wf_rules_open(&r->rules, w, err)) != 0)
        goto fail;
    cbx_template_opts to = {0};
    if ((rc = cbx_template_env_new(&r->tpl, &to, err)) != 0)
        goto fail;
    *out = r;
    return 0;
fail:
    if (rc == -ENOMEM)
        cbx_err_set(err, rc, "out of memory");
    cbx_workflow_run_free(r);
    return rc;
}

static int open_journal(cbx_workflow_run *r, cbx_err *err)
{
    cbx_journal *j = r->rt ? cbx_runtime_journal(r->rt) : NULL;
    if (!j)
        return 0;
    int rc = cbx__wf_journal_open(&r->jr, j, err);
    if (!rc)
        rc = cbx__wf_journal_run(r->jr, r->id, r->w, err);
    return rc;
}

int cbx_workflow_start(cbx_workflow_run **out, cbx_runtime *rt, cbx_workflow *w,
                       const cbx_workflow_run_opts *o, cbx_err *err)
{
    if (!out || !w)
        return cbx_err_set(err, -EINVAL, "workflow start: no workflow");
    *out = NULL;
    if (o && o->run_id && strlen(o->run_id) > 39)
        return cbx_err_set(err, -EINVAL, "run_id: at most 39 characters");
    cbx_workflow_run *r = NULL;
    int rc = cbx__wf_run_new(&r, rt, w, o, o ? o->run_id : NULL, err);
    if (rc)
        return rc;
    if ((rc = open_journal(r, err)) != 0) {
        cbx_workflow_run_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int cbx__wf_replay(cbx_workflow_run *r, json_t *events, cbx_err *err)
{
    r->replaying = 1;
    size_t i;
    json_t *ev;
    int rc = 0;
    json_array_foreach(events, i, ev)
    {
        r->seq = (uint64_t)json_integer_value(json_array_get(ev, 0));
        rc = cbx__wf_apply(r, json_string_value(json_array_get(ev, 1)), json_array_get(ev, 2), err);
        if (rc)
            break;
    }
    r->replaying = 0;
    /* a token's id t<N>: later ones continue after the highest */
    for (size_t k = 0; k < r->tabcap; k++) {
        wf_token *t = r->tab[k];
        if (t && t->id[0] == 't') {
            char *end = NULL;
            unsigned long long v = strtoull(t->id + 1, &end, 10);
            if (end && !*end && v > r->next_id)
                r->next_id = v;
        }
    }
    return rc;
}

int cbx__wf_run_rebuild(cbx_workflow_run **out, cbx_runtime *rt, cbx_journal *j, const char *run_id,
                        const cbx_registry *reg, const cbx_workflow_run_opts *o, cbx_err *err)
{
    *out = NULL;
    char *source = NULL, *file = NULL;
    json_t *events = NULL;
    int rc = cbx__wf_journal_read(j, run_id, rt != NULL, &source, &file, &events, err);
    if (rc)
        return rc;
    cbx_workflow *w = NULL;
    cbx_diag d = {0};
    rc = cbx_workflow_load_string(&w, source, strlen(source), file, reg, &d);
    if (rc) {
        cbx_err first;
        cbx_err_clear(&first);
        cbx_diag_first(&d, &first);
        cbx_err_set(err, rc, "run %s: its workflow no longer loads: %s", run_id, first.msg);
    }
    cbx_diag_clear(&d);
    free(source);
    free(file);
    cbx_workflow_run *r = NULL;
    if (!rc)
        rc = cbx__wf_run_new(&r, rt, w, o, run_id, err);
    if (rc) {
        cbx_workflow_free(w);
        json_decref(events);
        return rc;
    }
    r->owned = w;
    rc = cbx__wf_replay(r, events, err);
    json_decref(events);
    if (!rc && rt)
        rc = open_journal(r, err);
    if (rc) {
        cbx_workflow_run_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int cbx_workflow_resume(cbx_workflow_run **out, cbx_runtime *rt, const char *run_id,
                        const cbx_registry *reg, const cbx_workflow_run_opts *o, cbx_err *err)
{
    if (!out || !rt || !run_id)
        return cbx_err_set(err, -EINVAL, "workflow resume: no runtime or run id");
    cbx_journal *j = cbx_runtime_journal(rt);
    if (!j)
        return cbx_err_set(err, CBX_EJOURNAL, "workflow resume: the runtime has no journal");
    return cbx__wf_run_rebuild(out, rt, j, run_id, reg ? reg : cbx_runtime_registry(rt), o, err);
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

void cbx_workflow_run_free(cbx_workflow_run *r)
{
    if (!r)
        return;
    for (wf_firing *f = r->firings, *n; f; f = n) {
        n = f->next;
        f->r = NULL; /* action_done frees it */
        if (r->rt && f->ex && !f->done)
            cbx_runtime_cancel(r->rt, f->ex);
    }
    if (r->timer) {
        uv_timer_stop(r->timer);
        uv_close(r->timer, timer_closed);
        uv_run(cbx_runtime_loop(r->rt), UV_RUN_NOWAIT);
    }
    for (size_t i = 0; i < r->tabcap; i++)
        cbx__wf_token_free(r->tab[i]);
    free(r->tab);
    for (wf_pending *p = r->pending, *n; p; p = n) {
        n = p->next;
        free(p->key);
        json_decref(p->outputs);
        free(p->error);
        free(p);
    }
    free(r->at);
    free(r->fired);
    cbx__wf_rules_close(&r->rules);
    cbx_template_env_free(r->tpl);
    cbx__wf_journal_close(r->jr);
    cbx_workflow_free(r->owned);
    free(r);
}

const char *cbx_workflow_run_id(const cbx_workflow_run *r)
{
    return r ? r->id : NULL;
}

const cbx_workflow *cbx_workflow_run_net(const cbx_workflow_run *r)
{
    return r ? r->w : NULL;
}

/* ---- tokens and signals from the caller ------------------------------------------------- */

int cbx_workflow_add_token(cbx_workflow_run *r, const char *place, const json_t *data,
                           const char *id, char *id_out, size_t idlen, cbx_err *err)
{
    if (!r)
        return -EINVAL;
    const cbx_workflow *w = r->w;
    size_t p = (size_t)-1;
    if (place) {
        p = cbx__wf_place(w, place);
        if (p == (size_t)-1)
            return cbx_err_set(err, -EINVAL, "place: unknown place '%s'", place);
    } else {
        for (size_t i = 0; i < w->nplaces && p == (size_t)-1; i++)
            if (w->start[i])
                p = i;
    }
    if (data && !json_is_object(data))
        return cbx_err_set(err, -EINVAL, "token data: expected a JSON object");
    char buf[CBX__WF_ID_MAX];
    if (id) {
        if (!*id || strlen(id) >= 40 || strchr(id, '/'))
            return cbx_err_set(err, -EINVAL, "token id: 1 to 39 characters, no '/'");
        if (cbx__wf_token_find(r, id))
            return cbx_err_set(err, -EEXIST, "token id '%s' is taken", id);
        cbx__wf_textf(buf, sizeof buf, "%s", id);
    } else {
        do
            cbx__wf_textf(buf, sizeof buf, "t%llu", (unsigned long long)++r->next_id);
        while (cbx__wf_token_find(r, buf));
    }
    json_t *b = json_pack("{s:s, s:s, s:o}", "token", buf, "place", w->places[p], "data",
                          data ? json_deep_copy(data) : json_object());
    int rc = cbx__wf_event(r, "add", b);
    if (rc)
        return cbx_err_set(err, rc, "add token: %s", cbx_strerror(rc));
    if (id_out && idlen)
        cbx__wf_textf(id_out, idlen, "%s", buf);
    if (r->failed_journal)
        return cbx_err_set(err, CBX_EJOURNAL, "journal: %s", r->journal_error);
    return 0;
}

int cbx_workflow_signal(cbx_workflow_run *r, const char *token, const char *name,
                        const json_t *data, cbx_err *err)
{
    if (!r || !token || !name)
        return -EINVAL;
    wf_token *t = cbx__wf_token_find(r, token);
    if (!t || t->life == WF_TOK_GONE)
        return cbx_err_set(err, -ENOENT, "no token '%s' in run %s", token, r->id);
    if (t->life != WF_TOK_ACTIVE)
        return cbx_err_set(err, -EINVAL, "token %s has failed: it takes no signal", token);
    if (data && !json_is_object(data))
        return cbx_err_set(err, -EINVAL, "signal data: expected a JSON object");
    const cbx_workflow *w = r->w;
    char waits[300];
    size_t used = 0;
    waits[0] = 0;
    int found = 0;
    for (size_t j = 0; j < w->nout_of[t->place]; j++) {
        const cbx__wf_trans *tr = &w->trans[w->out_of[t->place][j]];
        if (tr->trigger != WF_TRIGGER_SIGNAL)
            continue;
        if (strcmp(tr->signal, name) == 0)
            found = 1;
        if (used < sizeof waits)
            used += (size_t)cbx__wf_textf(waits + used, sizeof waits - used, "%s%s",
                                          used ? ", " : "", tr->signal);
    }
    if (!found)
        return cbx_err_set(err, -EINVAL, "token %s in place %s waits for %s%s", token,
                           w->places[t->place], used ? "the signals: " : "no signal", waits);
    json_t *b = json_pack("{s:s, s:s, s:o}", "token", token, "name", name, "data",
                          data ? json_deep_copy(data) : json_object());
    int rc = cbx__wf_event(r, "signal", b);
    if (rc)
        return cbx_err_set(err, rc, "signal: %s", cbx_strerror(rc));
    if (r->failed_journal)
        return cbx_err_set(err, CBX_EJOURNAL, "journal: %s", r->journal_error);
    return 0;
}

/* ---- driven from outside ------------------------------------------------------------------ */

int cbx_workflow_advance(cbx_workflow_run *r, uint64_t *next_due_ms)
{
    if (next_due_ms)
        *next_due_ms = 0;
    if (!r)
        return -EINVAL;
    for (;;) {
        int rc = cbx_workflow_step(r);
        if (rc < 0)
            return rc;
        if (r->qhead)
            continue;
        if (!r->inflight) {
            timers_scan(r);
            if (r->qhead)
                continue;
        }
        break;
    }
    if (next_due_ms && !r->inflight)
        *next_due_ms = r->next_due;
    cbx_workflow_state s = cbx_workflow_run_state(r);
    const char *name = cbx_workflow_state_name(s);
    if (r->jr && r->journaled_state != name) {
        cbx_err e;
        cbx_err_clear(&e);
        if (cbx__wf_journal_state(r->jr, r->id, name, &e) != 0 && !r->failed_journal) {
            r->failed_journal = 1;
            cbx__wf_textf(r->journal_error, sizeof r->journal_error, "%s", e.msg);
            return CBX_WORKFLOW_FAILED;
        }
        r->journaled_state = name;
    }
    return (int)s;
}
