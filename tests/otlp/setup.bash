# Shared by the OTLP tests (tests/cli/otlp.sh, serve_otlp.sh): sourced after lib.bash. Installs
# @opentelemetry/otlp-transformer (the official OTLP protobuf definitions, compiled) and protobufjs
# into $CBX_NPM_CACHE the first time (skip 77 when npm cannot), and starts receivers.
cache=${CBX_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cbx-npm}
otlp_dir=$cache/otlp-transformer-0.52
mods=$otlp_dir/node_modules
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "skip: node and npm are needed (scripts/deps test installs them)"
    exit 77
fi
if [ ! -f "$mods/@opentelemetry/otlp-transformer/build/src/generated/root.js" ] ||
    [ ! -d "$mods/protobufjs" ]; then
    mkdir -p "$otlp_dir"
    echo "installing @opentelemetry/otlp-transformer@0.52 and protobufjs@7 into $otlp_dir" >&2
    if ! (cd "$otlp_dir" && npm install --no-audit --no-fund --prefix . \
        @opentelemetry/otlp-transformer@0.52 protobufjs@7 >npm.log 2>&1) ||
        [ ! -f "$mods/@opentelemetry/otlp-transformer/build/src/generated/root.js" ]; then
        echo "skip: npm could not install @opentelemetry/otlp-transformer (see $otlp_dir/npm.log)"
        exit 77
    fi
fi
unset TRACEPARENT OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
    OTEL_EXPORTER_OTLP_HEADERS OTEL_EXPORTER_OTLP_TRACES_HEADERS OTEL_SERVICE_NAME \
    OTEL_TRACES_EXPORTER OTEL_BSP_MAX_QUEUE_SIZE OTEL_BSP_MAX_EXPORT_BATCH_SIZE \
    OTEL_BSP_SCHEDULE_DELAY OTEL_EXPORTER_OTLP_TIMEOUT OTEL_EXPORTER_OTLP_TRACES_TIMEOUT \
    OTEL_EXPORTER_OTLP_PROTOCOL OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
rpid=""
R=""

# receiver MODE: a fresh receiver (ok | slow | fail) writing into $R, its URL in $endpoint
receiver() {
    stop_receiver
    R=$TMP/r$RANDOM
    mkdir -p "$R"
    node "$(dirname "$0")/../otlp/receiver.js" "$mods" "$R" "$1" 2>"$R/log" &
    rpid=$!
    wait_for "$R/port" "$rpid" || fail "the receiver did not start: $(cat "$R/log")"
    endpoint=http://127.0.0.1:$(cat "$R/port")
}
stop_receiver() {
    [ -n "$rpid" ] && { kill "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null; }
    rpid=""
}
# no_errors: requests came, and every one was valid OTLP JSON
no_errors() {
    [ ! -s "$R/errors" ] || fail "invalid OTLP: $(head -c 2000 "$R/errors")"
    [ -s "$R/requests" ] || fail "no request came"
}
# spans FILTER: the received spans as a jq array, filtered (raw output)
spans() {
    jq -s -r -c "$1" "$R/spans"
}
