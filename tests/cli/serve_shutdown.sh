#!/usr/bin/env bash
# cbx serve under stress of its clients and its end: a client sending a byte a second is closed
# at --client-timeout while others are served; SIGTERM lets work in flight finish within
# --grace, cancels what is left after it, and everything is journaled.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"
command -v python3 >/dev/null || { echo "SKIP [$TEST]: python3 is missing"; exit 77; }

start_server --client-timeout 2s --grace 20s

# ---- a slow client ----
python3 - "${BASE#http://}" >"$TMP/slow" 2>&1 <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.settimeout(1.0)
req = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 600
t0 = time.monotonic()
for b in req:
    try:
        s.send(bytes([b]))
        if s.recv(100) == b"":
            print("closed %.1f" % (time.monotonic() - t0)); sys.exit(0)
    except socket.timeout:
        continue
    except OSError:
        print("closed %.1f" % (time.monotonic() - t0)); sys.exit(0)
print("never closed")
PY
slow_pid=$!
# others are served meanwhile
for _ in 1 2 3 4 5; do
    req GET /v1/health
    expect_code 200 "served beside the slow client"
done
wait "$slow_pid"
read -r what secs <"$TMP/slow"
[ "$what" = closed ] || fail "the slow client was not closed: $(cat "$TMP/slow")"
# closed at its timeout (2 s), long before it would have finished (600 s)
awk -v s="$secs" 'BEGIN { exit !(s >= 1.5 && s < 120) }' || fail "closed after $secs s"

# ---- SIGTERM: in-flight work finishes within the grace period ----
submit '{"type":"command","params":{"argv":["sh","-c","sleep 1; echo done"]},"mode":"async"}'
expect_code 202 "async"
short=$(jqv .id)
stop_server
[ "$src" = 0 ] || fail "SIGTERM exit $src: $(cat "$TMP/serve.err")"
run "$CBX" history show "$short" --json
expect_rc 0 "history of the finished one"
[ "$(jqv .status)" = success ] || fail "not finished in the grace period: $(cat "$TMP/out")"

# ---- ... and what outlives it is cancelled and journaled ----
start_server --grace 300ms --client-timeout 120s
submit '{"type":"command","params":{"argv":["sleep","60"]},"mode":"async"}'
long=$(jqv .id)
# a client keeping an idle connection alive (as browsers do) does not hold the exit up until
# its timeout (120 s): the server shuts its read side and h2o closes it
python3 - "${BASE#http://}" >"$TMP/idle" 2>&1 <<'PY' &
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
s.settimeout(300)
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(4096)
print("answered", flush=True)
while s.recv(4096):
    pass
print("closed by the server")
PY
idle_pid=$!
wait_for "$TMP/idle" "$idle_pid" || fail "the idle client got no answer: $(cat "$TMP/idle")"
submit '{"type":"command","params":{"argv":["sleep","60"]},"mode":"async"}'
long2=$(jqv .id)
t0=$(date +%s)
stop_server
[ "$src" = 0 ] || fail "SIGTERM exit $src: $(cat "$TMP/serve.err")"
[ $(($(date +%s) - t0)) -lt 50 ] || fail "the server waited for the work or the idle client"
wait "$idle_pid"
grep -q "closed by the server" "$TMP/idle" || fail "idle client: $(cat "$TMP/idle")"
grep -q "still open at exit" "$TMP/serve.err" && fail "a connection was left open: $(cat "$TMP/serve.err")"
for x in "$long" "$long2"; do
    run "$CBX" history show "$x" --json
    expect_rc 0 "history of $x"
    [ "$(jqv .status)" = cancelled ] || fail "$x: $(cat "$TMP/out")"
done
echo "ok [$TEST]"
