/* libFuzzer target: a flow file through the whole loader (YAML, shapes, policies, templates,
 * references, cycles), then its graph. */
#include "cbx/diag.h"
#include "cbx/flow.h"
#include "cbx/registry.h"
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
        cbx_yaml_set_max_bytes(1 << 20); /* a sub-flow named /dev/zero stops early */
    }
    cbx_flow *f = NULL;
    cbx_diag d = {0};
    if (cbx_flow_load_string(&f, (const char *)data, size, "fuzz.yaml", reg, &d) == 0) {
        (void)cbx_flow_step_count(f);
        free(cbx_flow_graph(f, "mermaid"));
    }
    cbx_flow_free(f);
    cbx_diag_clear(&d);
    return 0;
}
