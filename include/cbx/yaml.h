/* cbx/yaml.h - YAML (and JSON) files as jansson values, remembering where each value came from.
 *
 * Flows, workflows and policy files are YAML. Loading turns a document into a json_t tree and
 * keeps, beside it, the line and column of every node by its path, so that a later check can
 * say "flow.yaml:12:9: step 'fetch': unknown executor 'htp'".
 *
 * Scalars follow the YAML 1.2 core schema: null/~/empty is null, true/false are booleans,
 * decimal/0x/0o integers, decimal floats (.inf/.nan stay text: JSON has no such numbers),
 * everything else a string; quoted scalars are always strings (tags such as !!str are not
 * looked at: quote a value to make it a string). Duplicate keys are an error, and so is a second
 * document (a "---" after the first one).
 *
 * Hostile input is refused early, with the position where the limit was passed:
 * - the text: at most cbx_yaml_max_bytes() (64 MiB unless changed; a file is not read past it,
 *   so /dev/zero or an endless pipe costs that much and no more);
 * - nesting: 512 levels, checked as the parser goes down;
 * - aliases: the nodes they add (an alias adds as many as its anchor's node has, counted as
 *   expanded) at most 1000000 in all, so a "billion laughs" document is refused. Nodes written
 *   out in the text are not counted: a big file without aliases is bounded by its size alone.
 *   An alias shares its anchor's value (json_incref), so what it adds costs no memory: treat the
 *   tree as read-only.
 *
 * Paths name nodes from the root: keys joined with '.', sequence items as [i], e.g.
 * "steps[2].config.url"; the root is "". Positions are kept per node (about 16 bytes each), not
 * per path.
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
    json_t *root;                   /* owned; NULL for an empty document */
    struct cbx__yaml_pos *position; /* owned: where each node was written (see cbx_yaml_where) */
    char *file;                     /* owned: the name used in messages */
} cbx_yaml_doc;

/* The default limit on a document's size in bytes (64 MiB). */
#define CBX_YAML_MAX_BYTES_DEFAULT ((size_t)64 << 20)

/* The limit on the size of a document, process-wide: cbx_yaml_max_bytes() gives it,
 * cbx_yaml_set_max_bytes(n) sets it (0 restores the default). Set it before loading; it is read
 * without a lock. The cbx CLI sets it from CBX_MAX_INPUT. */
size_t cbx_yaml_max_bytes(void);
void cbx_yaml_set_max_bytes(size_t n);

/* Load the one document of a file (an empty file gives root NULL). Errors fill err with where =
 * the file and line/col of the problem: CBX_EPARSE for the text (syntax, a duplicate key, a second
 * document, nesting or aliases past the limits, text that is not UTF-8), -EFBIG for a file over
 * cbx_yaml_max_bytes(), -ENOMEM, or -errno for the file. *doc is cleared first; release with
 * cbx_yaml_doc_clear. */
int cbx_yaml_load_file(const char *path, cbx_yaml_doc *doc, cbx_err *err);

/* The same from memory (len bytes of text, borrowed); name is used in messages (copied). */
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
