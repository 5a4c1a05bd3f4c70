/* A flow's DAG as text: Mermaid (a flowchart) or Graphviz DOT. Steps are nodes labelled with
 * their name and executor; an edge goes from a step to each step that waits for it; composites
 * and sub-flows are subgraphs (DOT clusters) holding their own steps. */
#include "flow/flow_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Text cut to its buffer on purpose: vsnprintf keeps the compiler's truncation checks, meant for
 * fixed formats, out of the way. */
static void textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void textf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void add(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Text for a label: Mermaid takes entities, DOT backslash escapes. */
static void add_text(buf *b, const char *s, int dot)
{
    for (; s && *s; s++) {
        char c = *s;
        if (dot && (c == '"' || c == '\\'))
            add(b, "\\%c", c);
        else if (dot && c == '\n')
            add(b, "\\n");
        else if (!dot && c == '"')
            add(b, "#quot;");
        else if (!dot && c == '<')
            add(b, "#lt;");
        else if (!dot && c == '>')
            add(b, "#gt;");
        else
            add(b, "%c", c);
    }
}

static int clustered(const cbx__flow_step *s)
{
    return s->nchildren > 0 || (s->subflow && s->subflow->nsteps > 0);
}

static const cbx__flow_step *inner_steps(const cbx__flow_step *s, size_t *n)
{
    if (s->nchildren) {
        *n = s->nchildren;
        return s->children;
    }
    *n = s->subflow ? s->subflow->nsteps : 0;
    return s->subflow ? s->subflow->steps : NULL;
}

static void node_id(char *out, size_t len, const char *parent, size_t i)
{
    textf(out, len, "%s_%zu", parent, i);
}

/* What the label says under the name. */
static void add_kind(buf *b, const cbx__flow_step *s, int dot)
{
    if (s->subflow_path) {
        add(b, "flow ");
        const char *slash = strrchr(s->subflow_path, '/');
        add_text(b, slash ? slash + 1 : s->subflow_path, dot);
    } else if (s->nchildren) {
        add(b, "steps, %s", s->parallel ? "parallel" : "sequence");
    } else {
        add_text(b, s->executor ? s->executor : "?", dot);
    }
    if (s->foreach || s->foreach_list)
        add(b, ", foreach");
    if (s->when)
        add(b, ", when");
}

/* ---- Mermaid ------------------------------------------------------------------------------- */

static void mermaid_scope(buf *b, const cbx__flow_step *steps, size_t n, const char *parent,
                          int indent)
{
    char id[256];
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        node_id(id, sizeof id, parent, i);
        if (clustered(s)) {
            add(b, "%*ssubgraph %s[\"", indent, "", id);
            add_text(b, s->name, 0);
            add(b, " (");
            add_kind(b, s, 0);
            add(b, ")\"]\n");
            size_t cn;
            const cbx__flow_step *cs = inner_steps(s, &cn);
            mermaid_scope(b, cs, cn, id, indent + 4);
            add(b, "%*send\n", indent, "");
        } else {
            add(b, "%*s%s[\"", indent, "", id);
            add_text(b, s->name, 0);
            add(b, "<br/>");
            add_kind(b, s, 0);
            add(b, "\"]\n");
        }
    }
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        for (size_t k = 0; k < s->ndeps; k++)
            add(b, "%*s%s_%zu --> %s_%zu\n", indent, "", parent, s->deps[k], parent, i);
    }
}

/* ---- DOT ----------------------------------------------------------------------------------- */

/* The node an edge to or from step i of a scope attaches to: itself, or inside its cluster. */
static void dot_anchor(char *out, size_t len, const cbx__flow_step *steps, const char *parent,
                       size_t i)
{
    char id[256];
    node_id(id, sizeof id, parent, i);
    const cbx__flow_step *s = &steps[i];
    while (clustered(s)) {
        size_t cn;
        const cbx__flow_step *cs = inner_steps(s, &cn);
        char inner[256];
        node_id(inner, sizeof inner, id, 0);
        textf(id, sizeof id, "%s", inner);
        s = &cs[0];
    }
    textf(out, len, "%s", id);
}

static void dot_scope(buf *b, const cbx__flow_step *steps, size_t n, const char *parent, int indent)
{
    char id[256], from[256], to[256];
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        node_id(id, sizeof id, parent, i);
        if (clustered(s)) {
            add(b, "%*ssubgraph cluster_%s {\n%*slabel=\"", indent, "", id, indent + 4, "");
            add_text(b, s->name, 1);
            add(b, " (");
            add_kind(b, s, 1);
            add(b, ")\";\n");
            size_t cn;
            const cbx__flow_step *cs = inner_steps(s, &cn);
            dot_scope(b, cs, cn, id, indent + 4);
            add(b, "%*s}\n", indent, "");
        } else {
            add(b, "%*s%s [label=\"", indent, "", id);
            add_text(b, s->name, 1);
            add(b, "\\n");
            add_kind(b, s, 1);
            add(b, "\"];\n");
        }
    }
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        for (size_t k = 0; k < s->ndeps; k++) {
            size_t d = s->deps[k];
            dot_anchor(from, sizeof from, steps, parent, d);
            dot_anchor(to, sizeof to, steps, parent, i);
            add(b, "%*s%s -> %s", indent, "", from, to);
            int attrs = clustered(&steps[d]) || clustered(s);
            if (attrs) {
                add(b, " [");
                if (clustered(&steps[d]))
                    add(b, "ltail=cluster_%s_%zu%s", parent, d, clustered(s) ? ", " : "");
                if (clustered(s))
                    add(b, "lhead=cluster_%s_%zu", parent, i);
                add(b, "]");
            }
            add(b, ";\n");
        }
    }
}

char *cbx_flow_graph(const cbx_flow *f, const char *format)
{
    if (!f || !format)
        return NULL;
    buf b = {0};
    if (strcmp(format, "mermaid") == 0) {
        add(&b, "flowchart TD\n");
        mermaid_scope(&b, f->steps, f->nsteps, "n", 4);
    } else if (strcmp(format, "dot") == 0) {
        add(&b, "digraph \"");
        add_text(&b, f->name ? f->name : "flow", 1);
        add(&b, "\" {\n    compound=true;\n    rankdir=TB;\n    node [shape=box];\n");
        dot_scope(&b, f->steps, f->nsteps, "n", 4);
        add(&b, "}\n");
    } else {
        return NULL;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
