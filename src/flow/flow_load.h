/* Shared by the flow parser's files: flow_load.c (the file into a cbx_flow, shapes and values),
 * flow_check.c (names, executors, templates, references, dependencies, cycles) and
 * flow_inputs.c (input values against their declarations). */
#ifndef CBX_FLOW_LOAD_H
#define CBX_FLOW_LOAD_H

#include "flow/flow_internal.h"

#include "cbx/diag.h"
#include "cbx/registry.h"

#include <stddef.h>

/* One load: the problems found so far and the chain of files being loaded (sub-flows). */
typedef struct cbx__flow_loader {
    const cbx_registry *reg; /* borrowed; NULL = no executor checks */
    cbx_diag *diag;          /* every problem goes here */
    size_t problems;         /* found so far, also those past CBX__FLOW_MAX_PROBLEMS */
    int fatal;               /* the worst code that is not a problem in the file (-ENOMEM), or 0 */
    char **chain;            /* the files being loaded, outermost first (borrowed strings) */
    size_t depth;            /* entries in chain */
} cbx__flow_loader;

#define CBX__FLOW_MAX_DEPTH 16 /* sub-flows within sub-flows */
#define CBX__FLOW_PATH_MAX  512
/* Problems kept per load (each takes about 800 bytes, and a file of "- 1" lines would make
 * millions): past them, the load stops reading steps and skips the checks across the flow. */
#define CBX__FLOW_MAX_PROBLEMS 1000

/* Append a problem at the position of path (a node path, see cbx/yaml.h) in doc: where = the
 * doc's file, line and col of the node or of its nearest ancestor that has one. */
void cbx__flow_problem(cbx__flow_loader *L, const cbx_yaml_doc *doc, const char *path, int code,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The candidate closest to word (edit distance), when it is close enough to suggest; or NULL.
 * cands is NULL-terminated. */
const char *cbx__flow_suggest(const char *word, const char *const *cands);

/* The checks across the loaded structure of f (steps as in f->doc): duplicate names, executors
 * and their literal parameters, templates (syntax, references to inputs and steps), needs,
 * dependencies, cycles and the topological order. Problems go to L. */
void cbx__flow_check(cbx__flow_loader *L, cbx_flow *f);

/* Check one value against an input's declaration (type and enum). Returns 0, or
 * CBX_EINVAL_CONFIG with what was wrong in msg ("expected integer, got string"). */
int cbx__flow_input_check(const cbx__flow_input *in, const json_t *v, char *msg, size_t len);

#endif
