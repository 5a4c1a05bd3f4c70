/* Shared by the template files: template.c (environments, evaluation, rendering),
 * template_refs.c (scanning, references, syntax checks) and template_helpers.c (the helper
 * functions and JSON text). */
#ifndef CBX_TEMPLATE_INTERNAL_H
#define CBX_TEMPLATE_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "cbx/err.h"
#include "cbx/template.h"

typedef struct lua_State lua_State;

/* ---- scanning (template_refs.c) -------------------------------------------------------------- */

/* One template in a string: s[open, close) is "{{ ... }}" as written, s[expr, expr_end) the
 * expression between the braces. */
typedef struct cbx__tpl_span {
    size_t open, expr, expr_end, close;
} cbx__tpl_span;

enum {
    CBX__TPL_UNCLOSED = 1, /* "{{" without a closing "}}" */
    CBX__TPL_OPEN_STRING,  /* a quote with no closing quote before the end of the text */
    CBX__TPL_OPEN_LONG,    /* a long string or comment ([[ or --[[) that never ends */
};

/* The next template that starts at or after from. Returns 1 (found, *sp filled), 0 (none), or
 * the negative of a CBX__TPL_* reason (sp->open set, the rest of the text is the template). The
 * template ends at the first "}}" outside Lua strings and comments and outside braces opened
 * inside it, so that "{{ {a = {1}} }}" is one template. */
int cbx__tpl_next(const char *s, size_t len, size_t from, cbx__tpl_span *sp);

/* 1 if s is exactly one template with only whitespace around it (*sp filled). */
int cbx__tpl_whole(const char *s, size_t len, cbx__tpl_span *sp);

/* 1 if s[0, len) holds only whitespace. */
int cbx__tpl_blank(const char *s, size_t len);

/* A plain path: a name, then .name, [integer] or ['string'] steps ({{ steps.fetch.outputs.body }},
 * {{ inputs.list[2] }}). */
#define CBX__TPL_PATH_MAX 16

typedef struct cbx__tpl_path_step {
    const char *k; /* a name or string key, or NULL for an index */
    size_t kn;
    long long idx;
} cbx__tpl_path_step;

/* Parse s[0, len) as a plain path (at most CBX__TPL_PATH_MAX steps, the first a name that is not
 * a reserved word): the number of steps, or 0 when it is not one. A plain path is valid Lua. */
size_t cbx__tpl_parse_path(const char *s, size_t len, cbx__tpl_path_step *st);

/* Every `steps.X.outputs.Y` (or `steps["X"]["outputs"]["Y"]`) in the expression s[0, len), by
 * a syntactic scan: appends the distinct pairs [X, Y] to *pairs (an array, created when NULL).
 * 0 or -ENOMEM. */
int cbx__tpl_output_refs(const char *s, size_t len, json_t **pairs);

/* The message of a scan failure (a CBX__TPL_* reason). */
const char *cbx__tpl_scan_reason(int reason);

/* Fill err (when not NULL) with code, where = path (NULL = ""), and the message
 * "QUOTE: msg", where QUOTE is src[0, len) as written (a template with its braces) or, when
 * bare, the expression in double quotes; long sources are shortened, line breaks become
 * spaces. Returns code. */
int cbx__tpl_fail(cbx_err *err, int code, const char *path, const char *src, size_t len, int bare,
                  const char *msg);

/* Append ".key" (or ["key"] for keys that would not read well after a dot) or "[i]" to a
 * path of capacity cap; the result is cut at cap. Returns the previous length, to restore. */
size_t cbx__tpl_path_key(char *path, size_t cap, const char *key, size_t klen);
size_t cbx__tpl_path_index(char *path, size_t cap, size_t i);

/* Strip a leading "chunk:LINE: " position from a Lua message. */
const char *cbx__tpl_strip_position(const char *msg);

/* ---- text (template_helpers.c) --------------------------------------------------------------- */

/* A growable byte buffer with a size limit. Functions return 0, or -1 once the buffer failed
 * (oom: out of memory, over: the limit was reached); a failed buffer ignores later writes. */
typedef struct cbx__tpl_buf {
    char *p;
    size_t len, cap, limit;
    int oom, over;
} cbx__tpl_buf;

int cbx__tpl_buf_add(cbx__tpl_buf *b, const char *s, size_t n);
void cbx__tpl_buf_free(cbx__tpl_buf *b);

/* The shortest text of a finite double that reads back as the same double, with ".0" added
 * when it would otherwise look like an integer ("2.0", "0.1", "1e+20"). cap >= 32. */
void cbx__tpl_fmt_real(double d, char *buf, size_t cap);

/* Append v as compact JSON (keys in the object's order, reals as cbx__tpl_fmt_real). */
int cbx__tpl_json_write(cbx__tpl_buf *b, const json_t *v);

/* 1 if s[0, n) is valid UTF-8. */
int cbx__tpl_utf8_valid(const char *s, size_t n);

/* Push a table holding the helper functions (json, parse_json, len, default, host, trim,
 * split, join, contains, starts_with, ends_with, type). Runs in protected mode. */
void cbx__tpl_helpers_push(lua_State *L, cbx_template_env *e);

/* ---- values (template.c), for the helpers ---------------------------------------------------- */

/* 1 if the value at idx is a context value (a read-only view of part of the context). */
int cbx__tpl_is_context(cbx_template_env *e, lua_State *L, int idx);

/* The JSON value behind the context value at idx, or NULL when idx is not one. Raises a Lua
 * error for a context value kept from an earlier call. */
const json_t *cbx__tpl_context_value(cbx_template_env *e, lua_State *L, int idx);

/* 1 if the table at idx is marked as an array (by array() or by the helpers). */
int cbx__tpl_is_marked(lua_State *L, int idx);

/* Mark the table on top of the stack as an array. */
void cbx__tpl_mark_array(lua_State *L);

/* Convert the Lua value at idx to JSON (*out, new reference) under the template rules. Never
 * raises. Returns 0, CBX_EFAILED (a value with no JSON form) or CBX_ESANDBOX (too large), with
 * the reason in msg. */
int cbx__tpl_to_json(cbx_template_env *e, lua_State *L, int idx, json_t **out, char *msg,
                     size_t cap);

/* Append the text of the Lua value at idx as interpolation writes it: strings as they are,
 * integers, reals (cbx__tpl_fmt_real), true/false, nil and null as nothing, tables as compact
 * JSON. Never raises. Returns 0 or a code as cbx__tpl_to_json, with the reason in msg. */
int cbx__tpl_append_text(cbx_template_env *e, lua_State *L, int idx, cbx__tpl_buf *b, char *msg,
                         size_t cap);

/* The largest text or converted value a call may produce (the memory limit). */
size_t cbx__tpl_output_limit(const cbx_template_env *e);

/* Push buf[0, len) as a Lua string and free buf, also when pushing fails (then the memory error
 * is raised after buf is freed). */
void cbx__tpl_push_owned(lua_State *L, char *buf, size_t len);

/* Push v converted to Lua (arrays marked, null as the sentinel) and release v (one reference),
 * also when the conversion fails (then the error is raised after v is released). */
void cbx__tpl_push_json_owned(lua_State *L, json_t *v);

/* The names a template can call (NULL-terminated; template_calls.c). */
const char *const *cbx__tpl_known_calls(void);

/* The first function that the expression s[0, len) calls by a name a template cannot call
 * (neither a helper nor a global; extra: more names allowed, NULL-terminated, or NULL): 1 with
 * *name, *n set (pointing into s), else 0. Method calls (`s:upper()`) and fields
 * (`string.format(...)`) are not looked at. */
int cbx__tpl_unknown_call(const char *s, size_t len, const char *const *extra, const char **name,
                          size_t *n);

#endif
