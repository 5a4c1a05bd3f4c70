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

/* splitmix64 over a per-runtime state seeded from getrandom: ids need to be unique, not secret. */
static uint64_t next64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Ids come from the runtime's own generator (no system call per execution), in the time-ordered
 * form of core/uuid.h: random ids would cost the journal's indexes three times as much. The
 * time is the caller's (the submission's, from cbx__rt_wall_ms: no clock read here). */
void cbx__uuid4(uint64_t *rng, cbx__uuid_seq *seq, uint64_t wall_ms, char out[40])
{
    uint64_t r1 = next64(rng), r2 = next64(rng);
    cbx__uuid7_next(seq, wall_ms, r1, r2, out);
}
