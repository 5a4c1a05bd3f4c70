/* Results: release, JSON form, wall-clock stamps, execution ids. */
#include "runtime/runtime_internal.h"

#include "core/uuid.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t cbx__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cbx__copy_text(char *dst, size_t size, const char *src)
{
    if (!size)
        return;
    size_t n = src ? strnlen(src, size - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

void cbx_result_clear(cbx_result *r)
{
    if (!r)
        return;
    json_decref(r->outputs);
    json_decref(r->metadata);
    json_decref(r->attempts);
    memset(r, 0, sizeof *r);
}

json_t *cbx_result_to_json(const cbx_result *r)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:b, s:O?, s:O?, s:O?, s:i, s:I, s:f, s:f}", "id",
                  r->id, "executor", r->executor, "status", cbx_status_name(r->status), "rc", r->rc,
                  "error", r->error, "fallback_used", r->fallback_used, "outputs", r->outputs,
                  "metadata", r->metadata, "attempts", r->attempts, "attempt_count",
                  (int)r->attempt_count, "submitted_ms", (json_int_t)r->submitted_ms, "queued_ms",
                  (double)r->queued_ns / 1e6, "duration_ms", (double)r->duration_ns / 1e6);
    if (j && r->rc)
        json_object_set_new(j, "rc_name", json_string(cbx_err_name(r->rc)));
    return j;
}

static uint64_t ms_field(const json_t *j, const char *name)
{
    const json_t *v = json_object_get(j, name);
    double d = json_is_number(v) ? json_number_value(v) : 0;
    return d > 0 ? (uint64_t)d : 0;
}

int cbx_result_from_json(const json_t *j, cbx_result *out, cbx_err *err)
{
    memset(out, 0, sizeof *out);
    const char *status = json_string_value(json_object_get(j, "status"));
    if (!json_is_object(j) || !status || cbx_status_parse(status, &out->status) < 0)
        return cbx_err_set(err, CBX_EPARSE, "not a result: %s",
                           !json_is_object(j) ? "not an object" : "no known \"status\"");
    cbx__copy_text(out->id, sizeof out->id, json_string_value(json_object_get(j, "id")));
    cbx__copy_text(out->executor, sizeof out->executor,
                   json_string_value(json_object_get(j, "executor")));
    cbx__copy_text(out->error, sizeof out->error, json_string_value(json_object_get(j, "error")));
    out->rc = (int)json_integer_value(json_object_get(j, "rc"));
    out->fallback_used = json_is_true(json_object_get(j, "fallback_used"));
    json_t *v;
    if ((v = json_object_get(j, "outputs")) && !json_is_null(v))
        out->outputs = json_incref(v);
    if ((v = json_object_get(j, "metadata")) && !json_is_null(v))
        out->metadata = json_incref(v);
    if ((v = json_object_get(j, "attempts")) && json_is_array(v))
        out->attempts = json_incref(v);
    out->attempt_count = (uint32_t)json_integer_value(json_object_get(j, "attempt_count"));
    out->submitted_ms = ms_field(j, "submitted_ms");
    out->queued_ns = (uint64_t)(json_number_value(json_object_get(j, "queued_ms")) * 1e6);
    out->duration_ns = (uint64_t)(json_number_value(json_object_get(j, "duration_ms")) * 1e6);
    return 0;
}

/* Ids come from the runtime's own generator (no system call per execution), in the time-ordered
 * form of core/uuid.h: random ids would cost the journal's indexes three times as much (splitmix64
 * over a per-runtime state seeded from getrandom: ids need to be unique, not secret). The time is
 * the caller's (the submission's, from cbx__rt_wall_ms: no clock read here). */
void cbx__uuid4(uint64_t *rng, cbx__uuid_seq *seq, uint64_t wall_ms, char out[40])
{
    uint64_t r1 = cbx__splitmix64(rng), r2 = cbx__splitmix64(rng);
    cbx__uuid7_next(seq, wall_ms, r1, r2, out);
}
