# Shared by the cli tests: sourced with the cbx binary as $1. Each test gets its own state
# directory (journal, breaker store) and scratch space, removed at the end.
set -u
CBX=${1:?usage: $0 path/to/cbx}
[ -x "$CBX" ] || { echo "not executable: $CBX" >&2; exit 1; }
command -v jq >/dev/null || { echo "the cli tests need jq (apt-get install jq)" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cbx-cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export CBX_STATE_DIR="$TMP/state"
mkdir -p -m 0700 "$CBX_STATE_DIR" # cbx refuses a state directory others can write
unset CBX_PLUGIN_PATH CBX_LUA_PATH CBX_CONFIG
export XDG_CONFIG_HOME="$TMP/config" # never the user's configuration file
export NO_COLOR=1
TEST=$(basename "$0" .sh)

fail() {
    echo "FAIL [$TEST]: $*" >&2
    exit 1
}

# run CMD...: runs it, capturing stdout in $TMP/out, stderr in $TMP/err and the code in $rc.
run() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
}

# expect_rc WANT WHAT: checks $rc after run.
expect_rc() {
    [ "$rc" -eq "$1" ] || fail "$2: exit code $rc, expected $1 (stderr: $(head -c 600 "$TMP/err"))"
}

# expect_err_line TEXT WHAT: stderr is exactly one line and contains TEXT.
expect_err_line() {
    local lines
    lines=$(wc -l <"$TMP/err")
    [ "$lines" -eq 1 ] || fail "$2: expected one line on stderr, got $lines: $(cat "$TMP/err")"
    grep -qF -- "$1" "$TMP/err" || fail "$2: stderr lacks '$1': $(cat "$TMP/err")"
}

# jqv FILTER: applies a jq filter to $TMP/out.
jqv() {
    jq -r "$1" <"$TMP/out"
}

now_ms() {
    date +%s%3N
}

# wait_for FILE [PID]: until FILE is non-empty (and while PID, when given, lives). Gives up after
# five minutes: a loaded machine is slow, never wrong.
wait_for() {
    local deadline=$(($(date +%s) + 300))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        [ -s "$1" ] && return 0
        if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
            [ -s "$1" ] && return 0
            return 1
        fi
        sleep 0.05
    done
    fail "timed out waiting for $1"
}

# start_http_server [ARGS...]: the tests' loopback HTTP server (tests/helpers/http_server), dying
# with this shell; sets $url (http://127.0.0.1:PORT) and $spid. Returns 1 when it cannot start
# (a --port that is taken, say).
start_http_server() {
    local server
    server="$(dirname "$CBX")/../tests/http_server"
    [ -x "$server" ] || fail "no http_server helper at $server"
    : >"$TMP/port"
    "$server" --die-with-parent "$@" >"$TMP/port" 2>/dev/null &
    spid=$!
    trap 'kill $spid 2>/dev/null; rm -rf "$TMP"' EXIT
    wait_for "$TMP/port" "$spid" || return 1
    url="http://127.0.0.1:$(head -1 "$TMP/port")"
}
