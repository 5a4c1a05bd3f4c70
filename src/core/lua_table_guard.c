/* table.insert, table.remove and table.move for the sandbox: Lua's own versions loop in C over
 * a range the script chooses (a __len that answers 2^60, table.move({}, 1, math.maxinteger, 1)),
 * moving nils without allocating anything, out of the instruction hook's reach. These behave
 * the same and charge one instruction per element they move, so the budget and the interrupt
 * stop them. */
#include <lauxlib.h>
#include <lua.h>

#include "core/lua_sandbox_internal.h"

#define CHARGE_EVERY 1000 /* elements between two charges */

enum { NEED_R = 1, NEED_W = 2, NEED_LEN = 4 };

typedef struct mover {
    lua_State *L;
    uint32_t pending;
} mover;

static void mover_flush(mover *mv)
{
    if (mv->pending)
        cbx__sandbox_charge(mv->L, mv->pending);
    mv->pending = 0;
}

/* t[to] = from[at], charged */
static void move_one(mover *mv, int from, lua_Integer at, int to, lua_Integer dst)
{
    lua_geti(mv->L, from, at);
    lua_seti(mv->L, to, dst);
    if (++mv->pending >= CHARGE_EVERY)
        mover_flush(mv);
}

static int has_field(lua_State *L, const char *name, int n)
{
    lua_pushstring(L, name);
    return lua_rawget(L, -n) != LUA_TNIL;
}

/* A table, or a value whose metatable gives what is needed (as the table library asks). */
static void check_table(lua_State *L, int arg, int need)
{
    if (lua_type(L, arg) == LUA_TTABLE)
        return;
    int n = 1;
    if (lua_getmetatable(L, arg) && (!(need & NEED_R) || has_field(L, "__index", ++n)) &&
        (!(need & NEED_W) || has_field(L, "__newindex", ++n)) &&
        (!(need & NEED_LEN) || has_field(L, "__len", ++n))) {
        lua_pop(L, n);
        return;
    }
    luaL_checktype(L, arg, LUA_TTABLE);
}

static lua_Integer length_of(lua_State *L, int need)
{
    check_table(L, 1, need | NEED_LEN);
    return luaL_len(L, 1);
}

static int guarded_insert(lua_State *L)
{
    mover mv = {.L = L};
    /* the first empty slot (wrapping, as Lua's own) */
    lua_Integer end = (lua_Integer)((lua_Unsigned)length_of(L, NEED_R | NEED_W) + 1u);
    lua_Integer pos;
    switch (lua_gettop(L)) {
    case 2:
        pos = end;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)end, 2, "position out of bounds");
        for (lua_Integer i = end; i > pos; i--)
            move_one(&mv, 1, i - 1, 1, i);
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    mover_flush(&mv);
    lua_seti(L, 1, pos);
    return 0;
}

static int guarded_remove(lua_State *L)
{
    mover mv = {.L = L};
    lua_Integer size = length_of(L, NEED_R | NEED_W);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1, /* #1, as Lua */
                      "position out of bounds");
    lua_geti(L, 1, pos); /* the result */
    for (; pos < size; pos++)
        move_one(&mv, 1, pos + 1, 1, pos);
    mover_flush(&mv);
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

static int guarded_move(lua_State *L)
{
    mover mv = {.L = L};
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int dst = lua_isnoneornil(L, 5) ? 1 : 5;
    check_table(L, 1, NEED_R);
    check_table(L, dst, NEED_W);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        if (t > e || t <= f || (dst != 1 && !lua_compare(L, 1, dst, LUA_OPEQ))) {
            for (lua_Integer i = 0; i < n; i++)
                move_one(&mv, 1, f + i, dst, t + i);
        } else { /* overlapping, to the right: from the end */
            for (lua_Integer i = n - 1; i >= 0; i--)
                move_one(&mv, 1, f + i, dst, t + i);
        }
        mover_flush(&mv);
    }
    lua_pushvalue(L, dst);
    return 1;
}

void cbx__sandbox_guard_table(lua_State *L)
{
    static const luaL_Reg fns[] = {{"insert", guarded_insert},
                                   {"remove", guarded_remove},
                                   {"move", guarded_move},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
