/* Each thread's buffer to encode a record's JSON into, before the text is copied into the
 * record's own block (journal_queue.c) or an exact allocation (cbx_journal_encode): one
 * allocation a value, where a buffer of its own, grown and then trimmed to the text, made two or
 * three. */
#include "runtime/journal_internal.h"

#include <pthread.h>
#include <stdlib.h>

/* A buffer grown past this is let go after use rather than kept. */
#define SCRATCH_KEEP ((size_t)64 * 1024)

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;
static _Thread_local cbx__strbuf *mine;

static void scratch_free(void *p)
{
    cbx__strbuf *b = p;
    free(b->p);
    free(b);
}

static void scratch_key_make(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

static cbx__strbuf *scratch(void)
{
    if (mine)
        return mine;
    pthread_once(&scratch_once, scratch_key_make);
    cbx__strbuf *b = calloc(1, sizeof *b);
    if (b && scratch_key_ok && pthread_setspecific(scratch_key, b) == 0)
        return mine = b; /* freed by the key's destructor when the thread ends */
    free(b);
    return NULL;
}

static void scratch_done(cbx__strbuf *b)
{
    if (b->cap > SCRATCH_KEEP) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    b->len = 0;
}

void cbx__journal_enc_done(cbx__jenc *x)
{
    if (x->b == &x->own)
        free(x->own.p);
    else if (x->b)
        scratch_done(x->b);
    x->b = NULL;
}

int cbx__journal_enc(const cbx_journal *j, cbx__jenc *x, const json_t *v, int *truncated)
{
    x->own = (cbx__strbuf){0};
    x->b = NULL;
    if (!v)
        return 0;
    if (!(x->b = scratch()))
        x->b = &x->own;
    /* the rules and the cap are fixed at open: no lock needed */
    int r = cbx__redact_dump_capped(&j->rules, v, j->max_record_bytes, x->b, truncated);
    if (r != 0)
        cbx__journal_enc_done(x);
    return r;
}
