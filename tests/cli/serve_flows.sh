#!/usr/bin/env bash
# Flows over the API: --flows DIR lists and runs them (synchronously and asynchronously), a run
# is followed from the journal and over SSE (flow_step events), cancelled, and on SIGTERM
# cancelled past the grace period; bad inputs are problems naming the input.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"

mkdir -p "$TMP/flows"
cat >"$TMP/flows/greet.yaml" <<'YML'
name: greet
inputs:
  - {name: who, type: string, required: true}
  - {name: times, type: integer, default: 2}
steps:
  - name: hello
    executor: command
    config: {argv: [echo, "hello {{ inputs.who }}"]}
  - name: twice
    executor: command
    config: {argv: [sh, -c, 'for i in $(seq $1); do echo "$2"; done', x, "{{ tostring(inputs.times) }}", "{{ steps.hello.outputs.stdout }}"]}
outputs:
  greeting: "{{ steps.hello.outputs.stdout }}"
  lines: "{{ steps.twice.outputs.stdout }}"
YML
cat >"$TMP/flows/slow.yaml" <<'YML'
name: slow
steps:
  - name: first
    executor: command
    config: {argv: [echo, started]}
  - name: wait
    needs: [first]
    executor: command
    config: {argv: [sleep, "60"]}
YML
printf 'name: broken\nsteps:\n  - name: x\n    executor: nosuch\n' >"$TMP/flows/broken.yaml"

start_server --flows "$TMP/flows" --grace 300ms

req GET /v1/flows
expect_code 200 "flows"
[ "$(jqv '[.flows[] | select(.valid)] | map(.name) | sort | join(",")')" = greet,slow ] ||
    fail "flows: $(cat "$TMP/out")"
[ "$(jqv '.flows[] | select(.name == "broken") | .error' | grep -c 'broken.yaml:4:')" = 1 ] ||
    fail "the broken flow's error lacks file:line: $(cat "$TMP/out")"

# follow the events from now on
curl -sS -N "$BASE/v1/events" >"$TMP/events" 2>/dev/null &
epid=$!
trap 'kill $epid 2>/dev/null; stop_server_now; cleanup_tmp' EXIT
wait_for "$TMP/events" "$epid"

req POST /v1/flows/greet/runs -H "$AUTH" --data-binary '{"inputs":{"who":"api","times":3}}'
expect_code 200 "sync flow run"
[ "$(jqv .status)" = success ] || fail "greet: $(cat "$TMP/out")"
[ "$(jqv .outputs.greeting)" = "hello api" ] || fail "outputs: $(cat "$TMP/out")"
[ "$(jqv '.outputs.lines | split("\n") | length')" -ge 3 ] || fail "lines: $(jqv .outputs.lines)"
run1=$(jqv .run_id)
req GET "/v1/runs/$run1"
expect_code 200 "run show"
[ "$(jqv .status)" = success ] || fail "run show: $(cat "$TMP/out")"
req GET '/v1/runs?flow=greet'
jqv '.runs[].run_id' | grep -qx "$run1" || fail "runs: $(cat "$TMP/out")"
for _ in $(seq 600); do
    grep -q "\"run_id\":\"$run1\",\"flow\":\"greet\",\"status\":\"success\"" "$TMP/events" && break
    sleep 0.05
done
grep -q '^event: flow_step' "$TMP/events" || fail "no flow_step events"
grep -q "\"step\":\"twice\",\"event\":\"finished\"" "$TMP/events" || fail "no step end event"
grep -q "\"run_id\":\"$run1\",\"flow\":\"greet\",\"status\":\"success\"" "$TMP/events" ||
    fail "no flow_run end event"

# bad requests
req POST /v1/flows/greet/runs -H "$AUTH" --data-binary '{"inputs":{"times":"x","who":"a"}}'
expect_problem 400 inputs.times "mistyped input"
req POST /v1/flows/greet/runs -H "$AUTH" --data-binary '{"inputs":{}}'
expect_problem 400 inputs.who "missing input"
req POST /v1/flows/greet/runs -H "$AUTH" --data-binary '{"input":{}}'
expect_problem 400 input "unknown field"
req POST /v1/flows/nosuch/runs -H "$AUTH" --data-binary '{}'
expect_problem 404 name "unknown flow"
req POST /v1/flows/broken/runs -H "$AUTH" --data-binary '{}'
expect_problem 409 "" "a broken flow"
req POST /v1/flows/greet/runs --data-binary '{"inputs":{"who":"x"}}'
expect_problem 401 "" "no token"
req GET /v1/runs/no-such-run
expect_problem 404 id "unknown run"

# asynchronous, followed, cancelled
req POST /v1/flows/slow/runs -H "$AUTH" --data-binary '{"mode":"async"}'
expect_code 202 "async flow"
run2=$(jqv .run_id)
for _ in $(seq 600); do
    req GET "/v1/runs/$run2"
    grep -q "\"run_id\":\"$run2\",\"flow\":\"slow\",\"step\":\"wait\",\"event\":\"started\"" "$TMP/events" && break
    sleep 0.1
done
req POST "/v1/runs/$run2/cancel" -H "$AUTH"
expect_code 202 "cancel the run"
# as `cbx run` on SIGTERM: the step is cancelled, the run fails naming it
for _ in $(seq 600); do
    req GET "/v1/runs/$run2"
    [ "$(jqv .status)" != running ] && break
    sleep 0.1
done
[ "$(jqv .steps.wait.status)" = cancelled ] || fail "step not cancelled: $(cat "$TMP/out")"
[ "$(jqv .status)" = failed ] || fail "run status: $(cat "$TMP/out")"
req POST "/v1/runs/$run2/cancel" -H "$AUTH"
expect_problem 409 id "cancel an ended run"

# SIGTERM with a run going: cancelled past the grace period, journaled
req POST /v1/flows/slow/runs -H "$AUTH" --data-binary '{"mode":"async"}'
run3=$(jqv .run_id)
for _ in $(seq 3000); do
    grep -q "\"run_id\":\"$run3\",\"flow\":\"slow\",\"step\":\"wait\",\"event\":\"started\"" "$TMP/events" && break
    sleep 0.1
done
stop_server
[ "$src" = 0 ] || fail "SIGTERM: exit $src: $(cat "$TMP/serve.err")"
run "$CBX" show "$run3" --json
expect_rc 0 "show the run stopped by SIGTERM"
[ "$(jqv .steps.wait.status)" = cancelled ] || fail "run3 step: $(cat "$TMP/out")"
echo "ok [$TEST]"
