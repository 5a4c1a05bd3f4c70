#!/usr/bin/env bash
# Run a command with dynalite (DynamoDB's API on LevelDB, from npm) on a free loopback port,
# stopped after whatever happens; its address in CBX_DDB_ENDPOINT, and AWS credentials of no
# value (dynalite accepts any signature) in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_REGION,
# and AWS_ENDPOINT_URL_DYNAMODB (the endpoint the executor uses when endpoint_url is not given).
# dynalite is installed once into $CBX_NPM_CACHE (default ~/.cache/cbx-npm); exit 77 (skip) when
# node/npm are missing or the install fails (no registry).
set -uo pipefail
cache=${CBX_NPM_CACHE:-${HOME:-/tmp}/.cache/cbx-npm}
dir=$cache/dynalite-4.0.0
cli=$dir/node_modules/dynalite/cli.js
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "with_dynalite: node and npm are needed (apt-get install nodejs npm); skipped" >&2
    exit 77
fi
if [ ! -f "$cli" ]; then
    mkdir -p "$dir"
    echo "with_dynalite: installing dynalite 4.0.0 into $dir" >&2
    if ! (cd "$dir" && npm install --no-audit --no-fund --prefix . dynalite@4.0.0 >npm.log 2>&1) ||
        [ ! -f "$cli" ]; then
        echo "with_dynalite: npm could not install dynalite (see $dir/npm.log); skipped" >&2
        exit 77
    fi
fi
log=$(mktemp "${TMPDIR:-/tmp}/cbx-dynalite.XXXXXX")
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -f "$log"
}
trap cleanup EXIT
for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 30000))
    node "$cli" --port "$port" --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do # up to a minute on a busy machine
        grep -q "listening" "$log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "listening" "$log" && break
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=""
done
if [ -z "$pid" ]; then
    echo "with_dynalite: dynalite did not start: $(tail -3 "$log")" >&2
    exit 1
fi
export CBX_DDB_ENDPOINT=http://127.0.0.1:$port AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=cbx-test AWS_SECRET_ACCESS_KEY=cbx-test-secret AWS_REGION=us-east-1
"$@"
