/* What the files that load a workflow share: the loader's state and its helpers for reporting
 * problems at their position (net_load.c), Lua checks (net_load_lua.c), transitions
 * (net_load_trans.c). */
#ifndef CBX_WORKFLOW_NET_LOAD_H
#define CBX_WORKFLOW_NET_LOAD_H

#include "workflow/net_internal.h"

#include <stdint.h>

#define NPOS        ((size_t)-1)
#define PATH_MAX_WF 256

typedef struct loader {
    cbx_workflow *w;
    const cbx_registry *reg;
    cbx_diag *diag;
    size_t problems;
    int fatal;
    cbx_sandbox *sb;    /* the check sandbox: prelude and helpers loaded */
    int helpers_broken; /* then names in rules are not checked: the helpers are unknown */
} loader;

/* A problem at a YAML path's position / at an explicit position (Lua errors inside a string). */
void cbx__wf_prob(loader *L, const char *path, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void cbx__wf_prob_at(loader *L, int line, int col, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* base.key into buf (PATH_MAX_WF bytes); returns buf. */
const char *cbx__wf_pj(char *buf, const char *base, const char *key);
/* runs_on: under node (at path) into *out (flow/runs_on.h); a bad value is a problem there. */
void cbx__wf_parse_runs_on(loader *L, const json_t *node, const char *path, const char *ctx,
                           char **out);
/* "a mapping", "a list", ... for messages. */
const char *cbx__wf_kind(const json_t *v);
int cbx__wf_name_ok(const char *s);
int cbx__wf_in_list(const char *const *list, const char *s);
/* Each key of obj not in known, with a suggestion. */
void cbx__wf_unknown_keys(loader *L, const json_t *obj, const char *const *known, const char *path,
                          const char *ctx);
/* A place or a list of places as indexes (malloc'd; *n of them); unknown names are problems. */
size_t *cbx__wf_place_list(loader *L, const json_t *v, const char *path, const char *ctx,
                           size_t *n);
/* A policy block into *out (0), or its problems at their keys. */
int cbx__wf_make_policy(loader *L, const json_t *block, const char *name, const char *path,
                        const char *ctx, cbx_policy **out);

/* net_load_lua.c: the check sandbox with the prelude and the helpers; the rules. */
void cbx__wf_load_helpers(loader *L, const json_t *v);
void cbx__wf_parse_rules(loader *L, const json_t *v);

/* net_load_trans.c: transition i of the list; then the per-place order of transitions. */
void cbx__wf_parse_transition(loader *L, const json_t *node, size_t i);
void cbx__wf_index_transitions(loader *L);

#endif
