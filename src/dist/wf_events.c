/* Workflow events on NATS subjects (cbx.events.workflow.<name>), for other systems to follow a
 * workflow's tokens (see cbx/dist.h). Core NATS publishes: fire and forget, buffered by libnats
 * while the connection is away, flushed (for at most a second) when the publisher is freed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbx/dist.h"
#include "dist/work.h"

struct cbx_workflow_events {
    natsConnection *nc;
    char *workflow;
    char subject[128 + 4 * CBX__DIST_TYPE_MAX];
};

/* The workflow's name as one subject token: what cannot be in one becomes '_'. */
static void subject_of(cbx_workflow_events *e, const char *name)
{
    char tok[CBX__DIST_TYPE_MAX + 1];
    size_t n = 0;
    for (const char *p = name; *p && n < CBX__DIST_TYPE_MAX; p++) {
        char c = *p;
        tok[n++] = (c > ' ' && c < 127 && !strchr(".*>", c)) ? c : '_';
    }
    tok[n] = '\0';
    snprintf(e->subject, sizeof e->subject, "cbx.events.workflow.%s", n ? tok : "_");
}

int cbx_workflow_events_nats_new(cbx_workflow_events **out, const char *url, const char *workflow,
                                 cbx_err *err)
{
    *out = NULL;
    cbx_workflow_events *e = calloc(1, sizeof *e);
    if (!e || !(e->workflow = strdup(workflow ? workflow : ""))) {
        free(e);
        return cbx_err_set(err, -ENOMEM, "workflow events: out of memory");
    }
    subject_of(e, e->workflow);
    /* a server that is away is not the run's failure: the connection keeps trying */
    int r = cbx__dist_connect_lazy(cbx__dist_url(url), &e->nc, err);
    if (r) {
        cbx_workflow_events_free(e);
        return r;
    }
    *out = e;
    return 0;
}

const char *cbx_workflow_events_subject(const cbx_workflow_events *e)
{
    return e ? e->subject : NULL;
}

static void publish(cbx_workflow_events *e, const char *run_id, const char *event,
                    const char *token, const char *transition, const char *place,
                    const char *detail)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:I}", "workflow", e->workflow, "run_id",
                  run_id ? run_id : "", "event", event, "token", token, "transition", transition,
                  "place", place, "detail", detail && *detail ? detail : NULL, "wall_ms",
                  (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
    if (text)
        natsConnection_Publish(e->nc, e->subject, text, (int)strlen(text));
    free(text);
    json_decref(m);
}

void cbx_workflow_events_emit(const cbx_workflow_event *ev, void *events)
{
    cbx_workflow_events *e = events;
    if (!e || !ev || ev->replayed)
        return; /* a resume's replay: those were published when they happened */
    static const char *const names[] = {
        [CBX_WORKFLOW_TOKEN_ADDED] = "created", [CBX_WORKFLOW_ACTION_STARTED] = "action_started",
        [CBX_WORKFLOW_FIRED] = "fired",         [CBX_WORKFLOW_BLOCKED] = "blocked",
        [CBX_WORKFLOW_SIGNALLED] = "signalled", [CBX_WORKFLOW_TOKEN_FAILED] = "failed",
    };
    if ((size_t)ev->kind >= sizeof names / sizeof names[0] || !names[ev->kind])
        return;
    publish(e, ev->run_id, names[ev->kind], ev->token,
            ev->kind == CBX_WORKFLOW_SIGNALLED ? NULL : ev->transition, ev->place, ev->detail);
    if (ev->kind == CBX_WORKFLOW_SIGNALLED)
        publish(e, ev->run_id, "signal", ev->token, NULL, ev->place, ev->transition);
}

void cbx_workflow_events_rest(cbx_workflow_events *e, const json_t *snapshot)
{
    if (!e || !snapshot)
        return;
    const char *run_id = json_string_value(json_object_get(snapshot, "run_id"));
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(snapshot, "tokens"), i, t)
    {
        const char *st = json_string_value(json_object_get(t, "state"));
        const char *ev = !st                          ? NULL
                         : strcmp(st, "final") == 0   ? "done"
                         : strcmp(st, "waiting") == 0 ? "waiting"
                         : strcmp(st, "stuck") == 0   ? "stuck"
                                                      : NULL;
        if (!ev)
            continue;
        const char *detail = json_string_value(json_object_get(t, "waiting_for"));
        if (!detail)
            detail = json_string_value(json_object_get(t, "explanation"));
        publish(e, run_id, ev, json_string_value(json_object_get(t, "id")), NULL,
                json_string_value(json_object_get(t, "place")), strcmp(ev, "done") ? detail : NULL);
    }
    publish(e, run_id, "run", NULL, NULL, NULL,
            json_string_value(json_object_get(snapshot, "state")));
}

void cbx_workflow_events_free(cbx_workflow_events *e)
{
    if (!e)
        return;
    if (e->nc) {
        natsConnection_FlushTimeout(e->nc, 1000);
        natsConnection_Destroy(e->nc);
    }
    free(e->workflow);
    free(e);
}
