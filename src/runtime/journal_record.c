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
    cbx__jenc x;
    int r = cbx__journal_enc(j, &x, v, truncated);
    char *p = r == 0 ? malloc(x.b->len + 1) : NULL;
    if (p) {
        memcpy(p, x.b->p, x.b->len);
        p[x.b->len] = '\0';
        *text = p;
        if (len)
            *len = x.b->len;
    } else if (r == 0) {
        r = -ENOMEM;
    }
    cbx__journal_enc_done(&x);
    if (r == -ELOOP)
        return cbx_err_set(err, CBX_EJOURNAL, "journal %s: a value nested too deep (a cycle?)",
                           j->path);
    return r ? cbx_err_set(err, -ENOMEM, "out of memory") : 0;
}
