/* Workflow markings shared by the cluster (cbx/dist.h): making one, signalling a token and
 * reading one, on a connection of their own or the nats executor's (wf_kv.h). Moving the tokens
 * is wf_kv_move.c; the bucket and its values wf_kv_io.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbx/dist.h"
#include "core/text.h"
#include "dist/wf_kv.h"
#include "dist/wf_kv_io.h"
#include "workflow/net_shared.h"

/* ---- creating --------------------------------------------------------------------------------
 */

/* The new workflow's marking: 0, or -EINVAL naming the token at fault. */
static int initial(const cbx_workflow_kv_opts *o, const char *id, cbx_workflow *w,
                   const json_t *tokens, cbx__wfkv_events *ev, json_t **m, cbx_err *err)
{
    *m = NULL;
    int bad = cbx__wfkv_check_id(id, err);
    if (bad)
        return bad;
    if (!w || (tokens && !json_is_array(tokens)))
        return cbx_err_set(err, -EINVAL, "workflow create: no workflow, or tokens not an array");
    cbx__wf_shared *s = NULL;
    int rc = cbx__wf_shared_new(&s, NULL, w, id, o ? o->max_firings : 0, cbx__wfkv_hold, ev, err);
    json_t *none = tokens ? NULL : json_array();
    if (!rc)
        rc = cbx__wf_shared_initial(s, tokens ? tokens : none, m, err);
    cbx__wf_shared_free(s);
    json_decref(none);
    return rc;
}

int cbx_workflow_kv_create(const cbx_workflow_kv_opts *o, const char *id, cbx_workflow *w,
                           const json_t *tokens, cbx_err *err)
{
    json_t *m = NULL;
    cbx__wfkv_events ev = {.fn = o ? o->on_event : NULL, .ud = o ? o->ud : NULL};
    int rc = initial(o, id, w, tokens, &ev, &m, err);
    cbx__wfkv_conn c;
    if (!rc && !(rc = cbx__wfkv_open(&c, o ? o->url : NULL, err))) {
        uint64_t rev = 0;
        rc = cbx__wfkv_write(&c, id, m, &rev, err);
        cbx__wfkv_close(&c);
    }
    if (!rc)
        cbx__wfkv_release(&ev);
    json_decref(ev.held);
    json_decref(m);
    return rc;
}

int cbx__wf_kv_create_on(natsConnection *nc, const char *id, cbx_workflow *w, const json_t *tokens,
                         uint64_t *revision, cbx_err *err)
{
    json_t *m = NULL;
    cbx__wfkv_events ev = {0};
    int rc = initial(NULL, id, w, tokens, &ev, &m, err);
    cbx__wfkv_conn c;
    *revision = 0;
    if (!rc && !(rc = cbx__wfkv_on(&c, nc, err))) {
        rc = cbx__wfkv_write(&c, id, m, revision, err);
        cbx__wfkv_close(&c);
    }
    json_decref(m);
    return rc;
}

/* ---- signals and reading ---------------------------------------------------------------------
 */

static int signal_with(cbx__wfkv_conn *c, const cbx_workflow_kv_opts *o, const cbx_registry *reg,
                       const char *id, const char *token, const char *name, const json_t *data,
                       cbx_err *err)
{
    char owner[128];
    cbx__wfkv_owner(o, owner, sizeof owner);
    cbx_workflow *w = NULL;
    cbx__wf_shared *s = NULL;
    cbx__wfkv_events ev = {.fn = o ? o->on_event : NULL, .ud = o ? o->ud : NULL};
    int rc = 0;
    for (int first = 1;; first = 0) {
        json_t *m = NULL, *changes = NULL;
        uint64_t rev = 0;
        if ((rc = cbx__wfkv_read(c, id, &m, &rev, err)) != 0)
            break;
        if (first && !(rc = cbx__wfkv_load_net(m, id, reg, &w, err)))
            rc = cbx__wf_shared_new(&s, NULL, w, id, 0, cbx__wfkv_hold, &ev, err);
        if (!rc && (rc = cbx__wf_shared_load(s, m, owner, cbx__wfkv_wall_ms(), err)) != 0)
            rc = cbx__wfkv_not_marking(err, id);
        if (!rc)
            rc = cbx__wf_shared_signal(s, token, name, data, &changes, err);
        if (!rc)
            rc = cbx__wf_marking_apply(m, changes);
        if (!rc)
            rc = cbx__wfkv_write(c, id, m, &rev, err);
        json_decref(changes);
        json_decref(m);
        if (!rc)
            cbx__wfkv_release(&ev);
        cbx__wfkv_drop(&ev);
        if (rc != -EAGAIN)
            break;
    }
    json_decref(ev.held);
    cbx__wf_shared_free(s);
    cbx_workflow_free(w);
    return rc;
}

int cbx_workflow_kv_signal(const cbx_workflow_kv_opts *o, const cbx_registry *reg, const char *id,
                           const char *token, const char *name, const json_t *data, cbx_err *err)
{
    int bad = cbx__wfkv_check_id(id, err);
    if (bad)
        return bad;
    cbx__wfkv_conn c;
    int rc = cbx__wfkv_open(&c, o ? o->url : NULL, err);
    if (!rc)
        rc = signal_with(&c, o, reg, id, token, name, data, err);
    cbx__wfkv_close(&c);
    return rc;
}

int cbx__wf_kv_signal_on(natsConnection *nc, const char *id, const char *token, const char *name,
                         const json_t *data, cbx_err *err)
{
    int bad = cbx__wfkv_check_id(id, err);
    if (bad)
        return bad;
    cbx__wfkv_conn c;
    int rc = cbx__wfkv_on(&c, nc, err);
    if (!rc)
        rc = signal_with(&c, NULL, NULL, id, token, name, data, err);
    cbx__wfkv_close(&c);
    return rc;
}

static int show_with(cbx__wfkv_conn *c, const cbx_registry *reg, const char *id, json_t **snapshot,
                     cbx_err *err)
{
    json_t *m = NULL;
    uint64_t rev = 0;
    cbx_workflow *w = NULL;
    cbx__wf_shared *s = NULL;
    int rc;
    if (!(rc = cbx__wfkv_read(c, id, &m, &rev, err)) &&
        !(rc = cbx__wfkv_load_net(m, id, reg, &w, err)) &&
        !(rc = cbx__wf_shared_new(&s, NULL, w, id, 0, NULL, NULL, err))) {
        if (cbx__wf_shared_load(s, m, "", cbx__wfkv_wall_ms(), err) != 0)
            rc = cbx__wfkv_not_marking(err, id);
        else if ((*snapshot = cbx__wf_shared_snapshot(s)) != NULL)
            json_object_set_new(*snapshot, "revision", json_integer((json_int_t)rev));
        else
            rc = -ENOMEM;
    }
    json_decref(m);
    cbx__wf_shared_free(s);
    cbx_workflow_free(w);
    return rc;
}

int cbx_workflow_kv_show(const cbx_workflow_kv_opts *o, const cbx_registry *reg, const char *id,
                         json_t **snapshot, cbx_err *err)
{
    *snapshot = NULL;
    int bad = cbx__wfkv_check_id(id, err);
    if (bad)
        return bad;
    cbx__wfkv_conn c;
    int rc = cbx__wfkv_open(&c, o ? o->url : NULL, err);
    if (!rc)
        rc = show_with(&c, reg, id, snapshot, err);
    cbx__wfkv_close(&c);
    return rc;
}

/* What a list says of the workflow id: its snapshot's summary, or why it cannot be read. */
static json_t *list_row(cbx__wfkv_conn *c, const cbx_registry *reg, const char *id)
{
    json_t *snap = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    int r = show_with(c, reg, id, &snap, &e);
    if (r == -ENOENT) /* deleted since the keys were listed */
        return NULL;
    if (r)
        return json_pack("{s:s, s:s, s:s}", "id", id, "state", "unreadable", "error",
                         e.msg[0] ? e.msg : cbx_strerror(r));
    json_t *row = json_pack(
        "{s:s, s:O, s:O, s:O, s:I, s:O}", "id", id, "workflow", json_object_get(snap, "workflow"),
        "state", json_object_get(snap, "state"), "marking", json_object_get(snap, "marking"),
        "tokens", (json_int_t)json_array_size(json_object_get(snap, "tokens")), "revision",
        json_object_get(snap, "revision"));
    json_decref(snap);
    return row;
}

int cbx_workflow_kv_list(const cbx_workflow_kv_opts *o, const cbx_registry *reg, json_t **list,
                         cbx_err *err)
{
    *list = NULL;
    cbx__wfkv_conn c;
    int rc = cbx__wfkv_open(&c, o ? o->url : NULL, err);
    kvKeysList keys = {0};
    if (!rc) {
        natsStatus st = kvStore_Keys(&keys, c.kv, NULL);
        if (st != NATS_OK && st != NATS_NOT_FOUND)
            rc = cbx_err_set(err, CBX_EFAILED, "%s on %s: the keys: %s", CBX__WFKV_BUCKET, c.url,
                             cbx__nats_why(st));
    }
    if (!rc && !(*list = json_array()))
        rc = -ENOMEM;
    if (!rc && keys.Count > 0)
        qsort(keys.Keys, (size_t)keys.Count, sizeof *keys.Keys, cbx__cmp_strings);
    for (int i = 0; !rc && i < keys.Count; i++) {
        json_t *row = list_row(&c, reg, keys.Keys[i]);
        if (row)
            json_array_append_new(*list, row);
    }
    kvKeysList_Destroy(&keys);
    cbx__wfkv_close(&c);
    return rc;
}

int cbx__wf_kv_show_on(natsConnection *nc, const char *id, json_t **snapshot, cbx_err *err)
{
    *snapshot = NULL;
    int bad = cbx__wfkv_check_id(id, err);
    if (bad)
        return bad;
    cbx__wfkv_conn c;
    int rc = cbx__wfkv_on(&c, nc, err);
    if (!rc)
        rc = show_with(&c, NULL, id, snapshot, err);
    cbx__wfkv_close(&c);
    return rc;
}
