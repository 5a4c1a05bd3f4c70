# Rate limits shared by the cluster: with CBX_BREAKER_STORE naming a real nats-server, `cbx exec
# --rate-key K` processes with separate state directories (as on separate hosts) take from one
# bucket kept in JetStream KV (CBX_RATES), its arrival time updated by compare-and-set: counts
# are exact, and four processes waiting for tokens never go faster than the rate; with the
# server gone a run decides on its own bucket and says so.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/nats_lib.bash"

start_nats nats
export CBX_BREAKER_STORE=$nats_url
# the exact counts below need every operation to reach the server: a busy machine may take
# longer than the default second to answer (the partition at the end uses the default)
export CBX_BREAKER_STORE_WAIT=10s

pids=()
# exec_in HOST ARGS...: cbx exec with HOST's own state directory
exec_in() {
    local host=$1
    shift
    mkdir -p -m 0700 "$TMP/host-$host"
    CBX_STATE_DIR="$TMP/host-$host" "$CBX" exec --no-journal "$@"
}

# four processes at once on four "hosts", five runs each, against a bucket of 5 that refills
# once an hour: exactly 5 runs in all go through
P='{"rate_limit": {"rate": "1/h", "burst": 5}}'
for i in 1 2 3 4; do
    exec_in "$i" --json -q --repeat 5 --policy-json "$P" --rate-key K -- true \
        >"$TMP/out.$i" 2>"$TMP/err.$i" &
    pids+=($!)
done
wait "${pids[@]}"
pids=()
[ "$(jq -s 'map(.succeeded) | add' "$TMP"/out.[1-4])" = "5" ] ||
    fail "admitted across hosts: $(cat "$TMP"/out.[1-4] "$TMP"/err.[1-4])"
[ "$(jq -s 'map(.refused) | add' "$TMP"/out.[1-4])" = "15" ] || fail "refused across hosts"
# the bucket lives in the cluster: a fifth host finds it empty; another key is its own bucket
run exec_in 5 --rate 1/h --rate-key K -- true
expect_rc 76 "the cluster's bucket is empty"
grep -q "exceeded; next token in " "$TMP/err" || fail "refusal: $(cat "$TMP/err")"
run exec_in 5 --rate 1/h --rate-key other -- true
expect_rc 0 "another key"
# the host store was not used
[ ! -e "$TMP/host-1/breakers" ] || fail "the host store was made: $(ls -l "$TMP/host-1")"

# four processes waiting for tokens at 5/s with a burst of 1, four runs each: all sixteen go
# through, and the last cannot start before 15 intervals of 200 ms after the first could (four
# buckets of their own would let them through in about 600 ms); a slow machine only makes it
# longer
W='{"rate_limit": {"rate": "5/s", "burst": 1, "wait": "1m"}}'
t0=$(now_ms)
for i in 1 2 3 4; do
    exec_in "$i" --json -q --repeat 4 --policy-json "$W" --rate-key W -- \
        sh -c "date +%s%3N >>'$TMP/starts'" >"$TMP/out.$i" 2>"$TMP/err.$i" &
    pids+=($!)
done
wait "${pids[@]}"
[ "$(jq -s 'map(.succeeded) | add' "$TMP"/out.[1-4])" = "16" ] ||
    fail "waiting across hosts: $(cat "$TMP"/err.[1-4])"
[ "$(wc -l <"$TMP/starts")" = 16 ] || fail "starts: $(cat "$TMP/starts")"
last=$(sort -n "$TMP/starts" | tail -1)
[ $((last - t0)) -ge 3000 ] || fail "sixteen tokens at 5/s within $((last - t0)) ms"

# the server gone: the run decides on its own bucket, with a warning
unset CBX_BREAKER_STORE_WAIT
kill $nats_pid
wait $nats_pid 2>/dev/null
run exec_in 6 --rate 1/h --rate-key K -- true
expect_rc 0 "the cluster away: this process's own bucket"
grep -q "unreachable" "$TMP/err" || fail "no warning: $(cat "$TMP/err")"
echo ok
