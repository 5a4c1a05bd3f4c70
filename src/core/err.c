/* Error codes and the caller-owned detail struct. */
#include "cbx/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *cbx_strerror(int code)
{
    if (code == 0)
        return "success";
    switch (code) {
#define CBX__ERR_STR(name, val, desc)                                                              \
    case CBX_##name:                                                                               \
        return desc;
        CBX_ERRNO_MAP(CBX__ERR_STR)
#undef CBX__ERR_STR
    default:
        break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code); /* glibc returns static strings for known errno values */
    return "unknown error";
}

const char *cbx_err_name(int code)
{
    switch (code) {
#define CBX__ERR_NAME(name, val, desc)                                                             \
    case CBX_##name:                                                                               \
        return "CBX_" #name;
        CBX_ERRNO_MAP(CBX__ERR_NAME)
#undef CBX__ERR_NAME
    case 0:
        return "OK";
    case -ENOMEM:
        return "ENOMEM";
    case -EINVAL:
        return "EINVAL";
    case -ENOENT:
        return "ENOENT";
    case -EAGAIN:
        return "EAGAIN";
    default:
        return "UNKNOWN";
    }
}

void cbx_err_clear(cbx_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->line = 0;
    err->col = 0;
    err->where[0] = '\0';
    err->msg[0] = '\0';
}

static void err_vset(cbx_err *err, int code, const char *fmt, va_list ap)
{
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int cbx_err_set(cbx_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    cbx_err_clear(err);
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int cbx_err_set_at(cbx_err *err, int code, const char *where, int line, int col, const char *fmt,
                   ...)
{
    if (!err)
        return code;
    cbx_err_clear(err);
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    err->line = line;
    err->col = col;
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *cbx_err_format(const cbx_err *err, char *buf, size_t len)
{
    if (!buf || len == 0)
        return buf;
    if (!err) {
        snprintf(buf, len, "no error");
        return buf;
    }
    const char *msg = err->msg[0] ? err->msg : cbx_strerror(err->code);
    if (err->where[0] && err->line > 0)
        snprintf(buf, len, "%s:%d:%d: %s", err->where, err->line, err->col, msg);
    else if (err->where[0])
        snprintf(buf, len, "%s: %s", err->where, msg);
    else
        snprintf(buf, len, "%s", msg);
    return buf;
}
