# cbx exec serverless against serverless-offline 13 (serverless 3), an independent implementation
# of the Lambda Invoke API on loopback (installed from npm into $CBX_NPM_CACHE the first time):
# an answer, a function error with its payload, a function that does not exist, an Event
# invocation, a function past its own timeout, cbx's timeout stopping a call, bad parameters,
# and the secret key kept out of the journal.
. "$(dirname "$0")/lib.bash"

cache=${CBX_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cbx-npm}
dir=$cache/serverless-offline-13
sls=$dir/node_modules/serverless/bin/serverless.js
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "skip: node and npm are needed (scripts/deps test installs them)"
    exit 77
fi
if [ ! -f "$sls" ] || [ ! -d "$dir/node_modules/serverless-offline" ]; then
    mkdir -p "$dir"
    echo "installing serverless@3 and serverless-offline@13 into $dir" >&2
    if ! (cd "$dir" && npm install --no-audit --no-fund --prefix . serverless@3 \
        serverless-offline@13 >npm.log 2>&1) || [ ! -f "$sls" ]; then
        echo "skip: npm could not install serverless-offline (see $dir/npm.log)"
        exit 77
    fi
fi
cp -r "$(dirname "$0")/../serverless" "$TMP/svc"
ln -s "$dir/node_modules" "$TMP/svc/node_modules"
spid=""
trap 'kill $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in 1 2 3 4 5; do
    export CBX_LAMBDA_PORT=$((20000 + RANDOM % 30000)) CBX_LAMBDA_HTTP_PORT=$((20000 + RANDOM % 30000))
    (cd "$TMP/svc" && exec node "$sls" offline start >"$TMP/sls.log" 2>&1) &
    spid=$!
    deadline=$(($(date +%s) + 300))
    while ! grep -q "listening on" "$TMP/sls.log" 2>/dev/null && kill -0 $spid 2>/dev/null &&
        [ "$(date +%s)" -lt "$deadline" ]; do
        sleep 0.2
    done
    grep -q "listening on" "$TMP/sls.log" && break
    kill $spid 2>/dev/null
    wait $spid 2>/dev/null
    spid=""
done
[ -n "$spid" ] || fail "serverless-offline did not start: $(tail -5 "$TMP/sls.log")"
export AWS_ACCESS_KEY_ID=cbx-test AWS_SECRET_ACCESS_KEY=s3cr3t-k3y AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:$CBX_LAMBDA_PORT

run "$CBX" exec serverless -p function_name=cbx-test-dev-echo -p 'payload={"n":1}'
expect_rc 0 "an answer"
[ "$(jqv .payload.echo.n)" = 1 ] && [ "$(jqv .status_code)" = 200 ] || fail "answer: $(cat "$TMP/out")"

run "$CBX" exec serverless -p function_name=cbx-test-dev-fail --json
expect_rc 1 "a function error"
[ "$(jqv .outputs.function_error)" = Unhandled ] && [ "$(jqv .outputs.payload.errorMessage)" = boom ] ||
    fail "function error: $(cat "$TMP/out")"
expect_err_line "function cbx-test-dev-fail failed (Unhandled): Error: boom" "function error line"

run "$CBX" exec serverless -p function_name=cbx-test-dev-nope
expect_rc 1 "a function that does not exist"
expect_err_line "function cbx-test-dev-nope does not exist (HTTP 404" "missing function line"

run "$CBX" exec serverless -p function_name=cbx-test-dev-echo -p invocation_type=Event
expect_rc 0 "an Event invocation"
[ "$(jqv .status_code)" = 202 ] || fail "event: $(cat "$TMP/out")"

run "$CBX" exec serverless -p function_name=cbx-test-dev-slow
expect_rc 1 "a function past its own timeout"
grep -q "Lambda timeout" "$TMP/err" || fail "function timeout: $(cat "$TMP/err")"
run "$CBX" exec serverless -p function_name=cbx-test-dev-slow --timeout 300ms
expect_rc 124 "cbx's timeout stops the call"

run "$CBX" exec serverless -p function_name=cbx-test-dev-echo -p 'payload={bad'
expect_rc 2 "a payload that is not JSON"
expect_err_line "parameter 'payload': not JSON" "payload line"
run "$CBX" exec serverless -p 'function_name=a b'
expect_rc 2 "a bad function name"
expect_err_line "is not a function name or ARN" "function name line"
AWS_ACCESS_KEY_ID= run "$CBX" exec serverless -p function_name=cbx-test-dev-echo
expect_rc 1 "no credentials"
expect_err_line "no credentials" "credentials line"

"$CBX" history --json >"$TMP/hist"
grep -q s3cr3t-k3y "$TMP/hist" "$CBX_STATE_DIR"/journal.db* && fail "the secret key is in the journal"
run "$CBX" exec serverless -p function_name=cbx-test-dev-echo -p secret_access_key=p4ram-s3cret
expect_rc 0 "a secret key given as a parameter"
"$CBX" history --json >"$TMP/hist"
grep -q p4ram-s3cret "$TMP/hist" "$CBX_STATE_DIR"/journal.db* && fail "the parameter's secret is in the journal"
echo "ok [$TEST]"
