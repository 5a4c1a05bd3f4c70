/* The chaos executor: fails, delays, hangs or answers with poor quality at configured rates, on
 * a libuv timer (no thread). For demos, tests and benchmarks of the policies around it. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "cbx/executor.h"
#include "executors/builtins.h"
#include "resilience/rng.h"
#include "runtime/builtins.h"

typedef enum chaos_decision {
    DECIDE_SUCCEED,
    DECIDE_POOR,
    DECIDE_FAIL,
    DECIDE_HANG
} chaos_decision;

static const char *const decision_names[] = {"success", "poor_quality", "fail", "hang"};

typedef struct chaos_task {
    uv_timer_t timer;
    cbx_task *t;
    chaos_decision decision;
    uint64_t delay_ms;
    double quality;
    int cancelled;
    int closing;
} chaos_task;

static double num(const json_t *p, const char *key)
{
    return json_number_value(json_object_get(p, key));
}

static json_t *metadata(const chaos_task *s, const json_t *p)
{
    json_t *m = json_pack("{s:s, s:I}", "decision", decision_names[s->decision], "delay_ms",
                          (json_int_t)s->delay_ms);
    if (!m)
        return NULL;
    if (s->decision == DECIDE_SUCCEED || s->decision == DECIDE_POOR)
        json_object_set_new(m, "quality", json_real(s->quality));
    const json_t *seed = json_object_get(p, "seed");
    if (seed)
        json_object_set(m, "seed", (json_t *)seed);
    if (s->cancelled)
        json_object_set_new(m, "stopped", json_true());
    return m;
}

static void chaos_closed(uv_handle_t *h)
{
    chaos_task *s = h->data;
    cbx_task *t = s->t;
    const json_t *p = cbx_task_params(t);
    json_t *meta = metadata(s, p);
    if (s->cancelled) {
        if (s->decision == DECIDE_HANG)
            cbx_task_done(t, CBX_OUTCOME_TIMEOUT, NULL, meta, "chaos: hung until stopped");
        else
            cbx_task_done(t, CBX_OUTCOME_TIMEOUT, NULL, meta,
                          "chaos: stopped during a %llu ms delay", (unsigned long long)s->delay_ms);
        return;
    }
    if (s->decision == DECIDE_FAIL) {
        const char *msg = json_string_value(json_object_get(p, "error"));
        cbx_task_done(t, CBX_OUTCOME_ERROR, NULL, meta, "%s",
                      msg ? msg : "chaos: injected failure");
        return;
    }
    cbx_task_set_quality(t, s->quality);
    json_t *out = json_object_get(p, "outputs");
    cbx_task_done(t, CBX_OUTCOME_SUCCESS, out ? json_deep_copy(out) : json_object(), meta, NULL);
}

static void close_once(chaos_task *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, chaos_closed);
}

static void chaos_fire(uv_timer_t *timer)
{
    close_once(timer->data);
}

static int chaos_start(cbx_task *t)
{
    chaos_task *s = cbx_task_state(t);
    const json_t *p = cbx_task_params(t);
    s->t = t;

    uint64_t rng;
    const json_t *seed = json_object_get(p, "seed");
    if (seed) /* the decisions are a function of (seed, attempt number) */
        cbx__rng_seed(&rng, (uint64_t)json_integer_value(seed) ^
                                ((uint64_t)cbx_task_attempt(t) * 0x9e3779b97f4a7c15ULL));
    else
        cbx__rng_seed(&rng, cbx__rng_entropy(s));
    /* four draws, always in this order, so that a seed replays exactly */
    double u_hang = cbx__rng_unit(&rng);
    double u_fail = cbx__rng_unit(&rng);
    double u_poor = cbx__rng_unit(&rng);
    uint64_t jitter = (uint64_t)json_integer_value(json_object_get(p, "delay_jitter_ms"));
    uint64_t extra = cbx__rng_between(&rng, 0, jitter);

    if (u_hang < num(p, "timeout_rate"))
        s->decision = DECIDE_HANG;
    else if (u_fail < num(p, "fail_rate"))
        s->decision = DECIDE_FAIL;
    else if (u_poor < num(p, "poor_quality_rate"))
        s->decision = DECIDE_POOR;
    else
        s->decision = DECIDE_SUCCEED;
    s->quality = s->decision == DECIDE_POOR ? num(p, "poor_quality") : num(p, "quality");
    s->delay_ms = (uint64_t)json_integer_value(json_object_get(p, "delay_ms")) + extra;

    int r = uv_timer_init(cbx_task_loop(t), &s->timer);
    if (r < 0)
        return r;
    s->timer.data = s;
    if (s->decision == DECIDE_HANG)
        return 0; /* only a cancel (timeout, deadline) ends it */
    /* libuv counts from the loop's cached time in whole ms: refresh it and add one ms so that
     * the delay is never cut short */
    uv_update_time(cbx_task_loop(t));
    uv_timer_start(&s->timer, chaos_fire, s->delay_ms ? s->delay_ms + 1 : 0, 0);
    return 0;
}

static void chaos_cancel(cbx_task *t)
{
    chaos_task *s = cbx_task_state(t);
    s->cancelled = 1;
    close_once(s);
}

static const cbx_param chaos_params[] = {
    {.name = "fail_rate",
     .type = CBX_PARAM_NUMBER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 1,
     .description = "probability that an attempt fails (after its delay)"},
    {.name = "timeout_rate",
     .type = CBX_PARAM_NUMBER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 1,
     .description = "probability that an attempt hangs until it is cancelled"},
    {.name = "delay_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 86400000,
     .description = "how long an attempt takes, in ms"},
    {.name = "delay_jitter_ms",
     .type = CBX_PARAM_INTEGER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 86400000,
     .description = "a uniform extra delay of 0 to this many ms"},
    {.name = "quality",
     .type = CBX_PARAM_NUMBER,
     .default_json = "1",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 1,
     .description = "the quality score of a success"},
    {.name = "poor_quality_rate",
     .type = CBX_PARAM_NUMBER,
     .default_json = "0",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 1,
     .description = "probability that a success has poor_quality instead"},
    {.name = "poor_quality",
     .type = CBX_PARAM_NUMBER,
     .default_json = "0.1",
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 1,
     .description = "the quality score of a poor success"},
    {.name = "seed",
     .type = CBX_PARAM_INTEGER,
     .description = "makes the decisions a function of (seed, attempt number); random if absent"},
    {.name = "outputs", .type = CBX_PARAM_ANY, .description = "what a success returns ({})"},
    {.name = "error",
     .type = CBX_PARAM_STRING,
     .default_json = "\"chaos: injected failure\"",
     .description = "the error message of a failure"},
    {.name = NULL},
};

static const cbx_executor_type chaos_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "chaos",
    .summary = "Fail, delay, hang or return poor quality at configured rates (for tests and demos)",
    .params = chaos_params,
    .task_size = sizeof(chaos_task),
    .start = chaos_start,
    .cancel = chaos_cancel,
};

const cbx_executor_type *cbx__chaos_type(void)
{
    return &chaos_type;
}
