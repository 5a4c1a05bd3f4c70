# A named breaker's options live with it in the host-wide store: the first run that uses the name
# stores them, later runs with other --breaker-* flags are told so and judged by the stored ones,
# and `cbx breaker set` changes them for every process; `cbx breaker show` prints them.
. "$(dirname "$0")/lib.bash"

run "$CBX" exec -q --breaker O --breaker-failures 2 --breaker-open 1h -- false
expect_rc 1 "the first failure"
[ ! -s "$TMP/err" ] || fail "a new name warned: $(cat "$TMP/err")"

# another process asks for 4 failures: the stored 2 win, and it says so in one line
run "$CBX" exec --breaker O --breaker-failures 4 --breaker-open 30s -- false
expect_rc 1 "the second failure"
expect_err_line "breaker 'O' keeps its stored options (failures 2, open 60m00s)" "the differing flags"
grep -qF "cbx breaker set O --failures 4 --open 30.0s" "$TMP/err" ||
    fail "the warning does not say how to change them: $(cat "$TMP/err")"
run "$CBX" breaker show O --json
[ "$(jqv .state)" = "open" ] || fail "two failures should open O (stored failures 2): $(cat "$TMP/out")"
[ "$(jqv .options.consecutive_failures)" = "2" ] || fail "options: $(cat "$TMP/out")"
[ "$(jqv .options.open_ms)" = "3600000" ] || fail "open_ms: $(cat "$TMP/out")"

# the same flags as stored: no warning
run "$CBX" exec --breaker O --breaker-failures 2 -- true
expect_rc 75 "refused while open"
expect_err_line "breaker 'O' is open" "only the refusal"

run "$CBX" breaker show O
expect_rc 0 "show as text"
grep -qx "options: failures 2, open 60m00s, probes 1" "$TMP/out" || fail "show text: $(cat "$TMP/out")"

# set changes the options and keeps the state (same shape): still open, with the new open time
run "$CBX" breaker set O --failures 3 --open 10m
expect_rc 0 "set"
grep -qx "breaker 'O': failures 3, open 10m00s, probes 1" "$TMP/out" || fail "set: $(cat "$TMP/out")"
run "$CBX" breaker show O --json
[ "$(jqv .options.consecutive_failures)" = "3" ] || fail "after set: $(cat "$TMP/out")"
[ "$(jqv .calls)" = "2" ] || fail "set lost the state: $(cat "$TMP/out")"
[ "$(jqv .state)" = "open" ] || fail "set lost the state: $(cat "$TMP/out")"

# the open period under way keeps its end (the new open time applies from the next opening)
grep -q '"retry_in_ms": [0-9]\{7\}' "$TMP/out" || fail "the open period was cut short: $(cat "$TMP/out")"
# once reset, three failures are needed to open it, whatever a run asks for
run "$CBX" breaker reset O
expect_rc 0 "reset"
for i in 1 2; do
    run "$CBX" exec -q --breaker O --breaker-failures 1 -- false
    expect_rc 1 "failure $i after set"
done
run "$CBX" breaker show O --json
[ "$(jqv .state)" = "closed" ] || fail "2 failures opened O (stored failures 3): $(cat "$TMP/out")"
run "$CBX" exec -q --breaker O -- false
run "$CBX" breaker show O --json
[ "$(jqv .state)" = "open" ] || fail "the third failure did not open O: $(cat "$TMP/out")"

# changing the probe slots changes the state's shape: the breaker starts afresh
run "$CBX" breaker set O --probes 2 --json
expect_rc 0 "set --probes"
[ "$(jqv .options.half_open_probes)" = "2" ] || fail "probes: $(cat "$TMP/out")"
[ "$(jqv .state)" = "closed" ] || fail "a new shape should start afresh: $(cat "$TMP/out")"
[ "$(jqv .options.consecutive_failures)" = "3" ] || fail "set --probes changed failures: $(cat "$TMP/out")"

# set on a new name makes it, from cbx exec's defaults and the flags given
run "$CBX" breaker set N --failures 7
expect_rc 0 "set a new name"
run "$CBX" breaker show N --json
[ "$(jqv .options.consecutive_failures)" = "7" ] || fail "N: $(cat "$TMP/out")"
[ "$(jqv .options.open_ms)" = "30000" ] || fail "N open: $(cat "$TMP/out")"

# usage errors
run "$CBX" breaker set O --open 0s
expect_rc 2 "--open 0s"
run "$CBX" breaker set O --probes 65
expect_rc 2 "--probes 65"
run "$CBX" breaker show O --failures 2
expect_rc 2 "--failures without set"
expect_err_line "go with 'set'" "the usage message"
run "$CBX" breaker set
expect_rc 2 "set without a name"
exit 0
