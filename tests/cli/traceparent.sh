# W3C trace context: when cbx runs inside a trace (TRACEPARENT in its environment), each attempt
# is a span of that trace - a command finds it in TRACEPARENT, an HTTP request carries it as
# the traceparent header - and nothing is added when it does not.
. "$(dirname "$0")/lib.bash"
unset TRACEPARENT OTEL_EXPORTER_OTLP_ENDPOINT

run "$CBX" exec -- sh -c 'echo "${TRACEPARENT:-none}"'
expect_rc 0 "outside a trace"
[ "$(cat "$TMP/out")" = none ] || fail "a TRACEPARENT outside a trace: $(cat "$TMP/out")"

trace=4bf92f3577b34da6a3ce929d0e0e4736
export TRACEPARENT="00-$trace-00f067aa0ba902b7-01"
run "$CBX" exec --retries 1 --retry-delay 10ms -- sh -c "echo \"\$TRACEPARENT\" >>'$TMP/spans'; exit 1"
expect_rc 1 "two attempts"
[ "$(wc -l <"$TMP/spans")" = 2 ] || fail "attempts: $(cat "$TMP/spans")"
grep -Eq "^00-$trace-[0-9a-f]{16}-01\$" "$TMP/spans" || fail "not a span of the trace: $(cat "$TMP/spans")"
[ "$(sort -u "$TMP/spans" | wc -l)" = 2 ] || fail "both attempts have one span: $(cat "$TMP/spans")"
grep -q 00f067aa0ba902b7 "$TMP/spans" && fail "the parent's span id was passed on as the child's"

# the env parameter wins
run "$CBX" exec command -p 'argv=["sh","-c","echo $TRACEPARENT"]' -p 'env={"TRACEPARENT":"mine"}'
[ "$(jqv .stdout)" = "mine" ] || fail "env parameter: $(cat "$TMP/out")"

# an HTTP request carries it; a header given wins
start_http_server || fail "the http server did not start"
run "$CBX" exec http -p url="$url/echo"
expect_rc 0 "GET /echo"
jqv '.json.headers.traceparent' | grep -Eq "^00-$trace-[0-9a-f]{16}-01\$" ||
    fail "traceparent header: $(cat "$TMP/out")"
run "$CBX" exec http -p url="$url/echo" -p 'headers={"traceparent": "given"}'
[ "$(jqv '.json.headers.traceparent')" = given ] || fail "given header: $(cat "$TMP/out")"
echo "ok [$TEST]"
