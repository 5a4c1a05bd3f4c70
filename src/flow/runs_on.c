/* Reading `runs_on:` and wrapping a step's work for the remote executor (see runs_on.h). */
#include "flow/runs_on.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbx/dist.h"

static int bad(char *msg, size_t len, const char **sub, const char *where, const char *text)
{
    snprintf(msg, len, "%s", text);
    *sub = where;
    return -1;
}

int cbx__runs_on_parse(const json_t *v, char **queue, char *msg, size_t len, const char **sub)
{
    *queue = NULL;
    *sub = "";
    const char *name = NULL;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "workers") == 0)
            name = "default";
        else if (strcmp(s, "local") == 0)
            name = "";
        else {
            snprintf(msg, len, "expected workers, local or {queue: NAME}, got '%.64s'", s);
            return -1;
        }
    } else if (json_is_object(v)) {
        const char *key;
        json_t *kv;
        json_object_foreach((json_t *)v, key, kv)
        {
            if (strcmp(key, "queue") != 0) {
                snprintf(msg, len, "unknown key '%.64s' (runs_on takes queue:)", key);
                *sub = key; /* borrowed from v */
                return -1;
            }
        }
        json_t *q = json_object_get(v, "queue");
        if (!q)
            return bad(msg, len, sub, "", "{queue: NAME} needs queue:");
        if (!json_is_string(q) || !cbx_remote_queue_ok(json_string_value(q)))
            return bad(msg, len, sub, "queue",
                       "queue: expected 1 to 64 letters, digits, '_' or '-'");
        name = json_string_value(q);
    } else {
        return bad(msg, len, sub, "", "expected workers, local or {queue: NAME}");
    }
    *queue = strdup(name);
    return *queue ? 0 : -ENOMEM;
}

int cbx__runs_on_remote(const char *queue)
{
    return queue && *queue;
}

json_t *cbx__runs_on_params(const char *executor, json_t *params, const char *queue)
{
    return json_pack("{s:s, s:O, s:s}", "executor", executor, "params", params, "queue", queue);
}
