# cbx exec --each and --repeat write each execution's output as it comes, a whole line at a time:
# lines of executions running at once never mix within a line (--tag names whose line it is,
# --group holds each one's output until it ends). Proved by order: the commands wait for files
# the test (or the other job) creates only once their earlier output has been seen.
. "$(dirname "$0")/lib.bash"

D="$TMP/sync"
mkdir -p "$D"

# --repeat: both runs' first lines show while they still run, each tagged with its run number
"$CBX" exec --repeat 2 -j2 --tag -- sh -c 'echo hello; while [ ! -e "$0" ]; do sleep 0.02; done
    echo bye' "$D/go" >"$TMP/out" 2>"$TMP/err" &
pid=$!
until [ "$(grep -c hello "$TMP/out" 2>/dev/null)" = 2 ]; do
    kill -0 $pid 2>/dev/null || fail "cbx ended before the first lines came: $(cat "$TMP/out" "$TMP/err")"
    sleep 0.05
done
[ "$(sort "$TMP/out" | tr '\n\t' '|:')" = "1:hello|2:hello|" ] || fail "--repeat lines: $(cat "$TMP/out")"
touch "$D/go"
wait $pid
rc=$?
expect_rc 0 "--repeat streamed"
[ "$(grep -c bye "$TMP/out")" = 2 ] || fail "--repeat last lines: $(cat "$TMP/out")"
grep -q '2 runs' "$TMP/out" || fail "--repeat summary: $(cat "$TMP/out")"

# --each: job a writes half a line, job b a whole line; a writes the rest of its line only once
# b's line is in cbx's output: b's line comes whole while a runs, and a's line is whole too
job='if [ "$1" = a ]; then printf "a-left-"; touch "$0/a1"
    while ! grep -q b-whole "$0/out" 2>/dev/null; do sleep 0.02; done; echo a-right
    else while [ ! -e "$0/a1" ]; do sleep 0.02; done; echo b-whole; fi'
rm -f "$D"/*
printf 'a\nb\n' | "$CBX" exec -j2 --each -q -- sh -c "$job" "$D" >"$D/out" 2>"$TMP/err"
rc=$?
expect_rc 0 "--each lines"
[ "$(tr '\n' '|' <"$D/out")" = "b-whole|a-left-a-right|" ] || fail "--each lines mixed: $(cat "$D/out")"

# ... with --tag, each line after its item
rm -f "$D"/*
printf 'a\nb\n' | "$CBX" exec -j2 --each -q --tag -- sh -c "$job" "$D" >"$D/out" 2>"$TMP/err"
[ "$(tr '\n\t' '|:' <"$D/out")" = "b:b-whole|a:a-left-a-right|" ] || fail "--tag: $(cat "$D/out")"

# --each streams: a job's first line shows while it runs
rm -f "$D"/*
printf 'x\n' | "$CBX" exec --each -q -- sh -c 'echo started; while [ ! -e "$0/go" ]; do sleep 0.02; done
    echo done' "$D" >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/out" $pid || fail "--each: cbx ended before the first line came: $(cat "$TMP/err")"
[ "$(cat "$TMP/out")" = started ] || fail "--each first line: $(cat "$TMP/out")"
touch "$D/go"
wait $pid
[ "$(tr '\n' '|' <"$TMP/out")" = "started|done|" ] || fail "--each all lines: $(cat "$TMP/out")"

# --group: a job's output whole when it ends (stdout, then stderr): b's line is out while a's
# first line, written before it, is still held
rm -f "$D"/*
grp='if [ "$1" = a ]; then echo a1; touch "$0/a1"
    while ! grep -q b1 "$0/out" 2>/dev/null; do sleep 0.02; done; echo a2
    else while [ ! -e "$0/a1" ]; do sleep 0.02; done; echo b1; fi'
printf 'a\nb\n' | "$CBX" exec -j2 --each -q --group -- sh -c "$grp" "$D" >"$D/out" 2>"$TMP/err"
[ "$(tr '\n' '|' <"$D/out")" = "b1|a1|a2|" ] || fail "--group: $(cat "$D/out")"

# a last line without a newline gets one, so the next job's line starts on a line of its own
printf 'p\nq\n' | "$CBX" exec -j1 --each -q -- printf '%s' >"$TMP/out"
[ "$(cat "$TMP/out")" = "$(printf 'p\nq')" ] || fail "unterminated lines: $(od -c "$TMP/out" | head -3)"

# a retried job: each attempt's lines, in order
printf 'r\n' | "$CBX" exec --each -q --retries 1 --retry-delay 1ms -- sh -c 'echo try; exit 3' \
    >"$TMP/out" 2>"$TMP/err"
[ "$(tr '\n' '|' <"$TMP/out")" = "try|try|" ] || fail "retried job: $(cat "$TMP/out")"

# usage: --tag and --group need several runs
run "$CBX" exec --tag -- true
expect_rc 2 "--tag alone"
grep -q -- '--tag goes with --each or --repeat' "$TMP/err" || fail "--tag alone: $(cat "$TMP/err")"
echo "ok [$TEST]"
