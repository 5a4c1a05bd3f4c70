# Resuming runs: a finished run re-runs nothing; a run cancelled by SIGINT/SIGTERM (exit 130,
# process trees killed) and a run killed with SIGKILL are finished by --resume, which runs only
# the steps that had not succeeded, with the same inputs and the same outputs.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
F=tests/flows/cli

count() { [ -f "$1" ] && wc -l <"$1" | tr -d ' ' || echo 0; }
runs_of() { echo "$(count "$1/first") $(count "$1/wait") $(count "$1/last")"; }

# an uninterrupted run, then --resume of it: nothing runs again, the same outputs
D=$TMP/plain
mkdir -p "$D"
run "$CBX" run $F/slow.yaml -i dir="$D" --json
expect_rc 0 "an uninterrupted run"
want=$(jq -c .outputs <"$TMP/out")
[ "$want" = '{"words":"one two three"}' ] || fail "outputs: $want"
id=$(jqv .run_id)
run "$CBX" run $F/slow.yaml --resume "$id" --json
expect_rc 0 "--resume of a finished run"
[ "$(jq -c .outputs <"$TMP/out")" = "$want" ] || fail "resumed outputs: $(jq -c .outputs <"$TMP/out")"
[ "$(jqv .run_id)" = "$id" ] || fail "resumed run id: $(jqv .run_id)"
[ "$(runs_of "$D")" = "1 1 1" ] || fail "a step ran again: $(runs_of "$D")"
[ "$(jqv '[.steps[] | .resumed] | all')" = "true" ] || fail "resumed flags: $(jqv .steps)"
grep -q "^run $id resumed: the steps that succeeded are not run again$" "$TMP/err" ||
    fail "resume line: $(cat "$TMP/err")"
[ "$(grep -c "succeeded in the run resumed: not run again$" "$TMP/err")" = "3" ] ||
    fail "resumed step lines: $(cat "$TMP/err")"
run "$CBX" run $F/slow.yaml --resume "${id: -6}" -q
expect_rc 0 "--resume by a suffix of the id"
[ "$(runs_of "$D")" = "1 1 1" ] || fail "a step ran again: $(runs_of "$D")"

# cancelled while 'wait' runs: exit 130, its process gone, 'last' never started; then resumed
for sig in INT TERM; do
    D=$TMP/cancel-$sig
    mkdir -p "$D"
    touch "$D/hold"
    "$CBX" run $F/slow.yaml -i dir="$D" >"$TMP/out" 2>"$TMP/err" &
    cbx=$!
    wait_for "$D/wait.pid"
    kill -"$sig" "$cbx"
    wait "$cbx"
    rc=$?
    expect_rc 130 "SIG$sig during a run"
    pid=$(cat "$D/wait.pid")
    kill -0 "$pid" 2>/dev/null && fail "the running step survived SIG$sig"
    [ "$(runs_of "$D")" = "1 1 0" ] || fail "after SIG$sig: $(runs_of "$D")"
    id=$(sed -n 's/^run \([0-9a-f-]*\) started; resume with: .*/\1/p' "$TMP/err")
    [ -n "$id" ] || fail "no run id: $(cat "$TMP/err")"
    grep -q "^cbx: run: cancelled; resume with: cbx run $F/slow.yaml --resume $id$" "$TMP/err" ||
        fail "cancel line: $(cat "$TMP/err")"
    grep -q "^flow slow was cancelled in " "$TMP/err" || fail "summary: $(cat "$TMP/err")"
    run "$CBX" show "$id" --json
    [ "$(jqv .steps.wait.status)" = "cancelled" ] ||
        fail "journaled wait: $(jqv .steps.wait)"
    rm "$D/hold"
    run "$CBX" run $F/slow.yaml --resume "$id" --json
    expect_rc 0 "--resume after SIG$sig"
    [ "$(jq -c .outputs <"$TMP/out")" = "$want" ] || fail "outputs after SIG$sig: $(jq -c .outputs <"$TMP/out")"
    [ "$(runs_of "$D")" = "1 2 1" ] || fail "steps run after resuming SIG$sig: $(runs_of "$D")"
    [ "$(jqv '"\(.steps.first.resumed) \(.steps.wait.resumed) \(.steps.last.resumed)"')" = \
        "true false false" ] || fail "resumed flags: $(jqv .steps)"
done

# killed with SIGKILL (a crash): the journal still has the run; --resume finishes it
D=$TMP/crash
mkdir -p "$D"
touch "$D/hold"
"$CBX" run $F/slow.yaml -i dir="$D" >"$TMP/out" 2>"$TMP/err" &
cbx=$!
wait_for "$D/wait.pid"
kill -KILL "$cbx"
wait "$cbx" 2>/dev/null
kill -KILL "$(cat "$D/wait.pid")" 2>/dev/null # the orphaned step: nobody is left to kill it
id=$(sed -n 's/^run \([0-9a-f-]*\) started; .*/\1/p' "$TMP/err")
[ -n "$id" ] || fail "no run id before the crash: $(cat "$TMP/err")"
run "$CBX" runs --json
[ "$(jq -r --arg id "$id" '.[] | select(.run_id == $id) | .status' "$TMP/out")" = "abandoned" ] ||
    fail "a crashed run: $(cat "$TMP/out")"
rm "$D/hold"
run "$CBX" run $F/slow.yaml --resume "$id" --json
expect_rc 0 "--resume after SIGKILL"
[ "$(jq -c .outputs <"$TMP/out")" = "$want" ] || fail "outputs after a crash: $(jq -c .outputs <"$TMP/out")"
[ "$(runs_of "$D")" = "1 2 1" ] || fail "steps run after the crash: $(runs_of "$D")"
run "$CBX" show "$id" --json
[ "$(jqv .status)" = "success" ] || fail "the resumed run's status: $(jqv .status)"

# a resumed run must be of the same flow
run "$CBX" run $F/good.yaml --resume "$id"
expect_rc 2 "--resume with another flow"
expect_err_line "run: --resume: run $id is of flow 'slow', not 'greet'" "another flow"
echo "ok [$TEST]"
