#!/usr/bin/env bash
# The container executor's stops, against a real Podman API service: a container that ignores
# SIGTERM is killed at its timeout and removed; one over its memory limit fails as oom; a cbx
# killed with SIGKILL while 3 containers run leaves none after the next cbx runs a container.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/../container/lib.bash"

# ---- a timeout: SIGTERM ignored, SIGKILL after the grace, removed ----------------------------
"$CBX" exec container -p image=$IMAGE -p 'command=["sh","-c","trap \"\" TERM; echo up; sleep 600"]' \
    -p kill_grace_ms=300 --timeout 3s --json >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait $pid
rc=$?
expect_rc 124 "timeout"
[ "$(jqv .status)" = timeout ] || fail "timeout: status $(jqv .status)"
[ "$(jqv .metadata.signals)" = "SIGTERM, then SIGKILL" ] || fail "timeout: signals $(jqv .metadata.signals)"
[ "$(jqv .metadata.removed)" = true ] || fail "timeout: not removed"
[ "$(jqv .metadata.exit_code)" = 137 ] || fail "timeout: exit code $(jqv .metadata.exit_code)"
[ "$(jqv .outputs.stdout)" = up ] || fail "timeout: the output so far is lost: $(jqv .outputs.stdout)"
[ -z "$(containers_of $pid)" ] || fail "timeout: container left: $(containers_of $pid)"

# ---- a stop before the stats began: cbx idles through the grace (no timer spinning) ----------
TIMEFORMAT='%U %S'
{ time "$CBX" exec container -p image=$IMAGE -p 'command=["sh","-c","trap \"\" TERM; sleep 600"]' \
    -p kill_grace_ms=2500 --timeout 1s --json >"$TMP/out" 2>"$TMP/err"; } 2>"$TMP/time"
[ "$(jqv .status)" = timeout ] || fail "early stop: status $(jqv .status)"
[ "$(jqv .metadata.signals)" = "SIGTERM, then SIGKILL" ] || fail "early stop: signals"
cpu=$(awk '{ print $1 + $2 }' "$TMP/time")
awk -v c="$cpu" 'BEGIN { exit !(c < 0.3) }' || fail "early stop: cbx used ${cpu} s of CPU in 3.5 s"

# ---- out of memory: the oom failure kind --------------------------------------------------------
run "$CBX" exec container -p image=$IMAGE -p memory=16m \
    -p 'command=["sh","-c","x=0123456789abcdef; while :; do x=$x$x; done"]' --json
expect_rc 1 "oom"
[ "$(jqv .outputs.oom)" = true ] || fail "oom: outputs.oom $(jqv .outputs.oom)"
[ "$(jqv .metadata.oom)" = true ] || fail "oom: metadata.oom"
[ "$(jqv .outputs.exit_code)" = 137 ] || fail "oom: exit code $(jqv .outputs.exit_code)"
jqv .error | grep -q "^out of memory: container [0-9a-f]* killed at its memory limit (16777216 bytes" ||
    fail "oom: error $(jqv .error)"
kind=$(jqv '.attempts[0].outcome')
[ "$kind" = oom ] || fail "oom: outcome $kind"
# the same memory limit without a hog succeeds: the oom is the hog's, not the limit's
run "$CBX" exec container -p image=$IMAGE -p memory=16m -p command=true
expect_rc 0 "memory limit, no hog"

# ---- a container removed by someone else while it runs: the attempt ends, it does not hang ----
# (once it runs: removed between its create and its start, it fails as "removed by someone else
# before it started")
"$CBX" exec container -p image=$IMAGE -p 'command=sleep 600' --json >"$TMP/out" 2>"$TMP/err" &
pid=$!
deadline=$(($(date +%s) + 120))
while [ -z "$(running_containers_of $pid)" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "removed: the container never ran"
    sleep 0.1
done
podman rm -f "$(running_containers_of $pid)" >/dev/null
wait $pid
rc=$?
expect_rc 1 "removed by someone else"
# the removal kills it first: its exit (137) may be seen before its logs are gone
jqv .error | grep -Eq "^(container [0-9a-f]* was removed by someone else while it ran|exit code 137)" ||
    fail "removed: error $(jqv .error)"

# ---- cbx killed with SIGKILL while 3 containers run ------------------------------------------
"$CBX" exec --repeat 3 -j 3 container -p image=$IMAGE -p 'command=sleep 600' \
    >"$TMP/kill.out" 2>"$TMP/kill.err" &
victim=$!
deadline=$(($(date +%s) + 120))
while [ "$(podman ps --filter label=io.cbx.owner --filter status=running -q |
    xargs -r podman inspect --format '{{index .Config.Labels "io.cbx.owner"}}' |
    awk -F/ -v p=$victim '$3 == p' | wc -l)" -lt 3 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "kill: 3 containers never ran: $(cat "$TMP/kill.err")"
    kill -0 $victim 2>/dev/null || fail "kill: cbx ended early: $(cat "$TMP/kill.err")"
    sleep 0.1
done
kill -KILL $victim
# (bash says "Killed" about it: expected)
wait $victim 2>/dev/null || true
[ "$(containers_of $victim | wc -l)" -eq 3 ] || fail "kill: expected 3 orphans, got $(containers_of $victim | wc -l)"
# the next cbx that runs a container removes them before its own runs
run "$CBX" exec container -p image=$IMAGE -p 'command=echo next'
expect_rc 0 "the next cbx"
left=$(containers_of $victim)
[ -z "$left" ] || fail "kill: containers left after the next cbx: $left"
exit 0
