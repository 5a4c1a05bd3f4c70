/* Events change a run: the same function applies one made now (after journaling it) and one
 * read back from the journal on resume, so that both reach the same state. */
#include "workflow/net_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *str(const json_t *ev, const char *key)
{
    const char *s = json_string_value(json_object_get(ev, key));
    return s ? s : "";
}

static uint64_t ms_of(const json_t *ev)
{
    json_int_t v = json_integer_value(json_object_get(ev, "ms"));
    return v > 0 ? (uint64_t)v : 0;
}

static void emit(cbx_workflow_run *r, cbx_workflow_event_kind k, const wf_token *t,
                 const char *transition, const char *detail)
{
    if (!r->o.on_event)
        return;
    cbx_workflow_event ev = {.kind = k,
                             .run_id = r->id,
                             .token = t ? t->id : "",
                             .transition = transition,
                             .place = t ? r->w->places[t->place] : "",
                             .detail = detail ? detail : "",
                             .replayed = r->replaying};
    r->o.on_event(&ev, r->o.ud);
}

static int set_tried(cbx_workflow_run *r, wf_token *t, size_t ti)
{
    if (!t->tried) {
        t->tried = calloc((r->w->ntrans + 63) / 64, sizeof *t->tried);
        if (!t->tried)
            return -ENOMEM;
    }
    t->tried[ti / 64] |= 1ull << (ti % 64);
    return 0;
}

static void clear_tried(wf_token *t)
{
    free(t->tried);
    t->tried = NULL;
}

static void drop_pending(cbx_workflow_run *r, const char *key)
{
    for (wf_pending **pp = &r->pending; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->key, key) == 0) {
            wf_pending *p = *pp;
            *pp = p->next;
            free(p->key);
            json_decref(p->outputs);
            free(p->error);
            free(p);
            return;
        }
}

/* Take the first pending signal called name from t. */
static void consume_signal(wf_token *t, const char *name)
{
    for (wf_signal **pp = &t->signals; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0) {
            wf_signal *s = *pp;
            *pp = s->next;
            free(s->name);
            json_decref(s->data);
            free(s);
            return;
        }
}

static int apply_add(cbx_workflow_run *r, json_t *ev)
{
    size_t p = cbx__wf_place(r->w, str(ev, "place"));
    if (p == (size_t)-1)
        return -EINVAL;
    wf_token *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->id = strdup(str(ev, "token"));
    t->family = strdup(json_object_get(ev, "family") ? str(ev, "family") : str(ev, "token"));
    json_t *data = json_object_get(ev, "data");
    t->data = json_is_object(data) ? json_deep_copy(data) : json_object();
    t->entered_ms = ms_of(ev);
    if (!t->id || !t->family || !t->data) {
        cbx__wf_token_free(t);
        return -ENOMEM;
    }
    int rc = cbx__wf_token_insert(r, t);
    if (rc) {
        cbx__wf_token_free(t);
        return rc;
    }
    cbx__wf_place_put(r, t, p);
    cbx__wf_hist(t, t->entered_ms, "added in %s", r->w->places[p]);
    cbx__wf_enqueue(r, t);
    emit(r, CBX_WORKFLOW_TOKEN_ADDED, t, NULL, NULL);
    return 0;
}

static int apply_signal(cbx_workflow_run *r, json_t *ev)
{
    wf_token *t = cbx__wf_token_find(r, str(ev, "token"));
    if (!t)
        return -ENOENT;
    wf_signal *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->name = strdup(str(ev, "name"));
    json_t *data = json_object_get(ev, "data");
    s->data = json_is_object(data) ? json_deep_copy(data) : json_object();
    if (!s->name || !s->data) {
        free(s->name);
        json_decref(s->data);
        free(s);
        return -ENOMEM;
    }
    wf_signal **tail = &t->signals;
    while (*tail)
        tail = &(*tail)->next;
    *tail = s;
    t->epoch++;
    /* the transitions waiting for this signal may be tried again */
    for (size_t i = 0; t->tried && i < r->w->ntrans; i++)
        if (r->w->trans[i].signal && strcmp(r->w->trans[i].signal, s->name) == 0)
            t->tried[i / 64] &= ~(1ull << (i % 64));
    char *d = json_dumps(s->data, JSON_COMPACT);
    int shown = d && strcmp(d, "{}") != 0;
    cbx__wf_hist(t, ms_of(ev), "signal %s received%s%s", s->name, shown ? " " : "", shown ? d : "");
    free(d);
    cbx__wf_enqueue(r, t);
    emit(r, CBX_WORKFLOW_SIGNALLED, t, s->name, NULL);
    return 0;
}

static int apply_action(cbx_workflow_run *r, json_t *ev)
{
    wf_token *t =
        cbx__wf_token_find(r, json_string_value(json_array_get(json_object_get(ev, "tokens"), 0)));
    if (!t)
        return -ENOENT;
    cbx__wf_hist(t, ms_of(ev), "action of %s started (%s)", str(ev, "transition"),
                 str(ev, "executor"));
    emit(r, CBX_WORKFLOW_ACTION_STARTED, t, str(ev, "transition"), NULL);
    return 0;
}

static int apply_result(cbx_workflow_run *r, json_t *ev)
{
    wf_token *t =
        cbx__wf_token_find(r, json_string_value(json_array_get(json_object_get(ev, "tokens"), 0)));
    if (!t)
        return -ENOENT;
    int ok = json_is_true(json_object_get(ev, "ok"));
    if (ok)
        cbx__wf_hist(t, ms_of(ev), "action of %s succeeded", str(ev, "transition"));
    else
        cbx__wf_hist(t, ms_of(ev), "action of %s failed: %s", str(ev, "transition"),
                     str(ev, "error"));
    if (!r->replaying)
        return 0;
    /* on resume: a result whose firing is not journaled yet is committed from here */
    wf_pending *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->key = strdup(str(ev, "key"));
    p->ok = ok;
    p->outputs = json_incref(json_object_get(ev, "outputs"));
    p->error = strdup(str(ev, "error"));
    if (!p->key || !p->error) {
        free(p->key);
        free(p->error);
        json_decref(p->outputs);
        free(p);
        return -ENOMEM;
    }
    p->next = r->pending;
    r->pending = p;
    return 0;
}

/* "rules: a true, b false" */
static void verdicts_text(const json_t *rules, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    size_t i;
    json_t *v;
    json_array_foreach(rules, i, v)
    {
        const json_t *vd = json_object_get(v, "verdict");
        if (used >= len)
            break;
        used += (size_t)cbx__wf_textf(buf + used, len - used, "%s%s %s",
                                      i ? ", " : "; rules: ", str(v, "rule"),
                                      json_is_true(vd)    ? "true"
                                      : json_is_false(vd) ? "false"
                                                          : "error");
    }
}

static int apply_fire(cbx_workflow_run *r, json_t *ev)
{
    const cbx_workflow *w = r->w;
    size_t ti = cbx__wf_trans_index(w, str(ev, "transition"));
    json_t *consumed = json_object_get(ev, "tokens");
    json_t *produced = json_object_get(ev, "produced");
    wf_token *primary = cbx__wf_token_find(r, json_string_value(json_array_get(consumed, 0)));
    if (ti == (size_t)-1 || !primary || !json_array_size(produced))
        return -EINVAL;
    uint64_t ms = ms_of(ev);
    char from[512];
    size_t fl = 0;
    from[0] = 0;
    for (size_t k = 0; k < w->trans[ti].nfrom && fl < sizeof from; k++)
        fl += (size_t)cbx__wf_textf(from + fl, sizeof from - fl, "%s%s", k ? " + " : "",
                                    w->places[w->trans[ti].from[k]]);
    char vt[512];
    verdicts_text(json_object_get(ev, "rules"), vt, sizeof vt);
    size_t i;
    json_t *id;
    json_array_foreach(consumed, i, id)
    {
        wf_token *t = cbx__wf_token_find(r, json_string_value(id));
        if (!t)
            return -ENOENT;
        cbx__wf_place_take(r, t);
        if (i > 0) { /* joined into the primary token */
            cbx__wf_hist(t, ms, "joined into %s by %s", primary->id, w->trans[ti].name);
            t->life = WF_TOK_GONE;
            cbx__wf_hist(primary, ms, "joined %s by %s", t->id, w->trans[ti].name);
        }
    }
    if (json_object_get(ev, "signal"))
        consume_signal(primary, str(ev, "signal"));
    primary->nchild = (uint32_t)json_integer_value(json_object_get(ev, "nchild"));
    json_t *p;
    json_array_foreach(produced, i, p)
    {
        size_t place = cbx__wf_place(w, str(p, "place"));
        json_t *data = json_object_get(p, "data");
        if (place == (size_t)-1)
            return -EINVAL;
        wf_token *t = primary;
        if (i > 0) {
            t = calloc(1, sizeof *t);
            if (!t)
                return -ENOMEM;
            t->id = strdup(str(p, "token"));
            t->family = strdup(primary->family);
            t->data = json_object();
            if (!t->id || !t->family || !t->data || cbx__wf_token_insert(r, t) != 0) {
                cbx__wf_token_free(t);
                return -ENOMEM;
            }
            t->firings = primary->firings;
            cbx__wf_hist(t, ms, "forked from %s by %s", primary->id, w->trans[ti].name);
        } else {
            t->firings++;
        }
        /* token data is never changed in place (a firing merges into a copy): share it */
        json_decref(t->data);
        t->data = json_is_object(data) ? json_incref(data) : json_object();
        t->entered_ms = ms;
        t->epoch++;
        clear_tried(t);
        free(t->why);
        t->why = NULL;
        cbx__wf_place_put(r, t, place);
        cbx__wf_hist(t, ms, "fired %s: %s -> %s%s", w->trans[ti].name, from, w->places[place], vt);
        if (!r->one_hop)
            cbx__wf_enqueue(r, t);
        emit(r, CBX_WORKFLOW_FIRED, t, w->trans[ti].name, NULL);
    }
    r->fired[ti]++;
    drop_pending(r, str(ev, "key"));
    return 0;
}

static int apply_block(cbx_workflow_run *r, json_t *ev)
{
    size_t ti = cbx__wf_trans_index(r->w, str(ev, "transition"));
    if (ti == (size_t)-1)
        return -EINVAL;
    const char *why = str(ev, "why");
    size_t i;
    json_t *id;
    wf_token *primary = NULL;
    json_array_foreach(json_object_get(ev, "tokens"), i, id)
    {
        wf_token *t = cbx__wf_token_find(r, json_string_value(id));
        if (!t)
            return -ENOENT;
        if (!primary)
            primary = t;
        if (set_tried(r, t, ti) != 0)
            return -ENOMEM;
        char line[900];
        cbx__wf_textf(line, sizeof line, "transition %s blocked: %s", r->w->trans[ti].name, why);
        free(t->why);
        t->why = strdup(line);
        char vt[512];
        verdicts_text(json_object_get(ev, "rules"), vt, sizeof vt);
        cbx__wf_hist(t, ms_of(ev), "%s%s", line, vt);
        cbx__wf_enqueue(r, t);
        emit(r, CBX_WORKFLOW_BLOCKED, t, r->w->trans[ti].name, line);
    }
    if (primary && json_object_get(ev, "signal"))
        consume_signal(primary, str(ev, "signal"));
    drop_pending(r, str(ev, "key"));
    return 0;
}

static int apply_fail(cbx_workflow_run *r, json_t *ev)
{
    wf_token *t = cbx__wf_token_find(r, str(ev, "token"));
    if (!t)
        return -ENOENT;
    t->life = WF_TOK_FAILED;
    free(t->why);
    t->why = strdup(str(ev, "why"));
    cbx__wf_hist(t, ms_of(ev), "failed: %s", str(ev, "why"));
    emit(r, CBX_WORKFLOW_TOKEN_FAILED, t, NULL, str(ev, "why"));
    return 0;
}

int cbx__wf_apply(cbx_workflow_run *r, const char *kind, json_t *ev, cbx_err *err)
{
    int rc;
    if (strcmp(kind, "fire") == 0)
        rc = apply_fire(r, ev);
    else if (strcmp(kind, "block") == 0)
        rc = apply_block(r, ev);
    else if (strcmp(kind, "add") == 0)
        rc = apply_add(r, ev);
    else if (strcmp(kind, "signal") == 0)
        rc = apply_signal(r, ev);
    else if (strcmp(kind, "action") == 0)
        rc = apply_action(r, ev);
    else if (strcmp(kind, "result") == 0)
        rc = apply_result(r, ev);
    else if (strcmp(kind, "fail") == 0)
        rc = apply_fail(r, ev);
    else
        rc = -EINVAL;
    if (rc)
        cbx_err_set(err, rc, "workflow run %s: cannot apply a %s event: %s", r->id, kind,
                    cbx_strerror(rc));
    return rc;
}
