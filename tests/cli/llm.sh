# cbx exec llm against the scripted model server (tests/helpers/fake_llm): prices from the
# configuration file, the key from the environment kept out of the journal, a tool call that
# runs a command, and bad input.
. "$(dirname "$0")/lib.bash"

fake="$(dirname "$CBX")/../tests/fake_llm"
[ -x "$fake" ] || fail "no fake_llm helper at $fake"
cat >"$TMP/script.json" <<'JSON'
{"turns": [
  {"content": "plain", "usage": {"prompt_tokens": 2000000, "completion_tokens": 1000000}},
  {"tool_calls": [{"id": "t1", "name": "count", "arguments": {"text": "a b c"}}]},
  {"content": "three words", "chunk_chars": 2}
]}
JSON
"$fake" --script "$TMP/script.json" --record "$TMP/record.jsonl" --die-with-parent >"$TMP/port" &
fpid=$!
trap 'kill $fpid 2>/dev/null; rm -rf "$TMP"' EXIT
wait_for "$TMP/port" "$fpid" || fail "fake_llm did not start"
base="http://127.0.0.1:$(head -1 "$TMP/port")/v1"

mkdir -p "$XDG_CONFIG_HOME/cbx"
cat >"$XDG_CONFIG_HOME/cbx/config.yaml" <<'YAML'
llm:
  prices:
    gpt-4o-mini: {input: 0.15, output: 0.60}
YAML

# a plain call: the key from OPENAI_API_KEY is sent, never journaled; cost from the price table
OPENAI_API_KEY=sk-from-env-123 run "$CBX" exec llm -p model=gpt-4o-mini -p base_url="$base" \
    -p input="say plain"
expect_rc 0 "a plain call"
[ "$(jqv .content)" = "plain" ] || fail "content: $(cat "$TMP/out")"
[ "$(jqv .cost)" = "0.9" ] || fail "cost: $(jqv .cost)"
grep -q '"authorization":"Bearer sk-from-env-123"' "$TMP/record.jsonl" || fail "no bearer key sent"

# a streamed call with a tool that is a command, its argument templated into argv
run "$CBX" exec llm -p model=gpt-4o-mini -p base_url="$base" -p input="count the words" \
    -p stream=true -p tools='[{"name": "count", "executor": "command",
      "description": "count words", "params": {"argv": ["wc", "-w"], "stdin": "{{ args.text }}"},
      "arguments": {"type": "object", "properties": {"text": {"type": "string"}},
                    "required": ["text"]}}]' --json
expect_rc 0 "a tool round trip"
[ "$(jqv .outputs.content)" = "three words" ] || fail "content: $(cat "$TMP/out")"
[ "$(jqv '.outputs.tool_calls[0].ok')" = "true" ] || fail "tool call: $(jqv .outputs.tool_calls)"
[ "$(jqv '[.chunks[] | select(.channel == "tokens") | .text] | join("")')" = "three words" ] ||
    fail "the streamed tokens in --json: $(jqv -c .chunks)"
tail -1 "$TMP/record.jsonl" | jq -r '.body.messages[2].content' | grep -q '"stdout":"3' ||
    fail "the tool's result did not reach the model: $(tail -1 "$TMP/record.jsonl")"
run "$CBX" history --json
[ "$(jq '[.[] | select(.executor == "command")] | length' <"$TMP/out")" = "1" ] ||
    fail "the tool call is not journaled as an execution: $(cat "$TMP/out")"

# a key given as a parameter is sent but never journaled (the script is spent: a 500)
run "$CBX" exec llm -p model=gpt-4o-mini -p base_url="$base" -p input=x -p api_key=sk-param-456
expect_rc 1 "a call past the script"
expect_err_line "HTTP 500: script exhausted" "the server's error"
grep -q '"authorization":"Bearer sk-param-456"' "$TMP/record.jsonl" || fail "no parameter key sent"
"$CBX" history --json >"$TMP/hist"
grep -q "sk-from-env-123\|sk-param-456" "$TMP/hist" "$CBX_STATE_DIR"/journal.db* &&
    fail "a key is in the journal"

# bad input: one line naming the parameter
run "$CBX" exec llm -p model=m -p model_provider=anthropic -p input=x
expect_rc 2 "an unknown provider"
expect_err_line "model_provider" "unknown provider line"
run "$CBX" exec llm -p model=gpt-4o -p base_url="$base" -p input=x \
    -p tools='[{"name": "t", "executor": "no_such_type"}]'
expect_rc 1 "a tool of an unknown executor type"
expect_err_line "parameter 'tools[0].executor': unknown executor type 'no_such_type'" "tool line"

# providers: a rate-limited first provider fails over to the second; its breaker is host-wide,
# so the next invocation skips it, and cbx breaker list shows both
printf '{"turns": [{"status": 429, "error": "quota", "repeat": -1}]}' >"$TMP/limited.json"
printf '{"turns": [{"content": "from b", "repeat": -1}]}' >"$TMP/fine.json"
"$fake" --script "$TMP/limited.json" --record "$TMP/a.jsonl" --die-with-parent >"$TMP/pa" &
apid=$!
"$fake" --script "$TMP/fine.json" --die-with-parent >"$TMP/pb" &
bpid=$!
trap 'kill $fpid $apid $bpid 2>/dev/null; rm -rf "$TMP"' EXIT
wait_for "$TMP/pa" "$apid" && wait_for "$TMP/pb" "$bpid" || fail "fake_llm did not start"
providers="[{\"name\": \"a\", \"base_url\": \"http://127.0.0.1:$(head -1 "$TMP/pa")/v1\"},
            {\"name\": \"b\", \"protocol\": \"ollama\", \"base_url\": \"http://127.0.0.1:$(head -1 "$TMP/pb")\"}]"
for i in 1 2; do
    run "$CBX" exec llm -p model=gpt-4o -p input=hi -p providers="$providers" \
        -p provider_breaker='{"failures": 1, "open_ms": 600000}'
    expect_rc 0 "failover $i"
    [ "$(jqv .content)" = "from b" ] || fail "failover $i: $(cat "$TMP/out")"
done
[ "$(wc -l <"$TMP/a.jsonl")" -eq 1 ] || fail "the open breaker did not skip provider a"
run "$CBX" breaker list --json
[ "$(jq -r '.[] | select(.name | startswith("llm:a:gpt-4o@127.0.0.1")) | .state' <"$TMP/out")" = \
    "open" ] || fail "breaker list: $(cat "$TMP/out")"

# conversation memory across invocations, kept in the journal
printf '{"turns": [{"content": "Hi Ada."}, {"content": "Ada."}]}' >"$TMP/mem.json"
"$fake" --script "$TMP/mem.json" --record "$TMP/mem.jsonl" --die-with-parent >"$TMP/pm" &
mpid=$!
trap 'kill $fpid $apid $bpid $mpid 2>/dev/null; rm -rf "$TMP"' EXIT
wait_for "$TMP/pm" "$mpid" || fail "fake_llm did not start"
mbase="http://127.0.0.1:$(head -1 "$TMP/pm")/v1"
run "$CBX" exec llm -p model=gpt-4o -p base_url="$mbase" -p conversation=chat-1 -p input="I am Ada."
expect_rc 0 "the first turn"
run "$CBX" exec llm -p model=gpt-4o -p base_url="$mbase" -p conversation=chat-1 -p input="Who am I?"
expect_rc 0 "the second turn"
[ "$(tail -1 "$TMP/mem.jsonl" | jq -c '[.body.messages[].content]')" = \
    '["I am Ada.","Hi Ada.","Who am I?"]' ] || fail "memory: $(tail -1 "$TMP/mem.jsonl")"
run "$CBX" exec llm -p model=gpt-4o -p base_url="$mbase" -p conversation=chat-2 -p input=x --no-journal
expect_rc 1 "memory without a journal"
expect_err_line "parameter 'conversation'" "no journal line"

# the type is listed with its schema
run "$CBX" types --json
jq -e '.[] | select(.name == "llm")' <"$TMP/out" >/dev/null || fail "llm not in cbx types --json"
run "$CBX" types llm --json
jq -e '.properties.tools and .properties.api_key' <"$TMP/out" >/dev/null ||
    fail "cbx types llm --json: $(head -c 300 "$TMP/out")"

# a bad price table: file:line:col and the key
cat >"$XDG_CONFIG_HOME/cbx/config.yaml" <<'YAML'
llm:
  prices:
    gpt-4o: {input: cheap}
YAML
run "$CBX" exec llm -p model=gpt-4o -p input=x
expect_rc 2 "a bad price"
expect_err_line "llm.prices.gpt-4o.input: expected a number" "price line"
grep -q "config.yaml:" "$TMP/err" || fail "no file position: $(cat "$TMP/err")"

# --record DIR then --replay DIR: the same answer with the server gone; no key in a cassette
rm "$XDG_CONFIG_HOME/cbx/config.yaml"
cat >"$TMP/rec.json" <<'JSON'
{"turns": [{"content": "recorded answer", "chunk_chars": 4}]}
JSON
"$fake" --script "$TMP/rec.json" --die-with-parent >"$TMP/prec" &
rpid=$!
wait_for "$TMP/prec" "$rpid" || fail "fake_llm did not start"
rbase="http://127.0.0.1:$(head -1 "$TMP/prec")/v1"
run "$CBX" exec llm -p model=gpt-4o -p base_url="$rbase" -p api_key=sk-cassette-key -p input=hi \
    -p stream=true --record "$TMP/cassettes"
expect_rc 0 "a recorded call"
[ "$(cat "$TMP/out")" = "recorded answer" ] || fail "recorded (streamed text): $(cat "$TMP/out")"
cp "$TMP/out" "$TMP/recorded.out"
kill $rpid
wait $rpid 2>/dev/null
grep -rq sk-cassette-key "$TMP/cassettes" && fail "the key is in a cassette"
run "$CBX" exec llm -p model=gpt-4o -p base_url="$rbase" -p api_key=sk-cassette-key -p input=hi \
    -p stream=true --replay "$TMP/cassettes"
expect_rc 0 "a replayed call, the server gone"
cmp -s "$TMP/out" "$TMP/recorded.out" || fail "replayed differs: $(cat "$TMP/out")"
run "$CBX" exec llm -p model=gpt-4o -p input=hi --replay "$TMP/no-such-dir"
expect_rc 2 "--replay of a directory that does not exist"
expect_err_line "--replay $TMP/no-such-dir: No such file or directory" "replay line"

# a streamed answer is printed as it comes: the first words are out while the rest is awaited
cat >"$TMP/live.json" <<'JSON'
{"turns": [{"content": "alpha beta gamma delta", "chunk_chars": 6, "chunk_delay_ms": 1000},
           {"tool_calls": [{"id": "c1", "name": "count", "arguments": {"text": "a b"}}]},
           {"content": "two words"}]}
JSON
"$fake" --script "$TMP/live.json" --die-with-parent >"$TMP/plive" &
lpid=$!
wait_for "$TMP/plive" "$lpid" || fail "fake_llm did not start"
lbase="http://127.0.0.1:$(head -1 "$TMP/plive")/v1"
"$CBX" exec llm -p model=gpt-4o -p base_url="$lbase" -p api_key=k -p input=hi -p stream=true \
    >"$TMP/live.out" 2>"$TMP/live.err" &
cpid=$!
deadline=$(($(date +%s) + 300))
until grep -q alpha "$TMP/live.out"; do
    kill -0 $cpid 2>/dev/null || fail "ended before its first words were seen: $(cat "$TMP/live.out")"
    [ "$(date +%s)" -lt "$deadline" ] || fail "no live tokens"
    sleep 0.05
done
kill -0 $cpid 2>/dev/null || fail "the first words came only at the end"
wait $cpid || fail "the streamed call: $(cat "$TMP/live.err")"
[ "$(cat "$TMP/live.out")" = "alpha beta gamma delta" ] || fail "streamed answer: $(cat "$TMP/live.out")"
# an agent's iterations on stderr with -v, as they end
run "$CBX" exec agent -p model=gpt-4o -p base_url="$lbase" -p api_key=k -p task=count -v \
    -p 'tools=[{"name": "count", "executor": "command", "params": {"argv": ["wc", "-w"], "stdin": "{{ args.text }}"}}]'
expect_rc 0 "an agent with -v"
grep -q '"event":"iteration","n":1,"tools":\["count"\]' "$TMP/err" || fail "no iteration line: $(cat "$TMP/err")"

# cbx stats sums tokens and cost by model (the first call: 2M + 1M tokens at the table's prices)
run "$CBX" stats --by model --json
expect_rc 0 "stats by model"
[ "$(jqv '.["gpt-4o-mini"].prompt_tokens >= 2000000')" = true ] &&
    [ "$(jqv '.["gpt-4o-mini"].completion_tokens >= 1000000')" = true ] &&
    [ "$(jqv '.["gpt-4o-mini"].cost >= 0.9')" = true ] || fail "stats by model: $(cat "$TMP/out")"
run "$CBX" stats --by executor
expect_rc 0 "stats by executor"
grep -q "TOKENS IN/OUT" "$TMP/out" || fail "no token column: $(cat "$TMP/out")"
run "$CBX" stats --by executor --executor command
grep -q "TOKENS" "$TMP/out" && fail "a token column without model calls: $(cat "$TMP/out")"
echo "ok [$TEST]"
