# The journal's WAL stays bounded however many short processes write it one after another: a
# `cbx exec` that finds the WAL file past 256 KiB at open copies it into the database (on its
# flusher thread while its command runs, or before its first batch if that comes first), so that
# its first batch starts the WAL over and cuts the file back to 256 KiB; and a close that finds
# the WAL past 1 MiB copies it and removes it (docs/journal.md). Once, 300 runs left 5 MB of WAL
# beside a 0.3 MB database, and every run read all of it again at open. Not timed.
. "$(dirname "$0")/lib.bash"
WAL="$CBX_STATE_DIR/journal.db-wal"
# CBX__JOURNAL_EARLY_WAL_BYTES, plus what one run writes after an open that found it shorter
# (8 to 17 pages: one commit, or two when it outlives a batch)
BOUND=$((256 * 1024 + 128 * 1024))
N=300
max=0
truncated=0
prev_size=0
for i in $(seq $N); do
    "$CBX" exec -- true >"$TMP/out" 2>"$TMP/err" || fail "run $i: exit $? ($(cat "$TMP/err"))"
    size=$(stat -c %s "$WAL" 2>/dev/null || echo 0)
    [ "$size" -gt "$max" ] && max=$size
    [ "$size" -lt "$prev_size" ] && truncated=$((truncated + 1))
    prev_size=$size
done
[ "$max" -le "$BOUND" ] || fail "the WAL reached $max bytes (bound $BOUND)"
[ "$truncated" -ge 1 ] || fail "the WAL was never cut (largest $max bytes)"
# nothing was lost on the way: every run is in the journal
run "$CBX" history --json --limit 1000
expect_rc 0 "history"
[ "$(jqv length)" = "$N" ] || fail "history has $(jqv length) executions, expected $N"
exit 0
