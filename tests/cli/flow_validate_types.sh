# cbx validate refuses templated values whose type cannot match their parameter (they would fail
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
exit 0
