# runs_on: workers in flows and workflows, against a real nats-server with JetStream and two
# cbx workers: a foreach step fans out over both workers (each item's result names the worker
# that ran it, in the submitter's journal); a flow-wide runs_on with a step kept local by
# runs_on: local; {queue: NAME}; a workflow action on the workers; bad values are errors at
# file:line:col.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/nats_lib.bash"

# bad values first: they need no server
cat >"$TMP/bad.yaml" <<'YAML'
name: bad
runs_on: everywhere
steps:
  - name: a
    executor: command
    runs_on: {queue: "not a queue"}
    config: {argv: ["true"]}
  - name: b
    executor: command
    runs_on: {queue: q, where: there}
    config: {argv: ["true"]}
  - name: c
    executor: command
    runs_on: 7
    config: {argv: ["true"]}
YAML
run "$CBX" validate "$TMP/bad.yaml"
[ "$rc" -ne 0 ] || fail "a flow with bad runs_on values validated"
grep -q "bad.yaml:2:1: .*runs_on: expected workers, local or {queue: NAME}, got 'everywhere'" \
    "$TMP/err" || fail "flow runs_on message: $(cat "$TMP/err")"
grep -q "bad.yaml:6:15: step 'a': runs_on: queue: expected 1 to 64 letters" "$TMP/err" ||
    fail "queue name message: $(cat "$TMP/err")"
grep -q "bad.yaml:10:25: step 'b': runs_on: unknown key 'where'" "$TMP/err" ||
    fail "unknown key message: $(cat "$TMP/err")"
grep -q "bad.yaml:14:5: step 'c': runs_on: expected workers, local or {queue: NAME}" "$TMP/err" ||
    fail "non-string message: $(cat "$TMP/err")"
cat >"$TMP/sub.yaml" <<'YAML'
name: sub
steps:
  - {name: x, executor: command, config: {argv: ["true"]}}
YAML
cat >"$TMP/badsub.yaml" <<YAML
name: badsub
steps:
  - name: s
    flow: $TMP/sub.yaml
    runs_on: workers
YAML
run "$CBX" validate "$TMP/badsub.yaml"
grep -q "badsub.yaml:5:5: step 's': runs_on: applies to steps that run an executor" "$TMP/err" ||
    fail "runs_on on a sub-flow step: $(cat "$TMP/err")"
cat >"$TMP/badwf.yaml" <<'YAML'
name: badwf
places: [a, b]
final: [b]
transitions:
  - name: go
    from: a
    to: b
    action:
      executor: command
      config: {argv: ["true"]}
      runs_on: {queue: ""}
YAML
run "$CBX" workflow validate "$TMP/badwf.yaml"
[ "$rc" -ne 0 ] || fail "a workflow with a bad runs_on validated"
grep -q "badwf.yaml:11:17: transition .go.: runs_on: queue: expected 1 to 64 letters" "$TMP/err" ||
    fail "workflow runs_on message: $(cat "$TMP/err")"

start_nats nats
export NATS_URL=$nats_url
start_worker w1 -j 1
start_worker w2 -j 1
start_worker q1 -j 2 --queue other

# a foreach of 12 items on the pool: every item ran on a worker, both workers took some
cat >"$TMP/fan.yaml" <<'YAML'
name: fan
steps:
  - name: each
    runs_on: workers
    foreach: ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]
    executor: command
    config: {argv: [sh, -c, "sleep 0.2; echo item-$0-$$", "{{ item }}"]}
  - name: here
    executor: command
    runs_on: local
    config: {argv: [sh, -c, "echo local-$$"]}
outputs:
  lines: "{{ steps.each.outputs }}"
YAML
run "$CBX" run "$TMP/fan.yaml" --json
expect_rc 0 "a foreach over the workers"
[ "$(jqv '.outputs.lines | length')" = 12 ] || fail "foreach outputs: $(cat "$TMP/out")"
for i in 1 6 12; do
    jqv ".outputs.lines[$((i - 1))].stdout" | grep -q "^item-$i-" || fail "item $i: $(cat "$TMP/out")"
done
# the submitter's journal holds each item's execution, its attempt naming the worker that ran it
"$CBX" history --json --limit 100 >"$TMP/hist"
for id in $(jq -r '.[] | select(.executor == "remote") | .id' "$TMP/hist"); do
    "$CBX" history show "$id" --json | jq -r '.attempts[-1].metadata.worker'
done | sort | uniq -c >"$TMP/workers"
[ "$(awk '{s += $1} END {print s}' "$TMP/workers")" = 12 ] ||
    fail "remote executions journaled: $(cat "$TMP/workers")"
grep -q " w1$" "$TMP/workers" && grep -q " w2$" "$TMP/workers" ||
    fail "not both workers ran items: $(cat "$TMP/workers")"
# the local step ran here, not on a worker
jq -e '[.[] | select(.executor == "command")] | length == 1' "$TMP/hist" >/dev/null ||
    fail "the runs_on: local step: $(jq -c '[.[] | {executor, step}]' "$TMP/hist")"

# runs_on for the whole flow, and another queue
cat >"$TMP/q.yaml" <<'YAML'
name: q
runs_on: {queue: other}
steps:
  - name: a
    executor: command
    config: {argv: [echo, on-other]}
outputs:
  out: "{{ trim(steps.a.outputs.stdout) }}"
YAML
run "$CBX" run "$TMP/q.yaml" --json
expect_rc 0 "a flow on another queue"
[ "$(jqv .outputs.out)" = on-other ] || fail "queue flow: $(cat "$TMP/out")"
last_worker() {
    "$CBX" history show "$("$CBX" history --json --limit 1 --executor remote | jq -r '.[0].id')" \
        --json | jq -r '.attempts[-1].metadata.worker'
}
[ "$(last_worker)" = q1 ] || fail "the queue's worker: $(last_worker)"

# a workflow action on the workers: its outputs merge into the token
cat >"$TMP/wf.yaml" <<'YAML'
name: wf
places: [todo, done]
final: [done]
transitions:
  - name: work
    from: todo
    to: done
    action:
      executor: command
      runs_on: workers
      config: {argv: [sh, -c, "echo worked"]}
YAML
run "$CBX" workflow run "$TMP/wf.yaml" --token '{"n": 1}' --json
expect_rc 0 "a workflow whose action runs on the workers"
grep -q worked "$TMP/out" || fail "workflow action output: $(cat "$TMP/out")"
last_worker | grep -Eq '^w[12]$' || fail "the workflow action's worker: $(last_worker)"
echo ok
