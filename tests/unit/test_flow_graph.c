/* A flow's DAG as Mermaid and DOT. */
#include "cbx/flow.h"
#include "cbx/registry.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* reg_check: with the built-in executors checked, else with no registry (any name goes) */
static cbx_flow *load_with(const char *text, const char *name, int reg_check)
{
    cbx_registry *reg = NULL;
    if (reg_check)
        cr_assert_eq(cbx_registry_new(&reg, NULL), 0);
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load_string(&f, text, strlen(text), name, reg, &d);
    char b[1024] = "";
    if (d.n)
        cbx_err_format(&d.items[0], b, sizeof b);
    cr_assert_eq(rc, 0, "%s", b);
    cbx_diag_clear(&d);
    cbx_registry_free(reg); /* only the check needs it */
    return f;
}

static cbx_flow *load(const char *text, const char *name)
{
    return load_with(text, name, 1);
}

static const char *fan = "name: \"fan \\\"out\\\"\"\n"
                         "steps:\n"
                         "  - {name: list, executor: command, config: {argv: [echo]}}\n"
                         "  - name: each\n"
                         "    executor: command\n"
                         "    foreach: \"{{ steps.list.outputs }}\"\n"
                         "    config: {argv: [echo, \"{{ item }}\"]}\n"
                         "  - name: group\n"
                         "    mode: parallel\n"
                         "    steps:\n"
                         "      - {name: a, executor: command, config: {argv: [echo]}, needs: b}\n"
                         "      - {name: b, executor: command, config: {argv: [echo]}}\n"
                         "    needs: each\n"
                         "  - name: report\n"
                         "    executor: command\n"
                         "    when: \"true\"\n"
                         "    config: {argv: [echo, \"{{ steps.group.outputs.a.stdout }}\"]}\n";

Test(flow_graph, mermaid)
{
    cbx_flow *f = load(fan, "fan.yaml");
    char *g = cbx_flow_graph(f, "mermaid");
    cr_assert_not_null(g);
    cr_assert_str_eq(g, "flowchart TD\n"
                        "    n_0[\"list<br/>command\"]\n"
                        "    n_1[\"each<br/>command, foreach\"]\n"
                        "    subgraph n_2[\"group (steps, parallel)\"]\n"
                        "        n_2_0[\"a<br/>command\"]\n"
                        "        n_2_1[\"b<br/>command\"]\n"
                        "        n_2_1 --> n_2_0\n"
                        "    end\n"
                        "    n_3[\"report<br/>command, when\"]\n"
                        "    n_0 --> n_1\n"
                        "    n_1 --> n_2\n"
                        "    n_2 --> n_3\n");
    free(g);
    cbx_flow_free(f);
}

Test(flow_graph, dot)
{
    cbx_flow *f = load(fan, "fan.yaml");
    char *g = cbx_flow_graph(f, "dot");
    cr_assert_not_null(g);
    cr_assert_str_eq(g, "digraph \"fan \\\"out\\\"\" {\n"
                        "    compound=true;\n"
                        "    rankdir=TB;\n"
                        "    node [shape=box];\n"
                        "    n_0 [label=\"list\\ncommand\"];\n"
                        "    n_1 [label=\"each\\ncommand, foreach\"];\n"
                        "    subgraph cluster_n_2 {\n"
                        "        label=\"group (steps, parallel)\";\n"
                        "        n_2_0 [label=\"a\\ncommand\"];\n"
                        "        n_2_1 [label=\"b\\ncommand\"];\n"
                        "        n_2_1 -> n_2_0;\n"
                        "    }\n"
                        "    n_3 [label=\"report\\ncommand, when\"];\n"
                        "    n_0 -> n_1;\n"
                        "    n_1 -> n_2_0 [lhead=cluster_n_2];\n"
                        "    n_2_0 -> n_3 [ltail=cluster_n_2];\n"
                        "}\n");
    free(g);
    cbx_flow_free(f);
}

Test(flow_graph, sequences_show_their_order)
{
    cbx_flow *f = load("name: s\nsteps:\n  - name: seq\n    executor: steps\n    steps:\n"
                       "      - {name: one, executor: command, config: {argv: [echo]}}\n"
                       "      - {name: two, executor: command, config: {argv: [echo]}}\n"
                       "      - {name: three, executor: command, config: {argv: [echo]}}\n",
                       "s.yaml");
    char *g = cbx_flow_graph(f, "mermaid");
    cr_assert_str_eq(g, "flowchart TD\n"
                        "    subgraph n_0[\"seq (steps, sequence)\"]\n"
                        "        n_0_0[\"one<br/>command\"]\n"
                        "        n_0_1[\"two<br/>command\"]\n"
                        "        n_0_2[\"three<br/>command\"]\n"
                        "        n_0_0 --> n_0_1\n"
                        "        n_0_1 --> n_0_2\n"
                        "    end\n");
    free(g);
    cbx_flow_free(f);
}

Test(flow_graph, sub_flows_are_subgraphs)
{
    char path[1024];
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    snprintf(path, sizeof path, "%.*s/../flows/parent.yaml", (int)(slash - file), file);
    cbx_registry *reg = NULL;
    cr_assert_eq(cbx_registry_new(&reg, NULL), 0);
    cbx_flow *f = NULL;
    cr_assert_eq(cbx_flow_load(&f, path, reg, NULL), 0);
    cbx_registry_free(reg);
    char *g = cbx_flow_graph(f, "dot");
    cr_assert_str_eq(g, "digraph \"parent\" {\n"
                        "    compound=true;\n"
                        "    rankdir=TB;\n"
                        "    node [shape=box];\n"
                        "    n_0 [label=\"prepare\\ncommand\"];\n"
                        "    subgraph cluster_n_1 {\n"
                        "        label=\"child (flow child.yaml)\";\n"
                        "        subgraph cluster_n_1_0 {\n"
                        "            label=\"inner (flow grandchild.yaml)\";\n"
                        "            n_1_0_0 [label=\"say\\ncommand\"];\n"
                        "        }\n"
                        "    }\n"
                        "    n_0 -> n_1_0_0 [lhead=cluster_n_1];\n"
                        "}\n");
    free(g);
    g = cbx_flow_graph(f, "mermaid");
    cr_assert(strstr(g, "    subgraph n_1[\"child (flow child.yaml)\"]\n"
                        "        subgraph n_1_0[\"inner (flow grandchild.yaml)\"]\n"
                        "            n_1_0_0[\"say<br/>command\"]\n"
                        "        end\n"
                        "    end\n"
                        "    n_0 --> n_1\n"),
              "%s", g);
    free(g);
    cbx_flow_free(f);
}

Test(flow_graph, labels_are_escaped)
{
    cbx_flow *f =
        load_with("name: e\nsteps:\n  - {name: a, executor: \"x<y>\\\"z\"}\n", "e.yaml", 0);
    char *g = cbx_flow_graph(f, "mermaid");
    cr_assert(strstr(g, "n_0[\"a<br/>x#lt;y#gt;#quot;z\"]"), "%s", g);
    free(g);
    g = cbx_flow_graph(f, "dot");
    cr_assert(strstr(g, "n_0 [label=\"a\\nx<y>\\\"z\"];"), "%s", g);
    free(g);
    cbx_flow_free(f);
}

Test(flow_graph, unknown_format_and_empty_flow)
{
    cbx_flow *f = load("name: empty\nsteps: []\n", "e.yaml");
    cr_assert_null(cbx_flow_graph(f, "svg"));
    cr_assert_null(cbx_flow_graph(f, NULL));
    cr_assert_null(cbx_flow_graph(NULL, "dot"));
    char *g = cbx_flow_graph(f, "mermaid");
    cr_assert_str_eq(g, "flowchart TD\n");
    free(g);
    cbx_flow_free(f);
}

Test(flow_graph, large_flows)
{
    /* a 500-step chain: the text grows past any first buffer */
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap);
    n += (size_t)snprintf(text + n, cap - n, "name: chain\nsteps:\n");
    for (int i = 0; i < 500; i++) {
        char needs[32] = "";
        if (i)
            snprintf(needs, sizeof needs, ", needs: s%d", i - 1);
        n += (size_t)snprintf(text + n, cap - n,
                              "  - {name: s%d, executor: command, config: {argv: [echo]}%s}\n", i,
                              needs);
    }
    cbx_flow *f = load(text, "chain.yaml");
    free(text);
    char *g = cbx_flow_graph(f, "dot");
    cr_assert(strstr(g, "    n_498 -> n_499;\n}\n"), "%s", g + strlen(g) - 100);
    free(g);
    cbx_flow_free(f);
}
