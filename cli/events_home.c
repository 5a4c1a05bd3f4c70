/* Where the cbx command publishes workflow events: nowhere, unless CBX_EVENTS is 'nats' (the
 * server of $NATS_URL) or a nats:// or tls:// URL (cbx/dist.h, cbx.events.workflow.<name>). */
#include "cli.h"
#include "output.h"

#include "cbx/dist.h"

#include <stdlib.h>
#include <string.h>

int cli_workflow_events_open(const char *cmd, const char *workflow, cbx_workflow_events **out)
{
    *out = NULL;
    const char *where = getenv("CBX_EVENTS");
    if (!where || !*where || strcmp(where, "none") == 0)
        return 0;
    const char *url = NULL;
    if (strncmp(where, "nats://", 7) == 0 || strncmp(where, "tls://", 6) == 0)
        url = where;
    else if (strcmp(where, "nats") != 0) {
        cli_err("%s: CBX_EVENTS: '%s' is not 'none', 'nats' or a nats:// URL", cmd, where);
        return CLI_EXIT_USAGE;
    }
    cbx_err err;
    cbx_err_clear(&err);
    if (cbx_workflow_events_nats_new(out, url, workflow, &err) < 0) {
        cli_err("%s: CBX_EVENTS: %s", cmd, err.msg[0] ? err.msg : cbx_strerror(err.code));
        return CLI_EXIT_INTERNAL;
    }
    return 0;
}
