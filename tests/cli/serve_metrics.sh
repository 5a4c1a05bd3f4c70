#!/usr/bin/env bash
# /metrics: clean under `promtool check metrics`, and scraped by a real Prometheus, which answers
# a quantile query over the latency histogram.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
command -v promtool >/dev/null || { echo "SKIP [$TEST]: promtool missing (apt-get install prometheus)"; exit 77; }

# an LLM (the scripted model server, tests/helpers/fake_llm) with a price for its model
fake="$(dirname "$CBX")/../tests/fake_llm"
[ -x "$fake" ] || fail "no fake_llm helper at $fake"
cat >"$TMP/script.json" <<'JSON'
{"turns": [
  {"content": "one", "usage": {"prompt_tokens": 1000000, "completion_tokens": 500000}},
  {"content": "two", "usage": {"prompt_tokens": 30, "completion_tokens": 12}}
]}
JSON
"$fake" --script "$TMP/script.json" --die-with-parent >"$TMP/port" &
fpid=$!
wait_for "$TMP/port" "$fpid" || fail "fake_llm did not start"
llm_base="http://127.0.0.1:$(head -1 "$TMP/port")/v1"
mkdir -p "$XDG_CONFIG_HOME/cbx"
printf 'llm:\n  prices:\n    gpt-4o-mini: {input: 0.15, output: 0.60}\n' >"$XDG_CONFIG_HOME/cbx/config.yaml"

start_server
trap 'kill $fpid 2>/dev/null; stop_server_now; cleanup_tmp' EXIT
for i in 1 2; do
    submit '{"type":"llm","params":{"model":"gpt-4o-mini","base_url":"'"$llm_base"'","input":"hi","api_key":"k"}}'
    expect_code 200 "llm call $i"
    [ "$(jqv .status)" = success ] || fail "llm call $i: $(cat "$TMP/out")"
done
# a retry budget that grants nothing; a rate limit of one a minute, asked twice
submit '{"type":"command","params":{"argv":["false"]},"policy":{"retry":{"attempts":3,"initial":"1ms","budget":{"ratio":0.0001,"min_per_second":0}}}}'
[ "$(jqv .attempt_count)" = 1 ] || fail "the budget granted a retry: $(cat "$TMP/out")"
submit '{"type":"command","params":{"argv":["false"]},"policy":{"retry":{"attempts":2,"initial":"1ms"},"rate_limit":{"rate":"1/m","burst":1}}}'
submit '{"type":"command","params":{"argv":["true"]},"breaker":"metrics \"quoted\"\\name"}'
expect_code 200 submit
submit '{"type":"command","params":{"argv":["false"]},"policy":{"retry":{"attempts":2,"initial":"1ms"}}}'
submit '{"type":"comand"}'
req POST '/v1/breakers/metrics%20%22quoted%22%5Cname/open' -H "$AUTH"
expect_code 200 "open by an escaped name"
submit '{"type":"command","params":{"argv":["true"]},"breaker":"metrics \"quoted\"\\name"}'
[ "$(jqv .status)" = rejected ] || fail "not refused: $(cat "$TMP/out")"

req GET /metrics
expect_code 200 metrics
case "$ctype" in text/plain*version=0.0.4*) ;; *) fail "metrics content type: $ctype" ;; esac
cp "$TMP/out" "$TMP/metrics"
promtool check metrics <"$TMP/metrics" >"$TMP/lint" 2>&1 || fail "promtool: $(cat "$TMP/lint")"
m() { grep -F "$1" "$TMP/metrics" | awk '{print $NF}'; }
[ "$(m 'cbx_executions_total{executor="command",status="success"}')" = 1 ] || fail "success count"
[ "$(m 'cbx_executions_total{executor="command",status="failed"}')" = 3 ] || fail "failed count"
[ "$(m 'cbx_executions_total{executor="command",status="rejected"}')" = 1 ] || fail "rejected count"
[ "$(m 'cbx_executions_rejected_total{executor="command",reason="forced_open"}')" = 1 ] ||
    fail "rejection reason: $(grep rejected_total "$TMP/metrics")"
[ "$(m 'cbx_attempts_total{executor="command",outcome="error"}')" = 4 ] || fail "attempts by outcome"
[ "$(m 'cbx_execution_duration_seconds_count{executor="command"}')" = 4 ] || fail "histogram count"
[ "$(m 'cbx_retry_budget_exhausted_total{executor="command"}')" = 1 ] ||
    fail "retry budget: $(grep budget "$TMP/metrics")"
[ "$(m 'cbx_rate_limited_total{executor="command"}')" = 1 ] ||
    fail "rate limited: $(grep rate_limited "$TMP/metrics")"
[ "$(m 'cbx_llm_calls_total{model="gpt-4o-mini"}')" = 2 ] || fail "llm calls: $(grep llm "$TMP/metrics")"
[ "$(m 'cbx_llm_tokens_total{model="gpt-4o-mini",kind="prompt"}')" = 1000030 ] ||
    fail "prompt tokens: $(grep llm_tokens "$TMP/metrics")"
[ "$(m 'cbx_llm_tokens_total{model="gpt-4o-mini",kind="completion"}')" = 500012 ] ||
    fail "completion tokens: $(grep llm_tokens "$TMP/metrics")"
awk -v v="$(m 'cbx_llm_cost_dollars_total{model="gpt-4o-mini"}')" \
    'BEGIN { exit !(v > 0.44999 && v < 0.45002) }' || fail "cost: $(grep llm_cost "$TMP/metrics")"
grep -qF 'cbx_breaker_state{breaker="metrics \"quoted\"\\name",state="open"} 1' "$TMP/metrics" ||
    fail "breaker state label: $(grep breaker_state "$TMP/metrics")"
grep -qF 'cbx_breaker_forced{breaker="metrics \"quoted\"\\name"} 1' "$TMP/metrics" || fail "forced"
for name in cbx_executions_in_flight cbx_queue_depth cbx_bulkhead_saturation_ratio \
    cbx_breaker_rejections_total cbx_breaker_opens_total cbx_breaker_latency_seconds_count \
    cbx_breaker_transitions_total cbx_sse_clients cbx_journal_lost_writes_total; do
    grep -q "^$name" "$TMP/metrics" || fail "no $name"
done

# ---- a real Prometheus scrapes it ----
command -v prometheus >/dev/null || { echo "ok [$TEST] (no prometheus: scrape not tested)"; exit 0; }
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/prom.yml" <<YML
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: cbx
    static_configs: [{targets: ["${BASE#http://}"]}]
YML
prometheus --config.file="$TMP/prom.yml" --storage.tsdb.path="$TMP/prom" \
    --web.listen-address="127.0.0.1:$pport" >"$TMP/prom.log" 2>&1 &
ppid_=$!
trap 'kill $ppid_ $fpid 2>/dev/null; wait $ppid_ 2>/dev/null; stop_server_now; cleanup_tmp' EXIT
q='histogram_quantile(0.5, cbx_execution_duration_seconds_bucket{executor="command"})'
deadline=$(($(date +%s) + 300))
val=""
while [ "$(date +%s)" -lt "$deadline" ]; do
    val=$(curl -s --get --data-urlencode "query=$q" "http://127.0.0.1:$pport/api/v1/query" |
        jq -r '.data.result[0].value[1] // empty' 2>/dev/null)
    [ -n "$val" ] && break
    sleep 0.5
done
[ -n "$val" ] || fail "Prometheus never answered the quantile: $(tail -5 "$TMP/prom.log")"
awk -v v="$val" 'BEGIN { exit !(v > 0 && v <= 60) }' || fail "median latency $val s"
up=$(curl -s --get --data-urlencode 'query=up{job="cbx"}' "http://127.0.0.1:$pport/api/v1/query" |
    jq -r '.data.result[0].value[1]')
[ "$up" = 1 ] || fail "target not up: $up"
echo "ok [$TEST] (median latency from Prometheus: $val s)"
