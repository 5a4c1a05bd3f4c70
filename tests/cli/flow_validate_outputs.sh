# cbx validate refuses references to outputs a step's executor type never produces (as its
# declaration says: `cbx types http`), at the file:line:col of the value, with a suggestion; a
# declared or optional output, a fallback's literal keys, and types that declare no outputs pass.
. "$(dirname "$0")/lib.bash"

cat >"$TMP/out.yaml" <<'YAML'
name: outs
inputs:
  - {name: url, type: string, default: "http://127.0.0.1:1/"}
steps:
  - name: fetch
    executor: http
    config: {url: "{{ inputs.url }}"}
  - name: words
    executor: command
    config: {argv: [wc, -w], stdin: "{{ steps.fetch.outputs.bdy }}"}
  - name: report
    executor: command
    when: "tonumber(steps.words.outputs.stdot) > 0"
    config:
      argv: [echo, "{{ steps.words.outputs.stdout }}", "{{ steps.fetch.outputs.json }}"]
  - name: safe
    executor: http
    policy: {fallback: {value: {body: "", stale: true}}}
    config: {url: "{{ inputs.url }}"}
  - name: chaos
    executor: chaos
    config: {outputs: {anything: 1}}
outputs:
  stale: "{{ steps.safe.outputs.stale }} {{ steps.chaos.outputs.anything }}"
  code: "{{ steps['words']['outputs']['exit_cod'] }}"
YAML
run "$CBX" validate "$TMP/out.yaml"
expect_rc 2 "references to outputs never produced"
cat >"$TMP/want" <<EOF
$TMP/out.yaml:10:30: step 'words': config.stdin: step 'fetch' (http) has no output 'bdy'; did you mean 'body'?
$TMP/out.yaml:13:5: step 'report': when: step 'words' (command) has no output 'stdot'; did you mean 'stdout'?
$TMP/out.yaml:25:3: outputs: code: step 'words' (command) has no output 'exit_cod'; did you mean 'exit_code'?
EOF
grep "^$TMP/out.yaml:" "$TMP/err" >"$TMP/got"
diff "$TMP/want" "$TMP/got" >"$TMP/diff" || fail "problems: $(cat "$TMP/diff")"

# fixed, it validates; `run` refuses the broken file before running anything
sed -e 's/outputs.bdy/outputs.body/' -e 's/stdot/stdout/' -e 's/exit_cod/exit_code/' \
    "$TMP/out.yaml" >"$TMP/fixed.yaml"
run "$CBX" validate "$TMP/fixed.yaml"
expect_rc 0 "the fixed flow: $(cat "$TMP/err")"
run "$CBX" run "$TMP/out.yaml"
expect_rc 2 "run of the broken flow"
grep -q "has no output 'bdy'" "$TMP/err" || fail "run did not say why: $(cat "$TMP/err")"
echo "ok [$TEST]"
