# Hostile input: endless files are read up to the input limit (CBX_MAX_INPUT) and refused (as
# YAML, /dev/zero stops at its first byte); a second YAML document and duplicate keys in JSON
# inputs are refused with their position; an expression that starts with a number validates (it
# read a byte before the text: ASan aborted).
. "$(dirname "$0")/lib.bash"

printf 'name: b\ninputs:\n  - name: n\n    type: integer\nsteps:\n  - name: a\n    executor: command\n    config: {argv: ["true"]}\n    when: "1 == 1"\n' >"$TMP/f.yaml"

run "$CBX" validate "$TMP/f.yaml"
expect_rc 0 "a when: that starts with a number"

# /dev/zero, as the flow and as an input: the limit, then a refusal naming it
export CBX_MAX_INPUT=1M
run "$CBX" validate /dev/zero
expect_rc 2 "validate /dev/zero"
expect_err_line "/dev/zero:1:1: control characters are not allowed" "validate /dev/zero"
yes -- '- x' | "$CBX" validate /dev/stdin >"$TMP/out" 2>"$TMP/err"
rc=$?
expect_rc 2 "validate an endless pipe"
expect_err_line "/dev/stdin: larger than 1048576 bytes, the limit on input (CBX_MAX_INPUT raises it)" \
    "validate an endless pipe"
run "$CBX" run "$TMP/f.yaml" -i n=@/dev/zero
expect_rc 2 "-i n=@/dev/zero"
expect_err_line "-i n: cannot read '/dev/zero': larger than 1048576 bytes" "-i n=@/dev/zero"
run "$CBX" exec command -p argv='["true"]' -p stdin=@/dev/zero
expect_rc 2 "-p stdin=@/dev/zero"
expect_err_line "-p stdin: cannot read '/dev/zero': larger than 1048576 bytes" "-p stdin=@/dev/zero"
# a file just under the limit is read
head -c 1000000 /dev/zero | tr '\0' 'x' >"$TMP/big.txt"
run "$CBX" exec command -p argv='["wc", "-c"]' -p stdin=@"$TMP/big.txt" --json
expect_rc 0 "-p stdin= a file under the limit"
grep -q 1000000 "$TMP/out" || fail "under the limit: $(head -c 300 "$TMP/out")"
CBX_MAX_INPUT=64x run "$CBX" validate "$TMP/f.yaml"
expect_rc 2 "CBX_MAX_INPUT=64x"
expect_err_line "CBX_MAX_INPUT: expected a size in bytes" "CBX_MAX_INPUT=64x"
unset CBX_MAX_INPUT

# a second document is refused where it starts
{ cat "$TMP/f.yaml"; printf -- '---\nname: other\n'; } >"$TMP/two.yaml"
run "$CBX" validate "$TMP/two.yaml"
expect_rc 2 "a second document"
expect_err_line "$TMP/two.yaml:10:1: a second document (after ---): a file holds one document" \
    "a second document"

# duplicate keys in JSON inputs, with the line and column
printf '{"n": 1}\n{"n": 2, "n": 3}\n' >"$TMP/in.jsonl"
run "$CBX" run "$TMP/f.yaml" --batch "$TMP/in.jsonl"
expect_rc 2 "--batch with a duplicate key"
grep -q "^$TMP/in.jsonl:2:[0-9]*: not valid JSON: duplicate object key" "$TMP/err" ||
    fail "--batch duplicate key: $(cat "$TMP/err")"
run "$CBX" run "$TMP/f.yaml" --inputs-json '{"n": 1, "n": 2}'
expect_rc 2 "--inputs-json with a duplicate key"
expect_err_line "--inputs-json: not valid JSON: duplicate object key" "--inputs-json duplicate key"
