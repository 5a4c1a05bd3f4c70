# cbx validate refuses what fails at run time: calls of unknown helpers, and templated values
# whose type cannot match their parameter (they would fail
# when the step runs): a template inside text into an integer, a string input into an integer, an
# integer input into a string argv item; a whole template of a matching input, or one converted
# with tostring(), passes.
. "$(dirname "$0")/lib.bash"

cat >"$TMP/ty.yaml" <<'YAML'
name: ty
inputs:
  - {name: n, type: integer, default: 2}
  - {name: s, type: string, default: "x"}
steps:
  - name: a
    executor: command
    config:
      argv: [echo, "{{ inputs.n }}", "n={{ inputs.n }}", "{{ tostring(inputs.n) }}", "{{ inputs.s }}"]
      stdout_max: "{{ inputs.s }}"
      rlimit_cpu_s: "{{ inputs.n }}"
      kill_grace_ms: "ms {{ inputs.n }}"
YAML
run "$CBX" validate "$TMP/ty.yaml"
expect_rc 2 "mistyped templates"
cat >"$TMP/want" <<EOF
$TMP/ty.yaml:9:20: step 'a': config.argv[1]: {{ inputs.n }} gives the input's type, integer, and this takes string (convert it: "{{ tostring(...) }}")
$TMP/ty.yaml:10:7: step 'a': config.stdout_max: {{ inputs.s }} gives the input's type, string, and this takes integer
$TMP/ty.yaml:12:7: step 'a': config.kill_grace_ms: a template inside text gives a string, and this takes integer (write the value as one whole template, "{{ ... }}", to keep the type of what it gives)
EOF
grep "^$TMP/ty.yaml:" "$TMP/err" >"$TMP/got"
diff "$TMP/want" "$TMP/got" >"$TMP/diff" || fail "problems: $(cat "$TMP/diff")"

# what fits passes, and runs
sed -e 's/"{{ inputs.n }}", "n=/"{{ tostring(inputs.n) }}", "n=/' -e '/stdout_max/d' \
    -e '/kill_grace_ms/d' "$TMP/ty.yaml" >"$TMP/ok.yaml"
run "$CBX" validate "$TMP/ok.yaml"
expect_rc 0 "fitting templates: $(cat "$TMP/err")"
run "$CBX" run --no-journal -q "$TMP/ok.yaml"
expect_rc 0 "the fitting flow runs: $(cat "$TMP/err")"

# functions no template can call (they would fail when rendered); when: always() is the runner's
cat >"$TMP/uh.yaml" <<'YAML'
name: uh
inputs:
  - {name: s, type: string, default: "x"}
steps:
  - name: a
    executor: command
    config: {argv: [echo, "{{ upper(inputs.s) }}", "{{ inputs.s:upper() }}", "{{ string.len(inputs.s) > 0 }}"]}
  - name: b
    executor: command
    needs: a
    when: always()
    config: {argv: [echo, "{{ defualt(inputs.s, 'q') }}"]}
outputs:
  o: "{{ jsn(steps.a.outputs) }}"
YAML
run "$CBX" validate "$TMP/uh.yaml"
expect_rc 2 "unknown helpers"
cat >"$TMP/want" <<EOF
$TMP/uh.yaml:7:27: step 'a': config.argv[1]: unknown helper 'upper'
$TMP/uh.yaml:12:27: step 'b': config.argv[1]: unknown helper 'defualt'; did you mean 'default'?
$TMP/uh.yaml:14:3: outputs: o: unknown helper 'jsn'; did you mean 'json'?
EOF
grep "^$TMP/uh.yaml:" "$TMP/err" >"$TMP/got"
diff "$TMP/want" "$TMP/got" >"$TMP/diff" || fail "unknown helpers: $(cat "$TMP/diff")"
exit 0
