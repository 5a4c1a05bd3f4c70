# A status that lasts is in the journal while it lasts: `cbx history` shows an execution waiting
# between attempts as retrying (then its final status once it ends).
. "$(dirname "$0")/lib.bash"

"$CBX" exec --retries 3 --retry-delay 10m --retry-max-delay 10m -- \
    sh -c 'echo x >>"$0"; exit 1' "$TMP/tries" >/dev/null 2>&1 &
pid=$!
wait_for "$TMP/tries" "$pid" || fail "the command never ran"

# poll the journal (committed by its flusher within milliseconds): limits of minutes
deadline=$(($(date +%s) + 300))
status=""
while [ "$(date +%s)" -lt "$deadline" ]; do
    status=$("$CBX" history --json 2>/dev/null | jq -r '.[0].status // empty')
    [ "$status" = "retrying" ] && break
    sleep 0.1
done
[ "$status" = "retrying" ] || { kill "$pid"; fail "history never showed retrying (last: '$status')"; }
run "$CBX" history --status retrying --json
[ "$(jqv length)" = "1" ] || { kill "$pid"; fail "--status retrying: $(cat "$TMP/out")"; }

kill -INT "$pid"
wait "$pid"
[ $? -eq 130 ] || fail "the cancelled exec did not exit 130"
run "$CBX" history --json
[ "$(jqv '.[0].status')" = "cancelled" ] || fail "the end did not replace retrying: $(cat "$TMP/out")"
exit 0
