# cbx exec -- CMD as a drop-in wrapper: the command's stdout, stderr and exit code.
. "$(dirname "$0")/lib.bash"

run "$CBX" exec -- sh -c 'printf "out\nmore"; printf "err\n" >&2'
expect_rc 0 "a succeeding command"
[ "$(cat "$TMP/out")" = "$(printf 'out\nmore')" ] || fail "stdout differs: $(cat "$TMP/out")"
[ "$(cat "$TMP/err")" = "err" ] || fail "stderr differs: $(cat "$TMP/err")"

run "$CBX" exec -- sh -c 'exit 3'
expect_rc 3 "a command exiting 3"
[ ! -s "$TMP/err" ] || fail "cbx added to the failing command's stderr: $(cat "$TMP/err")"

run "$CBX" exec -- sh -c 'kill -9 $$'
expect_rc 137 "a command killed by SIGKILL (128+9)"

run "$CBX" exec -- sh -c 'kill -TERM $$'
expect_rc 143 "a command killed by SIGTERM (128+15)"

run "$CBX" exec -- /nonexistent/program
expect_rc 127 "a program that does not exist"
grep -q "nonexistent" "$TMP/err" || fail "no message names the missing program: $(cat "$TMP/err")"

# arguments reach the command untouched, options after -- included
run "$CBX" exec -- printf '%s|' --timeout 'a b' '' "\$HOME"
expect_rc 0 "printf with odd arguments"
[ "$(cat "$TMP/out")" = "--timeout|a b||\$HOME|" ] || fail "argv changed: $(cat "$TMP/out")"

# -p adds command parameters: stdin text and a working directory
mkdir -p "$TMP/wd"
run "$CBX" exec -p stdin=hello -p cwd="$TMP/wd" -- sh -c 'cat; pwd'
expect_rc 0 "stdin and cwd parameters"
[ "$(cat "$TMP/out")" = "$(printf 'hello%s' "$TMP/wd")" ] || fail "stdin/cwd: $(cat "$TMP/out")"

# --json: the result object, status success, the command's outputs inside
run "$CBX" exec --json -- echo hi
expect_rc 0 "--json -- echo hi"
[ "$(jqv .status)" = "success" ] || fail "--json status: $(cat "$TMP/out")"
[ "$(jqv .outputs.stdout)" = "hi" ] || fail "--json outputs.stdout: $(cat "$TMP/out")"
[ "$(jqv .executor)" = "command" ] || fail "--json executor: $(cat "$TMP/out")"

run "$CBX" exec --json -- true
expect_rc 0 "--json -- true"
[ "$(jqv .status)" = "success" ] || fail "--json -- true: $(cat "$TMP/out")"

# a failed command with --json: status failed, the command's exit code
run "$CBX" exec --json -- sh -c 'exit 4'
expect_rc 4 "--json with exit 4"
[ "$(jqv .status)" = "failed" ] || fail "--json failed status: $(cat "$TMP/out")"

# retries: a command that fails twice then succeeds (a counter file) gets three attempts
echo 0 >"$TMP/count"
run "$CBX" exec --json --retries 3 --retry-delay 10ms --backoff fixed -- \
    sh -c 'n=$(cat "$0"); n=$((n+1)); echo $n >"$0"; [ $n -ge 3 ]' "$TMP/count"
expect_rc 0 "succeeds on the third attempt"
[ "$(jqv .attempt_count)" = "3" ] || fail "attempt_count: $(jqv .attempt_count)"
[ "$(cat "$TMP/count")" = "3" ] || fail "the command ran $(cat "$TMP/count") times"

# a static fallback answers when the command fails: exit 0
run "$CBX" exec --fallback '"spare"' -- false
expect_rc 0 "a fallback answered"
[ "$(cat "$TMP/out")" = "spare" ] || fail "fallback output: $(cat "$TMP/out")"

# --quiet: the command's own output still comes through
run "$CBX" exec --quiet -- echo loud
expect_rc 0 "--quiet"
[ "$(cat "$TMP/out")" = "loud" ] || fail "--quiet hid the command's output"
echo "ok [$TEST]"
