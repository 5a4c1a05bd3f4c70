#!/usr/bin/env bash
# PostgreSQL single-row SELECTs at concurrency 8: the postgres executor (build/bench/pg_select,
# one runtime, one loop thread, a pool of 8 connections) beside `pgbench -S -c 8` on the same
# private server (tests/db/with_pg.sh), same tables, same statement, same duration. Prints a
# Markdown section. CBX_PG_SECONDS (default 10), CBX_PG_CLIENTS (8), CBX_BUILD_DIR (build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${CBX_BUILD_DIR:-build}
secs=${CBX_PG_SECONDS:-10}
clients=${CBX_PG_CLIENTS:-8}
[ -x "$build/bench/pg_select" ] || {
    echo "bench/postgres.sh: build $build/bench/pg_select first" >&2
    exit 2
}
export build secs clients
# shellcheck disable=SC2016
exec bash tests/db/with_pg.sh bash -c '
set -euo pipefail
pgb=$CBX_PG_BIN/pgbench
command -v pgbench >/dev/null && pgb=pgbench
"$pgb" -i -q -s 1 >/dev/null 2>&1
# each side twice, interleaved; the better run of each counts
best_pgb=0 best_ext=0 best_cbx=0
tps() { "$pgb" -S -n -c "$clients" -j 1 -T "$secs" "$@" 2>/dev/null |
        sed -n "s/^tps = \([0-9.]*\).*/\1/p" | head -1; }
max() { awk -v a="$1" -v b="$2" "BEGIN{print (b>a)?b:a}"; }
for round in 1 2; do
    t=$(tps)
    c=$("$build/bench/pg_select" -c "$clients" -T "$secs" | cut -f3)
    e=$(tps -M extended)
    echo "round $round: pgbench -S $t tps, cbx postgres $c tps, pgbench -S -M extended $e tps" >&2
    best_pgb=$(max "$best_pgb" "$t")
    best_cbx=$(max "$best_cbx" "$c")
    best_ext=$(max "$best_ext" "$e")
done
ratio=$(awk -v a="$best_cbx" -v b="$best_pgb" "BEGIN{printf \"%.0f\", 100*a/b}")
ver=$("$CBX_PG_BIN/postgres" -V | cut -d" " -f3)
echo "## PostgreSQL single-row SELECTs (postgres executor vs pgbench -S)"
echo
echo "PostgreSQL $ver on loopback TCP, pgbench scale 1, $clients clients, ${secs} s per run, best of 2"
echo "runs each, interleaved; \`bench/postgres.sh\` on $(nproc) cores (load at start: $(cut -d" " -f1-3 /proc/loadavg))."
echo
echo "| driver | transactions/s |"
echo "|---|---|"
echo "| \`pgbench -S -n -c $clients -j 1\` | $(printf %.0f "$best_pgb") |"
echo "| \`pgbench -S -n -c $clients -j 1 -M extended\` (the executor's protocol: Parse, Bind, Execute) | $(printf %.0f "$best_ext") |"
echo "| \`postgres\` executor (bench/pg_select, max_concurrent $clients, pool_size $clients) | $(printf %.0f "$best_cbx") |"
echo "| ratio | ${ratio}% (target >= 70%) |"
'
