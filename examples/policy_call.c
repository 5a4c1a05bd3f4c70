/* One policy block, a flaky function, and what cbx_policy_call reports.
 *
 * The function fails its first two attempts of every call, then answers. The policy retries
 * it, times attempts out, trips a breaker, and falls back to the last good answer. The program
 * makes a few calls, then forces the breaker open to show a rejection answered from the cache.
 *
 * Runs on the real clock in well under a second: ./policy_call
 */
#include <cbx/policy.h>

#include <stdio.h>
#include <stdlib.h>

static const char *block = "{"
                           "  \"timeout\": \"200ms\","
                           "  \"retry\": {\"attempts\": 3, \"backoff\": \"exponential\","
                           "            \"initial\": \"10ms\", \"max\": \"50ms\"},"
                           "  \"breaker\": {\"consecutive_failures\": 5, \"open_for\": \"1s\"},"
                           "  \"fallback\": {\"cache\": {\"ttl\": \"1m\"}, \"value\": null}"
                           "}";

/* Fails attempts 1 and 2 of every call; attempt 3 answers {"page": n}. */
static cbx_outcome fetch_page(const json_t *input, json_t **output, cbx_attempt *a, void *ud)
{
    int *served = ud;
    (void)input;
    if (a->number < 3) {
        cbx_attempt_set_error(a, "connection reset (attempt %u)", a->number);
        return CBX_OUTCOME_ERROR;
    }
    *output = json_pack("{s:i}", "page", ++*served);
    return CBX_OUTCOME_SUCCESS;
}

static void show(const char *what, int rc, const cbx_policy_result *r)
{
    char *out = r->output ? json_dumps(r->output, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    printf("%-22s rc=%-20s status=%-9s attempts=%u elapsed=%.0fms", what, cbx_err_name(rc),
           cbx_policy_status_name(r->status), r->attempts, (double)r->elapsed_ns / 1e6);
    if (r->fallback_used)
        printf(" fallback=%s", cbx_fallback_source_name(r->fallback_source));
    printf(" output=%s\n", out ? out : "(none)");
    if (r->reason[0])
        printf("%22s %s\n", "", r->reason);
    free(out);
}

int main(void)
{
    json_t *b = json_loads(block, 0, NULL);
    cbx_policy_opts o;
    cbx_policy_opts_default(&o);
    o.name = "pages";
    cbx_policy *p = NULL;
    cbx_err err;
    if (!b || cbx_policy_new_json(&p, b, &o, &err) < 0) {
        fprintf(stderr, "policy: %s: %s\n", err.where, err.msg);
        return 1;
    }
    json_decref(b);

    /* The story must hold: exit 1 if it does not (this example also runs as a test). */
    int served = 0, ok = 1;
    cbx_policy_result r;
    for (int i = 0; i < 2; i++) {
        int rc = cbx_policy_call(p, fetch_page, &served, NULL, "/index", &r, NULL);
        show("call", rc, &r);
        ok &= rc == 0 && r.status == CBX_POLICY_SUCCESS && r.attempts == 3;
        cbx_policy_result_clear(&r);
    }

    cbx_breaker_force_open(cbx_policy_breaker(p));
    int rc = cbx_policy_call(p, fetch_page, &served, NULL, "/index", &r, NULL);
    show("breaker forced open", rc, &r);
    ok &= r.status == CBX_POLICY_REJECTED && r.fallback_used &&
          json_integer_value(json_object_get(r.output, "page")) == 2;
    cbx_policy_result_clear(&r);

    rc = cbx_policy_call(p, fetch_page, &served, NULL, "/never-seen", &r, NULL);
    show("uncached key", rc, &r);
    ok &= r.status == CBX_POLICY_REJECTED && served == 2;
    cbx_policy_result_clear(&r);

    cbx_policy_free(p);
    return ok ? 0 : 1;
}
