# cbx workflow validate: every problem of a broken workflow at once, each at its file:line:col -
# unknown places, rules, helpers and executors, Lua syntax errors in rules and helpers, unknown
# action parameters and keys, and the structure: an unreachable place, a dead transition, a
# place with no way out and a reachable stuck marking with its firing sequence.
. "$(dirname "$0")/lib.bash" "$@"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
F=$SRC/tests/workflows/broken.yaml

run "$CBX" workflow validate "$F"
expect_rc 2 "broken workflow"
expect() { # LINE:COL TEXT
    grep -qF -- "$F:$1: $2" "$TMP/err" || fail "missing '$F:$1: $2' in: $(cat "$TMP/err")"
}
expect 9:12 "rule 'syntax': Lua syntax error: unexpected symbol near '>'"
expect 10:16 "rule 'unknown_fn': unknown name 'missing_helper'"
expect 11:25 "place 'island' is unreachable from the start places (guards ignored)"
expect 11:33 "place 'sink' is not final and no transition leaves it"
expect 11:33 "reachable stuck marking {sink: 1} (guards ignored): no transition is enabled and place 'sink' is not final; firing sequence: go, sideways"
expect 13:1 "workflow: unknown key 'colour'"
expect 18:34 "transition 'go': unknown rule 'nosuch'"
expect 19:14 "transition 'go': unknown executor 'comand'; did you mean 'command'?"
expect 22:16 "transition 'finish': to: unknown place 'nowhere'"
expect 23:56 "transition 'finish': config.colour: unknown parameter 'colour'"
expect 24:5 "transition 'dead' can never be enabled: no token can reach 'island' (guards ignored)"
grep -qF "11 problems" "$TMP/err" || fail "count: $(tail -1 "$TMP/err")"

# the same as JSON, sorted by position
run "$CBX" workflow validate "$F" --json
expect_rc 2 "--json"
[ "$(jqv 'length')" = 11 ] || fail "--json: $(cat "$TMP/out")"
[ "$(jqv '[.[].line] == ([.[].line] | sort)')" = true ] || fail "--json: not sorted"

# a syntax error inside the helpers, at its line in the file
run "$CBX" workflow validate "$SRC/tests/workflows/broken_helpers.yaml"
expect_rc 2 "broken helpers"
grep -qF "broken_helpers.yaml:5:3: helpers: Lua syntax error: unexpected symbol near '*'" "$TMP/err" ||
    fail "helpers: $(cat "$TMP/err")"

# the examples are clean
for f in data_review order_fulfilment approval; do
    run "$CBX" workflow validate "$SRC/examples/workflows/$f.yaml" --lua "$SRC/examples/workflows/analyze.lua"
    expect_rc 0 "example $f"
done

# the seed's own example, once its container, llm and agent executors are registered
if "$CBX" types container >/dev/null 2>&1 && "$CBX" types llm >/dev/null 2>&1 &&
    "$CBX" types agent >/dev/null 2>&1; then
    # the executors are built apart: their parameter names may not match the file's yet, which is
    # reported here for whoever merges them; everything else about the file must hold
    run "$CBX" workflow validate "$SRC/examples/workflows/data_review_seed.yaml"
    if [ "$rc" -ne 0 ]; then
        grep -v "config\.\|problem" "$TMP/err" | grep -q . && fail "the seed's example: $(cat "$TMP/err")"
        echo "note: data_review_seed.yaml's action parameters do not match the executors yet:"
        cat "$TMP/err"
    fi
else
    echo "note: container, llm or agent executor absent: data_review_seed.yaml not validated"
fi

# a net too big to explore says so, as a note, and is not a problem
cat >"$TMP/grow.yaml" <<'YAML'
name: grow
places: [a, b]
final: [b]
transitions:
  - {name: more, from: a, to: [a, b]}
YAML
run "$CBX" workflow validate "$TMP/grow.yaml" --max-markings 50
expect_rc 0 "unbounded net"
grep -qF "note: more than 50 markings are reachable" "$TMP/err" || fail "note: $(cat "$TMP/err")"

# a missing file
run "$CBX" workflow validate "$TMP/nope.yaml"
expect_rc 2 "missing file"
grep -qF "No such file" "$TMP/err" || fail "missing file: $(cat "$TMP/err")"
# a file that is no workflow, given to run: the problems, then one line naming the command once
: >"$TMP/empty.yaml"
run "$CBX" workflow run "$TMP/empty.yaml" --token '{}' --no-journal
expect_rc 2 "run of an empty file"
[ "$(tail -1 "$TMP/err")" = "cbx: workflow run: $TMP/empty.yaml: 1 problem" ] ||
    fail "the summary line: $(tail -1 "$TMP/err")"
echo "ok"
