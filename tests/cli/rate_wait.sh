# The rate limit's wait mode: over the rate, --rate-wait MAX (rate_limit.wait in a policy block)
# waits on the loop for the next token instead of refusing, and refuses at once when the token
# is further off than MAX or the deadline. Refusals give the wait as a duration, never in ns.
. "$(dirname "$0")/lib.bash"

# 2/s with a burst of 2: five runs in a row all go through, the last three after waiting
t0=$(now_ms)
run "$CBX" exec --no-journal --json --repeat 5 --rate 2/s --rate-wait 5s -- true
expect_rc 0 "five runs waiting for their tokens"
t1=$(now_ms)
[ "$(jqv '"\(.succeeded) \(.refused)"')" = "5 0" ] || fail "not all five succeeded: $(jqv .succeeded)"
# the tokens of runs 3, 4 and 5 come 0.5, 1 and 1.5 s after the first run: no faster
[ $((t1 - t0)) -ge 1400 ] || fail "five runs at 2/s took only $((t1 - t0)) ms"

# a cap shorter than the next token: refused at once, exactly three of five (2/min: however slow
# the machine, no new token comes during the five runs)
run "$CBX" exec --no-journal --repeat 5 --policy-json '{"rate_limit": {"rate": "2/min", "burst": 2, "wait": "300ms"}}' -- true
expect_rc 76 "refused past the wait"
grep -q "5 runs in .*: 2 succeeded, .* 3 refused" "$TMP/out" || fail "counts: $(cat "$TMP/out")"
grep -Eq "next token in [0-9.]+(ms|s), past the wait of 300ms" "$TMP/err" ||
    fail "the refusal's wording: $(cat "$TMP/err")"
! grep -Eq "[0-9]ns" "$TMP/err" || fail "a duration in raw nanoseconds: $(cat "$TMP/err")"

# without the wait mode: refused at once, with the same wording up to the cap
run "$CBX" exec --no-journal --repeat 3 --rate 1/min -- true
expect_rc 76 "refused without a wait"
grep -Eq "rate limit of 0.0166667/s \(burst 1\) exceeded; next token in [0-9.]+s$" "$TMP/err" ||
    grep -Eq "next token in [0-9]+m[0-9]+s$" "$TMP/err" || fail "the plain refusal: $(cat "$TMP/err")"

# a deadline nearer than the token: refused at once, and it says so
run "$CBX" exec --no-journal --repeat 2 --rate 1/min --rate-wait 10m --deadline 2s -- true
expect_rc 76 "refused past the deadline"
grep -q "past the deadline" "$TMP/err" || fail "the deadline's wording: $(cat "$TMP/err")"

# the same from a policy block
run "$CBX" exec --no-journal --json --repeat 4 --policy-json '{"rate_limit": {"rate": "4/s", "burst": 1, "wait": "5s"}}' -- true
expect_rc 0 "rate_limit.wait in a policy block"
[ "$(jqv '"\(.succeeded) \(.refused)"')" = "4 0" ] || fail "policy block: $(jqv .succeeded)"

# a signal ends a run waiting for its token at once
"$CBX" exec --no-journal --repeat 2 --rate 1/h --rate-wait 2h -- true >"$TMP/out" 2>"$TMP/err" &
pid=$!
sleep 0.5
t0=$(now_ms)
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] || [ "$rc" -eq 143 ] || fail "SIGTERM while waiting: exit $rc: $(cat "$TMP/err")"

# usage errors
run "$CBX" exec --no-journal --rate 2/s --rate-wait soon -- true
expect_rc 2 "--rate-wait soon"
run "$CBX" exec --no-journal --rate-wait 1s -- true
expect_rc 2 "--rate-wait without a rate"
exit 0
