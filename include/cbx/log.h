/* cbx/log.h - the library's only way to say something: a callback the caller installs.
 *
 * libcbx never writes to a terminal. Without a callback, nothing is formatted at all: the
 * level check comes before any formatting.
 */
#ifndef CBX_LOG_H
#define CBX_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cbx_log_level {
    CBX_LOG_ERROR = 0,
    CBX_LOG_WARN = 1,
    CBX_LOG_INFO = 2,
    CBX_LOG_DEBUG = 3,
} cbx_log_level;

/* Receives one formatted line (no trailing newline), valid only during the call.
 * component is a short static name such as "breaker". May be called from any thread. */
typedef void (*cbx_log_fn)(cbx_log_level level, const char *component, const char *msg, void *ud);

/* Install (or with fn NULL remove) the process-wide log callback and its maximum level.
 * Thread-safe; takes effect for messages logged after it returns. */
void cbx_log_set(cbx_log_fn fn, cbx_log_level max_level, void *ud);

/* Name of a level ("error", "warn", "info", "debug"). */
const char *cbx_log_level_name(cbx_log_level level);

#ifdef __cplusplus
}
#endif
#endif
