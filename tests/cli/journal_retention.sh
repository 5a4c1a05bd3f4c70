#!/usr/bin/env bash
# The journal's bounds from the environment: by size (CBX_JOURNAL_MAX_SIZE), by age
# (CBX_JOURNAL_MAX_AGE), and the cap on one record (CBX_JOURNAL_MAX_RECORD).
. "$(dirname "$0")/lib.bash"

# a bad value: exit 2, one line naming the variable
CBX_JOURNAL_MAX_SIZE=lots run "$CBX" exec -- true
expect_rc 2 "a bad CBX_JOURNAL_MAX_SIZE"
expect_err_line "CBX_JOURNAL_MAX_SIZE: expected a size" "a bad CBX_JOURNAL_MAX_SIZE"
CBX_JOURNAL_MAX_AGE=soon run "$CBX" history
expect_rc 2 "a bad CBX_JOURNAL_MAX_AGE"

# one record: the output beyond the cap is cut and flagged; the command's own output is whole
CBX_JOURNAL_MAX_RECORD=64K run "$CBX" exec -- sh -c 'head -c 1000000 /dev/zero | tr "\0" a'
expect_rc 0 "exec of 1 MB of output"
[ "$(wc -c <"$TMP/out")" -eq 1000000 ] || fail "the command's output was cut"
run "$CBX" history --json --limit 1
expect_rc 0 "history"
[ "$(jqv '.[0].outputs.cbx_truncated')" -gt 1000000 ] || fail "not flagged: $(head -c 300 "$TMP/out")"
len=$(jqv '.[0].outputs.stdout | length')
[ "$len" -lt 65536 ] || fail "stdout kept $len bytes"
jqv '.[0].outputs.stdout' | grep -q 'bytes cut]$' || fail "no note of the cut"

# by size: 40 runs of 100 KB under a 1 MiB bound keep only the newest
export CBX_JOURNAL_MAX_SIZE=1M CBX_JOURNAL_MAX_RECORD=none
for i in $(seq 1 40); do
    run "$CBX" exec -p "argv=[\"sh\",\"-c\",\"head -c 100000 /dev/zero | tr '\\\\0' b; echo $i\"]" command
    expect_rc 0 "exec $i"
done
run "$CBX" history --json --limit 1000
kept=$(jqv 'length')
[ "$kept" -ge 3 ] && [ "$kept" -le 12 ] || fail "$kept executions kept under 1 MiB"
echo "by size: $kept of 40 kept under 1 MiB" >&2
[ "$(jqv '.[0].outputs.stdout | endswith("b40\n")')" = true ] || fail "the newest is not kept"
unset CBX_JOURNAL_MAX_SIZE CBX_JOURNAL_MAX_RECORD

# by age: what was submitted before the bound goes at the next opening
sleep 0.05 # let the newest execution become older than 10ms
CBX_JOURNAL_MAX_AGE=10ms run "$CBX" exec -- true
run "$CBX" history --json --limit 1000
[ "$(jqv 'length')" = 1 ] || fail "age: $(jqv 'length') kept"
echo "ok"
