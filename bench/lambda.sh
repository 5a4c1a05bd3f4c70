#!/usr/bin/env bash
# Warm Lambda invocations, one at a time: the serverless executor's local backend (cbx hosting the
# Runtime API for a python3 handler, then a Node.js one) beside serverless-offline 13 (npm, the emulator
# tests/cli/serverless.sh uses, speaking the Invoke API, which cbx's serverless executor calls),
# both running the same handler file (tests/serverless/local/py/app.py, then
# tests/serverless/local/node/index.js) with the same event, in
# the same run, interleaved. The driver is build/bench/lambda_invoke (one cbx runtime, sequential
# invocations after a warm-up). Prints a Markdown section on stdout; speed is reported, never
# asserted. Exit 77 when node/npm or serverless-offline cannot be had.
#
# Usage: bench/lambda.sh [path/to/cbx]   (its build directory holds bench/lambda_invoke)
# Environment: CBX_LAMBDA_N (invocations per run, default 1000), CBX_LAMBDA_ROUNDS (default 2:
# each side that many times, interleaved; the best run of each counts), CBX_NPM_CACHE.
set -euo pipefail
cbx=${1:-build/cli/cbx}
build=$(cd "$(dirname "$cbx")/.." && pwd)
cd "$(dirname "$0")/.."
root=$PWD
n=${CBX_LAMBDA_N:-1000}
rounds=${CBX_LAMBDA_ROUNDS:-2}
drv=$build/bench/lambda_invoke
[ -x "$drv" ] || { echo "bench/lambda.sh: build $drv first" >&2; exit 2; }
cache=${CBX_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cbx-npm}
dir=$cache/serverless-offline-13
sls=$dir/node_modules/serverless/bin/serverless.js
command -v node >/dev/null && command -v npm >/dev/null || { echo "skip: no node/npm" >&2; exit 77; }
if [ ! -f "$sls" ] || [ ! -d "$dir/node_modules/serverless-offline" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --prefix . serverless@3 serverless-offline@13 \
        >npm.log 2>&1) && [ -f "$sls" ] || { echo "skip: npm could not install serverless-offline" >&2; exit 77; }
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cbx-lambda-bench.XXXXXX")
spid=""
trap 'kill $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/svc"
cp "$root/tests/serverless/local/py/app.py" "$root/tests/serverless/local/node/index.js" "$tmp/svc/"
ln -s "$dir/node_modules" "$tmp/svc/node_modules"
cat >"$tmp/svc/serverless.yml" <<'YML'
service: bench
frameworkVersion: "3"
provider: {name: aws, runtime: python3.11, region: us-east-1, stage: dev}
plugins: [serverless-offline]
custom:
  serverless-offline: {host: 127.0.0.1, lambdaPort: "${env:CBX_LAMBDA_PORT}", httpPort: "${env:CBX_LAMBDA_HTTP_PORT}"}
functions:
  echo: {handler: app.handler}
  node: {handler: index.handler, runtime: nodejs18.x}
YML
for _ in 1 2 3 4 5; do
    export CBX_LAMBDA_PORT=$((20000 + RANDOM % 30000)) CBX_LAMBDA_HTTP_PORT=$((20000 + RANDOM % 30000))
    (cd "$tmp/svc" && exec node "$sls" offline start >"$tmp/sls.log" 2>&1) &
    spid=$!
    deadline=$(($(date +%s) + 300))
    while ! grep -q "listening on" "$tmp/sls.log" 2>/dev/null && kill -0 $spid 2>/dev/null &&
        [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    grep -q "listening on" "$tmp/sls.log" && break
    kill $spid 2>/dev/null || true
    wait $spid 2>/dev/null || true
    spid=""
done
[ -n "$spid" ] || { echo "bench/lambda.sh: serverless-offline did not start" >&2; exit 1; }
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
local_p="{\"function_dir\": \"$tmp/svc\", \"runtime\": \"python3\", \"handler\": \"app.handler\", \"payload\": {\"n\": 1}}"
sls_p="{\"function_name\": \"bench-dev-echo\", \"endpoint_url\": \"http://127.0.0.1:$CBX_LAMBDA_PORT\", \"payload\": {\"n\": 1}}"
local_n="{\"function_dir\": \"$tmp/svc\", \"runtime\": \"nodejs18.x\", \"handler\": \"index.handler\", \"payload\": {\"n\": 1}}"
sls_n="{\"function_name\": \"bench-dev-node\", \"endpoint_url\": \"http://127.0.0.1:$CBX_LAMBDA_PORT\", \"payload\": {\"n\": 1}}"
best() { # FILE: the line with the highest per_s
    jq -s -c 'max_by(.per_s)' "$1"
}
: >"$tmp/local"
: >"$tmp/sls"
: >"$tmp/local_n"
: >"$tmp/sls_n"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for _ in $(seq "$rounds"); do
    "$drv" "$n" "$local_p" --tree-pid runtime >>"$tmp/local"
    "$drv" "$n" "$sls_p" --tree-pid "$spid" >>"$tmp/sls"
    "$drv" "$n" "$local_n" --tree-pid runtime >>"$tmp/local_n"
    "$drv" "$n" "$sls_n" --tree-pid "$spid" >>"$tmp/sls_n"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
l=$(best "$tmp/local")
s=$(best "$tmp/sls")
ln=$(best "$tmp/local_n")
sn=$(best "$tmp/sls_n")
row() { # NAME JSON
    jq -r --arg name "$1" '"| \($name) | \(.invocations) | \(.wall_s) | \(.per_s) | \(.driver_cpu_s) | \(.tree_cpu_s) | \(((.driver_cpu_s + .tree_cpu_s) * 1e6 / .invocations) | floor) |"' <<<"$2"
}
ratio=$(jq -n --argjson l "$l" --argjson s "$s" '($l.per_s / $s.per_s * 10 | floor) / 10')
ratio_n=$(jq -n --argjson l "$ln" --argjson s "$sn" '($l.per_s / $s.per_s * 10 | floor) / 10')
cat <<MD
## Local Lambda: warm invocations beside serverless-offline

\`bench/lambda.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, load average $load0 before, $load1 after):
$n sequential warm invocations of the same python3 handler (\`tests/serverless/local/py/app.py\`)
and of the same Node.js handler (\`tests/serverless/local/node/index.js\`), event \`{"n": 1}\`, per run, through one cbx runtime (\`build/bench/lambda_invoke\`); best of
$rounds interleaved runs each. *cbx local*: the serverless executor with \`function_dir\` (cbx
hosts the Runtime API, cbx's python bootstrap runs the handler). *serverless-offline 13*: the
same executor calling the emulator's Invoke API on loopback (its python runner, a python process
it talks to over pipes, runs the python handler; the Node.js handler runs in a worker thread of
the emulator's own node process).
"driver CPU" is the cbx process; "tree CPU" the function's side (cbx local: the runtime process;
serverless-offline: node and its python runner).

| handler, host | invocations | wall s | invocations/s | driver CPU s | tree CPU s | CPU µs/invocation |
|---|---|---|---|---|---|---|
$(row "python3, cbx local" "$l")
$(row "python3, serverless-offline 13" "$s")
$(row "nodejs, cbx local" "$ln")
$(row "nodejs, serverless-offline 13" "$sn")

cbx local serves ${ratio}× serverless-offline's invocations per second here with the python3
handler, ${ratio_n}× with the Node.js one.
MD
