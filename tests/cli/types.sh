# cbx types: the list, one type's parameters, its JSON Schema.
. "$(dirname "$0")/lib.bash"

run "$CBX" types
expect_rc 0 "types"
grep -q "^command " "$TMP/out" || fail "types does not list command: $(cat "$TMP/out")"
grep -q "^http " "$TMP/out" || fail "types does not list http: $(cat "$TMP/out")"

run "$CBX" types --json
expect_rc 0 "types --json"
[ "$(jqv '[.[] | select(.name == "command")][0].builtin')" = "true" ] ||
    fail "command is not a built-in: $(cat "$TMP/out")"

run "$CBX" types command
expect_rc 0 "types command"
grep -q "^argv " "$TMP/out" || fail "the argv parameter is missing: $(cat "$TMP/out")"
grep -q "REQUIRED" "$TMP/out" || fail "no REQUIRED column"

run "$CBX" types command --json
expect_rc 0 "types command --json"
[ "$(jqv .type)" = "object" ] || fail "schema type: $(cat "$TMP/out")"
jqv '."$schema"' | grep -q "json-schema.org" || fail "no \$schema: $(cat "$TMP/out")"
[ "$(jqv .properties.argv.type)" = "array" ] || fail "argv is not an array in the schema"
[ "$(jqv .properties.argv.items.type)" = "string" ] || fail "argv items are not strings"
[ "$(jqv .additionalProperties)" = "false" ] || fail "additionalProperties is not false"

# the outputs each type declares (null: not declared), in the list and in one type's tables
run "$CBX" types --json
[ "$(jqv '[.[] | select(.name == "http")][0].outputs.properties.body.type')" = "string" ] ||
    fail "http's outputs: $(cat "$TMP/out")"
[ "$(jqv '[.[] | select(.name == "command")][0].outputs.required | join(",")')" = \
    "exit_code,signal,stdout,stderr" ] || fail "command's outputs: $(cat "$TMP/out")"
[ "$(jqv '[.[] | select(.name == "command")][0].outputs.properties.exit_code.type | join(",")')" = \
    "integer,null" ] || fail "a nullable output: $(cat "$TMP/out")"
[ "$(jqv '[.[] | select(.name == "function")][0].outputs')" = "null" ] ||
    fail "function declares no outputs: $(cat "$TMP/out")"
run "$CBX" types http
grep -q "^OUTPUT " "$TMP/out" || fail "no outputs table: $(cat "$TMP/out")"
grep -Eq "^body +string +yes " "$TMP/out" || fail "no body output: $(cat "$TMP/out")"
grep -Eq "^truncated +boolean +no " "$TMP/out" || fail "no truncated output: $(cat "$TMP/out")"
run "$CBX" types chaos
grep -q "^Outputs: not declared" "$TMP/out" || fail "chaos's outputs: $(cat "$TMP/out")"

run "$CBX" types htpp
expect_rc 2 "types with an unknown type"
expect_err_line "did you mean 'http'?" "types suggestion"
echo "ok [$TEST]"
