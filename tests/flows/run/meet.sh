#!/bin/sh
# meet.sh DIR NAME SECONDS [OTHER...] - a rendezvous for the scheduling tests
# (tests/integration/test_flow_schedule.c).
#
# Marks NAME as started in DIR, then waits until every OTHER has been marked too (or SECONDS
# have passed: the runner may rightly never run them side by side), and prints "START END" in
# ns since the epoch. Two steps that wait for each other overlap in time by construction when
# the runner runs them side by side, however slow the machine, so the tests assert overlap
# without betting on sleeps.
dir=$1 me=$2 secs=$3
shift 3
start=$(date +%s%N)
: >"$dir/$me"
left=$((secs * 100))
for other in "$@"; do
    while [ ! -e "$dir/$other" ] && [ "$left" -gt 0 ]; do
        sleep 0.01
        left=$((left - 1))
    done
done
printf '%s %s' "$start" "$(date +%s%N)"
