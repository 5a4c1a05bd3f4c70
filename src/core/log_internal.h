/* Internal logging entry points: the level check happens before any formatting. */
#ifndef CBX_CORE_LOG_INTERNAL_H
#define CBX_CORE_LOG_INTERNAL_H

#include "cbx/log.h"

int cbx__log_enabled(cbx_log_level level);
void cbx__log(cbx_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CBX_LOG(level, component, ...)                                                             \
    do {                                                                                           \
        if (cbx__log_enabled(level))                                                               \
            cbx__log(level, component, __VA_ARGS__);                                               \
    } while (0)

#endif
