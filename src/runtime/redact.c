/* Name-based redaction of Authorization-like headers and secret environment variables. */
#define _GNU_SOURCE /* memmem */
#include "runtime/redact.h"

#include "core/json_escape.h"
#include "core/real_text.h"
#include "core/text.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const cbx__redact_builtin_env[] = {
    "*TOKEN*",           "*SECRET*",     "*PASSWORD*", "*PASSWD*",
    "*PASSPHRASE*",      "*_KEY",        "*APIKEY*",   "*API_KEY*",
    "*PRIVATE_KEY*",     "*CREDENTIAL*", "*_AUTH",     "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", NULL,
};

/* Member names secret wherever they appear (upper-cased, '-' read as '_'). */
const char *const cbx__redact_builtin_members[] = {
    "*_PAT", "*_TOKEN", "*_SECRET", "*_KEY", "*PASSWORD*", NULL,
};

static const char *const secret_headers[] = {
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", NULL,
};

/* Longest header or variable name the glob check looks at; longer names are matched against
 * the exact lists only for headers, and truncated names are never used. */
#define NAME_MAX_LEN 256

int cbx__redact_rules_init(cbx__redact_rules *r, const char *const *extra)
{
    *r = (cbx__redact_rules){0};
    size_t n = 0;
    while (extra && extra[n])
        n++;
    if (n == 0)
        return 0;
    r->env_globs = calloc(n, sizeof *r->env_globs);
    if (!r->env_globs)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        r->env_globs[i] = strdup(extra[i]);
        if (!r->env_globs[i])
            return -ENOMEM;
        r->n_env = i + 1;
    }
    return 0;
}

void cbx__redact_rules_clear(cbx__redact_rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_env; i++)
        free(r->env_globs[i]);
    free(r->env_globs);
    *r = (cbx__redact_rules){0};
}

static int glob_any(const char *const *globs, size_t n, const char *name)
{
    for (size_t i = 0; n == (size_t)-1 ? globs[i] != NULL : i < n; i++)
        if (cbx__glob_match(globs[i], name, 1))
            return 1;
    return 0;
}

/* pat (upper case, as the built-in lists are) against up, a name already upper-cased, n bytes:
 * the built-in globs are all "*X*", "*X" or "X", which a substring or suffix test decides in one
 * pass instead of the backtracking match (the journal checks every member name of every record
 * it writes against these lists). Any other glob goes to cbx__glob_match. */
static int upper_glob(const char *pat, const char *up, size_t n)
{
    size_t pl = strlen(pat);
    size_t lead = pl > 0 && pat[0] == '*';
    size_t trail = pl > lead && pat[pl - 1] == '*';
    const char *core = pat + lead;
    size_t cl = pl - lead - trail;
    if (memchr(core, '*', cl) || memchr(core, '?', cl))
        return cbx__glob_match(pat, up, 1);
    if (cl > n)
        return 0;
    if (lead && trail)
        return memmem(up, n, core, cl) != NULL;
    if (lead)
        return memcmp(up + n - cl, core, cl) == 0;
    if (trail)
        return memcmp(up, core, cl) == 0;
    return cl == n && memcmp(up, core, cl) == 0;
}

/* The set of characters a name holds, one bit each for 'A'..'Z' (either case), '0'..'9' and '_'
 * (other characters: none; the built-in globs use only these). A glob's literal characters must
 * all be in the name for it to match, so most names are told apart from every glob of a list by
 * one AND each. */
#define LETTER(c, b) [c] = 1ull << (b), [(c) + 32] = 1ull << (b)
static const uint64_t char_bits[256] = {
    LETTER('A', 0),     LETTER('B', 1),     LETTER('C', 2),     LETTER('D', 3),
    LETTER('E', 4),     LETTER('F', 5),     LETTER('G', 6),     LETTER('H', 7),
    LETTER('I', 8),     LETTER('J', 9),     LETTER('K', 10),    LETTER('L', 11),
    LETTER('M', 12),    LETTER('N', 13),    LETTER('O', 14),    LETTER('P', 15),
    LETTER('Q', 16),    LETTER('R', 17),    LETTER('S', 18),    LETTER('T', 19),
    LETTER('U', 20),    LETTER('V', 21),    LETTER('W', 22),    LETTER('X', 23),
    LETTER('Y', 24),    LETTER('Z', 25),    ['0'] = 1ull << 26, ['1'] = 1ull << 27,
    ['2'] = 1ull << 28, ['3'] = 1ull << 29, ['4'] = 1ull << 30, ['5'] = 1ull << 31,
    ['6'] = 1ull << 32, ['7'] = 1ull << 33, ['8'] = 1ull << 34, ['9'] = 1ull << 35,
    ['_'] = 1ull << 36,
};
#undef LETTER

/* The literal characters of a built-in glob (upper case; '*' and '?' are not literal). */
static uint64_t glob_chars(const char *pat)
{
    uint64_t m = 0;
    for (; *pat; pat++)
        if (*pat != '*' && *pat != '?')
            m |= char_bits[(unsigned char)*pat];
    return m;
}

/* glob_any over a built-in list (NULL-terminated, upper case) for name, with '-' read as '_'
 * when dash_is_underscore. masks: the lists' glob_chars, filled on first use. */
static int builtin_any(const char *const *globs, _Atomic uint64_t *masks, const char *name,
                       int dash_is_underscore)
{
    /* first the characters the name holds (no copy): most names lack one of every glob's */
    uint64_t have = 0;
    size_t n = 0;
    for (; name[n]; n++)
        have |= char_bits[(unsigned char)name[n]];
    if (dash_is_underscore && strchr(name, '-'))
        have |= char_bits['_'];
    if (n >= NAME_MAX_LEN) /* not cut: the slow match on the whole name (env names only: member
                              names this long are never secret) */
        return dash_is_underscore ? 0 : glob_any(globs, (size_t)-1, name);
    char up[NAME_MAX_LEN];
    int copied = 0;
    for (size_t i = 0; globs[i]; i++) {
        /* 0 = not computed yet (no glob of the lists is all wildcards); threads that race here
         * store the same value */
        uint64_t need = atomic_load_explicit(&masks[i], memory_order_relaxed);
        if (!need) {
            need = glob_chars(globs[i]);
            atomic_store_explicit(&masks[i], need, memory_order_relaxed);
        }
        if (need & ~have)
            continue;
        if (!copied) {
            for (size_t k = 0; k < n; k++) {
                char c = name[k];
                up[k] = c >= 'a' && c <= 'z'             ? (char)(c - 'a' + 'A')
                        : dash_is_underscore && c == '-' ? '_'
                                                         : c;
            }
            up[n] = '\0';
            copied = 1;
        }
        if (upper_glob(globs[i], up, n))
            return 1;
    }
    return 0;
}

static _Atomic uint64_t env_masks[sizeof cbx__redact_builtin_env / sizeof *cbx__redact_builtin_env];
static _Atomic uint64_t
    member_masks[sizeof cbx__redact_builtin_members / sizeof *cbx__redact_builtin_members];

int cbx__redact_env_name(const cbx__redact_rules *r, const char *name)
{
    if (!name || !*name)
        return 0;
    if (builtin_any(cbx__redact_builtin_env, env_masks, name, 0))
        return 1;
    return r && r->n_env > 0 && glob_any((const char *const *)r->env_globs, r->n_env, name);
}

int cbx__redact_header_name(const cbx__redact_rules *r, const char *name)
{
    if (!name || !*name)
        return 0;
    for (size_t i = 0; secret_headers[i]; i++)
        if (strcasecmp(name, secret_headers[i]) == 0)
            return 1;
    char norm[NAME_MAX_LEN];
    size_t len = strlen(name);
    if (len >= sizeof norm)
        return 0;
    for (size_t i = 0; i <= len; i++)
        norm[i] = name[i] == '-' ? '_' : name[i];
    return cbx__redact_env_name(r, norm);
}

int cbx__redact_member_name(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= NAME_MAX_LEN)
        return 0;
    /* every name of the list holds a '_' (or '-') or "password": most member names hold
     * neither and are done here, on the journal's write path */
    if (len < 8 && !strpbrk(name, "_-"))
        return 0;
    return builtin_any(cbx__redact_builtin_members, member_masks, name, 1);
}

/* The name before sep in s ("NAME=value", "Name: value"), copied into buf; 0 when s has no
 * sep or the name does not fit. */
static int name_before(const char *s, char sep, char *buf, size_t len)
{
    const char *p = strchr(s, sep);
    if (!p || (size_t)(p - s) >= len)
        return 0;
    memcpy(buf, s, (size_t)(p - s));
    buf[p - s] = '\0';
    return 1;
}

static int is_redacted(const json_t *v)
{
    return json_is_string(v) && strcmp(json_string_value(v), CBX__REDACTED) == 0;
}

/* "NAME<sep>***" (sep_text is what follows the name, e.g. "=" or ": "). */
static json_t *masked_string(const char *name, const char *sep_text)
{
    size_t len = strlen(name) + strlen(sep_text) + sizeof CBX__REDACTED;
    char *buf = malloc(len);
    if (!buf)
        return NULL;
    snprintf(buf, len, "%s%s" CBX__REDACTED, name, sep_text);
    json_t *v = json_string(buf);
    free(buf);
    return v;
}

/* A string "Name: value" (headers) or "NAME=value" (env) whose value is not masked yet. */
static int string_secret(const cbx__redact_rules *r, const char *s, int headers, char *name,
                         size_t len)
{
    if (!name_before(s, headers ? ':' : '=', name, len))
        return 0;
    const char *rest = s + strlen(name) + 1;
    if (headers)
        rest += strspn(rest, " \t");
    if (strcmp(rest, CBX__REDACTED) == 0)
        return 0;
    if (headers) {
        size_t n = strlen(name);
        while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
            name[--n] = '\0';
        return cbx__redact_header_name(r, name);
    }
    return cbx__redact_env_name(r, name);
}

/* Secrets inside the value of a "headers" (headers = 1) or "env" member. When mutate, they are
 * replaced in place. Returns how many; *oom set when an allocation failed. */
static size_t walk_secret_block(const cbx__redact_rules *r, json_t *v, int headers, int mutate,
                                int *oom)
{
    size_t found = 0;
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            const char *key = json_object_iter_key(it);
            int secret = headers ? cbx__redact_header_name(r, key) : cbx__redact_env_name(r, key);
            if (!secret || is_redacted(json_object_iter_value(it)))
                continue;
            found++;
            if (mutate && json_object_iter_set_new(v, it, json_string(CBX__REDACTED)) != 0)
                *oom = 1;
        }
        return found;
    }
    if (!json_is_array(v))
        return 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        char name[NAME_MAX_LEN];
        if (json_is_string(e)) {
            if (!string_secret(r, json_string_value(e), headers, name, sizeof name))
                continue;
            found++;
            if (mutate) {
                json_t *m = masked_string(name, headers ? ": " : "=");
                if (!m || json_array_set_new(v, i, m) != 0)
                    *oom = 1;
            }
        } else if (headers && json_is_object(e)) {
            json_t *n = json_object_get(e, "name");
            json_t *val = json_object_get(e, "value");
            if (!json_is_string(n) || !val || is_redacted(val) ||
                !cbx__redact_header_name(r, json_string_value(n)))
                continue;
            found++;
            if (mutate && json_object_set_new(e, "value", json_string(CBX__REDACTED)) != 0)
                *oom = 1;
        }
    }
    return found;
}

static size_t walk(const cbx__redact_rules *r, json_t *v, int mutate, int *oom)
{
    size_t found = 0;
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            const char *key = json_object_iter_key(it);
            json_t *child = json_object_iter_value(it);
            if (cbx__redact_member_name(key)) {
                if (is_redacted(child))
                    continue;
                found++;
                if (mutate && json_object_iter_set_new(v, it, json_string(CBX__REDACTED)) != 0)
                    *oom = 1;
            } else if (strcasecmp(key, "headers") == 0 &&
                       (json_is_object(child) || json_is_array(child)))
                found += walk_secret_block(r, child, 1, mutate, oom);
            else if ((strcasecmp(key, "env") == 0 || strcasecmp(key, "environment") == 0) &&
                     (json_is_object(child) || json_is_array(child)))
                found += walk_secret_block(r, child, 0, mutate, oom);
            else
                found += walk(r, child, mutate, oom);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            found += walk(r, json_array_get(v, i), mutate, oom);
    }
    return found;
}

size_t cbx__redact_count(const cbx__redact_rules *r, const json_t *v)
{
    int oom = 0;
    /* mutate = 0: the walk only reads, so dropping const is safe */
    return v ? walk(r, (json_t *)(uintptr_t)v, 0, &oom) : 0;
}

int cbx__redact_json(const cbx__redact_rules *r, const json_t *v, json_t **out)
{
    *out = NULL;
    if (cbx__redact_count(r, v) == 0)
        return 0;
    json_t *copy = json_deep_copy(v);
    if (!copy)
        return -ENOMEM;
    int oom = 0;
    walk(r, copy, 1, &oom);
    if (oom) {
        json_decref(copy);
        return -ENOMEM;
    }
    *out = copy;
    return 0;
}

/* ---- the redacting writer ---------------------------------------------------------------- */

/* Deeper than any parsed JSON can be (jansson's parser stops at 2048): a cycle. */
#define DUMP_MAX_DEPTH 2048

typedef struct dumper {
    const cbx__redact_rules *r;
    cbx__strbuf *b;
    int oom;
    size_t max_string; /* 0 = none; else string values longer than this are cut */
    int plain;         /* nothing masked (cbx__json_text) */
} dumper;

static int reserve(dumper *d, size_t n)
{
    cbx__strbuf *b = d->b;
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        d->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void put(dumper *d, const char *s, size_t n)
{
    if (reserve(d, n) == 0) {
        memcpy(d->b->p + d->b->len, s, n);
        d->b->len += n;
    }
}

static void putc_(dumper *d, char c)
{
    if (reserve(d, 1) == 0)
        d->b->p[d->b->len++] = c;
}

/* As jansson writes strings: '"' and '\\' escaped, control characters as \b \f \n \r \t or
 * \u00XX, everything else (UTF-8 included) as it is. */
static void put_string_body(dumper *d, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') /* the common case, without a call */
            continue;
        char esc[7];
        size_t len = cbx__json_escape(c, esc, 1);
        if (!len)
            continue;
        put(d, s + run, i - run);
        run = i + 1;
        put(d, esc, len);
    }
    put(d, s + run, n - run);
}

static void put_string(dumper *d, const char *s, size_t n)
{
    putc_(d, '"');
    put_string_body(d, s, n);
    putc_(d, '"');
}

/* A string value: cut to d->max_string bytes (at a UTF-8 boundary) with a note of the cut. */
static void put_value_string(dumper *d, const char *s, size_t n)
{
    if (!d->max_string || n <= d->max_string) {
        put_string(d, s, n);
        return;
    }
    size_t k = d->max_string;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    char note[80];
    int m = snprintf(note, sizeof note, "...[cbx: %zu of %zu bytes cut]", n - k, n);
    putc_(d, '"');
    put_string_body(d, s, k);
    put(d, note, (size_t)m);
    putc_(d, '"');
}

static void put_cstring(dumper *d, const char *s)
{
    put_string(d, s, strlen(s));
}

static void put_integer(dumper *d, json_int_t v)
{
    char buf[24];
    char *p = buf + sizeof buf;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    put(d, p, (size_t)(buf + sizeof buf - p));
}

/* A real: the fewest digits that read back (what JSON cannot hold, written 0.0). */
static void put_real(dumper *d, double v)
{
    char buf[40];
    size_t n = cbx__real_json(v, buf);
    if (n)
        put(d, buf, n);
    else
        put(d, "0.0", 3);
}

static void dump_value(dumper *d, const json_t *v, int depth);

/* The value of a "headers" (headers = 1) or "env" member, its secrets masked. */
static void dump_block(dumper *d, const json_t *v, int headers, int depth)
{
    json_t *m = (json_t *)(uintptr_t)v; /* jansson's iterators take non-const; nothing is
                                           changed */
    if (json_is_object(m)) {
        putc_(d, '{');
        int first = 1;
        for (void *it = json_object_iter(m); it; it = json_object_iter_next(m, it)) {
            const char *key = json_object_iter_key(it);
            if (!first)
                putc_(d, ',');
            first = 0;
            put_cstring(d, key);
            putc_(d, ':');
            int secret =
                headers ? cbx__redact_header_name(d->r, key) : cbx__redact_env_name(d->r, key);
            if (secret)
                put_cstring(d, CBX__REDACTED);
            else
                dump_value(d, json_object_iter_value(it), depth + 1);
        }
        putc_(d, '}');
        return;
    }
    putc_(d, '[');
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *e = json_array_get(m, i);
        char name[NAME_MAX_LEN];
        if (i)
            putc_(d, ',');
        if (json_is_string(e) &&
            string_secret(d->r, json_string_value(e), headers, name, sizeof name)) {
            char masked[NAME_MAX_LEN + sizeof ": " CBX__REDACTED];
            snprintf(masked, sizeof masked, "%s%s" CBX__REDACTED, name, headers ? ": " : "=");
            put_cstring(d, masked);
        } else if (headers && json_is_object(e) && json_is_string(json_object_get(e, "name")) &&
                   json_object_get(e, "value") &&
                   cbx__redact_header_name(d->r, json_string_value(json_object_get(e, "name")))) {
            putc_(d, '{');
            int first = 1;
            for (void *it = json_object_iter(e); it; it = json_object_iter_next(e, it)) {
                const char *key = json_object_iter_key(it);
                if (!first)
                    putc_(d, ',');
                first = 0;
                put_cstring(d, key);
                putc_(d, ':');
                if (strcmp(key, "value") == 0)
                    put_cstring(d, CBX__REDACTED);
                else
                    dump_value(d, json_object_iter_value(it), depth + 2);
            }
            putc_(d, '}');
        } else {
            dump_value(d, e, depth + 1);
        }
    }
    putc_(d, ']');
}

static void dump_value(dumper *d, const json_t *v, int depth)
{
    if (d->oom || depth > DUMP_MAX_DEPTH) {
        d->oom |= 2;
        return;
    }
    json_t *m = (json_t *)(uintptr_t)v; /* as above: only read */
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        putc_(d, '{');
        int first = 1;
        for (void *it = json_object_iter(m); it; it = json_object_iter_next(m, it)) {
            const char *key = json_object_iter_key(it);
            json_t *child = json_object_iter_value(it);
            if (!first)
                putc_(d, ',');
            first = 0;
            put_cstring(d, key);
            putc_(d, ':');
            int block = !d->plain && (json_is_object(child) || json_is_array(child));
            if (!d->plain && cbx__redact_member_name(key))
                put_cstring(d, CBX__REDACTED);
            else if (block && strcasecmp(key, "headers") == 0)
                dump_block(d, child, 1, depth + 1);
            else if (block && (strcasecmp(key, "env") == 0 || strcasecmp(key, "environment") == 0))
                dump_block(d, child, 0, depth + 1);
            else
                dump_value(d, child, depth + 1);
        }
        putc_(d, '}');
        break;
    }
    case JSON_ARRAY:
        putc_(d, '[');
        for (size_t i = 0; i < json_array_size(m); i++) {
            if (i)
                putc_(d, ',');
            dump_value(d, json_array_get(m, i), depth + 1);
        }
        putc_(d, ']');
        break;
    case JSON_STRING:
        put_value_string(d, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put_integer(d, json_integer_value(v));
        break;
    case JSON_REAL:
        put_real(d, json_real_value(v));
        break;
    case JSON_TRUE:
        put(d, "true", 4);
        break;
    case JSON_FALSE:
        put(d, "false", 5);
        break;
    default:
        put(d, "null", 4);
        break;
    }
}

char *cbx__json_text(const json_t *v)
{
    cbx__strbuf b = {0};
    dumper d = {.b = &b, .plain = 1};
    dump_value(&d, v, 0);
    if (!d.oom && reserve(&d, 1) == 0) {
        b.p[b.len] = '\0';
        return b.p;
    }
    free(b.p);
    return NULL;
}

int cbx__redact_dump(const cbx__redact_rules *r, const json_t *v, cbx__strbuf *out)
{
    out->len = 0;
    dumper d = {.r = r, .b = out};
    dump_value(&d, v, 0);
    if (d.oom & 2)
        return -ELOOP;
    return d.oom ? -ENOMEM : 0;
}

/* Room for the flag the capped dump adds ("{\"cbx_truncated\":N," and a closing brace). */
#define FLAG_ROOM 64

int cbx__redact_dump_capped(const cbx__redact_rules *r, const json_t *v, uint64_t max_bytes,
                            cbx__strbuf *out, int *truncated)
{
    if (truncated)
        *truncated = 0;
    int rc = cbx__redact_dump(r, v, out);
    if (rc != 0 || max_bytes == 0 || out->len <= max_bytes)
        return rc;
    size_t full = out->len;
    /* first most of the cap (what is not one long string is usually small), then halved */
    size_t limit = max_bytes > FLAG_ROOM ? (size_t)(max_bytes - FLAG_ROOM) / 16 * 15 : 1;
    dumper d = {.r = r, .b = out};
    for (int first = 1;; first = 0) { /* cut every long string to one length */
        if (!first)
            limit = limit / 2 ? limit / 2 : 1;
        out->len = 0;
        d.max_string = limit;
        dump_value(&d, v, 0);
        if (d.oom)
            return d.oom & 2 ? -ELOOP : -ENOMEM;
        if (out->len + FLAG_ROOM <= max_bytes || limit <= 16)
            break;
    }
    char head[FLAG_ROOM];
    int object = out->len > 0 && out->p[0] == '{';
    if (out->len + FLAG_ROOM > max_bytes) { /* too many values even cut: the size alone */
        out->len = 0;
        object = 1;
        putc_(&d, '{');
        putc_(&d, '}');
    }
    int hn = object ? snprintf(head, sizeof head, "{\"cbx_truncated\":%zu%s", full,
                               out->len > 2 ? "," : "")
                    : snprintf(head, sizeof head, "{\"cbx_truncated\":%zu,\"value\":", full);
    size_t skip = object ? 1 : 0; /* the object's own '{' is replaced by head */
    if (reserve(&d, (size_t)hn + 1) != 0)
        return -ENOMEM;
    memmove(out->p + hn, out->p + skip, out->len - skip);
    memcpy(out->p, head, (size_t)hn);
    out->len = out->len - skip + (size_t)hn;
    if (!object)
        putc_(&d, '}');
    if (d.oom)
        return -ENOMEM;
    if (truncated)
        *truncated = 1;
    return 0;
}
