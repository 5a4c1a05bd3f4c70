# Workflow markings in the cluster: a workflow's tokens in the JetStream key-value bucket
# CBX_WORKFLOWS of a real nats-server, moved by several cbx processes at once with
# compare-and-set. Over many trials every token is consumed exactly once (each action runs once
# per token, every firing count equals the tokens); a process stopped part way, or killed with
# SIGKILL in an action, is continued by another from the marking in the bucket; signals and
# events; bad input (no server, a bad or unknown id, a taken id, a corrupt value) is one line.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/nats_lib.bash"

TRIALS=${CBX_WF_CLUSTER_TRIALS:-6}
PROCS=3
TOKENS=40

# the net: a fork, an action on one branch, a join by family, an action on the joined token
cat >"$TMP/wf.yaml" <<YAML
name: cluster
rules:
  numbered: {when: "token.n ~= nil"}
places: [inbox, left, left_done, right, joined, done]
final: [done]
transitions:
  - name: split
    from: inbox
    to: [left, right]
    policy: {rules: {all: [numbered]}}
  - name: work
    from: left
    to: left_done
    action:
      executor: command
      config: {argv: [sh, -c, 'echo "work \$0" >>"\$1"', "#{{ token.n }}", "$TMP/acts"]}
      outputs: {worked: "{{ token.n }}"}
  - name: join
    from: [left_done, right]
    to: joined
  - name: finish
    from: joined
    to: done
    action:
      executor: command
      config: {argv: [sh, -c, 'echo "finish \$0" >>"\$1"', "#{{ token.n }}", "$TMP/acts"]}
YAML

# ---- bad input, before there is a server ----
run "$CBX" workflow resume w1 --nats nats://127.0.0.1:1
expect_rc 1 "no server"
expect_err_line "cannot connect" "no server"
run "$CBX" workflow start "$TMP/wf.yaml" --token '{}' --nats nats://127.0.0.1:1 --workflow-id 'a.b'
expect_rc 2 "a bad id"
expect_err_line "workflow start: --workflow-id: 'a.b' is not 1 to 39 letters, digits, '-' or '_'" "bad id"
run "$CBX" workflow start "$TMP/wf.yaml" --token '{}' --nats nats://127.0.0.1:1
expect_rc 2 "no id"
expect_err_line "workflow start: --nats: give the workflow's id with --workflow-id ID" "no id"
run "$CBX" workflow validate "$TMP/wf.yaml" --nats nats://127.0.0.1:1
expect_rc 2 "validate with --nats"

start_nats nats
url=$nats_url

run "$CBX" workflow resume nosuch --nats "$url"
expect_rc 1 "an unknown id"
expect_err_line "workflow resume: workflow id 'nosuch': no such workflow in CBX_WORKFLOWS on $url" "unknown id"
run "$CBX" workflow show nosuch --nats "$url"
expect_rc 1 "show an unknown id"

# ---- many trials: PROCS processes move the tokens of one workflow at once ----
total_conflicts=0
for trial in $(seq 1 "$TRIALS"); do
    rm -f "$TMP/acts"
    toks=()
    for i in $(seq 1 $TOKENS); do toks+=(--token "{\"n\": $i}"); done
    run "$CBX" workflow start "$TMP/wf.yaml" "${toks[@]}" --nats "$url" --workflow-id "c$trial"
    expect_rc 0 "start trial $trial"
    [ "$(cat "$TMP/out")" = "c$trial" ] || fail "start prints the id: $(cat "$TMP/out")"
    # trial 1 follows the events: each firing's events are published once, by the process whose
    # write landed, however many writes were refused: per token 2 fired by the fork, 1 by each
    # other transition, 2 actions started; then each process at rest: 40 done and its run
    events=""
    if [ "$trial" = 1 ]; then
        events=CBX_EVENTS=$url
        want=$((TOKENS * 5 + TOKENS * 2 + PROCS * (TOKENS + 1)))
        rm -f "$TMP/events" "$TMP/events.ready"
        timeout 120 "$ADMIN" "$url" sub cbx.events.workflow.cluster $want >"$TMP/events" \
            2>"$TMP/events.ready" &
        sub=$!
        wait_for "$TMP/events.ready"
    fi
    pids=()
    for p in $(seq 1 $PROCS); do
        mkdir -p -m 0700 "$TMP/state-$p"
        env $events CBX_STATE_DIR="$TMP/state-$p" "$CBX" workflow resume "c$trial" --nats "$url" \
            --json >"$TMP/out.$p" 2>"$TMP/err.$p" &
        pids+=($!)
    done
    for p in $(seq 1 $PROCS); do
        wait "${pids[$((p - 1))]}" || fail "trial $trial: process $p: exit $? ($(cat "$TMP/err.$p"))"
    done
    # every token is done, each action ran once per token, each transition fired once per token
    fired=0
    for p in $(seq 1 $PROCS); do
        fired=$((fired + $(jq .stats.fires "$TMP/out.$p")))
        total_conflicts=$((total_conflicts + $(jq .stats.cas_conflicts "$TMP/out.$p")))
    done
    [ "$fired" -eq $((TOKENS * 4)) ] || fail "trial $trial: $fired firings, expected $((TOKENS * 4))"
    run "$CBX" workflow show "c$trial" --nats "$url" --json
    expect_rc 0 "show trial $trial"
    jq -e --argjson n $TOKENS '.firings == {split: $n, work: $n, join: $n, finish: $n}' \
        "$TMP/out" >/dev/null || fail "trial $trial: firing counts $(jq -c .firings "$TMP/out")"
    jq -e --argjson n $TOKENS '.marking.done == $n and (.tokens | length) == $n and
        all(.tokens[]; .state == "final" and .data.worked == .data.n)' "$TMP/out" \
        >/dev/null || fail "trial $trial: marking $(jq -c .marking "$TMP/out")"
    for a in work finish; do
        [ "$(grep -c "^$a " "$TMP/acts")" -eq $TOKENS ] ||
            fail "trial $trial: $(grep -c "^$a " "$TMP/acts") '$a' actions for $TOKENS tokens"
    done
    dups=$(sort "$TMP/acts" | uniq -d)
    [ -z "$dups" ] || fail "trial $trial: actions run twice: $dups"
    if [ "$trial" = 1 ]; then
        wait $sub || fail "events: $(wc -l <"$TMP/events") of $want"
        counts=$(jq -sc 'group_by(.event) | map({(.[0].event): length}) | add' "$TMP/events")
        [ "$counts" = "{\"action_started\":$((TOKENS * 2)),\"done\":$((TOKENS * PROCS)),\"fired\":$((TOKENS * 5)),\"run\":$PROCS}" ] ||
            fail "events: $counts"
        [ "$(jq -r 'select(.event == "fired") | "\(.token) \(.transition) \(.place)"' "$TMP/events" |
            sort | uniq -d)" = "" ] || fail "a firing's event published twice"
    fi
done
echo "$TRIALS trials of $TOKENS tokens by $PROCS processes: each token consumed once;" \
    "$total_conflicts compare-and-set conflicts decided again"

# ---- a process stopped part way: another goes on from the marking ----
rm -f "$TMP/acts"
run "$CBX" workflow start "$TMP/wf.yaml" --token '{"n": 1}' --token '{"n": 2}' --nats "$url" \
    --workflow-id part
expect_rc 0 "start part"
run "$CBX" workflow resume part --nats "$url" --max-moves 3
expect_rc 0 "three moves"
run "$CBX" workflow show part --nats "$url" --json
jq -e '[.firings[]] | add == 3' "$TMP/out" >/dev/null || fail "after 3 moves: $(jq -c .firings "$TMP/out")"
jq -e '.marking.done < 2' "$TMP/out" >/dev/null || fail "not done after 3 moves"
run "$CBX" workflow resume part --nats "$url" --json
expect_rc 0 "the rest"
jq -e '.stats.fires == 5 and .marking.done == 2' "$TMP/out" >/dev/null ||
    fail "the second process: $(jq -c '.stats, .marking' "$TMP/out")"
[ "$(sort "$TMP/acts" | tr '\n' ' ')" = "finish #1 finish #2 work #1 work #2 " ] ||
    fail "each action once across the two processes: $(cat "$TMP/acts")"

# ---- a process killed in an action: its claim expires, another runs the action again ----
cat >"$TMP/slow.yaml" <<YAML
name: slow
places: [todo, done]
final: [done]
transitions:
  - name: go
    from: todo
    to: done
    action:
      executor: command
      config:
        argv: [sh, -c, 'echo "\$\$" >>"\$0.started"; if [ ! -e "\$0.once" ]; then : >"\$0.once"; sleep 600; fi; printf ok', "$TMP/slow"]
      outputs: {by: "{{ outputs.stdout }}"}
YAML
run "$CBX" workflow start "$TMP/slow.yaml" --token '{}' --nats "$url" --workflow-id slow
expect_rc 0 "start slow"
"$CBX" workflow resume slow --nats "$url" --lease 1500ms >"$TMP/killed.out" 2>&1 &
victim=$!
until [ -s "$TMP/slow.started" ]; do
    kill -0 $victim 2>/dev/null || fail "the first process ended: $(cat "$TMP/killed.out")"
    sleep 0.05
done
run "$CBX" workflow show slow --nats "$url" --json
jq -e '.tokens[0].state == "busy"' "$TMP/out" >/dev/null ||
    fail "the claimed token shows busy: $(jq -c .tokens "$TMP/out")"
{
    kill -9 $victim
    wait $victim
} 2>/dev/null
kill -9 "$(head -1 "$TMP/slow.started")" 2>/dev/null # the orphaned sleep
run "$CBX" workflow resume slow --nats "$url" --json
expect_rc 0 "taken over after the lease"
jq -e '.marking.done == 1 and .tokens[0].data.by == "ok" and .stats.fires == 1 and
    .stats.claims == 1' "$TMP/out" >/dev/null || fail "take-over: $(cat "$TMP/out")"
[ "$(wc -l <"$TMP/slow.started")" -eq 2 ] || fail "the action ran $(wc -l <"$TMP/slow.started") times"

# ---- signals, and the events of a run on NATS ----
cat >"$TMP/sig.yaml" <<'YAML'
name: sig
places: [todo, review, done]
final: [done]
transitions:
  - name: start
    from: todo
    to: review
  - name: approve
    from: review
    to: done
    signal: approve
YAML
rm -f "$TMP/events" "$TMP/events.ready"
timeout 120 "$ADMIN" "$url" sub cbx.events.workflow.sig 4 >"$TMP/events" 2>"$TMP/events.ready" &
sub=$!
wait_for "$TMP/events.ready"
run env CBX_EVENTS="$url" "$CBX" workflow run "$TMP/sig.yaml" --token '{"a": 1}' --nats "$url" \
    --workflow-id s1
expect_rc 3 "waits for its signal"
grep -q "t1 .*review .*waiting  *waits for signal approve" "$TMP/out" || fail "waiting: $(cat "$TMP/out")"
wait $sub || fail "events: $(cat "$TMP/events")"
[ "$(jq -r .event "$TMP/events" | tr '\n' ' ')" = "created fired waiting run " ] ||
    fail "event sequence: $(cat "$TMP/events")"
jq -se 'all(.run_id == "s1" and .workflow == "sig")' "$TMP/events" >/dev/null ||
    fail "event fields: $(cat "$TMP/events")"
run "$CBX" workflow signal s1 t1 nope --nats "$url"
expect_rc 2 "a signal nothing waits for"
expect_err_line "workflow signal: token t1 in place review waits for the signals: approve" "bad signal"
run "$CBX" workflow signal s1 t1 approve -d '{"by": "ann"}' --nats "$url" --json
expect_rc 0 "signalled"
jq -e '.tokens[0].place == "done" and .tokens[0].data == {"a": 1, "by": "ann"}' "$TMP/out" \
    >/dev/null || fail "after the signal: $(cat "$TMP/out")"

# ---- the nats executor: petri_net and workflow_id (seed 000's NatsExecutor) ----
run "$CBX" exec nats -p url="$url" -p operation=workflow_start -p workflow_id=x1 \
    -p petri_net="$(cat "$TMP/sig.yaml")" -p tokens='[{"k": 1}, {"k": 2}]' --json
expect_rc 0 "workflow_start"
jq -e '.outputs == {workflow_id: "x1", workflow: "sig", tokens: ["t1", "t2"], revision: .outputs.revision}' \
    "$TMP/out" >/dev/null || fail "workflow_start outputs: $(jq -c .outputs "$TMP/out")"
run "$CBX" exec nats -p url="$url" -p operation=workflow_start -p workflow_id=x1 \
    -p petri_net="$(cat "$TMP/sig.yaml")" --json
expect_rc 1 "workflow_start of a taken id"
jq -e '.metadata.conflict == true' "$TMP/out" >/dev/null || fail "conflict: $(cat "$TMP/out")"
run "$CBX" workflow resume x1 --nats "$url"
expect_rc 3 "x1 waits for its signals"
run "$CBX" exec nats -p url="$url" -p operation=workflow_signal -p workflow_id=x1 -p token_id=t2 \
    -p signal=approve -p data='{"ok": true}'
expect_rc 0 "workflow_signal"
run "$CBX" workflow resume x1 --nats "$url"
expect_rc 3 "t1 still waits"
run "$CBX" exec nats -p url="$url" -p operation=workflow_get -p workflow_id=x1 --json
expect_rc 0 "workflow_get"
jq -e '.outputs.state == "waiting" and .outputs.marking == {todo: 0, review: 1, done: 1} and
    ([.outputs.tokens[] | select(.id == "t2")][0].data == {k: 2, ok: true})' "$TMP/out" \
    >/dev/null || fail "workflow_get outputs: $(jq -c .outputs "$TMP/out")"
run "$CBX" exec nats -p url="$url" -p operation=workflow_get -p workflow_id=nosuch
expect_rc 1 "workflow_get of an unknown id"
expect_err_line "workflow id 'nosuch': no such workflow in CBX_WORKFLOWS" "get unknown"
run "$CBX" exec nats -p url="$url" -p operation=workflow_start -p workflow_id=x2 \
    -p petri_net='places: [a'
expect_rc 1 "a petri_net that does not load"
expect_err_line "nats: petri_net: did not find expected ',' or ']'" "bad petri_net"
run "$CBX" exec nats -p operation=workflow_get
expect_rc 2 "workflow_get without its id"
expect_err_line "parameter 'workflow_id' is required by operation workflow_get" "no workflow_id"

# ---- bad values in the bucket ----
run "$CBX" workflow start "$TMP/sig.yaml" --token '{}' --nats "$url" --workflow-id s1
expect_rc 2 "a taken id"
expect_err_line "workflow start: workflow id 's1' is taken in CBX_WORKFLOWS on $url" "taken id"
"$ADMIN" "$url" pub '$KV.CBX_WORKFLOWS.junk' 'not json' || fail "cannot write junk"
run "$CBX" workflow resume junk --nats "$url"
expect_rc 1 "a value that is not JSON"
expect_err_line "workflow resume: workflow id 'junk': the value in CBX_WORKFLOWS is not a workflow marking: '[' or '{' expected near 'not'" "junk"
src=$(jq -Rs . "$TMP/sig.yaml")
"$ADMIN" "$url" pub '$KV.CBX_WORKFLOWS.badplace' \
    "{\"v\": 1, \"source\": $src, \"tokens\": {\"t1\": {\"place\": \"nowhere\", \"data\": {}}}}" ||
    fail "cannot write badplace"
run "$CBX" workflow resume badplace --nats "$url"
expect_rc 1 "a token in an unknown place"
expect_err_line "workflow resume: workflow id 'badplace': the value in CBX_WORKFLOWS is not a workflow marking: tokens.t1: place: missing, or not a place of the workflow" "bad place"
"$ADMIN" "$url" pub '$KV.CBX_WORKFLOWS.nosource' '{"v": 1, "tokens": {}}' || fail "nosource"
run "$CBX" workflow show nosource --nats "$url"
expect_rc 1 "a marking without its source"
expect_err_line "workflow show: workflow id 'nosource': the value in CBX_WORKFLOWS is not a workflow marking: source: expected the workflow's text" "no source"
# ---- list: every workflow of the bucket, by id; a value that is not a marking says why ----
run "$CBX" workflow list --nats "$url" --json
expect_rc 0 "list"
jq -e 'map(.id) == (map(.id) | sort) and (map(.id) | index("s1") != null)' "$TMP/out" >/dev/null ||
    fail "list ids: $(jq -c 'map(.id)' "$TMP/out")"
jq -e '.[] | select(.id == "s1") | .state != "unreadable" and .revision > 0 and .tokens == 1' \
    "$TMP/out" >/dev/null || fail "list s1: $(jq -c '.[] | select(.id == "s1")' "$TMP/out")"
jq -e '.[] | select(.id == "junk") | .state == "unreadable" and (.error | test("not a workflow marking"))' \
    "$TMP/out" >/dev/null || fail "list junk: $(jq -c '.[] | select(.id == "junk")' "$TMP/out")"
run "$CBX" workflow list --nats "$url"
expect_rc 0 "list as a table"
head -1 "$TMP/out" | grep -Eq '^ID +WORKFLOW +STATE +MARKING +REVISION' || fail "list table: $(cat "$TMP/out")"
grep -Eq '^s1 ' "$TMP/out" || fail "list table rows: $(cat "$TMP/out")"
run "$CBX" workflow list --nats "$url" --workflow-id s1
expect_rc 2 "list with --workflow-id"
# ---- with CBX_BREAKER_STORE, an action's rate_limit.key is one bucket for every mover ----
cat >"$TMP/rl.yaml" <<'YAML'
name: rl
places: [a, b]
final: [b]
transitions:
  - name: go
    from: a
    to: b
    policy: {rate_limit: {rate: 1/h, burst: 2, key: wf-rl}}
    action: {executor: command, config: {argv: ["true"]}}
YAML
run "$CBX" workflow start "$TMP/rl.yaml" --token '{}' --token '{}' --token '{}' --token '{}' \
    --nats "$url" --workflow-id rl1
expect_rc 0 "start rl1"
pids=()
for p in 1 2; do
    mkdir -p -m 0700 "$TMP/rl-$p"
    CBX_STATE_DIR="$TMP/rl-$p" CBX_BREAKER_STORE=$url CBX_BREAKER_STORE_WAIT=10s \
        "$CBX" workflow resume rl1 --nats "$url" \
        >/dev/null 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
run "$CBX" workflow show rl1 --nats "$url" --json
jq -e '.marking == {a: 2, b: 2}' "$TMP/out" >/dev/null || fail "one bucket of 2: $(jq -c .marking "$TMP/out")"
jq -e '[.tokens[] | select(.place == "a") | .explanation | test("rate limit of .* exceeded")] | all' \
    "$TMP/out" >/dev/null || fail "refusals: $(jq -c '[.tokens[].explanation]' "$TMP/out")"
# without a shared store the key is refused, saying why
run "$CBX" workflow run "$TMP/rl.yaml" --token '{}' --nats "$url" --workflow-id rl2
expect_rc 1 "rate_limit.key without a shared store"
grep -q "rate_limit.key 'wf-rl': this runtime's breaker store keeps no shared rate limits" \
    "$TMP/out" || fail "no store: $(cat "$TMP/out")"

# ---- the server goes away while a process moves tokens: one line, exit 1, in bounded time ----
start_nats away
cat >"$TMP/nap.yaml" <<YAML
name: nap
places: [a, b]
final: [b]
transitions:
  - name: go
    from: a
    to: b
    action: {executor: command, config: {argv: [sh, -c, ': >"\$0"; sleep 2', "$TMP/nap.started"]}}
YAML
run "$CBX" workflow start "$TMP/nap.yaml" --token '{}' --nats "$nats_url" --workflow-id n1
expect_rc 0 "start n1"
"$CBX" workflow resume n1 --nats "$nats_url" >"$TMP/away.out" 2>"$TMP/away.err" &
mover=$!
until [ -e "$TMP/nap.started" ]; do
    kill -0 $mover 2>/dev/null || fail "the mover ended: $(cat "$TMP/away.err")"
    sleep 0.05
done
kill $nats_pid
wait $mover
rc=$?
[ $rc -eq 1 ] || fail "server away: exit $rc ($(cat "$TMP/away.err"))"
grep -q "workflow resume: workflow id 'n1': reading CBX_WORKFLOWS: " "$TMP/away.err" ||
    fail "server away: $(cat "$TMP/away.err")"
echo "ok"
