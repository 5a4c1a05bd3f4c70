/* The structure of a workflow, with guards ignored: unreachable places, dead transitions, places
 * with no way out, and the reachable markings where tokens are stuck, each with a firing
 * sequence that leads there. */
#include "workflow/net_internal.h"

#include "core/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COUNT   250 /* tokens in one place beyond which the net is taken as unbounded */
#define MAX_REPORTS 10

typedef struct explorer {
    const cbx_workflow *w;
    size_t np;
    uint8_t *marks; /* nm markings of np counts each */
    size_t *parent; /* the marking it was reached from */
    size_t *via;    /* by which transition */
    size_t nm, cap;
    size_t *slots; /* hash set of marking indexes + 1 */
    size_t nslots;
} explorer;

static uint64_t hash_of(const uint8_t *m, size_t np)
{
    return cbx__fnv1a(CBX__FNV_OFFSET, m, np);
}

static int grow(explorer *E)
{
    size_t ncap = E->cap ? E->cap * 2 : 256;
    uint8_t *m = realloc(E->marks, ncap * (E->np ? E->np : 1));
    if (!m)
        return -ENOMEM;
    E->marks = m;
    size_t *p = realloc(E->parent, ncap * sizeof *p);
    if (!p)
        return -ENOMEM;
    E->parent = p;
    size_t *v = realloc(E->via, ncap * sizeof *v);
    if (!v)
        return -ENOMEM;
    E->via = v;
    E->cap = ncap;
    /* rehash at half load */
    size_t ns = ncap * 2;
    size_t *slots = calloc(ns, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < E->nm; i++) {
        size_t h = (size_t)hash_of(E->marks + i * E->np, E->np) & (ns - 1);
        while (slots[h])
            h = (h + 1) & (ns - 1);
        slots[h] = i + 1;
    }
    free(E->slots);
    E->slots = slots;
    E->nslots = ns;
    return 0;
}

/* Add marking m (reached from parent by via) unless known; 1 when added, 0 when known. */
static int add(explorer *E, const uint8_t *m, size_t parent, size_t via)
{
    if (E->nm == E->cap && grow(E) != 0)
        return -ENOMEM;
    size_t h = (size_t)hash_of(m, E->np) & (E->nslots - 1);
    while (E->slots[h]) {
        if (memcmp(E->marks + (E->slots[h] - 1) * E->np, m, E->np) == 0)
            return 0;
        h = (h + 1) & (E->nslots - 1);
    }
    memcpy(E->marks + E->nm * E->np, m, E->np);
    E->parent[E->nm] = parent;
    E->via[E->nm] = via;
    E->slots[h] = ++E->nm;
    return 1;
}

static int enabled(const cbx__wf_trans *t, const uint8_t *m)
{
    for (size_t k = 0; k < t->nfrom; k++)
        if (!m[t->from[k]])
            return 0;
    return t->nfrom > 0;
}

/* "{a: 1, b: 2}" */
static void marking_text(const cbx_workflow *w, const uint8_t *m, char *buf, size_t len)
{
    size_t used = (size_t)cbx__wf_textf(buf, len, "{");
    int first = 1;
    for (size_t p = 0; p < w->nplaces && used < len; p++)
        if (m[p]) {
            used += (size_t)cbx__wf_textf(buf + used, len - used, "%s%s: %u", first ? "" : ", ",
                                          w->places[p], m[p]);
            first = 0;
        }
    if (used < len)
        cbx__wf_textf(buf + used, len - used, "}");
}

static void sequence_text(const explorer *E, size_t i, char *buf, size_t len)
{
    size_t path[64], n = 0;
    for (size_t k = i; k != 0 && n < 64; k = E->parent[k])
        path[n++] = E->via[k];
    size_t used = 0;
    buf[0] = 0;
    if (n == 0)
        cbx__wf_textf(buf, len, "(the start)");
    if (n == 64)
        used = (size_t)cbx__wf_textf(buf, len, "... ");
    for (size_t k = n; k > 0 && used < len; k--)
        used += (size_t)cbx__wf_textf(buf + used, len - used, "%s%s", k == n ? "" : ", ",
                                      E->w->trans[path[k - 1]].name);
}

static int explore(const cbx_workflow *w, size_t max_markings, cbx_diag *diag, const char *file)
{
    explorer E = {.w = w, .np = w->nplaces};
    int problems = 0, r = 0;
    uint8_t *m = calloc(w->nplaces ? w->nplaces : 1, 1);
    if (!m)
        return -ENOMEM;
    for (size_t p = 0; p < w->nplaces; p++)
        m[p] = w->start[p];
    if ((r = add(&E, m, 0, 0)) < 0)
        goto out;
    int bounded = 1;
    size_t reports = 0;
    for (size_t i = 0; i < E.nm; i++) {
        int any = 0;
        for (size_t t = 0; t < w->ntrans; t++) {
            const cbx__wf_trans *tr = &w->trans[t];
            memcpy(m, E.marks + i * E.np, E.np);
            if (!enabled(tr, m))
                continue;
            any = 1;
            for (size_t k = 0; k < tr->nfrom; k++)
                m[tr->from[k]]--;
            for (size_t k = 0; k < tr->nto; k++) {
                if (m[tr->to[k]] >= MAX_COUNT)
                    bounded = 0;
                else
                    m[tr->to[k]]++;
            }
            if (!bounded || E.nm >= max_markings) {
                bounded = 0;
                break;
            }
            if ((r = add(&E, m, i, t)) < 0)
                goto out;
        }
        if (!bounded)
            break;
        const uint8_t *cur = E.marks + i * E.np;
        size_t outside = (size_t)-1;
        for (size_t p = 0; p < w->nplaces; p++)
            if (cur[p] && !w->final[p] && outside == (size_t)-1)
                outside = p;
        if (!any && outside != (size_t)-1) {
            problems++;
            if (reports++ < MAX_REPORTS) {
                char mt[512], seq[1024];
                marking_text(w, cur, mt, sizeof mt);
                sequence_text(&E, i, seq, sizeof seq);
                cbx_diag_add(diag, CBX_EINVAL_CONFIG, file, w->pline[outside], w->pcol[outside],
                             "reachable stuck marking %s (guards ignored): no transition is "
                             "enabled and place '%s' is not final; firing sequence: %s",
                             mt, w->places[outside], seq);
            }
        }
    }
    if (!bounded)
        cbx_diag_add(diag, 0, file, 0, 0,
                     "note: more than %zu markings are reachable (or a place's tokens grow "
                     "without bound): stuck markings were not searched",
                     max_markings);
    r = problems;
out:
    free(m);
    free(E.marks);
    free(E.parent);
    free(E.via);
    free(E.slots);
    return r;
}

int cbx_workflow_check(const cbx_workflow *w, size_t max_markings, cbx_diag *diag)
{
    if (!w || !diag)
        return -EINVAL;
    const char *file = w->doc.file ? w->doc.file : "";
    int problems = 0;
    uint8_t *reach = calloc(w->nplaces + 1, 1);
    uint8_t *live = calloc(w->ntrans + 1, 1);
    if (!reach || !live) {
        free(reach);
        free(live);
        return -ENOMEM;
    }
    for (size_t p = 0; p < w->nplaces; p++)
        reach[p] = w->start[p];
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t t = 0; t < w->ntrans; t++) {
            const cbx__wf_trans *tr = &w->trans[t];
            if (live[t] || !tr->nfrom)
                continue;
            int ok = 1;
            for (size_t k = 0; k < tr->nfrom; k++)
                ok &= reach[tr->from[k]];
            if (!ok)
                continue;
            live[t] = 1;
            changed = 1;
            for (size_t k = 0; k < tr->nto; k++)
                reach[tr->to[k]] = 1;
        }
    }
    for (size_t p = 0; p < w->nplaces; p++) {
        if (!reach[p]) {
            problems++;
            cbx_diag_add(diag, CBX_EINVAL_CONFIG, file, w->pline[p], w->pcol[p],
                         "place '%s' is unreachable from the start places (guards ignored)",
                         w->places[p]);
        }
        if (!w->final[p] && w->nout_of[p] == 0) {
            problems++;
            cbx_diag_add(diag, CBX_EINVAL_CONFIG, file, w->pline[p], w->pcol[p],
                         "place '%s' is not final and no transition leaves it: a token there "
                         "is stuck",
                         w->places[p]);
        }
    }
    for (size_t t = 0; t < w->ntrans; t++) {
        const cbx__wf_trans *tr = &w->trans[t];
        if (live[t] || !tr->nfrom)
            continue;
        char missing[512];
        size_t used = 0;
        missing[0] = 0;
        for (size_t k = 0; k < tr->nfrom && used < sizeof missing; k++)
            if (!reach[tr->from[k]])
                used += (size_t)cbx__wf_textf(missing + used, sizeof missing - used, "%s'%s'",
                                              used ? ", " : "", w->places[tr->from[k]]);
        problems++;
        cbx_diag_add(diag, CBX_EINVAL_CONFIG, file, tr->line, tr->col,
                     "transition '%s' can never be enabled: no token can reach %s (guards "
                     "ignored)",
                     tr->name, missing);
    }
    free(reach);
    free(live);
    int r = explore(w, max_markings ? max_markings : 10000, diag, file);
    if (r < 0)
        return r;
    return problems + r;
}
