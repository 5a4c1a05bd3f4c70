/* cbx/template.h - {{ expr }} templates and conditions, evaluated as sandboxed Lua 5.4.
 *
 * Flow files reference inputs and the outputs of other steps with templates:
 *
 *   url: "{{ inputs.url }}"                      a whole-value template keeps its JSON type
 *   msg: "{{ steps.words.outputs.stdout }} words"  inside longer text it is interpolated
 *   when: "tonumber(steps.words.outputs.stdout) > 0"   a condition is a bare expression
 *
 * Expressions see a context object as globals (inputs, steps, item, env: whatever the caller
 * puts in it) and helpers: json(v) (encode as JSON text), len(v) (length of a string, array
 * or object), default(v, d) (d when v is nil or null), host(url) (the host of a URL), plus the
 * safe parts of string, table, math and utf8. There is no io, os, require, load, dofile or
 * debug; instruction and memory limits stop runaway expressions. JSON null is the Lua value
 * `null` (a sentinel); a missing key is nil.
 *
 * Not thread-safe: use one env per thread.
 */
#ifndef CBX_TEMPLATE_H
#define CBX_TEMPLATE_H

#include <jansson.h>
#include <stdint.h>

#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_template_env cbx_template_env;

typedef struct cbx_template_opts {
    const char *const *env_allow; /* NULL-terminated names of environment variables that the
                                     `env` table exposes (globs like "APP_*" allowed); NULL =
                                     none. The caller adds env to the context with
                                     cbx_template_env_vars. */
    uint64_t max_instructions;    /* per evaluation; 0 = 1000000. Pattern matching counts
                                     too (eight matching steps per instruction), so a
                                     backtracking string.find stops here instead of spinning
                                     inside one C call (cbx/lua_sandbox.h). */
    uint64_t max_memory_bytes;    /* for the sandbox; 0 = 64 MiB */
} cbx_template_opts;

/* The environment's Lua state (its sandbox) is made when the first expression that needs Lua
 * is evaluated, not here: rendering values without expressions costs no state. 0 or -ENOMEM;
 * the sandbox's errors come from that first evaluation. */
int cbx_template_env_new(cbx_template_env **out, const cbx_template_opts *o, cbx_err *err);
void cbx_template_env_free(cbx_template_env *e);

/* The allowed environment variables as an object {NAME: value} (new reference). */
json_t *cbx_template_env_vars(const cbx_template_env *e);

/* 1 if value (a string, or any string inside an array/object) contains "{{". */
int cbx_template_has(const json_t *value);

/* Render value against ctx (borrowed object): a copy (new reference in *out) where every string
 * that is exactly one "{{ expr }}" (spaces around allowed) becomes the expression's JSON value,
 * and every other string with templates has each one replaced by its text (strings as they are,
 * numbers and booleans in JSON form, null as "", tables as JSON). Errors: CBX_EPARSE (bad
 * syntax: err->msg quotes the template), CBX_ESANDBOX (a forbidden call, the instruction or
 * memory limit), CBX_EFAILED (a runtime error, e.g. indexing nil: Lua's message). err->where is
 * the path of the string inside value ("headers.Authorization", "argv[2]"). */
int cbx_template_render(cbx_template_env *e, const json_t *value, const json_t *ctx, json_t **out,
                        cbx_err *err);

/* Evaluate a bare expression (no braces) to JSON (new reference), e.g. a foreach list. */
int cbx_template_eval(cbx_template_env *e, const char *expr, const json_t *ctx, json_t **out,
                      cbx_err *err);

/* Evaluate a bare expression as a condition: *truth is 0 for false, nil and null, else 1. */
int cbx_template_truthy(cbx_template_env *e, const char *expr, const json_t *ctx, int *truth,
                        cbx_err *err);

/* Check the syntax of every template in value, and of a bare expression; no evaluation. */
int cbx_template_check(const json_t *value, cbx_err *err);
int cbx_template_check_expr(const char *expr, cbx_err *err);

/* The names a value's templates (or a bare expression) refer to, found by a syntactic scan:
 * appends to *inputs the distinct X of every `inputs.X` and to *steps the distinct Y of every
 * `steps.Y` (arrays of strings, created when NULL). Used to check references and to infer
 * dependencies before anything runs. */
int cbx_template_refs(const json_t *value, json_t **inputs, json_t **steps);
int cbx_template_refs_expr(const char *expr, json_t **inputs, json_t **steps);

#ifdef __cplusplus
}
#endif
#endif
