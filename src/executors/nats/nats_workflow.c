/* The nats executor's workflow operations (seed 000's NatsExecutor with petri_net and
 * workflow_id): a workflow's marking in the bucket CBX_WORKFLOWS (dist/wf_kv.h), put there with
 * its first tokens, read, or signalled. Moving the tokens is `cbx workflow resume ID --nats URL`
 * (or cbx_workflow_kv_run), on any number of hosts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/wf_kv.h"
#include "executors/nats/nats_internal.h"

static const char *pstr(const json_t *params, const char *name)
{
    return json_string_value(json_object_get(params, name));
}

static cbx__nats_result done(json_t *outputs)
{
    return (cbx__nats_result){.outcome = outputs ? CBX_OUTCOME_SUCCESS : CBX_OUTCOME_ERROR,
                              .outputs = outputs};
}

/* petri_net: the workflow's YAML text, or the same as a JSON object. */
static int net_of(const json_t *params, cbx_workflow **w, cbx_err *err)
{
    const json_t *v = json_object_get(params, "petri_net");
    char *text = json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_COMPACT);
    if (!text)
        return cbx_err_set(err, CBX_EFAILED, "nats: out of memory");
    cbx_diag d = {0};
    int rc = cbx_workflow_load_string(w, text, strlen(text), "petri_net", NULL, &d);
    if (rc) {
        cbx_err first;
        cbx_err_clear(&first);
        cbx_diag_first(&d, &first);
        cbx_err_set(err, CBX_EINVAL_CONFIG, "nats: petri_net: %s", first.msg);
    }
    cbx_diag_clear(&d);
    free(text);
    return rc;
}

static cbx__nats_result start(natsConnection *nc, const json_t *params, cbx_err *err)
{
    const char *id = pstr(params, "workflow_id");
    cbx_workflow *w = NULL;
    if (net_of(params, &w, err) != 0)
        return done(NULL);
    json_t *tokens = json_array(), *ids = json_array();
    const char *place = pstr(params, "place");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(params, "tokens"), i, v)
    {
        if (!json_is_object(v)) {
            cbx_err_set(err, CBX_EINVAL_CONFIG, "nats: tokens[%zu]: expected an object", i);
            json_decref(tokens);
            json_decref(ids);
            cbx_workflow_free(w);
            return done(NULL);
        }
        json_t *t = json_pack("{s:O}", "data", v);
        if (t && place)
            json_object_set_new(t, "place", json_string(place));
        json_array_append_new(tokens, t);
        char tid[32];
        snprintf(tid, sizeof tid, "t%zu", i + 1);
        json_array_append_new(ids, json_string(tid));
    }
    uint64_t rev = 0;
    int rc = cbx__wf_kv_create_on(nc, id, w, tokens, &rev, err);
    json_t *out = rc ? NULL
                     : json_pack("{s:s, s:s, s:O, s:I}", "workflow_id", id, "workflow",
                                 cbx_workflow_name(w), "tokens", ids, "revision", (json_int_t)rev);
    json_decref(tokens);
    json_decref(ids);
    cbx_workflow_free(w);
    if (rc == -EEXIST)
        return (cbx__nats_result){.outcome = CBX_OUTCOME_ERROR,
                                  .metadata = json_pack("{s:b}", "conflict", 1)};
    return done(out);
}

static cbx__nats_result get(natsConnection *nc, const json_t *params, cbx_err *err)
{
    json_t *snap = NULL;
    if (cbx__wf_kv_show_on(nc, pstr(params, "workflow_id"), &snap, err) != 0)
        return done(NULL);
    /* the tokens without their histories: what a step of a flow wants to look at */
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(snap, "tokens"), i, t) json_object_del(t, "history");
    json_object_set_new(snap, "workflow_id", json_string(pstr(params, "workflow_id")));
    json_object_del(snap, "run_id");
    return done(snap);
}

static cbx__nats_result send_signal(natsConnection *nc, const json_t *params, cbx_err *err)
{
    const char *id = pstr(params, "workflow_id"), *token = pstr(params, "token_id"),
               *name = pstr(params, "signal");
    const json_t *data = json_object_get(params, "data");
    if (data && !json_is_object(data)) {
        cbx_err_set(err, CBX_EINVAL_CONFIG, "nats: data: a signal's data is a JSON object");
        return done(NULL);
    }
    if (cbx__wf_kv_signal_on(nc, id, token, name, data, err) != 0)
        return done(NULL);
    return done(json_pack("{s:s, s:s, s:s}", "workflow_id", id, "token_id", token, "signal", name));
}

cbx__nats_result cbx__nats_workflow_op(const char *op, natsConnection *nc, const json_t *params,
                                       cbx_err *err)
{
    if (strcmp(op, "workflow_start") == 0)
        return start(nc, params, err);
    if (strcmp(op, "workflow_get") == 0)
        return get(nc, params, err);
    return send_signal(nc, params, err);
}
