# Big flow files: a 300k-step chain written in reverse order (each step needs the one written
# after it) validates under a 256 KB stack, so nothing walks it recursively; it has well over a
# million nodes and no alias, and is accepted.
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
