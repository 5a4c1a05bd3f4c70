/* Where the cbx command keeps named breakers: the host-wide store (the state directory), or, when
 * CBX_BREAKER_STORE names a NATS server, the cluster store in JetStream KV (cbx/dist.h). */
#include "cli.h"
#include "output.h"

#include "cbx/dist.h"

#include <stdlib.h>
#include <string.h>

int cli_breaker_store_open(cbx_breaker_store **out, cbx_err *err)
{
    const char *where = getenv("CBX_BREAKER_STORE");
    if (!where || !*where || strcmp(where, "host") == 0)
        return cbx_breaker_store_host_new(out, NULL, err);
    if (strcmp(where, "nats") == 0)
        return cbx_breaker_store_nats_new(out, NULL, err); /* $NATS_URL */
    if (strncmp(where, "nats://", 7) == 0 || strncmp(where, "tls://", 6) == 0)
        return cbx_breaker_store_nats_new(out, where, err);
    return cbx_err_set(err, CBX_EINVAL_CONFIG,
                       "CBX_BREAKER_STORE: '%s' is not 'host', 'nats' or a nats:// URL", where);
}

int cli_breaker_store_chosen(const char *cmd, cbx_breaker_store **out)
{
    *out = NULL;
    const char *where = getenv("CBX_BREAKER_STORE");
    if (!where || !*where)
        return 0;
    cbx_err err;
    cbx_err_clear(&err);
    if (cli_breaker_store_open(out, &err) == 0)
        return 0;
    cli_err("%s: breaker store: %s", cmd, err.msg[0] ? err.msg : cbx_strerror(err.code));
    return CLI_EXIT_USAGE;
}
