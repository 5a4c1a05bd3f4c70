/* Driving a workflow run from a loop one runs oneself (cbx_workflow_advance, as cbx serve does):
 * a command action whose end arrives as an event, an after: timer reported as the next due time
 * and fired once due, a signal, the state journaled as the run goes; and the net as JSON
 * (cbx_workflow_describe). Speed is never asserted: the loop runs until the events come.
 */
#define _GNU_SOURCE
#include "cbx/journal.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"
#include "cbx/workflow.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static cbx_registry *reg;
static cbx_runtime *rt;
static cbx_journal *jr;
static char dir[] = "/tmp/cbx-wfa-XXXXXX";

static void setup(void)
{
    cbx_err e;
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    cbx_journal_opts jo = {.path = path};
    cr_assert_eq(cbx_journal_open(&jr, &jo, &e), 0, "%s", e.msg);
    cr_assert_eq(cbx_registry_new(&reg, &e), 0, "%s", e.msg);
    cbx_runtime_opts o = {.registry = reg, .journal = jr};
    cr_assert_eq(cbx_runtime_new(&rt, &o, &e), 0, "%s", e.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    cbx_registry_free(reg);
    cbx_journal_close(jr);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(workflow_advance, .init = setup, .fini = teardown, .timeout = 300);

static const char net[] = "name: chores\n"
                          "places: [todo, doing, review, done, late]\n"
                          "final: [done, late]\n"
                          "transitions:\n"
                          "  - name: work\n"
                          "    from: todo\n"
                          "    to: doing\n"
                          "    action:\n"
                          "      executor: command\n"
                          "      config: {argv: [echo, worked]}\n"
                          "  - name: hand_in\n"
                          "    from: doing\n"
                          "    to: review\n"
                          "  - name: accept\n"
                          "    from: review\n"
                          "    to: done\n"
                          "    trigger: signal\n"
                          "  - name: expire\n"
                          "    from: review\n"
                          "    to: late\n"
                          "    after: 200ms\n";

typedef struct seen {
    int events;
} seen;

static void on_event(const cbx_workflow_event *ev, void *ud)
{
    (void)ev;
    ((seen *)ud)->events++;
}

static const char *journaled_state(const char *run_id)
{
    static char buf[32];
    json_t *rows = NULL;
    cr_assert_eq(cbx_workflow_runs_list(jr, 10, &rows, NULL), 0);
    buf[0] = 0;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "run_id")), run_id) == 0)
            snprintf(buf, sizeof buf, "%s", json_string_value(json_object_get(r, "state")));
    }
    json_decref(rows);
    return buf;
}

static cbx_workflow *load(void)
{
    cbx_diag d = {0};
    cbx_workflow *w = NULL;
    int rc = cbx_workflow_load_string(&w, net, strlen(net), "chores.yaml", reg, &d);
    cbx_diag_clear(&d);
    cr_assert_eq(rc, 0);
    return w;
}

/* Advance, running the loop one turn at a time while an action is in flight. */
static int settle(cbx_workflow_run *r, uint64_t *due)
{
    for (;;) {
        int st = cbx_workflow_advance(r, due);
        cr_assert_geq(st, 0);
        if (st != CBX_WORKFLOW_RUNNING)
            return st;
        uv_run(cbx_runtime_loop(rt), UV_RUN_ONCE);
    }
}

Test(workflow_advance, actions_timers_and_signals_without_blocking)
{
    cbx_workflow *w = load();
    seen s = {0};
    cbx_workflow_run_opts o = {.run_id = "adv1", .on_event = on_event, .ud = &s};
    cbx_workflow_run *r = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_workflow_start(&r, rt, w, &o, &e), 0, "%s", e.msg);
    cr_assert_eq(cbx_workflow_add_token(r, NULL, NULL, "a", NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(cbx_workflow_add_token(r, NULL, NULL, "b", NULL, 0, &e), 0, "%s", e.msg);

    /* the actions start and the call returns at once: the run is running, nothing is due */
    uint64_t due = 1;
    cr_assert_eq(cbx_workflow_advance(r, &due), CBX_WORKFLOW_RUNNING);
    cr_assert_eq(due, 0, "a timer reported while actions run");
    cr_assert_str_eq(journaled_state("adv1"), "running");

    /* their ends come through the loop; then both wait in review, the timer pending */
    int st = settle(r, &due);
    cr_assert_eq(st, CBX_WORKFLOW_WAITING);
    cr_assert_gt(due, 0, "no timer due");
    cr_assert_str_eq(journaled_state("adv1"), "waiting");
    json_t *snap = cbx_workflow_run_snapshot(r);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(snap, "marking"), "review")),
                 2);
    json_decref(snap);

    /* a signal moves one at once */
    cr_assert_eq(cbx_workflow_signal(r, "a", "accept", NULL, &e), 0, "%s", e.msg);
    st = settle(r, &due);
    cr_assert_eq(st, CBX_WORKFLOW_WAITING);

    /* the other expires once the due time has passed, on the next advance */
    struct timespec ts;
    for (;;) {
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
        if (now > due)
            break;
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL);
    }
    st = settle(r, &due);
    cr_assert_eq(st, CBX_WORKFLOW_DONE);
    cr_assert_eq(due, 0);
    cr_assert_str_eq(journaled_state("adv1"), "done");
    snap = cbx_workflow_run_snapshot(r);
    json_t *m = json_object_get(snap, "marking");
    cr_assert_eq(json_integer_value(json_object_get(m, "done")), 1);
    cr_assert_eq(json_integer_value(json_object_get(m, "late")), 1);
    json_decref(snap);
    cr_assert_gt(s.events, 6);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow_advance, describe)
{
    cbx_workflow *w = load();
    json_t *d = cbx_workflow_describe(w);
    cr_assert_not_null(d);
    cr_assert_str_eq(json_string_value(json_object_get(d, "name")), "chores");
    json_t *places = json_object_get(d, "places");
    cr_assert_eq(json_array_size(places), 5);
    cr_assert(json_is_true(json_object_get(json_array_get(places, 0), "start")));
    cr_assert(json_is_true(json_object_get(json_array_get(places, 3), "final")));
    cr_assert(json_is_false(json_object_get(json_array_get(places, 1), "final")));
    json_t *tr = json_object_get(d, "transitions");
    cr_assert_eq(json_array_size(tr), 4);
    json_t *work = json_array_get(tr, 0), *accept = json_array_get(tr, 2),
           *expire = json_array_get(tr, 3);
    cr_assert_str_eq(json_string_value(json_object_get(work, "executor")), "command");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(work, "to"), 0)), "doing");
    cr_assert_str_eq(json_string_value(json_object_get(accept, "trigger")), "signal");
    cr_assert_str_eq(json_string_value(json_object_get(accept, "signal")), "accept");
    cr_assert(json_is_null(json_object_get(accept, "executor")));
    cr_assert_eq(json_integer_value(json_object_get(expire, "after_ms")), 200);
    json_decref(d);
    cbx_workflow_free(w);
    cr_assert_null(cbx_workflow_describe(NULL));
}
