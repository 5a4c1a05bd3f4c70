#!/usr/bin/env bash
# cbx serve exports spans over OTLP/HTTP (JSON) while it runs: a submission's execution and
# attempts arrive at a receiver that checks them against the official OTLP protobuf definitions
# (tests/otlp/receiver.js), and /metrics counts the spans exported.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
. "$(dirname "$0")/../otlp/setup.bash"
trap 'stop_server_now; stop_receiver; cleanup_tmp' EXIT

receiver ok
export OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint OTEL_SERVICE_NAME=cbx-serve-test \
    OTEL_BSP_SCHEDULE_DELAY=50
start_server
submit '{"type":"command","params":{"argv":["sh","-c","[ -e '"$TMP"'/again ] || { touch '"$TMP"'/again; exit 3; }"]},"policy":{"retry":{"attempts":2,"initial":"10ms"}}}'
expect_code 200 "submit"
[ "$(jqv .status)" = success ] || fail "submit: $(cat "$TMP/out")"
[ "$(jqv .attempt_count)" = 2 ] || fail "attempts: $(cat "$TMP/out")"
id=$(jqv .id)
# the spans come while the server runs (a batch waits 50 ms)
deadline=$(($(date +%s) + 120))
until [ "$(jq -s "map(select(.attrs[\"cbx.execution.id\"] == \"$id\")) | length" "$R/spans" 2>/dev/null)" = 3 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the spans did not come: $(cat "$R/spans" 2>/dev/null)"
    sleep 0.1
done
no_errors
exid=$(spans ".[] | select(.name == \"execution command\" and .attrs[\"cbx.execution.id\"] == \"$id\") | .spanId")
[ -n "$exid" ] || fail "no execution span: $(cat "$R/spans")"
[ "$(spans "map(select(.parentSpanId == \"$exid\")) | map(.name) | sort | join(\",\")")" = "attempt 1,attempt 2" ] ||
    fail "attempts: $(cat "$R/spans")"
[ "$(spans '.[0].service')" = cbx-serve-test ] || fail "service.name: $(cat "$R/spans")"
req GET /metrics
expect_code 200 metrics
grep -Eq '^cbx_trace_spans_total\{outcome="exported"\} [1-9]' "$TMP/out" ||
    fail "metrics: $(grep cbx_trace "$TMP/out")"
grep -q '^cbx_trace_spans_total{outcome="queue_full"} 0$' "$TMP/out" || fail "metrics: queue_full"
if command -v promtool >/dev/null; then
    promtool check metrics <"$TMP/out" >"$TMP/promtool" 2>&1 || fail "promtool: $(cat "$TMP/promtool")"
fi
stop_server
[ "$src" = 0 ] || fail "cbx serve exited $src: $(cat "$TMP/serve.err")"
echo "ok [$TEST]"
