# A policy block's rate_limit.key shares the limiter as --rate-key does: on the host through the
# host store (separate processes, one bucket; a policy without the key is each process's own), in
# the cluster through CBX_RATES of a real nats-server (separate state directories, as separate
# hosts), and on workers: jobs sent with `cbx exec --remote` whose policy names the key take from
# one bucket whichever worker runs them. A bad key is a one-line error naming rate_limit.key.
# Flows (cbx run, one run or a batch) share it when CBX_BREAKER_STORE names a store.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/nats_lib.bash"

P='{"rate_limit": {"rate": "1/h", "burst": 2, "key": "shared-k"}}'
# on the host: the third process finds the bucket empty
for i in 1 2; do
    run "$CBX" exec --no-journal --policy-json "$P" -- true
    expect_rc 0 "host run $i"
done
run "$CBX" exec --no-journal --policy-json "$P" -- true
expect_rc 76 "the host's bucket is empty"
grep -q "rate limit of .* exceeded; next token in " "$TMP/err" || fail "refusal: $(cat "$TMP/err")"
# without the key, each process has its own bucket
for i in 1 2 3; do
    run "$CBX" exec --no-journal --policy-json '{"rate_limit": {"rate": "1/h", "burst": 2}}' -- true
    expect_rc 0 "own bucket run $i"
done
run "$CBX" exec --no-journal --policy-json '{"rate_limit": {"rate": "1/h", "key": ""}}' -- true
expect_rc 2 "an empty key"
expect_err_line "--policy-json: rate_limit.key: expected the name of a shared limiter: a string of 1 to 200 bytes" "empty key"
run "$CBX" exec --no-journal --policy-json '{"rate_limit": {"rate": "1/h", "key": 7}}' -- true
expect_rc 2 "a key that is not a string"

# flows: with CBX_BREAKER_STORE set, cbx run's runtime takes its limiters from that store, so
# runs one after another, and the lines of a batch, share the key's bucket; unset, a key is
# refused in one line
cat >"$TMP/rk.yaml" <<'YAML'
name: rk
policies:
  lim: {rate_limit: {rate: 1/h, burst: 2, key: flow-k}}
steps:
  - name: a
    executor: command
    policy: lim
    config: {argv: ["true"]}
YAML
for i in 1 2; do
    CBX_BREAKER_STORE=host run "$CBX" run "$TMP/rk.yaml" -q --no-journal
    expect_rc 0 "flow run $i"
done
CBX_BREAKER_STORE=host run "$CBX" run "$TMP/rk.yaml" -q --no-journal
expect_rc 1 "the flows' bucket is empty"
grep -q "step 'a' failed: rate limit of .* exceeded" "$TMP/err" || fail "flow refusal: $(cat "$TMP/err")"
run "$CBX" run "$TMP/rk.yaml" -q --no-journal
expect_rc 1 "a key without a chosen store"
grep -q "rate_limit.key 'flow-k': this runtime's breaker store keeps no shared rate limits" "$TMP/err" ||
    fail "no store: $(cat "$TMP/err")"
sed -i 's/flow-k/batch-k/' "$TMP/rk.yaml"
printf '{}\n{}\n{}\n' >"$TMP/items.jsonl"
CBX_BREAKER_STORE=host run "$CBX" run "$TMP/rk.yaml" --no-journal --batch "$TMP/items.jsonl" \
    --output "$TMP/batch.out"
[ "$(jq -s 'map(select(.status == "success")) | length' "$TMP/batch.out")" = 2 ] ||
    fail "a batch on one key: $(cat "$TMP/batch.out" "$TMP/err")"
# a workflow on the journal: the same, its actions through the chosen store's bucket
cat >"$TMP/rl.yaml" <<'YAML'
name: rl
places: [a, b]
final: [b]
transitions:
  - name: go
    from: a
    to: b
    policy: {rate_limit: {rate: 1/h, burst: 2, key: wf-k}}
    action: {executor: command, config: {argv: ["true"]}}
YAML
CBX_BREAKER_STORE=host run "$CBX" workflow run "$TMP/rl.yaml" --token '{}' --token '{}' \
    --token '{}' --json
jq -e '.marking == {a: 1, b: 2}' "$TMP/out" >/dev/null ||
    fail "a journal workflow on one bucket of 2: $(cat "$TMP/out" "$TMP/err")"
CBX_BREAKER_STORE=host run "$CBX" workflow run "$TMP/rl.yaml" --token '{}' --json
jq -e '.marking.a == 1 and .marking.b == 0' "$TMP/out" >/dev/null ||
    fail "the next workflow finds the bucket empty: $(cat "$TMP/out" "$TMP/err")"
CBX_BREAKER_STORE=bogus run "$CBX" run "$TMP/rk.yaml" --no-journal
expect_rc 2 "a bad CBX_BREAKER_STORE"
expect_err_line "run: breaker store: CBX_BREAKER_STORE: 'bogus' is not 'host', 'nats' or a nats:// URL" "bad store"

# in the cluster: three "hosts", five runs each, one bucket of 2 in CBX_RATES
start_nats nats
# the exact counts below need every operation to reach the server: a busy machine may take
# longer than the default second to answer
export CBX_BREAKER_STORE_WAIT=10s
pids=()
for i in 1 2 3; do
    mkdir -p -m 0700 "$TMP/host-$i"
    CBX_STATE_DIR="$TMP/host-$i" CBX_BREAKER_STORE=$nats_url "$CBX" exec --no-journal --json -q \
        --repeat 5 --policy-json "$P" -- true >"$TMP/out.$i" 2>"$TMP/err.$i" &
    pids+=($!)
done
wait "${pids[@]}"
[ "$(jq -s 'map(.succeeded) | add' "$TMP"/out.[1-3])" = "2" ] ||
    fail "admitted across hosts: $(cat "$TMP"/out.[1-3] "$TMP"/err.[1-3])"
[ "$(jq -s 'map(.refused) | add' "$TMP"/out.[1-3])" = "13" ] || fail "refused across hosts"

# on workers: two workers with the cluster store; the jobs' policy names another key
export CBX_BREAKER_STORE=$nats_url
start_worker w1 --nats "$nats_url"
start_worker w2 --nats "$nats_url"
W='{"rate_limit": {"rate": "1/h", "burst": 3, "key": "jobs-k"}}'
ok=0 refused=0
for i in $(seq 1 6); do
    run "$CBX" exec --no-journal --remote "$nats_url" --remote-wait 60s --policy-json "$W" -- true
    case $rc in
    0) ok=$((ok + 1)) ;;
    76) refused=$((refused + 1)) ;;
    *) fail "remote run $i: exit $rc ($(cat "$TMP/err"))" ;;
    esac
done
[ "$ok" -eq 3 ] && [ "$refused" -eq 3 ] || fail "on workers: $ok ran, $refused refused (want 3 and 3)"
echo ok
