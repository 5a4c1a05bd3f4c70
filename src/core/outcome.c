/* Names of call outcomes. */
#include "cbx/outcome.h"

#include "cbx/err.h"

#include <string.h>

static const char *const outcome_names[] = {
#define CBX__OUTCOME_STR(name, str) str,
    CBX_OUTCOME_MAP(CBX__OUTCOME_STR)
#undef CBX__OUTCOME_STR
};

const char *cbx_outcome_name(cbx_outcome k)
{
    if ((unsigned)k >= CBX_OUTCOME__COUNT)
        return "unknown";
    return outcome_names[k];
}

int cbx_outcome_parse(const char *name, cbx_outcome *out)
{
    for (unsigned i = 0; name && i < CBX_OUTCOME__COUNT; i++) {
        if (strcmp(name, outcome_names[i]) == 0) {
            *out = (cbx_outcome)i;
            return 0;
        }
    }
    return CBX_EPARSE;
}
