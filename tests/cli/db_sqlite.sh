# The sqlite executor from the command line: a table made, rows inserted in a transaction with
# bound parameters, read back as JSON; bad input and SQL errors as one line naming the place.
. "$(dirname "$0")/lib.bash"

db="$TMP/t.db"
run "$CBX" exec sqlite -p database="$db" -p 'sql=CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)'
expect_rc 0 "create"
run "$CBX" exec sqlite -p database="$db" --json \
    -p 'statements=[{"sql": "INSERT INTO t (v) VALUES (?)", "params": ["a"]}, {"sql": "INSERT INTO t (v) VALUES (:v)", "params": {"v": "b"}}]'
expect_rc 0 "a transaction"
[ "$(jqv '.outputs.committed')" = true ] || fail "not committed: $(cat "$TMP/out")"
run "$CBX" exec sqlite -p database="$db" -p 'sql=SELECT id, v FROM t WHERE v <> ? ORDER BY id' \
    -p 'params=["zzz"]' -p max_rows=1 --json
expect_rc 0 "select"
[ "$(jqv '.outputs.rows | tojson')" = '[{"id":1,"v":"a"}]' ] || fail "rows: $(cat "$TMP/out")"
[ "$(jqv '.outputs.truncated')" = true ] || fail "not flagged truncated"

run "$CBX" exec sqlite -p database="$db" -p 'sql=SELECT * FROM missing'
expect_rc 1 "a missing table"
expect_err_line "sqlite: sql: no such table: missing" "a missing table"
run "$CBX" exec sqlite -p database="$db" -p 'sql=INSERT INTO t (v) VALUES (1)' -p read_only=true
expect_rc 1 "a write in read-only mode"
expect_err_line "attempt to write a readonly database" "read-only"
run "$CBX" exec sqlite -p database="$db"
expect_rc 2 "neither sql nor statements"
expect_err_line "sql" "neither sql nor statements"
run "$CBX" exec sqlite -p database="$db" -p 'sql=SELECT ?' -p 'params="x"'
expect_rc 2 "params of the wrong type"
expect_err_line "params" "params of the wrong type"
exit 0
