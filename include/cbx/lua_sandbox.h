/* cbx/lua_sandbox.h - Lua 5.4 states for untrusted expressions and scripts.
 *
 * Everywhere cbx evaluates Lua - `{{ }}` templates, `when:` conditions, workflow rules, the
 * validate/before/after hooks and run functions of Lua executors - it does so in a sandbox:
 *
 *   What a script can reach
 *     base:      assert error getmetatable ipairs next pairs pcall print rawequal rawget rawlen
 *                rawset select setmetatable tonumber tostring type xpcall _G _VERSION, and
 *                collectgarbage("count") only. print writes to the cbx log (debug level,
 *                component "lua"), never to a terminal.
 *     string     (without string.dump), table, math, utf8, coroutine.
 *     os.time, os.clock and os.date (no other os function).
 *     null       the JSON null sentinel (see "Values" below), and array(t), which marks t as a
 *                JSON array (so that an empty table converts to [] rather than {}).
 *   What it cannot
 *     io, os.execute/exit/getenv/remove/rename/tmpname/setlocale, require, package, debug,
 *     load, loadstring, loadfile, dofile, string.dump, warn, and collectgarbage with any option
 *     other than "count", and __gc metamethods (Lua runs finalizers with hooks off, out of the
 *     budget's reach). Touching one raises "NAME is not available in the sandbox" at the
 *     script's line. Scripts are text only: no precompiled chunk is ever loaded. rawget and
 *     rawset stay: safety never rests on a metatable (the forbidden things are absent; the
 *     protected metatables of _G, string and os only turn their absence into a clear error).
 *   Limits
 *     An instruction budget per call (cbx_sandbox_call and everything built on it): a count
 *     hook fires every 1000 VM instructions; once the budget is spent, or the interrupt
 *     callback answers non-zero, every following instruction raises, so that no pcall in the
 *     script can swallow it. A memory limit on the whole state, enforced by the allocator:
 *     string.rep("x", 1e10) and table-growth bombs fail with "memory limit exceeded".
 *     The library functions that can loop long inside one C call count their work against the
 *     same budget and poll the same interrupt: string.find, match, gmatch and gsub use a
 *     matcher of cbx's own (Lua's pattern language, the same results and messages) in which
 *     eight matching steps - one pattern item tried at one subject position - count as one
 *     instruction, so that a backtracking pattern (".-.-.-.-b" on 5000 bytes) stops with
 *     "instruction limit exceeded" or "interrupted" at the calling line; plain searches are
 *     linear (memmem). table.insert, remove and move charge one instruction per element they
 *     shift (a __len of 2^60 or table.move over math.maxinteger nils cannot spin).
 *     string.rep of an empty string is answered at once, never looped. What is left runs in
 *     time bounded by the memory limit (string.rep, table.concat, table.sort without a
 *     comparator, string.format, utf8).
 *
 * Values. JSON converts to Lua and back: objects are tables with string keys, arrays are
 * sequences 1..n marked as arrays, strings, integers (lua integers), reals (lua floats: 1.0
 * stays a float), booleans, and null as the light userdata `null`. Back from Lua: a table
 * marked as an array, or whose keys are exactly 1..n (n > 0), is an array (nil holes in a
 * marked array become null); any other table is an object (integer and float keys become
 * strings); nil becomes null; NaN and infinities, non-UTF-8 strings, functions, threads and
 * other userdata are refused with the path of the value ("result.items[2]"). Nesting is
 * limited to 100 levels, which also stops cycles.
 *
 * Errors. Every function returns 0 or a negative code and fills an optional cbx_err:
 *   CBX_EPARSE      a syntax error; err->where is the chunk name and err->line its line.
 *   CBX_ESANDBOX    a sandbox refusal: "instruction limit exceeded", "memory limit exceeded",
 *                   "io is not available in the sandbox", ...
 *   CBX_ECANCELLED  the interrupt callback asked to stop ("interrupted").
 *   CBX_EFAILED     any other error raised by the script, or a value that cannot become JSON.
 * For errors raised at a known place, err->where is the chunk name, err->line the line, and
 * err->msg the message without the position; cbx_err_format gives "name:line: message".
 *
 * Threads. A sandbox belongs to one thread at a time (it may move between threads, one call
 * after another). Different sandboxes are independent and may run in parallel.
 */
#ifndef CBX_LUA_SANDBOX_H
#define CBX_LUA_SANDBOX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* As in <lua.h>; include that header to work with the state directly. */
typedef struct lua_State lua_State;

typedef struct cbx_sandbox cbx_sandbox;

#define CBX_SANDBOX_DEFAULT_INSTRUCTIONS 10000000ULL /* per call */
#define CBX_SANDBOX_DEFAULT_MEMORY       (64u << 20) /* bytes, per state */
#define CBX_SANDBOX_UNLIMITED            UINT64_MAX  /* as max_instructions: no budget */
#define CBX_SANDBOX_MAX_DEPTH            100         /* JSON <-> Lua nesting */

typedef struct cbx_sandbox_opts {
    /* VM instructions one call may execute: 0 = CBX_SANDBOX_DEFAULT_INSTRUCTIONS,
     * CBX_SANDBOX_UNLIMITED = no budget (then only the interrupt callback stops a loop). */
    uint64_t max_instructions;
    /* Bytes the whole state may hold: 0 = CBX_SANDBOX_DEFAULT_MEMORY. At least 64 KiB. */
    size_t max_memory;
    /* Optional. Polled every 1000 instructions, on the thread running the script; non-zero
     * aborts the call with CBX_ECANCELLED. Must be cheap and thread-safe. */
    int (*interrupted)(void *ud);
    void *interrupt_ud;
} cbx_sandbox_opts;

/* A new sandboxed state with the libraries above. o may be NULL (defaults). Returns 0, -ENOMEM,
 * or CBX_EINVAL_CONFIG (max_memory too small). Free with cbx_sandbox_free. */
int cbx_sandbox_new(cbx_sandbox **out, const cbx_sandbox_opts *o, cbx_err *err);

/* Close the state (pending finalizers run under the instruction budget) and release it. NULL is
 * accepted. */
void cbx_sandbox_free(cbx_sandbox *sb);

/* The Lua state, for C code that registers functions or reads results (borrowed). C functions
 * pushed into it must keep to the sandbox's promises: no file, process or network access. */
lua_State *cbx_sandbox_lua(cbx_sandbox *sb);

/* The sandbox a state (or any of its coroutines) belongs to; NULL for a state not made here. */
cbx_sandbox *cbx_sandbox_of(lua_State *L);

/* Change the budget of later calls (same meaning as max_instructions) or the interrupt. */
void cbx_sandbox_set_instruction_limit(cbx_sandbox *sb, uint64_t max_instructions);
void cbx_sandbox_set_interrupt(cbx_sandbox *sb, int (*interrupted)(void *ud), void *ud);

/* Compile Lua text and push it as a function. name names the chunk in messages (a file path,
 * "steps.report.when"); it is copied. Returns 0, or CBX_EPARSE (nothing pushed) with the line.
 */
int cbx_sandbox_load(cbx_sandbox *sb, const char *name, const char *src, size_t len, cbx_err *err);

/* Call the function below nargs arguments on the stack (as lua_pcall) with a fresh instruction
 * budget. On success the nresults results are left on the stack (LUA_MULTRET accepted); on error
 * the function and arguments are popped and nothing is pushed. Errors: see above. */
int cbx_sandbox_call(cbx_sandbox *sb, int nargs, int nresults, cbx_err *err);

/* Run fn(L) in protected mode under the same limits, with ud as its only argument (a light
 * userdata at index 1); it may push values and raise Lua errors. Its nresults results are left
 * on the stack. For C code that has to build Lua values, which may run out of memory. */
int cbx_sandbox_pcall_c(cbx_sandbox *sb, int (*fn)(lua_State *L), void *ud, int nresults,
                        cbx_err *err);

/* Evaluate code: first as an expression ("return " .. code), else as a chunk of statements.
 * *out (if out is not NULL) gets its first value as JSON (nil gives JSON null; caller owns it).
 * name is the chunk's name in messages. */
int cbx_sandbox_eval(cbx_sandbox *sb, const char *name, const char *code, json_t **out,
                     cbx_err *err);

/* The same, giving the first value's Lua truth: 0 for nil, false and null, 1 otherwise. */
int cbx_sandbox_eval_bool(cbx_sandbox *sb, const char *name, const char *code, int *out,
                          cbx_err *err);

/* Set a global to a JSON value (borrowed, converted). NULL value sets nil. */
int cbx_sandbox_set_global(cbx_sandbox *sb, const char *name, const json_t *value, cbx_err *err);

/* Push a JSON value (NULL pushes nil), in protected mode. Returns 0 or an error (nothing
 * pushed). */
int cbx_sandbox_push_json(cbx_sandbox *sb, const json_t *value, cbx_err *err);

/* Push a JSON value from inside protected code (a function run by cbx_sandbox_call or
 * cbx_sandbox_pcall_c): raises a Lua error when memory runs out or nesting is too deep. */
void cbx_sandbox_pushjson(lua_State *L, const json_t *value);

/* Push a JSON scalar (string, number, boolean, null as the sentinel) and return 1; push nothing
 * and return 0 for an object or an array. Needs one free stack slot. */
int cbx_sandbox_push_scalar(lua_State *L, const json_t *value);

/* Convert the value at idx to JSON (new reference in *out). what names it in messages
 * ("result"); NULL gives "value". The stack is unchanged. Errors: CBX_EFAILED with the path. */
int cbx_sandbox_to_json(lua_State *L, int idx, const char *what, json_t **out, cbx_err *err);

/* The null sentinel. */
void cbx_sandbox_push_null(lua_State *L);
int cbx_sandbox_is_null(lua_State *L, int idx);

/* Bytes the state holds now; instructions executed by the last call (in steps of 1000; 0 when
 * it had no budget and no interrupt). */
size_t cbx_sandbox_memory(const cbx_sandbox *sb);
uint64_t cbx_sandbox_instructions(const cbx_sandbox *sb);

#ifdef __cplusplus
}
#endif
#endif
