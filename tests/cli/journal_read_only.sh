#!/usr/bin/env bash
# history and stats on a journal the user may read but not write: they open it read-only.
# Root ignores file modes, so the queries run as nobody (setpriv); skips (77) where it cannot.
. "$(dirname "$0")/lib.bash"

as_nobody() {
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null || ! as_nobody true 2>/dev/null; then
    echo "SKIP [$TEST]: needs root and setpriv to query as an unprivileged user" >&2
    exit 77
fi

run "$CBX" exec -p argv='["echo","hi"]' command
expect_rc 0 "exec"
run "$CBX" exec -- false
# readable by all, writable by root only (the journal is made 0700/0600: open it up to reads)
chmod 755 "$TMP" "$CBX_STATE_DIR"
chmod 644 "$CBX_STATE_DIR"/journal.db*
as_nobody test -w "$CBX_STATE_DIR/journal.db" && fail "nobody may write the journal"

check_queries() { # WHAT
    run as_nobody "$CBX" history --json
    expect_rc 0 "$1: history"
    [ "$(jqv 'length')" = 2 ] || fail "$1: history: $(cat "$TMP/out")"
    [ ! -s "$TMP/err" ] || fail "$1: history: stderr: $(cat "$TMP/err")"
    id=$(jqv '.[1].id')
    run as_nobody "$CBX" history show "$id" --json
    expect_rc 0 "$1: history show"
    [ "$(jqv '.outputs.stdout')" = "hi" ] || fail "$1: history show: $(cat "$TMP/out")"
    run as_nobody "$CBX" stats --json
    expect_rc 0 "$1: stats"
    [ "$(jqv '"\(.executions) \(.successes) \(.failures)"')" = "2 1 1" ] ||
        fail "$1: stats: $(cat "$TMP/out")"
}

# with the -wal and -shm files a writer left
[ -e "$CBX_STATE_DIR/journal.db-wal" ] || fail "no -wal file after exec"
check_queries "with -wal"
run as_nobody "$CBX" --state-dir "$CBX_STATE_DIR" stats --json
expect_rc 0 "--state-dir before a reading command"
run as_nobody "$CBX" stats --state-dir "$CBX_STATE_DIR" --json
expect_rc 0 "--state-dir after a reading command"

# clearing writes: refused, with the reason (the state directory is another user's: cbx makes
# and writes nothing there; reading it is allowed)
run as_nobody "$CBX" history clear --yes
expect_rc 2 "history clear by nobody"
expect_err_line "is owned by uid 0, not by this user" "history clear by nobody"

# checkpointed, without -wal and -shm, which nobody may not make in this directory
if command -v sqlite3 >/dev/null; then
    sqlite3 "$CBX_STATE_DIR/journal.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null ||
        fail "checkpoint"
    rm -f "$CBX_STATE_DIR/journal.db-wal" "$CBX_STATE_DIR/journal.db-shm"
    check_queries "without -wal"
else
    echo "note [$TEST]: no sqlite3: the case without -wal files was not run" >&2
fi
echo "ok"
