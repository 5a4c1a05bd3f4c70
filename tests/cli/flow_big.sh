# Big flow files: a 300k-step chain written in reverse order (each step needs the one written
# after it) validates under a 256 KB stack, so nothing walks it recursively; it has well over a
# million nodes and no alias, and is accepted. Of thousands of problems, the first thousand are
# kept, with suggestions only as long as these stay cheap.
. "$(dirname "$0")/lib.bash"

awk 'BEGIN {
    n = 300000
    print "name: chain"
    print "steps:"
    for (i = n - 1; i >= 0; i--) {
        printf "  - name: s%d\n    executor: command\n    config: {argv: [\"true\"]}\n", i
        if (i > 0)
            printf "    needs: s%d\n", i - 1
    }
}' >"$TMP/chain.yaml"

(ulimit -s 256 && exec "$CBX" validate "$TMP/chain.yaml") >"$TMP/out" 2>"$TMP/err"
rc=$?
expect_rc 0 "a 300000-step chain in reverse order under ulimit -s 256"
[ "$(cat "$TMP/out")" = "$TMP/chain.yaml: ok (300000 steps)" ] || fail "chain: $(cat "$TMP/out")"

# 3000 steps that each need an unknown step: every one is reported, the first ones with a
# suggestion; suggestions stop once they have compared two million names (they would take
# quadratic time), the problems do not
awk 'BEGIN {
    n = 3000
    print "name: unknown"
    print "steps:"
    for (i = 0; i < n; i++)
        printf "  - name: s%d\n    executor: command\n    config: {argv: [\"true\"]}\n    needs: t%d\n", i, i
}' >"$TMP/unknown.yaml"
run "$CBX" validate "$TMP/unknown.yaml"
expect_rc 2 "3000 unknown needs"
[ "$(wc -l <"$TMP/err")" -eq 1001 ] || fail "unknown needs: $(wc -l <"$TMP/err") problems"
head -n 1 "$TMP/err" | grep -q "step 's0': needs: unknown step 't0'; did you mean 's0'?$" ||
    fail "first unknown need: $(head -n 1 "$TMP/err")"
sed -n 1000p "$TMP/err" | grep -q "step 's999': needs: unknown step 't999'$" ||
    fail "1000th unknown need: $(sed -n 1000p "$TMP/err")"
# only the first thousand problems are kept (each costs about 800 bytes)
tail -n 1 "$TMP/err" | grep -qx "$TMP/unknown.yaml: more than 1000 problems: the first 1000 are listed, and the checks stopped" ||
    fail "the last line: $(tail -n 1 "$TMP/err")"

# a million broken steps ("- 1"): a thousand problems, and the load stops there
awk 'BEGIN { print "name: broken"; print "steps:"; for (i = 0; i < 1000000; i++) print "  - 1" }' \
    >"$TMP/broken.yaml"
run "$CBX" validate "$TMP/broken.yaml"
expect_rc 2 "a million broken steps"
[ "$(wc -l <"$TMP/err")" -eq 1001 ] || fail "broken steps: $(wc -l <"$TMP/err") lines"
