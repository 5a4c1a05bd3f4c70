# Children started by the spawner threads, handed back to the loop, read, reaped: many at once,
# with output, stdin, a timeout and --each. Labelled "stress" too, so that `make tsan` runs it
# with a ThreadSanitizer build of cbx (halt_on_error: a race fails the run with exit 66); it once
# reported the spawner's answer read on the loop without an ordering TSan could see.
. "$(dirname "$0")/lib.bash"

run "$CBX" exec --repeat 40 --parallel 4 -- true
expect_rc 0 "40 x true, 4 at a time"

run "$CBX" exec --repeat 12 --parallel 4 --json -- sh -c 'echo out; echo err >&2'
expect_rc 0 "output from 12 children"
[ "$(jqv .succeeded)" = 12 ] || fail "summary: $(cat "$TMP/out")"

printf 'a\nb\nc\nd\ne\nf\ng\nh\n' >"$TMP/items"
run "$CBX" exec -j4 --each --arg-file "$TMP/items" -- echo {}
expect_rc 0 "--each"
[ "$(sort "$TMP/out" | tr -d '\n')" = "abcdefgh" ] || fail "--each output: $(cat "$TMP/out")"

run "$CBX" exec --timeout 300ms -- sleep 600
expect_rc 124 "timeout"
echo "ok"
