# cbx run --batch with more lines than its workers may run ahead of the writer (4,096): every
# result is written, once and in input order, when the output is read slowly (with a journal and
# without, where the workers write the lines), and when a resume
# takes them all from the journal (the workers then skip every line and must wake the writer
# rather than wait for a run to end: no run ends). Waits on the processes, never on time.
. "$(dirname "$0")/lib.bash"

N=6000
NOOP=$(cd "$(dirname "$0")/../flows/cli" && pwd)/noop.yaml
seq 1 $N | sed 's/.*/{"n": &}/' >"$TMP/data.jsonl"

# check_results FILE: N lines, line numbers 1..N in order, each a success
check_results() {
    [ "$(wc -l <"$1")" -eq "$N" ] || fail "$(wc -l <"$1") result lines in $1, expected $N"
    jq -r .line "$1" >"$TMP/lines"
    seq 1 $N | cmp -s - "$TMP/lines" || fail "result lines out of order or missing in $1"
    [ "$(jq -r .status "$1" | sort -u)" = "success" ] || fail "a line did not succeed in $1"
}

# the output read by a shell loop, a line at a time (slower than the batch writes it)
"$CBX" run "$NOOP" --batch "$TMP/data.jsonl" --parallel 4 -q 2>"$TMP/err" |
    { read -r first && echo "$first" && while IFS= read -r l; do echo "$l"; done; } >"$TMP/slow.jsonl"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the batch read slowly: $(cat "$TMP/err")"
check_results "$TMP/slow.jsonl"

# without a journal the worker that ends the next line writes it, and the lines ready after it:
# in order and whole with four workers and with one, read slowly
for p in 4 1; do
    "$CBX" run "$NOOP" --batch "$TMP/data.jsonl" --parallel $p --no-journal -q \
        --joblog "$TMP/joblog$p" 2>"$TMP/err" |
        while IFS= read -r l; do echo "$l"; done >"$TMP/slow$p.jsonl"
    [ "${PIPESTATUS[0]}" -eq 0 ] || fail "--no-journal --parallel $p read slowly: $(cat "$TMP/err")"
    check_results "$TMP/slow$p.jsonl"
    # a joblog row a line, written by the workers too, each with its line's command
    [ "$(tail -n +2 "$TMP/joblog$p" | cut -f1 | sort -n | uniq | wc -l)" -eq $N ] ||
        fail "joblog rows with --parallel $p: $(wc -l <"$TMP/joblog$p")"
    grep -q "	cbx run $NOOP --inputs-json '{\"n\":4321}'$" "$TMP/joblog$p" ||
        fail "joblog command with --parallel $p: $(grep '^4321	' "$TMP/joblog$p")"
done

# a batch run to its end, then resumed: every line's result from the journal, none run again
run "$CBX" run "$NOOP" --batch "$TMP/data.jsonl" --parallel 4 --output "$TMP/res.jsonl"
expect_rc 0 "the batch"
check_results "$TMP/res.jsonl"
id=$(sed -n 's/^batch \([0-9a-f-]*\) started;.*/\1/p' "$TMP/err")
[ -n "$id" ] || fail "no batch id: $(cat "$TMP/err")"
before=$("$CBX" runs --json --limit 100000 | jq length)
run "$CBX" run "$NOOP" --batch "$TMP/data.jsonl" --parallel 4 --output "$TMP/again.jsonl" \
    --resume "$id"
expect_rc 0 "--resume of a finished batch"
check_results "$TMP/again.jsonl"
[ "$("$CBX" runs --json --limit 100000 | jq length)" = "$before" ] || fail "lines were run again"
cmp -s <(jq -c 'del(.duration_ms)' "$TMP/res.jsonl") <(jq -c 'del(.duration_ms)' "$TMP/again.jsonl") ||
    fail "the resumed results differ from the batch's"
