/* A flow's DAG as text: Mermaid (a flowchart) or Graphviz DOT. Steps are nodes labelled with
 * their name and executor; an edge goes from a step to each step that waits for it; composites
 * and sub-flows are subgraphs (DOT clusters) holding their own steps. */
#include "flow/flow_internal.h"
#include "core/strbuf.h"

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

/* Text for a label: Mermaid takes entities, DOT backslash escapes. */
static void add_text(cbx__buf *b, const char *s, int dot)
{
    for (; s && *s; s++) {
        char c = *s;
        if (dot && (c == '"' || c == '\\'))
            cbx__buf_printf(b, "\\%c", c);
        else if (dot && c == '\n')
            cbx__buf_printf(b, "\\n");
        else if (!dot && c == '"')
            cbx__buf_printf(b, "#quot;");
        else if (!dot && c == '<')
            cbx__buf_printf(b, "#lt;");
        else if (!dot && c == '>')
            cbx__buf_printf(b, "#gt;");
        else
            cbx__buf_printf(b, "%c", c);
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
static void add_kind(cbx__buf *b, const cbx__flow_step *s, int dot)
{
    if (s->subflow_path) {
        cbx__buf_printf(b, "flow ");
        const char *slash = strrchr(s->subflow_path, '/');
        add_text(b, slash ? slash + 1 : s->subflow_path, dot);
    } else if (s->nchildren) {
        cbx__buf_printf(b, "steps, %s", s->parallel ? "parallel" : "sequence");
    } else {
        add_text(b, s->executor ? s->executor : "?", dot);
    }
    if (s->foreach || s->foreach_list)
        cbx__buf_printf(b, ", foreach");
    if (s->when)
        cbx__buf_printf(b, ", when");
}

/* ---- Mermaid ------------------------------------------------------------------------------- */

static void mermaid_scope(cbx__buf *b, const cbx__flow_step *steps, size_t n, const char *parent,
                          int indent)
{
    char id[256];
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        node_id(id, sizeof id, parent, i);
        if (clustered(s)) {
            cbx__buf_printf(b, "%*ssubgraph %s[\"", indent, "", id);
            add_text(b, s->name, 0);
            cbx__buf_printf(b, " (");
            add_kind(b, s, 0);
            cbx__buf_printf(b, ")\"]\n");
            size_t cn;
            const cbx__flow_step *cs = inner_steps(s, &cn);
            mermaid_scope(b, cs, cn, id, indent + 4);
            cbx__buf_printf(b, "%*send\n", indent, "");
        } else {
            cbx__buf_printf(b, "%*s%s[\"", indent, "", id);
            add_text(b, s->name, 0);
            cbx__buf_printf(b, "<br/>");
            add_kind(b, s, 0);
            cbx__buf_printf(b, "\"]\n");
        }
    }
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        for (size_t k = 0; k < s->ndeps; k++)
            cbx__buf_printf(b, "%*s%s_%zu --> %s_%zu\n", indent, "", parent, s->deps[k], parent, i);
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

static void dot_scope(cbx__buf *b, const cbx__flow_step *steps, size_t n, const char *parent,
                      int indent)
{
    char id[256], from[256], to[256];
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        node_id(id, sizeof id, parent, i);
        if (clustered(s)) {
            cbx__buf_printf(b, "%*ssubgraph cluster_%s {\n%*slabel=\"", indent, "", id, indent + 4,
                            "");
            add_text(b, s->name, 1);
            cbx__buf_printf(b, " (");
            add_kind(b, s, 1);
            cbx__buf_printf(b, ")\";\n");
            size_t cn;
            const cbx__flow_step *cs = inner_steps(s, &cn);
            dot_scope(b, cs, cn, id, indent + 4);
            cbx__buf_printf(b, "%*s}\n", indent, "");
        } else {
            cbx__buf_printf(b, "%*s%s [label=\"", indent, "", id);
            add_text(b, s->name, 1);
            cbx__buf_printf(b, "\\n");
            add_kind(b, s, 1);
            cbx__buf_printf(b, "\"];\n");
        }
    }
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        for (size_t k = 0; k < s->ndeps; k++) {
            size_t d = s->deps[k];
            dot_anchor(from, sizeof from, steps, parent, d);
            dot_anchor(to, sizeof to, steps, parent, i);
            cbx__buf_printf(b, "%*s%s -> %s", indent, "", from, to);
            int attrs = clustered(&steps[d]) || clustered(s);
            if (attrs) {
                cbx__buf_printf(b, " [");
                if (clustered(&steps[d]))
                    cbx__buf_printf(b, "ltail=cluster_%s_%zu%s", parent, d,
                                    clustered(s) ? ", " : "");
                if (clustered(s))
                    cbx__buf_printf(b, "lhead=cluster_%s_%zu", parent, i);
                cbx__buf_printf(b, "]");
            }
            cbx__buf_printf(b, ";\n");
        }
    }
}

char *cbx_flow_graph(const cbx_flow *f, const char *format)
{
    if (!f || !format)
        return NULL;
    cbx__buf b = {0};
    if (strcmp(format, "mermaid") == 0) {
        cbx__buf_printf(&b, "flowchart TD\n");
        mermaid_scope(&b, f->steps, f->nsteps, "n", 4);
    } else if (strcmp(format, "dot") == 0) {
        cbx__buf_printf(&b, "digraph \"");
        add_text(&b, f->name ? f->name : "flow", 1);
        cbx__buf_printf(&b, "\" {\n    compound=true;\n    rankdir=TB;\n    node [shape=box];\n");
        dot_scope(&b, f->steps, f->nsteps, "n", 4);
        cbx__buf_printf(&b, "}\n");
    } else {
        return NULL;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
