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

# the latency summary is the runs' own: p50, p95 and max of their durations as a sort places them
run "$CBX" exec --repeat 25 --parallel 5 --json -- sh -c 'sleep 0.0$(($$ % 5))'
expect_rc 0 "25 runs of different lengths"
want=$(jq -c '[.results[].duration_ms] | sort | {p50: .[12], p95: .[23], max: .[24]}' "$TMP/out")
got=$(jq -c .latency_ms "$TMP/out")
[ "$got" = "$want" ] || fail "latency: $got, the runs say $want"

# P at a time, really: each of 4 runs marks itself started, then waits (up to 5 minutes) until
# all 4 have started. Run one after another they could not all meet, however fast the machine;
# run 4 at once they meet however slow it is.
mkdir "$TMP/meet"
run "$CBX" exec --repeat 4 --parallel 4 -- sh -c "
    : >\"\$(mktemp '$TMP/meet/XXXXXX')\"
    n=0
    while [ \"\$(ls '$TMP/meet' | wc -l)\" -lt 4 ] && [ \$n -lt 30000 ]; do sleep 0.01; n=\$((n + 1)); done
    [ \"\$(ls '$TMP/meet' | wc -l)\" -ge 4 ]"
expect_rc 0 "4 runs that wait for one another"

# a breaker that opens part way: the rest are refused
run "$CBX" exec --repeat 8 --breaker R --breaker-failures 2 --breaker-open 1m --json -- false
expect_rc 1 "runs into an open breaker"
[ "$(jqv .failed)" = "2" ] || fail "failed before the breaker opened: $(cat "$TMP/out")"
[ "$(jqv .breaker_open)" = "6" ] || fail "refused by the breaker: $(cat "$TMP/out")"

[ "$("$CBX" history --json --limit 1000 | jq length)" = "55" ] || fail "journal rows"
echo "ok [$TEST]"
