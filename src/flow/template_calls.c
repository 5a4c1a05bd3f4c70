/* The functions a template calls by name, checked against what a template can call: the
 * helpers (template_helpers.c), the sandbox's globals (core/lua_sandbox.c) and the context. A
 * name outside these is nil when the template runs ("attempt to call a nil value"), so the
 * checker reports it at load time. test_template.c checks that each name here is callable. */
#include "flow/template_internal.h"

#include <string.h>

static const char *const known[] = {
    /* helpers */
    "json", "parse_json", "len", "default", "host", "trim", "split", "join", "contains",
    "starts_with", "ends_with", "type", "array",
    /* the sandbox's base library and libraries */
    "assert", "collectgarbage", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
    "print", "rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber",
    "tostring", "xpcall", NULL};

const char *const *cbx__tpl_known_calls(void)
{
    return known;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

static int is_known(const char *s, size_t n, const char *const *extra)
{
    for (const char *const *k = known; *k; k++)
        if (strlen(*k) == n && memcmp(*k, s, n) == 0)
            return 1;
    for (const char *const *k = extra; k && *k; k++)
        if (strlen(*k) == n && memcmp(*k, s, n) == 0)
            return 1;
    return 0;
}

static int is_keyword(const char *s, size_t n)
{
    static const char *const words[] = {"and",   "break", "do",       "else",  "elseif", "end",
                                        "false", "for",   "function", "goto",  "if",     "in",
                                        "local", "nil",   "not",      "or",    "repeat", "return",
                                        "then",  "true",  "until",    "while", NULL};
    for (const char *const *w = words; *w; w++)
        if (strlen(*w) == n && memcmp(*w, s, n) == 0)
            return 1;
    return 0;
}

int cbx__tpl_unknown_call(const char *s, size_t len, const char *const *extra, const char **name,
                          size_t *n)
{
    char prev = 0; /* the last character that is not a space, outside names and strings */
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (is_space(c)) {
            i++;
            continue;
        }
        if (c == '-' && i + 1 < len && s[i + 1] == '-') { /* a comment: to the end of the line */
            while (i < len && s[i] != '\n')
                i++;
            continue;
        }
        if (c == '"' || c == '\'') {
            for (i++; i < len && s[i] != c; i++)
                if (s[i] == '\\')
                    i++;
            i++;
            prev = 's';
            continue;
        }
        if (c == '[' && i + 1 < len && (s[i + 1] == '[' || s[i + 1] == '=')) {
            size_t j = i + 1;
            while (j < len && s[j] == '=')
                j++;
            if (j < len && s[j] == '[') { /* a long string: to "]", as many '=', "]" */
                size_t lv = j - i - 1, k = j + 1;
                for (; k < len; k++) {
                    size_t e = k + 1;
                    while (s[k] == ']' && e < len && s[e] == '=')
                        e++;
                    if (s[k] == ']' && e < len && s[e] == ']' && e - k - 1 == lv)
                        break;
                }
                i = k < len ? k + lv + 2 : len;
                prev = 's';
                continue;
            }
        }
        if (c >= '0' && c <= '9') {
            while (i < len && (name_char(s[i]) || s[i] == '.'))
                i++;
            prev = '0';
            continue;
        }
        if (!name_start(c)) {
            prev = c;
            i++;
            continue;
        }
        size_t b = i;
        while (i < len && name_char(s[i]))
            i++;
        size_t k = i;
        while (k < len && is_space(s[k]))
            k++;
        int call = k < len && (s[k] == '(' || s[k] == '"' || s[k] == '\'' || s[k] == '{');
        if (call && prev != '.' && prev != ':' && !is_keyword(s + b, i - b) &&
            !is_known(s + b, i - b, extra)) {
            *name = s + b;
            *n = i - b;
            return 1;
        }
        prev = 'a';
    }
    return 0;
}
