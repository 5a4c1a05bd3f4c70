# cbx exec nats against a real nats-server with JetStream on loopback: publish, request/reply,
# JetStream publish with de-duplication, the key-value store with compare-and-set, timeouts,
# a server that is not there, bad parameters, and secrets kept out of the journal.
. "$(dirname "$0")/lib.bash"

command -v nats-server >/dev/null || {
    echo "skip: nats-server is not installed (scripts/deps test installs it)"
    exit 77
}
admin="$(dirname "$CBX")/../tests/nats_admin"
[ -x "$admin" ] || fail "no nats_admin helper at $admin"

# start_nats: a server on a random port with its store under $TMP; sets $nurl and $npid.
start_nats() {
    mkdir -p "$TMP/ports" "$TMP/js"
    rm -f "$TMP"/ports/*
    nats-server -js -a 127.0.0.1 -p -1 -sd "$TMP/js" --ports_file_dir "$TMP/ports" \
        >"$TMP/nats.log" 2>&1 &
    npid=$!
    local deadline=$(($(date +%s) + 300)) f=""
    while [ -z "$f" ]; do
        f=$(ls "$TMP"/ports/*.ports 2>/dev/null | head -1)
        kill -0 $npid 2>/dev/null || fail "nats-server exited: $(tail -3 "$TMP/nats.log")"
        [ "$(date +%s)" -lt "$deadline" ] || fail "nats-server did not start"
        [ -n "$f" ] || sleep 0.05
    done
    wait_for "$f"
    nurl=$(jq -r '.nats[0]' "$f")
}
pids=()
trap 'kill "${pids[@]}" $npid 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
start_nats
export NATS_URL="$nurl"

# publish: a subscriber gets the string as is and an object as compact JSON
"$admin" "$nurl" sub orders.new 2 >"$TMP/sub.out" 2>"$TMP/sub.err" &
pids+=($!)
wait_for "$TMP/sub.err"
run "$CBX" exec nats -p subject=orders.new -p data=hello
expect_rc 0 "publish a string"
[ "$(jqv .bytes)" = "5" ] || fail "publish outputs: $(cat "$TMP/out")"
run "$CBX" exec nats -p subject=orders.new -p data='{"id":7}'
expect_rc 0 "publish an object"
wait "${pids[0]}"
[ "$(cat "$TMP/sub.out")" = $'hello\n{"id":7}' ] || fail "subscriber got: $(cat "$TMP/sub.out")"

# request/reply, with headers back, and the reply's JSON parsed
"$admin" "$nurl" reply svc.echo >"$TMP/reply.ready" &
pids+=($!)
wait_for "$TMP/reply.ready"
run "$CBX" exec nats -p operation=request -p subject=svc.echo -p data=ping
expect_rc 0 "request"
[ "$(jqv .data)" = "echo:ping" ] || fail "reply: $(cat "$TMP/out")"
[ "$(jqv '.headers["X-Echo"]')" = "yes" ] || fail "reply headers: $(cat "$TMP/out")"

# no responders: an error at once, not a timeout
run "$CBX" exec nats -p operation=request -p subject=svc.nobody --json
expect_rc 1 "request with no responders"
grep -q "no responders on subject svc.nobody" "$TMP/out" "$TMP/err" ||
    fail "no-responders message: $(cat "$TMP/out" "$TMP/err")"

# JetStream: acknowledged with a sequence; a repeated msg_id is a duplicate, stored once
"$admin" "$nurl" stream ORDERS 'jobs.>' || fail "stream creation"
run "$CBX" exec nats -p operation=js_publish -p subject=jobs.a -p data=1 -p msg_id=m-1
expect_rc 0 "js_publish"
[ "$(jqv .stream)" = "ORDERS" ] && [ "$(jqv .sequence)" = "1" ] || fail "ack: $(cat "$TMP/out")"
run "$CBX" exec nats -p operation=js_publish -p subject=jobs.a -p data=1 -p msg_id=m-1
expect_rc 0 "js_publish again with the same msg_id"
[ "$(jqv .duplicate)" = "true" ] || fail "second ack: $(cat "$TMP/out")"
[ "$("$admin" "$nurl" count ORDERS)" = "1" ] || fail "the stream holds $("$admin" "$nurl" count ORDERS)"
run "$CBX" exec nats -p operation=js_publish -p subject=nostream.x -p data=1
expect_rc 1 "js_publish where no stream takes the subject"
grep -q "no JetStream stream takes subject nostream.x" "$TMP/err" || fail "$(cat "$TMP/err")"

# key-value: put, get (JSON value), create on an existing key and a stale update conflict
"$admin" "$nurl" kv cfg || fail "bucket creation"
run "$CBX" exec nats -p operation=kv_put -p bucket=cfg -p key=limits.max -p value='{"n":3}'
expect_rc 0 "kv_put"
rev=$(jqv .revision)
run "$CBX" exec nats -p operation=kv_get -p bucket=cfg -p key=limits.max
expect_rc 0 "kv_get"
[ "$(jqv .value.n)" = "3" ] && [ "$(jqv .revision)" = "$rev" ] || fail "get: $(cat "$TMP/out")"
run "$CBX" exec nats -p operation=kv_get -p bucket=cfg -p key=absent
expect_rc 0 "kv_get of a missing key"
[ "$(jqv .found)" = "false" ] || fail "missing key: $(cat "$TMP/out")"
run "$CBX" exec nats -p operation=kv_create -p bucket=cfg -p key=limits.max -p value=x
expect_rc 1 "kv_create of an existing key"
grep -q "the key exists (conflict)" "$TMP/err" || fail "create conflict: $(cat "$TMP/err")"
run "$CBX" exec nats -p operation=kv_update -p bucket=cfg -p key=limits.max -p value=4 \
    -p revision="$rev"
expect_rc 0 "kv_update at the latest revision"
run "$CBX" exec nats -p operation=kv_update -p bucket=cfg -p key=limits.max -p value=5 \
    -p revision="$rev" --json
expect_rc 1 "kv_update at a stale revision"
[ "$(jqv '.attempts[-1].metadata.conflict')" = "true" ] || fail "conflict flag: $(cat "$TMP/out")"
run "$CBX" exec nats -p operation=kv_get -p bucket=cfg -p key=nope.x -p value=1
expect_rc 2 "a parameter that does not apply"
expect_err_line "parameter 'value' does not apply to operation kv_get" "inapplicable parameter"

# compare-and-set race: 8 concurrent kv_create of one key, exactly one wins
for i in 1 2 3 4 5 6 7 8; do
    "$CBX" exec nats -p operation=kv_create -p bucket=cfg -p key=leader -p value="w$i" \
        >/dev/null 2>&1 &
    pids+=($!)
done
wins=0
for p in "${pids[@]: -8}"; do wait "$p" && wins=$((wins + 1)); done
[ "$wins" = 1 ] || fail "$wins kv_create calls won the race"

# bad input: a wildcard subject, a missing subject, a bad key; one line each, exit 2
run "$CBX" exec nats -p subject='orders.*' -p data=x
expect_rc 2 "publish to a wildcard"
expect_err_line "parameter 'subject': \"orders.*\" has a wildcard" "wildcard subject"
run "$CBX" exec nats -p operation=request
expect_rc 2 "request without a subject"
expect_err_line "parameter 'subject' is required by operation request" "missing subject"
run "$CBX" exec nats -p operation=kv_get -p bucket=cfg -p key='.bad'
expect_rc 2 "an invalid key"
grep -q "parameter 'key'" "$TMP/err" || fail "bad key: $(cat "$TMP/err")"

# a reply that never comes ends at the attempt's timeout (exit 124), the responder gone
kill "${pids[1]}" 2>/dev/null
"$admin" "$nurl" sub svc.slow 1 >/dev/null 2>"$TMP/slow.ready" &
pids+=($!)
wait_for "$TMP/slow.ready"
run "$CBX" exec nats -p operation=request -p subject=svc.slow --timeout 300ms
expect_rc 124 "request past its timeout"

# a server that is not there: a one-line error naming it, credentials hidden; secrets never
# reach the journal
run "$CBX" exec nats -p url=nats://alice:hunter2@127.0.0.1:1 -p subject=a -p data=x
expect_rc 1 "no server"
grep -q "cannot connect to nats://\*\*\*@127.0.0.1:1" "$TMP/err" || fail "no server: $(cat "$TMP/err")"
grep -q hunter2 "$TMP/err" && fail "the password is in the error"
run "$CBX" exec nats -p subject=a -p data=x -p token=t0ps3cret
"$CBX" history --json >"$TMP/hist"
grep -q t0ps3cret "$TMP/hist" "$CBX_STATE_DIR"/journal.db* && fail "the token is in the journal"
echo "ok [$TEST]"
