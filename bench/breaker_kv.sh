#!/usr/bin/env bash
# The cluster breaker store under load: 4 processes making acquire+record calls through NATS
# JetStream KV (compare-and-set), on one shared breaker and on one breaker each; calls per
# second, CAS retries, CPU per call, load average. Also the nats-server's own CPU time.
# Usage: bench/breaker_kv.sh [build dir] [calls per process]   (default build, 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
calls=${2:-2000}
load=$build/bench/breaker_kv_load
command -v nats-server >/dev/null || { echo "bench/breaker_kv.sh: nats-server is not installed" >&2; exit 2; }
[ -x "$load" ] || { echo "bench/breaker_kv.sh: no $load (build first)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ports"
nats-server -js -a 127.0.0.1 -p -1 -sd "$tmp/js" --ports_file_dir "$tmp/ports" >/dev/null 2>&1 &
npid=$!
until f=$(ls "$tmp"/ports/*.ports 2>/dev/null) && [ -s "$f" ]; do sleep 0.05; done
url=$(jq -r '.nats[0]' "$f")
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$npid/stat"; }
for mode in same own; do
    c0=$(cpu)
    "$load" "$url" 4 "$calls" "$mode"
    echo "  nats-server CPU: $(awk -v a="$c0" -v b="$(cpu)" -v n=$((4 * calls)) \
        'BEGIN {printf "%.1f us per call", (b - a) / n * 1e6}')"
done
"$load" "$url" 1 "$calls" same
