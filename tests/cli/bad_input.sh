# Bad input: exit 2 with one line naming the thing, and nothing in the journal but the
# refusal.
. "$(dirname "$0")/lib.bash"

hist_count() {
    "$CBX" history --json --limit 1000 | jq length
}

run "$CBX" exec nosuchtype
expect_rc 2 "an unknown executor type"
expect_err_line "unknown executor type 'nosuchtype'" "unknown type line"
run "$CBX" history --json
expect_rc 0 "history after the refusal"
[ "$(jqv length)" = "1" ] || fail "the journal holds more than the refusal: $(cat "$TMP/out")"
[ "$(jqv '.[0].status')" = "rejected" ] || fail "not a refusal: $(cat "$TMP/out")"
[ "$(jqv '.[0].executor')" = "nosuchtype" ] || fail "refusal executor: $(cat "$TMP/out")"
[ "$(jqv '.[0].attempts')" = "0" ] || fail "a refusal made attempts: $(cat "$TMP/out")"

run "$CBX" exec htp -p url=http://localhost/
expect_rc 2 "a misspelt type"
expect_err_line "did you mean 'http'?" "suggestion for htp"

# a mistyped parameter: stdout_max is an integer
run "$CBX" exec -p stdout_max=fast -- true
expect_rc 2 "a mistyped parameter"
expect_err_line "parameter 'stdout_max': expected integer, got string \"fast\"" "mistyped line"
# a value the type's own check refuses: the parameter is named once
run "$CBX" exec http -p url=notaurl
expect_rc 2 "a URL that is not one"
expect_err_line "cbx: exec: parameter 'url': not a valid URL" "bad URL line"
# an unknown parameter
run "$CBX" exec -p cwdd=/tmp -- true
expect_rc 2 "an unknown parameter"
expect_err_line "unknown parameter 'cwdd'" "unknown parameter line"
# an array parameter given text that is not JSON
run "$CBX" exec command -p argv='[1,'
expect_rc 2 "an array parameter that is not JSON"
expect_err_line "parameter 'argv'" "bad JSON line"
# each refusal was journaled, and nothing ran
[ "$(hist_count)" = "6" ] || fail "expected 6 refusals in the journal, got $(hist_count)"
run "$CBX" stats --json
[ "$(jqv .rejected)" = "6" ] || fail "stats rejected: $(cat "$TMP/out")"
[ "$(jqv .successes + .failures)" = "0" ] || fail "something ran: $(cat "$TMP/out")"

# bad flag values: nothing is submitted, nothing journaled
run "$CBX" exec --timeout soon -- true
expect_rc 2 "a bad --timeout"
expect_err_line "cbx: --timeout: expected a duration like 250ms or 5s, got 'soon'" "timeout line"
run "$CBX" exec --retries many -- true
expect_rc 2 "a bad --retries"
expect_err_line "--retries" "retries line"
run "$CBX" exec --backoff expo -- true
expect_rc 2 "a bad --backoff"
expect_err_line "did you mean 'exponential'?" "backoff line"
run "$CBX" exec --retry-on errors -- true
expect_rc 2 "a bad --retry-on"
expect_err_line "'errors'" "retry-on line"
run "$CBX" exec --rate fast -- true
expect_rc 2 "a bad --rate"
expect_err_line "--rate" "rate line"
run "$CBX" exec --fallback '{oops' -- true
expect_rc 2 "a bad --fallback"
expect_err_line "--fallback" "fallback line"
run "$CBX" exec --policy-json '{"retry":{"backof":"fixed"}}' -- true
expect_rc 2 "an unknown --policy-json key"
expect_err_line "unknown key 'backof'" "policy key line"
grep -q "did you mean 'backoff'" "$TMP/err" || fail "no suggestion: $(cat "$TMP/err")"
run "$CBX" exec --policy-json '{"timeout":"soon"}' -- true
expect_rc 2 "a bad --policy-json value"
expect_err_line "timeout" "policy value line"
run "$CBX" exec --policy "$TMP/nonexistent.json" -- true
expect_rc 2 "an unreadable --policy file"
expect_err_line "nonexistent.json" "policy file line"
run "$CBX" exec --timout 1s -- true
expect_rc 2 "an unknown option"
expect_err_line "unknown option '--timout' (did you mean '--timeout'?)" "unknown option line"
run "$CBX" exec -p noequals -- true
expect_rc 2 "-p without ="
expect_err_line "key=value" "-p line"
run "$CBX" exec -p stdin=@"$TMP/nonexistent" -- true
expect_rc 2 "an unreadable -p @file"
expect_err_line "nonexistent" "-p @file line"
run "$CBX" exec
expect_rc 2 "exec with nothing to run"
run "$CBX" exec --
expect_rc 2 "exec with nothing after --"
run "$CBX" nosuchcommand
expect_rc 2 "an unknown subcommand"
expect_err_line "unknown command 'nosuchcommand'" "unknown command line"

# plugins: an unreadable path, a file that is not a plugin, a plugin of another ABI
run "$CBX" exec --plugin-path "$TMP/missing.so" -- true
expect_rc 2 "an unreadable plugin"
expect_err_line "missing.so" "unreadable plugin line"
echo "not a shared object" >"$TMP/fake.so"
run "$CBX" exec --plugin-path "$TMP/fake.so" -- true
expect_rc 2 "a file that is not a plugin"
expect_err_line "fake.so" "not a plugin line"
plugins="$(dirname "$CBX")/../tests"
if [ -e "$plugins/plugin_bad_abi.so" ]; then
    run "$CBX" exec --plugin-path "$plugins/plugin_bad_abi.so" -- true
    expect_rc 2 "a plugin of another ABI"
    expect_err_line "ABI" "ABI line"
    grep -q "plugin_bad_abi.so" "$TMP/err" || fail "the ABI line does not name the file"
fi
if [ -e "$plugins/plugin_good.so" ]; then
    run "$CBX" types --plugin-path "$plugins/plugin_good.so" --json
    expect_rc 0 "types with a good plugin"
    [ "$(jqv '[.[] | select(.builtin == false)] | length')" -ge 1 ] ||
        fail "the plugin's types are not listed: $(cat "$TMP/out")"
fi

# none of the flag errors reached the journal: still only the 6 refusals
[ "$(hist_count)" = "6" ] || fail "bad flags reached the journal: $(hist_count) executions"
echo "ok [$TEST]"
