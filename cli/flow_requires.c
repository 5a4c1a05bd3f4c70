/* requires: of a flow file (see flow_requires.h). */
#include "flow_requires.h"

#include "output.h"

#include "cbx/yaml.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *owned[80];
static size_t nowned;

static int problem(const char *cmd, const cbx_yaml_doc *doc, const char *path, const char *what)
{
    int line = 0, col = 0;
    cbx_yaml_where(doc, path, &line, &col);
    fflush(stdout);
    fprintf(stderr, "%s:%d:%d: %s\n", doc->file, line, col, what);
    cli_err("%s: the flow's requires: is not usable", cmd);
    return CLI_EXIT_USAGE;
}

/* path resolved against dir (an absolute path stays as it is), kept in owned[]. */
static const char *resolve(const char *dir, const char *path)
{
    if (nowned == sizeof owned / sizeof *owned)
        return NULL;
    size_t n = strlen(dir) + strlen(path) + 2;
    char *p = malloc(n);
    if (!p)
        return NULL;
    if (path[0] == '/')
        snprintf(p, n, "%s", path);
    else
        snprintf(p, n, "%s/%s", dir, path);
    owned[nowned++] = p;
    return p;
}

/* 1 when path names the same file as one of list (given twice: --lua and requires:). */
static int listed(const char *path, const char *const *list, size_t n)
{
    char a[PATH_MAX], b[PATH_MAX];
    if (!realpath(path, a))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (realpath(list[i], b) && strcmp(a, b) == 0)
            return 1;
    return 0;
}

int cli_flow_requires(const char *cmd, const char *file, cli_types_src *src)
{
    cbx_yaml_doc doc = {0};
    cbx_err e;
    if (cbx_yaml_load_file(file, &doc, &e) < 0)
        return 0; /* the loader says what is wrong with the file */
    json_t *req = json_is_object(doc.root) ? json_object_get(doc.root, "requires") : NULL;
    int rc = 0;
    if (!req)
        goto out;
    if (!json_is_object(req)) {
        rc = problem(cmd, &doc, "requires",
                     "requires: expected a mapping {lua: [files], plugins: [files]}");
        goto out;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v)
    {
        char path[256], msg[512];
        snprintf(path, sizeof path, "requires.%s", key);
        int lua = strcmp(key, "lua") == 0;
        if (!lua && strcmp(key, "plugins") != 0) {
            snprintf(msg, sizeof msg, "requires: unknown key '%.64s' (lua, plugins)", key);
            rc = problem(cmd, &doc, path, msg);
            goto out;
        }
        json_t *one = json_is_string(v) ? json_pack("[O]", v) : json_incref(v);
        size_t i;
        json_t *it;
        if (!json_is_array(one)) {
            json_decref(one);
            snprintf(msg, sizeof msg, "requires.%s: expected a file or a list of files", key);
            rc = problem(cmd, &doc, path, msg);
            goto out;
        }
        json_array_foreach(one, i, it)
        {
            const char *p = json_string_value(it);
            if (!p || !p[0]) {
                snprintf(path, sizeof path, "requires.%s[%zu]", key, i);
                snprintf(msg, sizeof msg, "requires.%s[%zu]: expected the path of a file", key, i);
                json_decref(one);
                rc = problem(cmd, &doc, path, msg);
                goto out;
            }
            const char *full = resolve(dir, p);
            int room =
                lua ? src->n_lua_files < sizeof src->lua_files / sizeof *src->lua_files
                    : src->n_plugin_paths < sizeof src->plugin_paths / sizeof *src->plugin_paths;
            if (!full || !room) {
                json_decref(one);
                rc = problem(cmd, &doc, path, "requires: too many files");
                goto out;
            }
            if (lua && !listed(full, src->lua_files, src->n_lua_files))
                src->lua_files[src->n_lua_files++] = full;
            else if (!lua && !listed(full, src->plugin_paths, src->n_plugin_paths))
                src->plugin_paths[src->n_plugin_paths++] = full;
        }
        json_decref(one);
    }
out:
    cbx_yaml_doc_clear(&doc);
    return rc;
}

void cli_flow_requires_free(void)
{
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    nowned = 0;
}
