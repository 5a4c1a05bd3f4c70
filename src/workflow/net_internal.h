/* The loaded workflow and a run's tokens, shared by the files of src/workflow/. */
#ifndef CBX_WORKFLOW_NET_INTERNAL_H
#define CBX_WORKFLOW_NET_INTERNAL_H

#include "cbx/lua_sandbox.h"
#include "cbx/policy.h"
#include "cbx/workflow.h"
#include "cbx/yaml.h"

#include <stdint.h>

#define CBX__WF_ID_MAX 64

typedef enum { WF_TRIGGER_AUTO, WF_TRIGGER_SIGNAL } wf_trigger;

typedef struct cbx__wf_rule {
    char *name, *desc, *when;
    int line, col; /* of when */
    char **refs;   /* token.a.b paths the rule (or the helpers it calls) reads, for explanations */
    size_t nrefs;
} cbx__wf_rule;

typedef struct cbx__wf_trans {
    char *name;
    size_t *from, nfrom; /* place indexes */
    size_t *to, nto;
    int priority;
    int join_any;
    wf_trigger trigger;
    char *signal;      /* the signal's name when trigger is signal */
    uint64_t after_ms; /* > 0: fires once the token has been in its place this long */
    char **v_all, **v_any;
    size_t nv_all, nv_any;
    size_t *r_all, *r_any; /* rule indexes */
    size_t nr_all, nr_any;
    char *executor;     /* NULL: a pure guard */
    json_t *config;     /* the action's config, templated over token, run and transition */
    json_t *outputs;    /* the action's outputs: mapping, templated over outputs and token; NULL =
                           the executor's outputs merge as they are */
    cbx_policy *policy; /* borrowed from the named policies, or owned (policy_owned) */
    int policy_owned;
    int line, col;
    char *runs_on; /* the action's runs_on (flow/runs_on.h): a workers' queue, "" = here; NULL =
                      the workflow's */
} cbx__wf_trans;

struct cbx_workflow {
    cbx_yaml_doc doc;
    char *source; /* the text, as loaded (journaled with each run) */
    size_t source_len;
    char *name;
    char *helpers; /* Lua, or NULL */
    int helpers_line, helpers_col;
    char **places;
    size_t nplaces;
    uint8_t *final, *start;
    int *pline, *pcol;
    cbx__wf_rule *rules;
    size_t nrules;
    cbx__wf_trans *trans;
    size_t ntrans;
    size_t **out_of; /* per place, the transitions taking from it in the order they are tried */
    size_t *nout_of;
    char **pol_names;
    cbx_policy **pols;
    size_t npols;
    uint32_t max_firings;
    uint64_t rule_instructions;
    size_t rule_memory;
    char *runs_on; /* the workflow's runs_on: a workers' queue, "" or NULL = here */
};

/* Index of a place / rule / transition by name, or (size_t)-1. */
size_t cbx__wf_place(const cbx_workflow *w, const char *name);
size_t cbx__wf_rule_index(const cbx_workflow *w, const char *name);
size_t cbx__wf_trans_index(const cbx_workflow *w, const char *name);

/* The Lua every rule sandbox runs first: present(v). */
extern const char cbx__wf_prelude[];

/* ---- rules ---------------------------------------------------------------------------------- */

/* A sandbox with the prelude (present()) and the workflow's helpers loaded, and each rule
 * compiled into a function kept in the registry. */
typedef struct cbx__wf_rules {
    cbx_sandbox *sb;
    int *refs; /* per rule */
    size_t n;
} cbx__wf_rules;

int cbx__wf_rules_open(cbx__wf_rules *R, const cbx_workflow *w, cbx_err *err);
void cbx__wf_rules_close(cbx__wf_rules *R);

/* Evaluate a transition's rules on data. *ok is 1 when they hold. verdicts (if not NULL) gets an
 * array [{rule, verdict, values}] of every evaluation (new reference); why (len bytes) the
 * explanation of the first failure ("rule X is false (token.y = 0.62)"). Returns 0 or the
 * sandbox's error (a rule that raises counts as false, with its message, and returns 0). */
int cbx__wf_rules_eval(cbx__wf_rules *R, const cbx_workflow *w, const cbx__wf_trans *t,
                       const json_t *data, int *ok, json_t **verdicts, char *why, size_t len);

/* Fill the rule's refs from its when text and the helpers it calls. */
int cbx__wf_rule_refs(const cbx_workflow *w, cbx__wf_rule *r);

/* 1 when the field is present in data: not missing, not null, not "", [] or {}. path may be
 * dotted ("a.b"). */
int cbx__wf_present(const json_t *data, const char *path);

/* ---- tokens --------------------------------------------------------------------------------- */

typedef enum {
    WF_TOK_ACTIVE,
    WF_TOK_FAILED,
    WF_TOK_GONE, /* consumed by a join */
} wf_tok_life;

typedef struct wf_signal {
    char *name;
    json_t *data;
    struct wf_signal *next;
} wf_signal;

typedef struct wf_hist {
    uint64_t ms;
    struct wf_hist *next;
    char text[]; /* one line */
} wf_hist;

typedef struct wf_token {
    char *id;
    char *family;
    size_t place;
    json_t *data;
    uint64_t entered_ms;
    uint32_t firings, nchild, epoch;
    uint8_t busy, life, queued;
    uint64_t *tried; /* bit per transition, for this visit of the place; NULL = none */
    wf_signal *signals;
    wf_hist *hist, *hist_tail;
    struct wf_token *prev, *next; /* in its place's list */
    struct wf_token *qnext;       /* in the run's queue */
    char *why;                    /* the last blocked explanation */
} wf_token;

/* ---- the run -------------------------------------------------------------------------------- */

typedef struct wf_place_list {
    wf_token *head, *tail;
    size_t n;
} wf_place_list;

typedef struct wf_pending {
    char *key;
    int ok;
    json_t *outputs;
    char *error;
    struct wf_pending *next;
} wf_pending;

struct cbx_workflow_run {
    cbx_runtime *rt; /* NULL when only rebuilt for show */
    cbx_workflow *w;
    cbx_workflow *owned; /* resume: the workflow loaded from the journal */
    char id[40];
    cbx_workflow_run_opts o;
    cbx__wf_rules rules;
    wf_place_list *at; /* per place */
    wf_token **tab;    /* by id, open addressing */
    size_t tabcap, ntok;
    wf_token *qhead, *qtail;
    uint64_t *fired; /* per transition */
    uint64_t seq;    /* the last event's number */
    uint64_t next_id;
    size_t inflight;
    int failed_journal;
    char journal_error[256];
    int replaying;
    wf_pending *pending; /* action results journaled without their firing (resume) */
    void *timer;         /* uv_timer_t *, made on first use */
    int timer_armed;
    int stepping;
    struct cbx__wf_journal *jr; /* NULL without a journal */
    struct cbx_template_env *tpl;
    struct wf_firing *firings;   /* in flight */
    uint64_t next_due;           /* the earliest pending after: timer (wall clock ms), 0 = none */
    const char *journaled_state; /* cbx_workflow_advance: the state last written, static */
    int one_hop; /* a token that fires is not queued again: one firing per step (net_shared.c) */
};

wf_token *cbx__wf_token_find(const cbx_workflow_run *r, const char *id);
int cbx__wf_token_insert(cbx_workflow_run *r, wf_token *t);
void cbx__wf_token_free(wf_token *t);
void cbx__wf_place_put(cbx_workflow_run *r, wf_token *t, size_t place);
void cbx__wf_place_take(cbx_workflow_run *r, wf_token *t);
void cbx__wf_hist(wf_token *t, uint64_t ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cbx__wf_enqueue(cbx_workflow_run *r, wf_token *t);
uint64_t cbx__wf_now_ms(void);
/* snprintf, for text that may be cut on purpose (names and messages into fixed buffers). */
int cbx__wf_textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Merge src's members into dst (top-level keys of src replace). */
int cbx__wf_merge(json_t *dst, const json_t *src);

/* Apply an event (from the journal or made now) to the run's state. */
int cbx__wf_apply(cbx_workflow_run *r, const char *kind, json_t *ev, cbx_err *err);

/* A firing in progress: its tokens (busy), the merged data, the signal it uses. */
typedef struct wf_firing {
    cbx_workflow_run *r; /* NULL once the run was freed while the action ran */
    size_t ti;
    wf_token **toks;
    size_t ntoks;
    json_t *base; /* the merged data, with the signal's */
    char *signal;
    char key[CBX__WF_ID_MAX + 96];
    cbx_execution *ex;
    int done;
    int submitting; /* inside cbx_runtime_submit: action_done leaves freeing f to start_action */
    struct wf_firing *next, *prev;
    char traceparent[56]; /* the firing's span, its action's parent; "" = not tracing */
    uint64_t trace_t0;    /* monotonic ns at its start */
} wf_firing;

/* Journal an event (when the run has a journal), then apply it; body is consumed. */
int cbx__wf_event(cbx_workflow_run *r, const char *kind, json_t *body);
/* The tokens' ids as a JSON array (new reference). */
json_t *cbx__wf_token_ids(wf_token **toks, size_t n);
void cbx__wf_firing_free(wf_firing *f);
/* The firing did not move its tokens: why, and the rules' verdicts (borrowed, may be NULL). */
void cbx__wf_block(cbx_workflow_run *r, wf_firing *f, const char *why, json_t *verdicts);
/* The action's result (ok, its outputs to merge, or its error): rules, then move or block. */
void cbx__wf_commit(cbx_workflow_run *r, wf_firing *f, int ok, const json_t *outputs,
                    const char *error);
/* Render the action and submit it to the runtime; it ends in cbx__wf_commit and frees f. */
void cbx__wf_start_action(cbx_workflow_run *r, wf_firing *f);

/* ---- the journal ------------------------------------------------------------------------ */

typedef struct cbx__wf_journal cbx__wf_journal;

int cbx__wf_journal_open(cbx__wf_journal **out, cbx_journal *j, cbx_err *err);
void cbx__wf_journal_close(cbx__wf_journal *jr);
int cbx__wf_journal_run(cbx__wf_journal *jr, const char *run_id, const cbx_workflow *w,
                        cbx_err *err);
/* Append event number seq of kind with body (borrowed). */
int cbx__wf_journal_event(cbx__wf_journal *jr, const char *run_id, uint64_t seq, const char *kind,
                          const json_t *body, cbx_err *err);
int cbx__wf_journal_state(cbx__wf_journal *jr, const char *run_id, const char *state, cbx_err *err);
/* The run's source and file, and its events [[seq, kind, body], ...] in order (new refs).
 * for_update: -EBUSY when another process that is alive is running it. */
int cbx__wf_journal_read(cbx_journal *j, const char *run_id, int for_update, char **source,
                         char **file, json_t **events, cbx_err *err);

/* A run of w on rt (NULL: nothing runs) with id (NULL = a new UUIDv7), without a journal. */
int cbx__wf_run_new(cbx_workflow_run **out, cbx_runtime *rt, cbx_workflow *w,
                    const cbx_workflow_run_opts *o, const char *id, cbx_err *err);

/* Replay journaled events into r (no action runs). */
int cbx__wf_replay(cbx_workflow_run *r, json_t *events, cbx_err *err);
/* A run object with no runtime (for show) or with one (resume), built from the journal. */
int cbx__wf_run_rebuild(cbx_workflow_run **out, cbx_runtime *rt, cbx_journal *j, const char *run_id,
                        const cbx_registry *reg, const cbx_workflow_run_opts *o, cbx_err *err);

/* A firing's span (net_trace.c): begin names it (f->traceparent, when the process traces), end
 * records it with the action's result (ok, error, the execution's id; NULL = none). */
void cbx__wf_trace_begin(cbx_workflow_run *r, wf_firing *f);
void cbx__wf_trace_end(cbx_workflow_run *r, wf_firing *f, int ok, const char *error,
                       const char *execution);

#endif
