# Ids a person can type: `cbx history` shows the distinguishing tail of each id (ids are
# time-ordered, so their heads are alike), and `history show` accepts what is shown.
. "$(dirname "$0")/lib.bash"

run "$CBX" exec --repeat 30 --parallel 4 -- true
expect_rc 0 "30 executions"
run "$CBX" history --limit 30
expect_rc 0 "history"
tail -n +2 "$TMP/out" | awk '{print $3}' >"$TMP/shown"
[ "$(wc -l <"$TMP/shown")" = "30" ] || fail "expected 30 rows: $(cat "$TMP/out")"
[ "$(sort -u "$TMP/shown" | wc -l)" = "30" ] || fail "the ids shown are not distinct: $(cat "$TMP/shown")"
len=$(head -1 "$TMP/shown" | tr -d '\n' | wc -c)
[ "$len" -lt 36 ] || fail "whole ids shown: $(head -1 "$TMP/shown")"
while read -r id; do
    run "$CBX" history show "$id" --json
    expect_rc 0 "history show $id"
    case "$(jqv .id)" in *"$id") ;; *) fail "history show $id gave $(jqv .id)" ;; esac
done <"$TMP/shown"

# one after another, many in a millisecond: the ids sort as they were made
rm -rf "$CBX_STATE_DIR"/*
run "$CBX" exec chaos --repeat 300
expect_rc 0 "300 executions in a row"
"$CBX" history --json --limit 300 | jq -r '.[].id' >"$TMP/ids"
[ "$(wc -l <"$TMP/ids")" = "300" ] || fail "expected 300 ids"
sort -r "$TMP/ids" | cmp -s - "$TMP/ids" || fail "ids do not sort by creation: $(cat "$TMP/ids")"
exit 0
