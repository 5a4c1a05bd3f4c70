# cbx exec -v says on stderr how each attempt ended, each retry with its delay and the breaker's
# decision; without -v none of these lines appear; the command's own output is unchanged.
. "$(dirname "$0")/lib.bash"

run "$CBX" exec -v --breaker vb --breaker-failures 2 --retries 3 --retry-delay 5ms -- \
    sh -c 'echo hi; exit 3'
expect_rc 75 "refused between retries"
[ "$(cat "$TMP/out")" = "$(printf 'hi\nhi')" ] || fail "stdout (each of the two attempts): $(cat "$TMP/out")"
grep -q "attempt 1 failed (exit code 3); retry in " "$TMP/err" || fail "no retry line: $(cat "$TMP/err")"
grep -q "attempt 2: error after .* ms: exit code 3" "$TMP/err" || fail "no attempt line: $(cat "$TMP/err")"
grep -q "refused: breaker 'vb' is open: 2 consecutive failures" "$TMP/err" ||
    fail "no breaker decision: $(cat "$TMP/err")"
grep -q "rejected after 2 attempts" "$TMP/err" || fail "no summary: $(cat "$TMP/err")"

run "$CBX" exec --retries 1 --retry-delay 1ms -- sh -c 'echo hi; exit 3'
expect_rc 3 "the command's code"
if grep -q "attempt" "$TMP/err"; then fail "attempt lines without -v: $(cat "$TMP/err")"; fi

run "$CBX" exec -v -- true
expect_rc 0 "a success"
grep -q "attempt 1: success after" "$TMP/err" || fail "-v on a success: $(cat "$TMP/err")"
exit 0
