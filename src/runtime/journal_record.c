/* JSON as the journal writes it (secrets masked, cut to the record cap), for the records other
 * modules write through cbx_journal_write_db: one redaction path for every record kind. */
#include "runtime/journal_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cbx_journal_encode(cbx_journal *j, const json_t *v, char **text, size_t *len, int *truncated,
                       cbx_err *err)
{
    if (text)
        *text = NULL;
    if (len)
        *len = 0;
    if (truncated)
        *truncated = 0;
    if (!j || !text)
        return cbx_err_set(err, -EINVAL, "cbx_journal_encode: no journal or no text");
    if (!v)
        return 0;
    /* the rules and the cap are fixed at open: no lock needed */
    cbx__strbuf own = {0}, *b = cbx__journal_scratch();
    if (!b)
        b = &own;
    int r = cbx__redact_dump_capped(&j->rules, v, j->max_record_bytes, b, truncated);
    char *p = r == 0 ? malloc(b->len + 1) : NULL;
    if (p) {
        memcpy(p, b->p, b->len);
        p[b->len] = '\0';
        *text = p;
        if (len)
            *len = b->len;
    } else if (r == 0) {
        r = -ENOMEM;
    }
    if (b == &own)
        free(own.p);
    else
        cbx__journal_scratch_done(b);
    if (r == -ELOOP)
        return cbx_err_set(err, CBX_EJOURNAL, "journal %s: a value nested too deep (a cycle?)",
                           j->path);
    return r ? cbx_err_set(err, -ENOMEM, "out of memory") : 0;
}
