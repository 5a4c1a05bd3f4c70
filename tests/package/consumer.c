/* A program outside the tree that links the installed libcbx: through pkg-config and through
 * find_package(cbx). It uses a jansson value from the public API, as users do. */
#include <cbx/breaker.h>
#include <cbx/policy.h>
#include <jansson.h>
#include <stdio.h>

int main(void)
{
    json_t *block = json_pack("{s{si}}", "breaker", "consecutive_failures", 2);
    cbx_policy *p = NULL;
    cbx_err err;
    if (!block || cbx_policy_new_json(&p, block, NULL, &err) != 0) {
        fprintf(stderr, "cbx_policy_new_json: %s\n", block ? err.msg : "no memory");
        return 1;
    }
    cbx_breaker *b = cbx_policy_breaker(p);
    for (int i = 0; i < 2; i++)
        cbx_breaker_record(b, cbx_breaker_acquire(b), CBX_OUTCOME_ERROR, 0);
    int open = cbx_breaker_acquire(b).rc == CBX_ECIRCUIT_OPEN;
    cbx_policy_free(p);
    json_decref(block);
    puts(open ? "open" : "closed");
    return open ? 0 : 1;
}
