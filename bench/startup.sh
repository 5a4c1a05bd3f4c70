#!/usr/bin/env bash
# Start-up of the cbx binary beside `timeout 5 true` (the floor of a process that wraps
# another), in one hyperfine run: `cbx --version`, `cbx exec -- true` with the journal off and
# on (a fresh state directory, so the journal is opened as every later run opens it). Prints a
# Markdown section on stdout (bench/run puts it into docs/BENCHMARKS.md); speed is reported,
# never asserted.
#
# Usage: bench/startup.sh [path/to/cbx]    (default build/cli/cbx)
# Environment: CBX_STARTUP_RUNS (default 300), CBX_STARTUP_WARMUP (default 30).
set -euo pipefail
cbx=${1:-build/cli/cbx}
runs=${CBX_STARTUP_RUNS:-300}
warmup=${CBX_STARTUP_WARMUP:-30}
command -v hyperfine >/dev/null || { echo "bench/startup.sh: needs hyperfine (scripts/deps bench)" >&2; exit 2; }
[ -x "$cbx" ] || { echo "bench/startup.sh: no cbx at $cbx" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CBX_STATE_DIR="$work/state"
mkdir -p "$CBX_STATE_DIR"
"$cbx" exec -- true # the journal exists, as after a first run

hyperfine -N --style none --warmup "$warmup" --runs "$runs" --export-json "$work/h.json" \
    'timeout 5 true' "$cbx --version" "$cbx exec --no-journal -- true" "$cbx exec -- true" \
    >"$work/h.out" 2>&1 || { cat "$work/h.out" >&2; exit 1; }

# Instructions executed by the process itself (callgrind; children not followed), when valgrind is
# there: unlike times, they do not follow the machine's load. The first "Collected" line of a run
# is the process started (a process it forks is counted apart, later).
instructions() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
        awk '/Collected :/ && !n { n = $NF } END { print n }' || true
}
icounts=""
if command -v valgrind >/dev/null; then
    icounts="timeout 5 true: $(instructions timeout 5 true); cbx --version: $(instructions "$cbx" --version);"
    icounts="$icounts cbx exec --no-journal -- true: $(instructions "$cbx" exec --no-journal -- true);"
    icounts="$icounts cbx exec -- true: $(instructions "$cbx" exec -- true)"
fi

loader_cycles=$(LD_DEBUG=statistics "$cbx" --version 2>&1 >/dev/null |
    awk '/total startup time in dynamic loader/ { print $(NF-1); exit }')
nlibs=$(LD_DEBUG=files "$cbx" --version 2>&1 >/dev/null | grep -c 'file=.*\[0\];  needed by' || true)
load=$(cut -d' ' -f1-3 /proc/loadavg)

echo "## Start-up"
echo
echo "Measured $(date -u +"%Y-%m-%d %H:%M") UTC, libcbx commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
echo
echo "One hyperfine run ($runs runs of each command after $warmup warm-ups, \`-N\`: no shell);"
echo "load average when it ended: $load. Median and min are wall-clock; CPU is user + system"
echo "(mean). On a loaded machine the median follows the load; the min (the best case, as on an"
echo "idle machine) and the CPU are the steadier comparisons, and the ratios use them. The journal"
echo "is a file that already exists (the run's state directory), as for every \`cbx exec\` after"
echo "the first."
echo
echo "| command | median ms | min ms | CPU ms (mean) | min / timeout's | CPU / timeout's |"
echo "|---|---:|---:|---:|---:|---:|"
jq -r '.results as $r | ($r[0].min) as $bmin | ($r[0].user + $r[0].system) as $bcpu | $r[] |
    "| `\(.command | sub("^[^ ]*/cbx"; "cbx"))` | \(.median * 1000 * 100 | round / 100) | \(.min * 1000 * 100 | round / 100) | \((.user + .system) * 1000 * 100 | round / 100) | \(.min / $bmin * 100 | round / 100)x | \((.user + .system) / $bcpu * 100 | round / 100)x |"' \
    "$work/h.json"
echo
echo "- shared objects \`cbx --version\` loads: $nlibs (LD_DEBUG=files); time in the dynamic loader:"
echo "  $loader_cycles cycles (LD_DEBUG=statistics). libcurl is loaded only by the http executor"
echo "  (docs/design.md, \"Start-up\")."
[ -n "$icounts" ] && echo "- instructions of the process alone (callgrind): $icounts"
echo "- command: \`bench/startup.sh $cbx\`"
echo
