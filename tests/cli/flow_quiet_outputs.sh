# cbx run -q (without --json) prints what cbx run prints: for a flow that declares no outputs,
# {step: outputs} of its top-level steps that succeeded, in the file's order (a failure
# tolerated, a skipped step and a failed run left out); for a flow that declares outputs, those.
# Without --json the run asks the library for no record per step (cbx_flow_run_opts.steps): the
# printed JSON and the summary line must not change for it.
. "$(dirname "$0")/lib.bash"

cat >"$TMP/plain.yaml" <<'YAML'
name: plain
steps:
  - {name: zeta, executor: command, config: {argv: [printf, z]}}
  - {name: broken, executor: command, continue_on_error: true, config: {argv: ["false"]}}
  - {name: never, executor: command, when: "false", config: {argv: [printf, never]}}
  - name: alpha
    needs: [zeta, broken]
    executor: command
    config: {shell: true, command: "printf '%s' '{{ steps.zeta.outputs.stdout }}a'; echo warn >&2"}
YAML

run "$CBX" run "$TMP/plain.yaml" -q
expect_rc 0 "quiet run"
[ ! -s "$TMP/err" ] || fail "-q wrote to stderr: $(cat "$TMP/err")"
cp "$TMP/out" "$TMP/quiet.json"
[ "$(jq -c 'keys_unsorted' "$TMP/quiet.json")" = '["zeta","alpha"]' ] ||
    fail "steps shown: $(jq -c 'keys_unsorted' "$TMP/quiet.json")"
[ "$(jq -r .alpha.stdout "$TMP/quiet.json")" = "za" ] || fail "alpha: $(cat "$TMP/quiet.json")"
[ "$(jq -r .alpha.stderr "$TMP/quiet.json")" = "warn" ] || fail "alpha: $(cat "$TMP/quiet.json")"
[ "$(jq -r .zeta.stderr "$TMP/quiet.json")" = "" ] || fail "zeta: $(cat "$TMP/quiet.json")"

# the same bytes as a run that shows its steps
run "$CBX" run "$TMP/plain.yaml"
expect_rc 0 "run with its log"
cmp -s "$TMP/out" "$TMP/quiet.json" || fail "-q printed otherwise: $(cat "$TMP/quiet.json") vs $(cat "$TMP/out")"
# the summary counts the steps from the run's events (no records were asked for)
grep -q "^flow plain succeeded in .*: 2 steps succeeded, 1 failed (1 with continue_on_error), 1 skipped$" \
    "$TMP/err" || fail "summary: $(cat "$TMP/err")"

# and the outputs of the records --json gives for the steps that succeeded
run "$CBX" run "$TMP/plain.yaml" --json
expect_rc 0 "--json"
jq -S '.steps | to_entries | map(select(.value.status == "success"))
       | map({key, value: .value.outputs}) | from_entries' "$TMP/out" >"$TMP/from_json"
jq -S . "$TMP/quiet.json" | cmp -s - "$TMP/from_json" ||
    fail "-q against --json: $(cat "$TMP/quiet.json") vs $(cat "$TMP/from_json")"
[ "$(jqv '.steps.broken.status')" = "failed" ] || fail "--json records: $(jqv .steps)"

# declared outputs: those, quiet or not
cat >"$TMP/declared.yaml" <<'YAML'
name: declared
steps:
  - {name: a, executor: command, config: {argv: [printf, one]}}
outputs:
  got: "{{ steps.a.outputs.stdout }}"
YAML
run "$CBX" run "$TMP/declared.yaml" -q
expect_rc 0 "quiet, declared outputs"
[ "$(jq -c . "$TMP/out")" = '{"got":"one"}' ] || fail "declared: $(cat "$TMP/out")"

# a failed run prints no outputs, quiet or not, and names the step
cat >"$TMP/failing.yaml" <<'YAML'
name: failing
steps:
  - {name: ok, executor: command, config: {argv: [printf, fine]}}
  - {name: bad, executor: command, needs: [ok], config: {argv: ["false"]}}
YAML
run "$CBX" run "$TMP/failing.yaml" -q
expect_rc 1 "quiet, failed"
[ ! -s "$TMP/out" ] || fail "a failed run printed: $(cat "$TMP/out")"
grep -q "step 'bad' failed" "$TMP/err" || fail "failure: $(cat "$TMP/err")"
echo "ok"
