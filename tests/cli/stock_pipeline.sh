#!/usr/bin/env bash
# examples/flows/stock_pipeline.yaml runs as written: a file built in a container (Podman's API
# service, scripts/podman-service), loaded into SQLite, priced in PostgreSQL (a private server,
# tests/db/with_pg.sh), reported by a local Lambda function (python3, function_dir). Skips (77)
# when podman cannot run containers or PostgreSQL is not installed.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/../container/lib.bash"
cd "$ROOT" || fail "no source tree"
mkdir -p "$TMP/work"
bash tests/db/with_pg.sh "$CBX" run examples/flows/stock_pipeline.yaml -i workdir="$TMP/work" \
    >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 77 ] && { echo "SKIP [$TEST]: PostgreSQL is not installed"; exit 77; }
expect_rc 0 "the stock pipeline"
[ "$(jqv .report)" = "10 items in 3 kinds worth 16.10; most: plum" ] || fail "report: $(cat "$TMP/out")"
[ "$(jqv .value)" = 16.1 ] && [ "$(jqv .cold_start)" = true ] || fail "outputs: $(cat "$TMP/out")"
[ -s "$TMP/work/stock.json" ] || fail "the container did not write stock.json"
run "$CBX" exec sqlite -p database="$TMP/work/stock.db" -p 'sql=SELECT sum(qty) AS n FROM stock' --json
[ "$(jqv '.outputs.rows[0].n')" = 10 ] || fail "stock.db: $(cat "$TMP/out")"
exit 0
