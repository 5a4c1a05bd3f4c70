/* libFuzzer target: a workflow file through the whole loader (YAML, places, rules and helpers in
 * the Lua sandbox, transitions, policies), the structure check, then its graph. */
#include "cbx/diag.h"
#include "cbx/registry.h"
#include "cbx/workflow.h"
#include "cbx/yaml.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cbx_registry *reg;
    if (!reg) {
        if (cbx_registry_new(&reg, NULL) < 0)
            abort();
        cbx_yaml_set_max_bytes(1 << 20);
    }
    cbx_workflow *w = NULL;
    cbx_diag d = {0};
    if (cbx_workflow_load_string(&w, (const char *)data, size, "fuzz.yaml", reg, &d) == 0) {
        (void)cbx_workflow_check(w, 2000, &d);
        free(cbx_workflow_graph(w, NULL, "mermaid"));
        free(cbx_workflow_graph(w, NULL, "dot"));
    }
    cbx_workflow_free(w);
    cbx_diag_clear(&d);
    return 0;
}
