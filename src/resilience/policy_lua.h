/* The Lua predicates of a policy block (retry.when, breaker.count_when, breaker.ignore_when):
 * the chunk an expression becomes, shared by the parser (which compiles it once to refuse bad
 * text) and the runtime (which evaluates it). */
#ifndef CBX_POLICY_LUA_H
#define CBX_POLICY_LUA_H

#include <stddef.h>

/* The chunk for expr: its one argument is the attempt table, bound to the local `attempt`, and
 * it returns the expression's value; expr keeps its line numbers. A new string (free it), and
 * its length in *len; NULL without memory. */
char *cbx__policy_lua_chunk(const char *expr, size_t *len);

/* Instructions one evaluation may execute. */
#define CBX__POLICY_LUA_INSTRUCTIONS 1000000ULL

#endif
