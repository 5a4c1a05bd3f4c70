/* What the sandbox's own C functions share: charging work done inside a C call to the budget,
 * and installing the guarded replacements of the library functions that loop in C. */
#ifndef CBX_CORE_LUA_SANDBOX_INTERNAL_H
#define CBX_CORE_LUA_SANDBOX_INTERNAL_H

#include <stdint.h>

#include "cbx/lua_sandbox.h"

/* Count instructions work done in C against the running call's budget, and poll the interrupt
 * callback. When the budget is spent or the callback answers non-zero, raise the same error as
 * the instruction hook does (at the calling Lua line), and from then on at every instruction.
 * On a state not made by cbx_sandbox_new it does nothing. */
void cbx__sandbox_charge(lua_State *L, uint64_t instructions);

/* Replace string.find, match, gmatch and gsub in the table on top of the stack (the string
 * library) with matchers that charge their work (lua_pattern.c). */
void cbx__sandbox_guard_patterns(lua_State *L);

/* Replace table.insert, remove and move in the table on top of the stack with versions that
 * charge one instruction per element moved (lua_table_guard.c). */
void cbx__sandbox_guard_table(lua_State *L);

#endif
