# cbx history and cbx stats after a few runs: the right rows and counts.
. "$(dirname "$0")/lib.bash"

"$CBX" exec -- true || fail "true failed"
"$CBX" exec -- true || fail "true failed"
"$CBX" exec -- true || fail "true failed"
"$CBX" exec -- false && fail "false succeeded"
"$CBX" exec --retries 1 --retry-delay 1ms -- false && fail "false succeeded"
"$CBX" exec --timeout 100ms -- sleep 3
[ $? -eq 124 ] || fail "the sleep did not time out"

run "$CBX" history --json
expect_rc 0 "history --json"
[ "$(jqv length)" = "6" ] || fail "history rows: $(jqv length)"
[ "$(jqv '[.[] | select(.status == "success")] | length')" = "3" ] || fail "successes in history"
[ "$(jqv '[.[] | select(.status == "failed")] | length')" = "2" ] || fail "failures in history"
[ "$(jqv '[.[] | select(.status == "timeout")] | length')" = "1" ] || fail "timeouts in history"
[ "$(jqv '.[0].status')" = "timeout" ] || fail "history is not newest first"
[ "$(jqv '[.[] | select(.attempts == 2)] | length')" = "1" ] || fail "the retried run"
[ "$(jqv '.[0].params.argv[0]')" = "sleep" ] || fail "history --json rows without their params"

run "$CBX" history --status failed --json
[ "$(jqv length)" = "2" ] || fail "--status failed: $(jqv length)"
run "$CBX" history --limit 2 --json
[ "$(jqv length)" = "2" ] || fail "--limit 2: $(jqv length)"
run "$CBX" history --since 1h --executor command --json
[ "$(jqv length)" = "6" ] || fail "--since 1h --executor command: $(jqv length)"
run "$CBX" history --executor http --json
[ "$(jqv length)" = "0" ] || fail "--executor http: $(jqv length)"
[ "$(cat "$TMP/out")" = "[]" ] || fail "an empty listing: $(cat "$TMP/out")"

run "$CBX" history
expect_rc 0 "history table"
[ "$(grep -c ' command ' "$TMP/out")" = "6" ] || fail "history table rows: $(cat "$TMP/out")"

# show: by id, by prefix and by suffix (ids are time-ordered: the suffix is the random part)
id=$("$CBX" history --json --status timeout | jq -r '.[0].id')
run "$CBX" history show "$id" --json
expect_rc 0 "history show ID"
[ "$(jqv .status)" = "timeout" ] || fail "show status: $(cat "$TMP/out")"
[ "$(jqv '.attempts | length')" = "1" ] || fail "show attempts: $(cat "$TMP/out")"
[ "$(jqv '.params.argv[0]')" = "sleep" ] || fail "show params: $(cat "$TMP/out")"
run "$CBX" history show "${id: -8}"
expect_rc 0 "history show PREFIX"
grep -q "$id" "$TMP/out" || fail "show by suffix: $(cat "$TMP/out")"
run "$CBX" history show "${id:0:30}"
expect_rc 0 "history show PREFIX"
grep -q "$id" "$TMP/out" || fail "show by prefix: $(cat "$TMP/out")"
# every id of this journal starts the same (time-ordered, within seconds): ambiguous, exit 2
run "$CBX" history show "${id:0:4}"
expect_rc 2 "history show of an ambiguous prefix"
expect_err_line "history show: '${id:0:4}' matches more than one execution; give more of the id" \
    "an ambiguous prefix"
run "$CBX" history show 00000000-0000-4000-8000-000000000000
expect_rc 1 "history show of an unknown id"
# the table shows each id by the tail that tells it apart, which show accepts
tail=$("$CBX" history --status timeout | awk 'NR == 2 { print $3 }')
[ -n "$tail" ] && [ "${id: -${#tail}}" = "$tail" ] || fail "the table's id: '$tail' for $id"

run "$CBX" stats --json
expect_rc 0 "stats --json"
[ "$(jqv .executions)" = "6" ] || fail "executions: $(cat "$TMP/out")"
[ "$(jqv .successes)" = "3" ] || fail "successes: $(cat "$TMP/out")"
[ "$(jqv .failures)" = "2" ] || fail "failures: $(cat "$TMP/out")"
[ "$(jqv .timeouts)" = "1" ] || fail "timeouts: $(cat "$TMP/out")"
[ "$(jqv .success_rate)" = "0.5" ] || fail "success_rate: $(cat "$TMP/out")"
run "$CBX" stats --by executor --json
[ "$(jqv .command.executions)" = "6" ] || fail "stats by executor: $(cat "$TMP/out")"
run "$CBX" stats
expect_rc 0 "stats table"
grep -q "^all " "$TMP/out" || fail "stats table: $(cat "$TMP/out")"

# clear needs --yes; with it the selected rows go
run "$CBX" history clear
expect_rc 2 "clear without --yes"
[ "$("$CBX" history --json | jq length)" = "6" ] || fail "clear without --yes deleted rows"
run "$CBX" history clear --executor command --yes
expect_rc 0 "clear --yes"
grep -q "deleted 6 executions" "$TMP/out" || fail "clear output: $(cat "$TMP/out")"
[ "$("$CBX" history --json | jq length)" = "0" ] || fail "rows left after clear"

# --no-journal writes nothing
"$CBX" --no-journal exec -- true || fail "--no-journal exec"
[ "$("$CBX" history --json | jq length)" = "0" ] || fail "--no-journal wrote the journal"
# --state-dir points elsewhere
mkdir -p -m 0700 "$TMP/other" # a state directory others can write is refused
"$CBX" exec --state-dir "$TMP/other" -- true || fail "--state-dir exec"
[ -e "$TMP/other/journal.db" ] || fail "--state-dir did not hold the journal"
[ "$("$CBX" --state-dir "$TMP/other" history --json | jq length)" = "1" ] || fail "other dir"
echo "ok [$TEST]"
