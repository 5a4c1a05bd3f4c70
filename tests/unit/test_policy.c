/* The policy at work: each part's effect through cbx_policy_call, and the asynchronous
 * interface step by step. Time is virtual throughout. */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "cbx/policy.h"

#define MS(x) ((uint64_t)(x)*CBX_NS_PER_MS)
#define S(x)  ((uint64_t)(x)*CBX_NS_PER_S)

static cbx_clock *clk;

static void setup(void)
{
    clk = cbx_clock_virtual(1000);
}

static void teardown(void)
{
    cbx_clock_free(clk);
}

TestSuite(policy, .init = setup, .fini = teardown);

/* A policy from JSON on the test clock, named "test". */
static cbx_policy *make(const char *text)
{
    json_error_t je;
    json_t *b = json_loads(text, 0, &je);
    cr_assert_not_null(b, "bad JSON in the test: %s", je.text);
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    o.clock = clk;
    o.name = "test";
    cbx_policy *p = NULL;
    cbx_err err;
    int rc = cbx_policy_new_json(&p, b, &o, &err);
    cr_assert_eq(rc, 0, "%s: %s", err.where, err.msg);
    json_decref(b);
    return p;
}

/* A scripted function: outcome per call (the last one repeats), and what else it does. */
typedef struct script {
    cbx_outcome outcomes[8];
    int n;
    int calls;
    uint64_t advance_ms;     /* how long each call takes on the virtual clock */
    uint64_t retry_after_ns; /* asked for on every call */
    double quality;          /* reported when >= 0 */
    const char *error;       /* reported on failures */
    uint32_t seen_number[8]; /* cbx_attempt.number per call */
    uint64_t seen_deadline;  /* cbx_attempt.deadline_ns of the last call */
    int stopped_after;       /* cbx_attempt_should_stop after the work */
} script;

static cbx_outcome scripted(const json_t *input, json_t **out, cbx_attempt *a, void *ud)
{
    (void)input;
    script *s = ud;
    int i = s->calls < s->n ? s->calls : s->n - 1;
    if (s->calls < 8)
        s->seen_number[s->calls] = a->number;
    s->calls++;
    s->seen_deadline = a->deadline_ns;
    if (s->advance_ms)
        cbx_clock_advance(a->clock, s->advance_ms);
    s->stopped_after = cbx_attempt_should_stop(a);
    *out = json_pack("{s:i}", "call", s->calls);
    a->retry_after_ns = s->retry_after_ns;
    if (s->quality >= 0)
        a->quality = s->quality;
    if (s->outcomes[i] != CBX_OUTCOME_SUCCESS && s->error)
        cbx_attempt_set_error(a, "%s (call %d)", s->error, s->calls);
    return s->outcomes[i];
}

#define SCRIPT(...)                                                                                \
    {                                                                                              \
        .outcomes = {__VA_ARGS__},                                                                 \
        .n = sizeof((cbx_outcome[]){__VA_ARGS__}) / sizeof(cbx_outcome), .quality = -1             \
    }

static int call_output(const cbx_policy_result *r)
{
    cr_assert_not_null(r->output);
    return (int)json_integer_value(json_object_get(r->output, "call"));
}

/* ---- plain calls ------------------------------------------------------------------------ */

Test(policy, success_keeps_the_output)
{
    cbx_policy *p = make("{}");
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
    cr_assert_eq(r.status, CBX_POLICY_SUCCESS);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.attempts, 1);
    cr_assert_eq(r.last_outcome, CBX_OUTCOME_SUCCESS);
    cr_assert_eq(call_output(&r), 1);
    cr_assert_eq(r.fallback_used, 0);
    cr_assert_str_eq(r.reason, "");
    cr_assert_eq(s.seen_deadline, CBX_POLICY_NO_DEADLINE);
    cbx_policy_result_clear(&r);
    cr_assert_null(r.output);
    cbx_policy_free(p);
}

Test(policy, failure_without_retry_is_one_attempt)
{
    cbx_policy *p = make("{}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    s.error = "connection refused";
    cbx_policy_result r;
    cbx_err err;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, &err), CBX_EFAILED);
    cr_assert_eq(err.code, CBX_EFAILED);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(r.status, CBX_POLICY_FAILED);
    cr_assert_null(r.output, "a failed attempt's output is not an answer");
    cr_assert_str_eq(r.error, "connection refused (call 1)");
    cr_assert(strstr(r.reason, "last error: connection refused"), "%s", r.reason);
    cr_assert(strstr(err.msg, "connection refused"), "%s", err.msg);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

/* ---- retry ---------------------------------------------------------------------------------- */

Test(policy, retry_attempts_three_calls_a_failing_function_three_times)
{
    cbx_policy *p = make(
        "{\"retry\": {\"attempts\": 3, \"backoff\": \"fixed\", \"initial\": \"10ms\", \"jitter\": "
        "\"none\"}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(s.calls, 3);
    cr_assert_eq(r.attempts, 3);
    cr_assert_eq(r.status, CBX_POLICY_FAILED);
    cr_assert_eq(r.rc, CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(r.last_outcome, CBX_OUTCOME_ERROR);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(s.seen_number[i], (uint32_t)i + 1);
        cr_assert_eq(r.attempt[i].outcome, CBX_OUTCOME_ERROR);
    }
    cr_assert_eq(r.attempt[0].delay_ns, MS(10));
    cr_assert_eq(r.attempt[1].delay_ns, MS(10));
    cr_assert_eq(r.attempt[2].delay_ns, 0);
    cr_assert_eq(r.elapsed_ns, MS(20), "two 10ms waits, slept on the virtual clock");
    cr_assert(strstr(r.reason, "3 attempts") && strstr(r.reason, "retries exhausted"), "%s",
              r.reason);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, retry_until_success)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 5, \"initial\": \"1ms\"}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR, CBX_OUTCOME_TIMEOUT, CBX_OUTCOME_SUCCESS);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
    cr_assert_eq(r.status, CBX_POLICY_SUCCESS);
    cr_assert_eq(r.attempts, 3);
    cr_assert_eq(call_output(&r), 3);
    cr_assert_eq(r.attempt[1].outcome, CBX_OUTCOME_TIMEOUT);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, outcome_not_in_retry_on_is_final)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 5, \"on\": [\"timeout\"]}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_EFAILED);
    cr_assert_eq(s.calls, 1);
    cr_assert(strstr(r.reason, "error is not retried"), "%s", r.reason);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, ignored_is_a_failure_that_is_neither_retried_nor_counted)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 3}, \"breaker\": {\"consecutive_failures\": "
                         "1}}");
    script s = SCRIPT(CBX_OUTCOME_IGNORED);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_EFAILED);
    cr_assert_eq(r.status, CBX_POLICY_FAILED);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(cbx_breaker_state_now(cbx_policy_breaker(p)), CBX_BREAKER_CLOSED);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, retry_after_overrides_the_backoff_and_is_capped)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 2, \"backoff\": \"fixed\", \"initial\": "
                         "\"10ms\", \"max\": \"5s\", \"jitter\": \"none\"}}");
    script s = SCRIPT(CBX_OUTCOME_RATE_LIMITED);
    s.retry_after_ns = S(2);
    cbx_policy_result r;
    cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL);
    cr_assert_eq(r.attempts, 2);
    cr_assert_eq(r.attempt[0].delay_ns, S(2));
    cr_assert_eq(r.elapsed_ns, S(2));
    cbx_policy_result_clear(&r);

    s = (script)SCRIPT(CBX_OUTCOME_RATE_LIMITED);
    s.retry_after_ns = S(60);
    cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL);
    cr_assert_eq(r.attempt[0].delay_ns, S(5), "capped at retry.max");
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, budget_exhaustion_stops_retries)
{
    /* ratio 0 and 0.1 retries per second over 10 s: one retry in the window, no more. */
    cbx_policy *p = make("{\"retry\": {\"attempts\": 5, \"initial\": \"1ms\", \"budget\": "
                         "{\"ratio\": 0, \"min_per_second\": 0.1, \"window\": \"10s\"}}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_EBUDGET_EXHAUSTED);
    cr_assert_eq(r.attempts, 2, "the one retry the budget allows, then no more");
    cr_assert_eq(r.status, CBX_POLICY_FAILED);
    cr_assert(strstr(r.reason, "retry budget"), "%s", r.reason);
    cbx_policy_result_clear(&r);

    s = (script)SCRIPT(CBX_OUTCOME_ERROR);
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_EBUDGET_EXHAUSTED);
    cr_assert_eq(r.attempts, 1, "the budget is spent for this window");
    cbx_retry_budget_stats st;
    cbx_retry_budget_get_stats(cbx_policy_retry_budget(p), &st);
    cr_assert_eq(st.calls_total, 2);
    cr_assert_eq(st.retries_total, 1);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, max_elapsed_stops_retries)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 10, \"backoff\": \"fixed\", \"initial\": "
                         "\"100ms\", \"jitter\": \"none\", \"max_elapsed\": \"250ms\"}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(r.attempts, 3, "retries at 100ms and 200ms; one at 300ms would pass 250ms");
    cr_assert(strstr(r.reason, "max_elapsed"), "%s", r.reason);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, more_attempts_than_recorded)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 20, \"backoff\": \"fixed\", \"initial\": 0}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL);
    cr_assert_eq(r.attempts, 20);
    cr_assert_eq(s.calls, 20);
    cr_assert_eq(r.attempt[CBX_POLICY_MAX_RECORDED - 1].outcome, CBX_OUTCOME_ERROR);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

/* ---- timeout and deadline ------------------------------------------------------------------- */

Test(policy, timeout_discards_a_late_output)
{
    cbx_policy *p = make("{\"timeout\": \"100ms\"}");
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    s.advance_ms = 150;
    uint64_t start = cbx_clock_now_ns(clk);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ETIMEDOUT);
    cr_assert_eq(r.status, CBX_POLICY_TIMEOUT);
    cr_assert_eq(r.last_outcome, CBX_OUTCOME_TIMEOUT);
    cr_assert_null(r.output, "the output of an attempt that overran is discarded");
    cr_assert_eq(s.seen_deadline, start + MS(100));
    cr_assert_eq(s.stopped_after, 1, "the function could see its deadline had passed");
    cr_assert_eq(r.attempt[0].latency_ns, (int64_t)MS(150));
    cbx_policy_result_clear(&r);

    s = (script)SCRIPT(CBX_OUTCOME_SUCCESS);
    s.advance_ms = 100; /* exactly the timeout: not longer */
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, timeouts_are_retried_per_attempt)
{
    cbx_policy *p = make("{\"timeout\": \"50ms\", \"retry\": {\"attempts\": 3, \"initial\": "
                         "\"1ms\"}}");
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    s.advance_ms = 60;
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(r.status, CBX_POLICY_TIMEOUT);
    cr_assert_eq(r.attempts, 3);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, deadline_bounds_the_whole_call)
{
    cbx_policy *p = make("{\"deadline\": \"1s\", \"retry\": {\"attempts\": 10, \"backoff\": "
                         "\"fixed\", \"initial\": \"300ms\", \"jitter\": \"none\"}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    s.advance_ms = 100;
    cbx_policy_result r;
    /* attempts at 0, 400, 800 ms; the next would start at 1200 ms, past the deadline */
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ETIMEDOUT);
    cr_assert_eq(r.attempts, 3);
    cr_assert_eq(r.status, CBX_POLICY_TIMEOUT);
    cr_assert_eq(r.last_outcome, CBX_OUTCOME_ERROR);
    cr_assert(strstr(r.reason, "deadline"), "%s", r.reason);
    cbx_policy_result_clear(&r);

    /* The deadline also cuts an attempt short when it is tighter than the timeout. */
    s = (script)SCRIPT(CBX_OUTCOME_SUCCESS);
    s.advance_ms = 1500;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ETIMEDOUT);
    cr_assert_eq(r.last_outcome, CBX_OUTCOME_TIMEOUT);
    cr_assert_null(r.output);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

/* ---- breaker -------------------------------------------------------------------------------- */

Test(policy, breaker_trips_across_calls_and_rejects_without_running)
{
    cbx_policy *p = make("{\"breaker\": {\"consecutive_failures\": 3, \"open_for\": \"30s\"}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_EFAILED);
        cbx_policy_result_clear(&r);
    }
    cr_assert_eq(s.calls, 3);
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ECIRCUIT_OPEN);
    cr_assert_eq(s.calls, 3, "the function did not run");
    cr_assert_eq(r.status, CBX_POLICY_REJECTED);
    cr_assert_eq(r.attempts, 0);
    cr_assert_eq(r.rejection.rc, CBX_ECIRCUIT_OPEN);
    cr_assert_eq(r.rejection.reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
    cr_assert(strstr(r.reason, "breaker 'test' is open: 3 consecutive failures"), "%s", r.reason);
    cbx_policy_result_clear(&r);

    cbx_clock_advance(clk, 30000);
    s = (script)SCRIPT(CBX_OUTCOME_SUCCESS);
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0, "the probe");
    cr_assert_eq(cbx_breaker_state_now(cbx_policy_breaker(p)), CBX_BREAKER_CLOSED);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, breaker_opening_mid_call_stops_the_retries)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 5, \"initial\": \"1ms\"}, \"breaker\": "
                         "{\"consecutive_failures\": 2}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ECIRCUIT_OPEN);
    cr_assert_eq(s.calls, 2);
    cr_assert_eq(r.attempts, 2);
    cr_assert_eq(r.status, CBX_POLICY_REJECTED,
                 "a breaker that opens between retries refuses the call");
    cr_assert(strstr(r.reason, "2 attempts") && strstr(r.reason, "is open"), "%s", r.reason);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, breaker_records_latency_and_slow_calls)
{
    cbx_policy *p = make("{\"breaker\": {\"consecutive_failures\": 0, \"window\": 2, "
                         "\"slow_call\": \"50ms\", \"slow_rate\": \"100%\"}}");
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    s.advance_ms = 80;
    cbx_policy_result r;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
        cbx_policy_result_clear(&r);
    }
    cr_assert_eq(cbx_breaker_state_now(cbx_policy_breaker(p)), CBX_BREAKER_OPEN,
                 "two slow calls out of two");
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(cbx_policy_breaker(p), &m);
    cr_assert_eq(m.slow_calls, 2);
    cbx_policy_free(p);
}

Test(policy, shared_breaker_across_policies)
{
    cbx_breaker_opts bo;
    cbx_breaker_opts_default(&bo);
    bo.consecutive_failures = 2;
    bo.clock = clk;
    bo.name = "host";
    cbx_breaker *b = NULL;
    cr_assert_eq(cbx_breaker_new(&b, &bo, NULL), 0);

    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    o.clock = clk;
    o.shared_breaker = b;
    o.sections = CBX_POLICY_WITH_BREAKER; /* ignored: the shared breaker wins */
    cbx_policy *p1 = NULL, *p2 = NULL;
    cr_assert_eq(cbx_policy_new(&p1, &o, NULL), 0);
    cr_assert_eq(cbx_policy_new(&p2, &o, NULL), 0);
    cr_assert_eq(cbx_policy_breaker(p1), b);
    cr_assert_eq(cbx_policy_breaker(p2), b);

    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cbx_policy_call(p1, scripted, &s, NULL, NULL, &r, NULL);
    cbx_policy_result_clear(&r);
    cbx_policy_call(p1, scripted, &s, NULL, NULL, &r, NULL);
    cbx_policy_result_clear(&r);
    cr_assert_eq(cbx_policy_call(p2, scripted, &s, NULL, NULL, &r, NULL), CBX_ECIRCUIT_OPEN);
    cr_assert(strstr(r.reason, "breaker 'host'"), "%s", r.reason);
    cbx_policy_result_clear(&r);

    cbx_policy_free(p1);
    cbx_policy_free(p2);
    cr_assert_eq(cbx_breaker_state_now(b), CBX_BREAKER_OPEN, "borrowed, still alive");
    cbx_breaker_free(b);
}

/* ---- rate limit and bulkhead ---------------------------------------------------------------- */

Test(policy, rate_limit_refuses_past_the_burst)
{
    cbx_policy *p = make("{\"rate_limit\": {\"rate\": \"1/s\", \"burst\": 2}}");
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    cbx_policy_result r;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
        cbx_policy_result_clear(&r);
    }
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ERATE_LIMITED);
    cr_assert_eq(s.calls, 2);
    cr_assert_eq(r.status, CBX_POLICY_REJECTED);
    cr_assert_eq(r.attempts, 0);
    cr_assert(strstr(r.reason, "rate limit of 1/s (burst 2) exceeded; next token in 1.0s"), "%s",
              r.reason);
    cbx_policy_result_clear(&r);
    cbx_clock_advance(clk, 1000);
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

/* rate_limit.wait: a token within the wait is waited for (on the policy's virtual clock, which
 * cbx_policy_call advances), one past it is refused with both durations in words. */
Test(policy, rate_limit_wait_waits_for_a_token_within_the_cap)
{
    cbx_policy *p = make("{\"rate_limit\": {\"rate\": \"2/s\", \"burst\": 1, \"wait\": \"1s\"}}");
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    cbx_policy_result r;
    uint64_t t0 = cbx_clock_now_ns(clk);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0, "%s", r.reason);
        cbx_policy_result_clear(&r);
    }
    cr_assert_eq(s.calls, 3);
    cr_assert_eq(cbx_clock_now_ns(clk) - t0, CBX_NS_PER_S, "two waits of 500ms, exactly");
    cbx_policy_free(p);

    p = make("{\"rate_limit\": {\"rate\": \"1/min\", \"burst\": 1, \"wait\": \"2s\"}}");
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
    cbx_policy_result_clear(&r);
    t0 = cbx_clock_now_ns(clk);
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ERATE_LIMITED);
    cr_assert_eq(cbx_clock_now_ns(clk), t0, "refused at once, without waiting");
    cr_assert(strstr(r.reason, "next token in 1m00s, past the wait of 2s"), "%s", r.reason);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, rate_limit_refusal_is_not_retried)
{
    cbx_policy *p = make("{\"rate_limit\": {\"rate\": \"1/s\", \"burst\": 1}, \"retry\": "
                         "{\"attempts\": 3, \"initial\": \"1ms\", \"max\": \"2ms\"}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ERATE_LIMITED);
    cr_assert_eq(s.calls, 1, "the retry found no token and ended the call");
    cr_assert_eq(r.attempts, 1);
    cr_assert_eq(r.status, CBX_POLICY_FAILED);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, bulkhead_full_rejects_without_a_queue)
{
    cbx_policy *p = make("{\"bulkhead\": {\"max_concurrent\": 1}}");
    cbx_policy_run held;
    cbx_policy_begin(p, &held);
    cr_assert_eq(cbx_policy_admit(p, &held), 0);

    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_EBULKHEAD_FULL);
    cr_assert_eq(s.calls, 0);
    cr_assert_eq(r.status, CBX_POLICY_REJECTED);
    cr_assert(strstr(r.reason, "bulkhead full: all 1 slots busy (no queue)"), "%s", r.reason);
    cbx_policy_result_clear(&r);

    cr_assert_eq(cbx_policy_attempt_end(p, &held, CBX_OUTCOME_SUCCESS, 0, 0, 1.0, NULL),
                 CBX_POLICY_DONE_SUCCESS);
    cbx_policy_end(p, &held);
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0, "slot returned");
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

typedef struct slot_note {
    int calls;
    int rc;
} slot_note;

static void on_slot(cbx_policy_run *run, int rc, void *ud)
{
    (void)run;
    slot_note *n = ud;
    n->calls++;
    n->rc = rc;
}

Test(policy, bulkhead_queue_async)
{
    cbx_policy *p = make("{\"bulkhead\": {\"max_concurrent\": 1, \"max_queued\": 2, "
                         "\"queue_timeout\": \"1s\"}}");
    cbx_policy_run a, b, c;
    cbx_policy_begin(p, &a);
    cbx_policy_begin(p, &b);
    cbx_policy_begin(p, &c);
    cr_assert_eq(cbx_policy_admit(p, &a), 0);
    cr_assert_eq(cbx_policy_admit(p, &b), -EINPROGRESS);
    slot_note nb = {0}, nc = {0};
    cr_assert_eq(cbx_policy_wait_slot(p, &b, on_slot, &nb), -EINPROGRESS);
    cr_assert_eq(cbx_policy_admit(p, &c), -EINPROGRESS);
    cr_assert_eq(cbx_policy_wait_slot(p, &c, on_slot, &nc), -EINPROGRESS);

    /* a ends: its slot goes straight to b */
    cr_assert_eq(cbx_policy_attempt_end(p, &a, CBX_OUTCOME_SUCCESS, 5, 0, 1.0, NULL),
                 CBX_POLICY_DONE_SUCCESS);
    cbx_policy_end(p, &a);
    cr_assert_eq(nb.calls, 1);
    cr_assert_eq(nb.rc, 0);
    cr_assert_eq(cbx_policy_admit(p, &b), 0);
    cr_assert_eq(b.attempt, 1);

    /* c waits past the queue timeout */
    cbx_clock_advance(clk, 1000);
    cbx_bulkhead_expire(cbx_policy_bulkhead(p));
    cr_assert_eq(nc.calls, 1);
    cr_assert_eq(nc.rc, CBX_EQUEUE_TIMEOUT);
    cr_assert_eq(cbx_policy_admit(p, &c), CBX_EQUEUE_TIMEOUT);
    cr_assert(c.done);
    cr_assert_eq(c.status, CBX_POLICY_REJECTED);
    char why[256];
    cr_assert(strstr(cbx_policy_explain(p, &c, why, sizeof why), "queue timeout of 1s"), "%s", why);
    cbx_policy_end(p, &c);

    cbx_policy_attempt_end(p, &b, CBX_OUTCOME_SUCCESS, 5, 0, 1.0, NULL);
    cbx_policy_end(p, &b);
    cbx_bulkhead_stats st;
    cbx_bulkhead_stats_get(cbx_policy_bulkhead(p), &st);
    cr_assert_eq(st.active, 0, "every slot given back");
    cbx_policy_free(p);
}

/* ---- quality -------------------------------------------------------------------------------- */

Test(policy, quality_threshold_makes_a_poor_success_a_failure)
{
    cbx_policy *p = make("{\"quality\": {\"threshold\": 0.7}}");
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    s.quality = 0.5;
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_EFAILED);
    cr_assert_eq(r.status, CBX_POLICY_FAILED);
    cr_assert_eq(r.last_outcome, CBX_OUTCOME_QUALITY);
    cr_assert_null(r.output);
    cr_assert_float_eq(r.attempt[0].quality, 0.5, 1e-12);
    cbx_policy_result_clear(&r);

    s = (script)SCRIPT(CBX_OUTCOME_SUCCESS);
    s.quality = 0.9;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, poor_quality_is_retried_when_asked)
{
    cbx_policy *p = make("{\"quality\": {\"threshold\": \"70%\"}, \"retry\": {\"attempts\": 3, "
                         "\"initial\": \"1ms\", \"on\": [\"quality\"]}}");
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    s.quality = 0.1;
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(s.calls, 3);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

/* ---- fallback ------------------------------------------------------------------------------- */

Test(policy, fallback_value_answers_after_failure)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 2, \"initial\": \"1ms\"}, \"fallback\": "
                         "{\"value\": {\"body\": \"\"}}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
    cr_assert_eq(r.status, CBX_POLICY_FAILED);
    cr_assert_eq(r.rc, CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(r.fallback_used, 1);
    cr_assert_eq(r.fallback_source, CBX_FALLBACK_VALUE);
    cr_assert_str_eq(json_string_value(json_object_get(r.output, "body")), "");
    cr_assert_eq(r.attempts, 2);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, fallback_cache_answers_with_the_last_good_result)
{
    cbx_policy *p = make("{\"fallback\": {\"cache\": {\"ttl\": \"10m\"}, \"value\": \"stale\"}}");
    script ok = SCRIPT(CBX_OUTCOME_SUCCESS);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &ok, NULL, "k", &r, NULL), 0);
    cbx_policy_result_clear(&r);
    ok.calls = 6; /* the next success would say call 7 */
    cr_assert_eq(cbx_policy_call(p, scripted, &ok, NULL, "k", &r, NULL), 0);
    cr_assert_eq(call_output(&r), 7);
    cbx_policy_result_clear(&r);

    script bad = SCRIPT(CBX_OUTCOME_ERROR);
    cr_assert_eq(cbx_policy_call(p, scripted, &bad, NULL, "k", &r, NULL), 0);
    cr_assert_eq(r.fallback_used, 1);
    cr_assert_eq(r.fallback_source, CBX_FALLBACK_CACHE);
    cr_assert_eq(call_output(&r), 7, "the last good result for this key");
    cbx_policy_result_clear(&r);

    cr_assert_eq(cbx_policy_call(p, scripted, &bad, NULL, "other", &r, NULL), 0);
    cr_assert_eq(r.fallback_source, CBX_FALLBACK_VALUE, "nothing cached for this key");
    cr_assert_str_eq(json_string_value(r.output), "stale");
    cbx_policy_result_clear(&r);

    cbx_clock_advance(clk, 10 * 60 * 1000);
    cr_assert_eq(cbx_policy_call(p, scripted, &bad, NULL, "k", &r, NULL), 0);
    cr_assert_eq(r.fallback_source, CBX_FALLBACK_VALUE, "the cached result expired");
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, fallback_answers_a_rejection)
{
    cbx_policy *p = make("{\"breaker\": {}, \"fallback\": {\"value\": 0}}");
    cbx_breaker_force_open(cbx_policy_breaker(p));
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, &r, NULL), 0);
    cr_assert_eq(s.calls, 0);
    cr_assert_eq(r.status, CBX_POLICY_REJECTED);
    cr_assert_eq(r.rc, CBX_EFORCED_OPEN);
    cr_assert_eq(r.fallback_used, 1);
    cr_assert(strstr(r.reason, "forced open"), "%s", r.reason);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

Test(policy, no_fallback_answer_is_reported)
{
    cbx_policy *p = make("{\"fallback\": {\"cache\": true}}");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, "k", &r, NULL), CBX_EFAILED);
    cr_assert_eq(r.fallback_used, 0);
    cr_assert_eq(r.fallback_rc, CBX_ENO_FALLBACK);
    cr_assert_null(r.output);
    cbx_policy_result_clear(&r);
    cbx_policy_free(p);
}

static int degrade(const json_t *input, json_t **out, void *ud)
{
    (void)ud;
    *out = json_pack("{s:O, s:b}", "echo", json_object_get(input, "q"), "degraded", 1);
    return *out ? 0 : -ENOMEM;
}

Test(policy, fallback_callback_from_the_c_api)
{
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    o.clock = clk;
    o.sections = CBX_POLICY_WITH_FALLBACK;
    o.fallback.fn = degrade;
    cbx_policy *p = NULL;
    cbx_err err;
    cr_assert_eq(cbx_policy_new(&p, &o, &err), 0, "%s: %s", err.where, err.msg);
    json_t *in = json_pack("{s:s}", "q", "hello");
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, in, NULL, &r, NULL), 0);
    cr_assert_eq(r.fallback_source, CBX_FALLBACK_FUNCTION);
    cr_assert_str_eq(json_string_value(json_object_get(r.output, "echo")), "hello");
    cbx_policy_result_clear(&r);
    json_decref(in);
    cbx_policy_free(p);
}

Test(policy, fallback_function_resolved_over_a_parsed_block)
{
    json_t *b = json_loads("{\"fallback\": {\"function\": \"degrade\"}}", 0, NULL);
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    o.clock = clk;
    cr_assert_eq(cbx_policy_opts_parse(&o, b, NULL), 0);
    cr_assert_str_eq(o.fallback_function, "degrade");
    o.fallback.fn = degrade; /* what the runtime does once it has resolved the name */
    cbx_policy *p = NULL;
    cr_assert_eq(cbx_policy_new(&p, &o, NULL), 0);
    json_decref(b);
    json_t *in = json_pack("{s:i}", "q", 5);
    script s = SCRIPT(CBX_OUTCOME_ERROR);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(p, scripted, &s, in, NULL, &r, NULL), 0);
    cr_assert_eq(r.fallback_source, CBX_FALLBACK_FUNCTION);
    cr_assert_eq(json_integer_value(json_object_get(r.output, "echo")), 5);
    cr_assert_str_eq(cbx_policy_fallback_function(p), "degrade");
    cbx_policy_result_clear(&r);
    json_decref(in);
    cbx_policy_free(p);
}

/* ---- the asynchronous interface -------------------------------------------------------------- */

Test(policy, async_steps)
{
    cbx_policy *p = make("{\"timeout\": \"1s\", \"retry\": {\"attempts\": 2, \"backoff\": "
                         "\"fixed\", \"initial\": \"50ms\", \"jitter\": \"none\"}, "
                         "\"breaker\": {}, \"fallback\": {\"value\": 1}}");
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    uint64_t t0 = cbx_clock_now_ns(clk);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cr_assert_eq(run.attempt, 1);
    cr_assert_eq(run.attempt_deadline_ns, t0 + S(1));
    cr_assert(run.priv.permit_held, "the run holds the breaker permit");

    uint64_t delay = 0;
    cbx_clock_advance(clk, 20);
    cr_assert_eq(cbx_policy_attempt_end(p, &run, CBX_OUTCOME_ERROR, -1, 0, 1.0, &delay),
                 CBX_POLICY_RETRY);
    cr_assert_eq(delay, MS(50));
    cr_assert_eq(run.done, 0);
    cbx_clock_advance(clk, 50);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cr_assert_eq(run.attempt, 2);
    cr_assert_eq(cbx_policy_attempt_end(p, &run, CBX_OUTCOME_ERROR, MS(3), 0, 1.0, &delay),
                 CBX_POLICY_USE_FALLBACK);
    cr_assert(run.done);
    cr_assert_eq(run.status, CBX_POLICY_FAILED);
    cr_assert_eq(run.rc, CBX_ERETRY_EXHAUSTED);
    cr_assert_eq(run.decision, CBX_POLICY_USE_FALLBACK);
    json_t *out = NULL;
    cbx_fallback_source src;
    cr_assert_eq(cbx_policy_fallback_get(p, NULL, NULL, &out, &src, NULL), 0);
    cr_assert_eq(src, CBX_FALLBACK_VALUE);
    cr_assert_eq(json_integer_value(out), 1);
    json_decref(out);
    cr_assert_eq(cbx_policy_admit(p, &run), CBX_ERETRY_EXHAUSTED, "over is over");
    cbx_policy_end(p, &run);

    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(cbx_policy_breaker(p), &m);
    cr_assert_eq(m.failures, 2);
    cr_assert_eq(m.latency_count, 2);
    cbx_policy_free(p);
}

Test(policy, async_timeout_is_judged_from_the_latency)
{
    cbx_policy *p = make("{\"timeout\": \"100ms\"}");
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cr_assert_eq(cbx_policy_attempt_end(p, &run, CBX_OUTCOME_SUCCESS, MS(101), 0, 1.0, NULL),
                 CBX_POLICY_DONE_FAILED);
    cr_assert_eq(run.last_outcome, CBX_OUTCOME_TIMEOUT);
    cr_assert_eq(run.status, CBX_POLICY_TIMEOUT);
    cbx_policy_end(p, &run);
    cbx_policy_free(p);
}

Test(policy, end_releases_an_unreported_permit_and_slot)
{
    cbx_policy *p = make("{\"breaker\": {\"half_open_probes\": 1}, \"bulkhead\": "
                         "{\"max_concurrent\": 1}}");
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cbx_policy_end(p, &run); /* abandoned: nothing recorded */
    cbx_bulkhead_stats st;
    cbx_bulkhead_stats_get(cbx_policy_bulkhead(p), &st);
    cr_assert_eq(st.active, 0);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(cbx_policy_breaker(p), &m);
    cr_assert_eq(m.ignored, 1, "released, counted as ignored");
    cr_assert_eq(m.failures, 0);
    cbx_policy_free(p);
}

Test(policy, cancel_stops_the_run)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 5}, \"fallback\": {\"value\": 1}}");
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cbx_policy_run_cancel(&run);
    cr_assert_eq(cbx_policy_attempt_end(p, &run, CBX_OUTCOME_ERROR, 1, 0, 1.0, NULL),
                 CBX_POLICY_DONE_FAILED, "no retry and no fallback once cancelled");
    cr_assert_eq(run.status, CBX_POLICY_CANCELLED);
    cr_assert_eq(run.rc, CBX_ECANCELLED);
    cbx_policy_end(p, &run);

    cbx_policy_begin(p, &run);
    cbx_policy_run_cancel(&run);
    cr_assert_eq(cbx_policy_admit(p, &run), CBX_ECANCELLED);
    cr_assert_eq(run.status, CBX_POLICY_CANCELLED);
    cbx_policy_end(p, &run);
    cbx_policy_free(p);
}

Test(policy, deadline_passed_before_admission)
{
    cbx_policy *p = make("{\"deadline\": \"1s\"}");
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cbx_clock_advance(clk, 1000);
    cr_assert_eq(cbx_policy_admit(p, &run), CBX_ETIMEDOUT);
    cr_assert_eq(run.status, CBX_POLICY_TIMEOUT);
    char why[128];
    cr_assert(strstr(cbx_policy_explain(p, &run, why, sizeof why), "deadline (1s) passed"), "%s",
              why);
    cbx_policy_end(p, &run);
    cbx_policy_free(p);
}

Test(policy, run_uses_a_breaker_picked_per_key)
{
    cbx_policy *p = make("{\"breaker\": {\"key\": \"{{ host(inputs.url) }}\"}}");
    cr_assert_str_eq(cbx_policy_breaker_key(p), "{{ host(inputs.url) }}");
    cbx_breaker *per_host = NULL;
    cbx_breaker_opts bo;
    cbx_breaker_opts_default(&bo);
    bo.clock = clk;
    cr_assert_eq(cbx_breaker_new(&per_host, &bo, NULL), 0);
    cbx_breaker_force_open(per_host);

    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cbx_policy_run_use_breaker(&run, per_host);
    cr_assert_eq(cbx_policy_admit(p, &run), CBX_EFORCED_OPEN);
    cr_assert_eq(run.rejection.rc, CBX_EFORCED_OPEN);
    cbx_policy_end(p, &run);

    cbx_policy_begin(p, &run); /* the policy's own breaker is closed */
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cbx_policy_attempt_end(p, &run, CBX_OUTCOME_SUCCESS, 1, 0, 1.0, NULL);
    cbx_policy_end(p, &run);
    cbx_breaker_free(per_host);
    cbx_policy_free(p);
}

/* ---- small things --------------------------------------------------------------------------- */

Test(policy, names)
{
    cr_assert_str_eq(cbx_policy_status_name(CBX_POLICY_SUCCESS), "success");
    cr_assert_str_eq(cbx_policy_status_name(CBX_POLICY_FAILED), "failed");
    cr_assert_str_eq(cbx_policy_status_name(CBX_POLICY_TIMEOUT), "timeout");
    cr_assert_str_eq(cbx_policy_status_name(CBX_POLICY_REJECTED), "rejected");
    cr_assert_str_eq(cbx_policy_status_name(CBX_POLICY_CANCELLED), "cancelled");
    cr_assert_str_eq(cbx_policy_status_name((cbx_policy_status)99), "unknown");
    cr_assert_str_eq(cbx_policy_decision_name(CBX_POLICY_RETRY), "retry");
    cr_assert_str_eq(cbx_policy_decision_name(CBX_POLICY_USE_FALLBACK), "use_fallback");
    cr_assert_str_eq(cbx_policy_decision_name((cbx_policy_decision)99), "unknown");
}

Test(policy, bad_arguments)
{
    cbx_policy *p = make("{}");
    script s = SCRIPT(CBX_OUTCOME_SUCCESS);
    cbx_policy_result r;
    cr_assert_eq(cbx_policy_call(NULL, scripted, &s, NULL, NULL, &r, NULL), -EINVAL);
    cr_assert_eq(cbx_policy_call(p, NULL, &s, NULL, NULL, &r, NULL), -EINVAL);
    cr_assert_eq(cbx_policy_call(p, scripted, &s, NULL, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(s.calls, 0);
    cbx_policy_free(NULL);
    cbx_policy_result_clear(NULL);
    cbx_policy_free(p);
}

Test(policy, out_of_range_outcome_counts_as_error)
{
    cbx_policy *p = make("{}");
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cbx_policy_attempt_end(p, &run, (cbx_outcome)42, 1, 0, 1.0, NULL);
    cr_assert_eq(run.last_outcome, CBX_OUTCOME_ERROR);
    cbx_policy_end(p, &run);
    cbx_policy_free(p);
}

/* A breaker outside the policy (a named or keyed one) refuses: the call ends as the policy's own
 * breaker's refusal would, with the fallback. */
Test(policy, an_outside_breaker_refusal_asks_the_fallback)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\"}, "
                         "\"fallback\": {\"value\": \"fb\"}}");
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    uint64_t delay;
    cr_assert_eq(cbx_policy_attempt_end(p, &run, CBX_OUTCOME_ERROR, 1, 0, 1, &delay),
                 CBX_POLICY_RETRY);
    cbx_breaker_rejection why = {.reason = CBX_BREAKER_REASON_CONSECUTIVE_FAILURES};
    cr_assert_eq(cbx_policy_run_refuse(p, &run, CBX_ECIRCUIT_OPEN, &why), CBX_ECIRCUIT_OPEN);
    cr_assert(run.done);
    cr_assert_eq(run.status, CBX_POLICY_REJECTED);
    cr_assert_eq(run.decision, CBX_POLICY_USE_FALLBACK);
    cr_assert_eq(run.rejection.reason, CBX_BREAKER_REASON_CONSECUTIVE_FAILURES);
    cr_assert_eq(cbx_policy_run_refuse(p, &run, CBX_EFORCED_OPEN, NULL), CBX_ECIRCUIT_OPEN,
                 "a run that is over keeps its end");
    cbx_policy_end(p, &run);
    cbx_policy_free(p);
}

Test(policy, judge_applies_the_quality_threshold_once)
{
    cbx_policy *p = make("{\"quality\": {\"threshold\": 0.5}}");
    cr_assert_eq(cbx_policy_judge(p, CBX_OUTCOME_SUCCESS, 0.1), CBX_OUTCOME_QUALITY);
    cr_assert_eq(cbx_policy_judge(p, CBX_OUTCOME_SUCCESS, 0.5), CBX_OUTCOME_SUCCESS);
    cr_assert_eq(cbx_policy_judge(p, CBX_OUTCOME_ERROR, 0.1), CBX_OUTCOME_ERROR);
    cr_assert_eq(cbx_policy_judge(NULL, CBX_OUTCOME_SUCCESS, 0.1), CBX_OUTCOME_SUCCESS);
    /* judged QUALITY before attempt_end: the policy agrees and does not judge it twice */
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cbx_policy_attempt_end(p, &run, cbx_policy_judge(p, CBX_OUTCOME_SUCCESS, 0.1), 1, 0, 0.1, NULL);
    cr_assert_eq(run.last_outcome, CBX_OUTCOME_QUALITY);
    cr_assert_eq(run.status, CBX_POLICY_FAILED);
    cbx_policy_end(p, &run);
    cbx_policy_free(p);
}

/* ---- the hooks the runtime's predicates use ------------------------------------------------ */

Test(policy, breaker_verdict_changes_what_the_breaker_records_not_the_retry)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\"},"
                         " \"breaker\": {\"consecutive_failures\": 5}}");
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cbx_policy_run_breaker_verdict(&run, CBX_BREAKER_VERDICT_IGNORE);
    cr_assert_eq(cbx_policy_attempt_end(p, &run, CBX_OUTCOME_ERROR, 0, 0, 1.0, NULL),
                 CBX_POLICY_RETRY, "the verdict is the breaker's only");
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    /* used once: the next attempt is counted as it is */
    cr_assert_eq(cbx_policy_attempt_end(p, &run, CBX_OUTCOME_ERROR, 0, 0, 1.0, NULL),
                 CBX_POLICY_RETRY);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cbx_policy_run_breaker_verdict(&run, CBX_BREAKER_VERDICT_FAILURE);
    cr_assert_eq(cbx_policy_attempt_end(p, &run, CBX_OUTCOME_SUCCESS, 0, 0, 1.0, NULL),
                 CBX_POLICY_DONE_SUCCESS);
    cbx_policy_end(p, &run);
    cbx_breaker_metrics m;
    cbx_breaker_metrics_get(cbx_policy_breaker(p), &m);
    cr_assert_eq(m.ignored, 1);
    cr_assert_eq(m.failures, 2, "the error, and the success counted as a failure");
    cr_assert_eq(m.by_kind[CBX_OUTCOME_CUSTOM], 1);
    cr_assert_eq(m.successes, 0);
    cbx_policy_free(p);

    cr_assert_eq(cbx_policy_breaker_kind(CBX_OUTCOME_TIMEOUT, CBX_BREAKER_VERDICT_FAILURE),
                 CBX_OUTCOME_TIMEOUT);
    cr_assert_eq(cbx_policy_breaker_kind(CBX_OUTCOME_ERROR, CBX_BREAKER_VERDICT_SUCCESS),
                 CBX_OUTCOME_SUCCESS);
    cr_assert_eq(cbx_policy_breaker_kind(CBX_OUTCOME_ERROR, CBX_BREAKER_VERDICT_DEFAULT),
                 CBX_OUTCOME_ERROR);
}

Test(policy, no_retry_why_ends_the_call_with_the_line)
{
    cbx_policy *p = make("{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\"}}");
    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cr_assert_eq(cbx_policy_admit(p, &run), 0);
    cbx_policy_run_no_retry_why(&run, "retry.when said no");
    cr_assert_eq(cbx_policy_attempt_end(p, &run, CBX_OUTCOME_ERROR, 0, 0, 1.0, NULL),
                 CBX_POLICY_DONE_FAILED);
    char why[384];
    cbx_policy_explain(p, &run, why, sizeof why);
    cr_assert_str_eq(why, "1 attempt, the last failed; retry.when said no");
    cr_assert_eq(run.rc, CBX_EFAILED);
    cbx_policy_end(p, &run);
    cbx_policy_free(p);
}
