/* Lua patterns with a step budget: string.find, match, gmatch and gsub for the sandbox.
 *
 * Lua's own matcher runs inside one C call, where the instruction hook never fires: a
 * backtracking pattern (".-.-.-.-b" on a few thousand bytes) spins for hours and nothing can
 * stop it. This matcher implements the same language (classes, sets, the four quantifiers,
 * captures and position captures, back-references, %b, %f, anchors) with the same results and
 * messages, and counts its work: every pattern item tried at a subject position, every byte a
 * %b or a back-reference looks at, is one step; STEPS_PER_INSTRUCTION steps are charged to the
 * sandbox's instruction budget as one instruction, so that the budget and the interrupt stop a
 * runaway pattern like any loop. Plain searches (find with plain, or a pattern without special
 * characters) stay linear: memchr and memcmp, then memmem once that has cost as much as the
 * subject is long. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "core/lua_sandbox_internal.h"

#define STEPS_PER_INSTRUCTION 8
#define CHARGE_EVERY          (STEPS_PER_INSTRUCTION * 1000) /* steps between two charges */
#define MAX_DEPTH             200 /* nested matches, as Lua's MAXCCALLS */
#define MAX_CAPTURES          32  /* as Lua's LUA_MAXCAPTURES */
#define ESC                   '%'
#define SPECIALS              "^$*+?.([%-"

enum { CAP_OPEN = -1, CAP_POS = -2 };

typedef struct matcher {
    lua_State *L;
    const char *s0, *s_end; /* the subject */
    const char *p_end;      /* the pattern's end */
    int depth;              /* nested matches left */
    int ncap;
    uint32_t steps; /* not charged yet */
    struct {
        const char *at;
        ptrdiff_t len; /* or CAP_OPEN, CAP_POS */
    } cap[MAX_CAPTURES];
} matcher;

static void charge(matcher *m)
{
    uint32_t n = m->steps / STEPS_PER_INSTRUCTION;
    m->steps -= n * STEPS_PER_INSTRUCTION;
    if (n)
        cbx__sandbox_charge(m->L, n);
}

static inline void step(matcher *m, uint32_t n)
{
    m->steps += n;
    if (m->steps >= CHARGE_EVERY)
        charge(m);
}

static void matcher_init(matcher *m, lua_State *L, const char *s, size_t ls, const char *p,
                         size_t lp)
{
    m->L = L;
    m->s0 = s;
    m->s_end = s + ls;
    m->p_end = p + lp;
    m->steps = 0;
}

static void matcher_reset(matcher *m)
{
    m->ncap = 0;
    m->depth = MAX_DEPTH;
}

/* ---- single items -------------------------------------------------------------------------- */

static int class_matches(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a':
        r = isalpha(c);
        break;
    case 'c':
        r = iscntrl(c);
        break;
    case 'd':
        r = isdigit(c);
        break;
    case 'g':
        r = isgraph(c);
        break;
    case 'l':
        r = islower(c);
        break;
    case 'p':
        r = ispunct(c);
        break;
    case 's':
        r = isspace(c);
        break;
    case 'u':
        r = isupper(c);
        break;
    case 'w':
        r = isalnum(c);
        break;
    case 'x':
        r = isxdigit(c);
        break;
    default:
        return cl == c;
    }
    r = r != 0;
    return isupper(cl) ? !r : r;
}

/* c against the set [ ... ] from p (at '[') to close (at its ']'). */
static int set_matches(int c, const char *p, const char *close)
{
    int want = 1;
    if (p[1] == '^') {
        want = 0;
        p++;
    }
    while (++p < close) {
        if (*p == ESC) {
            p++;
            if (class_matches(c, (unsigned char)*p))
                return want;
        } else if (p[1] == '-' && p + 2 < close) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return want;
            p += 2;
        } else if ((unsigned char)*p == c) {
            return want;
        }
    }
    return !want;
}

/* The end of the single item (a character, %x or a set) that starts at p. */
static const char *item_end(matcher *m, const char *p)
{
    char c = *p++;
    if (c == ESC) {
        if (p >= m->p_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        do { /* the first character of a set may be ']' */
            if (p >= m->p_end)
                luaL_error(m->L, "malformed pattern (missing ']')");
            if (*p++ == ESC && p < m->p_end)
                p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

static int item_matches(matcher *m, const char *s, const char *p, const char *ep)
{
    step(m, 1);
    if (s >= m->s_end)
        return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case ESC:
        return class_matches(c, (unsigned char)p[1]);
    case '[':
        return set_matches(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* ---- the matcher --------------------------------------------------------------------------- */

static const char *match(matcher *m, const char *s, const char *p);

static const char *greedy(matcher *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (item_matches(m, s + n, p, ep))
        n++;
    for (; n >= 0; n--) { /* the longest first, then give back one at a time */
        const char *r = match(m, s + n, ep + 1);
        if (r)
            return r;
    }
    return NULL;
}

static const char *lazy(matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r)
            return r;
        if (!item_matches(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(matcher *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->ncap >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->ncap].at = s;
    m->cap[m->ncap].len = what;
    m->ncap++;
    const char *r = match(m, s, p);
    if (!r)
        m->ncap--;
    return r;
}

static const char *close_capture(matcher *m, const char *s, const char *p)
{
    int i = m->ncap - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    const char *r = match(m, s, p);
    if (!r)
        m->cap[i].len = CAP_OPEN;
    return r;
}

static const char *balanced(matcher *m, const char *s, const char *p)
{
    if (p + 1 >= m->p_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->s_end || *s != p[0])
        return NULL;
    int depth = 1;
    while (++s < m->s_end) {
        step(m, 1);
        if (*s == p[1]) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == p[0]) {
            depth++;
        }
    }
    return NULL;
}

static int capture_index(matcher *m, int digit)
{
    int i = digit - '1';
    if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
        return luaL_error(m->L, "invalid capture index %%%d", i + 1);
    return i;
}

static const char *backref(matcher *m, const char *s, int digit)
{
    int i = capture_index(m, digit);
    size_t len = (size_t)m->cap[i].len; /* a position capture is huge here: never matches */
    if ((size_t)(m->s_end - s) < len)
        return NULL;
    step(m, (uint32_t)(len / 16));
    return memcmp(m->cap[i].at, s, len) == 0 ? s + len : NULL;
}

static const char *frontier(matcher *m, const char *s, const char **pp)
{
    const char *p = *pp + 2;
    if (*p != '[')
        luaL_error(m->L, "missing '[' after '%%f' in pattern");
    const char *ep = item_end(m, p);
    int prev = s == m->s0 ? '\0' : (unsigned char)s[-1];
    int cur = s < m->s_end ? (unsigned char)*s : '\0';
    if (!set_matches(prev, p, ep - 1) && set_matches(cur, p, ep - 1)) {
        *pp = ep;
        return s;
    }
    return NULL;
}

/* The end of the match of pattern p at s, or NULL. */
static const char *match(matcher *m, const char *s, const char *p)
{
    if (m->depth-- == 0)
        luaL_error(m->L, "pattern too complex");
    step(m, 1);
    while (s && p < m->p_end) {
        if (*p == '(') {
            s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POS)
                            : open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->p_end) {
            s = s == m->s_end ? s : NULL;
            break;
        }
        if (*p == ESC && p[1] == 'b') {
            s = balanced(m, s, p + 2);
            p += 4;
            continue;
        }
        if (*p == ESC && p[1] == 'f') {
            s = frontier(m, s, &p);
            continue;
        }
        if (*p == ESC && isdigit((unsigned char)p[1])) {
            s = backref(m, s, (unsigned char)p[1]);
            p += 2;
            continue;
        }
        const char *ep = item_end(m, p);
        if (!item_matches(m, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') {
                p = ep + 1; /* zero occurrences will do */
                continue;
            }
            s = NULL;
            break;
        }
        if (*ep == '?') {
            const char *r = match(m, s + 1, ep + 1);
            if (r) {
                s = r;
                break;
            }
            p = ep + 1;
        } else if (*ep == '+') {
            s = greedy(m, s + 1, p, ep);
            break;
        } else if (*ep == '*') {
            s = greedy(m, s, p, ep);
            break;
        } else if (*ep == '-') {
            s = lazy(m, s, p, ep);
            break;
        } else {
            s++;
            p = ep;
        }
    }
    m->depth++;
    return s;
}

/* ---- results ------------------------------------------------------------------------------- */

/* Push capture i (the whole match s..e when the pattern has none and i is 0). */
static void push_capture(matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->ncap) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POS)
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->s0) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
}

/* Push the captures (or the whole match when there are none and s is not NULL). */
static int push_captures(matcher *m, const char *s, const char *e)
{
    int n = m->ncap == 0 && s ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* A 1-based, possibly negative, start position as an offset 0..len (len + 1 = past the end). */
static size_t start_offset(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos - 1;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 0;
    return len - (size_t)(-pos);
}

static int has_specials(const char *p, size_t lp)
{
    return strpbrk(p, SPECIALS) != NULL || strlen(p) < lp;
}

/* The first p in s, as Lua finds it (memchr for the first byte, then memcmp: the fastest on
 * ordinary text), but once the comparisons have cost as much as s is long, with memmem, which
 * is linear: "aaa...a" never costs len(s) * len(p). */
static const char *find_plain(const char *s, size_t ls, const char *p, size_t lp)
{
    if (lp == 0)
        return s;
    if (lp > ls)
        return NULL;
    const char *at = s, *last = s + (ls - lp); /* the last place p can start */
    size_t allowance = ls + 4096;              /* bytes memcmp may look at */
    while (at <= last) {
        const char *c = memchr(at, p[0], (size_t)(last - at) + 1);
        if (!c)
            return NULL;
        if (memcmp(c + 1, p + 1, lp - 1) == 0)
            return c;
        at = c + 1;
        if (lp > allowance)
            return memmem(at, (size_t)(s + ls - at), p, lp);
        allowance -= lp;
    }
    return NULL;
}

/* ---- find and match ------------------------------------------------------------------------ */

static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *hit = find_plain(s + init, ls - init, p, lp);
        if (!hit) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
        return 2;
    }
    matcher m;
    int anchored = *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    matcher_init(&m, L, s, ls, p, lp);
    const char *at = s + init;
    do {
        matcher_reset(&m);
        const char *e = match(&m, at, p);
        if (e) {
            charge(&m);
            if (!find)
                return push_captures(&m, at, e);
            lua_pushinteger(L, (lua_Integer)(at - s) + 1);
            lua_pushinteger(L, (lua_Integer)(e - s));
            return push_captures(&m, NULL, NULL) + 2;
        }
    } while (at++ < m.s_end && !anchored);
    charge(&m);
    luaL_pushfail(L);
    return 1;
}

static int guarded_find(lua_State *L)
{
    return find_or_match(L, 1);
}

static int guarded_match(lua_State *L)
{
    return find_or_match(L, 0);
}

/* ---- gmatch -------------------------------------------------------------------------------- */

typedef struct gmatch_state {
    size_t next;    /* where the next search starts */
    ptrdiff_t last; /* end of the last match, -1 before the first */
} gmatch_state;

/* upvalues: the subject, the pattern, the state */
static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    matcher m;
    matcher_init(&m, L, s, ls, p, lp);
    for (const char *at = s + g->next; at <= m.s_end; at++) {
        matcher_reset(&m);
        const char *e = match(&m, at, p);
        if (e && e - s != g->last) {
            charge(&m);
            g->next = (size_t)(e - s);
            g->last = e - s;
            return push_captures(&m, at, e);
        }
    }
    charge(&m);
    g->next = ls + 1;
    return 0;
}

static int guarded_gmatch(lua_State *L)
{
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls)
        init = ls + 1;
    lua_settop(L, 2);
    gmatch_state *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->next = init;
    g->last = -1;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* ---- gsub ---------------------------------------------------------------------------------- */

/* Add the replacement string (argument 3) for the match s..e, with %0-%9 and %%. */
static void add_template(matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    size_t l;
    const char *r = lua_tolstring(L, 3, &l);
    const char *pc;
    while ((pc = memchr(r, ESC, l)) != NULL) {
        luaL_addlstring(b, r, (size_t)(pc - r));
        pc++;
        if (*pc == ESC) {
            luaL_addchar(b, ESC);
        } else if (*pc == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit((unsigned char)*pc)) {
            push_capture(m, *pc - '1', s, e);
            luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        l -= (size_t)(pc + 1 - r);
        r = pc + 1;
    }
    luaL_addlstring(b, r, l);
}

/* Add the replacement for the match s..e; returns whether the text changed. */
static int add_replacement(matcher *m, luaL_Buffer *b, const char *s, const char *e, int kind)
{
    lua_State *L = m->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(m, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int guarded_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L,
                     kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                         kind == LUA_TTABLE,
                     3, "string/function/table");
    int anchored = *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    matcher m;
    matcher_init(&m, L, s, ls, p, lp);
    const char *at = s, *last = NULL;
    lua_Integer n = 0;
    int changed = 0;
    while (n < max_n) {
        matcher_reset(&m);
        const char *e = match(&m, at, p);
        if (e && e != last) {
            n++;
            changed |= add_replacement(&m, &b, at, e, kind);
            at = last = e;
        } else if (at < m.s_end) {
            luaL_addchar(&b, *at++);
        } else {
            break;
        }
        if (anchored)
            break;
    }
    charge(&m);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, at, (size_t)(m.s_end - at));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void cbx__sandbox_guard_patterns(lua_State *L)
{
    static const luaL_Reg fns[] = {{"find", guarded_find},
                                   {"match", guarded_match},
                                   {"gmatch", guarded_gmatch},
                                   {"gsub", guarded_gsub},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
