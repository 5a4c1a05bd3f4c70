# A Lua executor type may declare its outputs (`outputs = {...}`, shaped like params): `cbx types`
# shows them, flows refuse references to others, and a run that breaks the promise fails.
. "$(dirname "$0")/lib.bash"

cat >"$TMP/count.lua" <<'LUA'
return executor {
  name = "count",
  params = {text = {type = "string", required = true}, lie = {type = "boolean", default = false}},
  outputs = {
    words = {type = "integer", description = "how many words"},
    first = {type = "string", optional = true, nullable = true, description = "the first word"},
  },
  run = function(p)
    local n, first = 0, nil
    for w in string.gmatch(p.text, "%S+") do n = n + 1; first = first or w end
    if p.lie then return {words = n, chars = #p.text} end
    return {words = n, first = first}
  end,
}
LUA

run "$CBX" types count --lua "$TMP/count.lua"
expect_rc 0 "types count"
grep -Eq "^words +integer +yes +how many words" "$TMP/out" || fail "outputs table: $(cat "$TMP/out")"
grep -Eq "^first +string or null +no " "$TMP/out" || fail "outputs table: $(cat "$TMP/out")"
run "$CBX" types --lua "$TMP/count.lua" --json
[ "$(jqv '[.[] | select(.name == "count")][0].outputs.required | join(",")')" = "words" ] ||
    fail "types --json: $(cat "$TMP/out")"

run "$CBX" exec --lua "$TMP/count.lua" count -p text='two words'
expect_rc 0 "a run that keeps the promise"
[ "$(jqv .words)" = "2" ] || fail "outputs: $(cat "$TMP/out")"
run "$CBX" exec --lua "$TMP/count.lua" count -p text='two words' -p lie=true
expect_rc 1 "a run that breaks it"
expect_err_line "run returned outputs its definition does not declare: 'chars' is not declared" \
    "the broken promise"

cat >"$TMP/flow.yaml" <<'YAML'
name: f
requires: {lua: [count.lua]}
steps:
  - {name: c, executor: count, config: {text: "a b c"}}
outputs:
  n: "{{ steps.c.outputs.words }} {{ steps.c.outputs.first }}"
  m: "{{ steps.c.outputs.word }}"
YAML
run "$CBX" validate "$TMP/flow.yaml"
expect_rc 2 "a reference the Lua type never produces"
expect_err_line "flow.yaml:7:3: outputs: m: step 'c' (count) has no output 'word'; did you mean 'words'?" \
    "the problem line"

# a bad declaration is refused with its place
cat >"$TMP/bad.lua" <<'LUA'
return executor {
  name = "bad",
  outputs = {x = {type = "strng"}},
  run = function() return {} end,
}
LUA
run "$CBX" types --lua "$TMP/bad.lua"
expect_rc 2 "a bad outputs declaration"
grep -q "outputs.x.type: unknown type 'strng'" "$TMP/err" || fail "the refusal: $(cat "$TMP/err")"
echo "ok [$TEST]"
