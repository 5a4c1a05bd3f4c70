#!/bin/bash
# Run bench/llm_peers.mjs (the official openai and ollama Node clients) against fake_llm, with
# the clients installed into a cache directory when missing ($CBX_NPM_CACHE, default
# ~/.cache/cbx-npm). Usage: bench/llm_peers.sh [N]   (from the source tree, after a build)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
cache=${CBX_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cbx-npm}
fake=${CBX_FAKE_LLM:-$ROOT/build/tests/fake_llm}
[ -x "$fake" ] || { echo "# FAIL	no $fake (build the tests)"; exit 1; }
if [ ! -d "$cache/node_modules/openai" ] || [ ! -d "$cache/node_modules/ollama" ]; then
    mkdir -p "$cache"
    npm install --prefix "$cache" --no-audit --no-fund --loglevel=error openai@7 ollama@0.6 >&2 ||
        { echo "# note	llm peers skipped: npm could not install openai and ollama"; exit 0; }
fi
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
printf '{"turns": [{"content": "Circuit breakers stop calls to a failing service until it recovers.", "chunk_chars": 8, "repeat": -1}]}' >"$tmp/s.json"
"$fake" --script "$tmp/s.json" --die-with-parent >"$tmp/port" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(head -1 "$tmp/port")
# ES modules resolve packages from the script's own directory: run a copy beside them
cp "$ROOT/bench/llm_peers.mjs" "$cache/llm_peers.mjs"
node "$cache/llm_peers.mjs" "http://127.0.0.1:$port/v1" "http://127.0.0.1:$port" "$N"
