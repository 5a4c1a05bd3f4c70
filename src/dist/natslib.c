/* libnats through dlopen, on the nats executor's first use (see natslib.h). */
#define CBX__NATSLIB_NO_MACROS
#include "dist/natslib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#ifndef CBX_LIBNATS_SONAME
#define CBX_LIBNATS_SONAME "libnats.so.3.4"
#endif

cbx__nats_api cbx__nats;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_rc;
static char load_why[256];

static void load(void)
{
    void *h = dlopen(CBX_LIBNATS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(load_why, sizeof load_why, "%s (install libnats3.4)",
                 why ? why : CBX_LIBNATS_SONAME ": not found");
        load_rc = CBX_EPLUGIN;
        return;
    }
    cbx__nats_api api;
    void *sym;
#define CBX__NATS_SYM(name)                                                                        \
    if ((sym = dlsym(h, #name)) == NULL) {                                                         \
        snprintf(load_why, sizeof load_why, "%s: no symbol %s", CBX_LIBNATS_SONAME, #name);        \
        load_rc = CBX_EPLUGIN;                                                                     \
        return; /* h stays loaded: dlclose could run the library's destructors early */            \
    }                                                                                              \
    memcpy(&api.name, &sym, sizeof api.name); /* object to function pointer, as POSIX allows */
    CBX__NATS_FUNCS(CBX__NATS_SYM)
#undef CBX__NATS_SYM
    cbx__nats = api;
    load_rc = 0;
}

int cbx__nats_load(cbx_err *err)
{
    pthread_once(&load_once, load);
    if (load_rc < 0)
        return cbx_err_set(err, load_rc, "nats: cannot load libnats: %s", load_why);
    return 0;
}

const char *cbx__nats_why(natsStatus s)
{
    natsStatus last = NATS_OK;
    const char *text = cbx__nats.nats_GetLastError(&last);
    if (text && *text && last == s)
        return text;
    return cbx__nats.natsStatus_GetText(s);
}
