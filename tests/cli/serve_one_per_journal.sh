#!/usr/bin/env bash
# One cbx serve per journal: a second server on the same state directory is refused at start
# (exit 2, one line naming the first's pid) and the first goes on; once the first has been
# killed with SIGKILL, a new one starts on the same journal and numbers its events after the
# first's.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"

# events FILE LAST_ID: the ids the server has after LAST_ID, read for at most a few seconds
# (the stream stays open; curl's time limit ends it)
events_after() {
    curl -sS -N --max-time 3 -H "Last-Event-ID: $2" "$BASE/v1/events" >"$1" 2>/dev/null || true
}

start_server
first=$SRV_PID
submit '{"type":"command","params":{"argv":["true"]},"wait":"60s"}'
expect_code 200 "a submission to the first server"

set +e
"$CBX" serve --listen 127.0.0.1:0 >"$TMP/second.out" 2>"$TMP/second.err"
rc=$?
set -e
[ "$rc" = 2 ] || fail "a second server on one journal exited $rc, expected 2: $(cat "$TMP/second.err")"
grep -q "in use by another cbx serve (pid $first)" "$TMP/second.err" ||
    fail "the refusal does not name the first server: $(cat "$TMP/second.err")"
[ "$(wc -l <"$TMP/second.err")" = 1 ] || fail "the refusal is not one line: $(cat "$TMP/second.err")"

req GET /v1/health
expect_code 200 "the first server after the refusal"
events_after "$TMP/ev1" 0
last=$(sed -n 's/^id: //p' "$TMP/ev1" | tail -n 1)
[ -n "$last" ] || fail "no event of the first server: $(head -c 400 "$TMP/ev1")"
stop_server_now || true # SIGKILL: the lock goes with the process

start_server
submit '{"type":"command","params":{"argv":["true"]},"wait":"60s"}'
expect_code 200 "a submission to the new server"
events_after "$TMP/ev2" "$last"
next=$(sed -n 's/^id: //p' "$TMP/ev2" | head -n 1)
[ -n "$next" ] || fail "no event after $last from the new server: $(head -c 400 "$TMP/ev2")"
[ "$next" -gt "$last" ] || fail "the new server's event $next does not follow $last"
stop_server
[ "$src" = 0 ] || fail "the new server exited $src"
echo "ok [$TEST]"
