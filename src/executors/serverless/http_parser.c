/* libhttp_parser through dlopen, on the local Lambda backend's first use (see local.h): the
 * Runtime API's requests are parsed by it, and `cbx --version` never loads it. */
#include <dlfcn.h>
#include <http_parser.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "executors/serverless/local.h"

#ifndef CBX_LIBHTTP_PARSER_SONAME
#define CBX_LIBHTTP_PARSER_SONAME "libhttp_parser.so.2.9"
#endif

cbx__hp_api cbx__hp;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_rc;
static char load_why[256];

static int sym(void *h, const char *name, void *dst, size_t size)
{
    void *s = dlsym(h, name);
    if (!s) {
        snprintf(load_why, sizeof load_why, "%s: no symbol %s", CBX_LIBHTTP_PARSER_SONAME, name);
        return -1;
    }
    memcpy(dst, &s, size); /* object to function pointer, as POSIX allows */
    return 0;
}

static void load(void)
{
    void *h = dlopen(CBX_LIBHTTP_PARSER_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(load_why, sizeof load_why, "%s (install libhttp-parser2.9)",
                 why ? why : CBX_LIBHTTP_PARSER_SONAME ": not found");
        load_rc = CBX_EPLUGIN;
        return;
    }
    cbx__hp_api api;
    if (sym(h, "http_parser_init", &api.init, sizeof api.init) < 0 ||
        sym(h, "http_parser_settings_init", &api.settings_init, sizeof api.settings_init) < 0 ||
        sym(h, "http_parser_execute", &api.execute, sizeof api.execute) < 0 ||
        sym(h, "http_should_keep_alive", &api.should_keep_alive, sizeof api.should_keep_alive) <
            0 ||
        sym(h, "http_errno_description", &api.errno_description, sizeof api.errno_description) <
            0) {
        load_rc = CBX_EPLUGIN; /* h stays loaded: dlclose could run destructors early */
        return;
    }
    /* The struct's layout is the header's: the library must be the version it was built for. */
    unsigned long (*version)(void) = NULL;
    if (sym(h, "http_parser_version", &version, sizeof version) < 0) {
        load_rc = CBX_EPLUGIN;
        return;
    }
    unsigned long v = version();
    if ((v >> 16) != HTTP_PARSER_VERSION_MAJOR || ((v >> 8) & 255) != HTTP_PARSER_VERSION_MINOR) {
        snprintf(load_why, sizeof load_why, "%s is version %lu.%lu, built for %d.%d",
                 CBX_LIBHTTP_PARSER_SONAME, v >> 16, (v >> 8) & 255, HTTP_PARSER_VERSION_MAJOR,
                 HTTP_PARSER_VERSION_MINOR);
        load_rc = CBX_EPLUGIN;
        return;
    }
    cbx__hp = api;
    load_rc = 0;
}

int cbx__hp_load(cbx_err *err)
{
    pthread_once(&load_once, load);
    if (load_rc < 0)
        return cbx_err_set(err, load_rc, "serverless: cannot load libhttp_parser: %s", load_why);
    return 0;
}
