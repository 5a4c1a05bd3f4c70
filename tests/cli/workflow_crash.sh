# kill -9 at random points of a workflow run, each followed by 'cbx workflow resume': 100 tokens
# through the six transitions (with actions, a fork and a join) of tests/workflows/crash.yaml.
# The final places and data must equal those of an uninterrupted run, and no action may run
# again once its result was journaled: for each firing, the run whose result was committed
# (its nonce is in the token's data) is the last run of that action in the log, and the
# journal holds one result per firing.
#
# CBX_WF_KILLS sets how many kills (default 50, as the acceptance asks; fewer for a quick run on a
# loaded machine).
. "$(dirname "$0")/lib.bash" "$@"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
NET=$SRC/tests/workflows/crash.yaml
KILLS=${CBX_WF_KILLS:-50}
TOKENS=100

tokens() { # LOG
    local i
    for i in $(seq 1 $TOKENS); do printf -- '--token\n{"n": %d, "log": "%s"}\n' "$i" "$1"; done
}

# the reference: uninterrupted
mapfile -t args < <(tokens "$TMP/ref.log")
run "$CBX" workflow run "$NET" "${args[@]}" --run-id ref --quiet
expect_rc 0 "uninterrupted run"
[ "$(wc -l <"$TMP/ref.log")" -eq $((TOKENS * 6)) ] || fail "reference: $(wc -l <"$TMP/ref.log") action runs"

# the same, killed KILLS times at random points
mapfile -t args < <(tokens "$TMP/crash.log")
run "$CBX" workflow start "$NET" "${args[@]}" --run-id crash
expect_rc 0 "start"
kills=0
while [ "$kills" -lt "$KILLS" ]; do
    "$CBX" workflow resume crash --quiet >/dev/null 2>"$TMP/resume.err" &
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 120 + 10)))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    [ "$rc" -eq 137 ] && kills=$((kills + 1)) && continue
    [ "$rc" -eq 0 ] && break # it ended before the kill: the run is done
    fail "resume exited $rc: $(cat "$TMP/resume.err")"
done
run "$CBX" workflow resume crash --quiet
expect_rc 0 "the last resume"

# the same final places and data (the nonces aside: they name the runs)
shape='[.tokens[] | {id, place, state, data: (.data | with_entries(select(.key | startswith("nonce_") | not)) | del(.log))}]'
run "$CBX" workflow show ref --json
jq -S "$shape" "$TMP/out" >"$TMP/ref.json"
run "$CBX" workflow show crash --json
cp "$TMP/out" "$TMP/crash-show.json"
jq -S "$shape" "$TMP/out" >"$TMP/crash.json"
cmp -s "$TMP/ref.json" "$TMP/crash.json" ||
    fail "final markings or data differ after $kills kills: $(diff "$TMP/ref.json" "$TMP/crash.json" | head -20)"
[ "$(jq '[.[] | select(.state == "final")] | length' "$TMP/crash.json")" -eq $TOKENS ] ||
    fail "not every token is final"

# one journaled result per firing
dups=$(jq -r '.tokens[] | .id as $id | [.history[].text | select(test("^action of .* succeeded$"))] |
              group_by(.) | map(select(length > 1) | "\($id): \(.[0]) x\(length)") | .[]' "$TMP/crash-show.json")
[ -z "$dups" ] || fail "results journaled twice: $dups"

# the committed run of each action is its last run: nothing ran after its result was journaled
jq -r '.tokens[] | select(.state != "gone") | .data as $d | $d | to_entries[] |
       select(.key | startswith("nonce_")) | "\($d.n) \(.key | ltrimstr("nonce_")) \(.value)"' \
    "$TMP/crash-show.json" | sort >"$TMP/committed"
# forked tokens ended in joins: their nonces live on in the joined token's data
[ "$(wc -l <"$TMP/committed")" -eq $((TOKENS * 6)) ] ||
    fail "committed nonces: $(wc -l <"$TMP/committed"), expected $((TOKENS * 6))"
awk '{ last[$1 " " $2] = $3 } END { for (k in last) print k, last[k] }' "$TMP/crash.log" | sort >"$TMP/last"
cmp -s "$TMP/committed" "$TMP/last" ||
    fail "an action ran after its result was journaled: $(diff "$TMP/committed" "$TMP/last" | head -10)"
runs=$(wc -l <"$TMP/crash.log")
echo "ok: $kills kills, $runs action runs for $((TOKENS * 6)) firings"
