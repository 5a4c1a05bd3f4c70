/* cbx/err.h - error codes and the caller-owned error detail.
 *
 * Every fallible libcbx function returns int: 0 on success, or a negative code. A code is
 * either -errno passed through from the operating system (for example -ENOMEM) or one of
 * cbx's own codes below, which live far below any errno value. Codes are never renumbered.
 *
 * Detail goes into an optional caller-owned cbx_err: pass NULL when the code alone is
 * enough. The library never allocates for error detail and never prints it.
 */
#ifndef CBX_ERR_H
#define CBX_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, description). Values are stable: append, never reuse. */
#define CBX_ERRNO_MAP(X)                                                                           \
    X(EINVAL_CONFIG, -10001, "invalid configuration")                                              \
    X(EPARSE, -10002, "cannot parse input")                                                        \
    X(EUNKNOWN_KEY, -10003, "unknown configuration key")                                           \
    X(ECIRCUIT_OPEN, -10004, "circuit breaker is open")                                            \
    X(EHALF_OPEN_FULL, -10005, "circuit breaker is half-open and every probe slot is taken")       \
    X(EFORCED_OPEN, -10006, "circuit breaker is forced open")                                      \
    X(ERATE_LIMITED, -10007, "rate limit exceeded")                                                \
    X(EBULKHEAD_FULL, -10008, "bulkhead is full")                                                  \
    X(EQUEUE_TIMEOUT, -10009, "timed out waiting in the bulkhead queue")                           \
    X(ETIMEDOUT, -10010, "timed out")                                                              \
    X(ECANCELLED, -10011, "cancelled")                                                             \
    X(ERETRY_EXHAUSTED, -10012, "retries exhausted")                                               \
    X(EBUDGET_EXHAUSTED, -10013, "retry budget exhausted")                                         \
    X(EFAILED, -10014, "the work failed")                                                          \
    X(ENO_FALLBACK, -10015, "no fallback value available")                                         \
    X(ESTALE_PERMIT, -10016, "permit does not belong to the current breaker state")                \
    X(EABI, -10017, "ABI version mismatch")                                                        \
    X(EEXISTS, -10018, "already exists")                                                           \
    X(EBUILTIN, -10019, "built-in executor types cannot be removed")                               \
    X(EPLUGIN, -10020, "cannot load plugin")                                                       \
    X(EUNKNOWN_TYPE, -10021, "unknown executor type")                                              \
    X(EQUEUE_FULL, -10022, "the runtime's queue is full")                                          \
    X(EJOURNAL, -10023, "journal error")                                                           \
    X(ESANDBOX, -10024, "refused by the sandbox")

typedef enum cbx_errno {
#define CBX__ERR_ENUM(name, val, desc) CBX_##name = (val),
    CBX_ERRNO_MAP(CBX__ERR_ENUM)
#undef CBX__ERR_ENUM
} cbx_errno;

/* Human-readable text for a code: a cbx code, a negative errno, or 0 ("success").
 * The returned string is static; never free it. Unknown codes give "unknown error". */
const char *cbx_strerror(int code);

/* Symbolic name of a code ("CBX_ECIRCUIT_OPEN", "ENOMEM"), static; "UNKNOWN" if unknown. */
const char *cbx_err_name(int code);

/* Detail of a failure, owned by the caller (usually on the stack). */
typedef struct cbx_err {
    int code;        /* the negative code that was also returned */
    int line;        /* 1-based line of a config error, 0 when not applicable */
    int col;         /* 1-based column, 0 when not applicable */
    char where[256]; /* the file, key or parameter path at fault, "" when none */
    char msg[512];   /* one line, no trailing newline */
} cbx_err;

/* Clear *err to "no error". NULL is accepted. */
void cbx_err_clear(cbx_err *err);

/* Fill *err (if not NULL) with code and a printf-style message; returns code so that
 * `return cbx_err_set(err, CBX_EPARSE, "...")` reads naturally. */
int cbx_err_set(cbx_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* As cbx_err_set, and also record where: a key path such as "retry.backoff" (line and col
 * 0) or a file with its position. */
int cbx_err_set_at(cbx_err *err, int code, const char *where, int line, int col, const char *fmt,
                   ...) __attribute__((format(printf, 6, 7)));

/* Format "where:line:col: message" (the parts that are set) into buf; returns buf. */
const char *cbx_err_format(const cbx_err *err, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
