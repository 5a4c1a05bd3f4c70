# --repeat N --parallel P: N runs, P at a time, and a summary.
. "$(dirname "$0")/lib.bash"

run "$CBX" exec --repeat 12 --parallel 4 -- true
expect_rc 0 "12 runs of true"
grep -q "^12 runs in .*: 12 succeeded" "$TMP/out" || fail "summary: $(cat "$TMP/out")"

run "$CBX" exec --repeat 6 --parallel 3 --json -- sh -c 'exit 1'
expect_rc 1 "6 failing runs"
[ "$(jqv .runs)" = "6" ] || fail "runs: $(cat "$TMP/out")"
[ "$(jqv .failed)" = "6" ] || fail "failed: $(cat "$TMP/out")"
[ "$(jqv '.results | length')" = "6" ] || fail "results: $(cat "$TMP/out")"

# P at a time, really: 4 runs of 300 ms, 4 at once, each records its start
run "$CBX" exec --repeat 4 --parallel 4 -- sh -c "date +%s%N >>'$TMP/starts'; sleep 0.3"
expect_rc 0 "4 parallel sleeps"
[ "$(wc -l <"$TMP/starts")" = "4" ] || fail "starts: $(cat "$TMP/starts")"
first=$(sort -n "$TMP/starts" | head -1)
last=$(sort -n "$TMP/starts" | tail -1)
# all four had started before the first could have ended
[ $(((last - first) / 1000000)) -lt 300 ] || fail "the runs did not overlap"

# a breaker that opens part way: the rest are refused
run "$CBX" exec --repeat 8 --breaker R --breaker-failures 2 --breaker-open 1m --json -- false
expect_rc 1 "runs into an open breaker"
[ "$(jqv .failed)" = "2" ] || fail "failed before the breaker opened: $(cat "$TMP/out")"
[ "$(jqv .breaker_open)" = "6" ] || fail "refused by the breaker: $(cat "$TMP/out")"

[ "$("$CBX" history --json --limit 1000 | jq length)" = "30" ] || fail "journal rows"
echo "ok [$TEST]"
