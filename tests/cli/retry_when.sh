# Lua predicates over the attempt in --policy-json: retry.when decides whether a failed command
# is retried from its exit code and stderr; breaker.ignore_when keeps what it matches out of the
# policy's breaker; a bad expression is refused with the key path and Lua's message, and a
# broken or runaway one ends the retries with a clear error.
. "$(dirname "$0")/lib.bash"

attempts() {
    run "$CBX" exec --json "$@"
    jqv '.attempts | length'
}

pol='{"retry":{"attempts":3,"initial":"1ms","when":"attempt.outputs.exit_code == 75"}}'
[ "$(attempts --policy-json "$pol" -- sh -c 'exit 75')" = "3" ] || fail "exit 75 was not retried"
[ "$(attempts --policy-json "$pol" -- sh -c 'exit 1')" = "1" ] || fail "exit 1 was retried"
[ "$(jqv .error)" = "exit code 1; retry.when said no" ] || fail "the error: $(jqv .error)"
run "$CBX" exec --policy-json "$pol" -- sh -c 'exit 1'
expect_rc 1 "the command's own code"

# stderr and the attempt number
pol='{"retry":{"attempts":5,"initial":"1ms","when":"attempt.number < 2 and attempt.outputs.stderr:find(\"busy\") ~= nil"}}'
[ "$(attempts --policy-json "$pol" -- sh -c 'echo busy >&2; exit 1')" = "2" ] ||
    fail "busy: $(cat "$TMP/out")"
[ "$(attempts --policy-json "$pol" -- sh -c 'echo broken >&2; exit 1')" = "1" ] ||
    fail "broken: $(cat "$TMP/out")"

# a runtime error, a runaway loop: one attempt, and the error says why
pol='{"retry":{"attempts":3,"initial":"1ms","when":"attempt.outputs.nothing.here"}}'
[ "$(attempts --policy-json "$pol" -- sh -c 'exit 1')" = "1" ] || fail "retried after an error"
jqv .error | grep -qF "retry.when failed: line 1: attempt to index a nil value (field 'nothing')" ||
    fail "the error: $(jqv .error)"
pol='{"retry":{"attempts":3,"initial":"1ms","when":"(function() while true do end end)()"}}'
[ "$(attempts --policy-json "$pol" -- sh -c 'exit 1')" = "1" ] || fail "retried after a runaway"
jqv .error | grep -qF "instruction limit exceeded" || fail "the error: $(jqv .error)"

# breaker.ignore_when: exit 75 does not open the breaker, exit 1 does
brk='"breaker":{"consecutive_failures":2,"open_for":"1m","ignore_when":"attempt.outputs.exit_code == 75"}'
pol='{"retry":{"attempts":4,"initial":"1ms","on":["error"]},'"$brk"'}'
[ "$(attempts --policy-json "$pol" -- sh -c 'exit 75')" = "4" ] || fail "75 opened the breaker"
[ "$(jqv .status)" = "failed" ] || fail "status: $(jqv .status)"
[ "$(attempts --policy-json "$pol" -- sh -c 'exit 1')" = "2" ] || fail "1 did not open the breaker"
[ "$(jqv .status)" = "rejected" ] || fail "status: $(jqv .status)"

# bad expressions are refused before anything runs
run "$CBX" exec --policy-json '{"retry":{"when":"attempt.outputs.exit_code =="}}' -- touch "$TMP/ran"
expect_rc 2 "an unfinished expression"
expect_err_line "retry.when: not a Lua expression: it ends too soon" "the message"
run "$CBX" exec --policy-json '{"breaker":{"count_when":"attempt.("}}' -- touch "$TMP/ran"
expect_rc 2 "a syntax error"
expect_err_line "breaker.count_when: not a Lua expression: <name> expected near '('" "the message"
[ ! -e "$TMP/ran" ] || fail "the command ran"
exit 0
