#!/usr/bin/env bash
# Secrets never reach the journal, whatever the record: a flow's inputs (an Authorization
# header, a *_PAT), an http step's Set-Cookie and X-Auth-Token response headers, in the
# executions, the flow step and run records, 'cbx show --json', and the database's bytes.
. "$(dirname "$0")/lib.bash"

start_http_server || fail "the http server did not start"
flow="$(dirname "$0")/../flows/cli/secrets.yaml"
secrets=(c00kie-from-server t0ken-from-server inp-s3cret ghp_patvalue)

run "$CBX" run -q "$flow" -i "url=$url/login" \
    -i 'headers={"Authorization":"Bearer inp-s3cret"}' -i GITHUB_PAT=ghp_patvalue
expect_rc 0 "the flow"
# the flow's own result is the caller's: it holds the token (masked only in the journal)
[ "$(jqv .session_token)" = "t0ken-from-server" ] || fail "flow outputs: $(cat "$TMP/out")"

"$CBX" runs --json >"$TMP/runs" || fail "runs"
id=$(jq -r '.[0].run_id' "$TMP/runs")
run "$CBX" show "$id" --json
expect_rc 0 "show"
[ "$(jqv '.inputs.headers.Authorization')" = "***" ] || fail "show: inputs: $(cat "$TMP/out")"
[ "$(jqv '.inputs.GITHUB_PAT')" = "***" ] || fail "show: *_PAT input: $(cat "$TMP/out")"
[ "$(jqv '.steps.login.outputs.headers["set-cookie"]')" = "***" ] ||
    fail "show: Set-Cookie: $(cat "$TMP/out")"
[ "$(jqv '.steps.login.outputs.headers["x-auth-token"]')" = "***" ] ||
    fail "show: X-Auth-Token: $(cat "$TMP/out")"
[ "$(jqv '.outputs.session_token')" = "***" ] || fail "show: *_TOKEN output: $(cat "$TMP/out")"
[ "$(jqv '.outputs.status')" = "200" ] || fail "show: a plain output was masked: $(cat "$TMP/out")"
cp "$TMP/out" "$TMP/show"
"$CBX" history --json >"$TMP/hist" || fail "history"

# nothing in clear: not in what the commands print, not in the files' bytes
for s in "${secrets[@]}"; do
    for f in "$TMP/show" "$TMP/hist" "$CBX_STATE_DIR"/journal.db*; do
        grep -qaF "$s" "$f" && fail "'$s' is in $f"
    done
done
echo "ok"
