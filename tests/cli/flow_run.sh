# cbx run: inputs typed by the flow's declarations (-i, -i @file, --inputs-json), --json, the
# log lines off a terminal, bad inputs (exit 2, nothing runs), a failing step (exit 1, named),
# when and continue_on_error visible in the log and in the result.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
F=tests/flows/cli

# every kind of input from text; outputs on stdout as JSON
run "$CBX" run $F/good.yaml -i who=world -i times=3 -i loud=true -i 'tags=["a","b"]' \
    -i ratio=2.5 -i 'meta={"k":1}' -i level=high
expect_rc 0 "run with typed inputs"
[ "$(jqv .greeting)" = "hello world" ] || fail "greeting: $(cat "$TMP/out")"
[ "$(jqv .repeated)" = "hello world;hello world;hello world;" ] || fail "repeated: $(jqv .repeated)"
[ "$(jqv '.times | type')" = "number" ] && [ "$(jqv .times)" = "3" ] || fail "times: $(jqv .times)"
[ "$(jqv '.loud | type')" = "boolean" ] || fail "loud: $(jqv .loud)"
[ "$(jqv '.tags | join(",")')" = "a,b" ] || fail "tags: $(jqv .tags)"
[ "$(jqv .ratio)" = "2.5" ] || fail "ratio: $(jqv .ratio)"
[ "$(jqv .meta.k)" = "1" ] || fail "meta: $(jqv .meta)"
[ "$(jqv .level)" = "high" ] || fail "level: $(jqv .level)"
# off a terminal: the run id, then one plain line per step event, then the summary
grep -q "^run [0-9a-f-]* started; resume with: cbx run $F/good.yaml --resume [0-9a-f-]*$" \
    "$TMP/err" || fail "no run id line: $(cat "$TMP/err")"
grep -q "^step hello started$" "$TMP/err" || fail "no started line: $(cat "$TMP/err")"
grep -q "^step again succeeded in [0-9.]*[mun]*s$" "$TMP/err" || fail "no succeeded line: $(cat "$TMP/err")"
grep -q "^flow greet succeeded in .*: 2 steps succeeded$" "$TMP/err" || fail "summary: $(cat "$TMP/err")"
grep -q $'\033' "$TMP/err" && fail "escape codes off a terminal"

# a string input stays text even when it looks like a number; -i @file; --inputs-json under -i
printf 'file\nvalue\n' >"$TMP/who.txt"
run "$CBX" run $F/good.yaml -i who=@"$TMP/who.txt" -q
expect_rc 0 "-i who=@file"
[ "$(jqv .greeting)" = "$(printf 'hello file\nvalue\n')" ] || fail "@file: $(jqv .greeting)"
[ ! -s "$TMP/err" ] || fail "-q wrote to stderr: $(cat "$TMP/err")"
run "$CBX" run $F/good.yaml --inputs-json '{"who": "json", "times": 1, "tags": [1]}' -i who=42 --json
expect_rc 0 "--inputs-json with a -i override"
[ "$(jqv .status)" = "success" ] || fail "status: $(jqv .status)"
[ "$(jqv .outputs.greeting)" = "hello 42" ] || fail "-i over --inputs-json: $(jqv .outputs)"
[ "$(jqv .outputs.times)" = "1" ] || fail "--inputs-json times: $(jqv .outputs.times)"
[ "$(jqv '.steps.hello.status')" = "success" ] || fail "--json steps: $(jqv .steps)"
[ "$(jqv '.steps.again.attempts')" = "1" ] || fail "--json attempts: $(jqv .steps.again)"
[ "$(jqv '.run_id | length')" = "36" ] || fail "--json run_id: $(jqv .run_id)"

# bad inputs: every problem, exit 2, and nothing ran (no run in the journal)
before=$("$CBX" runs --json | jq length)
run "$CBX" run $F/good.yaml -i times=abc -i level=mid -i whom=x -i ratio=1.5x
expect_rc 2 "bad inputs"
cat >"$TMP/want" <<'WANT'
cbx: run: input 'times': expected integer, got string "abc"
cbx: run: input 'level': expected one of "low","high"; got "mid"
cbx: run: unknown input 'whom'; did you mean 'who'?
cbx: run: input 'ratio': expected number, got string "1.5x"
cbx: run: input 'who': missing required input (string): give it with -i who=VALUE
WANT
diff "$TMP/want" "$TMP/err" >"$TMP/diff" || fail "input problems: $(cat "$TMP/diff")"
[ "$("$CBX" runs --json | jq length)" = "$before" ] || fail "a refused run reached the journal"
run "$CBX" run $F/good.yaml -i who
expect_rc 2 "-i without ="
expect_err_line "run: -i: expected key=value or key=@file, got 'who'" "-i without ="
run "$CBX" run $F/good.yaml --inputs-json '[1]'
expect_rc 2 "--inputs-json not an object"
expect_err_line "--inputs-json: expected a JSON object, got array" "--inputs-json array"
run "$CBX" run $F/bad.yaml
expect_rc 2 "run an invalid flow"
[ "$(grep -c "^$F/bad.yaml:[0-9]*:[0-9]*: " "$TMP/err")" = "6" ] || fail "run bad.yaml: $(cat "$TMP/err")"

# a failing step: exit 1, the step named; continue_on_error and when in the log and the result
run "$CBX" run $F/fail.yaml --json
expect_rc 1 "a failing step"
[ "$(tail -1 "$TMP/err")" = "cbx: run: step 'broken' failed: exit code 3" ] ||
    fail "failure line: $(tail -1 "$TMP/err")"
grep -q "^step optional failed in .*: exit code 1: optional broke (continue_on_error: the flow goes on)$" \
    "$TMP/err" || fail "continue_on_error line: $(cat "$TMP/err")"
grep -q "^step never skipped: when: inputs.code == 42 is false$" "$TMP/err" ||
    fail "when line: $(cat "$TMP/err")"
grep -q "^step after skipped: dependency 'broken' did not succeed$" "$TMP/err" ||
    fail "dependency skip line: $(cat "$TMP/err")"
grep -q "^flow failing failed in .*: 1 step succeeded, 2 failed (1 with continue_on_error), 2 skipped$" \
    "$TMP/err" || fail "summary: $(cat "$TMP/err")"
[ "$(jqv .status)" = "failed" ] || fail "status: $(jqv .status)"
[ "$(jqv .outputs)" = "null" ] || fail "outputs of a failed run: $(jqv .outputs)"
[ "$(jqv '[.steps[] | .status] | join(",")')" = "success,failed,skipped,failed,skipped" ] ||
    fail "step statuses: $(jqv '.steps | map_values(.status)')"
[ "$(jqv .steps.never.skipped)" = "true" ] || fail "never: $(jqv .steps.never)"

# the same flow with code 0: the failure of 'optional' is tolerated, 'never' still skipped
run "$CBX" run $F/fail.yaml -i code=0
expect_rc 0 "a tolerated failure"
[ "$(jqv .after)" = "after" ] || fail "outputs: $(cat "$TMP/out")"
grep -q "continue_on_error: the flow goes on" "$TMP/err" || fail "no continue line: $(cat "$TMP/err")"

# --no-journal: it runs, but cannot be resumed; --resume needs the journal
run "$CBX" --no-journal run $F/good.yaml -i who=x
expect_rc 0 "--no-journal"
grep -q "^run [0-9a-f-]* started (--no-journal: it cannot be resumed)$" "$TMP/err" ||
    fail "--no-journal line: $(cat "$TMP/err")"
run "$CBX" run $F/good.yaml --no-journal --resume abc
expect_rc 2 "--resume with --no-journal"
run "$CBX" run $F/good.yaml --resume abc -i who=x
expect_rc 2 "--resume with -i"
expect_err_line "run: --resume runs with the inputs of the run it resumes; drop -i" "--resume -i"
run "$CBX" run $F/good.yaml --resume 00000000-no-such-run
expect_rc 2 "--resume of an unknown run"
expect_err_line "run: --resume: no flow run '00000000-no-such-run' in the journal" "unknown run"
run "$CBX" run $F/good.yaml --parallel 2 -i who=x
expect_rc 2 "--parallel without --batch"
expect_err_line "run: --parallel goes with --batch DATA.jsonl" "--parallel alone"

# timeouts, of the whole flow and of one step: exit 124, the step's process tree killed
printf 'name: t\ntimeout: 300ms\nsteps:\n  - {name: nap, executor: command, config: {argv: [sleep, "5"]}}\n' \
    >"$TMP/flow_timeout.yaml"
start=$(now_ms)
run "$CBX" run "$TMP/flow_timeout.yaml"
expect_rc 124 "the flow's timeout"
[ $(($(now_ms) - start)) -lt 4000 ] || fail "the flow's timeout did not stop the step"
[ "$(tail -1 "$TMP/err")" = "cbx: run: the flow timed out after 300ms" ] || fail "timeout: $(tail -1 "$TMP/err")"
# one status for the step the flow's timeout stopped: cancelled in the log, the summary, --json
# and show
grep -q "^step nap cancelled after " "$TMP/err" || fail "cancel line: $(cat "$TMP/err")"
grep -q "^flow t timed out in .*: 0 steps succeeded, 1 cancelled$" "$TMP/err" ||
    fail "summary: $(cat "$TMP/err")"
[ "$(grep -c "nap cancelled" "$TMP/err")" = 1 ] || fail "logged more than once: $(cat "$TMP/err")"
id=$(sed -n 's/^run \([0-9a-f-]*\) started.*/\1/p' "$TMP/err")
run "$CBX" run "$TMP/flow_timeout.yaml" --json
expect_rc 124 "the flow's timeout, --json"
[ "$(jqv .steps.nap.status)" = "cancelled" ] || fail "--json: $(jqv .steps.nap)"
run "$CBX" show "$id" --json
expect_rc 0 "show of the timed-out run"
[ "$(jqv .steps.nap.status)" = "cancelled" ] || fail "show: $(jqv .steps.nap)"
# a composite and a foreach stopped by the flow's timeout are cancelled too, once each
cat >"$TMP/nested_timeout.yaml" <<'YAML'
name: nt
timeout: 300ms
steps:
  - name: grp
    steps:
      - {name: inner, executor: command, config: {argv: [sleep, "30"]}}
  - {name: fe, executor: command, foreach: ["1", "2"], config: {argv: [sleep, "30"]}}
YAML
run "$CBX" run "$TMP/nested_timeout.yaml" --json
expect_rc 124 "nested steps under the flow's timeout"
[ "$(jqv '[.steps.grp.status, .steps.fe.status] | join(",")')" = "cancelled,cancelled" ] ||
    fail "nested --json: $(jq -c .steps <"$TMP/out")"
grep -q "^flow nt timed out in .*: 0 steps succeeded, 2 cancelled$" "$TMP/err" ||
    fail "nested summary: $(cat "$TMP/err")"
grep -q "^step grp cancelled after " "$TMP/err" || fail "grp line: $(cat "$TMP/err")"
id=$(jqv .run_id)
run "$CBX" show "$id" --json
[ "$(jqv '[.steps.grp.status, .steps["grp.inner"].status, .steps.fe.status] | join(",")')" = \
    "cancelled,cancelled,cancelled" ] || fail "nested show: $(jq -c .steps <"$TMP/out")"
printf 'name: t\nsteps:\n  - {name: nap, executor: command, timeout: 200ms, config: {argv: [sleep, "5"]}}\n' \
    >"$TMP/step_timeout.yaml"
run "$CBX" run "$TMP/step_timeout.yaml"
expect_rc 124 "a step's timeout"
grep -q "^step nap timed out in " "$TMP/err" || fail "timed out line: $(cat "$TMP/err")"
grep -q "^cbx: run: step 'nap' failed: timed out" "$TMP/err" || fail "step timeout: $(cat "$TMP/err")"

# a flow without outputs shows each step's outputs
cat >"$TMP/noout.yaml" <<'YAML'
name: noout
steps:
  - {name: one, executor: command, config: {argv: [echo, "1"], parse_json: true}}
YAML
run "$CBX" run "$TMP/noout.yaml"
expect_rc 0 "a flow without outputs"
[ "$(jqv .one.json)" = "1" ] || fail "steps' outputs: $(cat "$TMP/out")"
echo "ok [$TEST]"
