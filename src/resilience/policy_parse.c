/* A policy block (JSON) read into cbx_policy_opts, with errors that name the key path and
 * say what was expected. */
#include "cbx/policy.h"

#include "cbx/units.h"
#include "cbx/lua_sandbox.h"
#include "core/text.h"
#include "resilience/policy_lua.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ------------------------------------------------------------------------------- */

/* Set *err (if not NULL) to code at where, with a printf-style message; returns code. */
__attribute__((format(printf, 4, 5))) static int fail(cbx_err *err, int code, const char *where,
                                                      const char *fmt, ...)
{
    if (!err)
        return code;
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cbx_err_set_at(err, code, where, 0, 0, "%s", msg);
    return code;
}

/* Append s to the string in buf (len bytes in all), cutting it short if it must. */
static void append(char *buf, size_t len, const char *s)
{
    size_t n = strlen(buf);
    while (*s && n + 1 < len)
        buf[n++] = *s++;
    buf[n] = '\0';
}

/* "a.b", or "b" when a is empty. */
static void join(char *buf, size_t len, const char *a, const char *b)
{
    buf[0] = '\0';
    if (*a) {
        append(buf, len, a);
        append(buf, len, ".");
    }
    append(buf, len, b);
}

/* What a JSON value is, for "got ..." in messages. */
static const char *kind_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "a whole number";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

/* ---- unknown keys ------------------------------------------------------------------------- */

/* Every key of obj must be one of known (NULL-terminated). */
static int check_keys(const json_t *obj, const char *path, const char *const *known, cbx_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int found = 0;
        for (const char *const *k = known; *k; k++) {
            if (strcmp(*k, key) == 0) {
                found = 1;
                break;
            }
        }
        if (found)
            continue;
        const char *best = NULL;
        size_t best_d = 99;
        for (const char *const *k = known; *k; k++) {
            size_t d = cbx__edit_distance(key, *k);
            if (d < best_d) {
                best_d = d;
                best = *k;
            }
        }
        char where[256];
        join(where, sizeof where, path, key);
        const char *in = *path ? path : "the policy block";
        if (best && best_d <= 2 && best_d * 3 <= strlen(key) + 1)
            return fail(err, CBX_EUNKNOWN_KEY, where, "unknown key '%s' in %s; did you mean '%s'?",
                        key, in, best);
        char list[320] = "";
        size_t n = 0;
        for (const char *const *k = known; *k && n < sizeof list; k++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", k == known ? "" : ", ", *k);
        return fail(err, CBX_EUNKNOWN_KEY, where, "unknown key '%s' in %s (known keys: %s)", key,
                    in, list);
    }
    return 0;
}

static int want_object(const json_t *v, const char *where, cbx_err *err)
{
    if (json_is_object(v))
        return 0;
    return fail(err, CBX_EINVAL_CONFIG, where, "expected an object, got %s", kind_of(v));
}

/* ---- values ------------------------------------------------------------------------------- */

#define DURATION_HINT "a duration like 250ms or 5s (a bare number is milliseconds)"

static const char *skip_spaces(const char *s)
{
    while (*s == ' ')
        s++;
    return s;
}

static int get_duration(const json_t *v, const char *where, uint64_t *ns, cbx_err *err)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (*skip_spaces(s) == '-')
            return fail(err, CBX_EINVAL_CONFIG, where, "must not be negative: expected %s",
                        DURATION_HINT);
        if (cbx_duration_parse_ns(s, ns) != 0)
            return fail(err, CBX_EPARSE, where, "expected %s, got \"%s\"", DURATION_HINT, s);
        return 0;
    }
    if (json_is_number(v)) {
        double ms = json_number_value(v);
        if (ms < 0)
            return fail(err, CBX_EINVAL_CONFIG, where, "must not be negative: expected %s",
                        DURATION_HINT);
        if (!isfinite(ms) || ms * 1e6 >= 1.8e19)
            return fail(err, CBX_EINVAL_CONFIG, where, "too long: expected %s", DURATION_HINT);
        *ns = (uint64_t)llround(ms * 1e6);
        return 0;
    }
    return fail(err, CBX_EINVAL_CONFIG, where, "expected %s, got %s", DURATION_HINT, kind_of(v));
}

/* A duration that must be > 0 (0 would mean "the default" to the component). */
static int get_positive_duration(const json_t *v, const char *where, uint64_t *ns, cbx_err *err)
{
    int r = get_duration(v, where, ns, err);
    if (r == 0 && *ns == 0)
        return fail(err, CBX_EINVAL_CONFIG, where, "must be greater than 0: expected %s",
                    DURATION_HINT);
    return r;
}

/* A ratio: "50%" or a number 0..1. With over_one, "150%" and 1.5 are accepted too. */
static int get_ratio(const json_t *v, const char *where, int over_one, double *out, cbx_err *err)
{
    const char *range = over_one ? "a ratio >= 0 like 20% or 0.2"
                                 : "a ratio from 0 to 1, or a percentage from 0% to 100%";
    if (json_is_string(v)) {
        const char *s = skip_spaces(json_string_value(v));
        if (*s == '-')
            return fail(err, CBX_EINVAL_CONFIG, where, "must not be negative: expected %s", range);
        if (cbx_ratio_parse(s, out) == 0)
            return 0;
        /* Well formed but above 100%? Then it is a range error, not a syntax error. */
        char *end;
        double x = strtod(s, &end);
        const char *rest = skip_spaces(end);
        if (end != s && isfinite(x) && (*rest == '\0' || strcmp(rest, "%") == 0)) {
            if (*rest == '%')
                x /= 100.0;
            if (over_one) {
                *out = x;
                return 0;
            }
            return fail(err, CBX_EINVAL_CONFIG, where, "out of range: expected %s, got \"%s\"",
                        range, json_string_value(v));
        }
        return fail(err, CBX_EPARSE, where, "expected %s, got \"%s\"", range, json_string_value(v));
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);
        if (x < 0)
            return fail(err, CBX_EINVAL_CONFIG, where, "must not be negative: expected %s", range);
        if (!isfinite(x) || (!over_one && x > 1))
            return fail(err, CBX_EINVAL_CONFIG, where, "out of range: expected %s, got %g", range,
                        x);
        *out = x;
        return 0;
    }
    return fail(err, CBX_EINVAL_CONFIG, where, "expected %s, got %s", range, kind_of(v));
}

/* A whole number in [min, max]; an integral real (4.0) is accepted. */
static int get_uint(const json_t *v, const char *where, uint64_t min, uint64_t max, uint64_t *out,
                    cbx_err *err)
{
    double x = json_is_real(v) ? json_real_value(v) : 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return fail(err, CBX_EINVAL_CONFIG, where,
                        "must not be negative: expected a whole number >= %llu",
                        (unsigned long long)min);
        *out = (uint64_t)i;
    } else if (json_is_real(v) && x == floor(x) && fabs(x) < 9e18) {
        if (x < 0)
            return fail(err, CBX_EINVAL_CONFIG, where,
                        "must not be negative: expected a whole number >= %llu",
                        (unsigned long long)min);
        *out = (uint64_t)x;
    } else {
        return fail(err, CBX_EINVAL_CONFIG, where, "expected a whole number >= %llu, got %s",
                    (unsigned long long)min, kind_of(v));
    }
    if (*out < min)
        return fail(err, CBX_EINVAL_CONFIG, where, "expected a whole number >= %llu, got %llu",
                    (unsigned long long)min, (unsigned long long)*out);
    if (*out > max)
        return fail(err, CBX_EINVAL_CONFIG, where, "expected a whole number <= %llu, got %llu",
                    (unsigned long long)max, (unsigned long long)*out);
    return 0;
}

static int get_u32(const json_t *v, const char *where, uint32_t min, uint32_t *out, cbx_err *err)
{
    uint64_t x = 0;
    int r = get_uint(v, where, min, UINT32_MAX, &x, err);
    if (r == 0)
        *out = (uint32_t)x;
    return r;
}

static int get_number(const json_t *v, const char *where, double min, double *out, cbx_err *err)
{
    if (!json_is_number(v))
        return fail(err, CBX_EINVAL_CONFIG, where, "expected a number >= %g, got %s", min,
                    kind_of(v));
    double x = json_number_value(v);
    if (x < 0 && min >= 0)
        return fail(err, CBX_EINVAL_CONFIG, where, "must not be negative: expected a number >= %g",
                    min);
    if (!isfinite(x) || x < min)
        return fail(err, CBX_EINVAL_CONFIG, where, "expected a number >= %g, got %g", min, x);
    *out = x;
    return 0;
}

/* A rate in events per second: "50/s", "600/min", "10/h" or a number per second. */
static int get_rate(const json_t *v, const char *where, int allow_zero, double *out, cbx_err *err)
{
    const char *hint = "a rate like 50/s, 600/min or 10/h (a bare number is per second)";
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (*skip_spaces(s) == '-')
            return fail(err, CBX_EINVAL_CONFIG, where, "must not be negative: expected %s", hint);
        if (cbx_rate_parse(s, out) != 0)
            return fail(err, CBX_EPARSE, where, "expected %s, got \"%s\"", hint, s);
    } else if (json_is_number(v)) {
        *out = json_number_value(v);
        if (*out < 0)
            return fail(err, CBX_EINVAL_CONFIG, where, "must not be negative: expected %s", hint);
    } else {
        return fail(err, CBX_EINVAL_CONFIG, where, "expected %s, got %s", hint, kind_of(v));
    }
    if (!isfinite(*out) || (*out == 0 && !allow_zero))
        return fail(err, CBX_EINVAL_CONFIG, where, "must be greater than 0: expected %s", hint);
    return 0;
}

typedef const char *(*name_fn)(int i);

static const char *backoff_name_at(int i)
{
    return cbx_backoff_name((cbx_backoff)i);
}

static const char *jitter_name_at(int i)
{
    return cbx_jitter_name((cbx_jitter)i);
}

static const char *source_name_at(int i)
{
    return cbx_fallback_source_name(i + 1); /* cache, function, value */
}

/* One of count names, given by index. */
static int get_enum(const json_t *v, const char *where, name_fn name, int count, int *out,
                    cbx_err *err)
{
    char list[160] = "";
    size_t n = 0;
    for (int i = 0; i < count && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", name(i));
    if (!json_is_string(v))
        return fail(err, CBX_EINVAL_CONFIG, where, "expected one of %s, got %s", list, kind_of(v));
    const char *s = json_string_value(v);
    for (int i = 0; i < count; i++) {
        if (strcmp(s, name(i)) == 0) {
            *out = i;
            return 0;
        }
    }
    return fail(err, CBX_EINVAL_CONFIG, where, "expected one of %s, got \"%s\"", list, s);
}

static const char *breaker_state_name(int i)
{
    return cbx_breaker_state_name((cbx_breaker_state)i); /* closed, open, half_open */
}

static const char *half_open_judge_name(int i)
{
    return i ? "rate" : "first_failure";
}

#define KINDS_HINT "a failure kind: error, timeout, rate_limited, quality, custom or oom"

/* A list of failure kinds (a single name is a list of one) into an outcome mask. */
static int get_kinds(const json_t *v, const char *where, uint32_t *mask, cbx_err *err)
{
    char w[256];
    *mask = 0;
    if (json_is_string(v)) {
        cbx_outcome k = CBX_OUTCOME_ERROR;
        if (cbx_outcome_parse(json_string_value(v), &k) != 0 || !cbx_outcome_is_failure(k))
            return fail(err, CBX_EINVAL_CONFIG, where, "expected %s, got \"%s\"", KINDS_HINT,
                        json_string_value(v));
        *mask = CBX_OUTCOME_BIT(k);
        return 0;
    }
    if (!json_is_array(v))
        return fail(err, CBX_EINVAL_CONFIG, where, "expected a list of failure kinds, got %s",
                    kind_of(v));
    if (json_array_size(v) == 0)
        return fail(err, CBX_EINVAL_CONFIG, where,
                    "expected at least one failure kind (error, timeout, rate_limited, quality, "
                    "custom, oom)");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        cbx_outcome k = CBX_OUTCOME_ERROR;
        if (!json_is_string(e))
            return fail(err, CBX_EINVAL_CONFIG, w, "expected %s, got %s", KINDS_HINT, kind_of(e));
        if (cbx_outcome_parse(json_string_value(e), &k) != 0 || !cbx_outcome_is_failure(k))
            return fail(err, CBX_EINVAL_CONFIG, w, "expected %s, got \"%s\"", KINDS_HINT,
                        json_string_value(e));
        *mask |= CBX_OUTCOME_BIT(k);
    }
    return 0;
}

/* ---- sections ----------------------------------------------------------------------------- */

#define WHERE_LEN 256

/* obj[key], or NULL when absent; w receives the key path "path.key". */
static const json_t *field(const json_t *obj, const char *path, const char *key, char *w)
{
    join(w, WHERE_LEN, path, key);
    return json_object_get(obj, key);
}

static int parse_budget(cbx_retry_budget_opts *b, const json_t *obj, const char *path, cbx_err *err)
{
    static const char *const known[] = {"ratio", "min_per_second", "window", NULL};
    const json_t *v;
    char w[WHERE_LEN];
    int r = want_object(obj, path, err);
    if (r || (r = check_keys(obj, path, known, err)))
        return r;
    if ((v = field(obj, path, "ratio", w)) && (r = get_ratio(v, w, 1, &b->ratio, err)))
        return r;
    if ((v = field(obj, path, "min_per_second", w)) &&
        (r = get_rate(v, w, 1, &b->min_per_second, err)))
        return r;
    if ((v = field(obj, path, "window", w)) &&
        (r = get_positive_duration(v, w, &b->window_ns, err)))
        return r;
    return 0;
}

/* A list of integer codes within [lo, hi]: HTTP statuses, exit codes. */
static int get_codes(const json_t *v, const char *where, long long lo, long long hi, int32_t *codes,
                     uint32_t *n, cbx_err *err)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(err, CBX_EINVAL_CONFIG, where,
                    "expected a list of codes (%lld to %lld), got %s", lo, hi,
                    json_is_array(v) ? "an empty list" : kind_of(v));
    if (json_array_size(v) > CBX_POLICY_MAX_CODES)
        return fail(err, CBX_EINVAL_CONFIG, where, "at most %d codes, got %zu",
                    CBX_POLICY_MAX_CODES, json_array_size(v));
    size_t i;
    json_t *e;
    *n = 0;
    json_array_foreach(v, i, e)
    {
        char w[256];
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        if (!json_is_integer(e))
            return fail(err, CBX_EINVAL_CONFIG, w, "expected an integer from %lld to %lld, got %s",
                        lo, hi, kind_of(e));
        if (json_integer_value(e) < lo || json_integer_value(e) > hi)
            return fail(err, CBX_EINVAL_CONFIG, w,
                        "expected an integer from %lld to %lld, got %lld", lo, hi,
                        (long long)json_integer_value(e));
        codes[(*n)++] = (int32_t)json_integer_value(e);
    }
    return 0;
}

/* A Lua predicate over the attempt: a non-empty string that compiles as an expression. The
 * message is Lua's, at the key path (and the line, when the expression has several). */
static int get_predicate(const json_t *v, const char *where, const char **out, cbx_err *err)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return fail(err, CBX_EINVAL_CONFIG, where,
                    "expected a Lua expression over `attempt` (attempt.outputs.status == 503), "
                    "got %s",
                    json_is_string(v) ? "\"\"" : kind_of(v));
    const char *expr = json_string_value(v);
    if (strlen(expr) != json_string_length(v))
        return fail(err, CBX_EINVAL_CONFIG, where, "a Lua expression must not contain a NUL byte");
    size_t len = 0;
    char *chunk = cbx__policy_lua_chunk(expr, &len);
    cbx_sandbox *sb = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    int r = chunk ? cbx_sandbox_new(&sb, NULL, &e) : -ENOMEM;
    if (r == 0)
        r = cbx_sandbox_load(sb, where, chunk, len, &e);
    cbx_sandbox_free(sb);
    free(chunk);
    if (r == -ENOMEM)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    if (r) {
        int lines = 1;
        for (const char *c = expr; *c; c++)
            lines += *c == '\n';
        if (e.line > lines)
            return fail(err, CBX_EINVAL_CONFIG, where,
                        "not a Lua expression: it ends too soon (%s)", e.msg);
        if (e.line > 1)
            return fail(err, CBX_EINVAL_CONFIG, where, "not a Lua expression: line %d: %s", e.line,
                        e.msg);
        return fail(err, CBX_EINVAL_CONFIG, where, "not a Lua expression: %s", e.msg);
    }
    *out = expr;
    return 0;
}

static int parse_retry(cbx_policy_opts *o, const json_t *obj, cbx_err *err)
{
    static const char *const known[] = {
        "attempts",    "backoff", "initial", "max",       "multiplier",   "jitter", "on",
        "max_elapsed", "seed",    "budget",  "on_status", "on_exit_code", "when",   NULL};
    const char *path = "retry";
    cbx_retry_opts *ro = &o->retry;
    const json_t *v;
    char w[WHERE_LEN];
    int r = want_object(obj, path, err);
    if (r || (r = check_keys(obj, path, known, err)))
        return r;
    o->sections |= CBX_POLICY_WITH_RETRY;
    if ((v = field(obj, path, "attempts", w)) && (r = get_u32(v, w, 1, &ro->max_attempts, err)))
        return r;
    if ((v = field(obj, path, "backoff", w))) {
        int i = 0;
        if ((r = get_enum(v, w, backoff_name_at, CBX_BACKOFF__COUNT, &i, err)))
            return r;
        ro->backoff = (cbx_backoff)i;
    }
    if ((v = field(obj, path, "initial", w)) && (r = get_duration(v, w, &ro->initial_ns, err)))
        return r;
    if ((v = field(obj, path, "max", w)) &&
        (r = get_positive_duration(v, w, &ro->max_delay_ns, err)))
        return r;
    if ((v = field(obj, path, "multiplier", w)) && (r = get_number(v, w, 1, &ro->multiplier, err)))
        return r;
    if ((v = field(obj, path, "jitter", w))) {
        int i = 0;
        if ((r = get_enum(v, w, jitter_name_at, CBX_JITTER__COUNT, &i, err)))
            return r;
        ro->jitter = (cbx_jitter)i;
    }
    if ((v = field(obj, path, "max_elapsed", w)) &&
        (r = get_duration(v, w, &ro->max_elapsed_ns, err)))
        return r;
    if ((v = field(obj, path, "on", w)) && (r = get_kinds(v, w, &ro->retry_on, err)))
        return r;
    if ((v = field(obj, path, "seed", w)) && (r = get_uint(v, w, 0, UINT64_MAX, &ro->seed, err)))
        return r;
    if ((v = field(obj, path, "on_status", w)) &&
        (r = get_codes(v, w, 100, 599, o->retry_on_status, &o->n_retry_on_status, err)))
        return r;
    if ((v = field(obj, path, "on_exit_code", w)) &&
        (r = get_codes(v, w, 0, 255, o->retry_on_exit_code, &o->n_retry_on_exit_code, err)))
        return r;
    if ((v = field(obj, path, "when", w)) && (r = get_predicate(v, w, &o->retry_when, err)))
        return r;
    if ((v = field(obj, path, "budget", w))) {
        if ((r = parse_budget(&o->retry_budget, v, w, err)))
            return r;
        o->sections |= CBX_POLICY_WITH_RETRY_BUDGET;
    }
    return 0;
}

static int parse_breaker(cbx_policy_opts *o, const json_t *obj, cbx_err *err)
{
    static const char *const known[] = {"consecutive_failures",
                                        "failure_rate",
                                        "slow_rate",
                                        "window",
                                        "time_window",
                                        "buckets",
                                        "min_calls",
                                        "slow_call",
                                        "quality_threshold",
                                        "failure_kinds",
                                        "open_for",
                                        "open_multiplier",
                                        "open_max",
                                        "half_open_probes",
                                        "close_after",
                                        "probe_lease",
                                        "half_open_max",
                                        "half_open_judge",
                                        "half_open_failure_rate",
                                        "half_open_slow_rate",
                                        "initial_state",
                                        "key",
                                        "count_when",
                                        "ignore_when",
                                        NULL};
    const char *path = "breaker";
    cbx_breaker_opts *bo = &o->breaker;
    const json_t *v;
    char w[WHERE_LEN];
    int r = want_object(obj, path, err);
    if (r || (r = check_keys(obj, path, known, err)))
        return r;
    o->sections |= CBX_POLICY_WITH_BREAKER;
    int window_is_time = 0;
    if ((v = field(obj, path, "consecutive_failures", w)) &&
        (r = get_u32(v, w, 0, &bo->consecutive_failures, err)))
        return r;
    if ((v = field(obj, path, "window", w))) {
        if (json_is_string(v)) {
            if ((r = get_positive_duration(v, w, &bo->time_window.length_ns, err)))
                return r;
            window_is_time = 1;
        } else if (json_is_number(v)) {
            if ((r = get_u32(v, w, 1, &bo->count_window.calls, err)))
                return r;
        } else {
            return fail(err, CBX_EINVAL_CONFIG, w,
                        "expected a number of calls (20) or a duration (10s), got %s", kind_of(v));
        }
    }
    if ((v = field(obj, path, "time_window", w))) {
        if (window_is_time)
            return fail(err, CBX_EINVAL_CONFIG, w,
                        "window is already a time window; give time_window only beside a "
                        "count window (window: 20)");
        if ((r = get_positive_duration(v, w, &bo->time_window.length_ns, err)))
            return r;
    }
    int has_count = bo->count_window.calls != 0, has_time = bo->time_window.length_ns != 0;
    if ((v = field(obj, path, "buckets", w))) {
        if (!has_time)
            return fail(err, CBX_EINVAL_CONFIG, w,
                        "buckets needs a time window (window: 10s, or time_window: 10s)");
        if ((r = get_u32(v, w, 1, &bo->time_window.buckets, err)))
            return r;
    }
    static const char *const rate_keys[] = {"failure_rate", "slow_rate", "min_calls"};
    for (int i = 0; i < 3; i++) {
        if (!(v = field(obj, path, rate_keys[i], w)))
            continue;
        if (!has_count && !has_time)
            return fail(err, CBX_EINVAL_CONFIG, w,
                        "%s needs a window (window: 20 for the last 20 calls, or window: 10s)",
                        rate_keys[i]);
        if (i == 2) {
            uint32_t n = 0;
            if ((r = get_u32(v, w, 1, &n, err)))
                return r;
            bo->count_window.min_calls = has_count ? n : 0;
            bo->time_window.min_calls = has_time ? n : 0;
            continue;
        }
        double x = 0;
        if ((r = get_ratio(v, w, 0, &x, err)))
            return r;
        if (x == 0)
            return fail(err, CBX_EINVAL_CONFIG, w,
                        "must be greater than 0%% (leave the key out to turn the rule off)");
        double *cw = i == 0 ? &bo->count_window.failure_rate : &bo->count_window.slow_rate;
        double *tw = i == 0 ? &bo->time_window.failure_rate : &bo->time_window.slow_rate;
        if (has_count)
            *cw = x;
        if (has_time)
            *tw = x;
    }
    if ((v = field(obj, path, "slow_call", w)) && (r = get_duration(v, w, &bo->slow_call_ns, err)))
        return r;
    if ((v = field(obj, path, "quality_threshold", w)) &&
        (r = get_ratio(v, w, 0, &bo->quality_threshold, err)))
        return r;
    if ((v = field(obj, path, "failure_kinds", w)) &&
        (r = get_kinds(v, w, &bo->failure_kinds, err)))
        return r;
    if ((v = field(obj, path, "open_for", w)) &&
        (r = get_positive_duration(v, w, &bo->open_ns, err)))
        return r;
    if ((v = field(obj, path, "open_multiplier", w)) &&
        (r = get_number(v, w, 1, &bo->open_multiplier, err)))
        return r;
    if ((v = field(obj, path, "open_max", w)) &&
        (r = get_positive_duration(v, w, &bo->open_max_ns, err)))
        return r;
    if ((v = field(obj, path, "half_open_probes", w)) &&
        (r = get_u32(v, w, 1, &bo->half_open_probes, err)))
        return r;
    if ((v = field(obj, path, "close_after", w)) && (r = get_u32(v, w, 1, &bo->close_after, err)))
        return r;
    if ((v = field(obj, path, "probe_lease", w)) &&
        (r = get_positive_duration(v, w, &bo->probe_lease_ns, err)))
        return r;
    if ((v = field(obj, path, "half_open_max", w)) &&
        (r = get_positive_duration(v, w, &bo->half_open_max_ns, err)))
        return r;
    int e = 0;
    if ((v = field(obj, path, "half_open_judge", w))) {
        if ((r = get_enum(v, w, half_open_judge_name, 2, &e, err)))
            return r;
        bo->half_open_judge = (cbx_breaker_judge)e;
    }
    static const char *const ho_rate_keys[] = {"half_open_failure_rate", "half_open_slow_rate"};
    for (int i = 0; i < 2; i++) {
        double *x = i ? &bo->half_open_slow_rate : &bo->half_open_failure_rate;
        if ((v = field(obj, path, ho_rate_keys[i], w)) && (r = get_ratio(v, w, 0, x, err)))
            return r;
        if (v && *x == 0)
            return fail(err, CBX_EINVAL_CONFIG, w,
                        "must be greater than 0%% (leave the key out for the window's rate)");
    }
    if ((v = field(obj, path, "initial_state", w))) {
        if ((r = get_enum(v, w, breaker_state_name, 3, &e, err)))
            return r;
        bo->initial_state = (cbx_breaker_state)e;
    }
    if ((v = field(obj, path, "key", w))) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return fail(err, CBX_EINVAL_CONFIG, w,
                        "expected a non-empty string (a template such as \"{{ "
                        "host(inputs.url) }}\"), got %s",
                        json_is_string(v) ? "\"\"" : kind_of(v));
        o->breaker_key = json_string_value(v);
    }
    if ((v = field(obj, path, "count_when", w)) &&
        (r = get_predicate(v, w, &o->breaker_count_when, err)))
        return r;
    if ((v = field(obj, path, "ignore_when", w)) &&
        (r = get_predicate(v, w, &o->breaker_ignore_when, err)))
        return r;
    return 0;
}

static int parse_rate_limit(cbx_policy_opts *o, const json_t *obj, cbx_err *err)
{
    static const char *const known[] = {"rate", "burst", "wait", "key", NULL};
    const char *path = "rate_limit";
    int r = want_object(obj, path, err);
    if (r || (r = check_keys(obj, path, known, err)))
        return r;
    o->sections |= CBX_POLICY_WITH_RATE_LIMIT;
    const json_t *rate = json_object_get(obj, "rate");
    if (!rate)
        return fail(err, CBX_EINVAL_CONFIG, "rate_limit.rate",
                    "is required: a rate like 50/s, 600/min or 10/h");
    if ((r = get_rate(rate, "rate_limit.rate", 0, &o->rate_limit.per_second, err)))
        return r;
    const json_t *wait = json_object_get(obj, "wait");
    if (wait && (r = get_duration(wait, "rate_limit.wait", &o->rate_limit_wait_ns, err)))
        return r;
    const json_t *key = json_object_get(obj, "key");
    if (key &&
        (!json_is_string(key) || json_string_length(key) < 1 || json_string_length(key) > 200 ||
         strlen(json_string_value(key)) < json_string_length(key)))
        return fail(err, CBX_EINVAL_CONFIG, "rate_limit.key",
                    "expected the name of a shared limiter: a string of 1 to 200 bytes");
    o->rate_limit_key = key ? json_string_value(key) : NULL;
    const json_t *burst = json_object_get(obj, "burst");
    if (burst)
        return get_u32(burst, "rate_limit.burst", 1, &o->rate_limit.burst, err);
    o->rate_limit.burst = cbx_ratelimit_default_burst(o->rate_limit.per_second);
    return 0;
}

static int parse_bulkhead(cbx_policy_opts *o, const json_t *obj, cbx_err *err)
{
    static const char *const known[] = {"max_concurrent", "max_queued", "queue_timeout", NULL};
    const char *path = "bulkhead";
    cbx_bulkhead_opts *ho = &o->bulkhead;
    int r = want_object(obj, path, err);
    if (r || (r = check_keys(obj, path, known, err)))
        return r;
    o->sections |= CBX_POLICY_WITH_BULKHEAD;
    const json_t *mc = json_object_get(obj, "max_concurrent");
    if (!mc)
        return fail(err, CBX_EINVAL_CONFIG, "bulkhead.max_concurrent",
                    "is required: the number of calls allowed at once (>= 1)");
    if ((r = get_u32(mc, "bulkhead.max_concurrent", 1, &ho->max_concurrent, err)))
        return r;
    const json_t *mq = json_object_get(obj, "max_queued");
    if (mq && (r = get_u32(mq, "bulkhead.max_queued", 0, &ho->max_queued, err)))
        return r;
    const json_t *qt = json_object_get(obj, "queue_timeout");
    if (qt && (r = get_duration(qt, "bulkhead.queue_timeout", &ho->queue_timeout_ns, err)))
        return r;
    return 0;
}

static int parse_fallback(cbx_policy_opts *o, const json_t *obj, cbx_err *err)
{
    static const char *const known[] = {"value", "cache", "function", "order", NULL};
    static const char *const cache_known[] = {"ttl", "max_entries", "key", "entries", NULL};
    const char *path = "fallback";
    cbx_fallback_opts *fo = &o->fallback;
    int r = want_object(obj, path, err);
    if (r || (r = check_keys(obj, path, known, err)))
        return r;
    o->sections |= CBX_POLICY_WITH_FALLBACK;
    const json_t *v = json_object_get(obj, "value");
    if (v)
        fo->value = v; /* any JSON, null included; borrowed from the block */

    const json_t *c = json_object_get(obj, "cache");
    if (c && !json_is_false(c)) {
        fo->cache = 1;
        fo->cache_ttl_ms = CBX_FALLBACK_DEFAULT_TTL_MS;
        fo->cache_max_entries = CBX_FALLBACK_DEFAULT_MAX_ENTRIES;
        if (json_is_object(c)) {
            if ((r = check_keys(c, "fallback.cache", cache_known, err)))
                return r;
            const json_t *ttl = json_object_get(c, "ttl");
            uint64_t ns = 0;
            if (ttl) {
                if ((r = get_duration(ttl, "fallback.cache.ttl", &ns, err)))
                    return r;
                if (ns < CBX_NS_PER_MS)
                    return fail(err, CBX_EINVAL_CONFIG, "fallback.cache.ttl",
                                "must be at least 1ms: expected %s", DURATION_HINT);
                fo->cache_ttl_ms = ns / CBX_NS_PER_MS;
            }
            const json_t *me = json_object_get(c, "max_entries");
            uint64_t n = 0;
            if (me) {
                if ((r = get_uint(me, "fallback.cache.max_entries", 1, SIZE_MAX, &n, err)))
                    return r;
                fo->cache_max_entries = (size_t)n;
            }
            const json_t *key = json_object_get(c, "key");
            if (key) {
                if (!json_is_string(key) || json_string_length(key) == 0)
                    return fail(err, CBX_EINVAL_CONFIG, "fallback.cache.key",
                                "expected a key template like \"{{ inputs.city }}\", got %s",
                                json_is_string(key) ? "\"\"" : kind_of(key));
                o->fallback_key = json_string_value(key);
            }
            const json_t *ent = json_object_get(c, "entries");
            if (ent) {
                if (!json_is_object(ent))
                    return fail(err, CBX_EINVAL_CONFIG, "fallback.cache.entries",
                                "expected an object {key: answer, ...}, got %s", kind_of(ent));
                o->fallback_entries = ent;
            }
        } else if (!json_is_true(c)) {
            return fail(err, CBX_EINVAL_CONFIG, "fallback.cache",
                        "expected an object {ttl, max_entries, key, entries} or true/false, got %s",
                        kind_of(c));
        }
    }

    const json_t *fn = json_object_get(obj, "function");
    if (fn) {
        if (!json_is_string(fn) || json_string_length(fn) == 0)
            return fail(err, CBX_EINVAL_CONFIG, "fallback.function",
                        "expected the name of a registered function, got %s",
                        json_is_string(fn) ? "\"\"" : kind_of(fn));
        o->fallback_function = json_string_value(fn);
    }

    const json_t *order = json_object_get(obj, "order");
    if (order) {
        if (!json_is_array(order) || json_array_size(order) == 0 ||
            json_array_size(order) > CBX_FALLBACK_MAX_SOURCES)
            return fail(err, CBX_EINVAL_CONFIG, "fallback.order",
                        "expected a list of 1 to 3 sources from cache, function, value, got %s",
                        kind_of(order));
        size_t i;
        json_t *e;
        json_array_foreach(order, i, e)
        {
            char w[64];
            snprintf(w, sizeof w, "fallback.order[%zu]", i);
            int s = 0;
            if ((r = get_enum(e, w, source_name_at, CBX_FALLBACK_MAX_SOURCES, &s, err)))
                return r;
            fo->order[i] = (cbx_fallback_source)(s + 1);
        }
    }
    return 0;
}

static int parse_quality(cbx_policy_opts *o, const json_t *obj, cbx_err *err)
{
    static const char *const known[] = {"threshold", NULL};
    int r = want_object(obj, "quality", err);
    if (r || (r = check_keys(obj, "quality", known, err)))
        return r;
    const json_t *t = json_object_get(obj, "threshold");
    if (!t)
        return fail(err, CBX_EINVAL_CONFIG, "quality.threshold",
                    "is required: a ratio like 0.7 or 70%%");
    return get_ratio(t, "quality.threshold", 0, &o->quality_threshold, err);
}

int cbx_policy_opts_parse(cbx_policy_opts *o, const json_t *block, cbx_err *err)
{
    static const char *const known[] = {"timeout",  "deadline", "retry",   "breaker", "rate_limit",
                                        "bulkhead", "fallback", "quality", NULL};
    if (!o)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "cbx_policy_opts_parse: options are NULL");
    if (!block || !json_is_object(block))
        return fail(err, CBX_EINVAL_CONFIG, "", "a policy block must be an object, got %s",
                    block ? kind_of(block) : "nothing");

    /* What a block cannot say survives; the rest starts from the defaults. */
    cbx_policy_opts keep = *o;
    cbx_policy_opts_default(o);
    o->name = keep.name;
    o->clock = keep.clock;
    o->shared_breaker = keep.shared_breaker;
    o->shared_rate_limit = keep.shared_rate_limit;
    o->shared_bulkhead = keep.shared_bulkhead;
    o->shared_fallback = keep.shared_fallback;
    o->retry.budget = keep.retry.budget;
    o->fallback.fn = keep.fallback.fn;
    o->fallback.fn_ud = keep.fallback.fn_ud;

    int r = check_keys(block, "", known, err);
    if (r)
        return r;
    const json_t *v;
    if ((v = json_object_get(block, "timeout")) &&
        (r = get_duration(v, "timeout", &o->timeout_ns, err)))
        return r;
    if ((v = json_object_get(block, "deadline")) &&
        (r = get_duration(v, "deadline", &o->deadline_ns, err)))
        return r;
    if ((v = json_object_get(block, "retry")) && (r = parse_retry(o, v, err)))
        return r;
    if ((v = json_object_get(block, "breaker")) && (r = parse_breaker(o, v, err)))
        return r;
    if ((v = json_object_get(block, "rate_limit")) && (r = parse_rate_limit(o, v, err)))
        return r;
    if ((v = json_object_get(block, "bulkhead")) && (r = parse_bulkhead(o, v, err)))
        return r;
    if ((v = json_object_get(block, "fallback")) && (r = parse_fallback(o, v, err)))
        return r;
    if ((v = json_object_get(block, "quality")) && (r = parse_quality(o, v, err)))
        return r;
    return 0;
}
