/* Journal statistics: counts, success rate, nearest-rank percentiles, mean attempts, groups. */
#include "cbx/journal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static cbx_journal *open_mem(void)
{
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = ":memory:"}, &err), 0, "%s",
                 err.msg);
    return j;
}

/* One execution: start, `attempts` attempts, end. status "running" writes no end; "rejected"
 * writes only the end. */
static void put(cbx_journal *j, const char *id, const char *executor, const char *breaker,
                const char *status, uint64_t submitted_ms, uint64_t duration_ms, uint32_t attempts,
                int fallback)
{
    cbx_err err;
    if (strcmp(status, "rejected") != 0) {
        cbx_journal_execution e = {
            .id = id, .executor = executor, .breaker = breaker, .submitted_ms = submitted_ms};
        cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
    }
    for (uint32_t n = 1; n <= attempts; n++) {
        cbx_journal_attempt_info a = {.execution_id = id,
                                      .number = n,
                                      .outcome = "error",
                                      .started_ms = submitted_ms,
                                      .duration_ns = duration_ms * 1000000ull / attempts};
        cr_assert_eq(cbx_journal_attempt(j, &a, &err), 0, "%s", err.msg);
    }
    if (strcmp(status, "running") == 0)
        return;
    cbx_journal_end end = {.execution_id = id,
                           .status = status,
                           .fallback_used = fallback,
                           .attempts = attempts,
                           .ended_ms = submitted_ms + duration_ms,
                           .duration_ns = duration_ms * 1000000ull};
    cr_assert_eq(cbx_journal_execution_end(j, &end, &err), 0, "%s", err.msg);
}

static json_t *stats(cbx_journal *j, const cbx_history_filter *f, const char *group_by)
{
    json_t *out = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_stats(j, f, group_by, &out, &err), 0, "%s", err.msg);
    cr_assert_not_null(out);
    return out;
}

static json_int_t geti(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_integer(v), "%s is not an integer", k);
    return json_integer_value(v);
}

static double getf(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_number(v), "%s is not a number", k);
    return json_number_value(v);
}

Test(journal_stats, nearest_rank_percentiles_of_1_to_100_ms)
{
    cbx_journal *j = open_mem();
    char id[16];
    /* written in a scrambled order: the percentiles must not depend on it */
    for (int i = 0; i < 100; i++) {
        int d = (i * 37) % 100 + 1;
        snprintf(id, sizeof id, "d%03d", d);
        put(j, id, "a", NULL, "success", 1000 + (uint64_t)i, (uint64_t)d, 1, 0);
    }
    json_t *s = stats(j, NULL, NULL);
    cr_assert_eq(geti(s, "executions"), 100);
    cr_assert_eq(geti(s, "successes"), 100);
    cr_assert_eq(geti(s, "failures"), 0);
    cr_assert_float_eq(getf(s, "success_rate"), 1.0, 1e-12);
    cr_assert_float_eq(getf(s, "mean_ms"), 50.5, 1e-9);
    cr_assert_float_eq(getf(s, "p50_ms"), 50.0, 1e-9);
    cr_assert_float_eq(getf(s, "p95_ms"), 95.0, 1e-9);
    cr_assert_float_eq(getf(s, "p99_ms"), 99.0, 1e-9);
    cr_assert_float_eq(getf(s, "mean_attempts"), 1.0, 1e-12);
    json_decref(s);
    cbx_journal_close(j);
}

Test(journal_stats, small_sets_use_nearest_rank_too)
{
    cbx_journal *j = open_mem();
    put(j, "x1", "a", NULL, "success", 1, 7, 1, 0);
    json_t *s = stats(j, NULL, NULL);
    cr_assert_float_eq(getf(s, "p50_ms"), 7.0, 1e-9);
    cr_assert_float_eq(getf(s, "p99_ms"), 7.0, 1e-9);
    json_decref(s);
    /* 1, 2, 3, 4: p50 is rank 2, p95 and p99 rank 4 */
    put(j, "x2", "a", NULL, "success", 2, 3, 1, 0);
    put(j, "x3", "a", NULL, "success", 3, 1, 1, 0);
    put(j, "x4", "a", NULL, "success", 4, 2, 1, 0);
    cr_assert_eq(
        cbx_journal_clear(j, &(cbx_history_filter){.since_ms = 1, .until_ms = 2}, NULL, NULL), 0);
    put(j, "x5", "a", NULL, "success", 5, 4, 1, 0);
    s = stats(j, NULL, NULL);
    cr_assert_eq(geti(s, "executions"), 4);
    cr_assert_float_eq(getf(s, "p50_ms"), 2.0, 1e-9);
    cr_assert_float_eq(getf(s, "p95_ms"), 4.0, 1e-9);
    cr_assert_float_eq(getf(s, "p99_ms"), 4.0, 1e-9);
    cr_assert_float_eq(getf(s, "mean_ms"), 2.5, 1e-9);
    json_decref(s);
    cbx_journal_close(j);
}

/* A mixed set:
 *   cmd: success 10 ms/1 att, success 30 ms/3 att (fallback no), failed 20 ms/2 att,
 *        timeout 100 ms/2 att, rejected (no attempts), running (1 attempt so far)
 *   http (breaker "api"): success 5 ms/1 att, cancelled 8 ms/1 att, success via fallback
 *        40 ms/4 att (status success, fallback_used 1)
 */
static void mixed(cbx_journal *j)
{
    put(j, "c1", "cmd", NULL, "success", 100, 10, 1, 0);
    put(j, "c2", "cmd", NULL, "success", 200, 30, 3, 0);
    put(j, "c3", "cmd", NULL, "failed", 300, 20, 2, 0);
    put(j, "c4", "cmd", NULL, "timeout", 400, 100, 2, 0);
    put(j, "c5", "cmd", NULL, "rejected", 500, 0, 0, 0);
    put(j, "c6", "cmd", NULL, "running", 600, 0, 1, 0);
    put(j, "h1", "http", "api", "success", 150, 5, 1, 0);
    put(j, "h2", "http", "api", "cancelled", 250, 8, 1, 0);
    put(j, "h3", "http", "api", "success", 350, 40, 4, 1);
}

Test(journal_stats, overall_counts_rates_and_latency)
{
    cbx_journal *j = open_mem();
    mixed(j);
    json_t *s = stats(j, NULL, NULL);
    cr_assert_eq(geti(s, "executions"), 8); /* the running one is not finished */
    cr_assert_eq(geti(s, "successes"), 4);
    cr_assert_eq(geti(s, "failures"), 1);
    cr_assert_eq(geti(s, "timeouts"), 1);
    cr_assert_eq(geti(s, "cancelled"), 1);
    cr_assert_eq(geti(s, "rejected"), 1);
    cr_assert_eq(geti(s, "running"), 1);
    cr_assert_eq(geti(s, "fallbacks"), 1);
    cr_assert_float_eq(getf(s, "success_rate"), 4.0 / 8.0, 1e-12);
    /* latency and attempts over the 7 that ran: 5 8 10 20 30 40 100 */
    cr_assert_float_eq(getf(s, "mean_ms"), (5 + 8 + 10 + 20 + 30 + 40 + 100) / 7.0, 1e-9);
    cr_assert_float_eq(getf(s, "p50_ms"), 20.0, 1e-9); /* rank ceil(3.5) = 4 */
    cr_assert_float_eq(getf(s, "p95_ms"), 100.0, 1e-9);
    cr_assert_float_eq(getf(s, "p99_ms"), 100.0, 1e-9);
    cr_assert_float_eq(getf(s, "mean_attempts"), (1 + 3 + 2 + 2 + 1 + 1 + 4) / 7.0, 1e-12);
    json_decref(s);
    cbx_journal_close(j);
}

Test(journal_stats, grouped_by_executor)
{
    cbx_journal *j = open_mem();
    mixed(j);
    json_t *g = stats(j, NULL, "executor");
    cr_assert_eq(json_object_size(g), 3, "groups: %zu", json_object_size(g));
    json_t *c = json_object_get(g, "cmd");
    cr_assert_not_null(c);
    cr_assert_eq(geti(c, "executions"), 4);
    cr_assert_eq(geti(c, "successes"), 2);
    cr_assert_eq(geti(c, "failures"), 1);
    cr_assert_eq(geti(c, "timeouts"), 1);
    cr_assert_eq(geti(c, "running"), 1);
    cr_assert_eq(geti(c, "rejected"), 0); /* the end-only refusal has no executor */
    cr_assert_float_eq(getf(c, "success_rate"), 0.5, 1e-12);
    cr_assert_float_eq(getf(c, "mean_ms"), 40.0, 1e-9); /* 10 30 20 100 */
    cr_assert_float_eq(getf(c, "p50_ms"), 20.0, 1e-9);
    cr_assert_float_eq(getf(c, "p95_ms"), 100.0, 1e-9);
    cr_assert_float_eq(getf(c, "mean_attempts"), 2.0, 1e-12);

    json_t *h = json_object_get(g, "http");
    cr_assert_eq(geti(h, "executions"), 3);
    cr_assert_eq(geti(h, "successes"), 2);
    cr_assert_eq(geti(h, "cancelled"), 1);
    cr_assert_eq(geti(h, "fallbacks"), 1);
    cr_assert_float_eq(getf(h, "success_rate"), 2.0 / 3.0, 1e-12);
    cr_assert_float_eq(getf(h, "p50_ms"), 8.0, 1e-9);
    cr_assert_float_eq(getf(h, "p99_ms"), 40.0, 1e-9);
    cr_assert_float_eq(getf(h, "mean_attempts"), 2.0, 1e-12);

    json_t *u = json_object_get(g, "(unknown)");
    cr_assert_not_null(u);
    cr_assert_eq(geti(u, "rejected"), 1);
    cr_assert_eq(geti(u, "executions"), 1);
    cr_assert_float_eq(getf(u, "success_rate"), 0.0, 1e-12);
    cr_assert(json_is_null(json_object_get(u, "p50_ms")));
    cr_assert(json_is_null(json_object_get(u, "mean_attempts")));
    json_decref(g);
    cbx_journal_close(j);
}

Test(journal_stats, grouped_by_breaker_leaves_out_unguarded_executions)
{
    cbx_journal *j = open_mem();
    mixed(j);
    put(j, "d1", "cmd", "disk", "failed", 700, 60, 3, 0);
    json_t *g = stats(j, NULL, "breaker");
    cr_assert_eq(json_object_size(g), 2);
    json_t *api = json_object_get(g, "api");
    cr_assert_eq(geti(api, "executions"), 3);
    cr_assert_eq(geti(api, "successes"), 2);
    cr_assert_float_eq(getf(api, "mean_ms"), (5 + 8 + 40) / 3.0, 1e-9);
    json_t *disk = json_object_get(g, "disk");
    cr_assert_eq(geti(disk, "executions"), 1);
    cr_assert_eq(geti(disk, "failures"), 1);
    cr_assert_float_eq(getf(disk, "success_rate"), 0.0, 1e-12);
    cr_assert_float_eq(getf(disk, "p50_ms"), 60.0, 1e-9);
    json_decref(g);
    cbx_journal_close(j);
}

Test(journal_stats, filters_apply)
{
    cbx_journal *j = open_mem();
    mixed(j);
    json_t *s = stats(j, &(cbx_history_filter){.executor = "http"}, NULL);
    cr_assert_eq(geti(s, "executions"), 3);
    json_decref(s);

    s = stats(j, &(cbx_history_filter){.status = "success"}, NULL);
    cr_assert_eq(geti(s, "executions"), 4);
    cr_assert_float_eq(getf(s, "success_rate"), 1.0, 1e-12);
    cr_assert_float_eq(getf(s, "p50_ms"), 10.0, 1e-9); /* 5 10 30 40 */
    json_decref(s);

    /* [200, 400): c2 h2 c3 h3 */
    s = stats(j, &(cbx_history_filter){.since_ms = 200, .until_ms = 400}, NULL);
    cr_assert_eq(geti(s, "executions"), 4);
    cr_assert_eq(geti(s, "successes"), 2);
    json_decref(s);

    /* the newest three: c6 (running), c5 (rejected), c4 (timeout) */
    s = stats(j, &(cbx_history_filter){.limit = 3}, NULL);
    cr_assert_eq(geti(s, "executions"), 2);
    cr_assert_eq(geti(s, "running"), 1);
    cr_assert_eq(geti(s, "rejected"), 1);
    cr_assert_eq(geti(s, "timeouts"), 1);
    cr_assert_float_eq(getf(s, "p50_ms"), 100.0, 1e-9);
    json_decref(s);

    json_t *g = stats(j, &(cbx_history_filter){.status = "cancelled"}, "executor");
    cr_assert_eq(json_object_size(g), 1);
    cr_assert_eq(geti(json_object_get(g, "http"), "cancelled"), 1);
    json_decref(g);
    cbx_journal_close(j);
}

Test(journal_stats, empty_journal)
{
    cbx_journal *j = open_mem();
    json_t *s = stats(j, NULL, NULL);
    cr_assert_eq(geti(s, "executions"), 0);
    cr_assert_eq(geti(s, "successes"), 0);
    cr_assert(json_is_null(json_object_get(s, "success_rate")));
    cr_assert(json_is_null(json_object_get(s, "mean_ms")));
    cr_assert(json_is_null(json_object_get(s, "p95_ms")));
    json_decref(s);
    json_t *g = stats(j, NULL, "executor");
    cr_assert(json_is_object(g));
    cr_assert_eq(json_object_size(g), 0);
    json_decref(g);
    cbx_journal_close(j);
}

Test(journal_stats, unknown_grouping_is_refused)
{
    cbx_journal *j = open_mem();
    json_t *out = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_stats(j, NULL, "status", &out, &err), -EINVAL);
    cr_assert_null(out);
    cr_assert(strstr(err.msg, "status") != NULL, "%s", err.msg);
    cr_assert_str_eq(err.where, "group_by");
    cbx_journal_close(j);
}
