/* The tool executor of seed 004, redone with cbx.
 *
 * Three inventory tools run in parallel, each under its own policy (a per-attempt timeout and
 * retries with exponential backoff), under an overall timeout; every attempt is journaled, and
 * the statistics come from the journal afterwards (get_execution_stats, get_tool_stats,
 * get_recent_executions in the seed).
 *
 * One tool fails once (a flaky dependency), one is slow the first time and hits its timeout;
 * both succeed on retry. Runs in about half a second:
 *   ./tool_executor [STATE_DIR]      (default: a fresh directory under /tmp)
 */
#include <cbx/function.h>
#include <cbx/journal.h>
#include <cbx/runtime.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the tools: plain C functions ------------------------------------------------------------ */

static cbx_outcome calculate_reorder_points(const json_t *in, json_t **out, cbx_task *t, void *ud)
{
    (void)t;
    (void)ud;
    const char *wh = json_string_value(json_object_get(in, "warehouse_code"));
    *out = json_pack("{s:s, s:[{s:s, s:i}, {s:s, s:i}]}", "warehouse", wh ? wh : "?",
                     "reorder_points", "sku", "P001", "point", 120, "sku", "P002", "point", 45);
    return CBX_OUTCOME_SUCCESS;
}

static atomic_int stockout_calls;

static cbx_outcome identify_stockout_risks(const json_t *in, json_t **out, cbx_task *t, void *ud)
{
    (void)ud;
    if (atomic_fetch_add(&stockout_calls, 1) == 0) { /* the first call meets a flaky database */
        cbx_function_error(t, "inventory database: connection reset");
        return CBX_OUTCOME_ERROR;
    }
    json_int_t days = json_integer_value(json_object_get(in, "days_ahead"));
    *out = json_pack("{s:I, s:[s]}", "days_ahead", days, "at_risk", "P002");
    return CBX_OUTCOME_SUCCESS;
}

static atomic_int forecast_calls;

static cbx_outcome forecast_demand(const json_t *in, json_t **out, cbx_task *t, void *ud)
{
    (void)ud;
    /* The first call is slow (a cold model): 400 ms, well past its 150 ms timeout. It watches
     * its cancel flag, as blocking work should, and gives up when the timeout comes. */
    int ms = atomic_fetch_add(&forecast_calls, 1) == 0 ? 400 : 20;
    for (int i = 0; i < ms && !cbx_task_cancelled(t); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    const char *sku = json_string_value(json_object_get(in, "product_code"));
    *out = json_pack("{s:s, s:[i,i,i,i]}", "product", sku ? sku : "?", "weekly_demand", 30, 34, 29,
                     41);
    return CBX_OUTCOME_SUCCESS;
}

/* ---- the run --------------------------------------------------------------------------------- */

static cbx_policy *tool_policy(const char *timeout)
{
    char block[256];
    snprintf(block, sizeof block,
             "{\"timeout\": \"%s\", \"retry\": {\"attempts\": 3, \"backoff\": \"exponential\","
             " \"initial\": \"20ms\", \"max\": \"200ms\"}}",
             timeout);
    json_t *j = json_loads(block, 0, NULL);
    cbx_policy *p = NULL;
    cbx_err err;
    if (cbx_policy_new_json(&p, j, NULL, &err) < 0)
        fprintf(stderr, "policy: %s: %s\n", err.where, err.msg);
    json_decref(j);
    return p;
}

static void print_stats(const char *title, const json_t *s)
{
    printf("%-28s executions %lld, success rate %.0f%%, mean %.1f ms, p95 %.1f ms, mean attempts "
           "%.2f\n",
           title, (long long)json_integer_value(json_object_get(s, "executions")),
           100 * json_number_value(json_object_get(s, "success_rate")),
           json_number_value(json_object_get(s, "mean_ms")),
           json_number_value(json_object_get(s, "p95_ms")),
           json_number_value(json_object_get(s, "mean_attempts")));
}

int main(int argc, char **argv)
{
    char dir[256];
    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    } else {
        snprintf(dir, sizeof dir, "/tmp/cbx-tools-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
    }
    char path[300];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    cbx_err err;
    cbx_journal *journal = NULL;
    cbx_registry *reg = NULL;
    cbx_runtime *rt = NULL;
    if (cbx_journal_open(&journal, &(cbx_journal_opts){.path = path}, &err) < 0 ||
        cbx_registry_new(&reg, &err) < 0) {
        fprintf(stderr, "tool_executor: %s\n", err.msg);
        return 1;
    }
    const struct {
        const char *name;
        cbx_outcome (*fn)(const json_t *, json_t **, cbx_task *, void *);
    } tools[] = {{"calculate_reorder_points", calculate_reorder_points},
                 {"identify_stockout_risks", identify_stockout_risks},
                 {"forecast_demand", forecast_demand}};
    for (int i = 0; i < 3; i++) {
        if (cbx_function_register(reg, tools[i].name, &(cbx_function_def){.call = tools[i].fn},
                                  &err) < 0) {
            fprintf(stderr, "tool_executor: %s\n", err.msg);
            return 1;
        }
    }
    if (cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg, .journal = journal}, &err) < 0) {
        fprintf(stderr, "tool_executor: %s\n", err.msg);
        return 1;
    }

    cbx_policy *quick = tool_policy("1s"), *model = tool_policy("150ms");
    json_t *in[3] = {
        json_pack("{s:s, s:{s:s}}", "name", tools[0].name, "input", "warehouse_code", "WH001"),
        json_pack("{s:s, s:{s:s, s:i}}", "name", tools[1].name, "input", "warehouse_code", "WH001",
                  "days_ahead", 7),
        json_pack("{s:s, s:{s:s, s:s}}", "name", tools[2].name, "input", "product_code", "P001",
                  "warehouse_code", "WH001"),
    };
    cbx_request reqs[3];
    for (int i = 0; i < 3; i++)
        reqs[i] = (cbx_request){.executor = "function",
                                .params = in[i],
                                .policy = i == 2 ? model : quick,
                                .tag = tools[i].name};

    /* execute_tools: all three in parallel, 5 s for the lot */
    cbx_result res[3];
    size_t ok = cbx_runtime_execute_many(rt, reqs, 3, 5 * CBX_NS_PER_S, res);
    int good = ok == 3;
    for (int i = 0; i < 3; i++) {
        char *o = res[i].outputs ? json_dumps(res[i].outputs, JSON_COMPACT) : NULL;
        printf("%-26s %-8s attempts %u  %6.1f ms  %s\n", tools[i].name,
               cbx_status_name(res[i].status), res[i].attempt_count,
               (double)res[i].duration_ns / 1e6, o ? o : res[i].error);
        free(o);
        for (size_t a = 0; a < json_array_size(res[i].attempts); a++) {
            json_t *at = json_array_get(res[i].attempts, a);
            const char *e = json_string_value(json_object_get(at, "error"));
            printf("    attempt %lld: %-8s %6.1f ms%s%s\n",
                   (long long)json_integer_value(json_object_get(at, "number")),
                   json_string_value(json_object_get(at, "outcome")),
                   json_number_value(json_object_get(at, "duration_ms")), e ? "  " : "",
                   e ? e : "");
        }
    }
    good = good && res[1].attempt_count == 2 && res[2].attempt_count == 2 &&
           strcmp(json_string_value(json_object_get(json_array_get(res[2].attempts, 0), "outcome")),
                  "timeout") == 0;
    for (int i = 0; i < 3; i++) {
        cbx_result_clear(&res[i]);
        json_decref(in[i]);
    }
    cbx_journal_flush(journal, NULL);

    /* get_execution_stats / get_tool_stats / get_recent_executions, from the journal */
    printf("\n");
    json_t *all = NULL, *one = NULL, *recent = NULL;
    cbx_journal_stats(journal, NULL, NULL, &all, NULL);
    print_stats("all tools", all);
    good = good && json_integer_value(json_object_get(all, "executions")) == 3 &&
           json_number_value(json_object_get(all, "success_rate")) == 1.0;
    for (int i = 0; i < 3; i++) {
        cbx_journal_stats(journal, &(cbx_history_filter){.tag = tools[i].name}, NULL, &one, NULL);
        print_stats(tools[i].name, one);
        good = good && json_integer_value(json_object_get(one, "executions")) == 1;
        json_decref(one);
    }
    cbx_journal_history(journal, &(cbx_history_filter){.limit = 10}, &recent, NULL);
    printf("\nrecent executions: %zu (journal: %s)\n", json_array_size(recent), path);
    good = good && json_array_size(recent) == 3;
    json_decref(all);
    json_decref(recent);

    cbx_runtime_free(rt);
    cbx_policy_free(quick);
    cbx_policy_free(model);
    cbx_registry_free(reg);
    cbx_journal_close(journal);
    if (!good)
        fprintf(stderr, "tool_executor: the run did not go as described\n");
    return good ? 0 : 1;
}
