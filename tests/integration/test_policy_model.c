/* A model-based test of policy composition: random sequences of attempt outcomes (success,
 * error, timeout, quality) go through a breaker in each of its homes - in the policy (in-process),
 * in the host-wide store (a named breaker), picked by key (a store breaker per key, as flows
 * pick them) - with and without a fallback, with and without retries. After every execution the
 * final status, the attempts, whether the fallback answered, the breaker's counters and state,
 * and the journaled status and attempt outcomes must agree with a small reference model.
 * Real runtime, real loop, real journal and store files. */
#include "cbx/breaker.h"
#include "cbx/breaker_store.h"
#include "cbx/function.h"
#include "cbx/journal.h"
#include "cbx/policy.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRIP 3 /* consecutive failures that open the breaker */

enum home { IN_PROCESS, HOST, KEYED };
static const char *const home_names[] = {"in-process", "host-wide", "keyed"};

/* ---- the executor: attempt n reports outcomes[n-1] --------------------------------------------
 */

static cbx_outcome scripted(const json_t *input, json_t **output, cbx_task *t, void *ud)
{
    (void)ud;
    const json_t *list = json_object_get(input, "outcomes");
    const char *o = json_string_value(json_array_get(list, cbx_task_attempt(t) - 1));
    *output = json_pack("{s:i}", "attempt", (int)cbx_task_attempt(t));
    if (!o || strcmp(o, "success") == 0)
        return CBX_OUTCOME_SUCCESS;
    if (strcmp(o, "quality") == 0) {
        cbx_task_set_quality(t, 0.1); /* under the policy's threshold of 0.5 */
        return CBX_OUTCOME_SUCCESS;
    }
    cbx_function_error(t, "scripted %s", o);
    return strcmp(o, "timeout") == 0 ? CBX_OUTCOME_TIMEOUT : CBX_OUTCOME_ERROR;
}

/* ---- the reference model ------------------------------------------------------------------- */

typedef struct model {
    int consecutive, open;
    long successes, failures, rejections;
} model;

typedef struct expect {
    cbx_status status;
    int attempts, fallback_used;
    const char *outcomes[4]; /* of each attempt, as recorded */
} expect;

static expect model_step(model *m, const char *const *outcomes, int max_attempts, int fallback)
{
    expect e = {.status = CBX_STATUS_FAILED};
    for (int k = 0; k < max_attempts; k++) {
        if (m->open) {
            m->rejections++;
            e.status = CBX_STATUS_REJECTED; /* also when attempts ran before */
            break;
        }
        const char *o = outcomes[k];
        e.outcomes[e.attempts++] = o;
        if (strcmp(o, "success") == 0) {
            m->successes++;
            m->consecutive = 0;
            e.status = CBX_STATUS_SUCCESS;
            break;
        }
        m->failures++;
        if (++m->consecutive >= TRIP)
            m->open = 1;
        /* retry.on is the default: error and timeout are retried, quality is not */
        int retried = strcmp(o, "quality") != 0 && k + 1 < max_attempts;
        if (!retried) {
            e.status = strcmp(o, "timeout") == 0 ? CBX_STATUS_TIMEOUT : CBX_STATUS_FAILED;
            break;
        }
    }
    e.fallback_used = fallback && e.status != CBX_STATUS_SUCCESS;
    return e;
}

/* ---- one configuration --------------------------------------------------------------------- */

typedef struct config {
    enum home home;
    int fallback, max_attempts;
} config;

static void counters(cbx_runtime *rt, cbx_policy *p, enum home h, const char *name, long *succ,
                     long *fail, long *rej, int *open)
{
    if (h == IN_PROCESS) {
        cbx_breaker_metrics mt;
        cbx_breaker_metrics_get(cbx_policy_breaker(p), &mt);
        *succ = (long)mt.successes;
        *fail = (long)mt.failures;
        *rej = (long)mt.rejections;
        *open = cbx_breaker_state_now(cbx_policy_breaker(p)) == CBX_BREAKER_OPEN;
        return;
    }
    json_t *b = NULL;
    cbx_err e;
    cr_assert_eq(cbx_breaker_store_show(cbx_runtime_breakers(rt), name, &b, &e), 0, "%s: %s", name,
                 e.msg);
    *succ = (long)json_integer_value(json_object_get(b, "successes"));
    *fail = (long)json_integer_value(json_object_get(b, "failures"));
    *rej = (long)json_integer_value(json_object_get(b, "rejections"));
    *open = strcmp(json_string_value(json_object_get(b, "state")), "open") == 0;
    json_decref(b);
}

static void reset_breaker(cbx_runtime *rt, cbx_policy *p, enum home h, const char *name)
{
    if (h == IN_PROCESS)
        cbx_breaker_reset(cbx_policy_breaker(p));
    else
        cr_assert_eq(cbx_breaker_store_set_mode(cbx_runtime_breakers(rt), name, CBX_BREAKER_NORMAL),
                     0);
}

static void run_config(const char *dir, config c, unsigned seed)
{
    static const char *const kinds[] = {"success", "success", "error", "timeout", "quality"};
    char path[512], what[128];
    snprintf(what, sizeof what, "%s breaker, %s fallback, %d attempt(s)", home_names[c.home],
             c.fallback ? "a" : "no", c.max_attempts);

    cbx_err e;
    cbx_registry *reg = NULL;
    cr_assert_eq(cbx_registry_new(&reg, &e), 0);
    cbx_function_def def = {.call = scripted, .flags = CBX_FUNCTION_INLINE};
    cr_assert_eq(cbx_function_register(reg, "scripted", &def, &e), 0, "%s", e.msg);

    snprintf(path, sizeof path, "%s/journal-%d-%d-%d.db", dir, c.home, c.fallback, c.max_attempts);
    cbx_journal *j = NULL;
    cbx_journal_opts jo = {.path = path};
    cr_assert_eq(cbx_journal_open(&j, &jo, &e), 0, "%s", e.msg);
    cbx_breaker_store *store = NULL;
    if (c.home == HOST) {
        snprintf(path, sizeof path, "%s/breakers-%d-%d", dir, c.fallback, c.max_attempts);
        cr_assert_eq(cbx_breaker_store_host_new(&store, path, &e), 0, "%s", e.msg);
    } else {
        cr_assert_eq(cbx_breaker_store_memory_new(&store, &e), 0, "%s", e.msg);
    }
    cbx_runtime *rt = NULL;
    cbx_runtime_opts ro = {.registry = reg, .journal = j, .breakers = store};
    cr_assert_eq(cbx_runtime_new(&rt, &ro, &e), 0, "%s", e.msg);

    /* the policy: retries (1 ms), the quality threshold, a fallback; the breaker lives in the
     * policy only for IN_PROCESS (KEYED names its options and a key, as a flow's policy does) */
    char block[512];
    snprintf(block, sizeof block,
             "{\"retry\": {\"attempts\": %d, \"initial\": \"1ms\", \"max\": \"2ms\"},"
             " \"quality\": {\"threshold\": 0.5}%s%s}",
             c.max_attempts, c.fallback ? ", \"fallback\": {\"value\": {\"fb\": true}}" : "",
             c.home == IN_PROCESS ? ", \"breaker\": {\"consecutive_failures\": 3, \"open_for\": "
                                    "\"1h\"}"
             : c.home == KEYED    ? ", \"breaker\": {\"consecutive_failures\": 3, \"open_for\": "
                                    "\"1h\", \"key\": \"{{ item }}\"}"
                                  : "");
    json_error_t je;
    json_t *pj = json_loads(block, 0, &je);
    cr_assert_not_null(pj, "%s: %s", block, je.text);
    cbx_policy *p = NULL;
    cr_assert_eq(cbx_policy_new_json(&p, pj, NULL, &e), 0, "%s: %s", block, e.msg);
    json_decref(pj);
    cbx_breaker_opts bo;
    cbx_breaker_opts_default(&bo);
    bo.consecutive_failures = TRIP;
    bo.open_ns = 3600 * CBX_NS_PER_S;
    const cbx_breaker_opts *store_opts = c.home == KEYED ? cbx_policy_breaker_opts(p) : &bo;

    model models[2] = {{0}, {0}}; /* KEYED uses two keys; the others model[0] */
    srand(seed);
    for (int n = 0; n < 400; n++) {
        int key = c.home == KEYED ? rand() % 2 : 0;
        char name[32];
        snprintf(name, sizeof name, c.home == KEYED ? "pol:k%d" : "named", key);
        model *m = &models[key];
        /* now and then the breaker is reset by hand (a store breaker once it exists) */
        if (rand() % 25 == 0 && m->successes + m->failures + m->rejections > 0) {
            reset_breaker(rt, p, c.home, name);
            m->open = 0;
            m->consecutive = 0;
        }
        const char *outs[4];
        json_t *list = json_array();
        for (int k = 0; k < 4; k++) {
            outs[k] = kinds[rand() % 5];
            json_array_append_new(list, json_string(outs[k]));
        }
        json_t *params = json_pack("{s:s, s:{s:o}}", "name", "scripted", "input", "outcomes", list);
        expect want = model_step(m, outs, c.max_attempts, c.fallback);

        cbx_request req = {.executor = "function",
                           .params = params,
                           .policy = p,
                           .breaker = c.home == IN_PROCESS ? NULL : name,
                           .breaker_opts = c.home == IN_PROCESS ? NULL : store_opts};
        cbx_result res;
        cbx_runtime_execute(rt, &req, &res, NULL);
        json_decref(params);

        cr_assert_eq(res.status, want.status, "%s, execution %d: status %s, the model says %s",
                     what, n, cbx_status_name(res.status), cbx_status_name(want.status));
        cr_assert_eq((int)res.attempt_count, want.attempts, "%s, execution %d: %u attempts, not %d",
                     what, n, res.attempt_count, want.attempts);
        cr_assert_eq(res.fallback_used, want.fallback_used, "%s, execution %d: fallback_used %d",
                     what, n, res.fallback_used);
        if (want.fallback_used)
            cr_assert(json_is_true(json_object_get(res.outputs, "fb")), "%s, execution %d", what,
                      n);
        for (int k = 0; k < want.attempts; k++) {
            const char *got = json_string_value(
                json_object_get(json_array_get(res.attempts, (size_t)k), "outcome"));
            cr_assert_str_eq(got, want.outcomes[k], "%s, execution %d, attempt %d", what, n, k + 1);
        }

        /* the breaker agrees with the model */
        long s, f, r;
        int open;
        counters(rt, p, c.home, name, &s, &f, &r, &open);
        cr_assert_eq(s, m->successes, "%s, execution %d: successes %ld, not %ld", what, n, s,
                     m->successes);
        cr_assert_eq(f, m->failures, "%s, execution %d: failures %ld, not %ld", what, n, f,
                     m->failures);
        cr_assert_eq(r, m->rejections, "%s, execution %d: rejections %ld, not %ld", what, n, r,
                     m->rejections);
        cr_assert_eq(open, m->open, "%s, execution %d: open %d", what, n, open);

        /* the journal agrees too */
        json_t *row = NULL;
        cr_assert_eq(cbx_journal_get(j, res.id, &row, &e), 0, "%s", e.msg);
        cr_assert_str_eq(json_string_value(json_object_get(row, "status")),
                         cbx_status_name(want.status), "%s, execution %d: journaled status", what,
                         n);
        json_t *atts = json_object_get(row, "attempts");
        cr_assert_eq((int)json_array_size(atts), want.attempts,
                     "%s, execution %d: journaled attempts", what, n);
        for (int k = 0; k < want.attempts; k++)
            cr_assert_str_eq(
                json_string_value(json_object_get(json_array_get(atts, (size_t)k), "outcome")),
                want.outcomes[k], "%s, execution %d: journaled attempt %d", what, n, k + 1);
        json_decref(row);
        cbx_result_clear(&res);
    }
    cbx_runtime_free(rt);
    cbx_policy_free(p);
    cbx_breaker_store_free(store);
    cbx_journal_close(j);
    cr_assert_eq(cbx_function_unregister(reg, "scripted", &e), 0, "%s", e.msg);
    cbx_registry_free(reg);
}

Test(policy_model, every_home_with_and_without_fallback_and_retries, .timeout = 600)
{
    char dir[] = "/tmp/cbx-policy-model.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    unsigned seed = 1;
    for (int h = IN_PROCESS; h <= KEYED; h++)
        for (int fb = 0; fb <= 1; fb++)
            for (int a = 1; a <= 3; a += 2)
                run_config(dir, (config){.home = (enum home)h, .fallback = fb, .max_attempts = a},
                           seed++);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
