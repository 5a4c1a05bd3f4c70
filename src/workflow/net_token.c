/* A run's tokens: the table by id, the list of each place, the queue of tokens to look at, and
 * each token's history. */
#include "workflow/net_internal.h"

#include "core/text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t cbx__wf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int cbx__wf_textf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n;
}

static size_t slot_of(const char *id, size_t cap)
{
    return (size_t)cbx__fnv1a(CBX__FNV_OFFSET, id, strlen(id)) & (cap - 1);
}

wf_token *cbx__wf_token_find(const cbx_workflow_run *r, const char *id)
{
    if (!r->tabcap || !id)
        return NULL;
    for (size_t h = slot_of(id, r->tabcap);; h = (h + 1) & (r->tabcap - 1)) {
        wf_token *t = r->tab[h];
        if (!t)
            return NULL;
        if (strcmp(t->id, id) == 0)
            return t;
    }
}

int cbx__wf_token_insert(cbx_workflow_run *r, wf_token *t)
{
    if ((r->ntok + 1) * 2 > r->tabcap) {
        size_t ncap = r->tabcap ? r->tabcap * 2 : 64;
        wf_token **nt = calloc(ncap, sizeof *nt);
        if (!nt)
            return -ENOMEM;
        for (size_t i = 0; i < r->tabcap; i++)
            if (r->tab[i]) {
                size_t h = slot_of(r->tab[i]->id, ncap);
                while (nt[h])
                    h = (h + 1) & (ncap - 1);
                nt[h] = r->tab[i];
            }
        free(r->tab);
        r->tab = nt;
        r->tabcap = ncap;
    }
    size_t h = slot_of(t->id, r->tabcap);
    while (r->tab[h]) {
        if (strcmp(r->tab[h]->id, t->id) == 0)
            return -EEXIST;
        h = (h + 1) & (r->tabcap - 1);
    }
    r->tab[h] = t;
    r->ntok++;
    return 0;
}

void cbx__wf_token_free(wf_token *t)
{
    if (!t)
        return;
    free(t->id);
    free(t->family);
    json_decref(t->data);
    free(t->tried);
    for (wf_signal *s = t->signals, *n; s; s = n) {
        n = s->next;
        free(s->name);
        json_decref(s->data);
        free(s);
    }
    for (wf_hist *h = t->hist, *n; h; h = n) {
        n = h->next;
        free(h);
    }
    free(t->why);
    free(t);
}

void cbx__wf_place_put(cbx_workflow_run *r, wf_token *t, size_t place)
{
    wf_place_list *l = &r->at[place];
    t->place = place;
    t->prev = l->tail;
    t->next = NULL;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
    l->n++;
}

void cbx__wf_place_take(cbx_workflow_run *r, wf_token *t)
{
    wf_place_list *l = &r->at[t->place];
    if (t->prev)
        t->prev->next = t->next;
    else
        l->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->tail = t->prev;
    t->prev = t->next = NULL;
    l->n--;
}

void cbx__wf_hist(wf_token *t, uint64_t ms, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    wf_hist *h = malloc(sizeof *h + len + 1);
    if (!h)
        return;
    h->ms = ms;
    h->next = NULL;
    memcpy(h->text, line, len);
    h->text[len] = 0;
    if (t->hist_tail)
        t->hist_tail->next = h;
    else
        t->hist = h;
    t->hist_tail = h;
}

void cbx__wf_enqueue(cbx_workflow_run *r, wf_token *t)
{
    if (t->queued || t->life != WF_TOK_ACTIVE)
        return;
    t->queued = 1;
    t->qnext = NULL;
    if (r->qtail)
        r->qtail->qnext = t;
    else
        r->qhead = t;
    r->qtail = t;
}

int cbx__wf_merge(json_t *dst, const json_t *src)
{
    if (!json_is_object(src))
        return 0;
    return json_object_update(dst, (json_t *)src) == 0 ? 0 : -ENOMEM;
}
