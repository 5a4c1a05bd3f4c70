# A failing command's own stdout and stderr come through too: the wrapper writes what the
# command wrote, whatever its exit code, on every path (one attempt, retries, a breaker).
. "$(dirname "$0")/lib.bash"

run "$CBX" exec -- sh -c 'echo out; echo err >&2; exit 3'
expect_rc 3 "a command exiting 3"
[ "$(cat "$TMP/out")" = "out" ] || fail "stdout of a failing command: '$(cat "$TMP/out")'"
[ "$(cat "$TMP/err")" = "err" ] || fail "stderr of a failing command: '$(cat "$TMP/err")'"

# after retries: each attempt's output, as it came
run "$CBX" exec --retries 2 --retry-delay 1ms -- sh -c 'echo try; echo oops >&2; exit 5'
expect_rc 5 "a command failing three times"
[ "$(cat "$TMP/out")" = "$(printf 'try\ntry\ntry')" ] || fail "stdout after retries: '$(cat "$TMP/out")'"
[ "$(cat "$TMP/err")" = "$(printf 'oops\noops\noops')" ] || fail "stderr after retries: '$(cat "$TMP/err")'"

# killed by a signal after writing
run "$CBX" exec -- sh -c 'echo before; kill -9 $$'
expect_rc 137 "a command killed after writing"
[ "$(cat "$TMP/out")" = "before" ] || fail "stdout before the kill: '$(cat "$TMP/out")'"
echo "ok [$TEST]"
