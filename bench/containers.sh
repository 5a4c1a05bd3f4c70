#!/usr/bin/env bash
# The container executor beside the podman CLI: N containers (default 50) running `true`, P at
# a time (default 4), through `cbx exec --repeat N -j P container` on Podman's API service
# versus `podman run --rm` under `xargs -P P`, in one hyperfine run. Both use the same image,
# the same containers.conf and no network. Prints a Markdown section on stdout (bench/run puts
# it into docs/BENCHMARKS.md); speed is reported, never asserted.
#
# Usage: bench/containers.sh [path/to/cbx]    (default build/cli/cbx)
# Environment: CBX_CTR_N (50), CBX_CTR_P (4), CBX_CTR_RUNS (hyperfine runs, default 3).
set -euo pipefail
cbx=$(realpath "${1:-build/cli/cbx}")
n=${CBX_CTR_N:-50}
p=${CBX_CTR_P:-4}
runs=${CBX_CTR_RUNS:-3}
for t in hyperfine xargs jq; do
    command -v "$t" >/dev/null || { echo "bench/containers.sh: needs $t (scripts/deps bench)" >&2; exit 2; }
done
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap '"$root/scripts/podman-service" stop "$work/podman" >/dev/null 2>&1; rm -rf "$work"' EXIT
"$root/scripts/podman-service" start "$work/podman" >/dev/null
eval "$("$root/scripts/podman-service" env "$work/podman")"
export CONTAINERS_CONF DOCKER_HOST
export CBX_STATE_DIR="$work/state"
mkdir -p -m 0700 "$CBX_STATE_DIR"
image=localhost/cbx-busybox:latest
seq "$n" >"$work/items"
"$cbx" exec -q container -p image=$image -p command=true # the journal exists; the reap is done
podman run --rm --network none $image true                # the CLI's caches are warm

# One hyperfine run per runner, with the API service's CPU time read around each (the service
# works for cbx; the podman CLI does that work in its own processes, which hyperfine counts).
service=$(cat "$work/podman/service.pid")
ticks() { awk '{ print $14 + $15 }' "/proc/$service/stat"; }
names=("podman run --rm, xargs -P$p" "cbx exec --repeat $n -j$p container"
    "cbx exec --repeat $n -j$p container, stats off")
cmds=("xargs -P$p -I{} podman run --rm --network none $image true <$work/items >/dev/null"
    "$cbx exec -q --repeat $n -j$p container -p image=$image -p command=true"
    "$cbx exec -q --repeat $n -j$p container -p image=$image -p command=true -p stats=false")
for i in 0 1 2; do
    t0=$(ticks)
    hyperfine --style none --runs "$runs" --export-json "$work/h$i.json" -n "${names[$i]}" "${cmds[$i]}" \
        >"$work/h.out" 2>&1 || { cat "$work/h.out" >&2; exit 1; }
    echo $(($(ticks) - t0)) >"$work/svc$i"
done
hz=$(getconf CLK_TCK)
for i in 0 1 2; do
    jq --argjson svc "$(cat "$work/svc$i")" --argjson hz "$hz" --argjson runs "$runs" \
        '.results[0] + {service: ($svc / $hz / $runs)}' "$work/h$i.json"
done | jq -s '{results: .}' >"$work/h.json"
left=$(podman ps -a -q --filter label=io.cbx.owner | wc -l)
load=$(cut -d' ' -f1-3 /proc/loadavg)
version=$(podman version --format '{{.Server.Version}}' 2>/dev/null || echo "?")

echo "## Containers: cbx's container executor beside podman run"
echo
echo "Measured $(date -u +"%Y-%m-%d %H:%M") UTC, libcbx commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown), Podman $version (runc)."
echo
echo "$n containers running \`true\` ($image, busybox), $p at a time, no network; $runs"
echo "hyperfine runs of each (mean and min wall-clock). cbx speaks the Docker Engine API to"
echo "\`podman system service\` on a unix socket (create, attach, start, inspect, remove; the"
echo "journal on); the peer starts a \`podman run --rm\` process per container. CPU: user + system"
echo "of the runner's process tree (hyperfine), plus the API service's own CPU time over the same"
echo "runs (/proc/PID/stat), per run; conmon, runc and Podman's cleanup processes run for both"
echo "alike and are not counted. Load average when it ended: $load (the machine is shared:"
echo "wall-clock follows the load; the CPU is the steadier comparison)."
echo
echo "| runner | mean s | min s | per container, ms | mean / podman run's | CPU s: runner + API service | CPU / podman run's |"
echo "|---|---:|---:|---:|---:|---:|---:|"
jq -r --argjson n "$n" '.results as $r | ($r[0].mean) as $base |
    ($r[0].user + $r[0].system + $r[0].service) as $bcpu | $r[] |
    (.user + .system + .service) as $cpu |
    "| \(.command) | \(.mean * 1000 | round / 1000) | \(.min * 1000 | round / 1000) | \(.mean / $n * 1000 | round) | \(.mean / $base * 100 | round / 100)x | \(.user + .system | . * 100 | round / 100) + \(.service * 100 | round / 100) | \($cpu / $bcpu * 100 | round / 100)x |"' \
    "$work/h.json"
echo
echo "- containers with a cbx owner label left on the engine afterwards: $left"
echo "- command: \`bench/containers.sh $(realpath --relative-to="$PWD" "$cbx" 2>/dev/null || echo "$cbx")\`"
echo
