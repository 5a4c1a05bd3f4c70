/* Firing a transition: its action on the runtime (config and policy keys rendered from the
 * token), then commit - the tokens move - or block - they stay, their data unchanged - each
 * written as an event (journaled first, then applied). */
#include "workflow/net_internal.h"
#include "flow/runs_on.h"

#include "cbx/template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- events -------------------------------------------------------------------------------- */

/* Journal an event (when there is a journal), then apply it. body is consumed. */
int cbx__wf_event(cbx_workflow_run *r, const char *kind, json_t *body)
{
    if (!body)
        return -ENOMEM;
    json_object_set_new(body, "ms", json_integer((json_int_t)cbx__wf_now_ms()));
    r->seq++;
    cbx_err e;
    cbx_err_clear(&e);
    if (r->jr && cbx__wf_journal_event(r->jr, r->id, r->seq, kind, body, &e) != 0 &&
        !r->failed_journal) {
        r->failed_journal = 1;
        cbx__wf_textf(r->journal_error, sizeof r->journal_error, "%s", e.msg);
    }
    int rc = cbx__wf_apply(r, kind, body, &e);
    json_decref(body);
    return rc;
}

json_t *cbx__wf_token_ids(wf_token **toks, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(toks[i]->id));
    return a;
}

/* ---- committing a firing ---------------------------------------------------------------- */

void cbx__wf_firing_free(wf_firing *f)
{
    json_decref(f->base);
    free(f->toks);
    free(f->signal);
    free(f);
}

static void unlink_firing(cbx_workflow_run *r, wf_firing *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else if (r->firings == f)
        r->firings = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->next = f->prev = NULL;
}

void cbx__wf_block(cbx_workflow_run *r, wf_firing *f, const char *why, json_t *verdicts)
{
    json_t *b =
        json_pack("{s:s, s:s, s:o, s:s}", "key", f->key, "transition", r->w->trans[f->ti].name,
                  "tokens", cbx__wf_token_ids(f->toks, f->ntoks), "why", why);
    if (b && verdicts)
        json_object_set(b, "rules", verdicts);
    if (b && f->signal)
        json_object_set_new(b, "signal", json_string(f->signal));
    cbx__wf_event(r, "block", b);
}

void cbx__wf_commit(cbx_workflow_run *r, wf_firing *f, int ok, const json_t *outputs,
                    const char *error)
{
    const cbx_workflow *w = r->w;
    const cbx__wf_trans *tr = &w->trans[f->ti];
    for (size_t i = 0; i < f->ntoks; i++)
        f->toks[i]->busy = 0;
    if (!ok) {
        char why[600];
        cbx__wf_textf(why, sizeof why, "action failed: %s",
                      error && *error ? error : "(no message)");
        cbx__wf_block(r, f, why, NULL);
        return;
    }
    if (outputs && cbx__wf_merge(f->base, outputs) != 0)
        return;
    int pass = 0;
    json_t *verdicts = NULL;
    char why[800];
    cbx__wf_rules_eval(&r->rules, w, tr, f->base, &pass, &verdicts, why, sizeof why);
    if (!pass) {
        cbx__wf_block(r, f, why, verdicts);
        json_decref(verdicts);
        return;
    }
    wf_token *p = f->toks[0];
    uint32_t nchild = p->nchild;
    json_t *produced = json_array();
    for (size_t k = 0; produced && k < tr->nto; k++) {
        char id[CBX__WF_ID_MAX + 16];
        if (k == 0)
            cbx__wf_textf(id, sizeof id, "%s", p->id);
        else
            cbx__wf_textf(id, sizeof id, "%.*s.%u", CBX__WF_ID_MAX - 12, p->id, ++nchild);
        json_array_append_new(produced, json_pack("{s:s, s:s, s:O}", "token", id, "place",
                                                  w->places[tr->to[k]], "data", f->base));
    }
    json_t *b = json_pack("{s:s, s:s, s:o, s:o, s:I}", "key", f->key, "transition", tr->name,
                          "tokens", cbx__wf_token_ids(f->toks, f->ntoks), "produced", produced,
                          "nchild", (json_int_t)nchild);
    if (b && verdicts)
        json_object_set(b, "rules", verdicts);
    if (b && f->signal)
        json_object_set_new(b, "signal", json_string(f->signal));
    json_decref(verdicts);
    cbx__wf_event(r, "fire", b);
    uint32_t cap = r->o.max_firings ? r->o.max_firings : w->max_firings;
    if (p->life == WF_TOK_ACTIVE && p->firings >= cap) {
        char m[300];
        cbx__wf_textf(
            m, sizeof m,
            "token %s fired %u transitions, the cap (limits.firings_per_token): a cycle that "
            "does not end?",
            p->id, p->firings);
        cbx__wf_event(r, "fail", json_pack("{s:s, s:s}", "token", p->id, "why", m));
    }
}

/* ---- actions ------------------------------------------------------------------------------ */

static json_t *map_outputs(cbx_workflow_run *r, const cbx__wf_trans *tr, const json_t *base,
                           const json_t *outputs, char *err, size_t len)
{
    if (!tr->outputs)
        return json_is_object(outputs) ? json_incref((json_t *)outputs) : json_object();
    json_t *ctx =
        json_pack("{s:O, s:O}", "token", base, "outputs", outputs ? outputs : json_null());
    json_t *out = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    if (!ctx || cbx_template_render(r->tpl, tr->outputs, ctx, &out, &e) != 0)
        cbx__wf_textf(err, len, "outputs%s%s: %s", e.where[0] ? "." : "", e.where, e.msg);
    json_decref(ctx);
    if (out && !json_is_object(out)) {
        cbx__wf_textf(err, len, "outputs: expected an object, the template gave %s",
                      json_is_array(out) ? "an array" : "a scalar");
        json_decref(out);
        out = NULL;
    }
    return out;
}

static void action_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    (void)ex;
    wf_firing *f = ud;
    cbx_workflow_run *r = f->r;
    f->done = 1;
    if (!r) {
        cbx__wf_firing_free(f);
        return;
    }
    unlink_firing(r, f);
    r->inflight--;
    int ok = res->status == CBX_STATUS_SUCCESS || res->fallback_used;
    char err[600];
    err[0] = 0;
    json_t *outs = NULL;
    if (ok) {
        outs = map_outputs(r, &r->w->trans[f->ti], f->base, res->outputs, err, sizeof err);
        ok = outs != NULL;
    } else {
        cbx__wf_textf(err, sizeof err, "%s",
                      res->error[0] ? res->error : cbx_status_name(res->status));
    }
    /* an execution's error stays on its own span, where secret parameters are masked */
    if (f->traceparent[0])
        cbx__wf_trace_end(r, f, ok,
                          res->status == CBX_STATUS_SUCCESS || res->fallback_used ? err : NULL,
                          res->id);
    json_t *b =
        json_pack("{s:s, s:s, s:o, s:b, s:s, s:i, s:s}", "key", f->key, "transition",
                  r->w->trans[f->ti].name, "tokens", cbx__wf_token_ids(f->toks, f->ntoks), "ok", ok,
                  "error", err, "attempts", (int)res->attempt_count, "execution", res->id);
    if (b && outs)
        json_object_set(b, "outputs", outs);
    cbx__wf_event(r, "result", b);
    cbx__wf_commit(r, f, ok, outs, err);
    json_decref(outs);
    if (!f->submitting)
        cbx__wf_firing_free(f);
}

/* A policy's key template (breaker.key, fallback.cache.key) rendered over ctx into buf: 0, or -1
 * with the reason in why. */
static int expand_key(cbx_workflow_run *r, const char *what, const char *tpl, const json_t *ctx,
                      char *buf, size_t len, char *why, size_t wlen)
{
    json_t *t = json_string(tpl), *v = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    if (!t || cbx_template_render(r->tpl, t, ctx, &v, &e) != 0) {
        json_decref(t);
        cbx__wf_textf(why, wlen, "%s: %s", what, e.msg[0] ? e.msg : "out of memory");
        return -1;
    }
    json_decref(t);
    if (json_is_string(v) && json_string_length(v))
        cbx__wf_textf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        cbx__wf_textf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else {
        cbx__wf_textf(why, wlen, "%s '%s' gave no name", what, tpl);
        json_decref(v);
        return -1;
    }
    json_decref(v);
    return 0;
}

void cbx__wf_start_action(cbx_workflow_run *r, wf_firing *f)
{
    const cbx__wf_trans *tr = &r->w->trans[f->ti];
    cbx__wf_trace_begin(r, f);
    cbx__wf_event(r, "action",
                  json_pack("{s:s, s:s, s:o, s:s}", "key", f->key, "transition", tr->name, "tokens",
                            cbx__wf_token_ids(f->toks, f->ntoks), "executor", tr->executor));
    json_t *ctx = json_pack("{s:O, s:{s:s}, s:s}", "token", f->base, "run", "id", r->id,
                            "transition", tr->name);
    json_t *params = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    const char *key_tpl = tr->policy ? cbx_policy_breaker_key(tr->policy) : NULL;
    const char *fb_tpl = tr->policy ? cbx_policy_fallback_key(tr->policy) : NULL;
    char key[480], breaker[560], fb_key[512], err[600];
    err[0] = 0;
    int bad = !ctx || cbx_template_render(r->tpl, tr->config, ctx, &params, &e) != 0;
    if (bad)
        cbx__wf_textf(err, sizeof err, "config.%s: %s", e.where, e.msg);
    else if ((key_tpl &&
              expand_key(r, "breaker.key", key_tpl, ctx, key, sizeof key, err, sizeof err) != 0) ||
             (fb_tpl && expand_key(r, "fallback.cache.key", fb_tpl, ctx, fb_key, sizeof fb_key, err,
                                   sizeof err) != 0))
        bad = 1;
    if (key_tpl && !bad)
        cbx__wf_textf(breaker, sizeof breaker, "%s:%s", cbx_policy_name(tr->policy), key);
    if (bad) {
        if (f->traceparent[0])
            cbx__wf_trace_end(r, f, 0, err, NULL);
        json_decref(ctx);
        json_decref(params);
        cbx__wf_event(r, "result",
                      json_pack("{s:s, s:s, s:o, s:b, s:s}", "key", f->key, "transition", tr->name,
                                "tokens", cbx__wf_token_ids(f->toks, f->ntoks), "ok", 0, "error",
                                err));
        cbx__wf_commit(r, f, 0, NULL, err);
        cbx__wf_firing_free(f);
        return;
    }
    json_decref(ctx);
    char tag[200];
    cbx__wf_textf(tag, sizeof tag, "workflow:%s/%s/%s", r->id, f->toks[0]->id, tr->name);
    const char *executor = tr->executor;
    if (cbx__runs_on_remote(tr->runs_on)) {
        /* runs_on: workers: the remote executor carries the action to the pool */
        json_t *wrapped = cbx__runs_on_params(tr->executor, params, tr->runs_on);
        json_decref(params);
        params = wrapped ? wrapped : json_object(); /* out of memory: the remote executor
                                                        refuses the empty parameters */
        executor = CBX__RUNS_ON_EXECUTOR;
    }
    cbx_request q = {.executor = executor,
                     .params = params,
                     .policy = tr->policy,
                     .breaker = key_tpl ? breaker : NULL,
                     .breaker_opts = key_tpl ? cbx_policy_breaker_opts(tr->policy) : NULL,
                     .fallback_key = fb_tpl ? fb_key : NULL,
                     .tag = tag,
                     .on_done = action_done,
                     .ud = f,
                     .run_id = r->id,
                     .step = tr->name,
                     .traceparent = f->traceparent[0] ? f->traceparent : NULL};
    f->next = r->firings;
    if (r->firings)
        r->firings->prev = f;
    r->firings = f;
    r->inflight++;
    cbx_diag d = {0};
    cbx_execution *ex = NULL;
    f->submitting = 1;
    cbx_runtime_submit(r->rt, &q, &ex, &d); /* a refusal comes to action_done, maybe in here */
    f->submitting = 0;
    cbx_diag_clear(&d);
    json_decref(params);
    if (f->done)
        cbx__wf_firing_free(f);
    else
        f->ex = ex;
}
