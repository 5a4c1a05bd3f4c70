/* Templates read without being evaluated: finding "{{ }}" in text, the syntax check, and the
 * scan for the inputs and steps an expression refers to. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "flow/template_internal.h"

#define QUOTE_MAX    160 /* bytes of a template quoted in a message */
#define CHECK_MEMORY (64u << 20)

/* ---- finding templates ----------------------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int cbx__tpl_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_space(s[i]))
            return 0;
    return 1;
}

/* At s[i] == '[': the level of a long bracket "[==[" (>= 0), or -1 when it is not one. */
static int long_open(const char *s, size_t len, size_t i)
{
    size_t j = i + 1;
    while (j < len && s[j] == '=')
        j++;
    return j < len && s[j] == '[' ? (int)(j - i - 1) : -1;
}

/* Past the long bracket of level lv opened at s[i]; len when it never closes. */
static size_t long_skip(const char *s, size_t len, size_t i, int lv)
{
    for (size_t j = i + (size_t)lv + 2; j < len; j++) {
        if (s[j] != ']')
            continue;
        size_t k = j + 1;
        while (k < len && s[k] == '=')
            k++;
        if (k < len && s[k] == ']' && (int)(k - j - 1) == lv)
            return k + 1;
    }
    return len;
}

/* Past the short string opened by the quote at s[i]; len when it never closes (a raw line break
 * also ends it, as Lua's own lexer sees it). */
static size_t short_skip(const char *s, size_t len, size_t i, int *closed)
{
    char q = s[i];
    for (size_t j = i + 1; j < len; j++) {
        if (s[j] == '\\') {
            j++;
        } else if (s[j] == q) {
            *closed = 1;
            return j + 1;
        } else if (s[j] == '\n') {
            *closed = 1; /* Lua reports it; the scan goes on after the line */
            return j;
        }
    }
    *closed = 0;
    return len;
}

int cbx__tpl_next(const char *s, size_t len, size_t from, cbx__tpl_span *sp)
{
    const char *p = NULL;
    for (size_t i = from; i + 1 < len; i++)
        if (s[i] == '{' && s[i + 1] == '{') {
            p = s + i;
            break;
        }
    if (!p)
        return 0;
    sp->open = (size_t)(p - s);
    sp->expr = sp->open + 2;
    size_t depth = 0;
    size_t i = sp->expr;
    while (i < len) {
        char c = s[i];
        if (c == '"' || c == '\'') {
            int closed = 0;
            i = short_skip(s, len, i, &closed);
            if (!closed)
                return -CBX__TPL_OPEN_STRING;
        } else if (c == '[' && long_open(s, len, i) >= 0) {
            int lv = long_open(s, len, i);
            i = long_skip(s, len, i, lv);
            if (i == len)
                return -CBX__TPL_OPEN_LONG;
        } else if (c == '-' && i + 1 < len && s[i + 1] == '-') {
            i += 2;
            if (i < len && s[i] == '[' && long_open(s, len, i) >= 0) {
                int lv = long_open(s, len, i);
                i = long_skip(s, len, i, lv);
                if (i == len)
                    return -CBX__TPL_OPEN_LONG;
            } else {
                /* a line comment ends at the line's end or where the template closes */
                while (i < len && s[i] != '\n' && !(s[i] == '}' && i + 1 < len && s[i + 1] == '}'))
                    i++;
            }
        } else if (c == '{') {
            depth++;
            i++;
        } else if (c == '}') {
            if (depth > 0) {
                depth--;
            } else if (i + 1 < len && s[i + 1] == '}') {
                sp->expr_end = i;
                sp->close = i + 2;
                return 1;
            }
            i++;
        } else {
            i++;
        }
    }
    return -CBX__TPL_UNCLOSED;
}

int cbx__tpl_whole(const char *s, size_t len, cbx__tpl_span *sp)
{
    size_t a = 0, b = len;
    while (a < b && is_space(s[a]))
        a++;
    while (b > a && is_space(s[b - 1]))
        b--;
    if (b - a < 4 || s[a] != '{' || s[a + 1] != '{')
        return 0;
    return cbx__tpl_next(s, len, a, sp) == 1 && sp->open == a && sp->close == b;
}

const char *cbx__tpl_scan_reason(int reason)
{
    switch (reason) {
    case CBX__TPL_OPEN_STRING:
        return "unfinished string (a quote with no closing quote before the end of the text)";
    case CBX__TPL_OPEN_LONG:
        return "unfinished long string or comment";
    default:
        return "unterminated template (no closing }})";
    }
}

/* ---- plain paths ------------------------------------------------------------------------ */

static int is_reserved(const char *s, size_t n)
{
    static const struct {
        const char *w;
        size_t n;
    } words[] = {
        {"and", 3},   {"break", 5}, {"do", 2},       {"else", 4},  {"elseif", 6}, {"end", 3},
        {"false", 5}, {"for", 3},   {"function", 8}, {"goto", 4},  {"if", 2},     {"in", 2},
        {"local", 5}, {"nil", 3},   {"not", 3},      {"or", 2},    {"repeat", 6}, {"return", 6},
        {"then", 4},  {"true", 4},  {"until", 5},    {"while", 5},
    };
    if (n < 2 || n > 8)
        return 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (words[i].n == n && words[i].w[0] == s[0] && memcmp(words[i].w, s, n) == 0)
            return 1;
    return 0;
}

static int path_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int path_name_char(char c)
{
    return path_name_start(c) || (c >= '0' && c <= '9');
}

static size_t path_skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* A name at s[*i]: 1 with the name's extent, 0 when there is none (or a reserved word). */
static int read_name(const char *s, size_t len, size_t *i, const char **k, size_t *kn)
{
    size_t j = *i;
    if (j >= len || !path_name_start(s[j]))
        return 0;
    while (j < len && path_name_char(s[j]))
        j++;
    if (is_reserved(s + *i, j - *i))
        return 0;
    *k = s + *i;
    *kn = j - *i;
    *i = j;
    return 1;
}

size_t cbx__tpl_parse_path(const char *s, size_t len, cbx__tpl_path_step *st)
{
    size_t i = path_skip_ws(s, len, 0), n = 0;
    if (!read_name(s, len, &i, &st[0].k, &st[0].kn))
        return 0;
    n = 1;
    for (;;) {
        i = path_skip_ws(s, len, i);
        if (i == len)
            return n;
        if (n == CBX__TPL_PATH_MAX)
            return 0;
        cbx__tpl_path_step *p = &st[n++];
        p->k = NULL;
        p->idx = 0;
        if (s[i] == '.') {
            i = path_skip_ws(s, len, i + 1);
            if (!read_name(s, len, &i, &p->k, &p->kn))
                return 0;
            continue;
        }
        if (s[i] != '[')
            return 0;
        i = path_skip_ws(s, len, i + 1);
        if (i < len && (s[i] == '"' || s[i] == '\'')) {
            char q = s[i];
            size_t j = i + 1;
            while (j < len && s[j] != q && s[j] != '\\' && s[j] != '\n' && s[j] != '\r')
                j++;
            if (j >= len || s[j] != q)
                return 0;
            p->k = s + i + 1;
            p->kn = j - i - 1;
            i = j + 1;
        } else if (i < len && s[i] >= '0' && s[i] <= '9') {
            while (i < len && s[i] >= '0' && s[i] <= '9' && p->idx < 1000000000000LL)
                p->idx = p->idx * 10 + (s[i++] - '0');
            if (i < len && (path_name_char(s[i]) || s[i] == '.'))
                return 0; /* a float, a hex number, an exponent */
        } else {
            return 0;
        }
        i = path_skip_ws(s, len, i);
        if (i >= len || s[i] != ']')
            return 0;
        i++;
    }
}

/* ---- messages -------------------------------------------------------------------------------- */

/* Cut n back to the start of a UTF-8 sequence. */
static size_t utf8_floor(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

int cbx__tpl_fail(cbx_err *err, int code, const char *path, const char *src, size_t len, int bare,
                  const char *msg)
{
    if (!err)
        return code;
    char q[QUOTE_MAX + 16];
    size_t n = 0;
    size_t take = len;
    int cut = 0;
    if (take > QUOTE_MAX) {
        take = utf8_floor(src, QUOTE_MAX);
        cut = 1;
    }
    if (bare)
        q[n++] = '"';
    for (size_t i = 0; i < take; i++) {
        char c = src[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        q[n++] = c;
    }
    if (cut) {
        memcpy(q + n, "...", 3);
        n += 3;
    }
    if (bare)
        q[n++] = '"';
    q[n] = '\0';
    cbx_err_set_at(err, code, path ? path : "", 0, 0, "%s: %s", q, msg);
    for (char *c = err->msg; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    return code;
}

static int key_reads_after_dot(const char *key, size_t klen)
{
    if (klen == 0)
        return 0;
    for (size_t i = 0; i < klen; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= ' ' || c == '.' || c == '[' || c == ']' || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

size_t cbx__tpl_path_key(char *path, size_t cap, const char *key, size_t klen)
{
    size_t old = strlen(path);
    int k = klen > 64 ? 64 : (int)klen;
    if (key_reads_after_dot(key, klen))
        snprintf(path + old, cap - old, "%s%.*s", old ? "." : "", k, key);
    else
        snprintf(path + old, cap - old, "[\"%.*s\"]", k, key);
    return old;
}

size_t cbx__tpl_path_index(char *path, size_t cap, size_t i)
{
    size_t old = strlen(path);
    snprintf(path + old, cap - old, "[%zu]", i);
    return old;
}

const char *cbx__tpl_strip_position(const char *msg)
{
    const char *p = strchr(msg, ':');
    if (!p || p == msg)
        return msg;
    const char *q = p + 1;
    if (*q < '0' || *q > '9')
        return msg;
    while (*q >= '0' && *q <= '9')
        q++;
    if (*q != ':')
        return msg;
    q++;
    while (*q == ' ')
        q++;
    return q;
}

/* ---- presence -------------------------------------------------------------------------------- */

int cbx_template_has(const json_t *value)
{
    if (!value)
        return 0;
    switch (json_typeof(value)) {
    case JSON_STRING: {
        const char *s = json_string_value(value);
        size_t n = json_string_length(value);
        for (size_t i = 0; i + 1 < n; i++)
            if (s[i] == '{' && s[i + 1] == '{')
                return 1;
        return 0;
    }
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(value); i++)
            if (cbx_template_has(json_array_get(value, i)))
                return 1;
        return 0;
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)value, k, v) if (cbx_template_has(v)) return 1;
        return 0;
    }
    default:
        return 0;
    }
}

/* ---- syntax check ---------------------------------------------------------------------------- */

typedef struct check_state {
    lua_State *L;
    size_t used, limit;
} check_state;

static void *check_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    check_state *cs = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        cs->used -= old;
        return NULL;
    }
    if (nsize > old && cs->used + (nsize - old) > cs->limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        cs->used = cs->used - old + nsize;
    return p;
}

static int check_open(check_state *cs, cbx_err *err)
{
    cs->used = 0;
    cs->limit = CHECK_MEMORY;
    cs->L = lua_newstate(check_alloc, cs);
    if (!cs->L)
        return cbx_err_set(err, -ENOMEM, "cannot create a Lua state: out of memory");
    return 0;
}

/* Compile "return " .. expr as text; nothing runs. */
static int check_one(check_state *cs, const char *expr, size_t len, const char *path,
                     const char *quote, size_t qlen, int bare, cbx_err *err)
{
    if (cbx__tpl_blank(expr, len))
        return cbx__tpl_fail(err, CBX_EPARSE, path, quote, qlen, bare, "empty expression");
    cbx__tpl_path_step st[CBX__TPL_PATH_MAX];
    if (cbx__tpl_parse_path(expr, len, st))
        return 0; /* a plain path is valid Lua */
    if (!cs->L) {
        int rc = check_open(cs, err);
        if (rc)
            return rc;
    }
    char *buf = malloc(len + 8);
    if (!buf)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    memcpy(buf, "return ", 7);
    memcpy(buf + 7, expr, len);
    int ls = luaL_loadbufferx(cs->L, buf, len + 7, "=template", "t");
    free(buf);
    if (ls == LUA_OK) {
        lua_pop(cs->L, 1);
        return 0;
    }
    int rc = 0;
    if (ls == LUA_ERRMEM) {
        rc = cbx__tpl_fail(err, CBX_ESANDBOX, path, quote, qlen, bare,
                           "memory limit exceeded while compiling");
    } else {
        const char *m = lua_tostring(cs->L, -1);
        rc = cbx__tpl_fail(err, CBX_EPARSE, path, quote, qlen, bare,
                           cbx__tpl_strip_position(m ? m : "syntax error"));
    }
    lua_pop(cs->L, 1);
    return rc;
}

static int check_string(check_state *cs, const char *s, size_t len, const char *path, cbx_err *err)
{
    size_t pos = 0;
    cbx__tpl_span sp;
    int r;
    while ((r = cbx__tpl_next(s, len, pos, &sp)) == 1) {
        int rc = check_one(cs, s + sp.expr, sp.expr_end - sp.expr, path, s + sp.open,
                           sp.close - sp.open, 0, err);
        if (rc)
            return rc;
        pos = sp.close;
    }
    if (r < 0)
        return cbx__tpl_fail(err, CBX_EPARSE, path, s + sp.open, len - sp.open, 0,
                             cbx__tpl_scan_reason(-r));
    return 0;
}

static int check_value(check_state *cs, const json_t *v, char *path, size_t cap, cbx_err *err)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return check_string(cs, json_string_value(v), json_string_length(v), path, err);
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++) {
            size_t old = cbx__tpl_path_index(path, cap, i);
            int rc = check_value(cs, json_array_get(v, i), path, cap, err);
            if (rc)
                return rc;
            path[old] = '\0';
        }
        return 0;
    case JSON_OBJECT:
        for (void *it = json_object_iter((json_t *)v); it;
             it = json_object_iter_next((json_t *)v, it)) {
            size_t old = cbx__tpl_path_key(path, cap, json_object_iter_key(it),
                                           json_object_iter_key_len(it));
            int rc = check_value(cs, json_object_iter_value(it), path, cap, err);
            if (rc)
                return rc;
            path[old] = '\0';
        }
        return 0;
    default:
        return 0;
    }
}

int cbx_template_check(const json_t *value, cbx_err *err)
{
    if (!value || !cbx_template_has(value))
        return 0;
    check_state cs = {0};
    char path[256] = "";
    int rc = check_value(&cs, value, path, sizeof path, err);
    if (cs.L)
        lua_close(cs.L);
    return rc;
}

int cbx_template_check_expr(const char *expr, cbx_err *err)
{
    if (!expr)
        return cbx_err_set(err, -EINVAL, "no expression given");
    check_state cs = {0};
    size_t len = strlen(expr);
    int rc = check_one(&cs, expr, len, NULL, expr, len, 1, err);
    if (cs.L)
        lua_close(cs.L);
    return rc;
}

/* ---- references ------------------------------------------------------------------------------ */

enum tok_kind { T_END, T_NAME, T_STRING, T_DOT, T_COLON, T_LBRACKET, T_RBRACKET, T_OTHER };

typedef struct tok {
    enum tok_kind kind;
    const char *p; /* name, or the string's raw content */
    size_t n;
    int escaped; /* a short string with backslashes */
} tok;

static int is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* The token at s[*i], skipping whitespace and comments; numbers and operators are T_OTHER. */
static tok next_tok(const char *s, size_t len, size_t *i)
{
    tok t = {T_END, NULL, 0, 0};
    size_t j = *i;
    for (;;) {
        while (j < len && is_space(s[j]))
            j++;
        if (j + 1 < len && s[j] == '-' && s[j + 1] == '-') {
            j += 2;
            int lv = j < len && s[j] == '[' ? long_open(s, len, j) : -1;
            if (lv >= 0) {
                j = long_skip(s, len, j, lv);
            } else {
                while (j < len && s[j] != '\n')
                    j++;
            }
            continue;
        }
        break;
    }
    if (j >= len) {
        *i = len;
        return t;
    }
    char c = s[j];
    if (is_name_start(c)) {
        size_t k = j;
        while (k < len && is_name_char(s[k]))
            k++;
        t = (tok){T_NAME, s + j, k - j, 0};
        j = k;
    } else if (c >= '0' && c <= '9') {
        /* a number, with hex digits, exponents and their signs (the first digit is taken: the
         * sign test looks one character back, and s[j - 1] may lie before the text) */
        size_t k = j + 1;
        while (k < len) {
            char d = s[k], p = s[k - 1];
            int sign = (d == '+' || d == '-') && (p == 'e' || p == 'E' || p == 'p' || p == 'P');
            if (!is_name_char(d) && d != '.' && !sign)
                break;
            k++;
        }
        t.kind = T_OTHER;
        j = k;
    } else if (c == '"' || c == '\'') {
        int closed = 0;
        size_t k = short_skip(s, len, j, &closed);
        size_t end = (closed && k > j + 1 && s[k - 1] == c) ? k - 1 : k;
        t = (tok){T_STRING, s + j + 1, end - (j + 1),
                  memchr(s + j + 1, '\\', end - (j + 1)) != NULL};
        j = k;
    } else if (c == '[' && long_open(s, len, j) >= 0) {
        int lv = long_open(s, len, j);
        size_t k = long_skip(s, len, j, lv);
        size_t b = j + (size_t)lv + 2;
        if (b < len && s[b] == '\r')
            b++;
        if (b < len && s[b] == '\n')
            b++;
        size_t e = k;
        size_t close = (size_t)lv + 2;
        if (k >= b + close && s[k - 1] == ']' && s[k - close] == ']')
            e = k - close;
        t = (tok){T_STRING, s + b, e - b, 0};
        j = k;
    } else if (c == '.') {
        if (j + 1 < len && s[j + 1] == '.') {
            while (j < len && s[j] == '.')
                j++;
            t.kind = T_OTHER;
        } else if (j + 1 < len && s[j + 1] >= '0' && s[j + 1] <= '9') {
            j++;
            while (j < len && (is_name_char(s[j]) || s[j] == '.'))
                j++;
            t.kind = T_OTHER;
        } else {
            t.kind = T_DOT;
            j++;
        }
    } else if (c == ':') {
        t.kind = T_COLON;
        j++;
    } else if (c == '[') {
        t.kind = T_LBRACKET;
        j++;
    } else if (c == ']') {
        t.kind = T_RBRACKET;
        j++;
    } else {
        t.kind = T_OTHER;
        j++;
    }
    *i = j;
    return t;
}

/* The content of a string token, with the simple escapes undone; -1 for other escapes. */
static int unescape(const tok *t, char *out, size_t cap, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        char c = t->p[i];
        if (t->escaped && c == '\\') {
            if (++i >= t->n)
                return -1;
            switch (t->p[i]) {
            case '\\':
            case '"':
            case '\'':
                c = t->p[i];
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            default:
                return -1;
            }
        }
        if (k + 1 >= cap)
            return -1;
        out[k++] = c;
    }
    out[k] = '\0';
    *n = k;
    return 0;
}

static int add_name(json_t **arr, const char *name, size_t n)
{
    if (!*arr) {
        *arr = json_array();
        if (!*arr)
            return -ENOMEM;
    }
    for (size_t i = 0; i < json_array_size(*arr); i++) {
        json_t *v = json_array_get(*arr, i);
        if (json_is_string(v) && json_string_length(v) == n &&
            memcmp(json_string_value(v), name, n) == 0)
            return 0;
    }
    json_t *s = json_stringn(name, n);
    if (!s)
        return 0; /* not UTF-8: no input or step can have that name */
    return json_array_append_new(*arr, s) ? -ENOMEM : 0;
}

static int scan_expr(const char *s, size_t len, json_t **inputs, json_t **steps)
{
    size_t i = 0;
    enum tok_kind prev = T_OTHER;
    for (;;) {
        tok t = next_tok(s, len, &i);
        if (t.kind == T_END)
            return 0;
        json_t **dst = NULL;
        if (t.kind == T_NAME && prev != T_DOT && prev != T_COLON) {
            if (t.n == 6 && memcmp(t.p, "inputs", 6) == 0)
                dst = inputs;
            else if (t.n == 5 && memcmp(t.p, "steps", 5) == 0)
                dst = steps;
        }
        prev = t.kind;
        if (!dst)
            continue;
        size_t save = i;
        tok a = next_tok(s, len, &i);
        if (a.kind == T_DOT) {
            tok b = next_tok(s, len, &i);
            if (b.kind == T_NAME) {
                int rc = add_name(dst, b.p, b.n);
                if (rc)
                    return rc;
                prev = T_NAME;
                continue;
            }
        } else if (a.kind == T_LBRACKET) {
            tok b = next_tok(s, len, &i);
            tok c = next_tok(s, len, &i);
            if (b.kind == T_STRING && c.kind == T_RBRACKET) {
                char name[256];
                size_t n = 0;
                if (unescape(&b, name, sizeof name, &n) == 0) {
                    int rc = add_name(dst, name, n);
                    if (rc)
                        return rc;
                }
                prev = T_RBRACKET;
                continue;
            }
        }
        i = save; /* not a reference by name: scan on from the token after the name */
    }
}

/* A name after `.` or a string key in `[...]` at s[*i]: 1 with it in out (unescaped), else 0
 * (with *i where it was). */
static int read_key(const char *s, size_t len, size_t *i, char *out, size_t cap)
{
    size_t save = *i;
    tok a = next_tok(s, len, i);
    if (a.kind == T_DOT) {
        tok b = next_tok(s, len, i);
        if (b.kind == T_NAME && b.n < cap) {
            memcpy(out, b.p, b.n);
            out[b.n] = '\0';
            return 1;
        }
    } else if (a.kind == T_LBRACKET) {
        tok b = next_tok(s, len, i);
        tok c = next_tok(s, len, i);
        size_t n = 0;
        if (b.kind == T_STRING && c.kind == T_RBRACKET && unescape(&b, out, cap, &n) == 0 &&
            strlen(out) == n)
            return 1;
    }
    *i = save;
    return 0;
}

int cbx__tpl_output_refs(const char *s, size_t len, json_t **pairs)
{
    size_t i = 0;
    enum tok_kind prev = T_OTHER;
    for (;;) {
        tok t = next_tok(s, len, &i);
        if (t.kind == T_END)
            return 0;
        int is_steps = t.kind == T_NAME && prev != T_DOT && prev != T_COLON && t.n == 5 &&
                       memcmp(t.p, "steps", 5) == 0;
        prev = t.kind;
        if (!is_steps)
            continue;
        char step[256], word[256], key[256];
        size_t save = i;
        if (read_key(s, len, &i, step, sizeof step) && read_key(s, len, &i, word, sizeof word) &&
            strcmp(word, "outputs") == 0 && read_key(s, len, &i, key, sizeof key)) {
            json_t *pair = json_pack("[s,s]", step, key);
            if (!pair) /* not UTF-8: no step or output is called that */
                continue;
            if (!*pairs && !(*pairs = json_array())) {
                json_decref(pair);
                return -ENOMEM;
            }
            int seen = 0;
            for (size_t k = 0; k < json_array_size(*pairs) && !seen; k++)
                seen = json_equal(json_array_get(*pairs, k), pair);
            if (seen) {
                json_decref(pair);
            } else if (json_array_append_new(*pairs, pair)) {
                return -ENOMEM;
            }
            prev = T_NAME;
            continue;
        }
        i = save;
    }
}

static int refs_string(const char *s, size_t len, json_t **inputs, json_t **steps)
{
    size_t pos = 0;
    cbx__tpl_span sp;
    int r;
    while ((r = cbx__tpl_next(s, len, pos, &sp)) == 1) {
        int rc = scan_expr(s + sp.expr, sp.expr_end - sp.expr, inputs, steps);
        if (rc)
            return rc;
        pos = sp.close;
    }
    if (r < 0) /* unterminated: the rest of the text is the expression */
        return scan_expr(s + sp.expr, len - sp.expr, inputs, steps);
    return 0;
}

int cbx_template_refs(const json_t *value, json_t **inputs, json_t **steps)
{
    if (!value)
        return 0;
    switch (json_typeof(value)) {
    case JSON_STRING:
        return refs_string(json_string_value(value), json_string_length(value), inputs, steps);
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(value); i++) {
            int rc = cbx_template_refs(json_array_get(value, i), inputs, steps);
            if (rc)
                return rc;
        }
        return 0;
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)value, k, v)
        {
            int rc = cbx_template_refs(v, inputs, steps);
            if (rc)
                return rc;
        }
        return 0;
    }
    default:
        return 0;
    }
}

int cbx_template_refs_expr(const char *expr, json_t **inputs, json_t **steps)
{
    if (!expr)
        return 0;
    return scan_expr(expr, strlen(expr), inputs, steps);
}
