/* cbx graph: a flow's DAG as Mermaid or Graphviz. */
#include "flow_cli.h"
#include "output.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char graph_help[] =
    "Usage: cbx graph FILE [--format mermaid|dot]\n"
    "\n"
    "Print a flow's DAG: a node per step (its name and executor, with foreach and when marks),\n"
    "an edge from each step to those that wait for it, composites and sub-flows as subgraphs.\n"
    "The file is checked as by 'cbx validate', except for executor types and their parameters\n"
    "(so a flow using Lua or plugin types is drawn without loading them).\n"
    "\n"
    "Options:\n"
    "  --format F       mermaid (default) or dot (Graphviz)\n"
    "  -h, --help       this help\n"
    "\n"
    "Examples:\n"
    "  cbx graph examples/flows/fan_out_fan_in.yaml\n"
    "  cbx graph flow.yaml --format dot | dot -Tsvg >flow.svg\n"
    "\n";

static const cli_opt graph_opts[] = {
    CLI_OPTS_COMMON,
    {"format", 0, 1, OPT_FORMAT},
    {0},
};

int cli_cmd_graph(cli_ctx *ctx, int argc, char **argv)
{
    flow_cfg c = {0};
    cbx_flow *f = NULL;
    int rc = flow_parse(ctx, "graph", graph_opts, graph_help, NULL, argc, argv, &c);
    if (rc || (rc = flow_need_file(&c)) || (rc = flow_load_file("graph", c.file, NULL, 0, &f)))
        goto out;
    char *text = cbx_flow_graph(f, c.format ? c.format : "mermaid");
    if (!text) {
        cli_err("graph: out of memory");
        rc = CLI_EXIT_INTERNAL;
        goto out;
    }
    size_t len = strlen(text);
    if (cli_write_all(STDOUT_FILENO, text, len) < 0 ||
        (len && text[len - 1] != '\n' && cli_write_all(STDOUT_FILENO, "\n", 1) < 0))
        rc = CLI_EXIT_INTERNAL;
    free(text);
out:
    cbx_flow_free(f);
    flow_cfg_free(&c);
    return rc < 0 ? CLI_EXIT_OK : rc;
}
