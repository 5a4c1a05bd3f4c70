# cbx run --batch --resume BATCH_ID finishes a batch killed with SIGKILL: the lines whose run
# succeeded are not run again (their results come from the journal), the line whose run was cut
# resumes it, and the output file is completed in input order. --joblog writes a row per line in
# GNU parallel's columns, appended to by the resume. Waits on files, never on time.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
F=tests/flows/cli

# wait_rows FILE N PID: until FILE has N lines, while PID lives (five minutes at most)
wait_rows() {
    local deadline=$(($(date +%s) + 300))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
        kill -0 "$3" 2>/dev/null || fail "cbx ended before $1 had $2 lines: $(cat "$TMP/err")"
        sleep 0.05
    done
    fail "timed out waiting for $2 lines in $1"
}

D=$TMP/d
mkdir -p "$D"
for n in 1 2 3 4 5; do echo "{\"n\": $n}"; done >"$TMP/data.jsonl"
"$CBX" run $F/batch_hang.yaml --batch "$TMP/data.jsonl" -i dir="$D" --parallel 2 \
    --output "$TMP/res.jsonl" --joblog "$TMP/joblog" >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$D/hang.pid" "$pid" || fail "line 3 never started: $(cat "$TMP/err")"
wait_rows "$TMP/joblog" 5 "$pid" # the header and lines 1, 2, 4 and 5
kill -9 "$pid"
wait "$pid" 2>/dev/null
kill "$(cat "$D/hang.pid")" 2>/dev/null
id=$(sed -n 's/^batch \([0-9a-f-]*\) started; resume with: .* --resume \([0-9a-f-]*\)$/\2/p' "$TMP/err")
[ -n "$id" ] || fail "no batch id: $(cat "$TMP/err")"
grep -q "^batch $id started; resume with: cbx run $F/batch_hang.yaml --batch $TMP/data.jsonl -i 'dir=$D' --output $TMP/res.jsonl --resume $id$" "$TMP/err" ||
    fail "resume hint: $(cat "$TMP/err")"
# joblog columns: Seq Host Starttime JobRuntime Send Receive Exitval Signal Command
[ "$(head -1 "$TMP/joblog")" = "$(printf 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand')" ] ||
    fail "joblog header: $(head -1 "$TMP/joblog")"
[ "$(tail -n +2 "$TMP/joblog" | cut -f1 | sort | tr '\n' ' ')" = "1 2 4 5 " ] ||
    fail "joblog rows: $(cat "$TMP/joblog")"
[ "$(tail -n +2 "$TMP/joblog" | cut -f7 | sort -u)" = "0" ] || fail "exit values: $(cat "$TMP/joblog")"
grep -q "	cbx run $F/batch_hang.yaml --inputs-json '{\"dir\":\"$D\",\"n\":4}'$" "$TMP/joblog" ||
    fail "joblog command: $(cat "$TMP/joblog")"

touch "$D/ok"
: >"$D/ran"
run "$CBX" run $F/batch_hang.yaml --batch "$TMP/data.jsonl" -i dir="$D" \
    --output "$TMP/res.jsonl" --joblog "$TMP/joblog" --resume "$id"
expect_rc 0 "--resume of the killed batch"
[ "$(cat "$D/ran")" = "3" ] || fail "lines run again: $(tr '\n' ' ' <"$D/ran")"
grep -q "^batch $id resumed: 4 of 5 lines had succeeded and are not run again$" "$TMP/err" ||
    fail "resume line: $(cat "$TMP/err")"
got=$(jq -r '"\(.line) \(.status) \(.outputs.out | rtrimstr("\n"))"' "$TMP/res.jsonl" | tr '\n' ';')
[ "$got" = "1 success n1;2 success n2;3 success n3;4 success n4;5 success n5;" ] ||
    fail "results: $got"
[ "$(jq -r .run_id "$TMP/res.jsonl" | sort -u | wc -l)" -eq 5 ] || fail "run ids: $(cat "$TMP/res.jsonl")"
[ "$(tail -n +2 "$TMP/joblog" | cut -f1 | tr '\n' ' ')" = "2 1 4 5 3 " ] ||
    [ "$(tail -n +2 "$TMP/joblog" | cut -f1 | sort | tr '\n' ' ')" = "1 2 3 4 5 " ] ||
    fail "joblog after the resume: $(cat "$TMP/joblog")"
[ "$(grep -c "^3	" "$TMP/joblog")" = 1 ] || fail "line 3 in the joblog: $(cat "$TMP/joblog")"

# a resume of a finished batch runs nothing; an unknown batch id is refused
: >"$D/ran"
run "$CBX" run $F/batch_hang.yaml --batch "$TMP/data.jsonl" -i dir="$D" --resume "$id" -q
expect_rc 0 "--resume of a finished batch"
[ ! -s "$D/ran" ] || fail "ran again: $(cat "$D/ran")"
run "$CBX" run $F/batch_hang.yaml --batch "$TMP/data.jsonl" -i dir="$D" --resume 0123-abc
expect_rc 2 "an unknown batch"
expect_err_line "cbx: run: --resume: no batch '0123-abc'" "unknown batch"
exit 0
