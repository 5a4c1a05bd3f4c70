#!/usr/bin/env bash
# A journal on a full disk: every write that cannot be made is reported on stderr, exec
# --journal-required exits 74, history says records are missing until 'history clear'.
# Needs root to mount a small tmpfs as the state directory; skips (77) where it cannot.
. "$(dirname "$0")/lib.bash"

MNT="$TMP/full"
mkdir -p "$MNT"
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=1m tmpfs "$MNT" 2>/dev/null; then
    echo "SKIP [$TEST]: needs root and 'mount -t tmpfs' for a small full file system" >&2
    exit 77
fi
trap 'umount "$MNT" 2>/dev/null; rm -rf "$TMP"' EXIT
export CBX_STATE_DIR="$MNT/state"

# a journal made while there is room, then the disk filled up
run "$CBX" exec -- true
expect_rc 0 "first exec"
[ ! -s "$TMP/err" ] || fail "first exec: stderr: $(cat "$TMP/err")"
dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null
[ "$(df --output=avail "$MNT" | tail -1 | tr -d ' ')" -eq 0 ] || fail "the tmpfs is not full"

big='head -c 30000 /dev/zero | tr "\0" a'
reported=0
for i in $(seq 1 20); do
    run "$CBX" exec -q -- sh -c "$big"
    expect_rc 0 "exec $i on a full disk"
    if [ -s "$TMP/err" ]; then
        expect_err_line "could not be made" "exec $i on a full disk"
        grep -q "disk is full" "$TMP/err" || fail "exec $i: no reason: $(cat "$TMP/err")"
        reported=$((reported + 1))
    fi
done
[ "$reported" -ge 1 ] || fail "no exec reported a write it could not make"

run "$CBX" exec -q --journal-required -- sh -c "$big"
expect_rc 74 "--journal-required on a full disk"
expect_err_line "could not be made" "--journal-required on a full disk"

# every run either is in the journal or said it is not
run "$CBX" history --json --limit 1000
expect_rc 0 "history on a full disk"
kept=$(jqv 'length')
[ $((kept + reported)) -ge 21 ] ||
    fail "$kept executions kept and $reported runs reported losses, of 21 (+1 first)"
grep -q "the journal is missing records: [0-9]* writes could not be made" "$TMP/err" ||
    fail "history does not say records are missing: $(cat "$TMP/err")"
run "$CBX" stats
grep -q "missing records" "$TMP/err" || fail "stats does not say records are missing"

# room again: clearing the history clears the note; new writes succeed silently
rm -f "$MNT/filler"
run "$CBX" history clear --yes
expect_rc 0 "history clear"
run "$CBX" exec --journal-required -- true
expect_rc 0 "exec with room again"
[ ! -s "$TMP/err" ] || fail "exec with room again: stderr: $(cat "$TMP/err")"
run "$CBX" history
expect_rc 0 "history after clear"
[ ! -s "$TMP/err" ] || fail "history after clear still notes losses: $(cat "$TMP/err")"
echo "ok"
