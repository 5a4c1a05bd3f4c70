/* cbx validate: check a flow file without running it (every problem as file:line:col). */
#include "flow_cli.h"
#include "flow_requires.h"
#include "output.h"

#include <stdio.h>

static const char validate_help[] =
    "Usage: cbx validate FILE [--json] [--lua FILE]... [--plugin-path DIRS]\n"
    "\n"
    "Check a flow file without running it: YAML syntax, unknown keys, executors and their\n"
    "literal parameters, templates and what they refer to (inputs, steps), needs, cycles,\n"
    "policies, durations, sub-flows. Every problem is reported, one per line on stderr, as\n"
    "FILE:LINE:COLUMN: message. A good file prints \"FILE: ok (N steps)\". See docs/flows.md.\n"
    "A file is read up to $CBX_MAX_INPUT bytes (default 64M; 1M, 512K, 2G...); nesting past\n"
    "512 levels, aliases that add over a million nodes and a second document are refused.\n"
    "\n"
    "Options:\n"
    "  --json               print the problems as a JSON array on stdout ([] when none):\n"
    "                       [{file, line, col, code, message}]\n"
    "  --lua FILE           load the executor type defined in a Lua file, or every *.lua of a\n"
    "                       directory (repeatable; also $CBX_LUA_PATH)\n"
    "  --plugin-path DIRS   load the plugins (*.so) of these colon-separated directories or\n"
    "                       files (also $CBX_PLUGIN_PATH)\n"
    "  -h, --help           this help\n"
    "\n"
    "Examples:\n"
    "  cbx validate examples/flows/fetch_and_process.yaml\n"
    "  cbx validate --lua examples/lua/my_custom_executor.lua examples/flows/seed_flow.yaml\n"
    "  cbx validate flow.yaml --json | jq -r '.[].message'\n"
    "\n";

static const char validate_exit_help[] =
    "cbx validate exits 0 when the file is good and 2 when it has any problem.\n";

static const cli_opt validate_opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"lua", 0, 1, OPT_LUA},
    {"plugin-path", 0, 1, OPT_PLUGIN_PATH},
    {0},
};

int cli_cmd_validate(cli_ctx *ctx, int argc, char **argv)
{
    flow_cfg c = {0};
    cbx_registry *reg = NULL;
    cbx_flow *f = NULL;
    int rc = flow_parse(ctx, "validate", validate_opts, validate_help, validate_exit_help, argc,
                        argv, &c);
    if (rc || (rc = flow_need_file(&c)) || (rc = cli_flow_requires("validate", c.file, &c.src)) ||
        (rc = cli_registry_open(&c.src, &reg)))
        goto out;
    rc = flow_load_file("validate", c.file, reg, c.json, &f);
    if (rc)
        goto out;
    if (c.json) {
        json_t *none = json_array();
        cli_print_json(stdout, none);
        json_decref(none);
    } else {
        size_t n = cbx_flow_step_count(f);
        printf("%s: ok (%zu step%s)\n", c.file, n, n == 1 ? "" : "s");
    }
out:
    cbx_flow_free(f);
    cbx_registry_free(reg);
    flow_cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}
