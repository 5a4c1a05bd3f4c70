/* libFuzzer target: a policy block, as YAML, through the policy parser and then made into a
 * policy (breaker, retry, rate limit, bulkhead, fallback, timeout). */
#include "cbx/policy.h"
#include "cbx/yaml.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cbx_yaml_doc doc;
    cbx_err err;
    if (cbx_yaml_load_string((const char *)data, size, "policy.yaml", &doc, &err) < 0)
        return 0;
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    if (doc.root && cbx_policy_opts_parse(&o, doc.root, &err) == 0) {
        cbx_policy *p = NULL;
        if (cbx_policy_new(&p, &o, &err) == 0)
            cbx_policy_free(p);
    }
    cbx_yaml_doc_clear(&doc);
    return 0;
}
