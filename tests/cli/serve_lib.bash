# Shared by the serve_*.sh tests: sourced after lib.bash. Starts cbx serve on a free loopback
# port and stops it at the end.

SERVE_BIN="$(dirname "$CBX")/cbx-serve"
if [ ! -x "$SERVE_BIN" ]; then
    echo "SKIP [$TEST]: cbx-serve was not built (libh2o-dev missing: scripts/deps build)"
    exit 77
fi
command -v curl >/dev/null || { echo "SKIP [$TEST]: curl is missing" >&2; exit 77; }

SRV_PID=""
# KEEP_TMP=1 keeps the scratch directory (the server's stderr is serve.err there)
cleanup_tmp() { [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"; }
trap 'stop_server_now; cleanup_tmp' EXIT

stop_server_now() {
    if [ -n "$SRV_PID" ]; then
        kill -KILL "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
    fi
    SRV_PID=""
}

# start_server [ARGS...]: sets $BASE (http://127.0.0.1:PORT), $SRV_PID, $TOKEN, $AUTH.
start_server() {
    : >"$TMP/ready"
    "$CBX" serve --listen 127.0.0.1:0 --ready-fd 3 "$@" 3>"$TMP/ready" 2>"$TMP/serve.err" &
    SRV_PID=$!
    wait_for "$TMP/ready" "$SRV_PID" || fail "cbx serve did not start: $(cat "$TMP/serve.err")"
    BASE="http://$(awk '{print $3}' "$TMP/ready")"
    TOKEN=$(cat "$CBX_STATE_DIR/serve.token" 2>/dev/null || true)
    AUTH="Authorization: Bearer $TOKEN"
}

# stop_server: SIGTERM and wait for the exit; $src gets its exit code.
stop_server() {
    kill -TERM "$SRV_PID"
    wait "$SRV_PID"
    src=$?
    SRV_PID=""
}

# req METHOD PATH [CURL ARGS...]: the body in $TMP/out, the status in $code, the content type in
# $ctype.
req() {
    local m=$1 p=$2
    shift 2
    local w
    w=$(curl -sS -o "$TMP/out" -w '%{http_code} %{content_type}' -X "$m" "$@" "$BASE$p") ||
        fail "curl $m $p failed"
    code=${w%% *}
    ctype=${w#* }
}

# expect_code WANT WHAT
expect_code() {
    [ "$code" = "$1" ] || fail "$2: HTTP $code, expected $1: $(head -c 600 "$TMP/out")"
}

# expect_problem STATUS FIELD WHAT: an RFC 9457 problem naming FIELD ("" = no field).
expect_problem() {
    expect_code "$1" "$3"
    case "$ctype" in application/problem+json*) ;; *) fail "$3: content type $ctype" ;; esac
    [ "$(jqv .status)" = "$1" ] || fail "$3: problem status $(jqv .status)"
    [ -n "$(jqv .detail)" ] || fail "$3: no detail"
    [ "$(jqv '.detail | split("\n") | length')" = 1 ] || fail "$3: detail is not one line"
    if [ -n "$2" ]; then
        [ "$(jqv .field)" = "$2" ] || fail "$3: field '$(jqv .field)', expected '$2': $(cat "$TMP/out")"
    fi
}

# submit JSON [CURL ARGS...]: POST /v1/executions with the token.
submit() {
    local body=$1
    shift
    req POST /v1/executions -H "$AUTH" -H 'content-type: application/json' --data-binary "$body" "$@"
}
