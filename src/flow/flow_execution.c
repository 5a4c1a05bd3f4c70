/* `config: {execution: {timeout, mode}}`: the execution settings of the seed's flow files, at the
 * top of a flow (the whole run) or in a step's config (each attempt). They are read, or refused
 * with a message that says what cbx takes instead: never ignored. */
#include "flow/flow_execution.h"

#include "runtime/builtins.h"

#include "cbx/err.h"
#include "cbx/units.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *where, size_t wlen, const char *w, char *msg, size_t mlen, const char *fmt,
                ...) __attribute__((format(printf, 6, 7)));
static int fail(char *where, size_t wlen, const char *w, char *msg, size_t mlen, const char *fmt,
                ...)
{
    snprintf(where, wlen, "%s", w);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, mlen, fmt, ap);
    va_end(ap);
    return -1;
}

int cbx__flow_execution_read(const json_t *execution, int whole_flow, uint64_t *timeout_ns,
                             char *where, size_t wlen, char *msg, size_t mlen)
{
    if (!json_is_object(execution))
        return fail(where, wlen, "execution", msg, mlen,
                    "expected a mapping (timeout, mode), got %s", cbx__json_kind(execution));
    const char *key;
    json_t *v;
    int found = 0;
    json_object_foreach((json_t *)execution, key, v)
    {
        if (strcmp(key, "mode") == 0) {
            /* cbx runs the steps that do not depend on each other concurrently: "async" says
             * just that; anything else would be ignored, so it is refused */
            if (!json_is_string(v) || strcmp(json_string_value(v), "async") != 0)
                return fail(where, wlen, "execution.mode", msg, mlen,
                            "only 'async' is supported (independent steps run concurrently, up "
                            "to the flow's concurrency:)");
        } else if (strcmp(key, "timeout") == 0) {
            uint64_t ns = 0;
            if (json_is_number(v)) {
                double s = json_number_value(v);
                if (!(s > 0) || s * 1e9 >= 1.8e19)
                    return fail(where, wlen, "execution.timeout", msg, mlen,
                                "expected a positive number of seconds, got %g", s);
                ns = (uint64_t)llround(s * 1e9);
            } else if (json_is_string(v)) {
                if (cbx_duration_parse_ns(json_string_value(v), &ns) != 0 || ns == 0)
                    return fail(where, wlen, "execution.timeout", msg, mlen,
                                "expected seconds or a duration (\"30s\", \"5m\"), got \"%.64s\"",
                                json_string_value(v));
            } else {
                return fail(where, wlen, "execution.timeout", msg, mlen,
                            "expected seconds or a duration (\"30s\", \"5m\"), got %s",
                            cbx__json_kind(v));
            }
            *timeout_ns = ns;
            found = 1;
        } else {
            char w[160];
            snprintf(w, sizeof w, "execution.%s", key);
            return fail(where, wlen, w, msg, mlen,
                        "unknown execution setting '%.64s' (cbx reads timeout and mode; %s)", key,
                        whole_flow ? "the flow's other settings are top-level keys"
                                   : "a step's policy: holds retries, breakers and limits");
        }
    }
    return found;
}
