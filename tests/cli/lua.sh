# Executor types defined in Lua files: listed, run with typed parameters, bad files refused.
. "$(dirname "$0")/lib.bash"

cat >"$TMP/words.lua" <<'LUA'
return executor {
  name = "word_count",
  summary = "Counts the words of a text",
  params = {
    text = {type = "string", required = true, description = "the text"},
    min = {type = "integer", default = 0, min = 0},
  },
  run = function(p, ctx)
    local n = 0
    for _ in string.gmatch(p.text, "%S+") do n = n + 1 end
    if n < p.min then return nil, "only " .. n .. " words" end
    return {words = n}
  end,
}
LUA

run "$CBX" types --lua "$TMP/words.lua"
expect_rc 0 "types --lua"
grep -q "^word_count .*no .*Counts the words" "$TMP/out" || fail "not listed: $(cat "$TMP/out")"

run "$CBX" types word_count --lua "$TMP/words.lua" --json
expect_rc 0 "the Lua type's schema"
[ "$(jqv .properties.min.type)" = "integer" ] || fail "schema: $(cat "$TMP/out")"

run "$CBX" exec --lua "$TMP/words.lua" word_count -p text='three little words'
expect_rc 0 "a run of the Lua type"
[ "$(jqv .words)" = "3" ] || fail "outputs: $(cat "$TMP/out")"

# an integer parameter is typed from the command line
run "$CBX" exec --lua "$TMP/words.lua" word_count -p text='two words' -p min=5
expect_rc 1 "a failing run"
expect_err_line "only 2 words" "the failure line"
run "$CBX" exec --lua "$TMP/words.lua" word_count -p text=x -p min=lots
expect_rc 2 "a mistyped integer"
expect_err_line "parameter 'min': expected integer, got string \"lots\"" "mistyped line"

# from $CBX_LUA_PATH, and from a directory
mkdir -p "$TMP/lua"
cp "$TMP/words.lua" "$TMP/lua/"
CBX_LUA_PATH="$TMP/words.lua" run "$CBX" exec word_count -p text='a b'
expect_rc 0 "CBX_LUA_PATH"
[ "$(jqv .words)" = "2" ] || fail "CBX_LUA_PATH outputs: $(cat "$TMP/out")"
run "$CBX" types --lua "$TMP/lua"
grep -q "^word_count " "$TMP/out" || fail "a directory of Lua files: $(cat "$TMP/out")"

# bad files: unreadable, a syntax error, a bad definition; each exit 2, one line naming it
run "$CBX" exec --lua "$TMP/missing.lua" word_count
expect_rc 2 "a missing Lua file"
expect_err_line "missing.lua" "missing file line"
printf 'return executor {\n  name = "x",\n  run = function(p) return 1 end\n' >"$TMP/syntax.lua"
run "$CBX" types --lua "$TMP/syntax.lua"
expect_rc 2 "a Lua syntax error"
expect_err_line "syntax.lua" "syntax error line"
cat >"$TMP/badtype.lua" <<'LUA'
return executor {
  name = "bad",
  params = {text = {type = "strng"}},
  run = function(p) return 1 end,
}
LUA
run "$CBX" types --lua "$TMP/badtype.lua"
expect_rc 2 "a Lua type with a bad parameter type"
expect_err_line "badtype.lua" "bad definition line"
grep -q "strng" "$TMP/err" || fail "the bad field is not named: $(cat "$TMP/err")"
echo "ok [$TEST]"
