# Sourced by the container executor's cli tests after tests/cli/lib.bash: a Podman API service of
# the test's own (scripts/podman-service) on a socket in $TMP, stopped at the end. Skips (77)
# when podman cannot run containers on this machine.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PODDIR="$TMP/podman"
IMAGE=localhost/cbx-busybox:latest
trap '"$ROOT/scripts/podman-service" stop "$PODDIR" >/dev/null 2>&1; rm -rf "$TMP"' EXIT
"$ROOT/scripts/podman-service" start "$PODDIR" >"$TMP/podman-start.out" 2>"$TMP/podman-start.err"
prc=$?
if [ "$prc" -eq 77 ]; then
    echo "SKIP [$TEST]: $(cat "$TMP/podman-start.err")" >&2
    exit 77
fi
[ "$prc" -eq 0 ] || fail "scripts/podman-service start: $(cat "$TMP/podman-start.err")"
eval "$("$ROOT/scripts/podman-service" env "$PODDIR")"
export CONTAINERS_CONF DOCKER_HOST

# containers_of OWNER_PID: the ids of the containers whose cbx owner was that pid, all states.
containers_of() {
    podman ps -a --filter "label=io.cbx.owner" --format '{{.ID}} {{index .Labels "io.cbx.owner"}}' |
        awk -v pid="$1" '{ n = split($2, f, "/"); if (f[3] == pid) print $1 }'
}

# running_containers_of OWNER_PID: the same, those running only.
running_containers_of() {
    podman ps --filter "label=io.cbx.owner" --filter status=running \
        --format '{{.ID}} {{index .Labels "io.cbx.owner"}}' |
        awk -v pid="$1" '{ n = split($2, f, "/"); if (f[3] == pid) print $1 }'
}
