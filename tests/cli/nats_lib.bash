# Shared by the cli tests that need a real nats-server with JetStream (sourced after lib.bash).
command -v nats-server >/dev/null || {
    echo "skip: nats-server is not installed (scripts/deps test installs it)"
    exit 77
}
ADMIN="$(dirname "$CBX")/../tests/nats_admin"
[ -x "$ADMIN" ] || fail "no nats_admin helper at $ADMIN"
wpids=()
trap 'kill -9 $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

# start_nats NAME [ARGS...]: a nats-server -js on a free loopback port, its files under
# $TMP/NAME; sets $nats_url (nats://127.0.0.1:PORT) and $nats_pid.
start_nats() {
    local name=$1 f deadline
    shift
    mkdir -p "$TMP/$name/ports" "$TMP/$name/js"
    nats-server -js -a 127.0.0.1 -p -1 -sd "$TMP/$name/js" --ports_file_dir "$TMP/$name/ports" \
        "$@" >"$TMP/$name/log" 2>&1 &
    nats_pid=$!
    deadline=$(($(date +%s) + 300))
    until f=$(ls "$TMP/$name"/ports/*.ports 2>/dev/null | head -1) && [ -s "$f" ]; do
        kill -0 $nats_pid 2>/dev/null || fail "nats-server exited: $(tail -3 "$TMP/$name/log")"
        [ "$(date +%s)" -lt "$deadline" ] || fail "nats-server did not start"
        sleep 0.05
    done
    nats_url=$(jq -r '.nats[0]' "$f")
}

# start_worker NAME [ARGS...]: a cbx worker whose log is $TMP/NAME.log, state in
# $TMP/state-NAME; its pid is appended to wpids.
start_worker() {
    local name=$1
    shift
    mkdir -p -m 0700 "$TMP/state-$name"
    CBX_STATE_DIR="$TMP/state-$name" "$CBX" worker --id "$name" -v "$@" >"$TMP/$name.log" 2>&1 &
    wpids+=($!)
    wait_for "$TMP/$name.log" "$!" || fail "worker $name did not start: $(cat "$TMP/$name.log")"
}
