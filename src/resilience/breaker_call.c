/* Around the breaker's state machine: names, readable refusals and the synchronous call. */
#include "cbx/breaker.h"

#include "cbx/units.h"
#include "resilience/breaker_internal.h"

#include <stdio.h>

const char *cbx_breaker_state_name(cbx_breaker_state s)
{
    switch (s) {
    case CBX_BREAKER_CLOSED:
        return "closed";
    case CBX_BREAKER_OPEN:
        return "open";
    case CBX_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}

const char *cbx_breaker_mode_name(cbx_breaker_mode m)
{
    switch (m) {
    case CBX_BREAKER_NORMAL:
        return "normal";
    case CBX_BREAKER_FORCED_OPEN:
        return "forced_open";
    case CBX_BREAKER_FORCED_CLOSED:
        return "forced_closed";
    case CBX_BREAKER_DISABLED:
        return "disabled";
    case CBX_BREAKER_METRICS_ONLY:
        return "metrics_only";
    }
    return "unknown";
}

const char *cbx_breaker_reason_name(cbx_breaker_reason r)
{
    switch (r) {
#define CBX__BREAKER_REASON_STR(name, str)                                                         \
    case CBX_BREAKER_REASON_##name:                                                                \
        return str;
        CBX_BREAKER_REASON_MAP(CBX__BREAKER_REASON_STR)
#undef CBX__BREAKER_REASON_STR
    }
    return "unknown";
}

static void pct(char *buf, size_t len, uint32_t part, uint32_t whole)
{
    snprintf(buf, len, "%u of the last %u calls (%.0f%%)", part, whole,
             whole ? 100.0 * part / whole : 0.0);
}

/* Why the breaker opened, in words. */
static void cause(const cbx_breaker_rejection *why, char *buf, size_t len)
{
    char p[96];
    switch (why->reason) {
    case CBX_BREAKER_REASON_CONSECUTIVE_FAILURES:
        snprintf(buf, len, "%u consecutive failure%s", why->consecutive_failures,
                 why->consecutive_failures == 1 ? "" : "s");
        return;
    case CBX_BREAKER_REASON_COUNT_FAILURE_RATE:
    case CBX_BREAKER_REASON_TIME_FAILURE_RATE:
        pct(p, sizeof p, why->window_failures, why->window_calls);
        snprintf(buf, len, "%s failed%s", p,
                 why->reason == CBX_BREAKER_REASON_TIME_FAILURE_RATE ? " in the time window" : "");
        return;
    case CBX_BREAKER_REASON_COUNT_SLOW_RATE:
    case CBX_BREAKER_REASON_TIME_SLOW_RATE:
        pct(p, sizeof p, why->window_slow, why->window_calls);
        snprintf(buf, len, "%s were slow%s", p,
                 why->reason == CBX_BREAKER_REASON_TIME_SLOW_RATE ? " in the time window" : "");
        return;
    case CBX_BREAKER_REASON_PROBE_FAILED:
        snprintf(buf, len, "a half-open probe failed (re-open %u)", why->reopens);
        return;
    case CBX_BREAKER_REASON_PROBE_EXPIRED:
        snprintf(buf, len, "a half-open probe never reported back (re-open %u)", why->reopens);
        return;
    case CBX_BREAKER_REASON_MANUAL:
        snprintf(buf, len, "opened by hand");
        return;
    case CBX_BREAKER_REASON_HALF_OPEN_ELAPSED:
        snprintf(buf, len, "the half-open time limit ran out before it closed (re-open %u)",
                 why->reopens);
        return;
    case CBX_BREAKER_REASON_PROBE_FAILURE_RATE:
    case CBX_BREAKER_REASON_PROBE_SLOW_RATE:
        snprintf(buf, len, "%u of %u half-open probes %s (re-open %u)",
                 why->reason == CBX_BREAKER_REASON_PROBE_FAILURE_RATE ? why->window_failures
                                                                      : why->window_slow,
                 why->window_calls,
                 why->reason == CBX_BREAKER_REASON_PROBE_FAILURE_RATE ? "failed" : "were slow",
                 why->reopens);
        return;
    case CBX_BREAKER_REASON_PREDICATE:
        if (why->window_calls) {
            pct(p, sizeof p, why->window_failures, why->window_calls);
            snprintf(buf, len, "the trip predicate held (%s failed)", p);
        } else {
            snprintf(buf, len, "the trip predicate held (%u consecutive failures)",
                     why->consecutive_failures);
        }
        return;
    case CBX_BREAKER_REASON_INITIAL:
        snprintf(buf, len, "created open");
        return;
    default:
        snprintf(buf, len, "%s", cbx_breaker_reason_name(why->reason));
        return;
    }
}

const char *cbx_breaker_explain(const cbx_breaker *b, const cbx_breaker_rejection *why, char *buf,
                                size_t len)
{
    char c[160], d[32];
    const char *name = b ? cbx_breaker_name(b) : "breaker";
    cause(why, c, sizeof c);
    cbx_duration_human(why->retry_in_ns, d, sizeof d);
    switch (why->rc) {
    case CBX_EFORCED_OPEN:
        snprintf(buf, len, "breaker '%s' is forced open; it stays open until reset", name);
        break;
    case CBX_EHALF_OPEN_FULL:
        snprintf(buf, len,
                 "breaker '%s' is half-open and all %u probe slots are busy (%s); a slot frees in "
                 "at most %s",
                 name, why->probes_in_flight, c, d);
        break;
    case CBX_ECIRCUIT_OPEN:
        snprintf(buf, len, "breaker '%s' is open: %s; next probe in %s", name, c, d);
        break;
    default:
        snprintf(buf, len, "breaker '%s' admitted the call", name);
        break;
    }
    return buf;
}

int cbx_breaker_call(cbx_breaker *b, cbx_breaker_fn fn, void *ud, cbx_breaker_fallback_fn fallback,
                     void *fallback_ud, cbx_breaker_call_result *res)
{
    *res = (cbx_breaker_call_result){.outcome = CBX_OUTCOME_IGNORED, .latency_ns = -1};
    cbx_permit p = cbx_breaker_acquire_ex(b, &res->why);
    if (p.rc == 0) {
        cbx_clock *clk = cbx__breaker_clock(b);
        uint64_t t0 = cbx_clock_now_ns(clk);
        res->quality = 1.0;
        cbx_outcome k = fn(ud, &res->quality);
        res->latency_ns = (int64_t)(cbx_clock_now_ns(clk) - t0);
        res->outcome = cbx_breaker_record_quality(b, p, k, res->latency_ns, res->quality);
        res->rc = res->outcome == CBX_OUTCOME_SUCCESS ? 0 : CBX_EFAILED;
    } else {
        res->rc = p.rc;
    }
    if (res->rc != 0 && fallback && fallback(fallback_ud, res->rc) == 0) {
        res->used_fallback = 1;
        return 0;
    }
    return res->rc;
}
