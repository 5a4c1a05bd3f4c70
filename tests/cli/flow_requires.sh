# A flow file's requires: {lua, plugins}: validate, run and graph load the Lua types it names
# (paths relative to the file, from any directory) with no --lua; the same file given with --lua
# too is loaded once; a bad requires: block is refused at its line and column.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"

D=$TMP/proj
mkdir -p "$D/types"
cp examples/lua/my_custom_executor.lua "$D/types/"
sed 's/^config:/requires: {lua: [types\/my_custom_executor.lua]}\nconfig:/' \
    examples/flows/seed_flow.yaml >"$D/flow.yaml"
grep -q '^requires:' "$D/flow.yaml" || fail "no requires: in $(cat "$D/flow.yaml")"

cd "$TMP" || fail "no $TMP"
run "$CBX" validate proj/flow.yaml
expect_rc 0 "validate with requires:"
run "$CBX" run proj/flow.yaml -i input_data='a b c' -q
expect_rc 0 "run with requires:"
[ "$(jqv .custom_processing.words)" = "3" ] || fail "outputs: $(cat "$TMP/out")"
run "$CBX" graph proj/flow.yaml
expect_rc 0 "graph with requires:"
grep -q 'custom_processing<br/>my_custom_executor' "$TMP/out" || fail "graph: $(cat "$TMP/out")"
run "$CBX" validate proj/flow.yaml --lua proj/types/my_custom_executor.lua
expect_rc 0 "requires: and --lua of the same file"

# without requires: the type is unknown (what requires: saves)
grep -v '^requires:' "$D/flow.yaml" >"$D/plain.yaml"
run "$CBX" validate proj/plain.yaml
expect_rc 2 "the type without requires:"

printf 'name: x\nrequires: {lua: [a.lua], perl: [b]}\nsteps: []\n' >"$D/bad.yaml"
run "$CBX" validate proj/bad.yaml
expect_rc 2 "an unknown key in requires:"
grep -q "^proj/bad.yaml:2:26: requires: unknown key 'perl' (lua, plugins)$" "$TMP/err" ||
    fail "bad requires: $(cat "$TMP/err")"
printf 'name: x\nrequires: {lua: [missing.lua]}\nsteps: []\n' >"$D/missing.yaml"
run "$CBX" validate proj/missing.yaml
expect_rc 2 "a missing Lua file"
grep -q "proj/missing.lua" "$TMP/err" || fail "missing file: $(cat "$TMP/err")"
exit 0
