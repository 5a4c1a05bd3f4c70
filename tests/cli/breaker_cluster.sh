# Breakers shared by the cluster (CBX_BREAKER_STORE=nats://...): a breaker opened by one "host"
# (a state directory of its own) refuses calls on another, and its opening is announced on
# cbx.events.breaker.<name>; list/show/close see the same breaker;
# when it half-opens, 8 processes racing for its single probe let exactly one through, in every
# one of several trials; and with the server gone, breakers decide on their own view and say so.
. "$(dirname "$0")/lib.bash"

command -v nats-server >/dev/null || {
    echo "skip: nats-server is not installed (scripts/deps test installs it)"
    exit 77
}
mkdir -p "$TMP/ports" "$TMP/js" "$TMP/hostA" "$TMP/hostB"
chmod 700 "$TMP/hostA" "$TMP/hostB"
nats-server -js -a 127.0.0.1 -p -1 -sd "$TMP/js" --ports_file_dir "$TMP/ports" \
    >"$TMP/nats.log" 2>&1 &
npid=$!
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
deadline=$(($(date +%s) + 300))
until f=$(ls "$TMP"/ports/*.ports 2>/dev/null | head -1) && [ -s "$f" ]; do
    kill -0 $npid 2>/dev/null || fail "nats-server exited: $(tail -3 "$TMP/nats.log")"
    [ "$(date +%s)" -lt "$deadline" ] || fail "nats-server did not start"
    sleep 0.05
done
export CBX_BREAKER_STORE=$(jq -r '.nats[0]' "$f")
# the exact counts below need every operation to reach the server: a busy machine may take
# longer than the default second to answer (the partition at the end uses the default)
export CBX_BREAKER_STORE_WAIT=10s

admin="$(dirname "$CBX")/../tests/nats_admin"
[ -x "$admin" ] || fail "no nats_admin helper at $admin"
# watchers of cbx.events.breaker.* see the transition, whoever wrote it
"$admin" "$CBX_BREAKER_STORE" sub cbx.events.breaker.pay 1 >"$TMP/events" 2>"$TMP/events.ready" &
epid=$!
wait_for "$TMP/events.ready"

# on host A, two failures open it; host B is refused without running anything
for _ in 1 2; do
    CBX_STATE_DIR="$TMP/hostA" run "$CBX" exec --breaker pay --breaker-failures 2 \
        --breaker-open 1h -- false
    expect_rc 1 "a failure on host A"
done
CBX_STATE_DIR="$TMP/hostB" run "$CBX" exec --breaker pay -- sh -c "echo ran >'$TMP/ranB'"
expect_rc 75 "host B refused by the breaker host A opened"
[ ! -e "$TMP/ranB" ] || fail "host B ran its command through an open breaker"
wait $epid
[ "$(jq -r '.from + ">" + .to' "$TMP/events")" = "closed>open" ] || fail "breaker event: $(cat "$TMP/events")"
CBX_STATE_DIR="$TMP/hostB" run "$CBX" breaker show pay --json
[ "$(jqv .state)" = open ] && [ "$(jqv .failures)" = 2 ] || fail "show on host B: $(cat "$TMP/out")"
CBX_STATE_DIR="$TMP/hostB" run "$CBX" breaker list --json
jqv '.[].name' | grep -qx pay || fail "list on host B: $(cat "$TMP/out")"
CBX_STATE_DIR="$TMP/hostB" run "$CBX" breaker close pay
expect_rc 0 "close on host B"
CBX_STATE_DIR="$TMP/hostA" run "$CBX" exec --breaker pay -- true
expect_rc 0 "host A after host B closed it"

# half-open: one probe slot, 8 processes from two hosts race for it, in 5 trials
for trial in 1 2 3 4 5; do
    name="probe$trial"
    for _ in 1 2; do
        CBX_STATE_DIR="$TMP/hostA" "$CBX" exec --breaker "$name" --breaker-failures 2 \
            --breaker-open 200ms --breaker-probes 1 -- false >/dev/null 2>&1
    done
    CBX_STATE_DIR="$TMP/hostB" run "$CBX" breaker show "$name" --json
    [ "$(jqv .state)" != closed ] || fail "trial $trial: not open: $(cat "$TMP/out")"
    sleep 0.4 # past the open time: the next call may probe
    : >"$TMP/probes$trial"
    pids=()
    for i in 1 2 3 4 5 6 7 8; do
        host=hostA
        [ $((i % 2)) = 0 ] && host=hostB
        # an admitted probe holds its slot until the others have been decided
        CBX_STATE_DIR="$TMP/$host" "$CBX" exec --breaker "$name" -- sh -c "echo $i >>'$TMP/probes$trial'
            n=0; while [ ! -e '$TMP/release$trial' ] && [ \$n -lt 6000 ]; do sleep 0.05; n=\$((n+1)); done" \
            >/dev/null 2>&1 &
        pids+=($!)
    done
    deadline=$(($(date +%s) + 300))
    while :; do
        running=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
        [ "$running" -le 1 ] && break
        [ "$(date +%s)" -lt "$deadline" ] || fail "trial $trial: the calls were not decided"
        sleep 0.05
    done
    touch "$TMP/release$trial"
    admitted=0
    for p in "${pids[@]}"; do
        wait "$p"
        [ $? = 0 ] && admitted=$((admitted + 1))
    done
    [ "$(wc -l <"$TMP/probes$trial")" = 1 ] && [ "$admitted" = 1 ] ||
        fail "trial $trial: $(wc -l <"$TMP/probes$trial") probes ran, $admitted admitted"
done
# a remote job's named breaker is the cluster's: opened here, it refuses the job on the worker
mkdir -p -m 0700 "$TMP/worker"
CBX_STATE_DIR="$TMP/worker" "$CBX" worker --nats "$CBX_BREAKER_STORE" >"$TMP/worker.log" 2>&1 &
for _ in 1 2; do
    CBX_STATE_DIR="$TMP/hostA" "$CBX" exec --breaker remote1 --breaker-failures 2 --breaker-open 1h \
        -- false >/dev/null 2>&1
done
CBX_STATE_DIR="$TMP/hostB" run "$CBX" exec --remote "$CBX_BREAKER_STORE" --breaker remote1 \
    -- sh -c "echo ran >'$TMP/ran_remote'"
expect_rc 75 "a remote job refused by the cluster's open breaker"
[ ! -e "$TMP/ran_remote" ] || fail "the worker ran the job through an open breaker"

# a partition: with the server gone, a breaker decides on this process's own view, and says so
unset CBX_BREAKER_STORE_WAIT
kill $npid
wait $npid 2>/dev/null
CBX_STATE_DIR="$TMP/hostA" run "$CBX" exec --breaker lonely -- true
expect_rc 0 "a call while the cluster is unreachable"
grep -q "the cluster store is unreachable" "$TMP/err" || fail "no word of the partition: $(cat "$TMP/err")"
CBX_BREAKER_STORE=nats://127.0.0.1:1 CBX_STATE_DIR="$TMP/hostA" run "$CBX" exec --breaker lonely -- true
expect_rc 0 "a call with no server at all"
grep -q "the cluster store is unreachable" "$TMP/err" || fail "no server: $(cat "$TMP/err")"
echo "ok [$TEST]"
