/* cbx/diag.h - a list of problems, for checks that report everything at once.
 *
 * Validation of executor parameters (and later of flow files) does not stop at the first
 * problem: each one is appended as a cbx_err (code, message, and where: a parameter path such as
 * "headers.Authorization" or a file with line and column).
 */
#ifndef CBX_DIAG_H
#define CBX_DIAG_H

#include <stddef.h>

#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_diag {
    size_t n; /* problems held */
    size_t cap;
    cbx_err *items; /* owned; release with cbx_diag_clear */
} cbx_diag;

/* Append a problem (copied). Returns code, so that `return cbx_diag_add(...)` reads well;
 * when memory runs out the problem is dropped. */
int cbx_diag_add(cbx_diag *d, int code, const char *where, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Append a cbx_err as it is. */
void cbx_diag_push(cbx_diag *d, const cbx_err *e);

/* Release the items and zero *d. NULL is accepted. */
void cbx_diag_clear(cbx_diag *d);

/* The first problem as a single cbx_err (with "(and N more)" appended), for callers that report
 * one line; no-op when d is empty. Returns its code, or 0. */
int cbx_diag_first(const cbx_diag *d, cbx_err *err);

#ifdef __cplusplus
}
#endif
#endif
