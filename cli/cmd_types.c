/* cbx types [TYPE] [--json]: the executor types, and one type's parameters. Also the registry
 * every subcommand that runs work opens: built-ins, plugins, Lua types. */
#include "args.h"
#include "cli.h"
#include "cbx/flow.h"
#include "output.h"

#include "cbx/lua_executor.h"
#include "cbx/registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the registry ------------------------------------------------------------------------- */

static int plugin_error(const char *what, int rc, const cbx_err *err)
{
    if (err->where[0])
        cli_err("plugin %s: %s", err->where, err->msg[0] ? err->msg : cbx_strerror(rc));
    else
        cli_err("plugin path '%s': %s", what, err->msg[0] ? err->msg : cbx_strerror(rc));
    return rc == -ENOMEM ? CLI_EXIT_INTERNAL : CLI_EXIT_USAGE;
}

/* A --plugin-path value: a colon-separated list whose entries are directories (every *.so in
 * them) or .so files. $CBX_PLUGIN_PATH holds directories only, and missing ones are skipped. */
static int load_plugins(cbx_registry *r, const char *list, int strict)
{
    char *copy = strdup(list);
    if (!copy)
        return CLI_EXIT_INTERNAL;
    int rc = 0;
    char *save = NULL;
    for (char *e = strtok_r(copy, ":", &save); e && !rc; e = strtok_r(NULL, ":", &save)) {
        cbx_err err;
        cbx_err_clear(&err);
        size_t n = strlen(e);
        int r2;
        if (n > 3 && strcmp(e + n - 3, ".so") == 0)
            r2 = cbx_registry_load_plugin(r, e, &err);
        else {
            if (strict) {
                struct stat st;
                if (stat(e, &st) < 0) {
                    cli_err("plugin path '%s': %s", e, strerror(errno));
                    rc = CLI_EXIT_USAGE;
                    break;
                }
                if (!S_ISDIR(st.st_mode)) {
                    cli_err("plugin path '%s': not a directory or a .so file", e);
                    rc = CLI_EXIT_USAGE;
                    break;
                }
            }
            r2 = cbx_registry_load_plugin_path(r, e, &err);
        }
        if (r2 < 0)
            rc = plugin_error(e, r2, &err);
    }
    free(copy);
    return rc;
}

/* A Lua file's executor type, or every *.lua of a directory. */
static int load_lua(cbx_registry *r, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        cli_err("lua %s: %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    cbx_err err;
    cbx_err_clear(&err);
    int rc = S_ISDIR(st.st_mode) ? cbx_lua_executor_load_path(r, path, &err)
                                 : cbx_lua_executor_load(r, path, &err);
    if (rc >= 0)
        return 0;
    char at[32] = "";
    if (err.line && err.col)
        snprintf(at, sizeof at, ":%d:%d", err.line, err.col);
    else if (err.line)
        snprintf(at, sizeof at, ":%d", err.line);
    cli_err("lua %s%s: %s", err.where[0] ? err.where : path, at,
            err.msg[0] ? err.msg : cbx_strerror(rc));
    return rc == -ENOMEM ? CLI_EXIT_INTERNAL : CLI_EXIT_USAGE;
}

/* A colon-separated list of Lua files (or directories). */
static int load_lua_list(cbx_registry *r, const char *list)
{
    char *copy = strdup(list);
    if (!copy)
        return CLI_EXIT_INTERNAL;
    int rc = 0;
    char *save = NULL;
    for (char *e = strtok_r(copy, ":", &save); e && !rc; e = strtok_r(NULL, ":", &save))
        rc = load_lua(r, e);
    free(copy);
    return rc;
}

int cli_registry_open(const cli_types_src *src, cbx_registry **out)
{
    *out = NULL;
    cbx_registry *r = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    if (cbx_registry_new(&r, &err) < 0) {
        cli_err("cannot make the registry: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        return CLI_EXIT_INTERNAL;
    }
    /* flows as executors (a workflow's action, a model's tool): the flow layer's own type */
    int rc = cbx_registry_register(r, cbx_flow_executor_type(), &err);
    if (rc < 0) {
        cli_err("cannot register the flow executor: %s", err.msg);
        cbx_registry_free(r);
        return CLI_EXIT_INTERNAL;
    }
    const char *env = getenv("CBX_PLUGIN_PATH");
    if (env && env[0])
        rc = load_plugins(r, env, 0);
    for (size_t i = 0; !rc && src && i < src->n_plugin_paths; i++)
        rc = load_plugins(r, src->plugin_paths[i], 1);
    env = getenv("CBX_LUA_PATH");
    if (!rc && env && env[0])
        rc = load_lua_list(r, env);
    for (size_t i = 0; !rc && src && i < src->n_lua_files; i++)
        rc = load_lua(r, src->lua_files[i]);
    if (rc) {
        cbx_registry_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

const char *cli_suggest_type(const cbx_registry *r, const char *word)
{
    const cbx_executor_type *types[256];
    size_t n = cbx_registry_list(r, types, 256);
    if (n > 256)
        n = 256;
    const char *names[256];
    for (size_t i = 0; i < n; i++)
        names[i] = types[i]->name;
    return cli_suggest(word, names, n);
}

/* ---- cbx types ------------------------------------------------------------------------------ */

static const char help[] =
    "Usage: cbx types [TYPE] [--json] [--plugin-path DIRS] [--lua FILE]...\n"
    "\n"
    "Without TYPE: every executor type (name, built in or added, summary; with --json also\n"
    "its outputs, as a JSON Schema of the outputs object, or null when the type declares none).\n"
    "With TYPE: its parameters (name, type, required, default, description, allowed values\n"
    "or bounds, secret) and the outputs it produces, or with --json its parameter schema as a\n"
    "JSON Schema (draft 2020-12).\n"
    "\n"
    "Options:\n"
    "  --json               JSON instead of a table\n"
    "  --plugin-path DIRS   also load the plugins (*.so) of these colon-separated directories\n"
    "                       or files (and those of $CBX_PLUGIN_PATH)\n"
    "  --lua FILE           also load the executor type defined in this Lua file, or those of\n"
    "                       every *.lua in a directory (repeatable; and $CBX_LUA_PATH's,\n"
    "                       colon-separated)\n"
    "  -h, --help           this help\n"
    "\n"
    "Examples:\n"
    "  cbx types\n"
    "  cbx types http\n"
    "  cbx types command --json\n"
    "\n";

enum { OPT_PLUGIN_PATH = CLI_OPT_OWN, OPT_LUA };

static const cli_opt opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"plugin-path", 0, 1, OPT_PLUGIN_PATH},
    {"lua", 0, 1, OPT_LUA},
    {0},
};

/* A bound as written in a schema: whole numbers in full. */
static const char *num(double v, char *buf, size_t len)
{
    if (v == (double)(long long)v && v > -1e18 && v < 1e18)
        snprintf(buf, len, "%lld", (long long)v);
    else
        snprintf(buf, len, "%g", v);
    return buf;
}

/* Bounds and allowed values of a parameter, for the table. */
static void constraints(const cbx_param *p, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    if (p->enum_values) {
        for (const char *const *e = p->enum_values; *e && n < len; e++)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", e == p->enum_values ? "" : "|", *e);
        return;
    }
    const char *what = p->type == CBX_PARAM_STRING   ? " chars"
                       : p->type == CBX_PARAM_ARRAY  ? " items"
                       : p->type == CBX_PARAM_OBJECT ? " keys"
                                                     : "";
    char a[32], b[32];
    if (p->has_min && p->has_max)
        snprintf(buf, len, "%s..%s%s", num(p->min, a, sizeof a), num(p->max, b, sizeof b), what);
    else if (p->has_min)
        snprintf(buf, len, ">= %s%s", num(p->min, a, sizeof a), what);
    else if (p->has_max)
        snprintf(buf, len, "<= %s%s", num(p->max, a, sizeof a), what);
}

static int list_types(const cbx_registry *r, int json)
{
    const cbx_executor_type *types[256];
    size_t n = cbx_registry_list(r, types, 256);
    if (n > 256)
        n = 256;
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(
                arr, json_pack("{s:s, s:b, s:s, s:o*}", "name", types[i]->name, "builtin",
                               cbx_registry_is_builtin(r, types[i]->name), "summary",
                               types[i]->summary ? types[i]->summary : "", "outputs",
                               cbx_outputs_to_json(cbx_executor_type_outputs(types[i]))));
        int rc = cli_print_json(stdout, arr);
        json_decref(arr);
        return rc ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
    }
    static const char *const heads[] = {"NAME", "BUILT-IN", "SUMMARY"};
    cli_table *t = cli_table_new(3, heads);
    if (!t)
        return CLI_EXIT_INTERNAL;
    for (size_t i = 0; i < n; i++) {
        cli_table_row(t);
        cli_table_cell(t, types[i]->name, CLI_BOLD);
        cli_table_cell(t, cbx_registry_is_builtin(r, types[i]->name) ? "yes" : "no", NULL);
        cli_table_cell(t, types[i]->summary ? types[i]->summary : "", NULL);
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
    return CLI_EXIT_OK;
}

/* The outputs the type declares, as a second table (or a line saying it declares none). */
static void show_outputs(const cbx_executor_type *type)
{
    const cbx_output *outs = cbx_executor_type_outputs(type);
    if (!outs) {
        printf("\nOutputs: not declared (whatever the work gives; flows do not check them)\n");
        return;
    }
    printf("\n");
    static const char *const heads[] = {"OUTPUT", "TYPE", "ALWAYS", "DESCRIPTION"};
    cli_table *t = cli_table_new(4, heads);
    if (!t)
        return;
    for (const cbx_output *o = outs; o->name; o++) {
        cli_table_row(t);
        cli_table_cell(t, o->name, CLI_BOLD);
        cli_table_cellf(t, NULL, "%s%s", cbx_param_type_name(o->type),
                        o->nullable && o->type != CBX_PARAM_ANY ? " or null" : "");
        cli_table_cell(t, o->optional ? "no" : "yes", NULL);
        cli_table_cell(t, o->description ? o->description : "", NULL);
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
}

static int show_type(const cbx_registry *r, const cbx_executor_type *type, int json)
{
    if (json) {
        json_t *schema = cbx_schema_to_json(type->params);
        if (!schema)
            return CLI_EXIT_INTERNAL;
        if (!json_object_get(schema, "title"))
            json_object_set_new(schema, "title", json_string(type->name));
        if (type->summary && !json_object_get(schema, "description"))
            json_object_set_new(schema, "description", json_string(type->summary));
        int rc = cli_print_json(stdout, schema);
        json_decref(schema);
        return rc ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
    }
    cli_paint(stdout, CLI_BOLD, type->name);
    printf(" (%s) - %s\n\n", cbx_registry_is_builtin(r, type->name) ? "built in" : "added",
           type->summary ? type->summary : "");
    static const char *const heads[] = {"PARAMETER", "TYPE",   "REQUIRED",   "DEFAULT",
                                        "ALLOWED",   "SECRET", "DESCRIPTION"};
    cli_table *t = cli_table_new(7, heads);
    if (!t)
        return CLI_EXIT_INTERNAL;
    for (const cbx_param *p = type->params; p && p->name; p++) {
        cli_table_row(t);
        cli_table_cell(t, p->name, CLI_BOLD);
        if (p->type == CBX_PARAM_ARRAY && p->items != CBX_PARAM_ANY)
            cli_table_cellf(t, NULL, "array of %s", cbx_param_type_name(p->items));
        else
            cli_table_cell(t, cbx_param_type_name(p->type), NULL);
        cli_table_cell(t, p->required ? "yes" : "no", p->required ? CLI_YELLOW : NULL);
        cli_table_cell(t, p->default_json ? p->default_json : "-", NULL);
        char c[256];
        constraints(p, c, sizeof c);
        cli_table_cell(t, c[0] ? c : "-", NULL);
        cli_table_cell(t, p->secret ? "yes" : "no", p->secret ? CLI_MAGENTA : NULL);
        cli_table_cell(t, p->description ? p->description : "", NULL);
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
    show_outputs(type);
    return CLI_EXIT_OK;
}

int cli_cmd_types(cli_ctx *ctx, int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "types", argc, argv, opts);
    cli_types_src src = {0};
    const char *name = NULL;
    int json = 0, id;
    const char *val;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(help, stdout);
            fputs(cli_exit_codes_help, stdout);
            return CLI_EXIT_OK;
        case CLI_OPT_STATE_DIR:
        case CLI_OPT_NO_JOURNAL:
        case CLI_OPT_UTC:
        case CLI_OPT_JSON:
            if (cli_common_option(ctx, id, val, &json))
                return CLI_EXIT_USAGE;
            break;
        case OPT_PLUGIN_PATH:
            if (src.n_plugin_paths == sizeof src.plugin_paths / sizeof src.plugin_paths[0]) {
                cli_err("types: too many --plugin-path options");
                return CLI_EXIT_USAGE;
            }
            src.plugin_paths[src.n_plugin_paths++] = val;
            break;
        case OPT_LUA:
            if (src.n_lua_files == sizeof src.lua_files / sizeof src.lua_files[0]) {
                cli_err("types: too many --lua options");
                return CLI_EXIT_USAGE;
            }
            src.lua_files[src.n_lua_files++] = val;
            break;
        case CLI_ARGS_POSITIONAL:
            if (name) {
                cli_err("types: unexpected argument '%s' (one TYPE at most)", val);
                return CLI_EXIT_USAGE;
            }
            name = val;
            break;
        default:
            break;
        }
    }
    if (a.dashdash && a.rest < argc) {
        cli_err("types: unexpected argument '%s'", argv[a.rest]);
        return CLI_EXIT_USAGE;
    }
    cbx_registry *r;
    int rc = cli_registry_open(&src, &r);
    if (rc)
        return rc;
    if (!name) {
        rc = list_types(r, json);
    } else {
        const cbx_executor_type *type = cbx_registry_find(r, name);
        if (!type) {
            const char *best = cli_suggest_type(r, name);
            if (best)
                cli_err("types: unknown executor type '%s' (did you mean '%s'?)", name, best);
            else
                cli_err("types: unknown executor type '%s' (see 'cbx types')", name);
            rc = CLI_EXIT_USAGE;
        } else {
            rc = show_type(r, type, json);
        }
    }
    cbx_registry_free(r);
    return rc;
}
