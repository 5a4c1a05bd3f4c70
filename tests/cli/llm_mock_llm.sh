# cbx exec llm against an independent OpenAI-compatible server: @dwmkerr/mock-llm (npm), driven
# by YAML rules, so that the wire protocol is not only checked against cbx's own fake server.
# Installed into a cache directory when missing; skipped (77) when npm cannot fetch it.
. "$(dirname "$0")/lib.bash"

cache=${CBX_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cbx-npm}
main="$cache/node_modules/@dwmkerr/mock-llm/dist/main.js"
if [ ! -f "$main" ]; then
    command -v npm >/dev/null || { echo "SKIP [$TEST]: npm is not installed"; exit 77; }
    mkdir -p "$cache"
    if ! npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
        @dwmkerr/mock-llm@0.1 >"$TMP/npm.log" 2>&1; then
        echo "SKIP [$TEST]: npm could not install @dwmkerr/mock-llm: $(tail -1 "$TMP/npm.log")"
        exit 77
    fi
fi
command -v node >/dev/null || { echo "SKIP [$TEST]: node is not installed"; exit 77; }

# Last matching rule wins: the tool call for any request, the answer once a tool result came
# back carrying what the tool printed, an echo for "echo:", a 401 for "error-401".
cat >"$TMP/mock.yaml" <<'YAML'
streaming:
  chunkSize: 4
  chunkIntervalMs: 1
rules:
  - path: "/v1/chat/completions"
    match: "@"
    response:
      status: 200
      content: |
        {"id": "c1", "object": "chat.completion", "model": "gpt-4o",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
           "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "say",
             "arguments": "{\"word\": \"hello-from-tool\"}"}}]},
           "finish_reason": "tool_calls"}],
         "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
  - path: "/v1/chat/completions"
    match: "body.messages[-1].role == 'tool' && contains(body.messages[-1].content, 'hello-from-tool')"
    response:
      status: 200
      content: |
        {"id": "c2", "object": "chat.completion", "model": "gpt-4o",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "the tool said hello"},
           "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}}
  - path: "/v1/chat/completions"
    match: "starts_with(body.messages[-1].content, 'echo:')"
    response:
      status: 200
      content: |
        {"id": "c3", "object": "chat.completion", "model": "{{jmes request body.model}}",
         "choices": [{"index": 0, "message": {"role": "assistant",
           "content": "{{jmes request body.messages[-1].content}}"}, "finish_reason": "stop"}]}
  - path: "/v1/chat/completions"
    match: "contains(body.messages[-1].content, 'error-401')"
    response:
      status: 401
      content: '{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}'
YAML

port=""
for try in 1 2 3 4 5; do
    p=$((20000 + (RANDOM % 30000)))
    PORT=$p HOST=127.0.0.1 node "$main" --config "$TMP/mock.yaml" >"$TMP/mock.log" 2>&1 &
    mpid=$!
    trap 'kill $mpid 2>/dev/null; rm -rf "$TMP"' EXIT
    # it says "running on" before its socket takes connections: wait for both (minutes at most)
    deadline=$(($(date +%s) + 300))
    while [ "$(date +%s)" -lt "$deadline" ] && kill -0 $mpid 2>/dev/null; do
        if grep -q "running on" "$TMP/mock.log" && (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            port=$p
            break
        fi
        sleep 0.05
    done
    [ -n "$port" ] && break
    kill $mpid 2>/dev/null
    wait $mpid 2>/dev/null
done
[ -n "$port" ] || fail "mock-llm did not start: $(tail -3 "$TMP/mock.log")"
base="http://127.0.0.1:$port/v1"

# plain, and streamed (mock-llm's SSE in 4-character chunks)
run "$CBX" exec llm -p model=gpt-4o -p base_url="$base" -p api_key=k -p input="echo: twelve words"
expect_rc 0 "a plain echo"
[ "$(jqv .content)" = "echo: twelve words" ] || fail "content: $(cat "$TMP/out")"
run "$CBX" exec llm -p model=gpt-4o -p base_url="$base" -p api_key=k -p stream=true \
    -p input="echo: streamed through mock-llm"
expect_rc 0 "a streamed echo"
[ "$(cat "$TMP/out")" = "echo: streamed through mock-llm" ] || fail "streamed: $(cat "$TMP/out")"

# a tool round trip: the model's call runs a command whose output goes back to the model
run "$CBX" exec llm -p model=gpt-4o -p base_url="$base" -p api_key=k -p input="use the tool" \
    -p tools='[{"name": "say", "executor": "command", "params": {"argv": ["echo", "{{ args.word }}"]},
      "arguments": {"type": "object", "properties": {"word": {"type": "string"}}}}]'
expect_rc 0 "a tool round trip"
[ "$(jqv .content)" = "the tool said hello" ] || fail "content: $(cat "$TMP/out")"
[ "$(jqv .usage.total_tokens)" = "35" ] || fail "usage: $(jqv .usage)"

# a 401 is a refusal that is not retried
run "$CBX" exec llm -p model=gpt-4o -p base_url="$base" -p api_key=k -p input="error-401" \
    --retries 3 --retry-delay 1ms --json
expect_rc 1 "a 401"
[ "$(jqv .outputs.error_kind)" = "auth" ] || fail "error kind: $(jqv .outputs.error_kind)"
[ "$(jqv .attempt_count)" = "1" ] || fail "a 401 was retried: $(jqv .attempt_count)"
echo "ok [$TEST]"
