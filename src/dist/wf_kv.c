/* Workflow markings shared by the cluster (cbx/dist.h): each workflow's marking - its tokens,
 * their places and data, and its source - is one value of the JetStream key-value bucket
 * CBX_WORKFLOWS, key = the workflow's id, so that any process may move its tokens.
 *
 * Moving a token: read the marking and its revision, pick a token that may fire (the search
 * starts at a random token, so processes spread), step it once with the workflow engine
 * (workflow/net_shared.h: guards, rules, action, firing), and write the changed tokens back
 * only if the revision is still the one read (kvStore_Update: compare-and-set). When another
 * process wrote first, everything is decided again on the newer marking, so no token is ever
 * consumed twice. A token that may take a transition with an action is first claimed - the
 * claim {by, until_ms, nonce} written by compare-and-set like a firing - then its action runs
 * here while the claim is renewed every third of the lease, then the result is written by
 * compare-and-set on the newest marking, provided the claim is still this process's. A process
 * that dies leaves its claim to expire after the lease: the action then runs again elsewhere. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cbx/dist.h"
#include "dist/wf_kv.h"
#include "dist/work.h"
#include "workflow/net_shared.h"

#define BUCKET           "CBX_WORKFLOWS"
#define DEFAULT_LEASE_MS 30000

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

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nap_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- events, held until the move that made them is written ---------------------------------
 */

/* A move decided again (another process wrote first) or dropped (its claim was lost) must not
 * have told its story: the engine's events are held here and given to the caller's on_event only
 * once the marking that holds them is written. */
typedef struct evbuf {
    cbx_workflow_event_fn fn;
    void *ud;
    json_t *held; /* [[kind, run_id, token, transition, place, detail], ...] */
} evbuf;

static void hold(const cbx_workflow_event *ev, void *ud)
{
    evbuf *b = ud;
    if (!b->fn || ev->replayed)
        return;
    if (!b->held && !(b->held = json_array()))
        return;
    json_array_append_new(b->held,
                          json_pack("[i, s, s, s?, s, s]", (int)ev->kind, ev->run_id,
                                    ev->token ? ev->token : "", ev->transition,
                                    ev->place ? ev->place : "", ev->detail ? ev->detail : ""));
}

static void release(evbuf *b)
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

static void drop(evbuf *b)
{
    json_array_clear(b->held);
}

/* ---- the bucket ----------------------------------------------------------------------------- */

typedef struct conn {
    natsConnection *nc;
    int own_nc; /* 0: borrowed (the nats executor's) */
    jsCtx *js;
    kvStore *kv;
    const char *url;
} conn;

static void conn_close(conn *c)
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
static int conn_bucket(conn *c, cbx_err *err);

static int conn_open(conn *c, const char *url, cbx_err *err)
{
    memset(c, 0, sizeof *c);
    c->url = cbx__dist_url(url);
    int rc = cbx__dist_connect(c->url, &c->nc, err);
    if (rc)
        return rc;
    c->own_nc = 1;
    return conn_bucket(c, err);
}

static int conn_on(conn *c, natsConnection *nc, cbx_err *err)
{
    memset(c, 0, sizeof *c);
    c->url = "the NATS server";
    c->nc = nc;
    return conn_bucket(c, err);
}

static int conn_bucket(conn *c, cbx_err *err)
{
    natsStatus st = natsConnection_JetStream(&c->js, c->nc, NULL);
    if (st == NATS_OK) {
        st = js_KeyValue(&c->kv, c->js, BUCKET);
        if (st == NATS_NOT_FOUND) {
            kvConfig cfg;
            kvConfig_Init(&cfg);
            cfg.Bucket = BUCKET;
            cfg.History = 1;
            cfg.StorageType = js_FileStorage;
            st = js_CreateKeyValue(&c->kv, c->js, &cfg);
            if (st != NATS_OK && js_KeyValue(&c->kv, c->js, BUCKET) == NATS_OK)
                st = NATS_OK; /* made by another process meanwhile */
        }
    }
    if (st != NATS_OK) {
        c->kv = NULL;
        const char *url = c->url;
        conn_close(c);
        c->url = url;
        return cbx_err_set(err, CBX_EFAILED, "%s on %s: %s", BUCKET, c->url, cbx__nats_why(st));
    }
    return 0;
}

/* Read the marking of id: 0, -ENOENT (no such workflow), CBX_EPARSE (not JSON), CBX_EFAILED. */
static int read_marking(conn *c, const char *id, json_t **m, uint64_t *rev, cbx_err *err)
{
    *m = NULL;
    kvEntry *e = NULL;
    natsStatus st = cbx__dist_kv_get(&e, c->kv, id);
    if (st == NATS_NOT_FOUND)
        return cbx_err_set(err, -ENOENT, "workflow id '%s': no such workflow in %s on %s", id,
                           BUCKET, c->url);
    if (st != NATS_OK)
        return cbx_err_set(err, CBX_EFAILED, "workflow id '%s': reading %s: %s", id, BUCKET,
                           cbx__nats_why(st));
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
                           BUCKET, was_json ? "not a JSON object" : je.text);
    }
    return 0;
}

/* Write m over revision rev (0: a new key). 0 (*rev the new revision), -EAGAIN (another process
 * wrote first), -EEXIST (a new key that is there), CBX_EFAILED. */
static int write_marking(conn *c, const char *id, const json_t *m, uint64_t *rev, cbx_err *err)
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
                    : cbx_err_set(err, -EEXIST, "workflow id '%s' is taken in %s on %s", id, BUCKET,
                                  c->url);
    return cbx_err_set(err, CBX_EFAILED, "workflow id '%s': writing %s: %s", id, BUCKET,
                       cbx__nats_why(st));
}

/* err's message as the reason a stored value is not a marking. */
static int not_marking(cbx_err *err, const char *id)
{
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    return cbx_err_set(err, CBX_EPARSE,
                       "workflow id '%s': the value in %s is not a workflow marking: %s", id,
                       BUCKET, why);
}

/* The workflow of marking m, loaded from its source. */
static int load_net(const json_t *m, const char *id, const cbx_registry *reg, cbx_workflow **w,
                    cbx_err *err)
{
    const char *src = json_string_value(json_object_get(m, "source"));
    if (!src)
        return cbx_err_set(err, CBX_EPARSE,
                           "workflow id '%s': the value in %s is not a workflow marking: source: "
                           "expected the workflow's text",
                           id, BUCKET);
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

/* ---- creating --------------------------------------------------------------------------------
 */

/* The new workflow's marking: 0, or -EINVAL naming the token at fault. */
static int initial(const cbx_workflow_kv_opts *o, const char *id, cbx_workflow *w,
                   const json_t *tokens, evbuf *ev, json_t **m, cbx_err *err)
{
    *m = NULL;
    if (!cbx_workflow_kv_id_ok(id))
        return cbx_err_set(err, -EINVAL, "workflow id '%s': 1 to 39 letters, digits, '-' or '_'",
                           id ? id : "");
    if (!w || (tokens && !json_is_array(tokens)))
        return cbx_err_set(err, -EINVAL, "workflow create: no workflow, or tokens not an array");
    cbx__wf_shared *s = NULL;
    int rc = cbx__wf_shared_new(&s, NULL, w, id, o ? o->max_firings : 0, hold, ev, err);
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
    evbuf ev = {.fn = o ? o->on_event : NULL, .ud = o ? o->ud : NULL};
    int rc = initial(o, id, w, tokens, &ev, &m, err);
    conn c;
    if (!rc && !(rc = conn_open(&c, o ? o->url : NULL, err))) {
        uint64_t rev = 0;
        rc = write_marking(&c, id, m, &rev, err);
        conn_close(&c);
    }
    if (!rc)
        release(&ev);
    json_decref(ev.held);
    json_decref(m);
    return rc;
}

int cbx__wf_kv_create_on(natsConnection *nc, const char *id, cbx_workflow *w, const json_t *tokens,
                         uint64_t *revision, cbx_err *err)
{
    json_t *m = NULL;
    evbuf ev = {0};
    int rc = initial(NULL, id, w, tokens, &ev, &m, err);
    conn c;
    *revision = 0;
    if (!rc && !(rc = conn_on(&c, nc, err))) {
        rc = write_marking(&c, id, m, revision, err);
        conn_close(&c);
    }
    json_decref(m);
    return rc;
}

/* ---- moving tokens ---------------------------------------------------------------------------
 */

typedef struct mover {
    conn c;
    const char *id;
    char owner[128];
    char nonce[160];
    uint64_t lease_ms;
    cbx__wf_shared *s;
    cbx_workflow_kv_stats st;
    json_t *ids; /* the claimed tokens, while an action runs */
    int lost;    /* the claim was taken over */
    uint64_t rng;
    evbuf ev;
    cbx_err *err;
} mover;

static uint64_t next_rand(mover *mv)
{
    mv->rng ^= mv->rng << 13;
    mv->rng ^= mv->rng >> 7;
    mv->rng ^= mv->rng << 17;
    return mv->rng;
}

/* 1 when every token of ids in m is claimed by this process's current claim. */
static int still_mine(const mover *mv, const json_t *m)
{
    size_t i;
    json_t *v;
    json_array_foreach(mv->ids, i, v)
    {
        json_t *t = json_object_get(json_object_get(m, "tokens"), json_string_value(v));
        const char *n = json_string_value(json_object_get(json_object_get(t, "claim"), "nonce"));
        if (!n || strcmp(n, mv->nonce) != 0)
            return 0;
    }
    return 1;
}

static int set_claims(mover *mv, json_t *m)
{
    size_t i;
    json_t *v;
    json_array_foreach(mv->ids, i, v)
    {
        json_t *t = json_object_get(json_object_get(m, "tokens"), json_string_value(v));
        json_t *c = json_pack("{s:s, s:I, s:s}", "by", mv->owner, "until_ms",
                              (json_int_t)(wall_ms() + mv->lease_ms), "nonce", mv->nonce);
        if (!t || !c || json_object_set_new(t, "claim", c) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* Every third of the lease while an action runs: push the claim's end further. */
static void renew(void *ud)
{
    mover *mv = ud;
    for (int tries = 0; tries < 20 && !mv->lost; tries++) {
        json_t *m = NULL;
        uint64_t rev = 0;
        cbx_err e;
        cbx_err_clear(&e);
        if (read_marking(&mv->c, mv->id, &m, &rev, &e) != 0)
            return; /* the server is away: the commit finds out */
        if (!still_mine(mv, m)) {
            mv->lost = 1;
        } else if (set_claims(mv, m) == 0) {
            int rc = write_marking(&mv->c, mv->id, m, &rev, &e);
            if (rc == -EAGAIN)
                mv->st.cas_conflicts++;
            if (rc != -EAGAIN) {
                json_decref(m);
                return;
            }
        }
        json_decref(m);
    }
}

/* Write changes into the newest marking while the claim holds: 0, 1 (the claim was lost), <0. */
static int commit_claimed(mover *mv, const json_t *changes)
{
    for (;;) {
        json_t *m = NULL;
        uint64_t rev = 0;
        int rc = read_marking(&mv->c, mv->id, &m, &rev, mv->err);
        if (rc)
            return rc;
        if (!still_mine(mv, m)) {
            json_decref(m);
            mv->st.claims_lost++;
            return 1;
        }
        rc = cbx__wf_marking_apply(m, changes);
        if (!rc)
            rc = write_marking(&mv->c, mv->id, m, &rev, mv->err);
        json_decref(m);
        if (rc != -EAGAIN)
            return rc;
        mv->st.cas_conflicts++;
    }
}

static void count(mover *mv, const json_t *changes)
{
    mv->st.fires += (uint64_t)json_integer_value(json_object_get(changes, "fires"));
    mv->st.blocks += (uint64_t)json_integer_value(json_object_get(changes, "blocks"));
}

/* One move: 1 when tokens moved (or were tried), 2 when it is to be decided again (another
 * process wrote first, or took the tokens over), 0 when none may move here now (*state says
 * why), <0 on failure. */
static int move_once(mover *mv, int *state, uint64_t *next_due)
{
    json_t *m = NULL;
    uint64_t rev = 0;
    int rc = read_marking(&mv->c, mv->id, &m, &rev, mv->err);
    if (rc)
        return rc;
    rc = cbx__wf_shared_load(mv->s, m, mv->owner, wall_ms(), mv->err);
    if (rc) {
        json_decref(m);
        return not_marking(mv->err, mv->id);
    }
    json_t *ids = NULL;
    int claim = 0;
    int found = cbx__wf_shared_pick(mv->s, (size_t)next_rand(mv), &ids, &claim, next_due);
    if (found <= 0) {
        *state = (int)cbx__wf_shared_state(mv->s);
        json_decref(m);
        return found < 0 ? found : 0;
    }
    json_t *changes = NULL;
    if (!claim) {
        /* a pure guard: decided on the marking read, written only over that revision */
        rc = cbx__wf_shared_fire(mv->s, ids, NULL, NULL, 0, &changes);
        if (!rc && !json_integer_value(json_object_get(changes, "fires")) &&
            !json_integer_value(json_object_get(changes, "blocks"))) {
            /* nothing happened (the engine saw no firing where the search saw one): write
             * nothing, and rest as the marking stands rather than write it again and again */
            *state = (int)cbx__wf_shared_state(mv->s);
            json_decref(changes);
            json_decref(ids);
            json_decref(m);
            drop(&mv->ev);
            return 0;
        }
        if (!rc)
            rc = cbx__wf_marking_apply(m, changes);
        if (!rc)
            rc = write_marking(&mv->c, mv->id, m, &rev, mv->err);
        if (rc == -EAGAIN)
            mv->st.cas_conflicts++;
        if (!rc) {
            count(mv, changes);
            release(&mv->ev);
        } else {
            drop(&mv->ev);
        }
        json_decref(changes);
        json_decref(ids);
        json_decref(m);
        return rc == -EAGAIN ? 2 : rc ? rc : 1;
    }
    /* an action may run: claim the tokens first */
    snprintf(mv->nonce, sizeof mv->nonce, "%s/%" PRIu64, mv->owner, ++mv->st.claims);
    mv->ids = ids;
    mv->lost = 0;
    rc = set_claims(mv, m);
    if (!rc)
        rc = write_marking(&mv->c, mv->id, m, &rev, mv->err);
    json_decref(m);
    if (rc) {
        if (rc == -EAGAIN)
            mv->st.cas_conflicts++;
        mv->st.claims--;
        mv->ids = NULL;
        json_decref(ids);
        return rc == -EAGAIN ? 2 : rc;
    }
    rc = cbx__wf_shared_fire(mv->s, ids, renew, mv, mv->lease_ms / 3 ? mv->lease_ms / 3 : 1,
                             &changes);
    int moved = 1;
    if (!rc) {
        rc = commit_claimed(mv, changes);
        if (rc == 0) {
            count(mv, changes);
            release(&mv->ev);
        } else if (rc == 1) {
            rc = 0; /* another process took the tokens over: what was done here is dropped */
            moved = 2;
        }
    }
    drop(&mv->ev);
    json_decref(changes);
    mv->ids = NULL;
    json_decref(ids);
    return rc < 0 ? rc : moved;
}

static void owner_of(const cbx_workflow_kv_opts *o, char *buf, size_t len)
{
    if (o && o->owner && *o->owner) {
        snprintf(buf, len, "%s", o->owner);
        return;
    }
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(buf, len, "%s:%ld", host[0] ? host : "host", (long)getpid());
}

int cbx_workflow_kv_run(cbx_runtime *rt, const cbx_registry *reg, const char *id,
                        const cbx_workflow_kv_opts *o, cbx_workflow_kv_stats *stats,
                        json_t **snapshot, cbx_err *err)
{
    if (snapshot)
        *snapshot = NULL;
    if (!rt || !cbx_workflow_kv_id_ok(id))
        return cbx_err_set(err, -EINVAL, "workflow id '%s': 1 to 39 letters, digits, '-' or '_'",
                           id ? id : "");
    mover mv;
    memset(&mv, 0, sizeof mv);
    mv.id = id;
    mv.err = err;
    mv.ev.fn = o ? o->on_event : NULL;
    mv.ev.ud = o ? o->ud : NULL;
    mv.lease_ms = o && o->lease_ms ? o->lease_ms : DEFAULT_LEASE_MS;
    owner_of(o, mv.owner, sizeof mv.owner);
    mv.rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ wall_ms() ^ (uint64_t)(uintptr_t)&mv;
    if (!mv.rng)
        mv.rng = 1;
    int rc = conn_open(&mv.c, o ? o->url : NULL, err);
    if (rc)
        return rc;
    json_t *m = NULL;
    uint64_t rev = 0;
    cbx_workflow *w = NULL;
    if (!(rc = read_marking(&mv.c, id, &m, &rev, err)))
        rc = load_net(m, id, reg, &w, err);
    json_decref(m);
    if (!rc)
        rc = cbx__wf_shared_new(&mv.s, rt, w, id, o ? o->max_firings : 0, hold, &mv.ev, err);
    int state = CBX_WORKFLOW_RUNNING;
    uint64_t idle_ms = 0, moves = 0;
    while (!rc) {
        uint64_t due = 0;
        int r = move_once(&mv, &state, &due);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r > 0) {
            idle_ms = 0;
            if (r == 1 && o && o->max_moves && ++moves >= o->max_moves) {
                state = CBX_WORKFLOW_RUNNING;
                break;
            }
            continue;
        }
        uint64_t now = wall_ms();
        int timers = o && o->wait_timers && due;
        if (state != CBX_WORKFLOW_RUNNING && !timers)
            break;
        /* tokens claimed by others (their actions run), or a timer to come: look again soon */
        idle_ms = idle_ms ? (idle_ms * 2 > 100 ? 100 : idle_ms * 2) : 2;
        if (timers && due > now && due - now < idle_ms)
            idle_ms = due - now;
        nap_ms(idle_ms);
    }
    if (!rc && snapshot && (*snapshot = cbx__wf_shared_snapshot(mv.s)) != NULL) {
        json_object_set_new(*snapshot, "state",
                            json_string(cbx_workflow_state_name((cbx_workflow_state)state)));
    }
    if (stats)
        *stats = mv.st;
    cbx__wf_shared_free(mv.s);
    json_decref(mv.ev.held);
    cbx_workflow_free(w);
    conn_close(&mv.c);
    return rc ? rc : state;
}

/* ---- signals and reading ---------------------------------------------------------------------
 */

static int signal_with(conn *c, const cbx_workflow_kv_opts *o, const cbx_registry *reg,
                       const char *id, const char *token, const char *name, const json_t *data,
                       cbx_err *err)
{
    char owner[128];
    owner_of(o, owner, sizeof owner);
    cbx_workflow *w = NULL;
    cbx__wf_shared *s = NULL;
    evbuf ev = {.fn = o ? o->on_event : NULL, .ud = o ? o->ud : NULL};
    int rc = 0;
    for (int first = 1;; first = 0) {
        json_t *m = NULL, *changes = NULL;
        uint64_t rev = 0;
        if ((rc = read_marking(c, id, &m, &rev, err)) != 0)
            break;
        if (first && !(rc = load_net(m, id, reg, &w, err)))
            rc = cbx__wf_shared_new(&s, NULL, w, id, 0, hold, &ev, err);
        if (!rc && (rc = cbx__wf_shared_load(s, m, owner, wall_ms(), err)) != 0)
            rc = not_marking(err, id);
        if (!rc)
            rc = cbx__wf_shared_signal(s, token, name, data, &changes, err);
        if (!rc)
            rc = cbx__wf_marking_apply(m, changes);
        if (!rc)
            rc = write_marking(c, id, m, &rev, err);
        json_decref(changes);
        json_decref(m);
        if (!rc)
            release(&ev);
        drop(&ev);
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
    if (!cbx_workflow_kv_id_ok(id))
        return cbx_err_set(err, -EINVAL, "workflow id '%s': 1 to 39 letters, digits, '-' or '_'",
                           id ? id : "");
    conn c;
    int rc = conn_open(&c, o ? o->url : NULL, err);
    if (!rc)
        rc = signal_with(&c, o, reg, id, token, name, data, err);
    conn_close(&c);
    return rc;
}

int cbx__wf_kv_signal_on(natsConnection *nc, const char *id, const char *token, const char *name,
                         const json_t *data, cbx_err *err)
{
    if (!cbx_workflow_kv_id_ok(id))
        return cbx_err_set(err, -EINVAL, "workflow id '%s': 1 to 39 letters, digits, '-' or '_'",
                           id ? id : "");
    conn c;
    int rc = conn_on(&c, nc, err);
    if (!rc)
        rc = signal_with(&c, NULL, NULL, id, token, name, data, err);
    conn_close(&c);
    return rc;
}

static int show_with(conn *c, const cbx_registry *reg, const char *id, json_t **snapshot,
                     cbx_err *err)
{
    json_t *m = NULL;
    uint64_t rev = 0;
    cbx_workflow *w = NULL;
    cbx__wf_shared *s = NULL;
    int rc;
    if (!(rc = read_marking(c, id, &m, &rev, err)) && !(rc = load_net(m, id, reg, &w, err)) &&
        !(rc = cbx__wf_shared_new(&s, NULL, w, id, 0, NULL, NULL, err))) {
        if (cbx__wf_shared_load(s, m, "", wall_ms(), err) != 0)
            rc = not_marking(err, id);
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
    if (!cbx_workflow_kv_id_ok(id))
        return cbx_err_set(err, -EINVAL, "workflow id '%s': 1 to 39 letters, digits, '-' or '_'",
                           id ? id : "");
    conn c;
    int rc = conn_open(&c, o ? o->url : NULL, err);
    if (!rc)
        rc = show_with(&c, reg, id, snapshot, err);
    conn_close(&c);
    return rc;
}

int cbx__wf_kv_show_on(natsConnection *nc, const char *id, json_t **snapshot, cbx_err *err)
{
    *snapshot = NULL;
    if (!cbx_workflow_kv_id_ok(id))
        return cbx_err_set(err, -EINVAL, "workflow id '%s': 1 to 39 letters, digits, '-' or '_'",
                           id ? id : "");
    conn c;
    int rc = conn_on(&c, nc, err);
    if (!rc)
        rc = show_with(&c, NULL, id, snapshot, err);
    conn_close(&c);
    return rc;
}
