#!/usr/bin/env bash
# /v1/events: a client that disconnects and reconnects with Last-Event-ID misses no event, also
# when the events it missed are only in the journal (the server restarted in between).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"

start_server

# follow_events FILE [CURL ARGS]: curl -N in the background; $fpid
follow_events() {
    local f=$1
    shift
    : >"$f"
    curl -sS -N "$@" "$BASE/v1/events" >"$f" 2>/dev/null &
    fpid=$!
    wait_for "$f" "$fpid" || fail "no event stream"
}
# wait_event FILE ID: until the stream in FILE holds an execution event for ID that has ended
wait_event() {
    local deadline=$(($(date +%s) + 300))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        grep -q "\"id\":\"$2\",\"executor\":\"command\",\"status\":\"success\"" "$1" && return 0
        sleep 0.05
    done
    fail "no end event for $2 in $1"
}
ids() { sed -n 's/^id: //p' "$1"; }

follow_events "$TMP/ev1"
submit '{"type":"command","params":{"argv":["echo","one"]}}'
a=$(jqv .id)
wait_event "$TMP/ev1" "$a"
kill "$fpid"
wait "$fpid" 2>/dev/null
last=$(ids "$TMP/ev1" | tail -1)
[ -n "$last" ] || fail "no ids in the first stream"

# while nobody listens
for i in 1 2 3; do
    submit "{\"type\":\"command\",\"params\":{\"argv\":[\"echo\",\"$i\"]}}"
    eval "m$i=\$(jqv .id)"
done
req POST /v1/breakers/sse-b/open -H "$AUTH" # unknown: 404, no event
submit '{"type":"command","params":{"argv":["true"]},"breaker":"sse-b"}'
req POST /v1/breakers/sse-b/open -H "$AUTH"
expect_code 200 "open"

follow_events "$TMP/ev2" -H "Last-Event-ID: $last"
submit '{"type":"command","params":{"argv":["echo","after"]}}'
z=$(jqv .id)
wait_event "$TMP/ev2" "$z"
kill "$fpid"
wait "$fpid" 2>/dev/null
for x in "$m1" "$m2" "$m3"; do
    grep -q "\"id\":\"$x\"" "$TMP/ev2" || fail "missed the events of $x"
done
grep -q '^event: breaker_control' "$TMP/ev2" || fail "missed the breaker event"
# the ids continue exactly: nothing skipped, nothing repeated
{ ids "$TMP/ev1"; ids "$TMP/ev2"; } >"$TMP/all"
first=$(head -1 "$TMP/all")
n=$(wc -l <"$TMP/all")
seq "$first" $((first + n - 1)) | diff - "$TMP/all" >"$TMP/d" || fail "ids not contiguous: $(cat "$TMP/d")"
last=$(tail -1 "$TMP/all")

# a restart: the events after $last come from the journal
stop_server
[ "$src" = 0 ] || fail "stop: $src"
start_server
follow_events "$TMP/ev3" -H "Last-Event-ID: $first"
wait_event "$TMP/ev3" "$z"
kill "$fpid"
wait "$fpid" 2>/dev/null
ids "$TMP/ev3" >"$TMP/again"
sed -n '2,$p' "$TMP/all" | diff - <(head -n $((n - 1)) "$TMP/again") >"$TMP/d" ||
    fail "replay from the journal differs: $(cat "$TMP/d")"
grep -q '"state":"stopping"' "$TMP/ev3" || fail "the replay lacks the stop event"

# the query form, for clients that cannot set headers
follow_events "$TMP/ev4" "--get" "--data" "last_event_id=$last"
submit '{"type":"command","params":{"argv":["echo","q"]}}'
q=$(jqv .id)
wait_event "$TMP/ev4" "$q"
kill "$fpid"
wait "$fpid" 2>/dev/null
[ "$(ids "$TMP/ev4" | head -1)" = $((last + 1)) ] || fail "query resume: $(ids "$TMP/ev4" | head -3)"

stop_server
echo "ok [$TEST]"
