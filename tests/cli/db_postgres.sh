# The postgres executor from the command line against a private server (tests/db/with_pg.sh):
# rows as JSON, a SQL error as one line with the server's message and position, and neither the
# password parameter nor a password inside conninfo in the journal.
if [ -z "${CBX_PG_STATE:-}" ]; then
    exec bash "$(dirname "$0")/../db/with_pg.sh" bash "$0" "$@"
fi
. "$(dirname "$0")/lib.bash"

conn=(-p host="$PGHOST" -p port="$PGPORT" -p user="$PGUSER" -p password="$PGPASSWORD"
    -p dbname="$PGDATABASE")
run "$CBX" exec postgres "${conn[@]}" -p 'sql=SELECT $1::int * 2 AS n, $2::jsonb AS j' \
    -p 'params=[21, {"k": [true]}]' --json
expect_rc 0 "a select"
[ "$(jqv '.outputs.rows | tojson')" = '[{"n":42,"j":{"k":[true]}}]' ] ||
    fail "rows: $(cat "$TMP/out")"

# a real parameter is sent with the fewest digits that read back: 0.1 into a numeric stays 0.1
run "$CBX" exec postgres "${conn[@]}" \
    -p 'sql=SELECT ($1::numeric)::text AS t, $2::numeric = 2.571 AS same' -p 'params=[0.1, 2.571]' --json
expect_rc 0 "real parameters"
[ "$(jqv '.outputs.rows | tojson')" = '[{"t":"0.1","same":true}]' ] ||
    fail "real parameters: $(cat "$TMP/out")"

run "$CBX" exec postgres "${conn[@]}" -p 'sql=SELECT nope FROM pg_class'
expect_rc 1 "an unknown column"
expect_err_line 'ERROR 42703: column "nope" does not exist (at character 8)' "an unknown column"

ci="host=$PGHOST port=$PGPORT user=$PGUSER password=$PGPASSWORD dbname=$PGDATABASE"
run "$CBX" exec postgres -p conninfo="$ci" -p 'sql=SELECT 1 AS one' --json
expect_rc 0 "conninfo"
[ "$(jqv '.metadata.server')" = "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER" ] ||
    fail "metadata.server: $(jqv '.metadata.server')"
grep -rqa -- "SELECT 1 AS one" "$CBX_STATE_DIR" || fail "the journal does not hold the request"
if grep -rqa -- "$PGPASSWORD" "$CBX_STATE_DIR" "$TMP/out"; then
    fail "the password is in the journal or the output"
fi
exit 0
