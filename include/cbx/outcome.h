/* cbx/outcome.h - how a call ended, as every resilience primitive sees it.
 *
 * One vocabulary for the breaker (which kinds count as failures), retry (which kinds are
 * retried) and the policy (what the caller's function reported).
 */
#ifndef CBX_OUTCOME_H
#define CBX_OUTCOME_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, "name") - the names are the ones used in JSON/YAML policy blocks. New kinds are added
 * at the end: the numbers are kept (breaker state records count by kind).
 *
 * oom: the work was stopped for want of memory - a command killed by the kernel's OOM killer
 * (its cgroup's memory.events counted an oom_kill, or an unexplained SIGKILL), or a failure that
 * came within 10 % of its rlimit_memory_bytes. A failure kind of its own, so that a policy can
 * tell it from an ordinary error: retry on it (or, by default, not), count it in a breaker,
 * answer it with a fallback. */
#define CBX_OUTCOME_MAP(X)                                                                         \
    X(SUCCESS, "success")                                                                          \
    X(ERROR, "error")                                                                              \
    X(TIMEOUT, "timeout")                                                                          \
    X(RATE_LIMITED, "rate_limited")                                                                \
    X(QUALITY, "quality")                                                                          \
    X(CUSTOM, "custom")                                                                            \
    X(IGNORED, "ignored")                                                                          \
    X(OOM, "oom")

typedef enum cbx_outcome {
#define CBX__OUTCOME_ENUM(name, str) CBX_OUTCOME_##name,
    CBX_OUTCOME_MAP(CBX__OUTCOME_ENUM)
#undef CBX__OUTCOME_ENUM
        CBX_OUTCOME__COUNT
} cbx_outcome;

/* Bit for an outcome in a kind mask (cbx_breaker_opts.failure_kinds, cbx_retry_opts.retry_on). */
#define CBX_OUTCOME_BIT(k) (1u << (k))

/* Every failure kind: error, timeout, rate_limited, quality, custom, oom. */
#define CBX_OUTCOME_FAILURES                                                                       \
    (CBX_OUTCOME_BIT(CBX_OUTCOME_ERROR) | CBX_OUTCOME_BIT(CBX_OUTCOME_TIMEOUT) |                   \
     CBX_OUTCOME_BIT(CBX_OUTCOME_RATE_LIMITED) | CBX_OUTCOME_BIT(CBX_OUTCOME_QUALITY) |            \
     CBX_OUTCOME_BIT(CBX_OUTCOME_CUSTOM) | CBX_OUTCOME_BIT(CBX_OUTCOME_OOM))

/* Name of an outcome ("timeout"), static; "unknown" when out of range. */
const char *cbx_outcome_name(cbx_outcome k);

/* Outcome for a name; returns 0 and sets *out, or CBX_EPARSE when the name is unknown. */
int cbx_outcome_parse(const char *name, cbx_outcome *out);

/* 1 for the six failure kinds, 0 for success and ignored. */
static inline int cbx_outcome_is_failure(cbx_outcome k)
{
    return (CBX_OUTCOME_FAILURES >> k) & 1u;
}

#ifdef __cplusplus
}
#endif
#endif
