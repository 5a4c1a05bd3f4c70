/* Workflow markings in the bucket CBX_WORKFLOWS (wf_kv_io.h): the bucket, a marking's value read
 * and written by revision, the workflow loaded from it, and events held until their move is
 * written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist/wf_kv_io.h"
#include "dist/work.h"

int cbx_workflow_kv_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 1 || n > 39)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return 0;
    return 1;
}

uint64_t cbx__wfkv_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- events, held until the move that made them is written ---------------------------------
 */

/* A move decided again (another process wrote first) or dropped (its claim was lost) must not
 * have told its story: the engine's events are held here and given to the caller's on_event only
 * once the marking that holds them is written. */
void cbx__wfkv_hold(const cbx_workflow_event *ev, void *ud)
{
    cbx__wfkv_events *b = ud;
    if (!b->fn || ev->replayed)
        return;
    if (!b->held && !(b->held = json_array()))
        return;
    json_array_append_new(b->held,
                          json_pack("[i, s, s, s?, s, s]", (int)ev->kind, ev->run_id,
                                    ev->token ? ev->token : "", ev->transition,
                                    ev->place ? ev->place : "", ev->detail ? ev->detail : ""));
}

void cbx__wfkv_release(cbx__wfkv_events *b)
{
    size_t i;
    json_t *e;
    json_array_foreach(b->held, i, e)
    {
        cbx_workflow_event ev = {
            .kind = (cbx_workflow_event_kind)json_integer_value(json_array_get(e, 0)),
            .run_id = json_string_value(json_array_get(e, 1)),
            .token = json_string_value(json_array_get(e, 2)),
            .transition = json_string_value(json_array_get(e, 3)),
            .place = json_string_value(json_array_get(e, 4)),
            .detail = json_string_value(json_array_get(e, 5))};
        b->fn(&ev, b->ud);
    }
    json_array_clear(b->held);
}

void cbx__wfkv_drop(cbx__wfkv_events *b)
{
    json_array_clear(b->held);
}

/* ---- the bucket ----------------------------------------------------------------------------- */

void cbx__wfkv_close(cbx__wfkv_conn *c)
{
    if (c->kv)
        kvStore_Destroy(c->kv);
    if (c->js)
        jsCtx_Destroy(c->js);
    if (c->nc && c->own_nc)
        natsConnection_Destroy(c->nc);
    memset(c, 0, sizeof *c);
}

/* The bucket on c->nc, made where missing. */
static int conn_bucket(cbx__wfkv_conn *c, cbx_err *err);

int cbx__wfkv_open(cbx__wfkv_conn *c, const char *url, cbx_err *err)
{
    memset(c, 0, sizeof *c);
    c->url = cbx__dist_url(url);
    int rc = cbx__dist_connect(c->url, &c->nc, err);
    if (rc)
        return rc;
    c->own_nc = 1;
    return conn_bucket(c, err);
}

int cbx__wfkv_on(cbx__wfkv_conn *c, natsConnection *nc, cbx_err *err)
{
    memset(c, 0, sizeof *c);
    c->url = "the NATS server";
    c->nc = nc;
    return conn_bucket(c, err);
}

static int conn_bucket(cbx__wfkv_conn *c, cbx_err *err)
{
    natsStatus st = natsConnection_JetStream(&c->js, c->nc, NULL);
    if (st == NATS_OK)
        st = cbx__dist_kv_bucket(&c->kv, c->js, CBX__WFKV_BUCKET, 0);
    if (st != NATS_OK) {
        c->kv = NULL;
        const char *url = c->url;
        cbx__wfkv_close(c);
        c->url = url;
        return cbx_err_set(err, CBX_EFAILED, "%s on %s: %s", CBX__WFKV_BUCKET, c->url,
                           cbx__nats_why(st));
    }
    return 0;
}

/* Read the marking of id: 0, -ENOENT (no such workflow), CBX_EPARSE (not JSON), CBX_EFAILED. */
int cbx__wfkv_read(cbx__wfkv_conn *c, const char *id, json_t **m, uint64_t *rev, cbx_err *err)
{
    *m = NULL;
    kvEntry *e = NULL;
    natsStatus st = cbx__dist_kv_get(&e, c->kv, id);
    if (st == NATS_NOT_FOUND)
        return cbx_err_set(err, -ENOENT, "workflow id '%s': no such workflow in %s on %s", id,
                           CBX__WFKV_BUCKET, c->url);
    if (st != NATS_OK)
        return cbx_err_set(err, CBX_EFAILED, "workflow id '%s': reading %s: %s", id,
                           CBX__WFKV_BUCKET, cbx__nats_why(st));
    *rev = kvEntry_Revision(e);
    json_error_t je;
    *m = json_loadb(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), 0, &je);
    kvEntry_Destroy(e);
    if (!json_is_object(*m)) {
        int was_json = *m != NULL;
        json_decref(*m);
        *m = NULL;
        return cbx_err_set(err, CBX_EPARSE,
                           "workflow id '%s': the value in %s is not a workflow marking: %s", id,
                           CBX__WFKV_BUCKET, was_json ? "not a JSON object" : je.text);
    }
    return 0;
}

/* Write m over revision rev (0: a new key). 0 (*rev the new revision), -EAGAIN (another process
 * wrote first), -EEXIST (a new key that is there), CBX_EFAILED. */
int cbx__wfkv_write(cbx__wfkv_conn *c, const char *id, const json_t *m, uint64_t *rev, cbx_err *err)
{
    char *text = json_dumps(m, JSON_COMPACT);
    if (!text)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    uint64_t nrev = 0;
    int len = (int)strlen(text);
    natsStatus st = *rev ? kvStore_Update(&nrev, c->kv, id, text, len, *rev)
                         : kvStore_Create(&nrev, c->kv, id, text, len);
    free(text);
    if (st == NATS_OK) {
        *rev = nrev;
        return 0;
    }
    if (cbx__dist_kv_conflict(st))
        return *rev ? -EAGAIN
                    : cbx_err_set(err, -EEXIST, "workflow id '%s' is taken in %s on %s", id,
                                  CBX__WFKV_BUCKET, c->url);
    return cbx_err_set(err, CBX_EFAILED, "workflow id '%s': writing %s: %s", id, CBX__WFKV_BUCKET,
                       cbx__nats_why(st));
}

/* err's message as the reason a stored value is not a marking. */
int cbx__wfkv_check_id(const char *id, cbx_err *err)
{
    if (cbx_workflow_kv_id_ok(id))
        return 0;
    return cbx_err_set(err, -EINVAL, "workflow id '%s': 1 to 39 letters, digits, '-' or '_'",
                       id ? id : "");
}

int cbx__wfkv_not_marking(cbx_err *err, const char *id)
{
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    return cbx_err_set(err, CBX_EPARSE,
                       "workflow id '%s': the value in %s is not a workflow marking: %s", id,
                       CBX__WFKV_BUCKET, why);
}

/* The workflow of marking m, loaded from its source. */
int cbx__wfkv_load_net(const json_t *m, const char *id, const cbx_registry *reg, cbx_workflow **w,
                       cbx_err *err)
{
    const char *src = json_string_value(json_object_get(m, "source"));
    if (!src)
        return cbx_err_set(err, CBX_EPARSE,
                           "workflow id '%s': the value in %s is not a workflow marking: source: "
                           "expected the workflow's text",
                           id, CBX__WFKV_BUCKET);
    const char *file = json_string_value(json_object_get(m, "file"));
    cbx_diag d = {0};
    int rc = cbx_workflow_load_string(w, src, strlen(src), file && *file ? file : id, reg, &d);
    if (rc) {
        cbx_err first;
        cbx_err_clear(&first);
        cbx_diag_first(&d, &first);
        cbx_err_set(err, rc, "workflow id '%s': its workflow does not load: %s", id, first.msg);
    }
    cbx_diag_clear(&d);
    return rc;
}

void cbx__wfkv_owner(const cbx_workflow_kv_opts *o, char *buf, size_t len)
{
    if (o && o->owner && *o->owner) {
        snprintf(buf, len, "%s", o->owner);
        return;
    }
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(buf, len, "%s:%ld", host[0] ? host : "host", (long)getpid());
}
