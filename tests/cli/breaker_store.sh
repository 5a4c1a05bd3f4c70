# The host-wide breaker store under hostile conditions, through the real binary: bad names exit
# 2; a state directory others can write is refused; planted symbolic links are not followed;
# a record another process keeps locked holds `cbx exec --breaker` up only until its deadline
# and SIGTERM still ends it; on a full file system (a 1 MiB tmpfs, when this runs as root) a new
# name is refused with exit 76 and never a SIGBUS, and a store that could not be made is made
# once there is room.
. "$(dirname "$0")/lib.bash"
LOCK_FILE="$(dirname "$CBX")/../tests/lock_file"
[ -x "$LOCK_FILE" ] || fail "no helper $LOCK_FILE (build the tests)"

# ---- names -----------------------------------------------------------------------------------
for action in open close reset show; do
    run "$CBX" breaker "$action" ''
    expect_rc 2 "breaker $action ''"
    expect_err_line "a breaker name is 1 to 200 bytes" "breaker $action '' says why"
done
long=$(printf 'n%.0s' $(seq 201))
run "$CBX" breaker open "$long"
expect_rc 2 "a 201-byte name"

# ---- the state directory ---------------------------------------------------------------------
shared="$TMP/shared"
mkdir -p "$shared"
chmod 1777 "$shared"
run "$CBX" --state-dir "$shared" exec --no-journal --breaker X -- true
expect_rc 2 "--state-dir writable by anyone"
expect_err_line "can be written by anyone" "the refusal says why"
run env CBX_STATE_DIR="$shared" "$CBX" exec --breaker X -- true
expect_rc 2 "CBX_STATE_DIR writable by anyone"
chmod 0770 "$shared"
run "$CBX" --state-dir "$shared" breaker list
expect_rc 2 "a group-writable state directory"
expect_err_line "can be written by its group" "group-writable"
[ -z "$(ls -A "$shared")" ] || fail "files were made in a refused directory: $(ls -A "$shared")"

# planted symbolic links: refused, their targets untouched
mine="$TMP/mine"
mkdir -m 0700 "$mine"
echo precious >"$TMP/victim"
ln -s "$TMP/victim" "$mine/breakers"
ln -s "$TMP/victim" "$mine/journal.db"
run "$CBX" --state-dir "$mine" exec --no-journal --breaker X -- true
expect_rc 70 "a symbolic link for the breaker store"
expect_err_line "symbolic link; refusing to follow it" "the store's refusal says why"
run "$CBX" --state-dir "$mine" exec -- true
expect_rc 70 "a symbolic link for the journal"
expect_err_line "symbolic link; refusing to follow it" "the journal's refusal says why"
[ "$(cat "$TMP/victim")" = "precious" ] || fail "the link's target was written"
[ ! -e "$TMP/victim-wal" ] && [ ! -e "$mine/journal.db-wal" ] || fail "a WAL was made"

# ---- a record locked by another process --------------------------------------------------------
run "$CBX" exec --breaker L -- true
expect_rc 0 "make L"
mkfifo "$TMP/hold"
"$LOCK_FILE" "$CBX_STATE_DIR/breakers" L <"$TMP/hold" >"$TMP/locked" &
holder=$!
exec 9>"$TMP/hold" # the holder keeps the lock until this closes
for _ in $(seq 600); do
    [ -s "$TMP/locked" ] && break
    sleep 0.1
done
[ "$(cat "$TMP/locked")" = "locked" ] || fail "the helper did not lock L's record"

t0=$(now_ms)
run "$CBX" exec --deadline 1s --breaker L -- touch "$TMP/ran"
t1=$(now_ms)
expect_rc 124 "--deadline 1s while L's record is locked"
expect_err_line "the deadline passed while breaker 'L' was locked by another process" "why"
[ ! -e "$TMP/ran" ] || fail "the command ran without its breaker"
# 10 s is the wait of an operation without a deadline: the run must not have waited that long
[ $((t1 - t0)) -lt 9000 ] || fail "--deadline 1s took $((t1 - t0)) ms"

"$CBX" exec --breaker L -- touch "$TMP/ran" >"$TMP/out" 2>"$TMP/err" &
waiter=$!
sleep 0.5
t0=$(now_ms)
kill -TERM "$waiter"
wait "$waiter"
rc=$?
t1=$(now_ms)
expect_rc 130 "SIGTERM while waiting for L's record"
[ $((t1 - t0)) -lt 9000 ] || fail "SIGTERM took $((t1 - t0)) ms to end the wait"
[ ! -e "$TMP/ran" ] || fail "the command ran after SIGTERM"

exec 9>&- # the holder exits, and the lock goes with it
wait "$holder"
run "$CBX" exec --deadline 5s --breaker L -- touch "$TMP/ran"
expect_rc 0 "L once the lock is gone"
[ -e "$TMP/ran" ] || fail "the command did not run"

# ---- a full file system ------------------------------------------------------------------------
fs="$TMP/fs"
mkdir -m 0700 "$fs"
if ! mount -t tmpfs -o size=1M,mode=0700 tmpfs "$fs" 2>/dev/null; then
    echo "SKIP [$TEST]: cannot mount a tmpfs (needs root): the full-disk part did not run" >&2
    echo "ok [$TEST]"
    exit 0
fi
trap 'umount -l "$fs"; rm -rf "$TMP"' EXIT
fill() {
    dd if=/dev/zero of="$fs/fill" bs=4k 2>/dev/null
    dd if=/dev/zero bs=1 count=4096 2>/dev/null >>"$fs/fill"
}
export CBX_STATE_DIR="$fs"
# a tmpfs smaller than the 16 MiB file: list once touched every record and died of SIGBUS
run "$CBX" breaker list
expect_rc 0 "breaker list on a 1 MiB tmpfs"
run "$CBX" exec --no-journal --breaker A -- true
expect_rc 0 "A on a 1 MiB tmpfs"
fill
run "$CBX" exec --no-journal --breaker NEW -- touch "$TMP/new-ran"
expect_rc 76 "a new breaker on a full file system"
expect_err_line "no space left on its file system to add breaker 'NEW'" "why"
[ ! -e "$TMP/new-ran" ] || fail "the command ran without its breaker"
run "$CBX" exec --no-journal --breaker A -- true
expect_rc 0 "A, already in the file, on a full file system"
run "$CBX" breaker list --json
expect_rc 0 "list on a full file system"
[ "$(jqv '.[] | select(.name == "A") | .calls')" = "2" ] || fail "A's calls: $(cat "$TMP/out")"

# no store yet, and no room to make one: refused, nothing left behind; made once there is room
rm "$fs/breakers"
fill
run "$CBX" exec --no-journal --breaker A -- true
expect_rc 76 "no room to make the store"
expect_err_line "no space left on its file system" "why"
[ -z "$(ls "$fs" | grep breakers)" ] || fail "left behind: $(ls "$fs")"
rm "$fs/fill"
run "$CBX" exec --no-journal --breaker A -- true
expect_rc 0 "the store is made once there is room"
run "$CBX" breaker show A --json
[ "$(jqv .calls)" = "1" ] || fail "A after the store was made: $(cat "$TMP/out")"
echo "ok [$TEST]"
