# Seed 000's "Using in Workflows" example (examples/workflows/data_review_seed.yaml) run as
# written: process in a real container (Podman's API service), analyze with the llm executor and
# prepare a review with the agent executor (the scripted model server on loopback). One token
# goes straight to completed (request_review's agent runs for it too - an action runs before its
# transition's rules are judged - and its answer is discarded when processing_error is false);
# one flagged by the model goes to human_review, waits for the approve signal (exit 3), then
# completes.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/../container/lib.bash"

seed="$ROOT/examples/workflows/data_review_seed.yaml"
podman build -q -t data-processor -f "$ROOT/tests/workflows/seed/Containerfile" \
    "$ROOT/tests/workflows/seed" >"$TMP/build.out" 2>&1 || fail "podman build: $(cat "$TMP/build.out")"

fake="$(dirname "$CBX")/../tests/fake_llm"
[ -x "$fake" ] || fail "no fake_llm helper at $fake"
cat >"$TMP/script.json" <<'JSON'
{"turns": [
  {"content": "{\"analysis_results\": \"stable trend\", \"confidence_score\": 0.95}"},
  {"content": "Nothing to review."},
  {"content": "{\"analysis_results\": \"odd spike\", \"confidence_score\": 0.92, \"status\": \"error\"}"},
  {"content": "Rows 2 and 3 disagree; check the spike by hand."}
]}
JSON
"$fake" --script "$TMP/script.json" --record "$TMP/record.jsonl" --die-with-parent >"$TMP/port" &
fpid=$!
wait_for "$TMP/port" "$fpid" || fail "fake_llm did not start"
export OPENAI_BASE_URL="http://127.0.0.1:$(head -1 "$TMP/port")/v1" OPENAI_API_KEY=sk-test

# a clean token: container, model, complete
run "$CBX" workflow run "$seed" --token '{"input_file": "january.csv"}' --json
expect_rc 0 "the clean token"
run_id=$(jqv .run_id)
[ "$(jqv '.tokens[0].place')" = completed ] || fail "clean token: $(cat "$TMP/out")"
[ "$(jqv '.tokens[0].data.processed_output')" = "3 rows of january.csv" ] ||
    fail "the container's output in the token: $(cat "$TMP/out")"
[ "$(jqv '.tokens[0].data.analysis_results')" = "stable trend" ] ||
    fail "the model's answer in the token: $(cat "$TMP/out")"
grep -q "3 rows of january.csv" "$TMP/record.jsonl" || fail "the model was not given the data"
[ "$(jqv '.tokens[0].data.review_notes')" = null ] || fail "a discarded action's data: $(cat "$TMP/out")"

# a token the model flags: the agent prepares the review, the token waits for a person
run "$CBX" workflow run "$seed" --token '{"input_file": "february.csv"}' --json
expect_rc 3 "the flagged token waits for its review"
run2=$(jqv .run_id)
tok=$(jqv '.tokens[0].id')
[ "$(jqv '.tokens[0].place')" = human_review ] || fail "flagged token: $(cat "$TMP/out")"
[ "$(jqv '.tokens[0].data.review_notes')" = "Rows 2 and 3 disagree; check the spike by hand." ] ||
    fail "the agent's notes: $(cat "$TMP/out")"
run "$CBX" workflow signal "$run2" "$tok" approve -d '{"approved_by": "ann"}' --json
expect_rc 0 "the approval"
run "$CBX" workflow show "$run2" --json
[ "$(jqv '.tokens[0].place')" = completed ] && [ "$(jqv '.tokens[0].data.approved_by')" = ann ] ||
    fail "after the approval: $(cat "$TMP/out")"
echo "ok [$TEST]"
