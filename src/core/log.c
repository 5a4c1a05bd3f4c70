/* The process-wide log callback. */
#include "cbx/log.h"

#include "core/log_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static cbx_log_fn log_fn;
static void *log_ud;
/* -1 when no callback: the level check in cbx__log_enabled is one relaxed load. */
static atomic_int log_max = -1;

void cbx_log_set(cbx_log_fn fn, cbx_log_level max_level, void *ud)
{
    pthread_mutex_lock(&log_mu);
    log_fn = fn;
    log_ud = ud;
    atomic_store(&log_max, fn ? (int)max_level : -1);
    pthread_mutex_unlock(&log_mu);
}

const char *cbx_log_level_name(cbx_log_level level)
{
    switch (level) {
    case CBX_LOG_ERROR:
        return "error";
    case CBX_LOG_WARN:
        return "warn";
    case CBX_LOG_INFO:
        return "info";
    case CBX_LOG_DEBUG:
        return "debug";
    }
    return "unknown";
}

int cbx__log_enabled(cbx_log_level level)
{
    return (int)level <= atomic_load_explicit(&log_max, memory_order_relaxed);
}

void cbx__log(cbx_log_level level, const char *component, const char *fmt, ...)
{
    if (!cbx__log_enabled(level))
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_mu);
    cbx_log_fn fn = log_fn;
    void *ud = log_ud;
    pthread_mutex_unlock(&log_mu);
    if (fn)
        fn(level, component, line, ud);
}
