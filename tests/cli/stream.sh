# cbx exec -- CMD streams the command's stdout and stderr as it writes them (each attempt's), and
# still captures them for the journal. Proved by order: the command waits for a file that the test
# creates only once it has seen the command's first line in cbx's output.
. "$(dirname "$0")/lib.bash"

# stdout, then stderr: each shows up while the command still runs
"$CBX" exec -- sh -c 'echo first; while [ ! -e "$0.1" ]; do sleep 0.02; done
    echo oops >&2; while [ ! -e "$0.2" ]; do sleep 0.02; done; echo last' "$TMP/go" \
    >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/out" $pid || fail "cbx ended before the first line came: $(cat "$TMP/err")"
[ "$(cat "$TMP/out")" = "first" ] || fail "first line: $(cat "$TMP/out")"
touch "$TMP/go.1"
wait_for "$TMP/err" $pid || fail "cbx ended before the stderr line came: $(cat "$TMP/err")"
[ "$(cat "$TMP/err")" = "oops" ] || fail "stderr line: $(cat "$TMP/err")"
touch "$TMP/go.2"
wait $pid
rc=$?
expect_rc 0 "the streamed command"
[ "$(cat "$TMP/out")" = "$(printf 'first\nlast')" ] || fail "stdout: $(cat "$TMP/out")"
[ "$(cat "$TMP/err")" = "oops" ] || fail "stderr written twice: $(cat "$TMP/err")"
# ... and the journal has the capture
run "$CBX" history --json --limit 1
id=$(jqv '.[0].id')
run "$CBX" history show "$id" --json
[ "$(jqv .outputs.stdout)" = "$(printf 'first\nlast')" ] || fail "journal: $(head -c 600 "$TMP/out")"

# a retried command: each attempt's output streams as it comes, so both show
run "$CBX" exec --retries 1 --retry-delay 1ms -- sh -c 'echo try; echo bad >&2; exit 3'
expect_rc 3 "a command failing twice"
[ "$(cat "$TMP/out")" = "$(printf 'try\ntry')" ] || fail "retried stdout: $(cat "$TMP/out")"
[ "$(cat "$TMP/err")" = "$(printf 'bad\nbad')" ] || fail "retried stderr: $(cat "$TMP/err")"

# a timed-out command: what it wrote before the timeout came through, once
run "$CBX" exec --timeout 1s -- sh -c 'echo before; exec sleep 600'
expect_rc 124 "a command timing out"
[ "$(cat "$TMP/out")" = "before" ] || fail "stdout before the timeout: $(cat "$TMP/out")"

# more than the capture keeps: all of it streams, and cbx does not speak of a cut
run "$CBX" exec -p stdout_max=10 -- sh -c 'seq 1 1000'
expect_rc 0 "a long output"
cmp -s "$TMP/out" <(seq 1 1000) || fail "long output cut: $(wc -c <"$TMP/out") bytes"
[ ! -s "$TMP/err" ] || fail "a note about a cut that did not happen: $(cat "$TMP/err")"

# the reader of cbx's stdout goes away: the command gets SIGPIPE, as it would without cbx
timeout 300 "$CBX" exec -- yes | head -n 1 >"$TMP/out"
codes=("${PIPESTATUS[@]}")
[ "${codes[0]}" = 141 ] || fail "yes | head: cbx exited ${codes[0]}, expected 141 (SIGPIPE)"
echo "ok [$TEST]"
