# cbx exec -- CMD opens the journal's database on the journal's thread while the command runs
# (docs/journal.md, "Opening and closing"): what can be checked before (the directory, the file,
# a symbolic link) still refuses to run; a database that turns out not to be a journal is said at
# the end, the command having run, its records lost: its own exit code, or 74 with
# --journal-required. The record of a run is in the journal as soon as cbx exec returns.
. "$(dirname "$0")/lib.bash"

# the usual case: each run's record is there as soon as cbx exec returns
for i in 1 2 3; do
    run "$CBX" exec -- sh -c "exit $i"
    expect_rc "$i" "run $i"
    run "$CBX" history --json --limit 10
    expect_rc 0 "history after run $i"
    [ "$(jqv 'length')" = "$i" ] || fail "history after run $i: $(cat "$TMP/out")"
done

# an SQLite database of someone else's, made by the sqlite executor (no journal for that run)
other="$TMP/other"
mkdir -m 0700 "$other"
run "$CBX" --state-dir "$other" exec --no-journal sqlite -p database="$other/journal.db" \
    -p 'sql=CREATE TABLE theirs (x)'
expect_rc 0 "a foreign database made"
run "$CBX" --state-dir "$other" exec -- sh -c "touch '$TMP/ran'; exit 3"
expect_rc 3 "the command's own exit code, the journal not opened"
expect_err_line "journal: journal $other/journal.db: not a cbx journal" "the failed open is said"
[ -e "$TMP/ran" ] || fail "the command did not run"
rm -f "$TMP/ran"
run "$CBX" --state-dir "$other" exec --journal-required -- sh -c "touch '$TMP/ran'; exit 3"
expect_rc 74 "--journal-required, the journal not opened"
expect_err_line "not a cbx journal" "the failed open is said with --journal-required"
[ -e "$TMP/ran" ] || fail "the command did not run with --journal-required"
# the foreign database is untouched: its table, and no journal table
run "$CBX" --state-dir "$other" exec --no-journal sqlite -p database="$other/journal.db" --json \
    -p "sql=SELECT group_concat(name) AS names FROM sqlite_master"
expect_rc 0 "the foreign database read back"
[ "$(jqv '.outputs.rows[0].names')" = theirs ] || fail "the foreign database changed: $(cat "$TMP/out")"

# what is checked before the command runs still stops it: a symbolic link for the journal
linked="$TMP/linked"
mkdir -m 0700 "$linked"
ln -s "$TMP/victim" "$linked/journal.db"
rm -f "$TMP/ran"
run "$CBX" --state-dir "$linked" exec -- touch "$TMP/ran"
expect_rc 70 "a symbolic link for the journal"
expect_err_line "symbolic link; refusing to follow it" "the refusal says why"
[ ! -e "$TMP/ran" ] || fail "the command ran although the journal was refused"
exit 0
