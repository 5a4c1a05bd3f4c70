/* cbx/lua_executor.h - executor types written in Lua.
 *
 * A Lua file defines one executor type with the `executor` function:
 *
 *   return executor {
 *     name = "word_count",                       -- [a-z0-9_.-]+, required
 *     summary = "Counts the words of a text",    -- one line
 *     params = {                                 -- a map (sorted by name) or a list of
 *       text = {type = "string", required = true, description = "the text"},   -- {name = ...}
 *       min  = {type = "integer", default = 0, min = 0},
 *     },
 *     validate = function(p) ... end,            -- optional
 *     before   = function(p, ctx) ... end,       -- optional
 *     run      = function(p, ctx) ... end,       -- required
 *     after    = function(p, outputs, info) ... end,  -- optional
 *     limits   = {instructions = 1e8, memory = 32 * 1024 * 1024},          -- optional
 *   }
 *
 * A parameter has: type ("string", "integer", "number", "boolean", "array", "object", "any";
 * required), required, default (any Lua value that converts to JSON), description, enum (a list
 * of strings), min and max (a value, or a length for strings, arrays and objects), secret
 * (never journaled or shown), items (the element type of an array). Unknown fields anywhere are
 * errors.
 *
 * The functions (p: the parameters, validated, with defaults applied; ctx: {attempt = n,
 * execution_id = "...", and when the execution has them run_id, step, metadata, tmpdir - see
 * cbx_task_run_id in cbx/executor.h}):
 *   validate(p)   when a request is submitted. Return nothing to accept; a string, or
 *                 nil/false and a string, to refuse with that message; or a table
 *                 {param = "message", ...} to refuse naming the parameters.
 *   before(p, ctx)  before each attempt (on the loop thread). Return nothing, or a message (as
 *                 for validate) to fail the attempt without running it.
 *   run(p, ctx)   the work, on the thread pool. Return the outputs (any value that converts to
 *                 JSON), or nil and an error message for a failed attempt; a third value, a
 *                 table, is added to the metadata, and its number `quality` (0..1) becomes the
 *                 attempt's quality. A Lua error fails the attempt with its message and line.
 *   after(p, outputs, info)  after each attempt, even a failed or timed-out one (loop thread);
 *                 info = {outcome = "success"|"error"|"timeout"|..., error = "...", attempt =
 *                 n, quality = q}. On a success it may return new outputs, or nil and a message
 *                 to turn the attempt into a failure; otherwise what it returns is ignored.
 *
 * Each attempt runs in a fresh sandbox (cbx/lua_sandbox.h) loaded from the file's text, kept in
 * memory: attempts run in parallel on pool threads; before, run and after of one attempt share
 * the state (a value kept in a local of the file is seen by all three). validate, before and
 * after get the default instruction budget (10 million) unless limits.instructions is set; run
 * gets limits.instructions, or no budget: the attempt's timeout stops it, through the
 * instruction hook, which polls the cancel flag. limits.memory bounds every state (default
 * 64 MiB). When run is still running at a timeout, after runs in a sandbox of its own.
 */
#ifndef CBX_LUA_EXECUTOR_H
#define CBX_LUA_EXECUTOR_H

#include <stddef.h>

#include "cbx/err.h"
#include "cbx/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Load the executor type defined by the Lua file at path and register it in r (the type, its
 * schema and the file's text are owned by the registry from then on). Errors:
 *   -errno          the file cannot be read (err->where is the path)
 *   CBX_EPARSE      a syntax error (err->where is the path, err->line the line)
 *   CBX_EINVAL_CONFIG  the file fails when run, does not return executor {...}, or defines it
 *                   badly (err->where is the path, err->line the line of `executor {`; the
 *                   message names the field, e.g. "params.text.type: unknown type 'strng'")
 *   CBX_EEXISTS     the name is taken; and the other errors of cbx_registry_register. */
int cbx_lua_executor_load(cbx_registry *r, const char *path, cbx_err *err);

/* The same, from text in memory; name stands for the path in messages. */
int cbx_lua_executor_load_string(cbx_registry *r, const char *name, const char *src, size_t len,
                                 cbx_err *err);

/* Load every *.lua file (in name order) in each directory of a colon-separated list; missing
 * directories are skipped. Stops at the first failure. Returns how many were loaded, or a
 * negative code. */
int cbx_lua_executor_load_path(cbx_registry *r, const char *dirs, cbx_err *err);

#ifdef __cplusplus
}
#endif
#endif
