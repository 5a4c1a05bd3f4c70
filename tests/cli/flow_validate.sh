# cbx validate: a good file (exit 0, "ok"), a bad one (every problem with its file:line:col,
# exit 2), the same as JSON, a missing file, and a Lua executor type loaded with --lua.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
F=tests/flows/cli

run "$CBX" validate $F/good.yaml
expect_rc 0 "validate a good file"
[ "$(cat "$TMP/out")" = "$F/good.yaml: ok (2 steps)" ] || fail "good file: $(cat "$TMP/out")"
[ ! -s "$TMP/err" ] || fail "good file wrote to stderr: $(cat "$TMP/err")"

run "$CBX" validate $F/bad.yaml
expect_rc 2 "validate a bad file"
[ ! -s "$TMP/out" ] || fail "bad file wrote to stdout: $(cat "$TMP/out")"
cat >"$TMP/want" <<WANT
$F/bad.yaml:4:17: input 'url': unknown type 'strng'; did you mean 'string'?
$F/bad.yaml:7:5: step 'fetch': unknown executor 'htp'; did you mean 'http'?
$F/bad.yaml:8:14: step 'fetch': config.url: unknown input 'ur'; did you mean 'url'?
$F/bad.yaml:12:13: step 'count': needs: unknown step 'nothere'
$F/bad.yaml:13:5: step 'count': unknown key 'polcy'; did you mean 'policy'?
$F/bad.yaml:15:3: outputs: n: unknown step 'cnt'
WANT
diff "$TMP/want" "$TMP/err" >"$TMP/diff" || fail "problems differ: $(cat "$TMP/diff")"

# the same problems as JSON on stdout
run "$CBX" validate $F/bad.yaml --json
expect_rc 2 "validate --json a bad file"
[ "$(jqv length)" = "6" ] || fail "--json problems: $(cat "$TMP/out")"
[ "$(jqv '.[1] | "\(.file):\(.line):\(.col) \(.code)"')" = "$F/bad.yaml:7:5 CBX_EUNKNOWN_TYPE" ] ||
    fail "--json second problem: $(jqv '.[1]')"
[ "$(jqv '.[5].message')" = "outputs: n: unknown step 'cnt'" ] || fail "--json last: $(jqv '.[5]')"
run "$CBX" validate $F/good.yaml --json
expect_rc 0 "validate --json a good file"
[ "$(jqv length)" = "0" ] || fail "--json for a good file: $(cat "$TMP/out")"

# the checker's own sixteen-problem file: all of them, in file order
run "$CBX" validate tests/flows/many_errors.yaml
expect_rc 2 "validate many_errors.yaml"
[ "$(wc -l <"$TMP/err")" -eq 16 ] || fail "many_errors: $(wc -l <"$TMP/err") lines: $(cat "$TMP/err")"
sort -t: -k2,2n -k3,3n -s "$TMP/err" | diff - "$TMP/err" >/dev/null || fail "not in file order"
grep -q "^tests/flows/many_errors.yaml:14:5: step 'count': dependency cycle: count -> report -> count$" \
    "$TMP/err" || fail "no cycle line: $(cat "$TMP/err")"

# a YAML syntax error
printf 'name: x\nsteps:\n  - name: a\n    executor: [command\n' >"$TMP/syntax.yaml"
run "$CBX" validate "$TMP/syntax.yaml"
expect_rc 2 "a YAML syntax error"
grep -q "^$TMP/syntax.yaml:[0-9]*:[0-9]*: " "$TMP/err" || fail "syntax error line: $(cat "$TMP/err")"

# no such file; no file at all
run "$CBX" validate "$TMP/nothere.yaml"
expect_rc 2 "a missing file"
grep -q "nothere.yaml" "$TMP/err" || fail "missing file: $(cat "$TMP/err")"
run "$CBX" validate
expect_rc 2 "no FILE"
expect_err_line "validate: expected a flow FILE" "no FILE"

# a type written in Lua: unknown without --lua (with a hint), fine with it
run "$CBX" validate examples/flows/seed_flow.yaml
expect_rc 2 "the seed flow without its executor"
grep -q "^examples/flows/seed_flow.yaml:14:5: step 'custom_processing': unknown executor 'my_custom_executor'$" \
    "$TMP/err" || fail "seed flow without --lua: $(cat "$TMP/err")"
grep -q -- "--lua FILE" "$TMP/err" || fail "no --lua hint: $(cat "$TMP/err")"
run "$CBX" validate --lua examples/lua/my_custom_executor.lua examples/flows/seed_flow.yaml
expect_rc 0 "the seed flow with --lua"
[ "$(cat "$TMP/out")" = "examples/flows/seed_flow.yaml: ok (1 step)" ] || fail "seed: $(cat "$TMP/out")"

# every example validates
for f in examples/flows/fetch_and_process.yaml examples/flows/fan_out_fan_in.yaml; do
    run "$CBX" validate "$f"
    expect_rc 0 "validate $f"
done
echo "ok [$TEST]"
