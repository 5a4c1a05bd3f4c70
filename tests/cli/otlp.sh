# OpenTelemetry traces over OTLP/HTTP (JSON), received on loopback by tests/otlp/receiver.js, which
# checks every request against the official OTLP protobuf definitions (compiled by
# @opentelemetry/otlp-transformer, installed from npm into $CBX_NPM_CACHE the first time): an
# execution and its attempts (retries), the ids an attempt propagates, a TRACEPARENT as the
# parent, a flow run as one trace, a workflow firing, secrets kept out, an endpoint that is down
# or never answers (spans dropped and counted, the work not delayed), the queue's bound, the
# batch's bound and OTEL_TRACES_EXPORTER=none.
. "$(dirname "$0")/lib.bash"

. "$(dirname "$0")/../otlp/setup.bash"
trap 'stop_receiver; rm -rf "$TMP"' EXIT

receiver ok
export OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint OTEL_SERVICE_NAME=cbx-test \
    OTEL_EXPORTER_OTLP_HEADERS='x-test=a%20b,authorization=Bearer t0k'

# ---- an execution with a retry: one execution span, two attempt spans under it -------------
run "$CBX" exec --retries 1 --retry-delay 10ms -- sh -c "echo \"\$TRACEPARENT\" >>'$TMP/tp'; exit 1"
expect_rc 1 "two failing attempts"
no_errors
[ "$(jq -r '.path' "$R/requests" | sort -u)" = /v1/traces ] || fail "path: $(cat "$R/requests")"
[ "$(jq -r '.headers["x-test"]' "$R/requests" | head -1)" = "a b" ] ||
    fail "OTEL_EXPORTER_OTLP_HEADERS: $(cat "$R/requests")"
[ "$(jq -r '.headers.authorization' "$R/requests" | head -1)" = "Bearer t0k" ] ||
    fail "authorization header: $(cat "$R/requests")"
[ "$(spans 'map(.service) | unique | .[]')" = cbx-test ] || fail "service.name: $(cat "$R/spans")"
[ "$(spans 'length')" = 3 ] || fail "spans: $(cat "$R/spans")"
ex=$(spans '.[] | select(.name == "execution command")')
[ -n "$ex" ] || fail "no execution span: $(cat "$R/spans")"
trace=$(jq -r .traceId <<<"$ex")
exid=$(jq -r .spanId <<<"$ex")
[ "$(jq -r .parentSpanId <<<"$ex")" = "" ] || fail "a root execution has a parent: $ex"
[ "$(jq -r '.attrs["cbx.status"]' <<<"$ex")" = failed ] || fail "status: $ex"
[ "$(jq -r '.attrs["cbx.attempts"]' <<<"$ex")" = 2 ] || fail "attempts: $ex"
[ "$(jq -r .status.code <<<"$ex")" = 2 ] || fail "status code: $ex"
[ "$(spans "map(select(.name | startswith(\"attempt\")) | select(.parentSpanId == \"$exid\" and .traceId == \"$trace\")) | length")" = 2 ] ||
    fail "attempts are not children of their execution: $(cat "$R/spans")"
[ "$(spans '.[] | select(.name == "attempt 1") | .attrs["cbx.outcome"]')" = error ] ||
    fail "attempt 1: $(cat "$R/spans")"
# the traceparent each attempt propagated names its exported span
for n in 1 2; do
    id=$(spans ".[] | select(.name == \"attempt $n\") | .spanId")
    grep -qx "00-$trace-$id-01" "$TMP/tp" || fail "attempt $n: span $id not in what it propagated: $(cat "$TMP/tp")"
done
jq -e 'select((.end | tonumber) < (.start | tonumber))' "$R/spans" >/dev/null &&
    fail "a span ends before it starts"

# ---- a TRACEPARENT given is the parent ----------------------------------------------------
receiver ok
export OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint
ptrace=4bf92f3577b34da6a3ce929d0e0e4736
run env TRACEPARENT="00-$ptrace-00f067aa0ba902b7-01" "$CBX" exec -- true
expect_rc 0 "inside a trace"
no_errors
[ "$(spans ".[] | select(.name == \"execution command\") | [.traceId, .parentSpanId] | join(\" \")")" = "$ptrace 00f067aa0ba902b7" ] ||
    fail "the TRACEPARENT is not the parent: $(cat "$R/spans")"
[ "$(spans '.[] | select(.name == "execution command") | .status.code')" = 1 ] ||
    fail "a success's status: $(cat "$R/spans")"

# ---- a flow run: one trace, the run's span the parent of its steps' -------------------------
receiver ok
export OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint
cat >"$TMP/flow.yaml" <<'YAML'
name: traced
steps:
  - name: first
    executor: command
    config: {argv: [echo, one]}
  - name: second
    executor: command
    config: {argv: [sh, -c, 'f=$CBX_TMP/n; echo x >>"$f"; [ "$(wc -l <"$f")" -ge 2 ]']}
    policy: {retry: {attempts: 2, backoff: fixed, initial: 10ms}}
    needs: [first]
YAML
sed -i "s|\$CBX_TMP|$TMP|" "$TMP/flow.yaml"
run "$CBX" run "$TMP/flow.yaml"
expect_rc 0 "the flow"
no_errors
[ "$(spans 'map(.traceId) | unique | length')" = 1 ] || fail "the run is not one trace: $(cat "$R/spans")"
run_span=$(spans '.[] | select(.name == "flow traced")')
[ -n "$run_span" ] || fail "no run span: $(cat "$R/spans")"
rid=$(jq -r .spanId <<<"$run_span")
[ "$(jq -r .parentSpanId <<<"$run_span")" = "" ] || fail "the run has a parent: $run_span"
[ "$(spans "map(select(.name == \"execution command\" and .parentSpanId == \"$rid\")) | length")" = 2 ] ||
    fail "the steps are not children of the run: $(cat "$R/spans")"
for step in first second; do
    sid=$(spans ".[] | select(.attrs[\"cbx.step\"] == \"$step\" and (.name | startswith(\"execution\"))) | .spanId")
    [ -n "$sid" ] || fail "no span of step $step"
    want=$([ $step = first ] && echo 1 || echo 2)
    [ "$(spans "map(select(.parentSpanId == \"$sid\")) | length")" = "$want" ] ||
        fail "step $step: attempts under it: $(cat "$R/spans")"
done

# ---- a flow run by the flow executor: its run's span is a child of the step's attempt ---------
receiver ok
export OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint
cat >"$TMP/outer.yaml" <<YAML
name: outer
steps:
  - name: inner
    executor: flow
    config: {file: "$TMP/flow.yaml"}
YAML
run "$CBX" run "$TMP/outer.yaml"
expect_rc 0 "the outer flow"
no_errors
[ "$(spans 'map(.traceId) | unique | length')" = 1 ] || fail "the nested run is not in the trace: $(cat "$R/spans")"
att=$(spans '.[] | select(.name == "attempt 1" and .attrs["cbx.executor"] == "flow") | .spanId')
[ -n "$att" ] || fail "no attempt of the flow step: $(cat "$R/spans")"
[ "$(spans '.[] | select(.name == "flow traced") | .parentSpanId')" = "$att" ] ||
    fail "the nested run's parent is not the step's attempt: $(cat "$R/spans")"

# ---- a workflow firing: the parent of its action's execution -------------------------------
receiver ok
export OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint
cat >"$TMP/wf.yaml" <<'YAML'
name: traced_wf
places: [start, done]
final: [done]
transitions:
  - name: work
    from: start
    to: done
    action:
      executor: command
      config: {argv: [echo, hi]}
YAML
run "$CBX" workflow run "$TMP/wf.yaml" --token '{"x": 1}'
expect_rc 0 "the workflow"
no_errors
fid=$(spans '.[] | select(.name == "firing work") | .spanId')
[ -n "$fid" ] || fail "no firing span: $(cat "$R/spans")"
[ "$(spans ".[] | select(.name == \"execution command\") | .parentSpanId")" = "$fid" ] ||
    fail "the action is not a child of its firing: $(cat "$R/spans")"
[ "$(spans '.[] | select(.name == "firing work") | .attrs["cbx.workflow"]')" = traced_wf ] ||
    fail "firing attributes: $(cat "$R/spans")"

# ---- a secret parameter never appears ------------------------------------------------------
receiver ok
export OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint
secret=s3cr3t-$RANDOM-value
run "$CBX" exec http -p url="http://127.0.0.1:1/$secret" -p basic_user=u -p basic_password="$secret"
[ "$rc" -ne 0 ] || fail "a request to a closed port succeeded"
no_errors
[ "$(spans 'length')" -ge 2 ] || fail "spans: $(cat "$R/spans")"
grep -q "$secret" "$R/spans" && fail "the secret is in a span: $(grep "$secret" "$R/spans")"
# an error that quotes a secret parameter: masked on the spans, in a flow run too
cat >"$TMP/secret.lua" <<'LUA'
return executor {name = 'secret_echo',
  params = {token = {type = 'string', secret = true}},
  run = function(p) error("refused the token " .. p.token) end}
LUA
run "$CBX" exec --lua "$TMP/secret.lua" secret_echo -p token="$secret"
[ "$rc" -ne 0 ] || fail "secret_echo succeeded"
cat >"$TMP/secret_flow.yaml" <<YAML
name: secret_flow
steps:
  - name: s
    executor: secret_echo
    config: {token: "$secret"}
YAML
run "$CBX" run --lua "$TMP/secret.lua" "$TMP/secret_flow.yaml"
[ "$rc" -ne 0 ] || fail "the secret flow succeeded"
no_errors
grep -q "$secret" "$R/spans" && fail "the secret is in a span: $(grep "$secret" "$R/spans")"
[ "$(spans 'map(select(.name == "execution secret_echo" and (.status.message | endswith("refused the token ***")))) | length')" = 2 ] ||
    fail "the error is not there, masked: $(cat "$R/spans")"

# ---- OTEL_TRACES_EXPORTER=none: nothing is sent ---------------------------------------------
receiver ok
export OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint
run env OTEL_TRACES_EXPORTER=none "$CBX" run "$TMP/flow.yaml"
expect_rc 0 "the flow, not exported"
[ ! -s "$R/requests" ] || fail "OTEL_TRACES_EXPORTER=none sent: $(cat "$R/requests")"

# ---- an endpoint that is down: the work is done, the spans dropped and said so --------------
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1
run "$CBX" exec -- echo done
expect_rc 0 "with the endpoint down"
[ "$(cat "$TMP/out")" = done ] || fail "output: $(cat "$TMP/out")"
grep -q "trace: warn: 2 of 2 spans were not exported: 0 found the queue full, 2 were in requests that failed" "$TMP/err" ||
    fail "the drop is not reported: $(cat "$TMP/err")"

# ---- an endpoint that never answers: the work goes on; the queue and the batch keep their bounds
receiver slow
export OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint
{
    echo "name: many"
    echo "steps:"
    for i in $(seq 1 10); do
        echo "  - {name: s$i, executor: command, config: {argv: [\"true\"]}}"
    done
} >"$TMP/many.yaml"
run env OTEL_BSP_MAX_QUEUE_SIZE=2 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1 OTEL_BSP_SCHEDULE_DELAY=0 \
    OTEL_EXPORTER_OTLP_TIMEOUT=1500 "$CBX" run "$TMP/many.yaml"
expect_rc 0 "the flow with a receiver that never answers"
[ "$(jq -r .status "$TMP/out" 2>/dev/null || true)" != failed ] || fail "the flow failed: $(cat "$TMP/out")"
no_errors
# 21 spans (a run, 10 executions, 10 attempts): at most 3 ever left the queue's two places and
# the request out; every other one found it full
line=$(grep "spans were not exported" "$TMP/err") || fail "no drop report: $(cat "$TMP/err")"
full=$(sed -E 's/.*: ([0-9]+) found the queue full.*/\1/' <<<"$line")
total=$(sed -E 's/.* of ([0-9]+) spans.*/\1/' <<<"$line")
[ "$total" = 21 ] || fail "spans recorded: $line"
[ "$full" -ge 18 ] || fail "the queue held more than 2: $line"
[ "$(jq -s 'map(.spans) | max' "$R/requests")" = 1 ] || fail "a batch over 1: $(cat "$R/requests")"
[ "$(jq -s 'length' "$R/requests")" -le 3 ] || fail "requests: $(cat "$R/requests")"
echo "ok [$TEST]"
