#!/usr/bin/env bash
# Faults under load: N no-op jobs through 2 cbx workers (as bench/dist.sh), once with a worker
# killed with SIGKILL in the middle (a third takes its place), once with nats-server killed with
# SIGKILL in the middle and started again on its files. Each case says how many jobs each worker
# ran and how many it found already done (stored by a worker, redelivered, not run again), and
# how many job ids show more than one run in the workers' logs (a run is logged once its result is
# stored and acknowledged; a worker killed before that leaves no line, so its runs are not seen).
# Usage: bench/dist_faults.sh [path/to/cbx] [N]   (default build/cli/cbx, 80000: the fault comes
# 1.5 s in, so N must last longer than that)
set -uo pipefail
cd "$(dirname "$0")/.."
cbx=${1:-build/cli/cbx}
n=${2:-80000}
load=$(dirname "$cbx")/../bench/dist_load
command -v nats-server >/dev/null || { echo "bench/dist_faults.sh: nats-server is not installed" >&2; exit 2; }
[ -x "$load" ] || { echo "bench/dist_faults.sh: no $load (build first)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

# one_case NAME: a server and 2 workers (ack wait 5 s), the load, and at 1.5 s the fault
one_case() {
    local d="$tmp/$1" url port npid load_pid w
    mkdir -p "$d/ports"
    nats-server -js -a 127.0.0.1 -p -1 -sd "$d/js" --ports_file_dir "$d/ports" >"$d/nats.log" 2>&1 &
    npid=$!
    until f=$(ls "$d"/ports/*.ports 2>/dev/null) && [ -s "$f" ]; do sleep 0.05; done
    url=$(jq -r '.nats[0]' "$f")
    port=${url##*:}
    local wpids=()
    for w in 1 2; do
        mkdir -p -m 0700 "$d/s$w"
        CBX_STATE_DIR="$d/s$w" "$cbx" worker --nats "$url" -j 64 --ack-wait 5s --id "w$w" -v \
            2>"$d/w$w.log" &
        wpids+=($!)
    done
    sleep 1
    "$load" "$url" "$n" >"$d/load.out" 2>&1 &
    load_pid=$!
    sleep 1.5
    echo "# $1: the fault after $(cat "$d"/w*.log | grep -c ': success$') results"
    if [ "$1" = worker ]; then
        kill -9 "${wpids[0]}"
        wait "${wpids[0]}" 2>/dev/null
        mkdir -p -m 0700 "$d/s3"
        CBX_STATE_DIR="$d/s3" "$cbx" worker --nats "$url" -j 64 --id w3 -v 2>"$d/w3.log" &
    else
        kill -9 $npid
        wait $npid 2>/dev/null
        nats-server -js -a 127.0.0.1 -p "$port" -sd "$d/js" >>"$d/nats.log" 2>&1 &
    fi
    if wait $load_pid; then
        grep throughput "$d/load.out"
    else
        echo "dist_load failed: $(tail -1 "$d/load.out")"
    fi
    for log in "$d"/w*.log; do
        echo "$(basename "$log" .log): $(grep -c ': success$' "$log") run, $(grep -c 'already done' "$log") already done"
    done
    echo "ids with more than one logged run: $(cat "$d"/w*.log | grep -o 'job [^ ]*: success$' | sort | uniq -d | wc -l)"
    kill $(jobs -p) 2>/dev/null
    wait 2>/dev/null
}
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg); $n jobs"
one_case worker
one_case server
