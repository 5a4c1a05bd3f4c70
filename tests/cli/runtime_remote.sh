# A runtime created with a remote backend (cbx_runtime_opts.remote), against a real nats-server
# and a real cbx worker: a request for the command executor runs on the worker (its output comes
# back, the metadata names the worker), a failure on the worker is the request's failure, the
# request's policy applies where it was submitted (a retry sends the job again: two runs on the
# worker), and a type the worker does not have is the worker's refusal.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/nats_lib.bash"

helper="$(dirname "$CBX")/../tests/remote_runtime"
[ -x "$helper" ] || fail "no remote_runtime helper at $helper"
start_nats nats
start_worker w1 --nats "$nats_url"

run "$helper" "$nats_url" command '{"argv": ["sh", "-c", "echo on-$0", "pool"]}'
expect_rc 0 "a command on the pool"
[ "$(jqv .executor)" = remote ] || fail "executor: $(cat "$TMP/out")"
[ "$(jqv .outputs.stdout)" = "on-pool" ] || fail "outputs: $(cat "$TMP/out" "$TMP/err")"
[ "$(jqv .metadata.worker)" = w1 ] || fail "metadata: $(cat "$TMP/out")"
grep -q 'job .*: success' "$TMP/w1.log" || fail "the worker's log: $(cat "$TMP/w1.log")"

run "$helper" "$nats_url" command '{"argv": ["sh", "-c", "exit 4"]}'
expect_rc 1 "a failure on the pool"
[ "$(jqv .status)" = failed ] || fail "status: $(cat "$TMP/out")"
jqv .error | grep -q "on worker w1: exit code 4" || fail "error: $(cat "$TMP/out")"

# the policy applies here: two attempts, each one job on the worker
run "$helper" "$nats_url" command "{\"argv\": [\"sh\", \"-c\", \"echo x >>'$TMP/runs'; exit 1\"]}" \
    '{"retry": {"attempts": 2, "backoff": "fixed", "initial": "1ms"}}'
expect_rc 1 "a retried failure"
[ "$(jqv .attempt_count)" = 2 ] || fail "attempts: $(cat "$TMP/out")"
[ "$(wc -l <"$TMP/runs")" = 2 ] || fail "runs on the worker: $(wc -l <"$TMP/runs")"

run "$helper" "$nats_url" no-such-type '{}'
expect_rc 1 "a type the worker lacks"
jqv .error | grep -q "no-such-type" || fail "unknown type: $(cat "$TMP/out")"
echo "ok [$TEST]"
