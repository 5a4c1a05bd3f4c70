/* The net as text: Graphviz DOT or Mermaid, places as circles and transitions as boxes, with a
 * run's marking and firing counts when given. */
#include "workflow/net_internal.h"
#include "core/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long count_of(const json_t *snap, const char *what, const char *name)
{
    const json_t *v = json_object_get(json_object_get(snap, what), name);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static void label_of(const cbx_workflow *w, const json_t *snap, size_t i, int place, char *out,
                     size_t len, const char *nl)
{
    const char *name = place ? w->places[i] : w->trans[i].name;
    long long n = snap ? count_of(snap, place ? "marking" : "firings", name) : -1;
    if (n < 0) {
        cbx__wf_textf(out, len, "%s", name);
        return;
    }
    if (place)
        cbx__wf_textf(out, len, "%s%s%lld token%s", name, nl, n, n == 1 ? "" : "s");
    else
        cbx__wf_textf(out, len, "%s%sfired %lldx", name, nl, n);
}

static void trigger_note(const cbx__wf_trans *t, char *out, size_t len, const char *nl)
{
    out[0] = 0;
    if (t->trigger == WF_TRIGGER_SIGNAL)
        cbx__wf_textf(out, len, "%ssignal %s", nl, t->signal);
    else if (t->after_ms)
        cbx__wf_textf(out, len, "%safter %llums", nl, (unsigned long long)t->after_ms);
}

static void dot(const cbx_workflow *w, const json_t *snap, cbx__buf *b)
{
    char label[256], note[128];
    cbx__buf_printf(b, "digraph \"%s\" {\n  rankdir=LR;\n", w->name);
    for (size_t p = 0; p < w->nplaces; p++) {
        label_of(w, snap, p, 1, label, sizeof label, "\\n");
        long long n = snap ? count_of(snap, "marking", w->places[p]) : 0;
        cbx__buf_printf(b, "  p%zu [shape=%s, label=\"%s\"%s];\n", p,
                        w->final[p] ? "doublecircle" : "circle", label,
                        n > 0 ? ", style=filled, fillcolor=lightblue" : "");
    }
    for (size_t t = 0; t < w->ntrans; t++) {
        const cbx__wf_trans *tr = &w->trans[t];
        label_of(w, snap, t, 0, label, sizeof label, "\\n");
        trigger_note(tr, note, sizeof note, "\\n");
        cbx__buf_printf(b, "  t%zu [shape=box, label=\"%s%s%s%s\"];\n", t, label, note,
                        tr->executor ? "\\n" : "", tr->executor ? tr->executor : "");
        for (size_t k = 0; k < tr->nfrom; k++)
            cbx__buf_printf(b, "  p%zu -> t%zu;\n", tr->from[k], t);
        for (size_t k = 0; k < tr->nto; k++)
            cbx__buf_printf(b, "  t%zu -> p%zu;\n", t, tr->to[k]);
    }
    cbx__buf_printf(b, "}\n");
}

static void mermaid(const cbx_workflow *w, const json_t *snap, cbx__buf *b)
{
    char label[256], note[128];
    cbx__buf_printf(b, "flowchart LR\n");
    for (size_t p = 0; p < w->nplaces; p++) {
        label_of(w, snap, p, 1, label, sizeof label, "<br/>");
        cbx__buf_printf(b, "  p%zu%s\"%s\"%s\n", p, w->final[p] ? "(((" : "((", label,
                        w->final[p] ? ")))" : "))");
    }
    for (size_t t = 0; t < w->ntrans; t++) {
        const cbx__wf_trans *tr = &w->trans[t];
        label_of(w, snap, t, 0, label, sizeof label, "<br/>");
        trigger_note(tr, note, sizeof note, "<br/>");
        cbx__buf_printf(b, "  t%zu[\"%s%s%s%s\"]\n", t, label, note, tr->executor ? "<br/>" : "",
                        tr->executor ? tr->executor : "");
        for (size_t k = 0; k < tr->nfrom; k++)
            cbx__buf_printf(b, "  p%zu --> t%zu\n", tr->from[k], t);
        for (size_t k = 0; k < tr->nto; k++)
            cbx__buf_printf(b, "  t%zu --> p%zu\n", t, tr->to[k]);
    }
    for (size_t p = 0; snap && p < w->nplaces; p++)
        if (count_of(snap, "marking", w->places[p]) > 0)
            cbx__buf_printf(b, "  style p%zu fill:#add8e6\n", p);
}

char *cbx_workflow_graph(const cbx_workflow *w, const json_t *snapshot, const char *format)
{
    if (!w || !format)
        return NULL;
    cbx__buf b = {0};
    if (strcmp(format, "dot") == 0)
        dot(w, snapshot, &b);
    else if (strcmp(format, "mermaid") == 0)
        mermaid(w, snapshot, &b);
    else
        return NULL;
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- the structure as JSON ---------------------------------------------------------------- */

static json_t *place_names(const cbx_workflow *w, const size_t *idx, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(w->places[idx[i]]));
    return a;
}

json_t *cbx_workflow_describe(const cbx_workflow *w)
{
    if (!w)
        return NULL;
    json_t *places = json_array(), *trans = json_array();
    for (size_t p = 0; places && p < w->nplaces; p++)
        json_array_append_new(places, json_pack("{s:s, s:b, s:b}", "name", w->places[p], "start",
                                                w->start[p], "final", w->final[p]));
    for (size_t t = 0; trans && t < w->ntrans; t++) {
        const cbx__wf_trans *tr = &w->trans[t];
        json_array_append_new(
            trans,
            json_pack("{s:s, s:o, s:o, s:s, s:s?, s:I, s:s?, s:i}", "name", tr->name, "from",
                      place_names(w, tr->from, tr->nfrom), "to", place_names(w, tr->to, tr->nto),
                      "trigger", tr->trigger == WF_TRIGGER_SIGNAL ? "signal" : "auto", "signal",
                      tr->trigger == WF_TRIGGER_SIGNAL ? tr->signal : NULL, "after_ms",
                      (json_int_t)tr->after_ms, "executor", tr->executor, "priority",
                      tr->priority));
    }
    return json_pack("{s:s, s:s, s:o, s:o}", "name", w->name ? w->name : "", "file",
                     w->doc.file ? w->doc.file : "", "places", places, "transitions", trans);
}
