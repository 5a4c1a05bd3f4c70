# The flow executor: a flow file run as one execution - from cbx exec, and as a workflow's
# action (a sub-flow whose outputs join the token) - with its own run in the journal, a failed
# step named, a timeout that cancels the run's steps, and a file that does not load.
. "$(dirname "$0")/lib.bash"

cat >"$TMP/sum.yaml" <<'YAML'
name: sum
inputs:
  - {name: a, type: integer, required: true}
  - {name: b, type: integer, default: 1}
steps:
  - name: add
    executor: command
    config: {argv: [sh, -c, 'echo $(($1 + $2))', sum, "{{ tostring(inputs.a) }}", "{{ tostring(inputs.b) }}"]}
  - name: slow
    executor: command
    when: "inputs.a < 0"
    config: {argv: [sleep, "600"]}
outputs:
  total: "{{ tonumber(trim(steps.add.outputs.stdout)) }}"
YAML

run "$CBX" exec flow -p file="$TMP/sum.yaml" -p 'inputs={"a": 40, "b": 2}'
expect_rc 0 "a flow as one execution"
[ "$(jqv .outputs.total)" = 42 ] && [ "$(jqv .steps.add)" = success ] || fail "outputs: $(cat "$TMP/out")"
sub=$(jqv .run_id)
run "$CBX" runs --json
[ "$(jqv "map(select(.run_id == \"$sub\")) | .[0].flow")" = sum ] || fail "the sub-run in the journal: $(cat "$TMP/out")"

# a timeout cancels the run's steps: exit 124, the step named
start=$(date +%s)
run "$CBX" exec flow -p file="$TMP/sum.yaml" -p 'inputs={"a": -1}' --timeout 300ms
expect_rc 124 "a sub-flow past its timeout"
grep -q "step 'slow'" "$TMP/err" || fail "timeout line: $(cat "$TMP/err")"
[ $(($(date +%s) - start)) -lt 300 ] || fail "the sleep was not cancelled"

# bad input: a missing input, a file that does not load
run "$CBX" exec flow -p file="$TMP/sum.yaml"
expect_rc 1 "a missing input"
grep -q "inputs: a: missing required input" "$TMP/err" || fail "missing input line: $(cat "$TMP/err")"
run "$CBX" exec flow -p file="$TMP/none.yaml"
expect_rc 1 "a file that does not exist"
expect_err_line "none.yaml: cannot open" "missing file line"

# a workflow whose action is the sub-flow: its outputs join the token, a rule judges them
cat >"$TMP/wf.yaml" <<YAML
name: totals
rules:
  big: {when: "(token.total or 0) > 10"}
places: [todo, done]
final: [done]
transitions:
  - name: add_up
    from: todo
    to: done
    policy: {rules: {all: [big]}}
    action:
      executor: flow
      config: {file: "$TMP/sum.yaml", inputs: {a: "{{ token.a }}", b: 5}}
      outputs: {total: "{{ outputs.outputs.total }}"}
YAML
run "$CBX" workflow run "$TMP/wf.yaml" --token '{"a": 20}' --json
expect_rc 0 "a workflow with a sub-flow action"
[ "$(jqv '.tokens[0].place')" = done ] && [ "$(jqv '.tokens[0].data.total')" = 25 ] ||
    fail "sub-flow action: $(cat "$TMP/out")"
run "$CBX" workflow run "$TMP/wf.yaml" --token '{"a": 1}' --json
expect_rc 1 "a sub-flow whose answer the rule refuses"
[ "$(jqv '.tokens[0].place')" = todo ] || fail "blocked token: $(cat "$TMP/out")"
jqv '.tokens[0].explanation' | grep -q "rule big is false" || fail "explanation: $(cat "$TMP/out")"
echo "ok [$TEST]"
