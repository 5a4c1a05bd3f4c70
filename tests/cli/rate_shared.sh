# Host-wide rate limits: `cbx exec --rate R --rate-key NAME` takes its tokens from one bucket
# shared by every cbx process on the host that names the key (its arrival time is a word of the
# host store, updated by compare-and-swap). Counts are exact with several processes at once; a
# process killed with -9 while holding the limiter's record leaves nothing behind.
. "$(dirname "$0")/lib.bash"
LOCK_FILE="$(dirname "$CBX")/../tests/lock_file"
[ -x "$LOCK_FILE" ] || fail "no helper $LOCK_FILE (build the tests)"

# four processes at once, five runs each, against a bucket of 5 that refills once an hour:
# exactly 5 runs in all go through
P='{"rate_limit": {"rate": "1/h", "burst": 5}}'
for i in 1 2 3 4; do
    "$CBX" exec --no-journal --json -q --repeat 5 --policy-json "$P" --rate-key K -- true \
        >"$TMP/out.$i" 2>"$TMP/err.$i" &
done
wait
[ "$(jq -s 'map(.succeeded) | add' "$TMP"/out.[1-4])" = "5" ] ||
    fail "admitted across processes: $(cat "$TMP"/out.[1-4] | jq -c '[.succeeded, .refused]')"
[ "$(jq -s 'map(.refused) | add' "$TMP"/out.[1-4])" = "15" ] || fail "refused across processes"

# a later process with the same key finds the bucket empty; another key is a bucket of its own
run "$CBX" exec --no-journal --rate 1/h --rate-key K -- true
expect_rc 76 "the shared bucket is empty"
expect_err_line "rate limit of 0.000277778/s (burst 1) exceeded; next token in " "the refusal"
! grep -Eq "[0-9]ns" "$TMP/err" || fail "raw nanoseconds: $(cat "$TMP/err")"
run "$CBX" exec --no-journal --rate 1/h --rate-key other -- true
expect_rc 0 "another key"
# without --rate-key each process has a bucket of its own
run "$CBX" exec --no-journal --rate 1/h -- true
expect_rc 0 "no key"

# the limiters are not breakers: a breaker of the same name is apart, and list does not show them
run "$CBX" exec --no-journal --breaker K -- true
expect_rc 0 "a breaker named K"
run "$CBX" breaker list --json
[ "$(jqv 'map(.name) | join(",")')" = "K" ] || fail "breaker list: $(cat "$TMP/out")"

# wait mode across processes: three processes, two runs each, at 4/s with a burst of 1, all
# wait their turn and all six go through, no faster than the rate
W='{"rate_limit": {"rate": "4/s", "burst": 1, "wait": "1m"}}'
t0=$(now_ms)
for i in 1 2 3; do
    "$CBX" exec --no-journal --json -q --repeat 2 --policy-json "$W" --rate-key W -- true \
        >"$TMP/out.$i" 2>"$TMP/err.$i" &
done
wait
t1=$(now_ms)
[ "$(jq -s 'map(.succeeded) | add' "$TMP"/out.[1-3])" = "6" ] ||
    fail "waiting across processes: $(cat "$TMP"/err.[1-3])"
[ $((t1 - t0)) -ge 1200 ] || fail "six tokens at 4/s in $((t1 - t0)) ms"

# a process holding the limiter's record, killed with -9: the run waiting for it goes on
run "$CBX" exec --no-journal --rate 100/s --rate-key held -- true
expect_rc 0 "make the limiter 'held'"
mkfifo "$TMP/hold"
"$LOCK_FILE" "$CBX_STATE_DIR/breakers" held <"$TMP/hold" >"$TMP/locked" &
holder=$!
exec 9>"$TMP/hold" # the holder keeps the lock until this closes
for _ in $(seq 3000); do
    [ -s "$TMP/locked" ] && break
    kill -0 "$holder" 2>/dev/null || fail "lock_file did not start"
    sleep 0.1
done
"$CBX" exec --no-journal --rate 100/s --rate-key held -- true >"$TMP/out" 2>"$TMP/err" &
pid=$!
sleep 0.3
kill -0 "$pid" 2>/dev/null || fail "the run did not wait for the locked record: $(cat "$TMP/err")"
kill -9 "$holder"
wait "$holder" 2>/dev/null
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] || fail "after the holder's kill -9: exit $rc: $(cat "$TMP/err")"
exec 9>&-

# a version 2 file (the same layout, every record a breaker) is upgraded in place, its breakers
# kept; a newer version is refused, naming both
version() { od -An -tu4 -j8 -N4 "$CBX_STATE_DIR/breakers" | tr -d ' '; }
[ "$(version)" = "3" ] || fail "the store's version: $(version)"
printf '\002\000\000\000' | dd of="$CBX_STATE_DIR/breakers" bs=1 seek=8 conv=notrunc 2>/dev/null
[ "$(version)" = "2" ] || fail "could not write version 2"
run "$CBX" breaker show K --json
expect_rc 0 "a version 2 file"
[ "$(jqv .calls)" = "1" ] || fail "the upgrade lost breaker K: $(cat "$TMP/out")"
[ "$(version)" = "3" ] || fail "not upgraded: version $(version)"
printf '\004\000\000\000' | dd of="$CBX_STATE_DIR/breakers" bs=1 seek=8 conv=notrunc 2>/dev/null
run "$CBX" breaker list
expect_rc 70 "a newer version"
expect_err_line "version 4, this build reads version 3" "the newer version's message"
printf '\003\000\000\000' | dd of="$CBX_STATE_DIR/breakers" bs=1 seek=8 conv=notrunc 2>/dev/null

# usage
run "$CBX" exec --no-journal --rate-key K -- true
expect_rc 2 "--rate-key without a rate"
expect_err_line "needs a rate" "the usage line"
run "$CBX" exec --no-journal --rate 1/s --rate-key '' -- true
expect_rc 2 "an empty key"
exit 0
