/* The policy: the parts put together, and the rules that take one call through them.
 *
 * The rules live in cbx_policy_admit (before an attempt) and cbx_policy_attempt_end (after
 * it); cbx_policy_call is a blocking loop over them, as an event loop is an asynchronous one. */
#include "cbx/policy.h"

#include "cbx/units.h"
#include "resilience/policy_lua.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cbx_policy {
    char *name;
    cbx_clock *clock; /* never NULL */
    uint64_t timeout_ns, deadline_ns;
    double quality_threshold;

    int has_retry;
    cbx_retry_opts retry;      /* as used: the budget filled in, max_elapsed bounded by the
                                  deadline; without a retry section, one attempt, retry_on 0 */
    uint64_t retry_elapsed_ns; /* retry.max_elapsed as configured, 0 = none */
    int deadline_bounds_retry; /* the deadline is tighter than retry.max_elapsed */

    cbx_retry_budget *budget;
    cbx_breaker *breaker;
    cbx_ratelimit *rate_limit;
    uint64_t rate_wait_ns; /* rate_limit.wait; 0 = refuse at once */
    cbx_bulkhead *bulkhead;
    cbx_fallback *fallback;
    int own_budget, own_breaker, own_rate_limit, own_bulkhead, own_fallback;
    uint32_t bulkhead_queue;      /* max_queued of the bulkhead */
    uint64_t bulkhead_timeout_ns; /* its queue_timeout */

    char *breaker_key, *fallback_function, *fallback_key;
    char *rate_key;             /* rate_limit.key, or NULL */
    int rl_pending;             /* rate_key named, not bound to a shared limiter yet */
    cbx_ratelimit_opts rl_opts; /* the section as the policy's own limiter was made from it */
    char *retry_when, *count_when, *ignore_when; /* Lua predicates, for the runtime */
    /* The fallback section as given, kept while a named function is unresolved so that
     * cbx_policy_fallback_resolve can make the fallback again with it (value: our own copy). */
    cbx_fallback_opts fb_opts;
    json_t *fb_entries; /* fallback.cache.entries (our copy), or NULL */
    int fb_pending;     /* fallback_function named, not resolved yet */
    void *fn_ud;        /* the resolved function's data, owned when fn_ud_free */
    void (*fn_ud_free)(void *ud);
    int32_t on_status[CBX_POLICY_MAX_CODES], on_exit_code[CBX_POLICY_MAX_CODES];
    uint32_t n_on_status, n_on_exit_code;
    cbx_breaker_opts breaker_opts; /* the section as the policy's own breaker was made from it
                                      (name NULL): for the breakers a key picks */
};

/* Why a finished run stopped, for cbx_policy_explain. */
enum {
    WHY_NONE,
    WHY_OUTCOME,  /* the outcome is not one that is retried */
    WHY_ATTEMPTS, /* retry.attempts used up */
    WHY_ELAPSED,  /* retry.max_elapsed would be passed */
    WHY_BUDGET,   /* the retry budget refused */
    WHY_DEADLINE, /* the deadline passed, or would before the next attempt */
    WHY_REFUSED,  /* the rate limiter, bulkhead or breaker refused */
    WHY_CANCELLED,
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t now_ns(const cbx_policy *p)
{
    return cbx_clock_now_ns(p->clock);
}

static int is_cancelled(const cbx_policy_run *run)
{
    return __atomic_load_n(&run->cancel, __ATOMIC_ACQUIRE) != 0;
}

const char *cbx_policy_status_name(cbx_policy_status s)
{
    switch (s) {
#define CBX__POLICY_STATUS_STR(name, str)                                                          \
    case CBX_POLICY_##name:                                                                        \
        return str;
        CBX_POLICY_STATUS_MAP(CBX__POLICY_STATUS_STR)
#undef CBX__POLICY_STATUS_STR
    default:
        break;
    }
    return "unknown";
}

const char *cbx_policy_decision_name(cbx_policy_decision d)
{
    switch (d) {
#define CBX__POLICY_DECISION_STR(name, str)                                                        \
    case CBX_POLICY_##name:                                                                        \
        return str;
        CBX_POLICY_DECISION_MAP(CBX__POLICY_DECISION_STR)
#undef CBX__POLICY_DECISION_STR
    }
    return "unknown";
}

/* ---- options and construction ------------------------------------------------------------- */

void cbx_policy_opts_default(cbx_policy_opts *o)
{
    memset(o, 0, sizeof *o);
    cbx_retry_opts_default(&o->retry);
    cbx_retry_budget_opts_default(&o->retry_budget);
    cbx_breaker_opts_default(&o->breaker);
}

/* Append s to the string in buf (len bytes in all), cutting it short if it must. */
static void append(char *buf, size_t len, const char *s)
{
    size_t n = strlen(buf);
    while (*s && n + 1 < len)
        buf[n++] = *s++;
    buf[n] = '\0';
}

/* A component's err->where names its C field; the policy reports the block's key path. */
struct field_key {
    const char *field, *key;
};

static const struct field_key breaker_fields[] = {
    {"count_window.calls", "window"},
    {"count_window.min_calls", "min_calls"},
    {"count_window.failure_rate", "failure_rate"},
    {"count_window.slow_rate", "slow_rate"},
    {"time_window.length_ns", "window"},
    {"time_window.buckets", "buckets"},
    {"time_window.min_calls", "min_calls"},
    {"time_window.failure_rate", "failure_rate"},
    {"time_window.slow_rate", "slow_rate"},
    {"slow_call_ns", "slow_call"},
    {"open_ns", "open_for"},
    {"open_max_ns", "open_max"},
    {"probe_lease_ns", "probe_lease"},
    {NULL, NULL},
};

static const struct field_key rate_limit_fields[] = {
    {"per_second", "rate"},
    {NULL, NULL},
};

static const struct field_key bulkhead_fields[] = {
    {"queue_timeout_ns", "queue_timeout"},
    {NULL, NULL},
};

static const struct field_key fallback_fields[] = {
    {"cache_ttl_ms", "cache.ttl"},
    {"cache_max_entries", "cache.max_entries"},
    {"fallback", ""},
    {NULL, NULL},
};

/* Rewrite err->where as "<section>.<key>" (or "<section>" for the section as a whole). A where
 * that already starts with the section is left as it is. */
static int prefix_where(cbx_err *err, int rc, const char *section, const struct field_key *map)
{
    if (!err)
        return rc;
    size_t n = strlen(section);
    if (strncmp(err->where, section, n) == 0 && (err->where[n] == '.' || err->where[n] == '\0'))
        return rc;
    const char *key = err->where;
    for (const struct field_key *m = map; m && m->field; m++) {
        if (strcmp(m->field, err->where) == 0) {
            key = m->key;
            break;
        }
    }
    char where[sizeof err->where] = "";
    append(where, sizeof where, section);
    if (*key) {
        append(where, sizeof where, ".");
        append(where, sizeof where, key);
    }
    memcpy(err->where, where, sizeof where);
    return rc;
}

/* The fallback's order without the function source (whose function is not resolved yet). */
static void drop_function(cbx_fallback_opts *fo)
{
    if (fo->order[0] == CBX_FALLBACK_NONE)
        return; /* the default order skips what is not configured */
    int j = 0;
    for (int i = 0; i < CBX_FALLBACK_MAX_SOURCES; i++) {
        if (fo->order[i] != CBX_FALLBACK_FUNCTION)
            fo->order[j++] = fo->order[i];
    }
    while (j < CBX_FALLBACK_MAX_SOURCES)
        fo->order[j++] = CBX_FALLBACK_NONE;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int make_retry(cbx_policy *p, const cbx_policy_opts *o, cbx_err *err)
{
    int r;
    if (!(o->sections & CBX_POLICY_WITH_RETRY)) {
        if ((o->sections & CBX_POLICY_WITH_RETRY_BUDGET) || o->retry.budget)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "retry.budget", 0, 0,
                                  "a retry budget needs a retry section");
        /* One attempt. retry_on 0 makes cbx_retry_next end every call with CBX_EFAILED. */
        cbx_retry_opts_default(&p->retry);
        p->retry.max_attempts = 1;
        p->retry.retry_on = 0;
        return 0;
    }
    p->has_retry = 1;
    p->retry = o->retry;
    if (o->retry.budget) {
        p->budget = o->retry.budget;
    } else if (o->sections & CBX_POLICY_WITH_RETRY_BUDGET) {
        cbx_retry_budget_opts bo = o->retry_budget;
        bo.clock = p->clock;
        r = cbx_retry_budget_new(&p->budget, &bo, err);
        if (r)
            return prefix_where(err, r, "retry.budget", NULL);
        p->own_budget = 1;
    }
    p->retry.budget = p->budget;
    r = cbx_retry_opts_validate(&p->retry, err);
    if (r)
        return prefix_where(err, r, "retry", NULL);
    p->retry_elapsed_ns = p->retry.max_elapsed_ns;
    if (p->deadline_ns) {
        /* No retry may start at or after the deadline: cbx_retry_next refuses a delay that ends
         * after first start + max_elapsed, so the deadline becomes max_elapsed + 1 ns. */
        uint64_t lim = p->deadline_ns > 1 ? p->deadline_ns - 1 : 1;
        if (p->retry.max_elapsed_ns == 0 || lim < p->retry.max_elapsed_ns) {
            p->retry.max_elapsed_ns = lim;
            p->deadline_bounds_retry = 1;
        }
    }
    return 0;
}

/* The canned answers of fallback.cache.entries, in a fallback just made. */
static int put_entries(cbx_policy *p, cbx_fallback *fb, cbx_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(p->fb_entries, k, v)
    {
        int r = cbx_fallback_remember_ttl(fb, k, v, CBX_FALLBACK_TTL_NEVER);
        if (r)
            return cbx_err_set_at(err, r, "fallback.cache.entries", 0, 0, "%s",
                                  r == CBX_EINVAL_CONFIG ? "canned entries need a cache"
                                                         : cbx_strerror(r));
    }
    return 0;
}

static int make_parts(cbx_policy *p, const cbx_policy_opts *o, cbx_err *err)
{
    int r;
    if (o->shared_breaker) {
        p->breaker = o->shared_breaker;
    } else if (o->sections & CBX_POLICY_WITH_BREAKER) {
        cbx_breaker_opts bo = o->breaker;
        bo.clock = p->clock;
        if (!bo.name)
            bo.name = p->name;
        r = cbx_breaker_new(&p->breaker, &bo, err);
        if (r)
            return prefix_where(err, r, "breaker", breaker_fields);
        p->own_breaker = 1;
        p->breaker_opts = bo;
        p->breaker_opts.name = NULL;
    }

    p->rate_wait_ns = o->rate_limit_wait_ns;
    if (o->shared_rate_limit) {
        p->rate_limit = o->shared_rate_limit;
    } else if (o->sections & CBX_POLICY_WITH_RATE_LIMIT) {
        cbx_ratelimit_opts ro = o->rate_limit;
        ro.clock = p->clock;
        r = cbx_ratelimit_new(&p->rate_limit, &ro, err);
        if (r)
            return prefix_where(err, r, "rate_limit", rate_limit_fields);
        p->own_rate_limit = 1;
        p->rl_opts = ro;
        p->rl_pending = p->rate_key && !ro.remote && !ro.shared_tat;
    }

    if (o->shared_bulkhead) {
        p->bulkhead = o->shared_bulkhead;
    } else if (o->sections & CBX_POLICY_WITH_BULKHEAD) {
        cbx_bulkhead_opts ho = o->bulkhead;
        ho.clock = p->clock;
        r = cbx_bulkhead_new(&p->bulkhead, &ho, err);
        if (r)
            return prefix_where(err, r, "bulkhead", bulkhead_fields);
        p->own_bulkhead = 1;
    }
    if (p->bulkhead) {
        cbx_bulkhead_stats st;
        cbx_bulkhead_stats_get(p->bulkhead, &st);
        p->bulkhead_queue = st.max_queued;
        p->bulkhead_timeout_ns = st.queue_timeout_ns;
    }

    if (o->shared_fallback) {
        p->fallback = o->shared_fallback;
    } else if (o->sections & CBX_POLICY_WITH_FALLBACK) {
        cbx_fallback_opts fo = o->fallback;
        fo.clock = p->clock;
        if (!fo.fn)
            drop_function(&fo);
        /* A fallback that names only a function still to be resolved has nothing to offer
         * yet: the name is kept, the fallback is not made. */
        int unresolved_only = !fo.fn && !fo.value && !fo.cache && o->fallback_function;
        if (!fo.fn && o->fallback_function) {
            p->fb_opts = o->fallback;
            p->fb_opts.clock = p->clock;
            p->fb_opts.value = o->fallback.value ? json_deep_copy(o->fallback.value) : NULL;
            if (o->fallback.value && !p->fb_opts.value)
                return cbx_err_set(err, -ENOMEM, "out of memory");
            p->fb_pending = 1;
        }
        if (o->fallback_entries && !(p->fb_entries = json_deep_copy(o->fallback_entries)))
            return cbx_err_set(err, -ENOMEM, "out of memory");
        if (!unresolved_only) {
            r = cbx_fallback_new(&p->fallback, &fo, err);
            if (r)
                return prefix_where(err, r, "fallback", fallback_fields);
            p->own_fallback = 1;
            if ((r = put_entries(p, p->fallback, err)))
                return r;
        }
    }
    return 0;
}

int cbx_policy_new(cbx_policy **out, const cbx_policy_opts *o, cbx_err *err)
{
    if (!out)
        return cbx_err_set(err, -EINVAL, "cbx_policy_new: out is NULL");
    *out = NULL;
    if (!o)
        return cbx_err_set(err, -EINVAL, "cbx_policy_new: options are NULL");
    if (!(o->quality_threshold >= 0 && o->quality_threshold <= 1))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "quality.threshold", 0, 0,
                              "quality_threshold must be in [0, 1]");

    if (o->n_retry_on_status > CBX_POLICY_MAX_CODES ||
        o->n_retry_on_exit_code > CBX_POLICY_MAX_CODES)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "retry", 0, 0,
                              "at most %d entries in retry.on_status and retry.on_exit_code",
                              CBX_POLICY_MAX_CODES);

    cbx_policy *p = calloc(1, sizeof *p);
    if (!p)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    p->clock = o->clock ? o->clock : cbx_clock_monotonic();
    p->timeout_ns = o->timeout_ns;
    p->deadline_ns = o->deadline_ns;
    p->quality_threshold = o->quality_threshold;
    p->n_on_status = o->n_retry_on_status;
    memcpy(p->on_status, o->retry_on_status, sizeof p->on_status);
    p->n_on_exit_code = o->n_retry_on_exit_code;
    memcpy(p->on_exit_code, o->retry_on_exit_code, sizeof p->on_exit_code);
    p->name = strdup(o->name ? o->name : "policy");
    p->breaker_key = dup_or_null(o->breaker_key);
    p->fallback_function = dup_or_null(o->fallback_function);
    p->fallback_key = dup_or_null(o->fallback_key);
    p->rate_key = dup_or_null(o->rate_limit_key);
    p->retry_when = dup_or_null(o->retry_when);
    p->count_when = dup_or_null(o->breaker_count_when);
    p->ignore_when = dup_or_null(o->breaker_ignore_when);
    int r;
    if (!p->name || (o->breaker_key && !p->breaker_key) ||
        (o->fallback_function && !p->fallback_function) || (o->fallback_key && !p->fallback_key) ||
        (o->rate_limit_key && !p->rate_key) || (o->retry_when && !p->retry_when) ||
        (o->breaker_count_when && !p->count_when) || (o->breaker_ignore_when && !p->ignore_when)) {
        r = cbx_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    r = make_retry(p, o, err);
    if (r)
        goto fail;
    r = make_parts(p, o, err);
    if (r)
        goto fail;
    *out = p;
    return 0;
fail:
    cbx_policy_free(p);
    return r;
}

int cbx_policy_new_json(cbx_policy **out, const json_t *block, const cbx_policy_opts *base,
                        cbx_err *err)
{
    if (!out)
        return cbx_err_set(err, -EINVAL, "cbx_policy_new_json: out is NULL");
    *out = NULL;
    cbx_policy_opts o;
    if (base)
        o = *base;
    else
        cbx_policy_opts_default(&o);
    int r = cbx_policy_opts_parse(&o, block, err);
    if (r)
        return r;
    return cbx_policy_new(out, &o, err);
}

void cbx_policy_free(cbx_policy *p)
{
    if (!p)
        return;
    if (p->own_fallback)
        cbx_fallback_free(p->fallback);
    if (p->own_bulkhead)
        cbx_bulkhead_free(p->bulkhead);
    if (p->own_rate_limit)
        cbx_ratelimit_free(p->rate_limit);
    if (p->own_breaker)
        cbx_breaker_free(p->breaker);
    if (p->own_budget)
        cbx_retry_budget_free(p->budget);
    free(p->name);
    free(p->breaker_key);
    free(p->fallback_function);
    free(p->fallback_key);
    free(p->rate_key);
    json_decref((json_t *)p->fb_opts.value);
    json_decref(p->fb_entries);
    if (p->fn_ud_free)
        p->fn_ud_free(p->fn_ud);
    free(p->retry_when);
    free(p->count_when);
    free(p->ignore_when);
    free(p);
}

cbx_breaker *cbx_policy_breaker(const cbx_policy *p)
{
    return p->breaker;
}

cbx_retry_budget *cbx_policy_retry_budget(const cbx_policy *p)
{
    return p->budget;
}

cbx_ratelimit *cbx_policy_rate_limit(const cbx_policy *p)
{
    return p->rate_limit;
}

cbx_bulkhead *cbx_policy_bulkhead(const cbx_policy *p)
{
    return p->bulkhead;
}

cbx_fallback *cbx_policy_fallback(const cbx_policy *p)
{
    return p->fallback;
}

cbx_clock *cbx_policy_clock(const cbx_policy *p)
{
    return p->clock;
}

const char *cbx_policy_name(const cbx_policy *p)
{
    return p->name;
}

const char *cbx_policy_breaker_key(const cbx_policy *p)
{
    return p->breaker_key;
}

const cbx_breaker_opts *cbx_policy_breaker_opts(const cbx_policy *p)
{
    return p->own_breaker ? &p->breaker_opts : NULL;
}

const char *cbx_policy_fallback_function(const cbx_policy *p)
{
    return p->fallback_function;
}

const char *cbx_policy_fallback_key(const cbx_policy *p)
{
    return p->fallback_key;
}

int cbx_policy_fallback_pending(const cbx_policy *p)
{
    return p && p->fb_pending;
}

const char *cbx_policy_rate_limit_key(const cbx_policy *p)
{
    return p ? p->rate_key : NULL;
}

int cbx_policy_rate_limit_pending(const cbx_policy *p)
{
    return p && p->rl_pending;
}

int cbx_policy_rate_limit_bind(cbx_policy *p,
                               int (*fill)(void *ud, const char *key, cbx_ratelimit_opts *o,
                                           cbx_err *err),
                               void *ud, cbx_err *err)
{
    if (!p || !fill)
        return cbx_err_set(err, -EINVAL, "cbx_policy_rate_limit_bind: policy or fill is NULL");
    if (!p->rl_pending)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "rate_limit.key", 0, 0,
                              "policy '%s' has no rate limit key left to bind", p->name);
    cbx_ratelimit_opts ro = p->rl_opts;
    int r = fill(ud, p->rate_key, &ro, err);
    if (r)
        return r;
    cbx_ratelimit *rl = NULL;
    if ((r = cbx_ratelimit_new(&rl, &ro, err)) != 0)
        return prefix_where(err, r, "rate_limit", rate_limit_fields);
    if (p->own_rate_limit)
        cbx_ratelimit_free(p->rate_limit);
    p->rate_limit = rl;
    p->own_rate_limit = 1;
    p->rl_pending = 0;
    return 0;
}

int cbx_policy_fallback_resolve(cbx_policy *p, cbx_fallback_fn fn, void *ud,
                                void (*ud_free)(void *ud), cbx_err *err)
{
    if (!p || !fn)
        return cbx_err_set(err, -EINVAL, "cbx_policy_fallback_resolve: policy or fn is NULL");
    if (!p->fb_pending)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "fallback.function", 0, 0,
                              "policy '%s' has no function left to resolve", p->name);
    cbx_fallback_opts fo = p->fb_opts;
    fo.fn = fn;
    fo.fn_ud = ud;
    cbx_fallback *fb = NULL;
    int r = cbx_fallback_new(&fb, &fo, err);
    if (r)
        return prefix_where(err, r, "fallback", fallback_fields);
    if ((r = put_entries(p, fb, err))) {
        cbx_fallback_free(fb);
        return r;
    }
    if (p->own_fallback)
        cbx_fallback_free(p->fallback);
    p->fallback = fb;
    p->own_fallback = 1;
    p->fn_ud = ud;
    p->fn_ud_free = ud_free;
    p->fb_pending = 0;
    return 0;
}

const char *cbx_policy_retry_when(const cbx_policy *p)
{
    return p->retry_when;
}

const char *cbx_policy_breaker_count_when(const cbx_policy *p)
{
    return p->count_when;
}

const char *cbx_policy_breaker_ignore_when(const cbx_policy *p)
{
    return p->ignore_when;
}

/* ---- the rules ---------------------------------------------------------------------------- */

void cbx_policy_begin(cbx_policy *p, cbx_policy_run *run)
{
    memset(run, 0, sizeof *run);
    uint64_t now = now_ns(p);
    run->start_ns = now;
    run->deadline_ns = p->deadline_ns ? sat_add(now, p->deadline_ns) : CBX_POLICY_NO_DEADLINE;
    run->attempt_deadline_ns = CBX_POLICY_NO_DEADLINE;
    run->last_outcome = CBX_OUTCOME_IGNORED;
    run->status = CBX_POLICY_FAILED;
    run->decision = CBX_POLICY_DONE_FAILED;
    run->priv.breaker = p->breaker;
    run->priv.policy = p;
    cbx_retry_begin(&p->retry, &run->priv.retry, now);
}

void cbx_policy_run_use_breaker(cbx_policy_run *run, cbx_breaker *b)
{
    run->priv.breaker = b;
}

void cbx_policy_run_cancel(cbx_policy_run *run)
{
    __atomic_store_n(&run->cancel, 1, __ATOMIC_RELEASE);
}

/* Give back what the run holds. */
static void release_held(cbx_policy *p, cbx_policy_run *run)
{
    if (run->priv.permit_held) {
        cbx_breaker_release(run->priv.breaker, run->priv.permit);
        run->priv.permit_held = 0;
    }
    if (run->priv.slot_held) {
        cbx_bulkhead_leave(p->bulkhead);
        run->priv.slot_held = 0;
    }
}

static void finish(cbx_policy *p, cbx_policy_run *run, cbx_policy_status status, int rc, int why)
{
    run->done = 1;
    run->status = status;
    run->rc = rc;
    run->priv.why = why;
    if (status == CBX_POLICY_SUCCESS)
        run->decision = CBX_POLICY_DONE_SUCCESS;
    else if (status != CBX_POLICY_CANCELLED && p->fallback)
        run->decision = CBX_POLICY_USE_FALLBACK;
    else
        run->decision = CBX_POLICY_DONE_FAILED;
}

static double clamp_quality(double q)
{
    if (!(q >= 0)) /* NaN too */
        return 0;
    return q > 1 ? 1 : q;
}

static int is_breaker_refusal(int rc)
{
    return rc == CBX_ECIRCUIT_OPEN || rc == CBX_EHALF_OPEN_FULL || rc == CBX_EFORCED_OPEN;
}

/* The call ends before an attempt could start. */
static int refuse(cbx_policy *p, cbx_policy_run *run, int rc)
{
    release_held(p, run);
    cbx_policy_status st;
    int why = WHY_REFUSED;
    if (rc == CBX_ECANCELLED) {
        st = CBX_POLICY_CANCELLED;
        why = WHY_CANCELLED;
    } else if (rc == CBX_ETIMEDOUT) {
        st = CBX_POLICY_TIMEOUT;
        why = WHY_DEADLINE;
    } else if (run->attempts_run == 0 || is_breaker_refusal(rc)) {
        st = CBX_POLICY_REJECTED; /* a breaker that opened between retries refuses the call */
    } else {
        st = run->last_outcome == CBX_OUTCOME_TIMEOUT ? CBX_POLICY_TIMEOUT : CBX_POLICY_FAILED;
    }
    finish(p, run, st, rc, why);
    return rc;
}

int cbx_policy_admit(cbx_policy *p, cbx_policy_run *run)
{
    if (run->done)
        return run->rc;
    uint64_t now = now_ns(p);
    if (is_cancelled(run))
        return refuse(p, run, CBX_ECANCELLED);
    if (now >= run->deadline_ns)
        return refuse(p, run, CBX_ETIMEDOUT);

    if (p->rate_limit && !run->priv.rate_passed) {
        /* wait mode: a token up to the cap and the deadline away is reserved now */
        uint64_t cap = p->rate_wait_ns;
        if (cap && run->deadline_ns - now < cap)
            cap = run->deadline_ns - now;
        uint64_t wait = 0;
        if (cbx_ratelimit_reserve(p->rate_limit, 1, cap, &wait) != 0) {
            run->refused_wait_ns = wait;
            return refuse(p, run, CBX_ERATE_LIMITED);
        }
        run->priv.rate_passed = 1;
        if (wait) {
            run->rate_wait_ns = wait;
            return -EAGAIN;
        }
    }

    if (p->bulkhead && !run->priv.slot_held) {
        if (run->priv.slot_rc)
            return refuse(p, run, run->priv.slot_rc);
        if (cbx_bulkhead_try_enter(p->bulkhead) != 0) {
            if (p->bulkhead_queue > 0)
                return -EINPROGRESS;
            return refuse(p, run, CBX_EBULKHEAD_FULL);
        }
        run->priv.slot_held = 1;
    }

    if (run->priv.breaker) {
        cbx_permit pm = cbx_breaker_acquire_ex(run->priv.breaker, &run->rejection);
        if (pm.rc != 0)
            return refuse(p, run, pm.rc);
        run->priv.permit = pm;
        run->priv.permit_held = 1;
    }

    run->priv.rate_passed = 0;
    run->attempt++;
    now = now_ns(p);
    run->attempt_start_ns = now;
    run->attempt_deadline_ns = run->deadline_ns;
    if (p->timeout_ns && sat_add(now, p->timeout_ns) < run->attempt_deadline_ns)
        run->attempt_deadline_ns = sat_add(now, p->timeout_ns);
    return 0;
}

int cbx_policy_run_refuse(cbx_policy *p, cbx_policy_run *run, int rc,
                          const cbx_breaker_rejection *why)
{
    if (run->done)
        return run->rc;
    if (why)
        run->rejection = *why;
    return refuse(p, run, rc);
}

static int listed(const int32_t *list, uint32_t n, long long v)
{
    for (uint32_t i = 0; i < n; i++)
        if (list[i] == v)
            return 1;
    return 0;
}

char *cbx__policy_lua_chunk(const char *expr, size_t *len)
{
    /* the newline ends a trailing -- comment before the closing parenthesis */
    static const char head[] = "local attempt = ... return (", tail[] = "\n)";
    size_t n = strlen(expr), total = sizeof head - 1 + n + sizeof tail - 1;
    char *s = malloc(total + 1);
    if (!s)
        return NULL;
    memcpy(s, head, sizeof head - 1);
    memcpy(s + sizeof head - 1, expr, n);
    memcpy(s + sizeof head - 1 + n, tail, sizeof tail);
    *len = total;
    return s;
}

int cbx_policy_retry_allows(const cbx_policy *p, const json_t *outputs)
{
    if (!p || !json_is_object(outputs))
        return 1;
    const json_t *v = json_object_get(outputs, "status");
    if (json_is_integer(v)) {
        long long st = json_integer_value(v);
        if (p->n_on_status)
            return listed(p->on_status, p->n_on_status, st);
        if (st >= 400 && st < 500 && st != 408 && st != 429)
            return 0; /* the request is wrong: sending it again will not help */
    }
    v = json_object_get(outputs, "exit_code");
    if (json_is_integer(v) && p->n_on_exit_code)
        return listed(p->on_exit_code, p->n_on_exit_code, json_integer_value(v));
    return 1;
}

void cbx_policy_run_no_retry(cbx_policy_run *run, const char *what, long long code)
{
    run->priv.no_retry_what = what ? what : "result";
    run->priv.no_retry_code = code;
}

void cbx_policy_run_no_retry_why(cbx_policy_run *run, const char *line)
{
    run->priv.no_retry_what = "result";
    run->priv.no_retry_code = 0;
    snprintf(run->priv.no_retry_line, sizeof run->priv.no_retry_line, "%s",
             line && line[0] ? line : "the result is not retried");
}

void cbx_policy_run_breaker_verdict(cbx_policy_run *run, cbx_breaker_verdict v)
{
    run->priv.breaker_verdict = (int)v;
}

cbx_outcome cbx_policy_breaker_kind(cbx_outcome k, cbx_breaker_verdict v)
{
    switch (v) {
    case CBX_BREAKER_VERDICT_IGNORE:
        return CBX_OUTCOME_IGNORED;
    case CBX_BREAKER_VERDICT_SUCCESS:
        return CBX_OUTCOME_SUCCESS;
    case CBX_BREAKER_VERDICT_FAILURE:
        return cbx_outcome_is_failure(k) ? k : CBX_OUTCOME_CUSTOM;
    default:
        return k;
    }
}

cbx_outcome cbx_policy_judge(const cbx_policy *p, cbx_outcome k, double quality)
{
    if (p && k == CBX_OUTCOME_SUCCESS && p->quality_threshold > 0 &&
        clamp_quality(quality) < p->quality_threshold)
        return CBX_OUTCOME_QUALITY;
    return k;
}

/* How long a slot wait may last: until the deadline (the bulkhead adds its queue timeout). */
static uint64_t slot_wait_limit(const cbx_policy *p, const cbx_policy_run *run)
{
    if (run->deadline_ns == CBX_POLICY_NO_DEADLINE)
        return CBX_BULKHEAD_FOREVER;
    uint64_t now = now_ns(p);
    return now < run->deadline_ns ? run->deadline_ns - now : 0;
}

static void slot_granted(cbx_bulkhead_waiter *w, int rc, void *ud)
{
    (void)w;
    cbx_policy_run *run = ud;
    if (rc == 0)
        run->priv.slot_held = 1;
    else
        run->priv.slot_rc = rc;
    run->priv.slot_fn(run, rc, run->priv.slot_ud);
}

int cbx_policy_wait_slot(cbx_policy *p, cbx_policy_run *run, cbx_policy_slot_fn cb, void *ud)
{
    if (!p->bulkhead || !cb || run->done || run->priv.slot_held)
        return -EINVAL;
    run->priv.slot_fn = cb;
    run->priv.slot_ud = ud;
    int rc = cbx_bulkhead_enter_async(p->bulkhead, &run->priv.waiter, slot_wait_limit(p, run),
                                      slot_granted, run);
    if (rc == 0)
        run->priv.slot_held = 1;
    else if (rc != -EINPROGRESS && rc != -EINVAL)
        run->priv.slot_rc = rc;
    return rc;
}

int cbx_policy_cancel_wait(cbx_policy *p, cbx_policy_run *run)
{
    if (!p->bulkhead)
        return -ENOENT;
    return cbx_bulkhead_cancel_wait(p->bulkhead, &run->priv.waiter);
}

/* The blocking form of cbx_policy_wait_slot, for cbx_policy_call. */
static void wait_slot_blocking(cbx_policy *p, cbx_policy_run *run)
{
    int rc = cbx_bulkhead_enter(p->bulkhead, slot_wait_limit(p, run));
    if (rc == 0)
        run->priv.slot_held = 1;
    else
        run->priv.slot_rc = rc;
}

cbx_policy_decision cbx_policy_attempt_end(cbx_policy *p, cbx_policy_run *run, cbx_outcome k,
                                           int64_t latency_ns, uint64_t retry_after_ns,
                                           double quality, uint64_t *delay_ns)
{
    if (delay_ns)
        *delay_ns = 0;
    if (run->done)
        return run->decision;
    uint64_t now = now_ns(p);
    uint64_t lat;
    if (latency_ns >= 0)
        lat = (uint64_t)latency_ns;
    else
        lat = now > run->attempt_start_ns ? now - run->attempt_start_ns : 0;
    if ((unsigned)k >= CBX_OUTCOME__COUNT)
        k = CBX_OUTCOME_ERROR;

    /* 6. the timeout (and the deadline): whatever it says, an attempt that overran timed out. */
    if (sat_add(run->attempt_start_ns, lat) > run->attempt_deadline_ns)
        k = CBX_OUTCOME_TIMEOUT;
    /* 7. the quality threshold */
    quality = clamp_quality(quality);
    if (k == CBX_OUTCOME_SUCCESS && p->quality_threshold > 0 && quality < p->quality_threshold)
        k = CBX_OUTCOME_QUALITY;
    /* 8. the breaker, and the bulkhead slot back */
    if (run->priv.permit_held) {
        int64_t l = lat > INT64_MAX ? INT64_MAX : (int64_t)lat;
        cbx_outcome bk = cbx_policy_breaker_kind(k, (cbx_breaker_verdict)run->priv.breaker_verdict);
        cbx_breaker_record_quality(run->priv.breaker, run->priv.permit, bk, l, quality);
        run->priv.permit_held = 0;
    }
    run->priv.breaker_verdict = CBX_BREAKER_VERDICT_DEFAULT;
    if (run->priv.slot_held) {
        cbx_bulkhead_leave(p->bulkhead);
        run->priv.slot_held = 0;
    }
    run->attempts_run++;
    run->last_outcome = k;

    if (k == CBX_OUTCOME_SUCCESS) {
        finish(p, run, CBX_POLICY_SUCCESS, 0, WHY_NONE);
        return run->decision;
    }
    if (is_cancelled(run)) {
        finish(p, run, CBX_POLICY_CANCELLED, CBX_ECANCELLED, WHY_CANCELLED);
        return run->decision;
    }
    /* 9. the retry policy (unless a result filter has said no) */
    uint64_t d = 0;
    int rc = run->priv.no_retry_what
                 ? CBX_EFAILED
                 : cbx_retry_next(&p->retry, &run->priv.retry, k, retry_after_ns, now, &d);
    if (rc == 0) {
        if (delay_ns)
            *delay_ns = d;
        return CBX_POLICY_RETRY;
    }
    int why;
    switch (rc) {
    case CBX_EFAILED:
        why = WHY_OUTCOME;
        if (k == CBX_OUTCOME_TIMEOUT)
            rc = CBX_ETIMEDOUT;
        break;
    case CBX_EBUDGET_EXHAUSTED:
        why = WHY_BUDGET;
        break;
    default: /* CBX_ERETRY_EXHAUSTED: attempts, or time */
        if (run->priv.retry.attempt >= p->retry.max_attempts) {
            why = WHY_ATTEMPTS;
        } else if (p->deadline_bounds_retry) {
            why = WHY_DEADLINE;
            rc = CBX_ETIMEDOUT;
        } else {
            why = WHY_ELAPSED;
        }
        break;
    }
    cbx_policy_status st =
        (k == CBX_OUTCOME_TIMEOUT || rc == CBX_ETIMEDOUT) ? CBX_POLICY_TIMEOUT : CBX_POLICY_FAILED;
    finish(p, run, st, rc, why);
    return run->decision;
}

void cbx_policy_end(cbx_policy *p, cbx_policy_run *run)
{
    release_held(p, run);
}

/* ---- explanations ------------------------------------------------------------------------- */

static const char *outcome_words(cbx_outcome k)
{
    switch (k) {
    case CBX_OUTCOME_ERROR:
        return "failed";
    case CBX_OUTCOME_TIMEOUT:
        return "timed out";
    case CBX_OUTCOME_RATE_LIMITED:
        return "was rate limited";
    case CBX_OUTCOME_QUALITY:
        return "scored under the quality threshold";
    case CBX_OUTCOME_CUSTOM:
        return "failed (custom)";
    case CBX_OUTCOME_IGNORED:
        return "failed (ignored by the breaker)";
    case CBX_OUTCOME_OOM:
        return "ran out of memory";
    default:
        return "succeeded";
    }
}

/* Why a refusal happened, in words. */
static void refusal_words(const cbx_policy *p, const cbx_policy_run *run, char *buf, size_t len)
{
    char d[32];
    switch (run->rc) {
    case CBX_ERATE_LIMITED: {
        cbx_ratelimit_stats st;
        cbx_ratelimit_stats_get(p->rate_limit, &st);
        cbx_duration_human(run->refused_wait_ns, d, sizeof d);
        int n = snprintf(buf, len, "rate limit of %g/s (burst %u) exceeded; next token in %s",
                         st.per_second, st.burst, d);
        if (p->rate_wait_ns && n > 0 && (size_t)n < len) {
            char w[32];
            cbx_duration_format(p->rate_wait_ns, w, sizeof w);
            if (run->refused_wait_ns > p->rate_wait_ns)
                snprintf(buf + n, len - (size_t)n, ", past the wait of %s", w);
            else
                snprintf(buf + n, len - (size_t)n, ", past the deadline");
        }
        return;
    }
    case CBX_EBULKHEAD_FULL: {
        cbx_bulkhead_stats st;
        cbx_bulkhead_stats_get(p->bulkhead, &st);
        if (st.max_queued)
            snprintf(buf, len, "bulkhead full: all %u slots busy and the queue of %u is full",
                     st.max_concurrent, st.max_queued);
        else
            snprintf(buf, len, "bulkhead full: all %u slots busy (no queue)", st.max_concurrent);
        return;
    }
    case CBX_EQUEUE_TIMEOUT:
        if (p->bulkhead_timeout_ns) {
            cbx_duration_format(p->bulkhead_timeout_ns, d, sizeof d);
            snprintf(buf, len, "no bulkhead slot came free within the queue timeout of %s", d);
        } else {
            snprintf(buf, len, "no bulkhead slot came free before the deadline");
        }
        return;
    case CBX_ECIRCUIT_OPEN:
    case CBX_EHALF_OPEN_FULL:
    case CBX_EFORCED_OPEN:
        cbx_breaker_explain(run->priv.breaker, &run->rejection, buf, len);
        return;
    default:
        snprintf(buf, len, "%s", cbx_strerror(run->rc));
        return;
    }
}

const char *cbx_policy_explain(const cbx_policy *p, const cbx_policy_run *run, char *buf,
                               size_t len)
{
    if (!buf || len == 0)
        return buf;
    buf[0] = '\0';
    if (!run->done || run->status == CBX_POLICY_SUCCESS)
        return buf;
    char head[96] = "", tail[320] = "", d[32];
    if (run->attempts_run)
        snprintf(head, sizeof head, "%u attempt%s, the last %s; ", run->attempts_run,
                 run->attempts_run == 1 ? "" : "s", outcome_words(run->last_outcome));
    switch (run->priv.why) {
    case WHY_OUTCOME:
        if (run->priv.no_retry_line[0] && p->has_retry)
            snprintf(tail, sizeof tail, "%s", run->priv.no_retry_line);
        else if (run->priv.no_retry_what && p->has_retry)
            snprintf(tail, sizeof tail, "%s %lld is not retried (retry.on_%s)",
                     run->priv.no_retry_what, run->priv.no_retry_code,
                     strcmp(run->priv.no_retry_what, "status") == 0 ? "status" : "exit_code");
        else if (p->has_retry)
            snprintf(tail, sizeof tail, "%s is not retried (retry.on)",
                     cbx_outcome_name(run->last_outcome));
        else
            snprintf(tail, sizeof tail, "no retry");
        break;
    case WHY_ATTEMPTS:
        snprintf(tail, sizeof tail, "retries exhausted (retry.attempts %u)", p->retry.max_attempts);
        break;
    case WHY_ELAPSED:
        cbx_duration_format(p->retry_elapsed_ns, d, sizeof d);
        snprintf(tail, sizeof tail, "the next retry would end after retry.max_elapsed (%s)", d);
        break;
    case WHY_BUDGET:
        snprintf(tail, sizeof tail, "the retry budget refused another retry");
        break;
    case WHY_DEADLINE:
        cbx_duration_format(p->deadline_ns, d, sizeof d);
        if (run->attempts_run && run->last_outcome != CBX_OUTCOME_TIMEOUT)
            snprintf(tail, sizeof tail, "the next retry would start after the deadline (%s)", d);
        else
            snprintf(tail, sizeof tail, "the deadline (%s) passed", d);
        break;
    case WHY_CANCELLED:
        snprintf(tail, sizeof tail, "cancelled");
        break;
    case WHY_REFUSED:
        refusal_words(p, run, tail, sizeof tail);
        break;
    default:
        snprintf(tail, sizeof tail, "%s", cbx_strerror(run->rc));
        break;
    }
    snprintf(buf, len, "%s%s", head, tail);
    return buf;
}

/* ---- the fallback ------------------------------------------------------------------------- */

int cbx_policy_fallback_get(cbx_policy *p, const char *key, const json_t *input, json_t **out,
                            cbx_fallback_source *source, cbx_err *err)
{
    *out = NULL;
    if (source)
        *source = CBX_FALLBACK_NONE;
    if (!p->fallback)
        return cbx_err_set(err, CBX_ENO_FALLBACK, "the policy has no fallback");
    int src = CBX_FALLBACK_NONE;
    int rc = cbx_fallback_get(p->fallback, key, input, out, &src, err);
    if (source)
        *source = (cbx_fallback_source)src;
    return rc;
}

int cbx_policy_remember(cbx_policy *p, const char *key, const json_t *output)
{
    if (!p->fallback || !key || !output)
        return 0;
    int rc = cbx_fallback_remember(p->fallback, key, output);
    return rc == CBX_EINVAL_CONFIG ? 0 : rc; /* no cache */
}

/* ---- the synchronous call ----------------------------------------------------------------- */

int cbx_attempt_should_stop(const cbx_attempt *a)
{
    if (a->cancel && __atomic_load_n(a->cancel, __ATOMIC_ACQUIRE))
        return 1;
    return a->deadline_ns != CBX_POLICY_NO_DEADLINE && cbx_clock_now_ns(a->clock) >= a->deadline_ns;
}

void cbx_attempt_set_error(cbx_attempt *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->error, sizeof a->error, fmt, ap);
    va_end(ap);
}

void cbx_policy_result_clear(cbx_policy_result *res)
{
    if (!res)
        return;
    json_decref(res->output);
    memset(res, 0, sizeof *res);
}

int cbx_policy_call(cbx_policy *p, cbx_policy_fn fn, void *ud, const json_t *input,
                    const char *fallback_key, cbx_policy_result *res, cbx_err *err)
{
    if (res)
        memset(res, 0, sizeof *res);
    if (!p || !fn || !res)
        return cbx_err_set(err, -EINVAL, "cbx_policy_call: %s is NULL",
                           !p    ? "the policy"
                           : !fn ? "the function"
                                 : "the result");
    res->last_outcome = CBX_OUTCOME_IGNORED;

    cbx_policy_run run;
    cbx_policy_begin(p, &run);
    cbx_attempt a;
    for (;;) {
        int rc = cbx_policy_admit(p, &run);
        if (rc == -EINPROGRESS) {
            wait_slot_blocking(p, &run);
            continue;
        }
        if (rc == -EAGAIN) {
            cbx_clock_sleep_until(p->clock, now_ns(p) + run.rate_wait_ns);
            continue;
        }
        if (rc != 0)
            break;

        a = (cbx_attempt){
            .number = run.attempt,
            .deadline_ns = run.attempt_deadline_ns,
            .clock = p->clock,
            .cancel = &run.cancel,
            .quality = 1.0,
        };
        json_t *output = NULL;
        uint64_t t0 = now_ns(p);
        cbx_outcome k = fn(input, &output, &a, ud);
        uint64_t t1 = now_ns(p);
        int64_t lat = (int64_t)(t1 > t0 ? t1 - t0 : 0);
        uint64_t delay = 0;
        cbx_policy_decision d =
            cbx_policy_attempt_end(p, &run, k, lat, a.retry_after_ns, a.quality, &delay);

        if (run.attempts_run <= CBX_POLICY_MAX_RECORDED) {
            cbx_policy_attempt_info *ai = &res->attempt[run.attempts_run - 1];
            ai->outcome = run.last_outcome;
            ai->latency_ns = lat;
            ai->quality = a.quality;
            ai->delay_ns = d == CBX_POLICY_RETRY ? delay : 0;
        }
        if (run.last_outcome == CBX_OUTCOME_SUCCESS) {
            json_decref(res->output);
            res->output = output;
        } else {
            json_decref(output); /* a failed or late attempt's output is not an answer */
            if (a.error[0])
                snprintf(res->error, sizeof res->error, "%s", a.error);
        }
        if (d != CBX_POLICY_RETRY)
            break;
        cbx_clock_sleep_until(p->clock, sat_add(now_ns(p), delay));
    }
    res->elapsed_ns = now_ns(p) - run.start_ns;
    cbx_policy_end(p, &run);

    res->status = run.status;
    res->rc = run.rc;
    res->attempts = run.attempts_run;
    res->last_outcome = run.last_outcome;
    if (run.rc == CBX_ECIRCUIT_OPEN || run.rc == CBX_EHALF_OPEN_FULL || run.rc == CBX_EFORCED_OPEN)
        res->rejection = run.rejection;

    if (run.status == CBX_POLICY_SUCCESS) {
        cbx_policy_remember(p, fallback_key, res->output);
        return 0;
    }
    cbx_policy_explain(p, &run, res->reason, sizeof res->reason);
    if (res->error[0] && run.attempts_run) {
        append(res->reason, sizeof res->reason, "; last error: ");
        append(res->reason, sizeof res->reason, res->error);
    }

    if (run.decision == CBX_POLICY_USE_FALLBACK) {
        json_t *out = NULL;
        cbx_fallback_source src = CBX_FALLBACK_NONE;
        int frc = cbx_policy_fallback_get(p, fallback_key, input, &out, &src, NULL);
        if (frc == 0) {
            res->fallback_used = 1;
            res->fallback_source = src;
            res->output = out;
            return 0;
        }
        res->fallback_rc = frc;
    }
    cbx_err_set(err, res->rc, "%s", res->reason);
    return res->rc;
}
