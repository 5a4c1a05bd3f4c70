#!/usr/bin/env bash
# The dashboard in a real browser: headless Chromium loads GET / and follows /v1/events; while it
# is open a breaker trips (real failures) and an execution starts; the DOM it then holds must show
# the breaker's cell open and the execution in flight, which only the live stream can have told
# it. A screenshot is kept in BUILD/test-artifacts/serve_dashboard.png.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
chrome=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chrome" ] || { echo "SKIP [$TEST]: chromium is missing (apt-get install chromium)"; exit 77; }
artifacts="$(cd "$(dirname "$CBX")/.." && pwd)/test-artifacts"
mkdir -p "$artifacts"

mkdir -p "$TMP/flows" "$TMP/wf"
cat >"$TMP/flows/two.yaml" <<'YML'
name: two
steps:
  - name: first
    executor: command
    config: {argv: [sh, -c, 'sleep 0.3; echo one']}
  - name: second
    needs: [first]
    executor: command
    config: {argv: [echo, two]}
YML
sed -e 's/^name: approval/name: review/' -e 's/after: 2s/after: 1h/' \
    "$(dirname "$0")/../../examples/workflows/approval.yaml" >"$TMP/wf/review.yaml"
start_server --flows "$TMP/flows" --workflows "$TMP/wf"
cport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# chromium: headless, no sandbox (root in a container), nothing fetched beyond the server;
# driven over the DevTools protocol (tests/cli/cdp.py)
"$chrome" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-dev-shm-usage --disable-extensions --no-first-run --mute-audio \
    --user-data-dir="$TMP/chrome" --window-size=1100,1600 --remote-debugging-address=127.0.0.1 \
    --remote-debugging-port="$cport" "$BASE/" >/dev/null 2>"$TMP/chrome.err" &
bpid=$!
trap 'kill $bpid 2>/dev/null; wait $bpid 2>/dev/null; stop_server_now; cleanup_tmp' EXIT
cdp() { python3 "$(dirname "$0")/cdp.py" "$cport" "$@"; }
clients() {
    curl -s "$BASE/metrics" | awk '/^cbx_sse_clients / {print $2}'
}

# wait until the page follows the stream, then change things under it
deadline=$(($(date +%s) + 300))
until [ "$(clients)" = 1 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the page never opened /v1/events: $(tail -3 "$TMP/chrome.err")"
    kill -0 "$bpid" 2>/dev/null || fail "chromium ended: $(tail -3 "$TMP/chrome.err")"
    sleep 0.1
done
tripped=0
for _ in $(seq 50); do
    submit '{"type":"command","params":{"argv":["false"]},"breaker":"dash-db"}'
    if [ "$(jqv .status)" = rejected ]; then
        tripped=1
        break
    fi
done
[ "$tripped" = 1 ] || fail "the breaker never opened"
submit '{"type":"command","params":{"argv":["sleep","120"]},"mode":"async"}'
running=$(jqv .id)

# the DOM, as the page has it now, until it shows both (or five minutes pass)
q='(() => { const c = document.querySelector("[data-breaker=\"dash-db\"]");
  const r = document.querySelector("#inflight tr[data-id=\"'"$running"'\"]");
  const f = document.querySelectorAll("#failures td.err").length;
  return JSON.stringify({cell: c ? c.dataset.state : null, row: !!r, failures: f,
                         conn: document.getElementById("conn").textContent}); })()'
deadline=$(($(date +%s) + 300))
while :; do
    state=$(cdp eval "$q") || fail "cdp: $state"
    [ "$(echo "$state" | jq -r '.cell == "open" and .row and .failures > 0')" = true ] && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "the page did not show the change: $state"
    sleep 0.2
done
echo "$state" | jq -e '.conn | startswith("live")' >/dev/null || fail "not live: $state"

# a flow run: its steps as bars on the time axis
req POST /v1/flows/two/runs -H "$AUTH" --data-binary '{}'
expect_code 200 "flow run"
q='JSON.stringify([...document.querySelectorAll("#gantt g[data-step]")].map((g) =>
  g.dataset.step + ":" + g.dataset.status + ":" + (g.querySelector("rect.bar") ? 1 : 0)))'
deadline=$(($(date +%s) + 300))
while :; do
    bars=$(cdp eval "$q") || fail "cdp: $bars"
    [ "$(echo "$bars" | jq -r 'sort | join(",")')" = "first:success:1,second:success:1" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "the Gantt chart lacks the run's steps: $bars"
    sleep 0.2
done

# a workflow token: the net's place counts follow it
req POST /v1/workflows/review/runs -H "$AUTH" --data-binary '{"run_id":"dash1","tokens":[{"data":{"request":"lamp"}}]}'
expect_code 201 "workflow start"
count() {
    cdp eval '(() => { const g = [...document.querySelectorAll("#net g[data-place]")]
      .find((x) => x.dataset.place === "'"$1"'"); return g ? g.dataset.count : "none"; })()'
}
deadline=$(($(date +%s) + 300))
until [ "$(count pending)" = 1 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the net never showed the token in pending: $(count pending)"
    sleep 0.2
done
[ "$(count approved)" = 0 ] || fail "approved before the signal"
req POST /v1/workflow-runs/dash1/tokens/t1/signal -H "$AUTH" --data-binary '{"name":"approve","data":{"approved_by":"ann"}}'
expect_code 202 "signal"
deadline=$(($(date +%s) + 300))
until [ "$(count approved)" = 1 ] && [ "$(count pending)" = 0 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the net did not follow the signal: pending $(count pending), approved $(count approved)"
    sleep 0.2
done

cdp screenshot "$artifacts/serve_dashboard.png" || fail "no screenshot"
[ -s "$artifacts/serve_dashboard.png" ] || fail "empty screenshot"
req POST "/v1/executions/$running/cancel" -H "$AUTH"
stop_server
[ "$src" = 0 ] || fail "stop: $src"
echo "ok [$TEST] (screenshot: $artifacts/serve_dashboard.png)"
