# cbx show RUN --trace FILE: a flow run from the journal as Chrome trace-event JSON - the run's
# bar, one bar per step, steps that overlapped on lanes of their own, a dependent step after the
# steps it read; a file that cannot be written is a one-line error.
. "$(dirname "$0")/lib.bash"

cat >"$TMP/lanes.yaml" <<'YAML'
name: lanes
steps:
  - name: a
    executor: command
    config: {argv: [sleep, "0.3"]}
  - name: b
    executor: command
    config: {argv: [sleep, "0.2"]}
  - name: c
    executor: command
    config: {argv: [echo, "{{ steps.a.outputs.exit_code }}{{ steps.b.outputs.exit_code }}"]}
YAML
run "$CBX" run "$TMP/lanes.yaml" --json
expect_rc 0 "the flow"
id=$(jqv .run_id)
run "$CBX" show "$id" --trace "$TMP/trace.json"
expect_rc 0 "show --trace"
grep -q "^run  *$id" "$TMP/out" || fail "show's text still printed: $(cat "$TMP/out")"
t="$TMP/trace.json"
[ "$(jq '[.traceEvents[] | select(.ph == "X")] | length' "$t")" = 4 ] || fail "bars: $(cat "$t")"
bar() { jq -r --arg n "$1" ".traceEvents[] | select(.ph == \"X\" and .name == \$n) | $2" "$t"; }
[ "$(bar lanes .tid)" = 0 ] && [ "$(bar lanes .args.status)" = success ] || fail "run bar: $(cat "$t")"
[ "$(bar a .tid)" != "$(bar b .tid)" ] || fail "a and b overlapped on one lane: $(cat "$t")"
[ "$(bar c .ts)" -ge $(($(bar a .ts) + $(bar a .dur))) ] || fail "c before a ended: $(cat "$t")"
[ "$(bar c .ts)" -ge $(($(bar b .ts) + $(bar b .dur))) ] || fail "c before b ended: $(cat "$t")"
[ "$(bar a .dur)" -ge 250000 ] || fail "a's duration (us): $(bar a .dur)"
jq -e '.displayTimeUnit == "ms" and ([.traceEvents[] | select(.ph == "M")] | length) >= 3' "$t" \
    >/dev/null || fail "metadata events: $(cat "$t")"
# to stdout: only the trace
run "$CBX" show "${id:0:13}" --trace -
expect_rc 0 "show --trace - with a prefix of the id"
jq -e '.traceEvents | length >= 4' "$TMP/out" >/dev/null || fail "stdout trace: $(cat "$TMP/out")"
run "$CBX" show "$id" --trace "$TMP/no/such/dir/t.json"
expect_rc 1 "an unwritable trace file"
expect_err_line "--trace $TMP/no/such/dir/t.json: No such file or directory" "trace error line"
echo "ok [$TEST]"
