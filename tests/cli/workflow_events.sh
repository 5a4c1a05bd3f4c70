# Workflow events on NATS: with CBX_EVENTS set, cbx workflow run/signal publish each token's
# story on cbx.events.workflow.<name> of a real nats-server (created, fired, action_started,
# blocked, signalled, done, waiting, the run's state), read by a plain subscriber; a bad
# CBX_EVENTS is a one-line usage error; no server is not the run's failure.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/nats_lib.bash"

cat >"$TMP/wf.yaml" <<'YAML'
name: wfev
rules:
  approved: {when: "present(token.by)"}
places: [todo, doing, review, done]
final: [done]
transitions:
  - name: start
    from: todo
    to: doing
  - name: work
    from: doing
    to: review
    action:
      executor: command
      config: {argv: [echo, worked]}
  - name: approve
    from: review
    to: done
    trigger: signal
    policy: {rules: {all: [approved]}}
YAML

run env CBX_EVENTS=kafka://x "$CBX" workflow run "$TMP/wf.yaml" --token '{}'
expect_rc 2 "a bad CBX_EVENTS"
expect_err_line "CBX_EVENTS: 'kafka://x' is not 'none', 'nats' or a nats:// URL" "bad CBX_EVENTS"

start_nats nats
export NATS_URL=$nats_url CBX_EVENTS=nats

# subscribe SUBJECT N: the next N messages on SUBJECT into $TMP/events (in the background)
subscribe() {
    rm -f "$TMP/events" "$TMP/events.ready"
    timeout 120 "$ADMIN" "$NATS_URL" sub "$1" "$2" >"$TMP/events" 2>"$TMP/events.ready" &
    sub=$!
    wait_for "$TMP/events.ready"
}

# a run to rest: created, start fired, the action started, work fired, the token waits for its
# signal, the run waits
subscribe cbx.events.workflow.wfev 6
run "$CBX" workflow run "$TMP/wf.yaml" --token '{"n": 1}' --run-id ev1 --no-wait
expect_rc 3 "a run that waits for a signal"
wait $sub || fail "events: $(cat "$TMP/events")"
[ "$(jq -r .event "$TMP/events" | tr '\n' ' ')" = "created fired action_started fired waiting run " ] ||
    fail "event sequence: $(cat "$TMP/events")"
jq -se 'map(select(.event == "fired")) | all(.workflow == "wfev" and .run_id == "ev1" and
    .token == "t1")' "$TMP/events" >/dev/null || fail "event fields: $(cat "$TMP/events")"
[ "$(jq -r 'select(.event == "fired") | .place' "$TMP/events" | tr '\n' ' ')" = "doing review " ] ||
    fail "fired places: $(cat "$TMP/events")"
[ "$(jq -r 'select(.event == "run") | .detail' "$TMP/events")" = waiting ] ||
    fail "run event: $(cat "$TMP/events")"
jq -se 'map(select(.event == "waiting")) | .[0].place == "review"' "$TMP/events" >/dev/null ||
    fail "waiting event: $(cat "$TMP/events")"

# a signal whose rule fails is blocked; one that passes moves the token: done, run done
subscribe cbx.events.workflow.wfev 4
run "$CBX" workflow signal ev1 t1 approve --no-wait
wait $sub || fail "events: $(cat "$TMP/events")"
[ "$(jq -r .event "$TMP/events" | head -3 | tr '\n' ' ')" = "signalled signal blocked " ] ||
    fail "blocked signal: $(cat "$TMP/events")"
subscribe cbx.events.workflow.wfev 5
run "$CBX" workflow signal ev1 t1 approve -d '{"by": "ann"}'
expect_rc 0 "the approving signal"
wait $sub || fail "events: $(cat "$TMP/events")"
[ "$(jq -r .event "$TMP/events" | tr '\n' ' ')" = "signalled signal fired done run " ] ||
    fail "approving signal: $(cat "$TMP/events")"
[ "$(jq -r 'select(.event == "run") | .detail' "$TMP/events")" = done ] ||
    fail "run done: $(cat "$TMP/events")"

# no server: the run goes on (the events are lost)
kill $nats_pid
wait $nats_pid 2>/dev/null
run "$CBX" workflow run "$TMP/wf.yaml" --token '{}' --no-wait
expect_rc 3 "a run with the event server away"
echo ok
