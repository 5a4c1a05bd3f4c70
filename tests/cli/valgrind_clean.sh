# The cbx binary under valgrind's memcheck: no invalid read or write, no use of an uninitialised
# value, and no block definitely lost, for the commands people run most (a flow with the journal
# and without, a batch with the journal and without, one command, the journal's views). `cbx
# run` leaves what it loaded to the process's exit on purpose; it must stay reachable (a static
# that held it once had its stores optimised away, and memcheck reported every flow definitely
# lost). Skipped without valgrind, and for a sanitizer build (which valgrind cannot run).
. "$(dirname "$0")/lib.bash"

command -v valgrind >/dev/null || {
    echo "skip: valgrind is not installed"
    exit 77
}
if ldd "$CBX" 2>/dev/null | grep -Eq 'lib(asan|tsan|ubsan)'; then
    echo "skip: $CBX is built with a sanitizer"
    exit 77
fi

VG=(-q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --suppressions="$(dirname "$0")/../valgrind.supp")
# vg WHAT CMD...: CMD under memcheck; fails on any error it reports (exit 99), else leaves the
# command's own exit code in $rc
vg() {
    local what=$1
    shift
    valgrind "${VG[@]}" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    [ "$rc" -ne 99 ] || fail "$what: memcheck: $(head -c 3000 "$TMP/err")"
}

cat >"$TMP/flow.yaml" <<'YAML'
name: vg
inputs:
  who: {type: string, default: world}
steps:
  - name: hello
    executor: command
    config: {argv: [echo, "hello {{ inputs.who }}"]}
  - name: count
    executor: command
    needs: [hello]
    policy: {retry: {attempts: 2, backoff: fixed, initial: 1ms}, timeout: 30s}
    config: {argv: [sh, -c, "echo {{ trim(steps.hello.outputs.stdout) }} again"]}
outputs:
  said: "{{ trim(steps.hello.outputs.stdout) }}"
YAML
vg "run, journaled" "$CBX" run "$TMP/flow.yaml" -i who=memcheck --json
expect_rc 0 "run, journaled"
[ "$(jqv .outputs.said)" = "hello memcheck" ] || fail "run output: $(cat "$TMP/out")"
vg "run, not journaled" "$CBX" run "$TMP/flow.yaml" --no-journal -q
expect_rc 0 "run, not journaled"
printf '{"who": "a"}\n{"who": "b"}\n{"who": "c"}\n' >"$TMP/items.jsonl"
vg "a batch" "$CBX" run "$TMP/flow.yaml" --batch "$TMP/items.jsonl" --output "$TMP/batch.out"
expect_rc 0 "a batch"
[ "$(wc -l <"$TMP/batch.out")" = 3 ] || fail "batch lines: $(cat "$TMP/batch.out")"
vg "a batch, not journaled, with a joblog" "$CBX" run "$TMP/flow.yaml" --batch "$TMP/items.jsonl" \
    --no-journal --parallel 2 --joblog "$TMP/batch.log" --output "$TMP/batch2.out"
expect_rc 0 "a batch, not journaled"
[ "$(wc -l <"$TMP/batch2.out")" = 3 ] || fail "batch lines: $(cat "$TMP/batch2.out")"
[ "$(wc -l <"$TMP/batch.log")" = 4 ] || fail "joblog: $(cat "$TMP/batch.log")"
vg "exec" "$CBX" exec -- true
expect_rc 0 "exec"
vg "exec, failing, with retries" "$CBX" exec --retries 2 --retry-delay 1ms --json -- false
expect_rc 1 "exec, failing"
vg "validate" "$CBX" validate "$TMP/flow.yaml"
expect_rc 0 "validate"
vg "history" "$CBX" history --json
expect_rc 0 "history"
[ "$(jqv length)" -ge 4 ] || fail "history: $(head -c 300 "$TMP/out")"
vg "runs" "$CBX" runs
expect_rc 0 "runs"

# a worker, when nats-server is here: jobs given for the first time (run without a look-up), one
# failing, then SIGTERM's drain
if command -v nats-server >/dev/null; then
    . "$(dirname "$0")/nats_lib.bash"
    start_nats nats
    url=$nats_url
    mkdir -p -m 0700 "$TMP/wstate"
    CBX_STATE_DIR="$TMP/wstate" valgrind "${VG[@]}" "$CBX" worker --nats "$url" --id vg -j 2 -v \
        >"$TMP/w.out" 2>"$TMP/w.err" &
    wpid=$!
    for i in 1 2 3; do
        run "$CBX" exec --remote "$url" --remote-wait 300s --no-journal -- echo "job $i"
        expect_rc 0 "remote job $i"
        [ "$(cat "$TMP/out")" = "job $i" ] || fail "remote job $i: $(cat "$TMP/out" "$TMP/w.err")"
    done
    run "$CBX" exec --remote "$url" --remote-wait 300s --no-journal -- sh -c 'exit 3'
    expect_rc 3 "a failing remote job"
    kill -TERM $wpid
    wait $wpid
    wrc=$?
    [ $wrc -ne 99 ] || fail "worker: memcheck: $(head -c 3000 "$TMP/w.err")"
    [ $wrc -eq 0 ] || fail "worker: exit $wrc: $(tail -5 "$TMP/w.err")"
    grep -q "4 jobs done" "$TMP/w.err" || fail "worker summary: $(tail -5 "$TMP/w.err")"
fi
echo "ok [$TEST]"
