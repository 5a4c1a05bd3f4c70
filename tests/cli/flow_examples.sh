# The example flows run as written: the seed 002 flow with its Lua executor, fetch-and-process
# against the tests' HTTP server (at its default url when port 8089 is free), fan-out/fan-in.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
E=examples/flows

# seed 002's flow.yaml, as written, with my_custom_executor defined in Lua
run "$CBX" run $E/seed_flow.yaml --lua examples/lua/my_custom_executor.lua \
    -i input_data="The quick  brown fox. It jumps!"
expect_rc 0 "the seed flow"
[ "$(jqv .custom_processing.result)" = "The quick brown fox. It jumps!" ] || fail "seed: $(cat "$TMP/out")"
[ "$(jqv '.custom_processing | "\(.mode) \(.words) \(.sentences) \(.processed)"')" = \
    "advanced 6 2 true" ] || fail "seed outputs: $(cat "$TMP/out")"
[ "$(jqv .custom_processing.upper)" = "THE QUICK BROWN FOX. IT JUMPS!" ] || fail "quality high: $(cat "$TMP/out")"
run "$CBX" run $E/seed_flow.yaml --lua examples/lua/my_custom_executor.lua
expect_rc 2 "the seed flow without its required input"
expect_err_line "input 'input_data': missing required input (string)" "seed without input"

# fetch-and-process: the tests' HTTP server, at the example's default url when the port is free
inputs=()
if ! start_http_server --port 8089; then
    start_http_server || fail "cannot start http_server"
    inputs=(-i "url=http://127.0.0.1:$(head -1 "$TMP/port")/bytes?n=2000")
fi
url="http://127.0.0.1:$(head -1 "$TMP/port")/bytes?n=2000"
sum=$(head -c 2000 /dev/zero | tr '\0' x | sha256sum | cut -d' ' -f1)
run "$CBX" run $E/fetch_and_process.yaml "${inputs[@]}"
expect_rc 0 "fetch_and_process"
[ "$(jqv '"\(.url) \(.status) \(.bytes) \(.words)"')" = "$url 200 2000 1" ] || fail "fetched: $(cat "$TMP/out")"
[ "$(jqv .sha256)" = "$sum" ] || fail "sha256: $(jqv .sha256), expected $sum"
[ "$(jqv .report)" = "$url: HTTP 200, 2000 bytes, 1 words, sha256 $sum" ] || fail "report: $(jqv .report)"
# size, words and checksum ran side by side once fetch was done
for s in size words checksum; do
    grep -n "^step $s started$" "$TMP/err" | cut -d: -f1 >>"$TMP/starts"
done
first_end=$(grep -n "^step \(size\|words\|checksum\) succeeded" "$TMP/err" | head -1 | cut -d: -f1)
[ "$(sort -n "$TMP/starts" | tail -1)" -lt "$first_end" ] || fail "not concurrent: $(cat "$TMP/err")"
# the report skipped by its condition; a bigger document asked for
run "$CBX" run $E/fetch_and_process.yaml -i "url=${url%=*}=300" -i min_bytes=1000 --json
expect_rc 0 "fetch_and_process with the report skipped"
[ "$(jqv '"\(.outputs.bytes) \(.outputs.report) \(.steps.report.status)"')" = "300 null skipped" ] ||
    fail "skipped report: $(cat "$TMP/out")"
# a server error is retried by the policy, then fails the run naming the step
run "$CBX" run $E/fetch_and_process.yaml -i "url=http://127.0.0.1:$(head -1 "$TMP/port")/status/500"
expect_rc 1 "fetch_and_process against a 500"
[ "$(tail -1 "$TMP/err")" = "cbx: run: step 'fetch' failed: HTTP 500 Internal Server Error" ] ||
    fail "500: $(tail -1 "$TMP/err")"
grep -q "^step fetch failed in .* after 3 attempts: HTTP 500" "$TMP/err" || fail "retries: $(cat "$TMP/err")"

# fan-out/fan-in
run "$CBX" run $E/fan_out_fan_in.yaml
expect_rc 0 "fan_out_fan_in"
[ "$(jqv .count)" = "8" ] && [ "$(jqv .letters)" = "43" ] && [ "$(jqv .longest)" = "elderberry" ] ||
    fail "fan-in: $(cat "$TMP/out")"
[ "$(jqv '.ranked | join(",")')" = "3 fig,4 date,4 kiwi,5 apple,5 mango,6 banana,6 cherry,10 elderberry" ] ||
    fail "ranked: $(jqv .ranked)"
[ "$(jqv '.groups | join(" ")')" = "kiwi+apple+fig banana+cherry+mango date+elderberry" ] ||
    fail "batches: $(jqv .groups)"
run "$CBX" run $E/fan_out_fan_in.yaml -i 'words=["pear","quince"]' --json
expect_rc 0 "fan_out_fan_in with other words"
[ "$(jqv '.outputs.ranked | join(",")')" = "4 pear,6 quince" ] || fail "other words: $(jqv .outputs)"
[ "$(jqv '.steps.measure.outputs | length')" = "2" ] || fail "fan-out outputs: $(jqv .steps.measure)"
echo "ok [$TEST]"
