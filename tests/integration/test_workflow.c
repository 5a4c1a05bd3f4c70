/* Workflows through the library, with real processes as actions: forks and joins, rules after an
 * action (the token stays, its data unchanged, its history explains), declaration order and
 * priority, validations, signals and timers, stuck tokens, the firing cap, rule errors and the
 * sandbox's limits, an action's retry policy, and a run rebuilt from its journal. Speed is never
 * asserted; timers are short and waited for through the loop.
 */
#define _GNU_SOURCE
#include "cbx/journal.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"
#include "cbx/workflow.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cbx_registry *reg;
static cbx_runtime *rt;
static cbx_journal *jr;
static char dir[] = "/tmp/cbx-wf-XXXXXX";

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

TestSuite(workflow, .init = setup, .fini = teardown, .timeout = 120);

static cbx_workflow *load(const char *text)
{
    cbx_diag d = {0};
    cbx_workflow *w = NULL;
    int rc = cbx_workflow_load_string(&w, text, strlen(text), "inline.yaml", reg, &d);
    cbx_err first = {0};
    if (rc)
        cbx_diag_first(&d, &first);
    cbx_diag_clear(&d);
    cr_assert_eq(rc, 0, "%s:%d:%d: %s", first.where, first.line, first.col, first.msg);
    return w;
}

static cbx_workflow_run *start(cbx_workflow *w, const char *const *tokens)
{
    cbx_workflow_run *r = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_workflow_start(&r, rt, w, NULL, &e), 0, "%s", e.msg);
    for (size_t i = 0; tokens && tokens[i]; i++) {
        json_t *d = json_loads(tokens[i], 0, NULL);
        cr_assert_not_null(d, "bad token %s", tokens[i]);
        cr_assert_eq(cbx_workflow_add_token(r, NULL, d, NULL, NULL, 0, &e), 0, "%s", e.msg);
        json_decref(d);
    }
    return r;
}

/* The token of a snapshot by id (borrowed from snap). */
static json_t *token_of(json_t *snap, const char *id)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(snap, "tokens"), i,
                       t) if (strcmp(json_string_value(json_object_get(t, "id")), id) ==
                              0) return t;
    cr_assert_fail("no token %s", id);
    return NULL;
}

static const char *tstr(json_t *t, const char *key)
{
    const char *s = json_string_value(json_object_get(t, key));
    return s ? s : "";
}

/* 1 when a line of the token's history contains text. */
static int history_has(json_t *t, const char *text)
{
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(t, "history"), i,
                       h) if (strstr(tstr(h, "text"), text)) return 1;
    return 0;
}

static long long data_int(json_t *t, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(t, "data"), key));
}

Test(workflow, fork_then_join_merges_each_family)
{
    cbx_workflow *w = load("name: fj\n"
                           "places: [start, left, right, lefted, righted, done]\n"
                           "final: [done]\n"
                           "transitions:\n"
                           "  - {name: split, from: start, to: [left, right]}\n"
                           "  - name: l\n"
                           "    from: left\n"
                           "    to: lefted\n"
                           "    action: {executor: command, config: {argv: [echo, L]},"
                           " outputs: {side: left, l: '{{ token.n * 10 }}'}}\n"
                           "  - name: r\n"
                           "    from: right\n"
                           "    to: righted\n"
                           "    action: {executor: command, config: {argv: [echo, R]},"
                           " outputs: {side: right, r: '{{ token.n * 100 }}'}}\n"
                           "  - {name: join, from: [lefted, righted], to: done}\n");
    const char *toks[] = {"{\"n\": 1}", "{\"n\": 2}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    json_t *snap = cbx_workflow_run_snapshot(r);
    for (int k = 1; k <= 2; k++) {
        char id[8], child[8];
        snprintf(id, sizeof id, "t%d", k);
        snprintf(child, sizeof child, "t%d.1", k);
        json_t *t = token_of(snap, id);
        cr_assert_str_eq(tstr(t, "place"), "done");
        /* the join keeps the first input place's token; later places win on the same key */
        cr_assert_eq(data_int(t, "l"), k * 10);
        cr_assert_eq(data_int(t, "r"), k * 100);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(t, "data"), "side")),
                         "right");
        cr_assert(history_has(t, "joined"));
        json_t *c = token_of(snap, child);
        cr_assert_str_eq(tstr(c, "state"), "gone");
        cr_assert(history_has(c, "forked from"));
    }
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(snap, "firings"), "join")), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(snap, "marking"), "done")), 2);
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, join_waits_for_its_own_family)
{
    cbx_workflow *w = load("name: fam\n"
                           "places: [a, b, done]\n"
                           "start: [a, b]\n"
                           "final: [done]\n"
                           "transitions:\n"
                           "  - {name: join, from: [a, b], to: done}\n");
    cbx_workflow_run *r = start(w, NULL);
    cbx_err e;
    cr_assert_eq(cbx_workflow_add_token(r, "a", NULL, "x", NULL, 0, &e), 0);
    cr_assert_eq(cbx_workflow_add_token(r, "b", NULL, "y", NULL, 0, &e), 0);
    /* different families never join: both are stuck */
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_STUCK);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
    w = load("name: anyjoin\n"
             "places: [a, b, done]\n"
             "start: [a, b]\n"
             "final: [done]\n"
             "transitions:\n"
             "  - {name: join, from: [a, b], to: done, join: any}\n");
    r = start(w, NULL);
    cr_assert_eq(cbx_workflow_add_token(r, "a", NULL, "x", NULL, 0, &e), 0);
    cr_assert_eq(cbx_workflow_add_token(r, "b", NULL, "y", NULL, 0, &e), 0);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, rules_failing_after_an_action_leave_the_token_and_its_data)
{
    cbx_workflow *w = load(
        "name: guard\n"
        "rules:\n"
        "  high_confidence: {when: '(token.confidence_score or 0) >= 0.9'}\n"
        "places: [analyzed, completed]\n"
        "final: [completed]\n"
        "transitions:\n"
        "  - name: complete\n"
        "    from: analyzed\n"
        "    to: completed\n"
        "    policy: {rules: {all: [high_confidence]}}\n"
        "    action:\n"
        "      executor: command\n"
        "      config: {argv: [echo, '0.62']}\n"
        "      outputs: {confidence_score: \"{{ tonumber(outputs.stdout) }}\", touched: true}\n");
    const char *toks[] = {"{\"confidence_score\": 0.5}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_STUCK);
    json_t *snap = cbx_workflow_run_snapshot(r);
    json_t *t = token_of(snap, "t1");
    cr_assert_str_eq(tstr(t, "place"), "analyzed");
    cr_assert_str_eq(tstr(t, "state"), "stuck");
    json_t *data = json_object_get(t, "data");
    cr_assert_null(json_object_get(data, "touched"), "the action's outputs were discarded");
    cr_assert_float_eq(json_real_value(json_object_get(data, "confidence_score")), 0.5, 1e-9);
    cr_assert_str_eq(tstr(t, "explanation"), "transition complete blocked: rule high_confidence "
                                             "is false (token.confidence_score = 0.62)");
    cr_assert(history_has(t, "action of complete succeeded"));
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, declaration_order_then_priority_choose)
{
#define ORDER_NET(p1, p2)                                                                          \
    "name: order\n"                                                                                \
    "places: [a, first, second]\n"                                                                 \
    "final: [first, second]\n"                                                                     \
    "transitions:\n"                                                                               \
    "  - {name: one, from: a, to: first" p1 "}\n"                                                  \
    "  - {name: two, from: a, to: second" p2 "}\n"
    cbx_workflow *w = load(ORDER_NET("", ""));
    const char *toks[] = {"{}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    json_t *snap = cbx_workflow_run_snapshot(r);
    cr_assert_str_eq(tstr(token_of(snap, "t1"), "place"), "first");
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
    w = load(ORDER_NET("", ", priority: 5"));
    r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    snap = cbx_workflow_run_snapshot(r);
    cr_assert_str_eq(tstr(token_of(snap, "t1"), "place"), "second");
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, a_blocked_transition_gives_way_to_the_next)
{
    cbx_workflow *w = load("name: fallthrough\n"
                           "rules: {big: {when: 'token.n > 10'}}\n"
                           "places: [a, big, small]\n"
                           "final: [big, small]\n"
                           "transitions:\n"
                           "  - {name: to_big, from: a, to: big, policy: {rules: {all: [big]}}}\n"
                           "  - {name: to_small, from: a, to: small}\n");
    const char *toks[] = {"{\"n\": 50}", "{\"n\": 2}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    json_t *snap = cbx_workflow_run_snapshot(r);
    cr_assert_str_eq(tstr(token_of(snap, "t1"), "place"), "big");
    cr_assert_str_eq(tstr(token_of(snap, "t2"), "place"), "small");
    cr_assert(history_has(token_of(snap, "t2"), "transition to_big blocked: rule big is false "
                                                "(token.n = 2)"));
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, validations_all_and_any)
{
    cbx_workflow *w =
        load("name: val\n"
             "places: [a, b]\n"
             "final: [b]\n"
             "transitions:\n"
             "  - name: go\n"
             "    from: a\n"
             "    to: b\n"
             "    policy: {validations: {all: [id, meta.owner], any: [email, phone]}}\n");
    const char *toks[] = {"{\"id\": 1, \"meta\": {\"owner\": \"x\"}, \"phone\": \"1\"}",
                          "{\"id\": 2, \"meta\": {\"owner\": \"x\"}}",
                          "{\"id\": \"\", \"meta\": {\"owner\": \"x\"}, \"email\": \"e\"}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_STUCK);
    json_t *snap = cbx_workflow_run_snapshot(r);
    cr_assert_str_eq(tstr(token_of(snap, "t1"), "place"), "b");
    cr_assert_str_eq(tstr(token_of(snap, "t2"), "explanation"),
                     "transition go blocked: validation failed: none of the fields email, phone "
                     "is present (validations.any)");
    cr_assert_str_eq(tstr(token_of(snap, "t3"), "explanation"),
                     "transition go blocked: validation failed: field id is missing "
                     "(validations.all)");
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

#define APPROVAL(after)                                                                            \
    "name: approval\n"                                                                             \
    "rules: {has_approver: {when: 'present(token.approved_by)'}}\n"                                \
    "places: [pending, approved, escalated]\n"                                                     \
    "final: [approved, escalated]\n"                                                               \
    "transitions:\n"                                                                               \
    "  - name: approve\n"                                                                          \
    "    from: pending\n"                                                                          \
    "    to: approved\n"                                                                           \
    "    trigger: signal\n"                                                                        \
    "    policy: {rules: {all: [has_approver]}}\n"                                                 \
    "  - {name: escalate, from: pending, to: escalated, after: " after "}\n"

Test(workflow, signals_merge_their_data_or_are_discarded)
{
    cbx_workflow *w = load(APPROVAL("1h"));
    const char *toks[] = {"{\"req\": 1}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 0), CBX_WORKFLOW_WAITING);
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_workflow_signal(r, "t1", "nope", NULL, &e), -EINVAL);
    cr_assert(strstr(e.msg, "approve"), "%s", e.msg);
    cr_assert_eq(cbx_workflow_signal(r, "t9", "approve", NULL, &e), -ENOENT);
    /* without an approver the rule fails: the signal's data is discarded, the token waits on */
    json_t *bad = json_pack("{s:s}", "note", "no approver");
    cr_assert_eq(cbx_workflow_signal(r, "t1", "approve", bad, &e), 0, "%s", e.msg);
    json_decref(bad);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 0), CBX_WORKFLOW_WAITING);
    json_t *snap = cbx_workflow_run_snapshot(r);
    json_t *t = token_of(snap, "t1");
    cr_assert_str_eq(tstr(t, "place"), "pending");
    cr_assert_null(json_object_get(json_object_get(t, "data"), "note"));
    cr_assert(history_has(t, "rule has_approver is false"));
    json_decref(snap);
    json_t *good = json_pack("{s:s}", "approved_by", "ann");
    cr_assert_eq(cbx_workflow_signal(r, "t1", "approve", good, &e), 0, "%s", e.msg);
    json_decref(good);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 0), CBX_WORKFLOW_DONE);
    snap = cbx_workflow_run_snapshot(r);
    t = token_of(snap, "t1");
    cr_assert_str_eq(tstr(t, "place"), "approved");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(t, "data"), "approved_by")),
                     "ann");
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, after_timers_fire_through_the_loop)
{
    cbx_workflow *w = load(APPROVAL("150ms"));
    const char *toks[] = {"{}", NULL};
    cbx_workflow_run *r = start(w, toks);
    /* without waiting for timers the token counts as waiting; waiting, it escalates */
    cr_assert_eq(cbx_workflow_run_until_rest(r, 0), CBX_WORKFLOW_WAITING);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    json_t *snap = cbx_workflow_run_snapshot(r);
    cr_assert_str_eq(tstr(token_of(snap, "t1"), "place"), "escalated");
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, the_firing_cap_ends_a_cycle)
{
    cbx_workflow *w = load("name: loop\n"
                           "limits: {firings_per_token: 7}\n"
                           "places: [a, b, end]\n"
                           "final: [end]\n"
                           "transitions:\n"
                           "  - {name: there, from: a, to: b}\n"
                           "  - {name: back, from: b, to: a}\n");
    const char *toks[] = {"{}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_FAILED);
    json_t *snap = cbx_workflow_run_snapshot(r);
    json_t *t = token_of(snap, "t1");
    cr_assert_str_eq(tstr(t, "state"), "failed");
    cr_assert_eq(json_integer_value(json_object_get(t, "firings")), 7);
    cr_assert(strstr(tstr(t, "explanation"), "limits.firings_per_token"), "%s",
              tstr(t, "explanation"));
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, rule_errors_and_runaway_rules_block_with_their_message)
{
    cbx_workflow *w = load("name: errs\n"
                           "limits: {rule_instructions: 100000}\n"
                           "helpers: |\n"
                           "  function spin() while true do end end\n"
                           "rules:\n"
                           "  boom: {when: 'token.a.b > 1'}\n"
                           "  forever: {when: 'spin()'}\n"
                           "places: [a, b, c]\n"
                           "final: [b, c]\n"
                           "transitions:\n"
                           "  - {name: one, from: a, to: b, policy: {rules: {all: [boom]}}}\n"
                           "  - {name: two, from: a, to: c, policy: {rules: {all: [forever]}}}\n");
    const char *toks[] = {"{}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_STUCK);
    json_t *snap = cbx_workflow_run_snapshot(r);
    json_t *t = token_of(snap, "t1");
    cr_assert(history_has(t, "transition one blocked: rule boom failed:"));
    cr_assert(history_has(t, "instruction limit exceeded"));
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, an_action_runs_under_its_retry_policy)
{
    char text[1024];
    snprintf(text, sizeof text,
             "name: retry\n"
             "places: [a, b]\n"
             "final: [b]\n"
             "transitions:\n"
             "  - name: go\n"
             "    from: a\n"
             "    to: b\n"
             "    policy: {retry: {attempts: 3, initial: 10ms}}\n"
             "    action:\n"
             "      executor: command\n"
             "      config: {argv: [sh, -c, 'test -f %s/mark && echo ok || { touch %s/mark; "
             "exit 1; }']}\n"
             "      outputs: {out: \"{{ outputs.stdout }}\"}\n",
             dir, dir);
    cbx_workflow *w = load(text);
    const char *toks[] = {"{}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    json_t *snap = cbx_workflow_run_snapshot(r);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(token_of(snap, "t1"), "data"), "out")),
        "ok\n");
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, a_failed_action_blocks_with_its_error)
{
    cbx_workflow *w = load("name: fails\n"
                           "places: [a, b]\n"
                           "final: [b]\n"
                           "transitions:\n"
                           "  - name: go\n"
                           "    from: a\n"
                           "    to: b\n"
                           "    action: {executor: command, config: {argv: [sh, -c, 'exit 3']}}\n");
    const char *toks[] = {"{}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_STUCK);
    json_t *snap = cbx_workflow_run_snapshot(r);
    cr_assert(
        strstr(tstr(token_of(snap, "t1"), "explanation"), "transition go blocked: action failed:"),
        "%s", tstr(token_of(snap, "t1"), "explanation"));
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

Test(workflow, a_run_rebuilt_from_the_journal_matches_and_resumes)
{
    cbx_workflow *w = load(APPROVAL("1h"));
    const char *toks[] = {"{\"a\": 1}", "{\"a\": 2}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 0), CBX_WORKFLOW_WAITING);
    char id[40];
    snprintf(id, sizeof id, "%s", cbx_workflow_run_id(r));
    json_t *before = cbx_workflow_run_snapshot(r);
    cbx_workflow_run_free(r);
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_workflow_resume(&r, rt, id, reg, NULL, &e), 0, "%s", e.msg);
    json_t *after = cbx_workflow_run_snapshot(r);
    cr_assert(json_equal(json_object_get(before, "marking"), json_object_get(after, "marking")));
    cr_assert(json_equal(json_object_get(token_of(before, "t2"), "data"),
                         json_object_get(token_of(after, "t2"), "data")));
    json_decref(before);
    json_decref(after);
    json_t *d = json_pack("{s:s}", "approved_by", "bo");
    cr_assert_eq(cbx_workflow_signal(r, "t2", "approve", d, &e), 0, "%s", e.msg);
    json_decref(d);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 0), CBX_WORKFLOW_WAITING);
    cbx_workflow_run_free(r);
    /* show reads the journal only */
    json_t *shown = NULL;
    cr_assert_eq(cbx_workflow_run_show(jr, id, NULL, &shown, &e), 0, "%s", e.msg);
    cr_assert_str_eq(tstr(token_of(shown, "t2"), "place"), "approved");
    cr_assert_str_eq(tstr(token_of(shown, "t1"), "state"), "waiting");
    json_decref(shown);
    json_t *list = NULL;
    cr_assert_eq(cbx_workflow_runs_list(jr, 0, &list, &e), 0);
    cr_assert_eq(json_array_size(list), 1);
    json_decref(list);
    cr_assert_eq(cbx_workflow_run_show(jr, "nope", NULL, &shown, &e), -ENOENT);
    cbx_workflow_free(w);
}

Test(workflow, graph_shows_marking_and_firings)
{
    cbx_workflow *w = load("name: g\nplaces: [a, b]\nfinal: [b]\n"
                           "transitions:\n  - {name: go, from: a, to: b}\n");
    const char *toks[] = {"{}", "{}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    json_t *snap = cbx_workflow_run_snapshot(r);
    char *dot = cbx_workflow_graph(w, snap, "dot");
    char *mm = cbx_workflow_graph(w, snap, "mermaid");
    cr_assert(strstr(dot, "label=\"b\\n2 tokens\""), "%s", dot);
    cr_assert(strstr(dot, "go\\nfired 2x"), "%s", dot);
    cr_assert(strstr(mm, "go<br/>fired 2x"), "%s", mm);
    cr_assert_null(cbx_workflow_graph(w, snap, "svg"));
    free(dot);
    free(mm);
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

/* Cut the run's journal after event number keep (as a crash would), through SQLite itself. */
static void cut_journal(const char *run_id, int keep)
{
    cr_assert_eq(cbx_journal_flush(jr, NULL), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "DELETE FROM wf_events WHERE run_id = ?1 AND seq > ?2", -1,
                                    &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, keep);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int lines_of(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

/* Events of one token through one action: 1 add, 2 action, 3 result, 4 fire. */
static void crash_after(int keep, int runs_after)
{
    char text[1024], log[300];
    snprintf(log, sizeof log, "%s/runs.log", dir);
    unlink(log);
    snprintf(text, sizeof text,
             "name: once\n"
             "places: [a, b]\n"
             "final: [b]\n"
             "transitions:\n"
             "  - name: go\n"
             "    from: a\n"
             "    to: b\n"
             "    action:\n"
             "      executor: command\n"
             "      config: {argv: [sh, -c, 'echo run >>%s; echo 42']}\n"
             "      outputs: {answer: \"{{ tonumber(outputs.stdout) }}\"}\n",
             log);
    cbx_workflow *w = load(text);
    const char *toks[] = {"{}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    char id[40];
    snprintf(id, sizeof id, "%s", cbx_workflow_run_id(r));
    cbx_workflow_run_free(r);
    cr_assert_eq(lines_of(log), 1);
    cut_journal(id, keep);
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_workflow_resume(&r, rt, id, reg, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    json_t *snap = cbx_workflow_run_snapshot(r);
    json_t *t = token_of(snap, "t1");
    cr_assert_str_eq(tstr(t, "place"), "b");
    cr_assert_eq(data_int(t, "answer"), 42);
    json_decref(snap);
    cbx_workflow_run_free(r);
    cr_assert_eq(lines_of(log), 1 + runs_after, "the action ran %d times", lines_of(log));
    cbx_workflow_free(w);
}

Test(workflow, a_journaled_result_is_committed_without_running_again)
{
    crash_after(3, 0); /* the result journaled, the firing not: committed from the journal */
}

Test(workflow, an_action_without_a_journaled_result_runs_again)
{
    crash_after(2, 1); /* only its start journaled: it runs again */
}

/* Several tokens' actions run at once: each action waits until all four have started (a
 * rendezvous through files), which a one-at-a-time run would never reach (the action gives up
 * after a minute and the token is stuck). */
Test(workflow, tokens_fire_concurrently)
{
    char text[1024];
    snprintf(text, sizeof text,
             "name: conc\n"
             "places: [a, b]\n"
             "final: [b]\n"
             "transitions:\n"
             "  - name: meet\n"
             "    from: a\n"
             "    to: b\n"
             "    action:\n"
             "      executor: command\n"
             "      config:\n"
             "        argv: [sh, -c, 'touch %s/here.$N; i=0; while [ $(ls %s | grep -c here) "
             "-lt 4 ]; do i=$((i+1)); [ $i -gt 6000 ] && exit 1; sleep 0.01; done']\n"
             "        env: {N: \"{{ tostring(token.n) }}\"}\n",
             dir, dir);
    cbx_workflow *w = load(text);
    const char *toks[] = {"{\"n\": 1}", "{\"n\": 2}", "{\"n\": 3}", "{\"n\": 4}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

typedef struct seen {
    char log[2048];
    int replayed;
} seen;

static void on_ev(const cbx_workflow_event *ev, void *ud)
{
    seen *s = ud;
    static const char *const k[] = {"added", "action", "fired", "blocked", "signalled", "failed"};
    size_t n = strlen(s->log);
    snprintf(s->log + n, sizeof s->log - n, "%s %s %s;", k[ev->kind], ev->token,
             ev->transition ? ev->transition : "-");
    s->replayed += ev->replayed;
}

Test(workflow, events_reach_the_callback_and_replays_say_so)
{
    cbx_workflow *w = load("name: ev\n"
                           "rules: {no: {when: 'false'}}\n"
                           "places: [a, b, c]\n"
                           "final: [c]\n"
                           "transitions:\n"
                           "  - {name: never, from: a, to: b, policy: {rules: {all: [no]}}}\n"
                           "  - {name: go, from: a, to: c}\n");
    seen s = {{0}, 0};
    cbx_workflow_run_opts o = {.on_event = on_ev, .ud = &s};
    cbx_workflow_run *r = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_workflow_start(&r, rt, w, &o, &e), 0, "%s", e.msg);
    cr_assert_eq(cbx_workflow_add_token(r, NULL, NULL, "x", NULL, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(cbx_workflow_add_token(r, NULL, NULL, "x", NULL, 0, &e), -EEXIST);
    int fired = cbx_workflow_step(r);
    /* pure guards are tried at once: one blocked, one fired */
    cr_assert_eq(fired, 2, "%d: %s", fired, s.log);
    cr_assert_str_eq(s.log, "added x -;blocked x never;fired x go;");
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    char id[40];
    snprintf(id, sizeof id, "%s", cbx_workflow_run_id(r));
    cbx_workflow_run_free(r);
    memset(&s, 0, sizeof s);
    cr_assert_eq(cbx_workflow_resume(&r, rt, id, reg, &o, &e), 0, "%s", e.msg);
    cr_assert_eq(s.replayed, 3);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_DONE);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}

/* The action's policy as a flow step's: a breaker per key rendered from the token (one host's
 * failure opens its breaker, another host is untouched). */
Test(workflow, an_action_policy_keys_its_breaker_by_the_token)
{
    cbx_workflow *w =
        load("name: brk\n"
             "places: [a, b]\n"
             "final: [b]\n"
             "transitions:\n"
             "  - name: call\n"
             "    from: a\n"
             "    to: b\n"
             "    policy: {breaker: {key: '{{ token.host }}', consecutive_failures: 1,"
             " open_for: 1h}}\n"
             "    action:\n"
             "      executor: command\n"
             "      config: {argv: [sh, -c, 'test \"$H\" = good'], env: {H: '{{ "
             "token.host }}'}}\n");
    const char *toks[] = {"{\"host\": \"bad\"}", NULL};
    cbx_workflow_run *r = start(w, toks);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_STUCK);
    cbx_err e;
    cbx_err_clear(&e);
    json_t *bad = json_pack("{s:s}", "host", "bad"), *good = json_pack("{s:s}", "host", "good");
    cr_assert_eq(cbx_workflow_add_token(r, NULL, bad, NULL, NULL, 0, &e), 0);
    cr_assert_eq(cbx_workflow_add_token(r, NULL, good, NULL, NULL, 0, &e), 0);
    json_decref(bad);
    json_decref(good);
    cr_assert_eq(cbx_workflow_run_until_rest(r, 1), CBX_WORKFLOW_STUCK);
    json_t *snap = cbx_workflow_run_snapshot(r);
    cr_assert(strstr(tstr(token_of(snap, "t2"), "explanation"), "open"), "%s",
              tstr(token_of(snap, "t2"), "explanation"));
    cr_assert_str_eq(tstr(token_of(snap, "t3"), "place"), "b");
    json_decref(snap);
    cbx_workflow_run_free(r);
    cbx_workflow_free(w);
}
