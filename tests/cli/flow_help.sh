# --help of the flow subcommands: usage, examples, exit codes, every option; the top-level help
# lists them.
. "$(dirname "$0")/lib.bash"

for args in "validate --help" "run --help" "run -h" "runs --help" "show --help" "graph --help" \
    "help run" "help validate"; do
    # shellcheck disable=SC2086
    run "$CBX" $args
    expect_rc 0 "cbx $args"
    grep -q "^Usage: cbx" "$TMP/out" || fail "cbx $args: no usage line"
    grep -q "^Exit codes:" "$TMP/out" || fail "cbx $args: no exit codes"
    grep -q "Examples:" "$TMP/out" || fail "cbx $args: no examples"
    [ ! -s "$TMP/err" ] || fail "cbx $args wrote to stderr: $(cat "$TMP/err")"
done
run "$CBX" run --help
for opt in --input --inputs-json --json --concurrency --resume --env --lua --plugin-path --quiet \
    --state-dir --no-journal --batch --parallel --output; do
    grep -q -- "$opt " "$TMP/out" || fail "run --help does not document $opt"
done
for code in 0 1 2 124 130; do
    grep -q "^  $code " "$TMP/out" || fail "run --help does not document exit code $code"
done
run "$CBX" validate --help
for opt in --json --lua --plugin-path; do
    grep -q -- "$opt " "$TMP/out" || fail "validate --help does not document $opt"
done
run "$CBX" --help
for cmd in validate run runs show graph; do
    grep -q "^  $cmd  " "$TMP/out" || fail "cbx --help does not list $cmd"
done
run "$CBX" run tests.yaml --bogus
expect_rc 2 "an unknown option"
expect_err_line "run: unknown option '--bogus'" "unknown option"
run "$CBX" rnu
expect_rc 2 "a misspelt command"
expect_err_line "did you mean 'run'?" "misspelt command"
echo "ok [$TEST]"
