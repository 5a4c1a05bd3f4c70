/* What the flow tests share: a registry and a runtime made before each test and freed after it
 * (name the suite's .init and .fini flow_fixture_setup and flow_fixture_teardown), and a flow
 * loaded from YAML text, its first problem in the failed assertion. */
#ifndef CBX_TESTS_FLOW_FIXTURE_H
#define CBX_TESTS_FLOW_FIXTURE_H

#include "cbx/flow.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <string.h>

static cbx_registry *reg;
static cbx_runtime *rt;

static void flow_fixture_setup(void)
{
    cbx_err e;
    cr_assert_eq(cbx_registry_new(&reg, &e), 0, "%s", e.msg);
    cbx_runtime_opts o = {.registry = reg};
    cr_assert_eq(cbx_runtime_new(&rt, &o, &e), 0, "%s", e.msg);
}

static void flow_fixture_teardown(void)
{
    cbx_runtime_free(rt);
    cbx_registry_free(reg);
}

/* rc of a load (cbx_flow_load_*) asserted 0, else the first problem of d as the message; d is
 * cleared either way. */
static inline void flow_fixture_assert_loaded(int rc, cbx_diag *d)
{
    cbx_err first = {0};
    if (rc < 0)
        cbx_diag_first(d, &first);
    cbx_diag_clear(d);
    cr_assert_eq(rc, 0, "%s:%d:%d: %s", first.where, first.line, first.col, first.msg);
}

/* text loaded as "inline.yaml" with the registry, asserted to load. */
static inline cbx_flow *flow_fixture_load(const char *text)
{
    cbx_diag d = {0};
    cbx_flow *f = NULL;
    int rc = cbx_flow_load_string(&f, text, strlen(text), "inline.yaml", reg, &d);
    flow_fixture_assert_loaded(rc, &d);
    return f;
}

#endif
