/* cbx config show|path: the configuration in effect, and where each value came from. */
#include "args.h"
#include "cli.h"
#include "config.h"
#include "output.h"

#include "cbx/state_dir.h"
#include "cbx/units.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "Usage: cbx config show [--json]\n"
    "       cbx config path\n"
    "\n"
    "The configuration file holds defaults for the command line: the state directory, plugin\n"
    "and Lua paths, breaker defaults and named policies (docs/cli.md, \"Configuration\"). It is\n"
    "--config FILE (a global option, before the command), else $CBX_CONFIG, else\n"
    "$XDG_CONFIG_HOME/cbx/config.yaml (~/.config/cbx/config.yaml). A flag wins over the\n"
    "environment, which wins over the file, which wins over the built-in defaults.\n"
    "\n"
    "Actions:\n"
    "  show   every setting in effect with its source: flag, environment, the file's\n"
    "         file:line:col, or default\n"
    "  path   the configuration file read (nothing, exit 1, when there is none)\n"
    "\n"
    "Options:\n"
    "  --json           JSON instead of text\n"
    "  -h, --help       this help\n"
    "\n"
    "Keys of the file (YAML; an unknown key is refused, exit 2):\n"
    "  state_dir: DIR             the journal and breaker store (as --state-dir)\n"
    "  plugin_path: DIRS          plugin directories: a path, a:b, or a list (CBX_PLUGIN_PATH)\n"
    "  lua_path: PATHS            Lua executor files or directories (CBX_LUA_PATH)\n"
    "  breaker:                   defaults of 'cbx exec --breaker':\n"
    "    failures: N              --breaker-failures (default 5)\n"
    "    open: DURATION           --breaker-open (default 30s)\n"
    "    probes: N                --breaker-probes (default 1)\n"
    "  policies:                  named policy blocks for 'cbx exec --policy NAME':\n"
    "    NAME: {policy block}     (docs/policy.md)\n"
    "  nats:                      how to connect to NATS, where the environment says nothing:\n"
    "    url, token, user,        NATS_URL, NATS_TOKEN, NATS_USER, NATS_PASSWORD,\n"
    "    password, creds, ca,     NATS_CREDS, NATS_CA, NATS_CERT, NATS_KEY (files relative\n"
    "    cert, key, tls           to this file), NATS_TLS (true or false)\n"
    "\n"
    "Examples:\n"
    "  cbx config show\n"
    "  cbx --config ./ci.yaml exec --policy fast -- make test\n"
    "\n";

static const cli_opt opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {0},
};

typedef struct shown {
    json_t *obj; /* --json */
    int json;
} shown;

static void show(shown *s, const char *key, const char *value, const char *source)
{
    if (s->json) {
        json_object_set_new(s->obj, key, json_pack("{s:s?,s:s}", "value", value, "source", source));
        return;
    }
    printf("%-18s %-36s %s\n", key, value ? value : "-", source);
}

static const char *src_of(const char *key, const char *env_name, int from_env, char *buf,
                          size_t len)
{
    const cli_config *c = cli_config_get();
    const char *w = json_string_value(json_object_get(c->where, key));
    if (from_env)
        return env_name;
    if (w) {
        snprintf(buf, len, "%s", w);
        return buf;
    }
    return "default";
}

static int show_all(cli_ctx *ctx, int json)
{
    const cli_config *c = cli_config_get();
    shown s = {.obj = json ? json_object() : NULL, .json = json};
    char buf[700], val[4096];
    if (!json)
        printf("%-18s %s\n", "file", c->file ? c->file : "- (none)");
    /* state_dir: --state-dir, CBX_STATE_DIR, the file, the default */
    if (ctx->state_dir)
        show(&s, "state_dir", ctx->state_dir, "--state-dir");
    else if (c->env_state_dir)
        show(&s, "state_dir", c->env_state_dir, "CBX_STATE_DIR");
    else if (c->state_dir)
        show(&s, "state_dir", c->state_dir, src_of("state_dir", NULL, 0, buf, sizeof buf));
    else
        show(&s, "state_dir", cbx_state_dir_path(val, sizeof val, NULL) == 0 ? val : NULL,
             "default");
    show(&s, "plugin_path", c->env_plugin_path ? c->env_plugin_path : c->plugin_path,
         src_of("plugin_path", "CBX_PLUGIN_PATH", c->env_plugin_path != NULL, buf, sizeof buf));
    show(&s, "lua_path", c->env_lua_path ? c->env_lua_path : c->lua_path,
         src_of("lua_path", "CBX_LUA_PATH", c->env_lua_path != NULL, buf, sizeof buf));
    snprintf(val, sizeof val, "%llu", (unsigned long long)c->breaker_failures);
    show(&s, "breaker.failures", val, src_of("breaker.failures", NULL, 0, buf, sizeof buf));
    cbx_duration_format(c->breaker_open_ns, val, (unsigned)sizeof val);
    show(&s, "breaker.open", val, src_of("breaker.open", NULL, 0, buf, sizeof buf));
    snprintf(val, sizeof val, "%llu", (unsigned long long)c->breaker_probes);
    show(&s, "breaker.probes", val, src_of("breaker.probes", NULL, 0, buf, sizeof buf));
    const char *name;
    json_t *block;
    json_object_foreach(c->policies, name, block)
    {
        char key[300];
        snprintf(key, sizeof key, "policies.%s", name);
        if (json) { /* the block itself */
            json_object_set_new(s.obj, key,
                                json_pack("{s:O,s:s}", "value", block, "source",
                                          src_of(key, NULL, 0, buf, sizeof buf)));
            continue;
        }
        char *text = json_dumps(block, JSON_COMPACT | JSON_SORT_KEYS);
        show(&s, key, text, src_of(key, NULL, 0, buf, sizeof buf));
        free(text);
    }
    if (json) {
        json_t *doc = json_pack("{s:s?,s:o}", "file", c->file, "values", s.obj);
        cli_print_json(stdout, doc);
        json_decref(doc);
    }
    return CLI_EXIT_OK;
}

int cli_cmd_config(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const actions[] = {"show", "path", NULL};
    cli_args a;
    cli_args_init(&a, "config", argc, argv, opts);
    const char *action = NULL, *val;
    int json = 0, id;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(help, stdout);
            fputs(cli_exit_codes_help, stdout);
            return CLI_EXIT_OK;
        case CLI_ARGS_POSITIONAL:
            if (action) {
                cli_err("config: unexpected argument '%s'", val);
                return CLI_EXIT_USAGE;
            }
            if (cli_parse_choice("config", val, actions))
                return CLI_EXIT_USAGE;
            action = val;
            break;
        default:
            if (cli_common_option(ctx, id, val, &json))
                return CLI_EXIT_USAGE;
        }
    }
    if (!action) {
        cli_err("config: expected an action: show or path (see 'cbx config --help')");
        return CLI_EXIT_USAGE;
    }
    if (strcmp(action, "path") == 0) {
        const char *f = cli_config_get()->file;
        if (f)
            printf("%s\n", f);
        return f ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    }
    return show_all(ctx, json);
}
