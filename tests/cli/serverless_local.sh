# cbx exec serverless with function_dir: the local backend, cbx hosting the Lambda Runtime API.
# A shell bootstrap in the manner of AWS's custom runtime tutorial answers; the example flow's
# second call finds its runtime warm; a timeout leaves no process of the runtime's tree (pgrep),
# nor does cbx killed with SIGKILL;
# bad parameters are one-line errors naming the parameter; `cbx --version` does not load
# libhttp_parser, a local invocation does.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FN=$ROOT/tests/serverless/local
command -v curl >/dev/null || { echo "skip: the shell bootstrap needs curl"; exit 77; }

run "$CBX" exec serverless -p function_dir="$FN/bash" -p handler=function.handler \
    -p 'payload={"n":1}' -p 'environment={"STAGE":"cli"}' --json
expect_rc 0 "the shell bootstrap"
[ "$(jqv '"\(.outputs.payload.event.n) \(.outputs.payload.stage) \(.outputs.cold_start) \(.metadata.backend)"')" = \
    "1 cli true local" ] || fail "answer: $(cat "$TMP/out")"

run "$CBX" exec serverless -p function_dir="$FN/bash" -p handler=function.handler -p 'payload={"fail":1}' \
    -p log_type=Tail --json
expect_rc 1 "a function error"
[ "$(jqv .outputs.log)" = "failing on purpose" ] || fail "log: $(cat "$TMP/out")"
[ "$(jqv .outputs.function_error)" = Unhandled ] && [ "$(jqv .outputs.payload.errorType)" = HandlerError ] ||
    fail "function error: $(cat "$TMP/out")"
expect_err_line "function bash failed (Unhandled): HandlerError: handler exited 3" "function error line"

run "$CBX" exec serverless -p function_dir="$FN/bash" -p handler=function.handler -p log_type=Tail \
    -p 'payload={"crash":1}'
expect_rc 1 "a runtime that crashes"
expect_err_line "(pid " "crash line"
grep -q "was killed by signal 9 (Killed) during the invocation; its output ends: crashing on purpose" "$TMP/err" ||
    fail "crash: $(cat "$TMP/err")"

marked() { # MARK: pids of the running 'sleep 600' processes with MARK in their environment
    pgrep -f "sleep 600" | while read -r p; do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "MARK=$1" && echo "$p"
    done
}
# a timeout: the handler's own child sleeps on; nothing with the mark may be left running
mark="cbx-lambda-$$-$RANDOM"
run "$CBX" exec serverless -p function_dir="$FN/bash" -p handler=function.handler \
    -p 'payload={"sleep":1}' -p "environment={\"MARK\":\"$mark\"}" --timeout 1s
expect_rc 124 "a timeout"
grep -q "timed out after" "$TMP/err" || fail "timeout: $(cat "$TMP/err")"
left=$(marked "$mark")
[ -z "$left" ] || fail "left running after the timeout: $(ps -o pid,stat,args -p "$left")"

# cbx killed with SIGKILL mid-invocation: its runtime's tree goes with it
mark="cbx-lambda-kill-$$-$RANDOM"
"$CBX" exec serverless -p function_dir="$FN/bash" -p handler=function.handler \
    -p 'payload={"sleep":1}' -p "environment={\"MARK\":\"$mark\"}" >/dev/null 2>&1 &
cpid=$!
deadline=$(($(date +%s) + 300))
while [ -z "$(marked "$mark")" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
[ -n "$(marked "$mark")" ] || fail "the handler's sleep never started"
kill -9 "$cpid"
wait "$cpid" 2>/dev/null
deadline=$(($(date +%s) + 120))
while [ -n "$(marked "$mark")" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
[ -z "$(marked "$mark")" ] || fail "left running after cbx was killed: $(marked "$mark")"

# the example flow: two calls, the second warm on the same runtime
cd "$ROOT" || fail "no source tree"
run "$CBX" run examples/flows/lambda_local.yaml -i text="b a b"
expect_rc 0 "the example flow"
[ "$(jqv '"\(.words) \(.first_cold) \(.second_cold) \(.same_runtime) \(.top | tojson)"')" = \
    '3 true false true [{"w":"b","n":2}]' ] || fail "flow: $(cat "$TMP/out")"

# bad input: one line each, naming the parameter
mkdir -p "$TMP/empty" "$TMP/noexec"
printf '#!/bin/sh\n' >"$TMP/noexec/bootstrap"
chmod -x "$TMP/noexec/bootstrap"
bad() { # WANT ARGS...
    local want=$1
    shift
    run "$CBX" exec serverless "$@"
    expect_rc 2 "bad input: $want"
    expect_err_line "$want" "bad input: $want"
}
bad "parameter 'function_dir': no $TMP/empty/bootstrap (give an executable bootstrap, or runtime: python3 and a handler)" \
    -p function_dir="$TMP/empty"
bad "parameter 'function_dir': $TMP/noexec/bootstrap is not executable" -p function_dir="$TMP/noexec"
bad "parameter 'function_dir': $TMP/nope: No such file or directory" -p function_dir="$TMP/nope"
bad "parameter 'runtime': unknown runtime \"ruby3.2\"" -p function_dir="$FN/py" -p runtime=ruby3.2
bad "parameter 'handler': the python3 runtime needs a handler module.function" -p function_dir="$FN/py" -p runtime=python3
bad "parameter 'handler': nope.handler: no $FN/py/nope.py" -p function_dir="$FN/py" -p runtime=python3 -p handler=nope.handler
bad "parameter 'payload': not JSON" -p function_dir="$FN/bash" -p 'payload="{oops"'
bad "parameter 'invocation_type': Event: the local backend (function_dir) runs RequestResponse only" \
    -p function_dir="$FN/bash" -p invocation_type=Event
bad "parameter 'function_name': give function_name (a function to invoke) or function_dir" -p 'payload={}'

# libhttp_parser is loaded by a local invocation only
LD_DEBUG=files "$CBX" --version 2>"$TMP/ld" >/dev/null
! grep -q libhttp_parser "$TMP/ld" || fail "cbx --version loads libhttp_parser"
LD_DEBUG=files "$CBX" exec serverless -p function_dir="$FN/bash" -p handler=function.handler \
    2>"$TMP/ld" >/dev/null || fail "local invocation under LD_DEBUG"
grep -q libhttp_parser "$TMP/ld" || fail "a local invocation did not load libhttp_parser"
exit 0
