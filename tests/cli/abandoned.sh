# A run whose process died is not `running` forever: its rows carry the owner's pid and start
# time, `cbx history` and `cbx runs` show them as abandoned, and `cbx run --resume` closes them.
. "$(dirname "$0")/lib.bash"

# poll_for CMD JQ WANT: until CMD's JSON gives WANT through JQ (limits of minutes)
poll_for() {
    local deadline=$(($(date +%s) + 300)) got=""
    while [ "$(date +%s)" -lt "$deadline" ]; do
        got=$($1 2>/dev/null | jq -r "$2")
        [ "$got" = "$3" ] && return 0
        sleep 0.1
    done
    fail "$1 | jq '$2' never gave '$3' (last: '$got')"
}

# an exec killed with SIGKILL while its command runs
"$CBX" exec -- sh -c 'echo $$ >"$0"; exec sleep 600' "$TMP/pid1" >/dev/null 2>&1 &
cbx_pid=$!
wait_for "$TMP/pid1" "$cbx_pid" || fail "the command never started"
poll_for "$CBX history --json" '.[0].status' running
kill -KILL "$cbx_pid"
wait "$cbx_pid" 2>/dev/null
kill "$(cat "$TMP/pid1")" 2>/dev/null
run "$CBX" history --json
[ "$(jqv '.[0].status')" = "abandoned" ] || fail "history: $(cat "$TMP/out")"
run "$CBX" history --status abandoned --json
[ "$(jqv length)" = "1" ] || fail "--status abandoned: $(cat "$TMP/out")"
run "$CBX" history --status running --json
[ "$(jqv length)" = "0" ] || fail "--status running still lists it: $(cat "$TMP/out")"
run "$CBX" history
grep -q "abandoned" "$TMP/out" || fail "the table does not say abandoned: $(cat "$TMP/out")"

# a flow run killed the same way: cbx runs says abandoned; --resume closes the dead execution
cat >"$TMP/flow.yaml" <<'YAML'
name: dies
steps:
  - name: wait
    executor: command
    config:
      argv: [sh, -c, 'if [ -f "$0" ]; then echo done; else echo $$ >"$1"; exec sleep 600; fi',
             "{{ inputs.marker }}", "{{ inputs.pidfile }}"]
inputs:
  - {name: marker, type: string}
  - {name: pidfile, type: string}
YAML
"$CBX" run "$TMP/flow.yaml" -i marker="$TMP/marker" -i pidfile="$TMP/pid2" >/dev/null 2>&1 &
cbx_pid=$!
wait_for "$TMP/pid2" "$cbx_pid" || fail "the flow's command never started"
poll_for "$CBX runs --json" '.[0].status' running
kill -KILL "$cbx_pid"
wait "$cbx_pid" 2>/dev/null
kill "$(cat "$TMP/pid2")" 2>/dev/null
run "$CBX" runs --json
[ "$(jqv '.[0].status')" = "abandoned" ] || fail "runs: $(cat "$TMP/out")"
rid=$(jqv '.[0].run_id')
run "$CBX" runs
grep -q "abandoned" "$TMP/out" || fail "the runs table does not say abandoned: $(cat "$TMP/out")"

touch "$TMP/marker"
run "$CBX" run "$TMP/flow.yaml" --resume "$rid"
expect_rc 0 "resume"
run "$CBX" runs --json
[ "$(jqv '.[0].status')" = "success" ] || fail "after resume: $(cat "$TMP/out")"
run "$CBX" history --json
n=$(jqv "[.[] | select(.tag == \"flow:$rid/wait\" and .status == \"abandoned\" and .ended_ms != null)] | length")
[ "$n" = "1" ] || fail "the dead execution was not closed: $(cat "$TMP/out")"
exit 0
