#!/usr/bin/env bash
# The CPU cost per execution of exporting spans over OTLP/HTTP (JSON): build/bench/trace_cost
# with export off (no endpoint) and on (a receiver on loopback that answers at once:
# tests/otlp/receiver.js in its fast mode, needing node), in alternating runs; the best of each.
#
#   bench/trace.sh [BUILD_DIR] [EXECUTIONS] [RUNS]     (build, 200000, 3)
set -eu
build=${1:-build}
n=${2:-200000}
runs=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
node "$here/../tests/otlp/receiver.js" /nonexistent "$tmp" fast 2>"$tmp/log" &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 600); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { echo "the receiver did not start: $(cat "$tmp/log")" >&2; exit 1; }
endpoint=http://127.0.0.1:$(cat "$tmp/port")
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$runs"); do
    env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
        "$build/bench/trace_cost" "$n"
    OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint OTEL_BSP_MAX_QUEUE_SIZE=$((4 * n)) \
        "$build/bench/trace_cost" "$n"
done
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
