# cbx run --batch shows a line (its result, its joblog row) only once its run's end has committed
# to the journal. Killed with SIGKILL while thousands of short runs flow (many share each commit of
# the journal, so lines have ended and wait for theirs when the kill lands), every line already in
# the output has its run recorded as succeeded in the journal, as another process reads it (only
# what committed); and --resume runs none of those lines again. Waits on files, never on time.
. "$(dirname "$0")/lib.bash"

N=20000
NOOP=$(cd "$(dirname "$0")/../flows/cli" && pwd)/noop.yaml
seq 1 $N | sed 's/.*/{"n": &}/' >"$TMP/data.jsonl"
"$CBX" run "$NOOP" --batch "$TMP/data.jsonl" --parallel 4 --output "$TMP/res.jsonl" \
    --joblog "$TMP/joblog" >"$TMP/out" 2>"$TMP/batch.err" &
pid=$!
deadline=$(($(date +%s) + 300))
while [ ! -f "$TMP/res.jsonl" ] || [ "$(wc -l <"$TMP/res.jsonl")" -lt 300 ]; do
    kill -0 "$pid" 2>/dev/null || fail "cbx ended before 300 lines showed: $(cat "$TMP/batch.err")"
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out waiting for 300 results"
    sleep 0.01
done
kill -9 "$pid" || fail "cbx had ended before the kill"
wait "$pid" 2>/dev/null
shown=$(jq -Rr 'fromjson? | .run_id' "$TMP/res.jsonl" | sort)
count=$(echo "$shown" | wc -l)
[ "$count" -ge 300 ] && [ "$count" -lt $N ] || fail "$count results at the kill (of $N)"
[ "$(jq -Rr 'fromjson? | .status' "$TMP/res.jsonl" | sort -u)" = success ] ||
    fail "statuses: $(jq -Rr 'fromjson? | .status' "$TMP/res.jsonl" | sort | uniq -c)"

# the journal, read by another process: every run shown is there, succeeded
run "$CBX" runs --status success --limit 1000000 --json
expect_rc 0 "cbx runs"
jq -r '.[].run_id' "$TMP/out" | sort >"$TMP/committed"
missing=$(echo "$shown" | comm -23 - "$TMP/committed" | head -5)
[ -z "$missing" ] || fail "results shown whose run the journal lacks: $missing"
# the joblog rows too (a row per line shown: its line number)
rows=$(tail -n +2 "$TMP/joblog" | cut -f1 | grep -c .)
[ "$rows" -ge 300 ] || fail "$rows joblog rows at the kill"

# the resume runs none of the lines shown again (their runs succeeded in the journal)
id=$(sed -n 's/^batch \([0-9a-f-]*\) started; .*$/\1/p' "$TMP/batch.err")
[ -n "$id" ] || fail "no batch id: $(cat "$TMP/batch.err")"
run "$CBX" run "$NOOP" --batch "$TMP/data.jsonl" --output "$TMP/res2.jsonl" --resume "$id"
expect_rc 0 "--resume of the killed batch"
reused=$(sed -n "s/^batch $id resumed: \([0-9]*\) of $N lines had succeeded.*/\1/p" "$TMP/err")
[ -n "$reused" ] && [ "$reused" -ge "$count" ] ||
    fail "resumed with ${reused:-?} lines reused, $count shown before the kill: $(cat "$TMP/err")"
[ "$(jq -r .status "$TMP/res2.jsonl" | sort | uniq -c | tr -s ' ')" = " $N success" ] ||
    fail "after the resume: $(jq -r .status "$TMP/res2.jsonl" | sort | uniq -c)"
exit 0
