#!/usr/bin/env bash
# No-op executions through 2 cbx workers on this machine, end to end (queued, run, result
# stored, announced): tasks per second for N jobs at once, and round trips one at a time.
# Usage: bench/dist.sh [path/to/cbx] [N]   (default build/cli/cbx, 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
cbx=${1:-build/cli/cbx}
n=${2:-20000}
load=$(dirname "$cbx")/../bench/dist_load
command -v nats-server >/dev/null || { echo "bench/dist.sh: nats-server is not installed" >&2; exit 2; }
[ -x "$load" ] || { echo "bench/dist.sh: no $load (build first)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ports" "$tmp/s1" "$tmp/s2"
chmod 700 "$tmp/s1" "$tmp/s2"
nats-server -js -a 127.0.0.1 -p -1 -sd "$tmp/js" --ports_file_dir "$tmp/ports" >/dev/null 2>&1 &
until f=$(ls "$tmp"/ports/*.ports 2>/dev/null) && [ -s "$f" ]; do sleep 0.05; done
url=$(jq -r '.nats[0]' "$f")
for w in 1 2; do
    CBX_STATE_DIR="$tmp/s$w" "$cbx" worker --nats "$url" -j 64 --id "w$w" 2>/dev/null &
done
sleep 1
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg); 2 workers, -j 64 each, journal on"
"$load" "$url" "$n"
