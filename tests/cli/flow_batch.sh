# cbx run --batch: one run per JSON line, N at once, results in input order with their outputs
# or errors, a summary; bad lines refused before anything runs; --json summary; runs journaled.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
F=tests/flows/cli

printf '{"n": 1}\n{"n": 2, "label": "two"}\n\n{"n": 3}\n{"n": 4}\n{"n": 5}\n' >"$TMP/data.jsonl"
run "$CBX" run $F/square.yaml --batch "$TMP/data.jsonl" --parallel 2 --output "$TMP/res.jsonl"
expect_rc 0 "a batch of 5"
[ ! -s "$TMP/out" ] || fail "stdout with --output: $(cat "$TMP/out")"
[ "$(wc -l <"$TMP/res.jsonl")" -eq 5 ] || fail "result lines: $(cat "$TMP/res.jsonl")"
# in input order, each with its line number, run id, status and outputs
got=$(jq -r '"\(.line) \(.status) \(.outputs.square) \(.outputs.label)"' "$TMP/res.jsonl" | tr '\n' ';')
[ "$got" = "1 success 1 n;2 success 4 two;4 success 9 n;5 success 16 n;6 success 25 n;" ] ||
    fail "results: $got"
[ "$(jq -r '.run_id | length' "$TMP/res.jsonl" | sort -u)" = "36" ] || fail "run ids"
[ "$(jq -r .run_id "$TMP/res.jsonl" | sort -u | wc -l)" -eq 5 ] || fail "run ids not distinct"
jq -e '.duration_ms >= 0' "$TMP/res.jsonl" >/dev/null || fail "durations"
# stderr: the batch's id with the command that resumes it, then the summary
[ "$(wc -l <"$TMP/err")" -eq 2 ] || fail "stderr: $(cat "$TMP/err")"
grep -q "^batch [0-9a-f-]* started; resume with: cbx run $F/square.yaml --batch $TMP/data.jsonl --output $TMP/res.jsonl --resume [0-9a-f-]*$" \
    "$TMP/err" || fail "batch id line: $(cat "$TMP/err")"
grep -q "^batch: 5 runs in " "$TMP/err" || fail "the summary: $(cat "$TMP/err")"
grep -q ": 5 succeeded, 0 failed; results in $TMP/res.jsonl$" "$TMP/err" || fail "summary: $(cat "$TMP/err")"
# each run is in the journal with its inputs
run "$CBX" runs --json
[ "$(jqv '[.[] | select(.flow == "square" and .status == "success")] | length')" = "5" ] ||
    fail "batch runs in the journal: $(cat "$TMP/out")"
id=$(jq -r 'select(.line == 2) | .run_id' "$TMP/res.jsonl")
run "$CBX" show "$id" --json
[ "$(jqv .inputs.label)" = "two" ] && [ "$(jqv .outputs.square)" = "4" ] ||
    fail "show a batch run: $(cat "$TMP/out")"

# a failing line: its error on its line, the others fine, exit 1; results on stdout; base inputs
printf '{"n": 12}\n{"n": 13}\n{"n": 14}\n' >"$TMP/13.jsonl"
run "$CBX" run $F/square.yaml --batch - -i label=L --parallel 3 <"$TMP/13.jsonl"
expect_rc 1 "a batch with a failing run"
got=$(jq -r '"\(.line) \(.status) \(.outputs.square // .error) \(.outputs.label)"' "$TMP/out" | tr '\n' ';')
[ "$got" = "1 success 144 L;2 failed step 'compute' failed: exit code 1: unlucky null;3 success 196 L;" ] ||
    fail "results with a failure: $got"
grep -q "^batch: 3 runs in .*: 2 succeeded, 1 failed$" "$TMP/err" || fail "summary: $(cat "$TMP/err")"

# bad lines: all reported with their line (and column), nothing runs
before=$("$CBX" runs --json --limit 1000 | jq length)
printf '{"n": 1}\n[1]\n{"n": "x"}\n{"n":\n{"m": 1}\n' >"$TMP/bad.jsonl"
run "$CBX" run $F/square.yaml --batch "$TMP/bad.jsonl"
expect_rc 2 "bad lines"
cat >"$TMP/want" <<WANT
$TMP/bad.jsonl:2:1: expected a JSON object of inputs, got array
$TMP/bad.jsonl:3: input 'n': expected integer, got string "x"
$TMP/bad.jsonl:4:5: not valid JSON: unexpected token near end of file
$TMP/bad.jsonl:5: unknown input 'm'
$TMP/bad.jsonl:5: input 'n': missing required input (integer)
cbx: run: --batch: 5 problems in $TMP/bad.jsonl; nothing ran
WANT
diff "$TMP/want" "$TMP/err" >"$TMP/diff" || fail "bad lines: $(cat "$TMP/diff")"
[ ! -s "$TMP/out" ] || fail "results for a refused batch: $(cat "$TMP/out")"
[ "$("$CBX" runs --json --limit 1000 | jq length)" = "$before" ] || fail "a refused batch ran"
run "$CBX" run $F/square.yaml --batch "$TMP/nothere.jsonl"
expect_rc 2 "a missing data file"
expect_err_line "--batch: cannot read '$TMP/nothere.jsonl'" "missing data file"

# --json: the summary as JSON (the results go to --output)
printf '{"n": 7}\n{"n": 8}\n' >"$TMP/two.jsonl"
run "$CBX" run $F/square.yaml --batch "$TMP/two.jsonl" --output "$TMP/two.out" --json
expect_rc 0 "--batch --json"
[ "$(jqv '"\(.total) \(.succeeded) \(.failed) \(.output)"')" = "2 2 0 $TMP/two.out" ] ||
    fail "--json summary: $(cat "$TMP/out")"
[ "$(jq -s 'map(.outputs.square) | add' "$TMP/two.out")" = "113" ] || fail "two.out: $(cat "$TMP/two.out")"
run "$CBX" run $F/square.yaml --batch "$TMP/two.jsonl" --json
expect_rc 2 "--batch --json without --output"

# many lines, many at once: every result, in order
seq 1 40 | sed 's/.*/{"n": &}/' | grep -v '"n": 13}' >"$TMP/many.jsonl"
run "$CBX" run $F/square.yaml --batch "$TMP/many.jsonl" --parallel 8 -q
expect_rc 0 "40 lines at 8 at once"
[ "$(jq -s 'map(.outputs.square) | add' "$TMP/out")" = "$(( 22140 - 169 ))" ] || fail "sum of squares"
[ "$(jq -r .line "$TMP/out" | tr '\n' ' ')" = "$(seq 1 39 | tr '\n' ' ')" ] || fail "order"
[ ! -s "$TMP/err" ] || fail "-q wrote to stderr: $(cat "$TMP/err")"
echo "ok [$TEST]"
