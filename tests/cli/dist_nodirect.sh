# A results bucket made without direct gets (as a client older than nats-server 2.9 makes it): the
# server takes a direct get on it and never answers, so a worker asks such a bucket through the
# stream's message-get API, and a job published again after its result was stored is still found
# done, not run again.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/nats_lib.bash"

start_nats srv
"$ADMIN" "$nats_url" kv-nodirect CBX_RESULTS || fail "make the bucket without direct gets"
start_worker w1 --nats "$nats_url"
argv='["sh","-c","echo x >>'"$TMP"'/runs"]'
job='{"id":"job-nodirect","executor":"command","params":{"argv":'"$argv"'}}'
"$ADMIN" "$nats_url" pub cbx.work.default "$job" || fail "publish a job"
wait_for_line() {
    local deadline=$(($(date +%s) + 300))
    until grep -q "$2" "$1"; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "no '$2' in $1: $(cat "$1")"
        sleep 0.05
    done
}
wait_for_line "$TMP/w1.log" "job job-nodirect: success"
"$ADMIN" "$nats_url" pub cbx.work.default "$job" || fail "publish the job again"
wait_for_line "$TMP/w1.log" "job job-nodirect: already done"
[ "$(wc -l <"$TMP/runs")" = 1 ] || fail "the job ran $(wc -l <"$TMP/runs") times"
# and a remote execution's result still comes back
run "$CBX" exec --remote "$nats_url" -- echo through
expect_rc 0 "a remote execution beside a bucket without direct gets"
[ "$(cat "$TMP/out")" = through ] || fail "output: $(cat "$TMP/out")"
echo ok
