# cbx run on long and wide flows: a chain of 3,000 steps and a flat flow of 3,000 with a
# composite whose steps end out of file order; the log view names every step once, started and
# succeeded, the summary counts them all, and the outputs are every step's.
. "$(dirname "$0")/lib.bash"

chain=$TMP/chain.yaml
{
    echo "name: chain"
    echo "steps:"
    echo "  - {name: s0, executor: chaos}"
    for i in $(seq 1 2999); do echo "  - {name: s$i, executor: chaos, needs: [s$((i - 1))]}"; done
} >"$chain"
run "$CBX" run "$chain" --no-journal
expect_rc 0 "a chain of 3000"
[ "$(grep -c '^step s[0-9]* succeeded in ' "$TMP/err")" -eq 3000 ] || fail "chain: succeeded lines"
[ "$(grep '^step s[0-9]* started' "$TMP/err" | sort -u | wc -l)" -eq 3000 ] || fail "chain: started"
grep -q "^flow chain succeeded in .*: 3000 steps succeeded$" "$TMP/err" || fail "chain summary"
[ "$(jqv 'keys | length')" = "3000" ] || fail "chain outputs: $(head -c 300 "$TMP/out")"
# in order: s2999 is the last step to start
[ "$(grep '^step s[0-9]* started' "$TMP/err" | tail -1)" = "step s2999 started" ] ||
    fail "chain order"

# a flat flow: the composite's steps run one after another in reverse file order while the
# others end around them, so events come far from file order
flat=$TMP/flat.yaml
{
    echo "name: flat"
    echo "concurrency: 4"
    echo "steps:"
    echo "  - name: group"
    echo "    executor: steps"
    echo "    mode: parallel"
    echo "    steps:"
    echo "      - {name: c2, executor: chaos, needs: [c1]}"
    echo "      - {name: c1, executor: chaos, needs: [c0]}"
    echo "      - {name: c0, executor: chaos, config: {fail_rate: 1}, continue_on_error: true}"
    for i in $(seq 0 2999); do echo "  - {name: f$i, executor: chaos}"; done
} >"$flat"
run "$CBX" run "$flat" --no-journal
expect_rc 0 "a flat flow of 3000 and a composite"
[ "$(grep -c '^step f[0-9]* succeeded in ' "$TMP/err")" -eq 3000 ] || fail "flat: succeeded lines"
grep -q "^step group.c0 failed in .*: chaos: injected failure (continue_on_error: the flow goes on)$" \
    "$TMP/err" || fail "nested failure: $(grep group "$TMP/err")"
[ "$(grep -o '^step group.c[0-9] [a-z]*' "$TMP/err" | tr '\n' ';')" = \
    "step group.c0 started;step group.c0 failed;step group.c1 started;step group.c1 succeeded;step group.c2 started;step group.c2 succeeded;" ] ||
    fail "nested steps: $(grep group "$TMP/err")"
grep -q "^step group succeeded in " "$TMP/err" || fail "composite: $(grep group "$TMP/err")"
grep -q "^flow flat succeeded in .*: 3001 steps succeeded$" "$TMP/err" ||
    fail "flat summary: $(tail -2 "$TMP/err")"
exit 0
