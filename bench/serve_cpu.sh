#!/usr/bin/env bash
# cbx serve's CPU time per request, beside h2o's hello world in the same run: the server's user +
# system time (all its threads, /proc/PID/stat fields 14 and 15) over a `wrk -t1 -c64` run,
# divided by the requests answered - steadier than requests per second on a shared machine.
# Cases: hello world (bench/h2o_hello), synchronous chaos no-op submissions (each journaled),
# GET /metrics. Usage: bench/serve_cpu.sh [BUILD_DIR] [SECONDS]   (defaults: build, 5)
set -euo pipefail
build=${1:-build}; secs=${2:-5}
tmp=$(mktemp -d); trap 'kill $hp $sp 2>/dev/null; wait 2>/dev/null; rm -rf $tmp' EXIT
export CBX_STATE_DIR=$tmp/state; mkdir -m 700 $CBX_STATE_DIR
$build/bench/h2o_hello >$tmp/hp & hp=$!
$build/cli/cbx-serve --listen 127.0.0.1:0 --ready-fd 3 --max-concurrent 64 3>$tmp/ready & sp=$!
for f in $tmp/hp $tmp/ready; do for _ in $(seq 200); do [ -s $f ] && break; sleep 0.05; done; done
tok=$(cat $CBX_STATE_DIR/serve.token)
cat >$tmp/s.lua <<LUA
wrk.method = "POST"
wrk.body = '{"type":"chaos","params":{},"wait":"30s"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $tok"
LUA
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
tck=$(getconf CLK_TCK)
run() { # pid url extra...
  local pid=$1; shift
  local c0=$(cpu $pid)
  wrk -t1 -c64 -d${secs}s "$@" >$tmp/w.txt
  local c1=$(cpu $pid)
  local n=$(awk '/requests in/ {print $1}' $tmp/w.txt)
  local rps=$(awk '/Requests\/sec/ {print $2}' $tmp/w.txt)
  awk -v c=$((c1-c0)) -v n=$n -v t=$tck -v r=$rps 'BEGIN {printf "%d req, %.1f us CPU/req, %s req/s\n", n, c/t*1e6/n, r}'
}
echo -n "hello:  "; run $hp http://127.0.0.1:$(cat $tmp/hp)/
echo -n "submit: "; run $sp -s $tmp/s.lua http://$(awk '{print $3}' $tmp/ready)/v1/executions
echo -n "metrics: "; run $sp http://$(awk '{print $3}' $tmp/ready)/metrics
echo "load $(cut -d' ' -f1 /proc/loadavg)"
