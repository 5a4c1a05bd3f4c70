/* The helper functions templates can call (json, parse_json, len, default, host, trim, split,
 * join, contains, starts_with, ends_with) and the JSON text they and interpolation write. */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cbx/lua_sandbox.h"
#include "flow/template_internal.h"

#include "core/json_escape.h"

/* ---- text buffers ---------------------------------------------------------------------------- */

int cbx__tpl_buf_add(cbx__tpl_buf *b, const char *s, size_t n)
{
    if (b->oom || b->over)
        return -1;
    if (n == 0 || !s)
        return 0;
    if (n > b->limit || b->len > b->limit - n) {
        b->over = 1;
        return -1;
    }
    if (!b->p || b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

void cbx__tpl_buf_free(cbx__tpl_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- numbers --------------------------------------------------------------------------------- */

void cbx__tpl_fmt_real(double d, char *buf, size_t cap)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    /* the decimal point of the C locale, whatever the process's locale says */
    int plain = 1;
    for (char *c = buf; *c; c++) {
        if (*c == 'e' || *c == 'E' || *c == 'n' || *c == 'i') {
            plain = 0;
        } else if (!(*c >= '0' && *c <= '9') && *c != '-' && *c != '+') {
            *c = '.';
            plain = 0;
        }
    }
    size_t n = strlen(buf);
    if (plain && n + 3 <= cap)
        memcpy(buf + n, ".0", 3);
}

/* ---- JSON text ------------------------------------------------------------------------------- */

static int write_string(cbx__tpl_buf *b, const char *s, size_t n)
{
    cbx__tpl_buf_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        char esc[7];
        size_t elen = cbx__json_escape((unsigned char)s[i], esc, 0);
        if (!elen)
            continue;
        cbx__tpl_buf_add(b, s + run, i - run);
        run = i + 1;
        cbx__tpl_buf_add(b, esc, elen);
    }
    cbx__tpl_buf_add(b, s + run, n - run);
    return cbx__tpl_buf_add(b, "\"", 1);
}

int cbx__tpl_json_write(cbx__tpl_buf *b, const json_t *v)
{
    char num[40];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        cbx__tpl_buf_add(b, "{", 1);
        int first = 1;
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                cbx__tpl_buf_add(b, ",", 1);
            first = 0;
            write_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
            cbx__tpl_buf_add(b, ":", 1);
            if (cbx__tpl_json_write(b, json_object_iter_value(it)))
                return -1;
        }
        return cbx__tpl_buf_add(b, "}", 1);
    }
    case JSON_ARRAY:
        cbx__tpl_buf_add(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                cbx__tpl_buf_add(b, ",", 1);
            if (cbx__tpl_json_write(b, json_array_get(v, i)))
                return -1;
        }
        return cbx__tpl_buf_add(b, "]", 1);
    case JSON_STRING:
        return write_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return cbx__tpl_buf_add(b, num, strlen(num));
    case JSON_REAL:
        cbx__tpl_fmt_real(json_real_value(v), num, sizeof num);
        return cbx__tpl_buf_add(b, num, strlen(num));
    case JSON_TRUE:
        return cbx__tpl_buf_add(b, "true", 4);
    case JSON_FALSE:
        return cbx__tpl_buf_add(b, "false", 5);
    default:
        return cbx__tpl_buf_add(b, "null", 4);
    }
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* The length of the sequence at s (at most n bytes), or 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t k;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (k > n)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return k;
}

int cbx__tpl_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* ---- helpers --------------------------------------------------------------------------------- */

static cbx_template_env *env_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int is_nullish(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) || cbx_sandbox_is_null(L, idx);
}

/* json(v): v as compact JSON text. */
static int h_json(lua_State *L)
{
    cbx_template_env *e = env_of(L);
    lua_settop(L, 1);
    json_t *v = NULL;
    char msg[400];
    if (cbx__tpl_to_json(e, L, 1, &v, msg, sizeof msg))
        return luaL_error(L, "json(): %s", msg);
    cbx__tpl_buf b = {.limit = cbx__tpl_output_limit(e)};
    cbx__tpl_json_write(&b, v);
    json_decref(v);
    if (b.oom || b.over) {
        cbx__tpl_buf_free(&b);
        return luaL_error(L, "json(): memory limit exceeded");
    }
    cbx__tpl_push_owned(L, b.p, b.len);
    return 1;
}

/* parse_json(text): the value JSON text stands for (arrays marked, null as null). */
static int h_parse_json(lua_State *L)
{
    size_t n = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    json_error_t je;
    json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v)
        return luaL_error(L, "parse_json(): %s (line %d, column %d)", je.text, je.line, je.column);
    cbx__tpl_push_json_owned(L, v);
    return 1;
}

static size_t utf8_chars(const char *s, size_t n)
{
    if (!cbx__tpl_utf8_valid(s, n))
        return n;
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* A plain table's entries (*count), and whether it is an array: marked, or with keys exactly
 * 1..n (n > 0). Returns the array's length (its largest index) or the entry count. */
static lua_Integer table_shape(lua_State *L, int idx, int *array)
{
    lua_Integer n = 0, max = 0;
    int all_int = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
            if (lua_tointeger(L, -2) > max)
                max = lua_tointeger(L, -2);
        } else {
            all_int = 0;
        }
        lua_pop(L, 1);
    }
    int marked = cbx__tpl_is_marked(L, idx);
    *array = marked || (n > 0 && all_int && max == n);
    return *array ? max : n;
}

/* len(v): characters of a string, items of an array, keys of an object; 0 for nil and null. */
static int h_len(lua_State *L)
{
    cbx_template_env *e = env_of(L);
    lua_settop(L, 1);
    if (is_nullish(L, 1)) {
        lua_pushinteger(L, 0);
        return 1;
    }
    const json_t *j = cbx__tpl_context_value(e, L, 1);
    if (j) {
        lua_pushinteger(L,
                        (lua_Integer)(json_is_array(j) ? json_array_size(j) : json_object_size(j)));
        return 1;
    }
    switch (lua_type(L, 1)) {
    case LUA_TSTRING: {
        size_t n = 0;
        const char *s = lua_tolstring(L, 1, &n);
        lua_pushinteger(L, (lua_Integer)utf8_chars(s, n));
        return 1;
    }
    case LUA_TTABLE:
        lua_pushinteger(L, table_shape(L, 1, &(int){0}));
        return 1;
    default:
        return luaL_error(L, "len(): expected a string, an array or an object, got a %s",
                          luaL_typename(L, 1));
    }
}

/* default(v, d): d when v is nil or null, else v. */
static int h_default(lua_State *L)
{
    lua_settop(L, 2);
    if (is_nullish(L, 1))
        return 1;
    lua_pushvalue(L, 1);
    return 1;
}

/* host(url): the host of a URL, lower case, without userinfo, port or IPv6 brackets; nil when
 * there is none. */
static int h_host(lua_State *L)
{
    if (is_nullish(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    size_t n = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *end = s + n;
    const char *p = s;
    /* scheme ":" "//" */
    const char *colon = memchr(s, ':', n);
    if (colon && colon + 2 < end && colon[1] == '/' && colon[2] == '/') {
        int scheme = colon > s && isalpha((unsigned char)*s);
        for (const char *c = s; c < colon && scheme; c++)
            scheme = isalnum((unsigned char)*c) || *c == '+' || *c == '-' || *c == '.';
        if (scheme)
            p = colon + 3;
    } else if (n >= 2 && s[0] == '/' && s[1] == '/') {
        p = s + 2;
    }
    const char *auth_end = p;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#')
        auth_end++;
    for (const char *c = auth_end; c > p; c--)
        if (c[-1] == '@') {
            p = c;
            break;
        }
    const char *h = p, *hend;
    if (h < auth_end && *h == '[') {
        hend = memchr(h, ']', (size_t)(auth_end - h));
        if (!hend) {
            lua_pushnil(L);
            return 1;
        }
        h++;
    } else {
        hend = h;
        while (hend < auth_end && *hend != ':')
            hend++;
    }
    if (hend == h) {
        lua_pushnil(L);
        return 1;
    }
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (size_t)(hend - h));
    for (size_t i = 0; i < (size_t)(hend - h); i++)
        out[i] = (char)tolower((unsigned char)h[i]);
    luaL_pushresultsize(&b, (size_t)(hend - h));
    return 1;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* trim(s): s without leading and trailing whitespace. */
static int h_trim(lua_State *L)
{
    size_t n = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    size_t a = 0, b = n;
    while (a < b && is_ws(s[a]))
        a++;
    while (b > a && is_ws(s[b - 1]))
        b--;
    lua_pushlstring(L, s + a, b - a);
    return 1;
}

/* split(s [, sep]): the pieces of s between occurrences of sep (plain text, not a pattern), or
 * between runs of whitespace when sep is absent (then without empty pieces); an array. */
static int h_split(lua_State *L)
{
    size_t n = 0, sl = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *sep = luaL_optlstring(L, 2, NULL, &sl);
    if (sep && sl == 0)
        return luaL_error(L, "split(): the separator is empty");
    lua_settop(L, 2);
    lua_newtable(L);
    lua_Integer k = 0;
    if (!sep) {
        size_t i = 0;
        while (i < n) {
            while (i < n && is_ws(s[i]))
                i++;
            size_t j = i;
            while (j < n && !is_ws(s[j]))
                j++;
            if (j > i) {
                lua_pushlstring(L, s + i, j - i);
                lua_rawseti(L, 3, ++k);
            }
            i = j;
        }
    } else {
        size_t i = 0;
        for (;;) {
            const char *hit = sl <= n - i ? memmem(s + i, n - i, sep, sl) : NULL;
            size_t j = hit ? (size_t)(hit - s) : n;
            lua_pushlstring(L, s + i, j - i);
            lua_rawseti(L, 3, ++k);
            if (!hit)
                break;
            i = j + sl;
        }
    }
    cbx__tpl_mark_array(L);
    return 1;
}

/* join(list [, sep]): the items' text (as interpolation writes them) with sep between. */
static int h_join(lua_State *L)
{
    cbx_template_env *e = env_of(L);
    size_t sl = 0;
    if (!cbx__tpl_is_context(e, L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    const char *sep = luaL_optlstring(L, 2, "", &sl);
    lua_settop(L, 2);
    luaL_checkstack(L, 4, "join()");
    cbx__tpl_buf b = {.limit = cbx__tpl_output_limit(e)};
    char msg[400] = "";
    int rc = 0;
    const json_t *j = cbx__tpl_context_value(e, L, 1);
    if (j) {
        if (!json_is_array(j)) {
            return luaL_error(L, "join(): expected an array, got an object");
        }
        for (size_t i = 0; i < json_array_size(j) && !rc; i++) {
            if (i)
                cbx__tpl_buf_add(&b, sep, sl);
            json_t *it = json_array_get(j, i);
            if (json_is_string(it))
                cbx__tpl_buf_add(&b, json_string_value(it), json_string_length(it));
            else if (!json_is_null(it))
                cbx__tpl_json_write(&b, it);
        }
    } else {
        int array = 0;
        lua_Integer n = table_shape(L, 1, &array);
        if (!array && n > 0)
            return luaL_error(L, "join(): expected an array, got an object");
        for (lua_Integer i = 1; i <= n && !rc; i++) {
            if (i > 1)
                cbx__tpl_buf_add(&b, sep, sl);
            lua_rawgeti(L, 1, i);
            rc = cbx__tpl_append_text(e, L, -1, &b, msg, sizeof msg);
            lua_pop(L, 1);
        }
    }
    if (rc || b.oom || b.over) {
        cbx__tpl_buf_free(&b);
        if (rc && msg[0])
            return luaL_error(L, "join(): %s", msg);
        return luaL_error(L, "join(): memory limit exceeded");
    }
    cbx__tpl_push_owned(L, b.p, b.len);
    return 1;
}

static int json_eq_lua(cbx_template_env *e, lua_State *L, const json_t *item, int idx)
{
    if (json_is_number(item) && lua_type(L, idx) == LUA_TNUMBER) {
        if (json_is_integer(item) && lua_isinteger(L, idx))
            return json_integer_value(item) == (json_int_t)lua_tointeger(L, idx);
        return json_number_value(item) == (double)lua_tonumber(L, idx);
    }
    if (json_is_string(item) && lua_type(L, idx) == LUA_TSTRING) {
        size_t n = 0;
        const char *s = lua_tolstring(L, idx, &n);
        return n == json_string_length(item) && memcmp(s, json_string_value(item), n) == 0;
    }
    json_t *v = NULL;
    char msg[8];
    if (cbx__tpl_to_json(e, L, idx, &v, msg, sizeof msg))
        return 0;
    int eq = json_equal(item, v);
    json_decref(v);
    return eq;
}

static int table_eq_lua(cbx_template_env *e, lua_State *L, int a, int b)
{
    json_t *v = NULL;
    char msg[8];
    if (cbx__tpl_to_json(e, L, a, &v, msg, sizeof msg))
        return 0;
    int eq = json_eq_lua(e, L, v, b);
    json_decref(v);
    return eq;
}

/* contains(h, x): x is a substring of the string h, an item of the array h, or a key of the
 * object h; false for nil and null. */
static int h_contains(lua_State *L)
{
    cbx_template_env *e = env_of(L);
    lua_settop(L, 2);
    if (is_nullish(L, 1)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t hn = 0, nn = 0;
        const char *h = lua_tolstring(L, 1, &hn);
        if (lua_type(L, 2) != LUA_TSTRING)
            return luaL_error(L, "contains(): a string can only contain a string, not a %s",
                              luaL_typename(L, 2));
        const char *x = lua_tolstring(L, 2, &nn);
        lua_pushboolean(L, nn == 0 || (nn <= hn && memmem(h, hn, x, nn) != NULL));
        return 1;
    }
    const json_t *j = cbx__tpl_context_value(e, L, 1);
    if (!j && lua_type(L, 1) != LUA_TTABLE)
        return luaL_error(L, "contains(): expected a string, an array or an object, got a %s",
                          luaL_typename(L, 1));
    int found = 0;
    if (j && json_is_array(j) && lua_type(L, 2) != LUA_TNUMBER && lua_type(L, 2) != LUA_TSTRING) {
        /* a table: converted once, not once per item (n items times its size) */
        json_t *x = NULL;
        char msg[8];
        if (cbx__tpl_to_json(e, L, 2, &x, msg, sizeof msg) == 0) {
            for (size_t i = 0; i < json_array_size(j) && !found; i++)
                found = json_equal(json_array_get(j, i), x);
            json_decref(x);
        }
    } else if (j && json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j) && !found; i++)
            found = json_eq_lua(e, L, json_array_get(j, i), 2);
    } else if (j) {
        size_t n = 0;
        const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : NULL;
        found = k && json_object_getn(j, k, n) != NULL;
    } else {
        int array = 0;
        lua_Integer n = table_shape(L, 1, &array);
        if (array) {
            for (lua_Integer i = 1; i <= n && !found; i++) {
                lua_rawgeti(L, 1, i);
                const json_t *ij = cbx__tpl_context_value(e, L, -1);
                if (ij)
                    found = json_eq_lua(e, L, ij, 2);
                else if (lua_rawequal(L, -1, 2))
                    found = 1;
                else if (lua_type(L, -1) == LUA_TTABLE) /* tables compare by content */
                    found = table_eq_lua(e, L, lua_gettop(L), 2);
                lua_pop(L, 1);
            }
        } else if (!lua_isnil(L, 2)) {
            lua_pushvalue(L, 2);
            found = lua_rawget(L, 1) != LUA_TNIL;
            lua_pop(L, 1);
        }
    }
    lua_pushboolean(L, found);
    return 1;
}

static int affix(lua_State *L, int at_end)
{
    if (is_nullish(L, 1)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    size_t n = 0, pn = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &pn);
    int ok = pn <= n && memcmp(at_end ? s + n - pn : s, p, pn) == 0;
    lua_pushboolean(L, ok);
    return 1;
}

/* starts_with(s, prefix), ends_with(s, suffix); false for nil and null. */
static int h_starts_with(lua_State *L)
{
    return affix(L, 0);
}

static int h_ends_with(lua_State *L)
{
    return affix(L, 1);
}

/* type(v): as Lua's, with "table" for the read-only tables of the context. */
static int h_type(lua_State *L)
{
    luaL_checkany(L, 1);
    if (cbx__tpl_is_context(env_of(L), L, 1))
        lua_pushliteral(L, "table");
    else
        lua_pushstring(L, luaL_typename(L, 1));
    return 1;
}

void cbx__tpl_helpers_push(lua_State *L, cbx_template_env *e)
{
    static const luaL_Reg fns[] = {
        {"json", h_json},
        {"parse_json", h_parse_json},
        {"len", h_len},
        {"default", h_default},
        {"host", h_host},
        {"trim", h_trim},
        {"split", h_split},
        {"join", h_join},
        {"contains", h_contains},
        {"starts_with", h_starts_with},
        {"ends_with", h_ends_with},
        {"type", h_type},
        {NULL, NULL},
    };
    lua_createtable(L, 0, (int)(sizeof fns / sizeof fns[0]));
    lua_pushlightuserdata(L, e);
    luaL_setfuncs(L, fns, 1);
}
