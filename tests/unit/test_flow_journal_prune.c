/* Flow-run retention never drops a run that is still running on another worker: before the
 * journal has dropped any execution, the oldest execution is only the oldest one, and a run
 * started a moment before its first execution is not older than "the executions kept". */
#include "cbx/journal.h"
#include "flow/flow_journal.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

static char dir[64];

static cbx_journal *open_file(uint64_t max_executions)
{
    snprintf(dir, sizeof dir, "/tmp/cbx-flow-prune-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/j.db", dir);
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(
                     &j, &(cbx_journal_opts){.path = path, .max_executions = max_executions}, &err),
                 0, "%s", err.msg);
    return j;
}

static void cleanup(cbx_journal *j)
{
    cbx_journal_close(j);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void execution(cbx_journal *j, const char *id, uint64_t ms)
{
    cbx_err err;
    cbx_journal_execution e = {.id = id, .executor = "command", .submitted_ms = ms};
    cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
}

static int has_run(cbx_journal *j, const char *run_id)
{
    json_t *row = NULL;
    int r = cbx__flow_journal_get(j, run_id, &row, NULL);
    json_decref(row);
    return r == 0;
}

Test(flow_journal_prune, a_running_run_of_another_worker_is_kept)
{
    cbx_journal *j = open_file(0);
    cbx__flow_journal *a = NULL, *b = NULL;
    cbx_err err;
    cr_assert_eq(cbx__flow_journal_open(&a, j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_open(&b, j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_run_start(a, "run-a", "f", NULL, NULL, 1000, NULL, &err), 0,
                 "%s", err.msg);
    execution(j, "ex-a", 1001); /* run a's first step, a millisecond after its start */
    cr_assert_eq(cbx__flow_journal_run_start(b, "run-b", "f", NULL, NULL, 1002, NULL, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert(has_run(j, "run-a"), "run a, still running, was dropped by run b's start");
    cr_assert(has_run(j, "run-b"));
    cbx__flow_journal_close(a);
    cbx__flow_journal_close(b);
    cleanup(j);
}

/* Once the journal has dropped executions, a run older than every execution kept goes. */
Test(flow_journal_prune, a_run_whose_executions_are_gone_goes)
{
    cbx_journal *j = open_file(2);
    cbx__flow_journal *fj = NULL;
    cbx_err err;
    cr_assert_eq(cbx__flow_journal_open(&fj, j, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx__flow_journal_run_start(fj, "old", "f", NULL, NULL, 1000, NULL, &err), 0, "%s",
                 err.msg);
    execution(j, "ex-1", 1001);
    cr_assert_eq(cbx__flow_journal_run_end(fj, "old", "success", NULL, NULL, 1002, NULL, &err), 0,
                 "%s", err.msg);
    execution(j, "ex-2", 2000);
    execution(j, "ex-3", 2001);
    execution(j, "ex-4", 2002);
    cr_assert_eq(cbx_journal_prune(j, &err), 0, "%s", err.msg); /* keeps ex-3 and ex-4 */
    cr_assert_eq(cbx__flow_journal_run_start(fj, "new", "f", NULL, NULL, 3000, NULL, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    cr_assert_not(has_run(j, "old"), "a run older than every execution kept was kept");
    cr_assert(has_run(j, "new"));
    cbx__flow_journal_close(fj);
    cleanup(j);
}
