# examples/flows/sqlite_words.yaml runs as written: a transaction, a load from a bound JSON
# array (a word that looks like SQL stays a word), a read-only ranking.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
run "$CBX" run "$ROOT/examples/flows/sqlite_words.yaml" -i database="$TMP/words.db"
expect_rc 0 "the flow"
[ "$(jqv .loaded)" = 7 ] || fail "loaded: $(cat "$TMP/out")"
[ "$(jqv '.top | tojson')" = '[{"w":"fig","n":3},{"w":"kiwi","n":2},{"w":"it'"'"'s; DROP TABLE words","n":1}]' ] ||
    fail "top: $(cat "$TMP/out")"
run "$CBX" run "$ROOT/examples/flows/sqlite_words.yaml" -i database="$TMP/words.db" -i words='["b", "a", "b"]'
expect_rc 0 "a second run replaces the table"
[ "$(jqv '.top | tojson')" = '[{"w":"b","n":2},{"w":"a","n":1}]' ] || fail "top: $(cat "$TMP/out")"
exit 0
