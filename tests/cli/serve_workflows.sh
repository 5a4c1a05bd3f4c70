#!/usr/bin/env bash
# Workflows over the API: --workflows DIR lists them and their nets; runs start with tokens, take
# more tokens and signals, fire actions on the server's loop, wait for after: timers; runs and
# tokens are shown with the marking; workflow_token events reach /v1/events (and resume with
# Last-Event-ID); bad input gets problems naming the field; a run interrupted by SIGKILL and one
# left waiting by SIGTERM are taken up at the next start and go on.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
command -v jq >/dev/null || { echo "SKIP [$TEST]: jq is missing" >&2; exit 77; }

mkdir -p "$TMP/wf"
cp "$(dirname "$0")/../../examples/workflows/approval.yaml" "$TMP/wf/"
cp "$(dirname "$0")/../../examples/workflows/order_fulfilment.yaml" "$TMP/wf/orders.yaml"
# the same, but a token waits an hour before it escalates: it rests waiting for its signal
sed -e 's/^name: approval/name: review/' -e 's/after: 2s/after: 1h/' "$TMP/wf/approval.yaml" \
    >"$TMP/wf/review.yaml"
# an action that takes a while (the SIGKILL below lands while it runs), marked by a file
cat >"$TMP/wf/slow.yaml" <<YML
name: slow
places: [queued, working, finished]
final: [finished]
transitions:
  - name: work
    from: queued
    to: working
    action:
      executor: command
      config: {argv: [sh, -c, 'echo run >>"$TMP/slow.marks"; sleep "\$1"', x, "{{ tostring(token.secs) }}"]}
  - name: finish
    from: working
    to: finished
YML
printf 'name: broken\nplaces: [a]\ntransitions:\n  - name: x\n    from: a\n    to: nowhere\n' \
    >"$TMP/wf/broken.yaml"

start_server --workflows "$TMP/wf"

# ---- the directory ----
req GET /v1/workflows
expect_code 200 "workflows"
[ "$(jqv '[.workflows[] | select(.valid)] | map(.name) | sort | join(",")')" = approval,orders,review,slow ] ||
    fail "workflows: $(cat "$TMP/out")"
jqv '.workflows[] | select(.name == "broken") | .error' | grep -q 'broken.yaml:' ||
    fail "the broken workflow's error lacks its file: $(cat "$TMP/out")"
req GET /v1/workflows/approval
expect_code 200 "net"
[ "$(jqv '.places | map(.name) | join(",")')" = submitted,pending,approved,rejected,escalated ] ||
    fail "places: $(cat "$TMP/out")"
[ "$(jqv '.transitions[] | select(.name == "approve") | .trigger')" = signal ] || fail "trigger"
[ "$(jqv '.transitions[] | select(.name == "escalate") | .after_ms')" = 2000 ] || fail "after_ms"
req GET /v1/workflows/nosuch
expect_problem 404 name "unknown workflow"
req GET /v1/workflows/broken
expect_problem 409 "" "broken workflow"

# follow the events from now on
curl -sS -N "$BASE/v1/events" >"$TMP/events" 2>/dev/null &
epid=$!
trap 'kill $epid 2>/dev/null; stop_server_now; cleanup_tmp' EXIT
wait_for "$TMP/events" "$epid"
# wait_event REGEX: until a line of the stream matches
wait_event() {
    for _ in $(seq 1200); do
        grep -q "$1" "$TMP/events" && return 0
        sleep 0.05
    done
    fail "no event matching $1: $(tail -c 2000 "$TMP/events")"
}

# ---- a run waiting for a signal ----
req POST /v1/workflows/review/runs -H "$AUTH" \
    --data-binary '{"run_id":"ap1","tokens":[{"data":{"request":"laptop","cost":1200}},{"id":"big","data":{"request":"car"}}]}'
expect_code 201 "start"
[ "$(jqv .run_id)" = ap1 ] || fail "run id: $(cat "$TMP/out")"
[ "$(jqv '.started_tokens | join(",")')" = t1,big ] || fail "tokens: $(cat "$TMP/out")"
[ "$(jqv .marking.pending)" = 2 ] || fail "marking: $(cat "$TMP/out")"
[ "$(jqv .state)" = waiting ] || fail "state: $(cat "$TMP/out")"
wait_event '"run_id":"ap1","workflow":"review","token":"t1","event":"created","place":"submitted"'
wait_event '"token":"t1","event":"fired","transition":"submit","place":"pending"'
wait_event '"run_id":"ap1","workflow":"review","token":"big","event":"waiting"'

req GET /v1/workflow-runs/ap1/tokens/t1
expect_code 200 "token"
[ "$(jqv .state)" = waiting ] && [ "$(jqv .data.cost)" = 1200 ] || fail "token: $(cat "$TMP/out")"
jqv .waiting_for | grep -q 'signal approve' || fail "waiting_for: $(cat "$TMP/out")"

req POST /v1/workflow-runs/ap1/tokens/t1/signal -H "$AUTH" \
    --data-binary '{"name":"approve","data":{"approved_by":"ann"}}'
expect_code 202 "signal"
[ "$(jqv .signal)" = approve ] || fail "signal: $(cat "$TMP/out")"
wait_event '"token":"t1","event":"fired","transition":"approve","place":"approved"'
wait_event '"run_id":"ap1","workflow":"review","token":"t1","event":"done","place":"approved"'
req GET /v1/workflow-runs/ap1
[ "$(jqv .marking.approved)" = 1 ] && [ "$(jqv .marking.pending)" = 1 ] ||
    fail "marking after the signal: $(cat "$TMP/out")"
[ "$(jqv '.tokens[] | select(.id == "t1") | .data.approved_by')" = ann ] || fail "signal data"
# a rule that does not hold: the token stays, the history says why
req POST /v1/workflow-runs/ap1/tokens/big/signal -H "$AUTH" --data-binary '{"name":"reject"}'
expect_code 202 "signal without a reason"
wait_event '"token":"big","event":"blocked","transition":"reject"'
req GET /v1/workflow-runs/ap1/tokens/big
jqv '.history[].text' | grep -q 'has_reason' || fail "no explanation: $(cat "$TMP/out")"

# a token added later to a run of approval escalates after its 2s timer, with no signal
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"run_id":"ap2","tokens":[{"data":{"request":"pen"}}]}'
expect_code 201 "start approval"
req POST /v1/workflow-runs/ap2/tokens -H "$AUTH" --data-binary '{"id":"late","data":{"request":"desk"}}'
expect_code 201 "add a token"
[ "$(jqv .token)" = late ] && [ "$(jqv .marking.pending)" = 2 ] || fail "added: $(cat "$TMP/out")"
wait_event '"token":"late","event":"fired","transition":"escalate","place":"escalated"'
req GET /v1/workflow-runs/ap2
[ "$(jqv .state)" = done ] && [ "$(jqv .marking.escalated)" = 2 ] || fail "ap2: $(cat "$TMP/out")"

# ---- bad input ----
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"tokens":[{"data":{}}'
expect_problem 400 "" "malformed JSON"
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"tokens":[{"data":{}}],"x":1}'
expect_problem 400 x "unknown field"
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"tokens":[{"data":[]}]}'
expect_problem 400 "tokens[0].data" "data not an object"
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"tokens":[{"data":{}},{"dat":{}}]}'
expect_problem 400 "tokens[1].dat" "unknown token field"
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"tokens":[{"place":"nowhere"}]}'
expect_problem 400 "tokens[0].place" "unknown place"
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"run_id":"dup","tokens":[{"id":"a"},{"id":"a"}]}'
expect_problem 409 "tokens[1].id" "one id twice in a request"
req GET /v1/workflow-runs/dup
expect_problem 404 id "a run made by a refused request"
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"tokens":"x"}'
expect_problem 400 tokens "tokens not an array"
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{}'
expect_problem 400 tokens "no tokens"
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"run_id":"ap1","tokens":[{}]}'
expect_problem 409 run_id "a run id taken"
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"run_id":7,"tokens":[{}]}'
expect_problem 400 run_id "run_id of the wrong type"
req POST /v1/workflows/approval/runs --data-binary '{"tokens":[{}]}'
expect_problem 401 "" "no token"
req POST /v1/workflows/approval/runs -H 'Authorization: Bearer wrong-wrong-wrong-wrong' \
    --data-binary '{"tokens":[{}]}'
expect_problem 401 "" "a wrong token"
req POST /v1/workflows/nosuch/runs -H "$AUTH" --data-binary '{"tokens":[{}]}'
expect_problem 404 name "start an unknown workflow"
req POST /v1/workflows/broken/runs -H "$AUTH" --data-binary '{"tokens":[{}]}'
expect_problem 409 "" "start a broken workflow"
req POST /v1/workflow-runs/ap1/tokens/t1/signal -H "$AUTH" --data-binary '{"name":"approve"}'
expect_problem 409 name "signal a token that waits for none"
req POST /v1/workflow-runs/ap1/tokens/nobody/signal -H "$AUTH" --data-binary '{"name":"approve"}'
expect_problem 404 token "signal an unknown token"
req POST /v1/workflow-runs/no-run/tokens/t1/signal -H "$AUTH" --data-binary '{"name":"approve"}'
expect_problem 404 id "signal in an unknown run"
req POST /v1/workflow-runs/ap1/tokens/big/signal -H "$AUTH" --data-binary '{"data":{}}'
expect_problem 400 name "a signal without a name"
req POST /v1/workflow-runs/ap1/tokens/big/signal -H "$AUTH" --data-binary '{"name":"reject","data":5}'
expect_problem 400 data "signal data not an object"
req POST /v1/workflow-runs/ap1/tokens/big/signal --data-binary '{"name":"reject"}'
expect_problem 401 "" "signal without the token"
req POST /v1/workflow-runs/ap1/tokens -H "$AUTH" --data-binary '{"id":"t1","data":{}}'
expect_problem 409 id "a token id taken"
req POST /v1/workflow-runs/ap1/tokens -H "$AUTH" --data-binary '{"id":"a/b"}'
expect_problem 400 id "a bad token id"
req GET /v1/workflow-runs/no-run
expect_problem 404 id "show an unknown run"
req GET /v1/workflow-runs/ap1/tokens/nobody
expect_problem 404 token "show an unknown token"
req GET '/v1/workflow-runs?state=sleepy'
expect_problem 400 state "a bad state filter"
req GET '/v1/workflow-runs?limit=0'
expect_problem 400 limit "a bad limit"
req GET '/v1/workflow-runs?color=red'
expect_problem 400 color "an unknown query parameter"

# ---- actions on the server's loop: a fork and a join ----
req POST /v1/workflows/orders/runs -H "$AUTH" \
    --data-binary '{"run_id":"o1","tokens":[{"data":{"order":"A-1","amount":30,"sku":"mug"}}]}'
expect_code 201 "start orders"
wait_event '"run_id":"o1","workflow":"order_fulfilment","token":"t1","event":"done","place":"shipped"'
req GET /v1/workflow-runs/o1
[ "$(jqv .state)" = done ] && [ "$(jqv .marking.shipped)" = 1 ] || fail "o1: $(cat "$TMP/out")"
[ "$(jqv .tokens[0].data.payment_id)" = pay-A-1 ] || fail "action outputs: $(cat "$TMP/out")"
req GET '/v1/workflow-runs?workflow=order_fulfilment&state=done'
[ "$(jqv '.runs | map(.run_id) | join(",")')" = o1 ] || fail "filtered list: $(cat "$TMP/out")"
req GET '/v1/workflow-runs?state=waiting'
jqv '.runs[].run_id' | grep -qx ap1 || fail "waiting list: $(cat "$TMP/out")"

# ---- Last-Event-ID: a client that reconnects gets the workflow events it missed ----
first=$(grep -m1 -B1 '"run_id":"o1"' "$TMP/events" | sed -n 's/^id: //p' | head -1)
[ -n "$first" ] || first=$(grep '^id: ' "$TMP/events" | head -1 | cut -d' ' -f2)
curl -sS -N --max-time 2 -H "Last-Event-ID: $((first - 1))" "$BASE/v1/events" >"$TMP/replay" 2>/dev/null
grep -q '"run_id":"o1".*"event":"done","place":"shipped"' "$TMP/replay" ||
    fail "replay lacks the done event: $(head -c 1500 "$TMP/replay")"

# ---- SIGKILL during an action: taken up at the next start, the action runs again ----
req POST /v1/workflows/slow/runs -H "$AUTH" --data-binary '{"run_id":"k1","tokens":[{"data":{"secs":1}}]}'
expect_code 201 "start slow"
for _ in $(seq 600); do [ -s "$TMP/slow.marks" ] && break; sleep 0.05; done
[ -s "$TMP/slow.marks" ] || fail "the action did not start"
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
SRV_PID=""
kill $epid 2>/dev/null
run "$CBX" workflow list --json
[ "$(jqv '.[] | select(.run_id == "k1") | .state')" = interrupted ] || fail "k1 not interrupted: $(cat "$TMP/out")"

start_server --workflows "$TMP/wf" --grace 200ms
for _ in $(seq 600); do
    req GET /v1/workflow-runs/k1
    [ "$(jqv .state)" = done ] && break
    sleep 0.05
done
[ "$(jqv .state)" = done ] && [ "$(jqv .marking.finished)" = 1 ] || fail "k1 after restart: $(cat "$TMP/out")"
[ "$(wc -l <"$TMP/slow.marks")" = 2 ] || fail "the interrupted action ran $(wc -l <"$TMP/slow.marks") times"

# ---- a waiting run outlives SIGTERM and takes its signal after the restart ----
req GET /v1/workflow-runs/ap1
[ "$(jqv .held)" = true ] || fail "the waiting run was not taken up: $(cat "$TMP/out")"
stop_server
[ "$src" = 0 ] || fail "SIGTERM: exit $src: $(cat "$TMP/serve.err")"
start_server --workflows "$TMP/wf"
req POST /v1/workflow-runs/ap1/tokens/big/signal -H "$AUTH" \
    --data-binary '{"name":"reject","data":{"reason":"too dear"}}'
expect_code 202 "signal after the restart"
for _ in $(seq 600); do
    req GET /v1/workflow-runs/ap1
    [ "$(jqv .marking.rejected)" = 1 ] && break
    sleep 0.05
done
[ "$(jqv .state)" = done ] && [ "$(jqv .marking.rejected)" = 1 ] || fail "ap1: $(cat "$TMP/out")"
run "$CBX" workflow show ap1 --json
[ "$(jqv '.tokens[] | select(.id == "big") | .place')" = rejected ] || fail "the journal: $(cat "$TMP/out")"
req POST /v1/workflow-runs/ap1/resume -H "$AUTH"
expect_code 200 "resume a done run"
[ "$(jqv .state)" = done ] || fail "resume: $(cat "$TMP/out")"
req POST /v1/workflow-runs/no-run/resume -H "$AUTH"
expect_problem 404 id "resume an unknown run"

# without --workflows
stop_server
start_server
req POST /v1/workflows/approval/runs -H "$AUTH" --data-binary '{"tokens":[{}]}'
expect_problem 404 "" "no workflows directory"
run "$CBX" serve --workflows "$TMP/nosuch"
expect_rc 2 "--workflows: a missing directory"
echo "ok [$TEST]"
