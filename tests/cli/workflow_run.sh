# cbx workflow run, start, signal, resume, show, list and graph on the examples, with real
# processes as actions: the exit codes (0 done, 3 waiting, 1 stuck), a signal that is refused by
# its rule and one that moves the token, the timeline with each rule's verdict, the graph with
# the marking and firing counts, and the live view on a terminal.
. "$(dirname "$0")/lib.bash" "$@"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
E=$SRC/examples/workflows

# ---- data_review: complete, human review, blocked by a rule ----
run "$CBX" workflow run "$E/data_review.yaml" --lua "$E/analyze.lua" --json \
    --token '{"input_file": "a.json", "records": 120}' \
    --token '{"input_file": "b.json", "records": 10}' \
    --token '{"input_file": "c.json", "records": 3}'
expect_rc 1 "data_review (a token is stuck)"
[ "$(jqv '.state')" = stuck ] || fail "state: $(cat "$TMP/out")"
place() { jqv ".tokens[] | select(.id == \"$1\") | .place"; }
[ "$(place t1)" = completed ] || fail "t1: $(cat "$TMP/out")"
[ "$(place t2)" = human_review ] || fail "t2: $(cat "$TMP/out")"
[ "$(place t3)" = processed ] || fail "t3: $(cat "$TMP/out")"
[ "$(jqv '.tokens[] | select(.id == "t3") | .explanation')" = \
    "transition analyze blocked: rule meets_quality_threshold is false (token.quality_score = 0.6)" ] ||
    fail "t3 explanation: $(cat "$TMP/out")"
[ "$(jqv '.firings.process')" = 3 ] || fail "firings: $(cat "$TMP/out")"
RUN=$(jqv .run_id)

# the timeline: every rule's verdict, the action's result
run "$CBX" workflow show "$RUN" --id t1
expect_rc 0 "show"
grep -qF "fired analyze: processed -> analyzed; rules: meets_quality_threshold true, high_confidence true, low_confidence false" "$TMP/out" ||
    fail "show verdicts: $(cat "$TMP/out")"
grep -qF "transition request_review blocked: none of the rules processing_error, low_confidence is true" "$TMP/out" ||
    fail "show blocked: $(cat "$TMP/out")"
grep -qF "action of process succeeded" "$TMP/out" || fail "show action: $(cat "$TMP/out")"

# a signal its rule refuses changes nothing; then an approval completes t2 (t3 stays stuck)
run "$CBX" workflow signal "$RUN" t2 approve -d '{"note": "no name"}' --lua "$E/analyze.lua" --json
expect_rc 1 "signal refused by its rule"
[ "$(place t2)" = human_review ] || fail "t2 moved: $(cat "$TMP/out")"
[ "$(jqv '.tokens[] | select(.id == "t2") | .data.note')" = null ] || fail "signal data kept"
run "$CBX" workflow signal "$RUN" t2 approve -d '{"approved_by": "ann"}' --lua "$E/analyze.lua" --json
expect_rc 1 "signal"
[ "$(place t2)" = completed ] || fail "t2: $(cat "$TMP/out")"
[ "$(jqv '.tokens[] | select(.id == "t2") | .data.approved_by')" = ann ] || fail "signal data"
run "$CBX" workflow signal "$RUN" t3 approve --lua "$E/analyze.lua"
expect_rc 2 "a signal nothing waits for"
expect_err_line "token t3 in place processed waits for no signal" "signal refused"

# graph with the marking and the firing counts
run "$CBX" workflow graph "$RUN" --format dot
expect_rc 0 "graph dot"
grep -qF 'label="completed\n2 tokens"' "$TMP/out" || fail "dot marking: $(cat "$TMP/out")"
grep -qF 'approve\nfired 1x' "$TMP/out" || fail "dot firings: $(cat "$TMP/out")"
run "$CBX" workflow graph "$E/order_fulfilment.yaml"
expect_rc 0 "graph mermaid"
grep -qF "flowchart LR" "$TMP/out" || fail "mermaid: $(cat "$TMP/out")"

# ---- approval: waiting (exit 3), a signal, a timeout ----
run "$CBX" workflow run "$E/approval.yaml" --token '{"request": "laptop"}' --token '{"request": "chair"}' --no-wait
expect_rc 3 "approval waits"
grep -qE "t1 +pending +waiting +waits for signal approve" "$TMP/out" || fail "waiting: $(cat "$TMP/out")"
run "$CBX" workflow list --json
APPROVAL=$(jqv '.[0].run_id')
[ "$(jqv '.[0].state')" = waiting ] || fail "list state: $(cat "$TMP/out")"
run "$CBX" workflow signal "$APPROVAL" t1 approve -d '{"approved_by": "bo"}' --no-wait
expect_rc 3 "t2 still waits"
# resume waits for the 2 s timeout of t2, which escalates: done
run "$CBX" workflow resume "$APPROVAL"
expect_rc 0 "after the timeout"
grep -qE "t2 +escalated +final" "$TMP/out" || fail "escalated: $(cat "$TMP/out")"
run "$CBX" workflow list
grep -qE "$APPROVAL +approval +done" "$TMP/out" || fail "list: $(cat "$TMP/out")"

# a run another live process is running is refused (76), never written by two processes at once
"$CBX" workflow run "$E/approval.yaml" --token '{"request": "desk"}' --run-id busy -q >"$TMP/busy.out" 2>&1 &
busy_pid=$!
deadline=$(($(date +%s) + 300))
until "$CBX" workflow list --json 2>/dev/null | jq -e '.[] | select(.run_id == "busy")' >/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the busy run never reached the journal"
    sleep 0.05
done
run "$CBX" workflow signal busy t1 approve -d '{"approved_by": "cy"}'
if kill -0 "$busy_pid" 2>/dev/null; then # still waiting for its 2 s timer
    expect_rc 76 "signal to a run being run"
    expect_err_line "workflow run busy is being run by process $busy_pid" "busy"
fi
wait "$busy_pid" || fail "the busy run: $(cat "$TMP/busy.out")"

# ---- order fulfilment: fork and join ----
run "$CBX" workflow run "$E/order_fulfilment.yaml" --json \
    --token '{"order": "A-1", "amount": 30, "sku": "mug"}' --token '{"order": "A-2", "amount": 900, "sku": "lamp"}'
expect_rc 0 "orders"
[ "$(place t1)" = shipped ] || fail "A-1: $(cat "$TMP/out")"
[ "$(jqv '.tokens[] | select(.id == "t1") | .data | "\(.payment_id) \(.reservation)"')" = "pay-A-1 R-mug" ] ||
    fail "joined data: $(cat "$TMP/out")"
[ "$(place t2)" = cancelled ] || fail "A-2: $(cat "$TMP/out")"

# start then resume
run "$CBX" workflow start "$E/order_fulfilment.yaml" --token '{"order": "B", "amount": 1, "sku": "pen"}' --run-id my-run
expect_rc 0 "start"
[ "$(cat "$TMP/out")" = my-run ] || fail "start prints the id: $(cat "$TMP/out")"
run "$CBX" workflow resume my-run
expect_rc 0 "resume a started run"

# --no-journal runs, but signal and resume need the journal
run "$CBX" --no-journal workflow run "$E/order_fulfilment.yaml" --token '{"order": "C", "amount": 1, "sku": "pen"}'
expect_rc 0 "--no-journal"
run "$CBX" workflow resume nope
expect_rc 1 "unknown run"

# bad input: one line naming what
run "$CBX" workflow run "$E/approval.yaml" --token '[1]'
expect_rc 2 "bad token"
expect_err_line "--token 1: expected a JSON object" "bad token"
run "$CBX" workflow run "$E/approval.yaml" --token '{}' --at nowhere
expect_rc 2 "bad place"
expect_err_line "place: unknown place 'nowhere'" "bad place"
run "$CBX" workflow rnu
expect_rc 2 "unknown subcommand"
expect_err_line "did you mean 'run'?" "unknown subcommand"

# the live view on a terminal: each firing as it happens, then the summary line
if command -v script >/dev/null; then
    NO_COLOR=1 script -qec "$CBX workflow run $E/order_fulfilment.yaml --token '{\"order\": \"D\", \"amount\": 1, \"sku\": \"pen\"}'" \
        "$TMP/tty" >/dev/null </dev/null
    grep -qF "t1         ship -> shipped" "$TMP/tty" || fail "live view: $(cat -v "$TMP/tty")"
    grep -qF "order_fulfilment: 1 token, 4 firings" "$TMP/tty" || fail "live line: $(cat -v "$TMP/tty")"
fi
echo ok
