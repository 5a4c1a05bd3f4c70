/* The cbx configuration file: defaults for the command line (docs/cli.md, "Configuration").
 *
 * One YAML file, read once before the subcommand runs: --config FILE, else $CBX_CONFIG, else
 * $XDG_CONFIG_HOME/cbx/config.yaml (~/.config/cbx/config.yaml). A file named by --config or
 * CBX_CONFIG must exist; the default one may be missing. Precedence, highest first: flags,
 * environment, the file, built-in defaults. */
#ifndef CBX_CLI_CONFIG_H
#define CBX_CLI_CONFIG_H

#include <jansson.h>
#include <stdint.h>

#include "cli.h"

/* Where a value came from. */
typedef enum { CLI_SRC_DEFAULT, CLI_SRC_CONFIG, CLI_SRC_ENV, CLI_SRC_FLAG } cli_src;

typedef struct cli_config {
    char *file;            /* the file read, or NULL when there was none */
    char *state_dir;       /* state_dir: (absolute, ~ expanded), or NULL */
    char *plugin_path;     /* plugin_path: joined with ':', or NULL */
    char *lua_path;        /* lua_path: joined with ':', or NULL */
    char *env_state_dir;   /* $CBX_STATE_DIR, $CBX_PLUGIN_PATH, $CBX_LUA_PATH as they were */
    char *env_plugin_path; /* before the file was applied (NULL: unset or empty) */
    char *env_lua_path;
    uint64_t breaker_failures; /* defaults of exec --breaker-failures, --breaker-open, */
    uint64_t breaker_open_ns;  /* --breaker-probes: the file's, else 5, 30s, 1 */
    uint64_t breaker_probes;
    json_t *policies; /* {NAME: policy block}, never NULL after cli_config_load */
    json_t *where;    /* {key path: "file:line:col"} of what the file set */
    json_t *llm;      /* the file's llm: section as applied (cbx_llm_settings_set), or NULL */
} cli_config;

/* Read the file (path: the --config value, or NULL) and put state_dir, plugin_path and
 * lua_path into the environment where it lacks them. Returns 0, or CLI_EXIT_USAGE after a
 * one-line message (file:line:col for a problem in the file). */
int cli_config_load(const char *path);

/* The configuration read (defaults alone before cli_config_load or without a file). */
const cli_config *cli_config_get(void);

/* The policy block of --policy ARG (flag: the option's name, for messages): a named policy of
 * the file when ARG is one of its names, else a file of YAML or JSON. Returns 0 and *out (new
 * reference, any JSON type), or CLI_EXIT_USAGE after a message. */
int cli_config_policy(const char *arg, const char *flag, json_t **out);

/* cbx config show|path */
int cli_cmd_config(cli_ctx *ctx, int argc, char **argv);

#endif
