#!/usr/bin/env bash
# The container executor against a real Podman API service: output and exit codes, parameters,
# captures, and bad input (a missing image, a dead engine, malformed volumes), each one line
# on stderr and no container left behind.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/../container/lib.bash"

# run_bg CMD...: as run, in the background, with the pid in $bgpid (to find its containers).
run_bg() {
    "$@" >"$TMP/out" 2>"$TMP/err" &
    bgpid=$!
    wait $bgpid
    rc=$?
}

# a command given as a string, split as a shell would
run_bg "$CBX" exec container -p image=$IMAGE -p 'command=echo hello "big world"' --json
expect_rc 0 "string command"
[ "$(jqv .outputs.stdout)" = "hello big world" ] || fail "string command: stdout $(jqv .outputs.stdout)"
[ "$(jqv .outputs.exit_code)" = 0 ] || fail "string command: exit_code"
[ "$(jqv .metadata.removed)" = true ] || fail "string command: not removed"
[ -z "$(containers_of $bgpid)" ] || fail "string command: container left: $(containers_of $bgpid)"

# argv, stdout and stderr apart, a failing exit code with the last stderr line
run "$CBX" exec container -p image=$IMAGE \
    -p 'command=["sh","-c","echo out; echo oops >&2; exit 3"]' --json
expect_rc 1 "exit 3"
[ "$(jqv .outputs.stdout)" = out ] || fail "exit 3: stdout"
[ "$(jqv .outputs.stderr)" = oops ] || fail "exit 3: stderr"
[ "$(jqv .outputs.exit_code)" = 3 ] || fail "exit 3: exit_code"
[ "$(jqv .error)" = "exit code 3: oops" ] || fail "exit 3: error $(jqv .error)"

# success_exit_codes
run "$CBX" exec container -p image=$IMAGE -p 'command=["sh","-c","exit 3"]' \
    -p 'success_exit_codes=[0,3]'
expect_rc 0 "success_exit_codes"

# environment, workdir, user, labels, network none
run "$CBX" exec container -p image=$IMAGE \
    -p 'command=["sh","-c","echo $GREETING $N; pwd; id -u; ls /sys/class/net"]' \
    -p 'environment={"GREETING":"hi there","N":7}' -p workdir=/tmp -p user=65534 \
    -p 'labels={"team":"data"}' --json
expect_rc 0 "environment"
[ "$(jqv .outputs.stdout)" = "$(printf 'hi there 7\n/tmp\n65534\nlo')" ] ||
    fail "environment/workdir/user/network: $(jqv .outputs.stdout)"

# volumes: one read-only, one read-write
mkdir -p "$TMP/in" "$TMP/outdir"
echo "from the host" >"$TMP/in/data.txt"
run "$CBX" exec container -p image=$IMAGE \
    -p 'command=["sh","-c","cat /in/data.txt > /out/copy.txt; echo x > /in/nope 2>/dev/null || echo ro"]' \
    -p "volumes=[\"$TMP/in:/in:ro\",\"$TMP/outdir:/out\"]" --json
expect_rc 0 "volumes"
[ "$(jqv .outputs.stdout)" = ro ] || fail "volumes: the :ro mount was writable"
[ "$(cat "$TMP/outdir/copy.txt")" = "from the host" ] || fail "volumes: nothing written through"

# captures are capped and flagged; every byte counted
run "$CBX" exec container -p image=$IMAGE -p 'command=["sh","-c","head -c 100000 /dev/zero | tr \"\\0\" a"]' \
    -p stdout_max=1000 --json
expect_rc 0 "stdout_max"
[ "$(jqv '.outputs.stdout | length')" = 1000 ] || fail "stdout_max: kept $(jqv '.outputs.stdout | length')"
[ "$(jqv .metadata.stdout_truncated)" = true ] || fail "stdout_max: not flagged"
[ "$(jqv .metadata.stdout_bytes)" = 100000 ] || fail "stdout_max: counted $(jqv .metadata.stdout_bytes)"

# stats: a container that runs past 2 s gets its memory and CPU time from the stats stream
run "$CBX" exec container -p image=$IMAGE -p 'command=["sh","-c","i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 3"]' --json
expect_rc 0 "stats"
[ "$(jqv '.metadata.peak_memory_bytes | type')" = number ] || fail "stats: peak_memory_bytes $(jqv .metadata.peak_memory_bytes)"
[ "$(jqv '.metadata.peak_memory_bytes > 0')" = true ] || fail "stats: peak_memory_bytes 0"
[ "$(jqv '.metadata.cpu_ms > 0')" = true ] || fail "stats: cpu_ms $(jqv .metadata.cpu_ms)"

# ---- bad input -------------------------------------------------------------------------------

# an image that does not exist: never pulled, or a pull that fails (no registry here)
run_bg "$CBX" exec container -p image=localhost/cbx-no-such-image:1 -p pull=never -p command=true
expect_rc 1 "missing image, pull never"
expect_err_line "image 'localhost/cbx-no-such-image:1' not found (pull: never" "missing image, pull never"
[ -z "$(containers_of $bgpid)" ] || fail "missing image: container left"
run_bg "$CBX" exec container -p image=localhost/cbx-no-such-image:1 -p command=true
expect_rc 1 "missing image, pull missing"
expect_err_line "not found locally and the pull failed" "missing image, pull missing"
[ -z "$(containers_of $bgpid)" ] || fail "missing image (pull): container left"

# an engine that is not running: a socket nobody listens on, and no socket at all
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$TMP/dead.sock"
run "$CBX" exec container -p image=$IMAGE -p docker_host="unix://$TMP/dead.sock"
expect_rc 1 "dead engine"
expect_err_line "the container engine at $TMP/dead.sock is not running" "dead engine"
grep -qF "podman system service --time=0 unix://$TMP/dead.sock" "$TMP/err" || fail "dead engine: no hint"
DOCKER_HOST="unix://$TMP/absent.sock" run "$CBX" exec container -p image=$IMAGE
expect_rc 1 "absent engine"
expect_err_line "no container engine socket at $TMP/absent.sock" "absent engine"
DOCKER_HOST=tcp://127.0.0.1:2375 run "$CBX" exec container -p image=$IMAGE
expect_rc 2 "tcp engine"
expect_err_line "DOCKER_HOST" "tcp engine"

# malformed volumes: every problem on one line, nothing created
run_bg "$CBX" exec container -p image=$IMAGE -p "volumes=[\"$TMP\",\"$TMP:rel\",\"$TMP:/x:rx\",\"$TMP/none:/x\"]"
expect_rc 2 "malformed volumes"
expect_err_line "volumes[0]': '$TMP' is not host:container[:ro]" "malformed volumes"
grep -qF "volumes[1]: '$TMP:rel': the container path must be absolute" "$TMP/err" || fail "volumes[1]"
grep -qF "volumes[2]: '$TMP:/x:rx': the option must be ro or rw" "$TMP/err" || fail "volumes[2]"
grep -qF "volumes[3]: host path $TMP/none: No such file or directory" "$TMP/err" || fail "volumes[3]"
[ -z "$(containers_of $bgpid)" ] || fail "malformed volumes: container left"

# an unterminated quote, a bad memory size
run "$CBX" exec container -p image=$IMAGE -p 'command=echo "open'
expect_rc 2 "unterminated quote"
expect_err_line "'command': unterminated double quote" "unterminated quote"
run "$CBX" exec container -p image=$IMAGE -p memory=lots
expect_rc 2 "bad memory"
expect_err_line "'memory': expected bytes" "bad memory"
exit 0
