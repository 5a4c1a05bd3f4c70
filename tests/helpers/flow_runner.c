/* flow_runner STATE_DIR FLOW_FILE [--resume RUN_ID] [--inputs-json JSON] [--concurrency N]
 *
 * Runs a flow with a journal at STATE_DIR/journal.db, the way `cbx run` would, for the crash
 * test to kill with SIGKILL at any point and resume. Prints the run id on its first line (flushed
 * as soon as the run is in the journal: at the first step's start, or at once when resuming),
 * then, on its last line, the flow's outputs as compact JSON with sorted keys ("null" when the
 * flow failed). Exit status: 0 when the flow succeeded, 1 when it did not, 2 on a usage or
 * loading error (messages on stderr).
 */
#include "cbx/flow.h"
#include "cbx/journal.h"
#include "cbx/registry.h"
#include "cbx/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct runner_state {
    cbx_journal *journal;
    json_t *known; /* run ids in the journal before this run started */
    int id_printed;
} runner_state;

static void print_id(runner_state *st, const char *id)
{
    printf("%s\n", id);
    fflush(stdout);
    st->id_printed = 1;
}

/* The run's id is not known until it is in the journal: it is the one run that was not there
 * before. */
static void on_event(const cbx_flow_event *ev, void *ud)
{
    (void)ev;
    runner_state *st = ud;
    if (st->id_printed)
        return;
    json_t *runs = NULL;
    if (cbx_flow_runs_list(st->journal, 1000, &runs, NULL) < 0)
        return;
    size_t i;
    json_t *run;
    json_array_foreach(runs, i, run)
    {
        const char *id = json_string_value(json_object_get(run, "run_id"));
        if (id && !json_object_get(st->known, id)) {
            print_id(st, id);
            break;
        }
    }
    json_decref(runs);
}

static int usage(void)
{
    fprintf(stderr, "usage: flow_runner STATE_DIR FLOW_FILE [--resume RUN_ID] "
                    "[--inputs-json JSON] [--concurrency N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *dir = argv[1], *file = argv[2], *resume = NULL, *inputs_text = NULL;
    unsigned long concurrency = 0;
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--resume") == 0)
            resume = argv[++i];
        else if (strcmp(argv[i], "--inputs-json") == 0)
            inputs_text = argv[++i];
        else if (strcmp(argv[i], "--concurrency") == 0)
            concurrency = strtoul(argv[++i], NULL, 10);
        else
            return usage();
    }

    json_t *inputs = NULL;
    if (inputs_text) {
        json_error_t je;
        inputs = json_loads(inputs_text, 0, &je);
        if (!json_is_object(inputs)) {
            fprintf(stderr, "flow_runner: --inputs-json: not a JSON object: %s\n", je.text);
            return 2;
        }
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/journal.db", dir);
    cbx_err e;
    runner_state st = {.known = json_object()};
    cbx_journal_opts jo = {.path = path};
    if (cbx_journal_open(&st.journal, &jo, &e) < 0) {
        fprintf(stderr, "flow_runner: journal %s: %s\n", path, e.msg);
        return 2;
    }
    cbx_registry *reg = NULL;
    if (cbx_registry_new(&reg, &e) < 0) {
        fprintf(stderr, "flow_runner: registry: %s\n", e.msg);
        return 2;
    }
    cbx_diag diag = {0};
    cbx_flow *f = NULL;
    if (cbx_flow_load(&f, file, reg, &diag) < 0) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s:%d:%d: %s\n", diag.items[i].where, diag.items[i].line,
                    diag.items[i].col, diag.items[i].msg);
        cbx_diag_clear(&diag);
        return 2;
    }
    cbx_runtime *rt = NULL;
    cbx_runtime_opts ro = {.registry = reg, .journal = st.journal};
    if (cbx_runtime_new(&rt, &ro, &e) < 0) {
        fprintf(stderr, "flow_runner: runtime: %s\n", e.msg);
        return 2;
    }

    if (resume) {
        print_id(&st, resume);
    } else {
        json_t *runs = NULL;
        if (cbx_flow_runs_list(st.journal, 1000, &runs, &e) < 0) {
            fprintf(stderr, "flow_runner: runs: %s\n", e.msg);
            return 2;
        }
        size_t i;
        json_t *run;
        json_array_foreach(runs, i, run)
        {
            const char *id = json_string_value(json_object_get(run, "run_id"));
            if (id)
                json_object_set_new(st.known, id, json_true());
        }
        json_decref(runs);
    }

    cbx_flow_run_opts o = {.inputs = inputs,
                           .resume_run_id = resume,
                           .concurrency = (uint32_t)concurrency,
                           .on_event = on_event,
                           .ud = &st};
    cbx_flow_result res;
    int rc = cbx_flow_run(rt, f, &o, &res, &e);
    if (!st.id_printed && res.run_id[0])
        print_id(&st, res.run_id);
    if (rc < 0)
        fprintf(stderr, "flow_runner: %s: %s\n", cbx_status_name(res.status), res.error);
    char *out = res.outputs ? json_dumps(res.outputs, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    printf("%s\n", out ? out : "null");
    fflush(stdout);
    free(out);

    cbx_flow_result_clear(&res);
    cbx_runtime_free(rt);
    cbx_flow_free(f);
    cbx_registry_free(reg);
    cbx_journal_close(st.journal);
    json_decref(st.known);
    json_decref(inputs);
    return rc < 0 ? 1 : 0;
}
