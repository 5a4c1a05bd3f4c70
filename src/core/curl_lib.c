/* libcurl through dlopen, on the http executor's first use (see core/curl_lib.h). */
#include "core/curl_lib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#ifndef CBX_LIBCURL_SONAME
#define CBX_LIBCURL_SONAME "libcurl.so.4"
#endif

cbx__curl_api cbx__curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_rc;
static char load_why[256];

static void load(void)
{
    void *h = dlopen(CBX_LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(load_why, sizeof load_why, "%s", why ? why : CBX_LIBCURL_SONAME ": not found");
        load_rc = CBX_EPLUGIN;
        return;
    }
    cbx__curl_api api;
    void *sym;
#define CBX__CURL_SYM(name)                                                                        \
    if ((sym = dlsym(h, "curl_" #name)) == NULL) {                                                 \
        snprintf(load_why, sizeof load_why, "%s: no symbol curl_%s", CBX_LIBCURL_SONAME, #name);   \
        load_rc = CBX_EPLUGIN;                                                                     \
        return; /* h stays loaded: harmless, and dlclose could run curl's destructors early */     \
    }                                                                                              \
    memcpy(&api.name, &sym, sizeof api.name); /* object to function pointer, as POSIX allows */
    CBX__CURL_FUNCS(CBX__CURL_SYM)
#undef CBX__CURL_SYM
    cbx__curl = api;
    load_rc = 0;
}

int cbx__curl_load(cbx_err *err)
{
    pthread_once(&load_once, load);
    if (load_rc < 0)
        return cbx_err_set(err, load_rc, "http: cannot load libcurl: %s", load_why);
    return 0;
}
