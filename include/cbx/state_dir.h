/* cbx/state_dir.h - the state directory (the journal, the host-wide breaker store), and the
 * rules it must meet.
 *
 * The state directory is $CBX_STATE_DIR, else $XDG_STATE_HOME/cbx, else ~/.local/state/cbx;
 * missing directories are made 0700. Whoever can write into it can plant files (a symbolic
 * link named `breakers` or `journal.db`) for cbx to open, so it must be a directory owned by
 * this user (the effective uid) that neither its group nor others can write. cbx_state_dir
 * (cbx/journal.h) applies these rules too and answers -EPERM when they fail; the files in it
 * are opened without following symbolic links.
 */
#ifndef CBX_STATE_DIR_H
#define CBX_STATE_DIR_H

#include <stddef.h>

#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether dir may be the state directory: 0; -EPERM (owned by another user, or writable by its
 * group or others), -ENOTDIR, or -errno from stat; err (optional) gets a message naming dir
 * and what to do. Symbolic links in dir are followed: what counts is the directory itself. */
int cbx_state_dir_check(const char *dir, cbx_err *err);

/* As cbx_state_dir, with a message in err (optional) when it fails. */
int cbx_state_dir_get(char *buf, size_t len, cbx_err *err);

/* Only where the state directory is (the same choice as cbx_state_dir), into buf: nothing is
 * made and the rules are not checked. For reading another user's state (a read-only journal):
 * what is only read cannot be planted to harm the reader. 0, -ENOENT, -ENAMETOOLONG. */
int cbx_state_dir_path(char *buf, size_t len, cbx_err *err);

#ifdef __cplusplus
}
#endif
#endif
