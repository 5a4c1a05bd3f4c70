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
#include "dist/wf_kv_io.h"
#include "workflow/net_shared.h"

#define DEFAULT_LEASE_MS 30000

static void nap_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- moving tokens ---------------------------------------------------------------------------
 */

typedef struct mover {
    cbx__wfkv_conn c;
    const char *id;
    char owner[128];
    char nonce[160];
    uint64_t lease_ms;
    cbx__wf_shared *s;
    cbx_workflow_kv_stats st;
    json_t *ids; /* the claimed tokens, while an action runs */
    int lost;    /* the claim was taken over */
    uint64_t rng;
    cbx__wfkv_events ev;
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
                              (json_int_t)cbx__wfkv_wall_ms() + (json_int_t)mv->lease_ms, "nonce",
                              mv->nonce);
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
        if (cbx__wfkv_read(&mv->c, mv->id, &m, &rev, &e) != 0)
            return; /* the server is away: the commit finds out */
        if (!still_mine(mv, m)) {
            mv->lost = 1;
        } else if (set_claims(mv, m) == 0) {
            int rc = cbx__wfkv_write(&mv->c, mv->id, m, &rev, &e);
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
        int rc = cbx__wfkv_read(&mv->c, mv->id, &m, &rev, mv->err);
        if (rc)
            return rc;
        if (!still_mine(mv, m)) {
            json_decref(m);
            mv->st.claims_lost++;
            return 1;
        }
        rc = cbx__wf_marking_apply(m, changes);
        if (!rc)
            rc = cbx__wfkv_write(&mv->c, mv->id, m, &rev, mv->err);
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
    int rc = cbx__wfkv_read(&mv->c, mv->id, &m, &rev, mv->err);
    if (rc)
        return rc;
    rc = cbx__wf_shared_load(mv->s, m, mv->owner, cbx__wfkv_wall_ms(), mv->err);
    if (rc) {
        json_decref(m);
        return cbx__wfkv_not_marking(mv->err, mv->id);
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
            cbx__wfkv_drop(&mv->ev);
            return 0;
        }
        if (!rc)
            rc = cbx__wf_marking_apply(m, changes);
        if (!rc)
            rc = cbx__wfkv_write(&mv->c, mv->id, m, &rev, mv->err);
        if (rc == -EAGAIN)
            mv->st.cas_conflicts++;
        if (!rc) {
            count(mv, changes);
            cbx__wfkv_release(&mv->ev);
        } else {
            cbx__wfkv_drop(&mv->ev);
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
        rc = cbx__wfkv_write(&mv->c, mv->id, m, &rev, mv->err);
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
            cbx__wfkv_release(&mv->ev);
        } else if (rc == 1) {
            rc = 0; /* another process took the tokens over: what was done here is dropped */
            moved = 2;
        }
    }
    cbx__wfkv_drop(&mv->ev);
    json_decref(changes);
    mv->ids = NULL;
    json_decref(ids);
    return rc < 0 ? rc : moved;
}

int cbx_workflow_kv_run(cbx_runtime *rt, const cbx_registry *reg, const char *id,
                        const cbx_workflow_kv_opts *o, cbx_workflow_kv_stats *stats,
                        json_t **snapshot, cbx_err *err)
{
    if (snapshot)
        *snapshot = NULL;
    if (!rt)
        return cbx_err_set(err, -EINVAL, "workflow '%s': no runtime to run its actions",
                           id ? id : "");
    int bad = cbx__wfkv_check_id(id, err);
    if (bad)
        return bad;
    mover mv;
    memset(&mv, 0, sizeof mv);
    mv.id = id;
    mv.err = err;
    mv.ev.fn = o ? o->on_event : NULL;
    mv.ev.ud = o ? o->ud : NULL;
    mv.lease_ms = o && o->lease_ms ? o->lease_ms : DEFAULT_LEASE_MS;
    cbx__wfkv_owner(o, mv.owner, sizeof mv.owner);
    mv.rng =
        (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ cbx__wfkv_wall_ms() ^ (uint64_t)(uintptr_t)&mv;
    if (!mv.rng)
        mv.rng = 1;
    int rc = cbx__wfkv_open(&mv.c, o ? o->url : NULL, err);
    if (rc)
        return rc;
    json_t *m = NULL;
    uint64_t rev = 0;
    cbx_workflow *w = NULL;
    if (!(rc = cbx__wfkv_read(&mv.c, id, &m, &rev, err)))
        rc = cbx__wfkv_load_net(m, id, reg, &w, err);
    json_decref(m);
    if (!rc)
        rc = cbx__wf_shared_new(&mv.s, rt, w, id, o ? o->max_firings : 0, cbx__wfkv_hold, &mv.ev,
                                err);
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
        uint64_t now = cbx__wfkv_wall_ms();
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
    cbx__wfkv_close(&mv.c);
    return rc ? rc : state;
}
