/* An execution's context as its executor sees it: flow run id, step, metadata and a temporary
 * directory of its own. */
#define _GNU_SOURCE /* nftw's FTW_DEPTH, FTW_PHYS */
#include "runtime/runtime_internal.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cbx__exec_ctx_new(const cbx_request *req, cbx__exec_ctx **out)
{
    *out = NULL;
    int mode = req->tmpdir == CBX_TMPDIR_MAKE || req->tmpdir == CBX_TMPDIR_KEEP_ON_FAILURE
                   ? req->tmpdir
                   : CBX_TMPDIR_NONE;
    if (!req->run_id && !req->step && !req->metadata && !mode)
        return 0;
    cbx__exec_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    atomic_init(&c->refs, 1);
    c->tmpdir_mode = mode;
    c->run_id = req->run_id ? strdup(req->run_id) : NULL;
    c->step = req->step ? strdup(req->step) : NULL;
    c->metadata = req->metadata ? json_incref((json_t *)req->metadata) : NULL;
    if ((req->run_id && !c->run_id) || (req->step && !c->step)) {
        cbx__exec_ctx_unref(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

cbx__exec_ctx *cbx__exec_ctx_ref(cbx__exec_ctx *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void cbx__exec_ctx_unref(cbx__exec_ctx *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    free(c->run_id);
    free(c->step);
    free(c->tmpdir);
    json_decref(c->metadata);
    free(c);
}

int cbx__exec_ctx_make_tmpdir(cbx__exec_ctx *c, const char *id, char *why, size_t len)
{
    if (!c || !c->tmpdir_mode || c->tmpdir)
        return 0;
    const char *root = getenv("TMPDIR");
    if (!root || !root[0])
        root = "/tmp";
    size_t n = strlen(root) + strlen(id) + 16;
    char *path = malloc(n);
    if (!path) {
        snprintf(why, len, "out of memory");
        return -ENOMEM;
    }
    snprintf(path, n, "%s/cbx-%s-XXXXXX", root, id);
    if (!mkdtemp(path)) { /* mode 0700 */
        int e = errno;
        snprintf(why, len, "cannot make the temporary directory under %s: %s", root, strerror(e));
        free(path);
        return -e;
    }
    c->tmpdir = path;
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0; /* go on whatever fails: remove what can be removed */
}

int cbx__exec_ctx_end_tmpdir(cbx__exec_ctx *c, int succeeded)
{
    if (!c || !c->tmpdir)
        return 0;
    if (!succeeded && c->tmpdir_mode == CBX_TMPDIR_KEEP_ON_FAILURE)
        return 1;
    nftw(c->tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
