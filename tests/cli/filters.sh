# The filters people expect: cbx runs --status --flow --since; cbx history --run --step --tag;
# cbx stats --by step|flow|tag (and the same filters).
. "$(dirname "$0")/lib.bash"

cat >"$TMP/a.yaml" <<'YAML'
name: alpha
inputs:
  - {name: code, type: integer, default: 0}
steps:
  - name: one
    executor: command
    config: {argv: [sh, -c, 'echo one']}
  - name: two
    executor: command
    needs: [one]
    config: {argv: [sh, -c, 'exit {{ inputs.code }}']}
YAML
cat >"$TMP/b.yaml" <<'YAML'
name: beta
steps:
  - name: one
    executor: command
    config: {argv: [sh, -c, 'echo b']}
YAML
rid_of() { sed -n 's/^run \([0-9a-f-]*\) started.*/\1/p' "$TMP/err"; }
run "$CBX" run "$TMP/a.yaml"
expect_rc 0 "alpha ok"
ra=$(rid_of)
run "$CBX" run "$TMP/a.yaml" -i code=3
expect_rc 1 "alpha failing"
rf=$(rid_of)
run "$CBX" run "$TMP/b.yaml"
expect_rc 0 "beta"
rb=$(rid_of)
"$CBX" exec -- true || fail "a plain exec"
[ -n "$ra" ] && [ -n "$rf" ] && [ -n "$rb" ] || fail "run ids: '$ra' '$rf' '$rb'"

# cbx runs
run "$CBX" runs --json
[ "$(jqv length)" = "3" ] || fail "runs: $(cat "$TMP/out")"
run "$CBX" runs --status failed --json
[ "$(jqv '[.[].run_id] | join(",")')" = "$rf" ] || fail "runs --status failed: $(cat "$TMP/out")"
run "$CBX" runs --flow beta --json
[ "$(jqv '[.[].run_id] | join(",")')" = "$rb" ] || fail "runs --flow beta: $(cat "$TMP/out")"
run "$CBX" runs --flow alpha --status success --since 1h --json
[ "$(jqv '[.[].run_id] | join(",")')" = "$ra" ] || fail "runs combined: $(cat "$TMP/out")"
run "$CBX" runs --flow nothing
expect_rc 0 "runs that match nothing"
grep -q "no flow runs match" "$TMP/out" || fail "runs with no match: $(cat "$TMP/out")"
run "$CBX" runs --status bogus
expect_rc 2 "a bad --status"

# cbx history
run "$CBX" history --run "$rf" --json
[ "$(jqv length)" = "2" ] || fail "history --run: $(cat "$TMP/out")"
[ "$(jqv '[.[].status] | sort | join(",")')" = "failed,success" ] || fail "statuses: $(cat "$TMP/out")"
# the tail `cbx runs` shows names the run as well as the whole id (it once matched nothing)
run "$CBX" history --run "${rf: -6}" --json
expect_rc 0 "history --run TAIL"
[ "$(jqv length)" = "2" ] || fail "history --run with the id's tail: $(cat "$TMP/out")"
run "$CBX" stats --run "${rf: -6}" --json
[ "$(jqv .executions)" = "2" ] || fail "stats --run with the id's tail: $(cat "$TMP/out")"
run "$CBX" history --run no-such-run
expect_rc 1 "history --run of no run"
grep -q "no flow run matches 'no-such-run'" "$TMP/err" || fail "unknown run: $(cat "$TMP/err")"
run "$CBX" history --step one --json
[ "$(jqv length)" = "3" ] || fail "history --step one: $(cat "$TMP/out")"
run "$CBX" history --step two --status failed --json
[ "$(jqv length)" = "1" ] || fail "history --step two --status failed: $(cat "$TMP/out")"
run "$CBX" history --tag "flow:$rb/one" --json
[ "$(jqv length)" = "1" ] || fail "history --tag: $(cat "$TMP/out")"
run "$CBX" history --json
[ "$(jqv length)" = "6" ] || fail "history: $(cat "$TMP/out")"

# cbx stats
run "$CBX" stats --by step --json
[ "$(jqv '.one.executions')" = "3" ] || fail "stats --by step: $(cat "$TMP/out")"
[ "$(jqv '.two.failures')" = "1" ] || fail "stats --by step: $(cat "$TMP/out")"
run "$CBX" stats --by flow --json
[ "$(jqv '.alpha.executions')" = "4" ] || fail "stats --by flow: $(cat "$TMP/out")"
[ "$(jqv '.beta.executions')" = "1" ] || fail "stats --by flow: $(cat "$TMP/out")"
run "$CBX" stats --by tag --json
[ "$(jqv 'keys | length')" = "5" ] || fail "stats --by tag: $(cat "$TMP/out")"
run "$CBX" stats --run "$ra" --json
[ "$(jqv .executions)" = "2" ] || fail "stats --run: $(cat "$TMP/out")"
run "$CBX" stats --by step
expect_rc 0 "the stats table"
grep -q "^two " "$TMP/out" || fail "the stats table: $(cat "$TMP/out")"
exit 0
