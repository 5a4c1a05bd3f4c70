# Policies compose the same way wherever the breaker lives: a refusal by a named (host-wide)
# breaker goes to the fallback as an in-process breaker's does; a quality failure counts as a
# failure in a named breaker and is recorded as `quality`; a breaker that opens between
# retries ends the execution as rejected, with the last attempt's output kept.
. "$(dirname "$0")/lib.bash"

# a named breaker's refusal answers with the fallback
for i in 1 2; do
    run "$CBX" exec --breaker zz --breaker-failures 1 --fallback '"fb"' -- false
    expect_rc 0 "named breaker with a fallback, run $i"
    [ "$(cat "$TMP/out")" = "fb" ] || fail "run $i: expected the fallback, got: $(cat "$TMP/out")"
done
run "$CBX" breaker show zz --json
[ "$(jqv .state)" = "open" ] || fail "zz should be open: $(cat "$TMP/out")"
[ "$(jqv .rejections)" = "1" ] || fail "the second run was not refused: $(cat "$TMP/out")"

run "$CBX" exec --breaker zz --fallback '"fb"' --json -- false
[ "$(jqv .status)" = "rejected" ] || fail "status after a refusal: $(jqv .status)"
[ "$(jqv .fallback_used)" = "true" ] || fail "fallback_used after a refusal: $(cat "$TMP/out")"

# a quality failure is a failure in a named breaker, and its recorded outcome is `quality`
for i in 1 2 3; do
    run "$CBX" exec --breaker q chaos -p quality=0.1 --policy-json '{"quality":{"threshold":0.5}}' --json
    [ "$(jqv '.attempts[0].outcome')" = "quality" ] ||
        fail "attempt outcome in --json: $(jqv '.attempts[0].outcome')"
done
run "$CBX" breaker show q --json
[ "$(jqv .failures)" = "3" ] || fail "q should count 3 failures: $(cat "$TMP/out")"
[ "$(jqv .successes)" = "0" ] || fail "q counted quality failures as successes: $(cat "$TMP/out")"
id=$("$CBX" history --json --limit 1 | jq -r '.[0].id')
run "$CBX" history show "$id" --json
[ "$(jqv '.attempts[0].outcome')" = "quality" ] ||
    fail "journaled attempt outcome: $(cat "$TMP/out")"

# a named breaker that opens between retries: rejected, the last output kept and written
run "$CBX" exec --breaker r --breaker-failures 2 --retries 3 --retry-delay 1ms --json -- \
    sh -c 'echo out; echo err >&2; exit 1'
[ "$(jqv .status)" = "rejected" ] || fail "status when the breaker opened between retries: $(jqv .status)"
[ "$(jqv .outputs.stdout)" = "out" ] || fail "the last attempt's stdout was dropped: $(cat "$TMP/out")"
[ "$(jqv .outputs.stderr)" = "err" ] || fail "the last attempt's stderr was dropped"
[ "$(jqv '.attempts | length')" = "2" ] || fail "attempts: $(jqv '.attempts | length')"
id=$(jqv .id)
run "$CBX" history show "$id" --json
[ "$(jqv .status)" = "rejected" ] || fail "journaled status: $(jqv .status)"

run "$CBX" breaker reset r
run "$CBX" exec --breaker r --breaker-failures 2 --retries 3 --retry-delay 1ms -- \
    sh -c 'echo out; echo err >&2; exit 1'
expect_rc 75 "refused between retries"
[ "$(cat "$TMP/out")" = "$(printf 'out\nout')" ] || fail "stdout of the two attempts not streamed through: $(cat "$TMP/out")"
grep -q "^err$" "$TMP/err" || fail "stderr not written through: $(cat "$TMP/err")"
grep -q "breaker 'r' is open" "$TMP/err" || fail "the refusal does not say why: $(cat "$TMP/err")"

# the same with an in-process breaker from a policy block
run "$CBX" exec --policy-json '{"breaker":{"consecutive_failures":2},"retry":{"attempts":4,"initial":"1ms"}}' \
    --json -- sh -c 'echo out; exit 1'
[ "$(jqv .status)" = "rejected" ] || fail "in-process breaker between retries: $(jqv .status)"
[ "$(jqv .outputs.stdout)" = "out" ] || fail "in-process: the last stdout was dropped"

# a timed-out command's output so far is written through
run "$CBX" exec --timeout 1s -- sh -c 'echo before; exec sleep 30'
expect_rc 124 "timeout"
[ "$(cat "$TMP/out")" = "before" ] || fail "output before the timeout was lost: $(cat "$TMP/out")"
exit 0
