#!/usr/bin/env bash
# PostgreSQL single-row SELECTs at concurrency 8: the postgres executor (build/bench/pg_select,
# one runtime, one loop thread, a pool of 8 connections) beside `pgbench -S -c 8` on the same
# private server (tests/db/with_pg.sh), same tables, same statement, same duration (and
# `pgbench -S -M prepared` for reference). Prints a
# Markdown section on stdout (bench/run puts it into docs/BENCHMARKS.md); speed is reported,
# never asserted. Exit 77 when PostgreSQL is not installed (scripts/deps test installs it).
#
# Usage: bench/postgres.sh [path/to/cbx]   (its build directory holds bench/pg_select; default
# build/cli/cbx). Environment: CBX_PG_SECONDS (default 10), CBX_PG_CLIENTS (default 8),
# CBX_PG_ROUNDS (default 3: each driver that many times, interleaved; the best run of each counts).
set -euo pipefail
cbx=${1:-build/cli/cbx}
build=$(cd "$(dirname "$cbx")/.." && pwd)
cd "$(dirname "$0")/.."
secs=${CBX_PG_SECONDS:-10}
clients=${CBX_PG_CLIENTS:-8}
rounds=${CBX_PG_ROUNDS:-3}
[ -x "$build/bench/pg_select" ] || {
    echo "bench/postgres.sh: build $build/bench/pg_select first" >&2
    exit 2
}
export cbx build secs clients rounds
# shellcheck disable=SC2016
exec bash tests/db/with_pg.sh bash -c '
set -euo pipefail
pgb=$CBX_PG_BIN/pgbench
command -v pgbench >/dev/null && pgb=pgbench
"$pgb" -i -q -s 1 >/dev/null 2>&1
# each side twice, interleaved; the better run of each counts
best_pgb=0 best_ext=0 best_cbx=0 cpu=0
tps() { "$pgb" -S -n -c "$clients" -j 1 -T "$secs" "$@" 2>/dev/null |
        sed -n "s/^tps = \([0-9.]*\).*/\1/p" | head -1; }
max() { awk -v a="$1" -v b="$2" "BEGIN{print (b>a)?b:a}"; }
for round in $(seq 1 "$rounds"); do
    t=$(tps)
    out=$("$build/bench/pg_select" -c "$clients" -T "$secs")
    c=$(echo "$out" | cut -f3)
    [ "$(max "$best_cbx" "$c")" = "$c" ] && cpu=$(echo "$out" | cut -f4)
    e=$(tps -M prepared)
    echo "round $round: pgbench -S $t tps, cbx postgres $c tps, pgbench -S -M prepared $e tps" >&2
    best_pgb=$(max "$best_pgb" "$t")
    best_cbx=$(max "$best_cbx" "$c")
    best_ext=$(max "$best_ext" "$e")
done
ratio=$(awk -v a="$best_cbx" -v b="$best_pgb" "BEGIN{printf \"%.0f\", 100*a/b}")
ver=$("$CBX_PG_BIN/postgres" -V | cut -d" " -f3)
echo "## PostgreSQL single-row SELECTs: the postgres executor and pgbench -S"
echo
echo "Measured $(date -u "+%Y-%m-%d %H:%M") UTC, libcbx commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
echo
echo "PostgreSQL $ver on loopback TCP, pgbench scale 1, $clients clients, ${secs} s per run, best of $rounds"
echo "runs each, interleaved; \`bench/postgres.sh\` on $(nproc) cores (load at start: $(cut -d" " -f1-3 /proc/loadavg))."
echo
echo "| driver | transactions/s |"
echo "|---|---|"
echo "| \`pgbench -S -n -c $clients -j 1\` | $(printf %.0f "$best_pgb") |"
echo "| \`pgbench -S -n -c $clients -j 1 -M prepared\` (Bind and Execute only, as the executor sends a statement a connection has prepared) | $(printf %.0f "$best_ext") |"
echo "| \`postgres\` executor (bench/pg_select, max_concurrent $clients, pool_size $clients; $cpu us of client CPU per transaction) | $(printf %.0f "$best_cbx") |"
echo
status="met"
[ "$ratio" -ge 70 ] || status="not met"
echo "- Target: at least 70% of the transactions per second of \`pgbench -S -c $clients\`: ${ratio}%, $status."
echo "- command: \`bench/postgres.sh $cbx\`"
echo
'
