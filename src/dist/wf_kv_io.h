/* Between the files of workflow markings in the cluster (wf_kv.c, wf_kv_move.c, wf_kv_io.c):
 * the bucket CBX_WORKFLOWS, a marking's value, and events held until their move is written. */
#ifndef CBX_DIST_WF_KV_IO_H
#define CBX_DIST_WF_KV_IO_H

#include <jansson.h>
#include <stdint.h>

#include "cbx/dist.h"
#include "dist/natslib.h"

#define CBX__WFKV_BUCKET "CBX_WORKFLOWS"

/* Wall-clock milliseconds (claims' ends, timers). */
uint64_t cbx__wfkv_wall_ms(void);

/* ---- events, held until the move that made them is written ---- */

/* A move decided again (another process wrote first) or dropped (its claim was lost) must not
 * have told its story: the engine's events are held here (cbx__wfkv_hold is the shared run's
 * on_event, with this as ud) and given to fn only once the marking that holds them is written
 * (cbx__wfkv_release), or forgotten (cbx__wfkv_drop). Free held with json_decref. */
typedef struct cbx__wfkv_events {
    cbx_workflow_event_fn fn;
    void *ud;
    json_t *held; /* [[kind, run_id, token, transition, place, detail], ...] */
} cbx__wfkv_events;

void cbx__wfkv_hold(const cbx_workflow_event *ev, void *ud);
void cbx__wfkv_release(cbx__wfkv_events *b);
void cbx__wfkv_drop(cbx__wfkv_events *b);

/* ---- the bucket ---- */

typedef struct cbx__wfkv_conn {
    natsConnection *nc;
    int own_nc; /* 0: borrowed (the nats executor's) */
    jsCtx *js;
    kvStore *kv;
    const char *url;
} cbx__wfkv_conn;

/* Connect to url (NULL = $NATS_URL, else the default) and open the bucket, made where missing;
 * or open it on nc (borrowed). 0, CBX_EFAILED, CBX_EPLUGIN; cbx__wfkv_close either way. */
int cbx__wfkv_open(cbx__wfkv_conn *c, const char *url, cbx_err *err);
int cbx__wfkv_on(cbx__wfkv_conn *c, natsConnection *nc, cbx_err *err);
void cbx__wfkv_close(cbx__wfkv_conn *c);

/* The marking of id and its revision: 0, -ENOENT (no such workflow), CBX_EPARSE (not a JSON
 * object), CBX_EFAILED (the server). */
int cbx__wfkv_read(cbx__wfkv_conn *c, const char *id, json_t **m, uint64_t *rev, cbx_err *err);
/* Write m over revision *rev (0: a new key): 0 (*rev the new revision), -EAGAIN (another process
 * wrote first), -EEXIST (a new key that is there), CBX_EFAILED. */
int cbx__wfkv_write(cbx__wfkv_conn *c, const char *id, const json_t *m, uint64_t *rev,
                    cbx_err *err);
/* 0 for an id cbx_workflow_kv_id_ok takes, else -EINVAL with a message naming it. */
int cbx__wfkv_check_id(const char *id, cbx_err *err);
/* err's message made the reason the value of id is not a marking: CBX_EPARSE. */
int cbx__wfkv_not_marking(cbx_err *err, const char *id);
/* The workflow of marking m, loaded from its source with reg (NULL: no executor checks). */
int cbx__wfkv_load_net(const json_t *m, const char *id, const cbx_registry *reg, cbx_workflow **w,
                       cbx_err *err);
/* Who claims tokens: o->owner, else host:pid. */
void cbx__wfkv_owner(const cbx_workflow_kv_opts *o, char *buf, size_t len);

#endif
