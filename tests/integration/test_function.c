/* In-process functions through the runtime: blocking (thread pool and inline) and asynchronous
 * ones, errors, input schemas, timeouts that set the cancel flag and discard the late result, and
 * the cache of cached_function. Real loop, real thread pool. */
#include "cbx/function.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

static cbx_runtime *rt;
static cbx_registry *reg;

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* ---- the functions under test ---------------------------------------------------------------- */

static atomic_int add_calls;

static cbx_outcome add(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)t;
    atomic_fetch_add(&add_calls, 1);
    json_int_t a = json_integer_value(json_object_get(input, "a"));
    json_int_t b = json_integer_value(json_object_get(input, "b"));
    json_int_t scale = json_integer_value(json_object_get(input, "scale"));
    *output = json_pack("{s:I, s:s}", "sum", (a + b) * scale, "by", (const char *)ud);
    return CBX_OUTCOME_SUCCESS;
}

static const cbx_param add_params[] = {
    {.name = "a", .type = CBX_PARAM_INTEGER, .required = 1},
    {.name = "b", .type = CBX_PARAM_INTEGER, .required = 1},
    {.name = "scale", .type = CBX_PARAM_INTEGER, .default_json = "1"},
    {.name = NULL},
};

static cbx_outcome fail_fn(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)ud;
    (void)output;
    cbx_function_error(t, "cannot divide %lld by zero",
                       (long long)json_integer_value(json_object_get(input, "n")));
    return CBX_OUTCOME_ERROR;
}

static cbx_outcome echo(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)t;
    atomic_fetch_add((atomic_int *)ud, 1);
    *output = json_pack("{s:O}", "echo", (json_t *)input);
    return CBX_OUTCOME_SUCCESS;
}

/* Works until its attempt is cancelled, then returns a "late" success anyway. */
static atomic_int slow_saw_cancel, slow_cancel_cb;
static cbx_outcome slow(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)input;
    (void)ud;
    for (int i = 0; i < 5000 && !cbx_task_cancelled(t); i++)
        sleep_ms(1);
    if (cbx_task_cancelled(t))
        atomic_store(&slow_saw_cancel, 1);
    *output = json_pack("{s:s}", "late", "result");
    return CBX_OUTCOME_SUCCESS;
}

static void slow_cancel(cbx_task *t, void *ud)
{
    (void)t;
    (void)ud;
    atomic_fetch_add(&slow_cancel_cb, 1);
}

/* Blocks a pool thread until released. */
static atomic_int release_blockers, blocker_calls;
static cbx_outcome blocker(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)input;
    (void)t;
    (void)ud;
    atomic_fetch_add(&blocker_calls, 1);
    while (!atomic_load(&release_blockers))
        sleep_ms(1);
    *output = json_string("released");
    return CBX_OUTCOME_SUCCESS;
}

/* Asynchronous: answers from a libuv timer after input.ms, or fails when input.fail. */
typedef struct pending {
    uv_timer_t timer;
    cbx_task *t;
    int fail, cancelled;
} pending;

static int async_cancels;

static void async_closed(uv_handle_t *h)
{
    pending *p = h->data;
    if (p->cancelled)
        cbx_task_done(p->t, CBX_OUTCOME_TIMEOUT, NULL, NULL, "stopped");
    else if (p->fail)
        cbx_task_done(p->t, CBX_OUTCOME_ERROR, NULL, json_pack("{s:b}", "async", 1),
                      "async failure as asked");
    else
        cbx_task_done(p->t, CBX_OUTCOME_SUCCESS, json_pack("{s:s}", "answer", "later"),
                      json_pack("{s:b}", "async", 1), NULL);
    free(p);
}

static void async_fire(uv_timer_t *timer)
{
    uv_close((uv_handle_t *)timer, async_closed);
}

static pending *current;

static int async_start(cbx_task *t, const json_t *input, void *ud)
{
    (void)ud;
    pending *p = calloc(1, sizeof *p);
    p->t = t;
    p->fail = json_is_true(json_object_get(input, "fail"));
    uv_timer_init(cbx_task_loop(t), &p->timer);
    p->timer.data = p;
    /* the loop's cached time may lag the clock the runtime measures with: refresh it, or the
     * timer fires early and the duration check below fails now and then */
    uv_update_time(cbx_task_loop(t));
    uv_timer_start(&p->timer, async_fire,
                   (uint64_t)json_integer_value(json_object_get(input, "ms")), 0);
    current = p;
    return 0;
}

static void async_cancel(cbx_task *t, void *ud)
{
    (void)t;
    (void)ud;
    async_cancels++;
    current->cancelled = 1;
    uv_timer_stop(&current->timer);
    uv_close((uv_handle_t *)&current->timer, async_closed);
}

static int inline_thread_is_loop;
static uv_thread_t loop_thread;
static cbx_outcome on_loop(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)input;
    (void)t;
    (void)ud;
    uv_thread_t self = uv_thread_self();
    inline_thread_is_loop = uv_thread_equal(&self, &loop_thread);
    *output = json_true();
    return CBX_OUTCOME_SUCCESS;
}

static atomic_int echo_calls;

/* ---- fixture ----------------------------------------------------------------------------------
 */

static void setup(void)
{
    atomic_store(&add_calls, 0);
    atomic_store(&echo_calls, 0);
    atomic_store(&slow_saw_cancel, 0);
    atomic_store(&slow_cancel_cb, 0);
    atomic_store(&release_blockers, 0);
    atomic_store(&blocker_calls, 0);
    async_cancels = 0;
    loop_thread = uv_thread_self();
    cbx_function_cache_clear();
    cbx_function_cache_set_capacity(0);
    cbx_err err;
    cr_assert_eq(cbx_registry_new(&reg, &err), 0, "%s", err.msg);
    static const char by[] = "add";
    struct {
        const char *name;
        cbx_function_def def;
    } fns[] = {
        {"add", {.call = add, .params = add_params, .ud = (void *)by}},
        {"fail", {.call = fail_fn}},
        {"echo", {.call = echo, .ud = &echo_calls}},
        {"slow", {.call = slow, .cancel = slow_cancel}},
        {"blocker", {.call = blocker}},
        {"later", {.start = async_start, .cancel = async_cancel}},
        {"on_loop", {.call = on_loop, .flags = CBX_FUNCTION_INLINE}},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        cr_assert_eq(cbx_function_register(reg, fns[i].name, &fns[i].def, &err), 0, "%s: %s",
                     fns[i].name, err.msg);
    cr_assert_eq(
        cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg, .max_concurrent = 16}, &err), 0,
        "%s", err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    cr_assert_eq(cbx_function_unregister_all(reg), 7);
    cbx_registry_free(reg);
    cbx_function_cache_clear();
}

TestSuite(function, .init = setup, .fini = teardown, .timeout = 60);

static int call(const char *type, const char *params_json, uint64_t timeout_ms, cbx_result *r,
                cbx_diag *d)
{
    json_error_t je;
    json_t *p = json_loads(params_json, 0, &je);
    cr_assert_not_null(p, "%s: %s", params_json, je.text);
    int rc = cbx_runtime_execute(
        rt, &(cbx_request){.executor = type, .params = p, .timeout_ns = timeout_ms * CBX_NS_PER_MS},
        r, d);
    json_decref(p);
    return rc;
}

static void assert_json(const json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(want, "%s", want_text);
    char *g = got ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    cr_assert(got && json_equal(got, want), "got %s, want %s", g ? g : "NULL", want_text);
    free(g);
    json_decref(want);
}

/* ---- tests --------------------------------------------------------------------------------------
 */

Test(function, a_blocking_function_runs_on_the_pool_with_defaults_applied)
{
    cbx_result r;
    int rc = call("function", "{\"name\": \"add\", \"input\": {\"a\": 2, \"b\": 3}}", 0, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(r.status, CBX_STATUS_SUCCESS);
    assert_json(r.outputs, "{\"sum\": 5, \"by\": \"add\"}");
    cbx_result_clear(&r);
    rc = call("function", "{\"name\": \"add\", \"input\": {\"a\": 2, \"b\": 3, \"scale\": 10}}", 0,
              &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    assert_json(r.outputs, "{\"sum\": 50, \"by\": \"add\"}");
    cbx_result_clear(&r);
    cr_assert_eq(atomic_load(&add_calls), 2);
}

Test(function, an_asynchronous_function_ends_from_the_loop)
{
    cbx_result r;
    int rc = call("function", "{\"name\": \"later\", \"input\": {\"ms\": 20}}", 0, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    assert_json(r.outputs, "{\"answer\": \"later\"}");
    assert_json(r.metadata, "{\"async\": true}");
    cr_assert_geq(r.duration_ns, 20 * CBX_NS_PER_MS);
    cbx_result_clear(&r);
}

Test(function, an_inline_function_runs_on_the_loop_thread)
{
    cbx_result r;
    int rc = call("function", "{\"name\": \"on_loop\"}", 0, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert(json_is_true(r.outputs));
    cr_assert_eq(inline_thread_is_loop, 1);
    cbx_result_clear(&r);
}

Test(function, errors_propagate_with_their_message)
{
    cbx_result r;
    int rc = call("function", "{\"name\": \"fail\", \"input\": {\"n\": 7}}", 0, &r, NULL);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cr_assert_str_eq(r.error, "cannot divide 7 by zero");
    cr_assert_null(r.outputs);
    cbx_result_clear(&r);

    rc = call("function", "{\"name\": \"later\", \"input\": {\"ms\": 1, \"fail\": true}}", 0, &r,
              NULL);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_str_eq(r.error, "async failure as asked");
    cbx_result_clear(&r);
}

Test(function, an_unknown_function_is_rejected_with_a_suggestion)
{
    cbx_result r;
    cbx_diag d = {0};
    int rc = call("function", "{\"name\": \"ad\"}", 0, &r, &d);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert_eq(r.attempt_count, 0);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.items[0].where, "name");
    cr_assert_str_eq(d.items[0].msg, "no function called 'ad' is registered; did you mean 'add'?");
    cbx_diag_clear(&d);
    cbx_result_clear(&r);
}

Test(function, a_bad_input_is_rejected_naming_every_problem)
{
    cbx_result r;
    cbx_diag d = {0};
    int rc = call("function", "{\"name\": \"add\", \"input\": {\"a\": \"two\"}}", 0, &r, &d);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert_eq(atomic_load(&add_calls), 0);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.items[0].where, "input.a");
    cr_assert(strstr(d.items[0].msg, "input.a: expected integer"), "%s", d.items[0].msg);
    cr_assert(strstr(d.items[0].msg, "input.b:"), "%s", d.items[0].msg);
    cbx_diag_clear(&d);
    cbx_result_clear(&r);
}

Test(function, a_timeout_sets_the_cancel_flag_and_discards_the_late_result)
{
    cbx_result r;
    int rc = call("function", "{\"name\": \"slow\"}", 50, &r, NULL);
    cr_assert_eq(rc, CBX_ETIMEDOUT);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    cr_assert_null(r.outputs, "the late result must be discarded");
    cr_assert_eq(atomic_load(&slow_saw_cancel), 1);
    cr_assert_eq(atomic_load(&slow_cancel_cb), 1);
    cr_assert(json_is_true(json_object_get(r.metadata, "late_result_discarded")));
    cbx_result_clear(&r);
}

static void *release_later(void *arg)
{
    (void)arg;
    sleep_ms(300); /* long after the queued call's 100 ms timeout */
    atomic_store(&release_blockers, 1);
    return NULL;
}

Test(function, a_call_still_queued_at_its_timeout_never_runs)
{
    /* four blockers fill the pool's four threads; the fifth call waits in the pool's queue */
    setenv("UV_THREADPOOL_SIZE", "4", 1);
    enum { BLOCKERS = 4 };
    cbx_request reqs[BLOCKERS + 1];
    cbx_result res[BLOCKERS + 1];
    json_t *pb = json_loads("{\"name\": \"blocker\"}", 0, NULL);
    json_t *pe = json_loads("{\"name\": \"echo\", \"input\": 1}", 0, NULL);
    for (int i = 0; i < BLOCKERS; i++)
        reqs[i] = (cbx_request){.executor = "function", .params = pb};
    reqs[BLOCKERS] =
        (cbx_request){.executor = "function", .params = pe, .timeout_ns = 100 * CBX_NS_PER_MS};
    pthread_t waker;
    cr_assert_eq(pthread_create(&waker, NULL, release_later, NULL), 0);
    size_t ok = cbx_runtime_execute_many(rt, reqs, BLOCKERS + 1, 0, res);
    pthread_join(waker, NULL);
    cr_assert_eq(ok, BLOCKERS);
    cr_assert_eq(atomic_load(&blocker_calls), BLOCKERS);
    cr_assert_eq(res[BLOCKERS].status, CBX_STATUS_TIMEOUT);
    cr_assert(strstr(res[BLOCKERS].error, "stopped before it ran"), "%s", res[BLOCKERS].error);
    cr_assert_eq(atomic_load(&echo_calls), 0, "the queued call must never run");
    for (int i = 0; i <= BLOCKERS; i++)
        cbx_result_clear(&res[i]);
    json_decref(pb);
    json_decref(pe);
}

Test(function, an_asynchronous_function_is_cancelled_at_its_timeout)
{
    cbx_result r;
    int rc = call("function", "{\"name\": \"later\", \"input\": {\"ms\": 600000}}", 40, &r, NULL);
    cr_assert_eq(rc, CBX_ETIMEDOUT);
    cr_assert_eq(async_cancels, 1);
    cr_assert_lt(r.duration_ns, 300000 * CBX_NS_PER_MS, "the function's time was waited out");
    cbx_result_clear(&r);
}

/* ---- cached_function ------------------------------------------------------------------------- */

static int cached(const char *params_json, cbx_result *r)
{
    return call("cached_function", params_json, 0, r, NULL);
}

Test(function, the_cache_hits_on_the_same_input_in_any_key_order)
{
    cbx_result r;
    cr_assert_eq(cached("{\"name\": \"echo\", \"input\": {\"x\": 1, \"y\": [1, 2]}}", &r), 0);
    cr_assert(json_is_false(json_object_get(r.metadata, "cache_hit")));
    assert_json(r.outputs, "{\"echo\": {\"x\": 1, \"y\": [1, 2]}}");
    cbx_result_clear(&r);

    cr_assert_eq(cached("{\"input\": {\"y\": [1, 2], \"x\": 1}, \"name\": \"echo\"}", &r), 0);
    cr_assert(json_is_true(json_object_get(r.metadata, "cache_hit")));
    assert_json(r.outputs, "{\"echo\": {\"x\": 1, \"y\": [1, 2]}}");
    cbx_result_clear(&r);
    cr_assert_eq(atomic_load(&echo_calls), 1, "a hit must not call the function");

    /* another input, another name, a real where an integer was: misses */
    cr_assert_eq(cached("{\"name\": \"echo\", \"input\": {\"x\": 1.0, \"y\": [1, 2]}}", &r), 0);
    cr_assert(json_is_false(json_object_get(r.metadata, "cache_hit")));
    cbx_result_clear(&r);
    cr_assert_eq(cached("{\"name\": \"echo\", \"input\": {\"x\": 1, \"y\": [2, 1]}}", &r), 0);
    cbx_result_clear(&r);
    cr_assert_eq(atomic_load(&echo_calls), 3);

    cbx_function_cache_stats st;
    cbx_function_cache_stats_get(&st);
    cr_assert_eq(st.hits, 1);
    cr_assert_eq(st.misses, 3);
    cr_assert_eq(st.entries, 3);
}

Test(function, a_long_input_hits_the_cache_too)
{
    /* keys longer than the executor's own buffer are built on the heap */
    char text[1200];
    memset(text, 'k', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    for (int round = 0; round < 3; round++) {
        json_t *p = json_pack("{s:s, s:{s:s, s:i}}", "name", "echo", "input", "long", text, "n",
                              round == 2);
        cbx_result r;
        cr_assert_eq(cbx_runtime_execute(
                         rt, &(cbx_request){.executor = "cached_function", .params = p}, &r, NULL),
                     0, "%s", r.error);
        cr_assert_eq(json_is_true(json_object_get(r.metadata, "cache_hit")), round == 1, "round %d",
                     round);
        cr_assert_str_eq(
            json_string_value(json_object_get(json_object_get(r.outputs, "echo"), "long")), text);
        cbx_result_clear(&r);
        json_decref(p);
    }
    cr_assert_eq(atomic_load(&echo_calls), 2);
}

Test(function, canonical_keys_ignore_order_and_whitespace)
{
    json_t *a = json_loads("{\"b\": 1, \"a\": {\"d\": null, \"c\": \"x\"}}", 0, NULL);
    json_t *b = json_loads("{ \"a\" : { \"c\" : \"x\", \"d\" : null }, \"b\" : 1 }", 0, NULL);
    uint64_t ha, hb, hc;
    char *ca = NULL;
    cr_assert_eq(cbx_function_cache_key("f", a, &ha, &ca), 0);
    cr_assert_eq(cbx_function_cache_key("f", b, &hb, NULL), 0);
    cr_assert_eq(cbx_function_cache_key("g", b, &hc, NULL), 0);
    cr_assert_str_eq(ca, "{\"a\":{\"c\":\"x\",\"d\":null},\"b\":1}");
    cr_assert_eq(ha, hb);
    cr_assert_neq(ha, hc);
    free(ca);
    json_decref(a);
    json_decref(b);
}

Test(function, the_cache_misses_after_the_ttl)
{
    cbx_result r;
    const char *req = "{\"name\": \"echo\", \"input\": \"t\", \"ttl_ms\": 60}";
    cr_assert_eq(cached(req, &r), 0);
    cbx_result_clear(&r);
    cr_assert_eq(cached(req, &r), 0);
    cr_assert(json_is_true(json_object_get(r.metadata, "cache_hit")));
    cbx_result_clear(&r);
    sleep_ms(120);
    cr_assert_eq(cached(req, &r), 0);
    cr_assert(json_is_false(json_object_get(r.metadata, "cache_hit")));
    cbx_result_clear(&r);
    cr_assert_eq(atomic_load(&echo_calls), 2);
    cbx_function_cache_stats st;
    cbx_function_cache_stats_get(&st);
    cr_assert_eq(st.expired, 1);

    /* ttl_ms 0 always calls */
    cr_assert_eq(cached("{\"name\": \"echo\", \"input\": \"t\", \"ttl_ms\": 0}", &r), 0);
    cr_assert(json_is_false(json_object_get(r.metadata, "cache_hit")));
    cbx_result_clear(&r);
    cr_assert_eq(atomic_load(&echo_calls), 3);
}

Test(function, failures_and_timeouts_are_not_cached)
{
    cbx_result r;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(cached("{\"name\": \"fail\", \"input\": {\"n\": 1}}", &r), CBX_EFAILED);
        cbx_result_clear(&r);
    }
    call("cached_function", "{\"name\": \"slow\"}", 30, &r, NULL);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    cbx_result_clear(&r);
    cbx_function_cache_stats st;
    cbx_function_cache_stats_get(&st);
    cr_assert_eq(st.entries, 0);
    cr_assert_eq(st.hits, 0);
}

Test(function, the_cache_evicts_the_least_recently_used)
{
    cbx_function_cache_set_capacity(2);
    cbx_result r;
    const char *k1 = "{\"name\": \"echo\", \"input\": 1}";
    const char *k2 = "{\"name\": \"echo\", \"input\": 2}";
    const char *k3 = "{\"name\": \"echo\", \"input\": 3}";
    const char *order[] = {k1, k2, k1, k3, k1, k2};
    int hits[] = {0, 0, 1, 0, 1, 0}; /* k3 evicts k2, the least recently used */
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        cr_assert_eq(cached(order[i], &r), 0);
        cr_assert_eq(json_is_true(json_object_get(r.metadata, "cache_hit")), hits[i], "step %zu",
                     i);
        cbx_result_clear(&r);
    }
    cbx_function_cache_stats st;
    cbx_function_cache_stats_get(&st);
    cr_assert_eq(st.entries, 2);
    cr_assert_eq(st.evictions, 2);
}

Test(function, an_asynchronous_result_is_cached_too)
{
    cbx_result r;
    cr_assert_eq(cached("{\"name\": \"later\", \"input\": {\"ms\": 1}}", &r), 0);
    cbx_result_clear(&r);
    cr_assert_eq(cached("{\"name\": \"later\", \"input\": {\"ms\": 1}}", &r), 0);
    cr_assert(json_is_true(json_object_get(r.metadata, "cache_hit")));
    assert_json(r.outputs, "{\"answer\": \"later\"}");
    cbx_result_clear(&r);
}

Test(function, unregistering_drops_the_function_and_its_cache)
{
    cbx_result r;
    cr_assert_eq(cached("{\"name\": \"echo\", \"input\": 5}", &r), 0);
    cbx_result_clear(&r);
    cbx_function_cache_stats st;
    cbx_function_cache_stats_get(&st);
    cr_assert_eq(st.entries, 1);
    cbx_err err;
    cr_assert_eq(cbx_function_unregister(reg, "echo", &err), 0);
    cbx_function_cache_stats_get(&st);
    cr_assert_eq(st.entries, 0);
    cr_assert_eq(cbx_function_exists("echo"), 0);
    cr_assert_eq(cached("{\"name\": \"echo\", \"input\": 5}", &r), CBX_EINVAL_CONFIG);
    cbx_result_clear(&r);
    cr_assert_eq(cbx_function_unregister(reg, "echo", &err), -ENOENT);
    /* put it back for the teardown's count */
    cr_assert_eq(cbx_function_register(reg, "echo",
                                       &(cbx_function_def){.call = echo, .ud = &echo_calls}, &err),
                 0);
}

Test(function, registration_is_checked)
{
    cbx_err err;
    cbx_function_def ok = {.call = echo, .ud = &echo_calls};
    cr_assert_eq(cbx_function_register(reg, "add", &ok, &err), CBX_EEXISTS);
    cr_assert(strstr(err.msg, "'add' is already registered"), "%s", err.msg);
    cr_assert_eq(cbx_function_register(reg, "Bad Name", &ok, &err), CBX_EINVAL_CONFIG);
    cr_assert_eq(cbx_function_register(reg, "", &ok, &err), CBX_EINVAL_CONFIG);
    cr_assert_eq(cbx_function_register(NULL, "x", &ok, &err), CBX_EINVAL_CONFIG);
    cbx_function_def both = {.call = echo, .start = async_start};
    cr_assert_eq(cbx_function_register(reg, "both", &both, &err), CBX_EINVAL_CONFIG);
    cr_assert(strstr(err.msg, "exactly one of call"), "%s", err.msg);
    cbx_function_def neither = {0};
    cr_assert_eq(cbx_function_register(reg, "neither", &neither, &err), CBX_EINVAL_CONFIG);
    cbx_function_def inline_async = {.start = async_start, .flags = CBX_FUNCTION_INLINE};
    cr_assert_eq(cbx_function_register(reg, "ia", &inline_async, &err), CBX_EINVAL_CONFIG);
    static const cbx_param bad_schema[] = {
        {.name = "n", .type = CBX_PARAM_INTEGER, .default_json = "\"ten\""},
        {.name = NULL},
    };
    cbx_function_def bad = {.call = echo, .params = bad_schema};
    cr_assert_eq(cbx_function_register(reg, "bad", &bad, &err), CBX_EINVAL_CONFIG);
    cr_assert(strstr(err.msg, "function 'bad', parameter 'n'"), "%s", err.msg);
    cr_assert_eq(cbx_function_exists("bad"), 0);

    /* a name belongs to the registry that registered it */
    cbx_registry *other = NULL;
    cr_assert_eq(cbx_registry_new(&other, NULL), 0);
    cr_assert_eq(cbx_function_unregister(other, "add", &err), -ENOENT);
    cr_assert(strstr(err.msg, "another registry"), "%s", err.msg);
    cr_assert_eq(cbx_function_register(other, "add", &ok, &err), CBX_EEXISTS);
    cr_assert_eq(cbx_function_unregister_all(other), 0);
    cbx_registry_free(other);
    cr_assert_eq(cbx_function_exists("add"), 1);
}

Test(function, many_calls_in_parallel)
{
    enum { N = 64 };
    cbx_request reqs[N];
    cbx_result res[N];
    json_t *ps[N];
    for (int i = 0; i < N; i++) {
        ps[i] = json_pack("{s:s, s:{s:i, s:i}}", "name", "add", "input", "a", i, "b", 1);
        reqs[i] =
            (cbx_request){.executor = i % 2 ? "function" : "cached_function", .params = ps[i]};
    }
    size_t ok = cbx_runtime_execute_many(rt, reqs, N, 0, res);
    cr_assert_eq(ok, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(json_integer_value(json_object_get(res[i].outputs, "sum")), i + 1);
        cbx_result_clear(&res[i]);
        json_decref(ps[i]);
    }
}
