/* cbx/yaml.h - YAML (and JSON) files as jansson values, remembering where each value came from.
 *
 * Flows, workflows and policy files are YAML. Loading turns a document into a json_t tree and
 * keeps, beside it, the line and column of every node by its path, so that a later check can
 * say "flow.yaml:12:9: step 'fetch': unknown executor 'htp'".
 *
 * Scalars follow the YAML 1.2 core schema: null/~/empty is null, true/false are booleans,
 * decimal/0x/0o integers, decimal floats (.inf/.nan stay text: JSON has no such numbers),
 * everything else a string; quoted scalars are always strings (tags such as !!str are not
 * looked at: quote a value to make it a string). Duplicate keys are an error. Aliases are expanded,
 * with a limit on the nodes they may produce (a "billion laughs" document is refused).
 *
 * Paths name nodes from the root: keys joined with '.', sequence items as [i], e.g.
 * "steps[2].config.url"; the root is "".
 */
#ifndef CBX_YAML_H
#define CBX_YAML_H

#include <jansson.h>
#include <stddef.h>

#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_yaml_doc {
    json_t *root;      /* owned; NULL for an empty document */
    json_t *positions; /* owned: {path: [line, col]} (1-based) */
    char *file;        /* owned: the name used in messages */
} cbx_yaml_doc;

/* Load the first document of a file. Errors (CBX_EPARSE, or -errno for the file) fill err with
 * where = the file and line/col of the problem. *doc is cleared first; release with
 * cbx_yaml_doc_clear. */
int cbx_yaml_load_file(const char *path, cbx_yaml_doc *doc, cbx_err *err);

/* The same from memory; name is used in messages (copied). */
int cbx_yaml_load_string(const char *text, size_t len, const char *name, cbx_yaml_doc *doc,
                         cbx_err *err);

/* Release what doc holds and zero it. NULL accepted. */
void cbx_yaml_doc_clear(cbx_yaml_doc *doc);

/* The position of path, or of its nearest ancestor that has one; 0 when found, -ENOENT when not
 * even the root has one (line and col are then 0). */
int cbx_yaml_where(const cbx_yaml_doc *doc, const char *path, int *line, int *col);

#ifdef __cplusplus
}
#endif
#endif
