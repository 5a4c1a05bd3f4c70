# Retry decisions that look at what happened, not only its kind: HTTP statuses
# (retry.on_status; by default a 4xx other than 408 and 429 is not retried) and command exit
# codes (retry.on_exit_code), against a real loopback HTTP server and real commands.
. "$(dirname "$0")/lib.bash"

start_http_server || fail "the http server did not start"

attempts() {
    run "$CBX" exec --json "$@"
    jqv '.attempts | length'
}

# by default a 404 is not retried, a 503 and a 408 are
[ "$(attempts http -p url="$url/status/404" --retries 2 --retry-delay 1ms)" = "1" ] ||
    fail "a 404 was retried: $(cat "$TMP/out")"
[ "$(attempts http -p url="$url/status/408" --retries 2 --retry-delay 1ms)" = "3" ] ||
    fail "a 408 was not retried"
[ "$(attempts http -p url="$url/status/500" --retries 2 --retry-delay 1ms)" = "3" ] ||
    fail "a 500 was not retried"

# retry.on_status lists what is worth a retry, and only that
pol='{"retry":{"attempts":3,"initial":"1ms","on_status":[502,503,504,404]}}'
[ "$(attempts http -p url="$url/status/404" --policy-json "$pol")" = "3" ] ||
    fail "a listed 404 was not retried"
[ "$(attempts http -p url="$url/status/500" --policy-json "$pol")" = "1" ] ||
    fail "an unlisted 500 was retried"

# exit codes of commands
pol='{"retry":{"attempts":3,"initial":"1ms","on_exit_code":[75]}}'
[ "$(attempts --policy-json "$pol" -- sh -c 'exit 75')" = "3" ] || fail "exit 75 was not retried"
[ "$(attempts --policy-json "$pol" -- sh -c 'exit 1')" = "1" ] || fail "exit 1 was retried"
run "$CBX" exec --policy-json "$pol" -- sh -c 'exit 1'
expect_rc 1 "the command's own code"

# bad lists are refused with the key's path
run "$CBX" exec --policy-json '{"retry":{"on_status":[99]}}' -- true
expect_rc 2 "a status out of range"
expect_err_line "retry.on_status[0]: expected an integer from 100 to 599, got 99" "the message"
run "$CBX" exec --policy-json '{"retry":{"on_exit_code":"75"}}' -- true
expect_rc 2 "not a list"
exit 0
