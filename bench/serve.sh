#!/usr/bin/env bash
# cbx serve under wrk, beside h2o's hello world on the same machine (bench/h2o_hello.c: the same
# library, loop and socket setup): GET /metrics, and synchronous no-op submissions (POST
# /v1/executions of a chaos execution that succeeds at once, every one journaled), each at
# concurrency 64 (wrk -t1 -c64). Prints a Markdown section: a row per case with the ratio to
# hello world. Usage: bench/serve.sh [BUILD_DIR | BUILD_DIR/cli/cbx]   (CBX_SERVE_SECS: seconds
# per run, default 10)
set -euo pipefail
build=${1:-build}
[ -f "$build" ] && build=$(dirname "$(dirname "$build")") # bench/run passes the cbx binary
secs=${CBX_SERVE_SECS:-10}
for x in "$build/cli/cbx-serve" "$build/bench/h2o_hello"; do
    [ -x "$x" ] || { echo "serve.sh: $x is not built (libh2o-dev)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "serve.sh: wrk is missing (scripts/deps bench)" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
export CBX_STATE_DIR="$tmp/state"
# keep every execution of the run (retention would prune beyond 100,000), so that the journal
# can be counted against the successes
export CBX_JOURNAL_MAX_EXECUTIONS=100000000
mkdir -m 700 "$CBX_STATE_DIR"

"$build/bench/h2o_hello" >"$tmp/hello.port" &
pids+=($!)
"$build/cli/cbx-serve" --listen 127.0.0.1:0 --ready-fd 3 --max-concurrent 64 3>"$tmp/ready" &
spid=$!
pids+=($spid)
for f in "$tmp/hello.port" "$tmp/ready"; do
    for _ in $(seq 200); do [ -s "$f" ] && break; sleep 0.05; done
done
hello="http://127.0.0.1:$(cat "$tmp/hello.port")"
base="http://$(awk '{print $3}' "$tmp/ready")"
token=$(cat "$CBX_STATE_DIR/serve.token")
cat >"$tmp/submit.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"type":"chaos","params":{},"wait":"30s"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
done = function(summary, latency, requests)
  io.write(string.format("non2xx %d\n", summary.errors.status))
end
LUA

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '/ 99%/ {print $2}' "$1"; }
wrk -t1 -c64 -d"${secs}s" --latency "$hello/" >"$tmp/hello.txt"
wrk -t1 -c64 -d"${secs}s" --latency "$base/metrics" >"$tmp/metrics.txt"
before=$(curl -s "$base/metrics" | awk '/^cbx_executions_total\{executor="chaos",status="success"\}/ {print $2}')
wrk -t1 -c64 -d"${secs}s" --latency -s "$tmp/submit.lua" "$base/v1/executions" >"$tmp/submit.txt"
after=$(curl -s "$base/metrics" | awk '/^cbx_executions_total\{executor="chaos",status="success"\}/ {print $2}')
kill -TERM "$spid"
wait "$spid" || true
journaled=$("$build/cli/cbx" stats --executor chaos --json | jq .executions)

h=$(rps "$tmp/hello.txt")
echo "## cbx serve under wrk"
echo
echo "\`wrk -t1 -c64 -d${secs}s\` on loopback, one after the other on the same machine (load average"
echo "$(cut -d' ' -f1 /proc/loadavg) when it ended): h2o's hello world (bench/h2o_hello.c, the same library"
echo "and libuv loop), \`GET /metrics\`, and synchronous submissions of a chaos no-op, each journaled."
echo
echo "| case | requests/s | p99 latency | ratio to hello world |"
echo "|---|---|---|---|"
echo "| h2o hello world (bench/h2o_hello.c) | $h | $(p99 "$tmp/hello.txt") | 1.00 |"
for c in metrics submit; do
    r=$(rps "$tmp/$c.txt")
    name=$([ $c = metrics ] && echo "cbx serve GET /metrics" || echo "cbx serve POST /v1/executions (sync chaos no-op)")
    echo "| $name | $r | $(p99 "$tmp/$c.txt") | $(awk -v a="$r" -v b="$h" 'BEGIN {printf "%.2f", a / b}') |"
done
echo
echo "submissions that ended in success during the run: $((${after:-0} - ${before:-0})); chaos executions in the journal after SIGTERM: $journaled"
grep -h "non2xx\|Socket errors" "$tmp/submit.txt" "$tmp/metrics.txt" || true
echo
