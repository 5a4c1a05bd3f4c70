/* libcurl is loaded on the http executor's first use, not when a program linked with libcbx
 * starts: a runtime, a registry and other executors never map it; the first http request, made
 * through the public API, loads it and works. */
#define _GNU_SOURCE
#include "cbx/runtime.h"
#include "http_server_spawn.h"
#include <criterion/criterion.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static int find_curl(struct dl_phdr_info *info, size_t size, void *found)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libcurl"))
        *(int *)found = 1;
    return 0;
}

static int curl_mapped(void)
{
    int found = 0;
    dl_iterate_phdr(find_curl, &found);
    return found;
}

Test(http_lazy, libcurl_is_loaded_on_the_first_request, .timeout = 60)
{
    cr_assert_not(curl_mapped(), "libcurl is mapped before anything ran");

    pid_t pid;
    char why[256];
    int port = cbx_test_http_server_spawn(CBX_TEST_BIN_DIR "/http_server", &pid, why, sizeof why);
    cr_assert_gt(port, 0, "%s", why);

    cbx_runtime *rt;
    cbx_err err;
    cr_assert_eq(cbx_runtime_new(&rt, NULL, &err), 0, "%s", err.msg);
    /* another executor runs without it */
    json_t *p = json_pack("{s:[s,s]}", "argv", "true", "x");
    cbx_result r;
    cr_assert_eq(
        cbx_runtime_execute(rt, &(cbx_request){.executor = "command", .params = p}, &r, NULL), 0,
        "%s", r.error);
    cbx_result_clear(&r);
    json_decref(p);
    cr_assert_not(curl_mapped(), "libcurl is mapped after a command ran");

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
    p = json_pack("{s:s}", "url", url);
    cr_assert_eq(cbx_runtime_execute(rt, &(cbx_request){.executor = "http", .params = p}, &r, NULL),
                 0, "%s", r.error);
    cr_assert_eq(json_integer_value(json_object_get(r.outputs, "status")), 200);
    cbx_result_clear(&r);
    json_decref(p);
    cr_assert(curl_mapped(), "libcurl is not mapped after an http request");

    cbx_runtime_free(rt);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}
