/* Where a run stands: each token's state (final, waiting, stuck, ...), the run's, and the
 * snapshot that show and graph print. */
#include "workflow/net_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    TS_BUSY,
    TS_ACTIVE, /* can still fire now */
    TS_FINAL,
    TS_WAITING,
    TS_JOINING, /* only a join is left, its partner missing */
    TS_STUCK,
    TS_FAILED,
    TS_GONE,
} tok_state;

static const char *const ts_names[] = {"busy",    "active", "final",  "waiting",
                                       "joining", "stuck",  "failed", "gone"};

const char *cbx_workflow_state_name(cbx_workflow_state s)
{
    static const char *const names[] = {"running", "done", "waiting", "stuck", "failed"};
    return (unsigned)s < 5 ? names[s] : "unknown";
}

static int tried(const wf_token *t, size_t ti)
{
    return t->tried && (t->tried[ti / 64] >> (ti % 64)) & 1;
}

/* What t waits for, into buf: "signal approve, after 30s (review_timeout)". */
static tok_state classify(const cbx_workflow_run *r, const wf_token *t, char *buf, size_t len)
{
    if (buf && len)
        buf[0] = 0;
    if (t->life == WF_TOK_GONE)
        return TS_GONE;
    if (t->life == WF_TOK_FAILED)
        return TS_FAILED;
    if (t->busy)
        return TS_BUSY;
    if (r->w->final[t->place])
        return TS_FINAL;
    const cbx_workflow *w = r->w;
    int waiting = 0, joining = 0;
    size_t used = 0;
    for (size_t j = 0; j < w->nout_of[t->place]; j++) {
        size_t ti = w->out_of[t->place][j];
        const cbx__wf_trans *tr = &w->trans[ti];
        if (tr->trigger == WF_TRIGGER_SIGNAL) {
            waiting = 1;
            if (buf && used < len)
                used += (size_t)cbx__wf_textf(buf + used, len - used, "%ssignal %s (%s)",
                                              used ? ", " : "", tr->signal, tr->name);
            continue;
        }
        if (tried(t, ti))
            continue;
        if (tr->after_ms) {
            waiting = 1;
            uint64_t due = t->entered_ms + tr->after_ms, now = cbx__wf_now_ms();
            if (buf && used < len)
                used += (size_t)cbx__wf_textf(buf + used, len - used, "%stimer %s (due in %.1fs)",
                                              used ? ", " : "", tr->name,
                                              due > now ? (double)(due - now) / 1000.0 : 0.0);
            continue;
        }
        if (tr->nfrom > 1) {
            joining = 1;
            if (buf && used < len)
                used += (size_t)cbx__wf_textf(buf + used, len - used, "%sa token to join by %s",
                                              used ? ", " : "", tr->name);
            continue;
        }
        return TS_ACTIVE;
    }
    if (waiting)
        return TS_WAITING;
    return joining ? TS_JOINING : TS_STUCK;
}

cbx_workflow_state cbx_workflow_run_state(const cbx_workflow_run *r)
{
    if (!r || r->inflight || r->qhead)
        return CBX_WORKFLOW_RUNNING;
    if (r->failed_journal)
        return CBX_WORKFLOW_FAILED;
    size_t n[8] = {0};
    for (size_t i = 0; i < r->tabcap; i++)
        if (r->tab[i])
            n[classify(r, r->tab[i], NULL, 0)]++;
    if (n[TS_BUSY] || n[TS_ACTIVE])
        return CBX_WORKFLOW_RUNNING;
    if (n[TS_FAILED])
        return CBX_WORKFLOW_FAILED;
    if (n[TS_STUCK] || (n[TS_JOINING] && !n[TS_WAITING]))
        return CBX_WORKFLOW_STUCK;
    if (n[TS_WAITING])
        return CBX_WORKFLOW_WAITING;
    return CBX_WORKFLOW_DONE;
}

static int by_id(const void *a, const void *b)
{
    const wf_token *x = *(wf_token *const *)a, *y = *(wf_token *const *)b;
    return strcmp(x->id, y->id);
}

json_t *cbx_workflow_run_snapshot(const cbx_workflow_run *r)
{
    if (!r)
        return NULL;
    const cbx_workflow *w = r->w;
    wf_token **all = malloc((r->ntok + 1) * sizeof *all);
    if (!all)
        return NULL;
    size_t n = 0;
    size_t waiting_any = 0;
    for (size_t i = 0; i < r->tabcap; i++)
        if (r->tab[i]) {
            all[n++] = r->tab[i];
            if (classify(r, r->tab[i], NULL, 0) == TS_WAITING)
                waiting_any++;
        }
    qsort(all, n, sizeof *all, by_id);
    cbx_workflow_state st = cbx_workflow_run_state(r);
    json_t *tokens = json_array(), *marking = json_object(), *fired = json_object();
    for (size_t p = 0; p < w->nplaces; p++)
        json_object_set_new(marking, w->places[p], json_integer((json_int_t)r->at[p].n));
    for (size_t t = 0; t < w->ntrans; t++)
        json_object_set_new(fired, w->trans[t].name, json_integer((json_int_t)r->fired[t]));
    char wait[512];
    for (size_t i = 0; i < n; i++) {
        const wf_token *t = all[i];
        tok_state ts = classify(r, t, wait, sizeof wait);
        if (ts == TS_JOINING)
            ts = waiting_any ? TS_WAITING : TS_STUCK;
        json_t *hist = json_array();
        for (const wf_hist *h = t->hist; h; h = h->next)
            json_array_append_new(
                hist, json_pack("{s:I, s:s}", "ms", (json_int_t)h->ms, "text", h->text));
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:O, s:I, s:o}", "id", t->id, "family",
                              t->family, "place", w->places[t->place], "state", ts_names[ts],
                              "data", t->data, "firings", (json_int_t)t->firings, "history", hist);
        if (!o)
            continue;
        if (wait[0] && (ts == TS_WAITING || ts == TS_STUCK))
            json_object_set_new(o, "waiting_for", json_string(wait));
        if (t->why && ts != TS_FINAL && ts != TS_GONE)
            json_object_set_new(o, "explanation", json_string(t->why));
        else if (ts == TS_STUCK && !t->why)
            json_object_set_new(o, "explanation",
                                json_string(w->nout_of[t->place]
                                                ? "no transition from its place can fire"
                                                : "no transition leaves its place"));
        json_array_append_new(tokens, o);
    }
    free(all);
    json_t *snap = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "run_id", r->id, "workflow", w->name,
                             "state", cbx_workflow_state_name(st), "tokens", tokens, "marking",
                             marking, "firings", fired);
    if (snap && r->failed_journal)
        json_object_set_new(snap, "journal_error", json_string(r->journal_error));
    return snap;
}

int cbx_workflow_run_show(cbx_journal *j, const char *run_id, const cbx_registry *reg, json_t **out,
                          cbx_err *err)
{
    if (!j || !run_id || !out)
        return -EINVAL;
    *out = NULL;
    cbx_workflow_run *r = NULL;
    int rc = cbx__wf_run_rebuild(&r, NULL, j, run_id, reg, NULL, err);
    if (rc)
        return rc;
    /* a rebuilt run has nothing in flight: what could fire next shows as active */
    for (wf_token *t = r->qhead; t; t = t->qnext)
        t->queued = 0;
    r->qhead = r->qtail = NULL;
    json_t *snap = cbx_workflow_run_snapshot(r);
    if (snap) {
        json_object_set_new(snap, "source", json_string(r->w->source));
        json_object_set_new(snap, "file", json_string(r->w->doc.file ? r->w->doc.file : ""));
    }
    cbx_workflow_run_free(r);
    *out = snap;
    return snap ? 0 : -ENOMEM;
}
