/* The policy block: every key read into the options, and every kind of mistake reported with
 * its code, its key path and what was expected. */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cbx/policy.h"

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *b = json_loads(text, 0, &je);
    cr_assert_not_null(b, "bad JSON in the test: %s (line %d)", je.text, je.line);
    return b;
}

/* Parse text into *o (from the defaults); returns the code. */
static int parse(const char *text, cbx_policy_opts *o, cbx_err *err)
{
    json_t *b = load(text);
    cbx_policy_opts_default(o);
    cbx_err_clear(err);
    int rc = cbx_policy_opts_parse(o, b, err);
    json_decref(b);
    return rc;
}

/* Parse and build (so component checks run too); frees the policy. Returns the code. */
static int build(const char *text, cbx_err *err)
{
    json_t *b = load(text);
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    o.clock = clk;
    cbx_policy *p = NULL;
    cbx_err_clear(err);
    int rc = cbx_policy_new_json(&p, b, &o, err);
    if (rc == 0)
        cr_assert_not_null(p);
    else
        cr_assert_null(p);
    cbx_policy_free(p);
    cbx_clock_free(clk);
    json_decref(b);
    return rc;
}

#define MS(x) ((uint64_t)(x)*CBX_NS_PER_MS)
#define S(x)  ((uint64_t)(x)*CBX_NS_PER_S)

/* ---- every key, read -------------------------------------------------------------------- */

static const char *full_block =
    "{\"timeout\": \"5s\", \"deadline\": \"1m\","
    " \"retry\": {\"attempts\": 4, \"backoff\": \"exponential\", \"initial\": \"200ms\","
    "  \"max\": \"5s\", \"multiplier\": 2, \"jitter\": \"full\", \"max_elapsed\": \"30s\","
    "  \"on\": [\"error\", \"timeout\"], \"seed\": 42,"
    "  \"budget\": {\"ratio\": \"20%\", \"min_per_second\": 10, \"window\": \"10s\"}},"
    " \"breaker\": {\"consecutive_failures\": 5, \"failure_rate\": \"50%\", \"window\": 20,"
    "  \"min_calls\": 5, \"slow_call\": \"2s\", \"slow_rate\": \"50%\", \"quality_threshold\": 0.7,"
    "  \"failure_kinds\": [\"error\", \"timeout\"], \"open_for\": \"30s\", \"open_multiplier\": 2,"
    "  \"open_max\": \"5m\", \"half_open_probes\": 2, \"close_after\": 2, \"probe_lease\": \"10s\","
    "  \"key\": \"{{ host(inputs.url) }}\"},"
    " \"rate_limit\": {\"rate\": \"50/s\", \"burst\": 10},"
    " \"bulkhead\": {\"max_concurrent\": 8, \"max_queued\": 16, \"queue_timeout\": \"2s\"},"
    " \"fallback\": {\"value\": {\"body\": \"\"}, \"cache\": {\"ttl\": \"10m\", \"max_entries\": "
    "1000},"
    "  \"function\": \"stale_page\", \"order\": [\"cache\", \"function\", \"value\"]},"
    " \"quality\": {\"threshold\": 0.7}}";

Test(policy_parse, full_block_every_key)
{
    json_t *b = load(full_block);
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    cbx_err err;
    cr_assert_eq(cbx_policy_opts_parse(&o, b, &err), 0, "%s: %s", err.where, err.msg);

    cr_assert_eq(o.sections, CBX_POLICY_WITH_RETRY | CBX_POLICY_WITH_RETRY_BUDGET |
                                 CBX_POLICY_WITH_BREAKER | CBX_POLICY_WITH_RATE_LIMIT |
                                 CBX_POLICY_WITH_BULKHEAD | CBX_POLICY_WITH_FALLBACK);
    cr_assert_eq(o.timeout_ns, S(5));
    cr_assert_eq(o.deadline_ns, S(60));
    cr_assert_float_eq(o.quality_threshold, 0.7, 1e-12);

    cr_assert_eq(o.retry.max_attempts, 4);
    cr_assert_eq(o.retry.backoff, CBX_BACKOFF_EXPONENTIAL);
    cr_assert_eq(o.retry.initial_ns, MS(200));
    cr_assert_eq(o.retry.max_delay_ns, S(5));
    cr_assert_float_eq(o.retry.multiplier, 2.0, 1e-12);
    cr_assert_eq(o.retry.jitter, CBX_JITTER_FULL);
    cr_assert_eq(o.retry.max_elapsed_ns, S(30));
    cr_assert_eq(o.retry.retry_on,
                 CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR) | CBX_OUTCOME_BIT(CBX_OUTCOME_TIMEOUT));
    cr_assert_eq(o.retry.seed, 42);
    cr_assert_float_eq(o.retry_budget.ratio, 0.2, 1e-12);
    cr_assert_float_eq(o.retry_budget.min_per_second, 10.0, 1e-12);
    cr_assert_eq(o.retry_budget.window_ns, S(10));

    cr_assert_eq(o.breaker.consecutive_failures, 5);
    cr_assert_eq(o.breaker.count_window.calls, 20);
    cr_assert_eq(o.breaker.count_window.min_calls, 5);
    cr_assert_float_eq(o.breaker.count_window.failure_rate, 0.5, 1e-12);
    cr_assert_float_eq(o.breaker.count_window.slow_rate, 0.5, 1e-12);
    cr_assert_eq(o.breaker.time_window.length_ns, 0);
    cr_assert_eq(o.breaker.slow_call_ns, S(2));
    cr_assert_float_eq(o.breaker.quality_threshold, 0.7, 1e-12);
    cr_assert_eq(o.breaker.failure_kinds,
                 CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR) | CBX_OUTCOME_BIT(CBX_OUTCOME_TIMEOUT));
    cr_assert_eq(o.breaker.open_ns, S(30));
    cr_assert_float_eq(o.breaker.open_multiplier, 2.0, 1e-12);
    cr_assert_eq(o.breaker.open_max_ns, S(300));
    cr_assert_eq(o.breaker.half_open_probes, 2);
    cr_assert_eq(o.breaker.close_after, 2);
    cr_assert_eq(o.breaker.probe_lease_ns, S(10));
    cr_assert_str_eq(o.breaker_key, "{{ host(inputs.url) }}");

    cr_assert_float_eq(o.rate_limit.per_second, 50.0, 1e-12);
    cr_assert_eq(o.rate_limit.burst, 10);

    cr_assert_eq(o.bulkhead.max_concurrent, 8);
    cr_assert_eq(o.bulkhead.max_queued, 16);
    cr_assert_eq(o.bulkhead.queue_timeout_ns, S(2));

    cr_assert(json_equal((json_t *)o.fallback.value,
                         json_object_get(json_object_get(b, "fallback"), "value")));
    cr_assert_eq(o.fallback.cache, 1);
    cr_assert_eq(o.fallback.cache_ttl_ms, 10 * 60 * 1000);
    cr_assert_eq(o.fallback.cache_max_entries, 1000);
    cr_assert_str_eq(o.fallback_function, "stale_page");
    cr_assert_eq(o.fallback.order[0], CBX_FALLBACK_CACHE);
    cr_assert_eq(o.fallback.order[1], CBX_FALLBACK_FUNCTION);
    cr_assert_eq(o.fallback.order[2], CBX_FALLBACK_VALUE);

    /* And it builds: the unresolved function is left out of the fallback's order. */
    cbx_policy *p = NULL;
    o.clock = cbx_clock_virtual(0);
    cr_assert_eq(cbx_policy_new(&p, &o, &err), 0, "%s: %s", err.where, err.msg);
    cr_assert_not_null(cbx_policy_breaker(p));
    cr_assert_not_null(cbx_policy_retry_budget(p));
    cr_assert_not_null(cbx_policy_rate_limit(p));
    cr_assert_not_null(cbx_policy_bulkhead(p));
    cr_assert_not_null(cbx_policy_fallback(p));
    cr_assert_str_eq(cbx_policy_breaker_key(p), "{{ host(inputs.url) }}");
    cr_assert_str_eq(cbx_policy_fallback_function(p), "stale_page");
    cbx_policy_free(p);
    cbx_clock_free(o.clock);
    json_decref(b);
}

/* The example file shipped in examples/ is a valid, complete block. */
Test(policy_parse, example_file_builds)
{
    char path[512];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *cut = strstr(path, "tests/unit/test_policy_parse.c");
    cr_assert_not_null(cut, "cannot locate the source tree from %s", __FILE__);
    snprintf(cut, sizeof path - (size_t)(cut - path), "examples/policy.json");
    json_error_t je;
    json_t *b = json_load_file(path, 0, &je);
    cr_assert_not_null(b, "%s: %s", path, je.text);
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    o.clock = clk;
    cbx_policy *p = NULL;
    cbx_err err;
    cr_assert_eq(cbx_policy_new_json(&p, b, &o, &err), 0, "%s: %s", err.where, err.msg);
    cr_assert_not_null(cbx_policy_breaker(p));
    cbx_policy_free(p);
    cbx_clock_free(clk);
    json_decref(b);
}

Test(policy_parse, empty_block_is_one_plain_attempt)
{
    cbx_policy_opts o;
    cbx_err err;
    cr_assert_eq(parse("{}", &o, &err), 0);
    cr_assert_eq(o.sections, 0);
    cr_assert_eq(o.timeout_ns, 0);
    cr_assert_eq(o.deadline_ns, 0);
    cr_assert_eq(build("{}", &err), 0);
}

Test(policy_parse, durations_as_numbers_are_milliseconds)
{
    cbx_policy_opts o;
    cbx_err err;
    cr_assert_eq(parse("{\"timeout\": 250, \"deadline\": 1.5}", &o, &err), 0, "%s", err.msg);
    cr_assert_eq(o.timeout_ns, MS(250));
    cr_assert_eq(o.deadline_ns, 1500000);
    cr_assert_eq(parse("{\"timeout\": \"100us\", \"deadline\": \"2h\"}", &o, &err), 0);
    cr_assert_eq(o.timeout_ns, 100000);
    cr_assert_eq(o.deadline_ns, S(7200));
}

Test(policy_parse, ratios_as_percent_or_fraction)
{
    cbx_policy_opts o;
    cbx_err err;
    cr_assert_eq(parse("{\"breaker\": {\"window\": 10, \"failure_rate\": 0.25}}", &o, &err), 0);
    cr_assert_float_eq(o.breaker.count_window.failure_rate, 0.25, 1e-12);
    cr_assert_eq(parse("{\"breaker\": {\"window\": 10, \"failure_rate\": \"100%\"}}", &o, &err), 0);
    cr_assert_float_eq(o.breaker.count_window.failure_rate, 1.0, 1e-12);
    /* The budget ratio may exceed 1 (several retries per call). */
    cr_assert_eq(parse("{\"retry\": {\"budget\": {\"ratio\": \"150%\"}}}", &o, &err), 0);
    cr_assert_float_eq(o.retry_budget.ratio, 1.5, 1e-12);
    cr_assert_eq(parse("{\"retry\": {\"budget\": {\"ratio\": 2}}}", &o, &err), 0);
    cr_assert_float_eq(o.retry_budget.ratio, 2.0, 1e-12);
}

Test(policy_parse, breaker_windows)
{
    cbx_policy_opts o;
    cbx_err err;
    /* a duration: the time window, with its buckets */
    cr_assert_eq(parse("{\"breaker\": {\"window\": \"10s\", \"buckets\": 20, \"failure_rate\": "
                       "\"50%\", \"min_calls\": 4}}",
                       &o, &err),
                 0, "%s: %s", err.where, err.msg);
    cr_assert_eq(o.breaker.count_window.calls, 0);
    cr_assert_eq(o.breaker.time_window.length_ns, S(10));
    cr_assert_eq(o.breaker.time_window.buckets, 20);
    cr_assert_eq(o.breaker.time_window.min_calls, 4);
    cr_assert_float_eq(o.breaker.time_window.failure_rate, 0.5, 1e-12);
    cr_assert_float_eq(o.breaker.count_window.failure_rate, 0.0, 1e-12);
    /* both: window counts calls, time_window is the time window; the rates apply to both */
    cr_assert_eq(parse("{\"breaker\": {\"window\": 30, \"time_window\": \"1m\", \"slow_call\": "
                       "\"1s\", \"slow_rate\": 0.5}}",
                       &o, &err),
                 0, "%s: %s", err.where, err.msg);
    cr_assert_eq(o.breaker.count_window.calls, 30);
    cr_assert_eq(o.breaker.time_window.length_ns, S(60));
    cr_assert_float_eq(o.breaker.count_window.slow_rate, 0.5, 1e-12);
    cr_assert_float_eq(o.breaker.time_window.slow_rate, 0.5, 1e-12);
    cr_assert_eq(build("{\"breaker\": {\"window\": 30, \"time_window\": \"1m\", \"slow_call\": "
                       "\"1s\", \"slow_rate\": 0.5}}",
                       &err),
                 0, "%s: %s", err.where, err.msg);
    /* consecutive_failures keeps its default unless given; 0 turns the rule off */
    cr_assert_eq(parse("{\"breaker\": {}}", &o, &err), 0);
    cr_assert_eq(o.breaker.consecutive_failures, 5);
    cr_assert_eq(parse("{\"breaker\": {\"consecutive_failures\": 0}}", &o, &err), 0);
    cr_assert_eq(o.breaker.consecutive_failures, 0);
}

Test(policy_parse, rates_and_default_burst)
{
    cbx_policy_opts o;
    cbx_err err;
    cr_assert_eq(parse("{\"rate_limit\": {\"rate\": \"600/min\"}}", &o, &err), 0);
    cr_assert_float_eq(o.rate_limit.per_second, 10.0, 1e-9);
    cr_assert_eq(o.rate_limit.burst, 10);
    cr_assert_eq(parse("{\"rate_limit\": {\"rate\": 5}}", &o, &err), 0);
    cr_assert_float_eq(o.rate_limit.per_second, 5.0, 1e-12);
    cr_assert_eq(o.rate_limit.burst, 5);
}

Test(policy_parse, fallback_forms)
{
    cbx_policy_opts o;
    cbx_err err;
    cr_assert_eq(parse("{\"fallback\": {\"cache\": true}}", &o, &err), 0);
    cr_assert_eq(o.fallback.cache, 1);
    cr_assert_eq(o.fallback.cache_ttl_ms, CBX_FALLBACK_DEFAULT_TTL_MS);
    cr_assert_eq(o.fallback.cache_max_entries, CBX_FALLBACK_DEFAULT_MAX_ENTRIES);
    cr_assert_eq(parse("{\"fallback\": {\"value\": null}}", &o, &err), 0);
    cr_assert(o.fallback.value && json_is_null(o.fallback.value), "null is a value");
    cr_assert_eq(build("{\"fallback\": {\"value\": null}}", &err), 0);
    /* a function alone is stored; with nothing else to offer, no fallback is made yet */
    json_t *b = load("{\"fallback\": {\"function\": \"degrade\"}}");
    cbx_policy *p = NULL;
    cr_assert_eq(cbx_policy_new_json(&p, b, NULL, &err), 0, "%s: %s", err.where, err.msg);
    cr_assert_str_eq(cbx_policy_fallback_function(p), "degrade");
    cr_assert_null(cbx_policy_fallback(p));
    cr_assert_eq(cbx_policy_fallback_pending(p), 1);
    cbx_policy_free(p);
    json_decref(b);
}

static int degraded(const json_t *input, json_t **out, void *ud)
{
    (void)input;
    (void)ud;
    *out = json_string("degraded");
    return 0;
}

Test(policy_parse, fallback_cache_key_and_resolved_function)
{
    cbx_policy_opts o;
    cbx_err err;
    cr_assert_eq(parse("{\"fallback\": {\"cache\": {\"key\": \"{{ inputs.city }}\"}}}", &o, &err),
                 0, "%s: %s", err.where, err.msg);
    cr_assert_not_null(o.fallback_key); /* borrowed from the block parse() has released */
    cr_assert_eq(parse("{\"fallback\": {\"cache\": {\"key\": 3}}}", &o, &err), CBX_EINVAL_CONFIG);
    cr_assert_str_eq(err.where, "fallback.cache.key");
    cr_assert_eq(parse("{\"fallback\": {\"cache\": {\"key\": \"\"}}}", &o, &err),
                 CBX_EINVAL_CONFIG);

    /* the function is resolved where the order puts it: before the value */
    json_t *b = load("{\"fallback\": {\"cache\": {\"key\": \"k\"}, \"function\": \"degrade\", "
                     "\"value\": \"static\", \"order\": [\"function\", \"value\", \"cache\"]}}");
    cbx_policy *p = NULL;
    cr_assert_eq(cbx_policy_new_json(&p, b, NULL, &err), 0, "%s: %s", err.where, err.msg);
    json_decref(b); /* the policy keeps its own copies */
    cr_assert_str_eq(cbx_policy_fallback_key(p), "k");
    json_t *out = NULL;
    cbx_fallback_source src = CBX_FALLBACK_NONE;
    cr_assert_eq(cbx_policy_fallback_get(p, "k", NULL, &out, &src, NULL), 0);
    cr_assert_str_eq(json_string_value(out), "static");
    json_decref(out);
    cr_assert_eq(cbx_policy_fallback_resolve(p, degraded, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_policy_fallback_pending(p), 0);
    cr_assert_eq(cbx_policy_fallback_get(p, "k", NULL, &out, &src, NULL), 0);
    cr_assert_str_eq(json_string_value(out), "degraded");
    cr_assert_eq(src, CBX_FALLBACK_FUNCTION);
    json_decref(out);
    cr_assert_eq(cbx_policy_fallback_resolve(p, degraded, NULL, NULL, &err), CBX_EINVAL_CONFIG);
    cbx_policy_free(p);

    /* canned answers */
    b = load("{\"fallback\": {\"cache\": {\"entries\": {\"hello\": \"canned\"}}}}");
    cr_assert_eq(cbx_policy_new_json(&p, b, NULL, &err), 0, "%s: %s", err.where, err.msg);
    json_decref(b);
    cr_assert_eq(cbx_policy_fallback_get(p, "hello", NULL, &out, &src, NULL), 0);
    cr_assert_str_eq(json_string_value(out), "canned");
    cr_assert_eq(src, CBX_FALLBACK_CACHE);
    json_decref(out);
    cbx_policy_free(p);
    cr_assert_eq(parse("{\"fallback\": {\"cache\": {\"entries\": [1]}}}", &o, &err),
                 CBX_EINVAL_CONFIG);
    cr_assert_str_eq(err.where, "fallback.cache.entries");
}

Test(policy_parse, single_kind_and_seed)
{
    cbx_policy_opts o;
    cbx_err err;
    cr_assert_eq(parse("{\"retry\": {\"on\": \"quality\", \"backoff\": \"decorrelated\", "
                       "\"jitter\": \"equal\"}}",
                       &o, &err),
                 0);
    cr_assert_eq(o.retry.retry_on, CBX_OUTCOME_BIT(CBX_OUTCOME_QUALITY));
    cr_assert_eq(o.retry.backoff, CBX_BACKOFF_DECORRELATED);
    cr_assert_eq(o.retry.jitter, CBX_JITTER_EQUAL);
    cr_assert_eq(o.retry.max_attempts, 3, "absent keys keep the retry defaults");
    cr_assert_eq(o.sections, CBX_POLICY_WITH_RETRY);
}

Test(policy_parse, keeps_what_a_block_cannot_say)
{
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    cbx_breaker *shared = NULL;
    cr_assert_eq(cbx_breaker_new(&shared, NULL, NULL), 0);
    o.name = "upstream";
    o.shared_breaker = shared;
    o.timeout_ns = 99;
    o.sections = CBX_POLICY_WITH_BULKHEAD;
    json_t *b = load("{\"retry\": {}}");
    cbx_err err;
    cr_assert_eq(cbx_policy_opts_parse(&o, b, &err), 0);
    cr_assert_str_eq(o.name, "upstream");
    cr_assert_eq(o.shared_breaker, shared);
    cr_assert_eq(o.timeout_ns, 0, "reset: the block has no timeout");
    cr_assert_eq(o.sections, CBX_POLICY_WITH_RETRY);
    json_decref(b);
    cbx_breaker_free(shared);
}

/* ---- mistakes ------------------------------------------------------------------------------ */

#define ASSERT_ERR(rc, e, want, path)                                                              \
    do {                                                                                           \
        cr_assert_eq((rc), (want), "rc %s (%s: %s), expected %s", cbx_err_name(rc), (e).where,     \
                     (e).msg, cbx_err_name(want));                                                 \
        cr_assert_eq((e).code, (want));                                                            \
        cr_assert_str_eq((e).where, (path), "where '%s' (%s)", (e).where, (e).msg);                \
    } while (0)

#define ASSERT_MSG_HAS(err, text)                                                                  \
    cr_assert(strstr((err).msg, (text)) != NULL, "message '%s' lacks '%s'", (err).msg, (text))

Test(policy_parse, unknown_top_level_key_suggests)
{
    cbx_err err;
    int rc = build("{\"retyr\": {}}", &err);
    ASSERT_ERR(rc, err, CBX_EUNKNOWN_KEY, "retyr");
    ASSERT_MSG_HAS(err, "did you mean 'retry'?");
    rc = build("{\"timout\": \"1s\"}", &err);
    ASSERT_ERR(rc, err, CBX_EUNKNOWN_KEY, "timout");
    ASSERT_MSG_HAS(err, "did you mean 'timeout'?");
    rc = build("{\"ratelimit\": {\"rate\": 1}}", &err);
    ASSERT_ERR(rc, err, CBX_EUNKNOWN_KEY, "ratelimit");
    ASSERT_MSG_HAS(err, "did you mean 'rate_limit'?");
}

Test(policy_parse, unknown_nested_key_suggests)
{
    cbx_err err;
    int rc = build("{\"retry\": {\"backof\": \"fixed\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EUNKNOWN_KEY, "retry.backof");
    ASSERT_MSG_HAS(err, "did you mean 'backoff'?");
    rc = build("{\"retry\": {\"budget\": {\"ratoi\": 0.1}}}", &err);
    ASSERT_ERR(rc, err, CBX_EUNKNOWN_KEY, "retry.budget.ratoi");
    ASSERT_MSG_HAS(err, "did you mean 'ratio'?");
    rc = build("{\"breaker\": {\"open_fro\": \"1s\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EUNKNOWN_KEY, "breaker.open_fro");
    ASSERT_MSG_HAS(err, "did you mean 'open_for'?");
    rc = build("{\"fallback\": {\"cache\": {\"tl\": \"1s\"}}}", &err);
    ASSERT_ERR(rc, err, CBX_EUNKNOWN_KEY, "fallback.cache.tl");
    ASSERT_MSG_HAS(err, "did you mean 'ttl'?");
}

Test(policy_parse, unknown_key_far_from_any_lists_the_known_ones)
{
    cbx_err err;
    int rc = build("{\"bulkhead\": {\"max_concurrent\": 1, \"colour\": \"red\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EUNKNOWN_KEY, "bulkhead.colour");
    cr_assert_null(strstr(err.msg, "did you mean"), "%s", err.msg);
    ASSERT_MSG_HAS(err, "max_concurrent, max_queued, queue_timeout");
}

Test(policy_parse, wrong_types)
{
    cbx_err err;
    int rc = build("{\"retry\": 3}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry");
    ASSERT_MSG_HAS(err, "expected an object");
    rc = build("{\"retry\": {\"attempts\": \"four\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.attempts");
    ASSERT_MSG_HAS(err, "expected a whole number");
    rc = build("{\"retry\": {\"attempts\": 2.5}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.attempts");
    rc = build("{\"timeout\": true}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "timeout");
    ASSERT_MSG_HAS(err, "expected a duration like 250ms or 5s");
    rc = build("{\"breaker\": {\"window\": [20]}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.window");
    rc = build("{\"breaker\": {\"key\": 7}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.key");
    rc = build("{\"retry\": {\"on\": {\"error\": true}}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.on");
    rc = build("{\"fallback\": {\"cache\": 5}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "fallback.cache");
    rc = build("{\"retry\": {\"multiplier\": \"2\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.multiplier");

    json_t *arr = json_array();
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    cr_assert_eq(cbx_policy_opts_parse(&o, arr, &err), CBX_EINVAL_CONFIG);
    ASSERT_MSG_HAS(err, "must be an object");
    json_decref(arr);
}

Test(policy_parse, bad_durations)
{
    cbx_err err;
    int rc = build("{\"timeout\": \"5 parsecs\"}", &err);
    ASSERT_ERR(rc, err, CBX_EPARSE, "timeout");
    ASSERT_MSG_HAS(err, "expected a duration like 250ms or 5s");
    rc = build("{\"retry\": {\"initial\": \"soon\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EPARSE, "retry.initial");
    rc = build("{\"bulkhead\": {\"max_concurrent\": 2, \"queue_timeout\": \"2 s s\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EPARSE, "bulkhead.queue_timeout");
    rc = build("{\"breaker\": {\"open_for\": \"0s\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.open_for");
    ASSERT_MSG_HAS(err, "greater than 0");
    rc = build("{\"fallback\": {\"cache\": {\"ttl\": \"500us\"}}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "fallback.cache.ttl");
}

Test(policy_parse, bad_ratios)
{
    cbx_err err;
    int rc = build("{\"breaker\": {\"window\": 20, \"failure_rate\": \"150%\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.failure_rate");
    ASSERT_MSG_HAS(err, "0% to 100%");
    rc = build("{\"breaker\": {\"window\": 20, \"failure_rate\": 1.5}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.failure_rate");
    rc = build("{\"breaker\": {\"window\": 20, \"slow_rate\": \"half\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EPARSE, "breaker.slow_rate");
    rc = build("{\"quality\": {\"threshold\": \"170%\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "quality.threshold");
    rc = build("{\"breaker\": {\"window\": 20, \"failure_rate\": 0}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.failure_rate");
}

Test(policy_parse, bad_enum_values)
{
    cbx_err err;
    int rc = build("{\"retry\": {\"backoff\": \"expo\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.backoff");
    ASSERT_MSG_HAS(err, "expected one of fixed, linear, exponential, decorrelated");
    rc = build("{\"retry\": {\"jitter\": \"some\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.jitter");
    ASSERT_MSG_HAS(err, "expected one of none, full, equal");
    rc = build("{\"retry\": {\"on\": [\"error\", \"success\"]}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.on[1]");
    ASSERT_MSG_HAS(err, "failure kind");
    rc = build("{\"breaker\": {\"failure_kinds\": [\"boom\"]}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.failure_kinds[0]");
    rc = build("{\"fallback\": {\"value\": 1, \"order\": [\"value\", \"nope\"]}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "fallback.order[1]");
    ASSERT_MSG_HAS(err, "expected one of cache, function, value");
}

Test(policy_parse, negative_numbers)
{
    cbx_err err;
    int rc = build("{\"retry\": {\"attempts\": -1}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.attempts");
    ASSERT_MSG_HAS(err, "must not be negative");
    rc = build("{\"timeout\": -5}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "timeout");
    ASSERT_MSG_HAS(err, "must not be negative");
    rc = build("{\"deadline\": \"-5s\"}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "deadline");
    rc = build("{\"bulkhead\": {\"max_concurrent\": 2, \"max_queued\": -1}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "bulkhead.max_queued");
    rc = build("{\"retry\": {\"budget\": {\"min_per_second\": -3}}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.budget.min_per_second");
    rc = build("{\"breaker\": {\"window\": 10, \"failure_rate\": \"-10%\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.failure_rate");
    rc = build("{\"retry\": {\"attempts\": 0}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.attempts");
    ASSERT_MSG_HAS(err, ">= 1");
    rc = build("{\"retry\": {\"multiplier\": 0.5}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.multiplier");
}

Test(policy_parse, missing_required_keys)
{
    cbx_err err;
    int rc = build("{\"rate_limit\": {\"burst\": 3}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "rate_limit.rate");
    rc = build("{\"bulkhead\": {\"max_queued\": 3}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "bulkhead.max_concurrent");
    rc = build("{\"quality\": {}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "quality.threshold");
    rc = build("{\"rate_limit\": {\"rate\": \"fast\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EPARSE, "rate_limit.rate");
    rc = build("{\"rate_limit\": {\"rate\": 0}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "rate_limit.rate");
}

Test(policy_parse, window_rules)
{
    cbx_err err;
    int rc = build("{\"breaker\": {\"failure_rate\": \"50%\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.failure_rate");
    ASSERT_MSG_HAS(err, "needs a window");
    rc = build("{\"breaker\": {\"window\": 20, \"buckets\": 5}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.buckets");
    rc = build("{\"breaker\": {\"window\": \"10s\", \"time_window\": \"20s\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.time_window");
    rc = build("{\"breaker\": {\"window\": 0}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.window");
}

/* Errors found by the components themselves come out under the section's key path. */
Test(policy_parse, component_errors_carry_the_section)
{
    cbx_err err;
    int rc = build("{\"breaker\": {\"open_for\": \"30s\", \"open_max\": \"10s\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.open_max");
    rc = build("{\"breaker\": {\"half_open_probes\": 100}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.half_open_probes");
    rc = build("{\"breaker\": {\"window\": 5, \"failure_rate\": 0.5, \"min_calls\": 10}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.min_calls");
    rc = build("{\"breaker\": {\"window\": 100000}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.window");
    rc = build("{\"breaker\": {\"window\": 10, \"slow_rate\": 0.5}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.slow_call");
    rc = build("{\"retry\": {\"initial\": \"10s\", \"max\": \"1s\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.max");
    rc = build("{\"retry\": {\"budget\": {\"ratio\": 0, \"min_per_second\": 0}}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.budget");
    rc = build("{\"rate_limit\": {\"rate\": 2000000000}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "rate_limit.rate");
    rc = build("{\"fallback\": {}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "fallback");
    rc = build("{\"fallback\": {\"cache\": true, \"order\": [\"cache\", \"cache\"]}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "fallback.order[1]");
    rc = build("{\"fallback\": {\"cache\": true, \"order\": [\"value\"]}}", &err);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert(strncmp(err.where, "fallback.order", 14) == 0, "%s", err.where);
}

Test(policy_parse, c_options_errors_use_the_same_paths)
{
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    o.sections = CBX_POLICY_WITH_BREAKER;
    o.breaker.open_ns = S(30);
    o.breaker.open_max_ns = S(1);
    cbx_policy *p = NULL;
    cbx_err err;
    int rc = cbx_policy_new(&p, &o, &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.open_max");
    cr_assert_null(p);

    cbx_policy_opts_default(&o);
    o.sections = CBX_POLICY_WITH_RETRY_BUDGET;
    rc = cbx_policy_new(&p, &o, &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.budget");

    cbx_policy_opts_default(&o);
    o.quality_threshold = 1.5;
    rc = cbx_policy_new(&p, &o, &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "quality.threshold");

    cbx_policy_opts_default(&o);
    o.sections = CBX_POLICY_WITH_BULKHEAD; /* max_concurrent 0 */
    rc = cbx_policy_new(&p, &o, &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "bulkhead.max_concurrent");

    cr_assert_eq(cbx_policy_new(NULL, &o, NULL), -EINVAL);
    cr_assert_eq(cbx_policy_new(&p, NULL, NULL), -EINVAL);
}

/* ---- Lua predicates ------------------------------------------------------------------------ */

Test(policy_parse, lua_predicates_are_read_and_kept)
{
    static const char *block =
        "{\"retry\": {\"when\": \"attempt.outputs.status == 503\"},"
        " \"breaker\": {\"count_when\": \"attempt.outcome ~= 'timeout'\","
        "  \"ignore_when\": \"attempt.outputs.exit_code == 75 -- a busy signal\"}}";
    cbx_policy_opts o;
    cbx_err err;
    json_t *b = load(block);
    cbx_policy_opts_default(&o);
    cr_assert_eq(cbx_policy_opts_parse(&o, b, &err), 0, "%s: %s", err.where, err.msg);
    cr_assert_str_eq(o.retry_when, "attempt.outputs.status == 503");
    cr_assert_str_eq(o.breaker_count_when, "attempt.outcome ~= 'timeout'");
    cr_assert_str_eq(o.breaker_ignore_when, "attempt.outputs.exit_code == 75 -- a busy signal");
    cbx_policy *p = NULL;
    cr_assert_eq(cbx_policy_new(&p, &o, &err), 0, "%s", err.msg);
    json_decref(b); /* the policy keeps copies */
    cr_assert_str_eq(cbx_policy_retry_when(p), "attempt.outputs.status == 503");
    cr_assert_str_eq(cbx_policy_breaker_count_when(p), "attempt.outcome ~= 'timeout'");
    cr_assert_str_eq(cbx_policy_breaker_ignore_when(p),
                     "attempt.outputs.exit_code == 75 -- a busy signal");
    cbx_policy_free(p);

    cr_assert_eq(parse("{\"retry\": {}}", &o, &err), 0);
    cr_assert_null(o.retry_when);
    cr_assert_null(o.breaker_count_when);
    cr_assert_null(o.breaker_ignore_when);
}

Test(policy_parse, bad_lua_predicates_name_the_key_and_say_why)
{
    cbx_err err;
    int rc = build("{\"retry\": {\"when\": \"attempt.outputs.status ==\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.when");
    ASSERT_MSG_HAS(err, "not a Lua expression: it ends too soon");
    rc = build("{\"retry\": {\"when\": \"x = 1\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.when");
    ASSERT_MSG_HAS(err, "not a Lua expression");
    rc = build("{\"breaker\": {\"count_when\": \"attempt.(\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.count_when");
    ASSERT_MSG_HAS(err, "<name> expected near '('");
    rc = build("{\"breaker\": {\"ignore_when\": \"true and\\n  @\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.ignore_when");
    ASSERT_MSG_HAS(err, "line 2:");
    rc = build("{\"retry\": {\"when\": \"\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "retry.when");
    ASSERT_MSG_HAS(err, "expected a Lua expression");
    rc = build("{\"breaker\": {\"ignore_when\": true}}", &err);
    ASSERT_ERR(rc, err, CBX_EINVAL_CONFIG, "breaker.ignore_when");
    ASSERT_MSG_HAS(err, "got true");
    rc = build("{\"retry\": {\"whenn\": \"true\"}}", &err);
    ASSERT_ERR(rc, err, CBX_EUNKNOWN_KEY, "retry.whenn");
    ASSERT_MSG_HAS(err, "did you mean 'when'?");
}
