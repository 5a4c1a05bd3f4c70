/* Name-based redaction of secrets in JSON values, applied by the journal before anything is
 * written (internal).
 *
 * Two kinds of names are secret:
 *   - HTTP header names (case-insensitive): Authorization, Proxy-Authorization, Cookie,
 *     Set-Cookie, X-Api-Key, Api-Key; and any header whose name, upper-cased with '-' read as
 *     '_', matches one of the environment globs below (X-Auth-Token, X-Api-Secret, ...).
 *   - environment variable names matching a glob, case-insensitive: the built-in list
 *     (cbx__redact_builtin_env) plus the caller's extra globs. A glob knows '*' (any run of
 *     characters, also none) and '?' (one character); everything else matches itself.
 *
 * Where they are looked for, at any depth of the value:
 *   - a member named "headers" (any case) whose value is an object: each secret member's
 *     value; or an array: each string "Name: value" with a secret name, and each object
 *     {"name": NAME, "value": V} with a secret NAME;
 *   - a member named "env" or "environment" (any case) whose value is an object: each secret
 *     member's value; or an array: each string "NAME=value" with a secret NAME.
 * A secret value becomes "***" (a string "Name: ***" or "NAME=***" for the string forms).
 */
#ifndef CBX_RUNTIME_REDACT_H
#define CBX_RUNTIME_REDACT_H

#include <jansson.h>
#include <stddef.h>

#define CBX__REDACTED "***"

/* The built-in environment globs, NULL-terminated, static. */
extern const char *const cbx__redact_builtin_env[];

typedef struct cbx__redact_rules {
    char **env_globs; /* owned copies of the caller's extra globs */
    size_t n_env;
} cbx__redact_rules;

/* Copy extra (NULL-terminated, NULL = none) into *r. Returns 0 or -ENOMEM; *r is then safe to
 * clear either way. */
int cbx__redact_rules_init(cbx__redact_rules *r, const char *const *extra);
void cbx__redact_rules_clear(cbx__redact_rules *r);

/* 1 when the name is secret. r may be NULL (the built-in lists only). */
int cbx__redact_header_name(const cbx__redact_rules *r, const char *name);
int cbx__redact_env_name(const cbx__redact_rules *r, const char *name);

/* Number of secret values in v (0 when nothing would change). v is not modified. */
size_t cbx__redact_count(const cbx__redact_rules *r, const json_t *v);

/* Redact v: returns 0 with *out NULL when v holds no secret (use v as it is), or 0 with *out a
 * new reference to a redacted deep copy; -ENOMEM. v is never modified. */
int cbx__redact_json(const cbx__redact_rules *r, const json_t *v, json_t **out);

/* A growable text buffer, owned by whoever holds it (free p). */
typedef struct cbx__strbuf {
    char *p;
    size_t len, cap;
} cbx__strbuf;

/* v as compact JSON text (as json_dumps with JSON_COMPACT | JSON_ENCODE_ANY writes it) with
 * every secret written as "***", in one pass and without copying v: out->p[0 .. out->len),
 * not NUL-terminated, replacing what out held. Returns 0, -ENOMEM, or -ELOOP for a value
 * nested deeper than 2048 levels (a cycle). */
int cbx__redact_dump(const cbx__redact_rules *r, const json_t *v, cbx__strbuf *out);

#endif
