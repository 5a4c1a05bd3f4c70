# Options that would be silently ignored are refused: a zero --timeout or --deadline (leave it
# out for no limit), a --plugin-path entry that is neither a directory nor a .so plugin.
. "$(dirname "$0")/lib.bash"

for flag in --timeout --deadline; do
    for zero in 0 0s PT0S; do
        run "$CBX" exec "$flag" "$zero" -- true
        expect_rc 2 "$flag $zero"
        expect_err_line "$flag: must be greater than zero (leave it out for no limit)" "$flag $zero"
    done
done
run "$CBX" exec --timeout 1h30m -- true
expect_rc 0 "a compound duration"

printf 'not a plugin\n' >"$TMP/notes.txt"
run "$CBX" exec --plugin-path "$TMP/notes.txt" -- true
expect_rc 2 "--plugin-path to a text file"
expect_err_line "plugin path '$TMP/notes.txt': not a directory or a .so file" "the message"
cp "$TMP/notes.txt" "$TMP/fake.so"
run "$CBX" exec --plugin-path "$TMP/fake.so" -- true
expect_rc 2 "--plugin-path to a .so that is not a plugin"
grep -q "cannot load plugin" "$TMP/err" || fail "the message: $(cat "$TMP/err")"
run "$CBX" exec --plugin-path "$TMP/missing" -- true
expect_rc 2 "--plugin-path to nothing"
mkdir "$TMP/plugins"
run "$CBX" exec --plugin-path "$TMP/plugins" -- true
expect_rc 0 "an empty plugin directory"
exit 0
