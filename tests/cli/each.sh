# cbx exec --each: one execution per input line (stdin, --arg-file, -0), GNU parallel's
# placeholders, exit codes, the joblog's columns, and --resume after a kill.
. "$(dirname "$0")/lib.bash"

# every placeholder, one line at a time so that {%} is 1
printf '/a/b/c.tar.gz\nplain\n' >"$TMP/items"
run "$CBX" exec -j1 --each -q -a "$TMP/items" -- echo {} {.} {/} {//} {/.} {#} {%}
expect_rc 0 "placeholders"
printf '/a/b/c.tar.gz /a/b/c.tar c.tar.gz /a/b c.tar 1 1\nplain plain plain . plain 2 1\n' \
    >"$TMP/want"
cmp -s "$TMP/out" "$TMP/want" || fail "placeholders: $(cat "$TMP/out")"
[ -s "$TMP/err" ] && fail "-q: stderr: $(cat "$TMP/err")"

# without a placeholder the line is the last argument; from stdin; one word per line, kept whole
printf 'x y\nz\n' | "$CBX" exec -j1 --each -q -- echo arg >"$TMP/out" 2>"$TMP/err"
[ "$(cat "$TMP/out")" = "$(printf 'arg x y\narg z')" ] || fail "appended: $(cat "$TMP/out")"

# NUL-separated items (-0), a placeholder inside a word, four at a time
printf 'a\0b c\0d\0e\0f\0' | "$CBX" exec -0 -j4 --each -q -- echo "<{}>" >"$TMP/out"
[ "$(sort "$TMP/out" | tr '\n' ' ')" = "<a> <b c> <d> <e> <f> " ] || fail "-0: $(cat "$TMP/out")"

# a TYPE: placeholders in its string parameters, outputs one JSON line per job
printf 'p\nq\n' | "$CBX" exec -j1 --each -q command -p argv='["echo","{#}:{}"]' >"$TMP/out"
[ "$(jq -j .stdout "$TMP/out" | tr '\n' ' ')" = "1:p 2:q " ] || fail "TYPE: $(cat "$TMP/out")"
run "$CBX" exec --each command -p argv='["true"]'
expect_rc 2 "a TYPE without a placeholder"
expect_err_line "no placeholder" "no placeholder line"

# a line that makes the parameters invalid is refused (exit 2), and the next lines still run
printf 'notaurl\nhttp://127.0.0.1:1/\n' | "$CBX" exec -j1 --each http -p url={} >"$TMP/out" 2>"$TMP/err"
rc=$?
expect_rc 2 "an invalid line"
grep -q "job 1: rejected: .*not a valid URL" "$TMP/err" || fail "invalid line: $(cat "$TMP/err")"
grep -q "job 2: failed" "$TMP/err" || fail "the line after an invalid one: $(cat "$TMP/err")"

# exit codes: all succeed 0; a failing job 1 (the others still run); a timeout 124
printf '0\n0\n' | "$CBX" exec --each -q -- sh -c 'exit $0'
[ $? -eq 0 ] || fail "all succeeded: not 0"
printf '0\n3\n0\n' | "$CBX" exec -j1 --each -q --joblog "$TMP/log" -- sh -c 'echo ran $0; exit $0' \
    >"$TMP/out"
rc=$?
expect_rc 1 "a job exits 3"
[ "$(grep -c ran "$TMP/out")" -eq 3 ] || fail "not every job ran: $(cat "$TMP/out")"
printf '5\n' | "$CBX" exec --each -q --timeout 100ms -- sleep
[ $? -eq 124 ] || fail "a timed-out job: not 124"
printf 'x\n' | "$CBX" exec --each -q -- /nonexistent/cmd
[ $? -eq 1 ] || fail "a command that cannot start: not 1"

# the joblog: GNU parallel's header and columns, Exitval and Command as run
head -1 "$TMP/log" | grep -qx "$(printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand')" ||
    fail "joblog header: $(head -1 "$TMP/log")"
[ "$(wc -l <"$TMP/log")" -eq 4 ] || fail "joblog rows: $(cat "$TMP/log")"
awk -F'\t' 'NR > 1 && (NF != 9 || $2 != ":" || $3 !~ /^[0-9]+\.[0-9][0-9][0-9]$/ ||
    $4 !~ /^ *[0-9]+\.[0-9][0-9][0-9]$/ || $5 != 0 || $6 != 6 || $8 != 0) { exit 1 }' "$TMP/log" ||
    fail "joblog columns: $(cat "$TMP/log")"
[ "$(awk -F'\t' '$1 == 2 { print $7 "|" $9 }' "$TMP/log")" = "3|sh -c 'echo ran \$0; exit \$0' 3" ] ||
    fail "joblog row 2: $(cat "$TMP/log")"
printf 'x\n' | "$CBX" exec --each -q --joblog "$TMP/sig" -- sh -c 'kill -9 $$'
[ "$(awk -F'\t' 'NR == 2 { print $7 "|" $8 }' "$TMP/sig")" = "0|9" ] ||
    fail "a job killed by SIGKILL: $(cat "$TMP/sig")"

# --resume-failed runs again only the job that failed; --resume runs nothing done
printf '0\n3\n0\n' | "$CBX" exec -j1 --each -q --joblog "$TMP/log" --resume-failed -- \
    sh -c 'echo again $0' >"$TMP/out"
[ "$(cat "$TMP/out")" = "again 3" ] || fail "--resume-failed ran: $(cat "$TMP/out")"
printf '0\n3\n0\n' | "$CBX" exec -j1 --each -q --joblog "$TMP/log" --resume -- echo >"$TMP/out"
[ -s "$TMP/out" ] && fail "--resume ran jobs already done: $(cat "$TMP/out")"
run "$CBX" exec --each --resume -- echo
expect_rc 2 "--resume without --joblog"

# a run killed halfway, resumed with the same joblog: only the lines not done run, and in the
# end every line has exactly one row
seq 1 40 >"$TMP/many"
"$CBX" exec -j2 --each -q -a "$TMP/many" --joblog "$TMP/kill" -- sh -c 'sleep 0.05; echo $0' \
    >"$TMP/out1" &
pid=$!
for _ in $(seq 1200); do
    [ "$(wc -l <"$TMP/kill" 2>/dev/null || echo 0)" -ge 6 ] && break
    sleep 0.05
done
kill -9 $pid
wait $pid 2>/dev/null
first=$(($(wc -l <"$TMP/kill") - 1))
[ "$first" -ge 5 ] && [ "$first" -lt 40 ] || fail "killed run recorded $first jobs"
"$CBX" exec -j2 --each -q -a "$TMP/many" --joblog "$TMP/kill" --resume -- sh -c 'echo $0' \
    >"$TMP/out2"
[ "$(wc -l <"$TMP/out2")" -eq $((40 - first)) ] ||
    fail "resume ran $(wc -l <"$TMP/out2") jobs, expected $((40 - first))"
[ "$(awk -F'\t' 'NR > 1 { print $1 }' "$TMP/kill" | sort -n | uniq | wc -l)" -eq 40 ] ||
    fail "not every line has a row after the resume"
[ "$(awk -F'\t' 'NR > 1 { print $1 }' "$TMP/kill" | sort -n | uniq -d | wc -l)" -eq 0 ] ||
    fail "a line ran twice: $(awk -F'\t' 'NR > 1 { print $1 }' "$TMP/kill" | sort -n | uniq -d)"

# a producer that has more to say later: the first job's output is written meanwhile, and ^C
# ends the run at once (the input is read on the event loop, not with a blocking read)
mkfifo "$TMP/fifo"
(echo first; exec sleep 600) >"$TMP/fifo" &
producer=$!
"$CBX" exec -j2 --each -q -- echo <"$TMP/fifo" >"$TMP/slow" 2>&1 &
pid=$!
for _ in $(seq 1200); do
    grep -q first "$TMP/slow" && break
    sleep 0.05
done
grep -q first "$TMP/slow" || { kill $producer $pid; fail "the first job's output waits for the next line"; }
kill -INT $pid
for _ in $(seq 1200); do
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
done
kill -0 $pid 2>/dev/null && { kill -9 $pid $producer; fail "^C does not end a run waiting for input"; }
wait $pid
rc=$?
kill $producer
[ "$rc" -eq 130 ] || fail "^C while waiting for input: exit code $rc, expected 130: $(cat "$TMP/slow")"

# journaled like any cbx exec
[ "$("$CBX" history --json | jq 'length')" -gt 40 ] || fail "the jobs are not in the journal"

# usage
run "$CBX" exec --each --repeat 3 -- echo
expect_rc 2 "--each with --repeat"
run "$CBX" exec --joblog "$TMP/x" -- echo
expect_rc 2 "--joblog without --each"
run "$CBX" exec -a /nonexistent/items -- echo
expect_rc 2 "an unreadable --arg-file"
exit 0
