# cbx runs lists flow runs (newest first), cbx show shows one with its steps (by id, prefix or
# suffix), cbx graph prints the DAG as Mermaid and DOT.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
F=tests/flows/cli

run "$CBX" runs
expect_rc 0 "runs on an empty journal"
[ "$(cat "$TMP/out")" = "no flow runs in the journal" ] || fail "empty: $(cat "$TMP/out")"

"$CBX" run $F/good.yaml -i who=first --json >"$TMP/first.json" 2>/dev/null || fail "first run"
"$CBX" run $F/fail.yaml --json >"$TMP/second.json" 2>/dev/null
first=$(jq -r .run_id "$TMP/first.json")
second=$(jq -r .run_id "$TMP/second.json")

run "$CBX" runs --json
expect_rc 0 "runs --json"
[ "$(jqv length)" = "2" ] || fail "two runs: $(cat "$TMP/out")"
[ "$(jqv '.[0].run_id')" = "$second" ] && [ "$(jqv '.[1].run_id')" = "$first" ] ||
    fail "newest first: $(cat "$TMP/out")"
[ "$(jqv '.[0] | "\(.flow) \(.status)"')" = "failing failed" ] || fail "second: $(jqv '.[0]')"
[ "$(jqv '.[0].error')" = "step 'broken' failed: exit code 3" ] || fail "error: $(jqv '.[0].error')"
[ "$(jqv '.[1] | "\(.flow) \(.status) \(.ended_ms >= .started_ms)"')" = "greet success true" ] ||
    fail "first: $(jqv '.[1]')"
run "$CBX" runs --limit 1 --json
[ "$(jqv length)" = "1" ] || fail "--limit 1: $(cat "$TMP/out")"

run "$CBX" runs
expect_rc 0 "runs as a table"
head -1 "$TMP/out" | grep -q "^STARTED  *RUN  *FLOW  *STATUS  *DURATION  *ERROR$" || fail "heading: $(cat "$TMP/out")"
# the RUN column shows each id's distinguishing tail (what show and --resume accept)
grep -q "  ${second: -6}  failing  failed  .*step 'broken' failed: exit code 3$" "$TMP/out" ||
    fail "failed row: $(cat "$TMP/out")"
grep -q "  ${first: -6}  greet  *success " "$TMP/out" || fail "success row: $(cat "$TMP/out")"

# show: the whole id, a prefix, a suffix
for id in "$second" "${second:0:13}" "${second: -8}"; do
    run "$CBX" show "$id" --json
    expect_rc 0 "show $id"
    [ "$(jqv .run_id)" = "$second" ] || fail "show $id: $(jqv .run_id)"
done
[ "$(jqv .flow)" = "failing" ] && [ "$(jqv .file)" = "$F/fail.yaml" ] || fail "flow, file: $(cat "$TMP/out")"
[ "$(jqv .inputs.code)" = "3" ] || fail "inputs (defaults applied): $(jqv .inputs)"
[ "$(jqv '.steps.broken | "\(.status) \(.attempts) \(.error)"')" = "failed 1 exit code 3" ] ||
    fail "broken: $(jqv .steps.broken)"
[ "$(jqv '.steps.prepare.outputs.stdout')" = "ready" ] || fail "prepare: $(jqv .steps.prepare)"

run "$CBX" show "${first: -8}"
expect_rc 0 "show as text"
grep -q "^run       $first$" "$TMP/out" || fail "run line: $(cat "$TMP/out")"
grep -q "^flow      greet ($F/good.yaml)$" "$TMP/out" || fail "flow line: $(cat "$TMP/out")"
grep -q "^status    success$" "$TMP/out" || fail "status line: $(cat "$TMP/out")"
grep -q '^inputs    {"who":"first",' "$TMP/out" || fail "inputs line: $(cat "$TMP/out")"
grep -q '"greeting": "hello first"' "$TMP/out" || fail "outputs: $(cat "$TMP/out")"
grep -q "^STEP  *STATUS  *ATTEMPTS  *DURATION  *ERROR$" "$TMP/out" || fail "steps heading: $(cat "$TMP/out")"
[ "$(grep -A2 '^STEP' "$TMP/out" | tail -2 | awk '{print $1 "=" $2 "=" $3}' | tr '\n' ' ')" = \
    "hello=success=1 again=success=1 " ] || fail "steps in start order: $(cat "$TMP/out")"

run "$CBX" show 00000000-0000-0000-0000-000000000000
expect_rc 1 "show an unknown run"
expect_err_line "show: no flow run '00000000-0000-0000-0000-000000000000' in the journal" "unknown"
run "$CBX" show
expect_rc 2 "show without an id"
# the runs of this journal started within seconds: their ids share a prefix
run "$CBX" show "${first:0:4}"
expect_rc 2 "show an ambiguous prefix"
expect_err_line "show: '${first:0:4}' matches more than one run; give more of the id" "ambiguous"

# graph: Mermaid by default, DOT on request
run "$CBX" graph $F/fail.yaml
expect_rc 0 "graph"
cat >"$TMP/want" <<'WANT'
flowchart TD
    n_0["prepare<br/>command"]
    n_1["optional<br/>command"]
    n_2["never<br/>command, when"]
    n_3["broken<br/>command"]
    n_4["after<br/>command"]
    n_0 --> n_3
    n_1 --> n_3
    n_3 --> n_4
WANT
diff "$TMP/want" "$TMP/out" >"$TMP/diff" || fail "mermaid: $(cat "$TMP/diff")"
run "$CBX" graph $F/fail.yaml --format dot
expect_rc 0 "graph --format dot"
head -1 "$TMP/out" | grep -q '^digraph "failing" {$' || fail "dot: $(cat "$TMP/out")"
grep -q '^    n_2 \[label="never\\ncommand, when"\];$' "$TMP/out" || fail "dot node: $(cat "$TMP/out")"
grep -q '^    n_3 -> n_4;$' "$TMP/out" || fail "dot edge: $(cat "$TMP/out")"
[ "$(tail -1 "$TMP/out")" = "}" ] || fail "dot end: $(tail -1 "$TMP/out")"
if command -v dot >/dev/null; then
    dot -Tsvg "$TMP/out" >/dev/null || fail "dot does not read it"
fi
# a Lua type need not be loaded to draw it; a bad file is refused as by validate
run "$CBX" graph examples/flows/seed_flow.yaml
expect_rc 0 "graph of the seed flow without --lua"
grep -q 'custom_processing<br/>my_custom_executor' "$TMP/out" || fail "seed graph: $(cat "$TMP/out")"
run "$CBX" graph $F/bad.yaml
expect_rc 2 "graph of a bad file"
run "$CBX" graph $F/good.yaml --format svg
expect_rc 2 "an unknown format"
expect_err_line "--format: expected one of mermaid, dot, got 'svg'" "unknown format"
echo "ok [$TEST]"
