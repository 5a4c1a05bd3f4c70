# cbx exec TYPE against a real HTTP server on loopback: outputs, retries, failures, fallbacks,
# typed and file parameters, and secrets kept out of the journal.
. "$(dirname "$0")/lib.bash"

start_http_server || fail "the http server did not start"

run "$CBX" exec http -p url="$url/ok"
expect_rc 0 "GET /ok"
[ "$(jqv .status)" = "200" ] || fail "outputs: $(cat "$TMP/out")"
[ "$(jqv .json.ok)" = "true" ] || fail "parsed body: $(cat "$TMP/out")"

# retried until the flaky endpoint answers: 3 attempts
run "$CBX" exec http -p url="$url/flaky?fail=2&key=cli" --retries 3 --retry-delay 10ms --json
expect_rc 0 "flaky endpoint with retries"
[ "$(jqv .attempt_count)" = "3" ] || fail "attempts: $(jqv .attempt_count)"

# a 500 fails: exit 1, one line saying so
run "$CBX" exec http -p url="$url/status/500" --retries 1 --retry-delay 10ms
expect_rc 1 "GET /status/500"
expect_err_line "failed after 2 attempts" "the failure line"

# the fallback answers instead: exit 0, the fallback's value printed
run "$CBX" exec http -p url="$url/status/500" --fallback '{"body":"spare"}'
expect_rc 0 "a fallback for a 500"
[ "$(jqv .body)" = "spare" ] || fail "fallback output: $(cat "$TMP/out")"

# typed parameters: a JSON body, an object of headers, an integer, a body from a file
run "$CBX" exec http -p url="$url/echo" -p json='{"n":1}' -p headers='{"X-Test":"yes"}' \
    -p max_redirects=2
expect_rc 0 "POST /echo with typed parameters"
[ "$(jqv .json.json.n)" = "1" ] || fail "json body: $(cat "$TMP/out")"
[ "$(jqv '.json.headers["x-test"]')" = "yes" ] || fail "header: $(cat "$TMP/out")"
printf 'from a file' >"$TMP/body.txt"
run "$CBX" exec http -p url="$url/echo" -p method=POST -p body=@"$TMP/body.txt"
expect_rc 0 "POST /echo with body=@file"
[ "$(jqv .json.body)" = "from a file" ] || fail "file body: $(cat "$TMP/out")"
printf '{"url":"%s/echo","method":"PUT"}' "$url" >"$TMP/params.json"
run "$CBX" exec http --params-json "$(cat "$TMP/params.json")" -p method=PATCH
expect_rc 0 "--params-json with a -p override"
[ "$(jqv .json.method)" = "PATCH" ] || fail "-p did not override --params-json"

# a boolean parameter given something else
run "$CBX" exec http -p url="$url/ok" -p verify_tls=maybe
expect_rc 2 "a boolean given 'maybe'"
expect_err_line "parameter 'verify_tls': expected boolean, got string \"maybe\"" "boolean line"

# a secret parameter never reaches the journal
run "$CBX" exec http -p url="$url/auth" -p bearer_token=s3cr3t-t0ken
expect_rc 0 "GET /auth with a bearer token"
"$CBX" history --json >"$TMP/hist"
grep -q "s3cr3t-t0ken" "$TMP/hist" && fail "the secret is in the journal"
grep -q "s3cr3t-t0ken" "$CBX_STATE_DIR"/journal.db* && fail "the secret is in the journal file"
run "$CBX" stats --by executor --json
[ "$(jqv .http.executions)" = "9" ] || fail "http executions: $(cat "$TMP/out")"
echo "ok [$TEST]"
