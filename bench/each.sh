#!/usr/bin/env bash
# cbx exec --each beside xargs -P and GNU parallel: N input lines (default 10,000), P at a time
# (default 4), one `true` per line, in one hyperfine run. cbx with the journal off and on (every
# job journaled). Prints a Markdown section on stdout (bench/run puts it into
# docs/BENCHMARKS.md); speed is reported, never asserted.
#
# Usage: bench/each.sh [path/to/cbx]    (default build/cli/cbx)
# Environment: CBX_EACH_N (10000), CBX_EACH_P (4), CBX_EACH_RUNS (hyperfine runs, default 3).
set -euo pipefail
cbx=$(realpath "${1:-build/cli/cbx}")
n=${CBX_EACH_N:-10000}
p=${CBX_EACH_P:-4}
runs=${CBX_EACH_RUNS:-3}
for t in hyperfine xargs parallel jq; do
    command -v "$t" >/dev/null || { echo "bench/each.sh: needs $t (scripts/deps bench)" >&2; exit 2; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CBX_STATE_DIR="$work/state"
mkdir -p "$CBX_STATE_DIR"
seq "$n" >"$work/items"
"$cbx" exec -- true # the journal exists, as after a first run

hyperfine --style none --runs "$runs" --export-json "$work/h.json" \
    -n "xargs -P$p" "xargs -P$p -n1 -d '\n' true <$work/items >/dev/null" \
    -n "parallel -j$p" "parallel --will-cite -j$p true {} <$work/items >/dev/null" \
    -n "cbx exec -j$p --each --no-journal" \
    "$cbx exec -j$p --each -q --no-journal -a $work/items -- true {} >/dev/null" \
    -n "cbx exec -j$p --each (journal on)" \
    "$cbx exec -j$p --each -q -a $work/items -- true {} >/dev/null" \
    -n "cbx exec -j$p --each --joblog (journal on)" \
    "$cbx exec -j$p --each -q --joblog $work/joblog -a $work/items -- true {} >/dev/null" \
    >"$work/h.out" 2>&1 || { cat "$work/h.out" >&2; exit 1; }
rows=$(($(wc -l <"$work/joblog") - 1))
journaled=$(sqlite3 "$CBX_STATE_DIR/journal.db" 'select count(*) from executions' 2>/dev/null || echo "?")
load=$(cut -d' ' -f1-3 /proc/loadavg)

echo "## One execution per input line: cbx exec --each, xargs, GNU parallel"
echo
echo "Measured $(date -u +"%Y-%m-%d %H:%M") UTC, libcbx commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
echo
echo "$n lines, $p at a time, each running \`true\`; $runs hyperfine runs of each (mean and"
echo "min wall-clock; CPU is user + system of the whole tree, the $n processes included, so the"
echo "difference between two rows is the difference between the two runners). Load average when"
echo "it ended: $load. On a loaded machine wall-clock follows the load more than the runner;"
echo "the CPU of the tree is the steadier comparison."
echo
echo "| runner | mean s | min s | CPU s (mean) | wall per job, us | mean / xargs's | CPU / xargs's |"
echo "|---|---:|---:|---:|---:|---:|---:|"
jq -r --argjson n "$n" '.results as $r | ($r[0].mean) as $base | ($r[0].user + $r[0].system) as $bcpu | $r[] |
    "| \(.command) | \(.mean * 1000 | round / 1000) | \(.min * 1000 | round / 1000) | \((.user + .system) * 1000 | round / 1000) | \(.mean / $n * 1e6 | round) | \(.mean / $base * 100 | round / 100)x | \((.user + .system) / $bcpu * 100 | round / 100)x |"' \
    "$work/h.json"
echo
echo "- the joblog of the last cbx run has $rows rows for $n lines; the journal holds $journaled"
echo "  executions (a row per job of the two journaled cbx rows, each pass, and one first run)."
echo "- command: \`bench/each.sh $(realpath --relative-to="$PWD" "$cbx" 2>/dev/null || echo "$cbx")\`"
echo
