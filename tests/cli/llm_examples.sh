# The example flows that ask a model (examples/flows/document_analysis.yaml, research_agent.yaml)
# run as written against the scripted model server (tests/helpers/fake_llm): the model's tool
# calls run the flows' commands, and what they printed goes back to it.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
fake="$(dirname "$CBX")/../tests/fake_llm"
[ -x "$fake" ] || fail "no fake_llm helper at $fake"

start_fake() { # SCRIPT: sets $base
    : >"$TMP/port"
    : >"$TMP/record.jsonl"
    "$fake" --script "$1" --record "$TMP/record.jsonl" --die-with-parent >"$TMP/port" &
    fpid=$!
    trap 'kill $fpid 2>/dev/null; rm -rf "$TMP"' EXIT
    wait_for "$TMP/port" "$fpid" || fail "fake_llm did not start"
    base="http://127.0.0.1:$(head -1 "$TMP/port")"
}

# the document analysis assistant: three tools in one round (Ollama protocol), then the report
cat >"$TMP/doc.json" <<'JSON'
{"turns": [
  {"tool_calls": [
    {"name": "content_analysis", "arguments": {"text": "good start\nthis line is rather long\n"}},
    {"name": "sentiment_analysis", "arguments": {"text": "good start, great end, bad middle"}},
    {"name": "suggest_improvements", "arguments": {"text": "short\nthis line is rather long\n", "width": 10}}]},
  {"content": "Report: 2 lines, positive tone, line 2 too long."}
]}
JSON
start_fake "$TMP/doc.json"
run "$CBX" run examples/flows/document_analysis.yaml -i document="good start" \
    -i ollama_base_url="$base" --json
expect_rc 0 "document_analysis"
[ "$(jqv .outputs.report)" = "Report: 2 lines, positive tone, line 2 too long." ] ||
    fail "report: $(cat "$TMP/out")"
[ "$(jqv .outputs.tool_calls)" = "3" ] || fail "tool calls: $(jqv .outputs.tool_calls)"
second=$(sed -n 2p "$TMP/record.jsonl")
[ "$(jq -r '.path' <<<"$second")" = "/api/chat" ] || fail "not the Ollama protocol: $second"
[ "$(jq -r '.body.options.top_k' <<<"$second")" = "40" ] || fail "top_k: $second"
jq -r '.body.messages[] | select(.role == "tool") | .content' <<<"$second" >"$TMP/results"
grep -q '"stdout":" *2 *7 *36' "$TMP/results" || fail "wc result: $(cat "$TMP/results")"
grep -q '1 great' "$TMP/results" || fail "sentiment result: $(cat "$TMP/results")"
grep -q 'line 2 has 24 characters' "$TMP/results" || fail "improvements: $(cat "$TMP/results")"
kill $fpid 2>/dev/null

# the research agent: search, cite, answer; memory of five messages
mkdir -p "$TMP/notes"
printf 'Breakers open after failures.\nThey probe later.\n' >"$TMP/notes/breakers.md"
printf 'Retries back off.\n' >"$TMP/notes/retry.md"
cat >"$TMP/agent.json" <<JSON
{"turns": [
  {"tool_calls": [{"name": "search", "arguments": {"term": "probe"}}]},
  {"tool_calls": [{"name": "cite", "arguments": {"file": "$TMP/notes/breakers.md"}}]},
  {"content": "Breakers probe after opening (breakers.md)."}
]}
JSON
start_fake "$TMP/agent.json"
run "$CBX" run examples/flows/research_agent.yaml -i question="When do breakers probe?" \
    -i notes="$TMP/notes" -i base_url="$base/v1" --json
expect_rc 0 "research_agent"
[ "$(jqv .outputs.answer)" = "Breakers probe after opening (breakers.md)." ] ||
    fail "answer: $(cat "$TMP/out")"
[ "$(jqv '"\(.outputs.iterations) \(.outputs.stop_reason)"')" = "3 answer" ] ||
    fail "iterations: $(cat "$TMP/out")"
third=$(sed -n 3p "$TMP/record.jsonl")
jq -r '.body.messages[-1].content' <<<"$third" | grep -q "breakers.md: Breakers open after failures." ||
    fail "citation: $third"
jq -r '.body.messages[] | select(.role == "tool") | .content' <<<"$third" | grep -q 'notes/breakers.md' ||
    fail "search result: $third"
# memory_size 5: the system prompt and at most five others
[ "$(jq '[.body.messages[] | select(.role != "system")] | length' <<<"$third")" -le 5 ] ||
    fail "memory: $third"
echo "ok [$TEST]"
