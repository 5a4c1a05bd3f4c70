# The breaker script test: `cbx exec --breaker B -- false` run again and again opens B (a
# host-wide breaker shared by every cbx process); later runs are refused at once without
# starting the command; after the open time a probe succeeds and closes it. B stays open for an
# hour, so that the refusals hold however slow the machine; the probe is shown with P, open for
# one second, where waiting longer than that can only help.
. "$(dirname "$0")/lib.bash"

brk() {
    run "$CBX" exec --breaker B --breaker-failures 3 --breaker-open 1h -- "$@"
}
probe() {
    run "$CBX" exec --breaker P --breaker-failures 3 --breaker-open 1s -- "$@"
}

for i in 1 2 3; do
    brk false
    expect_rc 1 "failure $i (false exits 1)"
done

run "$CBX" breaker show B --json
expect_rc 0 "breaker show after three failures"
[ "$(jqv .state)" = "open" ] || fail "B should be open: $(cat "$TMP/out")"
[ "$(jqv .consecutive_failures)" = "3" ] || fail "consecutive_failures: $(cat "$TMP/out")"

# refused without starting the command: the marker never appears
for i in 1 2; do
    brk touch "$TMP/marker"
    expect_rc 75 "refused run $i"
    expect_err_line "breaker 'B' is open" "the refusal line"
    grep -q "next probe in" "$TMP/err" || fail "the refusal does not say when: $(cat "$TMP/err")"
done
[ ! -e "$TMP/marker" ] || fail "the command ran although the breaker was open"

run "$CBX" breaker list --json
[ "$(jqv '.[] | select(.name == "B") | .rejections')" = "2" ] ||
    fail "rejections: $(cat "$TMP/out")"

# the journal saw 3 failures and 2 refusals, all guarded by B
run "$CBX" stats --breaker B --json
[ "$(jqv .failures)" = "3" ] || fail "stats failures: $(cat "$TMP/out")"
[ "$(jqv .rejected)" = "2" ] || fail "stats rejected: $(cat "$TMP/out")"

# after the open time a probe is admitted; its success closes the breaker
for i in 1 2 3; do
    probe false
    expect_rc 1 "P: failure $i"
done
sleep 1.2
probe touch "$TMP/probed"
expect_rc 0 "the probe"
[ -e "$TMP/probed" ] || fail "the probe did not run the command"
run "$CBX" breaker show P --json
[ "$(jqv .state)" = "closed" ] || fail "P should be closed after the probe: $(cat "$TMP/out")"
run "$CBX" stats --breaker P --json
[ "$(jqv .successes)" = "1" ] || fail "stats successes: $(cat "$TMP/out")"

# manual control: open refuses, reset closes again
run "$CBX" breaker open B
expect_rc 0 "breaker open"
brk true
expect_rc 75 "a forced-open breaker refuses"
run "$CBX" breaker reset B
expect_rc 0 "breaker reset"
brk true
expect_rc 0 "after reset"
# the text view shows each latency figure from its own field (a shared buffer once printed the
# mean where p99 belongs): one slow call among fast ones sets p99 far from the mean
for i in 1 2 3 4 5 6 7 8 9; do run "$CBX" exec --breaker LAT -- true; done
run "$CBX" exec --breaker LAT -- sleep 0.3
run "$CBX" breaker show LAT
line=$(grep '^latency mean' "$TMP/out") || fail "no latency line: $(cat "$TMP/out")"
shown_p99=$(echo "$line" | sed -E 's/.*p99 ([^ ]+).*/\1/')
shown_mean=$(echo "$line" | sed -E 's/^latency mean ([^ ]+).*/\1/')
[ "$shown_p99" != "$shown_mean" ] || fail "p99 shows the mean: $line"

run "$CBX" breaker show nosuch
expect_rc 1 "show an unknown breaker"
expect_err_line "no breaker named 'nosuch'" "unknown breaker line"
echo "ok [$TEST]"
