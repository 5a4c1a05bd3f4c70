/* libpq through dlopen, on the postgres executor's first use (see pq_lib.h). */
#include "executors/db/pq_lib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#ifndef CBX_LIBPQ_SONAME
#define CBX_LIBPQ_SONAME "libpq.so.5"
#endif

cbx__pq_api cbx__pq;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_rc;
static char load_why[256];

static void load(void)
{
    void *h = dlopen(CBX_LIBPQ_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(load_why, sizeof load_why, "%s (install libpq5)",
                 why ? why : CBX_LIBPQ_SONAME ": not found");
        load_rc = CBX_EPLUGIN;
        return;
    }
    cbx__pq_api api;
    void *sym;
#define CBX__PQ_SYM(name)                                                                          \
    if ((sym = dlsym(h, "PQ" #name)) == NULL) {                                                    \
        snprintf(load_why, sizeof load_why, "%s: no symbol PQ%s", CBX_LIBPQ_SONAME, #name);        \
        load_rc = CBX_EPLUGIN;                                                                     \
        return;                                                                                    \
    }                                                                                              \
    memcpy(&api.name, &sym, sizeof api.name);
    CBX__PQ_FUNCS(CBX__PQ_SYM)
#undef CBX__PQ_SYM
    cbx__pq = api;
    load_rc = 0;
}

int cbx__pq_load(cbx_err *err)
{
    pthread_once(&load_once, load);
    if (load_rc < 0)
        return cbx_err_set(err, load_rc, "postgres: cannot load libpq: %s", load_why);
    return 0;
}
