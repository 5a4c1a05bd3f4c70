/* Plugins: shared objects that register executor types through cbx_plugin_init. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbx/registry.h"
#include "core/text.h"
#include "runtime/builtins.h"

/* dlerror's text without the leading "path: " it usually repeats (err->where holds the path). */
static const char *strip_path(const char *msg, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        return msg + n + 2;
    return msg;
}

int cbx_registry_load_plugin(cbx_registry *r, const char *path, cbx_err *err)
{
    if (!r || !path || !*path)
        return cbx_err_set(err, -EINVAL, "no registry or no plugin path given");

    /* A name without a slash would send dlopen searching the library path; keep it a file. */
    char file[4096];
    if (snprintf(file, sizeof file, "%s%s", strchr(path, '/') ? "" : "./", path) >=
        (int)sizeof file)
        return cbx_err_set_at(err, -ENAMETOOLONG, path, 0, 0, "plugin path is too long");

    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        return cbx_err_set_at(err, rc, path, 0, 0, "cannot read plugin: %s", strerror(-rc));
    }
    close(fd);

    dlerror();
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return cbx_err_set_at(err, CBX_EPLUGIN, path, 0, 0, "cannot load plugin: %s",
                              why ? strip_path(why, file) : "unknown reason");
    }
    if (cbx__registry_has_handle(r, h)) {
        dlclose(h);
        return cbx_err_set_at(err, CBX_EEXISTS, path, 0, 0, "plugin is already loaded");
    }

    dlerror();
    void *sym = dlsym(h, CBX_PLUGIN_INIT_SYMBOL);
    if (!sym) {
        dlclose(h);
        return cbx_err_set_at(err, CBX_EPLUGIN, path, 0, 0,
                              "plugin does not export " CBX_PLUGIN_INIT_SYMBOL);
    }
    cbx_plugin_init_fn init;
    memcpy(&init, &sym, sizeof init); /* object to function pointer, as POSIX allows */

    /* The runtime's ABI first; a plugin that refuses it (built against an older header, checking
     * for its own number) is offered each older ABI still accepted, newest first. Its types then
     * carry that number, and the fields they lack are taken as absent. */
    uint64_t mark = cbx__registry_mark(r);
    cbx_err ie, first;
    cbx_err_clear(&ie);
    cbx_err_clear(&first);
    int rc = init(r, CBX_EXECUTOR_ABI, &ie);
    for (uint32_t abi = CBX_EXECUTOR_ABI - 1; rc == CBX_EABI && abi >= CBX_EXECUTOR_ABI_MIN;
         abi--) {
        if (abi == CBX_EXECUTOR_ABI - 1)
            first = ie;
        cbx__registry_rollback(r, mark);
        cbx_err_clear(&ie);
        rc = init(r, abi, &ie);
    }
    if (rc == CBX_EABI && first.msg[0])
        ie = first; /* what it said to this runtime's own ABI */
    if (rc == 0) {
        rc = cbx__registry_keep_handle(r, h);
        if (rc == 0)
            return 0;
        cbx_err_set(&ie, rc, "out of memory");
    }
    /* Whatever the init registered points into the library: remove it before unloading. */
    cbx__registry_rollback(r, mark);
    dlclose(h);
    if (rc > 0)
        rc = CBX_EPLUGIN;
    if (ie.msg[0])
        return cbx_err_set_at(err, rc, path, 0, 0, "%s", ie.msg);
    if (rc == CBX_EABI)
        return cbx_err_set_at(err, rc, path, 0, 0,
                              "plugin is built for another executor ABI; this runtime has ABI %u",
                              (unsigned)CBX_EXECUTOR_ABI);
    return cbx_err_set_at(err, rc, path, 0, 0, CBX_PLUGIN_INIT_SYMBOL " failed: %s",
                          cbx_strerror(rc));
}

static int is_so(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

/* Load every *.so of one directory, in name order. Returns how many, or a negative code. */
static int load_dir(cbx_registry *r, const char *dir, cbx_err *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        int rc = -errno;
        return cbx_err_set_at(err, rc, dir, 0, 0, "cannot read plugin directory: %s",
                              strerror(-rc));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_so(de->d_name))
            continue;
        if (n == cap) {
            size_t c = cap ? cap * 2 : 16;
            char **v = realloc(names, c * sizeof *v);
            if (!v) {
                rc = cbx_err_set(err, -ENOMEM, "out of memory");
                break;
            }
            names = v;
            cap = c;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = cbx_err_set(err, -ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n > 1)
        qsort(names, n, sizeof *names, cbx__cmp_strings);
    int loaded = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[4096];
        const char *sep = dir[strlen(dir) - 1] == '/' ? "" : "/";
        if (snprintf(path, sizeof path, "%s%s%s", dir, sep, names[i]) >= (int)sizeof path) {
            rc = cbx_err_set_at(err, -ENAMETOOLONG, dir, 0, 0, "plugin path is too long");
            break;
        }
        rc = cbx_registry_load_plugin(r, path, err);
        if (rc == 0)
            loaded++;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc ? rc : loaded;
}

int cbx_registry_load_plugin_path(cbx_registry *r, const char *dirs, cbx_err *err)
{
    if (!r)
        return cbx_err_set(err, -EINVAL, "no registry given");
    if (!dirs)
        return 0;
    int total = 0;
    const char *p = dirs;
    while (*p) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            char dir[4096];
            if (len >= sizeof dir)
                return cbx_err_set(err, -ENAMETOOLONG, "plugin directory name is too long");
            memcpy(dir, p, len);
            dir[len] = '\0';
            int rc = load_dir(r, dir, err);
            if (rc < 0)
                return rc;
            total += rc;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return total;
}
