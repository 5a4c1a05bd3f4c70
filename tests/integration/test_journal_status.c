/* PENDING and RETRYING are in the journal while they last: an execution waiting for a slot, and
 * one waiting between attempts, show so in their rows; then RUNNING, then the final status.
 * Real processes (sleep, false) on a real loop. */
#include "cbx/journal.h"
#include "cbx/policy.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <string.h>
#include <uv.h>

static const char *row_status(cbx_journal *j, const char *id, char *buf, size_t len)
{
    json_t *row = NULL;
    cbx_err e;
    cr_assert_eq(cbx_journal_get(j, id, &row, &e), 0, "%s", e.msg);
    snprintf(buf, len, "%s", json_string_value(json_object_get(row, "status")));
    json_decref(row);
    return buf;
}

static void open_all(cbx_journal **j, cbx_runtime **rt, uint32_t max_concurrent)
{
    cbx_err e;
    cr_assert_eq(cbx_journal_open(j, &(cbx_journal_opts){.path = ":memory:"}, &e), 0, "%s", e.msg);
    cr_assert_eq(cbx_runtime_new(
                     rt, &(cbx_runtime_opts){.journal = *j, .max_concurrent = max_concurrent}, &e),
                 0, "%s", e.msg);
}

Test(journal_status, pending_while_queued_then_running, .timeout = 120)
{
    cbx_journal *j = NULL;
    cbx_runtime *rt = NULL;
    open_all(&j, &rt, 1);
    json_t *params = json_pack("{s:[s,s]}", "argv", "sleep", "600");
    cbx_execution *a = NULL, *b = NULL;
    cr_assert_eq(
        cbx_runtime_submit(rt, &(cbx_request){.executor = "command", .params = params}, &a, NULL),
        0);
    cr_assert_eq(
        cbx_runtime_submit(rt, &(cbx_request){.executor = "command", .params = params}, &b, NULL),
        0);
    json_decref(params);
    char ida[40], idb[40], buf[32];
    snprintf(ida, sizeof ida, "%s", cbx_execution_id(a));
    snprintf(idb, sizeof idb, "%s", cbx_execution_id(b));
    cr_assert_eq(cbx_execution_status(b), CBX_STATUS_PENDING);
    cr_assert_str_eq(row_status(j, ida, buf, sizeof buf), "running");
    cr_assert_str_eq(row_status(j, idb, buf, sizeof buf), "pending");
    /* the first one ends: the second leaves the queue and its row says running */
    cbx_runtime_cancel(rt, a);
    while (cbx_execution_status(b) == CBX_STATUS_PENDING)
        uv_run(cbx_runtime_loop(rt), UV_RUN_ONCE);
    cr_assert_str_eq(row_status(j, ida, buf, sizeof buf), "cancelled");
    cr_assert_str_eq(row_status(j, idb, buf, sizeof buf), "running");
    cbx_runtime_cancel(rt, b);
    cbx_runtime_run(rt);
    cr_assert_str_eq(row_status(j, idb, buf, sizeof buf), "cancelled");
    cbx_runtime_free(rt);
    cbx_journal_close(j);
}

static int retries_seen;
static void on_retry(cbx_execution *ex, uint32_t attempt, uint64_t delay_ns, const char *error,
                     void *ud)
{
    (void)ex, (void)attempt, (void)delay_ns, (void)error, (void)ud;
    retries_seen++;
}

Test(journal_status, retrying_between_attempts, .timeout = 120)
{
    cbx_journal *j = NULL;
    cbx_runtime *rt = NULL;
    open_all(&j, &rt, 4);
    cbx_policy *p = NULL;
    cbx_err e;
    json_t *block =
        json_pack("{s:{s:i, s:s, s:s}}", "retry", "attempts", 3, "initial", "10m", "max", "10m");
    cr_assert_eq(cbx_policy_new_json(&p, block, NULL, &e), 0, "%s", e.msg);
    json_decref(block);
    json_t *params = json_pack("{s:[s]}", "argv", "false");
    cbx_execution *x = NULL;
    cr_assert_eq(cbx_runtime_submit(rt,
                                    &(cbx_request){.executor = "command",
                                                   .params = params,
                                                   .policy = p,
                                                   .on_retry = on_retry},
                                    &x, NULL),
                 0);
    json_decref(params);
    char id[40], buf[32];
    snprintf(id, sizeof id, "%s", cbx_execution_id(x));
    while (!retries_seen)
        uv_run(cbx_runtime_loop(rt), UV_RUN_ONCE);
    cr_assert_eq(cbx_execution_status(x), CBX_STATUS_RETRYING);
    cr_assert_str_eq(row_status(j, id, buf, sizeof buf), "retrying");
    cbx_runtime_cancel(rt, x);
    cbx_runtime_run(rt);
    cr_assert_str_eq(row_status(j, id, buf, sizeof buf), "cancelled");
    cbx_runtime_free(rt);
    cbx_policy_free(p);
    cbx_journal_close(j);
}
