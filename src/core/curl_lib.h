/* libcurl, loaded on first use (by the http-speaking executors and the span exporter) rather than
 * when the program starts.
 *
 * libcurl brings some thirty shared libraries with it (TLS, SSH, LDAP, Kerberos, IDN, ...), and
 * loading and relocating them at every start cost a `cbx exec -- true` most of its time. So
 * libcbx does not link libcurl: cbx__curl_load dlopens it (CBX_LIBCURL_SONAME, libcurl.so.4)
 * the first time an http request is validated or started, and looks up the functions the
 * executor calls into the table cbx__curl. The executor's files keep calling curl_easy_setopt()
 * and the rest by their own names: this header, included after <curl/curl.h>, turns each such
 * name into the table's entry. curl's compile-time checks of setopt/getinfo argument types are
 * given up for that (they are macros of the same names).
 *
 * A program that links libcurl itself gets the same copy back from dlopen (one global state).
 * The library is never unloaded. Thread-safe: the load happens once (pthread_once).
 */
#ifndef CBX_CORE_CURL_LIB_H
#define CBX_CORE_CURL_LIB_H

#include <curl/curl.h>

#include "cbx/err.h"

/* X(name): the function curl_<name> that the executor calls. */
#define CBX__CURL_FUNCS(X)                                                                         \
    X(global_init)                                                                                 \
    X(getdate)                                                                                     \
    X(free)                                                                                        \
    X(slist_append)                                                                                \
    X(slist_free_all)                                                                              \
    X(easy_init)                                                                                   \
    X(easy_reset)                                                                                  \
    X(easy_cleanup)                                                                                \
    X(easy_setopt)                                                                                 \
    X(easy_getinfo)                                                                                \
    X(easy_perform)                                                                                \
    X(easy_strerror)                                                                               \
    X(multi_init)                                                                                  \
    X(multi_cleanup)                                                                               \
    X(multi_setopt)                                                                                \
    X(multi_add_handle)                                                                            \
    X(multi_remove_handle)                                                                         \
    X(multi_assign)                                                                                \
    X(multi_socket_action)                                                                         \
    X(multi_info_read)                                                                             \
    X(url)                                                                                         \
    X(url_set)                                                                                     \
    X(url_get)                                                                                     \
    X(url_cleanup)                                                                                 \
    X(url_strerror)

typedef struct cbx__curl_api {
#define CBX__CURL_FIELD(name) __typeof__(curl_##name) *name;
    CBX__CURL_FUNCS(CBX__CURL_FIELD)
#undef CBX__CURL_FIELD
} cbx__curl_api;

/* Filled by cbx__curl_load; read only after it has returned 0. */
extern cbx__curl_api cbx__curl;

/* Load libcurl and look up every function above, once per process; later calls return the
 * first call's answer at once. 0, or CBX_EPLUGIN with dlopen's or dlsym's reason in *err
 * (err may be NULL). */
int cbx__curl_load(cbx_err *err);

/* From here on, curl_xxx(...) in the including file calls cbx__curl.xxx(...). */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init         cbx__curl.global_init
#define curl_getdate             cbx__curl.getdate
#define curl_free                cbx__curl.free
#define curl_slist_append        cbx__curl.slist_append
#define curl_slist_free_all      cbx__curl.slist_free_all
#define curl_easy_init           cbx__curl.easy_init
#define curl_easy_reset          cbx__curl.easy_reset
#define curl_easy_cleanup        cbx__curl.easy_cleanup
#define curl_easy_setopt         cbx__curl.easy_setopt
#define curl_easy_getinfo        cbx__curl.easy_getinfo
#define curl_easy_perform        cbx__curl.easy_perform
#define curl_easy_strerror       cbx__curl.easy_strerror
#define curl_multi_init          cbx__curl.multi_init
#define curl_multi_cleanup       cbx__curl.multi_cleanup
#define curl_multi_setopt        cbx__curl.multi_setopt
#define curl_multi_add_handle    cbx__curl.multi_add_handle
#define curl_multi_remove_handle cbx__curl.multi_remove_handle
#define curl_multi_assign        cbx__curl.multi_assign
#define curl_multi_socket_action cbx__curl.multi_socket_action
#define curl_multi_info_read     cbx__curl.multi_info_read
#define curl_url                 cbx__curl.url
#define curl_url_set             cbx__curl.url_set
#define curl_url_get             cbx__curl.url_get
#define curl_url_cleanup         cbx__curl.url_cleanup
#define curl_url_strerror        cbx__curl.url_strerror

#endif
