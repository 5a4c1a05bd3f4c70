/* Plugins: real shared objects (built from tests/plugins/) loaded into a registry. A good one
 * adds a type that validates and runs; each bad one is refused with its own code and an error
 * that names the file. */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbx/flow.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"

#define PLUGIN(name) CBX_TEST_BIN_DIR "/" name ".so"

static cbx_registry *fresh(void)
{
    cbx_registry *r = NULL;
    cbx_err err;
    cr_assert_eq(cbx_registry_new(&r, &err), 0, "%s", err.msg);
    return r;
}

/* Load path and expect code; the error names the file (where, and the formatted line). */
static cbx_err refused(cbx_registry *r, const char *path, int code)
{
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_registry_load_plugin(r, path, &err);
    cr_assert_eq(rc, code, "%s: got %s: %s", path, cbx_err_name(rc), err.msg);
    cr_assert_eq(err.code, code);
    cr_assert_str_eq(err.where, path);
    char line[1024];
    cbx_err_format(&err, line, sizeof line);
    cr_assert_not_null(strstr(line, path), "'%s' does not name the file", line);
    cr_assert_eq(strchr(line, '\n'), NULL, "one line");
    return err;
}

static json_t *load(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    cr_assert_not_null(v);
    return v;
}

Test(plugins, good_plugin_adds_a_type_that_validates)
{
    cbx_registry *r = fresh();
    cbx_err err;
    cr_assert_eq(cbx_registry_load_plugin(r, PLUGIN("plugin_good"), &err), 0, "%s", err.msg);
    const cbx_executor_type *t = cbx_registry_find(r, "greet");
    cr_assert_not_null(t);
    cr_assert_str_eq(t->summary, "says hello");
    cr_assert_not(cbx_registry_is_builtin(r, "greet"));

    /* the schema, with the plugin's default */
    json_t *in = load("{\"name\": \"ann\"}"), *norm = NULL;
    cbx_diag d = {0};
    cr_assert_eq(cbx_registry_validate(r, "greet", in, &norm, &d), 0);
    cr_assert_eq(json_integer_value(json_object_get(norm, "times")), 1);
    json_decref(norm);
    json_decref(in);

    /* every problem at once */
    in = load("{\"name\": 3, \"tims\": 2, \"times\": 11}");
    cr_assert_eq(cbx_registry_validate(r, "greet", in, NULL, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 3);
    cr_assert_str_eq(d.items[0].where, "name");
    cr_assert_str_eq(d.items[0].msg, "expected string, got integer");
    cr_assert_str_eq(d.items[1].where, "times");
    cr_assert_str_eq(d.items[1].msg, "expected integer <= 10, got 11");
    cr_assert_str_eq(d.items[2].where, "tims");
    cr_assert_not_null(strstr(d.items[2].msg, "did you mean 'times'?"));
    cbx_diag_clear(&d);
    json_decref(in);

    /* the plugin's own validate hook */
    in = load("{\"name\": \"nobody\"}");
    cr_assert_eq(cbx_registry_validate(r, "greet", in, NULL, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.items[0].msg, "cannot greet nobody");
    cbx_diag_clear(&d);
    json_decref(in);

    /* its secret is known to the schema */
    json_t *schema = cbx_schema_to_json(t->params);
    cr_assert(json_is_true(json_object_get(
        json_object_get(json_object_get(schema, "properties"), "token"), "writeOnly")));
    json_decref(schema);

    /* a plugin's type is an added type: it can go, and its destroy runs in the plugin */
    cr_assert_eq(cbx_registry_unregister(r, "greet", &err), 0, "%s", err.msg);
    cr_assert_null(cbx_registry_find(r, "greet"));
    cbx_registry_free(r);
}

Test(plugins, good_plugin_type_runs_in_a_runtime)
{
    cbx_registry *r = fresh();
    cbx_err err;
    cr_assert_eq(cbx_registry_load_plugin(r, PLUGIN("plugin_good"), &err), 0, "%s", err.msg);
    cbx_runtime *rt = NULL;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = r}, &err), 0, "%s", err.msg);
    json_t *params = load("{\"name\": \"ann\", \"times\": 2}");
    cbx_result res;
    memset(&res, 0, sizeof res);
    cbx_diag d = {0};
    int rc =
        cbx_runtime_execute(rt, &(cbx_request){.executor = "greet", .params = params}, &res, &d);
    cr_assert_eq(rc, 0, "%s: %s", cbx_err_name(rc), res.error);
    cr_assert_eq(res.status, CBX_STATUS_SUCCESS);
    json_t *want = load("{\"greetings\": [\"hello, ann\", \"hello, ann\"]}");
    cr_assert(json_equal(res.outputs, want));
    json_decref(want);
    cbx_result_clear(&res);
    json_decref(params);
    cbx_runtime_free(rt);
    /* the registry outlives the runtime that borrowed it; freeing it unloads the plugin after
     * the type's destroy hook has run */
    cbx_registry_free(r);
}

Test(plugins, relative_path_is_a_file_not_a_library_search)
{
    cr_assert_eq(chdir(CBX_TEST_BIN_DIR), 0);
    cbx_registry *r = fresh();
    cbx_err err;
    cr_assert_eq(cbx_registry_load_plugin(r, "plugin_good.so", &err), 0, "%s", err.msg);
    cr_assert_not_null(cbx_registry_find(r, "greet"));
    cbx_registry_free(r);
}

Test(plugins, loading_twice_is_refused)
{
    cbx_registry *r = fresh();
    cr_assert_eq(cbx_registry_load_plugin(r, PLUGIN("plugin_good"), NULL), 0);
    cbx_err err = refused(r, PLUGIN("plugin_good"), CBX_EEXISTS);
    cr_assert_not_null(strstr(err.msg, "already loaded"));
    cr_assert_not_null(cbx_registry_find(r, "greet"), "the first load stays");
    cbx_registry_free(r);
}

Test(plugins, missing_file)
{
    cbx_registry *r = fresh();
    cbx_err err = refused(r, CBX_TEST_BIN_DIR "/no_such_plugin.so", -ENOENT);
    cr_assert_not_null(strstr(err.msg, "cannot read plugin"), "%s", err.msg);
    cbx_registry_free(r);
}

Test(plugins, unreadable_file)
{
    if (geteuid() == 0)
        cr_skip_test("root reads every file");
    char dir[] = "/tmp/cbx-plugins-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/locked.so", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_assert_eq(chmod(path, 0), 0);
    cbx_registry *r = fresh();
    cbx_err err = refused(r, path, -EACCES);
    cr_assert_not_null(strstr(err.msg, "cannot read plugin"));
    cbx_registry_free(r);
    unlink(path);
    rmdir(dir);
}

Test(plugins, not_a_shared_object)
{
    cbx_registry *r = fresh();
    cbx_err err = refused(r, PLUGIN("plugin_not_elf"), CBX_EPLUGIN);
    cr_assert_not_null(strstr(err.msg, "cannot load plugin: "), "%s", err.msg);
    /* dlerror's own explanation follows */
    cr_assert_gt(strlen(err.msg), strlen("cannot load plugin: "));
    err = refused(r, CBX_TEST_BIN_DIR, CBX_EPLUGIN); /* a directory */
    cbx_registry_free(r);
}

Test(plugins, no_init_symbol)
{
    cbx_registry *r = fresh();
    cbx_err err = refused(r, PLUGIN("plugin_no_init"), CBX_EPLUGIN);
    cr_assert_str_eq(err.msg, "plugin does not export cbx_plugin_init");
    cbx_registry_free(r);
}

Test(plugins, abi_mismatch_refused_by_the_plugin_init)
{
    cbx_registry *r = fresh();
    cbx_err err = refused(r, PLUGIN("plugin_bad_abi"), CBX_EABI);
    char want[128];
    snprintf(want, sizeof want, "plugin built for executor ABI %d, runtime has %d",
             CBX_EXECUTOR_ABI + 1, CBX_EXECUTOR_ABI);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(cbx_registry_find(r, "from-the-future"));
    cbx_registry_free(r);
}

/* A plugin built against ABI 2 refuses the runtime's ABI and is offered 2: it loads, its type
 * runs, and the field its struct lacks (outputs) is never read - a flow's references to its
 * outputs are not checked. */
Test(plugins, abi2_plugin_still_loads_and_runs)
{
    cbx_registry *r = fresh();
    cbx_err err;
    cr_assert_eq(cbx_registry_load_plugin(r, PLUGIN("plugin_abi2"), &err), 0, "%s", err.msg);
    const cbx_executor_type *t = cbx_registry_find(r, "abi2");
    cr_assert_not_null(t);
    cr_assert_eq(t->abi, 2);
    cr_assert_null(cbx_executor_type_outputs(t));

    const char *flow = "name: f\nsteps:\n  - {name: a, executor: abi2}\n"
                       "outputs:\n  x: '{{ steps.a.outputs.said }} {{ steps.a.outputs.other }}'\n";
    cbx_flow *f = NULL;
    cbx_diag d = {0};
    cr_assert_eq(cbx_flow_load_string(&f, flow, strlen(flow), "f.yaml", r, &d), 0,
                 "%zu problems: %s", d.n, d.n ? d.items[0].msg : "");
    cbx_flow_free(f);
    cbx_diag_clear(&d);

    cbx_runtime *rt = NULL;
    cr_assert_eq(cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = r}, &err), 0, "%s", err.msg);
    cbx_result res;
    memset(&res, 0, sizeof res);
    int rc = cbx_runtime_execute(rt, &(cbx_request){.executor = "abi2"}, &res, &d);
    cr_assert_eq(rc, 0, "%s: %s", cbx_err_name(rc), res.error);
    cr_assert_str_eq(json_string_value(json_object_get(res.outputs, "said")), "still here");
    cbx_result_clear(&res);
    cbx_diag_clear(&d);
    cbx_runtime_free(rt);
    cbx_registry_free(r);
}

Test(plugins, abi_mismatch_refused_at_registration)
{
    cbx_registry *r = fresh();
    cbx_err err = refused(r, PLUGIN("plugin_abi_lie"), CBX_EABI);
    char want[128];
    snprintf(want, sizeof want, "is built for executor ABI %d; this runtime has ABI %d",
             CBX_EXECUTOR_ABI + 1, CBX_EXECUTOR_ABI);
    cr_assert_not_null(strstr(err.msg, want), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "'from-the-future'"), "%s", err.msg);
    cr_assert_null(cbx_registry_find(r, "from-the-future"));
    cbx_registry_free(r);
}

Test(plugins, failed_init_leaves_no_type_behind)
{
    cbx_registry *r = fresh();
    cbx_err err = refused(r, PLUGIN("plugin_half"), CBX_EINVAL_CONFIG);
    cr_assert_str_eq(err.msg, "the second type's configuration is missing");
    cr_assert_null(cbx_registry_find(r, "half-registered"),
                   "a type whose code was unloaded must not stay registered");
    cbx_registry_free(r);
}

/* A fresh directory holding links to the named plugins, and a file that is not a plugin. */
static void plugin_dir(char *dir, const char *const *names)
{
    strcpy(dir, "/tmp/cbx-plugins-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char path[PATH_MAX], target[PATH_MAX];
    for (const char *const *n = names; *n; n++) {
        snprintf(target, sizeof target, "%s/%s.so", CBX_TEST_BIN_DIR, *n);
        snprintf(path, sizeof path, "%s/%s.so", dir, *n);
        cr_assert_eq(symlink(target, path), 0, "%s: %s", path, strerror(errno));
    }
    snprintf(path, sizeof path, "%s/README", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("not a plugin: skipped, its name does not end in .so\n", f);
    fclose(f);
}

static void remove_dir(const char *dir, const char *const *names)
{
    char path[PATH_MAX];
    for (const char *const *n = names; *n; n++) {
        snprintf(path, sizeof path, "%s/%s.so", dir, *n);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/README", dir);
    unlink(path);
    rmdir(dir);
}

Test(plugins, plugin_path_loads_every_so_and_skips_missing_dirs)
{
    static const char *const good[] = {"plugin_good", NULL};
    char dir[64];
    plugin_dir(dir, good);
    char path[256];
    snprintf(path, sizeof path, "/nonexistent/cbx/plugins::%s:", dir);
    cbx_registry *r = fresh();
    cbx_err err;
    cr_assert_eq(cbx_registry_load_plugin_path(r, path, &err), 1, "%s", err.msg);
    cr_assert_not_null(cbx_registry_find(r, "greet"));
    cr_assert_eq(cbx_registry_load_plugin_path(r, NULL, &err), 0);
    cr_assert_eq(cbx_registry_load_plugin_path(r, "", &err), 0);
    cbx_registry_free(r);
    remove_dir(dir, good);
}

Test(plugins, plugin_path_stops_at_the_first_failure)
{
    /* loaded in name order: a_... loads, b_... fails, c_... is never tried */
    static const char *const names[] = {"plugin_good", "plugin_no_init", "plugin_half", NULL};
    char dir[64];
    plugin_dir(dir, names);
    char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], bad[PATH_MAX];
    snprintf(a, sizeof a, "%s/plugin_good.so", dir);
    snprintf(b, sizeof b, "%s/a_good.so", dir);
    cr_assert_eq(rename(a, b), 0);
    snprintf(a, sizeof a, "%s/plugin_no_init.so", dir);
    snprintf(bad, sizeof bad, "%s/b_no_init.so", dir);
    cr_assert_eq(rename(a, bad), 0);
    snprintf(a, sizeof a, "%s/plugin_half.so", dir);
    snprintf(c, sizeof c, "%s/c_half.so", dir);
    cr_assert_eq(rename(a, c), 0);

    cbx_registry *r = fresh();
    cbx_err err;
    cr_assert_eq(cbx_registry_load_plugin_path(r, dir, &err), CBX_EPLUGIN);
    cr_assert_str_eq(err.where, bad);
    cr_assert_not_null(cbx_registry_find(r, "greet"), "the one before the failure is loaded");
    cr_assert_null(cbx_registry_find(r, "half-registered"));
    cbx_registry_free(r);
    unlink(b);
    unlink(bad);
    unlink(c);
    remove_dir(dir, (const char *const[]){NULL});
}
