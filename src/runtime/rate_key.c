/* A policy's rate_limit.key, bound when a request using the policy is submitted: the limiter of
 * that name in the runtime's breaker store - the host store's shared arrival time, or the
 * cluster store's bucket in CBX_RATES - so that every process naming the key takes from one
 * bucket, as `cbx exec --rate-key` does. A store that keeps no shared limiters (a runtime's own
 * in-memory store) refuses the request. */
#include "runtime/runtime_internal.h"

#include <errno.h>
#include <stdio.h>

static int fill(void *ud, const char *key, cbx_ratelimit_opts *o, cbx_err *err)
{
    return cbx_breaker_store_limiter_opts(ud, key, o, err);
}

int cbx__rate_key_resolve(cbx_runtime *rt, cbx_policy *p, char *why, size_t len)
{
    if (!p || !cbx_policy_rate_limit_pending(p))
        return 0;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_policy_rate_limit_bind(p, fill, cbx_runtime_breakers(rt), &err);
    if (r == -ENOTSUP)
        snprintf(why, len,
                 "policy '%s': rate_limit.key '%s': this runtime's breaker store keeps no shared "
                 "rate limits (the host store and the cluster store do)",
                 cbx_policy_name(p), cbx_policy_rate_limit_key(p));
    else if (r)
        snprintf(why, len, "policy '%s': rate_limit.key '%s': %s", cbx_policy_name(p),
                 cbx_policy_rate_limit_key(p), err.msg[0] ? err.msg : cbx_strerror(r));
    return r;
}
