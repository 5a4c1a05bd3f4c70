# --timeout kills the command and exits 124, as timeout(1) does; --deadline bounds retries.
. "$(dirname "$0")/lib.bash"

t0=$(now_ms)
run "$CBX" exec --timeout 200ms -- sleep 5
t1=$(now_ms)
expect_rc 124 "sleep 5 under --timeout 200ms"
# the command was stopped, not waited for: well before its 5 s were up
[ $((t1 - t0)) -lt 4000 ] || fail "took $((t1 - t0)) ms: the command was not killed"
expect_err_line "timed out" "the timeout line"

# the whole tree dies: a grandchild that would touch a marker after 1 s never does
run "$CBX" exec --timeout 200ms -- sh -c "(sleep 1; touch '$TMP/late') & sleep 5"
expect_rc 124 "a tree with a grandchild"
sleep 1.3
[ ! -e "$TMP/late" ] || fail "the grandchild survived the timeout"

# what the command left running is not waited for: a background child holding stdout does not
# turn success into a timeout, and what was written is kept
run "$CBX" exec --timeout 2s -- sh -c 'sleep 5 & echo started'
expect_rc 0 "a background child holding stdout under --timeout 2s"
[ "$(cat "$TMP/out")" = "started" ] || fail "stdout: '$(cat "$TMP/out")', expected 'started'"

# retries under an overall deadline: the deadline wins
t0=$(now_ms)
run "$CBX" exec --timeout 300ms --retries 50 --retry-delay 10ms --deadline 700ms -- sleep 5
t1=$(now_ms)
expect_rc 124 "retries under --deadline"
[ $((t1 - t0)) -lt 4000 ] || fail "the deadline did not end the retries ($((t1 - t0)) ms)"

# --json says timeout
run "$CBX" exec --json --timeout 100ms -- sleep 5
expect_rc 124 "--json timeout"
[ "$(jqv .status)" = "timeout" ] || fail "status: $(jqv .status)"
echo "ok [$TEST]"
