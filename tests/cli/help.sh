# --help works for every subcommand, exits 0, and documents usage, examples and exit codes.
. "$(dirname "$0")/lib.bash"

for args in "--help" "-h" "help" "exec --help" "exec -h" "types --help" "history --help" \
    "stats --help" "breaker --help" "help exec" "help breaker"; do
    # shellcheck disable=SC2086
    run "$CBX" $args
    expect_rc 0 "cbx $args"
    grep -q "^Usage: cbx" "$TMP/out" || fail "cbx $args: no usage line"
    grep -q "^Exit codes:" "$TMP/out" || fail "cbx $args: no exit codes"
    grep -q "Examples:" "$TMP/out" || fail "cbx $args: no examples"
    [ ! -s "$TMP/err" ] || fail "cbx $args wrote to stderr: $(cat "$TMP/err")"
done
run "$CBX" exec --help
for opt in --timeout --deadline --retries --backoff --retry-delay --retry-max-delay --jitter \
    --retry-on --breaker --breaker-failures --breaker-open --breaker-probes --fallback \
    --policy --policy-json --rate --repeat --parallel --plugin-path --lua --json --quiet \
    --params-json --state-dir --no-journal; do
    grep -q -- "$opt " "$TMP/out" || fail "exec --help does not document $opt"
done
for code in 0 1 2 70 75 76 124 130; do
    grep -q "^  $code " "$TMP/out" || fail "exec --help does not document exit code $code"
done

run "$CBX" --version
expect_rc 0 "--version"
grep -q "^cbx [0-9]" "$TMP/out" || fail "--version: $(cat "$TMP/out")"

run "$CBX"
expect_rc 2 "no command at all"
echo "ok [$TEST]"
