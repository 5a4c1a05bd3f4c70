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
 *   - any member, at any depth and outside those blocks too, whose name, upper-cased with '-'
 *     read as '_', matches one of cbx__redact_builtin_members (*_PAT, *_TOKEN, *_SECRET,
 *     *_KEY, *PASSWORD*): its whole value (flow inputs such as GITHUB_PAT or db_password).
 * A secret value becomes "***" (a string "Name: ***" or "NAME=***" for the string forms).
 */
#ifndef CBX_RUNTIME_REDACT_H
#define CBX_RUNTIME_REDACT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

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

/* The built-in member-name globs, NULL-terminated, static. */
extern const char *const cbx__redact_builtin_members[];
/* 1 when a member of this name is secret wherever it appears. */
int cbx__redact_member_name(const char *name);

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

/* v as compact JSON text, nothing masked: the text json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)
 * writes, made in one pass (jansson's reals go through printf's multi-precision code: most of the
 * time of a result's text). malloc'd and NUL-terminated (free it); NULL when out of memory or
 * nested deeper than 2048 levels. */
char *cbx__json_text(const json_t *v);

/* As cbx__redact_dump, and when the text is longer than max_bytes (0 = no cap): every string
 * value is cut to one length (15/16 of the cap, halved until the text fits; each cut string ending
 * "...[cbx: N of M bytes cut]"), and the value flagged with the length of its whole text: an
 * object gets a first member "cbx_truncated": M, anything else is written
 * {"cbx_truncated": M, "value": <the cut value>}; when even that does not fit,
 * {"cbx_truncated": M} alone. *truncated (may be NULL) says whether it was cut. The text is at
 * most about max_bytes long. Returns as cbx__redact_dump. */
int cbx__redact_dump_capped(const cbx__redact_rules *r, const json_t *v, uint64_t max_bytes,
                            cbx__strbuf *out, int *truncated);

#endif
