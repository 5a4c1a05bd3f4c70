# cbx worker and cbx exec --remote against a real nats-server with JetStream: results and exit
# codes come back; a worker killed with SIGKILL mid-job leaves it to another worker; a job whose
# result is stored is not run again; a malformed job is terminated without harm; SIGTERM drains;
# the server restarted under queued and running jobs loses nothing; a server that stops
# answering while a job runs gets its result stored again; a server gone under a flow that
# submitted before fails its next remote step at once; no server is a clear error in bounded time.
. "$(dirname "$0")/lib.bash"

command -v nats-server >/dev/null || {
    echo "skip: nats-server is not installed (scripts/deps test installs it)"
    exit 77
}
admin="$(dirname "$CBX")/../tests/nats_admin"
[ -x "$admin" ] || fail "no nats_admin helper at $admin"

mkdir -p "$TMP/ports" "$TMP/js"
nats-server -js -a 127.0.0.1 -p -1 -sd "$TMP/js" --ports_file_dir "$TMP/ports" \
    >"$TMP/nats.log" 2>&1 &
npid=$!
wpids=()
trap 'kill -9 $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
deadline=$(($(date +%s) + 300))
until f=$(ls "$TMP"/ports/*.ports 2>/dev/null | head -1) && [ -s "$f" ]; do
    kill -0 $npid 2>/dev/null || fail "nats-server exited: $(tail -3 "$TMP/nats.log")"
    [ "$(date +%s)" -lt "$deadline" ] || fail "nats-server did not start"
    sleep 0.05
done
export NATS_URL=$(jq -r '.nats[0]' "$f")

# start_worker NAME [ARGS...]: a worker whose log is $TMP/NAME.log; its pid is appended to wpids
start_worker() {
    local name=$1
    shift
    CBX_STATE_DIR="$TMP/state-$name" "$CBX" worker --id "$name" -v "$@" >"$TMP/$name.log" 2>&1 &
    wpids+=($!)
    mkdir -p -m 0700 "$TMP/state-$name"
    wait_for "$TMP/$name.log" "$!" || fail "worker $name did not start: $(cat "$TMP/$name.log")"
}

# the first worker makes the queue's consumer: a 2 s ack wait, so that a dead worker's job is
# given to another soon
start_worker w1 --ack-wait 2s --max-deliver 3

# a result comes back as a local one: output, exit code, the worker named in --json; watchers
# of cbx.events.execution.<type> see it
"$admin" "$NATS_URL" sub cbx.events.execution.command 1 >"$TMP/events" 2>"$TMP/events.ready" &
events=$!
wait_for "$TMP/events.ready"
run "$CBX" exec --remote "$NATS_URL" -- echo hello
expect_rc 0 "a remote echo"
[ "$(cat "$TMP/out")" = "hello" ] || fail "remote output: $(cat "$TMP/out")"
wait $events
[ "$(jq -r .status "$TMP/events")" = success ] || fail "execution event: $(cat "$TMP/events")"
run "$CBX" exec --remote "$NATS_URL" -- sh -c 'echo oops >&2; exit 3'
expect_rc 3 "a remote command's exit code"
grep -q oops "$TMP/err" || fail "remote stderr: $(cat "$TMP/err")"
run "$CBX" exec --remote "$NATS_URL" --json --retries 1 --retry-delay 10ms -- false
expect_rc 1 "a remote failure with a retry"
[ "$(jqv .worker)" = "w1" ] && [ "$(jqv .attempt_count)" = "2" ] ||
    fail "remote result: $(cat "$TMP/out")"
# the worker journaled it in its own journal, the submitter in its own with the worker's name
CBX_STATE_DIR="$TMP/state-w1" "$CBX" history --json >"$TMP/hist"
[ "$(jq length "$TMP/hist")" -ge 3 ] || fail "worker journal: $(cat "$TMP/hist")"
run "$CBX" history --json
[ "$(jqv length)" = 3 ] || fail "submitter journal: $(cat "$TMP/out")"
[ "$(jqv '.[0].tag')" = "worker w1" ] && [ "$(jqv '.[0].attempts')" = 2 ] ||
    fail "the remote execution in the submitter's journal: $(jqv '.[0]')"

# wait_pid_or_dump PID: wait for PID (five minutes at most); on giving up, the logs to stderr
wait_pid_or_dump() {
    local deadline=$(($(date +%s) + 300))
    while kill -0 "$1" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            cat "$TMP"/w*.log "$TMP/nats.log" >&2
            return 1
        fi
        sleep 0.1
    done
    wait "$1"
}
# SIGKILL mid-job: the job goes to another worker after the ack wait, and completes
"$CBX" exec --remote "$NATS_URL" -- sh -c "echo run >>'$TMP/runs'; sleep 1; echo finished" \
    >"$TMP/killed.out" 2>"$TMP/killed.err" &
sub=$!
wait_for "$TMP/runs"
kill -9 "${wpids[0]}"
start_worker w2
wait_pid_or_dump $sub || fail "the submitter of the killed job: $(cat "$TMP/killed.err")"
[ "$(cat "$TMP/killed.out")" = "finished" ] || fail "killed job output: $(cat "$TMP/killed.out")"
[ "$(wc -l <"$TMP/runs")" = 2 ] || fail "the killed job ran $(wc -l <"$TMP/runs") times"

# a job whose result is stored is not run again (a redelivery after the result was stored)
job='{"id":"job-once","executor":"command","params":{"argv":["sh","-c","echo x >>'"$TMP"'/once"]}}'
"$admin" "$NATS_URL" pub cbx.work.default "$job" || fail "publish a job"
# wait_log FILE TEXT: until FILE has a line with TEXT
wait_log() {
    local deadline=$(($(date +%s) + 300))
    until grep -q "$2" "$1"; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "no '$2' in $1: $(cat "$1")"
        sleep 0.05
    done
}
wait_log "$TMP/w2.log" "job job-once: success"
"$admin" "$NATS_URL" pub cbx.work.default "$job" || fail "publish the job again"
wait_log "$TMP/w2.log" "job job-once: already done"
[ "$(wc -l <"$TMP/once")" = 1 ] || fail "the job ran $(wc -l <"$TMP/once") times"

# a malformed message is terminated with a reason; the worker goes on
"$admin" "$NATS_URL" pub cbx.work.default 'not json at all' || fail "publish poison"
run "$CBX" exec --remote "$NATS_URL" -- echo still-here
expect_rc 0 "after a poison message"
grep -q "terminated: the message is not a job" "$TMP/w2.log" || fail "no poison line: $(cat "$TMP/w2.log")"

# a flow fans out over the pool: its steps run on the workers through the remote executor
cat >"$TMP/fan.yaml" <<'YAML'
name: fan
steps:
  - name: a
    executor: remote
    config: {executor: command, params: {argv: [sh, -c, "echo a-$$"]}}
  - name: b
    executor: remote
    config: {executor: command, params: {argv: [sh, -c, "echo b-$$"]}, policy: {timeout: 30s}}
  - name: both
    executor: command
    config: {argv: [echo, "{{ trim(steps.a.outputs.stdout) }} {{ trim(steps.b.outputs.stdout) }}"]}
outputs:
  line: "{{ trim(steps.both.outputs.stdout) }}"
YAML
run "$CBX" run "$TMP/fan.yaml" --json
expect_rc 0 "a flow whose steps run on the workers"
jqv .outputs.line | grep -Eq '^a-[0-9]+ b-[0-9]+$' || fail "flow over the pool: $(cat "$TMP/out")"
run "$CBX" exec remote -p executor=command -p 'params={"argv":["sh","-c","exit 4"]}' --json
expect_rc 1 "a failing remote step"
[ "$(jqv '.metadata.worker')" = w2 ] || fail "remote metadata: $(cat "$TMP/out")"
grep -q "on worker w2: exit code 4" "$TMP/out" || fail "remote error: $(cat "$TMP/out")"

# SIGTERM drains: the running job finishes and its result comes back; the worker exits 0
"$CBX" exec --remote "$NATS_URL" -- sh -c "echo started >'$TMP/drain'; sleep 1; echo drained" \
    >"$TMP/drain.out" 2>&1 &
sub=$!
wait_for "$TMP/drain"
kill -TERM "${wpids[1]}"
wait "${wpids[1]}" || fail "the worker did not exit 0 after SIGTERM: $(cat "$TMP/w2.log")"
wait $sub || fail "the drained job's submitter: $(cat "$TMP/drain.out")"
[ "$(cat "$TMP/drain.out")" = "drained" ] || fail "drained job output: $(cat "$TMP/drain.out")"
grep -q "stopped: .* jobs done" "$TMP/w2.log" || fail "no summary: $(cat "$TMP/w2.log")"

# the server restarted (file storage) while jobs are queued and one runs: the worker
# reconnects, nothing is lost
start_worker w3
port=${NATS_URL##*:}
"$CBX" exec --remote "$NATS_URL" -- sh -c "echo started >'$TMP/restart'; sleep 2; echo across" \
    >"$TMP/r0.out" 2>&1 &
r0=$!
wait_for "$TMP/restart"
for i in 1 2 3; do
    "$admin" "$NATS_URL" pub cbx.work.default \
        '{"id":"queued-'$i'","executor":"command","params":{"argv":["sh","-c","echo '$i' >>'"$TMP"'/queued"]}}' ||
        fail "queue job $i"
done
kill $npid
wait $npid 2>/dev/null
nats-server -js -a 127.0.0.1 -p "$port" -sd "$TMP/js" >>"$TMP/nats.log" 2>&1 &
npid=$!
wait_pid_or_dump $r0 || fail "the job running across the restart: $(cat "$TMP/r0.out")"
[ "$(cat "$TMP/r0.out")" = "across" ] || fail "across the restart: $(cat "$TMP/r0.out")"
deadline=$(($(date +%s) + 300))
until [ -s "$TMP/queued" ] && [ "$(sort "$TMP/queued" | tr -d '\n')" = "123" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "queued jobs after the restart: $(cat "$TMP/queued")"
    sleep 0.1
done

# the server stops answering (SIGSTOP) while a job runs: the store of its result is not
# acknowledged in time and is tried again; once the server answers, the result is stored, comes
# back, and the job has run once (a queue of its own, whose ack wait outlasts the pause)
start_worker w4 --queue paused --ack-wait 120s
"$CBX" exec --remote "$NATS_URL" --queue paused -- sh -c "echo run >>'$TMP/paused'; sleep 1; echo resumed" \
    >"$TMP/paused.out" 2>&1 &
sub=$!
wait_for "$TMP/paused"
kill -STOP $npid
wait_log "$TMP/w4.log" "storing its result failed"
kill -CONT $npid
wait_pid_or_dump $sub || fail "the submitter of the paused job: $(cat "$TMP/paused.out")"
[ "$(cat "$TMP/paused.out")" = "resumed" ] || fail "paused job output: $(cat "$TMP/paused.out")"
[ "$(wc -l <"$TMP/paused")" = 1 ] || fail "the paused job ran $(wc -l <"$TMP/paused") times"
kill -TERM "${wpids[3]}"
wait "${wpids[3]}" || fail "w4 did not exit 0 after SIGTERM: $(cat "$TMP/w4.log")"

# no worker: --remote-wait gives up (exit 124) and names the job
kill -TERM "${wpids[2]}"
wait "${wpids[2]}"
run "$CBX" exec --remote "$NATS_URL" --remote-wait 300ms -- sh -c 'echo later; exit 5'
expect_rc 124 "no worker within --remote-wait"
grep -q "stays queued" "$TMP/err" || fail "remote-wait message: $(cat "$TMP/err")"
# ... and its result is found later by its id: not yet (exit 124), then once a worker ran it, as
# a local one's (output, exit code) and journaled here
later=$(grep -o -- '--remote-result [^ )]*' "$TMP/err" | cut -d' ' -f2)
[ -n "$later" ] || fail "no job id in: $(cat "$TMP/err")"
run "$CBX" exec --remote "$NATS_URL" --remote-result "$later"
expect_rc 124 "a result not stored yet"
expect_err_line "exec: --remote-result: no result for the job $later in CBX_RESULTS" "not yet"
start_worker w8
run "$CBX" exec --remote "$NATS_URL" --remote-result "$later" --remote-wait 300s
expect_rc 5 "the result found later: the command's exit code"
[ "$(cat "$TMP/out")" = "later" ] || fail "the result found later: $(cat "$TMP/out" "$TMP/err")"
run "$CBX" history --json --limit 1
[ "$(jqv '.[0].id')" = "$later" ] && [ "$(jqv '.[0].tag')" = "worker w8" ] ||
    fail "the result found later, journaled: $(cat "$TMP/out")"
kill -TERM "${wpids[4]}"
wait "${wpids[4]}" || fail "w8 did not exit 0 after SIGTERM: $(cat "$TMP/w8.log")"
run "$CBX" exec --remote "$NATS_URL" --remote-result 'bad id'
expect_rc 2 "a bad job id"
run "$CBX" exec --remote-result x -- true
expect_rc 2 "--remote-result without --remote"

# "fresh": the submitter's word that it made the job's id for this job alone (cbx exec --remote
# and the remote executor say it): its first delivery is not looked up, so a result stored under
# that id before does not stop it. A later delivery is looked up: the job whose worker stored its
# result and died before its ack is not run again. (A queue of its own, with a 2 s ack wait; the
# helper takes the job as that worker did.)
start_worker w6 --queue fresh --ack-wait 2s
fresh_job() {
    echo '{"id":"'$1'","fresh":true,"executor":"command","params":{"argv":["sh","-c","echo x >>'"$TMP/$1"'"]}}'
}
stored='{"id":"fresh-1","executor":"command","status":"success","worker":"gone"}'
"$admin" "$NATS_URL" pub '$KV.CBX_RESULTS.fresh-1' "$stored" || fail "store a result"
"$admin" "$NATS_URL" pub cbx.work.fresh "$(fresh_job fresh-1)" || fail "publish fresh-1"
wait_log "$TMP/w6.log" "job fresh-1: success"
[ "$(wc -l <"$TMP/fresh-1")" = 1 ] || fail "fresh-1, first delivered, ran $(wc -l <"$TMP/fresh-1") times"
kill -TERM "${wpids[5]}"
wait "${wpids[5]}" || fail "w6 did not exit 0 after SIGTERM: $(cat "$TMP/w6.log")"
"$admin" "$NATS_URL" pub cbx.work.fresh "$(fresh_job fresh-2)" || fail "publish fresh-2"
"$admin" "$NATS_URL" take CBX_WORK cbx-worker-fresh | grep -q '"fresh-2"' || fail "take fresh-2"
"$admin" "$NATS_URL" pub '$KV.CBX_RESULTS.fresh-2' "${stored//fresh-1/fresh-2}" ||
    fail "store fresh-2's result"
start_worker w7 --queue fresh
wait_log "$TMP/w7.log" "job fresh-2: already done"
[ ! -e "$TMP/fresh-2" ] || fail "fresh-2, delivered again after its result was stored, ran"
kill -TERM "${wpids[6]}"
wait "${wpids[6]}" || fail "w7 did not exit 0 after SIGTERM: $(cat "$TMP/w7.log")"

# no server: a clear error, at once
run "$CBX" exec --remote nats://127.0.0.1:1 -- true
expect_rc 1 "no server"
expect_err_line "cannot connect to nats://127.0.0.1:1" "no server line"
# a process that has submitted before keeps its connection: when the server goes away under it,
# its next remote attempt fails at once and says so (a flow: a step on the pool, the server
# stopped, another step on the pool)
start_worker w5
cat >"$TMP/away.yaml" <<YAML
name: away
steps:
  - name: a
    executor: remote
    config: {executor: command, params: {argv: [echo, first]}}
  - name: stop
    executor: command
    needs: [a]
    config: {argv: [sh, -c, "kill $npid; while kill -0 $npid 2>/dev/null; do sleep 0.05; done; sleep 0.5"]}
  - name: b
    executor: remote
    needs: [stop]
    config: {executor: command, params: {argv: [echo, second]}}
YAML
run "$CBX" run "$TMP/away.yaml" --json
expect_rc 1 "a flow whose server went away"
[ "$(jqv .steps.a.status)" = success ] && [ "$(jqv .steps.a.outputs.stdout)" = first ] ||
    fail "step a, before the server went away: $(cat "$TMP/out")"
[ "$(jqv .steps.b.status)" = failed ] &&
    jqv .steps.b.error | grep -q "the NATS server is away (reconnecting to it)" ||
    fail "step b, after the server went away: $(cat "$TMP/out")"

run "$CBX" exec --remote "$NATS_URL" --each -- echo
expect_rc 2 "--each with --remote"
expect_err_line "--each cannot be used with it" "--each line"
echo "ok [$TEST]"
