#!/usr/bin/env bash
# cbx serve's /v1 API over real HTTP: every endpoint, and bad input answered with RFC 9457
# problems naming the field (malformed JSON, unknown fields, wrong types, 413, 401, 404, 405).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"

start_server --max-body 4096
[ -n "$TOKEN" ] || fail "no token made in the state directory"
[ "$(stat -c %a "$CBX_STATE_DIR/serve.token")" = 600 ] || fail "serve.token is not 0600"

# ---- reads ----
req GET /v1/health
expect_code 200 health
[ "$(jqv .status)" = ok ] || fail "health: $(cat "$TMP/out")"
req GET /v1/types
expect_code 200 types
jqv '.types[].name' | grep -qx command || fail "types: no command"
req GET /v1/types/command
expect_code 200 "types/command"
[ "$(jqv '.schema.properties.argv.type')" = array ] || fail "command schema: $(cat "$TMP/out")"
[ "$(jqv '.schema.additionalProperties')" = false ] || fail "schema: additionalProperties"
req GET /v1/types/comand
expect_problem 404 name "unknown type"
req GET /
expect_code 200 dashboard
case "$ctype" in text/html*) ;; *) fail "dashboard content type $ctype" ;; esac
grep -q 'EventSource("/v1/events")' "$TMP/out" || fail "dashboard: no EventSource"
grep -Eq 'src="http|href="http' "$TMP/out" && fail "dashboard loads something from outside"

# ---- submit: synchronous ----
submit '{"type":"command","params":{"argv":["echo","hello"]}}'
expect_code 200 "sync submit"
[ "$(jqv .status)" = success ] || fail "sync: $(cat "$TMP/out")"
[ "$(jqv .outputs.stdout)" = hello ] || fail "sync stdout: $(jqv .outputs.stdout)"
id1=$(jqv .id)
req GET "/v1/executions/$id1"
expect_code 200 "get ended"
[ "$(jqv .status)" = success ] || fail "get $id1: $(cat "$TMP/out")"

# a failure is data: 200 with status failed
submit '{"type":"command","params":{"argv":["false"]},"policy":{"retry":{"attempts":2,"initial":"1ms"}}}'
expect_code 200 "failing submit"
[ "$(jqv .status)" = failed ] || fail "failing: $(cat "$TMP/out")"
[ "$(jqv .attempt_count)" = 2 ] || fail "retry: attempts $(jqv .attempt_count)"

# past the wait limit: 202 with the id, still running
submit '{"type":"command","params":{"argv":["sleep","30"]},"wait":"100ms"}'
expect_code 202 "wait limit"
slow=$(jqv .id)
[ "$(jqv .in_flight)" = true ] || fail "202 body: $(cat "$TMP/out")"

# a client that goes away while it waits: the execution goes on, the server is unharmed
curl -s -m 0.3 -H "$AUTH" -d '{"type":"command","params":{"argv":["sleep","1"]},"tag":"gone"}' \
    "$BASE/v1/executions" >/dev/null 2>&1
for _ in $(seq 600); do
    req GET '/v1/executions?tag=gone&status=success'
    [ "$(jqv '.executions | length')" = 1 ] && break
    sleep 0.1
done
[ "$(jqv '.executions | length')" = 1 ] || fail "the abandoned execution did not end: $(cat "$TMP/out")"
req GET /v1/health
expect_code 200 "health after a client left"

# ---- asynchronous, get, cancel ----
submit '{"type":"command","params":{"argv":["sleep","30"]},"mode":"async","tag":"api-test"}' -D "$TMP/headers"
expect_code 202 "async submit"
id2=$(jqv .id)
grep -qi "^location: /v1/executions/$id2" "$TMP/headers" || fail "no Location: $(cat "$TMP/headers")"
req GET "/v1/executions/$id2"
expect_code 200 "get in flight"
[ "$(jqv .status)" = running ] || fail "in flight: $(cat "$TMP/out")"
req GET /v1/executions/in-flight
expect_code 200 in-flight
jqv '.executions[].id' | grep -qx "$id2" || fail "in-flight lacks $id2"
req POST "/v1/executions/$id2/cancel"
expect_problem 401 "" "cancel without a token"
req POST "/v1/executions/$id2/cancel" -H "$AUTH"
expect_code 202 cancel
for _ in $(seq 600); do
    req GET "/v1/executions/$id2"
    [ "$(jqv .status)" = cancelled ] && break
    sleep 0.1
done
[ "$(jqv .status)" = cancelled ] || fail "not cancelled: $(cat "$TMP/out")"
req POST "/v1/executions/$id2/cancel" -H "$AUTH"
expect_problem 409 id "cancel an ended one"
req POST "/v1/executions/$slow/cancel" -H "$AUTH"
expect_code 202 "cancel the slow one"
req POST /v1/executions/no-such-id/cancel -H "$AUTH"
expect_problem 404 id "cancel unknown"
req GET /v1/executions/no-such-id
expect_problem 404 id "get unknown"

# ---- history and statistics ----
req GET '/v1/executions?tag=api-test&status=cancelled'
expect_code 200 "history filter"
[ "$(jqv '.executions | length')" = 1 ] || fail "filter: $(cat "$TMP/out")"
[ "$(jqv '.executions[0].id')" = "$id2" ] || fail "filter id"
req GET '/v1/executions?executor=command&limit=2'
[ "$(jqv '.executions | length')" = 2 ] || fail "limit: $(jqv '.executions | length')"
req GET '/v1/executions?status=bogus'
expect_problem 400 status "bad status"
req GET '/v1/executions?limit=ten'
expect_problem 400 limit "bad limit"
req GET '/v1/executions?colour=red'
expect_problem 400 colour "unknown query parameter"
req GET '/v1/stats?group_by=executor'
expect_code 200 stats
[ "$(jqv '.command.successes')" -ge 1 ] || fail "stats: $(cat "$TMP/out")"
req GET '/v1/stats?group_by=planet'
expect_problem 400 group_by "bad group_by"

# ---- breakers: made by use, manual control ----
submit '{"type":"command","params":{"argv":["false"]},"breaker":"api-db"}'
expect_code 200 "breaker use"
req GET /v1/breakers
jqv '.breakers[].name' | grep -qx api-db || fail "breakers: $(cat "$TMP/out")"
req GET /v1/breakers/api-db
expect_code 200 "breaker show"
[ "$(jqv .failures)" = 1 ] || fail "breaker failures: $(cat "$TMP/out")"
req POST /v1/breakers/api-db/open
expect_problem 401 "" "open without a token"
req POST /v1/breakers/api-db/open -H "Authorization: Bearer wrong-token-000000"
expect_problem 401 "" "open with a wrong token"
req POST /v1/breakers/api-db/open -H "$AUTH"
expect_code 200 "breaker open"
[ "$(jqv .mode)" = forced_open ] || fail "open: $(cat "$TMP/out")"
submit '{"type":"command","params":{"argv":["true"]},"breaker":"api-db"}'
[ "$(jqv .status)" = rejected ] || fail "forced open admitted: $(cat "$TMP/out")"
req POST /v1/breakers/api-db/close -H "$AUTH"
[ "$(jqv .mode)" = forced_closed ] || fail "close: $(cat "$TMP/out")"
req POST /v1/breakers/api-db/reset -H "$AUTH"
[ "$(jqv .mode)" = normal ] || fail "reset: $(cat "$TMP/out")"
[ "$(jqv .state)" = closed ] || fail "reset state: $(cat "$TMP/out")"
req POST /v1/breakers/api-dv/open -H "$AUTH"
expect_problem 404 name "unknown breaker"
grep -q "did you mean 'api-db'" "$TMP/out" || fail "no suggestion: $(cat "$TMP/out")"
req GET /v1/breakers/nope
expect_problem 404 name "show unknown breaker"

# ---- bad input ----
submit '{"type": "command", '
expect_problem 400 "" "malformed JSON"
grep -q 'invalid JSON at line 1' "$TMP/out" || fail "malformed: $(cat "$TMP/out")"
submit '[1,2]'
expect_problem 400 "" "not an object"
submit '{"type":"command","colour":"red"}'
expect_problem 400 colour "unknown field"
submit '{"type":7}'
expect_problem 400 type "wrong type (type)"
submit '{"type":"command","params":"argv"}'
expect_problem 400 params "wrong type (params)"
submit '{"type":"command","params":{"argv":"echo"}}'
expect_problem 400 params.argv "wrong parameter type"
grep -q "parameter 'argv': expected array" "$TMP/out" || fail "param message: $(cat "$TMP/out")"
submit '{"type":"command","params":{"argv":["true"],"nope":1}}'
expect_problem 400 "" "unknown parameter"
grep -q "nope" "$TMP/out" || fail "unknown parameter not named: $(cat "$TMP/out")"
submit '{"type":"comand"}'
expect_problem 400 type "unknown type"
grep -q "did you mean 'command'" "$TMP/out" || fail "no suggestion: $(cat "$TMP/out")"
submit '{"params":{}}'
expect_problem 400 type "missing type"
submit '{"type":"command","params":{"argv":["true"]},"policy":{"retry":{"attempts":"x"}}}'
expect_problem 400 policy.retry.attempts "bad policy"
submit '{"type":"command","params":{"argv":["true"]},"mode":"later"}'
expect_problem 400 mode "bad mode"
submit '{"type":"command","params":{"argv":["true"]},"wait":"forever"}'
expect_problem 400 wait "bad wait"
submit '{"type":"command","params":{"argv":["true"]},"wait":"1h"}'
expect_problem 400 wait "wait past --max-wait"
big=$(head -c 5000 /dev/zero | tr '\0' x)
submit "{\"type\":\"command\",\"tag\":\"$big\"}"
expect_code 413 "oversized body"
hdrs=()
for i in $(seq 120); do hdrs+=(-H "X-Header-$i: v"); done
req GET /v1/health "${hdrs[@]}"
expect_code 400 "more than 100 headers"
req POST /v1/executions -H 'content-type: application/json' --data-binary '{"type":"command"}'
expect_problem 401 "" "submit without a token"
req GET /v1/nothing-here
expect_problem 404 "" "unknown path"
req DELETE /v1/types
expect_problem 405 "" "wrong method"
req GET /v1/health -H 'Host: attacker.example'
expect_problem 421 Host "a Host that is not loopback (DNS rebinding)"
req GET /v1/health -H 'Host: localhost:8080'
expect_code 200 "Host localhost"
req GET /v1/health -H 'Host: [::1]:8080'
expect_code 200 "Host [::1]"
req GET '/v1/events?last_event_id=abc'
expect_problem 400 Last-Event-ID "bad Last-Event-ID"

# ---- secrets never come back ----
submit '{"type":"command","params":{"argv":["true"],"env":{"API_TOKEN":"s3cr3t-value"}}}'
expect_code 200 "secret submit"
sid=$(jqv .id)
grep -q s3cr3t-value "$TMP/out" && fail "the secret came back in the result"
req GET "/v1/executions/$sid"
grep -q s3cr3t-value "$TMP/out" && fail "the secret is in GET"
req GET "/v1/executions?limit=50"
grep -q s3cr3t-value "$TMP/out" && fail "the secret is in the history"
req GET /metrics
grep -q s3cr3t-value "$TMP/out" && fail "the secret is in the metrics"

# ---- the route table and the OpenAPI document agree ----
req GET /v1/openapi.json
expect_code 200 openapi
jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | "\(ascii_upcase) \($p)"' "$TMP/out" |
    sort >"$TMP/documented"
"$CBX" serve --print-routes | sort >"$TMP/routes"
diff "$TMP/routes" "$TMP/documented" >"$TMP/diff" || fail "routes and openapi.json differ: $(cat "$TMP/diff")"
# every documented route is served: no 405, and no "no such resource" (a 404 for an unknown id
# or name is the route answering)
while read -r m p; do
    path=${p//\{id\}/$id1}
    path=${path//\{name\}/command}
    case "$p" in /v1/events) continue ;; esac
    case "$p" in /v1/breakers/*) path=${p//\{name\}/api-db} ;; esac
    req "$m" "$path" -H "$AUTH" -H 'content-type: application/json' --data-binary '{}'
    [ "$code" = 405 ] && fail "documented $m $p answers 405"
    grep -q '"detail":"no such resource' "$TMP/out" && fail "documented $m $p is not routed"
done <"$TMP/routes"

# ---- listening beyond loopback needs a token file ----
run "$CBX" serve --listen 0.0.0.0:0
expect_rc 2 "non-loopback without a token"
expect_err_line "not a loopback address; give --token-file" "non-loopback"
printf 'a-token-of-twenty-chars\n' >"$TMP/tok"
chmod 644 "$TMP/tok"
run "$CBX" serve --listen 127.0.0.1:0 --token-file "$TMP/tok"
expect_rc 2 "token file readable by others"
expect_err_line "readable by others" "token mode"
run "$CBX" --state-dir "$TMP/other-state" serve --listen "${BASE#http://}" # another journal
expect_rc 2 "address in use"
expect_err_line "address already in use" "address in use"
run "$CBX" serve --listen localhost
expect_rc 2 "no port"
expect_err_line "expected HOST:PORT" "no port"
run "$CBX" serve --flows "$TMP/none"
expect_rc 2 "--flows missing"
expect_err_line "--flows" "--flows missing"
run "$CBX" serve --grace soon
expect_rc 2 "bad --grace"
expect_err_line "--grace" "bad --grace"

stop_server
[ "$src" = 0 ] || fail "SIGTERM: exit $src: $(cat "$TMP/serve.err")"
echo "ok [$TEST]"
