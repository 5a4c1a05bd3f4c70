#!/usr/bin/env bash
# No-op executions through 2 cbx workers on this machine, end to end (queued, run, result
# stored, announced): tasks per second for N jobs at once, and round trips one at a time.
# Beside it, in the same run, the peer: Celery 5 on Redis (Debian's python3-celery and
# redis-server) with 2 solo worker processes doing the same no-op task (bench/celery_peer.py).
# Each side also says the CPU seconds (user+sys) its server and workers had used before and after
# the run (N jobs and 500 round trips), and its submitter's own.
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
# cpu PID...: the CPU seconds (user+sys) each process has used so far
cpu() { for p in "$@"; do awk '{printf "%.2f ", ($14 + $15) / 100}' "/proc/$p/stat"; done; }
chmod 700 "$tmp/s1" "$tmp/s2"
nats-server -js -a 127.0.0.1 -p -1 -sd "$tmp/js" --ports_file_dir "$tmp/ports" >/dev/null 2>&1 &
server=$!
until f=$(ls "$tmp"/ports/*.ports 2>/dev/null) && [ -s "$f" ]; do sleep 0.05; done
url=$(jq -r '.nats[0]' "$f")
workers=()
for w in 1 2; do
    CBX_STATE_DIR="$tmp/s$w" "$cbx" worker --nats "$url" -j 64 --id "w$w" 2>/dev/null &
    workers+=($!)
done
sleep 1
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg); 2 workers, -j 64 each, journal on"
echo "# cbx"
c0=$(cpu $server "${workers[@]}")
"$load" "$url" "$n"
echo "# cpu seconds: before the run nats-server, workers: $c0; after: $(cpu $server "${workers[@]}")"
kill $(jobs -p) 2>/dev/null
wait 2>/dev/null

# the peer, when its packages are there (scripts/deps bench installs them)
if ! command -v redis-server >/dev/null || ! /usr/bin/python3 -c 'import celery, redis' 2>/dev/null; then
    echo "# celery: not installed (apt-get install python3-celery python3-redis redis-server)"
    exit 0
fi
port=$((20000 + RANDOM % 30000))
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
redis=$!
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
export CBX_CELERY_URL="redis://127.0.0.1:$port/0"
workers=()
for w in 1 2; do
    (cd bench && exec /usr/bin/python3 -m celery -A celery_peer worker --pool solo -c 1 \
        --loglevel WARNING -n "w$w@%h" >"$tmp/celery$w.log" 2>&1) &
    workers+=($!)
done
sleep 3
echo "# celery $(/usr/bin/python3 -c 'import celery; print(celery.__version__)'), redis, 2 solo workers"
c0=$(cpu $redis "${workers[@]}")
(cd bench && /usr/bin/python3 celery_peer.py "$n")
echo "# cpu seconds: before the run redis, workers: $c0; after: $(cpu $redis "${workers[@]}")"
